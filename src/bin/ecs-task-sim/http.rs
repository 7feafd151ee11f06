//! Hand-written HTTP/1.1 over `std::net`: one request per connection
//! (`Connection: close`), routing of the ECS paths and the control plane, the
//! faulty responses, and the `--life` schedule applied before each answer.
//! It leaves out what a fault or a life change does to the task
//! (`faults.rs`, `profiles.rs`), the counter arithmetic (`counters.rs`) and
//! which credentials `/v2/credentials/<id>` answers (`credentials.rs`).
//!
//! Control plane (GET; every answer but a 400 is the `/control/state` JSON; a
//! 400 is a JSON string saying what is wrong: an unknown container, the
//! pause container, a bad value, a container already in that state):
//! - `/control/fault?kind=K&endpoint=E&count=N&secs=S`, `/control/clear`;
//! - `/control/restart?container=NAME`, `/control/stop?container=NAME&exit_code=N`
//!   (default 0), `/control/start?container=NAME`,
//!   `/control/health?container=NAME&status=healthy|unhealthy|unknown`: dated
//!   to the current sample time (`counters.rs`);
//! - `/control/state`: the faults, request counts, and per container its
//!   name, `DockerId`, known status, restart count, health and exit code;
//! - `/control/credentials`: the credentials issued and not yet expired.

use crate::counters::{self, Clock};
use crate::credentials::{self, Issuer};
use crate::faults::{Endpoint, Faults, Kind};
use crate::life::{self, Life};
use crate::task::{Health, Task};
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
    /// `--life`: the schedule's targets and how far it has been applied.
    pub life: Option<Mutex<Life>>,
    /// The container-credentials endpoint's issued keys.
    pub credentials: Mutex<Issuer>,
}

/// A life control, as `/control/<name>?...` asks it.
enum Control {
    Restart,
    Stop(i64),
    Start,
    Health(Health),
}

impl App {
    pub fn task(&self) -> MutexGuard<'_, Task> {
        self.task.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn credentials(&self) -> MutexGuard<'_, Issuer> {
        self.credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
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

    /// Apply a life control to container `name`, dated to the current sample.
    fn control(&self, name: &str, control: Control) -> Result<(), String> {
        let r = self.clock.sample();
        self.apply(name, control, r)
    }

    fn apply(&self, name: &str, control: Control, r: f64) -> Result<(), String> {
        let stamp = self.clock.timestamp(r);
        let mut task = self.task();
        match control {
            Control::Restart => task.restart(name, r, &stamp),
            Control::Stop(code) => task.stop(name, code, &stamp),
            Control::Start => task.start(name, r, &stamp),
            Control::Health(h) => task.set_health(name, h, &stamp),
        }
    }

    /// `--life`: apply the events due since the last request, each at its own time.
    pub fn advance_life(&self) {
        let Some(life) = &self.life else {
            return;
        };
        let mut life = life.lock().unwrap_or_else(PoisonError::into_inner);
        let now = self.clock.elapsed();
        for (at, event) in life::events(life.until, now) {
            let (target, control) = match event {
                life::Event::Unhealthy => (&life.health, Control::Health(Health::Unhealthy)),
                life::Event::Healthy => (&life.health, Control::Health(Health::Healthy)),
                life::Event::Restart => (&life.restart, Control::Restart),
            };
            if let Some(name) = target
                && let Err(e) = self.apply(name, control, self.clock.quantize(at))
            {
                log::info!("life at {at} s: {e}");
            }
        }
        life.until = now;
    }

    fn state(&self) -> Value {
        let mut state = self.faults().state();
        let task = self.task();
        state["container_changes"] = task.changes.into();
        state["counter_resets"] = task.resets.into();
        state["containers"] = task
            .containers
            .iter()
            .map(|c| {
                json!({
                    "name": c.name(),
                    "docker_id": c.docker_id(),
                    "known_status": c.known_status(),
                    "restart_count": c.meta["RestartCount"],
                    "health": c.meta["Health"]["status"],
                    "exit_code": c.meta["ExitCode"],
                })
            })
            .collect();
        state
    }
}

