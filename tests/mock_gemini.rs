//! The mock provider's Gemini side over real sockets: the Gemini API (keys, models, generate,
//! both stream forms decoded back, countTokens), finish reasons, blocked prompts, usage, both
//! error shapes, Gemini 3 thought signatures issued and enforced, the `parameters` schema
//! subset, and Gemini on Vertex behind a bearer token.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{json, Value};

const KEY: (&str, &str) = ("x-goog-api-key", "test-key");

fn body(prompt: &str, extra: Value) -> String {
    let mut b = json!({"contents": [{"role": "user", "parts": [{"text": prompt}]}]});
    if let (Some(b), Some(e)) = (b.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    b.to_string()
}

fn generate(mock: &Proc, model: &str, body: &str) -> Response {
    request(
        mock.addr,
        &post(
            &format!("/v1beta/models/{model}:generateContent"),
            &[KEY],
            body,
        ),
    )
}

/// The chunks of a `alt=sse` stream.
fn sse_chunks(r: &Response) -> Vec<Value> {
    let text = r.text();
    assert!(text.ends_with("\r\n\r\n"), "{text}");
    text.split("\r\n\r\n")
        .filter(|b| !b.is_empty())
        .map(|b| serde_json::from_str(b.strip_prefix("data: ").unwrap()).unwrap())
        .collect()
}

fn stream(mock: &Proc, model: &str, sse: bool, body: &str) -> Response {
    let q = if sse { "?alt=sse" } else { "" };
    request(
        mock.addr,
        &post(
            &format!("/v1beta/models/{model}:streamGenerateContent{q}"),
            &[KEY],
            body,
        ),
    )
}

fn text_of(chunks: &[Value]) -> String {
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
fn generate_and_both_stream_forms() {
    let mock = mock(&[]);
    let r = generate(&mock, "gemini-2.5-flash", &body("hi there", json!({})));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let c = &v["candidates"][0];
    assert_eq!(
        c["content"]["parts"][0]["text"],
        "Hello from the ringway mock. You said: hi there"
    );
    assert_eq!(c["content"]["role"], "model");
    assert_eq!(c["finishReason"], "STOP");
    assert_eq!(v["modelVersion"], "gemini-2.5-flash");
    assert!(v["responseId"].as_str().unwrap().len() > 10);
    let u = &v["usageMetadata"];
    assert_eq!(
        u["totalTokenCount"].as_u64().unwrap(),
        u["promptTokenCount"].as_u64().unwrap() + u["candidatesTokenCount"].as_u64().unwrap()
    );

    let b = body("hi there", json!({}));
    let r = stream(&mock, "gemini-2.5-flash", true, &b);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let chunks = sse_chunks(&r);
    assert!(chunks.len() > 3);
    assert_eq!(
        text_of(&chunks),
        "Hello from the ringway mock. You said: hi there"
    );
    let last = chunks.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert!(chunks[..chunks.len() - 1]
        .iter()
        .all(|c| c["candidates"][0]["finishReason"].is_null()));
    assert_eq!(last["usageMetadata"], v["usageMetadata"]);

    let r = stream(&mock, "gemini-2.5-flash", false, &b);
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    assert!(r.text().starts_with('['), "{}", r.text());
    let arr: Vec<Value> = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(arr.len(), chunks.len());
    assert_eq!(text_of(&arr), text_of(&chunks));

    // Split into fixed pieces: still the same stream once joined.
    let r = stream(
        &mock,
        "gemini-2.5-flash",
        true,
        &body("hi there mock:split=7", json!({})),
    );
    assert_eq!(
        text_of(&sse_chunks(&r)),
        "Hello from the ringway mock. You said: hi there"
    );
    // The record names the model of the path.
    let recs = mock_requests(&mock);
    assert_eq!(recs.last().unwrap()["model"], "gemini-2.5-flash");
}

#[test]
fn keys_models_and_count_tokens() {
    let mock = mock(&[]);
    let b = body("hi", json!({}));
    let path = "/v1beta/models/gemini-2.5-pro:generateContent";
    let r = request(mock.addr, &post(path, &[], &b));
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["status"], "PERMISSION_DENIED");
    let r = request(mock.addr, &post(path, &[("x-goog-api-key", "bad-key")], &b));
    assert_eq!(r.status, 400);
    let e = &r.json()["error"];
    assert_eq!(
        e["message"],
        "API key not valid. Please pass a valid API key."
    );
    assert_eq!(e["details"][0]["reason"], "API_KEY_INVALID");
    // `?key=` works as the header does; on a JSON-array stream the error is array-wrapped.
    let r = request(mock.addr, &post(&format!("{path}?key=k1"), &[], &b));
    assert_eq!(r.status, 200);
    let r = request(
        mock.addr,
        &post(
            "/v1beta/models/gemini-2.5-pro:streamGenerateContent?key=bad",
            &[],
            &b,
        ),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()[0]["error"]["details"][0]["reason"],
        "API_KEY_INVALID"
    );

    let r = request(mock.addr, &get("/v1beta/models", &[KEY]));
    assert_eq!(r.status, 200);
    let names: Vec<String> = r.json()["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        names.contains(&"models/gemini-2.5-pro".to_owned()),
        "{names:?}"
    );
    let r = request(mock.addr, &get("/v1beta/models/gemini-2.5-pro", &[KEY]));
    assert_eq!(r.json()["supportedGenerationMethods"][0], "generateContent");
    let r = request(mock.addr, &get("/v1beta/models/nonexistent-9", &[KEY]));
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["status"], "NOT_FOUND");

    let r = request(
        mock.addr,
        &post("/v1beta/models/gemini-2.5-pro:countTokens", &[KEY], &b),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["totalTokens"], b.len().div_ceil(4));
}

