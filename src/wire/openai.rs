//! OpenAI Chat Completions wire objects: request, response, stream chunk, error.
//!
//! Each struct reads what a client or an upstream may send and writes what the API expects
//! (absent optional fields are skipped). Extensions this gateway understands are marked.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{anthropic, top_level_seed, Str, TextOr};

/// `POST /v1/chat/completions` body.
#[derive(Debug, Default, Serialize)]
pub struct ChatRequest<'a> {
    /// Model name (required).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<Str<'a>>,
    /// The conversation (required): read message by message into the parser's
    /// [`crate::wire::Sink`], and written by the translators themselves, never from here.
    #[serde(skip)]
    pub messages: Option<super::Read>,
    /// Output cap including reasoning tokens (preferred spelling).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    /// Deprecated output cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature, 0–2.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Number of choices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    /// Stop strings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<TextOr<'a, Str<'a>>>,
    /// Stream the answer as SSE.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Stream options (`include_usage`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
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
    /// `false` limits the model to one tool call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// Structured output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat<'a>>,
    /// `none|minimal|low|medium|high|xhigh|max`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<Str<'a>>,
    /// Deprecated end-user id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<Str<'a>>,
    /// End-user id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub safety_identifier: Option<Str<'a>>,
    /// Processing tier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<Str<'a>>,
    /// Return log probabilities.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    /// Number of top log probabilities.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u32>,
    /// Output modalities (`["text","audio"]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modalities: Option<Vec<Str<'a>>>,
    /// Audio output options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio: Option<&'a RawValue>,
    /// Sampling seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<&'a RawValue>,
    /// Frequency penalty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<&'a RawValue>,
    /// Presence penalty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<&'a RawValue>,
    /// Token bias map.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logit_bias: Option<&'a RawValue>,
    /// Stored-completion metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<&'a RawValue>,
    /// Store the completion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<&'a RawValue>,
    /// Predicted output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prediction: Option<&'a RawValue>,
    /// Prompt cache routing key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_cache_key: Option<&'a RawValue>,
    /// Prompt cache retention.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_cache_retention: Option<&'a RawValue>,
    /// Answer verbosity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verbosity: Option<&'a RawValue>,
    /// Built-in web search.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web_search_options: Option<WebSearchOptions<'a>>,
    /// Legacy function definitions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub functions: Option<&'a RawValue>,
    /// Legacy function choice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_call: Option<&'a RawValue>,
    /// Extension (LiteLLM-style): an Anthropic `thinking` object; wins over `reasoning_effort`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<anthropic::Thinking<'a>>,
    /// Extension (vLLM-style): top-k sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// Every key not listed above, in order.
    #[serde(skip)]
    pub unknown: Vec<(Str<'a>, &'a RawValue)>,
}

top_level_seed!(ChatRequestSeed, ChatRequest, {
    "model" => model,
    "max_completion_tokens" => max_completion_tokens,
    "max_tokens" => max_tokens,
    "temperature" => temperature,
    "top_p" => top_p,
    "n" => n,
    "stop" => stop,
    "stream" => stream,
    "stream_options" => stream_options,
    "tool_choice" => tool_choice,
    "parallel_tool_calls" => parallel_tool_calls,
    "response_format" => response_format,
    "reasoning_effort" => reasoning_effort,
    "user" => user,
    "safety_identifier" => safety_identifier,
    "service_tier" => service_tier,
    "logprobs" => logprobs,
    "top_logprobs" => top_logprobs,
    "modalities" => modalities,
    "audio" => audio,
    "seed" => seed,
    "frequency_penalty" => frequency_penalty,
    "presence_penalty" => presence_penalty,
    "logit_bias" => logit_bias,
    "metadata" => metadata,
    "store" => store,
    "prediction" => prediction,
    "prompt_cache_key" => prompt_cache_key,
    "prompt_cache_retention" => prompt_cache_retention,
    "verbosity" => verbosity,
    "web_search_options" => web_search_options,
    "functions" => functions,
    "function_call" => function_call,
    "thinking" => thinking,
    "top_k" => top_k,
}, either "tools" => tools | tools_json | tools_twice, read by read_tools as Tool,
   lazy "messages" => messages: seq Message);

