//! A small bounded HTTP/1.1 server over `std::net`, generic over what it answers: each request
//! head is parsed into a [`Request`], handed to a handler (`routes::route`), and its [`Response`]
//! written.
//!
//! Why not tiny_http (the design card's choice): tiny_http 0.12 stops accepting for good on the
//! first `accept` error (EMFILE under a connection flood ends the server), gives every connection
//! a thread with no limit, and sets no read timeout, so one idle client holds a thread forever.
//! A sidecar's server only needs a few GET paths and no bodies, so the bounded version is short:
//!
//! - one accept thread; an `accept` error is logged and retried after a pause, never fatal;
//! - a thread per connection (64 KiB stack), at most [`MAX_CONNECTIONS`] at once; beyond that a
//!   new connection gets `503` and is closed;
//! - at most [`MAX_IDLE`] connections may sit waiting for a request head (new, keep-alive between
//!   requests, or trickling): a new connection closes the oldest waiting one beyond that, so
//!   idle or slowloris clients cannot hold threads and memory, and a real client, which sends
//!   its request at once, is still served;
//! - a request head must arrive whole within [`HEAD_TIMEOUT`] (a trickle cannot reset it) and be
//!   at most [`MAX_HEAD`] bytes (else `431`); an idle keep-alive connection is closed after the
//!   same time; a request body of up to 64 KiB is read and dropped, a larger one closes the
//!   connection after the answer (`413`);
//! - anything unparsable gets `400` and a close; writes time out too.
//!
//! Out of scope: what the paths answer (`routes.rs`).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::state::State;

/// Connections served at once; more are answered `503`.
pub const MAX_CONNECTIONS: usize = 1024;
/// Connections waiting for a request head; beyond this the oldest waiting one is closed.
pub const MAX_IDLE: usize = 64;
/// The longest a request head may take to arrive, and the longest a connection may sit idle.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head (request line and headers).
pub const MAX_HEAD: usize = 8 * 1024;
/// The largest request body that is read and dropped to keep the connection.
const MAX_DRAINED_BODY: usize = 64 * 1024;
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const STACK_SIZE: usize = 64 * 1024;

/// What answers a request: a pure function of the request and the shared state.
pub type Handler = fn(&Request, &State) -> Response;

/// A parsed request head.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path without its query.
    pub path: String,
    pub accept: Option<String>,
    keep_alive: bool,
    content_length: usize,
    chunked: bool,
}

impl Request {
    /// A request without a body (for handlers' tests).
    pub fn new(method: &str, path: &str, accept: Option<&str>) -> Request {
        Request {
            method: method.to_owned(),
            path: path.to_owned(),
            accept: accept.map(str::to_owned),
            ..Request::default()
        }
    }
}

/// An answer: status, type, body, and the `Allow` header of a 405.
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Box<dyn AsRef<[u8]> + Send>,
    pub allow: Option<&'static str>,
}

impl Response {
    /// A plain-text answer.
    pub fn text(status: u16, body: &'static str) -> Response {
        Response {
            status,
            content_type: "text/plain",
            body: Box::new(body),
            allow: None,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        (*self.body).as_ref()
    }
}

/// Binds the listening socket (before any thread starts, so a bad address fails at once).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
}

/// Starts the accept thread; every request is answered by `handler`.
pub fn spawn(listener: TcpListener, state: Arc<State>, handler: Handler) -> io::Result<()> {
    let open = Arc::new(AtomicUsize::new(0));
    let idle = Arc::new(Idle::default());
    thread::Builder::new()
        .name("http".into())
        .spawn(move || accept_loop(&listener, &state, handler, &open, &idle))?;
    Ok(())
}

/// Connections waiting for a request head, oldest first, each with a clone of its socket so
/// that the accept loop can close it.
#[derive(Default)]
struct Idle {
    next: AtomicU64,
    waiting: Mutex<VecDeque<(u64, TcpStream)>>,
}

impl Idle {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, TcpStream)>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a connection that starts waiting for a head, closing the oldest waiting ones
    /// beyond [`MAX_IDLE`].
    fn enter(&self, stream: &TcpStream) -> Option<u64> {
        let clone = stream.try_clone().ok()?;
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut waiting = self.lock();
        while waiting.len() >= MAX_IDLE {
            if let Some((_, oldest)) = waiting.pop_front() {
                let _ = oldest.shutdown(Shutdown::Both);
            }
        }
        waiting.push_back((id, clone));
        Some(id)
    }

    /// The connection has its head (or is gone): no longer idle.
    fn leave(&self, id: Option<u64>) {
        if let Some(id) = id {
            let mut waiting = self.lock();
            if let Some(i) = waiting.iter().position(|(x, _)| *x == id) {
                waiting.remove(i);
            }
        }
    }
}

