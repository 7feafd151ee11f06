//! CPU over a sampling window: which two readings make a container's window, the arithmetic
//! over them, and the `cpu_usage_ratio` scaling of SPEC §3.1.
//!
//! Windows are decided once per container in [`window_for`]; [`cpu_window`] takes two readings
//! and is checked: a counter that went down (a restart) or a window of zero length gives no
//! window, never a negative, infinite or NaN ratio.
//!
//! Out of scope: which families the windows feed (`families.rs`).

use crate::core::payload::{Container, Cpu, Sample, Task};

use super::Row;

/// A container's last reading, kept for the next poll's window.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Previous {
    pub read: i128,
    pub cpu: Cpu,
    /// The window of that poll, republished while `read` does not advance.
    pub window: Option<Window>,
}

/// CPU use over one sampling window.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Window {
    /// Cores busy on average over the window.
    pub cores: f64,
    /// CPUs the container could see (for "no scaling": the fraction of the host).
    pub online: Option<u32>,
    /// Δpercpu[i] / Δsystem_cpu_usage, for i < online_cpus (cgroup v1 with `system_cpu_usage`).
    pub percpu: Vec<Option<f64>>,
    /// ns of kernel and user CPU in the window.
    pub kernel: Option<u64>,
    pub user: Option<u64>,
}

/// Picks the window for a container: against the previous poll when there is one, else against
/// the sample's own `precpu_stats` when that is a real reading.
pub(super) fn window_for(previous: Option<&Previous>, s: &Sample) -> Option<Window> {
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
///
/// With `system_cpu_usage` and a CPU count (`online_cpus`, else the length of `percpu_usage`,
/// zeros included, as Docker does): cores = Δtotal / Δsystem × CPUs. Otherwise cores =
/// Δtotal / Δread, and the window has no CPU count.
fn cpu_window(a: &Cpu, ta: i128, b: &Cpu, tb: i128) -> Option<Window> {
    let total = b.total?.checked_sub(a.total?)? as f64;
    let online = b
        .online_cpus
        .or(a.online_cpus)
        .or_else(|| u32::try_from(b.percpu.len()).ok().filter(|&n| n > 0));
    let (cores, percpu) = match (a.system, b.system, online) {
        (Some(sa), Some(sb), Some(online)) => {
            let system = sb.checked_sub(sa).filter(|&d| d > 0)? as f64;
            let cores = total / system * f64::from(online);
            let n = (online as usize).min(a.percpu.len()).min(b.percpu.len());
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

/// The task's vCPU limit, when set (`Limits.CPU` > 0).
pub(super) fn task_vcpus(task: &Task) -> Option<f64> {
    task.cpu_vcpus.filter(|&v| v > 0.0)
}

/// The container's CPU limit in units, when set (2 is what ECS shows for "none").
pub(super) fn container_units(c: &Container) -> Option<f64> {
    c.cpu_units.filter(|&u| u > 2.0)
}

/// A container's `cpu_usage_ratio`: its cores over its own limit, else the task's, else the
/// host's CPUs (SPEC §3.1 table). With no limit and no CPU count (no `online_cpus`, no
/// `percpu_usage`): cores, unscaled.
pub(super) fn container_ratio(task: &Task, row: &Row) -> Option<f64> {
    let w = row.window.as_ref()?;
    let limit = match (container_units(row.meta), task_vcpus(task)) {
        (Some(units), _) => units / 1024.0,
        (None, Some(vcpus)) => vcpus,
        (None, None) => w.online.map_or(1.0, f64::from),
    };
    Some(w.cores / limit)
}

/// The task's `cpu_usage_ratio`: all containers' cores over the task limit (else the host's
/// CPUs). Only when it is whole: every running container with a sample has a window (after a
/// restart or a late start, one poll has none; never a sum of some containers, SPEC §3.1.1).
pub(super) fn task_ratio(task: &Task, rows: &[Row]) -> Option<f64> {
    let whole = rows
        .iter()
        .filter(|r| r.sample.is_some() && r.meta.known_status.eq_ignore_ascii_case("RUNNING"))
        .all(|r| r.window.is_some());
    let windows: Vec<&Window> = rows.iter().filter_map(|r| r.window.as_ref()).collect();
    if !whole || windows.is_empty() {
        return None;
    }
    let cores: f64 = windows.iter().map(|w| w.cores).sum();
    let limit = task_vcpus(task)
        .or_else(|| windows.iter().filter_map(|w| w.online).max().map(f64::from))
        .unwrap_or(1.0);
    Some(cores / limit)
}
