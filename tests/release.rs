//! What a user downloads (issue 14): `--version` on the real binary; the commit `build.rs`
//! records (from git, a git worktree, `ECS_EXPORTER_COMMIT`, or unknown outside git); the same
//! version and commit in `ecs_exporter_build_info`; the LICENSE; the `make dist` archives (layout,
//! `sha256sum -c`, fixed owners, modes and times, byte-identical across two builds of one commit,
//! `SOURCE_DATE_EPOCH` respected); what each release is made of (issue 18): the CycloneDX SBOM
//! beside each archive (in `sha256sums.txt`, dated `SOURCE_DATE_EPOCH`, byte-identical across
//! the two builds, listing the crates the binary embeds with Cargo.lock's checksums), and the
//! dependency list `cargo auditable` embeds in both static binaries (the `.dep-v0` ELF section,
//! read back here and compared with Cargo.lock and with what `cargo metadata` resolves for the
//! target); and the arm64 image (`make image ARCH=arm64`: config `linux/arm64`, the labels, one
//! file).
//!
//! The second build of the reproducibility test, for amd64 only, is an independent one: its own
//! `CARGO_TARGET_DIR` (`reproducible` under cargo's `CARGO_TARGET_TMPDIR`, target/tmp), umask
//! 077. That directory is kept from run to run, so only the first run builds everything there
//! (45 to 95 s on the two shared cores of the development machine); later runs rebuild what
//! changed (the crate, whose build script watches git's HEAD), as the first build does. The two
//! archives compared are still those of two separate builds of this commit; their dependencies
//! were each compiled once, not on every run. Tests that need a missing musl target, a Docker
//! engine or `git` (the build-script tests that make repositories) say so in one line and pass
//! (fail under `CI=true`). Reading the embedded list needs `python3` (its zlib): likewise.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use common::docker::{
    AMD64, ARM64, Cleanup, TarEntry, built_commit, check_image_config, dist_binary, find_in_path,
    git_commit, image_own_files, inspect, make, manifest_dir, no_engine, no_target, rustc,
    tar_entries, target_ready,
};
use common::{Exporter, Launch, Sim, TempDir, run_ok as run, runs, skip};

const VERSION: &str = env!("CARGO_PKG_VERSION");

// ---------------------------------------------------------------------------------------------
// --version and ecs_exporter_build_info.

