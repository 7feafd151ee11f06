//! The pure core on real payloads: every number below is computed by hand from the fixture, with
//! the formula beside it (SPEC §3). One poll from an empty history unless the test says otherwise.

mod common;

use common::{default_filter, first_poll, no_filter, parse_strict, render, scrape_fixture};
use ecs_container_exporter::core::compute::{self, History};
use ecs_container_exporter::core::payload;

fn approx(actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() <= 1e-12 * expected.abs().max(1.0),
        "got {actual}, expected {expected}"
    );
}

const TASK: &str = "_task_";

// ---------------------------------------------------------------------------------------------
// Fargate, awsvpc, cgroup v1 (task Limits CPU 0.25 vCPU, Memory 512 MiB; stopped container null).

const FG_TASK: &str = "fargate-cgroupv1-task.json";
const FG_STATS: &str = "fargate-cgroupv1-task-stats.json";

#[test]
fn fargate_first_poll_cpu_ratio_uses_precpu_and_the_task_limit() {
    let s = scrape_fixture(FG_TASK, FG_STATS, &no_filter());
    // prometheus: Δtotal = 932439492 − 925246189 = 7193303; Δsystem = 2121200000000 − 2101320000000
    // = 19880000000; online 2 → cores = 7193303 / 19880000000 × 2. Container CPU 2 = unset, so
    // over the task's 0.25 vCPU.
    let prometheus = 7_193_303.0 / 19_880_000_000.0 * 2.0;
    approx(
        s.value(
            "ecs_task_cpu_usage_ratio",
            &[("container_name", "prometheus")],
        ),
        prometheus / 0.25,
    );
    // ecs-exporter: Δtotal = 322633383 − 242770940 = 79862443; Δsystem = 2121630000000 − 2101780000000.
    let exporter = 79_862_443.0 / 19_850_000_000.0 * 2.0;
    approx(
        s.value(
            "ecs_task_cpu_usage_ratio",
            &[("container_name", "ecs-exporter")],
        ),
        exporter / 0.25,
    );
    // _task_: the containers' cores summed, over the task limit.
    approx(
        s.value("ecs_task_cpu_usage_ratio", &[("container_name", TASK)]),
        (prometheus + exporter) / 0.25,
    );
    // Limits: task 0.25 vCPU × 1024 = 256 units; 512 MiB. Containers show CPU 2 (unset): no row.
    assert_eq!(
        s.value("ecs_task_cpu_limit", &[("container_name", TASK)]),
        256.0
    );
    assert_eq!(
        s.value("ecs_task_mem_limit", &[("container_name", TASK)]),
        512.0
    );
    assert_eq!(s.series("ecs_task_cpu_limit").len(), 1);
}

#[test]
fn fargate_percpu_and_mode_times_are_deltas_over_the_window() {
    let s = scrape_fixture(FG_TASK, FG_STATS, &no_filter());
    let c = |cpu: &'static str| [("container_name", "prometheus"), ("cpu", cpu)];
    // Δpercpu[i] / Δsystem: (484165457 − 479268399) / 19880000000 and (448274035 − 445977790) / ….
    approx(
        s.value("ecs_task_percpu_usage_ratio", &c("0")),
        4_897_058.0 / 19_880_000_000.0,
    );
    approx(
        s.value("ecs_task_percpu_usage_ratio", &c("1")),
        2_296_245.0 / 19_880_000_000.0,
    );
    // Never a _task_ row for per-CPU, kernel/user mode or throttling.
    for family in [
        "ecs_task_percpu_usage_ratio",
        "ecs_task_cpu_kernelmode",
        "ecs_task_cpu_throttle_periods",
    ] {
        assert!(
            s.series(family)
                .iter()
                .all(|(l, _)| !l.iter().any(|(_, v)| v == TASK)),
            "{family}"
        );
    }
    // ns in the window: kernel 120000000 − 120000000 = 0; user 880000000 − 870000000 = 10000000.
    let p = [("container_name", "prometheus")];
    assert_eq!(s.value("ecs_task_cpu_kernelmode", &p), 0.0);
    assert_eq!(s.value("ecs_task_cpu_usermode", &p), 10_000_000.0);
    // Throttling: raw cumulative values (0 here).
    assert_eq!(s.value("ecs_task_cpu_throttle_throttled_time", &p), 0.0);
    // Cumulative CPU seconds: total_usage / 1e9; user/kernel likewise.
    approx(
        s.value("ecs_container_cpu_usage_seconds_total", &p),
        0.932439492,
    );
    approx(s.value("ecs_container_cpu_user_seconds_total", &p), 0.88);
    approx(s.value("ecs_container_cpu_system_seconds_total", &p), 0.12);
}

