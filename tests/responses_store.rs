//! Stored responses through the real binary: `previous_response_id` and `item_reference`
//! expanded into the whole input whichever provider kind serves, `GET`/`DELETE
//! /v1/responses/{id}` and `GET /v1/responses/{id}/input_items`, one key's responses hidden
//! from another, and `store: false` keeping nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{json, Value};

const KEY_A: &str = "sk-store-key-a";
const KEY_B: &str = "sk-store-key-b";

/// Mock + gateway with two keys (`b` may not store) and the standard routes.
fn setup_keys(extra: &str) -> (Proc, Proc) {
    let m = mock(&[]);
    let g = gateway_env(
        &format!(
            r#"
[[key]]
name = "a"
key_env = "RW_STORE_KEY_A"

[[key]]
name = "b"
key_env = "RW_STORE_KEY_B"
{extra}
{}"#,
            standard_providers(&m)
        ),
        &[
            ("RW_TEST_OPENAI_KEY", "sk-provider-openai"),
            ("RW_TEST_ANTHROPIC_KEY", "sk-provider-anthropic"),
            ("RW_STORE_KEY_A", KEY_A),
            ("RW_STORE_KEY_B", KEY_B),
        ],
    );
    (m, g)
}

fn auth(key: &str) -> String {
    format!("Bearer {key}")
}

fn create(g: &Proc, key: &str, body: &Value) -> Response {
    let a = auth(key);
    request(
        g.addr,
        &post("/v1/responses", &[("authorization", &a)], &body.to_string()),
    )
}

fn call(g: &Proc, key: &str, method: &str, path: &str) -> Response {
    let raw = format!(
        "{method} {path} HTTP/1.1\r\nhost: x\r\nauthorization: {}\r\ncontent-length: 0\r\n\r\n",
        auth(key)
    );
    request(g.addr, raw.as_bytes())
}

/// The response object of a stream's terminal event.
fn streamed_response(r: &Response) -> Value {
    let events = sse_events(&r.body);
    let (_, data) = events
        .iter()
        .find(|(e, _)| e.as_deref() == Some("response.completed"))
        .unwrap_or_else(|| panic!("no response.completed: {}", r.text()));
    serde_json::from_str::<Value>(data).unwrap()["response"].clone()
}

/// Every string in the last request the mock received for `model`.
fn last_upstream_body(m: &Proc, model: &str) -> String {
    let all = mock_requests(m);
    let last = all
        .iter()
        .rev()
        .find(|r| r["model"] == model)
        .unwrap_or_else(|| panic!("no request for {model}: {all:?}"));
    last["body"].to_string()
}

#[test]
fn a_conversation_continues_by_previous_response_id_on_both_provider_kinds() {
    let (m, g) = setup_keys("");
    for (model, upstream, stream) in [
        ("gpt", "mock-gpt-up", false),
        ("claude", "mock-claude-up", true),
        ("gpt", "mock-gpt-up", true),
        ("claude", "mock-claude-up", false),
    ] {
        let r = create(
            &g,
            KEY_A,
            &json!({"model": model, "stream": stream, "instructions": "be brief",
                    "input": "first-turn-apple mock:tokens=3"}),
        );
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        let first = if stream {
            streamed_response(&r)
        } else {
            r.json()
        };
        let id = first["id"].as_str().unwrap().to_owned();
        let answer = first["output"][0]["content"][0]["text"]
            .as_str()
            .unwrap()
            .to_owned();
        // The second turn sends only its own input; the provider gets the whole conversation.
        let r = create(
            &g,
            KEY_A,
            &json!({"model": model, "stream": stream, "previous_response_id": id,
                    "input": [{"role": "user", "content": "second-turn-pear"}]}),
        );
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        let sent = last_upstream_body(&m, upstream);
        let apple = sent
            .find("first-turn-apple")
            .unwrap_or_else(|| panic!("{sent}"));
        let said = sent.find(&answer).unwrap_or_else(|| panic!("{sent}"));
        let pear = sent
            .find("second-turn-pear")
            .unwrap_or_else(|| panic!("{sent}"));
        assert!(apple < said && said < pear, "{model}: {sent}");
        assert!(!sent.contains("previous_response_id"), "{sent}");
        let second = if stream {
            streamed_response(&r)
        } else {
            r.json()
        };
        // A third turn continues the second: the whole chain comes back.
        let r = create(
            &g,
            KEY_A,
            &json!({"model": model, "previous_response_id": second["id"],
                    "input": "third-turn-plum"}),
        );
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        let sent = last_upstream_body(&m, upstream);
        for word in ["first-turn-apple", "second-turn-pear", "third-turn-plum"] {
            assert!(sent.contains(word), "{model} {word}: {sent}");
        }
    }
}

