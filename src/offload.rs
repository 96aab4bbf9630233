//! What the off-worker writer threads (the access log, the custody store) share: the drop
//! counter a worker bumps when a writer's bounded channel is full (with a warning at most once
//! per [`WARN_EVERY`]), the flush handshake the main thread uses at exit, and UTC time as
//! RFC 3339 text and back (no time-zone database: the records and lines are all UTC).

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Fewest seconds between two "dropped" warnings of one writer.
pub const WARN_EVERY: Duration = Duration::from_secs(10);
/// How long a writer sleeps after a batch smaller than its largest before it looks again.
/// While it sleeps, a worker's hand-over wakes no thread (only a receiver parked on the
/// channel is woken), so under load a worker pays a queue push per message, not a thread wake
/// (with a wake per line, the access log cost a one-worker gateway 13 µs per request, more
/// than the request itself: oha, 32 connections). An idle writer parks and the first message
/// wakes it at once; a channel of 16k lines holds 1.6M lines a second at this pace.
pub const GATHER: Duration = Duration::from_millis(10);
/// How long [`flush`] sleeps between two offers to a full channel.
const FLUSH_RETRY: Duration = Duration::from_millis(1);
/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// Items a writer's full channel refused, and when that was last said in the log.
#[derive(Debug, Default)]
pub struct Drops {
    dropped: AtomicU64,
    /// Unix second of the last warning (0: none yet).
    last_warn: AtomicU64,
}

impl Drops {
    /// No drops yet (for statics).
    pub const fn new() -> Drops {
        Drops {
            dropped: AtomicU64::new(0),
            last_warn: AtomicU64::new(0),
        }
    }

    /// Count one dropped item; warn (`{n} {what} dropped so far`) unless a warning was given in
    /// the last [`WARN_EVERY`]. Lock-free: called on workers.
    pub fn count(&self, what: &str) {
        let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        let now = unix_secs(SystemTime::now());
        let last = self.last_warn.load(Ordering::Relaxed);
        if now >= last.saturating_add(WARN_EVERY.as_secs())
            && self
                .last_warn
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            crate::log::warn(format_args!("{what}: {n} dropped so far"));
        }
    }

    /// Items dropped so far.
    pub fn total(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Has a warning been given?
    pub fn warned(&self) -> bool {
        self.last_warn.load(Ordering::Relaxed) > 0
    }
}

/// Hand `make(ack)` to a writer and wait (at most `timeout`) for its acknowledgement: the
/// writer acks once everything queued before the message is written. For the process's last
/// moments (a blocking wait), never for a worker. False when the time ran out or the writer is
/// gone.
pub fn flush<M>(
    tx: &SyncSender<M>,
    timeout: Duration,
    make: impl FnOnce(std::sync::mpsc::Sender<()>) -> M,
) -> bool {
    let deadline = Instant::now() + timeout;
    let (ack, done) = std::sync::mpsc::channel();
    let mut msg = make(ack);
    loop {
        match tx.try_send(msg) {
            Ok(()) => break,
            Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                msg = m;
                std::thread::sleep(FLUSH_RETRY);
            }
            Err(_) => return false,
        }
    }
    done.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .is_ok()
}

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

/// An answer that can say its helper thread is gone (what a [`Pending`] gives when the reply
/// channel closes without an answer).
pub trait Gone {
    /// The answer for a thread that went away without replying.
    fn gone() -> Self;
}

/// A lookup on its way to a helper thread (the custody reader, the responses store): poll
/// [`Pending::try_take`] (never blocks). Dropping it tells the thread nobody waits any more,
/// so a lookup given up on is not run.
pub struct Pending<A> {
    answer: std::sync::mpsc::Receiver<A>,
    abandoned: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl<A: Gone> Pending<A> {
    /// A lookup and what its thread needs: where to reply, and the flag it reads to skip
    /// a lookup nobody waits for.
    pub fn new() -> (
        Pending<A>,
        std::sync::mpsc::Sender<A>,
        std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) {
        let (reply, answer) = std::sync::mpsc::channel();
        let abandoned = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        (
            Pending {
                answer,
                abandoned: abandoned.clone(),
            },
            reply,
            abandoned,
        )
    }

    /// An answer known without asking.
    pub fn ready(answer: A) -> Pending<A> {
        let (pending, reply, _) = Pending::new();
        let _ = reply.send(answer);
        pending
    }

    /// The answer if it has come; [`Gone::gone`] when the thread is gone.
    pub fn try_take(&self) -> Option<A> {
        match self.answer.try_recv() {
            Ok(a) => Some(a),
            Err(std::sync::mpsc::TryRecvError::Empty) => None,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => Some(A::gone()),
        }
    }
}

impl<A> Drop for Pending<A> {
    fn drop(&mut self) {
        self.abandoned
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

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

    #[test]
    fn drops_count_and_warn_once_per_period() {
        let d = Drops::new();
        assert!(!d.warned());
        for _ in 0..3 {
            d.count("test writer");
        }
        assert_eq!(d.total(), 3);
        assert!(d.warned());
    }
}
