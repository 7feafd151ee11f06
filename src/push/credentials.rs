//! The AWS credentials that SigV4 signs with (SPEC §5 "SigV4 credentials"): where they come
//! from, decided once at start from the environment in the order the AWS SDKs use inside a
//! container ([`source`]), and a [`Provider`] that holds them and fetches them again when due.
//!
//! 1. `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`): static, never
//!    fetched. One of the pair without the other is an error, as in botocore.
//! 2. `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`: the ECS task role, from
//!    `http://169.254.170.2<relative URI>`.
//! 3. `AWS_CONTAINER_CREDENTIALS_FULL_URI`: https to any host; plain http only to a loopback
//!    address (`127.0.0.0/8`, `::1`, `localhost`), the ECS endpoint `169.254.170.2`, or the EKS
//!    Pod Identity agent (`169.254.170.23`, `fd00:ec2::23`). Its `Authorization` header is the
//!    content of `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (read at every fetch, trailing
//!    whitespace dropped: the file may be rotated), else `AWS_CONTAINER_AUTHORIZATION_TOKEN`;
//!    the file wins, as in the SDKs.
//!
//! An empty variable counts as unset. Fetched credentials are used until less than
//! min(5 minutes, half their lifetime at fetch time) remains before `Expiration`: 5 minutes for
//! the hour that ECS gives, half for short ones (the simulator's 90 s credentials would
//! otherwise be fetched again at every push). [`Provider::invalidate`] (after a 403 that names
//! an expired token) makes the next [`Provider::get`] fetch. A fetch that fails while the
//! current credentials have not expired (and were not invalidated) keeps them, with a warning.
//! Errors are one line and never hold a secret: no key, token or answer body of a 200.
//!
//! Out of scope: signing and reading the answer's JSON (`core::sigv4`), when to push and what
//! a 403 says (the pusher), IMDS, profiles, web identity and SSO (not in a task's container).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use crate::core::rfc3339;
use crate::core::sigv4::{self, Credentials};
use crate::source::client::{Client, tls};

/// Where the ECS agent serves a task's role credentials.
pub const ECS_CREDENTIALS_HOST: &str = "http://169.254.170.2";

/// Fetch again at least this long before `Expiration` (SPEC §5).
const REFRESH_BEFORE_SECS: i64 = 300;

/// Where credentials come from, decided at start from the environment.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Static(Credentials),
    /// http://169.254.170.2 + AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
    EcsRelative(String),
    FullUri {
        url: String,
        token: Option<Token>,
    },
}

/// The `Authorization` header of a full-URI fetch.
#[derive(Clone, PartialEq)]
pub enum Token {
    /// `AWS_CONTAINER_AUTHORIZATION_TOKEN`.
    Value(String),
    /// `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`, read at every fetch.
    File(PathBuf),
}

/// Shows the file, never the token.
impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Value(_) => f.write_str("Value(<redacted>)"),
            Token::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

impl Token {
    /// The header value: the variable's, or the file's content now.
    fn read(&self) -> Result<String, String> {
        let value = match self {
            Token::Value(v) => v.clone(),
            Token::File(path) => std::fs::read_to_string(path)
                .map_err(|e| {
                    format!(
                        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {}: {e}",
                        path.display()
                    )
                })?
                .trim_end()
                .to_owned(),
        };
        if value.contains(['\r', '\n']) {
            return Err(format!("{} holds more than one line", self.variable()));
        }
        Ok(value)
    }

    fn variable(&self) -> &'static str {
        match self {
            Token::Value(_) => "AWS_CONTAINER_AUTHORIZATION_TOKEN",
            Token::File(_) => "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        }
    }
}

