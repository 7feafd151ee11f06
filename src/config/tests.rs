//! `resolve` on argument and environment tables: defaults, precedence, one-line errors.

use super::*;
use std::collections::HashMap;

fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Command, ConfigError> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let args =
        Args::from_args(&["ecs-container-exporter"], args).map_err(|e| ConfigError(e.output))?;
    resolve(args, &|k| env.get(k).cloned())
}

fn config(args: &[&str], env: &[(&str, &str)]) -> Config {
    match run(args, env) {
        Ok(Command::Run(c)) => *c,
        other => panic!("expected a config, got {other:?}"),
    }
}

fn ecs(url: &str) -> Origin {
    Origin::Ecs {
        metadata_url: url.to_owned(),
    }
}

const URL: (&str, &str) = (
    "ECS_CONTAINER_METADATA_URI_V4",
    "http://169.254.170.2/v4/abc/",
);

/// Arguments, environment, and a text the error must contain.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

#[test]
fn defaults_match_the_2x_exporter() {
    let c = config(&[], &[URL]);
    assert_eq!(c.origin, ecs("http://169.254.170.2/v4/abc"));
    assert_eq!(c.listen, "0.0.0.0:9545".parse().unwrap());
    assert_eq!(c.interval, Duration::from_secs(60));
    assert_eq!(c.timeout, Duration::from_secs(5));
    assert_eq!(c.filter.include, Vec::<String>::new());
    assert_eq!(
        c.filter.exclude,
        ["ecs-container-exporter", "~internal~ecs~pause"]
    );
    assert_eq!(c.statsd, None);
    assert_eq!(c.log_level, log::LevelFilter::Info);
}

#[test]
fn a_flag_wins_over_its_variable_and_v4_over_v3() {
    let c = config(
        &["--interval", "15", "--exporter-port", "9000"],
        &[
            URL,
            ("ECS_CONTAINER_METADATA_URI", "http://old"),
            ("INTERVAL", "30"),
            ("EXPORTER_PORT", "1"),
        ],
    );
    assert_eq!(c.interval, Duration::from_secs(15));
    assert_eq!(c.listen.port(), 9000);
    assert_eq!(c.origin, ecs("http://169.254.170.2/v4/abc"));
    let c = config(
        &[],
        &[("ECS_CONTAINER_METADATA_URI", "http://169.254.170.2/v3/x")],
    );
    assert_eq!(c.origin, ecs("http://169.254.170.2/v3/x"));
}

#[test]
fn lists_are_trimmed_and_a_set_exclude_replaces_the_default() {
    let c = config(&[], &[URL, ("INCLUDE", " web , worker,,"), ("EXCLUDE", "")]);
    assert_eq!(c.filter.include, ["web", "worker"]);
    assert!(c.filter.exclude.is_empty());
    let c = config(&["--exclude", "sidecar"], &[URL]);
    assert_eq!(c.filter.exclude, ["sidecar"]);
}

#[test]
fn statsd_settings_fall_back_to_datadog_variables() {
    let c = config(
        &[],
        &[
            URL,
            ("USE_STATSD", "Yes"),
            ("DD_AGENT_HOST", "agent"),
            ("DD_DOGSTATSD_PORT", "8126"),
        ],
    );
    assert_eq!(
        c.statsd,
        Some(StatsdTarget {
            host: "agent".into(),
            port: 8126
        })
    );
    let c = config(
        &["--use-statsd", "--statsd-host", "::1"],
        &[URL, ("STATSD_HOST", "x")],
    );
    assert_eq!(
        c.statsd,
        Some(StatsdTarget {
            host: "::1".into(),
            port: 8125
        })
    );
    let c = config(&[], &[URL, ("USE_STATSD", "off")]);
    assert_eq!(c.statsd, None);
    let err = run(&[], &[URL, ("STATSD_PORT", "x")]).unwrap_err();
    assert!(
        err.0.contains("for STATSD_PORT"),
        "checked even with DogStatsD off: {err}"
    );
}

#[test]
fn bad_values_name_the_flag_or_variable() {
    let cases: [Case; 9] = [
        (
            &["--interval", "abc"],
            &[URL],
            "invalid value 'abc' for --interval",
        ),
        (
            &[],
            &[URL, ("INTERVAL", "0")],
            "invalid value '0' for INTERVAL",
        ),
        (
            &[],
            &[URL, ("EXPORTER_PORT", "0")],
            "invalid value '0' for EXPORTER_PORT",
        ),
        (&["--exporter-port", "70000"], &[URL], "for --exporter-port"),
        (
            &[],
            &[URL, ("LOG_LEVEL", "loud")],
            "invalid value 'loud' for LOG_LEVEL",
        ),
        (&[], &[URL, ("USE_STATSD", "maybe")], "for USE_STATSD"),
        (
            &["--metadata-url", "https://x"],
            &[],
            "https is not supported",
        ),
        (&["--metadata-url", "ftp://x"], &[], "for --metadata-url"),
        (
            &[],
            &[URL, ("EXPORTER_BIND_ADDRESS", "localhost")],
            "for EXPORTER_BIND_ADDRESS",
        ),
    ];
    assert_refused(&cases);
}

