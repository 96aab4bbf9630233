//! OpenAI chunks (upstream) → Anthropic SSE (client): the state machine of spec §14.2.
//!
//! Fed one decoded SSE event at a time, it appends complete `event: …\ndata: …\n\n` frames
//! to `out` and never fails. Blocks are opened lazily (never for an empty delta), numbered
//! 0,1,2… in start order, and each closed exactly once; `message_delta` waits for `[DONE]`
//! because OpenAI's usage chunk follows the finish chunk.
//!
//! Parallel tool calls: Anthropic blocks are sequential, so one call at a time streams live
//! in the open block. A call that starts once the live call's arguments form a whole JSON
//! object or array is the ordinary sequential case (OpenAI's own parallel calls): the live
//! block closes and the new call streams live, fragment by fragment. A call that starts while
//! the live call is still mid-JSON means the upstream interleaves calls: the live call keeps
//! streaming in its still-open block, and that call and every later one is held back whole
//! (at most [`MAX_HELD_TOOL_BYTES`]) until `finish_reason` or `[DONE]`, then sent in order of
//! first appearance as start, one `input_json_delta`, stop. Held calls are never sent on an
//! error (their arguments may be cut); the error message counts them instead.

use crate::wire::openai::{Chunk, ToolCall, Usage};

use super::response::MSG_PREFIX;
use crate::translate::emit::{anthropic_frame, push_str, push_u64};
use crate::translate::error::anthropic_type_for_openai_error;
use crate::translate::util::{anthropic_usage, sanitize_tool_id, stop_reason_for};
use crate::translate::{RequestMeta, MAX_HELD_TOOL_BYTES, MAX_STREAM_BLOCKS};

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
    state: ToolState,
}

/// Whether a tool call's client block exists yet.
enum ToolState {
    /// Its block has been started (it may be open or already closed).
    Sent,
    /// Held back because the upstream interleaves calls: client id, restored name and the
    /// arguments so far, sent whole at the finish.
    Held {
        id: String,
        name: String,
        args: String,
    },
}

/// How far the live call's arguments have got, scanned just enough to tell whether they
/// already form one whole JSON object or array: then they cannot grow into valid JSON, so
/// another call starting means a sequential upstream, not an interleaving one.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum ArgsScan {
    /// Nothing but whitespace yet.
    #[default]
    Empty,
    /// Inside an object or array.
    Nested {
        depth: u32,
        in_string: bool,
        escaped: bool,
    },
    /// One whole object or array, then at most whitespace.
    Whole,
    /// Anything else (a top-level scalar, bytes after a whole value). Never judged whole:
    /// holding the next call back only costs latency, closing a call that still grows
    /// would cost its bytes.
    Other,
}

