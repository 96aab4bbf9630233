//! What a client of each API can rely on in a body the gateway hands it: asserted here so the
//! targets state one definition of "in the client's format".
#![allow(dead_code)] // each target uses some of these

use serde_json::Value;

/// Anthropic's documented `error.type` values (an SDK maps these to exception classes).
use ringway::translate::ANTHROPIC_ERROR_TYPES;

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

/// `{"type":"error","error":{"type":<known>,"message":<string>}}`; returns the message.
pub fn anthropic_error(body: &[u8]) -> String {
    let v = json(body);
    let kind = v.pointer("/error/type").and_then(Value::as_str);
    assert!(
        v["type"] == "error"
            && kind.is_some_and(|k| ANTHROPIC_ERROR_TYPES.contains(&k))
            && v["error"]["message"].is_string(),
        "not an Anthropic error: {v}"
    );
    v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// `{"error":{"message":<string>,"type":<string>,"param":…,"code":…}}`; returns the message.
pub fn openai_error(body: &[u8]) -> String {
    let v = json(body);
    let e = v["error"].as_object();
    assert!(
        e.is_some_and(|e| e.get("message").is_some_and(Value::is_string)
            && e.get("type").is_some_and(Value::is_string)
            && e.contains_key("param")
            && e.contains_key("code")),
        "not an OpenAI error: {v}"
    );
    v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A `chat.completion` an OpenAI SDK can read: one choice, assistant message, a finish
/// reason, tool-call arguments that are JSON text, integer usage.
pub fn openai_completion(body: &[u8]) {
    let v = json(body);
    let ok = v["object"] == "chat.completion"
        && v["id"].is_string()
        && v["model"].is_string()
        && v["created"].is_u64()
        && v["choices"].as_array().is_some_and(|c| c.len() == 1)
        && v["choices"][0]["index"] == 0
        && v["choices"][0]["message"]["role"] == "assistant"
        && v["choices"][0]["finish_reason"].is_string()
        && ["prompt_tokens", "completion_tokens", "total_tokens"]
            .iter()
            .all(|k| v["usage"][k].is_u64());
    assert!(ok, "not a chat.completion: {v}");
    let m = &v["choices"][0]["message"];
    assert!(m["content"].is_string() || m["content"].is_null(), "{v}");
    for call in m["tool_calls"].as_array().into_iter().flatten() {
        let args = call["function"]["arguments"].as_str();
        assert!(
            call["function"]["name"].is_string()
                && args.is_some_and(|a| serde_json::from_str::<Value>(a).is_ok()),
            "bad tool call: {v}"
        );
    }
}

/// A Messages response an Anthropic SDK can read: typed content blocks, object tool inputs,
/// integer usage.
pub fn anthropic_message(body: &[u8]) {
    let v = json(body);
    let ok = v["type"] == "message"
        && v["role"] == "assistant"
        && v["id"].is_string()
        && v["model"].is_string()
        && (v["stop_reason"].is_string() || v["stop_reason"].is_null())
        && v["usage"]["input_tokens"].is_u64()
        && v["usage"]["output_tokens"].is_u64();
    assert!(ok, "not an Anthropic message: {v}");
    for b in v["content"].as_array().unwrap_or_else(|| panic!("{v}")) {
        let ok = match b["type"].as_str() {
            Some("text") => b["text"].is_string(),
            Some("thinking") => b["thinking"].is_string(),
            Some("tool_use") => {
                b["id"].is_string() && b["name"].is_string() && b["input"].is_object()
            }
            other => panic!("unexpected block type {other:?}: {v}"),
        };
        assert!(ok, "bad {} block: {v}", b["type"]);
    }
}
