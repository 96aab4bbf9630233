//! The mock provider's brain: turns one request body into the exact bytes and pauses a real
//! OpenAI or Anthropic endpoint would produce, as a list of [`Step`]s for the IO executor.
//!
//! Everything here is a pure function of the request body and [`Defaults`]: no clock, no
//! randomness. Ids, padding and signatures come from a hash of the body, so the same body always
//! gives the same bytes.
//!
//! Tests steer the mock through the text of the last user message that has text (so a test
//! through the gateway needs nothing but the prompt, and the question's directives still apply to
//! the tool-result turn that follows it). Directives are whitespace-separated words, left out of
//! the echoed prompt; unknown ones are ignored:
//!
//! | directive | effect |
//! |---|---|
//! | `mock:status=N` (400..=599) | reply with that status and the provider's error body; 429 adds `retry-after: 1` |
//! | `mock:midstream_error` | stream [`FAULT_AFTER_TOKENS`] tokens, then the provider's in-stream error, then end |
//! | `mock:reset` | stream [`FAULT_AFTER_TOKENS`] tokens then reset; non-stream: reset before any byte |
//! | `mock:stall` | stream the head and first token then hang; non-stream: hang before the head |
//! | `mock:ttft=MS`, `mock:itl=MS` | override time to first token / inter-token delay |
//! | `mock:tokens=N` | answer exactly `w1 w2 … wN` |
//! | `mock:big=N` | answer text sized so the non-stream body is about N bytes |
//! | `mock:parallel` | call the first two tools at once |
//! | `mock:tool=NAME` | call the tool NAME instead of the first declared one (even an undeclared one) |
//! | `mock:args=JSON` | a JSON object without spaces: the (first) call's arguments, verbatim |
//! | `mock:notools` | answer with text although tools are declared |
//! | `mock:preamble` | when calling tools, write [`PREAMBLE_TEXT`] first (text, then the calls, as models often do) |
//! | `mock:thinking` | Anthropic: a signed thinking block before the answer |
//! | `mock:thinking=echo` | the same, its text also repeating the prompt's words and naming a contact address of its own, as a model's reasoning does |
//! | `mock:reasoning_content` | OpenAI: the thinking text as `reasoning_content` before the answer (as reasoning Chat providers such as DeepSeek send it) |
//! | `mock:ascii` | non-streaming: non-ASCII characters written as `\uXXXX` escapes (Python's `ensure_ascii`) |
//! | `mock:refusal` | Anthropic `stop_reason: refusal`; OpenAI `refusal` text with `finish_reason: stop` |
//! | `mock:content_filter` | a few tokens, then OpenAI `finish_reason: content_filter` (Anthropic: refusal) |
//! | `mock:cache` | half of the input tokens are reported as cache reads |
//! | `mock:input=N`, `mock:cache_read=N`, `mock:cache_write=N`, `mock:reasoning=N` | the usage reported, see [`UsageDirectives`] |
//!
//! Precedence: a status wins over everything; then reset > stall > midstream_error; a
//! non-streaming `midstream_error` becomes a 529 (Anthropic) / 500 (OpenAI). The answer is a
//! refusal, else tool calls, else `big`, else `tokens`, else a tool-result acknowledgement, else
//! the greeting. `count_tokens` honours only `mock:status`.
//!
//! Like the real Messages API, the mock refuses (400) `thinking.type: enabled` for
//! adaptive-only model ids (`claude-opus-4-7`, the 5 family, …) and `thinking.type: adaptive`
//! for ids older than 4.6, before any directive applies. Like it too, the mock refuses (400)
//! an assistant `thinking` block whose signature is not the one it gave that exact text
//! (signatures are a hash of the thinking text).
//!
//! Tools are called when the request declares some, its `tool_choice` allows it, the conversation
//! does not end in tool results and `mock:notools` is absent. A `tool_choice` naming a tool wins
//! over `mock:tool` (a real model must obey it); `mock:args` that is not a JSON object is ignored.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Number of streamed tokens sent before `mock:reset` / `mock:midstream_error` /
/// `mock:content_filter` take effect.
pub const FAULT_AFTER_TOKENS: usize = 3;
/// How many words of the prompt (or tool result) the answer echoes.
pub const ECHO_WORDS: usize = 12;
/// Upper bound for `mock:ttft=` and `mock:itl=` (milliseconds); larger values are clamped.
pub const MAX_DIRECTIVE_DELAY_MS: u64 = 600_000;
/// Upper bound for `mock:tokens=`; keeps one plan's memory bounded.
pub const MAX_DIRECTIVE_TOKENS: usize = 100_000;
/// Upper bound for `mock:big=` (bytes).
pub const MAX_BIG_BYTES: usize = 64 << 20;
/// Size of one streamed text delta for `mock:big=` answers (a word per event would be millions).
pub const BIG_STREAM_PIECE_BYTES: usize = 16 << 10;
/// The fixed `created` timestamp of every OpenAI response (no clock: output must be deterministic).
pub const CREATED_UNIX: u64 = 1_750_000_000;
/// Streamed tool arguments are cut into this many partial-JSON fragments.
const ARG_PIECES: usize = 3;
/// Anthropic pads event JSON with up to this many spaces before the closing brace (anti
/// side-channel padding, seen in every real capture); the mock pads `0..MAX_PAD` spaces.
const MAX_PAD: u64 = 16;
/// Longest OpenAI `obfuscation` filler string.
const MAX_OBFUSCATION: u64 = 12;
/// Length of the deterministic thinking signature (a multiple of 4 so it looks like base64).
const SIGNATURE_LEN: usize = 152;

/// Anthropic model ids (by prefix) that take only adaptive thinking: the budget form is
/// refused as the real API refuses it. Kept apart from the gateway's own model table on
/// purpose, so a wrong entry there fails a test instead of being mirrored here.
const ADAPTIVE_ONLY_MODEL_PREFIXES: &[&str] = &[
    "claude-opus-4-7",
    "claude-opus-4-8",
    "claude-opus-5",
    "claude-sonnet-5",
    "claude-haiku-5",
    "claude-mythos",
    "claude-fable",
];
/// Anthropic model ids (by prefix) older than adaptive thinking, which refuse it.
const BUDGET_ONLY_MODEL_PREFIXES: &[&str] = &[
    "claude-3",
    "claude-opus-4-0",
    "claude-opus-4-1",
    "claude-opus-4-2", // claude-opus-4-20250514
    "claude-opus-4-5",
    "claude-sonnet-4-0",
    "claude-sonnet-4-2", // claude-sonnet-4-20250514
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
];
/// Anthropic's 400 message for `thinking.type: enabled` on an adaptive-only model, word for
/// word as users quote it (NousResearch/hermes-agent#11137, Sylinko/Everywhere#410).
const THINKING_ENABLED_UNSUPPORTED: &str = "\"thinking.type.enabled\" is not supported for this model. Use \"thinking.type.adaptive\" and \"output_config.effort\" to control thinking behavior.";
/// Anthropic's 400 message for `thinking.type: adaptive` on an older model, as users quote
/// it (askalf/dario#273, docker/docker-agent#3362).
const ADAPTIVE_UNSUPPORTED: &str = "adaptive thinking is not supported on this model";

const GREETING: &str = "Hello from the ringway mock.";
const ECHO_PREFIX: &str = "You said:";
const TOOL_RESULT_PREFIX: &str = "Tool result received";
const THINKING_TEXT: &str =
    "The user wants a reply from the mock. I will greet them and repeat their words.";
/// What `mock:thinking=echo` adds of its own: an address the model came up with, which no
/// request held.
const THINKING_CONTACT: &str = "If that fails, they could write to help@mock.example.net.";
const REFUSAL_TEXT: &str = "I'm sorry, but I can't help with that request.";
/// The text `mock:preamble` writes before its tool calls.
pub const PREAMBLE_TEXT: &str = "Let me look that up.";

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const HEX: &[u8] = b"0123456789abcdef";

// Salts separate the id streams drawn from one body hash.
const SALT_MSG: u64 = 1;
const SALT_REQ: u64 = 2;
const SALT_CHATCMPL: u64 = 3;
const SALT_FINGERPRINT: u64 = 4;
const SALT_SIGNATURE: u64 = 5;
const SALT_TOOLU: u64 = 0x100;
const SALT_CALL: u64 = 0x200;
const SALT_PAD: u64 = 0x1_0000;
const SALT_OBFUSCATION: u64 = 0x2_0000;

/// Latency settings from the command line; `mock:ttft=` / `mock:itl=` override them per request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Defaults {
    /// Pause before the first content event (stream) or added to the response time (non-stream).
    pub ttft: Duration,
    /// Pause between content events.
    pub inter_token: Duration,
}

/// One thing the executor does, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Response status + headers; body framing: `Some(len)` = Content-Length, `None` = chunked.
    /// Headers never include framing or connection headers; the executor adds those.
    Head {
        /// HTTP status code.
        status: u16,
        /// Header name (lower case) and value pairs.
        headers: Vec<(&'static str, String)>,
        /// Body length for Content-Length framing, or `None` for chunked.
        content_length: Option<usize>,
    },
    /// These bytes as body (one HTTP chunk when chunked). Written together with the steps
    /// around them up to the next pause (`Sleep`, `Stall`, `Reset`, `Close` or the end).
    Data(Bytes),
    /// Wait this long before the next step.
    Sleep(Duration),
    /// Abort the TCP connection now (RST), no terminator.
    Reset,
    /// Stop sending and hold the connection open forever (the client must time out).
    Stall,
    /// Finish the body normally (last-chunk when chunked; nothing more with Content-Length).
    End,
    /// These bytes as they are (no chunk framing, no head needed), written like `Data`: for
    /// answers that are not HTTP at all.
    Raw(Bytes),
    /// Close the connection normally (FIN) now, whatever was or was not written.
    Close,
}

/// Which provider endpoint a request path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// OpenAI `POST …/chat/completions`.
    OpenAiChat,
    /// Anthropic `POST /v1/messages`.
    AnthropicMessages,
    /// Anthropic `POST /v1/messages/count_tokens`.
    AnthropicCountTokens,
}

/// Maps a request path (query string allowed) to the API it names; `None` means 404.
pub fn api_for_path(path: &str) -> Option<Api> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    if path.ends_with("/v1/messages/count_tokens") {
        Some(Api::AnthropicCountTokens)
    } else if path.ends_with("/v1/messages") {
        Some(Api::AnthropicMessages)
    } else if path.ends_with("/chat/completions") {
        Some(Api::OpenAiChat)
    } else {
        None
    }
}

/// Plans the whole response to one request body: status, headers, body bytes, pauses, faults.
pub fn plan(api: Api, body: &[u8], defaults: &Defaults) -> Vec<Step> {
    let ids = Ids::new(body);
    let input_tokens = u64::try_from(body.len().div_ceil(4)).unwrap_or(u64::MAX);
    let req = match parse_request(api, body) {
        Ok(req) => req,
        Err(err) => return error_response(api, &ids, 400, &ErrorText::Request(&err)),
    };
    let dirs = Directives::parse(&req.user_text);
    if let Some(status) = dirs.status {
        return error_response(api, &ids, status, &ErrorText::Status);
    }
    if api == Api::AnthropicCountTokens {
        let body = json(&CountTokens { input_tokens });
        return fixed_response(&ids, api, 200, body.into_bytes(), Duration::ZERO);
    }
    let timing = Timing {
        ttft: dirs.ttft.unwrap_or(defaults.ttft),
        itl: dirs.itl.unwrap_or(defaults.inter_token),
    };
    if !req.stream {
        match dirs.fault {
            Some(Fault::Reset) => return vec![Step::Reset],
            Some(Fault::Stall) => return vec![Step::Stall],
            // A non-streaming reply cannot break halfway; the nearest thing is a 5xx.
            Some(Fault::MidstreamError) => {
                let status = if api == Api::OpenAiChat { 500 } else { 529 };
                return error_response(api, &ids, status, &ErrorText::Status);
            }
            None => {}
        }
    }
    let mut answer = compose(api, &req, &dirs, &ids, input_tokens);
    dirs.usage.apply(api, &mut answer);
    if req.stream {
        let frames = match api {
            Api::OpenAiChat => openai_frames(&req, &ids, &answer),
            _ => anthropic_frames(&req, &ids, &answer),
        };
        let error_frame = match api {
            Api::OpenAiChat => openai_error_frame(),
            _ => anthropic_error_frame(&ids),
        };
        schedule_stream(api, &ids, frames, timing, dirs.fault, error_frame)
    } else {
        if let (Some(target), Stop::EndTurn) = (dirs.big, &answer.stop) {
            // Size the text so the whole body lands near the requested size: measure the
            // envelope around a one-byte text (an empty one would drop the block), then fill.
            set_last_text(&mut answer, vec![String::from("w")]);
            answer.usage.output = tokens_for_bytes(target);
            let overhead = render_body(api, &req, &ids, &answer)
                .len()
                .saturating_sub(1);
            let text = filler(target.saturating_sub(overhead));
            answer.usage.output = tokens_for_bytes(text.len());
            set_last_text(&mut answer, vec![text]);
        }
        let delay = timing.total(answer.paced_count());
        let mut body = render_body(api, &req, &ids, &answer);
        if dirs.ascii {
            body = ascii_only(&body);
        }
        fixed_response(&ids, api, 200, body, delay)
    }
}

fn set_last_text(answer: &mut Answer, text: Vec<String>) {
    if let Some(Block::Text(pieces)) = answer.blocks.last_mut() {
        *pieces = text;
    }
}

// ------------------------------------------------------------------------------------------
// Request parsing

/// Why a request body was rejected (rendered as a 400 in the provider's error format).
#[derive(Debug, Clone, PartialEq, Eq)]
enum RequestError {
    /// The body is not JSON.
    InvalidJson,
    /// The body is JSON but not an object.
    NotObject,
    /// A required field is absent.
    Missing(&'static str),
    /// A field has the wrong type or range.
    Invalid(&'static str),
    /// `messages` is an empty array.
    EmptyMessages,
    /// A valid field this model refuses; the provider's own message.
    Refused(&'static str),
    /// `messages[m].content[b]` is a thinking block whose text is not what was signed.
    BadSignature(usize, usize),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidJson => f.write_str("The request body is not valid JSON."),
            Self::NotObject => f.write_str("The request body must be a JSON object."),
            Self::Missing(field) => write!(f, "{field}: Field required"),
            Self::Invalid(field) => write!(f, "{field}: Input has an invalid type or value"),
            Self::EmptyMessages => f.write_str("messages: at least one message is required"),
            Self::Refused(message) => f.write_str(message),
            Self::BadSignature(m, b) => write!(
                f,
                "messages.{m}.content.{b}: Invalid `signature` in `thinking` block"
            ),
        }
    }
}

/// A tool the request offers, reduced to what the mock needs to call it.
#[derive(Debug, Clone)]
struct ToolDef {
    name: String,
    /// Arguments built from the schema's `required` properties, in `required` order.
    args: Vec<(String, Value)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ToolChoice {
    None,
    Auto,
    Named(String),
}

/// One request in provider-neutral terms.
#[derive(Debug, Clone)]
struct Request {
    model: String,
    stream: bool,
    /// OpenAI `stream_options.include_usage`.
    include_usage: bool,
    /// OpenAI `stream_options.include_obfuscation` (on unless turned off).
    obfuscation: bool,
    max_tokens: Option<u64>,
    stops: Vec<String>,
    tools: Vec<ToolDef>,
    choice: ToolChoice,
    allow_parallel: bool,
    /// `Some(text)` when the conversation ends with tool results.
    tool_result: Option<String>,
    /// Text of the last user message that has any; directives and the echo come from here.
    user_text: String,
}

fn parse_request(api: Api, body: &[u8]) -> Result<Request, RequestError> {
    let root: Value = serde_json::from_slice(body).map_err(|_| RequestError::InvalidJson)?;
    let obj = root.as_object().ok_or(RequestError::NotObject)?;
    let model = match obj.get("model") {
        None | Some(Value::Null) => return Err(RequestError::Missing("model")),
        Some(Value::String(m)) => m.clone(),
        Some(_) => return Err(RequestError::Invalid("model")),
    };
    let messages = match obj.get("messages") {
        None | Some(Value::Null) => return Err(RequestError::Missing("messages")),
        Some(Value::Array(m)) => m,
        Some(_) => return Err(RequestError::Invalid("messages")),
    };
    if messages.is_empty() {
        return Err(RequestError::EmptyMessages);
    }
    let stream = obj.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let user_text = last_user_text(messages);
    let req = match api {
        Api::OpenAiChat => {
            let max_tokens = match count_field(obj, "max_completion_tokens")? {
                Some(n) => Some(n),
                None => count_field(obj, "max_tokens")?,
            };
            let options = obj.get("stream_options");
            let option = |key: &str| options.and_then(|o| o.get(key)).and_then(Value::as_bool);
            let choice = match obj.get("tool_choice") {
                Some(Value::String(s)) if s == "none" => ToolChoice::None,
                Some(Value::Object(c)) => match c.get("function").and_then(|f| f.get("name")) {
                    Some(Value::String(name)) => ToolChoice::Named(name.clone()),
                    _ => ToolChoice::Auto,
                },
                _ => ToolChoice::Auto,
            };
            Request {
                model,
                stream,
                include_usage: option("include_usage").unwrap_or(false),
                obfuscation: option("include_obfuscation").unwrap_or(true),
                max_tokens,
                stops: string_list(obj.get("stop")),
                tools: openai_tools(obj.get("tools")),
                choice,
                allow_parallel: obj.get("parallel_tool_calls").and_then(Value::as_bool)
                    != Some(false),
                tool_result: openai_tool_result(messages),
                user_text,
            }
        }
        Api::AnthropicMessages | Api::AnthropicCountTokens => {
            let max_tokens = count_field(obj, "max_tokens")?;
            if api == Api::AnthropicMessages && max_tokens.is_none() {
                return Err(RequestError::Missing("max_tokens"));
            }
            if api == Api::AnthropicMessages {
                check_thinking_form(&model, obj.get("thinking"))?;
                check_signatures(messages)?;
            }
            let choice_obj = obj.get("tool_choice");
            let choice = match choice_obj
                .and_then(|c| c.get("type"))
                .and_then(Value::as_str)
            {
                Some("none") => ToolChoice::None,
                Some("tool") => match choice_obj.and_then(|c| c.get("name")) {
                    Some(Value::String(name)) => ToolChoice::Named(name.clone()),
                    _ => ToolChoice::Auto,
                },
                _ => ToolChoice::Auto,
            };
            let no_parallel = choice_obj
                .and_then(|c| c.get("disable_parallel_tool_use"))
                .and_then(Value::as_bool);
            Request {
                model,
                stream,
                include_usage: false,
                obfuscation: false,
                max_tokens,
                stops: string_list(obj.get("stop_sequences")),
                tools: anthropic_tools(obj.get("tools")),
                choice,
                allow_parallel: no_parallel != Some(true),
                tool_result: anthropic_tool_result(messages),
                user_text,
            }
        }
    };
    Ok(req)
}

/// Refuses a thinking block sent back with text other than what was signed, as the Messages
/// API does: the text must come back byte for byte.
fn check_signatures(messages: &[Value]) -> Result<(), RequestError> {
    for (m, message) in messages.iter().enumerate() {
        let blocks = message.get("content").and_then(Value::as_array);
        for (b, block) in blocks.into_iter().flatten().enumerate() {
            if block.get("type").and_then(Value::as_str) != Some("thinking") {
                continue;
            }
            let text = block
                .get("thinking")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let signature = block.get("signature").and_then(Value::as_str);
            if signature != Some(thinking_signature(text).as_str()) {
                return Err(RequestError::BadSignature(m, b));
            }
        }
    }
    Ok(())
}

/// The signature of a thinking text: derived from the text alone, so a changed text fails.
fn thinking_signature(text: &str) -> String {
    Ids::new(text.as_bytes()).signature()
}

/// Refuses the thinking form a model does not take, as the Messages API does.
fn check_thinking_form(model: &str, thinking: Option<&Value>) -> Result<(), RequestError> {
    let is = |prefixes: &[&str]| prefixes.iter().any(|p| model.starts_with(p));
    match thinking.and_then(|t| t.get("type")).and_then(Value::as_str) {
        Some("enabled") if is(ADAPTIVE_ONLY_MODEL_PREFIXES) => {
            Err(RequestError::Refused(THINKING_ENABLED_UNSUPPORTED))
        }
        Some("adaptive") if is(BUDGET_ONLY_MODEL_PREFIXES) => {
            Err(RequestError::Refused(ADAPTIVE_UNSUPPORTED))
        }
        _ => Ok(()),
    }
}

/// A non-negative integer field; absent or null is `None`.
fn count_field(obj: &Map<String, Value>, key: &'static str) -> Result<Option<u64>, RequestError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or(RequestError::Invalid(key)),
    }
}

/// A string or an array of strings (OpenAI `stop`, Anthropic `stop_sequences`).
fn string_list(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// Text of a message `content` (or tool result content): a string, or the `text` parts of an
/// array. Both APIs use `{"type":"text","text":…}` parts, so one reader serves both.
fn plain_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            texts.join("\n")
        }
        _ => String::new(),
    }
}

