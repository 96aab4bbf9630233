//! Anthropic rendering: a Messages body, or its SSE events, for a composed answer.

use serde::Serialize;

use super::answer::{Answer, Block, Usage};
use super::framing::{Frame, Pace};
use super::ids::{count, Ids, SALT_PAD};
use super::json::{json, ArgsObject};
use super::request::Request;

/// Anthropic pads event JSON with up to this many spaces before the closing brace (anti
/// side-channel padding, seen in every real capture); the mock pads `0..MAX_PAD` spaces.
const MAX_PAD: u64 = 16;

#[derive(Serialize)]
struct AMessage<'a> {
    model: &'a str,
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    content: Vec<ABlock<'a>>,
    stop_reason: Option<&'static str>,
    stop_sequence: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_details: Option<AStopDetails>,
    usage: AUsage,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ABlock<'a> {
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
    Text {
        text: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: ArgsObject<'a>,
        caller: Caller,
    },
}

#[derive(Serialize)]
struct Caller {
    #[serde(rename = "type")]
    kind: &'static str,
}

const DIRECT: Caller = Caller { kind: "direct" };

#[derive(Serialize, Clone, Copy)]
struct AStopDetails {
    #[serde(rename = "type")]
    kind: &'static str,
    category: &'static str,
    explanation: &'static str,
}

const REFUSAL_DETAILS: AStopDetails = AStopDetails {
    kind: "refusal",
    category: "cyber",
    explanation: "This request was refused by the ringway mock (mock:refusal).",
};

#[derive(Serialize)]
struct AUsage {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    cache_creation: ACacheCreation,
    output_tokens: u64,
    service_tier: &'static str,
    inference_geo: &'static str,
}

#[derive(Serialize)]
struct ACacheCreation {
    ephemeral_5m_input_tokens: u64,
    ephemeral_1h_input_tokens: u64,
}

impl AUsage {
    fn new(usage: &Usage, output: u64) -> Self {
        Self {
            input_tokens: usage.uncached(),
            cache_creation_input_tokens: usage.cache_write,
            cache_read_input_tokens: usage.cache_read,
            cache_creation: ACacheCreation {
                ephemeral_5m_input_tokens: usage.cache_write,
                ephemeral_1h_input_tokens: 0,
            },
            output_tokens: output,
            service_tier: "standard",
            inference_geo: "not_available",
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum AEvent<'a> {
    MessageStart {
        message: AMessage<'a>,
    },
    ContentBlockStart {
        index: usize,
        content_block: ABlock<'a>,
    },
    ContentBlockDelta {
        index: usize,
        delta: ADelta<'a>,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        delta: AMessageDelta<'a>,
        usage: AUsageDelta,
    },
    MessageStop,
}

impl AEvent<'_> {
    fn name(&self) -> &'static str {
        match self {
            Self::MessageStart { .. } => "message_start",
            Self::ContentBlockStart { .. } => "content_block_start",
            Self::ContentBlockDelta { .. } => "content_block_delta",
            Self::ContentBlockStop { .. } => "content_block_stop",
            Self::MessageDelta { .. } => "message_delta",
            Self::MessageStop => "message_stop",
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "type")]
enum ADelta<'a> {
    #[serde(rename = "text_delta")]
    Text { text: &'a str },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a str },
    #[serde(rename = "signature_delta")]
    Signature { signature: &'a str },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: &'a str },
}

#[derive(Serialize)]
struct AMessageDelta<'a> {
    stop_reason: &'static str,
    stop_sequence: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_details: Option<AStopDetails>,
}

#[derive(Serialize)]
struct AUsageDelta {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
}

