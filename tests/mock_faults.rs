//! The mock provider's per-target fault table over real sockets: `--faults`, `POST/GET
//! /mock/faults`, what each faulted model gets on the wire, and the record and counts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{ErrorKind, Read};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn delete(path: &str) -> Vec<u8> {
    format!("DELETE {path} HTTP/1.1\r\nhost: test\r\ncontent-length: 0\r\n\r\n").into_bytes()
}

fn set_faults(addr: SocketAddr, table: &str) -> Response {
    request(addr, &post("/mock/faults", &[], table))
}

fn faults(addr: SocketAddr) -> Value {
    let r = request(addr, &get("/mock/faults", &[]));
    assert_eq!(r.status, 200);
    r.json()
}

fn counts(addr: SocketAddr) -> Value {
    let r = request(addr, &get("/mock/counts", &[]));
    assert_eq!(r.status, 200);
    r.json()
}

/// Sends `raw` on a fresh connection and reads until EOF, reset or timeout: the bytes and how
/// the reading ended.
fn read_all(addr: SocketAddr, raw: &[u8], timeout: Duration) -> (Vec<u8>, ErrorKind) {
    let mut c = Client::connect(addr);
    c.stream.set_read_timeout(Some(timeout)).unwrap();
    c.send_raw(raw);
    let mut out = Vec::new();
    let mut tmp = [0u8; 16384];
    loop {
        match c.stream.read(&mut tmp) {
            Ok(0) => return (out, ErrorKind::UnexpectedEof),
            Ok(n) => out.extend_from_slice(&tmp[..n]),
            Err(e) => return (out, e.kind()),
        }
    }
}

fn openai(model: &str, prompt: &str, stream: bool) -> Vec<u8> {
    post(
        "/v1/chat/completions",
        &[],
        &openai_body(model, prompt, stream),
    )
}

fn anthropic(model: &str, prompt: &str, stream: bool) -> Vec<u8> {
    post("/v1/messages", &[], &anthropic_body(model, prompt, stream))
}

