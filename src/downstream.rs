//! The client side's connection IO, generic over its transport (TCP now, TLS the same way):
//! owned read/write buffers kept across awaits (monoio's rent model), request heads and bodies
//! read under the configured bounds and deadlines.

use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use crate::config::ServerConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::http1::{self, BodyDecoder, BodyEvent, Framing, HeadError, RequestHead};
use crate::rt::beacon::Beacon;

/// Bytes requested from the kernel per read when the buffer runs low.
pub const READ_CHUNK: usize = 16 * 1024;
/// Read buffer of a connection waiting for its next request: a small request fits; it grows
/// on demand. Let go once the body is read, so a streaming connection holds none.
pub const INITIAL_READ_BUFFER: usize = 1024;
/// Largest write buffer a connection keeps between writes.
pub const WBUF_RETAIN_BYTES: usize = 64 * 1024;
/// How long a closing connection keeps discarding what the client still sends, so that the
/// client reads our answer instead of a reset.
pub const LINGER: Duration = Duration::from_millis(500);
/// Most bytes discarded while lingering.
pub const LINGER_MAX_BYTES: usize = 1024 * 1024;
/// Default bound on one write to a client that stopped reading.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes of a request head kept aside to pick the error format if the head never completes.
const HEAD_SNIFF_BYTES: usize = 256;

