//! The exporter against a faulty metadata endpoint (the simulator's fault injection): it stays
//! up, `/metrics` keeps answering 200 with the last good numbers, `ecs_exporter_up 0` and
//! `ecs_task_exporter_status 0`, the failure is counted in `ecs_exporter_poll_errors_total` under
//! the right `endpoint` and `reason`, one log line per failed poll says what happened, and the
//! next good poll brings fresh numbers back (SPEC §2).
//!
//! Every test runs the real binaries: `ecs-task-sim` (profile `ec2-bridge`, whose counters advance
//! on every request, so a frozen number is visible) and the exporter polling every 250 ms. Waits
//! for eventual conditions are generous (30 s); nothing depends on a poll landing at a given time.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{Exporter, Scrape, Sim, container_names, http_get, label, runs, wait_for};

/// How long an eventual condition may take (polls are every 250 ms; this is for a loaded box).
const PATIENCE: Duration = Duration::from_secs(30);
const INTERVAL: &str = "0.25";
/// A counter of the simulated task that grows on every poll.
const PROBE: &str = "ecs_container_cpu_usage_seconds_total";
const PROBE_CONTAINER: &str = "prometheus";

// ---------------------------------------------------------------------------------------------
// Reading a scrape.

fn up(s: &Scrape) -> f64 {
    s.value("ecs_exporter_up", &[])
}

fn status(s: &Scrape) -> f64 {
    s.value("ecs_task_exporter_status", &[])
}

fn errors(s: &Scrape, endpoint: &str, reason: &str) -> f64 {
    s.value(
        "ecs_exporter_poll_errors_total",
        &[("endpoint", endpoint), ("reason", reason)],
    )
}

/// Every `endpoint`×`reason` error counter.
fn all_errors(s: &Scrape) -> BTreeMap<(String, String), f64> {
    let mut out = BTreeMap::new();
    for (labels, v) in s.series("ecs_exporter_poll_errors_total") {
        let get = |k: &str| label(labels, k).unwrap_or_default().to_owned();
        out.insert((get("endpoint"), get("reason")), v);
    }
    assert_eq!(out.len(), 12, "every endpoint×reason series is written");
    out
}

fn total_errors(s: &Scrape) -> f64 {
    all_errors(s).values().sum()
}

fn last_success(s: &Scrape) -> Option<f64> {
    s.get("ecs_exporter_last_success_timestamp_seconds", &[])
}

