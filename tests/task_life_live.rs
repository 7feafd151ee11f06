//! A task's life through the real binary (SPEC §3.1.1): the simulator's containers restart, stop
//! and start late while the exporter polls them, and a real Prometheus scrapes the exporter.
//!
//! Pinned: every `_task_` counter is non-decreasing across consecutive scrapes; a restarted
//! container's own counters reset (an ordinary reset of its own series); `_task_`
//! `cpu_usage_ratio` is whole (every running container with a sample has its own ratio in the
//! same scrape) or absent, and is absent right after a restart; Prometheus sees no reset of any
//! `_task_` counter, and `increase()` of the task's received bytes over a restart and a stop is
//! the traffic the simulator sent, short by at most what no poll saw.
//!
//! The ec2-bridge profile: two running containers (`ecs-exporter`, `prometheus`), each with its
//! own `eth0` receiving 20,000 bytes/s; a restart starts that container's counters from 0.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::prometheus::{Prometheus, prometheus_version, sample_value};
use common::{Exporter, Launch, Scrape, Sim, skip, task_counters, task_ratio_ready, wait_for};

const TASK: &str = "_task_";
const PATIENCE: Duration = Duration::from_secs(30);
/// Bytes each running container receives per second in the simulator (bridge mode).
const RX_PER_SECOND: f64 = 20_000.0;
/// Seconds of steady traffic before the restart in the window of the `increase()` checked.
const LEAD: f64 = 4.0;
/// Prometheus samples (a scrape a second) taken after the exporter has polled a change, before
/// the next step.
const AFTER_EACH: f64 = 3.0;

/// Containers that are RUNNING and have a sample (a CPU counter) in this scrape.
fn running_with_samples(s: &Scrape) -> Vec<String> {
    s.series("ecs_container_known_status")
        .into_iter()
        .filter(|(labels, _)| labels.iter().any(|(k, v)| k == "status" && v == "RUNNING"))
        .filter_map(|(labels, _)| {
            let name = &labels.iter().find(|(k, _)| k == "container_name")?.1;
            s.get(
                "ecs_container_cpu_usage_seconds_total",
                &[("container_name", name)],
            )
            .map(|_| name.clone())
        })
        .collect()
}

/// Scrapes, checking each against the previous one, for as long as `phase` runs.
struct Watch<'a> {
    exporter: &'a Exporter,
    last: BTreeMap<(String, Vec<(String, String)>), f64>,
    scrapes: usize,
    /// Scrapes without a `_task_` CPU ratio since the last `mark`.
    task_ratio_absent: usize,
}

impl Watch<'_> {
    fn scrape(&mut self, what: &str) -> Scrape {
        let s = self.exporter.scrape();
        let now = task_counters(&s);
        for (key, was) in &self.last {
            let is = now.get(key).copied();
            assert!(
                is.is_some_and(|is| is >= *was),
                "{what}: _task_ {key:?} went from {was} to {is:?}"
            );
        }
        match s.get("ecs_task_cpu_usage_ratio", &[("container_name", TASK)]) {
            Some(_) => {
                for c in running_with_samples(&s) {
                    assert!(
                        s.get("ecs_task_cpu_usage_ratio", &[("container_name", &c)])
                            .is_some(),
                        "{what}: a _task_ CPU ratio without {c}'s: a sum of some containers"
                    );
                }
            }
            None => self.task_ratio_absent += 1,
        }
        self.last = now;
        self.scrapes += 1;
        s
    }

    /// Scrapes every 20 ms for `how_long`; returns the last scrape.
    fn run(&mut self, what: &str, how_long: Duration) -> Scrape {
        let until = Instant::now() + how_long;
        let mut s = self.scrape(what);
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
            s = self.scrape(what);
        }
        s
    }
}

fn own_rx(s: &Scrape, container: &str) -> Option<f64> {
    s.get(
        "ecs_task_network_rx_bytes_total",
        &[("container_name", container), ("interface", "eth0")],
    )
}

#[test]
fn restart_stop_and_late_start_never_lower_a_task_counter_and_keep_task_cpu_whole() {
    let (sim, exporter, ready) = Launch::new()
        .args(&["--interval", "0.2", "--exclude", ""])
        .task_until(
            &["--profile", "ec2-bridge", "--refresh-secs", "0"],
            PATIENCE,
            task_ratio_ready,
        );
    assert!(ready.has_family("ecs_task_disk_read_bytes_total"));
    let mut watch = Watch {
        exporter: &exporter,
        last: BTreeMap::new(),
        scrapes: 0,
        task_ratio_absent: 0,
    };
    let before = watch.run("steady", Duration::from_secs(1));
    let rx_before = own_rx(&before, "prometheus").expect("prometheus rx");
    let cpu_before = before
        .get(
            "ecs_container_cpu_usage_seconds_total",
            &[("container_name", "prometheus")],
        )
        .expect("prometheus CPU");

    // A restart: the container's own counters start again; the task's do not go down.
    sim.control("restart?container=prometheus");
    watch.task_ratio_absent = 0;
    let after = watch.run("restart", Duration::from_secs(2));
    assert_eq!(
        after.get(
            "ecs_container_restarts_total",
            &[("container_name", "prometheus")]
        ),
        Some(1.0)
    );
    let rx_after = own_rx(&after, "prometheus").expect("prometheus rx after the restart");
    assert!(
        rx_after < rx_before,
        "its own rx did not reset: {rx_before} -> {rx_after}"
    );
    let cpu_after = after
        .get(
            "ecs_container_cpu_usage_seconds_total",
            &[("container_name", "prometheus")],
        )
        .expect("prometheus CPU after the restart");
    assert!(cpu_after < cpu_before, "its own CPU counter did not reset");
    assert!(
        watch.task_ratio_absent > 0,
        "no scrape without the task's CPU ratio after the restart: the poll that had no window \
         for prometheus published one anyway"
    );
    assert!(
        after
            .get("ecs_task_cpu_usage_ratio", &[("container_name", TASK)])
            .is_some(),
        "the task's CPU ratio came back"
    );

    // A stop: its stats become `{}`; its last values stay in the task's counters.
    sim.control("stop?container=ecs-exporter&exit_code=1");
    let stopped = watch.run("stop", Duration::from_secs(1));
    assert_eq!(own_rx(&stopped, "ecs-exporter"), None);
    assert_eq!(
        stopped.get(
            "ecs_container_exit_code",
            &[("container_name", "ecs-exporter")]
        ),
        Some(1.0)
    );

    // A late start: a new container adds to the task's counters.
    sim.control("start?container=late");
    let late = watch.run("late start", Duration::from_secs(2));
    assert!(own_rx(&late, "late").is_some(), "the late container's rows");
    let task_rx = |s: &Scrape| {
        s.value(
            "ecs_task_network_rx_bytes_total",
            &[("container_name", TASK), ("interface", "eth0")],
        )
    };
    assert!(task_rx(&late) > task_rx(&stopped));
    eprintln!(
        "task life: {} scrapes, _task_ counters never went down",
        watch.scrapes
    );
}

