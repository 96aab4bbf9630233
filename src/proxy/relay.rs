//! The upstream → client pump for same-format traffic. SSE bodies go out event by event, each
//! complete event written the moment it arrives, never half an event; other bodies go out chunk
//! by chunk as read. A stream that breaks or ends without its final event gets the client
//! format's error frame and a clean end, never a silent truncation.

use super::{Exchange, Failure};
use crate::config::{Provider, Target};
use crate::error::{Error, ErrorKind};
use crate::format::Format;
use crate::http1::{self, ResponseBody};
use crate::server::conn::ClientConn;
use crate::sse;
use crate::upstream::{BodyCodec, BodyFraming, Conn, ResponseHead};

/// Body chunks up to this size are copied next to the pending head and written with it;
/// larger ones go out on their own, zero-copy.
pub const COALESCE_MAX_BYTES: usize = 64 * 1024;

/// Largest single SSE event accepted from a provider.
pub const MAX_SSE_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// Response headers never forwarded: hop-by-hop ones and those we set ourselves.
fn skip_header(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "content-length"
            | "te"
            | "trailer"
            | "upgrade"
            | "proxy-authenticate"
            | "proxy-connection"
            | "x-ringway-request-id"
            | "x-ringway-provider"
            | "x-ringway-model"
    )
}

pub(super) async fn relay(
    ctx: &super::Ctx,
    conn: &mut ClientConn,
    ex: &mut Exchange<'_>,
    target: &Target,
    provider: &Provider,
    mut up: Conn,
    resp: ResponseHead,
) -> Result<(), Failure> {
    ctx.metrics.upstream(&provider.name, resp.status);
    let sse = resp.is_event_stream();
    if resp.status >= 400 && !sse {
        return relay_error(ctx, conn, ex, target, provider, up, resp).await;
    }
    let client_http10 = ex.head.minor_version() == 0;
    let body_kind = match resp.framing {
        BodyFraming::Empty => ResponseBody::Length(0),
        BodyFraming::Length(n) if !sse => ResponseBody::Length(n),
        _ if client_http10 => {
            // An HTTP/1.0 client cannot take chunked: delimit by closing.
            ex.keep_alive.set(false);
            ResponseBody::CloseDelimited
        }
        _ => ResponseBody::Chunked,
    };
    let chunked = body_kind == ResponseBody::Chunked;

    {
        let mut headers = ex.standard_headers();
        for (name, value) in resp.headers() {
            if !skip_header(name) {
                headers.push((name, value));
            }
        }
        if !super::write_head(conn, ex, resp.status, &headers, body_kind) {
            let _ = conn.flush().await;
            return Err(Failure::AfterResponse);
        }
    }
    // A stream's head goes out now, so a client waiting on a slow first token still sees
    // headers. Any other head waits in `wbuf` and leaves with the first body bytes: one
    // write instead of two per response.
    if sse && conn.flush().await.is_err() {
        return Err(Failure::AfterResponse);
    }

    let mut body = BodyCodec::new(resp.framing);
    let reusable = resp.reusable;
    // The head is written: let it go, it pins the first upstream read buffer for as long as
    // the body runs, which for a stream may be minutes.
    drop(resp);
    let outcome = if sse {
        relay_sse(conn, ex, &mut up, &mut body, provider, chunked).await
    } else {
        relay_plain(conn, &mut up, &mut body, provider, chunked)
            .await
            .map_err(|()| Failure::AfterResponse)
    };
    // Only a connection whose response was read to its end can carry the next request.
    if outcome.is_ok() && reusable && body.is_done() {
        up.served += 1;
        ctx.pool.put(target.provider, up);
    }
    outcome
}

/// Largest provider error body read to decide whether it is in the client's format.
pub const MAX_ERROR_BODY_BYTES: usize = 1024 * 1024;