/// The series computed from the endpoint's data (everything but the exporter's own families).
fn data(s: &Scrape) -> BTreeMap<(String, Vec<(String, String)>), f64> {
    s.samples
        .iter()
        .filter(|((name, _), _)| {
            !name.starts_with("ecs_exporter_") && name != "ecs_task_exporter_status"
        })
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

fn probe(s: &Scrape) -> Option<f64> {
    s.get(PROBE, &[("container_name", PROBE_CONTAINER)])
}

/// Every ratio series is a finite number ≥ 0.
fn assert_ratios_sane(s: &Scrape, when: &str) {
    for family in ["ecs_task_cpu_usage_ratio", "ecs_task_percpu_usage_ratio"] {
        for (labels, v) in s.series(family) {
            assert!(
                v.is_finite() && v >= 0.0,
                "{when}: {family}{labels:?} = {v}"
            );
        }
    }
}

fn start_exporter(url: &str, timeout: &str) -> Exporter {
    Exporter::start(url, &["--interval", INTERVAL, "--timeout", timeout], &[])
}

/// Waits for a good poll with data: up, and the probe series present.
fn wait_good(exporter: &Exporter, what: &str) -> Scrape {
    let s = exporter.scrape_until(PATIENCE, |s| up(s) == 1.0 && probe(s).is_some());
    assert_eq!(up(&s), 1.0, "{what}: exporter never came up");
    assert_eq!(status(&s), 1.0, "{what}: ecs_task_exporter_status");
    assert!(
        probe(&s).is_some(),
        "{what}: no {PROBE} for {PROBE_CONTAINER}"
    );
    s
}

// ---------------------------------------------------------------------------------------------
// One fault, end to end.

/// A fault applied to one simulator endpoint, and where the exporter must count it.
struct Phase {
    /// `endpoint=` of the simulator's fault (task, task_stats, both).
    sim_endpoint: &'static str,
    /// The `endpoint` label it is counted under.
    counted: &'static str,
}

const TASK: Phase = Phase {
    sim_endpoint: "task",
    counted: "task",
};
const TASK_STATS: Phase = Phase {
    sim_endpoint: "task_stats",
    counted: "task_stats",
};
/// `both`: the poll stops at the first request, `/task`.
const BOTH: Phase = Phase {
    sim_endpoint: "both",
    counted: "task",
};

/// Applies `kind` (with `extra` query parameters) to each phase's endpoint in turn, and checks
/// survival, the self-metrics, the counted reason, the frozen last good numbers, recovery after
/// `clear`, and one log line per failed poll.
fn fault_is_survived(kind: &str, extra: &str, reason: &str, timeout: &str, phases: &[Phase]) {
    let sim = Sim::start(&["--profile", "ec2-bridge"]);
    let exporter = start_exporter(&sim.url, timeout);
    let mut final_scrape = None;
    for phase in phases {
        let what = format!("{kind} on {}", phase.sim_endpoint);
        let before = wait_good(&exporter, &format!("{what}: before"));
        let errors_before = all_errors(&before);
        let counted_before = errors(&before, phase.counted, reason);

        sim.fault(&format!(
            "kind={kind}&endpoint={}{extra}",
            phase.sim_endpoint
        ));
        let during = exporter.scrape_until(PATIENCE, |s| {
            errors(s, phase.counted, reason) > counted_before
        });
        assert!(
            errors(&during, phase.counted, reason) > counted_before,
            "{what}: never counted under endpoint={} reason={reason}; errors: {:?}",
            phase.counted,
            all_errors(&during)
        );
        let first = errors(&during, phase.counted, reason);
        let later = exporter.scrape_until(PATIENCE, |s| {
            errors(s, phase.counted, reason) >= first + 2.0
        });
        assert!(
            errors(&later, phase.counted, reason) >= first + 2.0,
            "{what}: the exporter stopped retrying"
        );

        for (s, when) in [
            (&during, "first failed poll"),
            (&later, "later failed poll"),
        ] {
            assert_eq!(up(s), 0.0, "{what}, {when}: ecs_exporter_up");
            assert_eq!(status(s), 0.0, "{what}, {when}: ecs_task_exporter_status");
            // Only this endpoint×reason counted anything.
            for ((endpoint, r), v) in all_errors(s) {
                if (endpoint.as_str(), r.as_str()) != (phase.counted, reason) {
                    assert_eq!(
                        v,
                        errors_before[&(endpoint.clone(), r.clone())],
                        "{what}, {when}: endpoint={endpoint} reason={r} moved"
                    );
                }
            }
        }
        // The last good numbers stay: the same series as before the fault, unchanged from one
        // failed poll to the next, and not older than what was seen before the fault.
        let (kept, kept_later) = (data(&during), data(&later));
        assert_eq!(
            kept.keys().collect::<Vec<_>>(),
            data(&before).keys().collect::<Vec<_>>(),
            "{what}: the series changed during the fault"
        );
        assert_eq!(
            kept, kept_later,
            "{what}: numbers moved while every poll failed"
        );
        let (p0, p1) = (probe(&before).unwrap(), probe(&during).unwrap());
        assert!(p1 >= p0, "{what}: {PROBE} went from {p0} to {p1}");
        assert_eq!(
            last_success(&during),
            last_success(&later),
            "{what}: last success moved"
        );
        assert!(last_success(&during).is_some());
        let (health, _, _) = http_get(exporter.addr, "/health", &[]).expect("/health");
        assert_eq!(health, 200, "{what}: /health (the poller keeps attempting)");

        sim.clear();
        let stuck = probe(&later).unwrap();
        let after = exporter.scrape_until(PATIENCE, |s| {
            up(s) == 1.0 && probe(s).is_some_and(|p| p > stuck)
        });
        assert_eq!(up(&after), 1.0, "{what}: no recovery after clear");
        assert_eq!(status(&after), 1.0, "{what}: status after recovery");
        assert!(
            probe(&after).unwrap() > stuck,
            "{what}: numbers did not move after recovery"
        );
        assert!(last_success(&after) > last_success(&later));
        final_scrape = Some(after);
    }

    // Let the poller settle on a good poll, then read what it logged.
    let last = exporter.scrape_until(PATIENCE, |s| up(s) == 1.0);
    let final_scrape = final_scrape.expect("a phase ran");
    assert_eq!(all_errors(&last), all_errors(&final_scrape));
    let logs = exporter.stop_and_logs();
    check_failure_logs(&logs, &last, reason, phases.len());
}

/// One `WARN` line per failed poll, naming the URL and the reason; one `INFO` line per recovery.
fn check_failure_logs(logs: &str, last: &Scrape, reason: &str, recoveries: usize) {
    assert!(!logs.contains("panicked"), "a thread panicked:\n{logs}");
    let failed: Vec<&str> = logs.lines().filter(|l| l.contains("poll failed")).collect();
    assert_eq!(
        failed.len() as f64,
        total_errors(last),
        "one log line per failed poll:\n{logs}"
    );
    for line in &failed {
        assert!(line.contains("WARN"), "level of {line:?}");
        assert!(
            line.ends_with(&format!("({reason})")),
            "the line names the reason: {line:?}"
        );
    }
    for (endpoint, path) in [("task", "/task: "), ("task_stats", "/task/stats: ")] {
        let n = failed.iter().filter(|l| l.contains(path)).count();
        assert_eq!(
            n as f64,
            errors(last, endpoint, reason),
            "lines naming {path:?}:\n{logs}"
        );
    }
    let recovered = logs
        .lines()
        .filter(|l| l.contains("poll succeeded again after"))
        .count();
    assert_eq!(
        recovered, recoveries,
        "one recovery line per fault:\n{logs}"
    );
}

// ---------------------------------------------------------------------------------------------
// Faults that fail a poll.

#[test]
fn http_500_keeps_last_numbers_and_counts_status_errors() {
    fault_is_survived("status500", "", "status", "5", &[TASK, TASK_STATS]);
}

#[test]
fn http_404_keeps_last_numbers_and_counts_status_errors() {
    fault_is_survived("status404", "", "status", "5", &[TASK_STATS, TASK]);
}

#[test]
fn http_429_on_both_endpoints_is_counted_once_under_task() {
    fault_is_survived("status429", "", "status", "5", &[BOTH]);
}

#[test]
fn hanging_endpoint_times_out_keeps_last_numbers_and_counts_timeouts() {
    // Each hung request sleeps 2.5 s; the exporter gives up after 1 s (a second is still ample
    // for the simulator's other answers on loopback, which must not time out).
    fault_is_survived("hang", "&ms=2500", "timeout", "1", &[TASK_STATS, TASK]);
}

#[test]
fn connection_closed_mid_body_keeps_last_numbers_and_counts_io_errors() {
    fault_is_survived("close_mid_body", "", "io", "5", &[TASK, TASK_STATS]);
}

#[test]
fn truncated_json_keeps_last_numbers_and_counts_parse_errors() {
    fault_is_survived("truncated_json", "", "parse", "5", &[TASK_STATS, TASK]);
}

#[test]
fn invalid_json_keeps_last_numbers_and_counts_parse_errors() {
    fault_is_survived("invalid_json", "", "parse", "5", &[TASK, TASK_STATS]);
}

#[test]
fn body_over_16_mib_keeps_last_numbers_and_counts_too_large() {
    // 17 MiB per request through a debug build: a generous timeout, so it is the size that fails.
    fault_is_survived("too_large", "", "too_large", "20", &[TASK_STATS, TASK]);
}

// ---------------------------------------------------------------------------------------------
// The endpoint not there at all.

/// A free port on 127.0.0.1 that no other process takes meanwhile: one below the kernel's
/// ephemeral range (`ip_local_port_range`), from which every `bind` to port 0 and every outgoing
/// connection takes its port, so only an explicit bind can take it. (Tests run in parallel
/// processes take and release ephemeral ports all the time: one of those, once released, is
/// soon someone else's.) Each call of a process starts its search elsewhere.
fn port_no_one_takes() -> u16 {
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let range =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let low: u32 = range
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(32768);
    assert!(
        low > 2048,
        "the ephemeral ports start at {low}: no room below"
    );
    let span = low - 1024;
    let start = std::process::id()
        .wrapping_mul(7919)
        .wrapping_add(CALLS.fetch_add(1, Ordering::Relaxed).wrapping_mul(1009))
        % span;
    (0..span)
        .map(|i| (1024 + (start + i) % span) as u16)
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port below the ephemeral range")
}

#[test]
fn unreachable_endpoint_at_start_serves_keeps_retrying_and_recovers() {
    // A port that refuses connections (nothing listens) and that no one else takes meanwhile.
    let port = port_no_one_takes();
    let url = format!("http://127.0.0.1:{port}");
    // `Exporter::start` returns once `/metrics` answers: the server does not wait for the endpoint.
    let exporter = start_exporter(&url, "5");
    let s = exporter.scrape_until(PATIENCE, |s| errors(s, "task", "connect") >= 3.0);
    assert!(
        errors(&s, "task", "connect") >= 3.0,
        "keeps trying: {:?}",
        all_errors(&s)
    );
    assert_eq!(up(&s), 0.0);
    assert_eq!(status(&s), 0.0);
    assert_eq!(total_errors(&s), errors(&s, "task", "connect"));
    assert!(data(&s).is_empty(), "no data before a good poll: {s:?}");
    assert_eq!(last_success(&s), None, "never succeeded");
    let (health, _, _) = http_get(exporter.addr, "/health", &[]).expect("/health");
    assert_eq!(health, 200, "the poller completes its attempts");

    let _sim = Sim::start_on(port, &["--profile", "ec2-bridge"]);
    let after = wait_good(&exporter, "after the endpoint appeared");
    assert!(
        after.has_family("ecs_task_info") && after.has_family("ecs_task_mem_usage"),
        "data after recovery"
    );
    let logs = exporter.stop_and_logs();
    check_failure_logs(&logs, &after, "connect", 1);
}

/// Whether a connection to `port` on 127.0.0.1 is open on the listening side (accepted or
/// waiting to be, or the answer not yet closed), from `/proc/net/tcp`.
fn connection_open_to(port: u16) -> bool {
    let local = format!("0100007F:{port:04X}");
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table.lines().skip(1).any(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // ESTABLISHED, SYN_RECV, CLOSE_WAIT: the simulator has not closed its end yet.
        cols.len() > 3 && cols[1] == local && matches!(cols[3], "01" | "03" | "08")
    })
}

