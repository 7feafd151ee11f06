//! Task totals that never go down while the exporter runs (SPEC §3.1.1).
//!
//! Prometheus reads any drop of a counter as a reset and counts the whole remaining total again.
//! A task's containers restart (new cgroup, and in bridge mode a new veth: their counters start
//! again), stop, and start late, so a plain sum over this poll's containers would drop. Instead,
//! every container keeps, per counter series, its last value and a carry: a drop adds the last
//! value to the carry, so `carry + last` never goes down. A container without a reading this poll
//! (stopped, `null`/`{}` stats, zero `read`) keeps its `carry + last` as it was. A container that
//! leaves the task folds its `carry + last` into one departed value per series, so the state grows
//! with the live containers only (plain Docker hosts see endless churn); one that comes back under
//! the same id counts as a new container.
//!
//! A series' task value combines the containers' `carry + last` in one of two ways:
//! - [`Combine::Sum`]: disk, and network in `bridge` mode, where each container has its own
//!   counters: the departed value plus the sum over live containers.
//! - [`Combine::Largest`]: network in `awsvpc`/`host` mode, where every container reads the same
//!   task interface at slightly different instants: the largest of the departed value and the
//!   live containers' values. A container that stops keeps its last reading among the
//!   candidates, so the task value does not fall back to an older reading of another container;
//!   a drop of a container's own reading (a real reset of the interface) is carried.
//!
//! Out of scope: which counters are carried (the `carried` rows of `families.rs`), where the
//! readings come from (`mod.rs`).

/// How containers' values of one series make the task's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    Sum,
    Largest,
}

/// One counter series of the task: a family name and, for network, the interface.
pub type Key = (&'static str, String);

/// One reading of one container this poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading<'a> {
    /// The container's `DockerId`.
    pub container: &'a str,
    pub key: Key,
    pub value: u64,
    pub combine: Combine,
}

/// A counter that never goes down: the last value read and what earlier lives added up to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Carried {
    last: u64,
    carry: u64,
}

impl Carried {
    fn observe(&mut self, value: u64) {
        if value < self.last {
            self.carry = self.carry.saturating_add(self.last);
        }
        self.last = value;
    }

    fn total(self) -> u64 {
        self.carry.saturating_add(self.last)
    }
}

/// One series of one container (or of the departed ones, folded: then `last` holds the value).
#[derive(Debug, Clone, PartialEq)]
struct Series {
    key: Key,
    carried: Carried,
    combine: Combine,
}

/// What the totals remember from poll to poll. Small vectors searched in order: a task has a
/// few containers of about a dozen series each, and the code stays small.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    /// Live containers by `DockerId`: each series they have reported.
    live: Vec<(String, Vec<Series>)>,
    /// Containers that left the task, folded: per series their sum or their largest value.
    departed: Vec<Series>,
}

