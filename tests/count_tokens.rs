//! `POST /v1/messages/count_tokens` for a model an OpenAI-kind provider serves, through the
//! real binary: the gateway answers with its own o200k_base estimate, never the provider.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

fn count(addr: std::net::SocketAddr, body: &serde_json::Value) -> (u64, Response) {
    let r = request(
        addr,
        &post("/v1/messages/count_tokens", &[], &body.to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    // Anthropic's shape, and nothing else in it.
    assert_eq!(v.as_object().unwrap().len(), 1, "{v}");
    let n = v["input_tokens"].as_u64().unwrap();
    (n, r)
}

#[test]
fn an_openai_model_gets_an_estimate_that_grows_with_the_request() {
    let (m, g) = setup("");
    let prompt = |text: &str| {
        serde_json::json!({
            "model": "gpt",
            "messages": [{"role": "user", "content": text}],
        })
    };
    let (short, r) = count(g.addr, &prompt("hello world"));
    // priming 3 + message 3 + "user" 1 + "hello world" 2.
    assert_eq!(short, 9);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("x-ringway-request-id").is_some());
    assert_eq!(r.header("x-ringway-provider"), Some("mo"));
    assert_eq!(r.header("x-ringway-model"), Some("mock-gpt-up"));

    let long_text = "The quick brown fox jumps over the lazy dog. ".repeat(100);
    let (long, _) = count(g.addr, &prompt(&long_text));
    // About 10 tokens a sentence.
    assert!((900..1200).contains(&long), "{long}");

    // With a system prompt and a tool definition it grows again.
    let with_tools = serde_json::json!({
        "model": "gpt",
        "system": "You are terse.",
        "messages": [{"role": "user", "content": "hello world"}],
        "tools": [{
            "name": "get_weather",
            "description": "Get the current weather for a city.",
            "input_schema": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": "City name"}},
                "required": ["city"],
            },
        }],
    });
    let (tooled, _) = count(g.addr, &with_tools);
    // system message ≥ 3 + 1 + 4; a tool ≥ func_init 7 + func_end 12 + its text.
    assert!(tooled >= short + 8 + 19 + 10, "{tooled} vs {short}");
    assert!(tooled < short + 100, "{tooled}");

    // The provider never saw any of it.
    assert!(mock_requests(&m).is_empty());
}

#[test]
fn a_malformed_body_is_an_anthropic_400() {
    let (m, g) = setup("");
    let r = request(
        g.addr,
        &post(
            "/v1/messages/count_tokens",
            &[],
            r#"{"model":"gpt","messages":[{"role":"user","content":42}]}"#,
        ),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("messages"),
        "{v}"
    );
    assert!(mock_requests(&m).is_empty());
}

#[test]
fn a_large_body_is_counted_off_the_worker_with_the_same_result() {
    let (_m, g) = setup("");
    // Above the inline bound (256 KiB), so it is counted on a helper thread.
    let words = "lorem ipsum dolor sit amet ".repeat(24_000);
    let count = |text: &str| {
        let body = serde_json::json!({
            "model": "gpt",
            "messages": [{"role": "user", "content": text}],
        })
        .to_string();
        let r = request(g.addr, &post("/v1/messages/count_tokens", &[], &body));
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["input_tokens"].as_u64().unwrap()
    };
    let big = count(&words);
    let small = count("lorem ipsum dolor sit amet ");
    // The same 5-word text 24,000 times: about 5 tokens a copy once joined (one copy alone
    // is 6-7 plus the message overhead).
    assert!(small > 8 && small < 20, "{small}");
    assert!(big > 24_000 * 4 && big < 24_000 * 7, "{big}");
}
