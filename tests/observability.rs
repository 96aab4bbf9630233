//! Observability through the real binary: `/metrics` after real traffic (checked by
//! `promtool check metrics` and against the usage the mock sent), and the access log (every
//! line parsed and checked against the requests sent; no key, no prompt; reopen on SIGUSR1).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// The gateway key the tests send (from the environment, so its hash is not needed here).
const KEY: &str = "sk-obs-team-a-9f3c";
/// How long a test waits for metrics to be published or log lines to be written.
const WAIT: Duration = Duration::from_secs(15);

/// Mock, gateway (with a key, the standard providers, a route whose first target is dead so
/// that it falls back, and `extra` config).
fn setup_keyed(extra: &str) -> (Proc, Proc) {
    let m = mock(&[]);
    let cfg = format!(
        r#"{extra}
{}
{DEAD_FIRST_ROUTE}
[[key]]
name = "team-a"
key_env = "RW_TEST_OBS_KEY"
"#,
        standard_providers(&m)
    );
    let mut env = PROVIDER_KEYS.to_vec();
    env.push(("RW_TEST_OBS_KEY", KEY));
    let g = gateway_env(&cfg, &env);
    (m, g)
}

fn auth() -> [(&'static str, &'static str); 1] {
    [("authorization", "Bearer sk-obs-team-a-9f3c")]
}

fn openai(g: &Proc, model: &str, prompt: &str, stream: bool) -> Response {
    let mut body = json!({
        "model": model,
        "stream": stream,
        "messages": [{"role": "user", "content": prompt}],
    });
    if stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    request(
        g.addr,
        &post("/v1/chat/completions", &auth(), &body.to_string()),
    )
}

fn anthropic(g: &Proc, model: &str, prompt: &str, stream: bool) -> Response {
    request(
        g.addr,
        &post(
            "/v1/messages",
            &[("x-api-key", KEY), ("anthropic-version", "2023-06-01")],
            &anthropic_body(model, prompt, stream),
        ),
    )
}

/// Usage as the client saw it, in the gateway's terms: (input incl. cache, output, cache_read).
fn client_usage(r: &Response, anthropic: bool) -> (u64, u64, u64) {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let streamed = r
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/event-stream"));
    match (anthropic, streamed) {
        (false, false) => {
            let u = &r.json()["usage"];
            (
                n(&u["prompt_tokens"]),
                n(&u["completion_tokens"]),
                n(&u["prompt_tokens_details"]["cached_tokens"]),
            )
        }
        (false, true) => {
            let events = sse_events(&r.body);
            let u = events
                .iter()
                .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
                .find(|v| v["usage"].is_object())
                .expect("an OpenAI stream with include_usage has a usage chunk")["usage"]
                .clone();
            (
                n(&u["prompt_tokens"]),
                n(&u["completion_tokens"]),
                n(&u["prompt_tokens_details"]["cached_tokens"]),
            )
        }
        (true, false) => {
            let u = &r.json()["usage"];
            let read = n(&u["cache_read_input_tokens"]);
            (
                n(&u["input_tokens"]) + read + n(&u["cache_creation_input_tokens"]),
                n(&u["output_tokens"]),
                read,
            )
        }
        (true, true) => {
            let events = sse_events(&r.body);
            let data = |name: &str| {
                events
                    .iter()
                    .filter(|(e, _)| e.as_deref() == Some(name))
                    .map(|(_, d)| serde_json::from_str::<Value>(d).unwrap())
                    .next_back()
                    .unwrap()
            };
            // message_delta's usage is cumulative and, translated, the only one with input.
            let start = data("message_start")["message"]["usage"].clone();
            let delta = data("message_delta")["usage"].clone();
            let pick = |k: &str| match n(&delta[k]) {
                0 => n(&start[k]),
                v => v,
            };
            let read = pick("cache_read_input_tokens");
            (
                pick("input_tokens") + read + pick("cache_creation_input_tokens"),
                n(&delta["output_tokens"]),
                read,
            )
        }
    }
}

/// `name{labels}` → value, from a scrape.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

