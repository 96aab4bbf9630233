//! The response side for streams: restoring stand-ins in a client-dialect SSE stream, event
//! by event, with the streaming [`Restorer`] per text stream.
//!
//! A text stream is one place deltas accumulate: an OpenAI choice's `content`,
//! `reasoning_content`/`reasoning`/`refusal` or one tool call's `arguments`; an Anthropic
//! content block's `text`, `thinking` or `partial_json`; a Responses item's `delta`. Each has
//! its own restorer (arguments read as JSON text, see [`Mode`]), so a stand-in split across
//! deltas (or reads) is restored, and a delta holds back only a stand-in's first bytes. Before any event that is not a delta (a block's
//! stop, a finish chunk, `[DONE]`), what is held back is sent in a delta of its own, a copy of
//! the stream's last delta with just that text, so nothing is lost and order is kept. Other
//! events (Responses `*.done`, `response.completed`) are restored whole, string by string
//! (`document`).
//!
//! Events are re-serialised only when they carry a delta; others are copied as they came
//! (restored in place).

use std::sync::Arc;

use serde_json::Value;

use super::restore::Mode;
use super::{RestoreSet, Restorer};
use crate::format::Format;

/// One text stream: its key, restorer and the last delta event it came in.
struct Text {
    key: String,
    restorer: Restorer,
    event: Option<Vec<u8>>,
    template: Value,
    path: Vec<PathStep>,
}

#[derive(Clone, Debug)]
enum PathStep {
    Key(&'static str),
    Index(usize),
}

/// Restores stand-ins in one stream of client-dialect events.
pub struct EventRestorer {
    set: Arc<RestoreSet>,
    format: Format,
    texts: Vec<Text>,
}

impl std::fmt::Debug for EventRestorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRestorer")
            .field("texts", &self.texts.len())
            .finish()
    }
}

/// OpenAI delta fields that carry text.
const OPENAI_TEXT: &[&str] = &["content", "reasoning_content", "reasoning", "refusal"];
/// Anthropic delta fields that carry text.
const ANTHROPIC_TEXT: &[&str] = &["text", "thinking", "partial_json"];

impl EventRestorer {
    /// A restorer for a stream the client reads in `format`.
    pub fn new(set: Arc<RestoreSet>, format: Format) -> EventRestorer {
        EventRestorer {
            set,
            format,
            texts: Vec::new(),
        }
    }

    /// One event (`event:` name, `data:` payload): its restored form, framed, into `out`.
    pub fn on_event(&mut self, event: Option<&[u8]>, data: &[u8], out: &mut Vec<u8>) {
        let mut tree: Option<Value> = serde_json::from_slice(data).ok();
        let deltas = tree
            .as_ref()
            .map(|t| self.delta_paths(t))
            .unwrap_or_default();
        if deltas.is_empty() {
            // A keep-alive (`ping`) says nothing and ends no text: what is held stays held, or a
            // stand-in split around one would reach the client unrestored.
            if event != Some(b"ping".as_slice()) {
                self.flush(out);
            }
            write_event(out, event, &self.set.restore_document(data));
            return;
        }
        let Some(tree) = tree.as_mut() else { return };
        for (key, path, mode) in deltas {
            let i = match self.texts.iter().position(|t| t.key == key) {
                Some(i) => i,
                None => {
                    self.texts.push(Text {
                        key,
                        restorer: Restorer::with_mode(self.set.clone(), mode),
                        event: None,
                        template: Value::Null,
                        path: path.clone(),
                    });
                    self.texts.len() - 1
                }
            };
            let Some(text) = self.texts.get_mut(i) else {
                continue;
            };
            if let Some(slot) = at_path(tree, &path) {
                let piece = slot.as_str().unwrap_or_default().as_bytes().to_vec();
                let restored = text.restorer.push(&piece);
                *slot = Value::String(String::from_utf8_lossy(&restored).into_owned());
            }
            text.event = event.map(<[u8]>::to_vec);
            text.template = tree.clone();
        }
        let data = serde_json::to_vec(tree).unwrap_or_default();
        write_event(out, event, &data);
    }

