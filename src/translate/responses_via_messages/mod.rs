//! Anthropic Messages answers (whole, or as SSE events) → Responses output, through the one
//! renderer. A thinking block becomes a `reasoning` item whose `encrypted_content` seals the
//! block and its signature, so the next turn can hand it back to the same provider.

use std::borrow::Cow;

use crate::wire::anthropic::{MessageResponse, ResponseBlock, StreamEvent, Usage as AUsage};

use crate::seal::Purpose;
use crate::translate::chat_via_messages::stream::{initial_args, merge_usage};
use crate::translate::responses::render::{End, Usage, Writer};
use crate::translate::responses::{ResponsesMeta, SealedThinking};
use crate::translate::util::compact_json;
use crate::translate::{RequestMeta, TranslateError, JSON_TOOL_NAME, MAX_THINKING_BYTES};

/// What one Anthropic content block became.
enum Block {
    Text,
    /// A client tool call: the renderer's handle.
    Call(Option<usize>),
    /// The `json_object` stand-in tool: its input is the answer's text.
    JsonTool,
    /// Thinking: its reasoning item, and the block kept whole for the seal.
    Thinking {
        handle: Option<usize>,
        text: String,
        signature: String,
    },
    /// A web search the provider runs: its input, for the query.
    WebSearch(String),
    Inert,
}

/// The Responses usage for Anthropic's.
fn usage(u: &AUsage) -> Usage {
    let cached = u.cache_read_input_tokens.unwrap_or(0);
    Usage {
        cache_write: u.cache_creation_input_tokens.unwrap_or(0),
        input: u
            .input_tokens
            .unwrap_or(0)
            .saturating_add(cached)
            .saturating_add(u.cache_creation_input_tokens.unwrap_or(0)),
        cached,
        output: u.output_tokens.unwrap_or(0),
        reasoning: u
            .output_tokens_details
            .as_ref()
            .and_then(|d| d.thinking_tokens)
            .unwrap_or(0),
    }
}

fn end_for(stop_reason: Option<&str>) -> End {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => End::MaxTokens,
        Some("refusal") => End::ContentFilter,
        _ => End::Completed,
    }
}

/// The sealed form of a thinking block for `meta`'s provider (None without a key).
fn seal(meta: &ResponsesMeta, kind: &str, text: Option<&str>, sig_or_data: &str) -> Option<String> {
    let key = meta.seal.as_ref()?;
    let (t, s, d) = if kind == "redacted_thinking" {
        (None, None, Some(sig_or_data.to_owned()))
    } else {
        (
            Some(text.unwrap_or("").to_owned()),
            Some(sig_or_data.to_owned()),
            None,
        )
    };
    let plain = serde_json::to_vec(&SealedThinking {
        p: meta.provider.clone(),
        k: kind.to_owned(),
        t,
        s,
        d,
        x: meta.pii.on,
    })
    .ok()?;
    key.seal(Purpose::Reasoning, &plain)
}

/// The web search query in a `server_tool_use` input.
fn search_query(input: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Input {
        #[serde(default)]
        query: String,
    }
    serde_json::from_str::<Input>(input)
        .map(|i| i.query)
        .unwrap_or_default()
}

/// A whole Anthropic answer as a Responses response object, appended to `dst`.
pub fn anthropic_to_responses_response_into(
    body: &[u8],
    meta: &RequestMeta,
    dst: &mut Vec<u8>,
) -> Result<(), TranslateError> {
    let r: MessageResponse<'_> = serde_json::from_slice(body)
        .map_err(|e| TranslateError::upstream(format!("unreadable Anthropic response: {e}")))?;
    let (rm, mut w, mut sink) = crate::translate::responses::begin_whole(meta, r.model.as_str());
    for b in &r.content {
        whole_block(&mut w, &rm, meta.json_tool, b, &mut sink);
    }
    *w.usage_mut() = usage(&r.usage);
    let end = end_for(r.stop_reason.as_deref());
    if let Some(problem) = w.compaction_problem(&rm, end) {
        return Err(TranslateError::upstream(problem));
    }
    w.finish(&rm, end, dst);
    // Through the shared meta: the stored copy of the answer gets the thinking sealed.
    if let Some(r) = meta.responses.as_deref() {
        r.kept_seals.borrow_mut().extend(
            w.kept_seals(r)
                .map(|(id, sealed)| (id.to_owned(), sealed.to_owned())),
        );
    }
    Ok(())
}

