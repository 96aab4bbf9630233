//! Gemini through the real binary, against the mock's Gemini side: the `gemini` provider kind
//! and Gemini models on Vertex serving Chat Completions, Messages and Responses clients
//! (streamed and not, tool loops with Gemini 3 thought signatures carried in the clients' ids,
//! tampering, moving to another provider), and the Gemini client dialect (generate, both stream
//! forms, countTokens, models, its keys, its error shape).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::shared::*;
use common::*;
use serde_json::{json, Value};

const G3: &str = "gemini-3-pro-preview";
const G25: &str = "gemini-2.5-flash";

fn config(mock: &Proc, extra: &str) -> String {
    format!(
        r#"
[[provider]]
name = "gem"
kind = "gemini"
base_url = "http://{m}"
api_key_env = "RW_TEST_GEMINI_KEY"

[[provider]]
name = "oai"
kind = "openai"
base_url = "http://{m}/v1"

[[route]]
model = "g3"
targets = ["gem/{G3}"]

[[route]]
model = "g25"
targets = ["gem/{G25}"]

[[route]]
model = "g3-then-oai"
targets = ["gem/{G3}", "oai/mock-gpt"]
{extra}
"#,
        m = mock.addr
    )
}

fn setup(extra: &str) -> (Proc, Proc) {
    let m = mock(&[]);
    let g = gateway_env(
        &config(&m, extra),
        &[("RW_TEST_GEMINI_KEY", "gemini-provider-key")],
    );
    (m, g)
}

fn gemini_records(m: &Proc) -> Vec<Value> {
    mock_requests(m)
        .into_iter()
        .filter(|r| r["path"].as_str().unwrap_or("").contains("/models/"))
        .collect()
}

#[test]
fn every_client_dialect_is_served_by_a_gemini_provider() {
    let (m, g) = setup("");
    for d in Dialect::ALL {
        for stream in [false, true] {
            clear_records(&m);
            let r = request(g.addr, &d.request("g25", "hello there", stream, &[]));
            assert_eq!(r.status, 200, "{d:?} stream={stream}: {}", r.text());
            assert_eq!(r.header("x-ringway-provider"), Some("gem"));
            assert_eq!(
                d.text(&r, stream),
                "Hello from the ringway mock. You said: hello there",
                "{d:?} stream={stream}"
            );
            let rec = gemini_records(&m).pop().unwrap();
            let method = if stream {
                "streamGenerateContent?alt=sse"
            } else {
                "generateContent"
            };
            assert_eq!(rec["path"], format!("/v1beta/models/{G25}:{method}"));
            assert_eq!(
                header_of(&rec, "x-goog-api-key"),
                Some("gemini-provider-key")
            );
            assert!(header_of(&rec, "authorization").is_none());
            let body = body_of(&rec);
            assert!(body.get("model").is_none(), "{body}");
            assert_eq!(body["contents"][0]["parts"][0]["text"], "hello there");
        }
    }
}

/// A Chat client's tool loop against Gemini 3, which refuses a call without its signature.
#[test]
fn chat_tool_loops_carry_the_thought_signature_in_the_call_id() {
    let (m, g) = setup("");
    let tools = json!([{"type": "function", "function": {"name": "read_file",
        "parameters": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
            "properties": {"path": {"type": "string", "const": "a.txt"}},
            "required": ["path"], "additionalProperties": false}}}]);
    let mut messages = vec![json!({"role": "user", "content": "read a.txt"})];
    let turn = |messages: &Vec<Value>| {
        let body = json!({"model": "g3", "messages": messages, "tools": tools}).to_string();
        request(g.addr, &post("/v1/chat/completions", &[], &body))
    };
    let r = turn(&messages);
    assert_eq!(r.status, 200, "{}", r.text());
    let msg = r.json()["choices"][0]["message"].clone();
    let id = msg["tool_calls"][0]["id"].as_str().unwrap().to_owned();
    assert!(id.contains("__rwts__"), "{id}");
    // The schema went as parametersJsonSchema, which takes what `parameters` refuses.
    let first = body_of(&gemini_records(&m).pop().unwrap());
    let decl = &first["tools"][0]["functionDeclarations"][0];
    assert!(decl.get("parameters").is_none(), "{decl}");
    assert_eq!(decl["parametersJsonSchema"]["additionalProperties"], false);
    let issued = mock_requests(&m).len();
    messages.push(msg);
    messages.push(json!({"role": "tool", "tool_call_id": id, "content": "the contents"}));
    let r = turn(&messages);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["choices"][0]["message"]["content"],
        "Tool result received: the contents"
    );
    // The mock saw the signature it issued, not the documented dummy.
    let recs = mock_requests(&m);
    let second = body_of(recs.get(issued).unwrap());
    let call = &second["contents"][1]["parts"][0];
    let sig = call["thoughtSignature"].as_str().unwrap();
    assert_ne!(sig, "skip_thought_signature_validator");
    assert!(!call["functionCall"]["id"]
        .as_str()
        .unwrap_or("")
        .contains("__rwts__"));
    // An altered token does not open: the call gets the dummy, and Gemini takes the turn.
    let mut altered = messages.clone();
    let bad = format!("{}x", &id[..id.len() - 1]);
    altered[1]["tool_calls"][0]["id"] = json!(bad);
    altered[2]["tool_call_id"] = json!(bad);
    clear_records(&m);
    let r = turn(&altered);
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = body_of(&gemini_records(&m).pop().unwrap());
    assert_eq!(
        sent["contents"][1]["parts"][0]["thoughtSignature"],
        "skip_thought_signature_validator"
    );
}

