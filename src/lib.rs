//! ecs-container-exporter: per-container CPU, memory, disk and network metrics of an Amazon ECS
//! task, read from the Task Metadata Endpoint v4 and served to Prometheus (and DogStatsD).
//!
//! The folders tell the architecture:
//! - [`core`]: the pure core. The endpoint's JSON into plain types, two polls into a snapshot,
//!   the snapshot into Prometheus text and DogStatsD lines. No sockets, threads, clock,
//!   environment or logging; tested directly on real payloads.
//! - [`source`]: where samples come from: the ECS endpoint, or a Docker host's Engine API, over
//!   one HTTP client.
//! - [`serve`]: what the threads share, the bounded HTTP server and its pure router, the
//!   DogStatsD sender.
//! - [`config`] (flags and environment → a validated configuration) and [`poller`] (the loop:
//!   source → core → publish). `main.rs` wires them and waits for a signal.
//!
//! House rules: no `unsafe` in this crate (signal handling is signal-hook's; `unsafe_code` is
//! denied for every target by Cargo.toml's `[lints]`), and no `unwrap` or `expect` on anything
//! that comes from outside.

pub mod config;
pub mod core;
pub mod poller;
#[cfg(feature = "remote-write")]
pub mod push;
pub mod serve;
pub mod source;
