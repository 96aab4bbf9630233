//! JSON string escaping (RFC 8259) and splicing a string value into a body by byte span.

use std::ops::Range;

use bytes::Bytes;

/// How each byte is written inside a JSON string: `0` means as is, `b'u'` means as `\u00XX`,
/// and any other value means as a backslash followed by that byte.
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Lowercase hex digits for `\u00XX` escapes.
const HEX: &[u8; 16] = b"0123456789abcdef";

/// The number of bytes [`write_json_string`] writes for `s`, quotes included.
pub fn escaped_len(s: &str) -> usize {
    s.bytes().fold(2, |n, b| {
        n + match ESCAPE[usize::from(b)] {
            0 => 1,
            b'u' => 6,
            _ => 2,
        }
    })
}

/// Appends `s` to `out` as a quoted JSON string. `"`, `\` and control characters are escaped,
/// and everything else, non-ASCII included, is copied as UTF-8.
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    out.reserve(escaped_len(s));
    out.push(b'"');
    write_json_escaped(out, s);
    out.push(b'"');
}

/// Appends `s` to `out` escaped as the inside of a JSON string, without the quotes: for text
/// that arrives in pieces (a `fmt::Write` adapter writes each piece through this).
pub fn write_json_escaped(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    // Copy the runs between escapes in one go. Model names rarely need any escape.
    let mut run_start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc = ESCAPE[usize::from(b)];
        if esc == 0 {
            continue;
        }
        out.extend_from_slice(bytes.get(run_start..i).unwrap_or_default());
        match esc {
            b'u' => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0x0f)],
            ]),
            _ => out.extend_from_slice(&[b'\\', esc]),
        }
        run_start = i + 1;
    }
    out.extend_from_slice(bytes.get(run_start..).unwrap_or_default());
}

/// Returns `body` with `body[span]` replaced by `new_value`, written as a JSON string. It makes
/// one allocation of exactly the right size.
///
/// `span` should be [`RequestInfo::model_span`](super::RequestInfo::model_span) from the same
/// body. Returns `None` if `span` is reversed or runs past the end of `body`. That can only
/// happen if the caller pairs a span with the wrong body.
pub fn splice_string(body: &[u8], span: Range<usize>, new_value: &str) -> Option<Bytes> {
    if span.start > span.end {
        return None;
    }
    let head = body.get(..span.start)?;
    let tail = body.get(span.end..)?;
    let mut out = Vec::with_capacity(head.len() + escaped_len(new_value) + tail.len());
    out.extend_from_slice(head);
    write_json_string(&mut out, new_value);
    out.extend_from_slice(tail);
    Some(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        write_json_string(&mut out, s);
        out
    }

    #[test]
    fn escapes_quotes_backslashes_and_controls() {
        assert_eq!(esc("plain"), br#""plain""#);
        assert_eq!(esc(r#"a"b\c"#), br#""a\"b\\c""#);
        assert_eq!(esc("\n\r\t\u{8}\u{c}"), br#""\n\r\t\b\f""#);
        assert_eq!(esc("\u{0}\u{1f}\u{7f}"), b"\"\\u0000\\u001f\x7f\"");
        assert_eq!(esc("模型/😀"), "\"模型/😀\"".as_bytes());
        assert_eq!(esc(""), b"\"\"");
    }

    #[test]
    fn escaped_len_matches_output_for_every_byte() {
        let all: String = (0u32..0x300).filter_map(char::from_u32).collect();
        for c in all.chars() {
            let s = format!("x{c}y");
            assert_eq!(escaped_len(&s), esc(&s).len(), "{c:?}");
        }
        assert_eq!(escaped_len(&all), esc(&all).len());
    }

    #[test]
    fn every_char_round_trips_through_serde_json() {
        let all: String = (0u32..0x800)
            .chain([0xfffd, 0x1f600, 0x10ffff])
            .filter_map(char::from_u32)
            .collect();
        let back: String = serde_json::from_slice(&esc(&all)).unwrap();
        assert_eq!(back, all);
    }

    #[test]
    fn splice_replaces_exactly_the_span() {
        let body = br#"{"model":"fast","x":1}"#;
        let out = splice_string(body, 9..15, "gpt-4o \"mini\"").unwrap();
        assert_eq!(&out[..], br#"{"model":"gpt-4o \"mini\"","x":1}"#);
        assert_eq!(out.len(), body.len() - 6 + escaped_len("gpt-4o \"mini\""));
    }

    #[test]
    fn splice_rejects_bad_spans() {
        let body = b"{}";
        assert!(splice_string(body, 1..3, "m").is_none());
        assert!(splice_string(body, 3..3, "m").is_none());
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = 2..1;
        assert!(splice_string(body, reversed, "m").is_none());
        assert_eq!(&splice_string(body, 2..2, "m").unwrap()[..], b"{}\"m\"");
    }
}
