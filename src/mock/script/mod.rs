//! The mock provider's brain: turns one request body into the exact bytes and pauses a real
//! OpenAI or Anthropic endpoint would produce, as a list of [`Step`]s for the IO executor.
//!
//! Everything here is a pure function of the request body and [`Defaults`]: no clock, no
//! randomness. Ids, padding and signatures come from a hash of the body, so the same body always
//! gives the same bytes.
//!
//! Tests steer the mock through the text of the last user message that has text (so a test
//! through the gateway needs nothing but the prompt, and the question's directives still apply to
//! the tool-result turn that follows it). Directives are whitespace-separated words, left out of
//! the echoed prompt; unknown ones are ignored:
//!
//! | directive | effect |
//! |---|---|
//! | `mock:status=N` (400..=599) | reply with that status and the provider's error body; 429 adds `retry-after: 1` |
//! | `mock:midstream_error` | stream [`FAULT_AFTER_TOKENS`] tokens, then the provider's in-stream error, then end |
//! | `mock:reset` | stream [`FAULT_AFTER_TOKENS`] tokens then reset; non-stream: reset before any byte |
//! | `mock:stall` | stream the head and first token then hang; non-stream: hang before the head |
//! | `mock:ttft=MS`, `mock:itl=MS` | override time to first token / inter-token delay |
//! | `mock:tokens=N` | answer exactly `w1 w2 … wN` |
//! | `mock:big=N` | answer text sized so the non-stream body is about N bytes |
//! | `mock:parallel` | call the first two tools at once |
//! | `mock:tool=NAME` | call the tool NAME instead of the first declared one (even an undeclared one) |
//! | `mock:args=JSON` | a JSON object without spaces: the (first) call's arguments, verbatim |
//! | `mock:notools` | answer with text although tools are declared |
//! | `mock:calls=N` | after each tool result, call the tool again (same arguments) until the turn has made N rounds of calls, then answer (a multi-step tool loop) |
//! | `mock:preamble` | when calling tools, write [`PREAMBLE_TEXT`] first (text, then the calls, as models often do) |
//! | `mock:thinking` | Anthropic: a signed thinking block before the answer |
//! | `mock:thinking=echo` | the same, its text also repeating the prompt's words and naming a contact address of its own, as a model's reasoning does |
//! | `mock:reasoning_content` | OpenAI: the thinking text as `reasoning_content` before the answer (as reasoning Chat providers such as DeepSeek send it) |
//! | `mock:ascii` | non-streaming: non-ASCII characters written as `\uXXXX` escapes (Python's `ensure_ascii`) |
//! | `mock:refusal` | Anthropic `stop_reason: refusal`; OpenAI `refusal` text with `finish_reason: stop` |
//! | `mock:content_filter` | a few tokens, then OpenAI `finish_reason: content_filter` (Anthropic: refusal) |
//! | `mock:cache` | half of the input tokens are reported as cache reads |
//! | `mock:input=N`, `mock:cache_read=N`, `mock:cache_write=N`, `mock:reasoning=N` | the usage reported, see `UsageDirectives` in directives.rs |
//!
//! Precedence: a status wins over everything; then reset > stall > midstream_error; a
//! non-streaming `midstream_error` becomes a 529 (Anthropic) / 500 (OpenAI). The answer is a
//! refusal, else tool calls, else `big`, else `tokens`, else a tool-result acknowledgement, else
//! the greeting. `count_tokens` honours only `mock:status`.
//!
//! Like the real Messages API, the mock refuses (400) `thinking.type: enabled` for
//! adaptive-only model ids (`claude-opus-4-7`, the 5 family, …) and `thinking.type: adaptive`
//! for ids older than 4.6, before any directive applies. Like it too, the mock refuses (400)
//! an assistant `thinking` block whose signature is not the one it gave that exact text
//! (signatures are a hash of the thinking text).
//!
//! Tools are called when the request declares some, its `tool_choice` allows it, the conversation
//! does not end in tool results (or `mock:calls=N` asks for more rounds) and `mock:notools` is absent. A `tool_choice` naming a tool wins
//! over `mock:tool` (a real model must obey it); `mock:args` that is not a JSON object is ignored.

mod answer;
mod anthropic;
mod directives;
mod errors;
mod framing;
pub mod gemini;
mod ids;
mod json;
mod openai;
mod request;
mod step;
#[cfg(test)]
mod testing;

