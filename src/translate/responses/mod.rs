//! The OpenAI Responses API (`POST /v1/responses`) as a client dialect: its request read into
//! a Chat Completions request (sent as is to an openai-kind provider, or on through the
//! Chat → Messages translator to an anthropic-kind one), and the provider's answer, whole or
//! streamed, rendered back as Responses output by one renderer.

mod direct;
mod kept;
mod native;
mod open;
pub(super) mod render;
mod request;
mod tools;

pub use super::responses_via_chat::{chat_to_responses_response_into, ChatToResponsesStream};
pub use super::responses_via_messages::{
    anthropic_to_responses_response_into, AnthropicToResponsesStream,
};
pub use crate::dialect::responses::error_event;
pub use native::native_request;
pub use open::{open_sealed_items, Opened};
pub(crate) use request::responses_request_shared;
pub use request::{
    compact_request, compact_request_within, responses_request, responses_request_within,
    stateful_param,
};

/// What the gateway asks the model for when it compacts a conversation itself.
pub const COMPACTION_PROMPT: &str = "Summarise the conversation so far for a model that will continue it without seeing it. Include the task and its current state, decisions made and why, constraints and preferences stated, important facts, file names, commands and results, and what remains to be done, with clear next steps. Write only the summary.";

/// How an opened compaction item goes back to a provider: a user message holding the summary.
pub const COMPACTION_PREAMBLE: &str =
    "The earlier part of this conversation was compacted. Summary of it:\n\n";

/// What the Responses side of a translated request needs to render its answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponsesMeta {
    /// `resp_…` (the gateway sets it from the request id).
    pub id: String,
    /// The client asked for reasoning summaries (`reasoning.summary`).
    pub summary: bool,
    /// The client asked for `reasoning.encrypted_content`.
    pub encrypted: bool,
    /// The gateway keeps this answer (stored responses): its stored copy carries each
    /// reasoning item's sealed thinking even where the client's does not (`encrypted` off),
    /// so that an `item_reference` or `previous_response_id` brings the thinking back.
    pub keep: bool,
    /// A whole answer that is kept, without `encrypted`: its reasoning items' sealed thinking
    /// as `(item id, sealed)`, handed out by the translator for the stored copy (a stream's
    /// translator says it through [`crate::translate::StreamTranslator::kept_seals`]).
    pub kept_seals: std::cell::RefCell<Vec<(String, String)>>,
    /// Seals the provider's reasoning (anthropic kind) for the client to send back: bound to
    /// the request's gateway key.
    pub seal: Option<crate::seal::SealKey>,
    /// PII substitution as the request ran: what is sealed for the client depends on it.
    pub pii: SealPii,
    /// The provider's name, bound into every seal: a sealed item only goes back to it.
    pub provider: String,
    /// Tools whose upstream name differs from the client's (namespaced, custom).
    pub tools: Vec<ToolName>,
    /// Request values the response object repeats (shared: a stream's translator keeps its
    /// own copy of this meta, and the tools alone may be tens of KB).
    pub echo: std::sync::Arc<Echo>,
    /// The client asked for a compaction (`compaction_trigger`, or `/v1/responses/compact`):
    /// the answer's text is the summary, handed out as one sealed `compaction` item.
    pub compaction: Compaction,
}

/// PII substitution as a request ran, for what its answer seals.
///
/// A compaction summary is sealed restored (the stand-ins in it back to originals), as the
/// client holds the rest of its conversation: when it comes back it is opened before
/// substitution and substituted with the rest of the request, so its stand-ins agree with the
/// rest and the answer's restore finds them. A reasoning item's thinking must go back to its
/// provider as signed, so it is sealed as written, marked as written from substituted input.
#[derive(Clone, Debug, Default)]
pub struct SealPii {
    /// Substitution was on for the request.
    pub on: bool,
    /// Its stand-ins (None: off, or nothing was replaced).
    pub restore: Option<std::sync::Arc<crate::pii::RestoreSet>>,
}