pub(super) fn anthropic_body(req: &Request, ids: &Ids, answer: &Answer) -> String {
    let texts: Vec<String> = answer
        .blocks
        .iter()
        .map(|b| match b {
            Block::Thinking { pieces, .. } | Block::Text(pieces) | Block::Refusal(pieces) => {
                pieces.concat()
            }
            Block::Tool(_) => String::new(),
        })
        .collect();
    let content = answer
        .blocks
        .iter()
        .zip(&texts)
        .filter_map(|(block, text)| match block {
            Block::Thinking { signature, .. } => Some(ABlock::Thinking {
                thinking: text,
                signature,
            }),
            // An empty answer (refusal, max_tokens 0) has no text block at all.
            Block::Text(_) | Block::Refusal(_) if text.is_empty() => None,
            Block::Text(_) | Block::Refusal(_) => Some(ABlock::Text { text }),
            Block::Tool(call) => Some(ABlock::ToolUse {
                id: &call.id,
                name: &call.name,
                input: ArgsObject(&call.args),
                caller: DIRECT,
            }),
        })
        .collect();
    let id = ids.message();
    json(&AMessage {
        model: &req.model,
        id: &id,
        kind: "message",
        role: "assistant",
        content,
        stop_reason: Some(answer.stop.anthropic()),
        stop_sequence: answer.stop.sequence(),
        stop_details: answer.stop.is_refusal().then_some(REFUSAL_DETAILS),
        usage: AUsage::new(&answer.usage, answer.usage.output),
    })
}

/// Collects Anthropic SSE frames, padding each event's JSON the way real streams do.
struct AnthropicFrames<'i> {
    ids: &'i Ids,
    frames: Vec<Frame>,
}

impl AnthropicFrames<'_> {
    fn event(&mut self, event: &AEvent<'_>, pace: Pace) {
        let pad = usize::try_from(self.ids.number(SALT_PAD + count(self.frames.len())) % MAX_PAD)
            .unwrap_or(0);
        let mut data = json(event);
        // Real streams pad inside the closing brace: `{"type":"message_stop"      }`.
        if data.ends_with('}') {
            // `}` is one byte, so `len - 1` is a char boundary.
            data.insert_str(data.len() - 1, &" ".repeat(pad));
        }
        self.frames.push(Frame {
            bytes: format!("event: {}\ndata: {data}\n\n", event.name()),
            pace,
        });
    }

    /// `ping` is written by hand: its JSON has a space after the colon on the real wire.
    fn ping(&mut self) {
        self.frames.push(Frame {
            bytes: "event: ping\ndata: {\"type\": \"ping\"}\n\n".to_owned(),
            pace: Pace::Grouped,
        });
    }
}

