//! Agent-size request bodies (`loadtest/src/agent.rs`: Claude Code's and Codex's captured
//! requests grown with tool turns to 50, 150 and 300 KB) through each request path a client
//! and provider pair takes: the same-format path (validate, find the model, splice it) and
//! each translation among Chat, Messages and Responses (after the same inspection, whose notes
//! it reads with, as in the gateway), and admission with PII substitution on (a Chat body
//! with five entities). Throughput is bytes of client body per second.
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
//!
//! `agent_session/<path>/300k` runs a whole session instead (`agent::session`: the turns that
//! end in the 300 KB body, in order, Messages' cache mark moved each turn as Claude Code moves
//! it), the way a worker sees one agent: each turn after the first starts where the one before
//! it was kept. `…/300k-afresh` is the same session with nothing kept (`without_kept`).
//! `AGENT_BENCH_SESSION=1` (and `AGENT_BENCH_AFRESH=1`) runs a session in once-mode.

#[allow(
    dead_code,
    reason = "shared with loadtest, which uses other parts of it"
)]
#[path = "../loadtest/src/agent.rs"]
mod agent;

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use ringway::format::Format;
use ringway::json::{
    inspect_checked, inspect_request, splice_string, with_checked, with_notes, with_scope, Checked,
    RequestInfo,
};
use ringway::seal::SealKey;
use ringway::translate::{without_kept, Options, Pair, Room};

use agent::Shape;

/// The model a client names (a route alias) and the one spliced or written in its place.
const CLIENT_MODEL: &str = "agent";
const UPSTREAM_MODEL: &str = "claude-sonnet-4-5";

thread_local! {
    /// The API key requests are admitted and translated for (see [`run_session`]).
    static KEY: std::cell::Cell<u64> = const { std::cell::Cell::new(1) };
}

/// A request path: its name, the client's format, and what it does to a body.
struct Path {
    name: &'static str,
    client: Shape,
    run: fn(&Bytes, &Options) -> usize,
}

fn same_format(body: &Bytes, _: &Options) -> usize {
    checked_inspection(body)
        .map(|(info, _)| info)
        .and_then(|info| splice_string(body, info.model_span, UPSTREAM_MODEL))
        .map_or(0, |b| b.len())
}

/// Admission with PII substitution on (the detectors, the walk, the rewrite), for a body that
/// holds a handful of entities (see [`with_entities`]).
#[allow(clippy::expect_used, reason = "the built-in detectors always compile")]
fn pii_substitution(body: &Bytes, _: &Options) -> usize {
    thread_local! {
        static DETECTOR: ringway::pii::Detector =
            ringway::pii::Detector::new(&[], &[]).expect("built-in detectors");
    }
    // As the gateway does: inspect, substitute with the inspection's notes, inspect the new
    // body with the notes moved (the flag is taken out only where the inspector saw one, and
    // these bodies carry none).
    let Some((info, _)) = checked_inspection(body) else {
        return 0;
    };
    DETECTOR.with(|d| {
        let mut session = ringway::pii::Session::new(d, b"bench-key");
        let Ok((out, splices)) = with_notes(body, &info.strings, || {
            ringway::pii::substitute_spliced(body, &mut session)
        }) else {
            return 0;
        };
        let notes = info.strings.spliced(&splices, &out);
        with_notes(&out, &notes, || inspect_request(&out)).map_or(0, |_| out.len())
    })
}

/// Five entities (as `loadtest/agent-size.py` puts them) in the first user turn's text.
fn with_entities(mut body: Vec<u8>) -> Vec<u8> {
    const TEXT: &[u8] = b" Mail jane.roe@corp.test, cc ops@corp.test or call (415) 555-2671, SSN 123-45-6789, host 10.20.30.40.";
    let marker = br#"{"role":"user","content":""#;
    if let Some(at) = memchr::memmem::find(&body, marker) {
        let at = at + marker.len();
        body.splice(at..at, TEXT.iter().copied());
    }
    body
}

/// What the gateway does before a translation: inspect the body (validation, the fields it
/// routes by, notes of where long strings end), then translate with those notes.
fn admitted(body: &Bytes, translate: impl FnOnce() -> Option<usize>) -> usize {
    let Some((info, utf8)) = checked_inspection(body) else {
        return 0;
    };
    with_checked(utf8.as_ref(), || with_notes(body, &info.strings, translate)).unwrap_or(0)
}

/// Admission's inspection: the body checked to be UTF-8 once, then inspected as known text,
/// for one API key (whose tools admission keeps, checked).
fn checked_inspection(body: &Bytes) -> Option<(RequestInfo, Option<Checked>)> {
    let (info, utf8) = inspect_checked(body, || with_scope(KEY.get(), || inspect_request(body)));
    let info = info.ok()?;
    Some((info, utf8))
}

/// A translation as the gateway takes it: shared bytes, its first members placed in front of
/// the conversation without moving it, for one API key (the conversation it keeps is kept
/// under the key: every run after the first starts where the last one ended, as an agent's
/// next turn starts after the elements it resends).
fn translated(body: &Bytes, client: Format, provider: Format, opts: &Options) -> usize {
    admitted(body, || {
        with_scope(KEY.get(), || {
            Pair::new(client, provider).request_shared(
                body,
                UPSTREAM_MODEL,
                opts,
                &Room::unlimited(),
            )
        })
        .ok()
        .map(|(b, _)| b.len())
    })
}

