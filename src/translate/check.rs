//! Invariant checks over translated stream output, for tests and fuzz targets: what the
//! official SDKs' accumulators rely on (spec §1.7, §2.4, §16).

use std::fmt;

use serde_json::Value;

/// A violated stream invariant: which output frame (0-based) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvariantError {
    /// Index of the offending frame (comments excluded), or the frame count for end-of-stream
    /// problems.
    pub frame: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for InvariantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "frame {}: {}", self.frame, self.message)
    }
}

impl std::error::Error for InvariantError {}

/// One SSE frame of translator output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The `event:` name, if any.
    pub event: Option<&'a str>,
    /// The `data:` payload.
    pub data: &'a str,
}

/// Splits translator output into frames. Translators write each frame as `event:`/`data:`
/// lines ended by a blank line and never put a newline inside data; `:` comment frames are
/// skipped.
pub fn frames(out: &[u8]) -> Result<Vec<Frame<'_>>, InvariantError> {
    let text = std::str::from_utf8(out).map_err(|e| err(0, format!("output is not UTF-8: {e}")))?;
    let mut frames = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let Some((frame, tail)) = rest.split_once("\n\n") else {
            return Err(err(frames.len(), "output ends inside a frame"));
        };
        rest = tail;
        if frame.starts_with(':') {
            if frame.contains('\n') {
                return Err(err(frames.len(), "comment frame spans lines"));
            }
            continue;
        }
        let mut event = None;
        let mut data = None;
        for line in frame.split('\n') {
            if let Some(v) = line.strip_prefix("event: ") {
                if event.replace(v).is_some() || data.is_some() {
                    return Err(err(frames.len(), "event line repeated or after data"));
                }
            } else if let Some(v) = line.strip_prefix("data: ") {
                if data.replace(v).is_some() {
                    return Err(err(frames.len(), "more than one data line"));
                }
            } else {
                return Err(err(frames.len(), format!("unexpected line {line:?}")));
            }
        }
        let data = data.ok_or_else(|| err(frames.len(), "frame without data"))?;
        frames.push(Frame { event, data });
    }
    Ok(frames)
}

fn err(frame: usize, message: impl Into<String>) -> InvariantError {
    InvariantError {
        frame,
        message: message.into(),
    }
}

fn parse(i: usize, data: &str) -> Result<Value, InvariantError> {
    serde_json::from_str(data).map_err(|e| err(i, format!("data is not JSON: {e}")))
}

