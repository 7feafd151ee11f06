//! The DogStatsD sender thread: waits for each publication of the poller and, after a good poll,
//! sends the snapshot's lines over UDP.
//!
//! The host is resolved at every send, so a receiver that appears later (or moves) is found. The
//! socket is connected to the receiver so that an ICMP "port unreachable" comes back as an error
//! on a later send instead of vanishing. No failure stops the exporter or touches `/metrics`:
//! each is counted in `ecs_exporter_statsd_errors_total`, logged at debug, and at info once per
//! kind per minute.
//!
//! The error count is read by the poller when it renders, so `/metrics` shows it from the next
//! poll on. A send slower than the interval skips to the latest publication.
//!
//! Out of scope: the line format and packing (`core::dogstatsd`).

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::config::StatsdTarget;
use crate::core::dogstatsd;
use crate::core::snapshot::Snapshot;

use super::state::State;

/// Starts the sender thread.
pub fn spawn(target: StatsdTarget, state: Arc<State>) -> io::Result<()> {
    thread::Builder::new()
        .name("statsd".into())
        .spawn(move || {
            let mut sender = Sender {
                target,
                socket: None,
                last_info: HashMap::new(),
            };
            let mut seen = 0;
            while let Some((number, publication)) = state.next_after(seen) {
                seen = number;
                if let Some(poll) = &publication.poll {
                    sender.send(&poll.snapshot, &state);
                }
            }
        })?;
    Ok(())
}

struct Sender {
    target: StatsdTarget,
    socket: Option<(SocketAddr, UdpSocket)>,
    last_info: HashMap<&'static str, Instant>,
}

impl Sender {
    fn send(&mut self, snapshot: &Snapshot, state: &State) {
        let datagrams = dogstatsd::pack(&dogstatsd::lines(snapshot), dogstatsd::MAX_DATAGRAM);
        let socket = match self.socket_for_target() {
            Ok(s) => s,
            Err((kind, e)) => {
                state.count_statsd_error();
                self.report(kind, &e);
                return;
            }
        };
        let mut failure = None;
        for datagram in &datagrams {
            if let Err(e) = socket.send(datagram) {
                state.count_statsd_error();
                failure.get_or_insert(e);
            }
        }
        if let Some(e) = failure {
            let kind = if e.kind() == io::ErrorKind::ConnectionRefused {
                "refused"
            } else {
                "send"
            };
            self.report(kind, &e.to_string());
        }
    }

    /// A socket connected to the target's current address.
    fn socket_for_target(&mut self) -> Result<&UdpSocket, (&'static str, String)> {
        let host = self
            .target
            .host
            .trim_start_matches('[')
            .trim_end_matches(']');
        let addr = (host, self.target.port)
            .to_socket_addrs()
            .map_err(|e| {
                (
                    "resolve",
                    format!("cannot resolve {}: {e}", self.target.host),
                )
            })?
            .next()
            .ok_or_else(|| ("resolve", format!("{} has no address", self.target.host)))?;
        if self.socket.as_ref().is_none_or(|(a, _)| *a != addr) {
            let local: SocketAddr = if addr.is_ipv4() {
                (Ipv4Addr::UNSPECIFIED, 0).into()
            } else {
                (Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let socket = UdpSocket::bind(local)
                .and_then(|s| s.connect(addr).map(|()| s))
                .map_err(|e| ("socket", format!("cannot open a UDP socket to {addr}: {e}")))?;
            self.socket = Some((addr, socket));
        }
        match &self.socket {
            Some((_, s)) => Ok(s),
            None => Err(("socket", "no socket".to_owned())),
        }
    }

    fn report(&mut self, kind: &'static str, detail: &str) {
        let now = Instant::now();
        let due = self
            .last_info
            .get(kind)
            .is_none_or(|t| now.duration_since(*t) >= Duration::from_secs(60));
        if due {
            self.last_info.insert(kind, now);
            log::info!(
                "DogStatsD send failed ({kind}), counted in ecs_exporter_statsd_errors_total: {detail}"
            );
        } else {
            log::debug!("DogStatsD send failed ({kind}): {detail}");
        }
    }
}
