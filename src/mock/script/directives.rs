//! The `mock:` directives in the last user message text, parsed into [`Directives`].

use std::fmt;
use std::time::Duration;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

/// Number of streamed tokens sent before `mock:reset` / `mock:midstream_error` /
/// `mock:content_filter` take effect.
pub const FAULT_AFTER_TOKENS: usize = 3;

/// Upper bound for `mock:ttft=` and `mock:itl=` (milliseconds); larger values are clamped.
pub const MAX_DIRECTIVE_DELAY_MS: u64 = 600_000;

/// Upper bound for `mock:tokens=`; keeps one plan's memory bounded.
pub const MAX_DIRECTIVE_TOKENS: usize = 100_000;

/// Upper bound for `mock:big=` (bytes).
pub const MAX_BIG_BYTES: usize = 64 << 20;

/// Upper bound for `mock:calls=`: tool rounds one turn may be asked to take.
pub const MAX_DIRECTIVE_CALLS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    MidstreamError,
    Reset,
    Stall,
}

/// Directives found in the last user message text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Directives {
    pub(super) status: Option<u16>,
    pub(super) fault: Option<Fault>,
    pub(super) ttft: Option<Duration>,
    pub(super) itl: Option<Duration>,
    pub(super) tokens: Option<usize>,
    pub(super) big: Option<usize>,
    pub(super) parallel: bool,
    pub(super) thinking: bool,
    /// `mock:thinking=echo`: the thinking repeats the prompt's words.
    pub(super) thinking_echo: bool,
    /// `mock:reasoning_content`: OpenAI shows its thinking as `reasoning_content`.
    pub(super) reasoning_content: bool,
    /// `mock:ascii`: non-ASCII escaped in non-streaming bodies.
    pub(super) ascii: bool,
    pub(super) refusal: bool,
    pub(super) content_filter: bool,
    pub(super) cache: bool,
    /// `mock:tool=`: the tool to call.
    pub(super) tool: Option<String>,
    /// `mock:args=`: the first call's arguments.
    pub(super) args: Option<ToolArgs>,
    /// `mock:notools`: never call a tool.
    pub(super) notools: bool,
    /// `mock:calls=N`: call the tool again after each tool result until the turn has made N
    /// rounds of calls, then answer with text (default 1: text after the first result).
    pub(super) calls: Option<usize>,
    /// `mock:preamble`: text before the tool calls.
    pub(super) preamble: bool,
    /// `mock:input=` and the other usage counts.
    pub(super) usage: UsageDirectives,
}

/// Usage counts a test sets so that the numbers the gateway records are known exactly,
/// whatever the request body (translated bodies differ in size, and the default input count
/// follows the body). Each provider reports them in its own fields, as the real ones do:
///
/// - `input`: the whole prompt, cache reads and writes included (OpenAI `prompt_tokens`;
///   Anthropic's `input_tokens` is what is left after the cached parts).
/// - `cache_read`: OpenAI `prompt_tokens_details.cached_tokens`, Anthropic
///   `cache_read_input_tokens`; at most `input`.
/// - `cache_write`: Anthropic `cache_creation_input_tokens` (and its 5-minute split); OpenAI
///   has no such field, so it is not reported there. At most what is left of `input`.
/// - `reasoning`: thinking billed as this many tokens. OpenAI: hidden reasoning, added to
///   `completion_tokens` and reported as `completion_tokens_details.reasoning_tokens`.
///   Anthropic has no separate count: `output_tokens` holds the thinking block's cost as this
///   instead of its word count (a summarized thinking block is billed for the whole).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct UsageDirectives {
    pub(super) input: Option<u64>,
    pub(super) cache_read: Option<u64>,
    pub(super) cache_write: Option<u64>,
    pub(super) reasoning: Option<u64>,
}

/// Arguments given by `mock:args=`: the text as written and its entries in written order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ToolArgs {
    pub(super) text: String,
    pub(super) entries: Vec<(String, Value)>,
}

