//! Talking to providers: connect (TCP, then TLS), a per-worker keep-alive pool, writing the
//! request, and reading the response head and body chunk by chunk.
//!
//! The client side is our own, on the same sans-IO pieces as the server side: the request head
//! is written by `http1::write_request_head`, the response head is parsed (bounded, 1xx
//! skipped) by `decode_head`, and `BodyCodec` (on the `http1` chunked decoder) frames the body
//! out of the connection's read buffer, so every framing streams and stays zero-copy. Each
//! connection owns one read buffer that starts small and doubles only while reads fill it:
//! a connection carrying a slow stream holds a couple of KiB, a bulk response still reads in
//! 64 KiB steps. (monoio-http's client codec, used here before, keeps two fixed 8 KiB buffers
//! per connection, which put 5,000 concurrent streams far over their memory budget.)

mod dns;
pub mod tls;

pub use dns::{DnsCache, DNS_CACHE_TTL};

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use monoio::buf::{IoBuf, IoBufMut, SliceMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use crate::config::Provider;
use crate::error::{Error, ErrorKind, Result, Retry};
use crate::http1::{BodyDecoder, BodyError, BodyEvent, Framing, FramingError, FramingFields};

type TlsStream = monoio_rustls::ClientTlsStream<TcpStream>;

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

impl Stream {
    async fn read(&mut self, buf: SliceMut<BytesMut>) -> (io::Result<usize>, SliceMut<BytesMut>) {
        match self {
            Stream::Plain(s) => s.read(buf).await,
            // Boxed: rustls's read future is ~10x a plain read op, and an inline one would size
            // every plain connection's task for it.
            Stream::Tls(s) => Box::pin(s.read(buf)).await,
        }
    }

    async fn write_all<B: IoBuf + 'static>(&mut self, buf: B) -> io::Result<()> {
        let (res, _) = match self {
            Stream::Plain(s) => s.write_all(buf).await,
            Stream::Tls(s) => Box::pin(s.write_all(buf)).await,
        };
        res.map(|_| ())
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(_) => Ok(()),
            Stream::Tls(s) => Box::pin(s.flush()).await,
        }
    }
}

/// First read size of a response; doubled while reads fill the buffer, up to `MAX_READ`.
pub const FIRST_READ: usize = 2 * 1024;
/// Largest single read from a provider.
pub const MAX_READ: usize = 64 * 1024;
/// A request body up to this size is copied behind its head and sent in one write.
pub const COALESCE_BODY_BYTES: usize = 16 * 1024;

