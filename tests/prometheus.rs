//! A real Prometheus server scrapes the real exporter running against the simulated endpoint.
//!
//! Needs the `prometheus` binary on PATH (Debian's package; `.ci/run` installs it). Where it is
//! missing, the test says so in one line and passes (fails under `CI=true`).
//!
//! Setup (all on 127.0.0.1, everything killed on drop):
//! - exporter A polls a Fargate simulator (`--refresh-secs 0`) every second; exporter B polls a
//!   Managed Instances simulator with DogStatsD on (health checks, `statsd_errors_total`);
//! - Prometheus scrapes every second: job `direct` scrapes A, job `om` and job `text` scrape A
//!   through a recording proxy in this test (which sees the `Accept` header, the answer's
//!   `Content-Type` and body), job `managed` scrapes B.
//!
//! Checks: every target up with an empty `lastError`; `up == 1`; Prometheus' own counters of
//! sample-limit, duplicate, out-of-order and out-of-bounds samples at 0; every family of the
//! exporters' scrapes present in Prometheus with the same number of series, per job, and the
//! SPEC families covered; counters typed `counter` in Prometheus' metadata (OpenMetrics under the
//! name without `_total`); `rate()` of the CPU counter non-zero; the `_task_` CPU ratio stored by
//! Prometheus equal to the value the exporter served in that very scrape (paired through
//! `ecs_exporter_last_success_timestamp_seconds`, which identifies the poll); OpenMetrics 1.0.0
//! asked for, answered (`# EOF` last) and ingested, text 0.0.4 too.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::client::header;
use common::prometheus::{
    Prometheus, encode, get, prometheus_version, sample_millis, sample_value,
};
use common::statsd::{closed_udp_port, flags};
use common::{
    ADDED_FAMILIES, Exporter, LEGACY_FAMILIES, Sim, http_get, parse_strict, skip, wait_for,
};

const TASK_RATIO: &str = "ecs_task_cpu_usage_ratio{container_name=\"_task_\"}";
const LAST_SUCCESS: &str = "ecs_exporter_last_success_timestamp_seconds";
/// Prometheus' own counters that must stay 0 (those this version has).
const SCRAPE_PROBLEMS: &[&str] = &[
    "prometheus_target_scrapes_exceeded_sample_limit_total",
    "prometheus_target_scrapes_sample_duplicate_timestamp_total",
    "prometheus_target_scrapes_sample_out_of_order_total",
    "prometheus_target_scrapes_sample_out_of_bounds_total",
    "prometheus_target_scrapes_exceeded_body_size_limit_total",
    "prometheus_target_scrapes_exceeded_native_histogram_bucket_limit_total",
    "prometheus_target_scrape_pool_exceeded_label_limits_total",
];
/// Of those, the ones every Prometheus 2.x/3.x has (so the check is never vacuous).
const SCRAPE_PROBLEMS_REQUIRED: &[&str] = &[
    "prometheus_target_scrapes_exceeded_sample_limit_total",
    "prometheus_target_scrapes_sample_duplicate_timestamp_total",
];
const JOBS: &[&str] = &["direct", "om", "text", "managed"];

