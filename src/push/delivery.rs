//! What to do with each answer (SPEC §5 "Delivery"), and how long to wait before trying again.
//!
//! 2xx: sent. 429: retried after its `Retry-After`, else the backoff. 5xx and no answer at all:
//! retried after the backoff. 403 that names an expired token: retried at once with credentials
//! fetched again. Any other status: dropped. The backoff starts at 1 s, doubles per failure in a
//! row up to 30 s, and each wait is drawn between half and all of it (jitter, so that a fleet
//! of tasks that lost the receiver together does not come back in step).
//!
//! Out of scope: the wire (`transport.rs`), the queue and the threads (`mod.rs`).

use std::time::Duration;

use crate::core::sigv4;

use super::transport::Reply;

/// The first wait after a failure, and the longest.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// What an answer means for the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Sent,
    /// Try again after the backoff, or after this long when the receiver said so.
    Retry(Option<Duration>),
    /// The SigV4 credentials expired: fetch new ones and try again.
    Renew,
    Drop,
}

pub fn verdict(reply: &Reply) -> Verdict {
    match reply.status {
        200..=299 => Verdict::Sent,
        429 => Verdict::Retry(reply.retry_after),
        500..=599 => Verdict::Retry(None),
        403 if sigv4::is_expired_token(reply.said.as_bytes()) => Verdict::Renew,
        _ => Verdict::Drop,
    }
}

/// Exponential backoff with jitter; `seed` makes the draw repeatable in tests.
#[derive(Debug, Clone)]
pub struct Backoff {
    failures: u32,
    state: u64,
}

impl Backoff {
    pub fn new(seed: u64) -> Backoff {
        // splitmix64 spreads close seeds (times, pids) apart; xorshift needs a non-zero state.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Backoff {
            failures: 0,
            state: (z ^ (z >> 31)) | 1,
        }
    }

    /// The wait after one more failure in a row.
    pub fn wait(&mut self) -> Duration {
        let ceiling = BACKOFF_MIN
            .saturating_mul(1 << self.failures.min(5))
            .min(BACKOFF_MAX);
        self.failures = self.failures.saturating_add(1);
        let half = ceiling / 2;
        let fraction = (self.draw() >> 11) as f64 / (1u64 << 53) as f64;
        half + half.mul_f64(fraction)
    }

    /// A success ends the run of failures.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    fn draw(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, retry_after: Option<u64>, said: &str) -> Reply {
        Reply {
            status,
            retry_after: retry_after.map(Duration::from_secs),
            said: said.to_owned(),
        }
    }

    #[test]
    fn answers_are_sent_retried_renewed_or_dropped_as_the_spec_says() {
        let cases = [
            (reply(200, None, ""), Verdict::Sent),
            (reply(204, None, ""), Verdict::Sent),
            (
                reply(429, Some(7), ""),
                Verdict::Retry(Some(Duration::from_secs(7))),
            ),
            (reply(429, None, ""), Verdict::Retry(None)),
            (reply(500, None, "boom"), Verdict::Retry(None)),
            (reply(503, Some(3), ""), Verdict::Retry(None)),
            (reply(400, None, "out of order sample"), Verdict::Drop),
            (reply(401, None, "unauthorized"), Verdict::Drop),
            (reply(404, None, ""), Verdict::Drop),
            (reply(302, None, ""), Verdict::Drop),
            (
                reply(
                    403,
                    None,
                    r#"{"message":"The security token included in the request is expired"}"#,
                ),
                Verdict::Renew,
            ),
            (reply(403, None, "ExpiredTokenException"), Verdict::Renew),
            (
                reply(
                    403,
                    None,
                    "User is not authorized to perform aps:RemoteWrite",
                ),
                Verdict::Drop,
            ),
        ];
        for (reply, expected) in cases {
            assert_eq!(verdict(&reply), expected, "{reply:?}");
        }
    }

    #[test]
    fn the_backoff_doubles_from_one_second_to_thirty_with_jitter_in_the_upper_half() {
        let mut backoff = Backoff::new(42);
        let ceilings = [1, 2, 4, 8, 16, 30, 30, 30];
        for ceiling in ceilings {
            let wait = backoff.wait();
            let ceiling = Duration::from_secs(ceiling);
            assert!(
                wait >= ceiling / 2 && wait <= ceiling,
                "{wait:?} vs {ceiling:?}"
            );
        }
        assert_eq!(backoff.failures(), 8);
        backoff.reset();
        assert!(backoff.wait() <= BACKOFF_MIN);
    }

    #[test]
    fn the_jitter_spreads_the_waits_of_a_fleet() {
        let waits: Vec<Duration> = (1..=50).map(|seed| Backoff::new(seed).wait()).collect();
        let distinct: std::collections::HashSet<_> = waits.iter().collect();
        assert!(distinct.len() > 40, "{} distinct of 50", distinct.len());
        assert!(waits.iter().any(|w| *w < Duration::from_millis(700)));
        assert!(waits.iter().any(|w| *w > Duration::from_millis(800)));
    }
}
