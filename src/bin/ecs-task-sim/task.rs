//! The simulated task built from a profile (`profiles.rs`): its container list, cloning, the two
//! state-changing faults (`container_change`, `counter_reset`) and a task's
//! life (restart, stop, start, health). It leaves out the counter arithmetic
//! (`counters.rs`), the clock, and when things happen (`http.rs`, `life.rs`).
//!
//! On top of the fixtures, every container gets `RestartCount` (0, as ECS
//! reports it when a restart policy is on) and the profile's
//! `health_check` container gets a `Health` object (`HEALTHY` since its
//! `StartedAt`) when the fixture has none. Fargate's
//! `EphemeralStorageMetrics.Utilized` moves: template + ⌊t/15⌋ mod 16 MiB
//! (one MiB more every 15 s, back to the template every 4 minutes).
//!
//! Life changes (their time is a sample time `r`, see `counters.rs`):
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

use crate::counters::Origin;
use serde_json::{Value, json};

use crate::profiles::Profile;

/// One container of the simulated task.
#[derive(Clone)]
pub struct Container {
    /// Its object in `/task` `Containers`.
    pub meta: Value,
    /// Template stats: an object for containers that ran, `null`/`{}` for a
    /// template container that never did.
    pub stats: Value,
    pub running: bool,
    /// Selects the container's CPU rate, so containers differ.
    pub rate_index: usize,
    /// When its counters last started.
    pub origin: Origin,
}

impl Container {
    pub fn docker_id(&self) -> &str {
        self.meta["DockerId"].as_str().unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        self.meta["Name"].as_str().unwrap_or_default()
    }

    pub fn known_status(&self) -> &str {
        self.meta["KnownStatus"].as_str().unwrap_or_default()
    }

    fn is_pause(&self) -> bool {
        self.meta["Type"] == "CNI_PAUSE"
    }

    fn set(&mut self, key: &str, value: Value) {
        if let Some(m) = self.meta.as_object_mut() {
            m.insert(key.into(), value);
        }
    }

    fn remove(&mut self, key: &str) {
        if let Some(m) = self.meta.as_object_mut() {
            m.remove(key);
        }
    }

    /// A health check that has just (re)started: `UNKNOWN` since `stamp`.
    fn health_restarts(&mut self, stamp: &str) {
        if self.meta.get("Health").is_some_and(Value::is_object) {
            self.set("Health", health(Health::Unknown, stamp));
        }
    }
}

/// A container's health check state, as `/control/health?status=` names it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Health {
    Healthy,
    Unhealthy,
    Unknown,
}

impl Health {
    pub fn parse(s: &str) -> Result<Health, String> {
        match s {
            "healthy" => Ok(Health::Healthy),
            "unhealthy" => Ok(Health::Unhealthy),
            "unknown" => Ok(Health::Unknown),
            _ => Err(format!(
                "bad status {s:?} (expected healthy, unhealthy or unknown)"
            )),
        }
    }

    /// The endpoint's spelling.
    pub fn ecs(self) -> &'static str {
        match self {
            Health::Healthy => "HEALTHY",
            Health::Unhealthy => "UNHEALTHY",
            Health::Unknown => "UNKNOWN",
        }
    }
}

fn health(status: Health, since: &str) -> Value {
    json!({"status": status.ecs(), "statusSince": since})
}

