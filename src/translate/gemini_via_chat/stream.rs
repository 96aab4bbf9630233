//! Chat Completions chunks → a Gemini SSE stream (each `data:` a whole
//! `GenerateContentResponse`, CRLF-framed as Google's are).
//!
//! Text and thoughts go out as they come. Function calls are sent whole, as Gemini sends
//! them, in the last chunk with the finish reason and the usage (Chat's usage chunk follows
//! its finish chunk, so the last chunk waits for `[DONE]` or the end). Never fails: a broken
//! upstream chunk or an error becomes Gemini's error object as the last event.

use serde_json::{json, Map, Value};

use super::response::call_part_of;
use super::{
    finish_reason, response_id, seal_blocks, usage_metadata, GeminiClientMeta,
    MAX_CARRIED_THINKING_BYTES,
};
use crate::translate::{RequestMeta, MAX_HELD_TOOL_BYTES, MAX_STREAM_BLOCKS};

/// One function call being assembled from its deltas.
#[derive(Debug, Default)]
struct Call {
    id: String,
    name: String,
    args: String,
}

/// Chat → Gemini stream translator (one per response).
#[derive(Debug)]
pub struct Stream {
    client: GeminiClientMeta,
    tool_names: Vec<(String, String)>,
    fallback_model: String,
    id: String,
    model: String,
    started: bool,
    calls: Vec<Call>,
    held: usize,
    /// Thinking blocks (from an Anthropic provider) to carry in the last chunk's signature.
    blocks: Vec<Value>,
    /// Bytes of thinking seen (past [`MAX_CARRIED_THINKING_BYTES`] none is kept).
    thinking_bytes: usize,
    finish: Option<String>,
    usage: Option<Value>,
    done: bool,
}

impl Stream {
    /// A translator for the answer to the request `meta` and `client` describe.
    pub fn new(meta: &RequestMeta, client: GeminiClientMeta) -> Stream {
        Stream {
            client,
            tool_names: meta.tool_names.clone(),
            fallback_model: meta.upstream_model.clone(),
            id: String::new(),
            model: String::new(),
            started: false,
            calls: Vec::new(),
            held: 0,
            blocks: Vec::new(),
            thinking_bytes: 0,
            finish: None,
            usage: None,
            done: false,
        }
    }

