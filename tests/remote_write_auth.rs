//! Remote write (SPEC §5) through TLS and each auth method, against independent checkers:
//!
//! - TLS and basic auth: a real Prometheus with `--web.config.file` (`tls_server_config` with a
//!   certificate made here by `openssl` for IP 127.0.0.1, `basic_auth_users` with a bcrypt hash
//!   from `htpasswd`). The right CA and password: every series arrives. Another CA: a TLS failure,
//!   logged, retried. A wrong password: 401, logged, dropped. `http://` to the TLS port: Go's 400,
//!   logged, dropped. No exporter stops polling or serving.
//! - Basic and bearer headers as sent, secrets from files, never logged (the test's receiver).
//! - SigV4: `tests/sigv4_proxy.py` checks every request with botocore's `SigV4Auth` (the
//!   signature computed again over the headers the request signed) before it forwards it to a
//!   real Prometheus. Static keys with the region from `AWS_REGION` (a 127.0.0.1 URL) are
//!   accepted; a wrong secret and a wrong region are refused (so the proxy does check). Task-role
//!   credentials from the simulator (`AWS_CONTAINER_CREDENTIALS_FULL_URI` with
//!   `AWS_CONTAINER_AUTHORIZATION_TOKEN`, 90-second credentials rotated at half-life) are accepted
//!   across a rotation, with no request refused or retried.
//!
//! Needs `prometheus`, `openssl`, `htpasswd` (apache2-utils) and python3 with botocore (Debian
//! python3-botocore): without one a test fails under `CI=true`, else says `skipping: …`.
#![cfg(feature = "remote-write")]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::prometheus::{Getter, Prometheus, TempDir, prometheus_version, sample_value};
use common::receiver::{Receiver, Watch, complaints_with, outcome};
use common::{Exporter, Scrape, Sim, http_get, runs, skip, wait_for};
use serde_json::Value;

const PATIENCE: Duration = Duration::from_secs(30);
const JOB: &str = "ecs-container-exporter";

fn prometheus_found() -> bool {
    let found = prometheus_version().is_some_and(|v| v >= (2, 33));
    if !found {
        skip("prometheus >= 2.33 is not installed (Debian package prometheus)");
    }
    found
}

/// The series of `run` in Prometheus: (how many, the scrape count they should match).
fn series_count(prometheus: &Prometheus, run: &str) -> usize {
    let result = prometheus.query(&format!("count({{job=\"{JOB}\",run=\"{run}\"}})"), None);
    result
        .first()
        .map_or(0, |r| sample_value(&r["value"]) as usize)
}

/// Waits until Prometheus holds as many series of `run` as `/metrics` shows.
fn arrives(prometheus: &Prometheus, exporter: &Exporter, run: &str) {
    let mut counts = (0, 0);
    let all = wait_for(PATIENCE, || {
        counts = (
            series_count(prometheus, run),
            exporter.scrape().samples.len(),
        );
        counts.0 == counts.1
    });
    assert!(
        all,
        "{run}: {counts:?} series stored vs shown\n{}",
        exporter.logs()
    );
}

/// Waits for a scrape whose counters satisfy `check`.
fn counted(exporter: &Exporter, check: impl Fn(&Scrape) -> bool) -> Scrape {
    let s = exporter.scrape_until(PATIENCE, &check);
    let counts = ["sent", "retried", "dropped"].map(|o| outcome(&s, o));
    assert!(
        check(&s),
        "sent, retried, dropped: {counts:?}\n{}",
        exporter.logs()
    );
    s
}

// ---------------------------------------------------------------------------------------------
// TLS and basic auth against Prometheus' web config.

