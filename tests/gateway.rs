//! End-to-end tests of the gateway core: the real binary, the real mock provider, real sockets.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

// ---------- same-format chat, both endpoints, streaming and not ----------

#[test]
fn openai_non_streaming_rewrites_model_and_swaps_credentials() {
    let (m, g) = setup("");
    let r = request(
        g.addr,
        &post(
            "/v1/chat/completions",
            &[("authorization", "Bearer client-secret")],
            &openai_body("gpt", "hello there friend", false),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert!(v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .contains("hello there friend"));
    assert_eq!(r.header("x-ringway-provider"), Some("mo"));
    assert_eq!(r.header("x-ringway-model"), Some("mock-gpt-up"));
    // rw-<16 hex: random per process>-<worker>-<counter>: custody records are found by it,
    // so the prefix must not repeat across starts.
    let id = r.header("x-ringway-request-id").unwrap();
    let parts: Vec<&str> = id.split('-').collect();
    assert_eq!(parts.len(), 4, "{id}");
    assert_eq!(parts[0], "rw");
    assert_eq!(parts[1].len(), 16, "{id}");
    assert!(
        parts[1..]
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit())),
        "{id}"
    );

    let seen = mock_requests(&m);
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(req["path"], "/v1/chat/completions");
    assert_eq!(req["headers"]["authorization"], "Bearer sk-provider-openai");
    let body: serde_json::Value = serde_json::from_str(req["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["model"], "mock-gpt-up");
    assert_eq!(body["messages"][0]["content"], "hello there friend");
    assert!(
        !req.to_string().contains("client-secret"),
        "client key leaked upstream: {req}"
    );
}

#[test]
fn openai_streaming_relays_every_event() {
    let (_m, g) = setup("");
    let r = chat_openai(g.addr, "gpt", "one two three", true);
    assert_eq!(r.status, 200);
    assert!(r.chunked);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let events = sse_events(&r.body);
    assert!(events.len() > 5, "{events:?}");
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let text: String = events
        .iter()
        .filter(|(_, d)| d != "[DONE]")
        .filter_map(|(_, d)| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert!(text.contains("one two three"), "{text}");
}

#[test]
fn anthropic_non_streaming_and_headers_forwarded() {
    let (m, g) = setup("");
    let r = request(
        g.addr,
        &post(
            "/v1/messages",
            &[
                ("x-api-key", "client-secret"),
                ("anthropic-version", "2023-06-01"),
                ("anthropic-beta", "tools-2099-01-01"),
            ],
            &anthropic_body("claude", "hi there", false),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["model"], "mock-claude-up");
    let seen = mock_requests(&m);
    let req = &seen[0];
    assert_eq!(req["path"], "/v1/messages");
    assert_eq!(req["headers"]["x-api-key"], "sk-provider-anthropic");
    assert_eq!(req["headers"]["anthropic-version"], "2023-06-01");
    assert_eq!(req["headers"]["anthropic-beta"], "tools-2099-01-01");
    assert!(!req.to_string().contains("client-secret"));
}

#[test]
fn anthropic_version_defaults_when_client_sends_none() {
    let (m, g) = setup("");
    let r = chat_anthropic(g.addr, "claude", "hi", false);
    assert_eq!(r.status, 200);
    assert_eq!(
        mock_requests(&m)[0]["headers"]["anthropic-version"],
        "2023-06-01"
    );
}

#[test]
fn anthropic_streaming_relays_events_in_order() {
    let (_m, g) = setup("");
    let r = chat_anthropic(g.addr, "claude", "stream me", true);
    assert_eq!(r.status, 200);
    let events = sse_events(&r.body);
    let names: Vec<&str> = events
        .iter()
        .map(|(e, _)| e.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"message_stop"));
    assert!(names.contains(&"content_block_delta"));
}

#[test]
fn events_reach_the_client_as_they_arrive() {
    // 200 ms between tokens: the first token must arrive long before the stream ends.
    let (_m, g) = setup("");
    let mut c = Client::connect(g.addr);
    let start = Instant::now();
    c.send_raw(&post(
        "/v1/chat/completions",
        &[],
        &openai_body("gpt", "mock:tokens=6 mock:itl=200", true),
    ));
    let (status, _) = c.read_head().unwrap();
    assert_eq!(status, 200);
    let mut first_content = None;
    let mut chunks = 0;
    while let Some(chunk) = c.read_chunk() {
        chunks += 1;
        if first_content.is_none() && String::from_utf8_lossy(&chunk).contains("\"content\":\"w") {
            first_content = Some(start.elapsed());
        }
    }
    let total = start.elapsed();
    let first = first_content.expect("no content event");
    assert!(chunks >= 6);
    // Six tokens 200 ms apart take about 1 s (the mock's timer can fire a few ms early on a
    // loaded machine: 987 ms was seen once); a buffering relay would deliver the first at the end.
    assert!(total >= Duration::from_millis(900), "total {total:?}");
    assert!(
        total - first >= Duration::from_millis(800),
        "first token at {first:?}, end at {total:?}"
    );
}

#[test]
fn count_tokens_passes_through_to_anthropic() {
    let (m, g) = setup("");
    let r = request(
        g.addr,
        &post(
            "/v1/messages/count_tokens",
            &[],
            r#"{"model":"claude","messages":[{"role":"user","content":"count me"}]}"#,
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(mock_requests(&m)[0]["path"], "/v1/messages/count_tokens");
}

#[test]
fn escaped_model_key_is_still_rewritten() {
    let (m, g) = setup("");
    let body = r#"{"mod\u0065l":"gpt","messages":[{"role":"user","content":"x","model":"inner"}],"metadata":{"model":"keep"}}"#;
    let r = request(g.addr, &post("/v1/chat/completions", &[], body));
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = mock_requests(&m)[0]["body"].as_str().unwrap().to_owned();
    let v: serde_json::Value = serde_json::from_str(&sent).unwrap();
    assert_eq!(v["model"], "mock-gpt-up");
    assert_eq!(v["messages"][0]["model"], "inner");
    assert_eq!(v["metadata"]["model"], "keep");
    // Only the model value changed, byte for byte.
    assert_eq!(sent, body.replace("\"gpt\"", "\"mock-gpt-up\""));
}

#[test]
fn duplicate_model_keys_are_refused() {
    let (m, g) = setup("");
    let body = r#"{"model":"gpt","model":"claude","messages":[]}"#;
    let r = request(g.addr, &post("/v1/chat/completions", &[], body));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    assert!(mock_requests(&m).is_empty());
}

#[test]
fn invalid_json_is_a_client_format_400() {
    let (_m, g) = setup("");
    let r = request(
        g.addr,
        &post("/v1/messages", &[], r#"{"model":"claude","messages":[}"#),
    );
    assert_eq!(r.status, 400);
    let v = r.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let r = request(g.addr, &post("/v1/chat/completions", &[], r#"["model"]"#));
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]["message"].is_string());
}

// ---------- routing ----------

#[test]
fn unknown_model_is_404_in_each_format() {
    let (m, g) = setup("");
    let r = chat_openai(g.addr, "nope", "x", false);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "model_not_found");
    let r = chat_anthropic(g.addr, "zz/model", "x", false);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["type"], "not_found_error");
    assert!(r.header("x-ringway-request-id").is_some());
    assert!(mock_requests(&m).is_empty());
}

#[test]
fn direct_provider_addressing() {
    let (m, g) = setup("");
    for (model, want) in [
        ("mo/some-model", "some-model"),
        ("@mo/org/other", "org/other"),
    ] {
        let r = chat_openai(g.addr, model, "x", false);
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        assert_eq!(r.header("x-ringway-model"), Some(want));
    }
    let seen = mock_requests(&m);
    let models: Vec<String> = seen
        .iter()
        .map(|r| {
            serde_json::from_str::<serde_json::Value>(r["body"].as_str().unwrap()).unwrap()["model"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(models, ["some-model", "org/other"]);
}

#[test]
fn cross_format_requests_are_translated_both_ways() {
    let (m, g) = setup("");
    // Anthropic client → OpenAI provider.
    let r = chat_anthropic(g.addr, "gpt", "across formats", false);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "message");
    assert!(v["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("across formats"));
    // OpenAI client → Anthropic provider, streaming.
    let r = chat_openai(g.addr, "claude", "stream across", true);
    assert_eq!(r.status, 200);
    let events = sse_events(&r.body);
    assert_eq!(events.last().unwrap().1, "[DONE]");
    assert!(
        events.iter().all(|(e, _)| e.is_none()),
        "OpenAI frames carry no event names"
    );
    let seen = mock_requests(&m);
    assert_eq!(seen[0]["path"], "/v1/chat/completions");
    assert_eq!(seen[1]["path"], "/v1/messages");
    let sent: serde_json::Value = serde_json::from_str(seen[1]["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent["model"], "mock-claude-up");
    assert!(
        sent["max_tokens"].as_u64().unwrap() > 0,
        "Anthropic needs max_tokens: {sent}"
    );
}

#[test]
fn count_tokens_to_an_openai_provider_is_estimated_by_the_gateway() {
    // An OpenAI-kind provider has no count_tokens: the gateway answers with its own estimate
    // instead of refusing the request, and the provider is never asked.
    let (m, g) = setup("");
    let r = request(
        g.addr,
        &post(
            "/v1/messages/count_tokens",
            &[],
            r#"{"model":"gpt","messages":[]}"#,
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // No messages: only the reply priming (3 tokens) is left.
    assert_eq!(r.json(), serde_json::json!({"input_tokens": 3}));
    assert!(r.header("x-ringway-request-id").is_some());
    assert!(mock_requests(&m).is_empty());
}

#[test]
fn models_health_ready_and_unknown_paths() {
    let m = mock(&[]);
    let cfg = format!(
        "{}\n[[route]]\nmodel = \"vis\"\ntargets = [\"mo/x\"]\ncapabilities = {{ vision = true, context_window = 1000 }}\n",
        standard_providers(&m)
    );
    let g = gateway_env(&cfg, PROVIDER_KEYS);
    let r = request(g.addr, &get("/v1/models", &[]));
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["gpt", "claude", "vis"]);
    assert_eq!(v["data"][2]["capabilities"]["vision"], true);
    assert_eq!(v["data"][2]["capabilities"]["context_window"], 1000);
    assert!(v["data"][2]["capabilities"]["tools"].is_null());

    let r = request(g.addr, &get("/healthz", &[]));
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    let r = request(g.addr, &get("/readyz", &[]));
    assert_eq!(r.status, 200);
    let r = request(g.addr, &get("/v2/nothing", &[]));
    assert_eq!(r.status, 404);
    assert!(r.header("x-ringway-request-id").is_some());
    let r = request(g.addr, &get("/v1/chat/completions", &[]));
    assert_eq!(r.status, 405);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("POST"));
}

// ---------- connection handling ----------

#[test]
fn keep_alive_downstream_and_upstream_reuse() {
    let m = mock(&[]);
    let g = gateway_env(
        &format!("[server]\nworkers = 1\n{}", standard_providers(&m)),
        PROVIDER_KEYS,
    );
    let mut c = Client::connect(g.addr);
    let mut conns = Vec::new();
    for i in 0..4 {
        let body = if i % 2 == 0 {
            openai_body("gpt", "x", i == 2)
        } else {
            openai_body("gpt", "y", false)
        };
        c.send_raw(&post("/v1/chat/completions", &[], &body));
        let r = c.read_response().unwrap();
        assert_eq!(r.status, 200);
        conns.push(r.header("x-mock-conn").unwrap().to_owned());
    }
    // One upstream connection served all four (streamed and not).
    assert!(conns.iter().all(|c| c == &conns[0]), "{conns:?}");
    let seen = mock_requests(&m);
    assert_eq!(seen.len(), 4);
    assert!(seen.iter().all(|r| r["conn"] == seen[0]["conn"]));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (_m, g) = setup("");
    let mut c = Client::connect(g.addr);
    let mut all = post(
        "/v1/chat/completions",
        &[],
        &openai_body("gpt", "first", false),
    );
    all.extend(get("/healthz", &[]));
    all.extend(post(
        "/v1/messages",
        &[],
        &anthropic_body("claude", "third", false),
    ));
    c.send_raw(&all);
    let a = c.read_response().unwrap();
    let b = c.read_response().unwrap();
    let d = c.read_response().unwrap();
    assert!(a.text().contains("first"));
    assert_eq!(b.text(), "ok\n");
    assert!(d.text().contains("third"));
}

#[test]
fn chunked_request_body() {
    let (m, g) = setup("");
    let body = openai_body("gpt", "chunked hello", false);
    let (a, b) = body.split_at(10);
    let raw = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n{:x};ext=1\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\ntrailer: x\r\n\r\n",
        a.len(),
        b.len()
    );
    let r = request(g.addr, raw.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let sent: serde_json::Value =
        serde_json::from_str(mock_requests(&m)[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent["messages"][0]["content"], "chunked hello");
}

#[test]
fn expect_100_continue() {
    let (_m, g) = setup("");
    let body = openai_body("gpt", "expecting", false);
    let mut c = Client::connect(g.addr);
    c.send_raw(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\nexpect: 100-continue\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    std::thread::sleep(Duration::from_millis(100));
    c.send_raw(body.as_bytes());
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn http10_client_gets_a_close_delimited_stream() {
    let (_m, g) = setup("");
    let body = openai_body("gpt", "old client", true);
    let raw = format!(
        "POST /v1/chat/completions HTTP/1.0\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let r = request(g.addr, raw.as_bytes());
    assert_eq!(r.status, 200);
    assert!(!r.chunked);
    assert!(r.text().ends_with("data: [DONE]\n\n"), "{}", r.text());
}

/// A large same-format body reaches the provider byte for byte with only the model's value
/// changed, wherever the model sits: first (Anthropic clients), last (the OpenAI SDKs) or
/// between two large members. The gateway sends such a body in parts without copying it.
#[test]
fn large_same_format_bodies_reach_the_provider_byte_for_byte() {
    let (m, g) = setup("");
    // Escapes and non-ASCII text, as an agent's file contents have them.
    let text = r#"fn main() {\n    println!(\"héllo\t\\\");\n}\n"#.repeat(2000);
    let messages = format!(r#""messages":[{{"role":"user","content":"{text}"}}]"#);
    let tools = format!(r#""metadata":{{"note":"{text}"}}"#);
    let cases = [
        (
            "/v1/messages",
            "claude",
            "mock-claude-up",
            format!(r#"{{"model":"claude","max_tokens":16,{messages}}}"#),
        ),
        (
            "/v1/chat/completions",
            "gpt",
            "mock-gpt-up",
            format!(r#"{{{messages},"model":"gpt"}}"#),
        ),
        (
            "/v1/chat/completions",
            "gpt",
            "mock-gpt-up",
            format!(r#"{{{messages},"model" : "gpt" ,{tools}}}"#),
        ),
    ];
    for (path, alias, upstream, body) in cases {
        assert!(body.len() > 64 * 1024, "{}", body.len());
        request(
            m.addr,
            b"DELETE /mock/requests HTTP/1.1\r\nhost: m\r\ncontent-length: 0\r\n\r\n",
        );
        let r = request(
            g.addr,
            &post(path, &[("anthropic-version", "2023-06-01")], &body),
        );
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let seen = mock_requests(&m);
        assert_eq!(seen.len(), 1);
        let want = body.replacen(&format!("\"{alias}\""), &format!("\"{upstream}\""), 1);
        assert_eq!(seen[0]["body"].as_str().unwrap(), want, "{path}");
    }
}

#[test]
fn large_body_relayed_with_content_length() {
    let (_m, g) = setup("");
    let r = chat_openai(g.addr, "gpt", "mock:big=300000", false);
    assert_eq!(r.status, 200);
    assert!(r.body.len() >= 300_000, "{}", r.body.len());
    assert_eq!(
        r.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap(),
        r.body.len()
    );
    r.json();
}

// ---------- limits ----------

#[test]
fn oversized_head_is_431() {
    let (_m, g) = setup("");
    let mut c = Client::connect(g.addr);
    let big = "a".repeat(70 * 1024);
    // The gateway answers and closes as soon as the bound is passed; it may close before it
    // reads all of what we send, so ignore write errors.
    let _ = c
        .stream
        .write_all(format!("POST /v1/messages HTTP/1.1\r\nx-big: {big}\r\n\r\n").as_bytes());
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 431);
    assert_eq!(
        r.json()["type"],
        "error",
        "Anthropic path gets an Anthropic error"
    );
}

#[test]
fn oversized_body_is_413_and_never_sent_upstream() {
    let (m, g) = setup("[server]\nworkers = 1\nmax_body_bytes = 1000\n");
    let body = openai_body("gpt", &"x".repeat(2000), false);
    let r = request(g.addr, &post("/v1/chat/completions", &[], &body));
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["code"], "request_too_large");
    // Chunked bodies are bounded too.
    let raw = format!("POST /v1/messages HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
    let mut c = Client::connect(g.addr);
    let _ = c.stream.write_all(raw.as_bytes());
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["type"], "request_too_large");
    assert!(mock_requests(&m).is_empty());
}

#[test]
fn content_length_with_transfer_encoding_is_refused() {
    let (m, g) = setup("");
    let raw = b"POST /v1/chat/completions HTTP/1.1\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n";
    let mut c = Client::connect(g.addr);
    c.send_raw(raw);
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 400);
    assert!(c.is_closed(), "connection must close after a framing error");
    assert!(mock_requests(&m).is_empty());
}

#[test]
fn slowloris_is_cut_off() {
    let (_m, g) = setup("[server]\nworkers = 1\nheader_read_timeout_ms = 300\n");
    let mut c = Client::connect(g.addr);
    c.send_raw(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n");
    // Keep trickling header bytes slower than the deadline allows.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(150));
        if c.stream.write_all(b"x-slow: 1\r\n").is_err() {
            break;
        }
    }
    // The cut is what the client sees: a 408 (or the close alone) well before its own read
    // timeout, past which `read_response`/`is_closed` fail the test. No clock: a loaded
    // machine may be slow, never this wrong.
    let r = c.read_response();
    if let Some(r) = r {
        assert_eq!(r.status, 408);
    }
    assert!(c.is_closed());
}

#[test]
fn idle_keepalive_connection_is_closed() {
    let (_m, g) = setup("[server]\nworkers = 1\nkeepalive_timeout_ms = 200\n");
    let mut c = Client::connect(g.addr);
    c.send_raw(&get("/healthz", &[]));
    assert_eq!(c.read_response().unwrap().status, 200);
    // Closed by the gateway: an open connection fails `is_closed` at the client's read timeout.
    assert!(c.is_closed());
}

// ---------- gateway keys ----------

fn keyed_setup() -> (Proc, Proc) {
    let m = mock(&[]);
    // sha256("team-a-key")
    let hash = {
        let d = ring::digest::digest(&ring::digest::SHA256, b"team-a-key");
        d.as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let cfg = format!(
        r#"{}
[[key]]
name = "team-a"
sha256 = "{hash}"

[[key]]
name = "team-b"
key_env = "RW_TEST_TEAM_B"
routes = ["claude", "mo/*"]
"#,
        standard_providers(&m)
    );
    let mut env = PROVIDER_KEYS.to_vec();
    env.push(("RW_TEST_TEAM_B", "team-b-key"));
    let g = gateway_env(&cfg, &env);
    (m, g)
}

#[test]
fn gateway_keys_are_enforced_in_both_formats() {
    let (m, g) = keyed_setup();
    let o = openai_body("gpt", "x", false);
    let a = anthropic_body("claude", "x", false);
    // Missing and wrong keys: 401, nothing upstream.
    let r = request(g.addr, &post("/v1/chat/completions", &[], &o));
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "invalid_api_key");
    let r = request(g.addr, &post("/v1/messages", &[("x-api-key", "wrong")], &a));
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["type"], "authentication_error");
    let r = request(g.addr, &get("/v1/models", &[]));
    assert_eq!(r.status, 401);
    assert!(
        mock_requests(&m).is_empty(),
        "upstream was called without a valid key"
    );

    // Right keys, either header style, either endpoint.
    let r = request(
        g.addr,
        &post(
            "/v1/chat/completions",
            &[("authorization", "Bearer team-a-key")],
            &o,
        ),
    );
    assert_eq!(r.status, 200);
    let r = request(
        g.addr,
        &post("/v1/messages", &[("x-api-key", "team-b-key")], &a),
    );
    assert_eq!(r.status, 200);
    let r = request(
        g.addr,
        &post(
            "/v1/chat/completions",
            &[("x-api-key", "team-b-key")],
            &openai_body("mo/any", "x", false),
        ),
    );
    assert_eq!(r.status, 200);
    // team-b may not use `gpt`.
    let r = request(
        g.addr,
        &post(
            "/v1/chat/completions",
            &[("authorization", "Bearer team-b-key")],
            &o,
        ),
    );
    assert_eq!(r.status, 403);
    assert_eq!(mock_requests(&m).len(), 3);
    // Neither the gateway key nor its hash went upstream.
    for req in mock_requests(&m) {
        let s = req.to_string();
        assert!(
            !s.contains("team-a-key") && !s.contains("team-b-key"),
            "{s}"
        );
    }
}

// ---------- upstream failures ----------

#[test]
fn upstream_refused_is_502_in_client_format() {
    // Bind and drop a listener to get a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = format!(
        "[[provider]]\nname = \"dead\"\nkind = \"anthropic\"\nbase_url = \"http://127.0.0.1:{port}\"\n\n[[route]]\nmodel = \"m\"\ntargets = [\"dead/x\"]\n"
    );
    let g = gateway(&cfg);
    let r = chat_anthropic(g.addr, "m", "x", true);
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error"]["type"], "api_error");
    assert_eq!(r.header("x-ringway-provider"), Some("dead"));
}

#[test]
fn upstream_reset_before_response_is_502() {
    let (_m, g) = setup("");
    let r = chat_openai(g.addr, "gpt", "mock:reset", false);
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "server_error");
}

#[test]
fn upstream_reset_mid_stream_ends_with_an_error_event() {
    let (_m, g) = setup("");
    for (path, body, anthropic) in [
        (
            "/v1/chat/completions",
            openai_body("gpt", "mock:reset", true),
            false,
        ),
        (
            "/v1/messages",
            anthropic_body("claude", "mock:reset", true),
            true,
        ),
    ] {
        let r = request(g.addr, &post(path, &[], &body));
        assert_eq!(r.status, 200);
        assert!(r.chunked, "stream must end with a proper last chunk");
        let events = sse_events(&r.body);
        let (name, data) = events.last().unwrap();
        let v: serde_json::Value = serde_json::from_str(data).unwrap();
        if anthropic {
            assert_eq!(name.as_deref(), Some("error"));
            assert_eq!(v["type"], "error");
        } else {
            assert!(v["error"]["message"].is_string(), "{v}");
        }
        assert!(events.len() >= 2, "some tokens came before the reset");
    }
}

#[test]
fn upstream_stall_before_head_times_out_with_504() {
    let (_m, g) = setup("[upstream]\nfirst_byte_timeout_ms = 400\n");
    let start = Instant::now();
    let r = chat_anthropic(g.addr, "claude", "mock:stall", false);
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["error"]["type"], "timeout_error");
    // Not before the timeout; that it fired at all is the 504 (the stall outlasts the
    // client's read timeout).
    let el = start.elapsed();
    assert!(el >= Duration::from_millis(350), "{el:?}");
}

#[test]
fn upstream_stall_mid_stream_ends_with_an_error_event() {
    let (_m, g) = setup("[upstream]\nidle_timeout_ms = 400\n");
    let r = chat_openai(g.addr, "gpt", "mock:stall", true);
    // The silence error event is the timeout firing (the stall outlasts the client).
    assert_ends_with_silence_error(&r);
}

/// A 200 stream whose last event is the error event for a provider that went silent.
fn assert_ends_with_silence_error(r: &Response) {
    assert_eq!(r.status, 200);
    let events = sse_events(&r.body);
    let v: serde_json::Value = serde_json::from_str(&events.last().unwrap().1).unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("silent"),
        "{v}"
    );
}

#[test]
fn a_pooled_connection_times_out_a_stalled_stream_no_sooner_and_no_later_than_its_idle_timeout() {
    // The idle deadline stays registered on a provider connection between reads and
    // requests (moved, not re-registered): streams on a reused connection must still be cut
    // after the idle timeout, measured from the last byte, not from an earlier read.
    let (_m, g) = setup("[upstream]\nidle_timeout_ms = 400\n");
    // Three streams leave the pooled connection's deadline registered and moved.
    let warm: Vec<u16> = (0..3)
        .map(|_| chat_openai(g.addr, "gpt", "hi", true).status)
        .collect();
    assert_eq!(warm, [200, 200, 200]);
    std::thread::sleep(Duration::from_millis(250));
    for _ in 0..2 {
        let start = Instant::now();
        let r = chat_openai(g.addr, "gpt", "mock:stall", true);
        let el = start.elapsed();
        // No later: the silence error event (the stall outlasts the client's read timeout);
        // no sooner: a deadline left from an earlier read would fire before 400 ms.
        assert_ends_with_silence_error(&r);
        assert!(el >= Duration::from_millis(380), "{el:?}");
    }
}

#[test]
fn upstream_error_status_and_body_pass_through_unchanged() {
    let (m, g) = setup("");
    let direct = request(
        m.addr,
        &post(
            "/v1/messages",
            &[],
            &anthropic_body("x", "mock:status=429", false),
        ),
    );
    let r = chat_anthropic(g.addr, "claude", "mock:status=429", false);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), direct.header("retry-after"));
    assert!(r.header("retry-after").is_some());
    let (mut a, mut b) = (r.json(), direct.json());
    // Bodies are identical except for ids the mock derives from the request body.
    a.as_object_mut().unwrap().remove("request_id");
    b.as_object_mut().unwrap().remove("request_id");
    assert_eq!(a, b);
    let r = chat_openai(g.addr, "gpt", "mock:status=500", false);
    assert_eq!(r.status, 500);
    assert!(r.json()["error"].is_object());
}

#[test]
fn upstream_midstream_error_event_passes_through() {
    let (_m, g) = setup("");
    let r = chat_anthropic(g.addr, "claude", "mock:midstream_error", true);
    assert_eq!(r.status, 200);
    let events = sse_events(&r.body);
    let errors: Vec<_> = events
        .iter()
        .filter(|(e, _)| e.as_deref() == Some("error"))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "exactly the provider's error event, no second one: {events:?}"
    );
    let v: serde_json::Value = serde_json::from_str(&errors[0].1).unwrap();
    assert_eq!(v["error"]["type"], "overloaded_error");
}

#[test]
fn missing_provider_key_is_a_clear_500() {
    let m = mock(&[]);
    let g = gateway(&standard_providers(&m)); // provider key env vars not set
    let r = chat_openai(g.addr, "gpt", "x", false);
    assert_eq!(r.status, 500);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("RW_TEST_OPENAI_KEY"));
    assert!(mock_requests(&m).is_empty());
}

// ---------- TLS upstream ----------

#[test]
fn https_upstream_with_ca_file() {
    let certs = test_certs();
    let cert_path = common::temp_path("leaf.pem");
    let key_path = common::temp_path("leaf.key");
    let ca_path = common::temp_path("ca.pem");
    std::fs::write(&cert_path, certs.leaf + &certs.ca).unwrap();
    std::fs::write(&key_path, &certs.key).unwrap();
    std::fs::write(&ca_path, &certs.ca).unwrap();
    let m = mock(&[
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
    ]);
    let port = m.addr.port();
    let cfg = format!(
        r#"[[provider]]
name = "secure"
kind = "openai"
base_url = "https://localhost:{port}/v1"
ca_file = "{}"

[[provider]]
name = "untrusted"
kind = "openai"
base_url = "https://localhost:{port}/v1"

[[route]]
model = "s"
targets = ["secure/tls-model"]

[[route]]
model = "u"
targets = ["untrusted/tls-model"]
"#,
        ca_path.display()
    );
    let g = gateway(&cfg);
    let r = chat_openai(g.addr, "s", "over tls", true);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("[DONE]"));
    let r = chat_openai(g.addr, "u", "over tls", false);
    assert_eq!(r.status, 502);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("TLS"),
        "{}",
        r.text()
    );
}

// ---------- commands ----------

#[test]
fn check_prints_routes_or_the_first_error() {
    let good = write_config(
        "[[provider]]\nname = \"p\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\n\n[[route]]\nmodel = \"fast\"\ntargets = [\"p/m1\"]\n",
    );
    let out = Command::new(bin())
        .args(["check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("fast") && text.contains("p/m1"), "{text}");

    let bad = write_config(
        "[[provider]]\nname = \"p\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\n\n[[route]]\nmodel = \"fast\"\ntargets = [\"q/m1\"]\n",
    );
    for cmd in ["check", "serve"] {
        let out = Command::new(bin())
            .args([cmd, "--config"])
            .arg(&bad)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{cmd} accepted a bad config");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "{}:8: route[0].targets[0]: unknown provider \"q\"",
                bad.display()
            )),
            "{cmd}: {err}"
        );
    }
}

#[test]
fn default_config_serves_the_demo_routes() {
    let mut cmd = Command::new(bin());
    cmd.args(["--listen", "127.0.0.1:0", "--driver", &driver()]);
    cmd.env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("GEMINI_API_KEY");
    let g = spawn_and_wait(cmd, "listening on");
    let r = chat_openai(g.addr, "demo-gpt", "demo", false);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = chat_anthropic(g.addr, "demo-claude", "demo", true);
    assert_eq!(r.status, 200);
    assert!(r.text().contains("message_stop"));
    // A Gemini client, translated for both demo providers.
    let body = r#"{"contents":[{"role":"user","parts":[{"text":"demo"}]}]}"#;
    for demo in ["demo-gpt", "demo-claude"] {
        let path = format!("/v1beta/models/{demo}:generateContent");
        let r = request(g.addr, &post(&path, &[], body));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["candidates"][0]["finishReason"], "STOP");
    }
    // Real providers without keys: a clear error, no network call.
    let r = chat_anthropic(g.addr, "anthropic/claude-x", "x", false);
    assert_eq!(r.status, 500);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("ANTHROPIC_API_KEY"));
}

#[test]
fn log_names_the_driver() {
    for (flag, want) in [("epoll", "driver epoll"), ("io_uring", "driver io_uring")] {
        let mut cmd = Command::new(bin());
        cmd.args(["--listen", "127.0.0.1:0", "--driver", flag]);
        let g = spawn_and_wait(cmd, "listening on");
        assert!(g.banner.contains(want), "{}", g.banner);
    }
}

// ---------- upstream body framings the mock does not produce ----------

fn raw_gateway(upstream: std::net::SocketAddr) -> Proc {
    gateway(&format!(
        "[[provider]]\nname = \"raw\"\nkind = \"openai\"\nbase_url = \"http://{upstream}/v1\"\n\n[[route]]\nmodel = \"r\"\ntargets = [\"raw/x\"]\n"
    ))
}

#[test]
fn close_delimited_upstream_body_is_relayed() {
    let up = raw_upstream(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{\"id\":\"chatcmpl-raw\",\"object\":\"chat.completion\",\"choices\":[]}",
    );
    let g = raw_gateway(up);
    let r = chat_openai(g.addr, "r", "x", false);
    assert_eq!(r.status, 200);
    assert!(r.chunked, "an unknown-length body goes out chunked");
    assert_eq!(r.json()["id"], "chatcmpl-raw");
}

#[test]
fn upstream_chunk_extensions_and_trailers_are_accepted() {
    let up = raw_upstream(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n\
          1c;note=1\r\ndata: {\"choices\":[],\"a\":1}\n\n\r\n\
          e\r\ndata: [DONE]\n\n\r\n\
          0\r\nx-trailer: yes\r\n\r\n",
    );
    let g = raw_gateway(up);
    let r = chat_openai(g.addr, "r", "x", true);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        "data: {\"choices\":[],\"a\":1}\n\ndata: [DONE]\n\n"
    );
}

#[test]
fn upstream_event_split_across_chunks_is_never_half_sent() {
    // The provider splits one event across two chunks and then dies: the client must get the
    // first complete event, then the error event, and never the half event.
    let up = raw_upstream(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n\
          16\r\ndata: {\"choices\":[]}\n\n\r\n\
          c\r\ndata: {\"choi\r\n",
    );
    let g = raw_gateway(up);
    let r = chat_openai(g.addr, "r", "x", true);
    assert_eq!(r.status, 200);
    let events = sse_events(&r.body);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].1, "{\"choices\":[]}");
    let v: serde_json::Value = serde_json::from_str(&events[1].1).unwrap();
    assert!(v["error"]["message"].is_string());
    assert!(!r.text().contains("{\"choi\n"));
}

/// A provider that answers with `first`, then stays silent until the test says `go`, then
/// sends `rest` and closes.
fn held_upstream(first: Vec<u8>, rest: Vec<u8>) -> (SocketAddr, mpsc::Sender<()>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (go, wait) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = l.accept() else { return };
        read_one_request(&mut s);
        let _ = s.write_all(&first);
        if wait.recv_timeout(Duration::from_secs(30)).is_ok() {
            let _ = s.write_all(&rest);
        }
    });
    (addr, go)
}

