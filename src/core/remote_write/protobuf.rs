//! The protobuf wire format of a Remote-Write 1.0 `prometheus.WriteRequest`, written by hand:
//! the four messages of prompb's `remote.proto` and `types.proto` that this exporter sends.
//!
//! ```text
//! WriteRequest { repeated TimeSeries timeseries = 1; }
//! TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
//! Label        { string name = 1; string value = 2; }
//! Sample       { double value = 1; int64 timestamp = 2; }
//! ```
//!
//! Every length is computed from the label strings before anything is written, so the request is
//! one exact-size allocation and no message is built apart and copied. A sample's value and
//! timestamp are always written, even when they are proto3's default 0: the sample has one shape,
//! and a `-0.0` stays `-0.0`.
//!
//! Out of scope: `WriteRequest.metadata` (field 3), exemplars and histograms (never sent), and
//! reading protobuf (the tests carry a small decoder of their own).

/// Field tags, `field number << 3 | wire type` (0 varint, 1 fixed 64 bits, 2 length-delimited).
const WRITE_REQUEST_TIMESERIES: u8 = 1 << 3 | 2;
const TIMESERIES_LABELS: u8 = 1 << 3 | 2;
const TIMESERIES_SAMPLES: u8 = 2 << 3 | 2;
const LABEL_NAME: u8 = 1 << 3 | 2;
const LABEL_VALUE: u8 = 2 << 3 | 2;
const SAMPLE_VALUE: u8 = 1 << 3 | 1;
const SAMPLE_TIMESTAMP: u8 = 2 << 3;

/// A `WriteRequest` of one `TimeSeries` per item, in order: its labels as given, and one sample
/// of that value at `time_ms`. The iterator is walked twice: once to size the request, once to
/// write it.
pub(super) fn write_request<'a, I>(series: I, time_ms: i64) -> Vec<u8>
where
    I: Iterator<Item = (&'a [(String, String)], f64)> + Clone,
{
    let sample_len = sample_len(time_ms);
    let total: usize = series
        .clone()
        .map(|(labels, _)| field_len(timeseries_len(labels, sample_len)))
        .sum();
    let mut out = Vec::with_capacity(total);
    for (labels, value) in series {
        out.push(WRITE_REQUEST_TIMESERIES);
        varint(&mut out, timeseries_len(labels, sample_len) as u64);
        for (name, value) in labels {
            out.push(TIMESERIES_LABELS);
            varint(&mut out, label_len(name, value) as u64);
            string(&mut out, LABEL_NAME, name);
            string(&mut out, LABEL_VALUE, value);
        }
        out.push(TIMESERIES_SAMPLES);
        varint(&mut out, sample_len as u64);
        out.push(SAMPLE_VALUE);
        out.extend_from_slice(&value.to_le_bytes());
        out.push(SAMPLE_TIMESTAMP);
        // An int64 varint is its two's complement: a negative one takes all ten bytes.
        varint(&mut out, time_ms as u64);
    }
    debug_assert_eq!(out.len(), total, "sized as written");
    out
}

/// Bytes of a `TimeSeries` body: its labels, then its one sample.
fn timeseries_len(labels: &[(String, String)], sample_len: usize) -> usize {
    let labels: usize = labels
        .iter()
        .map(|(name, value)| field_len(label_len(name, value)))
        .sum();
    labels + field_len(sample_len)
}

/// Bytes of a `Label` body.
fn label_len(name: &str, value: &str) -> usize {
    field_len(name.len()) + field_len(value.len())
}

/// Bytes of a `Sample` body: tag and 8 bytes of double, tag and varint of timestamp.
fn sample_len(time_ms: i64) -> usize {
    1 + 8 + 1 + varint_len(time_ms as u64)
}

/// Bytes of a length-delimited field whose body is `len` bytes: tag, length, body.
fn field_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

fn string(out: &mut Vec<u8>, tag: u8, s: &str) {
    out.push(tag);
    varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Base-128 varint: 7 bits a byte, least significant first, the high bit set on all but the last.
fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bytes of `v` as a varint: one per started 7 bits, at least one.
fn varint_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint_bytes(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        varint(&mut out, v);
        out
    }

    #[test]
    fn varints_are_little_endian_groups_of_seven_bits() {
        assert_eq!(varint_bytes(0), [0x00]);
        assert_eq!(varint_bytes(1), [0x01]);
        assert_eq!(varint_bytes(127), [0x7f]);
        assert_eq!(varint_bytes(128), [0x80, 0x01]);
        assert_eq!(varint_bytes(300), [0xac, 0x02]);
        assert_eq!(varint_bytes(1000), [0xe8, 0x07]);
    }

    #[test]
    fn a_negative_int64_is_a_ten_byte_varint() {
        let mut minus_one = vec![0xff; 9];
        minus_one.push(0x01);
        assert_eq!(varint_bytes(-1i64 as u64), minus_one);
        assert_eq!(varint_bytes(i64::MIN as u64).len(), 10);
        assert_eq!(sample_len(-1), 20);
    }

    #[test]
    fn varint_len_is_the_length_varint_writes() {
        let mut edges = vec![0, u64::MAX, -1i64 as u64, i64::MAX as u64];
        for bits in 1..64 {
            edges.extend([(1u64 << bits) - 1, 1u64 << bits, (1u64 << bits) + 1]);
        }
        for v in edges {
            assert_eq!(varint_len(v), varint_bytes(v).len(), "{v}");
        }
    }
}
