//! The remote-write settings of SPEC §5: the receiver's URL, added labels, one auth method, the
//! SigV4 region, the CA file, the timeout and the queue size, each checked at start.
//!
//! Secrets (password, bearer token) come only from the environment or a file named there, never
//! from a flag; files are read by the pusher at start (`push::Pusher::start`), so that an
//! unreadable one is a start-up error too. A binary built without the `remote-write` feature
//! refuses every remote-write setting with one line.
//!
//! Out of scope: SigV4 credentials (decided from the environment by `push::credentials` at
//! start), sending (`push`).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::values::{self, Raw};
use super::{ConfigError, Lookup};

/// Validated remote-write settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteWrite {
    /// `http://` or `https://` URL of the receiver, as given.
    pub url: String,
    /// `--remote-write-label` / `REMOTE_WRITE_LABELS`, in the order given.
    pub labels: Vec<(String, String)>,
    pub auth: Auth,
    /// PEM CA certificates trusted besides the bundled public roots, and the flag or variable
    /// that named them.
    pub ca_file: Option<(PathBuf, String)>,
    pub timeout: Duration,
    /// Requests kept while the receiver is away.
    pub buffer: usize,
}

/// How requests are authorised: at most one method.
#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    None,
    Basic {
        username: String,
        password: Secret,
    },
    Bearer(Secret),
    /// AWS SigV4, service `aps`, in this region.
    SigV4 {
        region: String,
    },
}

/// A secret from the environment or a file; `Debug` never shows the value.
#[derive(Clone, PartialEq)]
pub enum Secret {
    Value(String),
    File(PathBuf),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Value(_) => f.write_str("Secret::Value(..)"),
            Secret::File(path) => write!(f, "Secret::File({})", path.display()),
        }
    }
}

/// The flags of §5 as typed (argh's part of `Args`).
#[derive(Debug, Default)]
pub struct Flags {
    pub url: Option<String>,
    pub labels: Vec<String>,
    pub sigv4: bool,
    pub region: Option<String>,
    pub ca_file: Option<String>,
    pub timeout: Option<String>,
    pub buffer: Option<String>,
}

/// Every variable of §5 (for "set without a URL" and "not built in").
const VARIABLES: [&str; 12] = [
    "REMOTE_WRITE_LABELS",
    "REMOTE_WRITE_SIGV4",
    "REMOTE_WRITE_SIGV4_REGION",
    "REMOTE_WRITE_CA_FILE",
    "REMOTE_WRITE_TIMEOUT",
    "REMOTE_WRITE_BUFFER",
    "REMOTE_WRITE_USERNAME",
    "REMOTE_WRITE_PASSWORD",
    "REMOTE_WRITE_PASSWORD_FILE",
    "REMOTE_WRITE_BEARER_TOKEN",
    "REMOTE_WRITE_BEARER_TOKEN_FILE",
    "REMOTE_WRITE_URL",
];

/// The first §5 setting given, as its flag or variable, other than the URL.
fn first_setting(lookup: &Lookup, flags: &Flags) -> Option<String> {
    let flag = [
        (!flags.labels.is_empty(), "--remote-write-label"),
        (flags.sigv4, "--remote-write-sigv4"),
        (flags.region.is_some(), "--remote-write-sigv4-region"),
        (flags.ca_file.is_some(), "--remote-write-ca-file"),
        (flags.timeout.is_some(), "--remote-write-timeout"),
        (flags.buffer.is_some(), "--remote-write-buffer"),
    ]
    .into_iter()
    .find_map(|(set, name)| set.then(|| name.to_owned()));
    flag.or_else(|| {
        VARIABLES[..VARIABLES.len() - 1]
            .iter()
            .find(|var| lookup.raw(None, "", &[var]).is_some())
            .map(|var| (*var).to_owned())
    })
}

