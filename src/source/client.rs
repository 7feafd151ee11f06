//! The HTTP client of both sources: one configured ureq agent per source, reused; the one file
//! that names ureq.
//!
//! Plain HTTP (the remote-write build also has https for [`Client::http_or_https`], verified
//! against the bundled public roots), no proxy from the environment (the ECS endpoint is
//! link-local; an `HTTP_PROXY` meant for the app must not capture it), no redirects, one
//! timeout for the whole exchange from connect to the last body byte, and a 16 MiB cap on the
//! body. Every failure becomes a [`FetchError`] with the `reason` label it is counted under.
//!
//! Two transports: TCP (the ECS endpoint, a Docker `tcp://` address), where an IP-literal host is
//! answered without ureq's resolver (which starts a thread per lookup when a timeout is set), and
//! a Unix socket (Docker's `unix://`), through ureq's connector API. std has no connect timeout
//! for Unix sockets: a connect waits while the daemon's accept backlog is full (it fails at once
//! when nothing listens). The connector API is ureq's `unversioned` one, which may change in any
//! release: Cargo.toml pins ureq.
//!
//! Out of scope: what the bodies mean (`core`), which paths to ask and when (`ecs.rs`,
//! `docker.rs`, the poller).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ureq::Agent;
use ureq::config::{Config, ConfigBuilder};
use ureq::http::Uri;
use ureq::typestate::AgentScope;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, DefaultConnector, LazyBuffers, NextTimeout, Transport,
};

use crate::core::health::Reason;

#[cfg(feature = "remote-write")]
pub mod tls;

/// The TLS of every https request (the credentials endpoint, remote write): rustls with ring,
/// verified against the bundled public roots plus `extra` CA certificates, never skipped.
///
/// The provider is ring's with the AES-GCM suites only (TLS 1.3 and 1.2), not ChaCha20-Poly1305:
/// every receiver speaks AES-GCM, AWS's hosts have AES instructions, and leaving ChaCha20 out
/// keeps its code out of the binary.
/// An agent for `http://` and `https://` URLs (remote write, the credentials endpoint), with
/// the caller's settings.
#[cfg(feature = "remote-write")]
pub fn tls_agent(config: Config, tls: tls::Tls) -> Agent {
    use ureq::unversioned::transport::TcpConnector;
    let connector = ().chain(TcpConnector::default()).chain(tls::TlsConnector(tls));
    Agent::with_parts(config, connector, LiteralResolver::default())
}

/// The log targets of the HTTP client crates.
pub const LOG_TARGETS: [&str; 2] = ["ureq", "ureq_proto"];

/// The largest body read.
pub const BODY_LIMIT: u64 = 16 * 1024 * 1024;

/// A failed request, with the reason it is counted under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchError {
    pub reason: Reason,
    pub detail: String,
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.detail, self.reason.label())
    }
}

/// A response: its status and its whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// A client of one server: an agent and the base that paths are joined to.
pub struct Client {
    agent: Agent,
    /// `http://host[:port][/prefix]` without a trailing `/`; `http://docker` on a Unix socket.
    base: String,
    /// What errors call the server: the base URL, or `unix://<path>`.
    shown: String,
}

impl Client {
    /// A client of `http://host[:port][/prefix]`.
    pub fn http(base: &str, timeout: Duration) -> Client {
        Client::tcp(base, config(timeout).build())
    }

    fn tcp(base: &str, config: Config) -> Client {
        let base = base.trim_end_matches('/').to_owned();
        let agent = Agent::with_parts(
            config,
            DefaultConnector::default(),
            LiteralResolver::default(),
        );
        Client {
            agent,
            shown: base.clone(),
            base,
        }
    }

    /// A client of `http://` or `https://host[:port][/prefix]`: https is verified against the
    /// bundled public roots (webpki-root-certs), never skipped. For the ECS credentials
    /// endpoint that `AWS_CONTAINER_CREDENTIALS_FULL_URI` names (`push::credentials`).
    #[cfg(feature = "remote-write")]
    pub fn http_or_https(base: &str, timeout: Duration, tls: tls::Tls) -> Client {
        let base = base.trim_end_matches('/').to_owned();
        Client {
            agent: tls_agent(config(timeout).build(), tls),
            shown: base.clone(),
            base,
        }
    }

    /// A client of the HTTP server on a Unix socket (the Docker Engine API).
    pub fn unix(socket: &Path, timeout: Duration) -> Client {
        let agent = Agent::with_parts(
            config(timeout).build(),
            UnixConnector(socket.into()),
            NoLookup,
        );
        Client {
            agent,
            base: "http://docker".to_owned(),
            shown: format!("unix://{}", socket.display()),
        }
    }

