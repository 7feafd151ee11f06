//! The pure core over a task's life (SPEC §3.1.1): sequences of polls in which containers
//! restart, stop, start late and churn. Every number is computed by hand beside its formula.
//!
//! The tasks are built here, not read from fixtures: a life is a sequence of small edits to one
//! task, and what matters is which counter goes where.

mod common;

use common::{no_filter, parse_strict, render};
use ecs_container_exporter::core::compute::{self, History, Options, TASK_ROW};
use ecs_container_exporter::core::payload::{
    Container, Cpu, Device, Disk, Net, Sample, Stats, Task, parse_stats, parse_task,
};
use ecs_container_exporter::core::snapshot::Snapshot;

const S: i128 = 1_000_000_000;
const RX: &str = "ecs_task_network_rx_bytes_total";
const READ: &str = "ecs_task_disk_read_bytes_total";
const RATIO: &str = "ecs_task_cpu_usage_ratio";

/// What one container reports at one poll.
#[derive(Clone, Copy)]
struct Reading {
    /// Seconds: the sample's `read`.
    t: i128,
    /// ns of CPU used so far.
    cpu: u64,
    /// Bytes received on eth0 so far.
    rx: u64,
    /// Bytes read from disk so far.
    disk: u64,
}

fn reading(t: i128, cpu: u64, rx: u64, disk: u64) -> Reading {
    Reading { t, cpu, rx, disk }
}

/// A sample without `precpu` (no window on a first sight), 2 online CPUs, `system_cpu_usage`
/// advancing 2 s of host CPU per second.
fn sample(r: Reading) -> Sample {
    Sample {
        read: r.t * S,
        preread: Some((r.t - 1) * S),
        cpu: Cpu {
            total: Some(r.cpu),
            kernel: Some(r.cpu / 4),
            user: Some(r.cpu / 2),
            system: Some((r.t * 2 * S) as u64),
            online_cpus: Some(2),
            ..Cpu::default()
        },
        disk: Disk {
            bytes: Some(vec![Device {
                major: 259,
                minor: 0,
                read: r.disk,
                write: 0,
            }]),
            ops: None,
        },
        networks: vec![(
            "eth0".to_owned(),
            Net {
                rx_bytes: r.rx,
                ..Net::default()
            },
        )],
        ..Sample::default()
    }
}

/// A container of the task: name (its DockerId is `id-<name>`), known status.
fn container(name: &str, status: &str, mode: &str) -> Container {
    Container {
        docker_id: format!("id-{name}"),
        name: name.to_owned(),
        known_status: status.to_owned(),
        network_mode: Some(mode.to_owned()),
        ..Container::default()
    }
}

/// A task (1 vCPU) of these containers in this network mode, and the stats of those that report.
fn poll_input(
    mode: &str,
    containers: &[(&str, &str)],
    readings: &[(&str, Reading)],
) -> (Task, Stats) {
    let task = Task {
        cpu_vcpus: Some(1.0),
        containers: containers
            .iter()
            .map(|(name, status)| container(name, status, mode))
            .collect(),
        ..Task::default()
    };
    let mut stats: Stats = containers
        .iter()
        .map(|(name, _)| (format!("id-{name}"), None))
        .collect();
    for (name, r) in readings {
        stats.insert(format!("id-{name}"), Some(sample(*r)));
    }
    (task, stats)
}

/// A life: polls in order, each a snapshot, starting from an empty history.
struct Life {
    history: History,
    options: Options,
}

impl Life {
    fn new() -> Life {
        Life {
            history: History::default(),
            options: no_filter().into(),
        }
    }

    fn poll(&mut self, task: &Task, stats: &Stats) -> Snapshot {
        let (snapshot, next) = compute::compute(task, stats, &self.history, &self.options);
        self.history = next;
        snapshot
    }

    /// One poll; returns the strictly parsed scrape.
    fn scrape(
        &mut self,
        mode: &str,
        containers: &[(&str, &str)],
        readings: &[(&str, Reading)],
    ) -> common::Scrape {
        let (task, stats) = poll_input(mode, containers, readings);
        let snapshot = self.poll(&task, &stats);
        parse_strict(&render(&snapshot)).unwrap_or_else(|e| panic!("{e}"))
    }
}

