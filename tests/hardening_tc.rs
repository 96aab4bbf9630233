//! Hardening through the real binary: refused tool-call arguments, config values that reach
//! headers, config error key paths, README config blocks, strict upstream framing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

// ---------- A: tool-call arguments an Anthropic provider cannot take ----------

#[test]
fn invalid_tool_call_arguments_are_a_400_and_never_sent_upstream() {
    let (m, g) = setup("");
    let body = serde_json::json!({
        "model": "claude",
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": "one moment"},
            {"role": "assistant", "tool_calls": [{
                "id": "call_bad",
                "type": "function",
                "function": {"name": "get_weather", "arguments": "{{{not json"}
            }]},
            {"role": "tool", "tool_call_id": "call_bad", "content": "?"}
        ]
    })
    .to_string();
    let r = request(g.addr, &post("/v1/chat/completions", &[], &body));
    assert_eq!(r.status, 400, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    assert_eq!(
        v["error"]["param"], "messages[2].tool_calls[0].function.arguments",
        "{v}"
    );
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("tool call 0") && message.contains("call_bad"),
        "{message}"
    );
    assert!(mock_requests(&m).is_empty(), "the provider got the request");
}
