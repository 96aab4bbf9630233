//! Optional per-request log (`--request-log FILE`): one tab-separated line per measured request
//! of the main target, written as it finishes, so a long run can be correlated afterwards with
//! what else happened at that time (a fault switched on, a gateway log line). Off by default;
//! when off, nothing here runs.
//!
//! Columns: `start_ms end_ms latency_ms ttft_ms outcome status request_id provider attempts`.
//! - `start_ms`, `end_ms`: wall-clock Unix milliseconds; the start is the request's latency
//!   base (its intended send time when it went out late, as in the histograms);
//! - `latency_ms`: end minus start; `ttft_ms`: start to first content event, or `-`;
//! - `outcome`: `ok`, or the error kind as in the report (`timeout`, `status_503`, …);
//! - `status`: the response head's status, `0` when no head arrived;
//! - `request_id`, `provider`, `attempts`: the `x-ringway-request-id`, `x-ringway-provider`
//!   and `x-ringway-attempts` response headers, `-` when absent (or when the head was split
//!   across reads, which loopback heads practically never are).

use std::fmt;
use std::fs::File;
use std::io::{LineWriter, Write as _};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Response headers copied into the log, in column order.
pub const LOGGED_HEADERS: [&str; 3] = [
    "x-ringway-request-id",
    "x-ringway-provider",
    "x-ringway-attempts",
];

/// Longest header value kept.
const MAX_VALUE: usize = 128;

/// The open log.
pub struct RequestLog {
    out: Mutex<LineWriter<File>>,
    /// The same moment on both clocks, to turn an `Instant` into wall time.
    anchor: (Instant, SystemTime),
}

impl fmt::Debug for RequestLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RequestLog")
    }
}

/// What the head of one response said, for the log.
#[derive(Clone, Debug, Default)]
pub struct HeadNote {
    /// Status, 0 until a head arrived.
    pub status: u16,
    /// Values of [`LOGGED_HEADERS`], in order.
    pub values: [Option<String>; 3],
}

impl HeadNote {
    /// Forget the last response.
    pub fn clear(&mut self) {
        self.status = 0;
        self.values = Default::default();
    }

    /// Pick the logged headers out of raw head bytes (status line included).
    pub fn read_head(&mut self, status: u16, head: &[u8]) {
        self.status = status;
        for line in head.split(|b| *b == b'\n').skip(1) {
            let Some(colon) = line.iter().position(|b| *b == b':') else {
                continue;
            };
            let (name, value) = line.split_at(colon);
            for (slot, want) in self.values.iter_mut().zip(LOGGED_HEADERS) {
                if name.eq_ignore_ascii_case(want.as_bytes()) {
                    let v = String::from_utf8_lossy(value.get(1..).unwrap_or(&[]));
                    let v: String = v
                        .trim()
                        .chars()
                        .filter(|c| !c.is_control() && !c.is_whitespace())
                        .take(MAX_VALUE)
                        .collect();
                    *slot = Some(v);
                }
            }
        }
    }
}

/// One finished request.
#[derive(Debug)]
pub struct Entry<'a> {
    /// Latency base.
    pub start: Instant,
    /// When it finished (or failed).
    pub end: Instant,
    /// First content event.
    pub first_token: Option<Instant>,
    /// `ok` or the error kind.
    pub outcome: &'a str,
    /// What the head said, if it came.
    pub head: Option<&'a HeadNote>,
}

impl RequestLog {
    /// Create (truncate) `path` and write the header line.
    pub fn create(path: &str) -> std::io::Result<RequestLog> {
        let mut out = LineWriter::new(File::create(path)?);
        writeln!(
            out,
            "# start_ms\tend_ms\tlatency_ms\tttft_ms\toutcome\tstatus\trequest_id\tprovider\tattempts"
        )?;
        Ok(RequestLog {
            out: Mutex::new(out),
            anchor: (Instant::now(), SystemTime::now()),
        })
    }

    fn unix_ms(&self, t: Instant) -> f64 {
        let (i0, w0) = self.anchor;
        let wall = match t.checked_duration_since(i0) {
            Some(d) => w0 + d,
            None => w0 - i0.saturating_duration_since(t),
        };
        wall.duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs_f64()
            * 1000.0
    }

    /// Append one line. A failed write is ignored: the log must not change the measurement.
    pub fn write(&self, e: &Entry<'_>) {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let ttft = e.first_token.map_or("-".to_owned(), |t| {
            format!("{:.3}", ms(t.saturating_duration_since(e.start)))
        });
        let dash = |v: Option<&String>| v.map_or("-".to_owned(), Clone::clone);
        let (status, values) = match e.head {
            Some(h) => (h.status, h.values.clone()),
            None => (0, Default::default()),
        };
        let [id, provider, attempts] = values;
        let line = format!(
            "{:.0}\t{:.0}\t{:.3}\t{ttft}\t{}\t{status}\t{}\t{}\t{}\n",
            self.unix_ms(e.start),
            self.unix_ms(e.end),
            ms(e.end.saturating_duration_since(e.start)),
            e.outcome,
            dash(id.as_ref()),
            dash(provider.as_ref()),
            dash(attempts.as_ref()),
        );
        if let Ok(mut out) = self.out.lock() {
            let _ = out.write_all(line.as_bytes());
        }
    }

    /// Write out anything buffered.
    pub fn flush(&self) {
        if let Ok(mut out) = self.out.lock() {
            let _ = out.flush();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn picks_logged_headers() {
        let mut n = HeadNote::default();
        n.read_head(
            200,
            b"HTTP/1.1 200 OK\r\nX-Ringway-Request-Id: rw-1-00-02\r\ncontent-length: 2\r\nx-ringway-provider:  mA \r\nx-ringway-attempts: 3\r\n\r\n",
        );
        assert_eq!(n.status, 200);
        assert_eq!(n.values[0].as_deref(), Some("rw-1-00-02"));
        assert_eq!(n.values[1].as_deref(), Some("mA"));
        assert_eq!(n.values[2].as_deref(), Some("3"));
        n.clear();
        assert_eq!(n.status, 0);
        assert!(n.values.iter().all(Option::is_none));
    }

    #[test]
    fn writes_lines() {
        let dir = std::env::temp_dir().join(format!("reqlog-{}", std::process::id()));
        let path = dir.to_string_lossy().into_owned();
        let log = RequestLog::create(&path).unwrap();
        let t = Instant::now();
        log.write(&Entry {
            start: t,
            end: t + Duration::from_millis(5),
            first_token: None,
            outcome: "timeout",
            head: None,
        });
        log.flush();
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let line = text.lines().nth(1).unwrap();
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 9);
        assert_eq!(cols[2], "5.000");
        assert_eq!(&cols[3..], ["-", "timeout", "0", "-", "-", "-"]);
    }
}
