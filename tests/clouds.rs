//! Claude on the clouds through the real binary: bedrock- and vertex-kind providers on the mock
//! (which verifies SigV4 and Google tokens as the clouds do), reached from all three client
//! dialects, streaming or not; their betas, errors, failover, token counts, credentials
//! (environment, API key, container endpoint, service account, metadata server, a token the
//! cloud stops accepting) and residency.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::shared::*;
use common::*;
use serde_json::{json, Value};

const AKID: &str = "AKIDRINGWAYMOCK";
const SECRET: &str = "ringway-mock-secret";
const BEDROCK_MODEL: &str = "us.anthropic.claude-haiku-4-5-20251001-v1:0";
const BEDROCK_PATH: &str = "/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0";
const VERTEX_MODEL: &str = "claude-haiku-4-5@20251001";
const VERTEX_PATH: &str =
    "/v1/projects/mock-project/locations/us-east5/publishers/anthropic/models/claude-haiku-4-5@20251001";

/// The environment a gateway gets: AWS keys the mock knows, nothing from the host's own.
fn aws_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("AWS_ACCESS_KEY_ID", AKID),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
        ("AWS_SESSION_TOKEN", "mock-session"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials"),
        ("AWS_CONFIG_FILE", "/nonexistent/config"),
        ("RW_TEST_ANTHROPIC_KEY", "sk-provider-anthropic"),
    ]
}

/// A bedrock provider `bedrock` on `mock` (and the anthropic-kind `ma`), with routes `cb`
/// (Bedrock only) and `cb-fb` (Bedrock, then Anthropic's own API).
fn bedrock_config(mock: &Proc, extra_provider: &str) -> String {
    format!(
        r#"
[[provider]]
name = "bedrock"
kind = "bedrock"
region = "ca-central-1"
base_url = "http://{m}"
{extra_provider}

[[provider]]
name = "ma"
kind = "anthropic"
base_url = "http://{m}"
api_key_env = "RW_TEST_ANTHROPIC_KEY"

[[route]]
model = "cb"
targets = ["bedrock/{BEDROCK_MODEL}"]

[[route]]
model = "cb-fb"
targets = ["bedrock/{BEDROCK_MODEL}", "ma/mock-claude-up"]
"#,
        m = mock.addr
    )
}

fn bedrock() -> (Proc, Proc) {
    let m = mock(&[]);
    let g = gateway_env(&bedrock_config(&m, ""), &aws_env());
    (m, g)
}

fn last_request(m: &Proc) -> Value {
    mock_requests(m)
        .last()
        .cloned()
        .expect("the mock saw no request")
}

#[test]
fn bedrock_serves_every_dialect_signed_streaming_or_not() {
    let (m, g) = bedrock();
    for d in Dialect::ALL {
        for stream in [false, true] {
            clear_records(&m);
            let r = request(
                g.addr,
                &d.request("cb", "hello there mock:tokens=5", stream, &[]),
            );
            assert_eq!(r.status, 200, "{d:?} stream={stream}: {}", r.text());
            assert_eq!(r.header("x-ringway-provider"), Some("bedrock"));
            assert!(
                !d.text(&r, stream).is_empty(),
                "{d:?} stream={stream}: {}",
                r.text()
            );
            if stream {
                assert!(
                    r.header("content-type")
                        .unwrap_or("")
                        .starts_with("text/event-stream"),
                    "{d:?}: {:?}",
                    r.header("content-type")
                );
            } else {
                assert_eq!(r.header("content-type"), Some("application/json"), "{d:?}");
            }
            // What Bedrock got: the model in the path, the body without model and stream, its
            // version; signed (the mock checks the signature: it answered 200).
            let rec = last_request(&m);
            let action = if stream {
                "invoke-with-response-stream"
            } else {
                "invoke"
            };
            assert_eq!(rec["path"], format!("{BEDROCK_PATH}/{action}"), "{d:?}");
            let body = body_of(&rec);
            assert_eq!(body["anthropic_version"], "bedrock-2023-05-31", "{d:?}");
            assert!(
                body.get("model").is_none() && body.get("stream").is_none(),
                "{body}"
            );
            let auth = header_of(&rec, "authorization").unwrap();
            assert!(
                auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={AKID}/")),
                "{auth}"
            );
            assert!(
                auth.contains("/ca-central-1/bedrock/aws4_request"),
                "{auth}"
            );
            assert_eq!(
                header_of(&rec, "x-amz-security-token"),
                Some("mock-session")
            );
        }
    }
    // Custody names the region that served and its country.
    let r = request(g.addr, &Dialect::Messages.request("cb", "hi", false, &[]));
    assert_eq!(r.header("x-ringway-region"), Some("ca-central-1"));
    assert_eq!(
        r.header("x-ringway-jurisdiction"),
        Some("US"),
        "a us. profile reaches the US"
    );
}

