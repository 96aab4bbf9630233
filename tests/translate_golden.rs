//! Golden fixtures for `ringway::translate`, one folder per case under `tests/golden/`, plus
//! stream properties over the same fixtures: output identical however the upstream bytes
//! are split, and SDK invariants held even when events are dropped, repeated or cut.
//!
//! A case folder holds `case.json` (`kind`: request|response|stream|error, `direction`:
//! o2a|a2o = from which format to which; Responses: r2o|r2a requests (`compact`: the compact
//! endpoint's), o2r|a2r answers, c2r|a2r streams; and per kind: `upstream_model`, `options`,
//! `meta` (`responses`: the Responses side's meta), `status`, `fail_after_events`,
//! `held_tool_limit`), an input (`input.json`, `input.sse` or `input.txt`) and the
//! expected output (`expected.json`, `expected_meta.json`, `expected_error.json`,
//! `expected.sse`). JSON is compared semantically; SSE frame by frame (names and order
//! exactly, each data payload as JSON). `RINGWAY_BLESS=1` rewrites the expected files.
//!
//! Gemini pairs run through `translate::Pair`, as the proxy runs them. Their directions name
//! the data's way with `c` (Chat Completions), `a` (Messages), `r` (Responses) and `g`
//! (Gemini): requests c2g, a2g, r2g (client → Gemini provider) and g2c, g2a (Gemini client →
//! OpenAI / Anthropic provider); answers, streams and errors g2c, g2a, g2r (a Gemini
//! provider's → that client) and c2g, a2g (an OpenAI / Anthropic provider's → a Gemini
//! client); errors also g2g (Gemini both sides). Every such case runs with the seal key
//! `[7; 32]` (open holder) for provider `golden-provider` (`options.seal: false`: none),
//! `path_stream` set for Gemini clients' streams, and the case's `options`
//! (`gemini_call_ids`, `openai_max_tokens_field`, …). An answer, stream or error case is
//! translated against the meta its client request gives through the same pair:
//! `request.json`, else a one-line question in the client's dialect (streaming, with usage,
//! in a stream case); `json_array: true` is a Gemini client streaming without `alt=sse`
//! (compared as `expected.json`).
//!
//! Seals use random nonces, so sealed values are made and compared by what they open to:
//! - In an input (or `request.json`), `{{NAME}}` is replaced by a token sealed when the case
//!   runs, from `seals.json`: `{"NAME": {"kind": "signature"|"thinking", "plain": …,
//!   "provider"?: …, "tamper"?: true}}` (a thought signature's text, or thinking blocks as a
//!   JSON array; sealed for `golden-provider` unless named; `tamper` alters one character).
//!   The same name is the same token throughout the case.
//! - In every output (body, error message, stream), the token after `__rwts__` (a thought
//!   signature in a tool call id) or `rwtc_` (thinking carried in a `thoughtSignature`) is
//!   opened with the case's key for each provider the case knows and replaced by
//!   `<provider:plain>`, or `<does not open>`: so a golden file states what each sealed value
//!   carries and for whom, and an output that seals the wrong thing, for the wrong provider or
//!   not at all differs from it. Only runs of 16+ token characters are taken (a seal is far
//!   longer), and a description holds no token characters run after a mark, so the
//!   replacement is idempotent.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use ringway::format::Format;
use ringway::sse::{Decoder, MAX_EVENT_BYTES};
use ringway::translate::responses::{
    self, AnthropicToResponsesStream, ChatToResponsesStream, Compaction, ResponsesMeta, ToolName,
};
use ringway::translate::{
    self, check, AnthropicToOpenAiStream, MaxTokensField, OpenAiToAnthropicStream, Options, Pair,
    RequestMeta, StreamTranslator, ThinkingStyle, TranslateError,
};
use serde_json::{json, Value};

#[allow(
    dead_code,
    reason = "shared with loadtest, which uses other parts of it"
)]
#[path = "../loadtest/src/agent.rs"]
mod agent;
#[path = "translate_golden/gemini.rs"]
mod gemini;
use gemini::Sealing;

/// Cases below this many input bytes are also split at every byte boundary.
const EXHAUSTIVE_SPLIT_MAX: usize = 6_000;
/// Random chunkings tried per stream case.
const RANDOM_SPLITS: usize = 24;
/// Random event-sequence mutations tried per stream case.
const MUTATIONS: usize = 48;
/// What a case folder may expect (written afresh when blessing).
const EXPECTED_FILES: [&str; 4] = [
    "expected.json",
    "expected_meta.json",
    "expected_error.json",
    "expected.sse",
];
/// `created` used for OpenAI output unless a case sets one.
const CREATED: u64 = 1_700_000_000;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn bless() -> bool {
    std::env::var_os("RINGWAY_BLESS").is_some()
}

struct Case {
    name: String,
    dir: PathBuf,
    spec: Value,
}

impl Case {
    fn str(&self, key: &str) -> &str {
        self.spec.get(key).and_then(Value::as_str).unwrap_or("")
    }
    fn read(&self, file: &str) -> Option<Vec<u8>> {
        fs::read(self.dir.join(file)).ok()
    }
    fn input(&self) -> Vec<u8> {
        ["input.json", "input.sse", "input.txt"]
            .iter()
            .find_map(|f| self.read(f))
            .unwrap_or_else(|| panic!("{}: no input file", self.name))
    }
}

