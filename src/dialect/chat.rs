//! The OpenAI Chat Completions dialect's facts: which stream events are preamble, content,
//! error or the end, its error body (`{"error":{message,type,param,code}}`) and stream frame,
//! and its rate-limit headers. Sans-IO.

use crate::error::{Error, ErrorKind};
use crate::sse;

use crate::json::{FieldShape, RequestInfo};

use super::{push_json_str, CallPath, Op, RateLimitStyle, ResetText, Signal};

/// The API's paths (with and without `/v1`: SDKs are given either base URL).
pub(super) const PATHS: &[CallPath] = &[
    CallPath {
        path: "/v1/chat/completions",
        op: Op::Chat,
        label: "chat_completions",
    },
    CallPath {
        path: "/chat/completions",
        op: Op::Chat,
        label: "chat_completions",
    },
];

/// `messages` must be an array.
pub(super) fn check_shape(info: &RequestInfo) -> Option<(&'static str, &'static str)> {
    match info.messages {
        FieldShape::Array => None,
        FieldShape::Absent => Some(("messages", "`messages` is required")),
        _ => Some(("messages", "`messages` must be an array")),
    }
}

/// Classify one event (before commit only: parsing a chunk there costs nothing on the hot path).
pub(super) fn signal(ev: &sse::Event) -> Signal {
    let data = ev.data.as_deref().unwrap_or_default();
    let d = data.trim_ascii();
    if ev.is_comment_only() || d.is_empty() {
        return Signal::Preamble;
    }
    if d == b"[DONE]" {
        return Signal::Content;
    }
    // The borrowed chunk type first (no tree, no allocation for its strings): this runs on the
    // first events of every OpenAI stream. What it cannot read is classified from a generic tree.
    chunk_signal(d).unwrap_or_else(|| tree_signal(d))
}

/// An OpenAI chunk's signal, read through the borrowed chunk type; None when it does not fit
/// that type.
pub(super) fn chunk_signal(d: &[u8]) -> Option<Signal> {
    let chunk = crate::wire::openai_chunk(d).ok()?;
    if chunk.error.is_some() {
        return Some(Signal::Error);
    }
    let text = |t: &Option<crate::wire::Str<'_>>| t.as_ref().is_some_and(|t| !t.is_empty());
    let said_something = chunk.choices.iter().flatten().any(|c| {
        c.finish_reason.is_some()
            || c.delta.as_ref().is_some_and(|d| {
                d.tool_calls.is_some()
                    || text(&d.content)
                    || text(&d.refusal)
                    || text(&d.reasoning_content)
                    || text(&d.reasoning)
            })
    });
    Some(if said_something || chunk.usage.is_some() {
        Signal::Content
    } else {
        Signal::Preamble
    })
}

/// An OpenAI chunk's signal, read from a generic JSON tree (the reference the typed reading
/// is tested against).
pub(super) fn tree_signal(d: &[u8]) -> Signal {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(d) else {
        // Not JSON: passthrough relays it as is, a translator reports it.
        return Signal::Content;
    };
    if v.get("error").is_some_and(|e| !e.is_null()) {
        return Signal::Error;
    }
    let said_something = v
        .get("choices")
        .and_then(|c| c.as_array())
        .is_some_and(|choices| {
            choices.iter().any(|c| {
                let finish = c.get("finish_reason").is_some_and(|f| !f.is_null());
                let delta = c.get("delta");
                let text = |k: &str| {
                    delta
                        .and_then(|d| d.get(k))
                        .and_then(|t| t.as_str())
                        .is_some_and(|t| !t.is_empty())
                };
                let tools = delta
                    .and_then(|d| d.get("tool_calls"))
                    .is_some_and(|t| !t.is_null());
                finish
                    || tools
                    || text("content")
                    || text("refusal")
                    || text("reasoning_content")
                    || text("reasoning")
            })
        });
    let usage = v.get("usage").is_some_and(|u| !u.is_null());
    if said_something || usage {
        Signal::Content
    } else {
        Signal::Preamble
    }
}

