//! Prometheus Remote-Write 1.0 bodies (SPEC §5), from families to the bytes of one request: the
//! series as pushed samples ([`samples`]), a `prometheus.WriteRequest` of them and of the stale
//! markers ([`encode`], by hand in [`protobuf`]), snappy block compression ([`compress`]), and
//! which series vanished since the last push ([`Staleness`]).
//!
//! A pushed series is what a Prometheus scrape of `/metrics` would store: `__name__` is the family
//! name, a label with an empty value is absent (so an added label of that name fills it in), and
//! the added labels (`job`, `instance`, `--remote-write-label`) never override the series' own.
//! Label names are sorted bytewise, as the protocol requires: `__name__` comes first unless a
//! label name starts with an upper-case letter (`Z` sorts before `_`).
//!
//! Out of scope: HTTP, headers, auth, retries and the queue (the pusher), which families are
//! pushed (the filters), the clock (the caller passes the poll's time).

use crate::core::snapshot::Family;

mod protobuf;

/// The StaleNaN bit pattern Prometheus uses to mark a series ended.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The label that carries the metric name.
const NAME: &str = "__name__";

/// A label set as pushed: sorted bytewise by name (`__name__` first, unless a name starts with an
/// upper-case letter), each name once, no empty values.
pub type Labels = Vec<(String, String)>;

/// One sample to push.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
}

/// Every series of these families as pushed samples: `__name__` = family name, the series' own
/// labels (empty values dropped, as /metrics drops them), then each `added` (name, value) whose
/// name the series does not already have (a series' own label wins), all sorted by label name.
/// `added` is given in priority order: if it names a label twice, the first wins; a first with an
/// empty value means "no such label" (nothing is added under that name). An added `__name__` is
/// ignored. Value::Unsigned/Signed/Float → f64.
pub fn samples<'a>(
    families: impl IntoIterator<Item = &'a Family>,
    added: &[(String, String)],
) -> Vec<Sample> {
    // The first of each name, decided once rather than per series.
    let mut first: Vec<&(String, String)> = Vec::with_capacity(added.len());
    for label in added {
        if label.0 != NAME && !first.iter().any(|f| f.0 == label.0) {
            first.push(label);
        }
    }
    first.retain(|(_, value)| !value.is_empty());

    let mut out = Vec::new();
    for family in families {
        out.reserve(family.series.len());
        for series in &family.series {
            let mut labels = Vec::with_capacity(1 + series.labels.len() + first.len());
            labels.push((NAME.to_owned(), family.name.to_owned()));
            labels.extend(
                series
                    .labels
                    .iter()
                    .filter(|(name, value)| !value.is_empty() && *name != NAME)
                    .map(|(name, value)| ((*name).to_owned(), value.clone())),
            );
            let own = labels.len();
            for (name, value) in &first {
                if !labels[..own].iter().any(|(n, _)| n == name) {
                    labels.push((name.clone(), value.clone()));
                }
            }
            labels.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            out.push(Sample {
                labels,
                value: series.value.as_f64(),
            });
        }
    }
    out
}

/// A Remote-Write 1.0 `prometheus.WriteRequest` (uncompressed protobuf): one TimeSeries per sample
/// with one Sample{value, timestamp=time_ms}, then one TimeSeries per `stale` label set with one
/// sample whose value is f64::from_bits(STALE_NAN_BITS) at time_ms. Value and timestamp are
/// written even when 0. No samples and no stale sets give an empty body (an empty WriteRequest).
pub fn encode(samples: &[Sample], stale: &[Labels], time_ms: i64) -> Vec<u8> {
    let stale_nan = f64::from_bits(STALE_NAN_BITS);
    let series = samples
        .iter()
        .map(|s| (s.labels.as_slice(), s.value))
        .chain(stale.iter().map(move |l| (l.as_slice(), stale_nan)));
    protobuf::write_request(series, time_ms)
}

/// Snappy *block* format (not framed) as Remote-Write requires, via the `snap` crate.
///
/// Snappy refuses only an input over 4 GiB (a request of some ten million series); then the result
/// is empty, which a receiver rejects with a 400, rather than a panic.
pub fn compress(body: &[u8]) -> Vec<u8> {
    let mut compressed = snap::raw::Encoder::new()
        .compress_vec(body)
        .unwrap_or_default();
    // snap allocates the worst case (a sixth more than the input); a request may wait in the
    // queue for a long outage, so it keeps only its own bytes (a full queue of 120 requests of a
    // 4-container task: 6.5 MiB RSS before, measured).
    compressed.shrink_to_fit();
    compressed
}

