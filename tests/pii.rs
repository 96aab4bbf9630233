//! PII substitution through the real binary: the mock echoes what it received, so the client
//! must get its originals back (text and tool-call arguments, streaming and not, same dialect
//! and translated), while the mock's request log shows that no original ever reached it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{json, Value};

/// What the prompts carry; each is one word, so it is within the mock's twelve echoed words.
const ORIGINALS: &[&str] = &[
    "jane.doe@corp.example.io",
    "4111-1111-1111-1111",
    "10.20.30.40",
];

fn prompt() -> String {
    format!(
        "mail {} card {} host {}",
        ORIGINALS[0], ORIGINALS[1], ORIGINALS[2]
    )
}

/// A prompt that makes the mock call a tool with the email in its arguments.
fn tool_prompt() -> String {
    format!("look up mock:args={{\"to\":\"{}\"}}", ORIGINALS[0])
}

fn openai(model: &str, prompt: &str, stream: bool, tools: bool, flag: bool) -> Response {
    let mut body = json!({"model": model, "stream": stream,
        "messages": [{"role": "user", "content": prompt}]});
    if tools {
        body["tools"] = json!([{"type": "function", "function": {"name": "send",
            "parameters": {"type": "object", "properties": {"to": {"type": "string"}}}}}]);
    }
    if flag {
        body["pii_substitution"] = json!(true);
    }
    request_to("/v1/chat/completions", body)
}

fn anthropic(model: &str, prompt: &str, stream: bool, tools: bool, flag: bool) -> Response {
    let mut body = json!({"model": model, "stream": stream, "max_tokens": 64,
        "messages": [{"role": "user", "content": prompt}]});
    if tools {
        body["tools"] = json!([{"name": "send",
            "input_schema": {"type": "object", "properties": {"to": {"type": "string"}}}}]);
    }
    if flag {
        body["pii_substitution"] = json!(true);
    }
    request_to("/v1/messages", body)
}

fn responses(model: &str, prompt: &str, stream: bool, tools: bool) -> Response {
    let mut body = json!({"model": model, "stream": stream, "pii_substitution": true,
        "input": [{"role": "user", "content": [{"type": "input_text", "text": prompt}]}]});
    if tools {
        body["tools"] = json!([{"type": "function", "name": "send",
            "parameters": {"type": "object", "properties": {"to": {"type": "string"}}}}]);
    }
    request_to("/v1/responses", body)
}

thread_local! {
    static ADDR: std::cell::Cell<Option<std::net::SocketAddr>> = const { std::cell::Cell::new(None) };
}

fn request_to(path: &str, body: Value) -> Response {
    let addr = ADDR.with(|a| a.get()).unwrap();
    request(addr, &post(path, &[], &body.to_string()))
}

/// Everything the client can read as text or arguments: whole bodies and every SSE event.
fn client_text(r: &Response) -> String {
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
}

fn assert_restored(r: &Response, originals: &[&str]) {
    let text = client_text(r);
    let joined = join_deltas(&text);
    for o in originals {
        assert!(
            joined.contains(o),
            "{o} not restored in {joined}\nraw: {text}"
        );
    }
}

/// The answer's text and arguments with stream deltas joined (a restored original may span
/// deltas as the model sent them), in either dialect.
fn join_deltas(body: &str) -> String {
    let events = sse_events(body.as_bytes());
    if events.is_empty() || !body.contains("data:") {
        return body.to_owned();
    }
    let mut out = String::new();
    for (_, data) in events {
        let Ok(v) = serde_json::from_str::<Value>(&data) else {
            continue;
        };
        for p in [
            "/choices/0/delta/content",
            "/choices/0/delta/tool_calls/0/function/arguments",
            "/delta/text",
            "/delta/partial_json",
            // Responses: text and argument deltas carry `delta` as a string.
            "/delta",
        ] {
            if let Some(s) = v.pointer(p).and_then(Value::as_str) {
                out.push_str(s);
            }
        }
    }
    out
}

/// A Responses stream's `sequence_number`s are 0, 1, 2… as the client reads them, whatever
/// the restorer held back and sent in deltas of its own.
fn assert_numbered_in_turn(r: &Response) {
    let mut n = 0;
    for (_, data) in sse_events(r.body.as_slice()) {
        let Ok(v) = serde_json::from_str::<Value>(&data) else {
            continue;
        };
        if let Some(seq) = v.get("sequence_number") {
            assert_eq!(seq, n, "event {n}: {data}\n{}", r.text());
            n += 1;
        }
    }
}

fn assert_mock_saw_no_original(m: &Proc) {
    let seen = serde_json::to_string(&mock_requests(m)).unwrap();
    assert!(!seen.is_empty());
    for o in ORIGINALS {
        assert!(!seen.contains(o), "{o} reached the provider: {seen}");
    }
    assert!(
        !seen.contains("pii_substitution"),
        "the flag reached the provider"
    );
}

#[test]
fn originals_come_back_and_never_reach_the_provider() {
    let (m, g) = setup("");
    ADDR.with(|a| a.set(Some(g.addr)));
    let p = prompt();
    for stream in [false, true] {
        for model in ["gpt", "claude"] {
            assert_restored(&openai(model, &p, stream, false, true), ORIGINALS);
            assert_restored(&anthropic(model, &p, stream, false, true), ORIGINALS);
            let t = tool_prompt();
            assert_restored(&openai(model, &t, stream, true, true), &ORIGINALS[..1]);
            assert_restored(&anthropic(model, &t, stream, true, true), &ORIGINALS[..1]);
            for (prompt, tools, originals) in [(&p, false, ORIGINALS), (&t, true, &ORIGINALS[..1])]
            {
                let r = responses(model, prompt, stream, tools);
                assert_restored(&r, originals);
                assert_numbered_in_turn(&r);
            }
        }
    }
    assert_mock_saw_no_original(&m);
}

