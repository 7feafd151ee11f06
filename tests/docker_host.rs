//! `--docker` against the real Docker engine of this machine.
//!
//! Builds the static musl binaries (`cargo build --profile dist --target x86_64-unknown-linux-musl
//! --bins`, into the target directory `make static` uses) and a throw-away `FROM scratch` image of
//! them, nothing pulled. Then starts:
//! - `sim`: `ecs-task-sim` serving 300 containers' worth of JSON, limited to `--cpus 0.5
//!   --memory 32m`;
//! - `burn1`, `burn2`: exporters in `sim`'s network namespace polling it every 10 ms, enough to
//!   keep `sim` at its CPU limit (a steady 0.5 CPU to compare with `docker stats`).
//!
//! and runs OUR exporter on the host with `--docker` (the default socket, or `DOCKER_HOST` when
//! set), `--interval 2`, nothing excluded. It checks: every container appears by name with its
//! image; `sim`'s limits match `docker inspect` (`NanoCpus` → 512 CPU units, `Memory` → 32 MiB and
//! 33554432 bytes) and the burners have none; `_task_` rows are the sums of the container rows;
//! CPU and memory agree with `docker stats` (same formulas, different sampling windows: CPU within
//! 0.1 of a CPU for the saturated `sim`, the working set within 25 % or 3 MiB); `promtool check
//! metrics` is clean (skipped without `promtool`); a container started later appears
//! and one stopped disappears, with every `ecs_exporter_poll_errors_total` at 0.
//!
//! Where no Docker engine answers `docker version`, the test says so in one line and passes
//! (fails under `CI=true`).
//! Containers, the image and the build directory are removed even on failure.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::docker::{AMD64, Cleanup, cargo_dist_build, dist_binary, docker, no_engine};
use common::prometheus::{promtool_check_metrics, promtool_installed};
use common::{Launch, Scrape, label, parse_strict, skip, task_counters};

