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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
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
