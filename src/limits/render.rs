//! How a key's limits are told to a client: the rate-limit headers each dialect's SDKs and
//! tools read, in their own formats (OpenAI durations like `6m0s`, Anthropic RFC 3339 times).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::dialect::{Format, ResetText};

/// One bucket's state as a client is told it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level {
    /// The per-minute limit.
    pub limit: u64,
    /// Whole units left now.
    pub remaining: u64,
    /// Until the bucket is full again.
    pub reset: Duration,
}

/// The levels of a key's two rate buckets (None: that limit is not set).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Levels {
    /// Requests per minute.
    pub requests: Option<Level>,
    /// Tokens per minute.
    pub tokens: Option<Level>,
}

/// A response header the gateway writes: a fixed name and a rendered value.
pub type Header = (&'static str, String);

/// Is `name` a provider rate-limit header (replaced by the key's own for a limited key)?
pub fn is_rate_limit_header(name: &str) -> bool {
    name.starts_with("x-ratelimit-") || name.starts_with("anthropic-ratelimit-")
}

/// Append the headers for `levels` in `format`'s names; `now` dates Anthropic's resets.
pub fn level_headers(format: Format, levels: &Levels, now: SystemTime, out: &mut Vec<Header>) {
    let style = format.rate_limits();
    for (level, [limit, remaining, reset]) in
        [levels.requests, levels.tokens].iter().zip(&style.names)
    {
        let Some(level) = level else { continue };
        out.push((limit, level.limit.to_string()));
        out.push((remaining, level.remaining.to_string()));
        let when = match style.reset {
            ResetText::Rfc3339 => rfc3339(now + level.reset),
            ResetText::Duration => openai_duration(level.reset),
        };
        out.push((reset, when));
    }
}

/// `retry-after` in whole seconds, rounded up (at least 1: 0 would invite an instant retry
/// that is refused again), and `retry-after-ms`, which the OpenAI and Anthropic SDKs prefer.
pub fn retry_headers(wait: Duration, out: &mut Vec<Header>) {
    let ms = wait.as_nanos().div_ceil(1_000_000).max(1);
    out.push(("retry-after", ms.div_ceil(1000).to_string()));
    out.push(("retry-after-ms", ms.to_string()));
}

/// OpenAI's reset format (Go's duration text), rounded up to the millisecond: `20ms`, `1s`,
/// `1.5s`, `6m0s`, `1h0m0s`.
pub fn openai_duration(d: Duration) -> String {
    let ms = u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
    let mut s = String::with_capacity(12);
    if ms == 0 {
        s.push_str("0s");
        return s;
    }
    if ms < 1000 {
        let _ = write!(s, "{ms}ms");
        return s;
    }
    let (h, m, sec, frac) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    if h > 0 {
        let _ = write!(s, "{h}h");
    }
    if h > 0 || m > 0 {
        let _ = write!(s, "{m}m");
    }
    let _ = write!(s, "{sec}");
    if frac > 0 {
        let digits = format!("{frac:03}");
        let _ = write!(s, ".{}", digits.trim_end_matches('0'));
    }
    s.push('s');
    s
}

/// `t` as RFC 3339 UTC, rounded up to the second (`2025-01-15T14:24:00Z`).
pub fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() + u64::from(since.subsec_nanos() > 0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, mo, d) = crate::calendar::civil_from_days(i64::try_from(days).unwrap_or(i64::MAX));
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_durations_read_as_openai_writes_them() {
        let ms = Duration::from_millis;
        for (d, text) in [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(1), "1ms"),
            (ms(20), "20ms"),
            (ms(999), "999ms"),
            (ms(1000), "1s"),
            (ms(1500), "1.5s"),
            (ms(59_966), "59.966s"),
            (ms(360_000), "6m0s"),
            (ms(361_250), "6m1.25s"),
            (ms(3_600_000), "1h0m0s"),
            (ms(86_400_000 + 61_000), "24h1m1s"),
        ] {
            assert_eq!(openai_duration(d), text, "{d:?}");
        }
    }

    #[test]
    fn rfc3339_dates_match_known_days() {
        let at = |s: u64| rfc3339(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_736_951_040), "2025-01-15T14:24:00Z");
        assert_eq!(at(4_107_542_399), "2100-02-28T23:59:59Z");
        assert_eq!(at(4_107_542_400), "2100-03-01T00:00:00Z");
        // Rounded up: a reset half a second away is the next whole second.
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_millis(1_736_951_039_500)),
            "2025-01-15T14:24:00Z"
        );
        // Every day for 1000 years round-trips through a naive day counter.
        let mut days = 0u64;
        for year in 1970..2970u64 {
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            let lengths = [
                31,
                28 + u64::from(leap),
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            for (m, len) in lengths.iter().enumerate() {
                for d in 1..=*len {
                    let (y, mo, dd) = crate::calendar::civil_from_days(days as i64);
                    assert_eq!(
                        (y as u64, u64::from(mo), u64::from(dd)),
                        (year, m as u64 + 1, d)
                    );
                    days += 1;
                }
            }
        }
    }

    #[test]
    fn headers_per_dialect() {
        let levels = Levels {
            requests: Some(Level {
                limit: 10,
                remaining: 0,
                reset: Duration::from_millis(5_500),
            }),
            tokens: None,
        };
        let now = UNIX_EPOCH + Duration::from_secs(1_736_951_040);
        let mut out = Vec::new();
        level_headers(Format::OpenAi, &levels, now, &mut out);
        retry_headers(Duration::from_millis(5_500), &mut out);
        let text: Vec<(&str, &str)> = out.iter().map(|(n, v)| (*n, v.as_str())).collect();
        assert_eq!(
            text,
            [
                ("x-ratelimit-limit-requests", "10"),
                ("x-ratelimit-remaining-requests", "0"),
                ("x-ratelimit-reset-requests", "5.5s"),
                ("retry-after", "6"),
                ("retry-after-ms", "5500"),
            ]
        );
        out.clear();
        let levels = Levels {
            requests: None,
            tokens: levels.requests,
        };
        level_headers(Format::Anthropic, &levels, now, &mut out);
        assert_eq!(
            out[2],
            (
                "anthropic-ratelimit-tokens-reset",
                "2025-01-15T14:24:06Z".to_owned()
            )
        );
        assert!(out.iter().all(|(n, _)| is_rate_limit_header(n)));
        out.clear();
        retry_headers(Duration::ZERO, &mut out);
        assert_eq!(out[0].1, "1");
    }
}
