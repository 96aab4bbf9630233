//! The answer, provider-neutral: text, thinking, tool calls, stop reason and usage, composed
//! from the request and its directives before either renderer writes it.

use serde_json::Value;

use super::directives::{is_directive, Directives, UsageDirectives, FAULT_AFTER_TOKENS};
use super::ids::{count, Ids};
use super::json::spaced_args;
use super::request::{thinking_signature, Request, ToolChoice, ToolDef};
use super::step::Api;

/// How many words of the prompt (or tool result) the answer echoes.
pub const ECHO_WORDS: usize = 12;

/// Size of one streamed text delta for `mock:big=` answers (a word per event would be millions).
pub const BIG_STREAM_PIECE_BYTES: usize = 16 << 10;

/// Streamed tool arguments are cut into this many partial-JSON fragments.
const ARG_PIECES: usize = 3;

const GREETING: &str = "Hello from the ringway mock.";
const ECHO_PREFIX: &str = "You said:";
const TOOL_RESULT_PREFIX: &str = "Tool result received";
pub(super) const THINKING_TEXT: &str =
    "The user wants a reply from the mock. I will greet them and repeat their words.";
/// What `mock:thinking=echo` adds of its own: an address the model came up with, which no
/// request held.
pub(super) const THINKING_CONTACT: &str =
    "If that fails, they could write to help@mock.example.net.";

const REFUSAL_TEXT: &str = "I'm sorry, but I can't help with that request.";

/// The text `mock:preamble` writes before its tool calls.
pub const PREAMBLE_TEXT: &str = "Let me look that up.";

#[derive(Debug, Clone)]
pub(super) struct ToolCall {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) args: Vec<(String, Value)>,
    /// The argument JSON as the real APIs stream it (`{"a": 1, "b": "x"}` spacing).
    pub(super) args_text: String,
    /// `args_text` cut into streamed fragments (empty when there are no arguments).
    pub(super) pieces: Vec<String>,
}

#[derive(Debug, Clone)]
pub(super) enum Block {
    Thinking {
        pieces: Vec<String>,
        signature: String,
    },
    Text(Vec<String>),
    /// OpenAI `refusal` text.
    Refusal(Vec<String>),
    Tool(ToolCall),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Stop {
    EndTurn,
    MaxTokens,
    Sequence(String),
    ToolUse,
    Refusal,
    ContentFilter,
}

impl Stop {
    pub(super) fn anthropic(&self) -> &'static str {
        match self {
            Self::EndTurn => "end_turn",
            Self::MaxTokens => "max_tokens",
            Self::Sequence(_) => "stop_sequence",
            Self::ToolUse => "tool_use",
            Self::Refusal | Self::ContentFilter => "refusal",
        }
    }

