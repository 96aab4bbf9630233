//! Authentication, the phase every endpoint but the probes goes through once: the gateway key
//! from `Authorization: Bearer` or `x-api-key`, recorded on the exchange.

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
    let key = check_key(ctx, ex.head)?;
    ex.key = key.map(|k| k.name.clone());
    ex.authenticated = true;
    Ok(key)
}

fn check_key<'c>(ctx: &'c Ctx, head: &RequestHead) -> Result<Option<&'c GatewayKey>> {
    let keys = &ctx.config.keys;
    if keys.is_empty() {
        return Ok(None);
    }
    let presented =
        crate::auth::presented_key(head.header("authorization"), head.header("x-api-key"))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Unauthorized,
                    "missing API key: send `Authorization: Bearer KEY` or `x-api-key: KEY`",
                )
            })?;
    crate::auth::authenticate(keys, presented)
        .map(Some)
        .ok_or_else(|| Error::new(ErrorKind::Unauthorized, "invalid API key"))
}
