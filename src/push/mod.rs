//! Remote write (SPEC §5): every good poll pushed to a Prometheus Remote-Write 1.0 receiver.
//!
//! The pusher is two threads, so that a slow receiver never costs a poll:
//! - `push` waits for each publication of the poller and, after a good poll, encodes every series
//!   of it (the data families and the exporter's own, exactly what `/metrics` shows from that
//!   publication) with `job`, `instance` and the added labels, at the poll's time, plus a StaleNaN
//!   for each series sent last time and gone now; compresses it and appends it to the
//!   [`queue::Queue`]. On shutdown it closes the queue with one last request marking every series
//!   stale.
//! - `push-send` sends the queue oldest first, one request at a time, and retries or drops per
//!   [`delivery`]. It counts what it does in the shared counters, which the poller renders.
//!
//! Logs: one line per new status or failure kind (then debug), one when the receiver accepts
//! again after failures. Nothing blocks the poller, the HTTP server or DogStatsD.
//!
//! Out of scope: the bytes (`core::remote_write`), the wire and auth (`transport.rs`),
//! credentials (`credentials.rs`).

pub mod credentials;
pub mod delivery;
pub mod queue;
pub mod transport;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::RemoteWrite;
use crate::core::remote_write::{self, Staleness};
use crate::serve::state::{RemoteWriteCounters, State};

use delivery::{Backoff, Verdict};
use queue::{Queue, Take};
use transport::Transport;

/// The `job` label of pushed series unless `--remote-write-label job=…` replaces it.
pub const JOB: &str = "ecs-container-exporter";

/// The running pusher.
pub struct Pusher {
    encoder: JoinHandle<()>,
    sender: JoinHandle<()>,
}

