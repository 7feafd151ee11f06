//! Advancing stats: every running container's counters are a pure function of
//! the sample time and of the container's [`Origin`] (when its counters last
//! started). It leaves out the task's life itself (which container runs,
//! restarts or stops: `task.rs`), the clock (`clock.rs`) and the schedule of `--life`
//! (`life.rs`).
//!
//! # Counter semantics (exact)
//!
//! Time `t` is the sample time: seconds since the simulator started, floored to
//! `--refresh-secs` (exact when it is 0). `read` is the start's wall time plus
//! `t`. `I` is the profile's interval between `preread` and `read` (10 s for
//! `fargate` and `managed-instances`, 1 s for `ec2-bridge` and `ec2-awsvpc`).
//! `⌊x⌋` is the floor (values are `u64`, computed as `(x as u64)`).
//!
//! A counter with template value `base` and `rate` per second reads, by origin:
//!
//! | origin | set by | value at `t` |
//! |---|---|---|
//! | `Template` | the profile | `base + ⌊rate·(t + I)⌋` (so `precpu` of the sample at t = 0 is the template) |
//! | `Reset(r)` | `counter_reset` fault, a `container_change` newcomer | `⌊base/1000⌋ + ⌊rate·max(0, t − r)⌋` |
//! | `Zero(r)` | `/control/restart`, `/control/start` | `⌊rate·max(0, t − r)⌋`: every counter starts again from 0, those without a rate stay 0 |
//!
//! `precpu_stats` and `preread` are the same functions at the time `p`:
//! `p = t − I`, except after `Zero(r)`, where `p = min(t, max(t − I, r))`: a
//! sample never looks back before the (re)start, so no delta inside one sample
//! is negative and the first window after a restart is exact.
//!
//! Rates, per container (`k` = the container's rate index: 0 for the first
//! running container of the template, 1 for the next, clones and started
//! containers take the next free one):
//! - `cpu_usage.total_usage`: `0.05 · (k mod 10 + 1)` cores, i.e. that × 10⁹
//!   ns/s; `usage_in_usermode` 80 % of it, `usage_in_kernelmode` 20 %; each of
//!   the first `n = min(len(percpu_usage), online_cpus)` `percpu_usage` entries
//!   `1/n` of it; other entries and `throttling_data` do not grow.
//! - `system_cpu_usage`: `online_cpus × 10⁹` ns/s, always from `Template` (the
//!   host never restarts).
//! - `blkio_stats.io_service_bytes_recursive`, per entry by `op` (any case):
//!   `read` and `sync` 8,192 B/s, `write` and `async` 4,096 B/s, `total`
//!   12,288 B/s, other ops 0. `io_serviced_recursive`: 2, 1 and 3 ops/s. So a
//!   container's read bytes grow 8,192 B/s per device listed.
//! - `networks`, per interface: `rx_bytes` 20,000 B/s, `tx_bytes` 5,000 B/s,
//!   `rx_packets` 20/s, `tx_packets` 10/s; errors and dropped do not grow.
//!   - bridge (`ec2-bridge`): each container's own interface follows the
//!     container's origin, so a restart or a start begins at 0 (a new veth),
//!     and the task's traffic is 20,000 rx B/s per running container;
//!   - awsvpc and Fargate (`shared_network`): every running container reports
//!     the task ENI, the same values, built from the first running container's
//!     template with the task's own origin (`Template`, or `Reset` after a
//!     `counter_reset`). Restarts, stops and starts of containers leave it
//!     alone: the ENI lives on, 20,000 rx B/s for the whole task.
//! - `memory_stats.usage`: a gauge, `base · (1 + 0.05 · sin(2πt/60 + k))`.
//!
//! A container that is not running has the stats its profile gives a stopped
//! container (`null` on Fargate and Managed Instances, `{}` on EC2).

use crate::clock::Clock;
use crate::container::{Container, Origin};
use crate::task::{Network, Task};
use serde_json::{Map, Value};
use std::f64::consts::PI;

