//! Golden, round-trip and hostile-input tests of the Chat ⇄ Gemini translators.

use base64::Engine as _;
use serde_json::{json, Value};

use super::*;
use crate::translate::TranslateError;

/// A reversible seal with a keyed checksum: base64url(sig) + `.` + 16 hex digits of a keyed
/// FNV-1a over the signature (tamper-evident enough for tests; the gateway uses AES-GCM).
pub(crate) struct FakeSeal(pub u64);

impl FakeSeal {
    fn mac(&self, sig: &[u8]) -> u64 {
        let mut h = 0xcbf2_9ce4_8422_2325_u64 ^ self.0;
        for &b in sig {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        h
    }
}

impl SignatureSeal for FakeSeal {
    fn seal(&self, sig: &[u8]) -> Option<String> {
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig);
        Some(format!("{b}.{:016x}", self.mac(sig)))
    }
    fn open(&self, token: &str) -> Option<Vec<u8>> {
        let (b, mac) = token.rsplit_once('.')?;
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b)
            .ok()?;
        (format!("{:016x}", self.mac(&sig)) == mac).then_some(sig)
    }
}

const SEAL: FakeSeal = FakeSeal(0x5eed);

fn req(body: Value, model: &str) -> Result<(Value, GeminiMeta), TranslateError> {
    let (out, meta) = request(
        &serde_json::to_vec(&body).unwrap(),
        model,
        &GeminiOptions::default(),
        &SEAL,
    )?;
    Ok((serde_json::from_slice(&out).unwrap(), meta))
}

fn resp(body: Value, meta: &GeminiMeta) -> Result<Value, TranslateError> {
    let mut out = Vec::new();
    response(&serde_json::to_vec(&body).unwrap(), meta, &SEAL, &mut out)?;
    Ok(serde_json::from_slice(&out).unwrap())
}

/// The `data:` payloads of a Chat SSE output, parsed (`[DONE]` as a string).
fn frames(out: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(out).unwrap();
    text.split("\n\n")
        .filter(|f| !f.is_empty())
        .map(|f| {
            let d = f.strip_prefix("data: ").unwrap();
            if d == "[DONE]" {
                json!("[DONE]")
            } else {
                serde_json::from_str(d).unwrap()
            }
        })
        .collect()
}

fn token_id(base: &str, sig: &str) -> String {
    format!(
        "{base}{SIGNATURE_SEPARATOR}{}",
        SEAL.seal(sig.as_bytes()).unwrap()
    )
}

#[test]
fn request_golden() {
    let with_sig = token_id("fc_1", "CikBsig==");
    let body = json!({
        "model": "gem", "stream": true, "stream_options": {"include_usage": true},
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "Weather?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
                {"type": "image_url", "image_url": {"url": "https://x.test/a/cat.webp?s=1"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": with_sig, "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "fc_2", "type": "function", "function": {"name": "time", "arguments": ""}}
            ]},
            {"role": "tool", "tool_call_id": "fc_2", "content": "12:00"},
            {"role": "tool", "tool_call_id": with_sig, "content": [{"type": "text", "text": "sunny"}]}
        ],
        "tools": [
            {"type": "function", "function": {"name": "weather", "description": "Weather by city",
              "parameters": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                "properties": {"city": {"type": "string", "const": "Paris"}}, "additionalProperties": false}}},
            {"type": "function", "function": {"name": "time"}}
        ],
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"$schema": "x", "type": "object"}}},
        "stop": ["END"], "temperature": 0.5, "top_p": 0.9, "max_tokens": 100, "seed": 7,
        "presence_penalty": 0.1, "reasoning_effort": "low", "user": "u1", "metadata": {"a": "b"}
    });
    let (g, meta) = req(body, "gemini-2.5-flash").unwrap();
    let expected = json!({
        "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Use tools."}]},
        "contents": [
            {"role": "user", "parts": [
                {"text": "Weather?"},
                {"inlineData": {"mimeType": "image/png", "data": "iVBOR"}},
                {"fileData": {"mimeType": "image/webp", "fileUri": "https://x.test/a/cat.webp?s=1"}}
            ]},
            {"role": "model", "parts": [
                {"functionCall": {"id": "fc_1", "name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": "CikBsig=="},
                {"functionCall": {"id": "fc_2", "name": "time", "args": {}}}
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"id": "fc_1", "name": "weather", "response": {"output": "sunny"}}},
                {"functionResponse": {"id": "fc_2", "name": "time", "response": {"output": "12:00"}}}
            ]}
        ],
        "tools": [{"functionDeclarations": [
            {"name": "weather", "description": "Weather by city", "parametersJsonSchema":
                {"type": "object", "properties": {"city": {"type": "string", "const": "Paris"}}, "additionalProperties": false}},
            {"name": "time"}
        ]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["weather"]}},
        "generationConfig": {
            "temperature": 0.5, "topP": 0.9, "seed": 7, "presencePenalty": 0.1, "maxOutputTokens": 100,
            "stopSequences": ["END"], "responseMimeType": "application/json",
            "responseJsonSchema": {"type": "object"},
            "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": true}
        }
    });
    assert_eq!(g, expected);
    assert!(meta.stream && meta.include_usage && meta.include_thoughts);
    assert_eq!(meta.client_model, "gem");
    assert_eq!(meta.ledger.dropped(), vec!["user", "metadata"]);
}

