//! OpenAI Chat Completions answers (whole, or as chunks) → Responses output, through the one
//! renderer.

use crate::wire::openai::{ChatCompletion, Chunk, Usage as OUsage};

use crate::translate::responses::render::{End, Usage, Writer};
use crate::translate::responses::ResponsesMeta;
use crate::translate::{RequestMeta, TranslateError, MAX_STREAM_BLOCKS};

fn usage(u: &OUsage) -> Usage {
    let details = u.prompt_tokens_details.as_ref();
    Usage {
        cache_write: details.and_then(|d| d.cache_write_tokens).unwrap_or(0),
        input: u.prompt_tokens,
        cached: u
            .prompt_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0),
        output: u.completion_tokens,
        reasoning: u
            .completion_tokens_details
            .as_ref()
            .and_then(|d| d.reasoning_tokens)
            .unwrap_or(0),
    }
}

fn end_for(finish_reason: Option<&str>) -> End {
    match finish_reason {
        Some("length") => End::MaxTokens,
        Some("content_filter") => End::ContentFilter,
        _ => End::Completed,
    }
}

/// A whole chat completion as a Responses response object, appended to `dst`.
pub fn chat_to_responses_response_into(
    body: &[u8],
    meta: &RequestMeta,
    dst: &mut Vec<u8>,
) -> Result<(), TranslateError> {
    let r: ChatCompletion<'_> = serde_json::from_slice(body)
        .map_err(|e| TranslateError::upstream(format!("unreadable OpenAI response: {e}")))?;
    let (rm, mut w, mut sink) = crate::translate::responses::begin_whole(meta, r.model.as_str());
    let choice = r.choices.first();
    if let Some(m) = choice.map(|c| &c.message) {
        let reasoning = m.reasoning_content.as_deref().or(m.reasoning.as_deref());
        if let Some(t) = reasoning.filter(|t| !t.is_empty()) {
            w.reasoning(&rm, None, t, &mut sink);
        }
        w.text(&rm, false, m.content.as_deref().unwrap_or(""), &mut sink);
        w.text(&rm, true, m.refusal.as_deref().unwrap_or(""), &mut sink);
        for call in m.tool_calls.iter().flatten() {
            let f = call.function.as_ref();
            let name = f.and_then(|f| f.name.as_deref()).unwrap_or("");
            let id = call.id.as_deref().unwrap_or("");
            if let Some(h) = w.call_start(&rm, id, name, &mut sink) {
                let args = f.and_then(|f| f.arguments.as_deref()).unwrap_or("");
                w.arguments(h, args, &mut sink);
                w.close(&rm, h, &mut sink);
            }
        }
    }
    if let Some(u) = &r.usage {
        *w.usage_mut() = usage(u);
    }
    let end = end_for(choice.and_then(|c| c.finish_reason.as_deref()));
    if let Some(problem) = w.compaction_problem(&rm, end) {
        return Err(TranslateError::upstream(problem));
    }
    w.finish(&rm, end, dst);
    Ok(())
}

/// Chat Completions chunks → Responses events (one per response).
pub struct ChatToResponsesStream {
    meta: ResponsesMeta,
    w: Writer,
    /// Calls so far: chunk `tool_calls[].index`, id, the renderer's handle.
    calls: Vec<(u32, String, Option<usize>)>,
    reasoning: Option<usize>,
    finish_reason: Option<String>,
}

impl std::fmt::Debug for ChatToResponsesStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatToResponsesStream")
            .field("calls", &self.calls.len())
            .field("done", &self.w.is_done())
            .finish()
    }
}

