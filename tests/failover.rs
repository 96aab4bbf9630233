//! Failover through the real binary: a fault matrix over three targets on the mock (faults on
//! one or two of them) × streaming or not × same-format or translated, the client's opt-out,
//! the deadline when no target is healthy, and the circuit breaker.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// The faults of the matrix, as the mock names them (`refused` is a target on a closed port).
const FAULTS: &[&str] = &[
    "refused",
    "reset",
    "reset_midstream",
    "reset_before_content",
    "stall",
    "slow_first_token=3000",
    "status=429,retry_after_ms=50",
    "status=503",
    "status=529",
    "garbage",
    "error_event",
];

/// A gateway (one worker: breaker state is the worker's) with providers `oa` (openai), `an`
/// (anthropic) on the mock, `dead` (openai) and `deadan` (anthropic) on a closed port, and
/// `extra` routes.
fn gateway_for(mock: &Proc, extra: &str) -> Proc {
    let dead = closed_port();
    gateway(&format!(
        r#"[server]
workers = 1

[upstream]
first_byte_timeout_ms = 400

[[provider]]
name = "oa"
kind = "openai"
base_url = "http://{m}/v1"

[[provider]]
name = "an"
kind = "anthropic"
base_url = "http://{m}"

[[provider]]
name = "dead"
kind = "openai"
base_url = "http://127.0.0.1:{dead}/v1"

[[provider]]
name = "deadan"
kind = "anthropic"
base_url = "http://127.0.0.1:{dead}"

{extra}
"#,
        m = mock.addr
    ))
}

/// The matrix route: three targets of `kind` ("oa" or "an"), models `<tag>-1..3`; target 1
/// or 2 on the closed port when the case is `refused`.
fn matrix_route(tag: &str, kind: &str, refused: usize) -> String {
    let dead = if kind == "oa" { "dead" } else { "deadan" };
    let t = |i: usize| {
        let p = if i <= refused { dead } else { kind };
        format!("\"{p}/{tag}-{i}\"")
    };
    format!(
        r#"[[route]]
model = "{tag}"
targets = [{}, {}, {}]
first_token_timeout_ms = 400
request_timeout_ms = 20000
breaker_failures = 0
backoff_base_ms = 5
backoff_max_ms = 20
"#,
        t(1),
        t(2),
        t(3)
    )
}

/// Requests the mock saw for one gateway request id, by upstream model: what it answered
/// each time (a status, or a fault name), in order.
fn seen_by_model(mock: &Proc, request_id: &str) -> BTreeMap<String, Vec<Value>> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in mock_requests(mock) {
        if r["headers"]["x-ringway-request-id"] == request_id {
            let model = r["model"].as_str().unwrap_or("?").to_owned();
            out.entry(model).or_default().push(r["answered"].clone());
        }
    }
    out
}

