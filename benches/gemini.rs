//! The Gemini pairs' cost per byte beside the same-format path, for a small request and an
//! agent-size one (~300 KB: a system prompt, four tools and tool turns with file bodies): the
//! same-format baseline (locate `model`, splice it), Chat/Messages/Responses clients to a
//! Gemini provider, and a Gemini client to Chat Completions and to Messages. Run:
//! `cargo bench --bench gemini -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringway::format::Format;
use ringway::json::{inspect_request, splice_string};
use ringway::seal::{Holder, SealKey};
use ringway::translate::{Options, Pair};
use serde_json::{json, Value};

/// Tool turns in the agent-size conversation (~300 KB of Chat Completions).
const AGENT_TURNS: usize = 240;

fn chat_request(turns: usize) -> Vec<u8> {
    let schema = json!({"type":"object","properties":{"path":{"type":"string","description":"File to read"},
        "start_line":{"type":"integer"}},"required":["path"],"additionalProperties":false});
    let mut messages = vec![json!({"role":"system",
        "content":"You are a coding agent. Read files before editing. ".repeat(40)})];
    for t in 0..turns {
        messages.push(json!({"role":"user","content":format!("Step {t}: what does parse do in src/m{t}.rs? résumé ✅")}));
        messages.push(json!({"role":"assistant","content":null,"tool_calls":[{"id":format!("call_{t:04}"),
            "type":"function","function":{"name":"read_file","arguments":format!("{{\"path\":\"src/m{t}.rs\"}}")}}]}));
        messages.push(json!({"role":"tool","tool_call_id":format!("call_{t:04}"),
            "content":"fn parse(input: &str) -> Result<Ast, Error> {\n    let mut p = Parser::new(input);\n    p.expr()\n}\n".repeat(12)}));
    }
    messages.push(json!({"role":"user","content":"now fix it"}));
    let tools: Vec<Value> = ["read_file", "write_file", "list_dir", "run_tests"]
        .iter()
        .map(|n| json!({"type":"function","function":{"name":n,"description":"Workspace tool","parameters":schema}}))
        .collect();
    serde_json::to_vec(
        &json!({"model":"agent","messages":messages,"tools":tools,"max_completion_tokens":8192}),
    )
    .unwrap_or_default()
}

fn options() -> Options {
    Options {
        seal: SealKey::from_bytes(&[7; 32]).map(|k| k.for_holder(Holder::Open)),
        provider: "p".into(),
        ..Options::default()
    }
}

/// `body` (Chat Completions) in `to`'s dialect, through the gateway's own translators.
fn as_dialect(body: &[u8], to: Format) -> Vec<u8> {
    let opts = options();
    match to {
        Format::OpenAi => body.to_vec(),
        Format::Anthropic => Pair::new(Format::OpenAi, Format::Anthropic)
            .request(body, "claude-sonnet-4-5", &opts)
            .map(|(b, _)| b)
            .unwrap_or_default(),
        Format::Gemini => Pair::new(Format::OpenAi, Format::Gemini)
            .request(body, "gemini-2.5-pro", &opts)
            .map(|(b, _)| b)
            .unwrap_or_default(),
        Format::Responses => {
            // A Responses body with the same conversation as input items.
            let v: Value = serde_json::from_slice(body).unwrap_or_default();
            let mut input = Vec::new();
            for m in v["messages"].as_array().into_iter().flatten() {
                match m["role"].as_str() {
                    Some("tool") => input.push(json!({"type":"function_call_output",
                        "call_id": m["tool_call_id"], "output": m["content"]})),
                    Some("assistant") => {
                        for c in m["tool_calls"].as_array().into_iter().flatten() {
                            input.push(json!({"type":"function_call","call_id": c["id"],
                                "name": c["function"]["name"], "arguments": c["function"]["arguments"]}));
                        }
                    }
                    Some("system") => {
                        input.push(json!({"role":"developer","content": m["content"]}))
                    }
                    _ => input.push(json!({"role":"user","content": m["content"]})),
                }
            }
            let tools: Vec<Value> = v["tools"].as_array().into_iter().flatten()
                .map(|t| json!({"type":"function","name": t["function"]["name"],
                    "description": t["function"]["description"], "parameters": t["function"]["parameters"]}))
                .collect();
            serde_json::to_vec(&json!({"model":"agent","input":input,"tools":tools,"store":false}))
                .unwrap_or_default()
        }
    }
}

fn pairs(c: &mut Criterion) {
    let opts = options();
    for (size, turns) in [("small", 1), ("agent_300k", AGENT_TURNS)] {
        let chat = chat_request(turns);
        let mut g = c.benchmark_group(format!("gemini_pairs/{size}"));
        g.measurement_time(Duration::from_secs(3));
        g.throughput(Throughput::Bytes(chat.len() as u64));
        g.bench_function("same_format_splice", |b| {
            b.iter(|| {
                let info = inspect_request(black_box(&chat)).ok()?;
                splice_string(&chat, info.model_span.clone(), "gpt-4.1")
            })
        });
        for (label, client, provider) in [
            ("chat_to_gemini", Format::OpenAi, Format::Gemini),
            ("messages_to_gemini", Format::Anthropic, Format::Gemini),
            ("responses_to_gemini", Format::Responses, Format::Gemini),
            ("gemini_to_chat", Format::Gemini, Format::OpenAi),
            ("gemini_to_messages", Format::Gemini, Format::Anthropic),
        ] {
            let body = as_dialect(&chat, client);
            assert!(!body.is_empty(), "{label}: no body");
            let pair = Pair::new(client, provider);
            assert!(pair.request(&body, "m", &opts).is_ok(), "{label}");
            g.throughput(Throughput::Bytes(body.len() as u64));
            g.bench_function(label, |b| {
                b.iter(|| pair.request(black_box(&body), "gemini-2.5-pro", &opts))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, pairs);
criterion_main!(benches);
