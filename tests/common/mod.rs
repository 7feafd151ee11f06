//! Helpers shared by the integration tests: fixtures, the pure pipeline, the 2.x family names, a
//! strict parser of the text exposition, and the simulated endpoint and the exporter binary as
//! processes. [`docker`] holds the Docker engine and static-build helpers, [`prometheus`] a real
//! Prometheus server and promtool, [`statsd`] a DogStatsD receiver and line checker, [`receiver`]
//! a Remote-Write receiver that answers as told, [`push`] the pushing exporter's counters, logs
//! and Prometheus as its receiver, [`client`] a raw HTTP/1.1 client for the server's tests.
#![allow(dead_code)]

pub mod client;
pub mod docker;
pub mod prometheus;
#[cfg(feature = "remote-write")]
pub mod push;
#[cfg(feature = "remote-write")]
pub mod receiver;
pub mod statsd;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

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

// ---------------------------------------------------------------------------------------------
// Processes: the simulated endpoint and the real exporter binary.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const EXPORTER: &str = env!("CARGO_BIN_EXE_ecs-container-exporter");
pub const SIM: &str = env!("CARGO_BIN_EXE_ecs-task-sim");

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A raw HTTP/1.1 GET with `Connection: close`: (status, head, body).
pub fn http_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String, String)> {
    http_request(addr, "GET", path, headers)
}

pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String, String)> {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    exchange(addr, &request)
}

/// Sends a whole request on a new connection and reads the answer to its end:
/// (status, head, body).
pub fn exchange(addr: SocketAddr, request: &str) -> std::io::Result<(u16, String, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {head:?}")))?;
    Ok((status, head.to_owned(), body.to_owned()))
}

/// Whether the tests run in CI (`CI=true`), where a missing tool fails a test instead of
/// skipping it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// A tool the test needs is missing: fails the test under `CI=true`, else prints one line
/// `skipping: <why>` (the caller then returns).
pub fn skip(why: &str) {
    assert!(!in_ci(), "{why} (CI=true: the test must run)");
    eprintln!("skipping: {why}");
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

/// Whether process `pid` holds a listening TCP socket on `port` (from /proc/net/tcp{,6} and
/// /proc/<pid>/fd).
pub fn listens_on(pid: u32, port: u16) -> bool {
    let suffix = format!(":{port:04X}");
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() > 9 && cols[3] == "0A" && cols[1].ends_with(&suffix) {
                inodes.push(format!("socket:[{}]", cols[9]));
            }
        }
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
    })
}

/// The simulated ECS endpoint (`ecs-task-sim`), killed on drop.
pub struct Sim {
    child: Child,
    pub addr: SocketAddr,
    pub url: String,
}

impl Sim {
    /// Starts the simulator on a free port with these extra arguments (e.g. `--profile`).
    pub fn start(args: &[&str]) -> Sim {
        Sim::try_start("127.0.0.1:0", args).unwrap_or_else(|line| panic!("ecs-task-sim: {line:?}"))
    }

    /// Starts it on a given port, retrying for a while: the port may still be held by a socket
    /// that is closing (a test's own placeholder).
    pub fn start_on(port: u16, args: &[&str]) -> Sim {
        let listen = format!("127.0.0.1:{port}");
        let mut last = String::new();
        for _ in 0..50 {
            match Sim::try_start(&listen, args) {
                Ok(sim) => return sim,
                Err(line) => last = line,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "ecs-task-sim could not listen on port {port} (taken by another process?): {last:?}"
        );
    }

    /// Starts it on `listen`; the first line it printed when that is not its address.
    fn try_start(listen: &str, args: &[&str]) -> Result<Sim, String> {
        let mut child = Command::new(SIM)
            .args(["--listen", listen])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ecs-task-sim");
        let stdout = child.stdout.take().expect("sim stdout");
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let Some(url) = line.trim().strip_prefix("listening on ").map(str::to_owned) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(line);
        };
        let addr: SocketAddr = url
            .trim_start_matches("http://")
            .parse()
            .expect("sim address");
        Ok(Sim { child, addr, url })
    }

    /// `GET /control/<query>`, e.g. `fault?kind=status500&endpoint=task`.
    pub fn control(&self, query: &str) -> String {
        let (status, _, body) =
            http_get(self.addr, &format!("/control/{query}"), &[]).expect("sim control");
        assert_eq!(status, 200, "control {query}: {body}");
        body
    }

