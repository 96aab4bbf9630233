//! Rewriting `model` in same-format request bodies: the serde_json `RawValue` path, the
//! simd-json tape path, the scanning path, and a full `Value` re-serialisation as the baseline
//! to beat, over small bodies and agent-size ones (Chat and Messages, 50 and 300 KB).
//! The result picks which path `ringway::json::inspect_request` uses.

#[allow(
    dead_code,
    reason = "shared by the benches and this command, each using a part"
)]
#[path = "../loadtest/src/agent.rs"]
mod agent;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringway::json::{
    inspect_request_scan, inspect_request_serde, inspect_request_simd, splice_string, SimdScratch,
};

/// The upstream model spliced in place of the route alias.
const UPSTREAM_MODEL: &str = "claude-haiku-4-5-20251001";

/// A one-turn request of about 1 KB.
fn body_1k() -> Vec<u8> {
    br#"{"model":"fast","messages":[{"role":"system","content":"You are a concise assistant for a travel booking site. Answer in the user's language, keep replies under 80 words, and never invent prices."},{"role":"user","content":"I need a hotel in Lisbon for three nights from the 14th, close to the Alfama district, with breakfast included and a budget of around 120 EUR per night. Can you suggest a shortlist and tell me what to check before booking? Also, is the 28 tram a good way to get around from there, or should I rely on taxis and walking?"}],"temperature":0.3,"max_tokens":400,"presence_penalty":0.1,"tools":[{"type":"function","function":{"name":"search_hotels","description":"Search hotels by city, dates and budget","parameters":{"type":"object","properties":{"city":{"type":"string"},"nights":{"type":"integer"},"max_price_eur":{"type":"number"}},"required":["city"]}}}],"stream":true,"stream_options":{"include_usage":true},"user":"u-7f3a9c","metadata":{"session":"s-2291","model":"client-side-label"}}"#
        .to_vec()
}

/// A multi-turn conversation of about 10 KB, with escapes, CJK and emoji text, and a tool.
fn body_10k() -> Vec<u8> {
    let mut s = String::from(
        r#"{"messages":[{"role":"system","content":"You are a careful coding assistant.\nAlways answer with \"code\" blocks.\tUse C:\\paths when asked."}"#,
    );
    let turns = [
        r#"{"role":"user","content":"How do I read a file line by line in Rust? 日本語で説明してください 🙏"}"#,
        r#"{"role":"assistant","content":"Use `BufReader`:\n```rust\nlet f = File::open(\"in.txt\")?;\nfor line in BufReader::new(f).lines() {\n    println!(\"{}\", line?);\n}\n```\nこれで各行を読み込めます。 ✅"}"#,
        r#"{"role":"user","content":"And with an escaped path like \"C:\\\\data\\\\in.txt\" — does that work? Ünïcödé too: \u00e9\u00e8 \ud83d\ude00"}"#,
        r#"{"role":"assistant","content":null,"tool_calls":[{"id":"call_8f2","type":"function","function":{"name":"run_snippet","arguments":"{\"code\":\"fn main() { println!(\\\"hi\\\"); }\",\"model\":\"sandbox\"}"}}]}"#,
        r#"{"role":"tool","tool_call_id":"call_8f2","content":"{\"stdout\":\"hi\\n\",\"exit\":0}"}"#,
    ];
    let mut i = 0;
    while s.len() < 9_300 {
        s.push(',');
        s.push_str(turns[i % turns.len()]);
        i += 1;
    }
    s.push_str(
        r#"],"tools":[{"type":"function","function":{"name":"run_snippet","description":"Runs Rust code in a sandbox","parameters":{"type":"object","properties":{"code":{"type":"string"},"model":{"type":"string","enum":["sandbox","local"]}},"required":["code"]}}}],"tool_choice":"auto","model":"smart","temperature":0.2,"stream":true}"#,
    );
    s.into_bytes()
}

/// A user message with a base64 PNG data URL, about 100 KB in total.
fn body_100k_image() -> Vec<u8> {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut state: u32 = 0x1234_5678;
    let image: String = (0..100_000)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            char::from(B64[(state >> 26) as usize])
        })
        .collect();
    format!(
        r#"{{"model":"vision","messages":[{{"role":"user","content":[{{"type":"text","text":"What is in this picture? Describe the scene briefly."}},{{"type":"image_url","image_url":{{"url":"data:image/png;base64,{image}","detail":"high"}}}}]}}],"max_tokens":300,"stream":false}}"#
    )
    .into_bytes()
}

/// The baseline the design rules out: parse everything, set the field, write everything.
fn reserialise(body: &[u8]) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    v["model"] = serde_json::Value::String(UPSTREAM_MODEL.to_owned());
    serde_json::to_vec(&v).unwrap_or_default()
}

fn json_model_splice(c: &mut Criterion) {
    let mut scratch = SimdScratch::new();
    let agent = |shape, size| agent::body(shape, size, "fast", false);
    for (name, body) in [
        ("1k", body_1k()),
        ("10k", body_10k()),
        ("100k_image", body_100k_image()),
        ("agent_chat_50k", agent(agent::Shape::Chat, 50 * 1024)),
        ("agent_chat_300k", agent(agent::Shape::Chat, 300 * 1024)),
        (
            "agent_messages_300k",
            agent(agent::Shape::Messages, 300 * 1024),
        ),
    ] {
        // A bench of the error path would say nothing: both parsers must accept the body and
        // agree on it.
        let info = inspect_request_serde(&body);
        assert!(info.is_ok(), "{name}: {info:?}");
        assert_eq!(info, inspect_request_simd(&body, &mut scratch), "{name}");
        assert_eq!(info, inspect_request_scan(&body), "{name}");

        let mut group = c.benchmark_group(format!("json_model_splice/{name}"));
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(2));
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function("serde_rawvalue", |b| {
            b.iter(|| {
                let body = black_box(&body[..]);
                inspect_request_serde(body)
                    .ok()
                    .and_then(|info| splice_string(body, info.model_span, UPSTREAM_MODEL))
            })
        });
        group.bench_function("simd_tape", |b| {
            b.iter(|| {
                let body = black_box(&body[..]);
                inspect_request_simd(body, &mut scratch)
                    .ok()
                    .and_then(|info| splice_string(body, info.model_span, UPSTREAM_MODEL))
            })
        });
        group.bench_function("scan", |b| {
            b.iter(|| {
                let body = black_box(&body[..]);
                inspect_request_scan(body)
                    .ok()
                    .and_then(|info| splice_string(body, info.model_span, UPSTREAM_MODEL))
            })
        });
        group.bench_function("reserialise_baseline", |b| {
            b.iter(|| reserialise(black_box(&body[..])))
        });
        group.finish();
    }
}

criterion_group!(benches, json_model_splice);
criterion_main!(benches);