fn cases() -> Vec<Case> {
    let mut out: Vec<Case> = fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("case.json").exists())
        .map(|dir| {
            let spec = serde_json::from_slice(&fs::read(dir.join("case.json")).unwrap())
                .unwrap_or_else(|e| panic!("{}: bad case.json: {e}", dir.display()));
            Case {
                name: dir.file_name().unwrap().to_string_lossy().into_owned(),
                dir,
                spec,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn options(spec: &Value) -> Options {
    let mut o = Options::default();
    let Some(s) = spec.get("options") else {
        return o;
    };
    if let Some(n) = s.get("default_max_tokens").and_then(Value::as_u64) {
        o.default_max_tokens = u32::try_from(n).unwrap();
    }
    if s.get("openai_max_tokens_field").and_then(Value::as_str) == Some("max_tokens") {
        o.openai_max_tokens_field = MaxTokensField::MaxTokens;
    }
    if let Some(style) = s.get("thinking_style").and_then(Value::as_str) {
        o.thinking_style = ThinkingStyle::parse(style).unwrap();
    }
    if let Some(t) = s.get("effort_budgets") {
        let get = |k: &str, d: u32| {
            t.get(k)
                .and_then(Value::as_u64)
                .map_or(d, |v| u32::try_from(v).unwrap())
        };
        let e = &mut o.effort_budgets;
        e.minimal = get("minimal", e.minimal);
        e.low = get("low", e.low);
        e.medium = get("medium", e.medium);
        e.high = get("high", e.high);
        e.xhigh = get("xhigh", e.xhigh);
        e.max = get("max", e.max);
        e.low_up_to = get("low_up_to", e.low_up_to);
        e.medium_up_to = get("medium_up_to", e.medium_up_to);
    }
    o
}

fn meta(spec: &Value) -> RequestMeta {
    let m = spec.get("meta").cloned().unwrap_or(json!({}));
    let flag = |k: &str| m.get(k).and_then(Value::as_bool).unwrap_or(false);
    RequestMeta {
        stream: flag("stream"),
        include_usage: flag("include_usage"),
        client_model: m
            .get("client_model")
            .and_then(Value::as_str)
            .unwrap_or("client-model")
            .to_owned(),
        upstream_model: m
            .get("upstream_model")
            .and_then(Value::as_str)
            .unwrap_or("upstream-model")
            .to_owned(),
        created: m.get("created").and_then(Value::as_u64).unwrap_or(CREATED),
        finished: Default::default(),
        json_tool: flag("json_tool"),
        client_thinking: flag("client_thinking"),
        tool_names: m
            .get("tool_names")
            .and_then(Value::as_array)
            .map(|v| {
                v.iter()
                    .map(|p| {
                        (
                            p[0].as_str().unwrap().to_owned(),
                            p[1].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        responses: m.get("responses").map(|r| Box::new(responses_meta(r))),
        ..RequestMeta::default()
    }
}

/// A Responses client's meta from a case: `summary`, `encrypted`, `compaction`
/// (`trigger`|`endpoint`), `tools` as `[upstream, namespace|null, name, custom]`.
fn responses_meta(r: &Value) -> ResponsesMeta {
    let flag = |k: &str| r.get(k).and_then(Value::as_bool).unwrap_or(false);
    ResponsesMeta {
        id: "resp_golden".into(),
        summary: flag("summary"),
        encrypted: flag("encrypted"),
        compaction: match r.get("compaction").and_then(Value::as_str) {
            Some("trigger") => Compaction::Trigger,
            Some("endpoint") => Compaction::Endpoint,
            _ => Compaction::No,
        },
        tools: r
            .get("tools")
            .and_then(Value::as_array)
            .map(|v| {
                v.iter()
                    .map(|t| ToolName {
                        upstream: t[0].as_str().unwrap().to_owned(),
                        namespace: t[1].as_str().map(str::to_owned),
                        name: t[2].as_str().unwrap().to_owned(),
                        custom: t[3].as_bool().unwrap(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        ..ResponsesMeta::default()
    }
}

/// The fields of a ledger's lossy entries, in order.
pub fn lossy(l: &ringway::translate::Ledger) -> Vec<&str> {
    l.iter()
        .filter(|e| e.code.lossy())
        .map(|e| e.field.as_ref())
        .collect()
}

fn meta_json(m: &RequestMeta) -> Value {
    let mut v = json!({
        "stream": m.stream,
        "include_usage": m.include_usage,
        "client_model": m.client_model,
        "upstream_model": m.upstream_model,
        "json_tool": m.json_tool,
        "client_thinking": m.client_thinking,
        "tool_names": m.tool_names,
        // The lossy entries: what the client's dropped-params header lists.
        "dropped": lossy(&m.ledger),
    });
    if let Some(r) = &m.responses {
        let compaction = match r.compaction {
            Compaction::No => Value::Null,
            Compaction::Trigger => json!("trigger"),
            Compaction::Endpoint => json!("endpoint"),
        };
        let tools: Vec<Value> = r
            .tools
            .iter()
            .map(|t| json!([t.upstream, t.namespace, t.name, t.custom]))
            .collect();
        let e = &r.echo;
        let mut echo: serde_json::Map<String, Value> = e
            .fields()
            .iter()
            .map(|(k, text)| ((*k).to_owned(), serde_json::from_str(text).unwrap()))
            .collect();
        let tier = e
            .service_tier
            .as_deref()
            .map_or(Value::Null, |t| serde_json::from_str(t).unwrap());
        echo.insert("service_tier".into(), tier);
        v["responses"] = json!({"summary": r.summary, "encrypted": r.encrypted,
            "compaction": compaction, "tools": tools, "echo": echo});
    }
    gemini::meta_json(m, &mut v);
    v
}

fn error_json(e: &TranslateError) -> Value {
    json!({"status": e.status, "param": e.param, "code": e.code, "message": e.message})
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap() + "\n"
}

fn parse_json(case: &str, what: &str, bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{case}: {what} is not JSON: {e}"))
}

/// Compares or (when blessing) writes one expected JSON file.
fn expect_json(case: &Case, file: &str, actual: &Value, failures: &mut Vec<String>) {
    if bless() {
        fs::write(case.dir.join(file), pretty(actual)).unwrap();
        return;
    }
    match case.read(file) {
        None => failures.push(format!("{}: missing {file}", case.name)),
        Some(bytes) => {
            let expected = parse_json(&case.name, file, &bytes);
            if &expected != actual {
                failures.push(format!(
                    "{}: {file} differs\n--- expected\n{}--- actual\n{}",
                    case.name,
                    pretty(&expected),
                    pretty(actual)
                ));
            }
        }
    }
}

fn run_request(case: &Case, failures: &mut Vec<String>) {
    if let Some(pair) = gemini::pair("request", case.str("direction")) {
        return run_pair_request(case, pair, failures);
    }
    let input = case.input();
    let model = case.str("upstream_model");
    let opts = options(&case.spec);
    let compact = case.spec.get("compact").and_then(Value::as_bool) == Some(true);
    let responses = if compact {
        responses::compact_request
    } else {
        responses::responses_request
    };
    let res = match case.str("direction") {
        "o2a" => translate::openai_to_anthropic_request(&input, model, &opts),
        "a2o" => translate::anthropic_to_openai_request(&input, model, &opts),
        "r2o" => responses(&input, model, Format::OpenAi, &opts),
        "r2a" => responses(&input, model, Format::Anthropic, &opts),
        d => panic!("{}: bad direction {d}", case.name),
    };
    match res {
        Ok((body, meta)) => {
            let body = parse_json(&case.name, "output", &body);
            expect_json(case, "expected.json", &body, failures);
            expect_json(case, "expected_meta.json", &meta_json(&meta), failures);
        }
        Err(e) => expect_json(case, "expected_error.json", &error_json(&e), failures),
    }
}

/// A Gemini pair's request: the body through [`Pair::request`], sealed values in the output
/// described (see the module doc).
fn run_pair_request(case: &Case, pair: Pair, failures: &mut Vec<String>) {
    let sealing = Sealing::of(case);
    let input = pair_input(case, sealing.as_ref());
    let opts = gemini::pair_options(case, sealing.as_ref());
    match pair.request(&input, &gemini::model(case, pair), &opts) {
        Ok((body, meta)) => {
            let body = normalised(sealing.as_ref(), &body);
            let body = parse_json(&case.name, "output", &body);
            expect_json(case, "expected.json", &body, failures);
            expect_json(case, "expected_meta.json", &meta_json(&meta), failures);
        }
        Err(e) => {
            let e = normalised(
                sealing.as_ref(),
                &serde_json::to_vec(&error_json(&e)).unwrap(),
            );
            let e = parse_json(&case.name, "error", &e);
            expect_json(case, "expected_error.json", &e, failures);
        }
    }
}

/// A Gemini pair case's input with its `{{NAME}}` seals made (see `seals.json`).
fn pair_input(case: &Case, sealing: Option<&Sealing>) -> Vec<u8> {
    let input = case.input();
    sealing.map_or(input.clone(), |s| s.fill(input))
}

/// `out` with its sealed values described (unchanged without a seal).
fn normalised(sealing: Option<&Sealing>, out: &[u8]) -> Vec<u8> {
    sealing.map_or_else(|| out.to_vec(), |s| s.normalise(out))
}

/// A whole-answer translator that appends to a buffer.
type IntoTranslator = fn(&[u8], &RequestMeta, &mut Vec<u8>) -> Result<(), TranslateError>;

fn run_response(case: &Case, failures: &mut Vec<String>) {
    if let Some(pair) = gemini::pair("response", case.str("direction")) {
        let sealing = Sealing::of(case);
        let meta = gemini::answer_meta(case, pair, sealing.as_ref());
        let mut out = Vec::new();
        return match pair.response_into(&pair_input(case, sealing.as_ref()), &meta, &mut out) {
            Ok(()) => {
                let out = normalised(sealing.as_ref(), &out);
                let body = parse_json(&case.name, "output", &out);
                expect_json(case, "expected.json", &body, failures);
            }
            Err(e) => expect_json(case, "expected_error.json", &error_json(&e), failures),
        };
    }
    let input = case.input();
    let meta = meta(&case.spec);
    let into = |f: IntoTranslator| {
        let mut out = Vec::new();
        f(&input, &meta, &mut out).map(|()| out)
    };
    let res = match case.str("direction") {
        "a2o" => translate::anthropic_to_openai_response(&input, &meta),
        "o2a" => translate::openai_to_anthropic_response(&input, &meta),
        "o2r" => into(responses::chat_to_responses_response_into),
        "a2r" => into(responses::anthropic_to_responses_response_into),
        d => panic!("{}: bad direction {d}", case.name),
    };
    match res {
        Ok(body) => expect_json(
            case,
            "expected.json",
            &parse_json(&case.name, "output", &body),
            failures,
        ),
        Err(e) => expect_json(case, "expected_error.json", &error_json(&e), failures),
    }
}

fn run_error(case: &Case, failures: &mut Vec<String>) {
    let input = case.input();
    let status = u16::try_from(case.spec["status"].as_u64().unwrap()).unwrap();
    if let Some(pair) = gemini::pair("error", case.str("direction")) {
        let (out_status, body) = pair.error(status, &input);
        let body = body.map_or(Value::Null, |b| parse_json(&case.name, "output", &b));
        let actual = json!({"status": out_status, "body": body});
        return expect_json(case, "expected.json", &actual, failures);
    }
    let (out_status, body) = match case.str("direction") {
        "a2o" => translate::anthropic_to_openai_error(status, &input),
        "o2a" => translate::openai_to_anthropic_error(status, &input),
        d => panic!("{}: bad direction {d}", case.name),
    };
    let actual = json!({"status": out_status, "body": parse_json(&case.name, "output", &body)});
    expect_json(case, "expected.json", &actual, failures);
}

enum Machine {
    A2o(AnthropicToOpenAiStream),
    O2a(OpenAiToAnthropicStream),
    A2r(AnthropicToResponsesStream),
    C2r(ChatToResponsesStream),
    /// A Gemini pair's translator, as [`Pair::stream`] gives it to the proxy.
    Pair(Box<StreamTranslator>),
}

impl Machine {
    fn new(drive: &Drive) -> Machine {
        let (direction, meta, held_tool_limit) =
            (drive.direction.as_str(), &drive.meta, drive.held_tool_limit);
        if let Some(pair) = drive.pair {
            let t = pair
                .stream(meta)
                .unwrap_or_else(|| panic!("{direction}: {pair:?} has no stream translator"));
            return Machine::Pair(Box::new(t));
        }
        match direction {
            "a2o" => Machine::A2o(AnthropicToOpenAiStream::new(meta)),
            "a2r" => Machine::A2r(AnthropicToResponsesStream::new(meta)),
            "c2r" => Machine::C2r(ChatToResponsesStream::new(meta)),
            "o2a" => {
                let m = OpenAiToAnthropicStream::new(meta);
                Machine::O2a(match held_tool_limit {
                    Some(n) => m.with_held_tool_limit(n),
                    None => m,
                })
            }
            d => panic!("bad direction {d}"),
        }
    }
    fn on_event(&mut self, event: Option<&[u8]>, data: &[u8], out: &mut Vec<u8>) {
        match self {
            Machine::A2o(m) => m.on_event(event, data, out),
            Machine::O2a(m) => m.on_event(event, data, out),
            Machine::A2r(m) => m.on_event(event, data, out),
            Machine::C2r(m) => m.on_event(event, data, out),
            Machine::Pair(m) => m.on_event(event, data, out),
        }
    }
    fn finish(&mut self, out: &mut Vec<u8>) {
        match self {
            Machine::A2o(m) => m.finish(out),
            Machine::O2a(m) => m.finish(out),
            Machine::A2r(m) => m.finish(out),
            Machine::C2r(m) => m.finish(out),
            Machine::Pair(m) => m.finish(out),
        }
    }
    fn fail(&mut self, message: &str, out: &mut Vec<u8>) {
        match self {
            Machine::A2o(m) => m.fail(message, out),
            Machine::O2a(m) => m.fail(message, out),
            Machine::A2r(m) => m.fail(message, out),
            Machine::C2r(m) => m.fail(message, out),
            Machine::Pair(m) => m.fail(message, out),
        }
    }
    fn is_done(&self) -> bool {
        match self {
            Machine::A2o(m) => m.is_done(),
            Machine::O2a(m) => m.is_done(),
            Machine::A2r(m) => m.is_done(),
            Machine::C2r(m) => m.is_done(),
            Machine::Pair(m) => m.is_done(),
        }
    }
}

/// A decoded upstream event: (`event:` name, `data:` payload).
type Ev = (Option<Vec<u8>>, Vec<u8>);

/// How a stream case is driven: direction, request meta, an optional gateway failure after
/// N events, and an optional lower limit on tool-call bytes held back (o2a).
struct Drive {
    direction: String,
    meta: RequestMeta,
    fail_after: Option<usize>,
    held_tool_limit: Option<usize>,
    /// A Gemini pair: its stream translator runs (with `meta` from the case's client
    /// request), and its output is compared with sealed values described.
    pair: Option<Pair>,
    sealing: Option<Sealing>,
}

impl Drive {
    fn of(case: &Case) -> Drive {
        let pair = gemini::pair("stream", case.str("direction"));
        let sealing = pair.and_then(|_| Sealing::of(case));
        Drive {
            direction: case.str("direction").to_owned(),
            meta: match pair {
                Some(p) => gemini::answer_meta(case, p, sealing.as_ref()),
                None => meta(&case.spec),
            },
            pair,
            sealing,
            fail_after: case
                .spec
                .get("fail_after_events")
                .and_then(Value::as_u64)
                .map(|n| n as usize),
            held_tool_limit: case
                .spec
                .get("held_tool_limit")
                .and_then(Value::as_u64)
                .map(|n| n as usize),
        }
    }

    /// Decodes `pieces` with the SSE decoder and translates each event as it completes,
    /// the way the gateway's pump does; then ends the stream.
    /// The case's input (with its seals made, for a Gemini pair).
    fn input(&self, case: &Case) -> Vec<u8> {
        pair_input(case, self.sealing.as_ref())
    }

    fn run<'p>(&self, pieces: impl IntoIterator<Item = &'p [u8]>) -> Vec<u8> {
        let out = self.run_raw(pieces);
        normalised(self.sealing.as_ref(), &out)
    }

    fn run_raw<'p>(&self, pieces: impl IntoIterator<Item = &'p [u8]>) -> Vec<u8> {
        let mut dec = Decoder::new(MAX_EVENT_BYTES);
        let mut m = Machine::new(self);
        let mut out = Vec::new();
        let mut seen = 0usize;
        for piece in pieces {
            dec.push(Bytes::copy_from_slice(piece));
            loop {
                match dec.next_event() {
                    Ok(Some(ev)) if ev.is_comment_only() => {}
                    Ok(Some(ev)) => {
                        if self.fail_after == Some(seen) {
                            m.fail("upstream connection reset", &mut out);
                            return out;
                        }
                        seen += 1;
                        m.on_event(
                            ev.event.as_deref(),
                            ev.data.as_deref().unwrap_or(b""),
                            &mut out,
                        );
                    }
                    Ok(None) => break,
                    Err(e) => {
                        m.fail(&e.to_string(), &mut out);
                        return out;
                    }
                }
            }
        }
        if self.fail_after == Some(seen) {
            m.fail("upstream connection reset", &mut out);
        }
        m.finish(&mut out);
        out
    }

    /// Feeds already-decoded events (for mutation tests).
    fn run_events(&self, events: &[Ev]) -> (Vec<u8>, bool) {
        let mut m = Machine::new(self);
        let mut out = Vec::new();
        for (e, d) in events {
            m.on_event(e.as_deref(), d, &mut out);
        }
        let done_before_finish = m.is_done();
        m.finish(&mut out);
        (normalised(self.sealing.as_ref(), &out), done_before_finish)
    }

    /// The client's dialect: a pair's client, else the legacy direction's target.
    fn client(&self) -> Format {
        match (self.pair, self.direction.as_str()) {
            (Some(p), _) => p.client,
            (None, "a2o") => Format::OpenAi,
            (None, "a2r" | "c2r") => Format::Responses,
            _ => Format::Anthropic,
        }
    }

    fn check(&self, out: &[u8]) -> Result<(), String> {
        let r = match self.client() {
            Format::OpenAi => check::check_openai_stream(out, true),
            Format::Responses => check::check_responses_stream(out, true).map(|_| ()),
            Format::Anthropic => check::check_anthropic_stream(out, true),
            Format::Gemini => return gemini::check_stream(out, self.meta.gemini_json_array),
        };
        r.map_err(|e| e.to_string())
    }

    /// Does `out` end the client's stream with an error?
    fn ends_in_error(&self, out: &[u8]) -> bool {
        if self.client() == Format::Gemini {
            return gemini::ends_in_error(out, self.meta.gemini_json_array);
        }
        let frames = check::frames(out).unwrap();
        let Some(last) = frames.last() else {
            return false;
        };
        match self.client() {
            Format::OpenAi => last.data.starts_with("{\"error\""),
            Format::Responses => matches!(last.event, Some("response.failed" | "error")),
            _ => last.event == Some("error"),
        }
    }

    /// Has a cut provider stream already said how the answer finished (so that its end
    /// completes the answer)? A Chat stream by a `finish_reason`, a Gemini one by a
    /// `finishReason`; an Anthropic one never (its `message_stop` is what ends it).
    fn finished(&self, prefix: &[Ev]) -> bool {
        let provider = match self.pair {
            Some(p) => p.provider,
            None if matches!(self.direction.as_str(), "o2a" | "c2r") => Format::OpenAi,
            None => Format::Anthropic,
        };
        let pointer = match provider {
            Format::OpenAi => "/choices/0/finish_reason",
            Format::Gemini => "/candidates/0/finishReason",
            _ => return false,
        };
        prefix.iter().any(|(_, d)| {
            serde_json::from_slice::<Value>(d)
                .ok()
                .and_then(|v| v.pointer(pointer).cloned())
                .is_some_and(|f| f.is_string())
        })
    }
}

fn decode_all(input: &[u8]) -> Vec<Ev> {
    let mut dec = Decoder::new(MAX_EVENT_BYTES);
    dec.push(Bytes::copy_from_slice(input));
    let mut out = Vec::new();
    while let Ok(Some(ev)) = dec.next_event() {
        if !ev.is_comment_only() {
            out.push((
                ev.event.map(|b| b.to_vec()),
                ev.data.map(|b| b.to_vec()).unwrap_or_default(),
            ));
        }
    }
    out
}

/// Frames of an SSE text for comparison (LF or CRLF, as the SSE decoder reads them; comments
/// skipped), data as JSON when it parses.
fn sse_frames(out: &[u8]) -> Vec<(Option<String>, Value)> {
    decode_all(out)
        .into_iter()
        .map(|(event, data)| {
            let text = String::from_utf8_lossy(&data);
            let data = serde_json::from_str(&text).unwrap_or(Value::String(text.into_owned()));
            (
                event.map(|e| String::from_utf8_lossy(&e).into_owned()),
                data,
            )
        })
        .collect()
}

fn run_stream(case: &Case, failures: &mut Vec<String>) {
    let drive = Drive::of(case);
    let input = pair_input(case, drive.sealing.as_ref());
    let out = drive.run([input.as_slice()]);
    if let Err(e) = drive.check(&out) {
        failures.push(format!(
            "{}: invariant violated: {e}\n{}",
            case.name,
            String::from_utf8_lossy(&out)
        ));
    }
    if drive.meta.gemini_json_array {
        let out = parse_json(&case.name, "output", &out);
        return expect_json(case, "expected.json", &out, failures);
    }
    if bless() {
        fs::write(case.dir.join("expected.sse"), &out).unwrap();
        return;
    }
    let Some(expected) = case.read("expected.sse") else {
        return failures.push(format!("{}: missing expected.sse", case.name));
    };
    let (e, a) = (sse_frames(&expected), sse_frames(&out));
    if e != a {
        let first = e
            .iter()
            .zip(&a)
            .position(|(x, y)| x != y)
            .unwrap_or(e.len().min(a.len()));
        failures.push(format!(
            "{}: expected.sse differs at frame {first} ({} expected, {} actual frames)\n--- actual\n{}",
            case.name,
            e.len(),
            a.len(),
            String::from_utf8_lossy(&out)
        ));
    }
}

#[test]
fn golden_cases() {
    let cases = cases();
    assert!(
        cases.len() >= 100,
        "only {} golden cases found",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        if bless() {
            // A case whose outcome changed (an answer instead of an error) keeps no stale file.
            for f in EXPECTED_FILES {
                let _ = fs::remove_file(case.dir.join(f));
            }
        }
        match case.str("kind") {
            "request" => run_request(case, &mut failures),
            "response" => run_response(case, &mut failures),
            "stream" => run_stream(case, &mut failures),
            "error" => run_error(case, &mut failures),
            k => failures.push(format!("{}: unknown kind {k:?}", case.name)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// Tiny deterministic PRNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn stream_cases() -> Vec<Case> {
    cases()
        .into_iter()
        .filter(|c| c.str("kind") == "stream")
        .collect()
}

/// `input` cut into random pieces: small ones on even rounds, up to 200 bytes on odd ones.
fn random_pieces<'i>(rng: &mut Rng, input: &'i [u8], round: usize) -> Vec<&'i [u8]> {
    let max_piece = 1 + rng.below(if round.is_multiple_of(2) { 8 } else { 200 });
    let mut pieces = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let (a, b) = rest.split_at((1 + rng.below(max_piece)).min(rest.len()));
        pieces.push(a);
        rest = b;
    }
    pieces
}

/// `events` with one mutation, by round: one dropped (a lost frame, stop or terminator), one
/// repeated (proxy duplicates), the list cut, or two neighbours swapped (reordering).
fn mutate(rng: &mut Rng, events: &[Ev], round: usize) -> Vec<Ev> {
    let mut evs = events.to_vec();
    match round % 4 {
        0 if !evs.is_empty() => {
            evs.remove(rng.below(evs.len()));
        }
        1 if !evs.is_empty() => {
            let i = rng.below(evs.len());
            let e = evs[i].clone();
            evs.insert(i, e);
        }
        2 => evs.truncate(rng.below(evs.len() + 1)),
        3 if evs.len() > 1 => {
            let i = rng.below(evs.len() - 1);
            evs.swap(i, i + 1);
        }
        _ => {}
    }
    evs
}

#[test]
fn split_anywhere_gives_identical_output() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let cases = stream_cases();
    assert!(cases.len() >= 20);
    for case in &cases {
        let drive = Drive::of(case);
        let input = drive.input(case);
        let whole = drive.run([input.as_slice()]);
        if input.len() <= EXHAUSTIVE_SPLIT_MAX {
            for cut in 0..=input.len() {
                let (a, b) = input.split_at(cut);
                assert_eq!(
                    drive.run([a, b]),
                    whole,
                    "{}: split at byte {cut}",
                    case.name
                );
            }
        }
        for round in 0..RANDOM_SPLITS {
            let pieces = random_pieces(&mut rng, &input, round);
            assert_eq!(
                drive.run(pieces),
                whole,
                "{}: random chunking round {round}",
                case.name
            );
        }
    }
}

#[test]
fn invariants_hold_under_event_mutations() {
    let mut rng = Rng(0x0dd_ba11_cafe_f00d);
    for case in &stream_cases() {
        let drive = Drive::of(case);
        let events = decode_all(&drive.input(case));
        for round in 0..MUTATIONS {
            let evs = mutate(&mut rng, &events, round);
            let (out, _) = drive.run_events(&evs);
            if let Err(e) = drive.check(&out) {
                panic!(
                    "{} mutation round {round}: {e}\n{}",
                    case.name,
                    String::from_utf8_lossy(&out)
                );
            }
        }
    }
}

#[test]
fn truncated_streams_end_in_an_error_not_a_clean_finish() {
    for case in &stream_cases() {
        let drive = Drive::of(case);
        check_cuts(&drive, &decode_all(&drive.input(case)), &case.name);
    }
}

/// Every prefix of `events`, then the end of the provider's stream: the client's stream ends in
/// its error (a Chat or Gemini provider: unless the prefix already said its finish reason,
/// which completes the answer; usage may be lost, spec 14.2).
fn check_cuts(drive: &Drive, events: &[Ev], name: &str) {
    for cut in 0..events.len() {
        let prefix = &events[..cut];
        let (out, done_before_eof) = drive.run_events(prefix);
        if done_before_eof {
            continue; // the prefix already held a terminator or an upstream error
        }
        assert!(!out.is_empty(), "{name}: cut {cut}: no output");
        assert_eq!(
            drive.ends_in_error(&out),
            !drive.finished(prefix),
            "{name}: cut after {cut} events ends with {}",
            String::from_utf8_lossy(&out)
        );
    }
}

/// The Responses stream translators over every stream case's provider input (Anthropic events
/// for a2o cases, Chat chunks for o2a ones): SDK invariants hold, the output is the same
/// however the bytes are split, events dropped, repeated, reordered or cut still give a
/// well-formed stream, and a cut stream ends in `response.failed` (or `error`), never a
/// clean `response.completed` (a Chat stream that said its finish_reason is finished).
#[test]
fn responses_translators_over_every_stream_case() {
    let mut rng = Rng(0x7e57_0f7e_5000_0001);
    let cases = stream_cases();
    assert!(cases.len() >= 20);
    for case in &cases {
        let mut drive = Drive::of(case);
        let input = drive.input(case);
        match drive.pair.map(|p| p.provider) {
            // A Gemini provider's stream to a Responses client asking for summaries.
            Some(Format::Gemini) => {
                let pair = Pair::new(Format::Responses, Format::Gemini);
                drive.pair = Some(pair);
                drive.meta = gemini::responses_meta(case, pair, drive.sealing.as_ref());
            }
            provider => {
                drive.pair = None;
                drive.direction = match (provider, drive.direction.as_str()) {
                    (Some(Format::Anthropic), _) | (None, "a2o") => "a2r".into(),
                    _ => "c2r".into(),
                };
                drive.meta.responses = Some(Box::new(ResponsesMeta {
                    id: "resp_test".into(),
                    summary: true,
                    ..ResponsesMeta::default()
                }));
            }
        }
        let whole = drive.run([input.as_slice()]);
        if let Err(e) = drive.check(&whole) {
            panic!("{}: {e}\n{}", case.name, String::from_utf8_lossy(&whole));
        }
        if input.len() <= EXHAUSTIVE_SPLIT_MAX {
            for cut in 0..=input.len() {
                let (a, b) = input.split_at(cut);
                assert_eq!(drive.run([a, b]), whole, "{}: split at {cut}", case.name);
            }
        }
        for round in 0..RANDOM_SPLITS {
            let pieces = random_pieces(&mut rng, &input, round);
            assert_eq!(drive.run(pieces), whole, "{}: chunking {round}", case.name);
        }
        let events = decode_all(&input);
        for round in 0..MUTATIONS {
            let evs = mutate(&mut rng, &events, round);
            let (out, _) = drive.run_events(&evs);
            if let Err(e) = drive.check(&out) {
                panic!(
                    "{} mutation {round}: {e}\n{}",
                    case.name,
                    String::from_utf8_lossy(&out)
                );
            }
        }
        check_cuts(&drive, &events, &case.name);
    }
}

/// Every golden request translated within a memory budget: the budget its body is charged
/// (`request_memory_bound`) always suffices, and a smaller one gives the same answer or the
/// budget's refusal, never another answer.
#[test]
fn requests_translate_alike_within_a_memory_budget() {
    let mut checked = 0;
    let mut shared_checked = 0;
    let mut lent = 0;
    let mut fast_reads = 0;
    for case in cases().iter().filter(|c| c.str("kind") == "request") {
        let pair = gemini::pair("request", case.str("direction"));
        let sealing = pair.and_then(|_| Sealing::of(case));
        let input = pair_input(case, sealing.as_ref());
        let (opts, pair_model) = match pair {
            Some(p) => (
                gemini::pair_options(case, sealing.as_ref()),
                gemini::model(case, p),
            ),
            None => (options(&case.spec), String::new()),
        };
        let model = case.str("upstream_model");
        let compact = case.spec.get("compact").and_then(Value::as_bool) == Some(true);
        let run = |room: &translate::Room| match case.str("direction") {
            _ if pair.is_some() => pair
                .unwrap()
                .request_within(&input, &pair_model, &opts, room),
            "o2a" => translate::openai_to_anthropic_request_within(&input, model, &opts, room),
            "a2o" => translate::anthropic_to_openai_request_within(&input, model, &opts, room),
            d if compact => responses::compact_request_within(
                &input,
                model,
                if d == "r2o" {
                    Format::OpenAi
                } else {
                    Format::Anthropic
                },
                &opts,
                room,
            ),
            d => responses::responses_request_within(
                &input,
                model,
                if d == "r2o" {
                    Format::OpenAi
                } else {
                    Format::Anthropic
                },
                &opts,
                room,
            ),
        };
        let refused = ringway::json::de::refused();
        let free = run(&translate::Room::unlimited());
        if free.is_ok() {
            fast_reads += usize::from(ringway::json::de::refused() == refused);
        }
        // The fast reader against serde_json alone (reading the tools too, none kept): the
        // same body, meta or error.
        assert_eq!(
            translate::without_kept(|| {
                ringway::json::de::reference_only(|| run(&translate::Room::unlimited()))
            }),
            free,
            "{}: fast and reference readers",
            case.name
        );
        // Tools kept from an earlier request with the same tools (the runs above) against
        // tools converted afresh: the same body, meta or error.
        assert_eq!(
            translate::without_kept(|| run(&translate::Room::unlimited())),
            free,
            "{}: tools converted afresh",
            case.name
        );
        let bound = translate::request_memory_bound(input.len());
        assert_eq!(
            run(&translate::Room::new(bound)),
            free,
            "{}: within its charged bound",
            case.name
        );
        // As the gateway takes it: shared bytes read from where they start, not moved.
        let shared_pair = match (pair, case.str("direction")) {
            (Some(p), _) => Some((p, pair_model.as_str())),
            (None, _) if compact => None,
            (None, "o2a") => Some((Pair::new(Format::OpenAi, Format::Anthropic), model)),
            (None, "a2o") => Some((Pair::new(Format::Anthropic, Format::OpenAi), model)),
            (None, "r2o") => Some((Pair::new(Format::Responses, Format::OpenAi), model)),
            (None, "r2a") => Some((Pair::new(Format::Responses, Format::Anthropic), model)),
            (None, _) => None,
        };
        if let Some((p, m)) = shared_pair {
            // Every string of eight bytes or more lent from the body rather than copied: the
            // seams a lent span makes, crossed by every case.
            let source = bytes::Bytes::copy_from_slice(&input);
            let shared = translate::lending_from(8, || {
                p.request_shared(&source, m, &opts, &translate::Room::new(bound))
            });
            let shared = shared.map(|(b, meta)| {
                lent += b.lent_spans();
                (b.parts(&source).unwrap().concat(), meta)
            });
            assert_eq!(shared, free, "{}: shared", case.name);
            shared_checked += 1;
        }
        for room in [0, 64, input.len() / 2, input.len(), 2 * input.len()] {
            match (run(&translate::Room::new(room)), &free) {
                (Err(e), _) if e.is_over_budget() => {}
                (got, free) => assert_eq!(&got, free, "{}: room {room}", case.name),
            }
            checked += 1;
        }
    }
    assert!(checked > 300, "{checked}");
    assert!(
        translate::kept_tools_used() > 20,
        "cases took kept tools: {}",
        translate::kept_tools_used()
    );
    assert!(shared_checked > 100, "{shared_checked}");
    assert!(lent > 100, "strings were lent: {lent}");
    assert!(
        fast_reads >= 150,
        "{fast_reads} cases read by the fast reader alone"
    );
}

/// Agent-size bodies (real agents' captured requests grown with tool turns, streamed and not)
/// through every request translation, read by the fast reader and by serde_json alone.
#[test]
fn agent_bodies_translate_alike_by_both_readers() {
    let opts = Options {
        seal: ringway::seal::SealKey::from_bytes(&[7; 32]),
        provider: "golden-provider".into(),
        ..Options::default()
    };
    let mut checked = 0;
    for shape in agent::Shape::ALL {
        for size in [4 * 1024, 50 * 1024] {
            for stream in [false, true] {
                let body = agent::body(shape, size, "agent", stream);
                let runs: Vec<Box<dyn Fn() -> _>> = match shape {
                    agent::Shape::Chat => vec![Box::new(|| {
                        translate::openai_to_anthropic_request(&body, "m", &opts)
                    })],
                    agent::Shape::Messages => vec![Box::new(|| {
                        translate::anthropic_to_openai_request(&body, "m", &opts)
                    })],
                    agent::Shape::Responses => vec![
                        Box::new(|| {
                            responses::responses_request(&body, "m", Format::OpenAi, &opts)
                        }),
                        Box::new(|| {
                            responses::responses_request(&body, "m", Format::Anthropic, &opts)
                        }),
                    ],
                };
                for run in runs {
                    let refused = ringway::json::de::refused();
                    let fast = run();
                    assert!(fast.is_ok(), "{shape:?} {size}: {fast:?}");
                    assert_eq!(
                        ringway::json::de::refused(),
                        refused,
                        "read by the fast reader"
                    );
                    // The readers compared read the tools too: none kept.
                    let reference =
                        translate::without_kept(|| ringway::json::de::reference_only(&run));
                    assert_eq!(fast, reference, "{shape:?} {size} stream={stream}");
                    let afresh = translate::without_kept(&run);
                    assert_eq!(
                        fast, afresh,
                        "{shape:?} {size} stream={stream}: tools afresh"
                    );
                    // With admission's notes of where long strings end: the same answer,
                    // and the notes crossed strings.
                    let info = ringway::json::inspect_request(&body).unwrap();
                    assert!(
                        info.strings.len() > 5,
                        "{shape:?} {size}: {:?}",
                        info.strings
                    );
                    let used = ringway::json::notes_used();
                    let noted = translate::without_kept(|| {
                        ringway::json::with_notes(&body, &info.strings, &run)
                    });
                    assert_eq!(noted, fast, "{shape:?} {size} stream={stream}: with notes");
                    assert!(ringway::json::notes_used() > used, "{shape:?} {size}");
                    checked += 1;
                }
                // As the gateway takes them: shared bytes, the front placed in the room kept
                // for it (Chat → Messages) or moving the conversation once (a 7 KB system
                // prompt outgrows the room of a body this size), the same bytes.
                let pairs: &[(Format, Format)] = match shape {
                    agent::Shape::Chat => &[(Format::OpenAi, Format::Anthropic)],
                    agent::Shape::Messages => &[(Format::Anthropic, Format::OpenAi)],
                    agent::Shape::Responses => &[
                        (Format::Responses, Format::OpenAi),
                        (Format::Responses, Format::Anthropic),
                    ],
                };
                for &(client, provider) in pairs {
                    let pair = Pair::new(client, provider);
                    let room = translate::Room::unlimited();
                    let source = bytes::Bytes::from(body.clone());
                    let (shared, meta) = pair.request_shared(&source, "m", &opts, &room).unwrap();
                    // Against the body copied whole, nothing lent.
                    let plain =
                        translate::without_lending(|| pair.request(&body, "m", &opts)).unwrap();
                    // A 50 KB turn holds files an agent read: long strings, lent.
                    assert!(
                        shared.lent_spans() > 0 || size < 50 * 1024,
                        "{shape:?} {size} {provider:?}"
                    );
                    let parts = shared.parts(&source).unwrap();
                    assert_eq!(parts.concat(), plain.0, "{shape:?} {size} {provider:?}");
                    assert_eq!(meta, plain.1);
                    assert_eq!(shared.into_vec(&source).unwrap(), plain.0);
                    // With admission's check of the body's UTF-8 known to the reader (it
                    // takes the body as text unchecked): the same bytes.
                    let utf8 = ringway::json::Checked::new(&source);
                    assert!(utf8.is_some());
                    let uses = ringway::json::known_uses();
                    let (known, known_meta) = ringway::json::with_checked(utf8.as_ref(), || {
                        pair.request_shared(&source, "m", &opts, &room)
                    })
                    .unwrap();
                    assert!(
                        ringway::json::known_uses() > uses,
                        "{shape:?} {size}: read as known"
                    );
                    assert_eq!(known.into_vec(&source).unwrap(), plain.0);
                    assert_eq!(known_meta, plain.1);
                }
            }
        }
    }
    assert_eq!(checked, 16);
}

/// Every request case's body mutated at random (bytes changed, dropped or repeated, JSON
/// tokens put in), through the four request translations: the fast reader and serde_json
/// alone give the same body, meta or error (the fuzz target `json_reader` does this without
/// end).
#[test]
fn mutated_requests_translate_alike_by_both_readers() {
    const TOKENS: [&[u8]; 14] = [
        b"\"", b"\\", b"\\u00e9", b"\\ud800", b"[", b"]", b"{", b"}", b",", b":", b"-0", b"1e5",
        b"null", b" ",
    ];
    let opts = options(&json!({}));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut compared = 0;
    for case in cases().iter().filter(|c| c.str("kind") == "request") {
        let input = case.input();
        for _ in 0..8 {
            let mut body = input.clone();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(body.len() + 1);
                match rng.below(4) {
                    0 if at < body.len() => body[at] = rng.next() as u8,
                    1 if at < body.len() => {
                        body.remove(at);
                    }
                    2 => {
                        let end = (at + 1 + rng.below(16)).min(body.len());
                        let piece = body[at..end].to_vec();
                        body.splice(at..at, piece);
                    }
                    _ => {
                        let token = TOKENS[rng.below(TOKENS.len())];
                        body.splice(at..at, token.iter().copied());
                    }
                }
            }
            let runs: [&dyn Fn() -> _; 4] = [
                &|| translate::openai_to_anthropic_request(&body, "m", &opts),
                &|| translate::anthropic_to_openai_request(&body, "m", &opts),
                &|| responses::responses_request(&body, "m", Format::OpenAi, &opts),
                &|| responses::responses_request(&body, "m", Format::Anthropic, &opts),
            ];
            let info = ringway::json::inspect_request(&body);
            // Every reader reads the tools itself: none kept.
            let run = |run: &dyn Fn() -> _| translate::without_kept(run);
            for each in runs {
                let fast = run(each);
                // Tools kept: made by the first run, taken by the second (a list the
                // translation refuses is kept as refused): the same answer as read afresh.
                let _ = each();
                assert_eq!(
                    each(),
                    fast,
                    "{}: kept tools: {:?}",
                    case.name,
                    String::from_utf8_lossy(&body)
                );
                assert_eq!(
                    fast,
                    run(&|| ringway::json::de::reference_only(each)),
                    "{}: {:?}",
                    case.name,
                    String::from_utf8_lossy(&body)
                );
                if let Ok(info) = &info {
                    assert_eq!(
                        run(&|| ringway::json::with_notes(&body, &info.strings, each)),
                        fast,
                        "{}: with notes: {:?}",
                        case.name,
                        String::from_utf8_lossy(&body)
                    );
                }
                compared += 1;
            }
        }
    }
    assert!(compared > 5000, "{compared}");
}

/// A Chat agent's tools are converted to Messages tools once per worker and taken after by
/// their bytes: the same body as converted afresh. A request asking for web search, and a
/// body naming `tools` twice, go the plain way.
/// An agent's turns as the gateway translates them, each starting where a kept conversation
/// ended when its elements open the body (`translate::conversations`): the same bytes, meta or
/// error as the body translated afresh, nothing kept. Every pair that keeps: Chat → Messages,
/// Messages → Chat, Responses → Chat and Responses → Messages.
#[test]
fn kept_conversations_translate_as_afresh() {
    let item_reference = json!({"type": "item_reference", "id": "msg_1"});
    for (shape, pair, refused_turn) in [
        (
            agent::Shape::Chat,
            Pair::new(Format::OpenAi, Format::Anthropic),
            json!({"role": "function", "name": "f", "content": "x"}),
        ),
        (
            agent::Shape::Messages,
            Pair::new(Format::Anthropic, Format::OpenAi),
            json!({"role": "bogus", "content": "x"}),
        ),
        (
            agent::Shape::Responses,
            Pair::new(Format::Responses, Format::OpenAi),
            item_reference.clone(),
        ),
        (
            agent::Shape::Responses,
            Pair::new(Format::Responses, Format::Anthropic),
            item_reference.clone(),
        ),
    ] {
        kept_conversation_turns(shape, pair, refused_turn);
    }
}

fn kept_conversation_turns(shape: agent::Shape, pair: Pair, refused_turn: Value) {
    let opts = options(&json!({}));
    let body: Value =
        serde_json::from_slice(&agent::body(shape, 50 * 1024, "agent", false)).unwrap();
    let key = match shape {
        agent::Shape::Responses => "input",
        _ => "messages",
    };
    let turns = body[key].as_array().unwrap().clone();
    let n = turns.len();
    assert!(n > 8, "{shape:?}: {n} turns");
    let with = |turns: &[Value], edit: &dyn Fn(&mut Value)| {
        let mut b = body.clone();
        b[key] = Value::Array(turns.to_vec());
        edit(&mut b);
        serde_json::to_vec(&b).unwrap()
    };
    let same = |_: &mut Value| {};
    let mut more = turns.clone();
    more.push(json!({"role": "user", "content": "Go on."}));
    let mut changed = turns.clone();
    // An early turn's words (a turn's content, or its first part's text).
    let said = turns.iter().position(|t| !t["content"].is_null()).unwrap();
    changed[said]["content"] = match &turns[said]["content"] {
        Value::Array(parts) => {
            let mut parts = parts.clone();
            parts[0]["text"] = json!("Not what was said.");
            Value::Array(parts)
        }
        _ => json!("Not what was said."),
    };
    let mut refused = turns.clone();
    refused.push(refused_turn);
    // The turn that was last comes again changed, two more after it: as Claude Code moves its
    // cache mark onto the newest turn. Only sinks that read turns raw keep the state before
    // the last (Chat's typed reading does not).
    let part = match shape {
        agent::Shape::Responses => "input_text",
        _ => "text",
    };
    let mut moved = turns.clone();
    moved.extend([
        json!({"role": "user", "content": [{"type": part, "text": "Go on."}]}),
        json!({"role": "assistant", "content": "On it."}),
        json!({"role": "user", "content": "Go on."}),
    ]);
    let mut after_moved = moved.clone();
    after_moved.push(json!({"role": "user", "content": "Thanks."}));
    let before_last = !matches!(shape, agent::Shape::Chat);
    // (what, body, resumed a kept conversation)
    let steps: Vec<(&str, Vec<u8>, bool)> = vec![
        ("fewer", with(&turns[..n - 3], &same), false),
        ("all", with(&turns, &same), true),
        ("all again", with(&turns, &same), true),
        (
            "a longer model name: every span further on",
            with(&turns, &|b| {
                b["model"] = json!("an-agent-with-a-much-longer-name")
            }),
            true,
        ),
        (
            "other parameters",
            with(&turns, &|b| b["temperature"] = json!(0.5)),
            true,
        ),
        ("one more", with(&more, &same), true),
        ("an earlier turn changed", with(&changed, &same), false),
        (
            "a turn refused after the kept ones (all but the last of `one more`)",
            with(&refused, &same),
            before_last,
        ),
        ("one more again", with(&more, &same), true),
        ("the last turn changed", with(&moved, &same), before_last),
        ("one more after it", with(&after_moved, &same), true),
        ("only the first turns", with(&turns[..2], &same), false),
    ];
    let run = |body: &[u8]| {
        // As the gateway: admission's notes known, long strings lent, for the key's scope.
        let info = ringway::json::inspect_request(body).unwrap();
        let source = Bytes::copy_from_slice(body);
        ringway::json::with_scope(7, || {
            ringway::json::with_notes(&source, &info.strings, || {
                pair.request_shared(&source, "m", &opts, &translate::Room::unlimited())
            })
        })
        .map(|(shared, meta)| (shared.parts(&source).unwrap().concat(), meta))
    };
    for (what, body, resumed) in &steps {
        let used = translate::kept_conversations_used();
        let kept = run(body);
        assert_eq!(
            translate::kept_conversations_used() - used,
            u64::from(*resumed),
            "{shape:?} {what}: resumed"
        );
        let afresh = translate::without_kept(|| pair.request(body, "m", &opts));
        match (&kept, &afresh) {
            (Ok(k), Ok(a)) => assert!(k == a, "{shape:?} {what}: kept and afresh differ"),
            _ => assert_eq!(
                kept.as_ref().err(),
                afresh.as_ref().err(),
                "{shape:?} {what}"
            ),
        }
    }
    // Another key's requests never take what this key's kept, nor do requests outside a key.
    let used = translate::kept_conversations_used();
    let all = &steps[1].1;
    let afresh = translate::without_kept(|| pair.request(all, "m", &opts)).unwrap();
    let other = ringway::json::with_scope(8, || pair.request(all, "m", &opts));
    assert_eq!(other.unwrap(), afresh, "{shape:?}");
    assert_eq!(pair.request(all, "m", &opts).unwrap(), afresh, "{shape:?}");
    assert_eq!(
        translate::kept_conversations_used(),
        used,
        "{shape:?}: another scope"
    );
}

/// An agent's session turn by turn (`agent::session`: Claude Code's cache mark moved onto the
/// newest tool result each turn, Codex's and a Chat agent's turns appended): every turn after
/// the first goes on from the one before, and translates as afresh.
#[test]
fn every_turn_of_an_agent_session_goes_on_from_the_last() {
    let opts = options(&json!({}));
    for (shape, pair) in [
        (
            agent::Shape::Chat,
            Pair::new(Format::OpenAi, Format::Anthropic),
        ),
        (
            agent::Shape::Messages,
            Pair::new(Format::Anthropic, Format::OpenAi),
        ),
        (
            agent::Shape::Responses,
            Pair::new(Format::Responses, Format::OpenAi),
        ),
        (
            agent::Shape::Responses,
            Pair::new(Format::Responses, Format::Anthropic),
        ),
    ] {
        let session = agent::session(shape, 150 * 1024, "agent", false);
        assert!(session.len() > 8, "{shape:?}: {} turns", session.len());
        for (turn, body) in session.iter().enumerate() {
            let info = ringway::json::inspect_request(body).unwrap();
            let source = Bytes::copy_from_slice(body);
            let used = translate::kept_conversations_used();
            let kept = ringway::json::with_scope(9, || {
                ringway::json::with_notes(&source, &info.strings, || {
                    pair.request_shared(&source, "m", &opts, &translate::Room::unlimited())
                })
            })
            .map(|(shared, meta)| (shared.parts(&source).unwrap().concat(), meta))
            .unwrap();
            assert_eq!(
                translate::kept_conversations_used() - used,
                u64::from(turn > 0),
                "{shape:?} turn {turn}: resumed"
            );
            let afresh = translate::without_kept(|| pair.request(body, "m", &opts)).unwrap();
            assert!(
                kept == afresh,
                "{shape:?} turn {turn}: kept and afresh differ"
            );
        }
    }
}

#[test]
fn chat_tools_are_kept_for_messages() {
    let opts = options(&json!({}));
    let text =
        String::from_utf8(agent::body(agent::Shape::Chat, 50 * 1024, "agent", false)).unwrap();
    assert!(text.contains(r#""tools":["#), "an agent body has tools");
    let with_search = text.replacen(
        r#""tools":["#,
        r#""web_search_options":{"search_context_size":"low"},"tools":["#,
        1,
    );
    // `tools` named twice (the last counts; the first is checked too).
    let twice = text.replacen(
        r#""tools":["#,
        r#""tools":[{"type":"function","function":{"name":"x","strict":true}}],"tools":["#,
        1,
    );
    for (what, body, taken) in [
        ("agent", text.as_bytes(), true),
        ("web search", with_search.as_bytes(), false),
        ("tools twice", twice.as_bytes(), false),
    ] {
        let run = || translate::openai_to_anthropic_request(body, "m", &opts);
        let afresh = translate::without_kept(run);
        assert!(afresh.is_ok(), "{what}: {afresh:?}");
        let _ = run();
        let used = translate::kept_tools_used();
        assert_eq!(run(), afresh, "{what}");
        assert_eq!(translate::kept_tools_used() > used, taken, "{what}");
        // As the gateway takes it: shared bytes, long strings lent.
        let source = Bytes::copy_from_slice(body);
        let (shared, meta) = Pair::new(Format::OpenAi, Format::Anthropic)
            .request_shared(&source, "m", &opts, &translate::Room::unlimited())
            .unwrap();
        let (want, want_meta) = afresh.unwrap();
        assert_eq!(shared.parts(&source).unwrap().concat(), want, "{what}");
        assert_eq!(meta, want_meta, "{what}");
    }
    // A `strict` tool: noted as dropped on the kept way as on the plain way.
    let strict = text.replacen(
        r#""tools":[{"type":"function","function":{"#,
        r#""tools":[{"type":"function","function":{"strict":true,"#,
        1,
    );
    assert_ne!(strict, text);
    let run = || translate::openai_to_anthropic_request(strict.as_bytes(), "m", &opts);
    let afresh = translate::without_kept(run);
    let _ = run();
    let used = translate::kept_tools_used();
    assert_eq!(run(), afresh);
    assert!(translate::kept_tools_used() > used);
    let meta = afresh.unwrap().1;
    assert!(meta.ledger.dropped().contains(&"strict"), "{meta:?}");
}

/// A random JSON string for the differential tests of the direct writers: plain, empty, with
/// escapes (`\u` and ones that only look like it, `\/`), non-ASCII, sometimes long enough for
/// admission to note it, or `null`.
fn random_text(rng: &mut Rng) -> String {
    const TEXTS: [&str; 10] = [
        r#""plain""#,
        r#""""#,
        r#""line\none \"q\" \\ tab\t""#,
        r#""caf\u00e9""#,
        r#""a\\u00e9 not an escape""#,
        r#""slash \/ kept""#,
        r#""\ud83d\ude00""#,
        r#""ünïcode ✓""#,
        r#""C:\\users\/x""#,
        "null",
    ];
    let t = TEXTS[rng.below(TEXTS.len())];
    match (
        rng.below(8),
        t.strip_prefix('"').and_then(|t| t.strip_suffix('"')),
    ) {
        // Long enough for admission to note it.
        (0, Some(inner)) => format!("\"{}\"", inner.repeat(40)),
        _ => t.to_owned(),
    }
}

/// An object of `m`'s members in random order.
fn members(rng: &mut Rng, mut m: Vec<String>) -> String {
    for i in (1..m.len()).rev() {
        m.swap(i, rng.below(i + 1));
    }
    format!("{{{}}}", m.join(","))
}

/// One random Messages turn for [`messages_turns_translate_alike_direct_and_typed`]: the
/// shapes the direct writer takes, and their near misses (escapes that may be `\u`, `null`,
/// a key twice, an unknown key, an error result, several texts, a long name, an input that is
/// not an object), members in any order.
fn random_turn(rng: &mut Rng) -> String {
    let text = random_text;
    let extras = |rng: &mut Rng, m: &mut Vec<String>| match rng.below(12) {
        0 => m.push(r#""cache_control":{"type":"ephemeral"}"#.into()),
        1 => m.push(r#""caller":{"type":"direct"}"#.into()),
        2 => m.push(r#""cache_control":null"#.into()),
        3 => m.push(r#""citations":null"#.into()),
        4 => m.push(r#""zzz":1"#.into()),
        _ => {}
    };
    let block = |rng: &mut Rng, assistant: bool| -> String {
        let mut m = Vec::new();
        // Either role's blocks in either's turn, mostly its own.
        let own: &[usize] = if assistant {
            &[0, 1, 1, 2, 3]
        } else {
            &[0, 4, 4]
        };
        let pick = match rng.below(8) {
            0 => rng.below(6),
            n => own[n % own.len()],
        };
        match pick {
            0 => {
                m.push(r#""type":"text""#.into());
                if rng.below(10) > 0 {
                    m.push(format!(r#""text":{}"#, text(rng)));
                }
            }
            1 => {
                m.push(r#""type":"tool_use""#.into());
                m.push(format!(r#""id":"toolu_{}""#, rng.below(100)));
                let name = match rng.below(6) {
                    0 => "x".repeat(70),
                    1 => r"Re\u0061d".into(),
                    _ => "Read".into(),
                };
                m.push(format!(r#""name":"{name}""#));
                match rng.below(6) {
                    0 => {}
                    1 => m.push(r#""input":null"#.into()),
                    2 => m.push(r#""input":[1, 2]"#.into()),
                    3 => m.push(r#""input":{ "path" : "/a\"b", "n": [1, {"x": null}] }"#.into()),
                    _ => m.push(format!(r#""input":{{"file_path":{}}}"#, text(rng))),
                }
            }
            2 => {
                m.push(r#""type":"thinking""#.into());
                m.push(format!(r#""thinking":{}"#, text(rng)));
                m.push(r#""signature":"c2ln""#.into());
            }
            3 => {
                m.push(r#""type":"redacted_thinking""#.into());
                m.push(r#""data":"ZGF0YQ==""#.into());
            }
            _ => {
                m.push(r#""type":"tool_result""#.into());
                if rng.below(10) > 0 {
                    m.push(format!(r#""tool_use_id":"toolu_{}""#, rng.below(100)));
                }
                match rng.below(6) {
                    0 => {}
                    1 => m.push(format!(r#""content":{}"#, text(rng))),
                    2 => m.push(r#""content":[]"#.into()),
                    3 => {
                        let n = 1 + rng.below(3);
                        let items: Vec<String> = (0..n)
                            .map(|_| {
                                let mut i = vec![
                                    r#""type":"text""#.to_owned(),
                                    format!(r#""text":{}"#, text(rng)),
                                ];
                                extras(rng, &mut i);
                                members(rng, i)
                            })
                            .collect();
                        m.push(format!(r#""content":[{}]"#, items.join(",")));
                    }
                    4 => {
                        m.push(r#""content":[{"type":"tool_reference","tool_name":"Read"}]"#.into())
                    }
                    _ => m.push(r#""content":"ok""#.into()),
                }
                match rng.below(5) {
                    0 => m.push(r#""is_error":true"#.into()),
                    1 => m.push(r#""is_error":false"#.into()),
                    _ => {}
                }
            }
        }
        extras(rng, &mut m);
        if rng.below(40) == 0 {
            // A key twice.
            m.push(m[0].clone());
        }
        members(rng, m)
    };
    let role = ["user", "assistant", "user", "assistant", "system", "robot"][rng.below(6)];
    let assistant = role == "assistant";
    let content = if rng.below(5) == 0 {
        text(rng)
    } else {
        let blocks: Vec<String> = (0..rng.below(5)).map(|_| block(rng, assistant)).collect();
        format!("[{}]", blocks.join(","))
    };
    let mut m = vec![
        format!(r#""role":"{role}""#),
        format!(r#""content":{content}"#),
    ];
    if rng.below(30) == 0 {
        m.push(r#""name":"x""#.into());
    }
    members(rng, m)
}

/// The direct writers' comparison: `pair`'s translation of `body` gives the same bytes, meta
/// or error with the conversation written direct and typed; as the gateway takes it (shared
/// bytes, joined here) with long strings lent from the first byte; and with admission's notes
/// of the body. Whether it translated.
fn alike_direct_and_typed(body: &[u8], what: &str, pair: Pair, opts: &Options) -> bool {
    let run = &|| match pair.client {
        Format::Anthropic => translate::anthropic_to_openai_request(body, "m", opts),
        _ => responses::responses_request(body, "m", pair.provider, opts),
    };
    let direct = translate::without_kept(run);
    let typed = translate::without_kept(|| translate::without_direct(run));
    assert_eq!(direct, typed, "{what}: {}", String::from_utf8_lossy(body));
    let shared = || {
        let (bytes, meta) = pair.request_shared(body, "m", opts, &translate::Room::unlimited())?;
        Ok((bytes.into_vec(body)?, meta))
    };
    let lent = translate::lending_from(1, || translate::without_kept(shared));
    assert_eq!(
        lent,
        typed,
        "{what} lent: {}",
        String::from_utf8_lossy(body)
    );
    // With admission's notes of where long strings end (and whether they hold a `\u`).
    if let Ok(info) = ringway::json::inspect_request(body) {
        let noted = |run: &dyn Fn() -> _| {
            translate::without_kept(|| ringway::json::with_notes(body, &info.strings, run))
        };
        assert_eq!(
            noted(run),
            noted(&|| translate::without_direct(run)),
            "{what} noted: {}",
            String::from_utf8_lossy(body)
        );
    }
    direct.is_ok()
}

/// The direct writer of Messages turns (`messages_via_chat::direct`) against the typed
/// translation: the same bytes, meta or error, for agent bodies and for random turns of the
/// shapes it takes and their near misses; and on agent bodies it did the writing.
#[test]
fn messages_turns_translate_alike_direct_and_typed() {
    let opts = options(&json!({}));
    let pair = Pair::new(Format::Anthropic, Format::OpenAi);
    let compare = |body: &[u8], what: &str| alike_direct_and_typed(body, what, pair, &opts);
    direct_over_agents_and_random(
        agent::Shape::Messages,
        &compare,
        0x2545_f491_4f6c_dd1d,
        |rng| {
            let turns: Vec<String> = (0..1 + rng.below(4)).map(|_| random_turn(rng)).collect();
            // Sometimes a key after the conversation that does not read either: the turn's error
            // comes first.
            let after = [
                "",
                "",
                "",
                r#","tool_choice":"auto""#,
                r#","tools":[{"type":"function"}]"#,
                // Read again by serde_json, typed tools.
                r#","tools":[],"tools":[]"#,
                // The conversation again: the last counts.
                r#","messages":[{"role":"user","content":"again"}]"#,
            ][rng.below(7)];
            format!(
                r#"{{"model":"c","max_tokens":5,"messages":[{}]{after}}}"#,
                turns.join(",")
            )
        },
    );
}

/// Runs `compare` over `shape`'s agent bodies, streaming and not (asserting that the direct
/// path wrote at least three elements of each), then over 4,000 bodies `random` makes from a
/// generator seeded with `seed` (asserting that both kinds of answer were compared and that
/// most elements went direct).
fn direct_over_agents_and_random(
    shape: agent::Shape,
    compare: &dyn Fn(&[u8], &str) -> bool,
    seed: u64,
    random: impl Fn(&mut Rng) -> String,
) {
    for size in [4 * 1024, 50 * 1024, 150 * 1024] {
        for stream in [false, true] {
            let body = agent::body(shape, size, "agent", stream);
            let before = translate::direct_turns();
            assert!(compare(&body, &format!("agent {size}")));
            assert!(
                translate::direct_turns() - before >= 3,
                "{size}: the elements were written direct"
            );
        }
    }
    let mut rng = Rng(seed);
    let (mut ok, mut direct) = (0, translate::direct_turns());
    for case in 0..4000 {
        let body = random(&mut rng);
        ok += usize::from(compare(body.as_bytes(), &format!("case {case}")));
    }
    direct = translate::direct_turns() - direct;
    assert!(ok > 300 && ok < 4000, "{ok} translated");
    assert!(direct > 2000, "{direct} elements written direct");
}

/// Found by fuzz target `translate_req_a2o`: a Chat body sent as Messages, whose assistant
/// turn has `"content": null` and whose tools do not read as Messages tools. The typed
/// reading names the turn; the direct one named the tools.
#[test]
fn a_turn_that_does_not_read_is_the_error_given_before_the_tools() {
    let body = include_bytes!("fixtures/a2o-null-content-chat-tools.json");
    let opts = options(&json!({}));
    let run = || translate::anthropic_to_openai_request(body, "m", &opts);
    let typed = translate::without_kept(|| translate::without_direct(run));
    let direct = translate::without_kept(run);
    assert_eq!(direct, typed);
    let e = typed.unwrap_err();
    assert_eq!(e.param.as_deref(), Some("messages"), "{e:?}");
}

/// Turns nested near the readers' depth limit: the direct writer, and the typed reading of one
/// turn from its span, answer as the typed reading of the whole body.
#[test]
fn deep_turns_translate_alike_direct_and_typed() {
    let opts = options(&json!({}));
    for depth in [
        110, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127, 128, 130,
    ] {
        // Blocks of an unknown type nested in each other's content, and a tool call's input.
        let nested = format!(
            "{}{{\"type\":\"x\"}}{}",
            "{\"type\":\"x\",\"content\":[".repeat(depth),
            "]}".repeat(depth)
        );
        let input = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        for turn in [
            format!(r#"{{"role":"assistant","content":[{nested}]}}"#),
            format!(
                r#"{{"role":"assistant","content":[{{"type":"tool_use","id":"t","name":"n","input":{input}}}]}}"#
            ),
        ] {
            let body = format!(r#"{{"model":"c","max_tokens":5,"messages":[{turn}]}}"#);
            let run = || translate::anthropic_to_openai_request(body.as_bytes(), "m", &opts);
            let typed = translate::without_kept(|| translate::without_direct(run));
            assert_eq!(translate::without_kept(run), typed, "depth {depth}");
        }
    }
}

/// One random Responses input item for [`responses_items_translate_alike_direct_and_typed`]:
/// the items the direct reader takes (messages of a string or text parts, function calls,
/// their outputs as strings, reasoning with nothing sealed) and their near misses (a refusal,
/// an image, an output of parts, sealed content, a namespace, a long or escaped name, a key
/// twice, `null`s, unknown members flat and nested, other item types), members in any order.
fn random_item(rng: &mut Rng) -> String {
    let text = random_text;
    let part = |rng: &mut Rng, kinds: &[&str]| -> String {
        let kind = kinds[rng.below(kinds.len())];
        let mut m = Vec::new();
        if rng.below(20) > 0 {
            m.push(format!(r#""type":"{kind}""#));
        }
        match kind {
            "refusal" => m.push(format!(r#""refusal":{}"#, text(rng))),
            "input_image" => m.push(r#""image_url":"https://x/y.png""#.into()),
            _ if rng.below(10) > 0 => m.push(format!(r#""text":{}"#, text(rng))),
            _ => {}
        }
        match rng.below(12) {
            0 => m.push(r#""annotations":[]"#.into()),
            1 => m.push(r#""logprobs":[{"token":"a"}]"#.into()),
            2 => m.push(r#""detail":null"#.into()),
            3 => m.push(r#""detail":"high""#.into()),
            4 => m.push(r#""file_id":5"#.into()),
            5 => m.push(format!(r#""text":{}"#, text(rng))),
            _ => {}
        }
        members(rng, m)
    };
    let parts = |rng: &mut Rng, kinds: &[&str]| -> String {
        let n = rng.below(4);
        let parts: Vec<String> = (0..n).map(|_| part(rng, kinds)).collect();
        format!("[{}]", parts.join(","))
    };
    let call_id = |rng: &mut Rng| format!(r#""call_id":"call_{}""#, rng.below(50));
    let mut m = Vec::new();
    match rng.below(10) {
        0..=2 => {
            let roles = [
                "user",
                "assistant",
                "developer",
                "system",
                "user",
                "assistant",
                "tool",
            ];
            let role = roles[rng.below(roles.len())];
            m.push(format!(r#""role":"{role}""#));
            if rng.below(5) > 0 {
                m.push(r#""type":"message""#.into());
            }
            let kinds: &[&str] = if role == "assistant" {
                &[
                    "output_text",
                    "output_text",
                    "refusal",
                    "input_text",
                    "text",
                ]
            } else {
                &[
                    "input_text",
                    "input_text",
                    "output_text",
                    "input_image",
                    "x",
                ]
            };
            match rng.below(6) {
                0 => m.push(format!(r#""content":{}"#, text(rng))),
                1 => {}
                _ => m.push(format!(r#""content":{}"#, parts(rng, kinds))),
            }
            if rng.below(3) == 0 {
                m.push(format!(r#""id":"msg_{}""#, rng.below(9)));
            }
            if rng.below(3) == 0 {
                m.push(r#""status":"completed""#.into());
            }
        }
        3..=5 => {
            m.push(r#""type":"function_call""#.into());
            if rng.below(12) > 0 {
                m.push(call_id(rng));
            }
            match rng.below(12) {
                0 => {}
                1 => m.push(format!(r#""name":"{}""#, "f".repeat(70))),
                2 => m.push(r#""name":"n\u0061me""#.into()),
                _ => m.push(r#""name":"exec_command""#.into()),
            }
            if rng.below(8) > 0 {
                m.push(format!(r#""arguments":{}"#, text(rng)));
            }
            if rng.below(15) == 0 {
                m.push(r#""namespace":"repo""#.into());
            }
            if rng.below(3) == 0 {
                m.push(format!(r#""id":"fc_{}""#, rng.below(9)));
            }
        }
        6 | 7 => {
            m.push(r#""type":"function_call_output""#.into());
            if rng.below(12) > 0 {
                m.push(call_id(rng));
            }
            match rng.below(6) {
                0 => {}
                1 => m.push(format!(
                    r#""output":{}"#,
                    parts(rng, &["input_text", "input_image"])
                )),
                _ => m.push(format!(r#""output":{}"#, text(rng))),
            }
        }
        8 => {
            m.push(r#""type":"reasoning""#.into());
            m.push(format!(r#""id":"rs_{}""#, rng.below(9)));
            if rng.below(4) > 0 {
                m.push(format!(r#""summary":{}"#, parts(rng, &["summary_text"])));
            }
            match rng.below(4) {
                0 => m.push(r#""content":null"#.into()),
                1 => m.push(format!(r#""content":{}"#, parts(rng, &["reasoning_text"]))),
                _ => {}
            }
            match rng.below(5) {
                0 => m.push(r#""encrypted_content":"gAAAA-elsewhere""#.into()),
                1 | 2 => m.push(r#""encrypted_content":null"#.into()),
                _ => {}
            }
        }
        _ => {
            let kinds = [
                "compaction_trigger",
                "web_search_call",
                "item_reference",
                "custom_tool_call",
                "nope",
            ];
            m.push(format!(r#""type":"{}""#, kinds[rng.below(kinds.len())]));
        }
    }
    match rng.below(16) {
        0 => m.push(r#""zzz":{"a":[1]}"#.into()),
        1 => m.push(r#""status":null"#.into()),
        2 => m.push(r#""metadata":{}"#.into()),
        3 => m.push(r#""role":null"#.into()),
        4 => m.push(r#""input":"x""#.into()),
        5 => m.push(r#""input":5"#.into()),
        6 => m.push(r#""id":null"#.into()),
        7 => m.push(r#""summary":null"#.into()),
        _ => {}
    }
    if rng.below(40) == 0 && !m.is_empty() {
        // A key twice.
        m.push(m[0].clone());
    }
    members(rng, m)
}

/// The direct reader of Responses items (`responses::direct`), written as Chat, against the
/// typed translation: the same bytes, meta or error for either provider kind (an
/// Anthropic-kind one writes Chat only when the Messages translator refused the items), for
/// agent bodies and for random items of the shapes it takes and their near misses; and on
/// agent bodies it did the writing.
#[test]
fn responses_items_translate_alike_direct_and_typed() {
    let opts = options(&json!({}));
    let compare = |body: &[u8], what: &str| {
        let mut ok = false;
        for provider in [Format::OpenAi, Format::Anthropic] {
            ok |= alike_direct_and_typed(body, what, Pair::new(Format::Responses, provider), &opts);
        }
        ok
    };
    direct_over_agents_and_random(
        agent::Shape::Responses,
        &compare,
        0x9e6c_63d0_876a_1f2b,
        |rng| {
            let items: Vec<String> = (0..1 + rng.below(5)).map(|_| random_item(rng)).collect();
            // Sometimes a key after the items that does not read: the items' error comes first.
            let after = [
                "",
                "",
                "",
                r#","tool_choice":"auto""#,
                r#","tools":[{"type":"function"}]"#,
                r#","instructions":5"#,
                // The items again: the last counts.
                r#","input":"again""#,
                r#","input":[{"role":"user","content":"again"}]"#,
            ][rng.below(8)];
            format!(r#"{{"model":"c","input":[{}]{after}}}"#, items.join(","))
        },
    );
}

/// Items nested near the readers' depth limit: the direct reader, and the typed reading of
/// one item from its span, answer as the typed reading of the whole body.
#[test]
fn deep_items_translate_alike_direct_and_typed() {
    let opts = options(&json!({}));
    for depth in [110, 118, 119, 120, 121, 122, 123, 124, 125, 126, 128] {
        let nested = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        for item in [
            format!(
                r#"{{"type":"function_call_output","call_id":"c","output":"x","zzz":{nested}}}"#
            ),
            format!(
                r#"{{"role":"user","content":[{{"type":"input_text","text":"t","zzz":{nested}}}]}}"#
            ),
        ] {
            let body = format!(r#"{{"model":"c","input":[{item}]}}"#);
            for provider in [Format::OpenAi, Format::Anthropic] {
                let run = || responses::responses_request(body.as_bytes(), "m", provider, &opts);
                let typed = translate::without_kept(|| translate::without_direct(run));
                assert_eq!(
                    translate::without_kept(run),
                    typed,
                    "depth {depth} {provider:?}"
                );
            }
        }
    }
}

/// A long string holding `\\u` (an escaped backslash, then `u`: no `\u` escape) and `\/`, in an
/// item before another long string: with admission's notes, the string read first is kept as
/// written by both readers, handed on as Chat or as Messages (found in review: the Messages
/// hand-on looked for `\u` again after the walk, when the note it asked of was another
/// string's, and decoded it, writing `\/` as `/`).
#[test]
fn noted_strings_before_others_are_kept_alike() {
    let opts = options(&json!({}));
    let long = r"C:\\users\/x ".repeat(12);
    let other = "a second long text, noted as well by admission's inspection".repeat(2);
    let items = [
        format!(
            r#"{{"role":"user","content":[{{"type":"input_text","text":"{long}"}},{{"type":"input_text","text":"{other}"}}]}}"#
        ),
        format!(
            r#"{{"type":"message","role":"assistant","content":[{{"type":"output_text","text":"{long}"}},{{"type":"output_text","text":"{other}"}}]}}"#
        ),
        format!(r#"{{"type":"function_call_output","output":"{long}","call_id":"{other}"}}"#),
        // Arguments whose text, decoded, is JSON holding `\\` and `\/` in turn.
        format!(
            r#"{{"type":"function_call","name":"f","arguments":"{{\"p\":\"{}\"}}","call_id":"{other}"}}"#,
            r"C:\\\\users\\/x ".repeat(12)
        ),
    ];
    for item in items {
        let body = format!(r#"{{"model":"c","input":[{item}]}}"#);
        for provider in [Format::OpenAi, Format::Anthropic] {
            let pair = Pair::new(Format::Responses, provider);
            let before = translate::direct_turns();
            assert!(alike_direct_and_typed(body.as_bytes(), &item, pair, &opts));
            assert!(
                translate::direct_turns() > before,
                "{provider:?} went direct: {item}"
            );
        }
    }
}

/// Items go direct for each provider kind, not only for one of the two the comparison above
/// counts together: to Chat written from their spans, to Messages handed on from them.
#[test]
fn responses_items_go_direct_to_either_provider() {
    let opts = options(&json!({}));
    let body = agent::body(agent::Shape::Responses, 50 * 1024, "agent", false);
    let mut went = Vec::new();
    for provider in [Format::OpenAi, Format::Anthropic] {
        let run = || responses::responses_request(&body, "m", provider, &opts);
        let before = translate::direct_turns();
        let direct = translate::without_kept(run);
        went.push(translate::direct_turns() - before);
        let typed = translate::without_kept(|| translate::without_direct(run));
        assert_eq!(direct, typed, "{provider:?}");
        assert!(direct.is_ok(), "{provider:?}");
    }
    // The same reader takes the same items, whichever way they go on.
    assert!(
        went[0] >= 10 && went[1] == went[0],
        "items went direct: {went:?}"
    );
}