#[test]
fn thinking_per_generation() {
    let think = |model: &str, effort: &str| {
        let (g, meta) = req(
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "reasoning_effort": effort}),
            model,
        )
        .unwrap();
        (g["generationConfig"]["thinkingConfig"].clone(), meta)
    };
    let cases = [
        (
            "gemini-3-flash-preview",
            "minimal",
            json!({"thinkingLevel": "MINIMAL", "includeThoughts": true}),
        ),
        (
            "gemini-3-flash-preview",
            "none",
            json!({"thinkingLevel": "MINIMAL", "includeThoughts": false}),
        ),
        (
            "gemini-3-pro-preview",
            "minimal",
            json!({"thinkingLevel": "LOW", "includeThoughts": true}),
        ),
        (
            "gemini-3.1-pro-preview",
            "medium",
            json!({"thinkingLevel": "MEDIUM", "includeThoughts": true}),
        ),
        (
            "gemini-3-pro-preview",
            "xhigh",
            json!({"thinkingLevel": "HIGH", "includeThoughts": true}),
        ),
        (
            "gemini-2.5-pro",
            "none",
            json!({"thinkingBudget": 128, "includeThoughts": false}),
        ),
        (
            "gemini-2.5-flash",
            "none",
            json!({"thinkingBudget": 0, "includeThoughts": false}),
        ),
        (
            "gemini-2.5-flash",
            "high",
            json!({"thinkingBudget": 4096, "includeThoughts": true}),
        ),
        (
            "gemini-2.5-flash-lite",
            "low",
            json!({"thinkingBudget": 1024, "includeThoughts": true}),
        ),
        ("gemini-2.0-flash", "high", Value::Null),
    ];
    for (model, effort, want) in cases {
        let (got, meta) = think(model, effort);
        assert_eq!(got, want, "{model} {effort}");
        assert!(got.get("thinkingLevel").is_none() || got.get("thinkingBudget").is_none());
        if want.is_null() {
            assert_eq!(meta.ledger.dropped(), vec!["reasoning_effort"]);
            assert!(!meta.include_thoughts);
        }
    }
    // An explicit budget is clamped to the model's range.
    let (g, _) = req(
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
               "thinking": {"type": "enabled", "budget_tokens": 100000}}),
        "gemini-2.5-pro",
    )
    .unwrap();
    assert_eq!(
        g["generationConfig"]["thinkingConfig"]["thinkingBudget"],
        json!(32768)
    );
    // Gemini 3 refuses penalties: dropped and listed.
    let (g, meta) = req(
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "frequency_penalty": 1}),
        "gemini-3-flash-preview",
    )
    .unwrap();
    assert!(g.get("generationConfig").is_none());
    assert_eq!(meta.ledger.dropped(), vec!["frequency_penalty"]);
}

