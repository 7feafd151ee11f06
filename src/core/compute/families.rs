//! Every data family of a snapshot, as one table: name, type, help, and the shape that says where
//! its values come from. One helper per shape writes the family, so adding a family is one row.
//!
//! Each rule that applies to some families only is a property of the row, named after the rule:
//! `dogstatsd` (also sent as DogStatsD lines), `reserves_task_name` (`_task_` means the task: no
//! container gets a row under that name), `carried` (the `_task_` rows are the carried totals of
//! `totals.rs`, which keep exactly the counters so marked). The 2.x families (SPEC §3.1) come
//! first, then the families added by this exporter (SPEC §3.2). The order of the table is the
//! order of the exposition.
//!
//! Out of scope: the exporter's own families (`core::health`), windows and totals (computed
//! before, in `cpu.rs` and `totals.rs`).

use crate::core::filter::MetricFilter;
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
    /// A disk counter; the `_task_` row, when `carried`, from `totals.rs`.
    Disk(fn(&Io) -> Option<u64>),
    /// A network counter per interface; the `_task_` rows, when `carried`, from `totals.rs`.
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

/// One family of the table: what it is, where its values come from, and three properties, each
/// for one rule.
struct Def {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    shape: Shape,
    /// Also sent as DogStatsD lines (`Family::dogstatsd`): the 2.x families (SPEC §3.1).
    dogstatsd: bool,
    /// `container_name="_task_"` means the task in this family, as in 2.x: a container named
    /// `_task_` gets no row of its own here (its rows would collide with the task's).
    reserves_task_name: bool,
    /// The `_task_` rows are task totals carried across restarts, stops and departures
    /// (`totals.rs`, SPEC §3.1.1): the counters the totals keep are the rows that say so. Only
    /// with [`Shape::Disk`] and [`Shape::Network`]; without it, those shapes write no `_task_` row.
    carried: bool,
}

/// A row of the table, with none of the properties: each is added by its own method.
const fn row(name: &'static str, kind: Kind, help: &'static str, shape: Shape) -> Def {
    Def {
        name,
        kind,
        help,
        shape,
        dogstatsd: false,
        reserves_task_name: false,
        carried: false,
    }
}

impl Def {
    const fn dogstatsd(mut self) -> Def {
        self.dogstatsd = true;
        self
    }

    const fn reserves_task_name(mut self) -> Def {
        self.reserves_task_name = true;
        self
    }

    const fn carried(mut self) -> Def {
        self.carried = true;
        self
    }
}

use Kind::{Counter, Gauge};