fn scrape(g: &Proc) -> String {
    let r = request(g.addr, &get("/metrics", &auth()));
    assert_eq!(r.status, 200);
    r.text()
}

#[test]
fn metrics_after_real_traffic_pass_promtool_and_count_the_mocks_tokens() {
    let (_m, g) = setup_keyed("[access_log]\nenabled = false\n");
    // (series route, series provider) → summed client-seen usage.
    let mut want: HashMap<(&str, &str), (u64, u64, u64)> = HashMap::new();
    let mut add = |series: (&'static str, &'static str), r: &Response, anth: bool| {
        assert_eq!(r.status, 200, "{}", r.text());
        let (i, o, c) = client_usage(r, anth);
        assert!(i > 0 && o > 0, "the mock sent usage");
        let e = want.entry(series).or_default();
        *e = (e.0 + i, e.1 + o, e.2 + c);
    };
    add(
        ("gpt", "mo"),
        &openai(&g, "gpt", "hello there", false),
        false,
    );
    add(
        ("gpt", "mo"),
        &openai(&g, "gpt", "mock:cache a b c d e f", true),
        false,
    );
    add(
        ("claude", "ma"),
        &anthropic(&g, "claude", "mock:cache hi you", false),
        true,
    );
    add(
        ("claude", "ma"),
        &anthropic(&g, "claude", "stream me", true),
        true,
    );
    // Translated both ways: usage is read on the provider's side.
    add(
        ("claude", "ma"),
        &openai(&g, "claude", "translate me", true),
        false,
    );
    add(
        ("gpt", "mo"),
        &anthropic(&g, "gpt", "the other way", true),
        true,
    );
    // The first target is dead: one fallback, served by the second.
    add(("fb", "mo"), &openai(&g, "fb", "fall back", false), false);
    add(
        ("direct", "mo"),
        &openai(&g, "mo/mock-gpt-up", "direct", true),
        false,
    );

    // Other workers publish once a second: scrape until every series has arrived.
    let label = |route: &str, provider: &str| {
        format!("route=\"{route}\",provider=\"{provider}\",key=\"team-a\"")
    };
    let deadline = Instant::now() + WAIT;
    let (text, s) = loop {
        let text = scrape(&g);
        let s = samples(&text);
        let complete = want.iter().all(|((r, p), (i, _, _))| {
            s.get(&format!(
                "ringway_tokens_total{{{},gen_ai_token_type=\"input\"}}",
                label(r, p)
            )) == Some(&(*i as f64))
        });
        if complete || Instant::now() > deadline {
            break (text, s);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    promtool_check(&text);
    for ((route, provider), (input, output, cache_read)) in &want {
        let l = label(route, provider);
        for (kind, n) in [
            ("input", *input),
            ("output", *output),
            ("cache_read", *cache_read),
            ("cache_write", 0),
        ] {
            let k = format!("ringway_tokens_total{{{l},gen_ai_token_type=\"{kind}\"}}");
            assert_eq!(s.get(&k), Some(&(n as f64)), "{k}\n{text}");
        }
        assert_eq!(
            s.get(&format!("ringway_streams_in_flight{{{l}}}")),
            Some(&0.0),
            "{text}"
        );
    }
    // Streams that succeeded have a time to first token and a time per output token.
    for (route, provider, streams) in [("gpt", "mo", 2.0), ("claude", "ma", 2.0)] {
        let l = label(route, provider);
        let count = format!("gen_ai_server_time_to_first_token_seconds_count{{{l}}}");
        assert_eq!(s.get(&count), Some(&streams), "{count}\n{text}");
        let inf = format!("gen_ai_server_time_to_first_token_seconds_bucket{{{l},le=\"+Inf\"}}");
        assert_eq!(s.get(&inf), Some(&streams), "{text}");
        let sum = s[&format!("gen_ai_server_time_to_first_token_seconds_sum{{{l}}}")];
        assert!(sum > 0.0 && sum < 10.0, "{sum}");
        let tpot = format!("gen_ai_server_time_per_output_token_seconds_count{{{l}}}");
        assert_eq!(s.get(&tpot), Some(&streams), "{tpot}\n{text}");
    }
    // The fallback, the attempts, the dead target's breaker on some worker.
    let reason = "ringway_fallbacks_total{target=\"dead/never-up\",reason=\"connect\"}";
    assert!(s.get(reason).is_some_and(|n| *n >= 1.0), "{text}");
    assert!(
        s.get("ringway_attempts_total{target=\"mo/mock-gpt-up\"}")
            .is_some_and(|n| *n >= 4.0),
        "{text}"
    );
    assert!(
        s.keys()
            .any(|k| k.starts_with("ringway_breaker_state{target=\"dead/never-up\",worker=")),
        "{text}"
    );
    assert_eq!(s.get("ringway_access_log_dropped_total"), Some(&0.0));
    // Nothing client-chosen became a label: the direct model is only `direct`.
    assert!(!text.contains("mo/mock-gpt-up\",key"), "{text}");
}

/// The `authorization` header of the key `team-rpm` (`rpm = 1`), and its key's SHA-256.
const RPM_ONE_AUTH: &str = "Bearer sk-obs-rpm-one-5d1a";
const RPM_ONE_SHA256: &str = "88309b344e6ccce54e3fd68f7bdaf9713e18ef45ac3fa9128cb986cfe9d5d888";

fn request_id(r: &Response) -> String {
    r.header("x-ringway-request-id").unwrap().to_owned()
}

#[test]
fn access_log_lines_match_the_requests_and_hold_no_secret() {
    let path = temp_path("access.log");
    // A second key allowed one request a minute: its second is refused.
    let (_m, g) = setup_keyed(&format!(
        "[access_log]\npath = {:?}\n[[key]]\nname = \"team-rpm\"\nsha256 = \"{RPM_ONE_SHA256}\"\nrpm = 1\n",
        path.display().to_string()
    ));
    let prompts = [
        "zebra-quartz-one",
        "zebra-quartz-two",
        "zebra-quartz-three",
        "zebra-quartz-four",
        "zebra-quartz-five",
    ];
    // (response, expected fields)
    let mut sent: Vec<(Response, Value)> = Vec::new();
    let r = openai(&g, "gpt", prompts[0], false);
    let (i, o, _) = client_usage(&r, false);
    sent.push((
        r,
        json!({"key": "team-a", "dialect": "openai", "endpoint": "chat_completions",
               "path": "/v1/chat/completions", "model": "gpt", "route": "gpt",
               "provider": "mo", "upstream_model": "mock-gpt-up", "attempts": 1, "status": 200,
               "stream": false, "stop_reason": "stop", "error": null,
               "tokens": {"input": i, "output": o}}),
    ));
    let r = openai(&g, "gpt", prompts[1], true);
    let (i, o, _) = client_usage(&r, false);
    sent.push((
        r,
        json!({"key": "team-a", "dialect": "openai", "route": "gpt", "provider": "mo",
               "status": 200, "stream": true, "stop_reason": "stop", "error": null,
               "tokens": {"input": i, "output": o}}),
    ));
    let r = anthropic(&g, "claude", &format!("mock:cache {}", prompts[2]), true);
    let (i, o, c) = client_usage(&r, true);
    sent.push((
        r,
        json!({"key": "team-a", "dialect": "anthropic", "endpoint": "messages",
               "route": "claude", "provider": "ma", "upstream_model": "mock-claude-up",
               "status": 200, "stream": true, "stop_reason": "end_turn", "error": null,
               "tokens": {"input": i, "output": o, "cache_read": c, "cache_write": 0}}),
    ));
    // Translated: the stop reason and usage are the provider's (Anthropic's).
    let r = openai(&g, "claude", prompts[3], false);
    let (i, o, _) = client_usage(&r, false);
    sent.push((
        r,
        json!({"key": "team-a", "dialect": "openai", "route": "claude", "provider": "ma",
               "status": 200, "stream": false, "stop_reason": "end_turn", "error": null,
               "tokens": {"input": i, "output": o}}),
    ));
    // Errors: a wrong key (no key name), an unknown model, a provider's 400.
    let r = request(
        g.addr,
        &post(
            "/v1/chat/completions",
            &[("authorization", "Bearer sk-wrong-zebra")],
            &openai_body("gpt", prompts[4], false),
        ),
    );
    sent.push((
        r,
        json!({"key": null, "status": 401, "error": "unauthorized", "route": null,
               "provider": null, "attempts": 0, "tokens": null, "ttft_ms": null}),
    ));
    let r = openai(&g, "no-such-model", prompts[4], false);
    sent.push((
        r,
        json!({"key": "team-a", "status": 404, "error": "model_not_found",
               "model": "no-such-model", "route": null, "provider": null}),
    ));
    let r = openai(&g, "fb", &format!("mock:status=400 {}", prompts[4]), false);
    sent.push((
        r,
        json!({"key": "team-a", "status": 400, "error": "provider_status", "route": "fb",
               "provider": "mo", "attempts": 1, "tokens": null}),
    ));

    // An endpoint that is not a model call still names the key that asked.
    let r = request(g.addr, &get("/v1/models", &auth()));
    sent.push((
        r,
        json!({"key": "team-a", "status": 200, "endpoint": "models", "error": null}),
    ));
    // Refused by the key's rpm before routing: the line still says which route it was for.
    let limited = [("authorization", RPM_ONE_AUTH)];
    let body = openai_body("gpt", prompts[4], false);
    let r = request(g.addr, &post("/v1/chat/completions", &limited, &body));
    assert_eq!(r.status, 200, "{}", r.text());
    sent.push((r, json!({"key": "team-rpm", "route": "gpt"})));
    let r = request(g.addr, &post("/v1/chat/completions", &limited, &body));
    sent.push((
        r,
        json!({"key": "team-rpm", "status": 429, "error": "rate_limited", "route": "gpt",
               "provider": null, "attempts": 0}),
    ));

    // A head that cannot be parsed still gets its line (no duration: it was never read whole).
    let r = request(
        g.addr,
        b"GET /v1/models?key=sk-query-zebra HTTP/1.1\r\nbad header line\r\n\r\n",
    );
    sent.push((
        r,
        json!({"key": null, "status": 400, "error": "bad_request", "path": "/v1/models",
               "duration_ms": null, "ttft_ms": null, "stream": false}),
    ));

    let lines = wait_lines(&path, sent.len());
    assert_eq!(lines.len(), sent.len(), "one line per request:\n{lines:#?}");
    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let by_id: HashMap<String, &Value> = parsed
        .iter()
        .map(|v| (v["request_id"].as_str().unwrap().to_owned(), v))
        .collect();
    for (r, want) in &sent {
        let id = request_id(r);
        let line = by_id.get(&id).unwrap_or_else(|| panic!("no line for {id}"));
        assert_eq!(line["status"], r.status, "{line}");
        for (k, v) in want.as_object().unwrap() {
            if k == "tokens" && v.is_object() {
                for (t, n) in v.as_object().unwrap() {
                    assert_eq!(&line["tokens"][t], n, "{id} tokens.{t}: {line}");
                }
            } else {
                assert_eq!(&line[k], v, "{id} {k}: {line}");
            }
        }
        // Every line has every field, with its type.
        for k in [
            "time",
            "request_id",
            "node",
            "key",
            "dialect",
            "endpoint",
            "path",
            "model",
            "route",
            "provider",
            "upstream_model",
            "attempts",
            "status",
            "bytes",
            "stream",
            "ttft_ms",
            "duration_ms",
            "tokens",
            "stop_reason",
            "error",
        ] {
            assert!(line.get(k).is_some(), "{k} missing: {line}");
        }
        let time = line["time"].as_str().unwrap();
        assert!(
            time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
            "{time}"
        );
        assert!(
            line["bytes"].as_u64().unwrap() > r.body.len() as u64,
            "{line}"
        );
        let Some(duration) = line["duration_ms"].as_f64() else {
            continue;
        };
        assert!(duration > 0.0 && duration < 60_000.0, "{line}");
        match line["stream"].as_bool().unwrap() {
            true => {
                let ttft = line["ttft_ms"].as_f64().unwrap();
                assert!(ttft > 0.0 && ttft <= duration, "{line}");
            }
            false => assert!(line["ttft_ms"].is_null(), "{line}"),
        }
    }
    // No key, no provider credential, no prompt text anywhere.
    let all = std::fs::read_to_string(&path).unwrap();
    for secret in [
        KEY,
        RPM_ONE_AUTH,
        "sk-wrong-zebra",
        "sk-provider-openai",
        "sk-provider-anthropic",
    ] {
        assert!(!all.contains(secret), "{secret} in the access log");
    }
    for p in prompts {
        assert!(!all.contains(p), "prompt text {p} in the access log");
    }
    assert!(!all.contains("zebra"), "prompt text in the access log");
}

/// A same-format OpenAI stream whose client did not ask for usage: the gateway asks the
/// provider, counts it, and the client sees no usage chunk; a client that asked gets its own.
#[test]
fn openai_streams_are_metered_when_the_client_did_not_ask_for_usage() {
    let path = temp_path("usage.log");
    let (m, g) = setup_keyed(&format!(
        "[access_log]\npath = {:?}\n",
        path.display().to_string()
    ));
    let prompt = "count me please";
    let silent = request(
        g.addr,
        &post(
            "/v1/chat/completions",
            &auth(),
            &openai_body("gpt", prompt, true),
        ),
    );
    assert_eq!(silent.status, 200);
    let events = sse_events(&silent.body);
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let chunks: Vec<Value> = events
        .iter()
        .filter_map(|(_, d)| serde_json::from_str(d).ok())
        .collect();
    assert!(!chunks.is_empty());
    for c in &chunks {
        assert!(
            c["usage"].is_null(),
            "a usage chunk the client did not ask for: {c}"
        );
        assert!(!c["choices"].as_array().unwrap().is_empty(), "{c}");
    }
    let upstream = mock_requests(&m);
    let sent: Value =
        serde_json::from_str(upstream.last().unwrap()["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true, "{sent}");
    // The mock is deterministic: the same prompt with include_usage shows the numbers.
    let asked = openai(&g, "gpt", prompt, true);
    let (input, output, _) = client_usage(&asked, false);
    let usage_chunks = sse_events(&asked.body)
        .iter()
        .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
        .filter(|c| c["usage"].is_object())
        .count();
    assert_eq!(
        usage_chunks, 1,
        "the client that asked gets exactly its one usage chunk"
    );
    let lines = wait_lines(&path, 2);
    let line: Value = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["request_id"] == request_id(&silent))
        .unwrap();
    assert_eq!(line["tokens"]["input"], input, "{line}");
    assert_eq!(line["tokens"]["output"], output, "{line}");
    assert_eq!(line["stop_reason"], "stop");
}

/// logrotate: the file is renamed, SIGUSR1 reopens it, new lines go to a new file.
/// Needs the signal thread to call `ringway::access_log::reopen()` on SIGUSR1.
#[test]
fn access_log_reopens_on_sigusr1() {
    let path = temp_path("rotated.log");
    let (_m, mut g) = setup_keyed(&format!(
        "[access_log]\npath = {:?}\n",
        path.display().to_string()
    ));
    let first = openai(&g, "gpt", "before rotation", false);
    assert_eq!(first.status, 200);
    assert_eq!(wait_lines(&path, 1).len(), 1);
    let rotated = path.with_extension("log.1");
    std::fs::rename(&path, &rotated).unwrap();
    let status = Command::new("kill")
        .args(["-USR1", &g.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // The signal is handled on its own thread: give it a moment before the next request.
    std::thread::sleep(Duration::from_millis(300));
    if let Some(exit) = g.child.try_wait().unwrap() {
        panic!(
            "the gateway died of SIGUSR1 ({exit}): its signal thread must catch SIGUSR1 and call \
             ringway::access_log::reopen()"
        );
    }
    let second = openai(&g, "gpt", "after rotation", false);
    assert_eq!(second.status, 200);
    let lines = wait_lines(&path, 1);
    assert_eq!(lines.len(), 1, "a new file with the new line");
    assert!(lines[0].contains(&request_id(&second)), "{lines:?}");
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert_eq!(old.lines().count(), 1, "{old}");
    assert!(old.contains(&request_id(&first)));
}
