//! Remote write (SPEC §5) signed with AWS SigV4, checked by botocore: `tests/sigv4_proxy.py`
//! computes each request's signature again with botocore's `SigV4Auth` (over exactly the headers
//! the request signed, its `X-Amz-Date` and its body) and forwards only a matching request to a
//! real Prometheus; it counts outcomes per access key id.
//!
//! - Static keys (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) with the
//!   region from `AWS_REGION` (a 127.0.0.1 URL names none): accepted, every series arrives. A
//!   wrong secret and a wrong region are refused (403, dropped), so the proxy does check.
//! - Task-role credentials from the simulator (`AWS_CONTAINER_CREDENTIALS_FULL_URI` with
//!   `AWS_CONTAINER_AUTHORIZATION_TOKEN`; 20-second credentials, a new key at half-life): every
//!   request accepted across a rotation, none retried or dropped, and more than one key used.
//!   The region from the AMP host name is a unit test's (`core::sigv4`).
//!
//! Needs `prometheus` (≥ 2.33) and python3 with botocore (Debian python3-botocore): without one
//! a test fails under `CI=true`, else says `skipping: …`.
#![cfg(feature = "remote-write")]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::prometheus::Prometheus;
use common::push::{
    Watch, arrives, complaints_with, counted, outcome, prometheus_receiver, prometheus_receives,
};
use common::{Exporter, Sim, http_get, runs, skip, wait_for};
use serde_json::Value;

/// `tests/sigv4_proxy.py`: verifies each request's SigV4 with botocore, forwards the good ones.
struct Proxy {
    child: Child,
    url: String,
    addr: SocketAddr,
}