impl ChatToResponsesStream {
    /// A translator for the answer to the request `meta` describes.
    pub fn new(meta: &RequestMeta) -> Self {
        ChatToResponsesStream {
            meta: crate::translate::responses::responses_meta(meta).into_owned(),
            w: Writer::new(true, meta.created, &meta.upstream_model),
            calls: Vec::new(),
            reasoning: None,
            finish_reason: None,
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

    /// One provider event (`data:` of a chunk, or `[DONE]`).
    pub fn on_event(&mut self, _event: Option<&[u8]>, data: &[u8], out: &mut Vec<u8>) {
        self.handle(data, out);
        if self.w.over_limit() && !self.w.is_done() {
            self.fail(
                "the answer exceeds the gateway's limit for a Responses stream",
                out,
            );
        }
    }

    /// One provider event, before the bound on what the stream holds is checked.
    fn handle(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if self.w.is_done() {
            return;
        }
        let data = data.trim_ascii();
        if data.is_empty() {
            return;
        }
        if data == b"[DONE]" {
            return self.end(out);
        }
        let chunk: Chunk<'_> = match crate::wire::openai_chunk(data) {
            Ok(c) => c,
            Err(e) => return self.fail(&format!("malformed upstream chunk: {e}"), out),
        };
        if let Some(e) = &chunk.error {
            let code = e.kind.as_deref().unwrap_or("api_error");
            return self.w.fail(&self.meta, code, &e.message, out);
        }
        if let Some(m) = chunk.model.as_deref() {
            self.w.set_model(m);
        }
        self.w.start(&self.meta, out);
        if let Some(u) = &chunk.usage {
            *self.w.usage_mut() = usage(u);
        }
        let meta = &self.meta;
        for c in chunk.choices.iter().flatten().filter(|c| c.index == 0) {
            if let Some(d) = &c.delta {
                let reasoning = d.reasoning_content.as_deref().or(d.reasoning.as_deref());
                if let Some(t) = reasoning.filter(|t| !t.is_empty()) {
                    self.reasoning = self.w.reasoning(meta, self.reasoning, t, out);
                }
                self.w
                    .text(meta, false, d.content.as_deref().unwrap_or(""), out);
                self.w
                    .text(meta, true, d.refusal.as_deref().unwrap_or(""), out);
                for call in d.tool_calls.iter().flatten() {
                    let f = call.function.as_ref();
                    let id = call.id.as_deref().filter(|id| !id.is_empty());
                    // A fragment joins the call with its id; without an id, the latest call at
                    // its index (the last call when it has no index). A new id, even at a known
                    // index, is a new call (some servers reuse index 0 for parallel calls).
                    let known = match (id, call.index) {
                        (Some(id), _) => self.calls.iter().rposition(|c| c.1 == id),
                        (None, Some(i)) => self.calls.iter().rposition(|c| c.0 == i),
                        (None, None) => self.calls.len().checked_sub(1),
                    };
                    let handle = match known.and_then(|k| self.calls.get(k)) {
                        Some(c) => c.2,
                        None => {
                            if self.calls.len() >= MAX_STREAM_BLOCKS {
                                return self.fail("too many tool calls", out);
                            }
                            let name = f.and_then(|f| f.name.as_deref()).unwrap_or("");
                            let id = id.unwrap_or("");
                            let h = self.w.call_start(meta, id, name, out);
                            let index = call.index.unwrap_or(self.calls.len() as u32);
                            self.calls.push((index, id.to_owned(), h));
                            h
                        }
                    };
                    if let (Some(h), Some(a)) = (handle, f.and_then(|f| f.arguments.as_deref())) {
                        self.w.arguments(h, a, out);
                    }
                }
            }
            if let Some(r) = c.finish_reason.as_deref() {
                self.finish_reason = Some(r.to_owned());
            }
        }
    }

    /// The provider's stream ended: an answer that said how it finished is complete (some
    /// servers omit `[DONE]`); anything else fails.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.w.is_done() {
            return;
        }
        if self.finish_reason.is_some() {
            self.end(out);
        } else {
            self.fail("upstream stream ended before its finish_reason", out);
        }
    }

    /// The provider's stream broke.
    pub fn fail(&mut self, message: &str, out: &mut Vec<u8>) {
        self.w.fail(&self.meta, "api_error", message, out);
    }

    /// Bytes of the answer held for the final events.
    pub fn held_bytes(&self) -> usize {
        self.w.held()
    }

    /// The answer cannot be held any longer: what was held is let go and the stream fails.
    pub fn fail_unheld(&mut self, message: &str, out: &mut Vec<u8>) {
        self.w.release();
        self.fail(message, out);
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        let end = end_for(self.finish_reason.as_deref());
        match self.w.compaction_problem(&self.meta, end) {
            Some(problem) => self.fail(problem, out),
            None => self.w.finish(&self.meta, end, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::check::check_responses_stream;
    use crate::translate::responses::ResponsesMeta;

    fn run(meta: &RequestMeta, chunks: &[&str]) -> serde_json::Value {
        let mut t = ChatToResponsesStream::new(meta);
        let mut out = Vec::new();
        for c in chunks {
            t.on_event(None, c.as_bytes(), &mut out);
        }
        t.finish(&mut out);
        check_responses_stream(&out, true)
            .unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(&out)))
            .unwrap()
    }

    fn plain() -> RequestMeta {
        RequestMeta {
            responses: Some(Box::default()),
            ..RequestMeta::default()
        }
    }

    #[test]
    fn completed_at_and_service_tier_follow_the_answer() {
        let meta = RequestMeta {
            created: 100,
            responses: Some(Box::default()),
            ..RequestMeta::default()
        };
        let mut t = ChatToResponsesStream::new(&meta);
        let mut out = Vec::new();
        t.set_now(105);
        t.on_event(
            None,
            br#"{"choices":[{"index":0,"delta":{"content":"hi"}}]}"#,
            &mut out,
        );
        t.set_now(130);
        t.on_event(
            None,
            br#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            &mut out,
        );
        t.finish(&mut out);
        let frames = crate::translate::check::frames(&out).unwrap();
        let response = |i: usize| -> serde_json::Value {
            serde_json::from_str::<serde_json::Value>(frames[i].data).unwrap()["response"].clone()
        };
        let (created, done) = (response(0), response(frames.len() - 1));
        assert_eq!(created["completed_at"], serde_json::Value::Null);
        assert_eq!(created["service_tier"], "auto");
        assert_eq!(done["status"], "completed");
        assert_eq!(done["completed_at"], 130);
        assert_eq!(done["service_tier"], "default");
        // A whole answer: the time the gateway read it.
        meta.finished.set(142);
        let body = br#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}"#;
        let mut whole = Vec::new();
        chat_to_responses_response_into(body, &meta, &mut whole).unwrap();
        let whole: serde_json::Value = serde_json::from_slice(&whole).unwrap();
        assert_eq!(whole["completed_at"], 142);
        assert_eq!(whole["created_at"], 100);
    }

    #[test]
    fn parallel_calls_are_told_apart_by_id_without_or_with_a_reused_index() {
        for index in ["", r#""index":0,"#] {
            let call = |id: &str, name: &str, args: &str| {
                format!(
                    r#"{{"choices":[{{"index":0,"delta":{{"tool_calls":[{{{index}"id":"{id}","type":"function","function":{{"name":"{name}","arguments":"{args}"}}}}]}}}}]}}"#
                )
            };
            let more = format!(
                r#"{{"choices":[{{"index":0,"delta":{{"tool_calls":[{{{index}"function":{{"arguments":"2}}"}}}}]}}}}]}}"#
            );
            let last = run(
                &plain(),
                &[
                    &call("call_1", "f", "{\\\"a\\\":1}"),
                    &call("call_2", "g", "{\\\"b\\\":"),
                    &more,
                    r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
                ],
            );
            let output = last["response"]["output"].as_array().unwrap();
            let calls: Vec<(&str, &str)> = output
                .iter()
                .map(|o| {
                    (
                        o["name"].as_str().unwrap(),
                        o["arguments"].as_str().unwrap(),
                    )
                })
                .collect();
            assert_eq!(calls, [("f", r#"{"a":1}"#), ("g", r#"{"b":2}"#)], "{index}");
        }
    }

    #[test]
    fn text_in_the_middle_of_a_call_leaves_the_call_whole() {
        let last = run(
            &plain(),
            &[
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","function":{"name":"f","arguments":"{\"a\""}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"content":"\n"}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            ],
        );
        let output = &last["response"]["output"];
        assert_eq!(output[0]["arguments"], r#"{"a":1}"#, "{output}");
        assert_eq!(output[1]["type"], "message");
    }

    #[test]
    fn more_items_than_the_bound_fail_the_stream() {
        let mut chunks = Vec::new();
        for _ in 0..=crate::translate::responses::render::MAX_OUTPUT_ITEMS / 2 + 1 {
            chunks.push(r#"{"choices":[{"index":0,"delta":{"reasoning_content":"r"}}]}"#);
            chunks.push(r#"{"choices":[{"index":0,"delta":{"content":"t"}}]}"#);
        }
        chunks.push(
            r#"{"choices":[{"index":0,"delta":{"content":"FINAL"},"finish_reason":"stop"}]}"#,
        );
        let last = run(&plain(), &chunks);
        assert_eq!(last["type"], "response.failed", "{last}");
    }

    #[test]
    fn a_summary_keeps_going_past_a_call_and_a_cut_one_is_not_handed_out() {
        let meta = RequestMeta {
            responses: Some(Box::new(ResponsesMeta {
                compaction: crate::translate::responses::Compaction::Trigger,
                seal: crate::seal::SealKey::from_bytes(&[1; 32])
                    .map(|k| k.for_holder(crate::seal::Holder::Open)),
                ..ResponsesMeta::default()
            })),
            ..RequestMeta::default()
        };
        let text =
            |t: &str| format!(r#"{{"choices":[{{"index":0,"delta":{{"content":"{t}"}}}}]}}"#);
        let call = r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"sh","arguments":"{}"}}]}}]}"#;
        let stop = |r: &str| {
            format!(r#"{{"choices":[{{"index":0,"delta":{{}},"finish_reason":"{r}"}}]}}"#)
        };
        let last = run(
            &meta,
            &[&text("PART ONE. "), call, &text("PART TWO."), &stop("stop")],
        );
        let output = last["response"]["output"].as_array().unwrap();
        assert_eq!(output.len(), 1, "{last}");
        assert_eq!(output[0]["type"], "compaction");
        let sealed = output[0]["encrypted_content"].as_str().unwrap();
        let key = crate::seal::SealKey::from_bytes(&[1; 32])
            .unwrap()
            .for_holder(crate::seal::Holder::Open);
        let summary = key.open(crate::seal::Purpose::Compaction, sealed).unwrap();
        assert_eq!(summary, b"PART ONE. PART TWO.");
        let last = run(&meta, &[&text("PART ONE"), &stop("length")]);
        assert_eq!(last["type"], "response.failed", "{last}");
        // Whole: the same refusal, as an error.
        let cut = r#"{"id":"c","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"half"},"finish_reason":"length"}]}"#;
        let e =
            chat_to_responses_response_into(cut.as_bytes(), &meta, &mut Vec::new()).unwrap_err();
        assert_eq!(e.status, 502, "{e}");
    }

    #[test]
    fn an_answer_past_the_bound_fails_the_stream() {
        let meta = RequestMeta {
            responses: Some(Box::default()),
            ..RequestMeta::default()
        };
        let mut t = ChatToResponsesStream::new(&meta);
        let mut out = Vec::new();
        let piece = "x".repeat(1 << 20);
        let chunk = format!(r#"{{"choices":[{{"index":0,"delta":{{"content":"{piece}"}}}}]}}"#);
        let mut sent = 0;
        while !t.is_done() && sent <= crate::translate::MAX_HELD_OUTPUT_BYTES + piece.len() {
            t.on_event(None, chunk.as_bytes(), &mut out);
            sent += piece.len();
            // What goes out is the deltas, not a growing copy: trim as the pump would.
            if !t.is_done() {
                out.clear();
            }
        }
        assert!(t.is_done(), "never stopped");
        assert!(sent > crate::translate::MAX_HELD_OUTPUT_BYTES);
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.contains("event: response.failed"),
            "{}",
            &text[text.len().saturating_sub(300)..]
        );
        assert!(text.contains("exceeds the gateway's limit"));
        // The stream so far was well-formed up to its failure (checked from its start).
        let mut whole = Vec::new();
        let mut t = ChatToResponsesStream::new(&meta);
        t.on_event(
            None,
            br#"{"choices":[{"index":0,"delta":{"content":"hi"}}]}"#,
            &mut whole,
        );
        t.fail("x", &mut whole);
        assert!(check_responses_stream(&whole, true).is_ok());
    }
}
