//! What today's clients need from the gateway beyond translation, through the real binary:
//! provider errors that are not JSON, malformed requests stopped before any upstream call,
//! and client headers forwarded by policy.

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

// ---------- client headers reach the provider by policy ----------

#[test]
fn client_headers_are_forwarded_by_policy() {
    let m = mock(&[]);
    let providers = standard_providers(&m).replace(
        "api_key_env = \"RW_TEST_OPENAI_KEY\"",
        "api_key_env = \"RW_TEST_OPENAI_KEY\"\nforward_headers = [\"x-team-*\", \"openai-organization\"]\ndrop_headers = [\"x-stainless-os\", \"user-agent\"]",
    );
    let g = gateway_env(&providers, PROVIDER_KEYS);
    let sent: &[(&str, &str)] = &[
        ("OpenAI-Organization", "org-1"),
        ("openai-project", "proj-1"),
        ("openai-beta", "assistants=v2"),
        ("idempotency-key", "idem-1"),
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
        ("tracestate", "vendor=1"),
        ("x-stainless-lang", "python"),
        ("x-stainless-os", "Linux"),
        ("x-team-id", "team-a"),
        ("x-other", "no"),
        ("cookie", "session=secret"),
        ("authorization", "Bearer client-secret"),
        ("x-ringway-fake", "1"),
        ("anthropic-dangerous-direct-browser-access", "true"),
        ("user-agent", "client-sdk/1.0"),
    ];
    // Same format (OpenAI client, openai-kind provider) and translated (to anthropic-kind).
    for model in ["gpt", "claude"] {
        let r = request(
            g.addr,
            &post(
                "/v1/chat/completions",
                sent,
                &openai_body(model, "hi", false),
            ),
        );
        assert_eq!(r.status, 200, "{model}: {}", r.text());
    }
    let seen = mock_requests(&m);
    assert_eq!(seen.len(), 2);
    let header = |i: usize, name: &str| seen[i]["headers"][name].as_str().map(str::to_owned);
    // To the openai-kind provider: the default set and the configured names, minus the
    // dropped ones. The billing headers only where the operator opted in.
    for (name, want) in [
        ("openai-organization", Some("org-1")),
        ("openai-project", None),
        ("user-agent", Some("ringway")),
        ("openai-beta", Some("assistants=v2")),
        ("idempotency-key", Some("idem-1")),
        ("tracestate", Some("vendor=1")),
        ("x-stainless-lang", Some("python")),
        ("x-team-id", Some("team-a")),
        ("x-stainless-os", None),
        ("x-other", None),
        ("cookie", None),
        ("x-ringway-fake", None),
        ("anthropic-dangerous-direct-browser-access", None),
    ] {
        assert_eq!(header(0, name).as_deref(), want, "openai-kind: {name}");
    }
    assert_eq!(
        header(0, "authorization").as_deref(),
        Some("Bearer sk-provider-openai"),
        "the provider's key, never the client's"
    );
    // To the anthropic-kind provider (translated): no OpenAI-only headers, no x-team-* (that
    // pattern is the other provider's), the default set still.
    for (name, want) in [
        ("openai-organization", None),
        ("openai-project", None),
        ("openai-beta", None),
        ("idempotency-key", Some("idem-1")),
        (
            "traceparent",
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ),
        ("x-stainless-os", Some("Linux")),
        ("x-team-id", None),
        ("cookie", None),
        ("authorization", None),
        ("user-agent", Some("client-sdk/1.0")),
    ] {
        assert_eq!(header(1, name).as_deref(), want, "anthropic-kind: {name}");
    }
    assert_eq!(
        header(1, "x-api-key").as_deref(),
        Some("sk-provider-anthropic")
    );
}

