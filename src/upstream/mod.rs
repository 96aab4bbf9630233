//! Talking to providers: connect (TCP, then TLS), a per-worker keep-alive pool, sending the
//! request with monoio-http's client codec, and reading the response body chunk by chunk.
//!
//! monoio-http writes the request and parses the response head. Its body decoders are not used:
//! a Content-Length body comes out only once it is complete, a body with no framing headers
//! (read until close) comes out empty, and chunk extensions and trailers are errors. Instead
//! `BodyCodec` (on the sans-IO `http1` chunked decoder) runs on the codec's own read buffer
//! through `FramedRead::next_with`, so every framing streams and stays zero-copy.

pub mod tls;

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use monoio::io::sink::SinkExt;
use monoio::net::TcpStream;
use monoio_codec::{Decoded, Decoder};
use monoio_http::common::error::HttpError;
use monoio_http::h1::codec::ClientCodec;
use monoio_http::h1::payload::{FixedPayload, Payload};
use monoio_http::h1::BorrowFramedRead;

use crate::config::Provider;
use crate::error::{Error, ErrorKind, Result, Retry};
use crate::http1::{BodyDecoder, BodyError, BodyEvent, Framing};

/// How long a resolved provider address is reused before resolving again.
pub const DNS_CACHE_TTL: Duration = Duration::from_secs(60);

type TlsStream = monoio_rustls::ClientTlsStream<TcpStream>;

enum Codec {
    Plain(ClientCodec<TcpStream>),
    Tls(Box<ClientCodec<TlsStream>>),
}

/// One connection to a provider.
pub struct Conn {
    codec: Codec,
    /// Came from the pool: a failure before any response byte may just mean the peer closed it.
    reused: bool,
    /// Requests served so far on this connection.
    pub served: u64,
}

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

/// A provider's response head: header names and values are spans of one frozen buffer
/// (names lower-cased in place), so reading a head allocates one small Vec.
pub struct ResponseHead {
    /// Status code.
    pub status: u16,
    raw: Bytes,
    spans: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>,
    /// Body framing.
    pub framing: BodyFraming,
    /// May the connection be reused once the body is read?
    pub reusable: bool,
}

impl ResponseHead {
    /// Headers in arrival order, names lower-case.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.spans.iter().filter_map(|(n, v)| {
            let name = std::str::from_utf8(self.raw.get(n.clone())?).ok()?;
            Some((name, self.raw.get(v.clone())?))
        })
    }

    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers().find(|(n, _)| *n == name).map(|(_, v)| v)
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

/// Parses response heads off the codec's read buffer, bounded, skipping interim 1xx heads
/// (100 Continue, 103 Early Hints): only the final head answers the request.
struct HeadCodec;

impl Decoder for HeadCodec {
    type Item = ResponseHead;
    type Error = HeadReadError;

    fn decode(
        &mut self,
        src: &mut BytesMut,
    ) -> std::result::Result<Decoded<Self::Item>, Self::Error> {
        loop {
            let window = src
                .get(..src.len().min(MAX_RESPONSE_HEAD_BYTES))
                .unwrap_or_default();
            let Some(end) = memchr::memmem::find(window, b"\r\n\r\n") else {
                if src.len() >= MAX_RESPONSE_HEAD_BYTES {
                    return Err(HeadReadError::TooLarge);
                }
                return Ok(Decoded::Insufficient);
            };
            let mut head = src.split_to(end + 4);
            let mut spans = Vec::with_capacity(16);
            let (status, version) = {
                let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
                let mut resp = httparse::Response::new(&mut headers);
                match resp.parse(&head) {
                    Ok(httparse::Status::Complete(_)) => {}
                    Ok(httparse::Status::Partial) => {
                        return Err(HeadReadError::Malformed("incomplete head".into()))
                    }
                    Err(e) => return Err(HeadReadError::Malformed(e.to_string())),
                }
                let base = head.as_ptr() as usize;
                for h in resp.headers.iter() {
                    let n = h.name.as_ptr() as usize - base;
                    let v = h.value.as_ptr() as usize - base;
                    spans.push((n..n + h.name.len(), v..v + h.value.len()));
                }
                (resp.code.unwrap_or(0), resp.version.unwrap_or(0))
            };
            match status {
                101 => {
                    return Err(HeadReadError::Malformed(
                        "unexpected 101 Switching Protocols".into(),
                    ))
                }
                100..=199 => continue, // interim response: the final one follows
                _ => {}
            }
            for (n, _) in &spans {
                if let Some(name) = head.get_mut(n.clone()) {
                    name.make_ascii_lowercase();
                }
            }
            let raw = head.freeze();
            let mut rh = ResponseHead {
                status,
                raw,
                spans,
                framing: BodyFraming::Empty,
                reusable: false,
            };
            rh.framing = response_framing(&rh)
                .map_err(|e| HeadReadError::Malformed(e.message().to_owned()))?;
            let close = rh
                .headers()
                .filter(|(n, _)| *n == "connection")
                .any(|(_, v)| {
                    v.split(|b| *b == b',')
                        .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
                });
            rh.reusable = !close && version == 1 && rh.framing != BodyFraming::Close;
            return Ok(Decoded::Some(rh));
        }
    }
}

