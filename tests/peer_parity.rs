//! Parity with prometheus-community/ecs_exporter v0.4.0: for its four real captured tasks, every
//! number we share with the peer (its own snapshot output, `tests/fixtures/peer/*/…_metrics.txt`)
//! must be the same number in our scrape of the same payloads. Where the peer is wrong by design
//! (see the mapping notes below), the difference is named, not silently skipped.

mod common;

use common::{Scrape, parse_sample, scrape_fixture};
use ecs_container_exporter::core::compute::Filter;

struct Case {
    dir: &'static str,
    task: &'static str,
    stats: &'static str,
    /// cgroup v1 (the peer's page cache reads v1 `cache`).
    cgroup_v1: bool,
    /// bridge mode: peer network rows are the last container's in `/task` order.
    bridge: bool,
    /// Containers whose `Limits.Memory` is 0 (the peer writes 0 bytes; we fall back to the task).
    zero_memory_limit: &'static [&'static str],
    /// How many peer values are compared (by-design differences are asserted, not counted).
    mapped: usize,
}

const CASES: [Case; 4] = [
    Case {
        dir: "v0.4.0",
        task: "fargate-cgroupv1-task.json",
        stats: "fargate-cgroupv1-task-stats.json",
        cgroup_v1: true,
        bridge: false,
        zero_memory_limit: &[],
        mapped: 27,
    },
    Case {
        dir: "v0.4.0",
        task: "ec2-bridge-cgroupv2-task.json",
        stats: "ec2-bridge-cgroupv2-task-stats.json",
        cgroup_v1: false,
        bridge: true,
        zero_memory_limit: &[],
        mapped: 21,
    },
    Case {
        dir: "pr112",
        task: "fargate-cgroupv1-task-2025-04.json",
        stats: "fargate-cgroupv1-task-stats-2025-04.json",
        cgroup_v1: true,
        bridge: false,
        zero_memory_limit: &[],
        mapped: 27,
    },
    Case {
        dir: "pr112",
        task: "ec2-awsvpc-cgroupv2-task.json",
        stats: "ec2-awsvpc-cgroupv2-task-stats.json",
        cgroup_v1: false,
        bridge: false,
        zero_memory_limit: &["main", "~internal~ecs~pause"],
        mapped: 23,
    },
];

#[derive(Default)]
struct Tally {
    mapped: usize,
    failures: Vec<String>,
}

impl Tally {
    fn number(&mut self, what: String, ours: Option<f64>, peer: f64) {
        self.mapped += 1;
        match ours {
            Some(v) if close(v, peer) => {}
            other => self
                .failures
                .push(format!("{what}: ours {other:?}, peer says {peer}")),
        }
    }

