//! A small bounded HTTP/1.1 server that knows nothing of what it serves: one thread, an event
//! loop (mio: epoll) over non-blocking sockets. Each request head is parsed into a [`Request`],
//! handed to the handler (any `Fn(&Request) -> Response`), and its [`Response`] written. It is
//! built from a listener, [`Limits`] and the handler ([`spawn`]), and stopped through the
//! [`Server`] it returns.
//!
//! Why not tiny_http (the design card's choice): tiny_http 0.12 stops accepting for good on the
//! first `accept` error (EMFILE under a connection flood ends the server), gives every connection
//! a thread with no limit, and sets no read timeout, so one idle client holds a thread forever.
//! Why one thread: the answer is bytes the poller rendered, so serving costs only the system
//! calls; a thread per connection cost more than the answer (its stack, `clone`, signal masks:
//! half the system calls of a new-connection scrape). One thread, created at start, serves every
//! connection, so the thread count is constant under any load. The bounds ([`Limits`]):
//!
//! - at most `connections` at once; beyond that a new one gets `503`;
//! - at most `waiting` connections may wait for a request head (new, keep-alive between
//!   requests, or trickling): beyond that the oldest waiting one is closed, so idle or slowloris
//!   clients cannot crowd out a real client, which sends its request at once;
//! - a request head must arrive whole within `head_timeout` (a trickle cannot reset it) and be at
//!   most `head_size` bytes (else `431`); an idle keep-alive connection is closed after the same
//!   time; a request body of up to `body_size` is read and dropped, a larger or chunked one gets
//!   `413` and a close; anything unparsable gets `400` and a close; an answer not taken within
//!   `write_timeout` is dropped;
//! - an `accept` error is never fatal: out of file descriptors, the oldest waiting connection is
//!   closed to make room, or, with none waiting, accepting pauses for 20 ms.
//!
//! On [`Server::stop`] it stops accepting, closes the connections that wait, finishes the
//! answers being written (with `Connection: close`), and ends its thread.
//!
//! Out of scope: what the paths answer (the handler: `routes.rs`), one connection's life
//! (`http/connection.rs`), parsing (`http/message.rs`).

mod connection;
mod message;

pub use message::{Request, Response};

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use connection::{Conn, Context, Phase, Step};

/// The server's bounds. `Limits::default()` is what the exporter serves with; tests shrink the
/// times to milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; more are answered `503`.
    pub connections: usize,
    /// Connections waiting for a request head; beyond this the oldest waiting one is closed.
    pub waiting: usize,
    /// The largest request head (request line and headers); a larger one gets `431`.
    pub head_size: usize,
    /// The longest a request head may take to arrive, and a connection may sit idle.
    pub head_timeout: Duration,
    /// The largest request body read and dropped to keep the connection; a larger one gets `413`.
    pub body_size: usize,
    /// The longest an answer may take to be taken by the client.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            connections: 1024,
            waiting: 64,
            head_size: 8 * 1024,
            head_timeout: Duration::from_secs(10),
            body_size: 64 * 1024,
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// After an answer with `Connection: close`: how long, and how much, to read what the peer still
/// sends, so that unread bytes do not turn the close into a reset that eats the answer.
const LINGER: Duration = Duration::from_millis(200);
const LINGER_BYTES: usize = 64 * 1024;
/// How long accepting pauses when it fails with no waiting connection to close.
const ACCEPT_PAUSE: Duration = Duration::from_millis(20);

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX);

/// What answers a request.
type Handler = dyn Fn(&Request) -> Response + Send;

/// Binds the listening socket (before any thread starts, so a bad address fails at once).
pub fn bind(addr: SocketAddr) -> io::Result<StdListener> {
    StdListener::bind(addr)
}

/// The running server: stop it with [`Server::stop`]. Dropping it stops it too, without waiting.
pub struct Server {
    stop: Arc<AtomicBool>,
    waker: Waker,
    /// `None` once joined.
    thread: Option<thread::JoinHandle<()>>,
}

impl Server {
    /// Makes the server stop and waits until its answers in flight are written (or `deadline`
    /// passes); true when its thread has ended, and without a panic.
    pub fn stop(mut self, deadline: Instant) -> bool {
        self.signal();
        let Some(thread) = self.thread.take() else {
            return false;
        };
        while !thread.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(2));
        }
        thread.is_finished() && thread.join().is_ok()
    }

    fn signal(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Err(e) = self.waker.wake() {
            log::debug!("waking the HTTP thread: {e}");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.signal();
    }
}

/// Starts the HTTP thread on `listener`; every request is answered by `handler`.
pub fn spawn(
    listener: StdListener,
    limits: Limits,
    handler: impl Fn(&Request) -> Response + Send + 'static,
) -> io::Result<Server> {
    listener.set_nonblocking(true)?;
    let poll = Poll::new()?;
    let waker = Waker::new(poll.registry(), WAKER)?;
    let mut listener = TcpListener::from_std(listener);
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut server = Loop {
        poll,
        listener: Some(listener),
        conns: Vec::new(),
        free: Vec::new(),
        freed: Vec::new(),
        open: 0,
        waiting: 0,
        writing: 0,
        accept_at: None,
        sweep_at: None,
        error_logged: None,
        scratch: vec![0; 4096].into_boxed_slice(),
        limits,
        handler: Box::new(handler),
        stop: Arc::clone(&stop),
        stopping: false,
    };
    let thread = thread::Builder::new()
        .name("http".into())
        .spawn(move || server.run())?;
    Ok(Server {
        stop,
        waker,
        thread: Some(thread),
    })
}

