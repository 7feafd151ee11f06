//! What the threads share: the poller's latest [`Publication`] (behind an `Arc` swapped under a
//! mutex held only for the swap, with a condition variable that wakes the outputs waiting for
//! the next one) and the outputs' own counters (atomics). The publication is the one record of
//! the exporter's health: `/health` and `ecs_exporter_up` both read it.
//!
//! Data flows one way. The poller publishes; the HTTP server reads the latest publication's
//! bytes, DogStatsD and the remote-write pusher each wait for the next publication and deliver
//! it. An output that fails counts the failure here; the poller reads the counts when it renders
//! the next poll, so an output's error shows on `/metrics` from the next poll on. Nothing wakes
//! the poller back.
//!
//! A scrape clones the `Arc` and writes its bytes, so scrapes never wait on a poll and never
//! compute.
//!
//! Out of scope: rendering (`core::exposition`, called by the poller), serving (`http.rs`),
//! delivering (`statsd.rs`, `push`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::core::exposition::{Exposition, Format};
use crate::core::health::RemoteWriteHealth;
use crate::core::snapshot::{Family, Snapshot};

/// What one poll attempt published: the one record that `/metrics`, `/health` and the outputs
/// read. `/health` is whether the poller is alive (its latest attempt is recent, whatever its
/// outcome); `ecs_exporter_up` in the exposition is whether that attempt succeeded.
#[derive(Debug, Default)]
pub struct Publication {
    /// When the attempt finished; `None` for what is served before the first poll.
    pub attempted: Option<Instant>,
    /// The whole `/metrics` answer in both formats until the next attempt.
    pub exposition: Exposition,
    /// After a successful poll: what DogStatsD and remote write deliver. `None` after a failed
    /// attempt (nothing is re-sent) and before the first poll.
    pub poll: Option<Poll>,
}

impl Publication {
    pub fn body(&self, format: Format) -> &str {
        self.exposition.body(format)
    }
}

/// A successful poll's numbers, as rendered in the same publication's exposition.
#[derive(Debug)]
pub struct Poll {
    /// When the poll finished, Unix milliseconds: the samples' time in remote write.
    pub time_ms: i64,
    pub snapshot: Arc<Snapshot>,
    /// The exporter's own families at that poll (`core::health::families`).
    pub own: Vec<Family>,
}

/// The numbers the remote-write pusher reports (SPEC §5 self-metrics).
#[derive(Debug, Default)]
pub struct RemoteWriteCounters {
    pub sent: AtomicU64,
    pub retried: AtomicU64,
    pub dropped: AtomicU64,
    pub samples: AtomicU64,
    pub queue: AtomicU64,
    /// Unix milliseconds of the last accepted request, plus one (0: none yet).
    pub last_success_ms: AtomicU64,
}

impl RemoteWriteCounters {
    /// The counters as the core renders them.
    pub fn health(&self) -> RemoteWriteHealth {
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        RemoteWriteHealth {
            sent: load(&self.sent),
            retried: load(&self.retried),
            dropped: load(&self.dropped),
            samples: load(&self.samples),
            queue: load(&self.queue),
            last_success: match load(&self.last_success_ms) {
                0 => None,
                ms => Some((ms - 1) as f64 / 1000.0),
            },
        }
    }
}

/// What an output waiting for the poller gets.
#[derive(Debug)]
pub enum Next {
    /// A newer publication and its number.
    Published(u64, Arc<Publication>),
    /// The deadline passed first.
    Timeout,
    /// SIGTERM/SIGINT.
    Stopping,
}

/// State shared by the poller, the outputs and main.
#[derive(Debug)]
pub struct State {
    /// The latest publication and its number (0: the one before the first poll).
    latest: Mutex<(u64, Arc<Publication>)>,
    published: Condvar,
    /// `/health` is 200 while the last attempt is younger than this.
    health_window: Duration,
    /// DogStatsD sends that failed; `None` when DogStatsD is off.
    statsd_errors: Option<AtomicU64>,
    /// The pusher's counters; `None` when remote write is off.
    remote_write: Option<Arc<RemoteWriteCounters>>,
    /// Set on SIGTERM/SIGINT: finish what is in flight, take nothing new.
    stopping: AtomicBool,
}

impl State {
    pub fn new(interval: Duration, statsd: bool) -> State {
        State {
            latest: Mutex::new((0, Arc::new(Publication::default()))),
            published: Condvar::new(),
            health_window: (interval * 3).max(Duration::from_secs(30)),
            statsd_errors: statsd.then(|| AtomicU64::new(0)),
            remote_write: None,
            stopping: AtomicBool::new(false),
        }
    }

    /// With the remote-write counters (remote write is on).
    pub fn with_remote_write(mut self) -> State {
        self.remote_write = Some(Arc::default());
        self
    }

