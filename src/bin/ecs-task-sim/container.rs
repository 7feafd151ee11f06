//! One container of the simulated task, typed. The fields that the simulator reads or changes
//! (names and ids, statuses, times, exit code, health, restart count, ARN, labels) are typed;
//! the fixture's other fields (image, limits, networks, ...) ride along as they are. Read from a
//! fixture and written back as JSON here, in one place: its `/task` object and its
//! `/control/state` row. A copy under a new name (a clone, a late joiner) gets its ids here too.
//! It leaves out what happens to a container (`task.rs`) and what its counters read
//! (`counters.rs`).
//!
//! A container samples (has live stats) unless its `KnownStatus` is `STOPPED`: so the pause
//! container (`Type` `CNI_PAUSE`, `RESOURCES_PROVISIONED`) samples too.

use crate::clock::At;
use serde_json::{Map, Value, json};

/// When a container's (or the shared ENI's) counters last started. What a counter reads from
/// each origin: `counters.rs`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Origin {
    /// From the template values, growing since `t = −I`.
    Template,
    /// From a thousandth of the template values at this sample time.
    Reset(f64),
    /// From 0 at this sample time.
    Zero(f64),
}

/// `KnownStatus` and `DesiredStatus`, as the profiles have them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Status {
    Running,
    Stopped,
    ResourcesProvisioned,
}

impl Status {
    /// The endpoint's spelling.
    pub fn ecs(self) -> &'static str {
        match self {
            Status::Running => "RUNNING",
            Status::Stopped => "STOPPED",
            Status::ResourcesProvisioned => "RESOURCES_PROVISIONED",
        }
    }

    fn from_ecs(s: &str) -> Option<Status> {
        [
            Status::Running,
            Status::Stopped,
            Status::ResourcesProvisioned,
        ]
        .into_iter()
        .find(|status| status.ecs() == s)
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

    fn from_ecs(s: &str) -> Option<Health> {
        [Health::Healthy, Health::Unhealthy, Health::Unknown]
            .into_iter()
            .find(|health| health.ecs() == s)
    }
}

/// `Health`: `{"status": S, "statusSince": T}`.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthCheck {
    pub status: Health,
    pub since: String,
}

/// One container of the simulated task.
#[derive(Clone, Debug)]
pub struct Container {
    pub name: String,
    pub docker_id: String,
    pub docker_name: String,
    /// `Type`: `NORMAL`, or `CNI_PAUSE` for the task's pause container.
    kind: String,
    pub known_status: Status,
    pub desired_status: Status,
    pub restart_count: u64,
    pub created_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub exit_code: Option<i64>,
    pub health: Option<HealthCheck>,
    arn: Option<String>,
    labels: Option<Map<String, Value>>,
    /// The fixture's other fields, served as they are.
    other: Map<String, Value>,
    /// Template stats; `None` for a template container that never ran.
    pub stats: Option<Map<String, Value>>,
    /// Selects the container's CPU rate, so containers differ.
    pub rate_index: usize,
    /// When its counters last started.
    pub origin: Origin,
}

impl Container {
    /// A fixture's container object with its fixture stats (an empty or `null` one: it never
    /// ran), rate index 0. `RestartCount` is 0 when the fixture has none.
    pub fn from_fixture(object: Value, stats: Value) -> Result<Container, String> {
        let Value::Object(mut m) = object else {
            return Err(format!("a container that is no object: {object}"));
        };
        let text = |v: &Value| v.as_str().map(String::from);
        let status = |v: &Value| v.as_str().and_then(Status::from_ecs);
        let name = take(&mut m, "Name", text)?.ok_or("a container without a Name")?;
        let need = |key: &str| format!("container {name:?} has no {key}");
        let health = |v: &Value| {
            let status = Health::from_ecs(v["status"].as_str()?)?;
            let since = v["statusSince"].as_str()?.to_string();
            (v.as_object()?.len() == 2).then_some(HealthCheck { status, since })
        };
        Ok(Container {
            docker_id: take(&mut m, "DockerId", text)?.ok_or_else(|| need("DockerId"))?,
            docker_name: take(&mut m, "DockerName", text)?.ok_or_else(|| need("DockerName"))?,
            kind: take(&mut m, "Type", text)?.ok_or_else(|| need("Type"))?,
            known_status: take(&mut m, "KnownStatus", status)?
                .ok_or_else(|| need("KnownStatus"))?,
            desired_status: take(&mut m, "DesiredStatus", status)?
                .ok_or_else(|| need("DesiredStatus"))?,
            restart_count: take(&mut m, "RestartCount", Value::as_u64)?.unwrap_or(0),
            created_at: take(&mut m, "CreatedAt", text)?,
            started_at: take(&mut m, "StartedAt", text)?,
            finished_at: take(&mut m, "FinishedAt", text)?,
            exit_code: take(&mut m, "ExitCode", Value::as_i64)?,
            health: take(&mut m, "Health", health)?,
            arn: take(&mut m, "ContainerARN", text)?,
            labels: take(&mut m, "Labels", |v| v.as_object().cloned())?,
            other: m,
            stats: match stats {
                Value::Object(s) if !s.is_empty() => Some(s),
                _ => None,
            },
            rate_index: 0,
            origin: Origin::Template,
            name,
        })
    }

