//! Anthropic Messages request → OpenAI Chat Completions request (spec §5, §9–§13).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;

use crate::wire::anthropic::{ContentBlock, Message as AMessage, MessagesRequest};
use crate::wire::openai::{
    ChatRequest, ContentPart, FilePart, FunctionCall, ImageUrl, JsonSchemaFormat, Message,
    NamedFunction, ResponseFormat, StreamOptions, Tool, ToolCall, ToolChoice, ToolChoiceObject,
};
use crate::wire::{Sink, Str, TextOr};

use serde_json::value::RawValue;

use super::direct::{self, Turn};
use super::kept::{self, Kept};
use super::tools::{function, note_dropped, NameMap};
use crate::translate::conversations::{before_last, end_sink, resume_sink, Keeping, Store};
use crate::translate::out::{
    assemble, first_capacity, front_room, object, KeptOut, Out, Room, Shared,
};
use crate::translate::util::compact_json;
use crate::translate::{
    Code, MaxTokensField, Options, RequestMeta, TranslateError, OPENAI_MAX_STOP,
};

/// Prefix marking a failed tool's result (OpenAI tool messages have no error flag).
const TOOL_ERROR_PREFIX: &str = "Error: ";

/// `json_schema.name` sent for Anthropic structured outputs (which have no name).
const OUTPUT_SCHEMA_NAME: &str = "output";

/// File name for PDF documents without a title.
const DEFAULT_PDF_NAME: &str = "document.pdf";

/// Text standing for a `tool_reference` block in a tool result (OpenAI tool content is text).
const TOOL_LOADED_PREFIX: &str = "Tool loaded: ";

/// Longest `metadata.user_id` sent as OpenAI `user` as is; a longer one (Claude Code sends a
/// JSON object of ids) goes as its SHA-256, hex: stable per user, and no ids leak.
const MAX_OPENAI_USER_BYTES: usize = 64;

/// Translates an Anthropic Messages request body into an OpenAI Chat Completions request
/// for `upstream_model`.
pub fn anthropic_to_openai_request(
    body: &[u8],
    upstream_model: &str,
    opts: &Options,
) -> Result<(Vec<u8>, RequestMeta), TranslateError> {
    anthropic_to_openai_request_within(body, upstream_model, opts, &Room::unlimited())
}

/// [`anthropic_to_openai_request`] writing at most `room` bytes of buffers (else
/// [`TranslateError::over_budget`]).
pub fn anthropic_to_openai_request_within(
    body: &[u8],
    upstream_model: &str,
    opts: &Options,
    room: &Room,
) -> Result<(Vec<u8>, RequestMeta), TranslateError> {
    crate::translate::without_lending(|| {
        anthropic_to_openai_shared(body, upstream_model, opts, room)
    })
    .and_then(|(b, m)| Ok((b.into_vec(body)?, m)))
}

/// [`anthropic_to_openai_request_within`] as shared bytes, none of them moved.
pub(crate) fn anthropic_to_openai_shared(
    body: &[u8],
    upstream_model: &str,
    opts: &Options,
    room: &Room,
) -> Result<(Shared, RequestMeta), TranslateError> {
    // The conversation is scanned and translated as the body is read, one message at a time:
    // each turn from its JSON where it is a shape `direct` writes, else typed.
    let mut conv = Reading::new(room, body).keeping(body, opts);
    let mut req = match crate::translate::direct::on()
        .then(|| MessagesRequest::read_into::<&RawValue>(body, &mut conv))
    {
        Some(Ok(req)) if !conv.unread => req,
        direct => {
            if direct.is_some() {
                // A turn the typed reading refuses, or a body that does not read: the body is
                // read typed throughout, so that the error given is the typed reading's (a
                // turn's comes before a later key's).
                drop(conv);
                conv = Reading::new(room, body);
            }
            MessagesRequest::read_into::<AMessage>(body, &mut conv)?
        }
    };
    // The tools as Chat functions, made once per worker; read and converted here otherwise.
    let kept = req.tools_json.and_then(kept::kept);
    if kept.is_none() {
        req.tools = req.read_tools(body)?;
    }
    let mut meta = RequestMeta::default();
    let names = NameMap::default();
    let out = translate(
        &req,
        conv,
        kept.as_deref(),
        upstream_model,
        opts,
        &mut meta,
        &names,
    )?;
    meta.tool_names = names.into_pairs();
    match kept.as_deref() {
        Some(k) => meta.note_tool_names(|n| k.position(n)),
        None => {
            let tools = req.tools.as_deref().unwrap_or_default();
            meta.note_tool_names(|n| tools.iter().position(|t| t.name.as_str() == n));
        }
    }
    Ok((out.into_shared(), meta))
}

