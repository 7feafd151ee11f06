//! The Docker Engine API's JSON (plain Docker hosts, `--docker`) turned into the [`Task`] and
//! [`Stats`] that `compute` already knows. Pure; the requests are `source::docker`'s.
//!
//! - There is no task: the [`Task`] has no CPU or memory limit (so `_task_` rows are sums, CPU over
//!   the host), no cluster, ARN or family, and `launch_type` `DOCKER`, the one label of
//!   `ecs_task_info` in this mode (it says which source the exporter reads).
//! - A container's `container_name` is its Docker name without the `/`; `image` is the image as it
//!   was started (`nginx:1.27`), `image_id` the `sha256:` id; `known_status` the list's `State` in
//!   upper case (`RUNNING`, `PAUSED`); health from the list's `Status` suffix (`(healthy)`,
//!   `(unhealthy)`, `(health: starting)` → `UNKNOWN`); `RestartCount` and `State.StartedAt` from
//!   inspect.
//! - Limits in the ECS units compute expects: CPU units = cpus × 1024, cpus = `NanoCpus` / 1e9,
//!   else `CpuQuota` / `CpuPeriod` (period 100 ms when 0); memory MiB = `Memory` / 2^20. Zero means
//!   no limit. `CpuShares` (a weight) and cpusets are not limits and are ignored.
//! - Network: containers keep no `NetworkMode`, so compute sums interfaces over the containers
//!   (bridge semantics). `host` containers report no networks. A container that joins another's
//!   namespace (`--network container:<id>`) reports that container's counters; its own
//!   `networks` are dropped so that `_task_` does not count them twice.
//!
//! Out of scope: HTTP, the inspect cache, churn (`source::docker`).

use super::payload::{self, Container, Json, ParseError, Sample, Stats, Task};
use super::rfc3339;

/// The `launch_type` label of `ecs_task_info` in this mode.
pub const LAUNCH_TYPE: &str = "DOCKER";

/// One entry of `GET /containers/json`, the fields used.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listed {
    pub id: String,
    /// The name without its leading `/`.
    pub name: String,
    pub image: String,
    pub image_id: String,
    /// `running`, `paused`, `restarting`.
    pub state: String,
    /// `HEALTHY`, `UNHEALTHY` or `UNKNOWN`, from the `Status` text; `None` without a health check.
    pub health: Option<String>,
    /// `HostConfig.NetworkMode` (`default`, `host`, `container:<id>`, a network name).
    pub network_mode: String,
}

/// What `GET /containers/{id}/json` adds, in ECS units.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inspect {
    /// CPU units (1024 = 1 CPU); `None` without a CPU limit.
    pub cpu_units: Option<f64>,
    /// MiB; `None` without a memory limit.
    pub memory_mib: Option<f64>,
    pub restart_count: Option<u64>,
    /// `State.StartedAt`, Unix seconds.
    pub started_at: Option<f64>,
}

/// Reads a `/containers/json` body. Entries without an `Id` are skipped.
pub fn parse_list(body: &[u8]) -> Result<Vec<Listed>, ParseError> {
    let Json::Array(entries) = payload::parse_json(body)? else {
        return Err(ParseError("expected a JSON array of containers".to_owned()));
    };
    Ok(entries.iter().filter_map(listed).collect())
}

fn listed(entry: &Json) -> Option<Listed> {
    let c = entry.as_object()?;
    let id = c.get("Id")?.as_str()?;
    // Ids go into request paths: hex in practice, never anything to escape.
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let names: Vec<&str> = match c.get("Names") {
        Some(Json::Array(list)) => list.iter().filter_map(Json::as_str).collect(),
        _ => Vec::new(),
    };
    // Legacy links add names like `/app/db`; the container's own name has no inner `/`.
    let name = names
        .iter()
        .map(|n| n.strip_prefix('/').unwrap_or(n))
        .find(|n| !n.contains('/'))
        .or_else(|| names.first().map(|n| n.trim_start_matches('/')))
        .unwrap_or(id);
    let text = |k: &str| c.get(k).and_then(Json::as_str).unwrap_or("").to_owned();
    Some(Listed {
        id: id.to_owned(),
        name: name.to_owned(),
        image: text("Image"),
        image_id: text("ImageID"),
        state: text("State"),
        health: c.get("Status").and_then(Json::as_str).and_then(health),
        network_mode: c
            .get("HostConfig")
            .and_then(|h| h.get("NetworkMode"))
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_owned(),
    })
}