    /// Its object in `/task` `Containers`.
    pub fn to_json(&self) -> Value {
        let mut m = self.other.clone();
        let mut put = |key: &str, v: Value| {
            m.insert(key.into(), v);
        };
        put("Name", self.name.as_str().into());
        put("DockerId", self.docker_id.as_str().into());
        put("DockerName", self.docker_name.as_str().into());
        put("Type", self.kind.as_str().into());
        put("KnownStatus", self.known_status.ecs().into());
        put("DesiredStatus", self.desired_status.ecs().into());
        put("RestartCount", self.restart_count.into());
        let texts = [
            ("CreatedAt", &self.created_at),
            ("StartedAt", &self.started_at),
            ("FinishedAt", &self.finished_at),
            ("ContainerARN", &self.arn),
        ];
        for (key, v) in texts {
            if let Some(v) = v {
                put(key, v.as_str().into());
            }
        }
        if let Some(code) = self.exit_code {
            put("ExitCode", code.into());
        }
        if let Some(h) = &self.health {
            put(
                "Health",
                json!({"status": h.status.ecs(), "statusSince": h.since}),
            );
        }
        if let Some(labels) = &self.labels {
            put("Labels", Value::Object(labels.clone()));
        }
        Value::Object(m)
    }

    /// Its row in `/control/state`.
    pub fn summary(&self) -> Value {
        json!({
            "name": self.name,
            "docker_id": self.docker_id,
            "known_status": self.known_status.ecs(),
            "restart_count": self.restart_count,
            "health": self.health.as_ref().map(|h| h.status.ecs()),
            "exit_code": self.exit_code,
        })
    }

    /// Whether it samples: anything but `STOPPED`.
    pub fn running(&self) -> bool {
        self.known_status != Status::Stopped
    }

    pub fn is_pause(&self) -> bool {
        self.kind == "CNI_PAUSE"
    }

    /// Both statuses.
    pub fn set_status(&mut self, status: Status) {
        self.known_status = status;
        self.desired_status = status;
    }

    /// It runs from `at`: `RUNNING`, `StartedAt`, its health check and counters start again.
    pub fn starts(&mut self, at: &At) {
        self.set_status(Status::Running);
        self.started_at = Some(at.stamp.clone());
        self.health_restarts(&at.stamp);
        self.origin = Origin::Zero(at.t);
    }

    /// A health check that has just (re)started: `UNKNOWN` since `stamp`.
    pub fn health_restarts(&mut self, stamp: &str) {
        if let Some(h) = &mut self.health {
            *h = HealthCheck {
                status: Health::Unknown,
                since: stamp.into(),
            };
        }
    }

    /// A copy named `name` with DockerId `id`, rate index `index` and counters from its
    /// template: its `DockerName`, container-name label, ARN and stats follow.
    pub fn renamed(&self, name: &str, id: &str, index: usize) -> Container {
        let mut c = self.clone();
        c.docker_name = if self.docker_name == self.name {
            name.to_string()
        } else if let Some(pos) = self.docker_name.rfind(&format!("-{}-", self.name)) {
            let (before, rest) = (
                &self.docker_name[..pos],
                &self.docker_name[pos + self.name.len() + 2..],
            );
            format!("{before}-{name}-{rest}")
        } else {
            format!("{}-{name}", self.docker_name)
        };
        c.name = name.into();
        c.docker_id = id.into();
        if let Some(labels) = &mut c.labels {
            labels.insert("com.amazonaws.ecs.container-name".into(), name.into());
        }
        if let Some(arn) = &mut c.arn {
            let prefix = arn.rsplit_once('/').map_or(arn.as_str(), |(p, _)| p);
            let uuid = format!("{:08x}-5151-4000-8000-{index:012x}", hash(id, 0) as u32);
            *arn = format!("{prefix}/{uuid}");
        }
        if let Some(stats) = c.stats.take() {
            c.take_stats(stats);
        }
        c.rate_index = index;
        c.origin = Origin::Template;
        c
    }

