//! A time-bounded mutation fuzzer, as tests (cargo-fuzz needs nightly; this runs on stable).
//!
//! Target 1, in process: every JSON file under `tests/fixtures` is a seed; inputs are mutated
//! (bit flips, interesting bytes, truncation, splicing two fixtures, numbers replaced by huge,
//! negative, float or string values, keys deleted, values nested, grafted, duplicated) and fed to
//! `payload::parse_task`, `payload::parse_stats`, `payload::sample`, `rfc3339::parse` and then
//! `compute::compute` over two to four successive polls whose stats are advanced differently
//! (reads forward, equal or backwards; counters up, equal, down, zero or `u64::MAX`), so that the
//! window code runs; each snapshot is rendered as Prometheus text, OpenMetrics and DogStatsD.
//! Properties: no panic, no `NaN`, no negative ratio, DogStatsD datagrams within their size.
//!
//! Target 2, over the real socket (the server has nothing pure to call): random and mutated request
//! heads are written to a running exporter; every answer must be a well-formed `HTTP/1.1` status
//! line with an expected code, the connection must end, no thread may panic, and `/metrics` must
//! keep answering 200; threads go back to the baseline at the end.
//!
//! `FUZZ_SECONDS` sets the time per target (default 5; `make test` uses 1, `make fuzz` 60). The
//! run is deterministic for a given time: `FUZZ_SEED` (default fixed) seeds case `i` as
//! `splitmix(seed + i)`; a failure prints the case seed, and `FUZZ_CASE=<case seed>` replays that
//! one case. Inputs are printed escaped.
//!
//! Plus unit-style tests that counter arithmetic never overflows or divides by zero.

mod common;

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::client::send_chunks;
use common::process::proc_status;
use common::{Exporter, Sim, http_get, parse_strict, wait_for};
use ecs_container_exporter::core::compute::{self, Filter, History, Options};
use ecs_container_exporter::core::dogstatsd;
use ecs_container_exporter::core::exposition::{self, Format};
use ecs_container_exporter::core::payload::{
    self, Container, Cpu, Device, Disk, Memory, Net, Sample, Stats, Task, Throttling,
};
use ecs_container_exporter::core::rfc3339;
use ecs_container_exporter::core::snapshot::Snapshot;

// ---------------------------------------------------------------------------------------------
// Settings and randomness.

fn fuzz_time() -> Duration {
    let secs = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(5.0);
    Duration::from_secs_f64(secs)
}

fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

fn base_seed() -> u64 {
    std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| parse_u64(&s))
        .unwrap_or(0x00ec_5e1f_f022_2025)
}

