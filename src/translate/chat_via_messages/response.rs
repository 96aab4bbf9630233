//! An Anthropic Messages answer as a Chat Completions response (spec §4, §7, §8).

use std::borrow::Cow;

use crate::wire::anthropic::{ContentBlock, MessageResponse};
use crate::wire::openai::{ChatCompletion, Choice, FunctionCall, ResponseMessage, ToolCall};
use crate::wire::Str;

use crate::translate::util::{compact_json, finish_reason_for, openai_usage};
use crate::translate::{RequestMeta, TranslateError, JSON_TOOL_NAME};

/// Prefix of OpenAI completion ids made from Anthropic message ids (`chatcmpl-msg_…`).
pub(crate) const CHATCMPL_PREFIX: &str = "chatcmpl-";

/// Translates an Anthropic Messages response body into an OpenAI chat completion.
pub fn anthropic_to_openai_response(
    body: &[u8],
    meta: &RequestMeta,
) -> Result<Vec<u8>, TranslateError> {
    let mut dst = Vec::new();
    anthropic_to_openai_response_into(body, meta, &mut dst)?;
    Ok(dst)
}

/// [`anthropic_to_openai_response`] appending to `dst`, so a caller that sized (and accounted
/// for) the buffer up front keeps the answer's memory within what it reserved.
pub fn anthropic_to_openai_response_into(
    body: &[u8],
    meta: &RequestMeta,
    dst: &mut Vec<u8>,
) -> Result<(), TranslateError> {
    let r: MessageResponse<'_> = serde_json::from_slice(body)
        .map_err(|e| TranslateError::upstream(format!("unreadable Anthropic response: {e}")))?;
    let mut texts: Vec<Cow<'_, str>> = Vec::new();
    let mut thinking: Vec<&str> = Vec::new();
    let mut thinking_blocks: Vec<ContentBlock<'_>> = Vec::new();
    let mut tool_calls: Vec<ToolCall<'_>> = Vec::new();
    let mut json_answer = false;
    for b in &r.content {
        match b.kind.as_str() {
            "text" => texts.extend(b.text.as_deref().map(Cow::Borrowed)),
            "tool_use" if meta.json_tool && b.name.as_deref() == Some(JSON_TOOL_NAME) => {
                // response_format json_object: the forced tool's input is the answer.
                texts.push(
                    b.input
                        .map_or(Cow::Borrowed("{}"), |raw| compact_json(raw.get())),
                );
                json_answer = true;
            }
            "tool_use" => tool_calls.push(ToolCall {
                index: None,
                // OpenAI SDKs require both; a block without them still becomes a call.
                id: Some(match b.id.as_ref().filter(|id| !id.is_empty()) {
                    Some(id) => id.reborrow(),
                    None => Str::from(format!("call_{}_{}", r.id, tool_calls.len())),
                }),
                kind: Some(Str::from("function")),
                function: Some(FunctionCall {
                    name: Some(b.name.as_ref().map_or(Str::from(""), Str::reborrow)),
                    arguments: Some(Str::from(
                        b.input
                            .map_or(Cow::Borrowed("{}"), |raw| compact_json(raw.get())),
                    )),
                }),
            }),
            "thinking" => {
                thinking.extend(b.thinking.as_deref());
                thinking_blocks.push(ContentBlock {
                    kind: Str::from("thinking"),
                    thinking: Some(b.thinking.as_ref().map_or(Str::from(""), Str::reborrow)),
                    signature: Some(b.signature.as_ref().map_or(Str::from(""), Str::reborrow)),
                    ..ContentBlock::default()
                });
            }
            "redacted_thinking" => thinking_blocks.push(ContentBlock {
                kind: Str::from("redacted_thinking"),
                data: Some(b.data.as_ref().map_or(Str::from(""), Str::reborrow)),
                ..ContentBlock::default()
            }),
            // Server-tool and future block types have no OpenAI form.
            _ => {}
        }
    }
    let stop_reason = r.stop_reason.as_deref();
    let finish_reason = if json_answer && stop_reason == Some("tool_use") {
        "stop"
    } else {
        finish_reason_for(stop_reason)
    };
    let refusal = if stop_reason == Some("refusal") {
        r.stop_details
            .as_ref()
            .and_then(|d| d.explanation.as_ref())
            .map(Str::reborrow)
    } else {
        None
    };
    let model = if r.model.is_empty() {
        Str::from(meta.upstream_model.as_str())
    } else {
        r.model.reborrow()
    };
    let out = ChatCompletion {
        id: Str::from(format!("{CHATCMPL_PREFIX}{}", r.id)),
        object: Str::from("chat.completion"),
        created: meta.created,
        model,
        choices: vec![Choice {
            index: 0,
            message: ResponseMessage {
                role: Str::from("assistant"),
                content: join_cow(texts),
                refusal,
                tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                reasoning_content: join(&thinking),
                reasoning: None,
                thinking_blocks: (!thinking_blocks.is_empty()).then_some(thinking_blocks),
            },
            logprobs: None,
            finish_reason: Some(Str::from(finish_reason)),
        }],
        usage: Some(openai_usage(&r.usage)),
        system_fingerprint: None,
    };
    serde_json::to_writer(dst, &out).map_err(|e| TranslateError::internal(e.to_string()))
}

