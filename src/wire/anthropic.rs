//! Anthropic Messages wire objects: request, response, stream event, error.
//!
//! Request-side content blocks are one flat struct ([`ContentBlock`]) covering every block
//! type, read and written alike; response-side blocks ([`ResponseBlock`]) skip the fields
//! only requests carry, so unknown server-tool result shapes never fail a response.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{top_level_seed, Str, TextOr};

/// `POST /v1/messages` body.
#[derive(Debug, Default, Serialize)]
pub struct MessagesRequest<'a> {
    /// Model name (required).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<Str<'a>>,
    /// Output cap, thinking included (required).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// The conversation (required): read message by message into the parser's
    /// [`crate::wire::Sink`], and written by the translators themselves, never from here.
    #[serde(skip)]
    pub messages: Option<super::Read>,
    /// System prompt: a string or text blocks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<TextOr<'a, ContentBlock<'a>>>,
    /// Sampling temperature, 0–1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Top-k sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// Stop strings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<Str<'a>>>,
    /// Stream the answer as SSE.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// `{user_id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata<'a>>,
    /// Tool definitions, as written (a translation writes these; a request read keeps its
    /// tools' JSON in [`Self::tools_json`], read by [`Self::read_tools`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool<'a>>>,
    /// A read request's `tools`, as their JSON: an agent sends the same ones every turn, and
    /// a translation may have kept what it made of these bytes.
    #[serde(skip)]
    pub tools_json: Option<&'a RawValue>,
    /// The body named `tools` more than once (the last counts; read typed, each is checked).
    #[serde(skip)]
    pub tools_twice: bool,
    /// Tool definitions written already, each as its JSON (a translation kept them from an
    /// earlier request with the same tools): written as `tools`, in its place; never read.
    #[serde(rename = "tools", skip_serializing_if = "Option::is_none")]
    pub tools_written: Option<Vec<&'a RawValue>>,
    /// Tool choice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice<'a>>,
    /// Extended thinking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Thinking<'a>>,
    /// Effort and structured output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_config: Option<OutputConfig<'a>>,
    /// Older beta spelling of `output_config.format`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_format: Option<OutputFormat<'a>>,
    /// `auto|standard_only`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<Str<'a>>,
    /// Top-level automatic prompt caching.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<&'a RawValue>,
    /// Code-execution container (no OpenAI equivalent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<&'a RawValue>,
    /// Inference region (no OpenAI equivalent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inference_geo: Option<&'a RawValue>,
    /// Context editing (no OpenAI equivalent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_management: Option<&'a RawValue>,
    /// Remote MCP servers (no OpenAI equivalent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mcp_servers: Option<&'a RawValue>,
    /// Every key not listed above, in order.
    #[serde(skip)]
    pub unknown: Vec<(Str<'a>, &'a RawValue)>,
}

top_level_seed!(MessagesRequestSeed, MessagesRequest, {
    "model" => model,
    "max_tokens" => max_tokens,
    "system" => system,
    "temperature" => temperature,
    "top_p" => top_p,
    "top_k" => top_k,
    "stop_sequences" => stop_sequences,
    "stream" => stream,
    "metadata" => metadata,
    "tool_choice" => tool_choice,
    "thinking" => thinking,
    "output_config" => output_config,
    "output_format" => output_format,
    "service_tier" => service_tier,
    "cache_control" => cache_control,
    "container" => container,
    "inference_geo" => inference_geo,
    "context_management" => context_management,
    "mcp_servers" => mcp_servers,
}, either "tools" => tools | tools_json | tools_twice, read by read_tools as Tool,
   lazy "messages" => messages: seq Message);

/// One conversation turn.
#[derive(Debug, Deserialize, Serialize)]
pub struct Message<'a> {
    /// `user|assistant`.
    #[serde(borrow)]
    pub role: Str<'a>,
    /// A string or content blocks (mostly blocks: read in one pass).
    #[serde(borrow, deserialize_with = "super::text_or_any")]
    pub content: TextOr<'a, ContentBlock<'a>>,
}

