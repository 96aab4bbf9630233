//! Per-target faults: a table from upstream model name to a [`Fault`], and the pure planning
//! that turns a fault into the [`Step`]s the executor performs. No IO here.
//!
//! A route's targets all receive the same client prompt, so prompt directives cannot fail one
//! target and not another; the table can. It is keyed by the top-level `model` of the body the
//! mock receives (`"*"` for every model without its own entry) and set at runtime with
//! `POST /mock/faults` or at start with `--faults`. Fault strings:
//!
//! | fault | streaming | non-streaming |
//! |---|---|---|
//! | `none` | normal answer (prompt directives apply) | same |
//! | `reset` | RST before any byte | same |
//! | `stall` | read the request, send nothing, hold the connection | same |
//! | `garbage` | [`GARBAGE`] (not an HTTP response head), then close | same |
//! | `status=CODE[,retry_after=S][,retry_after_ms=MS]` | the API's error reply with CODE (400..=599) | same |
//! | `reset_midstream` | head, preamble, one inter-token delay, first content event, RST | head (Content-Length), half the body, RST |
//! | `reset_before_content` | head, preamble, RST | as `reset_midstream` |
//! | `slow_first_token=MS` | head, preamble, MS pause, then the normal answer | MS pause, then the normal answer |
//! | `error_event` | head, preamble, the provider's in-stream error, end of body | 529 (Anthropic) / 503 (OpenAI) |
//! | `echo_key` | 401 whose message quotes the presented API key masked ([`mask_key`]) and whole; headers `x-mock-key` (whole) and `x-ratelimit-key` (masked, a header kept across formats) | same |
//!
//! The preamble is everything a real stream sends before its first content event: OpenAI's
//! role chunk (`"role":"assistant","content":""`); Anthropic's `message_start`,
//! `content_block_start` and `ping` (no `content_block_delta`).
//!
//! A `status` fault with a retry suffix sets exactly the retry headers it names (`retry-after`,
//! `retry-after-ms`); without one, 429 carries `retry-after: 1` as `mock:status=429` does.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use super::script::{self, Api, Defaults, Step, MAX_DIRECTIVE_DELAY_MS};

/// Table key that applies to every model without its own entry.
pub const WILDCARD: &str = "*";
/// What `garbage` writes: an SSH banner where an HTTP status line should be.
pub const GARBAGE: &[u8] = b"SSH-2.0-ringway_mock garbage\r\n\r\n";
/// Shortest pause between a stream's preamble and its content in `reset_midstream`, so the two
/// reach the client as separate reads even when the mock runs without delays.
pub const MIN_GAP: Duration = Duration::from_millis(10);
/// Pause between the last bytes written and a mid-body RST, so those bytes surely left first.
pub const RESET_GRACE: Duration = Duration::from_millis(10);

/// One target's fault.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Fault {
    /// The normal answer.
    #[default]
    None,
    /// RST before any response byte.
    Reset,
    /// Read the request, then send nothing and hold the connection.
    Stall,
    /// Bytes that are not an HTTP response head, then close.
    Garbage,
    /// The API's own error reply with this status.
    Status {
        /// HTTP status, 400..=599.
        code: u16,
        /// `retry-after` seconds.
        retry_after: Option<u64>,
        /// `retry-after-ms` milliseconds.
        retry_after_ms: Option<u64>,
    },
    /// Some content, then RST.
    ResetMidstream,
    /// Stream: head and preamble, then RST. Non-streaming: as [`Fault::ResetMidstream`].
    ResetBeforeContent,
    /// Wait this long before the first content event (stream) or the head (non-streaming).
    SlowFirstToken(Duration),
    /// Stream: the provider's in-stream error after the preamble. Non-streaming: 529 / 503.
    ErrorEvent,
    /// A 401 that echoes the API key the request presented (a provider that quotes keys).
    EchoKey,
}