#[test]
fn finish_reasons_blocked_prompts_usage_and_errors() {
    let mock = mock(&[]);
    for reason in [
        "STOP",
        "MAX_TOKENS",
        "SAFETY",
        "RECITATION",
        "MALFORMED_FUNCTION_CALL",
        "OTHER",
    ] {
        let prompt = format!("a b c d e mock:finish={reason}");
        let v = generate(&mock, "gemini-2.5-flash", &body(&prompt, json!({}))).json();
        assert_eq!(v["candidates"][0]["finishReason"], reason);
        let has_content = !v["candidates"][0]["content"].is_null();
        assert_eq!(
            has_content,
            matches!(reason, "STOP" | "MAX_TOKENS"),
            "{reason}"
        );
        let r = stream(&mock, "gemini-2.5-flash", true, &body(&prompt, json!({})));
        let chunks = sse_chunks(&r);
        assert_eq!(
            chunks.last().unwrap()["candidates"][0]["finishReason"],
            reason
        );
        if reason != "STOP" {
            assert_eq!(text_of(&chunks), "Hello from the", "{reason}");
        }
    }
    let v = generate(
        &mock,
        "gemini-2.5-flash",
        &body("mock:finish=SAFETY", json!({})),
    )
    .json();
    assert_eq!(v["candidates"][0]["safetyRatings"][1]["blocked"], true);
    // Every documented reason is accepted.
    for reason in mock_reasons() {
        let v = generate(
            &mock,
            "m",
            &body(&format!("mock:finish={reason}"), json!({})),
        )
        .json();
        assert_eq!(v["candidates"][0]["finishReason"], reason);
    }

    let v = generate(
        &mock,
        "gemini-2.5-flash",
        &body("mock:prompt_blocked", json!({})),
    )
    .json();
    assert!(v.get("candidates").is_none());
    assert_eq!(v["promptFeedback"]["blockReason"], "SAFETY");
    let chunks = sse_chunks(&stream(
        &mock,
        "gemini-2.5-flash",
        true,
        &body("mock:prompt_blocked=PROHIBITED_CONTENT", json!({})),
    ));
    assert_eq!(chunks.len(), 1);
    assert_eq!(
        chunks[0]["promptFeedback"]["blockReason"],
        "PROHIBITED_CONTENT"
    );

    // Usage: thoughts (shown when asked for), cache.
    let b = body(
        "hi mock:thinking mock:cached=5",
        json!({"generationConfig": {"thinkingConfig": {"includeThoughts": true}}}),
    );
    let v = generate(&mock, "gemini-2.5-pro", &b).json();
    let parts = &v["candidates"][0]["content"]["parts"];
    assert_eq!(parts[0]["thought"], true);
    assert!(parts[1]["thought"].is_null());
    let u = &v["usageMetadata"];
    assert_eq!(u["cachedContentTokenCount"], 5);
    let thoughts = u["thoughtsTokenCount"].as_u64().unwrap();
    assert!(thoughts > 0);
    assert_eq!(
        u["totalTokenCount"].as_u64().unwrap(),
        u["promptTokenCount"].as_u64().unwrap()
            + u["candidatesTokenCount"].as_u64().unwrap()
            + thoughts
    );
    let b = body("hi mock:thinking", json!({}));
    let v = generate(&mock, "gemini-2.5-pro", &b).json();
    assert_eq!(
        v["candidates"][0]["content"]["parts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(v["usageMetadata"]["thoughtsTokenCount"].as_u64().unwrap() > 0);

    // Errors: object on generate and SSE, array on the JSON-array stream.
    let r = generate(&mock, "m", &body("mock:status=429", json!({})));
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["status"], "RESOURCE_EXHAUSTED");
    let r = stream(&mock, "m", false, &body("mock:status=503", json!({})));
    assert_eq!(r.status, 503);
    assert_eq!(r.json()[0]["error"]["status"], "UNAVAILABLE");
    let r = stream(&mock, "m", true, &body("mock:midstream_error", json!({})));
    let chunks = sse_chunks(&r);
    assert_eq!(chunks.last().unwrap()["error"]["code"], 500);
    // The fault table by model, in Gemini's shape.
    set_faults(&mock, &json!({"gemini-faulty": "status=500"}));
    let r = generate(&mock, "gemini-faulty", &body("hi", json!({})));
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["error"]["status"], "INTERNAL");
}

