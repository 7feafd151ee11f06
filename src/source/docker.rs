//! Plain Docker hosts (`--docker`): the Docker Engine API as a second source of the same
//! docker stats JSON.
//!
//! One poll is: `GET /containers/json` (the running containers, paused ones included), then for
//! each container `GET /containers/{id}/stats?stream=false&one-shot=false` (the daemon waits for a
//! second reading, about 1 s, so `precpu_stats` is real and the first poll already has a CPU
//! window) and, when not cached, `GET /containers/{id}/json` for its limits. Inspect results are
//! cached by container id, dropped when the container leaves the list, and refreshed every
//! [`REINSPECT_EVERY`] polls (so a `docker update` or a restart shows up eventually). The
//! per-container calls run on up to [`WORKERS`] threads at once, each with the whole `--timeout`.
//!
//! - Churn is not an error: a container that is gone between the list and its inspect or stats
//!   call (HTTP 404 or 409) is left out of this poll.
//! - Errors are counted under the ECS endpoint labels: the list and inspect calls as `task`, the
//!   stats calls as `task_stats`, with the reasons of `client.rs`.
//!
//! Left out: TLS (`DOCKER_TLS_VERIFY`, `https`), `ssh://` and `npipe://` hosts, stopped containers
//! (not listed), Windows containers, Podman/containerd without the Docker API, and reading stats
//! as a stream. The JSON is read by `core::docker`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use crate::config::DockerHost;
use crate::core::docker::{Inspect, assemble, parse_info, parse_inspect, parse_list, parse_stats};
use crate::core::health::{Endpoint, Reason};
use crate::core::payload::{Sample, Stats, Task};

use super::client::{Client, FetchError};

/// Polls after which a cached inspect result is fetched again.
pub const REINSPECT_EVERY: u32 = 10;

/// Containers whose inspect and stats calls run at the same time.
pub const WORKERS: usize = 16;

struct Cached {
    inspect: Inspect,
    /// Polls since it was fetched.
    age: u32,
}

/// What the per-container calls found: a fresh inspect result (when one was fetched) and the
/// stats reading, or `None` when the container went away (HTTP 404 or 409).
type Outcome = Option<(Option<Inspect>, Option<Sample>)>;

type Failure = (Endpoint, FetchError);

/// The Docker source of the poller: a client and the inspect cache.
pub struct Docker {
    client: Client,
    cache: HashMap<String, Cached>,
    /// The Engine's name (`/info`), asked until an answer gives one.
    host_name: Option<String>,
}

impl Docker {
    pub fn new(host: &DockerHost, timeout: Duration) -> Docker {
        if timeout < Duration::from_secs(2) {
            log::warn!(
                "--timeout {timeout:?} is short for Docker: a stats call waits about 1 s for its \
                 second reading"
            );
        }
        let client = match host {
            DockerHost::Unix(path) => Client::unix(path, timeout),
            DockerHost::Tcp(authority) => Client::http(&format!("http://{authority}"), timeout),
        };
        Docker {
            client,
            cache: HashMap::new(),
            host_name: None,
        }
    }

    /// One poll: the running containers, their limits and one stats reading each.
    pub fn fetch(&mut self) -> Result<(Task, Stats), Failure> {
        let list_path = "/containers/json";
        let body = self
            .client
            .get_ok(list_path)
            .map_err(|e| (Endpoint::Task, e))?;
        let listed = parse_list(&body)
            .map_err(|e| (Endpoint::Task, self.client.parse_error(list_path, e)))?;
        self.cache
            .retain(|id, _| listed.iter().any(|c| c.id == *id));

        let cache = &self.cache;
        let client = &self.client;
        let outcomes = parallel(&listed, WORKERS, |c| -> Result<Outcome, Failure> {
            let needs_inspect = cache.get(&c.id).is_none_or(|e| e.age >= REINSPECT_EVERY);
            let inspect = if needs_inspect {
                match get_container(
                    client,
                    &format!("/containers/{}/json", c.id),
                    Endpoint::Task,
                )? {
                    Some(body) => Some(parse_inspect(&body).map_err(|e| {
                        let path = format!("/containers/{}/json", c.id);
                        (Endpoint::Task, client.parse_error(&path, e))
                    })?),
                    None => return Ok(None),
                }
            } else {
                None
            };
            let path = format!("/containers/{}/stats?stream=false&one-shot=false", c.id);
            let Some(body) = get_container(client, &path, Endpoint::TaskStats)? else {
                return Ok(None);
            };
            // A container that stops while the daemon collects its second reading ends the
            // answer with no body at all: churn, like a 404.
            if body.iter().all(u8::is_ascii_whitespace) {
                log::debug!(
                    "GET {}: an empty answer, the container stopped",
                    client.url(&path)
                );
                return Ok(None);
            }
            let sample = parse_stats(&body)
                .map_err(|e| (Endpoint::TaskStats, client.parse_error(&path, e)))?;
            Ok(Some((inspect, sample)))
        });

        let mut present = Vec::with_capacity(listed.len());
        for (c, outcome) in listed.into_iter().zip(outcomes) {
            let outcome = outcome.unwrap_or_else(|| {
                Err((
                    Endpoint::TaskStats,
                    FetchError {
                        reason: Reason::Io,
                        detail: format!("container {}: its worker thread failed", c.name),
                    },
                ))
            })?;
            match outcome {
                None => {
                    self.cache.remove(&c.id);
                }
                Some((inspect, sample)) => present.push((c, inspect, sample)),
            }
        }
        let mut entries = Vec::with_capacity(present.len());
        for (c, fresh, sample) in present {
            let inspect = match fresh {
                Some(inspect) => {
                    self.cache.insert(
                        c.id.clone(),
                        Cached {
                            inspect: inspect.clone(),
                            age: 0,
                        },
                    );
                    inspect
                }
                None => match self.cache.get_mut(&c.id) {
                    Some(cached) => {
                        cached.age = cached.age.saturating_add(1);
                        cached.inspect.clone()
                    }
                    None => Inspect::default(),
                },
            };
            entries.push((c, inspect, sample));
        }
        let (mut task, stats) = assemble(entries);
        task.host_name = self.host_name().to_owned();
        Ok((task, stats))
    }

