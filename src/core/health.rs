//! The exporter's own health and the families that report it: `ecs_task_exporter_status` (2.x),
//! `ecs_exporter_*` (build, up, last success, poll duration, poll errors by endpoint and reason,
//! DogStatsD errors, remote-write requests by outcome, samples, queue and last success).
//!
//! The poller keeps a [`Health`] and counts failures in it; [`families`] turns it into series,
//! rendered beside each poll's snapshot. Out of scope: the poll's own numbers (`compute`).

use crate::core::snapshot::{Family, Kind, Value};
use crate::core::version;

/// Endpoints the poller calls, for error counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Task,
    TaskStats,
}

impl Endpoint {
    pub const ALL: [Endpoint; 2] = [Endpoint::Task, Endpoint::TaskStats];

    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Task => "task",
            Endpoint::TaskStats => "task_stats",
        }
    }
}

/// Why a poll failed, for error counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Connect,
    Timeout,
    Io,
    Status,
    Parse,
    TooLarge,
}

impl Reason {
    pub const ALL: [Reason; 6] = [
        Reason::Connect,
        Reason::Timeout,
        Reason::Io,
        Reason::Status,
        Reason::Parse,
        Reason::TooLarge,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Reason::Connect => "connect",
            Reason::Timeout => "timeout",
            Reason::Io => "io",
            Reason::Status => "status",
            Reason::Parse => "parse",
            Reason::TooLarge => "too_large",
        }
    }
}

/// The exporter's own state after the latest poll attempt.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    /// The latest poll succeeded.
    pub up: bool,
    /// Unix time of the latest successful poll.
    pub last_success: Option<f64>,
    /// Seconds the latest poll took.
    pub poll_duration: Option<f64>,
    /// Failed polls by endpoint and reason, indexed like `Endpoint::ALL` × `Reason::ALL`.
    pub errors: [[u64; 6]; 2],
    /// DogStatsD sends that failed; `None` when DogStatsD is off.
    pub statsd_errors: Option<u64>,
    /// The remote-write pusher's numbers; `None` when remote write is off.
    pub remote_write: Option<RemoteWriteHealth>,
}

/// What the remote-write pusher has done so far (SPEC §5 self-metrics).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RemoteWriteHealth {
    /// Requests the receiver accepted.
    pub sent: u64,
    /// Attempts that failed and were tried again (network errors, 5xx, 429).
    pub retried: u64,
    /// Requests given up: refused with a 4xx other than 429, or pushed out of a full queue.
    pub dropped: u64,
    /// Samples in the accepted requests, staleness markers included.
    pub samples: u64,
    /// Requests waiting to be sent, the one in flight included.
    pub queue: u64,
    /// Unix time of the last accepted request.
    pub last_success: Option<f64>,
}

impl Health {
    pub fn count_error(&mut self, endpoint: Endpoint, reason: Reason) {
        let (e, r) = (endpoint as usize, reason as usize);
        self.errors[e][r] = self.errors[e][r].saturating_add(1);
    }
}

/// The names of every family [`families`] can write, in its order: with DogStatsD and remote
/// write on, all of them (the family filters check their entries against these).
pub const FAMILY_NAMES: [&str; 11] = [
    "ecs_task_exporter_status",
    "ecs_exporter_build_info",
    "ecs_exporter_up",
    "ecs_exporter_last_success_timestamp_seconds",
    "ecs_exporter_poll_duration_seconds",
    "ecs_exporter_poll_errors_total",
    "ecs_exporter_statsd_errors_total",
    "ecs_exporter_remote_write_requests_total",
    "ecs_exporter_remote_write_samples_sent_total",
    "ecs_exporter_remote_write_queue_requests",
    "ecs_exporter_remote_write_last_success_timestamp_seconds",
];

