//! The shipped `FROM scratch` image in the real Docker engine.
//!
//! Builds the image with `make image` (the static musl binary from the host, nothing pulled) and
//! a throw-away scratch "testbed" image holding a static musl `ecs-task-sim` and a tiny UDP
//! receiver compiled here with `rustc` (the simulator is never in the exporter image). On a
//! private Docker network of its own it runs the simulator, the receiver and the exporter, the
//! exporter confined (`--read-only --cap-drop ALL --memory 16m --memory-swap 16m --cpus 0.25`),
//! pointed at both by container name (DNS inside the scratch image), its port published on
//! 127.0.0.1 only. Then, from the host, it checks:
//! - the image: one file (the exporter), user 65534, port 9545, entrypoint, HEALTHCHECK with
//!   `--healthcheck`, OCI labels; `--healthcheck` exits 1 when no exporter answers;
//! - `/metrics` answers and parses strictly throughout a soak of `CONTAINER_TEST_SECONDS`
//!   seconds (15 when unset, 60 when set but not a number) of scrapes every 50 ms and polls
//!   every second, with `ecs_exporter_up 1` (the metadata URL resolved by name);
//! - the container's HEALTHCHECK turns `healthy`; no OOM kill; still running;
//! - DogStatsD lines reach the receiver by name and `ecs_exporter_statsd_errors_total` stays 0;
//! - `docker stop -t 1` (SIGTERM to PID 1, SIGKILL after 1 s) ends it with exit code 0.
//!
//! Where no Docker engine answers `docker version`, the test says so in one line and passes
//! (fails under `CI=true`). Containers, the network, both images and the temporary directory
//! are removed even on failure.
//! Budgets (sizes, RSS, start time) are printed, not asserted: see `tests/bench/budgets.sh`.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::docker::{
    AMD64, Cleanup, cargo_dist, check_image_config, dist_binary, docker, image_own_files, inspect,
    make, no_engine, rustc,
};
use common::process::scrape_at;
use common::{http_get, run_ok, wait_for};

const SIM_PORT: u16 = 51678;
const STATSD_PORT: u16 = 8125;

