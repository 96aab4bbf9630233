//! Error bodies in both error shapes (OpenAI's, which Chat Completions and Responses clients
//! get, and Anthropic's) and the upstream-error translation of spec §15. The gateway
//! copies headers (`retry-after`, request ids); these functions give status and body.

use serde::{Deserialize, Serialize};

use crate::wire::{anthropic, openai, Str};

use super::MAX_ERROR_SNIPPET;

/// Anthropic message text that means the prompt exceeded the context window.
const PROMPT_TOO_LONG: &str = "prompt is too long";

/// Anthropic error types that exist (spec §1.8); anything else is reported as `api_error`.
pub const ANTHROPIC_ERROR_TYPES: [&str; 11] = [
    "invalid_request_error",
    "authentication_error",
    "billing_error",
    "permission_error",
    "not_found_error",
    "conflict_error",
    "request_too_large",
    "rate_limit_error",
    "api_error",
    "timeout_error",
    "overloaded_error",
];

#[derive(Serialize)]
struct OpenAiErrorOut<'a> {
    error: OpenAiErrorInner<'a>,
}

#[derive(Serialize)]
struct OpenAiErrorInner<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

#[derive(Serialize)]
struct AnthropicErrorOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: AnthropicErrorInner<'a>,
}

#[derive(Serialize)]
struct AnthropicErrorInner<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

/// An Anthropic error body exactly as Anthropic writes one: these keys only, each once, string
/// values. Only such a body (with a known `error.type`) may reach an Anthropic client as is;
/// anything looser is re-rendered, because SDKs read `error.message` without checking.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExactAnthropicError<'a> {
    #[serde(borrow, rename = "type")]
    kind: Str<'a>,
    #[serde(borrow)]
    error: ExactAnthropicInner<'a>,
    // Anthropic adds it to every error; a string or absent. Read only to check its type.
    #[serde(borrow, default, deserialize_with = "string_only")]
    #[allow(dead_code)]
    request_id: Option<Str<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExactAnthropicInner<'a> {
    #[serde(borrow, rename = "type")]
    kind: Str<'a>,
    // Read only to check it is there and a string.
    #[serde(borrow)]
    #[allow(dead_code)]
    message: Str<'a>,
}

/// `Some(string)`; refuses `null`, which `Option`'s own impl would accept.
fn string_only<'de: 'a, 'a, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Str<'a>>, D::Error> {
    Str::deserialize(d).map(Some)
}

/// Parse an error body as JSON. A body that is not UTF-8 throughout is not JSON (RFC 8259 §8.1),
/// even where serde would skip the bad bytes inside a field it ignores; such a body is quoted
/// as a snippet, like any other that is not JSON.
fn parse_json<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> Result<T, ()> {
    let text = std::str::from_utf8(body).map_err(|_| ())?;
    serde_json::from_str(text).map_err(|_| ())
}

/// Whether `body` is already exactly an Anthropic error body with a known type.
fn is_exact_anthropic_error(body: &[u8]) -> bool {
    parse_json::<ExactAnthropicError<'_>>(body)
        .is_ok_and(|b| &*b.kind == "error" && known_anthropic_type(&b.error.kind).is_some())
}

/// `{"error":{"message","type","param","code"}}`.
pub(crate) fn openai_body(
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Vec<u8> {
    let out = OpenAiErrorOut {
        error: OpenAiErrorInner {
            message,
            kind,
            param,
            code,
        },
    };
    // Serialising plain strings into a Vec cannot fail; an empty body is the safe fallback.
    serde_json::to_vec(&out).unwrap_or_default()
}

/// `{"type":"error","error":{"type","message"}}`.
pub(crate) fn anthropic_body(kind: &str, message: &str) -> Vec<u8> {
    let out = AnthropicErrorOut {
        kind: "error",
        error: AnthropicErrorInner { kind, message },
    };
    serde_json::to_vec(&out).unwrap_or_default()
}

/// OpenAI `type` for a status the gateway produces.
pub(crate) fn openai_type_for_status(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        s if s >= 500 => "server_error",
        _ => "invalid_request_error",
    }
}

/// Anthropic `error.type` for an HTTP status (spec §15, LiteLLM's table plus additions).
pub(crate) fn anthropic_type_for_status(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        409 => "conflict_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// An Anthropic error type for any upstream-provided type string.
pub(crate) fn known_anthropic_type(kind: &str) -> Option<&'static str> {
    ANTHROPIC_ERROR_TYPES.iter().copied().find(|t| *t == kind)
}

