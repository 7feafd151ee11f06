//! One connection's life in the server's loop: read a request head (and drop a small body),
//! answer it through the handler, write the answer as the socket takes it, then wait for the
//! next request or linger and close. Every step reads or writes only what the socket has room
//! for and returns; the loop calls again on the next event.
//!
//! Out of scope: accepting, the bounds across connections, deadlines (`http.rs`).

use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Interest, Token};

use super::message::{self, HeadError, Request, Response};
use super::{HEAD_TIMEOUT, LINGER, LINGER_BYTES, Loop, MAX_DRAINED_BODY, MAX_HEAD, WRITE_TIMEOUT};

/// Where a connection is.
pub(super) enum Phase {
    /// Waiting for (the rest of) a request head; `since` orders the waiting connections.
    Head { since: u64 },
    /// Reading and dropping `left` more bytes of a request body, then answering it.
    Body { left: usize, request: Request },
    /// Writing an answer: `written` bytes of the head, then of the body.
    Write {
        head: Vec<u8>,
        body: Box<dyn AsRef<[u8]> + Send>,
        with_body: bool,
        written: usize,
        keep_alive: bool,
        /// After it, read what the peer still sends before closing (an error answer: the
        /// request may not have been read whole).
        linger: bool,
    },
    /// The answer is out and the write side shut; reading what the peer still sends, then close.
    Linger { read: usize },
}

pub(super) struct Conn {
    pub(super) stream: TcpStream,
    /// Bytes read and not yet used: a head in progress, pipelined requests.
    pub(super) buffer: Vec<u8>,
    pub(super) phase: Phase,
    /// When the phase ends, done or not.
    pub(super) deadline: Instant,
    /// The events it is registered for: none until it has to wait (a connection whose request
    /// is there when it is accepted is answered and closed without ever being registered).
    pub(super) interest: Option<Interest>,
}

/// What to do with a connection after driving it.
pub(super) enum Next {
    Keep,
    Close,
}

impl Loop {
    /// Moves connection `i` on as far as it goes without blocking.
    pub(super) fn drive(&mut self, i: usize) {
        loop {
            let next = match self.conns.get(i).and_then(Option::as_ref).map(|c| &c.phase) {
                None => return,
                Some(Phase::Head { .. }) => self.read_head(i),
                Some(Phase::Body { .. }) => self.read_body(i),
                Some(Phase::Write { .. }) => self.write(i),
                Some(Phase::Linger { .. }) => self.linger(i),
            };
            match next {
                Ok(true) => {}
                Ok(false) => return,
                Err(Next::Close) => return self.close(i),
                Err(Next::Keep) => return,
            }
        }
    }

    /// Reads a head; on a whole one, answers it. Ok(true): the phase changed, drive on.
    fn read_head(&mut self, i: usize) -> Result<bool, Next> {
        let (conn, scratch) = self.conn_and_scratch(i)?;
        let mut eof = false;
        if message::find_head_end(&conn.buffer).is_none() {
            eof = fill(&mut conn.stream, &mut conn.buffer, MAX_HEAD, scratch);
        }
        if let Some(end) = message::find_head_end(&conn.buffer) {
            return self.answer_head(i, end);
        }
        if conn.buffer.len() > MAX_HEAD {
            self.reject(i, 431, "request head too large\n");
            return Ok(true);
        }
        if eof { Err(Next::Close) } else { Ok(false) }
    }

    fn answer_head(&mut self, i: usize, end: usize) -> Result<bool, Next> {
        if end > MAX_HEAD {
            self.reject(i, 431, "request head too large\n");
            return Ok(true);
        }
        let conn = self.conn(i)?;
        let parsed = message::parse(&conn.buffer[..end]);
        conn.buffer.drain(..end);
        let request = match parsed {
            Ok(request) => request,
            Err(HeadError::Malformed) => {
                self.reject(i, 400, "bad request\n");
                return Ok(true);
            }
        };
        if request.chunked || request.content_length > MAX_DRAINED_BODY {
            self.reject(i, 413, "request body too large\n");
            return Ok(true);
        }
        match request.content_length {
            0 => self.answer(i, &request),
            left => self.set_phase(i, Phase::Body { left, request }, HEAD_TIMEOUT),
        }
        Ok(true)
    }

    /// Drops the body of a request, then answers it.
    fn read_body(&mut self, i: usize) -> Result<bool, Next> {
        let (conn, scratch) = self.conn_and_scratch(i)?;
        let Phase::Body { left, .. } = &mut conn.phase else {
            return Err(Next::Keep);
        };
        let dropped = (*left).min(conn.buffer.len());
        conn.buffer.drain(..dropped);
        *left -= dropped;
        if *left > 0 {
            let eof = fill(
                &mut conn.stream,
                &mut conn.buffer,
                MAX_DRAINED_BODY,
                scratch,
            );
            return if eof {
                Err(Next::Close)
            } else {
                Ok(!conn.buffer.is_empty())
            };
        }
        let phase = std::mem::replace(&mut conn.phase, Phase::Linger { read: 0 });
        let Phase::Body { request, .. } = phase else {
            return Err(Next::Close);
        };
        self.answer(i, &request);
        Ok(true)
    }

    /// Answers a whole request through the handler.
    fn answer(&mut self, i: usize, request: &Request) {
        let response = (self.handler)(request, &self.state);
        let keep_alive = request.keep_alive && !self.state.stopping();
        // A 405 has a body even for HEAD.
        let with_body = request.method != "HEAD" || response.status == 405;
        self.write_phase(i, response, with_body, keep_alive, false);
    }

