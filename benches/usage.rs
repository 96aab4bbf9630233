//! Usage reading (`usage::Meter` per event, `usage::from_body` per answer) over recorded mock
//! answers of 400 tokens: what metering adds to every stream and every whole answer. The
//! pump bench measures the same meter inside `Stream::feed`.

#![allow(clippy::expect_used)]

mod common;

use std::hint::black_box;

use bytes::Bytes;
use common::recorded;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringway::format::Format;
use ringway::mock::script::Api;
use ringway::sse::Decoder;
use ringway::usage::{from_body, Meter};

/// (event name, data) of every event of `stream`.
fn events(stream: &[u8]) -> Vec<(Option<Bytes>, Bytes)> {
    let mut dec = Decoder::new(1 << 24);
    dec.push(Bytes::copy_from_slice(stream));
    let mut out = Vec::new();
    while let Ok(Some(ev)) = dec.next_event() {
        out.push((ev.event.clone(), ev.data.clone().unwrap_or_default()));
    }
    out
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("usage");
    let prompt = "mock:tokens=400 tell me";
    let cases = [
        (
            "openai_stream_with_usage",
            Api::OpenAiChat,
            Format::OpenAi,
            serde_json::json!({"model": "m", "stream": true, "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": prompt}]}),
        ),
        (
            "anthropic_stream",
            Api::AnthropicMessages,
            Format::Anthropic,
            serde_json::json!({"model": "m", "stream": true, "max_tokens": 1000,
                "messages": [{"role": "user", "content": prompt}]}),
        ),
    ];
    for (name, api, format, body) in cases {
        let stream = recorded(api, &body);
        let evs = events(&stream);
        let mut check = Meter::new(format);
        for (name, data) in &evs {
            check.on_event(name.as_deref(), data);
        }
        assert!(
            check.metered().usage.is_some(),
            "{name}: the recorded stream has usage"
        );
        g.throughput(Throughput::Elements(evs.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut m = Meter::new(format);
                for (name, data) in &evs {
                    m.on_event(name.as_deref(), data);
                }
                black_box(m.metered())
            })
        });
    }
    for (name, api, format, body) in [
        (
            "openai_body",
            Api::OpenAiChat,
            Format::OpenAi,
            serde_json::json!({"model": "m", "messages": [{"role": "user", "content": prompt}]}),
        ),
        (
            // The short answer every closed-loop load test gets (835 bytes, pretty-printed).
            "openai_body_short",
            Api::OpenAiChat,
            Format::OpenAi,
            serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hello"}]}),
        ),
        (
            "anthropic_body",
            Api::AnthropicMessages,
            Format::Anthropic,
            serde_json::json!({"model": "m", "max_tokens": 1000,
                "messages": [{"role": "user", "content": prompt}]}),
        ),
    ] {
        let whole = recorded(api, &body);
        assert!(
            from_body(format, &whole).usage.is_some(),
            "{name}: the body has usage"
        );
        g.throughput(Throughput::Bytes(whole.len() as u64));
        g.bench_function(name, |b| b.iter(|| black_box(from_body(format, &whole))));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
