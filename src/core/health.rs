//! The exporter's own health and the families that report it: `ecs_task_exporter_status` (2.x),
//! `ecs_exporter_*` (build, up, last success, poll duration, poll errors by endpoint and reason,
//! DogStatsD errors).
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
}

impl Health {
    pub fn count_error(&mut self, endpoint: Endpoint, reason: Reason) {
        let (e, r) = (endpoint as usize, reason as usize);
        self.errors[e][r] = self.errors[e][r].saturating_add(1);
    }
}

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
    vec![status, build, up_family, last, duration, errors, statsd]
}