/// Read from `s` into `got` until it holds `want` (or the 10 s read timeout fails the test).
fn read_until(s: &mut TcpStream, got: &mut Vec<u8>, want: &str) {
    let mut tmp = [0u8; 4096];
    while !String::from_utf8_lossy(got).contains(want) {
        let n = s.read(&mut tmp).unwrap_or_else(|e| {
            panic!(
                "waiting for {want:?}: {e}; got {:?}",
                String::from_utf8_lossy(got)
            )
        });
        assert!(
            n > 0,
            "closed before {want:?}: {:?}",
            String::from_utf8_lossy(got)
        );
        got.extend_from_slice(&tmp[..n]);
    }
}

#[test]
fn events_reach_the_client_while_the_provider_is_silent() {
    // The pump writes only before a read that may wait: what arrived must be with the client
    // while the provider says nothing more, same format and translated alike.
    fn chunks(events: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for ev in events {
            let ev = format!("data: {ev}\n\n");
            out.extend_from_slice(format!("{:x}\r\n{ev}\r\n", ev.len()).as_bytes());
        }
        out
    }
    let mut first =
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
            .to_vec();
    first.extend(chunks(&[
        r#"{"id":"c1","choices":[{"index":0,"delta":{"role":"assistant"}}]}"#,
        r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}"#,
    ]));
    let mut rest = chunks(&[
        r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}]}"#,
        r#"{"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        "[DONE]",
    ]);
    rest.extend_from_slice(b"0\r\n\r\n");
    for (path, body, end) in [
        (
            "/v1/chat/completions",
            openai_body("r", "x", true),
            "data: [DONE]",
        ),
        (
            "/v1/messages",
            anthropic_body("r", "x", true),
            "message_stop",
        ),
    ] {
        let (up, go) = held_upstream(first.clone(), rest.clone());
        let g = raw_gateway(up);
        let mut s = TcpStream::connect(g.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(&post(path, &[("connection", "close")], &body))
            .unwrap();
        let mut got = Vec::new();
        read_until(&mut s, &mut got, "Hel");
        assert!(!String::from_utf8_lossy(&got).contains(end), "{path}");
        go.send(()).unwrap();
        read_until(&mut s, &mut got, end);
        let text = String::from_utf8_lossy(&got);
        assert!(text.contains("lo"), "{path}: {text}");
        assert!(text.ends_with("0\r\n\r\n"), "{path}: {text}");
    }
}

