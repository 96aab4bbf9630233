//! Sans-IO HTTP/1.1 for the load generator: target URL parsing, request bytes, and an
//! incremental response reader (head, then a Content-Length, chunked or read-until-close body).

use std::fmt;

/// Largest response head accepted; a longer one is a broken or hostile server.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most response headers parsed.
pub const MAX_HEADERS: usize = 64;
/// Longest chunk-size line (digits plus extensions) accepted.
pub const MAX_CHUNK_LINE: usize = 4096;
/// Most trailer bytes accepted after the last chunk.
pub const MAX_TRAILER_BYTES: usize = 64 * 1024;
/// Hex digits in a chunk size; 15 keeps the value inside u64 without overflow checks.
const MAX_CHUNK_DIGITS: u8 = 15;

/// Why a URL or a response was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// The URL is not `http://HOST[:PORT][/PATH]`.
    BadUrl,
    /// `https://` was given; this tool speaks plain HTTP only.
    TlsUnsupported,
    /// The response head exceeded [`MAX_HEAD_BYTES`].
    HeadTooLarge,
    /// The response head did not parse.
    BadHead,
    /// Content-Length missing digits or conflicting duplicates.
    BadContentLength,
    /// A malformed chunk-size line or chunk terminator.
    BadChunk,
    /// The trailer section exceeded [`MAX_TRAILER_BYTES`].
    TrailerTooLarge,
    /// The connection closed before the response was complete.
    Truncated,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HttpError::BadUrl => "URL must look like http://HOST[:PORT][/PATH]",
            HttpError::TlsUnsupported => "https is not supported; point the tool at plain HTTP",
            HttpError::HeadTooLarge => "response head too large",
            HttpError::BadHead => "malformed response head",
            HttpError::BadContentLength => "malformed content-length",
            HttpError::BadChunk => "malformed chunked body",
            HttpError::TrailerTooLarge => "trailer section too large",
            HttpError::Truncated => "connection closed mid-response",
        })
    }
}

/// A target URL split into the parts a request needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// `host:port` as given, for resolution and the Host header.
    pub authority: String,
    /// The request path (with any query), never empty.
    pub path: String,
}

/// Split `http://HOST[:PORT][/PATH]`. An empty or `/` path becomes `default_path` (the
/// format's standard endpoint); any other path is used verbatim, so odd gateways still work.
pub fn parse_url(url: &str, default_path: &str) -> Result<Url, HttpError> {
    if url.starts_with("https://") {
        return Err(HttpError::TlsUnsupported);
    }
    let rest = url.strip_prefix("http://").ok_or(HttpError::BadUrl)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (rest.get(..i).unwrap_or(""), rest.get(i..).unwrap_or("")),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains(|c: char| c.is_whitespace() || c == '@') {
        return Err(HttpError::BadUrl);
    }
    // A bare host gets port 80; a bracketed IPv6 literal keeps its colons.
    let has_port = match authority.rfind(']') {
        Some(close) => authority
            .get(close + 1..)
            .is_some_and(|s| s.starts_with(':')),
        None => authority.contains(':'),
    };
    let authority = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let path = if path.is_empty() || path == "/" {
        default_path.to_owned()
    } else {
        path.to_owned()
    };
    Ok(Url { authority, path })
}

/// The bytes of one `POST` with a JSON body. Built once per target and reused for every
/// request, so the load generator spends nothing on serialisation during a run.
pub fn build_post(url: &Url, headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 256);
    out.extend_from_slice(b"POST ");
    out.extend_from_slice(url.path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(url.authority.as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: application/json\r\ncontent-length: ");
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for (k, v) in headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// What the response head said, as far as timing and connection reuse care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// Status code.
    pub status: u16,
    /// The server will accept another request on this connection.
    pub keep_alive: bool,
    /// `content-type: text/event-stream`.
    pub event_stream: bool,
}

/// Where one `feed` call stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// All input was consumed and more is needed.
    NeedMore,
    /// The head completed after `used` input bytes; feed the rest again.
    Head {
        /// Input bytes that belonged to the head.
        used: usize,
    },
    /// The response completed after `used` input bytes; anything beyond was not asked for.
    Done {
        /// Input bytes that belonged to this response.
        used: usize,
    },
}

