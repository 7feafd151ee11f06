//! The real binary under hostile clients, and its exit on SIGTERM/SIGINT: a few black-box smoke
//! tests. The server's bounds one by one (heads, bodies, garbage, the caps, the deadlines with
//! millisecond limits, stopping) are pinned in-process by `tests/http_server.rs`; here the
//! binary as shipped, with its real limits and threads.
//!
//! What is pinned (SPEC §2): 500 idle connections held open (slowloris), a trickling head and a
//! 1 MiB head do not stop a new client getting `/metrics` in under 50 ms, and hold no thread;
//! 3,000 connections opened and dropped leave it serving; threads stay 3 and resident memory
//! bounded, not growing; a connection flood past `--nofile=64` leaves it serving every scrape
//! once released; SIGTERM and SIGINT end the process with status 0 within 1 s, also while a poll
//! hangs on the endpoint, while idle connections are held and while an answer is being written
//! (which is finished first).
//!
//! Tests that load the machine or measure latency take one lock, so they do not measure each
//! other on a 2-core box. Numbers are printed (`--nocapture` shows them).

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use common::client::{
    closed_by_server, connect_and_drop, idle_connections, read_response, send, status_of, timed,
    trickle,
};
use common::process::proc_status;
use common::{EXPORTER, Exporter, Launch, Sim, http_get, parse_strict, runs, skip, wait_for};

const PATIENCE: Duration = Duration::from_secs(30);
/// Resident memory the exporter may reach under any of these tests.
const RSS_CEILING_KIB: u64 = 96 * 1024;
/// Connections the server lets wait for a head before closing the oldest (`Limits::default()`).
const WAITING: usize = 64;

/// Threads of an exporter without DogStatsD, under any load: main, the HTTP loop, the poller.
const BASE_THREADS: u64 = 3;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A simulated task (`sim_args` after the profile) and an exporter that has polled it.
fn start(sim_args: &[&str]) -> (Sim, Exporter) {
    let sim = [&["--profile", "ec2-bridge"], sim_args].concat();
    let (sim, exporter, _) = Launch::new()
        .args(&["--interval", "1", "--timeout", "20"])
        .task_until(&sim, PATIENCE, |s| {
            s.get("ecs_exporter_up", &[]) == Some(1.0)
        });
    (sim, exporter)
}

/// The soft limit on open files of this process (the exporter inherits the same).
fn fd_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

/// `wanted` connections, or fewer (with a note) when the fd limit would not allow them: each
/// side holds one descriptor per connection, plus some to spare.
fn connections_allowed(wanted: usize) -> usize {
    let limit = fd_limit();
    let usable = limit.saturating_sub(64) as usize;
    if usable < wanted {
        eprintln!("note: `ulimit -n` is {limit}; using {usable} connections instead of {wanted}");
        usable
    } else {
        wanted
    }
}

