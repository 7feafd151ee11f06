//! `monitoring/`: the rule files, their promtool unit tests, the Grafana dashboard, and all of
//! them on a real Prometheus scraping the real exporter against the simulator.
//!
//! - `promtool check rules` on every rule file; `promtool test rules` on `monitoring/tests/`,
//!   which must test every alert (firing and quiet) and every recording rule;
//! - the dashboard's structure: unique panel ids, the `${datasource}` variable on every panel,
//!   target and query variable, every `$variable` defined, every metric name one the exporter
//!   serves (a real scrape of every simulator profile, and of an exporter that pushes), a
//!   recording rule, or Prometheus' own `up`/`ALERTS`; the same for the rule files; the README
//!   names every alert, its threshold and every "Only when it happens" panel;
//! - Prometheus 2.x with the rules loaded, scraping two exporters (simulated Fargate and EC2
//!   bridge tasks) as one job: every rule evaluates with health `ok`; every dashboard query,
//!   its variables resolved as Grafana would (per task, per container), returns data without
//!   error; the "Only when it happens" ones are empty until the test makes it happen through the
//!   simulator (a restart, a non-zero exit, an unhealthy container), then return data; the
//!   unhealthy container's alert goes pending and the non-zero exit's fires;
//! - the discovery recipes of `monitoring/discovery/`: `promtool check config` on those whose
//!   keys this Prometheus knows, their relabeling run by `promtool check service-discovery` over
//!   stand-in targets (what the ECS discovery and prometheus-ecs-discovery would find), and the
//!   README showing each as it is.
//!
//! Where `promtool` or `prometheus` is missing, the tests that need it say so in one line and
//! pass (fail under `CI=true`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::prometheus::{
    self, Prometheus, encode, prometheus_version, promtool_installed, version,
};
use common::{Exporter, Launch, PROFILES, Sim, TempDir, run_ok, skip, wait_for};
use serde_json::Value;

/// The job name the alert rules expect (README's scrape config).
const JOB: &str = "ecs-container-exporter";
/// Prometheus' own series that dashboards and rules may use.
const PROMETHEUS_SERIES: [&str; 2] = ["up", "ALERTS"];
/// Grafana's built-in variables and what the test puts in their place.
const GRAFANA_BUILTINS: [(&str, &str); 3] = [
    ("$__range", "5m"),
    ("$__rate_interval", "1m"),
    ("$__interval", "15s"),
];
/// How a panel says that it is empty until something happens.
const WHEN: &str = "Only when it happens";
/// The remote-write self-metrics (SPEC §5), which the push alerts read: the exporter writes them
/// only when it pushes (`--remote-write-url`).
const PUSH_SERIES: [&str; 4] = [
    "ecs_exporter_remote_write_requests_total",
    "ecs_exporter_remote_write_samples_sent_total",
    "ecs_exporter_remote_write_queue_requests",
    "ecs_exporter_remote_write_last_success_timestamp_seconds",
];

fn monitoring() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("monitoring")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The rule files: every `*.yml` directly in `monitoring/`.
fn rule_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(monitoring())
        .expect("monitoring/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "rule files in monitoring/: {files:?}");
    files
}

fn dashboard() -> Value {
    let path = monitoring().join("ecs-container-exporter.dashboard.json");
    serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `promtool <args>` in `monitoring/`: (exit success, everything it printed).
fn promtool(args: &[&str]) -> (bool, String) {
    prometheus::promtool(args, &monitoring(), "")
}

/// True when `promtool` is not on PATH, after [`skip`]ping: `what` is not checked.
fn no_promtool(what: &str) -> bool {
    let missing = !promtool_installed();
    if missing {
        skip(&format!(
            "promtool is not on PATH (apt-get install -y prometheus), so {what} is not checked"
        ));
    }
    missing
}

// ---------------------------------------------------------------------------------------------
// Reading the rule files and the dashboard.

/// `(kind, name, expr)` of every rule: kind `alert` or `record`. Block scalars (`expr: |`) are
/// read as the following lines indented deeper than `expr:`.
fn rules(yaml: &str) -> Vec<(String, String, String)> {
    let lines: Vec<&str> = yaml.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = None;
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start().trim_start_matches("- ");
        for kind in ["alert", "record"] {
            if let Some(name) = t.strip_prefix(&format!("{kind}: ")) {
                current = Some((kind.to_owned(), name.trim().to_owned()));
            }
        }
        if let Some(rest) = t.strip_prefix("expr:") {
            let (kind, name) = current.take().expect("expr after alert: or record:");
            let rest = rest.trim();
            let expr = if rest.starts_with('|') || rest.starts_with('>') {
                let base = indent(line);
                lines[i + 1..]
                    .iter()
                    .take_while(|l| l.trim().is_empty() || indent(l) > base)
                    .map(|l| l.trim())
                    .collect::<Vec<_>>()
                    .join("\n")
            } else {
                rest.to_owned()
            };
            out.push((kind, name, expr));
        }
    }
    out
}