/// Errors while reading a body; `From<io::Error>` lets monoio-codec report IO failures.
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

/// Streams a response body out of the codec's read buffer. Item: `Some(data)` or `None` at the end.
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

impl Decoder for BodyCodec {
    type Item = Option<Bytes>;
    type Error = BodyReadError;

    fn decode(
        &mut self,
        src: &mut BytesMut,
    ) -> std::result::Result<Decoded<Self::Item>, Self::Error> {
        match &mut self.state {
            BodyState::Done => Ok(Decoded::Some(None)),
            BodyState::Length(remaining) => {
                if src.is_empty() {
                    return Ok(Decoded::Insufficient);
                }
                let n = usize::try_from(*remaining)
                    .unwrap_or(usize::MAX)
                    .min(src.len());
                let data = src.split_to(n).freeze();
                *remaining -= n as u64;
                if *remaining == 0 {
                    self.state = BodyState::Done;
                }
                Ok(Decoded::Some(Some(data)))
            }
            BodyState::Chunked(dec) => match dec.decode(src).map_err(BodyReadError::Framing)? {
                BodyEvent::Data(d) => Ok(Decoded::Some(Some(d))),
                BodyEvent::NeedMore => Ok(Decoded::Insufficient),
                BodyEvent::End => {
                    self.state = BodyState::Done;
                    Ok(Decoded::Some(None))
                }
            },
            BodyState::Close => {
                if src.is_empty() {
                    Ok(Decoded::Insufficient)
                } else {
                    Ok(Decoded::Some(Some(src.split().freeze())))
                }
            }
        }
    }

    fn decode_eof(
        &mut self,
        src: &mut BytesMut,
    ) -> std::result::Result<Decoded<Self::Item>, Self::Error> {
        match self.decode(src)? {
            Decoded::Some(item) => Ok(Decoded::Some(item)),
            _ => match self.state {
                // Read-until-close: the close is the end.
                BodyState::Close => {
                    self.state = BodyState::Done;
                    Ok(Decoded::Some(None))
                }
                _ => Err(BodyReadError::UnexpectedEof),
            },
        }
    }
}

impl Conn {
    /// Open a connection: resolve (cached), TCP connect with NODELAY, TLS if configured,
    /// all within the provider's connect timeout.
    pub async fn connect(p: &Provider, dns: &DnsCache) -> Result<Conn> {
        match monoio::time::timeout(p.connect_timeout, Self::connect_inner(p, dns)).await {
            Ok(r) => r,
            Err(_) => Err(Error::new(
                ErrorKind::ConnectTimeout,
                format!(
                    "connecting to provider `{}` timed out after {} ms",
                    p.name,
                    p.connect_timeout.as_millis()
                ),
            )),
        }
    }

    async fn connect_inner(p: &Provider, dns: &DnsCache) -> Result<Conn> {
        let addr = dns.resolve(&p.host, p.port).map_err(|e| {
            Error::new(
                ErrorKind::UpstreamConnect,
                format!("cannot resolve provider `{}` host {}", p.name, p.host),
            )
            .with_cause(e)
        })?;
        let tcp = match TcpStream::connect_addr(addr).await {
            Ok(s) => s,
            Err(e) => {
                // Keep the cached address: forgetting it would make every request to a down
                // provider pay a blocking lookup on the worker thread. It expires with its TTL.
                return Err(Error::new(
                    ErrorKind::UpstreamConnect,
                    format!("cannot connect to provider `{}` at {addr}", p.name),
                )
                .with_cause(e));
            }
        };
        // Small writes (TLS records, request heads) must not wait on delayed ACKs.
        let _ = tcp.set_nodelay(true);
        let codec = match &p.tls {
            None => Codec::Plain(ClientCodec::new(tcp)),
            Some(cfg) => {
                let name =
                    rustls::pki_types::ServerName::try_from(p.host.clone()).map_err(|e| {
                        Error::new(
                            ErrorKind::UpstreamTls,
                            format!("invalid TLS server name {}", p.host),
                        )
                        .with_cause(e)
                    })?;
                let connector = monoio_rustls::TlsConnector::from(cfg.clone());
                let stream = connector.connect(name, tcp).await.map_err(|e| {
                    // TlsError's Display says only "io error"; Debug carries the reason.
                    Error::new(
                        ErrorKind::UpstreamTls,
                        format!("TLS handshake with provider `{}` failed: {e:?}", p.name),
                    )
                })?;
                Codec::Tls(Box::new(ClientCodec::new(stream)))
            }
        };
        Ok(Conn {
            codec,
            reused: false,
            served: 0,
        })
    }

