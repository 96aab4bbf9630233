//! OpenAI chunks (upstream) → Anthropic SSE (client): the state machine of spec §14.2.
//!
//! Fed one decoded SSE event at a time, it appends complete `event: …\ndata: …\n\n` frames
//! to `out` and never fails. Blocks are opened lazily (never for an empty delta), numbered
//! 0,1,2… in start order, and each closed exactly once; `message_delta` waits for `[DONE]`
//! because OpenAI's usage chunk follows the finish chunk.

use crate::wire::openai::{Chunk, ToolCall, Usage};

use super::emit::{anthropic_frame, push_str, push_u64};
use super::error::anthropic_type_for_openai_error;
use super::response::MSG_PREFIX;
use super::util::{anthropic_usage, sanitize_tool_id, stop_reason_for};
use super::{RequestMeta, MAX_STREAM_BLOCKS};

#[derive(Clone, Copy, PartialEq, Eq)]
enum OpenKind {
    Thinking,
    Text,
    /// A tool_use block for `tools[slot]`.
    Tool(usize),
}

struct OpenBlock {
    index: u64,
    kind: OpenKind,
}

/// One upstream tool call.
struct ToolSlot {
    /// OpenAI `tool_calls[].index`.
    key: u32,
    /// OpenAI call id (empty if the upstream sent none).
    id: String,
}

/// OpenAI → Anthropic stream translator (one per response).
pub struct OpenAiToAnthropicStream {
    fallback_model: String,
    tool_names: Vec<(String, String)>,
    emit_thinking: bool,
    started: bool,
    msg_id: String,
    next_index: u64,
    open: Option<OpenBlock>,
    tools: Vec<ToolSlot>,
    finish_reason: Option<String>,
    refused: bool,
    usage: Option<Usage>,
    done: bool,
}

impl std::fmt::Debug for OpenAiToAnthropicStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiToAnthropicStream")
            .field("msg_id", &self.msg_id)
            .field("next_index", &self.next_index)
            .field("done", &self.done)
            .finish()
    }
}

impl OpenAiToAnthropicStream {
    /// A translator for the response to the request `meta` describes.
    pub fn new(meta: &RequestMeta) -> Self {
        OpenAiToAnthropicStream {
            fallback_model: meta.upstream_model.clone(),
            tool_names: meta.tool_names.clone(),
            emit_thinking: meta.client_thinking,
            started: false,
            msg_id: String::new(),
            next_index: 0,
            open: None,
            tools: Vec::new(),
            finish_reason: None,
            refused: false,
            usage: None,
            done: false,
        }
    }