/// A CA, a certificate for IP 127.0.0.1 that it signed, and another CA; made with openssl.
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn make() -> Option<Pki> {
        if !runs("openssl", &["version"]) {
            skip("openssl is not installed");
            return None;
        }
        let pki = Pki {
            dir: TempDir::new(),
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        for ca in ["ca", "other-ca"] {
            pki.openssl(
                &["req", "-x509"],
                &ec,
                &[
                    "-keyout",
                    &format!("{ca}.key"),
                    "-out",
                    &format!("{ca}.pem"),
                    "-days",
                    "2",
                    "-subj",
                    &format!("/CN=remote-write test {ca}"),
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            );
        }
        pki.openssl(
            &["req"],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        std::fs::write(
            pki.path("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write server.ext");
        pki.openssl(
            &["x509", "-req"],
            &[],
            &[
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );
        Some(pki)
    }

    fn openssl(&self, command: &[&str], key: &[&str], args: &[&str]) {
        let out = Command::new("openssl")
            .args(command)
            .args(key)
            .args(args)
            .current_dir(&self.dir.0)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {command:?} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.0.join(name)
    }
}

/// `user:<bcrypt hash>` as `htpasswd -nbBC 10` writes it.
fn htpasswd(user: &str, password: &str) -> Option<String> {
    let Ok(out) = Command::new("htpasswd")
        .args(["-nbBC", "10", user, password])
        .output()
    else {
        skip("htpasswd is not installed (Debian package apache2-utils)");
        return None;
    };
    assert!(out.status.success(), "htpasswd: {out:?}");
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// GETs over TLS trusting `ca` only, with basic auth.
fn tls_getter(ca: &Path, user: &str, password: &str) -> Getter {
    use ureq::tls::{Certificate, RootCerts, TlsConfig};
    let pem = std::fs::read(ca).expect("read CA");
    let ca = Certificate::from_pem(&pem).expect("CA PEM").to_owned();
    let tls = TlsConfig::builder()
        .root_certs(RootCerts::new_with_certs(&[ca]))
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let authorization = format!("Basic {}", base64(&format!("{user}:{password}")));
    Arc::new(move |addr: SocketAddr, path: &str| {
        let mut answer = agent
            .get(format!("https://{addr}{path}"))
            .header("Authorization", &authorization)
            .call()
            .map_err(std::io::Error::other)?;
        let status = answer.status().as_u16();
        let body = answer
            .body_mut()
            .read_to_string()
            .map_err(std::io::Error::other)?;
        Ok((status, body))
    })
}

fn base64(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63])
            } else {
                '='
            });
        }
    }
    out
}

#[test]
fn tls_and_basic_auth_push_with_the_right_ca_and_password_and_refuse_the_rest_loudly() {
    if !prometheus_found() {
        return;
    }
    let Some(pki) = Pki::make() else { return };
    let Some(user_hash) = htpasswd("pusher", "right horse") else {
        return;
    };
    let (user, hash) = user_hash.split_once(':').expect("user:hash");
    let web = pki.path("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  {user}: '{hash}'\n",
            pki.path("server.pem").display(),
            pki.path("server.key").display()
        ),
    )
    .expect("write web config");
    let prometheus = Prometheus::start_with(
        "global:\n  evaluation_interval: 1m\n",
        &[
            "--web.enable-remote-write-receiver",
            &format!("--web.config.file={}", web.display()),
        ],
        Some(tls_getter(&pki.path("ca.pem"), user, "right horse")),
    );
    let password_file = pki.path("password");
    std::fs::write(&password_file, "right horse\n").expect("write password");
    let https = format!("https://{}/api/v1/write", prometheus.addr);
    let http = format!("http://{}/api/v1/write", prometheus.addr);
    let ca = pki.path("ca.pem").display().to_string();
    let other_ca = pki.path("other-ca.pem").display().to_string();
    let password_file = password_file.display().to_string();

    let sim = Sim::start(&["--profile", "ec2-bridge"]);
    let start = |url: &str, ca: Option<&str>, run: &str, env: &[(&str, &str)]| {
        let label = format!("run={run}");
        let mut args = vec!["--interval", "1", "--remote-write-url", url];
        args.extend(["--remote-write-label", &label]);
        if let Some(ca) = ca {
            args.extend(["--remote-write-ca-file", ca]);
        }
        let mut env = env.to_vec();
        env.push(("REMOTE_WRITE_USERNAME", "pusher"));
        let exporter = Exporter::start(&sim.url, &args, &env);
        let watch = Watch::start(exporter.addr);
        (exporter, watch)
    };
    let right = [("REMOTE_WRITE_PASSWORD_FILE", password_file.as_str())];
    let good = start(&https, Some(&ca), "good", &right);
    let wrong_ca = start(&https, Some(&other_ca), "wrong-ca", &right);
    let wrong_password = start(
        &https,
        Some(&ca),
        "wrong-password",
        &[("REMOTE_WRITE_PASSWORD", "wrong horse")],
    );
    let plain = start(
        &http,
        None,
        "plain",
        &[("REMOTE_WRITE_PASSWORD", "right horse")],
    );

    arrives(&prometheus, &good.0, "good");
    let s = counted(&good.0, |s| outcome(s, "sent") >= 3.0);
    assert_eq!(outcome(&s, "retried") + outcome(&s, "dropped"), 0.0);

    let s = counted(&wrong_ca.0, |s| outcome(s, "retried") >= 2.0);
    assert_eq!(
        outcome(&s, "sent") + outcome(&s, "dropped"),
        0.0,
        "another CA"
    );
    let logs = wrong_ca.0.logs();
    let said = complaints_with(&logs, &https, "certificate");
    assert!(said.len() == 1, "another CA:\n{logs}");
    eprintln!("another CA: {}", said[0]);

    for ((exporter, _), status, what) in [
        (&wrong_password, "401", "a wrong password"),
        (&plain, "400", "http:// to the TLS port"),
    ] {
        let s = counted(exporter, |s| outcome(s, "dropped") >= 2.0);
        assert_eq!(outcome(&s, "sent") + outcome(&s, "retried"), 0.0, "{what}");
        let logs = exporter.logs();
        let url = if status == "400" { &http } else { &https };
        let said = complaints_with(&logs, url, status);
        assert!(said.len() == 1, "{what}:\n{logs}");
        eprintln!("{what}: {}", said[0]);
    }
    for run in ["wrong-ca", "wrong-password", "plain"] {
        assert_eq!(series_count(&prometheus, run), 0, "{run} arrived");
    }
    for (mut exporter, watch) in [good, wrong_ca, wrong_password, plain] {
        watch.finish();
        assert!(exporter.alive());
        let logs = exporter.stop_and_logs();
        assert!(
            !logs.contains("right horse") && !logs.contains("wrong horse"),
            "{logs}"
        );
    }
}