#[test]
fn tool_choice_and_json_object() {
    let choice = |c: Value| {
        let (g, _) = req(
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                   "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
                   "tool_choice": c, "response_format": {"type": "json_object"}}),
            "gemini-2.5-flash",
        )
        .unwrap();
        assert_eq!(
            g["generationConfig"],
            json!({"responseMimeType": "application/json"})
        );
        g["toolConfig"]["functionCallingConfig"].clone()
    };
    assert_eq!(choice(json!("auto")), json!({"mode": "AUTO"}));
    assert_eq!(choice(json!("none")), json!({"mode": "NONE"}));
    assert_eq!(choice(json!("required")), json!({"mode": "ANY"}));
    assert_eq!(
        choice(
            json!({"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [{"type": "function", "function": {"name": "f"}}]}})
        ),
        json!({"mode": "VALIDATED", "allowedFunctionNames": ["f"]})
    );
    assert_eq!(choice(Value::Null), Value::Null);
}

#[test]
fn refused_requests_name_the_parameter() {
    let base = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    for (extra, param, status) in [
        (json!({"n": 2}), "n", 400),
        (json!({"logprobs": true}), "logprobs", 400),
        (json!({"functions": []}), "functions", 400),
        (json!({"frobnicate": 1}), "frobnicate", 400),
        (
            json!({"reasoning_effort": "extreme"}),
            "reasoning_effort",
            400,
        ),
        (json!({"stop": ["a", "b", "c", "d", "e", "f"]}), "stop", 400),
        (json!({"temperature": "hot"}), "temperature", 400),
        (
            json!({"tools": [{"type": "custom", "custom": {}}]}),
            "tools[0].type",
            400,
        ),
        (
            json!({"messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]}),
            "messages[0].tool_call_id",
            400,
        ),
        (
            json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "[1]"}}]}]}),
            "messages[0].tool_calls[0].function.arguments",
            400,
        ),
        (
            json!({"messages": [{"role": "system", "content": "only"}]}),
            "messages",
            400,
        ),
    ] {
        let mut body = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let e = req(body, "gemini-2.5-flash").unwrap_err();
        assert_eq!((e.param.as_deref(), e.status), (Some(param), status), "{e}");
    }
    assert_eq!(
        req(json!({"model": "m", "messages": [], "n": 1}), "g")
            .unwrap_err()
            .param
            .as_deref(),
        Some("messages")
    );
}

