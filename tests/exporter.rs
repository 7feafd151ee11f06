//! The real exporter binary against the simulated ECS endpoint (`ecs-task-sim`): what a scrape of
//! every simulator profile contains (SPEC §3), INCLUDE/EXCLUDE (§1), the HTTP surface and
//! OpenMetrics (§2, §3), configuration errors and `--healthcheck` (§1), `promtool check metrics`,
//! and that the README names every family the exporter writes.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv6Addr, TcpListener};
use std::time::{Duration, Instant};

use common::client::header;
use common::prometheus::{promtool_check_metrics, promtool_installed};
use common::statsd::{closed_udp_port, flags};
use common::{
    ADDED_FAMILIES, Exporter, LEGACY_FAMILIES, Launch, PROFILES, Scrape, Sim, container_names,
    free_port, http_get, http_request, label, parse_strict, skip, task_ratio_ready, wait_for,
};

const TIMEOUT: Duration = Duration::from_secs(10);
const TASK: &str = "_task_";
const PAUSE: &str = "~internal~ecs~pause";

/// Families a container without a stats sample may have (SPEC §3.2, last paragraph).
const METADATA_ONLY: [&str; 9] = [
    "ecs_task_cpu_limit",
    "ecs_task_mem_limit",
    "ecs_container_info",
    "ecs_container_known_status",
    "ecs_container_health_status",
    "ecs_container_restarts_total",
    "ecs_container_exit_code",
    "ecs_container_start_time_seconds",
    "ecs_container_memory_limit_bytes",
];

/// The 2.x families that only cgroup v1 payloads have.
const CGROUP_V1_ONLY: [&str; 3] = [
    "ecs_task_percpu_usage_ratio",
    "ecs_task_disk_read_iops_total",
    "ecs_task_disk_written_iops_total",
];

/// Added families that only some profiles or settings have.
const SOMETIMES: [&str; 3] = [
    "ecs_task_ephemeral_storage_used_bytes",
    "ecs_task_ephemeral_storage_reserved_bytes",
    "ecs_exporter_statsd_errors_total",
];

/// Families that every profile of the simulator has series for.
fn always() -> impl Iterator<Item = &'static str> {
    let legacy = LEGACY_FAMILIES
        .into_iter()
        .filter(|f| !CGROUP_V1_ONLY.contains(f));
    legacy.chain(
        ADDED_FAMILIES
            .into_iter()
            .filter(|f| !SOMETIMES.contains(f)),
    )
}

/// The network families.
fn network() -> impl Iterator<Item = &'static str> {
    LEGACY_FAMILIES
        .into_iter()
        .filter(|f| f.starts_with("ecs_task_network_"))
}

/// Per-container rows plus a `_task_` row that sums every container with data.
const SUMMED: [&str; 6] = [
    "ecs_task_mem_usage",
    "ecs_task_mem_cache",
    "ecs_task_disk_read_bytes_total",
    "ecs_task_disk_written_bytes_total",
    "ecs_task_disk_read_iops_total",
    "ecs_task_disk_written_iops_total",
];

/// 2.x families that never have a `_task_` row.
const NO_TASK_ROW: [&str; 6] = [
    "ecs_task_percpu_usage_ratio",
    "ecs_task_cpu_kernelmode",
    "ecs_task_cpu_usermode",
    "ecs_task_cpu_throttle_periods",
    "ecs_task_cpu_throttle_throttled_periods",
    "ecs_task_cpu_throttle_throttled_time",
];

/// Counters that grow with time in the simulator for every running container.
const ADVANCING: [&str; 4] = [
    "ecs_container_cpu_usage_seconds_total",
    "ecs_task_network_rx_bytes_total",
    "ecs_task_network_tx_bytes_total",
    "ecs_task_disk_read_bytes_total",
];

// ---------------------------------------------------------------------------------------------
// Helpers.

/// The exporter polling every 0.2 s, with these extra arguments and variables.
fn polling(args: &[&str], env: &[(&str, &str)]) -> Launch {
    Launch::new()
        .args(&["--interval", "0.2"])
        .args(args)
        .env(env)
}

/// The simulator (`--refresh-secs 0`: every request is a new sample) and the exporter polling
/// it every 0.2 s; returns both and the first scrape with the task's CPU ratio.
fn start(profile: &str, args: &[&str], env: &[(&str, &str)]) -> (Sim, Exporter, Scrape) {
    let sim = ["--profile", profile, "--refresh-secs", "0"];
    polling(args, env).task_until(&sim, TIMEOUT, task_ratio_ready)
}

/// An exporter polling `sim` every 0.2 s, and its first scrape with the task's CPU ratio.
fn start_exporter(sim: &Sim, args: &[&str], env: &[(&str, &str)]) -> (Exporter, Scrape) {
    polling(args, env)
        .metadata_url(&sim.url)
        .start_until(TIMEOUT, task_ratio_ready)
}