fn all_rules() -> Vec<(String, String, String)> {
    rule_files().iter().flat_map(|f| rules(&read(f))).collect()
}

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().expect("panels") {
        out.push(p.clone());
        if let Some(inner) = p["panels"].as_array() {
            out.extend(inner.iter().cloned());
        }
    }
    out
}

/// `(panel title, panel description, expr)` of every target.
fn targets(dashboard: &Value) -> Vec<(String, String, String)> {
    panels(dashboard)
        .iter()
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap_or_default().to_owned();
            let desc = p["description"].as_str().unwrap_or_default().to_owned();
            p["targets"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |t| {
                    let expr = t["expr"].as_str().unwrap_or_default().to_owned();
                    (title.clone(), desc.clone(), expr)
                })
        })
        .collect()
}

/// The metric names a PromQL expression selects: identifiers that are not functions, keywords,
/// label names (in `{}` or after `by`/`without`/`on`/`ignoring`/`group_left`/`group_right`),
/// numbers, durations or strings.
fn metric_names(expr: &str) -> BTreeSet<String> {
    // Blank out strings, comments, matchers and ranges.
    let mut plain = String::new();
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                while let Some(d) = chars.next() {
                    if d == '\\' {
                        chars.next();
                    } else if d == c {
                        break;
                    }
                }
                plain.push(' ');
            }
            '#' => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
                plain.push(' ');
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                while let Some(d) = chars.next() {
                    if d == '"' {
                        while let Some(e) = chars.next() {
                            if e == '\\' {
                                chars.next();
                            } else if e == '"' {
                                break;
                            }
                        }
                    } else if d == close {
                        break;
                    }
                }
                plain.push(' ');
            }
            c => plain.push(c),
        }
    }
    const LABEL_LISTS: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    const KEYWORDS: [&str; 20] = [
        "and",
        "or",
        "unless",
        "offset",
        "bool",
        "atan2",
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "inf",
        "nan",
    ];
    let bytes: Vec<char> = plain.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_digit() || (c == '.' && bytes.get(i + 1).is_some_and(char::is_ascii_digit)) {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == '.') {
                i += 1;
            }
            continue;
        }
        if !(c.is_ascii_alphabetic() || c == '_' || c == ':') {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len()
            && (bytes[i].is_ascii_alphanumeric() || bytes[i] == '_' || bytes[i] == ':')
        {
            i += 1;
        }
        let word: String = bytes[start..i].iter().collect();
        let mut j = i;
        while j < bytes.len() && bytes[j].is_whitespace() {
            j += 1;
        }
        let next = bytes.get(j).copied();
        if LABEL_LISTS.contains(&word.as_str()) {
            if next == Some('(') {
                while j < bytes.len() && bytes[j] != ')' {
                    j += 1;
                }
                i = j + 1;
            }
            continue;
        }
        if KEYWORDS.contains(&word.as_str()) || next == Some('(') {
            continue;
        }
        names.insert(word);
    }
    names
}

/// The `$variables` an expression uses (Grafana's `$__…` built-ins included).
fn variables(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(pos) = rest.find('$') {
        let tail = &rest[pos + 1..];
        let tail = tail.strip_prefix('{').unwrap_or(tail);
        let name: String = tail
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        out.insert(format!("${name}"));
        rest = &rest[pos + 1..];
    }
    out
}

/// The names of the recording rules.
fn recorded() -> BTreeSet<String> {
    all_rules()
        .into_iter()
        .filter(|(kind, _, _)| kind == "record")
        .map(|(_, name, _)| name)
        .collect()
}

/// Every series name the exporter serves, from a real scrape of every simulator profile.
fn served() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for profile in PROFILES {
        let (_sim, _exporter, s) = Launch::new()
            .args(&["--interval", "0.2"])
            .env(&[("EXCLUDE", "")])
            .task_until(
                &["--profile", profile, "--refresh-secs", "0"],
                Duration::from_secs(15),
                |s| s.has_family("ecs_task_cpu_usage_ratio"),
            );
        names.extend(s.samples.keys().map(|(name, _)| name.clone()));
    }
    names
}

