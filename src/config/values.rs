//! One raw value → one typed value, or an error that names where the value came from: ports,
//! seconds, booleans, lists, log levels, addresses, the metadata URL and the Docker host.
//!
//! Out of scope: which flag or variable to look at (`config.rs`).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use super::ConfigError;

/// A raw value and where it came from (`--flag` or `VARIABLE`).
pub(super) struct Raw {
    pub value: String,
    pub source: String,
}

impl Raw {
    pub fn invalid(&self, expected: &str) -> ConfigError {
        ConfigError(format!(
            "invalid value '{}' for {}: {expected}",
            self.value, self.source
        ))
    }
}

pub(super) fn port(raw: &Raw) -> Result<u16, ConfigError> {
    raw.value
        .trim()
        .parse::<u16>()
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| raw.invalid("expected a port from 1 to 65535"))
}

/// Seconds, whole or fractional, from 0.01 to one day.
pub(super) fn seconds(raw: &Raw) -> Result<Duration, ConfigError> {
    raw.value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| (0.01..=86_400.0).contains(s))
        .map(Duration::from_secs_f64)
        .ok_or_else(|| raw.invalid("expected a number of seconds from 0.01 to 86400"))
}

pub(super) fn boolean(raw: &Raw) -> Result<bool, ConfigError> {
    match raw.value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(raw.invalid("expected 1/0, true/false, yes/no or on/off")),
    }
}

pub(super) fn log_level(raw: &Raw) -> Result<log::LevelFilter, ConfigError> {
    match raw.value.trim().to_ascii_lowercase().as_str() {
        "error" | "critical" => Ok(log::LevelFilter::Error),
        "warn" | "warning" => Ok(log::LevelFilter::Warn),
        "info" => Ok(log::LevelFilter::Info),
        "debug" => Ok(log::LevelFilter::Debug),
        "trace" => Ok(log::LevelFilter::Trace),
        _ => Err(raw.invalid("expected error, warn, info, debug or trace")),
    }
}

/// An IP address, IPv6 with or without brackets.
pub(super) fn ip(raw: &Raw) -> Result<IpAddr, ConfigError> {
    raw.value
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| raw.invalid("expected an IP address such as 0.0.0.0 or ::"))
}

/// A comma list, names trimmed, empty names dropped.
pub(super) fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

/// An `http://host[:port][/path]` URL, returned without its trailing `/`.
pub(super) fn url(raw: &Raw) -> Result<String, ConfigError> {
    let url = raw.value.trim();
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Err(
            raw.invalid("https is not supported (the task metadata endpoint is plain http)")
        );
    }
    let Some(rest) = lower.strip_prefix("http://") else {
        return Err(raw.invalid("expected an http:// URL"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if !authority_ok(authority) || url.contains(char::is_whitespace) || rest.contains(['?', '#']) {
        return Err(raw.invalid("expected http://host[:port][/path]"));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`, with a port from 1 to 65535 when there is one.
pub(super) fn authority_ok(authority: &str) -> bool {
    let port_ok = |p: &str| p.parse::<u16>().is_ok_and(|p| p > 0);
    if let Some(v6) = authority.strip_prefix('[') {
        return match v6.split_once(']') {
            Some((ip, "")) => ip.parse::<Ipv6Addr>().is_ok(),
            Some((ip, port)) => {
                ip.parse::<Ipv6Addr>().is_ok() && port.strip_prefix(':').is_some_and(port_ok)
            }
            None => false,
        };
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        && port.is_none_or(port_ok)
}

/// `DOCKER_HOST` when unset.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// The port of `tcp://host` without one (Docker's plain-HTTP port).
const DEFAULT_DOCKER_PORT: u16 = 2375;

/// A Docker Engine API address (`DOCKER_HOST`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerHost {
    /// `unix:///path/to/docker.sock`
    Unix(PathBuf),
    /// `tcp://host:port`, kept as `host:port` (`[v6]:port` for IPv6).
    Tcp(String),
}

impl DockerHost {
    /// Reads `unix:///path` or `tcp://host[:port]` (port 2375 when absent).
    pub fn parse(s: &str) -> Result<DockerHost, String> {
        let s = s.trim();
        let expected = "expected unix:///path/to/docker.sock or tcp://host:port \
                        (plain HTTP: TLS, ssh:// and npipe:// are not supported)";
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("unix://") {
            let path = &s["unix://".len()..];
            if path.len() < 2 || !path.starts_with('/') || path.contains('\0') {
                return Err(format!("{expected}; the socket path must be absolute"));
            }
            return Ok(DockerHost::Unix(PathBuf::from(path)));
        }
        let Some(rest) = lower.strip_prefix("tcp://") else {
            return Err(expected.to_owned());
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if !authority_ok(authority) || authority.contains('/') {
            return Err(format!("{expected}; got a bad host or port"));
        }
        let has_port = match authority.rsplit_once(']') {
            Some((_, after)) => !after.is_empty(),
            None => authority.contains(':'),
        };
        Ok(DockerHost::Tcp(if has_port {
            authority.to_owned()
        } else {
            format!("{authority}:{DEFAULT_DOCKER_PORT}")
        }))
    }
}

impl fmt::Display for DockerHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DockerHost::Unix(path) => write!(f, "unix://{}", path.display()),
            DockerHost::Tcp(authority) => write!(f, "tcp://{authority}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hosts_parse() {
        use DockerHost::{Tcp, Unix};
        let cases = [
            (DEFAULT_DOCKER_HOST, Unix("/var/run/docker.sock".into())),
            (
                " unix:///run/user/1000/docker.sock ",
                Unix("/run/user/1000/docker.sock".into()),
            ),
            ("tcp://127.0.0.1:2375", Tcp("127.0.0.1:2375".into())),
            ("TCP://Docker-Host/", Tcp("docker-host:2375".into())),
            ("tcp://[::1]:2376", Tcp("[::1]:2376".into())),
            ("tcp://[::1]", Tcp("[::1]:2375".into())),
        ];
        for (text, host) in cases {
            assert_eq!(DockerHost::parse(text), Ok(host), "{text}");
        }
        for bad in [
            "ftp://x",
            "https://h:2376",
            "ssh://me@h",
            "npipe:////./pipe/docker_engine",
            "unix://",
            "unix://relative.sock",
            "tcp://",
            "tcp://h:0",
            "tcp://h:x",
            "tcp://h:2375/v1.41",
            "tcp://[::1",
            "/var/run/docker.sock",
        ] {
            let err = DockerHost::parse(bad).expect_err(bad);
            assert!(err.contains("unix://"), "{bad}: {err}");
        }
        for shown in ["tcp://[::1]:2375", DEFAULT_DOCKER_HOST] {
            assert_eq!(
                DockerHost::parse(shown).map(|h| h.to_string()),
                Ok(shown.to_owned())
            );
        }
    }
}
