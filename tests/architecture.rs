//! The invariants that ARCHITECTURE.md states about the code's shape, checked on `src/` as text:
//! which single module names each dependency, that the pure core imports nothing from the shell
//! and does no I/O, that every module says what it does, that no source file grows past ~500
//! lines of code (tests not counted), and that `unsafe` stays denied. And that ARCHITECTURE.md
//! itself names every file under `src/` and `tests/` (the data of `tests/fixtures/` aside).
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

#[test]
fn unsafe_code_is_denied_for_every_target_and_allowed_back_nowhere() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let lints = manifest.split("\n[").find(|t| t.starts_with("lints.rust]"));
    assert!(
        lints.is_some_and(|t| t.lines().any(|l| l.trim() == "unsafe_code = \"deny\"")),
        "Cargo.toml: [lints.rust] unsafe_code = \"deny\""
    );
    let mut paths = vec![root.join("build.rs")];
    rust_files(&root.join("src"), &mut paths);
    rust_files(&root.join("tests"), &mut paths);
    for path in paths {
        let text = fs::read_to_string(&path).unwrap();
        for level in ["allow", "warn", "expect"] {
            let attribute = format!("{level}(unsafe_code");
            assert!(
                !text.contains(&attribute),
                "{}: {attribute}",
                path.display()
            );
        }
    }
}

/// Every file under `folder` (relative to the crate), recursively.
fn all_files(folder: &str) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    let mut dirs = vec![root.join(folder)];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                out.push(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    out.sort();
    out
}

/// The paths ARCHITECTURE.md names, read from its list items. A backticked token is a folder when
/// it ends with `/`, else a file. A token starting with `src/` or `tests/` is a full path;
/// another is relative to the folders of its item and of the items it is nested in (a full file
/// path makes its folder one of them). So `` - `src/serve/`: … `http/message.rs` `` names
/// `src/serve/http/message.rs`, and a nested `` - `compute/`: … `cpu.rs` `` under
/// `` - `src/core/` `` names `src/core/compute/cpu.rs`.
fn paths_named_in_architecture() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    // Each list item: its indentation and its text, continuation lines included.
    let mut items: Vec<(usize, String)> = Vec::new();
    let mut in_item = false;
    for line in doc.lines() {
        let indent = line.len() - line.trim_start().len();
        if line.trim_start().starts_with("- ") {
            items.push((indent, line.trim_start()[2..].to_owned()));
            in_item = true;
        } else if in_item && indent > 0 && !line.trim().is_empty() {
            let (_, text) = items.last_mut().unwrap();
            text.push(' ');
            text.push_str(line.trim());
        } else {
            // A line that is neither a list item nor its continuation ends the list.
            in_item = false;
            items.push((0, String::new()));
        }
    }
    let absolute = |t: &str| t.starts_with("src/") || t.starts_with("tests/");
    let mut named = Vec::new();
    // The folders of the enclosing items, innermost last: (indentation, folders).
    let mut stack: Vec<(usize, Vec<String>)> = Vec::new();
    for (indent, text) in items {
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        let bases = stack
            .last()
            .map_or_else(|| vec![String::new()], |(_, f)| f.clone());
        let tokens: Vec<&str> = text.split('`').skip(1).step_by(2).collect();
        let mut folders = bases.clone();
        for t in &tokens {
            let folder = match t.rfind('/') {
                Some(i) => &t[..=i],
                None => continue,
            };
            if absolute(folder) {
                folders.push(folder.to_owned());
            } else if t.ends_with('/') {
                folders.extend(bases.iter().map(|b| format!("{b}{folder}")));
            }
        }
        for t in tokens.iter().filter(|t| !t.ends_with('/')) {
            if absolute(t) {
                named.push((*t).to_owned());
            } else {
                named.extend(folders.iter().map(|f| format!("{f}{t}")));
            }
        }
        stack.push((indent, folders));
    }
    named
}

/// The code map and the test list name every file under `src/` and `tests/`, data aside: the
/// payloads and snapshots of `tests/fixtures/`, which ARCHITECTURE.md names as a folder.
#[test]
fn architecture_names_every_file_under_src_and_tests() {
    let named = paths_named_in_architecture();
    let mut files = all_files("src");
    files.extend(all_files("tests"));
    files.retain(|f| !f.starts_with("tests/fixtures/"));
    assert!(files.len() > 60, "found {} files", files.len());
    let missing: Vec<&String> = files.iter().filter(|f| !named.contains(f)).collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md does not name {missing:#?}"
    );
}
