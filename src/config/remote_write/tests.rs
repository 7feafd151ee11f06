//! `resolve` of the remote-write settings (SPEC §5): defaults, labels, auth, region, errors.

use crate::config::tests::{Case, URL, config, run};
use crate::config::{Auth, ConfigError, RemoteWrite, Secret};
use std::time::Duration;

fn remote_write(args: &[&str], env: &[(&str, &str)]) -> Option<RemoteWrite> {
    config(args, env).remote_write
}

const AMP: &str =
    "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1/api/v1/remote_write";

#[test]
fn remote_write_is_off_without_a_url_and_has_the_spec_defaults_with_one() {
    assert_eq!(remote_write(&[], &[URL]), None);
    let rw = remote_write(
        &["--remote-write-url", "http://127.0.0.1:9090/api/v1/write"],
        &[URL],
    )
    .expect("on");
    assert_eq!(rw.url, "http://127.0.0.1:9090/api/v1/write");
    assert_eq!((rw.timeout, rw.buffer), (Duration::from_secs(10), 120));
    assert_eq!(
        (rw.labels.len(), &rw.auth, &rw.ca_file),
        (0, &Auth::None, &None)
    );
}

#[test]
fn remote_write_labels_come_from_repeated_flags_or_one_comma_list() {
    let flags = remote_write(
        &[
            "--remote-write-url",
            AMP,
            "--remote-write-label",
            "env=prod",
            "--remote-write-label",
            " team = web ",
        ],
        &[URL, ("REMOTE_WRITE_LABELS", "ignored=1")],
    )
    .expect("on");
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter().map(|(a, b)| ((*a).into(), (*b).into())).collect()
    };
    assert_eq!(flags.labels, pairs(&[("env", "prod"), ("team", "web")]));
    let env = remote_write(
        &[],
        &[
            URL,
            ("REMOTE_WRITE_URL", AMP),
            ("REMOTE_WRITE_LABELS", "env=prod, job=ecs"),
        ],
    )
    .expect("on");
    assert_eq!(env.labels, pairs(&[("env", "prod"), ("job", "ecs")]));
}

#[test]
fn remote_write_auth_is_basic_bearer_or_sigv4_with_secrets_from_env_or_files() {
    let basic = remote_write(
        &[],
        &[
            URL,
            ("REMOTE_WRITE_URL", AMP),
            ("REMOTE_WRITE_USERNAME", "123"),
            ("REMOTE_WRITE_PASSWORD_FILE", "/run/secrets/pw"),
        ],
    )
    .expect("on");
    assert_eq!(
        basic.auth,
        Auth::Basic {
            username: "123".into(),
            password: Secret::File("/run/secrets/pw".into())
        }
    );
    let bearer = remote_write(
        &[],
        &[
            URL,
            ("REMOTE_WRITE_URL", AMP),
            ("REMOTE_WRITE_BEARER_TOKEN", "t0k"),
        ],
    )
    .expect("on");
    assert_eq!(bearer.auth, Auth::Bearer(Secret::Value("t0k".into())));
    assert!(
        !format!("{bearer:?}").contains("t0k"),
        "Debug shows no secret"
    );
}

#[test]
fn the_sigv4_region_comes_from_the_flag_then_the_amp_host_then_aws_region() {
    let region =
        |args: &[&str], env: &[(&str, &str)]| match remote_write(args, env).expect("on").auth {
            Auth::SigV4 { region } => region,
            other => panic!("expected SigV4, got {other:?}"),
        };
    let sigv4 = ["--remote-write-url", AMP, "--remote-write-sigv4"];
    assert_eq!(
        region(&sigv4, &[URL, ("AWS_REGION", "us-east-1")]),
        "eu-west-1"
    );
    let mut flagged = sigv4.to_vec();
    flagged.extend(["--remote-write-sigv4-region", "ap-south-1"]);
    assert_eq!(region(&flagged, &[URL]), "ap-south-1");
    let proxy = [
        "--remote-write-url",
        "http://127.0.0.1:8080/api/v1/remote_write",
        "--remote-write-sigv4",
    ];
    assert_eq!(
        region(&proxy, &[URL, ("AWS_REGION", "us-east-2")]),
        "us-east-2"
    );
    assert_eq!(
        region(&proxy, &[URL, ("AWS_DEFAULT_REGION", "sa-east-1")]),
        "sa-east-1"
    );
    assert_eq!(
        region(
            &[],
            &[
                URL,
                ("REMOTE_WRITE_URL", AMP),
                ("REMOTE_WRITE_SIGV4", "yes")
            ]
        ),
        "eu-west-1"
    );
}