/// The health suffix of a `Status` such as `Up 2 minutes (healthy)`.
fn health(status: &str) -> Option<String> {
    let state = if status.ends_with("(healthy)") {
        "HEALTHY"
    } else if status.ends_with("(unhealthy)") {
        "UNHEALTHY"
    } else if status.ends_with("(health: starting)") {
        "UNKNOWN"
    } else {
        return None;
    };
    Some(state.to_owned())
}

/// Reads a `/containers/{id}/json` body.
pub fn parse_inspect(body: &[u8]) -> Result<Inspect, ParseError> {
    let value = payload::parse_json(body)?;
    let Json::Object(c) = &value else {
        return Err(ParseError("expected a JSON object".to_owned()));
    };
    let (cpu_units, memory_mib) = limits(c.get("HostConfig"));
    Ok(Inspect {
        cpu_units,
        memory_mib,
        restart_count: c.get("RestartCount").and_then(Json::as_u64),
        started_at: c
            .get("State")
            .and_then(|s| s.get("StartedAt"))
            .and_then(Json::as_str)
            .and_then(rfc3339::parse)
            .map(|ns| ns as f64 / 1e9),
    })
}

/// `HostConfig` limits as (CPU units, MiB); each `None` when not set.
pub fn limits(host_config: Option<&Json>) -> (Option<f64>, Option<f64>) {
    let num = |k: &str| {
        host_config
            .and_then(|h| h.get(k))
            .and_then(Json::as_f64)
            .filter(|v| v.is_finite() && *v > 0.0)
    };
    let cpus = num("NanoCpus").map(|n| n / 1e9).or_else(|| {
        let period = num("CpuPeriod").unwrap_or(100_000.0);
        num("CpuQuota").map(|q| q / period)
    });
    let memory = num("Memory").map(|bytes| bytes / 1_048_576.0);
    (cpus.map(|c| c * 1024.0), memory)
}

/// Reads a `/containers/{id}/stats` body: `None` when it is no real reading (a stopped container).
pub fn parse_stats(body: &[u8]) -> Result<Option<Sample>, ParseError> {
    Ok(payload::sample(&payload::parse_json(body)?))
}

/// The Engine's `Name` from `GET /info` (the host's name), empty if it has none.
pub fn parse_info(body: &[u8]) -> Result<String, ParseError> {
    let info = payload::parse_json(body)?;
    Ok(match info.get("Name") {
        Some(Json::String(name)) => name.clone(),
        _ => String::new(),
    })
}