/// Run the matrix for one route kind and one streaming mode.
fn matrix(kind: &str, stream: bool) {
    let m = mock(&[]);
    let tag = format!("mx-{kind}-{}", if stream { "s" } else { "n" });
    let mut routes = String::new();
    for refused in 0..=2 {
        routes.push_str(&matrix_route(&format!("{tag}{refused}"), kind, refused));
    }
    let g = gateway_for(&m, &routes);
    let mut checked = 0;
    for fault in FAULTS {
        for faulted in 1..=2usize {
            let refused = if *fault == "refused" { faulted } else { 0 };
            let route = format!("{tag}{refused}");
            let mut table = serde_json::Map::new();
            if *fault != "refused" {
                for i in 1..=faulted {
                    table.insert(format!("{route}-{i}"), Value::from(*fault));
                }
            }
            set_faults(&m, &Value::Object(table));
            clear_records(&m);
            let case = format!("{kind} stream={stream} fault={fault} on {faulted} target(s)");
            let r = chat_openai(g.addr, &route, "hello there", stream);
            let id = r
                .header("x-ringway-request-id")
                .unwrap_or_default()
                .to_owned();
            let seen = seen_by_model(&m, &id);
            let attempts: usize = r
                .header("x-ringway-attempts")
                .and_then(|a| a.parse().ok())
                .unwrap_or(0);
            // Never twice on a target that already answered 2xx.
            for (model, answers) in &seen {
                let ok_at: Vec<usize> = answers
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| a.as_u64().is_some_and(|s| (200..300).contains(&s)))
                    .map(|(i, _)| i)
                    .collect();
                assert!(
                    ok_at.len() <= 1 && ok_at.iter().all(|i| *i + 1 == answers.len()),
                    "{case}: {model} saw the request again after answering it: {answers:?}"
                );
            }
            let mock_sends: usize = seen.values().map(Vec::len).sum();
            assert!(
                attempts >= mock_sends && attempts > 0,
                "{case}: x-ringway-attempts {attempts}, mock saw {mock_sends}: {seen:?}"
            );
            if *fault == "reset_midstream" && stream {
                // Content reached the client before the break: too late to fall back. The
                // client gets the content, then its dialect's error event, and no other target
                // is asked.
                assert_eq!(r.status, 200, "{case}");
                let events = sse_events(&r.body);
                let last = &events.last().expect("events").1;
                assert!(last.contains("\"error\""), "{case}: {}", r.text());
                assert_eq!(
                    r.header("x-ringway-model"),
                    Some(&*format!("{route}-1")),
                    "{case}"
                );
                assert_eq!(seen.len(), 1, "{case}: {seen:?}");
                checked += 1;
                continue;
            }
            let healthy = format!("{route}-{}", faulted + 1);
            assert_eq!(r.status, 200, "{case}: {}", r.text());
            assert_eq!(r.header("x-ringway-model"), Some(&*healthy), "{case}");
            if stream {
                let text = r.text();
                assert!(text.contains("[DONE]"), "{case}: {text}");
                assert!(!text.contains("\"error\""), "{case}: {text}");
            } else {
                let v = r.json();
                assert!(
                    v["choices"][0]["message"]["content"].is_string(),
                    "{case}: {v}"
                );
            }
            // The healthy target got the request exactly once.
            assert_eq!(
                seen.get(&healthy).map(Vec::len),
                Some(1),
                "{case}: {seen:?}"
            );
            // No clock: a stall the first-token timeout missed would end in the route's 20 s
            // deadline (a 504, not the healthy target's 200), a slow first token in the
            // faulted target's answer.
            checked += 1;
        }
    }
    assert_eq!(checked, FAULTS.len() * 2);
}

#[test]
fn fault_matrix_same_format_non_streaming() {
    matrix("oa", false);
}

#[test]
fn fault_matrix_same_format_streaming() {
    matrix("oa", true);
}

#[test]
fn fault_matrix_translated_non_streaming() {
    matrix("an", false);
}

#[test]
fn fault_matrix_translated_streaming() {
    matrix("an", true);
}

#[test]
fn a_fallback_crosses_formats_and_retries_honour_retry_after() {
    let m = mock(&[]);
    let g = gateway_for(
        &m,
        r#"[[route]]
model = "x"
targets = ["oa/x-1", "an/x-2"]
retries = 2
backoff_base_ms = 5
max_retry_after_ms = 30000
"#,
    );
    // Two 429s with a 300 ms hint, then the first target answers: the gateway waited.
    set_faults(
        &m,
        &serde_json::json!({"x-1": "status=429,retry_after_ms=300"}),
    );
    let t = Instant::now();
    let r = chat_openai(g.addr, "x", "hi", false);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-ringway-model"), Some("x-2"));
    assert_eq!(r.header("x-ringway-attempts"), Some("4"));
    assert!(
        t.elapsed() >= Duration::from_millis(600),
        "{:?}",
        t.elapsed()
    );
    // The answer crossed formats: an Anthropic target, an OpenAI answer.
    assert_eq!(r.json()["object"], "chat.completion");

    // A hint beyond max_retry_after_ms moves on at once: no retry on x-1 (two attempts), and
    // no wait, which (the hint's 60 s or the 30 s cap) would outlast the client's read timeout.
    set_faults(&m, &serde_json::json!({"x-1": "status=429,retry_after=60"}));
    let r = chat_openai(g.addr, "x", "hi", true);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-ringway-attempts"), Some("2"));
    assert!(r.text().contains("[DONE]"));
}