#[derive(Clone, Copy, Debug)]
enum State {
    Head,
    Length(u64),
    ChunkSize {
        value: u64,
        digits: u8,
        after_digits: bool,
        line: usize,
    },
    ChunkData(u64),
    ChunkEnd {
        seen_cr: bool,
    },
    Trailer {
        line: usize,
        total: usize,
    },
    UntilClose,
    Done,
}

/// Incremental reader of one response. Feed it whatever the socket returned, split anywhere.
#[derive(Debug)]
pub struct ResponseReader {
    state: State,
    head_buf: Vec<u8>,
    head: Option<Head>,
}

impl Default for ResponseReader {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponseReader {
    /// A reader waiting for a response head.
    pub fn new() -> Self {
        ResponseReader {
            state: State::Head,
            head_buf: Vec::new(),
            head: None,
        }
    }

    /// The head, once parsed.
    pub fn head(&self) -> Option<Head> {
        self.head
    }

    /// Consume `input`. Body bytes are handed to `body` as they are framed (never chunk-size
    /// lines or trailers). Stops early once the head is complete so the caller can look at it.
    pub fn feed(
        &mut self,
        input: &[u8],
        body: &mut dyn FnMut(&[u8]),
    ) -> Result<Progress, HttpError> {
        if matches!(self.state, State::Head) {
            return self.feed_head(input);
        }
        let mut pos = 0usize;
        while pos < input.len() {
            let rest = input.get(pos..).unwrap_or(&[]);
            match self.state {
                State::Head => return Err(HttpError::BadHead),
                State::Done => break,
                State::Length(left) => {
                    let take = clamp_len(left, rest.len());
                    body(rest.get(..take).unwrap_or(&[]));
                    pos += take;
                    self.state = if left == take as u64 {
                        State::Done
                    } else {
                        State::Length(left - take as u64)
                    };
                }
                State::UntilClose => {
                    body(rest);
                    pos = input.len();
                }
                State::ChunkData(left) => {
                    let take = clamp_len(left, rest.len());
                    body(rest.get(..take).unwrap_or(&[]));
                    pos += take;
                    self.state = if left == take as u64 {
                        State::ChunkEnd { seen_cr: false }
                    } else {
                        State::ChunkData(left - take as u64)
                    };
                }
                State::ChunkSize { .. } | State::ChunkEnd { .. } | State::Trailer { .. } => {
                    let Some(&b) = rest.first() else { break };
                    self.chunk_byte(b)?;
                    pos += 1;
                }
            }
        }
        if matches!(self.state, State::Done) {
            Ok(Progress::Done { used: pos })
        } else {
            Ok(Progress::NeedMore)
        }
    }

    /// The peer closed the connection: fine only for a read-until-close body.
    pub fn eof(&mut self) -> Result<(), HttpError> {
        match self.state {
            State::UntilClose | State::Done => {
                self.state = State::Done;
                Ok(())
            }
            _ => Err(HttpError::Truncated),
        }
    }

