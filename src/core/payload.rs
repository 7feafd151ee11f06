//! The endpoint's JSON, read into plain types.
//!
//! `/task` becomes a [`Task`], `/task/stats` a map from `DockerId` to an optional [`Sample`].
//! Parsing is tolerant by construction: the body is read as a `serde_json::Value` and every field
//! is picked out by hand, so a missing field, a `null`, a field of an unexpected type (the edited
//! Windows fixture has blkio lists that are the *string* `"None"`) or an unknown field costs that
//! one field, never the payload. Counters are `u64`, limits `f64`.
//!
//! A stats entry is a [`Sample`] only when it is a real reading: an object whose `read` is a
//! timestamp other than Go's zero time (`0001-01-01T00:00:00Z`, what Docker reports for a container
//! that is not running). `null`, `{}` and zero-`read` entries are `None`.
//!
//! Out of scope: fetching the bodies (`source`), deciding what the numbers mean (`compute`).

use std::collections::HashMap;
use std::fmt;

use serde_json::{Map, Value};

use super::rfc3339;

/// A JSON value as read, for the other readers of the core (`docker.rs`): this file is the one
/// that names serde_json.
pub type Json = Value;

/// Reads a body as JSON (any shape).
pub fn parse_json(body: &[u8]) -> Result<Json, ParseError> {
    serde_json::from_slice(body).map_err(json_error)
}

/// Why a body could not be read as the payload it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

/// Task metadata (`GET <base>/task`), the fields the exporter uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Task {
    /// As given: a short name on EC2, a full ARN on Fargate.
    pub cluster: String,
    pub task_arn: String,
    pub family: String,
    pub revision: String,
    pub launch_type: String,
    pub availability_zone: String,
    pub service_name: String,
    /// The Docker Engine's `Name` (`GET /info`), with `--docker`; empty on ECS.
    pub host_name: String,
    /// Task `Limits.CPU`, in vCPUs.
    pub cpu_vcpus: Option<f64>,
    /// Task `Limits.Memory`, in MiB.
    pub memory_mib: Option<f64>,
    /// Fargate `EphemeralStorageMetrics.Utilized`, MiB.
    pub ephemeral_used_mib: Option<f64>,
    /// Fargate `EphemeralStorageMetrics.Reserved`, MiB.
    pub ephemeral_reserved_mib: Option<f64>,
    pub containers: Vec<Container>,
}

/// One entry of the task's `Containers`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Container {
    pub docker_id: String,
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub known_status: String,
    /// Container `Limits.CPU`, in CPU units (1024 = one vCPU).
    pub cpu_units: Option<f64>,
    /// Container `Limits.Memory`, in MiB.
    pub memory_mib: Option<f64>,
    /// `Health.status` (`HEALTHY`, `UNHEALTHY`, `UNKNOWN`), as given.
    pub health: Option<String>,
    pub restart_count: Option<u64>,
    pub exit_code: Option<i64>,
    /// `StartedAt` as Unix seconds.
    pub started_at: Option<f64>,
    /// `Networks[0].NetworkMode` (`awsvpc`, `bridge`, `host`, ...).
    pub network_mode: Option<String>,
}

/// The cumulative CPU counters of one reading (`cpu_stats` or `precpu_stats`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cpu {
    /// `cpu_usage.total_usage`, ns.
    pub total: Option<u64>,
    /// `cpu_usage.percpu_usage`, ns (cgroup v1 only; may be padded with zeros).
    pub percpu: Vec<u64>,
    pub kernel: Option<u64>,
    pub user: Option<u64>,
    /// `system_cpu_usage`, ns of host CPU time (absent on Windows and on some Fargate samples).
    pub system: Option<u64>,
    pub online_cpus: Option<u32>,
}

/// `cpu_stats.throttling_data`, raw cumulative values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Throttling {
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_time: u64,
}

/// `memory_stats`, normalised across cgroup v1 and v2.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// `usage` (includes page cache).
    pub usage: Option<u64>,
    /// v1 `cache`, v2 `file`.
    pub cache: Option<u64>,
    /// v1 `rss`, v2 `anon`.
    pub rss: Option<u64>,
    /// v1 `total_inactive_file`, v2 `inactive_file`.
    pub inactive_file: Option<u64>,
}

