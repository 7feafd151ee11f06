//! `resolve` on argument and environment tables: defaults, precedence, one-line errors.

use super::*;
use std::collections::HashMap;

pub(super) fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Command, ConfigError> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let args =
        Args::from_args(&["ecs-container-exporter"], args).map_err(|e| ConfigError(e.output))?;
    resolve(args, &|k| env.get(k).cloned())
}

pub(super) fn config(args: &[&str], env: &[(&str, &str)]) -> Config {
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

pub(super) const URL: (&str, &str) = (
    "ECS_CONTAINER_METADATA_URI_V4",
    "http://169.254.170.2/v4/abc/",
);

/// Arguments, environment, and a text the error must contain.
pub(super) type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

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

#[test]
#[cfg(not(feature = "remote-write"))]
fn a_binary_without_remote_write_refuses_its_url_and_names_the_feature() {
    let err = run(
        &["--remote-write-url", "http://127.0.0.1:9/api/v1/write"],
        &[URL],
    )
    .expect_err("refused");
    assert!(err.0.contains("--remote-write-url"), "{err}");
    assert!(err.0.contains("cargo feature remote-write"), "{err}");
}

#[test]
fn metric_filters_are_off_by_default_and_take_names_and_globs_trimmed() {
    assert!(config(&[], &[URL]).metric_filter.is_all());
    let c = config(
        &[],
        &[
            URL,
            (
                "METRIC_ALLOWLIST",
                " ecs_task_network_* ,ecs_container_memory_rss_bytes,, ecs_exporter_up ",
            ),
        ],
    );
    let f = &c.metric_filter;
    assert!(f.allows("ecs_task_network_rx_bytes_total") && f.allows("ecs_exporter_up"));
    assert!(f.allows("ecs_container_memory_rss_bytes"));
    assert!(!f.allows("ecs_task_mem_usage") && !f.allows("ecs_task_info"));
    let c = config(&["--metric-denylist", "*_total"], &[URL]);
    let f = &c.metric_filter;
    assert!(!f.allows("ecs_task_disk_read_bytes_total") && f.allows("ecs_task_mem_usage"));
    // Self-metrics of outputs that are off may be listed: a task definition need not change.
    let c = config(
        &[
            "--metric-denylist",
            "ecs_exporter_remote_write_*,ecs_exporter_statsd_errors_total",
        ],
        &[URL],
    );
    assert!(
        !c.metric_filter
            .allows("ecs_exporter_remote_write_queue_requests")
    );
    // An empty variable is unset.
    assert!(
        config(&[], &[URL, ("METRIC_DENYLIST", " ")])
            .metric_filter
            .is_all()
    );
}

#[test]
fn a_metric_list_flag_wins_over_its_variable() {
    let c = config(
        &["--metric-denylist", "ecs_task_mem_cache"],
        &[URL, ("METRIC_DENYLIST", "ecs_task_mem_usage")],
    );
    assert!(!c.metric_filter.allows("ecs_task_mem_cache"));
    assert!(c.metric_filter.allows("ecs_task_mem_usage"));
    let c = config(
        &["--metric-allowlist", "ecs_task_mem_cache"],
        &[URL, ("METRIC_ALLOWLIST", "ecs_task_mem_typo")],
    );
    assert!(
        c.metric_filter.allows("ecs_task_mem_cache"),
        "the variable is not read"
    );
}

#[test]
fn both_metric_lists_or_an_entry_that_matches_nothing_are_refused() {
    let cases: [Case; 7] = [
        (
            &["--metric-allowlist", "ecs_task_mem_usage"],
            &[URL, ("METRIC_DENYLIST", "ecs_task_mem_cache")],
            "--metric-allowlist and METRIC_DENYLIST exclude each other",
        ),
        (
            &[],
            &[
                URL,
                ("METRIC_ALLOWLIST", "ecs_task_mem_usage"),
                ("METRIC_DENYLIST", "ecs_task_mem_cache"),
            ],
            "METRIC_ALLOWLIST and METRIC_DENYLIST exclude each other",
        ),
        (
            &[
                "--metric-denylist",
                "ecs_task_mem_cache",
                "--metric-allowlist",
                "ecs_task_mem_usage",
            ],
            &[URL],
            "--metric-allowlist and --metric-denylist exclude each other",
        ),
        (
            &[],
            &[
                URL,
                ("METRIC_ALLOWLIST", "ecs_task_mem_usage, ecs_task_mem_usge"),
            ],
            "invalid value for METRIC_ALLOWLIST: 'ecs_task_mem_usge' matches no family the \
             exporter can emit (names are case-sensitive; * is the only wildcard); did you mean \
             ecs_task_mem_usage?",
        ),
        (
            &["--metric-denylist", "ecs_task_network_*,ecs_tsk_disk_*"],
            &[URL],
            "invalid value for --metric-denylist: 'ecs_tsk_disk_*' matches no family the \
             exporter can emit (names are case-sensitive; * is the only wildcard); did you mean \
             ecs_task_disk_*?",
        ),
        (
            &["--metric-denylist", "Ecs_Task_Mem_Usage"],
            &[URL],
            "did you mean ecs_task_mem_usage?",
        ),
        (
            &["--metric-allowlist", " , "],
            &[URL],
            "invalid value for --metric-allowlist: expected a comma list",
        ),
    ];
    assert_refused(&cases);
}
