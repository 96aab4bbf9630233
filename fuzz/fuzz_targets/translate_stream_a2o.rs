#![no_main]
//! Anthropic SSE → OpenAI chunks: each input byte picks an upstream event (well-formed
//! pieces of the protocol in any order, or raw bytes, not necessarily UTF-8), then upstream
//! EOF (`finish`) or a gateway failure (`fail`); the output always satisfies the OpenAI SDK
//! invariants and ends in `[DONE]` or an error frame, `is_done()` holds and nothing more is
//! written after it; nothing panics.

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
const MESSAGE_START: &[u8] = br#"{"type":"message_start","message":{"id":"m2"}}"#;
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
        let (name, data): (&str, Vec<u8>) = match op % 10 {
            0 => (
                "message_start",
                format!(
                    r#"{{"type":"message_start","message":{{"id":"msg_{}","model":"m","usage":{{"input_tokens":5}}}}}}"#,
                    arg % 2
                )
                .into_bytes(),
            ),
            1 => (
                "content_block_start",
                format!(
                    r#"{{"type":"content_block_start","index":{i},"content_block":{}}}"#,
                    BLOCKS[usize::from(arg / 4) % 6]
                )
                .into_bytes(),
            ),
            2 | 3 => (
                "content_block_delta",
                format!(
                    r#"{{"type":"content_block_delta","index":{i},"delta":{}}}"#,
                    DELTAS[usize::from(arg / 4) % 6]
                )
                .into_bytes(),
            ),
            4 => (
                "content_block_stop",
                format!(r#"{{"type":"content_block_stop","index":{i}}}"#).into_bytes(),
            ),
            5 => (
                "message_delta",
                format!(
                    r#"{{"type":"message_delta","delta":{{"stop_reason":"{}"}},"usage":{{"output_tokens":{arg}}}}}"#,
                    STOPS[usize::from(arg) % 5]
                )
                .into_bytes(),
            ),
            6 => ("message_stop", br#"{"type":"message_stop"}"#.to_vec()),
            7 => ("ping", br#"{"type": "ping"}"#.to_vec()),
            8 => (
                "error",
                br#"{"type":"error","error":{"type":"overloaded_error","message":"x"}}"#.to_vec(),
            ),
            _ => (
                "content_block_delta",
                it.by_ref().take(usize::from(arg % 16)).collect(),
            ),
        };
        m.on_event(Some(name.as_bytes()), &data, &mut out);
    }
    if flags & 4 != 0 {
        m.fail("gateway \"timeout\"\n", &mut out);
    } else {
        m.finish(&mut out);
    }
    assert!(m.is_done());
    let len = out.len();
    m.on_event(Some(b"message_start"), MESSAGE_START, &mut out);
    m.fail("again", &mut out);
    m.finish(&mut out);
    assert_eq!(out.len(), len, "written after the end");
    if let Err(e) = check::check_openai_stream(&out, true) {
        panic!("{e}\n{}", String::from_utf8_lossy(&out));
    }
});