/// One connection to a provider.
pub struct Conn {
    stream: Stream,
    /// The TCP socket under `stream` (TLS included), for the idle check in `Pool::take`.
    fd: RawFd,
    rbuf: BytesMut,
    /// Bytes asked of the next read (adaptive, see the module note).
    read_size: usize,
    /// Came from the pool: a failure before any response byte may just mean the peer closed it.
    reused: bool,
    /// Bytes arrived since the request was sent (interim 1xx heads included, which leave
    /// no trace in the buffer): a retry is then no longer safe.
    received: bool,
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
        let (_, v) = self
            .spans
            .iter()
            .find(|(n, _)| self.raw.get(n.clone()) == Some(name.as_bytes()))?;
        self.raw.get(v.clone())
    }

    /// Every value of header `name` (lower-case), in arrival order. Names are compared as
    /// bytes: this runs several times per response, and validating each name as UTF-8 on
    /// every lookup was a tenth of the gateway's instructions (callgrind).
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.spans.iter().filter_map(move |(n, v)| {
            if self.raw.get(n.clone())? == name.as_bytes() {
                self.raw.get(v.clone())
            } else {
                None
            }
        })
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
        if memchr::memmem::find(window, b"\n\r\n").is_none()
            && memchr::memmem::find(window, b"\n\n").is_none()
        {
            return too_large();
        }
        let mut spans = Vec::with_capacity(16);
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
            for h in resp.headers.iter() {
                let n = h.name.as_ptr() as usize - base;
                let v = h.value.as_ptr() as usize - base;
                spans.push((n..n + h.name.len(), v..v + h.value.len()));
            }
            (len, resp.code.unwrap_or(0), resp.version.unwrap_or(0))
        };
        let mut head = src.split_to(len);
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
        let addr = dns.resolve(&p.host, p.port).await.map_err(|e| {
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
                // provider pay a lookup. It expires with its TTL.
                return Err(Error::new(
                    ErrorKind::UpstreamConnect,
                    format!("cannot connect to provider `{}` at {addr}", p.name),
                )
                .with_cause(e));
            }
        };
        // Small writes (TLS records, request heads) must not wait on delayed ACKs.
        let _ = tcp.set_nodelay(true);
        let fd = tcp.as_raw_fd();
        let stream = match &p.tls {
            None => Stream::Plain(tcp),
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
                // Boxed: the handshake future is large, and inline it would size every plain
                // connect too (5,000 streams opening at once each hold one).
                let stream = Box::pin(connector.connect(name, tcp)).await.map_err(|e| {
                    // TlsError's Display says only "io error"; Debug carries the reason.
                    Error::new(
                        ErrorKind::UpstreamTls,
                        format!("TLS handshake with provider `{}` failed: {e:?}", p.name),
                    )
                })?;
                Stream::Tls(Box::new(stream))
            }
        };
        Ok(Conn {
            stream,
            fd,
            rbuf: BytesMut::new(),
            read_size: FIRST_READ,
            reused: false,
            received: false,
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

    /// Read more of the response into the read buffer. Ok(0) = the provider closed.
    async fn fill(&mut self) -> io::Result<usize> {
        // Aim for `read_size` of room; a partial frame at the front is kept, and a buffer no
        // longer shared with relayed chunks is reused in place rather than reallocated.
        let want = self.read_size.max(self.rbuf.len() * 2);
        if self.rbuf.capacity() - self.rbuf.len() < want / 4 {
            self.rbuf.reserve(want - self.rbuf.len());
        }
        let buf = std::mem::take(&mut self.rbuf);
        let (len, cap) = (buf.len(), buf.capacity());
        let (res, slice) = self.stream.read(buf.slice_mut(len..cap)).await;
        self.rbuf = slice.into_inner();
        if res.as_ref().is_ok_and(|&n| n > 0) {
            self.received = true;
        }
        if res.as_ref().is_ok_and(|&n| n == cap - len) {
            // The read filled all the room it had: more is likely waiting.
            self.read_size = (self.read_size * 2).min(MAX_READ);
        }
        res
    }

    /// Send a request: `head` from `http1::write_request_head`, then `body`. A provider that
    /// stops accepting bytes for `timeout` fails the request instead of holding it forever.
    pub async fn send(&mut self, mut head: Vec<u8>, body: Bytes, timeout: Duration) -> Result<()> {
        // A new response starts small again: a connection that once carried a bulk body may
        // carry a slow stream next.
        self.read_size = FIRST_READ;
        self.received = false;
        let send = async {
            if body.len() <= COALESCE_BODY_BYTES {
                head.extend_from_slice(&body);
                self.stream.write_all(head).await?;
            } else {
                self.stream.write_all(head).await?;
                self.stream.write_all(body).await?;
            }
            self.stream.flush().await
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

    async fn next_head(&mut self) -> std::result::Result<Option<ResponseHead>, HeadReadError> {
        loop {
            if !self.rbuf.is_empty() {
                if let Some(head) = decode_head(&mut self.rbuf)? {
                    return Ok(Some(head));
                }
            }
            if self.fill().await? == 0 {
                if self.rbuf.is_empty() {
                    return Ok(None);
                }
                return Err(HeadReadError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed in the middle of the response head",
                )));
            }
        }
    }

    /// Wait for the final response head (interim 1xx heads are skipped).
    pub async fn read_head(&mut self, timeout: Duration) -> Result<ResponseHead> {
        let res = monoio::time::timeout(timeout, self.next_head()).await;
        // Nothing at all came back: a pooled connection the provider had already closed.
        let stale = if self.reused && !self.received {
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
            Ok(Ok(None)) => Err(Error::new(
                ErrorKind::UpstreamReset,
                "provider closed the connection before responding",
            )
            .with_retry(stale)),
            Ok(Ok(Some(head))) => Ok(head),
            Ok(Err(HeadReadError::Io(e))) => {
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
            Ok(Err(HeadReadError::TooLarge)) => Err(Error::new(
                ErrorKind::UpstreamProtocol,
                format!("provider response head exceeds {MAX_RESPONSE_HEAD_BYTES} bytes"),
            )),
            Ok(Err(HeadReadError::Malformed(why))) => Err(Error::new(
                ErrorKind::UpstreamProtocol,
                format!("provider sent an invalid response head: {why}"),
            )),
        }
    }

    async fn next_chunk(
        &mut self,
        body: &mut BodyCodec,
    ) -> std::result::Result<Option<Bytes>, BodyReadError> {
        loop {
            match body.decode(&mut self.rbuf)? {
                BodyStep::Data(d) => return Ok(Some(d)),
                BodyStep::End => return Ok(None),
                BodyStep::NeedMore => {}
            }
            if self.fill().await? == 0 {
                return match body.decode_eof(&mut self.rbuf)? {
                    BodyStep::Data(d) => Ok(Some(d)),
                    _ => Ok(None),
                };
            }
        }
    }

    /// The next body chunk (`None` at the end), or an error after `idle` of silence.
    pub async fn read_chunk(
        &mut self,
        body: &mut BodyCodec,
        idle: Duration,
    ) -> Result<Option<Bytes>> {
        if body.is_done() {
            return Ok(None);
        }
        match monoio::time::timeout(idle, self.next_chunk(body)).await {
            Err(_) => Err(Error::new(
                ErrorKind::IdleTimeout,
                format!(
                    "provider went silent for {} ms mid-response",
                    idle.as_millis()
                ),
            )),
            Ok(Ok(item)) => Ok(item),
            Ok(Err(BodyReadError::Framing(e))) => Err(Error::new(
                ErrorKind::UpstreamProtocol,
                format!("provider sent a malformed chunked body ({e:?})"),
            )),
            Ok(Err(e)) => Err(Error::new(
                ErrorKind::UpstreamReset,
                "provider connection broke mid-response",
            )
            .with_cause(io::Error::other(e.to_string()))),
        }
    }

    /// May this connection carry another request? Only when nothing beyond the response
    /// arrived: stray bytes would be read as the next response's head.
    pub fn is_clean(&self) -> bool {
        self.rbuf.is_empty()
    }

    /// Has the provider stayed silent since the last response? Bytes that arrived on an idle
    /// connection (a stray response, a 408 on its idle timeout) would be read as the next
    /// request's response, and an EOF means it is closed: either way it must not be used.
    /// One non-blocking peek, no buffer: nginx likewise closes idle upstream connections on
    /// any read event.
    fn is_quiet(&self) -> bool {
        let mut probe = [0u8; 1];
        let flags = nix::sys::socket::MsgFlags::MSG_PEEK | nix::sys::socket::MsgFlags::MSG_DONTWAIT;
        matches!(
            nix::sys::socket::recv(self.fd, &mut probe, flags),
            Err(nix::errno::Errno::EAGAIN)
        )
    }

    /// Going idle: the read buffer is let go (it may have grown for a bulk response); the next
    /// response starts a small one.
    fn park(&mut self) {
        // Unconditionally: after `split_to`, `capacity()` shows only the unused tail, yet
        // the buffer keeps (and `reserve` reclaims) its whole allocation, up to 64 KiB.
        self.rbuf = BytesMut::new();
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

    /// Take an idle connection to `provider`, dropping any that idled too long or that the
    /// provider closed or wrote to while it sat idle.
    pub fn take(&self, provider: usize) -> Option<Conn> {
        let mut idle = self.idle.borrow_mut();
        let stack = idle.get_mut(provider)?;
        let now = Instant::now();
        while let Some((mut conn, since)) = stack.pop() {
            if now.duration_since(since) < self.idle_timeout && conn.is_quiet() {
                conn.reused = true;
                return Some(conn);
            }
        }
        None
    }

    /// Return a connection whose response was fully read (one with stray bytes after the
    /// response is dropped instead).
    pub fn put(&self, provider: usize, mut conn: Conn) {
        if !conn.is_clean() {
            return;
        }
        conn.park();
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

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