    /// Sends every held-back piece in a delta of its own (end of stream, or a non-delta
    /// event coming).
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        for t in &mut self.texts {
            let held = t.restorer.finish();
            if held.is_empty() {
                continue;
            }
            let mut tree = t.template.clone();
            // The copy carries only this text: every other delta text in it is emptied.
            for (_, p, _) in delta_paths_of(self.format, &tree) {
                if let Some(slot) = at_path(&mut tree, &p) {
                    *slot = Value::String(String::new());
                }
            }
            if let Some(slot) = at_path(&mut tree, &t.path) {
                *slot = Value::String(String::from_utf8_lossy(&held).into_owned());
            }
            let data = serde_json::to_vec(&tree).unwrap_or_default();
            write_event(out, t.event.as_deref(), &data);
        }
    }

    fn delta_paths(&self, tree: &Value) -> Vec<(String, Vec<PathStep>, Mode)> {
        delta_paths_of(self.format, tree)
    }
}

/// The text-delta slots of one event, each with its stream key and how its text reads (tool
/// arguments are JSON text).
fn delta_paths_of(format: Format, tree: &Value) -> Vec<(String, Vec<PathStep>, Mode)> {
    use PathStep::{Index, Key};
    let mut found = Vec::new();
    match format {
        Format::OpenAi => {
            let Some(choices) = tree.get("choices").and_then(Value::as_array) else {
                return found;
            };
            for (ci, c) in choices.iter().enumerate() {
                let n = c.get("index").and_then(Value::as_u64).unwrap_or(ci as u64);
                let Some(delta) = c.get("delta") else {
                    continue;
                };
                for f in OPENAI_TEXT {
                    if delta.get(*f).is_some_and(Value::is_string) {
                        found.push((
                            format!("c{n}.{f}"),
                            vec![Key("choices"), Index(ci), Key("delta"), Key(f)],
                            Mode::Text,
                        ));
                    }
                }
                let calls = delta.get("tool_calls").and_then(Value::as_array);
                for (ti, call) in calls.into_iter().flatten().enumerate() {
                    let tn = call
                        .get("index")
                        .and_then(Value::as_u64)
                        .unwrap_or(ti as u64);
                    if call
                        .get("function")
                        .and_then(|f| f.get("arguments"))
                        .is_some_and(Value::is_string)
                    {
                        let path = vec![
                            Key("choices"),
                            Index(ci),
                            Key("delta"),
                            Key("tool_calls"),
                            Index(ti),
                            Key("function"),
                            Key("arguments"),
                        ];
                        found.push((format!("c{n}.t{tn}"), path, Mode::Json));
                    }
                }
            }
        }
        Format::Anthropic => {
            if tree.get("type").and_then(Value::as_str) != Some("content_block_delta") {
                return found;
            }
            let n = tree.get("index").and_then(Value::as_u64).unwrap_or(0);
            for f in ANTHROPIC_TEXT {
                if tree
                    .get("delta")
                    .and_then(|d| d.get(*f))
                    .is_some_and(Value::is_string)
                {
                    let mode = if *f == "partial_json" {
                        Mode::Json
                    } else {
                        Mode::Text
                    };
                    found.push((format!("b{n}.{f}"), vec![Key("delta"), Key(f)], mode));
                }
            }
        }
        Format::Responses => {
            let ty = tree.get("type").and_then(Value::as_str).unwrap_or_default();
            if ty.ends_with(".delta") && tree.get("delta").is_some_and(Value::is_string) {
                let part = |k: &str| tree.get(k).map(Value::to_string).unwrap_or_default();
                let key = format!(
                    "{ty}:{}:{}:{}:{}",
                    part("item_id"),
                    part("output_index"),
                    part("content_index"),
                    part("summary_index")
                );
                let mode = if ty.contains("arguments") {
                    Mode::Json
                } else {
                    Mode::Text
                };
                found.push((key, vec![Key("delta")], mode));
            }
        }
    }
    found
}

fn at_path<'v>(tree: &'v mut Value, path: &[PathStep]) -> Option<&'v mut Value> {
    path.iter().try_fold(tree, |v, step| match step {
        PathStep::Key(k) => v.get_mut(*k),
        PathStep::Index(i) => v.get_mut(*i),
    })
}