#[test]
fn scratch_image_runs_beside_the_simulated_endpoint() {
    if no_engine() {
        return;
    }
    let seconds = soak_seconds();
    let pid = std::process::id();
    let name = |what: &str| format!("ecx-test-{pid}-{what}");
    let mut env = Cleanup::default();
    let image = format!("ecs-container-exporter-test:{pid}");
    let testbed = format!("ecs-exporter-testbed-test:{pid}");
    let network = name("net");
    let (sim, receiver, exporter) = (name("sim"), name("statsd"), name("exporter"));
    let workdir = std::env::temp_dir().join(name("build"));
    env.images.extend([image.clone(), testbed.clone()]);
    env.networks.push(network.clone());
    env.containers.extend([
        exporter.clone(),
        receiver.clone(),
        sim.clone(),
        name("files"),
        name("probe"),
    ]);
    env.dir = Some(workdir.clone());

    // --- Images. -------------------------------------------------------------------------
    let built = Instant::now();
    make(&["image", &format!("IMAGE={image}")]);
    cargo_dist(AMD64, "ecs-task-sim");
    build_testbed(&workdir, &testbed);
    eprintln!("images built in {:.1?}", built.elapsed());
    check_image(&image, &name("files"));

    // Nothing listening: `--healthcheck` reports failure.
    let code = docker_status(&[
        "run",
        "--name",
        &name("probe"),
        "--network",
        "none",
        &image,
        "--healthcheck",
    ]);
    assert_eq!(code, Some(1), "--healthcheck with no exporter");

    // --- The private network: simulator, receiver, exporter. ------------------------------
    docker(&["network", "create", "--driver", "bridge", &network]).expect("network create");
    let confined = ["--read-only", "--cap-drop", "ALL", "--network", &network];
    let sim_listen = format!("0.0.0.0:{SIM_PORT}");
    let mut args = vec!["run", "-d", "--name", &sim];
    args.extend(confined);
    args.extend([&testbed, "--listen", &sim_listen, "--containers", "4"]);
    args.extend(["--refresh-secs", "0"]);
    docker(&args).expect("start the simulator");
    let statsd_port = STATSD_PORT.to_string();
    let mut args = vec![
        "run",
        "-d",
        "--name",
        &receiver,
        "--entrypoint",
        "/udp-recv",
    ];
    args.extend(confined);
    args.extend([testbed.as_str(), &statsd_port]);
    docker(&args).expect("start the UDP receiver");
    for (container, line) in [(&sim, "listening on"), (&receiver, "receiving on")] {
        assert!(
            wait_for(Duration::from_secs(10), || logs(container).contains(line)),
            "{container} did not start: {}",
            logs(container)
        );
    }

    let metadata_url = format!("http://{sim}:{SIM_PORT}");
    let mut args = vec!["run", "-d", "--name", &exporter];
    args.extend(confined);
    args.extend(["--memory", "16m", "--memory-swap", "16m", "--cpus", "0.25"]);
    args.extend(["--health-interval", "1s", "--health-timeout", "3s"]);
    args.extend(["--health-retries", "3", "--health-start-period", "0s"]);
    args.extend(["-p", "127.0.0.1:0:9545", &image]);
    args.extend(["--metadata-url", &metadata_url, "--interval", "1"]);
    args.extend(["--use-statsd", "--statsd-host", &receiver]);
    args.extend(["--statsd-port", &statsd_port]);
    let started = Instant::now();
    docker(&args).expect("start the exporter");
    let addr = published_addr(&exporter);
    assert!(addr.ip().is_loopback(), "published on {addr}");
    assert!(
        wait_for(Duration::from_secs(10), || {
            matches!(http_get(addr, "/metrics", &[]), Ok((200, _, _)))
        }),
        "no /metrics answer on {addr}: {}",
        logs(&exporter)
    );
    eprintln!(
        "first /metrics answer {:.0?} after `docker run` was called",
        started.elapsed()
    );
    let mut last = None;
    let up = wait_for(Duration::from_secs(15), || {
        last = scrape_at(addr).ok();
        last.as_ref()
            .is_some_and(|s| s.get("ecs_exporter_up", &[]) == Some(1.0))
    });
    assert!(
        up,
        "the exporter did not reach {metadata_url} by name: {:?}\n{}",
        last.map(|s| s.samples),
        logs(&exporter)
    );

    // --- The soak: scrapes every 50 ms, a poll and a DogStatsD send every second. ----------
    eprintln!("soak: {seconds} s of scrapes (CONTAINER_TEST_SECONDS to change)");
    let soak = Instant::now();
    let (mut scrapes, mut healthy_after) = (0u32, None);
    let mut next_health = Instant::now();
    let mut last = None;
    while soak.elapsed() < Duration::from_secs(seconds) {
        let s = scrape_at(addr).unwrap_or_else(|e| {
            panic!(
                "scrape {scrapes} failed after {:?}: {e}\n{}",
                soak.elapsed(),
                logs(&exporter)
            )
        });
        assert_eq!(
            s.get("ecs_exporter_up", &[]),
            Some(1.0),
            "up after {:?}\n{}",
            soak.elapsed(),
            logs(&exporter)
        );
        assert_eq!(s.series("ecs_task_info").len(), 1);
        scrapes += 1;
        last = Some(s);
        if healthy_after.is_none() && Instant::now() >= next_health {
            next_health += Duration::from_secs(1);
            if inspect(&exporter, "{{.State.Health.Status}}") == "healthy" {
                healthy_after = Some(started.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let last = last.expect("at least one scrape");
    let rss = container_rss_kib(&exporter);
    let state = inspect(
        &exporter,
        "{{.State.Running}} {{.State.OOMKilled}} {{.State.Health.Status}}",
    );
    eprintln!(
        "soak: {scrapes} scrapes in {:.1?}; state {state}; healthy {healthy_after:?} after start; \
         VmRSS {rss}",
        soak.elapsed()
    );
    assert_eq!(
        state, "true false healthy",
        "running, not OOM-killed, healthy"
    );
    assert!(healthy_after.is_some());
    assert!(
        !last.series("ecs_container_info").is_empty()
            && !last.series("ecs_task_cpu_usage_ratio").is_empty(),
        "a full scrape: {:?}",
        last.samples.keys()
    );

    // DogStatsD by container name: lines arrived, no send failed.
    assert_eq!(
        last.get("ecs_exporter_statsd_errors_total", &[]),
        Some(0.0),
        "statsd errors"
    );
    let received = logs(&receiver);
    let lines: Vec<&str> = received
        .lines()
        .filter(|l| l.starts_with("ecs_task."))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("ecs_task.mem_usage:") && l.contains("|g|#container_name:")),
        "no DogStatsD lines at {receiver}:\n{}",
        &received[..received.len().min(2000)]
    );
    assert!(lines.iter().all(|l| l.contains("|g|#")), "{lines:?}");
    eprintln!("DogStatsD: {} lines received", lines.len());

    // SIGTERM to PID 1; docker sends SIGKILL (exit 137) if it is still running after 1 s.
    let stopping = Instant::now();
    docker(&["stop", "-t", "1", &exporter]).expect("docker stop");
    let stop_took = stopping.elapsed();
    let state = inspect(&exporter, "{{.State.ExitCode}} {{.State.OOMKilled}}");
    eprintln!("docker stop took {stop_took:.0?}; exit code, OOM killed: {state}");
    assert_eq!(state, "0 false", "exit after SIGTERM:\n{}", logs(&exporter));
    assert!(logs(&exporter).contains("SIGTERM received"));
}

/// Seconds of soak: 15 by default, `CONTAINER_TEST_SECONDS` when set (60 if not a number).
fn soak_seconds() -> u64 {
    match std::env::var("CONTAINER_TEST_SECONDS") {
        Ok(v) => v.trim().parse().unwrap_or(60),
        Err(_) => 15,
    }
}

// ---------------------------------------------------------------------------------------------
// The images.

/// The image's configuration and its files (`docker export` of a created, never started,
/// container): the exporter binary is the only file of its own.
fn check_image(image: &str, probe: &str) {
    let size = check_image_config(image, "amd64");
    let binary = std::fs::metadata(dist_binary(AMD64, "ecs-container-exporter"))
        .expect("the static binary")
        .len();
    eprintln!("image {image}: {size} bytes; static binary {binary} bytes");

    let files: Vec<(String, u64)> = image_own_files(image, probe)
        .into_iter()
        .map(|f| (f.path, f.data.len() as u64))
        .collect();
    assert_eq!(
        files,
        [("ecs-container-exporter".to_owned(), binary)],
        "the image holds the exporter binary only"
    );
}

/// A scratch image with the static simulator (the entrypoint) and `/udp-recv`, a UDP receiver
/// that prints every datagram to stdout.
fn build_testbed(dir: &Path, tag: &str) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("temporary directory");
    std::fs::copy(dist_binary(AMD64, "ecs-task-sim"), dir.join("ecs-task-sim"))
        .expect("copy the sim");
    std::fs::write(dir.join("udp-recv.rs"), RECEIVER).expect("write the receiver");
    run_ok(
        Command::new(rustc())
            .current_dir(dir)
            .args(["--edition", "2021", "--target", AMD64, "-C", "opt-level=s"])
            .args(["-C", "panic=abort", "-C", "strip=symbols", "-o", "udp-recv"])
            .arg("udp-recv.rs"),
    );
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY ecs-task-sim udp-recv /\nUSER 65534:65534\n\
         ENTRYPOINT [\"/ecs-task-sim\"]\n",
    )
    .expect("write the Dockerfile");
    std::fs::remove_file(dir.join("udp-recv.rs")).expect("remove the source");
    let dir = dir.to_string_lossy();
    docker(&["build", "-q", "-t", tag, &dir]).expect("build the testbed image");
}

const RECEIVER: &str = r#"
use std::io::Write;
use std::net::UdpSocket;

fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(8125);
    let socket = UdpSocket::bind(("0.0.0.0", port)).expect("bind");
    let mut out = std::io::stdout();
    let _ = writeln!(out, "receiving on udp port {port}");
    let mut buf = vec![0u8; 65536];
    loop {
        if let Ok(n) = socket.recv(&mut buf) {
            let _ = out.write_all(&buf[..n]);
            let _ = out.write_all(b"\n");
            let _ = out.flush();
        }
    }
}
"#;

// ---------------------------------------------------------------------------------------------
// Docker, through its command line: what only this test asks of it (the rest is in
// `common::docker`).

/// The exit status of a `docker` command (for `docker run`, the container's).
fn docker_status(args: &[&str]) -> Option<i32> {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()
        .and_then(|s| s.code())
}

/// stdout and stderr of a container, together.
fn logs(container: &str) -> String {
    Command::new("docker")
        .args(["logs", container])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
        })
        .unwrap_or_default()
}

/// The host address of the container's port 9545 (`docker port`, e.g. `127.0.0.1:49153`).
fn published_addr(container: &str) -> SocketAddr {
    let out = docker(&["port", container, "9545/tcp"]).expect("docker port");
    out.lines()
        .find_map(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no published address in {out:?}"))
}

/// VmRSS of the container's main process, read from the host's /proc (or `docker stats`).
fn container_rss_kib(container: &str) -> String {
    let pid = inspect(container, "{{.State.Pid}}");
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .map(|v| v.trim().to_owned())
        })
        .or_else(|| {
            docker(&[
                "stats",
                "--no-stream",
                "--format",
                "{{.MemUsage}} (cgroup)",
                container,
            ])
            .ok()
        })
        .unwrap_or_else(|| "unknown".into())
}