use std::time::Duration;

use serde::Serialize;

use answer::{compose, filler, tokens_for_bytes, Answer, Block, Stop};
use anthropic::{anthropic_body, anthropic_frames};
use directives::{Directives, Fault};
use errors::{anthropic_error_frame, error_response, openai_error_frame, ErrorText};
use framing::{fixed_response, schedule_stream, Timing};
use ids::Ids;
use json::{ascii_only, json};
use openai::{openai_body, openai_frames};
use request::{parse_request, Request};

pub use answer::{BIG_STREAM_PIECE_BYTES, ECHO_WORDS, PREAMBLE_TEXT};
pub use directives::{
    FAULT_AFTER_TOKENS, MAX_BIG_BYTES, MAX_DIRECTIVE_DELAY_MS, MAX_DIRECTIVE_TOKENS,
};
pub(crate) use errors::{status_reply, stream_error_event};
pub use openai::CREATED_UNIX;
pub use step::{api_for_path, Api, Defaults, Step};

/// Plans the whole response to one request body: status, headers, body bytes, pauses, faults.
pub fn plan(api: Api, body: &[u8], defaults: &Defaults) -> Vec<Step> {
    let ids = Ids::new(body);
    let input_tokens = u64::try_from(body.len().div_ceil(4)).unwrap_or(u64::MAX);
    let req = match parse_request(api, body) {
        Ok(req) => req,
        Err(err) => return error_response(api, &ids, 400, &ErrorText::Request(&err)),
    };
    let dirs = Directives::parse(&req.user_text);
    if let Some(status) = dirs.status {
        return error_response(api, &ids, status, &ErrorText::Status);
    }
    if api == Api::AnthropicCountTokens {
        let body = json(&CountTokens { input_tokens });
        return fixed_response(&ids, api, 200, body.into_bytes(), Duration::ZERO);
    }
    let timing = Timing {
        ttft: dirs.ttft.unwrap_or(defaults.ttft),
        itl: dirs.itl.unwrap_or(defaults.inter_token),
    };
    if !req.stream {
        match dirs.fault {
            Some(Fault::Reset) => return vec![Step::Reset],
            Some(Fault::Stall) => return vec![Step::Stall],
            // A non-streaming reply cannot break halfway; the nearest thing is a 5xx.
            Some(Fault::MidstreamError) => {
                let status = if api == Api::OpenAiChat { 500 } else { 529 };
                return error_response(api, &ids, status, &ErrorText::Status);
            }
            None => {}
        }
    }
    let mut answer = compose(api, &req, &dirs, &ids, input_tokens);
    dirs.usage.apply(api, &mut answer);
    if req.stream {
        let frames = match api {
            Api::OpenAiChat => openai_frames(&req, &ids, &answer),
            _ => anthropic_frames(&req, &ids, &answer),
        };
        let error_frame = match api {
            Api::OpenAiChat => openai_error_frame(),
            _ => anthropic_error_frame(&ids),
        };
        schedule_stream(api, &ids, frames, timing, dirs.fault, error_frame)
    } else {
        if let (Some(target), Stop::EndTurn) = (dirs.big, &answer.stop) {
            // Size the text so the whole body lands near the requested size: measure the
            // envelope around a one-byte text (an empty one would drop the block), then fill.
            set_last_text(&mut answer, vec![String::from("w")]);
            answer.usage.output = tokens_for_bytes(target);
            let overhead = render_body(api, &req, &ids, &answer)
                .len()
                .saturating_sub(1);
            let text = filler(target.saturating_sub(overhead));
            answer.usage.output = tokens_for_bytes(text.len());
            set_last_text(&mut answer, vec![text]);
        }
        let delay = timing.total(answer.paced_count());
        let mut body = render_body(api, &req, &ids, &answer);
        if dirs.ascii {
            body = ascii_only(&body);
        }
        fixed_response(&ids, api, 200, body, delay)
    }
}

fn set_last_text(answer: &mut Answer, text: Vec<String>) {
    if let Some(Block::Text(pieces)) = answer.blocks.last_mut() {
        *pieces = text;
    }
}

fn render_body(api: Api, req: &Request, ids: &Ids, answer: &Answer) -> Vec<u8> {
    match api {
        Api::OpenAiChat => openai_body(req, ids, answer),
        _ => anthropic_body(req, ids, answer),
    }
    .into_bytes()
}

