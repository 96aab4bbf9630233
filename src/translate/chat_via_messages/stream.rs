//! Anthropic SSE (upstream) → OpenAI chunks (client): the state machine of spec §14.1.
//!
//! Fed one decoded SSE event at a time, it appends complete `data: …\n\n` frames to `out`
//! and never fails: a malformed or truncated upstream becomes an in-stream error frame, and
//! a clean end is always `data: [DONE]`.

use crate::wire::anthropic::{EventDelta, ResponseBlock, StreamEvent, Usage};

use super::response::CHATCMPL_PREFIX;
use crate::translate::emit::{openai_frame, push_key, push_opt_str, push_str, push_u64};
use crate::translate::error::known_anthropic_type;
use crate::translate::util::{finish_reason_for, openai_usage};
use crate::translate::{RequestMeta, JSON_TOOL_NAME, MAX_STREAM_BLOCKS, MAX_THINKING_BYTES};

/// What an Anthropic content block maps to.
enum Kind {
    Text,
    /// A client tool call: its OpenAI `tool_calls[].index`.
    Tool {
        tool_index: u64,
        saw_args: bool,
    },
    /// The `response_format: json_object` tool: streamed as `content`.
    JsonTool {
        saw_args: bool,
    },
    /// Thinking: text streamed as `reasoning_content`, sent whole with its signature at stop.
    Thinking {
        ordinal: u64,
        text: String,
        signature: String,
    },
    /// Redacted thinking or unknown: nothing more to send.
    Inert,
}

struct Block {
    index: u64,
    kind: Kind,
    open: bool,
}

/// Anthropic → OpenAI stream translator (one per response).
pub struct AnthropicToOpenAiStream {
    include_usage: bool,
    json_tool: bool,
    created: u64,
    fallback_model: String,
    /// `message_start` seen.
    started: bool,
    msg_id: String,
    /// `data: {"id":…,"object":…,"created":…,"model":…,"choices":[{"index":0,"delta":`.
    prefix: Vec<u8>,
    blocks: Vec<Block>,
    tool_calls: u64,
    thinking_blocks: u64,
    /// Thinking text held for blocks not yet closed (bounded by [`MAX_THINKING_BYTES`]).
    thinking_buffered: usize,
    usage: Usage,
    finish_sent: bool,
    json_answer: bool,
    done: bool,
}

impl std::fmt::Debug for AnthropicToOpenAiStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnthropicToOpenAiStream")
            .field("msg_id", &self.msg_id)
            .field("blocks", &self.blocks.len())
            .field("done", &self.done)
            .finish()
    }
}

impl AnthropicToOpenAiStream {
    /// A translator for the response to the request `meta` describes.
    pub fn new(meta: &RequestMeta) -> Self {
        AnthropicToOpenAiStream {
            include_usage: meta.include_usage,
            json_tool: meta.json_tool,
            created: meta.created,
            fallback_model: meta.upstream_model.clone(),
            started: false,
            msg_id: String::new(),
            prefix: Vec::new(),
            blocks: Vec::new(),
            tool_calls: 0,
            thinking_blocks: 0,
            thinking_buffered: 0,
            usage: Usage::default(),
            finish_sent: false,
            json_answer: false,
            done: false,
        }
    }

