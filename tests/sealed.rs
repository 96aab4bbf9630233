//! Items the gateway seals for a client (compaction summaries, reasoning, restored thinking
//! signatures) through the real binary: what comes out of a seal passes PII substitution like
//! the rest of the request, and a sealed item opens only for the gateway key that made it.
//!
//! The provider is a small scripted upstream in this file (the mock provider speaks neither
//! native Responses nor writes a summary of its own): it records every body it receives and
//! answers from it, so a test reads exactly what went upstream.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const ORIGINAL: &str = "jane.doe@corp.example.io";
const PREAMBLE: &str = "Summary of it:\n\n";
const SEAL_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const KEY_A: &str = "rw-test-key-a";
const KEY_B: &str = "rw-test-key-b";

/// What the scripted upstream received: `(path, body)`, in order.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// Every string in `v`, depth first.
fn strings<'v>(v: &'v Value, out: &mut Vec<&'v str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// The text of the last user turn of a Chat or Messages body.
fn last_user_text(body: &Value) -> String {
    let Some(turns) = body["messages"].as_array() else {
        return String::new();
    };
    let Some(turn) = turns.iter().rev().find(|t| t["role"] == "user") else {
        return String::new();
    };
    let mut out = Vec::new();
    strings(&turn["content"], &mut out);
    out.into_iter()
        .filter(|s| *s != "text")
        .collect::<Vec<_>>()
        .join(" ")
}

/// The answer text: a summary when asked for one (naming the address it read, as a model
/// does: the stand-in when PII was on), else the opened summary echoed back (so the client
/// reads its restore), else `ok`.
fn answer_text(body: &Value) -> String {
    let mut all = Vec::new();
    strings(body, &mut all);
    if let Some(s) = all.iter().find_map(|s| s.split_once(PREAMBLE)) {
        return format!("ECHO {}", s.1);
    }
    if all.iter().any(|s| s.contains("Summarise the conversation")) {
        let address = all
            .iter()
            .find_map(|s| s.split_once("my address is "))
            .map_or("", |(_, a)| a);
        return format!("The user's address is {address} and they want the report.");
    }
    "ok".to_owned()
}

/// The provider's answer to `body` at `path`, in its dialect.
fn answer(path: &str, body: &Value) -> String {
    let text = answer_text(body);
    if path.ends_with("/chat/completions") {
        json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "up",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}})
        .to_string()
    } else if path.ends_with("/v1/messages") {
        let mut content = Vec::new();
        if body.get("thinking").is_some() {
            // A model's reasoning repeats what it read: the stand-ins when PII was on.
            content.push(json!({"type": "thinking",
                "thinking": format!("I read: {}", last_user_text(body)), "signature": "c2ln"}));
        }
        content.push(json!({"type": "text", "text": text}));
        json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "up",
            "content": content, "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 5, "output_tokens": 5}})
        .to_string()
    } else {
        json!({"id": "resp_up", "object": "response", "created_at": 1, "status": "completed",
            "model": "up", "output": [{"type": "message", "id": "msg_1", "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}]}],
            "usage": {"input_tokens": 5, "output_tokens": 5, "total_tokens": 10}})
        .to_string()
    }
}

/// Serves one connection's requests (keep-alive) until it closes.
fn serve(mut s: TcpStream, seen: Seen) {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = Vec::new();
    let mut tmp = [0u8; 16 * 1024];
    loop {
        let (head, len) = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..i]).into_owned();
                let len: usize = head
                    .to_ascii_lowercase()
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:").map(str::trim))
                    .map_or(0, |v| v.parse().unwrap());
                if buf.len() >= i + 4 + len {
                    buf.drain(..i + 4);
                    break (head, len);
                }
            }
            match s.read(&mut tmp) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        };
        let body: Vec<u8> = buf.drain(..len).collect();
        let path = head.split(' ').nth(1).unwrap_or("").to_owned();
        let text = String::from_utf8(body).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        seen.lock().unwrap().push((path.clone(), text));
        let out = answer(&path, &v);
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{out}",
            out.len()
        );
        if s.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// The scripted upstream: its address and what it received.
fn upstream() -> (SocketAddr, Seen) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let record = seen.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let record = record.clone();
            std::thread::spawn(move || serve(s, record));
        }
    });
    (addr, seen)
}

fn last_sent(seen: &Seen) -> String {
    seen.lock().unwrap().last().unwrap().1.clone()
}