#[test]
fn off_without_the_flag_and_on_by_key_config() {
    let (m, g) = setup("");
    ADDR.with(|a| a.set(Some(g.addr)));
    // No flag, no config: the text goes upstream as written (the test can see the difference).
    let r = openai("gpt", &prompt(), false, false, false);
    assert_eq!(r.status, 200);
    let seen = serde_json::to_string(&mock_requests(&m)).unwrap();
    assert!(seen.contains(ORIGINALS[0]));
    // A non-boolean flag is the client's error.
    let mut body = json!({"model": "gpt", "messages": [{"role": "user", "content": "hi"}]});
    body["pii_substitution"] = json!("yes");
    let r = request_to("/v1/chat/completions", body);
    assert_eq!(r.status, 400, "{}", r.text());

    let m = mock(&[]);
    let cfg = format!("[pii]\nenabled = true\n\n{}", standard_providers(&m));
    let g = gateway_env(&cfg, PROVIDER_KEYS);
    ADDR.with(|a| a.set(Some(g.addr)));
    for stream in [false, true] {
        assert_restored(
            &anthropic("gpt", &prompt(), stream, false, false),
            ORIGINALS,
        );
    }
    assert_mock_saw_no_original(&m);
}

/// The decoded text of a non-streaming answer, in either dialect.
fn answer_text(r: &Response) -> String {
    let v: Value = serde_json::from_str(&client_text(r)).unwrap();
    if let Some(t) = v
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
    {
        return t.to_owned();
    }
    v["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["text"].as_str())
        .collect()
}

#[test]
fn numbers_reach_the_provider_exactly_as_the_client_wrote_them() {
    let (m, g) = setup("");
    ADDR.with(|a| a.set(Some(g.addr)));
    // Beyond 64 bits, beyond an f64's digits, and a negative zero: a body parsed into
    // serde_json values and written again would change each of them.
    let numbers = r#""seed": 123456789012345678901234567890, "temperature": 0.10000000000000000001, "metadata": {"n": 18446744073709551616, "m": -0.0, "e": 1E+2}"#;
    let text = format!(
        r#"[{{"role": "user", "content": "mail {}"}}]"#,
        ORIGINALS[0]
    );
    for (path, model, body) in [
        (
            "/v1/chat/completions",
            "gpt",
            format!(
                r#"{{"model": "gpt", "pii_substitution": true, {numbers}, "messages": {text}}}"#
            ),
        ),
        (
            "/v1/messages",
            "claude",
            format!(
                r#"{{"model": "claude", "max_tokens": 64, {numbers}, "pii_substitution": true, "messages": {text}}}"#
            ),
        ),
    ] {
        let r = request(g.addr, &post(path, &[], &body));
        assert_restored(&r, &ORIGINALS[..1]);
        let seen = mock_requests(&m);
        let sent = seen.last().unwrap()["body"].as_str().unwrap().to_owned();
        assert!(sent.contains(numbers), "{path}: {sent}");
        // Only the flag left, the model spliced in and the one string changed: the rest is
        // the client's bytes.
        let stand_in = sent
            .split("mail ")
            .nth(1)
            .and_then(|t| t.split('"').next())
            .unwrap();
        let upstream = format!(r#""model": "mock-{model}-up""#);
        let expected = body
            .replace(&format!(r#""model": "{model}""#), &upstream)
            .replace(ORIGINALS[0], stand_in)
            .replace(r#""pii_substitution": true, "#, "");
        assert_eq!(sent, expected);
    }
    assert_mock_saw_no_original(&m);
}

/// Taking the flag out moves every byte after it: the notes of the body as the client sent
/// it describe other tokens in the body that goes on, and must not be read with it. Each
/// width of white space in the flag's member moves the long strings by another byte, so the
/// second lands where the first's note starts (and that note's end inside the third).
#[test]
fn the_flag_taken_out_moves_the_bytes_after_it_and_no_note_is_read_out_of_place() {
    let (m, g) = setup("");
    let first = "a".repeat(150);
    let second = format!("{} mail {}", "b".repeat(70), ORIGINALS[0]);
    for width in 0..=260 {
        let body = format!(
            r#"{{"pii_substitution"{}: true, "model": "gpt", "messages": [{{"role": "user", "content": "{first}"}}, {{"role": "user", "content": "{second}"}}], "metadata": {{"note": "{}"}}}}"#,
            " ".repeat(width),
            "c".repeat(200)
        );
        let r = request(g.addr, &post("/v1/chat/completions", &[], &body));
        assert_eq!(
            r.status,
            200,
            "width {width}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_restored(&r, &ORIGINALS[..1]);
    }
    assert_mock_saw_no_original(&m);
}

#[test]
fn a_stand_in_right_after_an_escape_is_restored_in_whole_answers() {
    let (m, g) = setup("");
    ADDR.with(|a| a.set(Some(g.addr)));
    // The mock writes its JSON as Python does by default: `é` as `\u00e9`, glued to the
    // stand-in it echoes.
    let p = format!("mock:ascii mail é{} now", ORIGINALS[0]);
    let want = format!("mail é{} now", ORIGINALS[0]);
    for model in ["gpt", "claude"] {
        for r in [
            openai(model, &p, false, false, true),
            anthropic(model, &p, false, false, true),
        ] {
            let text = answer_text(&r);
            assert!(text.ends_with(&want), "{model}: {text}\nraw: {}", r.text());
        }
    }
    assert_mock_saw_no_original(&m);
}

/// Fails on a text or arguments delta that is empty and says nothing else.
fn assert_no_empty_deltas(r: &Response) {
    for (_, data) in sse_events(r.body.as_slice()) {
        let Ok(v) = serde_json::from_str::<Value>(&data) else {
            continue;
        };
        if v["type"] == "content_block_delta" {
            let d = &v["delta"];
            assert!(
                d["text"] != "" && d["partial_json"] != "",
                "empty delta: {data}\n{}",
                r.text()
            );
            continue;
        }
        let Some(c) = v.pointer("/choices/0") else {
            continue;
        };
        let d = &c["delta"];
        let call = &d["tool_calls"][0];
        let says_more = !d["role"].is_null()
            || !call["id"].is_null()
            || !call["function"]["name"].is_null()
            || !c["finish_reason"].is_null()
            || !v["usage"].is_null();
        let texts = [&d["content"], &call["function"]["arguments"]];
        let empty = texts.iter().any(|t| *t == "") && texts.iter().all(|t| t.is_null() || *t == "");
        assert!(says_more || !empty, "empty delta: {data}\n{}", r.text());
    }
}

#[test]
fn translated_streams_send_no_empty_deltas_and_lose_no_held_bytes() {
    let (m, g) = setup("");
    ADDR.with(|a| a.set(Some(g.addr)));
    let (p, t) = (prompt(), tool_prompt());
    // OpenAI client, Anthropic provider; Anthropic client, OpenAI provider.
    for (client, model) in [("openai", "claude"), ("anthropic", "gpt")] {
        let call = |prompt: &str, tools: bool| match client {
            "openai" => openai(model, prompt, true, tools, true),
            _ => anthropic(model, prompt, true, tools, true),
        };
        let r = call(&p, false);
        assert_no_empty_deltas(&r);
        assert_restored(&r, ORIGINALS);
        let r = call(&t, true);
        assert_no_empty_deltas(&r);
        // The held-back pieces came out, in order: the arguments are whole JSON again.
        let args: Value = serde_json::from_str(&join_deltas(&r.text())).unwrap();
        assert_eq!(args, json!({"to": ORIGINALS[0]}), "{client}: {}", r.text());
    }
    assert_mock_saw_no_original(&m);
}

/// The assistant turn an Anthropic client builds from an answer, whole or streamed: its
/// thinking block exactly as received, and its text.
fn anthropic_assistant_turn(r: &Response) -> Value {
    let body = client_text(r);
    if !body.contains("data:") {
        let v: Value = serde_json::from_str(&body).unwrap();
        return json!({"role": "assistant", "content": v["content"]});
    }
    let mut blocks: Vec<Value> = Vec::new();
    for (_, data) in sse_events(body.as_bytes()) {
        let v: Value = serde_json::from_str(&data).unwrap();
        match v["type"].as_str().unwrap_or_default() {
            "content_block_start" => blocks.push(v["content_block"].clone()),
            "content_block_delta" => {
                let b = blocks.last_mut().unwrap();
                let d = &v["delta"];
                for f in ["thinking", "signature", "text"] {
                    if let Some(piece) = d[f].as_str() {
                        let have = b[f].as_str().unwrap_or_default().to_owned();
                        b[f] = json!(have + piece);
                    }
                }
            }
            _ => {}
        }
    }
    json!({"role": "assistant", "content": blocks})
}

/// The assistant message an OpenAI client builds from an answer (the `thinking_blocks`
/// extension carries Anthropic thinking verbatim, signature and all).
fn openai_assistant_turn(r: &Response) -> Value {
    let body = client_text(r);
    if !body.contains("data:") {
        let v: Value = serde_json::from_str(&body).unwrap();
        let m = &v["choices"][0]["message"];
        return json!({"role": "assistant", "content": m["content"],
            "thinking_blocks": m["thinking_blocks"]});
    }
    let (mut content, mut blocks) = (String::new(), Vec::new());
    for (_, data) in sse_events(body.as_bytes()) {
        let Ok(v) = serde_json::from_str::<Value>(&data) else {
            continue;
        };
        let d = &v["choices"][0]["delta"];
        content.push_str(d["content"].as_str().unwrap_or_default());
        for b in d["thinking_blocks"].as_array().into_iter().flatten() {
            let mut b = b.clone();
            b.as_object_mut().unwrap().remove("index");
            blocks.push(b);
        }
    }
    json!({"role": "assistant", "content": content, "thinking_blocks": blocks})
}

/// A turn-1 request of `client` ("anthropic" or "openai") to the Anthropic route: its path
/// and body (with the PII flag, asking the mock to think about the prompt).
fn thinking_turn(client: &str, stream: bool, messages: Value) -> (&'static str, Value) {
    let (path, mut body) = match client {
        "anthropic" => ("/v1/messages", json!({"model": "claude", "max_tokens": 64})),
        _ => ("/v1/chat/completions", json!({"model": "claude"})),
    };
    body["stream"] = json!(stream);
    body["pii_substitution"] = json!(true);
    body["messages"] = messages;
    (path, body)
}

/// The assistant turn `client` builds from an answer.
fn assistant_turn(client: &str, r: &Response) -> Value {
    match client {
        "anthropic" => anthropic_assistant_turn(r),
        _ => openai_assistant_turn(r),
    }
}

/// The thinking block the client holds from an answer.
fn held_thinking(client: &str, assistant: &Value) -> Value {
    match client {
        "anthropic" => assistant["content"][0].clone(),
        _ => assistant["thinking_blocks"][0].clone(),
    }
}

/// The model thinks about the stand-in it was given and names an address of its own
/// (help@mock.example.net). The client gets its original back in the thinking text, under a
/// signature the gateway sealed; sent back, the block reaches the provider exactly as the
/// provider wrote and signed it (the mock, like the Messages API, refuses any other text), with
/// no original in it.
#[test]
fn thinking_is_restored_and_goes_back_to_the_provider_as_signed() {
    let (m, g) = setup("");
    ADDR.with(|a| a.set(Some(g.addr)));
    let first = format!("mock:thinking=echo mail {}", ORIGINALS[0]);
    let turn1 = json!({"role": "user", "content": first});
    let mut texts = Vec::new();
    for stream in [false, true] {
        for client in ["anthropic", "openai"] {
            let what = format!("{client} stream={stream}");
            let (path, mut body) = thinking_turn(client, stream, json!([turn1]));
            let r = request_to(path, body.clone());
            assert_restored(&r, &ORIGINALS[..1]);
            let assistant = assistant_turn(client, &r);
            let thinking = held_thinking(client, &assistant);
            let text = thinking["thinking"].as_str().unwrap().to_owned();
            assert!(text.contains(ORIGINALS[0]), "{what}: {text}");
            assert!(text.contains("help@mock.example.net"), "{what}: {text}");
            let sealed = thinking["signature"].as_str().unwrap().to_owned();
            assert!(sealed.starts_with("rw1."), "{what}: {sealed}");
            texts.push(text);

            let produced = mock_requests(&m).len();
            let turn3 = json!({"role": "user", "content": "and again"});
            body["messages"] = json!([turn1, assistant, turn3]);
            let r = request_to(path, body.clone());
            assert_eq!(r.status, 200, "{what}: {}", r.text());
            let seen = mock_requests(&m);
            assert_eq!(seen.len(), produced + 1);
            let sent: Value =
                serde_json::from_str(seen.last().unwrap()["body"].as_str().unwrap()).unwrap();
            let block = &sent["messages"][1]["content"][0];
            assert_eq!(block["type"], "thinking");
            let upstream = block["thinking"].as_str().unwrap();
            assert!(!upstream.contains(ORIGINALS[0]), "{what}: {upstream}");
            assert!(upstream.contains("help@mock.example.net"), "{what}");
            assert!(!block["signature"].as_str().unwrap().starts_with("rw1."));

            // Without PII on for the next request the block still goes back as signed (the
            // rest of this request holds no original: PII off sends what the client wrote).
            body.as_object_mut().unwrap().remove("pii_substitution");
            let only_thinking = match client {
                "anthropic" => json!({"role": "assistant", "content": [thinking]}),
                _ => json!({"role": "assistant", "content": "ok", "thinking_blocks": [thinking]}),
            };
            body["messages"] = json!([
                {"role": "user", "content": "mock:thinking=echo mail avery@example.org"},
                only_thinking,
                turn3
            ]);
            let r = request_to(path, body);
            assert_eq!(r.status, 200, "{what}, PII off: {}", r.text());
        }
    }
    // Whole and streamed, both dialects: the same restored text.
    assert!(texts.windows(2).all(|w| w[0] == w[1]), "{texts:?}");
    assert_mock_saw_no_original(&m);
}

/// A sealed block whose text the client changed, or whose seal cannot be opened, is refused
/// with a 400 in the client's format naming the field; nothing goes upstream.
#[test]
fn a_changed_thinking_text_or_a_foreign_seal_is_refused() {
    let (m, g) = setup("");
    ADDR.with(|a| a.set(Some(g.addr)));
    let turn1 =
        json!({"role": "user", "content": format!("mock:thinking=echo mail {}", ORIGINALS[0])});
    for client in ["anthropic", "openai"] {
        let (path, mut body) = thinking_turn(client, false, json!([turn1]));
        let r = request_to(path, body.clone());
        let assistant = assistant_turn(client, &r);
        let list = match client {
            "anthropic" => "content",
            _ => "thinking_blocks",
        };
        let before = mock_requests(&m).len();
        for (member, value, why) in [
            ("thinking", json!("I changed my mind"), "not the text"),
            (
                "signature",
                json!("rw1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
                "cannot be opened",
            ),
        ] {
            let mut changed = assistant.clone();
            changed[list][0][member] = value;
            body["messages"] = json!([turn1, changed, {"role": "user", "content": "again"}]);
            let r = request_to(path, body.clone());
            assert_eq!(r.status, 400, "{client} {member}: {}", r.text());
            let v = r.json();
            let field = format!("messages[1].{list}[0].{member}");
            let message = v["error"]["message"].as_str().unwrap();
            assert!(message.contains(&field) && message.contains(why), "{v}");
            match client {
                "anthropic" => assert_eq!(v["error"]["type"], "invalid_request_error", "{v}"),
                _ => assert_eq!(v["error"]["param"], field.as_str(), "{v}"),
            }
        }
        assert_eq!(mock_requests(&m).len(), before, "nothing went upstream");
    }
    assert_mock_saw_no_original(&m);
}

/// Reasoning shown as text (an OpenAI client's `reasoning_content`, a Responses reasoning
/// summary) is restored, streamed and whole; a Responses client's reasoning item goes back
/// through its sealed `encrypted_content`, which the provider accepts.
#[test]
fn reasoning_text_is_restored_for_openai_and_responses_clients() {
    let (m, g) = setup("");
    ADDR.with(|a| a.set(Some(g.addr)));
    let prompt = format!("mock:thinking=echo mail {}", ORIGINALS[0]);
    for stream in [false, true] {
        let (path, body) = thinking_turn(
            "openai",
            stream,
            json!([{"role": "user", "content": prompt}]),
        );
        let r = request_to(path, body);
        let text = client_text(&r);
        let reasoning = if stream {
            sse_events(text.as_bytes())
                .iter()
                .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
                .filter_map(|v| {
                    v["choices"][0]["delta"]["reasoning_content"]
                        .as_str()
                        .map(str::to_owned)
                })
                .collect::<String>()
        } else {
            r.json()["choices"][0]["message"]["reasoning_content"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert!(
            reasoning.contains(ORIGINALS[0]),
            "stream={stream}: {reasoning}\n{text}"
        );
        assert!(reasoning.contains("help@mock.example.net"), "{reasoning}");

        let input = json!([{"role": "user", "content": [{"type": "input_text", "text": prompt}]}]);
        let body = json!({"model": "claude", "stream": stream, "pii_substitution": true,
            "include": ["reasoning.encrypted_content"], "reasoning": {"summary": "auto"},
            "input": input});
        let r = request_to("/v1/responses", body.clone());
        let text = client_text(&r);
        let (summary, output) = if stream {
            let events: Vec<Value> = sse_events(text.as_bytes())
                .iter()
                .filter_map(|(_, d)| serde_json::from_str(d).ok())
                .collect();
            let summary: String = events
                .iter()
                .filter(|v| v["type"] == "response.reasoning_summary_text.delta")
                .filter_map(|v| v["delta"].as_str())
                .collect();
            let done = events
                .iter()
                .find(|v| v["type"] == "response.completed")
                .unwrap();
            (summary, done["response"]["output"].clone())
        } else {
            let v = r.json();
            let summary = v["output"][0]["summary"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (summary, v["output"].clone())
        };
        assert!(
            summary.contains(ORIGINALS[0]),
            "stream={stream}: {summary}\n{text}"
        );
        assert_eq!(output[0]["type"], "reasoning", "{output}");
        assert!(output[0]["summary"][0]["text"]
            .as_str()
            .unwrap()
            .contains(ORIGINALS[0]));
        // The next turn hands the reasoning item back: the provider gets its own text.
        let mut next = body;
        let mut items = input.as_array().unwrap().clone();
        items.extend(output.as_array().unwrap().iter().cloned());
        items.push(json!({"role": "user", "content": [{"type": "input_text", "text": "again"}]}));
        next["input"] = json!(items);
        let r = request_to("/v1/responses", next);
        assert_eq!(r.status, 200, "stream={stream}: {}", r.text());
        let seen = mock_requests(&m);
        let sent = seen.last().unwrap()["body"].as_str().unwrap().to_owned();
        assert!(sent.contains("\"type\":\"thinking\""), "{sent}");
    }
    assert_mock_saw_no_original(&m);
}

/// A route's policy holds whatever name reaches the route: its own, an alias, and its target
/// addressed directly as `provider/model` (with or without `@`). Another route to the same
/// deployment keeps its own policy (off here), which shows the mock would see an original.
#[test]
fn a_route_policy_holds_for_aliases_and_direct_addressing() {
    let m = mock(&[]);
    let cfg = format!(
        "[pii]\nroutes = [\"private-alias\"]\n\n{}\n[[route]]\nmodel = \"private\"\n\
         aliases = [\"private-alias\"]\ntargets = [\"mo/mock-gpt-up\"]\n",
        standard_providers(&m)
    );
    let g = gateway_env(&cfg, PROVIDER_KEYS);
    ADDR.with(|a| a.set(Some(g.addr)));
    for model in [
        "private",
        "private-alias",
        "mo/mock-gpt-up",
        "@mo/mock-gpt-up",
    ] {
        for stream in [false, true] {
            assert_restored(&openai(model, &prompt(), stream, false, false), ORIGINALS);
        }
    }
    assert_mock_saw_no_original(&m);
    let r = openai("gpt", &prompt(), false, false, false);
    assert_eq!(r.status, 200);
    let seen = serde_json::to_string(&mock_requests(&m)).unwrap();
    assert!(seen.contains(ORIGINALS[0]), "route gpt has no policy");
}

/// Every string of `v`, decoded, one a line; a string holding JSON text is opened too, and
/// must parse when it looks like an object.
fn decoded_strings(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
            match serde_json::from_str::<Value>(s) {
                Ok(inner @ (Value::Object(_) | Value::Array(_) | Value::String(_))) => {
                    decoded_strings(&inner, out)
                }
                Ok(_) => {}
                Err(e) => assert!(
                    !(s.starts_with('{') && s.ends_with('}')),
                    "JSON text no longer parses: {e}: {s}"
                ),
            }
        }
        Value::Array(items) => items.iter().for_each(|i| decoded_strings(i, out)),
        Value::Object(m) => m.iter().for_each(|(k, v)| {
            out.push_str(k);
            out.push('\n');
            decoded_strings(v, out);
        }),
        _ => {}
    }
}

#[test]
fn json_text_in_tool_arguments_and_results_is_substituted_decoded() {
    let names = temp_path("names.txt");
    std::fs::write(&names, "# people\nGarcía\n").unwrap();
    let (m, g) = setup(&format!(
        "[pii]\nenabled = true\ndictionaries = [{:?}]\n",
        names.display().to_string()
    ));
    ADDR.with(|a| a.set(Some(g.addr)));
    // As Python's `json.dumps` writes it: `í` and `é` escaped, the address glued to the `é`.
    let args = r#"{"name": "Garc\u00eda", "to": "\u00e9jane.doe@corp.example.io", "note": "caf\u00e9", "n": 1.50}"#;
    let originals = ["García", ORIGINALS[0]];
    let send = json!({"type": "function", "name": "send", "parameters": {"type": "object"}});
    for stream in [false, true] {
        for model in ["gpt", "claude"] {
            let chat = json!({"model": model, "stream": stream,
                "tools": [{"type": "function", "function": {"name": "send", "parameters": {"type": "object"}}}],
                "messages": [{"role": "user", "content": "send it"},
                    {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1",
                        "type": "function", "function": {"name": "send", "arguments": args}}]},
                    {"role": "tool", "tool_call_id": "call_1", "content": args}]});
            let messages = json!({"model": model, "stream": stream, "max_tokens": 64,
                "tools": [{"name": "send", "input_schema": {"type": "object"}}],
                "messages": [{"role": "user", "content": "send it"},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
                        "name": "send", "input": serde_json::from_str::<Value>(args).unwrap()}]},
                    {"role": "user", "content": [{"type": "tool_result",
                        "tool_use_id": "toolu_1", "content": args}]}]});
            let responses = json!({"model": model, "stream": stream, "tools": [send],
                "input": [{"role": "user", "content": "send it"},
                    {"type": "function_call", "call_id": "call_1", "name": "send", "arguments": args},
                    {"type": "function_call_output", "call_id": "call_1", "output": args}]});
            for (path, body) in [
                ("/v1/chat/completions", chat),
                ("/v1/messages", messages),
                ("/v1/responses", responses),
            ] {
                let r = request_to(path, body);
                assert_numbered_in_turn(&r);
                let text = client_text(&r);
                // The mock echoes the tool's result, stand-ins and all: the client reads it
                // with its originals.
                let answer = if stream {
                    join_deltas(&text)
                } else {
                    let mut all = String::new();
                    decoded_strings(&serde_json::from_str(&text).unwrap(), &mut all);
                    all
                };
                for o in originals {
                    assert!(
                        answer.contains(o),
                        "{path} {model} stream={stream}: {o} not restored in {answer}"
                    );
                }
                // The provider got valid JSON text, decoded nowhere to an original.
                let seen = mock_requests(&m);
                let sent: Value =
                    serde_json::from_str(seen.last().unwrap()["body"].as_str().unwrap()).unwrap();
                let mut all = String::new();
                decoded_strings(&sent, &mut all);
                for o in originals {
                    assert!(
                        !all.contains(o),
                        "{path} {model}: {o} reached the provider: {all}"
                    );
                }
                assert!(all.contains("café"), "{path} {model}: {all}");
            }
        }
    }
}

/// The provider's log, every request's body as it arrived, decoded (JSON text in strings too).
fn mock_saw(m: &Proc) -> String {
    let mut all = String::new();
    for r in mock_requests(m) {
        let body = r["body"].as_str().unwrap_or_default();
        match serde_json::from_str::<Value>(body) {
            Ok(v) => decoded_strings(&v, &mut all),
            Err(_) => all.push_str(body),
        }
        all.push('\n');
    }
    all
}

fn assert_mock_saw_none(m: &Proc, originals: &[&str], what: &str) {
    let seen = mock_saw(m);
    assert!(!seen.trim().is_empty(), "{what}: the provider saw nothing");
    for o in originals {
        assert!(
            !seen.contains(o),
            "{what}: {o} reached the provider: {seen}"
        );
    }
}

/// Only the signed members of a thinking block where one can be (an assistant turn's content,
/// or an OpenAI client's `thinking_blocks`) go unread; an object that merely says
/// `"type":"thinking"` anywhere else is searched like any other.
#[test]
fn an_object_that_only_claims_to_be_thinking_is_searched() {
    let (m, g) = setup("");
    ADDR.with(|a| a.set(Some(g.addr)));
    let mail = ORIGINALS[0];
    for model in ["claude", "gpt"] {
        // Translation drops the message's `type`: the text would reach the provider as plain
        // user text.
        let body = json!({"model": model, "pii_substitution": true, "messages": [
            {"role": "user", "type": "thinking", "content": format!("my email is {mail}")}]});
        let r = request_to("/v1/chat/completions", body);
        assert_restored(&r, &[mail]);
        let body = json!({"model": model, "pii_substitution": true, "max_tokens": 64,
            "messages": [
                {"role": "user", "type": "redacted_thinking", "content": [
                    {"type": "text", "text": format!("mail {mail}")}]}]});
        let r = request_to("/v1/messages", body);
        assert_restored(&r, &[mail]);
        // A thinking block in a user turn is no signed block: its text is read (the mock,
        // like the Messages API, then refuses the signature; the address never reached it).
        let body = json!({"model": model, "pii_substitution": true, "max_tokens": 64,
            "messages": [{"role": "user", "content": [
                {"type": "thinking", "thinking": format!("note {mail}"), "signature": "c2ln"},
                {"type": "text", "text": "hello"}]}]});
        let _ = request_to("/v1/messages", body);
    }
    assert_mock_saw_none(&m, &[mail], "claimed thinking");
}

/// An operator regex match glued to a word (`MRN654321x` for `MRN\d{6}`) is replaced with the
/// word around it, so its stand-in can be restored; a match that cannot be replaced at all (it
/// holds a control character) refuses the request, naming the kind; a dictionary name that
/// overlaps a regex match is not left half in place.
#[test]
fn operator_regex_matches_inside_words_are_never_sent() {
    let names = temp_path("names.txt");
    std::fs::write(&names, "Jane Doe\n").unwrap();
    let (m, g) = setup(&format!(
        "[pii]\nenabled = true\nregexes = [\"MRN\\\\d{{6}}\", \"Ref:\\\\s\\\\d{{4}}\", \"Patient: \\\\w+\"]\n\
         dictionaries = [{:?}]\n",
        names.display().to_string()
    ));
    ADDR.with(|a| a.set(Some(g.addr)));
    for stream in [false, true] {
        for model in ["gpt", "claude"] {
            let r = openai(
                model,
                "record MRN654321x and 7MRN123456",
                stream,
                false,
                false,
            );
            assert_restored(&r, &["MRN654321x", "7MRN123456"]);
            let r = anthropic(model, "Patient: Jane Doe arrived", stream, false, false);
            assert_restored(&r, &["Patient: Jane Doe"]);
        }
    }
    assert_mock_saw_none(&m, &["MRN654321", "MRN123456", "Jane Doe", " Doe"], "glued");
    let before = mock_requests(&m).len();
    let r = openai("gpt", "see Ref:\n1234 now", false, false, false);
    assert_eq!(r.status, 400, "{}", r.text());
    let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("regex"), "{message}");
    let r = anthropic("claude", "see Ref:\n1234 now", false, false, false);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("regex"));
    assert_eq!(mock_requests(&m).len(), before, "nothing was sent");
}

/// Text that reaches the model or the provider's logs outside the conversation: the end
/// user's id, metadata, a predicted output, tool and schema descriptions and enum values, a
/// participant's name, instructions. Tool names and ids reach the provider unchanged.
#[test]
fn every_field_that_reaches_the_provider_is_searched() {
    let (m, g) = setup("");
    ADDR.with(|a| a.set(Some(g.addr)));
    let [mail, card, ip] = [ORIGINALS[0], ORIGINALS[1], ORIGINALS[2]];
    let schema = json!({"type": "object", "description": format!("for {mail}"),
        "properties": {"to": {"type": "string", "description": format!("like {card}"),
            "enum": [mail, "other"]},
            "description": {"type": "string", "title": format!("from {ip}")}}});
    for stream in [false, true] {
        for model in ["gpt", "claude"] {
            let chat = json!({"model": model, "stream": stream, "pii_substitution": true,
                "user": ip, "safety_identifier": ip, "metadata": {"contact": mail},
                "tools": [{"type": "function", "function": {"name": "send",
                    "description": format!("mails {mail}"), "parameters": schema}}],
                "messages": [{"role": "user", "name": mail, "content": "hello"},
                    {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1",
                        "type": "function", "function": {"name": "send", "arguments": "{}"}}]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "sent"}]});
            let messages = json!({"model": model, "stream": stream, "pii_substitution": true,
                "max_tokens": 64, "metadata": {"user_id": ip}, "system": format!("admin {mail}"),
                "tools": [{"name": "send", "description": format!("mails {mail}"),
                    "input_schema": schema}],
                "messages": [{"role": "user", "content": "hello"},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
                        "name": "send", "input": {}}]},
                    {"role": "user", "content": [{"type": "tool_result",
                        "tool_use_id": "toolu_1", "content": "sent"}]}]});
            let responses = json!({"model": model, "stream": stream, "pii_substitution": true,
                "user": ip, "metadata": {"contact": mail}, "instructions": format!("admin {mail}"),
                "tools": [{"type": "function", "name": "send",
                    "description": format!("mails {mail}"), "parameters": schema}],
                "input": [{"role": "user", "content": "hello"},
                    {"type": "function_call", "call_id": "call_1", "name": "send", "arguments": "{}"},
                    {"type": "function_call_output", "call_id": "call_1", "output": "sent"}]});
            for (path, body) in [
                ("/v1/chat/completions", chat),
                ("/v1/messages", messages),
                ("/v1/responses", responses),
            ] {
                let r = request_to(path, body);
                assert_eq!(r.status, 200, "{path} {model}: {}", r.text());
                let seen = mock_requests(&m);
                let sent = seen.last().unwrap()["body"].as_str().unwrap().to_owned();
                assert!(sent.contains("\"send\""), "{path} {model}: {sent}");
                assert!(
                    sent.contains("call_1") || sent.contains("toolu_1"),
                    "{path} {model}: {sent}"
                );
            }
        }
    }
    // Prediction is an OpenAI-only field: sent as it is to an OpenAI provider.
    let body = json!({"model": "gpt", "pii_substitution": true,
        "prediction": {"type": "content", "content": [{"type": "text", "text": format!("to {mail}")}]},
        "messages": [{"role": "user", "content": "hello"}]});
    assert_eq!(request_to("/v1/chat/completions", body).status, 200);
    assert_mock_saw_none(&m, ORIGINALS, "fields");
}

