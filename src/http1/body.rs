//! Body framing decoder: Content-Length and chunked transfer coding as an explicit state
//! machine that accepts its input split at any byte.
//!
//! Data is handed out zero-copy (`split_to().freeze()` of the caller's buffer). Everything
//! between data (chunk-size lines, CRLFs, trailers) is consumed byte by byte so no partial
//! line ever needs buffering of its own. Framing is strict: bare LF, a CR not followed by
//! LF, or junk after chunk data is an error, never a guess.

use std::fmt;

use bytes::{Buf, Bytes, BytesMut};

use super::write::is_tchar;
use super::{Framing, MAX_CHUNK_LINE_BYTES, MAX_TRAILER_BYTES};

/// One step of body decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyEvent {
    /// The next piece of body, never empty.
    Data(Bytes),
    /// The buffer holds no further progress; read more and call again.
    NeedMore,
    /// The body is complete; the buffer now starts at whatever follows it.
    End,
}

/// Why a body's framing was rejected. The connection cannot be reused after any of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Chunk size missing, not hex, or overflowing u64.
    BadChunkSize,
    /// Chunk-size line longer than [`MAX_CHUNK_LINE_BYTES`].
    ChunkLineTooLong,
    /// Trailer section longer than [`MAX_TRAILER_BYTES`].
    TrailerTooLarge,
    /// Any other framing violation (bare LF, missing CRLF after data, bad trailer line).
    Malformed(&'static str),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::BadChunkSize => f.write_str("invalid chunk size"),
            BodyError::ChunkLineTooLong => f.write_str("chunk-size line too long"),
            BodyError::TrailerTooLarge => f.write_str("trailer section too large"),
            BodyError::Malformed(what) => write!(f, "malformed chunked body: {what}"),
        }
    }
}

impl std::error::Error for BodyError {}

/// Position inside a chunk-size line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SizePhase {
    /// Reading hex digits (`digits` says whether any were seen).
    Digits,
    /// Whitespace after the digits (BWS before `;`).
    AfterDigits,
    /// Inside chunk extensions: accepted and ignored.
    Ext,
    /// Saw CR, need LF.
    Lf,
}

/// Position inside the trailer section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TrailerPhase {
    /// At the start of a line: CR begins the final blank line, a token byte a field name.
    LineStart,
    /// Inside a field name.
    Name,
    /// After the colon.
    Value,
    /// Saw CR ending a field line, need LF.
    FieldLf,
    /// Saw CR of the final blank line, need LF.
    EndLf,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Length {
        remaining: u64,
    },
    SizeLine {
        size: u64,
        digits: bool,
        phase: SizePhase,
        line_len: usize,
    },
    Data {
        remaining: u64,
    },
    /// After chunk data: need CR (`cr == false`) then LF.
    DataCrlf {
        cr: bool,
    },
    Trailer {
        phase: TrailerPhase,
        total: usize,
    },
    Done,
    /// Sticky: every later call returns the same error.
    Failed(BodyError),
}

/// Incremental decoder for one message body.
#[derive(Clone, Debug)]
pub struct BodyDecoder {
    state: State,
}

const SIZE_LINE_START: State = State::SizeLine {
    size: 0,
    digits: false,
    phase: SizePhase::Digits,
    line_len: 0,
};

impl BodyDecoder {
    /// Decoder for a body framed as `framing`; [`Framing::None`] ends immediately.
    pub fn new(framing: Framing) -> Self {
        let state = match framing {
            Framing::None | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length { remaining: n },
            Framing::Chunked => SIZE_LINE_START,
        };
        BodyDecoder { state }
    }

    /// Body bytes announced but not yet handed out: what is left of a Content-Length body or
    /// of the chunk being read. Lets a caller refuse a declared size beyond its limit at once
    /// instead of waiting for bytes that will be refused anyway.
    pub fn announced_remaining(&self) -> u64 {
        match self.state {
            State::Length { remaining } | State::Data { remaining } => remaining,
            _ => 0,
        }
    }