thread_local! {
    /// One written, empty write buffer per worker, passed between streams (see
    /// [`ClientConn::park_wbuf`]); at most [`WBUF_RETAIN_BYTES`] of capacity.
    static SPARE_WBUF: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Why no request head came.
pub enum HeadOutcome {
    /// The client closed (or went idle past the keep-alive timeout) between requests: close quietly.
    Closed,
    /// Something to answer with an error, then close. Carries whatever bytes of the head arrived
    /// (to guess the client's format).
    Failed(Error, Bytes),
}

/// The two bounds on waiting for a request head, copied out of the config snapshot so that
/// an idle connection holds no snapshot while it waits (a reload would otherwise stay pinned
/// for up to the keep-alive timeout by every idle connection).
#[derive(Clone, Copy, Debug)]
pub struct HeadTimeouts {
    /// Idle time allowed before the first byte of a request.
    pub keepalive_timeout: Duration,
    /// First byte to the end of the head.
    pub header_read_timeout: Duration,
}

impl From<&ServerConfig> for HeadTimeouts {
    fn from(c: &ServerConfig) -> Self {
        HeadTimeouts {
            keepalive_timeout: c.keepalive_timeout,
            header_read_timeout: c.header_read_timeout,
        }
    }
}

/// What a client connection runs over: a TCP stream, or a TLS stream on one. The proxy is
/// generic over it, so terminating TLS changes no proxy code.
pub trait Transport: AsyncReadRent + AsyncWriteRent {}

impl<T: AsyncReadRent + AsyncWriteRent> Transport for T {}

/// A client connection and its reusable buffers; `S` is a TCP or TLS stream.
pub struct ClientConn<S = TcpStream> {
    stream: S,
    rbuf: BytesMut,
    /// Scratch for building what we write; reused for every response on this connection.
    pub wbuf: Vec<u8>,
    /// Set once a write failed: the client is gone.
    pub broken: bool,
    /// Bound on one write; a client that does not read for this long is dropped.
    pub write_timeout: Duration,
    /// The start of the current request head (a timed-out read takes the buffer with it).
    head_start: Vec<u8>,
    /// Bytes handed to the socket so far (the access log's `bytes`: a response's share is the
    /// difference across it).
    pub sent: u64,
    /// The socket itself, on a plain connection: writes are tried on it first (see
    /// [`ClientConn::flush`]). None over TLS, where bytes go through the TLS stream.
    direct: Option<RawFd>,
}

impl<S: AsyncReadRent + AsyncWriteRent> ClientConn<S> {
    /// Wrap an accepted stream.
    pub fn new(stream: S) -> Self {
        ClientConn {
            stream,
            rbuf: BytesMut::new(),
            wbuf: Vec::new(),
            sent: 0,
            broken: false,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            head_start: Vec::new(),
            direct: None,
        }
    }

    /// Write to `fd`, the plain socket under the stream, directly when it has room (see
    /// [`ClientConn::flush`]).
    pub fn with_direct_writes(mut self, fd: RawFd) -> Self {
        self.direct = Some(fd);
        self
    }

    /// Read more bytes into the read buffer. Ok(0) = EOF.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.rbuf.capacity() == 0 {
            // No buffer (new, or between requests): the read that waits for the next request
            // holds this one, on every idle connection, so it is small. A larger request
            // fills it and the next read gets READ_CHUNK. (Waiting for readiness first and
            // holding nothing cost ~0.2 ms per request at low rates on io_uring: measured.)
            self.rbuf.reserve(INITIAL_READ_BUFFER);
        } else if self.rbuf.capacity() - self.rbuf.len() < INITIAL_READ_BUFFER / 4 {
            self.rbuf.reserve(READ_CHUNK);
        }
        let buf = std::mem::take(&mut self.rbuf);
        let (len, cap) = (buf.len(), buf.capacity());
        let (res, slice) = self.stream.read(buf.slice_mut(len..cap)).await;
        self.rbuf = slice.into_inner();
        res
    }

    /// `fill` bounded by a deadline; `Err(None)` = timed out.
    pub(crate) async fn fill_until(
        &mut self,
        deadline: Instant,
    ) -> std::result::Result<usize, Option<io::Error>> {
        let now = Instant::now();
        if now >= deadline {
            return Err(None);
        }
        match crate::rt::timer::timeout(deadline - now, self.fill()).await {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => Err(Some(e)),
            Err(_) => Err(None),
        }
    }

    /// The stream under the connection.
    pub(crate) fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// The read buffer (a WebSocket session decodes its frames from it).
    pub(crate) fn rbuf_mut(&mut self) -> &mut BytesMut {
        &mut self.rbuf
    }

    /// A connection whose bytes to read are all in `buffered` (a WebSocket message run as a
    /// request): reading past them meets the end of `stream`.
    pub(crate) fn with_buffered(stream: S, buffered: &[u8]) -> Self {
        let mut conn = ClientConn::new(stream);
        conn.rbuf.extend_from_slice(buffered);
        conn
    }

    /// Bytes of a next request already read (pipelined)?
    pub fn has_buffered(&self) -> bool {
        !self.rbuf.is_empty()
    }

    /// Bytes of a next request read already, or waiting in the socket (seen on a plain
    /// connection only; nothing is taken from it).
    pub fn has_waiting(&self) -> bool {
        self.has_buffered() || self.direct.is_some_and(crate::rt::readable_now)
    }

    /// Read the next request head. Waits up to the keep-alive timeout for its first byte (or
    /// until `idle_end`, if given, fires: a drain closes idle connections), then up to the header-read
    /// timeout for the rest (a slowloris client is cut off there).
    pub async fn read_head(
        &mut self,
        cfg: HeadTimeouts,
        idle_end: Option<&Beacon>,
    ) -> std::result::Result<RequestHead, HeadOutcome> {
        let mut deadline = None;
        loop {
            if !self.rbuf.is_empty() {
                match http1::parse_request_head(&mut self.rbuf, http1::MAX_HEAD_BYTES) {
                    Ok(Some(head)) => {
                        self.head_start.clear();
                        return Ok(head);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let seen = self.rbuf.split().freeze();
                        return Err(HeadOutcome::Failed(head_error(&e), seen));
                    }
                }
            }
            let d = match deadline {
                Some(d) => d,
                None if self.rbuf.is_empty() => Instant::now() + cfg.keepalive_timeout,
                None => {
                    let d = Instant::now() + cfg.header_read_timeout;
                    deadline = Some(d);
                    d
                }
            };
            if self.head_start.len() < HEAD_SNIFF_BYTES && self.rbuf.len() > self.head_start.len() {
                let n = self.rbuf.len().min(HEAD_SNIFF_BYTES);
                self.head_start.clear();
                self.head_start
                    .extend_from_slice(self.rbuf.get(..n).unwrap_or_default());
            }
            let filled = match idle_end.filter(|_| deadline.is_none()) {
                // Idle between requests: a drain may end the wait (the buffer is empty, so
                // dropping the read loses nothing).
                Some(end) => match end.race(self.fill_until(d)).await {
                    Some(r) => r,
                    None => return Err(HeadOutcome::Closed),
                },
                None => self.fill_until(d).await,
            };
            match filled {
                Ok(0) => {
                    if self.rbuf.is_empty() {
                        return Err(HeadOutcome::Closed);
                    }
                    let seen = self.rbuf.split().freeze();
                    return Err(HeadOutcome::Failed(
                        Error::new(ErrorKind::BadRequest, "connection closed mid-request"),
                        seen,
                    ));
                }
                Ok(_) => {
                    if deadline.is_none() {
                        deadline = Some(Instant::now() + cfg.header_read_timeout);
                    }
                }
                Err(Some(_)) => return Err(HeadOutcome::Closed),
                Err(None) if deadline.is_none() => return Err(HeadOutcome::Closed),
                Err(None) => {
                    let seen = Bytes::from(std::mem::take(&mut self.head_start));
                    return Err(HeadOutcome::Failed(
                        Error::new(
                            ErrorKind::HeaderTimeout,
                            format!(
                                "request head not received within {} ms",
                                cfg.header_read_timeout.as_millis()
                            ),
                        ),
                        seen,
                    ));
                }
            }
        }
    }

    /// Read the whole body of `head`, bounded by `max` bytes, `idle` silence between reads and
    /// `whole` for all of it (a client trickling a byte at a time never goes silent). A
    /// Content-Length body is handed out zero-copy; a chunked one is gathered, and a chunk
    /// that announces more than `max` in all is refused before its bytes are awaited.
    pub async fn read_body(
        &mut self,
        head: &RequestHead,
        max: usize,
        idle: Duration,
        whole: Duration,
    ) -> Result<Bytes> {
        let deadline = Instant::now() + whole;
        match head.framing() {
            Framing::None => Ok(Bytes::new()),
            Framing::Length(n) => {
                let n = usize::try_from(n)
                    .ok()
                    .filter(|n| *n <= max)
                    .ok_or_else(|| too_large(max))?;
                if head.expects_continue() && self.rbuf.len() < n {
                    self.write_raw(http1::CONTINUE_100).await?;
                }
                if self.rbuf.capacity() < n {
                    self.rbuf.reserve(n - self.rbuf.len());
                }
                while self.rbuf.len() < n {
                    self.fill_body(idle, deadline, whole).await?;
                }
                let body = self.rbuf.split_to(n).freeze();
                self.release_read_buffer();
                Ok(body)
            }
            Framing::Chunked => {
                if head.expects_continue() && self.rbuf.is_empty() {
                    self.write_raw(http1::CONTINUE_100).await?;
                }
                let mut dec = BodyDecoder::new(Framing::Chunked);
                let mut body = BytesMut::new();
                loop {
                    let need_more = match dec.decode(&mut self.rbuf) {
                        Ok(BodyEvent::Data(d)) => {
                            body.extend_from_slice(&d);
                            false
                        }
                        Ok(BodyEvent::End) => {
                            self.release_read_buffer();
                            return Ok(body.freeze());
                        }
                        Ok(BodyEvent::NeedMore) => true,
                        Err(e) => {
                            return Err(Error::new(
                                ErrorKind::BadRequest,
                                format!("malformed chunked request body: {e}"),
                            ))
                        }
                    };
                    // What the client has announced so far, not only what arrived.
                    let announced = (body.len() as u64).saturating_add(dec.announced_remaining());
                    if announced > max as u64 {
                        return Err(too_large(max));
                    }
                    if need_more {
                        self.fill_body(idle, deadline, whole).await?;
                    }
                }
            }
        }
    }

    /// Read more of a body: up to `idle` of silence, and never past `deadline` (`whole` after
    /// the body began).
    async fn fill_body(
        &mut self,
        idle: Duration,
        deadline: Instant,
        whole: Duration,
    ) -> Result<()> {
        let silence = Instant::now() + idle;
        match self.fill_until(silence.min(deadline)).await {
            Ok(0) => Err(Error::new(
                ErrorKind::BadRequest,
                "connection closed before the body was complete",
            )),
            Ok(_) => Ok(()),
            Err(Some(e)) => Err(Error::new(
                ErrorKind::BadRequest,
                "connection failed while reading the body",
            )
            .with_cause(e)),
            Err(None) if deadline <= silence => Err(Error::new(
                ErrorKind::BodyTimeout,
                format!("request body not received within {} ms", whole.as_millis()),
            )),
            Err(None) => Err(Error::new(
                ErrorKind::BodyTimeout,
                format!("request body stalled for {} ms", idle.as_millis()),
            )),
        }
    }

    /// Let go of the read buffer while nothing is buffered: once a request is read, the
    /// connection holds no read buffer through the response, which for a stream may be minutes
    /// (and 5,000 streams x 4 KiB adds up); the next read allocates a fresh one.
    fn release_read_buffer(&mut self) {
        if self.rbuf.is_empty() {
            self.rbuf = BytesMut::new();
        }
    }

    /// A waiting stream lets go of its written write buffer: it goes to this worker's spare,
    /// which the next stream to write takes (a malloc and a free per event otherwise).
    pub fn park_wbuf(&mut self) {
        if !self.wbuf.is_empty() {
            return;
        }
        let buf = std::mem::take(&mut self.wbuf);
        if buf.capacity() == 0 || buf.capacity() > WBUF_RETAIN_BYTES {
            return;
        }
        SPARE_WBUF.with(|spare| {
            let held = spare.take();
            spare.set(if held.capacity() == 0 { buf } else { held });
        });
    }

    /// Before framing into `wbuf`: a buffer let go by [`ClientConn::park_wbuf`] is taken back
    /// from the worker's spare.
    pub fn unpark_wbuf(&mut self) {
        if self.wbuf.capacity() == 0 {
            self.wbuf = SPARE_WBUF.with(std::cell::Cell::take);
        }
    }

    /// Write `wbuf` and clear it.
    pub async fn flush(&mut self) -> Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        if let Some(fd) = self.direct {
            // A socket with room takes the bytes at once. Through io_uring a write is a ring
            // round trip (a submission, a completion, this task woken and polled again), which
            // for a streamed event costs more than the send itself; under epoll this is the
            // syscall the driver would make. What the socket does not take goes the usual way.
            match crate::rt::send_front(fd, &mut self.wbuf) {
                Ok(n) => self.sent = self.sent.wrapping_add(n as u64),
                Err(e) => return self.check_write(Err(e)),
            }
            if self.wbuf.is_empty() {
                if self.wbuf.capacity() > WBUF_RETAIN_BYTES {
                    self.wbuf = Vec::new();
                }
                return Ok(());
            }
        }
        let buf = std::mem::take(&mut self.wbuf);
        self.sent = self.sent.wrapping_add(buf.len() as u64);
        match crate::rt::timer::timeout(self.write_timeout, self.stream.write_all(buf)).await {
            Ok((res, mut buf)) => {
                // A buffer grown for one large write is let go: an idle keep-alive
                // connection would otherwise hold it for its whole life.
                if buf.capacity() <= WBUF_RETAIN_BYTES {
                    buf.clear();
                    self.wbuf = buf;
                }
                self.check_write(res)
            }
            Err(_) => self.write_timed_out(),
        }
    }

    /// Write shared bytes without copying them.
    pub async fn write_bytes(&mut self, data: Bytes) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.sent = self.sent.wrapping_add(data.len() as u64);
        match crate::rt::timer::timeout(self.write_timeout, self.stream.write_all(data)).await {
            Ok((res, _)) => self.check_write(res),
            Err(_) => self.write_timed_out(),
        }
    }

    fn write_timed_out(&mut self) -> Result<()> {
        self.broken = true;
        Err(Error::new(ErrorKind::BadRequest, "client stopped reading"))
    }

    /// Close politely: stop writing, then discard what the client still sends for a short,
    /// bounded time so it reads our answer rather than a connection reset.
    pub async fn drain_and_close(&mut self) {
        if self.broken {
            return;
        }
        let _ = self.stream.shutdown().await;
        let deadline = Instant::now() + LINGER;
        let mut discarded = 0usize;
        while discarded < LINGER_MAX_BYTES {
            self.rbuf.clear();
            match self.fill_until(deadline).await {
                Ok(n) if n > 0 => discarded += n,
                _ => break,
            }
        }
    }

    async fn write_raw(&mut self, data: &'static [u8]) -> Result<()> {
        match crate::rt::timer::timeout(self.write_timeout, self.stream.write_all(data)).await {
            Ok((res, _)) => self.check_write(res),
            Err(_) => self.write_timed_out(),
        }
    }

    fn check_write(&mut self, res: io::Result<usize>) -> Result<()> {
        res.map(|_| ()).map_err(|e| {
            self.broken = true;
            Error::new(ErrorKind::BadRequest, "client connection closed").with_cause(e)
        })
    }
}

fn too_large(max: usize) -> Error {
    Error::new(
        ErrorKind::BodyTooLarge,
        format!("request body exceeds the gateway limit of {max} bytes"),
    )
}

fn head_error(e: &HeadError) -> Error {
    let kind = match e.status() {
        431 => ErrorKind::HeadTooLarge,
        _ => ErrorKind::BadRequest,
    };
    let msg = match e {
        HeadError::TooLarge => format!("request head exceeds {} bytes", http1::MAX_HEAD_BYTES),
        HeadError::TooManyHeaders => format!("more than {} request headers", http1::MAX_HEADERS),
        HeadError::LengthAndChunked => {
            "Content-Length together with Transfer-Encoding is not allowed".to_owned()
        }
        other => format!("malformed request: {other}"),
    };
    Error::new(kind, msg)
}
