//! SigV4 signing of a Bedrock InvokeModel request, as a worker does it once the final body
//! exists: the body's SHA-256 (ring) plus the signature, for 50, 150 and 300 KB bodies, and
//! the signing step alone (canonical request, string to sign, HMAC chain).

#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::time::SystemTime;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringway::credentials::aws::Keys;
use ringway::credentials::sigv4::{sha256_hex, sign};

const HOST: &str = "bedrock-runtime.us-east-1.amazonaws.com";
const PATH: &str =
    "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream";

fn keys() -> Keys {
    Keys {
        access_key_id: "ASIAEXAMPLEEXAMPLE12".into(),
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        session_token: Some("IQoJb3JpZ2luX2VjE".repeat(40)),
        expires: None,
    }
}

fn sign_digest(keys: &Keys, digest: &str) -> Vec<(&'static str, String)> {
    sign(
        keys,
        "us-east-1",
        "bedrock",
        "POST",
        HOST,
        PATH,
        &[
            ("content-type", "application/json"),
            ("accept", "application/vnd.amazon.eventstream"),
            ("x-amzn-bedrock-accept", "application/json"),
        ],
        digest,
        SystemTime::now(),
    )
    .expect("signs")
}

fn bench(c: &mut Criterion) {
    let keys = keys();
    let mut g = c.benchmark_group("sigv4");
    for kb in [50usize, 150, 300] {
        // A JSON-ish body of the size (content does not change the cost).
        let body: Vec<u8> = br#"{"role":"user","content":"lorem ipsum dolor sit amet "},"#
            .iter()
            .copied()
            .cycle()
            .take(kb * 1000)
            .collect();
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(format!("hash_and_sign_{kb}kb"), |b| {
            b.iter(|| black_box(sign_digest(&keys, &sha256_hex(black_box(&body)))))
        });
    }
    let digest = sha256_hex(b"{}");
    g.throughput(Throughput::Elements(1));
    g.bench_function("sign_only", |b| {
        b.iter(|| black_box(sign_digest(&keys, black_box(&digest))))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