impl Proxy {
    fn start(args: &[&str]) -> Proxy {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sigv4_proxy.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start sigv4_proxy.py");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("proxy stdout");
        let _ = BufReader::new(stdout).read_line(&mut line);
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("sigv4_proxy.py: {line:?}"))
            .to_owned();
        let addr = url.trim_start_matches("http://").parse().expect("address");
        Proxy {
            child,
            url: format!("{url}/api/v1/write"),
            addr,
        }
    }

    /// Outcomes per access key id: `{"AKID": {"accepted": n, "mismatch": n, …}}`.
    fn by_key(&self) -> serde_json::Map<String, Value> {
        let (status, _, body) = http_get(self.addr, "/stats", &[]).expect("proxy stats");
        assert_eq!(status, 200, "{body}");
        let stats: Value = serde_json::from_str(&body).expect("stats JSON");
        stats["by_key"].as_object().cloned().unwrap_or_default()
    }

    fn stats(&self) -> String {
        http_get(self.addr, "/stats", &[])
            .map(|(_, _, b)| b)
            .unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn count(by_key: &serde_json::Map<String, Value>, key: &str, outcome: &str) -> u64 {
    by_key[key][outcome].as_u64().unwrap_or(0)
}

/// Prometheus and botocore, or `None` (skipped).
fn sigv4_setup(proxy_args: &[&str]) -> Option<(Prometheus, Proxy)> {
    if !prometheus_receives() {
        return None;
    }
    if !runs("python3", &["-c", "import botocore.auth"]) {
        skip("python3 with botocore is not installed (Debian package python3-botocore)");
        return None;
    }
    let prometheus = prometheus_receiver(&[], None);
    let upstream = format!("http://{}/api/v1/write", prometheus.addr);
    let mut args = vec!["--upstream", &upstream, "--region", "eu-west-3"];
    args.extend(proxy_args);
    let proxy = Proxy::start(&args);
    Some((prometheus, proxy))
}

#[test]
fn sigv4_with_static_keys_and_the_region_of_aws_region_is_what_botocore_computes() {
    let Some((prometheus, proxy)) = sigv4_setup(&[
        "--key",
        "AKIAGOODGOODGOOD0001:good/secret+key:the-session-token",
        "--key",
        "AKIAWRONGSECRET00002:the-real-secret",
        "--key",
        "AKIAWRONGREGION00003:region-secret",
    ]) else {
        return;
    };
    let sim = Sim::start(&["--profile", "ec2-bridge"]);
    let start = |run: &str, key: &str, secret: &str, region: &str, token: Option<&str>| {
        let label = format!("run={run}");
        let args = [
            "--interval",
            "1",
            "--remote-write-url",
            &proxy.url,
            "--remote-write-sigv4",
            "--remote-write-label",
            &label,
        ];
        let mut env = vec![
            ("AWS_ACCESS_KEY_ID", key),
            ("AWS_SECRET_ACCESS_KEY", secret),
            ("AWS_REGION", region),
        ];
        env.extend(token.map(|t| ("AWS_SESSION_TOKEN", t)));
        Exporter::start(&sim.url, &args, &env)
    };
    let good = start(
        "static",
        "AKIAGOODGOODGOOD0001",
        "good/secret+key",
        "eu-west-3",
        Some("the-session-token"),
    );
    let wrong_secret = start(
        "wrong-secret",
        "AKIAWRONGSECRET00002",
        "not-it",
        "eu-west-3",
        None,
    );
    let wrong_region = start(
        "wrong-region",
        "AKIAWRONGREGION00003",
        "region-secret",
        "us-east-1",
        None,
    );

    arrives(&prometheus, &good, "static");
    let s = counted(&good, |s| outcome(s, "sent") >= 3.0);
    assert_eq!(outcome(&s, "retried") + outcome(&s, "dropped"), 0.0);
    for refused in [&wrong_secret, &wrong_region] {
        let s = counted(refused, |s| outcome(s, "dropped") >= 2.0);
        assert_eq!(outcome(&s, "sent"), 0.0);
        let logs = refused.logs();
        assert_eq!(complaints_with(&logs, &proxy.url, "403").len(), 1, "{logs}");
    }
    let by_key = proxy.by_key();
    let stats = proxy.stats();
    let good_key = by_key["AKIAGOODGOODGOOD0001"]
        .as_object()
        .expect("good key");
    assert!(
        good_key.len() == 1 && count(&by_key, "AKIAGOODGOODGOOD0001", "accepted") >= 3,
        "{stats}"
    );
    for key in ["AKIAWRONGSECRET00002", "AKIAWRONGREGION00003"] {
        assert!(count(&by_key, key, "mismatch") >= 2, "{stats}");
        assert_eq!(count(&by_key, key, "accepted"), 0, "{stats}");
    }
    eprintln!("botocore: {stats}");
}

#[test]
fn sigv4_with_task_role_credentials_is_accepted_across_a_rotation() {
    let sim = Sim::start(&[
        "--profile",
        "ec2-bridge",
        "--credentials-lifetime",
        "20",
        "--credentials-token",
        "sim-token",
    ]);
    let credentials = format!("{}/control/credentials", sim.url);
    let Some((prometheus, proxy)) = sigv4_setup(&["--credentials-url", &credentials]) else {
        return;
    };
    let full_uri = format!("{}/v2/credentials/5f3c2a1e-rw-test", sim.url);
    let exporter = Exporter::start(
        &sim.url,
        &[
            "--interval",
            "1",
            "--remote-write-url",
            &proxy.url,
            "--remote-write-sigv4",
            "--remote-write-sigv4-region",
            "eu-west-3",
            "--remote-write-label",
            "run=task-role",
        ],
        &[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", full_uri.as_str()),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "sim-token"),
        ],
    );
    let watch = Watch::start(exporter.addr);
    arrives(&prometheus, &exporter, "task-role");
    // Keys rotate at half their lifetime (10 s): wait for three pushes with the second key.
    let mut stats = String::new();
    let rotated = wait_for(Duration::from_secs(75), || {
        stats = proxy.stats();
        let by_key = proxy.by_key();
        let mut accepted: Vec<u64> = by_key
            .values()
            .map(|o| o["accepted"].as_u64().unwrap_or(0))
            .collect();
        accepted.sort();
        by_key.len() >= 2 && accepted[accepted.len() - 2] >= 3
    });
    assert!(rotated, "no rotation seen: {stats}\n{}", exporter.logs());
    let by_key = proxy.by_key();
    for (key, outcomes) in &by_key {
        let outcomes = outcomes.as_object().expect("outcomes");
        assert!(
            outcomes.keys().all(|o| o == "accepted"),
            "{key}: {outcomes:?}\n{}",
            exporter.logs()
        );
    }
    let s = exporter.scrape();
    assert_eq!(
        (outcome(&s, "retried"), outcome(&s, "dropped")),
        (0.0, 0.0),
        "{}",
        exporter.logs()
    );
    watch.finish();
    let logs = exporter.stop_and_logs();
    assert!(!logs.contains("sim-token"), "{logs}");
    eprintln!("keys used: {stats}");
}
