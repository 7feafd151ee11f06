//! AWS Signature Version 4 for one HTTP request (remote write to AMP, SPEC §5): the canonical
//! request, the string to sign, the signing key and the headers to send, with `ring`'s SHA-256
//! and HMAC-SHA256. Also the credentials the ECS endpoint answers, read from its JSON, the
//! region of an AMP workspace URL, whether a 403 says the token expired, and the pieces a
//! test receiver needs to verify a signature ([`parse_authorization`], [`parse_amz_date`]).
//!
//! The canonical request follows the rules of every service but S3:
//! - URI: the path as sent (already percent-encoded once), each segment encoded again with
//!   everything but RFC 3986's unreserved characters escaped (`%` becomes `%25`: a path's
//!   `%20` is signed as `%2520`), nothing normalised (no `.`/`..` removal, no `//` merging: the
//!   exporter never sends those). An empty path is `/`. For a path of unreserved characters
//!   only, such as AMP's `/workspaces/ws-…/api/v1/remote_write`, every reading of the rules
//!   agrees.
//! - Query: each `name=value` pair percent-decoded then encoded the same way (so an already
//!   encoded query keeps its form, `+` is a literal plus), sorted by name then value; a name
//!   without `=` has an empty value.
//! - Headers: names lower-cased, values trimmed with inner runs of spaces and tabs collapsed to
//!   one space, sorted by name; a name given twice is one line, its values joined by `,`. `host`
//!   is always signed, from [`Request::host`].
//!
//! Out of scope: fetching credentials and knowing the time (`push::credentials` and the
//! pusher), S3's single encoding and chunked payloads, query-string (presigned) signing.

use std::fmt;

use ring::{digest, hmac};

use super::payload::{self, Json};
use super::rfc3339;

/// The signing algorithm, as the `authorization` header names it.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// AWS credentials: a key pair, with a session token for temporary ones.
#[derive(Clone, PartialEq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// Unix seconds; None = never expires (static env keys)
    pub expiration: Option<i64>,
}

/// Shows the key id and the expiry, never the secret or the token.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |set: bool| if set { "<redacted>" } else { "<none>" };
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &redacted(true))
            .field("session_token", &redacted(self.session_token.is_some()))
            .field("expiration", &self.expiration)
            .finish()
    }
}

/// What is signed.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// As in the Host header, with `:port` if not the scheme's default.
    pub host: &'a str,
    /// The path as sent, already URI-encoded.
    pub path: &'a str,
    /// The raw query string, may be "".
    pub query: &'a str,
    /// The other headers to sign (`content-type`, `content-encoding`,
    /// `x-prometheus-remote-write-version`). A `host` among them is ignored: [`Request::host`]
    /// is signed instead.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// The headers to add to the request: `x-amz-date`, `x-amz-content-sha256` (hex SHA-256 of the
/// body), `x-amz-security-token` when there is a session token, and `authorization`. All but
/// `authorization` are signed, with `host` and the request's own headers. `unix_seconds` is the
/// signing time.
pub fn sign(
    request: &Request,
    credentials: &Credentials,
    region: &str,
    service: &str,
    unix_seconds: i64,
) -> Vec<(&'static str, String)> {
    let mut added = vec![
        ("x-amz-date", amz_date(unix_seconds)),
        ("x-amz-content-sha256", hex(digest_of(request.body))),
    ];
    if let Some(token) = &credentials.session_token {
        added.push(("x-amz-security-token", token.clone()));
    }
    let mut headers: Vec<(&str, &str)> = request.headers.to_vec();
    headers.extend(added.iter().map(|(n, v)| (*n, v.as_str())));
    let signed = Request {
        headers: &headers,
        ..*request
    };
    let authorization = authorization(&signed, credentials, region, service, unix_seconds);
    added.push(("authorization", authorization));
    added
}