/// `FUZZ_CASE=<case seed>`: replay one case.
fn replay_case() -> Option<u64> {
    std::env::var("FUZZ_CASE").ok().and_then(|s| parse_u64(&s))
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(splitmix(seed) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Cases every fuzzing loop runs whatever its time (the payload target checks its coverage from
/// this many on).
const MIN_CASES: u64 = 200;

/// The seeds and case numbers of a fuzzing loop: a fixed sequence, or one replayed case.
fn case_seeds(target: &str) -> impl Iterator<Item = (u64, u64)> {
    let base = base_seed();
    let replay = replay_case();
    let deadline = Instant::now() + fuzz_time();
    eprintln!(
        "fuzz {target}: seed {base:#x}, {:?}{}",
        fuzz_time(),
        replay.map_or(String::new(), |c| format!(", replaying case {c:#x}"))
    );
    let mut i = 0u64;
    std::iter::from_fn(move || {
        let item = match replay {
            Some(case) if i == 0 => Some((0, case)),
            Some(_) => None,
            // Always at least MIN_CASES, so a short or zero duration on a loaded machine still
            // exercises the target as far as its checks of coverage ask.
            None if i < MIN_CASES || Instant::now() < deadline => {
                Some((i, splitmix(base.wrapping_add(i))))
            }
            None => None,
        };
        i += 1;
        item
    })
}

// ---------------------------------------------------------------------------------------------
// Seeds: every JSON file under tests/fixtures, read at run time.

struct Corpus {
    files: Vec<(String, Vec<u8>)>,
    /// (task, stats) pairs of the same environment, by file name.
    pairs: Vec<(usize, usize)>,
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

fn corpus() -> Corpus {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut paths = Vec::new();
    json_files(&root, &mut paths);
    paths.sort();
    let files: Vec<(String, Vec<u8>)> = paths
        .iter()
        .map(|p| {
            let name = p
                .strip_prefix(&root)
                .unwrap_or(p)
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read(p).expect("read fixture"))
        })
        .collect();
    assert!(files.len() >= 10, "fixtures found: {}", files.len());
    let is_stats = |n: &str| n.contains("stats");
    let is_task = |n: &str| !n.contains("stats") && (n.contains("task") || n.contains("metadata"));
    let common_prefix =
        |a: &str, b: &str| a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    let mut pairs = Vec::new();
    for (s, (stats_name, _)) in files.iter().enumerate().filter(|(_, f)| is_stats(&f.0)) {
        let best = files
            .iter()
            .enumerate()
            .filter(|(_, f)| is_task(&f.0))
            .max_by_key(|(_, f)| common_prefix(&f.0, stats_name));
        if let Some((t, _)) = best {
            pairs.push((t, s));
        }
    }
    assert!(!pairs.is_empty());
    Corpus { files, pairs }
}

// ---------------------------------------------------------------------------------------------
// Mutations.

const INTERESTING_BYTES: &[u8] = b"\0\xff\x7f\"\\{}[],:-+.0129eE \t\r\nnul";

const INTERESTING_NUMBERS_TEXT: &[&str] = &[
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999999999",
    "-1",
    "-9223372036854775808",
    "-0",
    "0",
    "1e308",
    "1e309",
    "-1e308",
    "4.9e-324",
    "0.5",
    "1.5e3",
    "\"12\"",
    "\"None\"",
    "null",
    "true",
    "[]",
    "{}",
];

fn interesting_number(rng: &mut Rng) -> Value {
    match rng.below(18) {
        0 => json!(u64::MAX),
        1 => json!(0),
        2 => json!(-1),
        3 => json!(i64::MIN),
        4 => json!(1.844_674_407_370_955_2e19),
        5 => json!(1e308),
        6 => json!(-1e308),
        7 => json!(0.5),
        8 => json!(5e-324),
        9 => json!(f64::MAX),
        10 => json!(-0.0),
        11 => json!(2),
        12 => json!(1024),
        13 => json!(u32::MAX),
        14 => json!(4_294_967_296u64),
        15 => json!("12"),
        16 => json!(9_007_199_254_740_993u64),
        _ => json!(rng.next() >> rng.below(64)),
    }
}

const INTERESTING_TIMES: &[&str] = &[
    "0001-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "1969-12-31T23:59:59.999999999Z",
    "9999-12-31T23:59:60.999999999Z",
    "2025-02-30T23:59:59Z",
    "2025-01-01T00:00:00.1234567890123Z",
    "2025-01-01T00:00:00+23:59",
    "2025-01-01T00:00:00-23:59",
    "2025-01-01T00:00:00",
    "2025-01-01T00:00:00.Z",
    "2025-01-01t00:00:00z",
    "2025-01-01 00:00:00Z",
    "2025-01-01T00:00:00\u{e9}",
    "2025-01-01T00:00:0\u{e9}Z",
    "2025-01-01T00:00:00.\u{e9}Z",
    "\u{e9}025-01-01T00:00:00Z",
    "",
    "x",
];

#[derive(Clone, Debug)]
enum Seg {
    Key(String),
    Index(usize),
}

fn paths(v: &Value, prefix: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    if out.len() > 4000 {
        return;
    }
    out.push(prefix.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                prefix.push(Seg::Key(k.clone()));
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                prefix.push(Seg::Index(i));
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn at_mut<'a>(mut v: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    for seg in path {
        v = match (seg, v) {
            (Seg::Key(k), Value::Object(m)) => m.get_mut(k)?,
            (Seg::Index(i), Value::Array(a)) => a.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(v)
}

fn random_node(rng: &mut Rng, v: &Value) -> Vec<Seg> {
    let mut all = Vec::new();
    paths(v, &mut Vec::new(), &mut all);
    rng.pick(&all).clone()
}

fn set_all_numbers(v: &mut Value, to: &Value) {
    match v {
        Value::Number(_) => *v = to.clone(),
        Value::Object(m) => m.values_mut().for_each(|c| set_all_numbers(c, to)),
        Value::Array(a) => a.iter_mut().for_each(|c| set_all_numbers(c, to)),
        _ => {}
    }
}

/// One structural mutation of a JSON value.
fn mutate_json(rng: &mut Rng, v: &mut Value, donor: &Value) {
    let path = random_node(rng, v);
    let op = rng.below(10);
    if matches!(op, 1 | 3) {
        // Operations on the parent.
        let Some((last, parent_path)) = path.split_last() else {
            return;
        };
        let Some(parent) = at_mut(v, parent_path) else {
            return;
        };
        match (op, last, parent) {
            (1, Seg::Key(k), Value::Object(m)) => {
                m.remove(k);
            }
            (1, Seg::Index(i), Value::Array(a)) => {
                a.remove(*i);
            }
            (3, Seg::Index(i), Value::Array(a)) => {
                let copy = a[*i].clone();
                a.insert(*i, copy);
            }
            (3, Seg::Key(k), Value::Object(m)) => {
                // A sibling under another key (a second container id, say).
                if let Some(copy) = m.get(k).cloned() {
                    m.insert(format!("{k}-dup"), copy);
                }
            }
            _ => {}
        }
        return;
    }
    let Some(node) = at_mut(v, &path) else {
        return;
    };
    match op {
        0 => {
            *node = match node {
                Value::String(_) => json!(rng.pick(INTERESTING_TIMES)),
                _ => interesting_number(rng),
            }
        }
        2 => {
            // Nesting: usually a little, sometimes past serde_json's recursion limit.
            let depth = if rng.chance(6) {
                100 + rng.below(200)
            } else {
                1 + rng.below(4)
            };
            let mut inner = node.take();
            for _ in 0..depth {
                inner = if rng.chance(50) {
                    json!([inner])
                } else {
                    json!({ "x": inner })
                };
            }
            *node = inner;
        }
        4 => {
            let from = random_node(rng, donor);
            let mut donor = donor.clone();
            if let Some(graft) = at_mut(&mut donor, &from) {
                *node = graft.take();
            }
        }
        5 => {
            *node = match node.take() {
                Value::Number(n) => json!(n.to_string()),
                Value::String(s) => s.parse::<u64>().map_or(json!(0), |n| json!(n)),
                Value::Object(m) => Value::Array(m.into_iter().map(|(_, v)| v).collect()),
                Value::Array(a) => Value::Object(
                    a.into_iter()
                        .enumerate()
                        .map(|(i, v)| (i.to_string(), v))
                        .collect(),
                ),
                other => other,
            }
        }
        6 => *node = json!(rng.pick(INTERESTING_TIMES)),
        7 => {
            let to = interesting_number(rng);
            set_all_numbers(node, &to);
        }
        8 => {
            *node = match rng.below(4) {
                0 => Value::Null,
                1 => json!({}),
                2 => json!([]),
                _ => json!(""),
            }
        }
        _ => {
            // A number somewhere in the subtree, a little off.
            if let Value::Number(n) = node {
                *node = match (n.as_u64(), rng.below(3)) {
                    (Some(u), 0) => json!(u.wrapping_add(1)),
                    (Some(u), 1) => json!(u.saturating_sub(1)),
                    (Some(u), _) => json!(u / 2),
                    (None, _) => json!(-n.as_f64().unwrap_or(0.0)),
                };
            }
        }
    }
}

/// Digit runs (with sign, dot, exponent) in raw text.
fn number_spans(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit()
            || (bytes[i] == b'-' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            let start = i;
            i += 1;
            while i < bytes.len()
                && matches!(bytes[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
            {
                i += 1;
            }
            spans.push((start, i));
        } else {
            i += 1;
        }
    }
    spans
}

/// One byte-level (or, through a parse, structural) mutation.
fn mutate_once(rng: &mut Rng, input: &mut Vec<u8>, corpus: &Corpus) {
    let other = &rng.pick(&corpus.files).1;
    let len = input.len();
    match rng.below(10) {
        0 if len > 0 => {
            let i = rng.below(len);
            input[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            input[i] = *rng.pick(INTERESTING_BYTES);
        }
        2 => input.truncate(rng.below(len + 1)),
        3 => {
            // Splice: a prefix of this one and a suffix of another fixture.
            let cut = rng.below(len + 1);
            let from = rng.below(other.len() + 1);
            input.truncate(cut);
            input.extend_from_slice(&other[from..]);
        }
        4 => {
            let at = rng.below(len + 1);
            let from = rng.below(other.len() + 1);
            let n = rng.below(other.len() - from + 1).min(512);
            let chunk = other[from..from + n].to_vec();
            input.splice(at..at, chunk);
        }
        5 if len > 0 => {
            let from = rng.below(len);
            let n = rng.below(len - from + 1).min(256);
            input.drain(from..from + n);
        }
        6 if len > 0 => {
            let from = rng.below(len);
            let n = rng.below(len - from + 1).min(256);
            let chunk = input[from..from + n].to_vec();
            input.splice(from..from, chunk);
        }
        7 => {
            let spans = number_spans(input);
            if !spans.is_empty() {
                let (a, b) = *rng.pick(&spans);
                let text = rng.pick(INTERESTING_NUMBERS_TEXT).as_bytes().to_vec();
                input.splice(a..b, text);
            }
        }
        _ => {
            // Structural: only when the input is still JSON.
            if let Ok(mut v) = serde_json::from_slice::<Value>(input) {
                let donor = serde_json::from_slice::<Value>(other).unwrap_or(Value::Null);
                for _ in 0..1 + rng.below(3) {
                    mutate_json(rng, &mut v, &donor);
                }
                if let Ok(bytes) = serde_json::to_vec(&v) {
                    *input = bytes;
                }
            }
        }
    }
}

fn mutate(rng: &mut Rng, seed: &[u8], corpus: &Corpus) -> Vec<u8> {
    let mut input = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        mutate_once(rng, &mut input, corpus);
    }
    input
}

/// The next poll's stats: reads moved (forward, equal or backwards) and counters moved (up,
/// equal, down, zero or `u64::MAX`), one rule per case so that windows are computed.
fn advance(rng: &mut Rng, stats: &Value) -> Value {
    let shift: i128 = match rng.below(8) {
        0 => 0,
        1 => 1,
        2 => -1_000_000_000,
        3 => 1_000_000_000_000_000_000,
        4 => i128::from(rng.next() % 100_000_000_000),
        _ => 10_000_000_000,
    };
    let rule = rng.below(10);
    let mut next = stats.clone();
    fn walk(v: &mut Value, key: &str, shift: i128, rule: usize, rng: &mut Rng) {
        match v {
            Value::String(s) if key == "read" || key == "preread" => {
                if let Some(t) = rfc3339::parse(s) {
                    *s = rfc3339::format(t.saturating_add(shift));
                }
            }
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    let grown = u.saturating_add(rng.next() % 50_000_000_000);
                    *v = json!(match rule {
                        0 => u,
                        1 => u / 2,
                        2 => 0,
                        3 => u64::MAX,
                        4 if rng.chance(30) => u / 3,
                        _ => grown,
                    });
                }
            }
            Value::Object(m) => {
                for (k, c) in m.iter_mut() {
                    walk(c, k, shift, rule, rng);
                }
            }
            Value::Array(a) => {
                for c in a.iter_mut() {
                    walk(c, key, shift, rule, rng);
                }
            }
            _ => {}
        }
    }
    walk(&mut next, "", shift, rule, rng);
    next
}

// ---------------------------------------------------------------------------------------------
// Target 1: payload → compute → exposition / DogStatsD.

struct Case {
    /// Fed to both parsers and to `sample`/`timestamp`.
    free: Vec<u8>,
    task: Vec<u8>,
    /// Successive polls.
    polls: Vec<Vec<u8>>,
    filter: Filter,
}

fn make_case(rng: &mut Rng, corpus: &Corpus) -> Case {
    let free_seed = &rng.pick(&corpus.files).1;
    let free = mutate(rng, free_seed, corpus);
    let (t, s) = *rng.pick(&corpus.pairs);
    let task_seed = &corpus.files[t].1;
    let stats_seed = &corpus.files[s].1;
    let task = if rng.chance(40) {
        mutate(rng, task_seed, corpus)
    } else {
        task_seed.clone()
    };
    let first = if rng.chance(70) {
        mutate(rng, stats_seed, corpus)
    } else {
        stats_seed.clone()
    };
    let mut polls = vec![first];
    for _ in 0..1 + rng.below(3) {
        let last = polls.last().expect("a poll");
        let value = serde_json::from_slice::<Value>(last)
            .or_else(|_| serde_json::from_slice::<Value>(stats_seed))
            .unwrap_or(Value::Null);
        let mut next = serde_json::to_vec(&advance(rng, &value)).expect("serialize");
        if rng.chance(20) {
            next = mutate(rng, &next, corpus);
        }
        polls.push(next);
    }
    let filter = match rng.below(3) {
        0 => Filter::default(),
        1 => Filter {
            include: Vec::new(),
            exclude: vec![
                "ecs-container-exporter".into(),
                "~internal~ecs~pause".into(),
            ],
        },
        _ => Filter {
            include: vec!["app".into(), "prometheus".into(), "ecs-exporter".into()],
            exclude: vec!["app".into()],
        },
    };
    Case {
        free,
        task,
        polls,
        filter,
    }
}

#[derive(Default, Debug)]
struct Tally {
    cases: u64,
    tasks_parsed: u64,
    stats_parsed: u64,
    polls_computed: u64,
    /// Later polls that produced a CPU ratio: the window code ran.
    windows: u64,
}

/// Checks the rendered outputs of one snapshot; `Err` names the broken property.
fn check_snapshot(snapshot: &Snapshot) -> Result<bool, String> {
    let mut text = String::new();
    exposition::write_families(&mut text, &snapshot.families, Format::Text);
    exposition::write_end(&mut text, Format::Text);
    let mut om = String::new();
    exposition::write_families(&mut om, &snapshot.families, Format::OpenMetrics);
    exposition::write_end(&mut om, Format::OpenMetrics);
    if !om.ends_with("# EOF\n") {
        return Err("OpenMetrics without # EOF".into());
    }
    let mut window = false;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap_or("");
        if value == "NaN" {
            return Err(format!("NaN: {line}"));
        }
        if value.ends_with("Inf") {
            return Err(format!("infinite value: {line}"));
        }
        if line.starts_with("ecs_task_cpu_usage_ratio")
            || line.starts_with("ecs_task_percpu_usage_ratio")
        {
            window |= line.starts_with("ecs_task_cpu_usage_ratio");
            if value.starts_with('-') {
                return Err(format!("negative ratio: {line}"));
            }
        }
    }
    let lines = dogstatsd::lines(snapshot);
    for line in &lines {
        if line.contains(":NaN|") || line.contains(":nan|") {
            return Err(format!("DogStatsD NaN: {line}"));
        }
        if line.contains(":inf|") || line.contains(":-inf|") {
            return Err(format!("DogStatsD infinite value: {line}"));
        }
        if line.contains('\n') {
            return Err(format!("DogStatsD line with a newline: {line:?}"));
        }
    }
    for datagram in dogstatsd::pack(&lines, dogstatsd::MAX_DATAGRAM) {
        let single = !datagram.contains(&b'\n');
        if datagram.len() > dogstatsd::MAX_DATAGRAM && !single {
            return Err(format!("datagram of {} bytes", datagram.len()));
        }
    }
    Ok(window)
}

fn run_case(case: &Case, tally: &mut Tally) -> Result<(), String> {
    tally.cases += 1;
    let _ = payload::parse_task(&case.free);
    let _ = payload::parse_stats(&case.free);
    if let Ok(v) = serde_json::from_slice::<Value>(&case.free) {
        let _ = payload::sample(&v);
        if let Value::Object(m) = &v {
            m.values().for_each(|e| {
                let _ = payload::sample(e);
            });
        }
    }
    let _ = rfc3339::parse(&String::from_utf8_lossy(&case.free));
    let _ = rfc3339::parse(&String::from_utf8_lossy(
        &case.free[..case.free.len().min(40)],
    ));

    let Ok(task) = payload::parse_task(&case.task) else {
        return Ok(());
    };
    tally.tasks_parsed += 1;
    let mut history = History::default();
    for (i, poll) in case.polls.iter().enumerate() {
        let Ok(stats) = payload::parse_stats(poll) else {
            continue;
        };
        tally.stats_parsed += 1;
        let (snapshot, next) =
            compute::compute(&task, &stats, &history, &case.filter.clone().into());
        tally.polls_computed += 1;
        let window = check_snapshot(&snapshot).map_err(|e| format!("poll {i}: {e}"))?;
        if window && i > 0 {
            tally.windows += 1;
        }
        history = next;
    }
    Ok(())
}

fn show(label: &str, bytes: &[u8]) -> String {
    format!(
        "{label} ({} bytes): b\"{}\"",
        bytes.len(),
        bytes.escape_ascii()
    )
}

#[test]
fn fuzz_payload_compute_and_rendering() {
    let corpus = corpus();
    let mut tally = Tally::default();
    let mut last_case = 0;
    for (i, case_seed) in case_seeds("payload") {
        last_case = i;
        let mut rng = Rng::new(case_seed);
        let case = make_case(&mut rng, &corpus);
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| run_case(&case, &mut tally)));
        let failure = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(property)) => property,
            Err(panic) => format!(
                "panic: {}",
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default()
            ),
        };
        let mut report = format!(
            "fuzz payload: case {i} failed: {failure}\n  seed {:#x}; replay with FUZZ_CASE={case_seed:#x}\n  filter {:?}\n",
            base_seed(),
            case.filter
        );
        report.push_str(&format!("  {}\n", show("free input", &case.free)));
        report.push_str(&format!("  {}\n", show("task", &case.task)));
        for (n, poll) in case.polls.iter().enumerate() {
            report.push_str(&format!("  {}\n", show(&format!("stats poll {n}"), poll)));
        }
        panic!("{report}");
    }
    eprintln!(
        "fuzz payload: {} cases (last {last_case}); {tally:?}",
        tally.cases
    );
    if tally.cases >= MIN_CASES {
        assert!(
            tally.tasks_parsed > 0 && tally.polls_computed > 0,
            "{tally:?}"
        );
        assert!(tally.windows > 0, "the window code never ran: {tally:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Target 2: request heads over the real socket.

const HTTP_SEEDS: &[&[u8]] = &[
    b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/openmetrics-text; version=1.0.0\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\nUser-Agent: Prometheus/3.0\r\n\r\n",
    b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
    b"GET /health HTTP/1.1\r\nConnection: keep-alive\r\n\r\nGET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n",
    b"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
    b"GET /metrics?x=1#frag HTTP/1.1\r\nAccept: */*\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\n\r\n",
    b"GET /nope HTTP/1.1\nHost: x\n\n",
];

const HTTP_BYTES: &[u8] = b"\r\n :\0\xff\t/?#%\"\\aZ09";

const HEADER_LINES: &[&str] = &[
    "Content-Length: 0",
    "Content-Length: 3",
    "Content-Length: 70000",
    "Content-Length: -1",
    "Content-Length: 18446744073709551616",
    "Content-Length: abc",
    "Content-Length:",
    "Transfer-Encoding: identity",
    "Connection: close",
    "Connection: keep-alive",
    "Connection: upgrade",
    "Upgrade: websocket",
    "Expect: 100-continue",
    "Accept: application/openmetrics-text",
    ": empty name",
    "Host:",
    "X-Folded: a\r\n b",
];

fn mutate_http(rng: &mut Rng) -> Vec<u8> {
    let mut head = rng.pick(HTTP_SEEDS).to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = head.len();
        match rng.below(11) {
            0 if len > 0 => {
                let i = rng.below(len);
                head[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                head[i] = *rng.pick(HTTP_BYTES);
            }
            2 => head.truncate(rng.below(len + 1)),
            3 if len > 0 => {
                let from = rng.below(len);
                let n = rng.below(len - from + 1).min(64);
                head.drain(from..from + n);
            }
            4 if len > 0 => {
                let from = rng.below(len);
                let n = rng.below(len - from + 1).min(64);
                let chunk = head[from..from + n].to_vec();
                head.splice(from..from, chunk);
            }
            5 => {
                // A long run: around the 8 KiB head limit, sometimes well over.
                let n = match rng.below(4) {
                    0 => 8 * 1024 - 64 + rng.below(128),
                    1 => rng.below(20_000),
                    _ => rng.below(300),
                };
                let at = rng.below(len + 1);
                let byte = *rng.pick(b"a:/ \r\n");
                head.splice(at..at, std::iter::repeat_n(byte, n));
            }
            6 => {
                // A header line after the request line.
                let at = head
                    .windows(2)
                    .position(|w| w == b"\r\n")
                    .map_or(len, |i| i + 2);
                let line = format!("{}\r\n", rng.pick(HEADER_LINES));
                head.splice(at..at, line.into_bytes());
            }
            7 => {
                let other = rng.pick(HTTP_SEEDS);
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                head.truncate(cut);
                head.extend_from_slice(&other[from..]);
            }
            8 => {
                let n = rng.below(64);
                let at = rng.below(len + 1);
                let junk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                head.splice(at..at, junk);
            }
            9 => head.retain(|&b| b != b'\r'),
            _ => {
                let other = rng.pick(HTTP_SEEDS);
                head.extend_from_slice(other);
            }
        }
    }
    head
}

/// The answer starts with a status line, and every status line in it (answers to pipelined
/// requests follow one another; metric bodies never contain one) has an expected code.
fn check_answers(raw: &[u8]) -> Result<(), String> {
    if raw.is_empty() {
        return Ok(()); // no complete request: closed without an answer
    }
    if !raw.starts_with(b"HTTP/1.1 ") {
        return Err("the answer does not start with a status line".into());
    }
    for (at, _) in raw
        .windows(9)
        .enumerate()
        .filter(|(_, w)| *w == b"HTTP/1.1 ")
    {
        let code = std::str::from_utf8(&raw[at + 9..(at + 12).min(raw.len())])
            .ok()
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| format!("bad status line at byte {at}"))?;
        if !matches!(code, 200 | 400 | 404 | 405 | 413 | 431) {
            return Err(format!("unexpected status {code}"));
        }
        let head_end = raw[at..]
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or("an answer without the end of its head")?;
        let head = String::from_utf8_lossy(&raw[at..at + head_end]);
        if !head.lines().any(|l| l.starts_with("Content-Length: ")) {
            return Err(format!("an answer without Content-Length: {head:?}"));
        }
    }
    Ok(())
}

#[test]
fn fuzz_http_request_heads_over_the_socket() {
    let sim = Sim::start(&["--profile", "ec2-bridge"]);
    let mut exporter = Exporter::start(&sim.url, &["--interval", "1"], &[]);
    let (addr, pid) = (exporter.addr, exporter.child.id());
    assert!(wait_for(Duration::from_secs(30), || proc_status(pid).0 == 3));
    let mut recent: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut cases = 0u64;
    let mut answered = 0u64;
    for (i, case_seed) in case_seeds("http") {
        let mut rng = Rng::new(case_seed);
        let request = mutate_http(&mut rng);
        let pieces = if rng.chance(20) { 2 + rng.below(6) } else { 1 };
        recent.push((case_seed, request.clone()));
        if recent.len() > 8 {
            recent.remove(0);
        }
        let fail = |what: String, recent: &[(u64, Vec<u8>)]| -> ! {
            let mut report = format!(
                "fuzz http: case {i} (seed {:#x}, replay with FUZZ_CASE={case_seed:#x}): {what}\n",
                base_seed()
            );
            for (seed, req) in recent {
                report.push_str(&format!(
                    "  case seed {seed:#x}: {}\n",
                    show("request", req)
                ));
            }
            panic!("{report}");
        };
        let chunk = request.len().div_ceil(pieces).max(1);
        match send_chunks(addr, &request, chunk) {
            Ok(raw) => {
                answered += u64::from(!raw.is_empty());
                if let Err(e) = check_answers(&raw) {
                    fail(
                        format!("{e}; answer: {}", raw[..raw.len().min(300)].escape_ascii()),
                        &recent,
                    );
                }
            }
            Err(e) => fail(e.to_string(), &recent),
        }
        cases += 1;
        let logs = exporter.logs();
        if logs.contains("panicked") {
            fail(format!("a server thread panicked:\n{logs}"), &recent);
        }
        if i % 32 == 0 {
            let (status, _, body) = http_get(addr, "/metrics", &[])
                .unwrap_or_else(|e| fail(format!("/metrics failed: {e}"), &recent));
            if status != 200 || parse_strict(&body).is_err() {
                fail(format!("/metrics answered {status}"), &recent);
            }
        }
        if !matches!(exporter.child.try_wait(), Ok(None)) {
            fail("the exporter exited".into(), &recent);
        }
    }
    let settled = wait_for(Duration::from_secs(30), || proc_status(pid).0 <= 3);
    let threads = proc_status(pid).0;
    eprintln!("fuzz http: {cases} requests, {answered} answered; threads after: {threads}");
    assert!(settled, "connection threads left: {threads}");
    let (status, _, _) = http_get(addr, "/metrics", &[]).expect("/metrics");
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_millis(100));
    let text = exporter.stop_and_logs();
    assert!(!text.contains("panicked"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Counter arithmetic: no overflow, no division by zero, no NaN/Inf/negative ratio.

const SEC: i128 = 1_000_000_000;
const T0: i128 = 1_740_000_000 * SEC;

fn task(cpu_units: Option<f64>, task_vcpus: Option<f64>, mode: &str) -> Task {
    let container = |id: &str, name: &str| Container {
        docker_id: id.into(),
        name: name.into(),
        image: "img".into(),
        known_status: "RUNNING".into(),
        cpu_units,
        memory_mib: Some(256.0),
        network_mode: Some(mode.into()),
        ..Container::default()
    };
    Task {
        cluster: "c".into(),
        family: "f".into(),
        revision: "1".into(),
        launch_type: "EC2".into(),
        cpu_vcpus: task_vcpus,
        memory_mib: Some(512.0),
        containers: vec![container("a", "app"), container("b", "sidecar")],
        ..Task::default()
    }
}

#[derive(Clone, Copy)]
struct Reading {
    read: i128,
    total: u64,
    system: Option<u64>,
    online: Option<u32>,
    percpu: [u64; 2],
    big: u64,
}

fn reading(read: i128, total: u64, system: Option<u64>) -> Reading {
    Reading {
        read,
        total,
        system,
        online: Some(2),
        percpu: [total / 2, total - total / 2],
        big: total,
    }
}

fn sample(r: Reading) -> Sample {
    Sample {
        read: r.read,
        preread: None,
        cpu: Cpu {
            total: Some(r.total),
            percpu: r.percpu.to_vec(),
            kernel: Some(r.total / 4),
            user: Some(r.total / 2),
            system: r.system,
            online_cpus: r.online,
        },
        precpu: Cpu::default(),
        throttling: Some(Throttling {
            periods: r.big,
            throttled_periods: r.big,
            throttled_time: r.big,
        }),
        memory: Memory {
            usage: Some(r.big),
            cache: Some(r.big),
            rss: Some(r.big),
            inactive_file: Some(u64::MAX),
        },
        disk: Disk {
            bytes: Some(vec![Device {
                major: 8,
                minor: 0,
                read: r.big,
                write: r.big,
            }]),
            ops: Some(vec![Device {
                major: 8,
                minor: 0,
                read: r.big,
                write: r.big,
            }]),
        },
        networks: vec![(
            "eth0".into(),
            Net {
                rx_bytes: r.big,
                rx_packets: r.big,
                rx_errors: r.big,
                rx_dropped: r.big,
                tx_bytes: r.big,
                tx_packets: r.big,
                tx_errors: r.big,
                tx_dropped: r.big,
            },
        )],
    }
}

/// Both containers read the same.
fn stats(r: Reading) -> Stats {
    [("a", r), ("b", r)]
        .into_iter()
        .map(|(id, r)| (id.to_owned(), Some(sample(r))))
        .collect()
}

/// Renders a snapshot and checks it: strictly valid text, no NaN or ±Inf anywhere (text,
/// OpenMetrics, DogStatsD), every ratio finite and ≥ 0. Returns the parsed scrape.
fn checked(snapshot: &Snapshot, what: &str) -> common::Scrape {
    let text = common::render(snapshot);
    let scrape = parse_strict(&text).unwrap_or_else(|e| panic!("{what}: {e}\n{text}"));
    let mut om = String::new();
    exposition::write_families(&mut om, &snapshot.families, Format::OpenMetrics);
    let statsd = dogstatsd::lines(snapshot).join("\n");
    for (format, out) in [
        ("text", &text),
        ("OpenMetrics", &om),
        ("DogStatsD", &statsd),
    ] {
        for bad in ["NaN", "Inf", "nan", "inf|"] {
            assert!(!out.contains(bad), "{what}: {bad} in {format}:\n{out}");
        }
    }
    for ((name, labels), v) in &scrape.samples {
        assert!(v.is_finite(), "{what}: {name}{labels:?} = {v}");
        if name.ends_with("_ratio") {
            assert!(*v >= 0.0, "{what}: {name}{labels:?} = {v}");
        }
    }
    scrape
}

/// Polls the readings in turn (container `a` and `b` identical); returns each poll's scrape.
fn polls(task: &Task, readings: &[Reading], what: &str) -> Vec<common::Scrape> {
    let mut history = History::default();
    readings
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (snapshot, next) =
                compute::compute(task, &stats(*r), &history, &Options::default());
            history = next;
            checked(&snapshot, &format!("{what}, poll {i}"))
        })
        .collect()
}

fn ratio(s: &common::Scrape) -> Option<f64> {
    s.get("ecs_task_cpu_usage_ratio", &[("container_name", "app")])
}

#[test]
fn counters_at_u64_max_saturate_and_never_overflow() {
    let t = task(Some(512.0), Some(1.0), "bridge");
    let max = u64::MAX;
    let scrapes = polls(
        &t,
        &[
            reading(T0, max - 1_000, Some(max - 1_000_000)),
            reading(T0 + 10 * SEC, max, Some(max)),
            Reading {
                big: max,
                ..reading(T0 + 20 * SEC, max, Some(max))
            },
        ],
        "u64::MAX",
    );
    let last = &scrapes[2];
    // Two containers' u64::MAX memory and bridge-mode network add up to u64::MAX, not a wrap.
    let task_row = [("container_name", "_task_")];
    assert_eq!(last.value("ecs_task_mem_usage", &task_row), max as f64);
    assert_eq!(
        last.value(
            "ecs_task_network_rx_bytes_total",
            &[("container_name", "_task_"), ("interface", "eth0")]
        ),
        max as f64
    );
    // usage − inactive_file floors at 0.
    assert_eq!(
        last.value(
            "ecs_container_memory_working_set_bytes",
            &[("container_name", "app")]
        ),
        0.0
    );
    assert!(
        ratio(&scrapes[1]).is_some(),
        "a window from near-max counters"
    );
    // JSON counters beyond u64 (floats, 1e30) saturate at parse time; blkio sums saturate too.
    let body = br#"{"a": {"read": "2025-01-01T00:00:10Z", "preread": "2025-01-01T00:00:00Z",
        "cpu_stats": {"cpu_usage": {"total_usage": 1e30, "percpu_usage": [18446744073709551615, 1e300]},
                      "system_cpu_usage": 18446744073709551615, "online_cpus": 2},
        "precpu_stats": {"cpu_usage": {"total_usage": 18446744073709551615}, "system_cpu_usage": 18446744073709551614, "online_cpus": 2},
        "memory_stats": {"usage": 18446744073709551615, "stats": {"inactive_file": 1e25}},
        "blkio_stats": {"io_service_bytes_recursive": [
            {"op": "Read", "value": 18446744073709551615}, {"op": "read", "value": 18446744073709551615}]}}}"#;
    let stats = payload::parse_stats(body).expect("parses");
    let (snapshot, _) = compute::compute(&t, &stats, &History::default(), &Options::default());
    let s = checked(&snapshot, "JSON at u64::MAX");
    assert_eq!(
        s.value(
            "ecs_task_disk_read_bytes_total",
            &[("container_name", "app")]
        ),
        max as f64
    );
    assert_eq!(
        ratio(&s),
        Some(0.0),
        "equal totals over a 1 ns system window"
    );
}