/// Kills the simulator while the exporter sends it nothing: the exporter is stopped (SIGSTOP)
/// at a moment when no connection to the simulator is open, the simulator killed, the exporter
/// continued. What the exporter had received stays in its socket and is read as a whole answer.
fn kill_between_requests(sim: Sim, exporter: &Exporter) {
    let (pid, port) = (exporter.child.id().to_string(), sim.addr.port());
    let signal = |name: &str| assert!(runs("kill", &["-s", name, &pid]), "kill -s {name} {pid}");
    for _ in 0..500 {
        signal("STOP");
        if !connection_open_to(port) {
            drop(sim);
            signal("CONT");
            return;
        }
        signal("CONT");
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("a connection to the simulator was open at every look");
}

#[test]
fn endpoint_going_away_keeps_last_numbers_and_counts_connect_errors() {
    // On a port that no one else takes once the simulator has gone.
    let port = port_no_one_takes();
    let sim = Sim::start_on(port, &["--profile", "ec2-bridge"]);
    let exporter = start_exporter(&sim.url, "5");
    let before = wait_good(&exporter, "before");
    // Killed between two requests: connections are refused from now on. (Killed while it
    // answers, the request in flight would fail with an I/O error instead.)
    kill_between_requests(sim, &exporter);

    let during = exporter.scrape_until(PATIENCE, |s| errors(s, "task", "connect") >= 1.0);
    let later = exporter.scrape_until(PATIENCE, |s| {
        errors(s, "task", "connect") >= errors(&during, "task", "connect") + 2.0
    });
    for s in [&during, &later] {
        assert_eq!(up(s), 0.0);
        assert_eq!(status(s), 0.0);
        assert_eq!(total_errors(s), errors(s, "task", "connect"));
    }
    assert!(errors(&later, "task", "connect") >= 3.0);
    assert_eq!(
        data(&during).keys().collect::<Vec<_>>(),
        data(&before).keys().collect::<Vec<_>>()
    );
    assert_eq!(data(&during), data(&later), "last good numbers kept");
    assert!(probe(&during) >= probe(&before));

    let _sim = Sim::start_on(port, &["--profile", "ec2-bridge"]);
    let stuck = last_success(&later);
    let after = exporter.scrape_until(PATIENCE, |s| up(s) == 1.0 && last_success(s) > stuck);
    assert_eq!(up(&after), 1.0, "recovered");
    assert!(probe(&after).is_some());
    let logs = exporter.stop_and_logs();
    check_failure_logs(&logs, &after, "connect", 1);
}

// ---------------------------------------------------------------------------------------------
// Payloads that are valid but unusual: not errors.

/// SPEC §3.2: a `/task/stats` of `null` or `{}` is a valid reading in which no container has a
/// sample (it is what ECS answers before the first sample): the poll succeeds, every container
/// keeps its metadata families only, and nothing is counted as an error.
fn empty_stats_are_a_valid_reading(kind: &str) {
    let sim = Sim::start(&["--profile", "ec2-bridge"]);
    let exporter = start_exporter(&sim.url, "5");
    let before = wait_good(&exporter, "before");
    let stamp = last_success(&before);
    sim.fault(&format!("kind={kind}&endpoint=task_stats"));
    let during = exporter.scrape_until(PATIENCE, |s| probe(s).is_none());
    let during = exporter.scrape_until(PATIENCE, |s| last_success(s) > last_success(&during));
    assert_eq!(probe(&during), None, "{kind}: no sample, no CPU counter");
    assert_eq!(up(&during), 1.0, "{kind}: a valid payload is a good poll");
    assert_eq!(status(&during), 1.0);
    assert!(last_success(&during) > stamp);
    assert_eq!(total_errors(&during), 0.0, "{kind}: counted as an error");
    for family in [
        "ecs_task_mem_usage",
        "ecs_task_cpu_usage_ratio",
        "ecs_container_memory_working_set_bytes",
    ] {
        assert!(
            !during.has_family(family),
            "{kind}: {family} without samples"
        );
    }
    // SPEC §3.1.1: the task's counters keep the containers' last values (never a drop to
    // nothing that Prometheus would read as a reset); the containers' own rows are gone.
    for family in [
        "ecs_task_network_rx_bytes_total",
        "ecs_task_disk_read_bytes_total",
    ] {
        let rows = during.series(family);
        assert!(!rows.is_empty(), "{kind}: {family} keeps its task rows");
        for (labels, value) in rows {
            assert!(
                labels.contains(&("container_name".to_owned(), "_task_".to_owned())),
                "{kind}: {family} {labels:?} without a sample"
            );
            let pairs: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            assert!(
                value >= before.value(family, &pairs),
                "{kind}: {family} {labels:?} went down"
            );
        }
    }
    for family in [
        "ecs_task_info",
        "ecs_container_info",
        "ecs_container_known_status",
        "ecs_task_cpu_limit",
        "ecs_container_memory_limit_bytes",
    ] {
        assert!(
            during.has_family(family),
            "{kind}: metadata family {family}"
        );
    }
    assert_eq!(
        container_names(&during),
        container_names(&before),
        "{kind}: every container keeps its metadata series, the task its counters"
    );

    sim.clear();
    let after = wait_good(&exporter, "after clear");
    assert_eq!(total_errors(&after), 0.0);
    assert_ratios_sane(&after, kind);
    let logs = exporter.stop_and_logs();
    assert!(
        !logs.contains("poll failed"),
        "{kind}: logged a failure:\n{logs}"
    );
    assert!(!logs.contains("panicked"), "{logs}");
}

#[test]
fn stats_null_is_a_reading_without_samples_not_an_error() {
    empty_stats_are_a_valid_reading("stats_null");
}

#[test]
fn stats_empty_object_is_a_reading_without_samples_not_an_error() {
    empty_stats_are_a_valid_reading("stats_empty");
}

#[test]
fn container_change_adds_the_new_container_and_drops_the_gone_one_without_error() {
    let sim = Sim::start(&["--profile", "ec2-bridge"]);
    let exporter = start_exporter(&sim.url, "5");
    let before = wait_good(&exporter, "before");
    let names = container_names(&before);
    assert!(names.iter().any(|n| n == "prometheus"), "{names:?}");
    assert!(!names.iter().any(|n| n == "late-joiner"), "{names:?}");

    // The simulator drops its last running container (prometheus) and adds `late-joiner`.
    sim.fault("kind=container_change");
    let after = exporter.scrape_until(PATIENCE, |s| {
        s.get("ecs_task_mem_usage", &[("container_name", "late-joiner")])
            .is_some()
    });
    let names = container_names(&after);
    assert!(names.iter().any(|n| n == "late-joiner"), "{names:?}");
    assert!(
        !names.iter().any(|n| n == "prometheus"),
        "the gone container has no series left: {names:?}"
    );
    assert!(
        after
            .series("ecs_container_info")
            .iter()
            .any(|(l, _)| l.contains(&("container_name".into(), "late-joiner".into())))
    );
    assert_eq!(up(&after), 1.0);
    assert_eq!(total_errors(&after), 0.0, "a container change is no error");
    assert_ratios_sane(&after, "after container_change");

    // A few more polls: the new container gets a window, still sane.
    let later = exporter.scrape_until(PATIENCE, |s| {
        s.get(
            "ecs_task_cpu_usage_ratio",
            &[("container_name", "late-joiner")],
        )
        .is_some()
    });
    assert!(
        later
            .get(
                "ecs_task_cpu_usage_ratio",
                &[("container_name", "late-joiner")]
            )
            .is_some(),
        "the new container gets a CPU ratio"
    );
    assert_ratios_sane(&later, "later");
    assert_eq!(total_errors(&later), 0.0);
    let logs = exporter.stop_and_logs();
    assert!(!logs.contains("WARN"), "{logs}");
    assert!(!logs.contains("panicked"), "{logs}");
}

#[test]
fn counter_reset_gives_no_negative_ratio() {
    let sim = Sim::start(&["--profile", "ec2-bridge"]);
    let exporter = start_exporter(&sim.url, "5");
    // `ecs-exporter` is the first running container of the profile: the one that restarts.
    let restarted = [("container_name", "ecs-exporter")];
    let before = exporter.scrape_until(PATIENCE, |s| {
        up(s) == 1.0 && s.get("ecs_task_cpu_usage_ratio", &restarted).is_some()
    });
    let total_before = before.value(PROBE, &restarted);
    assert_ratios_sane(&before, "before");

    sim.fault("kind=counter_reset");
    // Scrape every poll or so until the reset has been seen and a ratio is back.
    let mut saw_reset = false;
    let mut ratio_absent_in_reset_window = None;
    let mut ratio_back = false;
    let deadline = std::time::Instant::now() + PATIENCE;
    let mut scrapes = 0;
    while std::time::Instant::now() < deadline && !ratio_back {
        let s = exporter.scrape();
        scrapes += 1;
        assert_ratios_sane(&s, "around a counter reset");
        assert_eq!(up(&s), 1.0, "a counter reset is no error");
        assert_eq!(total_errors(&s), 0.0);
        let total = s.value(PROBE, &restarted);
        let ratio = s.get("ecs_task_cpu_usage_ratio", &restarted);
        if !saw_reset && total < total_before {
            saw_reset = true;
            ratio_absent_in_reset_window = Some(ratio.is_none());
        } else if saw_reset && ratio.is_some() {
            ratio_back = true;
        }
        std::thread::sleep(Duration::from_millis(40));
    }
    assert!(saw_reset, "the counter never went down ({scrapes} scrapes)");
    assert!(ratio_back, "no ratio after the reset ({scrapes} scrapes)");
    eprintln!(
        "counter_reset: ratio absent in the first scrape after the reset: {}",
        ratio_absent_in_reset_window.unwrap_or(false)
    );
    let logs = exporter.stop_and_logs();
    assert!(!logs.contains("WARN"), "{logs}");
}

/// SPEC §2: scrapes render the latest snapshot and never wait on the endpoint, even while a
/// poll hangs on it.
#[test]
fn scrapes_do_not_wait_for_a_hanging_poll() {
    let sim = Sim::start(&["--profile", "ec2-bridge"]);
    let exporter = start_exporter(&sim.url, "8");
    let before = wait_good(&exporter, "before");
    let seen = sim.requests("task");
    sim.fault("kind=hang&endpoint=task&secs=10");
    assert!(
        wait_for(PATIENCE, || sim.requests("task") > seen),
        "the poller never called the endpoint again"
    );
    let addr: SocketAddr = exporter.addr;
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = std::time::Instant::now();
        let (code, _, body) = http_get(addr, "/metrics", &[]).expect("scrape");
        slowest = slowest.max(started.elapsed());
        assert_eq!(code, 200);
        assert!(
            body.contains("ecs_exporter_up 1"),
            "still the last poll's state"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("slowest scrape while a poll hangs: {slowest:?}");
    assert!(
        slowest < Duration::from_secs(3),
        "a scrape waited {slowest:?}: it must not wait on the poll"
    );
    assert!(probe(&exporter.scrape()) >= probe(&before));
}
