//! The client dialects (wire formats), one module each: the facts of one API's bodies that the
//! request path reads without knowing which API it is (stream event types and what each
//! signals, the error body and stream error frame, rate-limit header names), and a request's
//! dialect recognised from its path. Sans-IO: never imports the proxy or the config. Adding a
//! dialect is a variant here, its module, and its translation pairs (`crate::translate`).

pub mod chat;
pub mod gemini;
pub mod messages;
pub mod responses;

use crate::error::Error;
use crate::json::RequestInfo;
use crate::sse;

/// What a model call asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// An answer (chat completions, messages, responses).
    Chat,
    /// `POST /v1/messages/count_tokens`.
    CountTokens,
    /// `POST /v1/responses/compact`: a summary of the conversation.
    Compact,
}

/// One path of a dialect's API: what it asks for, and its label in metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallPath {
    /// The request path, as clients send it.
    pub path: &'static str,
    /// What a request there asks for.
    pub op: Op,
    /// The endpoint's label.
    pub label: &'static str,
}

/// Every dialect, in the order their paths are looked up.
pub const ALL: [Format; 4] = [
    Format::OpenAi,
    Format::Anthropic,
    Format::Responses,
    Format::Gemini,
];

/// The dialect and operation of a model-call path (None: not a model call). Gemini's paths
/// name the model, so they are read rather than looked up.
pub fn model_call(path: &str) -> Option<(Format, CallPath)> {
    ALL.iter()
        .find_map(|&f| f.paths().iter().find(|c| c.path == path).map(|c| (f, *c)))
        .or_else(|| gemini::call(path).map(|g| (Format::Gemini, g.call)))
}

/// A wire format: what a client speaks, or what a provider speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// OpenAI Chat Completions (`POST /v1/chat/completions`).
    OpenAi,
    /// Anthropic Messages (`POST /v1/messages`).
    Anthropic,
    /// OpenAI Responses (`POST /v1/responses`): a client dialect, and what a provider with
    /// native Responses speaks.
    Responses,
    /// Google's Gemini API (`POST /v1beta/models/{model}:generateContent`): a client dialect,
    /// and what Gemini providers (the Gemini API, Gemini on Vertex) speak.
    Gemini,
}

impl Format {
    /// The name used in logs, errors and config (`kind = "openai"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::OpenAi => "openai",
            Format::Anthropic => "anthropic",
            Format::Responses => "responses",
            Format::Gemini => "gemini",
        }
    }

    /// Human name for error messages that name both sides of a mismatch.
    pub fn display_name(self) -> &'static str {
        match self {
            Format::OpenAi => "OpenAI Chat Completions",
            Format::Anthropic => "Anthropic Messages",
            Format::Responses => "OpenAI Responses",
            Format::Gemini => "Gemini",
        }
    }

    /// The dialect errors are rendered in: Responses errors have the OpenAI shape.
    pub fn error_dialect(self) -> Format {
        match self {
            Format::Responses => Format::OpenAi,
            f => f,
        }
    }

    /// The dialect an error should be rendered in when all we know is the path and whether
    /// Anthropic-only headers were sent (unknown paths, unparseable heads).
    pub fn sniff(path: &[u8], anthropic_headers: bool) -> Format {
        if path.starts_with(b"/v1/messages") || path.starts_with(b"/v1/v1/") || anthropic_headers {
            Format::Anthropic
        } else if path.starts_with(b"/v1/responses") || path.starts_with(b"/responses") {
            Format::Responses
        } else if path.starts_with(b"/v1beta/") || is_gemini_model_path(path) {
            Format::Gemini
        } else {
            Format::OpenAi
        }
    }
}

/// What a provider event says about the stream, read in the provider's dialect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// Stream set-up (Anthropic `message_start`, `content_block_start`, `ping`; OpenAI's first chunk with only the
    /// role), comments.
    Preamble,
    /// The answer has begun (or ended: an empty answer is an answer).
    Content,
    /// The provider reports an error in the stream.
    Error,
}