#[test]
fn docker_mode_reads_the_real_engine() {
    if no_engine() {
        return;
    }
    let pid = std::process::id();
    let name = |what: &str| format!("ece-dockerhost-{pid}-{what}");
    let image = format!("ece-dockerhost-test:{pid}");
    let (sim, burn1, burn2, late) = (name("sim"), name("burn1"), name("burn2"), name("late"));
    let mut cleanup = Cleanup {
        containers: vec![burn1.clone(), burn2.clone(), late.clone(), sim.clone()],
        networks: Vec::new(),
        images: vec![image.clone()],
        dir: None,
    };

    // The image: both static binaries, nothing else.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name("image"));
    cleanup.dir = Some(dir.clone());
    let bins = build_static_binaries();
    std::fs::create_dir_all(&dir).expect("image directory");
    for bin in ["ecs-container-exporter", "ecs-task-sim"] {
        std::fs::copy(bins.join(bin), dir.join(bin)).expect("copy binary");
    }
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY ecs-container-exporter ecs-task-sim /\nENTRYPOINT [\"/ecs-task-sim\"]\n",
    )
    .expect("Dockerfile");
    docker(&["build", "-q", "-t", &image, &dir.to_string_lossy()]).expect("docker build");

    docker(&[
        "run",
        "-d",
        "--name",
        &sim,
        "--cpus",
        "0.5",
        "--memory",
        "32m",
        &image,
        "--listen",
        "0.0.0.0:51678",
        "--profile",
        "ec2-bridge",
        "--containers",
        "300",
    ])
    .expect("start sim");
    for (burner, port) in [(&burn1, "9546"), (&burn2, "9547")] {
        docker(&[
            "run",
            "-d",
            "--name",
            burner,
            "--network",
            &format!("container:{sim}"),
            "--entrypoint",
            "/ecs-container-exporter",
            &image,
            "--metadata-url",
            "http://127.0.0.1:51678",
            "--interval",
            "0.01",
            "--exporter-port",
            port,
            "--log-level",
            "error",
        ])
        .expect("start burner");
    }

    // On the host, nothing excluded.
    let exporter = Launch::new()
        .docker()
        .args(&["--interval", "2", "--exclude", ""])
        .start();
    let ours = [&sim, &burn1, &burn2];
    let s = exporter.scrape_until(Duration::from_secs(30), |s| {
        ours.iter().all(|c| {
            s.get("ecs_task_cpu_usage_ratio", &[("container_name", c)])
                .is_some()
        })
    });
    for c in ours {
        assert!(
            s.get("ecs_task_cpu_usage_ratio", &[("container_name", c)])
                .is_some(),
            "{c} has no CPU ratio:\n{}",
            exporter.scrape_text()
        );
        let info = s
            .series("ecs_container_info")
            .into_iter()
            .find(|(labels, _)| labels.iter().any(|(k, v)| k == "container_name" && v == c))
            .unwrap_or_else(|| panic!("no ecs_container_info for {c}"));
        assert!(
            info.0.iter().any(|(k, v)| k == "image" && *v == image),
            "{info:?}"
        );
        let id = docker(&["inspect", "--format", "{{.Id}}", c]).expect("inspect id");
        assert!(
            info.0.iter().any(|(k, v)| k == "docker_id" && *v == id),
            "{info:?}"
        );
        assert_eq!(
            s.get(
                "ecs_container_known_status",
                &[("container_name", c), ("status", "RUNNING")]
            ),
            Some(1.0)
        );
    }
    assert_eq!(
        s.get("ecs_task_info", &[("launch_type", "DOCKER")]),
        Some(1.0)
    );

    // Limits, as `docker inspect` has them.
    let limits = docker(&[
        "inspect",
        "--format",
        "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}}",
        &sim,
    ])
    .expect("inspect limits");
    assert_eq!(limits, "500000000 33554432");
    let sim_row = [("container_name", sim.as_str())];
    assert_eq!(s.get("ecs_task_cpu_limit", &sim_row), Some(512.0));
    assert_eq!(s.get("ecs_task_mem_limit", &sim_row), Some(32.0));
    assert_eq!(
        s.get("ecs_container_memory_limit_bytes", &sim_row),
        Some(33_554_432.0)
    );
    for c in [&burn1, &burn2] {
        let row = [("container_name", c.as_str())];
        assert_eq!(s.get("ecs_task_cpu_limit", &row), None);
        assert_eq!(s.get("ecs_task_mem_limit", &row), None);
        assert_eq!(s.get("ecs_container_memory_limit_bytes", &row), None);
    }
    // Containers in `sim`'s namespace report its counters; they are not counted twice.
    assert!(
        s.get(
            "ecs_task_network_rx_bytes_total",
            &[("container_name", &burn1), ("interface", "eth0")]
        )
        .is_none()
    );
    assert!(
        s.get(
            "ecs_task_network_rx_bytes_total",
            &[("container_name", &sim), ("interface", "eth0")]
        )
        .is_some()
    );

    check_task_rows(&s);
    lint(&exporter.scrape_text());

    // CPU and memory against `docker stats` over about the same seconds.
    let before = exporter.scrape();
    let mut samples = Vec::new();
    for _ in 0..3 {
        samples.extend(docker_stats(&[&sim, &burn1, &burn2]));
    }
    let after = exporter.scrape();
    let ratio = |s: &Scrape| s.value("ecs_task_cpu_usage_ratio", &sim_row);
    let ours_cores = (ratio(&before) + ratio(&after)) / 2.0 * 0.5;
    let theirs: Vec<f64> = samples
        .iter()
        .filter(|x| x.name == sim)
        .map(|x| x.cpu_cores)
        .collect();
    let theirs_cores = theirs.iter().sum::<f64>() / theirs.len() as f64;
    eprintln!(
        "sim CPU: exporter ratio {:.4} and {:.4} (over the 0.5-CPU limit) = {ours_cores:.4} CPUs; \
         docker stats {theirs:.4?} = {theirs_cores:.4} CPUs",
        ratio(&before),
        ratio(&after),
    );
    assert!(
        (ours_cores - theirs_cores).abs() <= 0.1,
        "sim uses {ours_cores} CPUs by the exporter, {theirs_cores} by docker stats"
    );
    for c in [&burn1, &burn2] {
        let row = [("container_name", c.as_str())];
        let online: f64 = docker(&["info", "--format", "{{.NCPU}}"])
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1.0);
        let ours = (before.value("ecs_task_cpu_usage_ratio", &row)
            + after.value("ecs_task_cpu_usage_ratio", &row))
            / 2.0
            * online;
        let theirs: Vec<f64> = samples
            .iter()
            .filter(|x| x.name == **c)
            .map(|x| x.cpu_cores)
            .collect();
        eprintln!(
            "{c} CPU: exporter {ours:.4} CPUs (over {online} host CPUs), docker stats {theirs:.4?}"
        );
        assert!(ours > 0.0 && theirs.iter().all(|&t| t > 0.0));
    }
    // Memory moves between readings (the burners parse 300-container bodies): the exporter's two
    // readings and docker's three must overlap, with a slack of 25 % or 3 MiB.
    for c in [&sim, &burn1, &burn2] {
        let row = [("container_name", c.as_str())];
        let ours =
            [&before, &after].map(|s| s.value("ecs_container_memory_working_set_bytes", &row));
        let usage = after.value("ecs_task_mem_usage", &row);
        let theirs: Vec<f64> = samples
            .iter()
            .filter(|x| x.name == **c)
            .map(|x| x.mem_bytes)
            .collect();
        let mib = |b: &f64| b / 1_048_576.0;
        eprintln!(
            "{c} memory: exporter working set {:.2?} MiB (usage with cache {:.2} MiB), docker stats {:.2?} MiB",
            ours.iter().map(mib).collect::<Vec<_>>(),
            mib(&usage),
            theirs.iter().map(mib).collect::<Vec<_>>()
        );
        let (lo, hi) = theirs
            .iter()
            .fold((f64::MAX, 0.0f64), |(lo, hi), &t| (lo.min(t), hi.max(t)));
        let slack = (0.25 * hi).max(3.0 * 1_048_576.0);
        assert!(
            ours.iter().any(|&o| o >= lo - slack && o <= hi + slack),
            "{c}: working set {ours:?} vs docker stats {theirs:?}"
        );
        assert!(usage >= ours[1]);
    }
    let sim_limit = samples.iter().find(|x| x.name == sim).map(|x| x.mem_limit);
    assert_eq!(
        sim_limit,
        Some(33_554_432.0),
        "docker stats shows the 32 MiB limit"
    );

    // Churn: a container started now appears, one stopped disappears; no poll fails.
    docker(&[
        "run",
        "-d",
        "--name",
        &late,
        &image,
        "--listen",
        "0.0.0.0:51678",
    ])
    .expect("start late");
    let s = exporter.scrape_until(Duration::from_secs(20), |s| {
        s.get("ecs_task_mem_usage", &[("container_name", &late)])
            .is_some()
    });
    assert!(
        s.get("ecs_task_mem_usage", &[("container_name", &late)])
            .is_some(),
        "{late} never appeared"
    );
    let before = task_counters(&s);
    docker(&["stop", "-t", "1", &burn2]).expect("stop burn2");
    let gone = |s: &Scrape| {
        !s.samples.keys().any(|(_, labels)| {
            labels
                .iter()
                .any(|(k, v)| k == "container_name" && *v == burn2)
        })
    };
    let s = exporter.scrape_until(Duration::from_secs(20), gone);
    assert!(gone(&s), "{burn2} still exported after docker stop");
    // Two more polls with the churn behind them.
    let polls = s.value("ecs_exporter_last_success_timestamp_seconds", &[]);
    let s = exporter.scrape_until(Duration::from_secs(15), |s| {
        s.value("ecs_exporter_last_success_timestamp_seconds", &[]) > polls + 2.0
    });
    check_task_rows(&s);
    // The task's counters did not go down when burn2 left (its last values stay in them).
    for (series, was) in before {
        let now = task_counters(&s).get(&series).copied();
        assert!(
            now.is_some_and(|now| now >= was),
            "{series:?}: {was} -> {now:?}"
        );
    }
    assert_eq!(s.value("ecs_exporter_up", &[]), 1.0);
    for (labels, v) in s.series("ecs_exporter_poll_errors_total") {
        assert_eq!(v, 0.0, "poll errors {labels:?}");
    }
    lint(&exporter.scrape_text());
    let logs = exporter.stop_and_logs();
    assert!(!logs.contains("poll failed"), "{logs}");
    drop(cleanup);
}