fn mock_reasons() -> Vec<&'static str> {
    vec![
        "FINISH_REASON_UNSPECIFIED",
        "LANGUAGE",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_OTHER",
        "NO_IMAGE",
        "IMAGE_RECITATION",
        "UNEXPECTED_TOOL_CALL",
        "TOO_MANY_TOOL_CALLS",
        "MISSING_THOUGHT_SIGNATURE",
        "MALFORMED_RESPONSE",
    ]
}

fn read_tool() -> Value {
    json!([{"functionDeclarations": [{"name": "read_file", "description": "Read a file",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}]}])
}

#[test]
fn thought_signatures_are_issued_and_enforced() {
    let mock = mock(&[]);
    let model = "gemini-3-pro-preview";
    let b = body("read a.txt mock:parallel", json!({"tools": read_tool()}));
    let v = generate(&mock, model, &b).json();
    let parts = v["candidates"][0]["content"]["parts"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(parts.len(), 2, "{v}");
    assert_eq!(parts[0]["functionCall"]["name"], "read_file");
    assert!(parts[0]["functionCall"]["id"].is_string());
    let sig = parts[0]["thoughtSignature"].as_str().unwrap().to_owned();
    assert!(
        parts[1].get("thoughtSignature").is_none(),
        "only the first parallel call"
    );
    // The stream carries the same signature on the same call.
    let chunks = sse_chunks(&stream(&mock, model, true, &b));
    let streamed: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["candidates"][0]["content"]["parts"][0].get("thoughtSignature"))
        .collect();
    assert_eq!(streamed, [&Value::from(sig.as_str())]);

    let next = |part0: Value| {
        json!({"contents": [
            {"role": "user", "parts": [{"text": "read a.txt"}]},
            {"role": "model", "parts": [part0, parts[1].clone()]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "read_file", "response": {"output": "contents A"}}},
                {"functionResponse": {"name": "read_file", "response": {"output": "contents B"}}}]},
        ], "tools": read_tool()})
        .to_string()
    };
    let r = generate(&mock, model, &next(parts[0].clone()));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["candidates"][0]["content"]["parts"][0]["text"],
        "Tool result received: contents A contents B"
    );
    // A text answer of a Gemini 3 model carries a signature on its last part.
    assert!(r.json()["candidates"][0]["content"]["parts"][0]["thoughtSignature"].is_string());

    let mut missing = parts[0].clone();
    missing.as_object_mut().unwrap().remove("thoughtSignature");
    let r = generate(&mock, model, &next(missing.clone()));
    assert_eq!(r.status, 400);
    let e = &r.json()["error"];
    assert_eq!(e["status"], "INVALID_ARGUMENT");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("Function call is missing a thought_signature in functionCall parts."),
        "{e}"
    );
    // The same history on a Gemini 2.5 model: no check.
    assert_eq!(
        generate(&mock, "gemini-2.5-pro", &next(missing.clone())).status,
        200
    );

    let mut altered = parts[0].clone();
    altered["functionCall"]["args"]["path"] = Value::from("b.txt");
    let r = generate(&mock, model, &next(altered));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["message"], "Corrupted thought signature.");

    let mut skipped = missing;
    skipped["thoughtSignature"] = Value::from("skip_thought_signature_validator");
    assert_eq!(generate(&mock, model, &next(skipped.clone())).status, 200);
    // snake_case, as proto JSON parsers take it.
    let mut snake = parts[0].clone();
    let s = snake
        .as_object_mut()
        .unwrap()
        .remove("thoughtSignature")
        .unwrap();
    snake["thought_signature"] = s;
    assert_eq!(generate(&mock, model, &next(snake)).status, 200);
}

