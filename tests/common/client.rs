//! A raw HTTP/1.1 client over `TcpStream`, the one every test reads answers with: a request on a
//! new connection read to its close ([`http_get`], [`exchange`]), one read from a keep-alive
//! connection ([`read_response`]), what hostile clients send to the server (in-process in
//! `tests/http_server.rs`, the real binary in `tests/hostile.rs`, the fuzzer) and how their
//! answers are read, without an HTTP library between the bytes and the assertions.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

/// How long [`send`] waits for the server to close after the request was written.
const CLOSE_PATIENCE: Duration = Duration::from_secs(20);

/// A raw HTTP/1.1 GET with `Connection: close`: (status, head, body).
pub fn http_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> io::Result<(u16, String, String)> {
    http_request(addr, "GET", path, headers)
}

pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> io::Result<(u16, String, String)> {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    exchange(addr, &request)
}

/// Sends a whole request on a new connection and reads the answer to its end:
/// (status, head, body).
pub fn exchange(addr: SocketAddr, request: &str) -> io::Result<(u16, String, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    read_to_close(&mut stream, &mut raw)?;
    parse_answer(&raw)
}

/// Reads into `out` until the peer closes. A reset (or a TLS peer closing without
/// `close_notify`) ends it like a close, what arrived before it kept; a read timeout is an
/// error, what arrived before it in `out`.
pub fn read_to_close(stream: &mut impl Read, out: &mut Vec<u8>) -> io::Result<()> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::BrokenPipe
                        | io::ErrorKind::UnexpectedEof
                ) =>
            {
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    }
}

/// One whole answer: (status, head, body).
pub fn parse_answer(raw: &[u8]) -> io::Result<(u16, String, String)> {
    let raw = String::from_utf8_lossy(raw);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("no status in {head:?}")))?;
    Ok((status, head.to_owned(), body.to_owned()))
}

/// The value of header `name` (any case) in a head.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Whether the server closed this connection (EOF or reset), without blocking.
pub fn closed_by_server(stream: &TcpStream) -> bool {
    let _ = stream.set_nonblocking(true);
    let mut byte = [0u8; 1];
    let closed = match stream.peek(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
    };
    let _ = stream.set_nonblocking(false);
    closed
}

/// Writes `bytes` (ignoring a reset once the server has answered), half-closes, and reads
/// everything the server sends until it closes; panics if it has not closed 20 s later.
pub fn send(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    send_chunks(addr, bytes, bytes.len()).unwrap_or_else(|e| panic!("{addr}: {e}"))
}

/// [`send`] on a new connection, `bytes` written `chunk` bytes at a time (stopping at a write
/// the server refuses: it answered and closed early).
pub fn send_chunks(addr: SocketAddr, bytes: &[u8], chunk: usize) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr)?;
    send_on(&mut stream, bytes, chunk)
}

/// [`send_chunks`] on a connection the caller opened.
pub fn send_on(stream: &mut TcpStream, bytes: &[u8], chunk: usize) -> io::Result<Vec<u8>> {
    stream.set_read_timeout(Some(CLOSE_PATIENCE))?;
    for piece in bytes.chunks(chunk.max(1)) {
        if stream.write_all(piece).is_err() {
            break;
        }
    }
    let _ = stream.shutdown(Shutdown::Write);
    let mut out = Vec::new();
    read_to_close(stream, &mut out).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "the connection stayed open {CLOSE_PATIENCE:?} after EOF ({} bytes read): {e}",
                out.len()
            ),
        )
    })?;
    Ok(out)
}

/// The status code of the first response in `raw`, if any.
pub fn status_of(raw: &[u8]) -> Option<u16> {
    let rest = raw.strip_prefix(b"HTTP/1.1 ")?;
    std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()
}

/// How many answers start in `raw` (a status line each).
pub fn answer_count(raw: &[u8]) -> usize {
    raw.windows(9).filter(|w| w == b"HTTP/1.1 ").count()
}

