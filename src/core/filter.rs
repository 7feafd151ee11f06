//! Family filters (SPEC §6): an allowlist or a denylist of family names and `*` globs, checked
//! at start against every family the exporter can emit, then asked, family by family, which are
//! exported. One filter serves `/metrics`, DogStatsD and remote write alike: `compute` leaves the
//! filtered data families out of the snapshot (it does not compute them), and the poller leaves
//! the filtered own families out before it renders, so every output reads the same set.
//!
//! A pattern is a whole family name, or one with `*` standing for any run of characters (none
//! included). `*` is the only wildcard: `?`, `[` and the rest are themselves. Names are
//! case-sensitive, as Prometheus's are. An entry that matches no family is refused, with the
//! nearest family name (or glob) by edit distance: a typo would otherwise export nothing (an
//! allowlist) or everything (a denylist) without a word.
//!
//! Any family may be filtered out, `ecs_exporter_up` and `ecs_task_info` too: the user asked.
//!
//! Out of scope: where the lists come from (`config`), the families themselves (`compute`,
//! `health`).

/// Which way a list works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    /// Only the families it matches are exported (`--metric-allowlist`).
    Allow,
    /// The families it matches are not exported (`--metric-denylist`).
    Deny,
}

/// Which families are exported: every one (the default), or as a list says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricFilter {
    list: Option<(List, Vec<String>)>,
}

impl MetricFilter {
    /// A filter from a list's entries (trimmed; empty ones dropped), each of which must match
    /// at least one of `known`. The error is one line naming the first entry that matches none
    /// and the nearest of `known`.
    pub fn parse(list: List, entries: &[String], known: &[&str]) -> Result<MetricFilter, String> {
        let patterns: Vec<String> = entries
            .iter()
            .map(|e| e.trim())
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect();
        if patterns.is_empty() {
            return Err("expected a comma list of family names or * globs".to_owned());
        }
        for pattern in &patterns {
            if !known.iter().any(|name| matches(pattern, name)) {
                let hint = nearest(pattern, known)
                    .map(|n| format!("; did you mean {n}?"))
                    .unwrap_or_default();
                return Err(format!(
                    "'{pattern}' matches no family the exporter can emit (names are \
                     case-sensitive; * is the only wildcard){hint}"
                ));
            }
        }
        Ok(MetricFilter {
            list: Some((list, patterns)),
        })
    }

    /// Whether the family of this name is exported.
    pub fn allows(&self, name: &str) -> bool {
        match &self.list {
            None => true,
            Some((list, patterns)) => {
                let listed = patterns.iter().any(|p| matches(p, name));
                listed == (*list == List::Allow)
            }
        }
    }

    /// Whether it lets every family through (no list).
    pub fn is_all(&self) -> bool {
        self.list.is_none()
    }
}

/// Whether `pattern` matches the whole of `name`; `*` matches any run of characters.
pub fn matches(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut i, mut j) = (0, 0);
    // The last `*` seen, and where in `name` its run would end if it took one more byte.
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        if i < p.len() && p[i] == b'*' {
            star = Some((i, j));
            i += 1;
        } else if i < p.len() && p[i] == n[j] {
            i += 1;
            j += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&b| b == b'*')
}

/// The family name nearest to `entry`: a name that `entry` begins (a suffix left out, as in
/// `ecs_task_cpu_usage`) before any other, then the fewest edits (Levenshtein, case ignored
/// first, then counted). For a glob, the globs made by cutting a name after one of its `_`
/// (`ecs_task_network_*`) are candidates too.
fn nearest(entry: &str, known: &[&str]) -> Option<String> {
    let mut candidates: Vec<String> = known.iter().map(|n| (*n).to_owned()).collect();
    if entry.contains('*') {
        for name in known {
            for (i, _) in name.match_indices('_') {
                candidates.push(format!("{}*", &name[..=i]));
            }
        }
    }
    let lower = entry.to_ascii_lowercase();
    candidates.into_iter().min_by_key(|c| {
        let c_lower = c.to_ascii_lowercase();
        (
            !c_lower.starts_with(&lower),
            distance(&lower, &c_lower),
            distance(entry, c),
        )
    })
}