fn task_rx(s: &common::Scrape) -> Option<f64> {
    s.get(RX, &[("container_name", TASK_ROW), ("interface", "eth0")])
}

fn task_read(s: &common::Scrape) -> Option<f64> {
    s.get(READ, &[("container_name", TASK_ROW)])
}

fn task_ratio(s: &common::Scrape) -> Option<f64> {
    s.get(RATIO, &[("container_name", TASK_ROW)])
}

const RUNNING: &str = "RUNNING";
const STOPPED: &str = "STOPPED";

#[test]
fn a_restart_in_bridge_mode_carries_network_and_disk_and_leaves_the_containers_rows_raw() {
    let mut life = Life::new();
    let both = [("web", RUNNING), ("worker", RUNNING)];
    let s = life.scrape(
        "bridge",
        &both,
        &[
            ("web", reading(10, 0, 1_000, 100)),
            ("worker", reading(10, 0, 500, 50)),
        ],
    );
    assert_eq!(task_rx(&s), Some(1_500.0), "1000 + 500");
    assert_eq!(task_read(&s), Some(150.0));
    let s = life.scrape(
        "bridge",
        &both,
        &[
            ("web", reading(20, S as u64, 1_500, 300)),
            ("worker", reading(20, S as u64, 700, 60)),
        ],
    );
    assert_eq!(task_rx(&s), Some(2_200.0), "1500 + 700");
    // web restarts: new cgroup, new veth; its counters start again.
    let s = life.scrape(
        "bridge",
        &both,
        &[
            ("web", reading(30, 1_000, 100, 10)),
            ("worker", reading(30, 2 * S as u64, 900, 70)),
        ],
    );
    assert_eq!(task_rx(&s), Some(2_500.0), "carry 1500 + 100 + worker 900");
    assert_eq!(task_read(&s), Some(380.0), "carry 300 + 10 + worker 70");
    assert_eq!(
        s.get(RX, &[("container_name", "web"), ("interface", "eth0")]),
        Some(100.0),
        "the container's own row is raw: an ordinary reset"
    );
    let s = life.scrape(
        "bridge",
        &both,
        &[
            ("web", reading(40, 2_000, 300, 20)),
            ("worker", reading(40, 3 * S as u64, 1_000, 80)),
        ],
    );
    assert_eq!(task_rx(&s), Some(2_800.0), "1500 + 300 + 1000");
    assert_eq!(task_read(&s), Some(400.0), "300 + 20 + 80");
}

#[test]
fn a_container_restarting_twice_carries_both_lives() {
    let mut life = Life::new();
    let one = [("web", RUNNING)];
    let rx = |life: &mut Life, t, rx| {
        task_rx(&life.scrape("bridge", &one, &[("web", reading(t, 0, rx, 0))]))
    };
    assert_eq!(rx(&mut life, 10, 1_000), Some(1_000.0));
    assert_eq!(rx(&mut life, 20, 50), Some(1_050.0), "1000 + 50");
    assert_eq!(rx(&mut life, 30, 400), Some(1_400.0), "1000 + 400");
    assert_eq!(rx(&mut life, 40, 30), Some(1_430.0), "1000 + 400 + 30");
    assert_eq!(rx(&mut life, 50, 60), Some(1_460.0));
}

#[test]
fn a_stopped_container_keeps_its_last_value_in_the_task_total_also_after_it_leaves() {
    let mut life = Life::new();
    let s = life.scrape(
        "bridge",
        &[("web", RUNNING), ("batch", RUNNING)],
        &[
            ("web", reading(10, 0, 1_000, 10)),
            ("batch", reading(10, 0, 4_000, 40)),
        ],
    );
    assert_eq!(task_rx(&s), Some(5_000.0));
    // batch stops: STOPPED with `null` stats. Its 4000 stays in the total.
    let s = life.scrape(
        "bridge",
        &[("web", RUNNING), ("batch", STOPPED)],
        &[("web", reading(20, 0, 1_200, 12))],
    );
    assert_eq!(task_rx(&s), Some(5_200.0), "1200 + batch's last 4000");
    assert_eq!(task_read(&s), Some(52.0), "12 + 40");
    assert_eq!(
        s.get(RX, &[("container_name", "batch"), ("interface", "eth0")]),
        None,
        "no sample, no row of its own"
    );
    // A STOPPED container that still has a stats entry is not read either.
    let s = life.scrape(
        "bridge",
        &[("web", RUNNING), ("batch", STOPPED)],
        &[
            ("web", reading(30, 0, 1_300, 13)),
            ("batch", reading(30, 0, 1, 1)),
        ],
    );
    assert_eq!(task_rx(&s), Some(5_300.0));
    // batch leaves the task listing (Docker hosts: removed): folded, the total stays.
    let s = life.scrape(
        "bridge",
        &[("web", RUNNING)],
        &[("web", reading(40, 0, 1_400, 14))],
    );
    assert_eq!(task_rx(&s), Some(5_400.0), "1400 + folded 4000");
    assert_eq!(task_read(&s), Some(54.0), "14 + folded 40");
}

