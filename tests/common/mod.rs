//! Helpers shared by the integration tests: fixtures, the pure pipeline, the 2.x family names, a
//! strict parser of the text exposition and what tests read from a scrape, temporary
//! directories, waiting, and skipping a test that cannot run. [`process`] holds the simulated
//! endpoint and the exporter binary as processes (how every test starts them), [`client`] the
//! raw HTTP/1.1 client, [`docker`] the Docker engine and static-build helpers, [`prometheus`] a
//! real Prometheus server and promtool, [`statsd`] a DogStatsD receiver and line checker,
//! [`receiver`] a Remote-Write receiver that answers as told, [`push`] the pushing exporter's
//! counters, logs and Prometheus as its receiver.
#![allow(dead_code)]

pub mod client;
pub mod docker;
pub mod process;
pub mod prometheus;
#[cfg(feature = "remote-write")]
pub mod push;
#[cfg(feature = "remote-write")]
pub mod receiver;
pub mod statsd;

// What most test files use, at the top (each file some of it).
#[allow(unused_imports)]
pub use client::{exchange, http_get, http_request};
#[allow(unused_imports)]
pub use process::{EXPORTER, Exporter, Launch, SIM, Sim, free_port};

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ecs_container_exporter::core::compute::{self, Filter, History};
use ecs_container_exporter::core::exposition::{self, Format};
use ecs_container_exporter::core::payload;
use ecs_container_exporter::core::snapshot::Snapshot;

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// The 2.x families (SPEC §3.1) but `ecs_task_exporter_status`: the 23 from `ecs_task_cpu_limit`
/// to `ecs_task_network_tx_dropped_total` (what DogStatsD carries).
pub const LEGACY_FAMILIES: [&str; 23] = [
    "ecs_task_cpu_limit",
    "ecs_task_mem_limit",
    "ecs_task_cpu_usage_ratio",
    "ecs_task_percpu_usage_ratio",
    "ecs_task_cpu_kernelmode",
    "ecs_task_cpu_usermode",
    "ecs_task_cpu_throttle_periods",
    "ecs_task_cpu_throttle_throttled_periods",
    "ecs_task_cpu_throttle_throttled_time",
    "ecs_task_mem_usage",
    "ecs_task_mem_cache",
    "ecs_task_disk_read_bytes_total",
    "ecs_task_disk_written_bytes_total",
    "ecs_task_disk_read_iops_total",
    "ecs_task_disk_written_iops_total",
    "ecs_task_network_rx_bytes_total",
    "ecs_task_network_rx_packets_total",
    "ecs_task_network_rx_errors_total",
    "ecs_task_network_rx_dropped_total",
    "ecs_task_network_tx_bytes_total",
    "ecs_task_network_tx_packets_total",
    "ecs_task_network_tx_errors_total",
    "ecs_task_network_tx_dropped_total",
];

/// The families of SPEC §3.2 and `ecs_task_exporter_status`: every family beyond
/// [`LEGACY_FAMILIES`].
pub const ADDED_FAMILIES: [&str; 22] = [
    "ecs_task_exporter_status",
    "ecs_task_info",
    "ecs_container_info",
    "ecs_container_known_status",
    "ecs_container_health_status",
    "ecs_container_restarts_total",
    "ecs_container_exit_code",
    "ecs_container_start_time_seconds",
    "ecs_container_cpu_usage_seconds_total",
    "ecs_container_cpu_user_seconds_total",
    "ecs_container_cpu_system_seconds_total",
    "ecs_container_memory_working_set_bytes",
    "ecs_container_memory_rss_bytes",
    "ecs_container_memory_limit_bytes",
    "ecs_task_ephemeral_storage_used_bytes",
    "ecs_task_ephemeral_storage_reserved_bytes",
    "ecs_exporter_build_info",
    "ecs_exporter_up",
    "ecs_exporter_last_success_timestamp_seconds",
    "ecs_exporter_poll_duration_seconds",
    "ecs_exporter_poll_errors_total",
    "ecs_exporter_statsd_errors_total",
];