/// A provider error for a same-format client: a JSON error already in the client's format
/// passes through unchanged; anything else (an HTML page from a load balancer, an empty or
/// text body, JSON of another shape) becomes the client's error format with the provider's
/// status and the body's first bytes in the message.
async fn relay_error(
    ctx: &super::Ctx,
    conn: &mut ClientConn,
    ex: &mut Exchange<'_>,
    target: &Target,
    provider: &Provider,
    mut up: Conn,
    resp: ResponseHead,
) -> Result<(), Failure> {
    let mut body = BodyCodec::new(resp.framing);
    let mut charge = ctx.buffers.charge();
    let raw = read_error_prefix(&mut up, &mut body, provider, &mut charge).await?;
    let rendered =
        crate::translate::same_format_error(ex.format == Format::Anthropic, resp.status, &raw);
    let out = rendered.as_deref().unwrap_or(&raw);
    let mut headers = ex.standard_headers();
    for (name, value) in resp.headers() {
        // A re-rendered body is JSON, whatever the provider said it sent.
        let replaced = rendered.is_some() && matches!(name, "content-type" | "content-encoding");
        if !skip_header(name) && !replaced {
            headers.push((name, value));
        }
    }
    if rendered.is_some() {
        headers.push(("content-type", b"application/json"));
    }
    let len = ResponseBody::Length(out.len() as u64);
    if super::write_head(conn, ex, resp.status, &headers, len) {
        conn.wbuf.extend_from_slice(out);
    }
    let sent = conn.flush().await.map_err(|_| Failure::AfterResponse);
    if sent.is_ok() && resp.reusable && body.is_done() {
        up.served += 1;
        ctx.pool.put(target.provider, up);
    }
    sent
}

/// The first [`MAX_ERROR_BODY_BYTES`] of a provider's error body (all of it, normally). A
/// longer one is cut there and the rest left unread: the client still gets the provider's
/// status, with what was read quoted (a cut body is never valid JSON, so it is re-rendered).
async fn read_error_prefix(
    up: &mut Conn,
    body: &mut BodyCodec,
    provider: &Provider,
    charge: &mut super::budget::Charge<'_>,
) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::new();
    while out.len() < MAX_ERROR_BODY_BYTES {
        match up.read_chunk(body, provider.idle_timeout).await {
            Ok(Some(d)) => {
                let take = d.len().min(MAX_ERROR_BODY_BYTES - out.len());
                if !charge.resize(out.len() + take) {
                    return Err(Failure::BeforeResponse(charge.exhausted()));
                }
                out.extend_from_slice(d.get(..take).unwrap_or_default());
            }
            Ok(None) => break,
            Err(e) => return Err(Failure::BeforeResponse(e)),
        }
    }
    Ok(out)
}

/// Relay a non-SSE body. On an upstream failure mid-body there is no way to signal it in
/// band: the client connection is closed so the truncation is visible.
async fn relay_plain(
    conn: &mut ClientConn,
    up: &mut Conn,
    body: &mut BodyCodec,
    provider: &Provider,
    chunked: bool,
) -> Result<(), ()> {
    // `conn.wbuf` holds the response head on entry; it goes out with the first body bytes.
    let mut ended = false;
    while !ended {
        match up.read_chunk(body, provider.idle_timeout).await {
            Ok(Some(data)) => {
                ended = body.is_done();
                let sent = if chunked {
                    http1::write_chunk(&mut conn.wbuf, &data);
                    if ended {
                        conn.wbuf.extend_from_slice(http1::LAST_CHUNK);
                    }
                    conn.flush().await
                } else if data.len() <= COALESCE_MAX_BYTES {
                    conn.wbuf.extend_from_slice(&data);
                    conn.flush().await
                } else {
                    // Large: send what is pending, then the chunk itself without copying it.
                    match conn.flush().await {
                        Ok(()) => conn.write_bytes(data).await,
                        Err(e) => Err(e),
                    }
                };
                if sent.is_err() {
                    return Err(());
                }
            }
            Ok(None) => {
                if chunked {
                    conn.wbuf.extend_from_slice(http1::LAST_CHUNK);
                }
                conn.flush().await.map_err(|_| ())?;
                ended = true;
            }
            Err(e) => {
                crate::log::warn(format_args!(
                    "provider `{}` body failed: {e}",
                    provider.name
                ));
                return Err(());
            }
        }
    }
    Ok(())
}