#[test]
fn basic_and_bearer_secrets_from_files_are_sent_as_authorization_and_never_logged() {
    let dir = TempDir::new();
    let (password, token) = (dir.0.join("password"), dir.0.join("token"));
    std::fs::write(&password, "pa:ss word\n").expect("write password");
    std::fs::write(&token, "t0ken-xyz\r\n").expect("write token");
    let sim = Sim::start(&["--profile", "ec2-bridge"]);
    let (basic, bearer) = (Receiver::start(), Receiver::start());
    let password = password.display().to_string();
    let token = token.display().to_string();
    let cases = [
        (
            &basic,
            vec![
                ("REMOTE_WRITE_USERNAME", "pusher"),
                ("REMOTE_WRITE_PASSWORD_FILE", password.as_str()),
            ],
            format!("Basic {}", base64("pusher:pa:ss word")),
        ),
        (
            &bearer,
            vec![("REMOTE_WRITE_BEARER_TOKEN_FILE", token.as_str())],
            "Bearer t0ken-xyz".to_owned(),
        ),
    ];
    for (receiver, env, expected) in cases {
        let args = ["--interval", "1", "--remote-write-url", &receiver.url];
        let exporter = Exporter::start(&sim.url, &args, &env);
        let (ok, received) = receiver.wait(PATIENCE, |r| r.len() >= 2);
        assert!(ok, "{}", exporter.logs());
        for r in &received {
            assert_eq!(r.header("authorization"), Some(expected.as_str()));
        }
        let logs = exporter.stop_and_logs();
        assert!(!logs.contains("pa:ss") && !logs.contains("t0ken"), "{logs}");
    }
}

// ---------------------------------------------------------------------------------------------
// SigV4, checked by botocore.

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
    if !prometheus_found() {
        return None;
    }
    if !runs("python3", &["-c", "import botocore.auth"]) {
        skip("python3 with botocore is not installed (Debian package python3-botocore)");
        return None;
    }
    let prometheus = Prometheus::start_with(
        "global:\n  evaluation_interval: 1m\n",
        &["--web.enable-remote-write-receiver"],
        None,
    );
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
        "90",
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
    // Keys rotate at half their lifetime (45 s): wait for three pushes with the second key.
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