    /// True once a terminator (`[DONE]`) or an error frame has been written.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Translates one upstream event (`event:` name, `data:` payload).
    pub fn on_event(&mut self, event: Option<&[u8]>, data: &[u8], out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        let data = data.trim_ascii();
        if data.is_empty() {
            return;
        }
        let ev: StreamEvent<'_> = match crate::wire::anthropic_event(data) {
            Ok(ev) => ev,
            Err(e) => {
                return self.error(out, "api_error", &format!("malformed upstream event: {e}"))
            }
        };
        let name = match event.filter(|e| !e.is_empty()) {
            Some(e) => std::str::from_utf8(e).unwrap_or(""),
            None => ev.kind.as_deref().unwrap_or(""),
        };
        match name {
            "ping" => out.extend_from_slice(b": ping\n\n"),
            "error" => {
                let (kind, message) = match &ev.error {
                    Some(e) => (
                        known_anthropic_type(&e.kind).unwrap_or("api_error"),
                        e.message.as_str(),
                    ),
                    None => ("api_error", "upstream error"),
                };
                self.error(out, kind, message);
            }
            "message_start" => self.message_start(&ev, out),
            "content_block_start"
            | "content_block_delta"
            | "content_block_stop"
            | "message_delta"
            | "message_stop"
                if !self.started =>
            {
                self.error(
                    out,
                    "api_error",
                    &format!("upstream sent `{name}` before message_start"),
                );
            }
            // Nothing but message_stop may follow the finish chunk (spec §14.2 rule 6 mirrored).
            "content_block_start" | "content_block_delta" | "content_block_stop"
                if self.finish_sent => {}
            "content_block_start" => self.block_start(&ev, out),
            "content_block_delta" => self.block_delta(&ev, out),
            "content_block_stop" => {
                if let Some(pos) = ev.index.and_then(|i| self.find(i)) {
                    self.close(pos, out);
                }
            }
            "message_delta" => self.message_delta(&ev, out),
            "message_stop" => self.message_stop(out),
            // New event types are ignored (spec §1.7).
            _ => {}
        }
    }

    /// Upstream EOF: a stream that has not finished becomes an error, never a clean end.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.done {
            self.error(
                out,
                "api_error",
                "upstream stream ended before message_stop",
            );
        }
    }

    /// Gateway-side failure mid-stream (reset, timeout): an error frame, then nothing.
    pub fn fail(&mut self, message: &str, out: &mut Vec<u8>) {
        if !self.done {
            self.error(out, "api_error", message);
        }
    }

    fn error(&mut self, out: &mut Vec<u8>, kind: &str, message: &str) {
        openai_frame(out, |o| {
            o.extend_from_slice(b"{\"error\":{\"message\":");
            push_str(o, message);
            o.extend_from_slice(b",\"type\":");
            push_str(o, kind);
            o.extend_from_slice(b",\"param\":null,\"code\":null}}");
        });
        self.done = true;
    }

    fn message_start(&mut self, ev: &StreamEvent<'_>, out: &mut Vec<u8>) {
        let Some(m) = &ev.message else {
            return self.error(out, "api_error", "message_start without message");
        };
        let id = m.id.as_deref().unwrap_or("");
        if self.started {
            // A repeated message_start with the same id is a proxy artefact (spec §16.29).
            if id != self.msg_id {
                self.error(
                    out,
                    "api_error",
                    "upstream started a second message mid-stream",
                );
            }
            return;
        }
        self.started = true;
        self.msg_id = id.to_owned();
        let model = m
            .model
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or(&self.fallback_model);
        let mut p = Vec::with_capacity(128 + id.len() + model.len());
        p.extend_from_slice(b"data: {\"id\":\"");
        crate::translate::emit::push_str_contents(&mut p, CHATCMPL_PREFIX);
        crate::translate::emit::push_str_contents(&mut p, id);
        p.extend_from_slice(b"\",\"object\":\"chat.completion.chunk\",\"created\":");
        push_u64(&mut p, self.created);
        p.extend_from_slice(b",\"model\":");
        push_str(&mut p, model);
        p.extend_from_slice(b",\"choices\":[{\"index\":0,\"delta\":");
        self.prefix = p;
        if let Some(u) = &m.usage {
            merge_usage(&mut self.usage, u);
        }
        self.chunk(out, None, |o| {
            o.extend_from_slice(b"{\"role\":\"assistant\",\"content\":\"\"}")
        });
    }

    /// Writes one chunk: the shared prefix, the delta object, the finish reason.
    fn chunk(&self, out: &mut Vec<u8>, finish: Option<&str>, delta: impl FnOnce(&mut Vec<u8>)) {
        out.extend_from_slice(&self.prefix);
        delta(out);
        out.extend_from_slice(b",\"logprobs\":null,\"finish_reason\":");
        push_opt_str(out, finish);
        out.extend_from_slice(b"}]");
        if self.include_usage {
            out.extend_from_slice(b",\"usage\":null");
        }
        out.extend_from_slice(b"}\n\n");
    }

    fn content_chunk(&self, out: &mut Vec<u8>, field: &str, text: &str) {
        self.chunk(out, None, |o| {
            o.push(b'{');
            push_key(o, field);
            push_str(o, text);
            o.push(b'}');
        });
    }

    fn args_chunk(&self, out: &mut Vec<u8>, tool_index: u64, args: &str) {
        self.chunk(out, None, |o| {
            o.extend_from_slice(b"{\"tool_calls\":[{\"index\":");
            push_u64(o, tool_index);
            o.extend_from_slice(b",\"function\":{\"arguments\":");
            push_str(o, args);
            o.extend_from_slice(b"}}]}");
        });
    }

    fn find(&self, index: u64) -> Option<usize> {
        self.blocks.iter().rposition(|b| b.index == index)
    }

    fn block_start(&mut self, ev: &StreamEvent<'_>, out: &mut Vec<u8>) {
        let (Some(index), Some(block)) = (ev.index, &ev.content_block) else {
            return self.error(
                out,
                "api_error",
                "content_block_start without index or content_block",
            );
        };
        if self.find(index).is_some() {
            return self.error(out, "api_error", "upstream reopened a content block");
        }
        if self.blocks.len() >= MAX_STREAM_BLOCKS {
            return self.error(out, "api_error", "too many content blocks");
        }
        let kind = match block.kind.as_str() {
            "text" => {
                if let Some(t) = block.text.as_deref().filter(|t| !t.is_empty()) {
                    self.content_chunk(out, "content", t);
                }
                Kind::Text
            }
            "tool_use" if self.json_tool && block.name.as_deref() == Some(JSON_TOOL_NAME) => {
                self.json_answer = true;
                let args = initial_args(block);
                if let Some(a) = args {
                    self.content_chunk(out, "content", a);
                }
                Kind::JsonTool {
                    saw_args: args.is_some(),
                }
            }
            "tool_use" => self.tool_start(index, block, out),
            "thinking" => {
                let ordinal = self.thinking_blocks;
                self.thinking_blocks += 1;
                let text = block.thinking.as_deref().unwrap_or("");
                if !text.is_empty() {
                    self.content_chunk(out, "reasoning_content", text);
                }
                let signature = block.signature.as_deref().unwrap_or("");
                self.thinking_buffered = self
                    .thinking_buffered
                    .saturating_add(text.len() + signature.len());
                Kind::Thinking {
                    ordinal,
                    text: text.to_owned(),
                    signature: signature.to_owned(),
                }
            }
            "redacted_thinking" => {
                let ordinal = self.thinking_blocks;
                self.thinking_blocks += 1;
                let data = block.data.as_deref().unwrap_or("");
                self.chunk(out, None, |o| {
                    o.extend_from_slice(b"{\"thinking_blocks\":[{\"index\":");
                    push_u64(o, ordinal);
                    o.extend_from_slice(b",\"type\":\"redacted_thinking\",\"data\":");
                    push_str(o, data);
                    o.extend_from_slice(b"}]}");
                });
                Kind::Inert
            }
            _ => Kind::Inert,
        };
        self.blocks.push(Block {
            index,
            kind,
            open: true,
        });
    }

    fn tool_start(&mut self, index: u64, block: &ResponseBlock<'_>, out: &mut Vec<u8>) -> Kind {
        let tool_index = self.tool_calls;
        self.tool_calls += 1;
        let generated;
        let id = match block.id.as_deref().filter(|s| !s.is_empty()) {
            Some(id) => id,
            None => {
                generated = format!("toolu_{index}");
                &generated
            }
        };
        let name = block.name.as_deref().unwrap_or("");
        // The only chunk of this call that carries id, type and name (spec §16.10).
        self.chunk(out, None, |o| {
            o.extend_from_slice(b"{\"tool_calls\":[{\"index\":");
            push_u64(o, tool_index);
            o.extend_from_slice(b",\"id\":");
            push_str(o, id);
            o.extend_from_slice(b",\"type\":\"function\",\"function\":{\"name\":");
            push_str(o, name);
            o.extend_from_slice(b",\"arguments\":\"\"}}]}");
        });
        let args = initial_args(block);
        if let Some(a) = args {
            self.args_chunk(out, tool_index, a);
        }
        Kind::Tool {
            tool_index,
            saw_args: args.is_some(),
        }
    }

    fn block_delta(&mut self, ev: &StreamEvent<'_>, out: &mut Vec<u8>) {
        let (Some(pos), Some(delta)) = (ev.index.and_then(|i| self.find(i)), &ev.delta) else {
            return; // a delta for no known block has nowhere to go
        };
        let Some(block) = self.blocks.get(pos).filter(|b| b.open) else {
            return;
        };
        match (&block.kind, delta.kind.as_deref()) {
            (Kind::Text, Some("text_delta")) => {
                if let Some(t) = delta.text.as_deref().filter(|t| !t.is_empty()) {
                    self.content_chunk(out, "content", t);
                }
            }
            (Kind::Tool { tool_index, .. }, Some("input_json_delta")) => {
                let tool_index = *tool_index;
                if let Some(a) = nonempty(delta.partial_json.as_deref()) {
                    self.args_chunk(out, tool_index, a);
                    self.set_saw_args(pos);
                }
            }
            (Kind::JsonTool { .. }, Some("input_json_delta")) => {
                if let Some(a) = nonempty(delta.partial_json.as_deref()) {
                    self.content_chunk(out, "content", a);
                    self.set_saw_args(pos);
                }
            }
            (Kind::Thinking { .. }, Some("thinking_delta" | "signature_delta")) => {
                self.thinking_delta(pos, delta, out)
            }
            // citations_delta and future delta types have no OpenAI form.
            _ => {}
        }
    }

    fn thinking_delta(&mut self, pos: usize, delta: &EventDelta<'_>, out: &mut Vec<u8>) {
        if let Some(t) = nonempty(delta.thinking.as_deref()) {
            self.content_chunk(out, "reasoning_content", t);
        }
        if let Some(Kind::Thinking {
            text, signature, ..
        }) = self.blocks.get_mut(pos).map(|b| &mut b.kind)
        {
            let before = text.len() + signature.len();
            if let Some(t) = delta.thinking.as_deref() {
                text.push_str(t);
            }
            if let Some(s) = delta.signature.as_deref() {
                // signature_delta replaces (SDK accumulator semantics).
                s.clone_into(signature);
            }
            let after = text.len() + signature.len();
            self.thinking_buffered = self
                .thinking_buffered
                .saturating_add(after)
                .saturating_sub(before);
        }
        let too_big = self.thinking_buffered > MAX_THINKING_BYTES;
        if too_big {
            self.error(
                out,
                "api_error",
                "thinking block exceeds the gateway's buffer limit",
            );
        }
    }

    fn set_saw_args(&mut self, pos: usize) {
        if let Some(b) = self.blocks.get_mut(pos) {
            if let Kind::Tool { saw_args, .. } | Kind::JsonTool { saw_args } = &mut b.kind {
                *saw_args = true;
            }
        }
    }

    /// Ends block `pos`: a tool call without arguments gets `{}`; a thinking block is sent
    /// whole with its signature.
    fn close(&mut self, pos: usize, out: &mut Vec<u8>) {
        let Some(block) = self.blocks.get_mut(pos).filter(|b| b.open) else {
            return;
        };
        block.open = false;
        let kind = std::mem::replace(&mut block.kind, Kind::Inert);
        match kind {
            Kind::Tool {
                tool_index,
                saw_args: false,
            } => self.args_chunk(out, tool_index, "{}"),
            Kind::JsonTool { saw_args: false } => self.content_chunk(out, "content", "{}"),
            Kind::Thinking {
                ordinal,
                text,
                signature,
            } => {
                self.thinking_buffered = self
                    .thinking_buffered
                    .saturating_sub(text.len() + signature.len());
                self.chunk(out, None, |o| {
                    o.extend_from_slice(b"{\"thinking_blocks\":[{\"index\":");
                    push_u64(o, ordinal);
                    o.extend_from_slice(b",\"type\":\"thinking\",\"thinking\":");
                    push_str(o, &text);
                    o.extend_from_slice(b",\"signature\":");
                    push_str(o, &signature);
                    o.extend_from_slice(b"}]}");
                });
            }
            _ => {}
        }
    }

    fn close_all(&mut self, out: &mut Vec<u8>) {
        for pos in 0..self.blocks.len() {
            self.close(pos, out);
        }
    }

    fn message_delta(&mut self, ev: &StreamEvent<'_>, out: &mut Vec<u8>) {
        // A stream cut by max_tokens may skip content_block_stop (spec §16.13).
        self.close_all(out);
        if let Some(u) = &ev.usage {
            merge_usage(&mut self.usage, u);
        }
        let Some(delta) = &ev.delta else { return };
        let Some(stop) = delta.stop_reason.as_deref() else {
            return;
        };
        if self.finish_sent {
            return;
        }
        if stop == "refusal" {
            let explanation = delta
                .stop_details
                .as_ref()
                .and_then(|d| d.explanation.as_deref());
            if let Some(e) = nonempty(explanation) {
                self.content_chunk(out, "refusal", e);
            }
        }
        let finish = if self.json_answer && stop == "tool_use" {
            "stop"
        } else {
            finish_reason_for(Some(stop))
        };
        self.chunk(out, Some(finish), |o| o.extend_from_slice(b"{}"));
        self.finish_sent = true;
    }

    fn message_stop(&mut self, out: &mut Vec<u8>) {
        self.close_all(out);
        if !self.finish_sent {
            self.chunk(out, Some("stop"), |o| o.extend_from_slice(b"{}"));
            self.finish_sent = true;
        }
        if self.include_usage {
            let usage = openai_usage(&self.usage);
            let prefix = self
                .prefix
                .strip_suffix(b"[{\"index\":0,\"delta\":".as_slice())
                .unwrap_or(&self.prefix);
            out.extend_from_slice(prefix);
            out.extend_from_slice(b"[],\"usage\":");
            // Serialising plain integers into a Vec cannot fail.
            if serde_json::to_writer(&mut *out, &usage).is_err() {
                out.extend_from_slice(b"null");
            }
            out.extend_from_slice(b"}\n\n");
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        self.done = true;
    }
}

