//! Every data family of a snapshot, as one table: name, type, help, and the shape that says where
//! its values come from. One helper per shape writes the family, so adding a family is one row.
//!
//! The 2.x families (SPEC §3.1) come first and are marked for DogStatsD; their per-container rows
//! skip a container named `_task_`, and their `_task_` rows are the task's. Then the families
//! added by this exporter (SPEC §3.2). The order of the table is the order of the exposition.
//!
//! Out of scope: the exporter's own families (`core::health`), windows and totals (computed
//! before, in `cpu.rs` and `totals.rs`).

use crate::core::payload::{Container, Net, Sample, Task};
use crate::core::snapshot::{Family, Kind, Value};

use super::cpu::{self, Window};
use super::disk::Io;
use super::{Row, TASK_ROW, short_cluster, totals};

const MIB: f64 = 1_048_576.0;

/// Where a family's values come from.
#[derive(Clone, Copy)]
enum Shape {
    /// A limit per container, and one for the task.
    Limit {
        container: fn(&Container) -> Option<f64>,
        task: fn(&Task) -> Option<f64>,
    },
    /// `cpu_usage_ratio`: scaled per SPEC §3.1, a `_task_` row only when whole.
    CpuRatio,
    /// `percpu_usage_ratio`: per container and CPU.
    PerCpu,
    /// ns over the window.
    Window(fn(&Window) -> Option<u64>),
    /// A value of the sample.
    Sample(fn(&Sample) -> Option<Value>),
    /// A gauge of the sample, and a `_task_` row summing every container's (not carried).
    Summed(fn(&Sample) -> Option<u64>),
    /// A disk counter; the `_task_` row carried (`totals.rs`).
    Disk(fn(&Io) -> Option<u64>),
    /// A network counter per interface; the `_task_` rows carried.
    Network(fn(&Net) -> u64),
    /// A value of the container's metadata (the task's as a fallback).
    Meta(fn(&Container, &Task) -> Option<Value>),
    /// A value of the task, without labels.
    Task(fn(&Task) -> Option<Value>),
    /// `ecs_task_info`.
    TaskInfo,
    /// `ecs_container_info`.
    ContainerInfo,
    /// `ecs_container_known_status`.
    KnownStatus,
    /// `ecs_container_health_status`: one-hot over healthy, unhealthy, unknown.
    Health,
}

/// One family of the table.
struct Def {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    /// A 2.x family: sent to DogStatsD, per-container rows skip a container named `_task_`.
    legacy: bool,
    shape: Shape,
}

const fn legacy(name: &'static str, kind: Kind, help: &'static str, shape: Shape) -> Def {
    Def {
        name,
        kind,
        help,
        legacy: true,
        shape,
    }
}

const fn added(name: &'static str, kind: Kind, help: &'static str, shape: Shape) -> Def {
    Def {
        name,
        kind,
        help,
        legacy: false,
        shape,
    }
}

use Kind::{Counter, Gauge};

