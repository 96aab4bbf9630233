//! The Gemini kind: Google's Gemini API (`generativelanguage.googleapis.com`): the model in
//! the path (`/v1beta/models/{m}:generateContent`, `:streamGenerateContent?alt=sse`,
//! `:countTokens`), the key in `x-goog-api-key`, SSE streams of whole `GenerateContentResponse`
//! chunks. Also the path Gemini models take on Vertex (publisher `google`), whose kind is
//! `vertex`. Pure: no config, no clock.

use crate::dialect::Op;

/// Its name in the config.
pub const NAME: &str = "gemini";

/// The API's host.
pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";

/// The API version in its paths (the one every Gemini model and feature is served under).
pub const API_VERSION: &str = "/v1beta";

/// `model` as a path segment: percent-encoded except unreserved characters and `@`, without a
/// leading `models/` (clients and configs write either).
pub fn push_model(p: &mut String, model: &str) {
    let model = model.strip_prefix("models/").unwrap_or(model);
    for b in model.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@') {
            p.push(char::from(b));
        } else {
            p.push_str(&format!("%{b:02X}"));
        }
    }
}

/// The method of `op`, and the query a stream asks for SSE with.
pub fn push_method(p: &mut String, op: Op, stream: bool) {
    p.push_str(match op {
        Op::CountTokens => ":countTokens",
        Op::Chat | Op::Compact if stream => ":streamGenerateContent?alt=sse",
        Op::Chat | Op::Compact => ":generateContent",
    });
}

/// The path of `op` on `model` at the Gemini API.
pub fn path(model: &str, op: Op, stream: bool) -> String {
    let mut p = String::with_capacity(64 + model.len());
    p.push_str(API_VERSION);
    p.push_str("/models/");
    push_model(&mut p, model);
    push_method(&mut p, op, stream);
    p
}

/// The path of `op` on a Gemini `model` at Vertex (publisher `google`).
pub fn vertex_path(project: &str, location: &str, model: &str, op: Op, stream: bool) -> String {
    let mut p = format!("/v1/projects/{project}/locations/{location}/publishers/google/models/");
    push_model(&mut p, model);
    push_method(&mut p, op, stream);
    p
}

/// Is `model` one of Google's Gemini models (on Vertex: publisher `google`, the Gemini
/// dialect), rather than a partner's (Claude: publisher `anthropic`)?
pub fn is_gemini_model(model: &str) -> bool {
    let m = model.strip_prefix("models/").unwrap_or(model);
    m.starts_with("gemini-") || m.starts_with("gemma-")
}

/// `x-goog-api-key: …`.
pub fn credential(secret: &str) -> (http::HeaderName, String) {
    (
        http::HeaderName::from_static("x-goog-api-key"),
        secret.to_owned(),
    )
}

/// A token count answer (`{"totalTokens":N}`) as Anthropic's `{"input_tokens":N}`.
pub fn token_count(raw: &[u8]) -> Option<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_slice(raw).ok()?;
    let n = v.get("totalTokens")?.as_u64()?;
    Some(format!("{{\"input_tokens\":{n}}}").into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            path("gemini-2.5-pro", Op::Chat, true),
            "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            path("models/gemini-x", Op::Chat, false),
            "/v1beta/models/gemini-x:generateContent"
        );
        assert_eq!(
            path("a/b c", Op::CountTokens, false),
            "/v1beta/models/a%2Fb%20c:countTokens"
        );
        assert_eq!(
            vertex_path("p", "global", "gemini-3-pro-preview", Op::Chat, true),
            "/v1/projects/p/locations/global/publishers/google/models/gemini-3-pro-preview:streamGenerateContent?alt=sse"
        );
        assert!(is_gemini_model("gemini-2.5-pro") && is_gemini_model("models/gemini-3"));
        assert!(!is_gemini_model("claude-sonnet-4-5@20250929"));
        assert_eq!(
            token_count(br#"{"totalTokens":12,"promptTokensDetails":[]}"#),
            Some(b"{\"input_tokens\":12}".to_vec())
        );
        assert_eq!(token_count(b"{}"), None);
    }
}
