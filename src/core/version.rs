//! What this binary is: its version, the git commit it was built from, the Rust target it was
//! built for and the cargo features in it, as `build.rs` recorded them, and the one line `--version` prints. The same version
//! and commit label `ecs_exporter_build_info` and the image
//! (`org.opencontainers.image.version`, `org.opencontainers.image.revision`).

/// The crate's version, from `Cargo.toml`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit (hex) the binary was built from; `None` when the build knew none (a source
/// tree without git and no `ECS_EXPORTER_COMMIT`).
pub const COMMIT: Option<&str> = non_empty(env!("ECS_EXPORTER_BUILD_COMMIT"));

/// The Rust target triple the binary was built for, e.g. `x86_64-unknown-linux-musl`.
pub const TARGET: &str = env!("ECS_EXPORTER_BUILD_TARGET");

const UNKNOWN: &str = "unknown";

const fn non_empty(s: &'static str) -> Option<&'static str> {
    if s.is_empty() { None } else { Some(s) }
}

/// The `revision` label of `ecs_exporter_build_info`: the commit, or `unknown`.
pub fn revision() -> &'static str {
    COMMIT.unwrap_or(UNKNOWN)
}

/// The cargo features built in, as `--version` names them (`none` for the minimal binary).
pub const FEATURES: &str = if cfg!(feature = "remote-write") {
    "remote-write"
} else {
    "none"
};

/// What `--version` prints, one line without the newline.
pub fn line() -> String {
    format_line(VERSION, COMMIT, TARGET, FEATURES)
}

fn format_line(version: &str, commit: Option<&str>, target: &str, features: &str) -> String {
    let name = env!("CARGO_PKG_NAME");
    match commit {
        Some(commit) => {
            format!("{name} {version}, commit {commit}, target {target}, features {features}")
        }
        None => format!(
            "{name} {version}, commit {UNKNOWN} (not built from a git checkout), target {target}, \
             features {features}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_version_commit_and_target_and_says_when_the_commit_is_unknown() {
        assert_eq!(
            format_line(
                "1.2.3",
                Some("0123abc"),
                "aarch64-unknown-linux-musl",
                "remote-write"
            ),
            "ecs-container-exporter 1.2.3, commit 0123abc, target aarch64-unknown-linux-musl, \
             features remote-write"
        );
        assert_eq!(
            format_line("1.2.3", None, "x86_64-unknown-linux-musl", "none"),
            "ecs-container-exporter 1.2.3, commit unknown (not built from a git checkout), \
             target x86_64-unknown-linux-musl, features none"
        );
    }

    #[test]
    fn the_recorded_commit_is_hex_or_none_and_the_target_is_a_triple() {
        if let Some(commit) = COMMIT {
            assert!(
                (7..=64).contains(&commit.len()) && commit.bytes().all(|b| b.is_ascii_hexdigit()),
                "{commit}"
            );
            assert_eq!(revision(), commit);
        } else {
            assert_eq!(revision(), "unknown");
        }
        assert!(TARGET.split('-').count() >= 3, "{TARGET}");
        assert!(!line().contains('\n'));
    }
}