    pub fn fault(&self, query: &str) {
        self.control(&format!("fault?{query}"));
    }

    pub fn clear(&self) {
        self.control("clear");
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The real exporter binary, killed on drop.
pub struct Exporter {
    pub child: Child,
    pub addr: SocketAddr,
    /// stderr, drained by a thread so a chatty exporter never blocks on a full pipe.
    logs: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Exporter {
    /// Starts the exporter against `metadata_url` on a free port (clean environment plus `env`)
    /// and waits until it answers `/metrics`.
    pub fn start(metadata_url: &str, args: &[&str], env: &[(&str, &str)]) -> Exporter {
        // `free_port` releases the port before the exporter binds it; on a busy machine another
        // process can take it in between. Then ours exits (cannot listen): try another port.
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new(EXPORTER)
                .args([
                    "--metadata-url",
                    metadata_url,
                    "--exporter-port",
                    &port.to_string(),
                ])
                .args(["--bind-address", "127.0.0.1"])
                .args(args)
                .env_clear()
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start ecs-container-exporter");
            match Exporter::try_adopt(child, ([127, 0, 0, 1], port).into()) {
                Ok(exporter) => return exporter,
                Err(e) => last = e,
            }
        }
        panic!("could not start an exporter on a port of its own: {last}");
    }

    /// Takes over an exporter started by the caller (stderr piped) and waits until it answers
    /// `/metrics` on `addr`.
    pub fn adopt(child: Child, addr: SocketAddr) -> Exporter {
        Exporter::try_adopt(child, addr).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits until this very process listens on `addr` (checked in /proc, so that another
    /// process on the port is never mistaken for ours) and answers `/metrics`.
    fn try_adopt(mut child: Child, addr: SocketAddr) -> Result<Exporter, String> {
        let logs = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        if let Some(stderr) = child.stderr.take() {
            let sink = std::sync::Arc::clone(&logs);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Ok(mut logs) = sink.lock() {
                        logs.push_str(&line);
                        logs.push('\n');
                    }
                }
            });
        }
        let mut exporter = Exporter { child, addr, logs };
        let pid = exporter.child.id();
        let ready = wait_for(Duration::from_secs(10), || {
            !matches!(exporter.child.try_wait(), Ok(None))
                || (listens_on(pid, addr.port()) && http_get(addr, "/metrics", &[]).is_ok())
        });
        if ready && matches!(exporter.child.try_wait(), Ok(None)) {
            Ok(exporter)
        } else {
            Err(format!(
                "exporter did not listen on {addr}: {}",
                exporter.logs()
            ))
        }
    }

    /// `GET /metrics` in text format, parsed strictly.
    pub fn scrape(&self) -> Scrape {
        let text = self.scrape_text();
        parse_strict(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    pub fn scrape_text(&self) -> String {
        let (status, _, body) = http_get(self.addr, "/metrics", &[]).expect("scrape");
        assert_eq!(status, 200);
        body
    }

    /// Waits until a scrape satisfies `check`; returns that scrape.
    pub fn scrape_until(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&Scrape) -> bool,
    ) -> Scrape {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.scrape();
            if check(&s) || Instant::now() > deadline {
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the exporter logged (kills it first and waits for its stderr to close).
    pub fn stop_and_logs(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The drain thread ends at EOF; give it a moment to take the last lines.
        std::thread::sleep(Duration::from_millis(50));
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Sends SIGTERM and waits (at most `timeout`) for the exit: (exit code, time it took).
    pub fn terminate(&mut self, timeout: Duration) -> (Option<i32>, Duration) {
        let started = Instant::now();
        let pid = self.child.id().to_string();
        assert!(
            runs("kill", &["-s", "TERM", &pid]),
            "kill -s TERM {pid} failed"
        );
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // The drain thread ends at EOF; give it a moment to take the last lines.
                std::thread::sleep(Duration::from_millis(50));
                return (status.code(), started.elapsed());
            }
            assert!(
                started.elapsed() < timeout,
                "no exit {timeout:?} after SIGTERM:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Whether the process still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// What the exporter logged so far, while it runs.
    pub fn logs(&self) -> String {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
