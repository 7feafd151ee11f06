//! The HTTP server (`serve::http`) in-process, through its library API: a trivial handler,
//! [`Limits`] in milliseconds where a test waits for one, no lock (each test has its own server).
//!
//! What is pinned: pipelined keep-alive answers in order; a head of the limit served and one
//! byte more `431` (in one write, in pieces, or 1 MiB); small bodies dropped, large or chunked
//! ones `413`, unparsable heads `400`, each then closed; `HEAD` without a body, HTTP/1.0 closed
//! after its answer; garbage never answered otherwise and never ending the server; the waiting
//! cap closing the oldest waiting connections so that idle clients cannot delay a new one; `503`
//! beyond the connection cap; the head deadline that a trickle cannot reset, the idle keep-alive
//! deadline and the write deadline; 3,000 connections opened and dropped; `Server::stop` closing
//! the waiting connections and the listener but finishing an answer being written. The real
//! binary under the same clients: `tests/hostile.rs`.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::LazyLock;
use std::thread;
use std::time::{Duration, Instant};

use ecs_container_exporter::serve::http::{self, Limits, Request, Response, Server};

use common::client::{
    answer_count, closed_by_server, connect_and_drop, idle_connections, read_response,
    read_to_close, send, send_chunks, send_on, status_of, statuses, timed, trickle,
};
use common::{http_get, wait_for};

/// The request head limit of `Limits::default()`, what the exporter serves with.
const MAX_HEAD: usize = 8 * 1024;
const METRICS: &str = "ecs_exporter_up 1\n";
/// `/big`: more than the sockets' buffers hold while the client does not read.
static BIG: LazyLock<Vec<u8>> = LazyLock::new(|| vec![b'b'; 32 << 20]);

/// `/metrics` a line (`GET` and `HEAD` only, else 405), `/` 32 KiB (more than one socket write
/// may take), `/health` `ok`, `/big` 32 MiB; other paths 404.
fn handler(request: &Request) -> Response {
    let body = |bytes: Box<dyn AsRef<[u8]> + Send>| Response {
        status: 200,
        content_type: "text/plain",
        body: bytes,
        allow: None,
    };
    match request.path.as_str() {
        "/metrics" if request.method != "GET" && request.method != "HEAD" => {
            let mut response = Response::text(405, "method not allowed\n");
            response.allow = Some("GET, HEAD");
            response
        }
        "/metrics" => Response::text(200, METRICS),
        "/" => body(Box::new(vec![b'x'; 32 * 1024])),
        "/health" => Response::text(200, "ok\n"),
        "/big" => body(Box::new(BIG.as_slice())),
        _ => Response::text(404, "not found\n"),
    }
}

