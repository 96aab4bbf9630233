//! The HTTP/1.1 client over monoio: one keep-alive connection, one request at a time, the
//! response read as it arrives with the time of each read, so stream timing is what a client
//! on this socket would see.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use crate::http::{HttpError, Progress, ResponseReader};
use crate::reqlog::HeadNote;
use crate::sse::{Dialect, SseTimer};
use crate::stats::ErrorKind;

/// Read buffer per connection. Events and small bodies fit in one read; larger bodies take
/// several, which only costs reads, not correctness.
pub const READ_BUF_BYTES: usize = 32 * 1024;
/// Bytes of a failed response's body kept for the preflight message.
pub const MAX_CAPTURE: usize = 512;

/// One open connection and its reusable buffers.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Inter-token gaps of the last exchange, microseconds.
    pub gaps: Vec<u64>,
    /// The start of the last response body (filled only when capture is asked for).
    pub capture: Vec<u8>,
    /// The last response's status and logged headers (only with `--request-log`).
    pub note: Option<HeadNote>,
}

/// How one exchange went, when the HTTP exchange itself completed.
#[derive(Clone, Copy, Debug)]
pub struct Reply {
    /// Response status.
    pub status: u16,
    /// When the last byte of the response arrived.
    pub done_at: Instant,
    /// When the first content event arrived (streams only).
    pub first_token_at: Option<Instant>,
    /// The connection can carry another request.
    pub reusable: bool,
    /// What is wrong with a 2xx stream, if anything.
    pub stream_error: Option<ErrorKind>,
}

impl Conn {
    /// Connect with Nagle off (requests are written whole; waiting would add latency).
    pub async fn connect(addr: SocketAddr) -> Result<Conn, ErrorKind> {
        let stream = TcpStream::connect_addr(addr)
            .await
            .map_err(|_| ErrorKind::Connect)?;
        // Failure to set it only costs latency, never correctness.
        let _ = stream.set_nodelay(true);
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(READ_BUF_BYTES),
            gaps: Vec::new(),
            capture: Vec::new(),
            note: None,
        })
    }

    /// Send `request` and read the whole response. `stream` means a streaming request whose
    /// SSE events are timed. Failures that leave the connection unusable are errors; an HTTP
    /// error status is a `Reply` so the caller can keep the connection.
    pub async fn exchange(
        &mut self,
        request: Bytes,
        stream: bool,
        dialect: Dialect,
        capture: bool,
    ) -> Result<Reply, ErrorKind> {
        self.gaps.clear();
        self.capture.clear();
        if let Some(note) = self.note.as_mut() {
            note.clear();
        }
        let (res, _) = self.stream.write_all(request).await;
        res.map_err(|_| ErrorKind::Write)?;

        let mut reader = ResponseReader::new();
        let mut sse: Option<SseTimer> = None;
        let mut first_token_at: Option<Instant> = None;
        let mut last_token_at: Option<Instant> = None;
        let mut done_event = false;
        let mut error_event = false;
        let mut received_any = false;
        loop {
            let mut buf = std::mem::take(&mut self.buf);
            buf.clear();
            let (res, buf) = self.stream.read(buf).await;
            self.buf = buf;
            let n = res.map_err(|_| ErrorKind::Read)?;
            let now = Instant::now();
            if n == 0 {
                return match reader.eof() {
                    Ok(()) => Ok(self.finish(
                        &reader,
                        now,
                        first_token_at,
                        stream,
                        done_event,
                        error_event,
                        false,
                    )),
                    Err(_) if !received_any => Err(ErrorKind::Closed),
                    Err(_) if stream && reader.head().is_some() => Err(ErrorKind::Truncated),
                    Err(_) => Err(ErrorKind::Closed),
                };
            }
            received_any = true;
            let mut off = 0usize;
            while off < n {
                let input = self.buf.get(off..n).unwrap_or(&[]);
                let mut content = 0u32;
                let capture_buf = &mut self.capture;
                let progress = reader
                    .feed(input, &mut |body| {
                        if let Some(p) = sse.as_mut() {
                            let e = p.feed(body);
                            content += e.content;
                            done_event |= e.done;
                            error_event |= e.error;
                        }
                        if capture {
                            let room = MAX_CAPTURE.saturating_sub(capture_buf.len());
                            capture_buf
                                .extend_from_slice(body.get(..body.len().min(room)).unwrap_or(&[]));
                        }
                    })
                    .map_err(http_error)?;
                // Every content event completed by this read arrived now: the first one sets
                // the first-token time, each later one a gap (0 within one read).
                for _ in 0..content {
                    match last_token_at {
                        None => first_token_at = Some(now),
                        Some(prev) => self
                            .gaps
                            .push(crate::stats::micros(now.saturating_duration_since(prev))),
                    }
                    last_token_at = Some(now);
                }
                match progress {
                    Progress::NeedMore => off = n,
                    Progress::Head { used } => {
                        if let (Some(note), Some(head)) = (self.note.as_mut(), reader.head()) {
                            note.read_head(head.status, input.get(..used).unwrap_or(&[]));
                        }
                        off += used;
                        if let Some(head) = reader.head() {
                            if stream && (200..300).contains(&head.status) && head.event_stream {
                                sse = Some(SseTimer::new(dialect));
                            }
                        }
                    }
                    Progress::Done { used } => {
                        // We never pipeline, so bytes past the response mean broken framing.
                        if off + used < n {
                            return Err(ErrorKind::ExtraBytes);
                        }
                        return Ok(self.finish(
                            &reader,
                            now,
                            first_token_at,
                            stream,
                            done_event,
                            error_event,
                            true,
                        ));
                    }
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        reader: &ResponseReader,
        now: Instant,
        first_token_at: Option<Instant>,
        stream: bool,
        done_event: bool,
        error_event: bool,
        clean_end: bool,
    ) -> Reply {
        let head = reader.head();
        let status = head.map_or(0, |h| h.status);
        let ok = (200..300).contains(&status);
        let stream_error = if !stream || !ok {
            None
        } else if !head.is_some_and(|h| h.event_stream) {
            Some(ErrorKind::NotSse)
        } else if error_event {
            Some(ErrorKind::StreamError)
        } else if !done_event {
            Some(ErrorKind::Truncated)
        } else if first_token_at.is_none() {
            Some(ErrorKind::NoTokens)
        } else {
            None
        };
        Reply {
            status,
            done_at: now,
            first_token_at,
            reusable: clean_end && head.is_some_and(|h| h.keep_alive),
            stream_error,
        }
    }
}

fn http_error(e: HttpError) -> ErrorKind {
    match e {
        HttpError::Truncated => ErrorKind::Closed,
        _ => ErrorKind::BadResponse,
    }
}