/// Does this event end the stream in `format`? OpenAI: `data: [DONE]` or an error object;
/// Anthropic: `message_stop` or `error`.
fn is_terminal(format: Format, ev: &sse::Event) -> bool {
    let data = ev.data.as_deref().unwrap_or_default().trim_ascii_start();
    match format {
        Format::OpenAi => data == b"[DONE]" || data.starts_with(b"{\"error\""),
        Format::Anthropic => matches!(ev.event_type(), b"message_stop" | b"error"),
    }
}

async fn relay_sse(
    conn: &mut ClientConn,
    ex: &Exchange<'_>,
    up: &mut Conn,
    body: &mut BodyCodec,
    provider: &Provider,
    chunked: bool,
) -> Result<(), Failure> {
    let format = ex.format;
    let mut dec = sse::Decoder::new(MAX_SSE_EVENT_BYTES);
    let mut terminated = false;
    let failure = loop {
        match up.read_chunk(body, provider.idle_timeout).await {
            Ok(Some(data)) => {
                dec.push(data);
                conn.wbuf.clear();
                loop {
                    match dec.next_event() {
                        Ok(Some(ev)) => {
                            terminated |= is_terminal(format, &ev);
                            frame(&mut conn.wbuf, &ev.raw, chunked);
                        }
                        Ok(None) => break,
                        Err(_) => {
                            let e = Error::new(
                                ErrorKind::UpstreamProtocol,
                                format!("provider sent an SSE event larger than {MAX_SSE_EVENT_BYTES} bytes"),
                            );
                            ex.failed_midway.set(Some(e.kind()));
                            return finish_with_error(conn, format, &e, chunked).await;
                        }
                    }
                }
                if ex.first_event.get().is_none() && !conn.wbuf.is_empty() {
                    ex.first_event.set(Some(ex.started.elapsed()));
                }
                if conn.flush().await.is_err() {
                    return Err(Failure::AfterResponse);
                }
            }
            Ok(None) => {
                if terminated {
                    break None;
                }
                break Some(Error::new(
                    ErrorKind::UpstreamReset,
                    "provider stream ended before its final event",
                ));
            }
            Err(e) => break Some(e),
        }
    };
    match failure {
        None => {
            if chunked {
                conn.wbuf.clear();
                conn.wbuf.extend_from_slice(http1::LAST_CHUNK);
                conn.flush().await.map_err(|_| Failure::AfterResponse)?;
            }
            Ok(())
        }
        Some(e) => {
            ex.failed_midway.set(Some(e.kind()));
            crate::log::warn(format_args!(
                "provider `{}` stream failed: {e}",
                provider.name
            ));
            if terminated {
                // The client already has a complete stream; just end the body.
                conn.wbuf.clear();
                if chunked {
                    conn.wbuf.extend_from_slice(http1::LAST_CHUNK);
                }
                return match conn.flush().await {
                    Ok(()) => Err(Failure::Ended),
                    Err(_) => Err(Failure::AfterResponse),
                };
            }
            finish_with_error(conn, format, &e, chunked).await
        }
    }
}

/// Write the in-stream error frame and end the body cleanly. Always Err: the upstream
/// connection is not reusable; `Ended` when the client got the whole of it.
async fn finish_with_error(
    conn: &mut ClientConn,
    format: Format,
    e: &Error,
    chunked: bool,
) -> Result<(), Failure> {
    let mut ev = Vec::with_capacity(160);
    e.write_sse_frame(format, &mut ev);
    conn.wbuf.clear();
    frame(&mut conn.wbuf, &ev, chunked);
    if chunked {
        conn.wbuf.extend_from_slice(http1::LAST_CHUNK);
    }
    match conn.flush().await {
        Ok(()) => Err(Failure::Ended),
        Err(_) => Err(Failure::AfterResponse),
    }
}

/// Append `data` as one HTTP chunk, or raw for a close-delimited body. Empty data adds nothing.
pub(super) fn frame(out: &mut Vec<u8>, data: &[u8], chunked: bool) {
    if chunked {
        http1::write_chunk(out, data);
    } else {
        out.extend_from_slice(data);
    }
}
