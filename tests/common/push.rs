//! The pushing exporter as the remote-write tests look at it: its counters on `/metrics`, its
//! complaints in the log, [`Watch`] (it polls and serves on, whatever the receiver does), and a
//! real Prometheus as the receiver (`--web.enable-remote-write-receiver`, no scrape jobs) with
//! the series of one run counted there. The receiver that answers as told is `receiver.rs`.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::process::scrape_at;
use super::prometheus::{Getter, Prometheus, prometheus_version, sample_value};
use super::{Exporter, Scrape, skip, wait_for};

/// How long a test waits for something the exporter does within a few polls.
pub const PATIENCE: Duration = Duration::from_secs(30);
pub const JOB: &str = "ecs-container-exporter";

/// `ecs_exporter_remote_write_requests_total{outcome}` (0 when the scrape has none yet).
pub fn outcome(s: &Scrape, outcome: &str) -> f64 {
    s.get(
        "ecs_exporter_remote_write_requests_total",
        &[("outcome", outcome)],
    )
    .unwrap_or(0.0)
}

/// One look at `/metrics`: when, how long it took, and the poll it showed (`None`: no answer
/// or not parsable).
#[derive(Debug, Clone)]
pub struct Look {
    pub at: Instant,
    pub took: Duration,
    pub last_success: Option<f64>,
}

/// Scrapes an exporter every 200 ms in a thread until [`Watch::finish`].
pub struct Watch {
    stop: Arc<AtomicBool>,
    looks: Arc<Mutex<Vec<Look>>>,
    handle: thread::JoinHandle<()>,
}

impl Watch {
    pub fn start(addr: SocketAddr) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let looks = Arc::new(Mutex::new(Vec::new()));
        let (flag, record) = (Arc::clone(&stop), Arc::clone(&looks));
        let handle = thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                let at = Instant::now();
                let last_success = scrape_at(addr)
                    .ok()
                    .and_then(|s| s.get("ecs_exporter_last_success_timestamp_seconds", &[]));
                let look = Look {
                    at,
                    took: at.elapsed(),
                    last_success,
                };
                record
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(look);
                thread::sleep(Duration::from_millis(200));
            }
        });
        Watch {
            stop,
            looks,
            handle,
        }
    }

    /// The looks so far.
    pub fn looks(&self) -> Vec<Look> {
        self.looks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits until the watch has seen `n` polls (distinct `last_success`), at most [`PATIENCE`].
    pub fn wait_polls(&self, n: usize) {
        let seen = wait_for(PATIENCE, || watched(&self.looks()).len() >= n);
        assert!(
            seen,
            "the watch saw fewer than {n} polls: {:?}",
            self.looks()
        );
    }

    /// Stops watching, after three more polls (the exporter polls on after whatever the test
    /// did), and checks what was seen: every scrape answered within 1 s, and the poll it showed
    /// moved on at least every 3 s (at `--interval 1`).
    pub fn finish(self) -> Vec<Look> {
        let before = watched(&self.looks()).len();
        self.wait_polls(before + 3);
        self.stop.store(true, Ordering::SeqCst);
        let record = Arc::clone(&self.looks);
        self.handle.join().expect("watch thread");
        let looks = record
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for look in &looks {
            assert!(
                look.last_success.is_some() && look.took < Duration::from_secs(1),
                "/metrics did not answer well at {look:?}"
            );
        }
        let mut since = looks[0].clone();
        for look in &looks {
            if look.last_success != since.last_success {
                since = look.clone();
            }
            assert!(
                look.at - since.at < Duration::from_secs(3),
                "no new poll for {:?} (since {:?})",
                look.at - since.at,
                since.last_success
            );
        }
        looks
    }
}

/// The warning and error lines of an exporter's log that name `url`, with every
/// `127.0.0.1:<port>` written `127.0.0.1:<port>` (a port may hold any status code's digits).
pub fn complaints(logs: &str, url: &str) -> Vec<String> {
    logs.lines()
        .filter(|l| l.contains(url) && (l.starts_with("[WARN") || l.starts_with("[ERROR")))
        .map(|l| {
            let mut out = String::new();
            let mut rest = l;
            while let Some(i) = rest.find("127.0.0.1:") {
                out.push_str(&rest[..i + 10]);
                out.push_str("<port>");
                rest = rest[i + 10..].trim_start_matches(|c: char| c.is_ascii_digit());
            }
            out.push_str(rest);
            out
        })
        .collect()
}

/// The [`complaints`] that hold `word` (any case).
pub fn complaints_with(logs: &str, url: &str, word: &str) -> Vec<String> {
    let word = word.to_ascii_lowercase();
    complaints(logs, url)
        .into_iter()
        .filter(|l| l.to_ascii_lowercase().contains(&word))
        .collect()
}

/// `[sent, retried, dropped]` of a scrape.
pub fn counters(s: &Scrape) -> [f64; 3] {
    ["sent", "retried", "dropped"].map(|o| outcome(s, o))
}

/// Waits for a scrape whose counters satisfy `check`; panics with them and the log if none does.
pub fn counted(exporter: &Exporter, check: impl Fn(&Scrape) -> bool) -> Scrape {
    let s = exporter.scrape_until(PATIENCE, &check);
    assert!(
        check(&s),
        "sent, retried, dropped: {:?}\n{}",
        counters(&s),
        exporter.logs()
    );
    s
}

/// The polls a watch saw, in Unix milliseconds.
pub fn watched(looks: &[Look]) -> BTreeSet<i64> {
    looks
        .iter()
        .filter_map(|l| l.last_success)
        .map(|t| (t * 1000.0).round() as i64)
        .collect()
}

/// Whether a Prometheus that receives remote write (2.33 and later) is installed; else
/// [`skip`]s.
pub fn prometheus_receives() -> bool {
    let found = prometheus_version().is_some_and(|v| v >= (2, 33));
    if !found {
        skip("prometheus >= 2.33 is not installed (Debian package prometheus)");
    }
    found
}

/// A Prometheus that receives remote write and scrapes nothing, with extra `flags`, asked
/// through `get` when given.
pub fn prometheus_receiver(flags: &[&str], get: Option<Getter>) -> Prometheus {
    let mut all = vec!["--web.enable-remote-write-receiver"];
    all.extend(flags);
    Prometheus::start_with("global:\n  evaluation_interval: 1m\n", &all, get)
}

/// How many series of `run` (the `run` label) Prometheus holds now.
pub fn stored_series(prometheus: &Prometheus, run: &str) -> usize {
    let result = prometheus.query(&format!("count({{job=\"{JOB}\",run=\"{run}\"}})"), None);
    result
        .first()
        .map_or(0, |r| sample_value(&r["value"]) as usize)
}

/// Waits until Prometheus holds as many series of `run` as the exporter's `/metrics` shows.
pub fn arrives(prometheus: &Prometheus, exporter: &Exporter, run: &str) {
    let mut counts = (0, 0);
    let all = wait_for(PATIENCE, || {
        counts = (
            stored_series(prometheus, run),
            exporter.scrape().samples.len(),
        );
        counts.0 == counts.1
    });
    assert!(
        all,
        "{run}: {counts:?} series stored vs shown\n{}",
        exporter.logs()
    );
}
