//! A fleet (issue #18): 20 simulated tasks (the four profiles in turn, `--life`, a task id each),
//! one exporter each, found by one real Prometheus through a `file_sd` file written as
//! prometheus-ecs-discovery writes it: one entry per container with a `PROMETHEUS_EXPORTER_PORT`
//! docker label, the exporter's (`ecs-container-exporter`) and, in every task, the application's
//! own exporter (the fixtures' `ecs-exporter` container), each with the task's labels. The scrape
//! job is the README's, `monitoring/discovery/file-sd.yml` as it is (`honor_labels: true`, keep
//! the exporter's container, drop the tool's labels), scraping every second.
//!
//! Checks: every exporter a target, up, and the application's exporters dropped; no series
//! collides across tasks: a task is told by its target labels (`job`, `instance`) plus its one
//! `ecs_task_info` (one per target, one target per task ARN, each naming the task discovery named),
//! and with `instance` replaced by that task ARN every series is still one of its own (and
//! without it the tasks of one profile would look alike: the check is not vacuous); Prometheus
//! counted no duplicate or out-of-order sample; none of the tool's labels on a series; a family on
//! `--metric-denylist` (SPEC §6) absent at Prometheus while the family beside it is there for
//! every task.
//!
//! Needs `prometheus` on PATH: under `CI=true` its absence fails the test; elsewhere the test
//! prints one "skipping:" line and passes. `tests/bench/fleet.sh` (`make fleet`) is the measured
//! version of the same fleet.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use common::TempDir;
use common::prometheus::{Prometheus, get, prometheus_version};
use common::{EXPORTER, Exporter, Sim, http_get, wait_for};

const N: usize = 20;
const PROFILES: [&str; 4] = ["fargate", "ec2-bridge", "managed-instances", "ec2-awsvpc"];
const JOB: &str = "ecs-container-exporter";
/// The family denied, present in every profile without the filter; and the one beside it, kept.
const DENIED: &str = "ecs_container_memory_rss_bytes";
const KEPT: &str = "ecs_container_memory_working_set_bytes";
/// The container that runs our exporter (the README's task definition) and, in every simulated
/// task, the application's own exporter, which discovery lists too and the job drops.
const EXPORTER_CONTAINER: &str = "ecs-container-exporter";
const APP_EXPORTER: &str = "ecs-exporter";
/// The recipe's path of the file, replaced by the test's.
const RECIPE_FILE: &str = "/etc/prometheus/ecs_file_sd.yml";

/// Task `i`'s id: 32 hex digits, as ECS writes them.
fn task_id(i: usize) -> String {
    format!("f1ee7{i:027x}")
}

/// The `file_sd` entries prometheus-ecs-discovery writes for the task `task` (its `/task` JSON):
/// the exporter's container, scraped at `target`, and the application's own exporter.
fn discovery_entries(task: &Value, target: &str) -> [Value; 2] {
    let text = |key: &str| task[key].as_str().unwrap_or_default().to_owned();
    let arn = text("TaskARN");
    let parts: Vec<&str> = arn.split(':').collect();
    let cluster = text("Cluster");
    let cluster_name = cluster.rsplit('/').next().unwrap_or_default().to_owned();
    let cluster_arn = if cluster.starts_with("arn:") {
        cluster
    } else {
        format!("arn:aws:ecs:{}:{}:cluster/{cluster}", parts[3], parts[4])
    };
    let group = match task["ServiceName"].as_str() {
        Some(service) => format!("service:{service}"),
        None => format!("family:{}", text("Family")),
    };
    let id = arn.rsplit('/').next().unwrap_or_default();
    let containers = task["Containers"].as_array().expect("Containers");
    let app = containers
        .iter()
        .find(|c| c["Name"] == APP_EXPORTER)
        .unwrap_or_else(|| panic!("no {APP_EXPORTER} container in {arn}"));
    let entry = |target: &str, name: &str, container_arn: &str, image: &str| {
        json!({
            "targets": [target],
            "labels": {
                "task_arn": arn,
                "task_name": text("Family"),
                "task_revision": text("Revision"),
                "task_group": group,
                "cluster_arn": cluster_arn,
                "container_name": name,
                "container_arn": container_arn,
                "docker_image": image,
                "__metrics_path__": "/metrics",
            }
        })
    };
    let ours = format!(
        "arn:aws:ecs:{}:{}:container/{cluster_name}/{id}/00000000-0000-4000-8000-{id:.12}",
        parts[3], parts[4]
    );
    [
        entry(
            target,
            EXPORTER_CONTAINER,
            &ours,
            "ecs-container-exporter:0.1.0",
        ),
        entry(
            "127.0.0.1:9779",
            APP_EXPORTER,
            app["ContainerARN"].as_str().unwrap_or_default(),
            app["Image"].as_str().unwrap_or_default(),
        ),
    ]
}