    /// What errors name: `<base><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.shown)
    }

    /// GETs `path` (`/task`, `/containers/json`); any status is a response.
    pub fn get(&self, path: &str) -> Result<Response, FetchError> {
        self.get_with(path, &[])
    }

    /// GETs `path` with these headers besides the usual ones (`Authorization` for the ECS
    /// credentials endpoint); any status is a response. Errors never show header values.
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Result<Response, FetchError> {
        let fail = |e: ureq::Error| classify(&self.url(path), e);
        let mut request = self.agent.get(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = request.call().map_err(fail)?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .read_to_vec()
            .map_err(fail)?;
        Ok(Response { status, body })
    }

    /// GETs `path` and returns the body of a 200; another status is a `status` error that shows
    /// the start of the body (ECS answers errors with a JSON string, Docker with `{"message"}`).
    pub fn get_ok(&self, path: &str) -> Result<Vec<u8>, FetchError> {
        let response = self.get(path)?;
        if response.status == 200 {
            Ok(response.body)
        } else {
            Err(self.status_error(path, &response))
        }
    }

    /// The error of an unexpected status.
    pub fn status_error(&self, path: &str, response: &Response) -> FetchError {
        let body = &response.body[..response.body.len().min(160)];
        FetchError {
            reason: Reason::Status,
            detail: format!(
                "GET {}: HTTP {} {}",
                self.url(path),
                response.status,
                String::from_utf8_lossy(body).trim()
            ),
        }
    }

    /// The error of a body that is not the JSON it should be.
    pub fn parse_error(&self, path: &str, e: impl fmt::Display) -> FetchError {
        FetchError {
            reason: Reason::Parse,
            detail: format!("GET {}: {e}", self.url(path)),
        }
    }
}

fn config(timeout: Duration) -> ConfigBuilder<AgentScope> {
    Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .proxy(None)
        .max_redirects(0)
        .user_agent(concat!(
            "ecs-container-exporter/",
            env!("CARGO_PKG_VERSION")
        ))
        // Bodies are read into a Vec anyway; ureq's default 128 KiB buffers (two per
        // connection, zeroed on every request) cost more than the small payloads.
        .input_buffer_size(16 * 1024)
        .output_buffer_size(4 * 1024)
}

fn classify(url: &str, error: ureq::Error) -> FetchError {
    let reason = match &error {
        ureq::Error::Timeout(_) => Reason::Timeout,
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => Reason::Connect,
        ureq::Error::BodyExceedsLimit(_) => Reason::TooLarge,
        ureq::Error::Io(e) => match e.kind() {
            io::ErrorKind::ConnectionRefused
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::AddrNotAvailable
            // A Unix socket that is not there, or not ours to open.
            | io::ErrorKind::NotFound
            | io::ErrorKind::PermissionDenied => Reason::Connect,
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Reason::Timeout,
            _ => Reason::Io,
        },
        _ => Reason::Io,
    };
    let detail = match reason {
        Reason::TooLarge => format!("GET {url}: body over {} MiB", BODY_LIMIT >> 20),
        _ => format!("GET {url}: {error}"),
    };
    FetchError { reason, detail }
}

/// ureq's resolver runs every lookup on a new thread when a timeout is set, IP literals included;
/// the ECS endpoint is an IP literal (169.254.170.2), so answer those directly and leave names to
/// it.
#[derive(Debug, Default)]
struct LiteralResolver(DefaultResolver);

impl Resolver for LiteralResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let host = uri
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'));
        match host.and_then(|h| h.parse::<IpAddr>().ok()) {
            Some(ip) => {
                let mut addrs = self.empty();
                let https = uri.scheme_str() == Some("https");
                let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
                addrs.push(SocketAddr::new(ip, port));
                Ok(addrs)
            }
            None => self.0.resolve(uri, config, timeout),
        }
    }
}

/// On a Unix socket there is no host to look up: one placeholder address, never used.
#[derive(Debug)]
struct NoLookup;

impl Resolver for NoLookup {
    fn resolve(
        &self,
        _: &Uri,
        _: &Config,
        _: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let mut addrs = self.empty();
        addrs.push(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 80));
        Ok(addrs)
    }
}

/// Connects every request to one Unix socket.
#[derive(Debug)]
struct UnixConnector(PathBuf);

impl Connector for UnixConnector {
    type Out = UnixTransport;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _chained: Option<()>,
    ) -> Result<Option<UnixTransport>, ureq::Error> {
        let stream = UnixStream::connect(&self.0)?;
        let config = details.config;
        let buffers = LazyBuffers::new(config.input_buffer_size(), config.output_buffer_size());
        Ok(Some(UnixTransport { stream, buffers }))
    }
}

/// HTTP/1.1 over a connected Unix socket, each read and write bounded by what is left of the
/// request's timeout.
#[derive(Debug)]
struct UnixTransport {
    stream: UnixStream,
    buffers: LazyBuffers,
}

impl UnixTransport {
    /// The time left for the next read or write, or the timeout error when none is.
    fn left(timeout: NextTimeout) -> Result<Option<Duration>, ureq::Error> {
        if timeout.after.is_zero() {
            return Err(ureq::Error::Timeout(timeout.reason));
        }
        Ok(timeout.not_zero().map(|d| *d))
    }

