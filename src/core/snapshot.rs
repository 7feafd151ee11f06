//! Plain data that one poll produces and every output reads: families of series and the task's
//! identity for DogStatsD tags.
//!
//! Nothing here computes or formats; `compute` fills a [`Snapshot`], `exposition` and
//! `dogstatsd` write it out.

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
    /// Also sent as DogStatsD lines (the 2.x families, SPEC §3.1).
    pub dogstatsd: bool,
    pub series: Vec<Series>,
}

impl Family {
    pub fn new(name: &'static str, kind: Kind, help: &'static str) -> Family {
        Family {
            name,
            help,
            kind,
            dogstatsd: false,
            series: Vec::new(),
        }
    }

    /// Marks the family as one that DogStatsD also carries.
    pub fn for_dogstatsd(mut self) -> Family {
        self.dogstatsd = true;
        self
    }

    pub fn push(&mut self, labels: Vec<(&'static str, String)>, value: Value) {
        self.series.push(Series { labels, value });
    }
}

/// What identifies the task on every DogStatsD line, and in remote write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskTags {
    /// The short cluster name (an ARN is cut after its last `/`).
    pub cluster: String,
    pub family: String,
    pub revision: String,
    /// The task id (the last segment of `TaskARN`), or with `--docker` the Engine's name: the
    /// `instance` label of pushed series.
    pub instance: String,
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
