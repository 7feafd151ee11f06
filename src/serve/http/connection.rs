//! One connection as a state machine: read a request head (and drop a small body), answer it
//! through the handler, write the answer as the socket takes it, then wait for the next request
//! or linger and close. Each [`Conn::step`] reads or writes only what the socket has room for and
//! says what the loop does next: step again, wait for the socket, or close.
//!
//! Out of scope: accepting, the bounds across connections, deadlines (`http.rs`); parsing
//! (`message.rs`).

use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use super::message::{self, HeadError, Request, Response};
use super::{LINGER, LINGER_BYTES, Limits};

/// What the loop does with a connection after a step.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// Its phase changed: step it again now.
    Again,
    /// Nothing more until the socket is ready for this.
    Wait(Interest),
    /// Close it.
    Close,
}

/// What the loop lends a connection for one step.
pub(super) struct Context<'a> {
    pub(super) limits: &'a Limits,
    pub(super) handler: &'a super::Handler,
    /// Where every read lands first (the loop's one buffer).
    pub(super) scratch: &'a mut [u8],
    /// The server is stopping: answer with `Connection: close`, and close after it.
    pub(super) stopping: bool,
}

/// Where a connection is.
pub(super) enum Phase {
    /// Waiting for (the rest of) a request head.
    Head,
    /// Reading and dropping `left` more bytes of a request body, then answering it.
    Body { left: usize, request: Request },
    /// Writing an answer.
    Write(Answer),
    /// The answer is out and the write side shut; reading what the peer still sends, then close.
    Linger { read: usize },
}

impl Phase {
    /// (waiting for a head, writing an answer): what the loop counts.
    pub(super) fn counts(&self) -> (usize, usize) {
        match self {
            Phase::Head => (1, 0),
            Phase::Write(_) => (0, 1),
            _ => (0, 0),
        }
    }
}

/// An answer being written: `written` bytes of the head, then of the body.
pub(super) struct Answer {
    head: Vec<u8>,
    body: Box<dyn AsRef<[u8]> + Send>,
    with_body: bool,
    written: usize,
    keep_alive: bool,
    /// After it, read what the peer still sends before closing (an error answer: the request
    /// may not have been read whole).
    linger: bool,
}

impl Answer {
    fn new(response: Response, with_body: bool, keep_alive: bool, linger: bool) -> Answer {
        Answer {
            head: response.head(keep_alive).into_bytes(),
            body: response.body,
            with_body,
            written: 0,
            keep_alive,
            linger,
        }
    }

    /// The answer to a whole request, through the handler.
    fn to(request: &Request, cx: &Context) -> Answer {
        let response = (cx.handler)(request);
        // A 405 has a body even for HEAD.
        let with_body = request.method != "HEAD" || response.status == 405;
        Answer::new(
            response,
            with_body,
            request.keep_alive && !cx.stopping,
            false,
        )
    }

    /// An error answer; the connection is closed after it.
    fn reject(status: u16, text: &'static str) -> Answer {
        Answer::new(Response::text(status, text), true, false, true)
    }
}

/// What a phase's step leads to.
enum Next {
    /// Stay in this phase; the loop does this.
    Stay(Step),
    /// Enter this phase (with its time limit), then the loop does this.
    Enter(Phase, Duration, Step),
}

/// One connection: its socket, the bytes read and not yet used, and where it is.
pub(super) struct Conn {
    stream: TcpStream,
    /// Bytes read and not yet used: a head in progress, pipelined requests.
    buffer: Vec<u8>,
    /// The peer's FIN has come (an event said so, or a read returned 0): nothing comes after
    /// what the socket holds, and a short read no longer means it is empty.
    pub(super) fin: bool,
    pub(super) phase: Phase,
    /// When the phase ends, done or not.
    pub(super) deadline: Instant,
    /// The events it is registered for: none until it has to wait (a connection whose request
    /// is there when it is accepted is answered and closed without ever being registered).
    interest: Option<Interest>,
}

