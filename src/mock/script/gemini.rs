//! The composed answer rendered as Gemini's `GenerateContentResponse`: one JSON body, an SSE
//! stream (`alt=sse`) or a streamed JSON array; finish reasons, blocked prompts, usage with
//! thoughts and cache, thought signatures, and both Gemini error shapes.
//!
//! The request reaches here already reduced to the Anthropic shape the script reads (the
//! caller, `mock::gemini`, translates `contents`, tools and config), so directives, tool calls
//! and faults behave as on the other APIs.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::answer::{compose, Answer, Block, Stop};
use super::directives::{Directives, Fault, FAULT_AFTER_TOKENS};
use super::framing::{fixed_with_headers, schedule_stream, Frame, Pace, Timing};
use super::ids::{count, Ids, BASE62};
use super::request::parse_request;
use super::step::{Api, Defaults, Step};

/// Salt of the `responseId` stream.
const SALT_RESPONSE: u64 = 0x3_0000;
/// Salt of function call ids.
const SALT_CALL: u64 = 0x3_1000;
/// Key of the mock's thought signatures: they are checked by recomputing, without state.
const SIGNATURE_KEY: &[u8] = b"ringway-mock-gemini-thought-signature";
/// The `createTime` Vertex writes (fixed: the script has no clock).
const VERTEX_CREATE_TIME: &str = "2026-01-01T00:00:00.000000Z";

/// Every `finishReason` Gemini documents; `mock:finish=NAME` takes one of these.
pub const FINISH_REASONS: &[&str] = &[
    "FINISH_REASON_UNSPECIFIED",
    "STOP",
    "MAX_TOKENS",
    "SAFETY",
    "RECITATION",
    "LANGUAGE",
    "OTHER",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "MALFORMED_FUNCTION_CALL",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_OTHER",
    "NO_IMAGE",
    "IMAGE_RECITATION",
    "UNEXPECTED_TOOL_CALL",
    "TOO_MANY_TOOL_CALLS",
    "MISSING_THOUGHT_SIGNATURE",
    "MALFORMED_RESPONSE",
];

/// Every `promptFeedback.blockReason`; `mock:prompt_blocked[=NAME]` takes one (default SAFETY).
pub const BLOCK_REASONS: &[&str] = &[
    "BLOCK_REASON_UNSPECIFIED",
    "SAFETY",
    "OTHER",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "IMAGE_SAFETY",
];

/// How the answer travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `:generateContent`: one JSON object.
    Unary,
    /// `:streamGenerateContent?alt=sse`: `data: {…}\r\n\r\n` events.
    Sse,
    /// `:streamGenerateContent` without `alt=sse`: one JSON array, element by element.
    JsonArray,
}

/// One Gemini call, its body already in the script's (Anthropic) shape.
pub struct GeminiCall<'a> {
    /// The translated body the script reads.
    pub body: &'a [u8],
    /// Prompt tokens (an estimate from the original body).
    pub input_tokens: u64,
    /// The model from the path (`modelVersion`).
    pub model: &'a str,
    /// How the answer travels.
    pub form: Form,
    /// `generationConfig.thinkingConfig.includeThoughts`.
    pub include_thoughts: bool,
    /// Gemini 3: function calls (and the last text part) carry thought signatures.
    pub signatures: bool,
    /// Vertex AI (adds `createTime`).
    pub vertex: bool,
}

/// The Gemini-only directives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GeminiDirectives {
    /// `mock:finish=NAME`.
    pub finish: Option<&'static str>,
    /// `mock:prompt_blocked[=NAME]`.
    pub blocked: Option<&'static str>,
    /// `mock:cached=N`: `cachedContentTokenCount`.
    pub cached: Option<u64>,
}