impl ToolArgs {
    /// `None` unless `text` is one JSON object.
    fn parse(text: &str) -> Option<Self> {
        let Entries(entries) = serde_json::from_str(text).ok()?;
        Some(Self {
            text: text.to_owned(),
            entries,
        })
    }
}

/// A JSON object's entries in the order written (serde_json's `Map` would sort them, and the
/// arguments must reach the client as the test wrote them).
struct Entries(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EntriesVisitor)
    }
}

struct EntriesVisitor;

impl<'de> Visitor<'de> for EntriesVisitor {
    type Value = Entries;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<String, Value>()? {
            entries.push(entry);
        }
        Ok(Entries(entries))
    }
}

impl Directives {
    pub(super) fn parse(text: &str) -> Self {
        let mut d = Self::default();
        let (mut reset, mut stall, mut midstream) = (false, false, false);
        for raw in text.split_whitespace() {
            // Allow "(mock:reset)." inside a sentence.
            let raw = raw.trim_start_matches(['(', '"', '\'', '`']);
            let Some(rest) = raw.strip_prefix("mock:") else {
                continue;
            };
            let word = rest.trim_end_matches(['.', ',', ';', '!', '?', ')', '"', '\'', '`']);
            let (key, value) = match word.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (word, None),
            };
            let number = value.and_then(|v| v.parse::<u64>().ok());
            let delay = number.map(|ms| Duration::from_millis(ms.min(MAX_DIRECTIVE_DELAY_MS)));
            let size = |max: usize| number.map(|n| usize::try_from(n).unwrap_or(max).min(max));
            match key {
                "status" => {
                    if let Some(s) = number.and_then(|n| u16::try_from(n).ok()) {
                        if (400..=599).contains(&s) {
                            d.status = Some(s);
                        }
                    }
                }
                "midstream_error" => midstream = true,
                "reset" => reset = true,
                "stall" => stall = true,
                "ttft" => d.ttft = delay.or(d.ttft),
                "itl" => d.itl = delay.or(d.itl),
                "tokens" => d.tokens = size(MAX_DIRECTIVE_TOKENS).or(d.tokens),
                "big" => d.big = size(MAX_BIG_BYTES).or(d.big),
                "parallel" => d.parallel = true,
                "thinking" => {
                    d.thinking = true;
                    d.thinking_echo |= value == Some("echo");
                }
                "reasoning_content" => d.reasoning_content = true,
                "refusal" => d.refusal = true,
                "ascii" => d.ascii = true,
                "content_filter" => d.content_filter = true,
                "cache" => d.cache = true,
                "tool" => {
                    if let Some(name) = value.filter(|v| !v.is_empty()) {
                        d.tool = Some(name.to_owned());
                    }
                }
                "args" => d.args = value.and_then(ToolArgs::parse).or(d.args),
                "notools" => d.notools = true,
                "calls" => d.calls = size(MAX_DIRECTIVE_CALLS).or(d.calls),
                "preamble" => d.preamble = true,
                "input" => d.usage.input = number.or(d.usage.input),
                "cache_read" => d.usage.cache_read = number.or(d.usage.cache_read),
                "cache_write" => d.usage.cache_write = number.or(d.usage.cache_write),
                "reasoning" => d.usage.reasoning = number.or(d.usage.reasoning),
                _ => {}
            }
        }
        // One fault per request; the most drastic wins.
        d.fault = if reset {
            Some(Fault::Reset)
        } else if stall {
            Some(Fault::Stall)
        } else if midstream {
            Some(Fault::MidstreamError)
        } else {
            None
        };
        d
    }
}