impl Conn {
    /// A new connection, waiting for its first head for at most `head_timeout`.
    pub(super) fn new(stream: TcpStream, head_timeout: Duration) -> Conn {
        Conn {
            stream,
            buffer: Vec::new(),
            fin: false,
            phase: Phase::Head,
            deadline: Instant::now() + head_timeout,
            interest: None,
        }
    }

    /// Moves on as far as the socket allows without blocking, by one phase at most.
    pub(super) fn step(&mut self, cx: &mut Context) -> Step {
        let Conn {
            stream,
            buffer,
            fin,
            phase,
            ..
        } = self;
        let mut socket = Socket {
            stream,
            buffer,
            fin,
        };
        let next = match phase {
            Phase::Head => read_head(&mut socket, cx),
            Phase::Body { left, request } => read_body(&mut socket, left, request, cx),
            Phase::Write(answer) => write(&mut socket, answer, cx),
            Phase::Linger { read } => linger(&mut socket, read, cx),
        };
        match next {
            Next::Stay(step) => step,
            Next::Enter(phase, limit, step) => {
                self.phase = phase;
                self.deadline = Instant::now() + limit;
                step
            }
        }
    }

    /// Registers for `interest` (or changes the registration) unless it is so already.
    pub(super) fn want(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        match self.interest {
            Some(now) if now == interest => return Ok(()),
            Some(_) => registry.reregister(&mut self.stream, token, interest)?,
            None => registry.register(&mut self.stream, token, interest)?,
        }
        self.interest = Some(interest);
        Ok(())
    }

    /// Answers `503` to a connection beyond the cap (as far as the socket takes it), then drops it.
    pub(super) fn refuse(mut stream: TcpStream) {
        let _ = stream.write(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\nRetry-After: 1\r\n\r\n",
        );
    }
}

/// A connection's socket and what has been read from it, lent to one phase's step.
struct Socket<'a> {
    stream: &'a mut TcpStream,
    buffer: &'a mut Vec<u8>,
    fin: &'a mut bool,
}

