//! Plain Docker hosts (`--docker`): the Docker Engine API as a second source of the same
//! docker stats JSON, turned into the [`Task`] and [`Stats`] that `compute.rs` already knows.
//!
//! One poll is: `GET /containers/json` (the running containers, paused ones included), then for
//! each container `GET /containers/{id}/stats?stream=false&one-shot=false` (the daemon waits for a
//! second reading, about 1 s, so `precpu_stats` is real and the first poll already has a CPU
//! window) and, when not cached, `GET /containers/{id}/json` for its limits. Inspect results are
//! cached by container id, dropped when the container leaves the list, and refreshed every
//! [`REINSPECT_EVERY`] polls (so a `docker update` or a restart shows up eventually). The
//! per-container calls run on up to [`WORKERS`] threads at once, each with the whole `--timeout`.
//!
//! The conversion (pure, tested on payloads of a real engine, API 1.41):
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
//! - Churn is not an error: a container that is gone between the list and its inspect or stats
//!   call (HTTP 404 or 409) is left out of this poll.
//! - Errors are counted under the ECS endpoint labels: the list and inspect calls as `task`, the
//!   stats calls as `task_stats`, with the reasons of `metadata.rs`.
//!
//! HTTP: a minimal hand-written HTTP/1.1 client (`Connection: close`; `Content-Length`, chunked or
//! read-to-close bodies), the same for `unix://` (a `UnixStream`) and `tcp://` (a `TcpStream`):
//! one code path, no new crate. ureq 3 could reach a Unix socket only through a custom
//! `Connector`, which lives in ureq's `unversioned` module (free to change in a minor release,
//! and `ureq = "3.5.2"` accepts minor releases), and would be more code than this. Each request
//! has one deadline, `--timeout`, from connect to the last byte, and bodies are capped at
//! [`BODY_LIMIT`] (16 MiB) like the ECS client's. One gap: std has no connect timeout for Unix
//! sockets, so a connect waits while the daemon's accept backlog is full (it fails at once when
//! nothing listens).
//!
//! Left out: TLS (`DOCKER_TLS_VERIFY`, `https`), `ssh://` and `npipe://` hosts, stopped containers
//! (not listed), Windows containers, Podman/containerd without the Docker API, and reading stats
//! as a stream.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv6Addr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::metadata::{BODY_LIMIT, FetchError};
use crate::payload::{self, Container, ParseError, Sample, Stats, Task};
use crate::snapshot::{Endpoint, Reason};

/// `DOCKER_HOST` when unset.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// The `launch_type` label of `ecs_task_info` in this mode.
pub const LAUNCH_TYPE: &str = "DOCKER";

/// Polls after which a cached inspect result is fetched again.
pub const REINSPECT_EVERY: u32 = 10;

/// Containers whose inspect and stats calls run at the same time.
pub const WORKERS: usize = 16;

/// The port of `tcp://host` without one (Docker's plain-HTTP port).
const DEFAULT_TCP_PORT: u16 = 2375;

/// The largest response head read.
const HEAD_LIMIT: u64 = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// Where the engine listens.

/// A Docker Engine API address (`DOCKER_HOST`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// `unix:///path/to/docker.sock`
    Unix(PathBuf),
    /// `tcp://host:port`, kept as `host:port` (`[v6]:port` for IPv6).
    Tcp(String),
}

impl Host {
    /// Reads `unix:///path` or `tcp://host[:port]` (port 2375 when absent).
    pub fn parse(s: &str) -> Result<Host, String> {
        let s = s.trim();
        let expected = "expected unix:///path/to/docker.sock or tcp://host:port \
                        (plain HTTP: TLS, ssh:// and npipe:// are not supported)";
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("unix://") {
            let path = &s["unix://".len()..];
            if path.len() < 2 || !path.starts_with('/') || path.contains('\0') {
                return Err(format!("{expected}; the socket path must be absolute"));
            }
            return Ok(Host::Unix(PathBuf::from(path)));
        }
        let Some(rest) = lower.strip_prefix("tcp://") else {
            return Err(expected.to_owned());
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        let bad = || format!("{expected}; got a bad host or port");
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (ip, after) = v6.split_once(']').ok_or_else(bad)?;
            ip.parse::<Ipv6Addr>().map_err(|_| bad())?;
            let port = match after {
                "" => DEFAULT_TCP_PORT,
                p => parse_port(p.strip_prefix(':').ok_or_else(bad)?).ok_or_else(bad)?,
            };
            (format!("[{ip}]"), port)
        } else {
            let (host, port) = match authority.split_once(':') {
                Some((h, p)) => (h, parse_port(p).ok_or_else(bad)?),
                None => (authority, DEFAULT_TCP_PORT),
            };
            let host_ok = !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
            if !host_ok {
                return Err(bad());
            }
            (host.to_owned(), port)
        };
        Ok(Host::Tcp(format!("{host}:{port}")))
    }
}