/// The families that have a series for this container.
fn families_of(s: &Scrape, container: &str) -> BTreeSet<String> {
    s.samples
        .keys()
        .filter(|(_, labels)| label(labels, "container_name") == Some(container))
        .map(|(name, _)| name.clone())
        .collect()
}

/// The series of a family, keyed by `container_name` (and `interface`, `cpu` when present).
fn rows(s: &Scrape, family: &str) -> BTreeMap<(String, String), f64> {
    s.series(family)
        .into_iter()
        .map(|(labels, v)| {
            let c = label(labels, "container_name").unwrap_or("").to_owned();
            let extra = label(labels, "interface")
                .or_else(|| label(labels, "cpu"))
                .unwrap_or("")
                .to_owned();
            ((c, extra), v)
        })
        .collect()
}

/// Runs the exporter binary with exactly these arguments (clean environment plus `env`) to its
/// exit: (exit code, stdout, stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let ran = Launch::new().args(args).env(env).run();
    (ran.code, ran.stdout, ran.stderr)
}

/// Checks an OpenMetrics 1.0.0 exposition's structure and returns it rewritten as text format
/// 0.0.4 (counter families renamed to their `_total` sample name, `# EOF` dropped), so that
/// `parse_strict` can check the rest.
fn openmetrics_to_text(om: &str) -> Result<String, String> {
    let body = om
        .strip_suffix("# EOF\n")
        .ok_or("does not end with \"# EOF\\n\"")?;
    let mut text = String::new();
    let mut families: BTreeSet<String> = BTreeSet::new();
    let mut help: Option<(String, String)> = None; // HELP waiting for its TYPE
    let mut sample_name: Option<String> = None; // of the current family
    for (n, line) in body.lines().enumerate() {
        let at = |msg: &str| format!("line {}: {msg}: {line}", n + 1);
        if line.is_empty() {
            return Err(at("blank line"));
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            if help.replace((name.to_owned(), text.to_owned())).is_some() {
                return Err(at("HELP after a HELP without TYPE"));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or_else(|| at("TYPE without a type"))?;
            let (help_name, help_text) = help.take().ok_or_else(|| at("TYPE without HELP"))?;
            if help_name != name {
                return Err(at("HELP and TYPE name different families"));
            }
            if !families.insert(name.to_owned()) {
                return Err(at("family TYPEd twice"));
            }
            let sample = match kind {
                "counter" if name.ends_with("_total") => {
                    return Err(at("counter family named with _total"));
                }
                "counter" => format!("{name}_total"),
                "gauge" => name.to_owned(),
                _ => return Err(at("unexpected type")),
            };
            text.push_str(&format!(
                "# HELP {sample} {help_text}\n# TYPE {sample} {kind}\n"
            ));
            sample_name = Some(sample);
            continue;
        }
        if line.starts_with('#') {
            return Err(at("unexpected comment (# EOF must be last)"));
        }
        let name = line.split(['{', ' ']).next().unwrap_or("");
        if help.is_some() || sample_name.as_deref() != Some(name) {
            return Err(at(
                "sample outside its family (counter samples are <family>_total)",
            ));
        }
        text.push_str(line);
        text.push('\n');
    }
    if help.is_some() {
        return Err("a HELP without a TYPE at the end".into());
    }
    Ok(text)
}

// ---------------------------------------------------------------------------------------------
// 1. Every simulator profile.

struct Expect {
    profile: &'static str,
    /// cgroup v1: percpu and iops exist.
    cgroup_v1: bool,
    task_cpu_limit: Option<f64>,
    task_mem_limit: Option<f64>,
    /// awsvpc / Fargate: `_task_` network = max of the containers; bridge: the sum.
    shared_network: bool,
    /// Fargate's `EphemeralStorageMetrics`.
    ephemeral: bool,
    /// A container with a health check and its state.
    health: Option<(&'static str, &'static str)>,
    /// Containers with stats that the default EXCLUDE hides.
    hidden: &'static [&'static str],
}