/// Providers on the scripted upstream (chat, anthropic, native Responses), a route without
/// PII and one with it for each, and the keys in `keys`.
fn gateway_on(up: SocketAddr, keys: &str) -> Proc {
    let cfg = format!(
        r#"
[responses]
seal_key_env = "RW_TEST_SEAL_KEY"

[pii]
routes = ["pii-chat", "pii-ant", "pii-native"]

{keys}

[[provider]]
name = "uc"
kind = "openai"
base_url = "http://{up}/v1"

[[provider]]
name = "ua"
kind = "anthropic"
base_url = "http://{up}"

[[provider]]
name = "un"
kind = "openai"
base_url = "http://{up}/v1"
responses = "native"

[[route]]
model = "plain-chat"
targets = ["uc/up"]

[[route]]
model = "plain-ant"
targets = ["ua/claude-sonnet-4-5"]

[[route]]
model = "plain-native"
targets = ["un/up"]

[[route]]
model = "pii-chat"
targets = ["uc/up"]

[[route]]
model = "pii-ant"
targets = ["ua/claude-sonnet-4-5"]

[[route]]
model = "pii-native"
targets = ["un/up"]
"#
    );
    gateway_env(
        &cfg,
        &[
            ("RW_TEST_SEAL_KEY", SEAL_KEY),
            ("RW_TEST_KEY_A", KEY_A),
            ("RW_TEST_KEY_B", KEY_B),
        ],
    )
}

fn call(g: &Proc, key: &str, path: &str, body: &Value) -> Response {
    let auth = format!("Bearer {key}");
    request(
        g.addr,
        &post(path, &[("authorization", &auth)], &body.to_string()),
    )
}

