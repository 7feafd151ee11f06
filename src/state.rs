//! What the threads share: the latest rendered exposition, when the poller last tried, and the
//! DogStatsD error count.
//!
//! The poller renders both formats once per poll and swaps in a new `Arc` behind a mutex held
//! only for the swap; a scrape clones the `Arc` and writes bytes, so scrapes never wait on a poll
//! and never compute. Counters that change between polls are atomics.
//!
//! Out of scope: producing the exposition (`poller.rs`), serving it (`server.rs`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::compute;
use crate::exposition::{self, Format};

/// One poll's metrics, rendered in both formats (without the DogStatsD counter and `# EOF`,
/// which a scrape appends).
#[derive(Debug, Default)]
pub struct Exposition {
    pub text: String,
    pub openmetrics: String,
}

impl Exposition {
    pub fn body(&self, format: Format) -> &str {
        match format {
            Format::Text => &self.text,
            Format::OpenMetrics => &self.openmetrics,
        }
    }
}

/// State shared by the poller, the HTTP server, the DogStatsD sender and main.
#[derive(Debug)]
pub struct State {
    latest: Mutex<Arc<Exposition>>,
    started: Instant,
    /// ms after `started` of the end of the last poll attempt, plus one (0: none yet).
    last_attempt: AtomicU64,
    /// `/health` is 200 while the last attempt is younger than this.
    health_window: Duration,
    /// DogStatsD sends that failed; `None` when DogStatsD is off.
    statsd_errors: Option<AtomicU64>,
    /// Set on SIGTERM/SIGINT: finish what is in flight, take nothing new.
    stopping: AtomicBool,
    /// Requests being answered now.
    in_flight: AtomicUsize,
}

impl State {
    pub fn new(interval: Duration, statsd: bool) -> State {
        State {
            latest: Mutex::new(Arc::new(Exposition::default())),
            started: Instant::now(),
            last_attempt: AtomicU64::new(0),
            health_window: (interval * 3).max(Duration::from_secs(30)),
            statsd_errors: statsd.then(|| AtomicU64::new(0)),
            stopping: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// Publishes what scrapes see before the first poll has ended.
    pub fn publish_initial(&self, exposition: Exposition) {
        let next = Arc::new(exposition);
        *self.latest.lock().unwrap_or_else(PoisonError::into_inner) = next;
    }

    /// Publishes a new exposition and records a finished poll attempt.
    pub fn publish(&self, exposition: Exposition) {
        self.publish_initial(exposition);
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_attempt
            .store(ms.saturating_add(1), Ordering::Release);
    }

    pub fn latest(&self) -> Arc<Exposition> {
        Arc::clone(&self.latest.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The poller finished an attempt recently enough.
    pub fn healthy(&self) -> bool {
        match self.last_attempt.load(Ordering::Acquire) {
            0 => false,
            t => {
                let age = self
                    .started
                    .elapsed()
                    .saturating_sub(Duration::from_millis(t - 1));
                age <= self.health_window
            }
        }
    }

    pub fn count_statsd_error(&self) {
        if let Some(n) = &self.statsd_errors {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// What a scrape appends to the published exposition: the DogStatsD error counter (when
    /// DogStatsD is on) and, for OpenMetrics, `# EOF`.
    pub fn tail(&self, format: Format) -> String {
        let mut out = String::new();
        if let Some(n) = &self.statsd_errors {
            let family = compute::statsd_errors_family(n.load(Ordering::Relaxed));
            exposition::write_family(&mut out, &family, format);
        }
        exposition::write_end(&mut out, format);
        out
    }

    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Marks a request as in flight until the guard drops.
    pub fn request(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }
}

/// A request being answered; see [`State::request`].
pub struct InFlight<'a>(&'a State);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_needs_a_recent_attempt() {
        let state = State::new(Duration::from_secs(60), false);
        assert!(!state.healthy(), "no attempt yet");
        state.publish(Exposition::default());
        assert!(state.healthy());
    }

    #[test]
    fn tail_carries_statsd_errors_only_when_statsd_is_on() {
        let off = State::new(Duration::from_secs(1), false);
        off.count_statsd_error();
        assert_eq!(off.tail(Format::Text), "");
        assert_eq!(off.tail(Format::OpenMetrics), "# EOF\n");
        let on = State::new(Duration::from_secs(1), true);
        on.count_statsd_error();
        assert!(
            on.tail(Format::Text)
                .ends_with("ecs_exporter_statsd_errors_total 1\n")
        );
    }
}
