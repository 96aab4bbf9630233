//! One Responses turn on a kept connection, over HTTP/SSE (`POST /v1/responses`) or over a
//! WebSocket (`response.create` messages), timed as the client sees it: when the request was
//! written, when the first event and the first delta arrived, when the terminal event did.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::http::{self, Progress, ResponseReader, Url};
use crate::ws;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;
/// Longest wait for the gateway's next bytes before the turn is an error.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of an unexpected answer quoted in the error.
const QUOTED: usize = 300;

/// How one turn went.
#[derive(Debug)]
pub struct Turn {
    /// Request written to first event (`response.created`) read.
    pub first_event: Duration,
    /// Request written to first `*.delta` event read.
    pub first_delta: Option<Duration>,
    /// Request written to terminal event read.
    pub total: Duration,
    /// Bytes the client wrote for this turn (HTTP head and body, or the frame).
    pub sent: usize,
    /// The `response.completed` event's data.
    pub completed: Vec<u8>,
}

/// Which transport a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Http,
    Ws,
}

/// A kept connection to the gateway.
pub struct Conn {
    kind: Kind,
    stream: TcpStream,
    url: Url,
    chunk: Vec<u8>,
    /// WebSocket bytes read past the last frame.
    pending: Vec<u8>,
    masks: u32,
}

impl Conn {
    /// Connect (and for a WebSocket, upgrade `GET /v1/responses`).
    pub fn open(kind: Kind, url: &Url) -> Result<Conn, String> {
        let stream = TcpStream::connect(&url.authority).map_err(|e| format!("connect: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .map_err(|e| e.to_string())?;
        let mut c = Conn {
            kind,
            stream,
            url: url.clone(),
            chunk: vec![0; READ_CHUNK],
            pending: Vec::new(),
            masks: 0x1234_5678,
        };
        if kind == Kind::Ws {
            c.upgrade()?;
        }
        Ok(c)
    }

    fn upgrade(&mut self) -> Result<(), String> {
        let req = ws::upgrade_request(&self.url.authority, &self.url.path);
        self.stream.write_all(&req).map_err(|e| e.to_string())?;
        let mut head = Vec::new();
        loop {
            let n = self
                .stream
                .read(&mut self.chunk)
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed during the upgrade".into());
            }
            head.extend_from_slice(self.chunk.get(..n).unwrap_or_default());
            if let Some(end) = memchr::memmem::find(&head, b"\r\n\r\n") {
                if !head.starts_with(b"HTTP/1.1 101") {
                    return Err(format!("upgrade refused: {}", quote(&head)));
                }
                self.pending = head.get(end + 4..).unwrap_or_default().to_vec();
                return Ok(());
            }
            if head.len() > http::MAX_HEAD_BYTES {
                return Err("upgrade answer head too large".into());
            }
        }
    }

    /// The bytes that carry `body` (a Responses request object) on this transport.
    pub fn encode(&mut self, body: &Value) -> Vec<u8> {
        match self.kind {
            Kind::Http => {
                let json = serde_json::to_vec(body).unwrap_or_default();
                http::build_post(&self.url, &[], &json)
            }
            Kind::Ws => {
                // `type` first, as Codex writes it; `stream` is implied by the transport.
                let mut m = serde_json::Map::new();
                m.insert("type".into(), Value::from("response.create"));
                if let Value::Object(fields) = body {
                    for (k, v) in fields {
                        if k != "stream" {
                            m.insert(k.clone(), v.clone());
                        }
                    }
                }
                let json = serde_json::to_vec(&Value::Object(m)).unwrap_or_default();
                self.masks = self
                    .masks
                    .wrapping_mul(1_664_525)
                    .wrapping_add(1_013_904_223);
                ws::text_frame(&json, self.masks.to_be_bytes())
            }
        }
    }

    /// Write `request` (from [`encode`](Self::encode)) and read the answer to its end.
    pub fn turn(&mut self, request: &[u8]) -> Result<Turn, String> {
        let start = Instant::now();
        self.stream
            .write_all(request)
            .map_err(|e| format!("write: {e}"))?;
        let mut ev = Events::new(start, request.len());
        match self.kind {
            Kind::Http => self.read_http(&mut ev)?,
            Kind::Ws => self.read_ws(&mut ev)?,
        }
        ev.finish()
    }

    fn read_http(&mut self, ev: &mut Events) -> Result<(), String> {
        let mut reader = ResponseReader::new();
        let mut sse = SseSplit::default();
        let mut error_body = Vec::new();
        let mut ok = None;
        loop {
            let n = self
                .stream
                .read(&mut self.chunk)
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("the gateway closed the connection mid-answer".into());
            }
            let now = Instant::now();
            let mut off = 0;
            while off < n {
                let input = self.chunk.get(off..n).unwrap_or_default();
                let progress = reader
                    .feed(input, &mut |b| match ok {
                        Some(true) => sse.push(b),
                        _ => error_body.extend_from_slice(b),
                    })
                    .map_err(|e| e.to_string())?;
                for data in sse.events() {
                    ev.on(&data, now);
                }
                match progress {
                    Progress::NeedMore => off = n,
                    Progress::Head { used } => {
                        off += used;
                        if let Some(h) = reader.head() {
                            ok = Some(h.status == 200 && h.event_stream);
                        }
                    }
                    Progress::Done { .. } => {
                        if ok != Some(true) {
                            let status = reader.head().map_or(0, |h| h.status);
                            return Err(format!("status {status}: {}", quote(&error_body)));
                        }
                        if !reader.head().is_some_and(|h| h.keep_alive) {
                            return Err("the gateway did not keep the connection".into());
                        }
                        return Ok(());
                    }
                }
            }
        }
    }

