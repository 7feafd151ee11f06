//! Command line and environment → a validated [`Config`]; the one file that names argh.
//!
//! [`Args`] is what argh reads, every value kept as the raw string the user typed; [`resolve`]
//! is a pure function of those and an environment lookup. It is a few small lookups, one per
//! setting, each validating its value (`values.rs`) and saying, on the first bad one, which flag
//! or variable held it. A flag wins over its variable; an empty variable counts as unset, except
//! `INCLUDE`/`EXCLUDE`, where empty means an empty list.
//!
//! Out of scope: reading the real process environment (main.rs passes `std::env::var`).

mod remote_write;
mod values;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use argh::FromArgs;

use crate::core::compute::Filter;
use crate::core::filter::{List, MetricFilter};
pub use remote_write::{Auth, RemoteWrite, Secret};
use values::Raw;
pub use values::{DEFAULT_DOCKER_HOST, DockerHost};

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

    /// http:// or https:// URL of a Prometheus Remote-Write receiver to push every poll to
    /// [env: REMOTE_WRITE_URL]
    #[argh(option)]
    pub remote_write_url: Option<String>,

    /// name=value label added to every pushed series; repeatable [env: REMOTE_WRITE_LABELS, a
    /// comma list]
    #[argh(option)]
    pub remote_write_label: Vec<String>,

    /// sign remote-write requests with AWS SigV4, service aps [env: REMOTE_WRITE_SIGV4]
    #[argh(switch)]
    pub remote_write_sigv4: bool,

    /// region for SigV4 [env: REMOTE_WRITE_SIGV4_REGION; default the URL host's region, else
    /// AWS_REGION, else AWS_DEFAULT_REGION]
    #[argh(option)]
    pub remote_write_sigv4_region: Option<String>,

    /// PEM CA certificates trusted besides the bundled public roots [env: REMOTE_WRITE_CA_FILE]
    #[argh(option)]
    pub remote_write_ca_file: Option<String>,

    /// seconds allowed for one remote-write request, connect to last byte [env:
    /// REMOTE_WRITE_TIMEOUT; default 10]
    #[argh(option)]
    pub remote_write_timeout: Option<String>,

    /// remote-write requests kept while the receiver is away; beyond it the oldest is dropped
    /// [env: REMOTE_WRITE_BUFFER; default 120]
    #[argh(option)]
    pub remote_write_buffer: Option<String>,

    /// comma list of family names or * globs: only these families are exported, everywhere
    /// [env: METRIC_ALLOWLIST; default all]
    #[argh(option)]
    pub metric_allowlist: Option<String>,

    /// comma list of family names or * globs: these families are not exported, anywhere [env:
    /// METRIC_DENYLIST]
    #[argh(option)]
    pub metric_denylist: Option<String>,
}

/// What to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Run(Box<Config>),
    /// GET `/health` on this address.
    Healthcheck(SocketAddr),
    /// Print the version line (`core::version::line`).
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
pub enum Origin {
    /// The ECS Task Metadata Endpoint v4; the base URL without a trailing `/`.
    Ecs { metadata_url: String },
    /// A plain Docker host (`--docker`), through the Docker Engine API.
    Docker { host: DockerHost },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Ecs { metadata_url } => f.write_str(metadata_url),
            Origin::Docker { host } => write!(f, "the Docker Engine API at {host}"),
        }
    }
}

/// Validated configuration of a running exporter.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub origin: Origin,
    pub listen: SocketAddr,
    pub interval: Duration,
    pub timeout: Duration,
    pub filter: Filter,
    /// Which families are exported, by `/metrics`, DogStatsD and remote write (SPEC §6).
    pub metric_filter: MetricFilter,
    pub statsd: Option<StatsdTarget>,
    /// Push to a Remote-Write receiver (SPEC §5); `None`: off.
    pub remote_write: Option<RemoteWrite>,
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

/// What the command line asks before anything is validated.
#[derive(Debug)]
pub enum Parsed {
    Args(Box<Args>),
    /// `--help`: print this and exit 0.
    Help(String),
}

