//! Docker and the build, through their command lines: the `docker` CLI, a cleanup guard for what
//! a test creates in the engine, and the Makefile and `cargo build --profile dist` builds of the
//! static musl binaries (with the paths they land in and the rustc beside the test's cargo).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The Rust target of the shipped x86_64 binaries.
pub const AMD64: &str = "x86_64-unknown-linux-musl";

// ---------------------------------------------------------------------------------------------
// Docker.

/// True when no Docker engine answers `docker version`, after saying so on stderr (the test then
/// passes without running).
pub fn no_engine() -> bool {
    match docker(&["version", "--format", "{{.Server.Version}}"]) {
        Ok(_) => false,
        Err(why) => {
            eprintln!(
                "skipping: no Docker engine answers `docker version` ({})",
                why.lines().next().unwrap_or("")
            );
            true
        }
    }
}

/// Removes what the test created, in dependency order, whatever happened: containers, then
/// networks, then images, then the temporary directory.
#[derive(Default)]
pub struct Cleanup {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    pub images: Vec<String>,
    pub dir: Option<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = docker(&["rm", "-f", "-v", c]);
        }
        for n in &self.networks {
            let _ = docker(&["network", "rm", n]);
        }
        for i in &self.images {
            let _ = docker(&["rmi", "-f", i]);
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The stdout of a `docker` command, or its stderr as the error.
pub fn docker_bytes(args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("docker: {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(format!(
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The stdout of a `docker` command as trimmed text, or its stderr as the error.
pub fn docker(args: &[&str]) -> Result<String, String> {
    docker_bytes(args).map(|b| String::from_utf8_lossy(&b).trim().to_owned())
}

// ---------------------------------------------------------------------------------------------
// Building.

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where the Makefile's cargo builds go: `$CARGO_TARGET_DIR`, else `./target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => manifest_dir().join(dir),
        None => manifest_dir().join("target"),
    }
}

/// A binary of the `dist` profile for `triple`, as `make` and [`cargo_dist`] leave it.
pub fn dist_binary(triple: &str, bin: &str) -> PathBuf {
    target_dir().join(triple).join("dist").join(bin)
}

/// The commit the binaries record, by the rule `build.rs` and the Makefile follow:
/// `ECS_EXPORTER_COMMIT` when set, else [`git_commit`].
pub fn built_commit() -> Option<String> {
    std::env::var("ECS_EXPORTER_COMMIT")
        .ok()
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
        .or_else(git_commit)
}

/// `git rev-parse HEAD` in the crate when git tracks its `Cargo.toml`, else `None`.
pub fn git_commit() -> Option<String> {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(manifest_dir())
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    git(&["ls-files", "--error-unmatch", "Cargo.toml"])?;
    git(&["rev-parse", "HEAD"])
}

/// The rustc beside the cargo that builds these tests.
pub fn rustc() -> PathBuf {
    let beside = Path::new(env!("CARGO")).with_file_name("rustc");
    if beside.is_file() {
        beside
    } else {
        PathBuf::from("rustc")
    }
}

/// Runs `make <args>` in the crate with the cargo that builds these tests; panics with its
/// output on failure.
pub fn make(args: &[&str]) {
    let out = Command::new("make")
        .arg("-C")
        .arg(manifest_dir())
        .args(args)
        .arg(format!("CARGO={}", env!("CARGO")))
        .output()
        .expect("run make");
    assert!(
        out.status.success(),
        "make {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `cargo build --profile dist --target <triple> --bin <bin>` into [`target_dir`].
pub fn cargo_dist(triple: &str, bin: &str) {
    cargo_dist_build(triple, &["--bin", bin], None);
}

/// `cargo build --profile dist --target <triple> <selection>` in the crate with the cargo that
/// builds these tests, into `target` (else the inherited `$CARGO_TARGET_DIR`, or `./target`);
/// panics with cargo's stderr on failure.
pub fn cargo_dist_build(triple: &str, selection: &[&str], target: Option<&Path>) {
    let mut command = Command::new(env!("CARGO"));
    command
        .current_dir(manifest_dir())
        .args(["build", "--profile", "dist", "--target", triple])
        .args(selection);
    if let Some(target) = target {
        command.env("CARGO_TARGET_DIR", target);
    }
    let out = command.output().expect("run cargo");
    assert!(
        out.status.success(),
        "cargo build --profile dist --target {triple} {} failed:\n{}",
        selection.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}