/// One SSE event: an `event:` line when named, one `data:` line (JSON has no raw newlines;
/// anything else is split over `data:` lines), the blank line.
fn write_event(out: &mut Vec<u8>, event: Option<&[u8]>, data: &[u8]) {
    if let Some(e) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(e);
        out.push(b'\n');
    }
    for line in data.split(|&b| b == b'\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::sse::Decoder;

    fn set() -> (Arc<RestoreSet>, String) {
        let stand_in = "avery.thorne42@example.com".to_string();
        (
            RestoreSet::new([(stand_in.as_str(), "jane.doe@corp.example.io")]).unwrap(),
            stand_in,
        )
    }

    /// Runs events through, then collects every text of `field` from the output.
    fn run(
        format: Format,
        events: &[(Option<&str>, String)],
        pick: impl Fn(&Value) -> Option<String>,
    ) -> String {
        let (set, _) = set();
        let mut r = EventRestorer::new(set, format);
        let mut out = Vec::new();
        for (e, d) in events {
            r.on_event(e.map(str::as_bytes), d.as_bytes(), &mut out);
        }
        r.flush(&mut out);
        let mut dec = Decoder::new(1 << 20);
        dec.push(bytes::Bytes::from(out));
        let mut text = String::new();
        while let Ok(Some(ev)) = dec.next_event() {
            let data = ev.data.unwrap();
            if let Ok(v) = serde_json::from_slice::<Value>(&data) {
                text.push_str(&pick(&v).unwrap_or_default());
            }
        }
        text
    }

    #[test]
    fn openai_content_and_tool_arguments_split_across_chunks() {
        let (_, s) = set();
        let (a, b) = s.split_at(7);
        let chunk = |delta: &str| {
            (
                None,
                format!(r#"{{"choices":[{{"index":0,"delta":{delta}}}]}}"#),
            )
        };
        let events = [
            chunk(&format!(r#"{{"content":"mail {a}"}}"#)),
            chunk(&format!(r#"{{"content":"{b} now"}}"#)),
            chunk(&format!(
                r#"{{"tool_calls":[{{"index":0,"function":{{"arguments":"{{\"to\":\"{a}"}}}}]}}"#
            )),
            chunk(&format!(
                r#"{{"tool_calls":[{{"index":0,"function":{{"arguments":"{b}\"}}"}}}}]}}"#
            )),
            chunk(r#"{"content":"mail avery"}"#),
            (
                None,
                r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#.into(),
            ),
        ];
        let content = run(Format::OpenAi, &events, |v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        });
        assert_eq!(content, "mail jane.doe@corp.example.io nowmail avery");
        let args = run(Format::OpenAi, &events, |v| {
            v["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .map(str::to_owned)
        });
        assert_eq!(args, r#"{"to":"jane.doe@corp.example.io"}"#);
    }

    #[test]
    fn anthropic_text_and_thinking_flush_before_stop() {
        let (_, s) = set();
        let (a, b) = s.split_at(3);
        let delta = |ty: &str, f: &str, t: &str| {
            (
                Some("content_block_delta"),
                format!(
                    r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"{ty}","{f}":"{t}"}}}}"#
                ),
            )
        };
        let ping = (Some("ping"), r#"{"type":"ping"}"#.to_owned());
        let events = [
            delta("text_delta", "text", &format!("to {a}")),
            // A keep-alive between the halves of a stand-in does not flush it unrestored.
            ping,
            delta("text_delta", "text", b),
            delta("text_delta", "text", " or avery.th"),
            (
                Some("content_block_stop"),
                r#"{"type":"content_block_stop","index":0}"#.into(),
            ),
        ];
        let text = run(Format::Anthropic, &events, |v| {
            v["delta"]["text"].as_str().map(str::to_owned)
        });
        assert_eq!(text, "to jane.doe@corp.example.io or avery.th");
    }

    #[test]
    fn responses_deltas_and_whole_texts() {
        let (_, s) = set();
        let (a, b) = s.split_at(10);
        let d = |t: &str| {
            (
                Some("response.output_text.delta"),
                format!(
                    r#"{{"type":"response.output_text.delta","item_id":"m1","output_index":0,"content_index":0,"delta":"{t}"}}"#
                ),
            )
        };
        let done = (
            Some("response.output_text.done"),
            format!(r#"{{"type":"response.output_text.done","text":"{s}"}}"#),
        );
        let events = [d(a), d(b), done];
        let deltas = run(Format::Responses, &events, |v| {
            v["delta"].as_str().map(str::to_owned)
        });
        assert_eq!(deltas, "jane.doe@corp.example.io");
        let whole = run(Format::Responses, &events, |v| {
            v["text"].as_str().map(str::to_owned)
        });
        assert_eq!(whole, "jane.doe@corp.example.io");
    }
}
