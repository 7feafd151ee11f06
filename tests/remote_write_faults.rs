//! Remote write (SPEC §5 "Delivery") against a receiver that answers as the test says
//! (`common::receiver`): a 500 is retried with a growing backoff and then every poll arrives in
//! order; a 429's `Retry-After` is waited for; a 400 drops the request, is counted and logged
//! once; a receiver that hangs past `--remote-write-timeout` and one that closes the connection
//! in the middle of its answer are retried. Every request, whatever the answer, carries the
//! Remote-Write 1.0 headers and decodes (snappy, protobuf) to sorted, unique labels with `job`
//! and `instance`. Through all of it the exporter keeps polling and `/metrics` answers
//! ([`Watch`]).
#![cfg(feature = "remote-write")]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::push::{
    Look, PATIENCE, Watch, complaints, complaints_with, counted, counters, outcome, watched,
};
use common::receiver::{Answer, Received, Receiver, STALE_NAN_BITS};
use common::{Exporter, Sim};

struct Setup {
    _sim: Sim,
    receiver: Receiver,
    exporter: Exporter,
    watch: Watch,
}

/// A simulator, a receiver, the exporter pushing to it every second with `extra` arguments and
/// a watch on it; once the watch looks and the receiver accepted a request, `plan` is the
/// receiver's next answers.
fn start(plan: Vec<Answer>, extra: &[&str]) -> Setup {
    let sim = Sim::start(&["--profile", "ec2-bridge"]);
    let receiver = Receiver::start();
    let mut args = vec!["--interval", "1", "--remote-write-url", &receiver.url];
    args.extend(extra);
    let exporter = Exporter::start(&sim.url, &args, &[]);
    // The faults begin once the watch looks and a request was accepted (a busy machine can
    // take seconds to start the exporter, which pushes meanwhile).
    let watch = Watch::start(exporter.addr);
    watch.wait_polls(1);
    let (ok, _) = receiver.wait(PATIENCE, |r| r.iter().any(|r| r.answer.accepted()));
    assert!(ok, "no request accepted: {}", exporter.logs());
    receiver.plan(plan);
    Setup {
        _sim: sim,
        receiver,
        exporter,
        watch,
    }
}

/// The Remote-Write 1.0 request shape (SPEC §5 "Protocol").
fn check_protocol(r: &Received) {
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/api/v1/write")
    );
    let version = format!("ecs-container-exporter/{}", env!("CARGO_PKG_VERSION"));
    for (name, value) in [
        ("content-encoding", "snappy"),
        ("content-type", "application/x-protobuf"),
        ("x-prometheus-remote-write-version", "0.1.0"),
        ("user-agent", version.as_str()),
    ] {
        assert_eq!(r.header(name), Some(value), "{name} in {:?}", r.headers);
    }
    let series = r.decoded();
    assert!(!series.is_empty(), "an empty request");
    for s in series {
        let names: Vec<&str> = s.labels.iter().map(|(n, _)| n.as_str()).collect();
        assert!(
            names.windows(2).all(|w| w[0] < w[1]),
            "labels not sorted or repeated: {names:?}"
        );
        assert!(
            s.labels.iter().all(|(_, v)| !v.is_empty()),
            "{:?}",
            s.labels
        );
        assert!(!s.name().is_empty() && s.label("instance").is_some());
        assert_eq!(s.label("job"), Some("ecs-container-exporter"));
        assert_eq!(s.samples.len(), 1, "{:?}", s.labels);
    }
    // One timestamp for the poll's samples (none when every sample is a staleness marker).
    r.poll_ms();
}

/// The polls of the accepted requests: strictly increasing.
fn accepted_in_order(received: &[Received]) -> Vec<i64> {
    let polls: Vec<i64> = received
        .iter()
        .filter(|r| r.answer.accepted())
        .filter_map(Received::poll_ms)
        .collect();
    assert!(
        polls.windows(2).all(|w| w[1] > w[0]),
        "out of order: {polls:?}"
    );
    polls
}

