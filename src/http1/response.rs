//! The provider-response side of the HTTP/1.1 codec, beside the request side: the final
//! response head (bounded, interim 1xx heads skipped, names lower-cased in one frozen buffer)
//! and body framing (Content-Length, chunked, read-until-close) taken zero-copy off the front
//! of a connection's read buffer. Sans-IO: the upstream connection owns the socket.

use std::io;

use bytes::{Bytes, BytesMut};

use super::{BodyDecoder, BodyError, BodyEvent, Framing, FramingError, FramingFields};

/// How the response body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body (204, 304, or Content-Length: 0).
    Empty,
    /// Content-Length.
    Length(u64),
    /// Transfer-Encoding: chunked.
    Chunked,
    /// Neither: read until the provider closes.
    Close,
}

/// Largest provider response head accepted (status line + headers).
pub const MAX_RESPONSE_HEAD_BYTES: usize = 64 * 1024;
/// Most response headers accepted.
pub const MAX_RESPONSE_HEADERS: usize = 128;

/// A provider's response head: header values are spans of one frozen buffer, names spans of
/// one lower-cased string (httparse checked they are tokens, so they are text once, not
/// re-validated on every read).
pub struct ResponseHead {
    /// Status code.
    pub status: u16,
    raw: Bytes,
    names: String,
    /// (name span in `names`, value span in `raw`).
    spans: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>,
    /// Body framing.
    pub framing: BodyFraming,
    /// May the connection be reused once the body is read?
    pub reusable: bool,
}

impl ResponseHead {
    /// Headers in arrival order, names lower-case.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.spans
            .iter()
            .filter_map(|(n, v)| Some((self.names.get(n.clone())?, self.raw.get(v.clone())?)))
    }

    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        let (_, v) = self
            .spans
            .iter()
            .find(|(n, _)| self.names.get(n.clone()) == Some(name))?;
        self.raw.get(v.clone())
    }

    /// Every value of header `name` (lower-case), in arrival order. Names are compared as
    /// bytes: this runs several times per response, and validating each name as UTF-8 on
    /// every lookup was a tenth of the gateway's instructions (callgrind).
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.spans.iter().filter_map(move |(n, v)| {
            if self.names.get(n.clone())? == name {
                self.raw.get(v.clone())
            } else {
                None
            }
        })
    }

    /// Replace the header values `f` changes (None: unchanged). Allocates only when one
    /// changes: the changed values are appended to a copy of the head's buffer.
    pub fn replace_values(&mut self, mut f: impl FnMut(&[u8]) -> Option<Vec<u8>>) {
        let mut raw: Option<Vec<u8>> = None;
        for (_, v) in &mut self.spans {
            let Some(new) = self.raw.get(v.clone()).and_then(&mut f) else {
                continue;
            };
            let buf = raw.get_or_insert_with(|| self.raw.to_vec());
            let start = buf.len();
            buf.extend_from_slice(&new);
            *v = start..buf.len();
        }
        if let Some(buf) = raw {
            self.raw = Bytes::from(buf);
        }
    }

    /// Is this an SSE stream?
    pub fn is_event_stream(&self) -> bool {
        self.header("content-type").is_some_and(|v| {
            v.get(..17)
                .is_some_and(|p| p.eq_ignore_ascii_case(b"text/event-stream"))
        })
    }
}

/// Why a response head could not be read.
#[derive(Debug)]
pub enum HeadReadError {
    /// The socket failed.
    Io(io::Error),
    /// Larger than `MAX_RESPONSE_HEAD_BYTES`.
    TooLarge,
    /// Not a valid HTTP/1.x response head.
    Malformed(String),
}

impl From<io::Error> for HeadReadError {
    fn from(e: io::Error) -> Self {
        HeadReadError::Io(e)
    }
}

