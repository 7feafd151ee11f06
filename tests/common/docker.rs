//! Docker and the build, through their command lines: the `docker` CLI, a cleanup guard for what
//! a test creates in the engine, the files an image holds, and the Makefile and
//! `cargo build --profile dist` builds of the static musl binaries (with the paths they land in,
//! the rustc beside the test's cargo and whether a Rust target is installed). A tar reader serves
//! `docker export` and the release archives.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{run_ok, skip};

/// The Rust target of the shipped x86_64 binaries.
pub const AMD64: &str = "x86_64-unknown-linux-musl";
/// The Rust target of the shipped aarch64 (Graviton) binaries.
pub const ARM64: &str = "aarch64-unknown-linux-musl";

// ---------------------------------------------------------------------------------------------
// Docker.

/// True when no Docker engine answers `docker version`, after [`skip`]ping (the test then
/// returns; under `CI=true` it fails instead).
pub fn no_engine() -> bool {
    match docker(&["version", "--format", "{{.Server.Version}}"]) {
        Ok(_) => false,
        Err(why) => {
            skip(&format!(
                "no Docker engine answers `docker version` ({})",
                why.lines().next().unwrap_or("")
            ));
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

/// `docker inspect --format <format> <object>`; panics with docker's error.
pub fn inspect(object: &str, format: &str) -> String {
    docker(&["inspect", "--format", format, object])
        .unwrap_or_else(|e| panic!("inspect {object}: {e}"))
}

/// Checks what `make image` puts in an image's config for `arch` (`amd64` or `arm64`): platform
/// `linux/<arch>`, user 65534, port 9545, the entrypoint, the HEALTHCHECK with `--healthcheck`,
/// and the OCI labels, with the version and the commit the binaries record ([`built_commit`]).
/// Returns the image's size in bytes.
pub fn check_image_config(image: &str, arch: &str) -> u64 {
    let config = inspect(
        image,
        "{{.Os}}/{{.Architecture}}|{{.Config.User}}|{{json .Config.ExposedPorts}}|\
         {{json .Config.Entrypoint}}|{{json .Config.Healthcheck.Test}}|{{json .Config.Labels}}|\
         {{.Size}}",
    );
    let fields: Vec<&str> = config.split('|').collect();
    assert_eq!(fields.len(), 7, "{config}");
    assert_eq!(fields[0], format!("linux/{arch}"), "platform of {image}");
    assert_eq!(fields[1], "65534:65534");
    assert_eq!(fields[2], r#"{"9545/tcp":{}}"#);
    assert_eq!(fields[3], r#"["/ecs-container-exporter"]"#);
    assert_eq!(
        fields[4],
        r#"["CMD","/ecs-container-exporter","--healthcheck"]"#
    );
    for label in [
        r#""org.opencontainers.image.title":"ecs-container-exporter""#.to_owned(),
        r#""org.opencontainers.image.licenses":"MIT""#.to_owned(),
        r#""org.opencontainers.image.source":"#.to_owned(),
        format!(
            r#""org.opencontainers.image.version":"{}""#,
            env!("CARGO_PKG_VERSION")
        ),
        format!(
            r#""org.opencontainers.image.revision":"{}""#,
            built_commit().unwrap_or_default()
        ),
    ] {
        assert!(fields[5].contains(&label), "label {label} in {}", fields[5]);
    }
    fields[6]
        .parse()
        .unwrap_or_else(|_| panic!("image size {:?}", fields[6]))
}

/// The files of an image that are its own: `docker export` of a container created (never started)
/// from it as `probe`, without what the engine adds to every container (`/.dockerenv`, `/etc/hosts`,
/// ..., `/dev`, `/proc`, `/sys`). The caller removes `probe` (see [`Cleanup`]).
pub fn image_own_files(image: &str, probe: &str) -> Vec<TarEntry> {
    docker(&["create", "--name", probe, image]).expect("docker create");
    let tar = docker_bytes(&["export", probe]).expect("docker export");
    tar_entries(&tar)
        .unwrap_or_else(|e| panic!("docker export {probe}: {e}"))
        .into_iter()
        .filter(|e| matches!(e.kind, b'0' | 0 | b'1' | b'2'))
        .filter(|e| {
            let path = e.path.as_str();
            !matches!(
                path,
                ".dockerenv" | "etc/hostname" | "etc/hosts" | "etc/resolv.conf" | "etc/mtab"
            ) && !path.starts_with("dev/")
                && !path.starts_with("proc/")
                && !path.starts_with("sys/")
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tar archives (ustar and GNU headers), read by hand.

/// One member of a tar archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntry {
    /// Without a leading `./`; a directory keeps its trailing `/`.
    pub path: String,
    /// The type flag: `b'0'` (or 0) a file, `b'5'` a directory, `b'2'` a symlink, ...
    pub kind: u8,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub uname: String,
    pub gname: String,
    pub mtime: u64,
    pub data: Vec<u8>,
}

/// The members of an uncompressed tar archive, in order.
pub fn tar_entries(tar: &[u8]) -> Result<Vec<TarEntry>, String> {
    let mut entries = Vec::new();
    let mut at = 0;
    while let Some(header) = tar.get(at..at + 512) {
        if header.iter().all(|&b| b == 0) {
            break;
        }
        let text = |range: std::ops::Range<usize>| {
            let field = &header[range];
            let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
            String::from_utf8_lossy(&field[..end]).trim().to_owned()
        };
        let octal = |range: std::ops::Range<usize>, what: &str| {
            let field = text(range);
            u64::from_str_radix(&field, 8).map_err(|_| format!("{what} {field:?} at byte {at}"))
        };
        let size = octal(124..136, "size")?;
        let (name, prefix) = (text(0..100), text(345..500));
        let path = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let start = at + 512;
        let end = usize::try_from(size)
            .ok()
            .and_then(|s| start.checked_add(s))
            .filter(|&end| end <= tar.len())
            .ok_or_else(|| format!("{path}: {size} bytes past the end of the archive"))?;
        entries.push(TarEntry {
            path: path.trim_start_matches("./").to_owned(),
            kind: header[156],
            mode: u32::try_from(octal(100..108, "mode")?).map_err(|e| e.to_string())?,
            uid: octal(108..116, "uid")?,
            gid: octal(116..124, "gid")?,
            uname: text(265..297),
            gname: text(297..329),
            mtime: octal(136..148, "mtime")?,
            data: tar[start..end].to_vec(),
        });
        at = start + (end - start).div_ceil(512) * 512;
    }
    Ok(entries)
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

/// True when the standard library for `triple` is installed, adding it with rustup if needed.
pub fn target_ready(triple: &str) -> bool {
    let installed = || {
        Command::new(rustc())
            .args(["--print", "target-libdir", "--target", triple])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
            .and_then(|dir| std::fs::read_dir(dir).ok())
            .is_some_and(|mut entries| {
                entries.any(|e| {
                    e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("libstd-"))
                })
            })
    };
    installed()
        || (Command::new("rustup")
            .args(["target", "add", triple])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
            && installed())
}

/// True when the standard library for `triple` is neither installed nor can be added, after
/// [`skip`]ping (the test then returns; under `CI=true` it fails instead).
pub fn no_target(triple: &str) -> bool {
    let missing = !target_ready(triple);
    if missing {
        skip(&format!(
            "the Rust target {triple} is not installed and cannot be added"
        ));
    }
    missing
}

/// A program on `PATH`.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
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
    run_ok(
        Command::new("make")
            .arg("-C")
            .arg(manifest_dir())
            .args(args)
            .arg(format!("CARGO={}", env!("CARGO"))),
    );
}

/// Leaves out of `command`'s environment the build variables `cargo test` gave this test
/// (`CARGO_PKG_*`, `CARGO_MANIFEST_*`, `OUT_DIR`, ...), as the Makefile does (`unexport`): ring's
/// build script watches some of them, and a build with them after one without (or the other way)
/// rebuilds ring and all that depends on it.
pub fn without_package_env(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || name.starts_with("CARGO_BIN_EXE_")
            || ["CARGO_CRATE_NAME", "CARGO_PRIMARY_PACKAGE", "OUT_DIR"].contains(&&*name)
        {
            command.env_remove(&*name);
        }
    }
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
    without_package_env(&mut command);
    if let Some(target) = target {
        command.env("CARGO_TARGET_DIR", target);
    }
    run_ok(&mut command);
}