impl PartialEq for SealPii {
    fn eq(&self, other: &Self) -> bool {
        self.on == other.on
            && match (&self.restore, &other.restore) {
                (Some(a), Some(b)) => std::sync::Arc::ptr_eq(a, b),
                (a, b) => a.is_none() && b.is_none(),
            }
    }
}

impl Eq for SealPii {}

/// Whether, and how, a request compacts the conversation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compaction {
    /// An ordinary request.
    #[default]
    No,
    /// `compaction_trigger` in `input`: a Responses answer with one `compaction` item.
    Trigger,
    /// `POST /v1/responses/compact`: a `response.compaction` object.
    Endpoint,
}

/// A client tool under another name upstream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ToolName {
    /// The name the provider knows.
    pub upstream: String,
    /// The client's namespace, for a namespaced function.
    pub namespace: Option<String>,
    /// The client's name.
    pub name: String,
    /// A custom (free-text) tool sent as a function taking `{"input": string}`.
    pub custom: bool,
}

/// Request values the response object repeats, as JSON texts (the API's default where the
/// request left a value unset).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Echo {
    /// `instructions` (a string or null).
    pub instructions: String,
    /// `max_output_tokens`.
    pub max_output_tokens: String,
    /// `max_tool_calls`.
    pub max_tool_calls: String,
    /// `parallel_tool_calls`.
    pub parallel_tool_calls: String,
    /// `reasoning` (`effort`, `summary`, `context`).
    pub reasoning: String,
    /// `temperature`.
    pub temperature: String,
    /// `text` (`format`, `verbosity`).
    pub text: String,
    /// `tool_choice`.
    pub tool_choice: String,
    /// `tools` (function tools with `description`, `parameters` and `strict` filled in).
    pub tools: std::sync::Arc<str>,
    /// `top_p`.
    pub top_p: String,
    /// `top_logprobs`.
    pub top_logprobs: String,
    /// `metadata`.
    pub metadata: String,
    /// `previous_response_id`.
    pub previous_response_id: String,
    /// `store`: whether the gateway keeps the response.
    pub store: String,
    /// `background`.
    pub background: String,
    /// `prompt_cache_key`.
    pub prompt_cache_key: String,
    /// `prompt_cache_retention`.
    pub prompt_cache_retention: String,
    /// `safety_identifier`.
    pub safety_identifier: String,
    /// `user`.
    pub user: String,
    /// `truncation`.
    pub truncation: String,
    /// The `service_tier` asked for (a JSON string), None when unset: the response says
    /// `auto` until it ends, then the tier asked for or `default`.
    pub service_tier: Option<String>,
}

impl Default for Echo {
    fn default() -> Self {
        let s = |v: &str| v.to_owned();
        Echo {
            instructions: s("null"),
            max_output_tokens: s("null"),
            max_tool_calls: s("null"),
            parallel_tool_calls: s("true"),
            reasoning: s(DEFAULT_REASONING),
            temperature: s("1.0"),
            text: s(DEFAULT_TEXT),
            tool_choice: s("\"auto\""),
            tools: std::sync::Arc::from("[]"),
            top_p: s("1.0"),
            top_logprobs: s("0"),
            metadata: s("{}"),
            previous_response_id: s("null"),
            store: s("false"),
            background: s("false"),
            prompt_cache_key: s("null"),
            prompt_cache_retention: s("null"),
            safety_identifier: s("null"),
            user: s("null"),
            truncation: s("\"disabled\""),
            service_tier: None,
        }
    }
}

