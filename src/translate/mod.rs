//! Pure translators between the client dialects, one folder per pair (client via provider):
//! `chat_via_messages`, `messages_via_chat`, `responses_via_chat`, `responses_via_messages`,
//! each with its request, answer and stream; `responses` reads Responses requests for either
//! provider and holds the one Responses renderer; `pair` is the one match on (client dialect,
//! provider dialect).
//!
//! Bytes in, bytes out: no IO, no clock, no global state. The gateway calls a request
//! translator, keeps the returned [`RequestMeta`], and hands it to the response side (a
//! response translator or a stream machine). Rejected requests come back as a
//! [`TranslateError`] the gateway renders in the client's dialect.

pub mod chat_via_gemini;
mod chat_via_messages;
pub mod check;
mod conversations;
mod direct;
mod emit;
mod error;
pub mod gemini;
pub mod gemini_via_chat;
mod kept;
pub mod ledger;
mod messages_via_chat;
mod out;
mod pair;
pub mod responses;
mod responses_via_chat;
mod responses_via_messages;
mod thinking;
pub(crate) mod util;

use std::fmt;

pub use chat_via_messages::request::{
    openai_to_anthropic_request, openai_to_anthropic_request_within,
};
pub use chat_via_messages::response::{
    anthropic_to_openai_response, anthropic_to_openai_response_into,
};
pub use chat_via_messages::stream::AnthropicToOpenAiStream;
pub use conversations::{keeping_from, kept_conversations_used};
pub use direct::{direct_turns, without_direct};
pub use error::{
    anthropic_to_openai_error, openai_to_anthropic_error, same_format_error, ANTHROPIC_ERROR_TYPES,
};
pub use kept::{kept_tools_used, without_kept};
pub use ledger::{Code, Ledger};
pub use messages_via_chat::request::{
    anthropic_to_openai_request, anthropic_to_openai_request_within,
};
pub use messages_via_chat::response::{
    openai_to_anthropic_response, openai_to_anthropic_response_into,
};
pub use messages_via_chat::stream::OpenAiToAnthropicStream;
pub use out::{lending_from, without_lending, Room, Shared, LEND_MIN_BYTES};
pub use pair::{Pair, StreamTranslator};
pub use thinking::{thinking_style_for, ThinkingForm, ThinkingStyle};

/// `max_tokens` sent to Anthropic when an OpenAI client gives no limit (LiteLLM's default).
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// Anthropic's smallest accepted `thinking.budget_tokens`.
pub const MIN_THINKING_BUDGET: u32 = 1024;

/// Name of the tool that carries `response_format: json_object` answers (spec §11 option 2).
pub const JSON_TOOL_NAME: &str = "json_tool_call";

/// Longest tool name OpenAI accepts; longer Anthropic names are shortened and mapped back.
pub const OPENAI_TOOL_NAME_MAX: usize = 64;

/// Most stop strings OpenAI accepts.
pub const OPENAI_MAX_STOP: usize = 4;

/// Most content blocks (Anthropic upstream) or tool calls (OpenAI upstream) one stream may
/// open; bounds the per-stream state tables.
pub const MAX_STREAM_BLOCKS: usize = 4096;

/// Most bytes of thinking text (and signatures) a stream buffers for blocks not yet closed
/// (each is sent whole in `thinking_blocks`); more ends the stream with an error rather than
/// growing without bound.
pub const MAX_THINKING_BYTES: usize = 16 << 20;

/// Most bytes of tool calls (ids, names, arguments) an OpenAI→Anthropic stream holds back
/// while an upstream interleaves the arguments of parallel calls (each is sent whole at the
/// finish); more ends the stream with an error rather than growing without bound. Sized like
/// [`MAX_THINKING_BYTES`]: far above any real model output.
pub const MAX_HELD_TOOL_BYTES: usize = 16 << 20;

