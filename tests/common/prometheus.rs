//! A real Prometheus server and promtool, for the tests that need them: the server (config and
//! TSDB in a temp dir, on a free 127.0.0.1 port, killed on drop) and its HTTP API,
//! `promtool check metrics`, plus the version and presence probes the tests use to skip where
//! they are not installed. It can be stopped and restarted on the same port and TSDB (an
//! outage), and asked through another client (TLS, basic auth). It leaves out what a test
//! configures or checks.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::process::kill;
use super::{TempDir, free_port, runs, wait_for};

/// `<program> --version` → (major, minor) of its `version x.y.z`, or `None` when the program
/// is not on PATH (`prometheus`, `promtool`).
pub fn version(program: &str) -> Option<(u32, u32)> {
    let out = Command::new(program).arg("--version").output().ok()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let version = text
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .unwrap_or_else(|| panic!("no version in {text:?}"));
    let mut parts = version.split(['.', '+', '-']);
    let mut next = || parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    Some((next(), next()))
}

/// `prometheus --version` → (major, minor), or `None` when the binary is not on PATH.
pub fn prometheus_version() -> Option<(u32, u32)> {
    version("prometheus")
}

/// Whether `promtool` is on PATH.
pub fn promtool_installed() -> bool {
    runs("promtool", &["--version"])
}

/// `promtool check metrics` on an exposition: (exit success, everything it printed).
pub fn promtool_check_metrics(text: &str) -> (bool, String) {
    promtool(&["check", "metrics"], Path::new("."), text)
}

/// `promtool <args>` in `dir` with `input` on its stdin: (exit success, everything it printed).
pub fn promtool(args: &[&str], dir: &Path, input: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool output");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), printed)
}

/// How the tests talk to a Prometheus: `GET path` → (status, body). The default is plain HTTP
/// ([`get`]); one behind TLS and basic auth (`--web.config.file`) needs a client of the test's.
pub type Getter = Arc<dyn Fn(SocketAddr, &str) -> std::io::Result<(u16, String)> + Send + Sync>;

/// A Prometheus server on 127.0.0.1 with its config and TSDB in a temp dir; killed on drop. It
/// can be stopped and started again on the same port and TSDB.
pub struct Prometheus {
    child: Child,
    pub addr: SocketAddr,
    pub dir: TempDir,
    /// Flags beyond config, TSDB, address and log level.
    flags: Vec<String>,
    get: Getter,
}

impl Prometheus {
    /// Starts Prometheus with this configuration (YAML) and waits until it is ready.
    pub fn start(config: &str) -> Prometheus {
        Prometheus::start_with(config, &[], None)
    }

    /// Starts it with extra flags (e.g. `--web.enable-remote-write-receiver`), asking through
    /// `get` (when given) instead of plain HTTP, and waits until it is ready.
    pub fn start_with(config: &str, flags: &[&str], get: Option<Getter>) -> Prometheus {
        let dir = TempDir::new("prometheus");
        std::fs::write(dir.0.join("prometheus.yml"), config).expect("write config");
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let flags: Vec<String> = flags.iter().map(|f| (*f).to_owned()).collect();
        let child = spawn(&dir, addr, &flags);
        let mut prometheus = Prometheus {
            child,
            addr,
            dir,
            flags,
            get: get.unwrap_or_else(|| Arc::new(get_plain)),
        };
        prometheus.wait_ready();
        prometheus
    }

    /// SIGTERM, and waits until it has exited (its TSDB closed).
    pub fn stop(&mut self) {
        kill(&self.child, "TERM");
        let exited = wait_for(Duration::from_secs(30), || {
            !matches!(self.child.try_wait(), Ok(None))
        });
        assert!(exited, "prometheus did not exit 30 s after SIGTERM");
    }