fn serve(limits: Limits) -> (SocketAddr, Server) {
    let listener = http::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    (addr, http::spawn(listener, limits, handler).unwrap())
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `GET /metrics` on a new connection answers 200 with the handler's body.
fn assert_serving(addr: SocketAddr, after: &str) {
    let (status, _, body) = http_get(addr, "/metrics", &[])
        .unwrap_or_else(|e| panic!("after {after}: /metrics failed: {e}"));
    assert_eq!((status, body.as_str()), (200, METRICS), "after {after}");
}

#[test]
fn keep_alive_answers_pipelined_requests_in_order() {
    let (addr, _server) = serve(Limits::default());
    let three = b"GET / HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\n";
    assert_eq!(statuses(addr, three, 3), (vec![200, 404, 200], false));
}

/// A GET whose request line is padded so that the whole head is `size` bytes.
fn long_request_line(size: usize) -> Vec<u8> {
    let fixed = "GET /metrics?p= HTTP/1.1\r\nHost: x\r\n\r\n".len();
    let pad = "a".repeat(size - fixed);
    format!("GET /metrics?p={pad} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()
}

/// A GET with one header padded so that the whole head is `size` bytes.
fn long_header(size: usize) -> Vec<u8> {
    let fixed = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: \r\n\r\n".len();
    let pad = "b".repeat(size - fixed);
    format!("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: {pad}\r\n\r\n").into_bytes()
}

/// Many small headers adding up to `size` bytes.
fn many_headers(size: usize) -> Vec<u8> {
    let mut head = b"GET /metrics HTTP/1.1\r\nHost: x\r\n".to_vec();
    let mut i = 0;
    while head.len() + 2 + 64 < size {
        head.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
        i += 1;
    }
    let fill = size - head.len() - 2 - "X-F: \r\n".len();
    head.extend_from_slice(format!("X-F: {}\r\n\r\n", "c".repeat(fill)).as_bytes());
    head
}

#[test]
fn a_head_of_the_limit_is_served_and_one_byte_more_gets_431_then_a_close() {
    let (addr, _server) = serve(Limits::default());
    assert_eq!(Limits::default().head_size, MAX_HEAD);
    for (shape, build) in [
        ("request line", long_request_line as fn(usize) -> Vec<u8>),
        ("one header", long_header),
        ("many headers", many_headers),
    ] {
        // At the limit: served.
        let head = build(MAX_HEAD);
        assert_eq!(head.len(), MAX_HEAD);
        assert_eq!(
            status_of(&send(addr, &head)),
            Some(200),
            "{shape} at the limit"
        );
        assert_eq!(statuses(addr, &head, 1).0, [200], "{shape} at the limit");
        // Over it, in one write (the whole head arrives in the last read) or byte by byte.
        for size in [
            MAX_HEAD + 1,
            MAX_HEAD + 808,
            MAX_HEAD + 1000,
            10 * 1024,
            16 * 1024,
            64 * 1024,
        ] {
            let head = build(size);
            assert_eq!(head.len(), size);
            let raw = send(addr, &head);
            assert_eq!(
                status_of(&raw),
                Some(431),
                "{shape} of {size} bytes: {}",
                String::from_utf8_lossy(&raw[..raw.len().min(200)])
            );
            assert_eq!(
                statuses(addr, &head, 2),
                (vec![431], true),
                "{shape} {size}"
            );
        }
        let raw = send_chunks(addr, &build(MAX_HEAD + 1), 512).expect("in pieces");
        assert_eq!(status_of(&raw), Some(431), "{shape} in pieces");
    }
    // Far over it: the server answers 431 (or the reset of the unread rest eats the answer), and
    // never reads it all.
    let raw = send(addr, &long_header(1 << 20));
    assert!(
        matches!(status_of(&raw), Some(431) | None),
        "1 MiB head: {}",
        String::from_utf8_lossy(&raw[..raw.len().min(200)])
    );
    assert_serving(addr, "oversized heads");
}

#[test]
fn small_bodies_are_dropped_and_large_or_chunked_ones_refused() {
    let (addr, _server) = serve(Limits::default());
    let body = "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n";
    assert_eq!(statuses(addr, body.as_bytes(), 2).0, [200, 200]);
    let large = format!(
        "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        64 * 1024 + 1
    );
    assert_eq!(statuses(addr, large.as_bytes(), 2), (vec![413], true));
    let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(statuses(addr, chunked, 2), (vec![413], true));
    assert_eq!(
        statuses(addr, b"\x16\x03\x01\r\n\r\n", 2),
        (vec![400], true)
    );
}

#[test]
fn a_body_on_get_is_drained_or_refused_and_the_server_keeps_serving() {
    let (addr, _server) = serve(Limits::default());

    // A small body with Content-Length is read and dropped: the next request on the same
    // connection is answered as a request, not confused with the body.
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let body = "GET /nope HTTP/1.1\r\n\r\nnot a request";
    let requests = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}\
         GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(requests.as_bytes()).expect("write");
    let mut buffer = Vec::new();
    let (status, _, body) = read_response(&mut stream, &mut buffer, false).expect("first answer");
    assert_eq!((status, body.as_slice()), (200, METRICS.as_bytes()));
    let (status, head, body) =
        read_response(&mut stream, &mut buffer, false).expect("second answer");
    assert_eq!((status, body.as_slice()), (200, &b"ok\n"[..]), "{head}");
    assert!(
        read_response(&mut stream, &mut buffer, false).is_none(),
        "closed"
    );

    // A body sent without Content-Length is the next request: 400, then a close.
    let raw = send(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nhello body\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&raw);
    assert_eq!(status_of(&raw), Some(200));
    assert!(text.contains("HTTP/1.1 400 Bad Request"), "{text}");

    // Too large a body, a chunked one, a bad length: refused, connection closed.
    for (request, expected) in [
        (
            format!(
                "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{}",
                "z".repeat(100_000)
            ),
            413,
        ),
        (
            "GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                .to_owned(),
            413,
        ),
        (
            "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: lots\r\n\r\nabc".to_owned(),
            400,
        ),
        (
            "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\nabc".to_owned(),
            400,
        ),
    ] {
        let raw = send(addr, request.as_bytes());
        assert_eq!(
            status_of(&raw),
            Some(expected),
            "{}",
            String::from_utf8_lossy(&raw[..raw.len().min(200)])
        );
        assert_eq!(
            answer_count(&raw),
            1,
            "one answer, then the connection is closed"
        );
    }
    // A body shorter than announced, then EOF: nothing to answer, nothing stuck.
    let raw = send(
        addr,
        b"GET /metrics HTTP/1.1\r\nContent-Length: 50\r\n\r\nshort",
    );
    assert!(raw.is_empty(), "{}", raw.escape_ascii());
    assert_serving(addr, "bodies on GET");
}

#[test]
fn requests_followed_by_a_half_close_are_answered_then_the_connection_closed_at_once() {
    // The FIN comes with the requests on a connection that waits for them: one event for both
    // (epoll is edge-triggered), so the server must read on to the FIN rather than wait for the
    // head deadline.
    let (addr, _server) = serve(Limits {
        head_timeout: Duration::from_secs(30),
        ..Limits::default()
    });
    let one = &b"GET /health HTTP/1.1\r\n\r\n"[..];
    let two = &b"GET /health HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\n"[..];
    for i in 0..20 {
        let (requests, answers) = if i % 2 == 0 { (one, 1) } else { (two, 2) };
        let mut stream = TcpStream::connect(addr).unwrap();
        thread::sleep(ms(5)); // accepted: it waits for a head
        let started = Instant::now();
        let raw = send_on(&mut stream, requests, requests.len()).expect("closed");
        let took = started.elapsed();
        assert_eq!(answer_count(&raw), answers, "{i}: {}", raw.escape_ascii());
        assert!(took < Duration::from_secs(1), "{i}: closed after {took:?}");
    }
}

#[test]
fn head_requests_get_no_body_and_http_1_0_is_closed_after_the_answer() {
    let (addr, _server) = serve(Limits::default());
    assert_eq!(
        statuses(addr, b"HEAD / HTTP/1.1\r\n\r\n", 1),
        (vec![200], false)
    );
    // A body after the first answer's head would be read as the second answer.
    let two = b"HEAD / HTTP/1.1\r\n\r\nHEAD /health HTTP/1.1\r\n\r\n";
    assert_eq!(statuses(addr, two, 2), (vec![200, 200], false));
    assert_eq!(statuses(addr, b"GET / HTTP/1.0\r\n\r\n", 1).0, [200]);
    let (_, closed) = statuses(addr, b"GET / HTTP/1.0\r\n\r\n", 2);
    assert!(closed, "HTTP/1.0 without keep-alive is closed");
}

/// A small xorshift generator for random bytes (deterministic: fixed seeds).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn garbage_bytes_get_400_or_a_close_and_the_server_keeps_serving() {
    let (addr, server) = serve(Limits::default());
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut cases: Vec<Vec<u8>> = vec![
        b"\x00\x01\x02\xff\xfe\r\n\r\n".to_vec(),
        b"\r\n\r\n".to_vec(),
        b"\n\n".to_vec(),
        b"GET\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\n\r\n".to_vec(),
        b"GET  /metrics  HTTP/1.1\r\n\r\n".to_vec(),
        b"GET http://127.0.0.1/metrics HTTP/1.1\r\n\r\n".to_vec(),
        b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n".to_vec(),
        b"GET /metrics HTTP/1.1\r\nHost: \xff\xfe\xfd\r\n\r\n".to_vec(),
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
        "GET /\u{1F600} HTTP/1.1\r\n\r\n".as_bytes().to_vec(),
        b"DELETE /metrics HTTP/1.1\r\n\r\n".to_vec(),
        b"GET /metrics HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n".to_vec(),
        // A TLS ClientHello (someone scraping with https://).
        [
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
            &rng.bytes(500),
        ]
        .concat(),
        // No terminator at all, then EOF.
        b"GET /metrics HTTP/1.1\r\nHost: x".to_vec(),
    ];
    for _ in 0..40 {
        let n = 1 + (rng.next() % 6000) as usize;
        let mut junk = rng.bytes(n);
        if rng.next() % 2 == 0 {
            junk.extend_from_slice(b"\r\n\r\n");
        }
        cases.push(junk);
    }
    for (i, case) in cases.iter().enumerate() {
        let raw = send(addr, case);
        let status = status_of(&raw);
        assert!(
            raw.is_empty() || matches!(status, Some(400 | 404 | 405 | 413 | 431)),
            "case {i} {}: answered {}",
            case.escape_ascii(),
            String::from_utf8_lossy(&raw[..raw.len().min(200)])
        );
        if i % 8 == 0 {
            assert_serving(addr, &format!("garbage case {i}"));
        }
    }
    assert_serving(addr, "garbage");
    assert!(
        server.stop(Instant::now() + Duration::from_secs(2)),
        "the server's thread panicked or did not end"
    );
}