/// The value of the first line of an exposition that starts with `series ` (either format).
fn line_value(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

// ---------------------------------------------------------------------------------------------
// The recording proxy between Prometheus and exporter A.

/// One scrape that went through the proxy.
#[derive(Debug, Clone)]
struct Exchange {
    job: String,
    accept: String,
    content_type: String,
    body: String,
}

/// Serves `/om/metrics` and `/text/metrics` by forwarding to the exporter's `/metrics` (one
/// request per connection), and records what it forwarded. `/text/metrics` replaces the
/// `Accept` header with text 0.0.4 when `force_text` (a Prometheus without `scrape_protocols`
/// always asks for OpenMetrics first).
struct Proxy {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    exchanges: Arc<Mutex<Vec<Exchange>>>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    fn start(upstream: SocketAddr, force_text: bool) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("proxy addr");
        let stop = Arc::new(AtomicBool::new(false));
        let exchanges = Arc::new(Mutex::new(Vec::new()));
        let (s, x) = (Arc::clone(&stop), Arc::clone(&exchanges));
        let thread = thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = forward(stream, upstream, force_text, &x);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy {
            addr,
            stop,
            exchanges,
            thread: Some(thread),
        }
    }

    fn exchanges(&self, job: &str) -> Vec<Exchange> {
        let all = self.exchanges.lock().unwrap_or_else(|e| e.into_inner());
        all.iter().filter(|e| e.job == job).cloned().collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Forwards one request; records the exchange before answering, so that whatever Prometheus
/// stored is already recorded.
fn forward(
    mut stream: TcpStream,
    upstream: SocketAddr,
    force_text: bool,
    record: &Mutex<Vec<Exchange>>,
) -> Option<()> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head.split(' ').nth(1).unwrap_or("");
    let job = match path {
        "/om/metrics" => "om",
        "/text/metrics" => "text",
        _ => {
            let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
            return None;
        }
    };
    let accept = header(&head, "accept").unwrap_or_default().to_owned();
    let sent_accept = if job == "text" && force_text {
        "text/plain;version=0.0.4".to_owned()
    } else {
        accept.clone()
    };
    let (status, up_head, body) =
        http_get(upstream, "/metrics", &[("Accept", &sent_accept)]).ok()?;
    let content_type = header(&up_head, "content-type")
        .unwrap_or_default()
        .to_owned();
    let answer = format!(
        "HTTP/1.1 {status} OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    {
        let mut all = record.lock().unwrap_or_else(|e| e.into_inner());
        if all.len() < 1000 {
            all.push(Exchange {
                job: job.to_owned(),
                accept,
                content_type,
                body: body.clone(),
            });
        }
    }
    stream.write_all(answer.as_bytes()).ok()?;
    stream.write_all(body.as_bytes()).ok()
}

// ---------------------------------------------------------------------------------------------
// A recorder of the exporter's own values: poll (last success timestamp) → `_task_` CPU ratio.

struct Recorder {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<HashMap<u64, f64>>>,
    thread: Option<JoinHandle<()>>,
}

impl Recorder {
    /// Scrapes the exporter every 100 ms (the exporter polls every second, so every poll is seen).
    fn start(exporter: SocketAddr) -> Recorder {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let (s, m) = (Arc::clone(&stop), Arc::clone(&seen));
        let thread = thread::spawn(move || {
            for _ in 0..600 {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok((200, _, body)) = http_get(exporter, "/metrics", &[]) {
                    record(&m, &body);
                }
                thread::sleep(Duration::from_millis(100));
            }
        });
        Recorder {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn get(&self, last_success: f64) -> Option<f64> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(&last_success.to_bits()).copied()
    }
}

fn record(map: &Mutex<HashMap<u64, f64>>, body: &str) {
    if let (Some(ts), Some(ratio)) = (line_value(body, LAST_SUCCESS), line_value(body, TASK_RATIO))
    {
        let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
        m.insert(ts.to_bits(), ratio);
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------

fn config(a: SocketAddr, b: SocketAddr, proxy: SocketAddr, protocols: bool) -> String {
    let job = |name: &str, target: SocketAddr, path: &str, protocol: Option<&str>| {
        let protocol = match (protocols, protocol) {
            (true, Some(p)) => format!("    scrape_protocols: [{p}]\n"),
            _ => String::new(),
        };
        format!(
            "  - job_name: {name}\n    metrics_path: {path}\n    sample_limit: 2000\n{protocol}    static_configs:\n      - targets: ['{target}']\n"
        )
    };
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{}{}{}{}",
        job("direct", a, "/metrics", Some("OpenMetricsText1.0.0")),
        job("om", proxy, "/om/metrics", Some("OpenMetricsText1.0.0")),
        job("text", proxy, "/text/metrics", Some("PrometheusText0.0.4")),
        job("managed", b, "/metrics", None),
    )
}

#[test]
fn prometheus_scrapes_and_stores_everything() {
    let Some(version) = prometheus_version() else {
        return skip("prometheus is not on PATH (apt-get install -y prometheus)");
    };
    // `scrape_protocols` came with Prometheus 2.49; before, it asks for OpenMetrics 1.0.0 first.
    let protocols = version >= (2, 49);
    let started = Instant::now();

    let sim_a = Sim::start(&["--profile", "fargate", "--refresh-secs", "0"]);
    let exporter_a = Exporter::start(&sim_a.url, &["--interval", "1"], &[]);
    let sim_b = Sim::start(&["--profile", "managed-instances", "--refresh-secs", "0"]);
    let statsd_port = closed_udp_port().to_string();
    let exporter_b = sim_b
        .exporter()
        .args(&["--interval", "1"])
        .args(&flags("127.0.0.1", &statsd_port))
        .start();
    let proxy = Proxy::start(exporter_a.addr, !protocols);
    let recorder = Recorder::start(exporter_a.addr);
    let prometheus = Prometheus::start(&config(
        exporter_a.addr,
        exporter_b.addr,
        proxy.addr,
        protocols,
    ));

    // Every target up (scraped at least once, successfully).
    let mut targets = BTreeMap::new();
    let all_up = wait_for(Duration::from_secs(15), || {
        targets = prometheus.targets();
        targets.len() == JOBS.len() && targets.values().all(|t| t["health"] == "up")
    });
    assert!(all_up, "targets not up: {targets:#?}\n{}", prometheus.log());

    // rate() over 1 s scrapes of a counter that grows: non-zero for every container with stats.
    let exporter_scrape = exporter_a.scrape();
    let cpu_containers = exporter_scrape
        .series("ecs_container_cpu_usage_seconds_total")
        .len();
    assert!(
        cpu_containers >= 2,
        "fargate profile has 2 running containers"
    );
    let rate_query = "rate(ecs_container_cpu_usage_seconds_total{job=\"direct\"}[5s])";
    let mut rates = Vec::new();
    let rated = wait_for(Duration::from_secs(10), || {
        rates = prometheus.query(rate_query, None);
        rates.len() == cpu_containers && rates.iter().all(|r| sample_value(&r["value"]) > 0.0)
    });
    assert!(rated, "{rate_query}: {rates:#?}");

    // The `_task_` ratio stored for each scrape through the proxy = the value that scrape
    // served, paired by poll; wait until each proxied job has at least 3 such scrapes.
    let pairs_of = |job: &str| -> Vec<(f64, f64)> {
        let ratio = prometheus.query(
            &format!("ecs_task_cpu_usage_ratio{{container_name=\"_task_\",job=\"{job}\"}}[60s]"),
            None,
        );
        let last = prometheus.query(&format!("{LAST_SUCCESS}{{job=\"{job}\"}}[60s]"), None);
        let by_time: HashMap<i64, f64> = last
            .first()
            .and_then(|s| s["values"].as_array())
            .map(|v| {
                v.iter()
                    .map(|p| (sample_millis(p), sample_value(p)))
                    .collect()
            })
            .unwrap_or_default();
        ratio
            .first()
            .and_then(|s| s["values"].as_array())
            .map(|v| {
                v.iter()
                    .filter_map(|p| Some((*by_time.get(&sample_millis(p))?, sample_value(p))))
                    .collect()
            })
            .unwrap_or_default()
    };
    // (Samples come oldest first; a pair needs both series of one scrape.)
    for job in ["om", "text"] {
        let mut pairs = Vec::new();
        let enough = wait_for(Duration::from_secs(10), || {
            pairs = pairs_of(job);
            pairs.len() >= 3
        });
        assert!(enough, "job {job}: fewer than 3 scrapes stored: {pairs:?}");
        let served: HashMap<u64, f64> = proxy
            .exchanges(job)
            .iter()
            .filter_map(|e| {
                Some((
                    line_value(&e.body, LAST_SUCCESS)?.to_bits(),
                    line_value(&e.body, TASK_RATIO)?,
                ))
            })
            .collect();
        for (last_success, stored) in &pairs {
            let Some(sent) = served.get(&last_success.to_bits()) else {
                panic!(
                    "job {job}: Prometheus stored poll {last_success}, which the proxy never served"
                );
            };
            assert_eq!(
                stored.to_bits(),
                sent.to_bits(),
                "job {job}, poll {last_success}: stored {stored}, served {sent}"
            );
        }
    }

    // Job `direct`: every stored `_task_` ratio (paired with its poll by sample timestamp)
    // equals what the exporter itself served for that poll, the latest one included.
    let mut pairs = Vec::new();
    wait_for(Duration::from_secs(5), || {
        pairs = pairs_of("direct");
        pairs.len() >= 3
    });
    let (&(latest_poll, _), &(first_poll, _)) = (
        pairs.last().expect("direct: stored samples"),
        pairs.first().expect("direct: stored samples"),
    );
    let mut matched = 0;
    for (poll, stored) in &pairs {
        let own = recorder.get(*poll).or_else(|| {
            proxy
                .exchanges("om")
                .iter()
                .chain(&proxy.exchanges("text"))
                .find_map(|e| {
                    (line_value(&e.body, LAST_SUCCESS)? == *poll)
                        .then(|| line_value(&e.body, TASK_RATIO))?
                })
        });
        let Some(own) = own else {
            assert_ne!(
                *poll, latest_poll,
                "the latest stored poll was never seen in the exporter's answers"
            );
            continue;
        };
        assert_eq!(
            stored.to_bits(),
            own.to_bits(),
            "direct, poll {poll}: Prometheus {stored}, exporter {own}"
        );
        assert!(*stored > 0.0, "_task_ ratio is a real window: {stored}");
        matched += 1;
    }
    assert!(
        matched >= 3 && latest_poll > first_poll,
        "direct: {matched} of {} stored polls matched",
        pairs.len()
    );

    // `up == 1` for every job.
    let up = prometheus.query("up == 1", None);
    let up_jobs: BTreeSet<&str> = up
        .iter()
        .filter_map(|r| r["metric"]["job"].as_str())
        .collect();
    assert_eq!(up_jobs, JOBS.iter().copied().collect(), "up == 1: {up:#?}");

    // Every family of the exporters' scrapes is in Prometheus, with as many series, per job.
    let scrape_a = exporter_a.scrape();
    let scrape_b = exporter_b.scrape();
    let count = |scrape: &common::Scrape| -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for (name, _) in scrape.samples.keys() {
            *counts.entry(name.clone()).or_insert(0) += 1;
        }
        counts
    };
    let (counts_a, counts_b) = (count(&scrape_a), count(&scrape_b));
    let exported: BTreeSet<&str> = counts_a
        .keys()
        .chain(counts_b.keys())
        .map(String::as_str)
        .collect();
    let missing: Vec<&&str> = LEGACY_FAMILIES
        .iter()
        .chain(ADDED_FAMILIES.iter())
        .filter(|f| !exported.contains(**f))
        .collect();
    assert!(
        missing.is_empty(),
        "SPEC families the exporters did not export: {missing:?}"
    );
    for name in &exported {
        let result = prometheus.query(&format!("count by (job) ({{__name__=\"{name}\"}})"), None);
        let stored: BTreeMap<&str, usize> = result
            .iter()
            .map(|r| {
                (
                    r["metric"]["job"].as_str().unwrap_or(""),
                    sample_value(&r["value"]) as usize,
                )
            })
            .collect();
        let mut expected = BTreeMap::new();
        if let Some(n) = counts_a.get(*name) {
            for job in ["direct", "om", "text"] {
                expected.insert(job, *n);
            }
        }
        if let Some(n) = counts_b.get(*name) {
            expected.insert("managed", *n);
        }
        assert_eq!(stored, expected, "series of {name} per job in Prometheus");
    }

    // Counters are counters in Prometheus' metadata: text under the `_total` name, OpenMetrics
    // under the family name without it.
    for (job, strip) in [("text", false), ("om", true), ("direct", true)] {
        let data = prometheus.api(&format!(
            "/api/v1/targets/metadata?match_target={}",
            encode(&format!("{{job=\"{job}\"}}"))
        ));
        let types: HashMap<&str, &str> = data
            .as_array()
            .expect("metadata array")
            .iter()
            .filter_map(|m| Some((m["metric"].as_str()?, m["type"].as_str()?)))
            .collect();
        for (name, kind) in &scrape_a.types {
            let family = match (strip, kind.as_str()) {
                (true, "counter") => name.strip_suffix("_total").unwrap_or(name),
                _ => name.as_str(),
            };
            assert_eq!(
                types.get(family).copied(),
                Some(kind.as_str()),
                "job {job}: metadata of {family}: {types:?}"
            );
        }
    }

    // OpenMetrics asked for, answered and ingested; text 0.0.4 as well.
    let om = proxy.exchanges("om");
    assert!(!om.is_empty());
    for e in &om {
        assert!(
            e.accept.starts_with("application/openmetrics-text"),
            "Prometheus asks for OpenMetrics first: {:?}",
            e.accept
        );
        assert_eq!(
            e.content_type, "application/openmetrics-text; version=1.0.0; charset=utf-8",
            "exporter answers OpenMetrics 1.0.0"
        );
        assert!(e.body.ends_with("\n# EOF\n"), "OpenMetrics ends with # EOF");
        assert_eq!(e.body.matches("# EOF").count(), 1);
    }
    let text = proxy.exchanges("text");
    assert!(!text.is_empty());
    for e in &text {
        if protocols {
            assert!(e.accept.starts_with("text/plain"), "{:?}", e.accept);
        }
        assert_eq!(e.content_type, "text/plain; version=0.0.4; charset=utf-8");
        parse_strict(&e.body).unwrap_or_else(|err| panic!("text body: {err}"));
    }

    // No scrape errors anywhere: every target's lastError empty, Prometheus' own counters 0.
    let targets = prometheus.targets();
    for job in JOBS {
        let t = &targets[*job];
        assert_eq!(t["health"], "up", "{job}: {t:#}");
        assert_eq!(t["lastError"], "", "{job}: lastError");
    }
    let (status, own) = get(prometheus.addr, "/metrics").expect("prometheus /metrics");
    assert_eq!(status, 200);
    let mut checked = BTreeSet::new();
    for line in own.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, value)) = line.split_once(' ') else {
            continue;
        };
        let bare = name.split('{').next().unwrap_or(name);
        if SCRAPE_PROBLEMS.contains(&bare) {
            assert_eq!(
                value.trim(),
                "0",
                "Prometheus counted a scrape problem: {line}"
            );
            checked.insert(bare);
        }
    }
    for required in SCRAPE_PROBLEMS_REQUIRED {
        assert!(
            checked.contains(required),
            "{required} not in Prometheus' own metrics"
        );
    }

    eprintln!(
        "prometheus {}.{} (scrape_protocols {}): {} families checked, {} OpenMetrics and {} text scrapes proxied, {:.1} s",
        version.0,
        version.1,
        if protocols {
            "set"
        } else {
            "unsupported; default negotiation"
        },
        exported.len(),
        om.len(),
        text.len(),
        started.elapsed().as_secs_f64()
    );
}