/// The `authorization` value of `request` exactly as given: `host` and every header in
/// `request.headers` are signed, and nothing is added, so the headers must already hold
/// `x-amz-date` (the date of `unix_seconds`) and whatever else is sent signed. [`sign`] is
/// this plus the `x-amz-*` headers; a verifier calls it with the headers a request names in
/// `SignedHeaders` and compares.
pub fn authorization(
    request: &Request,
    credentials: &Credentials,
    region: &str,
    service: &str,
    unix_seconds: i64,
) -> String {
    let (canonical, signed_headers) = canonical_request(request);
    let date_time = amz_date(unix_seconds);
    let date = &date_time[..8];
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "{ALGORITHM}\n{date_time}\n{scope}\n{}",
        hex(digest_of(canonical.as_bytes()))
    );
    let mut key = format!("AWS4{}", credentials.secret_access_key).into_bytes();
    for part in [date, region, service, "aws4_request"] {
        key = hmac_of(&key, part.as_bytes());
    }
    let signature = hex(hmac_of(&key, string_to_sign.as_bytes()));
    format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        credentials.access_key_id
    )
}

/// The canonical request and its `SignedHeaders` list (`content-type;host;x-amz-date`).
pub fn canonical_request(request: &Request) -> (String, String) {
    let mut headers: Vec<(String, String)> = vec![("host".to_owned(), value(request.host))];
    for (name, v) in request.headers {
        let name = name.to_ascii_lowercase();
        if name != "host" {
            headers.push((name, value(v)));
        }
    }
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let mut lines = String::new();
    let mut names: Vec<&str> = Vec::new();
    for (name, v) in &headers {
        if names.last() == Some(&name.as_str()) {
            lines.pop();
            lines.push(',');
        } else {
            names.push(name);
            lines.push_str(name);
            lines.push(':');
        }
        lines.push_str(v);
        lines.push('\n');
    }
    let signed_headers = names.join(";");
    let canonical = format!(
        "{}\n{}\n{}\n{lines}\n{signed_headers}\n{}",
        request.method,
        canonical_uri(request.path),
        canonical_query(request.query),
        hex(digest_of(request.body))
    );
    (canonical, signed_headers)
}

/// A header value as signed: trimmed, inner runs of whitespace one space.
fn value(v: &str) -> String {
    v.split_ascii_whitespace().collect::<Vec<_>>().join(" ")
}

fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    path.split('/').map(encode).collect::<Vec<_>>().join("/")
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, v) = pair.split_once('=').unwrap_or((pair, ""));
            (encode(&decode(name)), encode(&decode(v)))
        })
        .collect();
    pairs.sort();
    let pairs: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect();
    pairs.join("&")
}

/// Percent-encodes every byte but RFC 3986's unreserved `A-Z a-z 0-9 - . _ ~`, upper-case hex.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Undoes `%XX` escapes (a `%` not followed by two hex digits stays); `+` is a plus.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], escaped) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn digest_of(data: &[u8]) -> digest::Digest {
    digest::digest(&digest::SHA256, data)
}

fn hmac_of(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::sign(&key, data).as_ref().to_vec()
}

fn hex(bytes: impl AsRef<[u8]>) -> String {
    bytes.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// `YYYYMMDDTHHMMSSZ`, the `x-amz-date` of a Unix time (its first 8 characters are the
/// credential scope's date).
pub fn amz_date(unix_seconds: i64) -> String {
    let time = rfc3339::format(i128::from(unix_seconds) * 1_000_000_000);
    let digits: String = time.chars().take(19).filter(char::is_ascii_digit).collect();
    let (date, clock) = digits.split_at(digits.len().saturating_sub(6));
    format!("{date}T{clock}Z")
}

/// The Unix time of an `x-amz-date` (`20150830T123600Z`), for a verifier.
pub fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let part = |r: std::ops::Range<usize>| s.get(r);
    let time = format!(
        "{}-{}-{}T{}:{}:{}Z",
        part(0..4)?,
        part(4..6)?,
        part(6..8)?,
        part(9..11)?,
        part(11..13)?,
        part(13..15)?
    );
    i64::try_from(rfc3339::parse(&time)?.div_euclid(1_000_000_000)).ok()
}

/// An `authorization` header taken apart (for a verifier: which key signed, which headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization<'a> {
    pub access_key_id: &'a str,
    /// The scope's `YYYYMMDD`.
    pub date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    pub signed_headers: Vec<&'a str>,
    pub signature: &'a str,
}

