//! What the script tests share: the defaults they plan with, requests they send, and readers
//! that take a plan's steps apart.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use serde_json::{json, Value};

use super::{plan, Api, Defaults, Step};

pub(super) const TTFT: Duration = Duration::from_millis(100);
pub(super) const ITL: Duration = Duration::from_millis(10);
pub(super) const DEFAULTS: Defaults = Defaults {
    ttft: TTFT,
    inter_token: ITL,
};

pub(super) fn run(api: Api, body: &Value) -> Vec<Step> {
    plan(api, body.to_string().as_bytes(), &DEFAULTS)
}

pub(super) fn anthropic(prompt: &str, extra: Value) -> Value {
    let mut body = json!({
        "model": "claude-test",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": prompt}],
    });
    merge(&mut body, extra);
    body
}

pub(super) fn openai(prompt: &str, extra: Value) -> Value {
    let mut body = json!({
        "model": "gpt-test",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": prompt},
        ],
    });
    merge(&mut body, extra);
    body
}

pub(super) fn merge(body: &mut Value, extra: Value) {
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            body[k] = v;
        }
    }
}

pub(super) fn input_tokens(body: &Value) -> u64 {
    body.to_string().len().div_ceil(4) as u64
}

pub(super) struct Head {
    pub(super) status: u16,
    pub(super) headers: Vec<(&'static str, String)>,
    pub(super) content_length: Option<usize>,
}

impl Head {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

pub(super) fn head(steps: &[Step]) -> Head {
    steps
        .iter()
        .find_map(|s| match s {
            Step::Head {
                status,
                headers,
                content_length,
            } => Some(Head {
                status: *status,
                headers: headers.clone(),
                content_length: *content_length,
            }),
            _ => None,
        })
        .expect("a head step")
}

pub(super) fn body(steps: &[Step]) -> String {
    let mut out = Vec::new();
    for step in steps {
        if let Step::Data(bytes) = step {
            out.extend_from_slice(bytes);
        }
    }
    String::from_utf8(out).unwrap()
}

/// A complete non-streaming reply: Content-Length matches, ends with End, body is JSON.
pub(super) fn fixed(steps: &[Step]) -> (Head, String, Value) {
    let h = head(steps);
    let text = body(steps);
    assert_eq!(h.content_length, Some(text.len()));
    assert_eq!(h.header("content-type"), Some("application/json"));
    assert_eq!(steps.last(), Some(&Step::End));
    let value = serde_json::from_str(&text).unwrap();
    (h, text, value)
}

/// SSE events as (event name, data) pairs; asserts every Data step holds whole events.
pub(super) fn sse(steps: &[Step]) -> Vec<(Option<String>, String)> {
    for step in steps {
        if let Step::Data(bytes) = step {
            assert!(bytes.ends_with(b"\n\n"), "Data step splits an event");
        }
    }
    let text = body(steps);
    let mut events = Vec::new();
    for raw in text.split("\n\n").filter(|e| !e.is_empty()) {
        let mut name = None;
        let mut data = None;
        for line in raw.lines() {
            if let Some(v) = line.strip_prefix("event: ") {
                name = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("data: ") {
                assert!(data.is_none(), "one data line per event");
                data = Some(v.to_owned());
            } else {
                panic!("unexpected SSE line {line:?}");
            }
        }
        events.push((name, data.expect("data line")));
    }
    events
}

/// Anthropic events: every frame is named after its JSON `type`.
pub(super) fn a_events(steps: &[Step]) -> Vec<(String, Value)> {
    sse(steps)
        .into_iter()
        .map(|(name, data)| {
            let name = name.expect("anthropic frames have event names");
            let value: Value = serde_json::from_str(&data).unwrap();
            assert_eq!(value["type"], name.as_str());
            (name, value)
        })
        .collect()
}

pub(super) fn a_names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

/// OpenAI chunks (without the final `[DONE]`) and whether `[DONE]` ended the stream.
pub(super) fn o_chunks(steps: &[Step]) -> (Vec<Value>, bool) {
    let events = sse(steps);
    let mut chunks = Vec::new();
    let mut done = false;
    for (name, data) in events {
        assert!(name.is_none(), "openai frames have no event names");
        assert!(!done, "nothing after [DONE]");
        if data == "[DONE]" {
            done = true;
        } else {
            chunks.push(serde_json::from_str(&data).unwrap());
        }
    }
    (chunks, done)
}

pub(super) fn a_text(events: &[(String, Value)], index: u64) -> String {
    events
        .iter()
        .filter(|(n, v)| n == "content_block_delta" && v["index"] == index)
        .filter_map(|(_, v)| v["delta"]["text"].as_str())
        .collect()
}

pub(super) fn o_text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

pub(super) fn keys_in_order(text: &str, keys: &[&str]) {
    let mut last = 0;
    for key in keys {
        let quoted = format!("\"{key}\"");
        let at = text[last..]
            .find(&quoted)
            .unwrap_or_else(|| panic!("{key} missing or out of order in {text}"));
        last += at + quoted.len();
    }
}

pub(super) fn sleeps(steps: &[Step]) -> Vec<Duration> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Sleep(d) => Some(*d),
            _ => None,
        })
        .collect()
}