#[test]
fn messages_and_responses_tool_loops_keep_signatures_too() {
    let (m, g) = setup("");
    let schema = json!({"type": "object", "properties": {"path": {"type": "string"}}});
    // Messages: the signature rides in the tool_use id.
    let tools = json!([{"name": "read_file", "input_schema": schema}]);
    let mut msgs = vec![json!({"role": "user", "content": "read it"})];
    let send = |msgs: &Vec<Value>, stream: bool| {
        let body = json!({"model": "g3", "max_tokens": 300, "messages": msgs, "tools": tools,
            "stream": stream})
        .to_string();
        request(g.addr, &post("/v1/messages", &[], &body))
    };
    let r = send(&msgs, false);
    assert_eq!(r.status, 200, "{}", r.text());
    let content = r.json()["content"].clone();
    let id = content[0]["id"].as_str().unwrap().to_owned();
    assert!(id.contains("__rwts__"));
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
    msgs.push(json!({"role": "assistant", "content": content}));
    msgs.push(
        json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": id,
        "content": "42"}]}),
    );
    clear_records(&m);
    let r = send(&msgs, true);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        Dialect::Messages.text(&r, true),
        "Tool result received: 42",
        "{}",
        r.text()
    );
    let sent = body_of(&gemini_records(&m).pop().unwrap());
    let sig = sent["contents"][1]["parts"][0]["thoughtSignature"]
        .as_str()
        .unwrap();
    assert_ne!(sig, "skip_thought_signature_validator");
    // Responses: in the function call's call_id.
    let tools = json!([{"type": "function", "name": "read_file", "parameters": schema}]);
    let body = json!({"model": "g3", "input": "read it", "tools": tools, "store": false});
    let r = request(g.addr, &post("/v1/responses", &[], &body.to_string()));
    assert_eq!(r.status, 200, "{}", r.text());
    let output = r.json()["output"].clone();
    let call = output
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["type"] == "function_call")
        .unwrap()
        .clone();
    let mut input = vec![json!({"role": "user", "content": "read it"})];
    input.extend(output.as_array().unwrap().iter().cloned());
    input.push(json!({"type": "function_call_output", "call_id": call["call_id"], "output": "7"}));
    clear_records(&m);
    let body = json!({"model": "g3", "input": input, "tools": tools, "store": false});
    let r = request(g.addr, &post("/v1/responses", &[], &body.to_string()));
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = body_of(&gemini_records(&m).pop().unwrap());
    assert_ne!(
        sent["contents"][1]["parts"][0]["thoughtSignature"],
        "skip_thought_signature_validator"
    );
}

/// A conversation that moves to another provider loses the carried signatures from its ids
/// (OpenAI refuses ids over 40 characters); ids the gateway did not seal stay as sent.
/// A Chat tool call from a Gemini model: the tools offered, the assistant message, its call's
/// id (the thought signature sealed in it) and that id without the signature.
fn signed_call(g: &Proc) -> (Value, Value, String, String) {
    let tools = json!([{"type": "function", "function": {"name": "read_file",
        "parameters": {"type": "object", "properties": {}}}}]);
    let body = json!({"model": "g3", "messages": [{"role": "user", "content": "go"}],
        "tools": tools});
    let r = request(
        g.addr,
        &post("/v1/chat/completions", &[], &body.to_string()),
    );
    let msg = r.json()["choices"][0]["message"].clone();
    let id = msg["tool_calls"][0]["id"].as_str().unwrap().to_owned();
    let plain = id.split("__rwts__").next().unwrap().to_owned();
    (tools, msg, id, plain)
}

#[test]
fn ids_lose_their_signatures_at_another_provider() {
    let (m, g) = setup("");
    let (tools, msg, id, plain) = signed_call(&g);
    let messages = json!([{"role": "user", "content": "go"}, msg,
        {"role": "tool", "tool_call_id": id, "content": "ok"},
        {"role": "user", "content": "and the note __rwts__mine"}]);
    let sent = sent_to_openai(&m, &g, &tools, &messages);
    assert_eq!(sent["messages"][1]["tool_calls"][0]["id"], plain);
    assert_eq!(sent["messages"][2]["tool_call_id"], plain);
    assert_eq!(sent["messages"][3]["content"], "and the note __rwts__mine");
}

