//! ecs-container-exporter: per-container CPU, memory, disk and network metrics of an Amazon ECS
//! task, read from the Task Metadata Endpoint v4 and served to Prometheus (and DogStatsD).
//!
//! The pure core turns the endpoint's JSON into numbers and text; it has no sockets, threads,
//! clock, environment or logging, and is tested on real payloads:
//! [`payload`] (JSON → plain types), [`compute`] (two polls → a [`snapshot::Snapshot`]),
//! [`exposition`] (Prometheus text and OpenMetrics), [`dogstatsd`] (lines and datagrams).
//!
//! The thin shell around it: [`config`] (flags and environment), [`metadata`] (the HTTP client),
//! [`docker`] (plain Docker hosts: the Docker Engine API as a second source, `--docker`),
//! [`poller`] (the polling thread), [`state`] (what threads share), [`server`] (`/metrics`),
//! [`statsd`] (the UDP sender), [`version`] (what `--version` says). `main.rs` wires them and
//! waits for a signal.
//!
//! House rules: no `unsafe` in this crate (signal handling is signal-hook's), and no `unwrap` or
//! `expect` on anything that comes from outside.

#![deny(unsafe_code)]

pub mod compute;
pub mod config;
pub mod docker;
pub mod dogstatsd;
pub mod exposition;
pub mod metadata;
pub mod payload;
pub mod poller;
pub mod server;
pub mod snapshot;
pub mod state;
pub mod statsd;
pub mod version;
