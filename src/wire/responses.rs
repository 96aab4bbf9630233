//! Borrowed, typed view of an OpenAI Responses API request (`POST /v1/responses`): the
//! request object, its `input` items and content parts, and its tools. Opaque subtrees (JSON
//! Schemas, tool choices, metadata) stay `&RawValue`.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{top_level_seed, Str, TextOr};

/// A Responses request. Every top-level key not listed lands in `unknown`.
#[derive(Debug, Default)]
pub struct ResponsesRequest<'a> {
    /// Model name (required).
    pub model: Option<Str<'a>>,
    /// A string (one user message) or a list of items: read item by item into the parser's
    /// [`crate::wire::Sink`].
    pub input: Option<super::Read>,
    /// System (developer) instructions.
    pub instructions: Option<Str<'a>>,
    /// Tool definitions (raw: the response repeats them; read with [`Tool`]).
    pub tools: Option<&'a RawValue>,
    /// `auto|none|required` or an object.
    pub tool_choice: Option<&'a RawValue>,
    /// `false`: at most one tool call.
    pub parallel_tool_calls: Option<bool>,
    /// Reasoning effort and summary.
    pub reasoning: Option<Reasoning<'a>>,
    /// Extra output (`reasoning.encrypted_content`, …).
    pub include: Option<Vec<Str<'a>>>,
    /// Keep the response server-side (ringway keeps nothing).
    pub store: Option<bool>,
    /// Stream the answer as SSE.
    pub stream: Option<bool>,
    /// Stream options (`include_obfuscation`).
    pub stream_options: Option<&'a RawValue>,
    /// Prompt cache routing key.
    pub prompt_cache_key: Option<&'a RawValue>,
    /// Prompt cache retention.
    pub prompt_cache_retention: Option<&'a RawValue>,
    /// Codex's client metadata (installation and session ids).
    pub client_metadata: Option<&'a RawValue>,
    /// Output cap including reasoning tokens.
    pub max_output_tokens: Option<u32>,
    /// Cap on hosted tool calls.
    pub max_tool_calls: Option<&'a RawValue>,
    /// Output format and verbosity (raw: the response repeats it; read with [`TextConfig`]).
    pub text: Option<&'a RawValue>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Log probabilities per token.
    pub top_logprobs: Option<&'a RawValue>,
    /// `auto|disabled`.
    pub truncation: Option<Str<'a>>,
    /// Developer tags.
    pub metadata: Option<&'a RawValue>,
    /// Deprecated end-user id.
    pub user: Option<Str<'a>>,
    /// End-user id.
    pub safety_identifier: Option<Str<'a>>,
    /// Processing tier.
    pub service_tier: Option<Str<'a>>,
    /// A stored response to continue (server-side state).
    pub previous_response_id: Option<&'a RawValue>,
    /// A stored conversation (server-side state).
    pub conversation: Option<&'a RawValue>,
    /// Run in the background (server-side state).
    pub background: Option<&'a RawValue>,
    /// A stored prompt template (server-side state).
    pub prompt: Option<&'a RawValue>,
    /// Top-level spelling of `text.verbosity` (the Python SDK's `parse` sends it).
    pub verbosity: Option<Str<'a>>,
    /// Server-side context management (compaction thresholds).
    pub context_management: Option<&'a RawValue>,
    /// Prompt cache options.
    pub prompt_cache_options: Option<&'a RawValue>,
    /// Every key not listed above, in order.
    pub unknown: Vec<(Str<'a>, &'a RawValue)>,
}

top_level_seed!(ResponsesRequestSeed, ResponsesRequest, {
    "model" => model,
    "instructions" => instructions,
    "tools" => tools,
    "tool_choice" => tool_choice,
    "parallel_tool_calls" => parallel_tool_calls,
    "reasoning" => reasoning,
    "include" => include,
    "store" => store,
    "stream" => stream,
    "stream_options" => stream_options,
    "prompt_cache_key" => prompt_cache_key,
    "prompt_cache_retention" => prompt_cache_retention,
    "client_metadata" => client_metadata,
    "max_output_tokens" => max_output_tokens,
    "max_tool_calls" => max_tool_calls,
    "text" => text,
    "temperature" => temperature,
    "top_p" => top_p,
    "top_logprobs" => top_logprobs,
    "truncation" => truncation,
    "metadata" => metadata,
    "user" => user,
    "safety_identifier" => safety_identifier,
    "service_tier" => service_tier,
    "previous_response_id" => previous_response_id,
    "conversation" => conversation,
    "background" => background,
    "prompt" => prompt,
    "verbosity" => verbosity,
    "context_management" => context_management,
    "prompt_cache_options" => prompt_cache_options,
}, lazy "input" => input: text_or InputItem);

