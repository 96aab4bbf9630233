#![no_main]
//! Anthropic SSE → OpenAI chunks: each input byte picks an upstream event (well-formed
//! pieces of the protocol in any order, or raw bytes); the output always satisfies the
//! OpenAI SDK invariants and ends in `[DONE]` or an error frame; nothing panics.

use libfuzzer_sys::fuzz_target;
use ringway::translate::{check, AnthropicToOpenAiStream, RequestMeta};

const BLOCKS: [&str; 6] = [
    r#"{"type":"text","text":""}"#,
    r#"{"type":"tool_use","id":"toolu_1","name":"f","input":{}}"#,
    r#"{"type":"thinking","thinking":"","signature":""}"#,
    r#"{"type":"redacted_thinking","data":"xyz"}"#,
    r#"{"type":"tool_use","id":"toolu_j","name":"json_tool_call","input":{"a":1}}"#,
    r#"{"type":"server_tool_use","id":"s","name":"web_search","input":{}}"#,
];
const DELTAS: [&str; 6] = [
    r#"{"type":"text_delta","text":"hi \u00e9"}"#,
    r#"{"type":"input_json_delta","partial_json":"{\"a\":"}"#,
    r#"{"type":"input_json_delta","partial_json":""}"#,
    r#"{"type":"thinking_delta","thinking":"hmm"}"#,
    r#"{"type":"signature_delta","signature":"c2ln"}"#,
    r#"{"type":"citations_delta","citation":{}}"#,
];
const STOPS: [&str; 5] = [
    "end_turn",
    "tool_use",
    "max_tokens",
    "refusal",
    "pause_turn",
];

fuzz_target!(|input: &[u8]| {
    let Some((&flags, ops)) = input.split_first() else {
        return;
    };
    let meta = RequestMeta {
        include_usage: flags & 1 != 0,
        json_tool: flags & 2 != 0,
        ..RequestMeta::default()
    };
    let mut m = AnthropicToOpenAiStream::new(&meta);
    let mut out = Vec::new();
    let mut it = ops.iter().copied();
    while let Some(op) = it.next() {
        let arg = it.next().unwrap_or(0);
        let i = arg % 4;
        let (name, data) = match op % 10 {
            0 => (
                "message_start",
                format!(
                    r#"{{"type":"message_start","message":{{"id":"msg_{}","model":"m","usage":{{"input_tokens":5}}}}}}"#,
                    arg % 2
                ),
            ),
            1 => (
                "content_block_start",
                format!(
                    r#"{{"type":"content_block_start","index":{i},"content_block":{}}}"#,
                    BLOCKS[usize::from(arg / 4) % 6]
                ),
            ),
            2 | 3 => (
                "content_block_delta",
                format!(
                    r#"{{"type":"content_block_delta","index":{i},"delta":{}}}"#,
                    DELTAS[usize::from(arg / 4) % 6]
                ),
            ),
            4 => (
                "content_block_stop",
                format!(r#"{{"type":"content_block_stop","index":{i}}}"#),
            ),
            5 => (
                "message_delta",
                format!(
                    r#"{{"type":"message_delta","delta":{{"stop_reason":"{}"}},"usage":{{"output_tokens":{arg}}}}}"#,
                    STOPS[usize::from(arg) % 5]
                ),
            ),
            6 => ("message_stop", r#"{"type":"message_stop"}"#.to_owned()),
            7 => ("ping", r#"{"type": "ping"}"#.to_owned()),
            8 => (
                "error",
                r#"{"type":"error","error":{"type":"overloaded_error","message":"x"}}"#.to_owned(),
            ),
            _ => (
                "content_block_delta",
                String::from_utf8_lossy(
                    it.by_ref()
                        .take(usize::from(arg % 16))
                        .collect::<Vec<u8>>()
                        .as_slice(),
                )
                .into_owned(),
            ),
        };
        m.on_event(Some(name.as_bytes()), data.as_bytes(), &mut out);
    }
    m.finish(&mut out);
    if let Err(e) = check::check_openai_stream(&out, true) {
        panic!("{e}\n{}", String::from_utf8_lossy(&out));
    }
});