    fn feed_head(&mut self, input: &[u8]) -> Result<Progress, HttpError> {
        // The common case is a head that arrives whole in one read: parse it in place.
        let (parsed, buffered_before) = if self.head_buf.is_empty() {
            (parse_head(input)?, 0)
        } else {
            let before = self.head_buf.len();
            let room = MAX_HEAD_BYTES.saturating_sub(before);
            self.head_buf
                .extend_from_slice(input.get(..input.len().min(room)).unwrap_or(&[]));
            (parse_head(&self.head_buf)?, before)
        };
        let Some((head, body, head_len)) = parsed else {
            if self.head_buf.is_empty() {
                if input.len() >= MAX_HEAD_BYTES {
                    return Err(HttpError::HeadTooLarge);
                }
                self.head_buf.extend_from_slice(input);
            } else if self.head_buf.len() >= MAX_HEAD_BYTES {
                return Err(HttpError::HeadTooLarge);
            }
            return Ok(Progress::NeedMore);
        };
        self.head_buf.clear();
        let used = head_len.saturating_sub(buffered_before);
        if (100..200).contains(&head.status) {
            // An interim response (100 Continue, 103 Early Hints): the real one follows.
            return Ok(Progress::Head { used });
        }
        self.head = Some(head);
        self.state = match body {
            BodyKind::Empty => State::Done,
            BodyKind::Length(n) => State::Length(n),
            BodyKind::Chunked => State::ChunkSize {
                value: 0,
                digits: 0,
                after_digits: false,
                line: 0,
            },
            BodyKind::UntilClose => State::UntilClose,
        };
        if matches!(self.state, State::Done) {
            return Ok(Progress::Done { used });
        }
        Ok(Progress::Head { used })
    }

    fn chunk_byte(&mut self, b: u8) -> Result<(), HttpError> {
        self.state = match self.state {
            State::ChunkSize {
                value,
                digits,
                after_digits,
                line,
            } => {
                if line >= MAX_CHUNK_LINE {
                    return Err(HttpError::BadChunk);
                }
                match b {
                    b'\n' if digits == 0 => return Err(HttpError::BadChunk),
                    b'\n' if value == 0 => State::Trailer { line: 0, total: 0 },
                    b'\n' => State::ChunkData(value),
                    b'\r' => State::ChunkSize {
                        value,
                        digits,
                        after_digits: true,
                        line: line + 1,
                    },
                    _ if after_digits => State::ChunkSize {
                        value,
                        digits,
                        after_digits,
                        line: line + 1,
                    },
                    b';' | b' ' | b'\t' if digits > 0 => State::ChunkSize {
                        value,
                        digits,
                        after_digits: true,
                        line: line + 1,
                    },
                    _ => {
                        let d = hex_value(b).ok_or(HttpError::BadChunk)?;
                        if digits >= MAX_CHUNK_DIGITS {
                            return Err(HttpError::BadChunk);
                        }
                        State::ChunkSize {
                            value: (value << 4) | u64::from(d),
                            digits: digits + 1,
                            after_digits,
                            line: line + 1,
                        }
                    }
                }
            }
            State::ChunkEnd { seen_cr } => match b {
                b'\r' if !seen_cr => State::ChunkEnd { seen_cr: true },
                b'\n' => State::ChunkSize {
                    value: 0,
                    digits: 0,
                    after_digits: false,
                    line: 0,
                },
                _ => return Err(HttpError::BadChunk),
            },
            State::Trailer { line, total } => {
                if total >= MAX_TRAILER_BYTES {
                    return Err(HttpError::TrailerTooLarge);
                }
                match b {
                    b'\n' if line == 0 => State::Done,
                    b'\n' => State::Trailer {
                        line: 0,
                        total: total + 1,
                    },
                    b'\r' => State::Trailer {
                        line,
                        total: total + 1,
                    },
                    _ => State::Trailer {
                        line: line + 1,
                        total: total + 1,
                    },
                }
            }
            other => other,
        };
        Ok(())
    }
}

enum BodyKind {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

/// `min(left, avail)` as a usize, without a lossy cast of `left`.
fn clamp_len(left: u64, avail: usize) -> usize {
    usize::try_from(left).map_or(avail, |l| l.min(avail))
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Does a comma-separated header value contain `token` (case-insensitive)?
fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

fn parse_head(buf: &[u8]) -> Result<Option<(Head, BodyKind, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(HttpError::BadHead),
    };
    let status = resp.code.ok_or(HttpError::BadHead)?;
    let http11 = resp.version == Some(1);
    let mut keep_alive = http11;
    let mut chunked = false;
    let mut length: Option<u64> = None;
    let mut event_stream = false;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(h.value).map_err(|_| HttpError::BadContentLength)?;
            let n: u64 = text
                .trim()
                .parse()
                .map_err(|_| HttpError::BadContentLength)?;
            if length.is_some_and(|old| old != n) {
                return Err(HttpError::BadContentLength);
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Only the final coding decides the framing; anything else we cannot decode.
            chunked = h
                .value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            if has_token(h.value, "close") {
                keep_alive = false;
            } else if has_token(h.value, "keep-alive") {
                keep_alive = true;
            }
        } else if h.name.eq_ignore_ascii_case("content-type") {
            event_stream = h
                .value
                .get(..17)
                .is_some_and(|v| v.eq_ignore_ascii_case(b"text/event-stream"));
        }
    }
    let body = if status == 204 || status == 304 || (100..200).contains(&status) {
        BodyKind::Empty
    } else if chunked {
        BodyKind::Chunked
    } else if let Some(n) = length {
        if n == 0 {
            BodyKind::Empty
        } else {
            BodyKind::Length(n)
        }
    } else {
        // Without framing the body runs to the close, so the connection cannot be reused.
        keep_alive = false;
        BodyKind::UntilClose
    };
    Ok(Some((
        Head {
            status,
            keep_alive,
            event_stream,
        },
        body,
        len,
    )))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// Feed `input` split at the given cut points; return the head, the body, and the number
    /// of input bytes the response used.
    fn run(input: &[u8], cuts: &[usize]) -> Result<(Option<Head>, Vec<u8>, usize), HttpError> {
        let mut r = ResponseReader::new();
        let mut body = Vec::new();
        let mut bounds: Vec<usize> = cuts.iter().copied().filter(|&c| c < input.len()).collect();
        bounds.sort_unstable();
        bounds.push(input.len());
        let mut start = 0;
        for end in bounds {
            let mut piece = &input[start..end];
            let mut piece_off = start;
            loop {
                match r.feed(piece, &mut |d| body.extend_from_slice(d))? {
                    Progress::NeedMore => break,
                    Progress::Head { used } => {
                        piece = &piece[used..];
                        piece_off += used;
                    }
                    Progress::Done { used } => return Ok((r.head(), body, piece_off + used)),
                }
            }
            start = end;
        }
        r.eof()?;
        Ok((r.head(), body, input.len()))
    }

