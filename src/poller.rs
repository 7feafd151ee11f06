//! The poller thread: at start and then every interval, fetch the task and its stats from the
//! source, compute a snapshot, render it and publish it. It is the one producer: `/metrics`,
//! DogStatsD and remote write each consume what it publishes, and nothing calls it back.
//!
//! A failed poll keeps the last good snapshot: the data families stay as they were, only the
//! self-metrics change (`ecs_exporter_up 0`, the error counted by endpoint and reason), and one
//! log line says what happened. A failed poll publishes no numbers for the outputs to send. The
//! outputs' own counters (DogStatsD errors, remote-write outcomes) are read when a poll renders,
//! so they show from the next poll on.
//!
//! The family filters (SPEC §6) are applied once, here, for all three outputs: `compute` leaves
//! the filtered data families out of the snapshot, and the filtered own families are left out
//! before the exposition is rendered; DogStatsD and remote write deliver that same snapshot and
//! those same own families.
//!
//! Out of scope: the formulas (`core::compute`), HTTP details (`source`), serving and delivering
//! (`serve`, `push`).

use std::sync::Arc;
use std::thread;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::config::Config;
use crate::core::compute::{self, History, Options};
use crate::core::exposition;
use crate::core::health::{self, Health};
use crate::core::snapshot::Snapshot;
use crate::serve::state::{Poll, Publication, State};
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
}

impl Poller {
    pub fn new(config: &Config, state: Arc<State>) -> Poller {
        Poller {
            source: Source::new(&config.origin, config.timeout),
            options: Options {
                filter: config.filter.clone(),
                families: config.metric_filter.clone(),
                device_mapper: device_mapper_majors(),
            },
            history: History::default(),
            health: Health::default(),
            snapshot: Arc::new(Snapshot::default()),
            warned: Vec::new(),
            failures_in_a_row: 0,
            state,
        }
    }

    /// One poll: fetch, compute, publish.
    pub fn poll(&mut self) {
        let started = Instant::now();
        let result = self.source.fetch();
        self.health.poll_duration = Some(started.elapsed().as_secs_f64());
        let good = result.is_ok();
        match result {
            Ok((task, stats)) => {
                let (snapshot, history) =
                    compute::compute(&task, &stats, &self.history, &self.options);
                self.history = history;
                self.snapshot = Arc::new(snapshot);
                self.log_warnings();
                self.health.up = true;
                self.health.last_success = Some(unix_ms() as f64 / 1000.0);
                if self.failures_in_a_row > 0 {
                    log::info!(
                        "poll succeeded again after {} failed",
                        self.failures_in_a_row
                    );
                }
                self.failures_in_a_row = 0;
            }
            Err((endpoint, error)) => {
                self.health.up = false;
                self.health.count_error(endpoint, error.reason);
                self.failures_in_a_row += 1;
                log::warn!("poll failed, keeping the last good numbers: {error}");
            }
        }
        let publication = self.render(good);
        self.state.publish(publication);
    }

    /// What is served before the first poll: the exporter's own families, no numbers.
    pub fn prepare(&mut self) {
        let publication = self.render(false);
        self.state.prepare(publication);
    }