fn role(message: &Value) -> Option<&str> {
    message.get("role").and_then(Value::as_str)
}

/// The last user message that carries text. Skipping text-less turns (an Anthropic turn holding
/// only tool results) makes both APIs read the directives of the question that started a tool
/// loop.
fn last_user_text(messages: &[Value]) -> String {
    messages
        .iter()
        .rev()
        .filter(|m| role(m) == Some("user"))
        .map(|m| plain_text(m.get("content")))
        .find(|t| !t.trim().is_empty())
        .unwrap_or_default()
}

/// OpenAI: the conversation ends with `tool` (or legacy `function`) messages; their text joined.
fn openai_tool_result(messages: &[Value]) -> Option<String> {
    let is_result = |m: &&Value| matches!(role(m), Some("tool" | "function"));
    let trailing = messages.iter().rev().take_while(is_result).count();
    if trailing == 0 {
        return None;
    }
    let start = messages.len().saturating_sub(trailing);
    let texts: Vec<String> = messages
        .iter()
        .skip(start)
        .map(|m| plain_text(m.get("content")))
        .collect();
    Some(texts.join(" "))
}

/// Anthropic: the last message is a user turn holding `tool_result` blocks; their text joined.
fn anthropic_tool_result(messages: &[Value]) -> Option<String> {
    let last = messages.last()?;
    if role(last) != Some("user") {
        return None;
    }
    let blocks = last.get("content")?.as_array()?;
    let texts: Vec<String> = blocks
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
        .map(|b| plain_text(b.get("content")))
        .collect();
    if texts.is_empty() {
        None
    } else {
        Some(texts.join(" "))
    }
}

fn openai_tools(tools: Option<&Value>) -> Vec<ToolDef> {
    let Some(Value::Array(tools)) = tools else {
        return Vec::new();
    };
    tools
        .iter()
        .filter(|t| t.get("type").and_then(Value::as_str) == Some("function"))
        .filter_map(|t| {
            let function = t.get("function")?;
            let name = function.get("name")?.as_str()?;
            Some(ToolDef {
                name: name.to_owned(),
                args: args_from_schema(function.get("parameters")),
            })
        })
        .collect()
}

fn anthropic_tools(tools: Option<&Value>) -> Vec<ToolDef> {
    let Some(Value::Array(tools)) = tools else {
        return Vec::new();
    };
    tools
        .iter()
        // Typed tools (`web_search_20250305`, …) are server tools the model never calls itself.
        .filter(|t| matches!(t.get("type").and_then(Value::as_str), None | Some("custom")))
        .filter_map(|t| {
            let name = t.get("name")?.as_str()?;
            Some(ToolDef {
                name: name.to_owned(),
                args: args_from_schema(t.get("input_schema")),
            })
        })
        .collect()
}

/// Arguments that satisfy a JSON schema's `required` list with the simplest value per type.
fn args_from_schema(schema: Option<&Value>) -> Vec<(String, Value)> {
    let Some(schema) = schema else {
        return Vec::new();
    };
    let Some(Value::Array(required)) = schema.get("required") else {
        return Vec::new();
    };
    let properties = schema.get("properties");
    required
        .iter()
        .filter_map(Value::as_str)
        .map(|name| {
            let prop = properties.and_then(|p| p.get(name));
            (name.to_owned(), value_for_schema(prop))
        })
        .collect()
}

fn value_for_schema(prop: Option<&Value>) -> Value {
    let Some(prop) = prop else {
        return Value::String("mock".to_owned());
    };
    if let Some(first) = prop
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    if let Some(constant) = prop.get("const") {
        return constant.clone();
    }
    let kind = match prop.get("type") {
        Some(Value::String(t)) => Some(t.as_str()),
        // `["string", "null"]`: the first non-null type.
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .or(Some("null")),
        _ => None,
    };
    match kind {
        Some("number" | "integer") => Value::from(1),
        Some("boolean") => Value::Bool(true),
        Some("array") => Value::Array(Vec::new()),
        Some("object") => Value::Object(Map::new()),
        Some("null") => Value::Null,
        _ => Value::String("mock".to_owned()),
    }
}

// ------------------------------------------------------------------------------------------
// Directives

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    MidstreamError,
    Reset,
    Stall,
}

/// Directives found in the last user message text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Directives {
    status: Option<u16>,
    fault: Option<Fault>,
    ttft: Option<Duration>,
    itl: Option<Duration>,
    tokens: Option<usize>,
    big: Option<usize>,
    parallel: bool,
    thinking: bool,
    /// `mock:thinking=echo`: the thinking repeats the prompt's words.
    thinking_echo: bool,
    /// `mock:reasoning_content`: OpenAI shows its thinking as `reasoning_content`.
    reasoning_content: bool,
    /// `mock:ascii`: non-ASCII escaped in non-streaming bodies.
    ascii: bool,
    refusal: bool,
    content_filter: bool,
    cache: bool,
    /// `mock:tool=`: the tool to call.
    tool: Option<String>,
    /// `mock:args=`: the first call's arguments.
    args: Option<ToolArgs>,
    /// `mock:notools`: never call a tool.
    notools: bool,
    /// `mock:preamble`: text before the tool calls.
    preamble: bool,
    /// `mock:input=` and the other usage counts.
    usage: UsageDirectives,
}

/// Usage counts a test sets so that the numbers the gateway records are known exactly,
/// whatever the request body (translated bodies differ in size, and the default input count
/// follows the body). Each provider reports them in its own fields, as the real ones do:
///
/// - `input`: the whole prompt, cache reads and writes included (OpenAI `prompt_tokens`;
///   Anthropic's `input_tokens` is what is left after the cached parts).
/// - `cache_read`: OpenAI `prompt_tokens_details.cached_tokens`, Anthropic
///   `cache_read_input_tokens`; at most `input`.
/// - `cache_write`: Anthropic `cache_creation_input_tokens` (and its 5-minute split); OpenAI
///   has no such field, so it is not reported there. At most what is left of `input`.
/// - `reasoning`: thinking billed as this many tokens. OpenAI: hidden reasoning, added to
///   `completion_tokens` and reported as `completion_tokens_details.reasoning_tokens`.
///   Anthropic has no separate count: `output_tokens` holds the thinking block's cost as this
///   instead of its word count (a summarized thinking block is billed for the whole).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct UsageDirectives {
    input: Option<u64>,
    cache_read: Option<u64>,
    cache_write: Option<u64>,
    reasoning: Option<u64>,
}

impl UsageDirectives {
    /// Overwrite the composed answer's usage with what was asked for.
    fn apply(&self, api: Api, answer: &mut Answer) {
        let usage = &mut answer.usage;
        if let Some(n) = self.input {
            usage.input = n;
        }
        if let Some(n) = self.cache_read {
            usage.cache_read = n;
        }
        usage.cache_read = usage.cache_read.min(usage.input);
        if let Some(n) = self.cache_write {
            usage.cache_write = n.min(usage.input.saturating_sub(usage.cache_read));
        }
        if let Some(n) = self.reasoning {
            let shown: u64 = answer
                .blocks
                .iter()
                .map(|b| match b {
                    Block::Thinking { pieces, .. } => count(pieces.len()),
                    _ => 0,
                })
                .sum();
            usage.output = usage.output.saturating_sub(shown).saturating_add(n);
            if api == Api::OpenAiChat {
                usage.reasoning = n;
            }
        }
    }
}

/// Arguments given by `mock:args=`: the text as written and its entries in written order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ToolArgs {
    text: String,
    entries: Vec<(String, Value)>,
}

impl ToolArgs {
    /// `None` unless `text` is one JSON object.
    fn parse(text: &str) -> Option<Self> {
        let Entries(entries) = serde_json::from_str(text).ok()?;
        Some(Self {
            text: text.to_owned(),
            entries,
        })
    }
}

/// A JSON object's entries in the order written (serde_json's `Map` would sort them, and the
/// arguments must reach the client as the test wrote them).
struct Entries(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EntriesVisitor)
    }
}

struct EntriesVisitor;

impl<'de> Visitor<'de> for EntriesVisitor {
    type Value = Entries;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<String, Value>()? {
            entries.push(entry);
        }
        Ok(Entries(entries))
    }
}

impl Directives {
    fn parse(text: &str) -> Self {
        let mut d = Self::default();
        let (mut reset, mut stall, mut midstream) = (false, false, false);
        for raw in text.split_whitespace() {
            // Allow "(mock:reset)." inside a sentence.
            let raw = raw.trim_start_matches(['(', '"', '\'', '`']);
            let Some(rest) = raw.strip_prefix("mock:") else {
                continue;
            };
            let word = rest.trim_end_matches(['.', ',', ';', '!', '?', ')', '"', '\'', '`']);
            let (key, value) = match word.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (word, None),
            };
            let number = value.and_then(|v| v.parse::<u64>().ok());
            let delay = number.map(|ms| Duration::from_millis(ms.min(MAX_DIRECTIVE_DELAY_MS)));
            let size = |max: usize| number.map(|n| usize::try_from(n).unwrap_or(max).min(max));
            match key {
                "status" => {
                    if let Some(s) = number.and_then(|n| u16::try_from(n).ok()) {
                        if (400..=599).contains(&s) {
                            d.status = Some(s);
                        }
                    }
                }
                "midstream_error" => midstream = true,
                "reset" => reset = true,
                "stall" => stall = true,
                "ttft" => d.ttft = delay.or(d.ttft),
                "itl" => d.itl = delay.or(d.itl),
                "tokens" => d.tokens = size(MAX_DIRECTIVE_TOKENS).or(d.tokens),
                "big" => d.big = size(MAX_BIG_BYTES).or(d.big),
                "parallel" => d.parallel = true,
                "thinking" => {
                    d.thinking = true;
                    d.thinking_echo |= value == Some("echo");
                }
                "reasoning_content" => d.reasoning_content = true,
                "refusal" => d.refusal = true,
                "ascii" => d.ascii = true,
                "content_filter" => d.content_filter = true,
                "cache" => d.cache = true,
                "tool" => {
                    if let Some(name) = value.filter(|v| !v.is_empty()) {
                        d.tool = Some(name.to_owned());
                    }
                }
                "args" => d.args = value.and_then(ToolArgs::parse).or(d.args),
                "notools" => d.notools = true,
                "preamble" => d.preamble = true,
                "input" => d.usage.input = number.or(d.usage.input),
                "cache_read" => d.usage.cache_read = number.or(d.usage.cache_read),
                "cache_write" => d.usage.cache_write = number.or(d.usage.cache_write),
                "reasoning" => d.usage.reasoning = number.or(d.usage.reasoning),
                _ => {}
            }
        }
        // One fault per request; the most drastic wins.
        d.fault = if reset {
            Some(Fault::Reset)
        } else if stall {
            Some(Fault::Stall)
        } else if midstream {
            Some(Fault::MidstreamError)
        } else {
            None
        };
        d
    }
}

/// Whether a prompt word is a directive (kept out of the echoed text).
fn is_directive(word: &str) -> bool {
    word.starts_with("mock:")
}

// ------------------------------------------------------------------------------------------
// The answer, provider-neutral

#[derive(Debug, Clone)]
struct ToolCall {
    id: String,
    name: String,
    args: Vec<(String, Value)>,
    /// The argument JSON as the real APIs stream it (`{"a": 1, "b": "x"}` spacing).
    args_text: String,
    /// `args_text` cut into streamed fragments (empty when there are no arguments).
    pieces: Vec<String>,
}

#[derive(Debug, Clone)]
enum Block {
    Thinking {
        pieces: Vec<String>,
        signature: String,
    },
    Text(Vec<String>),
    /// OpenAI `refusal` text.
    Refusal(Vec<String>),
    Tool(ToolCall),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Stop {
    EndTurn,
    MaxTokens,
    Sequence(String),
    ToolUse,
    Refusal,
    ContentFilter,
}

impl Stop {
    fn anthropic(&self) -> &'static str {
        match self {
            Self::EndTurn => "end_turn",
            Self::MaxTokens => "max_tokens",
            Self::Sequence(_) => "stop_sequence",
            Self::ToolUse => "tool_use",
            Self::Refusal | Self::ContentFilter => "refusal",
        }
    }