/// The exporter's own families, from its [`Health`]: `ecs_task_exporter_status` (2.x)
/// and the `ecs_exporter_*` families. Every `endpoint`×`reason` error series is written, zeros
/// too, so that `rate()` works from the first error on; the DogStatsD errors only when it is on.
pub fn families(health: &Health) -> Vec<Family> {
    let up = Value::Unsigned(u64::from(health.up));
    let mut status = Family::new(
        "ecs_task_exporter_status",
        Kind::Gauge,
        "1 when the last poll succeeded, else 0",
    );
    status.push(Vec::new(), up);
    let mut build = Family::new(
        "ecs_exporter_build_info",
        Kind::Gauge,
        "The exporter's version and the git commit it was built from, value 1",
    );
    build.push(
        vec![
            ("version", version::VERSION.to_owned()),
            ("revision", version::revision().to_owned()),
        ],
        Value::Unsigned(1),
    );
    let mut up_family = Family::new(
        "ecs_exporter_up",
        Kind::Gauge,
        "1 when the last poll succeeded, else 0",
    );
    up_family.push(Vec::new(), up);
    let mut last = Family::new(
        "ecs_exporter_last_success_timestamp_seconds",
        Kind::Gauge,
        "When the last successful poll finished, Unix time",
    );
    if let Some(t) = health.last_success {
        last.push(Vec::new(), Value::Float(t));
    }
    let mut duration = Family::new(
        "ecs_exporter_poll_duration_seconds",
        Kind::Gauge,
        "How long the last poll took, seconds",
    );
    if let Some(d) = health.poll_duration {
        duration.push(Vec::new(), Value::Float(d));
    }
    let mut errors = Family::new(
        "ecs_exporter_poll_errors_total",
        Kind::Counter,
        "Failed polls, by endpoint and reason",
    );
    for endpoint in Endpoint::ALL {
        for reason in Reason::ALL {
            errors.push(
                vec![
                    ("endpoint", endpoint.label().to_owned()),
                    ("reason", reason.label().to_owned()),
                ],
                Value::Unsigned(health.errors[endpoint as usize][reason as usize]),
            );
        }
    }
    let mut statsd = Family::new(
        "ecs_exporter_statsd_errors_total",
        Kind::Counter,
        "DogStatsD sends that failed",
    );
    if let Some(n) = health.statsd_errors {
        statsd.push(Vec::new(), Value::Unsigned(n));
    }
    let mut families = vec![status, build, up_family, last, duration, errors, statsd];
    if let Some(rw) = &health.remote_write {
        families.extend(remote_write_families(rw));
    }
    families
}

/// `ecs_exporter_remote_write_*`: every outcome written, zeros too.
fn remote_write_families(rw: &RemoteWriteHealth) -> Vec<Family> {
    let mut requests = Family::new(
        "ecs_exporter_remote_write_requests_total",
        Kind::Counter,
        "Remote-write requests by outcome: sent (accepted), retried (failed and tried again), \
         dropped (refused or pushed out of a full queue)",
    );
    for (outcome, n) in [
        ("sent", rw.sent),
        ("retried", rw.retried),
        ("dropped", rw.dropped),
    ] {
        requests.push(vec![("outcome", outcome.to_owned())], Value::Unsigned(n));
    }
    let mut samples = Family::new(
        "ecs_exporter_remote_write_samples_sent_total",
        Kind::Counter,
        "Samples in the remote-write requests the receiver accepted",
    );
    samples.push(Vec::new(), Value::Unsigned(rw.samples));
    let mut queue = Family::new(
        "ecs_exporter_remote_write_queue_requests",
        Kind::Gauge,
        "Remote-write requests waiting to be sent",
    );
    queue.push(Vec::new(), Value::Unsigned(rw.queue));
    let mut last = Family::new(
        "ecs_exporter_remote_write_last_success_timestamp_seconds",
        Kind::Gauge,
        "When the receiver last accepted a remote-write request, Unix time",
    );
    if let Some(t) = rw.last_success {
        last.push(Vec::new(), Value::Float(t));
    }
    vec![requests, samples, queue, last]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `FAMILY_NAMES` is what `families` writes with every output on, in order; with them off,
    /// the DogStatsD family has no series and the remote-write ones are not there.
    #[test]
    fn the_family_names_are_those_written() {
        let on = Health {
            statsd_errors: Some(0),
            remote_write: Some(RemoteWriteHealth::default()),
            ..Health::default()
        };
        let names: Vec<&str> = families(&on).iter().map(|f| f.name).collect();
        assert_eq!(names, FAMILY_NAMES);
        let off = families(&Health::default());
        assert_eq!(off.len(), 7);
        assert!(
            off.iter()
                .all(|f| f.name != "ecs_exporter_statsd_errors_total" || f.series.is_empty())
        );
    }
}
