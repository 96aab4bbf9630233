//! CPU time and memory of a process from /proc: utime+stime from `/proc/PID/stat`, VmHWM and
//! VmRSS from `/proc/PID/status`, and the clock tick rate from our own auxiliary vector.

use std::time::Duration;

/// `AT_CLKTCK` in the auxiliary vector: the unit of utime/stime.
const AT_CLKTCK: u64 = 17;
/// Tick rate assumed when the auxiliary vector cannot be read (Linux's USER_HZ everywhere).
pub const DEFAULT_CLK_TCK: u64 = 100;

/// utime+stime in clock ticks, from the text of `/proc/PID/stat`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // The command name is in parentheses and may hold spaces or ')' itself: the fields we
    // want are counted from the last ')'. After it come state (field 3) ... utime (14), stime (15).
    let after = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = after.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// A `kB` line (like `VmHWM:     1234 kB`) from the text of `/proc/PID/status`, in KiB.
pub fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_ascii_whitespace().next()?.parse().ok()
    })
}

/// `AT_CLKTCK` from the bytes of `/proc/self/auxv` (native-endian u64 pairs).
pub fn parse_auxv_clk_tck(auxv: &[u8]) -> Option<u64> {
    auxv.chunks_exact(16).find_map(|pair| {
        let key = u64::from_ne_bytes(pair.get(..8)?.try_into().ok()?);
        let val = u64::from_ne_bytes(pair.get(8..)?.try_into().ok()?);
        (key == AT_CLKTCK && val > 0).then_some(val)
    })
}

/// Clock ticks per second for /proc CPU times.
pub fn clk_tck() -> u64 {
    std::fs::read("/proc/self/auxv")
        .ok()
        .and_then(|b| parse_auxv_clk_tck(&b))
        .unwrap_or(DEFAULT_CLK_TCK)
}

/// CPU time (user + system) a process has used so far; `None` if it is gone or unreadable.
pub fn cpu_time(pid: u32, ticks_per_sec: u64) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = parse_stat_ticks(&text)?;
    let per = ticks_per_sec.max(1);
    Some(
        Duration::from_secs(ticks / per)
            + Duration::from_nanos((ticks % per) * 1_000_000_000 / per),
    )
}

/// Peak (VmHWM) and current (VmRSS) resident memory in KiB.
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some((
        parse_status_kib(&text, "VmHWM")?,
        parse_status_kib(&text, "VmRSS")?,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_odd_comm() {
        let stat =
            "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 3 0 100 1000 50";
        assert_eq!(parse_stat_ticks(stat), Some(325));
        assert_eq!(parse_stat_ticks("1 (x) S 1 2"), None);
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn status_lines() {
        let status = "Name:\tringway\nVmPeak:\t  99 kB\nVmHWM:\t   12345 kB\nVmRSS:\t    6789 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(12345));
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(6789));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn auxv_pairs() {
        let mut auxv = Vec::new();
        for (k, v) in [(6u64, 4096u64), (AT_CLKTCK, 250), (0, 0)] {
            auxv.extend_from_slice(&k.to_ne_bytes());
            auxv.extend_from_slice(&v.to_ne_bytes());
        }
        assert_eq!(parse_auxv_clk_tck(&auxv), Some(250));
        assert_eq!(parse_auxv_clk_tck(&auxv[..16]), None);
    }

    #[test]
    fn own_process_is_readable() {
        let pid = std::process::id();
        assert!(cpu_time(pid, clk_tck()).is_some());
        let (hwm, rss) = memory_kib(pid).unwrap();
        assert!(hwm >= rss && rss > 0);
    }
}
