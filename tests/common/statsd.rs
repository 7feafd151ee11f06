//! DogStatsD as the tests receive it: a UDP receiver that timestamps every datagram, the
//! datagrams of one poll grouped into a round, and a strict checker of the 2.x line grammar
//! (SPEC §4) that reads a line back into its metric, value and tags; the exporter's DogStatsD
//! flags, and a UDP port nobody receives on.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::wait_for;

/// How long [`Receiver::complete_rounds`] waits.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Datagrams closer than this belong to one round (the exporter sends a round in a tight loop;
/// rounds are an interval, 300 ms in these tests, apart).
const ROUND_GAP: Duration = Duration::from_millis(100);

/// Datagrams with their arrival time.
pub type Received = Arc<Mutex<Vec<(Instant, Vec<u8>)>>>;

/// A UDP socket on a free port that records every datagram with its arrival time, on a thread
/// of its own; stopped on drop.
pub struct Receiver {
    pub addr: SocketAddr,
    got: Received,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    pub fn bind(ip: &str) -> std::io::Result<Receiver> {
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

    pub fn port(&self) -> String {
        self.addr.port().to_string()
    }

    pub fn datagrams(&self) -> Vec<(Instant, Vec<u8>)> {
        self.got
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn count(&self) -> usize {
        self.got
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Waits until at least `n` complete rounds arrived (a round is complete once the next
    /// one starts); returns the rounds, the last (maybe incomplete) one left out.
    pub fn complete_rounds(&self, n: usize) -> Vec<Round> {
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

/// The exporter's flags to send DogStatsD to `host`:`port`.
pub fn flags<'a>(host: &'a str, port: &'a str) -> [&'a str; 5] {
    ["--use-statsd", "--statsd-host", host, "--statsd-port", port]
}

/// A UDP port on 127.0.0.1 that nobody listens on (bound and released): loopback answers a
/// datagram to it with ICMP port unreachable.
pub fn closed_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port")
}

/// The datagrams of one poll.
#[derive(Debug)]
pub struct Round {
    pub datagrams: Vec<Vec<u8>>,
}

impl Round {
    pub fn lines(&self) -> Vec<String> {
        self.datagrams
            .iter()
            .flat_map(|d| datagram_lines(d))
            .collect()
    }

    /// The round as Prometheus series: (`ecs_task_<metric>`, sorted labels) → value.
    pub fn series(&self) -> BTreeMap<(String, Vec<(String, String)>), f64> {
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
pub fn datagram_lines(d: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(d);
    let text = text.strip_suffix('\n').unwrap_or(&text);
    text.split('\n').map(str::to_owned).collect()
}

/// A line's identity: everything but its value.
pub fn line_key(line: &str) -> String {
    match (line.split_once(':'), line.split_once('|')) {
        (Some((name, _)), Some((_, tags))) => format!("{name}|{tags}"),
        _ => line.to_owned(),
    }
}

/// Groups datagrams into rounds: a new round starts after a pause of [`ROUND_GAP`] or when a
/// series repeats.
pub fn rounds(datagrams: &[(Instant, Vec<u8>)]) -> Vec<Round> {
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
pub struct Line {
    pub metric: String,
    pub value: f64,
    pub container: String,
    pub cpu: Option<String>,
    pub interface: Option<String>,
    pub cluster: String,
    pub family: String,
    pub version: String,
}

impl Line {
    pub fn labels(&self) -> Vec<(String, String)> {
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
pub fn parse_line(line: &str) -> Result<Line, String> {
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
