//! The Anthropic Messages dialect's facts: which stream events are preamble, content, error
//! or the end, its error body (`{"type":"error","error":{type,message}}`) and stream frame,
//! and its rate-limit headers. Sans-IO.

use crate::error::{Error, ErrorKind};
use crate::sse;

use crate::json::{FieldShape, RequestInfo};

use super::{push_json_str, CallPath, Op, RateLimitStyle, ResetText, Signal};

/// The API's paths. `/v1/v1/…`: the Anthropic SDK given a base URL ending in `/v1`, as
/// several gateways' docs say; only this SDK's paths get that alias.
pub(super) const PATHS: &[CallPath] = &[
    CallPath {
        path: "/v1/messages",
        op: Op::Chat,
        label: "messages",
    },
    CallPath {
        path: "/v1/v1/messages",
        op: Op::Chat,
        label: "messages",
    },
    CallPath {
        path: "/v1/messages/count_tokens",
        op: Op::CountTokens,
        label: "count_tokens",
    },
    CallPath {
        path: "/v1/v1/messages/count_tokens",
        op: Op::CountTokens,
        label: "count_tokens",
    },
];

/// `messages` must be a list, and an answer needs an integer `max_tokens`, in the API's words.
pub(super) fn check_shape(info: &RequestInfo, op: Op) -> Option<(&'static str, &'static str)> {
    match info.messages {
        FieldShape::Array => {}
        FieldShape::Absent => return Some(("messages", "messages: Field required")),
        _ => return Some(("messages", "messages: Input should be a valid list")),
    }
    match (op, info.max_tokens) {
        (Op::CountTokens, _) | (_, FieldShape::Number) => None,
        (_, FieldShape::Absent) => Some(("max_tokens", "max_tokens: Field required")),
        _ => Some(("max_tokens", "max_tokens: Input should be a valid integer")),
    }
}

/// Classify one event by its name.
pub(super) fn signal(ev: &sse::Event) -> Signal {
    match ev.event_type() {
        b"message_start" | b"ping" | b"content_block_start" => Signal::Preamble,
        b"error" => Signal::Error,
        _ if ev.is_comment_only() => Signal::Preamble,
        _ => Signal::Content,
    }
}

/// Does this event end the stream (`message_stop` or `error`)?
pub(super) fn is_terminal(ev: &sse::Event) -> bool {
    matches!(ev.event_type(), b"message_stop" | b"error")
}

/// Is this an error event?
pub(super) fn is_error_event(ev: &sse::Event) -> bool {
    ev.event_type() == b"error"
}

/// `error.type` of a kind.
pub(super) fn error_type(kind: ErrorKind) -> &'static str {
    match kind.status() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        503 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// The error body: `{"type":"error","error":{"type","message"}}`.
pub(super) fn write_error_body(e: &Error, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"type\":\"error\",\"error\":{\"type\":");
    push_json_str(out, error_type(e.kind()));
    out.extend_from_slice(b",\"message\":");
    push_json_str(out, e.message());
    out.extend_from_slice(b"}}");
}

/// The in-stream error frame: `event: error` and the body.
pub(super) fn write_error_frame(e: &Error, out: &mut Vec<u8>) {
    out.extend_from_slice(b"event: error\ndata: ");
    write_error_body(e, out);
    out.extend_from_slice(b"\n\n");
}

/// Header names (requests then tokens: limit, remaining, reset) and RFC 3339 resets.
pub(super) const RATE_LIMITS: RateLimitStyle = RateLimitStyle {
    names: [
        [
            "anthropic-ratelimit-requests-limit",
            "anthropic-ratelimit-requests-remaining",
            "anthropic-ratelimit-requests-reset",
        ],
        [
            "anthropic-ratelimit-tokens-limit",
            "anthropic-ratelimit-tokens-remaining",
            "anthropic-ratelimit-tokens-reset",
        ],
    ],
    reset: ResetText::Rfc3339,
};
