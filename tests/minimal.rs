//! The design card's minimal binary (`cargo test --no-default-features`, run by `make test`):
//! no remote write and no TLS. It says so in `--version`, refuses every remote-write setting with
//! one line and exit 2, and otherwise exports as ever. With the default features this file has
//! no tests: `remote_write*.rs` cover the full binary.
#![cfg(not(feature = "remote-write"))]

mod common;

use std::time::Duration;

use common::Launch;

/// Runs the binary with exactly these arguments and variables: (exit code, stdout and stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let ran = Launch::new().args(args).env(env).run();
    (ran.code, ran.stdout + &ran.stderr)
}

#[test]
fn the_minimal_binary_names_no_feature_in_its_version() {
    let (code, out) = run(&["--version"], &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.trim_end().ends_with(", features none"), "{out}");
}

#[test]
fn the_minimal_binary_refuses_remote_write_with_one_line_and_exit_2() {
    let url = "http://127.0.0.1:1/api/v1/write";
    let metadata = ("ECS_CONTAINER_METADATA_URI_V4", "http://127.0.0.1:1");
    for (args, env, named) in [
        (
            &["--remote-write-url", url][..],
            &[metadata][..],
            "--remote-write-url",
        ),
        (
            &[],
            &[metadata, ("REMOTE_WRITE_URL", url)],
            "REMOTE_WRITE_URL",
        ),
    ] {
        let (code, out) = run(args, env);
        assert_eq!(code, Some(2), "{args:?} {env:?}: {out}");
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(
            out.contains(named) && out.contains("built without remote write"),
            "{out}"
        );
    }
}

#[test]
fn the_minimal_binary_exports_without_the_remote_write_families() {
    let (_sim, _exporter, scrape) =
        Launch::new()
            .args(&["--interval", "0.2"])
            .task_until(&[], Duration::from_secs(10), |s| {
                s.has_family("ecs_task_cpu_limit")
            });
    assert!(scrape.has_family("ecs_task_mem_usage"));
    assert!(!scrape.has_family("ecs_exporter_remote_write_requests_total"));
}