    /// Answers with an error and closes after it.
    fn reject(&mut self, i: usize, status: u16, text: &'static str) {
        self.write_phase(i, Response::text(status, text), true, false, true);
    }

    /// Starts writing `response`; `linger`: read what the peer still sends before closing.
    fn write_phase(
        &mut self,
        i: usize,
        response: Response,
        with_body: bool,
        keep_alive: bool,
        linger: bool,
    ) {
        let phase = Phase::Write {
            head: response.head(keep_alive).into_bytes(),
            body: response.body,
            with_body,
            written: 0,
            keep_alive,
            linger,
        };
        self.set_phase(i, phase, WRITE_TIMEOUT);
    }

    /// Registers connection `i` for `interest` (or changes its registration) unless it is so.
    pub(super) fn want(&mut self, i: usize, interest: Interest) -> Result<(), Next> {
        let registry = self.poll.registry();
        let conn = self
            .conns
            .get_mut(i)
            .and_then(Option::as_mut)
            .ok_or(Next::Keep)?;
        let done = match conn.interest {
            Some(now) if now == interest => return Ok(()),
            Some(_) => registry.reregister(&mut conn.stream, Token(i), interest),
            None => registry.register(&mut conn.stream, Token(i), interest),
        };
        done.map_err(|_| Next::Close)?;
        conn.interest = Some(interest);
        Ok(())
    }

    /// Writes what it can of the answer; when it is out, waits for the next request or closes.
    fn write(&mut self, i: usize) -> Result<bool, Next> {
        let conn = self.conn(i)?;
        let Phase::Write {
            head,
            body,
            with_body,
            written,
            keep_alive,
            linger,
        } = &mut conn.phase
        else {
            return Err(Next::Keep);
        };
        let body: &[u8] = if *with_body { (**body).as_ref() } else { &[] };
        let (keep_alive, linger) = (*keep_alive, *linger);
        match flush(&mut conn.stream, head, body, written) {
            Err(_) => return Err(Next::Close),
            Ok(false) => {
                self.want(i, Interest::READABLE | Interest::WRITABLE)?;
                return Ok(false);
            }
            Ok(true) => {}
        }
        if conn.interest.is_some_and(|i| i.is_writable()) {
            self.want(i, Interest::READABLE)?;
        }
        if self.state.stopping() {
            return Err(Next::Close);
        }
        if keep_alive {
            self.wait_for_head(i);
            // Pipelined requests are answered now; otherwise the next request raises an event
            // (the last read emptied the socket).
            return Ok(self.conn(i).is_ok_and(|c| !c.buffer.is_empty()));
        }
        // Closing with unread bytes would reset the connection and could eat the answer: close
        // at once only when the peer has sent nothing more, else read it for a while first.
        let conn = self.conn(i)?;
        if !linger && conn.buffer.is_empty() {
            match conn.stream.read(&mut [0u8; 1]) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(Next::Close),
                Ok(0) | Err(_) => return Err(Next::Close),
                Ok(_) => {}
            }
        }
        let _ = conn.stream.shutdown(Shutdown::Write);
        self.set_phase(i, Phase::Linger { read: 0 }, LINGER);
        Ok(true)
    }

    /// Reads and drops what the peer still sends after the last answer, up to a limit.
    fn linger(&mut self, i: usize) -> Result<bool, Next> {
        let (conn, scratch) = self.conn_and_scratch(i)?;
        let eof = fill(&mut conn.stream, &mut conn.buffer, LINGER_BYTES, scratch);
        let Phase::Linger { read } = &mut conn.phase else {
            return Err(Next::Keep);
        };
        *read += conn.buffer.len();
        conn.buffer.clear();
        if eof || *read >= LINGER_BYTES {
            Err(Next::Close)
        } else {
            Ok(false)
        }
    }

    /// Connection `i` and the loop's read buffer.
    fn conn_and_scratch(&mut self, i: usize) -> Result<(&mut Conn, &mut [u8]), Next> {
        let conn = self
            .conns
            .get_mut(i)
            .and_then(Option::as_mut)
            .ok_or(Next::Keep)?;
        Ok((conn, &mut self.scratch[..]))
    }

    fn conn(&mut self, i: usize) -> Result<&mut Conn, Next> {
        self.conns
            .get_mut(i)
            .and_then(Option::as_mut)
            .ok_or(Next::Keep)
    }
}

/// (waiting for a head, writing an answer) of a phase, for the counts.
pub(super) fn counts(phase: &Phase) -> (usize, usize) {
    match phase {
        Phase::Head { .. } => (1, 0),
        Phase::Write { .. } => (0, 1),
        _ => (0, 0),
    }
}

/// Reads what the socket has (through `chunk`, the loop's one read buffer), until it would block
/// or `buffer` passes `limit`; true when the peer has closed (or the connection failed).
fn fill(stream: &mut TcpStream, buffer: &mut Vec<u8>, limit: usize, chunk: &mut [u8]) -> bool {
    loop {
        match stream.read(chunk) {
            Ok(0) => return true,
            Ok(n) => {
                buffer.extend_from_slice(&chunk[..n]);
                // A short read emptied the socket; more data raises a new event.
                if n < chunk.len() || buffer.len() > limit {
                    return false;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
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
