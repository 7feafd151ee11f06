//! Hand-written HTTP/1.1 over `std::net`: one request per connection
//! (`Connection: close`), routing of the ECS paths and the control plane, and
//! the faulty responses.

use crate::counters::{self, Clock};
use crate::faults::{Endpoint, Faults, Kind};
use crate::profiles::Task;
use serde_json::{Value, json};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

const JSON: &str = "application/json";
/// Padding of a `too_large` body: over the 16 MiB a client should accept.
const PAD_BYTES: usize = 17 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

/// Shared state of the simulator.
pub struct App {
    pub task: Mutex<Task>,
    pub faults: Mutex<Faults>,
    pub clock: Clock,
}

impl App {
    pub fn task(&self) -> MutexGuard<'_, Task> {
        self.task.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Apply a fault: state changes go to the task, the others to the fault list.
    pub fn set_fault(&self, kind: Kind, endpoint: Endpoint, count: u64) {
        let now = self.clock.sample();
        match kind {
            Kind::ContainerChange => self.task().change(now),
            Kind::CounterReset => self.task().reset_counters(now),
            _ => {
                self.faults().add(kind, endpoint, count);
                log::info!(
                    "fault set: {} on {} count={count}",
                    kind.name(),
                    endpoint.name()
                );
            }
        }
    }

    fn state(&self) -> Value {
        let mut state = self.faults().state();
        let task = self.task();
        state["container_changes"] = task.changes.into();
        state["counter_resets"] = task.resets.into();
        state["containers"] = task
            .containers
            .iter()
            .map(|c| c.meta["Name"].clone())
            .collect();
        state
    }
}

/// Serve one connection.
pub fn handle(app: &App, mut stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let Some(line) = read_request_line(&mut stream)? else {
        return Ok(());
    };
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    log::debug!("{method} {target}");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let s = &mut stream;
    match (method, path) {
        ("GET", "/healthz") => respond(s, 200, "text/plain", b"ok"),
        ("GET", "/task") => serve_data(app, s, Endpoint::Task),
        ("GET", "/task/stats") => serve_data(app, s, Endpoint::TaskStats),
        ("GET", "/") | ("GET", "/stats") => {
            let t = app.clock.sample();
            let task = app.task();
            let body = match task.containers.iter().find(|c| c.running) {
                None => Value::Null,
                Some(c) if path == "/" => c.meta.clone(),
                Some(c) => counters::container_stats(&task, c, &app.clock, t),
            };
            drop(task);
            respond(s, 200, JSON, body.to_string().as_bytes())
        }
        ("GET", "/control/fault") => match parse_fault(query) {
            Ok((kind, endpoint, count)) => {
                app.set_fault(kind, endpoint, count);
                respond(s, 200, JSON, app.state().to_string().as_bytes())
            }
            Err(e) => respond(s, 400, JSON, json!(e).to_string().as_bytes()),
        },
        ("GET", "/control/clear") => {
            app.faults().clear();
            log::info!("faults cleared");
            respond(s, 200, JSON, app.state().to_string().as_bytes())
        }
        ("GET", "/control/state") => respond(s, 200, JSON, app.state().to_string().as_bytes()),
        ("GET", _) => respond(s, 404, JSON, br#""not found""#),
        _ => respond(s, 405, JSON, br#""method not allowed""#),
    }
}

/// `/task` or `/task/stats`, with the fault this request gets, if any.
fn serve_data(app: &App, s: &mut TcpStream, endpoint: Endpoint) -> io::Result<()> {
    let mut fault = app.faults().on_request(endpoint);
    if let Some(kind) = fault {
        log::info!("fault {} on {}", kind.name(), endpoint.name());
    }
    if let Some(Kind::Hang(secs)) = fault {
        std::thread::sleep(Duration::from_secs(secs));
        fault = None;
    }
    let body = match fault {
        Some(Kind::StatsNull) => "null".to_string(),
        Some(Kind::StatsEmpty) => "{}".to_string(),
        _ => {
            let task = app.task();
            match endpoint {
                Endpoint::Task => task.task_json(),
                _ => counters::task_stats(&task, &app.clock, app.clock.sample()),
            }
            .to_string()
        }
    };
    let half = &body.as_bytes()[..body.len() / 2];
    match fault {
        Some(Kind::Status(code)) => {
            let msg = match endpoint {
                Endpoint::Task => "Unable to get task metadata",
                _ => "Unable to get task stats",
            };
            respond(s, code, JSON, json!(msg).to_string().as_bytes())
        }
        Some(Kind::CloseMidBody) => {
            s.write_all(head(200, JSON, body.len()).as_bytes())?;
            s.write_all(half)?;
            s.flush()?;
            s.shutdown(Shutdown::Both)
        }
        Some(Kind::TruncatedJson) => respond(s, 200, JSON, half),
        Some(Kind::InvalidJson) => respond(s, 200, JSON, br#"{"this is": not json"#),
        Some(Kind::TooLarge) => too_large(s, &body),
        _ => respond(s, 200, JSON, body.as_bytes()),
    }
}

/// A valid JSON object over 16 MiB: `body` plus a long string field, streamed.
fn too_large(s: &mut TcpStream, body: &str) -> io::Result<()> {
    let open = match body.strip_suffix('}') {
        Some(open) if open.ends_with('{') => open.to_string(),
        Some(open) => format!("{open},"),
        None => "{".to_string(),
    };
    let prefix = format!("{open}\"zz_padding\":\"");
    let suffix = "\"}";
    s.write_all(head(200, JSON, prefix.len() + PAD_BYTES + suffix.len()).as_bytes())?;
    s.write_all(prefix.as_bytes())?;
    let chunk = [b'x'; CHUNK];
    for _ in 0..PAD_BYTES / CHUNK {
        s.write_all(&chunk)?;
    }
    s.write_all(suffix.as_bytes())?;
    s.flush()
}

/// Parse `kind=K&endpoint=E&count=N&secs=S`.
fn parse_fault(query: &str) -> Result<(Kind, Endpoint, u64), String> {
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    };
    let number = |name: &str| -> Result<Option<u64>, String> {
        param(name)
            .map(|v| v.parse().map_err(|_| format!("bad {name}: {v:?}")))
            .transpose()
    };
    let kind = Kind::parse(param("kind").ok_or("missing kind")?, number("secs")?)?;
    let endpoint = Endpoint::parse(param("endpoint").unwrap_or("both"))?;
    Ok((kind, endpoint, number("count")?.unwrap_or(0)))
}

/// Read the request head; return its first line (`None` if the peer sent nothing).
fn read_request_line(stream: &mut TcpStream) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    let complete =
        |b: &[u8]| b.windows(4).any(|w| w == b"\r\n\r\n") || b.windows(2).any(|w| w == b"\n\n");
    while !complete(&buf) {
        if buf.len() > 16 * 1024 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too large",
            ));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    Ok(head
        .lines()
        .next()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string))
}

fn head(code: u16, content_type: &str, len: usize) -> String {
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        _ => "Internal Server Error",
    };
    format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    )
}

fn respond(s: &mut TcpStream, code: u16, content_type: &str, body: &[u8]) -> io::Result<()> {
    s.write_all(head(code, content_type, body.len()).as_bytes())?;
    s.write_all(body)?;
    s.flush()?;
    s.shutdown(Shutdown::Write)
}
