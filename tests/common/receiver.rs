//! A Remote-Write receiver of the tests' own, on 127.0.0.1, that answers as told: HTTP/1.1 by
//! hand over `std::net` (keep-alive, `Content-Length` bodies), each request decoded (snappy block
//! format, then a strict reading of the `prometheus.WriteRequest` protobuf) and recorded with its
//! headers and time of arrival. Planned answers are used one per request, in order; with none
//! left it answers 204 like Prometheus. A planned answer can also be a hang (no answer, then the
//! connection closes) or a connection closed in the middle of the status line.
//!
//! Out of scope: what a test expects of the requests (the tests), TLS and auth (the real
//! Prometheus of `prometheus.rs` is the receiver for those).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// The bits of Prometheus' staleness marker.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// One decoded `TimeSeries`: labels in the order sent, samples as (value, timestamp ms).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Vec<(String, String)>,
    pub samples: Vec<(f64, i64)>,
}

impl Series {
    pub fn label(&self, name: &str) -> Option<&str> {
        super::label(&self.labels, name)
    }

    pub fn name(&self) -> &str {
        self.label("__name__").unwrap_or("")
    }
}

/// How the receiver answers one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A complete answer: status, extra headers, body.
    Status(u16, Vec<(String, String)>, String),
    /// Reads the request, answers nothing for this long, then closes the connection.
    Hang(Duration),
    /// Reads the request, writes half a status line, closes the connection.
    CloseMidResponse,
}

impl Answer {
    pub fn status(code: u16) -> Answer {
        Answer::Status(code, Vec::new(), String::new())
    }

    /// Whether the exporter got a 2xx answer.
    pub fn accepted(&self) -> bool {
        matches!(self, Answer::Status(code, ..) if (200..300).contains(code))
    }
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    /// When its last byte was read (the answer is written right after).
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// Header names lower-cased, in the order sent.
    pub headers: Vec<(String, String)>,
    /// The body as sent (snappy-compressed).
    pub body: Vec<u8>,
    /// The decoded `WriteRequest`, or what is wrong with it.
    pub series: Result<Vec<Series>, String>,
    pub answer: Answer,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        super::label(&self.headers, name)
    }

    /// The request's series, panicking with the decoding error.
    pub fn decoded(&self) -> &[Series] {
        self.series
            .as_deref()
            .unwrap_or_else(|e| panic!("request at {:?} does not decode: {e}", self.at))
    }

    /// The timestamp of the request's non-stale samples (every series of a poll has the same);
    /// `None` when it holds only staleness markers.
    pub fn poll_ms(&self) -> Option<i64> {
        let times: Vec<i64> = self
            .decoded()
            .iter()
            .flat_map(|s| &s.samples)
            .filter(|(v, _)| v.to_bits() != STALE_NAN_BITS)
            .map(|(_, t)| *t)
            .collect();
        let first = *times.first()?;
        assert!(
            times.iter().all(|t| *t == first),
            "one request, several timestamps: {times:?}"
        );
        Some(first)
    }
}

struct Shared {
    plan: Mutex<VecDeque<Answer>>,
    log: Mutex<Vec<Received>>,
    stop: AtomicBool,
}