/// The dummy goes on the first call of each model content in the current turn only, where
/// no signature came back; earlier turns are left as they are.
#[test]
fn dummy_signature_only_in_the_current_turn() {
    let call = |id: &str| json!({"id": id, "type": "function", "function": {"name": "f", "arguments": "{}"}});
    let body = json!({"model": "m", "messages": [
        {"role": "user", "content": "one"},
        {"role": "assistant", "tool_calls": [call("old")]},
        {"role": "tool", "tool_call_id": "old", "content": "r"},
        {"role": "assistant", "content": "done"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "thinking aloud", "tool_calls": [call("a"), call("b")]},
        {"role": "tool", "tool_call_id": "a", "content": "r"},
        {"role": "tool", "tool_call_id": "b", "content": "r"},
        {"role": "assistant", "tool_calls": [call(&token_id("c", "SIG_C")), call("d")]},
        {"role": "tool", "tool_call_id": token_id("c", "SIG_C"), "content": "r"},
        {"role": "tool", "tool_call_id": "d", "content": "r"},
        // A tampered token: not opened, the id left whole, the dummy used.
        {"role": "assistant", "tool_calls": [call(&format!("{}0", token_id("e", "SIG_E")))]},
        {"role": "tool", "tool_call_id": format!("{}0", token_id("e", "SIG_E")), "content": "r"}
    ]});
    let (g, _) = req(body, "gemini-3-pro-preview").unwrap();
    let c = &g["contents"];
    assert!(
        c[1]["parts"][0].get("thoughtSignature").is_none(),
        "earlier turn untouched"
    );
    assert_eq!(
        c[5]["parts"][1]["thoughtSignature"],
        json!(DUMMY_THOUGHT_SIGNATURE)
    );
    assert!(
        c[5]["parts"][0].get("thoughtSignature").is_none(),
        "text part untouched"
    );
    assert!(
        c[5]["parts"][2].get("thoughtSignature").is_none(),
        "second call untouched"
    );
    assert_eq!(c[7]["parts"][0]["thoughtSignature"], json!("SIG_C"));
    assert_eq!(c[7]["parts"][0]["functionCall"]["id"], json!("c"));
    assert!(c[7]["parts"][1].get("thoughtSignature").is_none());
    assert_eq!(
        c[9]["parts"][0]["thoughtSignature"],
        json!(DUMMY_THOUGHT_SIGNATURE)
    );
    let tampered = format!("{}0", token_id("e", "SIG_E"));
    assert_eq!(c[9]["parts"][0]["functionCall"]["id"], json!(tampered));
    assert_eq!(c[10]["parts"][0]["functionResponse"]["id"], json!(tampered));
    // Without ids (Vertex): matched by order, no ids sent.
    let opts = GeminiOptions {
        call_ids: false,
        ..GeminiOptions::default()
    };
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [call("a")]}, {"role": "tool", "tool_call_id": "a", "content": "r"}]});
    let (out, _) = request(
        &serde_json::to_vec(&body).unwrap(),
        "gemini-3-pro",
        &opts,
        &NoSeal,
    )
    .unwrap();
    let g: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        g["contents"][1]["parts"][0],
        json!({"functionCall": {"name": "f", "args": {}}, "thoughtSignature": DUMMY_THOUGHT_SIGNATURE})
    );
    assert_eq!(
        g["contents"][2]["parts"][0],
        json!({"functionResponse": {"name": "f", "response": {"output": "r"}}})
    );
}

#[test]
fn response_golden() {
    let meta = GeminiMeta {
        include_thoughts: true,
        created: 1_700_000_000,
        upstream_model: "gemini-3-pro".into(),
        ..GeminiMeta::default()
    };
    let body = json!({
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": "Checking.", "thought": true, "thoughtSignature": "T_SIG"},
            {"text": "Let me look."},
            {"functionCall": {"id": "g1", "name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": "F_SIG"},
            {"functionCall": {"name": "time", "args": {}}}
        ]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 83, "candidatesTokenCount": 14, "thoughtsTokenCount": 104,
                          "cachedContentTokenCount": 40, "totalTokenCount": 201},
        "responseId": "rid"
    });
    let got = resp(body.clone(), &meta).unwrap();
    let expected = json!({
        "id": "chatcmpl-rid", "object": "chat.completion", "created": 1_700_000_000, "model": "gemini-3-pro",
        "choices": [{"index": 0, "logprobs": null, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Let me look.", "reasoning_content": "Checking.",
            "tool_calls": [
                {"id": token_id("g1", "F_SIG"), "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_rid_1", "type": "function", "function": {"name": "time", "arguments": "{}"}}
            ]}}],
        "usage": {"prompt_tokens": 83, "completion_tokens": 118, "total_tokens": 201,
                  "prompt_tokens_details": {"cached_tokens": 40}, "completion_tokens_details": {"reasoning_tokens": 104}}
    });
    assert_eq!(got, expected);
    // Thoughts only when asked.
    let got = resp(body, &GeminiMeta::default()).unwrap();
    assert!(got["choices"][0]["message"]
        .get("reasoning_content")
        .is_none());
}