    /// Take the next piece of body from the front of `buf` (zero-copy). Chunk extensions are
    /// accepted and ignored; trailer fields are accepted and discarded. Bytes after the end
    /// of the body stay in `buf`. After an error the decoder keeps returning that error.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<BodyEvent, BodyError> {
        loop {
            match &mut self.state {
                State::Done => return Ok(BodyEvent::End),
                State::Failed(e) => return Err(e.clone()),
                State::Length { remaining } => {
                    if buf.is_empty() {
                        return Ok(BodyEvent::NeedMore);
                    }
                    let n = take_len(*remaining, buf.len());
                    *remaining -= n as u64;
                    if *remaining == 0 {
                        self.state = State::Done;
                    }
                    return Ok(BodyEvent::Data(buf.split_to(n).freeze()));
                }
                State::Data { remaining } => {
                    if buf.is_empty() {
                        return Ok(BodyEvent::NeedMore);
                    }
                    let n = take_len(*remaining, buf.len());
                    *remaining -= n as u64;
                    if *remaining == 0 {
                        self.state = State::DataCrlf { cr: false };
                    }
                    return Ok(BodyEvent::Data(buf.split_to(n).freeze()));
                }
                State::SizeLine { .. } | State::DataCrlf { .. } | State::Trailer { .. } => {
                    if let Some((used, next)) = self.common_framing(buf) {
                        buf.advance(used);
                        self.state = next;
                        continue;
                    }
                    let mut used = 0;
                    let mut outcome = Ok(());
                    for &b in buf.iter() {
                        if !self.in_framing_bytes() {
                            break;
                        }
                        used += 1;
                        outcome = self.step(b);
                        if outcome.is_err() {
                            break;
                        }
                    }
                    if let Err(e) = outcome {
                        self.state = State::Failed(e.clone());
                        return Err(e);
                    }
                    buf.advance(used);
                    if self.in_framing_bytes() {
                        return Ok(BodyEvent::NeedMore);
                    }
                }
            }
        }
    }

    /// The common case, whole in `buf`: a data chunk's CRLF and/or the next plain size line
    /// (`HEX CRLF`, no extension, not the last chunk), taken in one step instead of byte by
    /// byte. Anything else (a split line, an extension, the last chunk, an error) is left to
    /// the byte-wise states, which accept exactly what this does and more.
    fn common_framing(&self, buf: &[u8]) -> Option<(usize, State)> {
        let start = match self.state {
            State::DataCrlf { cr: false } => {
                if !buf.starts_with(b"\r\n") {
                    return None;
                }
                2
            }
            SIZE_LINE_START => 0,
            _ => return None,
        };
        let line = buf.get(start..).unwrap_or_default();
        // At most 15 digits: the size cannot overflow, and the line is far below the limit.
        let digits = line
            .iter()
            .take(16)
            .take_while(|b| hex_value(**b).is_some())
            .count();
        let size = line
            .get(..digits)
            .filter(|d| !d.is_empty() && d.len() <= 15)?
            .iter()
            .fold(0u64, |n, b| n * 16 + u64::from(hex_value(*b).unwrap_or(0)));
        match line.get(digits..digits + 2) {
            Some(b"\r\n") if size > 0 => {
                Some((start + digits + 2, State::Data { remaining: size }))
            }
            _ if start > 0 => Some((start, SIZE_LINE_START)),
            _ => None,
        }
    }

    /// Whether the whole body has been decoded.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    fn in_framing_bytes(&self) -> bool {
        matches!(
            self.state,
            State::SizeLine { .. } | State::DataCrlf { .. } | State::Trailer { .. }
        )
    }

    /// Advance the byte-wise states by one input byte.
    fn step(&mut self, b: u8) -> Result<(), BodyError> {
        match &mut self.state {
            State::SizeLine {
                size,
                digits,
                phase,
                line_len,
            } => {
                if *phase != SizePhase::Lf {
                    *line_len += 1;
                    if *line_len > MAX_CHUNK_LINE_BYTES && b != b'\r' {
                        return Err(BodyError::ChunkLineTooLong);
                    }
                }
                match (*phase, b) {
                    (SizePhase::Lf, b'\n') => {
                        self.state = if *size == 0 {
                            State::Trailer {
                                phase: TrailerPhase::LineStart,
                                total: 0,
                            }
                        } else {
                            State::Data { remaining: *size }
                        };
                    }
                    (SizePhase::Lf, _) => return Err(BodyError::Malformed("CR without LF")),
                    (_, b'\n') => return Err(BodyError::Malformed("bare LF in chunk-size line")),
                    (SizePhase::Digits, _) if hex_value(b).is_some() => {
                        let d = u64::from(hex_value(b).unwrap_or(0));
                        *size = size
                            .checked_mul(16)
                            .and_then(|s| s.checked_add(d))
                            .ok_or(BodyError::BadChunkSize)?;
                        *digits = true;
                    }
                    (SizePhase::Digits, _) if !*digits => return Err(BodyError::BadChunkSize),
                    (SizePhase::Digits | SizePhase::AfterDigits, b' ' | b'\t') => {
                        *phase = SizePhase::AfterDigits;
                    }
                    (SizePhase::Digits | SizePhase::AfterDigits, b';') => *phase = SizePhase::Ext,
                    (SizePhase::Digits | SizePhase::AfterDigits, _) if b != b'\r' => {
                        return Err(BodyError::BadChunkSize);
                    }
                    (SizePhase::Ext, _) if is_forbidden_ctl(b) => {
                        return Err(BodyError::Malformed("control byte in chunk extension"));
                    }
                    (_, b'\r') => {
                        *line_len = line_len.saturating_sub(1);
                        *phase = SizePhase::Lf;
                    }
                    (SizePhase::Ext, _) => {}
                    // Remaining combinations were answered above; kept for exhaustiveness.
                    (SizePhase::Digits | SizePhase::AfterDigits, _) => {
                        return Err(BodyError::BadChunkSize);
                    }
                }
            }
            State::DataCrlf { cr } => match (*cr, b) {
                (false, b'\r') => *cr = true,
                (true, b'\n') => self.state = SIZE_LINE_START,
                (true, _) => return Err(BodyError::Malformed("CR without LF after chunk data")),
                (false, _) => return Err(BodyError::Malformed("missing CRLF after chunk data")),
            },
            State::Trailer { phase, total } => {
                if !matches!(
                    (*phase, b),
                    (TrailerPhase::LineStart, b'\r') | (TrailerPhase::EndLf, _)
                ) {
                    *total += 1;
                    if *total > MAX_TRAILER_BYTES {
                        return Err(BodyError::TrailerTooLarge);
                    }
                }
                *phase = match (*phase, b) {
                    (TrailerPhase::EndLf, b'\n') => {
                        self.state = State::Done;
                        return Ok(());
                    }
                    (TrailerPhase::FieldLf, b'\n') => TrailerPhase::LineStart,
                    (TrailerPhase::EndLf | TrailerPhase::FieldLf, _) => {
                        return Err(BodyError::Malformed("CR without LF in trailer"));
                    }
                    (_, b'\n') => return Err(BodyError::Malformed("bare LF in trailer")),
                    (TrailerPhase::LineStart, b'\r') => TrailerPhase::EndLf,
                    (TrailerPhase::LineStart | TrailerPhase::Name, _) if is_tchar(b) => {
                        TrailerPhase::Name
                    }
                    (TrailerPhase::Name, b':') => TrailerPhase::Value,
                    (TrailerPhase::LineStart | TrailerPhase::Name, _) => {
                        return Err(BodyError::Malformed("invalid trailer field name"));
                    }
                    (TrailerPhase::Value, b'\r') => TrailerPhase::FieldLf,
                    (TrailerPhase::Value, _) if is_forbidden_ctl(b) => {
                        return Err(BodyError::Malformed("control byte in trailer value"));
                    }
                    (TrailerPhase::Value, _) => TrailerPhase::Value,
                };
            }
            // Not byte-wise states; `decode` never calls `step` in them.
            State::Length { .. } | State::Data { .. } | State::Done | State::Failed(_) => {}
        }
        Ok(())
    }
}

