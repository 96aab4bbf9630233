//! A Responses request → a Chat Completions request: sent as is to an openai-kind provider,
//! or on through the Chat → Messages translator to an anthropic-kind one (so every rule of
//! that mapping — thinking budgets, tool choice, images, structured output — holds here too).
//!
//! What cannot be carried is refused (400, naming the parameter) when it changes the answer
//! or needs server-side state; what changes nothing material is dropped and listed in
//! [`RequestMeta::dropped`].

use std::borrow::Cow;
use std::cell::RefCell;
use std::ops::Range;
use std::sync::Arc;

use serde_json::value::RawValue;

use crate::format::Format;
use crate::wire::anthropic::ContentBlock;
use crate::wire::openai::{
    ChatRequest, ContentPart, FilePart, FunctionCall, ImageUrl, JsonSchemaFormat, Message,
    NamedFunction, ResponseFormat, StreamOptions, ToolCall, ToolChoice, ToolChoiceObject,
};
use crate::wire::responses::{InputItem, Part, ResponsesRequest, TextConfig, Tool};
use crate::wire::{Read, Sink, Str, TextOr};

use super::super::conversations::{before_last, end_sink, resume_sink, Keeping, Store};
use super::super::out::{assemble, first_capacity, front_room, object, KeptOut, Out, Room, Shared};
use super::super::util::openai_tool_name;
use super::super::{MaxTokensField, Options, RequestMeta, TranslateError};
use super::direct::{self, Kind, Role};
use super::kept::{kept, Form, Kept};
use super::tools::{convert_tools, distinct_upstream_names, flat_name};
use super::{Compaction, Echo, ResponsesMeta, SealedThinking, COMPACTION_PROMPT};
use crate::seal::{Purpose, SealKey};
use crate::translate::chat_via_messages::request::KeptWriter;

/// The provider request for a Responses request body, for a provider that speaks `provider`
/// (Chat Completions or Messages), with `model` set to `upstream_model`.
pub fn responses_request(
    body: &[u8],
    upstream_model: &str,
    provider: Format,
    opts: &Options,
) -> Result<(Vec<u8>, RequestMeta), TranslateError> {
    responses_request_within(body, upstream_model, provider, opts, &Room::unlimited())
}

/// [`responses_request`] writing at most `room` bytes of buffers (else
/// [`TranslateError::over_budget`]).
pub fn responses_request_within(
    body: &[u8],
    upstream_model: &str,
    provider: Format,
    opts: &Options,
    room: &Room,
) -> Result<(Vec<u8>, RequestMeta), TranslateError> {
    // Nothing lent: the body is wanted in one vector of its own.
    crate::translate::without_lending(|| {
        translate(body, upstream_model, provider, opts, false, room)
    })
    .and_then(|(b, m)| Ok((b.into_vec(body)?, m)))
}

/// [`responses_request_within`] as shared bytes, none of them moved.
pub(crate) fn responses_request_shared(
    body: &[u8],
    upstream_model: &str,
    provider: Format,
    opts: &Options,
    room: &Room,
) -> Result<(Shared, RequestMeta), TranslateError> {
    translate(body, upstream_model, provider, opts, false, room)
}

/// The provider request that makes the summary for a `POST /v1/responses/compact` body (never
/// streamed; answered as a `response.compaction` object).
pub fn compact_request(
    body: &[u8],
    upstream_model: &str,
    provider: Format,
    opts: &Options,
) -> Result<(Vec<u8>, RequestMeta), TranslateError> {
    compact_request_within(body, upstream_model, provider, opts, &Room::unlimited())
}

/// [`compact_request`] writing at most `room` bytes of buffers (else
/// [`TranslateError::over_budget`]).
pub fn compact_request_within(
    body: &[u8],
    upstream_model: &str,
    provider: Format,
    opts: &Options,
    room: &Room,
) -> Result<(Vec<u8>, RequestMeta), TranslateError> {
    // Nothing lent: the body is wanted in one vector of its own.
    crate::translate::without_lending(|| {
        translate(body, upstream_model, provider, opts, true, room)
    })
    .and_then(|(b, m)| Ok((b.into_vec(body)?, m)))
}

fn translate(
    body: &[u8],
    upstream_model: &str,
    provider: Format,
    opts: &Options,
    compact_endpoint: bool,
    room: &Room,
) -> Result<(Shared, RequestMeta), TranslateError> {
    let parts = Parts {
        upstream_model,
        provider,
        opts,
        compact_endpoint,
        room,
    };
    // The items are translated as the body is read, one at a time; for an Anthropic-kind
    // provider straight on to the Messages translator. A conversation that translator refuses
    // goes again through a Chat body, for its error to name the Chat message as it always has.
    let direct = provider == Format::Anthropic;
    if let Some(done) = translate_once(body, &parts, direct)? {
        return Ok(done);
    }
    translate_once(body, &parts, false)?
        .ok_or_else(|| TranslateError::internal("the conversation could not be translated"))
}

/// One translation; `direct`: items handed straight on to the Messages translator (None when
/// it refused one: the caller goes again through a Chat body).
fn translate_once(
    body: &[u8],
    parts: &Parts<'_>,
    direct: bool,
) -> Result<Option<(Shared, RequestMeta)>, TranslateError> {
    let reading = || Reading::new(parts.room, body, parts.provider, parts.opts, direct);
    let mut conv = reading().keeping(body);
    // Each item from its JSON where it is a shape `direct` reads (written as Chat, or handed
    // on to the Messages translator), else typed.
    let spans = crate::translate::direct::on();
    let req = match spans.then(|| ResponsesRequest::parse_into::<&RawValue>(body, &mut conv)) {
        Some(Ok(req)) if !conv.unread => req,
        spans => {
            if spans.is_some() {
                // An item the typed reading refuses, or a body that does not read: the body is
                // read typed throughout, so that the error given is the typed reading's.
                drop(conv);
                conv = reading();
            }
            ResponsesRequest::parse_into::<InputItem<'_>>(body, &mut conv)?
        }
    };
    // The tools as the provider takes them, made once per worker (the fallback through a Chat
    // body, for an anthropic-kind provider, makes them every time).
    let form = match (parts.provider, direct) {
        (Format::Anthropic, true) => Some(Form::Messages),
        (Format::Anthropic, false) => None,
        (provider, _) => Some(Form::Chat(provider)),
    };
    let kept = req.tools.zip(form).and_then(|(raw, form)| kept(raw, form));
    translate_parsed(&req, conv, parts, kept.as_deref())
}

/// What one translation works with besides the parsed request.
struct Parts<'p> {
    upstream_model: &'p str,
    provider: Format,
    opts: &'p Options,
    compact_endpoint: bool,
    room: &'p Room,
}

fn translate_parsed<'b>(
    req: &'b ResponsesRequest<'b>,
    conv: Reading<'b, '_>,
    parts: &Parts<'_>,
    kept: Option<&'b Kept>,
) -> Result<Option<(Shared, RequestMeta)>, TranslateError> {
    let Parts {
        upstream_model,
        provider,
        opts,
        compact_endpoint,
        room,
    } = *parts;
    let tools: Vec<Tool<'_>> = match req.tools.filter(|_| kept.is_none()) {
        Some(raw) => crate::json::de::from_str(raw.get())
            .map_err(|e| TranslateError::invalid("tools", format!("invalid `tools`: {e}")))?,
        None => Vec::new(),
    };
    let text: TextConfig<'_> = match req.text {
        Some(raw) => crate::json::de::from_str(raw.get())
            .map_err(|e| TranslateError::invalid("text", format!("invalid `text`: {e}")))?,
        None => TextConfig::default(),
    };
    let mut meta = RequestMeta::default();
    let mut rm = ResponsesMeta {
        seal: opts.seal.clone(),
        provider: opts.provider.clone(),
        echo: Arc::new(echo(req)),
        ..ResponsesMeta::default()
    };
    rm.compaction = compaction_kind(&conv, compact_endpoint)?;
    if conv.unopened {
        // Reasoning sealed for another provider, by another key or by another server.
        meta.note(crate::translate::Code::SignatureDropped, "input.reasoning");
    }
    let (mut chat, mut messages) = to_chat(
        req,
        conv,
        &tools,
        kept,
        &text,
        upstream_model,
        provider,
        opts,
        &mut meta,
        &mut rm,
    )?;
    if rm.compaction != Compaction::No {
        // The summary is asked for without tools or an output format, after everything else.
        chat.tools = None;
        chat.tools_written = None;
        chat.tool_choice = None;
        chat.parallel_tool_calls = None;
        chat.web_search_options = None;
        chat.response_format = None;
        if compact_endpoint {
            chat.stream = Some(false);
            chat.stream_options = None;
        }
        messages.push(&text_message("user", Str::from(COMPACTION_PROMPT)))?;
    }
    messages.end_items()?;
    // Named as the client wrote it where the Chat name has a Responses one.
    let ours = |mut e: TranslateError| {
        if let Some(ours) = e.param.as_deref().and_then(responses_name) {
            e.param = Some(ours.to_owned());
        }
        e
    };
    let bytes = match messages.to {
        To::Messages { conv, .. } => {
            if conv.failed() {
                return Ok(None);
            }
            chat.messages = Some(Read);
            // Tools kept in Messages form, unless a compaction left the tools out.
            let written = kept
                .filter(|_| rm.compaction == Compaction::No)
                .map(Kept::written);
            crate::translate::chat_via_messages::request::translate(
                &chat,
                *conv,
                upstream_model,
                opts,
                &mut meta,
                written.as_ref(),
            )
            .map_err(ours)?
            .into_shared()
        }
        To::Chat { mut out, first } => {
            if kept.is_some() && provider == Format::Anthropic {
                // Tools kept in Messages form go only with items handed straight on to the
                // Messages translator; sent here they would be lost.
                return Err(TranslateError::internal(
                    "tools kept for the Messages translator reached a Chat body",
                ));
            }
            let head = object(&ChatRequest {
                model: chat.model.take(),
                ..ChatRequest::default()
            })?;
            assemble(&mut out, &head, "messages", &first, &[], &chat)?;
            drop(chat);
            match provider {
                Format::Anthropic => {
                    // On through the Chat → Messages translator, from the Chat body just
                    // written. The Messages form is no longer than the Chat one (its texts
                    // are strings where Chat's assistant texts are parts).
                    let capacity = first_capacity(out.len(), 1, 1);
                    crate::translate::chat_via_messages::request::to_anthropic(
                        out.bytes()?,
                        upstream_model,
                        opts,
                        room,
                        capacity,
                        &mut meta,
                        false,
                    )
                    .map_err(ours)?
                    .into_shared()
                }
                _ => out.into_shared(),
            }
        }
    };
    // The Chat leg named the fields in Chat terms; the client sent Responses ones.
    meta.ledger.rename_fields(responses_name);
    meta.client_model = req.model.as_deref().unwrap_or("").to_owned();
    meta.upstream_model = upstream_model.to_owned();
    meta.stream = req.stream.unwrap_or(false) && !compact_endpoint;
    meta.responses = Some(Box::new(rm));
    Ok(Some((bytes, meta)))
}

