//! The shipped musl binaries: `make static` (x86_64) and `make static-arm64` (aarch64, Graviton)
//! give static (no ELF interpreter, no needed libraries), stripped executables, and the aarch64
//! one runs under `qemu-aarch64-static`: `--help` exits 0, `--version` names its target, and it
//! serves `/metrics` from the host-built simulator on 127.0.0.1.
//!
//! Builds go through the Makefile (profile `dist`) into `$CARGO_TARGET_DIR` (else `./target`).
//! A test whose Rust target cannot be installed, or that needs a missing
//! `qemu-aarch64-static`, says so in one line and passes (fails under `CI=true`).

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use common::docker::{AMD64, ARM64, cargo_dist, dist_binary, find_in_path, make, no_target};
use common::{Launch, Sim, http_get, skip};

const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;

/// The binary at `path` is an ELF for `machine`, static and stripped; prints its size.
fn check_static(path: &Path, machine: u16) {
    let elf = read_elf(path);
    assert_eq!(
        elf.machine,
        machine,
        "{}: not machine {machine}",
        path.display()
    );
    assert_static_and_stripped(path, &elf);
    eprintln!(
        "{}: {} bytes ({:.3} MiB), static, stripped",
        path.display(),
        elf.size,
        elf.size as f64 / 1_048_576.0
    );
}

/// The exporter run through `command` (the binary, or qemu and the binary): `--help` exits 0
/// and lists the flags, `--version` names `target`.
fn check_help_and_version(command: &[&OsStr], target: &str) {
    let launch = Launch::new().via(command);
    let help = launch.clone().args(&["--help"]).run();
    assert_eq!(help.code, Some(0), "--help: {help:?}");
    assert!(help.stdout.contains("--metadata-url"), "{help:?}");
    let version = launch.args(&["--version"]).run();
    assert_eq!(version.code, Some(0), "--version: {version:?}");
    assert!(
        version
            .stdout
            .contains(&format!(", target {target}, features remote-write\n")),
        "{}",
        version.stdout
    );
}

#[test]
fn amd64_binaries_are_static_and_stripped() {
    if no_target(AMD64) {
        return;
    }
    make(&["static"]);
    cargo_dist(AMD64, "ecs-task-sim");
    for bin in ["ecs-container-exporter", "ecs-task-sim"] {
        check_static(&dist_binary(AMD64, bin), EM_X86_64);
    }
    let path = dist_binary(AMD64, "ecs-container-exporter");
    check_help_and_version(&[path.as_os_str()], AMD64);
}

#[test]
fn arm64_binary_is_static_and_serves_metrics_under_qemu() {
    let Some(qemu) = find_in_path("qemu-aarch64-static") else {
        return skip("qemu-aarch64-static is not installed (Debian package qemu-user-static)");
    };
    if no_target(ARM64) {
        return;
    }
    make(&["static-arm64"]);
    let path = dist_binary(ARM64, "ecs-container-exporter");
    check_static(&path, EM_AARCH64);
    let under_qemu = [qemu.as_os_str(), path.as_os_str()];
    check_help_and_version(&under_qemu, ARM64);

    // Against the host-built simulator, on loopback only.
    let sim = Sim::start(&["--containers", "4", "--refresh-secs", "0"]);
    let (mut exporter, scrape) = sim
        .exporter()
        .args(&["--interval", "1"])
        .via(&under_qemu)
        .start_until(Duration::from_secs(30), |s| {
            s.get("ecs_exporter_up", &[]) == Some(1.0)
                && s.get("ecs_task_cpu_usage_ratio", &[("container_name", "_task_")])
                    .is_some()
        });
    assert_eq!(scrape.value("ecs_task_exporter_status", &[]), 1.0);
    assert_eq!(scrape.series("ecs_task_info").len(), 1);
    assert!(!scrape.series("ecs_container_info").is_empty());
    assert!(
        !scrape
            .series("ecs_container_memory_working_set_bytes")
            .is_empty()
    );
    let (status, _, body) = http_get(exporter.addr, "/health", &[]).expect("/health");
    assert_eq!((status, body.trim()), (200, "ok"));

    // SIGTERM (qemu passes it on to the guest): exit 0 promptly.
    let (code, took) = exporter.terminate(Duration::from_secs(10));
    assert_eq!(code, Some(0), "exit after SIGTERM:\n{}", exporter.logs());
    eprintln!("aarch64 exporter under qemu exited 0 {took:?} after SIGTERM");
}