fn parse_port(p: &str) -> Option<u16> {
    p.parse::<u16>().ok().filter(|&p| p > 0)
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Unix(path) => write!(f, "unix://{}", path.display()),
            Host::Tcp(authority) => write!(f, "tcp://{authority}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The pure conversion.

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
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ParseError(format!("invalid JSON: {e}")))?;
    let Value::Array(entries) = value else {
        return Err(ParseError("expected a JSON array of containers".to_owned()));
    };
    Ok(entries.iter().filter_map(listed).collect())
}

fn listed(entry: &Value) -> Option<Listed> {
    let c = entry.as_object()?;
    let id = c.get("Id")?.as_str()?;
    // Ids go into request paths: hex in practice, never anything to escape.
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let names: Vec<&str> = match c.get("Names") {
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    // Legacy links add names like `/app/db`; the container's own name has no inner `/`.
    let name = names
        .iter()
        .map(|n| n.strip_prefix('/').unwrap_or(n))
        .find(|n| !n.contains('/'))
        .or_else(|| names.first().map(|n| n.trim_start_matches('/')))
        .unwrap_or(id);
    let text = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    Some(Listed {
        id: id.to_owned(),
        name: name.to_owned(),
        image: text("Image"),
        image_id: text("ImageID"),
        state: text("State"),
        health: c.get("Status").and_then(Value::as_str).and_then(health),
        network_mode: c
            .get("HostConfig")
            .and_then(|h| h.get("NetworkMode"))
            .and_then(Value::as_str)
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
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ParseError(format!("invalid JSON: {e}")))?;
    let Value::Object(c) = &value else {
        return Err(ParseError("expected a JSON object".to_owned()));
    };
    let (cpu_units, memory_mib) = limits(c.get("HostConfig"));
    Ok(Inspect {
        cpu_units,
        memory_mib,
        restart_count: c.get("RestartCount").and_then(Value::as_u64),
        started_at: c
            .get("State")
            .and_then(|s| s.get("StartedAt"))
            .and_then(Value::as_str)
            .and_then(payload::timestamp)
            .map(|ns| ns as f64 / 1e9),
    })
}

/// `HostConfig` limits as (CPU units, MiB); each `None` when not set.
pub fn limits(host_config: Option<&Value>) -> (Option<f64>, Option<f64>) {
    let num = |k: &str| {
        host_config
            .and_then(|h| h.get(k))
            .and_then(Value::as_f64)
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
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ParseError(format!("invalid JSON: {e}")))?;
    Ok(payload::sample(&value))
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

// ---------------------------------------------------------------------------------------------
// The source: list, inspect (cached), stats.

struct Cached {
    inspect: Inspect,
    /// Polls since it was fetched.
    age: u32,
}

/// What the per-container calls found: a fresh inspect result (when one was fetched) and the
/// stats reading, or `None` when the container went away (HTTP 404 or 409).
type Outcome = Option<(Option<Inspect>, Option<Sample>)>;

type Failure = (Endpoint, FetchError);

/// The Docker source of the poller: a client and the inspect cache.
pub struct Docker {
    client: Client,
    cache: HashMap<String, Cached>,
}

impl Docker {
    pub fn new(host: Host, timeout: Duration) -> Docker {
        if timeout < Duration::from_secs(2) {
            log::warn!(
                "--timeout {timeout:?} is short for Docker: a stats call waits about 1 s for its \
                 second reading"
            );
        }
        Docker {
            client: Client::new(host, timeout),
            cache: HashMap::new(),
        }
    }

    pub fn host(&self) -> &Host {
        &self.client.host
    }

    /// One poll: the running containers, their limits and one stats reading each.
    pub fn fetch(&mut self) -> Result<(Task, Stats), Failure> {
        let list_path = "/containers/json";
        let body = self
            .client
            .get_ok(list_path)
            .map_err(|e| (Endpoint::Task, e))?;
        let listed = parse_list(&body)
            .map_err(|e| (Endpoint::Task, self.client.parse_error(list_path, e)))?;
        self.cache
            .retain(|id, _| listed.iter().any(|c| c.id == *id));

        let cache = &self.cache;
        let client = &self.client;
        let outcomes = parallel(&listed, WORKERS, |c| -> Result<Outcome, Failure> {
            let needs_inspect = cache.get(&c.id).is_none_or(|e| e.age >= REINSPECT_EVERY);
            let inspect = if needs_inspect {
                match client.get_container(&format!("/containers/{}/json", c.id), Endpoint::Task)? {
                    Some(body) => Some(parse_inspect(&body).map_err(|e| {
                        let path = format!("/containers/{}/json", c.id);
                        (Endpoint::Task, client.parse_error(&path, e))
                    })?),
                    None => return Ok(None),
                }
            } else {
                None
            };
            let path = format!("/containers/{}/stats?stream=false&one-shot=false", c.id);
            let Some(body) = client.get_container(&path, Endpoint::TaskStats)? else {
                return Ok(None);
            };
            let sample = parse_stats(&body)
                .map_err(|e| (Endpoint::TaskStats, client.parse_error(&path, e)))?;
            Ok(Some((inspect, sample)))
        });

        let mut present = Vec::with_capacity(listed.len());
        for (c, outcome) in listed.into_iter().zip(outcomes) {
            let outcome = outcome.unwrap_or_else(|| {
                Err((
                    Endpoint::TaskStats,
                    FetchError {
                        reason: Reason::Io,
                        detail: format!("container {}: its worker thread failed", c.name),
                    },
                ))
            })?;
            match outcome {
                None => {
                    self.cache.remove(&c.id);
                }
                Some((inspect, sample)) => present.push((c, inspect, sample)),
            }
        }
        let mut entries = Vec::with_capacity(present.len());
        for (c, fresh, sample) in present {
            let inspect = match fresh {
                Some(inspect) => {
                    self.cache.insert(
                        c.id.clone(),
                        Cached {
                            inspect: inspect.clone(),
                            age: 0,
                        },
                    );
                    inspect
                }
                None => match self.cache.get_mut(&c.id) {
                    Some(cached) => {
                        cached.age = cached.age.saturating_add(1);
                        cached.inspect.clone()
                    }
                    None => Inspect::default(),
                },
            };
            entries.push((c, inspect, sample));
        }
        Ok(assemble(entries))
    }
}

/// Runs `f` on every item with up to `workers` threads (this one included); results in item
/// order, `None` where a worker died. A thread that cannot be spawned just means fewer workers.
fn parallel<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<Option<R>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    let work = || {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            let r = f(item);
            let mut results = results.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(slot) = results.get_mut(i) {
                *slot = Some(r);
            }
        }
    };
    thread::scope(|s| {
        for _ in 1..workers.min(items.len()) {
            if thread::Builder::new()
                .name("docker".into())
                .spawn_scoped(s, work)
                .is_err()
            {
                break;
            }
        }
        work();
    });
    results.into_inner().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------------------------
// The HTTP client.

/// A minimal HTTP/1.1 client of one Docker Engine API address.
pub struct Client {
    host: Host,
    timeout: Duration,
}

/// A response: status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Client {
    pub fn new(host: Host, timeout: Duration) -> Client {
        Client { host, timeout }
    }

    /// GETs `path` (`/containers/json`); any status is a response.
    pub fn get(&self, path: &str) -> Result<Response, FetchError> {
        let deadline = Instant::now() + self.timeout;
        let fail = |reason: Reason, what: &dyn fmt::Display| FetchError {
            reason,
            detail: format!("GET {}{path}: {what}", self.host),
        };
        let (mut conn, authority): (Box<dyn Conn>, &str) = match &self.host {
            Host::Unix(socket) => match UnixStream::connect(socket) {
                Ok(s) => (Box::new(s), "docker"),
                Err(e) => {
                    let reason = match e.kind() {
                        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Reason::Timeout,
                        _ => Reason::Connect,
                    };
                    return Err(fail(reason, &e));
                }
            },
            Host::Tcp(authority) => match connect_tcp(authority, deadline) {
                Ok(s) => (Box::new(s), authority.as_str()),
                Err(e) => {
                    let reason = match e.kind() {
                        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Reason::Timeout,
                        _ => Reason::Connect,
                    };
                    return Err(fail(reason, &e));
                }
            },
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: ecs-container-exporter/{}\r\n\
             Accept: application/json\r\nConnection: close\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        );
        let sent = remaining(deadline)
            .and_then(|left| conn.set_write_timeout(Some(left)))
            .and_then(|()| conn.write_all(request.as_bytes()))
            .and_then(|()| conn.flush());
        if let Err(e) = sent {
            return Err(fail(io_reason(&e), &e));
        }
        let mut reader = BufReader::with_capacity(64 * 1024, Timed { conn, deadline });
        match read_response(&mut reader, BODY_LIMIT) {
            Ok(response) => Ok(response),
            Err(HttpError::Io(e)) => Err(fail(io_reason(&e), &e)),
            Err(HttpError::Protocol(what)) => {
                Err(fail(Reason::Io, &format!("bad HTTP response: {what}")))
            }
            Err(HttpError::TooLarge) => Err(fail(
                Reason::TooLarge,
                &format!("body over {} MiB", BODY_LIMIT >> 20),
            )),
        }
    }

    /// GETs `path` and returns the body of a 200; another status is an error.
    pub fn get_ok(&self, path: &str) -> Result<Vec<u8>, FetchError> {
        let response = self.get(path)?;
        if response.status == 200 {
            Ok(response.body)
        } else {
            Err(self.status_error(path, &response))
        }
    }

    /// GETs a per-container path: `None` when the container is gone (404, 409).
    fn get_container(&self, path: &str, endpoint: Endpoint) -> Result<Option<Vec<u8>>, Failure> {
        let response = self.get(path).map_err(|e| (endpoint, e))?;
        match response.status {
            200 => Ok(Some(response.body)),
            404 | 409 => {
                log::debug!(
                    "GET {}{path}: HTTP {}, the container is gone",
                    self.host,
                    response.status
                );
                Ok(None)
            }
            _ => Err((endpoint, self.status_error(path, &response))),
        }
    }

    fn status_error(&self, path: &str, response: &Response) -> FetchError {
        // The engine answers errors with {"message": "..."}; show a little of it.
        let body = &response.body[..response.body.len().min(160)];
        FetchError {
            reason: Reason::Status,
            detail: format!(
                "GET {}{path}: HTTP {} {}",
                self.host,
                response.status,
                String::from_utf8_lossy(body).trim()
            ),
        }
    }

    fn parse_error(&self, path: &str, e: ParseError) -> FetchError {
        FetchError {
            reason: Reason::Parse,
            detail: format!("GET {}{path}: {e}", self.host),
        }
    }
}

fn io_reason(e: &io::Error) -> Reason {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Reason::Timeout,
        _ => Reason::Io,
    }
}