/// One block device of a blkio list: the `read` and `write` entries (any case) of its
/// `major:minor`, summed. Other ops (`Sync`, `Async`, `Total`, `Discard`) are left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Device {
    pub major: u64,
    pub minor: u64,
    pub read: u64,
    pub write: u64,
}

/// `blkio_stats` per device; `None` where a list is absent, `null` or not a list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Disk {
    /// `io_service_bytes_recursive`: bytes.
    pub bytes: Option<Vec<Device>>,
    /// `io_serviced_recursive`: operations (cgroup v1 only).
    pub ops: Option<Vec<Device>>,
}

/// One interface of `networks`. Missing counters read as 0 (Windows has no error counters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Net {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// A real stats reading of one container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// `read`, ns since the Unix epoch.
    pub read: i128,
    /// `preread`, when it is a real time.
    pub preread: Option<i128>,
    pub cpu: Cpu,
    /// `precpu_stats` (all zero on a first sample).
    pub precpu: Cpu,
    pub throttling: Option<Throttling>,
    pub memory: Memory,
    pub disk: Disk,
    /// Interfaces sorted by name.
    pub networks: Vec<(String, Net)>,
}

/// `/task/stats`: `DockerId` → a sample, or `None` for `null`, `{}` and not-running entries.
pub type Stats = HashMap<String, Option<Sample>>;

/// Reads a `/task` body.
pub fn parse_task(body: &[u8]) -> Result<Task, ParseError> {
    let value = parse_json(body)?;
    let Value::Object(t) = value else {
        return Err(ParseError(format!(
            "expected a JSON object, got {}",
            kind(&value)
        )));
    };
    let limits = t.get("Limits");
    let ephemeral = t.get("EphemeralStorageMetrics");
    Ok(Task {
        cluster: string(t.get("Cluster")),
        task_arn: string(t.get("TaskARN")),
        family: string(t.get("Family")),
        revision: string(t.get("Revision")),
        launch_type: string(t.get("LaunchType")),
        availability_zone: string(t.get("AvailabilityZone")),
        service_name: string(t.get("ServiceName")),
        host_name: String::new(),
        cpu_vcpus: float(field(limits, "CPU")),
        memory_mib: float(field(limits, "Memory")),
        ephemeral_used_mib: float(field(ephemeral, "Utilized")),
        ephemeral_reserved_mib: float(field(ephemeral, "Reserved")),
        containers: match t.get("Containers") {
            Some(Value::Array(list)) => list.iter().filter_map(container).collect(),
            _ => Vec::new(),
        },
    })
}

/// Reads a `/task/stats` body. The whole map may be `null` or `{}` (no container yet).
pub fn parse_stats(body: &[u8]) -> Result<Stats, ParseError> {
    match parse_json(body)? {
        Value::Null => Ok(Stats::new()),
        Value::Object(map) => Ok(map
            .into_iter()
            .map(|(id, entry)| {
                let sample = sample(&entry);
                (id, sample)
            })
            .collect()),
        other => Err(ParseError(format!(
            "expected a JSON object or null, got {}",
            kind(&other)
        ))),
    }
}

/// Reads one container's stats object (the `${URI}/stats` shape, or one value of `/task/stats`).
pub fn sample(entry: &Value) -> Option<Sample> {
    let s = entry.as_object()?;
    let read = s
        .get("read")
        .and_then(Value::as_str)
        .and_then(rfc3339::parse)?;
    let cpu_stats = s.get("cpu_stats");
    let memory_stats = s.get("memory_stats");
    let blkio = s.get("blkio_stats");
    Some(Sample {
        read,
        preread: s
            .get("preread")
            .and_then(Value::as_str)
            .and_then(rfc3339::parse),
        cpu: cpu(cpu_stats),
        precpu: cpu(s.get("precpu_stats")),
        throttling: field(cpu_stats, "throttling_data")
            .and_then(Value::as_object)
            .map(|t| Throttling {
                periods: counter(t.get("periods")).unwrap_or(0),
                throttled_periods: counter(t.get("throttled_periods")).unwrap_or(0),
                throttled_time: counter(t.get("throttled_time")).unwrap_or(0),
            }),
        memory: memory(memory_stats),
        disk: Disk {
            bytes: devices(field(blkio, "io_service_bytes_recursive")),
            ops: devices(field(blkio, "io_serviced_recursive")),
        },
        networks: networks(s.get("networks")),
    })
}