    /// The snapshot and the exporter's health (with the outputs' counters as they are now),
    /// rendered once for every scrape until the next attempt; after a good poll, also what the
    /// outputs deliver.
    fn render(&mut self, good: bool) -> Publication {
        self.health.statsd_errors = self.state.statsd_errors();
        self.health.remote_write = self.state.remote_write().map(|c| c.health());
        let mut own = health::families(&self.health);
        own.retain(|f| self.options.families.allows(f.name));
        let exposition = exposition::render(&self.snapshot.families, &own);
        let poll = good.then(|| Poll {
            // The time the snapshot was taken: its last success, to the millisecond.
            time_ms: self
                .health
                .last_success
                .map_or_else(unix_ms, |t| (t * 1000.0).round() as i64),
            snapshot: Arc::clone(&self.snapshot),
            own,
        });
        Publication {
            attempted: Some(Instant::now()),
            exposition,
            poll,
        }
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

/// Now as Unix milliseconds (0 if the clock is before 1970).
fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Starts the poller thread: a poll at once, then one every interval (measured from the start
/// of each poll; a poll longer than the interval is followed at once by the next).
pub fn spawn(config: &Config, state: Arc<State>) -> std::io::Result<()> {
    let interval = config.interval;
    let mut poller = Poller::new(config, state);
    poller.prepare();
    thread::Builder::new()
        .name("poller".into())
        .spawn(move || {
            let mut next = Instant::now();
            loop {
                poller.poll();
                next += interval;
                let now = Instant::now();
                if next <= now {
                    next = now;
                } else {
                    thread::sleep(next - now);
                }
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Origin, StatsdTarget};
    use crate::core::compute::Filter;
    use crate::core::compute::known_families;
    use crate::core::dogstatsd;
    use crate::core::filter::{List, MetricFilter};
    use crate::source::fake::{self, Fake};
    use std::time::Duration;

    const TASK: &str = include_str!("../tests/fixtures/ec2-awsvpc-cgroupv2-task.json");
    const STATS: &str = include_str!("../tests/fixtures/ec2-awsvpc-cgroupv2-task-stats.json");

    /// Two polls of a fake endpoint with this family filter, DogStatsD and remote write on;
    /// the latest publication.
    fn publish(list: List, entries: &str) -> Arc<Publication> {
        let endpoint = Fake::tcp(|target| match target {
            "/v4/task" => Some(fake::json(200, TASK)),
            "/v4/task/stats" => Some(fake::json(200, STATS)),
            _ => Some(fake::json(404, "{}")),
        });
        let entries: Vec<String> = entries.split(',').map(str::to_owned).collect();
        let config = Config {
            origin: Origin::Ecs {
                metadata_url: format!("http://{}/v4", endpoint.authority),
            },
            listen: ([127, 0, 0, 1], 0).into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
            filter: Filter::default(),
            metric_filter: MetricFilter::parse(list, &entries, &known_families()).unwrap(),
            statsd: Some(StatsdTarget {
                host: "localhost".into(),
                port: 8125,
            }),
            remote_write: None,
            log_level: log::LevelFilter::Info,
        };
        let state = Arc::new(State::new(config.interval, true).with_remote_write());
        let mut poller = Poller::new(&config, Arc::clone(&state));
        poller.prepare();
        poller.poll();
        poller.poll();
        state.latest()
    }

    /// The family names of the exposition (its `# TYPE` lines).
    fn exposed(publication: &Publication) -> Vec<String> {
        let text = publication.body(exposition::Format::Text);
        text.lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .map(str::to_owned)
            .collect()
    }

    /// What each output receives: `/metrics` renders, DogStatsD writes lines from, and remote
    /// write pushes (`push::encode`) the same families, with the filtered ones out of all three.
    #[test]
    fn every_output_gets_the_same_filtered_families() {
        let denied = "ecs_task_network_*,ecs_task_cpu_usage_ratio,ecs_exporter_up,\
                      ecs_exporter_remote_write_*";
        let publication = publish(List::Deny, denied);
        let poll = publication.poll.as_ref().expect("a good poll");
        let delivered: Vec<&str> = poll
            .snapshot
            .families
            .iter()
            .chain(&poll.own)
            .filter(|f| !f.series.is_empty())
            .map(|f| f.name)
            .collect();
        assert_eq!(
            exposed(&publication),
            delivered,
            "/metrics = what is delivered"
        );
        for gone in [
            "ecs_task_network_rx_bytes_total",
            "ecs_task_cpu_usage_ratio",
            "ecs_exporter_up",
            "ecs_exporter_remote_write_requests_total",
        ] {
            assert!(!delivered.contains(&gone), "{gone}");
        }
        for kept in [
            "ecs_task_mem_usage",
            "ecs_task_cpu_kernelmode",
            "ecs_exporter_statsd_errors_total",
            "ecs_task_exporter_status",
        ] {
            assert!(delivered.contains(&kept), "{kept}");
        }
        let lines = dogstatsd::lines(&poll.snapshot);
        assert!(lines.iter().any(|l| l.starts_with("ecs_task.mem_usage:")));
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("ecs_task.cpu_kernelmode:"))
        );
        for gone in ["ecs_task.network_", "ecs_task.cpu_usage_ratio:"] {
            assert!(!lines.iter().any(|l| l.starts_with(gone)), "{gone}");
        }
        #[cfg(feature = "remote-write")]
        {
            use crate::core::remote_write;
            let samples =
                remote_write::samples(poll.snapshot.families.iter().chain(&poll.own), &[]);
            let mut pushed: Vec<&str> = samples.iter().map(|s| s.labels[0].1.as_str()).collect();
            pushed.dedup();
            assert_eq!(pushed, delivered, "remote write pushes what /metrics shows");
        }
    }

    #[test]
    fn an_allowlist_leaves_only_its_families_everywhere() {
        let publication = publish(List::Allow, "ecs_task_mem_usage,ecs_exporter_poll_*");
        assert_eq!(
            exposed(&publication),
            [
                "ecs_task_mem_usage",
                "ecs_exporter_poll_duration_seconds",
                "ecs_exporter_poll_errors_total"
            ]
        );
        let poll = publication.poll.as_ref().expect("a good poll");
        let lines = dogstatsd::lines(&poll.snapshot);
        assert!(!lines.is_empty());
        assert!(lines.iter().all(|l| l.starts_with("ecs_task.mem_usage:")));
    }
}