/// The parameter that needs server-side state ringway does not keep, if the request uses
/// one: only a provider with native Responses can serve it. (With stored responses on,
/// admission expands `previous_response_id` and `item_reference`s and takes `store: true`
/// out: none of them reaches a translator then.)
pub fn stateful_param(req: &ResponsesRequest<'_>) -> Option<&'static str> {
    let set = |v: Option<&RawValue>| v.is_some_and(|v| v.get() != "null" && v.get() != "false");
    if set(req.previous_response_id) {
        Some("previous_response_id")
    } else if set(req.conversation) {
        Some("conversation")
    } else if req.store == Some(true) {
        Some("store")
    } else if set(req.background) {
        Some("background")
    } else if set(req.prompt) {
        Some("prompt")
    } else {
        None
    }
}

/// The Responses name of a Chat parameter the Messages translator dropped or refused, where
/// the two differ.
fn responses_name(chat: &str) -> Option<&'static str> {
    Some(match chat {
        "reasoning_effort" => "reasoning.effort",
        "verbosity" => "text.verbosity",
        "response_format" => "text.format",
        "max_completion_tokens" | "max_tokens" => "max_output_tokens",
        "web_search_options" => "tools.web_search",
        "strict" => "tools.strict",
        _ => return None,
    })
}

/// Is this a compaction? A `compaction_trigger` item may only end `input`.
fn compaction_kind(
    conv: &Reading<'_, '_>,
    compact_endpoint: bool,
) -> Result<Compaction, TranslateError> {
    if compact_endpoint {
        return Ok(Compaction::Endpoint);
    }
    match conv.trigger {
        None => Ok(Compaction::No),
        Some(i) if i + 1 == conv.items => Ok(Compaction::Trigger),
        Some(i) => Err(TranslateError::invalid(
            format!("input[{i}]"),
            "a compaction_trigger item must be the last input item",
        )),
    }
}

/// The request values the response object repeats (see [`Echo`] for what an unset one says).
fn echo(req: &ResponsesRequest<'_>) -> Echo {
    let mut e = Echo::default();
    let string = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "null".into());
    // A raw value repeated only when it has the type the API gives it (anything else was
    // dropped or refused).
    let raw_string = |v: Option<&RawValue>| {
        v.filter(|v| crate::json::de::from_str::<Str<'_>>(v.get()).is_ok())
            .map(|v| v.get().to_owned())
    };
    let raw_count = |v: Option<&RawValue>| {
        v.and_then(|v| serde_json::from_str::<u64>(v.get()).ok())
            .map(|n| n.to_string())
    };
    if let Some(i) = &req.instructions {
        // As written: Codex's instructions run to many KB.
        e.instructions = i.to_json();
    }
    if let Some(n) = req.max_output_tokens {
        e.max_output_tokens = n.to_string();
    }
    if let Some(n) = raw_count(req.max_tool_calls) {
        e.max_tool_calls = n;
    }
    if let Some(n) = raw_count(req.top_logprobs) {
        e.top_logprobs = n;
    }
    if let Some(p) = req.parallel_tool_calls {
        e.parallel_tool_calls = p.to_string();
    }
    if let Some(r) = &req.reasoning {
        let effort = r.effort.as_deref();
        let summary = r.summary.as_deref().or(r.generate_summary.as_deref());
        e.reasoning =
            serde_json::json!({"effort": effort, "summary": summary, "context": null}).to_string();
    }
    let number = |v: Option<f64>, default: &str| {
        v.filter(|v| v.is_finite())
            .and_then(|v| serde_json::to_string(&v).ok())
            .unwrap_or_else(|| default.to_owned())
    };
    e.temperature = number(req.temperature, "1.0");
    e.top_p = number(req.top_p, "1.0");
    e.text = text_echo(req);
    if let Some(t) = req.tool_choice {
        e.tool_choice = t.get().to_owned();
    }
    if let Some(t) = req.tools {
        e.tools = tools_echo_kept(t);
    }
    if let Some(m) = req.metadata.filter(|m| m.get() != "null") {
        e.metadata = m.get().to_owned();
    }
    if let Some(id) = raw_string(req.previous_response_id) {
        e.previous_response_id = id;
    }
    if let Some(k) = raw_string(req.prompt_cache_key) {
        e.prompt_cache_key = k;
    }
    if let Some(r) = raw_string(req.prompt_cache_retention) {
        e.prompt_cache_retention = r;
    }
    if let Some(s) = &req.safety_identifier {
        e.safety_identifier = string(s.as_str());
    }
    if let Some(u) = &req.user {
        e.user = string(u.as_str());
    }
    if let Some(t) = &req.truncation {
        e.truncation = string(t.as_str());
    }
    e.service_tier = req.service_tier.as_deref().map(string);
    e
}

/// `text` as the response repeats it: the request's format and verbosity (the top-level
/// spelling too), the API's defaults for what it left out.
fn text_echo(req: &ResponsesRequest<'_>) -> String {
    #[derive(serde::Deserialize, Default)]
    struct Text<'a> {
        #[serde(borrow, default)]
        format: Option<&'a RawValue>,
        #[serde(borrow, default)]
        verbosity: Option<Str<'a>>,
    }
    let t: Text<'_> = req
        .text
        .and_then(|raw| crate::json::de::from_str(raw.get()).ok())
        .unwrap_or_default();
    if t.format.is_none() && t.verbosity.is_none() && req.verbosity.is_none() {
        return super::DEFAULT_TEXT.to_owned();
    }
    let mut out = String::with_capacity(64);
    out.push_str("{\"format\":");
    out.push_str(t.format.map_or("{\"type\":\"text\"}", RawValue::get));
    out.push_str(",\"verbosity\":");
    match t.verbosity.as_ref().or(req.verbosity.as_ref()) {
        Some(v) => {
            out.push_str(&serde_json::to_string(v.as_str()).unwrap_or_else(|_| "null".into()))
        }
        None => out.push_str("\"medium\""),
    }
    out.push('}');
    out
}

/// Tools echoes this worker made last, by the tools' bytes: an agent sends the same tools
/// every turn, tens of KB that reading twice (for the translation and for the echo) made a
/// tenth of a Responses translation's time. An echo is a function of those bytes alone.
const ECHOES_KEPT: usize = 4;
/// Tools and their echo are kept only when together no longer than this: what a thread
/// keeps stays under 1 MB (an echo can be 3.6 times its tools: `{"type":"function"}`).
const ECHO_KEPT_MAX_BYTES: usize = 256 * 1024;

thread_local! {
    static ECHOES: crate::recent::Recent<Arc<str>, ECHOES_KEPT> =
        const { crate::recent::Recent::new(ECHO_KEPT_MAX_BYTES) };
}

/// [`tools_echo`], kept for the next request with the same tools.
fn tools_echo_kept(raw: &RawValue) -> Arc<str> {
    ECHOES.with(|e| {
        e.get_or(
            raw.get().as_bytes(),
            |echo| echo.len(),
            || Arc::from(tools_echo(raw)),
        )
    })
}

/// `tools` as the response repeats them: the request's, each function tool given the keys
/// the API always returns (`description` and `parameters` null when unset; `strict` false
/// when unset, as no provider behind a translation is asked for strict adherence then).
/// Each tool is kept byte for byte and the missing keys appended.
fn tools_echo(raw: &RawValue) -> String {
    /// Which of the keys a function tool always has are present (null counts).
    #[derive(serde::Deserialize)]
    struct Keys<'a> {
        #[serde(borrow, rename = "type", default)]
        kind: Option<Str<'a>>,
        #[serde(default, deserialize_with = "present")]
        description: bool,
        #[serde(default, deserialize_with = "present")]
        parameters: bool,
        #[serde(default, deserialize_with = "present")]
        strict: bool,
    }
    fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        <serde::de::IgnoredAny as serde::Deserialize>::deserialize(d).map(|_| true)
    }
    let Ok(tools) = crate::json::de::from_str::<Vec<&RawValue>>(raw.get()) else {
        return raw.get().to_owned();
    };
    let mut out = String::with_capacity(raw.get().len() + 48 * tools.len());
    out.push('[');
    for (i, tool) in tools.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let text = tool.get();
        let keys = crate::json::de::from_str::<Keys<'_>>(text)
            .ok()
            .filter(|k| k.kind.as_deref() == Some("function"));
        let missing = keys.map(|k| {
            [
                (!k.description).then_some("\"description\":null"),
                (!k.parameters).then_some("\"parameters\":null"),
                (!k.strict).then_some("\"strict\":false"),
            ]
        });
        match (missing, text.trim_end().strip_suffix('}')) {
            (Some(missing), Some(head)) if missing.iter().any(Option::is_some) => {
                out.push_str(head.trim_end());
                for key in missing.iter().flatten() {
                    out.push(',');
                    out.push_str(key);
                }
                out.push('}');
            }
            _ => out.push_str(text),
        }
    }
    out.push(']');
    out
}

/// Open a reasoning item sealed for this provider. Items sealed for another provider, by
/// another key, or by another server (OpenAI's own) are dropped and listed: a provider only
/// ever gets back reasoning it made.
fn unseal(item: &InputItem<'_>, opts: &Options) -> Option<SealedThinking> {
    item.encrypted_content
        .as_deref()
        .filter(|s| SealKey::is_ours(s))
        .and_then(|s| opts.seal.as_ref()?.open(Purpose::Reasoning, s))
        .and_then(|plain| serde_json::from_slice::<SealedThinking>(&plain).ok())
        .filter(|b| b.p == opts.provider)
}

