//! Serving what the poller publishes: [`state`] (what the threads share: the published bytes
//! and atomics), [`http`] (the bounded HTTP/1.1 server, generic over its handler), [`routes`]
//! (the pure handler: request + state → response), [`statsd`] (the DogStatsD sender thread).
//!
//! Out of scope: computing and rendering (`core`, called by the poller).

pub mod http;
pub mod routes;
pub mod state;
pub mod statsd;
