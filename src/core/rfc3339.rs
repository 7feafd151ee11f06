//! RFC 3339 times, as the endpoint writes them (`2025-02-27T05:22:49.186680233Z`), to and from
//! nanoseconds since the Unix epoch. Go's zero time (year 1) reads as "never".
//!
//! Out of scope: time zones beyond a fixed `±hh:mm` offset, leap-second tables.

/// Parses an RFC 3339 time (`2025-02-27T05:22:49.186680233Z`, any fraction length, `Z` or a
/// `±hh:mm` offset) into ns since the Unix epoch. Go's zero time (year 1) is `None`: it means
/// "never read".
pub fn parse(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if year <= 1 || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos: i128 = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        for (i, c) in frac.bytes().take(digits).enumerate() {
            if i < 9 {
                nanos = nanos * 10 + i128::from(c - b'0');
            }
        }
        for _ in digits..9 {
            nanos *= 10;
        }
        rest = &frac[digits..];
    }
    let offset_secs: i64 = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digit = |c: &u8| c.is_ascii_digit().then(|| i64::from(c - b'0'));
            let h = digit(h1)? * 10 + digit(h2)?;
            let m = digit(m1)? * 10 + digit(m2)?;
            let off = h * 3600 + m * 60;
            if *sign == b'+' { off } else { -off }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    Some(i128::from(secs) * 1_000_000_000 + nanos)
}

/// The inverse of [`parse`]: ns since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`,
/// the form the endpoint writes (for the simulator and the tests; Howard Hinnant's
/// `civil_from_days`).
pub fn format(nanos: i128) -> String {
    let secs = nanos.div_euclid(1_000_000_000) as i64;
    let frac = nanos.rem_euclid(1_000_000_000);
    let (days, tod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (tod / 3600, tod % 3600 / 60, tod % 60);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{frac:09}Z")
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_to_nanoseconds_since_epoch() {
        assert_eq!(parse("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse("2025-02-27T05:22:49.186680233Z"),
            Some(1_740_633_769_186_680_233)
        );
        // Seven fraction digits (Windows) and an offset.
        assert_eq!(
            parse("2021-10-29T10:25:20.5933849Z"),
            Some(1_635_503_120_593_384_900)
        );
        assert_eq!(parse("1970-01-01T01:00:00+01:00"), Some(0));
        // More than nine digits are cut, not rounded.
        assert_eq!(parse("1970-01-01T00:00:00.1234567899Z"), Some(123_456_789));
    }

    #[test]
    fn formatting_is_the_inverse_of_parsing() {
        assert_eq!(format(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            format(1_740_633_769_186_680_233),
            "2025-02-27T05:22:49.186680233Z"
        );
        assert_eq!(
            format(951_782_400_000_000_001),
            "2000-02-29T00:00:00.000000001Z"
        );
        for ns in [-1, 1, 1_635_503_120_593_384_900, 4_102_444_800_999_999_999] {
            assert_eq!(parse(&format(ns)), Some(ns), "{ns}");
        }
    }

    #[test]
    fn go_zero_time_and_garbage_are_not_timestamps() {
        assert_eq!(parse("0001-01-01T00:00:00Z"), None);
        for bad in [
            "",
            "2025",
            "2025-02-27 05:22:49",
            "2025-13-01T00:00:00Z",
            "2025-02-27T05:22:49.Z",
            "x025-02-27T05:22:49Z",
            "2025-02-27T05:22:49+0100",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
