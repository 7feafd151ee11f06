//! `ecs-task-sim`: a simulated Amazon ECS Task Metadata Endpoint v4.
//!
//! A **test and demo tool only**; it is never shipped in the exporter image.
//! It serves real ECS payloads (the fixtures in `tests/fixtures/`) whose
//! counters advance with wall time, so the exporter shows live non-zero
//! rates. It can inject faults (error statuses, hangs, broken or huge bodies,
//! container churn, counter resets) for integration tests, and play a task's
//! life: restart, stop and start containers, set their health, on request or
//! on its own with `--life`. It also serves the container-credentials
//! endpoint (`/v2/credentials/<id>`, `credentials.rs`) for remote write's
//! SigV4. It leaves out everything else of ECS (task metadata v3, the agent's
//! introspection API, TLS).
//!
//! Paths: `/task`, `/task/stats`, the control plane (`/control/fault`,
//! `/control/clear`, `/control/restart`, `/control/stop`, `/control/start`,
//! `/control/health`, `/control/state`, `/control/credentials`) and
//! `/v2/credentials/<id>`: `http.rs`. Counter semantics: `counters.rs`;
//! the `--life` schedule: `life.rs`. On start it prints one line,
//! `listening on http://<ip>:<port>`, to stdout; logs go to stderr.
//!
//! The modules, each importing only those above it: `clock.rs` (time) and
//! `profiles.rs` (the fixtures); `container.rs` (one container, typed, and its
//! JSON); `task.rs` (the task and its life); `counters.rs` (the stats);
//! `faults.rs`, `life.rs` (the schedule) and `credentials.rs`; `app.rs` (the
//! shared state); `http.rs` (the wire and the routes); this file (flags and
//! wiring).

mod app;
mod clock;
mod container;
mod counters;
mod credentials;
mod faults;
mod http;
mod life;
mod profiles;
mod task;

use argh::FromArgs;
use std::io::Write;
use std::net::{TcpListener, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(FromArgs)]
/// Simulated Amazon ECS Task Metadata Endpoint v4 (test/demo tool): serves
/// fixture-shaped /task and /task/stats payloads with advancing counters, plus
/// fault injection via /control/fault?kind=K&endpoint=E&count=N,
/// /control/clear and /control/state, and a task's life via
/// /control/restart?container=NAME, /control/stop?container=NAME&exit_code=N,
/// /control/start?container=NAME (an unknown NAME is a new container) and
/// /control/health?container=NAME&status=healthy|unhealthy|unknown; and the
/// ECS container-credentials endpoint /v2/credentials/ID, with the credentials
/// still valid at /control/credentials.
struct Args {
    /// address to listen on (default 127.0.0.1:51678; port 0 picks a free port)
    #[argh(option, default = "String::from(\"127.0.0.1:51678\")")]
    listen: String,

    /// payload template: fargate (default), ec2-bridge, managed-instances or ec2-awsvpc
    #[argh(option, default = "String::from(\"fargate\")")]
    profile: String,

    /// serve exactly N running containers: the template's first N running ones,
    /// then clones named app-<i> (default: the template as is)
    #[argh(option)]
    containers: Option<usize>,

    /// stats sample period in seconds; `read` advances in these steps
    /// (0 = every request is a new sample; default 10 for fargate, else 0)
    #[argh(option)]
    refresh_secs: Option<f64>,

    /// fault active from the start (repeatable): status500, status404,
    /// status429, hang, close_mid_body, truncated_json, invalid_json,
    /// too_large, stats_null, stats_empty, container_change, counter_reset
    #[argh(option)]
    fault: Vec<String>,

    /// endpoint of --fault: task, task_stats or both (default both)
    #[argh(option, default = "String::from(\"both\")")]
    fault_endpoint: String,

    /// the task lives on its own (for demos): the health-checked container
    /// turns unhealthy for a while and another container restarts, on a fixed
    /// schedule (logged at start)
    #[argh(switch)]
    life: bool,

    /// seconds that the credentials of /v2/credentials/<id> live (default
    /// 3600); fresh ones are issued once less than half of that is left
    #[argh(option, default = "3600")]
    credentials_lifetime: u64,

    /// the Authorization header that /v2/credentials/<id> requires (default:
    /// none required)
    #[argh(option)]
    credentials_token: Option<String>,

    /// log every request (debug level) to stderr
    #[argh(switch, short = 'v')]
    verbose: bool,
}

/// Minimal stderr logger for the `log` facade.
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            eprintln!("ecs-task-sim {}: {}", record.level(), record.args());
        }
    }

    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
    let args = match Args::from_args(&["ecs-task-sim"], refs.get(1..).unwrap_or_default()) {
        Ok(args) => args,
        Err(exit) if exit.status.is_ok() => {
            println!("{}", exit.output);
            return ExitCode::SUCCESS;
        }
        Err(exit) => return usage_error(exit.output.lines().next().unwrap_or("bad arguments")),
    };
    let level = if args.verbose {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Info
    };
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("ecs-task-sim: {msg} (see --help)");
    ExitCode::from(2)
}

fn run(args: Args) -> Result<ExitCode, String> {
    let Some(profile) = profiles::find(&args.profile) else {
        let names: Vec<&str> = profiles::PROFILES.iter().map(|p| p.name).collect();
        return Ok(usage_error(&format!(
            "unknown profile {:?} (expected one of: {})",
            args.profile,
            names.join(", ")
        )));
    };
    let refresh = args.refresh_secs.unwrap_or(profile.refresh_secs);
    if !(refresh.is_finite() && refresh >= 0.0) {
        return Ok(usage_error("--refresh-secs must be a number >= 0"));
    }
    let endpoint = match faults::Endpoint::parse(&args.fault_endpoint) {
        Ok(e) => e,
        Err(e) => return Ok(usage_error(&format!("--fault-endpoint: {e}"))),
    };
    let mut kinds = Vec::new();
    for name in &args.fault {
        match faults::Kind::parse(name, None) {
            Ok(kind) => kinds.push(kind),
            Err(e) => return Ok(usage_error(&format!("--fault: {e}"))),
        }
    }
    if args.credentials_lifetime == 0 {
        return Ok(usage_error("--credentials-lifetime must be at least 1"));
    }
    let addr = match args.listen.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(addr)) => addr,
        _ => {
            return Ok(usage_error(&format!(
                "--listen: bad address {:?}",
                args.listen
            )));
        }
    };

    let mut task = task::Task::load(profile)?;
    if let Some(n) = args.containers {
        task.resize(n)?;
    }
    let life = args.life.then(|| life::Life::new(&task));
    if let Some(life) = &life {
        log::info!("life: {}", life.describe());
    }
    let app = Arc::new(app::App::new(
        task,
        clock::Clock::new(profile.interval_secs, refresh),
        life,
        credentials::Issuer::new(args.credentials_lifetime, args.credentials_token),
    ));
    for kind in kinds {
        app.set_fault(kind, endpoint, 0);
    }

    let listener = TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("local_addr: {e}"))?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on http://{local}")
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("stdout: {e}"))?;
    log::info!(
        "profile {} with {} containers, refresh {refresh}s",
        profile.name,
        app.task().containers.len()
    );
    http::serve(&listener, &app);
    Ok(ExitCode::SUCCESS)
}