/// The remote-write series names of an exporter that pushes (to the tests' receiver, which
/// answers every request 204). A binary that refuses `--remote-write-url` with exit status 2
/// (one built without the `remote-write` feature, or before it) serves none, and
/// [`PUSH_SERIES`] stands in for them; a binary that pushes must serve every one of
/// [`PUSH_SERIES`].
fn pushed() -> BTreeSet<String> {
    let sim = Sim::start(&["--profile", "fargate", "--refresh-secs", "0"]);
    #[cfg(feature = "remote-write")]
    let receiver = common::receiver::Receiver::start();
    #[cfg(feature = "remote-write")]
    let url = receiver.url.as_str();
    // A binary without remote write refuses any URL before it could use one.
    #[cfg(not(feature = "remote-write"))]
    let url = "http://127.0.0.1:9/api/v1/write";
    let launch = sim
        .exporter()
        .args(&["--interval", "0.2", "--remote-write-url", url]);
    let exporter = match launch.try_start() {
        Ok(exporter) => exporter,
        Err(exited)
            if exited.code == Some(2) && exited.logs.to_lowercase().contains("remote-write") =>
        {
            eprintln!(
                "note: this exporter does not push; the rules' remote-write names are checked \
                 against SPEC §5's list ({}): {}",
                PUSH_SERIES.join(", "),
                exited.logs.trim()
            );
            return PUSH_SERIES.iter().map(|s| (*s).to_owned()).collect();
        }
        Err(exited) => panic!(
            "an exporter with --remote-write-url did not start: {:?}\n{}",
            exited.code, exited.logs
        ),
    };
    let has = |s: &common::Scrape, name: &str| s.has_family(name);
    let s = exporter.scrape_until(Duration::from_secs(15), |s| {
        PUSH_SERIES.iter().all(|name| has(s, name))
    });
    let missing: Vec<&&str> = PUSH_SERIES.iter().filter(|n| !has(&s, n)).collect();
    assert!(
        missing.is_empty(),
        "an exporter that pushes does not serve {missing:?}"
    );
    s.samples
        .keys()
        .map(|(name, _)| name.clone())
        .filter(|name| name.starts_with("ecs_exporter_remote_write_"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// promtool.

#[test]
fn promtool_check_rules_accepts_every_rule_file() {
    if no_promtool("monitoring/'s rule files") {
        return;
    }
    for file in rule_files() {
        let name = file.display().to_string();
        let (ok, printed) = promtool(&["check", "rules", &name]);
        assert!(ok && printed.contains("SUCCESS"), "{name}:\n{printed}");
        let count = rules(&read(&file)).len();
        assert!(
            printed.contains(&format!("SUCCESS: {count} rules found")),
            "{name}: promtool and this test count different rules ({count}):\n{printed}"
        );
    }
}

#[test]
fn promtool_unit_tests_cover_every_alert_firing_and_quiet_and_every_recording_rule() {
    if no_promtool("monitoring/tests/") {
        return;
    }
    let tests_dir = monitoring().join("tests");
    let mut files: Vec<String> = std::fs::read_dir(&tests_dir)
        .expect("monitoring/tests/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .map(|p| {
            format!(
                "tests/{}",
                p.file_name().unwrap_or_default().to_string_lossy()
            )
        })
        .collect();
    files.sort();
    let mut args = vec!["test", "rules"];
    args.extend(files.iter().map(String::as_str));
    let (ok, printed) = promtool(&args);
    assert!(ok, "promtool test rules {files:?}:\n{printed}");
    assert_eq!(
        printed.matches("SUCCESS").count(),
        files.len(),
        "every file passes:\n{printed}"
    );

    // Coverage: each alert is expected to fire somewhere and to be quiet somewhere; each
    // recording rule is the expression of a promql_expr_test.
    let text: String = files
        .iter()
        .map(|f| read(&monitoring().join(f)))
        .collect::<Vec<_>>()
        .join("\n");
    let mut fires = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    let mut tested_exprs = BTreeSet::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim().trim_start_matches("- ");
        if let Some(name) = t.strip_prefix("alertname: ") {
            let exp = lines[i + 1..]
                .iter()
                .map(|l| l.trim())
                .find(|l| l.starts_with("exp_alerts:"))
                .unwrap_or_else(|| panic!("alertname {name} without exp_alerts"));
            if exp.trim_end().ends_with("[]") {
                quiet.insert(name.trim().to_owned());
            } else {
                fires.insert(name.trim().to_owned());
            }
        }
        if let Some(expr) = t.strip_prefix("expr: ") {
            tested_exprs.insert(expr.trim().to_owned());
        }
    }
    let rules = all_rules();
    for (kind, name, _) in &rules {
        match kind.as_str() {
            "alert" => {
                assert!(fires.contains(name), "no promtool test where {name} fires");
                assert!(
                    quiet.contains(name),
                    "no promtool test where {name} stays quiet"
                );
            }
            _ => assert!(
                tested_exprs.contains(name),
                "recording rule {name} has no promql_expr_test"
            ),
        }
    }
    eprintln!(
        "promtool test rules: {} files, {} alerts and {} recording rules covered",
        files.len(),
        fires.len(),
        tested_exprs.len()
    );
}

// ---------------------------------------------------------------------------------------------
// The discovery recipes (`monitoring/discovery/`, README "Finding every task").

/// The job name every recipe uses.
const RECIPE_JOB: &str = "ecs-container-exporter";

fn discovery() -> PathBuf {
    monitoring().join("discovery")
}

/// `promtool check config` on one file: (passed, what it printed).
fn check_config(path: &Path) -> (bool, String) {
    promtool(&["check", "config", &path.display().to_string()])
}

/// `promtool check service-discovery` for the recipes' job: the labels of every target it
/// keeps after relabeling (a dropped target has none).
fn kept_targets(config: &Path) -> Vec<BTreeMap<String, String>> {
    let out = run_ok(
        Command::new("promtool")
            .args(["check", "service-discovery", "--timeout=2s"])
            .arg(config)
            .arg(RECIPE_JOB),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let targets: Vec<Value> = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("promtool's answer is not JSON ({e}):\n{stdout}"));
    targets
        .iter()
        .map(|t| {
            t["labels"]
                .as_object()
                .expect("labels")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect::<BTreeMap<String, String>>()
        })
        .filter(|labels| !labels.is_empty())
        .collect()
}

/// A kept target names only the exporter: `instance` (its address) and `job`. Labels that start
/// with `__` are dropped once relabeling is done; no other discovery label may reach the series
/// (ecs_task_info names the task).
fn assert_only_address_and_job(recipe: &str, target: &BTreeMap<String, String>) {
    for (name, value) in target {
        match name.as_str() {
            "instance" => assert_eq!(Some(value), target.get("__address__"), "{recipe}"),
            "job" => assert_eq!(value, RECIPE_JOB, "{recipe}"),
            n if n.starts_with("__") => {}
            _ => panic!("{recipe}: the kept target has a label {name}={value:?}: {target:?}"),
        }
    }
}

/// `(text before, block, text after)`: the lines of `key:` at `indent` spaces and the deeper
/// lines that follow it.
fn yaml_block(text: &str, indent: usize, key: &str) -> (String, String, String) {
    let head = format!("{}{key}:", " ".repeat(indent));
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim_end() == head)
        .unwrap_or_else(|| panic!("no `{head}` line"));
    let end = lines[start + 1..]
        .iter()
        .position(|l| !l.trim().is_empty() && l.len() - l.trim_start().len() <= indent)
        .map_or(lines.len(), |i| start + 1 + i);
    let join = |ls: &[&str]| ls.iter().map(|l| format!("{l}\n")).collect::<String>();
    (
        join(&lines[..start]),
        join(&lines[start..end]),
        join(&lines[end..]),
    )
}

