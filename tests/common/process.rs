//! The simulated endpoint and the exporter binary as processes: [`Sim`] (`ecs-task-sim`, killed
//! on drop), [`Launch`] (how a test starts the exporter: any flags, any environment on top of a
//! clean one, a metadata URL, `--docker`, the variable instead of `--bind-address`, a wrapper such
//! as `prlimit` or qemu), [`Exporter`] (the running binary, its drained stderr, killed on drop)
//! and [`Ran`] (a run to its exit). One way for every test to start both and wait for a scrape:
//! `Launch::new().args(..).env(..).task_until(sim_args, timeout, ready)`, or
//! `sim.exporter().args(..).start_until(timeout, ready)` against a simulator of the test's own.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::client::http_get;
use super::{Scrape, parse_strict, runs, wait_for};

pub const EXPORTER: &str = env!("CARGO_BIN_EXE_ecs-container-exporter");
pub const SIM: &str = env!("CARGO_BIN_EXE_ecs-task-sim");

/// How long a starting exporter may take to listen and answer `/metrics` (a debug build, or
/// one under qemu, on a busy machine).
const LISTEN_PATIENCE: Duration = Duration::from_secs(30);
/// How long [`Launch::run`] waits for the binary to exit.
const RUN_PATIENCE: Duration = Duration::from_secs(10);

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    // Below Linux's ephemeral range (32768-60999 by default): a port handed out here and bound
    // a moment later by another process cannot meanwhile become the source port of some
    // outgoing connection. Spread by pid and time so that parallel tests rarely try the same.
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(7919)
        ^ SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
    for _ in 0..2000 {
        let n = seed.wrapping_add(NEXT.fetch_add(7, Ordering::Relaxed));
        let port = 20_000 + (n % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Whether process `pid` holds a listening TCP socket on `port` (from /proc/net/tcp{,6} and
/// /proc/<pid>/fd).
pub fn listens_on(pid: u32, port: u16) -> bool {
    let suffix = format!(":{port:04X}");
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() > 9 && cols[3] == "0A" && cols[1].ends_with(&suffix) {
                inodes.push(format!("socket:[{}]", cols[9]));
            }
        }
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
    })
}

/// `Threads` and `VmRSS` (KiB) of a running process, from /proc/<pid>/status.
pub fn proc_status(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    (field("Threads:"), field("VmRSS:"))
}

