//! OpenAI rendering: a Chat Completions body, or its SSE chunks, for a composed answer.

use serde::Serialize;

use super::answer::{Answer, Block, Usage};
use super::framing::{Frame, Pace};
use super::ids::{count, Ids, BASE62, SALT_OBFUSCATION};
use super::json::{json, json_pretty};
use super::request::Request;

/// The fixed `created` timestamp of every OpenAI response (no clock: output must be deterministic).
pub const CREATED_UNIX: u64 = 1_750_000_000;

/// Longest OpenAI `obfuscation` filler string.
const MAX_OBFUSCATION: u64 = 12;

#[derive(Serialize)]
struct OCompletion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [OChoice<'a>; 1],
    usage: OUsage,
    service_tier: &'static str,
    system_fingerprint: &'a str,
}

#[derive(Serialize)]
struct OChoice<'a> {
    index: u32,
    message: OMessage<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct OMessage<'a> {
    role: &'static str,
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<OToolCall<'a>>>,
    refusal: Option<&'a str>,
    annotations: [(); 0],
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
}

#[derive(Serialize)]
struct OToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: OFunction<'a>,
}

#[derive(Serialize)]
struct OFunction<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct OUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: OPromptDetails,
    completion_tokens_details: OCompletionDetails,
}

#[derive(Serialize)]
struct OPromptDetails {
    cached_tokens: u64,
    audio_tokens: u64,
}

#[derive(Serialize)]
struct OCompletionDetails {
    reasoning_tokens: u64,
    audio_tokens: u64,
    accepted_prediction_tokens: u64,
    rejected_prediction_tokens: u64,
}

impl OUsage {
    fn new(usage: &Usage) -> Self {
        Self {
            prompt_tokens: usage.input,
            completion_tokens: usage.output,
            total_tokens: usage.input.saturating_add(usage.output),
            prompt_tokens_details: OPromptDetails {
                cached_tokens: usage.cache_read,
                audio_tokens: 0,
            },
            completion_tokens_details: OCompletionDetails {
                reasoning_tokens: usage.reasoning,
                audio_tokens: 0,
                accepted_prediction_tokens: 0,
                rejected_prediction_tokens: 0,
            },
        }
    }
}

#[derive(Serialize)]
struct OChunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    service_tier: &'static str,
    system_fingerprint: &'a str,
    choices: Vec<OChunkChoice<'a>>,
    /// Absent unless `include_usage`; then `null` on every chunk but the usage chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<OUsage>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    obfuscation: Option<String>,
}

#[derive(Serialize)]
struct OChunkChoice<'a> {
    index: u32,
    delta: ODelta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

/// A streamed delta. Double options tell "absent" (outer `None`) from `null` (`Some(None)`).
#[derive(Serialize, Default)]
struct ODelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refusal: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[OToolDelta<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
}

#[derive(Serialize)]
struct OToolDelta<'a> {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: OFunctionDelta<'a>,
}

#[derive(Serialize)]
struct OFunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

pub(super) fn openai_body(req: &Request, ids: &Ids, answer: &Answer) -> String {
    let mut text: Option<String> = None;
    let mut refusal: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut calls = Vec::new();
    for block in &answer.blocks {
        match block {
            Block::Text(pieces) => text
                .get_or_insert_with(String::new)
                .push_str(&pieces.concat()),
            Block::Refusal(pieces) => {
                refusal
                    .get_or_insert_with(String::new)
                    .push_str(&pieces.concat());
            }
            Block::Tool(call) => calls.push(OToolCall {
                id: &call.id,
                kind: "function",
                function: OFunction {
                    name: &call.name,
                    arguments: &call.args_text,
                },
            }),
            Block::Thinking { pieces, .. } => reasoning
                .get_or_insert_with(String::new)
                .push_str(&pieces.concat()),
        }
    }
    let (id, fingerprint) = (ids.chatcmpl(), ids.fingerprint());
    json_pretty(&OCompletion {
        id: &id,
        object: "chat.completion",
        created: CREATED_UNIX,
        model: &req.model,
        choices: [OChoice {
            index: 0,
            message: OMessage {
                role: "assistant",
                content: text.as_deref(),
                tool_calls: (!calls.is_empty()).then_some(calls),
                refusal: refusal.as_deref(),
                annotations: [],
                reasoning_content: reasoning.as_deref(),
            },
            logprobs: None,
            finish_reason: answer.stop.openai(),
        }],
        usage: OUsage::new(&answer.usage),
        service_tier: "default",
        system_fingerprint: &fingerprint,
    })
}