/// Every poll the watch saw from the first accepted one to the last was accepted (`except` those
/// that were dropped), and the watch saw about one a second.
fn every_poll_arrived(looks: &[Look], received: &[Received], except: &[i64]) {
    let polls = accepted_in_order(received);
    let all = watched(looks);
    // The watch starts after the exporter's first polls, and may stop before its last.
    let first = polls[0].max(*all.first().expect("polls seen"));
    let last = polls[polls.len() - 1].min(*all.last().expect("polls seen"));
    let seen: BTreeSet<i64> = all.range(first..=last).copied().collect();
    let lost: Vec<&i64> = seen
        .iter()
        .filter(|p| !polls.contains(p) && !except.contains(p))
        .collect();
    assert!(lost.is_empty(), "polls lost: {lost:?} of {polls:?}");
    assert!(
        seen.len() as i64 >= (last - first) / 1000,
        "the watch saw {} polls in {} ms",
        seen.len(),
        last - first
    );
}

/// The accepted requests after the first one answered `answer`.
fn accepted_after(received: &[Received], answer: &Answer) -> usize {
    received
        .iter()
        .skip_while(|r| r.answer != *answer)
        .filter(|r| r.answer.accepted())
        .count()
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[test]
fn a_500_is_retried_with_a_growing_backoff_then_every_poll_arrives_in_order() {
    let failed = Answer::Status(500, vec![], "boom".into());
    let mut plan = vec![Answer::status(204); 2];
    plan.extend(vec![failed.clone(); 3]);
    let t = start(plan, &[]);
    let (ok, received) = t
        .receiver
        .wait(PATIENCE, |r| accepted_after(r, &failed) >= 5);
    assert!(ok, "{} requests\n{}", received.len(), t.exporter.logs());
    received.iter().for_each(check_protocol);

    // The request that failed is sent again as it was, after waits of 0.5-1, 1-2, 2-4 s.
    let first = received
        .iter()
        .position(|r| r.answer == failed)
        .expect("a 500");
    let tries = &received[first..first + 4];
    assert!(
        tries.iter().all(|r| r.body == tries[0].body),
        "not the same request"
    );
    assert!(tries[3].answer.accepted());
    let waits: Vec<f64> = tries.windows(2).map(|w| secs(w[1].at - w[0].at)).collect();
    for (wait, ceiling) in waits.iter().zip([1.0, 2.0, 4.0]) {
        assert!(
            *wait >= ceiling / 2.0 - 0.05 && *wait <= ceiling + 0.5,
            "waits {waits:?}"
        );
    }
    assert!(waits[2] > waits[0], "the backoff does not grow: {waits:?}");
    let polls = accepted_in_order(&received);

    let s = counted(&t.exporter, |s| outcome(s, "retried") >= 3.0);
    assert_eq!(counters(&s)[1..], [3.0, 0.0], "retried, dropped");
    // The samples counted are those of the first accepted requests (as many as were sent when
    // that poll rendered).
    let sent = outcome(&s, "sent") as usize;
    let accepted: Vec<&Received> = received.iter().filter(|r| r.answer.accepted()).collect();
    let samples: usize = accepted.iter().take(sent).map(|r| r.decoded().len()).sum();
    assert_eq!(
        s.value("ecs_exporter_remote_write_samples_sent_total", &[]),
        samples as f64,
        "{sent} requests sent"
    );
    let logs = t.exporter.logs();
    assert!(
        !complaints_with(&logs, &t.receiver.url, "500").is_empty(),
        "no line says 500:\n{logs}"
    );
    let looks = t.watch.finish();
    every_poll_arrived(&looks, &received, &[]);
    eprintln!(
        "waits {waits:?}; {} polls in order; {} looks at /metrics",
        polls.len(),
        looks.len()
    );
}

#[test]
fn a_429_is_retried_after_its_retry_after_seconds() {
    let slow_down = Answer::Status(429, vec![("Retry-After".into(), "3".into())], String::new());
    let t = start(vec![Answer::status(204), slow_down.clone()], &[]);
    let (ok, received) = t
        .receiver
        .wait(PATIENCE, |r| accepted_after(r, &slow_down) >= 3);
    assert!(ok, "{} requests\n{}", received.len(), t.exporter.logs());
    received.iter().for_each(check_protocol);
    let at = received
        .iter()
        .position(|r| r.answer == slow_down)
        .expect("a 429");
    let (refused, again) = (&received[at], &received[at + 1]);
    assert_eq!(again.body, refused.body, "not the same request");
    let wait = secs(again.at - refused.at);
    assert!((3.0..4.5).contains(&wait), "sent again after {wait} s");
    let s = counted(&t.exporter, |s| outcome(s, "retried") >= 1.0);
    assert_eq!(counters(&s)[1..], [1.0, 0.0], "retried, dropped");
    every_poll_arrived(&t.watch.finish(), &received, &[]);
    eprintln!("429 with Retry-After: 3, sent again after {wait:.3} s");
}

#[test]
fn a_400_is_dropped_counted_and_logged_once() {
    let refused = Answer::Status(400, vec![], "out of order sample".into());
    let mut plan = vec![Answer::status(204)];
    plan.extend(vec![refused.clone(); 4]);
    let t = start(plan, &[]);
    let (ok, received) = t
        .receiver
        .wait(PATIENCE, |r| accepted_after(r, &refused) >= 2);
    assert!(ok, "{} requests\n{}", received.len(), t.exporter.logs());
    received.iter().for_each(check_protocol);
    // Each 400 dropped its request: the next one is the next poll's.
    let polls: Vec<i64> = received.iter().filter_map(Received::poll_ms).collect();
    assert!(
        polls.windows(2).all(|w| w[1] > w[0]),
        "sent again: {polls:?}"
    );
    assert_eq!(
        received.iter().filter(|r| r.answer == refused).count(),
        4,
        "{polls:?}"
    );
    let s = counted(&t.exporter, |s| outcome(s, "dropped") >= 4.0);
    assert_eq!(counters(&s)[1..], [0.0, 4.0], "retried, dropped");
    let logs = t.exporter.logs();
    let said = complaints_with(&logs, &t.receiver.url, "400");
    assert_eq!(said.len(), 1, "lines naming 400:\n{logs}");
    let dropped: Vec<i64> = received
        .iter()
        .filter(|r| r.answer == refused)
        .filter_map(Received::poll_ms)
        .collect();
    every_poll_arrived(&t.watch.finish(), &received, &dropped);
    eprintln!("4 × 400, logged once: {}", said[0]);
}

#[test]
fn a_receiver_hanging_past_the_timeout_is_retried() {
    let hang = Answer::Hang(Duration::from_secs(5));
    let t = start(
        vec![Answer::status(204), hang.clone()],
        &["--remote-write-timeout", "1"],
    );
    let (ok, received) = t.receiver.wait(PATIENCE, |r| accepted_after(r, &hang) >= 3);
    assert!(ok, "{} requests\n{}", received.len(), t.exporter.logs());
    received.iter().for_each(check_protocol);
    let at = received
        .iter()
        .position(|r| r.answer == hang)
        .expect("a hang");
    let (hung, again) = (&received[at], &received[at + 1]);
    assert_eq!(again.body, hung.body, "not the same request");
    // Given up after 1 s, sent again after the first backoff (0.5-1 s).
    let wait = secs(again.at - hung.at);
    assert!((1.4..3.0).contains(&wait), "sent again after {wait} s");
    let s = counted(&t.exporter, |s| outcome(s, "retried") >= 1.0);
    assert_eq!(counters(&s)[1..], [1.0, 0.0], "retried, dropped");
    let logs = t.exporter.logs();
    assert!(
        complaints(&logs, &t.receiver.url)
            .iter()
            .any(|l| l.to_ascii_lowercase().contains("time")),
        "no line says the request timed out:\n{logs}"
    );
    every_poll_arrived(&t.watch.finish(), &received, &[]);
    eprintln!(
        "hang: sent again after {wait:.3} s; {:?}",
        complaints(&logs, &t.receiver.url)
    );
}

#[test]
fn a_connection_closed_mid_response_is_retried() {
    let cut = Answer::CloseMidResponse;
    let t = start(vec![Answer::status(204), cut.clone()], &[]);
    let (ok, received) = t.receiver.wait(PATIENCE, |r| accepted_after(r, &cut) >= 3);
    assert!(ok, "{} requests\n{}", received.len(), t.exporter.logs());
    received.iter().for_each(check_protocol);
    let at = received
        .iter()
        .position(|r| r.answer == cut)
        .expect("a cut");
    assert_eq!(
        received[at + 1].body,
        received[at].body,
        "not the same request"
    );
    assert!(received[at + 1].answer.accepted());
    let s = counted(&t.exporter, |s| outcome(s, "retried") >= 1.0);
    assert_eq!(counters(&s)[1..], [1.0, 0.0], "retried, dropped");
    let logs = t.exporter.logs();
    assert!(
        !complaints(&logs, &t.receiver.url).is_empty(),
        "no line names the receiver:\n{logs}"
    );
    every_poll_arrived(&t.watch.finish(), &received, &[]);
    eprintln!("cut: {:?}", complaints(&logs, &t.receiver.url));
}

#[test]
fn sigterm_sends_one_last_request_marking_every_series_stale() {
    let mut t = start(vec![], &[]);
    let (ok, _) = t.receiver.wait(PATIENCE, |r| r.len() >= 2);
    assert!(ok, "{}", t.exporter.logs());
    let (code, took) = t.exporter.terminate(Duration::from_secs(5));
    assert_eq!(code, Some(0), "{}", t.exporter.logs());
    assert!(took < Duration::from_secs(2), "exit after {took:?}");
    let received = t.receiver.received();
    received.iter().for_each(check_protocol);
    let (last, before) = (&received[received.len() - 1], &received[received.len() - 2]);
    let labels = |r: &Received| -> BTreeSet<Vec<(String, String)>> {
        r.decoded().iter().map(|s| s.labels.clone()).collect()
    };
    assert_eq!(
        labels(last),
        labels(before),
        "the last request marks every series"
    );
    let poll = before.poll_ms().expect("a poll");
    for s in last.decoded() {
        let [(value, at)] = s.samples[..] else {
            panic!("{:?}: {:?}", s.labels, s.samples)
        };
        assert_eq!(value.to_bits(), STALE_NAN_BITS, "{:?}", s.labels);
        assert!(at > poll, "{:?}: stale at {at}, last poll {poll}", s.labels);
    }
    eprintln!(
        "{} series marked stale; exit 0 after {took:?}",
        last.decoded().len()
    );
}

#[test]
fn sigterm_while_the_receiver_hangs_exits_0_within_the_timeout() {
    let mut plan = vec![Answer::status(204)];
    plan.extend(vec![Answer::Hang(Duration::from_secs(30)); 5]);
    let mut t = start(plan, &["--remote-write-timeout", "2"]);
    let hanging = |r: &[Received]| r.iter().any(|r| matches!(r.answer, Answer::Hang(_)));
    let (ok, _) = t.receiver.wait(PATIENCE, hanging);
    assert!(ok, "{}", t.exporter.logs());
    let (code, took) = t.exporter.terminate(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{}", t.exporter.logs());
    assert!(
        took < Duration::from_secs(3),
        "exit {took:?} after SIGTERM with a 2 s timeout"
    );
    eprintln!("exit 0 after {took:?} with the receiver hanging");
}
