//! Benchmark helper (built by tests/bench/run.sh with plain `rustc -O` against the release rlib
//! of the crate; not a cargo target): times the pure stages of one poll on payloads saved from
//! the simulator, so the poll's CPU can be split into HTTP + parse + compute + render.
//!
//! Usage: render <task.json> <stats1.json> <stats2.json> <iterations>
//! Prints one line: `parse_us=… compute_us=… render_us=… text_bytes=… series=…` where each time
//! is the mean over the iterations (parse: /task and /task/stats; render: both formats).

use std::hint::black_box;
use std::time::Instant;

use ecs_container_exporter::core::compute::{self, Filter, History, Options};
use ecs_container_exporter::core::payload;
use ecs_container_exporter::core::{exposition, health};
use ecs_container_exporter::core::health::Health;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: render <task.json> <stats1.json> <stats2.json> <iterations>");
        std::process::exit(2);
    }
    let read = |p: &str| std::fs::read(p).unwrap_or_else(|e| panic!("{p}: {e}"));
    let (task_raw, s1_raw, s2_raw) = (read(&args[1]), read(&args[2]), read(&args[3]));
    let n: u32 = args[4].parse().expect("iterations");
    let filter: Options = Filter {
        include: Vec::new(),
        exclude: vec![
            "ecs-container-exporter".into(),
            "~internal~ecs~pause".into(),
        ],
    }
    .into();

    let task = payload::parse_task(&task_raw).expect("task parses");
    let s1 = payload::parse_stats(&s1_raw).expect("stats parse");
    let s2 = payload::parse_stats(&s2_raw).expect("stats parse");
    let (_, history) = compute::compute(&task, &s1, &History::default(), &filter);
    let (snapshot, _) = compute::compute(&task, &s2, &history, &filter);
    let health = Health {
        up: true,
        last_success: Some(1.0e9),
        poll_duration: Some(0.001),
        ..Health::default()
    };

    let t = Instant::now();
    for _ in 0..n {
        black_box(payload::parse_task(black_box(&task_raw)).ok());
        black_box(payload::parse_stats(black_box(&s2_raw)).ok());
    }
    let parse = t.elapsed().as_secs_f64() / f64::from(n);

    let t = Instant::now();
    for _ in 0..n {
        black_box(compute::compute(
            black_box(&task),
            black_box(&s2),
            &history,
            &filter,
        ));
    }
    let compute_time = t.elapsed().as_secs_f64() / f64::from(n);

    let t = Instant::now();
    let mut bytes = 0;
    for _ in 0..n {
        let e = exposition::render(black_box(&snapshot.families), &health::families(&health));
        bytes = e.text.len();
        black_box(e);
    }
    let render = t.elapsed().as_secs_f64() / f64::from(n);

    let series: usize = snapshot.families.iter().map(|f| f.series.len()).sum();
    println!(
        "parse_us={:.1} compute_us={:.1} render_us={:.1} text_bytes={bytes} series={series}",
        parse * 1e6,
        compute_time * 1e6,
        render * 1e6
    );
}
