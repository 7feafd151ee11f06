//! Plain data that one poll produces and every output reads: families of series, the task's
//! identity for DogStatsD tags, and the exporter's own health.
//!
//! Nothing here computes or formats; `compute.rs` fills a [`Snapshot`], `exposition.rs` and
//! `dogstatsd.rs` write it out.

/// Counter or gauge; the only two types this exporter writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// A sample value, kept exact where the source is an integer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
}

impl Value {
    /// The value as a float, for comparisons and sums.
    pub fn as_f64(self) -> f64 {
        match self {
            Value::Unsigned(u) => u as f64,
            Value::Signed(i) => i as f64,
            Value::Float(f) => f,
        }
    }
}

/// One series: its labels in order, and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Vec<(&'static str, String)>,
    pub value: Value,
}

/// A family: name, help, type, and every series of it. A family with no series is not written.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    /// Sent as DogStatsD lines (the 2.x families, SPEC §3.1).
    pub statsd: bool,
    pub series: Vec<Series>,
}

impl Family {
    pub fn new(name: &'static str, kind: Kind, help: &'static str) -> Family {
        Family {
            name,
            help,
            kind,
            statsd: false,
            series: Vec::new(),
        }
    }

    /// Marks the family as one of the 2.x families that DogStatsD also carries.
    pub fn legacy(mut self) -> Family {
        self.statsd = true;
        self
    }

    pub fn push(&mut self, labels: Vec<(&'static str, String)>, value: Value) {
        self.series.push(Series { labels, value });
    }
}

/// What identifies the task on every DogStatsD line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskTags {
    /// The short cluster name (an ARN is cut after its last `/`).
    pub cluster: String,
    pub family: String,
    pub revision: String,
}

/// The metrics computed from one successful poll.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub tags: TaskTags,
    pub families: Vec<Family>,
    /// What the caller should log once (not rendered): inputs that cost some series.
    pub warnings: Vec<String>,
}

impl Snapshot {
    /// The family of that name, if the snapshot has one.
    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.iter().find(|f| f.name == name)
    }
}

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
}

impl Health {
    pub fn count_error(&mut self, endpoint: Endpoint, reason: Reason) {
        let (e, r) = (endpoint as usize, reason as usize);
        self.errors[e][r] = self.errors[e][r].saturating_add(1);
    }
}