/// The exporter's own threads (main, the HTTP loop, the poller) once settled: (threads, rss).
fn settled(pid: u32) -> (u64, u64) {
    let deadline = Instant::now() + PATIENCE;
    let (threads, rss) = loop {
        let (threads, rss) = proc_status(pid);
        if threads <= BASE_THREADS || Instant::now() > deadline {
            break (threads, rss);
        }
        thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(threads, BASE_THREADS, "threads left over");
    (threads, rss)
}

/// `GET /metrics` answers 200 with a strictly valid exposition.
fn assert_serving(addr: SocketAddr, after: &str) {
    let (status, _, body) = http_get(addr, "/metrics", &[])
        .unwrap_or_else(|e| panic!("after {after}: /metrics failed: {e}"));
    assert_eq!(status, 200, "after {after}");
    parse_strict(&body).unwrap_or_else(|e| panic!("after {after}: {e}"));
    assert!(body.contains("ecs_exporter_up"), "after {after}");
}

fn assert_alive(exporter: &mut Exporter, after: &str) {
    assert!(exporter.alive(), "the exporter exited after {after}");
}

#[test]
fn idle_trickling_oversized_and_dropped_connections_hold_no_thread_and_delay_no_scrape() {
    let _serial = serial();
    let (_sim, mut exporter) = start(&[]);
    let (addr, pid) = (exporter.addr, exporter.child.id());
    let (threads0, rss0) = settled(pid);
    let n = connections_allowed(500);

    // Slowloris: every connection is accepted; the server keeps about the newest 64 waiting and
    // has closed the others.
    let idle = idle_connections(addr, n);
    let closed = || idle.iter().filter(|s| closed_by_server(s)).count();
    assert!(
        wait_for(PATIENCE, || closed() + WAITING + 16 >= n),
        "only {} of {n} idle connections were closed: {:?}",
        closed(),
        proc_status(pid)
    );
    // A head trickling in (the newest waiting connection, so the cap spares it) is not answered
    // and does not hold up a scrape; its 10 s deadline is pinned in-process.
    let trickling =
        thread::spawn(move || trickle(addr, Duration::from_millis(50), Duration::from_secs(1)));
    // Each a fresh `GET /metrics`, connect to last byte.
    let (median, all) = timed(7, || {
        let (status, _, body) = http_get(addr, "/metrics", &[]).expect("scrape");
        assert!(
            status == 200 && body.contains("ecs_exporter_up"),
            "{status}"
        );
    });
    let (threads1, rss1) = proc_status(pid);
    eprintln!(
        "slowloris: {n} idle connections and a trickle; new-client /metrics latency median {median:?}, all {all:?}"
    );
    // A loose bound against stalls: the figure itself (≤ 1 ms) is measured by `make bench`.
    assert!(
        median < Duration::from_millis(50),
        "median scrape latency {median:?} with {n} idle connections (all: {all:?})"
    );
    assert_eq!(threads1, threads0, "idle connections must hold no thread");
    assert!(rss1 < RSS_CEILING_KIB, "VmRSS {rss1} KiB");
    trickling.join().expect("the trickling head was answered");

    // Far over the head limit: 431 (or the reset of the unread rest eats the answer).
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nX-Pad: {}\r\n\r\n",
        "b".repeat(1 << 20)
    );
    let raw = send(addr, huge.as_bytes());
    assert!(
        matches!(status_of(&raw), Some(431) | None),
        "1 MiB head: {}",
        raw.escape_ascii()
    );
    drop(idle);
    let (threads2, rss2) = proc_status(pid);
    assert_eq!(threads2, threads0);
    assert!(rss2 < RSS_CEILING_KIB, "VmRSS {rss2} KiB");
    assert_serving(addr, "slowloris");

    // 3 rounds of 1,000 connections opened and dropped, some with part of a head or a whole one.
    let mut rss_after = Vec::new();
    let mut peak_threads = threads0;
    for round in 0..3 {
        for i in 0..1000 {
            connect_and_drop(addr, i);
            if i % 100 == 0 {
                peak_threads = peak_threads.max(proc_status(pid).0);
            }
        }
        assert_serving(addr, &format!("round {round} of 1000 connect-and-drop"));
        let (threads, rss) = proc_status(pid);
        assert_eq!(threads, threads0, "round {round}");
        rss_after.push(rss);
    }
    eprintln!(
        "threads {threads0} -> {threads1} -> {threads2} (connect-and-drop peak sampled {peak_threads}); \
         VmRSS {rss0} -> {rss1} -> {rss2} KiB, after each connect-and-drop round {rss_after:?} KiB"
    );
    assert_eq!(peak_threads, threads0, "a thread per connection");
    assert!(
        rss_after.iter().all(|&r| r < RSS_CEILING_KIB),
        "{rss_after:?}"
    );
    assert!(
        rss_after[2] <= rss_after[0] + 4 * 1024,
        "memory grows with every round: {rss_after:?}"
    );
    assert_alive(&mut exporter, "hostile connections");
    let logs = exporter.stop_and_logs();
    assert!(!logs.contains("panicked"), "{logs}");
}

// ---------------------------------------------------------------------------------------------
// Signals.

/// Makes the simulator hang on `/task` and waits until the poller is stuck in that call.
fn hang_the_poller(sim: &Sim) {
    let seen = sim.requests("task");
    sim.fault("kind=hang&endpoint=task&secs=60");
    assert!(
        wait_for(PATIENCE, || sim.requests("task") > seen),
        "the poller never called the endpoint again"
    );
    thread::sleep(Duration::from_millis(200)); // well inside the 60 s hang and 20 s timeout
}

/// Waits for the exit after SIG`signal` was sent at `sent` (printing how long it took, after
/// `what`): status 0 within 1 s, and the log says why it stopped.
fn assert_clean_exit(exporter: &mut Exporter, signal: &str, sent: Instant, what: &str) {
    let (code, took) = exporter.wait_exit(sent, Duration::from_secs(10));
    let logs = exporter.logs();
    eprintln!("{what}: exit {code:?} after {took:?}");
    assert_eq!(code, Some(0), "exit status after SIG{signal}:\n{logs}");
    assert!(
        took < Duration::from_secs(1),
        "SIG{signal}: exit took {took:?}"
    );
    assert!(
        logs.contains(&format!("SIG{signal} received, stopping")),
        "{logs}"
    );
}