/// Anthropic `error.type` for an OpenAI in-stream error's `type` and `code`.
pub(crate) fn anthropic_type_for_openai_error(
    kind: Option<&str>,
    code: Option<&str>,
) -> &'static str {
    if let Some(known) = kind.and_then(known_anthropic_type) {
        return known;
    }
    match (kind, code) {
        (_, Some("rate_limit_exceeded")) | (Some("tokens" | "requests"), _) => "rate_limit_error",
        (_, Some("insufficient_quota")) | (Some("insufficient_quota"), _) => "billing_error",
        (_, Some("context_length_exceeded")) => "invalid_request_error",
        _ => "api_error",
    }
}

/// Status for an error status the upstream sent; a non-error status means the upstream
/// broke protocol (502).
fn error_status(status: u16) -> u16 {
    if (400..=599).contains(&status) {
        status
    } else {
        502
    }
}

/// A readable stand-in message for an error body that is not JSON (HTML 502 pages, text).
pub(crate) fn snippet_message(status: u16, body: &[u8]) -> String {
    let mut cut = body.len().min(MAX_ERROR_SNIPPET);
    let text = loop {
        // Back off to a UTF-8 boundary; invalid bytes are replaced below.
        match std::str::from_utf8(body.get(..cut).unwrap_or_default()) {
            Ok(t) => break std::borrow::Cow::Borrowed(t),
            Err(e) if e.valid_up_to() > 0 && cut - e.valid_up_to() < 4 => cut = e.valid_up_to(),
            Err(_) => break String::from_utf8_lossy(body.get(..cut).unwrap_or_default()),
        }
    };
    let text = text.trim();
    if text.is_empty() {
        format!("upstream returned HTTP {status}")
    } else {
        format!("upstream returned HTTP {status}: {text}")
    }
}

/// Translates an Anthropic upstream error (status + body) into the OpenAI client's status
/// and body (spec §15). The body is always rendered anew, so it is in OpenAI's format
/// whatever came in; one without a message is quoted as a snippet instead.
pub fn anthropic_to_openai_error(status: u16, body: &[u8]) -> (u16, Vec<u8>) {
    let status = error_status(status);
    let out_status = if status == 529 { 503 } else { status };
    match parse_json::<anthropic::ErrorBody<'_>>(body) {
        Ok(b) if !b.error.message.is_empty() => {
            let kind = if b.error.kind.is_empty() {
                anthropic_type_for_status(status)
            } else {
                b.error.kind.as_str()
            };
            let code = if b.error.message.contains(PROMPT_TOO_LONG) {
                "context_length_exceeded"
            } else {
                kind
            };
            (
                out_status,
                openai_body(&b.error.message, kind, None, Some(code)),
            )
        }
        _ => {
            let kind = anthropic_type_for_status(status);
            (
                out_status,
                openai_body(&snippet_message(status, body), kind, None, Some(kind)),
            )
        }
    }
}

/// Translates an OpenAI upstream error (status + body) into the Anthropic client's status
/// and body (spec §15). A body that is already exactly Anthropic's error format passes
/// through; every other body is rendered anew, so the client always gets its format.
pub fn openai_to_anthropic_error(status: u16, body: &[u8]) -> (u16, Vec<u8>) {
    let status = error_status(status);
    if is_exact_anthropic_error(body) {
        return (status, body.to_vec());
    }
    let kind = anthropic_type_for_status(status);
    // 503 is how OpenAI-compatible servers say "overloaded"; Anthropic clients know 529.
    let out_status = if status == 503 { 529 } else { status };
    let message = match parse_json::<openai::ErrorBody<'_>>(body) {
        Ok(b) if !b.error.message.is_empty() => b.error.message.to_string(),
        _ => snippet_message(status, body),
    };
    (out_status, anthropic_body(kind, &message))
}