impl GeminiDirectives {
    /// Reads them from the text the script reads its own from.
    pub fn parse(text: &str) -> Self {
        let mut d = Self::default();
        for raw in text.split_whitespace() {
            let raw = raw.trim_start_matches(['(', '"', '\'', '`']);
            let Some(rest) = raw.strip_prefix("mock:") else {
                continue;
            };
            let word = rest.trim_end_matches(['.', ',', ';', '!', '?', ')', '"', '\'', '`']);
            let (key, value) = word
                .split_once('=')
                .map_or((word, None), |(k, v)| (k, Some(v)));
            let named = |list: &[&'static str], v: &str| {
                list.iter().copied().find(|n| n.eq_ignore_ascii_case(v))
            };
            match key {
                "finish" => d.finish = value.and_then(|v| named(FINISH_REASONS, v)).or(d.finish),
                "prompt_blocked" => {
                    d.blocked = match value {
                        None => Some("SAFETY"),
                        Some(v) => named(BLOCK_REASONS, v).or(d.blocked),
                    }
                }
                "cached" => d.cached = value.and_then(|v| v.parse().ok()).or(d.cached),
                _ => {}
            }
        }
        d
    }
}

/// The `mock:status=` a text asks for (countTokens honours only that).
pub fn status_directive(text: &str) -> Option<u16> {
    Directives::parse(text).status
}

/// The thought signature the mock gives a function call: a keyed hash of its name and
/// arguments (keys sorted), base64. Stateless, so the next request can be checked.
pub fn thought_signature(name: &str, args: &Value) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SIGNATURE_KEY);
    let mut text = String::from(name);
    text.push('\n');
    canonical(args, &mut text);
    let tag = ring::hmac::sign(&key, text.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
}

/// The signature the mock puts on the last text part of a Gemini 3 answer (not enforced).
fn text_signature(text: &str) -> String {
    thought_signature("", &Value::from(text))
}

/// JSON with object keys sorted at every level (the form a signature covers).
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(k.as_str()).to_string());
                out.push(':');
                if let Some(x) = map.get(*k) {
                    canonical(x, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Google's status name for an HTTP status.
pub fn status_name(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        500..=599 => "INTERNAL",
        _ => "FAILED_PRECONDITION",
    }
}

/// Google's words for a status asked for by a directive or the fault table.
fn status_message(status: u16) -> &'static str {
    match status {
        400 => "Request contains an invalid argument.",
        401 => "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        403 => "The caller does not have permission",
        404 => "Requested entity was not found.",
        429 => "Resource has been exhausted (e.g. check quota).",
        503 => "The model is overloaded. Please try again later.",
        504 => "Deadline expired before operation could complete.",
        500..=502 | 505..=599 => "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
        _ => "Precondition check failed.",
    }
}

/// Google's error object: `{"error":{"code","message","status"[,"details"]}}`.
pub fn error_value(status: u16, message: &str, details: Option<Value>) -> Value {
    let mut error = Map::new();
    error.insert("code".into(), Value::from(status));
    error.insert("message".into(), Value::from(message));
    error.insert("status".into(), Value::from(status_name(status)));
    if let Some(details) = details {
        error.insert("details".into(), details);
    }
    json!({ "error": Value::Object(error) })
}

/// A complete Gemini error reply; array-wrapped on the JSON-array stream, as Google sends it.
pub fn error_reply(status: u16, message: &str, details: Option<Value>, form: Form) -> Vec<Step> {
    let error = error_value(status, message, details);
    let body = match form {
        Form::JsonArray => json!([error]),
        _ => error,
    };
    let text = serde_json::to_string_pretty(&body).unwrap_or_default();
    fixed_with_headers(status, Vec::new(), text.into_bytes(), Duration::ZERO)
}

/// The reply to a `mock:status=` directive or a status fault.
pub fn status_reply(status: u16, form: Form) -> Vec<Step> {
    let details = (status == 429).then(
        || json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}]),
    );
    error_reply(status, status_message(status), details, form)
}

/// The finish reasons whose candidates carry no content in a whole body.
fn drops_content(finish: &str) -> bool {
    !matches!(finish, "STOP" | "MAX_TOKENS")
}

