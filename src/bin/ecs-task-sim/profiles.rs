//! Built-in profiles (real ECS fixture payloads used as templates) and the
//! simulated task built from them: its container list, cloning, and the two
//! state-changing faults (`container_change`, `counter_reset`).

use serde_json::Value;

/// A profile: a pair of fixture payloads plus how ECS samples stats there.
pub struct Profile {
    pub name: &'static str,
    task: &'static str,
    stats: &'static str,
    /// Seconds between `preread` and `read`.
    pub interval_secs: f64,
    /// Default quantization of `read` (0 = every request is a new sample).
    pub refresh_secs: f64,
    /// awsvpc: every container reports the task ENI's (shared) counters.
    pub shared_network: bool,
}

pub const PROFILES: [Profile; 4] = [
    Profile {
        name: "fargate",
        task: include_str!("../../../tests/fixtures/fargate-cgroupv1-task.json"),
        stats: include_str!("../../../tests/fixtures/fargate-cgroupv1-task-stats.json"),
        interval_secs: 10.0,
        refresh_secs: 10.0,
        shared_network: true,
    },
    Profile {
        name: "ec2-bridge",
        task: include_str!("../../../tests/fixtures/ec2-bridge-cgroupv2-task.json"),
        stats: include_str!("../../../tests/fixtures/ec2-bridge-cgroupv2-task-stats.json"),
        interval_secs: 1.0,
        refresh_secs: 0.0,
        shared_network: false,
    },
    Profile {
        name: "managed-instances",
        task: include_str!("../../../tests/fixtures/managed-instances-cgroupv2-task.json"),
        stats: include_str!("../../../tests/fixtures/managed-instances-cgroupv2-task-stats.json"),
        interval_secs: 10.0,
        refresh_secs: 0.0,
        shared_network: true,
    },
    Profile {
        name: "ec2-awsvpc",
        task: include_str!("../../../tests/fixtures/ec2-awsvpc-cgroupv2-task.json"),
        stats: include_str!("../../../tests/fixtures/ec2-awsvpc-cgroupv2-task-stats.json"),
        interval_secs: 1.0,
        refresh_secs: 0.0,
        shared_network: true,
    },
];

pub fn find(name: &str) -> Option<&'static Profile> {
    PROFILES.iter().find(|p| p.name == name)
}

/// One container of the simulated task.
#[derive(Clone)]
pub struct Container {
    /// Its object in `/task` `Containers`.
    pub meta: Value,
    /// Template stats: an object for running containers, `null`/`{}` otherwise.
    pub stats: Value,
    pub running: bool,
    /// Selects the container's CPU rate, so containers differ.
    pub rate_index: usize,
    /// Sample time (seconds since start) at which its counters restarted.
    pub reset_at: Option<f64>,
}

impl Container {
    pub fn docker_id(&self) -> &str {
        self.meta["DockerId"].as_str().unwrap_or_default()
    }
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
    pub shared_net_reset_at: Option<f64>,
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
        for c in list {
            let s = c["DockerId"]
                .as_str()
                .and_then(|id| stats.get(id))
                .cloned()
                .unwrap_or(Value::Null);
            let running = s.as_object().is_some_and(|o| !o.is_empty());
            let rate_index = if running { next_index } else { 0 };
            next_index += usize::from(running);
            containers.push(Container {
                meta: c,
                stats: s,
                running,
                rate_index,
                reset_at: None,
            });
        }
        let source = containers.iter().find(|c| c.running).cloned();
        let shared_networks = source
            .as_ref()
            .map_or(Value::Null, |c| c.stats["networks"].clone());
        Ok(Task {
            meta,
            containers,
            source,
            shared_networks,
            shared_network: p.shared_network,
            shared_net_reset_at: None,
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
        let is_app = |c: &Container| c.running && c.meta["Type"] != "CNI_PAUSE";
        if let Some(pos) = self.containers.iter().rposition(is_app) {
            let gone = self.containers.remove(pos);
            log::info!("container_change: removed {}", gone.meta["Name"]);
        }
        self.changes += 1;
        let name = match self.changes {
            1 => "late-joiner".to_string(),
            k => format!("late-joiner-{k}"),
        };
        let index = self.next_index;
        self.next_index += 1;
        if let Some(mut c) = self.clone_source(&name, index) {
            c.reset_at = Some(now); // a new container: its counters start small
            self.containers.push(c);
            log::info!("container_change: added {name}");
        }
    }

    /// `counter_reset`: the first running container restarts (same DockerId).
    pub fn reset_counters(&mut self, now: f64) {
        self.resets += 1;
        if let Some(c) = self.containers.iter_mut().find(|c| c.running) {
            c.reset_at = Some(now);
            log::info!("counter_reset: {}", c.meta["Name"]);
        }
        if self.shared_network {
            self.shared_net_reset_at = Some(now);
        }
    }

    pub fn task_json(&self) -> Value {
        let mut task = self.meta.clone();
        let list = self.containers.iter().map(|c| c.meta.clone()).collect();
        task["Containers"] = Value::Array(list);
        task
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
        if let Some(s) = c.stats.as_object_mut() {
            let slash = if s["name"].as_str().is_some_and(|n| n.starts_with('/')) {
                "/"
            } else {
                ""
            };
            s.insert("name".into(), format!("{slash}{docker_name}").into());
            s.insert("id".into(), id.into());
        }
        c.rate_index = index;
        c.reset_at = None;
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