/// Most bytes of output text, arguments and reasoning a Responses stream holds: its done events
/// and its final event repeat the whole answer, so it is kept until the end; a longer answer
/// ends the stream with `response.failed` rather than growing without bound. The end writes it
/// about four times more (done events, the final response), escaped: 4 MiB (about a million
/// tokens, far beyond any model's output cap) keeps that within tens of MiB per stream.
pub const MAX_HELD_OUTPUT_BYTES: usize = 4 << 20;

/// Room reserved beyond a request body's length for its translation when the output buffer is
/// first sized (ids, field names and defaults differ in length between the formats): most
/// translations then never grow it.
pub const OUT_SLACK_BYTES: usize = 4096;

/// Bytes of buffers a request translation may reserve, for a body of `body_len` bytes: the
/// share of the worker's budget (`server.max_buffered_bytes`) it is charged before it starts,
/// and the most it writes (a translation that would need more stops with
/// [`TranslateError::over_budget`]). Three times the body: what the longest translation
/// (Responses to Messages, through a Chat body held while it is read) writes for bodies of
/// many tiny items, where every item's markup grows; one a little shorter than the body
/// is the usual case. Plus the room its conversation's buffer keeps in front
/// ([`out::front_room`]), three times: it is part of the buffer, which holds its old and its
/// new allocation (half as large again) while it grows.
pub fn request_memory_bound(body_len: usize) -> usize {
    body_len
        .saturating_mul(REQUEST_MEMORY_FACTOR)
        .saturating_add(REQUEST_MEMORY_SLACK)
        .saturating_add(out::front_room(body_len).saturating_mul(3))
}

/// Multiple of a request body's length its translation may hold (see [`request_memory_bound`]).
pub const REQUEST_MEMORY_FACTOR: usize = 3;

/// Bytes a request translation may hold beyond [`REQUEST_MEMORY_FACTOR`] times its body.
pub const REQUEST_MEMORY_SLACK: usize = 64 * 1024;

/// Most bytes of a non-JSON upstream error body quoted in the translated error message.
pub const MAX_ERROR_SNIPPET: usize = 256;

/// `reasoning_effort` ⇄ `thinking.budget_tokens` table (spec §9). Budgets below
/// [`MIN_THINKING_BUDGET`] are raised to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EffortTable {
    /// Budget for `minimal`.
    pub minimal: u32,
    /// Budget for `low`.
    pub low: u32,
    /// Budget for `medium`.
    pub medium: u32,
    /// Budget for `high`.
    pub high: u32,
    /// Budget for `xhigh`.
    pub xhigh: u32,
    /// Budget for `max`.
    pub max: u32,
    /// Reverse direction: budgets up to this are `low`.
    pub low_up_to: u32,
    /// Reverse direction: budgets up to this (and above `low_up_to`) are `medium`; larger
    /// ones are `high`.
    pub medium_up_to: u32,
}

impl Default for EffortTable {
    fn default() -> Self {
        // LiteLLM's DEFAULT_REASONING_EFFORT_* budgets; xhigh/max clamp to high (spec §9).
        EffortTable {
            minimal: 1024,
            low: 1024,
            medium: 2048,
            high: 4096,
            xhigh: 4096,
            max: 4096,
            low_up_to: 2048,
            medium_up_to: 8192,
        }
    }
}

impl EffortTable {
    /// Budget for an OpenAI `reasoning_effort`: `Some(None)` = thinking off (`none`),
    /// `None` = not a known effort.
    pub fn budget(&self, effort: &str) -> Option<Option<u32>> {
        let b = match effort {
            "none" => return Some(None),
            "minimal" => self.minimal,
            "low" => self.low,
            "medium" => self.medium,
            "high" => self.high,
            "xhigh" => self.xhigh,
            "max" => self.max,
            _ => return None,
        };
        Some(Some(b.max(MIN_THINKING_BUDGET)))
    }

    /// OpenAI `reasoning_effort` for an Anthropic `budget_tokens`.
    pub fn effort_for_budget(&self, budget: u32) -> &'static str {
        if budget <= self.low_up_to {
            "low"
        } else if budget <= self.medium_up_to {
            "medium"
        } else {
            "high"
        }
    }
}

