//! Built-in profiles: real ECS fixture payloads used as templates, and how
//! ECS samples stats there. The simulated task built from them is `task.rs`.

/// A profile: a pair of fixture payloads plus how ECS samples stats there.
pub struct Profile {
    pub name: &'static str,
    /// The `/task` template (a fixture).
    pub task: &'static str,
    /// The `/task/stats` template (a fixture).
    pub stats: &'static str,
    /// Seconds between `preread` and `read`.
    pub interval_secs: f64,
    /// Default quantization of `read` (0 = every request is a new sample).
    pub refresh_secs: f64,
    /// awsvpc: every container reports the task ENI's (shared) counters.
    pub shared_network: bool,
    /// The container that has a health check (given a `Health` if the fixture has none).
    pub health_check: &'static str,
}

pub const PROFILES: [Profile; 4] = [
    Profile {
        name: "fargate",
        task: include_str!("../../../tests/fixtures/fargate-cgroupv1-task.json"),
        stats: include_str!("../../../tests/fixtures/fargate-cgroupv1-task-stats.json"),
        interval_secs: 10.0,
        refresh_secs: 10.0,
        shared_network: true,
        health_check: "ecs-exporter",
    },
    Profile {
        name: "ec2-bridge",
        task: include_str!("../../../tests/fixtures/ec2-bridge-cgroupv2-task.json"),
        stats: include_str!("../../../tests/fixtures/ec2-bridge-cgroupv2-task-stats.json"),
        interval_secs: 1.0,
        refresh_secs: 0.0,
        shared_network: false,
        health_check: "ecs-exporter",
    },
    Profile {
        name: "managed-instances",
        task: include_str!("../../../tests/fixtures/managed-instances-cgroupv2-task.json"),
        stats: include_str!("../../../tests/fixtures/managed-instances-cgroupv2-task-stats.json"),
        interval_secs: 10.0,
        refresh_secs: 0.0,
        shared_network: true,
        health_check: "main",
    },
    Profile {
        name: "ec2-awsvpc",
        task: include_str!("../../../tests/fixtures/ec2-awsvpc-cgroupv2-task.json"),
        stats: include_str!("../../../tests/fixtures/ec2-awsvpc-cgroupv2-task-stats.json"),
        interval_secs: 1.0,
        refresh_secs: 0.0,
        shared_network: true,
        health_check: "ecs-exporter",
    },
];

pub fn find(name: &str) -> Option<&'static Profile> {
    PROFILES.iter().find(|p| p.name == name)
}
