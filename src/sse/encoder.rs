//! The SSE encoder for frames the gateway builds itself.

use memchr::memchr2;

/// Appends one frame: `event: X\ndata: ...\n\n`, or `data: ...\n\n` without a type.
///
/// `data` should be one line (compact JSON). Line breaks in it are not trusted: each line
/// goes out as its own `data:` line, so a decoder gets `data` back (CRLF/CR read as LF) and
/// no frame can be injected. The event name is cut at its first line break for the same
/// reason.
pub fn write_event(out: &mut Vec<u8>, event: Option<&str>, data: &[u8]) {
    if let Some(name) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(first_line(name.as_bytes()));
        out.push(b'\n');
    }
    let mut rest = data;
    loop {
        out.extend_from_slice(b"data: ");
        let Some(i) = memchr2(b'\n', b'\r', rest) else {
            out.extend_from_slice(rest);
            out.extend_from_slice(b"\n\n");
            return;
        };
        out.extend_from_slice(rest.get(..i).unwrap_or_default());
        out.push(b'\n');
        let crlf = rest.get(i) == Some(&b'\r') && rest.get(i + 1) == Some(&b'\n');
        rest = rest.get(i + 1 + usize::from(crlf)..).unwrap_or_default();
    }
}

/// Appends a comment block `:text\n\n` (a keep-alive); `text` is cut at its first line break.
pub fn write_comment(out: &mut Vec<u8>, text: &[u8]) {
    out.push(b':');
    out.extend_from_slice(first_line(text));
    out.extend_from_slice(b"\n\n");
}

fn first_line(text: &[u8]) -> &[u8] {
    match memchr2(b'\n', b'\r', text) {
        Some(i) => text.get(..i).unwrap_or_default(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::{Decoder, Event, MAX_EVENT_BYTES};
    use bytes::Bytes;

    fn decode_all(wire: &[u8]) -> Vec<Event> {
        let mut dec = Decoder::new(MAX_EVENT_BYTES);
        dec.push(Bytes::copy_from_slice(wire));
        let events = std::iter::from_fn(|| dec.next_event().unwrap()).collect();
        assert!(!dec.has_partial());
        events
    }

    #[test]
    fn frames_have_the_provider_shape() {
        let mut out = Vec::new();
        write_event(
            &mut out,
            Some("message_stop"),
            b"{\"type\":\"message_stop\"}",
        );
        write_event(&mut out, None, b"[DONE]");
        assert_eq!(
            out,
            b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\ndata: [DONE]\n\n"
        );
        let events = decode_all(&out);
        assert_eq!(events[0].event_type(), b"message_stop");
        assert!(events[1].is_done());
    }

    #[test]
    fn data_round_trips_through_the_decoder() {
        let cases: [&[u8]; 7] = [b"", b" lead", b"a\nb", b"a\n", b"\n", b"x\r\ny\rz", b":c"];
        let want: [&[u8]; 7] = [b"", b" lead", b"a\nb", b"a\n", b"\n", b"x\ny\nz", b":c"];
        for (data, want) in cases.iter().zip(want) {
            let mut out = Vec::new();
            write_event(&mut out, Some("e"), data);
            let events = decode_all(&out);
            assert_eq!(events.len(), 1, "{data:?} framed as {out:?}");
            assert_eq!(events[0].data.as_deref(), Some(want));
            assert_eq!(events[0].raw.as_ref(), out.as_slice());
        }
    }

    #[test]
    fn line_breaks_cannot_inject_frames() {
        let mut out = Vec::new();
        write_event(&mut out, Some("a\n\ndata: evil"), b"x\n\nevent: evil");
        let events = decode_all(&out);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event_type(), b"a");
        write_comment(&mut out, b"ping\n\ndata: evil");
        let events = decode_all(&out);
        assert_eq!(events.len(), 2);
        assert!(events[1].is_comment_only());
        assert_eq!(events[1].raw, Bytes::from_static(b":ping\n\n"));
    }
}