#[test]
fn a_late_start_adds_its_counters_and_the_task_cpu_row_waits_for_its_window() {
    let mut life = Life::new();
    let g = S as u64;
    life.scrape(
        "bridge",
        &[("web", RUNNING)],
        &[("web", reading(10, 0, 100, 0))],
    );
    let s = life.scrape(
        "bridge",
        &[("web", RUNNING)],
        &[("web", reading(20, g, 200, 0))],
    );
    // web: Δcpu 1e9 / Δsystem 20e9 × 2 CPUs = 0.1 cores over the task's 1 vCPU.
    assert_eq!(task_ratio(&s), Some(0.1));
    // sidecar starts late: its first sample has no precpu, so no window of its own yet.
    let both = [("web", RUNNING), ("sidecar", RUNNING)];
    let s = life.scrape(
        "bridge",
        &both,
        &[
            ("web", reading(30, 2 * g, 300, 0)),
            ("sidecar", reading(30, 5 * g, 7_000, 0)),
        ],
    );
    assert_eq!(task_rx(&s), Some(7_300.0), "300 + 7000");
    assert_eq!(
        s.get(RATIO, &[("container_name", "web")]),
        Some(0.1),
        "web's own row is whole"
    );
    assert_eq!(
        task_ratio(&s),
        None,
        "a sum without sidecar would not be the task"
    );
    let s = life.scrape(
        "bridge",
        &both,
        &[
            ("web", reading(40, 3 * g, 400, 0)),
            ("sidecar", reading(40, 7 * g, 7_500, 0)),
        ],
    );
    // web 0.1 cores + sidecar Δ2e9 / 20e9 × 2 = 0.2 cores → 0.3 of 1 vCPU.
    let ratio = task_ratio(&s).expect("whole again");
    assert!((ratio - 0.3).abs() < 1e-12, "{ratio}");
}

#[test]
fn the_poll_after_a_restart_has_no_task_cpu_row_then_it_is_whole_again() {
    let mut life = Life::new();
    let g = S as u64;
    let both = [("web", RUNNING), ("worker", RUNNING)];
    let poll = |life: &mut Life, t: i128, web: u64, worker: u64| {
        task_ratio(&life.scrape(
            "bridge",
            &both,
            &[
                ("web", reading(t, web, 0, 0)),
                ("worker", reading(t, worker, 0, 0)),
            ],
        ))
    };
    assert_eq!(
        poll(&mut life, 10, 10 * g, g),
        None,
        "first poll: no precpu"
    );
    // web +1 s, worker +1 s of CPU over 10 s: (0.1 + 0.1) cores.
    assert_eq!(poll(&mut life, 20, 11 * g, 2 * g), Some(0.2));
    assert_eq!(
        poll(&mut life, 30, 1_000, 3 * g),
        None,
        "web restarted: no window"
    );
    assert_eq!(poll(&mut life, 40, g + 1_000, 4 * g), Some(0.2));
}

#[test]
fn containers_that_are_not_running_do_not_hold_back_the_task_cpu_row() {
    // The pause container (RESOURCES_PROVISIONED) reports stats but is not RUNNING.
    let mut life = Life::new();
    let g = S as u64;
    let task = [
        ("web", RUNNING),
        ("~internal~ecs~pause", "RESOURCES_PROVISIONED"),
    ];
    life.scrape("awsvpc", &task, &[("web", reading(10, 0, 0, 0))]);
    let s = life.scrape(
        "awsvpc",
        &task,
        &[
            ("web", reading(20, g, 0, 0)),
            ("~internal~ecs~pause", reading(20, 1_000, 0, 0)),
        ],
    );
    assert_eq!(task_ratio(&s), Some(0.1));
}