    /// True once `message_stop` or an error event has been written.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Translates one upstream event (OpenAI sends no `event:` names; it is ignored).
    pub fn on_event(&mut self, _event: Option<&[u8]>, data: &[u8], out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        let data = data.trim_ascii();
        if data.is_empty() {
            return;
        }
        if data == b"[DONE]" {
            return self.complete(out);
        }
        let chunk: Chunk<'_> = match serde_json::from_slice(data) {
            Ok(c) => c,
            Err(e) => {
                return self.error(out, "api_error", &format!("malformed upstream chunk: {e}"))
            }
        };
        if let Some(e) = &chunk.error {
            let code = e
                .code
                .and_then(|c| serde_json::from_str::<&str>(c.get()).ok());
            let kind = anthropic_type_for_openai_error(e.kind.as_deref(), code);
            return self.error(out, kind, &e.message);
        }
        if !self.started {
            self.start(&chunk, out);
        }
        if let Some(u) = chunk.usage {
            self.usage = Some(u);
        }
        // n>1 is rejected upstream of here; other choices are ignored (spec §14.2).
        for choice in chunk.choices.iter().flatten().filter(|c| c.index == 0) {
            if let Some(delta) = &choice.delta {
                // Anthropic block order within one delta: thinking, text, tool calls.
                let reasoning = delta
                    .reasoning_content
                    .as_deref()
                    .or(delta.reasoning.as_deref());
                if let Some(r) = reasoning.filter(|r| self.emit_thinking && !r.is_empty()) {
                    let index = self.ensure_open(OpenKind::Thinking, out);
                    delta_frame(out, index, "thinking_delta", "thinking", r);
                }
                for text in [delta.content.as_deref(), delta.refusal.as_deref()] {
                    if let Some(t) = text.filter(|t| !t.is_empty()) {
                        let index = self.ensure_open(OpenKind::Text, out);
                        delta_frame(out, index, "text_delta", "text", t);
                    }
                }
                if delta.refusal.as_deref().is_some_and(|r| !r.is_empty()) {
                    self.refused = true;
                }
                for (pos, call) in delta.tool_calls.iter().flatten().enumerate() {
                    self.tool_call(call, pos, out);
                    if self.done {
                        return;
                    }
                }
            }
            if let Some(f) = &choice.finish_reason {
                self.finish_reason = Some(f.to_string());
                self.close_open(out);
            }
        }
    }

    /// Upstream EOF: after a finish_reason the message completes (the usage chunk may be
    /// missing); before one, the stream was cut and becomes an error.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        if self.finish_reason.is_some() {
            self.complete(out);
        } else {
            self.error(
                out,
                "api_error",
                "upstream stream ended before finish_reason",
            );
        }
    }

    /// Gateway-side failure mid-stream (reset, timeout): an error event, then nothing.
    pub fn fail(&mut self, message: &str, out: &mut Vec<u8>) {
        if !self.done {
            self.error(out, "api_error", message);
        }
    }

    fn error(&mut self, out: &mut Vec<u8>, kind: &str, message: &str) {
        anthropic_frame(out, "error", |o| {
            o.extend_from_slice(b"{\"type\":\"error\",\"error\":{\"type\":");
            push_str(o, kind);
            o.extend_from_slice(b",\"message\":");
            push_str(o, message);
            o.extend_from_slice(b"}}");
        });
        self.done = true;
    }

    fn start(&mut self, chunk: &Chunk<'_>, out: &mut Vec<u8>) {
        self.started = true;
        let id = chunk
            .id
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or("stream");
        self.msg_id = format!("{MSG_PREFIX}{id}");
        let model = chunk
            .model
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or(&self.fallback_model);
        anthropic_frame(out, "message_start", |o| {
            o.extend_from_slice(b"{\"type\":\"message_start\",\"message\":{\"id\":");
            push_str(o, &self.msg_id);
            o.extend_from_slice(b",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
            push_str(o, model);
            // Input tokens are unknown until the usage chunk; message_delta carries them.
            o.extend_from_slice(
                b",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":0,\
                  \"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":0}}}",
            );
        });
    }

    /// The index of an open block of `kind`, closing any other open block first.
    fn ensure_open(&mut self, kind: OpenKind, out: &mut Vec<u8>) -> u64 {
        if let Some(open) = &self.open {
            if open.kind == kind {
                return open.index;
            }
        }
        self.close_open(out);
        let index = self.next_index;
        self.next_index += 1;
        anthropic_frame(out, "content_block_start", |o| {
            o.extend_from_slice(b"{\"type\":\"content_block_start\",\"index\":");
            push_u64(o, index);
            o.extend_from_slice(match kind {
                OpenKind::Thinking => b",\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}",
                _ => b",\"content_block\":{\"type\":\"text\",\"text\":\"\"}}",
            });
        });
        self.open = Some(OpenBlock { index, kind });
        index
    }

    fn close_open(&mut self, out: &mut Vec<u8>) {
        if let Some(open) = self.open.take() {
            anthropic_frame(out, "content_block_stop", |o| {
                o.extend_from_slice(b"{\"type\":\"content_block_stop\",\"index\":");
                push_u64(o, open.index);
                o.push(b'}');
            });
        }
    }

    fn tool_call(&mut self, call: &ToolCall<'_>, pos: usize, out: &mut Vec<u8>) {
        let key = call.index.unwrap_or(u32::try_from(pos).unwrap_or(u32::MAX));
        let id = call.id.as_deref().filter(|s| !s.is_empty());
        // A new id under a known index is a new call (some backends reuse index 0).
        let existing = match id {
            Some(id) => self.tools.iter().rposition(|t| t.id == id),
            None => self.tools.iter().rposition(|t| t.key == key),
        };
        let args = call
            .function
            .as_ref()
            .and_then(|f| f.arguments.as_deref())
            .filter(|a| !a.is_empty());
        let slot = match existing {
            Some(slot) => slot,
            None => {
                if self.tools.len() >= MAX_STREAM_BLOCKS {
                    return self.error(out, "api_error", "too many tool calls");
                }
                self.close_open(out);
                let slot = self.tools.len();
                let index = self.next_index;
                self.next_index += 1;
                let generated;
                let id_out = match id {
                    Some(id) => id,
                    None => {
                        let raw = format!(
                            "toolu_{}_{slot}",
                            self.msg_id.trim_start_matches(MSG_PREFIX)
                        );
                        generated = sanitize_tool_id(&raw).into_owned();
                        &generated
                    }
                };
                let name = call
                    .function
                    .as_ref()
                    .and_then(|f| f.name.as_deref())
                    .unwrap_or("");
                let name = self
                    .tool_names
                    .iter()
                    .find(|(s, _)| s == name)
                    .map_or(name, |(_, orig)| orig.as_str());
                anthropic_frame(out, "content_block_start", |o| {
                    o.extend_from_slice(b"{\"type\":\"content_block_start\",\"index\":");
                    push_u64(o, index);
                    o.extend_from_slice(b",\"content_block\":{\"type\":\"tool_use\",\"id\":");
                    push_str(o, id_out);
                    o.extend_from_slice(b",\"name\":");
                    push_str(o, name);
                    o.extend_from_slice(b",\"input\":{}}}");
                });
                self.tools.push(ToolSlot {
                    key,
                    id: id.unwrap_or("").to_owned(),
                });
                self.open = Some(OpenBlock {
                    index,
                    kind: OpenKind::Tool(slot),
                });
                slot
            }
        };
        let Some(args) = args else { return };
        match &self.open {
            Some(open) if open.kind == OpenKind::Tool(slot) => {
                delta_frame(out, open.index, "input_json_delta", "partial_json", args);
            }
            // Arguments for a call whose block is already closed cannot be placed in an
            // Anthropic stream (blocks are sequential); fail loudly rather than corrupt them.
            _ => self.error(
                out,
                "api_error",
                "upstream interleaved arguments of parallel tool calls",
            ),
        }
    }

    /// `[DONE]` (or EOF after a finish): close, then message_delta with the final usage and
    /// message_stop.
    fn complete(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.start(&Chunk::default(), out);
        }
        self.close_open(out);
        let stop_reason = stop_reason_for(self.finish_reason.as_deref(), self.refused);
        let usage = anthropic_usage(self.usage.as_ref());
        anthropic_frame(out, "message_delta", |o| {
            o.extend_from_slice(b"{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":");
            push_str(o, stop_reason);
            o.extend_from_slice(b",\"stop_sequence\":null},\"usage\":{\"input_tokens\":");
            push_u64(o, usage.input_tokens.unwrap_or(0));
            o.extend_from_slice(b",\"cache_creation_input_tokens\":");
            push_u64(o, usage.cache_creation_input_tokens.unwrap_or(0));
            o.extend_from_slice(b",\"cache_read_input_tokens\":");
            push_u64(o, usage.cache_read_input_tokens.unwrap_or(0));
            o.extend_from_slice(b",\"output_tokens\":");
            push_u64(o, usage.output_tokens.unwrap_or(0));
            o.extend_from_slice(b"}}");
        });
        anthropic_frame(out, "message_stop", |o| {
            o.extend_from_slice(b"{\"type\":\"message_stop\"}")
        });
        self.done = true;
    }
}

