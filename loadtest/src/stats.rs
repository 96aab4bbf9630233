//! Measurements: HDR histograms (microseconds) for total latency, time to first token,
//! inter-token gap and open-loop start delay; errors counted by kind; merging across threads
//! and phases; percentile summaries and the target-vs-compare arithmetic.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Largest value a histogram tracks, in microseconds (one hour); larger values saturate.
pub const MAX_TRACKABLE_US: u64 = 3_600_000_000;
/// Significant decimal digits kept by every histogram (0.1% value resolution).
pub const SIGFIGS: u8 = 3;

/// The percentiles every summary reports, with their display labels.
pub const PERCENTILES: [(&str, f64); 4] =
    [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9)];

/// Why a request did not count as a success.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// TCP connect failed.
    Connect,
    /// Writing the request failed.
    Write,
    /// Reading the response failed.
    Read,
    /// The connection closed before a complete response.
    Closed,
    /// No complete response within `--timeout`.
    Timeout,
    /// The response did not parse as HTTP/1.1.
    BadResponse,
    /// A complete response with a non-2xx status.
    Status(u16),
    /// A streaming request answered without `text/event-stream`.
    NotSse,
    /// An error event inside the stream.
    StreamError,
    /// The stream ended without its final event.
    Truncated,
    /// A stream that finished without any content event.
    NoTokens,
    /// Bytes after the response that nobody asked for.
    ExtraBytes,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Status(s) => write!(f, "status_{s}"),
            other => f.write_str(match other {
                ErrorKind::Connect => "connect",
                ErrorKind::Write => "write",
                ErrorKind::Read => "read",
                ErrorKind::Closed => "closed",
                ErrorKind::Timeout => "timeout",
                ErrorKind::BadResponse => "bad_response",
                ErrorKind::NotSse => "not_sse",
                ErrorKind::StreamError => "stream_error",
                ErrorKind::Truncated => "truncated",
                ErrorKind::NoTokens => "no_tokens",
                ErrorKind::ExtraBytes => "extra_bytes",
                ErrorKind::Status(_) => "status",
            }),
        }
    }
}

/// A histogram could not be created or merged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatsError;

impl fmt::Display for StatsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("histogram setup or merge failed")
    }
}

fn histogram() -> Result<Histogram<u64>, StatsError> {
    Histogram::new_with_bounds(1, MAX_TRACKABLE_US, SIGFIGS).map_err(|_| StatsError)
}

/// Microseconds, saturating at [`MAX_TRACKABLE_US`].
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).map_or(MAX_TRACKABLE_US, |v| v.min(MAX_TRACKABLE_US))
}

/// Everything measured for one target in one thread or merged over many.
#[derive(Clone, Debug)]
pub struct Stats {
    /// Completion minus (intended) start of each successful request.
    pub latency: Histogram<u64>,
    /// Start to first content event, successful streams only.
    pub ttft: Histogram<u64>,
    /// Gaps between consecutive content events (0 for events that arrived in one read).
    pub itl: Histogram<u64>,
    /// Open loop: actual send minus intended send (0 when sent early). Large values mean
    /// requests queued for a connection or the generator fell behind.
    pub start_delay: Histogram<u64>,
    /// Successful requests.
    pub ok: u64,
    /// Failed requests by kind.
    pub errors: BTreeMap<ErrorKind, u64>,
}

impl Stats {
    /// Empty measurements.
    pub fn new() -> Result<Stats, StatsError> {
        Ok(Stats {
            latency: histogram()?,
            ttft: histogram()?,
            itl: histogram()?,
            start_delay: histogram()?,
            ok: 0,
            errors: BTreeMap::new(),
        })
    }

    /// Count a failure.
    pub fn error(&mut self, kind: ErrorKind) {
        *self.errors.entry(kind).or_insert(0) += 1;
    }

    /// Failures of every kind.
    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Add another set of measurements into this one.
    pub fn merge(&mut self, other: &Stats) -> Result<(), StatsError> {
        self.latency.add(&other.latency).map_err(|_| StatsError)?;
        self.ttft.add(&other.ttft).map_err(|_| StatsError)?;
        self.itl.add(&other.itl).map_err(|_| StatsError)?;
        self.start_delay
            .add(&other.start_delay)
            .map_err(|_| StatsError)?;
        self.ok += other.ok;
        for (k, v) in &other.errors {
            *self.errors.entry(*k).or_insert(0) += v;
        }
        Ok(())
    }
}

/// A percentile summary in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Recorded values.
    pub count: u64,
    /// p50, p90, p99, p99.9 in the order of [`PERCENTILES`].
    pub pct: [f64; 4],
    /// Largest value.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Summarise a histogram; `None` when it is empty.
