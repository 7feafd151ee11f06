//! A fake HTTP server for the sources' tests, on a Unix socket or on loopback TCP: it reads each
//! request head, records the request target, and writes what `answer` returns for it (raw bytes,
//! so tests can send chunked, truncated or oversized answers), or holds the connection open
//! without answering when `answer` returns `None`. An answer of HTTP/1.0 or with `Connection:
//! close` closes the connection after it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

type Answer = dyn Fn(&str) -> Option<Vec<u8>> + Send + Sync;

/// A running fake server; its socket file is removed on drop.
pub struct Fake {
    /// The Unix socket, or `None` for TCP.
    pub socket: Option<PathBuf>,
    /// `127.0.0.1:port` for TCP.
    pub authority: String,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Fake {
    /// On a fresh Unix socket.
    pub fn unix(answer: impl Fn(&str) -> Option<Vec<u8>> + Send + Sync + 'static) -> Fake {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "ece-fake-{}-{}.sock",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).expect("bind a Unix socket");
        let heads = accept(move || listener.accept().map(|(s, _)| s), answer);
        Fake {
            socket: Some(path),
            authority: String::new(),
            heads,
        }
    }

    /// On a free port of 127.0.0.1.
    pub fn tcp(answer: impl Fn(&str) -> Option<Vec<u8>> + Send + Sync + 'static) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let authority = listener.local_addr().expect("local address").to_string();
        let heads = accept(move || listener.accept().map(|(s, _)| s), answer);
        Fake {
            socket: None,
            authority,
            heads,
        }
    }

    /// The request heads received since the last call.
    pub fn heads(&self) -> Vec<String> {
        std::mem::take(&mut *self.heads.lock().unwrap())
    }

    /// The request targets received since the last call.
    pub fn targets(&self) -> Vec<String> {
        self.heads()
            .iter()
            .map(|h| h.split(' ').nth(1).unwrap_or("").to_owned())
            .collect()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        if let Some(path) = &self.socket {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Serves every connection `next` accepts, each on a thread of its own; returns where the
/// request heads are recorded.
fn accept<S: Read + Write + Send + 'static>(
    mut next: impl FnMut() -> std::io::Result<S> + Send + 'static,
    answer: impl Fn(&str) -> Option<Vec<u8>> + Send + Sync + 'static,
) -> Arc<Mutex<Vec<String>>> {
    let heads = Arc::new(Mutex::new(Vec::new()));
    let (answer, log) = (Arc::new(answer) as Arc<Answer>, Arc::clone(&heads));
    thread::spawn(move || {
        while let Ok(stream) = next() {
            let (answer, log) = (Arc::clone(&answer), Arc::clone(&log));
            thread::spawn(move || serve(stream, &*answer, &log));
        }
    });
    heads
}

/// Answers the requests of one connection until the client closes it.
fn serve<S: Read + Write>(stream: S, answer: &Answer, heads: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => head.push_str(&line),
            }
            if line == "\r\n" {
                break;
            }
        }
        let target = head.split(' ').nth(1).unwrap_or("").to_owned();
        heads.lock().unwrap().push(head);
        match answer(&target) {
            Some(bytes) => {
                let head = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).to_lowercase();
                let closes = head.starts_with("http/1.0") || head.contains("connection: close");
                if reader.get_mut().write_all(&bytes).is_err() || closes {
                    return;
                }
            }
            None => {
                thread::sleep(Duration::from_millis(800));
                return;
            }
        }
    }
}

/// A whole response of `status` with a JSON `body`, kept alive.
pub fn json(status: u16, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