/// Which field carries Anthropic's `max_tokens` to an OpenAI upstream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MaxTokensField {
    /// `max_completion_tokens` (current API; reasoning models reject `max_tokens`).
    #[default]
    MaxCompletionTokens,
    /// `max_tokens` (legacy OpenAI-compatible servers).
    MaxTokens,
}

/// Translation settings (from the gateway config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// `max_tokens` for Anthropic when an OpenAI client omits it.
    pub default_max_tokens: u32,
    /// `reasoning_effort` ⇄ thinking budget table.
    pub effort_budgets: EffortTable,
    /// Field used for the output cap on OpenAI upstreams.
    pub openai_max_tokens_field: MaxTokensField,
    /// Thinking form for `reasoning_effort` on Anthropic upstreams.
    pub thinking_style: ThinkingStyle,
    /// Seals reasoning for Responses clients (None: reasoning is not handed out sealed).
    pub seal: Option<crate::seal::SealKey>,
    /// The provider's name, bound into seals so that sealed reasoning only goes back to it.
    pub provider: String,
    /// Send Gemini `functionCall.id` / `functionResponse.id` (the Gemini API takes them;
    /// Vertex matches calls by order).
    pub gemini_call_ids: bool,
    /// The client's path asked for a stream (a Gemini client: its bodies do not say).
    pub path_stream: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            default_max_tokens: DEFAULT_MAX_TOKENS,
            effort_budgets: EffortTable::default(),
            openai_max_tokens_field: MaxTokensField::default(),
            thinking_style: ThinkingStyle::default(),
            seal: None,
            provider: String::new(),
            gemini_call_ids: true,
            path_stream: false,
        }
    }
}

/// What the response side needs to know about the translated request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestMeta {
    /// The client asked for a stream.
    pub stream: bool,
    /// OpenAI client sent `stream_options.include_usage: true`: send the usage chunk.
    pub include_usage: bool,
    /// `model` exactly as the client sent it.
    pub client_model: String,
    /// Model name sent upstream; used when an upstream response omits `model`.
    pub upstream_model: String,
    /// Unix seconds for OpenAI `created`. Translators never read a clock: the gateway sets
    /// this (once per request) before translating the response.
    pub created: u64,
    /// Unix seconds when the provider's whole answer was read (a Responses `completed_at`;
    /// 0: `created`). Set by the gateway before it translates a whole answer, through a shared
    /// meta; a stream's translator is handed the time as the stream is read instead.
    pub finished: std::cell::Cell<u64>,
    /// `response_format: json_object` was sent to Anthropic as the forced
    /// [`JSON_TOOL_NAME`] tool: its input becomes the answer's `content`.
    pub json_tool: bool,
    /// Anthropic client enabled thinking: OpenAI `reasoning_content` is surfaced as
    /// (unsigned) thinking blocks.
    pub client_thinking: bool,
    /// Tool names shortened for OpenAI (`(sent upstream, client's original)`).
    pub tool_names: Vec<(String, String)>,
    /// Everything the translation (or the provider's kind) dropped, changed or approximated:
    /// the dropped-params header, the ledger metric, the custody record and the span read it.
    pub ledger: Ledger,
    /// A Responses client: what its answer's rendering needs.
    pub responses: Option<Box<responses::ResponsesMeta>>,
    /// A Gemini provider: what reading its answer needs.
    pub gemini: Option<Box<gemini::GeminiLeg>>,
    /// A Gemini client streaming without `alt=sse`: its stream is one JSON array.
    pub gemini_json_array: bool,
    /// A Gemini client: what writing its answer needs.
    pub gemini_client: Option<Box<gemini_via_chat::GeminiClientMeta>>,
}

impl RequestMeta {
    /// The client's name for an upstream tool name (restores shortened names).
    pub fn client_tool_name<'s>(&'s self, upstream: &'s str) -> &'s str {
        self.tool_names
            .iter()
            .find(|(short, _)| short == upstream)
            .map_or(upstream, |(_, original)| original.as_str())
    }