#[test]
fn dropped_parameters_are_reported_in_a_header() {
    let (m, g) = setup("");
    let body = r#"{"model":"claude","seed":7,"frequency_penalty":0.5,"messages":[{"role":"user","content":"x"}]}"#;
    let r = request(g.addr, &post("/v1/chat/completions", &[], body));
    assert_eq!(r.status, 200, "{}", r.text());
    let dropped = r.header("x-ringway-dropped-params").unwrap_or_default();
    assert!(
        dropped.contains("seed") && dropped.contains("frequency_penalty"),
        "{dropped:?}"
    );
    let sent: serde_json::Value =
        serde_json::from_str(mock_requests(&m)[0]["body"].as_str().unwrap()).unwrap();
    assert!(sent.get("seed").is_none());
    // Same-format traffic is untouched and gets no such header.
    let body = r#"{"model":"gpt","seed":7,"messages":[{"role":"user","content":"x"}]}"#;
    let r = request(g.addr, &post("/v1/chat/completions", &[], body));
    assert!(r.header("x-ringway-dropped-params").is_none());
}

#[test]
fn metrics_count_requests_errors_and_streams_across_workers() {
    let (_m, g) = setup("[server]\nworkers = 2\n");
    for _ in 0..3 {
        let r = chat_openai(g.addr, "gpt", "x", false);
        assert_eq!(r.status, 200);
    }
    let r = chat_anthropic(g.addr, "gpt", "translated", true);
    assert_eq!(r.status, 200);
    let r = chat_openai(g.addr, "nope", "x", false);
    assert_eq!(r.status, 404);
    let r = chat_openai(g.addr, "gpt", "mock:reset", true);
    assert_eq!(r.status, 200);
    // Other workers publish once a second; the broken stream is logged once its prompt is
    // counted (the first count waits for the tokenizer to be built).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let r = loop {
        std::thread::sleep(Duration::from_millis(300));
        let r = request(g.addr, &get("/metrics", &[]));
        // Every worker's share in: the Messages call may have landed on the other worker.
        let text = r.text();
        let all_in = text
            .contains("ringway_requests_total{endpoint=\"chat_completions\",status=\"200\"} 4\n")
            && text.contains("ringway_requests_total{endpoint=\"messages\",status=\"200\"} 1\n")
            && text.contains(
                "ringway_requests_total{endpoint=\"chat_completions\",status=\"404\"} 1\n",
            );
        if all_in || std::time::Instant::now() > deadline {
            break r;
        }
    };
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let text = r.text();
    let value = |prefix: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(
        value("ringway_requests_total{endpoint=\"chat_completions\",status=\"200\"}"),
        4.0
    );
    assert_eq!(
        value("ringway_requests_total{endpoint=\"chat_completions\",status=\"404\"}"),
        1.0
    );
    assert_eq!(
        value("ringway_requests_total{endpoint=\"messages\",status=\"200\"}"),
        1.0
    );
    assert_eq!(
        value("ringway_errors_total{kind=\"model_not_found\",side=\"client\"}"),
        1.0
    );
    assert_eq!(
        value("ringway_errors_total{kind=\"upstream_reset\",side=\"upstream\"}"),
        1.0
    );
    assert_eq!(
        value("ringway_translated_total{client=\"anthropic\",provider=\"openai\"}"),
        1.0
    );
    assert_eq!(
        value("ringway_upstream_responses_total{provider=\"mo\",status=\"200\"}"),
        5.0
    );
    assert_eq!(value("ringway_stream_first_event_seconds_count"), 2.0);
    assert_eq!(value("ringway_workers_ready"), 2.0);
    assert!(
        value("ringway_request_duration_seconds{endpoint=\"chat_completions\",quantile=\"0.5\"}")
            > 0.0
    );
}