    fn openai(&self) -> &'static str {
        match self {
            // Real OpenAI refusals end with "stop" (recorded); only a filter says content_filter.
            Self::EndTurn | Self::Sequence(_) | Self::Refusal => "stop",
            Self::MaxTokens => "length",
            Self::ToolUse => "tool_calls",
            Self::ContentFilter => "content_filter",
        }
    }

    fn sequence(&self) -> Option<&str> {
        match self {
            Self::Sequence(s) => Some(s),
            _ => None,
        }
    }

    fn is_refusal(&self) -> bool {
        matches!(self, Self::Refusal | Self::ContentFilter)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Usage {
    /// Whole prompt, cache reads and writes included.
    input: u64,
    cache_read: u64,
    /// Reported by Anthropic only.
    cache_write: u64,
    /// Output, `reasoning` included.
    output: u64,
    /// Reported by OpenAI only (`completion_tokens_details.reasoning_tokens`).
    reasoning: u64,
}

impl Usage {
    /// Anthropic's `input_tokens` excludes cache reads and writes.
    fn uncached(&self) -> u64 {
        self.input
            .saturating_sub(self.cache_read)
            .saturating_sub(self.cache_write)
    }
}

#[derive(Debug, Clone)]
struct Answer {
    blocks: Vec<Block>,
    stop: Stop,
    usage: Usage,
}

impl Answer {
    /// Number of paced (delay-separated) content events a stream of this answer carries.
    fn paced_count(&self) -> usize {
        self.blocks
            .iter()
            .map(|b| match b {
                Block::Thinking { pieces, .. } | Block::Text(pieces) | Block::Refusal(pieces) => {
                    pieces.len()
                }
                Block::Tool(call) => call.pieces.len(),
            })
            .sum()
    }
}

fn compose(api: Api, req: &Request, dirs: &Directives, ids: &Ids, input: u64) -> Answer {
    let cache_read = if dirs.cache { input / 2 } else { 0 };
    let mut blocks = Vec::new();
    let mut output = 0u64;
    let shown = if api == Api::OpenAiChat {
        dirs.reasoning_content
    } else {
        dirs.thinking
    };
    if shown {
        let words = echo_words(&req.user_text);
        let text = if dirs.thinking_echo && !words.is_empty() {
            format!("{THINKING_TEXT} They wrote: {words}. {THINKING_CONTACT}")
        } else {
            THINKING_TEXT.to_owned()
        };
        let pieces = split_tokens(&text);
        output += count(pieces.len());
        blocks.push(Block::Thinking {
            pieces,
            signature: thinking_signature(&text),
        });
    }
    let stop = if dirs.refusal || (dirs.content_filter && api != Api::OpenAiChat) {
        if api == Api::OpenAiChat {
            let pieces = split_tokens(REFUSAL_TEXT);
            output += count(pieces.len());
            blocks.push(Block::Refusal(pieces));
        } else {
            // As recorded: an empty text block, then stop_reason refusal.
            blocks.push(Block::Text(Vec::new()));
        }
        Stop::Refusal
    } else if let Some(calls) = tool_calls(api, req, dirs, ids) {
        if dirs.preamble {
            let pieces = split_tokens(PREAMBLE_TEXT);
            output += count(pieces.len());
            blocks.push(Block::Text(pieces));
        }
        let budget = req.max_tokens.unwrap_or(u64::MAX).saturating_sub(output);
        let mut stop = Stop::ToolUse;
        let mut spent = 0u64;
        for mut call in calls {
            let cost = 1 + tokens_for_bytes(call.args_text.len());
            if spent + cost > budget {
                // max_tokens lands inside this call: the provider stops mid-JSON, leaving the
                // arguments as invalid partial text, and stops with max_tokens / length.
                call.pieces.truncate(1);
                call.args_text = call.pieces.first().cloned().unwrap_or_default();
                call.args.clear();
                output += budget - spent;
                blocks.push(Block::Tool(call));
                stop = Stop::MaxTokens;
                break;
            }
            spent += cost;
            output += cost;
            blocks.push(Block::Tool(call));
        }
        stop
    } else if let Some(size) = dirs.big {
        let text = filler(size);
        output += tokens_for_bytes(text.len());
        let pieces = chunk_ascii(&text, BIG_STREAM_PIECE_BYTES);
        blocks.push(Block::Text(pieces));
        Stop::EndTurn
    } else {
        let text = answer_text(req, dirs);
        let (text, mut stop) = match first_stop(&text, &req.stops) {
            Some((at, seq)) => (
                text.get(..at).unwrap_or_default().to_owned(),
                Stop::Sequence(seq),
            ),
            None => (text, Stop::EndTurn),
        };
        let mut pieces = split_tokens(&text);
        if let Some(max) = req.max_tokens {
            let max = usize::try_from(max).unwrap_or(usize::MAX);
            if pieces.len() > max {
                pieces.truncate(max);
                stop = Stop::MaxTokens;
            }
        }
        if dirs.content_filter {
            // Only OpenAI gets here: a filter cuts the answer short.
            pieces.truncate(FAULT_AFTER_TOKENS);
            stop = Stop::ContentFilter;
        }
        output += count(pieces.len());
        blocks.push(Block::Text(pieces));
        stop
    };
    Answer {
        blocks,
        stop,
        usage: Usage {
            input,
            cache_read,
            cache_write: 0,
            output,
            reasoning: 0,
        },
    }
}

/// The tool calls to make, or `None` to answer with text.
fn tool_calls(api: Api, req: &Request, dirs: &Directives, ids: &Ids) -> Option<Vec<ToolCall>> {
    if req.tools.is_empty()
        || req.choice == ToolChoice::None
        || req.tool_result.is_some()
        || dirs.notools
    {
        return None;
    }
    let wanted = match &req.choice {
        ToolChoice::Named(name) => Some(name),
        _ => dirs.tool.as_ref(),
    };
    let first_idx = match wanted {
        Some(name) => req.tools.iter().position(|t| &t.name == name),
        None => Some(0),
    };
    let mut first = match (first_idx.and_then(|i| req.tools.get(i)), wanted) {
        (Some(tool), _) => tool.clone(),
        // A tool the request does not declare (forced, or named by `mock:tool`): call it
        // without arguments, as a model naming an unknown tool would.
        (None, Some(name)) => ToolDef {
            name: name.clone(),
            args: Vec::new(),
        },
        (None, None) => return None,
    };
    if let Some(args) = &dirs.args {
        first.args.clone_from(&args.entries);
    }
    let mut defs = vec![first];
    if dirs.parallel && req.allow_parallel {
        // The next declared tool, or the same one twice when only one is declared.
        let second = req
            .tools
            .iter()
            .enumerate()
            .find(|(i, _)| Some(*i) != first_idx)
            .map_or_else(|| defs.first().cloned(), |(_, t)| Some(t.clone()));
        defs.extend(second);
    }
    let calls = defs
        .into_iter()
        .enumerate()
        .map(|(i, def)| {
            let args_text = match (&dirs.args, i) {
                // Verbatim, so a test sees exactly the text it wrote.
                (Some(args), 0) if !def.args.is_empty() => args.text.clone(),
                _ => spaced_args(&def.args),
            };
            let pieces = if def.args.is_empty() {
                Vec::new()
            } else {
                split_in(&args_text, ARG_PIECES)
            };
            ToolCall {
                id: match api {
                    Api::OpenAiChat => ids.call(i),
                    _ => ids.toolu(i),
                },
                name: def.name,
                args: def.args,
                args_text,
                pieces,
            }
        })
        .collect();
    Some(calls)
}

fn answer_text(req: &Request, dirs: &Directives) -> String {
    if let Some(n) = dirs.tokens {
        let words: Vec<String> = (1..=n).map(|i| format!("w{i}")).collect();
        return words.join(" ");
    }
    if let Some(result) = &req.tool_result {
        let words = echo_words(result);
        return if words.is_empty() {
            format!("{TOOL_RESULT_PREFIX}.")
        } else {
            format!("{TOOL_RESULT_PREFIX}: {words}")
        };
    }
    let words = echo_words(&req.user_text);
    if words.is_empty() {
        GREETING.to_owned()
    } else {
        format!("{GREETING} {ECHO_PREFIX} {words}")
    }
}

/// The first [`ECHO_WORDS`] words of a text, directives left out.
fn echo_words(text: &str) -> String {
    let words: Vec<&str> = text
        .split_whitespace()
        .filter(|w| !is_directive(w))
        .take(ECHO_WORDS)
        .collect();
    words.join(" ")
}

/// The earliest stop sequence in `text`: its byte offset and the sequence.
fn first_stop(text: &str, stops: &[String]) -> Option<(usize, String)> {
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()).map(|at| (at, s.clone())))
        .min_by_key(|(at, _)| *at)
}

/// Tokens as the mock counts them: one word with its leading space(s) each.
fn split_tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut prev_space = true;
    for (i, c) in text.char_indices() {
        let space = c == ' ';
        if space && !prev_space {
            out.extend(text.get(start..i).map(str::to_owned));
            start = i;
        }
        prev_space = space;
    }
    if start < text.len() {
        out.extend(text.get(start..).map(str::to_owned));
    }
    out
}

/// Splits `text` into `n` nearly equal pieces on char boundaries; empty pieces are dropped.
fn split_in(text: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    for k in 1..=n {
        let mut end = if k == n {
            text.len()
        } else {
            text.len() * k / n
        };
        while end < text.len() && !text.is_char_boundary(end) {
            end += 1;
        }
        if end > start {
            out.extend(text.get(start..end).map(str::to_owned));
            start = end;
        }
    }
    out
}

/// Cuts an ASCII text into pieces of at most `size` bytes.
fn chunk_ascii(text: &str, size: usize) -> Vec<String> {
    let size = size.max(1);
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = start.saturating_add(size).min(text.len());
        while end < text.len() && !text.is_char_boundary(end) {
            end += 1;
        }
        out.extend(text.get(start..end).map(str::to_owned));
        start = end;
    }
    out
}

/// `w1 w2 w3 …` cut to exactly `len` bytes.
fn filler(len: usize) -> String {
    let mut s = String::with_capacity(len.saturating_add(16));
    let mut i = 1u64;
    while s.len() < len {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push('w');
        s.push_str(&i.to_string());
        i += 1;
    }
    // ASCII only, so every length is a char boundary.
    s.truncate(len);
    s
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn tokens_for_bytes(len: usize) -> u64 {
    count(len.div_ceil(4))
}

/// `{"key": value, …}` with the spacing both real APIs use in streamed arguments.
fn spaced_args(args: &[(String, Value)]) -> String {
    let fields: Vec<String> = args
        .iter()
        .map(|(k, v)| format!("{}: {}", json(k), json(v)))
        .collect();
    format!("{{{}}}", fields.join(", "))
}

/// Serialises arguments as a JSON object in `required` order (serde_json's `Map` would sort).
struct ArgsObject<'a>(&'a [(String, Value)]);

impl Serialize for ArgsObject<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Compact JSON. The types serialised here have string keys only, so this cannot fail.
fn json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// JSON text with every non-ASCII character escaped, as Python's `json.dumps` writes it by
/// default (outside strings JSON is ASCII, so only string contents change).
fn ascii_only(json: &[u8]) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(json) else {
        return json.to_vec();
    };
    let mut out = String::with_capacity(json.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            for unit in c.encode_utf16(&mut [0u16; 2]) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out.into_bytes()
}

/// Two-space indented JSON, as OpenAI sends non-streaming bodies.
fn json_pretty<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

// ------------------------------------------------------------------------------------------
// Deterministic ids

/// Ids, paddings and signatures derived from a hash of the request body.
struct Ids {
    seed: u64,
}

impl Ids {
    fn new(body: &[u8]) -> Self {
        // FNV-1a: tiny, stable across platforms and Rust versions (std's hasher is not).
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in body {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        Self { seed: h }
    }

    /// splitmix64 of (seed, salt): a well-mixed number per salt.
    fn number(&self, salt: u64) -> u64 {
        let mut z = self
            .seed
            .wrapping_add(salt.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn text(&self, salt: u64, len: usize, alphabet: &[u8]) -> String {
        let modulus = count(alphabet.len()).max(1);
        (0..len)
            .map(|i| {
                let n = self.number(salt.wrapping_mul(1 << 20).wrapping_add(count(i)));
                let at = usize::try_from(n % modulus).unwrap_or(0);
                char::from(alphabet.get(at).copied().unwrap_or(b'x'))
            })
            .collect()
    }

    fn message(&self) -> String {
        format!("msg_01{}", self.text(SALT_MSG, 22, BASE62))
    }

    fn toolu(&self, i: usize) -> String {
        format!("toolu_01{}", self.text(SALT_TOOLU + count(i), 22, BASE62))
    }

    fn anthropic_request(&self) -> String {
        format!("req_011C{}", self.text(SALT_REQ, 20, BASE62))
    }

    fn signature(&self) -> String {
        self.text(SALT_SIGNATURE, SIGNATURE_LEN, BASE64)
    }

    fn chatcmpl(&self) -> String {
        format!("chatcmpl-{}", self.text(SALT_CHATCMPL, 29, BASE62))
    }

    fn call(&self, i: usize) -> String {
        format!("call_{}", self.text(SALT_CALL + count(i), 24, BASE62))
    }

    fn fingerprint(&self) -> String {
        format!("fp_{}", self.text(SALT_FINGERPRINT, 10, HEX))
    }

    fn openai_request(&self) -> String {
        format!("req_{}", self.text(SALT_REQ, 32, HEX))
    }

    fn request_header(&self, api: Api) -> (&'static str, String) {
        match api {
            Api::OpenAiChat => ("x-request-id", self.openai_request()),
            _ => ("request-id", self.anthropic_request()),
        }
    }
}

// ------------------------------------------------------------------------------------------
// Response framing and timing

#[derive(Debug, Clone, Copy)]
struct Timing {
    ttft: Duration,
    itl: Duration,
}

impl Timing {
    /// How long a non-streaming reply of `paced` tokens takes to generate.
    fn total(&self, paced: usize) -> Duration {
        let gaps = u32::try_from(paced.saturating_sub(1)).unwrap_or(u32::MAX);
        self.ttft.saturating_add(self.itl.saturating_mul(gaps))
    }
}

/// How a frame is scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pace {
    /// Content: written alone, after the ttft / inter-token pause.
    Paced,
    /// Framing (block start/stop, ping): rides along with its neighbours in one write, as real
    /// providers group them.
    Grouped,
    /// The closing events (stop reason, usage, `[DONE]`): grouped, and never sent after a fault.
    Final,
}

/// One SSE event's bytes.
struct Frame {
    bytes: String,
    pace: Pace,
}

fn schedule_stream(
    api: Api,
    ids: &Ids,
    frames: Vec<Frame>,
    timing: Timing,
    fault: Option<Fault>,
    error_frame: String,
) -> Vec<Step> {
    let content_type = match api {
        Api::OpenAiChat => "text/event-stream",
        _ => "text/event-stream; charset=utf-8",
    };
    let mut steps = vec![Step::Head {
        status: 200,
        headers: vec![
            ("content-type", content_type.to_owned()),
            ("cache-control", "no-cache".to_owned()),
            ids.request_header(api),
        ],
        content_length: None,
    }];
    let limit = match fault {
        Some(Fault::Stall) => Some(1),
        Some(Fault::Reset | Fault::MidstreamError) => Some(FAULT_AFTER_TOKENS),
        None => None,
    };
    let mut pending: Vec<Frame> = Vec::new();
    let mut sent = 0usize;
    for frame in frames {
        if frame.pace != Pace::Paced {
            pending.push(frame);
            continue;
        }
        if limit == Some(sent) {
            break;
        }
        flush(&mut steps, &mut pending);
        let pause = if sent == 0 { timing.ttft } else { timing.itl };
        if !pause.is_zero() {
            steps.push(Step::Sleep(pause));
        }
        steps.push(Step::Data(Bytes::from(frame.bytes)));
        sent += 1;
    }
    if fault.is_some() {
        // A broken stream never carries its closing events.
        pending.retain(|f| f.pace != Pace::Final);
    }
    flush(&mut steps, &mut pending);
    match fault {
        Some(Fault::Reset) => steps.push(Step::Reset),
        Some(Fault::Stall) => steps.push(Step::Stall),
        Some(Fault::MidstreamError) => {
            steps.push(Step::Data(Bytes::from(error_frame)));
            steps.push(Step::End);
        }
        None => steps.push(Step::End),
    }
    steps
}

/// Writes the pending grouped frames as one Data step.
fn flush(steps: &mut Vec<Step>, pending: &mut Vec<Frame>) {
    if pending.is_empty() {
        return;
    }
    let bytes: String = pending.drain(..).map(|f| f.bytes).collect();
    steps.push(Step::Data(Bytes::from(bytes)));
}

/// A complete (Content-Length) reply after `delay`.
fn fixed_response(ids: &Ids, api: Api, status: u16, body: Vec<u8>, delay: Duration) -> Vec<Step> {
    fixed_with_headers(status, vec![ids.request_header(api)], body, delay)
}

fn fixed_with_headers(
    status: u16,
    mut headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    delay: Duration,
) -> Vec<Step> {
    headers.insert(0, ("content-type", "application/json".to_owned()));
    let mut steps = Vec::with_capacity(4);
    if !delay.is_zero() {
        steps.push(Step::Sleep(delay));
    }
    steps.push(Step::Head {
        status,
        headers,
        content_length: Some(body.len()),
    });
    steps.push(Step::Data(Bytes::from(body)));
    steps.push(Step::End);
    steps
}

fn render_body(api: Api, req: &Request, ids: &Ids, answer: &Answer) -> Vec<u8> {
    match api {
        Api::OpenAiChat => openai_body(req, ids, answer),
        _ => anthropic_body(req, ids, answer),
    }
    .into_bytes()
}

// ------------------------------------------------------------------------------------------
// Errors

/// What an error reply says.
enum ErrorText<'a> {
    /// The request was malformed.
    Request(&'a RequestError),
    /// A status asked for by a directive (or a fault with no stream to break).
    Status,
}

fn error_response(api: Api, ids: &Ids, status: u16, text: &ErrorText<'_>) -> Vec<Step> {
    let mut headers = vec![ids.request_header(api)];
    if status == 429 {
        headers.push(("retry-after", "1".to_owned()));
    }
    let body = match api {
        Api::OpenAiChat => {
            let (message, kind, param, code) = match text {
                ErrorText::Request(err) => openai_request_error(err),
                ErrorText::Status => openai_status_error(status),
            };
            let envelope = OpenAiErrorEnvelope {
                error: OpenAiError {
                    message: &message,
                    kind,
                    param,
                    code,
                },
            };
            // OpenAI error bodies are indented and end with a newline.
            let mut body = json_pretty(&envelope);
            body.push('\n');
            body
        }
        _ => {
            let should_retry = matches!(status, 408 | 409 | 429) || status >= 500;
            headers.push(("x-should-retry", should_retry.to_string()));
            let (kind, message) = match text {
                ErrorText::Request(err) => ("invalid_request_error", err.to_string()),
                ErrorText::Status => anthropic_status_error(status),
            };
            json(&AnthropicErrorEnvelope {
                kind: "error",
                error: AnthropicError {
                    details: None,
                    kind,
                    message: &message,
                },
                request_id: ids.anthropic_request(),
            })
        }
    };
    fixed_with_headers(status, headers, body.into_bytes(), Duration::ZERO)
}

/// The provider's error reply with `status`, as `mock:status=` gives it (per-target faults
/// build on it; 429 carries `retry-after: 1`).
pub(crate) fn status_reply(api: Api, body: &[u8], status: u16) -> Vec<Step> {
    error_response(api, &Ids::new(body), status, &ErrorText::Status)
}

/// The provider's in-stream error event, as `mock:midstream_error` ends a stream with it.
pub(crate) fn stream_error_event(api: Api, body: &[u8]) -> Bytes {
    Bytes::from(match api {
        Api::OpenAiChat => openai_error_frame(),
        _ => anthropic_error_frame(&Ids::new(body)),
    })
}

fn anthropic_status_error(status: u16) -> (&'static str, String) {
    let (kind, message) = match status {
        401 => ("authentication_error", "invalid x-api-key"),
        402 => (
            "billing_error",
            "Your credit balance is too low to access the Anthropic API.",
        ),
        403 => (
            "permission_error",
            "Your API key does not have permission to use the specified resource.",
        ),
        404 => (
            "not_found_error",
            "The requested resource could not be found.",
        ),
        409 => (
            "conflict_error",
            "The request conflicts with another request.",
        ),
        413 => (
            "request_too_large",
            "Request exceeds the maximum allowed number of bytes.",
        ),
        429 => (
            "rate_limit_error",
            "This request would exceed your organization's rate limit. Please try again later.",
        ),
        504 => ("timeout_error", "Request timed out."),
        529 => ("overloaded_error", "Overloaded"),
        500..=599 => ("api_error", "Internal server error"),
        _ => ("invalid_request_error", "Invalid request."),
    };
    (kind, message.to_owned())
}

type OpenAiErrorParts = (
    String,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
);

fn openai_request_error(err: &RequestError) -> OpenAiErrorParts {
    let kind = "invalid_request_error";
    match err {
        RequestError::InvalidJson | RequestError::NotObject => (
            "We could not parse the JSON body of your request. The API expects a JSON payload."
                .to_owned(),
            kind,
            None,
            None,
        ),
        RequestError::Missing("model") => (
            "you must provide a model parameter".to_owned(),
            kind,
            None,
            None,
        ),
        RequestError::Missing(field) => (
            format!("Missing required parameter: '{field}'."),
            kind,
            Some(field),
            Some("missing_required_parameter"),
        ),
        RequestError::Invalid(field) => (
            format!("Invalid value for '{field}'."),
            kind,
            Some(field),
            Some("invalid_value"),
        ),
        RequestError::EmptyMessages => (
            "[] is too short - 'messages'".to_owned(),
            kind,
            Some("messages"),
            None,
        ),
        RequestError::Refused(message) => ((*message).to_owned(), kind, None, None),
        RequestError::BadSignature(..) => (err.to_string(), kind, None, None),
    }
}

fn openai_status_error(status: u16) -> OpenAiErrorParts {
    let (message, kind, code) = match status {
        401 => (
            "Incorrect API key provided.",
            "invalid_request_error",
            Some("invalid_api_key"),
        ),
        403 => (
            "You are not allowed to access this resource.",
            "invalid_request_error",
            None,
        ),
        404 => (
            "The model does not exist or you do not have access to it.",
            "invalid_request_error",
            Some("model_not_found"),
        ),
        429 => (
            "Rate limit reached for requests. Please try again in 1s.",
            "requests",
            Some("rate_limit_exceeded"),
        ),
        503 => (
            "The engine is currently overloaded, please try again later.",
            "server_error",
            None,
        ),
        500..=599 => (
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
        ),
        _ => ("Invalid request.", "invalid_request_error", None),
    };
    (message.to_owned(), kind, None, code)
}

fn anthropic_error_frame(ids: &Ids) -> String {
    let event = AnthropicErrorEnvelope {
        kind: "error",
        error: AnthropicError {
            details: Some(Value::Null),
            kind: "overloaded_error",
            message: "Overloaded",
        },
        request_id: ids.anthropic_request(),
    };
    format!("event: error\ndata: {}\n\n", json(&event))
}

fn openai_error_frame() -> String {
    let envelope = OpenAiErrorEnvelope {
        error: OpenAiError {
            message: "The server had an error while processing your request. Sorry about that!",
            kind: "server_error",
            param: None,
            code: None,
        },
    };
    format!("data: {}\n\n", json(&envelope))
}

#[derive(Serialize)]
struct OpenAiErrorEnvelope<'a> {
    error: OpenAiError<'a>,
}

#[derive(Serialize)]
struct OpenAiError<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

#[derive(Serialize)]
struct AnthropicErrorEnvelope<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: AnthropicError<'a>,
    request_id: String,
}