    /// Note every shortened tool name, at its index in the client's tools when `index` finds
    /// it (`tools[3].name`), else as `tools[].name`.
    pub(crate) fn note_tool_names(&mut self, index: impl Fn(&str) -> Option<usize>) {
        for (_, original) in &self.tool_names {
            let field = match index(original) {
                Some(i) => std::borrow::Cow::Owned(format!("tools[{i}].name")),
                None => std::borrow::Cow::Borrowed("tools[].name"),
            };
            self.ledger.note(Code::ToolNameShortened, field);
        }
    }

    fn drop_param(&mut self, name: &'static str) {
        self.ledger.note(Code::ParamDropped, name);
    }

    /// Note `code` for `field` in the ledger.
    pub(crate) fn note(&mut self, code: Code, field: impl Into<std::borrow::Cow<'static, str>>) {
        self.ledger.note(code, field);
    }
}

/// A request that cannot be translated, or an upstream body that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TranslateError {
    /// HTTP status for the client (400 for requests, 502 for unreadable upstream bodies).
    pub status: u16,
    /// The offending parameter (`messages[2].content[0].type`), when one is to blame.
    pub param: Option<String>,
    /// Human-readable reason.
    pub message: String,
    /// OpenAI `code` (`unsupported_parameter`, `unsupported_value`, …).
    pub code: Option<&'static str>,
}

impl TranslateError {
    /// 400: the value is not valid for the API.
    pub(crate) fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        TranslateError {
            status: 400,
            param: Some(param.into()),
            message: message.into(),
            code: None,
        }
    }

    /// 400: a parameter the routed upstream cannot honour.
    pub(crate) fn unsupported_param(param: impl Into<String>, message: impl Into<String>) -> Self {
        TranslateError {
            code: Some("unsupported_parameter"),
            ..TranslateError::invalid(param, message)
        }
    }

    /// 400: a parameter value the routed upstream cannot honour.
    pub(crate) fn unsupported_value(param: impl Into<String>, message: impl Into<String>) -> Self {
        TranslateError {
            code: Some("unsupported_value"),
            ..TranslateError::invalid(param, message)
        }
    }

    /// 502: the upstream answered 2xx with a body we cannot read.
    pub(crate) fn upstream(message: impl Into<String>) -> Self {
        TranslateError {
            status: 502,
            param: None,
            message: message.into(),
            code: None,
        }
    }

    /// 413: the translation would hold more than the memory it was given (see
    /// [`request_memory_bound`]).
    pub fn over_budget() -> Self {
        TranslateError {
            status: 413,
            param: None,
            message: "the request is too large to translate within the gateway's memory budget for it (server.max_buffered_bytes)".to_owned(),
            code: None,
        }
    }

    /// Is this [`TranslateError::over_budget`]?
    pub fn is_over_budget(&self) -> bool {
        self.status == 413
    }

    /// 500: serialising our own output failed (not reachable with well-formed types).
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        TranslateError {
            status: 500,
            param: None,
            message: message.into(),
            code: None,
        }
    }

    /// The OpenAI error body (`{"error":{"message","type","param","code"}}`).
    pub fn to_openai_body(&self) -> Vec<u8> {
        error::openai_body(
            &self.message,
            error::openai_type_for_status(self.status),
            self.param.as_deref(),
            self.code,
        )
    }

    /// The Anthropic error body (`{"type":"error","error":{"type","message"}}`).
    pub fn to_anthropic_body(&self) -> Vec<u8> {
        error::anthropic_body(error::anthropic_type_for_status(self.status), &self.message)
    }
}

impl fmt::Display for TranslateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.param {
            Some(p) => write!(f, "{} ({}): {}", self.status, p, self.message),
            None => write!(f, "{}: {}", self.status, self.message),
        }
    }
}

impl std::error::Error for TranslateError {}