#[test]
fn every_finish_reason() {
    for (gemini, calls, want) in [
        ("STOP", false, "stop"),
        ("STOP", true, "tool_calls"),
        ("MAX_TOKENS", false, "length"),
        ("MAX_TOKENS", true, "length"),
        ("SAFETY", false, "content_filter"),
        ("RECITATION", false, "content_filter"),
        ("LANGUAGE", false, "content_filter"),
        ("OTHER", false, "content_filter"),
        ("BLOCKLIST", false, "content_filter"),
        ("PROHIBITED_CONTENT", false, "content_filter"),
        ("SPII", true, "content_filter"),
        ("IMAGE_SAFETY", false, "content_filter"),
        ("IMAGE_PROHIBITED_CONTENT", false, "content_filter"),
        ("IMAGE_RECITATION", false, "content_filter"),
        ("IMAGE_OTHER", false, "content_filter"),
        ("NO_IMAGE", false, "content_filter"),
        ("MALFORMED_FUNCTION_CALL", false, "stop"),
        ("UNEXPECTED_TOOL_CALL", false, "stop"),
        ("TOO_MANY_TOOL_CALLS", true, "tool_calls"),
        ("FINISH_REASON_UNSPECIFIED", false, "stop"),
        ("MISSING_THOUGHT_SIGNATURE", false, "stop"),
        ("SOMETHING_NEW_IN_2027", false, "stop"),
    ] {
        let parts = if calls {
            json!([{"functionCall": {"name": "f", "args": {}}}])
        } else {
            json!([{"text": "x"}])
        };
        let body = json!({"candidates": [{"content": {"parts": parts}, "finishReason": gemini}]});
        let got = resp(body.clone(), &GeminiMeta::default()).unwrap();
        assert_eq!(got["choices"][0]["finish_reason"], json!(want), "{gemini}");
        // The stream says the same.
        let mut s = Stream::new(&GeminiMeta::default());
        let mut out = Vec::new();
        s.feed(body.to_string().as_bytes(), &SEAL, &mut out);
        s.finish(&mut out);
        crate::translate::check::check_openai_stream(&out, true).unwrap();
        let f = frames(&out);
        assert_eq!(
            f[f.len() - 2]["choices"][0]["finish_reason"],
            json!(want),
            "{gemini}"
        );
    }
}