/// Which series were sent last time, to mark the ones that disappear.
#[derive(Debug, Default)]
pub struct Staleness {
    /// The label sets sent last time, sorted, each once.
    sent: Vec<Labels>,
}

impl Staleness {
    /// Records `now` as the series sent this time and returns the label sets sent last time that are
    /// not in `now` (each gets a StaleNaN once; next call it's forgotten).
    ///
    /// Sorted merge of last time's sets and this time's: a set still sent is kept, not copied, so a
    /// poll with the same series as the last one clones no label.
    pub fn next(&mut self, now: &[Sample]) -> Vec<Labels> {
        let mut current: Vec<&Labels> = now.iter().map(|s| &s.labels).collect();
        current.sort_unstable();
        current.dedup();
        let mut previous = std::mem::take(&mut self.sent).into_iter().peekable();
        let mut sent = Vec::with_capacity(current.len());
        let mut gone = Vec::new();
        for labels in current {
            while let Some(vanished) = previous.next_if(|p| p < labels) {
                gone.push(vanished);
            }
            match previous.next_if(|p| p == labels) {
                Some(same) => sent.push(same),
                None => sent.push(labels.clone()),
            }
        }
        gone.extend(previous);
        self.sent = sent;
        gone
    }

    /// Every series sent last time (for the final request on shutdown, which marks all stale),
    /// and forgets them.
    pub fn take_all(&mut self) -> Vec<Labels> {
        std::mem::take(&mut self.sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::snapshot::{Kind, Value};

    // A strict decoder of the prompb subset: any other field or wire type fails the test.

    /// One decoded TimeSeries: its labels, and its samples as (value bits, timestamp).
    #[derive(Debug, PartialEq)]
    struct Decoded {
        labels: Vec<(String, String)>,
        samples: Vec<(u64, i64)>,
    }

    enum Field<'a> {
        Varint(u64),
        Fixed64(u64),
        Bytes(&'a [u8]),
    }

    fn read_varint(buf: &mut &[u8]) -> u64 {
        let mut v = 0u64;
        for i in 0..10 {
            let (&b, rest) = buf.split_first().expect("varint cut short");
            *buf = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return v;
            }
        }
        panic!("varint longer than 10 bytes");
    }

    /// Every (field number, field) of one message, in order.
    fn fields(mut buf: &[u8]) -> Vec<(u64, Field<'_>)> {
        let mut out = Vec::new();
        while !buf.is_empty() {
            let tag = read_varint(&mut buf);
            let field = match tag & 7 {
                0 => Field::Varint(read_varint(&mut buf)),
                1 => {
                    let (bytes, rest) = buf.split_at(8);
                    buf = rest;
                    Field::Fixed64(u64::from_le_bytes(bytes.try_into().unwrap()))
                }
                2 => {
                    let len = read_varint(&mut buf) as usize;
                    assert!(len <= buf.len(), "length {len} past the end");
                    let (bytes, rest) = buf.split_at(len);
                    buf = rest;
                    Field::Bytes(bytes)
                }
                wire => panic!("wire type {wire}"),
            };
            out.push((tag >> 3, field));
        }
        out
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn decode(body: &[u8]) -> Vec<Decoded> {
        fields(body)
            .into_iter()
            .map(|field| match field {
                (1, Field::Bytes(ts)) => decode_timeseries(ts),
                (n, _) => panic!("WriteRequest field {n}"),
            })
            .collect()
    }

    fn decode_timeseries(buf: &[u8]) -> Decoded {
        let mut series = Decoded {
            labels: Vec::new(),
            samples: Vec::new(),
        };
        for field in fields(buf) {
            match field {
                (1, Field::Bytes(label)) => {
                    let (mut name, mut value) = (String::new(), String::new());
                    for field in fields(label) {
                        match field {
                            (1, Field::Bytes(b)) => name = text(b),
                            (2, Field::Bytes(b)) => value = text(b),
                            (n, _) => panic!("Label field {n}"),
                        }
                    }
                    series.labels.push((name, value));
                }
                (2, Field::Bytes(sample)) => {
                    let (mut bits, mut ts) = (0, 0);
                    for field in fields(sample) {
                        match field {
                            (1, Field::Fixed64(b)) => bits = b,
                            (2, Field::Varint(v)) => ts = v as i64,
                            (n, _) => panic!("Sample field {n}"),
                        }
                    }
                    series.samples.push((bits, ts));
                }
                (n, _) => panic!("TimeSeries field {n}"),
            }
        }
        series
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn sample(pairs: &[(&str, &str)], value: f64) -> Sample {
        Sample {
            labels: labels(pairs),
            value,
        }
    }

    fn family(name: &'static str, series: Vec<(Vec<(&'static str, &str)>, Value)>) -> Family {
        let mut f = Family::new(name, Kind::Gauge, "help");
        for (labels, value) in series {
            f.push(
                labels
                    .into_iter()
                    .map(|(n, v)| (n, v.to_string()))
                    .collect(),
                value,
            );
        }
        f
    }

    // encode

    #[test]
    fn one_up_series_encodes_to_the_bytes_derived_by_hand() {
        // Label{name="__name__", value="up"}:
        //   0a 08 "__name__"   name:  field 1, wire 2 (0x0a), 8 bytes
        //   12 02 "up"         value: field 2, wire 2 (0x12), 2 bytes      → 2+8 + 2+2 = 14 (0x0e)
        // Sample{value=1.0, timestamp=1000}:
        //   09 00 00 00 00 00 00 f0 3f   value: field 1, wire 1 (0x09), 1.0 = 0x3ff0… little-endian
        //   10 e8 07                     timestamp: field 2, wire 0 (0x10); 1000 = 0b111_1101000
        //                                → 0x68|0x80, 0x07                  → 1+8 + 1+2 = 12 (0x0c)
        // TimeSeries: 0a 0e <label 14> 12 0c <sample 12>                   → 2+14 + 2+12 = 30 (0x1e)
        // WriteRequest: 0a 1e <timeseries 30>                              → 32 bytes
        let mut expected = vec![0x0a, 0x1e, 0x0a, 0x0e, 0x0a, 0x08];
        expected.extend_from_slice(b"__name__");
        expected.extend_from_slice(&[0x12, 0x02]);
        expected.extend_from_slice(b"up");
        expected.extend_from_slice(&[0x12, 0x0c, 0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f]);
        expected.extend_from_slice(&[0x10, 0xe8, 0x07]);
        assert_eq!(expected.len(), 32);

        let body = encode(&[sample(&[("__name__", "up")], 1.0)], &[], 1000);
        assert_eq!(body, expected);
    }

    #[test]
    fn samples_then_stale_sets_round_trip_through_a_decoder() {
        let samples = [
            sample(&[("__name__", "a"), ("job", "x")], 1.5),
            sample(&[("__name__", "b")], -2.0),
            sample(&[("__name__", "c"), ("id", "é\"\n")], 0.0),
            sample(&[("__name__", "d")], f64::INFINITY),
        ];
        let stale = [labels(&[("__name__", "gone"), ("container_name", "web")])];
        let time = 1_760_000_000_123;
        let decoded = decode(&encode(&samples, &stale, time));

        let mut expected: Vec<Decoded> = samples
            .iter()
            .map(|s| Decoded {
                labels: s.labels.clone(),
                samples: vec![(s.value.to_bits(), time)],
            })
            .collect();
        expected.push(Decoded {
            labels: stale[0].clone(),
            samples: vec![(STALE_NAN_BITS, time)],
        });
        assert_eq!(decoded, expected);
    }

    #[test]
    fn a_zero_value_and_a_zero_timestamp_are_still_written() {
        let body = encode(&[sample(&[("__name__", "z")], 0.0)], &[], 0);
        assert_eq!(decode(&body)[0].samples, [(0, 0)]);
        // The sample message: 09 + 8 zero bytes, 10 00.
        assert!(body.ends_with(&[0x12, 0x0b, 0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0x00]));
        let minus_zero = encode(&[sample(&[("__name__", "z")], -0.0)], &[], 0);
        assert_eq!(decode(&minus_zero)[0].samples[0].0, (-0.0f64).to_bits());
    }

    #[test]
    fn a_negative_timestamp_is_a_ten_byte_varint_and_decodes_back() {
        let body = encode(&[sample(&[("__name__", "up")], 1.0)], &[], -1);
        let mut tail = vec![0x10];
        tail.extend([0xff; 9]);
        tail.push(0x01);
        assert!(body.ends_with(&tail));
        assert_eq!(decode(&body)[0].samples, [(1.0f64.to_bits(), -1)]);
        let min = encode(&[sample(&[("__name__", "up")], 1.0)], &[], i64::MIN);
        assert_eq!(decode(&min)[0].samples[0].1, i64::MIN);
    }

    #[test]
    fn stale_markers_carry_the_exact_stale_nan_bits() {
        let stale = [labels(&[("__name__", "a")]), labels(&[("__name__", "b")])];
        let decoded = decode(&encode(&[], &stale, 5));
        assert_eq!(decoded.len(), 2);
        for series in decoded {
            assert_eq!(series.samples, [(0x7ff0_0000_0000_0002, 5)]);
        }
        assert!(f64::from_bits(STALE_NAN_BITS).is_nan());
        // Not the NaN that arithmetic makes: Prometheus tells them apart by the bits.
        assert_ne!(f64::NAN.to_bits(), STALE_NAN_BITS);
    }

    #[test]
    fn lengths_past_127_bytes_take_two_byte_varints() {
        let long = "v".repeat(300);
        let many: Vec<(String, String)> = (0..40)
            .map(|i| (format!("label_{i:02}"), long.clone()))
            .collect();
        let samples = [Sample {
            labels: many.clone(),
            value: 7.0,
        }];
        let body = encode(&samples, std::slice::from_ref(&many), 1);
        assert!(body.len() > 2 * 40 * 300);
        let decoded = decode(&body);
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded[0].labels, many);
        assert_eq!(decoded[1].labels, many);
    }

