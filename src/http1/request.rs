//! Request head parsing: httparse over the read buffer, then one pass over the fields to
//! settle framing, keep-alive and `Expect`, keeping every string as a span into one `Bytes`.

use std::fmt;
use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};

use super::framing::list_items;
use super::{Framing, FramingError, FramingFields, Method, MAX_HEADERS};

/// Byte range `[start, end)` into [`RequestHead`]'s frozen buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
}

impl Span {
    /// Span of `part`, which must be a sub-slice of `base`; derived from pointer addresses so
    /// it works on the slices httparse hands back. Out-of-range spans are never produced for
    /// sub-slices, and accessors use `get` regardless.
    fn of(base: &[u8], part: &[u8]) -> Span {
        let start = (part.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
        Span {
            start,
            end: start.wrapping_add(part.len()),
        }
    }
}

/// A parsed request head. All strings are spans into one frozen `Bytes` holding exactly the
/// head bytes, so the only allocation beyond that buffer is one `Vec` of header spans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    buf: Bytes,
    method: Method,
    method_span: Span,
    target: Span,
    /// Start of the path part of `target`: `target.start` for origin-form (`/a`), past the
    /// scheme and authority for absolute-form (`http://host/a`).
    path_start: usize,
    /// End of the path part of `target` (position of `?`, or `target.end`).
    path_end: usize,
    minor_version: u8,
    headers: Vec<(Span, Span)>,
    framing: Framing,
    keep_alive: bool,
    expects_continue: bool,
}

impl RequestHead {
    fn str_at(&self, span: Span) -> &str {
        // httparse validated method, target and header names as ASCII/UTF-8; the fallback is
        // unreachable and only avoids `unsafe` or a panic path.
        std::str::from_utf8(self.bytes_at(span)).unwrap_or_default()
    }

    fn bytes_at(&self, span: Span) -> &[u8] {
        self.buf.get(span.start..span.end).unwrap_or_default()
    }

    /// The request method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The raw method token, e.g. `"POST"`; useful when [`method`](Self::method) is `Other`.
    pub fn method_str(&self) -> &str {
        self.str_at(self.method_span)
    }

    /// The raw request-target, e.g. `"/v1/messages?beta=true"`.
    pub fn target(&self) -> &str {
        self.str_at(self.target)
    }

    /// The request-target's path without its query, e.g. `"/v1/messages"`. An absolute-form
    /// target (`http://host/v1/messages`, which a server must accept: RFC 9112 §3.2.2) gives
    /// its path too, and `"/"` when it has none (`http://host`).
    pub fn path(&self) -> &str {
        let path = self.str_at(Span {
            start: self.path_start,
            end: self.path_end,
        });
        if path.is_empty() {
            "/"
        } else {
            path
        }
    }

    /// The query after `?`, without the `?`; `None` when the target has no `?`.
    pub fn query(&self) -> Option<&str> {
        if self.path_end >= self.target.end {
            return None;
        }
        Some(self.str_at(Span {
            start: self.path_end.wrapping_add(1),
            end: self.target.end,
        }))
    }

    /// HTTP minor version: 0 or 1.
    pub fn minor_version(&self) -> u8 {
        self.minor_version
    }

    /// Value of the first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| self.bytes_at(*n).eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| self.bytes_at(*v))
    }

    /// Like [`header`](Self::header) but a zero-copy `Bytes` that can outlive the head.
    pub fn header_bytes(&self, name: &str) -> Option<Bytes> {
        self.headers
            .iter()
            .find(|(n, _)| self.bytes_at(*n).eq_ignore_ascii_case(name.as_bytes()))
            .and_then(|(_, v)| {
                (v.start <= v.end && v.end <= self.buf.len())
                    .then(|| self.buf.slice(v.start..v.end))
            })
    }

    /// All header fields in order, names as sent, values as bytes (OWS trimmed).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.headers
            .iter()
            .map(|(n, v)| (self.str_at(*n), self.bytes_at(*v)))
    }

    /// Number of header fields.
    pub fn header_count(&self) -> usize {
        self.headers.len()
    }

    /// How the request body is delimited.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Whether the connection may carry another request after this one: HTTP/1.1 unless a
    /// `Connection` header lists `close`; HTTP/1.0 only when it lists `keep-alive` (and not
    /// `close`).
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// `Expect: 100-continue` on an HTTP/1.1 request (ignored on 1.0, RFC 9110 §10.1.1).
    pub fn expects_continue(&self) -> bool {
        self.expects_continue
    }

    /// Bytes the head occupied in the input, leading empty lines included.
    pub fn head_len(&self) -> usize {
        self.buf.len()
    }

    /// The raw head bytes exactly as received.
    pub fn raw(&self) -> &Bytes {
        &self.buf
    }
}