/// Parse the final response head off the front of `src`, bounded, skipping interim 1xx heads
/// (100 Continue, 103 Early Hints): only the final head answers the request. `Ok(None)`: not
/// all of it has arrived.
pub fn decode_head(src: &mut BytesMut) -> std::result::Result<Option<ResponseHead>, HeadReadError> {
    loop {
        let window = src
            .get(..src.len().min(MAX_RESPONSE_HEAD_BYTES))
            .unwrap_or_default();
        let too_large = || {
            if src.len() >= MAX_RESPONSE_HEAD_BYTES {
                Err(HeadReadError::TooLarge)
            } else {
                Ok(None)
            }
        };
        // A head is complete only once an empty line arrived (CRLF or, as httparse allows,
        // bare LF): a cheap scan before the full parse.
        if !has_blank_line(window) {
            return too_large();
        }
        let mut spans = Vec::with_capacity(16);
        let mut names = String::new();
        // httparse decides where the head ends: its length, not a search for CRLFCRLF,
        // so a bare-LF head can neither hang nor swallow body bytes.
        let (len, status, version) = {
            let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
            let mut resp = httparse::Response::new(&mut headers);
            let len = match resp.parse(window) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => return too_large(),
                Err(e) => return Err(HeadReadError::Malformed(e.to_string())),
            };
            let base = window.as_ptr() as usize;
            names.reserve(resp.headers.iter().map(|h| h.name.len()).sum());
            for h in resp.headers.iter() {
                let n = names.len();
                names.push_str(h.name);
                let v = h.value.as_ptr() as usize - base;
                spans.push((n..names.len(), v..v + h.value.len()));
            }
            names.make_ascii_lowercase();
            (len, resp.code.unwrap_or(0), resp.version.unwrap_or(0))
        };
        let head = src.split_to(len);
        if !(100..=599).contains(&status) {
            return Err(HeadReadError::Malformed(format!(
                "status {status} is outside 100-599"
            )));
        }
        match status {
            101 => {
                return Err(HeadReadError::Malformed(
                    "unexpected 101 Switching Protocols".into(),
                ))
            }
            100..=199 => continue, // interim response: the final one follows
            _ => {}
        }
        let raw = head.freeze();
        let mut rh = ResponseHead {
            status,
            raw,
            names,
            spans,
            framing: BodyFraming::Empty,
            reusable: false,
        };
        rh.framing =
            response_framing(&rh, version).map_err(|e| HeadReadError::Malformed(e.to_string()))?;
        let close = rh.values("connection").any(|v| {
            v.split(|b| *b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
        });
        // Transfer-Encoding with Content-Length is a smuggling shape: answer, then close.
        let ambiguous =
            rh.header("transfer-encoding").is_some() && rh.header("content-length").is_some();
        rh.reusable = !close && !ambiguous && version == 1 && rh.framing != BodyFraming::Close;
        return Ok(Some(rh));
    }
}

/// Errors while reading a body.
#[derive(Debug)]
pub enum BodyReadError {
    /// The socket failed.
    Io(io::Error),
    /// Bad chunked framing.
    Framing(BodyError),
    /// The provider closed before the body was complete.
    UnexpectedEof,
}

impl From<io::Error> for BodyReadError {
    fn from(e: io::Error) -> Self {
        BodyReadError::Io(e)
    }
}

impl std::fmt::Display for BodyReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyReadError::Io(e) => write!(f, "io: {e}"),
            BodyReadError::Framing(e) => write!(f, "framing: {e:?}"),
            BodyReadError::UnexpectedEof => f.write_str("connection closed mid-body"),
        }
    }
}

/// Frames a response body out of the connection's read buffer, zero-copy.
pub struct BodyCodec {
    state: BodyState,
}

enum BodyState {
    Length(u64),
    Chunked(BodyDecoder),
    Close,
    Done,
}

impl BodyCodec {
    /// A decoder for `framing`.
    pub fn new(framing: BodyFraming) -> Self {
        let state = match framing {
            BodyFraming::Empty | BodyFraming::Length(0) => BodyState::Done,
            BodyFraming::Length(n) => BodyState::Length(n),
            BodyFraming::Chunked => BodyState::Chunked(BodyDecoder::new(Framing::Chunked)),
            BodyFraming::Close => BodyState::Close,
        };
        BodyCodec { state }
    }

    /// Has the whole body been read?
    pub fn is_done(&self) -> bool {
        matches!(self.state, BodyState::Done)
    }
}

/// What [`BodyCodec::decode`] found in the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyStep {
    /// Body bytes (a slice of the read buffer, not a copy).
    Data(Bytes),
    /// The body is complete.
    End,
    /// Read more first.
    NeedMore,
}

impl BodyCodec {
    /// Take the next piece of body from the front of `src`.
    pub fn decode(&mut self, src: &mut BytesMut) -> std::result::Result<BodyStep, BodyReadError> {
        match &mut self.state {
            BodyState::Done => Ok(BodyStep::End),
            BodyState::Length(remaining) => {
                if src.is_empty() {
                    return Ok(BodyStep::NeedMore);
                }
                let n = usize::try_from(*remaining)
                    .unwrap_or(usize::MAX)
                    .min(src.len());
                let data = src.split_to(n).freeze();
                *remaining -= n as u64;
                if *remaining == 0 {
                    self.state = BodyState::Done;
                }
                Ok(BodyStep::Data(data))
            }
            BodyState::Chunked(dec) => match dec.decode(src).map_err(BodyReadError::Framing)? {
                BodyEvent::Data(d) => Ok(BodyStep::Data(d)),
                BodyEvent::NeedMore => Ok(BodyStep::NeedMore),
                BodyEvent::End => {
                    self.state = BodyState::Done;
                    Ok(BodyStep::End)
                }
            },
            BodyState::Close => {
                if src.is_empty() {
                    Ok(BodyStep::NeedMore)
                } else {
                    Ok(BodyStep::Data(src.split().freeze()))
                }
            }
        }
    }