#[test]
fn per_model_faults_over_the_wire() {
    let m = mock(&["--faults", r#"{"boot":"status=503"}"#]);
    let addr = m.addr;
    assert_eq!(faults(addr), json!({"boot": "status=503"}));
    assert_eq!(
        request(addr, &openai("boot", "hi", false)).status,
        503,
        "the --faults table applies from the start"
    );

    let table = json!({
        "m-reset": "reset",
        "m-429": "status=429,retry_after=2",
        "m-ms": "status=503,retry_after_ms=300",
        "m-garbage": "garbage",
        "m-stall": "stall",
        "m-mid": "reset_midstream",
        "m-before": "reset_before_content",
        "m-err": "error_event",
        "m-slow": "slow_first_token=300",
    });
    let r = set_faults(addr, &table.to_string());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"ok": true}));
    assert_eq!(faults(addr), table);

    // reset: the connection is reset before any byte.
    let (bytes, end) = read_all(addr, &openai("m-reset", "hi", false), READ_TIMEOUT);
    assert!(bytes.is_empty());
    assert_eq!(end, ErrorKind::ConnectionReset);

    // status with retry hints, in each API's error format.
    let r = request(addr, &anthropic("m-429", "hi", true));
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("2"));
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
    let r = request(addr, &openai("m-ms", "hi", false));
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after-ms"), Some("300"));
    assert_eq!(r.header("retry-after"), None);
    assert_eq!(r.json()["error"]["type"], "server_error");

    // garbage: not an HTTP response, then a clean close.
    let (bytes, end) = read_all(addr, &openai("m-garbage", "hi", true), READ_TIMEOUT);
    assert!(bytes.starts_with(b"SSH-"), "{bytes:?}");
    assert_eq!(end, ErrorKind::UnexpectedEof);

    // stall: nothing at all, the connection held open.
    let (bytes, end) = read_all(
        addr,
        &anthropic("m-stall", "hi", false),
        Duration::from_millis(400),
    );
    assert!(bytes.is_empty());
    assert!(
        matches!(end, ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{end:?}"
    );

    // reset_midstream: head, preamble, a first delta, then a reset.
    let (bytes, end) = read_all(addr, &anthropic("m-mid", "hi", true), READ_TIMEOUT);
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("event: message_start"), "{text}");
    assert!(text.contains("event: content_block_delta"), "{text}");
    assert!(!text.contains("message_stop"), "{text}");
    assert_eq!(end, ErrorKind::ConnectionReset, "{text}");
    let (bytes, end) = read_all(addr, &openai("m-mid", "hi", false), READ_TIMEOUT);
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("content-length"),
        "{text}"
    );
    assert_eq!(end, ErrorKind::ConnectionReset, "{text}");

    // reset_before_content: the preamble only.
    let (bytes, end) = read_all(addr, &openai("m-before", "hi", true), READ_TIMEOUT);
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains(r#""role":"assistant""#), "{text}");
    assert!(!text.contains("Hello"), "{text}");
    assert_eq!(end, ErrorKind::ConnectionReset, "{text}");

    // error_event: the provider's in-stream error, then a proper end of body.
    let r = request(addr, &openai("m-err", "hi", true));
    assert_eq!(r.status, 200);
    let events = sse_events(&r.body);
    assert!(
        events.last().unwrap().1.starts_with(r#"{"error":"#),
        "{events:?}"
    );
    let r = request(addr, &anthropic("m-err", "hi", true));
    let events = sse_events(&r.body);
    assert_eq!(events.last().unwrap().0.as_deref(), Some("error"));
    assert_eq!(request(addr, &anthropic("m-err", "hi", false)).status, 529);

    // slow_first_token: the whole answer, late.
    let started = Instant::now();
    let r = request(addr, &anthropic("m-slow", "hi", true));
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(r.status, 200);
    assert_eq!(
        sse_events(&r.body).last().unwrap().0.as_deref(),
        Some("message_stop")
    );

    // Unfaulted models answer normally, and prompt directives still work for them.
    assert_eq!(request(addr, &openai("fine", "hi", false)).status, 200);
    assert_eq!(request(addr, &anthropic("fine", "hi", true)).status, 200);
    assert_eq!(
        request(addr, &anthropic("fine", "mock:status=418", false)).status,
        418
    );

    // The record says what each request got.
    let recorded = mock_requests(&m);
    let find = |model: &str| {
        recorded
            .iter()
            .filter(|e| e["model"] == model)
            .map(|e| e["answered"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(find("m-reset"), [json!("reset")]);
    assert_eq!(find("m-stall"), [json!("stall")]);
    assert_eq!(find("m-garbage"), [json!("garbage")]);
    assert_eq!(find("m-429"), [json!(429)]);
    assert_eq!(find("m-mid"), [json!(200), json!(200)]);
    assert_eq!(find("fine"), [json!(200), json!(200), json!(418)]);
    assert!(recorded.iter().all(|e| e["path"] != "/mock/faults"));

    let c = counts(addr);
    assert_eq!(c["boot"], json!({"requests": 1, "503": 1}));
    assert_eq!(c["m-reset"], json!({"requests": 1, "reset": 1}));
    assert_eq!(c["m-err"], json!({"requests": 3, "200": 2, "529": 1}));
    assert_eq!(c["fine"], json!({"requests": 3, "200": 2, "418": 1}));

    // A bad table is refused, naming the entry, and leaves the old one.
    let r = set_faults(addr, r#"{"m-reset":"none","oops":"explode"}"#);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["entry"], "oops");
    assert!(r.text().contains("explode"), "{}", r.text());
    let r = set_faults(addr, r#"["reset"]"#);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["entry"], Value::Null);
    assert_eq!(faults(addr), table);

    // DELETE clears the record and the counts.
    let r = request(addr, &delete("/mock/requests"));
    assert_eq!(r.status, 200);
    assert!(mock_requests(&m).is_empty());
    assert_eq!(counts(addr), json!({}));

    // "*" covers every model without its own entry; `{}` clears the table.
    let r = set_faults(addr, r#"{"*":"status=500","fine":"none"}"#);
    assert_eq!(r.status, 200);
    assert_eq!(request(addr, &openai("other", "hi", false)).status, 500);
    assert_eq!(request(addr, &openai("fine", "hi", false)).status, 200);
    assert_eq!(request(addr, &get("/mock/counts", &[])).status, 200);
    assert_eq!(set_faults(addr, "{}").status, 200);
    assert_eq!(faults(addr), json!({}));
    assert_eq!(request(addr, &openai("other", "hi", false)).status, 200);
    assert_eq!(
        counts(addr),
        json!({"fine": {"requests": 1, "200": 1}, "other": {"requests": 2, "500": 1, "200": 1}})
    );
}

#[test]
fn a_bad_faults_flag_stops_the_mock() {
    let out = std::process::Command::new(bin())
        .args(["mock-upstream", "--listen", "127.0.0.1:0", "--faults"])
        .arg(r#"{"m":"boom"}"#)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--faults") && err.contains("boom"), "{err}");
}