/// Why a request head was rejected. Every variant means the connection must be closed after
/// the error response: the framing of anything that follows is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    /// The head exceeds the size bound.
    TooLarge,
    /// More than [`MAX_HEADERS`] header fields.
    TooManyHeaders,
    /// Syntax error in the request line or a header field.
    Malformed(&'static str),
    /// Content-Length not `1*DIGIT`, overflowing, or several differing values.
    BadContentLength,
    /// Both Content-Length and Transfer-Encoding: refused outright (smuggling guard).
    LengthAndChunked,
    /// Transfer-Encoding whose final coding is not `chunked`, `chunked` applied twice, or any
    /// Transfer-Encoding on an HTTP/1.0 request.
    BadTransferEncoding,
    /// Transfer-Encoding ends in `chunked` but also lists a coding we do not implement
    /// (e.g. `gzip, chunked`); the framing is known, the content is not usable.
    UnsupportedTransferCoding,
    /// An HTTP version other than 1.0 or 1.1.
    UnsupportedVersion,
}

impl HeadError {
    /// Response status for this error: 431 for size/count limits, 501 for an unimplemented
    /// transfer coding (RFC 9112 §6.1), 505 for the version, otherwise 400.
    pub fn status(&self) -> u16 {
        match self {
            HeadError::TooLarge | HeadError::TooManyHeaders => 431,
            HeadError::UnsupportedTransferCoding => 501,
            HeadError::UnsupportedVersion => 505,
            HeadError::Malformed(_)
            | HeadError::BadContentLength
            | HeadError::LengthAndChunked
            | HeadError::BadTransferEncoding => 400,
        }
    }
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::TooLarge => f.write_str("request head too large"),
            HeadError::TooManyHeaders => f.write_str("too many header fields"),
            HeadError::Malformed(what) => write!(f, "malformed request head: {what}"),
            HeadError::BadContentLength => f.write_str("invalid Content-Length"),
            HeadError::LengthAndChunked => {
                f.write_str("both Content-Length and Transfer-Encoding present")
            }
            HeadError::BadTransferEncoding => f.write_str("invalid Transfer-Encoding"),
            HeadError::UnsupportedTransferCoding => f.write_str("unsupported transfer coding"),
            HeadError::UnsupportedVersion => f.write_str("unsupported HTTP version"),
        }
    }
}

impl std::error::Error for HeadError {}

/// Parse a complete request head from the front of `buf`.
///
/// `Ok(None)` means more bytes are needed (and `buf.len() < max_head`). On success the head
/// bytes are split off the front of `buf`, which then starts at the body or the next
/// request. Only the first `max_head` bytes are ever scanned, so a slow client that never
/// finishes its head costs at most `max_head` per call and ends in [`HeadError::TooLarge`].
pub fn parse_request_head(
    buf: &mut BytesMut,
    max_head: usize,
) -> Result<Option<RequestHead>, HeadError> {
    let window = buf.get(..max_head).unwrap_or(&buf[..]);
    let Some(parsed) = parse_window(window)? else {
        return if buf.len() >= max_head {
            Err(HeadError::TooLarge)
        } else {
            Ok(None)
        };
    };
    // Copied out, not split off: a zero-copy head would pin the whole read buffer for as long
    // as the request lives, and a streamed response may live for minutes.
    let head = Bytes::copy_from_slice(buf.get(..parsed.len).unwrap_or_default());
    buf.advance(parsed.len);
    Ok(Some(RequestHead {
        buf: head,
        method: parsed.method,
        method_span: parsed.method_span,
        target: parsed.target,
        path_start: parsed.path_start,
        path_end: parsed.path_end,
        minor_version: parsed.minor_version,
        headers: parsed.headers,
        framing: parsed.framing,
        keep_alive: parsed.keep_alive,
        expects_continue: parsed.expects_continue,
    }))
}