/// One `input` item, flat: which fields apply depends on `type` (a message may omit it).
#[derive(Debug, Default, Deserialize)]
pub struct InputItem<'a> {
    /// `message|function_call|function_call_output|reasoning|custom_tool_call|…`.
    #[serde(borrow, rename = "type", default)]
    pub kind: Option<Str<'a>>,
    /// Message role: `user|assistant|system|developer`.
    #[serde(borrow, default)]
    pub role: Option<Str<'a>>,
    /// Message content: a string or parts; reasoning content parts.
    #[serde(borrow, default)]
    pub content: Option<TextOr<'a, Part<'a>>>,
    /// Item id (`msg_…`, `fc_…`, `rs_…`).
    #[serde(borrow, default)]
    pub id: Option<Str<'a>>,
    /// Function / custom tool call id.
    #[serde(borrow, default)]
    pub call_id: Option<Str<'a>>,
    /// Called tool's name.
    #[serde(borrow, default)]
    pub name: Option<Str<'a>>,
    /// The namespace of a namespaced function tool.
    #[serde(borrow, default)]
    pub namespace: Option<Str<'a>>,
    /// Function call arguments (a JSON text).
    #[serde(borrow, default)]
    pub arguments: Option<Str<'a>>,
    /// Custom tool call input (free text).
    #[serde(borrow, default)]
    pub input: Option<Str<'a>>,
    /// A tool call's output: a string or parts.
    #[serde(borrow, default)]
    pub output: Option<TextOr<'a, Part<'a>>>,
    /// Reasoning summary parts.
    #[serde(borrow, default)]
    pub summary: Option<Vec<Part<'a>>>,
    /// Reasoning (or compaction) content sealed by the server that produced it.
    #[serde(borrow, default)]
    pub encrypted_content: Option<Str<'a>>,
}

/// A content part (of a message, a tool output or a reasoning summary), flat.
#[derive(Debug, Default, Deserialize)]
pub struct Part<'a> {
    /// `input_text|output_text|input_image|input_file|refusal|summary_text|reasoning_text`.
    #[serde(borrow, rename = "type", default)]
    pub kind: Str<'a>,
    /// Text of a text part.
    #[serde(borrow, default)]
    pub text: Option<Str<'a>>,
    /// Refusal text.
    #[serde(borrow, default)]
    pub refusal: Option<Str<'a>>,
    /// Image URL (`https://…` or a data URL).
    #[serde(borrow, default)]
    pub image_url: Option<Str<'a>>,
    /// `low|high|auto`.
    #[serde(borrow, default)]
    pub detail: Option<Str<'a>>,
    /// An uploaded file's id (server-side state).
    #[serde(borrow, default)]
    pub file_id: Option<Str<'a>>,
    /// File content as a data URL.
    #[serde(borrow, default)]
    pub file_data: Option<Str<'a>>,
    /// File name.
    #[serde(borrow, default)]
    pub filename: Option<Str<'a>>,
    /// File URL.
    #[serde(borrow, default)]
    pub file_url: Option<Str<'a>>,
}

/// A tool definition, flat.
#[derive(Debug, Default, Deserialize)]
pub struct Tool<'a> {
    /// `function|namespace|custom|web_search|web_search_preview|…`.
    #[serde(borrow, rename = "type")]
    pub kind: Str<'a>,
    /// Function / namespace / custom tool name.
    #[serde(borrow, default)]
    pub name: Option<Str<'a>>,
    /// What it does.
    #[serde(borrow, default)]
    pub description: Option<Str<'a>>,
    /// JSON Schema of a function's arguments.
    #[serde(borrow, default)]
    pub parameters: Option<&'a RawValue>,
    /// Strict schema adherence.
    #[serde(default)]
    pub strict: Option<bool>,
    /// A namespace's function tools.
    #[serde(borrow, default)]
    pub tools: Option<Vec<Tool<'a>>>,
    /// A custom tool's input format (`text` or a grammar).
    #[serde(borrow, default)]
    pub format: Option<&'a RawValue>,
    /// Web search: `low|medium|high`.
    #[serde(borrow, default)]
    pub search_context_size: Option<Str<'a>>,
    /// Web search: the user's approximate location.
    #[serde(borrow, default)]
    pub user_location: Option<super::anthropic::UserLocation<'a>>,
}

/// `reasoning`.
#[derive(Debug, Default, Deserialize)]
pub struct Reasoning<'a> {
    /// `none|minimal|low|medium|high|xhigh`.
    #[serde(borrow, default)]
    pub effort: Option<Str<'a>>,
    /// `auto|concise|detailed`.
    #[serde(borrow, default)]
    pub summary: Option<Str<'a>>,
    /// Deprecated spelling of `summary`.
    #[serde(borrow, default)]
    pub generate_summary: Option<Str<'a>>,
}

/// `text`.
#[derive(Debug, Default, Deserialize)]
pub struct TextConfig<'a> {
    /// The output format.
    #[serde(borrow, default)]
    pub format: Option<TextFormat<'a>>,
    /// `low|medium|high`.
    #[serde(borrow, default)]
    pub verbosity: Option<Str<'a>>,
}

/// `text.format`.
#[derive(Debug, Default, Deserialize)]
pub struct TextFormat<'a> {
    /// `text|json_schema|json_object`.
    #[serde(borrow, rename = "type")]
    pub kind: Str<'a>,
    /// Schema name.
    #[serde(borrow, default)]
    pub name: Option<Str<'a>>,
    /// The JSON Schema.
    #[serde(borrow, default)]
    pub schema: Option<&'a RawValue>,
    /// What the schema is for.
    #[serde(borrow, default)]
    pub description: Option<Str<'a>>,
    /// Strict adherence.
    #[serde(default)]
    pub strict: Option<bool>,
}