fn safety_ratings(blocked: bool) -> Value {
    let probability = if blocked { "HIGH" } else { "NEGLIGIBLE" };
    let mut harmful =
        json!({"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": probability});
    if blocked {
        harmful["blocked"] = Value::Bool(true);
    }
    json!([
        {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
        harmful,
        {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
        {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
    ])
}

/// Token counts as Gemini reports them.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    prompt: u64,
    cached: u64,
    candidates: u64,
    thoughts: u64,
}

impl Counts {
    fn json(&self, with_candidates: bool) -> Value {
        let mut m = Map::new();
        m.insert("promptTokenCount".into(), Value::from(self.prompt));
        if with_candidates {
            m.insert("candidatesTokenCount".into(), Value::from(self.candidates));
        }
        // Zero counts are left out, as proto3 JSON does.
        if self.cached > 0 {
            m.insert("cachedContentTokenCount".into(), Value::from(self.cached));
        }
        let total = self.prompt + self.candidates + self.thoughts;
        m.insert("totalTokenCount".into(), Value::from(total));
        m.insert(
            "promptTokensDetails".into(),
            json!([{"modality": "TEXT", "tokenCount": self.prompt}]),
        );
        if self.cached > 0 {
            m.insert(
                "cacheTokensDetails".into(),
                json!([{"modality": "TEXT", "tokenCount": self.cached}]),
            );
        }
        if self.thoughts > 0 {
            m.insert("thoughtsTokenCount".into(), Value::from(self.thoughts));
        }
        Value::Object(m)
    }
}

struct Render<'a> {
    call: &'a GeminiCall<'a>,
    response_id: String,
}

impl Render<'_> {
    /// A `GenerateContentResponse` around `candidate` (none: a blocked prompt's).
    fn response(&self, candidate: Option<Value>, usage: Value) -> Value {
        let mut m = Map::new();
        if let Some(c) = candidate {
            m.insert("candidates".into(), json!([c]));
        }
        m.insert("usageMetadata".into(), usage);
        m.insert("modelVersion".into(), Value::from(self.call.model));
        if self.call.vertex {
            m.insert("createTime".into(), Value::from(VERTEX_CREATE_TIME));
        }
        m.insert("responseId".into(), Value::from(self.response_id.as_str()));
        Value::Object(m)
    }

    fn candidate(parts: Option<Vec<Value>>, finish: Option<&str>) -> Value {
        let mut c = Map::new();
        if let Some(parts) = parts {
            c.insert("content".into(), json!({"parts": parts, "role": "model"}));
        }
        if let Some(f) = finish {
            c.insert("finishReason".into(), Value::from(f));
            if matches!(f, "SAFETY" | "IMAGE_SAFETY") {
                c.insert("safetyRatings".into(), safety_ratings(true));
            }
        }
        c.insert("index".into(), Value::from(0));
        Value::Object(c)
    }

    fn frame(&self, value: &Value, first: bool, pace: Pace) -> Frame {
        let bytes = match self.call.form {
            Form::Sse => format!("data: {value}\r\n\r\n"),
            // Google's array stream: pretty objects, `[` before the first, `,\r\n` between.
            _ => {
                let text = serde_json::to_string_pretty(value).unwrap_or_default();
                format!("{}{text}\n", if first { "[" } else { ",\r\n" })
            }
        };
        Frame { bytes, pace }
    }
}

/// A functionCall part (with its signature when `signed`).
fn call_part(id: &str, name: &str, args: &Value, signed: bool) -> Value {
    let mut part = Map::new();
    part.insert(
        "functionCall".into(),
        json!({"id": id, "name": name, "args": args}),
    );
    if signed {
        part.insert(
            "thoughtSignature".into(),
            Value::from(thought_signature(name, args)),
        );
    }
    Value::Object(part)
}

fn call_args(args: &[(String, Value)]) -> Value {
    Value::Object(args.iter().cloned().collect())
}