    pub(super) fn openai(&self) -> &'static str {
        match self {
            // Real OpenAI refusals end with "stop" (recorded); only a filter says content_filter.
            Self::EndTurn | Self::Sequence(_) | Self::Refusal => "stop",
            Self::MaxTokens => "length",
            Self::ToolUse => "tool_calls",
            Self::ContentFilter => "content_filter",
        }
    }

    pub(super) fn sequence(&self) -> Option<&str> {
        match self {
            Self::Sequence(s) => Some(s),
            _ => None,
        }
    }

    pub(super) fn is_refusal(&self) -> bool {
        matches!(self, Self::Refusal | Self::ContentFilter)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Usage {
    /// Whole prompt, cache reads and writes included.
    pub(super) input: u64,
    pub(super) cache_read: u64,
    /// Reported by Anthropic only.
    pub(super) cache_write: u64,
    /// Output, `reasoning` included.
    pub(super) output: u64,
    /// Reported by OpenAI only (`completion_tokens_details.reasoning_tokens`).
    pub(super) reasoning: u64,
}

impl Usage {
    /// Anthropic's `input_tokens` excludes cache reads and writes.
    pub(super) fn uncached(&self) -> u64 {
        self.input
            .saturating_sub(self.cache_read)
            .saturating_sub(self.cache_write)
    }
}

#[derive(Debug, Clone)]
pub(super) struct Answer {
    pub(super) blocks: Vec<Block>,
    pub(super) stop: Stop,
    pub(super) usage: Usage,
}

impl Answer {
    /// Number of paced (delay-separated) content events a stream of this answer carries.
    pub(super) fn paced_count(&self) -> usize {
        self.blocks
            .iter()
            .map(|b| match b {
                Block::Thinking { pieces, .. } | Block::Text(pieces) | Block::Refusal(pieces) => {
                    pieces.len()
                }
                Block::Tool(call) => call.pieces.len(),
            })
            .sum()
    }
}

// Beside `Answer`, not the directives: answer.rs reads the directives, so directives.rs
// must not read the answer back.
impl UsageDirectives {
    /// Overwrite the composed answer's usage with what was asked for.
    pub(super) fn apply(&self, api: Api, answer: &mut Answer) {
        let usage = &mut answer.usage;
        if let Some(n) = self.input {
            usage.input = n;
        }
        if let Some(n) = self.cache_read {
            usage.cache_read = n;
        }
        usage.cache_read = usage.cache_read.min(usage.input);
        if let Some(n) = self.cache_write {
            usage.cache_write = n.min(usage.input.saturating_sub(usage.cache_read));
        }
        if let Some(n) = self.reasoning {
            let shown: u64 = answer
                .blocks
                .iter()
                .map(|b| match b {
                    Block::Thinking { pieces, .. } => count(pieces.len()),
                    _ => 0,
                })
                .sum();
            usage.output = usage.output.saturating_sub(shown).saturating_add(n);
            if api == Api::OpenAiChat {
                usage.reasoning = n;
            }
        }
    }
}

pub(super) fn compose(api: Api, req: &Request, dirs: &Directives, ids: &Ids, input: u64) -> Answer {
    let cache_read = if dirs.cache { input / 2 } else { 0 };
    let mut blocks = Vec::new();
    let mut output = 0u64;
    let shown = if api == Api::OpenAiChat {
        dirs.reasoning_content
    } else {
        dirs.thinking
    };
    if shown {
        let words = echo_words(&req.user_text);
        let text = if dirs.thinking_echo && !words.is_empty() {
            format!("{THINKING_TEXT} They wrote: {words}. {THINKING_CONTACT}")
        } else {
            THINKING_TEXT.to_owned()
        };
        let pieces = split_tokens(&text);
        output += count(pieces.len());
        blocks.push(Block::Thinking {
            pieces,
            signature: thinking_signature(&text),
        });
    }
    let stop = if dirs.refusal || (dirs.content_filter && api != Api::OpenAiChat) {
        if api == Api::OpenAiChat {
            let pieces = split_tokens(REFUSAL_TEXT);
            output += count(pieces.len());
            blocks.push(Block::Refusal(pieces));
        } else {
            // As recorded: an empty text block, then stop_reason refusal.
            blocks.push(Block::Text(Vec::new()));
        }
        Stop::Refusal
    } else if let Some(calls) = tool_calls(api, req, dirs, ids) {
        if dirs.preamble {
            let pieces = split_tokens(PREAMBLE_TEXT);
            output += count(pieces.len());
            blocks.push(Block::Text(pieces));
        }
        let budget = req.max_tokens.unwrap_or(u64::MAX).saturating_sub(output);
        let mut stop = Stop::ToolUse;
        let mut spent = 0u64;
        for mut call in calls {
            let cost = 1 + tokens_for_bytes(call.args_text.len());
            if spent + cost > budget {
                // max_tokens lands inside this call: the provider stops mid-JSON, leaving the
                // arguments as invalid partial text, and stops with max_tokens / length.
                call.pieces.truncate(1);
                call.args_text = call.pieces.first().cloned().unwrap_or_default();
                call.args.clear();
                output += budget - spent;
                blocks.push(Block::Tool(call));
                stop = Stop::MaxTokens;
                break;
            }
            spent += cost;
            output += cost;
            blocks.push(Block::Tool(call));
        }
        stop
    } else if let Some(size) = dirs.big {
        let text = filler(size);
        output += tokens_for_bytes(text.len());
        let pieces = chunk_ascii(&text, BIG_STREAM_PIECE_BYTES);
        blocks.push(Block::Text(pieces));
        Stop::EndTurn
    } else {
        let text = answer_text(req, dirs);
        let (text, mut stop) = match first_stop(&text, &req.stops) {
            Some((at, seq)) => (
                text.get(..at).unwrap_or_default().to_owned(),
                Stop::Sequence(seq),
            ),
            None => (text, Stop::EndTurn),
        };
        let mut pieces = split_tokens(&text);
        if let Some(max) = req.max_tokens {
            let max = usize::try_from(max).unwrap_or(usize::MAX);
            if pieces.len() > max {
                pieces.truncate(max);
                stop = Stop::MaxTokens;
            }
        }
        if dirs.content_filter {
            // Only OpenAI gets here: a filter cuts the answer short.
            pieces.truncate(FAULT_AFTER_TOKENS);
            stop = Stop::ContentFilter;
        }
        output += count(pieces.len());
        blocks.push(Block::Text(pieces));
        stop
    };
    Answer {
        blocks,
        stop,
        usage: Usage {
            input,
            cache_read,
            cache_write: 0,
            output,
            reasoning: 0,
        },
    }
}

/// The tool calls to make, or `None` to answer with text.
fn tool_calls(api: Api, req: &Request, dirs: &Directives, ids: &Ids) -> Option<Vec<ToolCall>> {
    // After a tool result, only `mock:calls=N` asks for another round (until N were made).
    let again = dirs.calls.is_some_and(|n| req.rounds < n);
    if req.tools.is_empty()
        || req.choice == ToolChoice::None
        || (req.tool_result.is_some() && !again)
        || dirs.notools
    {
        return None;
    }
    let wanted = match &req.choice {
        ToolChoice::Named(name) => Some(name),
        _ => dirs.tool.as_ref(),
    };
    let first_idx = match wanted {
        Some(name) => req.tools.iter().position(|t| &t.name == name),
        None => Some(0),
    };
    let mut first = match (first_idx.and_then(|i| req.tools.get(i)), wanted) {
        (Some(tool), _) => tool.clone(),
        // A tool the request does not declare (forced, or named by `mock:tool`): call it
        // without arguments, as a model naming an unknown tool would.
        (None, Some(name)) => ToolDef {
            name: name.clone(),
            args: Vec::new(),
        },
        (None, None) => return None,
    };
    if let Some(args) = &dirs.args {
        first.args.clone_from(&args.entries);
    }
    let mut defs = vec![first];
    if dirs.parallel && req.allow_parallel {
        // The next declared tool, or the same one twice when only one is declared.
        let second = req
            .tools
            .iter()
            .enumerate()
            .find(|(i, _)| Some(*i) != first_idx)
            .map_or_else(|| defs.first().cloned(), |(_, t)| Some(t.clone()));
        defs.extend(second);
    }
    let calls = defs
        .into_iter()
        .enumerate()
        .map(|(i, def)| {
            let args_text = match (&dirs.args, i) {
                // Verbatim, so a test sees exactly the text it wrote.
                (Some(args), 0) if !def.args.is_empty() => args.text.clone(),
                _ => spaced_args(&def.args),
            };
            let pieces = if def.args.is_empty() {
                Vec::new()
            } else {
                split_in(&args_text, ARG_PIECES)
            };
            ToolCall {
                id: match api {
                    Api::OpenAiChat => ids.call(i),
                    _ => ids.toolu(i),
                },
                name: def.name,
                args: def.args,
                args_text,
                pieces,
            }
        })
        .collect();
    Some(calls)
}

fn answer_text(req: &Request, dirs: &Directives) -> String {
    if let Some(n) = dirs.tokens {
        let words: Vec<String> = (1..=n).map(|i| format!("w{i}")).collect();
        return words.join(" ");
    }
    if let Some(result) = &req.tool_result {
        let words = echo_words(result);
        return if words.is_empty() {
            format!("{TOOL_RESULT_PREFIX}.")
        } else {
            format!("{TOOL_RESULT_PREFIX}: {words}")
        };
    }
    let words = echo_words(&req.user_text);
    if words.is_empty() {
        GREETING.to_owned()
    } else {
        format!("{GREETING} {ECHO_PREFIX} {words}")
    }
}

/// The first [`ECHO_WORDS`] words of a text, directives left out.
pub(super) fn echo_words(text: &str) -> String {
    let words: Vec<&str> = text
        .split_whitespace()
        .filter(|w| !is_directive(w))
        .take(ECHO_WORDS)
        .collect();
    words.join(" ")
}

/// The earliest stop sequence in `text`: its byte offset and the sequence.
fn first_stop(text: &str, stops: &[String]) -> Option<(usize, String)> {
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()).map(|at| (at, s.clone())))
        .min_by_key(|(at, _)| *at)
}

