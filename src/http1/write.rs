//! Head writers (responses to clients, requests to providers): start line, header block and chunk framing appended to a reusable
//! `Vec<u8>`, with integers formatted on the stack (no per-call allocation).

/// Interim response sent before reading a body when the client asked `Expect: 100-continue`.
pub const CONTINUE_100: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The zero-size chunk plus the empty trailer section that ends a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// How the response body will be delimited; decides the framing header written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseBody {
    /// No body: `content-length: 0`, or no framing header at all for 1xx, 204 and 304, which
    /// never carry one.
    Empty,
    /// Exactly this many bytes follow: `content-length: n`.
    Length(u64),
    /// Chunked: `transfer-encoding: chunked`; end the body with [`LAST_CHUNK`].
    Chunked,
    /// The body runs until the connection closes: no framing header, and `connection: close`
    /// is always written. For streaming to HTTP/1.0 clients, which do not know chunked.
    CloseDelimited,
}

/// A header the writers refused to write. Nothing was appended: the output is as it was before
/// the call. Carries the position in the caller's list, never the bytes (they may be hostile).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderRefused {
    /// Index of the refused field in the `headers` slice given to the writer.
    pub index: usize,
    /// What was wrong with it.
    pub reason: RefusedBecause,
}

/// Why [`HeaderRefused`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusedBecause {
    /// The name is empty or not an RFC 9110 token.
    Name,
    /// The value holds CR, LF, NUL or another control byte.
    Value,
    /// `content-length` or `transfer-encoding`: framing comes from the body kind, not a caller.
    Framing,
}

impl std::fmt::Display for HeaderRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let why = match self.reason {
            RefusedBecause::Name => "its name is not a token",
            RefusedBecause::Value => "its value holds a control byte (CR, LF, NUL, ...)",
            RefusedBecause::Framing => "it is a framing header",
        };
        write!(f, "header #{} refused: {why}", self.index)
    }
}