/// Checks OpenAI chunk output: every frame is a `chat.completion.chunk` (or a final error
/// object), `role` once, tool-call `id`/`type`/`name` only on a call's first chunk with
/// indexes 0,1,2… in order, one finish, usage chunk after it, nothing after `[DONE]` or an
/// error. `terminated` also requires the stream to end with `[DONE]` or an error.
pub fn check_openai_stream(out: &[u8], terminated: bool) -> Result<(), InvariantError> {
    let frames = frames(out)?;
    let mut ended = false;
    let mut role_seen = false;
    let mut finished = false;
    let mut tools_seen: u64 = 0;
    let mut id: Option<String> = None;
    for (i, f) in frames.iter().enumerate() {
        if ended {
            return Err(err(i, "frame after [DONE] or error"));
        }
        if f.event.is_some() {
            return Err(err(i, "OpenAI frames carry no event name"));
        }
        if f.data == "[DONE]" {
            ended = true;
            continue;
        }
        let v = parse(i, f.data)?;
        if let Some(e) = v.get("error") {
            if !e.get("message").is_some_and(Value::is_string)
                || !e.get("type").is_some_and(Value::is_string)
            {
                return Err(err(i, "error frame without message/type"));
            }
            ended = true;
            continue;
        }
        if v.get("object").and_then(Value::as_str) != Some("chat.completion.chunk") {
            return Err(err(i, "not a chat.completion.chunk"));
        }
        let this_id = v
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| err(i, "chunk without id"))?;
        match &id {
            None => id = Some(this_id.to_owned()),
            Some(prev) if prev != this_id => return Err(err(i, "chunk id changed")),
            Some(_) => {}
        }
        let choices = v
            .get("choices")
            .and_then(Value::as_array)
            .ok_or_else(|| err(i, "chunk without choices"))?;
        if choices.is_empty() {
            if !finished || v.get("usage").is_none_or(Value::is_null) {
                return Err(err(
                    i,
                    "usage chunk before the finish chunk or without usage",
                ));
            }
            continue;
        }
        if choices.len() != 1 {
            return Err(err(i, "more than one choice"));
        }
        let c = &choices[0];
        if finished {
            return Err(err(i, "chunk after the finish chunk"));
        }
        let delta = c
            .get("delta")
            .and_then(Value::as_object)
            .ok_or_else(|| err(i, "choice without delta"))?;
        if delta.contains_key("role") {
            if role_seen {
                return Err(err(i, "role sent twice"));
            }
            role_seen = true;
        } else if !role_seen {
            return Err(err(i, "first chunk does not carry the role"));
        }
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = call
                .get("index")
                .and_then(Value::as_u64)
                .ok_or_else(|| err(i, "tool call without index"))?;
            let has_identity = call.get("id").is_some()
                || call.get("type").is_some()
                || call.pointer("/function/name").is_some();
            if index == tools_seen {
                if !(call.get("id").is_some_and(Value::is_string)
                    && call.pointer("/function/name").is_some_and(Value::is_string))
                {
                    return Err(err(i, "first chunk of a tool call lacks id or name"));
                }
                tools_seen += 1;
            } else if index > tools_seen {
                return Err(err(i, "tool call index skips ahead"));
            } else if has_identity {
                return Err(err(
                    i,
                    "tool call id/type/name repeated after its first chunk",
                ));
            }
        }
        if let Some(fr) = c.get("finish_reason").filter(|f| !f.is_null()) {
            if !matches!(
                fr.as_str(),
                Some("stop" | "length" | "tool_calls" | "content_filter")
            ) {
                return Err(err(i, "finish_reason outside the OpenAI enum"));
            }
            finished = true;
        }
    }
    if terminated && !ended {
        return Err(err(frames.len(), "stream ends without [DONE] or an error"));
    }
    Ok(())
}