/// `stream_options`.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct StreamOptions {
    /// Send one final chunk with `usage` and `choices: []`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
}

/// One conversation message (any role). Also the non-streaming response `message`.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct Message<'a> {
    /// `system|developer|user|assistant|tool|function`.
    #[serde(borrow)]
    pub role: Str<'a>,
    /// String or parts; `null` for assistant messages with only tool calls.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub content: Option<TextOr<'a, ContentPart<'a>>>,
    /// Participant name.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub name: Option<Str<'a>>,
    /// Assistant tool calls.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall<'a>>>,
    /// Which call a `tool` message answers.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<Str<'a>>,
    /// Assistant refusal text.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<Str<'a>>,
    /// Extension: thinking text (DeepSeek convention).
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<Str<'a>>,
    /// Extension: the Anthropic thinking / redacted_thinking blocks, verbatim with signatures.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub thinking_blocks: Option<Vec<anthropic::ContentBlock<'a>>>,
    /// Legacy assistant function call.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub function_call: Option<&'a RawValue>,
    /// Extension: prompt-cache breakpoint on the whole message.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<&'a RawValue>,
}

/// A content part of a message.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct ContentPart<'a> {
    /// `text|image_url|input_audio|file|refusal`.
    #[serde(borrow, rename = "type")]
    pub kind: Str<'a>,
    /// Text of a `text` part.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub text: Option<Str<'a>>,
    /// Image of an `image_url` part.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<ImageUrl<'a>>,
    /// File of a `file` part.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub file: Option<FilePart<'a>>,
    /// Audio of an `input_audio` part.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub input_audio: Option<&'a RawValue>,
    /// Text of a `refusal` part (assistant).
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<Str<'a>>,
    /// Extension: prompt-cache breakpoint.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<&'a RawValue>,
}

/// `image_url` object.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct ImageUrl<'a> {
    /// `http(s)://…` or `data:<mime>;base64,…`.
    #[serde(borrow)]
    pub url: Str<'a>,
    /// `auto|low|high` (no Anthropic equivalent).
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub detail: Option<Str<'a>>,
}

/// `file` object of a file part.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct FilePart<'a> {
    /// Data URL (or bare base64).
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub file_data: Option<Str<'a>>,
    /// OpenAI Files API id.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<Str<'a>>,
    /// File name.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub filename: Option<Str<'a>>,
}

/// A tool call (assistant message, response message, or stream delta).
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct ToolCall<'a> {
    /// Position among the message's tool calls (stream deltas only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// `call_…`.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub id: Option<Str<'a>>,
    /// Always `function`.
    #[serde(borrow, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<Str<'a>>,
    /// Name and JSON-string arguments.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionCall<'a>>,
}

/// `function` of a tool call.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct FunctionCall<'a> {
    /// Function name.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub name: Option<Str<'a>>,
    /// Arguments as a JSON text.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Str<'a>>,
}

/// A tool definition.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct Tool<'a> {
    /// `function|custom`.
    #[serde(borrow, rename = "type")]
    pub kind: Str<'a>,
    /// Definition of a function tool.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionDef<'a>>,
    /// Definition of a custom (grammar) tool.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub custom: Option<&'a RawValue>,
    /// Extension: prompt-cache breakpoint.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<&'a RawValue>,
}

/// `function` of a tool definition.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct FunctionDef<'a> {
    /// Function name.
    #[serde(borrow)]
    pub name: Str<'a>,
    /// What the function does.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub description: Option<Str<'a>>,
    /// JSON Schema of the arguments, passed through untouched.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<&'a RawValue>,
    /// Strict schema adherence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// `tool_choice`: a mode string or an object.