#[test]
fn blocked_prompt_is_a_clear_400() {
    let body = json!({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": {"promptTokenCount": 5}});
    let e = resp(body.clone(), &GeminiMeta::default()).unwrap_err();
    assert_eq!(e.status, 400);
    assert!(
        e.message.contains("blocked") && e.message.contains("PROHIBITED_CONTENT"),
        "{e}"
    );
    let mut s = Stream::new(&GeminiMeta::default());
    let mut out = Vec::new();
    s.feed(body.to_string().as_bytes(), &SEAL, &mut out);
    assert!(s.is_done());
    let f = frames(&out);
    assert!(f[0]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("PROHIBITED_CONTENT"));
    assert_eq!(f[0]["error"]["type"], json!("invalid_request_error"));
    // No candidates and nothing blocked: unreadable.
    assert_eq!(
        resp(json!({"modelVersion": "x"}), &GeminiMeta::default())
            .unwrap_err()
            .status,
        502
    );
}

#[test]
fn stream_golden() {
    let meta = GeminiMeta {
        include_usage: true,
        include_thoughts: true,
        created: 7,
        upstream_model: "up".into(),
        ..GeminiMeta::default()
    };
    let chunks = [
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "hm", "thought": true}]}, "index": 0}],
               "usageMetadata": {"promptTokenCount": 10, "thoughtsTokenCount": 3}, "responseId": "r1", "modelVersion": "gemini-3-flash"}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}}], "responseId": "r1"}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "lo"}, {"text": "", "thoughtSignature": "TEXT_SIG"}]}}], "responseId": "r1"}),
        json!({"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "f", "args": {"a": 1}}, "thoughtSignature": "SIG"},
            {"functionCall": {"name": "g", "args": {}}}]}, "finishReason": "STOP"}],
               "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 8, "thoughtsTokenCount": 3}, "responseId": "r1"}),
    ];
    let mut s = Stream::new(&meta);
    let mut out = Vec::new();
    for c in &chunks {
        s.feed(c.to_string().as_bytes(), &SEAL, &mut out);
    }
    s.finish(&mut out);
    crate::translate::check::check_openai_stream(&out, true).unwrap();
    let f = frames(&out);
    let deltas: Vec<Value> = f
        .iter()
        .filter_map(|x| x["choices"].get(0).map(|c| c["delta"].clone()))
        .collect();
    assert_eq!(
        deltas,
        vec![
            json!({"role": "assistant", "content": ""}),
            json!({"reasoning_content": "hm"}),
            json!({"content": "Hel"}),
            json!({"content": "lo"}),
            json!({"tool_calls": [{"index": 0, "id": token_id("call_r1_0", "SIG"), "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}),
            json!({"tool_calls": [{"index": 1, "id": "call_r1_1", "type": "function", "function": {"name": "g", "arguments": "{}"}}]}),
            json!({}),
        ]
    );
    assert_eq!(f[6]["choices"][0]["finish_reason"], json!("tool_calls"));
    assert!(f.iter().take(7).all(|x| x["id"] == json!("chatcmpl-r1")
        && x["model"] == json!("gemini-3-flash")
        && x["created"] == json!(7)));
    assert_eq!(f[7]["choices"], json!([]));
    assert_eq!(f[7]["usage"]["completion_tokens"], json!(11));
    assert_eq!(
        f[7]["usage"]["completion_tokens_details"]["reasoning_tokens"],
        json!(3)
    );
    assert_eq!(f[8], json!("[DONE]"));
    assert!(s.is_done());
    // No finish reason before EOF: an error, not a clean end.
    let mut s = Stream::new(&meta);
    let mut out = Vec::new();
    s.feed(chunks[1].to_string().as_bytes(), &SEAL, &mut out);
    s.finish(&mut out);
    assert!(frames(&out).last().unwrap().get("error").is_some());
}

/// Chat request → Gemini → Gemini answer (with a signature) → Chat answer → the client's next
/// request with the tool result → the Gemini request carries the signature on that call.
#[test]
fn signature_round_trip() {
    let first = json!({"model": "gem", "messages": [{"role": "user", "content": "weather?"}],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]});
    let (g, meta) = req(first.clone(), "gemini-3-pro-preview").unwrap();
    assert_eq!(
        g["contents"],
        json!([{"role": "user", "parts": [{"text": "weather?"}]}])
    );
    let big_sig = "C".repeat(968);
    let answer = json!({"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"id": "x9", "name": "weather", "args": {}}, "thoughtSignature": big_sig},
        {"functionCall": {"id": "y9", "name": "weather", "args": {"city": "Oslo"}}}]}, "finishReason": "STOP"}],
        "responseId": "r"});
    let chat = resp(answer, &meta).unwrap();
    let msg = chat["choices"][0]["message"].clone();
    let mut messages = first["messages"].as_array().unwrap().clone();
    messages.push(msg.clone());
    for c in msg["tool_calls"].as_array().unwrap() {
        messages.push(json!({"role": "tool", "tool_call_id": c["id"], "content": "ok"}));
    }
    let (g, _) = req(
        json!({"model": "gem", "messages": messages}),
        "gemini-3-pro-preview",
    )
    .unwrap();
    assert_eq!(
        g["contents"][1]["parts"],
        json!([
            {"functionCall": {"id": "x9", "name": "weather", "args": {}}, "thoughtSignature": big_sig},
            {"functionCall": {"id": "y9", "name": "weather", "args": {"city": "Oslo"}}}
        ])
    );
    assert_eq!(
        g["contents"][2]["parts"],
        json!([
            {"functionResponse": {"id": "x9", "name": "weather", "response": {"output": "ok"}}},
            {"functionResponse": {"id": "y9", "name": "weather", "response": {"output": "ok"}}}
        ])
    );
    // Over the cap: not carried (short id), and the next request sends the dummy.
    let huge = "A".repeat(MAX_CARRIED_SIGNATURE_BYTES + 1);
    let answer = json!({"candidates": [{"content": {"parts": [
        {"functionCall": {"id": "z", "name": "weather", "args": {}}, "thoughtSignature": huge}]}}]});
    let chat = resp(answer, &meta).unwrap();
    assert_eq!(
        chat["choices"][0]["message"]["tool_calls"][0]["id"],
        json!("z")
    );
}

