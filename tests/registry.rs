//! The images through a real registry (issue 18): `make push REGISTRY=host:port` to Debian's
//! `docker-registry` (the CNCF distribution registry 2.8), started on a loopback port with a
//! temporary config (no auth, storage in a temporary directory; the package's own config turns
//! on htpasswd). The multi-architecture index, read back with `skopeo inspect --raw`, lists
//! linux/amd64 and linux/arm64 with the digests the engine pushed; with the local images removed,
//! `docker pull --platform` fetches each one again, and `--version` in it names the aarch64
//! target (run under qemu through binfmt_misc) or the x86_64 one (natively). A second
//! `make push` of the same version works too. Bad input: no `REGISTRY`, a malformed one, one
//! that nothing listens on, and a registry that refuses pushes: one line, a non-zero exit, and
//! nothing left tagged.
//!
//! Needs a Docker engine, `docker manifest` (Docker CLI 20.10 or later), the Debian packages
//! `docker-registry`, `skopeo`, `qemu-user-static` and `binfmt-support` (`update-binfmts
//! --enable qemu-aarch64` registers qemu where nothing has yet: root), and both musl targets.
//! Without one of them a test prints `skipping: <why>` and passes; under `CI=true` it fails.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::docker::{
    AMD64, ARM64, Cleanup, built_commit, docker, find_in_path, manifest_dir, target_ready,
};
use common::{free_port, http_get, skip, wait_for};

const VERSION: &str = env!("CARGO_PKG_VERSION");

// ---------------------------------------------------------------------------------------------
// What the tests need.

/// A Docker engine and a CLI with `docker manifest`.
fn engine_ready() -> bool {
    if let Err(why) = docker(&["version", "--format", "{{.Server.Version}}"]) {
        skip(&format!(
            "no Docker engine answers `docker version` ({})",
            why.lines().next().unwrap_or("")
        ));
        return false;
    }
    if docker(&["manifest", "--help"]).is_err() {
        skip("this Docker CLI has no `docker manifest` (Docker 20.10 or later has it)");
        return false;
    }
    true
}

/// `docker-registry` and `skopeo` installed, both musl targets present.
fn registry_tools_ready() -> bool {
    for (tool, package) in [("docker-registry", "docker-registry"), ("skopeo", "skopeo")] {
        if find_in_path(tool).is_none() {
            skip(&format!(
                "{tool} is not installed (Debian package {package})"
            ));
            return false;
        }
    }
    if !target_ready(AMD64) || !target_ready(ARM64) {
        skip(&format!(
            "the Rust targets {AMD64} and {ARM64} are not installed"
        ));
        return false;
    }
    true
}

const BINFMT_AARCH64: &str = "/proc/sys/fs/binfmt_misc/qemu-aarch64";

/// The kernel runs aarch64 ELF files through qemu (binfmt_misc), in containers too: the handler
/// is registered with the F flag, which opens the interpreter at registration. When it is not
/// (binfmt_misc not mounted, nothing registered yet), `update-binfmts --enable qemu-aarch64`
/// (binfmt-support, with qemu-user-static's entry) mounts binfmt_misc and registers it.
fn qemu_binfmt_ready() -> bool {
    let enabled = || {
        std::fs::read_to_string(BINFMT_AARCH64).is_ok_and(|s| {
            s.lines().next() == Some("enabled")
                && s.lines()
                    .any(|l| l.strip_prefix("flags: ").is_some_and(|f| f.contains('F')))
        })
    };
    if enabled() {
        return true;
    }
    if find_in_path("qemu-aarch64-static").is_none() {
        skip("qemu-aarch64-static is not installed (Debian package qemu-user-static)");
        return false;
    }
    let Some(update) = find_in_path("update-binfmts") else {
        skip("update-binfmts is not installed (Debian package binfmt-support)");
        return false;
    };
    let out = Command::new(update)
        .args(["--enable", "qemu-aarch64"])
        .stdin(Stdio::null())
        .output();
    if enabled() {
        eprintln!("registered qemu-aarch64 with binfmt_misc (update-binfmts --enable)");
        return true;
    }
    skip(&format!(
        "no enabled binfmt_misc handler for aarch64 with the F flag ({BINFMT_AARCH64}), and \
         `update-binfmts --enable qemu-aarch64` did not register one (it needs root): {out:?}"
    ));
    false
}

// ---------------------------------------------------------------------------------------------
// A registry of our own.