/// Everything of the Responses request in Chat Completions form.
#[allow(clippy::too_many_arguments)]
fn to_chat<'b, 'r>(
    req: &'b ResponsesRequest<'b>,
    conv: Reading<'b, 'r>,
    tools: &'b [Tool<'b>],
    kept: Option<&'b Kept>,
    text: &'b TextConfig<'b>,
    upstream_model: &'b str,
    provider: Format,
    opts: &Options,
    meta: &mut RequestMeta,
    rm: &mut ResponsesMeta,
) -> Result<(ChatRequest<'b>, Chat<'b, 'r>), TranslateError> {
    if let Some((key, _)) = req.unknown.first() {
        return Err(TranslateError::unsupported_param(
            key.as_str(),
            format!("Unrecognized request argument supplied: {key}"),
        ));
    }
    if req.model.is_none() {
        return Err(TranslateError::invalid(
            "model",
            "Missing required parameter: 'model'.",
        ));
    }
    if let Some(param) = stateful_param(req) {
        return Err(stateless(param));
    }
    let stream = req.stream.unwrap_or(false);
    let mut chat = ChatRequest {
        model: Some(Str::from(upstream_model)),
        stream: Some(stream),
        stream_options: (stream && provider != Format::Anthropic).then_some(StreamOptions {
            include_usage: Some(true),
        }),
        temperature: req.temperature,
        top_p: req.top_p,
        parallel_tool_calls: req.parallel_tool_calls,
        user: req.user.as_ref().map(Str::reborrow),
        safety_identifier: req.safety_identifier.as_ref().map(Str::reborrow),
        service_tier: req.service_tier.as_ref().map(Str::reborrow),
        metadata: req.metadata,
        prompt_cache_key: req.prompt_cache_key,
        prompt_cache_retention: req.prompt_cache_retention,
        ..ChatRequest::default()
    };
    if provider == Format::OpenAi && opts.openai_max_tokens_field == MaxTokensField::MaxTokens {
        chat.max_tokens = req.max_output_tokens;
    } else {
        chat.max_completion_tokens = req.max_output_tokens;
    }
    if let Some(r) = &req.reasoning {
        chat.reasoning_effort = r.effort.as_ref().map(Str::reborrow);
        let summary = r.summary.as_deref().or(r.generate_summary.as_deref());
        rm.summary = summary.is_some_and(|s| s != "none");
    }
    for inc in req.include.iter().flatten() {
        match inc.as_str() {
            "reasoning.encrypted_content" => rm.encrypted = true,
            _ => meta.drop_param("include"),
        }
    }
    let present: [(&'static str, bool); 6] = [
        ("context_management", req.context_management.is_some()),
        ("prompt_cache_options", req.prompt_cache_options.is_some()),
        ("top_logprobs", req.top_logprobs.is_some()),
        ("max_tool_calls", req.max_tool_calls.is_some()),
        ("client_metadata", req.client_metadata.is_some()),
        (
            "truncation",
            req.truncation.as_deref().is_some_and(|t| t != "disabled"),
        ),
    ];
    for (name, set) in present {
        if set {
            meta.drop_param(name);
        }
    }
    if let Some(f) = &text.format {
        chat.response_format = response_format(f)?;
    }
    if let Some(v) = text.verbosity.as_ref().or(req.verbosity.as_ref()) {
        if provider == Format::OpenAi {
            chat.verbosity = Some(verbosity_raw(v).ok_or_else(|| {
                TranslateError::invalid(
                    "text.verbosity",
                    format!(
                        "Invalid value: '{v}'. Supported values are: 'low', 'medium', and 'high'."
                    ),
                )
            })?);
        } else {
            meta.drop_param("text.verbosity");
        }
    }
    match kept {
        // As converted for an earlier request: Chat functions sent as written, Messages tools
        // handed to the Messages translator (see `translate_parsed`).
        Some(k) => {
            meta.ledger.extend(&k.ledger);
            rm.tools.extend(k.names.iter().cloned());
            if provider != Format::Anthropic && !k.tools.is_empty() {
                chat.tools_written = Some(k.tools.iter().map(|t| &**t).collect());
            }
        }
        None => {
            let (chat_tools, web_search) = convert_tools(tools, provider, meta, rm)?;
            distinct_upstream_names(&chat_tools)?;
            if !chat_tools.is_empty() {
                chat.tools = Some(chat_tools);
            }
            chat.web_search_options = web_search;
        }
    }
    if let Some(raw) = req.tool_choice {
        chat.tool_choice = tool_choice(raw, meta)?;
    }
    let messages = conv.finish(req, meta)?;
    Ok((chat, messages))
}

/// `text.verbosity` as a raw JSON string (it is one of a few words).
fn verbosity_raw(v: &Str<'_>) -> Option<&'static RawValue> {
    let word: &'static str = match v.as_str() {
        "low" => "\"low\"",
        "medium" => "\"medium\"",
        "high" => "\"high\"",
        _ => return None,
    };
    serde_json::from_str(word).ok()
}

/// 400: the parameter needs state this gateway does not keep.
fn stateless(param: &str) -> TranslateError {
    TranslateError::unsupported_param(
        param,
        format!(
            "`{param}` needs server-side state, which this gateway does not keep; send the whole conversation in `input` (with `store: false`), or route the model to a provider with native Responses support"
        ),
    )
}

fn response_format<'b>(
    f: &'b crate::wire::responses::TextFormat<'b>,
) -> Result<Option<ResponseFormat<'b>>, TranslateError> {
    Ok(match f.kind.as_str() {
        "text" => None,
        "json_object" => Some(ResponseFormat {
            kind: Str::from("json_object"),
            json_schema: None,
        }),
        "json_schema" => Some(ResponseFormat {
            kind: Str::from("json_schema"),
            json_schema: Some(JsonSchemaFormat {
                name: f.name.as_ref().map_or(Str::from("response"), Str::reborrow),
                description: f.description.as_ref().map(Str::reborrow),
                schema: f.schema,
                strict: f.strict,
            }),
        }),
        other => {
            return Err(TranslateError::unsupported_value(
                "text.format.type",
                format!("text format `{other}` is not supported"),
            ))
        }
    })
}

/// `tool_choice` in Chat form. Forcing a hosted tool, or a set of allowed tools, has no Chat
/// equivalent: the nearest mode is sent and the parameter listed.
fn tool_choice<'b>(
    raw: &'b RawValue,
    meta: &mut RequestMeta,
) -> Result<Option<ToolChoice<'b>>, TranslateError> {
    #[derive(serde::Deserialize)]
    struct Choice<'a> {
        #[serde(borrow, rename = "type")]
        kind: Str<'a>,
        #[serde(borrow, default)]
        name: Option<Str<'a>>,
        #[serde(borrow, default)]
        namespace: Option<Str<'a>>,
        #[serde(borrow, default)]
        mode: Option<Str<'a>>,
    }
    if let Ok(mode) = crate::json::de::from_str::<Str<'b>>(raw.get()) {
        return match mode.as_str() {
            "auto" | "none" | "required" => Ok(Some(ToolChoice::Mode(mode))),
            other => Err(TranslateError::invalid(
                "tool_choice",
                format!("Invalid value: '{other}'. Supported values are: 'none', 'auto', and 'required'."),
            )),
        };
    }
    let c: Choice<'b> = crate::json::de::from_str(raw.get()).map_err(|e| {
        TranslateError::invalid("tool_choice", format!("invalid `tool_choice`: {e}"))
    })?;
    let forced = |name: String| {
        Some(ToolChoice::Object(ToolChoiceObject {
            kind: Str::from("function"),
            function: Some(NamedFunction {
                name: Str::from(name),
            }),
            allowed_tools: None,
            custom: None,
        }))
    };
    Ok(match c.kind.as_str() {
        "function" | "custom" => {
            let name = c.name.as_deref().ok_or_else(|| {
                TranslateError::invalid("tool_choice.name", "a forced tool needs a name")
            })?;
            match c.namespace.as_deref() {
                Some(ns) => forced(flat_name(ns, name)),
                None => forced(openai_tool_name(name).into_owned()),
            }
        }
        "allowed_tools" => {
            meta.drop_param("tool_choice.allowed_tools");
            let mode = c.mode.as_deref().unwrap_or("auto");
            Some(ToolChoice::Mode(Str::from(if mode == "required" {
                "required"
            } else {
                "auto"
            })))
        }
        _ => {
            meta.drop_param("tool_choice");
            Some(ToolChoice::Mode(Str::from("auto")))
        }
    })
}

/// The assistant message still open: later items may add to it (text while it has no tool
/// calls, then tool calls).
#[derive(Default)]
struct Open<'b> {
    /// Its `content` array has been opened (written as Chat).
    texts: bool,
    /// Its refusal (a later joining item's replaces it), written when its texts end.
    refusal: Option<Str<'b>>,
    /// Its `tool_calls` array has been opened.
    calls: bool,
    /// Its index among the Chat messages, and its tool calls so far (handed on as Messages).
    at: usize,
    handed: usize,
}

/// Where the Chat conversation goes.
enum To<'r> {
    /// Written as Chat JSON: the `messages` array's elements, each followed by a comma, and
    /// the message that goes before them (`instructions`, known once the body is read).
    Chat { out: Out<'r>, first: Vec<u8> },
    /// Handed message by message (an open assistant message in pieces, as its items come) to
    /// the Chat → Messages translator, for an Anthropic-kind provider: no Chat body between.
    Messages {
        conv: Box<crate::translate::chat_via_messages::request::Reading<'r>>,
        /// Index of the next Chat message.
        next: usize,
    },
}

/// A tool call to write: typed, or the tokens of an item read direct (Chat only).
enum Call<'t> {
    Typed(ToolCall<'t>),
    Written {
        id: &'t [u8],
        name: &'t [u8],
        arguments: &'t [u8],
    },
}

/// An assistant item's texts to write: typed parts, or the text tokens of an item read direct
/// (Chat only; None: a part without text).
enum Texts<'t, 'p> {
    Typed(Vec<ContentPart<'p>>),
    Written {
        text: &'t str,
        spans: &'t [Option<Range<usize>>],
    },
}

impl Texts<'_, '_> {
    fn is_empty(&self) -> bool {
        match self {
            Texts::Typed(t) => t.is_empty(),
            Texts::Written { spans, .. } => spans.is_empty(),
        }
    }

    /// The parts, separated by commas.
    fn write(&self, out: &mut Out<'_>) -> Result<(), TranslateError> {
        match self {
            Texts::Typed(texts) => {
                for (k, t) in texts.iter().enumerate() {
                    if k > 0 {
                        out.byte(b',')?;
                    }
                    out.json(t)?;
                }
            }
            Texts::Written { text, spans } => {
                for (k, r) in spans.iter().enumerate() {
                    out.put(if k > 0 {
                        &b",{\"type\":\"text\",\"text\":"[..]
                    } else {
                        &b"{\"type\":\"text\",\"text\":"[..]
                    })?;
                    out.put(token(text, r))?;
                    out.byte(b'}')?;
                }
            }
        }
        Ok(())
    }
}

/// The string token at `r` of `text` (None, or a span not in it: an empty string).
fn token<'t>(text: &'t str, r: &Option<Range<usize>>) -> &'t [u8] {
    r.as_ref()
        .and_then(|r| text.as_bytes().get(r.clone()))
        .unwrap_or(b"\"\"")
}

/// What is being built from `input`: Chat messages, each complete one handed on at once (the
/// last assistant one stays open while items may add to it), the reasoning waiting for the
/// next assistant turn, and images from tool outputs waiting for the tool messages to end.
struct Chat<'b, 'r> {
    to: To<'r>,
    open: Option<Open<'b>>,
    thinking: Vec<ContentBlock<'b>>,
    /// Image parts from tool outputs (as Chat JSON), each followed by a comma; handed on as
    /// Messages, the parts themselves.
    images: Out<'r>,
    held_images: Vec<ContentPart<'static>>,
}

impl<'b, 'r> Chat<'b, 'r> {
    /// An empty conversation written as Chat, its buffer first sized to `capacity`.
    fn new(room: &'r Room, capacity: usize, body: &'r [u8]) -> Self {
        Chat {
            to: To::Chat {
                out: Out::with_front(room, capacity, front_room(body.len())).lending(body),
                first: Vec::new(),
            },
            open: None,
            thinking: Vec::new(),
            images: Out::with_capacity(room, 0),
            held_images: Vec::new(),
        }
    }