#[test]
fn awsvpc_counts_the_interface_once_and_a_restart_of_the_container_holding_the_largest_value_changes_nothing()
 {
    // Both containers read the task's one ENI, at slightly different instants.
    let mut life = Life::new();
    let both = [("web", RUNNING), ("worker", RUNNING)];
    let s = life.scrape(
        "awsvpc",
        &both,
        &[
            ("web", reading(10, 0, 10_000, 0)),
            ("worker", reading(10, 0, 9_900, 0)),
        ],
    );
    assert_eq!(task_rx(&s), Some(10_000.0), "the largest, once");
    // web (holding the largest) restarts: in the poll it is starting its stats are null; worker's
    // reading is older than web's last one. The task value does not fall back.
    let s = life.scrape("awsvpc", &both, &[("worker", reading(20, 0, 9_950, 0))]);
    assert_eq!(
        task_rx(&s),
        Some(10_000.0),
        "web's last reading stays a candidate"
    );
    // web is back: the ENI did not reset (it outlives the container), web reads on from it.
    let s = life.scrape(
        "awsvpc",
        &both,
        &[
            ("web", reading(30, 0, 12_000, 0)),
            ("worker", reading(30, 0, 11_800, 0)),
        ],
    );
    assert_eq!(task_rx(&s), Some(12_000.0), "no carry: nothing was reset");
    // The interface's counters really go down (seen by every container): carried.
    let s = life.scrape(
        "awsvpc",
        &both,
        &[
            ("web", reading(40, 0, 500, 0)),
            ("worker", reading(40, 0, 450, 0)),
        ],
    );
    assert_eq!(task_rx(&s), Some(12_500.0), "carry 12000 + 500");
}

#[test]
fn task_counters_never_go_down_over_any_life() {
    // A random life of three containers in both network modes: every poll each container
    // either advances, restarts (its counters start again), stops, or leaves and comes back.
    for mode in ["bridge", "awsvpc"] {
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let names = ["a", "b", "c"];
        let mut rx = [0u64; 3];
        let mut disk = [0u64; 3];
        let mut life = Life::new();
        let (mut last_rx, mut last_read) = (0.0, 0.0);
        for t in 1..400 {
            let mut containers = Vec::new();
            let mut readings = Vec::new();
            for (i, name) in names.iter().enumerate() {
                match next(10) {
                    0 => {
                        rx[i] = 0;
                        disk[i] = 0;
                    }
                    1 => {
                        containers.push((*name, STOPPED));
                        continue;
                    }
                    2 => continue,
                    _ => {}
                }
                rx[i] += next(5_000);
                disk[i] += next(100);
                containers.push((*name, RUNNING));
                readings.push((*name, reading(t, 0, rx[i], disk[i])));
            }
            let s = life.scrape(mode, &containers, &readings);
            let (rx_now, read_now) = (task_rx(&s).unwrap_or(0.0), task_read(&s).unwrap_or(0.0));
            assert!(rx_now >= last_rx, "{mode} t={t}: rx {last_rx} → {rx_now}");
            assert!(
                read_now >= last_read,
                "{mode} t={t}: read {last_read} → {read_now}"
            );
            (last_rx, last_read) = (rx_now, read_now);
        }
        assert!(last_rx > 0.0 && last_read > 0.0);
    }
}