pub fn summarize(h: &Histogram<u64>) -> Option<Summary> {
    if h.is_empty() {
        return None;
    }
    let at = |p: f64| ms(h.value_at_percentile(p));
    Some(Summary {
        count: h.len(),
        pct: PERCENTILES.map(|(_, p)| at(p)),
        max: ms(h.max()),
        mean: h.mean() / 1000.0,
    })
}

/// Target minus compare at each percentile and at the max: the latency the target adds.
/// Signed, because a noisy run can make the difference negative and hiding that would lie.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Added {
    /// Differences at p50, p90, p99, p99.9, in the order of [`PERCENTILES`].
    pub pct: [f64; 4],
    /// Difference of the maxima.
    pub max: f64,
}

/// The latency `target` adds over `compare`.
pub fn added(target: &Summary, compare: &Summary) -> Added {
    let mut pct = [0.0; 4];
    for (out, (t, c)) in pct
        .iter_mut()
        .zip(target.pct.iter().zip(compare.pct.iter()))
    {
        *out = t - c;
    }
    Added {
        pct,
        max: target.max - compare.max,
    }
}

/// `a / b`, or `None` when `b` is not positive.
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

/// Points of the percentile curve for plotting: percentiles spaced evenly on the
/// `log10(1 / (1 - p))` axis from 0 to 99.99, `steps_per_decade` points per nine.
pub fn curve(h: &Histogram<u64>, steps_per_decade: u32) -> Vec<(f64, f64)> {
    if h.is_empty() || steps_per_decade == 0 {
        return Vec::new();
    }
    let total = 4 * steps_per_decade;
    (0..=total)
        .map(|i| {
            let nines = f64::from(i) / f64::from(steps_per_decade);
            let p = 100.0 * (1.0 - 10f64.powf(-nines));
            (p, ms(h.value_at_percentile(p)))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn filled(values: impl IntoIterator<Item = u64>) -> Histogram<u64> {
        let mut h = histogram().unwrap();
        for v in values {
            h.record(v).unwrap();
        }
        h
    }

    /// Within the histogram's 0.1% resolution (plus one unit for tiny values).
    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= b.abs() * 0.002 + 0.001
    }

    #[test]
    fn summary_matches_sorted_reference() {
        // 1..=10000 µs: the p-th percentile is p% of 10 ms.
        let h = filled(1..=10_000);
        let s = summarize(&h).unwrap();
        assert_eq!(s.count, 10_000);
        for ((_, p), got) in PERCENTILES.iter().zip(s.pct) {
            let want = (p / 100.0 * 10_000.0).ceil() / 1000.0;
            assert!(close(got, want), "p{p}: {got} vs {want}");
        }
        assert!(close(s.max, 10.0));
        assert!(close(s.mean, 5.0005));
        assert!(summarize(&histogram().unwrap()).is_none());
    }

    #[test]
    fn added_and_ratio() {
        let target = summarize(&filled((1..=1000).map(|v| v + 200))).unwrap();
        let compare = summarize(&filled(1..=1000)).unwrap();
        let a = added(&target, &compare);
        for d in a.pct {
            assert!(close(d, 0.2), "{d}");
        }
        assert!(close(a.max, 0.2));
        // Negative differences stay negative.
        let b = added(&compare, &target);
        assert!(b.pct.iter().all(|d| *d < 0.0));
        assert_eq!(ratio(50.0, 100.0), Some(0.5));
        assert_eq!(ratio(1.0, 0.0), None);
    }

    #[test]
    fn merge_adds_everything() {
        let mut a = Stats::new().unwrap();
        let mut b = Stats::new().unwrap();
        a.latency.record(100).unwrap();
        b.latency.record(300).unwrap();
        a.ok = 1;
        b.ok = 2;
        a.error(ErrorKind::Timeout);
        b.error(ErrorKind::Timeout);
        b.error(ErrorKind::Status(502));
        a.merge(&b).unwrap();
        assert_eq!(a.ok, 3);
        assert_eq!(a.latency.len(), 2);
        assert_eq!(a.error_total(), 3);
        assert_eq!(a.errors.get(&ErrorKind::Timeout), Some(&2));
        assert_eq!(ErrorKind::Status(502).to_string(), "status_502");
    }

    #[test]
    fn curve_is_monotonic_and_spans() {
        let h = filled(1..=100_000);
        let c = curve(&h, 5);
        assert_eq!(c.len(), 21);
        assert_eq!(c.first().unwrap().0, 0.0);
        assert!((c.last().unwrap().0 - 99.99).abs() < 1e-9);
        assert!(c.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
    }

    #[test]
    fn micros_saturates() {
        assert_eq!(micros(Duration::from_millis(2)), 2000);
        assert_eq!(micros(Duration::from_secs(1 << 40)), MAX_TRACKABLE_US);
    }
}
