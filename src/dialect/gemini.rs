//! The Gemini API dialect's facts (`generateContent`): its paths, which name the model and the
//! method (`/v1beta/models/{model}:streamGenerateContent`), which stream chunks are preamble,
//! content, error or the end (Gemini's SSE has no final event: the chunk with a
//! `finishReason` ends the answer), and its error body (`{"error":{code,message,status}}`,
//! google.rpc's). Sans-IO.

use crate::error::Error;
use crate::sse;

use super::{push_json_str, CallPath, Op, Signal};

/// The methods a model path may name, and the call each is.
const METHODS: &[(&str, CallPath)] = &[
    (
        "generateContent",
        CallPath {
            path: ":generateContent",
            op: Op::Chat,
            label: "gemini_generate_content",
        },
    ),
    (
        "streamGenerateContent",
        CallPath {
            path: ":streamGenerateContent",
            op: Op::Chat,
            label: "gemini_stream_generate_content",
        },
    ),
    (
        "countTokens",
        CallPath {
            path: ":countTokens",
            op: Op::CountTokens,
            label: "gemini_count_tokens",
        },
    ),
];

/// The API versions a client may name: the SDKs 3.x default to `v1`, Gemini CLI (and the
/// older SDKs) to `v1beta`.
const VERSIONS: [&str; 3] = ["/v1beta/models/", "/v1/models/", "/v1alpha/models/"];

/// A Gemini model call named by a path: the call, the model (still percent-encoded, without
/// `models/`), and whether the answer streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GeminiCall<'a> {
    pub call: CallPath,
    pub model: &'a str,
    pub stream: bool,
}

/// `POST /v1beta/models/{model}:{method}` (or `/v1/…`) read: None for any other path, an
/// empty model, or a method this gateway does not serve. The method follows the model's last
/// `:` (a model id may hold one).
pub fn call(path: &str) -> Option<GeminiCall<'_>> {
    let rest = VERSIONS.iter().find_map(|v| path.strip_prefix(v))?;
    let (model, method) = rest.rsplit_once(':')?;
    if model.is_empty() || model.contains('/') {
        return None;
    }
    let (_, call) = METHODS.iter().find(|(m, _)| *m == method)?;
    Some(GeminiCall {
        call: *call,
        model,
        stream: method == "streamGenerateContent",
    })
}

/// `GET /v1beta/models` (list) or `/v1beta/models/{model}` (one): Some(None) the list,
/// Some(Some(model)) one model (percent-encoded), None another path. `/v1/models` is Gemini's
/// only when the caller says so (see [`is_gemini_caller`]): OpenAI's list has the same path.
pub fn models_path(path: &str) -> Option<Option<&str>> {
    let versions = ["/v1beta/models", "/v1/models", "/v1alpha/models"];
    let rest = versions.iter().find_map(|v| path.strip_prefix(v))?;
    if rest.is_empty() {
        return Some(None);
    }
    let model = rest.strip_prefix('/')?;
    (!model.is_empty() && !model.contains('/') && !model.contains(':')).then_some(Some(model))
}

/// Does a request for a path both APIs have (`/v1/models`) come from a Gemini client? Its
/// SDKs present the key as `x-goog-api-key` or `?key=`, never as OpenAI's Bearer token.
pub fn is_gemini_caller(path: &str, goog_key_header: bool, query: Option<&str>) -> bool {
    path.starts_with("/v1beta/") || goog_key_header || query.is_some_and(|q| query_key(q).is_some())
}

/// The `key` parameter of a query (`?key=…&alt=sse`), still percent-encoded.
pub fn query_key(query: &str) -> Option<&str> {
    query.split('&').find_map(|kv| kv.strip_prefix("key="))
}

/// Does the query ask for the SSE stream form (`alt=sse`)? Without it a Gemini stream is one
/// JSON array, written as its elements come.
pub fn wants_sse(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.split('&').any(|kv| kv == "alt=sse"))
}

/// Classify one chunk: an error object, or a chunk that says something (text, a call, a
/// finish, usage alone at the end) is content; an empty chunk or a comment is preamble.
pub(super) fn signal(ev: &sse::Event) -> Signal {
    let data = ev.data.as_deref().unwrap_or_default().trim_ascii();
    if ev.is_comment_only() || data.is_empty() {
        return Signal::Preamble;
    }
    if is_error_data(data) {
        return Signal::Error;
    }
    Signal::Content
}

/// Does this chunk end the answer: an error, a `finishReason`, or a blocked prompt (which
/// has no candidates)? Gemini then closes the stream.
pub(super) fn is_terminal(ev: &sse::Event) -> bool {
    let data = ev.data.as_deref().unwrap_or_default();
    if is_error_data(data.trim_ascii_start()) {
        return true;
    }
    // The keys are Gemini's camelCase names; a value cannot hold them unescaped-quoted
    // inside a string without the quote being escaped, so a match is the key.
    memchr::memmem::find(data, b"\"finishReason\"").is_some()
        || memchr::memmem::find(data, b"\"blockReason\"").is_some()
}