#[test]
fn with_no_healthy_target_the_client_gets_its_error_within_the_deadline() {
    let m = mock(&[]);
    let g = gateway_for(
        &m,
        r#"[[route]]
model = "all"
targets = ["oa/all-1", "an/all-2", "oa/all-3"]
retries = 1
backoff_base_ms = 5
backoff_max_ms = 10

[[route]]
model = "slow"
targets = ["oa/slow-1", "an/slow-2"]
request_timeout_ms = 1000
"#,
    );
    set_faults(
        &m,
        &serde_json::json!({"all-1": "status=503", "all-2": "status=529", "all-3": "status=503"}),
    );
    // OpenAI client: the last provider answer (a 503) in the OpenAI format.
    let r = chat_openai(g.addr, "all", "hi", true);
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.json()["error"]["message"].is_string());
    assert_eq!(r.header("x-ringway-attempts"), Some("6"));
    // Anthropic client: the Anthropic error format (an OpenAI 503 is Anthropic's 529).
    let r = chat_anthropic(g.addr, "all", "hi", false);
    assert_eq!(r.status, 529, "{}", r.text());
    assert_eq!(r.json()["type"], "error");

    // Stalled providers: the route's deadline ends the wait, with a 504.
    set_faults(&m, &serde_json::json!({"*": "stall"}));
    for stream in [false, true] {
        let t = Instant::now();
        let r = chat_anthropic(g.addr, "slow", "hi", stream);
        let took = t.elapsed();
        assert_eq!(r.status, 504, "{}", r.text());
        assert_eq!(r.json()["error"]["type"], "timeout_error");
        // The deadline fired (the 504: the stall outlasts the client's read timeout), not
        // before its time.
        assert!(took >= Duration::from_millis(800), "{took:?}");
    }
}

#[test]
fn allow_fallbacks_false_sends_to_one_target_only() {
    let m = mock(&[]);
    let g = gateway_for(
        &m,
        r#"[[route]]
model = "one"
targets = ["oa/one-1", "oa/one-2"]
retries = 1
backoff_base_ms = 5
"#,
    );
    set_faults(&m, &serde_json::json!({"one-1": "status=503"}));
    // In the body (removed before it goes upstream, the rest byte for byte).
    clear_records(&m);
    let body =
        r#"{"model":"one","allow_fallbacks":false,"messages":[{"role":"user","content":"hi"}]}"#;
    let r = request(g.addr, &post("/v1/chat/completions", &[], body));
    assert_eq!(r.status, 503, "{}", r.text());
    let seen = mock_requests(&m);
    assert_eq!(seen.len(), 2, "one target, with its retry: {seen:?}");
    for s in &seen {
        assert_eq!(s["model"], "one-1");
        assert_eq!(
            s["body"],
            r#"{"model":"one-1","messages":[{"role":"user","content":"hi"}]}"#
        );
    }
    // Anthropic client, translated: the field does not reach the provider either.
    clear_records(&m);
    let body = r#"{"model":"one","max_tokens":9,"allow_fallbacks":false,"messages":[{"role":"user","content":"hi"}]}"#;
    let r = request(g.addr, &post("/v1/messages", &[], body));
    assert_eq!(r.status, 529, "{}", r.text());
    let seen = mock_requests(&m);
    assert!(seen.iter().all(|s| s["model"] == "one-1"), "{seen:?}");
    assert!(seen
        .iter()
        .all(|s| !s["body"].as_str().unwrap().contains("allow_fallbacks")));
    // In a header.
    clear_records(&m);
    let r = request(
        g.addr,
        &post(
            "/v1/chat/completions",
            &[("x-ringway-allow-fallbacks", "false")],
            &openai_body("one", "hi", true),
        ),
    );
    assert_eq!(r.status, 503, "{}", r.text());
    let seen = mock_requests(&m);
    assert!(seen.iter().all(|s| s["model"] == "one-1"), "{seen:?}");
    assert!(seen
        .iter()
        .all(|s| s["headers"].get("x-ringway-allow-fallbacks").is_none()));
    // `true` keeps fallbacks; anything else is refused.
    let body =
        r#"{"model":"one","allow_fallbacks":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let r = request(g.addr, &post("/v1/chat/completions", &[], body));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-ringway-model"), Some("one-2"));
    let body =
        r#"{"model":"one","allow_fallbacks":"no","messages":[{"role":"user","content":"hi"}]}"#;
    let r = request(g.addr, &post("/v1/chat/completions", &[], body));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["param"], "allow_fallbacks");
}