/// A compaction item made on `model` (no PII there) from a conversation naming [`ORIGINAL`].
fn compaction(g: &Proc, key: &str, model: &str) -> Value {
    let body = json!({"model": model,
        "input": [{"role": "user", "content": format!("my address is {ORIGINAL}")}]});
    let r = call(g, key, "/v1/responses/compact", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let item = r.json()["output"][0].clone();
    assert_eq!(item["type"], "compaction", "{item}");
    assert!(!item.to_string().contains(ORIGINAL));
    item
}

/// The output of a turn on `model` that asks for sealed reasoning.
fn reasoning_turn(g: &Proc, key: &str, model: &str, input: &Value) -> Vec<Value> {
    let body = json!({"model": model, "input": input, "reasoning": {"effort": "low"},
        "include": ["reasoning.encrypted_content"]});
    let r = call(g, key, "/v1/responses", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let output = r.json()["output"].as_array().unwrap().clone();
    assert_eq!(output[0]["type"], "reasoning", "{output:?}");
    assert!(output[0]["encrypted_content"]
        .as_str()
        .unwrap()
        .starts_with("rw1."));
    output
}

fn keys(a_pii: bool) -> String {
    format!(
        "[[key]]\nname = \"a\"\nkey_env = \"RW_TEST_KEY_A\"\npii = {a_pii}\n\n\
         [[key]]\nname = \"b\"\nkey_env = \"RW_TEST_KEY_B\"\n"
    )
}

/// A summary compacted where PII was off goes upstream substituted on a PII route (native
/// Responses, Chat and Messages providers alike), on a key turned to `pii = true` since, and
/// with the request flag; the answer's restore still finds its stand-ins.
#[test]
fn a_summary_compacted_without_pii_is_substituted_where_pii_is_on() {
    let (up, seen) = upstream();
    let g = gateway_on(up, &keys(false));
    let item = compaction(&g, KEY_A, "plain-chat");
    assert!(
        last_sent(&seen).contains(ORIGINAL),
        "no PII where it was made"
    );
    let next = |model: &str, flag: bool| {
        let mut body = json!({"model": model,
            "input": [item.clone(), {"role": "user", "content": "go on"}]});
        if flag {
            body["pii_substitution"] = json!(true);
        }
        body
    };
    let check = |g: &Proc, body: Value, case: &str| {
        let r = call(g, KEY_A, "/v1/responses", &body);
        assert_eq!(r.status, 200, "{case}: {}", r.text());
        let sent = last_sent(&seen);
        assert!(sent.contains("Summary of it"), "{case}: opened: {sent}");
        assert!(
            !sent.contains(ORIGINAL),
            "{case}: original upstream: {sent}"
        );
        // The provider echoed the stand-in: restored for the client.
        assert!(r.text().contains(ORIGINAL), "{case}: {}", r.text());
    };
    for model in ["pii-native", "pii-chat", "pii-ant"] {
        check(&g, next(model, false), model);
    }
    check(&g, next("plain-ant", true), "request flag");
    // Without PII the summary goes as it was written.
    let r = call(&g, KEY_A, "/v1/responses", &next("plain-native", false));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(last_sent(&seen).contains(ORIGINAL));
    // The key itself turned to `pii = true` (same seal key, same key secret).
    drop(g);
    let g = gateway_on(up, &keys(true));
    for model in ["plain-native", "plain-chat"] {
        check(&g, next(model, false), &format!("key policy, {model}"));
    }
}

/// A summary compacted where PII was on names the stand-ins the provider read; it is sealed
/// restored, so on the next PII turn it is substituted with the same stand-ins as before and
/// the answer's restore finds them (the client never reads a stand-in).
#[test]
fn a_summary_compacted_with_pii_goes_back_with_the_same_stand_ins() {
    let (up, seen) = upstream();
    let g = gateway_on(up, &keys(false));
    let item = compaction(&g, KEY_A, "pii-chat");
    let asked = last_sent(&seen);
    assert!(!asked.contains(ORIGINAL), "{asked}");
    let v: Value = serde_json::from_str(&asked).unwrap();
    let mut all = Vec::new();
    strings(&v, &mut all);
    let stand_in = all
        .iter()
        .find_map(|s| s.split_once("my address is "))
        .unwrap()
        .1
        .to_owned();
    for model in ["pii-native", "pii-ant"] {
        let body = json!({"model": model,
            "input": [item.clone(), {"role": "user", "content": "go on"}]});
        let r = call(&g, KEY_A, "/v1/responses", &body);
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        let sent = last_sent(&seen);
        assert!(!sent.contains(ORIGINAL), "{model}: {sent}");
        assert!(
            sent.contains(&format!("address is {stand_in} and")),
            "{model}: {stand_in} in {sent}"
        );
        let text = r.text();
        assert!(
            text.contains(&format!("address is {ORIGINAL} and")),
            "{model}: {text}"
        );
        assert!(!text.contains(&stand_in), "{model}: {text}");
    }
}

/// Reasoning sealed from a turn where PII was off may hold originals in signed thinking,
/// which cannot be substituted: on a PII route it is dropped and listed. Reasoning sealed
/// from a substituted turn holds stand-ins only and goes back as signed.
#[test]
fn reasoning_written_from_originals_does_not_reach_a_pii_route() {
    let (up, seen) = upstream();
    let g = gateway_on(up, &keys(false));
    let question = json!([{"role": "user", "content": format!("mail {ORIGINAL}")}]);
    let output = reasoning_turn(&g, KEY_A, "plain-ant", &question);
    assert!(last_sent(&seen).contains(ORIGINAL));
    let mut input = question.as_array().unwrap().clone();
    input.extend(output);
    input.push(json!({"role": "user", "content": "again"}));
    let body = json!({"model": "pii-ant", "input": input, "reasoning": {"effort": "low"}});
    let r = call(&g, KEY_A, "/v1/responses", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = last_sent(&seen);
    assert!(!sent.contains(ORIGINAL), "original upstream: {sent}");
    assert!(!sent.contains("\"type\":\"thinking\""), "{sent}");
    assert_eq!(
        r.header("x-ringway-dropped-params"),
        Some("input.reasoning")
    );

    // Made on the PII route: its thinking read stand-ins, and it goes back as signed.
    let output = reasoning_turn(&g, KEY_A, "pii-ant", &question);
    let mut input = question.as_array().unwrap().clone();
    input.extend(output);
    input.push(json!({"role": "user", "content": "again"}));
    let body = json!({"model": "pii-ant", "input": input, "reasoning": {"effort": "low"}});
    let r = call(&g, KEY_A, "/v1/responses", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = last_sent(&seen);
    assert!(!sent.contains(ORIGINAL), "original upstream: {sent}");
    assert!(sent.contains("\"type\":\"thinking\""), "{sent}");
    assert!(sent.contains("I read: mail "), "{sent}");
    assert_eq!(r.header("x-ringway-dropped-params"), None);
}

/// `s` with one base64url character in its middle changed.
fn forge(s: &str) -> String {
    let mut b = s.as_bytes().to_vec();
    let i = b.len() / 2;
    b[i] = if b[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(b).unwrap()
}

/// Key A's compaction item, sent by key B, gets exactly what a forged one gets (the same
/// 400, on every route kind, nothing upstream); A goes on with it.
#[test]
fn a_compaction_item_opens_only_for_the_key_that_made_it() {
    let (up, seen) = upstream();
    let g = gateway_on(up, &keys(false));
    let item = compaction(&g, KEY_A, "plain-chat");
    let mut forged = item.clone();
    forged["encrypted_content"] = json!(forge(item["encrypted_content"].as_str().unwrap()));
    for model in ["plain-native", "plain-chat", "plain-ant", "pii-ant"] {
        let body = |item: &Value| json!({"model": model, "input": [item, {"role": "user", "content": "go on"}]});
        let r = call(&g, KEY_A, "/v1/responses", &body(&item));
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        assert!(last_sent(&seen).contains("Summary of it"), "{model}");
        let before = seen.lock().unwrap().len();
        let by_b = call(&g, KEY_B, "/v1/responses", &body(&item));
        let forged_by_b = call(&g, KEY_B, "/v1/responses", &body(&forged));
        let forged_by_a = call(&g, KEY_A, "/v1/responses", &body(&forged));
        assert_eq!(by_b.status, 400, "{model}: {}", by_b.text());
        assert_eq!(
            by_b.json()["error"]["param"],
            "input[0].encrypted_content",
            "{model}"
        );
        for other in [&forged_by_b, &forged_by_a] {
            assert_eq!(
                (other.status, other.text()),
                (by_b.status, by_b.text()),
                "{model}"
            );
        }
        assert_eq!(
            seen.lock().unwrap().len(),
            before,
            "{model}: nothing upstream"
        );
    }
}

/// Key A's reasoning item goes back to the provider as signed for A; sent by key B it is
/// dropped and listed, exactly as a forged one is.
#[test]
fn a_reasoning_item_opens_only_for_the_key_that_made_it() {
    let (up, seen) = upstream();
    let g = gateway_on(up, &keys(false));
    let question = json!([{"role": "user", "content": "think"}]);
    let output = reasoning_turn(&g, KEY_A, "plain-ant", &question);
    let turn = |reasoning: &Value| {
        let mut input = question.as_array().unwrap().clone();
        input.push(reasoning.clone());
        input.extend(output[1..].iter().cloned());
        input.push(json!({"role": "user", "content": "again"}));
        json!({"model": "plain-ant", "input": input, "reasoning": {"effort": "low"}})
    };
    let mut forged = output[0].clone();
    forged["encrypted_content"] = json!(forge(output[0]["encrypted_content"].as_str().unwrap()));
    let r = call(&g, KEY_A, "/v1/responses", &turn(&output[0]));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(last_sent(&seen).contains("\"type\":\"thinking\""));
    assert_eq!(r.header("x-ringway-dropped-params"), None);
    for (key, item, case) in [
        (KEY_B, &output[0], "B"),
        (KEY_B, &forged, "forged by B"),
        (KEY_A, &forged, "forged by A"),
    ] {
        let r = call(&g, key, "/v1/responses", &turn(item));
        assert_eq!(r.status, 200, "{case}: {}", r.text());
        assert_eq!(
            r.header("x-ringway-dropped-params"),
            Some("input.reasoning"),
            "{case}"
        );
        let sent = last_sent(&seen);
        assert!(!sent.contains("\"type\":\"thinking\""), "{case}: {sent}");
    }
}

/// A thinking block whose signature PII restore sealed (an Anthropic client, PII on) goes back
/// as signed for key A; key B gets exactly the 400 a forged signature gets.
#[test]
fn a_restored_thinking_signature_opens_only_for_the_key_that_made_it() {
    let (up, seen) = upstream();
    let g = gateway_on(up, &keys(false));
    let ask = json!({"model": "pii-ant", "max_tokens": 2048,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": [{"role": "user", "content": format!("mail {ORIGINAL}")}]});
    let r = call(&g, KEY_A, "/v1/messages", &ask);
    assert_eq!(r.status, 200, "{}", r.text());
    let block = r.json()["content"][0].clone();
    assert_eq!(
        block["thinking"],
        format!("I read: mail {ORIGINAL}"),
        "restored"
    );
    let signature = block["signature"].as_str().unwrap().to_owned();
    assert!(signature.starts_with("rw1."), "{block}");
    let back = |block: &Value| {
        let mut body = ask.clone();
        body["messages"] = json!([ask["messages"][0], {"role": "assistant", "content": [block,
            {"type": "text", "text": "ok"}]}, {"role": "user", "content": "again"}]);
        body
    };
    let r = call(&g, KEY_A, "/v1/messages", &back(&block));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(last_sent(&seen).contains("\"signature\":\"c2ln\""));
    let mut forged = block.clone();
    forged["signature"] = json!(forge(&signature));
    let by_b = call(&g, KEY_B, "/v1/messages", &back(&block));
    assert_eq!(by_b.status, 400, "{}", by_b.text());
    for other in [
        call(&g, KEY_B, "/v1/messages", &back(&forged)),
        call(&g, KEY_A, "/v1/messages", &back(&forged)),
    ] {
        assert_eq!((other.status, other.text()), (by_b.status, by_b.text()));
    }
}