#[test]
fn bedrock_betas_go_in_the_body_and_unknown_ones_are_reported() {
    let (m, g) = bedrock();
    let beta = [(
        "anthropic-beta",
        "context-1m-2025-08-07, claude-code-20250219",
    )];
    let r = request(g.addr, &Dialect::Messages.request("cb", "hi", false, &beta));
    assert_eq!(r.status, 200, "{}", r.text());
    let body = body_of(&last_request(&m));
    assert_eq!(body["anthropic_beta"], json!(["context-1m-2025-08-07"]));
    assert_eq!(
        r.header("x-ringway-dropped-params"),
        Some("anthropic-beta=claude-code-20250219")
    );
    assert!(header_of(&last_request(&m), "anthropic-beta").is_none());
    // Other workers publish their counts every second.
    let want = "ringway_betas_dropped_total{provider=\"bedrock\"} 1\n";
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = request(g.addr, &get("/metrics", &[])).text();
        if metrics.contains(want) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(metrics.contains(want), "{metrics}");
}

#[test]
fn bedrock_errors_reach_each_client_in_its_own_format() {
    let (_m, g) = bedrock();
    // Throttled before any stream: AWS's 429 ThrottlingException as each dialect's 429.
    let r = request(
        g.addr,
        &Dialect::Messages.request("cb", "hi mock:throttle", false, &[]),
    );
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
    let r = request(
        g.addr,
        &Dialect::Chat.request("cb", "hi mock:throttle", false, &[]),
    );
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Throttling"),
        "{}",
        r.text()
    );

    // An exception mid-stream, after the answer started: the dialect's error event ends it.
    let r = request(
        g.addr,
        &Dialect::Messages.request(
            "cb",
            "hi mock:tokens=20 mock:bedrock_exception=modelStreamErrorException",
            true,
            &[],
        ),
    );
    assert_eq!(r.status, 200);
    let events = sse_events(&r.body);
    let (_, last) = events.last().unwrap();
    let last: Value = serde_json::from_str(last).unwrap();
    assert_eq!(last["type"], "error", "{events:?}");
    let r = request(
        g.addr,
        &Dialect::Chat.request(
            "cb",
            "hi mock:tokens=20 mock:bedrock_exception=throttlingException",
            true,
            &[],
        ),
    );
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(text.contains("\"error\""), "{text}");

    // A broken frame is a clean end, never a hang or a crash.
    for directive in ["mock:bad_crc", "mock:huge_frame"] {
        let r = request(
            g.addr,
            &Dialect::Messages.request("cb", &format!("hi mock:tokens=20 {directive}"), true, &[]),
        );
        assert_eq!(r.status, 200, "{directive}");
        let events = sse_events(&r.body);
        let (_, last) = events.last().unwrap();
        assert!(last.contains("\"error\""), "{directive}: {events:?}");
    }
    // The gateway still serves.
    let r = request(g.addr, &Dialect::Messages.request("cb", "hi", false, &[]));
    assert_eq!(r.status, 200);
}

#[test]
fn bedrock_fails_over_to_anthropic_before_commit() {
    let (m, g) = bedrock();
    let mut tried_bedrock = 0;
    for d in Dialect::ALL {
        for stream in [false, true] {
            clear_records(&m);
            let r = request(g.addr, &d.request("cb-fb", "hi mock:throttle", stream, &[]));
            assert_eq!(r.status, 200, "{d:?} {stream}: {}", r.text());
            assert_eq!(r.header("x-ringway-provider"), Some("ma"), "{d:?} {stream}");
            let paths: Vec<String> = mock_requests(&m)
                .iter()
                .map(|r| r["path"].as_str().unwrap().to_owned())
                .collect();
            // Bedrock's 429 is retried on it (the route's policy), then Anthropic serves; once
            // Bedrock's breaker opens, the route goes straight to Anthropic.
            let (last, before) = paths.split_last().unwrap();
            assert_eq!(last, "/v1/messages", "{paths:?}");
            assert!(
                before.iter().all(|p| p.starts_with(BEDROCK_PATH)),
                "{paths:?}"
            );
            tried_bedrock += before.len();
        }
    }
    assert!(
        tried_bedrock >= 2,
        "Bedrock was asked {tried_bedrock} times"
    );
}