/// A pinned request (`allow_fallbacks: false`) goes to the route's first target as written,
/// whatever the strategy draws and whether or not its breaker is open; when that target fails
/// it, the client gets a 503 in its format naming the target, never another target's answer.
#[test]
fn a_pinned_request_is_served_by_the_first_target_or_gets_a_503_naming_it() {
    let m = mock(&[]);
    let g = gateway_for(
        &m,
        r#"[[route]]
model = "pin"
targets = ["oa/pin-1", "oa/pin-2"]
retries = 0
breaker_failures = 1
breaker_cooldown_ms = 60000

[[route]]
model = "pw"
strategy = "weighted"
targets = [{ target = "oa/pw-1", weight = 1 }, { target = "oa/pw-2", weight = 1000 }]
"#,
    );
    // Open pin-1's breaker: one failure, the request falls back to pin-2.
    set_faults(&m, &serde_json::json!({"pin-1": "reset"}));
    let r = chat_openai(g.addr, "pin", "hi", false);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-ringway-model"), Some("pin-2"));
    assert_eq!(
        metric(&g, "ringway_breaker_opened_total{target=\"oa/pin-1\"}"),
        1
    );
    // Pinned, pin-1 still failing: it is asked (its breaker does not send the request to
    // pin-2), and the client gets a 503 naming it, in the client's format.
    let pinned = |model: &str| {
        format!(
            r#"{{"model":"{model}","allow_fallbacks":false,"messages":[{{"role":"user","content":"hi"}}]}}"#
        )
    };
    clear_records(&m);
    let r = request(g.addr, &post("/v1/chat/completions", &[], &pinned("pin")));
    assert_eq!(r.status, 503, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["code"], "pinned_target_unavailable", "{v}");
    assert_eq!(v["error"]["type"], "server_error", "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`oa/pin-1`") && message.contains("reset"),
        "{message}"
    );
    assert_eq!(r.header("x-ringway-model"), Some("pin-1"));
    let seen = mock_requests(&m);
    assert!(
        !seen.is_empty() && seen.iter().all(|s| s["model"] == "pin-1"),
        "{seen:?}"
    );
    // An Anthropic client, by header: its own error shape.
    let r = request(
        g.addr,
        &post(
            "/v1/messages",
            &[("x-ringway-allow-fallbacks", "false")],
            &anthropic_body("pin", "hi", false),
        ),
    );
    assert_eq!(r.status, 503, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "overloaded_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("`oa/pin-1`"));
    // pin-1 recovers: a pinned request goes to it, breaker open or not, and serves.
    set_faults(&m, &serde_json::json!({}));
    let r = request(g.addr, &post("/v1/chat/completions", &[], &pinned("pin")));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-ringway-model"), Some("pin-1"));
    // A weighted route: pinned requests go to its first target, not the one drawn.
    clear_records(&m);
    for _ in 0..6 {
        let r = request(g.addr, &post("/v1/chat/completions", &[], &pinned("pw")));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-ringway-model"), Some("pw-1"));
    }
}