/// A request content block of any type (flat: only the fields of its `type` are set).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct ContentBlock<'a> {
    /// `text|image|document|tool_use|tool_result|thinking|redacted_thinking|…`.
    #[serde(borrow, rename = "type")]
    pub kind: Str<'a>,
    /// `text`: the text.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub text: Option<Str<'a>>,
    /// `image` / `document`: where the bytes are (`search_result`: a plain string, kept as
    /// `url` of an `inline` source).
    #[serde(
        borrow,
        default,
        deserialize_with = "lenient_source",
        skip_serializing_if = "Option::is_none"
    )]
    pub source: Option<Box<Source<'a>>>,
    /// `tool_use`: call id.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub id: Option<Str<'a>>,
    /// `tool_use`: tool name.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub name: Option<Str<'a>>,
    /// `tool_use`: arguments object.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub input: Option<&'a RawValue>,
    /// `tool_result`: the call answered.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub tool_use_id: Option<Str<'a>>,
    /// `tool_result`: a string or blocks.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub content: Option<TextOr<'a, ContentBlock<'a>>>,
    /// `tool_result`: the tool failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
    /// `thinking`: the thinking text.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Str<'a>>,
    /// `thinking`: opaque signature, echoed byte-exact.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Str<'a>>,
    /// `redacted_thinking`: opaque data, echoed byte-exact.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub data: Option<Str<'a>>,
    /// `document`: title.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub title: Option<Str<'a>>,
    /// `document`: context.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub context: Option<Str<'a>>,
    /// Citations (text) or citation settings (document).
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub citations: Option<&'a RawValue>,
    /// Prompt-cache breakpoint.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<&'a RawValue>,
    /// `tool_use`: who made the call (`{"type":"direct"}`, or a code-execution tool for
    /// programmatic tool calling).
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub caller: Option<&'a RawValue>,
    /// `tool_reference`: the deferred tool a tool search loaded.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<Str<'a>>,
}

fn lenient_source<'de: 'a, 'a, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Box<Source<'a>>>, D::Error> {
    struct V<'a>(std::marker::PhantomData<&'a ()>);
    impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
        type Value = Option<Box<Source<'a>>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a source object or string")
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Box::new(Source {
                kind: Str::from("inline"),
                url: Some(Str::from(v)),
                ..Source::default()
            })))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Box::new(Source {
                kind: Str::from("inline"),
                url: Some(Str::from(v.to_owned())),
                ..Source::default()
            })))
        }
        fn visit_map<M: serde::de::MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
            Source::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                .map(|s| Some(Box::new(s)))
        }
    }
    d.deserialize_any(V(std::marker::PhantomData))
}

/// `source` of an image or document block.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct Source<'a> {
    /// `base64|url|file|text|content`.
    #[serde(borrow, rename = "type")]
    pub kind: Str<'a>,
    /// `base64` / `text`: MIME type.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<Str<'a>>,
    /// `base64`: the bytes; `text`: the text.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub data: Option<Str<'a>>,
    /// `url`: the URL.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub url: Option<Str<'a>>,
    /// `file`: Files API id.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<Str<'a>>,
    /// `content`: a string or blocks.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub content: Option<TextOr<'a, ContentBlock<'a>>>,
}

/// A tool definition (custom or server tool).
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct Tool<'a> {
    /// Absent or `custom` for client tools; `web_search_…`, `bash_…` … for server tools.
    #[serde(borrow, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<Str<'a>>,
    /// Tool name.
    #[serde(borrow)]
    pub name: Str<'a>,
    /// What the tool does.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub description: Option<Str<'a>>,
    /// JSON Schema of `input`, passed through untouched.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<&'a RawValue>,
    /// Strict schema adherence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    /// Web search: call budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u32>,
    /// Web search: approximate location.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub user_location: Option<UserLocation<'a>>,
    /// Prompt-cache breakpoint.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<&'a RawValue>,
    /// Tool search: the definition is loaded only once a `tool_reference` names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub defer_loading: Option<bool>,
}

