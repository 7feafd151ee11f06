//! The simulated task built from a profile (`profiles.rs`): its containers (`container.rs`),
//! cloning, the two state-changing faults (`container_change`, `counter_reset`), a task's life
//! (restart, stop, start, health) and its `/task` JSON. It leaves out the counter arithmetic
//! (`counters.rs`) and when things happen (`app.rs`, `life.rs`).
//!
//! On top of the fixtures, every container gets `RestartCount` (0, as ECS
//! reports it when a restart policy is on) and the profile's
//! `health_check` container gets a `Health` object (`HEALTHY` since its
//! `StartedAt`) when the fixture has none. Fargate's
//! `EphemeralStorageMetrics.Utilized` moves: template + ⌊t/15⌋ mod 16 MiB
//! (one MiB more every 15 s, back to the template every 4 minutes).
//!
//! Life changes (their time is a sample time `r`, see `clock.rs`):
//! - restart: `RestartCount` + 1, `StartedAt` = r, same `DockerId`, counters
//!   from `Zero(r)` (network too in bridge mode, never the shared ENI),
//!   `Health` (if any) `UNKNOWN` since r, as Docker's `starting`;
//! - stop: `KnownStatus` and `DesiredStatus` `STOPPED`, `ExitCode`,
//!   `FinishedAt` = r, stats in the profile's stopped form;
//! - start: a stopped container runs again (`RUNNING`, `StartedAt` = r, no
//!   `ExitCode`/`FinishedAt`, counters from `Zero(r)`, `Health` `UNKNOWN`); an
//!   unknown name is a new container cloned from the first running one, with
//!   a fresh `DockerId`, `RestartCount` 0;
//! - health: `Health` = `{"status": S, "statusSince": r}`.
//!
//! The pause container (`Type` `CNI_PAUSE`) belongs to the agent: the life
//! controls refuse it.

use crate::clock::At;
use crate::container::{Container, Health, HealthCheck, Origin, Status, fresh_docker_id};
use crate::profiles::Profile;
use serde_json::{Map, Value};

/// Where the containers' network counters come from.
pub enum Network {
    /// Bridge: each container has its own interface, which follows the container's origin.
    PerContainer,
    /// awsvpc and Fargate: every container reports the task's ENI: the first running
    /// container's template `networks`, counted from the task's own origin.
    Shared { template: Value, origin: Origin },
}

/// A life control of one container, as `/control/<name>?...` and `--life` ask it.
#[derive(Debug)]
pub enum Control {
    Restart,
    Stop(i64),
    Start,
    Health(Health),
}

/// The simulated task: template metadata plus the current containers.
pub struct Task {
    /// The fixture's task object but its `Containers`.
    meta: Map<String, Value>,
    pub containers: Vec<Container>,
    /// Clone source (first running container of the template).
    source: Option<Container>,
    pub network: Network,
    /// A stopped container's stats in this profile: `null` or `{}`.
    pub stopped_stats: Value,
    /// Template `EphemeralStorageMetrics.Utilized` (Fargate), MiB.
    ephemeral_base: Option<u64>,
    /// The profile's health-checked container.
    pub health_check: &'static str,
    next_index: usize,
    pub changes: usize,
    pub resets: usize,
}