    /// True once the last chunk or an error has been written.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// One Chat chunk (an SSE `data:` payload).
    pub fn on_event(&mut self, _event: Option<&[u8]>, data: &[u8], out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        let data = data.trim_ascii();
        if data.is_empty() {
            return;
        }
        if data == b"[DONE]" {
            return self.end(out, true);
        }
        let chunk: Value = match serde_json::from_slice(data) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return self.fail("malformed upstream chunk: not a JSON object", out),
            Err(e) => return self.fail(&format!("malformed upstream chunk: {e}"), out),
        };
        if let Some(e) = chunk.get("error") {
            let message = e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("upstream error");
            let status = match e.get("type").and_then(Value::as_str) {
                Some("invalid_request_error") => 400,
                Some("rate_limit_error") => 429,
                Some("overloaded_error") => 503,
                _ => 500,
            };
            return self.error(status, message, out);
        }
        if !self.started {
            self.started = true;
            self.id = response_id(chunk.get("id").and_then(Value::as_str));
            self.model = chunk
                .get("model")
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty())
                .map_or_else(|| std::mem::take(&mut self.fallback_model), str::to_owned);
        }
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(u.clone());
        }
        let Some(choice) = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
        else {
            return;
        };
        let delta = choice.get("delta").unwrap_or(&Value::Null);
        if self.client.include_thoughts {
            if let Some(t) = delta
                .get("reasoning_content")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
            {
                self.parts(out, vec![json!({ "text": t, "thought": true })], None);
            }
        }
        if let Some(blocks) = delta.get("thinking_blocks").and_then(Value::as_array) {
            for b in blocks {
                let mut b = b.clone();
                if let Some(o) = b.as_object_mut() {
                    o.remove("index");
                }
                let len = b.to_string().len();
                self.thinking_bytes = self.thinking_bytes.saturating_add(len);
                // Past what a carrier holds the blocks cannot be carried: stop keeping them.
                if self.thinking_bytes > MAX_CARRIED_THINKING_BYTES {
                    self.blocks.clear();
                } else {
                    self.blocks.push(b);
                }
            }
        }
        for key in ["content", "refusal"] {
            if let Some(t) = delta
                .get(key)
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
            {
                self.parts(out, vec![json!({ "text": t })], None);
            }
        }
        if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
            for c in calls {
                if let Err(message) = self.call_delta(c) {
                    return self.fail(message, out);
                }
            }
        }
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(f.to_owned());
        }
        if self.held > MAX_HELD_TOOL_BYTES {
            self.fail("upstream function calls too large to assemble", out);
        }
    }

    fn call_delta(&mut self, c: &Value) -> Result<(), &'static str> {
        let index = c
            .get("index")
            .and_then(Value::as_u64)
            .and_then(|i| usize::try_from(i).ok())
            .unwrap_or(self.calls.len().saturating_sub(1));
        if index >= MAX_STREAM_BLOCKS {
            return Err("upstream sent too many function calls");
        }
        if index >= self.calls.len() {
            self.calls.resize_with(index + 1, Call::default);
        }
        let call = self.calls.get_mut(index).ok_or("function call index")?;
        if let Some(id) = c.get("id").and_then(Value::as_str) {
            call.id = id.to_owned();
        }
        let f = c.get("function").unwrap_or(&Value::Null);
        for (piece, into) in [("name", &mut call.name), ("arguments", &mut call.args)] {
            if let Some(s) = f.get(piece).and_then(Value::as_str) {
                self.held = self.held.saturating_add(s.len());
                into.push_str(s);
            }
        }
        Ok(())
    }

    /// Upstream EOF: the last chunk if the answer finished, else an error.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.end(out, false);
    }

    fn end(&mut self, out: &mut Vec<u8>, said_done: bool) {
        if self.done {
            return;
        }
        if self.finish.is_none() && !said_done {
            return self.fail("upstream stream ended before a finish reason", out);
        }
        let mut carrier = seal_blocks(&self.blocks, self.client.seal());
        let mut parts: Vec<Value> = std::mem::take(&mut self.calls)
            .into_iter()
            .filter(|c| !c.name.is_empty())
            .map(|c| {
                let name = self
                    .tool_names
                    .iter()
                    .find(|(short, _)| *short == c.name)
                    .map_or(c.name.as_str(), |(_, original)| original.as_str());
                call_part_of(&c.id, name, &c.args, carrier.take())
            })
            .collect();
        if parts.is_empty() {
            let mut p = Map::new();
            p.insert("text".into(), json!(""));
            if let Some(sig) = carrier {
                p.insert("thoughtSignature".into(), json!(sig));
            }
            parts.push(Value::Object(p));
        }
        let finish = finish_reason(self.finish.as_deref());
        let usage = usage_metadata(self.usage.as_ref());
        self.parts(out, parts, Some((finish, usage)));
        self.done = true;
    }

    /// Gateway-side failure mid-stream: Gemini's error object as the last event.
    pub fn fail(&mut self, message: &str, out: &mut Vec<u8>) {
        self.error(502, message, out);
    }

    fn error(&mut self, status: u16, message: &str, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        out.extend_from_slice(b"data: ");
        crate::dialect::gemini::error_object(status, message, out);
        out.extend_from_slice(b"\r\n\r\n");
        self.done = true;
    }

    fn parts(&self, out: &mut Vec<u8>, parts: Vec<Value>, last: Option<(&str, Value)>) {
        let mut candidate = Map::new();
        candidate.insert("content".into(), json!({ "parts": parts, "role": "model" }));
        if let Some((finish, _)) = &last {
            candidate.insert("finishReason".into(), json!(finish));
        }
        candidate.insert("index".into(), json!(0));
        let mut body = Map::new();
        body.insert("candidates".into(), json!([candidate]));
        if let Some((_, usage)) = last {
            body.insert("usageMetadata".into(), usage);
        }
        body.insert("modelVersion".into(), json!(self.model));
        body.insert("responseId".into(), json!(self.id));
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(Value::Object(body).to_string().as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
    }
}