#[test]
fn prometheus_sees_no_reset_and_counts_the_traffic_across_a_restart_and_a_stop() {
    if prometheus_version().is_none() {
        return skip("prometheus is not installed (Debian package prometheus)");
    }
    let sim = Sim::start(&["--profile", "ec2-bridge", "--refresh-secs", "0"]);
    let exporter = Exporter::start(&sim.url, &["--interval", "1"], &[]);
    let prometheus = Prometheus::start(&format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: life\n    honor_labels: true\n    static_configs:\n      \
         - targets: ['{}']\n",
        exporter.addr
    ));
    let rx = "ecs_task_network_rx_bytes_total{container_name=\"_task_\",interface=\"eth0\"}";
    assert!(
        wait_for(PATIENCE, || !prometheus.query(rx, None).is_empty()),
        "no _task_ rx in Prometheus:\n{}",
        prometheus.log()
    );
    let now = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default()
    };
    // Waits until Prometheus holds `n` samples of the task's rx stamped after `since` (scrapes
    // every second: about `n` seconds, however slow a loaded machine makes them).
    let scraped_since = |since: f64, n: f64| {
        let mut count = 0.0;
        let done = wait_for(PATIENCE, || {
            let at = now();
            let range_ms = ((at - since) * 1000.0).max(1.0);
            count = prometheus
                .query(&format!("count_over_time({rx}[{range_ms:.0}ms])"), Some(at))
                .first()
                .map_or(0.0, |r| sample_value(&r["value"]));
            count >= n
        });
        assert!(
            done,
            "{count} samples since {since}, not {n}:\n{}",
            prometheus.log()
        );
    };
    // Samples from more than LEAD s before the restart: the increase window below starts there.
    scraped_since(now(), LEAD + 2.0);

    let restarted = now();
    sim.control("restart?container=prometheus");
    let polled = |what: &str, check: &dyn Fn(&Scrape) -> bool| {
        let s = exporter.scrape_until(PATIENCE, check);
        assert!(check(&s), "the exporter never polled {what}");
        now()
    };
    let seen = polled("the restart", &|s| {
        s.get(
            "ecs_container_restarts_total",
            &[("container_name", "prometheus")],
        ) == Some(1.0)
    });
    scraped_since(seen, AFTER_EACH);
    let stopped = now();
    sim.control("stop?container=ecs-exporter");
    let seen = polled("the stop", &|s| {
        s.get(
            "ecs_container_known_status",
            &[("container_name", "ecs-exporter"), ("status", "STOPPED")],
        ) == Some(1.0)
    });
    scraped_since(seen, AFTER_EACH);
    let end = now();

    // No reset of any task counter (Prometheus would count the whole total again).
    let counters = prometheus.query(
        "{__name__=~\"ecs_task_.+_total\",container_name=\"_task_\"}",
        Some(end),
    );
    let mut families: Vec<&str> = counters
        .iter()
        .filter_map(|c| c["metric"]["__name__"].as_str())
        .collect();
    families.dedup();
    assert!(
        families.len() >= 10,
        "task counters in Prometheus: {families:?}"
    );
    for family in families {
        let query = format!("resets({family}{{container_name=\"_task_\"}}[1m])");
        for r in prometheus.query(&query, Some(end)) {
            assert_eq!(sample_value(&r["value"]), 0.0, "{family}: {}", r["metric"]);
        }
    }
    // Traffic over a window from LEAD s before the restart to the end: `prometheus` ran all of
    // it (its restart resets only its own counter), `ecs-exporter` until it stopped.
    let window = end - (restarted - LEAD);
    let expected = RX_PER_SECOND * (window + (stopped - (restarted - LEAD)));
    let increase = prometheus.query(&format!("increase({rx}[{window:.0}s])"), Some(end));
    let got = sample_value(&increase.first().expect("an increase")["value"]);
    // Short by what no poll saw: what each container received after its last poll before the
    // restart and before the stop, at most one interval (1 s) each; ±1 s of timing between the
    // controls and the samples.
    let seen = got / expected;
    eprintln!("increase over {window:.1} s: {got:.0} bytes, simulated {expected:.0} ({seen:.4})");
    assert!(
        got >= expected - 3.0 * RX_PER_SECOND && got <= expected + RX_PER_SECOND,
        "increase {got} vs the simulated {expected} (± the unseen intervals)"
    );
}
