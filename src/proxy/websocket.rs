//! Responses over a WebSocket (the transport Codex prefers): the upgrade of `GET
//! /v1/responses` (authenticated from its headers), then one `response.create` message at a
//! time, each run through the same pipeline as a `POST /v1/responses` (routing, limits,
//! translation, failover, PII, custody, metrics, its own log line) with its events written as
//! text frames, and the connection's memory of its last response, which a message continues
//! with `previous_response_id` whatever `store` says (Codex relies on it).

use std::time::{Duration, Instant};

use bytes::Bytes;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::BufResult;
use serde_json::value::RawValue;

use super::ctx::Ctx;
use super::state::{After, Exchange};
use super::{auth, pipeline, pump, record, respond};
use crate::downstream::{ClientConn, Transport};
use crate::error::{Error, ErrorKind};
use crate::format::Format;
use crate::http1::RequestHead;
use crate::sse;
use crate::ws::{self, CloseCode, Limits, Message, MessageDecoder, Opcode, Role};

/// Longest a connection waits for its next message; then it is closed (1000, "idle").
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Responses one connection carries; the next message closes it (1008), and the client opens
/// another (OpenAI limits a connection to 60 minutes for the same reason: bounded state).
pub const MAX_RESPONSES_PER_CONNECTION: u32 = 10_000;
/// Request headers of the upgrade that are not carried to each message's request: the
/// handshake's own and the framing's.
const NOT_CARRIED: &[&str] = &[
    "connection",
    "upgrade",
    "content-length",
    "transfer-encoding",
    "expect",
    "keep-alive",
    "te",
    "trailer",
];

/// Is this request an upgrade of the Responses endpoint?
pub(super) fn is_upgrade(head: &RequestHead) -> bool {
    head.method() == crate::http1::Method::Get
        && matches!(head.path(), "/v1/responses" | "/responses")
        && ws::wants_upgrade(head.headers())
}

/// Answer the upgrade: 426 when the config turns WebSockets off, 400/426 for a bad handshake,
/// the HTTP path's 401 for a bad key; else 101 and the session, to the connection's end.
pub(super) async fn upgrade<S: Transport>(
    ctx: &Ctx,
    conn: &mut ClientConn<S>,
    head: &RequestHead,
) -> After {
    let mut ex = Exchange::new(
        head,
        ctx.request_id(),
        "responses_websocket",
        &ctx.draining,
        &ctx.cut,
        &ctx.config.server.headers,
    );
    ex.format = Format::Responses;
    ex.keep_alive.set(false);
    let refusal = if !ctx.config.server.responses_websocket {
        Some(Error::new(
            ErrorKind::FormatMismatch,
            "WebSockets are off on this gateway (`server.responses_websocket`); use POST /v1/responses",
        ))
    } else {
        match ws::check_request(head) {
            Err(e) => Some(Error::new(ErrorKind::BadRequest, e.to_string())),
            Ok(accept) => match auth::authenticate(ctx, &mut ex) {
                Err(e) => Some(e),
                Ok(_) => {
                    conn.wbuf.clear();
                    ws::write_switching_protocols(&mut conn.wbuf, &accept);
                    ex.response.status.set(101);
                    let ok = conn.flush().await.is_ok();
                    record::log(ctx, &ex);
                    drop(ex);
                    if ok {
                        session(ctx, conn, head).await;
                    }
                    return After::Close;
                }
            },
        }
    };
    if let Some(e) = refusal {
        let status = if ctx.config.server.responses_websocket {
            match ws::check_request(head) {
                Err(h) => h.status(),
                Ok(_) => e.status(),
            }
        } else {
            426
        };
        ex.response.error.set(Some(e.kind()));
        let body = Format::Responses.error_body(&e);
        let _ = respond::respond(conn, &ex, status, "application/json", &body).await;
    }
    record::log(ctx, &ex);
    After::Close
}

/// What the connection remembers of its last response: its id and its whole conversation (the
/// input it ran with, then its output), for a message continuing it.
struct Last {
    id: String,
    items: Vec<Box<RawValue>>,
}