impl Task {
    pub fn load(p: &Profile) -> Result<Task, String> {
        let fixture = |text: &str| serde_json::from_str::<Value>(text);
        let mut meta = match fixture(p.task).map_err(|e| format!("task: {e}"))? {
            Value::Object(meta) => meta,
            _ => return Err(format!("profile {}: the task is no object", p.name)),
        };
        let stats = fixture(p.stats).map_err(|e| format!("stats: {e}"))?;
        let Some(Value::Array(list)) = meta.remove("Containers") else {
            return Err(format!("profile {}: no Containers array", p.name));
        };
        let mut containers = Vec::new();
        let mut next_index = 0;
        let mut stopped_stats = None;
        for object in list {
            let s = object["DockerId"]
                .as_str()
                .and_then(|id| stats.get(id))
                .cloned()
                .unwrap_or(Value::Null);
            let mut c = Container::from_fixture(object, s.clone())
                .map_err(|e| format!("profile {}: {e}", p.name))?;
            if c.running() {
                c.rate_index = next_index;
                next_index += 1;
            } else if stopped_stats.is_none() {
                stopped_stats = Some(s);
            }
            if c.name == p.health_check && c.health.is_none() {
                let since = c.started_at.clone().unwrap_or_default();
                let status = Health::Healthy;
                c.health = Some(HealthCheck { status, since });
            }
            containers.push(c);
        }
        let source = containers.iter().find(|c| c.running()).cloned();
        let network = match p.shared_network {
            true => Network::Shared {
                template: source
                    .as_ref()
                    .and_then(|c| c.stats.as_ref()?.get("networks").cloned())
                    .unwrap_or(Value::Null),
                origin: Origin::Template,
            },
            false => Network::PerContainer,
        };
        let ephemeral_base = meta
            .get("EphemeralStorageMetrics")
            .and_then(|m| m.get("Utilized"))
            .and_then(Value::as_u64);
        Ok(Task {
            meta,
            containers,
            source,
            network,
            stopped_stats: stopped_stats.unwrap_or(Value::Null),
            ephemeral_base,
            health_check: p.health_check,
            next_index,
            changes: 0,
            resets: 0,
        })
    }

    /// Keep exactly `n` running containers: the first `n`, then clones `app-<i>`.
    pub fn resize(&mut self, n: usize) -> Result<(), String> {
        self.containers.retain(Container::running);
        self.containers.truncate(n);
        while self.containers.len() < n {
            let i = self.containers.len();
            let c = self
                .clone_source(&format!("app-{i}"), i)
                .ok_or("no running container to clone")?;
            self.containers.push(c);
        }
        self.next_index = self.next_index.max(n);
        Ok(())
    }

    /// `container_change`: drop the last running (non-pause) container, add `late-joiner`.
    pub fn change(&mut self, now: f64) {
        let is_app = |c: &Container| c.running() && !c.is_pause();
        if let Some(pos) = self.containers.iter().rposition(is_app) {
            let gone = self.containers.remove(pos);
            log::info!("container_change: removed {:?}", gone.name);
        }
        self.changes += 1;
        let name = match self.changes {
            1 => "late-joiner".to_string(),
            k => format!("late-joiner-{k}"),
        };
        let index = self.take_index();
        if let Some(mut c) = self.clone_source(&name, index) {
            c.origin = Origin::Reset(now); // a new container: its counters start small
            self.containers.push(c);
            log::info!("container_change: added {name}");
        }
    }

    /// `counter_reset`: the first running container restarts (same DockerId).
    pub fn reset_counters(&mut self, now: f64) {
        self.resets += 1;
        if let Some(c) = self.containers.iter_mut().find(|c| c.running()) {
            c.origin = Origin::Reset(now);
            log::info!("counter_reset: {:?}", c.name);
        }
        if let Network::Shared { origin, .. } = &mut self.network {
            *origin = Origin::Reset(now);
        }
    }

    /// Container `name` takes `control` at `at`.
    pub fn apply(&mut self, name: &str, control: Control, at: &At) -> Result<(), String> {
        match control {
            Control::Restart => self.restart(name, at),
            Control::Stop(code) => self.stop(name, code, at),
            Control::Start => self.start(name, at),
            Control::Health(status) => self.set_health(name, status, at),
        }
    }

    /// The running container `name` restarts at `at`.
    pub fn restart(&mut self, name: &str, at: &At) -> Result<(), String> {
        let c = self.controllable(name)?;
        if !c.running() {
            let status = c.known_status.ecs();
            return Err(format!(
                "container {name:?} is {status}: use /control/start"
            ));
        }
        c.restart_count += 1;
        c.started_at = Some(at.stamp.clone());
        c.finished_at = None;
        c.health_restarts(&at.stamp);
        c.origin = Origin::Zero(at.t);
        log::info!("restart: {name} (RestartCount {})", c.restart_count);
        Ok(())
    }

    /// The running container `name` stops with `exit_code` at `at`.
    pub fn stop(&mut self, name: &str, exit_code: i64, at: &At) -> Result<(), String> {
        let c = self.controllable(name)?;
        if !c.running() {
            let status = c.known_status.ecs();
            return Err(format!("container {name:?} is {status} already"));
        }
        c.set_status(Status::Stopped);
        c.exit_code = Some(exit_code);
        c.finished_at = Some(at.stamp.clone());
        log::info!("stop: {name} (exit code {exit_code})");
        Ok(())
    }