#[derive(Debug)]
pub enum ToolChoice<'a> {
    /// `none|auto|required`.
    Mode(Str<'a>),
    /// `{type:"function",function:{name}}`, `allowed_tools`, `custom`.
    Object(ToolChoiceObject<'a>),
}

impl Serialize for ToolChoice<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ToolChoice::Mode(m) => m.serialize(s),
            ToolChoice::Object(o) => o.serialize(s),
        }
    }
}

struct ToolChoiceVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> serde::de::Visitor<'de> for ToolChoiceVisitor<'a> {
    type Value = ToolChoice<'a>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string or an object")
    }
    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(ToolChoice::Mode(Str::from(v)))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(ToolChoice::Mode(Str::from(v.to_owned())))
    }
    fn visit_map<M: serde::de::MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
        ToolChoiceObject::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            .map(ToolChoice::Object)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for ToolChoice<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ToolChoiceVisitor(std::marker::PhantomData))
    }
}

/// Object form of `tool_choice`.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct ToolChoiceObject<'a> {
    /// `function|allowed_tools|custom`.
    #[serde(borrow, rename = "type")]
    pub kind: Str<'a>,
    /// The forced function.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub function: Option<NamedFunction<'a>>,
    /// `allowed_tools` payload.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub allowed_tools: Option<&'a RawValue>,
    /// `custom` payload.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub custom: Option<&'a RawValue>,
}

/// `{name}`.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct NamedFunction<'a> {
    /// Function name.
    #[serde(borrow)]
    pub name: Str<'a>,
}

/// `response_format`.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct ResponseFormat<'a> {
    /// `text|json_object|json_schema`.
    #[serde(borrow, rename = "type")]
    pub kind: Str<'a>,
    /// Schema of a `json_schema` format.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<JsonSchemaFormat<'a>>,
}

/// `response_format.json_schema`.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct JsonSchemaFormat<'a> {
    /// Schema name.
    #[serde(borrow)]
    pub name: Str<'a>,
    /// What the schema is for.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub description: Option<Str<'a>>,
    /// The JSON Schema, passed through untouched.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub schema: Option<&'a RawValue>,
    /// Strict adherence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// `web_search_options`.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct WebSearchOptions<'a> {
    /// `low|medium|high`.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub search_context_size: Option<Str<'a>>,
    /// Approximate user location.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub user_location: Option<WebSearchLocation<'a>>,
}

/// `web_search_options.user_location`.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct WebSearchLocation<'a> {
    /// `approximate`.
    #[serde(borrow, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<Str<'a>>,
    /// The location fields.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub approximate: Option<anthropic::UserLocation<'a>>,
}

/// Non-streaming response body.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct ChatCompletion<'a> {
    /// `chatcmpl-…`.
    #[serde(borrow, default)]
    pub id: Str<'a>,
    /// `chat.completion`.
    #[serde(borrow, default)]
    pub object: Str<'a>,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// Model that answered.
    #[serde(borrow, default)]
    pub model: Str<'a>,
    /// Choices (one: `n>1` is rejected).
    #[serde(borrow, default)]
    pub choices: Vec<Choice<'a>>,
    /// Token usage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Backend fingerprint.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<Str<'a>>,
}

/// One choice of a response.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct Choice<'a> {
    /// Choice index.
    #[serde(default)]
    pub index: u32,
    /// The assistant message.
    #[serde(borrow, default)]
    pub message: ResponseMessage<'a>,
    /// Always `null` here.
    #[serde(borrow, default)]
    pub logprobs: Option<&'a RawValue>,
    /// `stop|length|tool_calls|content_filter|function_call`.
    #[serde(borrow, default)]
    pub finish_reason: Option<Str<'a>>,
}