/// A streamed request's provider gets its own first-byte budget (here 1 s on the route),
/// shorter than a whole answer's (4 s on the provider): a provider that never sends a head
/// fails the stream first, each with its deadline's error in the client's format.
#[test]
fn a_stream_has_its_own_first_byte_timeout() {
    let m = mock(&[]);
    set_faults(&m, &serde_json::json!({"*": "stall"}));
    let g = gateway(&format!(
        r#"[server]
workers = 1

[upstream]
stream_first_byte_timeout_ms = 30000

[[provider]]
name = "oa"
kind = "openai"
base_url = "http://{m}/v1"
first_byte_timeout_ms = 4000
stream_first_byte_timeout_ms = 20000

[[route]]
model = "silent"
targets = ["oa/silent-1"]
stream_first_byte_timeout_ms = 1000
"#,
        m = m.addr
    ));
    let (tx, rx) = std::sync::mpsc::channel();
    for stream in [false, true] {
        let tx = tx.clone();
        let addr = g.addr;
        std::thread::spawn(move || {
            let r = chat_openai(addr, "silent", "hi", stream);
            tx.send((stream, r)).unwrap();
        });
        if !stream {
            // The whole answer's request first: finishing second, it waited longer.
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let (first_stream, first) = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    let (_, second) = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(first_stream, "the stream's deadline fires first");
    for (r, key) in [
        (&first, "(stream_first_byte_timeout_ms)"),
        (&second, "(first_byte_timeout_ms)"),
    ] {
        assert_eq!(r.status, 504, "{}", r.text());
        let v = r.json();
        assert_eq!(v["error"]["code"], "upstream_timeout", "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().ends_with(key),
            "{v}"
        );
    }
    // Each key is checked like the others.
    for (toml, at) in [
        (
            "[upstream]\nstream_first_byte_timeout_ms = 0\n",
            ":2: upstream.stream_first_byte_timeout_ms",
        ),
        (
            "[[provider]]\nname = \"p\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nstream_first_byte_timeout_ms = 0\n",
            ":5: provider[0].stream_first_byte_timeout_ms",
        ),
        (
            "[[provider]]\nname = \"p\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n[[route]]\nmodel = \"m\"\ntargets = [\"p/x\"]\nstream_first_byte_timeout_ms = 0\n",
            ":8: route[0].stream_first_byte_timeout_ms",
        ),
    ] {
        check_refuses(toml, at, "must be greater than 0");
    }
}

fn metric(g: &Proc, line_start: &str) -> u64 {
    let r = request(g.addr, &get("/metrics", &[]));
    r.text()
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn the_breaker_skips_an_open_target_and_probes_it_after_the_cooldown() {
    let m = mock(&[]);
    let g = gateway_for(
        &m,
        r#"[[route]]
model = "b"
targets = ["oa/b-1", "oa/b-2"]
retries = 0
breaker_failures = 2
breaker_cooldown_ms = 700
"#,
    );
    set_faults(&m, &serde_json::json!({"b-1": "status=503"}));
    for _ in 0..2 {
        let r = chat_openai(g.addr, "b", "hi", false);
        assert_eq!(r.header("x-ringway-attempts"), Some("2"));
        assert_eq!(r.header("x-ringway-model"), Some("b-2"));
    }
    assert_eq!(
        metric(&g, "ringway_breaker_opened_total{target=\"oa/b-1\"}"),
        1
    );
    // Open: b-1 is skipped, not asked.
    clear_records(&m);
    let r = chat_openai(g.addr, "b", "hi", true);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-ringway-attempts"), Some("1"));
    assert!(mock_requests(&m).iter().all(|s| s["model"] == "b-2"));
    assert!(
        metric(
            &g,
            "ringway_fallbacks_total{target=\"oa/b-1\",reason=\"breaker_open\"}"
        ) >= 1
    );
    // After the cooldown one probe goes to b-1; it is healthy again, so it serves and closes.
    set_faults(&m, &serde_json::json!({}));
    std::thread::sleep(Duration::from_millis(800));
    let r = chat_openai(g.addr, "b", "hi", false);
    assert_eq!(r.header("x-ringway-model"), Some("b-1"));
    let r = chat_openai(g.addr, "b", "hi", false);
    assert_eq!(r.header("x-ringway-model"), Some("b-1"));
    assert_eq!(
        metric(&g, "ringway_attempts_total{target=\"oa/b-1\"}"),
        4,
        "two failures, the probe, one more"
    );
}

/// A listener on 127.0.0.1 that accepts every connection and closes it at once: its address
/// and how many it has accepted.
fn closing_listener() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            count.fetch_add(1, Ordering::SeqCst);
            drop(c);
        }
    });
    (addr, accepted)
}

#[test]
fn a_translated_target_whose_breaker_is_open_is_not_connected_to() {
    use std::sync::atomic::Ordering;
    let m = mock(&[]);
    let (closing, accepted) = closing_listener();
    // A Chat client's request to an Anthropic-kind target is translated, and its connection
    // is reached before its body is made: not for a target its breaker passes over.
    let g = gateway_for(
        &m,
        &format!(
            r#"[[provider]]
name = "closing"
kind = "anthropic"
base_url = "http://{closing}"

[[route]]
model = "cb"
targets = ["closing/cb-1", "oa/cb-2"]
retries = 0
breaker_failures = 1
breaker_cooldown_ms = 60000
"#
        ),
    );
    let r = chat_openai(g.addr, "cb", "hi", false);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-ringway-model"), Some("cb-2"));
    assert_eq!(
        metric(&g, "ringway_breaker_opened_total{target=\"closing/cb-1\"}"),
        1
    );
    let before = accepted.load(Ordering::SeqCst);
    assert!(
        before >= 1,
        "the first request was sent to the closing provider"
    );
    for _ in 0..3 {
        let r = chat_openai(g.addr, "cb", "hi", false);
        assert_eq!(r.header("x-ringway-model"), Some("cb-2"));
        assert_eq!(r.header("x-ringway-attempts"), Some("1"));
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        before,
        "no connection was made to a target whose breaker is open"
    );
}

#[test]
fn with_every_breaker_open_the_soonest_to_close_is_probed() {
    let m = mock(&[]);
    let g = gateway_for(
        &m,
        r#"[[route]]
model = "o"
targets = ["oa/o-1", "oa/o-2"]
retries = 0
breaker_failures = 1
breaker_cooldown_ms = 60000
"#,
    );
    set_faults(
        &m,
        &serde_json::json!({"o-1": "status=503", "o-2": "status=503"}),
    );
    let r = chat_openai(g.addr, "o", "hi", false);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("x-ringway-attempts"), Some("2"));
    // Both open now. The next request is not refused outright: o-1 (opened first) is probed.
    set_faults(&m, &serde_json::json!({"o-2": "status=503"}));
    clear_records(&m);
    let r = chat_openai(g.addr, "o", "hi", false);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-ringway-model"), Some("o-1"));
    assert_eq!(r.header("x-ringway-attempts"), Some("1"));
    // The probe closed o-1; o-2 stays open and unasked.
    let r = chat_openai(g.addr, "o", "hi", false);
    assert_eq!(r.header("x-ringway-model"), Some("o-1"));
    assert!(mock_requests(&m).iter().all(|s| s["model"] == "o-1"));
}

