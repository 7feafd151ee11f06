//! Build script: records the Rust target triple and the git commit the binary is built from, as
//! the compile-time variables `ECS_EXPORTER_BUILD_TARGET` and `ECS_EXPORTER_BUILD_COMMIT` (empty
//! when unknown) that `src/core/version.rs` reads for `--version` and `ecs_exporter_build_info`.
//! They are named apart from the `ECS_EXPORTER_COMMIT` input because cargo also sets them in the
//! environment of `cargo test` and `cargo run`: a build started from there (the tests run `make`)
//! must not take them for a packager's override.
//!
//! The commit is, in this order:
//! 1. `ECS_EXPORTER_COMMIT` from the environment, for packagers who build outside git: 7 to 64
//!    lowercase hex digits (as git prints them, so the Makefile's image label is the same
//!    string), else the build stops with one line naming the variable;
//! 2. `git rev-parse HEAD` in the repository that tracks this crate's `Cargo.toml` (a git
//!    worktree too; a source tree unpacked inside some other repository does not take that
//!    repository's commit);
//! 3. unknown, with a cargo warning.
//!
//! Cargo reruns the script when the variable changes, and in git when `HEAD`, the branch it
//! names, `packed-refs` or `HEAD`'s reflog changes: a commit, checkout, reset or pack never
//! leaves a stale commit in the binary. Uncommitted changes are not marked. Std only.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

const OVERRIDE: &str = "ECS_EXPORTER_COMMIT";

fn main() -> ExitCode {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed={OVERRIDE}");
    println!(
        "cargo::rustc-env=ECS_EXPORTER_BUILD_TARGET={}",
        env::var("TARGET").unwrap_or_default()
    );
    let commit = match env::var(OVERRIDE) {
        Ok(value) if !value.trim().is_empty() => match hex_commit(&value) {
            Some(commit) => commit,
            None => {
                eprintln!(
                    "invalid value '{value}' for {OVERRIDE}: expected a git commit, 7 to 64 \
                     lowercase hex digits"
                );
                return ExitCode::FAILURE;
            }
        },
        _ => {
            let dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
            match from_git(&dir) {
                Some((commit, watched)) => {
                    for path in watched {
                        println!("cargo::rerun-if-changed={}", path.display());
                    }
                    commit
                }
                None => {
                    println!(
                        "cargo::warning=commit unknown: {} is not tracked by git here; set \
                         {OVERRIDE} to record the commit",
                        dir.join("Cargo.toml").display()
                    );
                    String::new()
                }
            }
        }
    };
    println!("cargo::rustc-env=ECS_EXPORTER_BUILD_COMMIT={commit}");
    ExitCode::SUCCESS
}

/// The commit checked out in `dir` and the git files whose change moves it, when `dir`'s
/// `Cargo.toml` is tracked by a git repository.
fn from_git(dir: &Path) -> Option<(String, Vec<PathBuf>)> {
    git(dir, &["ls-files", "--error-unmatch", "--", "Cargo.toml"])?;
    let commit = hex_commit(&git(
        dir,
        &["rev-parse", "--verify", "--quiet", "HEAD^{commit}"],
    )?)?;
    // HEAD and its reflog are per worktree; the branch and packed-refs are in the common git
    // directory. `--git-path` maps each name to where it lives (absolute in a worktree, else
    // relative to `dir`). Only existing files are watched: cargo reruns for a missing one on
    // every build.
    let mut names = vec!["HEAD".to_owned(), "logs/HEAD".into(), "packed-refs".into()];
    names.extend(git(dir, &["symbolic-ref", "--quiet", "HEAD"]));
    let mut args = vec!["rev-parse"];
    for name in &names {
        args.extend(["--git-path", name]);
    }
    let watched = git(dir, &args)?
        .lines()
        .map(|path| dir.join(path))
        .filter(|path| path.is_file())
        .collect();
    Some((commit, watched))
}

/// The trimmed stdout of `git -C dir args`, when it succeeds.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout)
        .ok()
        .map(|s| s.trim().to_owned())
}

/// A commit id of 7 to 64 lowercase hex digits (abbreviated, SHA-1 or SHA-256).
fn hex_commit(value: &str) -> Option<String> {
    let value = value.trim();
    ((7..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
    .then(|| value.to_owned())
}
