//! Error replies in each provider's format: 400s for a bad request, `mock:status=` replies,
//! and the in-stream error event.

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use super::framing::fixed_with_headers;
use super::ids::Ids;
use super::json::{json, json_pretty};
use super::request::RequestError;
use super::step::{Api, Step};

/// What an error reply says.
pub(super) enum ErrorText<'a> {
    /// The request was malformed.
    Request(&'a RequestError),
    /// A status asked for by a directive (or a fault with no stream to break).
    Status,
}

pub(super) fn error_response(api: Api, ids: &Ids, status: u16, text: &ErrorText<'_>) -> Vec<Step> {
    let mut headers = vec![ids.request_header(api)];
    if status == 429 {
        headers.push(("retry-after", "1".to_owned()));
    }
    let body = match api {
        Api::OpenAiChat => {
            let (message, kind, param, code) = match text {
                ErrorText::Request(err) => openai_request_error(err),
                ErrorText::Status => openai_status_error(status),
            };
            let envelope = OpenAiErrorEnvelope {
                error: OpenAiError {
                    message: &message,
                    kind,
                    param,
                    code,
                },
            };
            // OpenAI error bodies are indented and end with a newline.
            let mut body = json_pretty(&envelope);
            body.push('\n');
            body
        }
        _ => {
            let should_retry = matches!(status, 408 | 409 | 429) || status >= 500;
            headers.push(("x-should-retry", should_retry.to_string()));
            let (kind, message) = match text {
                ErrorText::Request(err) => ("invalid_request_error", err.to_string()),
                ErrorText::Status => anthropic_status_error(status),
            };
            json(&AnthropicErrorEnvelope {
                kind: "error",
                error: AnthropicError {
                    details: None,
                    kind,
                    message: &message,
                },
                request_id: ids.anthropic_request(),
            })
        }
    };
    fixed_with_headers(status, headers, body.into_bytes(), Duration::ZERO)
}

/// The provider's error reply with `status`, as `mock:status=` gives it (per-target faults
/// build on it; 429 carries `retry-after: 1`).
pub(crate) fn status_reply(api: Api, body: &[u8], status: u16) -> Vec<Step> {
    error_response(api, &Ids::new(body), status, &ErrorText::Status)
}

/// The provider's in-stream error event, as `mock:midstream_error` ends a stream with it.
pub(crate) fn stream_error_event(api: Api, body: &[u8]) -> Bytes {
    Bytes::from(match api {
        Api::OpenAiChat => openai_error_frame(),
        _ => anthropic_error_frame(&Ids::new(body)),
    })
}

fn anthropic_status_error(status: u16) -> (&'static str, String) {
    let (kind, message) = match status {
        401 => ("authentication_error", "invalid x-api-key"),
        402 => (
            "billing_error",
            "Your credit balance is too low to access the Anthropic API.",
        ),
        403 => (
            "permission_error",
            "Your API key does not have permission to use the specified resource.",
        ),
        404 => (
            "not_found_error",
            "The requested resource could not be found.",
        ),
        409 => (
            "conflict_error",
            "The request conflicts with another request.",
        ),
        413 => (
            "request_too_large",
            "Request exceeds the maximum allowed number of bytes.",
        ),
        429 => (
            "rate_limit_error",
            "This request would exceed your organization's rate limit. Please try again later.",
        ),
        504 => ("timeout_error", "Request timed out."),
        529 => ("overloaded_error", "Overloaded"),
        500..=599 => ("api_error", "Internal server error"),
        _ => ("invalid_request_error", "Invalid request."),
    };
    (kind, message.to_owned())
}

type OpenAiErrorParts = (
    String,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
);

fn openai_request_error(err: &RequestError) -> OpenAiErrorParts {
    let kind = "invalid_request_error";
    match err {
        RequestError::InvalidJson | RequestError::NotObject => (
            "We could not parse the JSON body of your request. The API expects a JSON payload."
                .to_owned(),
            kind,
            None,
            None,
        ),
        RequestError::Missing("model") => (
            "you must provide a model parameter".to_owned(),
            kind,
            None,
            None,
        ),
        RequestError::Missing(field) => (
            format!("Missing required parameter: '{field}'."),
            kind,
            Some(field),
            Some("missing_required_parameter"),
        ),
        RequestError::Invalid(field) => (
            format!("Invalid value for '{field}'."),
            kind,
            Some(field),
            Some("invalid_value"),
        ),
        RequestError::EmptyMessages => (
            "[] is too short - 'messages'".to_owned(),
            kind,
            Some("messages"),
            None,
        ),
        RequestError::Refused(message) => ((*message).to_owned(), kind, None, None),
        RequestError::BadSignature(..) => (err.to_string(), kind, None, None),
    }
}

fn openai_status_error(status: u16) -> OpenAiErrorParts {
    let (message, kind, code) = match status {
        401 => (
            "Incorrect API key provided.",
            "invalid_request_error",
            Some("invalid_api_key"),
        ),
        403 => (
            "You are not allowed to access this resource.",
            "invalid_request_error",
            None,
        ),
        404 => (
            "The model does not exist or you do not have access to it.",
            "invalid_request_error",
            Some("model_not_found"),
        ),
        429 => (
            "Rate limit reached for requests. Please try again in 1s.",
            "requests",
            Some("rate_limit_exceeded"),
        ),
        503 => (
            "The engine is currently overloaded, please try again later.",
            "server_error",
            None,
        ),
        500..=599 => (
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
        ),
        _ => ("Invalid request.", "invalid_request_error", None),
    };
    (message.to_owned(), kind, None, code)
}