    /// Tiny deterministic PRNG (xorshift) so split points vary without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    fn chunked_encode(body: &[u8], sizes: &mut Rng) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = body;
        while !rest.is_empty() {
            let n = (sizes.next() % 40 + 1) as usize;
            let n = n.min(rest.len());
            out.extend_from_slice(format!("{n:x}").as_bytes());
            if sizes.next().is_multiple_of(3) {
                out.extend_from_slice(b";ext=1");
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&rest[..n]);
            out.extend_from_slice(b"\r\n");
            rest = &rest[n..];
        }
        out.extend_from_slice(b"0\r\nx-trailer: yes\r\n\r\n");
        out
    }

    #[test]
    fn url_parsing() {
        let u = parse_url("http://127.0.0.1:4000", "/v1/messages").unwrap();
        assert_eq!(u.authority, "127.0.0.1:4000");
        assert_eq!(u.path, "/v1/messages");
        let u = parse_url("http://localhost/", "/d").unwrap();
        assert_eq!(
            (u.authority.as_str(), u.path.as_str()),
            ("localhost:80", "/d")
        );
        let u = parse_url("http://[::1]:9/x/chat/completions?a=1", "/d").unwrap();
        assert_eq!(u.authority, "[::1]:9");
        assert_eq!(u.path, "/x/chat/completions?a=1");
        assert_eq!(
            parse_url("http://[::1]", "/").unwrap().authority,
            "[::1]:80"
        );
        assert_eq!(parse_url("https://a", "/"), Err(HttpError::TlsUnsupported));
        assert_eq!(parse_url("ftp://a", "/"), Err(HttpError::BadUrl));
        assert_eq!(parse_url("http:///x", "/"), Err(HttpError::BadUrl));
        assert_eq!(parse_url("http://u@h/", "/"), Err(HttpError::BadUrl));
    }

