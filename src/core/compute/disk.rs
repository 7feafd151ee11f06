//! A container's disk counters from its blkio devices, layered devices counted once.
//!
//! Every device counts (as `docker stats` does), except that a device-mapper device is left out
//! when the container also lists another device: it mirrors the device under it (ECS Managed
//! Instances lists `252:0` beside `259:0` with the same bytes). Which majors are device-mapper
//! is an input, read by the caller from `/proc/devices` ([`device_mapper_majors`] parses it).
//!
//! Out of scope: reading `/proc/devices` (the poller), carrying the task totals (`totals.rs`).

use crate::core::payload::{Device, Sample};

/// A container's disk counters: bytes and operations read and written, each `None` when its
/// blkio list is absent.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Io {
    pub read_bytes: Option<u64>,
    pub write_bytes: Option<u64>,
    pub read_ops: Option<u64>,
    pub write_ops: Option<u64>,
}

/// The disk counters of a sample, device-mapper entries left out where they are layered.
pub(super) fn io(s: &Sample, device_mapper: &[u64]) -> Io {
    let sum = |devices: &Option<Vec<Device>>| {
        let devices = devices.as_deref()?;
        let layered = |d: &Device| device_mapper.contains(&d.major);
        let skip_layered = devices.iter().any(layered) && !devices.iter().all(layered);
        let counted = devices.iter().filter(|d| !(skip_layered && layered(d)));
        Some(counted.fold((0u64, 0u64), |(r, w), d| {
            (r.saturating_add(d.read), w.saturating_add(d.write))
        }))
    };
    let (bytes, ops) = (sum(&s.disk.bytes), sum(&s.disk.ops));
    Io {
        read_bytes: bytes.map(|b| b.0),
        write_bytes: bytes.map(|b| b.1),
        read_ops: ops.map(|o| o.0),
        write_ops: ops.map(|o| o.1),
    }
}

/// The majors of the `device-mapper` block devices in a `/proc/devices` text (`252
/// device-mapper` under `Block devices:`); none when there is no such line.
pub fn device_mapper_majors(proc_devices: &str) -> Vec<u64> {
    proc_devices
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("Block devices"))
        .filter_map(|l| {
            let (major, name) = l.trim().split_once(char::is_whitespace)?;
            (name.trim() == "device-mapper")
                .then(|| major.parse().ok())
                .flatten()
        })
        .collect()
}
