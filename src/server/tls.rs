//! TLS termination for client connections: a handshake bounded by `handshake_timeout_ms`
//! (rustls driven over the socket, its config taken from the snapshot current at accept; a
//! refused client gets rustls's alert), then monoio-rustls's stream under the same
//! per-connection loop as plain HTTP. Plain HTTP sent to the TLS port gets a short
//! plain-text 400 saying so; every failure is counted by reason and warned about at a bounded
//! rate, never once per connection.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;

use super::Live;
use monoio::BufResult;
use monoio_rustls::ServerTlsStream;
use nix::errno::Errno;
use nix::sys::socket::{recv, send, MsgFlags};

use crate::downstream::ClientConn;
use crate::proxy::Ctx;

/// First byte of every TLS record that carries a handshake message, so of every ClientHello.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;
/// At most one handshake-failure warning per worker per this period; the failures in between
/// are counted and the count goes into the next warning (scanners and port probes are common
/// on a public TLS port: a line per connection would drown the log).
pub const HANDSHAKE_WARN_EVERY: Duration = Duration::from_secs(60);
/// The answer to plain HTTP on the TLS port: enough for a human with curl to see the mistake.
pub const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
content-type: text/plain; charset=utf-8\r\n\
content-length: 63\r\n\
connection: close\r\n\
\r\n\
This port speaks HTTPS (TLS): use an https:// URL to reach it.\n";

/// Why a client's handshake did not finish: a fixed set, so the metric's labels stay bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Not finished within `handshake_timeout_ms` (a stalled or very slow client).
    Timeout,
    /// The client sent plain HTTP (answered with [`PLAIN_HTTP_ANSWER`]).
    PlainHttp,
    /// The client offered ALPN protocols, none of them `http/1.1` (refused with the
    /// `no_application_protocol` alert).
    NoAlpn,
    /// The client sent an alert, e.g. it does not trust the certificate.
    AlertReceived,
    /// Anything else rustls refused: not TLS, no common version or cipher suite, bad messages.
    Protocol,
    /// The client closed or reset the connection first.
    Closed,
}

impl Failure {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Timeout => "timeout",
            Failure::PlainHttp => "plain_http",
            Failure::NoAlpn => "no_alpn",
            Failure::AlertReceived => "alert_received",
            Failure::Protocol => "protocol",
            Failure::Closed => "closed",
        }
    }
}

/// How a handshake ended.
enum Handshake {
    Done(Box<ServerTlsStream<TcpStream>>),
    /// The stream comes back so that the answer can be written outside the handshake budget.
    PlainHttp(TcpStream),
    Failed(Failure, String),
}

/// Serve one accepted connection on the TLS port: handshake, then the request loop.
pub async fn serve_connection(stream: TcpStream, peer: SocketAddr, live: &Live) {
    // Responses are written whole or per SSE event; Nagle would delay each of them.
    let _ = stream.set_nodelay(true);
    let current = live.ctx();
    let ctx: &Ctx = &current;
    // The snapshot current now: a reload that swapped the certificate applies from the next
    // accept, and a connection keeps the certificate it was accepted with.
    let Some(tls) = ctx.config.server.tls.as_ref() else {
        // The listener was bound for TLS but this snapshot has none (listeners are bound at
        // start only): refuse rather than speak plain HTTP on a port clients trust as TLS.
        record(ctx, Failure::Protocol, peer, "TLS is not configured");
        return;
    };
    let budget = tls.handshake_timeout;
    let outcome = crate::rt::timer::timeout(budget, handshake(stream, tls.config.clone()))
        .await
        .unwrap_or_else(|_| {
            Handshake::Failed(
                Failure::Timeout,
                format!("not finished in {} ms", budget.as_millis()),
            )
        });
    match outcome {
        Handshake::Done(stream) => {
            ctx.metrics.tls_handshake(Ok(()));
            // Each request takes the snapshot current when it arrives; holding this one for the
            // connection's life would keep an old config alive.
            drop(current);
            super::serve(CancelSafe::new(*stream), None, live).await;
        }
        Handshake::PlainHttp(stream) => {
            record(ctx, Failure::PlainHttp, peer, "plain HTTP on the TLS port");
            let mut conn = ClientConn::new(stream);
            conn.write_timeout = ctx.config.server.write_timeout;
            conn.wbuf.extend_from_slice(PLAIN_HTTP_ANSWER);
            if conn.flush().await.is_ok() {
                conn.drain_and_close().await;
            }
        }
        Handshake::Failed(f, detail) => record(ctx, f, peer, &detail),
    }
}