/// Decides the source from an env lookup (pure): static keys if both `AWS_ACCESS_KEY_ID` and
/// `AWS_SECRET_ACCESS_KEY` are set; else the relative URI; else the full URI. `Err` (one line
/// naming the variable) for half a key pair or a full URI that is not allowed; `Ok(None)` when
/// nothing is set.
pub fn source(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Source>, String> {
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        (Some(access_key_id), Some(secret_access_key)) => {
            return Ok(Some(Source::Static(Credentials {
                access_key_id,
                secret_access_key,
                session_token: var("AWS_SESSION_TOKEN"),
                expiration: None,
            })));
        }
        (Some(_), None) => {
            return Err("AWS_ACCESS_KEY_ID is set but not AWS_SECRET_ACCESS_KEY".into());
        }
        (None, Some(_)) => {
            return Err("AWS_SECRET_ACCESS_KEY is set but not AWS_ACCESS_KEY_ID".into());
        }
        (None, None) => {}
    }
    if let Some(relative) = var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
        let slash = if relative.starts_with('/') { "" } else { "/" };
        let url = format!("{ECS_CREDENTIALS_HOST}{slash}{relative}");
        return Ok(Some(Source::EcsRelative(url)));
    }
    let Some(url) = var("AWS_CONTAINER_CREDENTIALS_FULL_URI") else {
        return Ok(None);
    };
    let (scheme, _, _) = split_url(&url).ok_or_else(|| {
        format!("AWS_CONTAINER_CREDENTIALS_FULL_URI is not an http:// or https:// URL: {url:?}")
    })?;
    let host = host_of(&url);
    if scheme == "http" && !plain_http_allowed(host) {
        return Err(format!(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI: plain http only to a loopback address, \
             169.254.170.2 or 169.254.170.23, not {host:?} (use https)"
        ));
    }
    let token = match var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
        Some(path) => Some(Token::File(path.into())),
        None => var("AWS_CONTAINER_AUTHORIZATION_TOKEN").map(Token::Value),
    };
    if let Some(token @ Token::Value(v)) = &token
        && v.contains(['\r', '\n'])
    {
        return Err(format!("{} holds more than one line", token.variable()));
    }
    Ok(Some(Source::FullUri { url, token }))
}

/// `(scheme, base, path)` of an http(s) URL: `("http", "http://host:port", "/path?query")`;
/// the scheme lower-cased, the path `/` when there is none, no fragment.
fn split_url(url: &str) -> Option<(&'static str, &str, String)> {
    let url = url.split('#').next().unwrap_or(url);
    let (scheme, rest) = url.split_once("://")?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => "http",
        "https" => "https",
        _ => return None,
    };
    let authority = rest.find(['/', '?']).unwrap_or(rest.len());
    if authority == 0 {
        return None;
    }
    let (base, path) = url.split_at(url.len() - rest.len() + authority);
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    Some((scheme, base, path))
}

/// The host of a URL: no user, no port, no IPv6 brackets.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if let Some(v6) = host.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    host.split(':').next().unwrap_or(host)
}

fn plain_http_allowed(host: &str) -> bool {
    const ECS: IpAddr = IpAddr::V4(Ipv4Addr::new(169, 254, 170, 2));
    const EKS: IpAddr = IpAddr::V4(Ipv4Addr::new(169, 254, 170, 23));
    const EKS_V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23));
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<IpAddr>()
        .is_ok_and(|ip| ip.is_loopback() || [ECS, EKS, EKS_V6].contains(&ip))
}

/// One fetch of credentials (the endpoint, or a fake in tests).
pub type Fetch = Box<dyn FnMut() -> Result<Credentials, String> + Send>;

/// Holds the current credentials and fetches them again when due.
pub struct Provider {
    fetch: Fetch,
    /// What errors name: the URL, or the static keys' variable.
    origin: String,
    current: Option<Credentials>,
    /// Unix seconds from which `current` is fetched again.
    refresh_at: i64,
    /// `invalidate` was called: fetch at the next `get`, and do not fall back on `current`.
    invalidated: bool,
}

impl Provider {
    pub fn new(source: Source, timeout: Duration) -> Provider {
        match source {
            Source::Static(credentials) => Provider::with_fetch(
                "AWS_ACCESS_KEY_ID",
                Box::new(move || Ok(credentials.clone())),
            ),
            Source::EcsRelative(url) => {
                let fetch = fetch_from(&url, None, timeout);
                Provider::with_fetch(url, fetch)
            }
            Source::FullUri { url, token } => {
                let fetch = fetch_from(&url, token, timeout);
                Provider::with_fetch(url, fetch)
            }
        }
    }

    /// A provider over any fetch (the tests' fakes); `origin` is what its errors name.
    pub fn with_fetch(origin: impl Into<String>, fetch: Fetch) -> Provider {
        Provider {
            fetch,
            origin: origin.into(),
            current: None,
            refresh_at: i64::MIN,
            invalidated: false,
        }
    }