/// Everything [`RequestHead`] holds except the frozen buffer, computed while `buf` is borrowed.
struct Parsed {
    len: usize,
    method: Method,
    method_span: Span,
    target: Span,
    path_start: usize,
    path_end: usize,
    minor_version: u8,
    headers: Vec<(Span, Span)>,
    framing: Framing,
    keep_alive: bool,
    expects_continue: bool,
}

/// Where the path starts in an absolute-form target (`http://host[:port]/path?q`): past the
/// scheme and authority; 0 for every other form. The authority ends at the first `/`, `?` or
/// the end (RFC 3986 §3.2); the `Host` header is not consulted for routing, so it is not
/// compared.
fn absolute_form_path_offset(target: &[u8]) -> usize {
    let starts = |prefix: &[u8]| {
        target
            .get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
    };
    let after_scheme = if starts(b"http://") {
        7
    } else if starts(b"https://") {
        8
    } else {
        return 0;
    };
    let rest = target.get(after_scheme..).unwrap_or_default();
    after_scheme + memchr::memchr2(b'/', b'?', rest).unwrap_or(rest.len())
}

fn parse_window(window: &[u8]) -> Result<Option<Parsed>, HeadError> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(window, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(map_httparse_error(e, window)),
    };
    let (Some(method), Some(target), Some(minor_version)) = (req.method, req.path, req.version)
    else {
        return Err(HeadError::Malformed("incomplete request line"));
    };

    let target_span = Span::of(window, target.as_bytes());
    let path_end =
        target_span.start + memchr::memchr(b'?', target.as_bytes()).unwrap_or(target.len());
    let path_start = target_span.start + absolute_form_path_offset(target.as_bytes());

    let mut fields = FieldScan::default();
    let mut headers = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        headers.push((
            Span::of(window, h.name.as_bytes()),
            Span::of(window, h.value),
        ));
        fields.observe(h.name.as_bytes(), h.value)?;
    }

    Ok(Some(Parsed {
        len,
        method: Method::from_token(method),
        method_span: Span::of(window, method.as_bytes()),
        target: target_span,
        path_start: path_start.min(path_end),
        path_end,
        minor_version,
        headers,
        framing: fields.framing(minor_version)?,
        keep_alive: if minor_version == 0 {
            fields.conn_keep_alive && !fields.conn_close
        } else {
            !fields.conn_close
        },
        expects_continue: minor_version == 1 && fields.expect_continue,
    }))
}

/// State accumulated over the header fields that decide framing and connection handling.
#[derive(Default)]
struct FieldScan {
    /// Content-Length and Transfer-Encoding, read by the rules responses share.
    framing: FramingFields,
    conn_close: bool,
    conn_keep_alive: bool,
    expect_continue: bool,
    host_count: u32,
}

impl From<FramingError> for HeadError {
    fn from(e: FramingError) -> Self {
        match e {
            FramingError::BadContentLength => HeadError::BadContentLength,
            FramingError::BadTransferEncoding => HeadError::BadTransferEncoding,
            FramingError::UnsupportedTransferCoding => HeadError::UnsupportedTransferCoding,
        }
    }
}