/// `_task_` rows of gauges are the sums of the container rows of the same scrape (nothing is
/// excluded); of counters, at least that: containers that left the host (ours, or other
/// processes' on a shared engine) keep their last values in the task total (SPEC §3.1.1).
fn check_task_rows(s: &Scrape) {
    let rows = |family: &str| -> (f64, Option<f64>) {
        let mut sum = 0.0;
        let mut task = None;
        for (labels, v) in s.series(family) {
            if labels
                .iter()
                .any(|(k, v)| k == "container_name" && v == "_task_")
            {
                task = Some(v);
            } else {
                sum += v;
            }
        }
        (sum, task)
    };
    for family in [
        "ecs_task_mem_usage",
        "ecs_task_mem_cache",
        "ecs_task_disk_read_bytes_total",
    ] {
        // A family without data anywhere (blkio on some cgroup v2 hosts) has no rows at all.
        if s.has_family(family) {
            let (sum, task) = rows(family);
            let task = task.unwrap_or_else(|| panic!("no _task_ row in {family}"));
            if family.ends_with("_total") {
                assert!(task >= sum, "{family}: task {task} < containers {sum}");
            } else {
                assert_eq!(task, sum, "{family}");
            }
        }
    }
    let mut interfaces: std::collections::BTreeMap<String, (f64, Option<f64>)> = Default::default();
    for (labels, v) in s.series("ecs_task_network_rx_bytes_total") {
        let (Some(name), Some(interface)) =
            (label(labels, "container_name"), label(labels, "interface"))
        else {
            continue;
        };
        let entry = interfaces.entry(interface.to_owned()).or_default();
        if name == "_task_" {
            entry.1 = Some(v);
        } else {
            entry.0 += v;
        }
    }
    for (interface, (sum, task)) in interfaces {
        let task = task.unwrap_or_else(|| panic!("no _task_ rx bytes on {interface}"));
        assert!(
            task >= sum,
            "rx bytes on {interface}: task {task} < containers {sum}"
        );
    }
    // No task limit: the task ratio is Σ cores over the host's CPUs; a container's ratio is over
    // its own limit, else over the host's CPUs too.
    let online: f64 = docker(&["info", "--format", "{{.NCPU}}"])
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1.0);
    assert!(
        s.get("ecs_task_cpu_limit", &[("container_name", "_task_")])
            .is_none()
    );
    assert!(
        s.get("ecs_task_mem_limit", &[("container_name", "_task_")])
            .is_none()
    );
    let mut cores = 0.0;
    let mut task = None;
    for (labels, v) in s.series("ecs_task_cpu_usage_ratio") {
        let Some((_, name)) = labels.iter().find(|(k, _)| k == "container_name") else {
            continue;
        };
        if name == "_task_" {
            task = Some(v);
            continue;
        }
        let limit = s
            .get("ecs_task_cpu_limit", &[("container_name", name)])
            .map_or(online, |units| units / 1024.0);
        cores += v * limit;
    }
    let task = task.expect("a _task_ CPU ratio");
    assert!(
        (task - cores / online).abs() < 1e-9,
        "_task_ ratio {task} vs Σ cores {cores} / {online}"
    );
}