    /// An empty conversation handed on to the Messages translator.
    fn to_messages(room: &'r Room, capacity: usize, body: &'r [u8]) -> Self {
        Chat {
            to: To::Messages {
                conv: Box::new(crate::translate::chat_via_messages::request::Reading::new(
                    room, capacity, body,
                )),
                next: 0,
            },
            open: None,
            thinking: Vec::new(),
            images: Out::with_capacity(room, 0),
            held_images: Vec::new(),
        }
    }

    /// Empty again (a repeated `input` key: the last value counts).
    fn restart(&mut self) {
        match &mut self.to {
            To::Chat { out, first } => {
                out.clear();
                first.clear();
            }
            To::Messages { conv, next } => {
                crate::wire::Sink::<Message<'_>>::restart(&mut **conv);
                *next = 0;
            }
        }
        self.images.clear();
        self.held_images.clear();
        self.open = None;
        self.thinking.clear();
    }

    /// `m` as the first message (before those written already).
    fn push_first(&mut self, m: &Message<'_>) -> Result<(), TranslateError> {
        match &mut self.to {
            To::Chat { first, .. } => {
                *first = object(m)?;
                first.push(b',');
            }
            // Its index would be 0, every other one a place further: no error of the
            // conversation's is given from here (see `translate`).
            To::Messages { conv, .. } => conv.system_first(0, m),
        }
        Ok(())
    }

    /// A complete message.
    fn put(&mut self, m: &Message<'_>) -> Result<(), TranslateError> {
        match &mut self.to {
            To::Chat { out, .. } => {
                out.json(m)?;
                out.byte(b',')
            }
            To::Messages { conv, next } => {
                conv.feed(*next, 0, m);
                *next += 1;
                Ok(())
            }
        }
    }

    /// A piece of the open assistant message (its tool calls numbered from `first_call`).
    fn piece(&mut self, at: usize, first_call: usize, m: &Message<'_>) {
        if let To::Messages { conv, .. } = &mut self.to {
            conv.feed(at, first_call, m);
        }
    }

