//! The OpenAI Responses dialect's facts: its stream's event types (named by `event:` lines or,
//! from servers that send only `data:`, by the data's `type`), which are preamble, content,
//! error or the end, and its error event. Its error body and rate-limit headers are Chat
//! Completions'. Sans-IO.

use crate::error::Error;
use crate::sse;

use super::{chat, push_json_str, CallPath, Op, Signal};

/// The API's paths (with and without `/v1`).
pub(super) const PATHS: &[CallPath] = &[
    CallPath {
        path: "/v1/responses",
        op: Op::Chat,
        label: "responses",
    },
    CallPath {
        path: "/responses",
        op: Op::Chat,
        label: "responses",
    },
    CallPath {
        path: "/v1/responses/compact",
        op: Op::Compact,
        label: "responses_compact",
    },
    CallPath {
        path: "/responses/compact",
        op: Op::Compact,
        label: "responses_compact",
    },
];

/// Classify one event by its type.
pub(super) fn signal(ev: &sse::Event) -> Signal {
    match event_type(ev).as_ref() {
        b"response.created"
        | b"response.in_progress"
        | b"response.output_item.added"
        | b"response.content_part.added"
        | b"response.reasoning_summary_part.added" => Signal::Preamble,
        b"error" | b"response.failed" => Signal::Error,
        _ if ev.is_comment_only() => Signal::Preamble,
        _ => Signal::Content,
    }
}

/// Does this event end the stream?
pub(super) fn is_terminal(ev: &sse::Event) -> bool {
    matches!(
        event_type(ev).as_ref(),
        b"response.completed" | b"response.incomplete" | b"response.failed" | b"error"
    )
}

/// Is this an error event (a cheap look: its name, or the front of its data)?
pub(super) fn is_error_event(ev: &sse::Event) -> bool {
    match ev.event.as_deref().filter(|e| !e.is_empty()) {
        Some(name) => matches!(name, b"error" | b"response.failed"),
        None => {
            let data = ev.data.as_deref().unwrap_or_default().trim_ascii_start();
            data.starts_with(b"{\"type\":\"error\"")
                || data.starts_with(b"{\"type\":\"response.failed\"")
        }
    }
}

/// A Responses event's type: its `event:` name, else (a server that sends only `data:`
/// lines) the `type` of its data, read from the front when it comes first as the APIs write it.
pub fn event_type(ev: &sse::Event) -> std::borrow::Cow<'_, [u8]> {
    use std::borrow::Cow;
    if ev.event.as_deref().is_some_and(|e| !e.is_empty()) {
        return Cow::Borrowed(ev.event_type());
    }
    let data = ev.data.as_deref().unwrap_or_default().trim_ascii_start();
    if let Some(rest) = data.strip_prefix(b"{\"type\":\"") {
        if let Some(end) = memchr::memchr2(b'"', b'\\', rest) {
            if rest.get(end) == Some(&b'"') {
                return Cow::Borrowed(rest.get(..end).unwrap_or_default());
            }
        }
    }
    #[derive(serde::Deserialize)]
    struct Typed {
        #[serde(rename = "type", default)]
        kind: String,
    }
    match serde_json::from_slice::<Typed>(data) {
        Ok(t) => Cow::Owned(t.kind.into_bytes()),
        Err(_) => Cow::Borrowed(b""),
    }
}

/// The in-stream error: the `error` event, with the Chat Completions error object nested as
/// the body has it. Sequence numbers are the provider's in a relayed stream; the gateway's
/// last word does not know them.
pub(super) fn write_error_frame(e: &Error, out: &mut Vec<u8>) {
    error_event(
        out,
        0,
        chat::error_type(e),
        chat::error_code(e),
        e.message(),
        e.param(),
    );
}

/// The Responses `error` event: its own `code`, `message` and `param`, and the same as an
/// OpenAI error object nested under `error` (the SDKs raise on that form). Written by a
/// translator before its stream started, and by the gateway when a stream breaks after commit.
pub fn error_event(
    out: &mut Vec<u8>,
    sequence_number: u64,
    kind: &str,
    code: Option<&str>,
    message: &str,
    param: Option<&str>,
) {
    let opt = |o: &mut Vec<u8>, v: Option<&str>| match v {
        Some(v) => push_json_str(o, v),
        None => o.extend_from_slice(b"null"),
    };
    out.extend_from_slice(b"event: error\ndata: {\"type\":\"error\",\"sequence_number\":");
    out.extend_from_slice(sequence_number.to_string().as_bytes());
    let fields = |o: &mut Vec<u8>| {
        o.extend_from_slice(b"\"code\":");
        opt(o, code);
        o.extend_from_slice(b",\"message\":");
        push_json_str(o, message);
        o.extend_from_slice(b",\"param\":");
        opt(o, param);
    };
    out.push(b',');
    fields(out);
    out.extend_from_slice(b",\"error\":{\"type\":");
    push_json_str(out, kind);
    out.push(b',');
    fields(out);
    out.extend_from_slice(b"}}\n\n");
}