/// Every data family, in exposition order: one row each.
#[rustfmt::skip]
const FAMILIES: [Def; 38] = [
    legacy("ecs_task_cpu_limit", Gauge, "CPU limit in CPU units (1024 = 1 vCPU)",
        Shape::Limit { container: cpu::container_units, task: |t| cpu::task_vcpus(t).map(|v| v * 1024.0) }),
    legacy("ecs_task_mem_limit", Gauge, "Memory limit in MiB",
        Shape::Limit { container: |c| c.memory_mib.filter(|&m| m > 0.0), task: |t| t.memory_mib.filter(|&m| m > 0.0) }),
    legacy("ecs_task_cpu_usage_ratio", Gauge, "CPU used over the sampling window, as a fraction of the container's (else the task's, else the host's) CPU limit",
        Shape::CpuRatio),
    legacy("ecs_task_percpu_usage_ratio", Gauge, "CPU used on each host CPU over the sampling window, as a fraction of all host CPU time (cgroup v1)",
        Shape::PerCpu),
    legacy("ecs_task_cpu_kernelmode", Gauge, "CPU time in kernel mode over the sampling window, ns",
        Shape::Window(|w| w.kernel)),
    legacy("ecs_task_cpu_usermode", Gauge, "CPU time in user mode over the sampling window, ns",
        Shape::Window(|w| w.user)),
    legacy("ecs_task_cpu_throttle_periods", Gauge, "CFS enforcement periods elapsed (cumulative)",
        Shape::Sample(|s| s.throttling.map(|t| Value::Unsigned(t.periods)))),
    legacy("ecs_task_cpu_throttle_throttled_periods", Gauge, "CFS periods in which the container was throttled (cumulative)",
        Shape::Sample(|s| s.throttling.map(|t| Value::Unsigned(t.throttled_periods)))),
    legacy("ecs_task_cpu_throttle_throttled_time", Gauge, "Time the container was throttled, ns (cumulative)",
        Shape::Sample(|s| s.throttling.map(|t| Value::Unsigned(t.throttled_time)))),
    legacy("ecs_task_mem_usage", Gauge, "Memory usage in bytes, page cache included",
        Shape::Summed(|s| s.memory.usage)),
    legacy("ecs_task_mem_cache", Gauge, "Page cache in bytes (cgroup v1 cache, v2 file)",
        Shape::Summed(|s| s.memory.cache)),
    legacy("ecs_task_disk_read_bytes_total", Counter, "Bytes read from block devices",
        Shape::Disk(|d| d.read_bytes)),
    legacy("ecs_task_disk_written_bytes_total", Counter, "Bytes written to block devices",
        Shape::Disk(|d| d.write_bytes)),
    legacy("ecs_task_disk_read_iops_total", Counter, "Read operations on block devices",
        Shape::Disk(|d| d.read_ops)),
    legacy("ecs_task_disk_written_iops_total", Counter, "Write operations on block devices",
        Shape::Disk(|d| d.write_ops)),
    legacy("ecs_task_network_rx_bytes_total", Counter, "Bytes received",
        Shape::Network(|n| n.rx_bytes)),
    legacy("ecs_task_network_rx_packets_total", Counter, "Packets received",
        Shape::Network(|n| n.rx_packets)),
    legacy("ecs_task_network_rx_errors_total", Counter, "Receive errors",
        Shape::Network(|n| n.rx_errors)),
    legacy("ecs_task_network_rx_dropped_total", Counter, "Received packets dropped",
        Shape::Network(|n| n.rx_dropped)),
    legacy("ecs_task_network_tx_bytes_total", Counter, "Bytes transmitted",
        Shape::Network(|n| n.tx_bytes)),
    legacy("ecs_task_network_tx_packets_total", Counter, "Packets transmitted",
        Shape::Network(|n| n.tx_packets)),
    legacy("ecs_task_network_tx_errors_total", Counter, "Transmit errors",
        Shape::Network(|n| n.tx_errors)),
    legacy("ecs_task_network_tx_dropped_total", Counter, "Transmitted packets dropped",
        Shape::Network(|n| n.tx_dropped)),
    added("ecs_task_info", Gauge, "Task metadata, value 1",
        Shape::TaskInfo),
    added("ecs_container_info", Gauge, "Container metadata, value 1",
        Shape::ContainerInfo),
    added("ecs_container_known_status", Gauge, "The container's KnownStatus, value 1",
        Shape::KnownStatus),
    added("ecs_container_health_status", Gauge, "1 for the container's current health check state, 0 for the others",
        Shape::Health),
    added("ecs_container_restarts_total", Counter, "Restarts of the container (RestartCount)",
        Shape::Meta(|c, _| c.restart_count.map(Value::Unsigned))),
    added("ecs_container_exit_code", Gauge, "Exit code of a stopped container",
        Shape::Meta(|c, _| c.exit_code.map(Value::Signed))),
    added("ecs_container_start_time_seconds", Gauge, "When the container started, Unix time",
        Shape::Meta(|c, _| c.started_at.map(Value::Float))),
    added("ecs_container_cpu_usage_seconds_total", Counter, "CPU time used, seconds",
        Shape::Sample(|s| s.cpu.total.map(seconds))),
    added("ecs_container_cpu_user_seconds_total", Counter, "CPU time used in user mode, seconds",
        Shape::Sample(|s| s.cpu.user.map(seconds))),
    added("ecs_container_cpu_system_seconds_total", Counter, "CPU time used in kernel mode, seconds",
        Shape::Sample(|s| s.cpu.kernel.map(seconds))),
    added("ecs_container_memory_working_set_bytes", Gauge, "Memory usage less inactive page cache, bytes (what the OOM killer weighs)",
        Shape::Sample(|s| { let usage = s.memory.usage?; let inactive = s.memory.inactive_file.unwrap_or(0); Some(Value::Unsigned(usage.saturating_sub(inactive))) })),
    added("ecs_container_memory_rss_bytes", Gauge, "Anonymous memory, bytes (cgroup v1 rss, v2 anon)",
        Shape::Sample(|s| s.memory.rss.map(Value::Unsigned))),
    added("ecs_container_memory_limit_bytes", Gauge, "Hard memory limit from the task definition: the container's, else the task's, bytes",
        Shape::Meta(|c, t| { let mib = c.memory_mib.filter(|&m| m > 0.0); mib.or(t.memory_mib.filter(|&m| m > 0.0)) .map(|mib| number(mib * MIB)) })),
    added("ecs_task_ephemeral_storage_used_bytes", Gauge, "Fargate ephemeral storage in use, bytes",
        Shape::Task(|t| t.ephemeral_used_mib.map(|mib| number(mib * MIB)))),
    added("ecs_task_ephemeral_storage_reserved_bytes", Gauge, "Fargate ephemeral storage reserved, bytes",
        Shape::Task(|t| t.ephemeral_reserved_mib.map(|mib| number(mib * MIB)))),
];