    fn lock(&self) -> MutexGuard<'_, (u64, Arc<Publication>)> {
        self.latest.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes what the exporter serves before its first poll (not a poll attempt).
    pub fn prepare(&self, mut publication: Publication) {
        publication.attempted = None;
        self.lock().1 = Arc::new(publication);
    }

    /// Publishes a poll attempt's result (stamped now if the poller did not) and wakes the
    /// outputs.
    pub fn publish(&self, mut publication: Publication) {
        publication.attempted.get_or_insert_with(Instant::now);
        let next = Arc::new(publication);
        {
            let mut latest = self.lock();
            latest.0 += 1;
            latest.1 = next;
        }
        self.published.notify_all();
    }

    pub fn latest(&self) -> Arc<Publication> {
        Arc::clone(&self.lock().1)
    }

    /// Waits for a publication after number `seen` and returns it with its number; `None` once
    /// the exporter is stopping.
    pub fn next_after(&self, seen: u64) -> Option<(u64, Arc<Publication>)> {
        match self.wait(seen, None) {
            Next::Published(n, publication) => Some((n, publication)),
            Next::Timeout | Next::Stopping => None,
        }
    }

    /// Waits for a publication after number `seen`, until `deadline` if one is given.
    pub fn wait(&self, seen: u64, deadline: Option<Instant>) -> Next {
        let mut latest = self.lock();
        loop {
            if self.stopping() {
                return Next::Stopping;
            }
            if latest.0 > seen {
                return Next::Published(latest.0, Arc::clone(&latest.1));
            }
            latest = match deadline {
                None => self
                    .published
                    .wait(latest)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Next::Timeout;
                    }
                    self.published
                        .wait_timeout(latest, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }

    /// The latest publication is a poll attempt recent enough (`/health`; reads the clock).
    pub fn healthy(&self) -> bool {
        self.latest()
            .attempted
            .is_some_and(|t| t.elapsed() <= self.health_window)
    }

    pub fn count_statsd_error(&self) {
        if let Some(n) = &self.statsd_errors {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// DogStatsD sends that failed; `None` when DogStatsD is off.
    pub fn statsd_errors(&self) -> Option<u64> {
        self.statsd_errors
            .as_ref()
            .map(|n| n.load(Ordering::Relaxed))
    }

    /// The pusher's counters; `None` when remote write is off.
    pub fn remote_write(&self) -> Option<&Arc<RemoteWriteCounters>> {
        self.remote_write.as_ref()
    }

    /// SIGTERM/SIGINT: the outputs stop waiting (the HTTP server has its own stop).
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Taking the lock orders the flag before any waiter's next check.
        drop(self.lock());
        self.published.notify_all();
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    #[test]
    fn health_needs_a_recent_attempt() {
        let state = State::new(Duration::from_secs(60), false);
        assert!(!state.healthy(), "no attempt yet");
        state.prepare(Publication::default());
        assert!(!state.healthy(), "preparing is not an attempt");
        state.publish(Publication::default());
        assert!(state.healthy());
    }

    #[test]
    fn statsd_errors_are_counted_only_when_statsd_is_on() {
        let off = State::new(Duration::from_secs(1), false);
        off.count_statsd_error();
        assert_eq!(off.statsd_errors(), None);
        let on = State::new(Duration::from_secs(1), true);
        on.count_statsd_error();
        assert_eq!(on.statsd_errors(), Some(1));
    }

    #[test]
    fn an_output_waiting_gets_each_publication_after_the_one_it_saw() {
        let state = Arc::new(State::new(Duration::from_secs(1), false));
        state.publish(Publication::default());
        let (seen, _) = state.next_after(0).expect("one published");
        assert_eq!(seen, 1);
        let waiter = {
            let state = Arc::clone(&state);
            thread::spawn(move || state.next_after(seen).map(|(n, _)| n))
        };
        thread::sleep(Duration::from_millis(20));
        state.publish(Publication::default());
        assert_eq!(waiter.join().expect("waiter"), Some(2));
    }

    #[test]
    fn stopping_releases_the_outputs_waiting() {
        let state = Arc::new(State::new(Duration::from_secs(1), false));
        let waiter = {
            let state = Arc::clone(&state);
            thread::spawn(move || state.next_after(0).is_none())
        };
        thread::sleep(Duration::from_millis(20));
        state.stop();
        assert!(waiter.join().expect("waiter"));
    }

    #[test]
    fn remote_write_counters_exist_only_when_it_is_on() {
        let off = State::new(Duration::from_secs(1), false);
        assert!(off.remote_write().is_none());
        let on = State::new(Duration::from_secs(1), false).with_remote_write();
        let counters = on.remote_write().expect("on");
        counters.sent.fetch_add(2, Ordering::Relaxed);
        counters.last_success_ms.store(1_500 + 1, Ordering::Relaxed);
        let health = counters.health();
        assert_eq!((health.sent, health.last_success), (2, Some(1.5)));
    }
}