// ---------- regressions from the code review ----------

#[test]
fn interim_1xx_responses_are_skipped_not_relayed() {
    let up = raw_upstream(
        b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n\
          HTTP/1.1 100 Continue\r\n\r\n\
          HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 14\r\n\r\n{\"final\":true}",
    );
    let g = raw_gateway(up);
    let r = chat_openai(g.addr, "r", "x", false);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "{\"final\":true}");
}

#[test]
fn a_pooled_connection_the_provider_closed_is_retried_once_on_a_fresh_one() {
    // Each connection answers one request *without* `connection: close`, then the provider
    // closes it: the gateway pools it, and the next request finds it dead.
    let up = raw_upstream(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
    );
    let g = gateway(&format!(
        "[server]\nworkers = 1\n[[provider]]\nname = \"raw\"\nkind = \"openai\"\nbase_url = \"http://{up}/v1\"\n\n[[route]]\nmodel = \"r\"\ntargets = [\"raw/x\"]\n"
    ));
    for i in 0..3 {
        let r = chat_openai(g.addr, "r", "x", false);
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_translated_body_is_made_again_for_a_fresh_connection() {
    // Each connection answers one request (keep-alive), then reads the next and closes
    // without a byte: the gateway meets a pooled connection its provider closed, and sends
    // again on a fresh one. A translated body went with the first write, so it is made again,
    // and must arrive whole.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let up = l.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let answer = br#"{"id":"c","object":"chat.completion","created":1,"model":"x","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;
        for s in l.incoming().take(8) {
            let Ok(mut s) = s else { continue };
            let Some(raw) = read_request(&mut s) else {
                continue;
            };
            let _ = tx.send(("answered", request_body(&raw).to_vec()));
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                answer.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(answer);
            if let Some(raw) = read_request(&mut s) {
                let _ = tx.send(("dropped", request_body(&raw).to_vec()));
            }
        }
    });
    let g = gateway(&format!(
        "[server]\nworkers = 1\n[[provider]]\nname = \"raw\"\nkind = \"openai\"\nbase_url = \"http://{up}/v1\"\n\n[[route]]\nmodel = \"r\"\ntargets = [\"raw/x\"]\n"
    ));
    let text = "a line of a file the agent read, \"quoted\"\n".repeat(2000);
    let body = serde_json::json!({
        "model": "r",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": text}],
    })
    .to_string();
    for i in 0..3 {
        let r = request(g.addr, &post("/v1/messages", &[], &body));
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert_eq!(r.json()["content"][0]["text"], "ok");
    }
    drop(g);
    let seen: Vec<(&str, Vec<u8>)> = rx.try_iter().collect();
    let kinds: Vec<&str> = seen.iter().map(|(k, _)| *k).collect();
    // Requests 2 and 3 each met the closed pooled connection first, then went again.
    assert_eq!(
        kinds,
        ["answered", "dropped", "answered", "dropped", "answered"]
    );
    for (i, (_, b)) in seen.iter().enumerate() {
        assert!(
            b == &seen[0].1,
            "send {i}: {} bytes, not {}",
            b.len(),
            seen[0].1.len()
        );
        let v: serde_json::Value = serde_json::from_slice(b).unwrap();
        assert_eq!(v["messages"][0]["content"], text.as_str());
    }
}