const RX_BYTES_PER_SEC: f64 = 20_000.0;
const TX_BYTES_PER_SEC: f64 = 5_000.0;
const RX_PACKETS_PER_SEC: f64 = 20.0;
const TX_PACKETS_PER_SEC: f64 = 10.0;
const READ_BYTES_PER_SEC: f64 = 8192.0;
const WRITE_BYTES_PER_SEC: f64 = 4096.0;
const READ_OPS_PER_SEC: f64 = 2.0;
const WRITE_OPS_PER_SEC: f64 = 1.0;

/// The value at `t` of a counter with template value `base` growing `rate` per second, counted
/// from `origin`.
fn value(origin: Origin, base: u64, rate: f64, t: f64, interval: f64) -> u64 {
    match origin {
        Origin::Template => base + (rate * (t + interval).max(0.0)) as u64,
        Origin::Reset(r) => base / 1000 + (rate * (t - r).max(0.0)) as u64,
        Origin::Zero(r) => (rate * (t - r).max(0.0)) as u64,
    }
}

/// The `preread` time of the sample at `t`, counted from `origin`.
fn pre_time(origin: Origin, t: f64, interval: f64) -> f64 {
    match origin {
        Origin::Zero(r) => (t - interval).max(r).min(t),
        _ => t - interval,
    }
}

/// The `/task/stats` map at sample time `t`.
pub fn task_stats(task: &Task, clock: &Clock, t: f64) -> Value {
    let map: Map<String, Value> = task
        .containers
        .iter()
        .map(|c| (c.docker_id.clone(), container_stats(task, c, clock, t)))
        .collect();
    Value::Object(map)
}

/// One container's stats at sample time `t` (the profile's stopped form when not running).
fn container_stats(task: &Task, c: &Container, clock: &Clock, t: f64) -> Value {
    let (true, Some(template)) = (c.running(), &c.stats) else {
        return task.stopped_stats.clone();
    };
    let mut obj = template.clone();
    let interval = clock.interval;
    let pre_t = pre_time(c.origin, t, interval);
    let now = Growth {
        t,
        interval,
        origin: c.origin,
    };
    let pre = Growth { t: pre_t, ..now };
    obj.insert("read".into(), clock.timestamp(t).into());
    obj.insert("preread".into(), clock.timestamp(pre_t).into());
    let cpu_tmpl = obj.get("cpu_stats").cloned().unwrap_or(Value::Null);
    if cpu_tmpl.is_object() {
        let rate = cpu_rate(c.rate_index);
        obj.insert("cpu_stats".into(), cpu_at(&cpu_tmpl, &now, rate));
        obj.insert("precpu_stats".into(), cpu_at(&cpu_tmpl, &pre, rate));
    }
    if let Some(mem) = obj.get_mut("memory_stats").and_then(Value::as_object_mut)
        && let Some(base) = mem.get("usage").and_then(Value::as_u64)
    {
        let wave = 1.0 + 0.05 * (2.0 * PI * t / 60.0 + c.rate_index as f64).sin();
        mem.insert("usage".into(), ((base as f64 * wave) as u64).into());
        // Keep max_usage (cgroup v1) above the oscillating usage.
        if let Some(max) = mem.get("max_usage").and_then(Value::as_u64) {
            let peak = (base as f64 * 1.05) as u64 + 1;
            mem.insert("max_usage".into(), max.max(peak).into());
        }
    }
    if let Some(blkio) = obj.get_mut("blkio_stats").and_then(Value::as_object_mut) {
        let bytes = (READ_BYTES_PER_SEC, WRITE_BYTES_PER_SEC);
        grow_blkio(blkio.get_mut("io_service_bytes_recursive"), &now, bytes);
        let ops = (READ_OPS_PER_SEC, WRITE_OPS_PER_SEC);
        grow_blkio(blkio.get_mut("io_serviced_recursive"), &now, ops);
    }
    if let Some(Value::Object(nets)) = obj.get_mut("networks") {
        let (bases, net_g) = match &task.network {
            Network::Shared { template, origin } => (
                template,
                Growth {
                    origin: *origin,
                    ..now
                },
            ),
            Network::PerContainer => (template.get("networks").unwrap_or(&Value::Null), now),
        };
        for (name, net) in nets.iter_mut() {
            let base = bases.get(name).unwrap_or(net).clone();
            let Some(n) = net.as_object_mut() else {
                continue;
            };
            for (key, v) in n.iter_mut() {
                let rate = match key.as_str() {
                    "rx_bytes" => RX_BYTES_PER_SEC,
                    "tx_bytes" => TX_BYTES_PER_SEC,
                    "rx_packets" => RX_PACKETS_PER_SEC,
                    "tx_packets" => TX_PACKETS_PER_SEC,
                    _ => 0.0,
                };
                if let Some(b) = base[key.as_str()].as_u64() {
                    *v = net_g.at(b, rate).into();
                }
            }
        }
        if let Some(Value::Object(r)) = obj.get_mut("network_rate_stats") {
            r.insert("rx_bytes_per_sec".into(), RX_BYTES_PER_SEC.into());
            r.insert("tx_bytes_per_sec".into(), TX_BYTES_PER_SEC.into());
        }
    }
    Value::Object(obj)
}