/// Append `HTTP/1.1 {status} {reason}\r\n`, the given headers, the framing header for
/// `body`, `connection: close` when `!keep_alive` (or the body is close-delimited), and the
/// blank line. Every name must be a token and every value a valid field value (no CR, LF, NUL
/// or other control byte), and no caller passes `content-length` or `transfer-encoding`:
/// this is checked here, in every build, so no bug upstream of the writer can split a
/// response. A refused header leaves `out` untouched and writes nothing.
pub fn write_response_head(
    out: &mut Vec<u8>,
    status: u16,
    headers: &[(&str, &[u8])],
    body: ResponseBody,
    keep_alive: bool,
) -> Result<(), HeaderRefused> {
    check_fields(headers)?;
    // A status outside 100..=999 would not be three digits; it can only be a bug: say 500.
    let status = if (100..=999).contains(&status) {
        status
    } else {
        500
    };
    out.extend_from_slice(b"HTTP/1.1 ");
    write_decimal(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    write_fields(out, headers);
    match body {
        ResponseBody::Empty if status < 200 || status == 204 || status == 304 => {}
        ResponseBody::Empty => out.extend_from_slice(b"content-length: 0\r\n"),
        ResponseBody::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            write_decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        ResponseBody::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        ResponseBody::CloseDelimited => {}
    }
    if !keep_alive || body == ResponseBody::CloseDelimited {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Append `{method} {target} HTTP/1.1\r\n`, the given headers, `content-length`, and the
/// blank line: the head of a request with a fixed-length body. The same checks as
/// [`write_response_head`], plus: `method` must be a token and `target` visible ASCII.
pub fn write_request_head(
    out: &mut Vec<u8>,
    method: &str,
    target: &str,
    headers: &[(&str, &[u8])],
    content_length: u64,
) -> Result<(), HeaderRefused> {
    check_fields(headers)?;
    if !is_token(method.as_bytes()) || !is_request_target(target.as_bytes()) {
        // Not a header, but the same hazard: report it as the start line (index past the end).
        return Err(HeaderRefused {
            index: headers.len(),
            reason: RefusedBecause::Value,
        });
    }
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    write_fields(out, headers);
    out.extend_from_slice(b"content-length: ");
    write_decimal(out, content_length);
    out.extend_from_slice(b"\r\n\r\n");
    Ok(())
}

/// May `value` be written as a field value? The bytes RFC 9110 §5.5 allows: visible ASCII,
/// obs-text, space and tab; never CR, LF, NUL or other controls (header injection).
pub fn is_valid_field_value(value: &[u8]) -> bool {
    // A fold, not `all`: without the early exit the compiler checks 32 bytes at a time, and
    // every header of every head written goes through here.
    value.iter().fold(true, |ok, &b| {
        ok & ((b >= 0x20 && b != 0x7f) | (b == b'\t'))
    })
}

/// Is `name` an RFC 9110 token (`tchar`s, at least one)?
pub fn is_token(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| is_tchar(b))
}

/// Is `b` an RFC 9110 `tchar`? One table lookup.
pub fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

const TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    t
};

/// Visible ASCII only: no space, no control byte (an origin-form or absolute-form target).
fn is_request_target(target: &[u8]) -> bool {
    !target.is_empty() && target.iter().all(|&b| (0x21..0x7f).contains(&b))
}

/// Refuse, in every build, any field that could break the head it is written into.
fn check_fields(headers: &[(&str, &[u8])]) -> Result<(), HeaderRefused> {
    for (index, (name, value)) in headers.iter().enumerate() {
        let reason = if !is_token(name.as_bytes()) {
            RefusedBecause::Name
        } else if !is_valid_field_value(value) {
            RefusedBecause::Value
        } else if name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("transfer-encoding")
        {
            RefusedBecause::Framing
        } else {
            continue;
        };
        return Err(HeaderRefused { index, reason });
    }
    Ok(())
}

/// Write fields already passed by [`check_fields`].
fn write_fields(out: &mut Vec<u8>, headers: &[(&str, &[u8])]) {
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
}

/// Append one chunk: `{len:x}\r\n{data}\r\n`. Empty `data` writes nothing, because a
/// zero-size chunk would end the body.
pub fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    write_chunk_header(out, data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Append only the `{len:x}\r\n` line of a chunk, for callers that send the data from its own
/// buffer (vectored write). The caller must follow it with exactly `len` bytes and `\r\n`.
/// `len == 0` writes nothing.
pub fn write_chunk_header(out: &mut Vec<u8>, len: usize) {
    if len == 0 {
        return;
    }
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    let mut n = len as u64;
    while n > 0 && i > 0 {
        i -= 1;
        if let Some(slot) = digits.get_mut(i) {
            *slot = b"0123456789abcdef"[(n & 0xf) as usize];
        }
        n >>= 4;
    }
    out.extend_from_slice(digits.get(i..).unwrap_or_default());
    out.extend_from_slice(b"\r\n");
}

/// Standard reason phrase for `status`; `""` for codes without one (the status line then
/// ends in `{status} \r\n`, which RFC 9112 §4 allows).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        499 => "Client Closed Request",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        529 => "Site Overloaded",
        _ => "",
    }
}

