//! The simulator's container-credentials endpoint (`/v2/credentials/<id>`,
//! `/control/credentials`) over HTTP: the token it requires, keys that rotate at half their
//! lifetime and stay listed until they expire, and the exporter's credentials provider reading
//! them through `AWS_CONTAINER_CREDENTIALS_FULL_URI`'s path.
//!
//! Signing with them, and a receiver that checks the signatures, are the pusher's tests.

mod common;

use std::time::Duration;

use common::{Sim, http_get, wait_for};
use serde_json::Value;

fn answer(sim: &Sim, path: &str, token: Option<&str>) -> (u16, Value) {
    let headers: Vec<(&str, &str)> = token.iter().map(|t| ("Authorization", *t)).collect();
    let (status, _, body) = http_get(sim.addr, path, &headers).expect("GET");
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (status, json)
}

fn listed(sim: &Sim) -> Vec<String> {
    let (status, list) = answer(sim, "/control/credentials", None);
    assert_eq!(status, 200);
    let list = list.as_array().cloned().unwrap_or_default();
    list.iter()
        .map(|c| c["AccessKeyId"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn keys_rotate_at_half_their_lifetime_and_are_listed_until_they_expire() {
    // 4 s credentials: the same key for 2 s, then a new one; each listed for 4 s.
    let sim = Sim::start(&["--credentials-lifetime", "4", "--credentials-token", "tok"]);
    let path = "/v2/credentials/5f3c2a1e-0000-4000-8000-000000000001";
    assert_eq!(answer(&sim, path, None).0, 401);
    assert_eq!(answer(&sim, path, Some("nope")).0, 401);
    assert_eq!(answer(&sim, "/v2/credentials/", Some("tok")).0, 404);

    let (status, first) = answer(&sim, path, Some("tok"));
    assert_eq!(status, 200, "{first}");
    for field in [
        "AccessKeyId",
        "SecretAccessKey",
        "Token",
        "Expiration",
        "RoleArn",
    ] {
        assert!(
            first[field].as_str().is_some_and(|v| !v.is_empty()),
            "{field}: {first}"
        );
    }
    let key = |v: &Value| v["AccessKeyId"].as_str().unwrap_or_default().to_owned();
    assert!(
        key(&first).starts_with("ASIA") && key(&first).len() == 20,
        "{first}"
    );
    assert_eq!(listed(&sim), [key(&first)]);

    let mut second = Value::Null;
    let rotated = wait_for(Duration::from_secs(10), || {
        second = answer(&sim, path, Some("tok")).1;
        key(&second) != key(&first)
    });
    assert!(rotated, "no new key: {second}");
    assert_ne!(second["SecretAccessKey"], first["SecretAccessKey"]);
    assert_eq!(listed(&sim), [key(&first), key(&second)]);
    assert!(
        wait_for(Duration::from_secs(10), || listed(&sim) == [key(&second)]),
        "the first key is still listed after it expired: {:?}",
        listed(&sim)
    );
}

#[cfg(feature = "remote-write")]
#[test]
fn the_exporters_provider_reads_the_simulators_credentials() {
    use ecs_container_exporter::push::credentials::{Provider, Source, Token};

    let sim = Sim::start(&["--credentials-token", "tok"]);
    let url = format!("{}/v2/credentials/abc", sim.url);
    let env = |name: &str| match name {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI" => Some(url.clone()),
        "AWS_CONTAINER_AUTHORIZATION_TOKEN" => Some("tok".to_owned()),
        _ => None,
    };
    let source = ecs_container_exporter::push::credentials::source(&env).expect("allowed");
    assert_eq!(
        source,
        Some(Source::FullUri {
            url: url.clone(),
            token: Some(Token::Value("tok".into()))
        })
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    let mut provider = Provider::new(source.expect("a source"), Duration::from_secs(5));
    let got = provider.get(now).expect("credentials");
    assert_eq!(listed(&sim), [got.access_key_id]);
    let expires_in = got.expiration.expect("an expiration") - now;
    assert!((3598..=3601).contains(&expires_in), "{expires_in}");
    assert!(got.session_token.is_some());
}
