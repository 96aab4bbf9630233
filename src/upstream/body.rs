//! A request body on its way to a provider: whole, a client's body with one span replaced (the
//! model a route names), or a translated body with long spans of the client's between its own
//! bytes: kept as parts, so that an agent-size body reaches the socket without being copied.

use std::ops::Range;

use bytes::Bytes;

/// Parts no larger than this are copied beside their neighbours into one write; larger ones
/// are written as they are (one write each, no copy).
pub const SMALL_PART: usize = 16 * 1024;

/// The bytes of a request body, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutBody {
    parts: Parts,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Parts {
    Whole(Bytes),
    /// The bytes before the span, what replaces it, the bytes after it.
    Spliced([Bytes; 3]),
    /// A translation's own bytes and the client's spans it lent, in order; every seam at a
    /// quote of a JSON string or at the edge of a JSON value.
    Pieces(Vec<Bytes>),
}

impl OutBody {
    /// `body` with `body[span]` replaced by `value` written as a JSON string. None when `span`
    /// is reversed or runs past the end (a span paired with the wrong body).
    pub fn spliced_string(body: &Bytes, span: Range<usize>, value: &str) -> Option<Self> {
        if span.start > span.end || span.end > body.len() {
            return None;
        }
        let mut token = Vec::with_capacity(crate::json::escaped_len(value));
        crate::json::write_json_string(&mut token, value);
        Some(Self {
            parts: Parts::Spliced([
                body.slice(..span.start),
                Bytes::from(token),
                body.slice(span.end..),
            ]),
        })
    }

    /// `parts` in order (a translated body: see [`crate::translate::Shared::parts`]).
    pub fn pieces(mut parts: Vec<Bytes>) -> Self {
        Self {
            parts: match parts.len() {
                0 => Parts::Whole(Bytes::new()),
                1 => Parts::Whole(parts.swap_remove(0)),
                _ => Parts::Pieces(parts),
            },
        }
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.parts().iter().map(Bytes::len).sum()
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Its parts, in order (cheap clones of the client's buffer).
    pub fn parts(&self) -> &[Bytes] {
        match &self.parts {
            Parts::Whole(b) => std::slice::from_ref(b),
            Parts::Spliced(p) => p,
            Parts::Pieces(p) => p,
        }
    }

    /// The body in one buffer: as it is when whole, else one copy (for what must read it
    /// whole: a cloud's reshaping and signature, a later splice, traced content).
    pub fn to_bytes(&self) -> Bytes {
        match &self.parts {
            Parts::Whole(b) => b.clone(),
            Parts::Spliced(_) | Parts::Pieces(_) => {
                let mut out = Vec::with_capacity(self.len());
                for part in self.parts() {
                    out.extend_from_slice(part);
                }
                Bytes::from(out)
            }
        }
    }
}

impl From<Bytes> for OutBody {
    fn from(b: Bytes) -> Self {
        Self {
            parts: Parts::Whole(b),
        }
    }
}

impl From<Vec<u8>> for OutBody {
    fn from(b: Vec<u8>) -> Self {
        Self::from(Bytes::from(b))
    }
}

/// The writes that send `head` and then `body`: small parts ride in the write before them (the
/// first with the head), large ones go as they are. At most one more write than large parts.
pub fn writes(mut head: Vec<u8>, body: &OutBody) -> Vec<Write> {
    let mut out = Vec::with_capacity(4);
    for part in body.parts() {
        if part.len() <= SMALL_PART {
            head.extend_from_slice(part);
        } else {
            if !head.is_empty() {
                out.push(Write::Owned(std::mem::take(&mut head)));
            }
            out.push(Write::Shared(part.clone()));
        }
    }
    if !head.is_empty() {
        out.push(Write::Owned(head));
    }
    out
}

/// One write of a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Write {
    /// Bytes of the gateway's own (the head, small parts copied behind it).
    Owned(Vec<u8>),
    /// A large part of the client's body, as it was read.
    Shared(Bytes),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(writes: &[Write]) -> Vec<u8> {
        let mut out = Vec::new();
        for w in writes {
            match w {
                Write::Owned(v) => out.extend_from_slice(v),
                Write::Shared(b) => out.extend_from_slice(b),
            }
        }
        out
    }

    #[test]
    fn a_splice_is_the_copying_splice() {
        let body = Bytes::from_static(br#"{"model":"gpt","messages":[]}"#);
        let span = 9..14;
        let out = OutBody::spliced_string(&body, span.clone(), "mock \"x\"").unwrap();
        let reference = crate::json::splice_string(&body, span, "mock \"x\"").unwrap();
        assert_eq!(out.to_bytes(), reference);
        assert_eq!(out.len(), reference.len());
        let reversed = std::ops::Range { start: 5, end: 3 };
        assert!(OutBody::spliced_string(&body, reversed, "m").is_none());
        assert!(OutBody::spliced_string(&body, 5..99, "m").is_none());
    }

    /// `out`'s writes after `head`: `count` of them, the second the large part as it is, and
    /// every byte in order.
    fn check_writes(head: &[u8], out: &OutBody, count: usize) {
        let w = writes(head.to_vec(), out);
        assert_eq!(w.len(), count);
        assert!(matches!(w[1], Write::Shared(_)));
        let mut want = head.to_vec();
        want.extend_from_slice(&out.to_bytes());
        assert_eq!(joined(&w), want);
    }

    #[test]
    fn writes_carry_every_byte_in_order_and_copy_only_small_parts() {
        let big = |c: u8| Bytes::from(vec![c; SMALL_PART + 1]);
        let head = b"POST / HTTP/1.1\r\n\r\n".to_vec();
        // Model first (Anthropic clients): head, prefix and model in one write, then the rest.
        let mut body = br#"{"model":"m","x":""#.to_vec();
        body.extend_from_slice(&big(b'a'));
        body.extend_from_slice(b"\"}");
        let body = Bytes::from(body);
        let out = OutBody::spliced_string(&body, 9..12, "longer-model").unwrap();
        check_writes(&head, &out, 2);
        // Model last (the OpenAI SDKs): head, the large prefix as it is, model and tail.
        let mut body = br#"{"x":""#.to_vec();
        body.extend_from_slice(&big(b'b'));
        let at = body.len() + 11;
        body.extend_from_slice(br#"","model":"m"}"#);
        let body = Bytes::from(body);
        let out = OutBody::spliced_string(&body, at..at + 3, "n").unwrap();
        check_writes(&head, &out, 3);
        // A small whole body rides with the head.
        let w = writes(head.clone(), &OutBody::from(b"{}".to_vec()));
        assert_eq!(w, vec![Write::Owned(b"POST / HTTP/1.1\r\n\r\n{}".to_vec())]);
    }

    #[test]
    fn a_translated_body_in_any_pieces_is_written_whole() {
        let whole = b"{\"a\":\"x__rwts__y\",\"b\":[1,2]}";
        // Every way of cutting the body in three.
        for i in 0..whole.len() {
            for j in i..whole.len() {
                let parts = vec![
                    Bytes::copy_from_slice(&whole[..i]),
                    Bytes::copy_from_slice(&whole[i..j]),
                    Bytes::copy_from_slice(&whole[j..]),
                ];
                let out = OutBody::pieces(parts.clone());
                assert_eq!(out.to_bytes(), Bytes::from_static(whole));
                assert_eq!(out.len(), whole.len());
                let w = writes(b"H".to_vec(), &out);
                let mut want = b"H".to_vec();
                want.extend_from_slice(whole);
                assert_eq!(joined(&w), want);
            }
        }
        assert_eq!(OutBody::pieces(Vec::new()).len(), 0);
    }
}