fn whole_block(
    w: &mut Writer,
    meta: &ResponsesMeta,
    json_tool: bool,
    b: &ResponseBlock<'_>,
    sink: &mut Vec<u8>,
) {
    match b.kind.as_str() {
        "text" => w.text(meta, false, b.text.as_deref().unwrap_or(""), sink),
        "tool_use" if json_tool && b.name.as_deref() == Some(JSON_TOOL_NAME) => {
            let args = b
                .input
                .map_or(Cow::Borrowed("{}"), |raw| compact_json(raw.get()));
            w.text(meta, false, &args, sink);
        }
        "tool_use" => {
            let id = b.id.as_deref().unwrap_or("");
            let h = w.call_start(meta, id, b.name.as_deref().unwrap_or(""), sink);
            if let Some(h) = h {
                // Compact, as the provider's own streamed arguments would be.
                let args = b
                    .input
                    .map_or(Cow::Borrowed("{}"), |raw| compact_json(raw.get()));
                w.arguments(h, &args, sink);
                w.close(meta, h, sink);
            }
        }
        "thinking" | "redacted_thinking" => {
            let text = b.thinking.as_deref();
            let h = w.reasoning(meta, None, text.unwrap_or(""), sink);
            let tail = if b.kind.as_str() == "thinking" {
                b.signature.as_deref()
            } else {
                b.data.as_deref()
            };
            if let (Some(h), Some(sealed)) = (h, seal(meta, &b.kind, text, tail.unwrap_or(""))) {
                w.seal(h, sealed);
            }
            if let Some(h) = h {
                w.close(meta, h, sink);
            }
        }
        "server_tool_use" if b.name.as_deref() == Some("web_search") => {
            let q = search_query(b.input.map_or("{}", |raw| raw.get()));
            w.web_search(meta, &q, sink);
        }
        _ => {}
    }
}

/// Anthropic events → Responses events (one per response).
pub struct AnthropicToResponsesStream {
    meta: ResponsesMeta,
    json_tool: bool,
    w: Writer,
    blocks: Vec<(u64, Block)>,
    usage: AUsage,
    stop_reason: Option<String>,
    /// Bytes held for blocks not yet closed (thinking and signatures, web search inputs),
    /// bounded by [`MAX_THINKING_BYTES`].
    held: usize,
    /// Calls whose block ended: done once the provider says why the message stopped (a call
    /// cut by the output cap is incomplete, not done).
    ended_calls: Vec<usize>,
}

impl std::fmt::Debug for AnthropicToResponsesStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnthropicToResponsesStream")
            .field("blocks", &self.blocks.len())
            .field("done", &self.w.is_done())
            .finish()
    }
}

impl AnthropicToResponsesStream {
    /// A translator for the answer to the request `meta` describes.
    pub fn new(meta: &RequestMeta) -> Self {
        AnthropicToResponsesStream {
            meta: crate::translate::responses::responses_meta(meta).into_owned(),
            json_tool: meta.json_tool,
            w: Writer::new(true, meta.created, &meta.upstream_model),
            blocks: Vec::new(),
            usage: AUsage::default(),
            stop_reason: None,
            held: 0,
            ended_calls: Vec::new(),
        }
    }

    /// The time now (Unix seconds), handed in by the gateway as it reads the stream: the
    /// `completed_at` of the response the stream ends with.
    pub fn set_now(&mut self, now: u64) {
        self.w.set_now(now);
    }

    /// True once the final event has been written.
    pub fn is_done(&self) -> bool {
        self.w.is_done()
    }

    /// For an answer the gateway keeps: its reasoning items' sealed thinking, `(item id,
    /// sealed)`, which the client's events leave out unless it asked for them.
    pub fn kept_seals(&self) -> Vec<(&str, &str)> {
        self.w.kept_seals(&self.meta).collect()
    }

