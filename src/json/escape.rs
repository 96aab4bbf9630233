//! JSON string escaping (RFC 8259) and its undoing, and splicing a string value into a body
//! by byte span.

use std::ops::Range;

use bytes::Bytes;

use super::mask::{block_mask, BLOCK};

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

/// Where the first byte escaping must rewrite (`"`, `\` or a control character) is in `b`,
/// sixteen bytes at a time: None when `b`, between quotes, is a JSON string as it stands.
pub fn first_to_escape(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(block) = b
        .get(i..i + BLOCK)
        .and_then(|x| <&[u8; BLOCK]>::try_from(x).ok())
    {
        let mask = block_mask(block);
        if mask != 0 {
            return Some(i + mask.trailing_zeros() as usize);
        }
        i += BLOCK;
    }
    let tail = b.get(i..).unwrap_or_default();
    let k = tail.iter().position(|&c| ESCAPE[usize::from(c)] != 0)?;
    Some(i + k)
}

/// Appends `s` to `out` as a quoted JSON string. `"`, `\` and control characters are escaped,
/// and everything else, non-ASCII included, is copied as UTF-8 (serde_json's choices, so
/// what it and this write for a string are the same bytes).
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    write_json_escaped(out, s);
    out.push(b'"');
}

/// Appends `s` to `out` escaped as the inside of a JSON string, without the quotes: for text
/// that arrives in pieces (a `fmt::Write` adapter writes each piece through this).
///
/// Sixteen bytes are looked at, and copied, at a time: agent bodies are mostly long strings
/// (files, tool output) with an escape every few dozen bytes, where a byte-at-a-time table
/// walk spent ~8 instructions a byte, and copying each run between escapes on its own cost a
/// `memcpy` call per run (callgrind).
pub fn write_json_escaped(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.reserve(b.len() + BLOCK);
    let mut i = 0;
    while let Some(block) = b
        .get(i..i + BLOCK)
        .and_then(|x| <&[u8; BLOCK]>::try_from(x).ok())
    {
        let mask = block_mask(block);
        if mask == 0 {
            out.extend_from_slice(block);
            i += BLOCK;
            continue;
        }
        // Copy the block whole (a fixed-size copy is one store), keep what precedes the
        // first special byte, and go on after it.
        let k = mask.trailing_zeros() as usize;
        let len = out.len();
        out.extend_from_slice(block);
        out.truncate(len + k);
        push_escape(out, block[k]);
        i += k + 1;
    }
    let tail = b.get(i..).unwrap_or_default();
    let mut run = 0;
    for (k, &c) in tail.iter().enumerate() {
        if ESCAPE[usize::from(c)] != 0 {
            out.extend_from_slice(tail.get(run..k).unwrap_or_default());
            push_escape(out, c);
            run = k + 1;
        }
    }
    out.extend_from_slice(tail.get(run..).unwrap_or_default());
}

/// The byte each one-letter escape (`\\n`, `\\"`, …) stands for, by its letter; `0` for any
/// other letter.
static UNESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table[b'/' as usize] = b'/';
    table[b'b' as usize] = 0x08;
    table[b'f' as usize] = 0x0c;
    table[b'n' as usize] = b'\n';
    table[b'r' as usize] = b'\r';
    table[b't' as usize] = b'\t';
    table
};