#[test]
fn zero_counters_and_empty_windows_divide_by_nothing() {
    for (units, vcpus) in [
        (None, None),
        (Some(512.0), None),
        (None, Some(0.25)),
        (Some(3.0), Some(4.0)),
    ] {
        let t = task(units, vcpus, "awsvpc");
        let what = format!("limits {units:?}/{vcpus:?}");
        // Everything zero, system not moving: no window.
        let s = polls(
            &t,
            &[reading(T0, 0, Some(0)), reading(T0 + SEC, 0, Some(0))],
            &what,
        );
        assert_eq!(ratio(&s[1]), None, "{what}: Δsystem = 0");
        // Without system_cpu_usage the window is Δread: zero Δtotal over 1 s is 0, not NaN.
        let s = polls(
            &t,
            &[reading(T0, 0, None), reading(T0 + SEC, 0, None)],
            &what,
        );
        assert_eq!(ratio(&s[1]), Some(0.0), "{what}: idle");
        // No online_cpus and no percpu: no CPU count to scale by, so no host-relative window.
        let no_cpus = |r: Reading| Reading {
            online: None,
            percpu: [0, 0],
            ..r
        };
        polls(
            &t,
            &[
                no_cpus(reading(T0, 0, Some(100))),
                no_cpus(reading(T0 + SEC, 50, Some(200))),
            ],
            &format!("{what}, no CPU count"),
        );
    }
}

