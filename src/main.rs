//! The `ecs-container-exporter` binary: parse the configuration, start the threads, wait for
//! SIGTERM or SIGINT, finish in-flight answers, exit 0. Bad configuration exits 2 with one line;
//! `--version` prints one line and exits 0.

use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use argh::FromArgs;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use ecs_container_exporter::config::{self, Args, Command, Config};
use ecs_container_exporter::state::State;
use ecs_container_exporter::{poller, server, statsd, version};

const NAME: &str = "ecs-container-exporter";

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let raw: Vec<&str> = raw.iter().map(String::as_str).collect();
    let args = match Args::from_args(&[NAME], &raw) {
        Ok(args) => args,
        Err(exit) if exit.status.is_ok() => {
            println!("{}", exit.output);
            return ExitCode::SUCCESS;
        }
        Err(exit) => {
            let reason = exit.output.lines().next().unwrap_or("invalid arguments");
            eprintln!("{NAME}: {reason} (see --help)");
            return ExitCode::from(2);
        }
    };
    let command = match config::resolve(args, &|var| std::env::var(var).ok()) {
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
        Command::Healthcheck(addr) if server::check_health(addr) => ExitCode::SUCCESS,
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
    env_logger::Builder::new()
        .filter_level(config.log_level)
        .filter_module("ureq", log::LevelFilter::Warn.min(config.log_level))
        .filter_module("ureq_proto", log::LevelFilter::Warn.min(config.log_level))
        .format_target(false)
        .init();
    let mut signals =
        Signals::new([SIGTERM, SIGINT]).map_err(|e| format!("cannot handle signals: {e}"))?;
    let listener = server::bind(config.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let state = Arc::new(State::new(config.interval, config.statsd.is_some()));
    let statsd = match &config.statsd {
        Some(target) => {
            Some(statsd::spawn(target.clone(), Arc::clone(&state)).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    poller::spawn(config, Arc::clone(&state), statsd)
        .map_err(|e| format!("cannot start the poller: {e}"))?;
    server::spawn(listener, Arc::clone(&state))
        .map_err(|e| format!("cannot start the server: {e}"))?;
    log::info!(
        "serving http://{}/metrics; polling {} every {:?}{}",
        config.listen,
        config.source,
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
    let deadline = Instant::now() + Duration::from_millis(800);
    while state.in_flight() > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}