/// The time left before `deadline`, or a `TimedOut` error.
fn remaining(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"))
    } else {
        Ok(left)
    }
}

fn connect_tcp(authority: &str, deadline: Instant) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for addr in authority.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, remaining(deadline)?) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A connected stream with settable timeouts.
trait Conn: Read + Write + Send {
    fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()>;
    fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()>;
}

impl Conn for UnixStream {
    fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        UnixStream::set_read_timeout(self, d)
    }
    fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        UnixStream::set_write_timeout(self, d)
    }
}

impl Conn for TcpStream {
    fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, d)
    }
    fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, d)
    }
}

/// Reads that all end by one deadline.
struct Timed {
    conn: Box<dyn Conn>,
    deadline: Instant,
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = remaining(self.deadline)?;
        self.conn.set_read_timeout(Some(left))?;
        self.conn.read(buf)
    }
}

#[derive(Debug)]
enum HttpError {
    Io(io::Error),
    Protocol(String),
    TooLarge,
}

impl From<io::Error> for HttpError {
    fn from(e: io::Error) -> HttpError {
        HttpError::Io(e)
    }
}

/// Reads one HTTP/1.x response with a body of at most `limit` bytes: `Content-Length`, chunked
/// (extensions and trailers skipped), or up to the end of the stream.
fn read_response(r: &mut impl BufRead, limit: u64) -> Result<Response, HttpError> {
    let mut head_left = HEAD_LIMIT;
    let status_line = read_line(r, &mut head_left)?;
    let mut parts = status_line.splitn(3, ' ');
    let (version, code) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !version.starts_with("HTTP/1.") || code.len() != 3 {
        return Err(HttpError::Protocol(format!(
            "status line {:?}",
            truncate(&status_line)
        )));
    }
    let status: u16 = code
        .parse()
        .map_err(|_| HttpError::Protocol(format!("status {code:?}")))?;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    loop {
        let line = read_line(r, &mut head_left)?;
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(HttpError::Protocol(format!("header {:?}", truncate(&line))));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n = value
                .parse()
                .map_err(|_| HttpError::Protocol(format!("Content-Length {value:?}")))?;
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"));
        }
    }
    let body = if matches!(status, 100..=199 | 204 | 304) {
        Vec::new()
    } else if chunked {
        read_chunked(r, limit)?
    } else if let Some(n) = length {
        if n > limit {
            return Err(HttpError::TooLarge);
        }
        let mut body = Vec::with_capacity(n.min(1 << 20) as usize);
        r.take(n).read_to_end(&mut body)?;
        if (body.len() as u64) < n {
            return Err(HttpError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("body ended after {} of {n} bytes", body.len()),
            )));
        }
        body
    } else {
        let mut body = Vec::new();
        r.take(limit + 1).read_to_end(&mut body)?;
        if body.len() as u64 > limit {
            return Err(HttpError::TooLarge);
        }
        body
    };
    Ok(Response { status, body })
}