impl Socket<'_> {
    /// Reads what the socket has (through `chunk`, the loop's one read buffer), until it would
    /// block or the buffer passes `limit`; true when the peer has closed (or the connection
    /// failed): nothing more will come.
    fn fill(&mut self, limit: usize, chunk: &mut [u8]) -> bool {
        loop {
            match self.stream.read(chunk) {
                Ok(0) => break,
                Ok(n) => {
                    self.buffer.extend_from_slice(&chunk[..n]);
                    // A short read emptied the socket: more data raises a new event. A FIN
                    // that came with the data raises none, so after one (seen on the event)
                    // reading goes on to it.
                    if (n < chunk.len() && !*self.fin) || self.buffer.len() > limit {
                        return false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        *self.fin = true;
        true
    }
}

/// Reads a head; on a whole one, answers it (or starts dropping its body).
fn read_head(socket: &mut Socket, cx: &mut Context) -> Next {
    let limits = cx.limits;
    let mut eof = false;
    if message::find_head_end(socket.buffer).is_none() {
        eof = socket.fill(limits.head_size, cx.scratch);
    }
    let buffer = &mut *socket.buffer;
    let Some(end) = message::find_head_end(buffer) else {
        if buffer.len() > limits.head_size {
            return reject(431, "request head too large\n", limits);
        }
        return Next::Stay(if eof {
            Step::Close
        } else {
            Step::Wait(Interest::READABLE)
        });
    };
    if end > limits.head_size {
        return reject(431, "request head too large\n", limits);
    }
    let parsed = message::parse(&buffer[..end]);
    buffer.drain(..end);
    let request = match parsed {
        Ok(request) => request,
        Err(HeadError::Malformed) => return reject(400, "bad request\n", limits),
    };
    if request.chunked || request.content_length > limits.body_size {
        return reject(413, "request body too large\n", limits);
    }
    match request.content_length {
        0 => answer(Answer::to(&request, cx), limits),
        left => Next::Enter(
            Phase::Body { left, request },
            limits.head_timeout,
            Step::Again,
        ),
    }
}

/// Drops the body of a request, then answers it.
fn read_body(socket: &mut Socket, left: &mut usize, request: &Request, cx: &mut Context) -> Next {
    let dropped = (*left).min(socket.buffer.len());
    socket.buffer.drain(..dropped);
    *left -= dropped;
    if *left == 0 {
        return answer(Answer::to(request, cx), cx.limits);
    }
    let eof = socket.fill(cx.limits.body_size, cx.scratch);
    Next::Stay(if !socket.buffer.is_empty() {
        Step::Again
    } else if eof {
        Step::Close
    } else {
        Step::Wait(Interest::READABLE)
    })
}

fn answer(answer: Answer, limits: &Limits) -> Next {
    Next::Enter(Phase::Write(answer), limits.write_timeout, Step::Again)
}

fn reject(status: u16, text: &'static str, limits: &Limits) -> Next {
    answer(Answer::reject(status, text), limits)
}

/// Writes what it can of the answer; when it is out, waits for the next request or closes.
fn write(socket: &mut Socket, answer: &mut Answer, cx: &Context) -> Next {
    let body: &[u8] = if answer.with_body {
        (*answer.body).as_ref()
    } else {
        &[]
    };
    match flush(socket.stream, &answer.head, body, &mut answer.written) {
        Err(_) => return Next::Stay(Step::Close),
        Ok(false) => return Next::Stay(Step::Wait(Interest::READABLE | Interest::WRITABLE)),
        Ok(true) => {}
    }
    if cx.stopping {
        return Next::Stay(Step::Close);
    }
    let pending = !socket.buffer.is_empty();
    if answer.keep_alive {
        // Pipelined requests are answered now, and after a FIN what is left is read now (then
        // the connection closes); otherwise the next request raises an event (the last read
        // emptied the socket).
        let then = if pending || *socket.fin {
            Step::Again
        } else {
            Step::Wait(Interest::READABLE)
        };
        return Next::Enter(Phase::Head, cx.limits.head_timeout, then);
    }
    // Closing with unread bytes would reset the connection and could eat the answer: close at
    // once only when the peer has sent nothing more, else read it for a while first.
    if !answer.linger && !pending {
        match socket.stream.read(&mut [0u8; 1]) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Next::Stay(Step::Close),
            Ok(0) | Err(_) => return Next::Stay(Step::Close),
            Ok(_) => {}
        }
    }
    let _ = socket.stream.shutdown(Shutdown::Write);
    Next::Enter(Phase::Linger { read: 0 }, LINGER, Step::Again)
}

/// Reads and drops what the peer still sends after the last answer, up to a limit.
fn linger(socket: &mut Socket, read: &mut usize, cx: &mut Context) -> Next {
    let eof = socket.fill(LINGER_BYTES, cx.scratch);
    *read += socket.buffer.len();
    socket.buffer.clear();
    Next::Stay(if eof || *read >= LINGER_BYTES {
        Step::Close
    } else {
        Step::Wait(Interest::READABLE)
    })
}

/// Writes `head` then `body` from `written` on; true when all is out, false when the socket is
/// full.
fn flush(
    stream: &mut TcpStream,
    head: &[u8],
    body: &[u8],
    written: &mut usize,
) -> io::Result<bool> {
    let total = head.len() + body.len();
    while *written < total {
        let slices = if *written < head.len() {
            [IoSlice::new(&head[*written..]), IoSlice::new(body)]
        } else {
            [
                IoSlice::new(&body[*written - head.len()..]),
                IoSlice::new(&[]),
            ]
        };
        match stream.write_vectored(&slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => *written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}