/// Is this an error chunk (`{"error": …}` first, as Google writes it)?
pub(super) fn is_error_event(ev: &sse::Event) -> bool {
    is_error_data(ev.data.as_deref().unwrap_or_default().trim_ascii_start())
}

fn is_error_data(data: &[u8]) -> bool {
    data.strip_prefix(b"{")
        .map(|d| d.trim_ascii_start())
        .is_some_and(|d| d.starts_with(b"\"error\""))
}

/// The google.rpc status name for an HTTP status, as Google's APIs pair them.
pub fn rpc_status(status: u16) -> &'static str {
    match status {
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        405 | 501 => "UNIMPLEMENTED",
        408 | 504 => "DEADLINE_EXCEEDED",
        409 => "ABORTED",
        412 => "FAILED_PRECONDITION",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        503 => "UNAVAILABLE",
        400..=499 => "INVALID_ARGUMENT",
        _ => "INTERNAL",
    }
}

/// A Gemini error object: `{"error":{"code":…,"message":…,"status":…}}`.
pub fn error_object(status: u16, message: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"error\":{\"code\":");
    out.extend_from_slice(status.to_string().as_bytes());
    out.extend_from_slice(b",\"message\":");
    push_json_str(out, message);
    out.extend_from_slice(b",\"status\":\"");
    out.extend_from_slice(rpc_status(status).as_bytes());
    out.extend_from_slice(b"\"}}");
}

/// `e` as Gemini's error body.
pub(super) fn write_error_body(e: &Error, out: &mut Vec<u8>) {
    error_object(e.status(), e.message(), out);
}

/// `e` as an SSE chunk holding the error object (the SDKs raise on a chunk with `error`).
pub(super) fn write_error_frame(e: &Error, out: &mut Vec<u8>) {
    out.extend_from_slice(b"data: ");
    error_object(e.status(), e.message(), out);
    out.extend_from_slice(b"\r\n\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_model_and_the_method() {
        let c = call("/v1beta/models/gemini-2.5-pro:streamGenerateContent").unwrap();
        assert_eq!(
            (c.model, c.stream, c.call.op),
            ("gemini-2.5-pro", true, Op::Chat)
        );
        let c = call("/v1/models/a:b:generateContent").unwrap();
        assert_eq!((c.model, c.stream), ("a:b", false));
        let c = call("/v1beta/models/m:countTokens").unwrap();
        assert_eq!(c.call.op, Op::CountTokens);
        for bad in [
            "/v1beta/models/:generateContent",
            "/v1beta/models/m",
            "/v1beta/models/m:embedContent",
            "/v1beta/models/a/b:generateContent",
            "/v1/chat/completions",
            "/v2/models/m:generateContent",
        ] {
            assert_eq!(call(bad), None, "{bad}");
        }
        assert_eq!(models_path("/v1beta/models"), Some(None));
        assert_eq!(models_path("/v1/models/gemini-x"), Some(Some("gemini-x")));
        assert_eq!(models_path("/v1beta/models/m:generateContent"), None);
        assert_eq!(models_path("/v1beta/modelsx"), None);
    }

    #[test]
    fn callers_and_stream_forms() {
        assert!(is_gemini_caller("/v1beta/models", false, None));
        assert!(!is_gemini_caller("/v1/models", false, None));
        assert!(is_gemini_caller("/v1/models", true, None));
        assert!(is_gemini_caller(
            "/v1/models",
            false,
            Some("pageSize=5&key=k")
        ));
        assert_eq!(query_key("alt=sse&key=abc"), Some("abc"));
        assert!(wants_sse(Some("alt=sse")));
        assert!(!wants_sse(Some("alt=json")));
        assert!(!wants_sse(None));
    }

    fn event(raw: &str) -> sse::Event {
        let mut d = sse::Decoder::new(1 << 20);
        d.push(bytes::Bytes::copy_from_slice(raw.as_bytes()));
        d.next_event().unwrap().unwrap()
    }

    #[test]
    fn chunks_are_classified() {
        let text =
            event("data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}]}}]}\r\n\r\n");
        assert_eq!(signal(&text), Signal::Content);
        assert!(!is_terminal(&text));
        let end = event("data: {\"candidates\":[{\"finishReason\":\"STOP\"}]}\n\n");
        assert!(is_terminal(&end));
        let blocked = event("data: {\"promptFeedback\":{\"blockReason\":\"SAFETY\"}}\n\n");
        assert!(is_terminal(&blocked));
        let err = event("data: { \"error\" : {\"code\":500}}\n\n");
        assert_eq!(signal(&err), Signal::Error);
        assert!(is_error_event(&err) && is_terminal(&err));
        // A text that mentions the key is escaped inside its string: not the key.
        let quoted = event("data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"\\\"finishReason\\\"\"}]}}]}\n\n");
        assert!(!is_terminal(&quoted));
    }

    #[test]
    fn errors_have_google_rpc_shape() {
        let mut out = Vec::new();
        error_object(429, "slow \"down\"", &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["error"]["code"], 429);
        assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(v["error"]["message"], "slow \"down\"");
        assert_eq!(rpc_status(401), "UNAUTHENTICATED");
        assert_eq!(rpc_status(502), "INTERNAL");
    }
}
