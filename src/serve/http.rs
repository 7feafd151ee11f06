//! A small bounded HTTP/1.1 server, generic over what it answers: one thread, an event loop
//! (mio: epoll) over non-blocking sockets. Each request head is parsed into a [`Request`], handed
//! to a handler (`routes::route`), and its [`Response`] written.
//!
//! Why not tiny_http (the design card's choice): tiny_http 0.12 stops accepting for good on the
//! first `accept` error (EMFILE under a connection flood ends the server), gives every connection
//! a thread with no limit, and sets no read timeout, so one idle client holds a thread forever.
//! Why one thread: the answer is bytes the poller rendered, so serving costs only the system
//! calls; a thread per connection cost more than the answer (its stack, `clone`, signal masks:
//! half the system calls of a new-connection scrape). One thread, created at start, serves every
//! connection, so the thread count is constant under any load. The bounds:
//!
//! - at most [`MAX_CONNECTIONS`] connections at once; beyond that a new one gets `503`;
//! - at most [`MAX_IDLE`] connections may wait for a request head (new, keep-alive between
//!   requests, or trickling): beyond that the oldest waiting one is closed, so idle or slowloris
//!   clients cannot crowd out a real client, which sends its request at once;
//! - a request head must arrive whole within [`HEAD_TIMEOUT`] (a trickle cannot reset it) and be
//!   at most [`MAX_HEAD`] bytes (else `431`); an idle keep-alive connection is closed after the
//!   same time; a request body of up to 64 KiB is read and dropped, a larger one closes the
//!   connection after the answer (`413`); anything unparsable gets `400` and a close; an answer
//!   not taken within 10 s is dropped;
//! - an `accept` error is never fatal: out of file descriptors, the oldest waiting connection is
//!   closed to make room, or, with none waiting, accepting pauses for 20 ms.
//!
//! On [`Server::stop`] (after [`State::stop`]) it stops accepting, closes the connections that
//! wait, finishes the answers being written, and ends its thread.
//!
//! Out of scope: what the paths answer (`routes.rs`), parsing (`http/message.rs`).

mod connection;
mod message;

pub use message::{Request, Response};

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use connection::{Conn, Phase, counts};

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
/// The longest an answer may take to be taken by the client.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// After an answer with `Connection: close`: how long, and how much, to read what the peer still
/// sends, so that unread bytes do not turn the close into a reset that eats the answer.
const LINGER: Duration = Duration::from_millis(200);
const LINGER_BYTES: usize = 64 * 1024;
/// How long accepting pauses when it fails with no waiting connection to close.
const ACCEPT_PAUSE: Duration = Duration::from_millis(20);

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX);

/// What answers a request: a pure function of the request and the shared state.
pub type Handler = fn(&Request, &State) -> Response;

/// Binds the listening socket (before any thread starts, so a bad address fails at once).
pub fn bind(addr: SocketAddr) -> io::Result<StdListener> {
    StdListener::bind(addr)
}

/// The running server.
pub struct Server {
    waker: Waker,
    thread: thread::JoinHandle<()>,
}