    fn read_ws(&mut self, ev: &mut Events) -> Result<(), String> {
        let mut buf = std::mem::take(&mut self.pending);
        loop {
            let now = Instant::now();
            let mut used = 0;
            while let Some((frame, n)) = ws::parse_frame(buf.get(used..).unwrap_or_default())? {
                used += n;
                match frame.opcode {
                    1 if frame.fin => ev.on(&frame.payload, now),
                    1 | 0 => return Err("fragmented server message (not expected)".into()),
                    8 => return Err(format!("closed by the gateway: {}", quote(&frame.payload))),
                    _ => {}
                }
                if ev.done {
                    self.pending = buf.split_off(used);
                    return Ok(());
                }
            }
            buf.drain(..used);
            let n = self
                .stream
                .read(&mut self.chunk)
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("the gateway closed the connection mid-answer".into());
            }
            buf.extend_from_slice(self.chunk.get(..n).unwrap_or_default());
        }
    }
}

/// What the events of one answer said, and when.
struct Events {
    start: Instant,
    sent: usize,
    first_event: Option<Instant>,
    first_delta: Option<Instant>,
    done: bool,
    end: Option<Instant>,
    completed: Option<Vec<u8>>,
    error: Option<String>,
}

impl Events {
    fn new(start: Instant, sent: usize) -> Events {
        Events {
            start,
            sent,
            first_event: None,
            first_delta: None,
            done: false,
            end: None,
            completed: None,
            error: None,
        }
    }

    fn on(&mut self, data: &[u8], now: Instant) {
        if self.done {
            return;
        }
        self.first_event.get_or_insert(now);
        let kind = event_type(data);
        if kind.ends_with(b".delta") {
            self.first_delta.get_or_insert(now);
        }
        match kind {
            b"response.completed" => self.completed = Some(data.to_vec()),
            b"response.failed" | b"response.incomplete" | b"error" => {
                self.error = Some(quote(data));
            }
            _ => return,
        }
        self.done = true;
        self.end = Some(now);
    }

    fn finish(self) -> Result<Turn, String> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let (Some(first), Some(end), Some(completed)) =
            (self.first_event, self.end, self.completed)
        else {
            return Err("the answer ended without response.completed".into());
        };
        Ok(Turn {
            first_event: first.saturating_duration_since(self.start),
            first_delta: self
                .first_delta
                .map(|t| t.saturating_duration_since(self.start)),
            total: end.saturating_duration_since(self.start),
            sent: self.sent,
            completed,
        })
    }
}

/// The `type` of an event's JSON (ringway writes it first; found by a scan so the bench's
/// own cost stays small).
fn event_type(data: &[u8]) -> &[u8] {
    const KEY: &[u8] = b"\"type\":\"";
    let Some(at) = memchr::memmem::find(data, KEY) else {
        return b"";
    };
    let rest = data.get(at + KEY.len()..).unwrap_or_default();
    let end = memchr::memchr(b'"', rest).unwrap_or(0);
    rest.get(..end).unwrap_or_default()
}

/// SSE events' `data` out of a body that arrives in pieces.
#[derive(Default)]
struct SseSplit {
    buf: Vec<u8>,
}

impl SseSplit {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    fn events(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut at = 0;
        while let Some(end) = memchr::memmem::find(self.buf.get(at..).unwrap_or_default(), b"\n\n")
        {
            let block = self.buf.get(at..at + end).unwrap_or_default();
            let mut data = Vec::new();
            for line in block.split(|b| *b == b'\n') {
                if let Some(d) = line.strip_prefix(b"data:") {
                    if !data.is_empty() {
                        data.push(b'\n');
                    }
                    data.extend_from_slice(d.strip_prefix(b" ").unwrap_or(d));
                }
            }
            if !data.is_empty() && data != b"[DONE]" {
                out.push(data);
            }
            at += end + 2;
        }
        self.buf.drain(..at);
        out
    }
}

fn quote(b: &[u8]) -> String {
    String::from_utf8_lossy(b.get(..b.len().min(QUOTED)).unwrap_or_default()).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn sse_data_is_split_however_it_arrives() {
        let body = b"event: response.created\ndata: {\"type\":\"response.created\"}\n\nevent: x\ndata: {\"type\":\"response.output_text.delta\"}\n\n";
        for cut in 0..body.len() {
            let mut s = SseSplit::default();
            s.push(&body[..cut]);
            let mut got = s.events();
            s.push(&body[cut..]);
            got.extend(s.events());
            assert_eq!(got.len(), 2, "cut {cut}");
            assert_eq!(event_type(&got[1]), b"response.output_text.delta");
        }
    }
}