pub(super) fn weather_tool_anthropic() -> Value {
    json!({
        "name": "get_weather",
        "description": "weather",
        "input_schema": {
            "type": "object",
            "properties": {
                "location": {"type": "string"},
                "units": {"type": "string", "enum": ["c", "f"]},
                "days": {"type": "integer"},
                "detailed": {"type": "boolean"},
                "tags": {"type": "array"},
                "extra": {"type": "object"},
                "note": {"type": ["null", "number"]},
                "optional": {"type": "string"}
            },
            "required": ["location", "units", "days", "detailed", "tags", "extra", "note"]
        }
    })
}

pub(super) fn expected_weather_args() -> Value {
    json!({"location": "mock", "units": "c", "days": 1, "detailed": true,
           "tags": [], "extra": {}, "note": 1})
}

pub(super) fn openai_tool(name: &str, parameters: Value) -> Value {
    json!({"type": "function", "function": {"name": name, "parameters": parameters}})
}

pub(super) fn weather_tool_openai() -> Value {
    openai_tool(
        "get_weather",
        weather_tool_anthropic()["input_schema"].clone(),
    )
}

pub(super) fn assert_openai_error(steps: &[Step], status: u16, kind: &str) -> Value {
    let (h, text, v) = fixed(steps);
    assert_eq!(h.status, status);
    assert!(h.header("x-request-id").unwrap().starts_with("req_"));
    assert!(text.ends_with("}\n"), "pretty body with trailing newline");
    keys_in_order(&text, &["error", "message", "type", "param", "code"]);
    assert_eq!(v.as_object().unwrap().len(), 1);
    assert_eq!(v["error"].as_object().unwrap().len(), 4);
    assert!(v["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert_eq!(v["error"]["type"], kind);
    v
}

pub(super) fn assert_anthropic_error(steps: &[Step], status: u16, kind: &str) -> Value {
    let (h, text, v) = fixed(steps);
    assert_eq!(h.status, status);
    assert!(h.header("request-id").unwrap().starts_with("req_011C"));
    keys_in_order(&text, &["type", "error", "type", "message", "request_id"]);
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], kind);
    assert!(v["error"].get("details").is_none());
    assert!(v["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert_eq!(v["request_id"].as_str().unwrap().len(), 28);
    assert_eq!(h.header("request-id"), v["request_id"].as_str());
    v
}

pub(super) fn body_of(steps: &[Step]) -> String {
    body(steps)
}

/// Tiny xorshift PRNG so the property tests need no crates.
pub(super) struct Prng(pub(super) u64);

impl Prng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub(super) fn text(&mut self, max: usize) -> String {
        const ALPHABET: &[&str] = &[
            "a", "b", " ", "  ", "é", "日本", "\"", "\\", "\n", "😀", "x",
        ];
        (0..self.below(max + 1))
            .map(|_| ALPHABET[self.below(ALPHABET.len())])
            .collect()
    }
}