    /// Container `name` starts at `at`: a stopped one runs again, an unknown name is a new
    /// container cloned from the first running one.
    pub fn start(&mut self, name: &str, at: &At) -> Result<(), String> {
        if !self.containers.iter().any(|c| c.name == name) {
            let index = self.take_index();
            let mut c = self
                .clone_source(name, index)
                .ok_or("no running container to clone")?;
            c.restart_count = 0;
            c.created_at = Some(at.stamp.clone());
            c.starts(at);
            self.containers.push(c);
            log::info!("start: {name} (a new container)");
            return Ok(());
        }
        let template = self.source.as_ref().and_then(|s| s.stats.clone());
        let index = self.next_index;
        let c = self.controllable(name)?;
        if c.running() {
            return Err(format!(
                "container {name:?} is running: use /control/restart"
            ));
        }
        let never_ran = c.stats.is_none();
        if never_ran {
            // A template container that never ran: the clone source's stats, its own rate.
            c.take_stats(template.ok_or("no running container to take stats from")?);
            c.rate_index = index;
        }
        c.exit_code = None;
        c.finished_at = None;
        c.starts(at);
        if never_ran {
            self.next_index += 1;
        }
        log::info!("start: {name}");
        Ok(())
    }

    /// Container `name`'s health check reports `status` since `at`.
    pub fn set_health(&mut self, name: &str, status: Health, at: &At) -> Result<(), String> {
        let c = self.controllable(name)?;
        let since = at.stamp.clone();
        c.health = Some(HealthCheck { status, since });
        log::info!("health: {name} {}", status.ecs());
        Ok(())
    }

    /// `/task` at sample time `t`.
    pub fn task_json(&self, t: f64) -> Value {
        let mut task = self.meta.clone();
        let list = self.containers.iter().map(Container::to_json).collect();
        task.insert("Containers".into(), Value::Array(list));
        if let (Some(base), Some(Value::Object(m))) =
            (self.ephemeral_base, task.get_mut("EphemeralStorageMetrics"))
        {
            let moved = (t.max(0.0) / 15.0) as u64 % 16;
            m.insert("Utilized".into(), (base + moved).into());
        }
        Value::Object(task)
    }

    /// The container `name`, if the life controls may change it.
    fn controllable(&mut self, name: &str) -> Result<&mut Container, String> {
        let Some(pos) = self.containers.iter().position(|c| c.name == name) else {
            let names: Vec<&str> = self.containers.iter().map(|c| c.name.as_str()).collect();
            let names = names.join(", ");
            return Err(format!("unknown container {name:?} (containers: {names})"));
        };
        let c = &mut self.containers[pos];
        if c.is_pause() {
            return Err(format!(
                "container {name:?} is the task's pause container (CNI_PAUSE): the agent's, not yours"
            ));
        }
        Ok(c)
    }

    fn take_index(&mut self) -> usize {
        let index = self.next_index;
        self.next_index += 1;
        index
    }