/// Hostile bodies give errors, never panics: wrong types, huge ids, bad tokens.
#[test]
fn hostile_input() {
    let long = "x".repeat(1 << 20);
    let bad_requests = [
        json!(null),
        json!([]),
        json!({"model": 1, "messages": []}),
        json!({"model": "m", "messages": "hi"}),
        json!({"model": "m", "messages": [1, 2]}),
        json!({"model": "m", "messages": [{"role": "user", "content": 5}]}),
        json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": 3}]}]}),
        json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]}),
        json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]}]}),
        json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": {"a": 1}}]}),
        json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": 5, "function": {"name": "f", "arguments": "{"}}]}]}),
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": "all"}),
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{"function": {"name": "f", "parameters": [1]}}]}),
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{"function": {"name": "f"}}], "tool_choice": 3}),
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema"}}),
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": [1]}),
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "reasoning_effort": 3}),
        json!({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}),
    ];
    for b in bad_requests {
        let e = req(b.clone(), "gemini-3-pro").unwrap_err();
        assert_eq!(e.status, 400, "{b} → {e}");
    }
    assert_eq!(
        request(b"{not json", "g", &GeminiOptions::default(), &SEAL)
            .unwrap_err()
            .status,
        400
    );
    // Huge and odd ids, bad tokens: translated, the ids kept whole, the dummy used.
    for id in [
        long.clone(),
        format!("a{SIGNATURE_SEPARATOR}"),
        format!("a{SIGNATURE_SEPARATOR}!!!not-base64!!!.0000000000000000"),
        format!("a{SIGNATURE_SEPARATOR}{SIGNATURE_SEPARATOR}"),
        format!("{SIGNATURE_SEPARATOR}{}", SEAL.seal(b"").unwrap()),
    ] {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [{"id": id, "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": id, "content": "r"}]});
        let (g, _) = req(body, "gemini-3-pro").unwrap();
        assert_eq!(
            g["contents"][1]["parts"][0]["functionCall"]["id"],
            json!(id)
        );
        assert_eq!(
            g["contents"][1]["parts"][0]["thoughtSignature"],
            json!(DUMMY_THOUGHT_SIGNATURE)
        );
    }
    // Answers: wrong types everywhere are read as absent, or refused as unreadable.
    for raw in [
        &b"<html>"[..],
        b"[]",
        b"{\"candidates\":5}",
        b"{\"error\":{\"message\":\"boom\"}}",
    ] {
        let mut out = Vec::new();
        assert_eq!(
            response(raw, &GeminiMeta::default(), &SEAL, &mut out)
                .unwrap_err()
                .status,
            502
        );
    }
    let odd = json!({"candidates": [{"content": {"parts": [
        {"text": 5}, {"functionCall": {"name": 3, "args": [1], "id": 4}, "thoughtSignature": 9},
        {"functionCall": {"id": long, "name": "f"}}, {"inlineData": {}}, 7]}, "finishReason": 3}],
        "usageMetadata": {"promptTokenCount": -1, "candidatesTokenCount": u64::MAX, "thoughtsTokenCount": u64::MAX},
        "responseId": 12});
    let got = resp(odd.clone(), &GeminiMeta::default()).unwrap();
    let calls = &got["choices"][0]["message"]["tool_calls"];
    assert_eq!(calls[0]["id"], json!("call_gemini_0"));
    assert_eq!(calls[0]["function"], json!({"name": "", "arguments": "{}"}));
    assert_eq!(calls[1]["id"], json!(long));
    assert_eq!(got["usage"]["completion_tokens"], json!(u64::MAX));
    let mut s = Stream::new(&GeminiMeta::default());
    let mut out = Vec::new();
    s.feed(odd.to_string().as_bytes(), &SEAL, &mut out);
    s.feed(b"not json", &SEAL, &mut out);
    s.feed(b"{}", &SEAL, &mut out);
    s.finish(&mut out);
    crate::translate::check::check_openai_stream(&out, true).unwrap();
    assert!(frames(&out).iter().any(|f| f.get("error").is_some()));
}