#[test]
fn fargate_memory_reads_cgroup_v1_keys() {
    let s = scrape_fixture(FG_TASK, FG_STATS, &no_filter());
    let p = [("container_name", "prometheus")];
    assert_eq!(s.value("ecs_task_mem_usage", &p), 127_934_464.0);
    assert_eq!(s.value("ecs_task_mem_cache", &p), 85_426_176.0); // v1 `cache`
    // working set = usage − total_inactive_file = 127934464 − 52383744.
    assert_eq!(
        s.value("ecs_container_memory_working_set_bytes", &p),
        75_550_720.0
    );
    assert_eq!(s.value("ecs_container_memory_rss_bytes", &p), 40_820_736.0); // v1 `rss`
    // _task_ = Σ containers: 127934464 + 84111360.
    assert_eq!(
        s.value("ecs_task_mem_usage", &[("container_name", TASK)]),
        212_045_824.0
    );
    // The stats `limit` is the cgroup v1 "unlimited" sentinel: the limit comes from metadata,
    // the task's 512 MiB (no container has one).
    assert_eq!(
        s.value("ecs_container_memory_limit_bytes", &p),
        536_870_912.0
    );
}

#[test]
fn fargate_disk_sums_capitalised_ops_over_every_device() {
    let s = scrape_fixture(FG_TASK, FG_STATS, &no_filter());
    let p = [("container_name", "prometheus")];
    // Read: 23793664 (259:1) + 65409024 (259:0); Write: 0 + 0.
    assert_eq!(s.value("ecs_task_disk_read_bytes_total", &p), 89_202_688.0);
    assert_eq!(s.value("ecs_task_disk_written_bytes_total", &p), 0.0);
    // Ops: 295 + 682.
    assert_eq!(s.value("ecs_task_disk_read_iops_total", &p), 977.0);
    // _task_: ecs-exporter reads 28639232 + 14655488 = 43294720 → 89202688 + 43294720.
    assert_eq!(
        s.value(
            "ecs_task_disk_read_bytes_total",
            &[("container_name", TASK)]
        ),
        132_497_408.0
    );
}

#[test]
fn awsvpc_task_network_counts_the_shared_interface_once() {
    let s = scrape_fixture(FG_TASK, FG_STATS, &no_filter());
    let row = |c: &'static str| [("container_name", c), ("interface", "eth1")];
    // Both containers report the task's eth1, read at slightly different instants: 129045374 and
    // 129046293. The task row is the larger (the later read), never the sum.
    assert_eq!(
        s.value("ecs_task_network_rx_bytes_total", &row("prometheus")),
        129_045_374.0
    );
    assert_eq!(
        s.value("ecs_task_network_rx_bytes_total", &row("ecs-exporter")),
        129_046_293.0
    );
    assert_eq!(
        s.value("ecs_task_network_rx_bytes_total", &row(TASK)),
        129_046_293.0
    );
}

#[test]
fn a_stopped_container_has_only_its_metadata_families() {
    let s = scrape_fixture(FG_TASK, FG_STATS, &no_filter());
    let mut families: Vec<&str> = s
        .samples
        .keys()
        .filter(|(_, l)| {
            l.iter()
                .any(|(k, v)| k == "container_name" && v == "nonessential")
        })
        .map(|(n, _)| n.as_str())
        .collect();
    families.dedup();
    assert_eq!(
        families,
        [
            "ecs_container_exit_code",
            "ecs_container_info",
            "ecs_container_known_status",
            "ecs_container_memory_limit_bytes",
            "ecs_container_start_time_seconds",
        ]
    );
    assert_eq!(
        s.value(
            "ecs_container_known_status",
            &[("container_name", "nonessential"), ("status", "STOPPED")]
        ),
        1.0
    );
}

