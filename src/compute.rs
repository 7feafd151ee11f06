//! Metrics from one poll: `(task, stats, history) → (snapshot, history)`, a pure function.
//!
//! This is where every formula of SPEC §3 lives. The caller keeps the returned [`History`] and
//! hands it back on the next poll: it holds each container's last reading (to make a sampling
//! window between two polls) and the last window's CPU figures (republished while the endpoint's
//! `read` has not advanced, as on Fargate, which refreshes stats about every 10 s).
//!
//! Windows are decided once per container in [`window_for`]; the arithmetic in [`cpu_window`]
//! takes two readings and is checked: a counter that went down (a restart) or a window of zero
//! length gives no window, never a negative, infinite or NaN ratio.
//!
//! Out of scope: I/O, clocks, the self-metrics of the poller (`snapshot::Health`), formatting.

use std::collections::{BTreeMap, HashMap};

use crate::payload::{Container, Cpu, Net, Sample, Stats, Task};
use crate::snapshot::{Endpoint, Family, Health, Kind, Reason, Snapshot, TaskTags, Value};

/// The `container_name` of the task-wide rows, as in 2.x.
pub const TASK_ROW: &str = "_task_";

/// Which containers get per-container series (`INCLUDE`/`EXCLUDE`). Task totals ignore it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Export only these names; empty means all.
    pub include: Vec<String>,
    /// Never export these names.
    pub exclude: Vec<String>,
}

impl Filter {
    pub fn exports(&self, name: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|n| n == name))
            && !self.exclude.iter().any(|n| n == name)
    }
}

/// What one poll leaves for the next, keyed by `DockerId`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    containers: HashMap<String, Previous>,
}

#[derive(Debug, Clone, PartialEq)]
struct Previous {
    read: i128,
    cpu: Cpu,
    window: Option<Window>,
}

/// CPU use over one sampling window.
#[derive(Debug, Clone, PartialEq)]
struct Window {
    /// Cores busy on average over the window.
    cores: f64,
    /// CPUs the container could see (for "no scaling": the fraction of the host).
    online: Option<u32>,
    /// Δpercpu[i] / Δsystem_cpu_usage, for i < online_cpus (cgroup v1 with `system_cpu_usage`).
    percpu: Vec<Option<f64>>,
    /// ns of kernel and user CPU in the window.
    kernel: Option<u64>,
    user: Option<u64>,
}

/// One container of the task, with what this poll knows of it.
struct Row<'a> {
    meta: &'a Container,
    sample: Option<&'a Sample>,
    window: Option<Window>,
    export: bool,
}

impl Row<'_> {
    fn name(&self) -> Vec<(&'static str, String)> {
        vec![("container_name", self.meta.name.clone())]
    }
}

/// Computes the snapshot of one poll, and the history for the next.
pub fn compute(
    task: &Task,
    stats: &Stats,
    history: &History,
    filter: &Filter,
) -> (Snapshot, History) {
    let rows: Vec<Row> = task
        .containers
        .iter()
        .map(|meta| {
            let sample = (meta.known_status != "STOPPED")
                .then(|| stats.get(&meta.docker_id).and_then(Option::as_ref))
                .flatten();
            let window =
                sample.and_then(|s| window_for(history.containers.get(&meta.docker_id), s));
            Row {
                meta,
                sample,
                window,
                export: filter.exports(&meta.name),
            }
        })
        .collect();

    let next = History {
        containers: rows
            .iter()
            .filter_map(|r| {
                let s = r.sample?;
                Some((
                    r.meta.docker_id.clone(),
                    Previous {
                        read: s.read,
                        cpu: s.cpu.clone(),
                        window: r.window.clone(),
                    },
                ))
            })
            .collect(),
    };

    let mut families = Vec::with_capacity(48);
    legacy_families(task, &rows, &mut families);
    new_families(task, &rows, &mut families);
    // Absurd inputs (a limit of 1e-320 vCPU, 1e308 MiB) must not become `+Inf` samples.
    for family in &mut families {
        family
            .series
            .retain(|s| !matches!(s.value, Value::Float(v) if !v.is_finite()));
    }
    let snapshot = Snapshot {
        tags: TaskTags {
            cluster: short_cluster(&task.cluster).to_owned(),
            family: task.family.clone(),
            revision: task.revision.clone(),
        },
        families,
    };
    (snapshot, next)
}

