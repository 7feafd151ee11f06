//! Command line and environment → a validated [`Config`].
//!
//! [`Args`] is what argh reads, every value kept as the raw string the user typed; [`resolve`]
//! is a pure function of those and an environment lookup that validates each value and says, on
//! the first bad one, which flag or variable held it. A flag wins over its variable; an empty
//! variable counts as unset, except `INCLUDE`/`EXCLUDE`, where empty means an empty list.
//!
//! Out of scope: reading the real process environment (main.rs passes `std::env::var`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use argh::FromArgs;

use crate::compute::Filter;
use crate::docker;

/// Per-container CPU, memory, disk and network metrics of an Amazon ECS task, from the Task
/// Metadata Endpoint v4, for Prometheus (and DogStatsD).
#[derive(FromArgs, Debug, Default)]
pub struct Args {
    /// base URL of the task metadata endpoint [env: ECS_CONTAINER_METADATA_URI_V4, then
    /// ECS_CONTAINER_METADATA_URI]
    #[argh(option)]
    pub metadata_url: Option<String>,

    /// port to serve /metrics on [env: EXPORTER_PORT; default 9545]
    #[argh(option)]
    pub exporter_port: Option<String>,

    /// address to serve on, `::` for IPv6 [env: EXPORTER_BIND_ADDRESS; default 0.0.0.0]
    #[argh(option)]
    pub bind_address: Option<String>,

    /// seconds between polls of the endpoint, the window of the CPU ratios [env: INTERVAL;
    /// default 60]
    #[argh(option)]
    pub interval: Option<String>,

    /// comma list of container names to export; all if unset [env: INCLUDE]
    #[argh(option)]
    pub include: Option<String>,

    /// comma list of container names to leave out [env: EXCLUDE; default
    /// ecs-container-exporter,~internal~ecs~pause]
    #[argh(option)]
    pub exclude: Option<String>,

    /// also send DogStatsD lines after every poll [env: USE_STATSD]
    #[argh(switch)]
    pub use_statsd: bool,

    /// host of the DogStatsD receiver [env: STATSD_HOST, then DD_AGENT_HOST; default localhost]
    #[argh(option)]
    pub statsd_host: Option<String>,

    /// port of the DogStatsD receiver [env: STATSD_PORT, then DD_DOGSTATSD_PORT; default 8125]
    #[argh(option)]
    pub statsd_port: Option<String>,

    /// error, warn, info, debug or trace [env: LOG_LEVEL; default info]
    #[argh(option)]
    pub log_level: Option<String>,

    /// seconds allowed for one metadata request, connect to last byte [env: METADATA_TIMEOUT;
    /// default 5]
    #[argh(option)]
    pub timeout: Option<String>,

    /// read a plain Docker host instead of ECS: every running container, through the Docker
    /// Engine API at DOCKER_HOST (no --metadata-url)
    #[argh(switch)]
    pub docker: bool,

    /// address of the Docker Engine API with --docker: unix:///path or tcp://host:port (plain HTTP)
    /// [env: DOCKER_HOST; default unix:///var/run/docker.sock]
    #[argh(option)]
    pub docker_host: Option<String>,

    /// check the running exporter's /health on this host and exit 0 if healthy, else 1 (for an
    /// ECS healthCheck in an image without a shell)
    #[argh(switch)]
    pub healthcheck: bool,

    /// print the version, git commit and target of this binary, and exit
    #[argh(switch, short = 'V')]
    pub version: bool,
}

/// What to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Run(Config),
    /// GET `/health` on this address.
    Healthcheck(SocketAddr),
    /// Print the version line (`crate::version::line`).
    Version,
}

/// Where DogStatsD lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsdTarget {
    pub host: String,
    pub port: u16,
}

/// Where the containers and their stats come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The ECS Task Metadata Endpoint v4; the base URL without a trailing `/`.
    Ecs { metadata_url: String },
    /// A plain Docker host (`--docker`), through the Docker Engine API.
    Docker { host: docker::Host },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Ecs { metadata_url } => f.write_str(metadata_url),
            Source::Docker { host } => write!(f, "the Docker Engine API at {host}"),
        }
    }
}

/// Validated configuration of a running exporter.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub source: Source,
    pub listen: SocketAddr,
    pub interval: Duration,
    pub timeout: Duration,
    pub filter: Filter,
    pub statsd: Option<StatsdTarget>,
    pub log_level: log::LevelFilter,
}

/// A value that cannot be used, with the flag or variable that held it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

const DEFAULT_EXCLUDE: &str = "ecs-container-exporter,~internal~ecs~pause";

/// A raw value and where it came from (`--flag` or `VARIABLE`).
struct Raw {
    value: String,
    source: String,
}

impl Raw {
    fn invalid(&self, expected: &str) -> ConfigError {
        ConfigError(format!(
            "invalid value '{}' for {}: {expected}",
            self.value, self.source
        ))
    }
}