#[test]
fn more_than_the_waiting_cap_close_the_oldest_waiting_connections() {
    let waiting = 8;
    let (addr, _server) = serve(Limits {
        waiting,
        ..Limits::default()
    });
    let idle: Vec<TcpStream> = (0..waiting + 10)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    // A real client is still served.
    assert_eq!(
        statuses(addr, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 1).0,
        [200]
    );
    thread::sleep(ms(100));
    let closed: Vec<bool> = idle.iter().map(closed_by_server).collect();
    // The oldest were closed (the 10 beyond the cap, and one more for the real client while it
    // waited for its head); the newest still wait.
    assert!(closed[..11].iter().all(|&c| c), "{closed:?}");
    assert!(closed[11..].iter().all(|&c| !c), "{closed:?}");
}

/// Waits until the server has accepted every one of `idle` and closed all but (at most) the
/// newest `waiting`.
fn all_but_the_waiting_closed(idle: &[TcpStream], waiting: usize) {
    let closed = || idle.iter().filter(|s| closed_by_server(s)).count();
    assert!(
        wait_for(Duration::from_secs(10), || closed() + waiting >= idle.len()),
        "only {} of {} idle connections were closed",
        closed(),
        idle.len()
    );
}

#[test]
fn idle_connections_beyond_the_waiting_cap_are_closed_and_do_not_delay_a_new_client() {
    // Deadlines far off: only the cap closes them.
    let limits = Limits {
        head_timeout: Duration::from_secs(60),
        ..Limits::default()
    };
    let (addr, _server) = serve(limits);
    let n = 300;
    let idle = idle_connections(addr, n);
    all_but_the_waiting_closed(&idle, limits.waiting);
    // Each a fresh `GET /metrics`, connect to last byte.
    let (median, all) = timed(7, || assert_serving(addr, "idle connections"));
    assert!(
        median < ms(50),
        "median latency {median:?} with {n} idle connections (all: {all:?})"
    );
    drop(idle);
    assert_serving(addr, "idle connections");
}