#[test]
fn bedrock_counts_tokens_with_its_foundation_model() {
    let (m, g) = bedrock();
    let body = json!({"model": "cb", "messages": [{"role": "user", "content": "count these words please"}]});
    let r = request(
        g.addr,
        &post("/v1/messages/count_tokens", &[], &body.to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.json()["input_tokens"].as_u64().unwrap() > 0,
        "{}",
        r.text()
    );
    let rec = last_request(&m);
    assert_eq!(
        rec["path"],
        "/model/anthropic.claude-haiku-4-5-20251001-v1%3A0/count-tokens"
    );
}

#[test]
fn bedrock_credentials_from_an_api_key_and_a_container_endpoint() {
    let m = mock(&["--aws-credentials-ttl", "3600"]);
    // A Bedrock API key: a bearer, no signature.
    let mut env = aws_env();
    env.push(("RW_BEDROCK_KEY", "ABSKmocktestkey"));
    let g = gateway_env(
        &bedrock_config(&m, "api_key_env = \"RW_BEDROCK_KEY\""),
        &env,
    );
    let r = request(g.addr, &Dialect::Messages.request("cb", "hi", false, &[]));
    assert_eq!(r.status, 200, "{}", r.text());
    let rec = last_request(&m);
    assert_eq!(
        header_of(&rec, "authorization"),
        Some("Bearer ABSKmocktestkey")
    );
    assert!(header_of(&rec, "x-amz-date").is_none());
    drop(g);

    // Keys from a container-style endpoint, with their session token.
    let url = format!(
        "aws_credentials_url = \"http://{}/mock/aws-credentials\"",
        m.addr
    );
    let g = gateway_env(&bedrock_config(&m, &url), &[]);
    let r = request(g.addr, &Dialect::Chat.request("cb", "hi", true, &[]));
    assert_eq!(r.status, 200, "{}", r.text());
    let rec = last_request(&m);
    assert!(
        header_of(&rec, "x-amz-security-token").is_some_and(|t| t.starts_with("mock-session-")),
        "{rec}"
    );
}

#[test]
fn bedrock_refused_credentials_are_a_502_naming_the_provider() {
    let m = mock(&[]);
    let mut env = aws_env();
    env.retain(|(k, _)| *k != "AWS_SECRET_ACCESS_KEY");
    env.push(("AWS_SECRET_ACCESS_KEY", "not-the-secret"));
    let g = gateway_env(&bedrock_config(&m, ""), &env);
    let r = request(g.addr, &Dialect::Messages.request("cb", "hi", false, &[]));
    assert_eq!(r.status, 502, "{}", r.text());
    let msg = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        msg.contains("`bedrock`") && msg.contains("credentials"),
        "{msg}"
    );
    // Another target serves.
    let r = request(g.addr, &Dialect::Chat.request("cb-fb", "hi", false, &[]));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-ringway-provider"), Some("ma"));
}

#[test]
fn bedrock_without_credentials_is_refused_at_check() {
    let m = mock(&[]);
    let path = write_config(&format!(
        "[server]\nworkers = 1\n{}",
        bedrock_config(&m, "")
    ));
    let out = std::process::Command::new(bin())
        .args(["check", "--config"])
        .arg(&path)
        .env_clear()
        .env("HOME", "/nonexistent")
        .env("RW_TEST_ANTHROPIC_KEY", "x")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("bedrock") && stderr.contains("AWS_ACCESS_KEY_ID"),
        "{stderr}"
    );
}

