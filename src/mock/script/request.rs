//! Request parsing: the fields the mock reads from an OpenAI or Anthropic body, and the 400s
//! the real APIs give for a malformed one (a missing field, a refused thinking form, a
//! tampered thinking block).

use std::fmt;

use serde_json::{Map, Value};

use super::ids::Ids;
use super::step::Api;

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

/// Why a request body was rejected (rendered as a 400 in the provider's error format).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RequestError {
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
pub(super) struct ToolDef {
    pub(super) name: String,
    /// Arguments built from the schema's `required` properties, in `required` order.
    pub(super) args: Vec<(String, Value)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ToolChoice {
    None,
    Auto,
    Named(String),
}

/// One request in provider-neutral terms.
#[derive(Debug, Clone)]
pub(super) struct Request {
    pub(super) model: String,
    pub(super) stream: bool,
    /// OpenAI `stream_options.include_usage`.
    pub(super) include_usage: bool,
    /// OpenAI `stream_options.include_obfuscation` (on unless turned off).
    pub(super) obfuscation: bool,
    pub(super) max_tokens: Option<u64>,
    pub(super) stops: Vec<String>,
    pub(super) tools: Vec<ToolDef>,
    pub(super) choice: ToolChoice,
    pub(super) allow_parallel: bool,
    /// `Some(text)` when the conversation ends with tool results.
    pub(super) tool_result: Option<String>,
    /// Assistant messages with tool calls since the turn began (the last user message that
    /// holds no tool results): the rounds of calls this turn has made.
    pub(super) rounds: usize,
    /// Text of the last user message that has any; directives and the echo come from here.
    pub(super) user_text: String,
}

pub(super) fn parse_request(api: Api, body: &[u8]) -> Result<Request, RequestError> {
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
                rounds: rounds(messages, |m| {
                    m.get("tool_calls")
                        .and_then(Value::as_array)
                        .is_some_and(|c| !c.is_empty())
                }),
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
                rounds: rounds(messages, |m| has_block(m, "tool_use")),
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
pub(super) fn thinking_signature(text: &str) -> String {
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

/// Whether a message's content array holds a block of this type.
fn has_block(message: &Value, kind: &str) -> bool {
    message
        .get("content")
        .and_then(Value::as_array)
        .is_some_and(|blocks| {
            blocks
                .iter()
                .any(|b| b.get("type").and_then(Value::as_str) == Some(kind))
        })
}

/// Assistant messages that `calls` tools, after the last user message holding no tool
/// results (OpenAI's results are `tool` messages, Anthropic's `tool_result` blocks).
fn rounds(messages: &[Value], calls: impl Fn(&Value) -> bool) -> usize {
    let start = messages
        .iter()
        .rposition(|m| role(m) == Some("user") && !has_block(m, "tool_result"))
        .map_or(0, |i| i + 1);
    messages
        .iter()
        .skip(start)
        .filter(|m| role(m) == Some("assistant") && calls(m))
        .count()
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

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;
    use crate::mock::script::answer::THINKING_CONTACT;
    use crate::mock::script::answer::THINKING_TEXT;
    use crate::mock::script::plan;
    use crate::mock::script::testing::*;
    use serde_json::json;

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
}