/// The simulated task: template metadata plus the current containers.
pub struct Task {
    meta: Value,
    pub containers: Vec<Container>,
    /// Clone source (first running container of the template).
    source: Option<Container>,
    /// Template `networks` of the first running container (awsvpc shared ENI).
    pub shared_networks: Value,
    pub shared_network: bool,
    pub shared_net_origin: Origin,
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
        let mut meta: Value = serde_json::from_str(p.task).map_err(|e| format!("task: {e}"))?;
        let stats: Value = serde_json::from_str(p.stats).map_err(|e| format!("stats: {e}"))?;
        let list = match meta.get_mut("Containers").map(Value::take) {
            Some(Value::Array(list)) => list,
            _ => return Err(format!("profile {}: no Containers array", p.name)),
        };
        let mut containers = Vec::new();
        let mut next_index = 0;
        let mut stopped_stats = None;
        for c in list {
            let s = c["DockerId"]
                .as_str()
                .and_then(|id| stats.get(id))
                .cloned()
                .unwrap_or(Value::Null);
            let running = s.as_object().is_some_and(|o| !o.is_empty());
            if !running && stopped_stats.is_none() {
                stopped_stats = Some(s.clone());
            }
            let rate_index = if running { next_index } else { 0 };
            next_index += usize::from(running);
            let mut c = Container {
                meta: c,
                stats: s,
                running,
                rate_index,
                origin: Origin::Template,
            };
            if c.meta.get("RestartCount").is_none() {
                c.set("RestartCount", 0.into());
            }
            if c.name() == p.health_check && c.meta.get("Health").is_none() {
                let since = c.meta["StartedAt"].as_str().unwrap_or_default().to_string();
                c.set("Health", health(Health::Healthy, &since));
            }
            containers.push(c);
        }
        let source = containers.iter().find(|c| c.running).cloned();
        let shared_networks = source
            .as_ref()
            .map_or(Value::Null, |c| c.stats["networks"].clone());
        let ephemeral_base = meta["EphemeralStorageMetrics"]["Utilized"].as_u64();
        Ok(Task {
            meta,
            containers,
            source,
            shared_networks,
            shared_network: p.shared_network,
            shared_net_origin: Origin::Template,
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
        self.containers.retain(|c| c.running);
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
        let is_app = |c: &Container| c.running && !c.is_pause();
        if let Some(pos) = self.containers.iter().rposition(is_app) {
            let gone = self.containers.remove(pos);
            log::info!("container_change: removed {}", gone.meta["Name"]);
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
        if let Some(c) = self.containers.iter_mut().find(|c| c.running) {
            c.origin = Origin::Reset(now);
            log::info!("counter_reset: {}", c.meta["Name"]);
        }
        if self.shared_network {
            self.shared_net_origin = Origin::Reset(now);
        }
    }

    /// The running container `name` restarts at sample time `r` (`stamp` its RFC 3339 form).
    pub fn restart(&mut self, name: &str, r: f64, stamp: &str) -> Result<(), String> {
        let c = self.controllable(name)?;
        if !c.running {
            return Err(format!(
                "container {name:?} is {}: use /control/start",
                c.known_status()
            ));
        }
        let count = c.meta["RestartCount"].as_u64().unwrap_or(0) + 1;
        c.set("RestartCount", count.into());
        c.set("StartedAt", stamp.into());
        c.remove("FinishedAt");
        c.health_restarts(stamp);
        c.origin = Origin::Zero(r);
        log::info!("restart: {name} (RestartCount {count})");
        Ok(())
    }

    /// The running container `name` stops with `exit_code` at `stamp`.
    pub fn stop(&mut self, name: &str, exit_code: i64, stamp: &str) -> Result<(), String> {
        let c = self.controllable(name)?;
        if !c.running {
            return Err(format!(
                "container {name:?} is {} already",
                c.known_status()
            ));
        }
        c.running = false;
        c.set("KnownStatus", "STOPPED".into());
        c.set("DesiredStatus", "STOPPED".into());
        c.set("ExitCode", exit_code.into());
        c.set("FinishedAt", stamp.into());
        log::info!("stop: {name} (exit code {exit_code})");
        Ok(())
    }

    /// Container `name` starts at sample time `r`: a stopped one runs again, an unknown
    /// name is a new container cloned from the first running one.
    pub fn start(&mut self, name: &str, r: f64, stamp: &str) -> Result<(), String> {
        if !self.containers.iter().any(|c| c.name() == name) {
            let index = self.take_index();
            let mut c = self
                .clone_source(name, index)
                .ok_or("no running container to clone")?;
            c.set("RestartCount", 0.into());
            c.set("KnownStatus", "RUNNING".into());
            c.set("DesiredStatus", "RUNNING".into());
            c.set("CreatedAt", stamp.into());
            c.set("StartedAt", stamp.into());
            c.health_restarts(stamp);
            c.origin = Origin::Zero(r);
            self.containers.push(c);
            log::info!("start: {name} (a new container)");
            return Ok(());
        }
        let template = self.source.as_ref().map(|s| s.stats.clone());
        let index = self.next_index;
        let c = self.controllable(name)?;
        if c.running {
            return Err(format!(
                "container {name:?} is running: use /control/restart"
            ));
        }
        let never_ran = c.stats.as_object().is_none_or(|o| o.is_empty());
        if never_ran {
            // A template container that never ran: the clone source's stats, its own rate.
            let mut s = template.ok_or("no running container to take stats from")?;
            let docker_name = c.meta["DockerName"].as_str().unwrap_or(name).to_string();
            let id = c.docker_id().to_string();
            rename_stats(&mut s, &docker_name, &id);
            c.stats = s;
            c.rate_index = index;
        }
        c.running = true;
        c.set("KnownStatus", "RUNNING".into());
        c.set("DesiredStatus", "RUNNING".into());
        c.set("StartedAt", stamp.into());
        c.remove("ExitCode");
        c.remove("FinishedAt");
        c.health_restarts(stamp);
        c.origin = Origin::Zero(r);
        if never_ran {
            self.next_index += 1;
        }
        log::info!("start: {name}");
        Ok(())
    }

    /// Container `name`'s health check reports `status` since `stamp`.
    pub fn set_health(&mut self, name: &str, status: Health, stamp: &str) -> Result<(), String> {
        let c = self.controllable(name)?;
        c.set("Health", health(status, stamp));
        log::info!("health: {name} {}", status.ecs());
        Ok(())
    }

    /// `/task` at sample time `t`.
    pub fn task_json(&self, t: f64) -> Value {
        let mut task = self.meta.clone();
        let list = self.containers.iter().map(|c| c.meta.clone()).collect();
        task["Containers"] = Value::Array(list);
        if let (Some(base), Some(m)) = (
            self.ephemeral_base,
            task.get_mut("EphemeralStorageMetrics")
                .and_then(Value::as_object_mut),
        ) {
            let moved = (t.max(0.0) / 15.0) as u64 % 16;
            m.insert("Utilized".into(), (base + moved).into());
        }
        task
    }

    /// The container `name`, if the life controls may change it.
    fn controllable(&mut self, name: &str) -> Result<&mut Container, String> {
        let names: Vec<String> = self.containers.iter().map(|c| c.name().into()).collect();
        let c = self
            .containers
            .iter_mut()
            .find(|c| c.name() == name)
            .ok_or_else(|| {
                format!(
                    "unknown container {name:?} (containers: {})",
                    names.join(", ")
                )
            })?;
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

    fn clone_source(&self, name: &str, index: usize) -> Option<Container> {
        let mut c = self.source.clone()?;
        let old_name = c.meta["Name"].as_str().unwrap_or_default().to_string();
        let old_docker = c.meta["DockerName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let id = self.new_docker_id(c.docker_id(), index);
        let docker_name = if old_docker == old_name {
            name.to_string()
        } else if let Some(pos) = old_docker.rfind(&format!("-{old_name}-")) {
            let rest = &old_docker[pos + old_name.len() + 2..];
            format!("{}-{name}-{rest}", &old_docker[..pos])
        } else {
            format!("{old_docker}-{name}")
        };
        if let Some(m) = c.meta.as_object_mut() {
            m.insert("DockerId".into(), id.clone().into());
            m.insert("Name".into(), name.into());
            m.insert("DockerName".into(), docker_name.clone().into());
            if let Some(Value::Object(labels)) = m.get_mut("Labels") {
                labels.insert("com.amazonaws.ecs.container-name".into(), name.into());
            }
            if let Some(arn) = m.get("ContainerARN").and_then(Value::as_str) {
                let prefix = arn.rsplit_once('/').map_or(arn, |(p, _)| p);
                let uuid = format!("{:08x}-5151-4000-8000-{:012x}", hash(&id, 0) as u32, index);
                m.insert("ContainerARN".into(), format!("{prefix}/{uuid}").into());
            }
        }
        rename_stats(&mut c.stats, &docker_name, &id);
        c.rate_index = index;
        c.origin = Origin::Template;
        Some(c)
    }

    /// A fresh DockerId of the same form as `template`: Fargate's
    /// `<task id>-<digits>`, else Docker's 64 hex digits.
    fn new_docker_id(&self, template: &str, index: usize) -> String {
        let taken =
            |id: &str| id == template || self.containers.iter().any(|c| c.docker_id() == id);
        let mut salt = (index as u64) << 32;
        loop {
            salt += 1;
            let id = match template.rsplit_once('-') {
                Some((prefix, digits))
                    if (1..=18).contains(&digits.len())
                        && digits.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    let width = digits.len();
                    format!(
                        "{prefix}-{:0width$}",
                        hash(template, salt) % 10u64.pow(width as u32)
                    )
                }
                _ => (0..4u64)
                    .map(|i| format!("{:016x}", hash(template, salt ^ (i << 60))))
                    .collect(),
            };
            if !taken(&id) {
                return id;
            }
        }
    }
}

/// Stats `name` and `id` of a container (`name` keeps the template's leading `/`, if any).
fn rename_stats(stats: &mut Value, docker_name: &str, id: &str) {
    if let Some(s) = stats.as_object_mut() {
        let slash = if s["name"].as_str().is_some_and(|n| n.starts_with('/')) {
            "/"
        } else {
            ""
        };
        s.insert("name".into(), format!("{slash}{docker_name}").into());
        s.insert("id".into(), id.into());
    }
}

/// FNV-1a plus a splitmix64 finalizer: distinct, stable ids.
fn hash(s: &str, salt: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes().chain(salt.to_le_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::{PROFILES, find};

    const STAMP: &str = "2030-01-02T03:04:05.000000000Z";

    fn task(profile: &str) -> Task {
        Task::load(find(profile).expect("profile")).expect("loads")
    }

    fn get<'a>(task: &'a Task, name: &str) -> &'a Container {
        task.containers
            .iter()
            .find(|c| c.name() == name)
            .unwrap_or_else(|| panic!("no container {name}"))
    }

    #[test]
    fn every_profile_reports_restart_counts_and_a_health_check() {
        for p in &PROFILES {
            let task = Task::load(p).expect("loads");
            for c in &task.containers {
                assert_eq!(c.meta["RestartCount"], 0, "{}: {}", p.name, c.name());
            }
            let health = &get(&task, p.health_check).meta["Health"];
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
        let id = get(&task, "ecs-exporter").docker_id().to_string();
        task.restart("ecs-exporter", 7.0, STAMP).expect("restart");
        task.restart("ecs-exporter", 9.0, STAMP).expect("restart");
        let c = get(&task, "ecs-exporter");
        assert_eq!(c.docker_id(), id);
        assert_eq!(c.meta["RestartCount"], 2);
        assert_eq!(c.meta["StartedAt"], STAMP);
        assert_eq!(c.known_status(), "RUNNING");
        assert_eq!(c.origin, Origin::Zero(9.0));
        // Its health check starts again (Docker's `starting`).
        assert_eq!(c.meta["Health"]["status"], "UNKNOWN");
        assert_eq!(c.meta["Health"]["statusSince"], STAMP);
        // The others are untouched.
        assert_eq!(get(&task, "prometheus").meta["RestartCount"], 0);
        assert_eq!(get(&task, "prometheus").origin, Origin::Template);
    }

    #[test]
    fn a_stop_sets_stopped_statuses_the_exit_code_and_ends_the_samples() {
        let mut task = task("fargate");
        task.stop("prometheus", 137, STAMP).expect("stop");
        let c = get(&task, "prometheus");
        assert!(!c.running);
        assert_eq!(c.known_status(), "STOPPED");
        assert_eq!(c.meta["DesiredStatus"], "STOPPED");
        assert_eq!(c.meta["ExitCode"], 137);
        assert_eq!(c.meta["FinishedAt"], STAMP);
        let again = task
            .stop("prometheus", 0, STAMP)
            .expect_err("stopped twice");
        assert!(again.contains("STOPPED already"), "{again}");
        let restart = task.restart("prometheus", 1.0, STAMP).expect_err("restart");
        assert!(restart.contains("/control/start"), "{restart}");
    }

    #[test]
    fn a_start_runs_a_stopped_container_again_from_zero_without_an_exit_code() {
        let mut task = task("fargate");
        // `nonessential` never ran in the template: it takes the clone source's stats.
        task.start("nonessential", 20.0, STAMP).expect("start");
        let c = get(&task, "nonessential");
        assert!(c.running);
        assert_eq!(c.known_status(), "RUNNING");
        assert_eq!(c.meta["DesiredStatus"], "RUNNING");
        assert!(c.meta.get("ExitCode").is_none());
        assert!(c.meta.get("FinishedAt").is_none());
        assert_eq!(c.meta["StartedAt"], STAMP);
        assert_eq!(c.origin, Origin::Zero(20.0));
        assert_eq!(c.stats["id"], c.meta["DockerId"]);
        assert_eq!(c.stats["name"], "nonessential");
        let others: Vec<usize> = task
            .containers
            .iter()
            .filter(|o| o.name() != "nonessential")
            .map(|o| o.rate_index)
            .collect();
        assert!(!others.contains(&c.rate_index), "its own CPU rate");
        let again = task.start("nonessential", 21.0, STAMP).expect_err("twice");
        assert!(again.contains("/control/restart"), "{again}");

        // Stopped by a control, then started: keeps its own stats and rate.
        let rate = get(&task, "prometheus").rate_index;
        task.stop("prometheus", 1, STAMP).expect("stop");
        task.start("prometheus", 30.0, STAMP).expect("start");
        let c = get(&task, "prometheus");
        assert_eq!((c.rate_index, c.origin), (rate, Origin::Zero(30.0)));
        assert!(c.meta.get("ExitCode").is_none());
    }

    #[test]
    fn a_start_of_an_unknown_name_adds_a_new_container_with_a_fresh_docker_id() {
        for p in &PROFILES {
            let mut task = Task::load(p).expect("loads");
            let before = task.containers.len();
            task.start("late", 5.0, STAMP).expect("start");
            assert_eq!(task.containers.len(), before + 1, "{}", p.name);
            let c = get(&task, "late");
            let ids: Vec<&str> = task.containers.iter().map(Container::docker_id).collect();
            assert_eq!(
                ids.iter().filter(|id| **id == c.docker_id()).count(),
                1,
                "{}: fresh DockerId",
                p.name
            );
            assert_eq!(c.meta["RestartCount"], 0);
            assert_eq!(c.meta["StartedAt"], STAMP);
            assert_eq!(c.known_status(), "RUNNING");
            assert_eq!(c.origin, Origin::Zero(5.0));
            assert_eq!(c.stats["id"], c.docker_id());
            assert_eq!(c.meta["Labels"]["com.amazonaws.ecs.container-name"], "late");
        }
    }

    #[test]
    fn health_is_set_with_its_time_even_on_a_container_without_a_check() {
        let mut task = task("ec2-awsvpc");
        task.set_health("ecs-exporter", Health::Unhealthy, STAMP)
            .expect("health");
        let h = &get(&task, "ecs-exporter").meta["Health"];
        assert_eq!(
            (h["status"].as_str(), h["statusSince"].as_str()),
            (Some("UNHEALTHY"), Some(STAMP))
        );
        task.set_health("main", Health::Unknown, STAMP)
            .expect("health");
        assert_eq!(get(&task, "main").meta["Health"]["status"], "UNKNOWN");
        assert_eq!(Health::parse("healthy"), Ok(Health::Healthy));
        assert!(
            Health::parse("HEALTHY").is_err(),
            "the query spells it in lower case"
        );
    }

    #[test]
    fn controls_refuse_unknown_containers_and_the_pause_container() {
        let mut task = task("ec2-awsvpc");
        let unknown = task.restart("nope", 1.0, STAMP).expect_err("unknown");
        assert!(unknown.contains("unknown container \"nope\""), "{unknown}");
        assert!(
            unknown.contains("ecs-exporter"),
            "lists the names: {unknown}"
        );
        assert!(task.stop("nope", 0, STAMP).is_err());
        assert!(task.set_health("nope", Health::Healthy, STAMP).is_err());
        for r in [
            task.restart("~internal~ecs~pause", 1.0, STAMP),
            task.stop("~internal~ecs~pause", 0, STAMP),
            task.start("~internal~ecs~pause", 1.0, STAMP),
        ] {
            let e = r.expect_err("pause");
            assert!(e.contains("pause container"), "{e}");
        }
    }
}