/// Digits only (`u64::from_str` also takes a leading `+`).
fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn slow_error(ms: &str) -> String {
    format!("slow_first_token needs milliseconds 0..={MAX_DIRECTIVE_DELAY_MS}, not {ms:?}")
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut parts = text.split(',').map(str::trim);
        let first = parts.next().unwrap_or_default();
        let (name, value) = match first.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (first, None),
        };
        let fault = match (name, value) {
            ("none", None) => Self::None,
            ("reset", None) => Self::Reset,
            ("stall", None) => Self::Stall,
            ("garbage", None) => Self::Garbage,
            ("reset_midstream", None) => Self::ResetMidstream,
            ("reset_before_content", None) => Self::ResetBeforeContent,
            ("error_event", None) => Self::ErrorEvent,
            ("echo_key", None) => Self::EchoKey,
            ("slow_first_token", Some(ms)) => match number(ms) {
                Some(ms) if ms <= MAX_DIRECTIVE_DELAY_MS => {
                    Self::SlowFirstToken(Duration::from_millis(ms))
                }
                _ => return Err(slow_error(ms)),
            },
            ("status", Some(code)) => {
                let code = match number(code).and_then(|c| u16::try_from(c).ok()) {
                    Some(c) if (400..=599).contains(&c) => c,
                    _ => return Err(format!("status needs a code 400..=599, not {code:?}")),
                };
                let (mut retry_after, mut retry_after_ms) = (None, None);
                for part in parts.by_ref() {
                    let (key, value) = part.split_once('=').unwrap_or((part, ""));
                    let slot = match key {
                        "retry_after" => &mut retry_after,
                        "retry_after_ms" => &mut retry_after_ms,
                        _ => return Err(format!("unknown status option {part:?}")),
                    };
                    if slot.is_some() {
                        return Err(format!("{key} given twice"));
                    }
                    *slot = Some(
                        number(value)
                            .ok_or_else(|| format!("{key} needs a number, not {value:?}"))?,
                    );
                }
                Self::Status {
                    code,
                    retry_after,
                    retry_after_ms,
                }
            }
            _ => return Err(format!("unknown fault {text:?}")),
        };
        match parts.next() {
            None => Ok(fault),
            Some(extra) => Err(format!("unexpected {extra:?} after {name}")),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::Reset => f.write_str("reset"),
            Self::Stall => f.write_str("stall"),
            Self::Garbage => f.write_str("garbage"),
            Self::Status {
                code,
                retry_after,
                retry_after_ms,
            } => {
                write!(f, "status={code}")?;
                if let Some(s) = retry_after {
                    write!(f, ",retry_after={s}")?;
                }
                if let Some(ms) = retry_after_ms {
                    write!(f, ",retry_after_ms={ms}")?;
                }
                Ok(())
            }
            Self::ResetMidstream => f.write_str("reset_midstream"),
            Self::ResetBeforeContent => f.write_str("reset_before_content"),
            Self::SlowFirstToken(d) => write!(f, "slow_first_token={}", d.as_millis()),
            Self::ErrorEvent => f.write_str("error_event"),
            Self::EchoKey => f.write_str("echo_key"),
        }
    }
}

/// Why a fault table was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableError {
    /// The bad entry's key; `None` when the body as a whole is wrong.
    pub entry: Option<String>,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.entry {
            Some(key) => write!(f, "fault table entry {key:?}: {}", self.message),
            None => write!(f, "fault table: {}", self.message),
        }
    }
}

impl TableError {
    /// The 400 body: `{"error":{"type":"invalid_request_error","message":…,"entry":…}}`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "error": {
                "type": "invalid_request_error",
                "message": self.to_string(),
                "entry": self.entry,
            }
        })
    }
}

/// Model name → fault.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultTable {
    entries: BTreeMap<String, Fault>,
}

impl FaultTable {
    /// Parses `{"<model>": "<fault>", …}`; the first bad entry (in key order) is the error.
    pub fn from_json(body: &[u8]) -> Result<Self, TableError> {
        let whole = |message: &str| TableError {
            entry: None,
            message: message.to_owned(),
        };
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| whole(&format!("the body is not JSON ({e})")))?;
        let Value::Object(map) = value else {
            return Err(whole(
                "the body must be a JSON object of model name to fault string",
            ));
        };
        let mut entries = BTreeMap::new();
        for (key, value) in map {
            let fault = match &value {
                Value::String(text) => text.parse::<Fault>(),
                other => Err(format!("the fault must be a string, not {other}")),
            };
            match fault {
                Ok(fault) => {
                    entries.insert(key, fault);
                }
                Err(message) => {
                    return Err(TableError {
                        entry: Some(key),
                        message,
                    })
                }
            }
        }
        Ok(Self { entries })
    }

    /// The fault for a request with this top-level `model` (none without a model).
    pub fn lookup(&self, model: Option<&str>) -> &Fault {
        const NONE: &Fault = &Fault::None;
        let Some(model) = model else {
            return NONE;
        };
        self.entries
            .get(model)
            .or_else(|| self.entries.get(WILDCARD))
            .unwrap_or(NONE)
    }

    /// The table as `GET /mock/faults` shows it: `{"<model>": "<fault>"}`, canonical strings.
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.entries
                .iter()
                .map(|(k, f)| (k.clone(), Value::String(f.to_string())))
                .collect(),
        )
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The top-level `model` of a JSON body, when it is a string.
pub fn model_of(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Top {
        #[serde(default)]
        model: Option<Value>,
    }
    match serde_json::from_slice::<Top>(body).ok()?.model? {
        Value::String(model) => Some(model),
        _ => None,
    }
}

/// What a plan answers: the status of its head, or the fault that left none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    /// A response head with this status.
    Status(u16),
    /// RST before any head.
    Reset,
    /// Nothing, held open.
    Stall,
    /// Bytes that are not a response head.
    Garbage,
    /// Closed before any head.
    Closed,
}

