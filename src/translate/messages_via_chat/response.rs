//! A Chat Completions answer as an Anthropic Messages response (spec §6, §7, §8).

use crate::wire::anthropic::{ContentBlock, MessageOut};
use crate::wire::openai::ChatCompletion;
use crate::wire::Str;

use crate::translate::util::{
    anthropic_usage, arguments_as_input, sanitize_tool_id, stop_reason_for,
};
use crate::translate::{RequestMeta, TranslateError};

/// Prefix of Anthropic message ids made from OpenAI completion ids (`msg_chatcmpl-…`).
pub(crate) const MSG_PREFIX: &str = "msg_";

/// Translates an OpenAI chat completion body into an Anthropic Messages response.
pub fn openai_to_anthropic_response(
    body: &[u8],
    meta: &RequestMeta,
) -> Result<Vec<u8>, TranslateError> {
    let mut dst = Vec::new();
    openai_to_anthropic_response_into(body, meta, &mut dst)?;
    Ok(dst)
}

/// [`openai_to_anthropic_response`] appending to `dst` (see
/// [`anthropic_to_openai_response_into`]).
pub fn openai_to_anthropic_response_into(
    body: &[u8],
    meta: &RequestMeta,
    dst: &mut Vec<u8>,
) -> Result<(), TranslateError> {
    let r: ChatCompletion<'_> = serde_json::from_slice(body)
        .map_err(|e| TranslateError::upstream(format!("unreadable OpenAI response: {e}")))?;
    let choice = r
        .choices
        .iter()
        .find(|c| c.index == 0)
        .or_else(|| r.choices.first())
        .ok_or_else(|| TranslateError::upstream("OpenAI response has no choices"))?;
    let m = &choice.message;
    let mut content: Vec<ContentBlock<'_>> = Vec::new();
    let reasoning = m
        .reasoning_content
        .as_ref()
        .or(m.reasoning.as_ref())
        .filter(|t| !t.is_empty());
    if let (true, Some(t)) = (meta.client_thinking, reasoning) {
        // Unsigned: OpenAI-side reasoning has no Anthropic signature (spec §6).
        content.push(ContentBlock {
            kind: Str::from("thinking"),
            thinking: Some(t.reborrow()),
            signature: Some(Str::from("")),
            ..ContentBlock::default()
        });
    }
    if let Some(t) = m.content.as_ref().filter(|t| !t.is_empty()) {
        content.push(text(t.reborrow()));
    }
    let refused = m.refusal.as_ref().is_some_and(|r| !r.is_empty());
    if let Some(r) = m.refusal.as_ref().filter(|r| !r.is_empty()) {
        content.push(text(r.reborrow()));
    }
    for (k, call) in m.tool_calls.iter().flatten().enumerate() {
        let f = call.function.as_ref();
        let id = match call.id.as_ref().filter(|id| !id.is_empty()) {
            Some(id) => id.reborrow(),
            // Unique within the conversation, and a legal Anthropic id.
            None => Str::from(sanitize_tool_id(&format!("toolu_{}_{k}", r.id)).into_owned()),
        };
        let name = f.and_then(|f| f.name.as_deref()).unwrap_or("");
        content.push(ContentBlock {
            kind: Str::from("tool_use"),
            id: Some(id),
            name: Some(Str::from(meta.client_tool_name(name))),
            input: arguments_as_input(f.and_then(|f| f.arguments.as_deref())),
            ..ContentBlock::default()
        });
    }
    let model = if r.model.is_empty() {
        Str::from(meta.upstream_model.as_str())
    } else {
        r.model.reborrow()
    };
    let out = MessageOut {
        id: Str::from(format!("{MSG_PREFIX}{}", r.id)),
        kind: "message",
        role: "assistant",
        model,
        content,
        stop_reason: Some(stop_reason_for(choice.finish_reason.as_deref(), refused)),
        stop_sequence: None,
        usage: anthropic_usage(r.usage.as_ref()),
    };
    serde_json::to_writer(dst, &out).map_err(|e| TranslateError::internal(e.to_string()))
}

fn text(t: Str<'_>) -> ContentBlock<'_> {
    ContentBlock {
        kind: Str::from("text"),
        text: Some(t),
        ..ContentBlock::default()
    }
}
