//! Agent-size request bodies (`loadtest/src/agent.rs`: Claude Code's and Codex's captured
//! requests grown with tool turns to 50, 150 and 300 KB) through each request path a client
//! and provider pair takes: the same-format path (validate, find the model, splice it) and
//! each translation among Chat, Messages and Responses. Throughput is bytes of client body per
//! second.
//!
//! `cargo bench --bench agent` runs criterion. For instruction counts, which do not depend on
//! the machine's load, run one path a fixed number of times under callgrind:
//!
//! ```text
//! AGENT_BENCH_ONCE=chat_to_messages/300k AGENT_BENCH_RUNS=20 \
//!   valgrind --tool=callgrind target/release/deps/agent-<hash>
//! ```
//! and subtract a run with `AGENT_BENCH_RUNS=0` (the setup): what is left, over runs × body
//! bytes, is instructions per byte.

#[allow(
    dead_code,
    reason = "shared with loadtest, which uses other parts of it"
)]
#[path = "../loadtest/src/agent.rs"]
mod agent;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use ringway::format::Format;
use ringway::json::{inspect_request, splice_string};
use ringway::seal::SealKey;
use ringway::translate::responses::responses_request;
use ringway::translate::{anthropic_to_openai_request, openai_to_anthropic_request, Options};

use agent::Shape;

/// The model a client names (a route alias) and the one spliced or written in its place.
const CLIENT_MODEL: &str = "agent";
const UPSTREAM_MODEL: &str = "claude-sonnet-4-5";

/// A request path: its name, the client's format, and what it does to a body.
struct Path {
    name: &'static str,
    client: Shape,
    run: fn(&[u8], &Options) -> usize,
}

fn same_format(body: &[u8], _: &Options) -> usize {
    inspect_request(body)
        .ok()
        .and_then(|info| splice_string(body, info.model_span, UPSTREAM_MODEL))
        .map_or(0, |b| b.len())
}

fn chat_to_messages(body: &[u8], opts: &Options) -> usize {
    openai_to_anthropic_request(body, UPSTREAM_MODEL, opts).map_or(0, |(b, _)| b.len())
}

fn messages_to_chat(body: &[u8], opts: &Options) -> usize {
    anthropic_to_openai_request(body, UPSTREAM_MODEL, opts).map_or(0, |(b, _)| b.len())
}

fn responses_to_chat(body: &[u8], opts: &Options) -> usize {
    responses_request(body, UPSTREAM_MODEL, Format::OpenAi, opts).map_or(0, |(b, _)| b.len())
}

fn responses_to_messages(body: &[u8], opts: &Options) -> usize {
    responses_request(body, UPSTREAM_MODEL, Format::Anthropic, opts).map_or(0, |(b, _)| b.len())
}

/// Every path measured. Chat and Messages clients never reach a Responses provider (a native
/// Responses provider serves Responses clients only), so those two pairs do not exist.
const PATHS: [Path; 6] = [
    Path {
        name: "chat_same_format",
        client: Shape::Chat,
        run: same_format,
    },
    Path {
        name: "messages_same_format",
        client: Shape::Messages,
        run: same_format,
    },
    Path {
        name: "chat_to_messages",
        client: Shape::Chat,
        run: chat_to_messages,
    },
    Path {
        name: "messages_to_chat",
        client: Shape::Messages,
        run: messages_to_chat,
    },
    Path {
        name: "responses_to_chat",
        client: Shape::Responses,
        run: responses_to_chat,
    },
    Path {
        name: "responses_to_messages",
        client: Shape::Responses,
        run: responses_to_messages,
    },
];

fn options() -> Options {
    Options {
        seal: SealKey::from_bytes(&[7; 32]),
        provider: "bench-provider".into(),
        ..Options::default()
    }
}

fn size_name(size: usize) -> String {
    format!("{}k", size / 1024)
}

fn bodies() -> Vec<(Shape, usize, Vec<u8>)> {
    let mut out = Vec::new();
    for shape in Shape::ALL {
        for &size in &agent::SIZES {
            out.push((shape, size, agent::body(shape, size, CLIENT_MODEL, false)));
        }
    }
    out
}

fn criterion_benches(c: &mut Criterion) {
    let opts = options();
    let bodies = bodies();
    for path in &PATHS {
        let mut g = c.benchmark_group(format!("agent_request/{}", path.name));
        g.warm_up_time(Duration::from_millis(500));
        g.measurement_time(Duration::from_secs(2));
        for (shape, size, body) in &bodies {
            if *shape != path.client {
                continue;
            }
            // Measure the path, not an early refusal.
            assert!((path.run)(body, &opts) > 0, "{} {size}", path.name);
            g.throughput(Throughput::Bytes(body.len() as u64));
            g.bench_function(size_name(*size), |b| {
                b.iter(|| (path.run)(black_box(body), &opts))
            });
        }
        g.finish();
    }
}

/// `AGENT_BENCH_ONCE=path/size`: run that path `AGENT_BENCH_RUNS` times (default 20), for
/// callgrind.
fn once(which: &str) {
    let opts = options();
    let runs: usize = std::env::var("AGENT_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let (name, size) = which.split_once('/').unwrap_or((which, "300k"));
    let Some(path) = PATHS.iter().find(|p| p.name == name) else {
        eprintln!("no path {name:?}");
        std::process::exit(2);
    };
    let Some(size) = agent::parse_size(size) else {
        eprintln!("bad size {size:?}");
        std::process::exit(2);
    };
    let body = agent::body(path.client, size, CLIENT_MODEL, false);
    let mut out = 0;
    for _ in 0..runs {
        out += (path.run)(black_box(&body), &opts);
    }
    eprintln!("{name}/{} B: {runs} runs, {out} bytes out", body.len());
}

fn main() {
    if let Ok(which) = std::env::var("AGENT_BENCH_ONCE") {
        once(&which);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c);
    c.final_summary();
}