async fn handshake(stream: TcpStream, config: Arc<rustls::ServerConfig>) -> Handshake {
    match first_byte(&stream).await {
        Ok(None) => {
            return Handshake::Failed(Failure::Closed, "closed before a ClientHello".into())
        }
        // An HTTP method starts with an upper-case letter; a ClientHello never does.
        Ok(Some(b)) if b != TLS_HANDSHAKE_RECORD && b.is_ascii_uppercase() => {
            return Handshake::PlainHttp(stream)
        }
        Ok(Some(_)) => {}
        Err(e) => return Handshake::Failed(Failure::Closed, e.to_string()),
    }
    let mut conn = match rustls::ServerConnection::new(config) {
        Ok(c) => c,
        Err(e) => return Handshake::Failed(Failure::Protocol, e.to_string()),
    };
    match drive(&stream, &mut conn).await {
        // Every byte read so far is inside `conn` (records not yet processed, early request
        // bytes already decrypted), so the stream picks up exactly where the handshake ended.
        Ok(()) => Handshake::Done(Box::new(ServerTlsStream::new(stream, conn))),
        Err((f, detail)) => Handshake::Failed(f, detail),
    }
}

/// Run the handshake with rustls directly over the socket. Not monoio-rustls's `accept`: when
/// rustls refuses a handshake it queues an alert (`no_application_protocol`, `decode_error`,
/// ...) behind the records it already queued, and `accept` writes only the first of them
/// before returning the error, so the client saw the connection close with no reason. Here
/// whatever rustls queued goes out before the failure is returned, within the caller's
/// handshake timeout like the rest. The socket itself is the buffer (one non-blocking syscall
/// per read or write, readiness awaited only when it would block), so a timeout that drops
/// this future mid-way leaves no IO in flight.
async fn drive(
    stream: &TcpStream,
    conn: &mut rustls::ServerConnection,
) -> Result<(), (Failure, String)> {
    let io_failure = |e: io::Error| (io_reason(&e), e.to_string());
    loop {
        send_queued(stream, conn).await.map_err(io_failure)?;
        if !conn.is_handshaking() {
            return Ok(());
        }
        match conn.read_tls(&mut Socket(stream)) {
            Ok(0) => return Err((Failure::Closed, "closed during the handshake".into())),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                stream.readable(false).await.map_err(io_failure)?;
                continue;
            }
            Err(e) => return Err(io_failure(e)),
        }
        match conn.process_new_packets() {
            Ok(state) if state.peer_has_closed() && conn.is_handshaking() => {
                return Err((Failure::Closed, "close_notify during the handshake".into()))
            }
            Ok(_) => {}
            Err(e) => {
                // The alert is the client's only clue; if it cannot be sent, the failure is
                // still rustls's, not the socket's.
                let _ = send_queued(stream, conn).await;
                return Err((rustls_reason(&e), e.to_string()));
            }
        }
    }
}

/// Write every TLS byte rustls has queued, waiting for the socket to take them.
async fn send_queued(stream: &TcpStream, conn: &mut rustls::ServerConnection) -> io::Result<()> {
    if !conn.wants_write() {
        return Ok(());
    }
    // Gathered first so that a handshake flight of several records is one send, not one each.
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out)?;
    }
    let mut sent = 0;
    while sent < out.len() {
        match send(
            stream.as_raw_fd(),
            &out[sent..],
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        ) {
            Ok(n) => sent += n,
            Err(Errno::EAGAIN) => stream.writable(false).await?,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(io::Error::from(e)),
        }
    }
    Ok(())
}