/// A body's long texts reach a translated provider byte for byte: the translation lends them
/// from the client's body (no copy) and the gateway sends its own bytes and the lent spans in
/// one vectored write. Each client format, texts with escapes and non-ASCII, and texts that
/// end up next to each other.
#[test]
fn long_texts_reach_a_translated_provider_as_the_client_wrote_them() {
    let chat = br#"{"id":"c","object":"chat.completion","created":1,"model":"x","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;
    let messages = br#"{"id":"msg_1","type":"message","role":"assistant","model":"x","content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}"#;
    let (g, rx) = gateway_to_both_kinds(chat, messages);
    let file = |n: usize| {
        format!("fn f{n}() {{ println!(\"caf\u{e9} \\\\ tab\there\"); }} // \u{1f980}\n")
            .repeat(300 + n)
    };
    let (system, read, asked) = (file(1), file(2), file(3));
    // A Responses turn, to either provider kind.
    let responses = |model: &str| {
        serde_json::json!({
            "model": model, "instructions": system, "store": false,
            "input": [
                {"role": "user", "content": asked},
                {"type": "function_call", "call_id": "t1", "name": "read", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "t1", "output": read},
            ],
        })
    };
    let cases = [
        (
            "/v1/messages",
            "to-chat",
            serde_json::json!({
                "model": "to-chat", "max_tokens": 16, "system": system,
                "messages": [
                    {"role": "user", "content": asked},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "read", "input": {"path": "a"}}]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "t1", "content": read},
                        {"type": "text", "text": asked}]},
                ],
            }),
        ),
        (
            "/v1/chat/completions",
            "to-messages",
            serde_json::json!({
                "model": "to-messages", "max_tokens": 16,
                "messages": [
                    {"role": "system", "content": system},
                    {"role": "user", "content": asked},
                    {"role": "assistant", "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "read", "arguments": "{}"}}]},
                    {"role": "tool", "tool_call_id": "t1", "content": read},
                    {"role": "user", "content": asked},
                ],
            }),
        ),
        ("/v1/responses", "to-chat", responses("to-chat")),
        ("/v1/responses", "to-messages", responses("to-messages")),
    ];
    for (path, model, body) in cases {
        let body = body.to_string();
        let r = request(g.addr, &post(path, &[], &body));
        assert_eq!(r.status, 200, "{path} {model}: {}", r.text());
        let sent = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&sent)
            .unwrap_or_else(|e| panic!("{path} {model}: not JSON ({e})"));
        // Every text arrived whole, in its place.
        let texts: Vec<String> = all_strings(&v)
            .into_iter()
            .filter(|t| t.len() > 1000)
            .collect();
        let mut want: Vec<&str> = vec![&system, &asked, &read, &asked];
        if path == "/v1/responses" {
            want.pop();
        }
        let mut got: Vec<&str> = texts.iter().map(String::as_str).collect();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "{path} {model}");
        // As the client escaped them, byte for byte.
        let literal = serde_json::to_string(&read).unwrap();
        assert!(
            memchr::memmem::find(&sent, literal.as_bytes()).is_some(),
            "{path} {model}"
        );
    }
}

