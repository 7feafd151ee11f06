//! One remote-write request on the wire: the ureq agent (rustls with ring, the bundled public
//! roots plus `--remote-write-ca-file`, no proxy, no redirects, one timeout from connect to the
//! last byte), the Remote-Write 1.0 headers, and the request's authorisation (basic, bearer, or
//! SigV4 with credentials fetched and refreshed by [`credentials::Provider`]).
//!
//! Every answer is a [`Reply`] (the status and, for the log, the first line of the body); every
//! failure to get one is a [`Failure`] with a short kind for counting logs per kind. Secrets are
//! never part of either.
//!
//! Out of scope: what to do with an answer (retry, drop: `delivery.rs`), what is sent
//! (`core::remote_write`).

use std::fmt;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ureq::Agent;

use crate::config::{Auth, RemoteWrite, Secret};
use crate::core::sigv4;
use crate::core::version;
use crate::source::client::{self, tls::Tls};

use super::credentials::{self, Provider};

/// The receiver's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// `Retry-After` in seconds, when the answer has one.
    pub retry_after: Option<Duration>,
    /// The first line of the body, shortened: what the receiver said was wrong.
    pub said: String,
}

/// No answer: the kind (`connect`, `timeout`, `tls`, `io`, `credentials`) and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: &'static str,
    pub detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.detail, self.kind)
    }
}

/// How each request is authorised.
enum Authorizer {
    None,
    /// The whole `Authorization` header value.
    Header(String),
    SigV4 {
        region: String,
        provider: Provider,
    },
}

/// The receiver, the agent and the authorisation, built once.
pub struct Transport {
    agent: Agent,
    url: String,
    /// The `Host` header as ureq sends it, and the path and query: what SigV4 signs.
    host: String,
    path: String,
    query: String,
    authorizer: Authorizer,
}

impl Transport {
    /// Reads the CA, password and token files, and decides where SigV4 credentials come from.
    /// An error is one line for start-up (exit 2).
    pub fn new(
        config: &RemoteWrite,
        interval: Duration,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Transport, String> {
        let tls = match &config.ca_file {
            Some((path, source)) => ca_file(path, source)?,
            None => Tls::new(None)?,
        };
        let settings = Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .proxy(None)
            .max_redirects(0)
            .user_agent(format!("ecs-container-exporter/{}", version::VERSION))
            .input_buffer_size(16 * 1024)
            .output_buffer_size(16 * 1024)
            // One push per poll: keep the connection (and its TLS session) from one to the next
            // instead of ureq's 15 s, which made every push at the default 60 s interval pay a
            // connect and a handshake (measured +1.3 ms CPU). A receiver that closes idle
            // connections sooner costs a reconnect, as before.
            .max_idle_age(interval + Duration::from_secs(30))
            .max_idle_connections(1)
            .build();
        let agent = client::tls_agent(settings, tls);
        let (host, path, query) = split_url(&config.url);
        let authorizer = match &config.auth {
            Auth::None => Authorizer::None,
            Auth::Basic { username, password } => {
                let password = secret(password, "REMOTE_WRITE_PASSWORD_FILE")?;
                Authorizer::Header(format!(
                    "Basic {}",
                    base64(format!("{username}:{password}").as_bytes())
                ))
            }
            Auth::Bearer(token) => Authorizer::Header(format!(
                "Bearer {}",
                secret(token, "REMOTE_WRITE_BEARER_TOKEN_FILE")?
            )),
            Auth::SigV4 { region } => {
                let source = credentials::source(env)?.ok_or_else(|| {
                    "SigV4 is on but no AWS credentials are configured: set AWS_ACCESS_KEY_ID and \
                     AWS_SECRET_ACCESS_KEY, or run with a task role \
                     (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or \
                     AWS_CONTAINER_CREDENTIALS_FULL_URI)"
                        .to_owned()
                })?;
                Authorizer::SigV4 {
                    region: region.clone(),
                    provider: Provider::new(source, config.timeout),
                }
            }
        };
        Ok(Transport {
            agent,
            url: config.url.clone(),
            host,
            path,
            query,
            authorizer,
        })
    }

    /// After a 403 that names an expired token: SigV4 credentials are fetched again.
    pub fn credentials_expired(&mut self) {
        if let Authorizer::SigV4 { provider, .. } = &mut self.authorizer {
            provider.invalidate();
        }
    }

    /// POSTs one snappy-compressed WriteRequest, within `timeout` when given (else the
    /// configured one).
    pub fn send(&mut self, body: &[u8], timeout: Option<Duration>) -> Result<Reply, Failure> {
        const HEADERS: [(&str, &str); 3] = [
            ("content-encoding", "snappy"),
            ("content-type", "application/x-protobuf"),
            ("x-prometheus-remote-write-version", "0.1.0"),
        ];
        let mut request = self.agent.post(&self.url);
        for (name, value) in HEADERS {
            request = request.header(name, value);
        }
        match &mut self.authorizer {
            Authorizer::None => {}
            Authorizer::Header(value) => request = request.header("authorization", &*value),
            Authorizer::SigV4 { region, provider } => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
                let credentials = provider.get(now).map_err(|detail| Failure {
                    kind: "credentials",
                    detail,
                })?;
                let signed = sigv4::Request {
                    method: "POST",
                    host: &self.host,
                    path: &self.path,
                    query: &self.query,
                    headers: &HEADERS,
                    body,
                };
                for (name, value) in sigv4::sign(&signed, &credentials, region, "aps", now) {
                    request = request.header(name, value);
                }
            }
        }
        if let Some(timeout) = timeout {
            request = request.config().timeout_global(Some(timeout)).build();
        }
        let https = self.url.len() > 8 && self.url[..8].eq_ignore_ascii_case("https://");
        let mut response = request.send(body).map_err(|e| failure(e, https))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let said = if status / 100 == 2 {
            String::new()
        } else {
            let text = response
                .body_mut()
                .with_config()
                .limit(64 * 1024)
                .read_to_string()
                .unwrap_or_default();
            first_line(&text)
        };
        Ok(Reply {
            status,
            retry_after,
            said,
        })
    }
}