/// The receiver; its threads end on drop.
pub struct Receiver {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:<port>/api/v1/write`
    pub url: String,
    shared: Arc<Shared>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("receiver binds");
        let addr = listener.local_addr().expect("receiver address");
        let shared = Arc::new(Shared {
            plan: Mutex::new(VecDeque::new()),
            log: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let accept = Arc::clone(&shared);
        thread::spawn(move || {
            for stream in listener.incoming() {
                if accept.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&accept);
                thread::spawn(move || {
                    let _ = serve(&shared, stream);
                });
            }
        });
        Receiver {
            addr,
            url: format!("http://{addr}/api/v1/write"),
            shared,
        }
    }

    /// Appends answers for the next requests (after those already planned).
    pub fn plan(&self, answers: impl IntoIterator<Item = Answer>) {
        lock(&self.shared.plan).extend(answers);
    }

    /// Answers planned and not used yet.
    pub fn planned(&self) -> usize {
        lock(&self.shared.plan).len()
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.shared.log).clone()
    }

    /// Waits until the requests so far satisfy `check`; returns them either way, and whether.
    pub fn wait(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&[Received]) -> bool,
    ) -> (bool, Vec<Received>) {
        let deadline = Instant::now() + timeout;
        loop {
            let received = self.received();
            if check(&received) {
                return (true, received);
            }
            if Instant::now() > deadline {
                return (false, received);
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Serves the requests of one connection until it closes or an answer ends it.
fn serve(shared: &Shared, mut stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut buffered = Vec::new();
    loop {
        let Some((head, body)) = read_request(&mut stream, &mut buffered)? else {
            return Ok(());
        };
        if shared.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let at = Instant::now();
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or("").split(' ');
        let (method, path) = (
            first.next().unwrap_or("").to_owned(),
            first.next().unwrap_or("").to_owned(),
        );
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let answer = lock(&shared.plan)
            .pop_front()
            .unwrap_or_else(|| Answer::status(204));
        let series = decode(&body);
        lock(&shared.log).push(Received {
            at,
            method,
            path,
            headers,
            body,
            series,
            answer: answer.clone(),
        });
        match answer {
            Answer::Status(code, extra, text) => {
                let mut out = format!(
                    "HTTP/1.1 {code} {}\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n",
                    reason(code),
                    text.len()
                );
                for (name, value) in extra {
                    out.push_str(&format!("{name}: {value}\r\n"));
                }
                out.push_str("\r\n");
                out.push_str(&text);
                stream.write_all(out.as_bytes())?;
                stream.flush()?;
            }
            Answer::Hang(how_long) => {
                thread::sleep(how_long);
                return Ok(());
            }
            Answer::CloseMidResponse => {
                stream.write_all(b"HTTP/1.1 2")?;
                stream.flush()?;
                return stream.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

/// One request (head without its final blank line, body); `None` at a clean end of stream.
fn read_request(
    stream: &mut TcpStream,
    buffered: &mut Vec<u8>,
) -> io::Result<Option<(String, Vec<u8>)>> {
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = buffered.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return if buffered.is_empty() {
                Ok(None)
            } else {
                Err(io::Error::other(
                    "the connection closed within a request head",
                ))
            };
        }
        buffered.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffered[..head_end]).into_owned();
    let length = head
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .ok_or_else(|| io::Error::other(format!("no Content-Length in {head:?}")))?;
    let start = head_end + 4;
    while buffered.len() < start + length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::other("the connection closed within a body"));
        }
        buffered.extend_from_slice(&chunk[..n]);
    }
    let body = buffered[start..start + length].to_vec();
    buffered.drain(..start + length);
    Ok(Some((head, body)))
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding: snappy block format, then the protobuf of a WriteRequest.
//
// WriteRequest { repeated TimeSeries timeseries = 1; repeated MetricMetadata metadata = 3; }
// TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
// Label        { string name = 1; string value = 2; }
// Sample       { double value = 1; int64 timestamp = 2; }

/// A snappy-compressed `WriteRequest` → its series. Strict: an unknown field, a wrong wire type,
/// a truncated field or trailing bytes are errors.
pub fn decode(body: &[u8]) -> Result<Vec<Series>, String> {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("not snappy (block format): {e}"))?;
    let mut series = Vec::new();
    for field in fields(&raw)? {
        match field {
            (1, Value::Bytes(b)) => series.push(timeseries(b)?),
            (3, Value::Bytes(_)) => {} // metadata: not looked at
            (n, _) => return Err(format!("WriteRequest: unexpected field {n}")),
        }
    }
    Ok(series)
}

fn timeseries(b: &[u8]) -> Result<Series, String> {
    let mut s = Series {
        labels: Vec::new(),
        samples: Vec::new(),
    };
    for field in fields(b)? {
        match field {
            (1, Value::Bytes(b)) => {
                let (mut name, mut value) = (None, None);
                for f in fields(b)? {
                    match f {
                        (1, Value::Bytes(b)) => name = Some(utf8(b)?),
                        (2, Value::Bytes(b)) => value = Some(utf8(b)?),
                        (n, _) => return Err(format!("Label: unexpected field {n}")),
                    }
                }
                s.labels
                    .push((name.unwrap_or_default(), value.unwrap_or_default()));
            }
            (2, Value::Bytes(b)) => {
                let (mut value, mut ts) = (0.0, 0);
                for f in fields(b)? {
                    match f {
                        (1, Value::Fixed64(v)) => value = f64::from_bits(v),
                        (2, Value::Varint(v)) => ts = v as i64,
                        (n, _) => return Err(format!("Sample: unexpected field {n}")),
                    }
                }
                s.samples.push((value, ts));
            }
            (n, _) => return Err(format!("TimeSeries: unexpected field {n}")),
        }
    }
    Ok(s)
}

fn utf8(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|e| format!("a label is not UTF-8: {e}"))
}

enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
}

/// The fields of one message: (field number, value).
fn fields(mut b: &[u8]) -> Result<Vec<(u64, Value<'_>)>, String> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b)?;
        let value = match key & 7 {
            0 => Value::Varint(varint(&mut b)?),
            1 => {
                let (v, rest) = b.split_first_chunk::<8>().ok_or("truncated fixed64")?;
                b = rest;
                Value::Fixed64(u64::from_le_bytes(*v))
            }
            2 => {
                let len = usize::try_from(varint(&mut b)?).map_err(|e| e.to_string())?;
                if len > b.len() {
                    return Err(format!("a field of {len} bytes with {} left", b.len()));
                }
                let (v, rest) = b.split_at(len);
                b = rest;
                Value::Bytes(v)
            }
            t => return Err(format!("wire type {t}")),
        };
        out.push((key >> 3, value));
    }
    Ok(out)
}

fn varint(b: &mut &[u8]) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = b.split_first().ok_or("truncated varint")?;
        *b = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint longer than 10 bytes".into())
}
