//! Remote-write settings that cannot work are refused at start (SPEC §1, §5): exit status 2
//! within a second, and exactly one line on stderr that names the flag or variable at fault.
//! Cases: two auth methods at once, a label that is not `name=value` with a valid name, a URL
//! that is not http(s), SigV4 with no region to be found, an unreadable CA file, password file
//! or token file.
#![cfg(feature = "remote-write")]

mod common;

use std::time::Duration;

use common::{Launch, free_port};

/// One refused start: the exporter's arguments (after `--metadata-url` and the port), its
/// environment, and the words its one line must hold.
struct Case {
    what: &'static str,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    names: &'static [&'static str],
}

const URL: &str = "http://127.0.0.1:9/api/v1/write";

const CASES: &[Case] = &[
    Case {
        what: "basic auth and a bearer token",
        args: &["--remote-write-url", URL],
        env: &[
            ("REMOTE_WRITE_USERNAME", "u"),
            ("REMOTE_WRITE_PASSWORD", "p"),
            ("REMOTE_WRITE_BEARER_TOKEN", "t"),
        ],
        names: &["REMOTE_WRITE_USERNAME", "REMOTE_WRITE_BEARER_TOKEN"],
    },
    Case {
        what: "SigV4 and a bearer token file",
        args: &[
            "--remote-write-url",
            URL,
            "--remote-write-sigv4",
            "--remote-write-sigv4-region",
            "eu-west-1",
        ],
        env: &[
            ("REMOTE_WRITE_BEARER_TOKEN_FILE", "/etc/hostname"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
        ],
        names: &["--remote-write-sigv4", "REMOTE_WRITE_BEARER_TOKEN_FILE"],
    },
    Case {
        what: "a label name starting with a digit",
        args: &["--remote-write-url", URL, "--remote-write-label", "2x=y"],
        env: &[],
        names: &["--remote-write-label", "2x=y"],
    },
    Case {
        what: "a label without a value, from the variable",
        args: &["--remote-write-url", URL],
        env: &[("REMOTE_WRITE_LABELS", "team=a,bad")],
        names: &["REMOTE_WRITE_LABELS", "bad"],
    },
    Case {
        what: "a reserved label name",
        args: &[
            "--remote-write-url",
            URL,
            "--remote-write-label",
            "__name__=x",
        ],
        env: &[],
        names: &["--remote-write-label"],
    },
    Case {
        what: "an ftp URL",
        args: &["--remote-write-url", "ftp://127.0.0.1/api/v1/write"],
        env: &[],
        names: &["--remote-write-url", "ftp://127.0.0.1/api/v1/write"],
    },
    Case {
        what: "an ftp URL from the variable",
        args: &[],
        env: &[("REMOTE_WRITE_URL", "ftp://127.0.0.1/api/v1/write")],
        names: &["REMOTE_WRITE_URL"],
    },
    Case {
        what: "SigV4 with no region (127.0.0.1 URL, no AWS_REGION)",
        args: &["--remote-write-url", URL, "--remote-write-sigv4"],
        env: &[
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
        ],
        names: &["--remote-write-sigv4-region", "AWS_REGION"],
    },
    Case {
        what: "an unreadable CA file",
        args: &[
            "--remote-write-url",
            "https://127.0.0.1:9/api/v1/write",
            "--remote-write-ca-file",
            "/nonexistent/ca.pem",
        ],
        env: &[],
        names: &["--remote-write-ca-file", "/nonexistent/ca.pem"],
    },
    Case {
        what: "an unreadable CA file from the variable",
        args: &["--remote-write-url", "https://127.0.0.1:9/api/v1/write"],
        env: &[("REMOTE_WRITE_CA_FILE", "/nonexistent/ca.pem")],
        names: &["REMOTE_WRITE_CA_FILE", "/nonexistent/ca.pem"],
    },
    Case {
        what: "an unreadable password file",
        args: &["--remote-write-url", URL],
        env: &[
            ("REMOTE_WRITE_USERNAME", "u"),
            ("REMOTE_WRITE_PASSWORD_FILE", "/nonexistent/password"),
        ],
        names: &["REMOTE_WRITE_PASSWORD_FILE", "/nonexistent/password"],
    },
    Case {
        what: "an unreadable bearer token file",
        args: &["--remote-write-url", URL],
        env: &[("REMOTE_WRITE_BEARER_TOKEN_FILE", "/nonexistent/token")],
        names: &["REMOTE_WRITE_BEARER_TOKEN_FILE", "/nonexistent/token"],
    },
];

/// Runs the exporter with a case's settings (and a metadata URL, a free port, loopback) to its
/// exit: (exit code, stderr, time to exit).
fn refused(case: &Case) -> (Option<i32>, String, Duration) {
    let port = free_port().to_string();
    let ran = Launch::new()
        .metadata_url("http://127.0.0.1:9")
        .args(&["--exporter-port", &port, "--bind-address", "127.0.0.1"])
        .args(case.args)
        .env(case.env)
        .run();
    (ran.code, ran.stderr, ran.took)
}

#[test]
fn settings_that_cannot_work_exit_2_at_once_with_one_line_naming_them() {
    let mut failures = Vec::new();
    for case in CASES {
        let (code, stderr, took) = refused(case);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let missing: Vec<&&str> = case
            .names
            .iter()
            .filter(|n| !stderr.contains(**n))
            .collect();
        if code != Some(2)
            || lines.len() != 1
            || !missing.is_empty()
            || took > Duration::from_secs(1)
        {
            failures.push(format!(
                "{}: exit {code:?} after {took:?}, {} lines, not naming {missing:?}:\n{stderr}",
                case.what,
                lines.len()
            ));
        } else {
            eprintln!("{}: {}", case.what, lines[0]);
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