/// The message loop: frames in, one response at a time, frames out.
async fn session<S: Transport>(ctx: &Ctx, conn: &mut ClientConn<S>, upgrade: &RequestHead) {
    let max = ctx.config.server.max_body_bytes;
    let mut dec = MessageDecoder::new(
        Role::Server,
        Limits {
            max_frame: max,
            max_message: max,
        },
    );
    let mut last: Option<Last> = None;
    let mut served = 0u32;
    loop {
        let message = match dec.decode(conn.rbuf_mut()) {
            Ok(Some(m)) => m,
            Ok(None) => {
                if ctx.draining.fired() {
                    close(conn, CloseCode::GOING_AWAY, "the gateway is restarting").await;
                    return;
                }
                let deadline = Instant::now() + IDLE_TIMEOUT;
                match ctx.draining.race(conn.fill_until(deadline)).await {
                    None => {
                        close(conn, CloseCode::GOING_AWAY, "the gateway is restarting").await;
                        return;
                    }
                    Some(Ok(0)) | Some(Err(Some(_))) => return,
                    Some(Ok(_)) => continue,
                    Some(Err(None)) => {
                        close(conn, CloseCode::NORMAL, "idle").await;
                        return;
                    }
                }
            }
            Err(e) => {
                close(conn, e.close_code(), &e.to_string()).await;
                return;
            }
        };
        match message {
            Message::Ping(payload) => {
                conn.wbuf.clear();
                let _ = ws::encode_frame(&mut conn.wbuf, true, Opcode::Pong, &payload);
                if conn.flush().await.is_err() {
                    return;
                }
            }
            Message::Pong(_) => {}
            Message::Close(_) => {
                close(conn, CloseCode::NORMAL, "").await;
                return;
            }
            Message::Binary(_) => {
                let e = Error::new(
                    ErrorKind::BadRequest,
                    "binary messages are not supported; send `response.create` as text",
                );
                if send_error(conn, &e).await.is_err() {
                    return;
                }
            }
            Message::Text(text) => {
                served += 1;
                if served > MAX_RESPONSES_PER_CONNECTION {
                    let reason = "responses per connection reached; open another";
                    close(conn, CloseCode::POLICY_VIOLATION, reason).await;
                    return;
                }
                if let Err(e) = run(ctx, conn, upgrade, &text, &mut last).await {
                    if send_error(conn, &e).await.is_err() {
                        return;
                    }
                }
                if conn.broken {
                    return;
                }
            }
        }
    }
}

/// Send a close frame (the connection then ends).
async fn close<S: Transport>(conn: &mut ClientConn<S>, code: CloseCode, reason: &str) {
    conn.wbuf.clear();
    ws::encode_close(&mut conn.wbuf, code, reason);
    let _ = conn.flush().await;
}

/// The API's `error` event for `e` (the connection stays open).
fn error_frame(out: &mut Vec<u8>, status: u16, error: &[u8]) {
    let mut payload = Vec::with_capacity(error.len() + 40);
    payload.extend_from_slice(b"{\"type\":\"error\",\"status\":");
    payload.extend_from_slice(status.to_string().as_bytes());
    payload.extend_from_slice(b",\"error\":");
    payload.extend_from_slice(error);
    payload.push(b'}');
    let _ = ws::encode_frame(out, true, Opcode::Text, &payload);
}

async fn send_error<S: Transport>(conn: &mut ClientConn<S>, e: &Error) -> crate::error::Result<()> {
    let body = Format::Responses.error_body(e);
    let inner = error_object(&body);
    conn.wbuf.clear();
    error_frame(
        &mut conn.wbuf,
        e.status(),
        inner.as_deref().unwrap_or(&body),
    );
    conn.flush().await
}

/// The `error` object of an error body (`{"error":{…}}`), as JSON.
fn error_object(body: &[u8]) -> Option<Vec<u8>> {
    #[derive(serde::Deserialize)]
    struct Body<'a> {
        #[serde(borrow)]
        error: &'a RawValue,
    }
    let b: Body<'_> = serde_json::from_slice(body).ok()?;
    Some(b.error.get().as_bytes().to_vec())
}

/// The fields of a `response.create` message this layer reads.
struct Create<'b> {
    members: Vec<(String, &'b [u8])>,
    previous: Option<String>,
    input: Option<&'b [u8]>,
    generate: bool,
    model: Option<&'b [u8]>,
}

fn bad(message: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(ErrorKind::InvalidBody, message)
}

