//! The poller thread: at start and then every interval, fetch the task and its stats from the
//! source, compute a snapshot, render it, publish it, and hand it to DogStatsD.
//!
//! A failed poll keeps the last good snapshot: the data families stay as they were, only the
//! self-metrics change (`ecs_exporter_up 0`, the error counted by endpoint and reason), and one
//! log line says what happened. Nothing is sent to DogStatsD after a failed poll. Between polls,
//! a word from the DogStatsD sender (a send failed) re-renders the last snapshot with the new
//! error count, so that `/metrics` shows it at once.
//!
//! Out of scope: the formulas (`core::compute`), HTTP details (`source`), serving (`serve`).

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::config::Config;
use crate::core::compute::{self, History, Options};
use crate::core::exposition;
use crate::core::health::{self, Health};
use crate::core::snapshot::Snapshot;
use crate::serve::state::State;
use crate::source::Source;

/// The poller's memory between polls.
pub struct Poller {
    source: Source,
    options: Options,
    history: History,
    health: Health,
    /// The last good snapshot (empty before the first success).
    snapshot: Arc<Snapshot>,
    /// Warnings of `compute` already logged: each is said once.
    warned: Vec<String>,
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
            source: Source::new(&config.origin, config.timeout),
            options: Options {
                filter: config.filter.clone(),
                device_mapper: device_mapper_majors(),
            },
            history: History::default(),
            health: Health::default(),
            snapshot: Arc::new(Snapshot::default()),
            warned: Vec::new(),
            failures_in_a_row: 0,
            state,
            statsd,
        }
    }

    /// One poll: fetch, compute, publish.
    pub fn poll(&mut self) {
        let started = Instant::now();
        let result = self.source.fetch();
        self.health.poll_duration = Some(started.elapsed().as_secs_f64());
        match result {
            Ok((task, stats)) => {
                let (snapshot, history) =
                    compute::compute(&task, &stats, &self.history, &self.options);
                self.history = history;
                self.snapshot = Arc::new(snapshot);
                self.log_warnings();
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
        let exposition = self.render();
        self.state.publish(exposition);
    }

    /// Publishes the last snapshot again with the current DogStatsD error count (not a poll
    /// attempt: `/health` does not change).
    pub fn republish(&mut self) {
        let exposition = self.render();
        self.state.replace(exposition);
    }

    /// The snapshot and the exporter's health, rendered once for every scrape until the next.
    fn render(&mut self) -> exposition::Exposition {
        self.health.statsd_errors = self.state.statsd_errors();
        exposition::render(&self.snapshot.families, &health::families(&self.health))
    }

    fn log_warnings(&mut self) {
        for warning in &self.snapshot.warnings {
            if !self.warned.contains(warning) {
                log::warn!("{warning}");
                self.warned.push(warning.clone());
            }
        }
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

/// Starts the poller thread: a poll at once, then one every interval (measured from the start
/// of each poll; a poll longer than the interval is followed at once by the next). `wake` says
/// that DogStatsD errors changed.
pub fn spawn(
    config: &Config,
    state: Arc<State>,
    statsd: Option<SyncSender<Arc<Snapshot>>>,
    wake: Receiver<()>,
) -> std::io::Result<()> {
    let interval = config.interval;
    let mut poller = Poller::new(config, state, statsd);
    poller.republish();
    thread::Builder::new()
        .name("poller".into())
        .spawn(move || {
            let mut next = Instant::now();
            loop {
                poller.poll();
                next += interval;
                loop {
                    let now = Instant::now();
                    if next <= now {
                        next = now;
                        break;
                    }
                    match wake.recv_timeout(next - now) {
                        Ok(()) => poller.republish(),
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => thread::sleep(next - now),
                    }
                }
            }
        })?;
    Ok(())
}