    fn chat_out(&mut self) -> Option<&mut Out<'r>> {
        match &mut self.to {
            To::Chat { out, .. } => Some(out),
            To::Messages { .. } => None,
        }
    }

    fn push(&mut self, m: &Message<'_>) -> Result<(), TranslateError> {
        self.close_open()?;
        if m.role.as_str() != "tool" {
            self.flush_images()?;
        }
        self.put(m)
    }

    /// Images a tool returned go in a user message after the tool messages (Chat tool
    /// messages carry text only).
    fn flush_images(&mut self) -> Result<(), TranslateError> {
        if self.images.len() == 0 && self.held_images.is_empty() {
            return Ok(());
        }
        let note = ContentPart {
            kind: Str::from("text"),
            text: Some(Str::from("(images returned by the tool calls above)")),
            ..ContentPart::default()
        };
        if let To::Chat { out, .. } = &mut self.to {
            out.put(br#"{"role":"user","content":["#)?;
            out.json(&note)?;
            out.byte(b',')?;
            // The last part's comma.
            self.images.pop();
            out.put(self.images.bytes()?)?;
            self.images.clear();
            return out.put(b"]},");
        }
        let mut content = vec![note];
        content.append(&mut self.held_images);
        self.put(&Message {
            role: Str::from("user"),
            content: Some(TextOr::Items(content)),
            ..Message::default()
        })
    }

    fn tool_image(&mut self, part: ContentPart<'_>) -> Result<(), TranslateError> {
        if let To::Messages { .. } = self.to {
            self.held_images.push(owned_part(part));
            return Ok(());
        }
        self.images.json(&part)?;
        self.images.byte(b',')
    }

    /// Ends the open assistant message.
    fn close_open(&mut self) -> Result<(), TranslateError> {
        let Some(o) = self.open.take() else {
            return Ok(());
        };
        if o.texts {
            if let Some(out) = self.chat_out() {
                out.byte(b']')?;
            }
        }
        if !o.calls {
            self.refusal(o.at, o.refusal.as_ref())?;
        }
        if let Some(out) = self.chat_out() {
            if o.calls {
                out.byte(b']')?;
            }
            out.put(b"},")?;
        }
        Ok(())
    }

    /// The open message's refusal, once its texts are all in.
    fn refusal(&mut self, at: usize, refusal: Option<&Str<'_>>) -> Result<(), TranslateError> {
        let Some(r) = refusal else { return Ok(()) };
        if let Some(out) = self.chat_out() {
            out.put(br#","refusal":"#)?;
            return out.json(r);
        }
        let piece = Message {
            role: Str::from("assistant"),
            refusal: Some(r.reborrow()),
            ..Message::default()
        };
        self.piece(at, 0, &piece);
        Ok(())
    }

    /// A new assistant message (with the waiting reasoning), left open.
    fn new_assistant(&mut self) -> Result<(), TranslateError> {
        self.close_open()?;
        self.flush_images()?;
        let thinking = std::mem::take(&mut self.thinking);
        let at = match &mut self.to {
            To::Chat { out, .. } => {
                out.put(br#"{"role":"assistant""#)?;
                if !thinking.is_empty() {
                    out.put(br#","thinking_blocks":"#)?;
                    out.json(&thinking)?;
                }
                0
            }
            To::Messages { conv, next } => {
                let at = *next;
                *next += 1;
                if !thinking.is_empty() {
                    conv.feed(
                        at,
                        0,
                        &Message {
                            role: Str::from("assistant"),
                            thinking_blocks: Some(thinking),
                            ..Message::default()
                        },
                    );
                }
                at
            }
        };
        self.open = Some(Open {
            at,
            ..Open::default()
        });
        Ok(())
    }

    /// A tool call joins the open assistant message (if no reasoning waits for a new turn),
    /// else a new one.
    fn tool_call(&mut self, call: Call<'_>) -> Result<(), TranslateError> {
        if self.open.is_none() || !self.thinking.is_empty() {
            self.new_assistant()?;
        }
        let Some(o) = self.open.as_mut() else {
            return Err(TranslateError::internal("no open assistant message"));
        };
        let (at, first_call) = (o.at, o.handed);
        o.handed += 1;
        if !o.calls {
            o.calls = true;
            let texts = std::mem::take(&mut o.texts);
            let refusal = o.refusal.take();
            if texts {
                if let Some(out) = self.chat_out() {
                    out.byte(b']')?;
                }
            }
            self.refusal(at, refusal.as_ref())?;
            if let Some(out) = self.chat_out() {
                out.put(br#","tool_calls":["#)?;
            }
        } else if let Some(out) = self.chat_out() {
            out.byte(b',')?;
        }
        if let Some(out) = self.chat_out() {
            return match call {
                Call::Typed(call) => out.json(&call),
                Call::Written {
                    id,
                    name,
                    arguments,
                } => {
                    out.put(b"{\"id\":")?;
                    out.put(id)?;
                    out.put(b",\"type\":\"function\",\"function\":{\"name\":")?;
                    out.put(name)?;
                    out.put(b",\"arguments\":")?;
                    out.put(arguments)?;
                    out.put(b"}}")
                }
            };
        }
        let Call::Typed(call) = call else {
            return Err(TranslateError::internal(
                "an item read direct reached Messages",
            ));
        };
        let piece = Message {
            role: Str::from("assistant"),
            tool_calls: Some(vec![call]),
            ..Message::default()
        };
        self.piece(at, first_call, &piece);
        Ok(())
    }

    /// An assistant item's texts and refusal: they join the open assistant message when it
    /// has no tool calls yet (and no reasoning waits), else start a new one (the Chat order is
    /// text, then calls).
    fn assistant_texts(
        &mut self,
        texts: Texts<'_, '_>,
        refusal: Option<Str<'b>>,
    ) -> Result<(), TranslateError> {
        let joins = self.thinking.is_empty() && self.open.as_ref().is_some_and(|o| !o.calls);
        if !joins {
            self.new_assistant()?;
        }
        let Some(o) = self.open.as_mut() else {
            return Err(TranslateError::internal("no open assistant message"));
        };
        let at = o.at;
        if refusal.is_some() {
            o.refusal = refusal;
        }
        if texts.is_empty() {
            return Ok(());
        }
        let opened = std::mem::replace(&mut o.texts, true);
        if let Some(out) = self.chat_out() {
            out.put(if opened {
                b","
            } else {
                br#","content":["#.as_slice()
            })?;
            return texts.write(out);
        }
        let Texts::Typed(texts) = texts else {
            return Err(TranslateError::internal(
                "an item read direct reached Messages",
            ));
        };
        let piece = Message {
            role: Str::from("assistant"),
            content: Some(TextOr::Items(texts)),
            ..Message::default()
        };
        self.piece(at, 0, &piece);
        Ok(())
    }

    /// The item `direct` read from `text`, written or handed on as the typed translation
    /// writes or hands it on.
    fn written(&mut self, item: &direct::Item, text: &str) -> Result<(), TranslateError> {
        crate::translate::direct::count();
        if self.chat_out().is_none() {
            return self.handed_on(item, text);
        }
        let at = |r: &Option<Range<usize>>| token(text, r);
        match (item.kind, item.role) {
            (Kind::Reasoning, _) => Ok(()),
            (Kind::Call, _) => self.tool_call(Call::Written {
                id: at(&item.call_id),
                name: at(&item.name),
                arguments: at(&item.arguments),
            }),
            (Kind::Output, _) => {
                self.close_open()?;
                let out = self.chat_only()?;
                out.put(b"{\"role\":\"tool\",\"content\":")?;
                out.put(at(&item.output))?;
                out.put(b",\"tool_call_id\":")?;
                out.put(at(&item.call_id))?;
                out.put(b"},")
            }
            (Kind::Message, Role::Assistant) => {
                let spans = item.texts();
                self.assistant_texts(Texts::Written { text, spans }, None)
            }
            (Kind::Message, role) => {
                self.close_open()?;
                self.flush_images()?;
                let out = self.chat_only()?;
                out.put(if role == Role::User {
                    b"{\"role\":\"user\",\"content\":"
                } else {
                    b"{\"role\":\"system\",\"content\":".as_slice()
                })?;
                if item.in_parts {
                    out.byte(b'[')?;
                    Texts::Written {
                        text,
                        spans: &item.parts,
                    }
                    .write(out)?;
                    out.byte(b']')?;
                } else {
                    out.put(at(&item.text))?;
                }
                out.put(b"},")
            }
        }
    }

    /// The item `direct` read from `text`, handed on to the Messages translator as the typed
    /// translation hands it on: the same Chat pieces, their strings made from the tokens as
    /// the typed reading makes them (`Str::of_kept_token`), so only the item's reading
    /// differs.
    fn handed_on(&mut self, item: &direct::Item, text: &str) -> Result<(), TranslateError> {
        let s = |r: &Option<Range<usize>>| -> Result<Str<'_>, TranslateError> {
            let Some(r) = r else {
                return Ok(Str::from(""));
            };
            text.get(r.clone())
                .and_then(Str::of_kept_token)
                .ok_or_else(|| TranslateError::internal("a token read direct is not a string"))
        };
        // A part without text, as the typed reading reads it: an empty one.
        let texts = || -> Result<Vec<ContentPart<'_>>, TranslateError> {
            item.texts().iter().map(|p| s(p).map(text_part)).collect()
        };
        match (item.kind, item.role) {
            (Kind::Reasoning, _) => Ok(()),
            (Kind::Call, _) => self.tool_call(Call::Typed(ToolCall {
                index: None,
                id: Some(s(&item.call_id)?),
                kind: Some(Str::from("function")),
                function: Some(FunctionCall {
                    name: Some(s(&item.name)?),
                    arguments: Some(s(&item.arguments)?),
                }),
            })),
            (Kind::Output, _) => self.push(&Message {
                role: Str::from("tool"),
                tool_call_id: Some(s(&item.call_id)?),
                content: Some(TextOr::Text(s(&item.output)?)),
                ..Message::default()
            }),
            (Kind::Message, Role::Assistant) => self.assistant_texts(Texts::Typed(texts()?), None),
            (Kind::Message, role) => {
                let content = if item.in_parts {
                    TextOr::Items(texts()?)
                } else {
                    TextOr::Text(s(&item.text)?)
                };
                self.push(&Message {
                    role: Str::from(if role == Role::User { "user" } else { "system" }),
                    content: Some(content),
                    ..Message::default()
                })
            }
        }
    }

    /// The Chat buffer: items are read direct only when the conversation is written as Chat.
    fn chat_only(&mut self) -> Result<&mut Out<'r>, TranslateError> {
        self.chat_out()
            .ok_or_else(|| TranslateError::internal("an item read direct reached Messages"))
    }

    /// Every item is in: what is still open is closed and waiting images go out.
    fn end_items(&mut self) -> Result<(), TranslateError> {
        self.close_open()?;
        self.flush_images()
    }
}

/// A content part that owns its strings (read back from bytes that do not outlive it).
fn owned_part(p: ContentPart<'_>) -> ContentPart<'static> {
    let own = |s: Option<Str<'_>>| s.map(|s| Str::from(s.into_owned()));
    ContentPart {
        kind: Str::from(p.kind.into_owned()),
        text: own(p.text),
        image_url: p.image_url.map(|u| ImageUrl {
            url: Str::from(u.url.into_owned()),
            detail: own(u.detail),
        }),
        file: p.file.map(|f| FilePart {
            file_data: own(f.file_data),
            file_id: own(f.file_id),
            filename: own(f.filename),
        }),
        input_audio: None,
        refusal: own(p.refusal),
        cache_control: None,
    }
}

/// The items as the body is read: each translated into the Chat conversation at once; where
/// a `compaction_trigger` is, and whether reasoning could not be opened, noted. The first item
/// that cannot be translated stops the writing (its error is given where the typed
/// translation gave it); the rest is still read.
struct Reading<'b, 'r> {
    c: Chat<'b, 'r>,
    provider: Format,
    opts: &'r Options,
    error: Option<TranslateError>,
    /// Items in `input`.
    items: usize,
    /// Index of the first `compaction_trigger`.
    trigger: Option<usize>,
    /// A reasoning item that could not be opened here (dropped).
    unopened: bool,
    /// A web search call was dropped.
    web_search: bool,
    /// An item read as JSON did not read typed: the body is to be read typed.
    unread: bool,
    /// The item `direct` read last (its buffer kept between items).
    direct: direct::Item,
    /// Where the conversation is, to go on from a kept one and keep it.
    keeping: Option<Keeping<'r, KeptItems>>,
}

/// A [`Reading`] kept after a conversation's items (see `conversations`), only where it
/// stood clean: no assistant message open, no thinking or tool images waiting.
struct KeptItems {
    to: KeptTo,
    items: usize,
    trigger: Option<usize>,
    unopened: bool,
    web_search: bool,
}

/// Where a kept conversation's items went.
enum KeptTo {
    /// Chat JSON written (for a Chat-kind provider), and the message that goes first.
    Chat(KeptOut, Vec<u8>),
    /// Handed on to the Chat → Messages translator (for an Anthropic-kind provider), and the
    /// index of the next Chat message.
    Messages(Box<KeptWriter>, usize),
}

impl KeptTo {
    /// The form it is kept in (see `Keeping::in_form`).
    fn form(to: &To<'_>) -> u8 {
        match to {
            To::Chat { .. } => 0,
            To::Messages { .. } => 1,
        }
    }

    fn weight(k: &KeptItems) -> usize {
        match &k.to {
            KeptTo::Chat(out, first) => out.weight() + first.len(),
            KeptTo::Messages(w, _) => w.weight(),
        }
    }
}

thread_local! {
    /// Responses conversations this thread translated last (see `conversations`).
    static CONVERSATIONS: Store<KeptItems> = const { RefCell::new(Vec::new()) };
}

impl<'b, 'r> Reading<'b, 'r> {
    /// Long texts of `body` are lent from it, not copied.
    fn new(
        room: &'r Room,
        body: &'r [u8],
        provider: Format,
        opts: &'r Options,
        direct: bool,
    ) -> Self {
        let body_len = body.len();
        let c = if direct {
            // The Messages form is about as long as the Responses one.
            Chat::to_messages(room, first_capacity(body_len, 5, 4), body)
        } else {
            // Sized once for the usual case (the Chat form of an item at most half again as
            // long: an assistant text becomes a content part; capacity never written to costs
            // no resident memory).
            Chat::new(room, first_capacity(body_len, 3, 2), body)
        };
        Reading {
            c,
            provider,
            opts,
            error: None,
            items: 0,
            trigger: None,
            unopened: false,
            web_search: false,
            unread: false,
            direct: direct::Item::default(),
            keeping: None,
        }
    }

    /// Goes on from the state kept after an earlier request's items when `body`'s open with
    /// the same ones, and keeps its own (see `conversations`): only where the items go
    /// straight on (a Chat-kind provider's Chat, or an Anthropic-kind provider's Messages), not
    /// on the way through a Chat body.
    fn keeping(mut self, body: &'r [u8]) -> Self {
        let lend_from = match &self.c.to {
            To::Chat { out, .. } if self.provider != Format::Anthropic => out.lends_from(),
            To::Messages { conv, .. } => conv.lends_from(),
            To::Chat { .. } => return self,
        };
        self.keeping =
            Keeping::new(body, self.opts, lend_from).map(|k| k.in_form(KeptTo::form(&self.c.to)));
        self
    }

    /// Whether it stands clean (see [`KeptItems`]) with no error: what is kept of it is all
    /// that a later item depends on.
    fn clean(&self) -> bool {
        let c = &self.c;
        self.error.is_none()
            && !self.unread
            && c.open.is_none()
            && c.thinking.is_empty()
            && c.images.len() == 0
            && c.held_images.is_empty()
    }

    /// The conversation with `instructions` first; or why it could not be translated.
    fn finish(
        mut self,
        req: &ResponsesRequest<'_>,
        meta: &mut RequestMeta,
    ) -> Result<Chat<'b, 'r>, TranslateError> {
        if req.input.is_none() {
            return Err(TranslateError::invalid(
                "input",
                "Missing required parameter: 'input'.",
            ));
        }
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.web_search {
            meta.drop_param("input.web_search_call");
        }
        if let Some(i) = req.instructions.as_ref().filter(|i| !i.is_empty()) {
            self.c.push_first(&text_message("system", i.reborrow()))?;
        }
        self.c.end_items()?;
        Ok(self.c)
    }

    fn item(&mut self, i: usize, item: &InputItem<'b>) -> Result<(), TranslateError> {
        let c = &mut self.c;
        let kind = item
            .kind
            .as_deref()
            .unwrap_or(if item.role.is_some() { "message" } else { "" });
        match kind {
            "message" => message(c, item, i),
            "function_call" | "custom_tool_call" => {
                let call = tool_call(item, i, kind == "custom_tool_call")?;
                c.tool_call(Call::Typed(call))
            }
            "function_call_output" | "custom_tool_call_output" => {
                let call_id = item.call_id.as_ref().ok_or_else(|| {
                    TranslateError::invalid(
                        format!("input[{i}].call_id"),
                        "a tool output needs its call_id",
                    )
                })?;
                let content = tool_output(c, item, i)?;
                c.push(&Message {
                    role: Str::from("tool"),
                    tool_call_id: Some(call_id.reborrow()),
                    content: Some(content),
                    ..Message::default()
                })
            }
            // Opened when the item was read (see the sink).
            "reasoning" => Ok(()),
            "compaction" | "compaction_summary" => {
                // This gateway's own were opened where the request was admitted, before PII
                // substitution (`open_sealed_items`); any left is not ours to open. Without
                // its summary the conversation would go on as if it had not happened:
                // refused rather than dropped.
                Err(TranslateError::invalid(
                    format!("input[{i}].encrypted_content"),
                    super::open::UNOPENABLE_COMPACTION,
                ))
            }
            "compaction_trigger" => Ok(()),
            "item_reference" => Err(TranslateError::unsupported_value(
                format!("input[{i}]"),
                "an item_reference needs stored responses, which are off on this gateway; send the item itself (with `store: false`)",
            )),
            "web_search_call" => {
                self.web_search = true;
                Ok(())
            }
            other => Err(TranslateError::unsupported_value(
                format!("input[{i}].type"),
                format!("input item type `{other}` is not supported by this gateway"),
            )),
        }
    }
}

impl<'b> Sink<'b, InputItem<'b>> for Reading<'b, '_> {
    fn element(&mut self, i: usize, item: InputItem<'b>) {
        self.items = i + 1;
        match item.kind.as_deref() {
            Some("compaction_trigger") if self.trigger.is_none() => self.trigger = Some(i),
            Some("reasoning") => match unseal(&item, self.opts) {
                // Sealed for this provider: its thinking block waits for the next assistant
                // turn (an OpenAI-kind provider takes none back).
                Some(block) if self.error.is_none() && self.provider == Format::Anthropic => {
                    self.c.thinking.push(thinking_block(block));
                }
                Some(_) => {}
                None => self.unopened = true,
            },
            _ => {}
        }
        if self.error.is_none() {
            self.error = self.item(i, &item).err();
        }
    }

    fn text(&mut self, text: Str<'b>) {
        if self.error.is_none() {
            self.error = self.c.push(&text_message("user", text)).err();
        }
    }

    fn restart(&mut self) {
        self.c.restart();
        self.error = None;
        self.items = 0;
        self.trigger = None;
        self.unopened = false;
        self.web_search = false;
        if let Some(k) = &mut self.keeping {
            k.restart();
        }
    }
}

impl<'b> Sink<'b, &'b RawValue> for Reading<'b, '_> {
    fn element(&mut self, i: usize, raw: &'b RawValue) {
        if self.unread {
            return;
        }
        let text = raw.get();
        before_last(
            self,
            |r| &mut r.keeping,
            i,
            text,
            |r, base, at| r.kept(base, at),
        );
        if direct::read(text, &mut self.direct).is_some() {
            self.items = i + 1;
            if self.direct.kind == Kind::Reasoning {
                // Nothing sealed to open (see `unseal`).
                self.unopened = true;
            }
            if self.error.is_none() {
                self.error = self.c.written(&self.direct, text).err();
            }
            return;
        }
        match crate::json::de::from_str::<InputItem<'b>>(text) {
            Ok(item) => Sink::<InputItem<'b>>::element(self, i, item),
            Err(_) => self.unread = true,
        }
    }

    fn text(&mut self, text: Str<'b>) {
        Sink::<InputItem<'b>>::text(self, text);
    }

    fn restart(&mut self) {
        // An item that did not read typed does not read in any later reading of the body
        // either (a restart reads the same text again): the body still goes typed.
        let unread = self.unread;
        Sink::<InputItem<'b>>::restart(self);
        self.unread = unread;
    }

    fn keeps(&self) -> bool {
        self.keeping.is_some()
    }

    fn resume(&mut self, first: &'b str) -> (usize, usize) {
        resume_sink(
            self,
            |r| &mut r.keeping,
            &CONVERSATIONS,
            first,
            Reading::resume_items,
            Sink::<&'b RawValue>::restart,
        )
    }

    fn end(&mut self, count: usize) {
        end_sink(
            self,
            |r| &mut r.keeping,
            &CONVERSATIONS,
            count,
            KeptTo::weight,
            Reading::kept,
        );
    }
}