/// A translator's refusal becomes the gateway's error, rendered (and counted) like any other:
/// 400 a request the provider's dialect cannot carry, 502 an answer that cannot be read.
impl From<TranslateError> for crate::error::Error {
    fn from(e: TranslateError) -> Self {
        use crate::error::{Error, ErrorKind};
        let kind = match e.status {
            413 => ErrorKind::BodyTooLarge,
            400..=499 if e.code.is_some() => ErrorKind::Unsupported,
            400..=499 => ErrorKind::InvalidBody,
            500 => ErrorKind::Internal,
            _ => ErrorKind::UpstreamProtocol,
        };
        let mut out = Error::new(kind, e.message);
        if let Some(p) = e.param {
            out = out.with_param(p);
        }
        if let Some(c) = e.code {
            out = out.with_code(c);
        }
        out
    }
}

impl From<crate::wire::ParseError> for TranslateError {
    fn from(e: crate::wire::ParseError) -> Self {
        TranslateError {
            status: 400,
            message: e.to_string(),
            param: e.key,
            code: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn errors_render_in_both_dialects() {
        let e = TranslateError::unsupported_value("n", "n>1 is not supported");
        let o: Value = serde_json::from_slice(&e.to_openai_body()).unwrap();
        assert_eq!(
            o,
            json!({"error":{"message":"n>1 is not supported","type":"invalid_request_error","param":"n","code":"unsupported_value"}})
        );
        let a: Value = serde_json::from_slice(&e.to_anthropic_body()).unwrap();
        assert_eq!(
            a,
            json!({"type":"error","error":{"type":"invalid_request_error","message":"n>1 is not supported"}})
        );
        let u = TranslateError::upstream("bad");
        let a: Value = serde_json::from_slice(&u.to_anthropic_body()).unwrap();
        assert_eq!(a["error"]["type"], json!("api_error"));
    }

    #[test]
    fn as_the_gateway_error_they_render_like_every_gateway_error() {
        use crate::error::{Error, ErrorKind};
        use crate::format::Format;
        // An unreadable answer is a 502 like any other the gateway gives (code
        // `upstream_error` in the OpenAI format), not a second vocabulary.
        let u = Error::from(TranslateError::upstream("bad"));
        let plain = Error::new(ErrorKind::UpstreamProtocol, "bad");
        for f in [Format::OpenAi, Format::Anthropic] {
            assert_eq!(f.error_body(&u), f.error_body(&plain));
        }
        assert_eq!(u.status(), 502);
        // A request the provider's dialect cannot carry keeps its param and code.
        for e in [
            TranslateError::unsupported_value("n", "n>1 is not supported"),
            TranslateError::unsupported_param("logit_bias", "no"),
            TranslateError::invalid("messages[0].role", "bad role"),
        ] {
            let g = Error::from(e.clone());
            assert_eq!(g.status(), e.status);
            for (ours, theirs) in [
                (Format::OpenAi.error_body(&g), e.to_openai_body()),
                (Format::Anthropic.error_body(&g), e.to_anthropic_body()),
            ] {
                let ours: Value = serde_json::from_slice(&ours).unwrap();
                let theirs: Value = serde_json::from_slice(&theirs).unwrap();
                assert_eq!(ours, theirs, "{e}");
            }
        }
    }

    #[test]
    fn effort_table_both_ways() {
        let t = EffortTable::default();
        assert_eq!(t.budget("none"), Some(None));
        assert_eq!(t.budget("minimal"), Some(Some(MIN_THINKING_BUDGET)));
        assert_eq!(t.budget("high"), Some(Some(4096)));
        assert_eq!(t.budget("huge"), None);
        let tiny = EffortTable {
            low: 10,
            ..EffortTable::default()
        };
        assert_eq!(tiny.budget("low"), Some(Some(MIN_THINKING_BUDGET)));
        assert_eq!(t.effort_for_budget(1024), "low");
        assert_eq!(t.effort_for_budget(8192), "medium");
        assert_eq!(t.effort_for_budget(8193), "high");
    }
}