/// Plans the whole answer to one Gemini call.
pub fn plan(call: &GeminiCall<'_>, defaults: &Defaults) -> Vec<Step> {
    let ids = Ids::new(call.body);
    let req = match parse_request(Api::AnthropicMessages, call.body) {
        Ok(req) => req,
        Err(err) => return error_reply(400, &err.to_string(), None, call.form),
    };
    let dirs = Directives::parse(&req.user_text);
    let gdirs = GeminiDirectives::parse(&req.user_text);
    if let Some(status) = dirs.status {
        return status_reply(status, call.form);
    }
    let stream = call.form != Form::Unary;
    let timing = Timing {
        ttft: dirs.ttft.unwrap_or(defaults.ttft),
        itl: dirs.itl.unwrap_or(defaults.inter_token),
    };
    if !stream {
        match dirs.fault {
            Some(Fault::Reset) => return vec![Step::Reset],
            Some(Fault::Stall) => return vec![Step::Stall],
            Some(Fault::MidstreamError) => return status_reply(500, call.form),
            None => {}
        }
    }
    let render = Render {
        call,
        response_id: ids.text(SALT_RESPONSE, 22, BASE62),
    };
    let mut counts = Counts {
        prompt: dirs.usage.input.unwrap_or(call.input_tokens),
        ..Counts::default()
    };
    counts.cached = gdirs
        .cached
        .or(dirs.usage.cache_read)
        .unwrap_or(if dirs.cache { counts.prompt / 2 } else { 0 })
        .min(counts.prompt);
    if let Some(reason) = gdirs.blocked {
        let mut body = render.response(None, counts.json(false));
        body["promptFeedback"] =
            json!({"blockReason": reason, "safetyRatings": safety_ratings(reason == "SAFETY")});
        return finish_plan(call, &render, vec![body], timing, None);
    }
    let mut answer = compose(Api::AnthropicMessages, &req, &dirs, &ids, counts.prompt);
    dirs.usage.apply(Api::AnthropicMessages, &mut answer);
    let shown: u64 = answer
        .blocks
        .iter()
        .map(|b| match b {
            Block::Thinking { pieces, .. } => count(pieces.len()),
            _ => 0,
        })
        .sum();
    counts.thoughts = dirs.usage.reasoning.unwrap_or(shown);
    let finish = gdirs.finish.unwrap_or(match answer.stop {
        Stop::MaxTokens => "MAX_TOKENS",
        Stop::Refusal | Stop::ContentFilter => "SAFETY",
        _ => "STOP",
    });
    if finish != "STOP" && gdirs.finish.is_some() {
        // The model was stopped a few tokens in: keep that much text, no calls.
        answer.blocks.retain(|b| !matches!(b, Block::Tool(_)));
        if !answer.blocks.iter().any(|b| matches!(b, Block::Text(_))) {
            answer.blocks.push(Block::Text(Vec::new()));
        }
        for b in &mut answer.blocks {
            if let Block::Text(pieces) = b {
                pieces.truncate(FAULT_AFTER_TOKENS);
            }
        }
    }
    let text_tokens: u64 = answer
        .blocks
        .iter()
        .map(|b| match b {
            Block::Text(p) | Block::Refusal(p) => count(p.len()),
            Block::Tool(c) => 1 + count(c.args_text.len().div_ceil(4)),
            Block::Thinking { .. } => 0,
        })
        .sum();
    counts.candidates = if gdirs.finish.is_some() || answer.stop.is_refusal() {
        text_tokens
    } else {
        answer.usage.output.saturating_sub(shown)
    };
    if stream {
        stream_plan(call, &render, &answer, counts, finish, timing, dirs.fault)
    } else {
        let body = unary_body(call, &render, &answer, counts, finish, &ids);
        let delay = timing.total(answer.paced_count());
        finish_plan(
            call,
            &render,
            vec![body],
            Timing {
                ttft: delay,
                itl: Duration::ZERO,
            },
            None,
        )
    }
}