    #[test]
    fn nothing_to_send_is_an_empty_write_request() {
        assert!(encode(&[], &[], 1000).is_empty());
    }

    // samples

    #[test]
    fn labels_are_the_name_then_own_then_added_sorted_by_name() {
        let families = [family(
            "ecs_cpu_seconds_total",
            vec![(
                vec![("zone", "a"), ("container_name", "web")],
                Value::Unsigned(3),
            )],
        )];
        let added = labels(&[("job", "ecs-container-exporter"), ("instance", "t1")]);
        let got = samples(&families, &added);
        assert_eq!(
            got,
            [sample(
                &[
                    ("__name__", "ecs_cpu_seconds_total"),
                    ("container_name", "web"),
                    ("instance", "t1"),
                    ("job", "ecs-container-exporter"),
                    ("zone", "a"),
                ],
                3.0
            )]
        );
    }

    #[test]
    fn label_names_sort_bytewise_so_upper_case_comes_before_the_name() {
        let families = [family("m", vec![(vec![], Value::Float(1.0))])];
        let got = samples(&families, &labels(&[("Env", "prod"), ("a", "1")]));
        let names: Vec<&str> = got[0].labels.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Env", "__name__", "a"]);
    }

    #[test]
    fn a_series_own_label_wins_over_an_added_one() {
        let families = [family(
            "m",
            vec![(vec![("instance", "own")], Value::Float(1.0))],
        )];
        let got = samples(&families, &labels(&[("instance", "added")]));
        assert_eq!(
            got[0].labels,
            labels(&[("__name__", "m"), ("instance", "own")])
        );
    }