#[test]
fn task_info_cuts_a_cluster_arn_to_its_name_and_ephemeral_storage_is_in_bytes() {
    let s = scrape_fixture(FG_TASK, FG_STATS, &no_filter());
    let info = s.series("ecs_task_info");
    let labels: Vec<(&str, &str)> = info[0]
        .0
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert!(labels.contains(&("cluster", "prom-ecs-exporter-sandbox")));
    assert!(labels.contains(&("launch_type", "FARGATE")));
    // Utilized 427 MiB, Reserved 20496 MiB, × 2^20.
    assert_eq!(
        s.value("ecs_task_ephemeral_storage_used_bytes", &[]),
        427.0 * 1_048_576.0
    );
    assert_eq!(
        s.value("ecs_task_ephemeral_storage_reserved_bytes", &[]),
        20_496.0 * 1_048_576.0
    );
}

// ---------------------------------------------------------------------------------------------
// EC2, bridge, cgroup v2 (no task Limits; containers CPU 128 units, Memory 256 MiB; stopped → {}).

const BR_TASK: &str = "ec2-bridge-cgroupv2-task.json";
const BR_STATS: &str = "ec2-bridge-cgroupv2-task-stats.json";

#[test]
fn cgroup_v2_bridge_cpu_is_over_the_container_limit_and_the_task_row_over_the_host() {
    let s = scrape_fixture(BR_TASK, BR_STATS, &no_filter());
    // ecs-exporter: Δtotal 331125000 − 325963000 = 5162000; Δsystem 1045600000000 − 1043620000000
    // = 1980000000; online 2 → cores = 5162000 / 1980000000 × 2; limit 128 units = 0.125 vCPU.
    let cores = 5_162_000.0 / 1_980_000_000.0 * 2.0;
    approx(
        s.value(
            "ecs_task_cpu_usage_ratio",
            &[("container_name", "ecs-exporter")],
        ),
        cores / 0.125,
    );
    // prometheus did not run: Δtotal = 0 → 0, not absent.
    assert_eq!(
        s.value(
            "ecs_task_cpu_usage_ratio",
            &[("container_name", "prometheus")]
        ),
        0.0
    );
    // No task limit: the task row is the fraction of the host, cores / online_cpus.
    approx(
        s.value("ecs_task_cpu_usage_ratio", &[("container_name", TASK)]),
        cores / 2.0,
    );
    assert_eq!(
        s.get("ecs_task_cpu_limit", &[("container_name", TASK)]),
        None
    );
    assert_eq!(
        s.value("ecs_task_cpu_limit", &[("container_name", "prometheus")]),
        128.0
    );
    // Kernel 66278000 − 65245000, user 264846000 − 260717000.
    assert_eq!(
        s.value(
            "ecs_task_cpu_kernelmode",
            &[("container_name", "ecs-exporter")]
        ),
        1_033_000.0
    );
    assert_eq!(
        s.value(
            "ecs_task_cpu_usermode",
            &[("container_name", "ecs-exporter")]
        ),
        4_129_000.0
    );
}

#[test]
fn cgroup_v2_has_no_percpu_and_no_iops_series_at_all() {
    let s = scrape_fixture(BR_TASK, BR_STATS, &no_filter());
    for family in [
        "ecs_task_percpu_usage_ratio",
        "ecs_task_disk_read_iops_total",
        "ecs_task_disk_written_iops_total",
    ] {
        assert!(
            !s.has_family(family),
            "{family} should have no series, _task_ included"
        );
    }
    let e = [("container_name", "ecs-exporter")];
    // lowercase `read`/`write` ops, one device.
    assert_eq!(s.value("ecs_task_disk_read_bytes_total", &e), 60_960_768.0);
    assert_eq!(s.value("ecs_task_disk_written_bytes_total", &e), 57_344.0);
}