struct Loop {
    poll: Poll,
    /// `None` once stopping.
    listener: Option<TcpListener>,
    /// Connections by token.
    conns: Vec<Option<Conn>>,
    /// Tokens free for new connections, and those freed since the last poll.
    free: Vec<usize>,
    freed: Vec<usize>,
    open: usize,
    /// Connections in `Phase::Head`.
    waiting: usize,
    /// Connections in `Phase::Write`: answers in flight.
    writing: usize,
    /// Accept again then (after running out of descriptors).
    accept_at: Option<Instant>,
    /// Look for connections past their deadline then (the earliest deadline known).
    sweep_at: Option<Instant>,
    error_logged: Option<Instant>,
    /// Where every read lands first (allocated once: no 4 KiB to clear per read).
    scratch: Box<[u8]>,
    limits: Limits,
    handler: Box<Handler>,
    /// Set by [`Server::stop`]; `stopping` once the loop has seen it.
    stop: Arc<AtomicBool>,
    stopping: bool,
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
                    WAKER => self.stopping = self.stop.load(Ordering::SeqCst),
                    LISTENER => self.accept(),
                    Token(i) => {
                        if event.is_read_closed() {
                            self.saw_fin(i);
                        }
                        self.drive(i);
                    }
                }
            }
            // Slots closed in this batch are reused from the next one on, so that no event of
            // this batch reaches a new connection.
            self.free.append(&mut self.freed);
            let now = Instant::now();
            if self.accept_at.is_some_and(|t| t <= now) {
                self.accept_at = None;
                self.accept();
            }
            if self.sweep_at.is_some_and(|t| t <= now) {
                self.sweep(now);
            }
            if self.stopping && self.shut() {
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

    /// Takes a new connection: it waits for a head (counted among the waiting at once, so a
    /// flood closes the oldest), and is answered now if its request is there.
    fn add(&mut self, stream: TcpStream) {
        if self.open >= self.limits.connections {
            return Conn::refuse(stream);
        }
        let conn = Conn::new(stream, self.limits.head_timeout);
        self.sweep_by(conn.deadline);
        let i = self.free.pop().unwrap_or(self.conns.len());
        if i == self.conns.len() {
            self.conns.push(Some(conn));
        } else {
            self.conns[i] = Some(conn);
        }
        self.open += 1;
        self.waiting += 1;
        self.cap_waiting();
        self.drive(i);
    }

    /// Connection `i`'s peer has sent its FIN (the event says so: no other event will).
    fn saw_fin(&mut self, i: usize) {
        if let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) {
            conn.fin = true;
        }
    }

    /// Steps connection `i` until it has to wait or is closed.
    fn drive(&mut self, i: usize) {
        loop {
            let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else {
                return;
            };
            let before = conn.phase.counts();
            let mut cx = Context {
                limits: &self.limits,
                handler: &*self.handler,
                scratch: &mut self.scratch,
                stopping: self.stopping,
            };
            let step = conn.step(&mut cx);
            let (after, deadline) = (conn.phase.counts(), conn.deadline);
            self.sweep_by(deadline);
            if before != after {
                self.waiting = self.waiting - before.0 + after.0;
                self.writing = self.writing - before.1 + after.1;
                if after.0 > before.0 {
                    self.cap_waiting();
                }
            }
            match step {
                Step::Again => {}
                Step::Wait(interest) => {
                    let registry = self.poll.registry();
                    let registered = self.conns[i]
                        .as_mut()
                        .map(|c| c.want(registry, Token(i), interest));
                    if let Some(Err(_)) = registered {
                        self.close(i);
                    }
                    return;
                }
                Step::Close => return self.close(i),
            }
        }
    }

    /// Sweeps at `deadline` if nothing earlier is due.
    fn sweep_by(&mut self, deadline: Instant) {
        self.sweep_at = Some(self.sweep_at.map_or(deadline, |t| t.min(deadline)));
    }

    /// Closes the oldest waiting connections beyond the cap.
    fn cap_waiting(&mut self) {
        while self.waiting > self.limits.waiting && self.close_oldest_waiting() {}
    }

    /// Closes the connection that has waited longest for a head (the one nearest its head
    /// deadline); false if none waits.
    fn close_oldest_waiting(&mut self) -> bool {
        let oldest = self
            .conns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let c = c.as_ref()?;
                matches!(c.phase, Phase::Head).then_some((c.deadline, i))
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

    fn close(&mut self, i: usize) {
        if let Some(conn) = self.conns.get_mut(i).and_then(Option::take) {
            let (waiting, writing) = conn.phase.counts();
            self.waiting -= waiting;
            self.writing -= writing;
            self.open -= 1;
            self.freed.push(i);
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
                self.sweep_by(deadline);
            }
        }
    }

    /// On stopping: no new connections, none waiting; true once no answer is in flight.
    fn shut(&mut self) -> bool {
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        for i in 0..self.conns.len() {
            let idle = self.conns[i]
                .as_ref()
                .is_some_and(|c| !matches!(c.phase, Phase::Write(_)));
            if idle {
                self.close(i);
            }
        }
        self.writing == 0
    }
}

/// GET `path` on a running server (the `--healthcheck`): its status, if it answers within 3 s.
pub fn probe(addr: SocketAddr, path: &str) -> Option<u16> {
    let timeout = Duration::from_secs(3);
    let mut stream = StdStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut status = [0u8; 12];
    stream.read_exact(&mut status).ok()?;
    std::str::from_utf8(&status[9..12]).ok()?.parse().ok()
}
