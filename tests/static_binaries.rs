//! The shipped musl binaries: `make static` (x86_64) and `make static-arm64` (aarch64, Graviton)
//! give static (no ELF interpreter, no needed libraries), stripped executables, and the aarch64
//! one runs under `qemu-aarch64-static`: `--help` exits 0, `--version` names its target, and it
//! serves `/metrics` from the host-built simulator on 127.0.0.1.
//!
//! Builds go through the Makefile (profile `dist`) into `$CARGO_TARGET_DIR` (else `./target`).
//! A test whose Rust target cannot be installed, or that needs a missing
//! `qemu-aarch64-static`, prints why on stderr and passes.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::docker::{AMD64, ARM64, cargo_dist, dist_binary, find_in_path, make, target_ready};
use common::{Sim, free_port, http_get, parse_strict, wait_for};

const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;

#[test]
fn amd64_binaries_are_static_and_stripped() {
    if !target_ready(AMD64) {
        eprintln!("skipping: the Rust target {AMD64} is not installed and cannot be added");
        return;
    }
    make(&["static"]);
    cargo_dist(AMD64, "ecs-task-sim");
    for bin in ["ecs-container-exporter", "ecs-task-sim"] {
        let path = dist_binary(AMD64, bin);
        let elf = read_elf(&path);
        assert_eq!(elf.machine, EM_X86_64, "{}: not x86_64", path.display());
        assert_static_and_stripped(&path, &elf);
        eprintln!(
            "{}: {} bytes ({:.3} MiB), static, stripped",
            path.display(),
            elf.size,
            elf.size as f64 / 1_048_576.0
        );
    }
    let help = Command::new(dist_binary(AMD64, "ecs-container-exporter"))
        .arg("--help")
        .output()
        .expect("run the static binary");
    assert!(help.status.success(), "--help: {help:?}");
    assert!(String::from_utf8_lossy(&help.stdout).contains("--metadata-url"));
    let version = Command::new(dist_binary(AMD64, "ecs-container-exporter"))
        .arg("--version")
        .output()
        .expect("run the static binary");
    assert!(version.status.success(), "--version: {version:?}");
    let line = String::from_utf8_lossy(&version.stdout);
    assert!(
        line.contains(&format!(", target {AMD64}, features remote-write\n")),
        "{line}"
    );
}

#[test]
fn arm64_binary_is_static_and_serves_metrics_under_qemu() {
    let Some(qemu) = find_in_path("qemu-aarch64-static") else {
        eprintln!(
            "skipping: qemu-aarch64-static is not installed (Debian package qemu-user-static)"
        );
        return;
    };
    if !target_ready(ARM64) {
        eprintln!("skipping: the Rust target {ARM64} is not installed and cannot be added");
        return;
    }
    make(&["static-arm64"]);
    let path = dist_binary(ARM64, "ecs-container-exporter");
    let elf = read_elf(&path);
    assert_eq!(elf.machine, EM_AARCH64, "{}: not aarch64", path.display());
    assert_static_and_stripped(&path, &elf);
    eprintln!(
        "{}: {} bytes ({:.3} MiB), static, stripped",
        path.display(),
        elf.size,
        elf.size as f64 / 1_048_576.0
    );

    let help = Command::new(&qemu)
        .arg(&path)
        .arg("--help")
        .output()
        .expect("run qemu-aarch64-static");
    assert!(help.status.success(), "--help under qemu: {help:?}");
    assert!(String::from_utf8_lossy(&help.stdout).contains("--metadata-url"));
    let version = Command::new(&qemu)
        .arg(&path)
        .arg("--version")
        .output()
        .expect("run qemu-aarch64-static");
    assert!(
        version.status.success(),
        "--version under qemu: {version:?}"
    );
    let line = String::from_utf8_lossy(&version.stdout);
    assert!(
        line.contains(&format!(", target {ARM64}, features remote-write\n")),
        "{line}"
    );

    // Against the host-built simulator, on loopback only.
    let sim = Sim::start(&["--containers", "4", "--refresh-secs", "0"]);
    let port = free_port();
    let mut child = Command::new(&qemu)
        .arg(&path)
        .args(["--metadata-url", &sim.url, "--interval", "1"])
        .args(["--bind-address", "127.0.0.1", "--exporter-port"])
        .arg(port.to_string())
        .env_clear()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the aarch64 exporter under qemu");
    let _guard = KillOnDrop(child.id());
    let addr = ([127, 0, 0, 1], port).into();
    let mut last = String::new();
    let served = wait_for(Duration::from_secs(30), || {
        match http_get(addr, "/metrics", &[]) {
            Ok((200, _, body)) => {
                let full = body.contains("ecs_exporter_up 1")
                    && body.contains("ecs_task_cpu_usage_ratio{container_name=\"_task_\"}");
                last = body;
                full
            }
            _ => false,
        }
    });
    assert!(
        served,
        "the aarch64 exporter did not serve a full scrape:\n{last}"
    );
    let scrape = parse_strict(&last).unwrap_or_else(|e| panic!("{e}\n{last}"));
    assert_eq!(scrape.value("ecs_task_exporter_status", &[]), 1.0);
    assert_eq!(scrape.series("ecs_task_info").len(), 1);
    assert!(!scrape.series("ecs_container_info").is_empty());
    assert!(
        !scrape
            .series("ecs_container_memory_working_set_bytes")
            .is_empty()
    );
    let (status, _, body) = http_get(addr, "/health", &[]).expect("/health");
    assert_eq!((status, body.trim()), (200, "ok"));

    // SIGTERM (qemu passes it on to the guest): exit 0 promptly.
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    eprintln!(
        "aarch64 exporter under qemu exited 0 {:?} after SIGTERM",
        start.elapsed()
    );
}

/// Kills a process by id when dropped (the test's own child; a no-op once it has exited).
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.0.to_string()])
            .stderr(Stdio::null())
            .status();
    }
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