/// Serve one connection.
pub fn handle(app: &App, mut stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let Some(head) = read_head(&mut stream)? else {
        return Ok(());
    };
    let mut parts = head.lines().next().unwrap_or_default().split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    log::debug!("{method} {target}");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    app.advance_life();
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
        ("GET", "/control/credentials") => {
            let valid = app.credentials().valid(credentials::now());
            respond(s, 200, JSON, valid.to_string().as_bytes())
        }
        ("GET", p) if p.len() > 16 && p.starts_with("/v2/credentials/") => {
            let authorization = credentials::header(&head, "authorization");
            let (code, body) = app.credentials().answer(authorization, credentials::now());
            respond(s, code, JSON, body.to_string().as_bytes())
        }
        ("GET", "/control/restart" | "/control/stop" | "/control/start" | "/control/health") => {
            let done = parse_control(path, query).and_then(|(name, c)| app.control(&name, c));
            match done {
                Ok(()) => respond(s, 200, JSON, app.state().to_string().as_bytes()),
                Err(e) => respond(s, 400, JSON, json!(e).to_string().as_bytes()),
            }
        }
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
                Endpoint::Task => task.task_json(app.clock.sample()),
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
    let number = |name: &str| -> Result<Option<u64>, String> {
        param(query, name)
            .map(|v| v.parse().map_err(|_| format!("bad {name}: {v:?}")))
            .transpose()
    };
    let kind = Kind::parse(
        &param(query, "kind").ok_or("missing kind")?,
        number("secs")?,
    )?;
    let endpoint = Endpoint::parse(&param(query, "endpoint").unwrap_or_else(|| "both".into()))?;
    Ok((kind, endpoint, number("count")?.unwrap_or(0)))
}

/// Parse the query of `/control/{restart,stop,start,health}`: the container and the control.
fn parse_control(path: &str, query: &str) -> Result<(String, Control), String> {
    let name = param(query, "container")
        .filter(|n| !n.is_empty())
        .ok_or("missing container")?;
    let control = match path {
        "/control/restart" => Control::Restart,
        "/control/start" => Control::Start,
        "/control/stop" => {
            let code = param(query, "exit_code").unwrap_or_else(|| "0".into());
            let code = code
                .parse()
                .map_err(|_| format!("bad exit_code {code:?} (expected an integer)"))?;
            Control::Stop(code)
        }
        _ => {
            let status = param(query, "status").ok_or("missing status")?;
            Control::Health(Health::parse(&status)?)
        }
    };
    Ok((name, control))
}

/// The first value of query parameter `name`, percent-decoded (`+` is a space).
fn param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| decode(v))
}

fn decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Read the request head (`None` if the peer sent nothing).
fn read_head(stream: &mut TcpStream) -> io::Result<Option<String>> {
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
    let head = String::from_utf8_lossy(&buf).into_owned();
    let empty = head.lines().next().is_none_or(|l| l.trim().is_empty());
    Ok((!empty).then_some(head))
}

