//! The upstream → client pump when the client's format and the provider's differ: errors and
//! whole bodies are read (bounded) and translated; SSE streams go event by event through the
//! stream state machines, each translated frame written as soon as it exists.

use super::relay::frame;
use super::{Exchange, Failure};
use crate::config::{Provider, Target};
use crate::error::{Error, ErrorKind};
use crate::format::Format;
use crate::http1::{self, ResponseBody};
use crate::server::conn::ClientConn;
use crate::sse;
use crate::translate::{self, AnthropicToOpenAiStream, OpenAiToAnthropicStream, RequestMeta};
use crate::upstream::{BodyCodec, BodyFraming, Conn, ResponseHead};
use bytes::Bytes;

use super::budget::Charge;

/// Largest upstream body read whole for translation (non-streaming answers and errors).
pub const MAX_TRANSLATED_BODY: usize = 64 * 1024 * 1024;

/// Room reserved beyond the provider's answer for its translation (ids, field names and
/// usage differ in length between the formats).
const TRANSLATED_SLACK_BYTES: usize = 4096;

/// Provider response headers worth keeping across formats (rate limits, retry hints, ids).
fn keep_header(name: &str) -> bool {
    name == "retry-after"
        || name == "x-should-retry"
        || name.starts_with("anthropic-ratelimit-")
        || name.starts_with("x-ratelimit-")
}

/// The provider's request id, renamed to the header the client's SDK reads.
fn request_id_header(client: Format) -> &'static str {
    match client {
        Format::OpenAi => "x-request-id",
        Format::Anthropic => "request-id",
    }
}

enum StreamTranslator {
    A2O(Box<AnthropicToOpenAiStream>),
    O2A(Box<OpenAiToAnthropicStream>),
}

