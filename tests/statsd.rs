//! DogStatsD (SPEC §4) from the real exporter binary against the simulated ECS endpoint: the line
//! grammar and task tags, packing into datagrams, values equal to `/metrics` of the same poll,
//! one round per interval, nothing after a failed poll, and a missing or unresolvable receiver
//! that never stops the exporter.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::{Exporter, LEGACY_FAMILIES, Scrape, Sim, wait_for};

const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_DATAGRAM: usize = 1432;
/// Datagrams closer than this belong to one round (the exporter sends a round in a tight loop;
/// rounds are an interval, 300 ms, apart).
const ROUND_GAP: Duration = Duration::from_millis(100);

// ---------------------------------------------------------------------------------------------
// A UDP receiver that timestamps every datagram.

/// Datagrams with their arrival time.
type Received = Arc<Mutex<Vec<(Instant, Vec<u8>)>>>;

struct Receiver {
    addr: SocketAddr,
    got: Received,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    fn bind(ip: &str) -> std::io::Result<Receiver> {
        let socket = UdpSocket::bind((ip, 0))?;
        socket.set_read_timeout(Some(Duration::from_millis(20)))?;
        let addr = socket.local_addr()?;
        let got: Received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, s) = (Arc::clone(&got), Arc::clone(&stop));
        let thread = thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !s.load(Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf) {
                    let at = Instant::now();
                    g.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push((at, buf[..n].to_vec()));
                }
            }
        });
        Ok(Receiver {
            addr,
            got,
            stop,
            thread: Some(thread),
        })
    }

    fn port(&self) -> String {
        self.addr.port().to_string()
    }

    fn datagrams(&self) -> Vec<(Instant, Vec<u8>)> {
        self.got
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn count(&self) -> usize {
        self.got
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Waits until at least `n` complete rounds arrived (a round is complete once the next
    /// one starts); returns the rounds, the last (maybe incomplete) one left out.
    fn complete_rounds(&self, n: usize) -> Vec<Round> {
        let mut r = Vec::new();
        wait_for(TIMEOUT, || {
            r = rounds(&self.datagrams());
            r.len() > n
        });
        assert!(
            r.len() > n,
            "fewer than {n} complete DogStatsD rounds within {TIMEOUT:?} ({} datagrams)",
            self.count()
        );
        r.pop();
        r
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The datagrams of one poll.
#[derive(Debug)]
struct Round {
    datagrams: Vec<Vec<u8>>,
}

impl Round {
    fn lines(&self) -> Vec<String> {
        self.datagrams
            .iter()
            .flat_map(|d| datagram_lines(d))
            .collect()
    }

    /// The round as Prometheus series: (`ecs_task_<metric>`, sorted labels) → value.
    fn series(&self) -> BTreeMap<(String, Vec<(String, String)>), f64> {
        self.lines()
            .iter()
            .map(|l| {
                let line = parse_line(l).unwrap_or_else(|e| panic!("{e}: {l}"));
                (
                    (format!("ecs_task_{}", line.metric), line.labels()),
                    line.value,
                )
            })
            .collect()
    }
}

/// Splits a datagram into its lines (one trailing newline allowed).
fn datagram_lines(d: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(d);
    let text = text.strip_suffix('\n').unwrap_or(&text);
    text.split('\n').map(str::to_owned).collect()
}

/// A line's identity: everything but its value.
fn line_key(line: &str) -> String {
    match (line.split_once(':'), line.split_once('|')) {
        (Some((name, _)), Some((_, tags))) => format!("{name}|{tags}"),
        _ => line.to_owned(),
    }
}

/// Groups datagrams into rounds: a new round starts after a pause of [`ROUND_GAP`] or when a
/// series repeats.
fn rounds(datagrams: &[(Instant, Vec<u8>)]) -> Vec<Round> {
    let mut out: Vec<Round> = Vec::new();
    let mut keys: BTreeSet<String> = BTreeSet::new();
    let mut last: Option<Instant> = None;
    for (at, d) in datagrams {
        let lines = datagram_lines(d);
        let repeats = lines.iter().any(|l| keys.contains(&line_key(l)));
        if out.is_empty() || repeats || last.is_some_and(|t| at.duration_since(t) > ROUND_GAP) {
            out.push(Round {
                datagrams: Vec::new(),
            });
            keys.clear();
        }
        keys.extend(lines.iter().map(|l| line_key(l)));
        if let Some(r) = out.last_mut() {
            r.datagrams.push(d.clone());
        }
        last = Some(*at);
    }
    out
}

/// One parsed DogStatsD line.
#[derive(Debug)]
struct Line {
    metric: String,
    value: f64,
    container: String,
    cpu: Option<String>,
    interface: Option<String>,
    cluster: String,
    family: String,
    version: String,
}

impl Line {
    fn labels(&self) -> Vec<(String, String)> {
        let mut l = vec![("container_name".to_owned(), self.container.clone())];
        if let Some(cpu) = &self.cpu {
            l.push(("cpu".to_owned(), cpu.clone()));
        }
        if let Some(i) = &self.interface {
            l.push(("interface".to_owned(), i.clone()));
        }
        l.sort();
        l
    }
}

/// Checks one line against
/// `^ecs_task\.[a-z_]+:-?[0-9]+(\.[0-9]+)?\|g\|#container_name:V(,cpu:[0-9]+)?(,interface:V)?,ecs_cluster_name:V,task_family:V,task_version:V$`
/// with `V = [^,|#\n]+`.
fn parse_line(line: &str) -> Result<Line, String> {
    let rest = line
        .strip_prefix("ecs_task.")
        .ok_or("no ecs_task. prefix")?;
    let (metric, rest) = rest.split_once(':').ok_or("no ':' after the name")?;
    if metric.is_empty() || !metric.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(format!("bad metric name {metric:?}"));
    }
    let (value, rest) = rest.split_once('|').ok_or("no '|' after the value")?;
    let digits = value.strip_prefix('-').unwrap_or(value);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || !all_digits(frac) {
        return Err(format!("bad value {value:?}"));
    }
    let value: f64 = value.parse().map_err(|_| format!("bad value {value:?}"))?;
    let tags = rest.strip_prefix("g|#").ok_or("type is not |g|#")?;
    let mut tags = tags
        .split(',')
        .map(|t| t.split_once(':').unwrap_or((t, "")))
        .peekable();
    let good = |v: &str| !v.is_empty() && !v.contains(['|', '#', '\n', '\r', ',']);
    let mut take = |key: &str, optional: bool| -> Result<Option<String>, String> {
        match tags.peek() {
            Some((k, v)) if *k == key => {
                let v = v.to_string();
                tags.next();
                if !good(&v) || key == "cpu" && !all_digits(&v) {
                    return Err(format!("bad {key} tag value {v:?}"));
                }
                Ok(Some(v))
            }
            _ if optional => Ok(None),
            other => Err(format!("expected tag {key}, got {other:?}")),
        }
    };
    let container = take("container_name", false)?.unwrap_or_default();
    let cpu = take("cpu", true)?;
    let interface = take("interface", true)?;
    let cluster = take("ecs_cluster_name", false)?.unwrap_or_default();
    let family = take("task_family", false)?.unwrap_or_default();
    let version = take("task_version", false)?.unwrap_or_default();
    if let Some(extra) = tags.next() {
        return Err(format!("unexpected tag {extra:?}"));
    }
    Ok(Line {
        metric: metric.to_owned(),
        value,
        container,
        cpu,
        interface,
        cluster,
        family,
        version,
    })
}

// ---------------------------------------------------------------------------------------------
// Helpers.

fn task_ratio_ready(s: &Scrape) -> bool {
    s.get("ecs_task_cpu_usage_ratio", &[("container_name", "_task_")])
        .is_some()
}

/// Sim (every request a new sample) plus an exporter sending to `host`:`port` every 0.3 s.
fn start(profile: &str, host: &str, port: &str, extra: &[&str]) -> (Sim, Exporter) {
    let sim = Sim::start(&["--profile", profile, "--refresh-secs", "0"]);
    let mut args = vec![
        "--interval",
        "0.3",
        "--use-statsd",
        "--statsd-host",
        host,
        "--statsd-port",
        port,
    ];
    args.extend_from_slice(extra);
    let exporter = Exporter::start(&sim.url, &args, &[]);
    let s = exporter.scrape_until(TIMEOUT, task_ratio_ready);
    assert!(
        task_ratio_ready(&s),
        "{profile}: no first poll within {TIMEOUT:?}"
    );
    (sim, exporter)
}

/// The 2.x series of a scrape.
fn legacy_series(s: &Scrape) -> BTreeMap<(String, Vec<(String, String)>), f64> {
    s.samples
        .iter()
        .filter(|((name, _), _)| LEGACY_FAMILIES.contains(&name.as_str()))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

fn statsd_errors(s: &Scrape) -> f64 {
    s.get("ecs_exporter_statsd_errors_total", &[])
        .unwrap_or(0.0)
}

/// Checks the datagrams and lines of complete rounds, and the task tags against `ecs_task_info`.
fn check_rounds(rounds: &[Round], info: &[(String, String)]) {
    let tag = |k: &str| {
        info.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (cluster, family, revision) = (tag("cluster"), tag("family"), tag("revision"));
    assert!(
        !cluster.is_empty() && !cluster.starts_with("arn:"),
        "ecs_task_info cluster {cluster:?}"
    );
    for round in rounds {
        for (i, d) in round.datagrams.iter().enumerate() {
            assert!(d.len() <= MAX_DATAGRAM, "datagram of {} bytes", d.len());
            let lines = datagram_lines(d);
            assert!(
                lines.iter().all(|l| !l.is_empty()),
                "empty line in datagram {:?}",
                String::from_utf8_lossy(d)
            );
            // Packed greedily: the next datagram's first line did not fit in this one.
            if let Some(next) = round.datagrams.get(i + 1) {
                let first = datagram_lines(next).into_iter().next().unwrap_or_default();
                assert!(
                    d.len() + 1 + first.len() > MAX_DATAGRAM,
                    "datagram of {} bytes left out a {}-byte line that would fit",
                    d.len(),
                    first.len()
                );
            }
        }
        for l in round.lines() {
            let line = parse_line(&l).unwrap_or_else(|e| panic!("{e}: {l}"));
            assert!(!line.metric.contains("exporter_status"), "{l}");
            assert_eq!(
                (&line.cluster, &line.family, &line.version),
                (&cluster, &family, &revision),
                "{l}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[test]
fn statsd_lines_follow_the_2x_grammar_pack_into_1432_byte_datagrams_and_carry_the_task_tags() {
    let rx = Receiver::bind("127.0.0.1").expect("UDP receiver");
    // Fargate: the endpoint gives the cluster as an ARN; the tag is its short name.
    let (_sim, exporter) = start("fargate", "127.0.0.1", &rx.port(), &[]);
    let rounds = rx.complete_rounds(2);
    let s = exporter.scrape();
    let info = s.series("ecs_task_info");
    assert_eq!(info.len(), 1);
    check_rounds(&rounds, info[0].0);
    assert_eq!(
        info[0]
            .0
            .iter()
            .find(|(k, _)| k == "cluster")
            .map(|(_, v)| v.as_str()),
        Some("prom-ecs-exporter-sandbox")
    );
    for r in &rounds {
        assert!(
            r.datagrams.len() >= 2,
            "a round of {} datagrams: packing not exercised",
            r.datagrams.len()
        );
    }
}

/// Scrapes until the scrape's 2.x series equal one received round exactly (the round of the
/// poll the scrape shows). Counters advance on every poll (`--refresh-secs 0`), so only the
/// round of that very poll can match.
fn check_values_equal_metrics_of_the_same_poll(profile: &str, must_have: &[&str], never: &[&str]) {
    let rx = Receiver::bind("127.0.0.1").expect("UDP receiver");
    let (_sim, exporter) = start(profile, "127.0.0.1", &rx.port(), &[]);
    // Past the first poll: windows between two polls, not the endpoint's own precpu.
    rx.complete_rounds(2);
    let mut last = String::new();
    for _attempt in 0..6 {
        let s = exporter.scrape();
        let want = legacy_series(&s);
        // The round of this poll was handed to the sender before the poll was published.
        thread::sleep(Duration::from_millis(150));
        let rounds = rounds(&rx.datagrams());
        if rounds.iter().any(|r| r.series() == want) {
            let families: BTreeSet<&str> = want.keys().map(|(n, _)| n.as_str()).collect();
            for f in must_have {
                assert!(
                    families.contains(f),
                    "{profile}: no {f} in /metrics, so not checked"
                );
            }
            for r in &rounds {
                for ((name, labels), _) in r.series() {
                    for (k, v) in &labels {
                        assert!(
                            !(k == "container_name" && never.contains(&v.as_str())),
                            "{profile}: {name}{labels:?}"
                        );
                    }
                }
            }
            let info = s.series("ecs_task_info");
            check_rounds(&rounds, info[0].0);
            return;
        }
        // For the failure message: how the closest round differs.
        last = rounds
            .iter()
            .map(|r| {
                let got = r.series();
                let missing: Vec<_> = want
                    .iter()
                    .filter(|(k, v)| got.get(*k) != Some(v))
                    .take(3)
                    .collect();
                let extra: Vec<_> = got
                    .keys()
                    .filter(|k| !want.contains_key(*k))
                    .take(3)
                    .collect();
                (
                    missing.len() + extra.len(),
                    format!("differs in {missing:?}, extra {extra:?}"),
                )
            })
            .min()
            .map(|(_, d)| d)
            .unwrap_or_else(|| "no rounds received".into());
    }
    panic!("{profile}: no DogStatsD round equals the 2.x series of /metrics: {last}");
}

#[test]
fn statsd_values_equal_metrics_of_the_same_poll_for_every_2x_family_on_fargate() {
    check_values_equal_metrics_of_the_same_poll("fargate", &LEGACY_FAMILIES, &[]);
}

#[test]
fn statsd_values_equal_metrics_of_the_same_poll_and_leave_out_excluded_containers_on_ec2_awsvpc() {
    let v2: Vec<&str> = LEGACY_FAMILIES
        .iter()
        .copied()
        .filter(|f| !f.contains("percpu") && !f.contains("iops"))
        .collect();
    check_values_equal_metrics_of_the_same_poll("ec2-awsvpc", &v2, &["~internal~ecs~pause"]);
}

#[test]
fn statsd_rounds_arrive_every_interval_while_metrics_keeps_answering() {
    let rx = Receiver::bind("127.0.0.1").expect("UDP receiver");
    let (_sim, exporter) = start("ec2-bridge", "127.0.0.1", &rx.port(), &[]);
    let before = rounds(&rx.datagrams()).len();
    let started = Instant::now();
    let mut scrapes = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        let s = exporter.scrape();
        assert_eq!(s.value("ecs_exporter_up", &[]), 1.0);
        scrapes += 1;
        thread::sleep(Duration::from_millis(50));
    }
    let after = rounds(&rx.datagrams()).len();
    assert!(
        after - before >= 3,
        "{} rounds in 1.5 s at a 0.3 s interval",
        after - before
    );
    assert!(scrapes >= 10, "only {scrapes} scrapes answered in 1.5 s");
    assert_eq!(statsd_errors(&exporter.scrape()), 0.0);
}

#[test]
fn statsd_sends_nothing_after_a_failed_poll_and_resumes_after_recovery() {
    let rx = Receiver::bind("127.0.0.1").expect("UDP receiver");
    let (sim, exporter) = start("ec2-bridge", "127.0.0.1", &rx.port(), &[]);
    rx.complete_rounds(1);
    sim.fault("kind=status500&endpoint=both");
    let s = exporter.scrape_until(TIMEOUT, |s| s.get("ecs_exporter_up", &[]) == Some(0.0));
    assert_eq!(
        s.get("ecs_exporter_up", &[]),
        Some(0.0),
        "the fault did not fail a poll"
    );
    thread::sleep(Duration::from_millis(100)); // a round in flight at the failure lands
    let quiet = rx.count();
    thread::sleep(Duration::from_millis(1000)); // three failed polls
    assert_eq!(
        rx.count(),
        quiet,
        "DogStatsD lines sent after a failed poll"
    );
    sim.clear();
    assert!(
        wait_for(TIMEOUT, || rx.count() > quiet),
        "no DogStatsD lines after the endpoint recovered"
    );
}

#[test]
fn statsd_without_a_receiver_counts_errors_and_the_exporter_keeps_serving() {
    // A UDP port nobody listens on: loopback answers with ICMP port unreachable.
    let port = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("UDP port")
        .port();
    let (_sim, mut exporter) = start("ec2-bridge", "127.0.0.1", &port.to_string(), &[]);
    let s = exporter.scrape_until(TIMEOUT, |s| statsd_errors(s) > 0.0);
    assert!(
        statsd_errors(&s) > 0.0,
        "ecs_exporter_statsd_errors_total stayed 0"
    );
    let s = exporter.scrape_until(TIMEOUT, |s2| {
        s2.get("ecs_exporter_last_success_timestamp_seconds", &[])
            > s.get("ecs_exporter_last_success_timestamp_seconds", &[])
    });
    assert_eq!(s.value("ecs_exporter_up", &[]), 1.0);
    assert!(
        exporter.child.try_wait().expect("try_wait").is_none(),
        "the exporter exited"
    );
}

#[test]
fn statsd_to_an_unresolvable_host_counts_errors_and_the_exporter_keeps_serving() {
    let (_sim, mut exporter) = start("ec2-bridge", "no-such-host.invalid", "8125", &[]);
    let s = exporter.scrape_until(Duration::from_secs(20), |s| statsd_errors(s) > 0.0);
    assert!(
        statsd_errors(&s) > 0.0,
        "ecs_exporter_statsd_errors_total stayed 0"
    );
    assert_eq!(s.value("ecs_exporter_up", &[]), 1.0);
    assert!(
        exporter.child.try_wait().expect("try_wait").is_none(),
        "the exporter exited"
    );
}

#[test]
fn statsd_reaches_an_ipv6_literal_host() {
    let rx = match Receiver::bind("::1") {
        Ok(rx) => rx,
        Err(e) => {
            eprintln!("skipped: cannot bind a UDP socket on [::1] ({e})");
            return;
        }
    };
    let (_sim, exporter) = start("ec2-bridge", "::1", &rx.port(), &[]);
    let rounds = rx.complete_rounds(1);
    let s = exporter.scrape();
    check_rounds(&rounds, s.series("ecs_task_info")[0].0);
    assert_eq!(statsd_errors(&s), 0.0);
}

#[test]
fn statsd_settings_come_from_use_statsd_statsd_host_and_datadog_variables() {
    let sim = Sim::start(&["--profile", "ec2-bridge", "--refresh-secs", "0"]);
    let a = Receiver::bind("127.0.0.1").expect("UDP receiver");
    let b = Receiver::bind("127.0.0.1").expect("UDP receiver");
    let (pa, pb) = (a.port(), b.port());
    let _e1 = Exporter::start(
        &sim.url,
        &["--interval", "0.3"],
        &[
            ("USE_STATSD", "Yes"),
            ("STATSD_HOST", "127.0.0.1"),
            ("STATSD_PORT", &pa),
        ],
    );
    let _e2 = Exporter::start(
        &sim.url,
        &["--interval", "0.3"],
        &[
            ("USE_STATSD", "on"),
            ("DD_AGENT_HOST", "127.0.0.1"),
            ("DD_DOGSTATSD_PORT", &pb),
        ],
    );
    a.complete_rounds(1);
    b.complete_rounds(1);
}

#[test]
fn the_line_checker_of_these_tests_rejects_malformed_lines() {
    let ok = "ecs_task.cpu_usage_ratio:0.25|g|#container_name:web,ecs_cluster_name:c,task_family:f,task_version:7";
    assert!(parse_line(ok).is_ok());
    let net = "ecs_task.network_rx_bytes_total:12|g|#container_name:_task_,interface:eth0,ecs_cluster_name:c,task_family:f,task_version:7";
    assert_eq!(
        parse_line(net).map(|l| l.interface),
        Ok(Some("eth0".to_owned()))
    );
    for bad in [
        "ecs_task.cpu_usage_ratio:0.25|c|#container_name:web,ecs_cluster_name:c,task_family:f,task_version:7",
        "ecs_task.cpu_usage_ratio:NaN|g|#container_name:web,ecs_cluster_name:c,task_family:f,task_version:7",
        "ecs_task.cpu_usage_ratio:1e-7|g|#container_name:web,ecs_cluster_name:c,task_family:f,task_version:7",
        "ecs_task.Cpu:1|g|#container_name:web,ecs_cluster_name:c,task_family:f,task_version:7",
        "ecs_task.cpu:1|g|#container_name:web,ecs_cluster_name:c,task_family:f",
        "ecs_task.cpu:1|g|#ecs_cluster_name:c,container_name:web,task_family:f,task_version:7",
        "ecs_task.cpu:1|g|#container_name:web,cpu:x,ecs_cluster_name:c,task_family:f,task_version:7",
        "ecs_task.cpu:1|g|#container_name:,ecs_cluster_name:c,task_family:f,task_version:7",
        "ecs_task.cpu:1|g|#container_name:web,ecs_cluster_name:c,task_family:f,task_version:7,x:y",
        "ecs_task.cpu:1|g|#container_name:web,interface:eth0,cpu:1,ecs_cluster_name:c,task_family:f,task_version:7",
    ] {
        assert!(parse_line(bad).is_err(), "accepted {bad}");
    }
}
