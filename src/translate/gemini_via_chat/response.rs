//! A Chat Completions answer as a Gemini `GenerateContentResponse` (mapping in `mod.rs`).

use serde_json::{json, Map, Value};

use super::{finish_reason, response_id, seal_blocks, usage_metadata, GeminiClientMeta};
use crate::translate::{RequestMeta, TranslateError};

/// Translates a Chat completion into a Gemini answer appended to `out`.
pub fn response_into(
    raw: &[u8],
    meta: &RequestMeta,
    client: &GeminiClientMeta,
    out: &mut Vec<u8>,
) -> Result<(), TranslateError> {
    let r: Value = serde_json::from_slice(raw)
        .map_err(|e| TranslateError::upstream(format!("unreadable OpenAI response: {e}")))?;
    let choice = r
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|c| c["index"] == 0).or_else(|| c.first()))
        .ok_or_else(|| TranslateError::upstream("OpenAI response has no choices"))?;
    let message = choice.get("message").unwrap_or(&Value::Null);
    let mut parts = Vec::new();
    if client.include_thoughts {
        if let Some(t) = message
            .get("reasoning_content")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            parts.push(json!({ "text": t, "thought": true }));
        }
    }
    let blocks = message
        .get("thinking_blocks")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let mut carrier = seal_blocks(blocks, client.seal());
    let text = message
        .get("content")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .or_else(|| message.get("refusal").and_then(Value::as_str));
    let calls = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    // The carrier rides on the first function call when there is one (Gemini's own place
    // for a signature), else on the text.
    if let Some(t) = text {
        let mut p = Map::new();
        p.insert("text".into(), json!(t));
        if calls.is_empty() {
            if let Some(sig) = carrier.take() {
                p.insert("thoughtSignature".into(), json!(sig));
            }
        }
        parts.push(Value::Object(p));
    }
    for c in calls {
        parts.push(call_part(c, meta, carrier.take()));
    }
    if let Some(sig) = carrier {
        parts.push(json!({ "text": "", "thoughtSignature": sig }));
    }
    let finish = choice.get("finish_reason").and_then(Value::as_str);
    let mut content = Map::new();
    if !parts.is_empty() {
        content.insert("parts".into(), Value::Array(parts));
    }
    content.insert("role".into(), json!("model"));
    let body = json!({
        "candidates": [{
            "content": content,
            "finishReason": finish_reason(finish),
            "index": 0,
        }],
        "usageMetadata": usage_metadata(r.get("usage")),
        "modelVersion": model(&r, meta),
        "responseId": response_id(r.get("id").and_then(Value::as_str)),
    });
    serde_json::to_writer(out, &body).map_err(|e| TranslateError::internal(e.to_string()))
}

/// The model an answer names, else the one the request was sent for.
pub(crate) fn model<'a>(r: &'a Value, meta: &'a RequestMeta) -> &'a str {
    r.get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .unwrap_or(&meta.upstream_model)
}

/// A Chat tool call as a Gemini `functionCall` part (the client's name given back).
pub(crate) fn call_part(c: &Value, meta: &RequestMeta, signature: Option<String>) -> Value {
    let f = c.get("function").unwrap_or(&Value::Null);
    let name = f.get("name").and_then(Value::as_str).unwrap_or("");
    let args = f.get("arguments").and_then(Value::as_str).unwrap_or("");
    call_part_of(
        c.get("id").and_then(Value::as_str).unwrap_or(""),
        meta.client_tool_name(name),
        args,
        signature,
    )
}

/// A `functionCall` part from its pieces; arguments that are not a JSON object are kept
/// under `arguments` rather than lost.
pub(crate) fn call_part_of(id: &str, name: &str, args: &str, signature: Option<String>) -> Value {
    let args = match serde_json::from_str::<Value>(args) {
        Ok(v @ Value::Object(_)) => v,
        _ if args.trim().is_empty() => json!({}),
        _ => json!({ "arguments": args }),
    };
    let mut fc = Map::new();
    if !id.is_empty() {
        fc.insert("id".into(), json!(id));
    }
    fc.insert("name".into(), json!(name));
    fc.insert("args".into(), args);
    let mut p = Map::new();
    p.insert("functionCall".into(), Value::Object(fc));
    if let Some(sig) = signature {
        p.insert("thoughtSignature".into(), json!(sig));
    }
    Value::Object(p)
}