/// CPU time of the container with rate index `k`, ns per second.
fn cpu_rate(k: usize) -> f64 {
    0.05 * ((k % 10) + 1) as f64 * 1e9
}

/// A counter's time and origin.
#[derive(Clone, Copy)]
struct Growth {
    t: f64,
    interval: f64,
    origin: Origin,
}

impl Growth {
    fn at(&self, base: u64, rate: f64) -> u64 {
        value(self.origin, base, rate, self.t, self.interval)
    }
}

/// `cpu_stats` at `g` from the template's `cpu_stats`; `rate` in ns per second.
fn cpu_at(tmpl: &Value, g: &Growth, rate: f64) -> Value {
    let mut cpu = tmpl.clone();
    let online = tmpl["online_cpus"].as_u64();
    if let Some(u) = cpu.get_mut("cpu_usage").and_then(Value::as_object_mut) {
        for (key, share) in [
            ("total_usage", 1.0),
            ("usage_in_usermode", 0.8),
            ("usage_in_kernelmode", 0.2),
        ] {
            if let Some(b) = u.get(key).and_then(Value::as_u64) {
                u.insert(key.into(), g.at(b, rate * share).into());
            }
        }
        if let Some(Value::Array(per)) = u.get_mut("percpu_usage") {
            let n = online.map_or(per.len(), |o| per.len().min(o as usize));
            for (i, v) in per.iter_mut().enumerate() {
                let r = if i < n { rate / n as f64 } else { 0.0 };
                if let Some(b) = v.as_u64() {
                    *v = g.at(b, r).into();
                }
            }
        }
    }
    if let Some(Value::Object(throttling)) = cpu.get_mut("throttling_data") {
        for v in throttling.values_mut() {
            if let Some(b) = v.as_u64() {
                *v = g.at(b, 0.0).into();
            }
        }
    }
    if let (Some(b), Some(m)) = (tmpl["system_cpu_usage"].as_u64(), cpu.as_object_mut()) {
        // Host counter: never reset.
        let host = Growth {
            origin: Origin::Template,
            ..*g
        };
        m.insert(
            "system_cpu_usage".into(),
            host.at(b, online.unwrap_or(1) as f64 * 1e9).into(),
        );
    }
    cpu
}

