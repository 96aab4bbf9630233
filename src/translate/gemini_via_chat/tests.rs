use serde_json::{json, Value};

use super::request::{json_schema, Next};
use super::*;
use crate::translate::chat_via_gemini::NoSeal;
use crate::translate::{Options, RequestMeta, Room};

/// A reversible fake seal: the token is the hex of the bytes, prefixed so that other text does
/// not open.
struct HexSeal;

impl SignatureSeal for HexSeal {
    fn seal(&self, sig: &[u8]) -> Option<String> {
        Some(format!(
            "x{}",
            sig.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ))
    }
    fn open(&self, token: &str) -> Option<Vec<u8>> {
        let hex = token.strip_prefix('x')?;
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect()
    }
}

fn chat(body: Value, next: Next, stream: bool) -> (Value, RequestMeta, GeminiClientMeta) {
    let (out, meta, client) = request_within(
        body.to_string().as_bytes(),
        "up-m",
        stream,
        next,
        &Options::default(),
        &HexSeal,
        &Room::unlimited(),
    )
    .unwrap();
    (serde_json::from_slice(&out).unwrap(), meta, client)
}

fn err(body: Value, next: Next) -> crate::translate::TranslateError {
    request_within(
        body.to_string().as_bytes(),
        "m",
        false,
        next,
        &Options::default(),
        &NoSeal,
        &Room::unlimited(),
    )
    .unwrap_err()
}