#[test]
fn discovery_recipes_pass_promtool_where_this_prometheus_knows_their_keys() {
    if no_promtool("monitoring/discovery/") {
        return;
    }
    let version = version("promtool").expect("promtool --version");
    for name in ["file-sd.yml", "dns-sd.yml"] {
        let (ok, printed) = check_config(&discovery().join(name));
        assert!(ok && printed.contains("SUCCESS"), "{name}:\n{printed}");
    }
    // aws_sd_configs with role ecs came with Prometheus 3.8: an older promtool refuses the
    // key, which is what the README says. Its relabeling is checked below all the same.
    let (ok, printed) = check_config(&discovery().join("aws-sd-ecs.yml"));
    if version >= (3, 8) {
        assert!(ok, "aws-sd-ecs.yml on promtool {version:?}:\n{printed}");
    } else {
        assert!(
            !ok && printed.contains("aws_sd_configs"),
            "promtool {version:?} was expected to refuse aws_sd_configs:\n{printed}"
        );
        eprintln!(
            "aws-sd-ecs.yml: promtool {}.{} does not know aws_sd_configs (Prometheus 3.8 and \
             later); only its relabeling is checked",
            version.0, version.1
        );
    }
}

#[test]
fn the_aws_sd_recipe_keeps_the_exporters_services_and_families_on_port_9545() {
    if no_promtool("monitoring/discovery/") {
        return;
    }
    let text = read(&discovery().join("aws-sd-ecs.yml"));
    let (before, sd, after) = yaml_block(&text, 4, "aws_sd_configs");
    assert!(sd.contains("role: ecs"), "{sd}");
    let port = sd
        .lines()
        .find_map(|l| l.trim().strip_prefix("port: "))
        .unwrap_or_else(|| {
            panic!("no port in the aws_sd_configs block (it defaults to 80):\n{sd}")
        });
    assert_eq!(port, "9545", "the aws_sd_configs port");

    // Stand-ins for what the ECS discovery finds: <task IP>:<port>, with its meta labels.
    // (IP, service, task definition's family:revision, kept)
    let tasks = [
        ("10.0.1.5", Some("web"), "web:7", true),
        ("10.0.1.6", Some("api"), "api-v2:3", true),
        ("10.0.2.7", Some("web-canary"), "web-canary:1", false),
        ("10.0.3.8", None, "nightly-report:12", true),
        ("10.0.4.9", Some("billing"), "billing:4", false),
        ("10.0.5.1", None, "nightly-report-old:2", false),
    ];
    let mut stand_in = String::from("    static_configs:\n");
    for (ip, service, definition, _) in &tasks {
        stand_in += &format!("      - targets: ['{ip}:{port}']\n        labels:\n");
        if let Some(service) = service {
            stand_in += &format!("          __meta_ecs_service: {service}\n");
        }
        stand_in += &format!(
            "          __meta_ecs_task_definition: \
             'arn:aws:ecs:us-east-1:123456789012:task-definition/{definition}'\n"
        );
    }
    let dir = TempDir::new("discovery");
    let config = dir.0.join("aws-sd-ecs-stand-in.yml");
    std::fs::write(&config, format!("{before}{stand_in}{after}")).expect("write the config");

    let kept = kept_targets(&config);
    for target in &kept {
        assert_only_address_and_job("aws-sd-ecs.yml", target);
    }
    let addresses: BTreeSet<String> = kept.iter().map(|t| t["__address__"].clone()).collect();
    let expected: BTreeSet<String> = tasks
        .iter()
        .filter(|t| t.3)
        .map(|t| format!("{}:9545", t.0))
        .collect();
    assert_eq!(addresses, expected, "kept by service or family");
}