/// A provider error for a client of the provider's own format (no translation): `None` when
/// the body is already an error in that format (it passes through unchanged); otherwise the
/// client-format body to send instead, with the provider's status kept. An HTML page from a
/// load balancer, an empty body or JSON of another shape would otherwise reach an SDK that
/// cannot parse it.
pub fn same_format_error(anthropic: bool, status: u16, body: &[u8]) -> Option<Vec<u8>> {
    if anthropic {
        if is_exact_anthropic_error(body) {
            return None;
        }
        let message = match parse_json::<anthropic::ErrorBody<'_>>(body) {
            Ok(b) if !b.error.message.is_empty() => b.error.message.to_string(),
            _ => snippet_message(status, body),
        };
        return Some(anthropic_body(anthropic_type_for_status(status), &message));
    }
    match parse_json::<openai::ErrorBody<'_>>(body) {
        Ok(b) if !b.error.message.is_empty() => None,
        _ => {
            let kind = openai_type_for_status(status);
            Some(openai_body(
                &snippet_message(status, body),
                kind,
                None,
                None,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn v(b: &[u8]) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn anthropic_to_openai_statuses() {
        let body = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"r"}"#;
        let (s, b) = anthropic_to_openai_error(529, body);
        assert_eq!(s, 503);
        assert_eq!(
            v(&b),
            json!({"error":{"message":"Overloaded","type":"overloaded_error","param":null,"code":"overloaded_error"}})
        );
        let body = br#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 300000 tokens > 200000 maximum"}}"#;
        let (s, b) = anthropic_to_openai_error(400, body);
        assert_eq!(s, 400);
        assert_eq!(v(&b)["error"]["code"], json!("context_length_exceeded"));
    }

    #[test]
    fn non_json_bodies_are_wrapped_and_bounded() {
        let html = format!("<html>{}</html>", "é".repeat(1000));
        let (s, b) = anthropic_to_openai_error(502, html.as_bytes());
        assert_eq!(s, 502);
        let msg = v(&b)["error"]["message"].as_str().unwrap().to_owned();
        assert!(msg.starts_with("upstream returned HTTP 502: <html>"));
        assert!(msg.len() < MAX_ERROR_SNIPPET + 40);
        let (s, b) = openai_to_anthropic_error(200, b"");
        assert_eq!(s, 502);
        assert_eq!(v(&b)["error"]["type"], json!("api_error"));
    }

    #[test]
    fn openai_to_anthropic_statuses() {
        for (status, kind, out) in [
            (400, "invalid_request_error", 400),
            (401, "authentication_error", 401),
            (402, "billing_error", 402),
            (403, "permission_error", 403),
            (404, "not_found_error", 404),
            (409, "conflict_error", 409),
            (413, "request_too_large", 413),
            (422, "invalid_request_error", 422),
            (429, "rate_limit_error", 429),
            (500, "api_error", 500),
            (503, "overloaded_error", 529),
            (504, "timeout_error", 504),
        ] {
            let (s, b) = openai_to_anthropic_error(
                status,
                br#"{"error":{"message":"m","type":"x","param":null,"code":null}}"#,
            );
            assert_eq!(s, out);
            assert_eq!(
                v(&b),
                json!({"type":"error","error":{"type":kind,"message":"m"}})
            );
        }
        let already = br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow"}}"#;
        assert_eq!(
            openai_to_anthropic_error(429, already),
            (429, already.to_vec())
        );
    }

    /// Bodies that are not exactly either format: JSON of other shapes, Anthropic lookalikes
    /// that are a little off, non-JSON, empty, invalid UTF-8.
    const LOOSE: [&[u8]; 22] = [
        br#"{"error":{"type":"x"}}"#,
        br#"{"error":"string"}"#,
        br#"{"error":{}}"#,
        br#"{"error":null}"#,
        br#"{"type":"error","error":{"type":"api_error"}}"#,
        br#"{"type":"error","error":{"type":"api_error","message":null}}"#,
        br#"{"type":"error","error":{"type":"api_error","message":7}}"#,
        br#"{"type":"error","error":{"type":"made_up_error","message":"m"}}"#,
        br#"{"type":"error","error":{"type":"api_error","message":"m","extra":1}}"#,
        br#"{"type":"error","error":{"type":"api_error","message":"m"},"extra":1}"#,
        br#"{"type":"error","error":{"type":"api_error","message":"m"},"request_id":null}"#,
        br#"{"type":"error","error":{"type":"api_error","message":"m"},"request_id":5}"#,
        br#"{"type":"error","type":"error","error":{"type":"api_error","message":"m"}}"#,
        br#"{"type":"error","error":{"type":"api_error","message":"m","message":"n"}}"#,
        br#"{"type":"Error","error":{"type":"api_error","message":"m"}}"#,
        br#"{"error":{"type":"api_error","message":"m"}}"#,
        br#"[{"type":"error"}]"#,
        b"null",
        b"<html><body>502 Bad Gateway</body></html>",
        b"",
        b"\xff\xfe{\"error\"",
        b"{\"error\":{\"message\":\"\xff\"}}",
    ];

    fn assert_anthropic_shape(b: &[u8]) -> Value {
        let v = v(b);
        let obj = v.as_object().unwrap();
        assert_eq!(obj["type"], json!("error"), "{v}");
        assert!(known_anthropic_type(v["error"]["type"].as_str().unwrap()).is_some());
        assert!(v["error"]["message"].is_string(), "{v}");
        v
    }

    fn assert_openai_shape(b: &[u8]) -> Value {
        let v = v(b);
        let e = v["error"].as_object().unwrap();
        assert!(e["message"].is_string() && e["type"].is_string(), "{v}");
        assert!(e.contains_key("param") && e.contains_key("code"), "{v}");
        v
    }

    #[test]
    fn openai_to_anthropic_renders_every_loose_body_in_anthropic_format() {
        for body in LOOSE {
            let (s, b) = openai_to_anthropic_error(500, body);
            assert_eq!(s, 500);
            assert_ne!(b, body, "{}", String::from_utf8_lossy(body));
            let out = assert_anthropic_shape(&b);
            assert_eq!(out["error"]["type"], json!("api_error"));
            assert!(!out["error"]["message"].as_str().unwrap().is_empty());
        }
        // Without a message the body itself is quoted, so nothing the upstream said is lost.
        let (_, b) = openai_to_anthropic_error(400, br#"{"error":{"type":"x"}}"#);
        assert_eq!(
            v(&b)["error"]["message"],
            json!(r#"upstream returned HTTP 400: {"error":{"type":"x"}}"#)
        );
    }

    #[test]
    fn openai_to_anthropic_passes_only_exact_anthropic_bodies_through() {
        for body in [
            &br#"{"type":"error","error":{"type":"api_error","message":""}}"#[..],
            br#"{"error":{"message":"m","type":"overloaded_error"},"type":"error","request_id":"r"}"#,
            br#"{"type":"err\u006fr","error":{"type":"api_error","message":"\u00e9"}}"#,
        ] {
            assert_eq!(openai_to_anthropic_error(503, body), (503, body.to_vec()));
        }
    }

    #[test]
    fn anthropic_to_openai_renders_every_body_in_openai_format() {
        for body in LOOSE {
            let (s, b) = anthropic_to_openai_error(529, body);
            assert_eq!(s, 503);
            let out = assert_openai_shape(&b);
            assert!(!out["error"]["message"].as_str().unwrap().is_empty());
        }
        // A type but no message used to give the OpenAI client `"message":""`.
        let (_, b) = anthropic_to_openai_error(429, br#"{"error":{"type":"rate_limit_error"}}"#);
        assert_eq!(
            v(&b)["error"],
            json!({"message":r#"upstream returned HTTP 429: {"error":{"type":"rate_limit_error"}}"#,
                   "type":"rate_limit_error","param":null,"code":"rate_limit_error"})
        );
    }

    #[test]
    fn same_format_errors_pass_only_in_their_own_format() {
        let oai = br#"{"error":{"message":"Rate limit","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        assert_eq!(same_format_error(false, 429, oai), None);
        let ant = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(same_format_error(true, 529, ant), None);
        for (anthropic, body) in [
            (false, &b"<html><body>502 Bad Gateway</body></html>"[..]),
            (false, b""),
            (false, b"{\"detail\":\"nope\"}"),
            (true, b"<html>bad gateway</html>"),
            (true, b""),
            (true, &oai[..]),
        ] {
            let out = same_format_error(anthropic, 502, body).unwrap();
            let v = v(&out);
            if anthropic {
                assert_eq!(v["type"], json!("error"));
                assert!(
                    v["error"]["message"]
                        .as_str()
                        .unwrap()
                        .starts_with("upstream returned HTTP 502")
                        || v["error"]["message"] == json!("Rate limit")
                );
                assert_eq!(v["error"]["type"], json!("api_error"));
            } else {
                let msg = v["error"]["message"].as_str().unwrap();
                assert!(msg.starts_with("upstream returned HTTP 502"), "{msg}");
                assert_eq!(v["error"]["type"], json!("server_error"));
            }
        }
        let out = same_format_error(false, 503, b"<html>Service Unavailable</html>").unwrap();
        assert!(v(&out)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("<html>Service Unavailable</html>"));
    }

    #[test]
    fn an_error_body_with_invalid_utf8_anywhere_is_quoted() {
        // Found by the translate_error fuzz target: a valid message, but invalid UTF-8 in
        // `code`; serde skipped it and took the message, the oracle says "not JSON".
        let body = b"{\"error\":{\"message\":\"Unsupported parameter\",\"type\":\"invalid_request_error\",\"code\":\"unsuppor\xce\xce\xceted\"}}";
        let (_, out) = openai_to_anthropic_error(400, body);
        let m = v(&out)["error"]["message"].as_str().unwrap().to_owned();
        assert!(m.starts_with("upstream returned HTTP 400"), "{m}");
        let (_, out) = anthropic_to_openai_error(400, body);
        let m = v(&out)["error"]["message"].as_str().unwrap().to_owned();
        assert!(m.starts_with("upstream returned HTTP 400"), "{m}");
        let out = same_format_error(false, 400, body).unwrap();
        assert!(v(&out)["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("upstream returned HTTP 400"));
    }
}