fn vertex_config(mock: &Proc, credential: &str) -> String {
    format!(
        r#"
[[provider]]
name = "vertex"
kind = "vertex"
project = "mock-project"
region = "us-east5"
base_url = "http://{m}"
{credential}

[[provider]]
name = "ma"
kind = "anthropic"
base_url = "http://{m}"
api_key_env = "RW_TEST_ANTHROPIC_KEY"

[[route]]
model = "cv"
targets = ["vertex/{VERTEX_MODEL}"]

[[route]]
model = "cv-fb"
targets = ["vertex/{VERTEX_MODEL}", "ma/mock-claude-up"]
"#,
        m = mock.addr
    )
}

/// The mock with a service account, and a gateway using it.
fn vertex() -> (Proc, Proc) {
    let (file, pem) = google_account("sa.json");
    write_account(&file, &pem, "http://127.0.0.1:0/token");
    let m = mock(&["--google-service-account", file.to_str().unwrap()]);
    write_account(&file, &pem, &format!("http://{}/token", m.addr));
    let cfg = vertex_config(
        &m,
        &format!("google_credentials = {:?}", file.to_str().unwrap()),
    );
    let g = gateway_env(&cfg, &[("RW_TEST_ANTHROPIC_KEY", "sk-provider-anthropic")]);
    (m, g)
}

#[test]
fn vertex_serves_every_dialect_with_a_service_account_token() {
    let (m, g) = vertex();
    for d in Dialect::ALL {
        for stream in [false, true] {
            clear_records(&m);
            let r = request(
                g.addr,
                &d.request("cv", "hello there mock:tokens=5", stream, &[]),
            );
            assert_eq!(r.status, 200, "{d:?} stream={stream}: {}", r.text());
            assert_eq!(r.header("x-ringway-provider"), Some("vertex"));
            assert!(
                !d.text(&r, stream).is_empty(),
                "{d:?} stream={stream}: {}",
                r.text()
            );
            let rec = mock_requests(&m)
                .into_iter()
                .rfind(|r| r["path"].as_str().unwrap_or("").starts_with("/v1/projects"))
                .unwrap();
            let action = if stream {
                "streamRawPredict"
            } else {
                "rawPredict"
            };
            assert_eq!(rec["path"], format!("{VERTEX_PATH}:{action}"));
            let body = body_of(&rec);
            assert_eq!(body["anthropic_version"], "vertex-2023-10-16");
            assert!(body.get("model").is_none(), "{body}");
            assert_eq!(body["stream"].as_bool().unwrap_or(false), stream, "{body}");
            assert!(header_of(&rec, "authorization")
                .is_some_and(|a| a.starts_with("Bearer mock-token-")));
        }
    }
    let r = request(g.addr, &Dialect::Messages.request("cv", "hi", false, &[]));
    assert_eq!(r.header("x-ringway-region"), Some("us-east5"));
    assert_eq!(r.header("x-ringway-jurisdiction"), Some("US"));
}