fn translate<'b, 'r>(
    req: &'b MessagesRequest<'b>,
    conv: Reading<'b, 'r>,
    kept: Option<&'b Kept>,
    upstream_model: &'b str,
    opts: &Options,
    meta: &mut RequestMeta,
    names: &NameMap,
) -> Result<Out<'r>, TranslateError> {
    if let Some((key, _)) = req.unknown.first() {
        return Err(TranslateError::unsupported_param(
            key.as_str(),
            format!("{key}: Extra inputs are not permitted"),
        ));
    }
    let model = req
        .model
        .as_ref()
        .ok_or_else(|| TranslateError::invalid("model", "model: Field required"))?;
    let max_tokens = req
        .max_tokens
        .ok_or_else(|| TranslateError::invalid("max_tokens", "max_tokens: Field required"))?;
    req.messages
        .ok_or_else(|| TranslateError::invalid("messages", "messages: Field required"))?;
    for (param, present) in [
        ("container", req.container.is_some()),
        ("inference_geo", req.inference_geo.is_some()),
        ("mcp_servers", req.mcp_servers.is_some()),
    ] {
        if present {
            return Err(TranslateError::unsupported_param(
                param,
                format!("{param} is not supported for OpenAI models"),
            ));
        }
    }
    if req.context_management.is_some() {
        // Context editing clears old thinking and tool results server-side. Thinking never
        // reaches an OpenAI model, and without the edits the model sees the whole (longer)
        // context: the answer stays correct, so the field is dropped and reported.
        meta.drop_param("context_management");
    }
    if req.cache_control.is_some() {
        meta.drop_param("cache_control");
    }
    let loaded_tools = scan_blocks(req, &conv, meta);
    if req.top_k.is_some() {
        meta.drop_param("top_k");
    }
    if let Some(stops) = &req.stop_sequences {
        if stops.len() > OPENAI_MAX_STOP {
            return Err(TranslateError::unsupported_value(
                "stop_sequences",
                format!("OpenAI models accept at most {OPENAI_MAX_STOP} stop sequences"),
            ));
        }
    }
    meta.client_model = model.to_string();
    meta.upstream_model = upstream_model.to_owned();
    meta.stream = req.stream.unwrap_or(false);

    let reasoning_effort = reasoning_effort(req, opts, meta)?;
    let response_format = response_format(req)?;
    let (tools, written) = match kept {
        Some(k) => (Vec::new(), k.functions(names, &loaded_tools, meta)),
        None => (convert_tools(req, names, &loaded_tools, meta)?, Vec::new()),
    };
    let has_tools = !tools.is_empty() || !written.is_empty();
    let (tool_choice, parallel_tool_calls) = convert_tool_choice(req, has_tools, names)?;

    // The messages were written as they were read; the top-level system message goes before
    // them.
    let system = match &req.system {
        Some(system) => system_message(system, "system")?,
        None => None,
    };
    let mut out = conv.finish(names, meta)?;
    let mut first = Vec::new();
    if let Some(m) = system {
        first = object(&m)?;
        first.push(b',');
    }

    let (max_completion_tokens, legacy_max_tokens) = match opts.openai_max_tokens_field {
        MaxTokensField::MaxCompletionTokens => (Some(max_tokens), None),
        MaxTokensField::MaxTokens => (None, Some(max_tokens)),
    };
    let service_tier = match req.service_tier.as_deref() {
        None => None,
        Some("auto") => Some(Str::from("auto")),
        Some("standard_only") => Some(Str::from("default")),
        Some(_) => {
            meta.drop_param("service_tier");
            None
        }
    };
    let head = object(&ChatRequest {
        model: Some(Str::from(upstream_model)),
        ..ChatRequest::default()
    })?;
    let tail = ChatRequest {
        max_completion_tokens,
        max_tokens: legacy_max_tokens,
        temperature: req.temperature,
        top_p: req.top_p,
        stop: req
            .stop_sequences
            .as_ref()
            .filter(|s| !s.is_empty())
            .map(|s| TextOr::Items(s.iter().map(Str::reborrow).collect())),
        stream: meta.stream.then_some(true),
        // Always ask for usage: Anthropic clients get it in message_delta.
        stream_options: meta.stream.then_some(StreamOptions {
            include_usage: Some(true),
        }),
        tools: (!tools.is_empty()).then_some(tools),
        tools_written: (!written.is_empty()).then_some(written),
        tool_choice,
        parallel_tool_calls,
        response_format,
        reasoning_effort,
        user: req
            .metadata
            .as_ref()
            .and_then(|m| m.user_id.as_ref())
            .map(openai_user),
        service_tier,
        ..ChatRequest::default()
    };
    assemble(&mut out, &head, "messages", &first, &[], &tail)?;
    Ok(out)
}

/// Hashed user ids kept per worker: an agent sends the same one every turn (Claude Code's is
/// a JSON object of ids, 170 bytes), and hashing it was 3% of a 50 KB turn's translation.
const USER_IDS_KEPT: usize = 8;
/// Longest user id kept with its hash.
const USER_ID_KEPT_MAX_BYTES: usize = 1024;

thread_local! {
    static USER_IDS: crate::recent::Recent<std::rc::Rc<str>, USER_IDS_KEPT> =
        const { crate::recent::Recent::new(USER_ID_KEPT_MAX_BYTES) };
}

/// `metadata.user_id` as OpenAI `user` (see [`MAX_OPENAI_USER_BYTES`]).
fn openai_user<'b>(id: &'b Str<'_>) -> Str<'b> {
    if id.len() <= MAX_OPENAI_USER_BYTES {
        return id.reborrow();
    }
    let hex = USER_IDS.with(|kept| {
        kept.get_or(
            id.as_bytes(),
            |h| h.len(),
            || std::rc::Rc::from(crate::credentials::sigv4::sha256_hex(id.as_bytes())),
        )
    });
    Str::from(String::from(&*hex))
}

/// Every content block's scan: fields dropped wherever they sit (`cache_control`, `caller`)
/// are reported, in the order first met (the top-level system's blocks first), and the tools
/// that `tool_reference` blocks loaded are collected.
fn scan_blocks<'b>(
    req: &'b MessagesRequest<'b>,
    conv: &Reading<'b, '_>,
    meta: &mut RequestMeta,
) -> HashSet<Str<'b>> {
    // A set: a request may hold many tool references and many deferred tools (both bounded
    // only by the body size), and each tool asks whether it was loaded.
    let mut loaded = HashSet::new();
    let mut dropped = Vec::new();
    if let Some(TextOr::Items(blocks)) = &req.system {
        walk(blocks, &mut dropped, &mut loaded);
    }
    for name in dropped.into_iter().chain(conv.dropped.iter().copied()) {
        meta.drop_param(name);
    }
    loaded.extend(conv.loaded.iter().cloned());
    loaded
}

