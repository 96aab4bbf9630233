//! W3C Trace Context (`traceparent`, `tracestate`): parsed where a request enters, written where
//! an attempt leaves. Pure: ids are passed in. An invalid `traceparent` is as good as none (the
//! request starts a new trace); an invalid `tracestate` is dropped and the parent kept.

/// Length of a version-00 `traceparent`: `00-` + 32 + `-` + 16 + `-` + 2.
pub const TRACEPARENT_BYTES: usize = 55;
/// Longest `tracestate` carried on (the spec asks vendors to keep at least 512 characters).
pub const MAX_TRACESTATE_BYTES: usize = 512;
/// Most `tracestate` list members (the spec's limit).
pub const MAX_TRACESTATE_MEMBERS: usize = 32;
/// The `sampled` trace flag.
pub const FLAG_SAMPLED: u8 = 0x01;

/// An incoming span context: the caller's trace and span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub flags: u8,
    /// The caller's `tracestate`, when it was valid.
    pub state: Option<Box<str>>,
}

impl Parent {
    /// Did the caller record its span (and so ask its children to)?
    pub fn sampled(&self) -> bool {
        self.flags & FLAG_SAMPLED != 0
    }
}

/// Read `traceparent` (and `tracestate`, kept only beside a valid parent). None: absent or
/// invalid, so the request is a new root.
pub fn parse(traceparent: Option<&[u8]>, tracestate: Option<&[u8]>) -> Option<Parent> {
    let tp = traceparent?;
    // Future versions may append fields after a dash; version 00 is exactly 55 bytes.
    let version = hex_byte(tp.get(0..2)?)?;
    if version == 0xff
        || (version == 0 && tp.len() != TRACEPARENT_BYTES)
        || (version != 0 && tp.len() > TRACEPARENT_BYTES && tp.get(55) != Some(&b'-'))
        || tp.len() < TRACEPARENT_BYTES
    {
        return None;
    }
    if tp.get(2) != Some(&b'-') || tp.get(35) != Some(&b'-') || tp.get(52) != Some(&b'-') {
        return None;
    }
    let mut trace_id = [0u8; 16];
    hex_into(tp.get(3..35)?, &mut trace_id)?;
    let mut span_id = [0u8; 8];
    hex_into(tp.get(36..52)?, &mut span_id)?;
    let flags = hex_byte(tp.get(53..55)?)?;
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    Some(Parent {
        trace_id,
        span_id,
        flags,
        state: tracestate.and_then(valid_tracestate),
    })
}

/// A `tracestate` worth carrying: bounded, printable ASCII, at most
/// [`MAX_TRACESTATE_MEMBERS`] members each holding a `key=value`.
fn valid_tracestate(v: &[u8]) -> Option<Box<str>> {
    if v.is_empty() || v.len() > MAX_TRACESTATE_BYTES {
        return None;
    }
    if !v.iter().all(|&b| (0x20..=0x7e).contains(&b)) {
        return None;
    }
    let s = std::str::from_utf8(v).ok()?;
    let mut members = 0;
    for m in s.split(',') {
        let m = m.trim_matches([' ', '\t']);
        if m.is_empty() {
            continue;
        }
        members += 1;
        let (key, value) = m.split_once('=')?;
        if key.is_empty() || value.is_empty() || key.contains(' ') {
            return None;
        }
    }
    (members > 0 && members <= MAX_TRACESTATE_MEMBERS).then(|| s.into())
}

/// `00-{trace}-{span}-{flags}`, the header the provider gets.
pub fn format(trace_id: &[u8; 16], span_id: &[u8; 8], flags: u8) -> [u8; TRACEPARENT_BYTES] {
    let mut out = [b'-'; TRACEPARENT_BYTES];
    out[0] = b'0';
    out[1] = b'0';
    put_hex(&mut out[3..35], trace_id);
    put_hex(&mut out[36..52], span_id);
    put_hex(&mut out[53..55], &[flags]);
    out
}

/// Lowercase hex of `bytes` into `out` (twice their length).
pub fn put_hex(out: &mut [u8], bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
}

/// Lowercase hex only: the spec refuses uppercase.
fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn hex_byte(two: &[u8]) -> Option<u8> {
    match two {
        [hi, lo] => Some(nibble(*hi)? << 4 | nibble(*lo)?),
        _ => None,
    }
}

fn hex_into(hex: &[u8], out: &mut [u8]) -> Option<()> {
    if hex.len() != out.len() * 2 {
        return None;
    }
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *o = hex_byte(pair)?;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_is_read_and_written_back_the_same() {
        let p = parse(Some(GOOD), Some(b"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")).unwrap();
        assert!(p.sampled());
        assert_eq!(
            p.state.as_deref(),
            Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
        );
        assert_eq!(&format(&p.trace_id, &p.span_id, p.flags)[..], GOOD);
        let unsampled = parse(
            Some(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
            None,
        )
        .unwrap();
        assert!(!unsampled.sampled());
    }

    #[test]
    fn invalid_traceparents_start_a_new_trace() {
        for bad in [
            &b""[..],
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        ] {
            assert_eq!(
                parse(Some(bad), None),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // A later version may add fields after a dash.
        let future = b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what";
        assert!(parse(Some(future), None).is_some());
    }

    #[test]
    fn a_bad_tracestate_is_dropped_and_the_parent_kept() {
        let long = "k=".to_owned() + &"v".repeat(MAX_TRACESTATE_BYTES);
        let many = (0..=MAX_TRACESTATE_MEMBERS)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        for bad in [
            &b"a=b\r\nx: y"[..],
            long.as_bytes(),
            many.as_bytes(),
            b"novalue",
            b"=v",
            b"\xff=1",
        ] {
            let p = parse(Some(GOOD), Some(bad)).unwrap();
            assert_eq!(p.state, None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