fn check_profile(e: &Expect) {
    let p = e.profile;
    let (_sim, exporter, s1) = start(p, &[], &[]);

    // Values: all finite; counters end in _total and only they.
    for ((name, labels), v) in &s1.samples {
        assert!(v.is_finite(), "{p}: {name}{labels:?} = {v}");
    }
    for (name, kind) in &s1.types {
        assert_eq!(
            kind == "counter",
            name.ends_with("_total"),
            "{p}: {name} is a {kind}"
        );
    }

    // Families that must exist, and those that must not.
    for family in always() {
        assert!(s1.has_family(family), "{p}: no {family}");
    }
    for family in CGROUP_V1_ONLY {
        assert_eq!(
            s1.has_family(family),
            e.cgroup_v1,
            "{p}: {family} (cgroup v1: {})",
            e.cgroup_v1
        );
        assert_eq!(
            s1.types.contains_key(family),
            e.cgroup_v1,
            "{p}: HELP/TYPE of {family} without series"
        );
    }
    for family in [
        "ecs_task_ephemeral_storage_used_bytes",
        "ecs_task_ephemeral_storage_reserved_bytes",
    ] {
        assert_eq!(s1.has_family(family), e.ephemeral, "{p}: {family}");
    }
    assert!(
        !s1.has_family("ecs_exporter_statsd_errors_total"),
        "{p}: statsd errors without --use-statsd"
    );
    assert_eq!(s1.value("ecs_exporter_up", &[]), 1.0, "{p}");
    assert_eq!(s1.value("ecs_task_exporter_status", &[]), 1.0, "{p}");

    // `_task_` rows.
    let task = [("container_name", TASK)];
    assert_eq!(
        s1.get("ecs_task_cpu_limit", &task),
        e.task_cpu_limit,
        "{p}: _task_ cpu_limit"
    );
    assert_eq!(
        s1.get("ecs_task_mem_limit", &task),
        e.task_mem_limit,
        "{p}: _task_ mem_limit"
    );
    for family in [
        "ecs_task_cpu_usage_ratio",
        "ecs_task_mem_usage",
        "ecs_task_mem_cache",
    ]
    .into_iter()
    .chain([
        "ecs_task_disk_read_bytes_total",
        "ecs_task_disk_written_bytes_total",
    ]) {
        assert!(
            s1.get(family, &task).is_some(),
            "{p}: no _task_ row in {family}"
        );
    }
    for family in NO_TASK_ROW {
        assert!(
            !rows(&s1, family).keys().any(|(c, _)| c == TASK),
            "{p}: _task_ row in {family}"
        );
    }

    // Ratios: finite and not negative; the task's exists while some container's does too.
    for family in ["ecs_task_cpu_usage_ratio", "ecs_task_percpu_usage_ratio"] {
        for (key, v) in rows(&s1, family) {
            assert!(v.is_finite() && v >= 0.0, "{p}: {family}{key:?} = {v}");
        }
    }
    assert!(
        rows(&s1, "ecs_task_cpu_usage_ratio").len() >= 2,
        "{p}: no container has a CPU ratio"
    );

    // Summed families: `_task_` = Σ containers (with hidden ones, more than the visible sum).
    for family in SUMMED {
        let r = rows(&s1, family);
        if r.is_empty() {
            continue;
        }
        let total = r.get(&(TASK.to_owned(), String::new())).copied();
        let visible: f64 = r
            .iter()
            .filter(|((c, _), _)| c != TASK)
            .map(|(_, v)| v)
            .sum();
        let total = total.unwrap_or_else(|| panic!("{p}: no _task_ row in {family}"));
        if e.hidden.is_empty() {
            assert_eq!(
                total, visible,
                "{p}: _task_ {family} is not the sum of the containers"
            );
        } else {
            assert!(
                total > visible,
                "{p}: _task_ {family} {total} leaves out {:?} ({visible})",
                e.hidden
            );
        }
    }

    // Network: `_task_` per interface is the max (shared ENI) or the sum (bridge).
    for family in network() {
        let r = rows(&s1, family);
        let interfaces: BTreeSet<&String> = r.keys().map(|(_, i)| i).collect();
        assert!(!interfaces.is_empty(), "{p}: no {family}");
        for interface in interfaces {
            assert!(
                !interface.is_empty(),
                "{p}: {family} without interface label"
            );
            let per: Vec<f64> = r
                .iter()
                .filter(|((c, i), _)| c != TASK && i == interface)
                .map(|(_, v)| *v)
                .collect();
            let total = *r
                .get(&(TASK.to_owned(), interface.clone()))
                .unwrap_or_else(|| {
                    panic!("{p}: no _task_ row in {family}{{interface={interface}}}")
                });
            let max = per.iter().copied().fold(0.0, f64::max);
            let sum: f64 = per.iter().sum();
            if e.shared_network {
                assert_eq!(
                    total, max,
                    "{p}: _task_ {family} {interface} is not the max of {per:?}"
                );
                if per.iter().filter(|v| **v > 0.0).count() >= 2 {
                    assert!(
                        total < sum,
                        "{p}: _task_ {family} {interface} counts the shared interface twice"
                    );
                }
            } else {
                assert_eq!(
                    total, sum,
                    "{p}: _task_ {family} {interface} is not the sum of {per:?}"
                );
            }
        }
    }

    // The stopped container: metadata families only.
    let stopped = [("container_name", "nonessential")];
    let fams = families_of(&s1, "nonessential");
    for f in &fams {
        assert!(
            METADATA_ONLY.contains(&f.as_str()),
            "{p}: stopped container has {f}"
        );
    }
    assert!(
        fams.contains("ecs_container_info"),
        "{p}: stopped container has no ecs_container_info"
    );
    assert_eq!(
        s1.get(
            "ecs_container_known_status",
            &[("container_name", "nonessential"), ("status", "STOPPED")]
        ),
        Some(1.0),
        "{p}"
    );
    assert!(
        s1.get("ecs_container_exit_code", &stopped).is_some(),
        "{p}: stopped container without exit code"
    );
    assert!(s1.get("ecs_task_mem_usage", &stopped).is_none(), "{p}");

    // Hidden containers have no series at all.
    let names = container_names(&s1);
    for hidden in e.hidden {
        assert!(!names.contains(*hidden), "{p}: {hidden} is exported");
    }
    assert!(names.contains(TASK), "{p}");

    if let Some((container, state)) = e.health {
        for status in ["healthy", "unhealthy", "unknown"] {
            let v = s1.value(
                "ecs_container_health_status",
                &[("container_name", container), ("status", status)],
            );
            assert_eq!(
                v,
                f64::from(u8::from(status == state)),
                "{p}: {container} {status}"
            );
        }
    }

    // Every exported container reports its `RestartCount`, 0 at the start.
    let restarts = s1.series("ecs_container_restarts_total");
    assert_eq!(restarts.len(), names.len() - 1, "{p}: {restarts:?}");
    for (labels, v) in restarts {
        assert_eq!(v, 0.0, "{p}: {labels:?}");
    }

    // Two polls: counters never go down, and the ones that advance in the simulator do.
    let s2 = exporter.next_poll(&s1, TIMEOUT);
    for (name, kind) in &s1.types {
        if kind != "counter" {
            continue;
        }
        for (labels, v1) in s1.series(name) {
            if let Some(v2) = s2.samples.get(&(name.clone(), labels.clone())) {
                assert!(
                    *v2 >= v1,
                    "{p}: counter {name}{labels:?} went down: {v1} → {v2}"
                );
            }
        }
    }
    for name in ADVANCING {
        let before = s1.series(name);
        assert!(!before.is_empty(), "{p}: no {name}");
        for (labels, v1) in before {
            let v2 = s2.samples.get(&(name.to_owned(), labels.clone())).copied();
            assert!(
                v2.is_some_and(|v2| v2 > v1),
                "{p}: {name}{labels:?} did not advance: {v1} → {v2:?}"
            );
        }
    }
}

