//! The `ecs-container-exporter` binary: parse the configuration, start the threads, wait for
//! SIGTERM or SIGINT, finish in-flight answers, exit 0. Bad configuration exits 2 with one line;
//! `--version` prints one line and exits 0.

use std::process::ExitCode;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use ecs_container_exporter::config::{self, Command, Config, Parsed};
use ecs_container_exporter::core::version;
use ecs_container_exporter::poller;
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
        Command::Healthcheck(addr) if http::check_health(addr) => ExitCode::SUCCESS,
        Command::Healthcheck(_) => ExitCode::FAILURE,
        Command::Run(config) => match run(&config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{NAME}: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn run(config: &Config) -> Result<(), String> {
    let mut logger = env_logger::Builder::new();
    logger.filter_level(config.log_level).format_target(false);
    // The HTTP client's own debug lines are noise next to ours.
    for target in client::LOG_TARGETS {
        logger.filter_module(target, log::LevelFilter::Warn.min(config.log_level));
    }
    logger.init();
    let mut signals =
        Signals::new([SIGTERM, SIGINT]).map_err(|e| format!("cannot handle signals: {e}"))?;
    let listener = http::bind(config.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let state = Arc::new(State::new(config.interval, config.statsd.is_some()));
    // The DogStatsD sender tells the poller when its error count changed.
    let (wake, woken) = mpsc::sync_channel(1);
    let statsd = match &config.statsd {
        Some(target) => Some(
            statsd::spawn(target.clone(), Arc::clone(&state), wake).map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    poller::spawn(config, Arc::clone(&state), statsd, woken)
        .map_err(|e| format!("cannot start the poller: {e}"))?;
    let server = http::spawn(listener, Arc::clone(&state), routes::route)
        .map_err(|e| format!("cannot start the server: {e}"))?;
    log::info!(
        "serving http://{}/metrics; polling {} every {:?}{}",
        config.listen,
        config.origin,
        config.interval,
        config
            .statsd
            .as_ref()
            .map(|t| format!("; DogStatsD to {}:{}", t.host, t.port))
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
    state.stop();
    server.stop(Instant::now() + Duration::from_millis(800));
    Ok(())
}