    /// Was this connection taken from the pool?
    pub fn is_reused(&self) -> bool {
        self.reused
    }

    fn io_error(&self, what: &str, e: impl std::error::Error + 'static) -> Error {
        // A pooled connection the peer closed fails exactly like this; a fresh one may not.
        let retry = if self.reused {
            Retry::ReusedOnly
        } else {
            Retry::No
        };
        Error::new(
            ErrorKind::UpstreamReset,
            format!("provider connection failed while {what}"),
        )
        .with_cause(e)
        .with_retry(retry)
    }

    /// Send a request with a fixed body; a provider that stops accepting bytes for `timeout`
    /// fails the request instead of holding it forever.
    pub async fn send(
        &mut self,
        req: http::Request<()>,
        body: Bytes,
        timeout: Duration,
    ) -> Result<()> {
        let (parts, ()) = req.into_parts();
        let req = http::Request::from_parts(
            parts,
            Payload::<Bytes, HttpError>::Fixed(FixedPayload::new(body)),
        );
        let send = async {
            match &mut self.codec {
                Codec::Plain(c) => c.send_and_flush(req).await,
                Codec::Tls(c) => c.send_and_flush(req).await,
            }
        };
        match monoio::time::timeout(timeout, send).await {
            Ok(r) => r.map_err(|e| self.io_error("sending the request", e)),
            Err(_) => Err(Error::new(
                ErrorKind::FirstByteTimeout,
                format!(
                    "provider did not accept the request within {} ms",
                    timeout.as_millis()
                ),
            )),
        }
    }

    /// Wait for the final response head (interim 1xx heads are skipped).
    pub async fn read_head(&mut self, timeout: Duration) -> Result<ResponseHead> {
        let next = async {
            match &mut self.codec {
                Codec::Plain(c) => c.framed_mut().next_with(&mut HeadCodec).await,
                Codec::Tls(c) => c.framed_mut().next_with(&mut HeadCodec).await,
            }
        };
        let res = monoio::time::timeout(timeout, next).await;
        // Nothing at all came back: a pooled connection the provider had already closed.
        let stale = if self.reused && self.read_buffer_empty() {
            Retry::ReusedOnly
        } else {
            Retry::No
        };
        match res {
            Err(_) => Err(Error::new(
                ErrorKind::FirstByteTimeout,
                format!(
                    "provider sent no response within {} ms",
                    timeout.as_millis()
                ),
            )),
            Ok(None) => Err(Error::new(
                ErrorKind::UpstreamReset,
                "provider closed the connection before responding",
            )
            .with_retry(stale)),
            Ok(Some(Ok(head))) => Ok(head),
            Ok(Some(Err(HeadReadError::Io(e)))) => {
                let reset = matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset
                        | io::ErrorKind::BrokenPipe
                        | io::ErrorKind::UnexpectedEof
                );
                Err(Error::new(
                    ErrorKind::UpstreamReset,
                    "provider connection failed before responding",
                )
                .with_cause(e)
                .with_retry(if reset { stale } else { Retry::No }))
            }
            Ok(Some(Err(HeadReadError::TooLarge))) => Err(Error::new(
                ErrorKind::UpstreamProtocol,
                format!("provider response head exceeds {MAX_RESPONSE_HEAD_BYTES} bytes"),
            )),
            Ok(Some(Err(HeadReadError::Malformed(why)))) => Err(Error::new(
                ErrorKind::UpstreamProtocol,
                format!("provider sent an invalid response head: {why}"),
            )),
        }
    }

    fn read_buffer_empty(&mut self) -> bool {
        match &mut self.codec {
            Codec::Plain(c) => c.framed_mut().read_buffer().is_empty(),
            Codec::Tls(c) => c.framed_mut().read_buffer().is_empty(),
        }
    }

    /// The next body chunk (`None` at the end), or an error after `idle` of silence.
    pub async fn read_chunk(
        &mut self,
        body: &mut BodyCodec,
        idle: Duration,
    ) -> Result<Option<Bytes>> {
        // monoio-codec only consults the decoder when bytes are buffered; a finished body
        // must not wait for bytes that will never come.
        if body.is_done() {
            return Ok(None);
        }
        let next = async {
            match &mut self.codec {
                Codec::Plain(c) => c.framed_mut().next_with(body).await,
                Codec::Tls(c) => c.framed_mut().next_with(body).await,
            }
        };
        match monoio::time::timeout(idle, next).await {
            Err(_) => Err(Error::new(
                ErrorKind::IdleTimeout,
                format!(
                    "provider went silent for {} ms mid-response",
                    idle.as_millis()
                ),
            )),
            Ok(None) => Ok(None),
            Ok(Some(Ok(item))) => Ok(item),
            Ok(Some(Err(BodyReadError::Framing(e)))) => Err(Error::new(
                ErrorKind::UpstreamProtocol,
                format!("provider sent a malformed chunked body ({e:?})"),
            )),
            Ok(Some(Err(e))) => Err(Error::new(
                ErrorKind::UpstreamReset,
                "provider connection broke mid-response",
            )
            .with_cause(io::Error::other(e.to_string()))),
        }
    }
}