/// Whether a prompt word is a directive (kept out of the echoed text).
pub(super) fn is_directive(word: &str) -> bool {
    word.starts_with("mock:")
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
    use crate::mock::script::answer::echo_words;
    use crate::mock::script::plan;
    use crate::mock::script::testing::*;
    use crate::mock::script::Api;
    use crate::mock::script::Defaults;
    use crate::mock::script::Step;
    use serde_json::json;

    #[test]
    fn tool_args_and_notools_directives() {
        let read = json!({"name": "read_file", "input_schema": {"type": "object",
            "properties": {"path": {"type": "string"}}, "required": ["path"]}});
        let tools = json!([weather_tool_anthropic(), read]);
        // Keys out of alphabetical order: the written order must survive.
        let args = r#"{"path":"/tmp/x.txt","limit":2,"a":{"b":[true,null]}}"#;
        let prompt = format!("read it mock:tool=read_file mock:args={args}");
        let (_, text, v) = fixed(&run(
            Api::AnthropicMessages,
            &anthropic(&prompt, json!({"tools": tools})),
        ));
        assert_eq!(v["stop_reason"], "tool_use");
        assert_eq!(v["content"].as_array().unwrap().len(), 1);
        assert_eq!(v["content"][0]["name"], "read_file");
        assert_eq!(
            v["content"][0]["input"],
            serde_json::from_str::<Value>(args).unwrap()
        );
        // The body carries the object as written (a parsed Value would sort the keys).
        assert!(text.contains(args), "{text}");
        let events = a_events(&run(
            Api::AnthropicMessages,
            &anthropic(&prompt, json!({"tools": tools, "stream": true})),
        ));
        assert_eq!(events[1].1["content_block"]["name"], "read_file");
        let partials: String = events
            .iter()
            .filter_map(|(_, v)| v["delta"]["partial_json"].as_str())
            .collect();
        assert_eq!(partials, args);

        let otools = json!([
            weather_tool_openai(),
            openai_tool("read_file", read["input_schema"].clone())
        ]);
        let v = fixed(&run(
            Api::OpenAiChat,
            &openai(&prompt, json!({"tools": otools})),
        ))
        .2;
        let call = &v["choices"][0]["message"]["tool_calls"][0]["function"];
        assert_eq!(call["name"], "read_file");
        assert_eq!(call["arguments"], args);
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        let (chunks, done) = o_chunks(&run(
            Api::OpenAiChat,
            &openai(&prompt, json!({"tools": otools, "stream": true})),
        ));
        assert!(done);
        let streamed: String = chunks
            .iter()
            .filter_map(|c| {
                c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
            })
            .collect();
        assert_eq!(streamed, args);

        // mock:tool alone keeps the schema's arguments; mock:args alone goes to the first tool.
        let v = fixed(&run(
            Api::AnthropicMessages,
            &anthropic("mock:tool=read_file", json!({"tools": tools})),
        ))
        .2;
        assert_eq!(v["content"][0]["input"], json!({"path": "mock"}));
        let v = fixed(&run(
            Api::AnthropicMessages,
            &anthropic(r#"(mock:args={"q":1})."#, json!({"tools": tools})),
        ))
        .2;
        assert_eq!(v["content"][0]["name"], "get_weather");
        assert_eq!(v["content"][0]["input"], json!({"q": 1}));
        // Not a JSON object: ignored.
        for bad in ["mock:args=[1]", "mock:args={\"q\":", "mock:args="] {
            let v = fixed(&run(
                Api::AnthropicMessages,
                &anthropic(bad, json!({"tools": tools})),
            ))
            .2;
            assert_eq!(v["content"][0]["input"], expected_weather_args(), "{bad}");
        }
        // An undeclared tool is called anyway, without arguments unless given.
        let v = fixed(&run(
            Api::AnthropicMessages,
            &anthropic("mock:tool=ghost", json!({"tools": tools})),
        ))
        .2;
        assert_eq!(v["content"][0]["name"], "ghost");
        assert_eq!(v["content"][0]["input"], json!({}));
        // A tool_choice naming a tool wins over the directive.
        let v = fixed(&run(
            Api::AnthropicMessages,
            &anthropic(
                "mock:tool=read_file",
                json!({"tools": tools, "tool_choice": {"type": "tool", "name": "get_weather"}}),
            ),
        ))
        .2;
        assert_eq!(v["content"][0]["name"], "get_weather");
        // No tools declared: the directive calls nothing.
        let v = fixed(&run(
            Api::AnthropicMessages,
            &anthropic("hi mock:tool=read_file", json!({})),
        ))
        .2;
        assert_eq!(v["stop_reason"], "end_turn");

        // The follow-up turn acknowledges the result even though the question names a tool.
        let body = json!({"model": "m", "max_tokens": 100, "tools": tools, "messages": [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "read_file",
                "input": {"path": "/tmp/x.txt"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "file body"}]},
        ]});
        let v = fixed(&run(Api::AnthropicMessages, &body)).2;
        assert_eq!(v["content"][0]["text"], "Tool result received: file body");

        // mock:notools answers with text in both formats, streaming or not.
        let v = fixed(&run(
            Api::AnthropicMessages,
            &anthropic(
                "say hi mock:notools mock:tool=read_file",
                json!({"tools": tools}),
            ),
        ))
        .2;
        assert_eq!(v["stop_reason"], "end_turn");
        assert_eq!(
            v["content"][0]["text"],
            "Hello from the ringway mock. You said: say hi"
        );
        let events = a_events(&run(
            Api::AnthropicMessages,
            &anthropic(
                "say hi mock:notools",
                json!({"tools": tools, "stream": true}),
            ),
        ));
        assert_eq!(
            a_text(&events, 0),
            "Hello from the ringway mock. You said: say hi"
        );
        assert!(events
            .iter()
            .all(|(_, v)| v["content_block"]["type"] != "tool_use"));
        let v = fixed(&run(
            Api::OpenAiChat,
            &openai("say hi mock:notools", json!({"tools": otools})),
        ))
        .2;
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert!(v["choices"][0]["message"].get("tool_calls").is_none());
        let (chunks, _) = o_chunks(&run(
            Api::OpenAiChat,
            &openai(
                "say hi mock:notools",
                json!({"tools": otools, "stream": true}),
            ),
        ));
        assert_eq!(
            o_text(&chunks),
            "Hello from the ringway mock. You said: say hi"
        );
        assert_eq!(
            chunks.last().unwrap()["choices"][0]["finish_reason"],
            "stop"
        );
    }

    /// `mock:calls=N`: a tool call per round until the turn made N, then text; a new user
    /// turn starts counting again.
    #[test]
    fn calls_directive_chains_tool_rounds() {
        let read = json!({"name": "read_file", "input_schema": {"type": "object",
            "properties": {"path": {"type": "string"}}, "required": ["path"]}});
        let prompt = r#"read it mock:tool=read_file mock:args={"path":"a"} mock:calls=2"#;
        let call = |id: &str| {
            json!({"role": "assistant", "content": [
            {"type": "tool_use", "id": id, "name": "read_file", "input": {"path": "a"}}]})
        };
        let result = |id: &str| {
            json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": id, "content": "alpha"}]})
        };
        let mut messages = vec![json!({"role": "user", "content": prompt})];
        let answer = |messages: &Vec<Value>| {
            let body =
                json!({"model": "m", "max_tokens": 99, "tools": [read], "messages": messages});
            fixed(&run(Api::AnthropicMessages, &body)).2
        };
        assert_eq!(answer(&messages)["stop_reason"], "tool_use");
        messages.extend([call("t1"), result("t1")]);
        let v = answer(&messages);
        assert_eq!(v["stop_reason"], "tool_use", "{v}");
        assert_eq!(v["content"][0]["input"], json!({"path": "a"}));
        messages.extend([call("t2"), result("t2")]);
        let v = answer(&messages);
        assert_eq!(v["stop_reason"], "end_turn", "{v}");
        assert_eq!(v["content"][0]["text"], "Tool result received: alpha");
        // The next turn counts from zero.
        messages.push(json!({"role": "assistant", "content": "done"}));
        messages.push(json!({"role": "user", "content": prompt}));
        assert_eq!(answer(&messages)["stop_reason"], "tool_use");

        // OpenAI: rounds are assistant messages with tool_calls after the last user message.
        let tools = json!([openai_tool("read_file", read["input_schema"].clone())]);
        let ocall = |id: &str| {
            json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": id, "type": "function", "function": {"name": "read_file", "arguments": "{}"}}]})
        };
        let oresult = |id: &str| json!({"role": "tool", "tool_call_id": id, "content": "alpha"});
        let mut messages = vec![
            json!({"role": "user", "content": prompt}),
            ocall("c1"),
            oresult("c1"),
        ];
        let answer = |messages: &Vec<Value>| {
            let body = json!({"model": "m", "tools": tools, "messages": messages});
            fixed(&run(Api::OpenAiChat, &body)).2
        };
        assert_eq!(
            answer(&messages)["choices"][0]["finish_reason"],
            "tool_calls"
        );
        messages.extend([ocall("c2"), oresult("c2")]);
        assert_eq!(answer(&messages)["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            Directives::parse("mock:calls=999").calls,
            Some(MAX_DIRECTIVE_CALLS)
        );
    }

    #[test]
    fn timing_directives_override_defaults() {
        let body = anthropic("mock:ttft=250 mock:itl=7 x", json!({"stream": true}));
        let steps = run(Api::AnthropicMessages, &body);
        let s = sleeps(&steps);
        assert_eq!(s[0], Duration::from_millis(250));
        assert!(s[1..].iter().all(|d| *d == Duration::from_millis(7)));
        // Zero delays produce no Sleep steps at all.
        let steps = plan(
            Api::OpenAiChat,
            openai("x", json!({"stream": true})).to_string().as_bytes(),
            &Defaults::default(),
        );
        assert!(sleeps(&steps).is_empty());
        // Non-streaming replies take the whole generation time before the head.
        let body = anthropic("mock:ttft=5 mock:itl=2 mock:tokens=4", json!({}));
        let steps = run(Api::AnthropicMessages, &body);
        assert_eq!(steps[0], Step::Sleep(Duration::from_millis(5 + 2 * 3)));
        // Huge values are clamped.
        let d = Directives::parse("mock:ttft=99999999999 mock:tokens=99999999999");
        assert_eq!(d.ttft, Some(Duration::from_millis(MAX_DIRECTIVE_DELAY_MS)));
        assert_eq!(d.tokens, Some(MAX_DIRECTIVE_TOKENS));
    }

    #[test]
    fn directive_parsing() {
        let d = Directives::parse(
            "Please mock:refusal, then mock:cache. (mock:big=100) mock:unknown mockery:x",
        );
        assert!(d.refusal && d.cache);
        assert_eq!(d.big, Some(100));
        assert!(!d.parallel && !d.thinking && d.fault.is_none() && d.status.is_none());
        let d = Directives::parse("mock:status=503 mock:tokens=x mock:midstream_error!");
        assert_eq!(d.status, Some(503));
        assert_eq!(d.tokens, None);
        assert_eq!(d.fault, Some(Fault::MidstreamError));
        assert_eq!(
            Directives::parse("MOCK:reset mock:status=302"),
            Directives::default()
        );
        assert_eq!(echo_words("a mock:reset b"), "a b");
        let d = Directives::parse(r#"mock:tool= "mock:notools" mock:args={"b":1,"a":2}"#);
        assert_eq!(d.tool, None);
        assert!(d.notools);
        let args = d.args.unwrap();
        assert_eq!(args.text, r#"{"b":1,"a":2}"#);
        assert_eq!(
            args.entries,
            vec![("b".into(), json!(1)), ("a".into(), json!(2))]
        );
        let d = Directives::parse("mock:tool=Read mock:args=x");
        assert_eq!(d.tool.as_deref(), Some("Read"));
        assert_eq!(d.args, None);
    }

    #[test]
    fn tokens_directive() {
        let body = openai("mock:tokens=5", json!({"stream": true}));
        let (chunks, _) = o_chunks(&run(Api::OpenAiChat, &body));
        let pieces: Vec<&str> = chunks[1..6]
            .iter()
            .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
            .collect();
        assert_eq!(pieces, vec!["w1", " w2", " w3", " w4", " w5"]);
        let body = anthropic("mock:tokens=0", json!({"stream": true}));
        let events = a_events(&run(Api::AnthropicMessages, &body));
        assert_eq!(a_text(&events, 0), "");
        assert_eq!(events[events.len() - 2].1["usage"]["output_tokens"], 0);
        let body = anthropic("mock:tokens=300", json!({}));
        let v = fixed(&run(Api::AnthropicMessages, &body)).2;
        assert_eq!(v["usage"]["output_tokens"], 300);
        assert!(v["content"][0]["text"]
            .as_str()
            .unwrap()
            .ends_with(" w299 w300"));
    }

    #[test]
    fn cache_directive_splits_input() {
        let body = anthropic("mock:cache", json!({"stream": true}));
        let n = input_tokens(&body);
        let events = a_events(&run(Api::AnthropicMessages, &body));
        let start = &events[0].1["message"]["usage"];
        assert_eq!(start["cache_read_input_tokens"], n / 2);
        assert_eq!(start["input_tokens"], n - n / 2);
        let delta = &events[events.len() - 2].1["usage"];
        assert_eq!(delta["cache_read_input_tokens"], n / 2);
        assert_eq!(delta["input_tokens"], n - n / 2);

        let body = openai("mock:cache", json!({}));
        let n = input_tokens(&body);
        let v = fixed(&run(Api::OpenAiChat, &body)).2;
        assert_eq!(v["usage"]["prompt_tokens"], n);
        assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], n / 2);
    }

    #[test]
    fn usage_directives_set_every_count_in_each_providers_fields() {
        let prompt = "mock:input=1000 mock:cache_read=300 mock:cache_write=200 mock:reasoning=40 mock:tokens=5";
        // OpenAI: the whole prompt, cached part inside; hidden reasoning inside the output.
        for stream in [false, true] {
            let body = openai(
                prompt,
                json!({"stream": stream, "stream_options": {"include_usage": true}}),
            );
            let steps = run(Api::OpenAiChat, &body);
            let usage = if stream {
                o_chunks(&steps).0.last().unwrap()["usage"].clone()
            } else {
                fixed(&steps).2["usage"].clone()
            };
            assert_eq!(usage["prompt_tokens"], 1000, "{usage}");
            assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 300);
            assert_eq!(usage["completion_tokens"], 45, "{usage}");
            assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 40);
            assert_eq!(usage["total_tokens"], 1045);
            assert!(
                !usage.to_string().contains("200"),
                "no cache-write field: {usage}"
            );
        }
        // Anthropic: input_tokens is what is left after the cached parts; the thinking block
        // is billed as 40 tokens instead of its word count.
        let body = anthropic(&format!("{prompt} mock:thinking"), json!({}));
        let v = fixed(&run(Api::AnthropicMessages, &body)).2;
        let u = &v["usage"];
        assert_eq!(u["input_tokens"], 500, "{u}");
        assert_eq!(u["cache_read_input_tokens"], 300);
        assert_eq!(u["cache_creation_input_tokens"], 200);
        assert_eq!(u["cache_creation"]["ephemeral_5m_input_tokens"], 200);
        assert_eq!(u["output_tokens"], 45, "{u}");
        assert_eq!(v["content"][0]["type"], "thinking");
        let body = anthropic(&format!("{prompt} mock:thinking"), json!({"stream": true}));
        let events = a_events(&run(Api::AnthropicMessages, &body));
        let start = &events[0].1["message"]["usage"];
        assert_eq!(start["input_tokens"], 500, "{start}");
        assert_eq!(start["cache_creation_input_tokens"], 200);
        let delta = &events[events.len() - 2].1["usage"];
        assert_eq!(delta["output_tokens"], 45, "{delta}");
        assert_eq!(delta["cache_read_input_tokens"], 300);
        assert_eq!(delta["cache_creation_input_tokens"], 200);
        // Counts beyond the prompt are cut to it: reads first, then writes.
        let body = anthropic(
            "mock:input=10 mock:cache_read=8 mock:cache_write=5",
            json!({}),
        );
        let u = fixed(&run(Api::AnthropicMessages, &body)).2["usage"].clone();
        assert_eq!(
            (
                &u["input_tokens"],
                &u["cache_read_input_tokens"],
                &u["cache_creation_input_tokens"]
            ),
            (&json!(0), &json!(8), &json!(2)),
            "{u}"
        );
    }
}