#[test]
fn retrieve_input_items_and_delete_and_other_keys_get_404() {
    let (_m, g) = setup_keys("");
    let r = create(
        &g,
        KEY_A,
        &json!({"model": "gpt", "input": [
            {"role": "user", "content": "one mock:tokens=2"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "two"}]}]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let made = r.json();
    let id = made["id"].as_str().unwrap();

    let got = call(&g, KEY_A, "GET", &format!("/v1/responses/{id}"));
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json(), made);

    let items = call(&g, KEY_A, "GET", &format!("/v1/responses/{id}/input_items"));
    assert_eq!(items.status, 200, "{}", items.text());
    let list = items.json();
    assert_eq!(list["object"], "list");
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 2, "{list}");
    // Newest first by default.
    assert_eq!(data[0]["content"][0]["text"], "two", "{list}");
    let asc = call(
        &g,
        KEY_A,
        "GET",
        &format!("/v1/responses/{id}/input_items?order=asc&limit=1"),
    )
    .json();
    assert_eq!(asc["data"].as_array().unwrap().len(), 1, "{asc}");
    assert_eq!(asc["has_more"], true, "{asc}");
    let bad = call(
        &g,
        KEY_A,
        "GET",
        &format!("/v1/responses/{id}/input_items?limit=0"),
    );
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert_eq!(bad.json()["error"]["param"], "limit");

    // Another key: the same 404 as an id never stored, for every endpoint.
    let message = |id: &str| format!("Response with id '{id}' not found.");
    for (method, path) in [
        ("GET", format!("/v1/responses/{id}")),
        ("GET", format!("/v1/responses/{id}/input_items")),
        ("DELETE", format!("/v1/responses/{id}")),
    ] {
        let r = call(&g, KEY_B, method, &path);
        assert_eq!(r.status, 404, "{method} {path}: {}", r.text());
        assert_eq!(r.json()["error"]["message"], message(id));
        assert_eq!(r.json()["error"]["type"], "invalid_request_error");
        // OpenAI's own 404 for a response id carries no code.
        assert!(r.json()["error"]["code"].is_null(), "{}", r.text());
    }
    let r = call(&g, KEY_A, "GET", "/v1/responses/resp_never");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["message"], message("resp_never"));
    // Another key cannot continue it either.
    let r = create(
        &g,
        KEY_B,
        &json!({"model": "gpt", "previous_response_id": id, "input": "x"}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "previous_response_not_found");

    // Without a key, the endpoints are refused like a model call.
    let raw = format!("GET /v1/responses/{id} HTTP/1.1\r\nhost: x\r\n\r\n");
    assert_eq!(request(g.addr, raw.as_bytes()).status, 401);
    // Another method.
    let r = call(&g, KEY_A, "POST", &format!("/v1/responses/{id}"));
    assert_eq!(r.status, 405, "{}", r.text());

    let metrics = call(&g, KEY_A, "GET", "/metrics").text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ringway_responses_stored_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );
    let del = call(&g, KEY_A, "DELETE", &format!("/v1/responses/{id}"));
    assert_eq!(del.status, 200, "{}", del.text());
    assert_eq!(
        del.json(),
        json!({"id": id, "object": "response.deleted", "deleted": true})
    );
    assert_eq!(
        call(&g, KEY_A, "GET", &format!("/v1/responses/{id}")).status,
        404
    );
    assert_eq!(
        call(&g, KEY_A, "DELETE", &format!("/v1/responses/{id}")).status,
        404
    );
}