impl Answered {
    /// `GET /mock/requests`'s `answered`: the status as a number, else the fault name.
    pub fn to_json(self) -> Value {
        match self {
            Self::Status(s) => Value::from(s),
            other => Value::from(other.key()),
        }
    }

    /// `GET /mock/counts`'s key: the status or the fault name, as text.
    pub fn key(self) -> String {
        match self {
            Self::Status(s) => s.to_string(),
            Self::Reset => "reset".to_owned(),
            Self::Stall => "stall".to_owned(),
            Self::Garbage => "garbage".to_owned(),
            Self::Closed => "closed".to_owned(),
        }
    }
}

/// What `steps` answer, read off the first step that writes or ends anything.
pub fn answered(steps: &[Step]) -> Answered {
    for step in steps {
        match step {
            Step::Head { status, .. } => return Answered::Status(*status),
            Step::Reset => return Answered::Reset,
            Step::Stall => return Answered::Stall,
            Step::Raw(_) => return Answered::Garbage,
            Step::Close | Step::Data(_) | Step::End => return Answered::Closed,
            Step::Sleep(_) => {}
        }
    }
    Answered::Closed
}

/// Plans the answer to one request under `fault` (`Fault::None`: exactly [`script::plan`]).
pub fn plan(fault: &Fault, api: Api, body: &[u8], defaults: &Defaults) -> Vec<Step> {
    match fault {
        Fault::None => script::plan(api, body, defaults),
        Fault::Reset => vec![Step::Reset],
        Fault::Stall => vec![Step::Stall],
        Fault::Garbage => vec![Step::Raw(Bytes::from_static(GARBAGE)), Step::Close],
        Fault::Status {
            code,
            retry_after,
            retry_after_ms,
        } => {
            let mut steps = script::status_reply(api, body, *code);
            if retry_after.is_some() || retry_after_ms.is_some() {
                for step in &mut steps {
                    if let Step::Head { headers, .. } = step {
                        headers.retain(|(n, _)| *n != "retry-after");
                        if let Some(s) = retry_after {
                            headers.push(("retry-after", s.to_string()));
                        }
                        if let Some(ms) = retry_after_ms {
                            headers.push(("retry-after-ms", ms.to_string()));
                        }
                    }
                }
            }
            steps
        }
        Fault::ResetMidstream | Fault::ResetBeforeContent => {
            let normal = script::plan(api, body, defaults);
            match cut_stream(api, normal) {
                Ok(cut) => {
                    let mut steps = cut.opening();
                    if *fault == Fault::ResetMidstream {
                        if let Some(first) = cut.first_content() {
                            steps.push(Step::Sleep(defaults.inter_token.max(MIN_GAP)));
                            steps.push(Step::Data(first));
                        }
                    }
                    steps.push(Step::Sleep(RESET_GRACE));
                    steps.push(Step::Reset);
                    steps
                }
                Err(normal) => cut_fixed(normal),
            }
        }
        Fault::SlowFirstToken(wait) => {
            let normal = script::plan(api, body, defaults);
            match cut_stream(api, normal) {
                Ok(cut) => {
                    let mut steps = cut.opening();
                    if !wait.is_zero() {
                        steps.push(Step::Sleep(*wait));
                    }
                    steps.extend(
                        cut.rest
                            .into_iter()
                            .skip_while(|s| matches!(s, Step::Sleep(_))),
                    );
                    steps
                }
                Err(mut normal) => {
                    if !wait.is_zero() {
                        normal.insert(0, Step::Sleep(*wait));
                    }
                    normal
                }
            }
        }
        // The executor answers it with the presented key ([`echo_key_reply`]); planned
        // without one, it echoes nothing.
        Fault::EchoKey => echo_key_reply(api, body, ""),
        Fault::ErrorEvent => {
            let normal = script::plan(api, body, defaults);
            match cut_stream(api, normal) {
                Ok(cut) => {
                    let mut steps = cut.opening();
                    steps.push(Step::Data(script::stream_error_event(api, body)));
                    steps.push(Step::End);
                    steps
                }
                Err(_) => {
                    let status = if api == Api::OpenAiChat { 503 } else { 529 };
                    script::status_reply(api, body, status)
                }
            }
        }
    }
}

/// `key` as a provider masks it when quoting it: its first 5 and last 4 characters around
/// stars (all stars when it is shorter than 12).
pub fn mask_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() < 12 {
        return "*".repeat(chars.len().max(3));
    }
    let head: String = chars.iter().take(5).collect();
    let tail: String = chars.iter().skip(chars.len() - 4).collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 9))
}

