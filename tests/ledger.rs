//! The translation ledger through the real binary: what a translation drops is in the
//! dropped-params header, the `ringway_translation_ledger_total` counter by route and code and
//! the custody record (lookup and SQLite column); `strict_translation` on a route or a key
//! refuses a lossy translation with a 400 in the client's format naming the field, before the
//! provider gets anything, and lets a lossless one (or the next target) through.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const KEY: &str = "sk-ledger-plain-11";
const KEY_STRICT: &str = "sk-ledger-strict-22";
const KEY_ADMIN: &str = "sk-ledger-admin-33";

fn gateway(m: &Proc, db: &std::path::Path) -> Proc {
    let toml = format!(
        r#"
[access_log]
enabled = false

[custody]
path = "{}"

{}
[[route]]
model = "gpt-strict"
targets = ["mo/mock-gpt-up"]
strict_translation = true

# Strict, with a first target that needs a lossy translation and a second that needs none.
[[route]]
model = "strict-fallback"
targets = ["mo/mock-gpt-up", "ma/mock-claude-up"]
strict_translation = true

[[key]]
name = "plain"
key_env = "RW_TEST_LEDGER_PLAIN"

[[key]]
name = "strict"
key_env = "RW_TEST_LEDGER_STRICT"
strict_translation = true

[[key]]
name = "ops"
key_env = "RW_TEST_LEDGER_ADMIN"
admin = true
"#,
        db.display(),
        standard_providers(m)
    );
    let mut env = PROVIDER_KEYS.to_vec();
    env.extend_from_slice(&[
        ("RW_TEST_LEDGER_PLAIN", KEY),
        ("RW_TEST_LEDGER_STRICT", KEY_STRICT),
        ("RW_TEST_LEDGER_ADMIN", KEY_ADMIN),
    ]);
    gateway_env(&toml, &env)
}

/// An Anthropic-SDK call with `top_k`, which an OpenAI-kind provider has no equivalent for.
fn messages(g: &Proc, key: &str, body: &Value) -> Response {
    request(
        g.addr,
        &post(
            "/v1/messages",
            &[("x-api-key", key), ("anthropic-version", "2023-06-01")],
            &body.to_string(),
        ),
    )
}

fn with_top_k(model: &str) -> Value {
    json!({
        "model": model,
        "max_tokens": 32,
        "top_k": 5,
        "messages": [{"role": "user", "content": "ledger please"}],
    })
}

