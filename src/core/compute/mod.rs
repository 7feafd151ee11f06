//! Metrics from one poll: `(task, stats, history, options) → (snapshot, history)`, a pure
//! function, with every formula of SPEC §3.
//!
//! The caller keeps the returned [`History`] and hands it back on the next poll: each container's
//! last reading (to make a sampling window between two polls, and to republish the last window's
//! CPU figures while the endpoint's `read` has not advanced, as on Fargate, which refreshes stats
//! about every 10 s) and the carried task totals.
//!
//! A poll goes: one [`Row`] per container of the task (its sample, its CPU window from `cpu.rs`,
//! its disk counters from `disk.rs`); the `_task_` values of the table's `carried` counters (disk
//! and network) carried across the task's life by `totals.rs` (SPEC §3.1.1); then every family
//! from the table in `families.rs`. The family filters (`Options::families`, SPEC §6) apply
//! here: a family filtered out is not computed, nor are the totals it would carry, nor the CPU
//! windows or disk sums when no family left needs them.
//!
//! Out of scope: I/O, clocks, the exporter's own families (`core::health`), formatting.

mod cpu;
mod disk;
mod families;
mod totals;

use std::collections::HashMap;

use crate::core::filter::MetricFilter;
use crate::core::health;
use crate::core::payload::{Container, Sample, Stats, Task};
use crate::core::snapshot::{Snapshot, TaskTags, Value};

use cpu::{Previous, Window};
use disk::Io;
pub use disk::device_mapper_majors;
pub use families::names as family_names;

/// Every family name the exporter can emit, in exposition order: the data families, then its
/// own, those of DogStatsD and remote write included whether they are on or not (what a family
/// filter is checked against).
pub fn known_families() -> Vec<&'static str> {
    family_names().chain(health::FAMILY_NAMES).collect()
}
pub use totals::Totals;
use totals::{Combine, Reading};

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

/// What `compute` needs besides the poll itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Which containers get per-container series.
    pub filter: Filter,
    /// Which families are computed (SPEC §6); the others are left out of the snapshot.
    pub families: MetricFilter,
    /// Block device majors of the device-mapper (layered devices: counted once), read from
    /// `/proc/devices` by the caller; see [`device_mapper_majors`].
    pub device_mapper: Vec<u64>,
}

impl From<Filter> for Options {
    fn from(filter: Filter) -> Options {
        Options {
            filter,
            families: MetricFilter::default(),
            device_mapper: Vec::new(),
        }
    }
}

/// What one poll leaves for the next: each container's last reading (keyed by `DockerId`) and
/// the carried task totals.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    containers: HashMap<String, Previous>,
    totals: Totals,
}

impl History {
    /// Entries kept (readings and carried series): the size of the state.
    pub fn len(&self) -> usize {
        self.containers.len() + self.totals.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One container of the task, with what this poll knows of it.
struct Row<'a> {
    meta: &'a Container,
    sample: Option<&'a Sample>,
    window: Option<Window>,
    /// Disk counters over its devices, layered devices once.
    disk: Io,
    /// Gets per-container series (`INCLUDE`/`EXCLUDE`); none of a family that reserves its name
    /// (`_task_`) for the task.
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
    options: &Options,
) -> (Snapshot, History) {
    let windows = families::need_windows(&options.families);
    let disk = families::need_disk(&options.families);
    let rows: Vec<Row> = task
        .containers
        .iter()
        .map(|meta| {
            let sample = (meta.known_status != "STOPPED")
                .then(|| stats.get(&meta.docker_id).and_then(Option::as_ref))
                .flatten();
            Row {
                meta,
                sample,
                window: sample
                    .filter(|_| windows)
                    .and_then(|s| cpu::window_for(history.containers.get(&meta.docker_id), s)),
                disk: sample
                    .filter(|_| disk)
                    .map_or_else(Io::default, |s| disk::io(s, &options.device_mapper)),
                export: options.filter.exports(&meta.name),
            }
        })
        .collect();

    let (totals, task_counters) = task_counters(task, &rows, &history.totals, &options.families);
    let next = History {
        containers: rows
            .iter()
            .filter_map(|r| {
                let s = r.sample?;
                let previous = Previous {
                    read: s.read,
                    cpu: s.cpu.clone(),
                    window: r.window.clone(),
                };
                Some((r.meta.docker_id.clone(), previous))
            })
            .collect(),
        totals,
    };

    let mut families = families::all(
        &families::Poll {
            task,
            rows: &rows,
            task_counters: &task_counters,
        },
        &options.families,
    );
    // Absurd inputs (a limit of 1e-320 vCPU, 1e308 MiB) must not become `+Inf` samples.
    for family in &mut families {
        family
            .series
            .retain(|s| !matches!(s.value, Value::Float(v) if !v.is_finite()));
    }
    let named_like_the_task = rows.iter().any(|r| r.export && r.meta.name == TASK_ROW);
    let warnings = named_like_the_task
        .then(|| {
            format!(
                "a container is named {TASK_ROW}, like the task rows: its 2.x per-container \
                 series are left out (its ecs_container_* series stay)"
            )
        })
        .into_iter()
        .collect();
    let snapshot = Snapshot {
        tags: TaskTags {
            cluster: short_cluster(&task.cluster).to_owned(),
            family: task.family.clone(),
            revision: task.revision.clone(),
            instance: instance(task).to_owned(),
        },
        families,
        warnings,
    };
    (snapshot, next)
}

/// The task id (the last segment of its ARN), else the Docker host's name.
fn instance(task: &Task) -> &str {
    match task.task_arn.rsplit('/').next() {
        Some(id) if !id.is_empty() => id,
        _ => &task.host_name,
    }
}

/// Whether every container sees the task's one network interface (`awsvpc`, `host`; Fargate
/// always), rather than one of its own (`bridge`).
fn shared_network(task: &Task) -> bool {
    task.launch_type.eq_ignore_ascii_case("FARGATE")
        || task.containers.iter().any(|c| {
            c.network_mode
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case("awsvpc") || m.eq_ignore_ascii_case("host"))
        })
}