/// The simulator's profiles (`ecs-task-sim --profile`).
pub const PROFILES: [&str; 4] = ["fargate", "ec2-bridge", "managed-instances", "ec2-awsvpc"];

/// The default filter of the exporter.
pub fn default_filter() -> Filter {
    Filter {
        include: Vec::new(),
        exclude: vec![
            "ecs-container-exporter".into(),
            "~internal~ecs~pause".into(),
        ],
    }
}

/// Everything exported.
pub fn no_filter() -> Filter {
    Filter::default()
}

/// One poll of a fixture pair from an empty history.
pub fn first_poll(task: &str, stats: &str, filter: &Filter) -> (Snapshot, History) {
    let task = payload::parse_task(&fixture(task)).expect("task parses");
    let stats = payload::parse_stats(&fixture(stats)).expect("stats parse");
    compute::compute(&task, &stats, &History::default(), &filter.clone().into())
}

pub fn render(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    exposition::write_families(&mut out, &snapshot.families, Format::Text);
    out
}

/// A parsed text exposition: (name, sorted labels) → value, plus each family's type.
#[derive(Debug, Default)]
pub struct Scrape {
    pub samples: BTreeMap<(String, Vec<(String, String)>), f64>,
    pub types: HashMap<String, String>,
    pub order: Vec<String>,
}

impl Scrape {
    /// The value of a series, labels given in any order.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut l: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        l.sort();
        self.samples.get(&(name.to_owned(), l)).copied()
    }

    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no series {name}{labels:?}"))
    }

    /// All series of a family.
    pub fn series(&self, name: &str) -> Vec<(&Vec<(String, String)>, f64)> {
        self.samples
            .iter()
            .filter(|((n, _), _)| n == name)
            .map(|((_, l), v)| (l, *v))
            .collect()
    }

    pub fn has_family(&self, name: &str) -> bool {
        self.samples.keys().any(|(n, _)| n == name)
    }
}

/// Parses Prometheus text format 0.0.4 strictly: HELP then TYPE once per family, before its
/// samples; families never interleaved; every series unique; values parse; label values escaped.
pub fn parse_strict(text: &str) -> Result<Scrape, String> {
    let mut scrape = Scrape::default();
    let mut seen_families: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut helped: HashSet<String> = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let at = |msg: &str| format!("line {}: {msg}: {line}", n + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or("").to_owned();
            if !helped.insert(name.clone()) {
                return Err(at("second HELP"));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap_or("").to_owned();
            let kind = parts.next().unwrap_or("").to_owned();
            if !matches!(kind.as_str(), "counter" | "gauge") {
                return Err(at("unknown type"));
            }
            if !helped.contains(&name) {
                return Err(at("TYPE without HELP"));
            }
            if !seen_families.insert(name.clone()) {
                return Err(at("family appears twice (interleaved or duplicated)"));
            }
            scrape.types.insert(name.clone(), kind);
            scrape.order.push(name.clone());
            current = Some(name);
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            return Err(at("unexpected comment or blank line"));
        }
        let (name, labels, value) = parse_sample(line).map_err(|e| at(&e))?;
        if current.as_deref() != Some(name.as_str()) {
            return Err(at("sample outside its family"));
        }
        if scrape.samples.insert((name, labels), value).is_some() {
            return Err(at("duplicate series"));
        }
    }
    Ok(scrape)
}

/// A sample line: name, sorted labels, value.
pub type Sample = (String, Vec<(String, String)>, f64);