/// Reads the command line (without the program name). An unknown or incomplete flag is an error
/// of one line.
pub fn parse_args(program: &str, argv: &[&str]) -> Result<Parsed, ConfigError> {
    match Args::from_args(&[program], argv) {
        Ok(args) => Ok(Parsed::Args(Box::new(args))),
        Err(exit) if exit.status.is_ok() => Ok(Parsed::Help(exit.output)),
        Err(exit) => Err(ConfigError(format!(
            "{} (see --help)",
            exit.output.lines().next().unwrap_or("invalid arguments")
        ))),
    }
}

const DEFAULT_EXCLUDE: &str = "ecs-container-exporter,~internal~ecs~pause";

/// Where to look for one setting: a flag's value, then environment variables in order.
struct Lookup<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Lookup<'_> {
    /// The flag's value (as `--name`), else the first non-empty variable.
    fn raw(&self, flag: Option<String>, name: &str, vars: &[&str]) -> Option<Raw> {
        if let Some(value) = flag {
            return Some(Raw {
                value,
                source: format!("--{name}"),
            });
        }
        vars.iter().find_map(|var| {
            (self.env)(var)
                .filter(|v| !v.trim().is_empty())
                .map(|value| Raw {
                    value,
                    source: (*var).to_owned(),
                })
        })
    }

    /// A setting parsed by `parse`, or its default.
    fn get<T>(
        &self,
        flag: Option<String>,
        name: &str,
        vars: &[&str],
        parse: fn(&Raw) -> Result<T, ConfigError>,
        default: T,
    ) -> Result<T, ConfigError> {
        self.raw(flag, name, vars)
            .map_or(Ok(default), |raw| parse(&raw))
    }
}

/// Validates arguments and environment into a command.
pub fn resolve(args: Args, env: &dyn Fn(&str) -> Option<String>) -> Result<Command, ConfigError> {
    // Before any value is checked: the version is asked for when something is wrong.
    if args.version {
        return Ok(Command::Version);
    }
    let lookup = Lookup { env };
    let port = lookup.get(
        args.exporter_port,
        "exporter-port",
        &["EXPORTER_PORT"],
        values::port,
        9545,
    )?;
    let bind = lookup.get(
        args.bind_address,
        "bind-address",
        &["EXPORTER_BIND_ADDRESS"],
        values::ip,
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    )?;
    if args.healthcheck {
        return Ok(Command::Healthcheck(SocketAddr::new(loopback(bind), port)));
    }
    let log_level = lookup.get(
        args.log_level,
        "log-level",
        &["LOG_LEVEL"],
        values::log_level,
        log::LevelFilter::Info,
    )?;
    let interval = lookup.get(
        args.interval,
        "interval",
        &["INTERVAL"],
        values::seconds,
        Duration::from_secs(60),
    )?;
    let timeout = lookup.get(
        args.timeout,
        "timeout",
        &["METADATA_TIMEOUT"],
        values::seconds,
        Duration::from_secs(5),
    )?;
    let list = |flag: Option<String>, var: &str| flag.or_else(|| env(var));
    let filter = Filter {
        include: values::list(&list(args.include, "INCLUDE").unwrap_or_default()),
        exclude: values::list(
            &list(args.exclude, "EXCLUDE").unwrap_or_else(|| DEFAULT_EXCLUDE.to_owned()),
        ),
    };
    let metric_filter = metric_filter(&lookup, args.metric_allowlist, args.metric_denylist)?;
    let statsd = statsd(&lookup, args.use_statsd, args.statsd_host, args.statsd_port)?;
    let remote_write = remote_write::resolve(
        &lookup,
        remote_write::Flags {
            url: args.remote_write_url,
            labels: args.remote_write_label,
            sigv4: args.remote_write_sigv4,
            region: args.remote_write_sigv4_region,
            ca_file: args.remote_write_ca_file,
            timeout: args.remote_write_timeout,
            buffer: args.remote_write_buffer,
        },
    )?;
    let origin = if args.docker {
        docker(&lookup, args.metadata_url.is_some(), args.docker_host)?
    } else {
        ecs(&lookup, args.metadata_url)?
    };
    Ok(Command::Run(Box::new(Config {
        origin,
        listen: SocketAddr::new(bind, port),
        interval,
        timeout,
        filter,
        metric_filter,
        statsd,
        remote_write,
        log_level,
    })))
}