fn parse_create(text: &[u8]) -> Result<Create<'_>, Error> {
    let members = crate::json::members(text)
        .filter(|_| serde_json::from_slice::<serde::de::IgnoredAny>(text).is_ok())
        .ok_or_else(|| bad("a message must be a JSON object"))?;
    let mut c = Create {
        members: Vec::with_capacity(members.len()),
        previous: None,
        input: None,
        generate: true,
        model: None,
    };
    let mut kind = None;
    for m in members {
        let value = text.get(m.value.clone()).unwrap_or_default();
        match m.key.as_str() {
            "type" => kind = Some(value),
            "generate" => c.generate = value != b"false",
            "previous_response_id" if value != b"null" => {
                c.previous = Some(serde_json::from_slice(value).map_err(|_| {
                    bad("`previous_response_id` must be a string")
                        .with_param("previous_response_id")
                })?);
            }
            "input" => c.input = Some(value),
            "model" => c.model = Some(value),
            _ => {}
        }
        if let Some(span) = text.get(m.span.clone()) {
            c.members.push((m.key, span));
        }
    }
    match kind {
        Some(b"\"response.create\"") => Ok(c),
        Some(other) => Err(bad(format!(
            "unknown event type {}: this endpoint takes `response.create`",
            String::from_utf8_lossy(other.get(..other.len().min(64)).unwrap_or_default())
        ))
        .with_param("type")),
        None => Err(bad("a message needs `type`: `response.create`").with_param("type")),
    }
}

/// Run one `response.create`: continued from the connection's last response when it names it,
/// answered here when `generate: false`, else through the pipeline.
async fn run<S: Transport>(
    ctx: &Ctx,
    conn: &mut ClientConn<S>,
    upgrade: &RequestHead,
    text: &[u8],
    last: &mut Option<Last>,
) -> Result<(), Error> {
    let create = parse_create(text)?;
    let own = match &create.input {
        None => Vec::new(),
        Some(raw) => std::str::from_utf8(raw)
            .ok()
            .and_then(crate::responses_store::request_items)
            .ok_or_else(|| {
                bad("`input` must be a string or an array of items").with_param("input")
            })?,
    };
    // The connection's own memory first; another id goes on to the store (whose 400
    // `previous_response_not_found` makes Codex resend the whole conversation).
    let local = match (&create.previous, last.as_ref()) {
        (Some(id), Some(l)) if *id == l.id => true,
        (None, _) => true,
        _ => false,
    };
    let mut whole: Vec<Box<RawValue>> = Vec::new();
    if local {
        if let (Some(_), Some(l)) = (&create.previous, last.take()) {
            whole = l.items;
        }
    } else {
        *last = None;
    }
    whole.extend(own);
    if !create.generate {
        // A warm-up: nothing is asked of a provider; its input is remembered for the turn that
        // continues it.
        let id = crate::translate::responses::ResponsesMeta::response_id(&ctx.request_id());
        conn.wbuf.clear();
        warm_up_frames(&mut conn.wbuf, &id, create.model.unwrap_or(b"null"));
        conn.flush().await?;
        *last = remember(id, whole, Vec::new(), ctx.config.server.max_body_bytes);
        return Ok(());
    }
    // The body a POST would have carried.
    let mut body = Vec::with_capacity(text.len() + 64);
    body.push(b'{');
    let mut n = 0;
    for (key, span) in &create.members {
        let skip = match key.as_str() {
            "type" | "generate" | "stream" => true,
            "previous_response_id" | "input" => local,
            _ => false,
        };
        if skip {
            continue;
        }
        if n > 0 {
            body.push(b',');
        }
        body.extend_from_slice(span);
        n += 1;
    }
    if n > 0 {
        body.push(b',');
    }
    body.extend_from_slice(b"\"stream\":true");
    if local {
        body.extend_from_slice(b",\"input\":[");
        for (i, item) in whole.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(item.get().as_bytes());
        }
        body.push(b']');
    }
    body.push(b'}');
    let head = request_head(upgrade, body.len())?;
    let mut inner = ClientConn::with_buffered(
        Framer {
            outer: &mut *conn,
            relay: Relay::default(),
        },
        &body,
    );
    inner.write_timeout = ctx.config.server.write_timeout;
    drop(body);
    Box::pin(pipeline::exchange(ctx, &mut inner, &head)).await;
    let _ = inner.flush().await;
    let mut relay = std::mem::take(&mut inner.stream_mut().relay);
    drop(inner);
    conn.wbuf.clear();
    relay.finish(&mut conn.wbuf);
    conn.flush().await?;
    if !relay.said {
        return Err(Error::new(
            ErrorKind::Internal,
            "the response ended without an answer",
        ));
    }
    if let (true, Some((id, output))) = (local, relay.terminal.take()) {
        *last = remember(id, whole, output, ctx.config.server.max_body_bytes);
    }
    Ok(())
}