#[test]
fn the_file_sd_recipe_keeps_the_exporters_container_and_drops_the_tools_labels() {
    if no_promtool("monitoring/discovery/") {
        return;
    }
    // What prometheus-ecs-discovery writes: one target per container with a
    // PROMETHEUS_EXPORTER_PORT docker label. A Fargate task runs the exporter and an exporter of
    // the application's own; an EC2 bridge task has the exporter on a dynamic host port.
    let dir = TempDir::new("discovery");
    let targets = dir.0.join("ecs_file_sd.yml");
    let entry = |address: &str, task: &str, family: &str, container: &str| {
        format!(
            "- targets: ['{address}']\n  labels:\n    \
             task_arn: arn:aws:ecs:us-east-1:123456789012:task/prod/{task}\n    \
             task_name: {family}\n    task_revision: '7'\n    task_group: service:{family}\n    \
             cluster_arn: arn:aws:ecs:us-east-1:123456789012:cluster/prod\n    \
             container_name: {container}\n    \
             container_arn: arn:aws:ecs:us-east-1:123456789012:container/prod/{task}/{container}\n    \
             docker_image: registry.example.com/{container}:1\n"
        )
    };
    let file = [
        entry("10.0.1.5:9545", "0a1b", "web", "ecs-container-exporter"),
        entry("10.0.1.5:8080", "0a1b", "web", "web"),
        entry("10.0.7.20:32768", "9f8e", "api", "ecs-container-exporter"),
    ]
    .concat();
    std::fs::write(&targets, file).expect("write the targets");
    let text = read(&discovery().join("file-sd.yml"));
    let from = "/etc/prometheus/ecs_file_sd.yml";
    assert!(text.contains(from), "file-sd.yml reads {from}");
    let config = dir.0.join("file-sd.yml");
    std::fs::write(&config, text.replace(from, &targets.display().to_string()))
        .expect("write the config");

    let kept = kept_targets(&config);
    for target in &kept {
        assert_only_address_and_job("file-sd.yml", target);
    }
    let addresses: BTreeSet<&str> = kept.iter().map(|t| t["__address__"].as_str()).collect();
    assert_eq!(
        addresses,
        BTreeSet::from(["10.0.1.5:9545", "10.0.7.20:32768"]),
        "the exporter's containers, the dynamic host port as discovered"
    );
}

#[test]
fn readme_shows_every_discovery_recipe_as_it_is() {
    let readme = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"));
    let mut names = Vec::new();
    for entry in std::fs::read_dir(discovery())
        .expect("monitoring/discovery/")
        .flatten()
    {
        let path = entry.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        assert!(name.ends_with(".yml"), "not a recipe: {name}");
        assert!(
            readme.contains(&format!("```yaml\n{}```", read(&path))),
            "README does not show monitoring/discovery/{name} as it is, in a ```yaml block"
        );
        names.push(name);
    }
    names.sort();
    assert_eq!(names, ["aws-sd-ecs.yml", "dns-sd.yml", "file-sd.yml"]);
}

// ---------------------------------------------------------------------------------------------
// Structure.