    #[test]
    fn post_bytes() {
        let u = parse_url("http://h:1", "/p").unwrap();
        let req = build_post(&u, &[("x-api-key".into(), "k".into())], b"{}");
        assert_eq!(
            req,
            b"POST /p HTTP/1.1\r\nhost: h:1\r\ncontent-type: application/json\r\ncontent-length: 2\r\nx-api-key: k\r\n\r\n{}"
        );
    }

    #[test]
    fn content_length_any_split() {
        let resp = b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\nhello world";
        for cut in 0..resp.len() {
            for cut2 in cut..resp.len() {
                let (head, body, used) = run(resp, &[cut, cut2]).unwrap();
                let head = head.unwrap();
                assert_eq!(head.status, 200);
                assert!(head.keep_alive);
                assert_eq!(body, b"hello world");
                assert_eq!(used, resp.len());
            }
        }
    }

    #[test]
    fn chunked_random_splits_match_reference() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..300 {
            let len = (rng.next() % 300) as usize;
            let body: Vec<u8> = (0..len).map(|i| (i * 7 + round) as u8).collect();
            let mut wire = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/event-stream\r\n\r\n".to_vec();
            wire.extend(chunked_encode(&body, &mut rng));
            let total = wire.len();
            wire.extend_from_slice(b"EXTRA");
            let cuts: Vec<usize> = (0..(rng.next() % 8))
                .map(|_| (rng.next() % wire.len() as u64) as usize)
                .collect();
            let (head, got, used) = run(&wire, &cuts).unwrap();
            assert_eq!(got, body, "round {round}");
            assert_eq!(
                used, total,
                "bytes after the last chunk are not this response's"
            );
            assert!(head.unwrap().event_stream);
        }
    }

    #[test]
    fn chunked_byte_by_byte() {
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n1;a=b\r\n!\r\n0\r\n\r\n";
        let cuts: Vec<usize> = (1..wire.len()).collect();
        let (_, body, used) = run(wire, &cuts).unwrap();
        assert_eq!(body, b"hello!");
        assert_eq!(used, wire.len());
    }

    #[test]
    fn bad_chunks_are_errors() {
        for wire in [
            &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"[..],
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nabX",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffff\r\n",
        ] {
            assert_eq!(run(wire, &[]), Err(HttpError::BadChunk), "{wire:?}");
        }
    }

    #[test]
    fn truncated_and_until_close() {
        let cut = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc";
        assert_eq!(run(cut, &[5]), Err(HttpError::Truncated));
        let close = b"HTTP/1.1 200 OK\r\n\r\nall of it";
        let (head, body, _) = run(close, &[20]).unwrap();
        assert!(!head.unwrap().keep_alive);
        assert_eq!(body, b"all of it");
    }

    #[test]
    fn connection_rules_and_interim() {
        let (h, _, _) = run(b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n", &[]).unwrap();
        assert!(!h.unwrap().keep_alive);
        let (h, _, _) = run(
            b"HTTP/1.1 503 x\r\nConnection: close\r\ncontent-length: 0\r\n\r\n",
            &[],
        )
        .unwrap();
        let h = h.unwrap();
        assert_eq!((h.status, h.keep_alive), (503, false));
        let (h, body, _) = run(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
            &[3, 30],
        )
        .unwrap();
        assert_eq!(h.unwrap().status, 204);
        assert!(body.is_empty());
        assert_eq!(
            run(
                b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
                &[]
            ),
            Err(HttpError::BadContentLength)
        );
        assert_eq!(run(b"HTTQ/1.1 200\r\n\r\n", &[]), Err(HttpError::BadHead));
    }

    #[test]
    fn head_size_is_bounded() {
        let mut wire = b"HTTP/1.1 200 OK\r\nx-pad: ".to_vec();
        wire.resize(MAX_HEAD_BYTES + 10, b'a');
        assert_eq!(run(&wire, &[100]), Err(HttpError::HeadTooLarge));
        assert_eq!(run(&wire, &[]), Err(HttpError::HeadTooLarge));
    }
}