/// The `_task_` value of every series of the `carried` families (by family and interface), carried
/// across the task's life, and the totals for the next poll.
/// Only the families `keep` allows are carried: a filtered family keeps no state.
fn task_counters(
    task: &Task,
    rows: &[Row],
    totals: &Totals,
    keep: &MetricFilter,
) -> (Totals, Vec<(totals::Key, u64)>) {
    let network = if shared_network(task) {
        Combine::Largest
    } else {
        Combine::Sum
    };
    let mut readings = Vec::new();
    for r in rows {
        let Some(sample) = r.sample else { continue };
        let container = r.meta.docker_id.as_str();
        for (name, value) in families::carried_disk_counters(&r.disk, keep) {
            readings.push(Reading {
                container,
                key: (name, String::new()),
                value,
                combine: Combine::Sum,
            });
        }
        for (interface, n) in &sample.networks {
            for (name, value) in families::carried_network_counters(n, keep) {
                readings.push(Reading {
                    container,
                    key: (name, interface.clone()),
                    value,
                    combine: network,
                });
            }
        }
    }
    totals.next(rows.iter().map(|r| r.meta.docker_id.as_str()), readings)
}

/// `arn:aws:ecs:region:account:cluster/name` → `name`; a short name stays as it is.
pub fn short_cluster(cluster: &str) -> &str {
    if cluster.starts_with("arn:") {
        cluster.rsplit('/').next().unwrap_or(cluster)
    } else {
        cluster
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::payload::{Container, Cpu, Sample, Task};

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
        let (snapshot, next) = compute(&task(), &stats, history, &Options::default());
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
            let (snap, _) = compute(&t, &stats, &History::default(), &Options::default());
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
        let (snap, _) = compute(&t, &stats, &History::default(), &Options::default());
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

    /// A family filtered out is not in the snapshot, and carries no totals; a CPU window is made
    /// only when a family left needs one.
    #[test]
    fn filtered_families_are_neither_computed_nor_carried() {
        use crate::core::filter::{List, MetricFilter};
        let mut s = sample(10, 2 * S as u64, Some(20 * S as u64));
        s.precpu = cpu(S as u64, Some(10 * S as u64));
        s.networks = vec![("eth0".into(), crate::core::payload::Net::default())];
        s.memory.usage = Some(100);
        let stats: Stats = [("id".to_owned(), Some(s))].into_iter().collect();
        let with = |list: List, entries: &str| {
            let entries: Vec<String> = entries.split(',').map(str::to_owned).collect();
            let options = Options {
                families: MetricFilter::parse(list, &entries, &known_families()).unwrap(),
                ..Options::default()
            };
            compute(&task(), &stats, &History::default(), &options)
        };
        let names = |snap: &Snapshot| snap.families.iter().map(|f| f.name).collect::<Vec<_>>();

        let (all, all_history) = compute(&task(), &stats, &History::default(), &Options::default());
        assert_eq!(names(&all).len(), family_names().count());
        assert!(
            all_history.totals.len() >= 8,
            "the network counters are carried"
        );

        let (denied, history) = with(List::Deny, "ecs_task_network_*,ecs_task_cpu_limit");
        let left = names(&denied);
        assert_eq!(left.len(), family_names().count() - 9);
        assert!(!left.iter().any(|n| n.starts_with("ecs_task_network_")));
        assert!(!left.contains(&"ecs_task_cpu_limit"));
        assert!(denied.family("ecs_task_mem_usage").is_some());
        assert_eq!(
            history.totals.len(),
            0,
            "nothing carried for a denied counter"
        );
        let ratio = denied.family("ecs_task_cpu_usage_ratio").unwrap();
        assert_eq!(ratio.series.len(), 2, "app and _task_");

        let (allowed, history) = with(List::Allow, "ecs_task_mem_*");
        assert_eq!(
            names(&allowed),
            [
                "ecs_task_mem_limit",
                "ecs_task_mem_usage",
                "ecs_task_mem_cache"
            ]
        );
        assert_eq!(history.totals.len(), 0);
        assert!(
            history.containers.values().all(|p| p.window.is_none()),
            "no family needs a CPU window"
        );
        assert_eq!(
            allowed.family("ecs_task_mem_usage").unwrap().series.len(),
            2
        );
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