/// Validates arguments and environment into a command.
pub fn resolve(args: Args, env: &dyn Fn(&str) -> Option<String>) -> Result<Command, ConfigError> {
    // Before any value is checked: the version is asked for when something is wrong.
    if args.version {
        return Ok(Command::Version);
    }
    let lookup = |flag: Option<String>, name: &str, vars: &[&str]| -> Option<Raw> {
        if let Some(value) = flag {
            return Some(Raw {
                value,
                source: format!("--{name}"),
            });
        }
        vars.iter().find_map(|var| {
            env(var).filter(|v| !v.trim().is_empty()).map(|value| Raw {
                value,
                source: (*var).to_owned(),
            })
        })
    };

    let port = match lookup(args.exporter_port, "exporter-port", &["EXPORTER_PORT"]) {
        Some(raw) => parse_port(&raw)?,
        None => 9545,
    };
    let bind: IpAddr = match lookup(
        args.bind_address,
        "bind-address",
        &["EXPORTER_BIND_ADDRESS"],
    ) {
        Some(raw) => raw
            .value
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| raw.invalid("expected an IP address such as 0.0.0.0 or ::"))?,
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    let listen = SocketAddr::new(bind, port);

    if args.healthcheck {
        let host = match bind {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        return Ok(Command::Healthcheck(SocketAddr::new(host, port)));
    }

    let log_level = match lookup(args.log_level, "log-level", &["LOG_LEVEL"]) {
        Some(raw) => match raw.value.trim().to_ascii_lowercase().as_str() {
            "error" | "critical" => log::LevelFilter::Error,
            "warn" | "warning" => log::LevelFilter::Warn,
            "info" => log::LevelFilter::Info,
            "debug" => log::LevelFilter::Debug,
            "trace" => log::LevelFilter::Trace,
            _ => return Err(raw.invalid("expected error, warn, info, debug or trace")),
        },
        None => log::LevelFilter::Info,
    };

    let interval = match lookup(args.interval, "interval", &["INTERVAL"]) {
        Some(raw) => parse_seconds(&raw)?,
        None => Duration::from_secs(60),
    };
    let timeout = match lookup(args.timeout, "timeout", &["METADATA_TIMEOUT"]) {
        Some(raw) => parse_seconds(&raw)?,
        None => Duration::from_secs(5),
    };

    let list = |flag: Option<String>, var: &str| flag.or_else(|| env(var));
    let filter = Filter {
        include: split_list(&list(args.include, "INCLUDE").unwrap_or_default()),
        exclude: split_list(
            &list(args.exclude, "EXCLUDE").unwrap_or_else(|| DEFAULT_EXCLUDE.to_owned()),
        ),
    };

    let use_statsd = args.use_statsd
        || match lookup(None, "use-statsd", &["USE_STATSD"]) {
            Some(raw) => parse_bool(&raw)?,
            None => false,
        };
    // Checked even when DogStatsD is off: a bad value is a mistake either way.
    let statsd_host = lookup(
        args.statsd_host,
        "statsd-host",
        &["STATSD_HOST", "DD_AGENT_HOST"],
    )
    .map_or_else(|| "localhost".to_owned(), |raw| raw.value.trim().to_owned());
    let statsd_port = match lookup(
        args.statsd_port,
        "statsd-port",
        &["STATSD_PORT", "DD_DOGSTATSD_PORT"],
    ) {
        Some(raw) => parse_port(&raw)?,
        None => 8125,
    };
    let statsd = use_statsd.then_some(StatsdTarget {
        host: statsd_host,
        port: statsd_port,
    });

    let source = if args.docker {
        if args.metadata_url.is_some() {
            return Err(ConfigError(
                "--docker and --metadata-url exclude each other: --docker reads the Docker \
                 Engine API at DOCKER_HOST"
                    .to_owned(),
            ));
        }
        let host = match lookup(args.docker_host, "docker-host", &["DOCKER_HOST"]) {
            Some(raw) => docker::Host::parse(&raw.value).map_err(|e| raw.invalid(&e))?,
            None => docker::Host::parse(docker::DEFAULT_HOST).map_err(ConfigError)?,
        };
        if let (docker::Host::Tcp(_), Some(raw)) = (&host, lookup(None, "", &["DOCKER_TLS_VERIFY"]))
        {
            return Err(raw.invalid(
                "TLS is not supported; unset it and use a plain-HTTP tcp:// address or the Unix \
                 socket",
            ));
        }
        Source::Docker { host }
    } else {
        let url = lookup(
            args.metadata_url,
            "metadata-url",
            &[
                "ECS_CONTAINER_METADATA_URI_V4",
                "ECS_CONTAINER_METADATA_URI",
            ],
        )
        .ok_or_else(|| {
            ConfigError(
                "no metadata endpoint: set --metadata-url, or run in an ECS task, which sets \
                 ECS_CONTAINER_METADATA_URI_V4 (or ECS_CONTAINER_METADATA_URI), or use --docker \
                 on a plain Docker host"
                    .to_owned(),
            )
        })?;
        Source::Ecs {
            metadata_url: parse_url(&url)?,
        }
    };

    Ok(Command::Run(Config {
        source,
        listen,
        interval,
        timeout,
        filter,
        statsd,
        log_level,
    }))
}

fn parse_port(raw: &Raw) -> Result<u16, ConfigError> {
    raw.value
        .trim()
        .parse::<u16>()
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| raw.invalid("expected a port from 1 to 65535"))
}