/// Keys are content in a tool call's data, whether Anthropic's `input` object or OpenAI's
/// JSON-text arguments: a map keyed by an address is the address.
#[test]
fn keys_in_tool_call_input_are_substituted_like_keys_in_arguments() {
    let (m, g) = setup("");
    ADDR.with(|a| a.set(Some(g.addr)));
    let mail = ORIGINALS[0];
    let input = json!({mail: {"note": "vip"}});
    for model in ["gpt", "claude"] {
        let messages = json!({"model": model, "pii_substitution": true, "max_tokens": 64,
            "tools": [{"name": "send", "input_schema": {"type": "object"}}],
            "messages": [{"role": "user", "content": "send it"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
                    "name": "send", "input": input}]},
                {"role": "user", "content": [{"type": "tool_result",
                    "tool_use_id": "toolu_1", "content": "done"}]}]});
        let chat = json!({"model": model, "pii_substitution": true,
            "tools": [{"type": "function", "function": {"name": "send", "parameters": {"type": "object"}}}],
            "messages": [{"role": "user", "content": "send it"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1",
                    "type": "function", "function": {"name": "send", "arguments": input.to_string()}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "done"}]});
        for (path, body) in [("/v1/messages", messages), ("/v1/chat/completions", chat)] {
            let r = request_to(path, body);
            assert_eq!(r.status, 200, "{path} {model}: {}", r.text());
        }
    }
    assert_mock_saw_none(&m, &[mail], "keys");
}

