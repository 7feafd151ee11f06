//! Fault injection: the per-request faults set through `/control/fault` (or
//! `--fault`), and the request counters reported by `/control/state`.

use serde_json::{Value, json};

/// A fault kind. `ContainerChange` and `CounterReset` are state changes that
/// the caller applies to the task; they are never stored here.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Status(u16),
    /// Sleep this many milliseconds, then answer normally.
    Hang(u64),
    CloseMidBody,
    TruncatedJson,
    InvalidJson,
    TooLarge,
    StatsNull,
    StatsEmpty,
    ContainerChange,
    CounterReset,
}

/// Kind names, as used by `/control/fault?kind=` and `--fault`.
const KINDS: [(&str, Kind); 12] = [
    ("status500", Kind::Status(500)),
    ("status404", Kind::Status(404)),
    ("status429", Kind::Status(429)),
    ("hang", Kind::Hang(30_000)),
    ("close_mid_body", Kind::CloseMidBody),
    ("truncated_json", Kind::TruncatedJson),
    ("invalid_json", Kind::InvalidJson),
    ("too_large", Kind::TooLarge),
    ("stats_null", Kind::StatsNull),
    ("stats_empty", Kind::StatsEmpty),
    ("container_change", Kind::ContainerChange),
    ("counter_reset", Kind::CounterReset),
];

impl Kind {
    /// Parse a kind name; `hang_ms` overrides the default 30 s of `hang`.
    pub fn parse(name: &str, hang_ms: Option<u64>) -> Result<Kind, String> {
        let Some(&(_, kind)) = KINDS.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = KINDS.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "unknown fault kind {name:?} (expected one of: {})",
                names.join(", ")
            ));
        };
        Ok(match kind {
            Kind::Hang(default) => Kind::Hang(hang_ms.unwrap_or(default)),
            other => other,
        })
    }

    pub fn name(self) -> &'static str {
        let same = |k: &Kind| matches!((k, self), (Kind::Hang(_), Kind::Hang(_))) || *k == self;
        KINDS
            .iter()
            .find(|(_, k)| same(k))
            .map_or("unknown", |(n, _)| n)
    }
}

/// Which data endpoint a fault applies to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Endpoint {
    Task,
    TaskStats,
    Both,
}

impl Endpoint {
    pub fn parse(name: &str) -> Result<Endpoint, String> {
        match name {
            "task" => Ok(Endpoint::Task),
            "task_stats" => Ok(Endpoint::TaskStats),
            "both" => Ok(Endpoint::Both),
            _ => Err(format!(
                "unknown endpoint {name:?} (expected task, task_stats or both)"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Task => "task",
            Endpoint::TaskStats => "task_stats",
            Endpoint::Both => "both",
        }
    }
}

struct Fault {
    kind: Kind,
    endpoint: Endpoint,
    /// Requests left to fault; `None` = until cleared.
    remaining: Option<u64>,
}

/// The active faults (newest first) and per-endpoint request counters.
#[derive(Default)]
pub struct Faults {
    list: Vec<Fault>,
    task_requests: u64,
    stats_requests: u64,
}

impl Faults {
    /// Add a per-request fault; `count` 0 = until cleared. It takes
    /// precedence over older faults on the same endpoint.
    pub fn add(&mut self, kind: Kind, endpoint: Endpoint, count: u64) {
        // `stats_null` / `stats_empty` only make sense for /task/stats.
        let endpoint = match kind {
            Kind::StatsNull | Kind::StatsEmpty => Endpoint::TaskStats,
            _ => endpoint,
        };
        let remaining = (count > 0).then_some(count);
        self.list.insert(
            0,
            Fault {
                kind,
                endpoint,
                remaining,
            },
        );
    }

    pub fn clear(&mut self) {
        self.list.clear();
    }

    /// Count a request to `endpoint` and return the fault it gets, if any.
    pub fn on_request(&mut self, endpoint: Endpoint) -> Option<Kind> {
        match endpoint {
            Endpoint::Task => self.task_requests += 1,
            _ => self.stats_requests += 1,
        }
        let pos = self
            .list
            .iter()
            .position(|f| f.endpoint == endpoint || f.endpoint == Endpoint::Both)?;
        let fault = &mut self.list[pos];
        let kind = fault.kind;
        if let Some(n) = fault.remaining.as_mut() {
            *n -= 1;
            if *n == 0 {
                self.list.remove(pos);
            }
        }
        Some(kind)
    }

    /// `/control/state` body (without the task state, added by the caller).
    pub fn state(&self) -> Value {
        let faults: Vec<Value> = self
            .list
            .iter()
            .map(|f| {
                let mut v = json!({"kind": f.kind.name(), "endpoint": f.endpoint.name(), "remaining": f.remaining});
                if let Kind::Hang(ms) = f.kind {
                    v["ms"] = ms.into();
                }
                v
            })
            .collect();
        json!({"faults": faults, "task": self.task_requests, "task_stats": self.stats_requests})
    }
}
