//! Remote write (SPEC §5) into a real Prometheus (`--web.enable-remote-write-receiver`, no
//! scrape jobs): the real exporter polls the simulated endpoint every second and pushes.
//!
//! - What arrives is what `/metrics` shows: one scrape is paired with its poll (through
//!   `ecs_exporter_last_success_timestamp_seconds`, the poll's time) and every series of it is in
//!   Prometheus at exactly that millisecond, with the same value and the scrape's labels plus
//!   `job`, `instance` (the task id) and the added labels; nothing else is (a family the
//!   `--metric-denylist` leaves out is in neither).
//! - An outage of the receiver (Prometheus stopped for 20 s, started again on its TSDB) loses no
//!   poll with the default buffer; with `--remote-write-buffer 5` the oldest requests are dropped
//!   (counted) and the newest arrive.
//! - A stopped container's series and, after SIGTERM, every series go stale at once (StaleNaN),
//!   not after Prometheus' 5-minute lookback.
//!
//! Needs `prometheus` ≥ 2.33 on PATH (Debian's package): without it a test fails under `CI=true`
//! and says `skipping: …` elsewhere. Fault answers: `remote_write_faults.rs`; TLS, basic and
//! bearer auth: `remote_write_auth.rs`; SigV4: `remote_write_sigv4.rs`; refused settings:
//! `remote_write_config.rs`.
#![cfg(feature = "remote-write")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::prometheus::{Prometheus, series};
use common::push::{
    JOB, PATIENCE, Watch, outcome, prometheus_receiver, prometheus_receives, watched,
};
use common::{Exporter, Scrape, Sim};

/// A series' labels, `__name__` among them, sorted.
type Labels = Vec<(String, String)>;
const LAST_SUCCESS: &str = "ecs_exporter_last_success_timestamp_seconds";

/// A Prometheus that receives remote write and scrapes nothing, or `None` (skipped).
fn receiver() -> Option<Prometheus> {
    prometheus_receives().then(|| prometheus_receiver(&[], None))
}

fn write_url(prometheus: &Prometheus) -> String {
    format!("http://{}/api/v1/write", prometheus.addr)
}