/// One `docker stats --no-stream` reading of each container.
struct DockerStat {
    name: String,
    cpu_cores: f64,
    mem_bytes: f64,
    mem_limit: f64,
}

fn docker_stats(names: &[&str]) -> Vec<DockerStat> {
    let mut args = vec!["stats", "--no-stream", "--format", "{{json .}}"];
    args.extend_from_slice(names);
    let out = docker(&args).expect("docker stats");
    out.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("docker stats JSON");
            let field = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_owned();
            let percent: f64 = field("CPUPerc")
                .trim_end_matches('%')
                .parse()
                .expect("CPUPerc");
            let mem = field("MemUsage");
            let (used, limit) = mem.split_once(" / ").expect("MemUsage a / b");
            DockerStat {
                name: field("Name"),
                cpu_cores: percent / 100.0,
                mem_bytes: bytes(used),
                mem_limit: bytes(limit),
            }
        })
        .collect()
}

/// `12.13MiB` → bytes (the docker CLI's binary units).
fn bytes(s: &str) -> f64 {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().unwrap_or_else(|_| panic!("size {s:?}"));
    let scale = match unit {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1_048_576.0,
        "GiB" => 1_073_741_824.0,
        "TiB" => 1_099_511_627_776.0,
        other => panic!("unit {other:?} in {s:?}"),
    };
    n * scale
}

/// `promtool check metrics` on a scrape, and the strict parse: clean ([`skip`]ped without
/// promtool).
fn lint(text: &str) {
    if !promtool_installed() {
        return skip("promtool is not installed: the scrape is not linted");
    }
    let (ok, report) = promtool_check_metrics(text);
    assert!(ok && report.trim().is_empty(), "promtool: {report}\n{text}");
    parse_strict(text).expect("strict parse");
}

/// The static binaries, built where `make static` and the other tests build them (the same
/// build: warm, nothing to do; after a commit, one link of each binary for all these tests).
fn build_static_binaries() -> PathBuf {
    let started = Instant::now();
    cargo_dist_build(AMD64, &["--bins"], None);
    eprintln!("static binaries built in {:.1?}", started.elapsed());
    dist_binary(AMD64, "ecs-container-exporter")
        .parent()
        .expect("the dist directory")
        .to_path_buf()
}
