//! DogStatsD (SPEC §4) from the real exporter binary against the simulated ECS endpoint: the line
//! grammar and task tags, packing into datagrams, values equal to `/metrics` of the same poll,
//! one round per interval, nothing after a failed poll, and a missing or unresolvable receiver
//! that never stops the exporter.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::thread;
use std::time::{Duration, Instant};

use common::statsd::{Receiver, Round, closed_udp_port, datagram_lines, flags, parse_line, rounds};
use common::{Exporter, LEGACY_FAMILIES, Launch, Scrape, Sim, skip, task_ratio_ready, wait_for};

const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_DATAGRAM: usize = 1432;

// ---------------------------------------------------------------------------------------------
// Helpers.

/// Sim (every request a new sample) plus an exporter sending to `host`:`port` every 0.3 s,
/// once it has polled twice.
fn start(profile: &str, host: &str, port: &str) -> (Sim, Exporter) {
    let sim = ["--profile", profile, "--refresh-secs", "0"];
    let (sim, exporter, _) = Launch::new()
        .args(&["--interval", "0.3"])
        .args(&flags(host, port))
        .task_until(&sim, TIMEOUT, task_ratio_ready);
    (sim, exporter)
}

/// The 2.x series of a scrape.
fn legacy_series(s: &Scrape) -> BTreeMap<(String, Vec<(String, String)>), f64> {
    s.samples
        .iter()
        .filter(|((name, _), _)| LEGACY_FAMILIES.contains(&name.as_str()))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

fn statsd_errors(s: &Scrape) -> f64 {
    s.get("ecs_exporter_statsd_errors_total", &[])
        .unwrap_or(0.0)
}

/// Checks the datagrams and lines of complete rounds, and the task tags against `ecs_task_info`.
fn check_rounds(rounds: &[Round], info: &[(String, String)]) {
    let tag = |k: &str| {
        info.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (cluster, family, revision) = (tag("cluster"), tag("family"), tag("revision"));
    assert!(
        !cluster.is_empty() && !cluster.starts_with("arn:"),
        "ecs_task_info cluster {cluster:?}"
    );
    for round in rounds {
        for (i, d) in round.datagrams.iter().enumerate() {
            assert!(d.len() <= MAX_DATAGRAM, "datagram of {} bytes", d.len());
            let lines = datagram_lines(d);
            assert!(
                lines.iter().all(|l| !l.is_empty()),
                "empty line in datagram {:?}",
                String::from_utf8_lossy(d)
            );
            // Packed greedily: the next datagram's first line did not fit in this one.
            if let Some(next) = round.datagrams.get(i + 1) {
                let first = datagram_lines(next).into_iter().next().unwrap_or_default();
                assert!(
                    d.len() + 1 + first.len() > MAX_DATAGRAM,
                    "datagram of {} bytes left out a {}-byte line that would fit",
                    d.len(),
                    first.len()
                );
            }
        }
        for l in round.lines() {
            let line = parse_line(&l).unwrap_or_else(|e| panic!("{e}: {l}"));
            assert!(!line.metric.contains("exporter_status"), "{l}");
            assert_eq!(
                (&line.cluster, &line.family, &line.version),
                (&cluster, &family, &revision),
                "{l}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[test]
fn statsd_lines_follow_the_2x_grammar_pack_into_1432_byte_datagrams_and_carry_the_task_tags() {
    let rx = Receiver::bind("127.0.0.1").expect("UDP receiver");
    // Fargate: the endpoint gives the cluster as an ARN; the tag is its short name.
    let (_sim, exporter) = start("fargate", "127.0.0.1", &rx.port());
    let rounds = rx.complete_rounds(2);
    let s = exporter.scrape();
    let info = s.series("ecs_task_info");
    assert_eq!(info.len(), 1);
    check_rounds(&rounds, info[0].0);
    assert_eq!(
        info[0]
            .0
            .iter()
            .find(|(k, _)| k == "cluster")
            .map(|(_, v)| v.as_str()),
        Some("prom-ecs-exporter-sandbox")
    );
    for r in &rounds {
        assert!(
            r.datagrams.len() >= 2,
            "a round of {} datagrams: packing not exercised",
            r.datagrams.len()
        );
    }
}

/// Scrapes until the scrape's 2.x series equal one received round exactly (the round of the
/// poll the scrape shows). Counters advance on every poll (`--refresh-secs 0`), so only the
/// round of that very poll can match.
fn check_values_equal_metrics_of_the_same_poll(profile: &str, must_have: &[&str], never: &[&str]) {
    let rx = Receiver::bind("127.0.0.1").expect("UDP receiver");
    let (_sim, exporter) = start(profile, "127.0.0.1", &rx.port());
    // Past the first poll: windows between two polls, not the endpoint's own precpu.
    rx.complete_rounds(2);
    let mut last = String::new();
    for _attempt in 0..6 {
        let s = exporter.scrape();
        let want = legacy_series(&s);
        // The round of this poll was handed to the sender before the poll was published.
        thread::sleep(Duration::from_millis(150));
        let rounds = rounds(&rx.datagrams());
        if rounds.iter().any(|r| r.series() == want) {
            let families: BTreeSet<&str> = want.keys().map(|(n, _)| n.as_str()).collect();
            for f in must_have {
                assert!(
                    families.contains(f),
                    "{profile}: no {f} in /metrics, so not checked"
                );
            }
            for r in &rounds {
                for ((name, labels), _) in r.series() {
                    for (k, v) in &labels {
                        assert!(
                            !(k == "container_name" && never.contains(&v.as_str())),
                            "{profile}: {name}{labels:?}"
                        );
                    }
                }
            }
            let info = s.series("ecs_task_info");
            check_rounds(&rounds, info[0].0);
            return;
        }
        // For the failure message: how the closest round differs.
        last = rounds
            .iter()
            .map(|r| {
                let got = r.series();
                let missing: Vec<_> = want
                    .iter()
                    .filter(|(k, v)| got.get(*k) != Some(v))
                    .take(3)
                    .collect();
                let extra: Vec<_> = got
                    .keys()
                    .filter(|k| !want.contains_key(*k))
                    .take(3)
                    .collect();
                (
                    missing.len() + extra.len(),
                    format!("differs in {missing:?}, extra {extra:?}"),
                )
            })
            .min()
            .map(|(_, d)| d)
            .unwrap_or_else(|| "no rounds received".into());
    }
    panic!("{profile}: no DogStatsD round equals the 2.x series of /metrics: {last}");
}

#[test]
fn statsd_values_equal_metrics_of_the_same_poll_for_every_2x_family_on_fargate() {
    check_values_equal_metrics_of_the_same_poll("fargate", &LEGACY_FAMILIES, &[]);
}

#[test]
fn statsd_values_equal_metrics_of_the_same_poll_and_leave_out_excluded_containers_on_ec2_awsvpc() {
    let v2: Vec<&str> = LEGACY_FAMILIES
        .iter()
        .copied()
        .filter(|f| !f.contains("percpu") && !f.contains("iops"))
        .collect();
    check_values_equal_metrics_of_the_same_poll("ec2-awsvpc", &v2, &["~internal~ecs~pause"]);
}

#[test]
fn statsd_rounds_arrive_every_interval_while_metrics_keeps_answering() {
    let rx = Receiver::bind("127.0.0.1").expect("UDP receiver");
    let (_sim, exporter) = start("ec2-bridge", "127.0.0.1", &rx.port());
    let before = rounds(&rx.datagrams()).len();
    let started = Instant::now();
    let mut scrapes = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        let s = exporter.scrape();
        assert_eq!(s.value("ecs_exporter_up", &[]), 1.0);
        scrapes += 1;
        thread::sleep(Duration::from_millis(50));
    }
    let after = rounds(&rx.datagrams()).len();
    assert!(
        after - before >= 3,
        "{} rounds in 1.5 s at a 0.3 s interval",
        after - before
    );
    assert!(scrapes >= 10, "only {scrapes} scrapes answered in 1.5 s");
    assert_eq!(statsd_errors(&exporter.scrape()), 0.0);
}

#[test]
fn statsd_sends_nothing_after_a_failed_poll_and_resumes_after_recovery() {
    let rx = Receiver::bind("127.0.0.1").expect("UDP receiver");
    let (sim, exporter) = start("ec2-bridge", "127.0.0.1", &rx.port());
    rx.complete_rounds(1);
    sim.fault("kind=status500&endpoint=both");
    let s = exporter.scrape_until(TIMEOUT, |s| s.get("ecs_exporter_up", &[]) == Some(0.0));
    assert_eq!(
        s.get("ecs_exporter_up", &[]),
        Some(0.0),
        "the fault did not fail a poll"
    );
    thread::sleep(Duration::from_millis(100)); // a round in flight at the failure lands
    let quiet = rx.count();
    thread::sleep(Duration::from_millis(1000)); // three failed polls
    assert_eq!(
        rx.count(),
        quiet,
        "DogStatsD lines sent after a failed poll"
    );
    sim.clear();
    assert!(
        wait_for(TIMEOUT, || rx.count() > quiet),
        "no DogStatsD lines after the endpoint recovered"
    );
}

#[test]
fn statsd_without_a_receiver_counts_errors_and_the_exporter_keeps_serving() {
    // A UDP port nobody listens on: loopback answers with ICMP port unreachable.
    let port = closed_udp_port().to_string();
    let (_sim, mut exporter) = start("ec2-bridge", "127.0.0.1", &port);
    let s = exporter.scrape_until(TIMEOUT, |s| statsd_errors(s) > 0.0);
    assert!(
        statsd_errors(&s) > 0.0,
        "ecs_exporter_statsd_errors_total stayed 0"
    );
    let s = exporter.next_poll(&s, TIMEOUT);
    assert_eq!(s.value("ecs_exporter_up", &[]), 1.0);
    assert!(exporter.alive(), "the exporter exited");
}

#[test]
fn statsd_to_an_unresolvable_host_counts_errors_and_the_exporter_keeps_serving() {
    let (_sim, mut exporter) = start("ec2-bridge", "no-such-host.invalid", "8125");
    let s = exporter.scrape_until(Duration::from_secs(20), |s| statsd_errors(s) > 0.0);
    assert!(
        statsd_errors(&s) > 0.0,
        "ecs_exporter_statsd_errors_total stayed 0"
    );
    assert_eq!(s.value("ecs_exporter_up", &[]), 1.0);
    assert!(exporter.alive(), "the exporter exited");
}

#[test]
fn statsd_reaches_an_ipv6_literal_host() {
    let rx = match Receiver::bind("::1") {
        Ok(rx) => rx,
        Err(e) => return skip(&format!("cannot bind a UDP socket on [::1] ({e})")),
    };
    let (_sim, exporter) = start("ec2-bridge", "::1", &rx.port());
    let rounds = rx.complete_rounds(1);
    let s = exporter.scrape();
    check_rounds(&rounds, s.series("ecs_task_info")[0].0);
    assert_eq!(statsd_errors(&s), 0.0);
}

#[test]
fn statsd_settings_come_from_use_statsd_statsd_host_and_datadog_variables() {
    let sim = Sim::start(&["--profile", "ec2-bridge", "--refresh-secs", "0"]);
    let a = Receiver::bind("127.0.0.1").expect("UDP receiver");
    let b = Receiver::bind("127.0.0.1").expect("UDP receiver");
    let (pa, pb) = (a.port(), b.port());
    let polling = sim.exporter().args(&["--interval", "0.3"]);
    let _e1 = polling
        .clone()
        .env(&[
            ("USE_STATSD", "Yes"),
            ("STATSD_HOST", "127.0.0.1"),
            ("STATSD_PORT", &pa),
        ])
        .start();
    let _e2 = polling
        .env(&[
            ("USE_STATSD", "on"),
            ("DD_AGENT_HOST", "127.0.0.1"),
            ("DD_DOGSTATSD_PORT", &pb),
        ])
        .start();
    a.complete_rounds(1);
    b.complete_rounds(1);
}

#[test]
fn the_line_checker_of_these_tests_rejects_malformed_lines() {
    let ok = "ecs_task.cpu_usage_ratio:0.25|g|#container_name:web,ecs_cluster_name:c,task_family:f,task_version:7";
    assert!(parse_line(ok).is_ok());
    let net = "ecs_task.network_rx_bytes_total:12|g|#container_name:_task_,interface:eth0,ecs_cluster_name:c,task_family:f,task_version:7";
    assert_eq!(
        parse_line(net).map(|l| l.interface),
        Ok(Some("eth0".to_owned()))
    );
    for bad in [
        "ecs_task.cpu_usage_ratio:0.25|c|#container_name:web,ecs_cluster_name:c,task_family:f,task_version:7",
        "ecs_task.cpu_usage_ratio:NaN|g|#container_name:web,ecs_cluster_name:c,task_family:f,task_version:7",
        "ecs_task.cpu_usage_ratio:1e-7|g|#container_name:web,ecs_cluster_name:c,task_family:f,task_version:7",
        "ecs_task.Cpu:1|g|#container_name:web,ecs_cluster_name:c,task_family:f,task_version:7",
        "ecs_task.cpu:1|g|#container_name:web,ecs_cluster_name:c,task_family:f",
        "ecs_task.cpu:1|g|#ecs_cluster_name:c,container_name:web,task_family:f,task_version:7",
        "ecs_task.cpu:1|g|#container_name:web,cpu:x,ecs_cluster_name:c,task_family:f,task_version:7",
        "ecs_task.cpu:1|g|#container_name:,ecs_cluster_name:c,task_family:f,task_version:7",
        "ecs_task.cpu:1|g|#container_name:web,ecs_cluster_name:c,task_family:f,task_version:7,x:y",
        "ecs_task.cpu:1|g|#container_name:web,interface:eth0,cpu:1,ecs_cluster_name:c,task_family:f,task_version:7",
    ] {
        assert!(parse_line(bad).is_err(), "accepted {bad}");
    }
}