/// The task id: the last segment of the simulated task's `TaskARN`.
fn task_id(sim: &Sim) -> String {
    let task = sim.json("/task");
    let arn = task["TaskARN"].as_str().expect("TaskARN");
    arn.rsplit('/').next().expect("task id").to_owned()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The poll a scrape shows, in Unix milliseconds.
fn poll_ms(s: &Scrape) -> i64 {
    (s.value(LAST_SUCCESS, &[]) * 1000.0).round() as i64
}

/// A series' labels as pushed: its own, then each added label whose name it does not have yet
/// (the first of a name wins), plus `__name__`; sorted.
fn pushed_labels(
    name: &str,
    own: &[(String, String)],
    added: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut labels = own.to_vec();
    for (k, v) in added {
        if !labels.iter().any(|(n, _)| n == k) {
            labels.push(((*k).to_owned(), (*v).to_owned()));
        }
    }
    labels.push(("__name__".to_owned(), name.to_owned()));
    labels.sort();
    labels
}

fn same_value(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// Raw samples `(ms, value)` of the series `selector` matches, over the last `range` ending
/// now, by series labels.
fn raw(
    prometheus: &Prometheus,
    selector: &str,
    range: &str,
) -> BTreeMap<BTreeMap<String, String>, Vec<(i64, f64)>> {
    series(&prometheus.query(&format!("{selector}[{range}]"), None))
        .into_iter()
        .collect()
}

#[test]
fn every_series_of_a_scrape_arrives_at_its_poll_time_with_its_value_and_labels() {
    let Some(prometheus) = receiver() else { return };
    let sim = Sim::start(&["--profile", "managed-instances", "--refresh-secs", "0"]);
    let url = write_url(&prometheus);
    // `container_name` is the series' own label where it has one: the added one fills in only
    // where it has none.
    let added_flags = [
        ("team", "payments"),
        ("env", "test"),
        ("container_name", "none"),
    ];
    // The family filter (SPEC §6) holds for remote write as for /metrics.
    let mut args = vec!["--interval", "1", "--remote-write-url", &url];
    args.extend(["--metric-denylist", "ecs_task_network_*"]);
    let flags: Vec<String> = added_flags
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for f in &flags {
        args.extend(["--remote-write-label", f]);
    }
    let exporter = Exporter::start(&sim.url, &args, &[]);
    let instance = task_id(&sim);
    let mut added: Vec<(&str, &str)> = added_flags.to_vec();
    added.extend([("job", JOB), ("instance", instance.as_str())]);

    // A scrape from a poll after two accepted pushes: every family there, counters moving.
    let s = exporter.scrape_until(Duration::from_secs(20), |s| outcome(s, "sent") >= 2.0);
    assert!(outcome(&s, "sent") >= 2.0, "{}", exporter.logs());
    let at = poll_ms(&s);
    let at_s = at as f64 / 1000.0;

    // The samples Prometheus holds from (at - 0.9 s) to at: one poll's. Waits for its push.
    let mut got = Vec::new();
    let arrived = common::wait_for(Duration::from_secs(10), || {
        got = series(&prometheus.query(&format!("{{job=\"{JOB}\"}}[900ms]"), Some(at_s)));
        got.len() >= s.samples.len()
    });
    assert!(
        arrived,
        "{} of {} series at {at}:\n{}",
        got.len(),
        s.samples.len(),
        exporter.logs()
    );
    let stored: BTreeMap<Labels, Vec<(i64, f64)>> = got
        .into_iter()
        .map(|(labels, samples)| (labels.into_iter().collect(), samples))
        .collect();

    let mut expected = BTreeSet::new();
    for ((name, own), value) in &s.samples {
        let labels = pushed_labels(name, own, &added);
        let samples = stored
            .get(&labels)
            .unwrap_or_else(|| panic!("{labels:?} not in Prometheus at {at}"));
        assert_eq!(samples.len(), 1, "{labels:?}: {samples:?}");
        let (ms, v) = samples[0];
        assert_eq!(ms, at, "{labels:?}: stamped {ms}, the poll was at {at}");
        assert!(
            same_value(v, *value),
            "{labels:?}: {v} pushed, {value} on /metrics"
        );
        expected.insert(labels);
    }
    let extra: Vec<_> = stored.keys().filter(|l| !expected.contains(*l)).collect();
    assert!(extra.is_empty(), "series not on /metrics: {extra:?}");

    let denied = |name: &&str| name.starts_with("ecs_task_network_");
    assert!(
        !s.samples.keys().any(|(n, _)| denied(&n.as_str())),
        "the filter"
    );
    let families: BTreeSet<&str> = stored
        .keys()
        .filter_map(|l| l.iter().find(|(k, _)| k == "__name__"))
        .map(|(_, v)| v.as_str())
        .collect();
    let shown: BTreeSet<&str> = s.samples.keys().map(|(n, _)| n.as_str()).collect();
    assert_eq!(families, shown);
    assert!(!families.iter().any(denied), "a denied family pushed");
    for family in [
        "ecs_exporter_remote_write_requests_total",
        "ecs_exporter_remote_write_samples_sent_total",
        "ecs_exporter_remote_write_queue_requests",
        "ecs_exporter_remote_write_last_success_timestamp_seconds",
        "ecs_container_cpu_usage_seconds_total",
        "ecs_task_cpu_usage_ratio",
    ] {
        assert!(families.contains(family), "{family} not pushed");
    }
    eprintln!(
        "{} series in {} families at {at} equal in Prometheus",
        expected.len(),
        families.len()
    );
}

/// The raw samples of `run`'s poll times: `ecs_exporter_last_success_timestamp_seconds`, one
/// per pushed poll, whose value is its own timestamp.
fn polls_of(prometheus: &Prometheus, run: &str) -> Vec<i64> {
    let got = raw(
        prometheus,
        &format!("{LAST_SUCCESS}{{job=\"{JOB}\",run=\"{run}\"}}"),
        "10m",
    );
    assert_eq!(got.len(), 1, "{run}: {got:?}");
    let samples = got.into_values().next().unwrap_or_default();
    for (ms, v) in &samples {
        assert_eq!((v * 1000.0).round() as i64, *ms, "{run}: value vs stamp");
    }
    samples.into_iter().map(|(ms, _)| ms).collect()
}

#[test]
fn an_outage_shorter_than_the_buffer_loses_nothing_and_a_small_buffer_drops_the_oldest() {
    let Some(mut prometheus) = receiver() else {
        return;
    };
    let sim = Sim::start(&["--profile", "ec2-bridge"]);
    let url = write_url(&prometheus);
    let args = ["--interval", "1", "--remote-write-url", &url];
    // Labels from the variable for one, from the flag for the other.
    let big = Exporter::start(
        &sim.url,
        &args,
        &[("REMOTE_WRITE_LABELS", "run=big, zone=a")],
    );
    let mut small_args = args.to_vec();
    small_args.extend([
        "--remote-write-buffer",
        "5",
        "--remote-write-label",
        "run=small",
    ]);
    let small = Exporter::start(&sim.url, &small_args, &[]);
    // Every poll each one makes, seen on /metrics (every 200 ms; a poll a second); and that
    // they poll and serve throughout.
    let watches = [Watch::start(big.addr), Watch::start(small.addr)];
    for e in [&big, &small] {
        let s = e.scrape_until(Duration::from_secs(15), |s| outcome(s, "sent") >= 3.0);
        assert!(outcome(&s, "sent") >= 3.0, "{}", e.logs());
    }

    let stopped = now_ms();
    prometheus.stop();
    let gone = now_ms();
    // 20 s away; meanwhile the failed attempts are counted.
    std::thread::sleep(
        Duration::from_millis(20_000)
            .saturating_sub(Duration::from_millis((gone - stopped) as u64)),
    );
    let during = [big.scrape(), small.scrape()];
    prometheus.restart();
    let restarted = now_ms();
    assert!(outcome(&during[0], "retried") >= 3.0);
    assert_eq!(outcome(&during[0], "dropped"), 0.0);
    let queued = |s: &Scrape| s.value("ecs_exporter_remote_write_queue_requests", &[]);
    assert!(
        queued(&during[0]) >= 15.0,
        "big: {} queued",
        queued(&during[0])
    );
    assert_eq!(queued(&during[1]), 5.0, "small: the buffer's 5 queued");
    assert!(
        outcome(&during[1], "dropped") >= 10.0,
        "buffer 5, 20 s away: {} dropped",
        outcome(&during[1], "dropped")
    );

    // Both catch up (the backoff may wait up to 16 s by now), then one more poll is stored.
    for run in ["big", "small"] {
        let mut last = 0;
        let caught_up = common::wait_for(Duration::from_secs(40), || {
            last = *polls_of(&prometheus, run).last().unwrap_or(&0);
            last > restarted + 2000
        });
        assert!(
            caught_up,
            "{run}: last pushed poll {last}, restarted {restarted}"
        );
    }
    let [big_seen, small_seen] = watches.map(|w| watched(&w.finish()));

    // The default buffer: every poll from before the outage to after it, in order.
    let polls = polls_of(&prometheus, "big");
    let (first, last) = (polls[0], polls[polls.len() - 1]);
    assert!(
        first < stopped - 2000 && last > restarted,
        "{first}..{last}"
    );
    assert!(
        polls.windows(2).all(|w| w[1] > w[0]),
        "out of order: {polls:?}"
    );
    let lost: Vec<&i64> = big_seen
        .range(first..=last)
        .filter(|p| !polls.contains(p))
        .collect();
    assert!(lost.is_empty(), "big: polls lost: {lost:?} of {polls:?}");
    // The watch started after the first polls and stopped before the last: while it watched,
    // it saw one a second.
    let from = first.max(*big_seen.first().expect("polls seen"));
    let to = last.min(*big_seen.last().expect("polls seen"));
    assert!(
        big_seen.range(from..=to).count() >= (to - from) as usize / 1000,
        "the watch missed polls: {big_seen:?}"
    );
    let big_count = polls.len();

    // The small buffer: the polls missing are the oldest of the outage, one run of them, as many
    // as requests dropped; the newest (the buffer's 5) and everything after arrived.
    let polls = polls_of(&prometheus, "small");
    // The counters a poll shows are those from before it was queued: the last drop (when the
    // newest poll pushed the oldest out) shows from the poll after the last one pushed.
    let last_pushed = polls[polls.len() - 1];
    let s = small.scrape_until(PATIENCE, |s| poll_ms(s) > last_pushed);
    let dropped = outcome(&s, "dropped") as usize;
    let seen: Vec<i64> = small_seen.range(polls[0]..=last_pushed).copied().collect();
    let missing: Vec<usize> = (0..seen.len())
        .filter(|i| !polls.contains(&seen[*i]))
        .collect();
    assert_eq!(
        missing.len(),
        dropped,
        "polls missing vs requests dropped: missing {:?}; stopped {stopped}-{gone}, restarted \
         {restarted}; seen {seen:?}; pushed {polls:?}",
        missing.iter().map(|i| seen[*i]).collect::<Vec<_>>()
    );
    assert!(
        missing.windows(2).all(|w| w[1] == w[0] + 1),
        "more than one run of polls missing: {missing:?}"
    );
    let (oldest, newest) = (seen[missing[0]], seen[missing[missing.len() - 1]]);
    assert!(
        seen[missing[0] - 1] <= gone && oldest >= stopped - 1000,
        "the first poll missing ({oldest}) is not the first of the outage ({stopped}-{gone})"
    );
    // After the run, all arrived: the 5 kept when the first push after the restart was accepted,
    // then the rest.
    let recovered = raw(
        &prometheus,
        "ecs_exporter_remote_write_last_success_timestamp_seconds{run=\"small\"}",
        "10m",
    );
    let first_success_after = recovered
        .values()
        .flatten()
        .map(|(_, v)| (v * 1000.0) as i64)
        .filter(|t| *t > restarted)
        .min()
        .expect("a success after the restart");
    let kept = polls
        .iter()
        .filter(|p| **p > newest && **p <= first_success_after)
        .count();
    assert!(
        (4..=6).contains(&kept),
        "{kept} polls between the last missing ({newest}) and the first success after the \
         restart ({first_success_after})"
    );
    eprintln!(
        "outage {} ms: big {big_count} polls, none lost; small dropped {dropped} (the polls \
         {oldest}..={newest}), kept {kept}",
        restarted - stopped,
    );
}

#[test]
fn a_stopped_container_and_a_stopped_exporter_go_stale_at_once() {
    let Some(prometheus) = receiver() else { return };
    let sim = Sim::start(&["--profile", "ec2-bridge"]);
    let url = write_url(&prometheus);
    let mut exporter = Exporter::start(
        &sim.url,
        &["--interval", "1", "--remote-write-url", &url],
        &[],
    );
    let container = "prometheus";
    let mine = |s: &Scrape| -> BTreeSet<(String, Vec<(String, String)>)> {
        s.samples
            .keys()
            .filter(|(_, l)| {
                l.iter()
                    .any(|(k, v)| k == "container_name" && v == container)
            })
            .cloned()
            .collect()
    };
    let before = exporter.scrape_until(Duration::from_secs(15), |s| outcome(s, "sent") >= 2.0);
    assert!(outcome(&before, "sent") >= 2.0, "{}", exporter.logs());
    let in_prometheus = |prometheus: &Prometheus| -> BTreeSet<(String, Vec<(String, String)>)> {
        let selector = format!("{{job=\"{JOB}\",container_name=\"{container}\"}}");
        series(&prometheus.query(&selector, None))
            .into_iter()
            .map(|(mut labels, _)| {
                let name = labels.remove("__name__").unwrap_or_default();
                for added in ["job", "instance"] {
                    labels.remove(added);
                }
                (name, labels.into_iter().collect())
            })
            .collect()
    };
    assert_eq!(in_prometheus(&prometheus), mine(&before));

    sim.control(&format!("stop?container={container}"));
    let stopped = Instant::now();
    let after = exporter.scrape_until(Duration::from_secs(10), |s| mine(s) != mine(&before));
    let gone: Vec<_> = mine(&before).difference(&mine(&after)).cloned().collect();
    assert!(
        gone.iter()
            .any(|(n, _)| n == "ecs_container_cpu_usage_seconds_total"),
        "the stop took no series away: {gone:?}"
    );
    // Within one interval and some slack (not the 5-minute lookback), Prometheus shows exactly
    // what /metrics shows of the container.
    let mut seen = BTreeSet::new();
    let stale = common::wait_for(Duration::from_secs(5), || {
        seen = in_prometheus(&prometheus);
        seen == mine(&after)
    });
    assert!(
        stale,
        "{:?} after the stop, still in Prometheus: {:?}",
        stopped.elapsed(),
        seen.difference(&mine(&after)).collect::<Vec<_>>()
    );
    let took = stopped.elapsed();

    let selector = format!("{{job=\"{JOB}\"}}");
    assert!(!prometheus.query(&selector, None).is_empty());
    let (code, exit_took) = exporter.terminate(Duration::from_secs(15));
    assert_eq!(code, Some(0), "{}", exporter.logs());
    let left = prometheus.query(&selector, None);
    assert!(
        left.is_empty(),
        "after SIGTERM {} series still live: {:?}",
        left.len(),
        left.first()
    );
    eprintln!(
        "{} series of the stopped container stale after {took:?}; exit after {exit_took:?}",
        gone.len()
    );
}