/// The decoded text of a string's inside. None for a malformed escape, a lone surrogate
/// (serde_json refuses both), a quote no backslash escapes or a control character (the inside
/// of no string token).
///
/// Sixteen bytes are looked at, and copied, at a time, as in [`write_json_escaped`]: agents'
/// files have an escape every ~17 bytes, and a search and a copy call per run between them
/// cost ~9 instructions a byte (callgrind, a 300 KB body's strings decoded for PII).
pub(super) fn unescape(inner: &str) -> Option<String> {
    let b = inner.as_bytes();
    // Decoding only shortens (an escape of two to twelve bytes stands for one to four), so
    // the text fits with room for one block copied past its end: written by index, with no
    // capacity check per write.
    let mut out = vec![0u8; b.len() + BLOCK];
    let (mut i, mut o) = (0, 0);
    loop {
        // The next quote, backslash or control character, the bytes before it copied.
        let at = match b
            .get(i..i + BLOCK)
            .and_then(|x| <&[u8; BLOCK]>::try_from(x).ok())
        {
            Some(block) => {
                let mask = block_mask(block);
                out.get_mut(o..o + BLOCK)?.copy_from_slice(block);
                if mask == 0 {
                    i += BLOCK;
                    o += BLOCK;
                    continue;
                }
                let k = mask.trailing_zeros() as usize;
                o += k;
                i + k
            }
            None => {
                let tail = b.get(i..)?;
                let k = tail.iter().position(|&c| ESCAPE[usize::from(c)] != 0);
                let run = tail.get(..k.unwrap_or(tail.len()))?;
                out.get_mut(o..o + run.len())?.copy_from_slice(run);
                o += run.len();
                match k {
                    Some(k) => i + k,
                    None => break,
                }
            }
        };
        if b.get(at) != Some(&b'\\') {
            return None;
        }
        let letter = *b.get(at + 1)?;
        let byte = UNESCAPE[usize::from(letter)];
        if byte != 0 {
            *out.get_mut(o)? = byte;
            o += 1;
            i = at + 2;
            continue;
        }
        if letter != b'u' {
            return None;
        }
        let unit = hex4(b.get(at + 2..at + 6)?)?;
        let (c, len) = match unit {
            0xD800..=0xDBFF => {
                if b.get(at + 6..at + 8)? != b"\\u" {
                    return None;
                }
                let low = hex4(b.get(at + 8..at + 12)?)?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return None;
                }
                let c = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                (char::from_u32(c)?, 12)
            }
            0xDC00..=0xDFFF => return None,
            _ => (char::from_u32(unit)?, 6),
        };
        let utf8 = c.encode_utf8(&mut [0; 4]).len();
        c.encode_utf8(out.get_mut(o..o + utf8)?);
        o += utf8;
        i = at + len;
    }
    out.truncate(o);
    // Checked with the vector validator (std's check of a String cost ~0.8 instructions a
    // byte, more than the decoding); then taken as it is.
    simdutf8::basic::from_utf8(&out).ok()?;
    #[expect(unsafe_code, reason = "a UTF-8 check done by simdutf8, not twice")]
    // SAFETY: simdutf8 has just checked that `out` is UTF-8, and it is not changed after.
    Some(unsafe { String::from_utf8_unchecked(out) })
}

/// The value of four hex digits.
fn hex4(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |v, &d| {
        let n = char::from(d).to_digit(16)?;
        Some(v * 16 + n)
    })
}

/// Appends the escape of a byte that needs one (a control character, `"` or `\\`).
#[inline]
fn push_escape(out: &mut Vec<u8>, c: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match ESCAPE[usize::from(c)] {
        b'u' => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(c >> 4)],
            HEX[usize::from(c & 0x0f)],
        ]),
        e => out.extend_from_slice(&[b'\\', e]),
    }
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

    /// Insides dense in escapes (good, bad and cut short), quotes, control characters and
    /// multi-byte characters, across block edges: decoded exactly as serde_json decodes the
    /// string they make, and refused exactly where it refuses.
    #[test]
    fn unescape_is_serde_json_on_every_inside() {
        const PIECES: &[&str] = &[
            "a",
            "plain text ",
            "é",
            "😀",
            "\\n",
            "\\\"",
            "\\\\",
            "\\/",
            "\\t",
            "\\u00e9",
            "\\u0041",
            "\\uD83D\\uDE00",
            "\\ud800",
            "\\udc00",
            "\\uD83D\\u0041",
            "\\u12",
            "\\x",
            "\\",
            "\"",
            "\u{1}",
            "\u{1f}",
            "\u{7f}",
            "0123456789abcdef",
        ];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let (mut decoded, mut refused) = (0, 0);
        for _ in 0..40_000 {
            let mut inner = String::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for k in 0..(x % 24) {
                inner.push_str(PIECES[((x >> (k * 2)) as usize ^ k as usize) % PIECES.len()]);
            }
            let want = serde_json::from_str::<String>(&format!("\"{inner}\"")).ok();
            assert_eq!(unescape(&inner), want, "{inner:?}");
            if want.is_some() {
                decoded += 1;
            } else {
                refused += 1;
            }
        }
        assert!(decoded > 3_000 && refused > 3_000, "{decoded} {refused}");
    }

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

    /// The block escaper against serde_json's, the reference: every length around the block
    /// edges, specials in every lane, multi-byte characters across block boundaries.
    #[test]
    fn escapes_as_serde_json_does() {
        let alphabet = [
            'a', '"', '\\', '\n', '\u{1}', '\u{1f}', ' ', '\u{7f}', 'é', '😀', '/',
        ];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut checked = 0;
        for len in 0..80 {
            for _ in 0..40 {
                let s: String = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        // Mostly plain, so runs of every length occur.
                        if x.is_multiple_of(3) {
                            alphabet[(x >> 8) as usize % alphabet.len()]
                        } else {
                            'a'
                        }
                    })
                    .collect();
                let want = serde_json::to_string(&s).unwrap();
                assert_eq!(esc(&s), want.as_bytes(), "{s:?}");
                assert_eq!(escaped_len(&s), want.len(), "{s:?}");
                checked += 1;
            }
        }
        assert_eq!(checked, 80 * 40);
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