impl Reading<'_, '_> {
    /// What is kept of it after the items from `base` to `end` of the body: only where it
    /// stands clean.
    fn kept(&self, base: usize, end: usize) -> Option<KeptItems> {
        if !self.clean() {
            return None;
        }
        let to = match &self.c.to {
            To::Chat { out, first } => KeptTo::Chat(out.kept(base, end)?, first.clone()),
            To::Messages { conv, next } => KeptTo::Messages(Box::new(conv.kept(base, end)?), *next),
        };
        Some(KeptItems {
            to,
            items: self.items,
            trigger: self.trigger,
            unopened: self.unopened,
            web_search: self.web_search,
        })
    }

    fn resume_items(&mut self, k: &KeptItems, base: usize) -> Result<(), TranslateError> {
        match (&mut self.c.to, &k.to) {
            (To::Chat { out, first }, KeptTo::Chat(kept, kept_first)) => {
                out.resume(kept, base)?;
                first.clone_from(kept_first);
            }
            (To::Messages { conv, next }, KeptTo::Messages(kept, kept_next)) => {
                conv.resume_kept(kept, base)?;
                *next = *kept_next;
            }
            _ => {
                return Err(TranslateError::internal(
                    "a kept conversation of another form",
                ))
            }
        }
        self.items = k.items;
        self.trigger = k.trigger;
        self.unopened = k.unopened;
        self.web_search = k.web_search;
        Ok(())
    }
}

fn thinking_block(b: SealedThinking) -> ContentBlock<'static> {
    if b.k == "redacted_thinking" {
        ContentBlock {
            kind: Str::from("redacted_thinking"),
            data: Some(Str::from(b.d.unwrap_or_default())),
            ..ContentBlock::default()
        }
    } else {
        ContentBlock {
            kind: Str::from("thinking"),
            thinking: Some(Str::from(b.t.unwrap_or_default())),
            signature: Some(Str::from(b.s.unwrap_or_default())),
            ..ContentBlock::default()
        }
    }
}

fn text_message<'b>(role: &'static str, text: Str<'b>) -> Message<'b> {
    Message {
        role: Str::from(role),
        content: Some(TextOr::Text(text)),
        ..Message::default()
    }
}

fn message<'b>(c: &mut Chat<'b, '_>, item: &InputItem<'b>, i: usize) -> Result<(), TranslateError> {
    let role = item.role.as_deref().unwrap_or("");
    let content = item.content.as_ref();
    match role {
        "system" | "developer" | "user" => {
            let role = if role == "user" { "user" } else { "system" };
            let content = match content {
                None => TextOr::Text(Str::from("")),
                Some(TextOr::Text(s)) => TextOr::Text(s.reborrow()),
                Some(TextOr::Items(parts)) => {
                    let mut out = Vec::with_capacity(parts.len());
                    for (j, p) in parts.iter().enumerate() {
                        out.push(input_part(p, i, j)?);
                    }
                    TextOr::Items(out)
                }
            };
            c.push(&Message {
                role: Str::from(role),
                content: Some(content),
                ..Message::default()
            })
        }
        "assistant" => {
            let mut texts: Vec<ContentPart<'_>> = Vec::new();
            let mut refusal: Option<Str<'b>> = None;
            match content {
                None => {}
                Some(TextOr::Text(s)) => texts.push(text_part(s.reborrow())),
                Some(TextOr::Items(parts)) => {
                    for (j, p) in parts.iter().enumerate() {
                        match p.kind.as_str() {
                            "output_text" | "input_text" | "text" => {
                                texts.push(text_part(p.text.as_ref().map_or(Str::from(""), Str::reborrow)))
                            }
                            "refusal" => refusal = p.refusal.clone(),
                            other => {
                                return Err(TranslateError::unsupported_value(
                                    format!("input[{i}].content[{j}].type"),
                                    format!("assistant content part `{other}` is not supported"),
                                ))
                            }
                        }
                    }
                }
            }
            c.assistant_texts(Texts::Typed(texts), refusal)
        }
        other => {
            Err(TranslateError::invalid(
                format!("input[{i}].role"),
                format!("Invalid value: '{other}'. Supported values are: 'assistant', 'system', 'developer', and 'user'."),
            ))
        }
    }
}

fn text_part(text: Str<'_>) -> ContentPart<'_> {
    ContentPart {
        kind: Str::from("text"),
        text: Some(text),
        ..ContentPart::default()
    }
}

/// A user, system or tool-output content part in Chat form.
fn input_part<'b>(p: &'b Part<'_>, i: usize, j: usize) -> Result<ContentPart<'b>, TranslateError> {
    let param = || format!("input[{i}].content[{j}]");
    match p.kind.as_str() {
        "input_text" | "output_text" | "text" => Ok(text_part(
            p.text.as_ref().map_or(Str::from(""), Str::reborrow),
        )),
        "input_image" => {
            let Some(url) = &p.image_url else {
                return Err(TranslateError::unsupported_value(
                    format!("{}.file_id", param()),
                    "images by `file_id` need the Files API, which this gateway does not keep; send `image_url` (a URL or a data URL)",
                ));
            };
            Ok(ContentPart {
                kind: Str::from("image_url"),
                image_url: Some(ImageUrl {
                    url: url.reborrow(),
                    detail: p.detail.as_ref().map(Str::reborrow),
                }),
                ..ContentPart::default()
            })
        }
        "input_file" => {
            if p.file_url.is_some() && p.file_data.is_none() && p.file_id.is_none() {
                return Err(TranslateError::unsupported_value(
                    format!("{}.file_url", param()),
                    "files by URL are not supported; send `file_data` (a data URL)",
                ));
            }
            Ok(ContentPart {
                kind: Str::from("file"),
                file: Some(FilePart {
                    file_data: p.file_data.as_ref().map(Str::reborrow),
                    file_id: p.file_id.as_ref().map(Str::reborrow),
                    filename: p.filename.as_ref().map(Str::reborrow),
                }),
                ..ContentPart::default()
            })
        }
        other => Err(TranslateError::unsupported_value(
            format!("{}.type", param()),
            format!("content part `{other}` is not supported"),
        )),
    }
}

fn tool_call<'b>(
    item: &'b InputItem<'_>,
    i: usize,
    custom: bool,
) -> Result<ToolCall<'b>, TranslateError> {
    let name = item.name.as_deref().ok_or_else(|| {
        TranslateError::invalid(format!("input[{i}].name"), "a tool call needs a name")
    })?;
    let id = item.call_id.as_ref().ok_or_else(|| {
        TranslateError::invalid(format!("input[{i}].call_id"), "a tool call needs a call_id")
    })?;
    let upstream: Str<'b> = match item.namespace.as_deref() {
        Some(ns) => Str::from(flat_name(ns, name)),
        None => match openai_tool_name(name) {
            Cow::Borrowed(_) => item.name.as_ref().map_or(Str::from(""), Str::reborrow),
            Cow::Owned(s) => Str::from(s),
        },
    };
    let arguments: Str<'b> = if custom {
        let input = item.input.as_deref().unwrap_or("");
        Str::from(serde_json::json!({ "input": input }).to_string())
    } else {
        item.arguments.as_ref().map_or(Str::from(""), Str::reborrow)
    };
    Ok(ToolCall {
        index: None,
        id: Some(id.reborrow()),
        kind: Some(Str::from("function")),
        function: Some(FunctionCall {
            name: Some(upstream),
            arguments: Some(arguments),
        }),
    })
}