#[test]
fn weighted_and_least_latency_routes_spread_traffic() {
    let m = mock(&[]);
    let g = gateway_for(
        &m,
        r#"[[route]]
model = "w"
strategy = "weighted"
targets = [{ target = "oa/w-1", weight = 3 }, { target = "oa/w-2", weight = 1 }]

[[route]]
model = "l"
strategy = "least_latency"
targets = ["oa/l-1", "oa/l-2", "oa/l-3"]
"#,
    );
    let mut w1 = 0;
    for _ in 0..200 {
        let r = chat_openai(g.addr, "w", "hi", false);
        assert_eq!(r.status, 200);
        if r.header("x-ringway-model") == Some("w-1") {
            w1 += 1;
        }
    }
    // 3:1 → 150 expected of 200; far outside chance at these bounds.
    assert!((120..=180).contains(&w1), "w-1 served {w1} of 200");

    // l-3 is slow to first byte: it stops leading once measured, the other two share. With
    // two choices of three, whichever of l-1 and l-2 measures slower still leads a third of the
    // time: 50 of 150 expected, so 25 is over four standard deviations away (60 requests with a
    // floor of 15 failed by chance about once in thirty runs).
    set_faults(&m, &serde_json::json!({"l-3": "slow_first_token=150"}));
    let mut by = BTreeMap::new();
    for _ in 0..150 {
        let r = chat_openai(g.addr, "l", "hi", false);
        assert_eq!(r.status, 200);
        *by.entry(r.header("x-ringway-model").unwrap().to_owned())
            .or_insert(0) += 1;
    }
    let l3 = by.get("l-3").copied().unwrap_or(0);
    assert!(l3 <= 6, "{by:?}");
    assert!(by.get("l-1").copied().unwrap_or(0) >= 25, "{by:?}");
    assert!(by.get("l-2").copied().unwrap_or(0) >= 25, "{by:?}");
}

#[test]
fn models_addressed_directly_share_one_metrics_label() {
    let m = mock(&[]);
    let g = gateway_for(&m, "");
    for i in 0..3 {
        let r = chat_openai(g.addr, &format!("oa/direct-{i}"), "hi", false);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-ringway-attempts"), Some("1"));
    }
    let text = request(g.addr, &get("/metrics", &[])).text();
    assert!(
        text.contains("ringway_attempts_total{target=\"oa/*\"} 3\n"),
        "{text}"
    );
    assert!(!text.contains("direct-"), "{text}");
}

#[test]
fn with_no_target_serving_the_last_provider_answer_wins_over_a_later_reset() {
    let m = mock(&[]);
    let g = gateway_for(
        &m,
        r#"[[route]]
model = "z"
targets = ["oa/z-1", "an/z-2", "oa/z-3"]
retries = 0
"#,
    );
    set_faults(
        &m,
        &serde_json::json!({"z-1": "status=503", "z-2": "status=429,retry_after=7", "z-3": "reset"}),
    );
    let r = chat_openai(g.addr, "z", "hi", false);
    // z-2's 429 (in the OpenAI format, its retry-after kept), named as z-2's.
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("7"));
    assert_eq!(r.header("x-ringway-model"), Some("z-2"));
    assert_eq!(r.header("x-ringway-provider"), Some("an"));
    assert!(r.json()["error"]["message"].is_string());
}