/// Seconds, whole or fractional, from 0.01 to one day.
fn parse_seconds(raw: &Raw) -> Result<Duration, ConfigError> {
    raw.value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| (0.01..=86_400.0).contains(s))
        .map(Duration::from_secs_f64)
        .ok_or_else(|| raw.invalid("expected a number of seconds from 0.01 to 86400"))
}

fn parse_bool(raw: &Raw) -> Result<bool, ConfigError> {
    match raw.value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(raw.invalid("expected 1/0, true/false, yes/no or on/off")),
    }
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

/// An `http://host[:port][/path]` URL, returned without its trailing `/`.
fn parse_url(raw: &Raw) -> Result<String, ConfigError> {
    let url = raw.value.trim();
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Err(
            raw.invalid("https is not supported (the task metadata endpoint is plain http)")
        );
    }
    let Some(rest) = lower.strip_prefix("http://") else {
        return Err(raw.invalid("expected an http:// URL"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_ok = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((ip, port)) => ip.parse::<Ipv6Addr>().is_ok() && valid_port_suffix(port),
            None => false,
        }
    } else {
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            && port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0))
    };
    if !host_ok || url.contains(char::is_whitespace) || rest.contains(['?', '#']) {
        return Err(raw.invalid("expected http://host[:port][/path]"));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

fn valid_port_suffix(s: &str) -> bool {
    s.is_empty()
        || s.strip_prefix(':')
            .is_some_and(|p| p.parse::<u16>().is_ok_and(|p| p > 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Command, ConfigError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let args = Args::from_args(&["ecs-container-exporter"], args)
            .map_err(|e| ConfigError(e.output))?;
        resolve(args, &|k| env.get(k).cloned())
    }

    fn config(args: &[&str], env: &[(&str, &str)]) -> Config {
        match run(args, env) {
            Ok(Command::Run(c)) => c,
            other => panic!("expected a config, got {other:?}"),
        }
    }

    fn ecs(url: &str) -> Source {
        Source::Ecs {
            metadata_url: url.to_owned(),
        }
    }

    const URL: (&str, &str) = (
        "ECS_CONTAINER_METADATA_URI_V4",
        "http://169.254.170.2/v4/abc/",
    );

    #[test]
    fn defaults_match_the_2x_exporter() {
        let c = config(&[], &[URL]);
        assert_eq!(c.source, ecs("http://169.254.170.2/v4/abc"));
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
        assert_eq!(c.source, ecs("http://169.254.170.2/v4/abc"));
        let c = config(
            &[],
            &[("ECS_CONTAINER_METADATA_URI", "http://169.254.170.2/v3/x")],
        );
        assert_eq!(c.source, ecs("http://169.254.170.2/v3/x"));
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
        type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
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
        assert!(
            err.0.contains("ECS_CONTAINER_METADATA_URI_V4") && err.0.contains("--metadata-url")
        );
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
        let docker = |host: &str| Source::Docker {
            host: docker::Host::parse(host).unwrap(),
        };
        // The default socket, and ECS variables (set on an ECS host) do not matter.
        let c = config(&["--docker"], &[]);
        assert_eq!(c.source, docker("unix:///var/run/docker.sock"));
        let c = config(&["--docker"], &[URL]);
        assert_eq!(c.source, docker("unix:///var/run/docker.sock"));
        let c = config(&["--docker"], &[("DOCKER_HOST", "unix:///run/docker.sock")]);
        assert_eq!(c.source, docker("unix:///run/docker.sock"));
        let c = config(&["--docker"], &[("DOCKER_HOST", "tcp://127.0.0.1:2375")]);
        assert_eq!(c.source, docker("tcp://127.0.0.1:2375"));
        assert_eq!(
            c.source.to_string(),
            "the Docker Engine API at tcp://127.0.0.1:2375"
        );
        let c = config(
            &["--docker", "--docker-host", "tcp://[::1]:2375"],
            &[("DOCKER_HOST", "ftp://x")],
        );
        assert_eq!(c.source, docker("tcp://[::1]:2375"));
        // DOCKER_HOST alone does not switch the mode.
        let c = config(&[], &[URL, ("DOCKER_HOST", "tcp://127.0.0.1:2375")]);
        assert_eq!(c.source, ecs("http://169.254.170.2/v4/abc"));
    }

    #[test]
    fn bad_docker_settings_are_one_line_naming_the_source() {
        type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
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
        for (args, env, expected) in cases {
            let err = run(args, env).expect_err(expected);
            assert!(
                err.0.contains(expected),
                "{err} does not contain {expected}"
            );
            assert!(!err.0.contains('\n'), "one line: {err}");
        }
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
}
