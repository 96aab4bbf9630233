//! Amazon Bedrock's runtime as the mock plays it: `InvokeModel`, `InvokeModelWithResponseStream`
//! and `CountTokens` on `/model/{modelId}/…`, behind the AWS front end of [`super::aws`].
//! The body rules are Bedrock's (`anthropic_version`, no `model`/`stream`, a beta allowlist);
//! the answer is the Anthropic script's, reshaped: AWS error shapes, Bedrock's response
//! headers, and streams as AWS event-stream frames (`chunk` events carrying the Anthropic
//! events base64-encoded), split across writes. Pure: the clock is a parameter.

use std::time::SystemTime;

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::aws::{authenticate, AwsError, Presented};
use super::cloud::{
    append_directive, json_reply, last_user_text, percent_decode, uuid_of, CloudDirectives,
};
use super::fault::{self, FaultTable};
use super::script::{Api, Defaults, Step};

/// The `anthropic_version` Bedrock requires in the body.
pub const BEDROCK_VERSION: &str = "bedrock-2023-05-31";
/// What `mock:huge_frame`'s prelude claims: far over any sane frame bound.
pub const HUGE_FRAME_BYTES: u32 = 64 << 20;
/// Betas Bedrock's InvokeModel accepts in `anthropic_beta`; others are "invalid beta flag".
/// The gateway's allowlist stands for the cloud's (`--refuse-beta` plays a region without one).
pub const BEDROCK_BETAS: &[&str] = crate::provider::bedrock::BETAS;
/// Inference-profile prefixes: CountTokens takes only bare foundation-model ids.
pub const GEO_PREFIXES: &[&str] = &[
    "us.", "eu.", "global.", "ca.", "apac.", "jp.", "au.", "us-gov.",
];
/// Padding alphabet of the `p` field real Bedrock chunks carry.
const PADDING: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/// A Bedrock operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `/invoke`.
    Invoke,
    /// `/invoke-with-response-stream`.
    Stream,
    /// `/count-tokens`.
    CountTokens,
}

/// The operation and decoded model id of a Bedrock path; `None`: not a Bedrock path.
pub fn route(path: &str) -> Option<(Op, String)> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let rest = path.strip_prefix("/model/")?;
    let (id, op) = rest.rsplit_once('/')?;
    let op = match op {
        "invoke" => Op::Invoke,
        "invoke-with-response-stream" => Op::Stream,
        "count-tokens" => Op::CountTokens,
        _ => return None,
    };
    Some((
        op,
        percent_decode(id, false).unwrap_or_else(|| id.to_owned()),
    ))
}

/// The whole answer to one Bedrock request.
pub fn plan(
    op: Op,
    model: &str,
    req: &Presented<'_>,
    faults: &FaultTable,
    defaults: &Defaults,
    now: SystemTime,
) -> Vec<Step> {
    let request_id = uuid_of(req.body);
    if let Err(e) = authenticate(req, now) {
        return e.steps(&request_id);
    }
    let fail = |e: AwsError| e.steps(&request_id);
    if op == Op::CountTokens {
        return count_tokens(model, req.body).unwrap_or_else(fail);
    }
    let mut root = match check_body(req.body) {
        Ok(root) => root,
        Err(e) => return fail(e),
    };
    let dirs = CloudDirectives::parse(&last_user_text(&root));
    if dirs.throttle {
        return fail(throttling());
    }
    if let Some(obj) = root.as_object_mut() {
        obj.remove("anthropic_version");
        obj.remove("anthropic_beta");
        obj.insert("model".into(), Value::from(model));
        obj.insert("stream".into(), Value::from(op == Op::Stream));
    }
    if dirs.exception.is_some() {
        append_directive(&mut root, "mock:midstream_error");
    }
    let body = root.to_string().into_bytes();
    let fault = faults.lookup(Some(model)).clone();
    let steps = fault::plan(&fault, Api::AnthropicMessages, &body, defaults);
    if op == Op::Stream {
        to_event_stream(steps, &request_id, &dirs)
    } else {
        to_invoke(steps, &request_id)
    }
}