/// The assistant message of a non-streaming response.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct ResponseMessage<'a> {
    /// `assistant`.
    #[serde(borrow, default)]
    pub role: Str<'a>,
    /// Text, `null` when there is none.
    #[serde(borrow, default)]
    pub content: Option<Str<'a>>,
    /// Refusal text or `null`.
    #[serde(borrow, default)]
    pub refusal: Option<Str<'a>>,
    /// Tool calls, absent when there are none.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall<'a>>>,
    /// Extension: thinking text.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<Str<'a>>,
    /// Extension (OpenRouter-style backends): thinking text.
    #[serde(borrow, default, skip_serializing)]
    pub reasoning: Option<Str<'a>>,
    /// Extension: verbatim Anthropic thinking blocks (with signatures).
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub thinking_blocks: Option<Vec<anthropic::ContentBlock<'a>>>,
}

/// Token usage.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct Usage {
    /// Prompt tokens, cached ones included.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Completion tokens, reasoning included.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Sum of both.
    #[serde(default)]
    pub total_tokens: u64,
    /// Prompt breakdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    /// Completion breakdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
}

/// `usage.prompt_tokens_details`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct PromptTokensDetails {
    /// Tokens read from the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    /// Tokens written to the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_tokens: Option<u64>,
}

/// `usage.completion_tokens_details`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct CompletionTokensDetails {
    /// Reasoning tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
}

/// A streamed `chat.completion.chunk` (or an in-stream error object).
#[derive(Debug, Default, Deserialize)]
pub struct Chunk<'a> {
    /// `chatcmpl-…`.
    #[serde(borrow, default)]
    pub id: Option<Str<'a>>,
    /// Model that answers.
    #[serde(borrow, default)]
    pub model: Option<Str<'a>>,
    /// Choice deltas (empty on the usage chunk).
    #[serde(borrow, default)]
    pub choices: Option<Vec<ChunkChoice<'a>>>,
    /// Usage (final chunk when `include_usage`), `null` elsewhere.
    #[serde(default)]
    pub usage: Option<Usage>,
    /// In-stream error.
    #[serde(borrow, default)]
    pub error: Option<ErrorObject<'a>>,
}

/// One choice of a chunk.
#[derive(Debug, Default, Deserialize)]
pub struct ChunkChoice<'a> {
    /// Choice index.
    #[serde(default)]
    pub index: u32,
    /// The increment.
    #[serde(borrow, default)]
    pub delta: Option<Delta<'a>>,
    /// Set on the choice's last chunk.
    #[serde(borrow, default)]
    pub finish_reason: Option<Str<'a>>,
}

/// The increment of a chunk choice.
#[derive(Debug, Default, Deserialize)]
pub struct Delta<'a> {
    /// Text.
    #[serde(borrow, default)]
    pub content: Option<Str<'a>>,
    /// Refusal text.
    #[serde(borrow, default)]
    pub refusal: Option<Str<'a>>,
    /// Extension: thinking text.
    #[serde(borrow, default)]
    pub reasoning_content: Option<Str<'a>>,
    /// Extension: thinking text (OpenRouter-style).
    #[serde(borrow, default)]
    pub reasoning: Option<Str<'a>>,
    /// Tool-call fragments.
    #[serde(borrow, default)]
    pub tool_calls: Option<Vec<ToolCall<'a>>>,
}

/// Error envelope `{"error":{…}}`.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct ErrorBody<'a> {
    /// The error.
    #[serde(borrow)]
    pub error: ErrorObject<'a>,
}

/// `{"message","type","param","code"}`.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct ErrorObject<'a> {
    /// Human-readable message.
    #[serde(borrow, default)]
    pub message: Str<'a>,
    /// Error type (`invalid_request_error`, …).
    #[serde(borrow, rename = "type", default)]
    pub kind: Option<Str<'a>>,
    /// Offending parameter (a string or `null`; kept raw for lenience).
    #[serde(borrow, default)]
    pub param: Option<&'a RawValue>,
    /// Machine code; a string or (some backends) a number.
    #[serde(borrow, default)]
    pub code: Option<&'a RawValue>,
}
