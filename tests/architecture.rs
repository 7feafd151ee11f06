//! The invariants that ARCHITECTURE.md states about the code's shape, checked on `src/` as text:
//! which single module names each dependency, that the pure core imports nothing from the shell
//! and does no I/O, that every module says what it does, and that no source file grows past
//! ~500 lines of code (tests not counted).
//!
//! The exporter is `src/` without `src/bin/` (the simulator is a test tool with its own needs).

use std::fs;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// (path relative to the crate, text) of every Rust file under `src/`, the simulator's too.
fn source_files() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    rust_files(&root.join("src"), &mut paths);
    let mut files: Vec<(String, String)> = paths
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            (rel, fs::read_to_string(&p).unwrap())
        })
        .collect();
    files.sort();
    assert!(files.len() > 20, "found {} files", files.len());
    files
}

/// The files of the exporter: `src/` without the simulator.
fn exporter_files() -> Vec<(String, String)> {
    let mut files = source_files();
    files.retain(|(rel, _)| !rel.starts_with("src/bin/"));
    files
}

/// The code of a file: comments dropped, and nothing from its `#[cfg(test)]` module on (or the
/// whole file when it is a test module of its own).
fn code(rel: &str, text: &str) -> String {
    if rel.ends_with("/tests.rs") || rel.ends_with("/fake.rs") {
        return String::new();
    }
    text.lines()
        .take_while(|l| !l.starts_with("#[cfg(test)]"))
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `word` appears in `code` as a whole identifier.
fn names(code: &str, word: &str) -> bool {
    code.match_indices(word).any(|(i, _)| {
        let before = code[..i].chars().next_back();
        let after = code[i + word.len()..].chars().next();
        let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !ident(before) && !ident(after)
    })
}

#[test]
fn each_dependency_is_named_by_one_module() {
    let files = exporter_files();
    let owners: [(&str, &[&str]); 9] = [
        ("serde_json", &["src/core/payload.rs"]),
        // The client of the sources, its https connector, and remote write's request.
        (
            "ureq",
            &[
                "src/push/transport.rs",
                "src/source/client.rs",
                "src/source/client/tls.rs",
            ],
        ),
        // TLS: one file configures it; SigV4 and the TLS randomness use ring.
        ("rustls", &["src/source/client/tls.rs"]),
        ("webpki", &["src/source/client/tls.rs"]),
        ("ring", &["src/core/sigv4.rs", "src/source/client/tls.rs"]),
        ("snap", &["src/core/remote_write.rs"]),
        ("argh", &["src/config.rs"]),
        ("signal_hook", &["src/main.rs"]),
        // The HTTP server: its loop and one connection's life.
        (
            "mio",
            &["src/serve/http.rs", "src/serve/http/connection.rs"],
        ),
    ];
    for (krate, owner) in owners {
        let named: Vec<&str> = files
            .iter()
            .filter(|(rel, text)| names(&code(rel, text), krate))
            .map(|(rel, _)| rel.as_str())
            .collect();
        assert_eq!(named, owner, "{krate}");
    }
}

#[test]
fn the_core_imports_nothing_from_the_shell_and_does_no_io() {
    let forbidden = [
        "crate::source",
        "crate::serve",
        "crate::config",
        "crate::poller",
        "std::net",
        "std::thread",
        "std::fs",
        "std::env",
        "std::process",
        "std::io",
        "std::sync",
        "Instant",
        "SystemTime",
        "log::",
    ];
    let mut core = 0;
    for (rel, text) in exporter_files() {
        if !rel.starts_with("src/core/") {
            continue;
        }
        core += 1;
        let code = code(&rel, &text);
        for word in forbidden {
            assert!(!code.contains(word), "{rel} uses {word}");
        }
    }
    assert!(core >= 10, "{core} core files");
}

#[test]
fn every_module_says_what_it_does() {
    for (rel, text) in source_files() {
        assert!(text.starts_with("//!"), "{rel} has no module doc on top");
    }
}

#[test]
fn no_source_file_has_more_than_500_lines_of_code() {
    for (rel, text) in source_files() {
        let lines = text
            .lines()
            .take_while(|l| !l.starts_with("#[cfg(test)]"))
            .count();
        assert!(lines <= 500, "{rel}: {lines} lines before its tests");
    }
}

#[test]
fn nothing_outside_tests_unwraps() {
    for (rel, text) in exporter_files() {
        let code = code(&rel, &text);
        for word in [".unwrap()", ".expect("] {
            assert!(!code.contains(word), "{rel} calls {word}");
        }
    }
}