/// A tool output's Chat content: its text; images wait for a user message after the tool
/// messages.
fn tool_output<'b>(
    c: &mut Chat<'_, '_>,
    item: &'b InputItem<'_>,
    i: usize,
) -> Result<TextOr<'b, ContentPart<'b>>, TranslateError> {
    match &item.output {
        None => Ok(TextOr::Text(Str::from(""))),
        Some(TextOr::Text(s)) => Ok(TextOr::Text(s.reborrow())),
        Some(TextOr::Items(parts)) => {
            let mut texts = Vec::new();
            for (j, p) in parts.iter().enumerate() {
                let part = input_part(p, i, j)?;
                if part.kind.as_str() == "text" {
                    texts.push(part);
                } else {
                    c.tool_image(part)?;
                }
            }
            Ok(TextOr::Items(texts))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::{kept_tools_used, without_kept};
    use serde_json::{json, Value};

    fn opts(provider: &str) -> Options {
        Options {
            seal: SealKey::from_bytes(&[9u8; 32])
                .map(|k| k.for_holder(crate::seal::Holder::Key([1; 32]))),
            provider: provider.to_owned(),
            ..Options::default()
        }
    }

    fn run(body: Value, provider: Format) -> Result<(Value, RequestMeta), TranslateError> {
        let (bytes, meta) =
            responses_request(body.to_string().as_bytes(), "up", provider, &opts("p1"))?;
        Ok((serde_json::from_slice(&bytes).unwrap(), meta))
    }

    /// Tools kept from an earlier request (made on the first, found on the second) against
    /// tools converted afresh, for both provider kinds and the compact endpoint: the same
    /// body, meta or error, for lists that are refused, lists of hosted tools alone, and
    /// tools whose presence other members depend on.
    #[test]
    fn kept_tools_translate_as_tools_converted_afresh() {
        let ns_fn = |ns: &str| json!({"type": "namespace", "name": ns, "tools": [{"type": "function", "name": "c"}]});
        let bodies = [
            json!({"model": "m", "input": "hi", "tools": [
                {"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": true},
                ns_fn("repo"),
                {"type": "custom", "name": "apply_patch", "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}},
                {"type": "tool_search"}, {"type": "web_search", "search_context_size": "high"}],
                "tool_choice": {"type": "function", "name": "f"}}),
            json!({"model": "m", "input": "hi", "text": {"format": {"type": "json_object"}}, "tools": [{"type": "web_search"}]}),
            json!({"model": "m", "input": "hi", "tool_choice": "required", "tools": [{"type": "tool_search"}]}),
            json!({"model": "m", "input": "hi", "tools": [{"type": "namespace", "name": "n", "tools": [{"type": "web_search"}]}]}),
            json!({"model": "m", "input": "hi", "tools": [ns_fn("a.b"), ns_fn("a_b")]}),
            json!({"model": "m", "input": "hi", "tools": [{"type": "web_search", "search_context_size": "x"}]}),
            json!({"model": "m", "input": [
                {"role": "user", "content": "go"},
                {"type": "function_call", "call_id": "c1", "name": "read", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "ok"}],
                "tools": [{"type": "mcp", "server_label": "x"}]}),
            json!({"model": "m", "input": [{"role": "user", "content": "go"}, {"type": "compaction_trigger"}],
                "tools": [{"type": "function", "name": "f", "strict": false}, {"type": "web_search"}]}),
            json!({"model": "m", "input": "hi", "reasoning": {"effort": "high"}, "tool_choice": "required",
                "tools": [{"type": "function", "name": "f"}]}),
        ];
        let used = kept_tools_used();
        for body in &bodies {
            let body = body.to_string();
            for provider in [Format::OpenAi, Format::Anthropic] {
                let runs: [&dyn Fn() -> _; 2] = [
                    &|| responses_request(body.as_bytes(), "up", provider, &opts("p1")),
                    &|| compact_request(body.as_bytes(), "up", provider, &opts("p1")),
                ];
                for run in runs {
                    let afresh = without_kept(run);
                    assert_eq!(run(), afresh, "{body} {provider:?}: made");
                    assert_eq!(run(), afresh, "{body} {provider:?}: found");
                }
            }
        }
        // The lists it could keep were found kept: both forms of the first body and of the
        // ones refused only later, and the compact endpoint's.
        assert!(
            kept_tools_used() - used >= 12,
            "{}",
            kept_tools_used() - used
        );
    }

    #[test]
    fn a_kept_tools_echo_is_the_echo_of_the_same_bytes() {
        let tools: Vec<String> = (0..7)
            .map(|i| {
                format!(
                    r#"[{{"type":"function","name":"t{i}","parameters":{{"type":"object"}}}},{{"type":"custom","name":"c"}}]"#
                )
            })
            .collect();
        // More tool sets than are kept, each asked for twice, in an order that evicts.
        for round in 0..3 {
            for (i, t) in tools.iter().enumerate().rev().skip(round) {
                let raw: &RawValue = serde_json::from_str(t).unwrap();
                let fresh = tools_echo(raw);
                assert_eq!(&*tools_echo_kept(raw), fresh, "{i}");
                assert_eq!(&*tools_echo_kept(raw), fresh, "{i}");
                assert!(fresh.contains(&format!("\"t{i}\"")));
            }
        }
    }

    #[test]
    fn the_response_echo_fills_in_what_the_api_always_returns() {
        let body = json!({"model": "m", "input": "hi", "verbosity": "low",
            "top_logprobs": 2, "max_tool_calls": "many", "service_tier": "flex",
            "prompt_cache_key": "k", "user": "u", "truncation": "auto",
            "tools": [
                {"type": "function", "name": "a"},
                {"type": "function", "name": "b", "description": "d", "parameters": {}, "strict": null},
                {"type": "custom", "name": "c"}]});
        let (_, meta) = run(body, Format::OpenAi).unwrap();
        let e = &meta.responses.as_deref().unwrap().echo;
        let v = |s: &str| serde_json::from_str::<Value>(s).unwrap();
        assert_eq!(
            v(&e.tools),
            json!([
                {"type": "function", "name": "a", "description": null, "parameters": null, "strict": false},
                {"type": "function", "name": "b", "description": "d", "parameters": {}, "strict": null},
                {"type": "custom", "name": "c"}])
        );
        assert_eq!(
            v(&e.text),
            json!({"format": {"type": "text"}, "verbosity": "low"})
        );
        assert_eq!(v(&e.top_logprobs), json!(2));
        // Not a count: the API's default (the value was dropped, not carried).
        assert_eq!(v(&e.max_tool_calls), json!(null));
        assert_eq!(e.service_tier.as_deref(), Some("\"flex\""));
        assert_eq!(v(&e.prompt_cache_key), json!("k"));
        assert_eq!(v(&e.user), json!("u"));
        assert_eq!(v(&e.truncation), json!("auto"));
        assert_eq!(
            v(&e.reasoning),
            json!({"effort": null, "summary": null, "context": null})
        );
        // Nothing set: the API's defaults.
        let (_, meta) = run(json!({"model": "m", "input": "hi"}), Format::Anthropic).unwrap();
        let e = &meta.responses.as_deref().unwrap().echo;
        assert_eq!(**e, Echo::default());
    }

    #[test]
    fn codex_requests_translate_to_both_kinds() {
        for name in ["turn1", "turn2"] {
            let path = format!(
                "{}/tests/fixtures/codex/{name}.request.json",
                env!("CARGO_MANIFEST_DIR")
            );
            let body: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            for kind in [Format::OpenAi, Format::Anthropic] {
                let (out, meta) =
                    run(body.clone(), kind).unwrap_or_else(|e| panic!("{name} {kind:?}: {e}"));
                let rm = meta.responses.as_deref().unwrap();
                assert!(rm.encrypted, "{name}: include reasoning.encrypted_content");
                assert!(
                    meta.ledger.dropped().contains(&"client_metadata"),
                    "{:?}",
                    meta.ledger.dropped()
                );
                // apply_patch (a custom tool) is a function taking {input} and maps back.
                assert_eq!(rm.client_tool("apply_patch"), (None, "apply_patch", true));
                let tools = out["tools"].as_array().unwrap();
                let names: Vec<&str> = tools
                    .iter()
                    .map(|t| {
                        t["name"]
                            .as_str()
                            .or(t["function"]["name"].as_str())
                            .unwrap_or("")
                    })
                    .collect();
                assert!(
                    names.contains(&"exec_command") && names.contains(&"apply_patch"),
                    "{names:?}"
                );
                if kind == Format::OpenAi {
                    assert!(
                        meta.ledger.dropped().contains(&"tools.web_search"),
                        "{:?}",
                        meta.ledger.dropped()
                    );
                    assert_eq!(out["stream_options"], json!({"include_usage": true}));
                } else {
                    assert!(names.contains(&"web_search"), "{names:?}");
                }
                if name == "turn2" {
                    // The reasoning item was sealed by OpenAI, not by us: dropped and listed.
                    assert!(
                        meta.ledger
                            .has(crate::translate::Code::SignatureDropped, "input.reasoning"),
                        "{:?}",
                        meta.ledger.dropped()
                    );
                    let text = out.to_string();
                    assert!(text.contains("call_"), "the function call id went up");
                }
            }
        }
    }

    #[test]
    fn namespaced_tools_are_flattened_and_mapped_back() {
        let body = json!({"model": "m", "input": [
            {"type": "message", "role": "user", "content": "hi"},
            {"type": "function_call", "call_id": "c1", "namespace": "mcp.srv", "name": "get", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "ok"}],
            "tools": [{"type": "namespace", "name": "mcp.srv", "tools": [
                {"type": "function", "name": "get", "parameters": {"type": "object"}}]}],
            "tool_choice": {"type": "function", "namespace": "mcp.srv", "name": "get"}});
        let (out, meta) = run(body, Format::OpenAi).unwrap();
        assert_eq!(out["tools"][0]["function"]["name"], "mcp_srv__get");
        assert_eq!(out["tool_choice"]["function"]["name"], "mcp_srv__get");
        assert_eq!(
            out["messages"][1]["tool_calls"][0]["function"]["name"],
            "mcp_srv__get"
        );
        assert_eq!(out["messages"][2]["role"], "tool");
        let rm = meta.responses.unwrap();
        assert_eq!(
            rm.client_tool("mcp_srv__get"),
            (Some("mcp.srv"), "get", false)
        );
        assert_eq!(rm.client_tool("other"), (None, "other", false));
    }

    #[test]
    fn custom_tool_calls_carry_their_input() {
        let body = json!({"model": "m", "input": [
            {"role": "user", "content": "patch it"},
            {"type": "custom_tool_call", "call_id": "c1", "name": "apply_patch", "input": "*** Begin Patch"},
            {"type": "custom_tool_call_output", "call_id": "c1", "output": "done"}],
            "tools": [{"type": "custom", "name": "apply_patch", "format": {"type": "grammar", "syntax": "lark", "definition": "start: x"}}]});
        let (out, _) = run(body, Format::Anthropic).unwrap();
        let tool = &out["tools"][0];
        assert_eq!(tool["name"], "apply_patch");
        assert_eq!(tool["input_schema"]["required"], json!(["input"]));
        assert!(tool["description"].as_str().unwrap().contains("start: x"));
        let call = &out["messages"][1]["content"][0];
        assert_eq!(call["type"], "tool_use");
        assert_eq!(call["input"], json!({"input": "*** Begin Patch"}));
    }

    #[test]
    fn server_state_is_a_400_naming_the_parameter() {
        for (extra, param) in [
            (
                json!({"previous_response_id": "resp_1"}),
                "previous_response_id",
            ),
            (json!({"conversation": "conv_1"}), "conversation"),
            (json!({"store": true}), "store"),
            (json!({"background": true}), "background"),
            (json!({"prompt": {"id": "pmpt_1"}}), "prompt"),
        ] {
            let mut body = json!({"model": "m", "input": "hi"});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            let e = run(body, Format::OpenAi).unwrap_err();
            assert_eq!((e.status, e.param.as_deref()), (400, Some(param)), "{e}");
        }
        // Explicit nulls and store:false are not state.
        let body =
            json!({"model": "m", "input": "hi", "store": false, "previous_response_id": null});
        assert!(run(body, Format::OpenAi).is_ok());
        let body = json!({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]});
        assert_eq!(run(body, Format::OpenAi).unwrap_err().status, 400);
        let e = run(
            json!({"model": "m", "input": "hi", "bogus": 1}),
            Format::OpenAi,
        )
        .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("bogus"));
        let e = run(json!({"model": "m"}), Format::Anthropic).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("input"));
    }

    /// A thinking block sealed for provider p1 goes back to p1 as a signed block, and never to
    /// another provider.
    #[test]
    fn sealed_reasoning_goes_back_only_to_its_provider() {
        let answer = json!({"id": "msg_1", "model": "c", "stop_reason": "tool_use",
            "content": [
                {"type": "thinking", "thinking": "let me think", "signature": "sig-abc"},
                {"type": "tool_use", "id": "toolu_1", "name": "get", "input": {"a": 1}}],
            "usage": {"input_tokens": 5, "output_tokens": 7}});
        let (_, mut meta) = run(
            json!({"model": "m", "input": "q", "include": ["reasoning.encrypted_content"],
                   "reasoning": {"effort": "low", "summary": "auto"}}),
            Format::Anthropic,
        )
        .unwrap();
        meta.responses.as_deref_mut().unwrap().id = "resp_t".into();
        let mut out = Vec::new();
        super::super::anthropic_to_responses_response_into(
            answer.to_string().as_bytes(),
            &meta,
            &mut out,
        )
        .unwrap();
        let resp: Value = serde_json::from_slice(&out).unwrap();
        let reasoning = &resp["output"][0];
        assert_eq!(reasoning["type"], "reasoning");
        assert_eq!(reasoning["summary"][0]["text"], "let me think");
        let sealed = reasoning["encrypted_content"].as_str().unwrap();
        assert!(!sealed.contains("sig-abc") && !sealed.contains("think"));
        let mut input = resp["output"].as_array().unwrap().clone();
        input.insert(0, json!({"role": "user", "content": "q"}));
        input.push(json!({"type": "function_call_output", "call_id": "toolu_1", "output": "42"}));
        let next = json!({"model": "m", "input": input, "reasoning": {"effort": "low"}});
        let (out, meta) = run(next.clone(), Format::Anthropic).unwrap();
        let assistant = &out["messages"][1]["content"];
        assert_eq!(
            assistant[0],
            json!({"type": "thinking", "thinking": "let me think", "signature": "sig-abc"})
        );
        assert_eq!(assistant[1]["type"], "tool_use");
        assert!(!meta
            .ledger
            .has(crate::translate::Code::SignatureDropped, "input.reasoning"));
        // Another provider (or a forged seal) gets no thinking, and says so.
        let (bytes, meta) = responses_request(
            next.to_string().as_bytes(),
            "up",
            Format::Anthropic,
            &opts("p2"),
        )
        .unwrap();
        assert!(!String::from_utf8(bytes).unwrap().contains("sig-abc"));
        assert!(meta
            .ledger
            .has(crate::translate::Code::SignatureDropped, "input.reasoning"));
        let mut forged = next;
        forged["input"][1]["encrypted_content"] = json!(format!("{sealed}x"));
        let (out, meta) = run(forged, Format::Anthropic).unwrap();
        assert!(!out.to_string().contains("sig-abc"));
        assert!(meta
            .ledger
            .has(crate::translate::Code::SignatureDropped, "input.reasoning"));
    }
}