/// A request naming a beta the mock was told this region does not know yet
/// (`--refuse-beta`): Bedrock's "invalid beta flag", whatever the allowlist says.
pub fn refuse_betas(body: &[u8], refused: &[String]) -> Option<Vec<Step>> {
    let root: Value = serde_json::from_slice(body).ok()?;
    let betas = root.get("anthropic_beta")?.as_array()?;
    betas
        .iter()
        .any(|b| b.as_str().is_some_and(|b| refused.iter().any(|r| r == b)))
        .then(|| validation("invalid beta flag").steps(&uuid_of(body)))
}

fn validation(message: impl Into<String>) -> AwsError {
    AwsError::new("ValidationException", message)
}

fn throttling() -> AwsError {
    AwsError::new(
        "ThrottlingException",
        "Too many requests, please wait before trying again.",
    )
}

/// Bedrock's body rules, in its own words.
fn check_body(body: &[u8]) -> Result<Value, AwsError> {
    let root: Value = serde_json::from_slice(body).map_err(|_| {
        validation("Malformed input request, please reformat your input and try again.")
    })?;
    let Some(obj) = root.as_object() else {
        return Err(validation(
            "Malformed input request: #: expected type: JSONObject, please reformat your input and try again.",
        ));
    };
    for key in ["model", "stream"] {
        if obj.contains_key(key) {
            return Err(validation(format!(
                "Malformed input request: #: extraneous key [{key}] is not permitted, please reformat your input and try again."
            )));
        }
    }
    match obj.get("anthropic_version") {
        None => {
            return Err(validation(
                "Malformed input request: #: required key [anthropic_version] not found, please reformat your input and try again.",
            ))
        }
        Some(Value::String(v)) if v == BEDROCK_VERSION => {}
        Some(_) => {
            return Err(validation(
                "Malformed input request: #/anthropic_version: bedrock-2023-05-31 was expected, please reformat your input and try again.",
            ))
        }
    }
    match obj.get("anthropic_beta") {
        None => {}
        Some(Value::Array(betas))
            if betas
                .iter()
                .any(|b| !b.as_str().is_some_and(|b| BEDROCK_BETAS.contains(&b))) =>
        {
            return Err(validation("invalid beta flag"));
        }
        Some(Value::Array(_)) => {}
        Some(_) => {
            return Err(validation(
                "Malformed input request: #/anthropic_beta: expected type: JSONArray, please reformat your input and try again.",
            ))
        }
    }
    // InvokeModel takes compaction edits only (others: a 400, as users of other gateways
    // report for Claude Code's clear_thinking edit).
    let refused_edit = obj
        .get("context_management")
        .and_then(|c| c.get("edits"))
        .and_then(Value::as_array)
        .is_some_and(|edits| {
            edits.iter().any(|e| {
                !e.get("type").and_then(Value::as_str).is_some_and(|t| {
                    crate::provider::bedrock::CONTEXT_EDITS
                        .iter()
                        .any(|k| t.starts_with(k))
                })
            })
        });
    if refused_edit {
        return Err(validation(
            "context_management: Extra inputs are not permitted",
        ));
    }
    Ok(root)
}