/// The connection's memory of a response (None when its conversation is larger than a
/// message may be: a continuation of it then gets `previous_response_not_found`, and the
/// client resends the whole).
fn remember(
    id: String,
    mut items: Vec<Box<RawValue>>,
    output: Vec<Box<RawValue>>,
    max: usize,
) -> Option<Last> {
    items.extend(output);
    let bytes: usize = items.iter().map(|i| i.get().len() + 1).sum();
    (bytes <= max).then_some(Last { id, items })
}

/// The `response.created` and `response.completed` of a warm-up (`generate: false`).
fn warm_up_frames(out: &mut Vec<u8>, id: &str, model: &[u8]) {
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for (seq, (kind, status)) in [
        ("response.created", "in_progress"),
        ("response.completed", "completed"),
    ]
    .into_iter()
    .enumerate()
    {
        let completed_at = if status == "completed" {
            created.to_string()
        } else {
            "null".to_owned()
        };
        let payload = format!(
            concat!(
                r#"{{"type":"{kind}","sequence_number":{seq},"response":{{"id":"{id}","object":"response","#,
                r#""created_at":{created},"completed_at":{completed_at},"status":"{status}","error":null,"#,
                r#""incomplete_details":null,"model":{model},"output":[],"parallel_tool_calls":true,"#,
                r#""tools":[],"tool_choice":"auto","store":false,"metadata":{{}},"#,
                r#""usage":{{"input_tokens":0,"input_tokens_details":{{"cached_tokens":0}},"#,
                r#""output_tokens":0,"output_tokens_details":{{"reasoning_tokens":0}},"total_tokens":0}}}}}}"#
            ),
            kind = kind,
            seq = seq,
            id = id,
            created = created,
            completed_at = completed_at,
            status = status,
            model = String::from_utf8_lossy(model),
        );
        let _ = ws::encode_frame(out, true, Opcode::Text, payload.as_bytes());
    }
}