#[test]
fn promql_metric_names_are_told_apart_from_functions_labels_and_keywords() {
    let names = metric_names(
        "sum without (container_name, interface) (rate(ecs_a_total{x=\"y\", z=~\"$v\"}[5m])) \
         / on (instance, job) group_left (family) task:b:rate5m * 1024 > 0.9 # c_not_a_metric\n\
         or time() - ecs_c offset 1m and bool 1e12 unless ALERTS{alertname=\"d\"}",
    );
    let want: BTreeSet<String> = ["ecs_a_total", "task:b:rate5m", "ecs_c", "ALERTS"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(names, want);
    assert_eq!(
        variables("x{a=~\"$instance\", b=\"${container}\"}[$__range]"),
        ["$__range", "$container", "$instance"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    );
}

#[test]
fn dashboard_has_unique_ids_the_datasource_variable_everywhere_and_only_served_metrics() {
    let d = dashboard();
    let all = panels(&d);
    assert!(all.len() > 10, "{} panels", all.len());

    // Unique panel ids.
    let mut ids = BTreeSet::new();
    for p in &all {
        let id = p["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("panel without id: {p}"));
        assert!(ids.insert(id), "panel id {id} twice");
    }

    // The datasource variable, used by every panel with data, every target, every query variable.
    let vars = d["templating"]["list"].as_array().expect("templating.list");
    let ds = vars
        .iter()
        .find(|v| v["type"] == "datasource")
        .expect("a datasource variable");
    assert_eq!(ds["query"], "prometheus");
    let ds_ref = format!("${{{}}}", ds["name"].as_str().expect("name"));
    let uses_ds = |v: &Value| v["type"] == "prometheus" && v["uid"] == ds_ref.as_str();
    for p in &all {
        if p["type"] == "row" {
            assert!(p["targets"].is_null(), "a row with targets: {}", p["title"]);
            continue;
        }
        let title = &p["title"];
        assert!(
            uses_ds(&p["datasource"]),
            "panel {title}: {}",
            p["datasource"]
        );
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title} has no target");
        for t in targets {
            assert!(
                uses_ds(&t["datasource"]),
                "a target of {title}: {}",
                t["datasource"]
            );
            assert!(t["expr"].as_str().is_some_and(|e| !e.is_empty()), "{title}");
        }
        assert!(
            p["description"].as_str().is_some_and(|s| !s.is_empty()),
            "panel {title} has no description"
        );
    }
    let mut defined: BTreeSet<String> = GRAFANA_BUILTINS
        .iter()
        .map(|(v, _)| (*v).to_owned())
        .collect();
    for v in vars {
        let name = v["name"].as_str().expect("variable name");
        defined.insert(format!("${name}"));
        if v["type"] == "query" {
            assert!(
                uses_ds(&v["datasource"]),
                "variable {name}: {}",
                v["datasource"]
            );
            let q = v["query"].as_str().expect("query");
            assert!(q.starts_with("label_values("), "{name}: {q}");
        }
    }
    for name in ["cluster", "task", "instance", "container"] {
        assert!(defined.contains(&format!("${name}")), "no ${name} variable");
    }
    let repeated: Vec<&Value> = all.iter().filter(|p| p["repeat"].is_string()).collect();
    assert!(
        repeated
            .iter()
            .any(|p| p["type"] == "row" && p["repeat"] == "container"),
        "one row per container"
    );

    // Every variable used is defined; every metric is served, recorded or Prometheus' own.
    let mut known: BTreeSet<String> = served();
    known.extend(pushed());
    let recorded = recorded();
    known.extend(recorded.iter().cloned());
    known.extend(PROMETHEUS_SERIES.iter().map(|s| (*s).to_owned()));
    let mut used = BTreeSet::new();
    for (title, _, expr) in targets(&d) {
        for v in variables(&expr) {
            assert!(defined.contains(&v), "{title}: {v} is not defined: {expr}");
        }
        let names = metric_names(&expr);
        assert!(!names.is_empty(), "{title}: no metric in {expr}");
        for name in names {
            assert!(
                known.contains(&name),
                "{title}: {name} is not served or recorded: {expr}"
            );
            used.insert(name);
        }
    }
    for v in vars
        .iter()
        .filter(|v| v["type"] == "query")
        .filter_map(|v| v["query"].as_str())
    {
        // label_values(selector, label): the selector's metric.
        let selector = v
            .strip_prefix("label_values(")
            .and_then(|q| q.rsplit_once(','))
            .map_or(v, |(s, _)| s);
        let names = metric_names(selector);
        assert_eq!(names.len(), 1, "variable query {v}: {names:?}");
        for name in names {
            assert!(known.contains(&name), "variable query {v}: {name}");
        }
    }
    for (_, rule, expr) in all_rules() {
        for name in metric_names(&expr) {
            assert!(
                known.contains(&name),
                "rule {rule}: {name} is not served or recorded: {expr}"
            );
        }
    }
    let unused: Vec<&String> = recorded.iter().filter(|r| !used.contains(*r)).collect();
    eprintln!(
        "dashboard: {} panels, {} targets, {} metric names (recording rules it does not plot: {unused:?})",
        all.len(),
        targets(&d).len(),
        used.len()
    );
}

#[test]
fn readme_names_every_alert_its_threshold_and_every_only_when_it_happens_panel() {
    let readme = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"));
    let mut thresholds = BTreeMap::new();
    for file in rule_files() {
        let mut current = String::new();
        // Comment lines (a file's header may name the marker) hold no threshold.
        for line in read(&file)
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
        {
            if let Some(name) = line.trim().strip_prefix("- alert: ") {
                current = name.trim().to_owned();
            }
            if let Some((literal, _)) = line.split_once("# THRESHOLD") {
                let literal = literal.trim().to_owned();
                assert!(
                    thresholds.insert(current.clone(), literal).is_none(),
                    "{current}: two THRESHOLD literals"
                );
            }
        }
    }
    for (kind, name, _) in all_rules() {
        if kind != "alert" {
            continue;
        }
        let line = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{name}` |")))
            .unwrap_or_else(|| panic!("README's table of alerts has no row for {name}"));
        if let Some(literal) = thresholds.get(&name) {
            assert!(
                line.contains(&format!("`{literal}`")),
                "README's line on {name} does not give its threshold `{literal}`: {line}"
            );
        }
    }
    for p in panels(&dashboard()) {
        if p["description"]
            .as_str()
            .is_some_and(|d| d.starts_with(WHEN))
        {
            let title = p["title"].as_str().expect("title");
            assert!(
                readme.contains(&format!("\"{title}\"")),
                "README does not name the only-when-it-happens panel \"{title}\""
            );
        }
    }
    assert!(thresholds.len() >= 6, "THRESHOLD literals: {thresholds:?}");
}

// ---------------------------------------------------------------------------------------------
// A real Prometheus.

/// `label_values(selector, label)` as Grafana resolves it: the label's values on the series
/// that match.
fn label_values(prometheus: &Prometheus, query: &str) -> BTreeSet<String> {
    let inner = query
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not label_values(selector, label): {query}"));
    let (selector, label) = inner
        .rsplit_once(',')
        .unwrap_or_else(|| panic!("no label in {query}"));
    let data = prometheus.api(&format!(
        "/api/v1/series?match[]={}",
        encode(selector.trim())
    ));
    data.as_array()
        .expect("series")
        .iter()
        .filter_map(|s| s[label.trim()].as_str().map(str::to_owned))
        .collect()
}

/// Every way to set the dashboard's variables, as its chained queries give them: for each
/// task, for each container of it.
fn substitutions(prometheus: &Prometheus, d: &Value) -> Vec<BTreeMap<String, String>> {
    let mut sets: Vec<BTreeMap<String, String>> = vec![
        GRAFANA_BUILTINS
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    ];
    for v in d["templating"]["list"].as_array().expect("variables") {
        let Some(query) = v["query"].as_str().filter(|_| v["type"] == "query") else {
            continue;
        };
        let name = format!("${}", v["name"].as_str().expect("name"));
        let mut next = Vec::new();
        for set in &sets {
            for value in label_values(prometheus, &substitute(query, set)) {
                let mut s = set.clone();
                s.insert(name.clone(), value);
                next.push(s);
            }
        }
        sets = next;
    }
    sets
}

fn substitute(expr: &str, set: &BTreeMap<String, String>) -> String {
    // Longest names first, so `$__range` is not read as `$__r…`.
    let mut keys: Vec<&String> = set.keys().collect();
    keys.sort_by_key(|k| std::cmp::Reverse(k.len()));
    let mut out = expr.to_owned();
    for k in keys {
        let braced = format!("${{{}}}", &k[1..]);
        out = out.replace(&braced, &set[k]).replace(k.as_str(), &set[k]);
    }
    out
}

/// Which targets return data under some substitution: (panel title, expr) → had data.
fn coverage(
    prometheus: &Prometheus,
    d: &Value,
    sets: &[BTreeMap<String, String>],
) -> BTreeMap<(String, String), bool> {
    let mut out = BTreeMap::new();
    for (title, _, expr) in targets(d) {
        let mut seen = BTreeSet::new();
        let mut data = false;
        for set in sets {
            let q = substitute(&expr, set);
            if seen.insert(q.clone()) && !prometheus.query(&q, None).is_empty() {
                data = true;
                break;
            }
        }
        out.insert((title, expr), data);
    }
    out
}

fn only_when_it_happens(d: &Value) -> BTreeSet<(String, String)> {
    targets(d)
        .into_iter()
        .filter(|(_, desc, _)| desc.starts_with(WHEN))
        .map(|(title, _, expr)| (title, expr))
        .collect()
}

#[test]
fn prometheus_evaluates_every_rule_and_every_dashboard_query_returns_data() {
    let Some(version) = prometheus_version() else {
        return skip("prometheus is not on PATH (apt-get install -y prometheus)");
    };
    let started = Instant::now();
    let fargate = Sim::start(&["--profile", "fargate", "--refresh-secs", "0"]);
    let bridge = Sim::start(&["--profile", "ec2-bridge", "--refresh-secs", "0"]);
    let exporter_f = Exporter::start(&fargate.url, &["--interval", "1"], &[]);
    let exporter_b = Exporter::start(&bridge.url, &["--interval", "1"], &[]);
    let files: Vec<String> = rule_files()
        .iter()
        .map(|f| format!("  - {}\n", f.display()))
        .collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n{}\
         scrape_configs:\n  - job_name: {JOB}\n    honor_labels: true\n    static_configs:\n      \
         - targets: ['{}', '{}']\n",
        files.concat(),
        exporter_f.addr,
        exporter_b.addr
    );
    let prometheus = Prometheus::start(&config);
    let d = dashboard();

    // Both targets up.
    let mut up = Vec::new();
    let all_up = wait_for(Duration::from_secs(15), || {
        up = prometheus.query(&format!("up{{job=\"{JOB}\"}} == 1"), None);
        up.len() == 2
    });
    assert!(all_up, "targets not up: {up:?}\n{}", prometheus.log());

    // Every rule evaluated, with health ok.
    let rule_count = all_rules().len();
    let check_rules = |when: &str| {
        let mut bad = Vec::new();
        let ok = wait_for(Duration::from_secs(10), || {
            let data = prometheus.api("/api/v1/rules");
            bad.clear();
            let mut seen = 0;
            for group in data["groups"].as_array().expect("groups") {
                for rule in group["rules"].as_array().expect("rules") {
                    seen += 1;
                    let evaluated = rule["lastEvaluation"]
                        .as_str()
                        .is_some_and(|t| !t.starts_with("0001"));
                    if rule["health"] != "ok"
                        || !evaluated
                        || rule["lastError"].as_str().is_some_and(|e| !e.is_empty())
                    {
                        bad.push(format!(
                            "{}: health {} lastError {} lastEvaluation {}",
                            rule["name"], rule["health"], rule["lastError"], rule["lastEvaluation"]
                        ));
                    }
                }
            }
            if seen != rule_count {
                bad.push(format!("{seen} rules loaded, {rule_count} in the files"));
            }
            bad.is_empty()
        });
        assert!(ok, "{when}: rules not healthy: {bad:#?}");
    };
    check_rules("before");

    // Every query but the "only when it happens" ones returns data, for some task and container.
    let conditional = only_when_it_happens(&d);
    assert!(conditional.len() >= 3, "{conditional:?}");
    let mut sets = Vec::new();
    let mut cov = BTreeMap::new();
    let steady = wait_for(Duration::from_secs(30), || {
        sets = substitutions(&prometheus, &d);
        cov = coverage(&prometheus, &d, &sets);
        cov.iter()
            .all(|(key, data)| *data || conditional.contains(key))
    });
    let empty: Vec<&(String, String)> = cov
        .iter()
        .filter(|(key, data)| !**data && !conditional.contains(*key))
        .map(|(key, _)| key)
        .collect();
    assert!(
        steady,
        "queries without data: {empty:#?}\nvariables: {sets:#?}"
    );
    let tasks: BTreeSet<&String> = sets.iter().filter_map(|s| s.get("$task")).collect();
    assert_eq!(
        tasks.len(),
        2,
        "the $task variable lists both tasks: {sets:#?}"
    );
    for key in &conditional {
        assert_eq!(
            cov.get(key),
            Some(&false),
            "{key:?} has data before anything happened"
        );
    }

    // Make it happen: a restart and a non-zero exit on Fargate, an unhealthy container on EC2.
    fargate.control("restart?container=prometheus");
    fargate.control("stop?container=ecs-exporter&exit_code=3");
    bridge.control("health?container=ecs-exporter&status=unhealthy");
    let happened = wait_for(Duration::from_secs(30), || {
        cov = coverage(&prometheus, &d, &sets);
        cov.values().all(|data| *data)
    });
    let empty: Vec<&(String, String)> = cov
        .iter()
        .filter(|(_, data)| !**data)
        .map(|(key, _)| key)
        .collect();
    assert!(happened, "queries still without data: {empty:#?}");

    // The alerts that follow: the exit fires at once (for: 0m), the others are pending.
    let mut alerts = Vec::new();
    let expected = [
        ("EcsContainerExitedNonZero", "ecs-exporter", "firing"),
        ("EcsContainerUnhealthy", "ecs-exporter", "pending"),
        ("EcsContainerRestarting", "prometheus", "pending"),
    ];
    let seen = wait_for(Duration::from_secs(15), || {
        alerts = prometheus.api("/api/v1/alerts")["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        expected.iter().all(|(name, container, state)| {
            alerts.iter().any(|a| {
                a["labels"]["alertname"] == *name
                    && a["labels"]["container_name"] == *container
                    && a["state"] == *state
                    && a["labels"]["task_arn"].is_string()
                    && a["annotations"]["summary"]
                        .as_str()
                        .is_some_and(|s| s.contains(container))
            })
        })
    });
    assert!(seen, "expected {expected:?}, got {alerts:#?}");
    check_rules("after");

    drop(exporter_f);
    drop(exporter_b);
    eprintln!(
        "prometheus {}.{}: {rule_count} rules ok, {} dashboard queries with data over {} variable sets \
         ({} only when it happens), alerts {:?}, {:.1} s",
        version.0,
        version.1,
        cov.len(),
        sets.len(),
        conditional.len(),
        alerts
            .iter()
            .map(|a| format!("{}:{}", a["labels"]["alertname"], a["state"]))
            .collect::<Vec<_>>(),
        started.elapsed().as_secs_f64()
    );
}