/// CountTokens: `{"input":{"invokeModel":{"body":"<base64>"}}}` → `{"inputTokens":N}`, N the
/// script's estimate (a quarter of the body's bytes) of the decoded InvokeModel body.
fn count_tokens(model: &str, body: &[u8]) -> Result<Vec<Step>, AwsError> {
    if GEO_PREFIXES.iter().any(|p| model.starts_with(p)) {
        return Err(validation(
            "The provided model doesn't support counting tokens.",
        ));
    }
    let root: Value = serde_json::from_slice(body).map_err(|_| {
        validation("Malformed input request, please reformat your input and try again.")
    })?;
    let Some(inner) = root
        .pointer("/input/invokeModel/body")
        .and_then(Value::as_str)
    else {
        return Err(validation(
            "1 validation error detected: Value at 'input' failed to satisfy constraint: Member must not be null",
        ));
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(inner)
        .map_err(|_| validation("Invalid base64 in input.invokeModel.body"))?;
    let inner = check_body(&decoded)?;
    if CloudDirectives::parse(&last_user_text(&inner)).throttle {
        return Err(throttling());
    }
    let tokens = u64::try_from(decoded.len().div_ceil(4)).unwrap_or(u64::MAX);
    Ok(json_reply(
        200,
        Vec::new(),
        &json!({ "inputTokens": tokens }),
    ))
}

/// The AWS error for a script error reply of `status` (its Anthropic body's message kept
/// where AWS would pass the model's words on).
fn aws_error(status: u16, anthropic_body: &[u8]) -> AwsError {
    let message = serde_json::from_slice::<Value>(anthropic_body)
        .ok()
        .and_then(|v| v.pointer("/error/message")?.as_str().map(str::to_owned))
        .unwrap_or_default();
    match status {
        429 => throttling(),
        503 | 529 => AwsError::new(
            "ServiceUnavailableException",
            "Bedrock is unable to process your request.",
        ),
        401 | 403 => AwsError::new(
            "AccessDeniedException",
            "You don't have access to the model with the specified model ID.",
        ),
        404 => AwsError::new(
            "ResourceNotFoundException",
            "The provided model identifier is invalid.",
        ),
        408 | 504 => AwsError::new(
            "ModelTimeoutException",
            "Model has timed out in processing the request. Try your request again.",
        ),
        500..=599 => {
            let mut e = AwsError::new(
                "InternalServerException",
                "The system encountered an unexpected error during processing. Try your request again.",
            );
            e.status = status;
            e
        }
        _ => validation(message),
    }
}

/// Replaces a non-200 reply (head and its body) by the AWS error; other steps kept.
fn map_error_reply(steps: Vec<Step>, request_id: &str) -> Result<Vec<Step>, Vec<Step>> {
    let status = steps.iter().find_map(|s| match s {
        Step::Head { status, .. } => Some(*status),
        _ => None,
    });
    let Some(status) = status.filter(|s| *s != 200) else {
        return Err(steps);
    };
    let body = steps
        .iter()
        .find_map(|s| match s {
            Step::Data(d) => Some(d.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let mut out: Vec<Step> = steps
        .into_iter()
        .take_while(|s| !matches!(s, Step::Head { .. }))
        .collect();
    out.extend(aws_error(status, &body).steps(request_id));
    Ok(out)
}

/// A non-streaming answer: AWS errors, Bedrock's headers on a 200.
fn to_invoke(steps: Vec<Step>, request_id: &str) -> Vec<Step> {
    let steps = match map_error_reply(steps, request_id) {
        Ok(mapped) => return mapped,
        Err(steps) => steps,
    };
    let latency: u128 = steps
        .iter()
        .map(|s| match s {
            Step::Sleep(d) => d.as_millis(),
            _ => 0,
        })
        .sum();
    let body = steps
        .iter()
        .find_map(|s| match s {
            Step::Data(d) => Some(d.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let usage = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("usage").cloned())
        .unwrap_or(Value::Null);
    let count = |k: &str| usage.get(k).and_then(Value::as_u64).unwrap_or(0);
    steps
        .into_iter()
        .map(|s| match s {
            Step::Head {
                status,
                content_length,
                ..
            } => Step::Head {
                status,
                headers: vec![
                    ("content-type", "application/json".to_owned()),
                    ("x-amzn-requestid", request_id.to_owned()),
                    (
                        "x-amzn-bedrock-input-token-count",
                        count("input_tokens").to_string(),
                    ),
                    (
                        "x-amzn-bedrock-output-token-count",
                        count("output_tokens").to_string(),
                    ),
                    (
                        "x-amzn-bedrock-invocation-latency",
                        latency.max(1).to_string(),
                    ),
                ],
                content_length,
            },
            other => other,
        })
        .collect()
}

/// One event-stream frame with string headers.
pub fn frame(headers: &[(&'static str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut msg = Message::new(Bytes::copy_from_slice(payload));
    for (name, value) in headers {
        msg = msg.add_header(Header::new(
            *name,
            HeaderValue::String(value.to_string().into()),
        ));
    }
    let mut out = Vec::new();
    // Writing to a Vec fails only for oversized headers, which these never are.
    let _ = write_message_to(&msg, &mut out);
    out
}

/// A `chunk` frame carrying one Anthropic event, with `p` padding of a varying length.
fn chunk_frame(event_json: &[u8], n: usize) -> Vec<u8> {
    let pad_len = (n * 7 + 3) % PADDING.len() + 1;
    let payload = json!({
        "bytes": base64::engine::general_purpose::STANDARD.encode(event_json),
        "p": &PADDING[..pad_len],
    });
    frame(
        &[
            (":event-type", "chunk"),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload.to_string().as_bytes(),
    )
}

/// A modeled exception frame; `error` is the Anthropic error event it stands for.
fn exception_frame(name: &str, error: &Value) -> Vec<u8> {
    let anthropic_type = error
        .pointer("/error/type")
        .and_then(Value::as_str)
        .unwrap_or("api_error");
    let anthropic_message = error
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or("");
    let message = match name {
        "throttlingException" => "Too many requests, please wait before trying again.",
        "serviceUnavailableException" => "Bedrock is unable to process your request.",
        "modelTimeoutException" => {
            "Model has timed out in processing the request. Try your request again."
        }
        "validationException" => "Input validation failed. Check your request and try again.",
        "internalServerException" => {
            "The system encountered an unexpected error during processing. Try your request again."
        }
        _ => "The model encountered an error while streaming its response.",
    };
    let mut payload = Map::new();
    payload.insert("message".into(), Value::from(message));
    if name == "modelStreamErrorException" {
        let original = match anthropic_type {
            "overloaded_error" => 529,
            "rate_limit_error" => 429,
            "invalid_request_error" => 400,
            _ => 500,
        };
        payload.insert("originalStatusCode".into(), Value::from(original));
        payload.insert("originalMessage".into(), Value::from(anthropic_message));
    }
    let name: &'static str = match name {
        "throttlingException" => "throttlingException",
        "serviceUnavailableException" => "serviceUnavailableException",
        "modelTimeoutException" => "modelTimeoutException",
        "validationException" => "validationException",
        "internalServerException" => "internalServerException",
        _ => "modelStreamErrorException",
    };
    frame(
        &[
            (":exception-type", name),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        Value::Object(payload).to_string().as_bytes(),
    )
}

/// The SSE events' data in one Data step.
fn sse_data(bytes: &[u8]) -> Vec<Vec<u8>> {
    let text = String::from_utf8_lossy(bytes);
    text.split("\n\n")
        .filter_map(|block| {
            let data: Vec<&str> = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:").map(str::trim_start))
                .collect();
            (!data.is_empty()).then(|| data.join("\n").into_bytes())
        })
        .collect()
}

/// A streaming answer: AWS errors before any stream; otherwise the Anthropic events as
/// event-stream frames, split at shifting offsets (or in `mock:split=` pieces, each flushed).
fn to_event_stream(steps: Vec<Step>, request_id: &str, dirs: &CloudDirectives) -> Vec<Step> {
    let steps = match map_error_reply(steps, request_id) {
        Ok(mapped) => return mapped,
        Err(steps) => steps,
    };
    let exception = dirs
        .exception
        .clone()
        .unwrap_or_else(|| "modelStreamErrorException".to_owned());
    let mut out = Vec::with_capacity(steps.len() * 2);
    let (mut frames_sent, mut input, mut output) = (0usize, 0u64, 0u64);
    let mut broken = false;
    for step in steps {
        match step {
            Step::Head { .. } => out.push(Step::Head {
                status: 200,
                headers: vec![
                    (
                        "content-type",
                        "application/vnd.amazon.eventstream".to_owned(),
                    ),
                    ("x-amzn-requestid", request_id.to_owned()),
                    ("x-amzn-bedrock-content-type", "application/json".to_owned()),
                ],
                content_length: None,
            }),
            Step::Data(data) if !broken => {
                let mut bytes = Vec::new();
                for event in sse_data(&data) {
                    let Ok(mut v) = serde_json::from_slice::<Value>(&event) else {
                        continue;
                    };
                    match v.get("type").and_then(Value::as_str) {
                        Some("error") => {
                            bytes.extend(exception_frame(&exception, &v));
                            continue;
                        }
                        Some("message_start") => {
                            input = v
                                .pointer("/message/usage/input_tokens")
                                .and_then(Value::as_u64)
                                .unwrap_or(0);
                        }
                        Some("message_delta") => {
                            output = v
                                .pointer("/usage/output_tokens")
                                .and_then(Value::as_u64)
                                .unwrap_or(output);
                        }
                        Some("message_stop") => {
                            if let Some(obj) = v.as_object_mut() {
                                obj.insert(
                                    "amazon-bedrock-invocationMetrics".into(),
                                    json!({
                                        "inputTokenCount": input,
                                        "outputTokenCount": output,
                                        "invocationLatency": 1,
                                        "firstByteLatency": 1,
                                    }),
                                );
                            }
                        }
                        _ => {}
                    }
                    let mut f = chunk_frame(v.to_string().as_bytes(), frames_sent);
                    frames_sent += 1;
                    if dirs.bad_crc && frames_sent == 2 {
                        if let Some(last) = f.last_mut() {
                            *last ^= 0xff;
                        }
                        bytes.extend(f);
                        broken = true;
                        break;
                    }
                    bytes.extend(f);
                    if dirs.huge_frame && frames_sent == 1 {
                        bytes.extend(huge_prelude());
                        broken = true;
                        break;
                    }
                }
                super::cloud::push_pieces(&mut out, Bytes::from(bytes), dirs.split, frames_sent);
            }
            Step::Data(_) => {}
            Step::End => out.push(Step::End),
            other if !broken => out.push(other),
            _ => {}
        }
    }
    if broken && !matches!(out.last(), Some(Step::End)) {
        out.push(Step::End);
    }
    out
}

/// A prelude (with a valid CRC) claiming [`HUGE_FRAME_BYTES`], then a little of that body.
fn huge_prelude() -> Vec<u8> {
    let mut p = Vec::with_capacity(64);
    p.extend_from_slice(&HUGE_FRAME_BYTES.to_be_bytes());
    p.extend_from_slice(&0u32.to_be_bytes());
    let crc = crc32fast::hash(&p);
    p.extend_from_slice(&crc.to_be_bytes());
    p.extend_from_slice(&[0u8; 32]);
    p
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            route("/model/us.anthropic.claude-x-v1%3A0/invoke"),
            Some((Op::Invoke, "us.anthropic.claude-x-v1:0".to_owned()))
        );
        assert_eq!(
            route("/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fabc/invoke-with-response-stream"),
            Some((Op::Stream, "arn:aws:bedrock:us-east-1:1:inference-profile/abc".to_owned()))
        );
        assert_eq!(
            route("/model/x/count-tokens").map(|r| r.0),
            Some(Op::CountTokens)
        );
        assert_eq!(route("/model/x/converse"), None);
        assert_eq!(route("/v1/messages"), None);
    }

    #[test]
    fn body_rules() {
        let ok = br#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":5,"messages":[]}"#;
        assert!(check_body(ok).is_ok());
        let e =
            check_body(br#"{"anthropic_version":"bedrock-2023-05-31","model":"m"}"#).unwrap_err();
        assert!(e.message.contains("extraneous key [model]"));
        let e =
            check_body(br#"{"anthropic_version":"bedrock-2023-05-31","anthropic_beta":["nope"]}"#)
                .unwrap_err();
        assert_eq!((e.status, e.message.as_str()), (400, "invalid beta flag"));
        assert!(check_body(br#"{"anthropic_version":"bedrock-2023-05-31","anthropic_beta":["context-1m-2025-08-07"]}"#).is_ok());
        let e = check_body(br#"{"anthropic_version":"bedrock-2023-05-31","context_management":{"edits":[{"type":"clear_thinking_20251015"}]}}"#).unwrap_err();
        assert_eq!(
            (e.status, e.message.as_str()),
            (400, "context_management: Extra inputs are not permitted")
        );
        assert!(check_body(br#"{"anthropic_version":"bedrock-2023-05-31","context_management":{"edits":[{"type":"compact_20260112"}]}}"#).is_ok());
    }
}
