//! Hand-written HTTP/1.1 over `std::net`: a thread per connection, one request each
//! (`Connection: close`), the routes of the ECS paths, the credentials endpoint and the control
//! plane, and the faulty answers. Before each answer `--life` catches up (`app.rs`). It leaves
//! out what a fault or a control does (`app.rs` and below) and what the bodies hold.
//!
//! Paths (GET): `/task`, `/task/stats`, `/v2/credentials/<id>` (`credentials.rs`), and the
//! control plane. Every control answer but a 400 is the `/control/state` JSON; a 400 is a JSON
//! string saying what is wrong: an unknown container, the pause container, a bad value, a
//! container already in that state.
//! - `/control/fault?kind=K&endpoint=E&count=N&secs=S` (`hang`'s time; `ms=M` in milliseconds),
//!   `/control/clear`;
//! - `/control/restart?container=NAME`, `/control/stop?container=NAME&exit_code=N`
//!   (default 0), `/control/start?container=NAME`,
//!   `/control/health?container=NAME&status=healthy|unhealthy|unknown`: dated
//!   to the current sample time (`clock.rs`);
//! - `/control/state`: the faults, request counts, and per container its
//!   name, `DockerId`, known status, restart count, health and exit code;
//! - `/control/credentials`: the credentials issued and not yet expired.

use crate::app::App;
use crate::container::Health;
use crate::faults::{Endpoint, Kind};
use crate::task::Control;
use serde_json::{Value, json};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

const JSON: &str = "application/json";
/// Padding of a `too_large` body: over the 16 MiB a client should accept.
const PAD_BYTES: usize = 17 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

/// Answer every connection of `listener`, each on its own thread.
pub fn serve(listener: &TcpListener, app: &Arc<App>) {
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(stream) => stream,
            Err(e) => {
                log::warn!("accept: {e}");
                continue;
            }
        };
        let app = Arc::clone(app);
        let spawned = std::thread::Builder::new().spawn(move || {
            if let Err(e) = handle(&app, stream) {
                log::debug!("connection: {e}");
            }
        });
        if let Err(e) = spawned {
            log::warn!("spawn: {e}");
        }
    }
}

/// Serve one connection.
fn handle(app: &App, mut stream: TcpStream) -> io::Result<()> {
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
        ("GET", "/task") => serve_data(app, s, Endpoint::Task),
        ("GET", "/task/stats") => serve_data(app, s, Endpoint::TaskStats),
        ("GET", "/control/fault") => match parse_fault(query) {
            Ok((kind, endpoint, count)) => {
                app.set_fault(kind, endpoint, count);
                answer(s, 200, &app.state())
            }
            Err(e) => answer(s, 400, &json!(e)),
        },
        ("GET", "/control/clear") => {
            app.faults().clear();
            log::info!("faults cleared");
            answer(s, 200, &app.state())
        }
        ("GET", "/control/state") => answer(s, 200, &app.state()),
        ("GET", "/control/credentials") => answer(s, 200, &app.valid_credentials()),
        ("GET", p) if p.len() > 16 && p.starts_with("/v2/credentials/") => {
            let (code, body) = app.credentials(header(&head, "authorization"));
            answer(s, code, &body)
        }
        ("GET", "/control/restart" | "/control/stop" | "/control/start" | "/control/health") => {
            match parse_control(path, query).and_then(|(name, c)| app.control(&name, c)) {
                Ok(()) => answer(s, 200, &app.state()),
                Err(e) => answer(s, 400, &json!(e)),
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
    if let Some(Kind::Hang(ms)) = fault {
        std::thread::sleep(Duration::from_millis(ms));
        fault = None;
    }
    let body = match fault {
        Some(Kind::StatsNull) => "null".to_string(),
        Some(Kind::StatsEmpty) => "{}".to_string(),
        _ => app.data(endpoint).to_string(),
    };
    let half = &body.as_bytes()[..body.len() / 2];
    match fault {
        Some(Kind::Status(code)) => {
            let msg = match endpoint {
                Endpoint::Task => "Unable to get task metadata",
                _ => "Unable to get task stats",
            };
            answer(s, code, &json!(msg))
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

/// Parse `kind=K&endpoint=E&count=N&secs=S`; `ms=M` sets `hang`'s time in milliseconds instead
/// of `secs` (a test's hang of a fraction of a second).
fn parse_fault(query: &str) -> Result<(Kind, Endpoint, u64), String> {
    let number = |name: &str| -> Result<Option<u64>, String> {
        param(query, name)
            .map(|v| v.parse().map_err(|_| format!("bad {name}: {v:?}")))
            .transpose()
    };
    let hang_ms = match (number("ms")?, number("secs")?) {
        (Some(ms), _) => Some(ms),
        (None, secs) => secs.map(|s| s.saturating_mul(1000)),
    };
    let kind = Kind::parse(&param(query, "kind").ok_or("missing kind")?, hang_ms)?;
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

/// The first value of query parameter `name`, decoded.
fn param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| decode(v))
}

/// Undoes a query's encoding: `+` is a space, `%XX` a byte (a `%` without two hex digits stays).
fn decode(v: &str) -> String {
    let v = v.replace('+', " ");
    let mut pieces = v.split('%');
    let mut out = pieces.next().unwrap_or_default().as_bytes().to_vec();
    for piece in pieces {
        match piece.get(..2).and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(b) => {
                out.push(b);
                out.extend_from_slice(&piece.as_bytes()[2..]);
            }
            None => {
                out.push(b'%');
                out.extend_from_slice(piece.as_bytes());
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of header `name` (any case) in a request head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
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

/// A JSON answer.
fn answer(s: &mut TcpStream, code: u16, body: &Value) -> io::Result<()> {
    respond(s, code, JSON, body.to_string().as_bytes())
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

    #[test]
    fn a_hang_lasts_secs_or_ms_and_30_s_by_default() {
        let hang = |query| parse_fault(query).map(|(kind, _, _)| kind);
        assert_eq!(hang("kind=hang"), Ok(Kind::Hang(30_000)));
        assert_eq!(hang("kind=hang&secs=8"), Ok(Kind::Hang(8_000)));
        assert_eq!(hang("kind=hang&ms=250"), Ok(Kind::Hang(250)));
        assert!(hang("kind=hang&ms=0.5").is_err_and(|e| e.contains("bad ms")));
    }

    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(decode("a%20b+c%2"), "a b c%2");
        assert_eq!(param("x=1&y=%41", "y").as_deref(), Some("A"));
        assert_eq!(param("x=1", "y"), None);
    }

    #[test]
    fn headers_are_found_in_any_case() {
        let head = "GET /v2/credentials/x HTTP/1.1\r\nHost: h\r\nauthorization:  abc \r\n\r\n";
        assert_eq!(header(head, "Authorization"), Some("abc"));
        assert_eq!(header(head, "host"), Some("h"));
        assert_eq!(header(head, "x-missing"), None);
        assert_eq!(
            header("GET /authorization: x HTTP/1.1\r\n\r\n", "authorization"),
            None
        );
    }
}