/// The function call parts of an answer, ids and signatures given.
fn calls(call: &GeminiCall<'_>, answer: &Answer, ids: &Ids) -> Vec<Value> {
    answer
        .blocks
        .iter()
        .filter_map(|b| match b {
            Block::Tool(c) => Some(c),
            _ => None,
        })
        .enumerate()
        .map(|(i, c)| {
            let id = ids.text(SALT_CALL + count(i), 8, BASE62).to_lowercase();
            // Parallel calls: only the first carries the signature, as Gemini 3 does.
            call_part(&id, &c.name, &call_args(&c.args), call.signatures && i == 0)
        })
        .collect()
}

fn unary_body(
    call: &GeminiCall<'_>,
    render: &Render<'_>,
    answer: &Answer,
    counts: Counts,
    finish: &str,
    ids: &Ids,
) -> Value {
    let mut parts = Vec::new();
    for b in &answer.blocks {
        match b {
            Block::Thinking { pieces, .. } if call.include_thoughts => {
                parts.push(json!({"text": pieces.concat(), "thought": true}));
            }
            Block::Text(pieces) | Block::Refusal(pieces) if !pieces.is_empty() => {
                parts.push(json!({"text": pieces.concat()}));
            }
            _ => {}
        }
    }
    let function_calls = calls(call, answer, ids);
    let has_calls = !function_calls.is_empty();
    parts.extend(function_calls);
    if call.signatures && !has_calls {
        if let Some(last) = parts.last_mut() {
            let text = last.get("text").and_then(Value::as_str).unwrap_or_default();
            let sig = text_signature(text);
            last["thoughtSignature"] = Value::from(sig);
        }
    }
    let parts = (!drops_content(finish)).then_some(parts);
    render.response(
        Some(Render::candidate(parts, Some(finish))),
        counts.json(true),
    )
}

fn stream_plan(
    call: &GeminiCall<'_>,
    render: &Render<'_>,
    answer: &Answer,
    counts: Counts,
    finish: &str,
    timing: Timing,
    fault: Option<Fault>,
) -> Vec<Step> {
    let ids = Ids::new(call.body);
    let mut running = Counts {
        candidates: 0,
        thoughts: 0,
        ..counts
    };
    let mut frames = Vec::new();
    let mut calls = calls(call, answer, &ids).into_iter();
    let mut last_text = String::new();
    let push = |frames: &mut Vec<Frame>, part: Value, running: &Counts| {
        let v = render.response(
            Some(Render::candidate(Some(vec![part]), None)),
            running.json(true),
        );
        let first = frames.is_empty();
        frames.push(render.frame(&v, first, Pace::Paced));
    };
    for b in &answer.blocks {
        match b {
            Block::Thinking { pieces, .. } => {
                for p in pieces {
                    running.thoughts = (running.thoughts + 1).min(counts.thoughts);
                    if call.include_thoughts {
                        push(&mut frames, json!({"text": p, "thought": true}), &running);
                    }
                }
            }
            Block::Text(pieces) | Block::Refusal(pieces) => {
                for p in pieces {
                    running.candidates = (running.candidates + 1).min(counts.candidates);
                    last_text.clone_from(p);
                    push(&mut frames, json!({"text": p}), &running);
                }
            }
            Block::Tool(c) => {
                running.candidates =
                    (running.candidates + 1 + count(c.args_text.len().div_ceil(4)))
                        .min(counts.candidates);
                if let Some(part) = calls.next() {
                    push(&mut frames, part, &running);
                }
            }
        }
    }
    // The last chunk: the finish reason and the final usage, with an empty text part (the
    // Gemini 3 text signature rides on it) unless the finish reason drops content.
    let has_calls = answer.blocks.iter().any(|b| matches!(b, Block::Tool(_)));
    let parts = (!drops_content(finish)).then(|| {
        let mut part = json!({"text": ""});
        if call.signatures && !has_calls {
            part["thoughtSignature"] = Value::from(text_signature(&last_text));
        }
        vec![part]
    });
    let last = render.response(
        Some(Render::candidate(parts, Some(finish))),
        counts.json(true),
    );
    let first = frames.is_empty();
    frames.push(render.frame(&last, first, Pace::Final));
    let error = error_value(500, status_message(500), None);
    // A stream broken before any element still opens its array.
    let opened = frames.iter().any(|f| f.pace == Pace::Paced);
    let error_frame = match call.form {
        Form::Sse => format!("data: {error}\r\n\r\n"),
        _ => format!(
            "{}{}\n]",
            if opened { ",\r\n" } else { "[" },
            serde_json::to_string_pretty(&error).unwrap_or_default()
        ),
    };
    let mut steps = schedule_stream(
        Api::AnthropicMessages,
        &ids,
        frames,
        timing,
        fault,
        error_frame,
    );
    close_array(call.form, &mut steps, fault.is_none());
    set_head(call.form, &mut steps);
    steps
}