    /// Credentials valid now: cached until less than min(5 min, half their lifetime) is left
    /// (or `invalidate` was called), else fetched. Errors are one line, never containing secrets.
    pub fn get(&mut self, now_unix: i64) -> Result<Credentials, String> {
        if let Some(current) = &self.current
            && !self.invalidated
            && now_unix < self.refresh_at
        {
            return Ok(current.clone());
        }
        let fetched = (self.fetch)().and_then(|c| match c.expiration {
            Some(expiration) if expiration <= now_unix => Err(format!(
                "{}: the credentials answered expired at {}",
                self.origin,
                shown(expiration)
            )),
            _ => Ok(c),
        });
        match fetched {
            Ok(credentials) => {
                self.refresh_at = refresh_at(credentials.expiration, now_unix);
                self.invalidated = false;
                log::debug!(
                    "SigV4 credentials {} from {}, expiring {}",
                    credentials.access_key_id,
                    self.origin,
                    credentials.expiration.map_or("never".to_owned(), shown)
                );
                self.current = Some(credentials.clone());
                Ok(credentials)
            }
            Err(e) => match &self.current {
                Some(current)
                    if !self.invalidated && current.expiration.is_none_or(|t| now_unix < t) =>
                {
                    log::warn!(
                        "{e}; signing with the current credentials until they expire at {}",
                        current.expiration.map_or("never".to_owned(), shown)
                    );
                    Ok(current.clone())
                }
                _ => Err(e),
            },
        }
    }

    /// After a 403 that names an expired token: the next get() fetches.
    pub fn invalidate(&mut self) {
        self.invalidated = true;
    }
}

/// When credentials fetched at `now` that expire at `expiration` are fetched again.
fn refresh_at(expiration: Option<i64>, now: i64) -> i64 {
    match expiration {
        None => i64::MAX,
        Some(expiration) => {
            let lifetime = expiration.saturating_sub(now);
            expiration.saturating_sub(REFRESH_BEFORE_SECS.min(lifetime / 2))
        }
    }
}

fn shown(unix_seconds: i64) -> String {
    rfc3339::format(i128::from(unix_seconds) * 1_000_000_000)
}