/// Append `n` in decimal without allocating.
fn write_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        if i == 0 {
            break;
        }
        i -= 1;
        if let Some(slot) = digits.get_mut(i) {
            *slot = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(i..).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table and the fold against the RFC's definitions, spelled out byte by byte.
    #[test]
    fn token_and_value_checks_match_the_rfc_for_every_byte() {
        for b in 0..=255u8 {
            let tchar = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            assert_eq!(is_tchar(b), tchar, "{b:#x}");
            assert_eq!(is_token(&[b'a', b, b'z']), tchar, "{b:#x}");
            let value_ok = b == b'\t' || (b >= 0x20 && b != 0x7f);
            for len in [1usize, 31, 32, 33, 100] {
                for at in [0, len / 2, len - 1] {
                    let mut v = vec![b'x'; len];
                    v[at] = b;
                    assert_eq!(
                        is_valid_field_value(&v),
                        value_ok,
                        "{b:#x} at {at} of {len}"
                    );
                }
            }
        }
        assert!(!is_token(b""));
        assert!(is_valid_field_value(b""));
    }

    fn head(
        status: u16,
        headers: &[(&str, &[u8])],
        body: ResponseBody,
        keep_alive: bool,
    ) -> String {
        let mut out = Vec::new();
        write_response_head(&mut out, status, headers, body, keep_alive).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn response_heads() {
        assert_eq!(
            head(
                200,
                &[("content-type", b"application/json")],
                ResponseBody::Length(42),
                true
            ),
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 42\r\n\r\n"
        );
        assert_eq!(
            head(
                200,
                &[
                    ("content-type", b"text/event-stream"),
                    ("cache-control", b"no-cache")
                ],
                ResponseBody::Chunked,
                true
            ),
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\
             transfer-encoding: chunked\r\n\r\n"
        );
        assert_eq!(
            head(400, &[], ResponseBody::Empty, false),
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
        assert_eq!(
            head(204, &[], ResponseBody::Empty, true),
            "HTTP/1.1 204 No Content\r\n\r\n"
        );
        assert_eq!(
            head(304, &[], ResponseBody::Empty, true),
            "HTTP/1.1 304 Not Modified\r\n\r\n"
        );
        assert_eq!(
            head(200, &[], ResponseBody::CloseDelimited, true),
            "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n"
        );
        assert_eq!(
            head(599, &[], ResponseBody::Length(u64::MAX), true),
            "HTTP/1.1 599 \r\ncontent-length: 18446744073709551615\r\n\r\n"
        );
        assert_eq!(
            head(200, &[], ResponseBody::Length(0), true),
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
        );
    }

    #[test]
    fn appends_without_clearing() {
        let mut out = b"x".to_vec();
        write_response_head(&mut out, 200, &[], ResponseBody::Empty, true).unwrap();
        write_chunk(&mut out, b"ab");
        assert_eq!(
            out,
            b"xHTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n2\r\nab\r\n"
        );
    }

    #[test]
    fn chunks() {
        let mut out = Vec::new();
        write_chunk(&mut out, b"");
        assert!(out.is_empty());
        write_chunk(&mut out, b"hello");
        assert_eq!(out, b"5\r\nhello\r\n");
        for len in [1usize, 9, 10, 15, 16, 255, 256, 4096, 65535, 1 << 20] {
            let mut out = Vec::new();
            write_chunk(&mut out, &vec![b'z'; len]);
            let want = format!("{len:x}\r\n");
            assert!(out.starts_with(want.as_bytes()), "{len}");
            assert_eq!(out.len(), want.len() + len + 2);
            assert!(out.ends_with(b"z\r\n"));
        }
        let mut out = Vec::new();
        write_chunk_header(&mut out, usize::MAX);
        assert_eq!(out, format!("{:x}\r\n", usize::MAX).as_bytes());
        out.clear();
        write_chunk_header(&mut out, 0);
        assert!(out.is_empty());
    }

    #[test]
    fn decimals() {
        for n in [0u64, 1, 9, 10, 99, 100, 12345, u64::MAX] {
            let mut out = Vec::new();
            write_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }

    #[test]
    fn reasons() {
        assert_eq!(reason_phrase(200), "OK");
        assert_eq!(reason_phrase(431), "Request Header Fields Too Large");
        assert_eq!(reason_phrase(505), "HTTP Version Not Supported");
        assert_eq!(reason_phrase(299), "");
        assert_eq!(CONTINUE_100, b"HTTP/1.1 100 Continue\r\n\r\n");
        assert_eq!(LAST_CHUNK, b"0\r\n\r\n");
    }

    #[test]
    fn request_head_parses_back() {
        let mut out = Vec::new();
        write_request_head(
            &mut out,
            "POST",
            "/v1/chat/completions",
            &[("host", b"api.example.com"), ("x-api-key", b"k\tv")],
            1234,
        )
        .unwrap();
        assert_eq!(
            out,
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: api.example.com\r\nx-api-key: k\tv\r\ncontent-length: 1234\r\n\r\n"
        );
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut req = httparse::Request::new(&mut headers);
        assert_eq!(
            req.parse(&out).unwrap(),
            httparse::Status::Complete(out.len())
        );
        assert_eq!(req.method, Some("POST"));
        assert_eq!(req.headers.len(), 3);
        assert_eq!(req.headers[2].value, b"1234");
    }

    #[test]
    fn field_values() {
        assert!(is_valid_field_value(b"Bearer sk-abc \t\x80\xff"));
        assert!(is_valid_field_value(b""));
        for bad in [&b"a\r\nb: c"[..], b"a\nb", b"a\0", b"\x7f", b"\x1b[0m"] {
            assert!(!is_valid_field_value(bad), "{bad:?}");
        }
    }

    #[test]
    fn refuses_header_injection_in_every_build() {
        let hostile: [&[u8]; 6] = [
            b"openai/x\r\nSet-Cookie: pwned=1",
            b"x\r\n\r\nHTTP/1.1 200 OK",
            b"a\nb",
            b"a\rb",
            b"nul\0here",
            b"esc\x1b[0m",
        ];
        for value in hostile {
            let mut out = b"kept".to_vec();
            let err = write_response_head(
                &mut out,
                200,
                &[("x-ok", b"1"), ("x-ringway-model", value)],
                ResponseBody::Length(0),
                true,
            )
            .unwrap_err();
            assert_eq!(err.index, 1);
            assert_eq!(err.reason, RefusedBecause::Value);
            assert_eq!(out, b"kept", "nothing appended for {value:?}");
            let mut out = Vec::new();
            let err = write_request_head(&mut out, "POST", "/v1/messages", &[("x", value)], 0)
                .unwrap_err();
            assert_eq!(err.reason, RefusedBecause::Value);
            assert!(out.is_empty());
        }
        for name in ["", "bad name", "a:b", "x\r\ny", "caf\u{e9}"] {
            let mut out = Vec::new();
            let err =
                write_response_head(&mut out, 200, &[(name, b"v")], ResponseBody::Empty, true)
                    .unwrap_err();
            assert_eq!(err.reason, RefusedBecause::Name, "{name:?}");
            assert!(out.is_empty());
        }
        for name in ["content-length", "Transfer-Encoding"] {
            let mut out = Vec::new();
            let err =
                write_response_head(&mut out, 200, &[(name, b"5")], ResponseBody::Empty, true)
                    .unwrap_err();
            assert_eq!(err.reason, RefusedBecause::Framing);
        }
        let mut out = Vec::new();
        assert!(write_request_head(&mut out, "POST", "/a b", &[], 0).is_err());
        assert!(write_request_head(&mut out, "PO ST", "/a", &[], 0).is_err());
        assert!(write_request_head(&mut out, "POST", "/a\r\nx: y", &[], 0).is_err());
        assert!(out.is_empty());
        // A status that is not three digits cannot be written as such: it becomes a 500.
        let mut out = Vec::new();
        write_response_head(&mut out, 7, &[], ResponseBody::Length(0), true).unwrap();
        assert!(out.starts_with(b"HTTP/1.1 500 "));
    }

    #[test]
    fn tokens() {
        assert!(is_token(b"x-ringway-model"));
        assert!(is_token(b"!#$%&'*+-.^_`|~09azAZ"));
        for bad in [&b""[..], b"a b", b"a:b", b"a\0", b"(x)", b"\xe9"] {
            assert!(!is_token(bad), "{bad:?}");
        }
    }
}