    /// The provider closed the connection with `src` left over: the end of a read-until-close
    /// body, a truncation for any other framing.
    pub fn decode_eof(
        &mut self,
        src: &mut BytesMut,
    ) -> std::result::Result<BodyStep, BodyReadError> {
        match self.decode(src)? {
            BodyStep::NeedMore => match self.state {
                BodyState::Close => {
                    self.state = BodyState::Done;
                    Ok(BodyStep::End)
                }
                _ => Err(BodyReadError::UnexpectedEof),
            },
            step => Ok(step),
        }
    }
}

/// Body framing of a final response head of HTTP/1.`minor_version`. The framing fields are
/// read by the rules client requests are read by ([`FramingFields`]): a `Content-Length: +5`
/// or a `gzip, chunked` is refused here as it is there. Only the policy differs: a response
/// may carry both fields (Transfer-Encoding wins; the caller does not reuse the connection),
/// and one with neither runs until the provider closes.
fn response_framing(
    head: &ResponseHead,
    minor_version: u8,
) -> std::result::Result<BodyFraming, FramingError> {
    let mut fields = FramingFields::default();
    for (name, value) in head.headers() {
        fields.observe(name.as_bytes(), value)?;
    }
    let framing = fields.framing(minor_version)?;
    let status = head.status;
    if status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(BodyFraming::Empty);
    }
    Ok(match framing {
        Framing::Chunked => BodyFraming::Chunked,
        Framing::Length(0) => BodyFraming::Empty,
        Framing::Length(n) => BodyFraming::Length(n),
        Framing::None => BodyFraming::Close,
    })
}