/// A Responses client's tools, converted once per worker and kept by their bytes, reach either
/// provider kind the same on every turn, and the answer's calls go back under the client's
/// names (a namespaced function, a custom tool) on a turn that took the kept tools as on the
/// first. Another tools list in between is not taken for them.
#[test]
fn kept_tools_reach_a_provider_as_on_the_first_turn() {
    // Both answers call the namespaced function and the custom tool by their upstream names.
    let chat = br#"{"id":"c","object":"chat.completion","created":1,"model":"x","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"repo__lookup","arguments":"{\"q\":\"a\"}"}},{"id":"call_2","type":"function","function":{"name":"apply_patch","arguments":"{\"input\":\"diff\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;
    let messages = br#"{"id":"msg_1","type":"message","role":"assistant","model":"x","content":[{"type":"tool_use","id":"toolu_1","name":"repo__lookup","input":{"q":"a"}},{"type":"tool_use","id":"toolu_2","name":"apply_patch","input":{"input":"diff"}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}"#;
    let (g, rx) = gateway_to_both_kinds(chat, messages);
    // Codex's kinds of tools: functions (one strict), a namespace, a custom tool, and hosted
    // tools (web search goes to an anthropic-kind provider, tool search is dropped).
    let tools = serde_json::json!([
        {"type": "function", "name": "exec_command", "description": "Runs a command.",
         "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}, "strict": true},
        {"type": "namespace", "name": "repo", "description": "The repository.", "tools": [
            {"type": "function", "name": "lookup", "description": "Finds a symbol.",
             "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}]},
        {"type": "custom", "name": "apply_patch", "description": "Applies a patch.",
         "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}},
        {"type": "tool_search"},
        {"type": "web_search"},
    ]);
    let other = serde_json::json!([{"type": "function", "name": "other", "parameters": {"type": "object"}}]);
    let turn = |model: &str, tools: &serde_json::Value| {
        serde_json::json!({"model": model, "store": false, "input": "go", "tools": tools})
            .to_string()
    };
    for model in ["to-chat", "to-messages"] {
        let mut firsts: Option<(Vec<u8>, String, Option<String>)> = None;
        for (round, tools) in [&tools, &tools, &other, &tools].into_iter().enumerate() {
            let r = request(g.addr, &post("/v1/responses", &[], &turn(model, tools)));
            assert_eq!(r.status, 200, "{model} {round}: {}", r.text());
            let sent = rx.recv_timeout(Duration::from_secs(5)).unwrap();
            let v: serde_json::Value = serde_json::from_slice(&sent).unwrap();
            let names = tool_names(&v);
            if std::ptr::eq(tools, &other) {
                assert_eq!(names, ["other"], "{model}");
                continue;
            }
            let mut want = vec!["exec_command", "repo__lookup", "apply_patch"];
            if model == "to-messages" {
                want.push("web_search");
            }
            assert_eq!(names, want, "{model} {round}");
            // The answer's calls under the client's names.
            let answer = r.json();
            let calls: Vec<(&str, Option<&str>, &str)> = answer["output"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| {
                    (
                        o["type"].as_str().unwrap(),
                        o["namespace"].as_str(),
                        o["name"].as_str().unwrap_or(""),
                    )
                })
                .collect();
            assert_eq!(
                calls,
                [
                    ("function_call", Some("repo"), "lookup"),
                    ("custom_tool_call", None, "apply_patch")
                ],
                "{model} {round}"
            );
            let dropped = r.header("x-ringway-dropped-params").map(str::to_owned);
            assert!(
                dropped
                    .as_deref()
                    .is_some_and(|d| d.contains("tools.tool_search")
                        && if model == "to-chat" {
                            d.contains("tools.web_search")
                        } else {
                            d.contains("tools.strict")
                        }),
                "{model} {round}: {dropped:?}"
            );
            let echo = answer["tools"].to_string();
            match &firsts {
                None => firsts = Some((sent, echo, dropped)),
                // Byte for byte what the first turn sent, said and echoed.
                Some((first, first_echo, first_dropped)) => {
                    assert_eq!(&sent, first, "{model} {round}");
                    assert_eq!(&echo, first_echo, "{model} {round}");
                    assert_eq!(&dropped, first_dropped, "{model} {round}");
                }
            }
        }
    }
}

/// A Chat client's tools, kept by a worker after the first turn, reach a Messages provider
/// byte for byte as on the first turn, with the same `strict` dropped said each time; another
/// tools list between them goes as its own.
#[test]
fn kept_chat_tools_reach_a_messages_provider_as_on_the_first_turn() {
    let messages = br#"{"id":"msg_1","type":"message","role":"assistant","model":"x","content":[{"type":"tool_use","id":"toolu_1","name":"lookup","input":{"q":"a"}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}"#;
    let (g, rx) = gateway_to_both_kinds(b"{}", messages);
    let tools = serde_json::json!([
        {"type": "function", "function": {"name": "exec_command", "description": "Runs a command.",
         "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}, "strict": true}},
        {"type": "function", "function": {"name": "lookup", "description": "Finds a symbol é.",
         "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}},
        {"type": "function", "function": {"name": "no_parameters"}},
    ]);
    let other = serde_json::json!([{"type": "function", "function": {"name": "other"}}]);
    let turn = |tools: &serde_json::Value| {
        serde_json::json!({"model": "to-messages", "messages": [{"role": "user", "content": "go"}],
                           "tools": tools})
        .to_string()
        // A `\u` escape in a description: kept as the client wrote it or decoded alike.
        .replace('é', "\\u00e9")
    };
    let mut first: Option<(Vec<u8>, Option<String>)> = None;
    for (round, tools) in [&tools, &tools, &other, &tools].into_iter().enumerate() {
        let r = request(g.addr, &post("/v1/chat/completions", &[], &turn(tools)));
        assert_eq!(r.status, 200, "{round}: {}", r.text());
        let sent = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&sent).unwrap();
        let names = tool_names(&v);
        if std::ptr::eq(tools, &other) {
            assert_eq!(names, ["other"]);
            continue;
        }
        assert_eq!(
            names,
            ["exec_command", "lookup", "no_parameters"],
            "{round}"
        );
        assert_eq!(v["tools"][1]["description"], "Finds a symbol é.");
        assert_eq!(
            v["tools"][2]["input_schema"],
            serde_json::json!({"type": "object", "properties": {}})
        );
        assert_eq!(
            r.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
            "lookup"
        );
        let dropped = r.header("x-ringway-dropped-params").map(str::to_owned);
        assert!(
            dropped.as_deref().is_some_and(|d| d.contains("strict")),
            "{round}: {dropped:?}"
        );
        match &first {
            None => first = Some((sent, dropped)),
            Some((first_sent, first_dropped)) => {
                assert_eq!(&sent, first_sent, "{round}");
                assert_eq!(&dropped, first_dropped, "{round}");
            }
        }
    }
}

/// An agent's conversation sent turn after turn, growing, with its last turn's cache mark
/// moved each time (as Claude Code does), reaches each provider kind as a fresh gateway sends
/// the same turn: a worker's kept conversation changes nothing a provider gets. Each turn goes
/// on from the one before: a Responses client's whole, a Messages client's all but its last
/// message (the one whose mark moved). The last turn is sent twice, the second time going on
/// from the whole of the first (every translation). A turn whose new end is broken is refused
/// as on a fresh gateway.
#[test]
fn a_growing_conversation_reaches_providers_as_a_fresh_gateway_sends_it() {
    let messages = br#"{"id":"msg_1","type":"message","role":"assistant","model":"x","content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}"#;
    let chat = br#"{"id":"c","object":"chat.completion","created":1,"model":"x","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;
    let file = |i: usize| {
        (0..120)
            .map(|l| format!("{l:>6}\tlet x{i} = \"é \\u{{1F600}}\"; // line {l}\n"))
            .collect::<String>()
    };
    // (path, model, body of turn `n`): Chat and Messages clients, to both provider kinds.
    let chat_turn = |model: &str, n: usize| {
        let mut msgs = vec![serde_json::json!({"role": "system", "content": file(99)})];
        for i in 0..n {
            msgs.push(serde_json::json!({"role": "user", "content": file(i)}));
            msgs.push(serde_json::json!({"role": "assistant", "content": format!("read {i}")}));
        }
        if let Some(last) = msgs.last_mut() {
            last["name"] = serde_json::json!("moved-mark");
        }
        serde_json::json!({"model": model, "messages": msgs}).to_string()
    };
    let messages_turn = |model: &str, n: usize| {
        let mut msgs = Vec::new();
        for i in 0..n {
            msgs.push(
                serde_json::json!({"role": "user", "content": [{"type": "text", "text": file(i)}]}),
            );
            msgs.push(serde_json::json!({"role": "assistant", "content": format!("read {i}")}));
        }
        msgs.push(
            serde_json::json!({"role": "user", "content": [{"type": "text", "text": "go",
            "cache_control": {"type": "ephemeral"}}]}),
        );
        serde_json::json!({"model": model, "max_tokens": 5, "system": file(98), "messages": msgs})
            .to_string()
    };
    let responses_turn = |model: &str, n: usize| {
        let mut items = Vec::new();
        for i in 0..n {
            items.push(serde_json::json!({"role": "user", "content": file(i)}));
            items.push(serde_json::json!({"type": "message", "role": "assistant",
                "content": [{"type": "output_text", "text": format!("read {i}")}]}));
        }
        serde_json::json!({"model": model, "store": false, "instructions": file(97),
                           "input": items})
        .to_string()
    };
    type Turn<'a> = &'a dyn Fn(&str, usize) -> String;
    let paths: [(&str, &str, Turn<'_>); 6] = [
        ("/v1/chat/completions", "to-chat", &chat_turn),
        ("/v1/chat/completions", "to-messages", &chat_turn),
        ("/v1/messages", "to-chat", &messages_turn),
        ("/v1/messages", "to-messages", &messages_turn),
        ("/v1/responses", "to-chat", &responses_turn),
        ("/v1/responses", "to-messages", &responses_turn),
    ];
    let (warm, warm_rx) = gateway_to_both_kinds(chat, messages);
    let mut last = Vec::new();
    for (round, n) in [1, 2, 3, 4, 4].into_iter().enumerate() {
        for (path, model, turn) in &paths {
            let r = request(warm.addr, &post(path, &[], &turn(model, n)));
            assert_eq!(r.status, 200, "{path} {model} {n}: {}", r.text());
            let sent = warm_rx.recv_timeout(Duration::from_secs(5)).unwrap();
            // Turn 4 comes twice: first after turn 3 (Messages' from the state before turn
            // 3's last message, whose cache mark moves), then again.
            if round >= 3 {
                last.push(sent);
            }
        }
    }
    let broken = |body: String| body.replace("\"read 3\"", "\"read 3\" x");
    for (path, model, turn) in &paths {
        let r = request(warm.addr, &post(path, &[], &broken(turn(model, 4))));
        assert_eq!(r.status, 400, "{path} {model}: {}", r.text());
    }
    let (fresh, fresh_rx) = gateway_to_both_kinds(chat, messages);
    let (after_turn_3, again) = last.split_at(paths.len());
    for (((path, model, turn), after), again) in paths.iter().zip(after_turn_3).zip(again) {
        let r = request(fresh.addr, &post(path, &[], &turn(model, 4)));
        assert_eq!(r.status, 200, "{path} {model}: {}", r.text());
        let sent = fresh_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(
            sent == *after,
            "{path} {model}: the provider got other bytes"
        );
        assert!(
            sent == *again,
            "{path} {model}: the provider got other bytes again"
        );
        let r = request(fresh.addr, &post(path, &[], &broken(turn(model, 4))));
        assert_eq!(r.status, 400, "{path} {model}: {}", r.text());
    }
}

/// A translated body of megabytes reaches a provider that reads it slowly whole and in order:
/// the vectored sends go on from wherever the socket stopped taking bytes (within a part,
/// between parts), and a body this large is translated on a helper thread, its spans lent
/// from the client's body there too.
#[test]
fn a_large_translated_body_reaches_a_slow_provider_whole() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // A small receive window (taken by the accepted socket): the gateway's socket keeps a
    // small send buffer and takes a part in many sends.
    {
        use std::os::fd::AsRawFd;
        nix::sys::socket::setsockopt(l.as_raw_fd(), nix::sys::socket::sockopt::RcvBuf, &4096)
            .unwrap();
    }
    let up = l.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let answer = br#"{"id":"c","object":"chat.completion","created":1,"model":"x","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;
        if let Some(Ok(mut s)) = l.incoming().next() {
            // Small reads with pauses: the gateway's socket fills and its sends stop short.
            if let Some(raw) = read_request_paced(&mut s, Some((16, Duration::from_millis(2)))) {
                let _ = tx.send(request_body(&raw).to_vec());
                answer_json(&mut s, answer);
            }
        }
    });
    let g = gateway(&format!(
        "[server]\nworkers = 1\n[[provider]]\nname = \"oa\"\nkind = \"openai\"\nbase_url = \"http://{up}/v1\"\n\n[[route]]\nmodel = \"to-chat\"\ntargets = [\"oa/x\"]\n"
    ));
    // Texts of different lengths, so the seams fall everywhere in the socket's takes, and one
    // of 3 MB, which the socket takes in several sends.
    let texts: Vec<String> = (0..24)
        .map(|n| {
            let times = if n == 12 { 100_000 } else { 4000 + 997 * n };
            format!("line {n} of a file: \"q\"\t\u{e9}\n").repeat(times)
        })
        .collect();
    let mut messages = Vec::new();
    for (n, t) in texts.iter().enumerate() {
        let role = if n % 2 == 0 { "user" } else { "assistant" };
        messages.push(serde_json::json!({"role": role, "content": t}));
    }
    let body =
        serde_json::json!({"model": "to-chat", "max_tokens": 16, "messages": messages}).to_string();
    assert!(body.len() > 2 * 1024 * 1024, "{}", body.len());
    let r = request(g.addr, &post("/v1/messages", &[], &body));
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&sent).unwrap();
    let got: Vec<&str> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    let want: Vec<&str> = texts.iter().map(String::as_str).collect();
    assert_eq!(got, want);
}

/// A gateway (one worker) whose `to-chat` route goes to an openai-kind provider and whose
/// `to-messages` route to an anthropic-kind one, both a raw provider here that answers `chat` or
/// `messages` and hands over every body it reads.
fn gateway_to_both_kinds(
    chat: &'static [u8],
    messages: &'static [u8],
) -> (Proc, mpsc::Receiver<Vec<u8>>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let up = l.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // A thread per connection: each provider keeps one of its own.
        for s in l.incoming().take(16) {
            let Ok(mut s) = s else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || {
                while let Some(raw) = read_request(&mut s) {
                    let anthropic = raw.starts_with(b"POST /v1/messages");
                    let _ = tx.send(request_body(&raw).to_vec());
                    answer_json(&mut s, if anthropic { messages } else { chat });
                }
            });
        }
    });
    let g = gateway(&format!(
        "[server]\nworkers = 1\n[[provider]]\nname = \"oa\"\nkind = \"openai\"\nbase_url = \"http://{up}/v1\"\n\n[[provider]]\nname = \"an\"\nkind = \"anthropic\"\nbase_url = \"http://{up}\"\n\n[[route]]\nmodel = \"to-chat\"\ntargets = [\"oa/x\"]\n\n[[route]]\nmodel = \"to-messages\"\ntargets = [\"an/x\"]\n"
    ));
    (g, rx)
}

/// The names of the tools a provider was sent (Messages tools, or Chat functions).
fn tool_names(sent: &serde_json::Value) -> Vec<&str> {
    sent["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            t["name"]
                .as_str()
                .or(t["function"]["name"].as_str())
                .unwrap()
        })
        .collect()
}

/// Writes `answer` as a 200 JSON response.
fn answer_json(s: &mut TcpStream, answer: &[u8]) {
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        answer.len()
    );
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(answer);
}

/// Every string in `v`, depth first.
fn all_strings(v: &serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(a) => a.iter().flat_map(all_strings).collect(),
        serde_json::Value::Object(o) => o.values().flat_map(all_strings).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn an_endless_upstream_head_is_cut_off() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let up = l.local_addr().unwrap();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = l.accept() {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\n");
            let line = format!("x-filler: {}\r\n", "a".repeat(1000));
            for _ in 0..200 {
                if s.write_all(line.as_bytes()).is_err() {
                    break;
                }
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    });
    let g = raw_gateway(up);
    let r = chat_openai(g.addr, "r", "x", false);
    assert_eq!(r.status, 502);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("head"),
        "{}",
        r.text()
    );
}