#[test]
fn more_idle_connections_than_the_connection_cap_still_leave_a_new_client_served() {
    // The waiting cap is below the connection cap (as by default): idle clients make room.
    let limits = Limits {
        connections: 32,
        waiting: 8,
        ..Limits::default()
    };
    let (addr, _server) = serve(limits);
    let n = limits.connections + 8;
    let idle = idle_connections(addr, n);
    all_but_the_waiting_closed(&idle, limits.waiting);
    let started = Instant::now();
    let raw = send(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let took = started.elapsed();
    assert_eq!(status_of(&raw), Some(200), "{}", raw.escape_ascii());
    assert!(took < Duration::from_secs(1), "took {took:?}");
    drop(idle);
    assert_serving(addr, "a flood of idle connections");
}

#[test]
fn connections_beyond_the_connection_cap_get_503_and_a_close() {
    let limits = Limits {
        connections: 4,
        waiting: 8,
        ..Limits::default()
    };
    let (addr, _server) = serve(limits);
    let idle = idle_connections(addr, limits.connections);
    // One more, sending nothing (so that the server's close is a clean one, not a reset).
    let mut refused = TcpStream::connect(addr).unwrap();
    refused
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut raw = Vec::new();
    read_to_close(&mut refused, &mut raw).expect("a 503, then a close");
    let text = String::from_utf8_lossy(&raw);
    assert_eq!(status_of(&raw), Some(503), "{text}");
    assert!(text.contains("Retry-After: 1\r\n"), "{text}");
    drop(idle);
    assert!(
        wait_for(Duration::from_secs(5), || http_get(addr, "/metrics", &[])
            .is_ok_and(|r| r.0 == 200)),
        "not served once the idle connections were gone"
    );
}

/// A connection closed `took` after it started waiting was closed by the time limit `limit`: not
/// before it (less the clock's slack), and not long after.
fn assert_cut_off_at(took: Duration, limit: Duration, what: &str) {
    assert!(
        took >= limit * 9 / 10 && took < limit + Duration::from_secs(3),
        "{what}: closed after {took:?}, the limit is {limit:?}"
    );
}

#[test]
fn a_trickling_head_is_cut_off_at_the_head_deadline() {
    // One byte every 10 ms never completes a head; the server must close the connection when
    // its head deadline (not reset by the trickle) passes.
    let head_timeout = ms(300);
    let (addr, _server) = serve(Limits {
        head_timeout,
        ..Limits::default()
    });
    let closed = trickle(addr, ms(10), Duration::from_secs(5))
        .expect("a trickling client held its connection for 5 s");
    assert_cut_off_at(closed, head_timeout, "a trickling head");
    assert_serving(addr, "a trickling head");
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_head_timeout() {
    let head_timeout = ms(200);
    let (addr, _server) = serve(Limits {
        head_timeout,
        ..Limits::default()
    });
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // Measured from before the request: the server's idle deadline starts when it has written
    // the answer, later, so the time measured is never shorter than the server's.
    let answered = Instant::now();
    stream.write_all(b"GET /health HTTP/1.1\r\n\r\n").unwrap();
    let mut buffer = Vec::new();
    assert_eq!(
        read_response(&mut stream, &mut buffer, false).unwrap().0,
        200
    );
    assert!(read_response(&mut stream, &mut buffer, false).is_none());
    assert_cut_off_at(
        answered.elapsed(),
        head_timeout,
        "an idle keep-alive connection",
    );
}

#[test]
fn an_answer_not_taken_within_the_write_timeout_is_dropped() {
    let write_timeout = ms(300);
    let (addr, _server) = serve(Limits {
        write_timeout,
        ..Limits::default()
    });
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(b"GET /big HTTP/1.1\r\n\r\n").unwrap();
    thread::sleep(write_timeout * 2);
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut raw = Vec::new();
    let _ = read_to_close(&mut stream, &mut raw);
    let got = raw.len();
    assert!(
        got < BIG.len(),
        "the whole answer ({got} bytes) after its deadline"
    );
    assert_serving(addr, "a dropped answer");
}

#[test]
fn a_thousand_connections_opened_and_dropped_leave_it_serving() {
    let (addr, server) = serve(Limits::default());
    for round in 0..3 {
        for i in 0..1000 {
            connect_and_drop(addr, i);
        }
        assert_serving(addr, &format!("round {round} of 1000 connect-and-drop"));
    }
    assert!(server.stop(Instant::now() + Duration::from_secs(2)));
}

#[test]
fn stop_ends_the_thread_and_refuses_new_connections() {
    let (addr, server) = serve(Limits::default());
    let idle = TcpStream::connect(addr).unwrap();
    assert_eq!(statuses(addr, b"GET / HTTP/1.1\r\n\r\n", 1).0, [200]);
    let started = Instant::now();
    assert!(server.stop(started + Duration::from_secs(2)));
    assert!(started.elapsed() < ms(500));
    let mut byte = [0u8; 1];
    idle.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    assert!(
        matches!((&idle).read(&mut byte), Ok(0)),
        "a waiting connection is closed"
    );
    assert!(TcpStream::connect(addr).is_err(), "the listener is closed");
}

#[test]
fn stop_finishes_an_answer_being_written_then_ends() {
    let (addr, server) = serve(Limits::default());
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /big HTTP/1.1\r\n\r\n").unwrap();
    // The client reads nothing yet: the answer waits for room in the socket.
    thread::sleep(ms(100));
    let stopping = thread::spawn(move || {
        let started = Instant::now();
        (
            server.stop(started + Duration::from_secs(5)),
            started.elapsed(),
        )
    });
    thread::sleep(ms(100));
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buffer = Vec::new();
    let (status, _, body) =
        read_response(&mut slow, &mut buffer, false).expect("the whole answer after stop");
    assert_eq!((status, body.len()), (200, BIG.len()));
    assert!(
        read_response(&mut slow, &mut buffer, false).is_none(),
        "closed after it"
    );
    let (ended, took) = stopping.join().unwrap();
    assert!(
        ended && took < Duration::from_secs(5),
        "{ended} after {took:?}"
    );
    assert!(TcpStream::connect(addr).is_err(), "the listener is closed");
}