fn chat_to_messages(body: &Bytes, opts: &Options) -> usize {
    translated(body, Format::OpenAi, Format::Anthropic, opts)
}

fn messages_to_chat(body: &Bytes, opts: &Options) -> usize {
    translated(body, Format::Anthropic, Format::OpenAi, opts)
}

fn responses_to_chat(body: &Bytes, opts: &Options) -> usize {
    translated(body, Format::Responses, Format::OpenAi, opts)
}

fn responses_to_messages(body: &Bytes, opts: &Options) -> usize {
    translated(body, Format::Responses, Format::Anthropic, opts)
}

/// Every path measured. Chat and Messages clients never reach a Responses provider (a native
/// Responses provider serves Responses clients only), so those two pairs do not exist.
const PATHS: [Path; 8] = [
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
        name: "responses_same_format",
        client: Shape::Responses,
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
    Path {
        name: "chat_pii",
        client: Shape::Chat,
        run: pii_substitution,
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

/// The body `path` is measured on: an agent body of its client's shape, with entities for
/// the PII path.
fn body_for(path: &Path, size: usize) -> Bytes {
    let body = agent::body(path.client, size, CLIENT_MODEL, false);
    Bytes::from(if path.name == "chat_pii" {
        with_entities(body)
    } else {
        body
    })
}

fn criterion_benches(c: &mut Criterion) {
    let opts = options();
    for path in &PATHS {
        let mut g = c.benchmark_group(format!("agent_request/{}", path.name));
        g.warm_up_time(Duration::from_millis(500));
        g.measurement_time(Duration::from_secs(2));
        for &size in &agent::SIZES {
            let body = body_for(path, size);
            // Measure the path, not an early refusal.
            assert!((path.run)(&body, &opts) > 0, "{} {size}", path.name);
            g.throughput(Throughput::Bytes(body.len() as u64));
            g.bench_function(size_name(size), |b| {
                b.iter(|| (path.run)(black_box(&body), &opts))
            });
        }
        g.finish();
    }
}

/// Size of the sessions measured: the turns that end in a 300 KB body.
const SESSION_SIZE: usize = 300 * 1024;

/// A session's turns (see [`agent::session`]) of `path`'s client.
fn session_for(path: &Path, size: usize) -> Vec<Bytes> {
    agent::session(path.client, size, CLIENT_MODEL, false)
        .into_iter()
        .map(Bytes::from)
        .collect()
}

/// Each turn of `session` in order through `path` (kept conversations used unless `afresh`),
/// under a key of its own: each run is a new agent's session, which finds nothing an earlier
/// run kept (a worker keeps only a few conversations per key; a session begun again under
/// the same key would have each turn compared with every stage of the last).
fn run_session(path: &Path, session: &[Bytes], opts: &Options, afresh: bool) -> usize {
    KEY.set(KEY.get() + 1);
    let turns = || session.iter().map(|b| (path.run)(b, opts)).sum();
    if afresh {
        without_kept(turns)
    } else {
        turns()
    }
}

fn session_benches(c: &mut Criterion) {
    let opts = options();
    for path in PATHS.iter().filter(|p| p.name != "chat_pii") {
        let mut g = c.benchmark_group(format!("agent_session/{}", path.name));
        g.warm_up_time(Duration::from_millis(500));
        g.measurement_time(Duration::from_secs(3));
        let session = session_for(path, SESSION_SIZE);
        let bytes: usize = session.iter().map(Bytes::len).sum();
        g.throughput(Throughput::Bytes(bytes as u64));
        let translates = path.name.contains("_to_");
        for afresh in [false, true].into_iter().filter(|&a| !a || translates) {
            // Measure the path, not an early refusal.
            let out = run_session(path, &session, &opts, afresh);
            assert!(out > bytes / 2, "{} session", path.name);
            let id = size_name(SESSION_SIZE) + if afresh { "-afresh" } else { "" };
            g.bench_function(id, |b| {
                b.iter(|| run_session(path, black_box(&session), &opts, afresh))
            });
        }
        g.finish();
    }
}

/// `AGENT_BENCH_ONCE=path/size`: run that path `AGENT_BENCH_RUNS` times (default 20), for
/// callgrind; with `AGENT_BENCH_SESSION=1`, that path's session of that size.
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
    if std::env::var_os("AGENT_BENCH_SESSION").is_some() {
        let afresh = std::env::var_os("AGENT_BENCH_AFRESH").is_some();
        let session = session_for(path, size);
        let bytes: usize = session.iter().map(Bytes::len).sum();
        let mut out = 0;
        for _ in 0..runs {
            out += run_session(path, black_box(&session), &opts, afresh);
        }
        eprintln!(
            "{name} session: {} turns, {bytes} B, {runs} runs, {out} bytes out",
            session.len()
        );
        return;
    }
    let body = body_for(path, size);
    let mut out = 0;
    for _ in 0..runs {
        out += (path.run)(black_box(&body), &opts);
    }
    let notes = inspect_request(&body).map_or(0, |info| info.strings.len());
    eprintln!(
        "{name}/{} B: {runs} runs, {out} bytes out, {notes} notes",
        body.len()
    );
}

fn main() {
    if let Ok(which) = std::env::var("AGENT_BENCH_ONCE") {
        once(&which);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c);
    session_benches(&mut c);
    c.final_summary();
}