#[test]
fn ten_thousand_churned_containers_leave_the_state_as_small_as_the_live_task() {
    // A plain Docker host: three containers at a time, one replaced by a new one every poll.
    // Each container receives 100 bytes per poll while it lives.
    let mut life = Life::new();
    let mut live: Vec<(String, u64)> = (0..3).map(|i| (format!("c{i}"), 0)).collect();
    let mut sizes = Vec::new();
    let mut received: u64 = 0;
    for t in 1..=10_000i128 {
        for c in &mut live {
            c.1 += 100;
            received += 100;
        }
        let containers: Vec<(&str, &str)> =
            live.iter().map(|(n, _)| (n.as_str(), RUNNING)).collect();
        let readings: Vec<(&str, Reading)> = live
            .iter()
            .map(|(n, rx)| (n.as_str(), reading(t, 0, *rx, *rx)))
            .collect();
        let (task, stats) = poll_input("bridge", &containers, &readings);
        let snapshot = life.poll(&task, &stats);
        if t % 1_000 == 0 {
            sizes.push(life.history.len());
            let s = parse_strict(&render(&snapshot)).unwrap();
            assert_eq!(
                task_rx(&s),
                Some(received as f64),
                "every byte ever received, at t={t}"
            );
        }
        live.remove(0);
        live.push((format!("c{}", t + 2), 0));
    }
    // Per live container: its last reading, 8 network series and 2 disk series (bytes read and
    // written; no ops list). Departed: one folded entry per series. 3 × 11 + 10, at every check.
    assert_eq!(sizes, [3 * (1 + 8 + 2) + (8 + 2); 10]);
}

#[test]
fn docker_hosts_follow_the_same_rules_for_their_host_totals() {
    use ecs_container_exporter::core::docker::{Inspect, Listed, assemble};
    let listed = |name: &str| Listed {
        id: format!("id{name}"),
        name: name.to_owned(),
        state: "running".to_owned(),
        ..Listed::default()
    };
    let entry = |name: &str, t: i128, rx: u64| {
        (
            listed(name),
            Inspect::default(),
            Some(sample(reading(t, 0, rx, rx))),
        )
    };
    let mut life = Life::new();
    let mut host = |entries| {
        let (task, stats) = assemble(entries);
        let s = parse_strict(&render(&life.poll(&task, &stats))).unwrap();
        (task_rx(&s), task_read(&s))
    };
    assert_eq!(
        host(vec![entry("a", 10, 100), entry("b", 10, 50)]),
        (Some(150.0), Some(150.0))
    );
    // b is removed from the host, a restarts (`docker restart`: same id, counters start again).
    assert_eq!(
        host(vec![entry("a", 20, 10)]),
        (Some(160.0), Some(160.0)),
        "100 + 10 + b's 50"
    );
}

#[test]
fn a_container_named_like_the_task_rows_keeps_only_its_own_families_and_warns_once() {
    let (task, stats) = poll_input(
        "bridge",
        &[("web", RUNNING), (TASK_ROW, RUNNING)],
        &[
            ("web", reading(10, 0, 100, 1)),
            (TASK_ROW, reading(10, 0, 20, 2)),
        ],
    );
    let (snapshot, _) = compute::compute(&task, &stats, &History::default(), &no_filter().into());
    let s = parse_strict(&render(&snapshot)).expect("no duplicate series");
    // The `_task_` rows are the task's: web 100 + the container named _task_ 20.
    assert_eq!(task_rx(&s), Some(120.0));
    assert_eq!(task_read(&s), Some(3.0));
    assert_eq!(
        s.series(RX).len(),
        2,
        "web and the task; nothing of the container's own"
    );
    // Its ecs_container_* series stay: they cannot collide.
    assert_eq!(
        s.get(
            "ecs_container_info",
            &[("container_name", TASK_ROW), ("docker_id", "id-_task_")]
        ),
        Some(1.0)
    );
    assert_eq!(
        s.get(
            "ecs_container_cpu_usage_seconds_total",
            &[("container_name", TASK_ROW)]
        ),
        Some(0.0)
    );
    assert_eq!(snapshot.warnings.len(), 1, "{:?}", snapshot.warnings);
    assert!(snapshot.warnings[0].contains(TASK_ROW));
}