/// Reads `AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/<service>/aws4_request,
/// SignedHeaders=<a;b>, Signature=<hex>`; `None` when it is not that.
pub fn parse_authorization(value: &str) -> Option<Authorization<'_>> {
    let rest = value.strip_prefix(ALGORITHM)?.strip_prefix(' ')?;
    let mut fields = rest.split(',').map(str::trim);
    let credential = fields.next()?.strip_prefix("Credential=")?;
    let signed = fields.next()?.strip_prefix("SignedHeaders=")?;
    let signature = fields.next()?.strip_prefix("Signature=")?;
    let mut scope = credential.rsplitn(5, '/');
    let terminator = scope.next()?;
    let (service, region, date) = (scope.next()?, scope.next()?, scope.next()?);
    let access_key_id = scope.next()?;
    if terminator != "aws4_request" || fields.next().is_some() {
        return None;
    }
    Some(Authorization {
        access_key_id,
        date,
        region,
        service,
        signed_headers: signed.split(';').collect(),
        signature,
    })
}

/// The region of an AMP URL host: `aps-workspaces.<region>.amazonaws.com` (also
/// `.amazonaws.com.cn`), with or without a `:port`, any case; else None.
pub fn region_from_host(host: &str) -> Option<String> {
    let host = host.to_ascii_lowercase();
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => &host,
    };
    let inner = name.strip_prefix("aps-workspaces.")?;
    let region = inner
        .strip_suffix(".amazonaws.com")
        .or_else(|| inner.strip_suffix(".amazonaws.com.cn"))?;
    let label = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
    (!region.is_empty() && region.bytes().all(label)).then(|| region.to_owned())
}

/// Whether the body of a 403 says that the session token expired (AWS's `ExpiredToken`,
/// `ExpiredTokenException`, "The security token included in the request is expired"): then
/// fetching credentials again helps. A "Signature expired" (a clock off by minutes) is not.
pub fn is_expired_token(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body).to_ascii_lowercase();
    text.contains("expiredtoken") || text.contains("token included in the request is expired")
}