/// The head of the request a message stands for: `POST /v1/responses` with the upgrade's
/// headers (its key, tier, fallback choice, client metadata), HTTP/1.0 so that the answer
/// comes unchunked.
fn request_head(upgrade: &RequestHead, len: usize) -> Result<RequestHead, Error> {
    let mut raw = Vec::with_capacity(512);
    raw.extend_from_slice(b"POST /v1/responses HTTP/1.0\r\n");
    for (name, value) in upgrade.headers() {
        if NOT_CARRIED.iter().any(|n| name.eq_ignore_ascii_case(n))
            || name.to_ascii_lowercase().starts_with("sec-websocket-")
        {
            continue;
        }
        raw.extend_from_slice(name.as_bytes());
        raw.extend_from_slice(b": ");
        raw.extend_from_slice(value);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(format!("content-length: {len}\r\n\r\n").as_bytes());
    let mut buf = bytes::BytesMut::from(&raw[..]);
    match crate::http1::parse_request_head(&mut buf, crate::http1::MAX_HEAD_BYTES + 64) {
        Ok(Some(head)) => Ok(head),
        _ => Err(Error::new(
            ErrorKind::Internal,
            "the message's request head could not be made",
        )),
    }
}

/// What the pipeline writes (an HTTP/1.0 response), read back into frames: each SSE event's
/// data one text frame; an error answer one `error` event. Sans-IO.
#[derive(Default)]
struct Relay {
    /// The response head, until it is whole.
    head: Vec<u8>,
    /// Its status, once read.
    status: u16,
    /// The body is an event stream (else it is gathered whole).
    stream: Option<sse::Decoder>,
    whole: Vec<u8>,
    /// A frame went out.
    said: bool,
    /// The final response's id and output items.
    terminal: Option<(String, Vec<Box<RawValue>>)>,
}

impl Relay {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if self.status == 0 {
            self.head.extend_from_slice(bytes);
            let Some(end) = memchr::memmem::find(&self.head, b"\r\n\r\n") else {
                return;
            };
            let head = std::mem::take(&mut self.head);
            let text = String::from_utf8_lossy(head.get(..end).unwrap_or_default());
            self.status = text
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(500);
            let sse = text.lines().any(|l| {
                let l = l.to_ascii_lowercase();
                l.starts_with("content-type:") && l.contains("text/event-stream")
            });
            if sse && (200..300).contains(&self.status) {
                self.stream = Some(sse::Decoder::new(pump::MAX_SSE_EVENT_BYTES * 2));
            }
            let rest = head.get(end + 4..).unwrap_or_default();
            self.body(rest, out);
            return;
        }
        self.body(bytes, out);
    }

    fn body(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        let Some(dec) = self.stream.as_mut() else {
            self.whole.extend_from_slice(bytes);
            return;
        };
        dec.push(Bytes::copy_from_slice(bytes));
        while let Ok(Some(ev)) = dec.next_event() {
            let Some(data) = ev.data.as_deref() else {
                continue;
            };
            if data.trim_ascii().is_empty() || data == b"[DONE]" {
                continue;
            }
            let _ = ws::encode_frame(out, true, Opcode::Text, data);
            self.said = true;
            if memchr::memmem::find(data, b"\"response\":").is_some() {
                if let Some(t) = terminal(data) {
                    self.terminal = Some(t);
                }
            }
        }
    }

    /// The answer is written: a whole body becomes its frame.
    fn finish(&mut self, out: &mut Vec<u8>) {
        if self.stream.is_some() || self.status == 0 {
            return;
        }
        let body = std::mem::take(&mut self.whole);
        if (200..300).contains(&self.status) {
            // A provider that answered whole although a stream was asked: its response object.
            if serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok() {
                let mut payload =
                    b"{\"type\":\"response.completed\",\"sequence_number\":0,\"response\":"
                        .to_vec();
                payload.extend_from_slice(&body);
                payload.push(b'}');
                if let Some(t) = terminal(&payload) {
                    self.terminal = Some(t);
                }
                let _ = ws::encode_frame(out, true, Opcode::Text, &payload);
                self.said = true;
            }
            return;
        }
        let inner = error_object(&body).unwrap_or_else(|| {
            Format::Responses.error_body(&Error::new(
                ErrorKind::UpstreamProtocol,
                String::from_utf8_lossy(&body).into_owned(),
            ))
        });
        error_frame(out, self.status, &inner);
        self.said = true;
    }
}

/// The id and output items of a `response.completed` (or `.incomplete`) event.
fn terminal(data: &[u8]) -> Option<(String, Vec<Box<RawValue>>)> {
    #[derive(serde::Deserialize)]
    struct Event<'a> {
        #[serde(borrow, rename = "type")]
        kind: std::borrow::Cow<'a, str>,
        response: Option<Resp>,
    }
    #[derive(serde::Deserialize)]
    struct Resp {
        id: String,
        #[serde(default)]
        output: Vec<Box<RawValue>>,
    }
    let ev: Event<'_> = serde_json::from_slice(data).ok()?;
    if !matches!(
        ev.kind.as_ref(),
        "response.completed" | "response.incomplete"
    ) {
        return None;
    }
    let r = ev.response?;
    Some((r.id, r.output))
}

/// The bytes of a buffer the connection writes (`write_all` hands over slices of a `Vec` or
/// of `Bytes`), read without `unsafe`.
fn written<T: IoBuf>(buf: &T) -> Option<&[u8]> {
    use monoio::buf::Slice;
    let any = buf as &dyn std::any::Any;
    if let Some(s) = any.downcast_ref::<Slice<Vec<u8>>>() {
        return s.get_ref().get(s.begin()..s.end());
    }
    if let Some(s) = any.downcast_ref::<Slice<Bytes>>() {
        return s.get_ref().get(s.begin()..s.end());
    }
    if let Some(v) = any.downcast_ref::<Vec<u8>>() {
        return Some(v);
    }
    any.downcast_ref::<Bytes>().map(|b| &b[..])
}