/// Tokens as the mock counts them: one word with its leading space(s) each.
fn split_tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut prev_space = true;
    for (i, c) in text.char_indices() {
        let space = c == ' ';
        if space && !prev_space {
            out.extend(text.get(start..i).map(str::to_owned));
            start = i;
        }
        prev_space = space;
    }
    if start < text.len() {
        out.extend(text.get(start..).map(str::to_owned));
    }
    out
}

/// Splits `text` into `n` nearly equal pieces on char boundaries; empty pieces are dropped.
fn split_in(text: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    for k in 1..=n {
        let mut end = if k == n {
            text.len()
        } else {
            text.len() * k / n
        };
        while end < text.len() && !text.is_char_boundary(end) {
            end += 1;
        }
        if end > start {
            out.extend(text.get(start..end).map(str::to_owned));
            start = end;
        }
    }
    out
}

/// Cuts an ASCII text into pieces of at most `size` bytes.
fn chunk_ascii(text: &str, size: usize) -> Vec<String> {
    let size = size.max(1);
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = start.saturating_add(size).min(text.len());
        while end < text.len() && !text.is_char_boundary(end) {
            end += 1;
        }
        out.extend(text.get(start..end).map(str::to_owned));
        start = end;
    }
    out
}

/// `w1 w2 w3 …` cut to exactly `len` bytes.
pub(super) fn filler(len: usize) -> String {
    let mut s = String::with_capacity(len.saturating_add(16));
    let mut i = 1u64;
    while s.len() < len {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push('w');
        s.push_str(&i.to_string());
        i += 1;
    }
    // ASCII only, so every length is a char boundary.
    s.truncate(len);
    s
}

