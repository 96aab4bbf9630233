//! Gemini stream (each SSE `data:` payload a whole `GenerateContentResponse`) → Chat chunks.
//!
//! Fed one chunk at a time, it appends complete `data: …\n\n` frames and never fails: a
//! malformed upstream chunk, an error object or a blocked prompt becomes an in-stream error
//! frame; a clean end is the finish chunk, the usage chunk when asked, and `data: [DONE]`.

use serde_json::{json, Value};

use super::response::{
    call_id, first_candidate, model, parts, read_part, response_id, upstream_error, usage, Part,
    CHATCMPL_PREFIX,
};
use super::{finish_reason, GeminiMeta, SignatureSeal};
use crate::translate::emit::{openai_frame, push_str};
use crate::translate::error::openai_type_for_status as error_type;
use crate::translate::MAX_STREAM_BLOCKS;

/// Gemini → Chat stream translator (one per response).
pub struct Stream {
    include_usage: bool,
    include_thoughts: bool,
    created: u64,
    fallback_model: String,
    /// `chatcmpl-<responseId>` and the model, fixed by the first chunk.
    id: String,
    model: String,
    started: bool,
    tool_calls: usize,
    /// The last `usageMetadata` seen (cumulative: the last one is the total).
    usage: Option<Value>,
    finish_sent: bool,
    done: bool,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeminiToChatStream")
            .field("id", &self.id)
            .field("tool_calls", &self.tool_calls)
            .field("done", &self.done)
            .finish()
    }
}

impl Stream {
    /// A translator for the answer to the request `meta` describes.
    pub fn new(meta: &GeminiMeta) -> Self {
        Stream {
            include_usage: meta.include_usage,
            include_thoughts: meta.include_thoughts,
            created: meta.created,
            fallback_model: meta.upstream_model.clone(),
            id: String::new(),
            model: String::new(),
            started: false,
            tool_calls: 0,
            usage: None,
            finish_sent: false,
            done: false,
        }
    }

    /// True once `[DONE]` or an error frame has been written.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Translates one upstream chunk (an SSE `data:` payload).
    pub fn feed(&mut self, data: &[u8], seal: &dyn SignatureSeal, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        let data = data.trim_ascii();
        if data.is_empty() {
            return;
        }
        let chunk: Value = match serde_json::from_slice(data) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return self.error(out, "malformed upstream chunk: not a JSON object"),
            Err(e) => return self.error(out, &format!("malformed upstream chunk: {e}")),
        };
        if let Some(e) = upstream_error(&chunk) {
            return self.error(out, &e);
        }
        let candidate = match first_candidate(&chunk) {
            Ok(c) => c,
            // A blocked prompt is the client's error; a chunk with nothing to say is skipped.
            Err(e) if e.status == 400 => {
                return self.error_of(out, error_type(e.status), &e.message)
            }
            Err(_) => None,
        };
        if let Some(u) = chunk.get("usageMetadata").filter(|u| u.is_object()) {
            self.usage = Some(u.clone());
        }
        if !self.started {
            self.started = true;
            let meta = GeminiMeta {
                upstream_model: std::mem::take(&mut self.fallback_model),
                ..GeminiMeta::default()
            };
            self.id = format!("{CHATCMPL_PREFIX}{}", response_id(&chunk));
            self.model = model(&chunk, &meta);
            self.chunk(out, json!({ "role": "assistant", "content": "" }), None);
        }
        if self.finish_sent {
            // Only usage may follow the finish (taken above).
            return;
        }
        let rid = response_id(&chunk).to_owned();
        for p in parts(candidate) {
            match read_part(p) {
                Part::Text("") | Part::Thought("") | Part::Other => {}
                Part::Text(t) => self.chunk(out, json!({ "content": t }), None),
                Part::Thought(t) if self.include_thoughts => {
                    self.chunk(out, json!({ "reasoning_content": t }), None);
                }
                Part::Thought(_) => {}
                Part::Call {
                    id,
                    name,
                    args,
                    signature,
                } => {
                    if self.tool_calls >= MAX_STREAM_BLOCKS {
                        return self.error(out, "upstream sent too many function calls");
                    }
                    let index = self.tool_calls;
                    let id = call_id(id, &rid, index, signature, seal);
                    self.tool_calls += 1;
                    self.chunk(
                        out,
                        json!({ "tool_calls": [{
                            "index": index,
                            "id": id,
                            "type": "function",
                            "function": { "name": name, "arguments": args },
                        }]}),
                        None,
                    );
                }
            }
        }
        if let Some(reason) = candidate
            .and_then(|c| c.get("finishReason"))
            .and_then(Value::as_str)
        {
            let finish = finish_reason(Some(reason), self.tool_calls > 0);
            self.chunk(out, json!({}), Some(finish));
            self.finish_sent = true;
        }
    }

    /// Upstream EOF: the usage chunk (when asked) and `[DONE]`; a stream that never said why
    /// it finished ends with an error frame instead.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        if !self.finish_sent {
            return self.error(out, "upstream stream ended before a finish reason");
        }
        if self.include_usage {
            let body = json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": usage(self.usage.as_ref()),
            });
            openai_frame(out, |o| o.extend_from_slice(body.to_string().as_bytes()));
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        self.done = true;
    }

    /// Gateway-side failure mid-stream: an error frame, then nothing.
    pub fn fail(&mut self, message: &str, out: &mut Vec<u8>) {
        if !self.done {
            self.error(out, message);
        }
    }

    fn chunk(&self, out: &mut Vec<u8>, delta: Value, finish: Option<&str>) {
        let body = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }],
        });
        openai_frame(out, |o| o.extend_from_slice(body.to_string().as_bytes()));
    }

    fn error(&mut self, out: &mut Vec<u8>, message: &str) {
        self.error_of(out, "api_error", message);
    }

    fn error_of(&mut self, out: &mut Vec<u8>, kind: &str, message: &str) {
        openai_frame(out, |o| {
            o.extend_from_slice(b"{\"error\":{\"message\":");
            push_str(o, message);
            o.extend_from_slice(b",\"type\":");
            push_str(o, kind);
            o.extend_from_slice(b",\"param\":null,\"code\":null}}");
        });
        self.done = true;
    }
}