#[test]
fn pool_max_idle_zero_disables_pooling_without_killing_the_worker() {
    let (_m, g) = setup("[server]\nworkers = 1\n[upstream]\npool_max_idle = 0\n");
    for _ in 0..3 {
        let r = chat_openai(g.addr, "gpt", "x", false);
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("x-mock-seq"),
            Some("1"),
            "every request on a new connection"
        );
    }
}

#[test]
fn a_get_with_a_body_is_answered_once_and_closed() {
    let (_m, g) = setup("");
    let smuggled = "GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n";
    let raw = format!(
        "GET /healthz HTTP/1.1\r\ncontent-length: {}\r\n\r\n{smuggled}",
        smuggled.len()
    );
    let mut c = Client::connect(g.addr);
    c.send_raw(raw.as_bytes());
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 200);
    assert!(
        c.read_response().is_none(),
        "the body must not be served as a second request"
    );
}

#[test]
fn an_early_401_with_a_large_unread_body_still_reaches_the_client() {
    let (_m, g) = keyed_setup();
    let body = format!(
        r#"{{"model":"gpt","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(2_000_000)
    );
    let mut c = Client::connect(g.addr);
    // Write from another thread: the gateway answers before reading the body.
    let mut w = c.stream.try_clone().unwrap();
    let raw = post("/v1/chat/completions", &[], &body);
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&raw);
    });
    let r = c.read_response().expect("the 401 must arrive, not a reset");
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("connection"),
        Some("close"),
        "the gateway closes after an answer that left the body unread, so it must say so"
    );
    let _ = writer.join();
}

#[test]
fn an_answer_that_leaves_the_body_unread_says_connection_close() {
    // A small body is usually in the first read already, yet the gateway still closes after an
    // early answer; a kept-alive client that was not told reuses the socket and fails its
    // next request (seen in CI: the TypeScript SDK after a 401).
    let (_m, g) = keyed_setup();
    let mut c = Client::connect(g.addr);
    let body = openai_body("gpt", "x", false);
    c.send_raw(&post(
        "/v1/chat/completions",
        &[("authorization", "Bearer wrong")],
        &body,
    ));
    let r = c.read_response().expect("a 401");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.read_response().is_none(), "and the connection closes");
}

#[allow(unsafe_code)]
fn connect_with_small_rcvbuf(addr: std::net::SocketAddr) -> std::net::TcpStream {
    use nix::sys::socket::{
        connect, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
    };
    use std::os::fd::FromRawFd;
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    setsockopt(fd, sockopt::RcvBuf, &4096).unwrap();
    let std::net::SocketAddr::V4(v4) = addr else {
        panic!("ipv4 expected")
    };
    connect(fd, &SockaddrIn::from(v4)).unwrap();
    // SAFETY: `fd` is a socket created just above; nothing else owns or closes it.
    let stream = unsafe { std::net::TcpStream::from_raw_fd(fd) };
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    stream
}

#[test]
fn a_client_that_stops_reading_is_dropped_after_the_write_timeout() {
    // A provider that sends a 40 MB answer at once (the mock would spend seconds building it).
    const LEN: usize = 40_000_000;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let up = l.local_addr().unwrap();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = l.accept() {
            let mut tmp = [0u8; 4096];
            let _ = std::io::Read::read(&mut s, &mut tmp);
            let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {LEN}\r\n\r\n");
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&vec![b' '; LEN]);
        }
    });
    let g = gateway(&format!(
        "[server]\nworkers = 1\nwrite_timeout_ms = 300\n[[provider]]\nname = \"raw\"\nkind = \"openai\"\nbase_url = \"http://{up}/v1\"\n\n[[route]]\nmodel = \"r\"\ntargets = [\"raw/x\"]\n"
    ));
    // A small fixed receive buffer, set before connect (shrinking an advertised window makes
    // the kernel fall back to slow zero-window probing): the gateway's writes must block.
    let mut c = Client::from_stream(connect_with_small_rcvbuf(g.addr));
    use std::os::fd::AsRawFd;
    let fd = c.stream.as_raw_fd();
    c.send_raw(&post(
        "/v1/chat/completions",
        &[],
        &openai_body("r", "x", false),
    ));
    std::thread::sleep(Duration::from_millis(2000));
    // Read now with a normal window: the body stops short because the gateway gave up.
    nix::sys::socket::setsockopt(fd, nix::sys::socket::sockopt::RcvBuf, &(4 << 20)).unwrap();
    let (status, _) = c.read_head().unwrap();
    assert_eq!(status, 200);
    let mut got = 0usize;
    let mut tmp = vec![0u8; 1 << 16];
    loop {
        match std::io::Read::read(&mut c.stream, &mut tmp) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => {
                panic!("the gateway should have closed the connection, not left it hanging: {e}")
            }
        }
    }
    assert!(
        got < LEN,
        "got all {LEN} bytes; the write should have timed out"
    );
    let r = request(g.addr, &get("/healthz", &[]));
    assert_eq!(r.status, 200);
}

#[test]
fn a_slow_reader_gets_every_byte_of_a_burst_stream_once_and_in_order() {
    // 20,000 events at once, to a client with a 4 KiB receive window that waits before it
    // reads: the gateway's batches do not fit the socket, so each write goes partly straight
    // to the socket and the rest through the driver, over and over. A byte sent twice or lost
    // at that seam breaks the text.
    const TOKENS: usize = 20_000;
    let (_m, g) = setup("[server]\nworkers = 1\n");
    let mut c = Client::from_stream(connect_with_small_rcvbuf(g.addr));
    c.send_raw(&post(
        "/v1/chat/completions",
        &[],
        &openai_body("gpt", &format!("mock:tokens={TOKENS}"), true),
    ));
    std::thread::sleep(Duration::from_millis(500));
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 200);
    let events = sse_events(&r.body);
    assert_eq!(events.last().map(|(_, d)| d.as_str()), Some("[DONE]"));
    let mut text = String::new();
    for (_, data) in &events[..events.len() - 1] {
        let v: serde_json::Value = serde_json::from_str(data).unwrap();
        if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
            text.push_str(t);
        }
    }
    let want = (1..=TOKENS)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(text.trim(), want);
    // The connection is still good for the next request.
    c.send_raw(&post(
        "/v1/chat/completions",
        &[],
        &openai_body("gpt", "hi", false),
    ));
    assert_eq!(c.read_response().unwrap().status, 200);
}

#[test]
fn header_timeout_answers_in_the_anthropic_format_on_the_anthropic_path() {
    let (_m, g) = setup("[server]\nworkers = 1\nheader_read_timeout_ms = 300\n");
    let mut c = Client::connect(g.addr);
    c.send_raw(b"POST /v1/messages HTTP/1.1\r\nanthropic-version: 2023-06-01\r\n");
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 408);
    assert_eq!(r.json()["type"], "error");
}

#[test]
fn zero_timeouts_and_bad_provider_keys_are_refused_at_start() {
    let bad = write_config("[server]\nkeepalive_timeout_ms = 0\n");
    let out = Command::new(bin())
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("server.keepalive_timeout_ms: must be greater than 0"));
    let cfg = write_config(
        "[[provider]]\nname = \"p\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\napi_key_env = \"RW_TEST_BAD_KEY\"\n",
    );
    let out = Command::new(bin())
        .args(["check", "--config"])
        .arg(&cfg)
        .env("RW_TEST_BAD_KEY", "sk-abc\n")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("provider[0].api_key_env"));
    // A configured header value that would inject a second header line.
    let cfg = write_config(
        "[[provider]]\nname = \"a\"\nkind = \"anthropic\"\nbase_url = \"http://127.0.0.1:1\"\nanthropic_version = \"2023-06-01\\nx-evil: 1\"\n",
    );
    let out = Command::new(bin())
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("provider[0].anthropic_version"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A provider that answers the first request on each connection, then, after `gap`, sends a
/// second, unasked response and keeps the connection open. With no gap both go in one write,
/// so they arrive together: two writes could let the stray one land after the gateway had
/// reused the connection, which no proxy can tell from a real answer (a CI run on a loaded
/// machine did exactly that).
fn stray_response_upstream(gap: Duration) -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let up = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        let ok: &[u8] =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}";
        let stray: &[u8] =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 15\r\n\r\n{\"stray\":true}!";
        for s in l.incoming().take(8) {
            let Ok(mut s) = s else { continue };
            read_one_request(&mut s);
            if gap.is_zero() {
                let _ = s.write_all(&[ok, stray].concat());
            } else {
                let _ = s.write_all(ok);
                std::thread::sleep(gap);
                let _ = s.write_all(stray);
            }
            held.push(s);
        }
    });
    up
}

#[test]
fn bytes_after_a_response_never_answer_the_next_request() {
    // Pooling such a connection would hand the stray response to the next client. Whether the
    // stray bytes come with the response or later, while the connection sits in the pool, the
    // gateway must drop it instead.
    for gap in [Duration::ZERO, Duration::from_millis(100)] {
        let up = stray_response_upstream(gap);
        let g = gateway(&format!(
            "[server]\nworkers = 1\n[[provider]]\nname = \"raw\"\nkind = \"openai\"\nbase_url = \"http://{up}/v1\"\n\n[[route]]\nmodel = \"r\"\ntargets = [\"raw/x\"]\n"
        ));
        for i in 0..3 {
            let r = chat_openai(g.addr, "r", "x", false);
            assert_eq!(r.status, 200, "gap {gap:?}, request {i}");
            assert_eq!(r.text(), "{\"ok\":true}", "gap {gap:?}, request {i}");
            // Let the late stray bytes land while the connection is pooled (with a wide margin:
            // on a loaded machine the provider thread may write them well after `gap`).
            std::thread::sleep(gap * 5);
        }
    }
}

#[test]
fn a_pooled_connection_that_sent_an_interim_head_is_not_retried() {
    // The provider answers the first request, then meets the second on the same (pooled)
    // connection with `100 Continue` and closes. It has seen the request, so the gateway must
    // not send it again on a fresh connection: the client gets a 502 and the provider counts
    // two requests, not three.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let up = l.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = seen.clone();
    std::thread::spawn(move || {
        for s in l.incoming().take(4) {
            let Ok(mut s) = s else { continue };
            if read_one_request(&mut s) {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
                );
            }
            if read_one_request(&mut s) {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
            }
        }
    });
    let g = gateway(&format!(
        "[server]\nworkers = 1\n[[provider]]\nname = \"raw\"\nkind = \"openai\"\nbase_url = \"http://{up}/v1\"\n\n[[route]]\nmodel = \"r\"\ntargets = [\"raw/x\"]\n"
    ));
    assert_eq!(chat_openai(g.addr, "r", "x", false).status, 200);
    let r = chat_openai(g.addr, "r", "x", false);
    assert_eq!(r.status, 502, "{}", r.text());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 2);
}