#[derive(Serialize)]
struct CountTokens {
    input_tokens: u64,
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
    use crate::mock::script::testing::*;
    use serde_json::json;

    #[test]
    fn count_tokens() {
        let body = anthropic("hello", json!({}));
        let steps = run(Api::AnthropicCountTokens, &body);
        let (h, text, _) = fixed(&steps);
        assert_eq!(h.status, 200);
        assert_eq!(
            text,
            format!("{{\"input_tokens\":{}}}", input_tokens(&body))
        );
        assert!(sleeps(&steps).is_empty());
    }

    /// Random requests in both formats: no panics, every frame parses, streams are well formed.
    #[test]
    fn random_requests_produce_well_formed_output() {
        const DIRECTIVES: &[&str] = &[
            "mock:parallel",
            "mock:thinking",
            "mock:refusal",
            "mock:content_filter",
            "mock:cache",
            "mock:tokens=4",
            "mock:midstream_error",
            "mock:reset",
            "mock:stall",
            "mock:status=429",
            "mock:big=3000",
            "mock:ttft=1",
            "mock:notools",
            "mock:tool=get_weather",
            "mock:tool=ghost",
            r#"mock:args={"k":[1,"v"]}"#,
            "",
        ];
        let mut rng = Prng(0x1234_5678_9abc_def1);
        for round in 0..400 {
            let mut prompt = rng.text(20);
            for _ in 0..rng.below(3) {
                prompt.push(' ');
                prompt.push_str(DIRECTIVES[rng.below(DIRECTIVES.len())]);
            }
            let stream = rng.below(2) == 0;
            let with_tools = rng.below(2) == 0;
            let stops = json!([rng.text(3)]);
            let api = [
                Api::OpenAiChat,
                Api::AnthropicMessages,
                Api::AnthropicCountTokens,
            ][round % 3];
            let body = match api {
                Api::OpenAiChat => {
                    let tools = if with_tools {
                        json!([weather_tool_openai()])
                    } else {
                        json!([])
                    };
                    openai(
                        &prompt,
                        json!({"stream": stream, "tools": tools, "stop": stops,
                        "max_tokens": rng.below(12), "stream_options": {"include_usage": rng.below(2) == 0}}),
                    )
                }
                _ => {
                    let tools = if with_tools {
                        json!([weather_tool_anthropic()])
                    } else {
                        json!([])
                    };
                    anthropic(
                        &prompt,
                        json!({"stream": stream, "tools": tools,
                        "stop_sequences": stops, "max_tokens": rng.below(12)}),
                    )
                }
            };
            let steps = run(api, &body);
            assert_eq!(steps, run(api, &body));
            match steps.last() {
                Some(Step::Reset | Step::Stall) => continue,
                Some(Step::End) => {}
                other => panic!("plan ends with {other:?}"),
            }
            let h = head(&steps);
            if h.content_length.is_some() {
                fixed(&steps);
                continue;
            }
            if api == Api::OpenAiChat {
                let (chunks, done) = o_chunks(&steps);
                let errored = chunks.last().is_some_and(|c| c.get("error").is_some());
                assert!(done != errored);
                let finishes = chunks
                    .iter()
                    .filter(|c| !c["choices"][0]["finish_reason"].is_null())
                    .count();
                assert_eq!(finishes, usize::from(done));
            } else {
                let events = a_events(&steps);
                assert_eq!(events[0].0, "message_start");
                let last = events.last().unwrap().0.as_str();
                assert!(last == "message_stop" || last == "error");
                // Block indexes open in order and every open block closes before the end.
                let mut open: Option<u64> = None;
                let mut next = 0;
                for (name, v) in &events {
                    match name.as_str() {
                        "content_block_start" => {
                            assert!(open.is_none());
                            assert_eq!(v["index"], next);
                            open = Some(next);
                            next += 1;
                        }
                        "content_block_delta" => {
                            assert_eq!(Some(v["index"].as_u64().unwrap()), open)
                        }
                        "content_block_stop" => {
                            assert_eq!(Some(v["index"].as_u64().unwrap()), open);
                            open = None;
                        }
                        "message_delta" => assert!(open.is_none()),
                        _ => {}
                    }
                }
            }
        }
    }
}