#[test]
fn a_tool_conversation_becomes_chat_messages() {
    let body = json!({
        "systemInstruction": {"parts": [{"text": "be brief"}, {"text": "be kind"}]},
        "contents": [
            {"role": "user", "parts": [{"text": "weather?"},
                {"inlineData": {"mimeType": "image/png", "data": "iVBO"}}]},
            {"role": "model", "parts": [
                {"text": "thinking…", "thought": true},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                {"functionCall": {"id": "g-2", "name": "get_time", "args": {}}}]},
            {"role": "user", "parts": [
                {"functionResponse": {"id": "g-2", "name": "get_time", "response": {"output": "noon"}}},
                {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
                {"text": "thanks"}]},
        ],
        "tools": [{"functionDeclarations": [
            {"name": "get_weather", "description": "w",
             "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}},
            {"name": "get_time", "parametersJsonSchema": {"type": "object", "additionalProperties": false}}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}},
        "generationConfig": {"maxOutputTokens": 77, "temperature": 0.5, "topK": 3,
                              "stopSequences": ["END"], "seed": 9},
        "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}],
    });
    let (c, meta, _) = chat(body, Next::OpenAi, false);
    assert_eq!(c["model"], "up-m");
    let m = c["messages"].as_array().unwrap();
    assert_eq!(
        m[0],
        json!({"role": "system", "content": "be brief\n\nbe kind"})
    );
    assert_eq!(
        m[1]["content"][1]["image_url"]["url"],
        "data:image/png;base64,iVBO"
    );
    assert_eq!(m[2]["content"], Value::Null);
    assert_eq!(m[2]["tool_calls"][0]["id"], "call_1_1");
    assert_eq!(
        m[2]["tool_calls"][0]["function"]["arguments"],
        r#"{"city":"Paris"}"#
    );
    assert_eq!(m[2]["tool_calls"][1]["id"], "g-2");
    // Results matched by id, then by name; text after them.
    assert_eq!(
        m[3],
        json!({"role": "tool", "tool_call_id": "g-2", "content": "noon"})
    );
    assert_eq!(
        m[4],
        json!({"role": "tool", "tool_call_id": "call_1_1", "content": r#"{"temp":21}"#})
    );
    assert_eq!(m[5], json!({"role": "user", "content": "thanks"}));
    assert_eq!(
        c["tools"][0]["function"]["parameters"],
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
    );
    assert_eq!(
        c["tools"][1]["function"]["parameters"],
        json!({"type": "object", "additionalProperties": false})
    );
    assert_eq!(
        c["tool_choice"],
        json!({"type": "function", "function": {"name": "get_weather"}})
    );
    assert_eq!(c["max_completion_tokens"], 77);
    assert_eq!(c["stop"], json!(["END"]));
    assert!(c.get("top_k").is_none());
    assert!(
        meta.ledger.dropped().contains(&"topK")
            && meta.ledger.dropped().contains(&"safetySettings")
    );
    let (c, _, _) = chat(
        json!({"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"topK": 3}}),
        Next::Anthropic,
        true,
    );
    assert_eq!(c["top_k"], 3);
    assert_eq!(c["stream"], true);
    assert_eq!(c["stream_options"]["include_usage"], true);
}

#[test]
fn snake_spellings_are_matched_in_place() {
    use super::request::is_snake_of;
    assert!(is_snake_of("system_instruction", "systemInstruction"));
    assert!(is_snake_of("contents", "contents"));
    assert!(!is_snake_of("system_instructions", "systemInstruction"));
    assert!(!is_snake_of("systeminstruction", "systemInstruction"));
    assert!(!is_snake_of("system_", "systemInstruction"));
}

#[test]
fn snake_case_and_schemas_are_read_too() {
    let (c, _, _) = chat(
        json!({"system_instruction": {"parts": [{"text": "s"}]},
               "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
               "generation_config": {"response_mime_type": "application/json",
                   "response_schema": {"type": "ARRAY", "items": {"type": "INTEGER", "nullable": true},
                                       "minItems": "1"}}}),
        Next::OpenAi,
        false,
    );
    assert_eq!(c["messages"][0]["content"], "s");
    assert_eq!(
        c["response_format"]["json_schema"]["schema"],
        json!({"type": "array", "items": {"type": ["integer", "null"]}, "minItems": 1})
    );
    assert_eq!(
        json_schema(&json!({"anyOf": [{"type": "STRING"}]})),
        json!({"anyOf": [{"type": "string"}]})
    );
}

#[test]
fn thinking_config_becomes_an_effort() {
    let cases = [
        (json!({"thinkingLevel": "LOW"}), Some("low"), false),
        (json!({"thinkingBudget": 0}), Some("none"), false),
        (
            json!({"thinkingBudget": -1, "includeThoughts": true}),
            Some("medium"),
            true,
        ),
        (json!({"thinkingBudget": 20000}), Some("high"), false),
        (json!({"includeThoughts": true}), Some("medium"), true),
        (json!({}), None, false),
    ];
    for (t, effort, thoughts) in cases {
        let (c, meta, client) = chat(
            json!({"contents": [{"parts": [{"text": "hi"}]}],
                   "generationConfig": {"thinkingConfig": t}}),
            Next::OpenAi,
            false,
        );
        assert_eq!(c["reasoning_effort"].as_str(), effort, "{t}");
        assert_eq!(client.include_thoughts, thoughts);
        assert_eq!(meta.client_thinking, thoughts);
    }
}

#[test]
fn a_budget_reaches_an_anthropic_budget_model_exactly() {
    let body = |budget: i64| {
        json!({"contents": [{"parts": [{"text": "hi"}]}],
               "generationConfig": {"thinkingConfig": {"thinkingBudget": budget}}})
    };
    let translate = |budget: i64, model: &str| {
        let (out, _, _) = request_within(
            body(budget).to_string().as_bytes(),
            model,
            false,
            Next::Anthropic,
            &Options::default(),
            &NoSeal,
            &Room::unlimited(),
        )
        .unwrap();
        serde_json::from_slice::<Value>(&out).unwrap()
    };
    let c = translate(10_000, "claude-sonnet-4-5");
    assert_eq!(
        c["thinking"],
        json!({"type": "enabled", "budget_tokens": 10_000})
    );
    assert!(c.get("reasoning_effort").is_none());
    assert_eq!(
        translate(10, "claude-sonnet-4-5")["thinking"]["budget_tokens"],
        1024
    );
    // Adaptive-only models and OpenAI providers get an effort.
    let c = translate(10_000, "claude-opus-4-7");
    assert_eq!(c["reasoning_effort"], "high");
    assert!(c.get("thinking").is_none());
    assert_eq!(
        translate(0, "claude-sonnet-4-5")["reasoning_effort"],
        "none"
    );
    let (c, _, _) = chat(body(10_000), Next::OpenAi, false);
    assert_eq!(c["reasoning_effort"], "high");
}

#[test]
fn what_no_provider_but_google_can_do_is_refused_by_name() {
    let base = |extra: Value| {
        let mut b = json!({"contents": [{"parts": [{"text": "hi"}]}]});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let cases = [
        (
            json!({"cachedContent": "cachedContents/x"}),
            "cachedContent",
        ),
        (
            json!({"generationConfig": {"candidateCount": 2}}),
            "generationConfig.candidateCount",
        ),
        (
            json!({"generationConfig": {"responseModalities": ["IMAGE"]}}),
            "generationConfig.responseModalities",
        ),
        (
            json!({"generationConfig": {"bogus": 1}}),
            "generationConfig.bogus",
        ),
        (
            json!({"tools": [{"googleSearch": {}}]}),
            "tools[0].googleSearch",
        ),
        (json!({"bogus": 1}), "bogus"),
        (
            json!({"generationConfig": {"stopSequences": ["a", "b", "c", "d", "e"]}}),
            "generationConfig.stopSequences",
        ),
    ];
    for (extra, param) in cases {
        let e = err(base(extra.clone()), Next::OpenAi);
        assert_eq!(e.status, 400, "{extra}");
        assert_eq!(e.param.as_deref(), Some(param), "{extra}: {}", e.message);
    }
    let e = err(
        json!({"contents": [{"parts": [{"fileData": {"mimeType": "application/pdf", "fileUri": "gs://b/x.pdf"}}]}]}),
        Next::OpenAi,
    );
    assert_eq!(e.param.as_deref(), Some("contents[0].parts[0].fileData"));
    let e = err(
        json!({"contents": [{"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]}),
        Next::OpenAi,
    );
    assert_eq!(
        e.param.as_deref(),
        Some("contents[0].parts[0].functionResponse")
    );
    assert_eq!(
        err(json!({"contents": []}), Next::OpenAi).param.as_deref(),
        Some("contents")
    );
    assert_eq!(err(json!([1]), Next::OpenAi).status, 400);
    // A text file is text; a PDF a file part.
    let (c, _, _) = chat(
        json!({"contents": [{"parts": [
            {"inlineData": {"mimeType": "text/plain", "data": "aMOpbGxv"}},
            {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}}]}]}),
        Next::OpenAi,
        false,
    );
    assert_eq!(
        c["messages"][0]["content"][0],
        json!({"type": "text", "text": "héllo"})
    );
    assert_eq!(
        c["messages"][0]["content"][1]["file"]["file_data"],
        "data:application/pdf;base64,JVBE"
    );
    let e = err(
        json!({"contents": [{"parts": [{"inlineData": {"mimeType": "text/plain", "data": "%%"}}]}]}),
        Next::OpenAi,
    );
    assert_eq!(
        e.param.as_deref(),
        Some("contents[0].parts[0].inlineData.data")
    );
    // Five stop sequences are fine for Anthropic.
    let (c, _, _) = chat(
        base(json!({"generationConfig": {"stopSequences": ["a", "b", "c", "d", "e"]}})),
        Next::Anthropic,
        false,
    );
    assert_eq!(c["stop"].as_array().unwrap().len(), 5);
}

#[test]
fn illegal_function_names_are_mapped_and_given_back() {
    let (c, meta, client) = chat(
        json!({"contents": [{"parts": [{"text": "hi"}]}],
               "tools": [{"functionDeclarations": [{"name": "fs.read:file"}]}]}),
        Next::OpenAi,
        false,
    );
    let mapped = c["tools"][0]["function"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(mapped.starts_with("fs_read_file_"), "{mapped}");
    let answer = json!({"id": "chatcmpl-1", "model": "up-m", "choices": [{"index": 0,
        "message": {"role": "assistant", "content": null, "tool_calls": [{"id": "call_9",
            "type": "function", "function": {"name": mapped, "arguments": "{\"p\":1}"}}]},
        "finish_reason": "tool_calls"}]});
    let mut out = Vec::new();
    response_into(answer.to_string().as_bytes(), &meta, &client, &mut out).unwrap();
    let g: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        g["candidates"][0]["content"]["parts"][0]["functionCall"],
        json!({"id": "call_9", "name": "fs.read:file", "args": {"p": 1}})
    );
    assert_eq!(g["candidates"][0]["finishReason"], "STOP");
}

#[test]
fn names_that_map_alike_stay_apart_and_parts_hold_one_thing() {
    let (c, meta, _) = chat(
        json!({"contents": [{"parts": [{"text": "hi"}]}],
               "tools": [{"functionDeclarations": [{"name": "files.read"}, {"name": "files_read"}]}]}),
        Next::OpenAi,
        false,
    );
    let a = c["tools"][0]["function"]["name"].as_str().unwrap();
    let b = c["tools"][1]["function"]["name"].as_str().unwrap();
    assert_ne!(a, b);
    assert_eq!(b, "files_read");
    assert_eq!(meta.client_tool_name(a), "files.read");
    assert_eq!(meta.client_tool_name(b), "files_read");
    let e = err(
        json!({"contents": [{"role": "user", "parts": [{"text": "a", "inlineData": {"mimeType": "image/png", "data": "AA"}}]}]}),
        Next::OpenAi,
    );
    assert_eq!(e.param.as_deref(), Some("contents[0].parts[0]"));
    let e = err(
        json!({"contents": [{"parts": [{"inlineData": {"mimeType": "image/png;base64,AAAA#", "data": "AA"}}]}]}),
        Next::OpenAi,
    );
    assert_eq!(
        e.param.as_deref(),
        Some("contents[0].parts[0].inlineData.mimeType")
    );
    // A null under one spelling does not hide the other.
    let (c, _, _) = chat(
        json!({"systemInstruction": null, "system_instruction": {"parts": [{"text": "s"}]},
               "contents": [{"parts": [{"text": "hi"}]}]}),
        Next::OpenAi,
        false,
    );
    assert_eq!(c["messages"][0]["content"], "s");
    for bad in [
        json!({"stopSequences": "END"}),
        json!({"thinkingConfig": {"thinkingLevel": "LOW", "thinkingBudget": 10}}),
    ] {
        let e = err(
            json!({"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": bad}),
            Next::OpenAi,
        );
        assert_eq!(e.status, 400, "{bad}");
    }
}

#[test]
fn answers_carry_thinking_usage_and_finish() {
    let meta = RequestMeta {
        upstream_model: "up-m".into(),
        ..RequestMeta::default()
    };
    let client = GeminiClientMeta {
        include_thoughts: true,
        seal: None,
    };
    let answer = json!({"id": "chatcmpl-abc", "model": "claude-x", "choices": [{"index": 0,
        "message": {"role": "assistant", "content": "hi", "reasoning_content": "hmm"},
        "finish_reason": "length"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 7,
                  "prompt_tokens_details": {"cached_tokens": 4},
                  "completion_tokens_details": {"reasoning_tokens": 3}}});
    let mut out = Vec::new();
    response_into(answer.to_string().as_bytes(), &meta, &client, &mut out).unwrap();
    let g: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        g["candidates"][0]["content"]["parts"],
        json!([{"text": "hmm", "thought": true}, {"text": "hi"}])
    );
    assert_eq!(g["candidates"][0]["finishReason"], "MAX_TOKENS");
    assert_eq!(
        g["usageMetadata"],
        json!({"promptTokenCount": 10, "candidatesTokenCount": 4, "thoughtsTokenCount": 3,
               "cachedContentTokenCount": 4, "totalTokenCount": 17})
    );
    assert_eq!(g["responseId"], "abc");
    assert_eq!(g["modelVersion"], "claude-x");
    assert_eq!(finish_reason(Some("content_filter")), "SAFETY");
    let mut out = Vec::new();
    assert!(response_into(b"{}", &meta, &client, &mut out).is_err());
    assert!(response_into(b"nope", &meta, &client, &mut out).is_err());
}

#[test]
fn thinking_blocks_round_trip_in_a_sealed_signature() {
    let blocks = vec![json!({"type": "thinking", "thinking": "t", "signature": "s1"})];
    let sig = seal_blocks(&blocks, &HexSeal).unwrap();
    assert!(sig.starts_with(CARRIER_PREFIX));
    // Valid base64 (SDKs hold signatures as bytes), opened in either alphabet.
    assert!(crate::translate::util::decode_base64(&sig).is_some());
    assert_eq!(open_blocks(&sig, &HexSeal), blocks);
    let url_safe = sig
        .replace('+', "-")
        .replace('/', "_")
        .trim_end_matches('=')
        .to_owned();
    assert_eq!(open_blocks(&url_safe, &HexSeal), blocks);
    assert!(open_blocks(&sig, &NoSeal).is_empty());
    assert!(open_blocks("CiQBcoolRealGeminiSig==", &HexSeal).is_empty());
    let huge = vec![
        json!({"type": "thinking", "thinking": "x".repeat(MAX_CARRIED_THINKING_BYTES), "signature": "s"}),
    ];
    assert_eq!(seal_blocks(&huge, &HexSeal), None);
    // The blocks go back to the provider as the assistant turn's thinking_blocks.
    let (c, _, _) = chat(
        json!({"contents": [
            {"role": "user", "parts": [{"text": "q"}]},
            {"role": "model", "parts": [{"text": "t", "thought": true},
                {"functionCall": {"id": "c1", "name": "f", "args": {}}, "thoughtSignature": sig}]},
            {"role": "user", "parts": [{"functionResponse": {"id": "c1", "name": "f", "response": {"output": "r"}}}]}]}),
        Next::Anthropic,
        false,
    );
    assert_eq!(c["messages"][1]["thinking_blocks"], json!(blocks));
}

fn stream(
    meta: &RequestMeta,
    client: GeminiClientMeta,
    chunks: &[&str],
    done: bool,
) -> (Vec<Value>, String) {
    let mut s = Stream::new(meta, client);
    let mut out = Vec::new();
    for c in chunks {
        s.on_event(None, c.as_bytes(), &mut out);
    }
    if done {
        s.on_event(None, b"[DONE]", &mut out);
    }
    s.finish(&mut out);
    assert!(s.is_done());
    let text = String::from_utf8(out).unwrap();
    let events = text
        .split("\r\n\r\n")
        .filter(|e| !e.is_empty())
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    (events, text)
}

#[test]
fn a_stream_sends_text_as_it_comes_and_calls_whole_at_the_end() {
    let meta = RequestMeta::default();
    let client = GeminiClientMeta {
        include_thoughts: false,
        seal: None,
    };
    let chunks = [
        r#"{"id":"chatcmpl-1","model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
        r#"{"id":"chatcmpl-1","model":"m","choices":[{"index":0,"delta":{"reasoning_content":"hidden"}}]}"#,
        r#"{"id":"chatcmpl-1","model":"m","choices":[{"index":0,"delta":{"content":"Hel"}}]}"#,
        r#"{"id":"chatcmpl-1","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"f","arguments":"{\"a\""}}]}}]}"#,
        r#"{"id":"chatcmpl-1","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]}}]}"#,
        r#"{"id":"chatcmpl-1","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
        r#"{"id":"chatcmpl-1","model":"m","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}"#,
    ];
    let (events, raw) = stream(&meta, client.clone(), &chunks, true);
    assert!(raw.ends_with("\r\n\r\n"));
    assert_eq!(events.len(), 2, "{raw}");
    assert_eq!(
        events[0]["candidates"][0]["content"]["parts"],
        json!([{"text": "Hel"}])
    );
    let last = &events[1];
    assert_eq!(
        last["candidates"][0]["content"]["parts"],
        json!([{"functionCall": {"id": "call_1", "name": "f", "args": {"a": 1}}}])
    );
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["usageMetadata"]["totalTokenCount"], 7);
    assert_eq!(last["responseId"], "1");
    // Without [DONE] and without a finish: an error object ends it.
    let (events, _) = stream(&meta, client.clone(), &chunks[..3], false);
    assert_eq!(events.last().unwrap()["error"]["code"], 502);
    // An upstream error chunk becomes Gemini's error object.
    let (events, _) = stream(
        &meta,
        client,
        &[r#"{"error":{"message":"slow down","type":"rate_limit_error"}}"#],
        false,
    );
    assert_eq!(
        events,
        vec![
            json!({"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}})
        ]
    );
}

#[test]
fn a_stream_carries_thinking_blocks_on_its_first_call() {
    let meta = RequestMeta::default();
    let seal = ThinkingSeal {
        key: crate::seal::SealKey::from_bytes(&[3; 32])
            .unwrap()
            .for_holder(crate::seal::Holder::Open),
        provider: "ant".into(),
    };
    let client = GeminiClientMeta {
        include_thoughts: true,
        seal: Some(seal.clone()),
    };
    let chunks = [
        r#"{"id":"chatcmpl-1","choices":[{"index":0,"delta":{"reasoning_content":"why"}}]}"#,
        r#"{"id":"chatcmpl-1","choices":[{"index":0,"delta":{"thinking_blocks":[{"index":0,"type":"thinking","thinking":"why","signature":"S"}]}}]}"#,
        r#"{"id":"chatcmpl-1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}"#,
    ];
    let (events, _) = stream(&meta, client, &chunks, true);
    assert_eq!(
        events[0]["candidates"][0]["content"]["parts"],
        json!([{"text": "why", "thought": true}])
    );
    let part = &events[1]["candidates"][0]["content"]["parts"][0];
    let sig = part["thoughtSignature"].as_str().unwrap();
    assert_eq!(
        open_blocks(sig, &seal),
        vec![json!({"type": "thinking", "thinking": "why", "signature": "S"})]
    );
    let other = ThinkingSeal {
        provider: "other".into(),
        ..seal
    };
    assert!(open_blocks(sig, &other).is_empty());
}

#[test]
fn carried_thinking_is_swapped_for_the_dummy_on_the_way_to_gemini() {
    use crate::translate::gemini::swap_carried_thinking;
    let sig = seal_blocks(
        &[json!({"type": "thinking", "thinking": "t", "signature": "s"})],
        &HexSeal,
    )
    .unwrap();
    // The Python SDK sends signatures back in URL-safe base64.
    let url_safe = sig.replace('+', "-").replace('/', "_");
    let body = format!(
        r#"{{"contents":[{{"parts":[{{"text":"{sig}"}},{{"functionCall":{{"name":"f"}},"thoughtSignature": "{sig}"}},{{"thought_signature":"{url_safe}"}},{{"thoughtSignature":"cnd0YzFnot-a-carrier"}}]}}]}}"#
    );
    let out = swap_carried_thinking(body.as_bytes()).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!(
            r#"{{"contents":[{{"parts":[{{"text":"{sig}"}},{{"functionCall":{{"name":"f"}},"thoughtSignature": "skip_thought_signature_validator"}},{{"thought_signature":"skip_thought_signature_validator"}},{{"thoughtSignature":"cnd0YzFnot-a-carrier"}}]}}]}}"#
        )
    );
    assert_eq!(
        swap_carried_thinking(br#"{"thoughtSignature":"CiQB"}"#),
        None
    );
}
