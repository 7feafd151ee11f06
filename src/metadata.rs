//! The HTTP client of the task metadata endpoint: one configured ureq agent, reused.
//!
//! Plain HTTP only (ureq is built without TLS), no proxy from the environment (the endpoint is
//! link-local; an `HTTP_PROXY` meant for the app must not capture it), no redirects, one timeout
//! for the whole exchange from connect to the last body byte, and a 16 MiB cap on the body.
//! Every failure becomes a [`FetchError`] with the `reason` label it is counted under.
//!
//! Out of scope: what the bodies mean (`payload.rs`), when to fetch (`poller.rs`).

use std::fmt;
use std::io;
use std::time::Duration;

use ureq::Agent;
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use crate::snapshot::{Endpoint, Reason};

/// The largest body read from the endpoint.
pub const BODY_LIMIT: u64 = 16 * 1024 * 1024;

/// A failed GET, with the reason it is counted under.
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

/// A client of one endpoint base URL.
pub struct Client {
    agent: Agent,
    base: String,
}

impl Client {
    pub fn new(base: &str, timeout: Duration) -> Client {
        let config = Agent::config_builder()
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
            .build();
        let agent = Agent::with_parts(
            config,
            DefaultConnector::default(),
            LiteralResolver::default(),
        );
        Client {
            agent,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// The URL of an endpoint.
    pub fn url(&self, endpoint: Endpoint) -> String {
        match endpoint {
            Endpoint::Task => format!("{}/task", self.base),
            Endpoint::TaskStats => format!("{}/task/stats", self.base),
        }
    }

    /// GETs an endpoint and returns its body if the status is 200.
    pub fn get(&self, endpoint: Endpoint) -> Result<Vec<u8>, FetchError> {
        let url = self.url(endpoint);
        let mut response = self.agent.get(&url).call().map_err(|e| classify(&url, e))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .read_to_vec()
            .map_err(|e| classify(&url, e));
        if status != 200 {
            // ECS answers errors with a JSON string; show a little of it.
            let snippet: String = body
                .map(|b| String::from_utf8_lossy(&b[..b.len().min(120)]).into_owned())
                .unwrap_or_default();
            return Err(FetchError {
                reason: Reason::Status,
                detail: format!("GET {url}: HTTP {status} {}", snippet.trim()),
            });
        }
        body
    }
}

/// ureq's resolver runs every lookup on a new thread when a timeout is set, IP literals included;
/// the endpoint is an IP literal (169.254.170.2), so answer those directly and leave names to it.
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
        let port = uri.port_u16().unwrap_or(80);
        match host.and_then(|h| h.parse::<std::net::IpAddr>().ok()) {
            Some(ip) => {
                let mut addrs = self.empty();
                addrs.push(std::net::SocketAddr::new(ip, port));
                Ok(addrs)
            }
            None => self.0.resolve(uri, config, timeout),
        }
    }
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
            | io::ErrorKind::AddrNotAvailable => Reason::Connect,
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