fn accept_loop(
    listener: &TcpListener,
    state: &Arc<State>,
    handler: Handler,
    open: &Arc<AtomicUsize>,
    idle: &Arc<Idle>,
) {
    let mut last_error_log: Option<Instant> = None;
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE, ENFILE, ENOBUFS, ECONNABORTED...: wait a little, go on.
                if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                    log::warn!("accepting a connection failed (retrying): {e}");
                    last_error_log = Some(Instant::now());
                }
                thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        if state.stopping() {
            drop(stream);
            continue;
        }
        if open.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            open.fetch_sub(1, Ordering::SeqCst);
            refuse(stream);
            continue;
        }
        // The slot is given back when the guard drops: at the end of `serve`, if the thread
        // cannot be started (the closure is dropped unrun), and if `serve` panics.
        let (state, idle, slot) = (Arc::clone(state), Arc::clone(idle), Slot(Arc::clone(open)));
        let spawned = thread::Builder::new()
            .stack_size(STACK_SIZE)
            .spawn(move || {
                let _slot = slot;
                serve(stream, &state, handler, &idle);
            });
        if let Err(e) = spawned {
            log::debug!("no thread for a connection: {e}");
        }
    }
}

/// One of the [`MAX_CONNECTIONS`] connection slots, taken by the accept loop.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn refuse(mut stream: TcpStream) {
    let _ = stream.set_nonblocking(true);
    let _ = stream.write_all(
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\nRetry-After: 1\r\n\r\n",
    );
}

/// Why a request got no ordinary answer.
#[derive(Debug, PartialEq, Eq)]
enum HeadError {
    /// The peer closed or went quiet: just close.
    Gone,
    TooLarge,
    Malformed,
}

fn serve(mut stream: TcpStream, state: &State, handler: Handler, idle: &Idle) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let mut buffer = Vec::with_capacity(1024);
    loop {
        let ticket = idle.enter(&stream);
        let head = read_head(&mut stream, &mut buffer);
        idle.leave(ticket);
        let request = match head.and_then(|head| parse(&head)) {
            Ok(r) => r,
            Err(HeadError::Gone) => return,
            Err(HeadError::TooLarge) => {
                let response = Response::text(431, "request head too large\n");
                let _ = write_response(&mut stream, &response, false, false);
                return linger_close(stream);
            }
            Err(HeadError::Malformed) => {
                let response = Response::text(400, "bad request\n");
                let _ = write_response(&mut stream, &response, false, false);
                return linger_close(stream);
            }
        };
        let _in_flight = state.request();
        let mut keep_alive = request.keep_alive && !state.stopping();
        if request.chunked || request.content_length > MAX_DRAINED_BODY {
            keep_alive = false;
        } else if request.content_length > 0
            && !drain(&mut stream, &mut buffer, request.content_length)
        {
            return;
        }
        let ok = if request.chunked || request.content_length > MAX_DRAINED_BODY {
            let response = Response::text(413, "request body too large\n");
            write_response(&mut stream, &response, false, false)
        } else {
            let response = handler(&request, state);
            // A 405 has a body even for HEAD, as before.
            let head_only = request.method == "HEAD" && response.status != 405;
            write_response(&mut stream, &response, head_only, keep_alive)
        };
        if ok.is_err() || !keep_alive {
            return linger_close(stream);
        }
    }
}