/// Approximate location (web search), same fields in both APIs.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct UserLocation<'a> {
    /// `approximate`.
    #[serde(borrow, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<Str<'a>>,
    /// City.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub city: Option<Str<'a>>,
    /// Region.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub region: Option<Str<'a>>,
    /// ISO country code.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub country: Option<Str<'a>>,
    /// IANA time zone.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<Str<'a>>,
}

/// `tool_choice`.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct ToolChoice<'a> {
    /// `auto|any|tool|none`.
    #[serde(borrow, rename = "type")]
    pub kind: Str<'a>,
    /// The forced tool (`tool`).
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub name: Option<Str<'a>>,
    /// At most / exactly one tool call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_parallel_tool_use: Option<bool>,
}

/// `thinking`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct Thinking<'a> {
    /// `enabled|disabled|adaptive`.
    #[serde(borrow, rename = "type")]
    pub kind: Str<'a>,
    /// Thinking budget (`enabled`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_tokens: Option<u32>,
    /// `summarized|omitted`.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub display: Option<Str<'a>>,
}

/// `output_config`.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct OutputConfig<'a> {
    /// `low|medium|high|xhigh|max`.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub effort: Option<Str<'a>>,
    /// Structured output format.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub format: Option<OutputFormat<'a>>,
}

/// `output_config.format`.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct OutputFormat<'a> {
    /// `json_schema`.
    #[serde(borrow, rename = "type")]
    pub kind: Str<'a>,
    /// The JSON Schema, passed through untouched.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub schema: Option<&'a RawValue>,
}

/// `metadata`.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct Metadata<'a> {
    /// Opaque end-user id.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Str<'a>>,
}

/// Non-streaming response body (read from upstreams).
#[derive(Debug, Default, Deserialize)]
pub struct MessageResponse<'a> {
    /// `msg_…`.
    #[serde(borrow, default)]
    pub id: Str<'a>,
    /// Model that answered.
    #[serde(borrow, default)]
    pub model: Str<'a>,
    /// Content blocks in order.
    #[serde(borrow, default)]
    pub content: Vec<ResponseBlock<'a>>,
    /// Why generation stopped.
    #[serde(borrow, default)]
    pub stop_reason: Option<Str<'a>>,
    /// The matched stop sequence.
    #[serde(borrow, default)]
    pub stop_sequence: Option<Str<'a>>,
    /// Refusal details.
    #[serde(borrow, default)]
    pub stop_details: Option<StopDetails<'a>>,
    /// Token usage.
    #[serde(default)]
    pub usage: Usage,
}

/// Non-streaming response body (written to clients).
#[derive(Debug, Serialize)]
pub struct MessageOut<'a> {
    /// `msg_…`.
    pub id: Str<'a>,
    /// `message`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `assistant`.
    pub role: &'static str,
    /// Model that answered.
    pub model: Str<'a>,
    /// Content blocks in order.
    pub content: Vec<ContentBlock<'a>>,
    /// Why generation stopped.
    pub stop_reason: Option<&'static str>,
    /// Always `null` (OpenAI does not say which stop string matched).
    pub stop_sequence: Option<Str<'a>>,
    /// Token usage.
    pub usage: Usage,
}

/// A response content block (only the fields translation reads).
#[derive(Debug, Default, Deserialize)]
pub struct ResponseBlock<'a> {
    /// Block type.
    #[serde(borrow, rename = "type", default)]
    pub kind: Str<'a>,
    /// `text`.
    #[serde(borrow, default)]
    pub text: Option<Str<'a>>,
    /// `tool_use` id.
    #[serde(borrow, default)]
    pub id: Option<Str<'a>>,
    /// `tool_use` name.
    #[serde(borrow, default)]
    pub name: Option<Str<'a>>,
    /// `tool_use` input object.
    #[serde(borrow, default)]
    pub input: Option<&'a RawValue>,
    /// `thinking` text.
    #[serde(borrow, default)]
    pub thinking: Option<Str<'a>>,
    /// `thinking` signature.
    #[serde(borrow, default)]
    pub signature: Option<Str<'a>>,
    /// `redacted_thinking` data.
    #[serde(borrow, default)]
    pub data: Option<Str<'a>>,
}

