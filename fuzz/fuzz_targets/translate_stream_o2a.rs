#![no_main]
//! OpenAI chunks → Anthropic SSE: each input byte picks an upstream chunk (protocol pieces
//! in any order, or raw bytes, not necessarily UTF-8), then upstream EOF (`finish`) or a
//! gateway failure (`fail`); the output always satisfies the Anthropic SDK invariants (one
//! message_start first, blocks 0,1,2… opened and closed once, event names) and ends in
//! message_stop or an error event, `is_done()` holds and nothing more is written after it;
//! nothing panics.

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
        let data: Vec<u8> = match op % 7 {
            0..=2 => format!(
                r#"{head}"choices":[{{"index":{},"delta":{}}}]}}"#,
                arg / 128,
                DELTAS[usize::from(arg) % 8]
            )
            .into_bytes(),
            3 => format!(
                r#"{head}"choices":[{{"index":0,"delta":{{}},"finish_reason":"{}"}}]}}"#,
                FINISH[usize::from(arg) % 4]
            )
            .into_bytes(),
            4 => format!(
                r#"{head}"choices":[],"usage":{{"prompt_tokens":{arg},"completion_tokens":3,"prompt_tokens_details":{{"cached_tokens":9}}}}}}"#
            )
            .into_bytes(),
            5 => {
                if arg % 2 == 0 {
                    b"[DONE]".to_vec()
                } else {
                    br#"{"error":{"message":"boom","type":"server_error"}}"#.to_vec()
                }
            }
            _ => it.by_ref().take(usize::from(arg % 16)).collect(),
        };
        m.on_event(None, &data, &mut out);
    }
    if flags & 2 != 0 {
        m.fail("gateway \"timeout\"\n", &mut out);
    } else {
        m.finish(&mut out);
    }
    assert!(m.is_done());
    let len = out.len();
    m.on_event(
        None,
        br#"{"choices":[{"index":0,"delta":{"content":"x"}}]}"#,
        &mut out,
    );
    m.fail("again", &mut out);
    m.finish(&mut out);
    assert_eq!(out.len(), len, "written after the end");
    if let Err(e) = check::check_anthropic_stream(&out, true) {
        panic!("{e}\n{}", String::from_utf8_lossy(&out));
    }
});