/// Dictionary names beside curly quotes, guillemets, dashes and CJK text, and in capitals
/// with a non-ASCII letter, never reach the provider.
#[test]
fn dictionary_names_beside_non_ascii_text_and_in_capitals_are_substituted() {
    let names = temp_path("names-non-ascii.txt");
    std::fs::write(&names, "García\nJane Doe\n").unwrap();
    let (m, g) = setup(&format!(
        "[pii]\nenabled = true\ndictionaries = [{:?}]\n",
        names.display().to_string()
    ));
    ADDR.with(|a| a.set(Some(g.addr)));
    let prompt = "Jane Doe’s file. “Jane Doe” called. «García». Dr. Jane Doe—the patient. \
                  患者García. GARCÍA called.";
    for path in ["/v1/chat/completions", "/v1/messages"] {
        let body = json!({"model": "gpt", "max_tokens": 64,
            "messages": [{"role": "user", "content": prompt}]});
        let r = request_to(path, body);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    assert_mock_saw_none(
        &m,
        &["Jane Doe", "García", "GARCÍA"],
        "non-ASCII neighbours",
    );
}

/// An agent-size body with PII on by config (no flag to take out): its long strings, escaped
/// and not, reach the provider exactly, same-format and translated, with only the entities
/// replaced. This is the path where the inspection after substitution crosses long strings by
/// the notes moved with the rewritten tokens, and translation by that inspection's notes (the
/// notes themselves are checked in `json::spans` and by fuzz target `pii_substitute`).
#[test]
fn long_strings_around_substituted_ones_reach_the_provider_exactly() {
    let m = mock(&[]);
    let cfg = format!("[pii]\nenabled = true\n\n{}", standard_providers(&m));
    let g = gateway_env(&cfg, PROVIDER_KEYS);
    ADDR.with(|a| a.set(Some(g.addr)));
    let code = "fn main() {\n    println!(\"hello \\\\ world\");\n}\n".repeat(20);
    let prose = "Plain words with no escape at all, repeated for length. ".repeat(12);
    let before = "Context line one.\nContext \"two\".\n".repeat(6);
    let after = "\n\tTrailing text after the address, long enough to be noted.".repeat(3);
    let with_entity = format!("{before}mail {} now{after}", ORIGINALS[0]);
    let with_two = format!(
        "{prose}host {} and card {}\n{code}",
        ORIGINALS[2], ORIGINALS[1]
    );
    for model in ["gpt", "claude"] {
        let body = json!({"model": model, "max_tokens": 64, "messages": [
            {"role": "system", "content": code},
            {"role": "user", "content": with_entity},
            {"role": "assistant", "content": prose},
            {"role": "user", "content": with_two},
            {"role": "assistant", "content": before},
            {"role": "user", "content": format!("{code}{}", ORIGINALS[0])}]});
        let r = request_to("/v1/chat/completions", body);
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        let seen = mock_saw(&m);
        for o in ORIGINALS {
            assert!(!seen.contains(o), "{model}: {o} reached the provider");
        }
        for whole in [&code, &prose, &before] {
            assert!(
                seen.contains(whole.as_str()),
                "{model}: a long string changed: {seen}"
            );
        }
        for piece in [
            format!("{before}mail "),
            format!(" now{after}"),
            format!("{prose}host "),
            format!("\n{code}"),
        ] {
            assert!(
                seen.contains(&piece),
                "{model}: text around an entity changed"
            );
        }
    }
}
