//! Family filters (SPEC §6) from the real exporter binary against the simulated ECS endpoint: a
//! denylist takes its families out of `/metrics` and out of the DogStatsD lines, an allowlist
//! leaves only its own in both; the DogStatsD lines are always those of the 2.x families that
//! `/metrics` shows. (Remote write pushes the very families `/metrics` renders: the poller's unit
//! tests check it on one publication.)

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::statsd::{Receiver, Round, flags, parse_line};
use common::{Exporter, LEGACY_FAMILIES, Launch, Scrape, Sim, task_ratio_ready};

const TIMEOUT: Duration = Duration::from_secs(10);

/// The simulator (`ec2-awsvpc`: cgroup v2, a shared network interface, every request a new
/// sample) and an exporter with these extra arguments and variables, sending DogStatsD to `rx`
/// every 0.3 s; returns them once `ready` holds for a scrape.
fn start(
    rx: &Receiver,
    args: &[&str],
    env: &[(&str, &str)],
    ready: impl FnMut(&Scrape) -> bool,
) -> (Sim, Exporter, Scrape) {
    let port = rx.port();
    Launch::new()
        .args(&["--interval", "0.3"])
        .args(&flags("127.0.0.1", &port))
        .args(args)
        .env(env)
        .task_until(
            &["--profile", "ec2-awsvpc", "--refresh-secs", "0"],
            TIMEOUT,
            ready,
        )
}

/// The families of a scrape.
fn families(s: &Scrape) -> BTreeSet<String> {
    s.samples.keys().map(|(name, _)| name.clone()).collect()
}

/// The Prometheus families the DogStatsD lines of these rounds come from (`ecs_task.<m>` is
/// `ecs_task_<m>`), every line checked against the 2.x grammar.
fn statsd_families(rounds: &[Round]) -> BTreeSet<String> {
    rounds
        .iter()
        .flat_map(Round::lines)
        .map(|l| {
            let line = parse_line(&l).unwrap_or_else(|e| panic!("{e}: {l}"));
            format!("ecs_task_{}", line.metric)
        })
        .collect()
}

/// The 2.x families (those DogStatsD carries) of a set of families.
fn legacy(families: &BTreeSet<String>) -> BTreeSet<String> {
    families
        .iter()
        .filter(|f| LEGACY_FAMILIES.contains(&f.as_str()))
        .cloned()
        .collect()
}

#[test]
fn a_denylist_takes_its_families_out_of_metrics_and_statsd() {
    let denied = |f: &str| {
        f.starts_with("ecs_task_network_")
            || [
                "ecs_task_cpu_kernelmode",
                "ecs_container_info",
                "ecs_exporter_up",
            ]
            .contains(&f)
    };

    // Unfiltered first: what the denylist has to remove is there.
    let rx = Receiver::bind("127.0.0.1").expect("UDP receiver");
    let (_sim, _exporter, s) = start(&rx, &[], &[], task_ratio_ready);
    let everything = families(&s);
    let sent = statsd_families(&rx.complete_rounds(2));
    assert!(
        everything.iter().filter(|f| denied(f)).count() >= 11,
        "{everything:?}"
    );
    assert!(sent.iter().any(|f| denied(f)), "{sent:?}");

    let rx = Receiver::bind("127.0.0.1").expect("UDP receiver");
    let (_sim, _exporter, s) = start(
        &rx,
        &[
            "--metric-denylist",
            "ecs_task_network_*, ecs_task_cpu_kernelmode,ecs_container_info,ecs_exporter_up",
        ],
        &[],
        task_ratio_ready,
    );
    assert!(task_ratio_ready(&s), "no second poll within {TIMEOUT:?}");
    let shown = families(&s);
    let expected: BTreeSet<String> = everything.iter().filter(|f| !denied(f)).cloned().collect();
    assert_eq!(
        shown, expected,
        "/metrics: everything but the denied families"
    );
    let sent_now = statsd_families(&rx.complete_rounds(2));
    assert!(!sent_now.iter().any(|f| denied(f)), "{sent_now:?}");
    assert_eq!(
        sent_now,
        legacy(&shown),
        "DogStatsD: the 2.x families /metrics shows"
    );
    assert!(sent_now.contains("ecs_task_cpu_usermode") && sent_now.contains("ecs_task_mem_usage"));
}

#[test]
fn an_allowlist_leaves_only_its_families_in_metrics_and_statsd() {
    let rx = Receiver::bind("127.0.0.1").expect("UDP receiver");
    let (_sim, _exporter, s) = start(
        &rx,
        &[],
        &[(
            "METRIC_ALLOWLIST",
            " ecs_task_mem_usage ,ecs_task_network_rx_*,ecs_container_memory_rss_bytes,",
        )],
        |s| s.has_family("ecs_task_mem_usage"),
    );
    let expected = [
        "ecs_container_memory_rss_bytes",
        "ecs_task_mem_usage",
        "ecs_task_network_rx_bytes_total",
        "ecs_task_network_rx_dropped_total",
        "ecs_task_network_rx_errors_total",
        "ecs_task_network_rx_packets_total",
    ];
    assert_eq!(families(&s), expected.map(str::to_owned).into(), "/metrics");
    let sent = statsd_families(&rx.complete_rounds(2));
    let expected_sent: BTreeSet<String> = expected
        .iter()
        .filter(|f| f.starts_with("ecs_task_"))
        .map(|f| (*f).to_owned())
        .collect();
    assert_eq!(sent, expected_sent, "DogStatsD");
}