fn container(value: &Value) -> Option<Container> {
    let c = value.as_object()?;
    let limits = c.get("Limits");
    let first_network = match c.get("Networks") {
        Some(Value::Array(list)) => list.first(),
        _ => None,
    };
    Some(Container {
        docker_id: string(c.get("DockerId")),
        name: string(c.get("Name")),
        image: string(c.get("Image")),
        image_id: string(c.get("ImageID")),
        known_status: string(c.get("KnownStatus")),
        cpu_units: float(field(limits, "CPU")),
        memory_mib: float(field(limits, "Memory")),
        health: field(c.get("Health"), "status")
            .and_then(Value::as_str)
            .map(str::to_owned),
        restart_count: counter(c.get("RestartCount")),
        exit_code: c.get("ExitCode").and_then(Value::as_i64),
        started_at: c
            .get("StartedAt")
            .and_then(Value::as_str)
            .and_then(rfc3339::parse)
            .map(|ns| ns as f64 / 1e9),
        network_mode: field(first_network, "NetworkMode")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

fn cpu(value: Option<&Value>) -> Cpu {
    let usage = field(value, "cpu_usage");
    Cpu {
        total: counter(field(usage, "total_usage")),
        percpu: match field(usage, "percpu_usage") {
            Some(Value::Array(list)) => {
                list.iter().map(|v| counter(Some(v)).unwrap_or(0)).collect()
            }
            _ => Vec::new(),
        },
        kernel: counter(field(usage, "usage_in_kernelmode")),
        user: counter(field(usage, "usage_in_usermode")),
        system: counter(field(value, "system_cpu_usage")),
        online_cpus: counter(field(value, "online_cpus"))
            .and_then(|n| u32::try_from(n).ok())
            .filter(|&n| n > 0),
    }
}

fn memory(value: Option<&Value>) -> Memory {
    let stats = field(value, "stats");
    let key = |k: &str| counter(field(stats, k));
    Memory {
        usage: counter(field(value, "usage")),
        cache: key("cache").or_else(|| key("file")),
        rss: key("rss").or_else(|| key("anon")),
        inactive_file: key("total_inactive_file").or_else(|| key("inactive_file")),
    }
}

/// The devices of a blkio list, in the order they first appear; `None` when it is not a list.
fn devices(list: Option<&Value>) -> Option<Vec<Device>> {
    let Some(Value::Array(entries)) = list else {
        return None;
    };
    let mut devices: Vec<Device> = Vec::new();
    for e in entries {
        let op = e.get("op").and_then(Value::as_str).unwrap_or("");
        let (read, write) = (
            op.eq_ignore_ascii_case("read"),
            op.eq_ignore_ascii_case("write"),
        );
        let (Some(value), true) = (counter(e.get("value")), read || write) else {
            continue;
        };
        let major = counter(e.get("major")).unwrap_or(0);
        let minor = counter(e.get("minor")).unwrap_or(0);
        let i = match devices
            .iter()
            .position(|d| (d.major, d.minor) == (major, minor))
        {
            Some(i) => i,
            None => {
                devices.push(Device {
                    major,
                    minor,
                    ..Device::default()
                });
                devices.len() - 1
            }
        };
        let d = &mut devices[i];
        if read {
            d.read = d.read.saturating_add(value);
        } else {
            d.write = d.write.saturating_add(value);
        }
    }
    Some(devices)
}

fn networks(value: Option<&Value>) -> Vec<(String, Net)> {
    let Some(Value::Object(map)) = value else {
        return Vec::new();
    };
    let mut list: Vec<(String, Net)> = map
        .iter()
        .filter_map(|(name, n)| {
            let n: &Map<String, Value> = n.as_object()?;
            let c = |k: &str| counter(n.get(k)).unwrap_or(0);
            Some((
                name.clone(),
                Net {
                    rx_bytes: c("rx_bytes"),
                    rx_packets: c("rx_packets"),
                    rx_errors: c("rx_errors"),
                    rx_dropped: c("rx_dropped"),
                    tx_bytes: c("tx_bytes"),
                    tx_packets: c("tx_packets"),
                    tx_errors: c("tx_errors"),
                    tx_dropped: c("tx_dropped"),
                },
            ))
        })
        .collect();
    list.sort_by(|a, b| a.0.cmp(&b.0));
    list
}

fn field<'a>(value: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    value?.as_object()?.get(key)
}

fn string(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// A finite number (a limit).
fn float(value: Option<&Value>) -> Option<f64> {
    value?.as_f64().filter(|f| f.is_finite())
}

/// A non-negative count: a JSON integer, or a float (`9223372036854772000` as printed by some
/// encoders) truncated and saturated into `u64`. Negative or non-numeric values are `None`.
fn counter(value: Option<&Value>) -> Option<u64> {
    let n = value?.as_number()?;
    if let Some(u) = n.as_u64() {
        return Some(u);
    }
    let f = n.as_f64()?;
    // `as` saturates: values above u64::MAX become u64::MAX.
    (f.is_finite() && f >= 0.0).then_some(f as u64)
}

fn json_error(e: serde_json::Error) -> ParseError {
    ParseError(format!("invalid JSON: {e}"))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_accept_float_literals_and_saturate() {
        let v: Value = serde_json::from_str(
            "[9223372036854772000, 18446744073709551615, 1e30, -1, 2.5, \"3\"]",
        )
        .unwrap();
        let a = v.as_array().unwrap();
        assert_eq!(counter(a.first()), Some(9_223_372_036_854_772_000));
        assert_eq!(counter(a.get(1)), Some(u64::MAX));
        assert_eq!(counter(a.get(2)), Some(u64::MAX));
        assert_eq!(counter(a.get(3)), None);
        assert_eq!(counter(a.get(4)), Some(2));
        assert_eq!(counter(a.get(5)), None);
    }

    #[test]
    fn stats_map_may_be_null_or_empty_but_not_a_string() {
        assert!(parse_stats(b"null").unwrap().is_empty());
        assert!(parse_stats(b"{}").unwrap().is_empty());
        assert!(parse_stats(b"\"Unable to get task stats\"").is_err());
        assert!(parse_stats(b"{\"a\":").is_err());
        assert!(parse_task(b"[]").is_err());
    }

    #[test]
    fn entries_without_a_real_read_are_absent() {
        let stats = parse_stats(br#"{"a": null, "b": {}, "c": {"read": "0001-01-01T00:00:00Z"}, "d": {"read": "2025-01-01T00:00:00Z"}}"#).unwrap();
        assert_eq!(stats.len(), 4);
        assert!(stats["a"].is_none() && stats["b"].is_none() && stats["c"].is_none());
        assert!(stats["d"].is_some());
    }

    #[test]
    fn fields_of_the_wrong_type_cost_only_that_field() {
        let stats = parse_stats(
            br#"{"x": {"read": "2025-01-01T00:00:00Z",
            "blkio_stats": {"io_service_bytes_recursive": "None"},
            "cpu_stats": {"cpu_usage": {"total_usage": "12", "usage_in_kernelmode": 5}},
            "memory_stats": {"usage": 10, "stats": []}, "networks": {"eth0": 3}}}"#,
        )
        .unwrap();
        let s = stats["x"].clone().unwrap();
        assert_eq!(s.disk, Disk::default());
        assert_eq!(s.cpu.total, None);
        assert_eq!(s.cpu.kernel, Some(5));
        assert_eq!(s.memory.usage, Some(10));
        assert!(s.networks.is_empty());
    }
}