/// Picks the window for a container: against the previous poll when there is one, else against
/// the sample's own `precpu_stats` when that is a real reading.
fn window_for(previous: Option<&Previous>, s: &Sample) -> Option<Window> {
    match previous {
        Some(p) if s.read == p.read => p.window.clone(),
        Some(p) if s.read > p.read => cpu_window(&p.cpu, p.read, &s.cpu, s.read),
        Some(_) => None,
        None => {
            let pre = &s.precpu;
            let system_ok = match (pre.system, s.cpu.system) {
                (Some(p), _) => p > 0,
                (None, None) => true,
                (None, Some(_)) => false,
            };
            let preread = s.preread.filter(|&t| s.read > t)?;
            (pre.total.unwrap_or(0) > 0 && system_ok)
                .then(|| cpu_window(pre, preread, &s.cpu, s.read))
                .flatten()
        }
    }
}

/// CPU use between two readings `a` (at `ta`) and `b` (at `tb > ta`), both cumulative.
fn cpu_window(a: &Cpu, ta: i128, b: &Cpu, tb: i128) -> Option<Window> {
    let total = b.total?.checked_sub(a.total?)? as f64;
    let online = b
        .online_cpus
        .or(a.online_cpus)
        .or_else(|| percpu_count(&b.percpu));
    let (cores, percpu) = match (a.system, b.system) {
        (Some(sa), Some(sb)) => {
            let system = sb.checked_sub(sa).filter(|&d| d > 0)? as f64;
            let cores = total / system * f64::from(online?);
            let n = (online? as usize).min(a.percpu.len()).min(b.percpu.len());
            let percpu = (0..n)
                .map(|i| Some(b.percpu[i].checked_sub(a.percpu[i])? as f64 / system))
                .collect();
            (cores, percpu)
        }
        _ => {
            let elapsed = u64::try_from(tb - ta).ok().filter(|&d| d > 0)? as f64;
            (total / elapsed, Vec::new())
        }
    };
    cores.is_finite().then(|| Window {
        cores,
        online,
        percpu,
        kernel: b.kernel.zip(a.kernel).and_then(|(b, a)| b.checked_sub(a)),
        user: b.user.zip(a.user).and_then(|(b, a)| b.checked_sub(a)),
    })
}

/// Docker's fallback for a missing `online_cpus`: the length of `percpu_usage`, here without the
/// zero padding that some agents add (15 entries on a 2-CPU host).
fn percpu_count(percpu: &[u64]) -> Option<u32> {
    let used = percpu.iter().rposition(|&v| v > 0)? + 1;
    u32::try_from(used).ok()
}

/// `arn:aws:ecs:region:account:cluster/name` → `name`; a short name stays as it is.
pub fn short_cluster(cluster: &str) -> &str {
    if cluster.starts_with("arn:") {
        cluster.rsplit('/').next().unwrap_or(cluster)
    } else {
        cluster
    }
}

/// A float that is a whole number is written as one.
fn number(f: f64) -> Value {
    if f.fract() == 0.0 && (0.0..9.007_199_254_740_992e15).contains(&f) {
        Value::Unsigned(f as u64)
    } else {
        Value::Float(f)
    }
}

const MIB: f64 = 1_048_576.0;

/// The task's vCPU limit, when set (`Limits.CPU` > 0).
fn task_vcpus(task: &Task) -> Option<f64> {
    task.cpu_vcpus.filter(|&v| v > 0.0)
}

/// The container's CPU limit in units, when set (2 is what ECS shows for "none").
fn container_units(c: &Container) -> Option<f64> {
    c.cpu_units.filter(|&u| u > 2.0)
}