/// Writes a response: status line, headers, and the body unless `head_only`.
fn write_response(
    stream: &mut TcpStream,
    response: &Response,
    head_only: bool,
    keep_alive: bool,
) -> io::Result<()> {
    let status = response.status;
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let body = response.bytes();
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n",
        response.content_type,
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    if let Some(allow) = response.allow {
        head.push_str("Allow: ");
        head.push_str(allow);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if !head_only {
        stream.write_all(body)?;
    }
    stream.flush()
}

/// Closes after an answer without resetting it: stop writing, then read briefly what the peer
/// still sends, so that unread bytes do not turn the close into a reset that eats the answer.
fn linger_close(mut stream: TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 1024];
    for _ in 0..64 {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

/// Reads until the end of a request head (`\r\n\r\n`) within [`HEAD_TIMEOUT`]. Bytes after the
/// head (a pipelined request, a body) stay in `buffer`.
fn read_head(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Result<Vec<u8>, HeadError> {
    let deadline = Instant::now() + HEAD_TIMEOUT;
    let mut chunk = [0u8; 2048];
    loop {
        if let Some(end) = find_head_end(buffer) {
            // A head that arrived whole in the last read is held to the limit too.
            if end > MAX_HEAD {
                return Err(HeadError::TooLarge);
            }
            let rest = buffer.split_off(end);
            return Ok(std::mem::replace(buffer, rest));
        }
        if buffer.len() > MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Err(HeadError::Gone);
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err(HeadError::Gone),
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(HeadError::Gone),
        }
    }
}

/// Where the head ends (after its blank line), accepting bare `\n` line ends too.
fn find_head_end(buffer: &[u8]) -> Option<usize> {
    let crlf = buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    let lf = buffer.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Reads and drops a small request body; false if the peer went away.
fn drain(stream: &mut TcpStream, buffer: &mut Vec<u8>, length: usize) -> bool {
    let deadline = Instant::now() + HEAD_TIMEOUT;
    let mut chunk = [0u8; 2048];
    while buffer.len() < length {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return false;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
    buffer.drain(..length);
    true
}

fn parse(head: &[u8]) -> Result<Request, HeadError> {
    let text = std::str::from_utf8(head).map_err(|_| HeadError::Malformed)?;
    let mut lines = text.lines();
    let request_line = lines.next().ok_or(HeadError::Malformed)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Malformed);
    };
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(HeadError::Malformed),
    };
    if method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
        || !target.starts_with('/')
    {
        return Err(HeadError::Malformed);
    }
    let mut request = Request {
        method: method.to_owned(),
        path: target.split(['?', '#']).next().unwrap_or(target).to_owned(),
        keep_alive: http11,
        accept: None,
        content_length: 0,
        chunked: false,
    };
    for line in lines
        .map(|l| l.trim_end_matches('\r'))
        .take_while(|l| !l.is_empty())
    {
        let (name, value) = line.split_once(':').ok_or(HeadError::Malformed)?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("connection") {
            if value.eq_ignore_ascii_case("close") {
                request.keep_alive = false;
            } else if value.eq_ignore_ascii_case("keep-alive") {
                request.keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case("accept") {
            request.accept = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("content-length") {
            request.content_length = value.parse().map_err(|_| HeadError::Malformed)?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            request.chunked = true;
        }
    }
    Ok(request)
}

/// `--healthcheck`: GET `/health` on the running exporter; true on `200`.
pub fn check_health(addr: SocketAddr) -> bool {
    let timeout = Duration::from_secs(3);
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut status = [0u8; 12];
    stream.read_exact(&mut status).is_ok() && &status[9..12] == b"200"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads_parse_with_keep_alive_rules() {
        let r = parse(b"GET /metrics?x=1 HTTP/1.1\r\nAccept: application/openmetrics-text\r\n\r\n")
            .unwrap();
        assert_eq!(r.path, "/metrics");
        assert!(r.keep_alive);
        assert_eq!(r.accept.as_deref(), Some("application/openmetrics-text"));
        assert!(!parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
        assert!(
            parse(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        assert!(
            !parse(b"GET / HTTP/1.1\r\nconnection: close\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        assert_eq!(
            parse(b"POST /x HTTP/1.1\r\nContent-Length: 12\r\n\r\n")
                .unwrap()
                .content_length,
            12
        );
    }

    #[test]
    fn garbage_is_malformed() {
        for bad in [
            &b"\x00\xff\r\n\r\n"[..],
            b"GET\r\n\r\n",
            b"GET / HTTP/2\r\n\r\n",
            b"get / HTTP/1.1\r\n\r\n",
            b"GET metrics HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        ] {
            assert_eq!(
                parse(bad),
                Err(HeadError::Malformed),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    /// The head of `size` bytes, read by `read_head` after arriving in one write.
    fn read_head_of(size: usize) -> Result<Vec<u8>, HeadError> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let fixed = "GET / HTTP/1.1\r\nX-Pad: \r\n\r\n".len();
        let head = format!(
            "GET / HTTP/1.1\r\nX-Pad: {}\r\n\r\n",
            "a".repeat(size - fixed)
        );
        client.write_all(head.as_bytes()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        // Let the whole head arrive, so that it ends inside a single read.
        thread::sleep(Duration::from_millis(50));
        read_head(&mut server, &mut Vec::new())
    }

    #[test]
    fn a_head_over_the_limit_is_refused_even_when_it_ends_in_the_last_read() {
        assert_eq!(read_head_of(MAX_HEAD).map(|h| h.len()), Ok(MAX_HEAD));
        for size in [MAX_HEAD + 1, MAX_HEAD + 1000, MAX_HEAD + 2047] {
            assert_eq!(read_head_of(size), Err(HeadError::TooLarge), "{size}");
        }
    }

    #[test]
    fn head_end_is_found_with_crlf_or_lf() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\n\nrest"), Some(16));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n"), None);
    }
}
