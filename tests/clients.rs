//! What today's clients need from the gateway beyond translation, through the real binary:
//! provider errors that are not JSON, malformed requests stopped before any upstream call,
//! and client headers forwarded by policy.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

/// A gateway whose `r` route goes to a raw provider of `kind` answering `response`.
fn raw_route(kind: &str, response: &[u8]) -> Proc {
    let up = raw_upstream(response.to_vec());
    let base = if kind == "openai" {
        format!("http://{up}/v1")
    } else {
        format!("http://{up}")
    };
    gateway(&format!(
        "[[provider]]\nname = \"raw\"\nkind = \"{kind}\"\nbase_url = \"{base}\"\n\n[[route]]\nmodel = \"r\"\ntargets = [\"raw/x\"]\n"
    ))
}

// ---------- provider errors that are not JSON ----------

#[test]
fn html_and_empty_provider_errors_reach_same_format_clients_in_their_format() {
    let html = b"HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/html\r\ncontent-length: 47\r\n\r\n<html><body>upstream connect error</body></html>";
    let empty = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n";
    for (kind, response, status, snippet) in [
        ("openai", &html[..], 502, "upstream connect error"),
        ("anthropic", &html[..], 502, "upstream connect error"),
        ("openai", &empty[..], 503, "upstream returned HTTP 503"),
        ("anthropic", &empty[..], 503, "upstream returned HTTP 503"),
    ] {
        let g = raw_route(kind, response);
        let r = if kind == "openai" {
            chat_openai(g.addr, "r", "hi", false)
        } else {
            chat_anthropic(g.addr, "r", "hi", false)
        };
        assert_eq!(r.status, status, "{kind}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        let v = r.json();
        let message = if kind == "openai" {
            assert_eq!(v["error"]["type"], "server_error", "{v}");
            v["error"]["message"].as_str().unwrap().to_owned()
        } else {
            assert_eq!(v["type"], "error", "{v}");
            let want = if status == 503 {
                "overloaded_error"
            } else {
                "api_error"
            };
            assert_eq!(v["error"]["type"], want, "{v}");
            v["error"]["message"].as_str().unwrap().to_owned()
        };
        assert!(message.contains(snippet), "{kind}: {message}");
    }
}

#[test]
fn a_provider_error_in_the_clients_format_passes_through_unchanged() {
    let body = r#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
    let response = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 7\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let g = raw_route("openai", response.as_bytes());
    let r = chat_openai(g.addr, "r", "hi", false);
    assert_eq!(r.status, 429);
    assert_eq!(r.text(), body, "byte for byte");
    assert_eq!(r.header("retry-after"), Some("7"));
}

// ---------- malformed requests stop at the gateway ----------

#[test]
fn malformed_requests_cost_no_upstream_call() {
    let (m, g) = setup("");
    for (path, body, param, status) in [
        (
            "/v1/chat/completions",
            r#"{"model":"gpt","messages":"hi"}"#,
            "messages",
            400,
        ),
        (
            "/v1/chat/completions",
            r#"{"model":"gpt"}"#,
            "messages",
            400,
        ),
        (
            "/v1/chat/completions",
            r#"{"messages":[{"role":"user","content":"hi"}]}"#,
            "model",
            400,
        ),
        (
            "/v1/messages",
            r#"{"model":"claude","messages":[{"role":"user","content":"hi"}]}"#,
            "max_tokens",
            400,
        ),
        (
            "/v1/messages",
            r#"{"model":"claude","max_tokens":"many","messages":[]}"#,
            "max_tokens",
            400,
        ),
        (
            "/v1/messages",
            r#"{"model":"claude","max_tokens":5,"messages":{"role":"user"}}"#,
            "messages",
            400,
        ),
        (
            "/v1/messages/count_tokens",
            r#"{"model":"claude"}"#,
            "messages",
            400,
        ),
    ] {
        let r = request(g.addr, &post(path, &[], body));
        assert_eq!(r.status, status, "{path} {body}: {}", r.text());
        let v = r.json();
        let message = if path.starts_with("/v1/messages") {
            assert_eq!(v["type"], "error", "{v}");
            v["error"]["message"].as_str().unwrap().to_owned()
        } else {
            v["error"]["message"].as_str().unwrap().to_owned()
        };
        assert!(message.contains(param), "{path} {body}: {message}");
    }
    // count_tokens needs no max_tokens.
    let r = request(
        g.addr,
        &post(
            "/v1/messages/count_tokens",
            &[],
            r#"{"model":"claude","messages":[{"role":"user","content":"hi"}]}"#,
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = mock_requests(&m);
    assert_eq!(
        seen.len(),
        1,
        "only the valid count reached the mock: {seen:?}"
    );
}