pub(super) fn anthropic_error_frame(ids: &Ids) -> String {
    let event = AnthropicErrorEnvelope {
        kind: "error",
        error: AnthropicError {
            details: Some(Value::Null),
            kind: "overloaded_error",
            message: "Overloaded",
        },
        request_id: ids.anthropic_request(),
    };
    format!("event: error\ndata: {}\n\n", json(&event))
}

pub(super) fn openai_error_frame() -> String {
    let envelope = OpenAiErrorEnvelope {
        error: OpenAiError {
            message: "The server had an error while processing your request. Sorry about that!",
            kind: "server_error",
            param: None,
            code: None,
        },
    };
    format!("data: {}\n\n", json(&envelope))
}

#[derive(Serialize)]
struct OpenAiErrorEnvelope<'a> {
    error: OpenAiError<'a>,
}

#[derive(Serialize)]
struct OpenAiError<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

#[derive(Serialize)]
struct AnthropicErrorEnvelope<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: AnthropicError<'a>,
    request_id: String,
}

#[derive(Serialize)]
struct AnthropicError<'a> {
    /// In-stream errors carry `"details": null`; HTTP error bodies leave it out.
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Value>,
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;
    use crate::mock::script::testing::*;
    use serde_json::json;

    #[test]
    fn status_directive_uses_each_provider_error_body() {
        let cases = [
            (400, "invalid_request_error"),
            (401, "authentication_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (413, "request_too_large"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (503, "api_error"),
            (504, "timeout_error"),
            (529, "overloaded_error"),
        ];
        for (status, kind) in cases {
            for stream in [false, true] {
                let prompt = format!("hi mock:status={status}");
                let body = anthropic(&prompt, json!({"stream": stream}));
                let steps = run(Api::AnthropicMessages, &body);
                assert_anthropic_error(&steps, status, kind);
                let h = head(&steps);
                assert_eq!(h.header("retry-after").is_some(), status == 429);
                let retry = status == 429 || status >= 500;
                assert_eq!(
                    h.header("x-should-retry"),
                    Some(if retry { "true" } else { "false" })
                );
            }
        }
        let steps = run(
            Api::AnthropicCountTokens,
            &anthropic("mock:status=529", json!({})),
        );
        assert_anthropic_error(&steps, 529, "overloaded_error");

        let cases = [
            (400, "invalid_request_error", None),
            (401, "invalid_request_error", Some("invalid_api_key")),
            (404, "invalid_request_error", Some("model_not_found")),
            (429, "requests", Some("rate_limit_exceeded")),
            (500, "server_error", None),
            (503, "server_error", None),
        ];
        for (status, kind, code) in cases {
            let body = openai(&format!("mock:status={status}"), json!({"stream": true}));
            let steps = run(Api::OpenAiChat, &body);
            let v = assert_openai_error(&steps, status, kind);
            assert_eq!(v["error"]["code"].as_str(), code);
            assert_eq!(head(&steps).header("retry-after").is_some(), status == 429);
        }
        // Out-of-range statuses are ignored.
        let steps = run(
            Api::OpenAiChat,
            &openai("mock:status=200 mock:status=x", json!({})),
        );
        assert_eq!(head(&steps).status, 200);
    }

    #[test]
    fn midstream_error_frames() {
        let body = anthropic("a b c d e f mock:midstream_error", json!({"stream": true}));
        let steps = run(Api::AnthropicMessages, &body);
        assert_eq!(head(&steps).status, 200);
        assert_eq!(steps.last(), Some(&Step::End));
        let events = a_events(&steps);
        let names = a_names(&events);
        assert_eq!(
            names,
            vec![
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_delta",
                "content_block_delta",
                "error",
            ]
        );
        let error = &events[6].1;
        assert_eq!(error["error"]["type"], "overloaded_error");
        assert_eq!(error["error"]["message"], "Overloaded");
        assert_eq!(error["error"]["details"], Value::Null);
        assert!(error["request_id"].as_str().unwrap().starts_with("req_"));

        let body = openai(
            "mock:midstream_error",
            json!({"stream": true, "stream_options": {"include_usage": true}}),
        );
        let steps = run(Api::OpenAiChat, &body);
        assert_eq!(steps.last(), Some(&Step::End));
        let (chunks, done) = o_chunks(&steps);
        assert!(!done, "no [DONE] after an error");
        let last = chunks.last().unwrap();
        assert_eq!(
            *last,
            json!({"error": {"message": "The server had an error while processing your request. Sorry about that!",
                             "type": "server_error", "param": null, "code": null}})
        );
        assert_eq!(o_text(&chunks), "Hello from the");
        assert!(chunks
            .iter()
            .all(|c| c["choices"][0]["finish_reason"].is_null()));

        // Non-streaming: the nearest thing is a 5xx.
        let steps = run(
            Api::AnthropicMessages,
            &anthropic("mock:midstream_error", json!({})),
        );
        assert_anthropic_error(&steps, 529, "overloaded_error");
        let steps = run(Api::OpenAiChat, &openai("mock:midstream_error", json!({})));
        assert_openai_error(&steps, 500, "server_error");
    }
}