/// `content_block_delta` with a one-string delta (`{"type":<kind>,<field>:<value>}`).
fn delta_frame(out: &mut Vec<u8>, index: u64, kind: &str, field: &str, value: &str) {
    anthropic_frame(out, "content_block_delta", |o| {
        o.extend_from_slice(b"{\"type\":\"content_block_delta\",\"index\":");
        push_u64(o, index);
        o.extend_from_slice(b",\"delta\":{\"type\":\"");
        o.extend_from_slice(kind.as_bytes());
        o.extend_from_slice(b"\",\"");
        o.extend_from_slice(field.as_bytes());
        o.extend_from_slice(b"\":");
        push_str(o, value);
        o.extend_from_slice(b"}}");
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::translate::check::check_anthropic_stream;

    fn feed(meta: &RequestMeta, chunks: &[&str]) -> String {
        let mut m = OpenAiToAnthropicStream::new(meta);
        let mut out = Vec::new();
        for c in chunks {
            m.on_event(None, c.as_bytes(), &mut out);
        }
        m.finish(&mut out);
        check_anthropic_stream(&out, true).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn empty_deltas_open_no_block() {
        let out = feed(
            &RequestMeta::default(),
            &[
                r#"{"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null}}]}"#,
                r#"{"id":"c","choices":[{"index":0,"delta":{"reasoning_content":"hidden"}}]}"#,
                r#"{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
                "[DONE]",
            ],
        );
        assert!(!out.contains("content_block_start"), "{out}");
        assert!(out.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
    }

    #[test]
    fn usage_after_finish_lands_in_message_delta() {
        let out = feed(
            &RequestMeta::default(),
            &[
                r#"{"id":"c","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"length"}]}"#,
                r#"{"id":"c","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":4}}}"#,
                "[DONE]",
            ],
        );
        assert!(out.contains(r#""stop_reason":"max_tokens""#), "{out}");
        assert!(out.contains(r#""input_tokens":6,"cache_creation_input_tokens":0,"cache_read_input_tokens":4,"output_tokens":1"#), "{out}");
    }

    #[test]
    fn gateway_failure_is_an_error_event() {
        let mut m = OpenAiToAnthropicStream::new(&RequestMeta::default());
        let mut out = Vec::new();
        m.on_event(
            None,
            br#"{"id":"c","choices":[{"index":0,"delta":{"content":"x"}}]}"#,
            &mut out,
        );
        m.fail("upstream timed out", &mut out);
        assert!(m.is_done());
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with(
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"upstream timed out\"}}\n\n"
        ));
    }
}