/// Collects OpenAI SSE frames; every chunk repeats the same envelope fields.
struct OpenAiFrames<'i> {
    ids: &'i Ids,
    id: String,
    model: &'i str,
    fingerprint: String,
    include_usage: bool,
    obfuscation: bool,
    frames: Vec<Frame>,
}

impl OpenAiFrames<'_> {
    fn chunk(&mut self, choices: Vec<OChunkChoice<'_>>, usage: Option<OUsage>, pace: Pace) {
        let obfuscation = self.obfuscation.then(|| {
            let salt = SALT_OBFUSCATION + count(self.frames.len());
            let len = 1 + self.ids.number(salt) % MAX_OBFUSCATION;
            self.ids
                .text(salt, usize::try_from(len).unwrap_or(1), BASE62)
        });
        let chunk = OChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: CREATED_UNIX,
            model: self.model,
            service_tier: "default",
            system_fingerprint: &self.fingerprint,
            choices,
            usage: self.include_usage.then_some(usage),
            obfuscation,
        };
        self.frames.push(Frame {
            bytes: format!("data: {}\n\n", json(&chunk)),
            pace,
        });
    }

    fn delta(&mut self, delta: ODelta<'_>, pace: Pace) {
        let choice = OChunkChoice {
            index: 0,
            delta,
            logprobs: None,
            finish_reason: None,
        };
        self.chunk(vec![choice], None, pace);
    }
}

