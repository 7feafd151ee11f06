//! Advancing stats: every running container's counters are a pure function of
//! the sample time (seconds since the sim started), starting at the template's
//! values and only growing (until a `counter_reset`).

use crate::profiles::{Container, Task};
use ecs_container_exporter::core::rfc3339;
use serde_json::{Map, Value};
use std::f64::consts::PI;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const RX_BYTES_PER_SEC: f64 = 20_000.0;
const TX_BYTES_PER_SEC: f64 = 5_000.0;
const RX_PACKETS_PER_SEC: f64 = 20.0;
const TX_PACKETS_PER_SEC: f64 = 10.0;

/// When samples are taken.
pub struct Clock {
    start: Instant,
    start_unix_nanos: i128,
    /// Seconds between `preread` and `read`.
    pub interval: f64,
    /// `read` is quantized to this many seconds (0 = no quantization).
    pub refresh: f64,
}

impl Clock {
    pub fn new(interval: f64, refresh: f64) -> Clock {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Clock {
            start: Instant::now(),
            start_unix_nanos: since.as_nanos() as i128,
            interval,
            refresh,
        }
    }

    /// Wall seconds since start.
    pub fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// The current sample time: elapsed seconds, quantized to `refresh`.
    pub fn sample(&self) -> f64 {
        let e = self.elapsed();
        if self.refresh > 0.0 {
            (e / self.refresh).floor() * self.refresh
        } else {
            e
        }
    }

    /// RFC 3339 UTC with nanoseconds for a sample time.
    pub fn timestamp(&self, t: f64) -> String {
        rfc3339::format(self.start_unix_nanos + (t * 1e9) as i128)
    }
}

/// The `/task/stats` map at sample time `t`.
pub fn task_stats(task: &Task, clock: &Clock, t: f64) -> Value {
    let map: Map<String, Value> = task
        .containers
        .iter()
        .map(|c| {
            (
                c.docker_id().to_string(),
                container_stats(task, c, clock, t),
            )
        })
        .collect();
    Value::Object(map)
}

/// One container's stats at sample time `t` (the template as is when not running).
pub fn container_stats(task: &Task, c: &Container, clock: &Clock, t: f64) -> Value {
    let mut s = c.stats.clone();
    let Some(obj) = s.as_object_mut() else {
        return s;
    };
    if !c.running {
        return s;
    }
    let g = Growth {
        t,
        interval: clock.interval,
        reset_at: c.reset_at,
    };
    let pre = Growth {
        t: t - clock.interval,
        ..g
    };
    let cpu_rate = 0.05 * ((c.rate_index % 10) + 1) as f64 * 1e9;
    obj.insert("read".into(), clock.timestamp(t).into());
    obj.insert("preread".into(), clock.timestamp(t - clock.interval).into());
    let cpu_tmpl = obj.get("cpu_stats").cloned().unwrap_or(Value::Null);
    if cpu_tmpl.is_object() {
        obj.insert("cpu_stats".into(), cpu_at(&cpu_tmpl, &g, cpu_rate));
        obj.insert("precpu_stats".into(), cpu_at(&cpu_tmpl, &pre, cpu_rate));
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
        grow_blkio(
            blkio.get_mut("io_service_bytes_recursive"),
            &g,
            8192.0,
            4096.0,
        );
        grow_blkio(blkio.get_mut("io_serviced_recursive"), &g, 2.0, 1.0);
    }
    if let Some(Value::Object(nets)) = obj.get_mut("networks") {
        let (bases, net_g) = match task.shared_network {
            true => (
                &task.shared_networks,
                Growth {
                    reset_at: task.shared_net_reset_at,
                    ..g
                },
            ),
            false => (&c.stats["networks"], g),
        };
        for (name, net) in nets.iter_mut() {
            let base = bases.get(name).unwrap_or(net).clone();
            for (key, rate) in [
                ("rx_bytes", RX_BYTES_PER_SEC),
                ("tx_bytes", TX_BYTES_PER_SEC),
                ("rx_packets", RX_PACKETS_PER_SEC),
                ("tx_packets", TX_PACKETS_PER_SEC),
            ] {
                if let (Some(b), Some(n)) = (base[key].as_u64(), net.as_object_mut()) {
                    n.insert(key.into(), net_g.at(b, rate).into());
                }
            }
        }
        if let Some(Value::Object(r)) = obj.get_mut("network_rate_stats") {
            r.insert("rx_bytes_per_sec".into(), RX_BYTES_PER_SEC.into());
            r.insert("tx_bytes_per_sec".into(), TX_BYTES_PER_SEC.into());
        }
    }
    s
}

/// How a cumulative counter grows: `base + rate·(t + interval)`, so the first
/// `precpu`-style sample (t = −interval) equals the template value. After a
/// reset at `r`: `base/1000 + rate·(t − r)` (never below `base/1000`).
#[derive(Clone, Copy)]
struct Growth {
    t: f64,
    interval: f64,
    reset_at: Option<f64>,
}

impl Growth {
    fn at(&self, base: u64, rate: f64) -> u64 {
        match self.reset_at {
            Some(r) => base / 1000 + (rate * (self.t - r).max(0.0)) as u64,
            None => base + (rate * (self.t + self.interval).max(0.0)) as u64,
        }
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
            for v in per.iter_mut().take(n) {
                if let Some(b) = v.as_u64() {
                    *v = g.at(b, rate / n as f64).into();
                }
            }
        }
    }
    if let (Some(b), Some(m)) = (tmpl["system_cpu_usage"].as_u64(), cpu.as_object_mut()) {
        // Host counter: never reset.
        let host = Growth {
            reset_at: None,
            ..*g
        };
        m.insert(
            "system_cpu_usage".into(),
            host.at(b, online.unwrap_or(1) as f64 * 1e9).into(),
        );
    }
    cpu
}

/// Grow `read`/`write` (and the derived `sync`/`async`/`total`) blkio entries.
fn grow_blkio(list: Option<&mut Value>, g: &Growth, read_rate: f64, write_rate: f64) {
    let Some(Value::Array(list)) = list else {
        return;
    };
    for e in list.iter_mut() {
        let op = e["op"].as_str().unwrap_or_default().to_ascii_lowercase();
        let rate = match op.as_str() {
            "read" | "sync" => read_rate,
            "write" | "async" => write_rate,
            "total" => read_rate + write_rate,
            _ => 0.0,
        };
        if let (Some(b), Some(m)) = (e["value"].as_u64(), e.as_object_mut()) {
            m.insert("value".into(), g.at(b, rate).into());
        }
    }
}
