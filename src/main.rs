//! The `ecs-container-exporter` binary: parse the configuration, start the threads, wait for
//! SIGTERM or SIGINT, finish in-flight answers, exit 0. Bad configuration exits 2 with one line;
//! `--version` prints one line and exits 0.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use ecs_container_exporter::config::{self, Command, Config, Parsed};
use ecs_container_exporter::core::version;
use ecs_container_exporter::poller;
#[cfg(feature = "remote-write")]
use ecs_container_exporter::push::Pusher;
use ecs_container_exporter::serve::state::State;
use ecs_container_exporter::serve::{http, routes, statsd};
use ecs_container_exporter::source::client;

const NAME: &str = "ecs-container-exporter";

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let raw: Vec<&str> = raw.iter().map(String::as_str).collect();
    let args = match config::parse_args(NAME, &raw) {
        Ok(Parsed::Args(args)) => args,
        Ok(Parsed::Help(text)) => {
            println!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{NAME}: {e}");
            return ExitCode::from(2);
        }
    };
    let command = match config::resolve(*args, &|var| std::env::var(var).ok()) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("{NAME}: {e}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Version => {
            println!("{}", version::line());
            ExitCode::SUCCESS
        }
        Command::Healthcheck(addr) if http::probe(addr, "/health") == Some(200) => {
            ExitCode::SUCCESS
        }
        Command::Healthcheck(_) => ExitCode::FAILURE,
        Command::Run(config) => match run(&config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(Failed::Config(e)) => {
                eprintln!("{NAME}: {e}");
                ExitCode::from(2)
            }
            Err(Failed::Run(e)) => {
                eprintln!("{NAME}: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Why `run` ended early: a setting that cannot be used (exit 2), or the system refused.
enum Failed {
    #[cfg_attr(not(feature = "remote-write"), allow(dead_code))]
    Config(String),
    Run(String),
}

fn run(config: &Config) -> Result<(), Failed> {
    let mut logger = env_logger::Builder::new();
    logger.filter_level(config.log_level).format_target(false);
    // The HTTP client's own debug lines are noise next to ours.
    for target in client::LOG_TARGETS {
        logger.filter_module(target, log::LevelFilter::Warn.min(config.log_level));
    }
    logger.init();
    let mut signals = Signals::new([SIGTERM, SIGINT])
        .map_err(|e| Failed::Run(format!("cannot handle signals: {e}")))?;
    let mut state = State::new(config.interval, config.statsd.is_some());
    if config.remote_write.is_some() {
        state = state.with_remote_write();
    }
    let state = Arc::new(state);
    // Files named by the settings are read before anything starts.
    let pusher = start_pusher(config, &state)?;
    let listener = http::bind(config.listen)
        .map_err(|e| Failed::Run(format!("cannot listen on {}: {e}", config.listen)))?;
    if let Some(target) = &config.statsd {
        statsd::spawn(target.clone(), Arc::clone(&state))
            .map_err(|e| Failed::Run(e.to_string()))?;
    }
    poller::spawn(config, Arc::clone(&state))
        .map_err(|e| Failed::Run(format!("cannot start the poller: {e}")))?;
    let shared = Arc::clone(&state);
    let handler = move |request: &http::Request| routes::route(request, &shared);
    let server = http::spawn(listener, http::Limits::default(), handler)
        .map_err(|e| Failed::Run(format!("cannot start the server: {e}")))?;
    log::info!(
        "serving http://{}/metrics; polling {} every {:?}{}{}",
        config.listen,
        config.origin,
        config.interval,
        config
            .statsd
            .as_ref()
            .map(|t| format!("; DogStatsD to {}:{}", t.host, t.port))
            .unwrap_or_default(),
        config
            .remote_write
            .as_ref()
            .map(|rw| format!("; remote write to {}", rw.url))
            .unwrap_or_default()
    );

    let signal = signals.forever().next().unwrap_or(SIGTERM);
    log::info!(
        "{} received, stopping",
        if signal == SIGINT {
            "SIGINT"
        } else {
            "SIGTERM"
        }
    );
    let stopped = Instant::now();
    state.stop();
    server.stop(stopped + Duration::from_millis(800));
    finish_pusher(pusher, config, stopped);
    Ok(())
}

#[cfg(feature = "remote-write")]
type Push = Option<Pusher>;
#[cfg(not(feature = "remote-write"))]
type Push = Option<()>;

/// The remote-write pusher, when it is on (a binary without the feature refused its settings).
fn start_pusher(config: &Config, state: &Arc<State>) -> Result<Push, Failed> {
    #[cfg(feature = "remote-write")]
    if let Some(rw) = &config.remote_write {
        let env = |var: &str| std::env::var(var).ok();
        return Pusher::start(rw, config.interval, Arc::clone(state), &env)
            .map(Some)
            .map_err(Failed::Config);
    }
    let _ = (config, state);
    Ok(None)
}

/// Waits for the last remote-write request (every series stale) within the remote-write timeout.
fn finish_pusher(pusher: Push, config: &Config, stopped: Instant) {
    #[cfg(feature = "remote-write")]
    if let (Some(pusher), Some(rw)) = (pusher, &config.remote_write) {
        pusher.finish(stopped + rw.timeout + Duration::from_millis(200));
    }
    #[cfg(not(feature = "remote-write"))]
    let _ = (pusher, config, stopped);
}
