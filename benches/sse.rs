//! SSE decode throughput on ~1 MiB synthetic streams shaped like real provider captures,
//! fed in 1400-byte chunks (one TLS record's worth) as the upstream reader delivers them.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringway::sse::{Decoder, MAX_EVENT_BYTES};

/// Size of each stream.
const STREAM_BYTES: usize = 1 << 20;
/// Bytes per upstream read.
const CHUNK_BYTES: usize = 1400;

const WORDS: &[&str] = &[
    " the", " weather", " in", " Paris", " is", " sunny", ",", " 21", "°C", ".",
];

fn openai_text_stream() -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while out.len() < STREAM_BYTES {
        let word = WORDS[i % WORDS.len()];
        out.extend_from_slice(
            format!(
                "data: {{\"id\":\"chatcmpl-ABfw031mOJeYCSHe4yI2ZjOA6kMJL\",\"object\":\"chat.completion.chunk\",\
\"created\":1727346168,\"model\":\"gpt-4o-2024-08-06\",\"system_fingerprint\":\"fp_5050236cbd\",\
\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{word}\"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n"
            )
            .as_bytes(),
        );
        i += 1;
    }
    out.extend_from_slice(b"data: [DONE]\n\n");
    out
}

fn anthropic_tool_stream() -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-haiku-4-5-20251001\",\"id\":\"msg_01AusY9WEbCaj3N7Tv5J4YjH\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":656,\"output_tokens\":26}} }\n\n");
    out.extend_from_slice(b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_018acGYLtfR52q9yDbWaEdQZ\",\"name\":\"get_weather\",\"input\":{}}             }\n\n");
    out.extend_from_slice(b"event: ping\ndata: {\"type\": \"ping\"}\n\n");
    let mut i = 0;
    while out.len() < STREAM_BYTES {
        let fragment = [
            "{\\\"",
            "loca",
            "tio",
            "n\\\": ",
            "\\\"Paris",
            ", Fr",
            "ance\\\"}",
        ][i % 7];
        let pad = " ".repeat(4 + (i * 7) % 12);
        out.extend_from_slice(
            format!(
                "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\
\"delta\":{{\"type\":\"input_json_delta\",\"partial_json\":\"{fragment}\"}}{pad}}}\n\n"
            )
            .as_bytes(),
        );
        i += 1;
    }
    out.extend_from_slice(
        b"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0    }\n\n",
    );
    out.extend_from_slice(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":40}}\n\n");
    out.extend_from_slice(b"event: message_stop\ndata: {\"type\":\"message_stop\"     }\n\n");
    out
}

/// Decodes the whole stream; returns (events, data bytes) so nothing is optimised away.
fn decode(chunks: &[Bytes]) -> (usize, usize) {
    let mut dec = Decoder::new(MAX_EVENT_BYTES);
    let (mut events, mut data) = (0, 0);
    for chunk in chunks {
        dec.push(chunk.clone());
        while let Some(ev) = dec.next_event().unwrap_or(None) {
            events += 1;
            data += ev.data.map_or(0, |d| d.len());
        }
    }
    (events, data)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("sse_decode");
    group.sample_size(20);
    group.warm_up_time(std::time::Duration::from_secs(1));
    group.measurement_time(std::time::Duration::from_secs(4));
    for (name, stream) in [
        ("openai_text_stream", openai_text_stream()),
        ("anthropic_tool_stream", anthropic_tool_stream()),
    ] {
        // Separate buffers, as separate reads would be.
        let chunks: Vec<Bytes> = stream
            .chunks(CHUNK_BYTES)
            .map(Bytes::copy_from_slice)
            .collect();
        let expected_events = stream.windows(2).filter(|w| w == b"\n\n").count();
        assert_eq!(
            decode(&chunks).0,
            expected_events,
            "{name}: every event decoded"
        );
        group.throughput(Throughput::Bytes(stream.len() as u64));
        group.bench_function(name, |b| b.iter(|| black_box(decode(black_box(&chunks)))));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