#[derive(Serialize)]
struct AnthropicError<'a> {
    /// In-stream errors carry `"details": null`; HTTP error bodies leave it out.
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Value>,
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
struct CountTokens {
    input_tokens: u64,
}

// ------------------------------------------------------------------------------------------
// Anthropic rendering

#[derive(Serialize)]
struct AMessage<'a> {
    model: &'a str,
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    content: Vec<ABlock<'a>>,
    stop_reason: Option<&'static str>,
    stop_sequence: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_details: Option<AStopDetails>,
    usage: AUsage,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ABlock<'a> {
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
    Text {
        text: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: ArgsObject<'a>,
        caller: Caller,
    },
}

#[derive(Serialize)]
struct Caller {
    #[serde(rename = "type")]
    kind: &'static str,
}

const DIRECT: Caller = Caller { kind: "direct" };

#[derive(Serialize, Clone, Copy)]
struct AStopDetails {
    #[serde(rename = "type")]
    kind: &'static str,
    category: &'static str,
    explanation: &'static str,
}

const REFUSAL_DETAILS: AStopDetails = AStopDetails {
    kind: "refusal",
    category: "cyber",
    explanation: "This request was refused by the ringway mock (mock:refusal).",
};

#[derive(Serialize)]
struct AUsage {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    cache_creation: ACacheCreation,
    output_tokens: u64,
    service_tier: &'static str,
    inference_geo: &'static str,
}

#[derive(Serialize)]
struct ACacheCreation {
    ephemeral_5m_input_tokens: u64,
    ephemeral_1h_input_tokens: u64,
}

impl AUsage {
    fn new(usage: &Usage, output: u64) -> Self {
        Self {
            input_tokens: usage.uncached(),
            cache_creation_input_tokens: usage.cache_write,
            cache_read_input_tokens: usage.cache_read,
            cache_creation: ACacheCreation {
                ephemeral_5m_input_tokens: usage.cache_write,
                ephemeral_1h_input_tokens: 0,
            },
            output_tokens: output,
            service_tier: "standard",
            inference_geo: "not_available",
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum AEvent<'a> {
    MessageStart {
        message: AMessage<'a>,
    },
    ContentBlockStart {
        index: usize,
        content_block: ABlock<'a>,
    },
    ContentBlockDelta {
        index: usize,
        delta: ADelta<'a>,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        delta: AMessageDelta<'a>,
        usage: AUsageDelta,
    },
    MessageStop,
}

impl AEvent<'_> {
    fn name(&self) -> &'static str {
        match self {
            Self::MessageStart { .. } => "message_start",
            Self::ContentBlockStart { .. } => "content_block_start",
            Self::ContentBlockDelta { .. } => "content_block_delta",
            Self::ContentBlockStop { .. } => "content_block_stop",
            Self::MessageDelta { .. } => "message_delta",
            Self::MessageStop => "message_stop",
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "type")]
enum ADelta<'a> {
    #[serde(rename = "text_delta")]
    Text { text: &'a str },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a str },
    #[serde(rename = "signature_delta")]
    Signature { signature: &'a str },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: &'a str },
}

#[derive(Serialize)]
struct AMessageDelta<'a> {
    stop_reason: &'static str,
    stop_sequence: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_details: Option<AStopDetails>,
}

#[derive(Serialize)]
struct AUsageDelta {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
}

fn anthropic_body(req: &Request, ids: &Ids, answer: &Answer) -> String {
    let texts: Vec<String> = answer
        .blocks
        .iter()
        .map(|b| match b {
            Block::Thinking { pieces, .. } | Block::Text(pieces) | Block::Refusal(pieces) => {
                pieces.concat()
            }
            Block::Tool(_) => String::new(),
        })
        .collect();
    let content = answer
        .blocks
        .iter()
        .zip(&texts)
        .filter_map(|(block, text)| match block {
            Block::Thinking { signature, .. } => Some(ABlock::Thinking {
                thinking: text,
                signature,
            }),
            // An empty answer (refusal, max_tokens 0) has no text block at all.
            Block::Text(_) | Block::Refusal(_) if text.is_empty() => None,
            Block::Text(_) | Block::Refusal(_) => Some(ABlock::Text { text }),
            Block::Tool(call) => Some(ABlock::ToolUse {
                id: &call.id,
                name: &call.name,
                input: ArgsObject(&call.args),
                caller: DIRECT,
            }),
        })
        .collect();
    let id = ids.message();
    json(&AMessage {
        model: &req.model,
        id: &id,
        kind: "message",
        role: "assistant",
        content,
        stop_reason: Some(answer.stop.anthropic()),
        stop_sequence: answer.stop.sequence(),
        stop_details: answer.stop.is_refusal().then_some(REFUSAL_DETAILS),
        usage: AUsage::new(&answer.usage, answer.usage.output),
    })
}

/// Collects Anthropic SSE frames, padding each event's JSON the way real streams do.
struct AnthropicFrames<'i> {
    ids: &'i Ids,
    frames: Vec<Frame>,
}

impl AnthropicFrames<'_> {
    fn event(&mut self, event: &AEvent<'_>, pace: Pace) {
        let pad = usize::try_from(self.ids.number(SALT_PAD + count(self.frames.len())) % MAX_PAD)
            .unwrap_or(0);
        let mut data = json(event);
        // Real streams pad inside the closing brace: `{"type":"message_stop"      }`.
        if data.ends_with('}') {
            // `}` is one byte, so `len - 1` is a char boundary.
            data.insert_str(data.len() - 1, &" ".repeat(pad));
        }
        self.frames.push(Frame {
            bytes: format!("event: {}\ndata: {data}\n\n", event.name()),
            pace,
        });
    }

    /// `ping` is written by hand: its JSON has a space after the colon on the real wire.
    fn ping(&mut self) {
        self.frames.push(Frame {
            bytes: "event: ping\ndata: {\"type\": \"ping\"}\n\n".to_owned(),
            pace: Pace::Grouped,
        });
    }
}

fn anthropic_frames(req: &Request, ids: &Ids, answer: &Answer) -> Vec<Frame> {
    let mut out = AnthropicFrames {
        ids,
        frames: Vec::new(),
    };
    let id = ids.message();
    let start = AEvent::MessageStart {
        message: AMessage {
            model: &req.model,
            id: &id,
            kind: "message",
            role: "assistant",
            content: Vec::new(),
            stop_reason: None,
            stop_sequence: None,
            stop_details: None,
            usage: AUsage::new(&answer.usage, 1),
        },
    };
    out.event(&start, Pace::Grouped);
    if answer.blocks.is_empty() {
        out.ping();
    }
    for (index, block) in answer.blocks.iter().enumerate() {
        let content_block = match block {
            Block::Thinking { .. } => ABlock::Thinking {
                thinking: "",
                signature: "",
            },
            Block::Text(_) | Block::Refusal(_) => ABlock::Text { text: "" },
            Block::Tool(call) => ABlock::ToolUse {
                id: &call.id,
                name: &call.name,
                input: ArgsObject(&[]),
                caller: DIRECT,
            },
        };
        out.event(
            &AEvent::ContentBlockStart {
                index,
                content_block,
            },
            Pace::Grouped,
        );
        if index == 0 {
            // Recorded streams ping right after the first content_block_start.
            out.ping();
        }
        let delta = |delta| AEvent::ContentBlockDelta { index, delta };
        match block {
            Block::Thinking { pieces, signature } => {
                for piece in pieces {
                    out.event(&delta(ADelta::Thinking { thinking: piece }), Pace::Paced);
                }
                out.event(&delta(ADelta::Signature { signature }), Pace::Grouped);
            }
            Block::Text(pieces) | Block::Refusal(pieces) => {
                for piece in pieces {
                    out.event(&delta(ADelta::Text { text: piece }), Pace::Paced);
                }
            }
            Block::Tool(call) => {
                // The first input_json_delta is always empty in real streams.
                out.event(
                    &delta(ADelta::InputJson { partial_json: "" }),
                    Pace::Grouped,
                );
                for piece in &call.pieces {
                    let partial = ADelta::InputJson {
                        partial_json: piece,
                    };
                    out.event(&delta(partial), Pace::Paced);
                }
            }
        }
        out.event(&AEvent::ContentBlockStop { index }, Pace::Grouped);
    }
    let end = AEvent::MessageDelta {
        delta: AMessageDelta {
            stop_reason: answer.stop.anthropic(),
            stop_sequence: answer.stop.sequence(),
            stop_details: answer.stop.is_refusal().then_some(REFUSAL_DETAILS),
        },
        usage: AUsageDelta {
            input_tokens: answer.usage.uncached(),
            cache_creation_input_tokens: answer.usage.cache_write,
            cache_read_input_tokens: answer.usage.cache_read,
            output_tokens: answer.usage.output,
        },
    };
    out.event(&end, Pace::Final);
    out.event(&AEvent::MessageStop, Pace::Final);
    out.frames
}

// ------------------------------------------------------------------------------------------
// OpenAI rendering

#[derive(Serialize)]
struct OCompletion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [OChoice<'a>; 1],
    usage: OUsage,
    service_tier: &'static str,
    system_fingerprint: &'a str,
}

#[derive(Serialize)]
struct OChoice<'a> {
    index: u32,
    message: OMessage<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct OMessage<'a> {
    role: &'static str,
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<OToolCall<'a>>>,
    refusal: Option<&'a str>,
    annotations: [(); 0],
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
}

#[derive(Serialize)]
struct OToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: OFunction<'a>,
}

#[derive(Serialize)]
struct OFunction<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct OUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: OPromptDetails,
    completion_tokens_details: OCompletionDetails,
}

#[derive(Serialize)]
struct OPromptDetails {
    cached_tokens: u64,
    audio_tokens: u64,
}

#[derive(Serialize)]
struct OCompletionDetails {
    reasoning_tokens: u64,
    audio_tokens: u64,
    accepted_prediction_tokens: u64,
    rejected_prediction_tokens: u64,
}

impl OUsage {
    fn new(usage: &Usage) -> Self {
        Self {
            prompt_tokens: usage.input,
            completion_tokens: usage.output,
            total_tokens: usage.input.saturating_add(usage.output),
            prompt_tokens_details: OPromptDetails {
                cached_tokens: usage.cache_read,
                audio_tokens: 0,
            },
            completion_tokens_details: OCompletionDetails {
                reasoning_tokens: usage.reasoning,
                audio_tokens: 0,
                accepted_prediction_tokens: 0,
                rejected_prediction_tokens: 0,
            },
        }
    }
}

#[derive(Serialize)]
struct OChunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    service_tier: &'static str,
    system_fingerprint: &'a str,
    choices: Vec<OChunkChoice<'a>>,
    /// Absent unless `include_usage`; then `null` on every chunk but the usage chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<OUsage>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    obfuscation: Option<String>,
}

#[derive(Serialize)]
struct OChunkChoice<'a> {
    index: u32,
    delta: ODelta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

/// A streamed delta. Double options tell "absent" (outer `None`) from `null` (`Some(None)`).
#[derive(Serialize, Default)]
struct ODelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refusal: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[OToolDelta<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
}

#[derive(Serialize)]
struct OToolDelta<'a> {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: OFunctionDelta<'a>,
}

#[derive(Serialize)]
struct OFunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

fn openai_body(req: &Request, ids: &Ids, answer: &Answer) -> String {
    let mut text: Option<String> = None;
    let mut refusal: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut calls = Vec::new();
    for block in &answer.blocks {
        match block {
            Block::Text(pieces) => text
                .get_or_insert_with(String::new)
                .push_str(&pieces.concat()),
            Block::Refusal(pieces) => {
                refusal
                    .get_or_insert_with(String::new)
                    .push_str(&pieces.concat());
            }
            Block::Tool(call) => calls.push(OToolCall {
                id: &call.id,
                kind: "function",
                function: OFunction {
                    name: &call.name,
                    arguments: &call.args_text,
                },
            }),
            Block::Thinking { pieces, .. } => reasoning
                .get_or_insert_with(String::new)
                .push_str(&pieces.concat()),
        }
    }
    let (id, fingerprint) = (ids.chatcmpl(), ids.fingerprint());
    json_pretty(&OCompletion {
        id: &id,
        object: "chat.completion",
        created: CREATED_UNIX,
        model: &req.model,
        choices: [OChoice {
            index: 0,
            message: OMessage {
                role: "assistant",
                content: text.as_deref(),
                tool_calls: (!calls.is_empty()).then_some(calls),
                refusal: refusal.as_deref(),
                annotations: [],
                reasoning_content: reasoning.as_deref(),
            },
            logprobs: None,
            finish_reason: answer.stop.openai(),
        }],
        usage: OUsage::new(&answer.usage),
        service_tier: "default",
        system_fingerprint: &fingerprint,
    })
}

/// Collects OpenAI SSE frames; every chunk repeats the same envelope fields.
struct OpenAiFrames<'i> {
    ids: &'i Ids,
    id: String,
    model: &'i str,
    fingerprint: String,
    include_usage: bool,
    obfuscation: bool,
    frames: Vec<Frame>,
}

impl OpenAiFrames<'_> {
    fn chunk(&mut self, choices: Vec<OChunkChoice<'_>>, usage: Option<OUsage>, pace: Pace) {
        let obfuscation = self.obfuscation.then(|| {
            let salt = SALT_OBFUSCATION + count(self.frames.len());
            let len = 1 + self.ids.number(salt) % MAX_OBFUSCATION;
            self.ids
                .text(salt, usize::try_from(len).unwrap_or(1), BASE62)
        });
        let chunk = OChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: CREATED_UNIX,
            model: self.model,
            service_tier: "default",
            system_fingerprint: &self.fingerprint,
            choices,
            usage: self.include_usage.then_some(usage),
            obfuscation,
        };
        self.frames.push(Frame {
            bytes: format!("data: {}\n\n", json(&chunk)),
            pace,
        });
    }

    fn delta(&mut self, delta: ODelta<'_>, pace: Pace) {
        let choice = OChunkChoice {
            index: 0,
            delta,
            logprobs: None,
            finish_reason: None,
        };
        self.chunk(vec![choice], None, pace);
    }
}