#[test]
fn cgroup_v2_memory_reads_file_anon_and_inactive_file() {
    let s = scrape_fixture(BR_TASK, BR_STATS, &no_filter());
    let e = [("container_name", "ecs-exporter")];
    assert_eq!(s.value("ecs_task_mem_usage", &e), 65_249_280.0);
    assert_eq!(s.value("ecs_task_mem_cache", &e), 25_296_896.0); // v2 `file`
    assert_eq!(s.value("ecs_container_memory_rss_bytes", &e), 37_691_392.0); // v2 `anon`
    // working set = usage − inactive_file = 65249280 − 17641472.
    assert_eq!(
        s.value("ecs_container_memory_working_set_bytes", &e),
        47_607_808.0
    );
    // _task_ cache = 25296896 + 19619840.
    assert_eq!(
        s.value("ecs_task_mem_cache", &[("container_name", TASK)]),
        44_916_736.0
    );
}

#[test]
fn bridge_task_network_sums_each_containers_own_interface() {
    let s = scrape_fixture(BR_TASK, BR_STATS, &no_filter());
    // Each container has its own eth0: 101869 + 45368.
    assert_eq!(
        s.value(
            "ecs_task_network_rx_bytes_total",
            &[("container_name", TASK), ("interface", "eth0")]
        ),
        147_237.0
    );
    // tx packets 278 + 118.
    assert_eq!(
        s.value(
            "ecs_task_network_tx_packets_total",
            &[("container_name", TASK), ("interface", "eth0")]
        ),
        396.0
    );
}

// ---------------------------------------------------------------------------------------------
// EC2 awsvpc, cgroup v2, with the pause container; task Limits has only Memory 256.

#[test]
fn excluded_containers_have_no_series_but_count_in_task_totals() {
    let all = scrape_fixture(
        "ec2-awsvpc-cgroupv2-task.json",
        "ec2-awsvpc-cgroupv2-task-stats.json",
        &no_filter(),
    );
    let s = scrape_fixture(
        "ec2-awsvpc-cgroupv2-task.json",
        "ec2-awsvpc-cgroupv2-task-stats.json",
        &default_filter(),
    );
    assert!(
        s.samples
            .keys()
            .all(|(_, l)| !l.iter().any(|(_, v)| v == "~internal~ecs~pause"))
    );
    let usage = |c: &'static str| all.value("ecs_task_mem_usage", &[("container_name", c)]);
    let sum = usage("ecs-exporter") + usage("main") + usage("~internal~ecs~pause");
    assert_eq!(
        s.value("ecs_task_mem_usage", &[("container_name", TASK)]),
        sum
    );
}

#[test]
fn no_cpu_limit_anywhere_means_the_fraction_of_the_host() {
    let s = scrape_fixture(
        "ec2-awsvpc-cgroupv2-task.json",
        "ec2-awsvpc-cgroupv2-task-stats.json",
        &no_filter(),
    );
    let (task, stats) = (
        payload::parse_task(&common::fixture("ec2-awsvpc-cgroupv2-task.json")).unwrap(),
        payload::parse_stats(&common::fixture("ec2-awsvpc-cgroupv2-task-stats.json")).unwrap(),
    );
    let main = task.containers.iter().find(|c| c.name == "main").unwrap();
    let sample = stats[&main.docker_id].as_ref().unwrap();
    // `main` shows {CPU: 2, Memory: 0} (nothing set) and the task has no CPU limit: cores / online.
    let d_total = (sample.cpu.total.unwrap() - sample.precpu.total.unwrap()) as f64;
    let d_system = (sample.cpu.system.unwrap() - sample.precpu.system.unwrap()) as f64;
    let cores = d_total / d_system * 2.0;
    approx(
        s.value("ecs_task_cpu_usage_ratio", &[("container_name", "main")]),
        cores / 2.0,
    );
    // Memory 0 = unset: the container's hard limit is the task's 256 MiB.
    assert_eq!(
        s.value(
            "ecs_container_memory_limit_bytes",
            &[("container_name", "main")]
        ),
        268_435_456.0
    );
    assert_eq!(
        s.get("ecs_task_mem_limit", &[("container_name", "main")]),
        None
    );
    // Each interface once: the three running containers carry identical eth0 counters.
    let row = |c: &'static str| {
        s.value(
            "ecs_task_network_rx_bytes_total",
            &[("container_name", c), ("interface", "eth0")],
        )
    };
    assert_eq!(row(TASK), row("main"));
}