pub fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return Err("bad metric name".into());
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        let mut key = String::new();
        loop {
            let (i, c) = chars.next().ok_or("unterminated labels")?;
            match c {
                '}' if key.is_empty() => {
                    rest = &body[i + 1..];
                    break;
                }
                '=' => {
                    if chars.next().map(|(_, c)| c) != Some('"') {
                        return Err("label value not quoted".into());
                    }
                    let mut value = String::new();
                    loop {
                        let (_, c) = chars.next().ok_or("unterminated label value")?;
                        match c {
                            '\\' => match chars.next().map(|(_, c)| c) {
                                Some('\\') => value.push('\\'),
                                Some('"') => value.push('"'),
                                Some('n') => value.push('\n'),
                                _ => return Err("bad escape".into()),
                            },
                            '"' => break,
                            '\n' => return Err("raw newline".into()),
                            c => value.push(c),
                        }
                    }
                    if value.is_empty() {
                        return Err("empty label value written".into());
                    }
                    labels.push((std::mem::take(&mut key), value));
                    match chars.next().map(|(_, c)| c) {
                        Some(',') => {}
                        Some('}') => {
                            let (i, _) = chars.peek().copied().unwrap_or((body.len(), ' '));
                            rest = &body[i..];
                            break;
                        }
                        _ => return Err("expected , or }".into()),
                    }
                }
                c if c.is_ascii_alphanumeric() || c == '_' => key.push(c),
                _ => return Err("bad label name".into()),
            }
        }
    }
    let value = rest.strip_prefix(' ').ok_or("no space before value")?;
    let value: f64 = match value {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().map_err(|_| format!("bad value {v:?}"))?,
    };
    let mut sorted = labels.clone();
    sorted.sort();
    if sorted.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err("repeated label name".into());
    }
    Ok((name.to_owned(), sorted, value))
}

/// One poll of a fixture pair, rendered and parsed strictly.
pub fn scrape_fixture(task: &str, stats: &str, filter: &Filter) -> Scrape {
    let (snapshot, _) = first_poll(task, stats, filter);
    parse_strict(&render(&snapshot)).expect("strict parse")
}

/// The value of label `key` in a series' labels.
pub fn label<'a>(labels: &'a [(String, String)], key: &str) -> Option<&'a str> {
    labels
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Every `container_name` that has at least one series (`_task_` included).
pub fn container_names(s: &Scrape) -> BTreeSet<String> {
    s.samples
        .keys()
        .filter_map(|(_, labels)| label(labels, "container_name").map(str::to_owned))
        .collect()
}

/// The `_task_` rows of the task's counter families (`ecs_task_*_total`), by family and labels.
pub fn task_counters(s: &Scrape) -> BTreeMap<(String, Vec<(String, String)>), f64> {
    s.samples
        .iter()
        .filter(|((name, labels), _)| {
            name.starts_with("ecs_task_")
                && name.ends_with("_total")
                && label(labels, "container_name") == Some("_task_")
        })
        .map(|(key, v)| (key.clone(), *v))
        .collect()
}

/// Whether the scrape has the task's CPU ratio (`_task_` row), which takes two polls.
pub fn task_ratio_ready(s: &Scrape) -> bool {
    s.get("ecs_task_cpu_usage_ratio", &[("container_name", "_task_")])
        .is_some()
}

// ---------------------------------------------------------------------------------------------
// Running: temporary directories, tools, waiting, skipping.

/// A temporary directory of this test process, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!("ecx-{what}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether the tests run in CI (`CI=true`), where a missing tool fails a test instead of
/// skipping it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// The test (or a part of it) cannot run here: fails it under `CI=true`, else prints one line
/// `skipping: <why>` (the caller then returns, or leaves that part out).
pub fn skip(why: &str) {
    assert!(!in_ci(), "{why} (CI=true: the test must run)");
    eprintln!("skipping: {why}");
}

/// Runs a command to its end; panics with what it printed unless it exits 0.
pub fn run_ok(command: &mut Command) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?}: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Whether `program` runs with `args` and exits 0 (a presence probe, output discarded).
pub fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Polls `check` every 20 ms until it is true or `timeout` passes.
pub fn wait_for(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    check()
}
