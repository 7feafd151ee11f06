//! `--life`: the simulated task lives on its own, on a fixed schedule of wall
//! time since the simulator started, so that a demo shows alerts change state.
//! It leaves out what an event does to the task (`profiles.rs`) and when
//! events are applied (lazily, before each request is answered: `http.rs`).
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

/// Health: the period, and the times in it at which the container turns unhealthy and healthy.
pub const HEALTH_PERIOD: f64 = 300.0;
pub const UNHEALTHY_AT: f64 = 60.0;
pub const HEALTHY_AT: f64 = 240.0;
/// Restarts: the first one, then one every period.
pub const FIRST_RESTART: f64 = 120.0;
pub const RESTART_PERIOD: f64 = 360.0;

/// What happens.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Event {
    Unhealthy,
    Healthy,
    Restart,
}

/// The events with a time in `(from, to]`, in time order.
pub fn events(from: f64, to: f64) -> Vec<(f64, Event)> {
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
    pub health: Option<String>,
    pub restart: Option<String>,
    pub until: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