    fn string(&mut self, what: &str, ours: &str, peer: &str) {
        self.mapped += 1;
        if ours != peer {
            self.failures.push(format!(
                "ecs_task_info{{{what}}}: ours {ours:?}, peer {peer:?}"
            ));
        }
    }
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// The container whose network row the peer keeps in bridge mode: the last one in `/task`
/// order that reports the interface.
fn last_with_interface(ours: &Scrape, task: &str, interface: &str) -> String {
    let task = ecs_container_exporter::core::payload::parse_task(&common::fixture(task)).unwrap();
    task.containers
        .iter()
        .rev()
        .map(|c| c.name.clone())
        .find(|name| {
            ours.get(
                "ecs_task_network_rx_bytes_total",
                &[("container_name", name), ("interface", interface)],
            )
            .is_some()
        })
        .expect("a container with that interface")
}

fn check(case: &Case) -> (usize, Vec<String>) {
    // As the bar runs us: nothing excluded (the peer drops no container).
    let filter = Filter {
        include: Vec::new(),
        exclude: vec!["__none__".into()],
    };
    let ours = scrape_fixture(case.task, case.stats, &filter);
    let peer_name = if case.task.starts_with("fargate") {
        "fargate_metrics.txt"
    } else {
        "ec2_metrics.txt"
    };
    let peer_text = std::fs::read_to_string(common::fixture_path(&format!(
        "peer/{}/{peer_name}",
        case.dir
    )))
    .unwrap();
    let mut t = Tally::default();
    for line in peer_text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, labels, value) = parse_sample(line).unwrap();
        let label = |k: &str| common::label(&labels, k).unwrap_or("");
        let container = label("container_name");
        let c = [("container_name", container)];
        let task = [("container_name", "_task_")];
        match name.as_str() {
            "ecs_task_metadata_info" => {
                let info = ours.series("ecs_task_info");
                assert_eq!(info.len(), 1);
                let (our_labels, v) = &info[0];
                let our = |k: &str| common::label(our_labels, k).unwrap_or("");
                t.number("ecs_task_info".into(), Some(*v), value);
                for k in [
                    "task_arn",
                    "family",
                    "revision",
                    "availability_zone",
                    "launch_type",
                ] {
                    t.string(k, our(k), label(k));
                }
                t.string(
                    "cluster",
                    our("cluster"),
                    label("cluster").rsplit('/').next().unwrap_or(""),
                );
            }
            "ecs_task_cpu_limit_vcpus" => {
                t.number(name, ours.get("ecs_task_cpu_limit", &task), value * 1024.0)
            }
            "ecs_task_memory_limit_bytes" => t.number(
                name,
                ours.get("ecs_task_mem_limit", &task),
                value / 1_048_576.0,
            ),
            "ecs_task_ephemeral_storage_used_bytes" => {
                t.number(name.clone(), ours.get(&name, &[]), value)
            }
            "ecs_task_ephemeral_storage_allocated_bytes" => t.number(
                name,
                ours.get("ecs_task_ephemeral_storage_reserved_bytes", &[]),
                value,
            ),
            "ecs_container_restarts_total" | "ecs_container_cpu_usage_seconds_total" => {
                t.number(format!("{name}{{{container}}}"), ours.get(&name, &c), value)
            }
            "ecs_container_memory_usage_bytes" => t.number(
                format!("{name}{{{container}}}"),
                ours.get("ecs_task_mem_usage", &c),
                value,
            ),
            "ecs_container_memory_limit_bytes" if case.zero_memory_limit.contains(&container) => {
                // By design: Limits.Memory 0 means unset; ours falls back to the task's limit.
                assert_eq!(value, 0.0, "peer writes 0 for {container}");
                assert_eq!(ours.get(&name, &c), Some(256.0 * 1_048_576.0));
            }
            "ecs_container_memory_limit_bytes" => {
                t.number(format!("{name}{{{container}}}"), ours.get(&name, &c), value)
            }
            "ecs_container_memory_page_cache_size_bytes" if !case.cgroup_v1 => {
                // By design: the peer reads only v1 `cache` and writes 0 on cgroup v2; ours is `file`.
                assert_eq!(value, 0.0);
                assert!(ours.get("ecs_task_mem_cache", &c).is_some_and(|v| v > 0.0));
            }
            "ecs_container_memory_page_cache_size_bytes" => t.number(
                format!("{name}{{{container}}}"),
                ours.get("ecs_task_mem_cache", &c),
                value,
            ),
            n if n.starts_with("ecs_network_") => {
                let ours_name = match n {
                    "ecs_network_receive_bytes_total" => "ecs_task_network_rx_bytes_total",
                    "ecs_network_receive_packets_total" => "ecs_task_network_rx_packets_total",
                    "ecs_network_receive_errors_total" => "ecs_task_network_rx_errors_total",
                    "ecs_network_receive_packets_dropped_total" => {
                        "ecs_task_network_rx_dropped_total"
                    }
                    "ecs_network_transmit_bytes_total" => "ecs_task_network_tx_bytes_total",
                    "ecs_network_transmit_packets_total" => "ecs_task_network_tx_packets_total",
                    "ecs_network_transmit_errors_total" => "ecs_task_network_tx_errors_total",
                    "ecs_network_transmit_packets_dropped_total" => {
                        "ecs_task_network_tx_dropped_total"
                    }
                    other => panic!("unmapped peer family {other}"),
                };
                let interface = label("interface");
                let row = if case.bridge {
                    last_with_interface(&ours, case.task, interface)
                } else {
                    "_task_".to_owned()
                };
                t.number(
                    format!("{ours_name}{{{row},{interface}}}"),
                    ours.get(
                        ours_name,
                        &[("container_name", &row), ("interface", interface)],
                    ),
                    value,
                );
            }
            // Not in SPEC (deliberate difference 5): image pull timestamps.
            "ecs_task_image_pull_start_timestamp_seconds"
            | "ecs_task_image_pull_stop_timestamp_seconds" => {}
            other => panic!("peer family {other} has no mapping"),
        }
    }
    // Families the peer does not write for this input: ours are absent too.
    if !peer_text.contains("ecs_task_cpu_limit_vcpus") {
        assert_eq!(
            ours.get("ecs_task_cpu_limit", &[("container_name", "_task_")]),
            None
        );
    }
    if !peer_text.contains("ecs_task_memory_limit_bytes") {
        assert_eq!(
            ours.get("ecs_task_mem_limit", &[("container_name", "_task_")]),
            None
        );
    }
    if !peer_text.contains("ecs_task_ephemeral_storage_used_bytes") {
        assert!(!ours.has_family("ecs_task_ephemeral_storage_used_bytes"));
    }
    (t.mapped, t.failures)
}

#[test]
fn every_number_shared_with_the_peer_exporter_is_the_same() {
    let mut report = Vec::new();
    let mut total = 0;
    for case in &CASES {
        let (mapped, failures) = check(case);
        total += mapped;
        for f in failures {
            report.push(format!("{}/{}: {f}", case.dir, case.task));
        }
        assert_eq!(
            mapped, case.mapped,
            "{}/{}: mapped values",
            case.dir, case.task
        );
    }
    assert!(report.is_empty(), "differences:\n{}", report.join("\n"));
    eprintln!(
        "peer parity: {total}/{total} mapped values equal across {} cases",
        CASES.len()
    );
}