/// The Levenshtein distance between two strings, by bytes.
fn distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &str) -> Vec<String> {
        entries.split(',').map(str::to_owned).collect()
    }

    fn filter(kind: List, entries: &str) -> MetricFilter {
        MetricFilter::parse(
            kind,
            &list(entries),
            &crate::core::compute::known_families(),
        )
        .unwrap_or_else(|e| panic!("{entries}: {e}"))
    }

    #[test]
    fn globs_match_whole_names_with_star_as_the_only_wildcard() {
        let cases = [
            ("ecs_task_mem_usage", "ecs_task_mem_usage", true),
            ("ecs_task_mem_usage", "ecs_task_mem_usage_x", false),
            ("ecs_task_mem", "ecs_task_mem_usage", false),
            (
                "ecs_task_network_*",
                "ecs_task_network_rx_bytes_total",
                true,
            ),
            ("ecs_task_network_*", "ecs_task_network_", true),
            ("ecs_task_network_*", "ecs_container_network", false),
            ("*_total", "ecs_task_disk_read_bytes_total", true),
            ("*_total", "ecs_task_mem_usage", false),
            ("ecs_task_*_*_total", "ecs_task_disk_read_bytes_total", true),
            ("ecs_*_rx_*", "ecs_task_network_rx_bytes_total", true),
            ("*", "anything", true),
            ("*", "", true),
            ("**a**", "bab", true),
            ("a*b*c", "abxbxc", true),
            ("a*b*c", "abxbx", false),
            (
                "ecs_task_cpu_?sage_ratio",
                "ecs_task_cpu_usage_ratio",
                false,
            ),
            (
                "ecs_task_cpu_[u]sage_ratio",
                "ecs_task_cpu_usage_ratio",
                false,
            ),
            ("ECS_TASK_MEM_USAGE", "ecs_task_mem_usage", false),
            ("", "", true),
            ("", "a", false),
        ];
        for (pattern, name, expected) in cases {
            assert_eq!(matches(pattern, name), expected, "{pattern} vs {name}");
        }
    }

    #[test]
    fn no_list_allows_everything_an_allowlist_only_its_families_a_denylist_all_but_its() {
        let all = MetricFilter::default();
        assert!(all.is_all());
        assert!(all.allows("ecs_task_mem_usage") && all.allows("anything"));

        let allow = filter(List::Allow, "ecs_task_mem_usage, ecs_task_network_*");
        assert!(!allow.is_all());
        assert!(allow.allows("ecs_task_mem_usage"));
        assert!(allow.allows("ecs_task_network_tx_dropped_total"));
        assert!(!allow.allows("ecs_task_mem_cache"));
        assert!(!allow.allows("ecs_exporter_up"));

        let deny = filter(List::Deny, "ecs_task_mem_usage,ecs_task_network_*");
        assert!(!deny.allows("ecs_task_mem_usage"));
        assert!(!deny.allows("ecs_task_network_rx_bytes_total"));
        assert!(deny.allows("ecs_task_mem_cache"));
        assert!(deny.allows("ecs_exporter_up"));
    }

    #[test]
    fn entries_are_trimmed_and_empty_ones_dropped_but_an_empty_list_is_refused() {
        let f = filter(List::Allow, "  ecs_task_mem_usage ,, ecs_exporter_up\t,");
        assert!(f.allows("ecs_task_mem_usage") && f.allows("ecs_exporter_up"));
        for empty in ["", " , ,"] {
            let err = MetricFilter::parse(
                List::Deny,
                &list(empty),
                &crate::core::compute::known_families(),
            );
            assert!(
                err.is_err_and(|e| e.contains("expected a comma list")),
                "{empty:?}"
            );
        }
    }

    #[test]
    fn an_entry_that_matches_nothing_is_refused_with_the_nearest_name() {
        let known = crate::core::compute::known_families();
        let cases = [
            ("ecs_task_mem_usge", "did you mean ecs_task_mem_usage?"),
            ("ECS_TASK_MEM_USAGE", "did you mean ecs_task_mem_usage?"),
            ("ecs_task_netwrk_*", "did you mean ecs_task_network_*?"),
            ("ecs_exporter_up_total", "did you mean ecs_exporter_up?"),
            (
                "ecs_task_cpu_usage",
                "did you mean ecs_task_cpu_usage_ratio?",
            ),
            (
                "ecs_container_memory_rss",
                "did you mean ecs_container_memory_rss_bytes?",
            ),
        ];
        for (entry, hint) in cases {
            let entries = list(&format!("ecs_task_mem_cache,{entry}"));
            let err = MetricFilter::parse(List::Allow, &entries, &known).unwrap_err();
            assert!(
                err.starts_with(&format!("'{entry}' matches no family")),
                "{err}"
            );
            assert!(err.ends_with(hint), "{entry}: {err}");
            assert!(!err.contains('\n'));
        }
    }

    #[test]
    fn every_family_the_exporter_can_emit_is_known_once_self_metrics_included() {
        let known = crate::core::compute::known_families();
        for name in [
            "ecs_task_cpu_limit",
            "ecs_task_network_tx_dropped_total",
            "ecs_task_ephemeral_storage_reserved_bytes",
            "ecs_task_exporter_status",
            "ecs_exporter_up",
            "ecs_exporter_statsd_errors_total",
            "ecs_exporter_remote_write_requests_total",
            "ecs_exporter_remote_write_last_success_timestamp_seconds",
        ] {
            assert!(known.contains(&name), "{name}");
        }
        let mut unique = known.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), known.len(), "no name twice");
    }

    #[test]
    fn edit_distance() {
        assert_eq!(distance("", ""), 0);
        assert_eq!(distance("abc", ""), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("flaw", "lawn"), 2);
    }
}
