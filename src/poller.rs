//! The poller thread: at start and then every interval, fetch `/task` and `/task/stats` (or,
//! with `--docker`, the Docker host's containers and their stats: `docker.rs`), compute a
//! snapshot, render it, publish it, and hand it to DogStatsD.
//!
//! A failed poll keeps the last good snapshot: the data families stay as they were, only the
//! self-metrics change (`ecs_exporter_up 0`, the error counted by endpoint and reason), and one
//! log line says what happened. Nothing is sent to DogStatsD after a failed poll.
//!
//! Out of scope: the formulas (`compute.rs`), HTTP details (`metadata.rs`, `docker.rs`).

use std::sync::Arc;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::thread;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::compute::{self, History, Options};
use crate::config::{Config, Source};
use crate::docker::Docker;
use crate::exposition::{self, Format};
use crate::metadata::{Client, FetchError};
use crate::payload::{self, Stats, Task};
use crate::snapshot::{Endpoint, Health, Reason, Snapshot};
use crate::state::{Exposition, State};

/// Where a poll reads the task and its stats from.
enum Origin {
    Ecs(Client),
    Docker(Docker),
}

impl Origin {
    fn new(config: &Config) -> Origin {
        match &config.source {
            Source::Ecs { metadata_url } => Origin::Ecs(Client::new(metadata_url, config.timeout)),
            Source::Docker { host } => Origin::Docker(Docker::new(host.clone(), config.timeout)),
        }
    }

    /// The task and its stats; a failure names the endpoint it is counted under (Docker: the
    /// container list and inspect calls count as `task`, the stats calls as `task_stats`).
    fn fetch(&mut self) -> Result<(Task, Stats), (Endpoint, FetchError)> {
        match self {
            Origin::Ecs(client) => fetch_ecs(client),
            Origin::Docker(docker) => docker.fetch(),
        }
    }
}

/// The poller's memory between polls.
pub struct Poller {
    origin: Origin,
    options: Options,
    history: History,
    /// Warnings of `compute` already logged: each is said once.
    warned: Vec<String>,
    health: Health,
    /// The last good snapshot (empty before the first success).
    snapshot: Arc<Snapshot>,
    failures_in_a_row: u64,
    state: Arc<State>,
    statsd: Option<SyncSender<Arc<Snapshot>>>,
}

impl Poller {
    pub fn new(
        config: &Config,
        state: Arc<State>,
        statsd: Option<SyncSender<Arc<Snapshot>>>,
    ) -> Poller {
        Poller {
            origin: Origin::new(config),
            options: Options {
                filter: config.filter.clone(),
                device_mapper: device_mapper_majors(),
            },
            history: History::default(),
            warned: Vec::new(),
            health: Health::default(),
            snapshot: Arc::new(Snapshot::default()),
            failures_in_a_row: 0,
            state,
            statsd,
        }
    }

    /// Publishes the empty exposition that scrapes see before the first poll ends.
    pub fn publish_initial(&self) {
        self.state
            .publish_initial(render(&self.snapshot, &self.health));
    }

    /// One poll: fetch, compute, publish.
    pub fn poll(&mut self) {
        let started = Instant::now();
        let result = self.origin.fetch();
        self.health.poll_duration = Some(started.elapsed().as_secs_f64());
        match result {
            Ok((task, stats)) => {
                let (snapshot, history) =
                    compute::compute(&task, &stats, &self.history, &self.options);
                self.history = history;
                for warning in &snapshot.warnings {
                    if !self.warned.contains(warning) {
                        log::warn!("{warning}");
                        self.warned.push(warning.clone());
                    }
                }
                self.snapshot = Arc::new(snapshot);
                self.health.up = true;
                self.health.last_success = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .ok()
                    .map(|d| d.as_secs_f64());
                if self.failures_in_a_row > 0 {
                    log::info!(
                        "poll succeeded again after {} failed",
                        self.failures_in_a_row
                    );
                }
                self.failures_in_a_row = 0;
                if let Some(tx) = &self.statsd
                    && let Err(TrySendError::Full(_)) = tx.try_send(Arc::clone(&self.snapshot))
                {
                    log::debug!(
                        "DogStatsD sender still busy with the previous poll; skipped this one"
                    );
                }
            }
            Err((endpoint, error)) => {
                self.health.up = false;
                self.health.count_error(endpoint, error.reason);
                self.failures_in_a_row += 1;
                log::warn!("poll failed, keeping the last good numbers: {error}");
            }
        }
        self.state.publish(render(&self.snapshot, &self.health));
    }
}

/// The device-mapper majors of this host, from `/proc/devices` (read once; none if unreadable).
fn device_mapper_majors() -> Vec<u64> {
    match std::fs::read_to_string("/proc/devices") {
        Ok(text) => compute::device_mapper_majors(&text),
        Err(e) => {
            log::debug!("cannot read /proc/devices ({e}): layered block devices are not known");
            Vec::new()
        }
    }
}

fn fetch_ecs(client: &Client) -> Result<(Task, Stats), (Endpoint, FetchError)> {
    let task = client
        .get(Endpoint::Task)
        .and_then(|body| {
            payload::parse_task(&body).map_err(|e| parse_error(client, Endpoint::Task, e))
        })
        .map_err(|e| (Endpoint::Task, e))?;
    let stats = client
        .get(Endpoint::TaskStats)
        .and_then(|body| {
            payload::parse_stats(&body).map_err(|e| parse_error(client, Endpoint::TaskStats, e))
        })
        .map_err(|e| (Endpoint::TaskStats, e))?;
    Ok((task, stats))
}

fn parse_error(client: &Client, endpoint: Endpoint, e: payload::ParseError) -> FetchError {
    FetchError {
        reason: Reason::Parse,
        detail: format!("GET {}: {e}", client.url(endpoint)),
    }
}

/// Both formats of a snapshot and the exporter's health, rendered once for every scrape.
pub fn render(snapshot: &Snapshot, health: &Health) -> Exposition {
    let own = compute::health_families(health);
    let mut text = String::with_capacity(16 * 1024);
    let mut openmetrics = String::with_capacity(16 * 1024);
    for (out, format) in [
        (&mut text, Format::Text),
        (&mut openmetrics, Format::OpenMetrics),
    ] {
        exposition::write_families(out, &snapshot.families, format);
        exposition::write_families(out, &own, format);
    }
    Exposition { text, openmetrics }
}

/// Starts the poller thread: a poll at once, then one every interval (measured from the start
/// of each poll; a poll longer than the interval is followed at once by the next).
pub fn spawn(
    config: &Config,
    state: Arc<State>,
    statsd: Option<SyncSender<Arc<Snapshot>>>,
) -> std::io::Result<()> {
    let interval = config.interval;
    let mut poller = Poller::new(config, state, statsd);
    poller.publish_initial();
    thread::Builder::new()
        .name("poller".into())
        .spawn(move || {
            let mut next = Instant::now();
            loop {
                poller.poll();
                next += interval;
                let now = Instant::now();
                if next > now {
                    thread::sleep(next - now);
                } else {
                    next = now;
                }
            }
        })?;
    Ok(())
}