#[test]
fn version_prints_one_line_with_version_commit_and_target_and_exits_0() {
    let commit = built_commit();
    let expected = format!(
        "ecs-container-exporter {VERSION}, commit {}, target {}, features {}\n",
        commit
            .as_deref()
            .unwrap_or("unknown (not built from a git checkout)"),
        host_triple(),
        if cfg!(feature = "remote-write") {
            "remote-write"
        } else {
            "none"
        }
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
        let ran = Launch::new().args(args).env(env).run();
        let what = format!("{args:?} env {env:?}");
        assert_eq!(ran.code, Some(0), "{what}: {ran:?}");
        assert_eq!(ran.stdout, expected, "{what}");
        assert_eq!(ran.stderr, "", "{what}");
    }
    match &commit {
        Some(commit) => eprintln!("--version names commit {commit}"),
        None => eprintln!("no git here: --version says the commit is unknown"),
    }

    let help = Launch::new().args(&["--help"]).run().stdout;
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
    /// `cargo::rustc-env=ECS_EXPORTER_BUILD_COMMIT=...`, `None` when not printed.
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
    /// `build.rs` compiled into a temporary directory of its own (`what` names it), which the
    /// test may use too.
    fn compile(what: &str) -> (TempDir, BuildScript) {
        let temp = TempDir::new(what);
        let exe = temp.0.join("build-script");
        run(Command::new(rustc())
            .args(["--edition", "2024", "-o"])
            .arg(&exe)
            .arg(manifest_dir().join("build.rs")));
        (temp, BuildScript { exe })
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
            commit: value("cargo::rustc-env=ECS_EXPORTER_BUILD_COMMIT="),
            target: value("cargo::rustc-env=ECS_EXPORTER_BUILD_TARGET="),
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
    let out = run(Command::new("git")
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
        .stdin(Stdio::null()));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Whether git runs here; if not, [`skip`]s (the test, or its part that makes repositories).
fn git_installed() -> bool {
    let found = runs("git", &["--version"]);
    if !found {
        skip("git is not installed");
    }
    found
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
        return;
    }
    let (_temp, script) = BuildScript::compile("script-here");
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
        return;
    }
    let (temp, script) = BuildScript::compile("script-worktree");
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
    let (temp, script) = BuildScript::compile("script-no-git");
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
// LICENSE.

#[test]
fn the_license_file_is_the_mit_license_cargo_toml_declares() {
    let cargo = std::fs::read_to_string(manifest_dir().join("Cargo.toml")).expect("Cargo.toml");
    assert!(
        cargo.lines().any(|l| l.trim() == r#"license = "MIT""#),
        "Cargo.toml declares MIT"
    );
    let license = std::fs::read_to_string(manifest_dir().join("LICENSE")).expect("LICENSE");
    assert_eq!(license.lines().next(), Some("MIT License"));
    for text in [
        "Copyright (c) The ecs-container-exporter authors",
        "Permission is hereby granted, free of charge, to any person obtaining a copy",
        "THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND",
    ] {
        assert!(license.contains(text), "LICENSE lacks {text:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// make dist.

fn archive_name(arch: &str) -> String {
    format!("ecs-container-exporter-{VERSION}.linux-{arch}")
}

/// The members of a `.tar.gz` (through `gzip -dc`).
fn read_archive(path: &Path) -> Vec<TarEntry> {
    let out = run(Command::new("gzip").arg("-dc").arg(path));
    tar_entries(&out.stdout).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The archives' file time: `SOURCE_DATE_EPOCH` when set, else the last commit's time.
fn source_date_epoch() -> Option<u64> {
    if let Ok(value) = std::env::var("SOURCE_DATE_EPOCH") {
        return value.trim().parse().ok();
    }
    let out = Command::new("git")
        .arg("-C")
        .arg(manifest_dir())
        .args(["log", "-1", "--format=%ct"])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// `make <args>` under umask 077 (new files private: the archives must not care), with the
/// cargo that builds these tests, into `target_dir` when given (else the usual target directory).
fn make_private(args: &[&str], target_dir: Option<&Path>) {
    let mut command = Command::new("sh");
    command
        .args(["-c", "umask 077 && exec \"$@\"", "sh", "make", "-C"])
        .arg(manifest_dir())
        .args(args)
        .arg(format!("CARGO={}", env!("CARGO")));
    if let Some(dir) = target_dir {
        command.env("CARGO_TARGET_DIR", dir);
    }
    run(&mut command);
}

#[test]
fn dist_archives_hold_binary_license_and_readme_and_their_sums_check() {
    if no_target(AMD64) || no_target(ARM64) {
        return;
    }
    let Some(epoch) = source_date_epoch() else {
        return skip("no git commit to date the archives and no SOURCE_DATE_EPOCH");
    };
    let temp = TempDir::new("dist");
    make_private(&["dist", &format!("DIST={}", temp.0.display())], None);

    let mut names: Vec<String> = std::fs::read_dir(&temp.0)
        .expect("read DIST")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            format!("{}.cdx.json", archive_name("amd64")),
            format!("{}.tar.gz", archive_name("amd64")),
            format!("{}.cdx.json", archive_name("arm64")),
            format!("{}.tar.gz", archive_name("arm64")),
            "sha256sums.txt".to_owned()
        ]
    );
    // What the README tells a user to run: the sums cover the archives and the SBOMs.
    let check = run(Command::new("sha256sum")
        .args(["-c", "sha256sums.txt"])
        .current_dir(&temp.0));
    assert_eq!(
        String::from_utf8_lossy(&check.stdout),
        ["amd64", "arm64"]
            .iter()
            .flat_map(|a| [
                format!("{}.tar.gz: OK\n", archive_name(a)),
                format!("{}.cdx.json: OK\n", archive_name(a))
            ])
            .collect::<String>()
    );

    let license = std::fs::read(manifest_dir().join("LICENSE")).expect("LICENSE");
    let readme = std::fs::read(manifest_dir().join("README.md")).expect("README.md");
    for (arch, triple, machine) in [("amd64", AMD64, 62u16), ("arm64", ARM64, 183)] {
        let top = archive_name(arch);
        let archive = temp.0.join(format!("{top}.tar.gz"));
        let listing = run(Command::new("tar").arg("-tzf").arg(&archive));
        assert_eq!(
            String::from_utf8_lossy(&listing.stdout),
            format!("{top}/\n{top}/LICENSE\n{top}/README.md\n{top}/ecs-container-exporter\n"),
            "tar -tzf {top}.tar.gz"
        );
        // gzip -n: no file name (FLG 0) and no time (MTIME 0) in the gzip header.
        let gz = std::fs::read(&archive).expect("archive");
        assert_eq!(
            gz.get(..8),
            Some(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0][..]),
            "{top}: gzip header"
        );
        let entries = read_archive(&archive);
        let binary = std::fs::read(dist_binary(triple, "ecs-container-exporter")).expect("binary");
        for (entry, kind, mode, data) in [
            (&entries[0], b'5', 0o755, &[][..]),
            (&entries[1], b'0', 0o644, &license[..]),
            (&entries[2], b'0', 0o644, &readme[..]),
            (&entries[3], b'0', 0o755, &binary[..]),
        ] {
            let what = &entry.path;
            assert_eq!(
                (entry.kind, format!("{:o}", entry.mode)),
                (kind, format!("{mode:o}")),
                "{what}: type, mode"
            );
            assert_eq!((entry.uid, entry.gid), (0, 0), "{what}: owner");
            assert_eq!(
                (entry.uname.as_str(), entry.gname.as_str()),
                ("", ""),
                "{what}"
            );
            assert_eq!(entry.mtime, epoch, "{what}: SOURCE_DATE_EPOCH");
            assert!(entry.data == data, "{what}: not the file it should be");
        }
        assert_eq!(
            u16::from_le_bytes([binary[18], binary[19]]),
            machine,
            "{arch}: ELF machine"
        );
        eprintln!(
            "{top}.tar.gz: {} bytes; binary {} bytes",
            std::fs::metadata(&archive).expect("archive").len(),
            binary.len()
        );

        // The SBOM beside it describes this binary: the crates it embeds, for its target.
        let sbom = temp.0.join(format!("{top}.cdx.json"));
        let embedded = if python3_ready() {
            Some(embedded_packages(&binary, triple))
        } else {
            None
        };
        check_sbom(&sbom, triple, epoch, embedded.as_ref());
    }

    // The amd64 binary out of its archive says which commit it was built from.
    let exe = temp.0.join("ecs-container-exporter");
    std::fs::write(
        &exe,
        &read_archive(&temp.0.join(format!("{}.tar.gz", archive_name("amd64"))))[3].data,
    )
    .expect("write");
    run(Command::new("chmod").arg("755").arg(&exe));
    let version = run(Command::new(&exe).arg("--version"));
    let commit = built_commit().unwrap_or_else(|| "unknown".to_owned());
    let line = String::from_utf8_lossy(&version.stdout);
    assert!(
        line.contains(&format!(", commit {commit}")) && line.contains(&format!(", target {AMD64}")),
        "{line}"
    );
}

#[test]
fn two_builds_of_one_commit_give_identical_archives_dated_by_source_date_epoch() {
    if no_target(AMD64) {
        return;
    }
    if source_date_epoch().is_none() {
        return skip("no git commit to date the archives and no SOURCE_DATE_EPOCH");
    }
    let temp = TempDir::new("reproducible");
    let name = format!("{}.tar.gz", archive_name("amd64"));
    let (first, second) = (temp.0.join("first"), temp.0.join("second"));
    make(&["dist-amd64", &format!("DIST={}", first.display())]);

    // An independent build: a target directory of its own (kept between runs, see the top of
    // this file), and a umask that leaves files private.
    let started = Instant::now();
    make_private(
        &["dist-amd64", &format!("DIST={}", second.display())],
        Some(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("reproducible")),
    );
    eprintln!(
        "independent amd64 build and archive: {:.1?}",
        started.elapsed()
    );
    let (a, b) = (
        std::fs::read(first.join(&name)).expect("first archive"),
        std::fs::read(second.join(&name)).expect("second archive"),
    );
    if a != b {
        let (ea, eb) = (
            read_archive(&first.join(&name)),
            read_archive(&second.join(&name)),
        );
        for (x, y) in ea.iter().zip(&eb) {
            let (mut x, mut y) = (x.clone(), y.clone());
            let same_data = x.data == y.data;
            (x.data, y.data) = (Vec::new(), Vec::new());
            assert_eq!(x, y, "headers differ");
            assert!(same_data, "{} differs between the builds", x.path);
        }
        panic!("{name}: the archives differ, members and headers do not");
    }
    let sbom = format!("{}.cdx.json", archive_name("amd64"));
    assert!(
        std::fs::read(first.join(&sbom)).expect("first SBOM")
            == std::fs::read(second.join(&sbom)).expect("second SBOM"),
        "{sbom}: the SBOMs of the two builds differ"
    );
    let sums = run(Command::new("sha256sum")
        .arg(first.join(&name))
        .arg(second.join(&name))
        .arg(first.join(&sbom))
        .arg(second.join(&sbom)));
    eprintln!("{}", String::from_utf8_lossy(&sums.stdout).trim());

    // SOURCE_DATE_EPOCH dates every member; a value that is not Unix seconds is refused. The
    // archive step alone (`-o static`: the binary just built is not remade): make exports a
    // variable set on its command line, and with SOURCE_DATE_EPOCH in cargo's environment cc
    // reruns ring's build script (it watches that variable), so ring and all above it would be
    // rebuilt here and once more by the next build without it.
    let third = temp.0.join("third");
    make(&[
        "-o",
        "static",
        "dist-amd64",
        &format!("DIST={}", third.display()),
        "SOURCE_DATE_EPOCH=1000000000",
    ]);
    let entries = read_archive(&third.join(&name));
    assert_eq!(entries.len(), 4);
    assert!(
        entries.iter().all(|e| e.mtime == 1_000_000_000),
        "{entries:?}"
    );
    assert_eq!(
        sbom_json(&third.join(&sbom))["metadata"]["timestamp"],
        "2001-09-09T01:46:40.000000000Z",
        "the SBOM is dated SOURCE_DATE_EPOCH"
    );
    // Refused by the archive step (`-o static` as above: no build with it in the environment).
    let refused = Command::new("make")
        .arg("-C")
        .arg(manifest_dir())
        .args(["-o", "static", "dist-amd64", "SOURCE_DATE_EPOCH=yesterday"])
        .arg(format!("DIST={}", temp.0.join("fourth").display()))
        .arg(format!("CARGO={}", env!("CARGO")))
        .output()
        .expect("run make");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("make dist-amd64: SOURCE_DATE_EPOCH must be Unix seconds")
            && stderr.contains("not 'yesterday'"),
        "{stderr}"
    );
    assert!(!temp.0.join("fourth").exists(), "nothing written");
}

// ---------------------------------------------------------------------------------------------
// What each release is made of: the dependency list in the binaries, the SBOMs.

/// A crate as Cargo.lock, the embedded list or `cargo metadata` name it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Crate {
    name: String,
    version: String,
    /// Cargo.lock's `source` (`registry+https://github.com/rust-lang/crates.io-index`, ...);
    /// `None` for this package.
    source: Option<String>,
}

const CRATES_IO: &str = "registry+https://github.com/rust-lang/crates.io-index";

/// One `[[package]]` of Cargo.lock.
#[derive(Debug)]
struct Locked {
    krate: Crate,
    checksum: Option<String>,
    /// As Cargo.lock writes them: `name`, or `name version` where two versions are locked.
    dependencies: Vec<String>,
}

/// Cargo.lock's packages, read line by line (its format is cargo's own and regular).
fn cargo_lock() -> Vec<Locked> {
    let text = std::fs::read_to_string(manifest_dir().join("Cargo.lock")).expect("Cargo.lock");
    let mut packages = Vec::new();
    for block in text.split("[[package]]").skip(1) {
        let value = |key: &str| {
            block.lines().find_map(|l| {
                l.strip_prefix(&format!("{key} = \""))
                    .and_then(|v| v.strip_suffix('"'))
                    .map(str::to_owned)
            })
        };
        let dependencies = block
            .split_once("dependencies = [")
            .map(|(_, rest)| rest.split_once(']').map_or(rest, |(list, _)| list))
            .unwrap_or("")
            .lines()
            .filter_map(|l| l.trim().strip_prefix('"'))
            .filter_map(|l| l.strip_suffix("\","))
            .map(str::to_owned)
            .collect();
        packages.push(Locked {
            krate: Crate {
                name: value("name").expect("a name in every [[package]]"),
                version: value("version").expect("a version in every [[package]]"),
                source: value("source"),
            },
            checksum: value("checksum"),
            dependencies,
        });
    }
    assert!(
        packages.len() > 10,
        "Cargo.lock: {} packages",
        packages.len()
    );
    packages
}

/// The contents of the section `name` of a 64-bit little-endian ELF file (both targets' are),
/// read from its section headers; `None` when it has no such section.
fn elf_section<'a>(elf: &'a [u8], name: &str) -> Option<&'a [u8]> {
    assert_eq!(
        elf.get(..6),
        Some(&b"\x7fELF\x02\x01"[..]),
        "an ELF64 LE file"
    );
    let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]) as usize;
    let u32_at = |at: usize| u32::from_le_bytes(elf[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| {
        usize::try_from(u64::from_le_bytes(
            elf[at..at + 8].try_into().expect("8 bytes"),
        ))
        .expect("an offset")
    };
    let (table, entry, count, names) = (u64_at(0x28), u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
    let header = |i: usize| table + i * entry;
    let strings = u64_at(header(names) + 24);
    (0..count).find_map(|i| {
        let h = header(i);
        let at = strings + u32_at(h) as usize;
        let end = at + elf[at..].iter().position(|&b| b == 0)?;
        (&elf[at..end] == name.as_bytes()).then(|| {
            let (offset, size) = (u64_at(h + 24), u64_at(h + 32));
            &elf[offset..offset + size]
        })
    })
}

fn python3_ready() -> bool {
    if find_in_path("python3").is_some() {
        return true;
    }
    skip("python3 is not installed: the test inflates the embedded list with its zlib");
    false
}

/// The dependency list `cargo auditable` embedded in `binary` (section `.dep-v0`, zlib), checked
/// against Cargo.lock: each package is locked with that version and source, each dependency it
/// names is one Cargo.lock gives it, and the root is this package. Returns the packages.
fn embedded_packages(binary: &[u8], triple: &str) -> BTreeSet<Crate> {
    let compressed = elf_section(binary, ".dep-v0")
        .unwrap_or_else(|| panic!("{triple}: no .dep-v0 section: not built by cargo auditable?"));
    let mut python = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, zlib; sys.stdout.buffer.write(zlib.decompress(sys.stdin.buffer.read()))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run python3");
    {
        use std::io::Write;
        let mut stdin = python.stdin.take().expect("stdin");
        stdin.write_all(compressed).expect("write to python3");
    }
    let out = python.wait_with_output().expect("python3");
    assert!(out.status.success(), "{triple}: zlib: {out:?}");
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the list is JSON");
    let packages = list["packages"].as_array().expect("a packages array");

    let lock = cargo_lock();
    let mut found = BTreeSet::new();
    let mut roots = Vec::new();
    for package in packages {
        let field = |key: &str| package[key].as_str().unwrap_or("").to_owned();
        let krate = Crate {
            name: field("name"),
            version: field("version"),
            source: match field("source").as_str() {
                "crates.io" => Some(CRATES_IO.to_owned()),
                "local" => None,
                other => panic!("{triple}: source {other:?} of {package}"),
            },
        };
        let locked = lock
            .iter()
            .find(|l| l.krate == krate)
            .unwrap_or_else(|| panic!("{triple}: {krate:?} is not in Cargo.lock"));
        for index in package["dependencies"].as_array().into_iter().flatten() {
            let dep = &packages[usize::try_from(index.as_u64().expect("an index")).expect("index")];
            let (name, version) = (
                dep["name"].as_str().unwrap_or(""),
                dep["version"].as_str().unwrap_or(""),
            );
            assert!(
                locked
                    .dependencies
                    .iter()
                    .any(|d| d == name || *d == format!("{name} {version}")),
                "{triple}: {} depends on {name} {version}, which Cargo.lock does not say",
                krate.name
            );
        }
        if package["root"] == true {
            roots.push(krate.clone());
        }
        found.insert(krate);
    }
    assert_eq!(
        roots,
        [Crate {
            name: "ecs-container-exporter".to_owned(),
            version: VERSION.to_owned(),
            source: None
        }],
        "{triple}: the root"
    );
    found
}

/// What cargo resolves for the shipped binary on `triple` (`cargo metadata --filter-platform`,
/// the default features): the crates reachable from this package by normal and build
/// dependencies, dev-dependencies left out.
fn resolved_packages(triple: &str) -> BTreeSet<Crate> {
    let out = run(Command::new(env!("CARGO"))
        .current_dir(manifest_dir())
        .args(["metadata", "--format-version", "1", "--locked"])
        .args(["--filter-platform", triple]));
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let crates: BTreeMap<&str, Crate> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            let source = p["source"].as_str().map(str::to_owned);
            (
                p["id"].as_str().expect("id"),
                Crate {
                    name: p["name"].as_str().expect("name").to_owned(),
                    version: p["version"].as_str().expect("version").to_owned(),
                    source,
                },
            )
        })
        .collect();
    let nodes: BTreeMap<&str, &serde_json::Value> = metadata["resolve"]["nodes"]
        .as_array()
        .expect("resolve nodes")
        .iter()
        .map(|n| (n["id"].as_str().expect("id"), n))
        .collect();
    let root = metadata["resolve"]["root"]
        .as_str()
        .expect("a root package");
    let mut seen = BTreeSet::from([root]);
    let mut todo = vec![root];
    while let Some(id) = todo.pop() {
        for dep in nodes[id]["deps"].as_array().into_iter().flatten() {
            let shipped = dep["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k["kind"] != "dev");
            let pkg = dep["pkg"].as_str().expect("pkg");
            if shipped && seen.insert(pkg) {
                todo.push(pkg);
            }
        }
    }
    seen.iter().map(|id| crates[id].clone()).collect()
}

#[test]
fn static_binaries_carry_their_dependency_list_which_matches_cargo_lock() {
    if !target_ready(AMD64) || !target_ready(ARM64) {
        skip(&format!(
            "the Rust targets {AMD64} and {ARM64} are not installed"
        ));
        return;
    }
    if !python3_ready() {
        return;
    }
    let started = Instant::now();
    make(&["static"]);
    make(&["static-arm64"]);
    eprintln!("make static static-arm64: {:.1?}", started.elapsed());
    for triple in [AMD64, ARM64] {
        let binary = std::fs::read(dist_binary(triple, "ecs-container-exporter")).expect("binary");
        let embedded = embedded_packages(&binary, triple);
        assert_eq!(
            embedded,
            resolved_packages(triple),
            "{triple}: the embedded list is what cargo resolves for the binary"
        );
        // The binary's own direct dependencies (remote write's among them) are in it.
        for name in [
            "argh",
            "mio",
            "serde_json",
            "ureq",
            "ring",
            "rustls",
            "webpki-roots",
        ] {
            assert!(
                embedded.iter().any(|c| c.name == name),
                "{triple}: {name} missing from {embedded:?}"
            );
        }
        eprintln!(
            "{triple}: {} packages embedded ({} bytes compressed), all in Cargo.lock",
            embedded.len(),
            elf_section(&binary, ".dep-v0").map_or(0, <[u8]>::len)
        );
    }
}

/// An SBOM file as JSON.
fn sbom_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `epoch` as cargo-cyclonedx writes the SBOM's time: `YYYY-MM-DDTHH:MM:SS.000000000Z` (UTC),
/// which is the crate's own RFC 3339 form.
fn sbom_time(epoch: u64) -> String {
    ecs_container_exporter::core::rfc3339::format(i128::from(epoch) * 1_000_000_000)
}

/// The SBOM of the binary for `triple`: CycloneDX 1.5 JSON describing ecs-container-exporter
/// VERSION for that target, dated `epoch`, without a serial number or the checkout's path; its
/// components carry Cargo.lock's checksums and, given the list the binary embeds, are exactly
/// those crates.
fn check_sbom(path: &Path, triple: &str, epoch: u64, embedded: Option<&BTreeSet<Crate>>) {
    let what = path.display();
    let text = std::fs::read_to_string(path).expect("SBOM");
    let sbom = sbom_json(path);
    assert_eq!(sbom["bomFormat"], "CycloneDX", "{what}");
    assert_eq!(sbom["specVersion"], "1.5", "{what}");
    assert!(
        sbom.get("serialNumber").is_none(),
        "{what}: a serial number"
    );
    let metadata = &sbom["metadata"];
    assert_eq!(metadata["timestamp"], sbom_time(epoch).as_str(), "{what}");
    assert_eq!(metadata["component"]["name"], "ecs-container-exporter");
    assert_eq!(metadata["component"]["version"], VERSION);
    assert_eq!(metadata["component"]["type"], "application");
    assert!(
        metadata["properties"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| { p["name"] == "cdx:rustc:sbom:target:triple" && p["value"] == triple }),
        "{what}: target {triple} in {metadata:#}"
    );
    let checkout = manifest_dir().display().to_string();
    assert!(
        !text.contains(&checkout),
        "{what} names the checkout {checkout}"
    );

    let lock = cargo_lock();
    let mut components = BTreeSet::new();
    for component in sbom["components"].as_array().expect("components") {
        let krate = Crate {
            name: component["name"].as_str().expect("name").to_owned(),
            version: component["version"].as_str().expect("version").to_owned(),
            source: Some(CRATES_IO.to_owned()),
        };
        let locked = lock
            .iter()
            .find(|l| l.krate == krate)
            .unwrap_or_else(|| panic!("{what}: {krate:?} is not in Cargo.lock"));
        assert_eq!(
            component["hashes"][0]["content"].as_str(),
            locked.checksum.as_deref(),
            "{what}: {} {}: Cargo.lock's checksum",
            krate.name,
            krate.version
        );
        components.insert(krate);
    }
    match embedded {
        Some(embedded) => {
            let mut binary = embedded.clone();
            binary.retain(|c| c.source.is_some());
            assert_eq!(
                components, binary,
                "{what}: the SBOM lists the crates the binary embeds"
            );
        }
        None => eprintln!("{what}: not compared with the binary (no python3)"),
    }
    eprintln!("{what}: {} components", components.len());
}

// ---------------------------------------------------------------------------------------------
// make image ARCH=arm64.

#[test]
fn arm64_image_is_linux_arm64_with_the_labels_and_holds_only_the_arm64_binary() {
    // The tags and the platform `make image` would use, and a bad ARCH refused (dry runs).
    for (args, needles) in [
        (
            &["ARCH=arm64"][..],
            [
                "--platform linux/arm64 ".to_owned(),
                format!("-t ecs-container-exporter:{VERSION}-arm64 -"),
                format!("{ARM64}/dist"),
            ],
        ),
        (
            &[],
            [
                "--platform linux/amd64 ".to_owned(),
                format!("-t ecs-container-exporter:{VERSION} -"),
                format!("{AMD64}/dist"),
            ],
        ),
    ] {
        let out = run(Command::new("make")
            .arg("-C")
            .arg(manifest_dir())
            .args(["-n", "image"])
            .args(args));
        let plan = String::from_utf8_lossy(&out.stdout);
        for needle in needles {
            assert!(
                plan.contains(&needle),
                "make -n image {args:?}: no {needle:?} in\n{plan}"
            );
        }
    }
    let bad = Command::new("make")
        .arg("-C")
        .arg(manifest_dir())
        .args(["-n", "image", "ARCH=x86_64"])
        .output()
        .expect("run make");
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("ARCH must be amd64 or arm64, not 'x86_64'"),
        "{bad:?}"
    );

    if no_engine() || no_target(ARM64) {
        return;
    }
    let pid = std::process::id();
    let image = format!("ecs-container-exporter-test:{pid}-arm64");
    let probe = format!("ecx-test-{pid}-arm64-files");
    let mut env = Cleanup::default();
    env.images.push(image.clone());
    env.containers.push(probe.clone());
    make(&["image", "ARCH=arm64", &format!("IMAGE={image}")]);

    let size = check_image_config(&image, "arm64");
    let binary = std::fs::read(dist_binary(ARM64, "ecs-container-exporter")).expect("binary");
    let files = image_own_files(&image, &probe);
    assert_eq!(
        files
            .iter()
            .map(|f| (f.path.as_str(), f.mode & 0o777))
            .collect::<Vec<_>>(),
        [("ecs-container-exporter", 0o755)],
        "the image holds the exporter binary only"
    );
    assert!(
        files[0].data == binary,
        "the image's binary is the arm64 dist binary"
    );
    eprintln!(
        "{image}: {}; {size} bytes; binary {} bytes",
        inspect(&image, "{{.Os}}/{{.Architecture}}"),
        binary.len()
    );
}