fn read_chunked(r: &mut impl BufRead, limit: u64) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    loop {
        let mut line_left = 1024;
        let line = read_line(r, &mut line_left)?;
        let size = line.split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(size, 16)
            .map_err(|_| HttpError::Protocol(format!("chunk size {:?}", truncate(&line))))?;
        if size == 0 {
            // Trailers, up to the empty line.
            let mut trailers_left = HEAD_LIMIT;
            while !read_line(r, &mut trailers_left)?.is_empty() {}
            return Ok(body);
        }
        if body.len() as u64 + size > limit {
            return Err(HttpError::TooLarge);
        }
        let before = body.len();
        r.take(size).read_to_end(&mut body)?;
        if ((body.len() - before) as u64) < size {
            return Err(HttpError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "chunked body ended inside a chunk",
            )));
        }
        let mut crlf_left = 2;
        if !read_line(r, &mut crlf_left)?.is_empty() {
            return Err(HttpError::Protocol("no CRLF after a chunk".to_owned()));
        }
    }
}

/// One line without its CRLF (or LF), at most `*left` bytes counting the ending.
fn read_line(r: &mut impl BufRead, left: &mut u64) -> Result<String, HttpError> {
    let mut line = Vec::new();
    r.take(*left).read_until(b'\n', &mut line)?;
    *left -= line.len() as u64;
    if line.last() != Some(&b'\n') {
        return Err(if *left == 0 {
            HttpError::Protocol("header or line too long".to_owned())
        } else {
            HttpError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside the response head",
            ))
        });
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| HttpError::Protocol("head is not UTF-8".to_owned()))
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

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
    fn hosts_parse() {
        assert_eq!(
            Host::parse(DEFAULT_HOST),
            Ok(Host::Unix("/var/run/docker.sock".into()))
        );
        assert_eq!(
            Host::parse(" unix:///run/user/1000/docker.sock "),
            Ok(Host::Unix("/run/user/1000/docker.sock".into()))
        );
        assert_eq!(
            Host::parse("tcp://127.0.0.1:2375"),
            Ok(Host::Tcp("127.0.0.1:2375".into()))
        );
        assert_eq!(
            Host::parse("TCP://Docker-Host/"),
            Ok(Host::Tcp("docker-host:2375".into()))
        );
        assert_eq!(
            Host::parse("tcp://[::1]:2376"),
            Ok(Host::Tcp("[::1]:2376".into()))
        );
        for bad in [
            "ftp://x",
            "https://h:2376",
            "ssh://me@h",
            "npipe:////./pipe/docker_engine",
            "unix://",
            "unix://relative.sock",
            "tcp://",
            "tcp://h:0",
            "tcp://h:x",
            "tcp://h:2375/v1.41",
            "tcp://[::1",
            "/var/run/docker.sock",
        ] {
            let err = Host::parse(bad).expect_err(bad);
            assert!(err.contains("unix://"), "{bad}: {err}");
        }
        assert_eq!(
            Host::parse("tcp://[::1]:2375").map(|h| h.to_string()),
            Ok("tcp://[::1]:2375".to_owned())
        );
        assert_eq!(
            Host::parse(DEFAULT_HOST).map(|h| h.to_string()),
            Ok(DEFAULT_HOST.to_owned())
        );
    }

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

        let hc = |s: &str| limits(Some(&serde_json::from_str::<Value>(s).unwrap()));
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
        use crate::compute::{self, Filter, History, TASK_ROW};
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

    #[test]
    fn responses_are_read_by_length_chunks_or_close() {
        let read = |raw: &[u8], limit: u64| read_response(&mut io::BufReader::new(raw), limit);
        let r = read(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]extra",
            100,
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"[]"[..]));
        let r = read(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\n[1,\r\nA\r\n2,3,4,5,6]\r\n0\r\nX-Trailer: 1\r\n\r\n",
            100,
        )
        .unwrap();
        assert_eq!(r.body, b"[1,2,3,4,5,6]");
        let r = read(
            b"HTTP/1.0 404 Not Found\nServer: x\n\n{\"message\":\"no\"}",
            100,
        )
        .unwrap();
        assert_eq!(
            (r.status, r.body.as_slice()),
            (404, &b"{\"message\":\"no\"}"[..])
        );
        let r = read(b"HTTP/1.1 204 No Content\r\n\r\n", 100).unwrap();
        assert!(r.body.is_empty());
    }

    #[test]
    fn oversized_truncated_and_garbled_responses_fail() {
        let read = |raw: &[u8], limit: u64| read_response(&mut io::BufReader::new(raw), limit);
        let too_large = |r: Result<Response, HttpError>| matches!(r, Err(HttpError::TooLarge));
        assert!(too_large(read(
            b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n",
            10
        )));
        assert!(too_large(read(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n123456\r\n6\r\n123456\r\n0\r\n\r\n",
            10
        )));
        assert!(too_large(read(b"HTTP/1.1 200 OK\r\n\r\n12345678901", 10)));
        assert!(read(b"HTTP/1.1 200 OK\r\n\r\n1234567890", 10).is_ok());
        let eof = |r: Result<Response, HttpError>| matches!(r, Err(HttpError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof);
        assert!(eof(read(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n123",
            10
        )));
        assert!(eof(read(b"HTTP/1.1 200 OK\r\nContent-Le", 10)));
        assert!(eof(read(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12",
            10
        )));
        let protocol = |r: Result<Response, HttpError>| matches!(r, Err(HttpError::Protocol(_)));
        assert!(protocol(read(b"SSH-2.0-OpenSSH\r\n\r\n", 10)));
        assert!(protocol(read(b"\x15\x03\x01\x00\x02\x02\n", 10)));
        assert!(protocol(read(b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", 10)));
        assert!(protocol(read(
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            10
        )));
        assert!(protocol(read(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            10
        )));
        let long = [b"HTTP/1.1 200 OK\r\nX: ".as_slice(), &[b'a'; 70_000]].concat();
        assert!(protocol(read(&long, 10)));
    }

    /// A one-shot server on a fresh Unix socket: answers one connection with `answer` (after
    /// reading the request head), or holds it open without answering when `answer` is `None`.
    fn serve_once(answer: Option<&'static [u8]>) -> (PathBuf, thread::JoinHandle<String>) {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "ece-docker-test-{}-{}.sock",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let cleanup = path.clone();
        let handle = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.ends_with(b"\r\n\r\n") {
                let n = stream.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            match answer {
                Some(bytes) => stream.write_all(bytes).unwrap(),
                None => thread::sleep(Duration::from_millis(800)),
            }
            let _ = std::fs::remove_file(&cleanup);
            String::from_utf8_lossy(&head).into_owned()
        });
        (path, handle)
    }

    #[test]
    fn the_client_speaks_http_over_a_unix_socket() {
        let (path, server) = serve_once(Some(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n[]\r\n0\r\n\r\n",
        ));
        let client = Client::new(Host::Unix(path), Duration::from_secs(5));
        assert_eq!(client.get_ok("/containers/json"), Ok(b"[]".to_vec()));
        let head = server.join().unwrap();
        assert!(
            head.starts_with("GET /containers/json HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
        assert!(head.contains("\r\nHost: docker\r\n"), "{head}");
    }

    #[test]
    fn client_failures_have_their_reasons() {
        let missing = std::env::temp_dir().join(format!("ece-none-{}.sock", std::process::id()));
        let client = Client::new(Host::Unix(missing), Duration::from_secs(1));
        assert_eq!(client.get("/x").unwrap_err().reason, Reason::Connect);

        let (path, server) = serve_once(None);
        let started = Instant::now();
        let client = Client::new(Host::Unix(path), Duration::from_millis(300));
        let err = client.get("/x").unwrap_err();
        assert_eq!(err.reason, Reason::Timeout, "{err}");
        assert!(started.elapsed() < Duration::from_millis(700));
        server.join().unwrap();

        let (path, server) = serve_once(Some(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 17\r\n\r\n{\"message\":\"no\"}\n"));
        let client = Client::new(Host::Unix(path), Duration::from_secs(5));
        let err = client.get_ok("/containers/json").unwrap_err();
        assert_eq!(err.reason, Reason::Status);
        assert!(
            err.detail.contains("HTTP 500 {\"message\":\"no\"}"),
            "{err}"
        );
        server.join().unwrap();

        let (path, server) =
            serve_once(Some(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"));
        let client = Client::new(Host::Unix(path), Duration::from_secs(5));
        assert_eq!(
            client.get_container("/containers/x/stats", Endpoint::TaskStats),
            Ok(None)
        );
        server.join().unwrap();

        let (path, server) =
            serve_once(Some(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n"));
        let client = Client::new(Host::Unix(path), Duration::from_secs(5));
        assert_eq!(client.get("/x").unwrap_err().reason, Reason::TooLarge);
        server.join().unwrap();

        // Nothing listens on port 1 of loopback.
        let client = Client::new(Host::Tcp("127.0.0.1:1".into()), Duration::from_secs(1));
        assert_eq!(client.get("/x").unwrap_err().reason, Reason::Connect);
    }

    #[test]
    fn parallel_keeps_item_order() {
        let items: Vec<u32> = (0..50).collect();
        let out = parallel(&items, 7, |i| i * 2);
        assert_eq!(out, (0..50).map(|i| Some(i * 2)).collect::<Vec<_>>());
        assert!(parallel(&[] as &[u32], 7, |i| *i).is_empty());
    }

    #[test]
    fn the_client_speaks_http_over_tcp_too() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        let server = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.ends_with(b"\r\n\r\n") {
                let n = stream.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            // HTTP/1.0 style: no length, the body ends with the connection.
            stream.write_all(b"HTTP/1.0 200 OK\r\n\r\n[]").unwrap();
            String::from_utf8_lossy(&head).into_owned()
        });
        let client = Client::new(Host::Tcp(authority.clone()), Duration::from_secs(5));
        assert_eq!(client.get_ok("/containers/json"), Ok(b"[]".to_vec()));
        let head = server.join().unwrap();
        assert!(
            head.contains(&format!("\r\nHost: {authority}\r\n")),
            "{head}"
        );
    }

    /// A fake engine on a Unix socket: answers each path from `routes` (404 `{"message"}` when
    /// absent) and records the paths asked, until the test ends.
    struct FakeEngine {
        path: PathBuf,
        routes: std::sync::Arc<Mutex<HashMap<String, (u16, String)>>>,
        asked: std::sync::Arc<Mutex<Vec<String>>>,
    }

    impl FakeEngine {
        fn start() -> FakeEngine {
            let path = std::env::temp_dir().join(format!(
                "ece-fake-engine-{}-{:?}.sock",
                std::process::id(),
                thread::current().id()
            ));
            let _ = std::fs::remove_file(&path);
            let listener = UnixListener::bind(&path).unwrap();
            let routes = std::sync::Arc::new(Mutex::new(HashMap::new()));
            let asked = std::sync::Arc::new(Mutex::new(Vec::new()));
            let (r, a) = (routes.clone(), asked.clone());
            thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(mut stream) = stream else { return };
                    let (r, a) = (r.clone(), a.clone());
                    thread::spawn(move || {
                        let mut reader = BufReader::new(stream.try_clone().unwrap());
                        let mut line = String::new();
                        reader.read_line(&mut line).unwrap();
                        let target = line.split(' ').nth(1).unwrap_or("").to_owned();
                        loop {
                            let mut h = String::new();
                            if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                                break;
                            }
                        }
                        a.lock().unwrap().push(target.clone());
                        let (status, body) = r
                            .lock()
                            .unwrap()
                            .get(&target)
                            .cloned()
                            .unwrap_or((404, r#"{"message":"No such container"}"#.to_owned()));
                        let _ = write!(
                            stream,
                            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    });
                }
            });
            FakeEngine {
                path,
                routes,
                asked,
            }
        }

        fn route(&self, target: &str, status: u16, body: &str) {
            self.routes
                .lock()
                .unwrap()
                .insert(target.to_owned(), (status, body.to_owned()));
        }

        fn asked(&self) -> Vec<String> {
            std::mem::take(&mut *self.asked.lock().unwrap())
        }
    }

    impl Drop for FakeEngine {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    #[test]
    fn polls_follow_churn_and_cache_inspect_results() {
        let engine = FakeEngine::start();
        let entry = |id: &str, name: &str| {
            format!(
                r#"{{"Id": "{id}", "Names": ["/{name}"], "Image": "img", "State": "running", "Status": "Up"}}"#
            )
        };
        let stats = |id: &str| format!("/containers/{id}/stats?stream=false&one-shot=false");
        let inspect = |id: &str| format!("/containers/{id}/json");
        engine.route(
            "/containers/json",
            200,
            &format!("[{}, {}]", entry("aa", "a"), entry("bb", "b")),
        );
        engine.route(&inspect("aa"), 200, INSPECT);
        engine.route(&stats("aa"), 200, STATS);
        // `bb` is gone between the list and its inspect: skipped, not an error.
        let mut docker = Docker::new(Host::Unix(engine.path.clone()), Duration::from_secs(5));

        let (task, stats_map) = docker.fetch().unwrap();
        let names: Vec<&str> = task.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a"]);
        assert_eq!(task.containers[0].cpu_units, Some(512.0));
        assert!(stats_map["aa"].is_some());
        let mut asked = engine.asked();
        asked.sort();
        assert_eq!(
            asked,
            [
                "/containers/aa/json",
                "/containers/aa/stats?stream=false&one-shot=false",
                "/containers/bb/json",
                "/containers/json"
            ]
        );

        // Cached: no inspect for `aa` until REINSPECT_EVERY polls have passed.
        for _ in 0..REINSPECT_EVERY {
            docker.fetch().unwrap();
            assert!(!engine.asked().contains(&inspect("aa")));
        }
        let (task, _) = docker.fetch().unwrap();
        assert_eq!(task.containers.len(), 1);
        assert!(engine.asked().contains(&inspect("aa")));

        // A newcomer is inspected; the stats of a container that stops in between are `None`.
        engine.route(
            "/containers/json",
            200,
            &format!("[{}, {}]", entry("aa", "a"), entry("cc", "c")),
        );
        engine.route(
            &inspect("cc"),
            200,
            r#"{"HostConfig": {"Memory": 1048576}}"#,
        );
        engine.route(&stats("cc"), 200, STOPPED_STATS);
        let (task, stats_map) = docker.fetch().unwrap();
        assert_eq!(task.containers[1].memory_mib, Some(1.0));
        assert_eq!(stats_map["cc"], None);
        let asked = engine.asked();
        assert!(asked.contains(&inspect("cc")) && !asked.contains(&inspect("aa")));

        // `aa` leaves and comes back: its cache entry was dropped, so it is inspected again.
        engine.route("/containers/json", 200, &format!("[{}]", entry("cc", "c")));
        docker.fetch().unwrap();
        engine.route(
            "/containers/json",
            200,
            &format!("[{}, {}]", entry("aa", "a"), entry("cc", "c")),
        );
        engine.asked();
        docker.fetch().unwrap();
        assert!(engine.asked().contains(&inspect("aa")));

        // Failures and the endpoints they are counted under.
        engine.route(&stats("aa"), 500, r#"{"message":"boom"}"#);
        let (endpoint, e) = docker.fetch().unwrap_err();
        assert_eq!((endpoint, e.reason), (Endpoint::TaskStats, Reason::Status));
        engine.route(&stats("aa"), 200, "{not json");
        let (endpoint, e) = docker.fetch().unwrap_err();
        assert_eq!((endpoint, e.reason), (Endpoint::TaskStats, Reason::Parse));
        engine.route("/containers/json", 200, "{}");
        let (endpoint, e) = docker.fetch().unwrap_err();
        assert_eq!((endpoint, e.reason), (Endpoint::Task, Reason::Parse));
        engine.route("/containers/json", 500, r#"{"message":"boom"}"#);
        let (endpoint, e) = docker.fetch().unwrap_err();
        assert_eq!((endpoint, e.reason), (Endpoint::Task, Reason::Status));
        assert!(e.detail.contains("boom"), "{e}");
        engine.route("/containers/json", 200, "[]");
        let (task, stats_map) = docker.fetch().unwrap();
        assert!(task.containers.is_empty() && stats_map.is_empty());
    }
}