#[test]
fn item_references_to_our_items_are_replaced_by_the_items() {
    let (m, g) = setup_keys("");
    for (model, upstream) in [("gpt", "mock-gpt-up"), ("claude", "mock-claude-up")] {
        let r = create(
            &g,
            KEY_A,
            &json!({"model": model, "input": [
                {"type": "message", "id": "msg_client_1", "role": "user",
                 "content": [{"type": "input_text", "text": "referenced-kiwi mock:tokens=2"}]}]}),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let made = r.json();
        let out_id = made["output"][0]["id"].as_str().unwrap().to_owned();
        let answer = made["output"][0]["content"][0]["text"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = create(
            &g,
            KEY_A,
            &json!({"model": model, "input": [
                {"type": "item_reference", "id": "msg_client_1"},
                {"type": "item_reference", "id": out_id},
                {"role": "user", "content": "then-mango"}]}),
        );
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        let sent = last_upstream_body(&m, upstream);
        assert!(sent.contains("referenced-kiwi"), "{sent}");
        assert!(sent.contains(&answer), "{sent}");
        assert!(sent.contains("then-mango"), "{sent}");
        assert!(!sent.contains("item_reference"), "{sent}");

        // An id that is not ours (or another key's) is a 400 naming the item.
        for (key, id) in [(KEY_A, "msg_not_ours"), (KEY_B, "msg_client_1")] {
            let r = create(
                &g,
                key,
                &json!({"model": model, "input": [{"type": "item_reference", "id": id}]}),
            );
            assert_eq!(r.status, 400, "{}", r.text());
            assert_eq!(r.json()["error"]["param"], "input[0]");
            assert!(r.text().contains(id), "{}", r.text());
        }
    }
}

/// A stored answer says so (`store: true`) and names the response it continued, as the API's
/// do, though admission took `store` and `previous_response_id` out before translation; one
/// with `store: false` says false. Streamed or not, and as `GET /v1/responses/{id}` gives it.
#[test]
fn the_response_object_says_it_is_stored_and_what_it_continued() {
    let (_m, g) = setup_keys("");
    for (model, stream) in [
        ("gpt", false),
        ("claude", true),
        ("gpt", true),
        ("claude", false),
    ] {
        let answer = |body: Value| {
            let r = create(&g, KEY_A, &body);
            assert_eq!(r.status, 200, "{model}: {}", r.text());
            if stream {
                streamed_response(&r)
            } else {
                r.json()
            }
        };
        let first = answer(json!({"model": model, "stream": stream, "input": "one mock:tokens=1"}));
        assert_eq!(first["store"], true, "{model} stream={stream}: {first}");
        assert_eq!(first["previous_response_id"], Value::Null, "{first}");
        let id = first["id"].as_str().unwrap().to_owned();
        let second = answer(json!({"model": model, "stream": stream,
            "previous_response_id": id, "input": "two mock:tokens=1"}));
        assert_eq!(second["store"], true, "{model} stream={stream}: {second}");
        assert_eq!(second["previous_response_id"], id.as_str(), "{second}");
        let second_id = second["id"].as_str().unwrap();
        let got = call(&g, KEY_A, "GET", &format!("/v1/responses/{second_id}"));
        assert_eq!(got.status, 200, "{}", got.text());
        assert_eq!(got.json()["store"], true, "{}", got.text());
        assert_eq!(got.json()["previous_response_id"], id.as_str());
        let unstored = answer(json!({"model": model, "stream": stream, "store": false,
            "input": "three mock:tokens=1"}));
        assert_eq!(unstored["store"], false, "{unstored}");
    }
}

#[test]
fn store_false_keeps_nothing_and_unknown_ids_are_400() {
    let (_m, g) = setup_keys("");
    let r = create(
        &g,
        KEY_A,
        &json!({"model": "claude", "store": false, "input": "not-kept mock:tokens=1"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        call(&g, KEY_A, "GET", &format!("/v1/responses/{id}")).status,
        404
    );
    let r = create(
        &g,
        KEY_A,
        &json!({"model": "gpt", "previous_response_id": id, "input": "x"}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let e = &r.json()["error"];
    assert_eq!(e["code"], "previous_response_not_found");
    assert_eq!(e["param"], "previous_response_id");
    assert_eq!(
        e["message"],
        format!("Previous response with id '{id}' not found.")
    );

    // `store: true` said outright is stored (and not refused by a translator).
    let r = create(
        &g,
        KEY_A,
        &json!({"model": "gpt", "store": true, "input": "kept mock:tokens=1"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        call(&g, KEY_A, "GET", &format!("/v1/responses/{id}")).status,
        200
    );
}

#[test]
fn storage_off_says_store_false_is_the_fix() {
    let (_m, g) = setup_keys("\n[responses.store]\nenabled = false\n");
    for body in [
        json!({"model": "gpt", "store": true, "input": "x"}),
        json!({"model": "gpt", "previous_response_id": "resp_x", "input": "x"}),
        json!({"model": "claude", "input": [{"type": "item_reference", "id": "msg_x"}]}),
    ] {
        let r = create(&g, KEY_A, &body);
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert!(r.text().contains("store: false"), "{body}: {}", r.text());
    }
    // Unset `store` is simply not kept.
    let r = create(
        &g,
        KEY_A,
        &json!({"model": "gpt", "input": "x mock:tokens=1"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let r = call(&g, KEY_A, "GET", &format!("/v1/responses/{id}"));
    assert_eq!(r.status, 404);
    assert!(r.text().contains("store: false"), "{}", r.text());
}

#[test]
fn a_key_with_store_responses_false_keeps_nothing() {
    let m = mock(&[]);
    let g = gateway_env(
        &format!(
            "[[key]]\nname = \"a\"\nkey_env = \"RW_STORE_KEY_A\"\nstore_responses = false\n{}",
            standard_providers(&m)
        ),
        &[
            ("RW_TEST_OPENAI_KEY", "sk-provider-openai"),
            ("RW_STORE_KEY_A", KEY_A),
        ],
    );
    let r = create(
        &g,
        KEY_A,
        &json!({"model": "gpt", "input": "x mock:tokens=1"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        call(&g, KEY_A, "GET", &format!("/v1/responses/{id}")).status,
        404
    );
    let r = create(
        &g,
        KEY_A,
        &json!({"model": "gpt", "previous_response_id": id, "input": "x"}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("store: false"), "{}", r.text());
}

/// A provider with native Responses: answers its n-th connection with `answers[n]` (then
/// closes) and hands over each request's body.
fn native_upstream(
    answers: Vec<String>,
) -> (std::net::SocketAddr, std::sync::mpsc::Receiver<String>) {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for (s, answer) in l.incoming().zip(answers) {
            let Ok(mut s) = s else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 65536];
            let body = loop {
                let n = s.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break Some(
                            String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string(),
                        );
                    }
                }
            };
            let Some(body) = body else { continue };
            let _ = tx.send(body);
            let _ = s.write_all(answer.as_bytes());
        }
    });
    (addr, rx)
}

fn http_answer(content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn a_native_provider_gets_the_whole_conversation_and_its_answers_are_kept() {
    let first = r#"{"id":"resp_up1","object":"response","status":"completed","model":"up","output":[{"type":"message","id":"msg_up1","role":"assistant","status":"completed","content":[{"type":"output_text","text":"native-said-fig","annotations":[]}]}],"usage":{"input_tokens":3,"output_tokens":3,"total_tokens":6}}"#;
    let created = r#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_up2","object":"response","status":"in_progress","output":[]}}"#;
    let done = r#"{"type":"response.completed","sequence_number":1,"response":{"id":"resp_up2","object":"response","status":"completed","output":[{"type":"message","id":"msg_up2","role":"assistant","status":"completed","content":[{"type":"output_text","text":"streamed-date","annotations":[]}]}]}}"#;
    let events = format!(
        "event: response.created\ndata: {created}\n\nevent: response.completed\ndata: {done}\n\n"
    );
    let (up, seen) = native_upstream(vec![
        http_answer("application/json", first),
        http_answer("text/event-stream", &events),
        http_answer(
            "application/json",
            first.replace("resp_up1", "resp_up3").as_str(),
        ),
    ]);
    let g = gateway_env(
        &format!(
            "[[key]]\nname = \"a\"\nkey_env = \"RW_STORE_KEY_A\"\n\n[[provider]]\nname = \"native\"\nkind = \"openai\"\nbase_url = \"http://{up}/v1\"\nresponses = \"native\"\n\n[[route]]\nmodel = \"r\"\ntargets = [\"native/up-model\"]\n"
        ),
        &[("RW_STORE_KEY_A", KEY_A)],
    );
    let wait = |rx: &std::sync::mpsc::Receiver<String>| {
        rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap()
    };
    let r = create(
        &g,
        KEY_A,
        &json!({"model": "r", "input": "native-asked-grape"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), first);
    wait(&seen);
    // Continued by id, streamed: the provider gets the whole conversation, without the id.
    let r = create(
        &g,
        KEY_A,
        &json!({"model": "r", "stream": true, "previous_response_id": "resp_up1",
                "input": [{"role": "user", "content": "native-next-lime"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), events);
    let sent = wait(&seen);
    let v: Value = serde_json::from_str(&sent).unwrap();
    assert!(v.get("previous_response_id").is_none(), "{sent}");
    assert_eq!(v["model"], "up-model");
    let input = v["input"].as_array().unwrap();
    assert_eq!(input.len(), 3, "{sent}");
    assert_eq!(input[0]["content"], "native-asked-grape");
    assert_eq!(input[1]["id"], "msg_up1");
    assert_eq!(input[2]["content"], "native-next-lime");
    // The streamed answer was kept from its terminal event.
    let got = call(&g, KEY_A, "GET", "/v1/responses/resp_up2");
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["output"][0]["id"], "msg_up2");
    // And an item of it can be referenced.
    let r = create(
        &g,
        KEY_A,
        &json!({"model": "r", "input": [{"type": "item_reference", "id": "msg_up2"}, {"role": "user", "content": "z"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let sent: Value = serde_json::from_str(&wait(&seen)).unwrap();
    assert_eq!(
        sent["input"][0]["content"][0]["text"], "streamed-date",
        "{sent}"
    );
}

#[test]
fn a_route_with_store_responses_false_keeps_nothing() {
    let m = mock(&[]);
    let g = gateway_env(
        &format!(
            "[[key]]\nname = \"a\"\nkey_env = \"RW_STORE_KEY_A\"\n\n[[route]]\nmodel = \"private\"\ntargets = [\"mo/mock-private\"]\nstore_responses = false\n{}",
            standard_providers(&m)
        ),
        &[
            ("RW_TEST_OPENAI_KEY", "sk-provider-openai"),
            ("RW_STORE_KEY_A", KEY_A),
        ],
    );
    let r = create(
        &g,
        KEY_A,
        &json!({"model": "private", "input": "x mock:tokens=1"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        call(&g, KEY_A, "GET", &format!("/v1/responses/{id}")).status,
        404
    );
    // The same key's other routes still store.
    let r = create(
        &g,
        KEY_A,
        &json!({"model": "gpt", "input": "x mock:tokens=1"}),
    );
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        call(&g, KEY_A, "GET", &format!("/v1/responses/{id}")).status,
        200
    );
}

/// The last request the mock received for `model`, its body parsed.
fn last_upstream_json(m: &Proc, model: &str) -> Value {
    let all = mock_requests(m);
    let last = all
        .iter()
        .rev()
        .find(|r| r["model"] == model)
        .unwrap_or_else(|| panic!("no request for {model}: {all:?}"));
    serde_json::from_str(last["body"].as_str().unwrap()).unwrap()
}

/// A stored reasoning item keeps its sealed thinking though the client did not ask for it
/// (`include` unset: its copy says `encrypted_content: null`), as the API keeps reasoning for
/// a stored response: the next step of a tool loop, by `item_reference` or by
/// `previous_response_id`, gives the provider the thinking block with its signature, and
/// thinking stays on (a tool turn without its thinking would turn it off). `GET` hands it
/// out only when `include` asks. Streamed or not.
#[test]
fn a_stored_reasoning_item_keeps_its_thinking_for_the_next_turn() {
    let (m, g) = setup_keys("");
    let tools = json!([{"type": "function", "name": "get_weather", "parameters":
        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]);
    for stream in [false, true] {
        for by_reference in [true, false] {
            let what = format!("stream={stream} by_reference={by_reference}");
            let r = create(
                &g,
                KEY_A,
                &json!({"model": "claude", "stream": stream, "tools": tools,
                        "reasoning": {"effort": "low"},
                        "input": "Weather? mock:thinking mock:args={\"city\":\"Lyon\"}"}),
            );
            assert_eq!(r.status, 200, "{what}: {}", r.text());
            let first = if stream {
                streamed_response(&r)
            } else {
                r.json()
            };
            let output = first["output"].as_array().unwrap();
            let reasoning = output
                .iter()
                .find(|i| i["type"] == "reasoning")
                .unwrap_or_else(|| panic!("{what}: {first}"));
            // Not asked for: the client's copy has none.
            assert_eq!(
                reasoning["encrypted_content"],
                Value::Null,
                "{what}: {first}"
            );
            // Kept sealed, handed out as the API does: only when `include` asks.
            let id = first["id"].as_str().unwrap();
            let got = call(&g, KEY_A, "GET", &format!("/v1/responses/{id}"));
            assert_eq!(got.json(), first, "{what}");
            let got = call(
                &g,
                KEY_A,
                "GET",
                &format!("/v1/responses/{id}?include%5B%5D=reasoning.encrypted_content"),
            )
            .json();
            let kept = got["output"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["type"] == "reasoning")
                .unwrap();
            let sealed = kept["encrypted_content"].as_str().unwrap_or_default();
            assert!(sealed.starts_with("rw1."), "{what}: {got}");
            let fc = output
                .iter()
                .find(|i| i["type"] == "function_call")
                .unwrap_or_else(|| panic!("{what}: {first}"));
            let result = json!({"type": "function_call_output", "call_id": fc["call_id"],
                                "output": "sunny in Lyon"});
            let next = if by_reference {
                json!({"model": "claude", "stream": stream, "tools": tools,
                       "reasoning": {"effort": "low"}, "input": [
                    {"type": "item_reference", "id": reasoning["id"]},
                    {"type": "item_reference", "id": fc["id"]},
                    result]})
            } else {
                json!({"model": "claude", "stream": stream, "tools": tools,
                       "reasoning": {"effort": "low"}, "previous_response_id": first["id"],
                       "input": [result]})
            };
            let r = create(&g, KEY_A, &next);
            assert_eq!(r.status, 200, "{what}: {}", r.text());
            let sent = last_upstream_json(&m, "mock-claude-up");
            let assistant = sent["messages"]
                .as_array()
                .unwrap()
                .iter()
                .rfind(|msg| msg["role"] == "assistant")
                .unwrap_or_else(|| panic!("{what}: {sent}"));
            let blocks = assistant["content"].as_array().unwrap();
            assert_eq!(blocks[0]["type"], "thinking", "{what}: {sent}");
            assert!(
                !blocks[0]["signature"].as_str().unwrap_or("").is_empty(),
                "{what}: {sent}"
            );
            assert!(
                blocks.iter().any(|b| b["type"] == "tool_use"),
                "{what}: {sent}"
            );
            assert!(
                sent["thinking"].is_object() && sent["thinking"]["type"] != "disabled",
                "{what}: thinking went off: {sent}"
            );
            let second = if stream {
                streamed_response(&r)
            } else {
                r.json()
            };
            if by_reference {
                // Its input as kept: the referenced reasoning, sealed, shown only when asked.
                let items = |query: &str| {
                    let path = format!("/v1/responses/{}/input_items{query}", second["id"]);
                    let list = call(&g, KEY_A, "GET", &path.replace('"', "")).json();
                    let item = list["data"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|i| i["type"] == "reasoning")
                        .unwrap_or_else(|| panic!("{what}: {list}"))
                        .clone();
                    item["encrypted_content"].clone()
                };
                assert_eq!(items(""), Value::Null, "{what}");
                let sealed = items("?include=reasoning.encrypted_content");
                assert!(sealed.as_str().unwrap().starts_with("rw1."), "{what}");
            }
        }
    }
}
