//! The simulator's time: seconds since it started, the sample times that `read` takes, and
//! their RFC 3339 stamps. It leaves out what happens at those times (`task.rs`, `life.rs`) and
//! what the counters read then (`counters.rs`).
//!
//! A sample time is the wall time since start floored to `--refresh-secs` (exact when that is
//! 0). Every stamp the simulator writes (`read`, `preread`, `StartedAt`, `FinishedAt`,
//! `statusSince`) is the start's wall time plus a sample time, so the text order of two stamps
//! is their time order.

use ecs_container_exporter::core::rfc3339;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// When samples are taken.
pub struct Clock {
    start: Instant,
    start_unix_nanos: i128,
    /// Seconds between `preread` and `read`.
    pub interval: f64,
    /// `read` is quantized to this many seconds (0 = no quantization).
    pub refresh: f64,
}

/// A sample time and its stamp: when a change to the task happens.
pub struct At {
    /// Seconds since start.
    pub t: f64,
    /// RFC 3339 UTC with nanoseconds.
    pub stamp: String,
}

impl Clock {
    pub fn new(interval: f64, refresh: f64) -> Clock {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Clock {
            start: Instant::now(),
            start_unix_nanos: since.as_nanos() as i128,
            interval,
            refresh,
        }
    }

    /// A clock that started `secs` ago (tests of what happens over time).
    #[cfg(test)]
    pub fn started_ago(secs: u64, interval: f64, refresh: f64) -> Clock {
        let mut clock = Clock::new(interval, refresh);
        let ago = std::time::Duration::from_secs(secs);
        clock.start = clock.start.checked_sub(ago).unwrap_or(clock.start);
        clock.start_unix_nanos -= ago.as_nanos() as i128;
        clock
    }

    /// Wall seconds since start.
    pub fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// The current sample time: elapsed seconds, quantized to `refresh`.
    pub fn sample(&self) -> f64 {
        self.quantize(self.elapsed())
    }

    /// The sample time that covers wall time `e` (seconds since start).
    pub fn quantize(&self, e: f64) -> f64 {
        if self.refresh > 0.0 {
            (e / self.refresh).floor() * self.refresh
        } else {
            e
        }
    }

    /// RFC 3339 UTC with nanoseconds for a sample time.
    pub fn timestamp(&self, t: f64) -> String {
        rfc3339::format(self.start_unix_nanos + (t * 1e9) as i128)
    }

    /// Sample time `t` with its stamp.
    pub fn at(&self, t: f64) -> At {
        At {
            t,
            stamp: self.timestamp(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_times_are_floored_to_the_refresh_and_stamped_in_order() {
        let clock = Clock::new(10.0, 10.0);
        assert_eq!(clock.quantize(19.9), 10.0);
        assert_eq!(clock.quantize(20.0), 20.0);
        assert_eq!(Clock::new(1.0, 0.0).quantize(19.9), 19.9);
        let (a, b) = (clock.at(10.0), clock.at(10.5));
        assert_eq!(
            (a.t, a.stamp.as_str()),
            (10.0, clock.timestamp(10.0).as_str())
        );
        assert!(a.stamp < b.stamp, "{} < {}", a.stamp, b.stamp);
    }
}