#[test]
fn request_within_a_room() {
    let body = serde_json::to_vec(
        &json!({"model": "m", "messages": [{"role": "user", "content": "x".repeat(10_000)}]}),
    )
    .unwrap();
    let e = request_within(
        &body,
        "g",
        &GeminiOptions::default(),
        &SEAL,
        &crate::translate::Room::new(5_000),
    )
    .unwrap_err();
    assert!(e.is_over_budget());
    let room = crate::translate::Room::new(1 << 20);
    let (out, _) = request_within(&body, "g", &GeminiOptions::default(), &SEAL, &room).unwrap();
    assert!(out.len() > 10_000);
}

#[test]
fn plain_ids_for_other_providers() {
    let id = token_id("call_r_0", "SIG");
    assert_eq!(plain_call_id(&id), "call_r_0");
    assert_eq!(plain_call_id("call_abc"), "call_abc");
    assert_eq!(plain_call_id(SIGNATURE_SEPARATOR), "");
}

/// A user message right after tool results joins their content and starts a new turn: the
/// calls before it are no longer validated, so they get no dummy.
#[test]
fn user_text_after_tool_results_starts_a_turn() {
    let body = json!({"model": "m", "messages": [
        {"role": "user", "content": "a"},
        {"role": "assistant", "tool_calls": [{"id": "t", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "t", "content": "r"},
        {"role": "user", "content": "b"}
    ]});
    let (g, _) = req(body, "gemini-3-pro").unwrap();
    assert_eq!(
        g["contents"],
        json!([
            {"role": "user", "parts": [{"text": "a"}]},
            {"role": "model", "parts": [{"functionCall": {"id": "t", "name": "f", "args": {}}}]},
            {"role": "user", "parts": [
                {"functionResponse": {"id": "t", "name": "f", "response": {"output": "r"}}},
                {"text": "b"}
            ]}
        ])
    );
    // A stream without include_usage ends with the finish chunk and [DONE], no usage chunk.
    let mut s = Stream::new(&GeminiMeta::default());
    let mut out = Vec::new();
    s.feed(br#"{"candidates":[{"content":{"parts":[{"text":"x"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":1}}"#, &SEAL, &mut out);
    s.finish(&mut out);
    let f = frames(&out);
    assert_eq!(f.len(), 4);
    assert!(f.iter().all(|x| x.get("usage").is_none()));
}

/// The same round trip through the stream: the streamed call's id brings its signature back.
#[test]
fn signature_round_trip_streamed() {
    let meta = GeminiMeta {
        stream: true,
        ..GeminiMeta::default()
    };
    let mut s = Stream::new(&meta);
    let mut out = Vec::new();
    s.feed(br#"{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"ls","args":{"path":"."}},"thoughtSignature":"Q2lrQg=="}]},"finishReason":"STOP"}],"responseId":"rs"}"#, &SEAL, &mut out);
    s.finish(&mut out);
    let f = frames(&out);
    let call = f[1]["choices"][0]["delta"]["tool_calls"][0].clone();
    let id = call["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("call_rs_0__rwts__"), "{id}");
    let (g, _) = req(
        json!({"model": "m", "messages": [
            {"role": "user", "content": "list"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": id, "type": "function", "function": call["function"]}]},
            {"role": "tool", "tool_call_id": id, "content": "a.txt"}
        ]}),
        "gemini-3-flash-preview",
    )
    .unwrap();
    assert_eq!(
        g["contents"][1]["parts"][0],
        json!({"functionCall": {"id": "call_rs_0", "name": "ls", "args": {"path": "."}}, "thoughtSignature": "Q2lrQg=="})
    );
    assert_eq!(
        g["contents"][2]["parts"][0]["functionResponse"]["id"],
        json!("call_rs_0")
    );
}