/// The 2.x families (SPEC §3.1), with their `_task_` rows.
fn legacy_families(task: &Task, rows: &[Row], out: &mut Vec<Family>) {
    let task_row = || vec![("container_name", TASK_ROW.to_owned())];
    let exported = || rows.iter().filter(|r| r.export);

    // Limits.
    let mut f = Family::new(
        "ecs_task_cpu_limit",
        Kind::Gauge,
        "CPU limit in CPU units (1024 = 1 vCPU)",
    )
    .legacy();
    for r in exported() {
        if let Some(units) = container_units(r.meta) {
            f.push(r.name(), number(units));
        }
    }
    if let Some(v) = task_vcpus(task) {
        f.push(task_row(), number(v * 1024.0));
    }
    out.push(f);

    let mut f = Family::new("ecs_task_mem_limit", Kind::Gauge, "Memory limit in MiB").legacy();
    for r in exported() {
        if let Some(mib) = r.meta.memory_mib.filter(|&m| m > 0.0) {
            f.push(r.name(), number(mib));
        }
    }
    if let Some(mib) = task.memory_mib.filter(|&m| m > 0.0) {
        f.push(task_row(), number(mib));
    }
    out.push(f);

    // CPU over the window.
    let task_limit = task_vcpus(task);
    let mut f = Family::new(
        "ecs_task_cpu_usage_ratio",
        Kind::Gauge,
        "CPU used over the sampling window, as a fraction of the container's (else the task's, else the host's) CPU limit",
    )
    .legacy();
    for r in exported() {
        let Some(w) = &r.window else { continue };
        let limit = match (container_units(r.meta), task_limit) {
            (Some(units), _) => Some(units / 1024.0),
            (None, Some(vcpus)) => Some(vcpus),
            (None, None) => w.online.map(f64::from),
        };
        if let Some(limit) = limit {
            f.push(r.name(), Value::Float(w.cores / limit));
        }
    }
    let windows: Vec<&Window> = rows.iter().filter_map(|r| r.window.as_ref()).collect();
    if !windows.is_empty() {
        let cores: f64 = windows.iter().map(|w| w.cores).sum();
        let limit =
            task_limit.or_else(|| windows.iter().filter_map(|w| w.online).max().map(f64::from));
        if let Some(limit) = limit {
            f.push(task_row(), Value::Float(cores / limit));
        }
    }
    out.push(f);

    let mut f = Family::new(
        "ecs_task_percpu_usage_ratio",
        Kind::Gauge,
        "CPU used on each host CPU over the sampling window, as a fraction of all host CPU time (cgroup v1)",
    )
    .legacy();
    for r in exported() {
        let Some(w) = &r.window else { continue };
        for (i, ratio) in w.percpu.iter().enumerate() {
            if let Some(ratio) = ratio {
                let mut labels = r.name();
                labels.push(("cpu", i.to_string()));
                f.push(labels, Value::Float(*ratio));
            }
        }
    }
    out.push(f);

    type WindowPick = fn(&Window) -> Option<u64>;
    let window_ns: [(&'static str, &'static str, WindowPick); 2] = [
        (
            "ecs_task_cpu_kernelmode",
            "CPU time in kernel mode over the sampling window, ns",
            |w| w.kernel,
        ),
        (
            "ecs_task_cpu_usermode",
            "CPU time in user mode over the sampling window, ns",
            |w| w.user,
        ),
    ];
    for (name, help, get) in window_ns {
        let mut f = Family::new(name, Kind::Gauge, help).legacy();
        for r in exported() {
            if let Some(ns) = r.window.as_ref().and_then(get) {
                f.push(r.name(), Value::Unsigned(ns));
            }
        }
        out.push(f);
    }

    type ThrottlePick = fn(&crate::payload::Throttling) -> u64;
    let throttling: [(&'static str, &'static str, ThrottlePick); 3] = [
        (
            "ecs_task_cpu_throttle_periods",
            "CFS enforcement periods elapsed (cumulative)",
            |t| t.periods,
        ),
        (
            "ecs_task_cpu_throttle_throttled_periods",
            "CFS periods in which the container was throttled (cumulative)",
            |t| t.throttled_periods,
        ),
        (
            "ecs_task_cpu_throttle_throttled_time",
            "Time the container was throttled, ns (cumulative)",
            |t| t.throttled_time,
        ),
    ];
    for (name, help, get) in throttling {
        let mut f = Family::new(name, Kind::Gauge, help).legacy();
        for r in exported() {
            if let Some(t) = r.sample.and_then(|s| s.throttling.as_ref()) {
                f.push(r.name(), Value::Unsigned(get(t)));
            }
        }
        out.push(f);
    }

    // Memory and disk: per container as read, `_task_` the sum over every container with data.
    type Pick = fn(&Sample) -> Option<u64>;
    let summed: [(&'static str, Kind, &'static str, Pick); 6] = [
        (
            "ecs_task_mem_usage",
            Kind::Gauge,
            "Memory usage in bytes, page cache included",
            |s| s.memory.usage,
        ),
        (
            "ecs_task_mem_cache",
            Kind::Gauge,
            "Page cache in bytes (cgroup v1 cache, v2 file)",
            |s| s.memory.cache,
        ),
        (
            "ecs_task_disk_read_bytes_total",
            Kind::Counter,
            "Bytes read from block devices",
            |s| s.disk.read_bytes,
        ),
        (
            "ecs_task_disk_written_bytes_total",
            Kind::Counter,
            "Bytes written to block devices",
            |s| s.disk.write_bytes,
        ),
        (
            "ecs_task_disk_read_iops_total",
            Kind::Counter,
            "Read operations on block devices",
            |s| s.disk.read_ops,
        ),
        (
            "ecs_task_disk_written_iops_total",
            Kind::Counter,
            "Write operations on block devices",
            |s| s.disk.write_ops,
        ),
    ];
    for (name, kind, help, pick) in summed {
        let mut f = Family::new(name, kind, help).legacy();
        for r in exported() {
            if let Some(v) = r.sample.and_then(pick) {
                f.push(r.name(), Value::Unsigned(v));
            }
        }
        let values: Vec<u64> = rows
            .iter()
            .filter_map(|r| r.sample.and_then(pick))
            .collect();
        if !values.is_empty() {
            let sum = values.into_iter().fold(0u64, u64::saturating_add);
            f.push(task_row(), Value::Unsigned(sum));
        }
        out.push(f);
    }

    network_families(task, rows, out);
}