#[test]
fn counters_going_down_give_no_ratio() {
    let t = task(Some(1024.0), Some(2.0), "bridge");
    let start = reading(T0, 5_000_000_000, Some(100_000_000_000));
    // The container restarted: total_usage fell.
    let s = polls(
        &t,
        &[start, reading(T0 + 10 * SEC, 1_000, Some(120_000_000_000))],
        "total down",
    );
    assert_eq!(ratio(&s[1]), None, "no window across a restart");
    assert!(
        s[1].get("ecs_task_cpu_kernelmode", &[("container_name", "app")])
            .is_none()
    );
    // The host counter fell (never should): no window either.
    let s = polls(
        &t,
        &[start, reading(T0 + 10 * SEC, 6_000_000_000, Some(1))],
        "system down",
    );
    assert_eq!(ratio(&s[1]), None);
    // One CPU's counter fell: that CPU has no ratio, the other does.
    let mut next = reading(T0 + 10 * SEC, 6_000_000_000, Some(120_000_000_000));
    next.percpu = [0, 4_000_000_000];
    let s = polls(&t, &[start, next], "one percpu down");
    let percpu = |cpu: &str| {
        s[1].get(
            "ecs_task_percpu_usage_ratio",
            &[("container_name", "app"), ("cpu", cpu)],
        )
    };
    assert_eq!(percpu("0"), None);
    assert!(percpu("1").is_some_and(|v| v >= 0.0));
    // And after the restart, the next window is computed from the new, lower counters.
    let s = polls(
        &t,
        &[
            start,
            reading(T0 + 10 * SEC, 1_000, Some(120_000_000_000)),
            reading(T0 + 20 * SEC, 2_000_001_000, Some(140_000_000_000)),
        ],
        "after a restart",
    );
    assert!(ratio(&s[2]).is_some_and(|v| v > 0.0));
}