#[test]
fn vertex_betas_stay_in_the_header_filtered() {
    let (m, g) = vertex();
    let beta = [(
        "anthropic-beta",
        "interleaved-thinking-2025-05-14,oauth-2025-04-20",
    )];
    let r = request(g.addr, &Dialect::Messages.request("cv", "hi", true, &beta));
    assert_eq!(r.status, 200, "{}", r.text());
    let rec = last_request(&m);
    assert_eq!(
        header_of(&rec, "anthropic-beta"),
        Some("interleaved-thinking-2025-05-14")
    );
    assert_eq!(
        r.header("x-ringway-dropped-params"),
        Some("anthropic-beta=oauth-2025-04-20")
    );
    // Vertex serves Anthropic's web search tool only behind its beta: it is added.
    let body = json!({"model": "cv", "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 1}]});
    let r = request(g.addr, &post("/v1/messages", &[], &body.to_string()));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        header_of(&last_request(&m), "anthropic-beta"),
        Some("web-search-2025-03-05")
    );
}

#[test]
fn vertex_refreshes_a_refused_token_once_and_retries() {
    let (m, g) = vertex();
    let r = request(g.addr, &Dialect::Messages.request("cv", "hi", false, &[]));
    assert_eq!(r.status, 200, "{}", r.text());
    let first = header_of(&last_request(&m), "authorization")
        .unwrap()
        .to_owned();
    // The cloud stops accepting every token it gave.
    assert_eq!(
        request(m.addr, &post("/mock/google-tokens/revoke", &[], "")).status,
        200
    );
    clear_records(&m);
    let r = request(g.addr, &Dialect::Chat.request("cv", "hi", false, &[]));
    assert_eq!(r.status, 200, "{}", r.text());
    let recs = mock_requests(&m);
    let predicts: Vec<&Value> = recs
        .iter()
        .filter(|r| r["path"].as_str().unwrap_or("").contains("rawPredict"))
        .collect();
    assert_eq!(predicts.len(), 2, "{recs:?}");
    let second = header_of(predicts[1], "authorization").unwrap();
    assert_ne!(second, first, "a fresh token was fetched");
    assert!(recs.iter().any(|r| r["path"] == "/token"), "{recs:?}");
}

#[test]
fn vertex_metadata_server_and_static_token() {
    let m = mock(&[]);
    let g = gateway_env(
        &vertex_config(&m, &format!("google_metadata_url = \"http://{}\"", m.addr)),
        &[("RW_TEST_ANTHROPIC_KEY", "x")],
    );
    let r = request(g.addr, &Dialect::Responses.request("cv", "hi", false, &[]));
    assert_eq!(r.status, 200, "{}", r.text());
    drop(g);
    let g = gateway_env(
        &vertex_config(&m, "api_key_env = \"RW_VERTEX_TOKEN\""),
        &[
            ("RW_VERTEX_TOKEN", "mock-static-token"),
            ("RW_TEST_ANTHROPIC_KEY", "x"),
        ],
    );
    let r = request(g.addr, &Dialect::Messages.request("cv", "hi", true, &[]));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        header_of(&last_request(&m), "authorization"),
        Some("Bearer mock-static-token")
    );
    // Throttled (Google's RESOURCE_EXHAUSTED): falls over to Anthropic's API.
    let r = request(
        g.addr,
        &Dialect::Messages.request("cv-fb", "hi mock:throttle", false, &[]),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-ringway-provider"), Some("ma"));
    // Without a fallback, the client sees the 429 in its own shape.
    let r = request(
        g.addr,
        &Dialect::Messages.request("cv", "hi mock:throttle", false, &[]),
    );
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
}

#[test]
fn vertex_counts_tokens_with_the_model_in_the_body() {
    let m = mock(&[]);
    let g = gateway_env(
        &vertex_config(&m, "api_key_env = \"RW_VERTEX_TOKEN\""),
        &[
            ("RW_VERTEX_TOKEN", "mock-static-token"),
            ("RW_TEST_ANTHROPIC_KEY", "x"),
        ],
    );
    let body = json!({"model": "cv", "messages": [{"role": "user", "content": "count these"}]});
    let r = request(
        g.addr,
        &post("/v1/messages/count_tokens", &[], &body.to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["input_tokens"].as_u64().unwrap() > 0);
    let rec = last_request(&m);
    assert!(rec["path"]
        .as_str()
        .unwrap()
        .ends_with("/models/count-tokens:rawPredict"));
    assert_eq!(body_of(&rec)["model"], VERTEX_MODEL);
}

#[test]
fn residency_follows_region_and_profile() {
    let m = mock(&[]);
    let cfg = format!(
        r#"
[[tier]]
name = "canada"
jurisdictions = ["CA"]

[[provider]]
name = "bedrock"
kind = "bedrock"
region = "ca-central-1"
base_url = "http://{m}"

[[route]]
model = "ca-claude"
targets = ["bedrock/ca.anthropic.claude-haiku-4-5-20251001-v1:0"]

[[route]]
model = "global-claude"
targets = ["bedrock/global.anthropic.claude-haiku-4-5-20251001-v1:0"]
"#,
        m = m.addr
    );
    let g = gateway_env(&cfg, &aws_env());
    let tier = [("x-privacy-tier", "canada")];
    let r = request(
        g.addr,
        &Dialect::Messages.request("ca-claude", "hi", false, &tier),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-ringway-jurisdiction"), Some("CA"));
    assert_eq!(r.header("x-ringway-region"), Some("ca-central-1"));
    // A global profile may leave Canada: the tier refuses it, nothing goes upstream.
    clear_records(&m);
    let r = request(
        g.addr,
        &Dialect::Messages.request("global-claude", "hi", false, &tier),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(mock_requests(&m).is_empty());
    // So does addressing it directly.
    let r = request(
        g.addr,
        &Dialect::Messages.request(
            "bedrock/global.anthropic.claude-haiku-4-5-20251001-v1:0",
            "hi",
            false,
            &tier,
        ),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    // The direct address of a Canadian profile is inside the tier.
    let r = request(
        g.addr,
        &Dialect::Chat.request(
            "bedrock/ca.anthropic.claude-haiku-4-5-20251001-v1:0",
            "hi",
            false,
            &tier,
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        last_request(&m)["path"],
        "/model/ca.anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke"
    );
}

#[test]
fn a_beta_the_cloud_refuses_by_name_is_retried_once_without_it() {
    // This region's Bedrock and Vertex do not have context-1m yet, though the allowlists do.
    let (file, pem) = google_account("sa.json");
    write_account(&file, &pem, "http://127.0.0.1:0/token");
    let m = mock(&["--refuse-beta", "context-1m-2025-08-07"]);
    let mut env = aws_env();
    env.push(("RW_VERTEX_TOKEN", "mock-static-token"));
    let cfg = format!(
        "{}\n{}",
        bedrock_config(&m, ""),
        vertex_config(&m, "api_key_env = \"RW_VERTEX_TOKEN\"")
            .replace("name = \"ma\"", "name = \"ma2\"")
            .replace("\"ma/", "\"ma2/")
    );
    let g = gateway_env(&cfg, &env);
    let beta = [(
        "anthropic-beta",
        "context-1m-2025-08-07,fine-grained-tool-streaming-2025-05-14",
    )];
    for model in ["cb", "cv"] {
        clear_records(&m);
        let r = request(g.addr, &Dialect::Messages.request(model, "hi", true, &beta));
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        let dropped = r
            .header("x-ringway-dropped-params")
            .unwrap_or_default()
            .to_owned();
        assert!(
            dropped.contains("anthropic-beta=context-1m-2025-08-07"),
            "{model}: {dropped}"
        );
        let recs = mock_requests(&m);
        assert_eq!(recs.len(), 2, "{model}: one refusal, one retry: {recs:?}");
        let retried = recs.last().unwrap();
        let sent = match model {
            "cb" => body_of(retried)["anthropic_beta"].to_string(),
            _ => header_of(retried, "anthropic-beta")
                .unwrap_or_default()
                .to_owned(),
        };
        assert!(!sent.contains("context-1m"), "{model}: {sent}");
    }
    // A 400 that names no beta is the client's answer, sent once.
    for model in ["cb", "cv"] {
        clear_records(&m);
        let known = [("anthropic-beta", "fine-grained-tool-streaming-2025-05-14")];
        let r = request(
            g.addr,
            &Dialect::Messages.request(model, "hi mock:status=400", false, &known),
        );
        assert_eq!(r.status, 400, "{model}: {}", r.text());
        assert_eq!(mock_requests(&m).len(), 1, "{model}");
    }
}

#[test]
fn a_credentials_endpoint_that_fails_is_a_502_not_a_hang() {
    let m = mock(&[]);
    // Nothing listens there: the first fetch fails at start, and keeps failing.
    let url = format!(
        "aws_credentials_url = \"http://127.0.0.1:{}/creds\"",
        closed_port()
    );
    let g = gateway_env(&bedrock_config(&m, &url), &[("RW_TEST_ANTHROPIC_KEY", "x")]);
    for d in Dialect::ALL {
        let r = request(g.addr, &d.request("cb", "hi", true, &[]));
        assert_eq!(r.status, 502, "{d:?}: {}", r.text());
        let text = r.text();
        assert!(
            text.contains("`bedrock`") && text.contains("credentials"),
            "{d:?}: {text}"
        );
        // The client learns which provider failed, not where its credentials come from.
        assert!(!text.contains("127.0.0.1"), "{d:?}: {text}");
    }
    // Another target of the route serves.
    let r = request(
        g.addr,
        &Dialect::Messages.request("cb-fb", "hi", false, &[]),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-ringway-provider"), Some("ma"));
    // Nothing was sent to Bedrock unsigned.
    assert!(mock_requests(&m)
        .iter()
        .all(|r| !r["path"].as_str().unwrap_or("").starts_with("/model/")));
}

#[test]
fn expiring_keys_are_refreshed_before_they_expire_without_a_request_waiting() {
    // Keys that live 14 s (the gateway hands none out in its last 10 s) are fetched again at
    // half their life: requests before and after carry different session tokens, and none
    // fails or waits on a fetch.
    let m = mock(&["--aws-credentials-ttl", "14"]);
    let url = format!(
        "aws_credentials_url = \"http://{}/mock/aws-credentials\"",
        m.addr
    );
    let g = gateway_env(&bedrock_config(&m, &url), &[("RW_TEST_ANTHROPIC_KEY", "x")]);
    let token = |m: &Proc| {
        header_of(&last_request(m), "x-amz-security-token")
            .unwrap_or_default()
            .to_owned()
    };
    let r = request(g.addr, &Dialect::Messages.request("cb", "hi", false, &[]));
    assert_eq!(r.status, 200, "{}", r.text());
    let first = token(&m);
    let started = std::time::Instant::now();
    let mut tokens = vec![first.clone()];
    // Past half the keys' life, with room for a slow machine.
    while started.elapsed() < std::time::Duration::from_secs(9) {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let r = request(g.addr, &Dialect::Chat.request("cb", "hi", false, &[]));
        assert_eq!(r.status, 200, "{}", r.text());
        tokens.push(token(&m));
    }
    assert!(
        tokens.iter().any(|t| *t != first),
        "never refreshed: {tokens:?}"
    );
    let fetches = mock_requests(&m)
        .iter()
        .filter(|r| r["path"] == "/mock/aws-credentials")
        .count();
    assert!(
        (2..=4).contains(&fetches),
        "one fetch per refresh, not per request: {fetches}"
    );
}

#[test]
fn bedrock_gets_only_the_context_edits_it_takes() {
    // Claude Code asks Anthropic's API to clear old thinking on every request; Bedrock refuses
    // that edit (the mock as the real one), so it is left out and reported; compaction stays.
    let (m, g) = bedrock();
    let body = |edits: Value| {
        json!({"model": "cb", "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}],
            "context_management": {"edits": edits}})
        .to_string()
    };
    let r = request(
        g.addr,
        &post(
            "/v1/messages",
            &[],
            &body(json!([{"type": "clear_thinking_20251015", "keep": "all"}])),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-ringway-dropped-params"),
        Some("context_management")
    );
    assert!(body_of(&last_request(&m))
        .get("context_management")
        .is_none());
    let compact = json!([{"type": "compact_20260112"}]);
    let r = request(g.addr, &post("/v1/messages", &[], &body(compact.clone())));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("x-ringway-dropped-params").is_none());
    assert_eq!(
        body_of(&last_request(&m))["context_management"]["edits"],
        compact
    );
}

#[test]
fn a_cloud_credential_a_provider_sends_back_never_reaches_the_client() {
    // A provider (or a proxy in front of it) that quotes the gateway's Bedrock key and a
    // Google token it was sent: the client gets the error with the credential scrubbed.
    for (kind, secret) in [
        ("bedrock", "ABSKscrubbedkey0123456789"),
        ("vertex", "ya29.scrubbed-token-0123456789"),
    ] {
        let body = format!(r#"{{"message":"refused: {secret}"}}"#);
        let raw = format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nx-amzn-errortype: ValidationException\r\nx-echo: {secret}\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let up = raw_upstream(raw.into_bytes());
        let extra = match kind {
            "bedrock" => "region = \"ca-central-1\"".to_owned(),
            _ => "region = \"us-east5\"\nproject = \"p\"".to_owned(),
        };
        let cfg = format!(
            "[[provider]]\nname = \"c\"\nkind = \"{kind}\"\n{extra}\nbase_url = \"http://{up}\"\napi_key_env = \"RW_CLOUD_KEY\"\n\n[[route]]\nmodel = \"m\"\ntargets = [\"c/anthropic.claude-x\"]\n"
        );
        let g = gateway_env(&cfg, &[("RW_CLOUD_KEY", secret)]);
        let r = request(g.addr, &Dialect::Messages.request("m", "hi", false, &[]));
        assert_eq!(r.status, 400, "{kind}: {}", r.text());
        let all = format!("{:?} {}", r.headers, r.text());
        assert!(!all.contains(secret), "{kind}: {all}");
        assert!(
            !all.contains(&secret[..12]),
            "{kind}: a fragment got through: {all}"
        );
    }
}