fn head(code: u16, content_type: &str, len: usize) -> String {
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_queries_parse_and_default_exit_code_0() {
        let name = |r: Result<(String, Control), String>| r.map(|(n, _)| n);
        assert_eq!(
            name(parse_control("/control/restart", "container=web")),
            Ok("web".into())
        );
        match parse_control("/control/stop", "container=web") {
            Ok((_, Control::Stop(0))) => {}
            _ => panic!("stop without exit_code is exit code 0"),
        }
        match parse_control("/control/stop", "exit_code=-1&container=web") {
            Ok((_, Control::Stop(-1))) => {}
            _ => panic!("a negative exit code is an exit code"),
        }
        match parse_control("/control/health", "container=web&status=unhealthy") {
            Ok((_, Control::Health(Health::Unhealthy))) => {}
            _ => panic!("health"),
        }
        assert_eq!(
            name(parse_control(
                "/control/start",
                "container=%7Einternal%7Eecs%7Epause"
            )),
            Ok("~internal~ecs~pause".into())
        );
    }

    #[test]
    fn bad_control_queries_say_what_is_wrong() {
        let err = |path, query| parse_control(path, query).map(|_| ()).expect_err("refused");
        assert_eq!(err("/control/restart", ""), "missing container");
        assert_eq!(err("/control/restart", "container="), "missing container");
        assert!(err("/control/stop", "container=a&exit_code=x").contains("bad exit_code \"x\""));
        assert_eq!(err("/control/health", "container=a"), "missing status");
        assert!(err("/control/health", "container=a&status=sick").contains("bad status \"sick\""));
    }

    fn app(profile: &str, started_ago: u64) -> App {
        let p = crate::profiles::find(profile).expect("profile");
        let task = Task::load(p).expect("loads");
        let (health, restart) = crate::life_targets(&task);
        App {
            task: Mutex::new(task),
            faults: Mutex::new(Faults::default()),
            clock: Clock::started_ago(started_ago, p.interval_secs, 0.0),
            life: Some(Mutex::new(Life {
                health,
                restart,
                until: 0.0,
            })),
            credentials: Mutex::new(Issuer::new(3600, None)),
        }
    }

    fn meta(app: &App, name: &str, key: &str) -> Value {
        let task = app.task();
        let c = task.containers.iter().find(|c| c.name() == name);
        c.map_or(Value::Null, |c| c.meta[key].clone())
    }

    #[test]
    fn life_applies_the_due_events_at_their_own_times() {
        // 130 s after start: unhealthy since 60 s, one restart at 120 s.
        let app = app("fargate", 130);
        app.advance_life();
        let health = meta(&app, "ecs-exporter", "Health");
        assert_eq!(health["status"], "UNHEALTHY");
        assert_eq!(health["statusSince"], app.clock.timestamp(60.0).as_str());
        assert_eq!(meta(&app, "prometheus", "RestartCount"), 1);
        assert_eq!(
            meta(&app, "prometheus", "StartedAt"),
            app.clock.timestamp(120.0).as_str()
        );
        // Applied once: a second request at about the same time changes nothing.
        app.advance_life();
        assert_eq!(meta(&app, "prometheus", "RestartCount"), 1);
    }

    #[test]
    fn life_goes_on_when_its_target_was_stopped() {
        let app = app("ec2-bridge", 300);
        app.apply("prometheus", Control::Stop(0), 1.0)
            .expect("stop");
        app.advance_life(); // the restart at 120 s is refused, and logged
        assert_eq!(meta(&app, "prometheus", "RestartCount"), 0);
        assert_eq!(meta(&app, "ecs-exporter", "Health")["status"], "HEALTHY");
        assert_eq!(
            meta(&app, "ecs-exporter", "Health")["statusSince"],
            app.clock.timestamp(240.0).as_str()
        );
    }

    #[test]
    fn life_targets_are_the_health_checked_container_and_another_app_container() {
        for (profile, health, restart) in [
            ("fargate", "ecs-exporter", "prometheus"),
            ("ec2-bridge", "ecs-exporter", "prometheus"),
            ("managed-instances", "main", "ecs-exporter"),
            ("ec2-awsvpc", "ecs-exporter", "main"),
        ] {
            let p = crate::profiles::find(profile).expect("profile");
            let task = Task::load(p).expect("loads");
            let got = crate::life_targets(&task);
            assert_eq!(
                (got.0.as_deref(), got.1.as_deref()),
                (Some(health), Some(restart)),
                "{profile}"
            );
        }
    }

    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(decode("a%20b+c%2"), "a b c%2");
        assert_eq!(param("x=1&y=%41", "y").as_deref(), Some("A"));
        assert_eq!(param("x=1", "y"), None);
    }
}