fn response_framing(head: &ResponseHead) -> Result<BodyFraming> {
    let status = head.status;
    if status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(BodyFraming::Empty);
    }
    if let Some(te) = head.header("transfer-encoding") {
        let last = te
            .rsplit(|b| *b == b',')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        if last.eq_ignore_ascii_case(b"chunked") {
            return Ok(BodyFraming::Chunked);
        }
        if !te.trim_ascii().eq_ignore_ascii_case(b"identity") {
            return Err(Error::new(
                ErrorKind::UpstreamProtocol,
                "provider sent an unsupported Transfer-Encoding",
            ));
        }
    }
    let mut length = None;
    for (_, v) in head.headers().filter(|(n, _)| *n == "content-length") {
        let n = std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::UpstreamProtocol,
                    "provider sent an invalid Content-Length",
                )
            })?;
        if length.is_some_and(|l| l != n) {
            return Err(Error::new(
                ErrorKind::UpstreamProtocol,
                "provider sent conflicting Content-Length",
            ));
        }
        length = Some(n);
    }
    Ok(match length {
        Some(0) => BodyFraming::Empty,
        Some(n) => BodyFraming::Length(n),
        None => BodyFraming::Close,
    })
}

/// Per-worker idle connections, one LIFO stack per provider: the most recently used
/// connection is the likeliest to still be open.
pub struct Pool {
    idle: RefCell<Vec<Vec<(Conn, Instant)>>>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl Pool {
    /// An empty pool for `providers` providers.
    pub fn new(providers: usize, max_idle: usize, idle_timeout: Duration) -> Self {
        Pool {
            idle: RefCell::new((0..providers).map(|_| Vec::new()).collect()),
            max_idle,
            idle_timeout,
        }
    }

    /// Take an idle connection to `provider`, dropping any that idled too long.
    pub fn take(&self, provider: usize) -> Option<Conn> {
        let mut idle = self.idle.borrow_mut();
        let stack = idle.get_mut(provider)?;
        let now = Instant::now();
        while let Some((mut conn, since)) = stack.pop() {
            if now.duration_since(since) < self.idle_timeout {
                conn.reused = true;
                return Some(conn);
            }
        }
        None
    }

    /// Return a connection whose response was fully read.
    pub fn put(&self, provider: usize, conn: Conn) {
        let mut idle = self.idle.borrow_mut();
        if let Some(stack) = idle.get_mut(provider) {
            if self.max_idle == 0 {
                return;
            }
            if stack.len() >= self.max_idle && !stack.is_empty() {
                // Drop the oldest: it is the likeliest to be closed by the peer next.
                stack.remove(0);
            }
            stack.push((conn, Instant::now()));
        }
    }

    /// Idle connections held (all providers).
    pub fn idle_count(&self) -> usize {
        self.idle.borrow().iter().map(Vec::len).sum()
    }
}

/// Per-worker resolver cache. Name lookups block the thread, so they happen at most once per
/// host per `DNS_CACHE_TTL` on each worker; IP literals never do.
#[derive(Default)]
pub struct DnsCache {
    entries: RefCell<HashMap<String, (SocketAddr, Instant)>>,
}

impl DnsCache {
    fn resolve(&self, host: &str, port: u16) -> io::Result<SocketAddr> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let now = Instant::now();
        if let Some((addr, at)) = self.entries.borrow().get(host) {
            if now.duration_since(*at) < DNS_CACHE_TTL && addr.port() == port {
                return Ok(*addr);
            }
        }
        let addr = (host, port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
        self.entries
            .borrow_mut()
            .insert(host.to_owned(), (addr, now));
        Ok(addr)
    }
}
