//! DogStatsD lines from a snapshot, packed into datagrams.
//!
//! Every series of a 2.x family (SPEC §3.1, `Family::dogstatsd`) becomes one line in the 2.x form,
//! `ecs_task.<name without ecs_task_>:<value>|g|#container_name:<name>[,cpu:<i>][,interface:<if>]`,
//! followed by the task tags `ecs_cluster_name`, `task_family`, `task_version`. Tag values have
//! `,`, `|`, `#` and newlines replaced by `_` (they would end the tag or the line). Values are the
//! same numbers as the Prometheus series; a whole float is written without a fraction (`512`,
//! as 2.x did for integer values).
//!
//! Lines are packed newline-separated into datagrams of at most [`MAX_DATAGRAM`] bytes; a single
//! line longer than that travels alone.
//!
//! Out of scope: sockets and name resolution (`statsd.rs`).

use std::fmt::Write;

use crate::core::snapshot::{Snapshot, Value};

/// The largest datagram we send: fits a 1500-byte MTU with IPv6 and UDP headers to spare,
/// the size DogStatsD clients default to.
pub const MAX_DATAGRAM: usize = 1432;

/// All the lines of one snapshot.
pub fn lines(snapshot: &Snapshot) -> Vec<String> {
    let mut task_tags = String::new();
    for (key, value) in [
        ("ecs_cluster_name", &snapshot.tags.cluster),
        ("task_family", &snapshot.tags.family),
        ("task_version", &snapshot.tags.revision),
    ] {
        if !value.is_empty() {
            task_tags.push(',');
            task_tags.push_str(key);
            task_tags.push(':');
            push_tag_value(&mut task_tags, value);
        }
    }
    let mut out = Vec::new();
    for family in snapshot.families.iter().filter(|f| f.dogstatsd) {
        let metric = family.name.strip_prefix("ecs_task_").unwrap_or(family.name);
        for series in &family.series {
            let mut line = String::with_capacity(96);
            line.push_str("ecs_task.");
            line.push_str(metric);
            line.push(':');
            write_value(&mut line, series.value);
            line.push_str("|g|#");
            for (i, (key, value)) in series.labels.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                line.push_str(key);
                line.push(':');
                push_tag_value(&mut line, value);
            }
            if series.labels.is_empty() {
                line.push_str(task_tags.trim_start_matches(','));
            } else {
                line.push_str(&task_tags);
            }
            out.push(line);
        }
    }
    out
}

/// Packs lines, newline-separated, into datagrams of at most `max` bytes.
pub fn pack(lines: &[String], max: usize) -> Vec<Vec<u8>> {
    let mut datagrams = Vec::new();
    let mut current: Vec<u8> = Vec::with_capacity(max);
    for line in lines {
        let needed = if current.is_empty() {
            line.len()
        } else {
            current.len() + 1 + line.len()
        };
        if needed > max && !current.is_empty() {
            datagrams.push(std::mem::replace(&mut current, Vec::with_capacity(max)));
        }
        if !current.is_empty() {
            current.push(b'\n');
        }
        current.extend_from_slice(line.as_bytes());
    }
    if !current.is_empty() {
        datagrams.push(current);
    }
    datagrams
}

fn push_tag_value(out: &mut String, value: &str) {
    out.extend(value.chars().map(|c| match c {
        ',' | '|' | '#' | '\n' | '\r' => '_',
        c => c,
    }));
}

fn write_value(out: &mut String, value: Value) {
    // Writing to a String cannot fail.
    let _ = match value {
        Value::Unsigned(u) => write!(out, "{u}"),
        Value::Signed(i) => write!(out, "{i}"),
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => write!(out, "{}", f as i64),
        Value::Float(f) => write!(out, "{f}"),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::snapshot::{Family, Kind, TaskTags};

    fn snapshot() -> Snapshot {
        let mut ratio = Family::new("ecs_task_cpu_usage_ratio", Kind::Gauge, "h").for_dogstatsd();
        ratio.push(vec![("container_name", "web".into())], Value::Float(1.2));
        let mut percpu =
            Family::new("ecs_task_percpu_usage_ratio", Kind::Gauge, "h").for_dogstatsd();
        percpu.push(
            vec![("container_name", "web".into()), ("cpu", "1".into())],
            Value::Float(0.135),
        );
        let mut limit = Family::new("ecs_task_cpu_limit", Kind::Gauge, "h").for_dogstatsd();
        limit.push(
            vec![("container_name", "_task_".into())],
            Value::Float(256.0),
        );
        let mut info = Family::new("ecs_task_info", Kind::Gauge, "h");
        info.push(Vec::new(), Value::Unsigned(1));
        Snapshot {
            tags: TaskTags {
                cluster: "prod,eu|1#x".into(),
                family: "web".into(),
                revision: "7".into(),
                instance: "0123abcd".into(),
            },
            families: vec![ratio, percpu, limit, info],
            warnings: Vec::new(),
        }
    }

    #[test]
    fn lines_have_the_2x_shape_with_task_tags_and_sanitised_values() {
        assert_eq!(
            lines(&snapshot()),
            [
                "ecs_task.cpu_usage_ratio:1.2|g|#container_name:web,ecs_cluster_name:prod_eu_1_x,task_family:web,task_version:7",
                "ecs_task.percpu_usage_ratio:0.135|g|#container_name:web,cpu:1,ecs_cluster_name:prod_eu_1_x,task_family:web,task_version:7",
                "ecs_task.cpu_limit:256|g|#container_name:_task_,ecs_cluster_name:prod_eu_1_x,task_family:web,task_version:7",
            ]
        );
    }

    #[test]
    fn packing_never_exceeds_the_limit_and_keeps_every_line() {
        let lines: Vec<String> = (0..100)
            .map(|i| format!("ecs_task.x:{i}|g|#container_name:c{i}"))
            .collect();
        let datagrams = pack(&lines, 100);
        assert!(datagrams.iter().all(|d| d.len() <= 100));
        let joined: Vec<String> = datagrams
            .iter()
            .flat_map(|d| {
                String::from_utf8_lossy(d)
                    .split('\n')
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(joined, lines);
    }

    #[test]
    fn an_oversized_line_travels_alone() {
        let lines = vec!["a".repeat(10), "b".repeat(30), "c".repeat(5)];
        let datagrams = pack(&lines, 20);
        assert_eq!(
            datagrams,
            vec![b"a".repeat(10), b"b".repeat(30), b"c".repeat(5)]
        );
    }
}
