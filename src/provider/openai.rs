//! The OpenAI kind: Chat Completions at `/chat/completions` (and Responses at `/responses`
//! where the provider serves them natively), a bearer token, SSE streams. No count_tokens.

use crate::dialect::{Format, Op};

/// Its name in the config.
pub const NAME: &str = "openai";

/// The path of `op` for a body in `speaks`.
pub(super) fn path(speaks: Format, op: Op) -> Option<&'static str> {
    match (speaks, op) {
        (_, Op::CountTokens) => None,
        (Format::Responses, Op::Compact) => Some("/responses/compact"),
        (Format::Responses, _) => Some("/responses"),
        _ => Some("/chat/completions"),
    }
}

/// `Authorization: Bearer …`.
pub fn credential(secret: &str) -> (http::HeaderName, String) {
    (http::header::AUTHORIZATION, format!("Bearer {secret}"))
}