/// `stop_details`.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct StopDetails<'a> {
    /// `refusal`.
    #[serde(
        borrow,
        rename = "type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub kind: Option<Str<'a>>,
    /// Refusal category.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Str<'a>>,
    /// Human-readable explanation.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Str<'a>>,
}

/// Token usage (response, `message_start`, `message_delta`: every field optional on read).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct Usage {
    /// Uncached input tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Tokens written to the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    /// Tokens read from the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    /// Output tokens, thinking included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// Output breakdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens_details: Option<OutputTokensDetails>,
}

/// `usage.output_tokens_details`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct OutputTokensDetails {
    /// Thinking tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_tokens: Option<u64>,
}

/// One streamed event's `data` (all event types share this flat view).
#[derive(Debug, Default, Deserialize)]
pub struct StreamEvent<'a> {
    /// Event type (equals the SSE `event:` name).
    #[serde(borrow, rename = "type", default)]
    pub kind: Option<Str<'a>>,
    /// `message_start`: the empty message.
    #[serde(borrow, default)]
    pub message: Option<StartMessage<'a>>,
    /// `content_block_*`: block index.
    #[serde(default)]
    pub index: Option<u64>,
    /// `content_block_start`: the initial block.
    #[serde(borrow, default)]
    pub content_block: Option<ResponseBlock<'a>>,
    /// `content_block_delta` / `message_delta`: the delta.
    #[serde(borrow, default)]
    pub delta: Option<EventDelta<'a>>,
    /// `message_delta`: cumulative usage.
    #[serde(default)]
    pub usage: Option<Usage>,
    /// `error`: the error.
    #[serde(borrow, default)]
    pub error: Option<ErrorObject<'a>>,
}

/// `message_start.message`.
#[derive(Debug, Default, Deserialize)]
pub struct StartMessage<'a> {
    /// `msg_…`.
    #[serde(borrow, default)]
    pub id: Option<Str<'a>>,
    /// Model that answers.
    #[serde(borrow, default)]
    pub model: Option<Str<'a>>,
    /// Initial usage (input and cache counts).
    #[serde(default)]
    pub usage: Option<Usage>,
}

/// `delta` of `content_block_delta` and `message_delta`.
#[derive(Debug, Default, Deserialize)]
pub struct EventDelta<'a> {
    /// `text_delta|input_json_delta|thinking_delta|signature_delta|…` (absent on message_delta).
    #[serde(borrow, rename = "type", default)]
    pub kind: Option<Str<'a>>,
    /// `text_delta`.
    #[serde(borrow, default)]
    pub text: Option<Str<'a>>,
    /// `input_json_delta`: a raw fragment of the arguments JSON.
    #[serde(borrow, default)]
    pub partial_json: Option<Str<'a>>,
    /// `thinking_delta`.
    #[serde(borrow, default)]
    pub thinking: Option<Str<'a>>,
    /// `signature_delta`.
    #[serde(borrow, default)]
    pub signature: Option<Str<'a>>,
    /// `message_delta`: why generation stopped.
    #[serde(borrow, default)]
    pub stop_reason: Option<Str<'a>>,
    /// `message_delta`: refusal details.
    #[serde(borrow, default)]
    pub stop_details: Option<StopDetails<'a>>,
}

/// Error envelope `{"type":"error","error":{…},"request_id"?}` (body or stream event).
#[derive(Debug, Default, Deserialize)]
pub struct ErrorBody<'a> {
    /// `error`.
    #[serde(borrow, rename = "type", default)]
    pub kind: Option<Str<'a>>,
    /// The error.
    #[serde(borrow)]
    pub error: ErrorObject<'a>,
}

/// `{"type","message"}`.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct ErrorObject<'a> {
    /// Error type (`invalid_request_error`, `overloaded_error`, …).
    #[serde(borrow, rename = "type", default)]
    pub kind: Str<'a>,
    /// Human-readable message.
    #[serde(borrow, default)]
    pub message: Str<'a>,
}