// ---------- reasoning_effort to Anthropic: the thinking form each model takes ----------

/// The body the mock received for the `i`th request.
fn sent_body(mock: &Proc, i: usize) -> serde_json::Value {
    serde_json::from_str(mock_requests(mock)[i]["body"].as_str().unwrap()).unwrap()
}

#[test]
fn reasoning_effort_reaches_anthropic_in_the_form_each_model_takes() {
    let (m, g) = setup(
        r#"
[[route]]
model = "opus"
targets = ["ma/claude-opus-4-7"]

[[route]]
model = "opus-forced-budget"
targets = [{ target = "ma/claude-opus-4-7", thinking_style = "budget" }]

[[route]]
model = "sonnet-old"
targets = ["ma/claude-sonnet-4-5"]
"#,
    );
    let body = |model: &str| {
        format!(
            r#"{{"model":"{model}","reasoning_effort":"high","max_completion_tokens":2000,"messages":[{{"role":"user","content":"think"}}]}}"#
        )
    };

    // Adaptive-only model under `auto`: adaptive thinking plus effort, max_tokens as sent.
    let r = request(g.addr, &post("/v1/chat/completions", &[], &body("opus")));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["object"], "chat.completion");
    let sent = sent_body(&m, 0);
    assert_eq!(sent["model"], "claude-opus-4-7");
    assert_eq!(sent["thinking"]["type"], "adaptive", "{sent}");
    assert!(sent["thinking"].get("budget_tokens").is_none(), "{sent}");
    assert_eq!(sent["output_config"]["effort"], "high", "{sent}");
    assert_eq!(sent["max_tokens"], 2000);

    // The budget form forced on that model: the provider's 400 reaches the client, in OpenAI
    // format.
    let r = request(
        g.addr,
        &post("/v1/chat/completions", &[], &body("opus-forced-budget")),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"thinking.type.enabled\" is not supported for this model"),
        "{v}"
    );
    assert_eq!(sent_body(&m, 1)["thinking"]["type"], "enabled");

    // A budget-only model gets the budget form, with room beyond the budget.
    let r = request(
        g.addr,
        &post("/v1/chat/completions", &[], &body("sonnet-old")),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = sent_body(&m, 2);
    assert_eq!(
        sent["thinking"],
        serde_json::json!({"type": "enabled", "budget_tokens": 4096})
    );
    assert!(sent.get("output_config").is_none(), "{sent}");
    assert_eq!(sent["max_tokens"], 6096);
}

/// A provider that records the one request it gets and answers `response`.
fn recording_upstream(response: Vec<u8>) -> (SocketAddr, mpsc::Receiver<Vec<u8>>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = l.accept() else { return };
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let Some(buf) = read_request(&mut s) else {
            return;
        };
        let _ = tx.send(buf);
        let _ = s.write_all(&response);
    });
    (addr, rx)
}

/// A gateway whose route `r` goes to `native/up-model`, a provider at `up` with native Responses.
/// Stored responses are off: server-side state then passes to the provider as it came.
fn native_gateway(up: SocketAddr) -> Proc {
    gateway(&format!(
        "[responses.store]\nenabled = false\n\n[[provider]]\nname = \"native\"\nkind = \"openai\"\nbase_url = \"http://{up}/v1\"\nresponses = \"native\"\n\n[[route]]\nmodel = \"r\"\ntargets = [\"native/up-model\"]\n"
    ))
}

#[test]
fn responses_pass_through_unchanged_to_a_native_provider() {
    // A provider with native Responses gets the request as the client sent it (model spliced,
    // server-side state parameters included while stored responses are off), and the client gets the provider's events as
    // they came.
    let events = "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_up\",\"object\":\"response\",\"status\":\"in_progress\",\"output\":[]}}\n\n\
                  event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hi\"}\n\n\
                  event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":2,\"response\":{\"id\":\"resp_up\",\"object\":\"response\",\"status\":\"completed\",\"output\":[]}}\n\n";
    let mut response =
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
            .to_vec();
    response.extend(format!("{:x}\r\n{events}\r\n0\r\n\r\n", events.len()).as_bytes());
    let (up, seen) = recording_upstream(response);
    let g = native_gateway(up);
    let body =
        r#"{"model":"r","stream":true,"previous_response_id":"resp_0","input":"hi","store":true}"#;
    let r = request(g.addr, &post("/v1/responses", &[], body));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), events);
    let sent = String::from_utf8(seen.recv_timeout(Duration::from_secs(10)).unwrap()).unwrap();
    assert!(
        sent.starts_with("POST /v1/responses HTTP/1.1\r\n"),
        "{sent}"
    );
    let sent_body = &sent[sent.find("\r\n\r\n").unwrap() + 4..];
    assert_eq!(
        sent_body,
        r#"{"model":"up-model","stream":true,"previous_response_id":"resp_0","input":"hi","store":true}"#
    );

    // The compact endpoint goes to the provider's own.
    let compacted = r#"{"id":"resp_c","object":"response.compaction","created_at":1,"output":[{"id":"cmp_1","type":"compaction","encrypted_content":"theirs"}],"usage":{"input_tokens":1,"output_tokens":1,"total_tokens":2}}"#;
    let (up, seen) = recording_upstream(
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{compacted}",
            compacted.len()
        )
        .into_bytes(),
    );
    let g = native_gateway(up);
    let r = request(
        g.addr,
        &post(
            "/v1/responses/compact",
            &[],
            r#"{"model":"r","input":"hi"}"#,
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), compacted);
    let sent = String::from_utf8(seen.recv_timeout(Duration::from_secs(10)).unwrap()).unwrap();
    assert!(
        sent.starts_with("POST /v1/responses/compact HTTP/1.1\r\n"),
        "{sent}"
    );
    assert!(
        sent.ends_with(r#"{"model":"up-model","input":"hi"}"#),
        "{sent}"
    );

    // Reasoning this gateway sealed (another provider's thinking) means nothing to a native
    // provider: dropped, and said so.
    let (up, seen) = recording_upstream(
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{compacted}",
            compacted.len()
        )
        .into_bytes(),
    );
    let g = native_gateway(up);
    let body = r#"{"model":"r","input":[{"type":"reasoning","summary":[],"encrypted_content":"rw1.AAAA"},{"role":"user","content":"hi"}]}"#;
    let r = request(g.addr, &post("/v1/responses", &[], body));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-ringway-dropped-params"),
        Some("input.reasoning")
    );
    let sent = String::from_utf8(seen.recv_timeout(Duration::from_secs(10)).unwrap()).unwrap();
    assert!(!sent.contains("rw1."), "{sent}");
    assert!(sent.contains(r#""model":"up-model""#), "{sent}");
}

#[test]
fn responses_translated_answer_and_server_state_refusal() {
    // The same request to a translated provider: server-side state is a 400 in the OpenAI
    // error shape naming the parameter, and nothing goes upstream; without it, an answer.
    let (_m, g) = setup("");
    for model in ["gpt", "claude"] {
        let body = format!(r#"{{"model":"{model}","previous_response_id":"resp_0","input":"hi"}}"#);
        let r = request(g.addr, &post("/v1/responses", &[], &body));
        assert_eq!(r.status, 400, "{model}: {}", r.text());
        assert_eq!(
            r.json()["error"]["param"],
            "previous_response_id",
            "{model}"
        );
        let body = format!(r#"{{"model":"{model}","input":"hi mock:tokens=2"}}"#);
        let r = request(g.addr, &post("/v1/responses", &[], &body));
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        let v = r.json();
        assert_eq!(v["object"], "response");
        assert_eq!(v["output"][0]["content"][0]["text"], "w1 w2", "{model}");
        assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0);
        assert!(r.header("x-ringway-provider").is_some());
    }
}

#[test]
fn responses_answer_to_gateway_keys_and_count_in_metrics() {
    let (m, g) = keyed_setup();
    let body = r#"{"model":"gpt","input":"hi"}"#;
    let call = |auth: Option<&str>| {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        request(g.addr, &post("/v1/responses", &headers, body))
    };
    // No key, a wrong key: 401 in the OpenAI shape, nothing upstream.
    let r = call(None);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "invalid_api_key");
    assert_eq!(call(Some("Bearer nope")).status, 401);
    assert!(mock_requests(&m).is_empty());
    // A key limited to other models: 403; the right key: the answer.
    let r = call(Some("Bearer team-b-key"));
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("gpt"));
    let r = call(Some("Bearer team-a-key"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["object"], "response");
    assert!(r.header("x-ringway-request-id").is_some());
    // Other workers publish about once a second: poll (bounded).
    let want = [
        "ringway_requests_total{endpoint=\"responses\",status=\"200\"} 1\n",
        "ringway_requests_total{endpoint=\"responses\",status=\"401\"} 2\n",
        "ringway_requests_total{endpoint=\"responses\",status=\"403\"} 1\n",
    ];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = request(
            g.addr,
            &get("/metrics", &[("authorization", "Bearer team-a-key")]),
        );
        let text = r.text();
        if want.iter().all(|w| text.contains(w)) {
            break;
        }
        assert!(Instant::now() < deadline, "{want:?} not all in\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_model_list_shows_a_key_only_what_it_may_use() {
    // team-a may use every model; team-b only `claude` and `mo/*`.
    let (_m, g) = keyed_setup();
    let ids = |key: &str| -> Vec<String> {
        let r = request(g.addr, &get("/v1/models", &[("authorization", key)]));
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = ids("Bearer team-a-key");
    let limited = ids("Bearer team-b-key");
    assert!(
        all.contains(&"gpt".to_owned()) && all.contains(&"claude".to_owned()),
        "{all:?}"
    );
    assert_eq!(limited, ["claude"], "{all:?}");
    // One model: a model the key may not use does not exist for it.
    for (path, key, status) in [
        (
            "/v1/models/gpt",
            ("authorization", "Bearer team-b-key"),
            404,
        ),
        (
            "/v1/models/gpt",
            ("authorization", "Bearer team-a-key"),
            200,
        ),
        ("/v1/models/claude", ("x-api-key", "team-b-key"), 200),
        ("/v1/models/mo%2Fmock-gpt", ("x-api-key", "team-b-key"), 200),
    ] {
        let r = request(g.addr, &get(path, &[key]));
        assert_eq!(r.status, status, "{path} {key:?}: {}", r.text());
    }
}