    #[test]
    fn the_first_of_two_added_labels_of_a_name_wins() {
        let families = [family("m", vec![(vec![], Value::Float(1.0))])];
        let added = labels(&[("job", "mine"), ("instance", "i"), ("job", "default")]);
        let got = samples(&families, &added);
        assert_eq!(
            got[0].labels,
            labels(&[("__name__", "m"), ("instance", "i"), ("job", "mine")])
        );
    }

    #[test]
    fn empty_label_values_are_dropped_and_an_added_one_fills_in() {
        let families = [family(
            "m",
            vec![(
                vec![("container_name", ""), ("image", "nginx"), ("zone", "")],
                Value::Float(1.0),
            )],
        )];
        let got = samples(&families, &labels(&[("zone", "z")]));
        assert_eq!(
            got[0].labels,
            labels(&[("__name__", "m"), ("image", "nginx"), ("zone", "z")])
        );
    }

    #[test]
    fn an_empty_first_added_value_means_no_such_label() {
        let families = [family("m", vec![(vec![], Value::Float(1.0))])];
        let added = labels(&[("instance", ""), ("job", "j"), ("instance", "default")]);
        let got = samples(&families, &added);
        assert_eq!(got[0].labels, labels(&[("__name__", "m"), ("job", "j")]));
    }

