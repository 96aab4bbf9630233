#![no_main]
//! OpenAI chunks → Anthropic SSE: each input byte picks an upstream chunk (protocol pieces
//! in any order, or raw bytes); the output always satisfies the Anthropic SDK invariants
//! (one message_start first, blocks 0,1,2… opened and closed once, event names) and ends in
//! message_stop or an error event; nothing panics.

use libfuzzer_sys::fuzz_target;
use ringway::translate::{check, OpenAiToAnthropicStream, RequestMeta};

const DELTAS: [&str; 8] = [
    r#"{"role":"assistant","content":""}"#,
    r#"{"content":"hi"}"#,
    r#"{"refusal":"no"}"#,
    r#"{"reasoning_content":"think"}"#,
    r#"{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"f","arguments":""}}]}"#,
    r#"{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"g","arguments":"{"}}]}"#,
    r#"{"tool_calls":[{"index":0,"function":{"arguments":"\"x\":1}"}}]}"#,
    r#"{"content":"a","tool_calls":[{"index":2,"function":{"name":"h","arguments":"{}"}}]}"#,
];
const FINISH: [&str; 4] = ["stop", "length", "tool_calls", "content_filter"];

fuzz_target!(|input: &[u8]| {
    let Some((&flags, ops)) = input.split_first() else {
        return;
    };
    let meta = RequestMeta {
        client_thinking: flags & 1 != 0,
        ..RequestMeta::default()
    };
    let mut m = OpenAiToAnthropicStream::new(&meta);
    let mut out = Vec::new();
    let mut it = ops.iter().copied();
    while let Some(op) = it.next() {
        let arg = it.next().unwrap_or(0);
        let head = r#"{"id":"chatcmpl-f","model":"m","#;
        let data = match op % 7 {
            0..=2 => format!(
                r#"{head}"choices":[{{"index":{},"delta":{}}}]}}"#,
                arg / 128,
                DELTAS[usize::from(arg) % 8]
            ),
            3 => format!(
                r#"{head}"choices":[{{"index":0,"delta":{{}},"finish_reason":"{}"}}]}}"#,
                FINISH[usize::from(arg) % 4]
            ),
            4 => format!(
                r#"{head}"choices":[],"usage":{{"prompt_tokens":{arg},"completion_tokens":3,"prompt_tokens_details":{{"cached_tokens":9}}}}}}"#
            ),
            5 => {
                if arg % 2 == 0 {
                    "[DONE]".to_owned()
                } else {
                    r#"{"error":{"message":"boom","type":"server_error"}}"#.to_owned()
                }
            }
            _ => String::from_utf8_lossy(
                it.by_ref()
                    .take(usize::from(arg % 16))
                    .collect::<Vec<u8>>()
                    .as_slice(),
            )
            .into_owned(),
        };
        m.on_event(None, data.as_bytes(), &mut out);
    }
    m.finish(&mut out);
    if let Err(e) = check::check_anthropic_stream(&out, true) {
        panic!("{e}\n{}", String::from_utf8_lossy(&out));
    }
});