/// The task and stats of one poll, from each present container's list entry, inspect result and
/// stats reading. Containers are sorted by name.
pub fn assemble(entries: Vec<(Listed, Inspect, Option<Sample>)>) -> (Task, Stats) {
    let mut containers = Vec::with_capacity(entries.len());
    let mut stats = Stats::with_capacity(entries.len());
    for (listed, inspect, mut sample) in entries {
        if listed.network_mode.starts_with("container:")
            && let Some(s) = sample.as_mut()
        {
            s.networks.clear();
        }
        containers.push(Container {
            docker_id: listed.id.clone(),
            name: listed.name,
            image: listed.image,
            image_id: listed.image_id,
            known_status: listed.state.to_ascii_uppercase(),
            cpu_units: inspect.cpu_units,
            memory_mib: inspect.memory_mib,
            health: listed.health,
            restart_count: inspect.restart_count,
            exit_code: None,
            started_at: inspect.started_at,
            network_mode: None,
        });
        stats.insert(listed.id, sample);
    }
    containers.sort_by(|a, b| a.name.cmp(&b.name).then(a.docker_id.cmp(&b.docker_id)));
    let task = Task {
        launch_type: LAUNCH_TYPE.to_owned(),
        containers,
        ..Task::default()
    };
    (task, stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Trimmed from a real engine (20.10.24, API 1.41, cgroup v1): two containers, one joining
    // the other's network namespace.
    const LIST: &str = r#"[
      {"Id": "d6772d13cfaa57839240a8c86a2f49e7c9dfc42f28ed116f22e1e167507a72ea",
       "Names": ["/e-probe-burn"], "Image": "e-probe:1",
       "ImageID": "sha256:569cc78b5fcdb5836abb65732918b1efeda83f201bd6ce27b9073ae7dc9c3d0d",
       "Command": "/ecs-container-exporter --interval 0.01", "Created": 1795625227,
       "Ports": [], "Labels": {}, "State": "running", "Status": "Up 8 seconds",
       "HostConfig": {"NetworkMode": "container:6cf7904326b4617bf7af0e51ae0c5dd463825427ad6683c12078381b4baf34e2"},
       "NetworkSettings": {"Networks": {}}, "Mounts": []},
      {"Id": "6cf7904326b4617bf7af0e51ae0c5dd463825427ad6683c12078381b4baf34e2",
       "Names": ["/e-probe-sim", "/web/sim"], "Image": "e-probe:1",
       "ImageID": "sha256:569cc78b5fcdb5836abb65732918b1efeda83f201bd6ce27b9073ae7dc9c3d0d",
       "State": "running", "Status": "Up 4 seconds (unhealthy)",
       "HostConfig": {"NetworkMode": "default"},
       "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.2"}}}},
      {"Id": "aa11", "Names": ["/paused"], "State": "paused", "Status": "Up 4 seconds (Paused)"},
      {"Names": ["/no-id"]},
      {"Id": "../../etc", "Names": ["/evil"]},
      42
    ]"#;

    const INSPECT: &str = r#"{
      "Id": "6cf7904326b4617bf7af0e51ae0c5dd463825427ad6683c12078381b4baf34e2",
      "State": {"Status": "running", "Running": true, "Paused": false, "Pid": 22834,
                "ExitCode": 0, "StartedAt": "2026-11-25T16:47:07.252222443Z",
                "FinishedAt": "0001-01-01T00:00:00Z"},
      "Image": "sha256:569cc78b5fcdb5836abb65732918b1efeda83f201bd6ce27b9073ae7dc9c3d0d",
      "Name": "/e-probe-sim", "RestartCount": 0,
      "HostConfig": {"NetworkMode": "default", "CpuShares": 0, "Memory": 33554432,
                     "NanoCpus": 500000000, "CpuPeriod": 0, "CpuQuota": 0,
                     "MemoryReservation": 0, "MemorySwap": 67108864}
    }"#;

    const STATS: &str = r#"{
      "read": "2026-11-25T16:47:17.005230448Z", "preread": "2026-11-25T16:47:16.001382712Z",
      "pids_stats": {"current": 1},
      "blkio_stats": {"io_service_bytes_recursive": [], "io_serviced_recursive": []},
      "num_procs": 0, "storage_stats": {},
      "cpu_stats": {"cpu_usage": {"total_usage": 711397941, "percpu_usage": [334499895, 376898046],
                    "usage_in_kernelmode": 380000000, "usage_in_usermode": 320000000},
                    "system_cpu_usage": 1730270000000, "online_cpus": 2,
                    "throttling_data": {"periods": 99, "throttled_periods": 0, "throttled_time": 0}},
      "precpu_stats": {"cpu_usage": {"total_usage": 644069233, "percpu_usage": [301359741, 342709492],
                       "usage_in_kernelmode": 350000000, "usage_in_usermode": 280000000},
                       "system_cpu_usage": 1728250000000, "online_cpus": 2,
                       "throttling_data": {"periods": 89, "throttled_periods": 0, "throttled_time": 0}},
      "memory_stats": {"usage": 1753088, "max_usage": 4083712,
                       "stats": {"cache": 663552, "rss": 229376, "total_inactive_file": 663552},
                       "limit": 33554432},
      "name": "/e-probe-sim",
      "id": "6cf7904326b4617bf7af0e51ae0c5dd463825427ad6683c12078381b4baf34e2",
      "networks": {"eth0": {"rx_bytes": 806, "rx_packets": 9, "rx_errors": 0, "rx_dropped": 0,
                            "tx_bytes": 0, "tx_packets": 0, "tx_errors": 0, "tx_dropped": 0}}
    }"#;

    // What the engine answers for a container that is not running.
    const STOPPED_STATS: &str = r#"{"read": "0001-01-01T00:00:00Z", "preread": "0001-01-01T00:00:00Z",
      "cpu_stats": {"cpu_usage": {"total_usage": 0}, "throttling_data": {}},
      "memory_stats": {}, "name": "/gone", "id": "aa11"}"#;

    #[test]
    fn list_entries_become_containers() {
        let list = parse_list(LIST.as_bytes()).unwrap();
        assert_eq!(list.len(), 3, "{list:?}");
        assert_eq!(list[0].name, "e-probe-burn");
        assert_eq!(list[0].health, None);
        assert!(list[0].network_mode.starts_with("container:"));
        assert_eq!(list[1].name, "e-probe-sim");
        assert_eq!(list[1].image, "e-probe:1");
        assert!(list[1].image_id.starts_with("sha256:569c"));
        assert_eq!(list[1].health.as_deref(), Some("UNHEALTHY"));
        assert_eq!(list[2].state, "paused");
        assert_eq!(list[2].image, "");
        assert!(parse_list(b"{}").is_err());
        assert!(parse_list(b"[").is_err());
        assert!(parse_list(b"[]").unwrap().is_empty());
    }

    #[test]
    fn health_comes_from_the_status_suffix() {
        assert_eq!(health("Up 2 minutes (healthy)").as_deref(), Some("HEALTHY"));
        assert_eq!(
            health("Up 1 second (health: starting)").as_deref(),
            Some("UNKNOWN")
        );
        assert_eq!(
            health("Up 4 seconds (unhealthy)").as_deref(),
            Some("UNHEALTHY")
        );
        assert_eq!(health("Up 4 seconds (Paused)"), None);
        assert_eq!(health("Up 4 seconds"), None);
    }

    #[test]
    fn limits_convert_to_ecs_units() {
        let i = parse_inspect(INSPECT.as_bytes()).unwrap();
        assert_eq!(i.cpu_units, Some(512.0));
        assert_eq!(i.memory_mib, Some(32.0));
        assert_eq!(i.restart_count, Some(0));
        assert!(
            i.started_at
                .is_some_and(|t| (t - 1_795_625_227.252_222).abs() < 1e-5)
        );

        let hc = |s: &str| limits(Some(&payload::parse_json(s.as_bytes()).unwrap()));
        // --cpu-quota 150000 --cpu-period 100000, and the default period.
        assert_eq!(
            hc(r#"{"CpuQuota": 150000, "CpuPeriod": 100000}"#),
            (Some(1536.0), None)
        );
        assert_eq!(
            hc(r#"{"CpuQuota": 50000, "CpuPeriod": 0}"#),
            (Some(512.0), None)
        );
        // NanoCpus wins; zeros and -1 (unlimited quota) are no limit.
        assert_eq!(
            hc(r#"{"NanoCpus": 2000000000, "CpuQuota": 1000}"#).0,
            Some(2048.0)
        );
        assert_eq!(
            hc(
                r#"{"NanoCpus": 0, "CpuQuota": -1, "CpuPeriod": 100000, "Memory": 0, "CpuShares": 512}"#
            ),
            (None, None)
        );
        assert_eq!(hc(r#"{"Memory": 536870912}"#), (None, Some(512.0)));
        assert_eq!(limits(None), (None, None));
        assert_eq!(parse_inspect(b"{}").unwrap(), Inspect::default());
        assert!(parse_inspect(b"[]").is_err());
        assert!(parse_inspect(b"{").is_err());
    }

    #[test]
    fn stats_are_the_ecs_sample_shape() {
        let s = parse_stats(STATS.as_bytes()).unwrap().unwrap();
        assert_eq!(s.cpu.total, Some(711_397_941));
        assert_eq!(s.precpu.total, Some(644_069_233));
        assert_eq!(s.memory.usage, Some(1_753_088));
        assert_eq!(s.networks.len(), 1);
        assert_eq!(parse_stats(STOPPED_STATS.as_bytes()), Ok(None));
        assert_eq!(parse_stats(b"null"), Ok(None));
        assert!(parse_stats(b"{\"read\"").is_err());
    }

    #[test]
    fn a_poll_assembles_into_a_task_that_compute_sums() {
        use crate::core::compute::{self, Filter, History, TASK_ROW};
        let options = compute::Options::from(Filter::default());
        let list = parse_list(LIST.as_bytes()).unwrap();
        let inspect = parse_inspect(INSPECT.as_bytes()).unwrap();
        let sample = parse_stats(STATS.as_bytes()).unwrap();
        let entries = vec![
            // The burner joins the sim's namespace and reports the same eth0.
            (list[0].clone(), Inspect::default(), sample.clone()),
            (list[1].clone(), inspect, sample),
            (list[2].clone(), Inspect::default(), None),
        ];
        let (task, stats) = assemble(entries);
        assert_eq!(task.launch_type, "DOCKER");
        assert_eq!((task.cpu_vcpus, task.memory_mib), (None, None));
        let names: Vec<&str> = task.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["e-probe-burn", "e-probe-sim", "paused"]);
        assert_eq!(task.containers[1].known_status, "RUNNING");
        assert_eq!(task.containers[2].known_status, "PAUSED");
        assert!(task.containers.iter().all(|c| c.network_mode.is_none()));
        assert_eq!(stats.len(), 3);
        let burn = stats[&list[0].id].as_ref().unwrap();
        assert!(
            burn.networks.is_empty(),
            "joined namespace: not counted twice"
        );

        let (snap, _) = compute::compute(&task, &stats, &History::default(), &options);
        let value = |family: &str, name: &str| {
            snap.family(family).and_then(|f| {
                f.series
                    .iter()
                    .find(|s| s.labels.first().is_some_and(|(_, v)| v == name))
                    .map(|s| s.value.as_f64())
            })
        };
        assert_eq!(value("ecs_task_cpu_limit", "e-probe-sim"), Some(512.0));
        assert_eq!(value("ecs_task_cpu_limit", TASK_ROW), None);
        assert_eq!(value("ecs_task_mem_limit", "e-probe-sim"), Some(32.0));
        assert_eq!(
            value("ecs_container_memory_limit_bytes", "e-probe-sim"),
            Some(33_554_432.0)
        );
        assert_eq!(
            value("ecs_container_memory_limit_bytes", "e-probe-burn"),
            None
        );
        assert_eq!(
            value("ecs_task_mem_usage", TASK_ROW),
            Some(2.0 * 1_753_088.0)
        );
        assert_eq!(
            value("ecs_task_network_rx_bytes_total", TASK_ROW),
            Some(806.0)
        );
        // Δtotal 67328708 over Δsystem 2.02e9 × 2 CPUs = 0.0667 cores: over the 0.5-CPU limit
        // for the sim, over the 2 host CPUs for the unlimited burner, summed over the host.
        let cores = 67_328_708.0 / 2.02e9 * 2.0;
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-9);
        assert!(close(
            value("ecs_task_cpu_usage_ratio", "e-probe-sim"),
            cores / 0.5
        ));
        assert!(close(
            value("ecs_task_cpu_usage_ratio", "e-probe-burn"),
            cores / 2.0
        ));
        assert!(close(
            value("ecs_task_cpu_usage_ratio", TASK_ROW),
            2.0 * cores / 2.0
        ));
        let info = snap.family("ecs_task_info").unwrap();
        assert_eq!(
            info.series[0].labels,
            [("launch_type", "DOCKER".to_owned())]
        );
    }
}
