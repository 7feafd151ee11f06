//! Prometheus text format 0.0.4 and OpenMetrics 1.0.0, written by hand from families.
//!
//! The writer is shaped around one family — HELP, TYPE, then all its samples — so families can
//! never interleave; a family with no series writes nothing. Label values are escaped (`\`, `"`,
//! newline), HELP text too (`\`, newline). Values that came from integers are written as integers;
//! floats in Rust's shortest round-trip form, with `NaN` and `±Inf` spelled as the formats want.
//!
//! [`render`] is the one place that writes an exposition: the poller calls it once per poll (and
//! when the DogStatsD error count changes), and scrapes copy its bytes.
//!
//! Out of scope: which families exist and their numbers (`compute`), HTTP (`serve`).

use std::fmt::Write;

use crate::core::snapshot::{Family, Kind, Value};

/// The two exposition formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`
    Text,
    /// `application/openmetrics-text; version=1.0.0`
    OpenMetrics,
}

impl Format {
    /// The format a scrape asked for with its `Accept` header.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The families of one poll and the exporter's own, rendered in both formats, whole (OpenMetrics
/// with its `# EOF`): what every scrape until the next poll is answered with.
#[derive(Debug, Default)]
pub struct Exposition {
    pub text: String,
    pub openmetrics: String,
}

impl Exposition {
    pub fn body(&self, format: Format) -> &str {
        match format {
            Format::Text => &self.text,
            Format::OpenMetrics => &self.openmetrics,
        }
    }
}

/// Renders the data families, then the exporter's own, in both formats.
pub fn render(data: &[Family], own: &[Family]) -> Exposition {
    let mut text = String::with_capacity(16 * 1024);
    let mut openmetrics = String::with_capacity(16 * 1024);
    for (out, format) in [
        (&mut text, Format::Text),
        (&mut openmetrics, Format::OpenMetrics),
    ] {
        write_families(out, data.iter().chain(own), format);
        write_end(out, format);
    }
    Exposition { text, openmetrics }
}

/// Writes all the families, in order.
pub fn write_families<'a>(
    out: &mut String,
    families: impl IntoIterator<Item = &'a Family>,
    format: Format,
) {
    for f in families {
        write_family(out, f, format);
    }
}

/// Writes one family: `# HELP`, `# TYPE`, then its samples. Nothing for a family without series.
pub fn write_family(out: &mut String, family: &Family, format: Format) {
    if family.series.is_empty() {
        return;
    }
    // OpenMetrics names a counter family without its `_total`; its samples keep it.
    let family_name = match (format, family.kind) {
        (Format::OpenMetrics, Kind::Counter) => {
            family.name.strip_suffix("_total").unwrap_or(family.name)
        }
        _ => family.name,
    };
    let kind = match family.kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
    };
    out.push_str("# HELP ");
    out.push_str(family_name);
    out.push(' ');
    escape_help(out, family.help, format);
    out.push_str("\n# TYPE ");
    out.push_str(family_name);
    out.push(' ');
    out.push_str(kind);
    out.push('\n');
    for s in &family.series {
        out.push_str(family.name);
        let mut labels = s.labels.iter().filter(|(_, v)| !v.is_empty()).peekable();
        if labels.peek().is_some() {
            out.push('{');
            for (i, (k, v)) in labels.enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(k);
                out.push_str("=\"");
                escape_label_value(out, v);
                out.push('"');
            }
            out.push('}');
        }
        out.push(' ');
        write_value(out, s.value);
        out.push('\n');
    }
}

/// Ends an exposition: OpenMetrics requires `# EOF`.
pub fn write_end(out: &mut String, format: Format) {
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
}

/// A sample value as both formats accept it.
pub fn write_value(out: &mut String, value: Value) {
    // Writing to a String cannot fail.
    let _ = match value {
        Value::Unsigned(u) => write!(out, "{u}"),
        Value::Signed(i) => write!(out, "{i}"),
        Value::Float(f) if f.is_nan() => write!(out, "NaN"),
        Value::Float(f) if f.is_infinite() => {
            write!(out, "{}", if f > 0.0 { "+Inf" } else { "-Inf" })
        }
        Value::Float(f) => write!(out, "{f:?}"),
    };
}

/// HELP text: `\` and newline in both formats; OpenMetrics also escapes `"`.
fn escape_help(out: &mut String, s: &str, format: Format) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if format == Format::OpenMetrics => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

fn escape_label_value(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family(kind: Kind) -> Family {
        let mut f = Family::new("demo_bytes_total", kind, "Help with \\ and\nnewline");
        f.push(
            vec![
                ("container_name", "a\"b\\c\nd".into()),
                ("empty", String::new()),
            ],
            Value::Unsigned(7),
        );
        f.push(Vec::new(), Value::Float(0.25));
        f
    }

    #[test]
    fn text_format_escapes_and_drops_empty_labels() {
        let mut out = String::new();
        write_family(&mut out, &family(Kind::Counter), Format::Text);
        write_end(&mut out, Format::Text);
        assert_eq!(
            out,
            "# HELP demo_bytes_total Help with \\\\ and\\nnewline\n# TYPE demo_bytes_total counter\n\
             demo_bytes_total{container_name=\"a\\\"b\\\\c\\nd\"} 7\ndemo_bytes_total 0.25\n"
        );
    }

    #[test]
    fn openmetrics_types_counters_without_total_and_ends_with_eof() {
        let mut out = String::new();
        write_family(&mut out, &family(Kind::Counter), Format::OpenMetrics);
        write_end(&mut out, Format::OpenMetrics);
        assert!(out.starts_with("# HELP demo_bytes Help"));
        assert!(out.contains("# TYPE demo_bytes counter\ndemo_bytes_total{"));
        assert!(out.ends_with("demo_bytes_total 0.25\n# EOF\n"));
    }

    #[test]
    fn openmetrics_help_escapes_double_quotes_and_text_format_does_not() {
        let mut f = Family::new("q", Kind::Gauge, "say \"hi\"");
        f.push(Vec::new(), Value::Unsigned(1));
        let (mut text, mut om) = (String::new(), String::new());
        write_family(&mut text, &f, Format::Text);
        write_family(&mut om, &f, Format::OpenMetrics);
        assert!(text.starts_with("# HELP q say \"hi\"\n"));
        assert!(om.starts_with("# HELP q say \\\"hi\\\"\n"));
    }

    #[test]
    fn a_family_without_series_writes_nothing() {
        let mut out = String::new();
        write_family(&mut out, &Family::new("x", Kind::Gauge, "h"), Format::Text);
        assert_eq!(out, "");
    }

    #[test]
    fn values_are_written_as_prometheus_reads_them() {
        let cases = [
            (Value::Unsigned(u64::MAX), "18446744073709551615"),
            (Value::Signed(-1), "-1"),
            (Value::Float(1.0), "1.0"),
            (Value::Float(0.1 + 0.2), "0.30000000000000004"),
            (Value::Float(1e21), "1e21"),
            (Value::Float(f64::NAN), "NaN"),
            (Value::Float(f64::INFINITY), "+Inf"),
            (Value::Float(f64::NEG_INFINITY), "-Inf"),
        ];
        for (value, expected) in cases {
            let mut out = String::new();
            write_value(&mut out, value);
            assert_eq!(out, expected);
        }
    }

    #[test]
    fn accept_header_picks_the_format() {
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(
            Format::negotiate(Some("text/plain;version=0.0.4")),
            Format::Text
        );
        assert_eq!(
            Format::negotiate(Some(
                "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
            )),
            Format::OpenMetrics
        );
    }
}