/// A blocked prompt or a whole body, in the call's form.
fn finish_plan(
    call: &GeminiCall<'_>,
    render: &Render<'_>,
    bodies: Vec<Value>,
    timing: Timing,
    fault: Option<Fault>,
) -> Vec<Step> {
    if call.form == Form::Unary {
        let text = serde_json::to_string_pretty(bodies.first().unwrap_or(&Value::Null))
            .unwrap_or_default();
        return fixed_with_headers(200, Vec::new(), text.into_bytes(), timing.ttft);
    }
    let frames = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| render.frame(b, i == 0, Pace::Paced))
        .collect();
    let ids = Ids::new(call.body);
    let mut steps = schedule_stream(
        Api::AnthropicMessages,
        &ids,
        frames,
        timing,
        fault,
        String::new(),
    );
    close_array(call.form, &mut steps, true);
    set_head(call.form, &mut steps);
    steps
}

/// The JSON-array stream ends with `]` (a broken one does not).
fn close_array(form: Form, steps: &mut Vec<Step>, whole: bool) {
    if form != Form::JsonArray || !whole {
        return;
    }
    if let Some(at) = steps.iter().rposition(|s| *s == Step::End) {
        steps.insert(at, Step::Data(Bytes::from_static(b"]")));
    }
}

/// Gemini's stream headers in place of the script's.
fn set_head(form: Form, steps: &mut [Step]) {
    for s in steps.iter_mut() {
        if let Step::Head { headers, .. } = s {
            let kind = match form {
                Form::Sse => "text/event-stream",
                _ => "application/json; charset=UTF-8",
            };
            *headers = vec![
                ("content-type", kind.to_owned()),
                ("x-content-type-options", "nosniff".to_owned()),
            ];
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;

    #[test]
    fn signatures_cover_name_and_args_in_any_key_order() {
        let a = thought_signature("f", &json!({"b": 1, "a": {"y": 2, "x": [1, "z"]}}));
        let b = thought_signature("f", &json!({"a": {"x": [1, "z"], "y": 2}, "b": 1}));
        assert_eq!(a, b);
        assert_ne!(
            a,
            thought_signature("g", &json!({"b": 1, "a": {"y": 2, "x": [1, "z"]}}))
        );
        assert_ne!(
            a,
            thought_signature("f", &json!({"b": 2, "a": {"y": 2, "x": [1, "z"]}}))
        );
    }

    #[test]
    fn directives() {
        let d =
            GeminiDirectives::parse("hi mock:finish=safety mock:cached=7 (mock:prompt_blocked).");
        assert_eq!(d.finish, Some("SAFETY"));
        assert_eq!(d.cached, Some(7));
        assert_eq!(d.blocked, Some("SAFETY"));
        let d = GeminiDirectives::parse("mock:finish=nope mock:prompt_blocked=OTHER");
        assert_eq!(d.finish, None);
        assert_eq!(d.blocked, Some("OTHER"));
        assert_eq!(status_name(429), "RESOURCE_EXHAUSTED");
        assert_eq!(status_name(418), "FAILED_PRECONDITION");
    }
}