/// The entries as YAML (block style, every value a double-quoted scalar), as the tool writes.
fn file_sd_yaml(entries: &[Value]) -> String {
    let mut out = String::new();
    for e in entries {
        out.push_str("- targets:\n");
        for t in e["targets"].as_array().expect("targets") {
            out.push_str(&format!("  - {t}\n"));
        }
        out.push_str("  labels:\n");
        for (k, v) in e["labels"].as_object().expect("labels") {
            out.push_str(&format!("    {k}: {v}\n"));
        }
    }
    out
}

/// The active targets, each as (address, its labels after discovery).
fn active_targets(prometheus: &Prometheus) -> Vec<(String, bool, String, Value)> {
    let data = prometheus.api("/api/v1/targets?state=active");
    data["activeTargets"]
        .as_array()
        .expect("activeTargets")
        .iter()
        .map(|t| {
            (
                t["labels"]["instance"].as_str().unwrap_or("").to_owned(),
                t["health"] == "up",
                t["lastError"].as_str().unwrap_or("").to_owned(),
                t["labels"].clone(),
            )
        })
        .collect()
}

/// The `instance` of each series of a query's result.
fn instances(result: &[Value]) -> BTreeSet<String> {
    result
        .iter()
        .map(|s| s["metric"]["instance"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn a_fleet_of_twenty_tasks_is_discovered_scraped_and_told_apart() {
    if prometheus_version().is_none() {
        let why = "the `prometheus` binary is not on PATH (apt-get install -y prometheus; \
                   .ci/run installs it)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true and {why}: the fleet test cannot run");
        }
        eprintln!("skipping: tests/fleet.rs: {why}");
        return;
    }
    let started = Instant::now();
    let help = Command::new(EXPORTER)
        .arg("--help")
        .output()
        .expect("--help");
    let has_denylist = String::from_utf8_lossy(&help.stdout).contains("--metric-denylist");
    let mut args = vec!["--interval", "1"];
    if has_denylist {
        args.extend(["--metric-denylist", DENIED]);
    }

    let ids: Vec<String> = (0..N).map(task_id).collect();
    let sims: Vec<Sim> = (0..N)
        .map(|i| Sim::start(&["--profile", PROFILES[i % 4], "--life", "--task-id", &ids[i]]))
        .collect();
    let exporters: Vec<Exporter> = sims
        .iter()
        .map(|s| Exporter::start(&s.url, &args, &[]))
        .collect();
    let tasks: Vec<Value> = sims
        .iter()
        .map(|s| {
            let (status, _, body) = http_get(s.addr, "/task", &[]).expect("GET /task");
            assert_eq!(status, 200, "{body}");
            serde_json::from_str(&body).expect("/task JSON")
        })
        .collect();
    let entries: Vec<Value> = tasks
        .iter()
        .zip(&exporters)
        .flat_map(|(t, e)| discovery_entries(t, &e.addr.to_string()))
        .collect();
    // instance (our exporter's address) → the task ARN its discovery entry names.
    let arn_of: BTreeMap<String, String> = entries
        .iter()
        .filter(|e| e["labels"]["container_name"] == EXPORTER_CONTAINER)
        .map(|e| {
            let target = e["targets"][0].as_str().expect("target").to_owned();
            let arn = e["labels"]["task_arn"].as_str().expect("arn").to_owned();
            (target, arn)
        })
        .collect();
    let arns: BTreeSet<&String> = arn_of.values().collect();
    assert_eq!((arn_of.len(), arns.len()), (N, N), "every task its own ARN");

    // The README's job, monitoring/discovery/file-sd.yml as it is, reading the test's file.
    let sd = TempDir::new("fleet-sd");
    let sd_file = sd.0.join("ecs_file_sd.yml");
    std::fs::write(&sd_file, file_sd_yaml(&entries)).expect("write file_sd");
    let recipe = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("monitoring/discovery/file-sd.yml");
    let recipe = std::fs::read_to_string(&recipe).expect("monitoring/discovery/file-sd.yml");
    assert!(
        recipe.contains(RECIPE_FILE),
        "file-sd.yml reads {RECIPE_FILE}"
    );
    assert!(
        recipe.contains(&format!("job_name: {JOB}")),
        "file-sd.yml names the job {JOB}"
    );
    let prometheus = Prometheus::start(&format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n{}",
        recipe.replace(RECIPE_FILE, &sd_file.display().to_string())
    ));

    // Every exporter a target and up; the applications' own exporters dropped by the job.
    let all_up = wait_for(Duration::from_secs(30), || {
        let targets = active_targets(&prometheus);
        targets.len() == N && targets.iter().all(|(_, up, _, _)| *up)
    });
    let targets = active_targets(&prometheus);
    assert!(
        all_up,
        "not every target up after 30 s ({} active): {:?}\n{}",
        targets.len(),
        targets
            .iter()
            .filter(|t| !t.1)
            .map(|t| (&t.0, &t.2))
            .collect::<Vec<_>>(),
        prometheus.log()
    );
    let found: BTreeSet<&str> = targets.iter().map(|t| t.0.as_str()).collect();
    let ours: BTreeSet<&str> = arn_of.keys().map(String::as_str).collect();
    assert_eq!(found, ours, "the targets are our exporters");
    for (instance, _, last_error, labels) in &targets {
        assert_eq!(last_error, "", "{instance}");
        let names: BTreeSet<&str> = labels
            .as_object()
            .expect("labels")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            names,
            BTreeSet::from(["instance", "job"]),
            "{instance}: {labels}"
        );
    }
    let dropped = prometheus.api("/api/v1/targets?state=dropped");
    let dropped = dropped["droppedTargets"].as_array().map_or(0, Vec::len);
    assert_eq!(dropped, N, "the applications' own exporters dropped");

    let stored = wait_for(Duration::from_secs(15), || {
        prometheus.query("ecs_task_info", None).len() == N
            && instances(&prometheus.query(KEPT, None)).len() == N
    });
    assert!(stored, "ecs_task_info or {KEPT} not stored for every task");

    // Every query below at one instant, so that their counts agree (a series that a poll adds
    // between two queries, like a ratio after its first window, is in both or in neither).
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let query = |promql: &str| prometheus.query(promql, Some(at));
    let up = query(&format!("up{{job=\"{JOB}\"}}"));
    assert_eq!(up.len(), N, "{up:?}");
    assert!(up.iter().all(|s| s["value"][1] == "1"), "{up:?}");

    // One ecs_task_info per target, naming the task that discovery named for that target.
    let infos = query("ecs_task_info");
    assert_eq!(instances(&infos).len(), N, "one ecs_task_info per target");
    for info in &infos {
        let m = &info["metric"];
        let instance = m["instance"].as_str().expect("instance");
        assert_eq!(
            m["task_arn"].as_str(),
            arn_of.get(instance).map(String::as_str),
            "ecs_task_info of {instance}"
        );
    }

    // No collision: with `instance` replaced by the task ARN of its ecs_task_info, every series
    // is still one of its own. (Arithmetic and aggregations drop __name__: it is copied into a
    // label first.) Without the task ARN, the tasks of one profile look alike.
    let named =
        format!("label_replace({{job=\"{JOB}\"}}, \"name\", \"$1\", \"__name__\", \"(.+)\")");
    let by_task = format!("{named} * on (instance) group_left (task_arn) ecs_task_info");
    let collisions = query(&format!("count without (instance) ({by_task}) > 1"));
    assert!(
        collisions.is_empty(),
        "{} series of two tasks alike, e.g. {:?}",
        collisions.len(),
        collisions.first()
    );
    let joined = query(&format!("count({by_task})"));
    let total = query(&format!("count({{job=\"{JOB}\"}})"));
    assert_eq!(
        joined.first().map(|s| s["value"][1].clone()),
        total.first().map(|s| s["value"][1].clone()),
        "every series joins its task's ecs_task_info"
    );
    let alike = query(&format!("count without (instance) ({named}) > 1"));
    assert!(
        !alike.is_empty(),
        "tasks of one profile should look alike without their task ARN"
    );
    let (_, metrics) = get(prometheus.addr, "/metrics").expect("Prometheus' own /metrics");
    for problem in [
        "prometheus_target_scrapes_sample_duplicate_timestamp_total",
        "prometheus_target_scrapes_sample_out_of_order_total",
    ] {
        let value = metrics
            .lines()
            .find_map(|l| l.strip_prefix(problem)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("Prometheus has no {problem}"));
        assert_eq!(value.trim(), "0", "{problem}");
    }
    // None of the tool's labels made it onto a series.
    for label in [
        "task_arn",
        "task_name",
        "cluster_arn",
        "container_arn",
        "docker_image",
    ] {
        let with = query(&format!(
            "count({{job=\"{JOB}\", {label}!=\"\", __name__!=\"ecs_task_info\"}})"
        ));
        assert!(
            with.is_empty(),
            "series with the tool's label {label}: {with:?}"
        );
    }
    let ours_named = query(&format!("{{container_name=\"{EXPORTER_CONTAINER}\"}}"));
    assert!(
        ours_named.is_empty(),
        "the tool's container_name on a series"
    );

    // The denylisted family: absent at Prometheus, its neighbour there for every task.
    let denied = query(DENIED);
    eprintln!(
        "fleet: {N} targets up, {} series, no collision, {} series of {DENIED}, in {:.1} s",
        total
            .first()
            .map(|s| s["value"][1].as_str().unwrap_or("?").to_owned())
            .unwrap_or_default(),
        denied.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        has_denylist,
        "the exporter has no --metric-denylist yet (SPEC §6, the family filters, built on another \
         branch): merge main once they land. Everything else of the fleet passed; {DENIED} is \
         stored for {} of {N} tasks without the filter",
        instances(&denied).len()
    );
    assert!(
        denied.is_empty(),
        "{DENIED} is on --metric-denylist but Prometheus stores {} series of it",
        denied.len()
    );
}