#[test]
fn schema_subset_is_enforced() {
    let mock = mock(&[]);
    let tools = json!([{"functionDeclarations": [{"name": "f", "parameters": {
        "type": "object", "$schema": "http://json-schema.org/draft-07/schema#",
        "additionalProperties": false,
        "properties": {"mode": {"const": "x"}}}}]}]);
    let r = generate(
        &mock,
        "gemini-2.5-pro",
        &body("hi", json!({"tools": tools})),
    );
    assert_eq!(r.status, 400);
    let e = &r.json()["error"];
    let message = e["message"].as_str().unwrap();
    assert!(message.contains("Invalid JSON payload received. Unknown name \"additionalProperties\" at 'tools[0].function_declarations[0].parameters': Cannot find field."), "{message}");
    assert!(message.contains("Unknown name \"const\" at 'tools[0].function_declarations[0].parameters.properties[0].value'"), "{message}");
    assert_eq!(
        e["details"][0]["fieldViolations"].as_array().unwrap().len(),
        3
    );
    // parametersJsonSchema takes full JSON Schema.
    let tools = json!([{"functionDeclarations": [{"name": "f", "parametersJsonSchema": {
        "type": "object", "$schema": "http://json-schema.org/draft-07/schema#",
        "additionalProperties": false, "required": ["mode"],
        "properties": {"mode": {"const": "x"}}}}]}]);
    let v = generate(
        &mock,
        "gemini-2.5-pro",
        &body("hi", json!({"tools": tools})),
    )
    .json();
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["functionCall"]["args"],
        json!({"mode": "x"})
    );
}

#[test]
fn vertex_gemini_behind_a_token() {
    let mock = mock(&[]);
    let path = "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-pro:generateContent";
    let b = body("hi", json!({}));
    let r = request(mock.addr, &post(path, &[], &b));
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["status"], "UNAUTHENTICATED");
    let auth = ("authorization", "Bearer mock-static-token");
    let r = request(mock.addr, &post(path, &[auth], &b));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["candidates"][0]["finishReason"], "STOP");
    assert!(r.json()["createTime"].is_string());
    let spath = path.replace(":generateContent", ":streamGenerateContent?alt=sse");
    let r = request(mock.addr, &post(&spath, &[auth], &b));
    assert_eq!(
        text_of(&sse_chunks(&r)),
        "Hello from the ringway mock. You said: hi"
    );
    let cpath = path.replace(":generateContent", ":countTokens");
    let r = request(mock.addr, &post(&cpath, &[auth], &b));
    assert_eq!(r.json()["totalTokens"], b.len().div_ceil(4));
    assert_eq!(
        mock_requests(&mock).last().unwrap()["model"],
        "gemini-2.5-pro"
    );
}

#[test]
fn streams_split_anywhere_and_faults_by_model() {
    let mock = mock(&[]);
    let mut c = Client::connect(mock.addr);
    c.send_raw(&post(
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        &[KEY],
        &body("one two three", json!({})),
    ));
    let (status, _) = c.read_head().unwrap();
    assert_eq!(status, 200);
    let mut pieces = Vec::new();
    while let Some(piece) = c.read_chunk() {
        pieces.push(piece);
    }
    // Writes are cut inside events, and joined they are the whole stream.
    assert!(pieces.iter().any(|p| !p.ends_with(b"\r\n\r\n")));
    let whole = Response {
        status,
        headers: Vec::new(),
        body: pieces.concat(),
        chunked: true,
    };
    assert_eq!(
        text_of(&sse_chunks(&whole)),
        "Hello from the ringway mock. You said: one two three"
    );

    set_faults(&mock, &json!({"gemini-err": "error_event"}));
    let r = stream(&mock, "gemini-err", true, &body("hi", json!({})));
    assert_eq!(r.status, 200);
    let chunks = sse_chunks(&r);
    assert_eq!(chunks.last().unwrap()["error"]["status"], "UNAVAILABLE");
    let r = stream(&mock, "gemini-err", false, &body("hi", json!({})));
    let arr: Vec<Value> = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(arr[0]["error"]["code"], 503);
    assert_eq!(
        generate(&mock, "gemini-err", &body("hi", json!({}))).status,
        503
    );
    // An in-stream error on the JSON-array stream is its last element, the array closed.
    let r = stream(
        &mock,
        "gemini-2.5-flash",
        false,
        &body("hi mock:midstream_error", json!({})),
    );
    let arr: Vec<Value> = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(arr.last().unwrap()["error"]["status"], "INTERNAL");
    let r = generate(&mock, "m", &body("hi mock:throttle", json!({})));
    assert_eq!(r.status, 429);
    assert_eq!(
        r.json()["error"]["details"][0]["@type"],
        "type.googleapis.com/google.rpc.RetryInfo"
    );
}