/// The body the OpenAI provider got for a Chat request of `messages` to its model.
fn sent_to_openai(m: &Proc, g: &Proc, tools: &Value, messages: &Value) -> Value {
    clear_records(m);
    let body = json!({"model": "oai/mock-gpt", "messages": messages, "tools": tools});
    let r = request(
        g.addr,
        &post("/v1/chat/completions", &[], &body.to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    body_of(mock_requests(m).last().unwrap())
}

/// An agent's conversation resent turn after turn (admission keeps what it checked of it and
/// takes it whole the next turn) still loses its ids' signatures at another provider: whether
/// the signed call is in the elements taken whole or in the ones the turn adds.
#[test]
fn ids_lose_their_signatures_in_a_conversation_resent_every_turn() {
    // One worker: every turn finds what the last one kept.
    let (m, g) = setup("[server]\nworkers = 1\n");
    let (tools, msg, id, plain) = signed_call(&g);
    let long = |c: &str| c.repeat(6000);
    let send = |messages: &[Value]| sent_to_openai(&m, &g, &tools, &json!(messages));
    let call = [
        msg.clone(),
        json!({"role": "tool", "tool_call_id": id, "content": long("r")}),
    ];
    // The signed call in the elements every turn resends.
    let mut turn = vec![json!({"role": "user", "content": long("a")})];
    turn.extend(call.iter().cloned());
    for _ in 0..3 {
        let sent = send(&turn);
        assert_eq!(sent["messages"][1]["tool_calls"][0]["id"], plain);
        assert_eq!(sent["messages"][2]["tool_call_id"], plain);
        turn.push(json!({"role": "user", "content": long("n")}));
        turn.push(json!({"role": "assistant", "content": long("o")}));
    }
    // The signed call only in what a turn adds to a conversation kept without one.
    let mut turn = vec![
        json!({"role": "user", "content": long("b")}),
        json!({"role": "assistant", "content": long("c")}),
    ];
    for _ in 0..2 {
        let sent = send(&turn);
        assert_eq!(sent["messages"].as_array().unwrap().len(), 2);
    }
    turn.push(json!({"role": "user", "content": long("d")}));
    turn.extend(call.iter().cloned());
    let sent = send(&turn);
    assert_eq!(sent["messages"][3]["tool_calls"][0]["id"], plain);
    assert_eq!(sent["messages"][4]["tool_call_id"], plain);
}

/// A body PII substitution rewrote is inspected again with the first inspection's notes,
/// moved with the stand-ins, which also say whether it holds the signature separator: a body
/// whose ids carry signatures still loses them, and one without keeps its text.
#[test]
fn ids_lose_their_signatures_in_a_body_pii_substitution_rewrote() {
    let (m, g) = setup("[pii]\nenabled = true\n");
    let (tools, msg, id, plain) = signed_call(&g);
    let long = |c: &str| c.repeat(3000);
    let email = "jane.roe@corp.example.io";
    let mail = format!("{} mail {email} {}", long("a"), long("b"));
    let messages = json!([{"role": "user", "content": mail}, msg,
        {"role": "tool", "tool_call_id": id, "content": long("r")},
        {"role": "user", "content": long("n")}]);
    let sent = sent_to_openai(&m, &g, &tools, &messages);
    assert_eq!(sent["messages"][1]["tool_calls"][0]["id"], plain);
    assert_eq!(sent["messages"][2]["tool_call_id"], plain);
    let text = sent["messages"][0]["content"].as_str().unwrap();
    assert!(!text.contains(email), "substituted");
    assert!(text.starts_with(&long("a")) && text.ends_with(&long("b")));
    // Without a signed id: what is left of the body is as the client wrote it.
    let messages = json!([{"role": "user", "content": mail},
        {"role": "user", "content": format!("{} __rw ts__", long("n"))}]);
    let sent = sent_to_openai(&m, &g, &tools, &messages);
    assert_eq!(sent["messages"][1]["content"], messages[1]["content"]);
    assert!(!sent["messages"][0]["content"]
        .as_str()
        .unwrap()
        .contains(email));
}

/// A conversation that moves from a Gemini provider to a translating one loses its ids'
/// signatures first; the body translated is then another one than admission inspected, and
/// the inspection's notes of where its long strings end are not read for it. Built so that,
/// taken for the shorter body, a long string's note would fall on the next message's text and
/// end just before the closing brace of the message after it: read so, that text would carry
/// the raw JSON of the last message into the translation.
#[test]
fn a_translated_body_whose_signatures_were_taken_out_is_read_without_the_old_notes() {
    let (m, g) = setup_other_kinds();
    let (tools, msg, id, plain) = signed_call(&g);
    // Both ids lose `cut` bytes before the tool's output, whose note then starts on the next
    // text, `},{"role":"user","content":` (27 bytes) after the output (a text too long to be
    // settled by one sixteen-byte look); it is as long as that text, the 28 bytes up to the
    // last text, the last text and its closing quote.
    let cut = id.len() - plain.len();
    let next = "h".repeat(20);
    let output = "o".repeat(2 * cut - 27 - 2);
    let last = "u".repeat(2 * cut - 27 - (next.len() + 2) - 29);
    assert!(output.len() >= 64, "a noted string");
    let text = format!(
        r#"{{"model":"to-ant","messages":[{{"role":"user","content":"go"}},{},{{"role":"tool","tool_call_id":"{id}","content":"{output}"}},{{"role":"user","content":"{next}"}},{{"role":"user","content":"{last}"}}],"tools":{tools}}}"#,
        serde_json::to_string(&msg).unwrap()
    );
    let noted = text.find(&format!("\"{output}\"")).unwrap();
    let (start, end) = (noted + 2 * cut, noted + 2 * cut + output.len() + 2);
    assert_eq!(
        &text[start..start + 3],
        "\"hh",
        "the note would start on the text"
    );
    assert_eq!(
        &text[end - 2..end + 1],
        "u\"}",
        "and end before the brace after the last"
    );
    clear_records(&m);
    let r = request(g.addr, &post("/v1/chat/completions", &[], &text));
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = body_of(mock_requests(&m).last().unwrap());
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages[1]["content"][0]["id"], plain.as_str(), "{sent}");
    let turn = messages[2]["content"].as_array().unwrap();
    assert_eq!(turn[0]["tool_use_id"], plain.as_str(), "{sent}");
    assert_eq!(turn[0]["content"], output.as_str());
    assert_eq!(turn[1]["text"], next.as_str(), "{sent}");
    assert_eq!(turn[2]["text"], last.as_str(), "{sent}");
    assert_eq!(turn.len(), 3);
}

#[test]
fn gemini_answers_end_the_way_each_client_expects() {
    let (_m, g) = setup("");
    // A blocked prompt has no candidates: a clear 400 in the client's own format.
    let r = request(
        g.addr,
        &Dialect::Chat.request("g25", "bad mock:prompt_blocked", false, &[]),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("SAFETY"));
    let r = request(
        g.addr,
        &Dialect::Messages.request("g25", "bad mock:prompt_blocked", false, &[]),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["type"], "error");
    // The safety family is a content filter for Chat, a refusal for Messages.
    let r = request(
        g.addr,
        &Dialect::Chat.request("g25", "x mock:finish=SAFETY", false, &[]),
    );
    assert_eq!(r.json()["choices"][0]["finish_reason"], "content_filter");
    let r = request(
        g.addr,
        &Dialect::Chat.request("g25", "x mock:finish=MAX_TOKENS", true, &[]),
    );
    assert!(
        r.text().contains("\"finish_reason\":\"length\""),
        "{}",
        r.text()
    );
    // Usage: cached prompt tokens reach each client in its own terms.
    let r = request(
        g.addr,
        &Dialect::Chat.request("g25", "hi mock:cached=4", false, &[]),
    );
    assert_eq!(
        r.json()["usage"]["prompt_tokens_details"]["cached_tokens"],
        4
    );
    // A provider error keeps its status and message, in the client's shape.
    let r = request(
        g.addr,
        &Dialect::Messages.request("g25", "x mock:status=429", false, &[]),
    );
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
}

fn gemini_body(prompt: &str) -> String {
    json!({"contents": [{"role": "user", "parts": [{"text": prompt}]}]}).to_string()
}

#[test]
fn gemini_clients_pass_through_to_a_gemini_provider() {
    let (m, g) =
        setup("[[route]]\nmodel = \"gemini-2.5-flash\"\ntargets = [\"gem/gemini-2.5-flash\"]\n");
    let mut prompt_tokens = Value::Null;
    for version in ["v1beta", "v1"] {
        let r = request(
            g.addr,
            &post(
                &format!("/{version}/models/gemini-2.5-flash:generateContent"),
                &[],
                &gemini_body("hi"),
            ),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        assert_eq!(v["candidates"][0]["finishReason"], "STOP");
        prompt_tokens = v["usageMetadata"]["promptTokenCount"].clone();
        assert!(prompt_tokens.as_u64().unwrap() > 0, "{v}");
    }
    // SSE, as the SDKs ask.
    let r = request(
        g.addr,
        &post(
            "/v1beta/models/g25:streamGenerateContent?alt=sse",
            &[],
            &gemini_body("hi"),
        ),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let chunks: Vec<Value> = sse_events(&r.body)
        .into_iter()
        .map(|(_, d)| serde_json::from_str(&d).unwrap())
        .collect();
    assert_eq!(
        chunks.last().unwrap()["candidates"][0]["finishReason"],
        "STOP"
    );
    let rec = gemini_records(&m).pop().unwrap();
    assert_eq!(
        rec["path"],
        format!("/v1beta/models/{G25}:streamGenerateContent?alt=sse")
    );
    // Without alt=sse: one JSON array, whole when parsed.
    let r = request(
        g.addr,
        &post(
            "/v1beta/models/g25:streamGenerateContent",
            &[],
            &gemini_body("hi"),
        ),
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    let arr = r.json();
    assert_eq!(arr.as_array().unwrap().len(), chunks.len());
    // countTokens at the provider, and the model list in Gemini's shape.
    let r = request(
        g.addr,
        &post("/v1beta/models/g25:countTokens", &[], &gemini_body("hi")),
    );
    assert_eq!(r.json()["totalTokens"], prompt_tokens);
    let r = request(g.addr, &get("/v1beta/models", &[]));
    let names: Vec<&str> = r.json()["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_owned().leak() as &str)
        .collect();
    assert!(names.contains(&"models/g25"), "{names:?}");
    let r = request(g.addr, &get("/v1beta/models/g25", &[]));
    assert_eq!(r.json()["name"], "models/g25");
}

#[test]
fn gemini_clients_present_gateway_keys_their_own_ways() {
    let keys = "\n[[key]]\nname = \"team\"\nkey_env = \"RW_TEST_GW_KEY\"\n";
    let m = mock(&[]);
    let dir = temp_path("gemini-keys-log");
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("access.log");
    let cfg = format!(
        "{}{keys}\n[access_log]\npath = {:?}\n",
        config(&m, ""),
        log.to_str().unwrap()
    );
    let g = gateway_env(
        &cfg,
        &[
            ("RW_TEST_GEMINI_KEY", "gemini-provider-key"),
            ("RW_TEST_GW_KEY", "gw-secret-123"),
        ],
    );
    let path = "/v1beta/models/g25:generateContent";
    let ok = request(
        g.addr,
        &post(
            path,
            &[("x-goog-api-key", "gw-secret-123")],
            &gemini_body("a"),
        ),
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    let q = request(
        g.addr,
        &post(&format!("{path}?key=gw-secret-123"), &[], &gemini_body("a")),
    );
    assert_eq!(q.status, 200, "{}", q.text());
    let bad = request(
        g.addr,
        &post(path, &[("x-goog-api-key", "nope")], &gemini_body("a")),
    );
    assert_eq!(bad.status, 401);
    assert_eq!(bad.json()["error"]["status"], "UNAUTHENTICATED");
    assert_eq!(bad.json()["error"]["code"], 401);
    // The client's key never goes upstream, and never into the access log.
    for rec in gemini_records(&m) {
        assert_eq!(
            header_of(&rec, "x-goog-api-key"),
            Some("gemini-provider-key")
        );
        assert!(!rec["path"].as_str().unwrap().contains("gw-secret"));
    }
    // Three requests, three lines: the log's writer is waited for, not raced by the kill.
    let text = wait_lines(&log, 3).join("\n");
    drop(g);
    assert!(text.contains("gemini_generate_content"), "{text}");
    assert!(!text.contains("gw-secret"), "{text}");
    // `/v1/models` with a Gemini key is Gemini's list.
    let g = gateway_env(
        &format!("{}{keys}", config(&m, "")),
        &[
            ("RW_TEST_GEMINI_KEY", "k"),
            ("RW_TEST_GW_KEY", "gw-secret-123"),
        ],
    );
    let r = request(
        g.addr,
        &get("/v1/models", &[("x-goog-api-key", "gw-secret-123")]),
    );
    assert!(r.json()["models"].is_array(), "{}", r.text());
    let r = request(
        g.addr,
        &get("/v1/models", &[("authorization", "Bearer gw-secret-123")]),
    );
    assert_eq!(r.json()["object"], "list");
}

#[test]
fn gemini_models_on_vertex_take_the_google_publisher_path() {
    let (file, pem) = google_account("gemini-sa.json");
    write_account(&file, &pem, "http://127.0.0.1:0/token");
    let m = mock(&["--google-service-account", file.to_str().unwrap()]);
    write_account(&file, &pem, &format!("http://{}/token", m.addr));
    let cfg = format!(
        r#"
[[provider]]
name = "vx"
kind = "vertex"
project = "mock-project"
region = "us-central1"
base_url = "http://{m}"
google_credentials = {f:?}

[[route]]
model = "vg"
targets = ["vx/{G25}"]
"#,
        m = m.addr,
        f = file.to_str().unwrap()
    );
    let g = gateway(&cfg);
    for d in Dialect::ALL {
        for stream in [false, true] {
            clear_records(&m);
            let r = request(g.addr, &d.request("vg", "hello there", stream, &[]));
            assert_eq!(r.status, 200, "{d:?} {stream}: {}", r.text());
            assert!(!d.text(&r, stream).is_empty());
            let rec = gemini_records(&m).pop().unwrap();
            assert!(
                rec["path"].as_str().unwrap().starts_with(
                    "/v1/projects/mock-project/locations/us-central1/publishers/google/models/gemini-2.5-flash:"
                ),
                "{}",
                rec["path"]
            );
            assert!(header_of(&rec, "authorization")
                .is_some_and(|a| a.starts_with("Bearer mock-token-")));
        }
    }
    // A Gemini client passes through to Vertex's Gemini as well.
    let r = request(
        g.addr,
        &post("/v1beta/models/vg:generateContent", &[], &gemini_body("hi")),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["candidates"][0]["finishReason"], "STOP");
}

/// Routes for a Gemini client to the other kinds: `to-oai` (Chat Completions), `to-ant`
/// (Messages), and `gem-then-ant` (a Gemini provider first, Anthropic after it).
const OTHER_KINDS: &str = r#"
[[provider]]
name = "ant"
kind = "anthropic"
base_url = "http://MOCK"

[[route]]
model = "to-oai"
targets = ["oai/mock-gpt"]

[[route]]
model = "to-ant"
targets = ["ant/claude-sonnet-4-5"]
"#;

fn setup_other_kinds() -> (Proc, Proc) {
    let m = mock(&[]);
    let extra = OTHER_KINDS.replace("MOCK", &m.addr.to_string());
    let g = gateway_env(
        &config(&m, &extra),
        &[("RW_TEST_GEMINI_KEY", "gemini-provider-key")],
    );
    (m, g)
}

/// The text of a Gemini answer, whole or streamed (SSE or one JSON array).
fn gemini_text(r: &Response) -> String {
    let chunks: Vec<Value> = if r.header("content-type") == Some("text/event-stream") {
        sse_events(&r.body)
            .into_iter()
            .map(|(_, d)| serde_json::from_str(&d).unwrap())
            .collect()
    } else {
        match r.json() {
            Value::Array(a) => a,
            v => vec![v],
        }
    };
    chunks
        .iter()
        .flat_map(|c| {
            c["candidates"][0]["content"]["parts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|p| p["thought"] != true)
        .filter_map(|p| p["text"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn gemini_clients_are_served_by_openai_and_anthropic_providers() {
    let (m, g) = setup_other_kinds();
    for (model, path) in [
        ("to-oai", "/v1/chat/completions"),
        ("to-ant", "/v1/messages"),
    ] {
        for call in [
            "generateContent",
            "streamGenerateContent?alt=sse",
            "streamGenerateContent",
        ] {
            clear_records(&m);
            let r = request(
                g.addr,
                &post(
                    &format!("/v1beta/models/{model}:{call}"),
                    &[],
                    &gemini_body("hello there"),
                ),
            );
            assert_eq!(r.status, 200, "{model} {call}: {}", r.text());
            assert_eq!(
                gemini_text(&r),
                "Hello from the ringway mock. You said: hello there",
                "{model} {call}"
            );
            let last: Value = if call == "generateContent" {
                r.json()
            } else if call.ends_with("alt=sse") {
                assert_eq!(r.header("content-type"), Some("text/event-stream"));
                serde_json::from_str(&sse_events(&r.body).pop().unwrap().1).unwrap()
            } else {
                assert_eq!(r.header("content-type"), Some("application/json"));
                r.json().as_array().unwrap().last().unwrap().clone()
            };
            assert_eq!(last["candidates"][0]["finishReason"], "STOP", "{last}");
            assert!(last["usageMetadata"]["promptTokenCount"].as_u64().unwrap() > 0);
            let rec = mock_requests(&m).pop().unwrap();
            assert_eq!(rec["path"], path);
            let body = body_of(&rec);
            assert_eq!(
                body["stream"].as_bool().unwrap_or(false),
                call != "generateContent",
                "{body}"
            );
        }
    }
}

#[test]
fn gemini_tool_loops_with_anthropic_thinking_keep_their_signatures() {
    let (m, g) = setup_other_kinds();
    let tools = json!([{"functionDeclarations": [{"name": "read_file", "description": "read",
        "parameters": {"type": "OBJECT", "properties": {"path": {"type": "STRING"}},
                       "required": ["path"]}}]}]);
    for stream in [false, true] {
        let mut contents =
            vec![json!({"role": "user", "parts": [{"text": "read it mock:thinking"}]})];
        let body = |contents: &[Value]| {
            json!({"contents": contents, "tools": tools,
                   "generationConfig": {"thinkingConfig": {"includeThoughts": true, "thinkingBudget": 4096}}})
            .to_string()
        };
        let call = if stream {
            "streamGenerateContent?alt=sse"
        } else {
            "generateContent"
        };
        let r = request(
            g.addr,
            &post(
                &format!("/v1beta/models/to-ant:{call}"),
                &[],
                &body(&contents),
            ),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        // The model's content, as an SDK assembles it from the chunks.
        let parts: Vec<Value> = if stream {
            sse_events(&r.body)
                .into_iter()
                .flat_map(|(_, d)| {
                    let v: Value = serde_json::from_str(&d).unwrap();
                    v["candidates"][0]["content"]["parts"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                })
                .collect()
        } else {
            r.json()["candidates"][0]["content"]["parts"]
                .as_array()
                .unwrap()
                .clone()
        };
        assert!(parts.iter().any(|p| p["thought"] == true), "{parts:?}");
        let call_part = parts
            .iter()
            .find(|p| p.get("functionCall").is_some())
            .unwrap();
        let sig = call_part["thoughtSignature"].as_str().unwrap().to_owned();
        assert!(sig.starts_with("cnd0Yz"), "{sig}");
        let fc = &call_part["functionCall"];
        assert_eq!(fc["name"], "read_file");
        contents.push(json!({"role": "model", "parts": parts}));
        // The function response names the call only (no id), as some clients send it.
        contents.push(json!({"role": "user", "parts": [{"functionResponse":
            {"name": "read_file", "response": {"output": "file body"}}}]}));
        let r = request(
            g.addr,
            &post(
                &format!("/v1beta/models/to-ant:{call}"),
                &[],
                &body(&contents),
            ),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            gemini_text(&r).contains("Tool result received: file body"),
            "{}",
            r.text()
        );
        // Anthropic got its thinking block back, signed: the mock refuses a wrong signature.
        let rec = body_of(&mock_requests(&m).pop().unwrap());
        let assistant = &rec["messages"][1]["content"];
        assert_eq!(assistant[0]["type"], "thinking", "{rec}");
        assert_eq!(assistant[1]["type"], "tool_use");
        assert_eq!(
            rec["messages"][2]["content"][0]["tool_use_id"],
            assistant[1]["id"]
        );
        // An altered carrier is dropped: the turn runs without thinking, never a 400.
        let mut altered = contents.clone();
        let mid = sig.len() / 2;
        let flipped = if &sig[mid..=mid] == "A" { "B" } else { "A" };
        let bad = format!("{}{flipped}{}", &sig[..mid], &sig[mid + 1..]);
        for p in altered[1]["parts"].as_array_mut().unwrap() {
            if p.get("thoughtSignature").is_some() {
                p["thoughtSignature"] = json!(bad);
            }
        }
        let r = request(
            g.addr,
            &post(
                &format!("/v1beta/models/to-ant:{call}"),
                &[],
                &body(&altered),
            ),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let rec = body_of(&mock_requests(&m).pop().unwrap());
        assert_eq!(
            rec["messages"][1]["content"][0]["type"], "tool_use",
            "{rec}"
        );
        // The same history sent to a Gemini 3 provider: the carried thinking is swapped for the
        // documented dummy signature, which the mock (as Gemini 3) accepts.
        let r = request(
            g.addr,
            &post(&format!("/v1beta/models/g3:{call}"), &[], &body(&contents)),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let rec = body_of(&gemini_records(&m).pop().unwrap());
        let sent = rec["contents"][1]["parts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p.get("functionCall").is_some())
            .unwrap()
            .clone();
        assert_eq!(sent["thoughtSignature"], "skip_thought_signature_validator");
    }
}

#[test]
fn gemini_clients_get_errors_in_googles_shape_from_every_kind() {
    let (_m, g) = setup_other_kinds();
    // Refused before anything is sent: named, in Google's error shape.
    let r = request(
        g.addr,
        &post(
            "/v1beta/models/to-oai:generateContent",
            &[],
            &json!({"contents": [{"parts": [{"text": "hi"}]}], "cachedContent": "cachedContents/1"})
                .to_string(),
        ),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["status"], "INVALID_ARGUMENT");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("cachedContent"));
    // A provider's error, translated.
    for model in ["to-oai", "to-ant"] {
        let r = request(
            g.addr,
            &post(
                &format!("/v1beta/models/{model}:generateContent"),
                &[],
                &gemini_body("x mock:status=429"),
            ),
        );
        assert_eq!(r.status, 429, "{}", r.text());
        assert_eq!(r.json()["error"]["code"], 429);
        assert_eq!(r.json()["error"]["status"], "RESOURCE_EXHAUSTED");
        // Mid-stream: Google's error object ends the stream.
        let r = request(
            g.addr,
            &post(
                &format!("/v1beta/models/{model}:streamGenerateContent?alt=sse"),
                &[],
                &gemini_body("x mock:midstream_error"),
            ),
        );
        assert_eq!(r.status, 200);
        let last: Value = serde_json::from_str(&sse_events(&r.body).pop().unwrap().1).unwrap();
        assert!(last["error"]["message"].is_string(), "{last}");
    }
    // A content filter ends as SAFETY.
    let r = request(
        g.addr,
        &post(
            "/v1beta/models/to-oai:generateContent",
            &[],
            &gemini_body("x mock:content_filter"),
        ),
    );
    assert_eq!(
        r.json()["candidates"][0]["finishReason"],
        "SAFETY",
        "{}",
        r.text()
    );
    // countTokens is the gateway's estimate in Gemini's shape.
    let r = request(
        g.addr,
        &post(
            "/v1beta/models/to-ant:countTokens",
            &[],
            &gemini_body("count these words"),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["totalTokens"].as_u64().unwrap() > 0);
}

#[test]
fn schemas_gemini_would_refuse_reach_every_model_in_a_form_it_takes() {
    // Gemini 2.0 takes only `parameters` (its OpenAPI subset); 2.5 and 3 take full JSON Schema.
    let (m, g) = setup("[[route]]\nmodel = \"g20\"\ntargets = [\"gem/gemini-2.0-flash\"]\n");
    let params = json!({"$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object", "additionalProperties": false,
        "properties": {"path": {"type": "string", "format": "uri"},
                       "mode": {"const": "read"},
                       "limit": {"type": ["integer", "null"]},
                       "opts": {"$ref": "#/$defs/O"}},
        "required": ["path"],
        "$defs": {"O": {"type": "object", "additionalProperties": false,
                        "properties": {"x": {"type": "boolean"}}}}});
    for (model, field) in [
        ("g20", "parameters"),
        ("g25", "parametersJsonSchema"),
        ("g3", "parametersJsonSchema"),
    ] {
        let body = json!({"model": model, "messages": [{"role": "user", "content": "read it"}],
            "tools": [{"type": "function", "function": {"name": "read_file", "parameters": params}}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": params}}});
        let r = request(
            g.addr,
            &post("/v1/chat/completions", &[], &body.to_string()),
        );
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        assert_eq!(
            r.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
            "read_file"
        );
        let sent = body_of(&gemini_records(&m).pop().unwrap());
        let decl = &sent["tools"][0]["functionDeclarations"][0];
        assert!(decl.get(field).is_some(), "{model}: {decl}");
        if field == "parameters" {
            assert_eq!(
                decl["parameters"]["properties"]["mode"]["enum"],
                json!(["read"])
            );
            assert!(
                sent["generationConfig"].get("responseSchema").is_some(),
                "{sent}"
            );
        }
    }
}

#[test]
fn gemini_clients_route_like_every_dialect_pii_failover_and_limits() {
    let m = mock(&[]);
    let extra = OTHER_KINDS.replace("MOCK", &m.addr.to_string())
        + r#"
[[provider]]
name = "dead"
kind = "gemini"
base_url = "http://127.0.0.1:1"
api_key_env = "RW_TEST_GEMINI_KEY"

[[route]]
model = "dead-then-ant"
targets = ["dead/gemini-2.5-flash", "ant/claude-sonnet-4-5"]

[pii]
routes = ["to-ant", "g25"]

[[key]]
name = "limited"
key_env = "RW_TEST_LIMITED"
rpm = 6
"#;
    let g = gateway_env(
        &config(&m, &extra),
        &[
            ("RW_TEST_GEMINI_KEY", "gemini-provider-key"),
            ("RW_TEST_LIMITED", "sk-limited"),
        ],
    );
    let key = [("x-goog-api-key", "sk-limited")];
    // PII: a stand-in goes upstream (Gemini passthrough and translated), the original comes back.
    let email = "jane.doe@corp.example.io";
    for model in ["g25", "to-ant"] {
        clear_records(&m);
        let r = request(
            g.addr,
            &post(
                &format!("/v1beta/models/{model}:generateContent"),
                &key,
                &gemini_body(&format!("mail {email}")),
            ),
        );
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        assert!(gemini_text(&r).contains(email), "{model}: {}", r.text());
        let sent = mock_requests(&m).pop().unwrap();
        assert!(!sent["body"].to_string().contains(email), "{model}: {sent}");
        // Streamed, SSE and the JSON array: restored too, the array whole.
        for call in ["streamGenerateContent?alt=sse", "streamGenerateContent"] {
            let r = request(
                g.addr,
                &post(
                    &format!("/v1beta/models/{model}:{call}"),
                    &key,
                    &gemini_body(&format!("mail {email}")),
                ),
            );
            assert_eq!(r.status, 200, "{model} {call}: {}", r.text());
            assert!(
                gemini_text(&r).contains(email),
                "{model} {call}: {}",
                r.text()
            );
        }
    }
    // The third request in the minute: Google's 429, before anything is sent upstream.
    clear_records(&m);
    let r = request(
        g.addr,
        &post(
            "/v1beta/models/to-oai:generateContent",
            &key,
            &gemini_body("hi"),
        ),
    );
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json()["error"]["status"], "RESOURCE_EXHAUSTED");
    assert!(mock_requests(&m).is_empty());
    drop(g);
    // Failover: the dead Gemini provider first, then Anthropic, translated for the client.
    let g = gateway_env(
        &config(&m, &extra),
        &[
            ("RW_TEST_GEMINI_KEY", "gemini-provider-key"),
            ("RW_TEST_LIMITED", "sk-limited"),
        ],
    );
    let r = request(
        g.addr,
        &post(
            "/v1beta/models/dead-then-ant:streamGenerateContent?alt=sse",
            &key,
            &gemini_body("hello there"),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-ringway-provider"), Some("ant"));
    assert_eq!(
        gemini_text(&r),
        "Hello from the ringway mock. You said: hello there"
    );
}