pub(super) fn anthropic_frames(req: &Request, ids: &Ids, answer: &Answer) -> Vec<Frame> {
    let mut out = AnthropicFrames {
        ids,
        frames: Vec::new(),
    };
    let id = ids.message();
    let start = AEvent::MessageStart {
        message: AMessage {
            model: &req.model,
            id: &id,
            kind: "message",
            role: "assistant",
            content: Vec::new(),
            stop_reason: None,
            stop_sequence: None,
            stop_details: None,
            usage: AUsage::new(&answer.usage, 1),
        },
    };
    out.event(&start, Pace::Grouped);
    if answer.blocks.is_empty() {
        out.ping();
    }
    for (index, block) in answer.blocks.iter().enumerate() {
        let content_block = match block {
            Block::Thinking { .. } => ABlock::Thinking {
                thinking: "",
                signature: "",
            },
            Block::Text(_) | Block::Refusal(_) => ABlock::Text { text: "" },
            Block::Tool(call) => ABlock::ToolUse {
                id: &call.id,
                name: &call.name,
                input: ArgsObject(&[]),
                caller: DIRECT,
            },
        };
        out.event(
            &AEvent::ContentBlockStart {
                index,
                content_block,
            },
            Pace::Grouped,
        );
        if index == 0 {
            // Recorded streams ping right after the first content_block_start.
            out.ping();
        }
        let delta = |delta| AEvent::ContentBlockDelta { index, delta };
        match block {
            Block::Thinking { pieces, signature } => {
                for piece in pieces {
                    out.event(&delta(ADelta::Thinking { thinking: piece }), Pace::Paced);
                }
                out.event(&delta(ADelta::Signature { signature }), Pace::Grouped);
            }
            Block::Text(pieces) | Block::Refusal(pieces) => {
                for piece in pieces {
                    out.event(&delta(ADelta::Text { text: piece }), Pace::Paced);
                }
            }
            Block::Tool(call) => {
                // The first input_json_delta is always empty in real streams.
                out.event(
                    &delta(ADelta::InputJson { partial_json: "" }),
                    Pace::Grouped,
                );
                for piece in &call.pieces {
                    let partial = ADelta::InputJson {
                        partial_json: piece,
                    };
                    out.event(&delta(partial), Pace::Paced);
                }
            }
        }
        out.event(&AEvent::ContentBlockStop { index }, Pace::Grouped);
    }
    let end = AEvent::MessageDelta {
        delta: AMessageDelta {
            stop_reason: answer.stop.anthropic(),
            stop_sequence: answer.stop.sequence(),
            stop_details: answer.stop.is_refusal().then_some(REFUSAL_DETAILS),
        },
        usage: AUsageDelta {
            input_tokens: answer.usage.uncached(),
            cache_creation_input_tokens: answer.usage.cache_write,
            cache_read_input_tokens: answer.usage.cache_read,
            output_tokens: answer.usage.output,
        },
    };
    out.event(&end, Pace::Final);
    out.event(&AEvent::MessageStop, Pace::Final);
    out.frames
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use crate::mock::script::answer::THINKING_TEXT;
    use crate::mock::script::ids::SIGNATURE_LEN;
    use crate::mock::script::testing::*;
    use crate::mock::script::Api;
    use crate::mock::script::Step;
    use serde_json::json;
    use serde_json::Value;

    #[test]
    fn anthropic_non_stream_text() {
        let body = anthropic(
            "What is   the weather in Paris today? mock:itl=0 please",
            json!({}),
        );
        let steps = run(Api::AnthropicMessages, &body);
        let (h, text, v) = fixed(&steps);
        assert_eq!(h.status, 200);
        keys_in_order(
            &text,
            &[
                "model",
                "id",
                "type",
                "role",
                "content",
                "stop_reason",
                "stop_sequence",
                "usage",
                "input_tokens",
                "cache_creation_input_tokens",
                "cache_read_input_tokens",
                "cache_creation",
                "output_tokens",
                "service_tier",
            ],
        );
        let id = v["id"].as_str().unwrap();
        assert!(id.starts_with("msg_01") && id.len() == 28, "{id}");
        assert!(id[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(v["model"], "claude-test");
        assert_eq!(v["type"], "message");
        assert_eq!(v["role"], "assistant");
        let answer =
            "Hello from the ringway mock. You said: What is the weather in Paris today? please";
        assert_eq!(v["content"], json!([{"type": "text", "text": answer}]));
        assert_eq!(v["stop_reason"], "end_turn");
        assert_eq!(v["stop_sequence"], Value::Null);
        assert!(v.get("stop_details").is_none());
        assert_eq!(v["usage"]["input_tokens"], input_tokens(&body));
        assert_eq!(v["usage"]["output_tokens"], answer.split(' ').count());
        assert_eq!(v["usage"]["cache_read_input_tokens"], 0);
        // itl=0 override: the reply waits for ttft only.
        assert_eq!(sleeps(&steps), vec![TTFT]);
    }

    #[test]
    fn anthropic_stream_text() {
        let body = anthropic("tell me a story", json!({"stream": true}));
        let steps = run(Api::AnthropicMessages, &body);
        let h = head(&steps);
        assert_eq!(h.status, 200);
        assert_eq!(h.content_length, None);
        assert_eq!(
            h.header("content-type"),
            Some("text/event-stream; charset=utf-8")
        );
        assert_eq!(h.header("cache-control"), Some("no-cache"));
        assert!(matches!(steps.first(), Some(Step::Head { .. })));
        assert_eq!(steps.last(), Some(&Step::End));
        let events = a_events(&steps);
        let names = a_names(&events);
        let expected_text = "Hello from the ringway mock. You said: tell me a story";
        let words = expected_text.split(' ').count();
        let mut expected = vec!["message_start", "content_block_start", "ping"];
        expected.extend(std::iter::repeat_n("content_block_delta", words));
        expected.extend(["content_block_stop", "message_delta", "message_stop"]);
        assert_eq!(names, expected);
        let start = &events[0].1["message"];
        assert_eq!(start["content"], json!([]));
        assert_eq!(start["stop_reason"], Value::Null);
        assert_eq!(start["usage"]["output_tokens"], 1);
        assert_eq!(start["usage"]["input_tokens"], input_tokens(&body));
        assert!(start["id"].as_str().unwrap().starts_with("msg_01"));
        assert_eq!(
            events[1].1["content_block"],
            json!({"type": "text", "text": ""})
        );
        assert_eq!(a_text(&events, 0), expected_text);
        // One word per delta, each with its leading space.
        assert_eq!(events[3].1["delta"]["text"], "Hello");
        assert_eq!(events[4].1["delta"]["text"], " from");
        let delta = &events[events.len() - 2].1;
        assert_eq!(
            delta["delta"],
            json!({"stop_reason": "end_turn", "stop_sequence": null})
        );
        assert_eq!(delta["usage"]["output_tokens"], words);
        assert_eq!(delta["usage"]["input_tokens"], input_tokens(&body));
        // ttft once, then itl between deltas.
        let mut expected_sleeps = vec![TTFT];
        expected_sleeps.extend(std::iter::repeat_n(ITL, words - 1));
        assert_eq!(sleeps(&steps), expected_sleeps);
        // Padding inside the closing brace, and the ping's odd spacing, as on the real wire.
        let raw = body_of(&steps);
        assert!(raw.contains("event: ping\ndata: {\"type\": \"ping\"}\n\n"));
        assert!(raw.contains(" }\n\n"), "some event is padded");
        // Same text as the non-streaming answer.
        let body = anthropic("tell me a story", json!({"stream": false}));
        let v = fixed(&run(Api::AnthropicMessages, &body)).2;
        assert_eq!(v["content"][0]["text"], expected_text);
    }

    #[test]
    fn stream_groups_structural_events_with_their_neighbours() {
        let body = anthropic("x", json!({"stream": true}));
        let steps = run(Api::AnthropicMessages, &body);
        let Step::Data(first) = &steps[1] else {
            panic!("data after head")
        };
        let first = std::str::from_utf8(first).unwrap();
        assert!(first.starts_with("event: message_start"));
        assert!(first.contains("event: content_block_start") && first.contains("event: ping"));
        assert_eq!(steps[2], Step::Sleep(TTFT));
        let Step::Data(last) = &steps[steps.len() - 2] else {
            panic!("data before end")
        };
        let last = std::str::from_utf8(last).unwrap();
        assert!(last.starts_with("event: content_block_stop"));
        assert!(last.contains("event: message_delta"));
        assert!(last.contains("event: message_stop"));
    }

    #[test]
    fn anthropic_tool_call_non_stream_and_stream() {
        let body = anthropic("weather?", json!({"tools": [weather_tool_anthropic()]}));
        let (_, text, v) = fixed(&run(Api::AnthropicMessages, &body));
        assert_eq!(v["stop_reason"], "tool_use");
        let block = &v["content"][0];
        assert_eq!(v["content"].as_array().unwrap().len(), 1);
        assert_eq!(block["type"], "tool_use");
        assert_eq!(block["name"], "get_weather");
        assert_eq!(block["input"], expected_weather_args());
        assert_eq!(block["caller"], json!({"type": "direct"}));
        let id = block["id"].as_str().unwrap();
        assert!(id.starts_with("toolu_01") && id.len() == 30, "{id}");
        // Arguments keep the schema's `required` order.
        keys_in_order(
            &text,
            &[
                "location", "units", "days", "detailed", "tags", "extra", "note",
            ],
        );

        let body = anthropic(
            "weather?",
            json!({"tools": [weather_tool_anthropic()], "stream": true}),
        );
        let events = a_events(&run(Api::AnthropicMessages, &body));
        assert_eq!(
            a_names(&events),
            vec![
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_delta",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ]
        );
        let start = &events[1].1["content_block"];
        assert_eq!(start["type"], "tool_use");
        assert_eq!(start["input"], json!({}));
        assert_eq!(start["name"], "get_weather");
        let partials: Vec<&str> = events
            .iter()
            .filter_map(|(_, v)| v["delta"]["partial_json"].as_str())
            .collect();
        assert_eq!(partials.len(), 4);
        assert_eq!(partials[0], "");
        let joined: String = partials.concat();
        assert!(joined.starts_with("{\"location\": \"mock\", "), "{joined}");
        assert_eq!(
            serde_json::from_str::<Value>(&joined).unwrap(),
            expected_weather_args()
        );
        // Fragments are not whole JSON values on their own.
        assert!(serde_json::from_str::<Value>(partials[1]).is_err());
        assert_eq!(events[8].1["delta"]["stop_reason"], "tool_use");
        assert!(events[8].1["usage"]["output_tokens"].as_u64().unwrap() > 1);
    }

    #[test]
    fn anthropic_tool_without_arguments_streams_only_the_empty_delta() {
        let tool =
            json!({"name": "ping_server", "input_schema": {"type": "object", "properties": {}}});
        let body = anthropic("go", json!({"tools": [tool], "stream": true}));
        let events = a_events(&run(Api::AnthropicMessages, &body));
        let partials: Vec<&str> = events
            .iter()
            .filter_map(|(_, v)| v["delta"]["partial_json"].as_str())
            .collect();
        assert_eq!(partials, vec![""]);
        let body = anthropic("go", json!({"tools": [tool]}));
        let v = fixed(&run(Api::AnthropicMessages, &body)).2;
        assert_eq!(v["content"][0]["input"], json!({}));
        let body = openai(
            "go",
            json!({"tools": [openai_tool("ping_server", json!({}))], "stream": true}),
        );
        let (chunks, _) = o_chunks(&run(Api::OpenAiChat, &body));
        let args: String = chunks
            .iter()
            .filter_map(|c| {
                c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
            })
            .collect();
        assert_eq!(args, "{}");
    }

    #[test]
    fn anthropic_parallel_tools_are_sequential_blocks() {
        let body = anthropic(
            "mock:parallel",
            json!({"tools": [weather_tool_anthropic()], "stream": true}),
        );
        let events = a_events(&run(Api::AnthropicMessages, &body));
        let starts: Vec<&Value> = events
            .iter()
            .filter(|(n, _)| n == "content_block_start")
            .map(|(_, v)| v)
            .collect();
        assert_eq!(starts.len(), 2);
        assert_eq!(starts[0]["index"], 0);
        assert_eq!(starts[1]["index"], 1);
        // Only one tool declared: it is called twice, with distinct ids.
        assert_eq!(starts[1]["content_block"]["name"], "get_weather");
        assert_ne!(
            starts[0]["content_block"]["id"],
            starts[1]["content_block"]["id"]
        );
        let stops = events
            .iter()
            .filter(|(n, _)| n == "content_block_stop")
            .count();
        assert_eq!(stops, 2);
        // disable_parallel_tool_use keeps one.
        let body = anthropic(
            "mock:parallel",
            json!({"tools": [weather_tool_anthropic()],
                   "tool_choice": {"type": "auto", "disable_parallel_tool_use": true}}),
        );
        let v = fixed(&run(Api::AnthropicMessages, &body)).2;
        assert_eq!(v["content"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn anthropic_thinking() {
        let body = anthropic("mock:thinking hi", json!({"stream": true}));
        let events = a_events(&run(Api::AnthropicMessages, &body));
        assert_eq!(
            events[1].1["content_block"],
            json!({"type": "thinking", "thinking": "", "signature": ""})
        );
        assert_eq!(events[2].0, "ping");
        let thinking: String = events
            .iter()
            .filter_map(|(_, v)| v["delta"]["thinking"].as_str())
            .collect();
        assert_eq!(thinking, THINKING_TEXT);
        let sig_at = events
            .iter()
            .position(|(_, v)| v["delta"]["type"] == "signature_delta")
            .unwrap();
        assert_eq!(events[sig_at + 1].0, "content_block_stop");
        assert_eq!(events[sig_at + 1].1["index"], 0);
        assert_eq!(events[sig_at + 2].1["content_block"]["type"], "text");
        assert_eq!(events[sig_at + 2].1["index"], 1);
        // No text_delta inside the thinking block.
        assert!(events[..sig_at]
            .iter()
            .all(|(_, v)| v["delta"]["type"] != "text_delta"));
        let signature = events[sig_at].1["delta"]["signature"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(signature.len(), SIGNATURE_LEN);
        assert!(a_text(&events, 1).ends_with("said: hi"));

        let body = anthropic("mock:thinking hi", json!({}));
        let v = fixed(&run(Api::AnthropicMessages, &body)).2;
        assert_eq!(v["content"][0]["type"], "thinking");
        assert_eq!(v["content"][0]["thinking"], THINKING_TEXT);
        assert_eq!(
            v["content"][0]["signature"].as_str().unwrap().len(),
            SIGNATURE_LEN
        );
        assert_eq!(v["content"][1]["type"], "text");
        let words = THINKING_TEXT.split(' ').count() + 8;
        assert_eq!(v["usage"]["output_tokens"], words);

        // OpenAI has no thinking output.
        let v = fixed(&run(
            Api::OpenAiChat,
            &openai("mock:thinking hi", json!({})),
        ))
        .2;
        assert!(v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .starts_with("Hello"));
        assert!(!v.to_string().contains("reasoning_content"));
    }
}