/// What a poll gives the families: the task, its containers' rows, the carried task counters.
pub(super) struct Poll<'a> {
    pub task: &'a Task,
    pub rows: &'a [Row<'a>],
    /// The carried `_task_` counters, sorted by family and interface.
    pub task_counters: &'a [(totals::Key, u64)],
}

/// The disk counters of the table that `io` has, by family name (for the carried totals).
pub(super) fn disk_counters(io: &Io) -> impl Iterator<Item = (&'static str, u64)> + '_ {
    FAMILIES.iter().filter_map(move |def| match def.shape {
        Shape::Disk(pick) => pick(io).map(|v| (def.name, v)),
        _ => None,
    })
}

/// The network counters of the table, by family name (for the carried totals).
pub(super) fn network_counters(n: &Net) -> impl Iterator<Item = (&'static str, u64)> + '_ {
    FAMILIES.iter().filter_map(move |def| match def.shape {
        Shape::Network(pick) => Some((def.name, pick(n))),
        _ => None,
    })
}

/// Every data family of the poll, in order.
pub(super) fn all(poll: &Poll) -> Vec<Family> {
    FAMILIES.iter().map(|def| family(def, poll)).collect()
}

fn family(def: &Def, poll: &Poll) -> Family {
    let mut f = Family::new(def.name, def.kind, def.help);
    f.statsd = def.legacy;
    let rows = || {
        poll.rows.iter().filter(move |r| {
            if def.legacy {
                r.export_legacy
            } else {
                r.export
            }
        })
    };
    let task_row = || vec![("container_name", TASK_ROW.to_owned())];
    match def.shape {
        Shape::Limit { container, task } => {
            for r in rows() {
                if let Some(v) = container(r.meta) {
                    f.push(r.name(), number(v));
                }
            }
            if let Some(v) = task(poll.task) {
                f.push(task_row(), number(v));
            }
        }
        Shape::CpuRatio => {
            for r in rows() {
                if let Some(ratio) = cpu::container_ratio(poll.task, r) {
                    f.push(r.name(), Value::Float(ratio));
                }
            }
            if let Some(ratio) = cpu::task_ratio(poll.task, poll.rows) {
                f.push(task_row(), Value::Float(ratio));
            }
        }
        Shape::PerCpu => {
            for r in rows() {
                let Some(w) = &r.window else { continue };
                for (i, ratio) in w.percpu.iter().enumerate() {
                    if let Some(ratio) = ratio {
                        let mut labels = r.name();
                        labels.push(("cpu", i.to_string()));
                        f.push(labels, Value::Float(*ratio));
                    }
                }
            }
        }
        Shape::Window(pick) => {
            for r in rows() {
                if let Some(ns) = r.window.as_ref().and_then(pick) {
                    f.push(r.name(), Value::Unsigned(ns));
                }
            }
        }
        Shape::Sample(pick) => {
            for r in rows() {
                if let Some(v) = r.sample.and_then(pick) {
                    f.push(r.name(), v);
                }
            }
        }
        Shape::Summed(pick) => {
            for r in rows() {
                if let Some(v) = r.sample.and_then(pick) {
                    f.push(r.name(), Value::Unsigned(v));
                }
            }
            let values = poll.rows.iter().filter_map(|r| r.sample.and_then(pick));
            if let Some(total) = values.reduce(u64::saturating_add) {
                f.push(task_row(), Value::Unsigned(total));
            }
        }
        Shape::Disk(pick) => {
            for r in rows() {
                if let Some(v) = r.sample.and(pick(&r.disk)) {
                    f.push(r.name(), Value::Unsigned(v));
                }
            }
            for (_, v) in poll.task_counters.iter().filter(|(k, _)| k.0 == def.name) {
                f.push(task_row(), Value::Unsigned(*v));
            }
        }
        Shape::Network(pick) => {
            for r in rows() {
                let Some(s) = r.sample else { continue };
                for (interface, n) in &s.networks {
                    let mut labels = r.name();
                    labels.push(("interface", interface.clone()));
                    f.push(labels, Value::Unsigned(pick(n)));
                }
            }
            let family_rows = poll.task_counters.iter().filter(|(k, _)| k.0 == def.name);
            for ((_, interface), v) in family_rows {
                let mut labels = task_row();
                labels.push(("interface", interface.clone()));
                f.push(labels, Value::Unsigned(*v));
            }
        }
        Shape::Meta(pick) => {
            for r in rows() {
                if let Some(v) = pick(r.meta, poll.task) {
                    f.push(r.name(), v);
                }
            }
        }
        Shape::Task(pick) => {
            if let Some(v) = pick(poll.task) {
                f.push(Vec::new(), v);
            }
        }
        Shape::TaskInfo => f.push(task_info(poll.task), Value::Unsigned(1)),
        Shape::ContainerInfo => {
            for r in rows() {
                let mut labels = r.name();
                for (k, v) in [
                    ("docker_id", &r.meta.docker_id),
                    ("image", &r.meta.image),
                    ("image_id", &r.meta.image_id),
                ] {
                    if !v.is_empty() {
                        labels.push((k, v.clone()));
                    }
                }
                f.push(labels, Value::Unsigned(1));
            }
        }
        Shape::KnownStatus => {
            for r in rows().filter(|r| !r.meta.known_status.is_empty()) {
                let mut labels = r.name();
                labels.push(("status", r.meta.known_status.clone()));
                f.push(labels, Value::Unsigned(1));
            }
        }
        Shape::Health => {
            for r in rows() {
                let Some(status) = &r.meta.health else {
                    continue;
                };
                let current = match status.to_ascii_lowercase().as_str() {
                    "healthy" => "healthy",
                    "unhealthy" => "unhealthy",
                    _ => "unknown",
                };
                for state in ["healthy", "unhealthy", "unknown"] {
                    let mut labels = r.name();
                    labels.push(("status", state.to_owned()));
                    f.push(labels, Value::Unsigned(u64::from(state == current)));
                }
            }
        }
    }
    f
}

/// The labels of `ecs_task_info`: the task's identity, empty ones left out.
fn task_info(task: &Task) -> Vec<(&'static str, String)> {
    [
        ("cluster", short_cluster(&task.cluster)),
        ("task_arn", task.task_arn.as_str()),
        ("family", task.family.as_str()),
        ("revision", task.revision.as_str()),
        ("launch_type", task.launch_type.as_str()),
        ("availability_zone", task.availability_zone.as_str()),
        ("service_name", task.service_name.as_str()),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| (k, v.to_owned()))
    .collect()
}

/// ns as seconds.
fn seconds(ns: u64) -> Value {
    Value::Float(ns as f64 / 1e9)
}

/// A float that is a whole number is written as one.
fn number(f: f64) -> Value {
    if f.fract() == 0.0 && (0.0..9.007_199_254_740_992e15).contains(&f) {
        Value::Unsigned(f as u64)
    } else {
        Value::Float(f)
    }
}