#[test]
fn open_targets_are_a_last_resort_before_a_request_is_given_up() {
    let m = mock(&[]);
    let g = gateway_for(
        &m,
        r#"[[route]]
model = "lr"
targets = ["oa/lr-1", "an/lr-2", "oa/lr-3"]
retries = 0
breaker_failures = 1
breaker_cooldown_ms = 60000
"#,
    );
    set_faults(
        &m,
        &serde_json::json!({"lr-1": "status=503", "lr-2": "status=503"}),
    );
    let r = chat_openai(g.addr, "lr", "hi", false);
    assert_eq!(r.header("x-ringway-model"), Some("lr-3"));
    // lr-1 and lr-2 are open for a minute. lr-1 recovers and lr-3 fails: the request is not
    // lost to the breakers, lr-1 (the first to close) is tried after lr-3.
    set_faults(
        &m,
        &serde_json::json!({"lr-2": "status=503", "lr-3": "reset"}),
    );
    clear_records(&m);
    let r = chat_openai(g.addr, "lr", "hi", true);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-ringway-model"), Some("lr-1"));
    assert!(r.text().contains("[DONE]"));
    let asked: Vec<Value> = mock_requests(&m)
        .iter()
        .map(|s| s["model"].clone())
        .collect();
    assert_eq!(asked.first(), Some(&Value::from("lr-3")), "{asked:?}");
    assert_eq!(asked.last(), Some(&Value::from("lr-1")), "{asked:?}");
    assert!(!asked.contains(&Value::from("lr-2")), "{asked:?}");
}

#[test]
fn a_stream_that_breaks_after_commit_counts_against_its_target() {
    let m = mock(&[]);
    let g = gateway_for(
        &m,
        r#"[[route]]
model = "mid"
targets = ["oa/mid-1", "oa/mid-2"]
breaker_failures = 1
breaker_cooldown_ms = 60000
"#,
    );
    set_faults(&m, &serde_json::json!({"mid-1": "reset_midstream"}));
    let r = chat_openai(g.addr, "mid", "hi", true);
    assert_eq!(r.header("x-ringway-model"), Some("mid-1"));
    assert!(r.text().contains("\"error\""), "{}", r.text());
    assert_eq!(
        metric(&g, "ringway_breaker_opened_total{target=\"oa/mid-1\"}"),
        1
    );
    // The next request skips mid-1.
    let r = chat_openai(g.addr, "mid", "hi", true);
    assert_eq!(r.header("x-ringway-model"), Some("mid-2"));
    assert_eq!(r.header("x-ringway-attempts"), Some("1"));
}

#[test]
fn a_slow_stream_is_not_given_up_for_targets_whose_breakers_are_open() {
    let m = mock(&[]);
    let g = gateway_for(
        &m,
        r#"[[route]]
model = "bo"
targets = ["oa/bo-1", "oa/bo-2"]
first_token_timeout_ms = 300
"#,
    );
    // Open bo-2's breaker through its direct name (same target, default policy: 5 failures).
    set_faults(&m, &serde_json::json!({"bo-2": "status=503"}));
    for _ in 0..3 {
        assert_eq!(chat_openai(g.addr, "oa/bo-2", "hi", false).status, 503);
    }
    // bo-1 is slow to its first token. Its only alternative is open, so the deadline does not
    // apply: the stream is served, not dropped for a 504.
    set_faults(
        &m,
        &serde_json::json!({"bo-1": "slow_first_token=800", "bo-2": "status=503"}),
    );
    clear_records(&m);
    let r = chat_openai(g.addr, "bo", "hi", true);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-ringway-model"), Some("bo-1"));
    assert!(r.text().contains("[DONE]"), "{}", r.text());
    assert!(mock_requests(&m).iter().all(|s| s["model"] == "bo-1"));
}

#[test]
fn the_deadline_bounds_reading_an_answer_too() {
    use std::io::Write;
    // A provider that sends its head at once, then one body byte every 200 ms.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let drip = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().take(4) {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                read_one_request(&mut s);
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n",
                );
                for _ in 0..200 {
                    std::thread::sleep(Duration::from_millis(200));
                    if s.write_all(b" ").is_err() {
                        return;
                    }
                }
            });
        }
    });
    let m = mock(&[]);
    let g = gateway_for(
        &m,
        &format!(
            r#"[[provider]]
name = "drip"
kind = "openai"
base_url = "http://{drip}/v1"

[[route]]
model = "d"
targets = ["drip/d-1", "oa/d-2"]
request_timeout_ms = 1000
"#
        ),
    );
    // The deadline fired: a 504 naming it. Without it the drip (40 s, nothing sent to the
    // client meanwhile) outlasts the client's read timeout.
    let r = chat_openai(g.addr, "d", "hi", false);
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("request_timeout_ms"));
}