/// One list of blocks (and those nested in tool results) for [`scan_blocks`].
fn walk<'b>(
    blocks: &[ContentBlock<'b>],
    dropped: &mut Vec<&'static str>,
    loaded: &mut HashSet<Str<'b>>,
) {
    for b in blocks {
        if b.cache_control.is_some() && !dropped.contains(&"cache_control") {
            dropped.push("cache_control");
        }
        if b.caller.is_some() && !dropped.contains(&"caller") {
            dropped.push("caller");
        }
        if let (Some(name), "tool_reference") = (&b.tool_name, b.kind.as_str()) {
            if !loaded.contains(name) {
                loaded.insert(name.clone());
            }
        }
        if let Some(TextOr::Items(inner)) = &b.content {
            walk(inner, dropped, loaded);
        }
    }
}

/// The conversation as the body is read: each message's blocks scanned (see [`scan_blocks`])
/// and its Chat messages written at once. The first message that cannot be translated stops
/// the writing (its error is given where the typed translation gave it); the scan goes on.
struct Reading<'b, 'r> {
    /// `[`, then each Chat message followed by a comma.
    out: Out<'r>,
    error: Option<TranslateError>,
    /// Fields dropped in message blocks, in the order first met.
    dropped: Vec<&'static str>,
    loaded: HashSet<Str<'b>>,
    /// Tool names the messages shortened: added after the tools' own, as when the tools were
    /// translated first.
    names: NameMap,
    /// What the messages' translation drops (`server_tool_blocks`), reported after the tools'.
    meta: RequestMeta,
    /// A turn read as JSON did not read typed: the body is to be read typed.
    unread: bool,
    /// The turn `direct` read last, and its buffer for a call's arguments (kept between turns).
    turn: Turn,
    scratch: Vec<u8>,
    /// Where the conversation is, to go on from a kept one and keep it.
    keeping: Option<Keeping<'r, KeptReading>>,
}

/// A [`Reading`] kept after a conversation's elements (see `conversations`).
struct KeptReading {
    out: KeptOut,
    dropped: Vec<&'static str>,
    loaded: Vec<String>,
    names: NameMap,
    meta: RequestMeta,
}

impl KeptReading {
    fn weight(&self) -> usize {
        let loaded: usize = self.loaded.iter().map(String::len).sum();
        self.out.weight() + loaded + self.names.weight()
    }
}

thread_local! {
    /// Messages conversations this thread translated last (see `conversations`).
    static CONVERSATIONS: Store<KeptReading> = const { RefCell::new(Vec::new()) };
}

impl<'b, 'r> Reading<'b, 'r> {
    fn new(room: &'r Room, body: &'r [u8]) -> Self {
        // Sized once for the usual case (the Chat form about as long as the Messages form, a
        // quarter to spare: capacity never written to costs no resident memory). Long texts
        // are lent from the body, not copied: it is often much less.
        let body_len = body.len();
        Reading {
            out: Out::with_front(room, first_capacity(body_len, 5, 4), front_room(body_len))
                .lending(body),
            error: None,
            dropped: Vec::new(),
            loaded: HashSet::new(),
            names: NameMap::default(),
            meta: RequestMeta::default(),
            unread: false,
            turn: Turn::default(),
            scratch: Vec::new(),
            keeping: None,
        }
    }

    /// Goes on from the state kept after an earlier request's conversation when `body`'s
    /// opens with the same elements, and keeps its own (see `conversations`).
    fn keeping(mut self, body: &'r [u8], opts: &Options) -> Self {
        self.keeping = Keeping::new(body, opts, self.out.lends_from());
        self
    }

    /// What it wrote and gathered, to go on from with a later body whose conversation opens
    /// with the same elements: None when a span it lends lies outside `base..end`.
    fn kept(&self, base: usize, end: usize) -> Option<KeptReading> {
        Some(KeptReading {
            out: self.out.kept(base, end)?,
            dropped: self.dropped.clone(),
            loaded: self.loaded.iter().map(|s| s.as_str().to_owned()).collect(),
            names: self.names.clone(),
            meta: self.meta.clone(),
        })
    }

    /// Goes on from `kept`, the elements it was kept after starting at `base` of this body.
    fn resume_from(&mut self, kept: &KeptReading, base: usize) -> Result<(), TranslateError> {
        self.out.resume(&kept.out, base)?;
        self.dropped.clone_from(&kept.dropped);
        self.loaded = kept.loaded.iter().map(|s| Str::from(s.clone())).collect();
        self.names = kept.names.clone();
        self.meta = kept.meta.clone();
        Ok(())
    }

    /// The messages written, their shortened names and drops merged into `names` and `meta`;
    /// or why a message could not be translated.
    fn finish(self, names: &NameMap, meta: &mut RequestMeta) -> Result<Out<'r>, TranslateError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        for (short, long) in self.names.into_pairs() {
            names.add(&short, &long);
        }
        meta.ledger.extend(&self.meta.ledger);
        Ok(self.out)
    }

    fn message(&mut self, i: usize, m: &AMessage<'_>) -> Result<(), TranslateError> {
        let mut chat = Vec::new();
        match m.role.as_str() {
            "user" => user_messages(&m.content, i, &mut chat)?,
            // Claude Code sends system turns inside the conversation (environment and tool
            // availability notes); Chat Completions takes system messages anywhere.
            "system" => {
                if let Some(msg) = system_message(&m.content, &format!("messages.{i}"))? {
                    chat.push(msg);
                }
            }
            "assistant" => {
                if let Some(msg) = assistant_message(&m.content, i, &self.names, &mut self.meta)? {
                    chat.push(msg);
                }
            }
            other => {
                return Err(TranslateError::invalid(
                    format!("messages.{i}.role"),
                    format!("unknown role `{other}`"),
                ))
            }
        }
        for msg in &chat {
            self.out.json(msg)?;
            self.out.byte(b',')?;
        }
        Ok(())
    }
}