/// Every data family, in exposition order: one row each.
#[rustfmt::skip]
const FAMILIES: [Def; 38] = [
    row("ecs_task_cpu_limit", Gauge, "CPU limit in CPU units (1024 = 1 vCPU)",
        Shape::Limit { container: cpu::container_units, task: |t| cpu::task_vcpus(t).map(|v| v * 1024.0) }).dogstatsd().reserves_task_name(),
    row("ecs_task_mem_limit", Gauge, "Memory limit in MiB",
        Shape::Limit { container: |c| c.memory_mib.filter(|&m| m > 0.0), task: |t| t.memory_mib.filter(|&m| m > 0.0) }).dogstatsd().reserves_task_name(),
    row("ecs_task_cpu_usage_ratio", Gauge, "CPU used over the sampling window, as a fraction of the container's (else the task's, else the host's) CPU limit",
        Shape::CpuRatio).dogstatsd().reserves_task_name(),
    row("ecs_task_percpu_usage_ratio", Gauge, "CPU used on each host CPU over the sampling window, as a fraction of all host CPU time (cgroup v1)",
        Shape::PerCpu).dogstatsd().reserves_task_name(),
    row("ecs_task_cpu_kernelmode", Gauge, "CPU time in kernel mode over the sampling window, ns",
        Shape::Window(|w| w.kernel)).dogstatsd().reserves_task_name(),
    row("ecs_task_cpu_usermode", Gauge, "CPU time in user mode over the sampling window, ns",
        Shape::Window(|w| w.user)).dogstatsd().reserves_task_name(),
    row("ecs_task_cpu_throttle_periods", Gauge, "CFS enforcement periods elapsed (cumulative)",
        Shape::Sample(|s| s.throttling.map(|t| Value::Unsigned(t.periods)))).dogstatsd().reserves_task_name(),
    row("ecs_task_cpu_throttle_throttled_periods", Gauge, "CFS periods in which the container was throttled (cumulative)",
        Shape::Sample(|s| s.throttling.map(|t| Value::Unsigned(t.throttled_periods)))).dogstatsd().reserves_task_name(),
    row("ecs_task_cpu_throttle_throttled_time", Gauge, "Time the container was throttled, ns (cumulative)",
        Shape::Sample(|s| s.throttling.map(|t| Value::Unsigned(t.throttled_time)))).dogstatsd().reserves_task_name(),
    row("ecs_task_mem_usage", Gauge, "Memory usage in bytes, page cache included",
        Shape::Summed(|s| s.memory.usage)).dogstatsd().reserves_task_name(),
    row("ecs_task_mem_cache", Gauge, "Page cache in bytes (cgroup v1 cache, v2 file)",
        Shape::Summed(|s| s.memory.cache)).dogstatsd().reserves_task_name(),
    row("ecs_task_disk_read_bytes_total", Counter, "Bytes read from block devices",
        Shape::Disk(|d| d.read_bytes)).dogstatsd().reserves_task_name().carried(),
    row("ecs_task_disk_written_bytes_total", Counter, "Bytes written to block devices",
        Shape::Disk(|d| d.write_bytes)).dogstatsd().reserves_task_name().carried(),
    row("ecs_task_disk_read_iops_total", Counter, "Read operations on block devices",
        Shape::Disk(|d| d.read_ops)).dogstatsd().reserves_task_name().carried(),
    row("ecs_task_disk_written_iops_total", Counter, "Write operations on block devices",
        Shape::Disk(|d| d.write_ops)).dogstatsd().reserves_task_name().carried(),
    row("ecs_task_network_rx_bytes_total", Counter, "Bytes received",
        Shape::Network(|n| n.rx_bytes)).dogstatsd().reserves_task_name().carried(),
    row("ecs_task_network_rx_packets_total", Counter, "Packets received",
        Shape::Network(|n| n.rx_packets)).dogstatsd().reserves_task_name().carried(),
    row("ecs_task_network_rx_errors_total", Counter, "Receive errors",
        Shape::Network(|n| n.rx_errors)).dogstatsd().reserves_task_name().carried(),
    row("ecs_task_network_rx_dropped_total", Counter, "Received packets dropped",
        Shape::Network(|n| n.rx_dropped)).dogstatsd().reserves_task_name().carried(),
    row("ecs_task_network_tx_bytes_total", Counter, "Bytes transmitted",
        Shape::Network(|n| n.tx_bytes)).dogstatsd().reserves_task_name().carried(),
    row("ecs_task_network_tx_packets_total", Counter, "Packets transmitted",
        Shape::Network(|n| n.tx_packets)).dogstatsd().reserves_task_name().carried(),
    row("ecs_task_network_tx_errors_total", Counter, "Transmit errors",
        Shape::Network(|n| n.tx_errors)).dogstatsd().reserves_task_name().carried(),
    row("ecs_task_network_tx_dropped_total", Counter, "Transmitted packets dropped",
        Shape::Network(|n| n.tx_dropped)).dogstatsd().reserves_task_name().carried(),
    row("ecs_task_info", Gauge, "Task metadata, value 1",
        Shape::TaskInfo),
    row("ecs_container_info", Gauge, "Container metadata, value 1",
        Shape::ContainerInfo),
    row("ecs_container_known_status", Gauge, "The container's KnownStatus, value 1",
        Shape::KnownStatus),
    row("ecs_container_health_status", Gauge, "1 for the container's current health check state, 0 for the others",
        Shape::Health),
    row("ecs_container_restarts_total", Counter, "Restarts of the container (RestartCount)",
        Shape::Meta(|c, _| c.restart_count.map(Value::Unsigned))),
    row("ecs_container_exit_code", Gauge, "Exit code of a stopped container",
        Shape::Meta(|c, _| c.exit_code.map(Value::Signed))),
    row("ecs_container_start_time_seconds", Gauge, "When the container started, Unix time",
        Shape::Meta(|c, _| c.started_at.map(Value::Float))),
    row("ecs_container_cpu_usage_seconds_total", Counter, "CPU time used, seconds",
        Shape::Sample(|s| s.cpu.total.map(seconds))),
    row("ecs_container_cpu_user_seconds_total", Counter, "CPU time used in user mode, seconds",
        Shape::Sample(|s| s.cpu.user.map(seconds))),
    row("ecs_container_cpu_system_seconds_total", Counter, "CPU time used in kernel mode, seconds",
        Shape::Sample(|s| s.cpu.kernel.map(seconds))),
    row("ecs_container_memory_working_set_bytes", Gauge, "Memory usage less inactive page cache, bytes (what the OOM killer weighs)",
        Shape::Sample(|s| { let usage = s.memory.usage?; let inactive = s.memory.inactive_file.unwrap_or(0); Some(Value::Unsigned(usage.saturating_sub(inactive))) })),
    row("ecs_container_memory_rss_bytes", Gauge, "Anonymous memory, bytes (cgroup v1 rss, v2 anon)",
        Shape::Sample(|s| s.memory.rss.map(Value::Unsigned))),
    row("ecs_container_memory_limit_bytes", Gauge, "Hard memory limit from the task definition: the container's, else the task's, bytes",
        Shape::Meta(|c, t| { let mib = c.memory_mib.filter(|&m| m > 0.0); mib.or(t.memory_mib.filter(|&m| m > 0.0)) .map(|mib| number(mib * MIB)) })),
    row("ecs_task_ephemeral_storage_used_bytes", Gauge, "Fargate ephemeral storage in use, bytes",
        Shape::Task(|t| t.ephemeral_used_mib.map(|mib| number(mib * MIB)))),
    row("ecs_task_ephemeral_storage_reserved_bytes", Gauge, "Fargate ephemeral storage reserved, bytes",
        Shape::Task(|t| t.ephemeral_reserved_mib.map(|mib| number(mib * MIB)))),
];