/// `docker-registry serve CONFIG` on 127.0.0.1, storage in a temporary directory, no auth. Killed
/// and its directory removed on drop.
struct Registry {
    child: Child,
    /// `127.0.0.1:<port>`, what `REGISTRY=` gets.
    addr: String,
    dir: PathBuf,
}

impl Registry {
    /// `read_only`: the registry's maintenance mode, which refuses every push.
    fn start(what: &str, read_only: bool) -> Registry {
        let dir = std::env::temp_dir().join(format!("ecx-registry-{}-{what}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("registry directory");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let maintenance = if read_only {
            "  maintenance:\n    readonly:\n      enabled: true\n"
        } else {
            ""
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             {maintenance}http:\n  addr: {addr}\n  secret: ecx-registry-test\n",
            dir.join("data").display()
        );
        std::fs::write(dir.join("config.yml"), config).expect("write the registry config");
        let log = std::fs::File::create(dir.join("registry.log")).expect("registry log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let mut registry = Registry { child, addr, dir };
        let socket = registry.addr.parse().expect("address");
        let up = wait_for(Duration::from_secs(15), || {
            matches!(registry.child.try_wait(), Ok(Some(_)))
                || http_get(socket, "/v2/", &[]).is_ok_and(|(status, _, _)| status == 200)
        });
        if !up || !matches!(registry.child.try_wait(), Ok(None)) {
            panic!(
                "docker-registry did not answer GET /v2/ on {}:\n{}",
                registry.addr,
                registry.log()
            );
        }
        registry
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// `REGISTRY/ecs-container-exporter`.
    fn repo(&self) -> String {
        format!("{}/ecs-container-exporter", self.addr)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// `make push <args>` in the crate, with the cargo that builds these tests.
fn make_push(args: &[&str]) -> Output {
    // Under `make test` this is a make inside make: without the outer one's level and flags, its
    // last line is `make: ***`, as a user sees it, not `make[1]: ***`.
    Command::new("make")
        .env_remove("MAKELEVEL")
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .arg("--no-print-directory")
        .arg("-C")
        .arg(manifest_dir())
        .arg("push")
        .args(args)
        .arg(format!("CARGO={}", env!("CARGO")))
        .stdin(Stdio::null())
        .output()
        .expect("run make")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The local tags under `prefix/` (`repository:tag`).
fn tags_under(prefix: &str) -> Vec<String> {
    docker(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"])
        .expect("docker image ls")
        .lines()
        .filter(|t| t.starts_with(&format!("{prefix}/")))
        .map(str::to_owned)
        .collect()
}

/// The one line `make push` says on stderr about what went wrong (make's own trailer, the
/// `make: *** [...] Error` line, aside), checked to be the only one of its kind.
fn the_error_line(out: &Output) -> String {
    let stderr = text(&out.stderr);
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("make push: "))
        .collect();
    assert_eq!(ours.len(), 1, "one `make push:` line on stderr:\n{stderr}");
    ours[0].to_owned()
}

/// `skopeo inspect --raw` of `reference` in a plain-HTTP registry, as JSON.
fn skopeo_raw(reference: &str) -> serde_json::Value {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .stdin(Stdio::null())
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo inspect --raw {reference}: {}",
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "skopeo inspect --raw {reference}: {e}\n{}",
            text(&out.stdout)
        )
    })
}

/// The digest of the manifest the engine pushed for a local `repo:tag` (its `RepoDigests` entry
/// in `repo`).
fn pushed_digest(repo: &str, tag: &str) -> String {
    let digests = docker(&[
        "image",
        "inspect",
        "--format",
        "{{range .RepoDigests}}{{println .}}{{end}}",
        &format!("{repo}:{tag}"),
    ])
    .expect("docker image inspect");
    let digests: Vec<&str> = digests
        .lines()
        .filter_map(|d| d.strip_prefix(&format!("{repo}@")))
        .collect();
    assert_eq!(digests.len(), 1, "{repo}:{tag}: RepoDigests {digests:?}");
    digests[0].to_owned()
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn make_push_joins_both_images_under_one_tag_that_pulls_and_runs_on_each_platform() {
    if !engine_ready() || !registry_tools_ready() || !qemu_binfmt_ready() {
        return;
    }
    let registry = Registry::start("push", false);
    let repo = registry.repo();
    let pid = std::process::id();
    // Dropped in reverse: the containers and tags first, then the images they leave untagged,
    // then the registry.
    let mut ids = Dangling(Vec::new());
    // A source label of this run's own: the images are new ones (no other tag shares their ID
    // through the build cache), and the pulled image is shown to be the one pushed.
    let source = format!("https://example.invalid/ecx-registry-test/{pid}");
    let mut env = Cleanup::default();
    for tag in [
        format!("{repo}:{VERSION}-amd64"),
        format!("{repo}:{VERSION}-arm64"),
        format!("{repo}:{VERSION}"),
    ] {
        env.images.push(tag);
    }
    for arch in ["amd64", "arm64"] {
        env.containers.push(format!("ecx-registry-{pid}-{arch}"));
    }

    // Twice: a version pushed again replaces the first push, even with a local manifest list
    // left behind under its tag (as a run stopped between `create` and `push` leaves one), which
    // `docker manifest create` would refuse to overwrite.
    for round in ["first", "second"] {
        if round == "second" {
            docker(&[
                "manifest",
                "create",
                "--insecure",
                &format!("{repo}:{VERSION}"),
                &format!("{repo}:{VERSION}-amd64"),
            ])
            .expect("a stale local manifest list");
        }
        let started = Instant::now();
        let out = make_push(&[
            &format!("REGISTRY={}", registry.addr),
            &format!("SOURCE={source}"),
        ]);
        assert!(
            out.status.success(),
            "make push ({round}):\n{}\n{}\nregistry log:\n{}",
            text(&out.stdout),
            text(&out.stderr),
            registry.log()
        );
        let stdout = text(&out.stdout);
        assert!(
            stdout.contains(&format!(
                "pushed {repo}:{VERSION} (linux/amd64, linux/arm64)"
            )),
            "{stdout}"
        );
        eprintln!("make push ({round}): {:.1?}", started.elapsed());
    }

    // What the engine pushed, and the index the registry holds.
    let mut pushed = Vec::new();
    for arch in ["amd64", "arm64"] {
        let tag = format!("{VERSION}-{arch}");
        let digest = pushed_digest(&repo, &tag);
        let id = docker(&[
            "image",
            "inspect",
            "--format",
            "{{.Id}}",
            &format!("{repo}:{tag}"),
        ])
        .expect("image id");
        ids.0.push(id.clone());
        pushed.push((format!("linux/{arch}"), digest, id));
    }
    let index = skopeo_raw(&format!("{repo}:{VERSION}"));
    assert_eq!(
        index["mediaType"], "application/vnd.docker.distribution.manifest.list.v2+json",
        "{index:#}"
    );
    let listed: Vec<(String, String)> = index["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("no manifests in {index:#}"))
        .iter()
        .map(|m| {
            (
                format!(
                    "{}/{}",
                    m["platform"]["os"].as_str().unwrap_or("?"),
                    m["platform"]["architecture"].as_str().unwrap_or("?")
                ),
                m["digest"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        pushed
            .iter()
            .map(|(platform, digest, _)| (platform.clone(), digest.clone()))
            .collect::<Vec<_>>(),
        "the index lists each platform with the digest pushed for it"
    );
    eprintln!("{repo}:{VERSION}: {listed:?}");

    // Gone from the engine, then pulled back per platform and run.
    for arch in ["amd64", "arm64"] {
        docker(&["rmi", &format!("{repo}:{VERSION}-{arch}")]).expect("docker rmi");
    }
    for (_, _, id) in &pushed {
        assert!(
            docker(&["image", "inspect", id]).is_err(),
            "image {id} is still in the engine after its tag was removed"
        );
    }
    let commit = built_commit().unwrap_or_else(|| "unknown".to_owned());
    for ((platform, _, id), (arch, triple)) in
        pushed.iter().zip([("amd64", AMD64), ("arm64", ARM64)])
    {
        let multi = format!("{repo}:{VERSION}");
        docker(&["pull", "-q", "--platform", platform, &multi])
            .unwrap_or_else(|e| panic!("pull {platform}: {e}\n{}", registry.log()));
        let pulled = docker(&[
            "image",
            "inspect",
            "--format",
            "{{.Id}} {{.Os}}/{{.Architecture}} {{index .Config.Labels \"org.opencontainers.image.source\"}}",
            &multi,
        ])
        .expect("inspect the pulled image");
        assert_eq!(
            pulled,
            format!("{id} {platform} {source}"),
            "docker pull --platform {platform} {multi}"
        );
        let started = Instant::now();
        let version = docker(&[
            "run",
            "--rm",
            "--name",
            &format!("ecx-registry-{pid}-{arch}"),
            "--platform",
            platform,
            &multi,
            "--version",
        ])
        .unwrap_or_else(|e| panic!("docker run --platform {platform} {multi} --version: {e}"));
        assert!(
            version.starts_with(&format!(
                "ecs-container-exporter {VERSION}, commit {commit}, target {triple}, "
            )),
            "{platform}: {version}"
        );
        eprintln!(
            "{platform} ({}): {version} ({:.1?})",
            if arch == "arm64" {
                "under qemu"
            } else {
                "native"
            },
            started.elapsed()
        );
    }
}

/// Images this test made that the tags' cleanup may leave without a tag (the first platform's,
/// after the second pull took the tag): removed on drop, without `-f`, so never an image that
/// another tag still names.
struct Dangling(Vec<String>);

impl Drop for Dangling {
    fn drop(&mut self) {
        for id in &self.0 {
            let _ = docker(&["rmi", id]);
        }
    }
}

#[test]
fn make_push_without_a_reachable_registry_says_so_in_one_line_and_builds_and_tags_nothing() {
    // Nothing is built, so neither Docker nor the Rust targets are needed to see the refusals.
    let closed = format!("127.0.0.1:{}", free_port());
    let engine = docker(&["version", "--format", "{{.Server.Version}}"]).is_ok();
    let before: Vec<String> = if engine {
        tags_under(&closed)
    } else {
        Vec::new()
    };
    for (args, expected) in [
        (
            vec![],
            "make push: REGISTRY is not set: make push REGISTRY=host[:port][/path]".to_owned(),
        ),
        (
            vec!["REGISTRY=".to_owned()],
            "make push: REGISTRY is not set".to_owned(),
        ),
        (
            vec!["REGISTRY=http://127.0.0.1:5000".to_owned()],
            "make push: REGISTRY must be host[:port][/path] (no scheme), not 'http://127.0.0.1:5000'"
                .to_owned(),
        ),
        (
            vec!["REGISTRY=127.0.0.1:5000/Upper Case".to_owned()],
            "make push: REGISTRY must be host[:port][/path]".to_owned(),
        ),
        (
            vec!["REGISTRY=127.0.0.1:5000".to_owned(), "INSECURE=maybe".to_owned()],
            "make push: INSECURE must be auto, 1 or 0, not 'maybe'".to_owned(),
        ),
        (
            vec![format!("REGISTRY={closed}")],
            format!(
                "make push: registry {closed} is unreachable: nothing accepts a connection on \
                 127.0.0.1 port {}",
                closed.rsplit(':').next().unwrap_or("")
            ),
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = make_push(&args);
        assert!(!out.status.success(), "make push {args:?}: {out:?}");
        let line = the_error_line(&out);
        assert!(
            line.starts_with(&expected),
            "make push {args:?}: {line:?}, not {expected:?}"
        );
        // Nothing but that line and make's trailer; nothing built (no cargo, no docker build).
        assert_eq!(text(&out.stdout), "", "make push {args:?} built something");
        for other in text(&out.stderr).lines().filter(|l| *l != line) {
            assert!(other.starts_with("make: *** "), "make push {args:?}: {other:?}");
        }
    }
    if engine {
        assert_eq!(tags_under(&closed), before, "nothing tagged under {closed}");
    } else {
        eprintln!("no Docker engine: the tags were not listed");
    }
}

#[test]
fn make_push_to_a_registry_that_refuses_pushes_removes_what_it_tagged() {
    if !engine_ready() || !registry_tools_ready() {
        return;
    }
    let registry = Registry::start("read-only", true);
    let repo = registry.repo();
    let mut env = Cleanup::default();
    for arch in ["amd64", "arm64"] {
        env.images.push(format!("{repo}:{VERSION}-{arch}"));
    }
    let out = make_push(&[&format!("REGISTRY={}", registry.addr)]);
    assert!(!out.status.success(), "{out:?}");
    // The images were built (the registry answers), then the first push failed.
    let line = the_error_line(&out);
    assert!(
        line.starts_with(&format!(
            "make push: docker push {repo}:{VERSION}-amd64 failed: "
        )),
        "{line}"
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr
            .trim_end()
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("make: *** "))
            && stderr.trim_end().lines().rev().nth(1) == Some(line.as_str()),
        "the error is the last line before make's:\n{stderr}"
    );
    eprintln!("{line}");
    assert_eq!(
        tags_under(&registry.addr),
        Vec::<String>::new(),
        "nothing left tagged"
    );
}