type NetPick = fn(&Net) -> u64;
const NETWORK: [(&str, &str, NetPick); 8] = [
    ("ecs_task_network_rx_bytes_total", "Bytes received", |n| {
        n.rx_bytes
    }),
    (
        "ecs_task_network_rx_packets_total",
        "Packets received",
        |n| n.rx_packets,
    ),
    ("ecs_task_network_rx_errors_total", "Receive errors", |n| {
        n.rx_errors
    }),
    (
        "ecs_task_network_rx_dropped_total",
        "Received packets dropped",
        |n| n.rx_dropped,
    ),
    (
        "ecs_task_network_tx_bytes_total",
        "Bytes transmitted",
        |n| n.tx_bytes,
    ),
    (
        "ecs_task_network_tx_packets_total",
        "Packets transmitted",
        |n| n.tx_packets,
    ),
    ("ecs_task_network_tx_errors_total", "Transmit errors", |n| {
        n.tx_errors
    }),
    (
        "ecs_task_network_tx_dropped_total",
        "Transmitted packets dropped",
        |n| n.tx_dropped,
    ),
];

/// Network counters per container and interface. `_task_`: in `awsvpc` and `host` mode every
/// container sees the task's one interface, so each interface counts once (the largest value,
/// the latest read); in `bridge` mode each container has its own, so they add up.
fn network_families(task: &Task, rows: &[Row], out: &mut Vec<Family>) {
    let shared = task.launch_type.eq_ignore_ascii_case("FARGATE")
        || rows.iter().any(|r| {
            r.meta
                .network_mode
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case("awsvpc") || m.eq_ignore_ascii_case("host"))
        });
    for (name, help, pick) in NETWORK {
        let mut f = Family::new(name, Kind::Counter, help).legacy();
        let mut task_total: BTreeMap<&str, u64> = BTreeMap::new();
        for r in rows {
            let Some(s) = r.sample else { continue };
            for (interface, n) in &s.networks {
                let v = pick(n);
                if r.export {
                    let mut labels = r.name();
                    labels.push(("interface", interface.clone()));
                    f.push(labels, Value::Unsigned(v));
                }
                let total = task_total.entry(interface).or_insert(0);
                *total = if shared {
                    (*total).max(v)
                } else {
                    total.saturating_add(v)
                };
            }
        }
        for (interface, v) in task_total {
            f.push(
                vec![
                    ("container_name", TASK_ROW.to_owned()),
                    ("interface", interface.to_owned()),
                ],
                Value::Unsigned(v),
            );
        }
        out.push(f);
    }
}