#[test]
fn equal_reads_repeat_the_last_window_and_backward_reads_give_none() {
    let t = task(None, Some(1.0), "awsvpc");
    let a = reading(T0, 1_000_000_000, Some(10_000_000_000));
    let b = reading(T0 + 10 * SEC, 6_000_000_000, Some(30_000_000_000));
    // The same `read` again (Fargate between refreshes), even with other numbers: last window.
    let mut same_read = reading(T0 + 10 * SEC, 1, Some(1));
    same_read.percpu = [0, 0];
    let s = polls(&t, &[a, b, same_read, same_read], "equal reads");
    let window = ratio(&s[1]).expect("a window");
    assert_eq!(ratio(&s[2]), Some(window));
    assert_eq!(ratio(&s[3]), Some(window));
    // `read` going backwards: no window (and no panic on the negative span); the next forward
    // read makes a window again.
    let back = reading(T0 - 5 * SEC, 7_000_000_000, Some(40_000_000_000));
    let on = reading(T0 + 5 * SEC, 8_000_000_000, Some(60_000_000_000));
    let s = polls(&t, &[b, back, on], "backward read");
    assert_eq!(ratio(&s[1]), None);
    assert!(ratio(&s[2]).is_some());
    // Equal reads without system_cpu_usage: Δread = 0 is no division.
    let s = polls(
        &t,
        &[
            reading(T0, 1, None),
            reading(T0, 2, None),
            reading(T0, 3, None),
        ],
        "equal reads, no system",
    );
    assert!(s.iter().all(|s| ratio(s).is_none()));
}