impl Echo {
    /// The values written into the response as they are, by key, in the order written
    /// (`service_tier` depends on the response's stage and is not among them).
    pub fn fields(&self) -> [(&'static str, &str); 20] {
        [
            ("previous_response_id", &self.previous_response_id),
            ("store", &self.store),
            ("background", &self.background),
            ("truncation", &self.truncation),
            ("instructions", &self.instructions),
            ("max_output_tokens", &self.max_output_tokens),
            ("max_tool_calls", &self.max_tool_calls),
            ("parallel_tool_calls", &self.parallel_tool_calls),
            ("reasoning", &self.reasoning),
            ("temperature", &self.temperature),
            ("top_p", &self.top_p),
            ("top_logprobs", &self.top_logprobs),
            ("text", &self.text),
            ("tool_choice", &self.tool_choice),
            ("tools", &self.tools),
            ("metadata", &self.metadata),
            ("prompt_cache_key", &self.prompt_cache_key),
            ("prompt_cache_retention", &self.prompt_cache_retention),
            ("safety_identifier", &self.safety_identifier),
            ("user", &self.user),
        ]
    }
}

/// `reasoning` as the API echoes it when the request has none.
pub(crate) const DEFAULT_REASONING: &str = "{\"effort\":null,\"summary\":null,\"context\":null}";

/// `text` as the API echoes it when the request has none.
pub(crate) const DEFAULT_TEXT: &str = "{\"format\":{\"type\":\"text\"},\"verbosity\":\"medium\"}";

impl ResponsesMeta {
    /// The client's view of an upstream tool name: (namespace, name, custom).
    pub fn client_tool<'s>(&'s self, upstream: &'s str) -> (Option<&'s str>, &'s str, bool) {
        match self.tools.iter().find(|t| t.upstream == upstream) {
            Some(t) => (t.namespace.as_deref(), t.name.as_str(), t.custom),
            None => (None, upstream, false),
        }
    }

    /// The id's unique part, shared by the response's item ids.
    pub fn id_base(&self) -> &str {
        self.id.strip_prefix("resp_").unwrap_or(&self.id)
    }

    /// `resp_…` for a gateway request id (its letters and digits).
    pub fn response_id(request_id: &str) -> String {
        let mut id = String::with_capacity(5 + request_id.len());
        id.push_str("resp_");
        id.extend(request_id.chars().filter(char::is_ascii_alphanumeric));
        id
    }
}

/// The meta of `meta`'s Responses side (a default one for a request that has none, as in
/// tests and fuzzing).
/// The start of a whole (non-streamed) answer's rendering, shared by both provider dialects:
/// the Responses meta, a writer dated by the request (its model the provider's `model`, or the
/// upstream model when the provider named none) and the sink its opening events go to.
pub(crate) fn begin_whole<'m>(
    meta: &'m super::RequestMeta,
    provider_model: &str,
) -> (std::borrow::Cow<'m, ResponsesMeta>, render::Writer, Vec<u8>) {
    let rm = responses_meta(meta);
    let model = if provider_model.is_empty() {
        meta.upstream_model.as_str()
    } else {
        provider_model
    };
    let mut w = render::Writer::new(false, meta.created, model);
    w.set_now(meta.finished.get());
    let mut sink = Vec::new();
    w.start(&rm, &mut sink);
    (rm, w, sink)
}

pub(crate) fn responses_meta(meta: &super::RequestMeta) -> std::borrow::Cow<'_, ResponsesMeta> {
    match meta.responses.as_deref() {
        Some(r) => std::borrow::Cow::Borrowed(r),
        None => std::borrow::Cow::Owned(ResponsesMeta::default()),
    }
}

/// What a sealed reasoning item holds: one Anthropic thinking block and the provider that
/// made it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct SealedThinking {
    /// Provider name.
    pub p: String,
    /// `thinking` or `redacted_thinking`.
    pub k: String,
    /// Thinking text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t: Option<String>,
    /// Signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s: Option<String>,
    /// Redacted data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d: Option<String>,
    /// Written by the provider from a request whose PII was substituted: the text holds the
    /// holder's stand-ins, never its originals (see `open`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub x: bool,
}