/// The transport a message's request runs over: nothing to read past its body, and what is
/// written goes through the [`Relay`] into frames on the real connection.
struct Framer<'c, S> {
    outer: &'c mut ClientConn<S>,
    relay: Relay,
}

impl<S: Transport> AsyncReadRent for Framer<'_, S> {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        (Ok(0), buf)
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        (Ok(0), buf)
    }
}

impl<S: Transport> AsyncWriteRent for Framer<'_, S> {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let Some(bytes) = written(&buf) else {
            return (
                Err(std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "a buffer type the relay does not read",
                )),
                buf,
            );
        };
        let n = bytes.len();
        self.outer.unpark_wbuf();
        let mut frames = std::mem::take(&mut self.outer.wbuf);
        frames.clear();
        self.relay.feed(bytes, &mut frames);
        self.outer.wbuf = frames;
        match self.outer.flush().await {
            Ok(()) => (Ok(n), buf),
            Err(e) => (
                Err(std::io::Error::new(
                    std::io::ErrorKind::BrokenPipe,
                    e.to_string(),
                )),
                buf,
            ),
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        (
            Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "vectored writes are not relayed",
            )),
            buf,
        )
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text payloads of the frames in `out` (as the server wrote them: unmasked).
    fn payloads(mut out: &[u8]) -> Vec<String> {
        let mut v = Vec::new();
        while out.len() >= 2 {
            assert_eq!(out[0], 0x81);
            let (len, at) = match out[1] {
                126 => (u16::from_be_bytes([out[2], out[3]]) as usize, 4),
                127 => (
                    u64::from_be_bytes(out[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                n => (n as usize, 2),
            };
            v.push(String::from_utf8(out[at..at + len].to_vec()).unwrap());
            out = &out[at + len..];
        }
        v
    }

    #[test]
    fn an_event_stream_becomes_one_frame_per_event_however_it_is_split() {
        let answer = b"HTTP/1.0 200 OK\r\ncontent-type: text/event-stream\r\n\r\nevent: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"output\":[]}}\n\nevent: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"output\":[{\"type\":\"message\"}]}}\n\n";
        for cut in [1, 7, 40, 70, 120, answer.len() - 1] {
            let mut relay = Relay::default();
            let mut out = Vec::new();
            relay.feed(&answer[..cut], &mut out);
            relay.feed(&answer[cut..], &mut out);
            relay.finish(&mut out);
            let frames = payloads(&out);
            assert_eq!(frames.len(), 2, "cut {cut}: {frames:?}");
            assert!(frames[1].starts_with("{\"type\":\"response.completed\""));
            let (id, output) = relay.terminal.take().unwrap();
            assert_eq!(id, "resp_1");
            assert_eq!(output.len(), 1);
            assert!(relay.said);
        }
    }

    #[test]
    fn an_error_answer_becomes_one_error_event() {
        let body = br#"{"error":{"message":"no","type":"invalid_request_error","param":"model","code":null}}"#;
        let mut answer = format!(
            "HTTP/1.0 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        answer.extend_from_slice(body);
        let mut relay = Relay::default();
        let mut out = Vec::new();
        relay.feed(&answer, &mut out);
        assert!(out.is_empty(), "a whole body waits for its end");
        relay.finish(&mut out);
        let frames = payloads(&out);
        let v: serde_json::Value = serde_json::from_str(&frames[0]).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["status"], 400);
        assert_eq!(v["error"]["param"], "model");
        // Nothing written at all: nothing said.
        let mut relay = Relay::default();
        relay.finish(&mut out);
        assert!(!relay.said);
    }

    #[test]
    fn messages_are_read_strictly() {
        let c = parse_create(br#"{"type":"response.create","generate":false,"previous_response_id":"resp_1","input":"hi","model":"m"}"#).unwrap();
        assert!(!c.generate);
        assert_eq!(c.previous.as_deref(), Some("resp_1"));
        assert_eq!(c.input, Some(&b"\"hi\""[..]));
        for bad in [
            &b"[1]"[..],
            b"{\"type\":\"response.create\"",
            b"{\"type\":\"session.update\"}",
            b"{\"model\":\"m\"}",
            b"{\"type\":\"response.create\",\"previous_response_id\":7}",
        ] {
            assert!(
                parse_create(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
