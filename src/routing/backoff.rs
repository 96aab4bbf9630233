//! Retry timing: exponential backoff with full jitter, and the provider's own
//! `retry-after-ms` / `retry-after` hint read from its response head.

use std::time::Duration;

use super::balance::Rng;

/// The wait before same-target retry number `retry` (0 for the first): uniform in
/// `[0, min(max, base × 2^retry)]` ("full jitter": retries of many clients spread out).
pub fn backoff(retry: u32, base: Duration, max: Duration, rng: &mut Rng) -> Duration {
    let ceiling = base
        .checked_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX))
        .unwrap_or(max)
        .min(max);
    let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rng.below(ms.saturating_add(1)))
}

/// Longest retry hint read from a header (a larger one is treated as this, then capped).
const MAX_HINT: Duration = Duration::from_secs(24 * 3600);

/// The provider's retry hint: `retry-after-ms` (milliseconds, as OpenAI sends), else
/// `retry-after` in seconds. An HTTP-date or unreadable value is no hint.
pub fn retry_after(retry_after_ms: Option<&[u8]>, retry_after: Option<&[u8]>) -> Option<Duration> {
    let number = |v: &[u8]| -> Option<f64> {
        let s = std::str::from_utf8(v).ok()?.trim();
        let x: f64 = s.parse().ok()?;
        (x.is_finite() && x >= 0.0).then_some(x)
    };
    let secs = retry_after_ms
        .and_then(number)
        .map(|ms| ms / 1000.0)
        .or_else(|| retry_after.and_then(number))?;
    Some(Duration::from_secs_f64(secs.min(MAX_HINT.as_secs_f64())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_within_its_bounds() {
        let mut rng = Rng::new(5);
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        for retry in 0..40 {
            let ceiling = (base * 2u32.saturating_pow(retry.min(20))).min(max);
            let mut seen_high = false;
            for _ in 0..200 {
                let d = backoff(retry, base, max, &mut rng);
                assert!(d <= ceiling, "retry {retry}: {d:?} > {ceiling:?}");
                seen_high |= d >= ceiling / 2;
            }
            // Full jitter spreads over the whole range, not just near zero.
            assert!(seen_high, "retry {retry}");
        }
        assert_eq!(backoff(3, Duration::ZERO, max, &mut rng), Duration::ZERO);
    }

    #[test]
    fn retry_hints() {
        assert_eq!(
            retry_after(Some(b"250"), Some(b"9")),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            retry_after(None, Some(b" 2 ")),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_after(None, Some(b"0.5")),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            retry_after(None, Some(b"Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
        assert_eq!(retry_after(Some(b"-1"), None), None);
        assert_eq!(
            retry_after(Some(b"nan"), Some(b"1")),
            Some(Duration::from_secs(1))
        );
        assert_eq!(retry_after(None, Some(b"1e99")), Some(MAX_HINT));
        assert_eq!(retry_after(None, None), None);
    }
}