/// Concatenation of `parts` (`None` when there are none), keeping a single part as is.
fn join_cow(mut parts: Vec<Cow<'_, str>>) -> Option<Str<'_>> {
    match parts.len() {
        0 => None,
        1 => parts.pop().map(Str::from),
        _ => Some(Str::from(parts.concat())),
    }
}

/// Concatenation of `parts` (`None` when there are none), borrowing a single part.
fn join<'b>(parts: &[&'b str]) -> Option<Str<'b>> {
    match parts {
        [] => None,
        [one] => Some(Str::from(*one)),
        many => Some(Str::from(many.concat())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::openai_to_anthropic_response;
    use serde_json::{json, Value};

    #[test]
    fn unreadable_bodies_are_502() {
        let meta = RequestMeta::default();
        assert_eq!(
            anthropic_to_openai_response(b"<html>", &meta)
                .unwrap_err()
                .status,
            502
        );
        assert_eq!(
            openai_to_anthropic_response(b"{\"choices\":[]}", &meta)
                .unwrap_err()
                .status,
            502
        );
    }

    #[test]
    fn json_tool_becomes_content() {
        let meta = RequestMeta {
            json_tool: true,
            ..RequestMeta::default()
        };
        let body = json!({"id":"msg_1","model":"c","content":[{"type":"tool_use","id":"t","name":JSON_TOOL_NAME,
            "input":{"a":1}}],"stop_reason":"tool_use","usage":{"input_tokens":1,"output_tokens":2}});
        let out: Value = serde_json::from_slice(
            &anthropic_to_openai_response(&serde_json::to_vec(&body).unwrap(), &meta).unwrap(),
        )
        .unwrap();
        assert_eq!(out["choices"][0]["message"]["content"], json!("{\"a\":1}"));
        assert_eq!(out["choices"][0]["finish_reason"], json!("stop"));
        assert!(out["choices"][0]["message"].get("tool_calls").is_none());
    }

    /// Fuzz find (translate_response): a `tool_use` block without `id` and `name` gave an
    /// OpenAI tool call without them, which OpenAI SDKs reject.
    #[test]
    fn tool_use_without_id_or_name_still_has_both() {
        let body = br#"{"id":"msg_1","content":[{"type":"tool_use"},{"type":"tool_use","id":"","name":"f"}]}"#;
        let out: Value = serde_json::from_slice(
            &anthropic_to_openai_response(body, &RequestMeta::default()).unwrap(),
        )
        .unwrap();
        let calls = &out["choices"][0]["message"]["tool_calls"];
        assert_eq!(calls[0]["id"], json!("call_msg_1_0"));
        assert_eq!(calls[0]["function"]["name"], json!(""));
        assert_eq!(calls[1]["id"], json!("call_msg_1_1"));
        assert_eq!(calls[1]["function"]["name"], json!("f"));
    }
}
