//! The ECS Task Metadata Endpoint v4: one poll is `GET <base>/task` then `GET <base>/task/stats`.
//!
//! A status other than 200, a body that is not the payload, or any transport failure fails the
//! poll; the error names the endpoint it is counted under.
//!
//! Out of scope: reading the bodies (`core::payload`), HTTP details (`client.rs`).

use std::time::Duration;

use crate::core::health::Endpoint;
use crate::core::payload::{self, Stats, Task};

use super::client::{Client, FetchError};

/// The endpoint at one base URL.
pub struct Ecs {
    client: Client,
}

impl Ecs {
    pub fn new(base: &str, timeout: Duration) -> Ecs {
        Ecs {
            client: Client::http(base, timeout),
        }
    }

    /// The task and its stats.
    pub fn fetch(&self) -> Result<(Task, Stats), (Endpoint, FetchError)> {
        let task = self
            .get("/task", payload::parse_task)
            .map_err(|e| (Endpoint::Task, e))?;
        let stats = self
            .get("/task/stats", payload::parse_stats)
            .map_err(|e| (Endpoint::TaskStats, e))?;
        Ok((task, stats))
    }

    fn get<T>(
        &self,
        path: &str,
        parse: fn(&[u8]) -> Result<T, payload::ParseError>,
    ) -> Result<T, FetchError> {
        let body = self.client.get_ok(path)?;
        parse(&body).map_err(|e| self.client.parse_error(path, e))
    }
}
