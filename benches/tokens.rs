//! count_tokens estimates: building the o200k_base tokenizer once, and estimating a ~40 KB
//! agent request (system prompt, tools, tool calls and results, an image), plus the same
//! size of text with no whitespace at all (the tokenizer's worst case), and the same agent
//! conversation as a Chat Completions body (the estimate of a stream cut short). Before the
//! timed runs it prints, once, how much resident memory a built tokenizer adds.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringway::format::Format;
use ringway::tokens::{estimate_anthropic_request, estimate_request, shared};
use serde_json::{json, Value};

/// Target size of the benchmark request body.
const BODY_BYTES: usize = 40 * 1024;

/// Resident set size of this process, from /proc (Linux), in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// An Anthropic agent conversation of about `BODY_BYTES`.
fn agent_request() -> Vec<u8> {
    let schema = json!({"type":"object","properties":{"path":{"type":"string","description":"File to read"},
        "mode":{"type":"string","enum":["text","bytes"]},"lines":{"type":"array","items":{"type":"integer"}}},
        "required":["path"]});
    let tools: Vec<Value> = ["read_file", "write_file", "list_dir", "run_tests"]
        .iter()
        .map(|n| json!({"name":n,"description":"Workspace tool.","input_schema":schema}))
        .collect();
    // A 1x1 PNG header is enough: only the header is read.
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    let mut messages = vec![json!({"role":"user","content":[
        {"type":"text","text":"Look at this and the repository."},
        {"type":"image","source":{"type":"base64","media_type":"image/png","data":png}}]})];
    let mut t = 0;
    loop {
        let body = json!({"model":"gpt","system":"You are a coding agent. Read files before editing. ".repeat(20),
            "tools":tools,"messages":messages});
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        if bytes.len() >= BODY_BYTES {
            return bytes;
        }
        messages.push(json!({"role":"assistant","content":[
            {"type":"thinking","thinking":format!("Step {t}: the parse function is next; read it."),"signature":"sig"},
            {"type":"tool_use","id":format!("toolu_{t:04}"),"name":"read_file","input":{"path":format!("src/module_{t}.rs")}}]}));
        messages.push(json!({"role":"user","content":[{"type":"tool_result","tool_use_id":format!("toolu_{t:04}"),
            "content":"fn parse(input: &str) -> Result<Ast, Error> {\n    let mut p = Parser::new(input);\n    p.expr()\n}\n".repeat(4)}]}));
        t += 1;
    }
}

/// The same agent conversation as a Chat Completions body of about `BODY_BYTES`.
fn chat_agent_request() -> Vec<u8> {
    let schema = json!({"type":"object","properties":{"path":{"type":"string","description":"File to read"},
        "mode":{"type":"string","enum":["text","bytes"]},"lines":{"type":"array","items":{"type":"integer"}}},
        "required":["path"]});
    let tools: Vec<Value> = ["read_file", "write_file", "list_dir", "run_tests"]
        .iter()
        .map(|n| json!({"type":"function","function":{"name":n,"description":"Workspace tool.","parameters":schema}}))
        .collect();
    let png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    let mut messages = vec![
        json!({"role":"system","content":"You are a coding agent. Read files before editing. ".repeat(20)}),
        json!({"role":"user","content":[{"type":"text","text":"Look at this and the repository."},
            {"type":"image_url","image_url":{"url":png}}]}),
    ];
    let mut t = 0;
    loop {
        let body = json!({"model":"gpt","stream":true,"tools":tools,"messages":messages});
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        if bytes.len() >= BODY_BYTES {
            return bytes;
        }
        let id = format!("call_{t:04}");
        messages.push(json!({"role":"assistant","content":format!("Step {t}: the parse function is next; read it."),
            "tool_calls":[{"id":id,"type":"function","function":{"name":"read_file",
                "arguments":json!({"path":format!("src/module_{t}.rs")}).to_string()}}]}));
        messages.push(json!({"role":"tool","tool_call_id":id,
            "content":"fn parse(input: &str) -> Result<Ast, Error> {\n    let mut p = Parser::new(input);\n    p.expr()\n}\n".repeat(4)}));
        t += 1;
    }
}

/// One user message of `BODY_BYTES` letters with no whitespace.
fn no_whitespace_request() -> Vec<u8> {
    let text: String = (0..BODY_BYTES)
        .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
        .collect();
    serde_json::to_vec(&json!({"model":"gpt","messages":[{"role":"user","content":text}]}))
        .unwrap_or_default()
}

fn bench(c: &mut Criterion) {
    let before = rss_kib();
    let started = Instant::now();
    let Ok(bpe) = shared::build() else {
        return;
    };
    let took = started.elapsed();
    eprintln!(
        "o200k_base: built in {took:?}, resident memory +{} KiB",
        rss_kib().saturating_sub(before)
    );

    let mut g = c.benchmark_group("tokens");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("build_o200k", |b| b.iter(|| black_box(shared::build())));
    g.finish();

    let mut g = c.benchmark_group("tokens");
    for (name, body) in [
        ("estimate_agent_40k", agent_request()),
        ("estimate_no_whitespace_40k", no_whitespace_request()),
    ] {
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| black_box(estimate_anthropic_request(black_box(&body), &bpe)))
        });
    }
    let chat = chat_agent_request();
    g.throughput(Throughput::Bytes(chat.len() as u64));
    g.bench_function("estimate_chat_agent_40k", |b| {
        b.iter(|| {
            black_box(estimate_request(
                Format::OpenAi,
                black_box(&chat),
                &bpe,
                usize::MAX,
            ))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