/// The JSON the ECS credentials endpoint answers: `{AccessKeyId, SecretAccessKey, Token,
/// Expiration (RFC 3339)}`, all four required and non-empty; an error naming the missing or
/// bad field otherwise (never a value: they are secrets).
pub fn parse_credentials(body: &[u8]) -> Result<Credentials, String> {
    let json =
        payload::parse_json(body).map_err(|_| "the credentials answer is not JSON".to_owned())?;
    let Json::Object(fields) = &json else {
        return Err("the credentials answer is not a JSON object".to_owned());
    };
    let field = |name: &str| match fields.get(name).and_then(Json::as_str) {
        Some(v) if !v.is_empty() => Ok(v.to_owned()),
        _ => Err(format!("the credentials answer has no {name}")),
    };
    let access_key_id = field("AccessKeyId")?;
    let secret_access_key = field("SecretAccessKey")?;
    let session_token = Some(field("Token")?);
    let expiration = rfc3339::parse(&field("Expiration")?)
        .and_then(|ns| i64::try_from(ns.div_euclid(1_000_000_000)).ok())
        .ok_or("the credentials answer's Expiration is not an RFC 3339 time")?;
    Ok(Credentials {
        access_key_id,
        secret_access_key,
        session_token,
        expiration: Some(expiration),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials(id: &str, secret: &str, token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: id.to_owned(),
            secret_access_key: secret.to_owned(),
            session_token: token.map(str::to_owned),
            expiration: None,
        }
    }

    /// 2015-08-30T12:36:00Z, the time of the AWS documentation's examples.
    const AWS_EXAMPLE_TIME: i64 = 1_440_938_160;

    #[test]
    fn the_aws_documentation_example_signs_alike() {
        // "Create a canonical request for Signature Version 4" / "Examples of the complete
        // Signature Version 4 signing process" (IAM ListUsers, GET), without
        // x-amz-content-sha256: the lower-level function signs exactly the given headers.
        let request = Request {
            method: "GET",
            host: "iam.amazonaws.com",
            path: "/",
            query: "Action=ListUsers&Version=2010-05-08",
            headers: &[
                (
                    "Content-Type",
                    "application/x-www-form-urlencoded; charset=utf-8",
                ),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            body: b"",
        };
        let (canonical, signed) = canonical_request(&request);
        assert_eq!(
            canonical,
            "GET\n/\nAction=ListUsers&Version=2010-05-08\n\
             content-type:application/x-www-form-urlencoded; charset=utf-8\n\
             host:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
             content-type;host;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(signed, "content-type;host;x-amz-date");
        assert_eq!(
            hex(digest_of(canonical.as_bytes())),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        let key = credentials(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
        );
        assert_eq!(
            authorization(&request, &key, "us-east-1", "iam", AWS_EXAMPLE_TIME),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    // The two requests below were signed by botocore 1.43.11's SigV4Auth, the signer of the AWS
    // CLI and boto3, as an oracle independent of this file:
    //
    //   import datetime, hashlib
    //   from unittest import mock
    //   from botocore.auth import SigV4Auth
    //   from botocore.awsrequest import AWSRequest
    //   from botocore.credentials import Credentials
    //   def sign(method, url, headers, body, creds, region, service, when):
    //       req = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    //       req.headers['X-Amz-Content-SHA256'] = hashlib.sha256(body).hexdigest()
    //       with mock.patch('botocore.auth.get_current_datetime', return_value=when):
    //           SigV4Auth(creds, service, region).add_auth(req)
    //       for k, v in req.headers.items():
    //           print(f'{k}: {v}')
    //   sign('POST', 'https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/'
    //        'ws-0f8a1c2e-1111-2222-3333-444455556666/api/v1/remote_write',
    //        [('Content-Encoding', 'snappy'), ('Content-Type', 'application/x-protobuf'),
    //         ('X-Prometheus-Remote-Write-Version', '0.1.0')],
    //        bytes(range(256)) + b'\x00\xff snappy',
    //        Credentials('ASIAEXAMPLEKEY123456', 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    //                    'IQoJb3JpZ2luX2VjEXAMPLETOKEN//////////wEaCXVzLWVhc3QtMSJHMEUCIQ=='),
    //        'eu-west-1', 'aps', datetime.datetime(2025, 2, 27, 5, 22, 49))
    //   sign('POST', 'http://127.0.0.1:9090/api/v1/write%20x?b=2&a=%20x&a=1',
    //        [('Content-Type', 'application/x-protobuf'), ('X-Custom', '  a   b  c ')], b'',
    //        Credentials('AKIDEXAMPLE', 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY'),
    //        'us-east-1', 'aps', datetime.datetime(2015, 8, 30, 12, 36, 0))
    //
    // botocore adds `x-amz-content-sha256` only for S3; set on the request before signing, it
    // is signed like any header, as `sign` does.

    #[test]
    fn a_remote_write_request_signs_as_botocore_does() {
        let body = [
            (0..=255u8).collect::<Vec<u8>>(),
            b"\x00\xff snappy".to_vec(),
        ]
        .concat();
        let request = Request {
            method: "POST",
            host: "aps-workspaces.eu-west-1.amazonaws.com",
            path: "/workspaces/ws-0f8a1c2e-1111-2222-3333-444455556666/api/v1/remote_write",
            query: "",
            headers: &[
                ("Content-Encoding", "snappy"),
                ("Content-Type", "application/x-protobuf"),
                ("X-Prometheus-Remote-Write-Version", "0.1.0"),
            ],
            body: &body,
        };
        let key = credentials(
            "ASIAEXAMPLEKEY123456",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            Some("IQoJb3JpZ2luX2VjEXAMPLETOKEN//////////wEaCXVzLWVhc3QtMSJHMEUCIQ=="),
        );
        let headers = sign(&request, &key, "eu-west-1", "aps", 1_740_633_769);
        let expected = [
            ("x-amz-date", "20250227T052249Z"),
            (
                "x-amz-content-sha256",
                "22591cd328ad2bb391c99d93a015db50d1d6138a2f5df48ce7cbba1d52158e47",
            ),
            (
                "x-amz-security-token",
                "IQoJb3JpZ2luX2VjEXAMPLETOKEN//////////wEaCXVzLWVhc3QtMSJHMEUCIQ==",
            ),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLEKEY123456/20250227/eu-west-1/aps/aws4_request, \
                 SignedHeaders=content-encoding;content-type;host;x-amz-content-sha256;x-amz-date;\
                 x-amz-security-token;x-prometheus-remote-write-version, \
                 Signature=9b412df16f4651320da232f1c9b6deaae53dba790f8ed390eec98ac4bf0f9d91",
            ),
        ];
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        assert_eq!(headers, expected);
    }

    #[test]
    fn a_port_a_query_an_escaped_path_and_spaced_values_sign_as_botocore_does() {
        let request = Request {
            method: "POST",
            host: "127.0.0.1:9090",
            path: "/api/v1/write%20x",
            query: "b=2&a=%20x&a=1",
            headers: &[
                ("Content-Type", "application/x-protobuf"),
                ("X-Custom", "  a   b  c "),
            ],
            body: b"",
        };
        let (canonical, _) = canonical_request(&request);
        assert!(
            canonical.starts_with("POST\n/api/v1/write%2520x\na=%20x&a=1&b=2\n"),
            "{canonical}"
        );
        let key = credentials(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
        );
        let headers = sign(&request, &key, "us-east-1", "aps", AWS_EXAMPLE_TIME);
        assert_eq!(
            headers.len(),
            3,
            "no session token, no x-amz-security-token"
        );
        assert_eq!(
            headers[2],
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/aps/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-custom, \
                 Signature=a9afc19dd2c1557ccc47051ec044635e1a2a2a799f18afa8a16cdb94cbe87c39"
                    .to_owned()
            )
        );
    }

    #[test]
    fn canonical_parts() {
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri("/a b/ü/%41"), "/a%20b/%C3%BC/%2541");
        assert_eq!(canonical_query(""), "");
        assert_eq!(canonical_query("z&y=&a=b+c&a=%2a"), "a=%2A&a=b%2Bc&y=&z=");
        assert_eq!(canonical_query("k=%zz"), "k=%25zz");
        assert_eq!(value("  a \t b  "), "a b");
        let request = Request {
            method: "GET",
            host: "h",
            path: "/",
            query: "",
            headers: &[("X-A", "1"), ("host", "ignored"), ("x-a", " 2 ")],
            body: b"",
        };
        let (canonical, signed) = canonical_request(&request);
        assert!(
            canonical.contains("\nhost:h\nx-a:1,2\n\nhost;x-a\n"),
            "{canonical}"
        );
        assert_eq!(signed, "host;x-a");
    }

    #[test]
    fn amz_dates_both_ways() {
        assert_eq!(amz_date(AWS_EXAMPLE_TIME), "20150830T123600Z");
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(AWS_EXAMPLE_TIME));
        assert_eq!(
            parse_amz_date(&amz_date(1_740_633_769)),
            Some(1_740_633_769)
        );
        for bad in [
            "",
            "20150830T123600",
            "2015-08-30T12:36:00Z",
            "20151330T123600Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_authorization_reads_back() {
        let request = Request {
            method: "POST",
            host: "h",
            path: "/w",
            query: "",
            headers: &[("content-type", "x")],
            body: b"b",
        };
        let key = credentials("AKID/X", "s", Some("t"));
        let headers = sign(&request, &key, "us-west-2", "aps", AWS_EXAMPLE_TIME);
        let parsed = parse_authorization(&headers[3].1).unwrap();
        assert_eq!(parsed.access_key_id, "AKID/X");
        assert_eq!(
            (parsed.date, parsed.region, parsed.service),
            ("20150830", "us-west-2", "aps")
        );
        assert_eq!(
            parsed.signed_headers,
            [
                "content-type",
                "host",
                "x-amz-content-sha256",
                "x-amz-date",
                "x-amz-security-token"
            ]
        );
        assert_eq!(parsed.signature.len(), 64);
        // A verifier recomputes from the signed headers alone.
        let sent: Vec<(&str, &str)> = [("content-type", "x")]
            .into_iter()
            .chain(headers[..3].iter().map(|(n, v)| (*n, v.as_str())))
            .collect();
        let again = Request {
            headers: &sent,
            ..request
        };
        assert_eq!(
            authorization(&again, &key, "us-west-2", "aps", AWS_EXAMPLE_TIME),
            headers[3].1
        );
        for bad in [
            "",
            "Bearer x",
            "AWS4-HMAC-SHA256 Credential=a/b/c/d/other, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 Credential=a/b/c, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 SignedHeaders=host, Credential=a/b/c/d/aws4_request, Signature=00",
        ] {
            assert_eq!(parse_authorization(bad), None, "{bad}");
        }
    }

    #[test]
    fn regions_of_amp_hosts() {
        let region = |h| region_from_host(h);
        assert_eq!(
            region("aps-workspaces.eu-west-1.amazonaws.com").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            region("APS-Workspaces.cn-north-1.amazonaws.com.cn:443").as_deref(),
            Some("cn-north-1")
        );
        assert_eq!(
            region("aps-workspaces.us-gov-west-1.amazonaws.com").as_deref(),
            Some("us-gov-west-1")
        );
        for other in [
            "",
            "localhost:9090",
            "aps-workspaces.amazonaws.com",
            "aps-workspaces..amazonaws.com",
            "aps-workspaces.a.b.amazonaws.com",
            "aps.us-east-1.amazonaws.com",
            "aps-workspaces.us-east-1.amazonaws.com.evil.example",
            "prometheus-prod-01-eu-west-0.grafana.net",
        ] {
            assert_eq!(region(other), None, "{other}");
        }
    }

    #[test]
    fn the_endpoint_answer_reads_into_credentials() {
        let body = br#"{"RoleArn":"arn:aws:iam::111122223333:role/sim","AccessKeyId":"ASIAX",
            "SecretAccessKey":"secret","Token":"token","Expiration":"2025-02-27T06:22:49Z"}"#;
        assert_eq!(
            parse_credentials(body),
            Ok(Credentials {
                access_key_id: "ASIAX".to_owned(),
                secret_access_key: "secret".to_owned(),
                session_token: Some("token".to_owned()),
                expiration: Some(1_740_637_369),
            })
        );
        let missing = |body: &str| parse_credentials(body.as_bytes()).unwrap_err();
        assert_eq!(missing("not json"), "the credentials answer is not JSON");
        assert_eq!(missing("[]"), "the credentials answer is not a JSON object");
        let full = r#""AccessKeyId":"A","SecretAccessKey":"S","Token":"T""#;
        assert_eq!(
            missing(&format!("{{{full}}}")),
            "the credentials answer has no Expiration"
        );
        assert!(missing(&format!(r#"{{{full},"Expiration":"soon"}}"#)).contains("RFC 3339"));
        let no_token = r#"{"AccessKeyId":"A","SecretAccessKey":"S","Token":"","Expiration":"2025-02-27T06:22:49Z"}"#;
        assert_eq!(missing(no_token), "the credentials answer has no Token");
        let error = r#"{"code":"InvalidIdInRequest","message":"Credentials not found"}"#;
        assert_eq!(missing(error), "the credentials answer has no AccessKeyId");
    }

    #[test]
    fn expired_tokens_are_told_from_other_403s() {
        for expired in [
            r#"{"message":"The security token included in the request is expired"}"#,
            "<Error><Code>ExpiredToken</Code></Error>",
            r#"{"__type":"com.amazon.coral.service#ExpiredTokenException"}"#,
        ] {
            assert!(is_expired_token(expired.as_bytes()), "{expired}");
        }
        for other in [
            r#"{"message":"Signature expired: 20150830T123600Z is now earlier than ..."}"#,
            r#"{"message":"The security token included in the request is invalid."}"#,
            r#"{"Message":"User: arn:aws:sts::1:assumed-role/r is not authorized"}"#,
            "",
        ] {
            assert!(!is_expired_token(other.as_bytes()), "{other}");
        }
    }

    #[test]
    fn debug_never_shows_the_secret_or_the_token() {
        let key = credentials("AKIDEXAMPLE", "very-secret-key", Some("session-tok"));
        let shown = format!("{key:?} {key:#?}");
        assert!(shown.contains("AKIDEXAMPLE"), "{shown}");
        assert!(!shown.contains("very-secret-key"), "{shown}");
        assert!(!shown.contains("session-tok"), "{shown}");
        assert!(format!("{:?}", credentials("A", "s", None)).contains("<none>"));
    }
}
