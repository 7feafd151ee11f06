//! What a user downloads (issue 14): `--version` on the real binary; the commit `build.rs`
//! records (from git, a git worktree, `ECS_EXPORTER_COMMIT`, or unknown outside git); the same
//! version and commit in `ecs_exporter_build_info`. The build-script tests that make
//! repositories need `git`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::docker::{built_commit, git_commit, manifest_dir, rustc};
use common::{EXPORTER, Exporter, Sim};

const VERSION: &str = env!("CARGO_PKG_VERSION");

// ---------------------------------------------------------------------------------------------
// --version and ecs_exporter_build_info.

#[test]
fn version_prints_one_line_with_version_commit_and_target_and_exits_0() {
    let commit = built_commit();
    let expected = format!(
        "ecs-container-exporter {VERSION}, commit {}, target {}\n",
        commit
            .as_deref()
            .unwrap_or("unknown (not built from a git checkout)"),
        host_triple()
    );
    let bad_env = [
        ("INTERVAL", "abc"),
        ("EXPORTER_PORT", "0"),
        ("LOG_LEVEL", "loud"),
    ];
    for (args, env) in [
        (&["--version"][..], &[][..]),
        (&["-V"], &[]),
        // No metadata URL and bad values: the version is still printed.
        (&["--version"], &bad_env),
        (&["--interval", "abc", "-V"], &[]),
    ] {
        let out = Command::new(EXPORTER)
            .args(args)
            .env_clear()
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .expect("run ecs-container-exporter");
        let what = format!("{args:?} env {env:?}");
        assert_eq!(out.status.code(), Some(0), "{what}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected, "{what}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{what}");
    }
    match &commit {
        Some(commit) => eprintln!("--version names commit {commit}"),
        None => eprintln!("no git here: --version says the commit is unknown"),
    }

    let help = Command::new(EXPORTER)
        .arg("--help")
        .env_clear()
        .output()
        .expect("run ecs-container-exporter --help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("  -V, --version  "), "{help}");
}

#[test]
fn build_info_carries_the_version_and_commit_of_the_version_line() {
    let sim = Sim::start(&["--refresh-secs", "0"]);
    let exporter = Exporter::start(&sim.url, &[], &[]);
    let scrape = exporter.scrape();
    let revision = built_commit().unwrap_or_else(|| "unknown".to_owned());
    assert_eq!(
        scrape.series("ecs_exporter_build_info"),
        [(
            &vec![
                ("revision".to_owned(), revision),
                ("version".to_owned(), VERSION.to_owned())
            ],
            1.0
        )]
    );
}

/// The target of the binaries these tests run: the host's (`rustc -vV`).
fn host_triple() -> String {
    let out = Command::new(rustc())
        .arg("-vV")
        .output()
        .expect("run rustc -vV");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("a host line in rustc -vV")
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// build.rs, compiled on its own (std only) and run as cargo would, in git checkouts of our own.

/// What one run of the build script printed.
#[derive(Debug)]
struct ScriptRun {
    code: Option<i32>,
    /// `cargo::rustc-env=ECS_EXPORTER_COMMIT=...`, `None` when not printed.
    commit: Option<String>,
    target: Option<String>,
    watched: Vec<PathBuf>,
    warnings: Vec<String>,
    stderr: String,
}

struct BuildScript {
    exe: PathBuf,
}

impl BuildScript {
    fn compile(dir: &Path) -> BuildScript {
        let exe = dir.join("build-script");
        let out = Command::new(rustc())
            .args(["--edition", "2024", "-o"])
            .arg(&exe)
            .arg(manifest_dir().join("build.rs"))
            .output()
            .expect("run rustc");
        assert!(
            out.status.success(),
            "rustc build.rs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        BuildScript { exe }
    }

    /// Runs the script for a crate in `crate_dir` with `ECS_EXPORTER_COMMIT` set or not.
    fn run(&self, crate_dir: &Path, commit_override: Option<&str>) -> ScriptRun {
        let mut command = Command::new(&self.exe);
        command
            .current_dir(crate_dir)
            .env("CARGO_MANIFEST_DIR", crate_dir)
            .env("TARGET", "riscv64gc-unknown-linux-musl")
            .env_remove("ECS_EXPORTER_COMMIT");
        for var in [
            "GIT_DIR",
            "GIT_WORK_TREE",
            "GIT_INDEX_FILE",
            "GIT_COMMON_DIR",
        ] {
            command.env_remove(var);
        }
        if let Some(value) = commit_override {
            command.env("ECS_EXPORTER_COMMIT", value);
        }
        let out = command.output().expect("run the build script");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let value = |prefix: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(prefix))
                .map(str::to_owned)
        };
        ScriptRun {
            code: out.status.code(),
            commit: value("cargo::rustc-env=ECS_EXPORTER_COMMIT="),
            target: value("cargo::rustc-env=ECS_EXPORTER_TARGET="),
            watched: stdout
                .lines()
                .filter_map(|l| l.strip_prefix("cargo::rerun-if-changed="))
                .filter(|p| *p != "build.rs")
                .map(PathBuf::from)
                .collect(),
            warnings: stdout
                .lines()
                .filter_map(|l| l.strip_prefix("cargo::warning="))
                .map(str::to_owned)
                .collect(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// `git -C dir args` with a fixed identity and no signing; panics on failure; trimmed stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=test",
            "-c",
            "user.email=test@example.invalid",
        ])
        .args([
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .stdin(Stdio::null())
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn git_installed() -> bool {
    Command::new("git")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The contents of each watched file (`None` when it is gone).
fn snapshot(paths: &[PathBuf]) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    paths
        .iter()
        .map(|p| (p.clone(), std::fs::read(p).ok()))
        .collect()
}

fn commit_a_file(dir: &Path, name: &str) -> String {
    std::fs::write(dir.join(name), name).expect("write a file");
    git(dir, &["add", name]);
    git(dir, &["commit", "-q", "-m", name]);
    git(dir, &["rev-parse", "HEAD"])
}

#[test]
fn the_build_script_reads_the_commit_of_this_checkout() {
    if !git_installed() {
        eprintln!("skipping: git is not installed");
        return;
    }
    let temp = TempDir::new("script-here");
    let script = BuildScript::compile(&temp.0);
    let run = script.run(&manifest_dir(), None);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        run.target.as_deref(),
        Some("riscv64gc-unknown-linux-musl"),
        "TARGET is passed on"
    );
    let expected = git_commit();
    assert_eq!(
        run.commit,
        Some(expected.clone().unwrap_or_default()),
        "{run:?}"
    );
    if expected.is_some() {
        // HEAD (of this worktree, when it is one) is among the watched files, and all exist.
        let head = manifest_dir().join(git(&manifest_dir(), &["rev-parse", "--git-path", "HEAD"]));
        assert!(run.watched.contains(&head), "{head:?} not in {run:?}");
        assert!(run.watched.iter().all(|p| p.is_file()), "{run:?}");
    }
}

#[test]
fn the_build_script_follows_commits_in_a_git_worktree_even_after_refs_are_packed() {
    if !git_installed() {
        eprintln!("skipping: git is not installed");
        return;
    }
    let temp = TempDir::new("script-worktree");
    let script = BuildScript::compile(&temp.0);
    let main = temp.0.join("main");
    std::fs::create_dir(&main).expect("mkdir");
    git(&main, &["init", "-q"]);
    let first = commit_a_file(&main, "Cargo.toml");
    let worktree = temp.0.join("wt");
    git(&main, &["worktree", "add", "-q", "-b", "feature", "../wt"]);

    let run = script.run(&worktree, None);
    assert_eq!(run.commit.as_deref(), Some(first.as_str()), "{run:?}");
    let wt_head = worktree.join(git(&worktree, &["rev-parse", "--git-path", "HEAD"]));
    let branch = worktree.join(git(
        &worktree,
        &["rev-parse", "--git-path", "refs/heads/feature"],
    ));
    assert!(run.watched.contains(&wt_head), "{wt_head:?}: {run:?}");
    assert!(run.watched.contains(&branch), "{branch:?}: {run:?}");

    // A commit in the worktree changes a watched file (so cargo reruns the script) and the
    // script then records the new commit.
    let before = snapshot(&run.watched);
    let second = commit_a_file(&worktree, "a");
    assert_ne!(before, snapshot(&run.watched), "no watched file moved");
    let run = script.run(&worktree, None);
    assert_eq!(run.commit.as_deref(), Some(second.as_str()), "{run:?}");

    // With the branch packed (its loose file gone) a commit still moves a watched file.
    git(&main, &["pack-refs", "--all"]);
    let run = script.run(&worktree, None);
    assert_eq!(run.commit.as_deref(), Some(second.as_str()), "{run:?}");
    assert!(run.watched.iter().all(|p| p.is_file()), "{run:?}");
    let before = snapshot(&run.watched);
    let third = commit_a_file(&worktree, "b");
    assert_ne!(before, snapshot(&run.watched), "no watched file moved");
    assert_eq!(
        script.run(&worktree, None).commit.as_deref(),
        Some(third.as_str())
    );

    // The main checkout still has its own HEAD.
    assert_eq!(
        script.run(&main, None).commit.as_deref(),
        Some(first.as_str())
    );
}

#[test]
fn the_build_script_says_unknown_outside_git_and_takes_a_valid_override() {
    let temp = TempDir::new("script-no-git");
    let script = BuildScript::compile(&temp.0);
    // A source tree unpacked where no git repository is: not in git.
    let tarball = temp.0.join("ecs-container-exporter-0.1.0");
    std::fs::create_dir(&tarball).expect("mkdir");
    std::fs::write(tarball.join("Cargo.toml"), "[package]\n").expect("write");
    let run = script.run(&tarball, None);
    assert_eq!(
        (run.code, run.commit.as_deref()),
        (Some(0), Some("")),
        "{run:?}"
    );
    assert!(run.watched.is_empty(), "{run:?}");
    assert_eq!(run.warnings.len(), 1, "{run:?}");
    assert!(run.warnings[0].contains("commit unknown"), "{run:?}");
    assert!(run.warnings[0].contains("ECS_EXPORTER_COMMIT"), "{run:?}");

    // The packager's override, in git or not.
    let run = script.run(&tarball, Some("0123abc"));
    assert_eq!(
        (run.code, run.commit.as_deref()),
        (Some(0), Some("0123abc")),
        "{run:?}"
    );
    assert!(run.warnings.is_empty(), "{run:?}");
    let run = script.run(
        &manifest_dir(),
        Some(" 0123456789abcdef0123456789abcdef01234567 "),
    );
    assert_eq!(
        run.commit.as_deref(),
        Some("0123456789abcdef0123456789abcdef01234567")
    );

    // A bad override stops the build with one line naming the variable.
    for bad in ["xyz1234", "0123ABC", "012345", "v0.1.0"] {
        let run = script.run(&tarball, Some(bad));
        assert_ne!(run.code, Some(0), "{bad}: {run:?}");
        assert_eq!(run.commit, None, "{bad}: {run:?}");
        assert_eq!(run.stderr.lines().count(), 1, "{bad}: {run:?}");
        assert!(
            run.stderr
                .contains(&format!("invalid value '{bad}' for ECS_EXPORTER_COMMIT")),
            "{bad}: {run:?}"
        );
    }

    // Unpacked inside some other repository that does not track it: not that repository's commit.
    if git_installed() {
        let outer = temp.0.join("outer");
        std::fs::create_dir(&outer).expect("mkdir");
        git(&outer, &["init", "-q"]);
        commit_a_file(&outer, "unrelated");
        let inner = outer.join("vendor/ecs-container-exporter");
        std::fs::create_dir_all(&inner).expect("mkdir");
        std::fs::write(inner.join("Cargo.toml"), "[package]\n").expect("write");
        let run = script.run(&inner, None);
        assert_eq!(run.commit.as_deref(), Some(""), "{run:?}");
        assert_eq!(run.warnings.len(), 1, "{run:?}");
    }
}

// ---------------------------------------------------------------------------------------------

/// A temporary directory of this test process, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ecx-release-{}-{what}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temporary directory");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