impl Totals {
    /// The totals after one poll: `present` are the `DockerId`s the task lists now (with or
    /// without a reading), `readings` this poll's values. Returns the next state and the task
    /// value of every series ever seen, sorted by key.
    pub fn next<'a>(
        &self,
        present: impl IntoIterator<Item = &'a str>,
        readings: impl IntoIterator<Item = Reading<'a>>,
    ) -> (Totals, Vec<(Key, u64)>) {
        let mut next = Totals {
            live: Vec::new(),
            departed: self.departed.clone(),
        };
        for id in present {
            if !next.live.iter().any(|(live, _)| live == id) {
                let kept = self.live.iter().find(|(old, _)| old == id);
                let series = kept.map(|(_, s)| s.clone()).unwrap_or_default();
                next.live.push((id.to_owned(), series));
            }
        }
        for (id, series) in &self.live {
            if next.live.iter().any(|(live, _)| live == id) {
                continue;
            }
            for s in series {
                fold(&mut next.departed, &s.key, s.combine, s.carried.total());
            }
        }
        for r in readings {
            // A reading of a container the task does not list is ignored (SPEC §3.2).
            let Some((_, series)) = next.live.iter_mut().find(|(id, _)| id == r.container) else {
                continue;
            };
            match series.iter_mut().find(|s| s.key == r.key) {
                Some(s) => {
                    s.carried.observe(r.value);
                    s.combine = r.combine;
                }
                None => series.push(Series {
                    key: r.key,
                    carried: Carried {
                        last: r.value,
                        carry: 0,
                    },
                    combine: r.combine,
                }),
            }
        }
        let mut task: Vec<Series> = next.departed.clone();
        for (_, series) in &next.live {
            for s in series {
                fold(&mut task, &s.key, s.combine, s.carried.total());
            }
        }
        let mut task: Vec<(Key, u64)> = task.into_iter().map(|s| (s.key, s.carried.last)).collect();
        task.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        (next, task)
    }

    /// Series remembered, live and departed: the size of the state.
    pub fn len(&self) -> usize {
        self.departed.len() + self.live.iter().map(|(_, s)| s.len()).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Adds `value` to the series `key` of `into` (summed, or the largest kept).
fn fold(into: &mut Vec<Series>, key: &Key, combine: Combine, value: u64) {
    match into.iter_mut().find(|s| s.key == *key) {
        Some(s) => {
            s.carried.last = match combine {
                Combine::Sum => s.carried.last.saturating_add(value),
                Combine::Largest => s.carried.last.max(value),
            }
        }
        None => into.push(Series {
            key: key.clone(),
            carried: Carried {
                last: value,
                carry: 0,
            },
            combine,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RX: &str = "rx";

    fn reading(container: &str, value: u64, combine: Combine) -> Reading<'_> {
        Reading {
            container,
            key: (RX, "eth0".to_owned()),
            value,
            combine,
        }
    }

    /// One poll: the ids the task lists, and (id, value) readings.
    type Poll<'a> = (&'a [&'a str], &'a [(&'a str, u64)]);

    /// Runs polls and returns the task value after each.
    fn run(combine: Combine, polls: &[Poll]) -> (Vec<u64>, Totals) {
        let mut totals = Totals::default();
        let mut out = Vec::new();
        for (present, readings) in polls {
            let (next, task) = totals.next(
                present.iter().copied(),
                readings.iter().map(|(c, v)| reading(c, *v, combine)),
            );
            let eth0 = (RX, "eth0".to_owned());
            out.push(task.iter().find(|(k, _)| *k == eth0).map_or(0, |(_, v)| *v));
            totals = next;
        }
        (out, totals)
    }

    #[test]
    fn a_restart_carries_the_last_value() {
        // a: 100 → 150 → restart, 10 → 30. Task = carry 150 + last.
        let (task, _) = run(
            Combine::Sum,
            &[
                (&["a"], &[("a", 100)]),
                (&["a"], &[("a", 150)]),
                (&["a"], &[("a", 10)]),
                (&["a"], &[("a", 30)]),
            ],
        );
        assert_eq!(task, [100, 150, 160, 180]);
    }

    #[test]
    fn a_container_without_a_reading_keeps_its_value_and_a_departed_one_folds() {
        let (task, totals) = run(
            Combine::Sum,
            &[
                (&["a", "b"], &[("a", 100), ("b", 50)]),
                (&["a", "b"], &[("a", 120)]), // b stopped: keeps 50
                (&["a"], &[("a", 130)]),      // b left the task: folded
                (&["a", "b"], &[("a", 140), ("b", 5)]), // a new b
            ],
        );
        assert_eq!(task, [150, 170, 180, 195]);
        assert_eq!(totals.len(), 3, "a, the new b, one departed series");
    }

    #[test]
    fn largest_keeps_a_stopped_containers_reading_and_carries_real_drops() {
        // Two containers read one interface at different instants.
        let (task, _) = run(
            Combine::Largest,
            &[
                (&["a", "b"], &[("a", 1000), ("b", 990)]),
                (&["a", "b"], &[("b", 995)]), // a stopped: its 1000 stays the largest
                (&["a", "b"], &[("b", 1010)]),
                (&["a", "b"], &[("b", 20)]), // the interface was reset: carried
            ],
        );
        assert_eq!(task, [1000, 1000, 1010, 1030]);
    }

    #[test]
    fn readings_of_containers_not_in_the_task_are_ignored() {
        let (task, totals) = run(Combine::Sum, &[(&["a"], &[("a", 1), ("ghost", 99)])]);
        assert_eq!(task, [1]);
        assert_eq!(totals.len(), 1);
    }

    #[test]
    fn sums_saturate_instead_of_wrapping() {
        let (task, _) = run(
            Combine::Sum,
            &[
                (&["a", "b"], &[("a", u64::MAX), ("b", 1)]),
                (&["a", "b"], &[("a", 0), ("b", 1)]),
            ],
        );
        assert_eq!(task, [u64::MAX, u64::MAX]);
    }
}