#[test]
fn bad_remote_write_settings_are_refused_with_one_line_naming_them() {
    let url = ("REMOTE_WRITE_URL", "http://127.0.0.1:9090/api/v1/write");
    let cases: &[Case] = &[
        (
            &["--remote-write-url", "ftp://x/y"],
            &[URL],
            "--remote-write-url",
        ),
        (
            &[],
            &[URL, ("REMOTE_WRITE_URL", "localhost:9090")],
            "REMOTE_WRITE_URL",
        ),
        (
            &[],
            &[URL, url, ("REMOTE_WRITE_LABELS", "env")],
            "REMOTE_WRITE_LABELS",
        ),
        (&[], &[URL, url, ("REMOTE_WRITE_LABELS", "1x=a")], "'1x=a'"),
        (
            &[],
            &[URL, url, ("REMOTE_WRITE_LABELS", "__name__=a")],
            "__",
        ),
        (
            &[],
            &[URL, url, ("REMOTE_WRITE_LABELS", "env=")],
            "REMOTE_WRITE_LABELS",
        ),
        (
            &["--remote-write-label", "a-b=c"],
            &[URL, url],
            "--remote-write-label",
        ),
        (
            &["--remote-write-sigv4"],
            &[
                URL,
                url,
                ("REMOTE_WRITE_USERNAME", "u"),
                ("REMOTE_WRITE_PASSWORD", "p"),
            ],
            "more than one remote-write auth method",
        ),
        (
            &[],
            &[
                URL,
                url,
                ("REMOTE_WRITE_BEARER_TOKEN", "t"),
                ("REMOTE_WRITE_USERNAME", "u"),
                ("REMOTE_WRITE_PASSWORD", "p"),
            ],
            "basic auth (REMOTE_WRITE_USERNAME, REMOTE_WRITE_PASSWORD), a bearer token (REMOTE_WRITE_BEARER_TOKEN)",
        ),
        (
            &[],
            &[
                URL,
                url,
                ("REMOTE_WRITE_BEARER_TOKEN", "t"),
                ("REMOTE_WRITE_BEARER_TOKEN_FILE", "/f"),
            ],
            "exclude each other",
        ),
        (
            &[],
            &[URL, url, ("REMOTE_WRITE_USERNAME", "u")],
            "without REMOTE_WRITE_PASSWORD",
        ),
        (
            &[],
            &[URL, url, ("REMOTE_WRITE_PASSWORD", "p")],
            "without REMOTE_WRITE_USERNAME",
        ),
        (&["--remote-write-sigv4"], &[URL, url], "no SigV4 region"),
        (
            &["--remote-write-sigv4-region", "eu-west-1"],
            &[URL, url],
            "SigV4 is off",
        ),
        (
            &["--remote-write-ca-file", "/ca.pem"],
            &[URL, url],
            "plain http",
        ),
        (
            &["--remote-write-timeout", "0"],
            &[URL, url],
            "--remote-write-timeout",
        ),
        (
            &[],
            &[URL, url, ("REMOTE_WRITE_BUFFER", "0")],
            "REMOTE_WRITE_BUFFER",
        ),
        (
            &["--remote-write-label", "env=prod"],
            &[URL],
            "--remote-write-label is set but there is no --remote-write-url",
        ),
        (
            &[],
            &[URL, ("REMOTE_WRITE_SIGV4", "true")],
            "REMOTE_WRITE_SIGV4 is set but there is no",
        ),
    ];
    for (args, env, needle) in cases {
        match run(args, env) {
            Err(ConfigError(e)) => {
                assert!(e.contains(needle), "{args:?} {env:?}: {e}");
                assert!(!e.contains('\n'), "one line: {e}");
            }
            other => panic!("{args:?} {env:?}: expected an error, got {other:?}"),
        }
    }
}