// ---------------------------------------------------------------------------------------------
// ELF64 little-endian, read by hand: program headers (PT_INTERP, PT_DYNAMIC → DT_NEEDED) and
// section headers (SHT_SYMTAB means not stripped).

const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NEEDED: u64 = 1;
const SHT_SYMTAB: u32 = 2;

#[derive(Debug)]
struct Elf {
    size: usize,
    machine: u16,
    /// Program header types, in order.
    segments: Vec<u32>,
    /// `DT_NEEDED` entries of the dynamic segment (shared libraries it asks for).
    needed: usize,
    has_symtab: bool,
}

fn read_elf(path: &Path) -> Elf {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse_elf(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse_elf(b: &[u8]) -> Result<Elf, String> {
    let u16_at = |o: usize| -> Result<u16, String> {
        b.get(o..o + 2)
            .map(|s| u16::from_le_bytes([s[0], s[1]]))
            .ok_or_else(|| format!("truncated at {o}"))
    };
    let u32_at = |o: usize| -> Result<u32, String> {
        b.get(o..o + 4)
            .map(|s| u32::from_le_bytes(s.try_into().unwrap_or_default()))
            .ok_or_else(|| format!("truncated at {o}"))
    };
    let u64_at = |o: usize| -> Result<u64, String> {
        b.get(o..o + 8)
            .map(|s| u64::from_le_bytes(s.try_into().unwrap_or_default()))
            .ok_or_else(|| format!("truncated at {o}"))
    };
    let usize_at = |o: usize| -> Result<usize, String> {
        usize::try_from(u64_at(o)?).map_err(|_| format!("offset at {o} too large"))
    };
    if b.get(..4) != Some(b"\x7fELF") {
        return Err("not an ELF file".into());
    }
    if b.get(4..6) != Some(&[2, 1]) {
        return Err("not ELF64 little-endian".into());
    }
    let machine = u16_at(18)?;
    let (phoff, phentsize, phnum) = (usize_at(32)?, usize::from(u16_at(54)?), u16_at(56)?);
    let (shoff, shentsize, shnum) = (usize_at(40)?, usize::from(u16_at(58)?), u16_at(60)?);

    let mut segments = Vec::new();
    let mut needed = 0;
    for i in 0..usize::from(phnum) {
        let ph = phoff + i * phentsize;
        let kind = u32_at(ph)?;
        segments.push(kind);
        if kind == PT_DYNAMIC {
            let (offset, filesz) = (usize_at(ph + 8)?, usize_at(ph + 32)?);
            for entry in (offset..offset + filesz).step_by(16) {
                match u64_at(entry)? {
                    0 => break,
                    DT_NEEDED => needed += 1,
                    _ => {}
                }
            }
        }
    }
    let mut has_symtab = false;
    for i in 0..usize::from(shnum) {
        has_symtab |= u32_at(shoff + i * shentsize + 4)? == SHT_SYMTAB;
    }
    Ok(Elf {
        size: b.len(),
        machine,
        segments,
        needed,
        has_symtab,
    })
}

fn assert_static_and_stripped(path: &Path, elf: &Elf) {
    assert!(
        !elf.segments.contains(&PT_INTERP),
        "{}: has an ELF interpreter (dynamically linked): {elf:?}",
        path.display()
    );
    assert_eq!(
        elf.needed,
        0,
        "{}: asks for shared libraries: {elf:?}",
        path.display()
    );
    assert!(
        !elf.has_symtab,
        "{}: not stripped (has .symtab)",
        path.display()
    );
}

#[test]
fn the_elf_reader_tells_a_dynamic_executable_from_a_static_one() {
    // The test binary itself is a normal (dynamic) host executable on Linux/glibc hosts.
    let me = std::env::current_exe().expect("current exe");
    let elf = read_elf(&me);
    if cfg!(all(target_os = "linux", target_env = "gnu")) {
        assert!(elf.segments.contains(&PT_INTERP), "{elf:?}");
        assert!(elf.needed > 0, "{elf:?}");
    }
    assert!(parse_elf(b"#!/bin/sh\n").is_err());
    assert!(parse_elf(b"\x7fELF\x02\x01").is_err());
}