/// Headers a `Connection` header nominates are hop-by-hop (RFC 9110 §7.6.1): a client's are
/// not forwarded though a `forward_headers` pattern (or the default set) matches them, and a
/// provider's are not passed to the client.
#[test]
fn connection_nominated_headers_go_no_further() {
    let m = mock(&[]);
    let providers = standard_providers(&m).replace(
        "api_key_env = \"RW_TEST_OPENAI_KEY\"",
        "api_key_env = \"RW_TEST_OPENAI_KEY\"\nforward_headers = [\"x-foo\", \"x-bar\"]",
    );
    let g = gateway_env(&providers, PROVIDER_KEYS);
    let r = request(
        g.addr,
        &post(
            "/v1/chat/completions",
            &[
                ("connection", "keep-alive, X-Foo"),
                ("x-foo", "secret"),
                ("x-bar", "visible"),
                ("Connection", "traceparent"),
                (
                    "traceparent",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                ),
                ("tracestate", "vendor=1"),
            ],
            &openai_body("gpt", "hi", false),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = mock_requests(&m);
    assert_eq!(seen.len(), 1);
    let headers = &seen[0]["headers"];
    assert!(headers.get("x-foo").is_none(), "{headers}");
    assert!(headers.get("traceparent").is_none(), "{headers}");
    assert_eq!(headers["x-bar"], "visible");
    assert_eq!(headers["tracestate"], "vendor=1");
    // More nominated names than the gateway tracks: refused, nothing sent.
    let many: Vec<String> = (0..17).map(|i| format!("x-n{i}")).collect();
    let r = request(
        g.addr,
        &post(
            "/v1/chat/completions",
            &[("connection", &many.join(", "))],
            &openai_body("gpt", "hi", false),
        ),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Connection"));
    assert_eq!(mock_requests(&m).len(), 1);

    // The provider's side: what its `Connection` nominates stays with the gateway.
    let up = raw_upstream(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nConnection: x-hop, keep-alive\r\nx-hop: provider-internal\r\nx-kept: 1\r\ncontent-length: 2\r\n\r\n{}"
            .to_vec(),
    );
    let g = gateway(&format!(
        "[[provider]]\nname = \"raw\"\nkind = \"openai\"\nbase_url = \"http://{up}/v1\"\n\n[[route]]\nmodel = \"r\"\ntargets = [\"raw/x\"]\n"
    ));
    let r = chat_openai(g.addr, "r", "hi", false);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-kept"), Some("1"));
    assert_eq!(r.header("x-hop"), None, "{:?}", r.headers);
}

#[test]
fn header_patterns_that_would_forward_credentials_are_refused_at_load() {
    let path = write_config(
        "[[provider]]\nname = \"p\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nforward_headers = [\"x-team-*\", \"Authorization\"]\n",
    );
    let out = std::process::Command::new(bin())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("provider[0].forward_headers[1]") && err.contains("never forwarded"),
        "{err}"
    );
}

#[test]
fn a_huge_provider_error_body_keeps_its_status() {
    let body = "x".repeat(2 << 20);
    let response = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: text/plain\r\nretry-after: 3\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let g = raw_route("openai", response.as_bytes());
    let r = chat_openai(g.addr, "r", "hi", false);
    assert_eq!(r.status, 429, "{}", &r.text()[..200.min(r.text().len())]);
    assert_eq!(r.header("retry-after"), Some("3"));
    let v = r.json();
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("upstream returned HTTP 429: xxx"),
        "{}",
        &message[..80]
    );
    assert!(r.body.len() < 8192, "only the first bytes are quoted");
}

#[test]
fn an_answer_too_large_for_the_budget_even_alone_is_a_502_not_a_retry() {
    let m = mock(&[]);
    let g = gateway_env(
        &format!(
            "[server]\nworkers = 1\nmax_buffered_bytes = 5242880\n\n{}",
            standard_providers(&m)
        ),
        PROVIDER_KEYS,
    );
    // 3 MB plus room for its translation cannot fit 5 MiB even with nothing else held.
    let r = chat_openai(g.addr, "claude", "mock:big=3000000", false);
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("too large to translate"));
    // One that fits alone is served.
    let r = chat_openai(g.addr, "claude", "mock:big=1500000", false);
    assert_eq!(r.status, 200);
}