/// The families added by this exporter (SPEC §3.2), except the self-metrics.
fn new_families(task: &Task, rows: &[Row], out: &mut Vec<Family>) {
    let exported = || rows.iter().filter(|r| r.export);

    let mut f = Family::new("ecs_task_info", Kind::Gauge, "Task metadata, value 1");
    let labels = [
        ("cluster", short_cluster(&task.cluster)),
        ("task_arn", task.task_arn.as_str()),
        ("family", task.family.as_str()),
        ("revision", task.revision.as_str()),
        ("launch_type", task.launch_type.as_str()),
        ("availability_zone", task.availability_zone.as_str()),
        ("service_name", task.service_name.as_str()),
    ];
    f.push(
        labels
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (*k, (*v).to_owned()))
            .collect(),
        Value::Unsigned(1),
    );
    out.push(f);

    let mut f = Family::new(
        "ecs_container_info",
        Kind::Gauge,
        "Container metadata, value 1",
    );
    for r in exported() {
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
    out.push(f);

    let mut f = Family::new(
        "ecs_container_known_status",
        Kind::Gauge,
        "The container's KnownStatus, value 1",
    );
    for r in exported().filter(|r| !r.meta.known_status.is_empty()) {
        let mut labels = r.name();
        labels.push(("status", r.meta.known_status.clone()));
        f.push(labels, Value::Unsigned(1));
    }
    out.push(f);

    let mut f = Family::new(
        "ecs_container_health_status",
        Kind::Gauge,
        "1 for the container's current health check state, 0 for the others",
    );
    for r in exported() {
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
    out.push(f);

    let mut f = Family::new(
        "ecs_container_restarts_total",
        Kind::Counter,
        "Restarts of the container (RestartCount)",
    );
    for r in exported() {
        if let Some(n) = r.meta.restart_count {
            f.push(r.name(), Value::Unsigned(n));
        }
    }
    out.push(f);

    let mut f = Family::new(
        "ecs_container_exit_code",
        Kind::Gauge,
        "Exit code of a stopped container",
    );
    for r in exported() {
        if let Some(code) = r.meta.exit_code {
            f.push(r.name(), Value::Signed(code));
        }
    }
    out.push(f);

    let mut f = Family::new(
        "ecs_container_start_time_seconds",
        Kind::Gauge,
        "When the container started, Unix time",
    );
    for r in exported() {
        if let Some(t) = r.meta.started_at {
            f.push(r.name(), Value::Float(t));
        }
    }
    out.push(f);

    type Pick = fn(&Sample) -> Option<Value>;
    let per_sample: [(&'static str, Kind, &'static str, Pick); 5] = [
        (
            "ecs_container_cpu_usage_seconds_total",
            Kind::Counter,
            "CPU time used, seconds",
            |s| s.cpu.total.map(|ns| Value::Float(ns as f64 / 1e9)),
        ),
        (
            "ecs_container_cpu_user_seconds_total",
            Kind::Counter,
            "CPU time used in user mode, seconds",
            |s| s.cpu.user.map(|ns| Value::Float(ns as f64 / 1e9)),
        ),
        (
            "ecs_container_cpu_system_seconds_total",
            Kind::Counter,
            "CPU time used in kernel mode, seconds",
            |s| s.cpu.kernel.map(|ns| Value::Float(ns as f64 / 1e9)),
        ),
        (
            "ecs_container_memory_working_set_bytes",
            Kind::Gauge,
            "Memory usage less inactive page cache, bytes (what the OOM killer weighs)",
            |s| {
                let usage = s.memory.usage?;
                Some(Value::Unsigned(
                    usage.saturating_sub(s.memory.inactive_file.unwrap_or(0)),
                ))
            },
        ),
        (
            "ecs_container_memory_rss_bytes",
            Kind::Gauge,
            "Anonymous memory, bytes (cgroup v1 rss, v2 anon)",
            |s| s.memory.rss.map(Value::Unsigned),
        ),
    ];
    for (name, kind, help, pick) in per_sample {
        let mut f = Family::new(name, kind, help);
        for r in exported() {
            if let Some(v) = r.sample.and_then(pick) {
                f.push(r.name(), v);
            }
        }
        out.push(f);
    }

    let mut f = Family::new(
        "ecs_container_memory_limit_bytes",
        Kind::Gauge,
        "Hard memory limit from the task definition: the container's, else the task's, bytes",
    );
    let task_mib = task.memory_mib.filter(|&m| m > 0.0);
    for r in exported() {
        if let Some(mib) = r.meta.memory_mib.filter(|&m| m > 0.0).or(task_mib) {
            f.push(r.name(), number(mib * MIB));
        }
    }
    out.push(f);

    for (name, help, mib) in [
        (
            "ecs_task_ephemeral_storage_used_bytes",
            "Fargate ephemeral storage in use, bytes",
            task.ephemeral_used_mib,
        ),
        (
            "ecs_task_ephemeral_storage_reserved_bytes",
            "Fargate ephemeral storage reserved, bytes",
            task.ephemeral_reserved_mib,
        ),
    ] {
        let mut f = Family::new(name, Kind::Gauge, help);
        if let Some(mib) = mib {
            f.push(Vec::new(), number(mib * MIB));
        }
        out.push(f);
    }
}

/// The exporter's own families, from the poller's [`Health`]: `ecs_task_exporter_status` (2.x)
/// and the `ecs_exporter_*` families. Every `endpoint`×`reason` error series is written, zeros
/// too, so that `rate()` works from the first error on.
pub fn health_families(health: &Health) -> Vec<Family> {
    let up = Value::Unsigned(u64::from(health.up));
    let mut status = Family::new(
        "ecs_task_exporter_status",
        Kind::Gauge,
        "1 when the last poll succeeded, else 0",
    );
    status.push(Vec::new(), up);
    let mut build = Family::new(
        "ecs_exporter_build_info",
        Kind::Gauge,
        "The exporter's version and the git commit it was built from, value 1",
    );
    build.push(
        vec![
            ("version", crate::version::VERSION.to_owned()),
            ("revision", crate::version::revision().to_owned()),
        ],
        Value::Unsigned(1),
    );
    let mut up_family = Family::new(
        "ecs_exporter_up",
        Kind::Gauge,
        "1 when the last poll succeeded, else 0",
    );
    up_family.push(Vec::new(), up);
    let mut last = Family::new(
        "ecs_exporter_last_success_timestamp_seconds",
        Kind::Gauge,
        "When the last successful poll finished, Unix time",
    );
    if let Some(t) = health.last_success {
        last.push(Vec::new(), Value::Float(t));
    }
    let mut duration = Family::new(
        "ecs_exporter_poll_duration_seconds",
        Kind::Gauge,
        "How long the last poll took, seconds",
    );
    if let Some(d) = health.poll_duration {
        duration.push(Vec::new(), Value::Float(d));
    }
    let mut errors = Family::new(
        "ecs_exporter_poll_errors_total",
        Kind::Counter,
        "Failed polls, by endpoint and reason",
    );
    for endpoint in Endpoint::ALL {
        for reason in Reason::ALL {
            errors.push(
                vec![
                    ("endpoint", endpoint.label().to_owned()),
                    ("reason", reason.label().to_owned()),
                ],
                Value::Unsigned(health.errors[endpoint as usize][reason as usize]),
            );
        }
    }
    vec![status, build, up_family, last, duration, errors]
}

/// `ecs_exporter_statsd_errors_total`, written only when DogStatsD is on.
pub fn statsd_errors_family(errors: u64) -> Family {
    let mut f = Family::new(
        "ecs_exporter_statsd_errors_total",
        Kind::Counter,
        "DogStatsD sends that failed",
    );
    f.push(Vec::new(), Value::Unsigned(errors));
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::{Container, Cpu, Sample, Task};

    const S: i128 = 1_000_000_000;

    fn cpu(total: u64, system: Option<u64>) -> Cpu {
        Cpu {
            total: Some(total),
            system,
            online_cpus: Some(2),
            kernel: Some(total / 4),
            user: Some(total / 2),
            ..Cpu::default()
        }
    }

    fn sample(read_s: i128, total: u64, system: Option<u64>) -> Sample {
        Sample {
            read: read_s * S,
            preread: Some((read_s - 1) * S),
            cpu: cpu(total, system),
            precpu: Cpu::default(),
            ..Sample::default()
        }
    }

    /// A one-container task with a 1 vCPU task limit.
    fn task() -> Task {
        Task {
            cpu_vcpus: Some(1.0),
            containers: vec![Container {
                docker_id: "id".into(),
                name: "app".into(),
                ..Container::default()
            }],
            ..Task::default()
        }
    }

    fn poll(history: &History, s: Sample) -> (Option<f64>, History) {
        let stats: Stats = [("id".to_owned(), Some(s))].into_iter().collect();
        let (snapshot, next) = compute(&task(), &stats, history, &Filter::default());
        let ratio = snapshot
            .family("ecs_task_cpu_usage_ratio")
            .and_then(|f| f.series.iter().find(|s| s.labels[0].1 == "app"))
            .map(|s| s.value.as_f64());
        (ratio, next)
    }

    #[test]
    fn consecutive_polls_make_the_window() {
        let (first, h) = poll(&History::default(), sample(10, 1_000, Some(10 * S as u64)));
        assert_eq!(first, None, "precpu is zero: no window on the first poll");
        // 1 s of one core busy out of Δsystem = 2 CPUs × 10 s → cores = 1e9/20e9 × 2 = 0.1.
        let (second, _) = poll(&h, sample(20, 1_000 + S as u64, Some(30 * S as u64)));
        assert_eq!(second, Some(0.1));
    }

    #[test]
    fn a_read_that_did_not_advance_republishes_the_last_window() {
        let (_, h) = poll(&History::default(), sample(10, 0, Some(10 * S as u64)));
        let (r1, h) = poll(&h, sample(20, S as u64, Some(30 * S as u64)));
        let (r2, h) = poll(&h, sample(20, S as u64, Some(30 * S as u64)));
        let (r3, _) = poll(&h, sample(20, S as u64, Some(30 * S as u64)));
        assert_eq!((r1, r2, r3), (Some(0.1), Some(0.1), Some(0.1)));
    }

    #[test]
    fn counters_that_went_down_give_no_ratio_then_recover() {
        let (_, h) = poll(
            &History::default(),
            sample(10, 5 * S as u64, Some(10 * S as u64)),
        );
        let (restarted, h) = poll(&h, sample(20, 1_000, Some(30 * S as u64)));
        assert_eq!(restarted, None);
        let (after, _) = poll(&h, sample(30, 1_000 + S as u64, Some(50 * S as u64)));
        assert_eq!(after, Some(0.1));
    }

    #[test]
    fn a_read_going_backwards_or_a_zero_system_delta_gives_no_ratio() {
        let (_, h) = poll(&History::default(), sample(20, 0, Some(10 * S as u64)));
        assert_eq!(poll(&h, sample(10, S as u64, Some(30 * S as u64))).0, None);
        assert_eq!(poll(&h, sample(30, S as u64, Some(10 * S as u64))).0, None);
    }

    #[test]
    fn extreme_counters_neither_overflow_nor_divide_by_zero() {
        let (_, h) = poll(&History::default(), sample(10, 0, Some(0)));
        let (r, h) = poll(&h, sample(20, u64::MAX, Some(u64::MAX)));
        assert_eq!(r, Some(2.0), "u64::MAX / u64::MAX × 2 CPUs over 1 vCPU");
        let (r, _) = poll(&h, sample(30, u64::MAX, Some(u64::MAX)));
        assert_eq!(r, None, "Δsystem = 0");
        // Without system_cpu_usage: Δtotal / Δread.
        let (_, h) = poll(&History::default(), sample(10, 0, None));
        let (r, _) = poll(&h, sample(12, S as u64, None));
        assert_eq!(r, Some(0.5));
    }

    #[test]
    fn precpu_is_used_only_when_it_is_a_real_reading() {
        let mut s = sample(10, 2 * S as u64, Some(20 * S as u64));
        s.precpu = cpu(S as u64, Some(10 * S as u64));
        // Δtotal 1e9 / Δsystem 10e9 × 2 = 0.2 cores over 1 vCPU.
        assert_eq!(poll(&History::default(), s.clone()).0, Some(0.2));
        let mut no_system = s.clone();
        no_system.precpu.system = None;
        assert_eq!(
            poll(&History::default(), no_system).0,
            None,
            "system in cpu_stats only"
        );
        let mut same_read = s;
        same_read.preread = Some(same_read.read);
        assert_eq!(
            poll(&History::default(), same_read).0,
            None,
            "read must be after preread"
        );
    }

    #[test]
    fn cpu_scaling_follows_the_spec_table() {
        let mut s = sample(10, 2 * S as u64, Some(20 * S as u64));
        s.precpu = cpu(S as u64, Some(10 * S as u64)); // 0.2 cores, 2 online CPUs
        let ratio = |task_vcpus: Option<f64>, units: Option<f64>| {
            let mut t = task();
            t.cpu_vcpus = task_vcpus;
            t.containers[0].cpu_units = units;
            let stats: Stats = [("id".to_owned(), Some(s.clone()))].into_iter().collect();
            let (snap, _) = compute(&t, &stats, &History::default(), &Filter::default());
            let f = snap.family("ecs_task_cpu_usage_ratio").unwrap();
            let get = |n: &str| {
                f.series
                    .iter()
                    .find(|s| s.labels[0].1 == n)
                    .map(|s| s.value.as_f64())
            };
            (get("app"), get(TASK_ROW))
        };
        // (task, container) → (container row, task row)
        assert_eq!(
            ratio(None, None),
            (Some(0.1), Some(0.1)),
            "no scaling: cores / online"
        );
        assert_eq!(
            ratio(None, Some(2.0)),
            (Some(0.1), Some(0.1)),
            "2 units means unset"
        );
        assert_eq!(
            ratio(None, Some(128.0)),
            (Some(1.6), Some(0.1)),
            "container limit, may exceed 1"
        );
        assert_eq!(
            ratio(Some(0.5), None),
            (Some(0.4), Some(0.4)),
            "task limit for both"
        );
        assert_eq!(ratio(Some(0.5), Some(512.0)), (Some(0.4), Some(0.4)));
        assert_eq!(
            ratio(Some(0.0), Some(1024.0)),
            (Some(0.2), Some(0.1)),
            "task CPU 0 is unset"
        );
    }

    #[test]
    fn absurd_limits_never_give_infinite_samples() {
        let mut s = sample(10, 2 * S as u64, Some(20 * S as u64));
        s.precpu = cpu(S as u64, Some(10 * S as u64));
        let mut t = task();
        t.cpu_vcpus = Some(1e-320);
        t.memory_mib = Some(1e308);
        let stats: Stats = [("id".to_owned(), Some(s))].into_iter().collect();
        let (snap, _) = compute(&t, &stats, &History::default(), &Filter::default());
        let values = snap
            .families
            .iter()
            .flat_map(|f| &f.series)
            .map(|s| s.value.as_f64());
        assert!(values.clone().count() > 5);
        for v in values {
            assert!(v.is_finite(), "{v}");
        }
    }

    #[test]
    fn cluster_arns_are_cut_to_the_name() {
        assert_eq!(
            short_cluster("arn:aws:ecs:us-east-1:1:cluster/prod"),
            "prod"
        );
        assert_eq!(short_cluster("default"), "default");
        assert_eq!(short_cluster(""), "");
    }
}