/// Where `--healthcheck` calls: the bind address, loopback for an unspecified one.
fn loopback(bind: IpAddr) -> IpAddr {
    match bind {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    }
}

/// The DogStatsD target when it is on. Host and port are checked even when it is off: a bad
/// value is a mistake either way.
fn statsd(
    lookup: &Lookup,
    flag: bool,
    host: Option<String>,
    port: Option<String>,
) -> Result<Option<StatsdTarget>, ConfigError> {
    let on = flag || lookup.get(None, "use-statsd", &["USE_STATSD"], values::boolean, false)?;
    let host = lookup
        .raw(host, "statsd-host", &["STATSD_HOST", "DD_AGENT_HOST"])
        .map_or_else(|| "localhost".to_owned(), |raw| raw.value.trim().to_owned());
    let port = lookup.get(
        port,
        "statsd-port",
        &["STATSD_PORT", "DD_DOGSTATSD_PORT"],
        values::port,
        8125,
    )?;
    Ok(on.then_some(StatsdTarget { host, port }))
}

/// The family filter (SPEC §6): an allowlist or a denylist, not both; each entry must match a
/// family the exporter can emit.
fn metric_filter(
    lookup: &Lookup,
    allow: Option<String>,
    deny: Option<String>,
) -> Result<MetricFilter, ConfigError> {
    let allow = lookup.raw(allow, "metric-allowlist", &["METRIC_ALLOWLIST"]);
    let deny = lookup.raw(deny, "metric-denylist", &["METRIC_DENYLIST"]);
    let (list, raw) = match (allow, deny) {
        (None, None) => return Ok(MetricFilter::default()),
        (Some(allow), Some(deny)) => {
            return Err(ConfigError(format!(
                "{} and {} exclude each other: list the families to keep or those to leave \
                 out, not both",
                allow.source, deny.source
            )));
        }
        (Some(raw), None) => (List::Allow, raw),
        (None, Some(raw)) => (List::Deny, raw),
    };
    let entries: Vec<String> = raw.value.split(',').map(str::to_owned).collect();
    MetricFilter::parse(list, &entries, &crate::core::compute::known_families())
        .map_err(|e| ConfigError(format!("invalid value for {}: {e}", raw.source)))
}

/// `--docker`: the Docker Engine API at `--docker-host`/`DOCKER_HOST` (plain HTTP only).
fn docker(
    lookup: &Lookup,
    metadata_url: bool,
    host: Option<String>,
) -> Result<Origin, ConfigError> {
    if metadata_url {
        return Err(ConfigError(
            "--docker and --metadata-url exclude each other: --docker reads the Docker Engine \
             API at DOCKER_HOST"
                .to_owned(),
        ));
    }
    let host = match lookup.raw(host, "docker-host", &["DOCKER_HOST"]) {
        Some(raw) => DockerHost::parse(&raw.value).map_err(|e| raw.invalid(&e))?,
        None => DockerHost::parse(DEFAULT_DOCKER_HOST).map_err(ConfigError)?,
    };
    if let (DockerHost::Tcp(_), Some(raw)) = (&host, lookup.raw(None, "", &["DOCKER_TLS_VERIFY"])) {
        return Err(raw.invalid(
            "TLS is not supported; unset it and use a plain-HTTP tcp:// address or the Unix \
             socket",
        ));
    }
    Ok(Origin::Docker { host })
}

/// The ECS endpoint: `--metadata-url`, else the variables the ECS agent sets.
fn ecs(lookup: &Lookup, flag: Option<String>) -> Result<Origin, ConfigError> {
    let raw = lookup
        .raw(
            flag,
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
    Ok(Origin::Ecs {
        metadata_url: values::url(&raw)?,
    })
}

#[cfg(test)]
pub(crate) mod tests;