/// Does this event end the stream: `data: [DONE]` or an error object (`{"error": {…}}`;
/// `"error": null` in an ordinary chunk is not one)?
pub(super) fn is_terminal(ev: &sse::Event) -> bool {
    let data = ev.data.as_deref().unwrap_or_default().trim_ascii_start();
    data == b"[DONE]"
        || data
            .strip_prefix(b"{\"error\"")
            .map(|rest| rest.trim_ascii_start())
            .and_then(|rest| rest.strip_prefix(b":"))
            .is_some_and(|value| !value.trim_ascii_start().starts_with(b"null"))
}

/// Is this an error event (a cheap look at the front of the data)?
pub(super) fn is_error_event(ev: &sse::Event) -> bool {
    let data = ev.data.as_deref().unwrap_or_default().trim_ascii_start();
    data.starts_with(b"{\"error\"") && is_terminal(ev)
}

/// `error.type` of `e`.
pub(super) fn error_type(e: &Error) -> &'static str {
    if let Some(t) = e.openai_type_override() {
        return t;
    }
    match e.status() {
        // OpenAI's 429 names the limit's unit (`requests`, `tokens`); see `with_openai_type`.
        429 => "requests",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    }
}

/// `error.code` of `e`.
pub(super) fn error_code(e: &Error) -> Option<&'static str> {
    e.code_override().or_else(|| kind_code(e.kind()))
}

/// `error.code` a kind gets by default.
fn kind_code(kind: ErrorKind) -> Option<&'static str> {
    Some(match kind {
        ErrorKind::Unauthorized => "invalid_api_key",
        ErrorKind::Forbidden => "model_not_allowed",
        ErrorKind::TierRefused => "privacy_tier_not_allowed",
        ErrorKind::ModelNotFound => "model_not_found",
        ErrorKind::RateLimited => "rate_limit_exceeded",
        ErrorKind::BodyTooLarge => "request_too_large",
        ErrorKind::FormatMismatch => "unsupported_format",
        ErrorKind::Unsupported => "unsupported_parameter",
        ErrorKind::ConnectTimeout | ErrorKind::FirstByteTimeout | ErrorKind::IdleTimeout => {
            "upstream_timeout"
        }
        ErrorKind::UpstreamConnect
        | ErrorKind::UpstreamTls
        | ErrorKind::UpstreamReset
        | ErrorKind::UpstreamProtocol => "upstream_error",
        ErrorKind::BufferBudget | ErrorKind::Busy => "gateway_overloaded",
        ErrorKind::ShuttingDown => "gateway_shutting_down",
        ErrorKind::PinnedTargetUnavailable => "pinned_target_unavailable",
        _ => return None,
    })
}

/// The error body: `{"error":{"message","type","param","code"}}` (Responses' too).
pub(super) fn write_error_body(e: &Error, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"error\":{\"message\":");
    push_json_str(out, e.message());
    out.extend_from_slice(b",\"type\":");
    push_json_str(out, error_type(e));
    out.extend_from_slice(b",\"param\":");
    match e.param() {
        Some(p) => push_json_str(out, p),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"code\":");
    match error_code(e) {
        Some(c) => push_json_str(out, c),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"}}");
}

/// The in-stream error frame: `data: {"error":…}`.
pub(super) fn write_error_frame(e: &Error, out: &mut Vec<u8>) {
    out.extend_from_slice(b"data: ");
    write_error_body(e, out);
    out.extend_from_slice(b"\n\n");
}

/// Header names (requests then tokens: limit, remaining, reset) and Go-duration resets.
pub(super) const RATE_LIMITS: RateLimitStyle = RateLimitStyle {
    names: [
        [
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
        ],
        [
            "x-ratelimit-limit-tokens",
            "x-ratelimit-remaining-tokens",
            "x-ratelimit-reset-tokens",
        ],
    ],
    reset: ResetText::Duration,
};
