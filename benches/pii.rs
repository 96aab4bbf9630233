//! PII substitution costs: detection and substitution over a 4 KiB prompt with a dozen
//! entities (`pii/substitute_4k`), and the streaming restorer over a 4 KiB answer pushed in
//! 16-byte deltas, with stand-ins in it (`pii/restore_stream_4k`) and with none
//! (`pii/restore_stream_4k_clean`: the cost every delta pays when PII is on).

#![allow(clippy::expect_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringway::pii::{Detector, Restorer, Session, Term};

/// One paragraph with entities of most kinds; repeated to about 4 KiB.
const PARAGRAPH: &str =
    "Dear team, Jane Doe (jane.doe@corp.example.io, +44 20 7946 0958) paid with \
4111 1111 1111 1111 from GB82 WEST 1234 5698 7654 32; her SSN is 123-45-6789 and the server \
at 10.20.30.40 logged it. Please follow up before Friday and keep the notes short. ";

fn bench(c: &mut Criterion) {
    let terms = [Term {
        text: "Jane Doe".into(),
        kind: ringway::pii::Kind::Name,
    }];
    let detector = Detector::new(&[], &terms).expect("detector");
    let prompt = PARAGRAPH.repeat(4096 / PARAGRAPH.len() + 1);
    let mut g = c.benchmark_group("pii");
    g.throughput(Throughput::Bytes(prompt.len() as u64));
    g.bench_function("substitute_4k", |b| {
        b.iter(|| {
            let mut s = Session::new(&detector, b"bench-key");
            black_box(s.substitute(&[black_box(prompt.as_str())]))
        })
    });
    let mut s = Session::new(&detector, b"bench-key");
    let sent = s
        .substitute(&[prompt.as_str()])
        .pop()
        .flatten()
        .expect("entities");
    let set = s.restore_set().expect("stand-ins");
    let clean = "The quick brown fox jumps over the lazy dog. ".repeat(4096 / 45 + 1);
    for (name, text) in [
        ("restore_stream_4k", sent.as_str()),
        ("restore_stream_4k_clean", clean.as_str()),
    ] {
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut r = Restorer::new(set.clone());
                let mut n = 0;
                for chunk in text.as_bytes().chunks(16) {
                    n += r.push(black_box(chunk)).len();
                }
                n + r.finish().len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
