//! The simulator's shared state and what changes it: the task, the faults, the clock, the
//! `--life` schedule and the issued credentials, each behind its own lock. A fault that changes
//! the task goes to the task; a life control is dated to the current sample time; `--life`
//! catches up before each answer. Answers the data paths' bodies and the `/control/state` JSON.
//! It leaves out HTTP (`http.rs`) and what each change does (`task.rs`, `faults.rs`, `life.rs`,
//! `credentials.rs`).

use crate::clock::Clock;
use crate::counters;
use crate::credentials::{self, Issuer};
use crate::faults::{Endpoint, Faults, Kind};
use crate::life::Life;
use crate::task::{Control, Task};
use serde_json::Value;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Shared state of the simulator.
pub struct App {
    task: Mutex<Task>,
    faults: Mutex<Faults>,
    pub clock: Clock,
    /// `--life`: the schedule's targets and how far it has been applied.
    life: Option<Mutex<Life>>,
    /// The container-credentials endpoint's issued keys.
    credentials: Mutex<Issuer>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl App {
    pub fn new(task: Task, clock: Clock, life: Option<Life>, credentials: Issuer) -> App {
        App {
            task: Mutex::new(task),
            faults: Mutex::new(Faults::default()),
            clock,
            life: life.map(Mutex::new),
            credentials: Mutex::new(credentials),
        }
    }

    pub fn task(&self) -> MutexGuard<'_, Task> {
        lock(&self.task)
    }

    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        lock(&self.faults)
    }

    /// Apply a fault: state changes go to the task, the others to the fault list.
    pub fn set_fault(&self, kind: Kind, endpoint: Endpoint, count: u64) {
        let now = self.clock.sample();
        match kind {
            Kind::ContainerChange => self.task().change(now),
            Kind::CounterReset => self.task().reset_counters(now),
            _ => {
                self.faults().add(kind, endpoint, count);
                log::info!(
                    "fault set: {} on {} count={count}",
                    kind.name(),
                    endpoint.name()
                );
            }
        }
    }

    /// Apply a life control to container `name`, dated to the current sample.
    pub fn control(&self, name: &str, control: Control) -> Result<(), String> {
        let at = self.clock.at(self.clock.sample());
        self.task().apply(name, control, &at)
    }

    /// `--life`: apply the events due since the last request, each at its own time.
    pub fn advance_life(&self) {
        if let Some(life) = &self.life {
            lock(life).advance(&mut self.task(), &self.clock);
        }
    }

    /// `/task` or `/task/stats` at the current sample time.
    pub fn data(&self, endpoint: Endpoint) -> Value {
        let t = self.clock.sample();
        let task = self.task();
        match endpoint {
            Endpoint::Task => task.task_json(t),
            _ => counters::task_stats(&task, &self.clock, t),
        }
    }

    /// `/control/state`: the faults, the requests served and the containers.
    pub fn state(&self) -> Value {
        let mut state = self.faults().state();
        let task = self.task();
        state["container_changes"] = task.changes.into();
        state["counter_resets"] = task.resets.into();
        state["containers"] = task.containers.iter().map(|c| c.summary()).collect();
        state
    }

    /// The answer to `/v2/credentials/<id>` with this `Authorization` header.
    pub fn credentials(&self, authorization: Option<&str>) -> (u16, Value) {
        lock(&self.credentials).answer(authorization, credentials::now())
    }

    /// `/control/credentials`: the credentials issued and not yet expired.
    pub fn valid_credentials(&self) -> Value {
        lock(&self.credentials).valid(credentials::now())
    }
}