    /// The clone source named `name`, with a DockerId no container has.
    fn clone_source(&self, name: &str, index: usize) -> Option<Container> {
        let source = self.source.as_ref()?;
        let taken = |id: &str| self.containers.iter().any(|c| c.docker_id == id);
        let id = fresh_docker_id(&source.docker_id, index, taken);
        Some(source.renamed(name, &id, index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::{PROFILES, find};

    const STAMP: &str = "2030-01-02T03:04:05.000000000Z";

    /// Sample time `t`, stamped `STAMP`.
    fn at(t: f64) -> At {
        let stamp = STAMP.into();
        At { t, stamp }
    }

    fn task(profile: &str) -> Task {
        Task::load(find(profile).expect("profile")).expect("loads")
    }

    fn get<'a>(task: &'a Task, name: &str) -> &'a Container {
        task.containers
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no container {name}"))
    }

    /// Its `/task` object.
    fn meta(task: &Task, name: &str) -> Value {
        get(task, name).to_json()
    }

    #[test]
    fn every_profile_reports_restart_counts_and_a_health_check() {
        for p in &PROFILES {
            let task = Task::load(p).expect("loads");
            for c in &task.containers {
                assert_eq!(c.to_json()["RestartCount"], 0, "{}: {}", p.name, c.name);
            }
            let health = &meta(&task, p.health_check)["Health"];
            assert_eq!(health["status"], "HEALTHY", "{}", p.name);
            assert!(health["statusSince"].is_string(), "{}", p.name);
            let json = task.task_json(0.0);
            assert_eq!(
                json["EphemeralStorageMetrics"].is_object(),
                p.name == "fargate",
                "{}: ephemeral storage on Fargate only",
                p.name
            );
        }
    }

    #[test]
    fn every_fixture_container_is_served_as_it_is_but_for_restart_count_and_health() {
        for p in &PROFILES {
            let fixture: Value = serde_json::from_str(p.task).expect("fixture");
            let mut want = fixture["Containers"].clone();
            for c in want.as_array_mut().expect("a list") {
                c["RestartCount"] = 0.into();
                if c["Name"] == p.health_check && c.get("Health").is_none() {
                    c["Health"] =
                        serde_json::json!({"status": "HEALTHY", "statusSince": c["StartedAt"]});
                }
            }
            let task = Task::load(p).expect("loads");
            assert_eq!(task.task_json(0.0)["Containers"], want, "{}", p.name);
        }
    }

    #[test]
    fn fargate_ephemeral_storage_grows_a_mib_every_15_s_and_wraps_every_4_minutes() {
        let task = task("fargate");
        let utilized = |t: f64| task.task_json(t)["EphemeralStorageMetrics"]["Utilized"].clone();
        assert_eq!(utilized(0.0), 427);
        assert_eq!(utilized(14.9), 427);
        assert_eq!(utilized(15.0), 428);
        assert_eq!(utilized(225.0), 442);
        assert_eq!(utilized(240.0), 427);
        assert_eq!(
            task.task_json(100.0)["EphemeralStorageMetrics"]["Reserved"],
            20496
        );
    }

    #[test]
    fn a_restart_keeps_the_docker_id_counts_and_dates_the_start() {
        let mut task = task("ec2-bridge");
        let id = get(&task, "ecs-exporter").docker_id.clone();
        task.restart("ecs-exporter", &at(7.0)).expect("restart");
        task.restart("ecs-exporter", &at(9.0)).expect("restart");
        let (c, m) = (get(&task, "ecs-exporter"), meta(&task, "ecs-exporter"));
        assert_eq!(c.docker_id, id);
        assert_eq!(m["RestartCount"], 2);
        assert_eq!(m["StartedAt"], STAMP);
        assert_eq!(m["KnownStatus"], "RUNNING");
        assert_eq!(c.origin, Origin::Zero(9.0));
        // Its health check starts again (Docker's `starting`).
        assert_eq!(m["Health"]["status"], "UNKNOWN");
        assert_eq!(m["Health"]["statusSince"], STAMP);
        // The others are untouched.
        assert_eq!(meta(&task, "prometheus")["RestartCount"], 0);
        assert_eq!(get(&task, "prometheus").origin, Origin::Template);
    }

    #[test]
    fn a_stop_sets_stopped_statuses_the_exit_code_and_ends_the_samples() {
        let mut task = task("fargate");
        task.stop("prometheus", 137, &at(0.0)).expect("stop");
        let (c, m) = (get(&task, "prometheus"), meta(&task, "prometheus"));
        assert!(!c.running());
        assert_eq!(m["KnownStatus"], "STOPPED");
        assert_eq!(m["DesiredStatus"], "STOPPED");
        assert_eq!(m["ExitCode"], 137);
        assert_eq!(m["FinishedAt"], STAMP);
        let again = task
            .stop("prometheus", 0, &at(0.0))
            .expect_err("stopped twice");
        assert!(again.contains("STOPPED already"), "{again}");
        let restart = task.restart("prometheus", &at(1.0)).expect_err("restart");
        assert!(restart.contains("/control/start"), "{restart}");
    }

    #[test]
    fn a_start_runs_a_stopped_container_again_from_zero_without_an_exit_code() {
        let mut task = task("fargate");
        // `nonessential` never ran in the template: it takes the clone source's stats.
        task.start("nonessential", &at(20.0)).expect("start");
        let (c, m) = (get(&task, "nonessential"), meta(&task, "nonessential"));
        assert!(c.running());
        assert_eq!(m["KnownStatus"], "RUNNING");
        assert_eq!(m["DesiredStatus"], "RUNNING");
        assert!(m.get("ExitCode").is_none());
        assert!(m.get("FinishedAt").is_none());
        assert_eq!(m["StartedAt"], STAMP);
        assert_eq!(c.origin, Origin::Zero(20.0));
        let stats = c.stats.as_ref().expect("stats");
        assert_eq!(stats["id"], m["DockerId"]);
        assert_eq!(stats["name"], "nonessential");
        let others: Vec<usize> = task
            .containers
            .iter()
            .filter(|o| o.name != "nonessential")
            .map(|o| o.rate_index)
            .collect();
        assert!(!others.contains(&c.rate_index), "its own CPU rate");
        let again = task.start("nonessential", &at(21.0)).expect_err("twice");
        assert!(again.contains("/control/restart"), "{again}");

        // Stopped by a control, then started: keeps its own stats and rate.
        let rate = get(&task, "prometheus").rate_index;
        task.stop("prometheus", 1, &at(25.0)).expect("stop");
        task.start("prometheus", &at(30.0)).expect("start");
        let c = get(&task, "prometheus");
        assert_eq!((c.rate_index, c.origin), (rate, Origin::Zero(30.0)));
        assert!(meta(&task, "prometheus").get("ExitCode").is_none());
    }

    #[test]
    fn a_start_of_an_unknown_name_adds_a_new_container_with_a_fresh_docker_id() {
        for p in &PROFILES {
            let mut task = Task::load(p).expect("loads");
            let before = task.containers.len();
            task.start("late", &at(5.0)).expect("start");
            assert_eq!(task.containers.len(), before + 1, "{}", p.name);
            let (c, m) = (get(&task, "late"), meta(&task, "late"));
            let ids: Vec<&str> = task
                .containers
                .iter()
                .map(|c| c.docker_id.as_str())
                .collect();
            assert_eq!(
                ids.iter().filter(|id| **id == c.docker_id).count(),
                1,
                "{}: fresh DockerId",
                p.name
            );
            assert_eq!(m["RestartCount"], 0);
            assert_eq!(m["StartedAt"], STAMP);
            assert_eq!(m["KnownStatus"], "RUNNING");
            assert_eq!(c.origin, Origin::Zero(5.0));
            assert_eq!(c.stats.as_ref().expect("stats")["id"], m["DockerId"]);
            assert_eq!(m["Labels"]["com.amazonaws.ecs.container-name"], "late");
        }
    }

    #[test]
    fn health_is_set_with_its_time_even_on_a_container_without_a_check() {
        let mut task = task("ec2-awsvpc");
        task.set_health("ecs-exporter", Health::Unhealthy, &at(0.0))
            .expect("health");
        let h = &meta(&task, "ecs-exporter")["Health"];
        assert_eq!(
            (h["status"].as_str(), h["statusSince"].as_str()),
            (Some("UNHEALTHY"), Some(STAMP))
        );
        task.set_health("main", Health::Unknown, &at(0.0))
            .expect("health");
        assert_eq!(meta(&task, "main")["Health"]["status"], "UNKNOWN");
        assert_eq!(Health::parse("healthy"), Ok(Health::Healthy));
        assert!(
            Health::parse("HEALTHY").is_err(),
            "the query spells it in lower case"
        );
    }

    #[test]
    fn controls_refuse_unknown_containers_and_the_pause_container() {
        let mut task = task("ec2-awsvpc");
        let unknown = task.restart("nope", &at(1.0)).expect_err("unknown");
        assert!(unknown.contains("unknown container \"nope\""), "{unknown}");
        assert!(
            unknown.contains("ecs-exporter"),
            "lists the names: {unknown}"
        );
        assert!(task.stop("nope", 0, &at(0.0)).is_err());
        assert!(task.set_health("nope", Health::Healthy, &at(0.0)).is_err());
        for r in [
            task.restart("~internal~ecs~pause", &at(1.0)),
            task.stop("~internal~ecs~pause", 0, &at(0.0)),
            task.start("~internal~ecs~pause", &at(1.0)),
        ] {
            let e = r.expect_err("pause");
            assert!(e.contains("pause container"), "{e}");
        }
    }
}