#[test]
fn extreme_spans_and_cpu_counts_stay_finite() {
    let t = task(Some(3.0), None, "host");
    let max = u64::MAX;
    // Δtotal = u64::MAX over 1 ns of system time on u32::MAX CPUs, over a 3-unit limit: huge,
    // but a number.
    let mut a = reading(T0, 0, Some(0));
    let mut b = reading(T0 + 1, max, Some(1));
    a.online = Some(u32::MAX);
    b.online = Some(u32::MAX);
    let s = polls(&t, &[a, b], "huge ratio");
    assert!(ratio(&s[1]).is_some_and(|v| v.is_finite() && v > 0.0));
    // A span of 8,000 years without system_cpu_usage does not fit the ns arithmetic: no window,
    // no panic.
    let far = 8_000 * 365 * 86_400 * SEC;
    polls(
        &t,
        &[reading(T0 - far, 0, None), reading(T0 + far, max, None)],
        "8000 years",
    );
    // 1 ns without system_cpu_usage: u64::MAX cores, still finite.
    let s = polls(
        &t,
        &[reading(T0, 0, None), reading(T0 + 1, max, None)],
        "1 ns",
    );
    assert!(ratio(&s[1]).is_some_and(f64::is_finite));
    // First poll against precpu_stats: an all-zero precpu, a zero system, a preread after or
    // equal to read, a precpu above the current counters, no preread: never a window, never a
    // panic. The last case is a real window, for contrast.
    for (pre_total, pre_system, preread, window) in [
        (0, Some(0), Some(T0 - SEC), false),
        (5, Some(0), Some(T0 - SEC), false),
        (5, Some(7), Some(T0 + SEC), false),
        (5, Some(7), Some(T0), false),
        (max, Some(max), Some(T0 - SEC), false),
        (5, None, None, false),
        (5, Some(7), Some(T0 - SEC), true),
    ] {
        let mut s = sample(reading(T0, 10, Some(10)));
        s.precpu = Cpu {
            total: Some(pre_total),
            system: pre_system,
            online_cpus: Some(2),
            ..Cpu::default()
        };
        s.preread = preread;
        let stats: Stats = [("a".to_owned(), Some(s))].into_iter().collect();
        let (snapshot, _) = compute::compute(&t, &stats, &History::default(), &Options::default());
        let scrape = checked(&snapshot, "precpu edge");
        assert_eq!(
            ratio(&scrape).is_some(),
            window,
            "precpu {pre_total} {pre_system:?} {preread:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Starting an exporter that is really ours (as in faults.rs and hostile.rs).
