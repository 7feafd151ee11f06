//! The pure core: the endpoint's JSON in, metrics and their text out. No sockets, threads,
//! clock, environment or logging here; everything is a function of its arguments and is tested
//! directly on real payloads.
//!
//! - [`payload`]: the Task Metadata Endpoint's JSON into plain types (the one file that reads
//!   JSON), and [`docker`]: the Docker Engine API's JSON into the same types.
//! - [`compute`]: two polls → a [`snapshot::Snapshot`], every formula of SPEC §3.
//! - [`filter`]: the family filters (allowlist or denylist) every output obeys.
//! - [`health`]: the exporter's own state and families; [`version`]: what this binary is.
//! - [`exposition`]: Prometheus text 0.0.4 and OpenMetrics 1.0.0; [`dogstatsd`]: 2.x StatsD
//!   lines packed into datagrams.
//! - [`sigv4`] (remote write): AWS Signature Version 4 for one request, and the credentials
//!   the ECS endpoint answers.

pub mod compute;
pub mod docker;
pub mod dogstatsd;
pub mod exposition;
pub mod filter;
pub mod health;
pub mod payload;
#[cfg(feature = "remote-write")]
pub mod remote_write;
pub mod rfc3339;
#[cfg(feature = "remote-write")]
pub mod sigv4;
pub mod snapshot;
pub mod version;