impl Server {
    /// After [`State::stop`]: makes the server stop and waits until its answers in flight are
    /// written (or `deadline` passes).
    pub fn stop(self, deadline: Instant) {
        if let Err(e) = self.waker.wake() {
            log::debug!("waking the HTTP thread: {e}");
        }
        while !self.thread.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Starts the HTTP thread; every request is answered by `handler`.
pub fn spawn(listener: StdListener, state: Arc<State>, handler: Handler) -> io::Result<Server> {
    listener.set_nonblocking(true)?;
    let poll = Poll::new()?;
    let waker = Waker::new(poll.registry(), WAKER)?;
    let mut listener = TcpListener::from_std(listener);
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut server = Loop {
        poll,
        listener: Some(listener),
        conns: Vec::new(),
        free: Vec::new(),
        open: 0,
        waiting: 0,
        writing: 0,
        seq: 0,
        accept_at: None,
        sweep_at: None,
        error_logged: None,
        scratch: vec![0; 4096].into_boxed_slice(),
        state,
        handler,
    };
    let thread = thread::Builder::new()
        .name("http".into())
        .spawn(move || server.run())?;
    Ok(Server { waker, thread })
}

struct Loop {
    poll: Poll,
    /// `None` once stopping.
    listener: Option<TcpListener>,
    /// Connections by token.
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    open: usize,
    /// Connections in `Phase::Head`.
    waiting: usize,
    /// Connections in `Phase::Write`: answers in flight.
    writing: usize,
    seq: u64,
    /// Accept again then (after running out of descriptors).
    accept_at: Option<Instant>,
    /// Look for connections past their deadline then (the earliest deadline known).
    sweep_at: Option<Instant>,
    error_logged: Option<Instant>,
    /// Where every read lands first (allocated once: no 4 KiB to clear per read).
    scratch: Box<[u8]>,
    state: Arc<State>,
    handler: Handler,
}

impl Loop {
    fn run(&mut self) {
        let mut events = Events::with_capacity(256);
        loop {
            let next = [self.accept_at, self.sweep_at].into_iter().flatten().min();
            let timeout = next.map(|t| t.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::warn!("waiting for connections failed (retrying): {e}");
                    thread::sleep(ACCEPT_PAUSE);
                }
                continue;
            }
            for event in events.iter() {
                match event.token() {
                    WAKER => {}
                    LISTENER => self.accept(),
                    Token(i) => self.drive(i),
                }
            }
            let now = Instant::now();
            if self.accept_at.is_some_and(|t| t <= now) {
                self.accept_at = None;
                self.accept();
            }
            if self.sweep_at.is_some_and(|t| t <= now) {
                self.sweep(now);
            }
            if self.state.stopping() && self.stop() {
                return;
            }
        }
    }

    fn accept(&mut self) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((stream, _)) => self.add(stream),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    // EMFILE, ENFILE, ENOBUFS...: make room, or wait a little.
                    self.log_accept_error(&e);
                    if !self.close_oldest_waiting() {
                        self.accept_at = Some(Instant::now() + ACCEPT_PAUSE);
                        return;
                    }
                }
            }
        }
    }

    fn log_accept_error(&mut self, e: &io::Error) {
        let now = Instant::now();
        if self
            .error_logged
            .is_none_or(|t| now.duration_since(t) > Duration::from_secs(60))
        {
            log::warn!("accepting a connection failed (retrying): {e}");
            self.error_logged = Some(now);
        }
    }

    fn add(&mut self, mut stream: TcpStream) {
        if self.open >= MAX_CONNECTIONS {
            let _ = stream.write(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\nRetry-After: 1\r\n\r\n",
            );
            return;
        }
        let i = self.free.pop().unwrap_or(self.conns.len());
        let conn = Conn {
            stream,
            buffer: Vec::new(),
            phase: Phase::Linger { read: 0 },
            deadline: Instant::now(),
            interest: None,
        };
        if i == self.conns.len() {
            self.conns.push(Some(conn));
        } else {
            self.conns[i] = Some(conn);
        }
        self.open += 1;
        self.wait_for_head(i);
        // A client usually sends its request at once: answer it without waiting for an event,
        // and register the connection only if it has to wait.
        self.drive(i);
        let unregistered = self
            .conns
            .get(i)
            .and_then(Option::as_ref)
            .is_some_and(|c| c.interest.is_none());
        if unregistered && self.want(i, Interest::READABLE).is_err() {
            self.close(i);
        }
    }

    /// Puts connection `i` in `Phase::Head`, closing the oldest waiting ones beyond the cap.
    fn wait_for_head(&mut self, i: usize) {
        self.seq += 1;
        let since = self.seq;
        self.set_phase(i, Phase::Head { since }, HEAD_TIMEOUT);
        while self.waiting > MAX_IDLE && self.close_oldest_waiting() {}
    }

    /// Closes the connection that has waited longest for a head; false if none waits.
    fn close_oldest_waiting(&mut self) -> bool {
        let oldest = self
            .conns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c.as_ref()?.phase {
                Phase::Head { since } => Some((since, i)),
                _ => None,
            })
            .min();
        match oldest {
            Some((_, i)) => {
                self.close(i);
                true
            }
            None => false,
        }
    }

    fn set_phase(&mut self, i: usize, phase: Phase, limit: Duration) {
        let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        let (waiting, writing) = counts(&conn.phase);
        let (now_waiting, now_writing) = counts(&phase);
        self.waiting = self.waiting - waiting + now_waiting;
        self.writing = self.writing - writing + now_writing;
        conn.phase = phase;
        conn.deadline = Instant::now() + limit;
        self.sweep_at = Some(
            self.sweep_at
                .map_or(conn.deadline, |t| t.min(conn.deadline)),
        );
    }

    fn close(&mut self, i: usize) {
        if let Some(conn) = self.conns.get_mut(i).and_then(Option::take) {
            let (waiting, writing) = counts(&conn.phase);
            self.waiting -= waiting;
            self.writing -= writing;
            self.open -= 1;
            self.free.push(i);
        }
    }

    /// Closes the connections past their deadline; the next sweep is at the earliest left.
    fn sweep(&mut self, now: Instant) {
        self.sweep_at = None;
        for i in 0..self.conns.len() {
            let Some(deadline) = self.conns[i].as_ref().map(|c| c.deadline) else {
                continue;
            };
            if deadline <= now {
                self.close(i);
            } else {
                self.sweep_at = Some(self.sweep_at.map_or(deadline, |t| t.min(deadline)));
            }
        }
    }

    /// On stopping: no new connections, none waiting; true once no answer is in flight.
    fn stop(&mut self) -> bool {
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        for i in 0..self.conns.len() {
            let idle = self.conns[i]
                .as_ref()
                .is_some_and(|c| !matches!(c.phase, Phase::Write { .. }));
            if idle {
                self.close(i);
            }
        }
        self.writing == 0
    }
}