/// How a dialect's clients are told their rate limits: header names (requests then tokens:
/// limit, remaining, reset) and how a reset is written.
#[derive(Clone, Copy, Debug)]
pub struct RateLimitStyle {
    /// The names, requests first.
    pub names: [[&'static str; 3]; 2],
    /// The reset's text.
    pub reset: ResetText,
}

/// How a rate limit's reset is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetText {
    /// Go's duration text, rounded up to the millisecond (`20ms`, `1.5s`, `6m0s`): OpenAI.
    Duration,
    /// The instant, RFC 3339 UTC: Anthropic.
    Rfc3339,
}

impl Format {
    /// The paths of this dialect's model calls.
    pub fn paths(self) -> &'static [CallPath] {
        match self {
            Format::OpenAi => chat::PATHS,
            Format::Anthropic => messages::PATHS,
            Format::Responses => responses::PATHS,
            // Read from the path itself (`gemini::call`).
            Format::Gemini => &[],
        }
    }

    /// The fields every request of this API needs, checked from what the body's validation
    /// already gathered (a request the provider would refuse costs no upstream call): the
    /// parameter at fault and the API's own words for it.
    pub fn check_shape(self, info: &RequestInfo, op: Op) -> Option<(&'static str, &'static str)> {
        match self {
            Format::OpenAi => chat::check_shape(info),
            Format::Anthropic => messages::check_shape(info, op),
            // `input` and `contents` are checked where the request is read (or by a native
            // provider).
            Format::Responses | Format::Gemini => None,
        }
    }

    /// Does a stream in this dialect report its input tokens at its start (Messages'
    /// `message_start`)? Else they come with the final usage, and a stream cut short before
    /// it has its prompt counted by the gateway.
    pub fn reports_input_first(self) -> bool {
        matches!(self, Format::Anthropic)
    }

    /// What one provider event says about the stream (read before commit only).
    pub fn signal(self, ev: &sse::Event) -> Signal {
        match self {
            Format::OpenAi => chat::signal(ev),
            Format::Anthropic => messages::signal(ev),
            Format::Responses => responses::signal(ev),
            Format::Gemini => gemini::signal(ev),
        }
    }

    /// Does this event end the stream?
    pub fn is_terminal(self, ev: &sse::Event) -> bool {
        match self {
            Format::OpenAi => chat::is_terminal(ev),
            Format::Anthropic => messages::is_terminal(ev),
            Format::Responses => responses::is_terminal(ev),
            Format::Gemini => gemini::is_terminal(ev),
        }
    }

    /// Is this a provider's error event? A cheap look, made for every event of a stream whose
    /// provider has a credential to scrub.
    pub fn is_error_event(self, ev: &sse::Event) -> bool {
        match self {
            Format::OpenAi => chat::is_error_event(ev),
            Format::Anthropic => messages::is_error_event(ev),
            Format::Responses => responses::is_error_event(ev),
            Format::Gemini => gemini::is_error_event(ev),
        }
    }

    /// `e` as this dialect's JSON error body (an answer before the first byte).
    pub fn error_body(self, e: &Error) -> Vec<u8> {
        let mut out = Vec::with_capacity(96 + e.message().len());
        match self {
            Format::OpenAi | Format::Responses => chat::write_error_body(e, &mut out),
            Format::Anthropic => messages::write_error_body(e, &mut out),
            Format::Gemini => gemini::write_error_body(e, &mut out),
        }
        out
    }

    /// `e` as this dialect's in-stream error (a stream that has already started).
    pub fn write_error_frame(self, e: &Error, out: &mut Vec<u8>) {
        match self {
            Format::OpenAi => chat::write_error_frame(e, out),
            Format::Anthropic => messages::write_error_frame(e, out),
            Format::Responses => responses::write_error_frame(e, out),
            Format::Gemini => gemini::write_error_frame(e, out),
        }
    }

    /// How this dialect's clients are told their rate limits.
    pub fn rate_limits(self) -> &'static RateLimitStyle {
        match self {
            // Gemini's API sends no rate-limit headers; its clients read none.
            Format::OpenAi | Format::Responses | Format::Gemini => &chat::RATE_LIMITS,
            Format::Anthropic => &messages::RATE_LIMITS,
        }
    }
}