    fn io_error(e: io::Error, timeout: NextTimeout) -> ureq::Error {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                ureq::Error::Timeout(timeout.reason)
            }
            _ => ureq::Error::Io(e),
        }
    }
}

impl Transport for UnixTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let timeout = timeout.for_write();
        self.stream.set_write_timeout(Self::left(timeout)?)?;
        let output = &self.buffers.output()[..amount];
        self.stream
            .write_all(output)
            .map_err(|e| Self::io_error(e, timeout))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let timeout = timeout.for_read();
        self.stream.set_read_timeout(Self::left(timeout)?)?;
        let read = loop {
            match self.stream.read(self.buffers.input_append_buf()) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let amount = read.map_err(|e| Self::io_error(e, timeout))?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    /// Open when a read would block: no unasked bytes waiting, no end of stream.
    fn is_open(&mut self) -> bool {
        if self.stream.set_nonblocking(true).is_err() {
            return false;
        }
        let mut byte = [0u8];
        let idle = matches!(
            self.stream.read(&mut byte),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock
        );
        idle && self.stream.set_nonblocking(false).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::{self, Fake};
    use super::*;

    fn unix(fake: &Fake, timeout: Duration) -> Client {
        Client::unix(fake.socket.as_deref().unwrap(), timeout)
    }

    #[test]
    fn bodies_are_read_by_length_chunks_or_close_over_a_unix_socket() {
        let fake = Fake::unix(|target| {
            Some(match target {
                "/length" => fake::json(200, "[]"),
                "/chunked" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                               3;x=y\r\n[1,\r\nA\r\n2,3,4,5,6]\r\n0\r\nX-Trailer: 1\r\n\r\n"
                    .to_vec(),
                _ => b"HTTP/1.0 404 Not Found\r\n\r\n{\"message\":\"no\"}".to_vec(),
            })
        });
        let client = unix(&fake, Duration::from_secs(5));
        assert_eq!(client.get_ok("/length"), Ok(b"[]".to_vec()));
        assert_eq!(client.get_ok("/chunked"), Ok(b"[1,2,3,4,5,6]".to_vec()));
        let gone = client.get("/containers/x/json").unwrap();
        assert_eq!(
            (gone.status, gone.body),
            (404, b"{\"message\":\"no\"}".to_vec())
        );
        let heads = fake.heads();
        assert!(
            heads[0].starts_with("GET /length HTTP/1.1\r\n"),
            "{heads:?}"
        );
        assert!(heads[0].contains("\r\nhost: docker\r\n"), "{heads:?}");
    }

    #[test]
    fn the_same_client_speaks_http_over_tcp() {
        let fake = Fake::tcp(|_| Some(b"HTTP/1.0 200 OK\r\n\r\n[]".to_vec()));
        let client = Client::http(
            &format!("http://{}/", fake.authority),
            Duration::from_secs(5),
        );
        assert_eq!(client.get_ok("/containers/json"), Ok(b"[]".to_vec()));
        let heads = fake.heads();
        assert!(
            heads[0].contains(&format!("\r\nhost: {}\r\n", fake.authority)),
            "{heads:?}"
        );
    }

    #[test]
    fn failures_have_their_reasons() {
        let missing = std::env::temp_dir().join(format!("ece-none-{}.sock", std::process::id()));
        let client = Client::unix(&missing, Duration::from_secs(1));
        let err = client.get("/x").unwrap_err();
        assert_eq!(err.reason, Reason::Connect, "{err}");
        assert!(err.detail.contains("unix:///"), "{err}");

        let silent = Fake::unix(|_| None);
        let started = std::time::Instant::now();
        let err = unix(&silent, Duration::from_millis(300))
            .get("/x")
            .unwrap_err();
        assert_eq!(err.reason, Reason::Timeout, "{err}");
        assert!(started.elapsed() < Duration::from_millis(700));

        let failing = Fake::unix(|_| Some(fake::json(500, r#"{"message":"no"}"#)));
        let err = unix(&failing, Duration::from_secs(5))
            .get_ok("/containers/json")
            .unwrap_err();
        assert_eq!(err.reason, Reason::Status);
        assert!(err.detail.contains(r#"HTTP 500 {"message":"no"}"#), "{err}");

        let huge = Fake::unix(|_| {
            let length = BODY_LIMIT as usize + 1;
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n");
            Some([head.as_bytes(), &vec![b' '; length]].concat())
        });
        let err = unix(&huge, Duration::from_secs(5)).get("/x").unwrap_err();
        assert_eq!(err.reason, Reason::TooLarge, "{err}");

        let garbled = Fake::unix(|_| Some(b"SSH-2.0-OpenSSH\r\n\r\n".to_vec()));
        let err = unix(&garbled, Duration::from_secs(5))
            .get("/x")
            .unwrap_err();
        assert_eq!(err.reason, Reason::Io, "{err}");

        // Nothing listens on port 1 of loopback.
        let client = Client::http("http://127.0.0.1:1", Duration::from_secs(1));
        assert_eq!(client.get("/x").unwrap_err().reason, Reason::Connect);
    }
}