impl<'b> Sink<'b, AMessage<'b>> for Reading<'b, '_> {
    fn element(&mut self, i: usize, m: AMessage<'b>) {
        if let TextOr::Items(blocks) = &m.content {
            walk(blocks, &mut self.dropped, &mut self.loaded);
        }
        if self.error.is_none() {
            self.error = self.message(i, &m).err();
        }
    }

    fn restart(&mut self) {
        self.out.clear();
        self.error = None;
        self.dropped.clear();
        self.loaded.clear();
        self.names = NameMap::default();
        self.meta = RequestMeta::default();
        self.unread = false;
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
        if self.error.is_none() {
            before_last(
                self,
                |r| &mut r.keeping,
                i,
                text,
                |r, base, at| r.kept(base, at),
            );
        }
        if self.error.is_none() && direct::read(text, &mut self.turn).is_some() {
            for name in &self.turn.dropped {
                if !self.dropped.contains(name) {
                    self.dropped.push(name);
                }
            }
            self.error = direct::write(&self.turn, text, &mut self.out, &mut self.scratch).err();
            return;
        }
        match crate::json::de::from_str::<AMessage<'b>>(raw.get()) {
            Ok(m) => Sink::<AMessage<'b>>::element(self, i, m),
            Err(_) => self.unread = true,
        }
    }

    fn restart(&mut self) {
        // A turn that did not read typed does not read in any later reading of the body
        // either (a restart reads the same text again): the body still goes typed.
        let unread = self.unread;
        Sink::<AMessage<'b>>::restart(self);
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
            Reading::resume_from,
            Sink::<&'b RawValue>::restart,
        )
    }

    fn end(&mut self, count: usize) {
        if self.unread || self.error.is_some() {
            return;
        }
        end_sink(
            self,
            |r| &mut r.keeping,
            &CONVERSATIONS,
            count,
            KeptReading::weight,
            Reading::kept,
        );
    }
}

fn reasoning_effort<'b>(
    req: &'b MessagesRequest<'_>,
    opts: &Options,
    meta: &mut RequestMeta,
) -> Result<Option<Str<'b>>, TranslateError> {
    let effort = req.output_config.as_ref().and_then(|c| c.effort.as_ref());
    if let Some(e) = effort {
        if !matches!(e.as_str(), "low" | "medium" | "high" | "xhigh" | "max") {
            return Err(TranslateError::invalid(
                "output_config.effort",
                format!("unsupported effort `{e}`"),
            ));
        }
    }
    // OpenAI's top effort is `xhigh`; Anthropic's `max` asks for the most there is.
    let effort = effort.map(|e| match e.as_str() {
        "max" => Str::from("xhigh"),
        _ => e.reborrow(),
    });
    let Some(t) = &req.thinking else {
        return Ok(effort);
    };
    // `display: "omitted"`: the client wants no thinking text back, only the answer.
    let surface = t.display.as_deref() != Some("omitted");
    match t.kind.as_str() {
        "enabled" => {
            meta.client_thinking = surface;
            if effort.is_none() {
                // The budget went as the effort its range of the table names.
                meta.note(Code::ThinkingConverted, "thinking.budget_tokens");
            }
            let budget = t.budget_tokens.ok_or_else(|| {
                TranslateError::invalid(
                    "thinking.budget_tokens",
                    "thinking.budget_tokens: Field required",
                )
            })?;
            Ok(Some(effort.unwrap_or_else(|| {
                Str::from(opts.effort_budgets.effort_for_budget(budget))
            })))
        }
        "adaptive" => {
            meta.client_thinking = surface;
            Ok(effort)
        }
        "disabled" => Ok(None),
        other => Err(TranslateError::invalid(
            "thinking.type",
            format!("unknown thinking type `{other}`"),
        )),
    }
}

fn response_format<'b>(
    req: &'b MessagesRequest<'_>,
) -> Result<Option<ResponseFormat<'b>>, TranslateError> {
    let (format, param) = match (
        req.output_config.as_ref().and_then(|c| c.format.as_ref()),
        &req.output_format,
    ) {
        (Some(f), _) => (f, "output_config.format"),
        (None, Some(f)) => (f, "output_format"),
        (None, None) => return Ok(None),
    };
    if format.kind.as_str() != "json_schema" {
        return Err(TranslateError::invalid(
            format!("{param}.type"),
            format!("unsupported output format `{}`", format.kind),
        ));
    }
    let schema = format.schema.ok_or_else(|| {
        TranslateError::invalid(
            format!("{param}.schema"),
            "json_schema format needs a schema",
        )
    })?;
    Ok(Some(ResponseFormat {
        kind: Str::from("json_schema"),
        json_schema: Some(JsonSchemaFormat {
            name: Str::from(OUTPUT_SCHEMA_NAME),
            description: None,
            schema: Some(schema),
            strict: Some(true),
        }),
    }))
}

/// OpenAI functions for the request's custom tools. A deferred tool (`defer_loading`, tool
/// search) is offered only once a `tool_reference` in the conversation has loaded it, as the
/// Anthropic API does: until then the model must not call it.
fn convert_tools<'b>(
    req: &'b MessagesRequest<'_>,
    names: &NameMap,
    loaded: &HashSet<Str<'_>>,
    meta: &mut RequestMeta,
) -> Result<Vec<Tool<'b>>, TranslateError> {
    let Some(tools) = &req.tools else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(tools.len());
    for (j, t) in tools.iter().enumerate() {
        note_dropped(t, meta);
        if t.defer_loading == Some(true) && !loaded.contains(&t.name) {
            continue;
        }
        match function(t, names) {
            Some(f) => out.push(f),
            None => {
                return Err(TranslateError::unsupported_value(
                    format!("tools.{j}.type"),
                    format!(
                        "server tool `{}` is not supported for OpenAI models",
                        t.kind.as_deref().unwrap_or_default()
                    ),
                ))
            }
        }
    }
    Ok(out)
}