/// GETs `url` (with `Authorization: <token>` when there is one) and reads the answer.
fn fetch_from(url: &str, token: Option<Token>, timeout: Duration) -> Fetch {
    let (base, path) = match split_url(url) {
        Some((_, base, path)) => (base.to_owned(), path),
        None => (url.to_owned(), String::new()),
    };
    let client = tls::Tls::new(None).map(|tls| Client::http_or_https(&base, timeout, tls));
    Box::new(move || {
        let client = client.as_ref().map_err(|e| format!("TLS settings: {e}"))?;
        let token = token.as_ref().map(Token::read).transpose()?;
        let headers: Vec<(&str, &str)> = token
            .iter()
            .map(|t| ("Authorization", t.as_str()))
            .collect();
        let response = client
            .get_with(&path, &headers)
            .map_err(|e| e.to_string())?;
        if response.status != 200 {
            return Err(client.status_error(&path, &response).to_string());
        }
        sigv4::parse_credentials(&response.body)
            .map_err(|e| format!("GET {}: {e}", client.url(&path)))
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::source::fake::{self, Fake};

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    fn source_of(vars: &[(&str, &str)]) -> Result<Option<Source>, String> {
        source(&env(vars))
    }

    fn full(url: &str, token: Option<Token>) -> Result<Option<Source>, String> {
        Ok(Some(Source::FullUri {
            url: url.to_owned(),
            token,
        }))
    }

    const RELATIVE: &str = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI";
    const FULL: &str = "AWS_CONTAINER_CREDENTIALS_FULL_URI";

    #[test]
    fn static_keys_come_first() {
        let keys = [
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            (RELATIVE, "/v2/credentials/x"),
            (FULL, "http://127.0.0.1/creds"),
        ];
        let expected = |token: Option<&str>| {
            Ok(Some(Source::Static(Credentials {
                access_key_id: "AKID".into(),
                secret_access_key: "secret".into(),
                session_token: token.map(Into::into),
                expiration: None,
            })))
        };
        assert_eq!(source_of(&keys), expected(None));
        let with_token = [keys[0], keys[1], ("AWS_SESSION_TOKEN", "tok")];
        assert_eq!(source_of(&with_token), expected(Some("tok")));
        let err = source_of(&[keys[0], keys[2]]).unwrap_err();
        assert_eq!(
            err,
            "AWS_ACCESS_KEY_ID is set but not AWS_SECRET_ACCESS_KEY"
        );
        let err = source_of(&[keys[1], ("AWS_ACCESS_KEY_ID", "")]).unwrap_err();
        assert_eq!(
            err,
            "AWS_SECRET_ACCESS_KEY is set but not AWS_ACCESS_KEY_ID"
        );
    }

    #[test]
    fn then_the_task_role_then_the_full_uri() {
        assert_eq!(source_of(&[]), Ok(None));
        assert_eq!(source_of(&[(RELATIVE, ""), (FULL, "")]), Ok(None));
        let task_role = Ok(Some(Source::EcsRelative(
            "http://169.254.170.2/v2/credentials/abc".into(),
        )));
        assert_eq!(
            source_of(&[
                (RELATIVE, "/v2/credentials/abc"),
                (FULL, "http://127.0.0.1:1/")
            ]),
            task_role
        );
        assert_eq!(source_of(&[(RELATIVE, "v2/credentials/abc")]), task_role);
        for allowed in [
            "http://127.0.0.1:8080/creds",
            "http://127.1.2.3/",
            "HTTP://localhost:51679/v2/credentials/x",
            "http://[::1]:80/x",
            "http://169.254.170.2/v2/credentials/x",
            "http://169.254.170.23/v1/credentials",
            "http://[fd00:ec2::23]/v1/credentials",
            "https://creds.example.com/x",
            "https://10.0.0.1:8443/x",
        ] {
            assert_eq!(
                source_of(&[(FULL, allowed)]),
                full(allowed, None),
                "{allowed}"
            );
        }
    }

    #[test]
    fn plain_http_elsewhere_is_refused_naming_the_variable() {
        for refused in [
            "http://10.0.0.1/creds",
            "http://creds.example.com/x",
            "http://169.254.169.254/latest",
            "http://localhost.example.com/",
            "http://127.0.0.1.nip.io/",
            "http://127.0.0.1@evil.example/",
        ] {
            let err = source_of(&[(FULL, refused)]).unwrap_err();
            assert!(err.starts_with(FULL) && err.contains("plain http"), "{err}");
            assert!(!err.contains('\n'));
        }
        for bad in ["ftp://127.0.0.1/", "127.0.0.1/creds", "http:///creds"] {
            let err = source_of(&[(FULL, bad)]).unwrap_err();
            assert!(
                err.starts_with(FULL) && err.contains("not an http"),
                "{err}"
            );
        }
    }

    #[test]
    fn the_token_file_wins_over_the_token() {
        let url = "http://169.254.170.23/v1/credentials";
        let vars = [
            (FULL, url),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "tok"),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "/var/run/token"),
        ];
        let file = Token::File("/var/run/token".into());
        assert_eq!(source_of(&vars), full(url, Some(file)));
        assert_eq!(
            source_of(&vars[..2]),
            full(url, Some(Token::Value("tok".into())))
        );
        let split = [
            (FULL, url),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "a\r\nX: b"),
        ];
        let err = source_of(&split).unwrap_err();
        assert_eq!(
            err,
            "AWS_CONTAINER_AUTHORIZATION_TOKEN holds more than one line"
        );
        // The token is for the full URI only.
        let relative = [(RELATIVE, "/x"), vars[1]];
        assert_eq!(
            source_of(&relative),
            Ok(Some(Source::EcsRelative("http://169.254.170.2/x".into())))
        );
    }

    #[test]
    fn debug_never_shows_a_token_or_a_secret() {
        let source = Source::FullUri {
            url: "http://127.0.0.1/".into(),
            token: Some(Token::Value("hunter2".into())),
        };
        let shown = format!("{source:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("redacted"),
            "{shown}"
        );
        let source = source_of(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
            ("AWS_SESSION_TOKEN", "t0k3n"),
        ]);
        let shown = format!("{source:?}");
        assert!(shown.contains("AKID"), "{shown}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("t0k3n"),
            "{shown}"
        );
    }

    #[test]
    fn urls_split_into_base_and_path() {
        let split = |url| split_url(url).map(|(s, b, p)| (s, b.to_owned(), p));
        let parts = |s, b: &str, p: &str| Some((s, b.to_owned(), p.to_owned()));
        assert_eq!(
            split("http://169.254.170.2/v2/credentials/x"),
            parts("http", "http://169.254.170.2", "/v2/credentials/x")
        );
        assert_eq!(
            split("HTTPS://h:8443?a=1#frag"),
            parts("https", "HTTPS://h:8443", "/?a=1")
        );
        assert_eq!(split("http://h"), parts("http", "http://h", "/"));
        assert_eq!(split("http://"), None);
        assert_eq!(split("file:///x"), None);
        assert_eq!(host_of("http://u:p@[::1]:80/x"), "::1");
        assert_eq!(host_of("http://LOCALHOST:80"), "LOCALHOST");
    }

    fn answer(id: &str, expiration: Option<i64>) -> Credentials {
        Credentials {
            access_key_id: id.into(),
            secret_access_key: format!("secret-{id}"),
            session_token: Some(format!("token-{id}")),
            expiration,
        }
    }

    /// A provider whose fetches answer `answers(n)` for the n-th fetch (0-based), and the count.
    fn provider(
        answers: impl Fn(usize) -> Result<Credentials, String> + Send + 'static,
    ) -> (Provider, Arc<Mutex<usize>>) {
        let count = Arc::new(Mutex::new(0));
        let seen = Arc::clone(&count);
        let fetch = Box::new(move || {
            let mut n = seen.lock().unwrap();
            *n += 1;
            answers(*n - 1)
        });
        (Provider::with_fetch("fake", fetch), count)
    }

    #[test]
    fn an_hour_of_credentials_is_fetched_again_5_minutes_before_it_ends() {
        let (mut p, fetches) =
            provider(|n| Ok(answer(&format!("K{n}"), Some(3600 * (n as i64 + 1)))));
        assert_eq!(p.get(0).unwrap().access_key_id, "K0");
        assert_eq!(p.get(3299).unwrap().access_key_id, "K0");
        assert_eq!(*fetches.lock().unwrap(), 1);
        assert_eq!(p.get(3300).unwrap().access_key_id, "K1");
        assert_eq!(p.get(3301).unwrap().access_key_id, "K1");
        assert_eq!(*fetches.lock().unwrap(), 2);
    }

    #[test]
    fn short_credentials_are_fetched_again_at_half_their_life() {
        // 90 s credentials (the simulator's), fetched at 1000: again from 1045, not at every get.
        let (mut p, fetches) =
            provider(|n| Ok(answer(&format!("K{n}"), Some(1090 + 45 * n as i64))));
        assert_eq!(p.get(1000).unwrap().access_key_id, "K0");
        assert_eq!(p.get(1044).unwrap().access_key_id, "K0");
        assert_eq!(p.get(1045).unwrap().access_key_id, "K1");
        assert_eq!(*fetches.lock().unwrap(), 2);
        assert_eq!(refresh_at(Some(1090), 1000), 1045);
        assert_eq!(refresh_at(Some(4600), 1000), 4300);
        assert_eq!(refresh_at(None, 1000), i64::MAX);
    }

    #[test]
    fn static_keys_are_never_fetched_again_unless_invalidated() {
        let (mut p, fetches) = provider(|_| Ok(answer("AKID", None)));
        for now in [0, 1_000_000, i64::MAX - 1] {
            assert_eq!(p.get(now).unwrap().access_key_id, "AKID");
        }
        assert_eq!(*fetches.lock().unwrap(), 1);
        let keys = answer("AKID", None);
        let mut p = Provider::new(Source::Static(keys.clone()), Duration::from_secs(1));
        assert_eq!(p.get(5), Ok(keys.clone()));
        p.invalidate();
        assert_eq!(p.get(6), Ok(keys));
    }

    #[test]
    fn invalidate_makes_the_next_get_fetch() {
        let (mut p, fetches) = provider(|n| Ok(answer(&format!("K{n}"), Some(3600))));
        assert_eq!(p.get(0).unwrap().access_key_id, "K0");
        p.invalidate();
        assert_eq!(p.get(1).unwrap().access_key_id, "K1");
        assert_eq!(p.get(2).unwrap().access_key_id, "K1");
        assert_eq!(*fetches.lock().unwrap(), 2);
    }

    #[test]
    fn a_failed_fetch_keeps_credentials_that_have_not_expired() {
        let (mut p, fetches) = provider(|n| match n {
            0 => Ok(answer("K0", Some(3600))),
            _ => Err("GET http://x/: connection refused (connect)".into()),
        });
        assert_eq!(p.get(0).unwrap().access_key_id, "K0");
        // Due at 3300; the fetch fails, K0 is still good until 3600.
        assert_eq!(p.get(3300).unwrap().access_key_id, "K0");
        assert_eq!(p.get(3599).unwrap().access_key_id, "K0");
        assert_eq!(
            *fetches.lock().unwrap(),
            3,
            "tried again at every get once due"
        );
        let err = p.get(3600).unwrap_err();
        assert!(err.contains("connection refused"), "{err}");
        // Invalidated credentials are not fallen back on.
        let (mut p, _) = provider(|n| match n {
            0 => Ok(answer("K0", Some(3600))),
            _ => Err("down".into()),
        });
        p.get(0).unwrap();
        p.invalidate();
        assert_eq!(p.get(1), Err("down".into()));
        assert_eq!(p.get(2), Err("down".into()), "still invalidated");
    }

    #[test]
    fn credentials_that_already_expired_are_an_error() {
        let (mut p, _) = provider(|_| Ok(answer("K0", Some(100))));
        let err = p.get(100).unwrap_err();
        assert_eq!(
            err,
            "fake: the credentials answered expired at 1970-01-01T00:01:40.000000000Z"
        );
    }

    fn endpoint_answer(id: &str) -> Vec<u8> {
        fake::json(
            200,
            &format!(
                r#"{{"RoleArn":"arn:aws:iam::111122223333:role/sim","AccessKeyId":"{id}",
                "SecretAccessKey":"s3cr3t","Token":"t0k3n","Expiration":"2030-01-01T00:00:00Z"}}"#
            ),
        )
    }

    #[test]
    fn the_endpoint_is_asked_with_the_token_of_the_file_read_at_each_fetch() {
        let endpoint = Fake::tcp(|target| match target {
            "/v1/credentials?x=1" => Some(endpoint_answer("ASIA1")),
            _ => Some(fake::json(404, r#"{"message":"no"}"#)),
        });
        let file = std::env::temp_dir().join(format!("ece-token-{}", std::process::id()));
        std::fs::write(&file, "first\n").unwrap();
        let url = format!("http://{}/v1/credentials?x=1", endpoint.authority);
        let source = Source::FullUri {
            url,
            token: Some(Token::File(file.clone())),
        };
        let mut p = Provider::new(source, Duration::from_secs(5));
        let got = p.get(0).unwrap();
        assert_eq!(got.access_key_id, "ASIA1");
        assert_eq!(got.expiration, Some(1_893_456_000));
        std::fs::write(&file, "second").unwrap();
        p.invalidate();
        p.get(1).unwrap();
        let heads = endpoint.heads();
        assert!(
            heads[0].starts_with("GET /v1/credentials?x=1 HTTP/1.1\r\n"),
            "{heads:?}"
        );
        assert!(
            heads[0].contains("\r\nauthorization: first\r\n"),
            "{heads:?}"
        );
        assert!(
            heads[1].contains("\r\nauthorization: second\r\n"),
            "{heads:?}"
        );

        std::fs::remove_file(&file).unwrap();
        p.invalidate();
        let err = p.get(2).unwrap_err();
        assert!(
            err.starts_with("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE /"),
            "{err}"
        );
        assert!(endpoint.heads().is_empty(), "not asked without its token");
    }

    #[test]
    fn endpoint_failures_are_one_line_without_secrets() {
        let endpoint = Fake::tcp(|target| match target {
            "/denied" => Some(fake::json(401, r#""bad token""#)),
            _ => Some(fake::json(
                200,
                r#"{"AccessKeyId":"A","SecretAccessKey":"s3cr3t"}"#,
            )),
        });
        let fetch = |path: &str| {
            let url = format!("http://{}{path}", endpoint.authority);
            let token = Some(Token::Value("hunter2".into()));
            Provider::new(Source::FullUri { url, token }, Duration::from_secs(5)).get(0)
        };
        let err = fetch("/denied").unwrap_err();
        assert!(err.contains("/denied: HTTP 401 \"bad token\""), "{err}");
        let err = fetch("/partial").unwrap_err();
        assert!(
            err.ends_with("/partial: the credentials answer has no Token"),
            "{err}"
        );
        for err in [fetch("/denied"), fetch("/partial")] {
            let err = err.unwrap_err();
            assert!(!err.contains('\n') && !err.contains("hunter2") && !err.contains("s3cr3t"));
        }
        // Nothing listens on port 1 of loopback; https to a plain-http server fails its
        // handshake (the bundled roots are loaded, nothing panics).
        let refused = Source::FullUri {
            url: "http://127.0.0.1:1/x".into(),
            token: None,
        };
        let err = Provider::new(refused, Duration::from_secs(1))
            .get(0)
            .unwrap_err();
        assert!(err.contains("(connect)"), "{err}");
        let tls = Source::FullUri {
            url: format!("https://{}/x", endpoint.authority),
            token: None,
        };
        let err = Provider::new(tls, Duration::from_secs(2))
            .get(0)
            .unwrap_err();
        assert!(err.starts_with("GET https://127.0.0.1:"), "{err}");
    }
}