impl ArgsScan {
    fn push(&mut self, fragment: &str) {
        // Multi-byte UTF-8 never contains ASCII bytes, so scanning bytes is exact.
        for &b in fragment.as_bytes() {
            *self = match *self {
                ArgsScan::Empty | ArgsScan::Whole if b.is_ascii_whitespace() => *self,
                ArgsScan::Empty if b == b'{' || b == b'[' => ArgsScan::Nested {
                    depth: 1,
                    in_string: false,
                    escaped: false,
                },
                ArgsScan::Nested {
                    depth,
                    in_string: true,
                    escaped,
                } => ArgsScan::Nested {
                    depth,
                    in_string: escaped || b != b'"',
                    escaped: !escaped && b == b'\\',
                },
                ArgsScan::Nested { depth, .. } => match b {
                    b'"' => ArgsScan::Nested {
                        depth,
                        in_string: true,
                        escaped: false,
                    },
                    b'{' | b'[' => ArgsScan::Nested {
                        depth: depth.saturating_add(1),
                        in_string: false,
                        escaped: false,
                    },
                    b'}' | b']' if depth <= 1 => ArgsScan::Whole,
                    b'}' | b']' => ArgsScan::Nested {
                        depth: depth - 1,
                        in_string: false,
                        escaped: false,
                    },
                    _ => *self,
                },
                _ => ArgsScan::Other,
            };
            if *self == ArgsScan::Other {
                return;
            }
        }
    }
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
    /// Arguments of the tool call in the open block (if it is one).
    live_args: ArgsScan,
    /// Set once the upstream interleaves calls; every call started from then on is held.
    interleaved: bool,
    /// Bytes of held calls, at most `held_limit`.
    held_bytes: usize,
    /// [`MAX_HELD_TOOL_BYTES`] unless a test lowers it.
    held_limit: usize,
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
            live_args: ArgsScan::Empty,
            interleaved: false,
            held_bytes: 0,
            held_limit: MAX_HELD_TOOL_BYTES,
            finish_reason: None,
            refused: false,
            usage: None,
            done: false,
        }
    }

    /// The same translator holding back at most `bytes` of interleaved tool calls instead of
    /// [`MAX_HELD_TOOL_BYTES`] (lets tests reach the limit with small inputs).
    pub fn with_held_tool_limit(mut self, bytes: usize) -> Self {
        self.held_limit = bytes;
        self
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
        let chunk: Chunk<'_> = match crate::wire::openai_chunk(data) {
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
                self.release_held(out);
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
        // Held calls are not sent (their arguments may be cut), but never dropped silently.
        let held = self
            .tools
            .iter()
            .filter(|t| matches!(t.state, ToolState::Held { .. }))
            .count();
        let noted;
        let message = match held {
            0 => message,
            1 => {
                noted = format!("{message} (1 interleaved tool call was held back and not sent)");
                &noted
            }
            n => {
                noted =
                    format!("{message} ({n} interleaved tool calls were held back and not sent)");
                &noted
            }
        };
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
            stop_frame(out, open.index);
        }
    }

    /// Closes the open block, then sends each held call whole, in order of first appearance.
    fn release_held(&mut self, out: &mut Vec<u8>) {
        self.close_open(out);
        for tool in &mut self.tools {
            let ToolState::Held { id, name, args } =
                std::mem::replace(&mut tool.state, ToolState::Sent)
            else {
                continue;
            };
            let index = self.next_index;
            self.next_index += 1;
            tool_start_frame(out, index, &id, &name);
            if !args.is_empty() {
                delta_frame(out, index, "input_json_delta", "partial_json", &args);
            }
            stop_frame(out, index);
        }
        self.interleaved = false;
        self.held_bytes = 0;
    }

    /// Counts `n` more held bytes; past the limit the stream fails instead.
    fn reserve_held(&mut self, n: usize, out: &mut Vec<u8>) -> bool {
        self.held_bytes = self.held_bytes.saturating_add(n);
        if self.held_bytes <= self.held_limit {
            return true;
        }
        let message = format!(
            "interleaved tool calls held back exceed {} bytes",
            self.held_limit
        );
        self.error(out, "api_error", &message);
        false
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
            None => match self.new_tool(call, key, id, out) {
                Some(slot) => slot,
                None => return,
            },
        };
        let Some(args) = args else { return };
        if let Some(open) = self
            .open
            .as_ref()
            .filter(|o| o.kind == OpenKind::Tool(slot))
        {
            delta_frame(out, open.index, "input_json_delta", "partial_json", args);
            self.live_args.push(args);
            return;
        }
        let held = |t: &ToolSlot| matches!(t.state, ToolState::Held { .. });
        if !self.tools.get(slot).is_some_and(held) {
            // Its block closed (text came between, or its arguments looked whole): the
            // fragment cannot be placed; fail loudly rather than corrupt the call.
            return self.error(
                out,
                "api_error",
                "upstream sent arguments for a tool call already closed",
            );
        }
        if !self.reserve_held(args.len(), out) {
            return;
        }
        if let Some(ToolSlot {
            state: ToolState::Held { args: buf, .. },
            ..
        }) = self.tools.get_mut(slot)
        {
            buf.push_str(args);
        }
    }

    /// Records a call's first fragment: streamed live in a new block, or held back if the
    /// upstream interleaves. None once the stream has failed.
    fn new_tool(
        &mut self,
        call: &ToolCall<'_>,
        key: u32,
        id: Option<&str>,
        out: &mut Vec<u8>,
    ) -> Option<usize> {
        if self.tools.len() >= MAX_STREAM_BLOCKS {
            self.error(out, "api_error", "too many tool calls");
            return None;
        }
        let slot = self.tools.len();
        let id_out = match id {
            Some(id) => id.to_owned(),
            None => {
                let raw = format!(
                    "toolu_{}_{slot}",
                    self.msg_id.trim_start_matches(MSG_PREFIX)
                );
                sanitize_tool_id(&raw).into_owned()
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
            .map_or(name, |(_, orig)| orig.as_str())
            .to_owned();
        let live_tool_open = self
            .open
            .as_ref()
            .is_some_and(|o| matches!(o.kind, OpenKind::Tool(_)));
        // The live call may still grow, so it cannot close: the upstream interleaves.
        if live_tool_open && self.live_args != ArgsScan::Whole {
            self.interleaved = true;
        }
        let state = if self.interleaved {
            ToolState::Held {
                id: id_out,
                name,
                args: String::new(),
            }
        } else {
            self.close_open(out);
            let index = self.next_index;
            self.next_index += 1;
            tool_start_frame(out, index, &id_out, &name);
            self.open = Some(OpenBlock {
                index,
                kind: OpenKind::Tool(slot),
            });
            self.live_args = ArgsScan::Empty;
            ToolState::Sent
        };
        let held = match &state {
            ToolState::Held { id, name, .. } => id.len() + name.len(),
            ToolState::Sent => 0,
        };
        self.tools.push(ToolSlot {
            key,
            id: id.unwrap_or("").to_owned(),
            state,
        });
        // Counted after the push so an error for this call still reports it.
        if held > 0 && !self.reserve_held(held, out) {
            return None;
        }
        Some(slot)
    }

    /// `[DONE]` (or EOF after a finish): close, then message_delta with the final usage and
    /// message_stop.
    fn complete(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.start(&Chunk::default(), out);
        }
        self.release_held(out);
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

/// `content_block_start` of a tool_use block.
fn tool_start_frame(out: &mut Vec<u8>, index: u64, id: &str, name: &str) {
    anthropic_frame(out, "content_block_start", |o| {
        o.extend_from_slice(b"{\"type\":\"content_block_start\",\"index\":");
        push_u64(o, index);
        o.extend_from_slice(b",\"content_block\":{\"type\":\"tool_use\",\"id\":");
        push_str(o, id);
        o.extend_from_slice(b",\"name\":");
        push_str(o, name);
        o.extend_from_slice(b",\"input\":{}}}");
    });
}

fn stop_frame(out: &mut Vec<u8>, index: u64) {
    anthropic_frame(out, "content_block_stop", |o| {
        o.extend_from_slice(b"{\"type\":\"content_block_stop\",\"index\":");
        push_u64(o, index);
        o.push(b'}');
    });
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
mod tests {
    use super::*;
    use crate::translate::check::{self, check_anthropic_stream};

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

    /// One chunk carrying one tool-call fragment (`id`/`name` only when given).
    fn tool_chunk(index: u32, id: Option<&str>, args: Option<&str>) -> String {
        let mut call = serde_json::json!({"index": index, "function": {}});
        if let Some(id) = id {
            call["id"] = id.into();
            call["function"]["name"] = format!("fn_{id}").into();
        }
        if let Some(a) = args {
            call["function"]["arguments"] = a.into();
        }
        serde_json::json!({"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [call]}}]})
            .to_string()
    }

    const FINISH: &str =
        r#"{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#;

    /// The client's blocks: (type, tool id or "", concatenated deltas).
    fn blocks(out: &str) -> Vec<(String, String, String)> {
        let mut blocks: Vec<(String, String, String)> = Vec::new();
        for f in check::frames(out.as_bytes()).unwrap() {
            let v: serde_json::Value = serde_json::from_str(f.data).unwrap();
            match f.event {
                Some("content_block_start") => {
                    let b = &v["content_block"];
                    let id = b["id"].as_str().unwrap_or("").to_owned();
                    blocks.push((b["type"].as_str().unwrap().to_owned(), id, String::new()));
                }
                Some("content_block_delta") => {
                    let d = &v["delta"];
                    let piece = ["partial_json", "text", "thinking"]
                        .iter()
                        .find_map(|k| d[*k].as_str())
                        .unwrap();
                    blocks.last_mut().unwrap().2.push_str(piece);
                }
                _ => {}
            }
        }
        blocks
    }

    #[test]
    fn sequential_calls_stream_each_fragment_as_it_arrives() {
        // OpenAI's own parallel calls: one after another. Nothing may be held back.
        let mut m = OpenAiToAnthropicStream::new(&RequestMeta::default());
        let mut out = Vec::new();
        let steps = [
            (
                tool_chunk(0, Some("a"), Some("")),
                "\"type\":\"tool_use\",\"id\":\"a\"",
            ),
            (
                tool_chunk(0, None, Some("{\"x\"")),
                "\"partial_json\":\"{\\\"x\\\"\"",
            ),
            (
                tool_chunk(0, None, Some(":[1,\"}\"]}")),
                "\"partial_json\":\":[1,",
            ),
            (
                tool_chunk(1, Some("b"), Some("{")),
                "\"partial_json\":\"{\"",
            ),
            (tool_chunk(1, None, Some("}")), "\"partial_json\":\"}\""),
        ];
        for (chunk, expect) in &steps {
            let before = out.len();
            m.on_event(None, chunk.as_bytes(), &mut out);
            let new = String::from_utf8_lossy(&out[before..]).into_owned();
            assert!(new.contains(expect), "{chunk} gave {new}");
        }
        assert!(!m.interleaved);
        m.on_event(None, FINISH.as_bytes(), &mut out);
        m.finish(&mut out);
        check_anthropic_stream(&out, true).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            blocks(&text),
            [
                ("tool_use".into(), "a".into(), "{\"x\":[1,\"}\"]}".into()),
                ("tool_use".into(), "b".into(), "{}".into())
            ]
        );
    }

    #[test]
    fn interleaved_live_call_keeps_streaming_and_others_wait_for_the_finish() {
        let mut m = OpenAiToAnthropicStream::new(&RequestMeta::default());
        let mut out = Vec::new();
        m.on_event(
            None,
            tool_chunk(0, Some("a"), Some("{\"p\":")).as_bytes(),
            &mut out,
        );
        m.on_event(
            None,
            tool_chunk(1, Some("b"), Some("{\"q\":")).as_bytes(),
            &mut out,
        );
        assert!(m.interleaved);
        assert!(!String::from_utf8_lossy(&out).contains("\"id\":\"b\""));
        let before = out.len();
        m.on_event(None, tool_chunk(0, None, Some("1}")).as_bytes(), &mut out);
        assert!(String::from_utf8_lossy(&out[before..]).contains("\"partial_json\":\"1}\""));
        m.on_event(None, tool_chunk(1, None, Some("2}")).as_bytes(), &mut out);
        m.on_event(None, FINISH.as_bytes(), &mut out);
        let text = String::from_utf8_lossy(&out).into_owned();
        assert!(
            text.contains("\"id\":\"b\""),
            "held call not sent at finish: {text}"
        );
        m.on_event(None, b"[DONE]", &mut out);
        check_anthropic_stream(&out, true).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            blocks(&text),
            [
                ("tool_use".into(), "a".into(), "{\"p\":1}".into()),
                ("tool_use".into(), "b".into(), "{\"q\":2}".into())
            ]
        );
        assert!(text.contains("\"stop_reason\":\"tool_use\""), "{text}");
    }

    #[test]
    fn any_interleaving_keeps_every_call_whole_and_in_order() {
        // Fragments per call, including an escape and a multi-byte character split apart,
        // a call with no arguments at all, and braces inside strings.
        let calls: [&[&str]; 4] = [
            &["{\"s\":\"}", "{\\\"\\u00", "e9\"", "}"],
            &["{\"t\":\"é", "\"}"],
            &[],
            &["[", "1,{\"u\":[]}", "]"],
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for round in 0..200 {
            let mut next = calls.map(|c| c.iter().copied());
            let mut started = [false; 4];
            let mut chunks = Vec::new();
            if round % 3 == 0 {
                chunks.push(
                    r#"{"id":"c","choices":[{"index":0,"delta":{"content":"hi"}}]}"#.to_owned(),
                );
            }
            // Each call starts before any later call (servers number calls as they start).
            let mut pending: Vec<usize> = (0..4).collect();
            while !pending.is_empty() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let lowest_unstarted = started.iter().position(|s| !s).unwrap_or(4);
                let choices: Vec<usize> = pending
                    .iter()
                    .copied()
                    .filter(|&k| k <= lowest_unstarted)
                    .collect();
                let k = choices[(seed % choices.len() as u64) as usize];
                let frag = next[k].next();
                if !started[k] {
                    started[k] = true;
                    let id = format!("k{k}");
                    chunks.push(tool_chunk(k as u32, Some(&id), frag));
                } else {
                    chunks.push(tool_chunk(k as u32, None, frag));
                }
                if next[k].len() == 0 {
                    pending.retain(|&p| p != k);
                }
            }
            chunks.push(FINISH.to_owned());
            chunks.push("[DONE]".to_owned());
            let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
            let text = feed(&RequestMeta::default(), &refs);
            let mut got = blocks(&text);
            if round % 3 == 0 {
                assert_eq!(got.remove(0), ("text".into(), String::new(), "hi".into()));
            }
            let want: Vec<(String, String, String)> = calls
                .iter()
                .enumerate()
                .map(|(k, c)| ("tool_use".into(), format!("k{k}"), c.concat()))
                .collect();
            assert_eq!(got, want, "round {round}: {chunks:#?}\n{text}");
            assert!(text.contains("\"stop_reason\":\"tool_use\""));
        }
    }

    #[test]
    fn text_between_interleaved_calls_gets_its_own_block() {
        let text = feed(
            &RequestMeta::default(),
            &[
                &tool_chunk(0, Some("a"), Some("{\"p\":")),
                &tool_chunk(1, Some("b"), Some("{}")),
                r#"{"id":"c","choices":[{"index":0,"delta":{"content":"and"}}]}"#,
                FINISH,
                "[DONE]",
            ],
        );
        // The text closes the live call (cut, as the upstream left it); the held call follows.
        assert_eq!(
            blocks(&text),
            [
                ("tool_use".into(), "a".into(), "{\"p\":".into()),
                ("text".into(), String::new(), "and".into()),
                ("tool_use".into(), "b".into(), "{}".into())
            ]
        );
    }

    #[test]
    fn errors_while_calls_are_held_say_so_and_send_none() {
        let held = [
            tool_chunk(0, Some("a"), Some("{")),
            tool_chunk(1, Some("b"), Some("{")),
            tool_chunk(2, Some("c"), None),
        ];
        let run = |end: &dyn Fn(&mut OpenAiToAnthropicStream, &mut Vec<u8>)| {
            let mut m = OpenAiToAnthropicStream::new(&RequestMeta::default());
            let mut out = Vec::new();
            for c in &held {
                m.on_event(None, c.as_bytes(), &mut out);
            }
            end(&mut m, &mut out);
            check_anthropic_stream(&out, true).unwrap();
            String::from_utf8(out).unwrap()
        };
        let note = "(2 interleaved tool calls were held back and not sent)";
        let eof = run(&|m, o| m.finish(o));
        assert!(
            eof.contains(&format!("before finish_reason {note}")),
            "{eof}"
        );
        let reset = run(&|m, o| m.fail("upstream connection reset", o));
        assert!(reset.contains(&format!("reset {note}")), "{reset}");
        let upstream = run(&|m, o| {
            m.on_event(
                None,
                br#"{"error":{"message":"boom","type":"server_error"}}"#,
                o,
            )
        });
        assert!(upstream.contains(&format!("boom {note}")), "{upstream}");
        for out in [eof, reset, upstream] {
            assert!(!out.contains("\"id\":\"b\""), "{out}");
        }
    }

    #[test]
    fn held_bytes_are_bounded() {
        // id "b" + name "fn_b" + "{" = 6 held bytes; then "}" makes 7.
        for (limit, fails) in [(7, false), (6, true)] {
            let mut m =
                OpenAiToAnthropicStream::new(&RequestMeta::default()).with_held_tool_limit(limit);
            let mut out = Vec::new();
            for c in [
                tool_chunk(0, Some("a"), Some("{")),
                tool_chunk(1, Some("b"), Some("{")),
                tool_chunk(1, None, Some("}")),
                FINISH.to_owned(),
            ] {
                m.on_event(None, c.as_bytes(), &mut out);
            }
            m.finish(&mut out);
            check_anthropic_stream(&out, true).unwrap();
            let text = String::from_utf8(out).unwrap();
            let err = "held back exceed";
            assert_eq!(text.contains(err), fails, "limit {limit}: {text}");
            assert_eq!(
                text.contains("message_stop"),
                !fails,
                "limit {limit}: {text}"
            );
        }
        // A call whose first fragment alone overflows is still reported, not lost silently.
        let mut m = OpenAiToAnthropicStream::new(&RequestMeta::default()).with_held_tool_limit(4);
        let mut out = Vec::new();
        for c in [
            tool_chunk(0, Some("a"), Some("{")),
            tool_chunk(1, Some("b"), None),
        ] {
            m.on_event(None, c.as_bytes(), &mut out);
        }
        assert!(String::from_utf8_lossy(&out)
            .contains("exceed 4 bytes (1 interleaved tool call was held back and not sent)"));
        // The default bound is the named constant.
        let mut m = OpenAiToAnthropicStream::new(&RequestMeta::default());
        let mut out = Vec::new();
        let big = "x".repeat(MAX_HELD_TOOL_BYTES);
        for c in [
            tool_chunk(0, Some("a"), Some("{")),
            tool_chunk(1, Some("b"), Some(&big)),
        ] {
            m.on_event(None, c.as_bytes(), &mut out);
        }
        assert!(m.is_done());
        assert!(String::from_utf8_lossy(&out).contains("held back exceed 16777216 bytes"));
    }

    #[test]
    fn args_scan_knows_when_json_is_whole() {
        let scan = |parts: &[&str]| {
            let mut s = ArgsScan::Empty;
            for p in parts {
                s.push(p);
            }
            s == ArgsScan::Whole
        };
        assert!(scan(&["{}"]));
        assert!(scan(&[" {\"a\":", "[1,{}]", "} \n"]));
        assert!(scan(&["{\"a\":\"}]\\\"{\\\\", "\"}"]));
        assert!(scan(&["[]"]));
        assert!(!scan(&[""]));
        assert!(!scan(&["{\"a\":\"}"]));
        assert!(!scan(&["{\"a\":\"\\\"}"]));
        assert!(!scan(&["{\"a\":{}"]));
        assert!(!scan(&["{} x"]));
        assert!(!scan(&["12"]));
        assert!(!scan(&["null"]));
    }
}