    /// One provider event.
    pub fn on_event(&mut self, event: Option<&[u8]>, data: &[u8], out: &mut Vec<u8>) {
        self.handle(event, data, out);
        if self.w.over_limit() && !self.w.is_done() {
            self.fail_with(
                "the answer exceeds the gateway's limit for a Responses stream",
                out,
            );
        }
    }

    /// One provider event, before the bound on what the stream holds is checked.
    fn handle(&mut self, event: Option<&[u8]>, data: &[u8], out: &mut Vec<u8>) {
        if self.w.is_done() {
            return;
        }
        let data = data.trim_ascii();
        if data.is_empty() {
            return;
        }
        let ev: StreamEvent<'_> = match crate::wire::anthropic_event(data) {
            Ok(ev) => ev,
            Err(e) => return self.fail_with(&format!("malformed upstream event: {e}"), out),
        };
        let name = match event.filter(|e| !e.is_empty()) {
            Some(e) => std::str::from_utf8(e).unwrap_or(""),
            None => ev.kind.as_deref().unwrap_or(""),
        };
        match name {
            "error" => {
                let message = ev.error.as_ref().map_or("upstream error", |e| &e.message);
                let code = ev.error.as_ref().map_or("api_error", |e| &e.kind);
                self.w.fail(&self.meta, code, message, out);
            }
            "message_start" => {
                if let Some(m) = &ev.message {
                    if let Some(model) = m.model.as_deref() {
                        self.w.set_model(model);
                    }
                    if let Some(u) = &m.usage {
                        merge_usage(&mut self.usage, u);
                    }
                }
                self.w.start(&self.meta, out);
            }
            _ if !self.w.is_started() && name != "ping" => {
                self.fail_with(&format!("upstream sent `{name}` before message_start"), out)
            }
            "content_block_start" => self.block_start(&ev, out),
            "content_block_delta" => self.block_delta(&ev, out),
            "content_block_stop" => {
                if let Some(pos) = ev.index.and_then(|i| self.find(i)) {
                    self.close(pos, out);
                }
            }
            "message_delta" => {
                if let Some(u) = &ev.usage {
                    merge_usage(&mut self.usage, u);
                }
                if let Some(s) = ev.delta.as_ref().and_then(|d| d.stop_reason.as_deref()) {
                    self.stop_reason = Some(s.to_owned());
                }
                self.close_ended_calls(out);
            }
            "message_stop" => {
                for pos in 0..self.blocks.len() {
                    self.close(pos, out);
                }
                self.close_ended_calls(out);
                *self.w.usage_mut() = usage(&self.usage);
                let end = end_for(self.stop_reason.as_deref());
                match self.w.compaction_problem(&self.meta, end) {
                    Some(problem) => self.fail_with(problem, out),
                    None => self.w.finish(&self.meta, end, out),
                }
            }
            _ => {}
        }
    }

    /// The provider's stream ended: a stream that did not finish fails.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.w.is_done() {
            self.fail_with("upstream stream ended before message_stop", out);
        }
    }

    /// The provider's stream broke.
    pub fn fail(&mut self, message: &str, out: &mut Vec<u8>) {
        self.fail_with(message, out);
    }

    /// Bytes of the answer held for the final events, open blocks included.
    pub fn held_bytes(&self) -> usize {
        self.w.held().saturating_add(self.held)
    }

    /// The answer cannot be held any longer: what was held is let go and the stream fails.
    pub fn fail_unheld(&mut self, message: &str, out: &mut Vec<u8>) {
        self.w.release();
        self.blocks = Vec::new();
        self.held = 0;
        self.fail_with(message, out);
    }

    fn fail_with(&mut self, message: &str, out: &mut Vec<u8>) {
        *self.w.usage_mut() = usage(&self.usage);
        self.w.fail(&self.meta, "api_error", message, out);
    }

    fn find(&self, index: u64) -> Option<usize> {
        self.blocks.iter().rposition(|(i, _)| *i == index)
    }

    fn block_start(&mut self, ev: &StreamEvent<'_>, out: &mut Vec<u8>) {
        let (Some(index), Some(b)) = (ev.index, &ev.content_block) else {
            return self.fail_with("content_block_start without index or content_block", out);
        };
        if self.find(index).is_some() {
            return self.fail_with("upstream reopened a content block", out);
        }
        if self.blocks.len() >= crate::translate::MAX_STREAM_BLOCKS {
            return self.fail_with("too many content blocks", out);
        }
        // Another block began: the calls before it are complete.
        let stop = self.stop_reason.take();
        self.close_ended_calls(out);
        self.stop_reason = stop;
        let meta = &self.meta;
        let block = match b.kind.as_str() {
            "text" => {
                self.w
                    .text(meta, false, b.text.as_deref().unwrap_or(""), out);
                Block::Text
            }
            "tool_use" if self.json_tool && b.name.as_deref() == Some(JSON_TOOL_NAME) => {
                if let Some(a) = initial_args(b) {
                    self.w.text(meta, false, a, out);
                }
                Block::JsonTool
            }
            "tool_use" => {
                let id = b.id.as_deref().unwrap_or("");
                let h = self
                    .w
                    .call_start(meta, id, b.name.as_deref().unwrap_or(""), out);
                if let (Some(h), Some(a)) = (h, initial_args(b)) {
                    self.w.arguments(h, a, out);
                }
                Block::Call(h)
            }
            "thinking" => {
                let text = b.thinking.as_deref().unwrap_or("");
                let handle = self.w.reasoning(meta, None, text, out);
                let signature = b.signature.as_deref().unwrap_or("").to_owned();
                if !self.hold(text.len() + signature.len(), out) {
                    return;
                }
                Block::Thinking {
                    handle,
                    text: text.to_owned(),
                    signature,
                }
            }
            "redacted_thinking" => {
                let h = self.w.reasoning(meta, None, "", out);
                let data = b.data.as_deref().unwrap_or("");
                if let (Some(h), Some(s)) = (h, seal(meta, "redacted_thinking", None, data)) {
                    self.w.seal(h, s);
                }
                if let Some(h) = h {
                    self.w.close(meta, h, out);
                }
                Block::Inert
            }
            "server_tool_use" if b.name.as_deref() == Some("web_search") => {
                let input = initial_args(b).unwrap_or("").to_owned();
                if !self.hold(input.len(), out) {
                    return;
                }
                Block::WebSearch(input)
            }
            _ => Block::Inert,
        };
        self.blocks.push((index, block));
    }

    fn block_delta(&mut self, ev: &StreamEvent<'_>, out: &mut Vec<u8>) {
        let (Some(pos), Some(d)) = (ev.index.and_then(|i| self.find(i)), &ev.delta) else {
            return;
        };
        let meta = &self.meta;
        let Some((_, block)) = self.blocks.get_mut(pos) else {
            return;
        };
        // Bytes the open blocks hold after this delta, less before it.
        let (mut grow, mut shrink) = (0usize, 0usize);
        match (block, d.kind.as_deref()) {
            (Block::Text, Some("text_delta")) => {
                self.w
                    .text(meta, false, d.text.as_deref().unwrap_or(""), out)
            }
            (Block::Call(Some(h)), Some("input_json_delta")) => {
                self.w
                    .arguments(*h, d.partial_json.as_deref().unwrap_or(""), out)
            }
            (Block::JsonTool, Some("input_json_delta")) => {
                self.w
                    .text(meta, false, d.partial_json.as_deref().unwrap_or(""), out)
            }
            (Block::WebSearch(input), Some("input_json_delta")) => {
                let more = d.partial_json.as_deref().unwrap_or("");
                input.push_str(more);
                grow = more.len();
            }
            (
                Block::Thinking {
                    handle,
                    text,
                    signature,
                },
                Some("thinking_delta" | "signature_delta"),
            ) => {
                if let Some(t) = d.thinking.as_deref() {
                    *handle = self.w.reasoning(meta, *handle, t, out);
                    text.push_str(t);
                    grow = t.len();
                }
                if let Some(s) = d.signature.as_deref() {
                    // signature_delta replaces (the SDKs' accumulator does the same).
                    shrink = signature.len();
                    grow += s.len();
                    s.clone_into(signature);
                }
            }
            _ => {}
        }
        self.held = self.held.saturating_sub(shrink);
        self.hold(grow, out);
    }

    fn close(&mut self, pos: usize, out: &mut Vec<u8>) {
        let Some((_, block)) = self.blocks.get_mut(pos) else {
            return;
        };
        let block = std::mem::replace(block, Block::Inert);
        let meta = &self.meta;
        match block {
            Block::Call(Some(h)) => self.ended_calls.push(h),
            Block::Thinking {
                handle,
                text,
                signature,
            } => {
                self.held = self.held.saturating_sub(text.len() + signature.len());
                let Some(h) = handle else { return };
                if let Some(s) = seal(meta, "thinking", Some(&text), &signature) {
                    self.w.seal(h, s);
                }
                self.w.close(meta, h, out);
            }
            Block::WebSearch(input) => {
                self.held = self.held.saturating_sub(input.len());
                self.w.web_search(meta, &search_query(&input), out)
            }
            _ => {}
        }
    }

    /// Close the calls whose blocks ended, unless the output cap cut the message (then the
    /// end marks them incomplete).
    fn close_ended_calls(&mut self, out: &mut Vec<u8>) {
        if end_for(self.stop_reason.as_deref()) == End::MaxTokens {
            return;
        }
        for h in std::mem::take(&mut self.ended_calls) {
            self.w.close(&self.meta, h, out);
        }
    }

    /// Count `n` more bytes held for open blocks; past the bound the stream fails.
    fn hold(&mut self, n: usize, out: &mut Vec<u8>) -> bool {
        self.held = self.held.saturating_add(n);
        if self.held > MAX_THINKING_BYTES {
            self.fail_with(
                "the provider's open blocks exceed the gateway's buffer limit",
                out,
            );
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::check::check_responses_stream;

    fn meta() -> RequestMeta {
        RequestMeta {
            responses: Some(Box::default()),
            ..RequestMeta::default()
        }
    }

    const START: &str =
        r#"{"type":"message_start","message":{"id":"m","model":"c","usage":{"input_tokens":1}}}"#;

    /// Open blocks (thinking given whole in their start, web search inputs) share one bound.
    #[test]
    fn what_open_blocks_hold_is_bounded() {
        let big = "x".repeat(MAX_THINKING_BYTES / 4);
        for block in [
            format!(r#"{{"type":"thinking","thinking":"{big}","signature":""}}"#),
            format!(
                r#"{{"type":"server_tool_use","id":"s","name":"web_search","input":{{"query":"{big}"}}}}"#
            ),
        ] {
            let mut t = AnthropicToResponsesStream::new(&meta());
            let mut out = Vec::new();
            t.on_event(Some(b"message_start"), START.as_bytes(), &mut out);
            for i in 0..5 {
                let ev = format!(
                    r#"{{"type":"content_block_start","index":{i},"content_block":{block}}}"#
                );
                t.on_event(Some(b"content_block_start"), ev.as_bytes(), &mut out);
            }
            assert!(t.is_done(), "never failed");
            let last = check_responses_stream(&out, true).unwrap().unwrap();
            assert_eq!(last["type"], "response.failed");
        }
    }

    /// A call the output cap cut is incomplete, not done; one the model finished is completed.
    #[test]
    fn a_call_cut_by_max_tokens_is_incomplete() {
        for (stop, status) in [("max_tokens", "incomplete"), ("tool_use", "completed")] {
            let mut t = AnthropicToResponsesStream::new(&meta());
            let mut out = Vec::new();
            for (e, d) in [
                ("message_start", START.to_owned()),
                ("content_block_start", r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}"#.to_owned()),
                ("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}"#.to_owned()),
                ("content_block_stop", r#"{"type":"content_block_stop","index":0}"#.to_owned()),
                ("message_delta", format!(r#"{{"type":"message_delta","delta":{{"stop_reason":"{stop}"}},"usage":{{"output_tokens":3}}}}"#)),
                ("message_stop", r#"{"type":"message_stop"}"#.to_owned()),
            ] {
                t.on_event(Some(e.as_bytes()), d.as_bytes(), &mut out);
            }
            let last = check_responses_stream(&out, true).unwrap().unwrap();
            assert_eq!(last["response"]["output"][0]["status"], status, "{stop}");
        }
    }
}