/// Cumulative usage: every field present replaces the previous value (spec §14.1).
pub(crate) fn merge_usage(acc: &mut Usage, u: &Usage) {
    if u.input_tokens.is_some() {
        acc.input_tokens = u.input_tokens;
    }
    if u.cache_creation_input_tokens.is_some() {
        acc.cache_creation_input_tokens = u.cache_creation_input_tokens;
    }
    if u.cache_read_input_tokens.is_some() {
        acc.cache_read_input_tokens = u.cache_read_input_tokens;
    }
    if u.output_tokens.is_some() {
        acc.output_tokens = u.output_tokens;
    }
    if u.output_tokens_details.is_some() {
        acc.output_tokens_details
            .clone_from(&u.output_tokens_details);
    }
}

fn nonempty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

/// Arguments carried whole in a `content_block_start` (some proxies do this); the usual
/// empty `{}` is not an argument text.
pub(crate) fn initial_args<'b>(block: &'b ResponseBlock<'_>) -> Option<&'b str> {
    let raw = block.input?.get();
    let inner = raw.strip_prefix('{')?.strip_suffix('}')?;
    (!inner.trim().is_empty()).then_some(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::check::check_openai_stream;

    fn feed(meta: &RequestMeta, events: &[(&str, &str)]) -> (Vec<u8>, bool) {
        let mut m = AnthropicToOpenAiStream::new(meta);
        let mut out = Vec::new();
        for (e, d) in events {
            m.on_event(Some(e.as_bytes()), d.as_bytes(), &mut out);
        }
        let done = m.is_done();
        m.finish(&mut out);
        (out, done)
    }

    const TEXT: [(&str, &str); 5] = [
        (
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_1","model":"c","usage":{"input_tokens":3}}}"#,
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}"#,
        ),
        (
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}}"#,
        ),
        ("message_stop", r#"{"type":"message_stop"}"#),
    ];

    #[test]
    fn usage_chunk_only_when_asked() {
        let (with, done) = feed(
            &RequestMeta {
                include_usage: true,
                ..RequestMeta::default()
            },
            &TEXT,
        );
        assert!(done);
        check_openai_stream(&with, true).unwrap();
        let with = String::from_utf8(with).unwrap();
        assert!(
            with.contains(r#""choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2"#),
            "{with}"
        );
        let (without, _) = feed(&RequestMeta::default(), &TEXT);
        let without = String::from_utf8(without).unwrap();
        assert!(!without.contains("usage"), "{without}");
        assert!(without.ends_with("data: [DONE]\n\n"));
    }

    #[test]
    fn nothing_after_the_end() {
        let meta = RequestMeta::default();
        let mut m = AnthropicToOpenAiStream::new(&meta);
        let mut out = Vec::new();
        for (e, d) in TEXT {
            m.on_event(Some(e.as_bytes()), d.as_bytes(), &mut out);
        }
        let len = out.len();
        m.fail("late", &mut out);
        m.finish(&mut out);
        m.on_event(Some(b"ping"), br#"{"type":"ping"}"#, &mut out);
        assert_eq!(out.len(), len);
    }

    #[test]
    fn thinking_buffer_is_bounded_per_open_blocks() {
        let piece = "x".repeat(1 << 20);
        let start = |i: usize| {
            format!(
                r#"{{"type":"content_block_start","index":{i},"content_block":{{"type":"thinking","thinking":"","signature":""}}}}"#
            )
        };
        let delta = |i: usize| {
            format!(
                r#"{{"type":"content_block_delta","index":{i},"delta":{{"type":"thinking_delta","thinking":"{piece}"}}}}"#
            )
        };
        let stop = |i: usize| format!(r#"{{"type":"content_block_stop","index":{i}}}"#);
        let run = |blocks: usize, per_block: usize| {
            let mut m = AnthropicToOpenAiStream::new(&RequestMeta::default());
            let mut out = Vec::new();
            m.on_event(Some(b"message_start"), TEXT[0].1.as_bytes(), &mut out);
            for b in 0..blocks {
                m.on_event(None, start(b).as_bytes(), &mut out);
                for _ in 0..per_block {
                    m.on_event(None, delta(b).as_bytes(), &mut out);
                }
                m.on_event(None, stop(b).as_bytes(), &mut out);
            }
            m.is_done()
        };
        let limit_mib = MAX_THINKING_BYTES >> 20;
        // Closed blocks release their buffer; one block over the limit ends the stream.
        assert!(!run(2, limit_mib - 1));
        assert!(run(1, limit_mib + 1));
    }

    #[test]
    fn cut_stream_is_an_error() {
        let (out, done) = feed(&RequestMeta::default(), &TEXT[..3]);
        assert!(!done);
        let out = String::from_utf8(out).unwrap();
        assert!(out.ends_with("\"param\":null,\"code\":null}}\n\n"), "{out}");
        assert!(!out.contains("[DONE]"));
    }
}