impl StreamTranslator {
    fn new(client: Format, meta: &RequestMeta) -> Self {
        match client {
            Format::OpenAi => StreamTranslator::A2O(Box::new(AnthropicToOpenAiStream::new(meta))),
            Format::Anthropic => {
                StreamTranslator::O2A(Box::new(OpenAiToAnthropicStream::new(meta)))
            }
        }
    }
    fn on_event(&mut self, event: Option<&[u8]>, data: &[u8], out: &mut Vec<u8>) {
        match self {
            StreamTranslator::A2O(t) => t.on_event(event, data, out),
            StreamTranslator::O2A(t) => t.on_event(event, data, out),
        }
    }
    fn finish(&mut self, out: &mut Vec<u8>) {
        match self {
            StreamTranslator::A2O(t) => t.finish(out),
            StreamTranslator::O2A(t) => t.finish(out),
        }
    }
    fn fail(&mut self, message: &str, out: &mut Vec<u8>) {
        match self {
            StreamTranslator::A2O(t) => t.fail(message, out),
            StreamTranslator::O2A(t) => t.fail(message, out),
        }
    }
    fn is_done(&self) -> bool {
        match self {
            StreamTranslator::A2O(t) => t.is_done(),
            StreamTranslator::O2A(t) => t.is_done(),
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn relay(
    ctx: &super::Ctx,
    conn: &mut ClientConn,
    ex: &mut Exchange<'_>,
    target: &Target,
    provider: &Provider,
    mut up: Conn,
    resp: ResponseHead,
    meta: &RequestMeta,
) -> Result<(), Failure> {
    let client = ex.format;
    ctx.metrics.upstream(&provider.name, resp.status);
    let mut body = BodyCodec::new(resp.framing);
    let ok = (200..300).contains(&resp.status);
    let reusable = resp.reusable;
    let result = if ok && resp.is_event_stream() {
        relay_stream(conn, ex, &mut up, &mut body, provider, resp, meta).await
    } else {
        // Errors and whole answers: read the body (charged to the worker's budget), translate,
        // answer with a length.
        let mut charge = ctx.buffers.charge();
        let declared = match resp.framing {
            BodyFraming::Length(n) => Some(n),
            _ => None,
        };
        let mut raw = read_all(
            &mut up,
            &mut body,
            provider,
            declared,
            MAX_TRANSLATED_BODY,
            &mut charge,
        )
        .await?;
        let (status, out) = if ok {
            // The answer is about as long as what it translates: reserve (and charge) that
            // before translating, so the worker's answers stay within the budget while
            // both exist. Only one translation runs on a worker at a time; its parse scratch
            // (strings with escapes) is the documented constant beyond the budget.
            // A body read in chunks grew geometrically: hold (and charge) only its length.
            if raw.capacity() > raw.len() + TRANSLATED_SLACK_BYTES {
                raw.shrink_to_fit();
            }
            let estimate = translation_estimate(raw.len());
            if !charge.resize(raw.capacity() + estimate) {
                return Err(Failure::BeforeResponse(refusal(&charge, raw.len())));
            }
            let mut out = Vec::with_capacity(estimate);
            let translated = match client {
                Format::OpenAi => {
                    translate::anthropic_to_openai_response_into(&raw, meta, &mut out)
                }
                Format::Anthropic => {
                    translate::openai_to_anthropic_response_into(&raw, meta, &mut out)
                }
            };
            match translated {
                Ok(()) => (resp.status, out),
                Err(e) => (e.status, render_translate_error(client, &e)),
            }
        } else {
            match client {
                Format::OpenAi => translate::anthropic_to_openai_error(resp.status, &raw),
                Format::Anthropic => translate::openai_to_anthropic_error(resp.status, &raw),
            }
        };
        // The answer now lives in `out`: charge only that.
        drop(raw);
        let mut out = out;
        if out.capacity() > out.len() + TRANSLATED_SLACK_BYTES {
            out.shrink_to_fit();
        }
        if !charge.resize(out.capacity()) {
            return Err(Failure::BeforeResponse(charge.exhausted()));
        }
        let dropped = dropped_params(meta);
        let mut headers = ex.standard_headers();
        headers.push(("content-type", b"application/json"));
        if !dropped.is_empty() {
            headers.push(("x-ringway-dropped-params", dropped.as_bytes()));
        }
        copy_headers(&resp, client, &mut headers);
        let len = out.len() as u64;
        if !super::write_head(conn, ex, status, &headers, ResponseBody::Length(len)) {
            conn.flush().await.map_err(|_| Failure::AfterResponse)
        } else if out.len() <= super::relay::COALESCE_MAX_BYTES {
            conn.wbuf.extend_from_slice(&out);
            conn.flush().await.map_err(|_| Failure::AfterResponse)
        } else {
            // Large: the head, then the body from its own buffer; copying it into `wbuf` would
            // double it and leave the connection holding a buffer that size.
            match conn.flush().await {
                Ok(()) => conn
                    .write_bytes(Bytes::from(out))
                    .await
                    .map_err(|_| Failure::AfterResponse),
                Err(_) => Err(Failure::AfterResponse),
            }
        }
    };
    if result.is_ok() && reusable && body.is_done() {
        up.served += 1;
        ctx.pool.put(target.provider, up);
    }
    result
}

/// `x-ringway-dropped-params`: parameters the provider's format has no equivalent for, which
/// were dropped because they do not change the answer materially. Empty when none.
fn dropped_params(meta: &RequestMeta) -> String {
    meta.dropped.join(",")
}

fn copy_headers<'a>(
    resp: &'a ResponseHead,
    client: Format,
    headers: &mut Vec<(&'a str, &'a [u8])>,
) {
    for (n, value) in resp.headers() {
        if keep_header(n) {
            headers.push((n, value));
        } else if n == "request-id" || n == "x-request-id" {
            headers.push((request_id_header(client), value));
        }
    }
}

/// Render a translation error in the client's format.
pub(super) fn render_translate_error(client: Format, e: &translate::TranslateError) -> Vec<u8> {
    match client {
        Format::OpenAi => e.to_openai_body(),
        Format::Anthropic => e.to_anthropic_body(),
    }
}

/// Read a whole provider body: at most `max` bytes (a 502), and only while the worker's
/// budget has room (a 503). Memory is charged before it is reserved, with room for a
/// translation of the same size.
async fn read_all(
    up: &mut Conn,
    body: &mut BodyCodec,
    provider: &Provider,
    declared: Option<u64>,
    max: usize,
    charge: &mut Charge<'_>,
) -> Result<Vec<u8>, Failure> {
    let too_large = || {
        Failure::BeforeResponse(Error::new(
            ErrorKind::UpstreamProtocol,
            format!("provider response exceeds {max} bytes"),
        ))
    };
    let mut out: Vec<u8> = Vec::new();
    if let Some(n) = declared {
        // A declared length is reserved (and charged) once, exactly, before any byte is read.
        let n = usize::try_from(n)
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(too_large)?;
        // Charged with room for its translation too: two answers that each got their body in
        // but not their translation would otherwise both be refused after reading.
        if !charge.resize(n + translation_estimate(n)) {
            return Err(Failure::BeforeResponse(refusal(charge, n)));
        }
        out.reserve_exact(n);
    }
    loop {
        match up.read_chunk(body, provider.idle_timeout).await {
            Ok(Some(d)) => {
                let need = out.len() + d.len();
                if need > max {
                    return Err(too_large());
                }
                if need > out.capacity() {
                    // Grow geometrically, as Vec would, but charge the capacity first.
                    let cap = need.max(out.capacity().saturating_mul(2).min(max));
                    if !charge.resize(cap) {
                        return Err(Failure::BeforeResponse(refusal(charge, need)));
                    }
                    out.reserve_exact(cap - out.len());
                }
                out.extend_from_slice(&d);
            }
            Ok(None) => return Ok(out),
            Err(e) => return Err(Failure::BeforeResponse(e)),
        }
    }
}

/// Bytes reserved for the translation of an `n`-byte answer.
fn translation_estimate(n: usize) -> usize {
    n + n / 8 + TRANSLATED_SLACK_BYTES
}

/// Why an answer of `n` bytes cannot be held: the worker is busy with others (503, retry),
/// or it could never fit the budget with its translation, even alone (502: retrying the
/// same request cannot help).
fn refusal(charge: &Charge<'_>, n: usize) -> Error {
    if n + translation_estimate(n) > charge.limit() {
        return Error::new(
            ErrorKind::UpstreamProtocol,
            format!(
                "the provider's answer ({n} bytes or more) is too large to translate within server.max_buffered_bytes = {} per worker",
                charge.limit()
            ),
        );
    }
    charge.exhausted()
}

#[allow(clippy::too_many_arguments)]
async fn relay_stream(
    conn: &mut ClientConn,
    ex: &mut Exchange<'_>,
    up: &mut Conn,
    body: &mut BodyCodec,
    provider: &Provider,
    resp: ResponseHead,
    meta: &RequestMeta,
) -> Result<(), Failure> {
    let client = ex.format;
    let chunked = ex.head.minor_version() != 0;
    let framing = if chunked {
        ResponseBody::Chunked
    } else {
        ex.keep_alive.set(false);
        ResponseBody::CloseDelimited
    };
    {
        let mut headers = ex.standard_headers();
        let ct: &[u8] = match client {
            Format::OpenAi => b"text/event-stream",
            Format::Anthropic => b"text/event-stream; charset=utf-8",
        };
        headers.push(("content-type", ct));
        headers.push(("cache-control", b"no-cache"));
        let dropped = dropped_params(meta);
        if !dropped.is_empty() {
            headers.push(("x-ringway-dropped-params", dropped.as_bytes()));
        }
        copy_headers(&resp, client, &mut headers);
        if !super::write_head(conn, ex, 200, &headers, framing) {
            let _ = conn.flush().await;
            return Err(Failure::AfterResponse);
        }
    }
    // A stream may last minutes: the provider's head would pin the first upstream read
    // buffer all that time.
    drop(resp);
    if conn.flush().await.is_err() {
        return Err(Failure::AfterResponse);
    }
    let mut tr = StreamTranslator::new(client, meta);
    let mut dec = sse::Decoder::new(super::relay::MAX_SSE_EVENT_BYTES);
    let mut out = Vec::with_capacity(1024);
    let failure = loop {
        match up.read_chunk(body, provider.idle_timeout).await {
            Ok(Some(data)) => {
                dec.push(data);
                out.clear();
                let mut too_large = false;
                loop {
                    match dec.next_event() {
                        Ok(Some(ev)) => {
                            if let Some(data) = ev.data.as_deref() {
                                tr.on_event(ev.event.as_deref(), data, &mut out);
                            }
                        }
                        Ok(None) => break,
                        Err(_) => {
                            too_large = true;
                            break;
                        }
                    }
                }
                if too_large {
                    // `out` keeps the events translated before the oversized one; the error
                    // frame follows them and the whole of it is written once, below.
                    ex.failed_midway.set(Some(ErrorKind::UpstreamProtocol));
                    tr.fail("provider sent an oversized SSE event", &mut out);
                    break Some(());
                }
                if !out.is_empty() {
                    if ex.first_event.get().is_none() {
                        ex.first_event.set(Some(ex.started.elapsed()));
                    }
                    conn.wbuf.clear();
                    frame(&mut conn.wbuf, &out, chunked);
                    if conn.flush().await.is_err() {
                        return Err(Failure::AfterResponse);
                    }
                }
            }
            Ok(None) => break None,
            Err(e) => {
                ex.failed_midway.set(Some(e.kind()));
                crate::log::warn(format_args!(
                    "provider `{}` stream failed: {e}",
                    provider.name
                ));
                out.clear();
                tr.fail(e.message(), &mut out);
                break Some(());
            }
        }
    };
    if failure.is_none() {
        out.clear();
        // Ends the client stream; reports a missing terminator as an error frame.
        tr.finish(&mut out);
    }
    conn.wbuf.clear();
    frame(&mut conn.wbuf, &out, chunked);
    if chunked {
        conn.wbuf.extend_from_slice(http1::LAST_CHUNK);
    }
    if conn.flush().await.is_err() {
        return Err(Failure::AfterResponse);
    }
    if failure.is_some() || !tr.is_done() {
        // The client has a complete stream that ends with an error event: its connection
        // may carry the next request; the provider's may not.
        return Err(Failure::Ended);
    }
    Ok(())
}