impl FieldScan {
    fn observe(&mut self, name: &[u8], value: &[u8]) -> Result<(), HeadError> {
        self.framing.observe(name, value)?;
        if name.eq_ignore_ascii_case(b"connection") {
            for item in list_items(value) {
                if item.eq_ignore_ascii_case(b"close") {
                    self.conn_close = true;
                } else if item.eq_ignore_ascii_case(b"keep-alive") {
                    self.conn_keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            if value.eq_ignore_ascii_case(b"100-continue") {
                self.expect_continue = true;
            }
        } else if name.eq_ignore_ascii_case(b"host") {
            // Two Host fields make the target authority ambiguous (RFC 9112 §3.2).
            self.host_count += 1;
            if self.host_count > 1 {
                return Err(HeadError::Malformed("multiple Host fields"));
            }
        }
        Ok(())
    }

    fn framing(&self, minor_version: u8) -> Result<Framing, HeadError> {
        // A request with both is refused outright, whatever the Transfer-Encoding says
        // (RFC 9112 §6.3 allows it; a proxy gains nothing by guessing).
        if self.framing.has_transfer_encoding() && self.framing.content_length().is_some() {
            return Err(HeadError::LengthAndChunked);
        }
        Ok(self.framing.framing(minor_version)?)
    }
}

fn map_httparse_error(e: httparse::Error, window: &[u8]) -> HeadError {
    match e {
        httparse::Error::TooManyHeaders => HeadError::TooManyHeaders,
        httparse::Error::Version if names_other_http_version(window) => {
            HeadError::UnsupportedVersion
        }
        httparse::Error::Version => HeadError::Malformed("invalid HTTP version"),
        httparse::Error::HeaderName => HeadError::Malformed("invalid header name"),
        httparse::Error::HeaderValue => HeadError::Malformed("invalid header value"),
        httparse::Error::NewLine => HeadError::Malformed("invalid line ending"),
        httparse::Error::Token | httparse::Error::Status => {
            HeadError::Malformed("invalid request line")
        }
    }
}

/// Whether the request line's version token looks like `HTTP/<digit>…`: a real but
/// unsupported version (505) rather than garbage (400). The line must be exactly
/// `method SP target SP version`, so `GET /a b HTTP/1.1` stays a 400.
fn names_other_http_version(window: &[u8]) -> bool {
    let start = window
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(window.len());
    let line = window.get(start..).unwrap_or_default();
    let line = line
        .get(..memchr::memchr2(b'\r', b'\n', line).unwrap_or(line.len()))
        .unwrap_or_default();
    let mut parts = line.splitn(3, |&b| b == b' ');
    let (Some(_method), Some(_target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    !version.contains(&b' ')
        && matches!(version, [b'H', b'T', b'T', b'P', b'/', d, ..] if d.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::super::{MAX_HEADERS, MAX_HEAD_BYTES};
    use super::*;

    fn parse(s: &[u8]) -> Result<Option<RequestHead>, HeadError> {
        let mut buf = BytesMut::from(s);
        parse_request_head(&mut buf, MAX_HEAD_BYTES)
    }

    fn head(s: &str) -> RequestHead {
        parse(s.as_bytes()).unwrap().unwrap()
    }

    fn err(s: &str) -> HeadError {
        parse(s.as_bytes()).unwrap_err()
    }

    #[test]
    fn typical_post() {
        let raw = "POST /v1/chat/completions?x=1&y HTTP/1.1\r\nHost: api.example\r\n\
                   Content-Type: application/json\r\nX-Bin: @\r\nContent-Length: 17\r\n\r\n";
        let mut bytes = raw.as_bytes().to_vec();
        // a non-UTF-8 byte in a header value must survive untouched
        let pos = bytes.iter().position(|b| *b == b'@').unwrap();
        bytes[pos] = 0xff;
        bytes.extend_from_slice(b"{\"model\":\"gpt-4\"}NEXT");
        let mut buf = BytesMut::from(&bytes[..]);
        let h = parse_request_head(&mut buf, MAX_HEAD_BYTES)
            .unwrap()
            .unwrap();
        assert_eq!(h.method(), Method::Post);
        assert_eq!(h.method_str(), "POST");
        assert_eq!(h.target(), "/v1/chat/completions?x=1&y");
        assert_eq!(h.path(), "/v1/chat/completions");
        assert_eq!(h.query(), Some("x=1&y"));
        assert_eq!(h.minor_version(), 1);
        assert_eq!(h.header("content-type"), Some(&b"application/json"[..]));
        assert_eq!(h.header("CONTENT-TYPE"), Some(&b"application/json"[..]));
        assert_eq!(h.header("x-bin"), Some(&[0xffu8][..]));
        assert_eq!(h.header("missing"), None);
        assert_eq!(
            h.header_bytes("host").unwrap(),
            Bytes::from_static(b"api.example")
        );
        assert_eq!(h.framing(), Framing::Length(17));
        assert!(h.keep_alive());
        assert!(!h.expects_continue());
        assert_eq!(h.header_count(), 4);
        let names: Vec<&str> = h.headers().map(|(n, _)| n).collect();
        assert_eq!(names, ["Host", "Content-Type", "X-Bin", "Content-Length"]);
        assert_eq!(h.head_len(), bytes.len() - 17 - 4);
        assert_eq!(&buf[..], b"{\"model\":\"gpt-4\"}NEXT");
    }

    #[test]
    fn methods() {
        for (m, want) in [
            ("GET", Method::Get),
            ("HEAD", Method::Head),
            ("POST", Method::Post),
            ("PUT", Method::Put),
            ("DELETE", Method::Delete),
            ("OPTIONS", Method::Options),
            ("PATCH", Method::Patch),
            ("TRACE", Method::Other),
            ("get", Method::Other),
        ] {
            let h = head(&format!("{m} / HTTP/1.1\r\n\r\n"));
            assert_eq!(h.method(), want, "{m}");
            assert_eq!(h.method_str(), m);
            assert_eq!(h.framing(), Framing::None);
        }
    }

    #[test]
    fn path_without_query() {
        let h = head("GET /health HTTP/1.1\r\n\r\n");
        assert_eq!(h.path(), "/health");
        assert_eq!(h.query(), None);
        let h = head("GET /x? HTTP/1.1\r\n\r\n");
        assert_eq!(h.path(), "/x");
        assert_eq!(h.query(), Some(""));
    }

    #[test]
    fn partial_heads_need_more() {
        let full = b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n";
        for n in 0..full.len() {
            assert_eq!(parse(&full[..n]), Ok(None), "prefix {n}");
        }
        assert!(parse(full).unwrap().is_some());
    }

    #[test]
    fn leading_empty_lines_tolerated() {
        let mut buf = BytesMut::from(&b"\r\n\r\nGET / HTTP/1.1\r\n\r\nrest"[..]);
        let h = parse_request_head(&mut buf, MAX_HEAD_BYTES)
            .unwrap()
            .unwrap();
        assert_eq!(h.target(), "/");
        assert_eq!(h.head_len(), 4 + 18);
        assert_eq!(&buf[..], b"rest");
        assert_eq!(parse(b"\r\n"), Ok(None));
    }

    #[test]
    fn keep_alive_rules() {
        assert!(head("GET / HTTP/1.1\r\n\r\n").keep_alive());
        assert!(!head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive());
        assert!(!head("GET / HTTP/1.1\r\nConnection: Upgrade, CLOSE\r\n\r\n").keep_alive());
        assert!(!head("GET / HTTP/1.1\r\nConnection: x\r\nconnection: close\r\n\r\n").keep_alive());
        assert!(head("GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n").keep_alive());
        assert!(head("GET / HTTP/1.1\r\nConnection: closed\r\n\r\n").keep_alive());
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive());
        assert!(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive());
        assert!(!head("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").keep_alive());
        assert_eq!(head("GET / HTTP/1.0\r\n\r\n").minor_version(), 0);
    }

    #[test]
    fn expect_continue() {
        assert!(
            head("POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n")
                .expects_continue()
        );
        assert!(!head("POST / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n").expects_continue());
        assert!(!head("POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").expects_continue());
    }

    #[test]
    fn content_length_rules() {
        let cl =
            |v: &str| parse(format!("POST / HTTP/1.1\r\nContent-Length: {v}\r\n\r\n").as_bytes());
        assert_eq!(cl("0").unwrap().unwrap().framing(), Framing::Length(0));
        assert_eq!(cl("5, 5").unwrap().unwrap().framing(), Framing::Length(5));
        assert_eq!(cl("007").unwrap().unwrap().framing(), Framing::Length(7));
        assert_eq!(
            cl("18446744073709551615").unwrap().unwrap().framing(),
            Framing::Length(u64::MAX)
        );
        for bad in [
            "",
            "5, 6",
            "-1",
            "+5",
            "0x10",
            "5 5",
            "1.0",
            "18446744073709551616",
            ",",
        ] {
            assert_eq!(cl(bad), Err(HeadError::BadContentLength), "{bad:?}");
        }
        let two = |a: &str, b: &str| {
            parse(
                format!("POST / HTTP/1.1\r\nContent-Length: {a}\r\ncontent-length: {b}\r\n\r\n")
                    .as_bytes(),
            )
        };
        assert_eq!(
            two("3", "3").unwrap().unwrap().framing(),
            Framing::Length(3)
        );
        assert_eq!(two("3", "4"), Err(HeadError::BadContentLength));
    }

    #[test]
    fn transfer_encoding_rules() {
        let te = |v: &str| {
            parse(format!("POST / HTTP/1.1\r\nTransfer-Encoding: {v}\r\n\r\n").as_bytes())
        };
        assert_eq!(te("chunked").unwrap().unwrap().framing(), Framing::Chunked);
        assert_eq!(te("Chunked").unwrap().unwrap().framing(), Framing::Chunked);
        assert_eq!(
            te(" , chunked").unwrap().unwrap().framing(),
            Framing::Chunked
        );
        for bad in [
            "gzip",
            "chunked, gzip",
            "chunked, chunked",
            "",
            "chunkedx",
            "identity",
        ] {
            assert_eq!(te(bad), Err(HeadError::BadTransferEncoding), "{bad:?}");
        }
        assert_eq!(
            te("gzip, chunked"),
            Err(HeadError::UnsupportedTransferCoding)
        );
        assert_eq!(
            err("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"),
            HeadError::UnsupportedTransferCoding
        );
        assert_eq!(
            err("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
            HeadError::BadTransferEncoding
        );
        assert_eq!(
            err("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            HeadError::BadTransferEncoding
        );
    }

    #[test]
    fn length_and_chunked_rejected() {
        for raw in [
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nContent-Length: 0\r\n\r\n",
        ] {
            assert_eq!(err(raw), HeadError::LengthAndChunked, "{raw:?}");
        }
    }

    #[test]
    fn malformed_heads() {
        for raw in [
            "GET  / HTTP/1.1\r\n\r\n",
            "GET /a b HTTP/1.1\r\n\r\n",
            "G(T / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            "GET / HTTP/1.1\r\nName : x\r\n\r\n",
            "GET / HTTP/1.1\r\nName: a\x01b\r\n\r\n",
            "GET / HTTP/1.1\r\nName: a\r\n folded\r\n\r\n",
            "GET / HTTP/1.1\rX\r\n\r\n",
            "GET / XTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        ] {
            let e = err(raw);
            assert!(matches!(e, HeadError::Malformed(_)), "{raw:?} -> {e:?}");
            assert_eq!(e.status(), 400);
        }
    }

    #[test]
    fn unsupported_versions() {
        for raw in [
            "GET / HTTP/2.0\r\n\r\n",
            "GET / HTTP/1.2\r\n\r\n",
            "GET / HTTP/0.9\r\n\r\n",
            "GET / HTTP/3",
        ] {
            assert_eq!(err(raw), HeadError::UnsupportedVersion, "{raw:?}");
        }
        assert_eq!(HeadError::UnsupportedVersion.status(), 505);
        assert_eq!(
            err("GET / HTTP/x.1\r\n\r\n"),
            HeadError::Malformed("invalid HTTP version")
        );
    }

    #[test]
    fn too_large() {
        let mut raw = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
        raw.resize(200, b'a');
        // incomplete and at the bound
        let mut buf = BytesMut::from(&raw[..]);
        assert_eq!(parse_request_head(&mut buf, 200), Err(HeadError::TooLarge));
        assert_eq!(parse_request_head(&mut buf, 201), Ok(None));
        // complete but longer than the bound
        raw.extend_from_slice(b"\r\n\r\n");
        let mut buf = BytesMut::from(&raw[..]);
        assert_eq!(parse_request_head(&mut buf, 203), Err(HeadError::TooLarge));
        assert_eq!(buf.len(), 204, "nothing consumed on error");
        assert_eq!(
            parse_request_head(&mut buf, 204)
                .unwrap()
                .unwrap()
                .head_len(),
            204
        );
        assert_eq!(HeadError::TooLarge.status(), 431);
        // the real default bound
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD_BYTES, b'a');
        let mut buf = BytesMut::from(&big[..]);
        assert_eq!(
            parse_request_head(&mut buf, MAX_HEAD_BYTES),
            Err(HeadError::TooLarge)
        );
    }

    #[test]
    fn too_many_headers() {
        let build = |n: usize| {
            let mut s = String::from("GET / HTTP/1.1\r\n");
            for i in 0..n {
                s.push_str(&format!("h{i}: v\r\n"));
            }
            s.push_str("\r\n");
            s
        };
        assert_eq!(head(&build(MAX_HEADERS)).header_count(), MAX_HEADERS);
        assert_eq!(err(&build(MAX_HEADERS + 1)), HeadError::TooManyHeaders);
        assert_eq!(HeadError::TooManyHeaders.status(), 431);
    }

    #[test]
    fn statuses_and_display() {
        assert_eq!(HeadError::BadContentLength.status(), 400);
        assert_eq!(HeadError::LengthAndChunked.status(), 400);
        assert_eq!(HeadError::BadTransferEncoding.status(), 400);
        assert_eq!(HeadError::UnsupportedTransferCoding.status(), 501);
        assert_eq!(
            HeadError::Malformed("x").to_string(),
            "malformed request head: x"
        );
    }

    #[test]
    fn pipelined_heads_split_cleanly() {
        let mut buf = BytesMut::from(
            &b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\nConnection: close\r\n\r\n"[..],
        );
        let a = parse_request_head(&mut buf, MAX_HEAD_BYTES)
            .unwrap()
            .unwrap();
        let b = parse_request_head(&mut buf, MAX_HEAD_BYTES)
            .unwrap()
            .unwrap();
        assert_eq!((a.path(), a.keep_alive()), ("/a", true));
        assert_eq!((b.path(), b.keep_alive()), ("/b", false));
        assert!(buf.is_empty());
        assert_eq!(parse_request_head(&mut buf, MAX_HEAD_BYTES), Ok(None));
    }

    #[test]
    fn absolute_form_targets_give_their_path() {
        let cases = [
            ("http://example.com/healthz", "/healthz", None),
            (
                "HTTP://Example.com:4000/v1/messages?beta=true",
                "/v1/messages",
                Some("beta=true"),
            ),
            (
                "https://h/v1/chat/completions",
                "/v1/chat/completions",
                None,
            ),
            ("http://example.com", "/", None),
            ("http://example.com?x=1", "/", Some("x=1")),
            ("/v1/models", "/v1/models", None),
            ("httpx://not-a-scheme/a", "httpx://not-a-scheme/a", None),
        ];
        for (target, path, query) in cases {
            let raw = format!("GET {target} HTTP/1.1\r\nhost: h\r\n\r\n");
            let mut buf = BytesMut::from(raw.as_bytes());
            let h = parse_request_head(&mut buf, MAX_HEAD_BYTES)
                .unwrap()
                .unwrap();
            assert_eq!(h.target(), target);
            assert_eq!(h.path(), path, "{target}");
            assert_eq!(h.query(), query, "{target}");
        }
    }
}