/// The `echo_key` answer: the API's 401, its message quoting `key` (the presented API key)
/// masked and whole, and two headers echoing it.
pub fn echo_key_reply(api: Api, body: &[u8], key: &str) -> Vec<Step> {
    let masked = mask_key(key);
    let mut steps = script::status_reply(api, body, 401);
    let mut len = None;
    for step in &mut steps {
        if let Step::Data(data) = step {
            let Ok(mut v) = serde_json::from_slice::<Value>(data) else {
                continue;
            };
            if let Some(m) = v.pointer_mut("/error/message") {
                *m = Value::from(format!(
                    "Incorrect API key provided: {masked}. The key you sent was {key}."
                ));
            }
            let text = serde_json::to_vec(&v).unwrap_or_default();
            len = Some(text.len());
            *data = Bytes::from(text);
        }
    }
    for step in &mut steps {
        if let Step::Head {
            headers,
            content_length,
            ..
        } = step
        {
            headers.push(("x-mock-key", key.to_owned()));
            headers.push(("x-ratelimit-key", masked.clone()));
            if len.is_some() {
                *content_length = len;
            }
        }
    }
    steps
}

/// A streaming plan cut after its preamble.
struct StreamCut {
    /// Everything up to and including the (chunked) head.
    head: Vec<Step>,
    /// The framing events before the first content event.
    preamble: Bytes,
    /// The remaining steps, in order.
    rest: Vec<Step>,
}

impl StreamCut {
    /// The head and the preamble.
    fn opening(&self) -> Vec<Step> {
        let mut steps = self.head.clone();
        if !self.preamble.is_empty() {
            steps.push(Step::Data(self.preamble.clone()));
        }
        steps
    }

    /// The first body write after the preamble (the first content event).
    fn first_content(&self) -> Option<Bytes> {
        self.rest
            .iter()
            .find(|s| !matches!(s, Step::Sleep(_)))
            .and_then(|s| match s {
                Step::Data(d) => Some(d.clone()),
                _ => None,
            })
    }
}

/// Splits a streaming plan after its preamble; a plan that does not stream (a non-streaming
/// request, an error reply, a bare reset) comes back unchanged as the error.
fn cut_stream(api: Api, steps: Vec<Step>) -> Result<StreamCut, Vec<Step>> {
    let Some(at) = steps.iter().position(|s| {
        matches!(
            s,
            Step::Head {
                content_length: None,
                ..
            }
        )
    }) else {
        return Err(steps);
    };
    let mut head = steps;
    let mut rest = head.split_off(at + 1);
    let mut preamble = Bytes::new();
    if let Some(Step::Data(first)) = rest.first() {
        let first = first.clone();
        let events = sse_events(&first);
        let keep = events
            .iter()
            .enumerate()
            .take_while(|(i, e)| !is_content(api, *i, e))
            .map(|(_, e)| e.len())
            .sum::<usize>();
        preamble = first.slice(..keep);
        let remainder = first.slice(keep..);
        if remainder.is_empty() {
            rest.remove(0);
        } else if let Some(slot) = rest.first_mut() {
            *slot = Step::Data(remainder);
        }
    }
    Ok(StreamCut {
        head,
        preamble,
        rest,
    })
}

/// Whether the `index`-th event of a stream's first write is content rather than framing.
fn is_content(api: Api, index: usize, event: &[u8]) -> bool {
    match api {
        // The role chunk is the only framing before OpenAI content.
        Api::OpenAiChat => index > 0,
        _ => event.starts_with(b"event: content_block_delta"),
    }
}

/// SSE events of one write, each with its closing blank line (a tail without one is kept).
fn sse_events(data: &Bytes) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut start = 0;
    while let Some(at) = data
        .get(start..)
        .and_then(|tail| tail.windows(2).position(|w| w == b"\n\n"))
    {
        let end = start + at + 2;
        out.push(data.slice(start..end));
        start = end;
    }
    if start < data.len() {
        out.push(data.slice(start..));
    }
    out
}