/// `min(remaining, available)` as usize without lossy casts.
fn take_len(remaining: u64, available: usize) -> usize {
    usize::try_from(remaining).map_or(available, |r| r.min(available))
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Control bytes not allowed in field values or extensions (HTAB is; CR/LF handled apart).
fn is_forbidden_ctl(b: u8) -> bool {
    (b < 0x20 && b != b'\t' && b != b'\r') || b == 0x7f
}

/// RFC 9110 `tchar`.
#[cfg(test)]
mod tests {
    use super::*;

    /// Decode `input` fed in pieces of `step` bytes; returns body and leftover bytes.
    fn run(framing: Framing, input: &[u8], step: usize) -> Result<(Vec<u8>, Vec<u8>), BodyError> {
        let mut dec = BodyDecoder::new(framing);
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut rest = input;
        loop {
            match dec.decode(&mut buf)? {
                BodyEvent::Data(d) => {
                    assert!(!d.is_empty());
                    body.extend_from_slice(&d);
                }
                BodyEvent::End => {
                    assert!(dec.is_done());
                    buf.extend_from_slice(rest);
                    return Ok((body, buf.to_vec()));
                }
                BodyEvent::NeedMore => {
                    if rest.is_empty() {
                        return Err(BodyError::Malformed("test: eof"));
                    }
                    let n = step.min(rest.len());
                    buf.extend_from_slice(&rest[..n]);
                    rest = &rest[n..];
                }
            }
        }
    }

    /// Generated bodies, valid and corrupted: read whole (where the one-step size-line path
    /// applies) they decode exactly as fed byte by byte (where it never can).
    #[test]
    fn the_common_framing_step_agrees_with_the_byte_states() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..3000 {
            let mut body = Vec::new();
            for _ in 0..next(6) {
                let len = 1 + next(300) as usize;
                let mut line = match next(4) {
                    0 => format!("{len:X}"),
                    1 => format!("000{len:x}"),
                    _ => format!("{len:x}"),
                };
                if next(8) == 0 {
                    line.push_str(";ext=1");
                }
                body.extend_from_slice(line.as_bytes());
                body.extend_from_slice(b"\r\n");
                body.extend((0..len).map(|i| b'a' + (i % 26) as u8));
                body.extend_from_slice(b"\r\n");
            }
            body.extend_from_slice(if next(3) == 0 {
                b"0\r\nx-t: 1\r\n\r\n" as &[u8]
            } else {
                b"0\r\n\r\n"
            });
            body.extend_from_slice(b"next");
            if next(3) == 0 && !body.is_empty() {
                let at = next(body.len() as u64) as usize;
                body[at] = [b'\r', b'\n', b'g', b' ', b';', b'0'][next(6) as usize];
            }
            let _ = chunked(&body);
        }
    }

    fn chunked(input: &[u8]) -> Result<(Vec<u8>, Vec<u8>), BodyError> {
        let whole = run(Framing::Chunked, input, usize::MAX);
        for step in [1, 2, 3, 7] {
            assert_eq!(run(Framing::Chunked, input, step), whole, "step {step}");
        }
        whole
    }

    #[test]
    fn none_and_zero_length_end_immediately() {
        for f in [Framing::None, Framing::Length(0)] {
            let mut d = BodyDecoder::new(f);
            let mut buf = BytesMut::from(&b"GET"[..]);
            assert_eq!(d.decode(&mut buf), Ok(BodyEvent::End));
            assert!(d.is_done());
            assert_eq!(&buf[..], b"GET");
        }
    }

    #[test]
    fn content_length_body() {
        let mut d = BodyDecoder::new(Framing::Length(5));
        let mut buf = BytesMut::new();
        assert_eq!(d.decode(&mut buf), Ok(BodyEvent::NeedMore));
        buf.extend_from_slice(b"he");
        assert_eq!(
            d.decode(&mut buf),
            Ok(BodyEvent::Data(Bytes::from_static(b"he")))
        );
        assert!(!d.is_done());
        buf.extend_from_slice(b"lloNEXT");
        assert_eq!(
            d.decode(&mut buf),
            Ok(BodyEvent::Data(Bytes::from_static(b"llo")))
        );
        assert!(d.is_done());
        assert_eq!(d.decode(&mut buf), Ok(BodyEvent::End));
        assert_eq!(&buf[..], b"NEXT");
        assert_eq!(
            run(Framing::Length(5), b"helloNEXT", 1).unwrap(),
            (b"hello".to_vec(), b"NEXT".to_vec())
        );
    }

    #[test]
    fn huge_content_length_streams() {
        let mut d = BodyDecoder::new(Framing::Length(u64::MAX));
        let mut buf = BytesMut::from(&b"abc"[..]);
        assert_eq!(
            d.decode(&mut buf),
            Ok(BodyEvent::Data(Bytes::from_static(b"abc")))
        );
        assert_eq!(d.decode(&mut buf), Ok(BodyEvent::NeedMore));
    }

    #[test]
    fn simple_chunked() {
        let (body, rest) = chunked(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nNEXT").unwrap();
        assert_eq!(body, b"hello world");
        assert_eq!(rest, b"NEXT");
    }

    #[test]
    fn chunk_data_is_zero_copy_and_never_empty() {
        let mut d = BodyDecoder::new(Framing::Chunked);
        let mut buf = BytesMut::from(&b"3\r\nabc\r\n0\r\n\r\n"[..]);
        let base = buf.as_ptr() as usize;
        match d.decode(&mut buf).unwrap() {
            BodyEvent::Data(b) => {
                assert_eq!(&b[..], b"abc");
                assert_eq!(b.as_ptr() as usize, base + 3);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(d.decode(&mut buf), Ok(BodyEvent::End));
        assert!(buf.is_empty());
    }

    #[test]
    fn hex_sizes_and_leading_zeros() {
        let mut input = b"0000A\r\n".to_vec();
        input.extend_from_slice(&[b'x'; 10]);
        input.extend_from_slice(b"\r\n1f\r\n");
        input.extend_from_slice(&[b'y'; 31]);
        input.extend_from_slice(b"\r\n000\r\n\r\n");
        let (body, _) = chunked(&input).unwrap();
        assert_eq!(body.len(), 41);
    }

    #[test]
    fn extensions_ignored() {
        let (body, rest) =
            chunked(b"5;name=val\r\nhello\r\n1 ; a=\"q;x\"; b\r\n!\r\n0;last\r\n\r\n").unwrap();
        assert_eq!(body, b"hello!");
        assert!(rest.is_empty());
    }

    #[test]
    fn trailers_discarded() {
        let (body, rest) =
            chunked(b"2\r\nhi\r\n0\r\nX-Checksum: abc\r\nX-Other:\t v \r\n\r\nGET").unwrap();
        assert_eq!(body, b"hi");
        assert_eq!(rest, b"GET");
    }

    #[test]
    fn bad_chunk_sizes() {
        for input in [
            &b"\r\n"[..],
            b"g\r\n",
            b" 5\r\n",
            b";ext\r\n",
            b"5 5\r\n",
            b"-1\r\n",
            b"0x5\r\n",
            b"10000000000000000\r\n",
            b"fffffffffffffffff\r\n",
        ] {
            assert_eq!(chunked(input), Err(BodyError::BadChunkSize), "{input:?}");
        }
        // the largest u64 size parses (and then waits for data)
        let mut d = BodyDecoder::new(Framing::Chunked);
        let mut buf = BytesMut::from(&b"ffffffffffffffff\r\nab"[..]);
        assert_eq!(
            d.decode(&mut buf),
            Ok(BodyEvent::Data(Bytes::from_static(b"ab")))
        );
    }

    #[test]
    fn strict_line_endings() {
        for input in [
            &b"5\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhello\r\n0\n\r\n",
            b"5\r\nhello\r\n0\r\n\n",
            b"5\rxhello\r\n0\r\n\r\n",
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"5\r\nhello\rX0\r\n\r\n",
            b"0\r\nA: b\n\r\n",
            b"0\r\nA: b\rX\r\n",
            b"0\r\n\rX",
            b"5;a\nhello\r\n0\r\n\r\n",
        ] {
            assert!(
                matches!(chunked(input), Err(BodyError::Malformed(_))),
                "{input:?}"
            );
        }
    }

    #[test]
    fn bad_trailers_and_extensions() {
        for input in [
            &b"0\r\nno colon\r\n\r\n"[..],
            b"0\r\n folded: x\r\n\r\n",
            b"0\r\n: empty-name\r\n\r\n",
            b"0\r\nA: b\x00c\r\n\r\n",
            b"1;a\x01\r\nx\r\n0\r\n\r\n",
        ] {
            assert!(
                matches!(chunked(input), Err(BodyError::Malformed(_))),
                "{input:?}"
            );
        }
    }

    #[test]
    fn chunk_line_limit() {
        let ok_line = |ext_len: usize| {
            let mut v = b"1;".to_vec();
            v.resize(2 + ext_len, b'a');
            v.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
            v
        };
        // line content (before CRLF) exactly at the bound passes, one more fails
        assert_eq!(chunked(&ok_line(MAX_CHUNK_LINE_BYTES - 2)).unwrap().0, b"x");
        assert_eq!(
            chunked(&ok_line(MAX_CHUNK_LINE_BYTES - 1)),
            Err(BodyError::ChunkLineTooLong)
        );
        // an endless line is cut off without waiting for CR
        let mut d = BodyDecoder::new(Framing::Chunked);
        let mut buf = BytesMut::from(&b"1;"[..]);
        buf.resize(MAX_CHUNK_LINE_BYTES + 10, b'a');
        assert_eq!(d.decode(&mut buf), Err(BodyError::ChunkLineTooLong));
        // the error is sticky
        assert_eq!(
            d.decode(&mut BytesMut::from(&b"0\r\n\r\n"[..])),
            Err(BodyError::ChunkLineTooLong)
        );
    }

    #[test]
    fn trailer_limit() {
        let trailer = |value_len: usize| {
            let mut v = b"0\r\nx:".to_vec();
            v.resize(5 + value_len, b'v');
            v.extend_from_slice(b"\r\n\r\n");
            v
        };
        // "x:" + value + CRLF == MAX passes; one byte more fails
        assert!(chunked(&trailer(MAX_TRAILER_BYTES - 4)).is_ok());
        assert_eq!(
            chunked(&trailer(MAX_TRAILER_BYTES - 3)),
            Err(BodyError::TrailerTooLarge)
        );
        // many small trailer lines count together
        let mut many = b"0\r\n".to_vec();
        for _ in 0..MAX_TRAILER_BYTES / 6 + 1 {
            many.extend_from_slice(b"a: b\r\n");
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(chunked(&many), Err(BodyError::TrailerTooLarge));
    }

    #[test]
    fn truncated_chunked_needs_more() {
        let full = b"5;x\r\nhello\r\n0\r\nT: v\r\n\r\n";
        for n in 0..full.len() {
            let mut d = BodyDecoder::new(Framing::Chunked);
            let mut buf = BytesMut::from(&full[..n]);
            loop {
                match d.decode(&mut buf).unwrap() {
                    BodyEvent::Data(_) => {}
                    BodyEvent::NeedMore => break,
                    BodyEvent::End => panic!("ended early at prefix {n}"),
                }
            }
            assert!(!d.is_done());
        }
    }

    #[test]
    fn error_display() {
        assert_eq!(BodyError::BadChunkSize.to_string(), "invalid chunk size");
        assert_eq!(
            BodyError::Malformed("x").to_string(),
            "malformed chunked body: x"
        );
    }
}
