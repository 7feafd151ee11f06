//! Where a poll's task and stats come from: the ECS Task Metadata Endpoint ([`ecs`]) or, with
//! `--docker`, a Docker host's Engine API ([`docker`]), both over the one HTTP client
//! ([`client`]). Each source answers the same `(Task, Stats)` that `core::compute` takes.
//!
//! Out of scope: reading the JSON (`core`), when to poll (`poller`).

pub mod client;
pub mod docker;
pub mod ecs;
#[cfg(test)]
pub(crate) mod fake;

use crate::config::Origin;
use crate::core::health::Endpoint;
use crate::core::payload::{Stats, Task};

use client::FetchError;

/// A configured source.
pub enum Source {
    Ecs(ecs::Ecs),
    Docker(docker::Docker),
}

impl Source {
    pub fn new(origin: &Origin, timeout: std::time::Duration) -> Source {
        match origin {
            Origin::Ecs { metadata_url } => Source::Ecs(ecs::Ecs::new(metadata_url, timeout)),
            Origin::Docker { host } => Source::Docker(docker::Docker::new(host, timeout)),
        }
    }

    /// The task and its stats; a failure names the endpoint it is counted under (Docker: the
    /// container list and inspect calls count as `task`, the stats calls as `task_stats`).
    pub fn fetch(&mut self) -> Result<(Task, Stats), (Endpoint, FetchError)> {
        match self {
            Source::Ecs(ecs) => ecs.fetch(),
            Source::Docker(docker) => docker.fetch(),
        }
    }
}