/// The remote-write settings, `None` when no URL is given.
pub(super) fn resolve(lookup: &Lookup, flags: Flags) -> Result<Option<RemoteWrite>, ConfigError> {
    let Some(url) = lookup.raw(flags.url.clone(), "remote-write-url", &["REMOTE_WRITE_URL"]) else {
        return match first_setting(lookup, &flags) {
            Some(setting) => Err(ConfigError(format!(
                "{setting} is set but there is no --remote-write-url (REMOTE_WRITE_URL) to push to"
            ))),
            None => Ok(None),
        };
    };
    if !cfg!(feature = "remote-write") {
        return Err(
            url.invalid("this binary was built without remote write (cargo feature remote-write)")
        );
    }
    let (scheme, host) = receiver(&url)?;
    let mut labels = Vec::new();
    for entry in &flags.labels {
        labels.push(label(&Raw {
            value: entry.clone(),
            source: "--remote-write-label".to_owned(),
        })?);
    }
    if flags.labels.is_empty()
        && let Some(raw) = lookup.raw(None, "", &["REMOTE_WRITE_LABELS"])
    {
        for entry in values::list(&raw.value) {
            labels.push(label(&Raw {
                value: entry,
                source: raw.source.clone(),
            })?);
        }
    }
    let auth = auth(lookup, &flags, &host)?;
    let ca_file = lookup
        .raw(
            flags.ca_file,
            "remote-write-ca-file",
            &["REMOTE_WRITE_CA_FILE"],
        )
        .map(|raw| (PathBuf::from(raw.value.trim()), raw.source));
    if scheme == "http"
        && let Some((path, source)) = &ca_file
    {
        return Err(ConfigError(format!(
            "a CA file ({source} {}) is set but the remote-write URL is plain http: use https://",
            path.display()
        )));
    }
    let timeout = lookup.get(
        flags.timeout,
        "remote-write-timeout",
        &["REMOTE_WRITE_TIMEOUT"],
        values::seconds,
        Duration::from_secs(10),
    )?;
    let buffer = lookup.get(
        flags.buffer,
        "remote-write-buffer",
        &["REMOTE_WRITE_BUFFER"],
        buffer,
        120,
    )?;
    Ok(Some(RemoteWrite {
        url: url.value.trim().to_owned(),
        labels,
        auth,
        ca_file,
        timeout,
        buffer,
    }))
}

