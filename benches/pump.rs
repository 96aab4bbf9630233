//! The stream pump's per-read step (`proxy::pump::Stream::feed`: decode the read's events,
//! pass them through the stage, frame one chunk) over recorded mock streams of 400 tokens,
//! fed in 1400-byte reads: bytes/s, and events/s with the same runs counted per event.
//! Passthrough and both translations.

#![allow(clippy::expect_used)]

mod common;

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use common::recorded;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringway::format::Format;
use ringway::http1::{BodyCodec, BodyFraming};
use ringway::mock::script::Api;
use ringway::proxy::pump::Stream;
use ringway::translate::{Options, Pair, RequestMeta};

/// Bytes per upstream read.
const CHUNK_BYTES: usize = 1400;

fn openai_request() -> serde_json::Value {
    serde_json::json!({"model": "m", "stream": true,
        "messages": [{"role": "user", "content": "mock:tokens=400 tell me"}]})
}

fn anthropic_request() -> serde_json::Value {
    serde_json::json!({"model": "m", "stream": true, "max_tokens": 1000,
        "messages": [{"role": "user", "content": "mock:tokens=400 tell me"}]})
}

/// What translating the client's request produced, which the stream translator needs.
fn meta(pair: Pair, client_body: &serde_json::Value) -> RequestMeta {
    let (_, meta) = pair
        .request(client_body.to_string().as_bytes(), "m", &Options::default())
        .expect("the bench request translates");
    meta
}

fn events(stream: &[u8]) -> u64 {
    stream.windows(2).filter(|w| w == b"\n\n").count() as u64
}

/// Pump `stream` through a fresh `Stream` in CHUNK_BYTES reads; returns bytes written.
fn pump(pair: Pair, meta: Option<&RequestMeta>, chunks: &[Bytes], wbuf: &mut Vec<u8>) -> usize {
    let mut s = Stream::new(pair, meta, BodyCodec::new(BodyFraming::Chunked));
    let mut written = 0;
    for c in chunks {
        wbuf.clear();
        let _ = s.feed(c.clone(), wbuf, true);
        written += wbuf.len();
    }
    wbuf.clear();
    black_box(s.finish(None, wbuf, true));
    written + wbuf.len()
}

/// A bench case: name, pair, translation metadata, the reads, the whole stream.
type Case<'a> = (
    &'a str,
    Pair,
    Option<&'a RequestMeta>,
    &'a [Bytes],
    &'a [u8],
);

fn bench(c: &mut Criterion) {
    let openai = recorded(Api::OpenAiChat, &openai_request());
    let anthropic = recorded(Api::AnthropicMessages, &anthropic_request());
    let chunks =
        |b: &[u8]| -> Vec<Bytes> { b.chunks(CHUNK_BYTES).map(Bytes::copy_from_slice).collect() };
    let (oc, ac) = (chunks(&openai), chunks(&anthropic));
    let a2o = Pair::new(Format::OpenAi, Format::Anthropic);
    let o2a = Pair::new(Format::Anthropic, Format::OpenAi);
    let a2o_meta = meta(a2o, &openai_request());
    let o2a_meta = meta(o2a, &anthropic_request());
    let cases: [Case<'_>; 4] = [
        (
            "passthrough_openai",
            Pair::new(Format::OpenAi, Format::OpenAi),
            None,
            &oc,
            &openai,
        ),
        (
            "passthrough_anthropic",
            Pair::new(Format::Anthropic, Format::Anthropic),
            None,
            &ac,
            &anthropic,
        ),
        ("translate_a2o", a2o, Some(&a2o_meta), &ac, &anthropic),
        ("translate_o2a", o2a, Some(&o2a_meta), &oc, &openai),
    ];
    let mut wbuf = Vec::with_capacity(64 * 1024);
    for (unit, throughput) in [("bytes", true), ("events", false)] {
        let mut g = c.benchmark_group(format!("pump_{unit}"));
        g.measurement_time(Duration::from_secs(3));
        for (name, pair, meta, chunks, stream) in &cases {
            g.throughput(if throughput {
                Throughput::Bytes(stream.len() as u64)
            } else {
                Throughput::Elements(events(stream))
            });
            g.bench_function(*name, |b| b.iter(|| pump(*pair, *meta, chunks, &mut wbuf)));
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