/// The socket as the `Read` rustls pulls records from: one non-blocking `recv`, `WouldBlock`
/// when nothing has arrived.
struct Socket<'a>(&'a TcpStream);

impl io::Read for Socket<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match recv(self.0.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT) {
                Ok(n) => return Ok(n),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(io::Error::from(e)),
            }
        }
    }
}

/// The connection's first byte, peeked (left for rustls to read); None if the client closed.
/// A peek rather than a read: rustls then reads the whole ClientHello itself, and the TCP
/// stream is still ours to answer on when the byte says plain HTTP.
async fn first_byte(stream: &TcpStream) -> io::Result<Option<u8>> {
    let mut byte = [0u8; 1];
    loop {
        // Usually the ClientHello is already here; wait for readiness only when it is not.
        match recv(
            stream.as_raw_fd(),
            &mut byte,
            MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(0) => return Ok(None),
            Ok(_) => return Ok(Some(byte[0])),
            Err(Errno::EAGAIN | Errno::EINTR) => stream.readable(false).await?,
            Err(e) => return Err(io::Error::from(e)),
        }
    }
}

/// A TLS stream whose reads and writes may be cancelled (by the request loop's timeouts).
/// monoio-rustls lends its own buffer to the socket for the length of an IO, and a read or
/// write dropped by a timeout never gives it back: the next IO on that stream would panic,
/// and a panic in a task takes the worker thread down. So an IO still marked in flight when
/// the next one starts was cancelled, and the stream refuses further IO that would touch the
/// lost buffer with an error (a read after a cancelled read or write: rustls may write an
/// alert while reading; a write after a cancelled write), which closes the connection as a
/// failed IO does. A write after a cancelled read is fine: it is how a 408 gets out.
pub struct CancelSafe<S> {
    inner: S,
    reading: bool,
    writing: bool,
}

impl<S> CancelSafe<S> {
    /// Wrap a stream that has no IO in flight.
    pub fn new(inner: S) -> Self {
        CancelSafe {
            inner,
            reading: false,
            writing: false,
        }
    }
}

fn cancelled_before() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "an earlier TLS read or write was cancelled",
    )
}

impl<S: AsyncReadRent + AsyncWriteRent> AsyncReadRent for CancelSafe<S> {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        if self.reading || self.writing {
            return (Err(cancelled_before()), buf);
        }
        self.reading = true;
        let r = self.inner.read(buf).await;
        self.reading = false;
        r
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        if self.reading || self.writing {
            return (Err(cancelled_before()), buf);
        }
        self.reading = true;
        let r = self.inner.readv(buf).await;
        self.reading = false;
        r
    }
}

impl<S: AsyncWriteRent> AsyncWriteRent for CancelSafe<S> {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        if self.writing {
            return (Err(cancelled_before()), buf);
        }
        self.writing = true;
        let r = self.inner.write(buf).await;
        self.writing = false;
        r
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        if self.writing {
            return (Err(cancelled_before()), buf);
        }
        self.writing = true;
        let r = self.inner.writev(buf).await;
        self.writing = false;
        r
    }

    async fn flush(&mut self) -> io::Result<()> {
        if self.writing {
            return Err(cancelled_before());
        }
        self.writing = true;
        let r = self.inner.flush().await;
        self.writing = false;
        r
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        if self.writing {
            return Err(cancelled_before());
        }
        self.writing = true;
        let r = self.inner.shutdown().await;
        self.writing = false;
        r
    }
}

/// The failure reason of a socket error during the handshake.
fn io_reason(e: &io::Error) -> Failure {
    match e.kind() {
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionAborted => Failure::Closed,
        _ => Failure::Protocol,
    }
}