fn convert_tool_choice<'b>(
    req: &'b MessagesRequest<'_>,
    has_tools: bool,
    names: &NameMap,
) -> Result<(Option<ToolChoice<'b>>, Option<bool>), TranslateError> {
    let Some(tc) = &req.tool_choice else {
        return Ok((None, None));
    };
    let choice = match tc.kind.as_str() {
        "auto" => ToolChoice::Mode(Str::from("auto")),
        "any" => ToolChoice::Mode(Str::from("required")),
        "none" => ToolChoice::Mode(Str::from("none")),
        "tool" => {
            let name = tc.name.as_ref().ok_or_else(|| {
                TranslateError::invalid("tool_choice.name", "tool_choice.name: Field required")
            })?;
            ToolChoice::Object(ToolChoiceObject {
                kind: Str::from("function"),
                function: Some(NamedFunction {
                    name: names.map(name),
                }),
                ..ToolChoiceObject::default()
            })
        }
        other => {
            return Err(TranslateError::invalid(
                "tool_choice.type",
                format!("unknown tool_choice type `{other}`"),
            ))
        }
    };
    if !has_tools {
        if matches!(tc.kind.as_str(), "any" | "tool") {
            return Err(TranslateError::invalid(
                "tool_choice",
                "tool_choice requires tools",
            ));
        }
        return Ok((None, None));
    }
    let parallel = (tc.disable_parallel_tool_use == Some(true)).then_some(false);
    Ok((Some(choice), parallel))
}

/// One OpenAI system message from the top-level `system` or a `system` turn (`at` names it in
/// errors): a string or text blocks, joined.
fn system_message<'b>(
    system: &'b TextOr<'_, ContentBlock<'_>>,
    at: &str,
) -> Result<Option<Message<'b>>, TranslateError> {
    let text: Str<'b> = match system {
        TextOr::Text(s) => s.reborrow(),
        TextOr::Items(blocks) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for (j, b) in blocks.iter().enumerate() {
                match (b.kind.as_str(), &b.text) {
                    ("text", Some(t)) => texts.push(t),
                    _ => {
                        return Err(TranslateError::invalid(
                            format!("{at}.{j}.type"),
                            "system blocks must be text blocks",
                        ))
                    }
                }
            }
            join_texts(&texts, "\n")
        }
    };
    if text.is_empty() {
        return Ok(None);
    }
    Ok(Some(Message {
        role: Str::from("system"),
        content: Some(TextOr::Text(text)),
        ..Message::default()
    }))
}

/// Joins texts, borrowing when there is exactly one.
fn join_texts<'b>(texts: &[&'b Str<'_>], sep: &str) -> Str<'b> {
    match texts {
        [] => Str::from(""),
        [one] => one.reborrow(),
        many => Str::joined(many, sep),
    }
}

/// A user turn: its tool results become `tool` messages first (in order), then one `user`
/// message with images/documents returned by tools followed by the turn's own parts.
fn user_messages<'b>(
    content: &'b TextOr<'_, ContentBlock<'_>>,
    i: usize,
    out: &mut Vec<Message<'b>>,
) -> Result<(), TranslateError> {
    let blocks = match content {
        TextOr::Text(s) => {
            out.push(Message {
                role: Str::from("user"),
                content: Some(TextOr::Text(s.reborrow())),
                ..Message::default()
            });
            return Ok(());
        }
        TextOr::Items(blocks) => blocks,
    };
    let mut from_results: Vec<ContentPart<'b>> = Vec::new();
    let mut parts: Vec<ContentPart<'b>> = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let at = At::Block(i, j);
        match b.kind.as_str() {
            "tool_result" => {
                let id = b.tool_use_id.as_ref().ok_or_else(|| {
                    TranslateError::invalid(
                        format!("{at}.tool_use_id"),
                        "tool_use_id: Field required",
                    )
                })?;
                let text = tool_result_text(b, &at, &mut from_results)?;
                out.push(Message {
                    role: Str::from("tool"),
                    tool_call_id: Some(id.reborrow()),
                    content: Some(TextOr::Text(text)),
                    ..Message::default()
                });
            }
            _ => parts.extend(user_part(b, &at)?),
        }
    }
    from_results.append(&mut parts);
    if from_results.is_empty() {
        return Ok(());
    }
    let content = match from_results.as_slice() {
        [only] if only.kind.as_str() == "text" && only.cache_control.is_none() => {
            match from_results.pop().and_then(|p| p.text) {
                Some(t) => TextOr::Text(t),
                None => TextOr::Items(Vec::new()),
            }
        }
        _ => TextOr::Items(from_results),
    };
    out.push(Message {
        role: Str::from("user"),
        content: Some(content),
        ..Message::default()
    });
    Ok(())
}

/// Where a content block sits, written out only when an error names it: formatting the path
/// of every block of an agent's turn was 4% of its translation.
#[derive(Clone, Copy)]
enum At<'p> {
    /// `messages.{i}.content.{j}`.
    Block(usize, usize),
    /// `{outer}.{member}.{k}`: a block inside a block.
    Inner(&'p At<'p>, &'static str, usize),
}

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            At::Block(i, j) => write!(f, "messages.{i}.content.{j}"),
            At::Inner(outer, member, k) => write!(f, "{outer}.{member}.{k}"),
        }
    }
}

/// The text of a tool result (OpenAI tool content is text only); its images and documents
/// go to `media` for the following user message.
fn tool_result_text<'b>(
    b: &'b ContentBlock<'_>,
    at: &At<'_>,
    media: &mut Vec<ContentPart<'b>>,
) -> Result<Str<'b>, TranslateError> {
    let mut texts: Vec<Str<'b>> = Vec::new();
    match &b.content {
        None => {}
        Some(TextOr::Text(s)) => texts.push(s.reborrow()),
        Some(TextOr::Items(items)) => {
            for (k, item) in items.iter().enumerate() {
                let item_at = At::Inner(at, "content", k);
                match (item.kind.as_str(), &item.text, &item.tool_name) {
                    ("text", Some(t), _) => texts.push(t.reborrow()),
                    // Tool search's answer: the named tool is now offered (convert_tools).
                    ("tool_reference", _, Some(name)) => {
                        texts.push(Str::from(format!("{TOOL_LOADED_PREFIX}{name}")));
                    }
                    _ => media.extend(user_part(item, &item_at)?),
                }
            }
        }
    }
    let text = match texts.len() {
        0 => Str::from(""),
        1 => texts.pop().unwrap_or_else(|| Str::from("")),
        _ => Str::from(
            texts
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
        ),
    };
    if b.is_error == Some(true) {
        return Ok(Str::from(format!("{TOOL_ERROR_PREFIX}{text}")));
    }
    Ok(text)
}