/// A Content-Length reply cut in half and reset; a plan without such a head is kept as is.
fn cut_fixed(steps: Vec<Step>) -> Vec<Step> {
    let Some(at) = steps.iter().position(|s| {
        matches!(
            s,
            Step::Head {
                content_length: Some(_),
                ..
            }
        )
    }) else {
        return steps;
    };
    let mut out = steps;
    let rest = out.split_off(at + 1);
    let body = rest.into_iter().find_map(|s| match s {
        Step::Data(d) => Some(d),
        _ => None,
    });
    if let Some(body) = body {
        let half = body.slice(..body.len() / 2);
        if !half.is_empty() {
            out.push(Step::Data(half));
        }
    }
    out.push(Step::Sleep(RESET_GRACE));
    out.push(Step::Reset);
    out
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
    use serde_json::json;

    const DEFAULTS: Defaults = Defaults {
        ttft: Duration::from_millis(100),
        inter_token: Duration::from_millis(30),
    };
    const APIS: [Api; 2] = [Api::OpenAiChat, Api::AnthropicMessages];

    fn request(api: Api, stream: bool) -> Vec<u8> {
        let mut body = json!({
            "model": "m1",
            "stream": stream,
            "messages": [{"role": "user", "content": "hello there mock:tokens=4"}],
        });
        if api != Api::OpenAiChat {
            body["max_tokens"] = json!(64);
        }
        body.to_string().into_bytes()
    }

    fn run(fault: &str, api: Api, stream: bool) -> Vec<Step> {
        plan(
            &fault.parse().unwrap(),
            api,
            &request(api, stream),
            &DEFAULTS,
        )
    }

    fn normal(api: Api, stream: bool) -> Vec<Step> {
        script::plan(api, &request(api, stream), &DEFAULTS)
    }

    fn head_of(steps: &[Step]) -> (u16, Vec<(&'static str, String)>, Option<usize>) {
        steps
            .iter()
            .find_map(|s| match s {
                Step::Head {
                    status,
                    headers,
                    content_length,
                } => Some((*status, headers.clone(), *content_length)),
                _ => None,
            })
            .expect("a head")
    }

    fn header<'h>(headers: &'h [(&'static str, String)], name: &str) -> Option<&'h str> {
        headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    fn data(step: &Step) -> String {
        match step {
            Step::Data(d) => String::from_utf8(d.to_vec()).unwrap(),
            other => panic!("expected Data, got {other:?}"),
        }
    }

    fn body(steps: &[Step]) -> String {
        steps
            .iter()
            .filter(|s| matches!(s, Step::Data(_)))
            .map(data)
            .collect()
    }

    /// Event names (Anthropic) or `chunk` / `[DONE]` (OpenAI) of an SSE text.
    fn names(text: &str) -> Vec<String> {
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| match e.strip_prefix("event: ") {
                Some(rest) => rest.lines().next().unwrap().to_owned(),
                None if e == "data: [DONE]" => "[DONE]".to_owned(),
                None => {
                    let v: Value = serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap();
                    if v.get("error").is_some() {
                        "error".to_owned()
                    } else {
                        "chunk".to_owned()
                    }
                }
            })
            .collect()
    }

    /// The preamble a stream of `api` opens with.
    fn assert_preamble(api: Api, text: &str) {
        match api {
            Api::OpenAiChat => {
                assert_eq!(names(text), ["chunk"]);
                let v: Value =
                    serde_json::from_str(text.trim().strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(v["choices"][0]["delta"]["role"], "assistant");
                assert_eq!(v["choices"][0]["delta"]["content"], "");
            }
            _ => assert_eq!(
                names(text),
                ["message_start", "content_block_start", "ping"]
            ),
        }
    }

    fn assert_first_content(api: Api, text: &str) {
        match api {
            Api::OpenAiChat => {
                assert_eq!(names(text), ["chunk"]);
                let v: Value =
                    serde_json::from_str(text.trim().strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(v["choices"][0]["delta"]["content"], "w1");
            }
            _ => {
                assert_eq!(names(text), ["content_block_delta"]);
                assert!(text.contains(r#""text":"w1""#), "{text}");
            }
        }
    }

    // ------------------------------------------------------------------ parsing

    #[test]
    fn parses_every_fault() {
        let cases = [
            ("none", Fault::None),
            ("reset", Fault::Reset),
            ("stall", Fault::Stall),
            ("garbage", Fault::Garbage),
            ("reset_midstream", Fault::ResetMidstream),
            ("reset_before_content", Fault::ResetBeforeContent),
            ("error_event", Fault::ErrorEvent),
            ("echo_key", Fault::EchoKey),
            (
                "slow_first_token=1500",
                Fault::SlowFirstToken(Duration::from_millis(1500)),
            ),
            ("slow_first_token=0", Fault::SlowFirstToken(Duration::ZERO)),
            (
                "status=503",
                Fault::Status {
                    code: 503,
                    retry_after: None,
                    retry_after_ms: None,
                },
            ),
            (
                "status=429,retry_after=2",
                Fault::Status {
                    code: 429,
                    retry_after: Some(2),
                    retry_after_ms: None,
                },
            ),
            (
                "status=429,retry_after_ms=300",
                Fault::Status {
                    code: 429,
                    retry_after: None,
                    retry_after_ms: Some(300),
                },
            ),
            (
                "status=400,retry_after_ms=5,retry_after=0",
                Fault::Status {
                    code: 400,
                    retry_after: Some(0),
                    retry_after_ms: Some(5),
                },
            ),
        ];
        for (text, fault) in cases {
            assert_eq!(text.parse::<Fault>().unwrap(), fault, "{text}");
            // The canonical text parses back to the same fault.
            assert_eq!(fault.to_string().parse::<Fault>().unwrap(), fault);
        }
        assert_eq!(
            "status=429,retry_after=2"
                .parse::<Fault>()
                .unwrap()
                .to_string(),
            "status=429,retry_after=2"
        );
        assert_eq!(
            " status=599 , retry_after=1 ".parse::<Fault>().unwrap(),
            Fault::Status {
                code: 599,
                retry_after: Some(1),
                retry_after_ms: None
            }
        );
        assert_eq!(Fault::default(), Fault::None);
    }

    #[test]
    fn echo_key_quotes_the_presented_key() {
        let key = "sk-test-0123456789abcdef";
        assert_eq!(mask_key(key), "sk-te***************cdef");
        assert_eq!(mask_key("short"), "*****");
        for api in [Api::OpenAiChat, Api::AnthropicMessages] {
            let steps = echo_key_reply(api, b"{}", key);
            let Some(Step::Head {
                status,
                headers,
                content_length,
            }) = steps.first()
            else {
                panic!("{steps:?}");
            };
            assert_eq!(*status, 401);
            assert!(headers.contains(&("x-mock-key", key.to_owned())));
            assert!(headers.contains(&("x-ratelimit-key", mask_key(key))));
            let Some(Step::Data(body)) = steps.get(1) else {
                panic!("{steps:?}");
            };
            assert_eq!(*content_length, Some(body.len()));
            let v: Value = serde_json::from_slice(body).unwrap();
            let message = v["error"]["message"].as_str().unwrap();
            assert!(
                message.contains(key) && message.contains(&mask_key(key)),
                "{v}"
            );
        }
    }

    #[test]
    fn refuses_bad_faults() {
        for bad in [
            "",
            "bogus",
            "RESET",
            "reset=1",
            "reset,retry_after=1",
            "none,x",
            "stall=",
            "status",
            "status=",
            "status=399",
            "status=600",
            "status=200",
            "status=abc",
            "status=+429",
            "status=70000",
            "status=429,",
            "status=429,retry_after",
            "status=429,retry_after=",
            "status=429,retry_after=x",
            "status=429,retry_after=-1",
            "status=429,foo=1",
            "status=429,retry_after=1,retry_after=2",
            "slow_first_token",
            "slow_first_token=",
            "slow_first_token=-5",
            "slow_first_token=1.5",
            "slow_first_token=600001",
            "mock:reset",
        ] {
            let err = bad.parse::<Fault>().unwrap_err();
            assert!(!err.is_empty(), "{bad:?}");
        }
    }

    #[test]
    fn tables() {
        let t = FaultTable::from_json(
            br#"{"m1":"reset","*":"status=503","m2":"none","m3":"status=429,retry_after=2"}"#,
        )
        .unwrap();
        assert_eq!(t.lookup(Some("m1")), &Fault::Reset);
        assert_eq!(t.lookup(Some("m2")), &Fault::None);
        assert_eq!(t.lookup(Some("other")).to_string(), "status=503");
        assert_eq!(t.lookup(None), &Fault::None);
        assert_eq!(
            t.to_json(),
            json!({"*":"status=503","m1":"reset","m2":"none","m3":"status=429,retry_after=2"})
        );
        let empty = FaultTable::from_json(b"{}").unwrap();
        assert!(empty.is_empty());
        assert_eq!(empty.lookup(Some("m1")), &Fault::None);
        assert_eq!(empty.to_json(), json!({}));

        let err = FaultTable::from_json(br#"{"a":"reset","b":"explode"}"#).unwrap_err();
        assert_eq!(err.entry.as_deref(), Some("b"));
        assert!(err.to_string().contains("\"b\""), "{err}");
        assert!(err.to_string().contains("explode"), "{err}");
        assert_eq!(err.to_json()["error"]["entry"], "b");
        assert_eq!(err.to_json()["error"]["type"], "invalid_request_error");
        let err = FaultTable::from_json(br#"{"a":7}"#).unwrap_err();
        assert_eq!(err.entry.as_deref(), Some("a"));
        for whole in [&b"[]"[..], b"\"reset\"", b"{", b"", b"null"] {
            let err = FaultTable::from_json(whole).unwrap_err();
            assert_eq!(err.entry, None);
            assert_eq!(err.to_json()["error"]["entry"], Value::Null);
        }
    }

    #[test]
    fn models_and_answers() {
        assert_eq!(model_of(br#"{"a":1,"model":"x"}"#).as_deref(), Some("x"));
        assert_eq!(model_of(br#"{"model":7}"#), None);
        assert_eq!(model_of(br#"{"model":null}"#), None);
        assert_eq!(model_of(br#"{"messages":[]}"#), None);
        assert_eq!(model_of(b"[1]"), None);
        assert_eq!(model_of(b"not json"), None);
        assert_eq!(model_of(b""), None);

        assert_eq!(
            answered(&run("none", Api::OpenAiChat, true)),
            Answered::Status(200)
        );
        assert_eq!(
            answered(&run("reset", Api::OpenAiChat, true)),
            Answered::Reset
        );
        assert_eq!(
            answered(&run("stall", Api::OpenAiChat, true)),
            Answered::Stall
        );
        assert_eq!(
            answered(&run("garbage", Api::OpenAiChat, true)),
            Answered::Garbage
        );
        assert_eq!(
            answered(&run("status=418", Api::AnthropicMessages, false)),
            Answered::Status(418)
        );
        assert_eq!(
            answered(&run("slow_first_token=5", Api::AnthropicMessages, false)),
            Answered::Status(200)
        );
        assert_eq!(answered(&[Step::Sleep(Duration::ZERO)]), Answered::Closed);
        assert_eq!(Answered::Status(429).to_json(), json!(429));
        assert_eq!(Answered::Reset.to_json(), json!("reset"));
        assert_eq!(Answered::Status(429).key(), "429");
        assert_eq!(Answered::Garbage.key(), "garbage");
    }

    // ------------------------------------------------------------------ plans

    #[test]
    fn none_is_the_normal_plan() {
        for api in APIS {
            for stream in [true, false] {
                assert_eq!(run("none", api, stream), normal(api, stream));
            }
        }
    }

    #[test]
    fn connection_faults_ignore_the_request() {
        for api in [
            Api::OpenAiChat,
            Api::AnthropicMessages,
            Api::AnthropicCountTokens,
        ] {
            for stream in [true, false] {
                assert_eq!(run("reset", api, stream), [Step::Reset]);
                assert_eq!(run("stall", api, stream), [Step::Stall]);
                let garbage = run("garbage", api, stream);
                assert_eq!(
                    garbage,
                    [Step::Raw(Bytes::from_static(GARBAGE)), Step::Close]
                );
                assert!(!GARBAGE.starts_with(b"HTTP/"));
            }
        }
    }

    #[test]
    fn status_faults() {
        for api in [
            Api::OpenAiChat,
            Api::AnthropicMessages,
            Api::AnthropicCountTokens,
        ] {
            for stream in [true, false] {
                let steps = run("status=429,retry_after=2", api, stream);
                let (status, headers, len) = head_of(&steps);
                assert_eq!(status, 429);
                assert_eq!(header(&headers, "retry-after"), Some("2"));
                assert_eq!(header(&headers, "retry-after-ms"), None);
                let text = body(&steps);
                assert_eq!(len, Some(text.len()));
                assert_eq!(steps.last(), Some(&Step::End));
                let v: Value = serde_json::from_str(&text).unwrap();
                if api == Api::OpenAiChat {
                    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
                } else {
                    assert_eq!(v["type"], "error");
                    assert_eq!(v["error"]["type"], "rate_limit_error");
                }

                let steps = run("status=429,retry_after_ms=300", api, stream);
                let (_, headers, _) = head_of(&steps);
                assert_eq!(header(&headers, "retry-after-ms"), Some("300"));
                assert_eq!(header(&headers, "retry-after"), None);

                let steps = run("status=429", api, stream);
                assert_eq!(header(&head_of(&steps).1, "retry-after"), Some("1"));

                let steps = run("status=503,retry_after=1,retry_after_ms=1500", api, stream);
                let (status, headers, _) = head_of(&steps);
                assert_eq!(status, 503);
                assert_eq!(header(&headers, "retry-after"), Some("1"));
                assert_eq!(header(&headers, "retry-after-ms"), Some("1500"));
            }
        }
    }

    #[test]
    fn reset_midstream_streaming() {
        for api in APIS {
            let steps = run("reset_midstream", api, true);
            assert_eq!(steps.len(), 6, "{steps:?}");
            let (status, headers, len) = head_of(&steps[..1]);
            assert_eq!((status, len), (200, None));
            assert!(header(&headers, "content-type")
                .unwrap()
                .starts_with("text/event-stream"));
            assert_preamble(api, &data(&steps[1]));
            assert_eq!(steps[2], Step::Sleep(DEFAULTS.inter_token));
            assert_first_content(api, &data(&steps[3]));
            assert_eq!(steps[4], Step::Sleep(RESET_GRACE));
            assert_eq!(steps[5], Step::Reset);
            // What was sent is the start of the normal stream.
            assert!(body(&normal(api, true)).starts_with(&body(&steps)));
        }
        // Without delays the gap still separates preamble and content.
        let api = Api::AnthropicMessages;
        let steps = plan(
            &Fault::ResetMidstream,
            api,
            &request(api, true),
            &Defaults::default(),
        );
        assert_eq!(steps[2], Step::Sleep(MIN_GAP));
    }

    #[test]
    fn reset_before_content_streaming() {
        for api in APIS {
            let steps = run("reset_before_content", api, true);
            assert_eq!(steps.len(), 4, "{steps:?}");
            assert_eq!(head_of(&steps[..1]).0, 200);
            assert_preamble(api, &data(&steps[1]));
            assert_eq!(steps[2], Step::Sleep(RESET_GRACE));
            assert_eq!(steps[3], Step::Reset);
        }
    }

    #[test]
    fn resets_without_a_stream_cut_the_body() {
        for fault in ["reset_midstream", "reset_before_content"] {
            for api in [
                Api::OpenAiChat,
                Api::AnthropicMessages,
                Api::AnthropicCountTokens,
            ] {
                let full = normal(api, false);
                let full_body = body(&full);
                let steps = run(fault, api, false);
                let (status, _, len) = head_of(&steps);
                assert_eq!((status, len), (200, Some(full_body.len())));
                let sent = body(&steps);
                assert_eq!(sent.len(), full_body.len() / 2);
                assert!(full_body.starts_with(&sent));
                assert_eq!(
                    &steps[steps.len() - 2..],
                    [Step::Sleep(RESET_GRACE), Step::Reset]
                );
                // The normal reply's generation time still comes first.
                assert_eq!(
                    steps.first().filter(|s| matches!(s, Step::Sleep(_))),
                    full.first().filter(|s| matches!(s, Step::Sleep(_)))
                );
            }
        }
    }

    #[test]
    fn slow_first_token() {
        let wait = Duration::from_millis(1500);
        for api in APIS {
            let full = normal(api, true);
            let steps = run("slow_first_token=1500", api, true);
            assert_eq!(head_of(&steps[..1]).0, 200);
            assert_preamble(api, &data(&steps[1]));
            assert_eq!(steps[2], Step::Sleep(wait));
            assert_first_content(api, &data(&steps[3]));
            // The same bytes as the normal answer, only the first pause differs.
            assert_eq!(body(&steps), body(&full));
            assert_eq!(steps.last(), Some(&Step::End));
            let sleeps = |s: &[Step]| {
                s.iter()
                    .filter_map(|s| match s {
                        Step::Sleep(d) => Some(*d),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
            };
            let mut expected = sleeps(&full);
            expected[0] = wait;
            assert_eq!(sleeps(&steps), expected);

            let full = normal(api, false);
            let steps = run("slow_first_token=1500", api, false);
            assert_eq!(steps[0], Step::Sleep(wait));
            assert_eq!(steps[1..], full[..]);
            assert_eq!(run("slow_first_token=0", api, false), full);
        }
    }

    #[test]
    fn error_event() {
        for api in APIS {
            let steps = run("error_event", api, true);
            assert_eq!(steps.len(), 4, "{steps:?}");
            assert_eq!(head_of(&steps[..1]).0, 200);
            assert_preamble(api, &data(&steps[1]));
            let error = data(&steps[2]);
            assert_eq!(names(&error), ["error"]);
            if api == Api::AnthropicMessages {
                assert!(error.starts_with("event: error\n"), "{error}");
                assert!(error.contains("overloaded_error"), "{error}");
            } else {
                assert!(error.starts_with("data: {\"error\":{"), "{error}");
            }
            assert_eq!(steps[3], Step::End);

            let steps = run("error_event", api, false);
            let (status, _, len) = head_of(&steps);
            let expected = if api == Api::OpenAiChat { 503 } else { 529 };
            assert_eq!(status, expected);
            assert_eq!(len, Some(body(&steps).len()));
        }
        let steps = run("error_event", Api::AnthropicCountTokens, false);
        assert_eq!(head_of(&steps).0, 529);
    }

    #[test]
    fn anthropic_tool_stream_preamble_stops_before_the_first_delta() {
        let body_json = json!({
            "model": "m1",
            "max_tokens": 64,
            "stream": true,
            "tools": [{"name": "get_weather", "input_schema": {"type": "object",
                "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
            "messages": [{"role": "user", "content": "weather?"}],
        })
        .to_string();
        let steps = plan(
            &Fault::ResetBeforeContent,
            Api::AnthropicMessages,
            body_json.as_bytes(),
            &DEFAULTS,
        );
        let text = data(&steps[1]);
        assert_eq!(
            names(&text),
            ["message_start", "content_block_start", "ping"]
        );
        assert!(text.contains("tool_use"));
        assert_eq!(steps.last(), Some(&Step::Reset));
        let steps = plan(
            &Fault::ResetMidstream,
            Api::AnthropicMessages,
            body_json.as_bytes(),
            &DEFAULTS,
        );
        assert_eq!(names(&data(&steps[3])), ["content_block_delta"]);
    }

    #[test]
    fn a_bad_request_is_not_a_stream() {
        // A streaming request the provider refuses (400) is cut as a fixed reply.
        let bad = br#"{"model":"m1","stream":true,"messages":[]}"#;
        let steps = plan(&Fault::ResetBeforeContent, Api::OpenAiChat, bad, &DEFAULTS);
        assert_eq!(head_of(&steps).0, 400);
        assert_eq!(steps.last(), Some(&Step::Reset));
        let steps = plan(&Fault::ErrorEvent, Api::OpenAiChat, bad, &DEFAULTS);
        assert_eq!(head_of(&steps).0, 503);
    }
}
