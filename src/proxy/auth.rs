//! Authentication, the phase every endpoint but the probes goes through once: the gateway key
//! from `Authorization: Bearer`, `x-api-key` or (Gemini's clients) `x-goog-api-key` and a
//! Gemini call's `?key=`, recorded on the exchange.

use super::ctx::Ctx;
use super::state::Exchange;
use crate::config::GatewayKey;
use crate::error::{Error, ErrorKind, Result};
use crate::http1::RequestHead;

/// Check the gateway key (when keys are configured) and record on the exchange that it
/// passed, and under which key name (for every endpoint: the access log names the key).
pub(super) fn authenticate<'c>(
    ctx: &'c Ctx,
    ex: &mut Exchange<'_>,
) -> Result<Option<&'c GatewayKey>> {
    let key = check_key(ctx, ex.head, ex.format == crate::format::Format::Gemini)?;
    ex.key = key.map(|k| k.name.clone());
    ex.authenticated = true;
    Ok(key)
}

fn check_key<'c>(ctx: &'c Ctx, head: &RequestHead, gemini: bool) -> Result<Option<&'c GatewayKey>> {
    let keys = &ctx.config.keys;
    if keys.is_empty() {
        return Ok(None);
    }
    // Gemini's SDKs send `x-goog-api-key`; raw REST callers put the key in the query (it is
    // in the request target only, which no log line or upstream request carries).
    let from_query = gemini
        .then(|| head.query().and_then(crate::dialect::gemini::query_key))
        .flatten()
        .and_then(super::endpoint::percent_decode);
    let goog = head
        .header("x-goog-api-key")
        .map(<[u8]>::trim_ascii)
        .filter(|k| !k.is_empty());
    let presented = goog
        .or(from_query.as_deref().map(str::as_bytes))
        .or_else(|| {
            crate::auth::presented_key(head.header("authorization"), head.header("x-api-key"))
        })
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Unauthorized,
                "missing API key: send `Authorization: Bearer KEY`, `x-api-key: KEY` or `x-goog-api-key: KEY`",
            )
        })?;
    crate::auth::authenticate(keys, presented)
        .map(Some)
        .ok_or_else(|| Error::new(ErrorKind::Unauthorized, "invalid API key"))
}