#[test]
fn responses_fall_back_across_provider_kinds_streamed_or_not() {
    // A Responses client on a route whose first target fails before content: the answer comes
    // from the next target, of the other kind, still as Responses output (a stream primed to
    // its first content event falls back too).
    let m = mock(&[]);
    let g = gateway_for(
        &m,
        r#"[[route]]
model = "rx"
targets = ["oa/rx-1", "an/rx-2"]
"#,
    );
    for (fault, stream) in [
        ("status=503", false),
        ("reset_before_content", true),
        ("error_event", true),
    ] {
        set_faults(&m, &serde_json::json!({"rx-1": fault}));
        let body = format!(r#"{{"model":"rx","input":"hi mock:tokens=2","stream":{stream}}}"#);
        let r = request(g.addr, &post("/v1/responses", &[], &body));
        assert_eq!(r.status, 200, "{fault}: {}", r.text());
        assert_eq!(r.header("x-ringway-model"), Some("rx-2"), "{fault}");
        if stream {
            let text = r.text();
            assert!(
                text.contains("event: response.completed"),
                "{fault}: {text}"
            );
            assert!(!text.contains("response.failed"), "{fault}: {text}");
            assert_eq!(
                text.matches("event: response.created").count(),
                1,
                "{fault}"
            );
        } else {
            assert_eq!(
                r.json()["output"][0]["content"][0]["text"],
                "w1 w2",
                "{fault}"
            );
        }
    }
}

/// A translated body goes with its send and is made again for the next: every retry and the
/// fallback get the whole body, byte for byte the same at each target of a format, at sizes
/// translated on the worker and on a helper thread.
#[test]
fn every_send_of_a_translated_request_gets_the_whole_body() {
    let m = mock(&[]);
    let g = gateway_for(
        &m,
        // Providers of their own whose answer heads may take seconds: a debug mock reading
        // 700 KB on a loaded 2-core CI machine has outrun the shared 400 ms budget.
        &format!(
            r#"[[provider]]
name = "oa-big"
kind = "openai"
base_url = "http://{m}/v1"
first_byte_timeout_ms = 15000

[[provider]]
name = "an-big"
kind = "anthropic"
base_url = "http://{m}"
first_byte_timeout_ms = 15000

[[route]]
model = "tr"
targets = ["oa-big/tr-1", "an-big/tr-2"]
retries = 2
backoff_base_ms = 5
backoff_max_ms = 20
breaker_failures = 0
"#,
            m = m.addr
        ),
    );
    set_faults(&m, &serde_json::json!({"tr-1": "status=503"}));
    for size in [40_000, 700_000] {
        clear_records(&m);
        let text = "tool output line with \"quotes\", é and \\ backslashes\n".repeat(size / 52);
        let body = serde_json::json!({
            "model": "tr",
            "max_tokens": 16,
            "messages": [{"role": "user", "content": text}],
        })
        .to_string();
        let r = request(g.addr, &post("/v1/messages", &[], &body));
        assert_eq!(r.status, 200, "{size}: {}", r.text());
        assert_eq!(r.header("x-ringway-attempts"), Some("4"), "{size}");
        let seen = mock_requests(&m);
        // Each body as recorded (its first 256 KiB) and its whole length.
        let bodies = |model: &str| -> Vec<(String, usize)> {
            seen.iter()
                .filter(|s| s["model"] == model)
                .map(|s| {
                    let len = s["headers"]["content-length"].as_str().unwrap();
                    (s["body"].as_str().unwrap().to_owned(), len.parse().unwrap())
                })
                .collect()
        };
        // The mock records a body's first 256 KiB: the small one is read whole.
        let whole = |(b, len): &(String, usize)| -> Option<Value> {
            let whole = b.len() == *len;
            assert!(whole || size > 256 * 1024, "{size}: {} of {len}", b.len());
            whole.then(|| serde_json::from_str(b).unwrap())
        };
        // Three sends to the OpenAI target (the first and two retries), each the whole
        // translation: the same bytes, the client's text in them.
        let chat = bodies("tr-1");
        assert_eq!(chat.len(), 3, "{size}");
        assert!(chat.iter().all(|b| b == &chat[0]), "{size}");
        assert!(chat[0].1 > size, "{size}: {}", chat[0].1);
        if let Some(sent) = whole(&chat[0]) {
            assert_eq!(sent["messages"][0]["content"], text.as_str(), "{size}");
        }
        // The fallback speaks the client's format: its body as the client sent it, the
        // target's model named in it.
        let messages = bodies("tr-2");
        assert_eq!(messages.len(), 1, "{size}");
        assert_eq!(messages[0].1, body.len() + "-2".len(), "{size}");
        if let Some(fallback) = whole(&messages[0]) {
            assert_eq!(fallback["messages"][0]["content"], text.as_str(), "{size}");
        }
    }
    // Two requests translated, each once however many sends it took.
    let series = "ringway_translated_total{client=\"anthropic\",provider=\"openai\"}";
    assert_eq!(metric(&g, series), 2);
}