    /// Starts it again after [`Prometheus::stop`]: same flags, port and TSDB.
    pub fn restart(&mut self) {
        assert!(
            !matches!(self.child.try_wait(), Ok(None)),
            "restart of a running prometheus"
        );
        self.child = spawn(&self.dir, self.addr, &self.flags);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let (addr, get) = (self.addr, Arc::clone(&self.get));
        let ready = wait_for(Duration::from_secs(30), || {
            !matches!(self.child.try_wait(), Ok(None))
                || matches!(get(addr, "/-/ready"), Ok((200, _)))
        });
        if !ready || !matches!(self.child.try_wait(), Ok(None)) {
            let status = self.child.try_wait();
            panic!(
                "prometheus not ready on {addr} ({status:?}):\n{}",
                self.log()
            );
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("prometheus.log")).unwrap_or_default()
    }

    /// `GET path` → the `data` of a successful API answer.
    pub fn api(&self, path: &str) -> Value {
        let (status, body) =
            (self.get)(self.addr, path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let json: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {path}: {status} {e}: {body}"));
        assert_eq!(
            (status, json["status"].as_str()),
            (200, Some("success")),
            "GET {path}: {body}"
        );
        json["data"].clone()
    }

    /// An instant query (at `time`, Unix seconds, when given): the result array.
    pub fn query(&self, promql: &str, time: Option<f64>) -> Vec<Value> {
        let mut path = format!("/api/v1/query?query={}", encode(promql));
        if let Some(t) = time {
            path.push_str(&format!("&time={t:.3}"));
        }
        let data = self.api(&path);
        data["result"]
            .as_array()
            .unwrap_or_else(|| panic!("{promql}: no result array: {data}"))
            .clone()
    }

    /// The active targets by job.
    pub fn targets(&self) -> BTreeMap<String, Value> {
        let data = self.api("/api/v1/targets?state=active");
        data["activeTargets"]
            .as_array()
            .expect("activeTargets")
            .iter()
            .map(|t| {
                let job = t["labels"]["job"].as_str().unwrap_or("").to_owned();
                (job, t.clone())
            })
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `prometheus` with its config, TSDB and log in `dir`, listening on `addr`.
fn spawn(dir: &TempDir, addr: SocketAddr, flags: &[String]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.0.join("prometheus.log"))
        .expect("log file");
    Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.0.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.0.join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--log.level=warn")
        .args(flags)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start prometheus")
}

fn get_plain(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    get(addr, path)
}

/// GET over HTTP/1.0 (so Go answers without chunked encoding): (status, body).
pub fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let (status, _, body) = super::exchange(
        addr,
        &format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n"),
    )?;
    Ok((status, body))
}

/// Percent-encodes a query parameter value.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A sample's value from the API (`[ts, "value"]`) as f64 (Go writes the shortest round trip;
/// `NaN`, `+Inf`, `-Inf` as such).
pub fn sample_value(pair: &Value) -> f64 {
    pair[1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("bad sample {pair}"))
}

/// A sample's timestamp in milliseconds.
pub fn sample_millis(pair: &Value) -> i64 {
    (pair[0]
        .as_f64()
        .unwrap_or_else(|| panic!("bad sample {pair}"))
        * 1000.0)
        .round() as i64
}

/// One series of a query's result: its labels (`__name__` among them) and its samples as
/// (milliseconds, value), from an instant vector (`value`) or a range (`values`).
pub type Series = (BTreeMap<String, String>, Vec<(i64, f64)>);

pub fn series(result: &[Value]) -> Vec<Series> {
    result
        .iter()
        .map(|r| {
            let labels = r["metric"]
                .as_object()
                .unwrap_or_else(|| panic!("no metric in {r}"))
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                .collect();
            let pairs = match r.get("values") {
                Some(values) => values.as_array().expect("values").clone(),
                None => vec![r["value"].clone()],
            };
            let samples = pairs
                .iter()
                .map(|p| (sample_millis(p), sample_value(p)))
                .collect();
            (labels, samples)
        })
        .collect()
}