    /// The Engine's name, asked once (again after a failure: it only labels pushed series).
    fn host_name(&mut self) -> &str {
        if self.host_name.is_none() {
            match self.client.get_ok("/info").map(|body| parse_info(&body)) {
                Ok(Ok(name)) => self.host_name = Some(name),
                Ok(Err(e)) => log::debug!("GET /info: {e}"),
                Err(e) => log::debug!("GET /info: {e}"),
            }
        }
        self.host_name.as_deref().unwrap_or("")
    }
}

/// Runs `f` on every item with up to `workers` threads (this one included); results in item
/// order, `None` where a worker died. A thread that cannot be spawned just means fewer workers.
fn parallel<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<Option<R>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    let work = || {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            let r = f(item);
            let mut results = results.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(slot) = results.get_mut(i) {
                *slot = Some(r);
            }
        }
    };
    thread::scope(|s| {
        for _ in 1..workers.min(items.len()) {
            if thread::Builder::new()
                .name("docker".into())
                .spawn_scoped(s, work)
                .is_err()
            {
                break;
            }
        }
        work();
    });
    results.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// GETs a per-container path: `None` when the container is gone (404, 409).
fn get_container(
    client: &Client,
    path: &str,
    endpoint: Endpoint,
) -> Result<Option<Vec<u8>>, Failure> {
    let response = client.get(path).map_err(|e| (endpoint, e))?;
    match response.status {
        200 => Ok(Some(response.body)),
        404 | 409 => {
            log::debug!(
                "GET {}: HTTP {}, the container is gone",
                client.url(path),
                response.status
            );
            Ok(None)
        }
        _ => Err((endpoint, client.status_error(path, &response))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::{self, Fake};
    use super::*;
    use std::sync::Arc;

    type Routes = Arc<Mutex<HashMap<String, (u16, String)>>>;

    const INSPECT: &str = r#"{"HostConfig": {"NanoCpus": 500000000, "Memory": 33554432}}"#;
    const STATS: &str = r#"{"read": "2026-11-25T16:47:17.005230448Z",
      "cpu_stats": {"cpu_usage": {"total_usage": 711397941}, "online_cpus": 2}}"#;
    const STOPPED_STATS: &str = r#"{"read": "0001-01-01T00:00:00Z"}"#;

    #[test]
    fn parallel_keeps_item_order() {
        let items: Vec<u32> = (0..50).collect();
        let out = parallel(&items, 7, |i| i * 2);
        assert_eq!(out, (0..50).map(|i| Some(i * 2)).collect::<Vec<_>>());
        assert!(parallel(&[] as &[u32], 7, |i| *i).is_empty());
    }

    #[test]
    fn polls_follow_churn_and_cache_inspect_results() {
        let routes: Routes = Arc::new(Mutex::new(HashMap::new()));
        let table = Arc::clone(&routes);
        let engine = Fake::unix(move |target| {
            let routes = table.lock().unwrap();
            let (status, body) = routes
                .get(target)
                .cloned()
                .unwrap_or((404, r#"{"message":"No such container"}"#.to_owned()));
            Some(fake::json(status, &body))
        });
        let route = |target: &str, status: u16, body: &str| {
            routes
                .lock()
                .unwrap()
                .insert(target.to_owned(), (status, body.to_owned()));
        };
        let entry = |id: &str, name: &str| {
            format!(
                r#"{{"Id": "{id}", "Names": ["/{name}"], "Image": "img", "State": "running", "Status": "Up"}}"#
            )
        };
        let stats = |id: &str| format!("/containers/{id}/stats?stream=false&one-shot=false");
        let inspect = |id: &str| format!("/containers/{id}/json");
        route(
            "/containers/json",
            200,
            &format!("[{}, {}]", entry("aa", "a"), entry("bb", "b")),
        );
        route(&inspect("aa"), 200, INSPECT);
        route(&stats("aa"), 200, STATS);
        route(
            "/info",
            200,
            r#"{"Name": "docker-host-1", "Containers": 2}"#,
        );
        // `bb` is gone between the list and its inspect: skipped, not an error.
        let host = DockerHost::Unix(engine.socket.clone().unwrap());
        let mut docker = Docker::new(&host, Duration::from_secs(5));

        let (task, stats_map) = docker.fetch().unwrap();
        let names: Vec<&str> = task.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a"]);
        assert_eq!(task.containers[0].cpu_units, Some(512.0));
        assert!(stats_map["aa"].is_some());
        assert_eq!(
            task.host_name, "docker-host-1",
            "the instance of pushed series"
        );
        let mut asked = engine.targets();
        asked.sort();
        assert_eq!(
            asked,
            [
                "/containers/aa/json",
                "/containers/aa/stats?stream=false&one-shot=false",
                "/containers/bb/json",
                "/containers/json",
                "/info"
            ]
        );

        // Cached: no inspect for `aa` until REINSPECT_EVERY polls have passed.
        for _ in 0..REINSPECT_EVERY {
            docker.fetch().unwrap();
            assert!(!engine.targets().contains(&inspect("aa")));
        }
        let (task, _) = docker.fetch().unwrap();
        assert_eq!(task.containers.len(), 1);
        assert!(engine.targets().contains(&inspect("aa")));

        // A newcomer is inspected; the stats of a container that stops in between are `None`.
        route(
            "/containers/json",
            200,
            &format!("[{}, {}]", entry("aa", "a"), entry("cc", "c")),
        );
        route(
            &inspect("cc"),
            200,
            r#"{"HostConfig": {"Memory": 1048576}}"#,
        );
        route(&stats("cc"), 200, STOPPED_STATS);
        let (task, stats_map) = docker.fetch().unwrap();
        assert_eq!(task.containers[1].memory_mib, Some(1.0));
        assert_eq!(stats_map["cc"], None);
        let asked = engine.targets();
        assert!(asked.contains(&inspect("cc")) && !asked.contains(&inspect("aa")));

        // `aa` leaves and comes back: its cache entry was dropped, so it is inspected again.
        route("/containers/json", 200, &format!("[{}]", entry("cc", "c")));
        docker.fetch().unwrap();
        route(
            "/containers/json",
            200,
            &format!("[{}, {}]", entry("aa", "a"), entry("cc", "c")),
        );
        engine.targets();
        docker.fetch().unwrap();
        assert!(engine.targets().contains(&inspect("aa")));

        // A container that stops during its stats call: the daemon answers 200 with no body.
        route(&stats("aa"), 200, "");
        let (task, _) = docker.fetch().unwrap();
        let names: Vec<&str> = task.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["c"], "left out of this poll, not an error");
        route(&stats("aa"), 200, STATS);

        // Failures and the endpoints they are counted under.
        route(&stats("aa"), 500, r#"{"message":"boom"}"#);
        let (endpoint, e) = docker.fetch().unwrap_err();
        assert_eq!((endpoint, e.reason), (Endpoint::TaskStats, Reason::Status));
        route(&stats("aa"), 200, "{not json");
        let (endpoint, e) = docker.fetch().unwrap_err();
        assert_eq!((endpoint, e.reason), (Endpoint::TaskStats, Reason::Parse));
        route("/containers/json", 200, "{}");
        let (endpoint, e) = docker.fetch().unwrap_err();
        assert_eq!((endpoint, e.reason), (Endpoint::Task, Reason::Parse));
        route("/containers/json", 500, r#"{"message":"boom"}"#);
        let (endpoint, e) = docker.fetch().unwrap_err();
        assert_eq!((endpoint, e.reason), (Endpoint::Task, Reason::Status));
        assert!(e.detail.contains("boom"), "{e}");
        route("/containers/json", 200, "[]");
        let (task, stats_map) = docker.fetch().unwrap();
        assert!(task.containers.is_empty() && stats_map.is_empty());
    }
}