/// What a poll gives the families: the task, its containers' rows, the carried task counters.
pub(super) struct Poll<'a> {
    pub task: &'a Task,
    pub rows: &'a [Row<'a>],
    /// The `_task_` values of the `carried` families, sorted by family and interface.
    pub task_counters: &'a [(totals::Key, u64)],
}

/// The name of every data family, in exposition order.
pub fn names() -> impl Iterator<Item = &'static str> {
    FAMILIES.iter().map(|def| def.name)
}

/// Whether a family `keep` allows needs the CPU windows of the containers.
pub(super) fn need_windows(keep: &MetricFilter) -> bool {
    FAMILIES.iter().any(|def| {
        matches!(
            def.shape,
            Shape::CpuRatio | Shape::PerCpu | Shape::Window(_)
        ) && keep.allows(def.name)
    })
}

/// Whether a family `keep` allows needs the containers' disk sums.
pub(super) fn need_disk(keep: &MetricFilter) -> bool {
    FAMILIES
        .iter()
        .any(|def| matches!(def.shape, Shape::Disk(_)) && keep.allows(def.name))
}

/// The `carried` disk counters that `io` has, by family name, of the families `keep` allows:
/// what the totals keep.
pub(super) fn carried_disk_counters<'a>(
    io: &'a Io,
    keep: &'a MetricFilter,
) -> impl Iterator<Item = (&'static str, u64)> + 'a {
    FAMILIES
        .iter()
        .filter(|def| def.carried && keep.allows(def.name))
        .filter_map(move |def| match def.shape {
            Shape::Disk(pick) => pick(io).map(|v| (def.name, v)),
            _ => None,
        })
}

/// The `carried` network counters of one interface, by family name, of the families `keep`
/// allows: what the totals keep.
pub(super) fn carried_network_counters<'a>(
    n: &'a Net,
    keep: &'a MetricFilter,
) -> impl Iterator<Item = (&'static str, u64)> + 'a {
    FAMILIES
        .iter()
        .filter(|def| def.carried && keep.allows(def.name))
        .filter_map(move |def| match def.shape {
            Shape::Network(pick) => Some((def.name, pick(n))),
            _ => None,
        })
}

/// Every data family of the poll that `keep` allows, in order; the others are not computed.
pub(super) fn all(poll: &Poll, keep: &MetricFilter) -> Vec<Family> {
    FAMILIES
        .iter()
        .filter(|def| keep.allows(def.name))
        .map(|def| family(def, poll))
        .collect()
}

fn family(def: &Def, poll: &Poll) -> Family {
    let mut f = Family::new(def.name, def.kind, def.help);
    f.dogstatsd = def.dogstatsd;
    let rows = || {
        poll.rows
            .iter()
            .filter(move |r| r.export && !(def.reserves_task_name && r.meta.name == TASK_ROW))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Each property's rule holds where the table sets it, and a family with `_task_` rows
    /// reserves the name for them.
    #[test]
    fn the_properties_fit_the_shapes() {
        for def in &FAMILIES {
            let counters = matches!(def.shape, Shape::Disk(_) | Shape::Network(_));
            if def.carried {
                assert!(
                    counters,
                    "{}: only disk and network counters are carried",
                    def.name
                );
                assert_eq!(def.kind, Counter, "{}", def.name);
            }
            let task_rows = def.carried
                || matches!(
                    def.shape,
                    Shape::Limit { .. } | Shape::CpuRatio | Shape::Summed(_)
                );
            if task_rows {
                assert!(def.reserves_task_name, "{}: has _task_ rows", def.name);
            }
        }
    }

    /// What the totals keep, by name: a new counter row is carried only when it says so.
    #[test]
    fn the_totals_keep_the_carried_counters() {
        let io = Io {
            read_bytes: Some(1),
            write_bytes: Some(2),
            read_ops: Some(3),
            write_ops: Some(4),
        };
        let all = MetricFilter::default();
        let disk: Vec<_> = carried_disk_counters(&io, &all).collect();
        assert_eq!(
            disk,
            [
                ("ecs_task_disk_read_bytes_total", 1),
                ("ecs_task_disk_written_bytes_total", 2),
                ("ecs_task_disk_read_iops_total", 3),
                ("ecs_task_disk_written_iops_total", 4),
            ]
        );
        let network: Vec<_> = carried_network_counters(&Net::default(), &all)
            .map(|(name, _)| name)
            .collect();
        assert_eq!(network.len(), 8);
        assert!(network.iter().all(|n| n.starts_with("ecs_task_network_")));
        let carried = FAMILIES.iter().filter(|d| d.carried).count();
        assert_eq!(carried, disk.len() + network.len());
    }
}
