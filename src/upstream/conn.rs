//! One connection to a provider: connect (TCP, then TLS) within the provider's timeout, write
//! a request, read the response head and body chunk by chunk through the `http1` response
//! codec, with an adaptive read buffer (see the `upstream` module note).

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use monoio::buf::{IoBuf, IoBufMut, SliceMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use super::body::{OutBody, Write};
use super::DnsCache;
use crate::config::Provider;
use crate::error::{Error, ErrorKind, Result, Retry};
use crate::http1::{
    decode_head, BodyCodec, BodyReadError, BodyStep, HeadReadError, ResponseHead,
    MAX_RESPONSE_HEAD_BYTES,
};

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

    /// `write_all` for bytes of our own: on a plain socket, what it takes at once goes straight
    /// to it (no ring round trip under io_uring; see `ClientConn::flush`), the rest as usual.
    async fn write_all_owned(&mut self, mut buf: Vec<u8>) -> io::Result<()> {
        if let Stream::Plain(s) = self {
            crate::rt::send_front(s.as_raw_fd(), &mut buf)?;
            if buf.is_empty() {
                return Ok(());
            }
        }
        self.write_all(buf).await
    }

    /// Writes `head` and then `parts`. On a plain socket, as few vectored sends as it takes,
    /// none of the parts copied: each sends what the socket takes now, and when it takes
    /// nothing the next waits until it has room. Through TLS, as [`body::writes`] has them.
    async fn write_parts(&mut self, head: Vec<u8>, body: &OutBody) -> io::Result<()> {
        let Stream::Plain(s) = self else {
            for write in super::body::writes(head, body) {
                match write {
                    Write::Owned(bytes) => self.write_all(bytes).await?,
                    Write::Shared(bytes) => self.write_all(bytes).await?,
                }
            }
            return Ok(());
        };
        let fd = s.as_raw_fd();
        let mut all: Vec<&[u8]> = Vec::with_capacity(body.parts().len() + 1);
        all.push(&head);
        all.extend(body.parts().iter().map(|p| &p[..]));
        all.retain(|p| !p.is_empty());
        // The first part not all sent, and how much of it was.
        let (mut at, mut into) = (0, 0);
        while at < all.len() {
            let slices: Vec<io::IoSlice<'_>> = all[at..]
                .iter()
                .take(MAX_IOVECS)
                .enumerate()
                .map(|(i, p)| io::IoSlice::new(if i == 0 { &p[into..] } else { p }))
                .collect();
            let mut sent = crate::rt::send_parts_now(fd, &slices)?;
            if sent == 0 {
                s.writable(false).await?;
                continue;
            }
            while sent > 0 && at < all.len() {
                let left = all[at].len() - into;
                if sent < left {
                    into += sent;
                    break;
                }
                sent -= left;
                at += 1;
                into = 0;
            }
        }
        Ok(())
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
/// Smallest read: a slow stream's reads shrink to this (a few events of any provider fit; a
/// larger burst grows the buffer again). What each held stream keeps between its events.
pub const SLOW_READ: usize = 1024;
/// Most bytes one read of what is already waiting takes (`Conn::read_waiting`); a larger burst
/// takes several.
const MAX_DIRECT_READ: usize = 16 * 1024;
/// Small reads in a row before a large read buffer is swapped for a small one.
const SMALL_READS_TO_SHRINK: u8 = 3;
/// Most parts one vectored send takes (the kernel's `UIO_MAXIOV`).
const MAX_IOVECS: usize = 1024;
/// A request body up to this size is copied behind its head and sent in one write.
pub const COALESCE_BODY_BYTES: usize = super::body::SMALL_PART;

/// The size to ask of the next read after one that returned `n` bytes into `room`.
fn next_read_size(read_size: usize, n: usize, room: usize) -> usize {
    if n == room && n >= read_size / 2 {
        // The read filled all the room it had: more is likely waiting. (Filling the small
        // tail left behind a partial event says nothing.)
        (read_size * 2).min(MAX_READ)
    } else if n > 0 && n < room && n <= read_size / 2 {
        // Half or less, the room not filled: bytes trickle in, so a held stream need not
        // hold much.
        (read_size / 2).max(SLOW_READ)
    } else {
        read_size
    }
}

/// One connection to a provider.
pub struct Conn {
    stream: Stream,
    /// The TCP socket under `stream` (TLS included), for the idle check in `Pool::take`.
    fd: RawFd,
    rbuf: BytesMut,
    /// Bytes asked of the next read (adaptive, see the module note).
    read_size: usize,
    /// Reads in a row that were small (see `fill`).
    small_reads: u8,
    /// The last read filled all the room it had: more may be waiting (see `read_waiting`).
    filled: bool,
    /// Came from the pool: a failure before any response byte may just mean the peer closed it.
    pub(super) reused: bool,
    /// Bytes arrived since the request was sent (interim 1xx heads included, which leave
    /// no trace in the buffer): a retry is then no longer safe.
    received: bool,
    /// Requests served so far on this connection.
    pub served: u64,
    /// The idle timeout of body reads: registered once, moved by each read.
    idle: crate::rt::timer::Deadline,
}

impl Conn {
    /// Open a connection: resolve (cached), TCP connect with NODELAY, TLS if configured,
    /// all within `timeout` (the provider's connect timeout, or less).
    pub async fn connect(p: &Provider, dns: &DnsCache, timeout: Duration) -> Result<Conn> {
        match crate::rt::timer::timeout(timeout, Self::connect_inner(p, dns)).await {
            Ok(r) => r,
            Err(_) => Err(Error::new(
                ErrorKind::ConnectTimeout,
                format!(
                    "connecting to provider `{}` timed out after {} ms",
                    p.name,
                    timeout.as_millis()
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
            small_reads: 0,
            filled: false,
            reused: false,
            received: false,
            served: 0,
            idle: crate::rt::timer::Deadline::default(),
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
        if self.small_reads >= SMALL_READS_TO_SHRINK
            && self.rbuf.capacity() > want
            && self.rbuf.len() < want / 4
        {
            // Reads stayed small (a stream that arrives event by event): the large buffer goes
            // (relayed chunks still holding it free it once written) for one of `want`, and
            // what is left of it (a chunk's CRLF, part of a size line) is copied over. Only
            // after several such reads in a row: reads that alternate between part of a TLS
            // record and a whole one would otherwise swap buffers on every read.
            let mut small = BytesMut::with_capacity(want);
            small.extend_from_slice(&self.rbuf);
            self.rbuf = small;
        }
        if self.rbuf.capacity() - self.rbuf.len() < want / 4 {
            self.rbuf.reserve(want - self.rbuf.len());
        }
        let buf = std::mem::take(&mut self.rbuf);
        let (len, cap) = (buf.len(), buf.capacity());
        let (res, slice) = self.stream.read(buf.slice_mut(len..cap)).await;
        self.rbuf = slice.into_inner();
        self.account(&res, cap - len);
        res
    }

    /// The bookkeeping after a read that had `room` bytes of room: whether it filled them, and
    /// the size of the next read.
    fn account(&mut self, res: &io::Result<usize>, room: usize) {
        if res.as_ref().is_ok_and(|&n| n > 0) {
            self.received = true;
        }
        self.filled = res.as_ref().is_ok_and(|&n| n > 0 && n == room);
        if let Ok(&n) = res.as_ref() {
            let next = next_read_size(self.read_size, n, room);
            self.small_reads = if next < self.read_size || (n > 0 && n <= SLOW_READ / 2) {
                self.small_reads.saturating_add(1)
            } else {
                0
            };
            self.read_size = next;
        }
    }

    /// Send a request: `head` from `http1::write_request_head`, then `body`. A provider that
    /// stops accepting bytes for `timeout` fails the request instead of holding it forever.
    pub async fn send(
        &mut self,
        mut head: Vec<u8>,
        body: OutBody,
        timeout: Duration,
    ) -> Result<()> {
        // A new response starts small again: a connection that once carried a bulk body may
        // carry a slow stream next.
        self.read_size = FIRST_READ;
        self.small_reads = 0;
        self.received = false;
        let send = async {
            if body.len() <= COALESCE_BODY_BYTES {
                // A small body rides behind its head in one write (no list of writes made).
                for part in body.parts() {
                    head.extend_from_slice(part);
                }
                self.stream.write_all_owned(head).await?;
                return self.stream.flush().await;
            }
            self.stream.write_parts(head, &body).await?;
            self.stream.flush().await
        };
        match crate::rt::timer::timeout(timeout, send).await {
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
        let res = crate::rt::timer::timeout(timeout, self.next_head()).await;
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

    /// The next body chunk already in the read buffer, without reading the socket: what a
    /// read brought beyond the chunk `read_chunk` returned (a provider writing each event as
    /// its own HTTP chunk puts several in one read). None when more must be read, or at the end.
    pub fn buffered_chunk(&mut self, body: &mut BodyCodec) -> Result<Option<Bytes>> {
        if body.is_done() || self.rbuf.is_empty() {
            return Ok(None);
        }
        match body.decode(&mut self.rbuf) {
            Ok(BodyStep::Data(d)) => Ok(Some(d)),
            Ok(BodyStep::End | BodyStep::NeedMore) => Ok(None),
            Err(e) => Err(Error::new(
                ErrorKind::UpstreamProtocol,
                format!("provider sent a malformed chunked body ({e})"),
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
        // Taken out for the read (which borrows the rest of `self`); a read dropped midway
        // drops it too, which frees its entry, and the next read registers a new one.
        let mut deadline = std::mem::take(&mut self.idle);
        let read = deadline.within(idle, self.next_chunk(body)).await;
        self.idle = deadline;
        match read {
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
    pub(super) fn is_clean(&self) -> bool {
        self.rbuf.is_empty()
    }

    /// Read what is already waiting in the socket, without the driver and without waiting,
    /// after a read that filled its buffer (a burst: more is likely there): the bytes added
    /// to the read buffer, 0 when none were waiting. A stream that trickles never asks (its
    /// reads do not fill); a burst larger than a read buffer costs one syscall per buffer
    /// instead of a peek and a driver round trip, and its events go out in one write. Plain
    /// connections only: over TLS the waiting bytes may be part of a record that has not fully
    /// arrived, and the read would wait for its rest with decoded events unwritten; there the
    /// answer is 0, and the caller writes what it has. An end of stream is left for the next
    /// read to see; a failure is the one that read would report.
    pub fn read_waiting(&mut self) -> Result<usize> {
        if !self.filled || matches!(self.stream, Stream::Tls(_)) {
            return Ok(0);
        }
        let len = self.rbuf.len();
        // Zeroed before the kernel writes it (no unsafe here): bounded, so that costs little
        // beside the copy the kernel makes.
        let room = self.read_size.min(MAX_DIRECT_READ);
        self.rbuf.resize(len + room, 0);
        let res = match self.rbuf.get_mut(len..) {
            Some(spare) => crate::rt::recv_now(self.fd, spare),
            None => Ok(0),
        };
        let n = *res.as_ref().unwrap_or(&0);
        self.rbuf.truncate(len + n);
        match res {
            Ok(0) => {
                self.filled = false;
                Ok(0)
            }
            Ok(n) => {
                self.account(&res, room);
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.filled = false;
                Ok(0)
            }
            Err(e) => Err(Error::new(
                ErrorKind::UpstreamReset,
                "provider connection broke mid-response",
            )
            .with_cause(e)),
        }
    }

    /// Has the provider stayed silent since the last response? Bytes that arrived on an idle
    /// connection (a stray response, a 408 on its idle timeout) would be read as the next
    /// request's response, and an EOF means it is closed: either way it must not be used.
    /// One non-blocking peek, no buffer: nginx likewise closes idle upstream connections on
    /// any read event.
    pub(super) fn is_quiet(&self) -> bool {
        let mut probe = [0u8; 1];
        let flags = nix::sys::socket::MsgFlags::MSG_PEEK | nix::sys::socket::MsgFlags::MSG_DONTWAIT;
        matches!(
            nix::sys::socket::recv(self.fd, &mut probe, flags),
            Err(nix::errno::Errno::EAGAIN)
        )
    }

    /// Going idle: the read buffer is let go (it may have grown for a bulk response); the next
    /// response starts a small one.
    pub(super) fn park(&mut self) {
        // Unconditionally: after `split_to`, `capacity()` shows only the unused tail, yet
        // the buffer keeps (and `reserve` reclaims) its whole allocation, up to 64 KiB.
        self.rbuf = BytesMut::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_grow_while_they_fill_and_shrink_while_they_trickle() {
        // Bulk: every read fills its room, up to the cap.
        let mut size = FIRST_READ;
        for _ in 0..10 {
            size = next_read_size(size, size, size);
        }
        assert_eq!(size, MAX_READ);
        // A slow stream: one ~300-byte event per read, down to the floor and no further.
        let mut size = MAX_READ;
        let mut seen = vec![size];
        for _ in 0..7 {
            size = next_read_size(size, 300, size);
            seen.push(size);
        }
        assert_eq!(seen, [65536, 32768, 16384, 8192, 4096, 2048, 1024, 1024]);
        // More than half of the room: unchanged; EOF changes nothing.
        assert_eq!(next_read_size(2048, 1025, 2048), 2048);
        assert_eq!(next_read_size(2048, 2047, 2048), 2048);
        assert_eq!(next_read_size(2048, 0, 2048), 2048);
        // A burst after shrinking fills the room and grows it back; a partial event's small
        // tail filled does not.
        assert_eq!(
            next_read_size(SLOW_READ, SLOW_READ, SLOW_READ),
            2 * SLOW_READ
        );
        assert_eq!(next_read_size(4096, 300, 300), 4096);
        assert_eq!(next_read_size(65536, 24 * 1024, 24 * 1024), 65536);
    }
}