#[test]
fn fargate_scrape_is_strict_with_cgroup_v1_families_task_limits_and_advancing_counters() {
    check_profile(&Expect {
        profile: "fargate",
        cgroup_v1: true,
        task_cpu_limit: Some(256.0),
        task_mem_limit: Some(512.0),
        shared_network: true,
        ephemeral: true,
        health: Some(("ecs-exporter", "healthy")),
        hidden: &[],
    });
}

#[test]
fn ec2_bridge_scrape_sums_network_over_containers_and_has_no_percpu_or_iops() {
    check_profile(&Expect {
        profile: "ec2-bridge",
        cgroup_v1: false,
        task_cpu_limit: None,
        task_mem_limit: None,
        shared_network: false,
        ephemeral: false,
        health: Some(("ecs-exporter", "healthy")),
        hidden: &[],
    });
}

#[test]
fn managed_instances_scrape_counts_the_shared_interface_once_and_reports_health() {
    check_profile(&Expect {
        profile: "managed-instances",
        cgroup_v1: false,
        task_cpu_limit: None,
        task_mem_limit: Some(256.0),
        shared_network: true,
        ephemeral: false,
        health: Some(("main", "healthy")),
        hidden: &[],
    });
}

#[test]
fn ec2_awsvpc_scrape_counts_the_shared_interface_once_and_hides_the_pause_container() {
    check_profile(&Expect {
        profile: "ec2-awsvpc",
        cgroup_v1: false,
        task_cpu_limit: None,
        task_mem_limit: Some(256.0),
        shared_network: true,
        ephemeral: false,
        health: Some(("ecs-exporter", "healthy")),
        hidden: &[PAUSE],
    });
}