// ---------------------------------------------------------------------------------------------
// Managed Instances: task Limits.CPU 0 (present but zero), a container health check.

#[test]
fn managed_instances_zero_task_cpu_is_no_limit_and_health_is_one_hot() {
    let s = scrape_fixture(
        "managed-instances-cgroupv2-task.json",
        "managed-instances-cgroupv2-task-stats.json",
        &no_filter(),
    );
    assert_eq!(
        s.get("ecs_task_cpu_limit", &[("container_name", TASK)]),
        None
    );
    assert_eq!(
        s.value("ecs_task_mem_limit", &[("container_name", TASK)]),
        256.0
    );
    let h = |state: &'static str| {
        s.value(
            "ecs_container_health_status",
            &[("container_name", "main"), ("status", state)],
        )
    };
    assert_eq!(
        (h("healthy"), h("unhealthy"), h("unknown")),
        (1.0, 0.0, 0.0)
    );
    // Only containers with a health check get the family.
    assert_eq!(s.series("ecs_container_health_status").len(), 3);
    // main: Memory 96 MiB of its own.
    assert_eq!(
        s.value(
            "ecs_container_memory_limit_bytes",
            &[("container_name", "main")]
        ),
        96.0 * 1_048_576.0
    );
}

// ---------------------------------------------------------------------------------------------
// Edge payloads.

#[test]
fn a_first_sample_with_zero_precpu_gives_no_ratio_until_the_next_poll() {
    let task = payload::parse_task(&common::fixture("fargate-2020-task-awsdocs.json")).unwrap();
    let stats = payload::parse_stats(&common::fixture(
        "fargate-2020-task-stats-first-sample-awsdocs.json",
    ))
    .unwrap();
    // The task's DockerId differs from the stats key in this AWS doc sample; align them.
    let (id, sample) = stats
        .iter()
        .next()
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap();
    let mut task = task;
    task.containers[0].docker_id = id.clone();
    let (snapshot, history) =
        compute::compute(&task, &stats, &History::default(), &no_filter().into());
    let s = parse_strict(&render(&snapshot)).unwrap();
    assert!(
        !s.has_family("ecs_task_cpu_usage_ratio"),
        "precpu is all zero: no window yet"
    );
    // No system_cpu_usage in this sample: the next poll's ratio is Δtotal / Δread, over the task's
    // 0.25 vCPU. Advance read by 10 s and total_usage by 0.5 s of CPU → 0.05 cores → 0.2.
    let mut next = sample.unwrap();
    next.read += 10_000_000_000;
    next.cpu.total = next.cpu.total.map(|t| t + 500_000_000);
    let stats2 = [(id, Some(next))].into_iter().collect();
    let (snapshot, _) = compute::compute(&task, &stats2, &history, &no_filter().into());
    let s = parse_strict(&render(&snapshot)).unwrap();
    approx(
        s.value(
            "ecs_task_cpu_usage_ratio",
            &[("container_name", "query-metadata")],
        ),
        0.05 / 0.25,
    );
}