/// `--healthcheck`: GET `/health` on the running exporter; true on `200`.
pub fn check_health(addr: SocketAddr) -> bool {
    let timeout = Duration::from_secs(3);
    let Ok(mut stream) = StdStream::connect_timeout(&addr, timeout) else {
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

    /// Answers `GET /` with 32 KiB (more than one socket write may take), anything else 404.
    fn handler(request: &Request, _: &State) -> Response {
        match request.path.as_str() {
            "/" => Response {
                status: 200,
                content_type: "text/plain",
                body: Box::new(vec![b'x'; 32 * 1024]),
                allow: None,
            },
            _ => Response::text(404, "not found\n"),
        }
    }

    fn server() -> (SocketAddr, Arc<State>, Server) {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::new(Duration::from_secs(60), false));
        let server = spawn(listener, Arc::clone(&state), handler).unwrap();
        (addr, state, server)
    }

    /// Sends `request` and reads answers until `count` have arrived or the server closes.
    fn exchange(addr: SocketAddr, request: &[u8], count: usize) -> (Vec<u16>, bool) {
        let mut stream = StdStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(request).unwrap();
        let mut raw = Vec::new();
        let mut chunk = [0u8; 65536];
        let mut statuses = Vec::new();
        let closed = loop {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => break true,
                Ok(n) => raw.extend_from_slice(&chunk[..n]),
            }
            // Split complete answers off the front.
            while let Some(end) = message::find_head_end(&raw) {
                let head = String::from_utf8_lossy(&raw[..end]).into_owned();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap();
                let body = if head.starts_with("HTTP/1.1 200") && request.starts_with(b"HEAD") {
                    0
                } else {
                    length
                };
                if raw.len() < end + body {
                    break;
                }
                statuses.push(head[9..12].parse().unwrap());
                raw.drain(..end + body);
            }
            if statuses.len() >= count {
                break false;
            }
        };
        (statuses, closed)
    }

    #[test]
    fn keep_alive_answers_pipelined_requests_in_order() {
        let (addr, _, _server) = server();
        let two = b"GET / HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\n";
        assert_eq!(exchange(addr, two, 3), (vec![200, 404, 200], false));
    }

    #[test]
    fn a_head_of_the_limit_is_served_and_one_byte_more_gets_431() {
        let (addr, _, _server) = server();
        let head = |size: usize| {
            let fixed = "GET / HTTP/1.1\r\nX-Pad: \r\n\r\n".len();
            format!(
                "GET / HTTP/1.1\r\nX-Pad: {}\r\n\r\n",
                "a".repeat(size - fixed)
            )
        };
        assert_eq!(exchange(addr, head(MAX_HEAD).as_bytes(), 1).0, [200]);
        for size in [MAX_HEAD + 1, MAX_HEAD + 1000, 64 * 1024] {
            assert_eq!(
                exchange(addr, head(size).as_bytes(), 2),
                (vec![431], true),
                "{size}"
            );
        }
    }

    #[test]
    fn small_bodies_are_dropped_and_large_or_chunked_ones_refused() {
        let (addr, _, _server) = server();
        let body = "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n";
        assert_eq!(exchange(addr, body.as_bytes(), 2).0, [200, 200]);
        let large = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            64 * 1024 + 1
        );
        assert_eq!(exchange(addr, large.as_bytes(), 2), (vec![413], true));
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(exchange(addr, chunked, 2), (vec![413], true));
        assert_eq!(
            exchange(addr, b"\x16\x03\x01\r\n\r\n", 2),
            (vec![400], true)
        );
    }

    #[test]
    fn head_requests_get_no_body_and_http_1_0_is_closed_after_the_answer() {
        let (addr, _, _server) = server();
        assert_eq!(
            exchange(addr, b"HEAD / HTTP/1.1\r\n\r\n", 1),
            (vec![200], false)
        );
        assert_eq!(exchange(addr, b"GET / HTTP/1.0\r\n\r\n", 1).0, [200]);
        let (_, closed) = exchange(addr, b"GET / HTTP/1.0\r\n\r\n", 2);
        assert!(closed, "HTTP/1.0 without keep-alive is closed");
    }

    #[test]
    fn more_than_max_idle_waiting_connections_close_the_oldest() {
        let (addr, _, _server) = server();
        let idle: Vec<StdStream> = (0..MAX_IDLE + 10)
            .map(|_| StdStream::connect(addr).unwrap())
            .collect();
        // A real client is still served.
        assert_eq!(
            exchange(addr, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 1).0,
            [200]
        );
        thread::sleep(Duration::from_millis(100));
        let mut byte = [0u8; 1];
        let closed = idle
            .iter()
            .map(|s| {
                s.set_nonblocking(true).unwrap();
                matches!(s.peek(&mut byte), Ok(0))
            })
            .collect::<Vec<bool>>();
        // The oldest were closed (the 10 beyond the cap, and one more for the real client while
        // it waited for its head); the newest still wait.
        assert!(closed[..11].iter().all(|&c| c), "{closed:?}");
        assert!(closed[11..].iter().all(|&c| !c), "{closed:?}");
    }

    #[test]
    fn stop_ends_the_thread_and_refuses_new_connections() {
        let (addr, state, server) = server();
        let idle = StdStream::connect(addr).unwrap();
        assert_eq!(exchange(addr, b"GET / HTTP/1.1\r\n\r\n", 1).0, [200]);
        state.stop();
        let started = Instant::now();
        server.stop(started + Duration::from_secs(2));
        assert!(started.elapsed() < Duration::from_millis(500));
        let mut byte = [0u8; 1];
        idle.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        assert!(
            matches!((&idle).read(&mut byte), Ok(0)),
            "a waiting connection is closed"
        );
        assert!(StdStream::connect(addr).is_err(), "the listener is closed");
    }
}