/// Grow `read`/`write` (and the derived `sync`/`async`/`total`) blkio entries;
/// `(read, write)` per second.
fn grow_blkio(list: Option<&mut Value>, g: &Growth, (read, write): (f64, f64)) {
    let Some(Value::Array(list)) = list else {
        return;
    };
    for e in list.iter_mut() {
        let op = e["op"].as_str().unwrap_or_default().to_ascii_lowercase();
        let rate = match op.as_str() {
            "read" | "sync" => read,
            "write" | "async" => write,
            "total" => read + write,
            _ => 0.0,
        };
        if let (Some(b), Some(m)) = (e["value"].as_u64(), e.as_object_mut()) {
            m.insert("value".into(), g.at(b, rate).into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles;
    use crate::task::Task;

    fn task(profile: &str) -> Task {
        Task::load(profiles::find(profile).expect("profile")).expect("loads")
    }

    fn clock(task_profile: &str) -> Clock {
        let p = profiles::find(task_profile).expect("profile");
        Clock::new(p.interval_secs, 0.0)
    }

    fn stats_of(task: &Task, clock: &Clock, name: &str, t: f64) -> Value {
        let c = task
            .containers
            .iter()
            .find(|c| c.name == name)
            .expect("container");
        container_stats(task, c, clock, t)
    }

    fn int(v: &Value) -> u64 {
        v.as_u64().unwrap_or_else(|| panic!("not a u64: {v}"))
    }

    /// Σ of the blkio `op` entries (any case) of one list.
    fn blkio(s: &Value, list: &str, op: &str) -> u64 {
        s["blkio_stats"][list]
            .as_array()
            .expect("blkio list")
            .iter()
            .filter(|e| e["op"].as_str().is_some_and(|o| o.eq_ignore_ascii_case(op)))
            .map(|e| int(&e["value"]))
            .sum()
    }

    #[test]
    fn origins_follow_the_documented_formulas() {
        // base 1000, 20,000 per second, interval 1 s, sample at t = 5 s.
        assert_eq!(value(Origin::Template, 1000, 20_000.0, 5.0, 1.0), 121_000);
        assert_eq!(value(Origin::Template, 1000, 20_000.0, -1.0, 1.0), 1000);
        assert_eq!(
            value(Origin::Reset(3.0), 1000, 20_000.0, 5.0, 1.0),
            1 + 40_000
        );
        assert_eq!(value(Origin::Zero(3.0), 1000, 20_000.0, 5.0, 1.0), 40_000);
        assert_eq!(value(Origin::Zero(3.0), 1000, 20_000.0, 2.0, 1.0), 0);
        assert_eq!(value(Origin::Zero(3.0), 1000, 0.0, 9.0, 1.0), 0);
        // Floor, not round.
        assert_eq!(value(Origin::Zero(0.0), 0, 20_000.0, 0.00004, 1.0), 0);
        assert_eq!(value(Origin::Zero(0.0), 0, 3.0, 0.5, 1.0), 1);
    }

    #[test]
    fn preread_never_looks_back_before_a_zero_origin() {
        assert_eq!(pre_time(Origin::Template, 5.0, 10.0), -5.0);
        assert_eq!(pre_time(Origin::Reset(3.0), 5.0, 1.0), 4.0);
        assert_eq!(pre_time(Origin::Zero(3.0), 3.5, 1.0), 3.0);
        assert_eq!(pre_time(Origin::Zero(3.0), 9.0, 1.0), 8.0);
        // A sample dated before the restart (refresh quantization) has a zero-length window.
        assert_eq!(pre_time(Origin::Zero(3.0), 2.0, 1.0), 2.0);
    }

    #[test]
    fn an_untouched_container_grows_from_its_template_at_the_documented_rates() {
        let task = task("ec2-bridge");
        let clock = clock("ec2-bridge");
        // ecs-exporter: the first running container (rate index 0: 0.05 cores).
        let s = stats_of(&task, &clock, "ecs-exporter", 9.0);
        let u = &s["cpu_stats"]["cpu_usage"];
        assert_eq!(int(&u["total_usage"]), 331_125_000 + 500_000_000); // + 0.05e9 · 10 s
        assert_eq!(int(&u["usage_in_usermode"]), 264_846_000 + 400_000_000);
        assert_eq!(int(&u["usage_in_kernelmode"]), 66_278_000 + 100_000_000);
        assert_eq!(
            int(&s["precpu_stats"]["cpu_usage"]["total_usage"]),
            331_125_000 + 450_000_000
        );
        assert_eq!(
            int(&s["cpu_stats"]["system_cpu_usage"]),
            1_045_600_000_000 + 2 * 10 * 1_000_000_000
        );
        assert_eq!(int(&s["networks"]["eth0"]["rx_bytes"]), 101_869 + 200_000);
        assert_eq!(int(&s["networks"]["eth0"]["tx_bytes"]), 43_958 + 50_000);
        assert_eq!(int(&s["networks"]["eth0"]["rx_packets"]), 284 + 200);
        assert_eq!(int(&s["networks"]["eth0"]["tx_packets"]), 278 + 100);
        assert_eq!(
            blkio(&s, "io_service_bytes_recursive", "read"),
            60_960_768 + 81_920
        );
        assert_eq!(
            blkio(&s, "io_service_bytes_recursive", "write"),
            57_344 + 40_960
        );
        assert_eq!(s["read"], clock.timestamp(9.0).as_str());
        assert_eq!(s["preread"], clock.timestamp(8.0).as_str());
        // The second running container runs at 0.10 cores.
        let p = stats_of(&task, &clock, "prometheus", 9.0);
        assert_eq!(
            int(&p["cpu_stats"]["cpu_usage"]["total_usage"]),
            566_060_000 + 1_000_000_000
        );
    }

    #[test]
    fn a_bridge_restart_starts_cgroup_and_network_counters_from_zero() {
        let mut task = task("ec2-bridge");
        let clock = clock("ec2-bridge");
        task.restart("prometheus", &clock.at(10.0))
            .expect("restart");
        let rate = cpu_rate(1); // prometheus: rate index 1, 0.1 cores

        // First sample after the restart: the window starts at the restart, never before.
        let s = stats_of(&task, &clock, "prometheus", 10.5);
        assert_eq!(s["preread"], clock.timestamp(10.0).as_str());
        assert_eq!(int(&s["precpu_stats"]["cpu_usage"]["total_usage"]), 0);
        assert_eq!(
            int(&s["cpu_stats"]["cpu_usage"]["total_usage"]),
            (rate * 0.5) as u64
        );
        // The host's counter goes on.
        assert_eq!(
            int(&s["cpu_stats"]["system_cpu_usage"]),
            1_045_600_000_000 + (2e9 * 11.5) as u64
        );

        // 2.5 s after the restart.
        let s = stats_of(&task, &clock, "prometheus", 12.5);
        assert_eq!(
            int(&s["cpu_stats"]["cpu_usage"]["total_usage"]),
            (rate * 2.5) as u64
        );
        assert_eq!(
            int(&s["precpu_stats"]["cpu_usage"]["total_usage"]),
            (rate * 1.5) as u64
        );
        assert_eq!(
            int(&s["cpu_stats"]["cpu_usage"]["usage_in_usermode"]),
            (rate * 0.8 * 2.5) as u64
        );
        let eth0 = &s["networks"]["eth0"];
        assert_eq!(int(&eth0["rx_bytes"]), 50_000);
        assert_eq!(int(&eth0["tx_bytes"]), 12_500);
        assert_eq!(int(&eth0["rx_packets"]), 50);
        assert_eq!(int(&eth0["tx_packets"]), 25);
        assert_eq!(int(&eth0["rx_errors"]), 0);
        assert_eq!(blkio(&s, "io_service_bytes_recursive", "read"), 20_480);
        assert_eq!(blkio(&s, "io_service_bytes_recursive", "write"), 10_240);
        let throttling = &s["cpu_stats"]["throttling_data"];
        assert_eq!(int(&throttling["periods"]), 0);

        // The other container is untouched.
        let other = stats_of(&task, &clock, "ecs-exporter", 12.5);
        assert_eq!(
            int(&other["networks"]["eth0"]["rx_bytes"]),
            101_869 + (20_000.0 * 13.5) as u64
        );
    }

    #[test]
    fn a_restart_on_a_shared_eni_leaves_the_network_counters_alone() {
        for profile in ["ec2-awsvpc", "fargate", "managed-instances"] {
            let mut task = task(profile);
            let clock = clock(profile);
            let restarted = task
                .containers
                .iter()
                .find(|c| c.running() && c.name != "ecs-exporter" && !c.is_pause())
                .map(|c| c.name.clone())
                .expect("a second running container");
            let before = stats_of(&task, &clock, &restarted, 12.0)["networks"].clone();
            task.restart(&restarted, &clock.at(10.0)).expect("restart");
            let s = stats_of(&task, &clock, &restarted, 12.0);
            assert_eq!(s["networks"], before, "{profile}: the ENI lives on");
            let other = stats_of(&task, &clock, "ecs-exporter", 12.0);
            assert_eq!(s["networks"], other["networks"], "{profile}: one ENI");
            let (name, eth) = before
                .as_object()
                .and_then(|m| m.iter().next())
                .expect("an interface");
            let Network::Shared { template, .. } = &task.network else {
                panic!("{profile}: a shared ENI");
            };
            let base = int(&template[name]["rx_bytes"]);
            assert_eq!(
                int(&eth["rx_bytes"]),
                base + (20_000.0 * (12.0 + clock.interval)) as u64,
                "{profile}"
            );
            // Its cgroup counters did restart.
            assert_eq!(
                int(&s["cpu_stats"]["cpu_usage"]["total_usage"]),
                (cpu_rate(
                    task.containers
                        .iter()
                        .find(|c| c.name == restarted)
                        .map_or(0, |c| c.rate_index)
                ) * 2.0) as u64,
                "{profile}"
            );
        }
    }

    #[test]
    fn counter_reset_still_starts_from_a_thousandth_of_the_template() {
        let mut task = task("ec2-bridge");
        let clock = clock("ec2-bridge");
        task.reset_counters(10.0);
        let s = stats_of(&task, &clock, "ecs-exporter", 12.0);
        assert_eq!(
            int(&s["cpu_stats"]["cpu_usage"]["total_usage"]),
            331_125 + 100_000_000
        );
        assert_eq!(int(&s["networks"]["eth0"]["rx_bytes"]), 101 + 40_000);
        assert_eq!(s["preread"], clock.timestamp(11.0).as_str());
    }

    #[test]
    fn a_stopped_container_has_its_profiles_stopped_form() {
        for (profile, form) in [
            ("fargate", Value::Null),
            ("managed-instances", Value::Null),
            ("ec2-bridge", serde_json::json!({})),
            ("ec2-awsvpc", serde_json::json!({})),
        ] {
            let mut task = task(profile);
            let clock = clock(profile);
            task.stop("ecs-exporter", 3, &clock.at(0.0)).expect("stop");
            assert_eq!(
                stats_of(&task, &clock, "ecs-exporter", 5.0),
                form,
                "{profile}"
            );
        }
    }

    #[test]
    fn no_sample_has_a_negative_delta_across_restarts_stops_and_starts() {
        for p in &profiles::PROFILES {
            let mut task = Task::load(p).expect("loads");
            let clock = Clock::new(p.interval_secs, 0.0);
            let mut t = 0.0;
            let mut checked = 0;
            let names: Vec<String> = task
                .containers
                .iter()
                .filter(|c| !c.is_pause())
                .map(|c| c.name.clone())
                .collect();
            for step in 0..40 {
                t += 0.35;
                let name = &names[step % names.len()];
                let at = clock.at(t);
                // Whatever applies; errors (already stopped, ...) are fine here.
                let _ = match step % 4 {
                    0 => task.restart(name, &at),
                    1 => task.stop(name, 1, &at),
                    2 => task.start(name, &at),
                    _ => task.start("late", &at),
                };
                let probe = t + 0.2;
                for c in &task.containers {
                    let s = container_stats(&task, c, &clock, probe);
                    if !c.running() {
                        continue;
                    }
                    let now = int(&s["cpu_stats"]["cpu_usage"]["total_usage"]);
                    let pre = int(&s["precpu_stats"]["cpu_usage"]["total_usage"]);
                    assert!(
                        pre <= now,
                        "{}: {} at {probe}: {pre} > {now}",
                        p.name,
                        c.name
                    );
                    let sys = int(&s["cpu_stats"]["system_cpu_usage"]);
                    let pre_sys = int(&s["precpu_stats"]["system_cpu_usage"]);
                    assert!(pre_sys <= sys, "{}: {}", p.name, c.name);
                    assert!(
                        s["preread"].as_str() <= s["read"].as_str(),
                        "{}: {}",
                        p.name,
                        c.name
                    );
                    // Fixed-width RFC 3339: the text order is the time order.
                    if let Origin::Zero(_) = c.origin {
                        assert!(
                            s["preread"].as_str() >= c.started_at.as_deref(),
                            "{}: {} looks back before its (re)start",
                            p.name,
                            c.name
                        );
                        checked += 1;
                    }
                }
            }
            assert!(checked > 20, "{}: {checked} restarted samples", p.name);
        }
    }
}
