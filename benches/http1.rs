//! http1 codec benches: parsing a typical SDK request head, decoding a chunked body.

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringway::http1::{self, BodyDecoder, BodyEvent, Framing};
use std::hint::black_box;

/// Shaped like what the OpenAI Python SDK sends: 17 fields, ~650 bytes.
const SDK_HEAD: &[u8] = b"POST /v1/chat/completions HTTP/1.1\r\n\
Host: gateway.internal:8080\r\n\
Accept-Encoding: gzip, deflate\r\n\
Connection: keep-alive\r\n\
Accept: application/json\r\n\
Content-Type: application/json\r\n\
User-Agent: OpenAI/Python 1.99.1\r\n\
X-Stainless-Lang: python\r\n\
X-Stainless-Package-Version: 1.99.1\r\n\
X-Stainless-OS: Linux\r\n\
X-Stainless-Arch: x64\r\n\
X-Stainless-Runtime: CPython\r\n\
X-Stainless-Runtime-Version: 3.12.3\r\n\
Authorization: Bearer sk-proj-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV0123456789abcdefghij\r\n\
X-Stainless-Async: false\r\n\
x-stainless-retry-count: 0\r\n\
x-stainless-read-timeout: 600\r\n\
Content-Length: 1234\r\n\
\r\n";

fn parse_head(c: &mut Criterion) {
    let mut g = c.benchmark_group("http1");
    g.throughput(Throughput::Bytes(SDK_HEAD.len() as u64));
    let mut buf = BytesMut::with_capacity(SDK_HEAD.len());
    g.bench_function("parse_head", |b| {
        b.iter(|| {
            buf.clear();
            buf.extend_from_slice(black_box(SDK_HEAD));
            let head = http1::parse_request_head(&mut buf, http1::MAX_HEAD_BYTES);
            black_box(head.ok().flatten().map(|h| h.framing()))
        })
    });
    g.finish();
}

fn chunked_decode(c: &mut Criterion) {
    let payload = vec![b'x'; 1024];
    let mut wire = Vec::new();
    for _ in 0..64 {
        http1::write_chunk(&mut wire, &payload);
    }
    wire.extend_from_slice(http1::LAST_CHUNK);
    let mut g = c.benchmark_group("http1");
    g.throughput(Throughput::Bytes(64 * 1024));
    let mut buf = BytesMut::with_capacity(wire.len());
    g.bench_function("chunked_decode", |b| {
        b.iter(|| {
            buf.clear();
            buf.extend_from_slice(black_box(&wire));
            let mut dec = BodyDecoder::new(Framing::Chunked);
            let mut total = 0usize;
            while let Ok(BodyEvent::Data(d)) = dec.decode(&mut buf) {
                total += d.len();
            }
            black_box(total)
        })
    });
    g.finish();
}

criterion_group!(benches, parse_head, chunked_decode);
criterion_main!(benches);