/// `/v1/models/{model}:{method}`: a Gemini call under the version the SDKs 3.x default to.
fn is_gemini_model_path(path: &[u8]) -> bool {
    std::str::from_utf8(path).is_ok_and(|p| gemini::call(p).is_some())
}

/// Append `s` as a JSON string literal. Error paths only; serde_json's escaper is exact.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    if serde_json::to_writer(&mut *out, s).is_err() {
        // Writing a &str into a Vec cannot fail; keep the document well-formed regardless.
        out.extend_from_slice(b"\"\"");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn event(raw: &str) -> sse::Event {
        let mut d = sse::Decoder::new(1 << 20);
        d.push(bytes::Bytes::copy_from_slice(raw.as_bytes()));
        d.next_event().unwrap().unwrap()
    }

    #[test]
    fn the_typed_chunk_reading_agrees_with_the_tree() {
        let cases = [
            r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"choices":[{"delta":{"role":"assistant","content":"","refusal":null},"finish_reason":null}],"usage":null}"#,
            r#"{"choices":[{"delta":{"content":"Hi"}}]}"#,
            r#"{"choices":[{"delta":{"content":"\u00e9"}}]}"#,
            r#"{"choices":[{"delta":{"refusal":"no"}}]}"#,
            r#"{"choices":[{"delta":{"reasoning_content":"hm"}}]}"#,
            r#"{"choices":[{"delta":{"reasoning":""}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c","type":"function","function":{"name":"f","arguments":""}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":null}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
            r#"{"choices":[],"usage":{"weird":true}}"#,
            r#"{"error":null,"choices":[{"delta":{"role":"assistant"}}]}"#,
            r#"{"error":{"message":"x","type":"server_error"}}"#,
            r#"{"error":"a plain string"}"#,
            r#"{"error":{}}"#,
            r#"{"choices":{"not":"an array"}}"#,
            r#"{"choices":[{"delta":{"content":7}}]}"#,
            r#"{"choices":[null]}"#,
            r#"[1,2,3]"#,
            r#"not json"#,
            r#"{}"#,
        ];
        for c in cases {
            let tree = chat::tree_signal(c.as_bytes());
            let fast = chat::chunk_signal(c.as_bytes()).unwrap_or(tree);
            assert_eq!(fast, tree, "{c}");
        }
    }

    #[test]
    fn signals_before_content() {
        let o = |s: &str| Format::OpenAi.signal(&event(s));
        assert_eq!(
            o("data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n"),
            Signal::Preamble
        );
        assert_eq!(
            o("data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n"),
            Signal::Content
        );
        assert_eq!(
            o("data: {\"error\":null,\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n"),
            Signal::Preamble
        );
        assert_eq!(
            o("data: {\"error\":{\"message\":\"x\"}}\n\n"),
            Signal::Error
        );
        assert_eq!(o("data: [DONE]\n\n"), Signal::Content);
        assert_eq!(
            o("data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"),
            Signal::Content
        );
        assert_eq!(o(": keep-alive\n\n"), Signal::Preamble);
        let a = |s: &str| Format::Anthropic.signal(&event(s));
        assert_eq!(a("event: message_start\ndata: {}\n\n"), Signal::Preamble);
        assert_eq!(
            a("event: content_block_start\ndata: {}\n\n"),
            Signal::Preamble
        );
        assert_eq!(a("event: ping\ndata: {}\n\n"), Signal::Preamble);
        assert_eq!(
            a("event: content_block_delta\ndata: {}\n\n"),
            Signal::Content
        );
        assert_eq!(a("event: message_delta\ndata: {}\n\n"), Signal::Content);
        assert_eq!(a("event: error\ndata: {}\n\n"), Signal::Error);
    }

    /// Passthrough is byte for byte whatever the reads: every split of a stream into two
    /// reads (and one byte per read) writes exactly the stream, and ends complete.
    #[test]
    fn terminal_events() {
        let o = |s: &str| Format::OpenAi.is_terminal(&event(s));
        assert!(o("data: [DONE]\n\n"));
        assert!(o("data: {\"error\":{\"message\":\"x\"}}\n\n"));
        assert!(o("data: {\"error\" : {}}\n\n"));
        assert!(!o("data: {\"error\":null,\"choices\":[]}\n\n"));
        assert!(!o("data: {\"error\": null}\n\n"));
        assert!(!o("data: {\"choices\":[]}\n\n"));
        assert!(Format::Anthropic.is_terminal(&event("event: message_stop\ndata: {}\n\n")));
    }

    /// Native Responses streams, with `event:` lines or with only `data:` (the type read from
    /// the data, first key or not): the same signals and the same end.
    #[test]
    fn responses_events_are_read_with_or_without_event_lines() {
        let cases = [
            ("response.created", Signal::Preamble, false),
            ("response.output_item.added", Signal::Preamble, false),
            ("response.output_text.delta", Signal::Content, false),
            ("response.completed", Signal::Content, true),
            ("response.incomplete", Signal::Content, true),
            ("response.failed", Signal::Error, true),
            ("error", Signal::Error, true),
        ];
        for (kind, sig, terminal) in cases {
            for raw in [
                format!("event: {kind}\ndata: {{\"type\":\"{kind}\",\"sequence_number\":1}}\n\n"),
                format!("data: {{\"type\":\"{kind}\",\"sequence_number\":1}}\n\n"),
                format!("data: {{\"sequence_number\":1, \"type\" : \"{kind}\"}}\n\n"),
            ] {
                let ev = event(&raw);
                assert_eq!(Format::Responses.signal(&ev), sig, "{raw}");
                assert_eq!(Format::Responses.is_terminal(&ev), terminal, "{raw}");
            }
        }
        // Escapes in the type, or not JSON: read by the parser, or nothing.
        let ev = event("data: {\"type\":\"response.complet\\u0065d\"}\n\n");
        assert!(Format::Responses.is_terminal(&ev));
        assert!(!Format::Responses.is_terminal(&event("data: nope\n\n")));
    }

    #[test]
    fn openai_body_shape() {
        let e = Error::new(ErrorKind::ModelNotFound, "model `x\"y` not found");
        let v: serde_json::Value = serde_json::from_slice(&Format::OpenAi.error_body(&e)).unwrap();
        assert_eq!(v["error"]["message"], "model `x\"y` not found");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "model_not_found");
        assert!(v["error"]["param"].is_null());
        assert_eq!(e.status(), 404);
    }

    #[test]
    fn anthropic_body_shape() {
        let e = Error::new(ErrorKind::Unauthorized, "bad key");
        let v: serde_json::Value =
            serde_json::from_slice(&Format::Anthropic.error_body(&e)).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "authentication_error");
        assert_eq!(v["error"]["message"], "bad key");
        let e = Error::new(ErrorKind::FirstByteTimeout, "slow");
        let v: serde_json::Value =
            serde_json::from_slice(&Format::Anthropic.error_body(&e)).unwrap();
        assert_eq!(v["error"]["type"], "timeout_error");
        assert_eq!(e.status(), 504);
    }

    #[test]
    fn sse_frames() {
        let e = Error::new(ErrorKind::UpstreamReset, "reset");
        let mut out = Vec::new();
        Format::Anthropic.write_error_frame(&e, &mut out);
        assert!(out.starts_with(b"event: error\ndata: {\"type\":\"error\""));
        assert!(out.ends_with(b"}}\n\n"));
        out.clear();
        Format::OpenAi.write_error_frame(&e, &mut out);
        assert!(out.starts_with(b"data: {\"error\":"));
        // Responses: the error event, with the OpenAI error object nested (as the body has it).
        out.clear();
        let e = e.with_param("input");
        Format::Responses.write_error_frame(&e, &mut out);
        let text = std::str::from_utf8(&out).unwrap();
        let data = text
            .strip_prefix("event: error\ndata: ")
            .and_then(|d| d.strip_suffix("\n\n"))
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(data).unwrap();
        let body: serde_json::Value =
            serde_json::from_slice(&Format::OpenAi.error_body(&e)).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"], body["error"]);
        assert_eq!(
            (&v["message"], &v["param"]),
            (&body["error"]["message"], &body["error"]["param"])
        );
    }
}
