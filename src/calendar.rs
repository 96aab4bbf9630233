//! Dates without a date crate: Unix time as UTC days of the proleptic Gregorian calendar, as
//! RFC 3339 text and back (no time-zone database: records, log lines and headers are all UTC).
//! Pure arithmetic on a given instant; the callers read the clock.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// Seconds since the Unix epoch (0 before it).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Milliseconds since the Unix epoch (0 before it).
pub fn unix_millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `t` as RFC 3339 UTC with milliseconds (`2026-11-23T00:30:33.123Z`).
pub fn rfc3339_millis(out: &mut Vec<u8>, t: SystemTime) {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    );
}

/// The UTC day (`YYYY-MM-DD`) of a Unix millisecond.
pub fn day_of(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(DAY_MS));
    format!("{y:04}-{m:02}-{d:02}")
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (the calendar's 400-year
/// cycle starts on 0000-03-01, so leap days fall at the end of each cycle's year).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The day count since 1970-01-01 of a proleptic Gregorian date (the inverse of
/// [`civil_from_days`]); None for a month or day out of range.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> Option<i64> {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day == 0 || day > month_days {
        return None;
    }
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// A date as a client writes it in a query: RFC 3339 (`2026-11-23T10:00:00Z`,
/// `2026-11-23T10:00:00.5+01:00`) or a bare UTC day (`2026-11-23`, its midnight). Returns
/// the Unix millisecond and whether it was a bare day.
pub fn parse_instant(s: &str) -> Option<(i64, bool)> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(r)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let days = days_from_civil(i64::from(num(0..4)?), num(5..7)?, num(8..10)?)?;
    let midnight = days * DAY_MS;
    if b.len() == 10 {
        return Some((midnight, true));
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) || b.get(13) != Some(&b':') {
        return None;
    }
    let (h, mi) = (num(11..13)?, num(14..16)?);
    if b.get(16) != Some(&b':') {
        return None;
    }
    let sec = num(17..19)?;
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac_ms = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        // Milliseconds: the first three digits, padded.
        for k in 0..3 {
            let d = b
                .get(start + k)
                .filter(|_| start + k < i)
                .map_or(0, |d| d - b'0');
            frac_ms = frac_ms * 10 + i64::from(d);
        }
    }
    let offset_ms = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), ..] => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if b.get(i + 3) != Some(&b':') || b.len() != i + 6 || oh > 23 || om > 59 {
                return None;
            }
            let off = (i64::from(oh) * 60 + i64::from(om)) * 60_000;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    let within = (i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(sec)) * 1000 + frac_ms;
    Some((midnight + within - offset_ms, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, ms: u64) -> String {
        let mut out = Vec::new();
        rfc3339_millis(
            &mut out,
            UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(ms),
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 7), "2000-02-29T00:00:00.007Z");
        assert_eq!(at(1_709_251_199, 999), "2024-02-29T23:59:59.999Z");
        assert_eq!(at(4_102_444_800, 0), "2100-01-01T00:00:00.000Z");
        assert_eq!(at(1_795_000_000, 250), "2026-11-18T11:06:40.250Z");
    }

    #[test]
    fn days_round_trip() {
        for days in (-800_000..800_000).step_by(37) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), Some(days), "{y}-{m}-{d}");
        }
        assert_eq!(days_from_civil(2023, 2, 29), None);
        assert_eq!(days_from_civil(2024, 13, 1), None);
        assert_eq!(day_of(1_795_000_000_250), "2026-11-18");
        assert_eq!(day_of(-1), "1969-12-31");
    }

    #[test]
    fn instants_parse_as_written_and_refuse_the_rest() {
        let ms = 1_795_000_000_250;
        assert_eq!(parse_instant("2026-11-18T11:06:40.250Z"), Some((ms, false)));
        assert_eq!(
            parse_instant("2026-11-18T12:06:40.25+01:00"),
            Some((ms, false))
        );
        assert_eq!(
            parse_instant("2026-11-18T10:06:40.250999-01:00"),
            Some((ms, false))
        );
        assert_eq!(
            parse_instant("2026-11-18"),
            Some((1_795_000_000_000 - 40_000_000, true))
        );
        for bad in [
            "",
            "2026-11-18T",
            "2026-11-31",
            "2026-11-18T25:00:00Z",
            "2026-11-18T11:06:40",
            "2026-11-18T11:06:40.Z",
            "2026-11-18T11:06:40+0100",
            "2026-11-18T11:06:40Zjunk",
            "26-11-18",
            "2026-1a-18",
            "२०२६-11-18",
        ] {
            assert_eq!(parse_instant(bad), None, "{bad}");
        }
    }
}
