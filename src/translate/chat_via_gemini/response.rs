//! A Gemini `GenerateContentResponse` as a Chat Completions response (mapping in `mod.rs`).

use serde_json::{json, Map, Value};

use super::{finish_reason, id_with_signature, GeminiMeta, SignatureSeal};
use crate::translate::TranslateError;

/// Prefix of Chat completion ids made from Gemini response ids.
pub(crate) const CHATCMPL_PREFIX: &str = "chatcmpl-";

/// Stands in for a missing `responseId` in ids made from it.
const NO_RESPONSE_ID: &str = "gemini";

/// Translates a Gemini answer into a Chat completion appended to `out`.
pub fn response(
    raw: &[u8],
    meta: &GeminiMeta,
    seal: &dyn SignatureSeal,
    out: &mut Vec<u8>,
) -> Result<(), TranslateError> {
    let r: Value = serde_json::from_slice(raw)
        .map_err(|e| TranslateError::upstream(format!("unreadable Gemini response: {e}")))?;
    if !r.is_object() {
        return Err(TranslateError::upstream(
            "unreadable Gemini response: not a JSON object",
        ));
    }
    if let Some(e) = upstream_error(&r) {
        return Err(TranslateError::upstream(e));
    }
    let candidate = first_candidate(&r)?;
    let response_id = response_id(&r);
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for p in parts(candidate) {
        match read_part(p) {
            Part::Text(t) => text.push_str(t),
            Part::Thought(t) => reasoning.push_str(t),
            Part::Call {
                id,
                name,
                args,
                signature,
            } => {
                let id = call_id(id, response_id, calls.len(), signature, seal);
                calls.push(json!({
                    "id": id,
                    "type": "function",
                    "function": { "name": name, "arguments": args },
                }));
            }
            Part::Other => {}
        }
    }
    let finish = finish_reason(
        candidate
            .and_then(|c| c.get("finishReason"))
            .and_then(Value::as_str),
        !calls.is_empty(),
    );
    let mut message = Map::new();
    message.insert("role".into(), json!("assistant"));
    message.insert(
        "content".into(),
        if text.is_empty() && !calls.is_empty() {
            Value::Null
        } else {
            Value::from(text)
        },
    );
    if meta.include_thoughts && !reasoning.is_empty() {
        message.insert("reasoning_content".into(), Value::from(reasoning));
    }
    if !calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    let body = json!({
        "id": format!("{CHATCMPL_PREFIX}{response_id}"),
        "object": "chat.completion",
        "created": meta.created,
        "model": model(&r, meta),
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish,
        }],
        "usage": usage(r.get("usageMetadata")),
    });
    serde_json::to_writer(out, &body).map_err(|e| TranslateError::internal(e.to_string()))
}

/// The message of an `{"error":{…}}` body that came with a 2xx.
pub(crate) fn upstream_error(r: &Value) -> Option<String> {
    let e = r.get("error")?;
    let message = e
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("upstream error");
    Some(format!("Gemini error: {message}"))
}

/// `candidates[0]`; a prompt blocked with no candidates is the client's error (400, naming
/// the reason); an answer with neither is unreadable. `Ok(None)`: no candidate, nothing
/// blocked (a stream chunk holding only usage).
pub(crate) fn first_candidate(r: &Value) -> Result<Option<&Value>, TranslateError> {
    if let Some(c) = r
        .get("candidates")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
    {
        return Ok(Some(c));
    }
    if let Some(reason) = r
        .get("promptFeedback")
        .and_then(|f| f.get("blockReason"))
        .map(|b| b.as_str().unwrap_or("OTHER"))
    {
        return Err(blocked(reason));
    }
    if r.get("usageMetadata").is_some() {
        return Ok(None);
    }
    Err(TranslateError::upstream(
        "Gemini response without candidates",
    ))
}

/// The error for a prompt Gemini blocked (`promptFeedback.blockReason`).
pub(crate) fn blocked(reason: &str) -> TranslateError {
    let reason: String = reason
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect();
    TranslateError {
        status: 400,
        param: Some("messages".into()),
        message: format!(
            "the provider blocked the prompt (Gemini promptFeedback.blockReason {reason}); no answer was generated"
        ),
        code: None,
    }
}

pub(crate) fn response_id(r: &Value) -> &str {
    r.get("responseId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or(NO_RESPONSE_ID)
}

pub(crate) fn model(r: &Value, meta: &GeminiMeta) -> String {
    r.get("modelVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or(&meta.upstream_model)
        .to_owned()
}

pub(crate) fn parts(candidate: Option<&Value>) -> &[Value] {
    candidate
        .and_then(|c| c.get("content"))
        .and_then(|c| c.get("parts"))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// What a Gemini part is to a Chat client.
pub(crate) enum Part<'a> {
    Text(&'a str),
    Thought(&'a str),
    Call {
        id: Option<&'a str>,
        name: &'a str,
        /// `args` as a JSON string.
        args: String,
        signature: Option<&'a str>,
    },
    /// Signature-only, server tools, media: nothing for the client.
    Other,
}

pub(crate) fn read_part(p: &Value) -> Part<'_> {
    if let Some(fc) = p.get("functionCall") {
        let signature = p
            .get("thoughtSignature")
            .or_else(|| p.get("thought_signature"))
            .and_then(Value::as_str);
        let args = match fc.get("args") {
            Some(a @ Value::Object(_)) => a.to_string(),
            _ => "{}".to_owned(),
        };
        return Part::Call {
            id: fc
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty()),
            name: fc.get("name").and_then(Value::as_str).unwrap_or(""),
            args,
            signature,
        };
    }
    match p.get("text").and_then(Value::as_str) {
        Some(t) if p.get("thought").and_then(Value::as_bool) == Some(true) => Part::Thought(t),
        Some(t) => Part::Text(t),
        None => Part::Other,
    }
}

/// The Chat id of the `n`th call: Gemini's id (or one made from the response id), carrying
/// the sealed signature.
pub(crate) fn call_id(
    id: Option<&str>,
    response_id: &str,
    n: usize,
    signature: Option<&str>,
    seal: &dyn SignatureSeal,
) -> String {
    let base = match id {
        Some(id) => id.to_owned(),
        None => format!("call_{response_id}_{n}"),
    };
    id_with_signature(&base, signature, seal)
}

/// Chat usage from `usageMetadata`: completion counts thoughts (OpenAI's includes reasoning);
/// the prompt counts the cached part and the tool-use prompt.
pub(crate) fn usage(u: Option<&Value>) -> Value {
    let n = |k: &str| {
        u.and_then(|u| u.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let prompt = n("promptTokenCount").saturating_add(n("toolUsePromptTokenCount"));
    let thoughts = n("thoughtsTokenCount");
    let completion = n("candidatesTokenCount").saturating_add(thoughts);
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt.saturating_add(completion),
        "prompt_tokens_details": { "cached_tokens": n("cachedContentTokenCount") },
        "completion_tokens_details": { "reasoning_tokens": thoughts },
    })
}