#[test]
fn unlimited_memory_sentinels_never_become_limits() {
    // limit = 18446744073709551615 (u64::MAX) in the stats, no task: no memory_limit_bytes.
    let stats = payload::parse_stats(&common::fixture(
        "managed-instances-task-stats-unlimited-memory-datadog.json",
    ))
    .unwrap();
    let task = payload::Task {
        containers: stats
            .keys()
            .enumerate()
            .map(|(i, id)| payload::Container {
                docker_id: id.clone(),
                name: format!("c{i}"),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let (snapshot, _) = compute::compute(&task, &stats, &History::default(), &no_filter().into());
    let text = render(&snapshot);
    let s = parse_strict(&text).unwrap();
    assert!(!s.has_family("ecs_container_memory_limit_bytes"));
    assert!(!text.contains("18446744073709551615") && !text.contains("1.8446744073709552e19"));
    assert!(s.has_family("ecs_task_mem_usage"));
}

#[test]
fn every_fixture_pair_renders_a_strictly_valid_exposition() {
    let pairs = [
        (FG_TASK, FG_STATS),
        (BR_TASK, BR_STATS),
        (
            "ec2-awsvpc-cgroupv2-task.json",
            "ec2-awsvpc-cgroupv2-task-stats.json",
        ),
        (
            "fargate-cgroupv1-task-2025-04.json",
            "fargate-cgroupv1-task-stats-2025-04.json",
        ),
        (
            "fargate-2021-task-otel.json",
            "fargate-2021-task-stats-empty-object-otel.json",
        ),
        (
            "managed-instances-cgroupv2-task.json",
            "managed-instances-cgroupv2-task-stats.json",
        ),
        (
            "ec2-awsvpc-task-awsdocs.json",
            "ec2-cgroupv1-task-stats-with-pause-awsdocs.json",
        ),
        (
            "fargate-2020-task-awsdocs.json",
            "fargate-2020-task-stats-first-sample-awsdocs.json",
        ),
        (
            "fargate-2021-task-otel.json",
            "fargate-windows-task-stats-datadog-EDITED.json",
        ),
    ];
    for (task, stats) in pairs {
        for filter in [no_filter(), default_filter()] {
            let (snapshot, _) = first_poll(task, stats, &filter);
            let text = render(&snapshot);
            parse_strict(&text).unwrap_or_else(|e| panic!("{task} + {stats}: {e}\n{text}"));
            assert!(
                !text.contains("NaN") && !text.contains("Inf"),
                "{task} + {stats}"
            );
        }
    }
}

#[test]
fn the_edited_windows_payload_parses_leniently() {
    // blkio lists are the string "None": those fields are absent, the rest is read.
    let stats = payload::parse_stats(&common::fixture(
        "fargate-windows-task-stats-datadog-EDITED.json",
    ))
    .unwrap();
    let sample = stats.values().next().unwrap().as_ref().unwrap();
    assert_eq!(sample.disk.bytes, None);
    assert!(sample.memory.usage.is_some());
    assert_eq!(sample.networks[0].0, "Ethernet 3");
}

#[test]
fn cgroup_v1_with_an_empty_blkio_list_reads_zero_and_padded_percpu_is_cut_at_online_cpus() {
    let s = payload::sample(
        &serde_json::from_slice(&common::fixture(
            "ec2-bridge-cgroupv1-container-stats-padded-percpu-awsdocs.json",
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(s.cpu.percpu.len(), 15);
    let stats = [("x".to_owned(), Some(s))].into_iter().collect();
    let task = payload::Task {
        containers: vec![payload::Container {
            docker_id: "x".into(),
            name: "c".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let (snapshot, _) = compute::compute(&task, &stats, &History::default(), &no_filter().into());
    let scrape = parse_strict(&render(&snapshot)).unwrap();
    // online_cpus 2: only cpu 0 and 1, however long percpu_usage is.
    let cpus: Vec<String> = scrape
        .series("ecs_task_percpu_usage_ratio")
        .iter()
        .map(|(l, _)| l.iter().find(|(k, _)| k == "cpu").unwrap().1.clone())
        .collect();
    assert!(
        cpus.len() <= 2 && cpus.iter().all(|c| c == "0" || c == "1"),
        "{cpus:?}"
    );
    let with_pause = payload::parse_stats(&common::fixture(
        "ec2-cgroupv1-task-stats-with-pause-awsdocs.json",
    ))
    .unwrap();
    let sample = with_pause.values().flatten().next().unwrap();
    assert_eq!(
        sample.disk.bytes,
        Some(Vec::new()),
        "[] is a list with nothing in it (its sums are 0)"
    );
}
