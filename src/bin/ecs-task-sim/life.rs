//! `--life`: the simulated task lives on its own, on a fixed schedule of wall
//! time since the simulator started, so that a demo shows alerts change state.
//! It applies the events that are due to the task, each dated to its own time;
//! it leaves out what an event does to the task (`task.rs`) and when events are
//! looked for (lazily, before each request is answered: `http.rs`).
//!
//! Schedule (seconds since start):
//! - the health-checked container (the profile's `health_check`) turns
//!   `UNHEALTHY` at 60 + 300·k and `HEALTHY` again at 240 + 300·k: unhealthy
//!   for 3 minutes, healthy for 2, every 5 minutes;
//! - another container (the first running one that is neither that one nor
//!   the pause container) restarts at 120 + 360·k: every 6 minutes, from the
//!   2nd minute.
//!
//! So a 10-minute demo shows, with `monitoring/`'s rules (`for: 1m`):
//! `EcsContainerUnhealthy` pending at ~1:00, firing at ~2:00, resolved at
//! ~4:00, pending again at ~6:00, firing ~7:00, resolved ~9:00; and
//! `EcsContainerRestarting` pending at ~2:00, firing ~3:00, resolved at ~7:00
//! (5 minutes after the restart), pending again at ~8:00, firing ~9:00.

use crate::clock::Clock;
use crate::container::Health;
use crate::task::{Control, Task};

/// Health: the period, and the times in it at which the container turns unhealthy and healthy.
const HEALTH_PERIOD: f64 = 300.0;
const UNHEALTHY_AT: f64 = 60.0;
const HEALTHY_AT: f64 = 240.0;
/// Restarts: the first one, then one every period.
const FIRST_RESTART: f64 = 120.0;
const RESTART_PERIOD: f64 = 360.0;

/// What happens.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Event {
    Unhealthy,
    Healthy,
    Restart,
}