/// The URL's scheme (`http` or `https`) and host (without port), or an error naming it.
fn receiver(raw: &Raw) -> Result<(&'static str, String), ConfigError> {
    let url = raw.value.trim();
    let lower = url.to_ascii_lowercase();
    let (scheme, rest) = if let Some(rest) = lower.strip_prefix("https://") {
        ("https", rest)
    } else if let Some(rest) = lower.strip_prefix("http://") {
        ("http", rest)
    } else {
        return Err(raw.invalid("expected an http:// or https:// URL of a Remote-Write receiver"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if !values::authority_ok(authority) || url.contains(char::is_whitespace) || rest.contains('#') {
        return Err(raw.invalid("expected http(s)://host[:port]/path"));
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or("").to_owned(),
        None => authority.split(':').next().unwrap_or("").to_owned(),
    };
    Ok((scheme, host))
}

/// `name=value` with a Prometheus label name that is not reserved (`__…`) and a value.
fn label(raw: &Raw) -> Result<(String, String), ConfigError> {
    let expected = "expected name=value with a label name of letters, digits and _ \
                    (not starting with a digit or __) and a value";
    let (name, value) = raw
        .value
        .split_once('=')
        .ok_or_else(|| raw.invalid(expected))?;
    let name = name.trim();
    let mut chars = name.chars();
    let name_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__");
    let value = value.trim();
    if !name_ok || value.is_empty() {
        return Err(raw.invalid(expected));
    }
    Ok((name.to_owned(), value.to_owned()))
}

fn buffer(raw: &Raw) -> Result<usize, ConfigError> {
    raw.value
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=100_000).contains(n))
        .ok_or_else(|| raw.invalid("expected a number of requests from 1 to 100000"))
}

/// A secret from `VAR` or `VAR_FILE`, not both.
fn secret(lookup: &Lookup, var: &str) -> Result<Option<(String, Secret)>, ConfigError> {
    let file_var = format!("{var}_FILE");
    let value = lookup.raw(None, "", &[var]);
    let file = lookup.raw(None, "", &[file_var.as_str()]);
    match (value, file) {
        (Some(_), Some(_)) => Err(ConfigError(format!(
            "{var} and {file_var} exclude each other: set one"
        ))),
        (Some(raw), None) => Ok(Some((raw.source, Secret::Value(raw.value)))),
        (None, Some(raw)) => Ok(Some((
            raw.source,
            Secret::File(PathBuf::from(raw.value.trim())),
        ))),
        (None, None) => Ok(None),
    }
}

/// At most one of basic auth, bearer token and SigV4.
fn auth(lookup: &Lookup, flags: &Flags, host: &str) -> Result<Auth, ConfigError> {
    let username = lookup.raw(None, "", &["REMOTE_WRITE_USERNAME"]);
    let password = secret(lookup, "REMOTE_WRITE_PASSWORD")?;
    let bearer = secret(lookup, "REMOTE_WRITE_BEARER_TOKEN")?;
    let sigv4 = flags.sigv4
        || lookup.get(
            None,
            "remote-write-sigv4",
            &["REMOTE_WRITE_SIGV4"],
            values::boolean,
            false,
        )?;
    let basic = match (username, password) {
        (Some(user), Some((source, password))) => Some((
            Auth::Basic {
                username: user.value,
                password,
            },
            source,
        )),
        (Some(_), None) => {
            return Err(ConfigError(
                "REMOTE_WRITE_USERNAME is set without REMOTE_WRITE_PASSWORD or \
                 REMOTE_WRITE_PASSWORD_FILE"
                    .to_owned(),
            ));
        }
        (None, Some((source, _))) => {
            return Err(ConfigError(format!(
                "{source} is set without REMOTE_WRITE_USERNAME"
            )));
        }
        (None, None) => None,
    };
    let sigv4_source = if flags.sigv4 {
        "--remote-write-sigv4"
    } else {
        "REMOTE_WRITE_SIGV4"
    };
    let methods: Vec<String> = [
        basic
            .as_ref()
            .map(|(_, source)| format!("basic auth (REMOTE_WRITE_USERNAME, {source})")),
        bearer
            .as_ref()
            .map(|(source, _)| format!("a bearer token ({source})")),
        sigv4.then(|| format!("SigV4 ({sigv4_source})")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if methods.len() > 1 {
        return Err(ConfigError(format!(
            "more than one remote-write auth method is set: {}; choose one",
            methods.join(", ")
        )));
    }
    if let Some((basic, _)) = basic {
        return Ok(basic);
    }
    if let Some((_, token)) = bearer {
        return Ok(Auth::Bearer(token));
    }
    if !sigv4 {
        if let Some(raw) = lookup.raw(
            flags.region.clone(),
            "remote-write-sigv4-region",
            &["REMOTE_WRITE_SIGV4_REGION"],
        ) {
            return Err(ConfigError(format!(
                "{} is set but SigV4 is off: add --remote-write-sigv4 (REMOTE_WRITE_SIGV4=true)",
                raw.source
            )));
        }
        return Ok(Auth::None);
    }
    let region = lookup
        .raw(
            flags.region.clone(),
            "remote-write-sigv4-region",
            &["REMOTE_WRITE_SIGV4_REGION"],
        )
        .map(|raw| raw.value.trim().to_owned())
        .or_else(|| region_from_host(host))
        .or_else(|| {
            lookup
                .raw(None, "", &["AWS_REGION", "AWS_DEFAULT_REGION"])
                .map(|raw| raw.value.trim().to_owned())
        })
        .ok_or_else(|| {
            ConfigError(format!(
                "no SigV4 region: the URL host {host} is not aps-workspaces.<region>.amazonaws.com \
                 and none of --remote-write-sigv4-region, REMOTE_WRITE_SIGV4_REGION, AWS_REGION, \
                 AWS_DEFAULT_REGION is set"
            ))
        })?;
    if region.is_empty()
        || !region
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(ConfigError(format!(
            "invalid SigV4 region '{region}': expected a region such as us-east-1"
        )));
    }
    Ok(Auth::SigV4 { region })
}

/// The region of an AMP host (`aps-workspaces.<region>.amazonaws.com`).
fn region_from_host(host: &str) -> Option<String> {
    #[cfg(feature = "remote-write")]
    return crate::core::sigv4::region_from_host(host);
    #[cfg(not(feature = "remote-write"))]
    {
        let _ = host;
        None
    }
}

#[cfg(all(test, feature = "remote-write"))]
mod tests;