fn openai_frames(req: &Request, ids: &Ids, answer: &Answer) -> Vec<Frame> {
    let mut out = OpenAiFrames {
        ids,
        id: ids.chatcmpl(),
        model: &req.model,
        fingerprint: ids.fingerprint(),
        include_usage: req.include_usage,
        obfuscation: req.obfuscation,
        frames: Vec::new(),
    };
    // The role chunk's shape depends on what follows (all three shapes are recorded).
    let first = match answer
        .blocks
        .iter()
        .find(|b| !matches!(b, Block::Thinking { .. }))
    {
        Some(Block::Tool(_)) => ODelta {
            role: Some("assistant"),
            content: Some(None),
            ..ODelta::default()
        },
        Some(Block::Refusal(_)) => ODelta {
            role: Some("assistant"),
            content: Some(None),
            refusal: Some(Some("")),
            ..ODelta::default()
        },
        _ => ODelta {
            role: Some("assistant"),
            content: Some(Some("")),
            refusal: Some(None),
            ..ODelta::default()
        },
    };
    out.delta(first, Pace::Grouped);
    let mut tool_index = 0usize;
    for block in &answer.blocks {
        match block {
            Block::Thinking { pieces, .. } => {
                for piece in pieces {
                    let delta = ODelta {
                        reasoning_content: Some(piece),
                        ..ODelta::default()
                    };
                    out.delta(delta, Pace::Paced);
                }
            }
            Block::Text(pieces) => {
                for piece in pieces {
                    let delta = ODelta {
                        content: Some(Some(piece)),
                        ..ODelta::default()
                    };
                    out.delta(delta, Pace::Paced);
                }
            }
            Block::Refusal(pieces) => {
                for piece in pieces {
                    let delta = ODelta {
                        refusal: Some(Some(piece)),
                        ..ODelta::default()
                    };
                    out.delta(delta, Pace::Paced);
                }
            }
            Block::Tool(call) => {
                // id, type and name only on a call's first delta: SDK accumulators concatenate.
                let head = OToolDelta {
                    index: tool_index,
                    id: Some(&call.id),
                    kind: Some("function"),
                    function: OFunctionDelta {
                        name: Some(&call.name),
                        arguments: "",
                    },
                };
                let delta = ODelta {
                    tool_calls: Some([head]),
                    ..ODelta::default()
                };
                out.delta(delta, Pace::Paced);
                // A call without arguments still needs valid JSON: OpenAI sends "{}".
                let no_args = [call.args_text.clone()];
                let pieces = if call.pieces.is_empty() {
                    &no_args[..]
                } else {
                    &call.pieces[..]
                };
                for piece in pieces {
                    let fragment = OToolDelta {
                        index: tool_index,
                        id: None,
                        kind: None,
                        function: OFunctionDelta {
                            name: None,
                            arguments: piece,
                        },
                    };
                    let delta = ODelta {
                        tool_calls: Some([fragment]),
                        ..ODelta::default()
                    };
                    out.delta(delta, Pace::Paced);
                }
                tool_index += 1;
            }
        }
    }
    let finish = OChunkChoice {
        index: 0,
        delta: ODelta::default(),
        logprobs: None,
        finish_reason: Some(answer.stop.openai()),
    };
    out.chunk(vec![finish], None, Pace::Final);
    if req.include_usage {
        out.chunk(Vec::new(), Some(OUsage::new(&answer.usage)), Pace::Final);
    }
    out.frames.push(Frame {
        bytes: "data: [DONE]\n\n".to_owned(),
        pace: Pace::Final,
    });
    out.frames
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

    const TTFT: Duration = Duration::from_millis(100);
    const ITL: Duration = Duration::from_millis(10);
    const DEFAULTS: Defaults = Defaults {
        ttft: TTFT,
        inter_token: ITL,
    };

    fn run(api: Api, body: &Value) -> Vec<Step> {
        plan(api, body.to_string().as_bytes(), &DEFAULTS)
    }

    fn anthropic(prompt: &str, extra: Value) -> Value {
        let mut body = json!({
            "model": "claude-test",
            "max_tokens": 1024,
            "messages": [{"role": "user", "content": prompt}],
        });
        merge(&mut body, extra);
        body
    }

    fn openai(prompt: &str, extra: Value) -> Value {
        let mut body = json!({
            "model": "gpt-test",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": prompt},
            ],
        });
        merge(&mut body, extra);
        body
    }

    fn merge(body: &mut Value, extra: Value) {
        if let Value::Object(extra) = extra {
            for (k, v) in extra {
                body[k] = v;
            }
        }
    }

    fn input_tokens(body: &Value) -> u64 {
        body.to_string().len().div_ceil(4) as u64
    }

    struct Head {
        status: u16,
        headers: Vec<(&'static str, String)>,
        content_length: Option<usize>,
    }

    impl Head {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        }
    }

    fn head(steps: &[Step]) -> Head {
        steps
            .iter()
            .find_map(|s| match s {
                Step::Head {
                    status,
                    headers,
                    content_length,
                } => Some(Head {
                    status: *status,
                    headers: headers.clone(),
                    content_length: *content_length,
                }),
                _ => None,
            })
            .expect("a head step")
    }

    fn body(steps: &[Step]) -> String {
        let mut out = Vec::new();
        for step in steps {
            if let Step::Data(bytes) = step {
                out.extend_from_slice(bytes);
            }
        }
        String::from_utf8(out).unwrap()
    }

    /// A complete non-streaming reply: Content-Length matches, ends with End, body is JSON.
    fn fixed(steps: &[Step]) -> (Head, String, Value) {
        let h = head(steps);
        let text = body(steps);
        assert_eq!(h.content_length, Some(text.len()));
        assert_eq!(h.header("content-type"), Some("application/json"));
        assert_eq!(steps.last(), Some(&Step::End));
        let value = serde_json::from_str(&text).unwrap();
        (h, text, value)
    }

    /// SSE events as (event name, data) pairs; asserts every Data step holds whole events.
    fn sse(steps: &[Step]) -> Vec<(Option<String>, String)> {
        for step in steps {
            if let Step::Data(bytes) = step {
                assert!(bytes.ends_with(b"\n\n"), "Data step splits an event");
            }
        }
        let text = body(steps);
        let mut events = Vec::new();
        for raw in text.split("\n\n").filter(|e| !e.is_empty()) {
            let mut name = None;
            let mut data = None;
            for line in raw.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    assert!(data.is_none(), "one data line per event");
                    data = Some(v.to_owned());
                } else {
                    panic!("unexpected SSE line {line:?}");
                }
            }
            events.push((name, data.expect("data line")));
        }
        events
    }

    /// Anthropic events: every frame is named after its JSON `type`.
    fn a_events(steps: &[Step]) -> Vec<(String, Value)> {
        sse(steps)
            .into_iter()
            .map(|(name, data)| {
                let name = name.expect("anthropic frames have event names");
                let value: Value = serde_json::from_str(&data).unwrap();
                assert_eq!(value["type"], name.as_str());
                (name, value)
            })
            .collect()
    }

    fn a_names(events: &[(String, Value)]) -> Vec<&str> {
        events.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// OpenAI chunks (without the final `[DONE]`) and whether `[DONE]` ended the stream.
    fn o_chunks(steps: &[Step]) -> (Vec<Value>, bool) {
        let events = sse(steps);
        let mut chunks = Vec::new();
        let mut done = false;
        for (name, data) in events {
            assert!(name.is_none(), "openai frames have no event names");
            assert!(!done, "nothing after [DONE]");
            if data == "[DONE]" {
                done = true;
            } else {
                chunks.push(serde_json::from_str(&data).unwrap());
            }
        }
        (chunks, done)
    }

    fn a_text(events: &[(String, Value)], index: u64) -> String {
        events
            .iter()
            .filter(|(n, v)| n == "content_block_delta" && v["index"] == index)
            .filter_map(|(_, v)| v["delta"]["text"].as_str())
            .collect()
    }

    fn o_text(chunks: &[Value]) -> String {
        chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect()
    }

    fn keys_in_order(text: &str, keys: &[&str]) {
        let mut last = 0;
        for key in keys {
            let quoted = format!("\"{key}\"");
            let at = text[last..]
                .find(&quoted)
                .unwrap_or_else(|| panic!("{key} missing or out of order in {text}"));
            last += at + quoted.len();
        }
    }

    fn sleeps(steps: &[Step]) -> Vec<Duration> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Sleep(d) => Some(*d),
                _ => None,
            })
            .collect()
    }

    fn weather_tool_anthropic() -> Value {
        json!({
            "name": "get_weather",
            "description": "weather",
            "input_schema": {
                "type": "object",
                "properties": {
                    "location": {"type": "string"},
                    "units": {"type": "string", "enum": ["c", "f"]},
                    "days": {"type": "integer"},
                    "detailed": {"type": "boolean"},
                    "tags": {"type": "array"},
                    "extra": {"type": "object"},
                    "note": {"type": ["null", "number"]},
                    "optional": {"type": "string"}
                },
                "required": ["location", "units", "days", "detailed", "tags", "extra", "note"]
            }
        })
    }

    fn expected_weather_args() -> Value {
        json!({"location": "mock", "units": "c", "days": 1, "detailed": true,
               "tags": [], "extra": {}, "note": 1})
    }

    fn openai_tool(name: &str, parameters: Value) -> Value {
        json!({"type": "function", "function": {"name": name, "parameters": parameters}})
    }

    fn weather_tool_openai() -> Value {
        openai_tool(
            "get_weather",
            weather_tool_anthropic()["input_schema"].clone(),
        )
    }

    // ---------------------------------------------------------------- routing and errors

    #[test]
    fn paths_map_to_apis() {
        assert_eq!(api_for_path("/v1/chat/completions"), Some(Api::OpenAiChat));
        assert_eq!(api_for_path("/chat/completions"), Some(Api::OpenAiChat));
        assert_eq!(
            api_for_path("/openai/v1/chat/completions"),
            Some(Api::OpenAiChat)
        );
        assert_eq!(api_for_path("/v1/messages"), Some(Api::AnthropicMessages));
        assert_eq!(
            api_for_path("/v1/messages?beta=true"),
            Some(Api::AnthropicMessages)
        );
        assert_eq!(
            api_for_path("/v1/messages/count_tokens"),
            Some(Api::AnthropicCountTokens)
        );
        assert_eq!(api_for_path("/v1/models"), None);
        assert_eq!(api_for_path("/v1/messages/batches"), None);
        assert_eq!(api_for_path("/"), None);
    }

    fn assert_openai_error(steps: &[Step], status: u16, kind: &str) -> Value {
        let (h, text, v) = fixed(steps);
        assert_eq!(h.status, status);
        assert!(h.header("x-request-id").unwrap().starts_with("req_"));
        assert!(text.ends_with("}\n"), "pretty body with trailing newline");
        keys_in_order(&text, &["error", "message", "type", "param", "code"]);
        assert_eq!(v.as_object().unwrap().len(), 1);
        assert_eq!(v["error"].as_object().unwrap().len(), 4);
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        assert_eq!(v["error"]["type"], kind);
        v
    }

    fn assert_anthropic_error(steps: &[Step], status: u16, kind: &str) -> Value {
        let (h, text, v) = fixed(steps);
        assert_eq!(h.status, status);
        assert!(h.header("request-id").unwrap().starts_with("req_011C"));
        keys_in_order(&text, &["type", "error", "type", "message", "request_id"]);
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], kind);
        assert!(v["error"].get("details").is_none());
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        assert_eq!(v["request_id"].as_str().unwrap().len(), 28);
        assert_eq!(h.header("request-id"), v["request_id"].as_str());
        v
    }

    #[test]
    fn invalid_json_is_a_400_in_each_format() {
        for api in [Api::AnthropicMessages, Api::AnthropicCountTokens] {
            let steps = plan(api, b"{not json", &DEFAULTS);
            assert_anthropic_error(&steps, 400, "invalid_request_error");
        }
        let steps = plan(Api::OpenAiChat, b"[1,2", &DEFAULTS);
        let v = assert_openai_error(&steps, 400, "invalid_request_error");
        assert_eq!(v["error"]["param"], Value::Null);
        let steps = plan(Api::OpenAiChat, b"[]", &DEFAULTS);
        assert_openai_error(&steps, 400, "invalid_request_error");
    }

    #[test]
    fn thinking_forms_are_refused_per_model_like_the_real_api() {
        let budget = json!({"type": "enabled", "budget_tokens": 1024});
        let adaptive = json!({"type": "adaptive"});
        let body = |model: &str, thinking: &Value| {
            anthropic(
                "hi mock:status=503",
                json!({"model": model, "thinking": thinking, "max_tokens": 2048}),
            )
        };
        for model in [
            "claude-opus-4-7",
            "claude-sonnet-5-20260901",
            "claude-mythos-preview",
        ] {
            let steps = run(Api::AnthropicMessages, &body(model, &budget));
            let v = assert_anthropic_error(&steps, 400, "invalid_request_error");
            assert_eq!(
                v["error"]["message"], THINKING_ENABLED_UNSUPPORTED,
                "{model}"
            );
            // The directive's 503 shows the adaptive form got past validation.
            let steps = run(Api::AnthropicMessages, &body(model, &adaptive));
            assert_eq!(head(&steps).status, 503, "{model}");
        }
        for model in [
            "claude-sonnet-4-5",
            "claude-3-7-sonnet-20250219",
            "claude-haiku-4-5",
        ] {
            let steps = run(Api::AnthropicMessages, &body(model, &adaptive));
            let v = assert_anthropic_error(&steps, 400, "invalid_request_error");
            assert_eq!(v["error"]["message"], ADAPTIVE_UNSUPPORTED, "{model}");
            let steps = run(Api::AnthropicMessages, &body(model, &budget));
            assert_eq!(head(&steps).status, 503, "{model}");
        }
        // 4.6 and ids the mock does not know take both forms.
        for model in ["claude-opus-4-6", "claude-sonnet-4-6", "claude-test"] {
            for thinking in [&budget, &adaptive] {
                let steps = run(Api::AnthropicMessages, &body(model, thinking));
                assert_eq!(head(&steps).status, 503, "{model} {thinking}");
            }
        }
    }

    #[test]
    fn missing_required_fields_are_400s() {
        let no_model = json!({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]});
        let v = assert_anthropic_error(
            &run(Api::AnthropicMessages, &no_model),
            400,
            "invalid_request_error",
        );
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("model:"));
        let no_max = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
        let v = assert_anthropic_error(
            &run(Api::AnthropicMessages, &no_max),
            400,
            "invalid_request_error",
        );
        assert_eq!(v["error"]["message"], "max_tokens: Field required");
        // count_tokens needs no max_tokens.
        let (h, _, v) = fixed(&run(Api::AnthropicCountTokens, &no_max));
        assert_eq!(h.status, 200);
        assert_eq!(v, json!({"input_tokens": input_tokens(&no_max)}));

        let no_messages = json!({"model": "m"});
        let v = assert_openai_error(
            &run(Api::OpenAiChat, &no_messages),
            400,
            "invalid_request_error",
        );
        assert_eq!(v["error"]["param"], "messages");
        assert_eq!(v["error"]["code"], "missing_required_parameter");
        let empty = json!({"model": "m", "messages": []});
        assert_openai_error(&run(Api::OpenAiChat, &empty), 400, "invalid_request_error");
        let bad_max = json!({"model": "m", "max_tokens": "x", "messages": [{"role": "user", "content": "x"}]});
        let v = assert_anthropic_error(
            &run(Api::AnthropicMessages, &bad_max),
            400,
            "invalid_request_error",
        );
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("max_tokens"));
        let no_model = json!({"messages": [{"role": "user", "content": "x"}]});
        let v = assert_openai_error(
            &run(Api::OpenAiChat, &no_model),
            400,
            "invalid_request_error",
        );
        assert_eq!(v["error"]["message"], "you must provide a model parameter");
    }

    #[test]
    fn status_directive_uses_each_provider_error_body() {
        let cases = [
            (400, "invalid_request_error"),
            (401, "authentication_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (413, "request_too_large"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (503, "api_error"),
            (504, "timeout_error"),
            (529, "overloaded_error"),
        ];
        for (status, kind) in cases {
            for stream in [false, true] {
                let prompt = format!("hi mock:status={status}");
                let body = anthropic(&prompt, json!({"stream": stream}));
                let steps = run(Api::AnthropicMessages, &body);
                assert_anthropic_error(&steps, status, kind);
                let h = head(&steps);
                assert_eq!(h.header("retry-after").is_some(), status == 429);
                let retry = status == 429 || status >= 500;
                assert_eq!(
                    h.header("x-should-retry"),
                    Some(if retry { "true" } else { "false" })
                );
            }
        }
        let steps = run(
            Api::AnthropicCountTokens,
            &anthropic("mock:status=529", json!({})),
        );
        assert_anthropic_error(&steps, 529, "overloaded_error");

        let cases = [
            (400, "invalid_request_error", None),
            (401, "invalid_request_error", Some("invalid_api_key")),
            (404, "invalid_request_error", Some("model_not_found")),
            (429, "requests", Some("rate_limit_exceeded")),
            (500, "server_error", None),
            (503, "server_error", None),
        ];
        for (status, kind, code) in cases {
            let body = openai(&format!("mock:status={status}"), json!({"stream": true}));
            let steps = run(Api::OpenAiChat, &body);
            let v = assert_openai_error(&steps, status, kind);
            assert_eq!(v["error"]["code"].as_str(), code);
            assert_eq!(head(&steps).header("retry-after").is_some(), status == 429);
        }
        // Out-of-range statuses are ignored.
        let steps = run(
            Api::OpenAiChat,
            &openai("mock:status=200 mock:status=x", json!({})),
        );
        assert_eq!(head(&steps).status, 200);
    }

    // ---------------------------------------------------------------- determinism

    #[test]
    fn same_body_same_steps_and_different_bodies_different_ids() {
        let bodies = [
            (
                Api::AnthropicMessages,
                anthropic("one two", json!({"stream": true})),
            ),
            (Api::AnthropicMessages, anthropic("one two", json!({}))),
            (
                Api::OpenAiChat,
                openai(
                    "one two",
                    json!({"stream": true, "stream_options": {"include_usage": true}}),
                ),
            ),
            (
                Api::OpenAiChat,
                openai("one two", json!({"tools": [weather_tool_openai()]})),
            ),
            (
                Api::AnthropicMessages,
                anthropic(
                    "mock:thinking",
                    json!({"stream": true, "tools": [weather_tool_anthropic()]}),
                ),
            ),
        ];
        for (api, body) in &bodies {
            assert_eq!(run(*api, body), run(*api, body));
        }
        let a = fixed(&run(Api::AnthropicMessages, &anthropic("one", json!({})))).2;
        let b = fixed(&run(Api::AnthropicMessages, &anthropic("two", json!({})))).2;
        assert_ne!(a["id"], b["id"]);
        let a = fixed(&run(Api::OpenAiChat, &openai("one", json!({})))).2;
        let b = fixed(&run(Api::OpenAiChat, &openai("two", json!({})))).2;
        assert_ne!(a["id"], b["id"]);
        assert_eq!(a["created"], CREATED_UNIX);
    }

    // ---------------------------------------------------------------- anthropic text

    #[test]
    fn anthropic_non_stream_text() {
        let body = anthropic(
            "What is   the weather in Paris today? mock:itl=0 please",
            json!({}),
        );
        let steps = run(Api::AnthropicMessages, &body);
        let (h, text, v) = fixed(&steps);
        assert_eq!(h.status, 200);
        keys_in_order(
            &text,
            &[
                "model",
                "id",
                "type",
                "role",
                "content",
                "stop_reason",
                "stop_sequence",
                "usage",
                "input_tokens",
                "cache_creation_input_tokens",
                "cache_read_input_tokens",
                "cache_creation",
                "output_tokens",
                "service_tier",
            ],
        );
        let id = v["id"].as_str().unwrap();
        assert!(id.starts_with("msg_01") && id.len() == 28, "{id}");
        assert!(id[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(v["model"], "claude-test");
        assert_eq!(v["type"], "message");
        assert_eq!(v["role"], "assistant");
        let answer =
            "Hello from the ringway mock. You said: What is the weather in Paris today? please";
        assert_eq!(v["content"], json!([{"type": "text", "text": answer}]));
        assert_eq!(v["stop_reason"], "end_turn");
        assert_eq!(v["stop_sequence"], Value::Null);
        assert!(v.get("stop_details").is_none());
        assert_eq!(v["usage"]["input_tokens"], input_tokens(&body));
        assert_eq!(v["usage"]["output_tokens"], answer.split(' ').count());
        assert_eq!(v["usage"]["cache_read_input_tokens"], 0);
        // itl=0 override: the reply waits for ttft only.
        assert_eq!(sleeps(&steps), vec![TTFT]);
    }

    #[test]
    fn echo_is_cut_to_twelve_words() {
        let prompt = (1..=20)
            .map(|i| format!("p{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        let v = fixed(&run(Api::AnthropicMessages, &anthropic(&prompt, json!({})))).2;
        let text = v["content"][0]["text"].as_str().unwrap();
        assert!(
            text.ends_with("You said: p1 p2 p3 p4 p5 p6 p7 p8 p9 p10 p11 p12"),
            "{text}"
        );
        // Array content and a later empty user turn: the last user text wins.
        let body = json!({"model": "m", "max_tokens": 99, "messages": [
            {"role": "user", "content": "first"},
            {"role": "user", "content": [{"type": "text", "text": "alpha"}, {"type": "text", "text": "beta"}]},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "  "}]},
        ]});
        let v = fixed(&run(Api::AnthropicMessages, &body)).2;
        let text = v["content"][0]["text"].as_str().unwrap();
        assert!(text.ends_with("said: alpha beta"), "{text}");
    }

    #[test]
    fn anthropic_stream_text() {
        let body = anthropic("tell me a story", json!({"stream": true}));
        let steps = run(Api::AnthropicMessages, &body);
        let h = head(&steps);
        assert_eq!(h.status, 200);
        assert_eq!(h.content_length, None);
        assert_eq!(
            h.header("content-type"),
            Some("text/event-stream; charset=utf-8")
        );
        assert_eq!(h.header("cache-control"), Some("no-cache"));
        assert!(matches!(steps.first(), Some(Step::Head { .. })));
        assert_eq!(steps.last(), Some(&Step::End));
        let events = a_events(&steps);
        let names = a_names(&events);
        let expected_text = "Hello from the ringway mock. You said: tell me a story";
        let words = expected_text.split(' ').count();
        let mut expected = vec!["message_start", "content_block_start", "ping"];
        expected.extend(std::iter::repeat_n("content_block_delta", words));
        expected.extend(["content_block_stop", "message_delta", "message_stop"]);
        assert_eq!(names, expected);
        let start = &events[0].1["message"];
        assert_eq!(start["content"], json!([]));
        assert_eq!(start["stop_reason"], Value::Null);
        assert_eq!(start["usage"]["output_tokens"], 1);
        assert_eq!(start["usage"]["input_tokens"], input_tokens(&body));
        assert!(start["id"].as_str().unwrap().starts_with("msg_01"));
        assert_eq!(
            events[1].1["content_block"],
            json!({"type": "text", "text": ""})
        );
        assert_eq!(a_text(&events, 0), expected_text);
        // One word per delta, each with its leading space.
        assert_eq!(events[3].1["delta"]["text"], "Hello");
        assert_eq!(events[4].1["delta"]["text"], " from");
        let delta = &events[events.len() - 2].1;
        assert_eq!(
            delta["delta"],
            json!({"stop_reason": "end_turn", "stop_sequence": null})
        );
        assert_eq!(delta["usage"]["output_tokens"], words);
        assert_eq!(delta["usage"]["input_tokens"], input_tokens(&body));
        // ttft once, then itl between deltas.
        let mut expected_sleeps = vec![TTFT];
        expected_sleeps.extend(std::iter::repeat_n(ITL, words - 1));
        assert_eq!(sleeps(&steps), expected_sleeps);
        // Padding inside the closing brace, and the ping's odd spacing, as on the real wire.
        let raw = body_of(&steps);
        assert!(raw.contains("event: ping\ndata: {\"type\": \"ping\"}\n\n"));
        assert!(raw.contains(" }\n\n"), "some event is padded");
        // Same text as the non-streaming answer.
        let body = anthropic("tell me a story", json!({"stream": false}));
        let v = fixed(&run(Api::AnthropicMessages, &body)).2;
        assert_eq!(v["content"][0]["text"], expected_text);
    }

    fn body_of(steps: &[Step]) -> String {
        body(steps)
    }

    #[test]
    fn stream_groups_structural_events_with_their_neighbours() {
        let body = anthropic("x", json!({"stream": true}));
        let steps = run(Api::AnthropicMessages, &body);
        let Step::Data(first) = &steps[1] else {
            panic!("data after head")
        };
        let first = std::str::from_utf8(first).unwrap();
        assert!(first.starts_with("event: message_start"));
        assert!(first.contains("event: content_block_start") && first.contains("event: ping"));
        assert_eq!(steps[2], Step::Sleep(TTFT));
        let Step::Data(last) = &steps[steps.len() - 2] else {
            panic!("data before end")
        };
        let last = std::str::from_utf8(last).unwrap();
        assert!(last.starts_with("event: content_block_stop"));
        assert!(last.contains("event: message_delta"));
        assert!(last.contains("event: message_stop"));
    }

    #[test]
    fn max_tokens_and_stop_sequences() {
        let body = anthropic("a b c d e f", json!({"max_tokens": 3}));
        let v = fixed(&run(Api::AnthropicMessages, &body)).2;
        assert_eq!(v["content"][0]["text"], "Hello from the");
        assert_eq!(v["stop_reason"], "max_tokens");
        assert_eq!(v["usage"]["output_tokens"], 3);

        let body = anthropic(
            "a b c",
            json!({"stop_sequences": ["zzz", "mock", "ringway"], "stream": true}),
        );
        let events = a_events(&run(Api::AnthropicMessages, &body));
        assert_eq!(a_text(&events, 0), "Hello from the ");
        let delta = &events[events.len() - 2].1;
        assert_eq!(delta["delta"]["stop_reason"], "stop_sequence");
        assert_eq!(delta["delta"]["stop_sequence"], "ringway");
        // "Hello", " from", " the", " ": the space before the cut is its own token.
        assert_eq!(delta["usage"]["output_tokens"], 4);

        // max_tokens reached before the stop sequence: max_tokens wins.
        let body = anthropic("a", json!({"stop_sequences": ["said"], "max_tokens": 2}));
        let v = fixed(&run(Api::AnthropicMessages, &body)).2;
        assert_eq!(v["stop_reason"], "max_tokens");
        assert_eq!(v["stop_sequence"], Value::Null);

        // max_tokens 0: no content block at all in the non-streaming body.
        let body = anthropic("a", json!({"max_tokens": 0}));
        let v = fixed(&run(Api::AnthropicMessages, &body)).2;
        assert_eq!(v["content"], json!([]));
        assert_eq!(v["stop_reason"], "max_tokens");

        let body = openai("a b", json!({"max_completion_tokens": 2, "max_tokens": 50}));
        let v = fixed(&run(Api::OpenAiChat, &body)).2;
        assert_eq!(v["choices"][0]["message"]["content"], "Hello from");
        assert_eq!(v["choices"][0]["finish_reason"], "length");
        assert_eq!(v["usage"]["completion_tokens"], 2);
        let body = openai("a b", json!({"max_tokens": 1, "stream": true}));
        let (chunks, done) = o_chunks(&run(Api::OpenAiChat, &body));
        assert!(done);
        assert_eq!(o_text(&chunks), "Hello");
        assert_eq!(
            chunks.last().unwrap()["choices"][0]["finish_reason"],
            "length"
        );

        let body = openai("a b", json!({"stop": "mock."}));
        let v = fixed(&run(Api::OpenAiChat, &body)).2;
        assert_eq!(
            v["choices"][0]["message"]["content"],
            "Hello from the ringway "
        );
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
    }

    // ---------------------------------------------------------------- openai text

    #[test]
    fn openai_non_stream_text() {
        let body = openai("hi there", json!({}));
        let (h, text, v) = fixed(&run(Api::OpenAiChat, &body));
        assert_eq!(h.status, 200);
        assert!(
            text.contains("\n  \"id\""),
            "pretty printed like the real API"
        );
        keys_in_order(
            &text,
            &[
                "id",
                "object",
                "created",
                "model",
                "choices",
                "index",
                "message",
                "role",
                "content",
                "refusal",
                "annotations",
                "logprobs",
                "finish_reason",
                "usage",
                "prompt_tokens",
                "completion_tokens",
                "total_tokens",
                "prompt_tokens_details",
                "cached_tokens",
                "completion_tokens_details",
                "reasoning_tokens",
                "service_tier",
                "system_fingerprint",
            ],
        );
        let id = v["id"].as_str().unwrap();
        assert!(id.starts_with("chatcmpl-") && id.len() == 38, "{id}");
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "gpt-test");
        let message = &v["choices"][0]["message"];
        assert_eq!(
            *message,
            json!({"role": "assistant", "content": "Hello from the ringway mock. You said: hi there",
                   "refusal": null, "annotations": []})
        );
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(v["choices"][0]["logprobs"], Value::Null);
        let input = input_tokens(&body);
        assert_eq!(v["usage"]["prompt_tokens"], input);
        assert_eq!(v["usage"]["completion_tokens"], 9);
        assert_eq!(v["usage"]["total_tokens"], input + 9);
        assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
        assert!(v["system_fingerprint"].as_str().unwrap().starts_with("fp_"));
        assert!(head(&run(Api::OpenAiChat, &body))
            .header("x-request-id")
            .is_some());
    }

    #[test]
    fn openai_stream_text_with_and_without_usage() {
        let body = openai(
            "hi",
            json!({"stream": true, "stream_options": {"include_usage": true}}),
        );
        let steps = run(Api::OpenAiChat, &body);
        let h = head(&steps);
        assert_eq!(h.header("content-type"), Some("text/event-stream"));
        assert_eq!(h.header("cache-control"), Some("no-cache"));
        assert_eq!(h.content_length, None);
        assert_eq!(steps.last(), Some(&Step::End));
        let (chunks, done) = o_chunks(&steps);
        assert!(done);
        let raw = body_of(&steps);
        assert!(raw.ends_with("data: [DONE]\n\n"));
        keys_in_order(
            raw.lines().next().unwrap(),
            &[
                "id",
                "object",
                "created",
                "model",
                "service_tier",
                "system_fingerprint",
                "choices",
                "index",
                "delta",
                "role",
                "content",
                "refusal",
                "logprobs",
                "finish_reason",
                "usage",
                "obfuscation",
            ],
        );
        let id = &chunks[0]["id"];
        for chunk in &chunks {
            assert_eq!(&chunk["id"], id);
            assert_eq!(chunk["object"], "chat.completion.chunk");
            assert_eq!(chunk["created"], CREATED_UNIX);
            assert!(chunk["obfuscation"].as_str().is_some_and(|o| !o.is_empty()));
        }
        assert_eq!(
            chunks[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": "", "refusal": null})
        );
        assert_eq!(o_text(&chunks), "Hello from the ringway mock. You said: hi");
        // Role appears once.
        assert_eq!(
            chunks
                .iter()
                .filter(|c| c["choices"][0]["delta"].get("role").is_some())
                .count(),
            1
        );
        let n = chunks.len();
        let finish = &chunks[n - 2];
        assert_eq!(finish["choices"][0]["delta"], json!({}));
        assert_eq!(finish["choices"][0]["finish_reason"], "stop");
        assert_eq!(finish["usage"], Value::Null);
        assert!(finish.get("usage").is_some());
        let usage = &chunks[n - 1];
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["prompt_tokens"], input_tokens(&body));
        assert_eq!(usage["usage"]["completion_tokens"], 8);
        for chunk in &chunks[..n - 2] {
            assert_eq!(chunk["choices"][0]["finish_reason"], Value::Null);
            assert_eq!(chunk["usage"], Value::Null);
        }
        let mut expected_sleeps = vec![TTFT];
        expected_sleeps.extend(std::iter::repeat_n(ITL, 7));
        assert_eq!(sleeps(&steps), expected_sleeps);

        let body = openai(
            "hi",
            json!({"stream": true, "stream_options": {"include_obfuscation": false}}),
        );
        let (chunks, done) = o_chunks(&run(Api::OpenAiChat, &body));
        assert!(done);
        assert_eq!(
            chunks.last().unwrap()["choices"][0]["finish_reason"],
            "stop"
        );
        for chunk in &chunks {
            assert!(chunk.get("usage").is_none());
            assert!(chunk.get("obfuscation").is_none());
            assert_eq!(chunk["choices"].as_array().unwrap().len(), 1);
        }
    }

    // ---------------------------------------------------------------- tools

    #[test]
    fn anthropic_tool_call_non_stream_and_stream() {
        let body = anthropic("weather?", json!({"tools": [weather_tool_anthropic()]}));
        let (_, text, v) = fixed(&run(Api::AnthropicMessages, &body));
        assert_eq!(v["stop_reason"], "tool_use");
        let block = &v["content"][0];
        assert_eq!(v["content"].as_array().unwrap().len(), 1);
        assert_eq!(block["type"], "tool_use");
        assert_eq!(block["name"], "get_weather");
        assert_eq!(block["input"], expected_weather_args());
        assert_eq!(block["caller"], json!({"type": "direct"}));
        let id = block["id"].as_str().unwrap();
        assert!(id.starts_with("toolu_01") && id.len() == 30, "{id}");
        // Arguments keep the schema's `required` order.
        keys_in_order(
            &text,
            &[
                "location", "units", "days", "detailed", "tags", "extra", "note",
            ],
        );

        let body = anthropic(
            "weather?",
            json!({"tools": [weather_tool_anthropic()], "stream": true}),
        );
        let events = a_events(&run(Api::AnthropicMessages, &body));
        assert_eq!(
            a_names(&events),
            vec![
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_delta",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ]
        );
        let start = &events[1].1["content_block"];
        assert_eq!(start["type"], "tool_use");
        assert_eq!(start["input"], json!({}));
        assert_eq!(start["name"], "get_weather");
        let partials: Vec<&str> = events
            .iter()
            .filter_map(|(_, v)| v["delta"]["partial_json"].as_str())
            .collect();
        assert_eq!(partials.len(), 4);
        assert_eq!(partials[0], "");
        let joined: String = partials.concat();
        assert!(joined.starts_with("{\"location\": \"mock\", "), "{joined}");
        assert_eq!(
            serde_json::from_str::<Value>(&joined).unwrap(),
            expected_weather_args()
        );
        // Fragments are not whole JSON values on their own.
        assert!(serde_json::from_str::<Value>(partials[1]).is_err());
        assert_eq!(events[8].1["delta"]["stop_reason"], "tool_use");
        assert!(events[8].1["usage"]["output_tokens"].as_u64().unwrap() > 1);
    }

    #[test]
    fn anthropic_tool_without_arguments_streams_only_the_empty_delta() {
        let tool =
            json!({"name": "ping_server", "input_schema": {"type": "object", "properties": {}}});
        let body = anthropic("go", json!({"tools": [tool], "stream": true}));
        let events = a_events(&run(Api::AnthropicMessages, &body));
        let partials: Vec<&str> = events
            .iter()
            .filter_map(|(_, v)| v["delta"]["partial_json"].as_str())
            .collect();
        assert_eq!(partials, vec![""]);
        let body = anthropic("go", json!({"tools": [tool]}));
        let v = fixed(&run(Api::AnthropicMessages, &body)).2;
        assert_eq!(v["content"][0]["input"], json!({}));
        let body = openai(
            "go",
            json!({"tools": [openai_tool("ping_server", json!({}))], "stream": true}),
        );
        let (chunks, _) = o_chunks(&run(Api::OpenAiChat, &body));
        let args: String = chunks
            .iter()
            .filter_map(|c| {
                c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
            })
            .collect();
        assert_eq!(args, "{}");
    }

    #[test]
    fn openai_tool_calls_stream_parallel() {
        let second = openai_tool(
            "get_time",
            json!({"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}),
        );
        let body = openai(
            "weather and time mock:parallel",
            json!({"tools": [weather_tool_openai(), second], "stream": true,
                   "stream_options": {"include_usage": true}}),
        );
        let (chunks, done) = o_chunks(&run(Api::OpenAiChat, &body));
        assert!(done);
        assert_eq!(
            chunks[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": null})
        );
        let mut args = [String::new(), String::new()];
        let mut ids = [Vec::new(), Vec::new()];
        let mut last_index = 0;
        for chunk in &chunks[1..chunks.len() - 2] {
            let calls = chunk["choices"][0]["delta"]["tool_calls"]
                .as_array()
                .unwrap();
            assert_eq!(calls.len(), 1);
            let call = &calls[0];
            let index = call["index"].as_u64().unwrap() as usize;
            assert!(index == last_index || index == last_index + 1, "contiguous");
            last_index = index;
            let first = ids[index].is_empty();
            // id, type and name only on the first delta of each call.
            assert_eq!(call.get("id").is_some(), first);
            assert_eq!(call.get("type").is_some(), first);
            assert_eq!(call["function"].get("name").is_some(), first);
            if first {
                assert_eq!(call["function"]["arguments"], "");
            }
            ids[index].push(call["id"].clone());
            args[index].push_str(call["function"]["arguments"].as_str().unwrap());
        }
        // A header plus three fragments per call.
        assert_eq!(ids[0].len(), 4);
        assert_eq!(ids[1].len(), 4);
        let id0 = ids[0][0].as_str().unwrap();
        let id1 = ids[1][0].as_str().unwrap();
        assert!(id0.starts_with("call_") && id0.len() == 29);
        assert_ne!(id0, id1);
        assert_eq!(
            serde_json::from_str::<Value>(&args[0]).unwrap(),
            expected_weather_args()
        );
        assert_eq!(args[1], "{\"zone\": \"mock\"}");
        let finish = &chunks[chunks.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");

        let body = openai(
            "weather and time mock:parallel",
            json!({"tools": [weather_tool_openai(), openai_tool("get_time", json!({}))]}),
        );
        let v = fixed(&run(Api::OpenAiChat, &body)).2;
        let message = &v["choices"][0]["message"];
        assert_eq!(message["content"], Value::Null);
        let calls = message["tool_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0]["type"], "function");
        assert_eq!(calls[1]["function"]["name"], "get_time");
        let arguments = calls[0]["function"]["arguments"].as_str().unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(arguments).unwrap(),
            expected_weather_args()
        );
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");

        // parallel_tool_calls: false keeps one call.
        let body = openai(
            "mock:parallel",
            json!({"tools": [weather_tool_openai(), openai_tool("b", json!({}))], "parallel_tool_calls": false}),
        );
        let v = fixed(&run(Api::OpenAiChat, &body)).2;
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn anthropic_parallel_tools_are_sequential_blocks() {
        let body = anthropic(
            "mock:parallel",
            json!({"tools": [weather_tool_anthropic()], "stream": true}),
        );
        let events = a_events(&run(Api::AnthropicMessages, &body));
        let starts: Vec<&Value> = events
            .iter()
            .filter(|(n, _)| n == "content_block_start")
            .map(|(_, v)| v)
            .collect();
        assert_eq!(starts.len(), 2);
        assert_eq!(starts[0]["index"], 0);
        assert_eq!(starts[1]["index"], 1);
        // Only one tool declared: it is called twice, with distinct ids.
        assert_eq!(starts[1]["content_block"]["name"], "get_weather");
        assert_ne!(
            starts[0]["content_block"]["id"],
            starts[1]["content_block"]["id"]
        );
        let stops = events
            .iter()
            .filter(|(n, _)| n == "content_block_stop")
            .count();
        assert_eq!(stops, 2);
        // disable_parallel_tool_use keeps one.
        let body = anthropic(
            "mock:parallel",
            json!({"tools": [weather_tool_anthropic()],
                   "tool_choice": {"type": "auto", "disable_parallel_tool_use": true}}),
        );
        let v = fixed(&run(Api::AnthropicMessages, &body)).2;
        assert_eq!(v["content"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn tool_choice_none_named_and_tool_results() {
        let tools = json!([weather_tool_anthropic(), {"name": "other", "input_schema": {"type": "object"}},
                           {"type": "web_search_20250305", "name": "web_search"}]);
        let body = anthropic(
            "x",
            json!({"tools": tools, "tool_choice": {"type": "none"}}),
        );
        let v = fixed(&run(Api::AnthropicMessages, &body)).2;
        assert_eq!(v["stop_reason"], "end_turn");
        assert_eq!(v["content"][0]["type"], "text");
        let body = anthropic(
            "x",
            json!({"tools": tools, "tool_choice": {"type": "tool", "name": "other"}}),
        );
        let v = fixed(&run(Api::AnthropicMessages, &body)).2;
        assert_eq!(v["content"][0]["name"], "other");
        // Server tools are never called.
        let body = anthropic("x", json!({"tools": [tools[2]]}));
        let v = fixed(&run(Api::AnthropicMessages, &body)).2;
        assert_eq!(v["stop_reason"], "end_turn");

        let otools = json!([weather_tool_openai(), openai_tool("other", json!({}))]);
        let body = openai("x", json!({"tools": otools, "tool_choice": "none"}));
        let v = fixed(&run(Api::OpenAiChat, &body)).2;
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        let body = openai(
            "x",
            json!({"tools": otools, "tool_choice": {"type": "function", "function": {"name": "other"}}}),
        );
        let v = fixed(&run(Api::OpenAiChat, &body)).2;
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
            "other"
        );
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            "{}"
        );

        // Tool results answer with text, echoing the result.
        let body = json!({"model": "m", "max_tokens": 100, "tools": tools, "messages": [
            {"role": "user", "content": "weather? mock:tokens=2"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                "content": [{"type": "text", "text": "Sunny, 21 degrees"}]}]},
        ]});
        let v = fixed(&run(Api::AnthropicMessages, &body)).2;
        assert_eq!(v["stop_reason"], "end_turn");
        // mock:tokens from the question still applies to the follow-up turn.
        assert_eq!(v["content"][0]["text"], "w1 w2");
        let body = json!({"model": "m", "max_tokens": 100, "tools": tools, "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny, 21 degrees"}]},
        ]});
        let v = fixed(&run(Api::AnthropicMessages, &body)).2;
        assert_eq!(
            v["content"][0]["text"],
            "Tool result received: Sunny, 21 degrees"
        );

        let body = json!({"model": "m", "tools": otools, "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "Rain"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "later"}]},
        ]});
        let v = fixed(&run(Api::OpenAiChat, &body)).2;
        assert_eq!(
            v["choices"][0]["message"]["content"],
            "Tool result received: Rain later"
        );
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
    }

    #[test]
    fn preamble_writes_text_before_the_tool_calls() {
        let prompt = "weather? mock:preamble";
        let atools = json!([weather_tool_anthropic()]);
        let v = fixed(&run(
            Api::AnthropicMessages,
            &anthropic(prompt, json!({"tools": atools})),
        ))
        .2;
        assert_eq!(v["stop_reason"], "tool_use");
        assert_eq!(v["content"][0]["type"], "text");
        assert_eq!(v["content"][0]["text"], PREAMBLE_TEXT);
        assert_eq!(v["content"][1]["type"], "tool_use");
        let events = a_events(&run(
            Api::AnthropicMessages,
            &anthropic(prompt, json!({"tools": atools, "stream": true})),
        ));
        assert_eq!(a_text(&events, 0), PREAMBLE_TEXT);
        let starts: Vec<&Value> = events
            .iter()
            .filter(|(n, _)| n == "content_block_start")
            .map(|(_, v)| &v["content_block"]["type"])
            .collect();
        assert_eq!(starts, [&json!("text"), &json!("tool_use")]);

        let otools = json!([weather_tool_openai()]);
        let v = fixed(&run(
            Api::OpenAiChat,
            &openai(prompt, json!({"tools": otools})),
        ))
        .2;
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(v["choices"][0]["message"]["content"], PREAMBLE_TEXT);
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
            "get_weather"
        );
        let (chunks, _) = o_chunks(&run(
            Api::OpenAiChat,
            &openai(prompt, json!({"tools": otools, "stream": true})),
        ));
        assert_eq!(o_text(&chunks), PREAMBLE_TEXT);
        assert!(chunks
            .iter()
            .any(
                |c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "get_weather"
            ));

        // Without tools to call (or on the tool-result turn) it writes nothing extra.
        let v = fixed(&run(Api::AnthropicMessages, &anthropic(prompt, json!({})))).2;
        assert_eq!(
            v["content"][0]["text"],
            "Hello from the ringway mock. You said: weather?"
        );
    }

    #[test]
    fn tool_args_and_notools_directives() {
        let read = json!({"name": "read_file", "input_schema": {"type": "object",
            "properties": {"path": {"type": "string"}}, "required": ["path"]}});
        let tools = json!([weather_tool_anthropic(), read]);
        // Keys out of alphabetical order: the written order must survive.
        let args = r#"{"path":"/tmp/x.txt","limit":2,"a":{"b":[true,null]}}"#;
        let prompt = format!("read it mock:tool=read_file mock:args={args}");
        let (_, text, v) = fixed(&run(
            Api::AnthropicMessages,
            &anthropic(&prompt, json!({"tools": tools})),
        ));
        assert_eq!(v["stop_reason"], "tool_use");
        assert_eq!(v["content"].as_array().unwrap().len(), 1);
        assert_eq!(v["content"][0]["name"], "read_file");
        assert_eq!(
            v["content"][0]["input"],
            serde_json::from_str::<Value>(args).unwrap()
        );
        // The body carries the object as written (a parsed Value would sort the keys).
        assert!(text.contains(args), "{text}");
        let events = a_events(&run(
            Api::AnthropicMessages,
            &anthropic(&prompt, json!({"tools": tools, "stream": true})),
        ));
        assert_eq!(events[1].1["content_block"]["name"], "read_file");
        let partials: String = events
            .iter()
            .filter_map(|(_, v)| v["delta"]["partial_json"].as_str())
            .collect();
        assert_eq!(partials, args);

        let otools = json!([
            weather_tool_openai(),
            openai_tool("read_file", read["input_schema"].clone())
        ]);
        let v = fixed(&run(
            Api::OpenAiChat,
            &openai(&prompt, json!({"tools": otools})),
        ))
        .2;
        let call = &v["choices"][0]["message"]["tool_calls"][0]["function"];
        assert_eq!(call["name"], "read_file");
        assert_eq!(call["arguments"], args);
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        let (chunks, done) = o_chunks(&run(
            Api::OpenAiChat,
            &openai(&prompt, json!({"tools": otools, "stream": true})),
        ));
        assert!(done);
        let streamed: String = chunks
            .iter()
            .filter_map(|c| {
                c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
            })
            .collect();
        assert_eq!(streamed, args);

        // mock:tool alone keeps the schema's arguments; mock:args alone goes to the first tool.
        let v = fixed(&run(
            Api::AnthropicMessages,
            &anthropic("mock:tool=read_file", json!({"tools": tools})),
        ))
        .2;
        assert_eq!(v["content"][0]["input"], json!({"path": "mock"}));
        let v = fixed(&run(
            Api::AnthropicMessages,
            &anthropic(r#"(mock:args={"q":1})."#, json!({"tools": tools})),
        ))
        .2;
        assert_eq!(v["content"][0]["name"], "get_weather");
        assert_eq!(v["content"][0]["input"], json!({"q": 1}));
        // Not a JSON object: ignored.
        for bad in ["mock:args=[1]", "mock:args={\"q\":", "mock:args="] {
            let v = fixed(&run(
                Api::AnthropicMessages,
                &anthropic(bad, json!({"tools": tools})),
            ))
            .2;
            assert_eq!(v["content"][0]["input"], expected_weather_args(), "{bad}");
        }
        // An undeclared tool is called anyway, without arguments unless given.
        let v = fixed(&run(
            Api::AnthropicMessages,
            &anthropic("mock:tool=ghost", json!({"tools": tools})),
        ))
        .2;
        assert_eq!(v["content"][0]["name"], "ghost");
        assert_eq!(v["content"][0]["input"], json!({}));
        // A tool_choice naming a tool wins over the directive.
        let v = fixed(&run(
            Api::AnthropicMessages,
            &anthropic(
                "mock:tool=read_file",
                json!({"tools": tools, "tool_choice": {"type": "tool", "name": "get_weather"}}),
            ),
        ))
        .2;
        assert_eq!(v["content"][0]["name"], "get_weather");
        // No tools declared: the directive calls nothing.
        let v = fixed(&run(
            Api::AnthropicMessages,
            &anthropic("hi mock:tool=read_file", json!({})),
        ))
        .2;
        assert_eq!(v["stop_reason"], "end_turn");

        // The follow-up turn acknowledges the result even though the question names a tool.
        let body = json!({"model": "m", "max_tokens": 100, "tools": tools, "messages": [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "read_file",
                "input": {"path": "/tmp/x.txt"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "file body"}]},
        ]});
        let v = fixed(&run(Api::AnthropicMessages, &body)).2;
        assert_eq!(v["content"][0]["text"], "Tool result received: file body");

        // mock:notools answers with text in both formats, streaming or not.
        let v = fixed(&run(
            Api::AnthropicMessages,
            &anthropic(
                "say hi mock:notools mock:tool=read_file",
                json!({"tools": tools}),
            ),
        ))
        .2;
        assert_eq!(v["stop_reason"], "end_turn");
        assert_eq!(
            v["content"][0]["text"],
            "Hello from the ringway mock. You said: say hi"
        );
        let events = a_events(&run(
            Api::AnthropicMessages,
            &anthropic(
                "say hi mock:notools",
                json!({"tools": tools, "stream": true}),
            ),
        ));
        assert_eq!(
            a_text(&events, 0),
            "Hello from the ringway mock. You said: say hi"
        );
        assert!(events
            .iter()
            .all(|(_, v)| v["content_block"]["type"] != "tool_use"));
        let v = fixed(&run(
            Api::OpenAiChat,
            &openai("say hi mock:notools", json!({"tools": otools})),
        ))
        .2;
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert!(v["choices"][0]["message"].get("tool_calls").is_none());
        let (chunks, _) = o_chunks(&run(
            Api::OpenAiChat,
            &openai(
                "say hi mock:notools",
                json!({"tools": otools, "stream": true}),
            ),
        ));
        assert_eq!(
            o_text(&chunks),
            "Hello from the ringway mock. You said: say hi"
        );
        assert_eq!(
            chunks.last().unwrap()["choices"][0]["finish_reason"],
            "stop"
        );
    }

    // ---------------------------------------------------------------- faults

    #[test]
    fn midstream_error_frames() {
        let body = anthropic("a b c d e f mock:midstream_error", json!({"stream": true}));
        let steps = run(Api::AnthropicMessages, &body);
        assert_eq!(head(&steps).status, 200);
        assert_eq!(steps.last(), Some(&Step::End));
        let events = a_events(&steps);
        let names = a_names(&events);
        assert_eq!(
            names,
            vec![
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_delta",
                "content_block_delta",
                "error",
            ]
        );
        let error = &events[6].1;
        assert_eq!(error["error"]["type"], "overloaded_error");
        assert_eq!(error["error"]["message"], "Overloaded");
        assert_eq!(error["error"]["details"], Value::Null);
        assert!(error["request_id"].as_str().unwrap().starts_with("req_"));

        let body = openai(
            "mock:midstream_error",
            json!({"stream": true, "stream_options": {"include_usage": true}}),
        );
        let steps = run(Api::OpenAiChat, &body);
        assert_eq!(steps.last(), Some(&Step::End));
        let (chunks, done) = o_chunks(&steps);
        assert!(!done, "no [DONE] after an error");
        let last = chunks.last().unwrap();
        assert_eq!(
            *last,
            json!({"error": {"message": "The server had an error while processing your request. Sorry about that!",
                             "type": "server_error", "param": null, "code": null}})
        );
        assert_eq!(o_text(&chunks), "Hello from the");
        assert!(chunks
            .iter()
            .all(|c| c["choices"][0]["finish_reason"].is_null()));

        // Non-streaming: the nearest thing is a 5xx.
        let steps = run(
            Api::AnthropicMessages,
            &anthropic("mock:midstream_error", json!({})),
        );
        assert_anthropic_error(&steps, 529, "overloaded_error");
        let steps = run(Api::OpenAiChat, &openai("mock:midstream_error", json!({})));
        assert_openai_error(&steps, 500, "server_error");
    }

    #[test]
    fn reset_and_stall() {
        for api in [Api::AnthropicMessages, Api::OpenAiChat] {
            let make = |prompt: &str, stream: bool| match api {
                Api::OpenAiChat => openai(prompt, json!({"stream": stream})),
                _ => anthropic(prompt, json!({"stream": stream})),
            };
            assert_eq!(run(api, &make("mock:reset", false)), vec![Step::Reset]);
            assert_eq!(run(api, &make("mock:stall", false)), vec![Step::Stall]);

            let steps = run(api, &make("mock:reset now", true));
            assert_eq!(steps.last(), Some(&Step::Reset));
            assert!(!steps.contains(&Step::End));
            let raw = body_of(&steps[..steps.len() - 1]);
            let content = raw.matches("text_delta").count()
                + raw.matches("\"content\":\"H").count()
                + raw.matches("\"content\":\" ").count();
            assert_eq!(content, FAULT_AFTER_TOKENS, "{raw}");
            assert!(!raw.contains("message_stop") && !raw.contains("[DONE]"));

            let steps = run(api, &make("mock:stall", true));
            assert_eq!(steps.last(), Some(&Step::Stall));
            assert!(matches!(steps.first(), Some(Step::Head { .. })));
            let data = steps.iter().filter(|s| matches!(s, Step::Data(_))).count();
            assert_eq!(data, 2, "preamble and the first token");
            assert_eq!(sleeps(&steps), vec![TTFT]);
            // Reset wins over stall and midstream_error.
            let steps = run(
                api,
                &make("mock:stall mock:reset mock:midstream_error", true),
            );
            assert_eq!(steps.last(), Some(&Step::Reset));
        }
    }

    #[test]
    fn timing_directives_override_defaults() {
        let body = anthropic("mock:ttft=250 mock:itl=7 x", json!({"stream": true}));
        let steps = run(Api::AnthropicMessages, &body);
        let s = sleeps(&steps);
        assert_eq!(s[0], Duration::from_millis(250));
        assert!(s[1..].iter().all(|d| *d == Duration::from_millis(7)));
        // Zero delays produce no Sleep steps at all.
        let steps = plan(
            Api::OpenAiChat,
            openai("x", json!({"stream": true})).to_string().as_bytes(),
            &Defaults::default(),
        );
        assert!(sleeps(&steps).is_empty());
        // Non-streaming replies take the whole generation time before the head.
        let body = anthropic("mock:ttft=5 mock:itl=2 mock:tokens=4", json!({}));
        let steps = run(Api::AnthropicMessages, &body);
        assert_eq!(steps[0], Step::Sleep(Duration::from_millis(5 + 2 * 3)));
        // Huge values are clamped.
        let d = Directives::parse("mock:ttft=99999999999 mock:tokens=99999999999");
        assert_eq!(d.ttft, Some(Duration::from_millis(MAX_DIRECTIVE_DELAY_MS)));
        assert_eq!(d.tokens, Some(MAX_DIRECTIVE_TOKENS));
    }

    #[test]
    fn directive_parsing() {
        let d = Directives::parse(
            "Please mock:refusal, then mock:cache. (mock:big=100) mock:unknown mockery:x",
        );
        assert!(d.refusal && d.cache);
        assert_eq!(d.big, Some(100));
        assert!(!d.parallel && !d.thinking && d.fault.is_none() && d.status.is_none());
        let d = Directives::parse("mock:status=503 mock:tokens=x mock:midstream_error!");
        assert_eq!(d.status, Some(503));
        assert_eq!(d.tokens, None);
        assert_eq!(d.fault, Some(Fault::MidstreamError));
        assert_eq!(
            Directives::parse("MOCK:reset mock:status=302"),
            Directives::default()
        );
        assert_eq!(echo_words("a mock:reset b"), "a b");
        let d = Directives::parse(r#"mock:tool= "mock:notools" mock:args={"b":1,"a":2}"#);
        assert_eq!(d.tool, None);
        assert!(d.notools);
        let args = d.args.unwrap();
        assert_eq!(args.text, r#"{"b":1,"a":2}"#);
        assert_eq!(
            args.entries,
            vec![("b".into(), json!(1)), ("a".into(), json!(2))]
        );
        let d = Directives::parse("mock:tool=Read mock:args=x");
        assert_eq!(d.tool.as_deref(), Some("Read"));
        assert_eq!(d.args, None);
    }

    #[test]
    fn tokens_directive() {
        let body = openai("mock:tokens=5", json!({"stream": true}));
        let (chunks, _) = o_chunks(&run(Api::OpenAiChat, &body));
        let pieces: Vec<&str> = chunks[1..6]
            .iter()
            .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
            .collect();
        assert_eq!(pieces, vec!["w1", " w2", " w3", " w4", " w5"]);
        let body = anthropic("mock:tokens=0", json!({"stream": true}));
        let events = a_events(&run(Api::AnthropicMessages, &body));
        assert_eq!(a_text(&events, 0), "");
        assert_eq!(events[events.len() - 2].1["usage"]["output_tokens"], 0);
        let body = anthropic("mock:tokens=300", json!({}));
        let v = fixed(&run(Api::AnthropicMessages, &body)).2;
        assert_eq!(v["usage"]["output_tokens"], 300);
        assert!(v["content"][0]["text"]
            .as_str()
            .unwrap()
            .ends_with(" w299 w300"));
    }

    // ---------------------------------------------------------------- thinking, refusal, cache, big

    #[test]
    fn anthropic_thinking() {
        let body = anthropic("mock:thinking hi", json!({"stream": true}));
        let events = a_events(&run(Api::AnthropicMessages, &body));
        assert_eq!(
            events[1].1["content_block"],
            json!({"type": "thinking", "thinking": "", "signature": ""})
        );
        assert_eq!(events[2].0, "ping");
        let thinking: String = events
            .iter()
            .filter_map(|(_, v)| v["delta"]["thinking"].as_str())
            .collect();
        assert_eq!(thinking, THINKING_TEXT);
        let sig_at = events
            .iter()
            .position(|(_, v)| v["delta"]["type"] == "signature_delta")
            .unwrap();
        assert_eq!(events[sig_at + 1].0, "content_block_stop");
        assert_eq!(events[sig_at + 1].1["index"], 0);
        assert_eq!(events[sig_at + 2].1["content_block"]["type"], "text");
        assert_eq!(events[sig_at + 2].1["index"], 1);
        // No text_delta inside the thinking block.
        assert!(events[..sig_at]
            .iter()
            .all(|(_, v)| v["delta"]["type"] != "text_delta"));
        let signature = events[sig_at].1["delta"]["signature"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(signature.len(), SIGNATURE_LEN);
        assert!(a_text(&events, 1).ends_with("said: hi"));

        let body = anthropic("mock:thinking hi", json!({}));
        let v = fixed(&run(Api::AnthropicMessages, &body)).2;
        assert_eq!(v["content"][0]["type"], "thinking");
        assert_eq!(v["content"][0]["thinking"], THINKING_TEXT);
        assert_eq!(
            v["content"][0]["signature"].as_str().unwrap().len(),
            SIGNATURE_LEN
        );
        assert_eq!(v["content"][1]["type"], "text");
        let words = THINKING_TEXT.split(' ').count() + 8;
        assert_eq!(v["usage"]["output_tokens"], words);

        // OpenAI has no thinking output.
        let v = fixed(&run(
            Api::OpenAiChat,
            &openai("mock:thinking hi", json!({})),
        ))
        .2;
        assert!(v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .starts_with("Hello"));
        assert!(!v.to_string().contains("reasoning_content"));
    }

    #[test]
    fn openai_reasoning_content() {
        let v = fixed(&run(
            Api::OpenAiChat,
            &openai("mock:reasoning_content hi", json!({})),
        ))
        .2;
        let message = &v["choices"][0]["message"];
        assert_eq!(message["reasoning_content"], THINKING_TEXT);
        assert!(message["content"].as_str().unwrap().starts_with("Hello"));
        let body = openai("mock:reasoning_content hi", json!({"stream": true}));
        let (chunks, _) = o_chunks(&run(Api::OpenAiChat, &body));
        let reasoning: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["reasoning_content"].as_str())
            .collect();
        assert_eq!(reasoning, THINKING_TEXT);
        // Anthropic ignores it (`mock:thinking` is its directive).
        let body = anthropic("mock:reasoning_content hi", json!({}));
        let v = fixed(&run(Api::AnthropicMessages, &body)).2;
        assert_eq!(v["content"][0]["type"], "text");
    }

    #[test]
    fn thinking_signatures_are_checked_when_the_block_comes_back() {
        let v = fixed(&run(
            Api::AnthropicMessages,
            &anthropic("mock:thinking=echo mail avery@example.com", json!({})),
        ))
        .2;
        let block = v["content"][0].clone();
        let text = block["thinking"].as_str().unwrap().to_owned();
        assert_eq!(
            text,
            format!("{THINKING_TEXT} They wrote: mail avery@example.com. {THINKING_CONTACT}")
        );
        let turn = |thinking: &str| {
            let mut b = block.clone();
            b["thinking"] = json!(thinking);
            json!({"model": "claude-test", "max_tokens": 1024, "messages": [
                {"role": "user", "content": "mock:thinking=echo mail avery@example.com"},
                {"role": "assistant", "content": [b, {"type": "text", "text": "ok"}]},
                {"role": "user", "content": "more"}]})
        };
        assert_eq!(head(&run(Api::AnthropicMessages, &turn(&text))).status, 200);
        let steps = run(
            Api::AnthropicMessages,
            &turn(&text.replace("avery", "jane")),
        );
        assert_eq!(head(&steps).status, 400);
        assert_eq!(
            fixed(&steps).2["error"]["message"],
            "messages.1.content.0: Invalid `signature` in `thinking` block"
        );
    }

    #[test]
    fn ascii_escapes_what_is_not_ascii() {
        assert_eq!(
            ascii_only(r#"{"t":"é😀\"x"}"#.as_bytes()),
            br#"{"t":"\u00e9\ud83d\ude00\"x"}"#
        );
        let v = fixed(&run(
            Api::AnthropicMessages,
            &anthropic("mock:ascii héllo", json!({})),
        ));
        assert!(v.1.contains(r"h\u00e9llo"), "{}", v.1);
        assert!(v.2["content"][0]["text"]
            .as_str()
            .unwrap()
            .ends_with("héllo"));
    }

    #[test]
    fn refusals_and_content_filter() {
        let body = anthropic("mock:refusal", json!({"stream": true}));
        let events = a_events(&run(Api::AnthropicMessages, &body));
        assert_eq!(
            a_names(&events),
            vec![
                "message_start",
                "content_block_start",
                "ping",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let delta = &events[4].1;
        assert_eq!(delta["delta"]["stop_reason"], "refusal");
        assert_eq!(delta["delta"]["stop_details"]["type"], "refusal");
        assert_eq!(delta["usage"]["output_tokens"], 0);
        let v = fixed(&run(
            Api::AnthropicMessages,
            &anthropic("mock:refusal", json!({})),
        ))
        .2;
        assert_eq!(v["content"], json!([]));
        assert_eq!(v["stop_reason"], "refusal");
        assert_eq!(v["stop_details"]["type"], "refusal");
        let v = fixed(&run(
            Api::AnthropicMessages,
            &anthropic("mock:content_filter", json!({})),
        ))
        .2;
        assert_eq!(v["stop_reason"], "refusal");

        let body = openai("mock:refusal", json!({"stream": true}));
        let (chunks, done) = o_chunks(&run(Api::OpenAiChat, &body));
        assert!(done);
        assert_eq!(
            chunks[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": null, "refusal": ""})
        );
        let refusal: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["refusal"].as_str())
            .collect();
        assert_eq!(refusal, REFUSAL_TEXT);
        assert_eq!(o_text(&chunks), "");
        assert_eq!(
            chunks.last().unwrap()["choices"][0]["finish_reason"],
            "stop"
        );
        let v = fixed(&run(Api::OpenAiChat, &openai("mock:refusal", json!({})))).2;
        assert_eq!(v["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(v["choices"][0]["message"]["refusal"], REFUSAL_TEXT);

        let body = openai("mock:content_filter", json!({"stream": true}));
        let (chunks, _) = o_chunks(&run(Api::OpenAiChat, &body));
        assert_eq!(o_text(&chunks), "Hello from the");
        assert_eq!(
            chunks.last().unwrap()["choices"][0]["finish_reason"],
            "content_filter"
        );
    }

    #[test]
    fn cache_directive_splits_input() {
        let body = anthropic("mock:cache", json!({"stream": true}));
        let n = input_tokens(&body);
        let events = a_events(&run(Api::AnthropicMessages, &body));
        let start = &events[0].1["message"]["usage"];
        assert_eq!(start["cache_read_input_tokens"], n / 2);
        assert_eq!(start["input_tokens"], n - n / 2);
        let delta = &events[events.len() - 2].1["usage"];
        assert_eq!(delta["cache_read_input_tokens"], n / 2);
        assert_eq!(delta["input_tokens"], n - n / 2);

        let body = openai("mock:cache", json!({}));
        let n = input_tokens(&body);
        let v = fixed(&run(Api::OpenAiChat, &body)).2;
        assert_eq!(v["usage"]["prompt_tokens"], n);
        assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], n / 2);
    }

    #[test]
    fn usage_directives_set_every_count_in_each_providers_fields() {
        let prompt = "mock:input=1000 mock:cache_read=300 mock:cache_write=200 mock:reasoning=40 mock:tokens=5";
        // OpenAI: the whole prompt, cached part inside; hidden reasoning inside the output.
        for stream in [false, true] {
            let body = openai(
                prompt,
                json!({"stream": stream, "stream_options": {"include_usage": true}}),
            );
            let steps = run(Api::OpenAiChat, &body);
            let usage = if stream {
                o_chunks(&steps).0.last().unwrap()["usage"].clone()
            } else {
                fixed(&steps).2["usage"].clone()
            };
            assert_eq!(usage["prompt_tokens"], 1000, "{usage}");
            assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 300);
            assert_eq!(usage["completion_tokens"], 45, "{usage}");
            assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 40);
            assert_eq!(usage["total_tokens"], 1045);
            assert!(
                !usage.to_string().contains("200"),
                "no cache-write field: {usage}"
            );
        }
        // Anthropic: input_tokens is what is left after the cached parts; the thinking block
        // is billed as 40 tokens instead of its word count.
        let body = anthropic(&format!("{prompt} mock:thinking"), json!({}));
        let v = fixed(&run(Api::AnthropicMessages, &body)).2;
        let u = &v["usage"];
        assert_eq!(u["input_tokens"], 500, "{u}");
        assert_eq!(u["cache_read_input_tokens"], 300);
        assert_eq!(u["cache_creation_input_tokens"], 200);
        assert_eq!(u["cache_creation"]["ephemeral_5m_input_tokens"], 200);
        assert_eq!(u["output_tokens"], 45, "{u}");
        assert_eq!(v["content"][0]["type"], "thinking");
        let body = anthropic(&format!("{prompt} mock:thinking"), json!({"stream": true}));
        let events = a_events(&run(Api::AnthropicMessages, &body));
        let start = &events[0].1["message"]["usage"];
        assert_eq!(start["input_tokens"], 500, "{start}");
        assert_eq!(start["cache_creation_input_tokens"], 200);
        let delta = &events[events.len() - 2].1["usage"];
        assert_eq!(delta["output_tokens"], 45, "{delta}");
        assert_eq!(delta["cache_read_input_tokens"], 300);
        assert_eq!(delta["cache_creation_input_tokens"], 200);
        // Counts beyond the prompt are cut to it: reads first, then writes.
        let body = anthropic(
            "mock:input=10 mock:cache_read=8 mock:cache_write=5",
            json!({}),
        );
        let u = fixed(&run(Api::AnthropicMessages, &body)).2["usage"].clone();
        assert_eq!(
            (
                &u["input_tokens"],
                &u["cache_read_input_tokens"],
                &u["cache_creation_input_tokens"]
            ),
            (&json!(0), &json!(8), &json!(2)),
            "{u}"
        );
    }

    #[test]
    fn big_bodies_are_about_the_requested_size() {
        for (api, body) in [
            (
                Api::AnthropicMessages,
                anthropic("mock:big=200000", json!({})),
            ),
            (Api::OpenAiChat, openai("mock:big=200000", json!({}))),
        ] {
            let (_, text, v) = fixed(&run(api, &body));
            assert!(text.len().abs_diff(200_000) < 16, "{}", text.len());
            let usage = if api == Api::OpenAiChat {
                &v["usage"]["completion_tokens"]
            } else {
                &v["usage"]["output_tokens"]
            };
            assert!(usage.as_u64().unwrap() > 40_000);
        }
        let body = anthropic("mock:big=40000", json!({"stream": true}));
        let events = a_events(&run(Api::AnthropicMessages, &body));
        let deltas = events
            .iter()
            .filter(|(n, _)| n == "content_block_delta")
            .count();
        assert_eq!(deltas, 40_000usize.div_ceil(BIG_STREAM_PIECE_BYTES));
        assert_eq!(a_text(&events, 0).len(), 40_000);
    }

    #[test]
    fn count_tokens() {
        let body = anthropic("hello", json!({}));
        let steps = run(Api::AnthropicCountTokens, &body);
        let (h, text, _) = fixed(&steps);
        assert_eq!(h.status, 200);
        assert_eq!(
            text,
            format!("{{\"input_tokens\":{}}}", input_tokens(&body))
        );
        assert!(sleeps(&steps).is_empty());
    }

    // ---------------------------------------------------------------- helpers and invariants

    /// Tiny xorshift PRNG so the property tests need no crates.
    struct Prng(u64);

    impl Prng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn text(&mut self, max: usize) -> String {
            const ALPHABET: &[&str] = &[
                "a", "b", " ", "  ", "é", "日本", "\"", "\\", "\n", "😀", "x",
            ];
            (0..self.below(max + 1))
                .map(|_| ALPHABET[self.below(ALPHABET.len())])
                .collect()
        }
    }

    #[test]
    fn splitting_keeps_every_byte() {
        let mut rng = Prng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2000 {
            let text = rng.text(40);
            let tokens = split_tokens(&text);
            assert_eq!(tokens.concat(), text);
            assert!(tokens.iter().all(|t| !t.is_empty()));
            // Each token after the first starts with a space and holds one word.
            for t in tokens.iter().skip(1) {
                assert!(t.starts_with(' '), "{t:?}");
                assert!(!t.trim_start_matches(' ').contains(' '), "{t:?}");
            }
            let n = 1 + rng.below(5);
            let pieces = split_in(&text, n);
            assert_eq!(pieces.concat(), text);
            assert!(pieces.len() <= n);
            let size = 1 + rng.below(7);
            assert_eq!(chunk_ascii(&text, size).concat(), text);
        }
        assert_eq!(filler(7), "w1 w2 w");
        assert_eq!(filler(0), "");
    }

    /// Random requests in both formats: no panics, every frame parses, streams are well formed.
    #[test]
    fn random_requests_produce_well_formed_output() {
        const DIRECTIVES: &[&str] = &[
            "mock:parallel",
            "mock:thinking",
            "mock:refusal",
            "mock:content_filter",
            "mock:cache",
            "mock:tokens=4",
            "mock:midstream_error",
            "mock:reset",
            "mock:stall",
            "mock:status=429",
            "mock:big=3000",
            "mock:ttft=1",
            "mock:notools",
            "mock:tool=get_weather",
            "mock:tool=ghost",
            r#"mock:args={"k":[1,"v"]}"#,
            "",
        ];
        let mut rng = Prng(0x1234_5678_9abc_def1);
        for round in 0..400 {
            let mut prompt = rng.text(20);
            for _ in 0..rng.below(3) {
                prompt.push(' ');
                prompt.push_str(DIRECTIVES[rng.below(DIRECTIVES.len())]);
            }
            let stream = rng.below(2) == 0;
            let with_tools = rng.below(2) == 0;
            let stops = json!([rng.text(3)]);
            let api = [
                Api::OpenAiChat,
                Api::AnthropicMessages,
                Api::AnthropicCountTokens,
            ][round % 3];
            let body = match api {
                Api::OpenAiChat => {
                    let tools = if with_tools {
                        json!([weather_tool_openai()])
                    } else {
                        json!([])
                    };
                    openai(
                        &prompt,
                        json!({"stream": stream, "tools": tools, "stop": stops,
                        "max_tokens": rng.below(12), "stream_options": {"include_usage": rng.below(2) == 0}}),
                    )
                }
                _ => {
                    let tools = if with_tools {
                        json!([weather_tool_anthropic()])
                    } else {
                        json!([])
                    };
                    anthropic(
                        &prompt,
                        json!({"stream": stream, "tools": tools,
                        "stop_sequences": stops, "max_tokens": rng.below(12)}),
                    )
                }
            };
            let steps = run(api, &body);
            assert_eq!(steps, run(api, &body));
            match steps.last() {
                Some(Step::Reset | Step::Stall) => continue,
                Some(Step::End) => {}
                other => panic!("plan ends with {other:?}"),
            }
            let h = head(&steps);
            if h.content_length.is_some() {
                fixed(&steps);
                continue;
            }
            if api == Api::OpenAiChat {
                let (chunks, done) = o_chunks(&steps);
                let errored = chunks.last().is_some_and(|c| c.get("error").is_some());
                assert!(done != errored);
                let finishes = chunks
                    .iter()
                    .filter(|c| !c["choices"][0]["finish_reason"].is_null())
                    .count();
                assert_eq!(finishes, usize::from(done));
            } else {
                let events = a_events(&steps);
                assert_eq!(events[0].0, "message_start");
                let last = events.last().unwrap().0.as_str();
                assert!(last == "message_stop" || last == "error");
                // Block indexes open in order and every open block closes before the end.
                let mut open: Option<u64> = None;
                let mut next = 0;
                for (name, v) in &events {
                    match name.as_str() {
                        "content_block_start" => {
                            assert!(open.is_none());
                            assert_eq!(v["index"], next);
                            open = Some(next);
                            next += 1;
                        }
                        "content_block_delta" => {
                            assert_eq!(Some(v["index"].as_u64().unwrap()), open)
                        }
                        "content_block_stop" => {
                            assert_eq!(Some(v["index"].as_u64().unwrap()), open);
                            open = None;
                        }
                        "message_delta" => assert!(open.is_none()),
                        _ => {}
                    }
                }
            }
        }
    }
}