pub(super) fn openai_frames(req: &Request, ids: &Ids, answer: &Answer) -> Vec<Frame> {
    let mut out = OpenAiFrames {
        ids,
        id: ids.chatcmpl(),
        model: &req.model,
        fingerprint: ids.fingerprint(),
        include_usage: req.include_usage,
        obfuscation: req.obfuscation,
        frames: Vec::new(),
    };
    // The role chunk's shape depends on what follows (all three shapes are recorded).
    let first = match answer
        .blocks
        .iter()
        .find(|b| !matches!(b, Block::Thinking { .. }))
    {
        Some(Block::Tool(_)) => ODelta {
            role: Some("assistant"),
            content: Some(None),
            ..ODelta::default()
        },
        Some(Block::Refusal(_)) => ODelta {
            role: Some("assistant"),
            content: Some(None),
            refusal: Some(Some("")),
            ..ODelta::default()
        },
        _ => ODelta {
            role: Some("assistant"),
            content: Some(Some("")),
            refusal: Some(None),
            ..ODelta::default()
        },
    };
    out.delta(first, Pace::Grouped);
    let mut tool_index = 0usize;
    for block in &answer.blocks {
        match block {
            Block::Thinking { pieces, .. } => {
                for piece in pieces {
                    let delta = ODelta {
                        reasoning_content: Some(piece),
                        ..ODelta::default()
                    };
                    out.delta(delta, Pace::Paced);
                }
            }
            Block::Text(pieces) => {
                for piece in pieces {
                    let delta = ODelta {
                        content: Some(Some(piece)),
                        ..ODelta::default()
                    };
                    out.delta(delta, Pace::Paced);
                }
            }
            Block::Refusal(pieces) => {
                for piece in pieces {
                    let delta = ODelta {
                        refusal: Some(Some(piece)),
                        ..ODelta::default()
                    };
                    out.delta(delta, Pace::Paced);
                }
            }
            Block::Tool(call) => {
                // id, type and name only on a call's first delta: SDK accumulators concatenate.
                let head = OToolDelta {
                    index: tool_index,
                    id: Some(&call.id),
                    kind: Some("function"),
                    function: OFunctionDelta {
                        name: Some(&call.name),
                        arguments: "",
                    },
                };
                let delta = ODelta {
                    tool_calls: Some([head]),
                    ..ODelta::default()
                };
                out.delta(delta, Pace::Paced);
                // A call without arguments still needs valid JSON: OpenAI sends "{}".
                let no_args = [call.args_text.clone()];
                let pieces = if call.pieces.is_empty() {
                    &no_args[..]
                } else {
                    &call.pieces[..]
                };
                for piece in pieces {
                    let fragment = OToolDelta {
                        index: tool_index,
                        id: None,
                        kind: None,
                        function: OFunctionDelta {
                            name: None,
                            arguments: piece,
                        },
                    };
                    let delta = ODelta {
                        tool_calls: Some([fragment]),
                        ..ODelta::default()
                    };
                    out.delta(delta, Pace::Paced);
                }
                tool_index += 1;
            }
        }
    }
    let finish = OChunkChoice {
        index: 0,
        delta: ODelta::default(),
        logprobs: None,
        finish_reason: Some(answer.stop.openai()),
    };
    out.chunk(vec![finish], None, Pace::Final);
    if req.include_usage {
        out.chunk(Vec::new(), Some(OUsage::new(&answer.usage)), Pace::Final);
    }
    out.frames.push(Frame {
        bytes: "data: [DONE]\n\n".to_owned(),
        pace: Pace::Final,
    });
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
    use super::*;
    use crate::mock::script::answer::THINKING_TEXT;
    use crate::mock::script::testing::*;
    use crate::mock::script::Api;
    use crate::mock::script::Step;
    use serde_json::json;
    use serde_json::Value;

    #[test]
    fn openai_non_stream_text() {
        let body = openai("hi there", json!({}));
        let (h, text, v) = fixed(&run(Api::OpenAiChat, &body));
        assert_eq!(h.status, 200);
        assert!(
            text.contains("\n  \"id\""),
            "pretty printed like the real API"
        );
        keys_in_order(
            &text,
            &[
                "id",
                "object",
                "created",
                "model",
                "choices",
                "index",
                "message",
                "role",
                "content",
                "refusal",
                "annotations",
                "logprobs",
                "finish_reason",
                "usage",
                "prompt_tokens",
                "completion_tokens",
                "total_tokens",
                "prompt_tokens_details",
                "cached_tokens",
                "completion_tokens_details",
                "reasoning_tokens",
                "service_tier",
                "system_fingerprint",
            ],
        );
        let id = v["id"].as_str().unwrap();
        assert!(id.starts_with("chatcmpl-") && id.len() == 38, "{id}");
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "gpt-test");
        let message = &v["choices"][0]["message"];
        assert_eq!(
            *message,
            json!({"role": "assistant", "content": "Hello from the ringway mock. You said: hi there",
                   "refusal": null, "annotations": []})
        );
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(v["choices"][0]["logprobs"], Value::Null);
        let input = input_tokens(&body);
        assert_eq!(v["usage"]["prompt_tokens"], input);
        assert_eq!(v["usage"]["completion_tokens"], 9);
        assert_eq!(v["usage"]["total_tokens"], input + 9);
        assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
        assert!(v["system_fingerprint"].as_str().unwrap().starts_with("fp_"));
        assert!(head(&run(Api::OpenAiChat, &body))
            .header("x-request-id")
            .is_some());
    }

    #[test]
    fn openai_stream_text_with_and_without_usage() {
        let body = openai(
            "hi",
            json!({"stream": true, "stream_options": {"include_usage": true}}),
        );
        let steps = run(Api::OpenAiChat, &body);
        let h = head(&steps);
        assert_eq!(h.header("content-type"), Some("text/event-stream"));
        assert_eq!(h.header("cache-control"), Some("no-cache"));
        assert_eq!(h.content_length, None);
        assert_eq!(steps.last(), Some(&Step::End));
        let (chunks, done) = o_chunks(&steps);
        assert!(done);
        let raw = body_of(&steps);
        assert!(raw.ends_with("data: [DONE]\n\n"));
        keys_in_order(
            raw.lines().next().unwrap(),
            &[
                "id",
                "object",
                "created",
                "model",
                "service_tier",
                "system_fingerprint",
                "choices",
                "index",
                "delta",
                "role",
                "content",
                "refusal",
                "logprobs",
                "finish_reason",
                "usage",
                "obfuscation",
            ],
        );
        let id = &chunks[0]["id"];
        for chunk in &chunks {
            assert_eq!(&chunk["id"], id);
            assert_eq!(chunk["object"], "chat.completion.chunk");
            assert_eq!(chunk["created"], CREATED_UNIX);
            assert!(chunk["obfuscation"].as_str().is_some_and(|o| !o.is_empty()));
        }
        assert_eq!(
            chunks[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": "", "refusal": null})
        );
        assert_eq!(o_text(&chunks), "Hello from the ringway mock. You said: hi");
        // Role appears once.
        assert_eq!(
            chunks
                .iter()
                .filter(|c| c["choices"][0]["delta"].get("role").is_some())
                .count(),
            1
        );
        let n = chunks.len();
        let finish = &chunks[n - 2];
        assert_eq!(finish["choices"][0]["delta"], json!({}));
        assert_eq!(finish["choices"][0]["finish_reason"], "stop");
        assert_eq!(finish["usage"], Value::Null);
        assert!(finish.get("usage").is_some());
        let usage = &chunks[n - 1];
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["prompt_tokens"], input_tokens(&body));
        assert_eq!(usage["usage"]["completion_tokens"], 8);
        for chunk in &chunks[..n - 2] {
            assert_eq!(chunk["choices"][0]["finish_reason"], Value::Null);
            assert_eq!(chunk["usage"], Value::Null);
        }
        let mut expected_sleeps = vec![TTFT];
        expected_sleeps.extend(std::iter::repeat_n(ITL, 7));
        assert_eq!(sleeps(&steps), expected_sleeps);

        let body = openai(
            "hi",
            json!({"stream": true, "stream_options": {"include_obfuscation": false}}),
        );
        let (chunks, done) = o_chunks(&run(Api::OpenAiChat, &body));
        assert!(done);
        assert_eq!(
            chunks.last().unwrap()["choices"][0]["finish_reason"],
            "stop"
        );
        for chunk in &chunks {
            assert!(chunk.get("usage").is_none());
            assert!(chunk.get("obfuscation").is_none());
            assert_eq!(chunk["choices"].as_array().unwrap().len(), 1);
        }
    }

    #[test]
    fn openai_tool_calls_stream_parallel() {
        let second = openai_tool(
            "get_time",
            json!({"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}),
        );
        let body = openai(
            "weather and time mock:parallel",
            json!({"tools": [weather_tool_openai(), second], "stream": true,
                   "stream_options": {"include_usage": true}}),
        );
        let (chunks, done) = o_chunks(&run(Api::OpenAiChat, &body));
        assert!(done);
        assert_eq!(
            chunks[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": null})
        );
        let mut args = [String::new(), String::new()];
        let mut ids = [Vec::new(), Vec::new()];
        let mut last_index = 0;
        for chunk in &chunks[1..chunks.len() - 2] {
            let calls = chunk["choices"][0]["delta"]["tool_calls"]
                .as_array()
                .unwrap();
            assert_eq!(calls.len(), 1);
            let call = &calls[0];
            let index = call["index"].as_u64().unwrap() as usize;
            assert!(index == last_index || index == last_index + 1, "contiguous");
            last_index = index;
            let first = ids[index].is_empty();
            // id, type and name only on the first delta of each call.
            assert_eq!(call.get("id").is_some(), first);
            assert_eq!(call.get("type").is_some(), first);
            assert_eq!(call["function"].get("name").is_some(), first);
            if first {
                assert_eq!(call["function"]["arguments"], "");
            }
            ids[index].push(call["id"].clone());
            args[index].push_str(call["function"]["arguments"].as_str().unwrap());
        }
        // A header plus three fragments per call.
        assert_eq!(ids[0].len(), 4);
        assert_eq!(ids[1].len(), 4);
        let id0 = ids[0][0].as_str().unwrap();
        let id1 = ids[1][0].as_str().unwrap();
        assert!(id0.starts_with("call_") && id0.len() == 29);
        assert_ne!(id0, id1);
        assert_eq!(
            serde_json::from_str::<Value>(&args[0]).unwrap(),
            expected_weather_args()
        );
        assert_eq!(args[1], "{\"zone\": \"mock\"}");
        let finish = &chunks[chunks.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");

        let body = openai(
            "weather and time mock:parallel",
            json!({"tools": [weather_tool_openai(), openai_tool("get_time", json!({}))]}),
        );
        let v = fixed(&run(Api::OpenAiChat, &body)).2;
        let message = &v["choices"][0]["message"];
        assert_eq!(message["content"], Value::Null);
        let calls = message["tool_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0]["type"], "function");
        assert_eq!(calls[1]["function"]["name"], "get_time");
        let arguments = calls[0]["function"]["arguments"].as_str().unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(arguments).unwrap(),
            expected_weather_args()
        );
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");

        // parallel_tool_calls: false keeps one call.
        let body = openai(
            "mock:parallel",
            json!({"tools": [weather_tool_openai(), openai_tool("b", json!({}))], "parallel_tool_calls": false}),
        );
        let v = fixed(&run(Api::OpenAiChat, &body)).2;
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn openai_reasoning_content() {
        let v = fixed(&run(
            Api::OpenAiChat,
            &openai("mock:reasoning_content hi", json!({})),
        ))
        .2;
        let message = &v["choices"][0]["message"];
        assert_eq!(message["reasoning_content"], THINKING_TEXT);
        assert!(message["content"].as_str().unwrap().starts_with("Hello"));
        let body = openai("mock:reasoning_content hi", json!({"stream": true}));
        let (chunks, _) = o_chunks(&run(Api::OpenAiChat, &body));
        let reasoning: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["reasoning_content"].as_str())
            .collect();
        assert_eq!(reasoning, THINKING_TEXT);
        // Anthropic ignores it (`mock:thinking` is its directive).
        let body = anthropic("mock:reasoning_content hi", json!({}));
        let v = fixed(&run(Api::AnthropicMessages, &body)).2;
        assert_eq!(v["content"][0]["type"], "text");
    }
}