/// `(Host header, path, query)` of an `http(s)://authority/path?query` URL; the default port
/// is left out of the host, as ureq sends it.
fn split_url(url: &str) -> (String, String, String) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let (authority, target) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let default_port = if scheme.eq_ignore_ascii_case("https") {
        ":443"
    } else {
        ":80"
    };
    let host = authority
        .strip_suffix(default_port)
        .unwrap_or(authority)
        .to_ascii_lowercase();
    (host, path.to_owned(), query.to_owned())
}

/// The public roots plus the CA certificates of a PEM file; an unreadable file, or one without
/// a certificate, is an error naming it.
fn ca_file(path: &Path, source: &str) -> Result<Tls, String> {
    let shown = format!("remote-write CA file {} ({source})", path.display());
    let pem = std::fs::read(path).map_err(|e| format!("cannot read the {shown}: {e}"))?;
    Tls::new(Some(&pem)).map_err(|e| format!("the {shown} {e}"))
}

/// A secret's value: as given, or a file's content without its trailing newline.
fn secret(secret: &Secret, variable: &str) -> Result<String, String> {
    match secret {
        Secret::Value(value) => Ok(value.clone()),
        Secret::File(path) => std::fs::read_to_string(path)
            .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
            .map_err(|e| format!("cannot read {variable} {}: {e}", path.display())),
    }
}

/// What kind of failure, for counting logs; over https an `InvalidData` I/O error is rustls
/// refusing the handshake or the records (a wrong CA, a plain-http port).
fn failure(error: ureq::Error, https: bool) -> Failure {
    let kind = match &error {
        ureq::Error::Timeout(_) => "timeout",
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => "connect",
        ureq::Error::Tls(_) => "tls",
        ureq::Error::Io(e) => match e.kind() {
            io::ErrorKind::ConnectionRefused
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::AddrNotAvailable => "connect",
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timeout",
            io::ErrorKind::InvalidData if https => "tls",
            _ => "io",
        },
        _ => "io",
    };
    let mut detail = error.to_string();
    if kind == "tls" && detail.contains("InvalidContentType") {
        detail.push_str(" (does the receiver speak plain http on that port?)");
    }
    Failure { kind, detail }
}

fn first_line(text: &str) -> String {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut line: String = line.trim().chars().take(200).collect();
    if line.len() < text.trim().len() {
        line.push('…');
    }
    line
}

/// Standard base64 with padding (RFC 4648), for the basic-auth header.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("user:pa ss", "dXNlcjpwYSBzcw=="),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain}");
        }
    }

    #[test]
    fn the_signed_host_path_and_query_are_those_ureq_sends() {
        let cases = [
            (
                "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1/api/v1/remote_write",
                (
                    "aps-workspaces.eu-west-1.amazonaws.com",
                    "/workspaces/ws-1/api/v1/remote_write",
                    "",
                ),
            ),
            (
                "http://127.0.0.1:9090/api/v1/write?x=1",
                ("127.0.0.1:9090", "/api/v1/write", "x=1"),
            ),
            ("https://Example.com:443", ("example.com", "/", "")),
        ];
        for (url, (host, path, query)) in cases {
            assert_eq!(
                split_url(url),
                (host.to_owned(), path.to_owned(), query.to_owned()),
                "{url}"
            );
        }
    }

    #[test]
    fn secrets_from_files_lose_their_trailing_newline_and_unreadable_files_are_named() {
        let dir = std::env::temp_dir().join(format!("rw-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "s3cret\n").unwrap();
        assert_eq!(
            secret(&Secret::File(file.clone()), "X_FILE").unwrap(),
            "s3cret"
        );
        let missing = dir.join("missing");
        let err = secret(&Secret::File(missing), "X_FILE").unwrap_err();
        assert!(err.starts_with("cannot read X_FILE "), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("rw-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("empty.pem");
        std::fs::write(&file, "not a pem\n").unwrap();
        let err = ca_file(&file, "REMOTE_WRITE_CA_FILE").unwrap_err();
        assert!(
            err.ends_with("empty.pem (REMOTE_WRITE_CA_FILE) holds no certificate"),
            "{err}"
        );
        assert!(
            ca_file(&dir.join("missing.pem"), "--remote-write-ca-file")
                .unwrap_err()
                .starts_with("cannot read the remote-write CA file")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