    #[test]
    fn an_added_name_label_does_not_rename_the_series() {
        let families = [family("m", vec![(vec![], Value::Float(1.0))])];
        let got = samples(&families, &labels(&[("__name__", "other")]));
        assert_eq!(got[0].labels, labels(&[("__name__", "m")]));
    }

    #[test]
    fn every_value_kind_becomes_a_float() {
        let families = [
            family(
                "u",
                vec![
                    (vec![("k", "max")], Value::Unsigned(u64::MAX)),
                    (vec![("k", "zero")], Value::Unsigned(0)),
                ],
            ),
            family("s", vec![(vec![], Value::Signed(-42))]),
            family("f", vec![(vec![], Value::Float(0.25))]),
            family("empty", vec![]),
        ];
        let values: Vec<f64> = samples(&families, &[]).iter().map(|s| s.value).collect();
        assert_eq!(values, [u64::MAX as f64, 0.0, -42.0, 0.25]);
    }

    // Staleness

    #[test]
    fn staleness_returns_exactly_the_vanished_sets_once() {
        // Series named by their `__name__` alone.
        let sent = |names: &[&str]| -> Vec<Sample> {
            names
                .iter()
                .map(|n| sample(&[("__name__", n)], 1.0))
                .collect()
        };
        let stale = |names: &[&str]| -> Vec<Labels> {
            names.iter().map(|n| labels(&[("__name__", n)])).collect()
        };
        let mut staleness = Staleness::default();
        assert_eq!(staleness.next(&sent(&["a", "b", "c"])), stale(&[]));
        assert_eq!(staleness.next(&sent(&["c", "a", "b"])), stale(&[]));
        assert_eq!(staleness.next(&sent(&["b"])), stale(&["a", "c"]));
        assert_eq!(staleness.next(&sent(&["b"])), stale(&[]), "marked once");
        assert_eq!(staleness.next(&sent(&["a"])), stale(&["b"]));
        assert_eq!(staleness.next(&sent(&["a", "c"])), stale(&[]), "c is back");
        assert_eq!(staleness.next(&sent(&[])), stale(&["a", "c"]));
        assert_eq!(staleness.next(&sent(&[])), stale(&[]));
    }

    #[test]
    fn staleness_tells_series_apart_by_every_label() {
        let web = sample(&[("__name__", "m"), ("container_name", "web")], 1.0);
        let db = sample(&[("__name__", "m"), ("container_name", "db")], 1.0);
        let mut staleness = Staleness::default();
        staleness.next(&[web.clone(), db.clone(), web.clone()]);
        assert_eq!(staleness.next(&[db]), [web.labels]);
    }

    #[test]
    fn take_all_returns_every_set_sent_last_and_forgets_them() {
        let a = sample(&[("__name__", "a")], 1.0);
        let b = sample(&[("__name__", "b")], 1.0);
        let mut staleness = Staleness::default();
        assert!(staleness.take_all().is_empty());
        staleness.next(&[b.clone(), a.clone()]);
        assert_eq!(staleness.take_all(), [a.labels.clone(), b.labels.clone()]);
        assert!(staleness.take_all().is_empty());
        assert!(staleness.next(&[a]).is_empty(), "nothing left to mark");
    }

    // compress

    #[test]
    fn snappy_block_decompresses_to_the_input() {
        let samples: Vec<Sample> = (0..300)
            .map(|i| sample(&[("__name__", "m"), ("id", &i.to_string())], i as f64))
            .collect();
        let body = encode(&samples, &[], 1_760_000_000_000);
        let compressed = compress(&body);
        assert!(compressed.len() < body.len());
        let mut decoder = snap::raw::Decoder::new();
        assert_eq!(decoder.decompress_vec(&compressed).unwrap(), body);
        // A block, not the framed format: the first bytes are the varint of the length.
        assert_eq!(snap::raw::decompress_len(&compressed).unwrap(), body.len());
        assert_eq!(decoder.decompress_vec(&compress(&[])).unwrap(), b"");
    }
}
