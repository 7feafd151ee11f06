//! The bounded queue between the pusher's two threads: the encoder appends one request per good
//! poll, the sender takes them oldest first. Full, it drops the oldest request that is not on
//! the wire (counted). On shutdown the encoder closes it with the last request (every series
//! stale), which the sender sends instead of whatever is still waiting.
//!
//! The queue keeps the `queue` gauge and the `dropped` count of [`RemoteWriteCounters`] current.
//!
//! Out of scope: encoding (`core::remote_write`), sending (`transport.rs`, `delivery.rs`).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::serve::state::RemoteWriteCounters;

/// One request: the compressed WriteRequest and how many samples it holds.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub id: u64,
    pub body: Vec<u8>,
    pub samples: u64,
}

/// What the sender gets from the queue.
#[derive(Debug)]
pub enum Take {
    /// The oldest request (it stays in the queue, marked on the wire, until `done`).
    Send(Arc<Request>),
    /// Shutdown: the last request to send, if there is one, by this instant.
    Close(Option<Arc<Request>>, Instant),
}

#[derive(Debug, Default)]
struct Inner {
    requests: VecDeque<Arc<Request>>,
    /// The id of the request being sent.
    on_wire: Option<u64>,
    next_id: u64,
    /// Set by `close`: the last request and the instant to send it by.
    closed: Option<(Option<Arc<Request>>, Instant)>,
}

/// Shared by the encoder and the sender.
#[derive(Debug)]
pub struct Queue {
    inner: Mutex<Inner>,
    changed: Condvar,
    capacity: usize,
    counters: Arc<RemoteWriteCounters>,
}

impl Queue {
    pub fn new(capacity: usize, counters: Arc<RemoteWriteCounters>) -> Queue {
        Queue {
            inner: Mutex::new(Inner::default()),
            changed: Condvar::new(),
            capacity: capacity.max(1),
            counters,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn counters(&self) -> &RemoteWriteCounters {
        &self.counters
    }

    /// Appends a request; when full, first drops the oldest one not on the wire.
    pub fn push(&self, body: Vec<u8>, samples: u64) {
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        if inner.requests.len() >= self.capacity {
            let oldest = match (inner.on_wire, inner.requests.front()) {
                (Some(wire), Some(front)) if front.id == wire => 1,
                _ => 0,
            };
            if inner.requests.remove(oldest).is_some() {
                self.counters().dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        inner
            .requests
            .push_back(Arc::new(Request { id, body, samples }));
        self.counters()
            .queue
            .store(inner.requests.len() as u64, Ordering::Relaxed);
        drop(inner);
        self.changed.notify_all();
    }

    /// Ends the queue: the sender sends `last` (if any) by `deadline` and stops.
    pub fn close(&self, last: Option<Vec<u8>>, samples: u64, deadline: Instant) {
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        let last = last.map(|body| Arc::new(Request { id, body, samples }));
        inner.closed = Some((last, deadline));
        drop(inner);
        self.changed.notify_all();
    }

    /// Waits for the oldest request, not before `not_before` when given (a backoff), or for
    /// the close, which does not wait.
    pub fn take(&self, not_before: Option<Instant>) -> Take {
        let mut inner = self.lock();
        loop {
            if let Some((last, deadline)) = &inner.closed {
                return Take::Close(last.clone(), *deadline);
            }
            let wait = not_before.map(|t| t.saturating_duration_since(Instant::now()));
            inner = match wait {
                Some(left) if !left.is_zero() => {
                    self.changed
                        .wait_timeout(inner, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                _ => {
                    if let Some(front) = inner.requests.front().cloned() {
                        inner.on_wire = Some(front.id);
                        return Take::Send(front);
                    }
                    self.changed
                        .wait(inner)
                        .unwrap_or_else(PoisonError::into_inner)
                }
            };
        }
    }

    /// The request is off the wire: `finished` (sent or dropped) removes it; otherwise it stays
    /// first, to be tried again.
    pub fn done(&self, request: &Request, finished: bool) {
        let mut inner = self.lock();
        inner.on_wire = None;
        if finished && inner.requests.front().is_some_and(|r| r.id == request.id) {
            inner.requests.pop_front();
        }
        self.counters()
            .queue
            .store(inner.requests.len() as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn queue(capacity: usize) -> (Queue, Arc<RemoteWriteCounters>) {
        let counters = Arc::new(RemoteWriteCounters::default());
        (Queue::new(capacity, Arc::clone(&counters)), counters)
    }

    fn body(request: &Take) -> Vec<u8> {
        match request {
            Take::Send(r) => r.body.clone(),
            other => panic!("expected a request, got {other:?}"),
        }
    }

    #[test]
    fn requests_come_out_oldest_first_and_leave_only_when_done() {
        let (q, counters) = queue(4);
        q.push(vec![1], 1);
        q.push(vec![2], 1);
        let first = q.take(None);
        assert_eq!(body(&first), [1]);
        let Take::Send(first) = first else {
            unreachable!()
        };
        q.done(&first, false);
        assert_eq!(body(&q.take(None)), [1], "a retried request stays first");
        q.done(&first, true);
        assert_eq!(body(&q.take(None)), [2]);
        assert_eq!(counters.queue.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts_it() {
        let (q, counters) = queue(2);
        for i in 1..=4u8 {
            q.push(vec![i], 1);
        }
        assert_eq!(counters.dropped.load(Ordering::Relaxed), 2);
        assert_eq!(body(&q.take(None)), [3]);
        assert_eq!(counters.queue.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_full_queue_never_drops_the_request_on_the_wire() {
        let (q, counters) = queue(2);
        q.push(vec![1], 1);
        q.push(vec![2], 1);
        let Take::Send(wire) = q.take(None) else {
            panic!("a request")
        };
        q.push(vec![3], 1);
        assert_eq!(counters.dropped.load(Ordering::Relaxed), 1);
        q.done(&wire, true);
        assert_eq!(body(&q.take(None)), [3], "2 was dropped, not 1 on the wire");
    }

    #[test]
    fn a_backoff_delays_the_next_take_and_the_close_ends_it_at_once() {
        let (q, _) = queue(2);
        q.push(vec![1], 1);
        let started = Instant::now();
        let not_before = started + Duration::from_millis(50);
        assert!(matches!(q.take(Some(not_before)), Take::Send(_)));
        assert!(started.elapsed() >= Duration::from_millis(50));
        let by = Instant::now() + Duration::from_secs(1);
        q.close(Some(vec![9]), 3, by);
        let far = Some(Instant::now() + Duration::from_secs(60));
        match q.take(far) {
            Take::Close(Some(last), deadline) => {
                assert_eq!(
                    (last.body.as_slice(), last.samples, deadline),
                    (&[9][..], 3, by)
                );
            }
            other => panic!("expected the close, got {other:?}"),
        }
    }

    #[test]
    fn a_request_pushed_while_the_sender_waits_wakes_it() {
        let (q, _) = queue(2);
        let q = Arc::new(q);
        let sender = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || body(&q.take(None)))
        };
        std::thread::sleep(Duration::from_millis(20));
        q.push(vec![7], 1);
        assert_eq!(sender.join().unwrap(), [7]);
    }
}