/// `GET /metrics` at `addr` in text format, parsed strictly; else what went wrong.
pub fn scrape_at(addr: SocketAddr) -> Result<Scrape, String> {
    match http_get(addr, "/metrics", &[]) {
        Ok((200, _, body)) => parse_strict(&body).map_err(|e| format!("{e}\n{body}")),
        Ok((status, head, _)) => Err(format!("status {status}: {head}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Sends SIG`signal` (`TERM`, `INT`, ...) to a child of the test.
pub fn kill(child: &Child, signal: &str) {
    let pid = child.id().to_string();
    assert!(
        runs("kill", &["-s", signal, &pid]),
        "kill -s {signal} {pid} failed"
    );
}

// ---------------------------------------------------------------------------------------------
// The simulator.

/// The simulated ECS endpoint (`ecs-task-sim`), killed on drop.
pub struct Sim {
    child: Child,
    pub addr: SocketAddr,
    pub url: String,
}

impl Sim {
    /// Starts the simulator on a free port with these extra arguments (e.g. `--profile`).
    pub fn start(args: &[&str]) -> Sim {
        Sim::try_start("127.0.0.1:0", args).unwrap_or_else(|line| panic!("ecs-task-sim: {line:?}"))
    }

    /// Starts it on a given port, retrying for a while: the port may still be held by a socket
    /// that is closing (a test's own placeholder).
    pub fn start_on(port: u16, args: &[&str]) -> Sim {
        let listen = format!("127.0.0.1:{port}");
        let mut last = String::new();
        for _ in 0..50 {
            match Sim::try_start(&listen, args) {
                Ok(sim) => return sim,
                Err(line) => last = line,
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "ecs-task-sim could not listen on port {port} (taken by another process?): {last:?}"
        );
    }

    /// Starts it on `listen`; the first line it printed when that is not its address.
    fn try_start(listen: &str, args: &[&str]) -> Result<Sim, String> {
        let mut child = Command::new(SIM)
            .args(["--listen", listen])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ecs-task-sim");
        let stdout = child.stdout.take().expect("sim stdout");
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let Some(url) = line.trim().strip_prefix("listening on ").map(str::to_owned) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(line);
        };
        let addr: SocketAddr = url
            .trim_start_matches("http://")
            .parse()
            .expect("sim address");
        Ok(Sim { child, addr, url })
    }

    /// An exporter polling this simulator (`--metadata-url`), to be started.
    pub fn exporter(&self) -> Launch {
        Launch::new().metadata_url(&self.url)
    }

    /// `GET path` → its JSON (`/task`, `/task/stats`); panics unless 200.
    pub fn json(&self, path: &str) -> Value {
        let (status, _, body) = http_get(self.addr, path, &[]).expect("GET");
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    }

    /// `GET /control/<query>`, e.g. `fault?kind=status500&endpoint=task`.
    pub fn control(&self, query: &str) -> String {
        let (status, _, body) =
            http_get(self.addr, &format!("/control/{query}"), &[]).expect("sim control");
        assert_eq!(status, 200, "control {query}: {body}");
        body
    }

    /// How many requests `endpoint` (`task`, `task_stats`) has answered (`/control/state`).
    pub fn requests(&self, endpoint: &str) -> u64 {
        let state: Value = serde_json::from_str(&self.control("state")).expect("state is JSON");
        state[endpoint]
            .as_u64()
            .unwrap_or_else(|| panic!("no {endpoint} count in {state}"))
    }

    pub fn fault(&self, query: &str) {
        self.control(&format!("fault?{query}"));
    }

    pub fn clear(&self) {
        self.control("clear");
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Starting the exporter.

/// How a test starts the exporter binary: the program (the binary, or a wrapper and its
/// arguments before it), the arguments, the environment on top of a clean one. [`Launch::start`]
/// adds a free `--exporter-port` and `--bind-address 127.0.0.1`; [`Launch::run`] runs exactly
/// what is described, to its exit.
#[derive(Clone, Debug)]
pub struct Launch {
    command: Vec<OsString>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// Where it listens, and whether `--bind-address` says so (else the environment does).
    listen: IpAddr,
    bind_flag: bool,
}

impl Default for Launch {
    fn default() -> Launch {
        Launch {
            command: vec![EXPORTER.into()],
            args: Vec::new(),
            env: Vec::new(),
            listen: Ipv4Addr::LOCALHOST.into(),
            bind_flag: true,
        }
    }
}

/// An exporter that exited (or never listened) before it answered: its exit code (`None`:
/// still running when given up on, then killed) and everything it logged.
#[derive(Debug)]
pub struct Exited {
    pub code: Option<i32>,
    pub logs: String,
}

/// The binary run to its exit ([`Launch::run`]).
#[derive(Debug)]
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl Launch {
    /// The exporter binary, no arguments, a clean environment (the metadata URL then comes from
    /// the test's `env`).
    pub fn new() -> Launch {
        Launch::default()
    }

    /// Polls `url` (`--metadata-url`).
    pub fn metadata_url(self, url: &str) -> Launch {
        self.args(&["--metadata-url", url])
    }

    /// Docker mode (`--docker`): the engine of this machine, through `DOCKER_HOST` when the
    /// test has it, else the default socket.
    pub fn docker(self) -> Launch {
        let launch = self.args(&["--docker"]);
        match std::env::var("DOCKER_HOST") {
            Ok(host) => launch.env(&[("DOCKER_HOST", &host)]),
            Err(_) => launch,
        }
    }

    /// Appends arguments.
    pub fn args(mut self, args: &[&str]) -> Launch {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// Adds variables to the clean environment.
    pub fn env(mut self, env: &[(&str, &str)]) -> Launch {
        self.env
            .extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        self
    }

    /// Runs the binary through `command` instead: a wrapper and its arguments, the binary among
    /// them (`["prlimit", "--nofile=64:64", EXPORTER]`), or another build of it
    /// (`[qemu-aarch64-static, <arm64 binary>]`). The wrapper must exec it (same process).
    pub fn via(mut self, command: &[impl AsRef<OsStr>]) -> Launch {
        self.command = command.iter().map(|c| c.as_ref().to_owned()).collect();
        self
    }

    /// Listens on `ip` as `EXPORTER_BIND_ADDRESS` says, instead of `--bind-address 127.0.0.1`.
    pub fn bind_from_env(mut self, ip: IpAddr) -> Launch {
        self.listen = ip;
        self.bind_flag = false;
        self.env(&[("EXPORTER_BIND_ADDRESS", &ip.to_string())])
    }

    /// The command line as described, stdin closed, environment cleared but for `env`.
    fn command(&self, extra: &[&str]) -> Command {
        let mut command = Command::new(&self.command[0]);
        command
            .args(&self.command[1..])
            .args(&self.args)
            .args(extra)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        command
    }

    /// Starts it on a free port and waits until this very process listens there and answers
    /// `/metrics`. A port taken in between by another process (the exporter exits, status 1)
    /// is retried on another; an exit with status 2 (a setting it refuses) is returned at once.
    pub fn try_start(&self) -> Result<Exporter, Exited> {
        let mut last = None;
        for _ in 0..5 {
            let (port, listen) = (free_port().to_string(), self.listen.to_string());
            let mut extra = vec!["--exporter-port", &port];
            if self.bind_flag {
                extra.extend(["--bind-address", &listen]);
            }
            let child = self
                .command(&extra)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("start {:?}: {e}", self.command));
            let addr = SocketAddr::new(self.listen, port.parse().expect("port"));
            match Exporter::adopt(child, addr) {
                Ok(exporter) => return Ok(exporter),
                Err(exited) if exited.code == Some(2) => return Err(exited),
                Err(exited) => last = Some(exited),
            }
        }
        Err(last.expect("five tries"))
    }

    /// [`Launch::try_start`], panicking with the logs when it does not answer.
    pub fn start(&self) -> Exporter {
        self.try_start().unwrap_or_else(|e| {
            panic!(
                "the exporter did not answer /metrics ({self:?}): exit {:?}\n{}",
                e.code, e.logs
            )
        })
    }

    /// Starts it and waits (at most `timeout`) until a scrape satisfies `ready`: the exporter
    /// and that scrape. Panics with the last scrape's families and the logs if none does.
    pub fn start_until(
        &self,
        timeout: Duration,
        mut ready: impl FnMut(&Scrape) -> bool,
    ) -> (Exporter, Scrape) {
        let exporter = self.start();
        let scrape = exporter.scrape_until(timeout, &mut ready);
        assert!(
            ready(&scrape),
            "no scrape was ready within {timeout:?} ({self:?}); the last had {:?}\n{}",
            scrape
                .types
                .keys()
                .collect::<std::collections::BTreeSet<_>>(),
            exporter.logs()
        );
        (exporter, scrape)
    }

    /// Starts `ecs-task-sim` with `sim_args`, then this exporter polling it, and waits as
    /// [`Launch::start_until`] does: the simulator, the exporter and the ready scrape.
    pub fn task_until(
        &self,
        sim_args: &[&str],
        timeout: Duration,
        ready: impl FnMut(&Scrape) -> bool,
    ) -> (Sim, Exporter, Scrape) {
        let sim = Sim::start(sim_args);
        let (exporter, scrape) = self
            .clone()
            .metadata_url(&sim.url)
            .start_until(timeout, ready);
        (sim, exporter, scrape)
    }

    /// Runs exactly this command line (no port or address added) to its exit, at most 10 s.
    pub fn run(&self) -> Ran {
        let started = Instant::now();
        let mut child = self
            .command(&[])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {:?}: {e}", self.command));
        let read = |pipe: Option<Box<dyn Read + Send>>| {
            thread::spawn(move || {
                let mut text = String::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_string(&mut text);
                }
                text
            })
        };
        let stdout = read(child.stdout.take().map(|p| Box::new(p) as _));
        let stderr = read(child.stderr.take().map(|p| Box::new(p) as _));
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if started.elapsed() > RUN_PATIENCE {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{self:?} did not exit within {RUN_PATIENCE:?}");
            }
            thread::sleep(Duration::from_millis(5));
        };
        let took = started.elapsed();
        Ran {
            code: status.code(),
            stdout: stdout.join().expect("stdout reader"),
            stderr: stderr.join().expect("stderr reader"),
            took,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The running exporter.

/// The real exporter binary, killed on drop.
pub struct Exporter {
    pub child: Child,
    pub addr: SocketAddr,
    /// stderr, drained by a thread so a chatty exporter never blocks on a full pipe.
    logs: Arc<Mutex<String>>,
    drain: Option<JoinHandle<()>>,
}

impl Exporter {
    /// Starts the exporter against `metadata_url` on a free port (clean environment plus `env`)
    /// and waits until it answers `/metrics`: `Launch::new().metadata_url(..).args(..).env(..)
    /// .start()`.
    pub fn start(metadata_url: &str, args: &[&str], env: &[(&str, &str)]) -> Exporter {
        Launch::new()
            .metadata_url(metadata_url)
            .args(args)
            .env(env)
            .start()
    }

    /// Takes over a started exporter (stderr piped) and waits until this very process listens
    /// on `addr` (checked in /proc, so that another process on the port is never mistaken for
    /// ours) and answers `/metrics`.
    fn adopt(mut child: Child, addr: SocketAddr) -> Result<Exporter, Exited> {
        let logs = Arc::new(Mutex::new(String::new()));
        let drain = child
            .stderr
            .take()
            .map(|stderr| drain(stderr, Arc::clone(&logs)));
        let mut exporter = Exporter {
            child,
            addr,
            logs,
            drain,
        };
        let pid = exporter.child.id();
        let ready = wait_for(LISTEN_PATIENCE, || {
            !exporter.alive()
                || (listens_on(pid, addr.port()) && http_get(addr, "/metrics", &[]).is_ok())
        });
        if ready && exporter.alive() {
            return Ok(exporter);
        }
        let code = exporter
            .child
            .try_wait()
            .ok()
            .flatten()
            .and_then(|s| s.code());
        Err(Exited {
            code,
            logs: exporter.stop_and_logs(),
        })
    }

    /// `GET /metrics` in text format, parsed strictly.
    pub fn scrape(&self) -> Scrape {
        scrape_at(self.addr).unwrap_or_else(|e| panic!("scrape: {e}"))
    }

    pub fn scrape_text(&self) -> String {
        let (status, _, body) = http_get(self.addr, "/metrics", &[]).expect("scrape");
        assert_eq!(status, 200);
        body
    }

    /// Waits until a scrape satisfies `check`; returns that scrape (or the last, at `timeout`).
    pub fn scrape_until(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&Scrape) -> bool,
    ) -> Scrape {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.scrape();
            if check(&s) || Instant::now() > deadline {
                return s;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (at most `timeout`) for a scrape of a poll later than the one `before` shows
    /// (`ecs_exporter_last_success_timestamp_seconds`).
    pub fn next_poll(&self, before: &Scrape, timeout: Duration) -> Scrape {
        let last = |s: &Scrape| s.get("ecs_exporter_last_success_timestamp_seconds", &[]);
        let s = self.scrape_until(timeout, |s| last(s) > last(before));
        assert!(
            last(&s) > last(before),
            "no new poll within {timeout:?}\n{}",
            self.logs()
        );
        s
    }

    /// Everything the exporter logged (kills it first and waits for its stderr to close).
    pub fn stop_and_logs(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.logs_to_the_end()
    }

    /// Sends SIG`signal` (`TERM`, `INT`).
    pub fn signal(&self, signal: &str) {
        kill(&self.child, signal);
    }

    /// Waits (at most `timeout` after `since`, when the signal was sent) for the exit: (exit
    /// code, time since `since`). Every line it logged is in [`Exporter::logs`] then.
    pub fn wait_exit(&mut self, since: Instant, timeout: Duration) -> (Option<i32>, Duration) {
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                let took = since.elapsed();
                self.logs_to_the_end();
                return (status.code(), took);
            }
            assert!(
                since.elapsed() < timeout,
                "no exit {timeout:?} after the signal:\n{}",
                self.logs()
            );
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Sends SIGTERM and waits (at most `timeout`) for the exit: (exit code, time it took).
    pub fn terminate(&mut self, timeout: Duration) -> (Option<i32>, Duration) {
        let sent = Instant::now();
        self.signal("TERM");
        self.wait_exit(sent, timeout)
    }

    /// Whether the process still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// What the exporter logged so far, while it runs.
    pub fn logs(&self) -> String {
        self.logs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Once the process has ended: waits for the drain to read stderr to its end, then the logs.
    fn logs_to_the_end(&mut self) -> String {
        if let Some(drain) = self.drain.take() {
            let _ = drain.join();
        }
        self.logs()
    }
}

/// Appends every line of `stderr` to `logs`, on a thread of its own, until EOF.
fn drain(stderr: ChildStderr, logs: Arc<Mutex<String>>) -> JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut logs = logs.lock().unwrap_or_else(PoisonError::into_inner);
            logs.push_str(&line);
            logs.push('\n');
        }
    })
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
