//! What the threads share: the published exposition (bytes, behind an `Arc` swapped under a
//! mutex held only for the swap) and atomics: when the poller last tried, the DogStatsD error
//! count and the stopping flag.
//!
//! A scrape clones the `Arc` and writes its bytes, so scrapes never wait on a poll and never
//! compute.
//!
//! Out of scope: rendering (`core::exposition`, called by the poller), serving (`http.rs`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::core::exposition::Exposition;

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
        }
    }

    /// Publishes an exposition without recording a poll attempt (before the first poll, and
    /// when only the DogStatsD error count changed).
    pub fn replace(&self, exposition: Exposition) {
        let next = Arc::new(exposition);
        *self.latest.lock().unwrap_or_else(PoisonError::into_inner) = next;
    }

    /// Publishes a new exposition and records a finished poll attempt.
    pub fn publish(&self, exposition: Exposition) {
        self.replace(exposition);
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

    /// DogStatsD sends that failed; `None` when DogStatsD is off.
    pub fn statsd_errors(&self) -> Option<u64> {
        self.statsd_errors
            .as_ref()
            .map(|n| n.load(Ordering::Relaxed))
    }

    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
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
    fn statsd_errors_are_counted_only_when_statsd_is_on() {
        let off = State::new(Duration::from_secs(1), false);
        off.count_statsd_error();
        assert_eq!(off.statsd_errors(), None);
        let on = State::new(Duration::from_secs(1), true);
        on.count_statsd_error();
        assert_eq!(on.statsd_errors(), Some(1));
    }
}