fn text_part<'b>(text: Str<'b>) -> ContentPart<'b> {
    ContentPart {
        kind: Str::from("text"),
        text: Some(text),
        ..ContentPart::default()
    }
}

/// The OpenAI parts for one user-side block (text, image, document).
fn user_part<'b>(
    b: &'b ContentBlock<'_>,
    at: &At<'_>,
) -> Result<Vec<ContentPart<'b>>, TranslateError> {
    let source_kind = b.source.as_ref().map(|s| s.kind.as_str());
    Ok(match (b.kind.as_str(), source_kind) {
        ("text", _) => {
            let t = b.text.as_ref().ok_or_else(|| {
                TranslateError::invalid(format!("{at}.text"), "text: Field required")
            })?;
            vec![text_part(t.reborrow())]
        }
        ("image", Some("base64")) => {
            let (mime, data) = base64_source(b, at)?;
            vec![ContentPart {
                kind: Str::from("image_url"),
                image_url: Some(ImageUrl {
                    url: data_url(mime, data),
                    detail: None,
                }),
                ..ContentPart::default()
            }]
        }
        ("image", Some("url")) => {
            let url = b
                .source
                .as_ref()
                .and_then(|s| s.url.as_ref())
                .ok_or_else(|| {
                    TranslateError::invalid(format!("{at}.source.url"), "url: Field required")
                })?;
            vec![ContentPart {
                kind: Str::from("image_url"),
                image_url: Some(ImageUrl {
                    url: url.reborrow(),
                    detail: None,
                }),
                ..ContentPart::default()
            }]
        }
        ("document", Some("base64")) => {
            let (mime, data) = base64_source(b, at)?;
            if mime.as_str() != "application/pdf" {
                return Err(TranslateError::unsupported_value(
                    format!("{at}.source.media_type"),
                    format!("document media type `{mime}` is not supported for OpenAI models"),
                ));
            }
            vec![ContentPart {
                kind: Str::from("file"),
                file: Some(FilePart {
                    file_data: Some(data_url(mime, data)),
                    file_id: None,
                    filename: Some(
                        b.title
                            .as_ref()
                            .map_or(Str::from(DEFAULT_PDF_NAME), Str::reborrow),
                    ),
                }),
                ..ContentPart::default()
            }]
        }
        ("document", Some("text")) => {
            let data = b
                .source
                .as_ref()
                .and_then(|s| s.data.as_ref())
                .ok_or_else(|| {
                    TranslateError::invalid(format!("{at}.source.data"), "data: Field required")
                })?;
            let text = match &b.title {
                Some(title) => Str::from(format!("{title}\n\n{data}")),
                None => data.reborrow(),
            };
            vec![text_part(text)]
        }
        ("document", Some("content")) => {
            let mut parts = Vec::new();
            if let Some(title) = &b.title {
                parts.push(text_part(title.reborrow()));
            }
            match b.source.as_ref().and_then(|s| s.content.as_ref()) {
                None => {}
                Some(TextOr::Text(s)) => parts.push(text_part(s.reborrow())),
                Some(TextOr::Items(items)) => {
                    for (k, item) in items.iter().enumerate() {
                        parts.extend(user_part(item, &At::Inner(at, "source.content", k))?);
                    }
                }
            }
            parts
        }
        ("image" | "document", Some(kind)) => {
            return Err(TranslateError::unsupported_value(
                format!("{at}.source.type"),
                format!(
                    "{} sources of type `{kind}` are not supported for OpenAI models",
                    b.kind
                ),
            ))
        }
        ("image" | "document", None) => {
            return Err(TranslateError::invalid(
                format!("{at}.source"),
                "source: Field required",
            ))
        }
        (other, _) => {
            return Err(TranslateError::unsupported_value(
                format!("{at}.type"),
                format!("`{other}` blocks are not supported in user messages for OpenAI models"),
            ))
        }
    })
}

fn base64_source<'b>(
    b: &'b ContentBlock<'_>,
    at: &At<'_>,
) -> Result<(Str<'b>, Str<'b>), TranslateError> {
    let s = b.source.as_ref();
    let mime = s.and_then(|s| s.media_type.as_ref()).ok_or_else(|| {
        TranslateError::invalid(
            format!("{at}.source.media_type"),
            "media_type: Field required",
        )
    })?;
    let data = s.and_then(|s| s.data.as_ref()).ok_or_else(|| {
        TranslateError::invalid(format!("{at}.source.data"), "data: Field required")
    })?;
    Ok((mime.reborrow(), data.reborrow()))
}

fn data_url(mime: Str<'_>, data: Str<'_>) -> Str<'static> {
    Str::from(format!("data:{mime};base64,{data}"))
}

