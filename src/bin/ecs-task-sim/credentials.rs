//! The ECS container-credentials endpoint (`GET /v2/credentials/<id>`, what
//! `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` names in a task), for remote
//! write's SigV4 tests: reach it with `AWS_CONTAINER_CREDENTIALS_FULL_URI=
//! http://127.0.0.1:<port>/v2/credentials/<any id>`.
//!
//! - The answer is the agent's JSON: `RoleArn`, `AccessKeyId` (`ASIA…`),
//!   `SecretAccessKey`, `Token`, `Expiration` (RFC 3339, whole seconds, UTC).
//! - Credentials live `--credentials-lifetime` seconds (default 3600). The
//!   same ones are answered until less than half their lifetime is left; the
//!   next request then gets fresh ones (a new key id), as the agent rotates
//!   them before they expire. So a client that fetches at half-life sees a
//!   new key every time, and rotation is visible.
//! - With `--credentials-token T`, a request whose `Authorization` header is
//!   not exactly `T` (or that has none) is answered 401, as the EKS Pod
//!   Identity agent does; without the flag any `Authorization` is accepted.
//! - `GET /control/credentials`: the credentials issued and not yet expired,
//!   as a JSON list of `{AccessKeyId, SecretAccessKey, Token, Expiration}`,
//!   oldest first, so a test's receiver can check signatures against them.
//!
//! It leaves out the agent's other answers (`/v2/metadata`, the
//! `AccessDenied` codes), real STS keys, and serving on 169.254.170.2.

use ecs_container_exporter::core::rfc3339;
use serde_json::{Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

/// The role every answer names.
const ROLE_ARN: &str = "arn:aws:iam::111122223333:role/sim";

/// Issued credentials, one set current at a time.
pub struct Issuer {
    /// Seconds each set lives.
    lifetime: u64,
    /// `--credentials-token`: the `Authorization` required, if any.
    token: Option<String>,
    /// Issued and not yet known to have expired, oldest first.
    issued: Vec<Issued>,
    /// Sets issued so far (the key ids' serial).
    serial: u64,
    /// Makes one run's secrets differ from another's.
    nonce: u64,
}

struct Issued {
    access_key_id: String,
    secret_access_key: String,
    token: String,
    /// Unix seconds.
    issued: i64,
    expiration: i64,
}

impl Issued {
    fn json(&self) -> Value {
        json!({
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "Token": self.token,
            "Expiration": expiration(self.expiration),
        })
    }
}

/// RFC 3339 without a fraction, as the agent writes it: `2025-02-27T05:22:49Z`.
fn expiration(unix: i64) -> String {
    let full = rfc3339::format(i128::from(unix) * 1_000_000_000);
    format!("{}Z", full.split('.').next().unwrap_or(&full))
}

/// Unix seconds now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Issuer {
    pub fn new(lifetime: u64, token: Option<String>) -> Issuer {
        let nonce = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Issuer {
            lifetime,
            token,
            issued: Vec::new(),
            serial: 0,
            nonce,
        }
    }

    /// The answer to `GET /v2/credentials/<id>` with this `Authorization`
    /// header at `now` (Unix seconds): a status and its JSON body.
    pub fn answer(&mut self, authorization: Option<&str>, now: i64) -> (u16, Value) {
        if let Some(token) = &self.token
            && authorization != Some(token.as_str())
        {
            let message = "Authorization header does not match --credentials-token";
            return (401, json!({"code": "AccessDenied", "message": message}));
        }
        let lifetime = i64::try_from(self.lifetime).unwrap_or(i64::MAX);
        let fresh = self
            .issued
            .last()
            .is_some_and(|c| now - c.issued < lifetime - lifetime / 2);
        if !fresh {
            self.serial += 1;
            let (n, nonce) = (self.serial, self.nonce);
            self.issued.push(Issued {
                access_key_id: format!("ASIASIM{n:013}"),
                secret_access_key: format!("sim/{nonce:016x}+secret{n:012}"),
                token: format!("IQoJsim//{nonce:016x}/token/{n}+AAAA=="),
                issued: now,
                expiration: now.saturating_add(lifetime),
            });
        }
        let mut body = self.issued.last().map_or(Value::Null, Issued::json);
        body["RoleArn"] = ROLE_ARN.into();
        (200, body)
    }

    /// `/control/credentials`: the sets not yet expired at `now`, oldest first.
    pub fn valid(&mut self, now: i64) -> Value {
        self.issued.retain(|c| c.expiration > now);
        self.issued.iter().map(Issued::json).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(answer: &(u16, Value)) -> &str {
        answer.1["AccessKeyId"].as_str().expect("a key id")
    }

    #[test]
    fn keys_rotate_at_half_their_lifetime_and_stay_valid_until_they_expire() {
        let mut issuer = Issuer::new(90, None);
        let first = issuer.answer(None, 1000);
        assert_eq!(first.0, 200);
        assert_eq!(key(&first), "ASIASIM0000000000001");
        assert_eq!(first.1["Expiration"], "1970-01-01T00:18:10Z");
        assert_eq!(first.1["RoleArn"], ROLE_ARN);
        assert_eq!(key(&issuer.answer(None, 1044)), "ASIASIM0000000000001");
        let second = issuer.answer(None, 1045);
        assert_eq!(key(&second), "ASIASIM0000000000002");
        assert_ne!(second.1["SecretAccessKey"], first.1["SecretAccessKey"]);
        assert_ne!(second.1["Token"], first.1["Token"]);
        assert_eq!(second.1["Expiration"], "1970-01-01T00:18:55Z");

        let ids = |v: Value| -> Vec<String> {
            let list = v.as_array().cloned().unwrap_or_default();
            list.iter().map(|c| c["AccessKeyId"].to_string()).collect()
        };
        assert_eq!(issuer.valid(1089).as_array().map(Vec::len), Some(2));
        assert_eq!(ids(issuer.valid(1090)), [r#""ASIASIM0000000000002""#]);
        let listed = &issuer.valid(1090)[0];
        assert_eq!(listed["Token"], second.1["Token"]);
        assert_eq!(listed.get("RoleArn"), None);
        // Long after: a fresh set, the old ones gone.
        assert_eq!(key(&issuer.answer(None, 5000)), "ASIASIM0000000000003");
        assert_eq!(ids(issuer.valid(5000)), [r#""ASIASIM0000000000003""#]);
    }

    #[test]
    fn the_token_flag_requires_that_authorization() {
        let mut issuer = Issuer::new(3600, Some("s3cret".into()));
        assert_eq!(issuer.answer(None, 0).0, 401);
        assert_eq!(issuer.answer(Some("other"), 0).0, 401);
        assert_eq!(issuer.answer(Some("s3cret"), 0).0, 200);
        let mut open = Issuer::new(3600, None);
        assert_eq!(open.answer(Some("anything"), 0).0, 200);
    }
}