fn rustls_reason(e: &rustls::Error) -> Failure {
    match e {
        rustls::Error::NoApplicationProtocol => Failure::NoAlpn,
        rustls::Error::AlertReceived(_) => Failure::AlertReceived,
        _ => Failure::Protocol,
    }
}

/// Handshake failures not yet reported, per worker thread.
#[derive(Default)]
struct Unreported {
    count: u64,
    last_warning: Option<Instant>,
}

impl Unreported {
    /// Count one failure; the text of a warning when one is due (the first, then at most one
    /// per [`HANDSHAKE_WARN_EVERY`]).
    fn failed(&mut self, now: Instant, what: &str) -> Option<String> {
        self.count += 1;
        if self
            .last_warning
            .is_some_and(|t| now.duration_since(t) < HANDSHAKE_WARN_EVERY)
        {
            return None;
        }
        let line = format!(
            "{} TLS handshake(s) failed since the last warning; the latest: {what} (by reason: \
             ringway_tls_handshake_failures_total; each one: RINGWAY_LOG=debug)",
            self.count
        );
        self.count = 0;
        self.last_warning = Some(now);
        Some(line)
    }
}

thread_local! {
    static UNREPORTED: RefCell<Unreported> = RefCell::new(Unreported::default());
}

/// Count a failure in the metrics, log it at debug, and warn at a bounded rate.
fn record(ctx: &Ctx, f: Failure, peer: SocketAddr, detail: &str) {
    ctx.metrics.tls_handshake(Err(f.as_str()));
    let what = format!("{} from {peer}: {detail}", f.as_str());
    crate::log::debug(format_args!("worker {}: TLS handshake {what}", ctx.worker));
    // A client that connects and leaves (a TCP health check) is no news.
    if f == Failure::Closed {
        return;
    }
    let warning = UNREPORTED.with(|u| u.borrow_mut().failed(Instant::now(), &what));
    if let Some(w) = warning {
        crate::log::warn(format_args!("worker {}: {w}", ctx.worker));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_answer_is_one_well_framed_response() {
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut r = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(n)) = r.parse(PLAIN_HTTP_ANSWER) else {
            unreachable!("the answer does not parse as a response head");
        };
        assert_eq!(r.code, Some(400));
        let len = r
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .and_then(|v| v.parse::<usize>().ok());
        assert_eq!(len, Some(PLAIN_HTTP_ANSWER.len() - n));
    }

    #[test]
    fn warnings_are_rate_limited_and_carry_the_count() {
        let mut u = Unreported::default();
        let t0 = Instant::now();
        let first = u.failed(t0, "timeout from a");
        assert!(first.is_some_and(|w| w.starts_with("1 TLS handshake(s)")));
        for i in 1..50u64 {
            assert!(u.failed(t0 + Duration::from_millis(i), "x").is_none());
        }
        let next = u.failed(t0 + HANDSHAKE_WARN_EVERY, "plain_http from b");
        assert!(next.is_some_and(|w| w.starts_with("50 TLS handshake(s)") && w.contains("from b")));
        assert_eq!(u.count, 0);
    }

    #[test]
    fn alpn_and_alerts_have_their_own_reasons() {
        assert_eq!(
            rustls_reason(&rustls::Error::NoApplicationProtocol),
            Failure::NoAlpn
        );
        assert_eq!(
            rustls_reason(&rustls::Error::AlertReceived(
                rustls::AlertDescription::UnknownCA
            )),
            Failure::AlertReceived
        );
        assert_eq!(
            rustls_reason(&rustls::Error::HandshakeNotComplete),
            Failure::Protocol
        );
        assert_eq!(
            io_reason(&io::ErrorKind::ConnectionReset.into()),
            Failure::Closed
        );
        assert_eq!(io_reason(&io::ErrorKind::Other.into()), Failure::Protocol);
    }
}