impl Pusher {
    /// Reads the files the settings name and starts both threads (a push every `interval`, the
    /// poll's). An error is one line for start-up (exit 2). `state` must have been made
    /// `with_remote_write`.
    pub fn start(
        config: &RemoteWrite,
        interval: Duration,
        state: Arc<State>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Pusher, String> {
        let counters = state
            .remote_write()
            .cloned()
            .ok_or_else(|| "the shared state has no remote-write counters".to_owned())?;
        let transport = Transport::new(config, interval, env)?;
        let queue = Arc::new(Queue::new(config.buffer, Arc::clone(&counters)));
        let sender = {
            let queue = Arc::clone(&queue);
            let url = config.url.clone();
            thread::Builder::new()
                .name("push-send".into())
                .spawn(move || send(&queue, transport, &counters, &url))
                .map_err(|e| format!("cannot start the remote-write sender: {e}"))?
        };
        let labels = config.labels.clone();
        let timeout = config.timeout;
        let encoder = thread::Builder::new()
            .name("push".into())
            .spawn(move || encode(&state, &queue, &labels, timeout))
            .map_err(|e| format!("cannot start the remote-write encoder: {e}"))?;
        Ok(Pusher { encoder, sender })
    }

    /// After `State::stop`: waits for the last request (every series stale) to be sent, at most
    /// until `deadline`.
    pub fn finish(self, deadline: Instant) {
        while !(self.encoder.is_finished() && self.sender.is_finished()) {
            if Instant::now() >= deadline {
                log::warn!("remote write: the last request did not finish in time");
                return;
            }
            thread::sleep(Duration::from_millis(5));
        }
        let _ = self.encoder.join();
        let _ = self.sender.join();
    }
}

/// The `push` thread: one request per good poll, and the last one at shutdown.
fn encode(state: &State, queue: &Queue, labels: &[(String, String)], timeout: Duration) {
    let mut staleness = Staleness::default();
    let mut seen = 0;
    while let Some((number, publication)) = state.next_after(seen) {
        seen = number;
        let Some(poll) = &publication.poll else {
            continue;
        };
        // The user's labels first: the first of a name wins, so theirs replace job/instance.
        let mut added = labels.to_vec();
        added.push(("job".to_owned(), JOB.to_owned()));
        added.push(("instance".to_owned(), poll.snapshot.tags.instance.clone()));
        let samples = remote_write::samples(poll.snapshot.families.iter().chain(&poll.own), &added);
        let stale = staleness.next(&samples);
        let body = remote_write::encode(&samples, &stale, poll.time_ms);
        queue.push(
            remote_write::compress(&body),
            (samples.len() + stale.len()) as u64,
        );
    }
    let deadline = Instant::now() + timeout;
    let stale = staleness.take_all();
    let last = (!stale.is_empty())
        .then(|| remote_write::compress(&remote_write::encode(&[], &stale, unix_ms())));
    queue.close(last, stale.len() as u64, deadline);
}

/// The `push-send` thread: the queue, oldest first, until it is closed.
fn send(queue: &Queue, mut transport: Transport, counters: &RemoteWriteCounters, url: &str) {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let mut backoff = Backoff::new(seed ^ u64::from(std::process::id()));
    let mut said = Said::default();
    let mut not_before = None;
    loop {
        match queue.take(not_before) {
            Take::Send(request) => {
                let verdict = attempt(&mut transport, &request.body, None, &mut said, url);
                let finished = matches!(verdict, Verdict::Sent | Verdict::Drop);
                queue.done(&request, finished);
                not_before = match verdict {
                    Verdict::Sent => {
                        success(counters, request.samples, &mut backoff, url);
                        None
                    }
                    Verdict::Drop => {
                        counters.dropped.fetch_add(1, Ordering::Relaxed);
                        None
                    }
                    Verdict::Renew => {
                        counters.retried.fetch_add(1, Ordering::Relaxed);
                        transport.credentials_expired();
                        None
                    }
                    Verdict::Retry(after) => {
                        counters.retried.fetch_add(1, Ordering::Relaxed);
                        let wait = after.unwrap_or_else(|| backoff.wait());
                        Some(Instant::now() + wait)
                    }
                };
            }
            Take::Close(last, deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if let Some(last) = last
                    && !left.is_zero()
                {
                    match attempt(&mut transport, &last.body, Some(left), &mut said, url) {
                        Verdict::Sent => {
                            success(counters, last.samples, &mut backoff, url);
                            log::info!(
                                "remote write: marked {} series stale at {url}",
                                last.samples
                            );
                        }
                        _ => log::warn!(
                            "remote write: the last request (every series stale) was not accepted"
                        ),
                    }
                }
                return;
            }
        }
    }
}

/// One try; logs the first of each status or failure kind at warn, the rest at debug.
fn attempt(
    transport: &mut Transport,
    body: &[u8],
    timeout: Option<Duration>,
    said: &mut Said,
    url: &str,
) -> Verdict {
    match transport.send(body, timeout) {
        Ok(reply) => {
            let verdict = delivery::verdict(&reply);
            if verdict != Verdict::Sent {
                let what = match verdict {
                    Verdict::Drop => "dropped",
                    _ => "will retry",
                };
                said.once(
                    format!("status {}", reply.status),
                    format!(
                        "remote write to {url}: HTTP {} ({what}): {}",
                        reply.status, reply.said
                    ),
                );
            }
            verdict
        }
        Err(failure) => {
            said.once(
                failure.kind.to_owned(),
                format!("remote write to {url} failed, will retry: {failure}"),
            );
            Verdict::Retry(None)
        }
    }
}

fn success(counters: &RemoteWriteCounters, samples: u64, backoff: &mut Backoff, url: &str) {
    counters.sent.fetch_add(1, Ordering::Relaxed);
    counters.samples.fetch_add(samples, Ordering::Relaxed);
    let ms = u64::try_from(unix_ms()).unwrap_or(0);
    counters
        .last_success_ms
        .store(ms.saturating_add(1), Ordering::Relaxed);
    if backoff.failures() > 0 {
        log::info!(
            "remote write to {url} accepted again after {} failed attempts",
            backoff.failures()
        );
    }
    backoff.reset();
}

/// What has been logged at warn: each status or failure kind once.
#[derive(Default)]
struct Said(HashSet<String>);

impl Said {
    fn once(&mut self, key: String, line: String) {
        if self.0.insert(key) {
            log::warn!("{line} (said once; repeats are logged at debug)");
        } else {
            log::debug!("{line}");
        }
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