/// The events with a time in `(from, to]`, in time order.
fn events(from: f64, to: f64) -> Vec<(f64, Event)> {
    let mut out = Vec::new();
    if to.is_nan() || from.is_nan() || to <= from {
        return out;
    }
    let first = (from / HEALTH_PERIOD).floor().max(0.0) as u64;
    let last = (to / HEALTH_PERIOD).floor().max(0.0) as u64;
    for k in first..=last {
        let base = k as f64 * HEALTH_PERIOD;
        out.push((base + UNHEALTHY_AT, Event::Unhealthy));
        out.push((base + HEALTHY_AT, Event::Healthy));
    }
    let first = ((from - FIRST_RESTART) / RESTART_PERIOD).floor().max(0.0) as u64;
    let last = ((to - FIRST_RESTART) / RESTART_PERIOD).floor();
    if last >= 0.0 {
        for k in first..=last as u64 {
            out.push((FIRST_RESTART + k as f64 * RESTART_PERIOD, Event::Restart));
        }
    }
    out.retain(|(at, _)| *at > from && *at <= to);
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// The containers `--life` acts on, and how far the schedule has been applied.
pub struct Life {
    health: Option<String>,
    restart: Option<String>,
    until: f64,
}

impl Life {
    /// The targets in `task`: the profile's health-checked container, and the first running
    /// container that is neither it nor the pause container.
    pub fn new(task: &Task) -> Life {
        let health = task.containers.iter().find(|c| c.name == task.health_check);
        let restart = task
            .containers
            .iter()
            .find(|c| c.running() && !c.is_pause() && c.name != task.health_check);
        Life {
            health: health.map(|c| c.name.clone()),
            restart: restart.map(|c| c.name.clone()),
            until: 0.0,
        }
    }

    /// The schedule, in one line of the start-up log.
    pub fn describe(&self) -> String {
        let health = self.health.as_deref();
        let restart = self.restart.as_deref();
        format!(
            "{} turns unhealthy at {UNHEALTHY_AT} s + {HEALTH_PERIOD} s·k for {} s; {} restarts at {FIRST_RESTART} s + {RESTART_PERIOD} s·k",
            health.unwrap_or("(no health-checked container)"),
            HEALTHY_AT - UNHEALTHY_AT,
            restart.unwrap_or("(no other container)")
        )
    }

    /// Apply to `task` the events due since the last call, each at its own sample time.
    pub fn advance(&mut self, task: &mut Task, clock: &Clock) {
        let now = clock.elapsed();
        for (at, event) in events(self.until, now) {
            let (target, control) = match event {
                Event::Unhealthy => (&self.health, Control::Health(Health::Unhealthy)),
                Event::Healthy => (&self.health, Control::Health(Health::Healthy)),
                Event::Restart => (&self.restart, Control::Restart),
            };
            if let Some(name) = target
                && let Err(e) = task.apply(name, control, &clock.at(clock.quantize(at)))
            {
                log::info!("life at {at} s: {e}");
            }
        }
        self.until = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::find;
    use serde_json::Value;

    /// A task of `profile` and a clock that started `ago` seconds ago.
    fn task(profile: &str, ago: u64) -> (Task, Clock) {
        let p = find(profile).expect("profile");
        let clock = Clock::started_ago(ago, p.interval_secs, 0.0);
        (Task::load(p).expect("loads"), clock)
    }

    /// Container `name`'s `/task` field `key`.
    fn meta(task: &Task, name: &str, key: &str) -> Value {
        let c = task.containers.iter().find(|c| c.name == name);
        c.map_or(Value::Null, |c| c.to_json()[key].clone())
    }

    #[test]
    fn the_first_ten_minutes_have_two_unhealthy_spells_and_two_restarts() {
        let got = events(0.0, 600.0);
        let want = vec![
            (60.0, Event::Unhealthy),
            (120.0, Event::Restart),
            (240.0, Event::Healthy),
            (360.0, Event::Unhealthy),
            (480.0, Event::Restart),
            (540.0, Event::Healthy),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn consecutive_windows_see_every_event_once() {
        let whole = events(0.0, 3600.0);
        let mut pieces = Vec::new();
        let mut from = 0.0;
        // Uneven steps, some of them ending exactly on an event.
        for step in [0.5, 59.5, 60.0, 7.25, 113.0, 240.0, 1.0, 3118.75] {
            pieces.extend(events(from, from + step));
            from += step;
        }
        assert_eq!(from, 3600.0);
        assert_eq!(pieces, whole);
        assert_eq!(
            whole.iter().filter(|(_, e)| *e == Event::Restart).count(),
            10,
            "restarts at 120, 480, ..., 3360"
        );
    }

    #[test]
    fn an_empty_or_backward_window_has_no_events() {
        assert!(events(60.0, 60.0).is_empty());
        assert!(events(100.0, 50.0).is_empty());
        assert!(events(0.0, 59.9).is_empty());
        assert_eq!(events(59.9, 60.0), vec![(60.0, Event::Unhealthy)]);
    }

    #[test]
    fn life_applies_the_due_events_at_their_own_times() {
        // 130 s after start: unhealthy since 60 s, one restart at 120 s.
        let (mut task, clock) = task("fargate", 130);
        let mut life = Life::new(&task);
        life.advance(&mut task, &clock);
        let health = meta(&task, "ecs-exporter", "Health");
        assert_eq!(health["status"], "UNHEALTHY");
        assert_eq!(health["statusSince"], clock.timestamp(60.0).as_str());
        assert_eq!(meta(&task, "prometheus", "RestartCount"), 1);
        assert_eq!(
            meta(&task, "prometheus", "StartedAt"),
            clock.timestamp(120.0).as_str()
        );
        // Applied once: a second request at about the same time changes nothing.
        life.advance(&mut task, &clock);
        assert_eq!(meta(&task, "prometheus", "RestartCount"), 1);
    }

    #[test]
    fn life_goes_on_when_its_target_was_stopped() {
        let (mut task, clock) = task("ec2-bridge", 300);
        let mut life = Life::new(&task);
        task.apply("prometheus", Control::Stop(0), &clock.at(1.0))
            .expect("stop");
        life.advance(&mut task, &clock); // the restart at 120 s is refused, and logged
        assert_eq!(meta(&task, "prometheus", "RestartCount"), 0);
        assert_eq!(meta(&task, "ecs-exporter", "Health")["status"], "HEALTHY");
        assert_eq!(
            meta(&task, "ecs-exporter", "Health")["statusSince"],
            clock.timestamp(240.0).as_str()
        );
    }

    #[test]
    fn life_targets_are_the_health_checked_container_and_another_app_container() {
        for (profile, health, restart) in [
            ("fargate", "ecs-exporter", "prometheus"),
            ("ec2-bridge", "ecs-exporter", "prometheus"),
            ("managed-instances", "main", "ecs-exporter"),
            ("ec2-awsvpc", "ecs-exporter", "main"),
        ] {
            let life = Life::new(&task(profile, 0).0);
            assert_eq!(
                (life.health.as_deref(), life.restart.as_deref()),
                (Some(health), Some(restart)),
                "{profile}"
            );
        }
    }

    #[test]
    fn the_schedule_is_told_from_its_constants() {
        let life = Life::new(&task("fargate", 0).0);
        assert_eq!(
            life.describe(),
            "ecs-exporter turns unhealthy at 60 s + 300 s·k for 180 s; prometheus restarts at 120 s + 360 s·k"
        );
    }
}
