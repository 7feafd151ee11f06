//! The simulator's task-life controls (`/control/restart`, `/stop`, `/start`, `/health`), seen on
//! its own HTTP surface (exact counters, the answers to bad requests) and through the real
//! exporter (the per-container families a restart, a stop, a start and a health change move).
//!
//! These tests pin the simulator and the exporter's per-container rows only. The `_task_` rows
//! across a task's life are another test's subject (SPEC §3.1.1).

mod common;

use std::time::Duration;

use common::{Exporter, Launch, Scrape, Sim, http_get, label};
use ecs_container_exporter::core::rfc3339;
use serde_json::Value;

const PATIENCE: Duration = Duration::from_secs(30);

/// The `/task` container object named `name`.
fn container(task: &Value, name: &str) -> Value {
    task["Containers"]
        .as_array()
        .and_then(|l| l.iter().find(|c| c["Name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("no container {name} in {task}"))
}

fn seconds_between(from: &Value, to: &Value) -> f64 {
    let t = |v: &Value| {
        v.as_str()
            .and_then(rfc3339::parse)
            .unwrap_or_else(|| panic!("not a timestamp: {v}"))
    };
    (t(to) - t(from)) as f64 / 1e9
}

/// One series' value, if the scrape has it.
fn of(s: &Scrape, family: &str, container: &str) -> Option<f64> {
    s.get(family, &[("container_name", container)])
}

fn rx(s: &Scrape, container: &str, interface: &str) -> Option<f64> {
    s.get(
        "ecs_task_network_rx_bytes_total",
        &[("container_name", container), ("interface", interface)],
    )
}

/// The simulator (`profile`, every request a new sample) and the exporter polling it every
/// 0.2 s, once a scrape has `container`'s CPU counter.
fn task_for(profile: &str, container: &str) -> (Sim, Exporter, Scrape) {
    let sim = ["--profile", profile, "--refresh-secs", "0"];
    Launch::new()
        .args(&["--interval", "0.2"])
        .task_until(&sim, PATIENCE, |s| {
            of(s, "ecs_container_cpu_usage_seconds_total", container).is_some()
        })
}

#[test]
fn a_bridge_restart_counts_20000_rx_bytes_per_second_from_zero_since_started_at() {
    let sim = Sim::start(&["--profile", "ec2-bridge", "--refresh-secs", "0"]);
    let before = container(&sim.json("/task"), "prometheus");
    let state: Value =
        serde_json::from_str(&sim.control("restart?container=prometheus")).expect("state is JSON");
    let listed = state["containers"]
        .as_array()
        .and_then(|l| l.iter().find(|c| c["name"] == "prometheus"))
        .cloned()
        .expect("state lists prometheus");
    assert_eq!(listed["restart_count"], 1, "{state}");
    assert_eq!(listed["known_status"], "RUNNING");
    assert_eq!(listed["docker_id"], before["DockerId"]);

    std::thread::sleep(Duration::from_millis(300));
    let task = sim.json("/task");
    let stats = sim.json("/task/stats");
    let after = container(&task, "prometheus");
    assert_eq!(after["DockerId"], before["DockerId"], "same DockerId");
    assert_eq!(after["RestartCount"], 1);
    assert!(seconds_between(&before["StartedAt"], &after["StartedAt"]) > 0.0);
    let sample = &stats[after["DockerId"].as_str().expect("DockerId")];
    let since = seconds_between(&after["StartedAt"], &sample["read"]);
    assert!(since >= 0.3, "read {since} s after the restart");
    // ⌊rate · (read − StartedAt)⌋, to within the nanosecond rounding of the two timestamps.
    let eth0 = &sample["networks"]["eth0"];
    for (key, rate) in [
        ("rx_bytes", 20_000.0),
        ("tx_bytes", 5_000.0),
        ("rx_packets", 20.0),
    ] {
        let got = eth0[key].as_f64().expect(key);
        let want = (rate * since).floor();
        assert!((got - want).abs() <= 1.0, "{key}: {got}, want {want}");
    }
    let cpu = sample["cpu_stats"]["cpu_usage"]["total_usage"]
        .as_f64()
        .expect("total_usage");
    // prometheus is the template's second running container: 0.1 cores.
    assert!(
        (cpu - 1e8 * since).abs() <= 1.0,
        "cpu {cpu} after {since} s"
    );
    // preread never before the restart; precpu no more than cpu.
    assert!(seconds_between(&after["StartedAt"], &sample["preread"]) >= 0.0);
    let pre = sample["precpu_stats"]["cpu_usage"]["total_usage"]
        .as_f64()
        .expect("precpu");
    assert!(pre <= cpu);

    // The other container did not restart.
    let other = container(&task, "ecs-exporter");
    let other_rx = stats[other["DockerId"].as_str().expect("id")]["networks"]["eth0"]["rx_bytes"]
        .as_f64()
        .expect("rx");
    assert!(
        other_rx > 101_869.0,
        "ecs-exporter still counts from its template"
    );
}

#[test]
fn the_exporter_sees_a_restart_reset_the_containers_own_counters_but_not_a_shared_eni() {
    for (profile, restarted, bridge) in [
        ("ec2-bridge", "prometheus", true),
        ("ec2-awsvpc", "main", false),
    ] {
        let (sim, exporter, before) = task_for(profile, restarted);
        // Let the counters grow well past what a fresh start reaches in a few polls.
        std::thread::sleep(Duration::from_millis(500));
        let before = exporter.scrape_until(PATIENCE, |s| {
            of(s, "ecs_container_cpu_usage_seconds_total", restarted)
                > of(&before, "ecs_container_cpu_usage_seconds_total", restarted)
        });
        let cpu_before =
            of(&before, "ecs_container_cpu_usage_seconds_total", restarted).expect("cpu before");
        let rx_before = rx(&before, restarted, "eth0").expect("rx before");
        let started_before =
            of(&before, "ecs_container_start_time_seconds", restarted).expect("start time");

        sim.control(&format!("restart?container={restarted}"));
        let after = exporter.scrape_until(PATIENCE, |s| {
            of(s, "ecs_container_restarts_total", restarted) == Some(1.0)
                && of(s, "ecs_container_cpu_usage_seconds_total", restarted).is_some()
        });
        assert_eq!(
            of(&after, "ecs_container_restarts_total", restarted),
            Some(1.0),
            "{profile}"
        );
        let cpu_after =
            of(&after, "ecs_container_cpu_usage_seconds_total", restarted).expect("cpu after");
        assert!(
            cpu_after < cpu_before,
            "{profile}: {restarted}'s CPU counter restarted: {cpu_before} → {cpu_after}"
        );
        let rx_after = rx(&after, restarted, "eth0").expect("rx after");
        if bridge {
            assert!(
                rx_after < rx_before,
                "{profile}: new veth: {rx_before} → {rx_after}"
            );
        } else {
            assert!(
                rx_after > rx_before,
                "{profile}: the ENI lives on: {rx_before} → {rx_after}"
            );
        }
        assert!(
            of(&after, "ecs_container_start_time_seconds", restarted) > Some(started_before),
            "{profile}: StartedAt moved"
        );
        assert_eq!(
            of(&after, "ecs_container_restarts_total", "ecs-exporter"),
            Some(0.0),
            "{profile}: the other container did not restart"
        );
    }
}

#[test]
fn stop_then_start_gives_stopped_metadata_only_then_a_fresh_running_container() {
    let (sim, exporter, _) = task_for("fargate", "prometheus");

    sim.control("stop?container=prometheus&exit_code=2");
    let stopped = exporter.scrape_until(PATIENCE, |s| {
        of(s, "ecs_container_exit_code", "prometheus") == Some(2.0)
    });
    assert_eq!(
        of(&stopped, "ecs_container_exit_code", "prometheus"),
        Some(2.0)
    );
    assert_eq!(
        stopped.get(
            "ecs_container_known_status",
            &[("container_name", "prometheus"), ("status", "STOPPED")]
        ),
        Some(1.0)
    );
    assert_eq!(
        of(
            &stopped,
            "ecs_container_cpu_usage_seconds_total",
            "prometheus"
        ),
        None,
        "stats null: metadata families only"
    );
    let task = sim.json("/task");
    let meta = container(&task, "prometheus");
    assert_eq!(
        (meta["KnownStatus"].as_str(), meta["DesiredStatus"].as_str()),
        (Some("STOPPED"), Some("STOPPED"))
    );
    let stats = sim.json("/task/stats");
    assert_eq!(
        stats[meta["DockerId"].as_str().expect("id")],
        Value::Null,
        "Fargate: null"
    );

    sim.control("start?container=prometheus");
    let started = exporter.scrape_until(PATIENCE, |s| {
        of(s, "ecs_container_cpu_usage_seconds_total", "prometheus").is_some()
    });
    assert_eq!(
        of(&started, "ecs_container_exit_code", "prometheus"),
        None,
        "no ExitCode"
    );
    assert_eq!(
        started.get(
            "ecs_container_known_status",
            &[("container_name", "prometheus"), ("status", "RUNNING")]
        ),
        Some(1.0)
    );
    let cpu = of(
        &started,
        "ecs_container_cpu_usage_seconds_total",
        "prometheus",
    )
    .expect("cpu");
    assert!(cpu < 5.0, "counters from 0 at the start: {cpu} s");
    assert_eq!(
        of(&started, "ecs_container_restarts_total", "prometheus"),
        Some(0.0)
    );
}

#[test]
fn starting_an_unknown_name_adds_a_late_container_with_its_own_docker_id() {
    let (sim, exporter, _) = task_for("ec2-bridge", "prometheus");
    sim.control("start?container=late");
    let s = exporter.scrape_until(PATIENCE, |s| {
        of(s, "ecs_container_cpu_usage_seconds_total", "late").is_some()
    });
    let ids: Vec<String> = s
        .series("ecs_container_info")
        .iter()
        .filter_map(|(labels, _)| label(labels, "docker_id").map(str::to_owned))
        .collect();
    let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "every DockerId differs: {ids:?}");
    assert!(
        ids.len() >= 4,
        "nonessential, ecs-exporter, prometheus, late: {ids:?}"
    );
    assert_eq!(of(&s, "ecs_container_restarts_total", "late"), Some(0.0));
    let cpu = of(&s, "ecs_container_cpu_usage_seconds_total", "late").expect("cpu");
    assert!(cpu < 5.0, "a new container counts from 0: {cpu}");
}

#[test]
fn health_control_moves_the_exporters_health_status() {
    let (sim, exporter, s) = task_for("ec2-awsvpc", "ecs-exporter");
    let status = |s: &Scrape, state: &str| {
        s.get(
            "ecs_container_health_status",
            &[("container_name", "ecs-exporter"), ("status", state)],
        )
    };
    assert_eq!(status(&s, "healthy"), Some(1.0));
    for (query, state) in [
        ("unhealthy", "unhealthy"),
        ("unknown", "unknown"),
        ("healthy", "healthy"),
    ] {
        sim.control(&format!("health?container=ecs-exporter&status={query}"));
        let s = exporter.scrape_until(PATIENCE, |s| status(s, state) == Some(1.0));
        assert_eq!(status(&s, state), Some(1.0), "{state}");
        let ones = ["healthy", "unhealthy", "unknown"]
            .iter()
            .filter(|st| status(&s, st) == Some(1.0))
            .count();
        assert_eq!(ones, 1, "one current state");
    }
    let meta = container(&sim.json("/task"), "ecs-exporter");
    assert_eq!(meta["Health"]["status"], "HEALTHY");
    assert!(
        meta["Health"]["statusSince"]
            .as_str()
            .and_then(rfc3339::parse)
            .is_some()
    );
}

#[test]
fn bad_controls_get_400_with_a_json_string_and_change_nothing() {
    let sim = Sim::start(&["--profile", "ec2-awsvpc", "--refresh-secs", "0"]);
    let before = sim.json("/task");
    for (path, needle) in [
        (
            "/control/restart?container=nope",
            "unknown container \"nope\"",
        ),
        ("/control/restart", "missing container"),
        ("/control/stop?container=main&exit_code=x", "bad exit_code"),
        ("/control/health?container=main&status=sick", "bad status"),
        ("/control/start?container=main", "is running"),
        ("/control/restart?container=nonessential", "/control/start"),
        (
            "/control/stop?container=~internal~ecs~pause",
            "pause container",
        ),
    ] {
        let (status, head, body) = http_get(sim.addr, path, &[]).expect("GET");
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            head.to_ascii_lowercase().contains("application/json"),
            "{head}"
        );
        let message: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        let text = message
            .as_str()
            .unwrap_or_else(|| panic!("not a JSON string: {body}"));
        assert!(text.contains(needle), "{path}: {text}");
    }
    let after = sim.json("/task");
    let meta = |t: &Value| -> Vec<(Value, Value, Value)> {
        t["Containers"]
            .as_array()
            .expect("Containers")
            .iter()
            .map(|c| {
                (
                    c["KnownStatus"].clone(),
                    c["RestartCount"].clone(),
                    c["Health"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(meta(&before), meta(&after));
}