/// Reads one response (head and `Content-Length` body; no body for a `HEAD` request's `200`)
/// from a keep-alive connection; `None` once the server has closed it.
pub fn read_response(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    head_request: bool,
) -> Option<(u16, String, Vec<u8>)> {
    let mut chunk = [0u8; 16 * 1024];
    let end = loop {
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
    let status = status_of(head.as_bytes())?;
    let length: usize = header(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let length = if head_request && status == 200 {
        0
    } else {
        length
    };
    while buffer.len() < end + length {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
    let body = buffer[end..end + length].to_vec();
    buffer.drain(..end + length);
    Some((status, head, body))
}

/// Sends `request` (one or more pipelined requests, all `HEAD` or none) on a new connection and
/// reads answers until `count` have arrived or the server closes: (their statuses, whether it
/// closed).
pub fn statuses(addr: SocketAddr, request: &[u8], count: usize) -> (Vec<u16>, bool) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream.write_all(request).expect("write");
    let mut buffer = Vec::new();
    let mut statuses = Vec::new();
    while statuses.len() < count {
        match read_response(&mut stream, &mut buffer, request.starts_with(b"HEAD")) {
            Some((status, _, _)) => statuses.push(status),
            None => return (statuses, true),
        }
    }
    (statuses, false)
}

/// Opens `n` connections that send a partial head (every other one) or nothing, and keeps them.
pub fn idle_connections(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            let mut s = TcpStream::connect(addr).expect("idle connect");
            if i % 2 == 0 {
                s.write_all(b"GET /metrics HTTP/1.1\r\nHost: slow\r\nX-Slow: ")
                    .expect("partial head");
            }
            s
        })
        .collect()
}

/// How long each of `tries` calls of `request` took: (the median, all in call order).
pub fn timed(tries: usize, mut request: impl FnMut()) -> (Duration, Vec<Duration>) {
    let all: Vec<Duration> = (0..tries)
        .map(|_| {
            let started = std::time::Instant::now();
            request();
            started.elapsed()
        })
        .collect();
    let mut sorted = all.clone();
    sorted.sort();
    (sorted[sorted.len() / 2], all)
}

/// Connection `i` of a churn: opened, then dropped after nothing, part of a head, a whole
/// request, or the start of a TLS handshake and a shutdown (by `i % 4`).
pub fn connect_and_drop(addr: SocketAddr, i: usize) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connection {i}: {e}"));
    match i % 4 {
        0 => {}
        1 => {
            let _ = s.write_all(b"GET /met");
        }
        2 => {
            let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        }
        _ => {
            let _ = s.write_all(b"\x16\x03\x01");
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// Connects and sends a request head one byte every `every`, never finishing it, until the
/// server closes the connection or `give_up` passes: how long the server held it (`None`: it was
/// still open at `give_up`). Panics if the server answers the unfinished head.
pub fn trickle(addr: SocketAddr, every: Duration, give_up: Duration) -> Option<Duration> {
    // The clock starts before the connect: the server's deadline starts at its accept, which
    // comes after, so the time measured is never shorter than the server's (a test thread
    // descheduled between connect and a later clock read measured a 300 ms deadline as 198 ms).
    let started = std::time::Instant::now();
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(every)).expect("timeout");
    let bytes = b"GET /metrics HTTP/1.1\r\nX-Trickle: "
        .iter()
        .chain(b"a".iter().cycle());
    for &byte in bytes {
        if started.elapsed() > give_up {
            return None;
        }
        if stream.write_all(&[byte]).is_err() {
            return Some(started.elapsed());
        }
        let mut sink = [0u8; 1024];
        match stream.read(&mut sink) {
            Ok(0) => return Some(started.elapsed()),
            Ok(n) => panic!(
                "an answer to an unfinished head: {}",
                sink[..n].escape_ascii()
            ),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}