/// Does `window` hold an empty line (`\n\r\n` or `\n\n`)? One `memchr` pass over the line
/// ends (a one-shot `memmem` search builds its searcher on every call).
fn has_blank_line(window: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', window).any(|at| match window.get(at + 1) {
        Some(b'\n') => true,
        Some(b'\r') => window.get(at + 2) == Some(&b'\n'),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-pass blank-line check says what the two substring searches it replaced say,
    /// on every string of up to six bytes from the line-ending alphabet.
    #[test]
    fn blank_line_check_agrees_with_substring_search() {
        let alphabet = [b'\n', b'\r', b'a'];
        for len in 0..=6u32 {
            for mut n in 0..3usize.pow(len) {
                let mut window = Vec::new();
                for _ in 0..len {
                    window.push(alphabet[n % 3]);
                    n /= 3;
                }
                let reference = memchr::memmem::find(&window, b"\n\r\n").is_some()
                    || memchr::memmem::find(&window, b"\n\n").is_some();
                assert_eq!(has_blank_line(&window), reference, "{window:?}");
            }
        }
    }

    fn body(framing: BodyFraming, input: &[u8], eof: bool) -> Result<Vec<u8>, BodyReadError> {
        let mut codec = BodyCodec::new(framing);
        let mut src = BytesMut::from(input);
        let mut out = Vec::new();
        loop {
            match codec.decode(&mut src)? {
                BodyStep::Data(d) => out.extend_from_slice(&d),
                BodyStep::End => return Ok(out),
                BodyStep::NeedMore if eof => match codec.decode_eof(&mut src)? {
                    BodyStep::Data(d) => out.extend_from_slice(&d),
                    _ => return Ok(out),
                },
                BodyStep::NeedMore => return Ok(out),
            }
        }
    }

    #[test]
    fn bodies_end_where_their_framing_says() {
        assert_eq!(
            body(BodyFraming::Length(3), b"abcdef", false).unwrap(),
            b"abc"
        );
        assert_eq!(
            body(BodyFraming::Close, b"abcdef", true).unwrap(),
            b"abcdef"
        );
        assert_eq!(
            body(BodyFraming::Chunked, b"3\r\nabc\r\n0\r\n\r\nrest", false).unwrap(),
            b"abc"
        );
        assert!(body(BodyFraming::Empty, b"x", false).unwrap().is_empty());
        // A close before the announced end is a truncation, not an end.
        assert!(matches!(
            body(BodyFraming::Length(10), b"abc", true),
            Err(BodyReadError::UnexpectedEof)
        ));
        assert!(matches!(
            body(BodyFraming::Chunked, b"5\r\nab", true),
            Err(BodyReadError::UnexpectedEof)
        ));
    }

    #[test]
    fn header_values_are_replaced_in_place() {
        let mut src = BytesMut::from(
            &b"HTTP/1.1 401 No\r\nX-A: secret\r\nX-B: b\r\nContent-Length: 0\r\n\r\n"[..],
        );
        let mut head = decode_head(&mut src).unwrap().unwrap();
        head.replace_values(|_| None);
        assert_eq!(head.header("x-a"), Some(&b"secret"[..]));
        head.replace_values(|v| (v == b"secret").then(|| b"[gone]".to_vec()));
        let all: Vec<_> = head.headers().collect();
        assert_eq!(
            all,
            [
                ("x-a", &b"[gone]"[..]),
                ("x-b", &b"b"[..]),
                ("content-length", &b"0"[..])
            ]
        );
    }

    #[test]
    fn heads_skip_interim_responses_and_stop_at_the_bound() {
        let mut src = BytesMut::from(
            &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\n{}"[..],
        );
        let head = decode_head(&mut src).unwrap().unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.framing, BodyFraming::Length(2));
        assert_eq!(head.header("x-a"), Some(&b"b"[..]));
        assert!(head.reusable);
        assert_eq!(&src[..], b"{}");

        let mut twice = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\ncontent-length: 3\r\n\r\n"[..],
        );
        assert!(matches!(
            decode_head(&mut twice),
            Err(HeadReadError::Malformed(_))
        ));
        let mut closing = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n"[..],
        );
        let head = decode_head(&mut closing).unwrap().unwrap();
        assert_eq!(head.values("connection").count(), 2);
        assert!(!head.reusable);

        // Bare LF line ends (httparse accepts them): the head ends where httparse says, and the
        // body bytes stay out of it.
        let mut lf = BytesMut::from(&b"HTTP/1.1 200 OK\nContent-Length: 5\n\nhello\r\n\r\n"[..]);
        let head = decode_head(&mut lf).unwrap().unwrap();
        assert_eq!(head.framing, BodyFraming::Length(5));
        assert_eq!(&lf[..], b"hello\r\n\r\n");

        for bad in [
            &b"HTTP/1.1 042 Odd\r\n\r\n"[..],
            b"HTTP/1.1 600 Odd\r\n\r\n",
        ] {
            assert!(matches!(
                decode_head(&mut BytesMut::from(bad)),
                Err(HeadReadError::Malformed(_))
            ));
        }

        // Transfer-Encoding over several lines: `chunked` must come last, once, and alone (a
        // coding we do not undo is refused, not relayed as if it were the body).
        let te = |raw: &[u8]| decode_head(&mut BytesMut::from(raw));
        let head =
            te(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: \r\nTransfer-Encoding: chunked\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!(head.framing, BodyFraming::Chunked);
        assert!(te(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .is_err());
        assert!(te(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"
        )
        .is_err());
        // Both framings: served, but the connection is not reused.
        let head =
            te(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!(head.framing, BodyFraming::Chunked);
        assert!(!head.reusable);

        // Framing fields are read as strictly as a client's (http1::FramingFields).
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 5 5\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: +5\r\n\r\nhello",
            b"HTTP/1.1 204 No Content\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(
                matches!(te(bad), Err(HeadReadError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let head = te(b"HTTP/1.1 200 OK\r\nContent-Length:  5 \r\n\r\nhello")
            .unwrap()
            .unwrap();
        assert_eq!(head.framing, BodyFraming::Length(5));

        let mut partial = BytesMut::from(&b"HTTP/1.1 200 OK\r\nx: y\r\n"[..]);
        assert!(decode_head(&mut partial).unwrap().is_none());

        let mut endless = BytesMut::from(&b"HTTP/1.1 200 OK\r\n"[..]);
        endless.resize(MAX_RESPONSE_HEAD_BYTES + 10, b'a');
        assert!(matches!(
            decode_head(&mut endless),
            Err(HeadReadError::TooLarge)
        ));

        let mut close = BytesMut::from(&b"HTTP/1.0 200 OK\r\n\r\n"[..]);
        let head = decode_head(&mut close).unwrap().unwrap();
        assert_eq!(head.framing, BodyFraming::Close);
        assert!(!head.reusable);
    }
}