/// Checks Anthropic event output: `event:` name equal to `data.type` on every frame, exactly
/// one `message_start` first, blocks indexed 0,1,2… each started and stopped once and
/// never overlapping, deltas matching their block's type, `message_delta` then
/// `message_stop` last, nothing after `message_stop` or `error`. `terminated` also requires
/// the stream to end with `message_stop` or `error`.
pub fn check_anthropic_stream(out: &[u8], terminated: bool) -> Result<(), InvariantError> {
    let frames = frames(out)?;
    let mut ended = false;
    let mut started = false;
    let mut next_index: u64 = 0;
    let mut open: Option<(u64, String)> = None;
    let mut message_delta = false;
    for (i, f) in frames.iter().enumerate() {
        if ended {
            return Err(err(i, "frame after message_stop or error"));
        }
        let v = parse(i, f.data)?;
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| err(i, "data without type"))?;
        if f.event != Some(kind) {
            return Err(err(
                i,
                format!("event name {:?} differs from type {kind:?}", f.event),
            ));
        }
        if kind == "error" {
            if !v.pointer("/error/type").is_some_and(Value::is_string)
                || !v.pointer("/error/message").is_some_and(Value::is_string)
            {
                return Err(err(i, "error event without error.type/message"));
            }
            ended = true;
            continue;
        }
        if kind == "message_start" {
            if started {
                return Err(err(i, "second message_start"));
            }
            started = true;
            continue;
        }
        if !started {
            return Err(err(i, "first event is not message_start"));
        }
        if message_delta && kind != "message_stop" {
            return Err(err(i, "only message_stop may follow message_delta"));
        }
        let index = v.get("index").and_then(Value::as_u64);
        match kind {
            "content_block_start" => {
                if open.is_some() {
                    return Err(err(i, "block started while another is open"));
                }
                if index != Some(next_index) {
                    return Err(err(
                        i,
                        format!("block index {index:?}, expected {next_index}"),
                    ));
                }
                let bt = v
                    .pointer("/content_block/type")
                    .and_then(Value::as_str)
                    .ok_or_else(|| err(i, "content_block without type"))?;
                open = Some((next_index, bt.to_owned()));
                next_index += 1;
            }
            "content_block_delta" => {
                let Some((oi, bt)) = &open else {
                    return Err(err(i, "delta with no open block"));
                };
                if index != Some(*oi) {
                    return Err(err(i, "delta for a block that is not open"));
                }
                let dt = v
                    .pointer("/delta/type")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let ok = matches!(
                    (bt.as_str(), dt),
                    ("text", "text_delta")
                        | ("tool_use", "input_json_delta")
                        | ("thinking", "thinking_delta" | "signature_delta")
                );
                if !ok {
                    return Err(err(i, format!("{dt} inside a {bt} block")));
                }
                let empty = ["/delta/text", "/delta/thinking"]
                    .iter()
                    .any(|p| v.pointer(p).and_then(Value::as_str) == Some(""));
                if empty {
                    return Err(err(i, "empty text/thinking delta"));
                }
            }
            "content_block_stop" => match &open {
                Some((oi, _)) if index == Some(*oi) => open = None,
                _ => return Err(err(i, "stop for a block that is not open")),
            },
            "message_delta" => {
                if open.is_some() {
                    return Err(err(i, "message_delta with a block still open"));
                }
                if !v
                    .pointer("/delta/stop_reason")
                    .is_some_and(Value::is_string)
                {
                    return Err(err(i, "message_delta without stop_reason"));
                }
                message_delta = true;
            }
            "message_stop" => {
                if !message_delta {
                    return Err(err(i, "message_stop without message_delta"));
                }
                ended = true;
            }
            "ping" => {}
            other => return Err(err(i, format!("unknown event type {other}"))),
        }
    }
    if terminated && !ended {
        return Err(err(
            frames.len(),
            "stream ends without message_stop or an error",
        ));
    }
    Ok(())
}

/// One output item as the checker follows it.
struct OpenItem {
    id: String,
    kind: String,
    done: bool,
    /// Accumulated `output_text`/refusal per content index, or the arguments.
    parts: Vec<Option<String>>,
    arguments: String,
    summary: Option<String>,
}