pub(super) fn tokens_for_bytes(len: usize) -> u64 {
    count(len.div_ceil(4))
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
    fn echo_is_cut_to_twelve_words() {
        let prompt = (1..=20)
            .map(|i| format!("p{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        let v = fixed(&run(Api::AnthropicMessages, &anthropic(&prompt, json!({})))).2;
        let text = v["content"][0]["text"].as_str().unwrap();
        assert!(
            text.ends_with("You said: p1 p2 p3 p4 p5 p6 p7 p8 p9 p10 p11 p12"),
            "{text}"
        );
        // Array content and a later empty user turn: the last user text wins.
        let body = json!({"model": "m", "max_tokens": 99, "messages": [
            {"role": "user", "content": "first"},
            {"role": "user", "content": [{"type": "text", "text": "alpha"}, {"type": "text", "text": "beta"}]},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "  "}]},
        ]});
        let v = fixed(&run(Api::AnthropicMessages, &body)).2;
        let text = v["content"][0]["text"].as_str().unwrap();
        assert!(text.ends_with("said: alpha beta"), "{text}");
    }

    #[test]
    fn max_tokens_and_stop_sequences() {
        let body = anthropic("a b c d e f", json!({"max_tokens": 3}));
        let v = fixed(&run(Api::AnthropicMessages, &body)).2;
        assert_eq!(v["content"][0]["text"], "Hello from the");
        assert_eq!(v["stop_reason"], "max_tokens");
        assert_eq!(v["usage"]["output_tokens"], 3);

        let body = anthropic(
            "a b c",
            json!({"stop_sequences": ["zzz", "mock", "ringway"], "stream": true}),
        );
        let events = a_events(&run(Api::AnthropicMessages, &body));
        assert_eq!(a_text(&events, 0), "Hello from the ");
        let delta = &events[events.len() - 2].1;
        assert_eq!(delta["delta"]["stop_reason"], "stop_sequence");
        assert_eq!(delta["delta"]["stop_sequence"], "ringway");
        // "Hello", " from", " the", " ": the space before the cut is its own token.
        assert_eq!(delta["usage"]["output_tokens"], 4);

        // max_tokens reached before the stop sequence: max_tokens wins.
        let body = anthropic("a", json!({"stop_sequences": ["said"], "max_tokens": 2}));
        let v = fixed(&run(Api::AnthropicMessages, &body)).2;
        assert_eq!(v["stop_reason"], "max_tokens");
        assert_eq!(v["stop_sequence"], Value::Null);

        // max_tokens 0: no content block at all in the non-streaming body.
        let body = anthropic("a", json!({"max_tokens": 0}));
        let v = fixed(&run(Api::AnthropicMessages, &body)).2;
        assert_eq!(v["content"], json!([]));
        assert_eq!(v["stop_reason"], "max_tokens");

        let body = openai("a b", json!({"max_completion_tokens": 2, "max_tokens": 50}));
        let v = fixed(&run(Api::OpenAiChat, &body)).2;
        assert_eq!(v["choices"][0]["message"]["content"], "Hello from");
        assert_eq!(v["choices"][0]["finish_reason"], "length");
        assert_eq!(v["usage"]["completion_tokens"], 2);
        let body = openai("a b", json!({"max_tokens": 1, "stream": true}));
        let (chunks, done) = o_chunks(&run(Api::OpenAiChat, &body));
        assert!(done);
        assert_eq!(o_text(&chunks), "Hello");
        assert_eq!(
            chunks.last().unwrap()["choices"][0]["finish_reason"],
            "length"
        );

        let body = openai("a b", json!({"stop": "mock."}));
        let v = fixed(&run(Api::OpenAiChat, &body)).2;
        assert_eq!(
            v["choices"][0]["message"]["content"],
            "Hello from the ringway "
        );
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
    }

    #[test]
    fn tool_choice_none_named_and_tool_results() {
        let tools = json!([weather_tool_anthropic(), {"name": "other", "input_schema": {"type": "object"}},
                           {"type": "web_search_20250305", "name": "web_search"}]);
        let body = anthropic(
            "x",
            json!({"tools": tools, "tool_choice": {"type": "none"}}),
        );
        let v = fixed(&run(Api::AnthropicMessages, &body)).2;
        assert_eq!(v["stop_reason"], "end_turn");
        assert_eq!(v["content"][0]["type"], "text");
        let body = anthropic(
            "x",
            json!({"tools": tools, "tool_choice": {"type": "tool", "name": "other"}}),
        );
        let v = fixed(&run(Api::AnthropicMessages, &body)).2;
        assert_eq!(v["content"][0]["name"], "other");
        // Server tools are never called.
        let body = anthropic("x", json!({"tools": [tools[2]]}));
        let v = fixed(&run(Api::AnthropicMessages, &body)).2;
        assert_eq!(v["stop_reason"], "end_turn");

        let otools = json!([weather_tool_openai(), openai_tool("other", json!({}))]);
        let body = openai("x", json!({"tools": otools, "tool_choice": "none"}));
        let v = fixed(&run(Api::OpenAiChat, &body)).2;
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        let body = openai(
            "x",
            json!({"tools": otools, "tool_choice": {"type": "function", "function": {"name": "other"}}}),
        );
        let v = fixed(&run(Api::OpenAiChat, &body)).2;
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
            "other"
        );
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            "{}"
        );

        // Tool results answer with text, echoing the result.
        let body = json!({"model": "m", "max_tokens": 100, "tools": tools, "messages": [
            {"role": "user", "content": "weather? mock:tokens=2"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                "content": [{"type": "text", "text": "Sunny, 21 degrees"}]}]},
        ]});
        let v = fixed(&run(Api::AnthropicMessages, &body)).2;
        assert_eq!(v["stop_reason"], "end_turn");
        // mock:tokens from the question still applies to the follow-up turn.
        assert_eq!(v["content"][0]["text"], "w1 w2");
        let body = json!({"model": "m", "max_tokens": 100, "tools": tools, "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny, 21 degrees"}]},
        ]});
        let v = fixed(&run(Api::AnthropicMessages, &body)).2;
        assert_eq!(
            v["content"][0]["text"],
            "Tool result received: Sunny, 21 degrees"
        );

        let body = json!({"model": "m", "tools": otools, "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "Rain"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "later"}]},
        ]});
        let v = fixed(&run(Api::OpenAiChat, &body)).2;
        assert_eq!(
            v["choices"][0]["message"]["content"],
            "Tool result received: Rain later"
        );
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
    }

    #[test]
    fn preamble_writes_text_before_the_tool_calls() {
        let prompt = "weather? mock:preamble";
        let atools = json!([weather_tool_anthropic()]);
        let v = fixed(&run(
            Api::AnthropicMessages,
            &anthropic(prompt, json!({"tools": atools})),
        ))
        .2;
        assert_eq!(v["stop_reason"], "tool_use");
        assert_eq!(v["content"][0]["type"], "text");
        assert_eq!(v["content"][0]["text"], PREAMBLE_TEXT);
        assert_eq!(v["content"][1]["type"], "tool_use");
        let events = a_events(&run(
            Api::AnthropicMessages,
            &anthropic(prompt, json!({"tools": atools, "stream": true})),
        ));
        assert_eq!(a_text(&events, 0), PREAMBLE_TEXT);
        let starts: Vec<&Value> = events
            .iter()
            .filter(|(n, _)| n == "content_block_start")
            .map(|(_, v)| &v["content_block"]["type"])
            .collect();
        assert_eq!(starts, [&json!("text"), &json!("tool_use")]);

        let otools = json!([weather_tool_openai()]);
        let v = fixed(&run(
            Api::OpenAiChat,
            &openai(prompt, json!({"tools": otools})),
        ))
        .2;
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(v["choices"][0]["message"]["content"], PREAMBLE_TEXT);
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
            "get_weather"
        );
        let (chunks, _) = o_chunks(&run(
            Api::OpenAiChat,
            &openai(prompt, json!({"tools": otools, "stream": true})),
        ));
        assert_eq!(o_text(&chunks), PREAMBLE_TEXT);
        assert!(chunks
            .iter()
            .any(
                |c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "get_weather"
            ));

        // Without tools to call (or on the tool-result turn) it writes nothing extra.
        let v = fixed(&run(Api::AnthropicMessages, &anthropic(prompt, json!({})))).2;
        assert_eq!(
            v["content"][0]["text"],
            "Hello from the ringway mock. You said: weather?"
        );
    }

    #[test]
    fn refusals_and_content_filter() {
        let body = anthropic("mock:refusal", json!({"stream": true}));
        let events = a_events(&run(Api::AnthropicMessages, &body));
        assert_eq!(
            a_names(&events),
            vec![
                "message_start",
                "content_block_start",
                "ping",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let delta = &events[4].1;
        assert_eq!(delta["delta"]["stop_reason"], "refusal");
        assert_eq!(delta["delta"]["stop_details"]["type"], "refusal");
        assert_eq!(delta["usage"]["output_tokens"], 0);
        let v = fixed(&run(
            Api::AnthropicMessages,
            &anthropic("mock:refusal", json!({})),
        ))
        .2;
        assert_eq!(v["content"], json!([]));
        assert_eq!(v["stop_reason"], "refusal");
        assert_eq!(v["stop_details"]["type"], "refusal");
        let v = fixed(&run(
            Api::AnthropicMessages,
            &anthropic("mock:content_filter", json!({})),
        ))
        .2;
        assert_eq!(v["stop_reason"], "refusal");

        let body = openai("mock:refusal", json!({"stream": true}));
        let (chunks, done) = o_chunks(&run(Api::OpenAiChat, &body));
        assert!(done);
        assert_eq!(
            chunks[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": null, "refusal": ""})
        );
        let refusal: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["refusal"].as_str())
            .collect();
        assert_eq!(refusal, REFUSAL_TEXT);
        assert_eq!(o_text(&chunks), "");
        assert_eq!(
            chunks.last().unwrap()["choices"][0]["finish_reason"],
            "stop"
        );
        let v = fixed(&run(Api::OpenAiChat, &openai("mock:refusal", json!({})))).2;
        assert_eq!(v["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(v["choices"][0]["message"]["refusal"], REFUSAL_TEXT);

        let body = openai("mock:content_filter", json!({"stream": true}));
        let (chunks, _) = o_chunks(&run(Api::OpenAiChat, &body));
        assert_eq!(o_text(&chunks), "Hello from the");
        assert_eq!(
            chunks.last().unwrap()["choices"][0]["finish_reason"],
            "content_filter"
        );
    }

    #[test]
    fn big_bodies_are_about_the_requested_size() {
        for (api, body) in [
            (
                Api::AnthropicMessages,
                anthropic("mock:big=200000", json!({})),
            ),
            (Api::OpenAiChat, openai("mock:big=200000", json!({}))),
        ] {
            let (_, text, v) = fixed(&run(api, &body));
            assert!(text.len().abs_diff(200_000) < 16, "{}", text.len());
            let usage = if api == Api::OpenAiChat {
                &v["usage"]["completion_tokens"]
            } else {
                &v["usage"]["output_tokens"]
            };
            assert!(usage.as_u64().unwrap() > 40_000);
        }
        let body = anthropic("mock:big=40000", json!({"stream": true}));
        let events = a_events(&run(Api::AnthropicMessages, &body));
        let deltas = events
            .iter()
            .filter(|(n, _)| n == "content_block_delta")
            .count();
        assert_eq!(deltas, 40_000usize.div_ceil(BIG_STREAM_PIECE_BYTES));
        assert_eq!(a_text(&events, 0).len(), 40_000);
    }

    #[test]
    fn splitting_keeps_every_byte() {
        let mut rng = Prng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2000 {
            let text = rng.text(40);
            let tokens = split_tokens(&text);
            assert_eq!(tokens.concat(), text);
            assert!(tokens.iter().all(|t| !t.is_empty()));
            // Each token after the first starts with a space and holds one word.
            for t in tokens.iter().skip(1) {
                assert!(t.starts_with(' '), "{t:?}");
                assert!(!t.trim_start_matches(' ').contains(' '), "{t:?}");
            }
            let n = 1 + rng.below(5);
            let pieces = split_in(&text, n);
            assert_eq!(pieces.concat(), text);
            assert!(pieces.len() <= n);
            let size = 1 + rng.below(7);
            assert_eq!(chunk_ascii(&text, size).concat(), text);
        }
        assert_eq!(filler(7), "w1 w2 w");
        assert_eq!(filler(0), "");
    }
}