#[test]
fn device_mapper_entries_count_once_when_the_device_under_them_is_listed() {
    let fixture = |name| common::fixture(name);
    let task = parse_task(&fixture("managed-instances-cgroupv2-task.json")).unwrap();
    let stats = parse_stats(&fixture("managed-instances-cgroupv2-task-stats.json")).unwrap();
    let read = |device_mapper: Vec<u64>, container: &str| {
        let options = Options {
            filter: no_filter(),
            device_mapper,
            ..Options::default()
        };
        let (snapshot, _) = compute::compute(&task, &stats, &History::default(), &options);
        let s = parse_strict(&render(&snapshot)).unwrap();
        (
            s.value(READ, &[("container_name", container)]),
            s.value(
                "ecs_task_disk_written_bytes_total",
                &[("container_name", container)],
            ),
        )
    };
    // main: 259:0 read 15007744, 252:0 (device-mapper) read 15007744, 259:9 read 805318656 and
    // written 268472320. The dm entry mirrors 259:0: counted once → 15007744 + 805318656.
    assert_eq!(read(vec![252], "main"), (820_326_400.0, 268_472_320.0));
    // ecs-exporter: 259:0 5505024 (and 252:0 the same), 259:9 written 36864.
    assert_eq!(read(vec![252], "ecs-exporter"), (5_505_024.0, 36_864.0));
    assert_eq!(read(vec![252], TASK_ROW), (825_831_424.0, 268_509_184.0));
    // Without /proc/devices nothing is known to be layered: every device counts.
    assert_eq!(read(Vec::new(), "main").0, 835_334_144.0);

    // A container whose only device is a device-mapper one keeps it.
    let only_dm = Sample {
        read: 10 * S,
        disk: Disk {
            bytes: Some(vec![Device {
                major: 252,
                minor: 0,
                read: 7,
                write: 3,
            }]),
            ops: None,
        },
        ..Sample::default()
    };
    let task = Task {
        containers: vec![container("c", RUNNING, "bridge")],
        ..Task::default()
    };
    let stats: Stats = [("id-c".to_owned(), Some(only_dm))].into_iter().collect();
    let options = Options {
        filter: no_filter(),
        device_mapper: vec![252],
        ..Options::default()
    };
    let (snapshot, _) = compute::compute(&task, &stats, &History::default(), &options);
    let s = parse_strict(&render(&snapshot)).unwrap();
    assert_eq!(s.value(READ, &[("container_name", "c")]), 7.0);
}

#[test]
fn proc_devices_names_the_device_mapper_majors() {
    let text = "Character devices:\n  1 mem\n252 device-mapper-char\n\nBlock devices:\n  7 loop\n\
                252 device-mapper\n253 virtblk\n259 blkext\n";
    assert_eq!(compute::device_mapper_majors(text), [252]);
    assert!(compute::device_mapper_majors("Block devices:\n  8 sd\n").is_empty());
    assert!(compute::device_mapper_majors("").is_empty());
}

/// The `ecs_task_cpu_usage_ratio` of container `c` in a task without limits, over one window
/// between two samples that both carry these CPU fields.
fn ratio_without_limits(cpu: impl Fn(u64, u64) -> Cpu) -> Option<f64> {
    let task = Task {
        containers: vec![container("c", RUNNING, "bridge")],
        ..Task::default()
    };
    let at = |t: i128, total: u64, system: u64| -> Stats {
        let s = Sample {
            read: t * S,
            cpu: cpu(total, system),
            ..Sample::default()
        };
        [("id-c".to_owned(), Some(s))].into_iter().collect()
    };
    let mut life = Life::new();
    life.poll(&task, &at(10, 0, 0));
    // 2 s of CPU over 10 s; the host's CPU time advanced 40 s (4 CPUs).
    let snapshot = life.poll(&task, &at(20, 2 * S as u64, 40 * S as u64));
    let s = parse_strict(&render(&snapshot)).unwrap();
    s.get(RATIO, &[("container_name", "c")])
}

#[test]
fn without_online_cpus_the_cpu_count_is_the_length_of_percpu_usage_zeros_included() {
    // percpu_usage of 4 entries, only the first used: 4 CPUs, not 1.
    // cores = Δtotal 2e9 / Δsystem 40e9 × 4 = 0.2; no limit: over the 4 CPUs → 0.05.
    let ratio = ratio_without_limits(|total, system| Cpu {
        total: Some(total),
        percpu: vec![total, 0, 0, 0],
        system: Some(system),
        ..Cpu::default()
    });
    assert_eq!(ratio, Some(0.05));
}

#[test]
fn without_any_cpu_count_the_window_is_cores_over_elapsed_time_never_dropped() {
    // No online_cpus, no percpu_usage: cores = Δtotal / Δread = 2e9 / 10e9 = 0.2, unscaled.
    let ratio = ratio_without_limits(|total, system| Cpu {
        total: Some(total),
        system: Some(system),
        ..Cpu::default()
    });
    assert_eq!(ratio, Some(0.2));
}