#[test]
fn sigint_during_a_hanging_poll_exits_0_within_1s() {
    let _serial = serial();
    let (sim, mut exporter) = start(&[]);
    hang_the_poller(&sim);
    let sent = Instant::now();
    exporter.signal("INT");
    assert_clean_exit(&mut exporter, "INT", sent, "SIGINT during a hanging poll");
}

#[test]
fn sigterm_during_a_hanging_poll_with_idle_connections_finishes_the_answer_being_written_and_exits_0_within_1s()
 {
    // 1,000 containers: an exposition of megabytes, more than the sockets' buffers hold while the
    // client does not read, so the answer is still being written when SIGTERM arrives.
    let _serial = serial();
    let (sim, mut exporter) = start(&["--containers", "1000"]);
    let size = exporter.scrape_text().len();
    assert!(size > 2 << 20, "the exposition is only {size} bytes");
    hang_the_poller(&sim);
    let (addr, pid) = (exporter.addr, exporter.child.id());
    let n = connections_allowed(500);
    let idle = idle_connections(addr, n);
    // All accepted: the oldest waiting were closed, the newest wait.
    assert!(wait_for(PATIENCE, || closed_by_server(&idle[0])));
    // Last, so that no newer connection makes it the oldest waiting one once the kernel has
    // taken its whole answer.
    let mut slow = TcpStream::connect(addr).expect("connect");
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("request");
    thread::sleep(Duration::from_millis(200));
    // The premise: bytes are still queued on the exporter's side.
    let port = addr.port().to_string();
    let ss = Command::new("ss")
        .args([
            "-tnH",
            "state",
            "established",
            "sport",
            "=",
            &format!(":{port}"),
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let queued: u64 = ss
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum();
    eprintln!("answer in flight: {queued} bytes queued of {size}");
    assert!(queued > 0 || ss.is_empty(), "nothing left to write: {ss}");
    assert_eq!(
        proc_status(pid).0,
        BASE_THREADS,
        "idle connections hold no thread"
    );

    let sent = Instant::now();
    exporter.signal("TERM");
    slow.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buffer = Vec::new();
    let answer = read_response(&mut slow, &mut buffer, false);
    let (status, _, body) = answer.expect("the whole answer after SIGTERM");
    assert_eq!(status, 200);
    assert!(
        body.len() > 2 << 20 && body.ends_with(b"\n"),
        "{} bytes",
        body.len()
    );
    let what =
        format!("SIGTERM during a hanging poll with {n} idle connections and an answer in flight");
    assert_clean_exit(&mut exporter, "TERM", sent, &what);
    drop(idle);
}

// ---------------------------------------------------------------------------------------------
// Out of file descriptors.

#[test]
fn a_connection_flood_past_a_low_nofile_limit_leaves_it_serving_every_scrape_once_released() {
    // tiny_http 0.12 ends its accept loop on the first accept error: one EMFILE and the server
    // is deaf until restarted. Here the accept loop must outlive it.
    let _serial = serial();
    if !runs("prlimit", &["--version"]) {
        return skip("prlimit is not installed (Debian package util-linux)");
    }
    let sim = Sim::start(&["--profile", "ec2-bridge"]);
    let mut exporter = sim
        .exporter()
        .args(&["--interval", "1", "--timeout", "5"])
        .via(&["prlimit", "--nofile=64:64", EXPORTER])
        .start();
    let addr = exporter.addr;
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", exporter.child.id()))
        .expect("/proc limits");
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max open files") && l.contains(" 64 ")),
        "{limits}"
    );
    assert_serving(addr, "start");

    // 150 connections: more than the 64 descriptors it may hold (the kernel's listen backlog
    // keeps the rest waiting); each waits for a head.
    let flood: Vec<TcpStream> = (0..150)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok())
        .collect();
    assert!(flood.len() > 64, "only {} connections", flood.len());
    assert!(
        wait_for(PATIENCE, || exporter.logs().contains("Too many open files")),
        "the flood never ran it out of descriptors: {}",
        exporter.logs()
    );
    assert_alive(&mut exporter, "running out of descriptors");

    drop(flood);
    let started = Instant::now();
    assert!(
        wait_for(PATIENCE, || http_get(addr, "/metrics", &[])
            .is_ok_and(|r| r.0 == 200)),
        "it never served again after the flood was released"
    );
    let back = started.elapsed();
    for i in 0..100 {
        let (status, _, body) = http_get(addr, "/metrics", &[])
            .unwrap_or_else(|e| panic!("scrape {i} after the flood: {e}"));
        assert_eq!(status, 200, "scrape {i} after the flood");
        assert!(body.contains("ecs_exporter_up 1"), "scrape {i}");
    }
    eprintln!("nofile 64: flood of 150 connections; serving again {back:?} after release");
    assert_alive(&mut exporter, "the flood");
}