fn record(g: &Proc, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = request(
            g.addr,
            &get(
                &format!("/v1/custody/{id}"),
                &[("authorization", &format!("Bearer {KEY_ADMIN}"))],
            ),
        );
        if r.status == 200 {
            return r.json();
        }
        assert_eq!(r.status, 404, "{}", r.text());
        assert!(Instant::now() < deadline, "no record for {id}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `/metrics` once it has `series` (workers publish their counters every few milliseconds, so
/// a scrape right after a request may not have it yet), within five seconds.
fn scrape(g: &Proc, series: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = request(
            g.addr,
            &get(
                "/metrics",
                &[("authorization", &format!("Bearer {KEY_ADMIN}"))],
            ),
        );
        assert_eq!(r.status, 200);
        let text = r.text();
        if metric(&text, series).is_some() || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn a_dropped_param_is_in_the_header_the_metric_and_the_custody_record() {
    let db = temp_path("ledger-record.db");
    let m = mock(&[]);
    let g = gateway(&m, &db);
    let r = messages(&g, KEY, &with_top_k("gpt"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-ringway-dropped-params"), Some("top_k"));
    let id = r.header("x-ringway-request-id").unwrap().to_owned();

    let rec = record(&g, &id);
    assert_eq!(
        rec["ledger"],
        json!([{"code": "param_dropped", "field": "top_k", "lossy": true}]),
        "{rec}"
    );
    // The column holds it too, for queries over many records.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let column: String = conn
        .query_row("SELECT ledger FROM custody WHERE id = ?1", [&id], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(column, "param_dropped:top_k");

    let series = r#"ringway_translation_ledger_total{route="gpt",code="param_dropped"}"#;
    let text = scrape(&g, series);
    assert_eq!(metric(&text, series), Some(1.0), "{text}");
    // Same-dialect traffic has an empty ledger and no header.
    let r = messages(&g, KEY, &with_top_k("claude"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-ringway-dropped-params"), None);
    let rec = record(&g, r.header("x-ringway-request-id").unwrap());
    assert_eq!(rec["ledger"], json!([]));
}

#[test]
fn a_strict_route_or_key_refuses_a_lossy_translation_before_sending_it() {
    let db = temp_path("ledger-strict.db");
    let m = mock(&[]);
    let g = gateway(&m, &db);
    clear_records(&m);

    // The route is strict: an Anthropic client gets its own error format, naming the field.
    let r = messages(&g, KEY, &with_top_k("gpt-strict"));
    assert_eq!(r.status, 400, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("top_k") && message.contains("param_dropped"),
        "{message}"
    );
    // The key is strict, the route is not: the same refusal.
    let r = messages(&g, KEY_STRICT, &with_top_k("gpt"));
    assert_eq!(r.status, 400, "{}", r.text());
    let id = r.header("x-ringway-request-id").unwrap().to_owned();
    // An OpenAI client gets `param` and `code`.
    let r = request(
        g.addr,
        &post(
            "/v1/chat/completions",
            &[("authorization", &format!("Bearer {KEY_STRICT}"))],
            r#"{"model":"claude","seed":7,"messages":[{"role":"user","content":"x"}]}"#,
        ),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["param"], "seed", "{v}");
    assert_eq!(v["error"]["code"], "lossy_translation", "{v}");
    assert!(
        mock_requests(&m).is_empty(),
        "a refused request reached the provider"
    );

    // The refusal's record says what would have been lost.
    let rec = record(&g, &id);
    assert_eq!(rec["status"], 400);
    assert_eq!(rec["ledger"][0]["field"], "top_k", "{rec}");

    // Lossless: a long tool name is shortened and mapped back, which strict lets through.
    let long = "t".repeat(80);
    let body = json!({
        "model": "gpt",
        "max_tokens": 32,
        "tools": [{"name": long, "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": "x"}],
    });
    let r = messages(&g, KEY_STRICT, &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-ringway-dropped-params"), None);
    let rec = record(&g, r.header("x-ringway-request-id").unwrap());
    assert_eq!(
        rec["ledger"],
        json!([{"code": "tool_name_shortened", "field": "tools[0].name", "lossy": false}]),
        "{rec}"
    );
    assert_eq!(mock_requests(&m).len(), 1);

    // A strict route whose first target would lose `top_k` goes to the next one, which
    // takes the request as it is.
    clear_records(&m);
    let r = messages(&g, KEY, &with_top_k("strict-fallback"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-ringway-provider"), Some("ma"));
    let sent = mock_requests(&m);
    assert_eq!(sent.len(), 1, "only the lossless target was sent anything");
    let series = r#"ringway_translation_ledger_total{route="gpt-strict",code="param_dropped"}"#;
    let text = scrape(&g, series);
    assert!(
        metric(&text, series).is_some(),
        "refusals are counted too: {text}"
    );
}

#[test]
fn a_strict_translation_that_is_not_a_boolean_is_refused_with_its_line_and_path() {
    let route = r#"
[[provider]]
name = "mo"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"

[[route]]
model = "gpt"
targets = ["mo/x"]
strict_translation = "yes"
"#;
    check_refuses(
        route,
        ":10: route[0].strict_translation",
        "expected true or false",
    );
    let key = r#"
[[key]]
name = "k"
sha256 = "f2d4b279b82ad92867af5878fe7482caebdd7b75499868d0362a6e63ff51f046"
strict_translation = 1
"#;
    check_refuses(
        key,
        ":5: key[0].strict_translation",
        "expected true or false",
    );
}