/// Each case is refused with one line that contains its text.
fn assert_refused(cases: &[Case]) {
    for (args, env, expected) in cases {
        let err = run(args, env).expect_err(expected);
        assert!(
            err.0.contains(expected),
            "{err} does not contain {expected}"
        );
        assert!(!err.0.contains('\n'), "one line: {err}");
    }
}

#[test]
fn no_url_says_which_variables_were_looked_for() {
    let err = run(&[], &[]).unwrap_err();
    assert!(err.0.contains("ECS_CONTAINER_METADATA_URI_V4") && err.0.contains("--metadata-url"));
}

#[test]
fn urls_are_checked() {
    for good in [
        "http://169.254.170.2/v4/x",
        "http://127.0.0.1:8080",
        "http://[::1]:80/v4",
        "http://ecs-sim:51678/",
    ] {
        config(&["--metadata-url", good], &[]);
    }
    for bad in [
        "http://",
        "http:///x",
        "169.254.170.2",
        "http://a b",
        "http://h:0",
        "http://h:x/",
        "http://[::1/",
    ] {
        assert!(run(&["--metadata-url", bad], &[]).is_err(), "{bad}");
    }
}

#[test]
fn docker_mode_needs_no_url_and_reads_docker_host() {
    let docker = |host: &str| Origin::Docker {
        host: DockerHost::parse(host).unwrap(),
    };
    // The default socket, and ECS variables (set on an ECS host) do not matter.
    let c = config(&["--docker"], &[]);
    assert_eq!(c.origin, docker("unix:///var/run/docker.sock"));
    let c = config(&["--docker"], &[URL]);
    assert_eq!(c.origin, docker("unix:///var/run/docker.sock"));
    let c = config(&["--docker"], &[("DOCKER_HOST", "unix:///run/docker.sock")]);
    assert_eq!(c.origin, docker("unix:///run/docker.sock"));
    let c = config(&["--docker"], &[("DOCKER_HOST", "tcp://127.0.0.1:2375")]);
    assert_eq!(c.origin, docker("tcp://127.0.0.1:2375"));
    assert_eq!(
        c.origin.to_string(),
        "the Docker Engine API at tcp://127.0.0.1:2375"
    );
    let c = config(
        &["--docker", "--docker-host", "tcp://[::1]:2375"],
        &[("DOCKER_HOST", "ftp://x")],
    );
    assert_eq!(c.origin, docker("tcp://[::1]:2375"));
    // DOCKER_HOST alone does not switch the mode.
    let c = config(&[], &[URL, ("DOCKER_HOST", "tcp://127.0.0.1:2375")]);
    assert_eq!(c.origin, ecs("http://169.254.170.2/v4/abc"));
}

#[test]
fn bad_docker_settings_are_one_line_naming_the_source() {
    let cases: [Case; 5] = [
        (
            &["--docker"],
            &[("DOCKER_HOST", "ftp://x")],
            "invalid value 'ftp://x' for DOCKER_HOST",
        ),
        (
            &["--docker", "--docker-host", "tcp://h:0"],
            &[],
            "for --docker-host",
        ),
        (
            &["--docker"],
            &[("DOCKER_HOST", "ssh://me@host")],
            "for DOCKER_HOST",
        ),
        (
            &["--docker"],
            &[("DOCKER_HOST", "tcp://h:2376"), ("DOCKER_TLS_VERIFY", "1")],
            "for DOCKER_TLS_VERIFY: TLS is not supported",
        ),
        (
            &["--docker", "--metadata-url", "http://127.0.0.1:1"],
            &[],
            "--docker and --metadata-url exclude each other",
        ),
    ];
    assert_refused(&cases);
    // Over the Unix socket, DOCKER_TLS_VERIFY has nothing to verify.
    config(&["--docker"], &[("DOCKER_TLS_VERIFY", "1")]);
}

#[test]
fn version_needs_no_url_and_wins_over_bad_values() {
    for args in [&["--version"][..], &["-V"], &["--interval", "abc", "-V"]] {
        assert_eq!(
            run(args, &[("EXPORTER_PORT", "0")]),
            Ok(Command::Version),
            "{args:?}"
        );
    }
}

#[test]
fn healthcheck_needs_no_url_and_targets_loopback() {
    assert_eq!(
        run(&["--healthcheck"], &[("EXPORTER_PORT", "9000")]),
        Ok(Command::Healthcheck("127.0.0.1:9000".parse().unwrap()))
    );
    assert_eq!(
        run(&["--healthcheck", "--bind-address", "::"], &[]),
        Ok(Command::Healthcheck("[::1]:9545".parse().unwrap()))
    );
}

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
            "basic auth (REMOTE_WRITE_USERNAME), a bearer token (REMOTE_WRITE_BEARER_TOKEN)",
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