    /// Stats `stats` as its own: their `name` (keeping a leading `/`, if any) and `id` are its.
    pub fn take_stats(&mut self, mut stats: Map<String, Value>) {
        let slash = match stats.get("name").and_then(Value::as_str) {
            Some(n) if n.starts_with('/') => "/",
            _ => "",
        };
        stats.insert("name".into(), format!("{slash}{}", self.docker_name).into());
        stats.insert("id".into(), self.docker_id.as_str().into());
        self.stats = Some(stats);
    }
}

/// Takes `key` out of `m`, read by `read`: `None` when absent, an error when unreadable.
fn take<T>(
    m: &mut Map<String, Value>,
    key: &str,
    read: impl Fn(&Value) -> Option<T>,
) -> Result<Option<T>, String> {
    m.remove(key)
        .map(|v| read(&v).ok_or_else(|| format!("{key}: unexpected {v}")))
        .transpose()
}

/// A fresh DockerId of the same form as `template`, not `taken`: Fargate's
/// `<task id>-<digits>`, else Docker's 64 hex digits.
pub fn fresh_docker_id(template: &str, index: usize, taken: impl Fn(&str) -> bool) -> String {
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
        if id != template && !taken(&id) {
            return id;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn container(name: &str, docker_name: &str, id: &str) -> Container {
        let object = json!({
            "Name": name, "DockerName": docker_name, "DockerId": id, "Type": "NORMAL",
            "KnownStatus": "RUNNING", "DesiredStatus": "RUNNING",
            "ContainerARN": "arn:aws:ecs:us-east-1:1:container/c/t/0123",
            "Labels": {"com.amazonaws.ecs.container-name": name},
        });
        let stats = json!({"name": format!("/{docker_name}"), "id": id, "cpu_stats": {}});
        Container::from_fixture(object, stats).expect("a container")
    }

    #[test]
    fn a_copy_takes_the_new_name_wherever_the_old_one_stood() {
        for (docker_name, want) in [
            ("web", "late"),
            (
                "ecs-family-3-web-9c9ab8aeb0",
                "ecs-family-3-late-9c9ab8aeb0",
            ),
            ("other", "other-late"),
        ] {
            let c = container("web", docker_name, "t-123").renamed("late", "t-456", 7);
            assert_eq!(
                (
                    c.name.as_str(),
                    c.docker_name.as_str(),
                    c.docker_id.as_str()
                ),
                ("late", want, "t-456")
            );
            let m = c.to_json();
            assert_eq!(m["Labels"]["com.amazonaws.ecs.container-name"], "late");
            let arn = m["ContainerARN"].as_str().expect("an ARN");
            assert!(
                arn.starts_with("arn:aws:ecs:us-east-1:1:container/c/t/"),
                "{arn}"
            );
            assert!(arn.ends_with("-000000000007"), "{arn}");
            let stats = c.stats.as_ref().expect("stats");
            assert_eq!(stats["name"], format!("/{want}").as_str());
            assert_eq!(stats["id"], "t-456");
            assert_eq!((c.rate_index, c.origin), (7, Origin::Template));
        }
    }

    #[test]
    fn fresh_docker_ids_keep_their_templates_form_and_avoid_taken_ones() {
        let fargate = fresh_docker_id("bae32def-1585788040", 1, |_| false);
        let digits = fargate.strip_prefix("bae32def-").expect("the task id");
        assert_eq!(digits.len(), 10);
        assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{fargate}");
        let template = "a".repeat(64);
        let docker = fresh_docker_id(&template, 1, |_| false);
        assert_eq!(docker.len(), 64);
        assert!(docker.bytes().all(|b| b.is_ascii_hexdigit()), "{docker}");
        assert_ne!(docker, template);
        let next = fresh_docker_id(&template, 1, |id| id == docker);
        assert_ne!(next, docker);
    }

    #[test]
    fn a_fixture_container_without_its_ids_or_with_an_unknown_status_is_refused() {
        let mut object = container("web", "web", "t-1").to_json();
        object["KnownStatus"] = "PENDING".into();
        let e = Container::from_fixture(object.clone(), Value::Null).expect_err("a status");
        assert!(e.contains("KnownStatus"), "{e}");
        if let Some(m) = object.as_object_mut() {
            m.remove("DockerId");
            m.insert("KnownStatus".into(), "RUNNING".into());
        }
        let e = Container::from_fixture(object, Value::Null).expect_err("no id");
        assert_eq!(e, "container \"web\" has no DockerId");
    }
}