#[test]
fn fargate_keeps_publishing_the_last_window_while_read_does_not_advance() {
    // Default Fargate refresh: `read` advances every 10 s, so polls 0.2 s apart see one sample.
    let sim = Sim::start(&["--profile", "fargate"]);
    let (exporter, s1) = start_exporter(&sim, &[], &[]);
    let s2 = exporter.next_poll(&s1, TIMEOUT);
    let s3 = exporter.next_poll(&s2, TIMEOUT);
    for s in [&s2, &s3] {
        assert_eq!(
            rows(s, "ecs_task_cpu_usage_ratio"),
            rows(&s1, "ecs_task_cpu_usage_ratio")
        );
        assert_eq!(
            rows(s, "ecs_task_percpu_usage_ratio"),
            rows(&s1, "ecs_task_percpu_usage_ratio")
        );
        assert_eq!(
            rows(s, "ecs_container_cpu_usage_seconds_total"),
            rows(&s1, "ecs_container_cpu_usage_seconds_total")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 2. INCLUDE / EXCLUDE.

#[test]
fn include_and_exclude_choose_the_exported_containers_while_task_rows_cover_all() {
    let sim = Sim::start(&["--profile", "ec2-awsvpc", "--refresh-secs", "0"]);
    let everyone: BTreeSet<String> = ["ecs-exporter", "main", "nonessential", PAUSE, TASK]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let set =
        |names: &[&str]| -> BTreeSet<String> { names.iter().map(|s| (*s).to_owned()).collect() };
    type Case<'a> = (
        &'a str,
        &'a [&'a str],
        &'a [(&'a str, &'a str)],
        BTreeSet<String>,
    );
    let cases: Vec<Case> = vec![
        (
            "default EXCLUDE",
            &[],
            &[],
            set(&["ecs-exporter", "main", "nonessential", TASK]),
        ),
        (
            "EXCLUDE= (empty) exports all",
            &[],
            &[("EXCLUDE", "")],
            everyone.clone(),
        ),
        (
            "--exclude \"\" exports all",
            &["--exclude", ""],
            &[],
            everyone.clone(),
        ),
        (
            "EXCLUDE=main replaces the default",
            &[],
            &[("EXCLUDE", "main")],
            set(&["ecs-exporter", "nonessential", PAUSE, TASK]),
        ),
        (
            "--exclude wins over EXCLUDE",
            &["--exclude", " main , nonessential "],
            &[("EXCLUDE", "ecs-exporter")],
            set(&["ecs-exporter", PAUSE, TASK]),
        ),
        (
            "--include main",
            &["--include", "main"],
            &[],
            set(&["main", TASK]),
        ),
        (
            "INCLUDE is a trimmed comma list",
            &[],
            &[("INCLUDE", " main , ecs-exporter ,")],
            set(&["main", "ecs-exporter", TASK]),
        ),
        (
            "--include wins over INCLUDE",
            &["--include", "ecs-exporter"],
            &[("INCLUDE", "main")],
            set(&["ecs-exporter", TASK]),
        ),
    ];
    // Start them all, then check each.
    let running: Vec<(&Case, Exporter, Scrape)> = cases
        .iter()
        .map(|case| {
            let (exporter, scrape) = start_exporter(&sim, case.1, case.2);
            (case, exporter, scrape)
        })
        .collect();
    let mut all_exported = false;
    for ((what, _, _, want), _exporter, s) in &running {
        assert_eq!(&container_names(s), want, "{what}");
        // Task totals cover every container with stats, exported or not.
        let covers_all = [PAUSE, "main", "ecs-exporter"]
            .iter()
            .all(|c| want.contains(*c));
        all_exported |= covers_all;
        for family in ["ecs_task_mem_usage", "ecs_task_disk_read_bytes_total"] {
            let r = rows(s, family);
            let total = r[&(TASK.to_owned(), String::new())];
            let visible: f64 = r
                .iter()
                .filter(|((c, _), _)| c != TASK)
                .map(|(_, v)| v)
                .sum();
            if covers_all {
                assert_eq!(
                    total, visible,
                    "{what}: _task_ {family} is not the sum of all containers"
                );
            } else {
                assert!(
                    total > visible,
                    "{what}: _task_ {family} {total} leaves out hidden containers ({visible})"
                );
            }
        }
    }
    assert!(all_exported, "no case exported every container");
}

#[test]
fn metadata_url_comes_from_ecs_container_metadata_uri_v4_before_the_v3_variable() {
    let sim = Sim::start(&["--profile", "ec2-bridge", "--refresh-secs", "0"]);
    // An exporter configured only by `env` (and a free port): does it get data?
    let polls = |env: &[(&str, &str)]| {
        let exporter = polling(&[], env).start();
        task_ratio_ready(&exporter.scrape_until(TIMEOUT, task_ratio_ready))
    };
    assert!(
        polls(&[
            ("ECS_CONTAINER_METADATA_URI_V4", &sim.url),
            ("ECS_CONTAINER_METADATA_URI", "http://127.0.0.1:9"),
        ]),
        "no data: ECS_CONTAINER_METADATA_URI_V4 was not used"
    );
    assert!(
        polls(&[("ECS_CONTAINER_METADATA_URI", &sim.url)]),
        "ECS_CONTAINER_METADATA_URI was not used"
    );
}

#[test]
fn bind_address_takes_an_ipv6_literal_and_healthcheck_follows_it() {
    if TcpListener::bind("[::1]:0").is_err() {
        return skip("::1 is not available (no IPv6 loopback)");
    }
    let sim = Sim::start(&["--profile", "ec2-bridge", "--refresh-secs", "0"]);
    // `EXPORTER_BIND_ADDRESS=::1`, no `--bind-address`.
    let exporter = polling(&[], &[])
        .metadata_url(&sim.url)
        .bind_from_env(Ipv6Addr::LOCALHOST.into())
        .start();
    assert!(
        task_ratio_ready(&exporter.scrape_until(TIMEOUT, task_ratio_ready)),
        "no data on {}",
        exporter.addr
    );
    let port = exporter.addr.port().to_string();
    let (code, _, err) = run(
        &[
            "--healthcheck",
            "--bind-address",
            "::1",
            "--exporter-port",
            &port,
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{err}");
}

// ---------------------------------------------------------------------------------------------
// 3. promtool.

#[test]
fn promtool_check_metrics_accepts_a_scrape_of_every_profile() {
    if !promtool_installed() {
        return skip("promtool is not installed (Debian package prometheus)");
    }
    let udp = closed_udp_port().to_string();
    let statsd = flags("127.0.0.1", &udp);
    for profile in PROFILES {
        let (_sim, exporter, _) = start(profile, &statsd, &[("EXCLUDE", "")]);
        let text = exporter.scrape_text();
        let (ok, printed) = promtool_check_metrics(&text);
        assert!(
            ok && printed.trim().is_empty(),
            "{profile}: promtool check metrics: {printed}\n{text}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 4. OpenMetrics and content negotiation.

#[test]
fn openmetrics_is_served_when_asked_and_text_format_otherwise() {
    let udp = closed_udp_port().to_string();
    let (_sim, exporter, _) = start("fargate", &flags("127.0.0.1", &udp), &[]);

    let (status, head, om) = http_get(
        exporter.addr,
        "/metrics",
        &[("Accept", "application/openmetrics-text; version=1.0.0")],
    )
    .expect("GET");
    assert_eq!(status, 200);
    assert_eq!(
        header(&head, "content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(
        om.ends_with("# EOF\n"),
        "OpenMetrics body does not end with # EOF: {:?}",
        &om[om.len().saturating_sub(80)..]
    );
    assert!(
        om.contains("\n# TYPE ecs_task_network_rx_bytes counter\n"),
        "{om}"
    );
    assert!(
        om.contains("\n# TYPE ecs_exporter_statsd_errors counter\n"),
        "{om}"
    );
    assert!(
        !om.contains("# TYPE ecs_task_network_rx_bytes_total"),
        "{om}"
    );
    assert!(om.contains("\necs_task_network_rx_bytes_total{"), "{om}");
    let as_text = openmetrics_to_text(&om).unwrap_or_else(|e| panic!("OpenMetrics: {e}\n{om}"));
    let om_scrape =
        parse_strict(&as_text).unwrap_or_else(|e| panic!("OpenMetrics samples: {e}\n{om}"));

    // Prometheus's own Accept header.
    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,\
                      text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (_, head, _) = http_get(exporter.addr, "/metrics", &[("Accept", prometheus)]).expect("GET");
    assert_eq!(
        header(&head, "content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );

    for accept in [
        None,
        Some("text/plain"),
        Some("*/*"),
        Some("text/plain;version=0.0.4"),
    ] {
        let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("Accept", *a)).collect();
        let (status, head, text) = http_get(exporter.addr, "/metrics", &headers).expect("GET");
        assert_eq!(status, 200);
        assert_eq!(
            header(&head, "content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8"),
            "Accept {accept:?}"
        );
        assert!(!text.contains("# EOF"), "Accept {accept:?}");
        let s = parse_strict(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let keys = |s: &Scrape| s.samples.keys().cloned().collect::<BTreeSet<_>>();
        assert_eq!(
            keys(&s),
            keys(&om_scrape),
            "text and OpenMetrics have different series"
        );
    }

    if !promtool_installed() {
        return skip("promtool is not installed: the OpenMetrics body is not checked with it");
    }
    // promtool check metrics parses text format 0.0.4 only (2.42 reports "no help text" for every
    // counter of a valid OpenMetrics exposition); probe it with a canonical example first.
    let canonical =
        "# HELP x_seconds A counter.\n# TYPE x_seconds counter\nx_seconds_total 1\n# EOF\n";
    if promtool_check_metrics(canonical).0 && promtool_check_metrics(canonical).1.trim().is_empty()
    {
        let (ok, printed) = promtool_check_metrics(&om);
        assert!(
            ok && printed.trim().is_empty(),
            "promtool check metrics (OpenMetrics): {printed}"
        );
    } else {
        eprintln!(
            "note: promtool check metrics does not accept OpenMetrics (it rejects a canonical counter); \
             the OpenMetrics body was checked by openmetrics_to_text + parse_strict instead"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 5. HTTP surface.

#[test]
fn http_serves_metrics_head_index_health_and_refuses_other_paths_and_methods() {
    let (_sim, exporter, _) = start("ec2-bridge", &[], &[]);
    let addr = exporter.addr;

    let (status, head, body) = http_request(addr, "HEAD", "/metrics", &[]).expect("HEAD");
    assert_eq!(status, 200, "{head}");
    assert!(body.is_empty(), "HEAD /metrics has a body: {body:?}");
    assert_eq!(
        header(&head, "content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );

    let (status, head, body) = http_get(addr, "/", &[]).expect("GET /");
    assert_eq!(status, 200);
    assert!(
        header(&head, "content-type").is_some_and(|t| t.starts_with("text/html")),
        "{head}"
    );
    assert!(
        body.contains("href=\"/metrics\""),
        "no link to /metrics: {body}"
    );

    let (status, _, _) = http_get(addr, "/nope", &[]).expect("GET /nope");
    assert_eq!(status, 404);
    let (status, _, _) = http_get(addr, "/metrics/extra", &[]).expect("GET /metrics/extra");
    assert_eq!(status, 404);
    for method in ["POST", "PUT", "DELETE"] {
        let (status, head, _) =
            http_request(addr, method, "/metrics", &[("Content-Length", "0")]).expect(method);
        assert_eq!(status, 405, "{method} /metrics: {head}");
    }

    let (status, _, body) = http_get(addr, "/health", &[]).expect("GET /health");
    assert_eq!((status, body.trim()), (200, "ok"));

    // The server still answers after all that.
    let (status, _, _) = http_get(addr, "/metrics?x=1", &[]).expect("GET /metrics?x=1");
    assert_eq!(status, 200);
}

#[test]
fn health_is_503_until_the_first_poll_attempt_ends_and_200_after_it_even_if_it_failed() {
    // `/task` hangs: the first poll ends with a timeout after 3 s.
    let sim = Sim::start(&[
        "--profile",
        "ec2-bridge",
        "--fault",
        "hang",
        "--fault-endpoint",
        "task",
    ]);
    // Both looks are only proof when taken within those 3 s of the start. On a loaded machine
    // the exporter may take about as long to answer at all: then a new one is started.
    let mut tries = 0;
    let exporter = loop {
        tries += 1;
        let started = Instant::now();
        let exporter = Exporter::start(&sim.url, &["--interval", "0.2", "--timeout", "3"], &[]);
        let (status, _, body) = http_get(exporter.addr, "/health", &[]).expect("GET /health");
        let port = exporter.addr.port().to_string();
        let (code, _, err) = run(&["--healthcheck", "--exporter-port", &port], &[]);
        let took = started.elapsed();
        if took < Duration::from_secs(3) || tries == 5 {
            assert_eq!(status, 503, "health before any poll attempt: {body}");
            assert_eq!(code, Some(1), "--healthcheck while /health is 503: {err}");
            break exporter;
        }
        eprintln!("looked {took:?} after the start, when the first attempt may have ended: again");
    };
    // /metrics answers at once, without data.
    let s = exporter.scrape();
    assert!(!s.has_family("ecs_task_mem_usage"));
    assert!(
        wait_for(TIMEOUT, || http_get(exporter.addr, "/health", &[])
            .is_ok_and(|(st, _, _)| st == 200)),
        "health did not turn 200 after the first (failed) attempt"
    );
    let s = exporter.scrape();
    assert_eq!(s.value("ecs_exporter_up", &[]), 0.0);
    assert!(
        s.value(
            "ecs_exporter_poll_errors_total",
            &[("endpoint", "task"), ("reason", "timeout")]
        ) >= 1.0
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Configuration errors, --help.

#[test]
fn bad_configuration_exits_2_with_one_line_naming_the_flag_or_variable() {
    const URL: (&str, &str) = ("ECS_CONTAINER_METADATA_URI_V4", "http://127.0.0.1:9/v4");
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: [Case; 13] = [
        (&["--interval", "abc"], &[URL], &["--interval", "abc"]),
        (&[], &[URL, ("INTERVAL", "0")], &["INTERVAL", "0"]),
        (&[], &[URL, ("EXPORTER_PORT", "0")], &["EXPORTER_PORT", "0"]),
        (
            &["--exporter-port", "70000"],
            &[URL],
            &["--exporter-port", "70000"],
        ),
        (&[], &[URL, ("LOG_LEVEL", "loud")], &["LOG_LEVEL", "loud"]),
        (
            &["--metadata-url", "https://x"],
            &[],
            &["--metadata-url", "https://x"],
        ),
        (
            &[],
            &[],
            &[
                "ECS_CONTAINER_METADATA_URI_V4",
                "ECS_CONTAINER_METADATA_URI",
            ],
        ),
        (
            &[],
            &[URL, ("USE_STATSD", "maybe")],
            &["USE_STATSD", "maybe"],
        ),
        (
            &["--use-statsd", "--statsd-port", "0"],
            &[URL],
            &["--statsd-port", "0"],
        ),
        (
            &[],
            &[URL, ("METADATA_TIMEOUT", "-1")],
            &["METADATA_TIMEOUT", "-1"],
        ),
        (
            &[],
            &[("ECS_CONTAINER_METADATA_URI", "ftp://x")],
            &["ECS_CONTAINER_METADATA_URI", "ftp://x"],
        ),
        // SPEC §6: a typo names the nearest family; both lists at once name both.
        (
            &[],
            &[
                URL,
                ("METRIC_DENYLIST", "ecs_task_network_*, ecs_task_mem_usge"),
            ],
            &[
                "METRIC_DENYLIST",
                "'ecs_task_mem_usge'",
                "did you mean ecs_task_mem_usage?",
            ],
        ),
        (
            &["--metric-allowlist", "ecs_task_mem_usage"],
            &[URL, ("METRIC_DENYLIST", "ecs_task_mem_cache")],
            &[
                "--metric-allowlist",
                "METRIC_DENYLIST",
                "exclude each other",
            ],
        ),
    ];
    for (args, env, needles) in cases {
        let (code, _out, err) = run(args, env);
        let what = format!("args {args:?} env {env:?}");
        assert_eq!(code, Some(2), "{what}: stderr {err}");
        assert_eq!(
            err.lines().count(),
            1,
            "{what}: not exactly one line on stderr: {err:?}"
        );
        for needle in needles {
            assert!(
                err.contains(needle),
                "{what}: stderr does not name {needle:?}: {err}"
            );
        }
        assert!(
            !err.contains("panicked") && !err.to_lowercase().contains("backtrace"),
            "{what}: {err}"
        );
    }
}

#[test]
fn unknown_or_incomplete_flags_exit_2_with_one_line_and_help_lists_every_flag() {
    for (args, needle) in [
        (&["--no-such-flag"][..], "--no-such-flag"),
        (&["--interval"][..], "--interval"),
        (
            &["--metadata-url", "http://127.0.0.1:9", "--exporter-port"][..],
            "--exporter-port",
        ),
    ] {
        let (code, _, err) = run(args, &[]);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: not one line: {err:?}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }

    let (code, out, err) = run(&["--help"], &[]);
    assert_eq!(code, Some(0), "{err}");
    for flag in [
        "--metadata-url",
        "--exporter-port",
        "--bind-address",
        "--interval",
        "--include",
        "--exclude",
        "--use-statsd",
        "--statsd-host",
        "--statsd-port",
        "--log-level",
        "--timeout",
        "--healthcheck",
        "--metric-allowlist",
        "--metric-denylist",
    ] {
        assert!(out.contains(flag), "--help does not list {flag}:\n{out}");
    }
}

// ---------------------------------------------------------------------------------------------
// 7. --healthcheck.

#[test]
fn healthcheck_exits_0_against_a_healthy_exporter_and_1_when_nothing_listens() {
    let (_sim, exporter, _) = start("ec2-bridge", &[], &[]);
    let port = exporter.addr.port().to_string();
    let (code, _, err) = run(&["--healthcheck", "--exporter-port", &port], &[]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = run(&["--healthcheck"], &[("EXPORTER_PORT", &port)]);
    assert_eq!(code, Some(0), "EXPORTER_PORT: {err}");

    let nobody = free_port().to_string();
    let (code, _, err) = run(&["--healthcheck", "--exporter-port", &nobody], &[]);
    assert_eq!(code, Some(1), "{err}");
}

// ---------------------------------------------------------------------------------------------
// 8. README.

#[test]
fn readme_names_every_family_the_exporter_writes() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let udp = closed_udp_port().to_string();
    let statsd = flags("127.0.0.1", &udp);
    let mut families = BTreeSet::new();
    for profile in PROFILES {
        let (_sim, exporter, _) = start(profile, &statsd, &[("EXCLUDE", "")]);
        let s = exporter.scrape_until(TIMEOUT, |s| {
            s.has_family("ecs_exporter_statsd_errors_total")
        });
        families.extend(s.types.keys().cloned());
    }
    assert!(families.contains("ecs_exporter_statsd_errors_total"));
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mentioned = |name: &str| {
        readme.match_indices(name).any(|(i, _)| {
            !readme[..i].chars().next_back().is_some_and(word)
                && !readme[i + name.len()..].chars().next().is_some_and(word)
        })
    };
    let missing: Vec<&String> = families.iter().filter(|f| !mentioned(f)).collect();
    assert!(
        missing.is_empty(),
        "README.md does not name these families: {missing:?}"
    );
}
