//! Remote write (SPEC §5) through TLS and with basic or bearer auth:
//!
//! - TLS and basic auth against a real Prometheus with `--web.config.file`
//!   (`tls_server_config` with a certificate made here by `openssl` for IP 127.0.0.1,
//!   `basic_auth_users` with a bcrypt hash from `htpasswd`). The right CA and password: every
//!   series arrives. Another CA: a TLS failure, logged once, retried. A wrong password: 401,
//!   logged once, dropped. `http://` to the TLS port: Go's 400, logged once, dropped. None of the
//!   exporters stops polling or serving, and no password is logged.
//! - The basic and bearer `Authorization` headers as sent, secrets read from files (trailing
//!   newline dropped), never logged (the tests' own receiver).
//!
//! Needs `prometheus` (≥ 2.33), `openssl` and `htpasswd` (apache2-utils): without one a test
//! fails under `CI=true`, else says `skipping: …`. SigV4 is `remote_write_sigv4.rs`.
#![cfg(feature = "remote-write")]

mod common;

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::client::{parse_answer, read_to_close};
use common::prometheus::Getter;
use common::push::{
    PATIENCE, Watch, arrives, complaints_with, counted, outcome, prometheus_receiver,
    prometheus_receives, stored_series,
};
use common::receiver::Receiver;
use common::{Exporter, Sim, TempDir, run_ok, runs, skip};

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
            dir: TempDir::new("pki"),
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
        run_ok(
            Command::new("openssl")
                .args(command)
                .args(key)
                .args(args)
                .current_dir(&self.dir.0),
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

/// GETs over TLS (rustls with ring, `ca` the only root) with basic auth, HTTP/1.0 so that the
/// server closes the connection at the end of its answer. Independent of the exporter's own
/// TLS connector.
fn tls_getter(ca: &Path, user: &str, password: &str) -> Getter {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca).expect("CA PEM"))
        .expect("CA as a root");
    // ring is the provider this crate links; its deprecation is about post-quantum key exchange,
    // which a test's client to a local Prometheus does not need.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let config = Arc::new(config);
    let authorization = format!("Basic {}", base64(&format!("{user}:{password}")));
    Arc::new(move |addr: SocketAddr, path: &str| {
        let name = ServerName::from(addr.ip());
        let connection =
            rustls::ClientConnection::new(Arc::clone(&config), name).map_err(io::Error::other)?;
        let socket = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        socket.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut tls = rustls::StreamOwned::new(connection, socket);
        write!(
            tls,
            "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: {authorization}\r\n\r\n"
        )?;
        tls.flush()?;
        // A peer that closes without close_notify: the answer is complete all the same.
        let mut raw = Vec::new();
        read_to_close(&mut tls, &mut raw)?;
        let (status, _, body) = parse_answer(&raw)?;
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
    if !prometheus_receives() {
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
    let prometheus = prometheus_receiver(
        &[&format!("--web.config.file={}", web.display())],
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
        assert_eq!(stored_series(&prometheus, run), 0, "{run} arrived");
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
    let dir = TempDir::new("secrets");
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