/// Checks a Responses event stream as the official SDKs' stream helpers do: frames named
/// after their `type`, `sequence_number` 0, 1, 2…, `response.created` (with `output: []`)
/// first and `response.in_progress` before any item, output indexes 0, 1, 2… in order, parts
/// added before their deltas, every delta and done on an open item, done texts equal to the
/// deltas, one `response.id` throughout, and (when `terminated`) exactly one final event,
/// last, whose `output` repeats every finished item. Returns the final event's payload.
pub fn check_responses_stream(
    out: &[u8],
    terminated: bool,
) -> Result<Option<Value>, InvariantError> {
    let frames = frames(out)?;
    let mut items: Vec<OpenItem> = Vec::new();
    let mut response_id: Option<String> = None;
    let mut last: Option<Value> = None;
    for (n, f) in frames.iter().enumerate() {
        let v: Value =
            serde_json::from_str(f.data).map_err(|e| err(n, format!("data is not JSON: {e}")))?;
        let kind = v["type"].as_str().unwrap_or("");
        if f.event != Some(kind) {
            return Err(err(n, format!("event {:?} but type {kind:?}", f.event)));
        }
        if v["sequence_number"].as_u64() != Some(n as u64) {
            return Err(err(
                n,
                format!("sequence_number {} at event {n}", v["sequence_number"]),
            ));
        }
        if last.is_some() {
            return Err(err(n, "an event after the final one"));
        }
        if n == 0 && kind != "response.created" && kind != "error" {
            return Err(err(
                n,
                format!("first event is {kind}, not response.created"),
            ));
        }
        if n == 1 && kind != "response.in_progress" {
            return Err(err(
                n,
                format!("second event is {kind}, not response.in_progress"),
            ));
        }
        if kind != "error" && v.get("error").is_some() {
            return Err(err(n, "a top-level `error` key outside an error event"));
        }
        if let Some(r) = v.get("response") {
            let id = r["id"].as_str().unwrap_or("").to_owned();
            if r["object"] != "response" || !r["output"].is_array() {
                return Err(err(
                    n,
                    "response without object \"response\" or an output array",
                ));
            }
            match &response_id {
                None => response_id = Some(id),
                Some(prev) if *prev != id => return Err(err(n, "response id changed")),
                Some(_) => {}
            }
        }
        let index = v["output_index"].as_u64().map(|i| i as usize);
        let open = |items: &mut Vec<OpenItem>, n: usize| -> Result<usize, InvariantError> {
            let i = index.ok_or_else(|| err(n, "no output_index"))?;
            let item = items
                .get(i)
                .ok_or_else(|| err(n, format!("output_index {i} never added")))?;
            if item.done {
                return Err(err(n, format!("output_index {i} is already done")));
            }
            if v.get("item_id").is_some() && v["item_id"].as_str() != Some(item.id.as_str()) {
                return Err(err(n, "item_id does not match the item at output_index"));
            }
            Ok(i)
        };
        let content = v["content_index"].as_u64().map(|c| c as usize);
        match kind {
            "response.created" | "response.in_progress" => {
                if v["response"]["status"] != "in_progress" {
                    return Err(err(n, "not in_progress"));
                }
                if kind == "response.created" && v["response"]["output"] != serde_json::json!([]) {
                    return Err(err(n, "response.created with output"));
                }
            }
            "response.output_item.added" => {
                if index != Some(items.len()) {
                    return Err(err(
                        n,
                        format!("output_index {index:?}, expected {}", items.len()),
                    ));
                }
                let item = &v["item"];
                let kind = item["type"].as_str().unwrap_or("").to_owned();
                if item["type"] == "message" && !item["content"].is_array() {
                    return Err(err(n, "message item without content array"));
                }
                if item["type"] == "reasoning" && !item["summary"].is_array() {
                    return Err(err(n, "reasoning item without summary array"));
                }
                items.push(OpenItem {
                    id: item["id"].as_str().unwrap_or("").to_owned(),
                    kind,
                    done: false,
                    parts: Vec::new(),
                    arguments: String::new(),
                    summary: None,
                });
            }
            "response.content_part.added" => {
                let i = open(&mut items, n)?;
                let item = &mut items[i];
                if content != Some(item.parts.len()) {
                    return Err(err(n, "content_index out of order"));
                }
                item.parts.push(Some(String::new()));
            }
            "response.output_text.delta" | "response.refusal.delta" => {
                let i = open(&mut items, n)?;
                let part = content
                    .and_then(|c| items[i].parts.get_mut(c))
                    .and_then(Option::as_mut)
                    .ok_or_else(|| err(n, "delta for a part never added (or done)"))?;
                part.push_str(v["delta"].as_str().unwrap_or(""));
            }
            "response.output_text.done" | "response.refusal.done" => {
                let i = open(&mut items, n)?;
                let field = if kind == "response.output_text.done" {
                    "text"
                } else {
                    "refusal"
                };
                let part = content
                    .and_then(|c| items[i].parts.get(c))
                    .and_then(Option::as_ref)
                    .ok_or_else(|| err(n, "done for a part never added"))?;
                if v[field].as_str() != Some(part.as_str()) {
                    return Err(err(n, format!("{field} differs from its deltas")));
                }
            }
            "response.content_part.done" => {
                let i = open(&mut items, n)?;
                let slot = content
                    .and_then(|c| items[i].parts.get_mut(c))
                    .ok_or_else(|| err(n, "content_part.done for a part never added"))?;
                if slot.take().is_none() {
                    return Err(err(n, "content part done twice"));
                }
            }
            "response.function_call_arguments.delta" => {
                let i = open(&mut items, n)?;
                items[i]
                    .arguments
                    .push_str(v["delta"].as_str().unwrap_or(""));
            }
            "response.function_call_arguments.done" => {
                let i = open(&mut items, n)?;
                let args = v["arguments"].as_str().unwrap_or("");
                if !items[i].arguments.is_empty() && args != items[i].arguments {
                    return Err(err(n, "arguments differ from their deltas"));
                }
                if !v["name"].is_string() {
                    return Err(err(n, "function_call_arguments.done without name"));
                }
            }
            "response.custom_tool_call_input.delta" | "response.custom_tool_call_input.done" => {
                open(&mut items, n)?;
            }
            "response.reasoning_summary_part.added" => {
                let i = open(&mut items, n)?;
                items[i].summary = Some(String::new());
            }
            "response.reasoning_summary_text.delta" => {
                let i = open(&mut items, n)?;
                let s = items[i]
                    .summary
                    .as_mut()
                    .ok_or_else(|| err(n, "summary delta before its part was added"))?;
                s.push_str(v["delta"].as_str().unwrap_or(""));
            }
            "response.reasoning_summary_text.done" | "response.reasoning_summary_part.done" => {
                let i = open(&mut items, n)?;
                let s = items[i]
                    .summary
                    .as_deref()
                    .ok_or_else(|| err(n, "summary never added"))?;
                let text = if kind.ends_with("text.done") {
                    &v["text"]
                } else {
                    &v["part"]["text"]
                };
                if text.as_str() != Some(s) {
                    return Err(err(n, "summary text differs from its deltas"));
                }
            }
            "response.output_item.done" => {
                let i = open(&mut items, n)?;
                let item = &v["item"];
                if item["id"].as_str() != Some(items[i].id.as_str())
                    || item["type"].as_str() != Some(items[i].kind.as_str())
                {
                    return Err(err(n, "output_item.done does not match the added item"));
                }
                if items[i].parts.iter().any(Option::is_some) {
                    return Err(err(n, "item done with a content part still open"));
                }
                if items[i].kind == "function_call" {
                    let args = item["arguments"].as_str().unwrap_or("");
                    if !items[i].arguments.is_empty() && args != items[i].arguments {
                        return Err(err(n, "done arguments differ from their deltas"));
                    }
                }
                items[i].done = true;
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                let output = v["response"]["output"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if kind != "response.failed" {
                    if let Some(i) = items.iter().position(|it| !it.done) {
                        return Err(err(n, format!("item {i} unfinished at {kind}")));
                    }
                }
                let done: Vec<&OpenItem> = items.iter().filter(|it| it.done).collect();
                if output.len() != done.len()
                    || output
                        .iter()
                        .zip(&done)
                        .any(|(o, it)| o["id"].as_str() != Some(it.id.as_str()))
                {
                    return Err(err(
                        n,
                        "final output does not list the finished items in order",
                    ));
                }
                let usage = &v["response"]["usage"];
                if kind != "response.failed" && !usage["input_tokens"].is_u64() {
                    return Err(err(n, "final response without usage"));
                }
                last = Some(v.clone());
            }
            "error" => {
                if !v["error"].is_object() || !v["message"].is_string() {
                    return Err(err(n, "error event without message and nested error"));
                }
                last = Some(v.clone());
            }
            other => return Err(err(n, format!("event type {other:?} the SDKs do not know"))),
        }
    }
    if terminated && last.is_none() {
        return Err(err(frames.len(), "stream ended without a final event"));
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catches_repeated_tool_identity() {
        let bad = concat!(
            "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n",
            "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"a\",\"function\":{\"name\":\"f\"}}]}}]}\n\n",
            "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"a\",\"function\":{\"arguments\":\"{}\"}}]}}]}\n\n",
        );
        assert!(check_openai_stream(bad.as_bytes(), false)
            .unwrap_err()
            .message
            .contains("repeated"));
        assert!(check_openai_stream(b"", true).is_err());
    }

    #[test]
    fn catches_block_order() {
        let bad = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\"}}\n\n",
        );
        assert!(check_anthropic_stream(bad.as_bytes(), false).is_err());
        let bad = "data: {\"type\":\"message_start\",\"message\":{}}\n\n";
        assert!(check_anthropic_stream(bad.as_bytes(), false).is_err());
    }
}
