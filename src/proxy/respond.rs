//! The one response-head writer, and complete small responses (errors, admin answers). Every
//! head a client gets is written by [`write_head`].

use super::ctx::Ctx;
use super::state::Exchange;
use crate::downstream::{ClientConn, Transport};
use crate::error::{Error, ErrorKind, Result};
use crate::format::Format;
use crate::http1::{self, ResponseBody};

/// Write a response head into `conn.wbuf` (cleared first) and record its status. The writer
/// refuses a header that could split the response (CR, LF, NUL, a bad name); values are checked
/// where they enter too, so that is a bug upstream of here: the client then gets a complete 500
/// in its format instead, `wbuf` holds it, the connection is marked to close and this returns
/// false: the caller flushes and sends nothing more.
pub(super) fn write_head<S: Transport>(
    conn: &mut ClientConn<S>,
    ex: &Exchange<'_>,
    status: u16,
    headers: &[(&str, &[u8])],
    body: ResponseBody,
) -> bool {
    conn.wbuf.clear();
    if ex.draining.fired() {
        // Draining: the client should open its next request elsewhere (the new process).
        ex.keep_alive.set(false);
    }
    if !ex.body_read.get() {
        // Answered before the body was read (a 401, a bad header): the connection closes after
        // this response, and the client must be told, or it sends its next request into a
        // socket that is going away (Node's fetch then fails it with "other side closed").
        ex.keep_alive.set(false);
    }
    let refused = match http1::write_response_head(
        &mut conn.wbuf,
        status,
        headers,
        body,
        ex.keep_alive.get(),
    ) {
        Ok(()) => {
            ex.response.status.set(status);
            super::trace::committed(ex);
            return true;
        }
        Err(refused) => refused,
    };
    let name = headers
        .get(refused.index)
        .map(|(n, _)| *n)
        .filter(|n| http1::is_token(n.as_bytes()))
        .unwrap_or("<unprintable>");
    crate::log::error(format_args!(
        "{} refused to write response header `{name}`: {refused}",
        ex.request_id
    ));
    ex.keep_alive.set(false);
    ex.response.status.set(500);
    let e = Error::new(
        ErrorKind::Internal,
        "the gateway refused to write a response header holding control characters",
    );
    let body = ex.format.error_body(&e);
    let fallback: [(&str, &[u8]); 2] = [
        (ex.names.request_id.as_str(), ex.request_id.as_bytes()),
        ("content-type", b"application/json"),
    ];
    conn.wbuf.clear();
    if http1::write_response_head(
        &mut conn.wbuf,
        500,
        &fallback,
        ResponseBody::Length(body.len() as u64),
        false,
    )
    .is_ok()
    {
        conn.wbuf.extend_from_slice(&body);
    }
    false
}

/// A complete small response.
pub(super) async fn respond<S: Transport>(
    conn: &mut ClientConn<S>,
    ex: &Exchange<'_>,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> Result<()> {
    let mut headers = ex.standard_headers();
    headers.push(("content-type", content_type.as_bytes()));
    if write_head(
        conn,
        ex,
        status,
        &headers,
        ResponseBody::Length(body.len() as u64),
    ) {
        conn.wbuf.extend_from_slice(body);
    }
    conn.flush().await
}

/// The error as a complete response in the client's dialect.
pub(super) async fn write_error<S: Transport>(
    conn: &mut ClientConn<S>,
    ex: &Exchange<'_>,
    e: &Error,
) -> Result<()> {
    let body = ex.format.error_body(e);
    respond(conn, ex, e.status(), "application/json", &body).await
}

/// Answer a request whose head could not be read or parsed, then the caller closes.
pub async fn write_head_failure<S: Transport>(
    ctx: &Ctx,
    conn: &mut ClientConn<S>,
    e: &Error,
    seen: &[u8],
) {
    let first_line = seen.split(|b| *b == b'\n').next().unwrap_or_default();
    let path = first_line.split(|b| *b == b' ').nth(1).unwrap_or_default();
    let format = Format::sniff(
        path,
        memchr::memmem::find(seen, b"anthropic-version").is_some(),
    );
    let request_id = ctx.request_id();
    let headers: [(&str, &[u8]); 2] = [
        (
            ctx.config.server.headers.request_id.as_str(),
            request_id.as_bytes(),
        ),
        ("content-type", b"application/json"),
    ];
    let body = format.error_body(e);
    conn.wbuf.clear();
    // Only our own id and a constant: the writer cannot refuse them, and if it ever did
    // there would be nothing safe to say, so the connection just closes.
    if http1::write_response_head(
        &mut conn.wbuf,
        e.status(),
        &headers,
        ResponseBody::Length(body.len() as u64),
        false,
    )
    .is_ok()
    {
        conn.wbuf.extend_from_slice(&body);
        let sent = conn.wbuf.len() as u64;
        let _ = conn.flush().await;
        if crate::access_log::enabled() {
            // The path as the client sent it (lossy, escaped and cut by the log).
            let path = String::from_utf8_lossy(path);
            let entry = crate::access_log::Entry {
                request_id: &request_id,
                node: &ctx.config.cluster.node_id,
                dialect: format.as_str(),
                endpoint: "other",
                path: &path,
                status: e.status(),
                bytes: sent,
                error: Some(e.kind().as_str()),
                ..crate::access_log::Entry::default()
            };
            crate::access_log::submit(crate::access_log::format(
                &entry,
                std::time::SystemTime::now(),
            ));
        }
    }
}