#[cfg(test)]
mod compaction_tests {
    use super::super::{chat_to_responses_response_into, COMPACTION_PREAMBLE, COMPACTION_PROMPT};
    use super::*;
    use serde_json::{json, Value};

    fn opts() -> Options {
        Options {
            seal: SealKey::from_bytes(&[3u8; 32]).map(|k| k.for_holder(crate::seal::Holder::Open)),
            provider: "p".into(),
            ..Options::default()
        }
    }

    /// The provider's summary, rendered for the request `meta` describes.
    fn answer(meta: &RequestMeta, summary: &str) -> Value {
        let completion = json!({"id": "c", "model": "m", "choices": [{"index": 0,
            "message": {"role": "assistant", "content": summary}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}});
        let mut out = Vec::new();
        chat_to_responses_response_into(completion.to_string().as_bytes(), meta, &mut out).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn a_trigger_asks_for_a_summary_and_gets_one_sealed_item_back() {
        let body = json!({"model": "m", "input": [
            {"role": "user", "content": "build it"},
            {"type": "function_call", "call_id": "c1", "name": "sh", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "done"},
            {"type": "compaction_trigger"}],
            "tools": [{"type": "function", "name": "sh"}]});
        for kind in [Format::OpenAi, Format::Anthropic] {
            let (bytes, meta) =
                responses_request(body.to_string().as_bytes(), "up", kind, &opts()).unwrap();
            let up: Value = serde_json::from_slice(&bytes).unwrap();
            let messages = up["messages"].as_array().unwrap();
            let last = messages.last().unwrap();
            assert_eq!(last["role"], "user");
            assert!(last.to_string().contains(COMPACTION_PROMPT), "{last}");
            if kind == Format::OpenAi {
                assert!(up.get("tools").is_none(), "{up}");
            }
            let r = answer(&meta, "the summary");
            let output = r["output"].as_array().unwrap();
            assert_eq!(output.len(), 1, "{r}");
            assert_eq!(output[0]["type"], "compaction");
            let sealed = output[0]["encrypted_content"].as_str().unwrap();
            assert!(sealed.starts_with("rw1.") && !sealed.contains("summary"));
            // Sent back, it opens (at admission) into a user message holding the summary.
            let next = json!({"model": "m", "input": [output[0].clone(),
                {"role": "user", "content": "go on"}]});
            let key = opts().seal.unwrap();
            let opened = super::super::open_sealed_items(next.to_string().as_bytes(), &key, None)
                .unwrap()
                .unwrap();
            let (bytes, meta) = responses_request(&opened.body, "up", kind, &opts()).unwrap();
            let text = String::from_utf8(bytes).unwrap();
            let expanded =
                serde_json::to_string(&format!("{COMPACTION_PREAMBLE}the summary")).unwrap();
            assert!(text.contains(expanded.trim_matches('"')), "{text}");
            assert!(!meta.ledger.dropped().contains(&"input.compaction"));
        }
        // A trigger anywhere but last is a 400; a compaction item we cannot open is listed.
        let bad = json!({"model": "m", "input": [{"type": "compaction_trigger"}, {"role": "user", "content": "x"}]});
        assert_eq!(
            responses_request(bad.to_string().as_bytes(), "up", Format::OpenAi, &opts())
                .unwrap_err()
                .param
                .as_deref(),
            Some("input[0]")
        );
        // One that cannot be opened (another server's, one left sealed) is a 400 naming it:
        // going on without it would lose the conversation.
        let ours = opts()
            .seal
            .unwrap()
            .seal(Purpose::Compaction, b"x")
            .unwrap();
        for sealed in ["gAAAA-openai", "rw1.AAAA", ours.as_str()] {
            let foreign = json!({"model": "m", "input": [{"type": "compaction", "encrypted_content": sealed},
                {"role": "user", "content": "x"}]});
            let e = responses_request(
                foreign.to_string().as_bytes(),
                "up",
                Format::OpenAi,
                &opts(),
            )
            .unwrap_err();
            assert_eq!(
                e.param.as_deref(),
                Some("input[0].encrypted_content"),
                "{e}"
            );
        }
    }

    #[test]
    fn the_compact_endpoint_answers_one_compaction_item() {
        let body = json!({"model": "m", "stream": true, "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "first"}]},
            {"role": "assistant", "content": [{"type": "output_text", "text": "reply"}]},
            {"role": "user", "content": "second"}]});
        let (bytes, meta) =
            compact_request(body.to_string().as_bytes(), "up", Format::OpenAi, &opts()).unwrap();
        let up: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(up["stream"], false);
        assert!(!meta.stream);
        let r = answer(&meta, "sum");
        assert_eq!(r["object"], "response.compaction");
        let output = r["output"].as_array().unwrap();
        assert_eq!(output.len(), 1, "{r}");
        assert_eq!(output[0]["type"], "compaction");
        assert_eq!(r["usage"]["input_tokens"], 10);
    }
}

#[cfg(test)]
mod review_tests {
    use super::*;
    use serde_json::{json, Value};

    fn run(body: Value, provider: Format) -> Result<(Value, RequestMeta), TranslateError> {
        let (bytes, meta) = responses_request(
            body.to_string().as_bytes(),
            "claude-sonnet-4-5",
            provider,
            &Options::default(),
        )?;
        Ok((serde_json::from_slice(&bytes).unwrap(), meta))
    }

    #[test]
    fn tools_that_would_share_an_upstream_name_are_refused() {
        let f = |name: &str| json!({"type": "function", "name": name});
        for tools in [
            json!([{"type": "namespace", "name": "a.b", "tools": [f("c")]},
                   {"type": "namespace", "name": "a_b", "tools": [f("c")]}]),
            json!([{"type": "namespace", "name": "a", "tools": [f("c")]}, f("a__c")]),
            json!([f("x"), f("x")]),
        ] {
            let e = run(
                json!({"model": "m", "input": "hi", "tools": tools}),
                Format::OpenAi,
            )
            .unwrap_err();
            assert_eq!(e.param.as_deref(), Some("tools"), "{e}");
        }
    }

    #[test]
    fn long_function_names_are_shortened_everywhere_and_mapped_back() {
        let long = "f".repeat(70);
        let body = json!({"model": "m", "tools": [{"type": "function", "name": long}],
            "tool_choice": {"type": "function", "name": long},
            "input": [{"role": "user", "content": "x"},
                {"type": "function_call", "call_id": "c", "name": long, "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c", "output": "ok"}]});
        let (out, meta) = run(body, Format::OpenAi).unwrap();
        let short = out["tools"][0]["function"]["name"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(short.len() <= 64 && short != long);
        assert_eq!(out["tool_choice"]["function"]["name"], short.as_str());
        assert_eq!(
            out["messages"][1]["tool_calls"][0]["function"]["name"],
            short.as_str()
        );
        assert_eq!(
            meta.responses.unwrap().client_tool(&short),
            (None, long.as_str(), false)
        );
    }

    #[test]
    fn sdk_spellings_are_taken_and_chat_names_are_reported_as_responses_ones() {
        let body = json!({"model": "m", "input": "hi", "verbosity": "low",
            "context_management": [{"type": "compaction", "compact_threshold": 1000}],
            "prompt_cache_options": {"mode": "auto"}});
        let (out, meta) = run(body.clone(), Format::OpenAi).unwrap();
        assert_eq!(out["verbosity"], "low");
        assert!(
            meta.ledger.dropped().contains(&"context_management"),
            "{:?}",
            meta.ledger.dropped()
        );
        assert!(
            meta.ledger.dropped().contains(&"prompt_cache_options"),
            "{:?}",
            meta.ledger.dropped()
        );
        let (_, meta) = run(body, Format::Anthropic).unwrap();
        assert!(
            meta.ledger.dropped().contains(&"text.verbosity"),
            "{:?}",
            meta.ledger.dropped()
        );
        // A disabled effort is listed under its Responses name.
        let body = json!({"model": "m", "reasoning": {"effort": "none"}, "input": "hi"});
        let (_, meta) = run(body, Format::Anthropic).unwrap();
        assert!(
            !meta.ledger.dropped().contains(&"reasoning_effort"),
            "{:?}",
            meta.ledger.dropped()
        );
        let e = run(
            json!({"model": "m", "reasoning": {"effort": "huge"}, "input": "hi"}),
            Format::Anthropic,
        )
        .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("reasoning.effort"), "{e}");
    }
}