fn assistant_message<'b>(
    content: &'b TextOr<'_, ContentBlock<'_>>,
    i: usize,
    names: &NameMap,
    meta: &mut RequestMeta,
) -> Result<Option<Message<'b>>, TranslateError> {
    let blocks = match content {
        TextOr::Text(s) => {
            return Ok(Some(Message {
                role: Str::from("assistant"),
                content: Some(TextOr::Text(s.reborrow())),
                ..Message::default()
            }))
        }
        TextOr::Items(blocks) => blocks,
    };
    let mut texts: Vec<&'b Str<'_>> = Vec::new();
    let mut calls: Vec<ToolCall<'b>> = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        match b.kind.as_str() {
            "text" => texts.extend(b.text.as_ref()),
            "tool_use" => {
                let at = At::Block(i, j);
                let id = b.id.as_ref().ok_or_else(|| {
                    TranslateError::invalid(format!("{at}.id"), "id: Field required")
                })?;
                let name = b.name.as_ref().ok_or_else(|| {
                    TranslateError::invalid(format!("{at}.name"), "name: Field required")
                })?;
                calls.push(ToolCall {
                    index: None,
                    id: Some(id.reborrow()),
                    kind: Some(Str::from("function")),
                    function: Some(FunctionCall {
                        name: Some(names.map(name)),
                        arguments: Some(Str::from(
                            b.input
                                .map_or(Cow::Borrowed("{}"), |r| compact_json(r.get())),
                        )),
                    }),
                });
            }
            // Plain OpenAI upstreams cannot take thinking back (spec §5).
            "thinking" | "redacted_thinking" => {}
            _ => meta.drop_param("server_tool_blocks"),
        }
    }
    if texts.is_empty() && calls.is_empty() {
        return Ok(None);
    }
    Ok(Some(Message {
        role: Str::from("assistant"),
        content: (!texts.is_empty()).then(|| TextOr::Text(join_texts(&texts, ""))),
        tool_calls: (!calls.is_empty()).then_some(calls),
        ..Message::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::{kept_tools_used, without_kept};
    use serde_json::{json, Value};

    fn run(req: Value) -> Result<(Value, RequestMeta), TranslateError> {
        let body = serde_json::to_vec(&req).unwrap();
        anthropic_to_openai_request(&body, "gpt-x", &Options::default())
            .map(|(b, m)| (serde_json::from_slice(&b).unwrap(), m))
    }

    /// Tools kept from an earlier request (made on the first, found on the second) against
    /// tools converted afresh: the same bytes, meta or error, for shortened names (in the
    /// tools, the choice and the conversation), deferred tools loaded by this conversation or
    /// not, dropped fields, server tools and tools that do not read.
    #[test]
    fn kept_tools_translate_as_tools_converted_afresh() {
        let long = "x".repeat(90);
        let tools = json!([
            {"name": "read", "description": "Reads a file.\nAbsolute paths.", "input_schema": {"type": "object"}},
            {"name": long, "cache_control": {"type": "ephemeral"}},
            {"type": "custom", "name": "later", "defer_loading": true, "strict": true},
            {"name": format!("{long}y"), "defer_loading": true},
        ]);
        let loading = |name: &str| {
            json!([{"role": "user", "content": "go"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "tool_search", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                    "content": [{"type": "tool_reference", "tool_name": name}]}]}])
        };
        let call_long = json!([{"role": "user", "content": "go"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": format!("{long}z"), "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]}]);
        let hi = json!([{"role": "user", "content": "hi"}]);
        let body = |tools: &Value, messages: &Value, extra: Value| {
            let mut b =
                json!({"model": "c", "max_tokens": 10, "tools": tools, "messages": messages});
            for (k, v) in extra.as_object().unwrap() {
                b[k] = v.clone();
            }
            b.to_string()
        };
        let bodies = [
            body(&tools, &hi, json!({})),
            body(
                &tools,
                &loading("later"),
                json!({"tool_choice": {"type": "tool", "name": long}}),
            ),
            body(
                &tools,
                &loading(&format!("{long}y")),
                json!({"tool_choice": {"type": "any"}}),
            ),
            body(
                &tools,
                &call_long,
                json!({"cache_control": {"type": "ephemeral"}}),
            ),
            body(
                &json!([{"name": "only", "defer_loading": true}]),
                &hi,
                json!({"tool_choice": {"type": "any"}}),
            ),
            body(
                &json!([{"name": "only", "defer_loading": true}]),
                &hi,
                json!({"tool_choice": {"type": "auto"}}),
            ),
            body(
                &json!([{"type": "web_search_20250305", "name": "web_search"}]),
                &hi,
                json!({}),
            ),
            body(
                &json!([{"type": "bash_20250124", "name": "bash", "defer_loading": true}, {"name": "f"}]),
                &hi,
                json!({}),
            ),
            body(&json!([{"name": 7}]), &hi, json!({})),
            body(&json!([]), &hi, json!({})),
            body(&tools, &hi, json!({"unknown_key": 1})),
        ];
        let used = kept_tools_used();
        for b in &bodies {
            let once = || anthropic_to_openai_request(b.as_bytes(), "gpt-x", &Options::default());
            let afresh = without_kept(once);
            assert_eq!(once(), afresh, "{b}: made");
            assert_eq!(once(), afresh, "{b}: found");
        }
        // Found kept: every run of a list made before but the first, except the lists with
        // server tools and the one that does not read (kept as refused). Four lists are kept,
        // so the first list is made again for the last body, after five others.
        assert_eq!(kept_tools_used() - used, 1 + 2 + 2 + 2 + 1 + 2 + 1 + 1);
        // A list that does not read gives the error reading it in place gives: where in the
        // body.
        let e =
            run(json!({"model": "c", "max_tokens": 10, "messages": hi, "tools": [{"name": 7}]}))
                .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("tools"));
        assert!(e.message.contains("column"), "{}", e.message);
        let at: usize = e.message.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(
            at > 60,
            "a column of the body, not of the tools: {}",
            e.message
        );
    }

    /// Tools read as their JSON answer as tools read in place: a bad `tools` is named before
    /// a later key that does not read either, and each of two `tools` keys is checked (the
    /// last counts).
    #[test]
    fn tools_read_apart_answer_as_tools_read_in_place() {
        let hi = json!([{"role": "user", "content": "hi"}]);
        let body = |rest: &str| format!(r#"{{"model":"c",{rest},"messages":{hi}}}"#);
        let cases = [
            body(r#""tools":[{"name":7}],"max_tokens":"x""#),
            body(r#""max_tokens":10,"tools":[{"name":7}],"tools":[]"#),
            body(r#""max_tokens":10,"tools":[{"name":7}],"tools":null"#),
        ];
        for b in &cases {
            let once = || anthropic_to_openai_request(b.as_bytes(), "gpt-x", &Options::default());
            let e = once().unwrap_err();
            assert_eq!(e.param.as_deref(), Some("tools"), "{b}: {e:?}");
            assert!(e.message.starts_with("invalid value for `tools`"), "{e:?}");
            assert_eq!(without_kept(once).unwrap_err(), e, "{b}");
        }
        // Not UTF-8 in a field a tool does not have: skipped when read in place, so taken.
        let mut odd = body(r#""max_tokens":10,"tools":[{"name":"a","x":"?"}]"#).into_bytes();
        let at = odd.iter().position(|&b| b == b'?').unwrap();
        odd[at] = 0xff;
        let (bytes, _) = anthropic_to_openai_request(&odd, "gpt-x", &Options::default()).unwrap();
        let out: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(out["tools"][0]["function"]["name"], "a");
        let twice = body(r#""max_tokens":10,"tools":[{"name":"a"}],"tools":[{"name":"b"}]"#);
        for _ in 0..2 {
            let (bytes, _) =
                anthropic_to_openai_request(twice.as_bytes(), "gpt-x", &Options::default())
                    .unwrap();
            let out: Value = serde_json::from_slice(&bytes).unwrap();
            let tools = out["tools"].as_array().unwrap();
            assert_eq!(tools.len(), 1, "{out}");
            assert_eq!(tools[0]["function"]["name"], "b");
        }
    }

    /// The path an error names for a block, a block in a tool result and a block in a
    /// document's content, each written out only then.
    #[test]
    fn errors_name_the_block_where_it_sits() {
        let bad_image = json!({"type": "image", "source": {"type": "base64", "data": "AAAA"}});
        let turn = |content: Value| {
            json!({"model": "c", "max_tokens": 10, "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "n", "input": {}}]},
                {"role": "user", "content": content}]})
        };
        let cases = [
            (
                json!([{"type": "text", "text": "a"}, bad_image.clone()]),
                "messages.2.content.1.source.media_type",
            ),
            (
                json!([{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "a"}, bad_image.clone()]}]),
                "messages.2.content.0.content.1.source.media_type",
            ),
            (
                json!([{"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "a"}, bad_image]}}]),
                "messages.2.content.0.source.content.1.source.media_type",
            ),
            (
                json!([{"type": "tool_result", "content": "a"}]),
                "messages.2.content.0.tool_use_id",
            ),
        ];
        for (content, param) in cases {
            let e = run(turn(content)).unwrap_err();
            assert_eq!(e.param.as_deref(), Some(param), "{e:?}");
        }
        let e = run(json!({"model": "c", "max_tokens": 10, "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "tool_use", "id": "t", "input": {}}]}]}))
        .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages.1.content.1.name"));
    }

    /// A long user id goes as its SHA-256 whether it was hashed for this request or kept from
    /// an earlier one, with more ids than are kept between.
    #[test]
    fn a_kept_user_id_hash_is_the_hash_of_the_id() {
        let ids: Vec<String> = (0..USER_IDS_KEPT + 3)
            .map(|n| format!("{{\"device_id\":\"{n:0>80}\",\"session\":\"s\"}}"))
            .collect();
        let user = |id: &str| {
            let (out, _) = run(
                json!({"model": "c", "max_tokens": 10, "metadata": {"user_id": id},
                "messages": [{"role": "user", "content": "hi"}]}),
            )
            .unwrap();
            out["user"].as_str().unwrap().to_owned()
        };
        let hex = |id: &str| {
            let d = ring::digest::digest(&ring::digest::SHA256, id.as_bytes());
            d.as_ref()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        for round in 0..3 {
            for id in ids.iter().rev().skip(round) {
                assert_eq!(user(id), hex(id), "{id}");
            }
        }
    }

    #[test]
    fn minimal() {
        let (out, _) =
            run(json!({"model":"c","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}))
                .unwrap();
        assert_eq!(
            out,
            json!({"model":"gpt-x","max_completion_tokens":10,"messages":[{"role":"user","content":"hi"}]})
        );
    }

    #[test]
    fn long_tool_names_are_shortened_and_recorded() {
        let long = "t".repeat(80);
        let (out, meta) = run(json!({"model":"c","max_tokens":10,
            "tools":[{"name":long,"input_schema":{"type":"object"}}],
            "tool_choice":{"type":"tool","name":long},
            "messages":[{"role":"user","content":"hi"}]}))
        .unwrap();
        let short = out["tools"][0]["function"]["name"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(short.len(), 64);
        assert_eq!(out["tool_choice"]["function"]["name"], json!(short));
        assert_eq!(meta.tool_names, vec![(short.clone(), long.clone())]);
        assert_eq!(meta.client_tool_name(&short), long);
    }

    #[test]
    fn rejections() {
        for (req, param) in [
            (json!({"model":"c","messages":[]}), "max_tokens"),
            (
                json!({"model":"c","max_tokens":1,"messages":[],"foo":1}),
                "foo",
            ),
            (
                json!({"model":"c","max_tokens":1,"messages":[],"stop_sequences":["a","b","c","d","e"]}),
                "stop_sequences",
            ),
            (
                json!({"model":"c","max_tokens":1,"messages":[],"tools":[{"type":"web_search_20250305","name":"web_search"}]}),
                "tools.0.type",
            ),
            (
                json!({"model":"c","max_tokens":1,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"f"}}]}]}),
                "messages.0.content.0.source.type",
            ),
        ] {
            let e = run(req).unwrap_err();
            assert_eq!(e.param.as_deref(), Some(param), "{e}");
        }
    }
}
