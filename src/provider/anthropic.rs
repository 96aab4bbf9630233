//! The Anthropic kind: Messages at `/v1/messages`, token counts at
//! `/v1/messages/count_tokens`, the key in `x-api-key`, the version and betas in
//! `anthropic-version` / `anthropic-beta` headers, SSE streams.

use crate::dialect::Op;

/// Its name in the config.
pub const NAME: &str = "anthropic";

/// The path of `op`.
pub(super) fn path(op: Op) -> Option<&'static str> {
    Some(match op {
        Op::CountTokens => "/v1/messages/count_tokens",
        Op::Chat | Op::Compact => "/v1/messages",
    })
}

/// `x-api-key: …`.
pub(super) fn credential(secret: &str) -> (http::HeaderName, String) {
    (
        http::HeaderName::from_static("x-api-key"),
        secret.to_owned(),
    )
}
