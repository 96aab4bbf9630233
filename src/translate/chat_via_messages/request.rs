//! OpenAI Chat Completions request → Anthropic Messages request (spec §3, §9–§13).

use std::cell::RefCell;

use serde_json::value::RawValue;

use crate::wire::anthropic::{
    ContentBlock, MessagesRequest, Metadata, OutputConfig, OutputFormat, Source, Thinking,
    Tool as ATool, ToolChoice as AToolChoice,
};
use crate::wire::openai::{ChatRequest, ContentPart, Message, ToolChoice};
use crate::wire::{Sink, Str, TextOr};

use crate::translate::conversations::{end_sink, resume_sink, Keeping, Store};
use crate::translate::out::first_capacity;
use crate::translate::out::{assemble, object, KeptOut, Out, Piece, Room, Shared};
use crate::translate::thinking::{generation, Generation};
use crate::translate::util::{
    arguments_to_input, decode_base64, is_anthropic_image_mime, is_http_url, parse_data_url,
    sanitize_tool_id, ArgumentsProblem,
};
use crate::translate::{
    Code, Options, RequestMeta, ThinkingForm, TranslateError, JSON_TOOL_NAME, MIN_THINKING_BUDGET,
};

use super::kept;
use super::tools::{anthropic_tools, raw, WrittenTools, EMPTY_OBJECT_SCHEMA};

/// Room the conversation's buffer keeps in front for `{"model":…,"max_tokens":…,"messages":[`
/// (a longer model name moves the conversation once instead).
const MESSAGES_FRONT_ROOM: usize = 512;

/// `input_schema` of the [`JSON_TOOL_NAME`] tool for `response_format: json_object`.
const ANY_OBJECT_SCHEMA: &str = r#"{"type":"object","additionalProperties":true}"#;

/// Text of the user turn inserted when a conversation would start with the assistant.
const FIRST_TURN_PLACEHOLDER: &str = ".";

/// Translates an OpenAI Chat Completions request body into an Anthropic Messages request
/// for `upstream_model`.
pub fn openai_to_anthropic_request(
    body: &[u8],
    upstream_model: &str,
    opts: &Options,
) -> Result<(Vec<u8>, RequestMeta), TranslateError> {
    openai_to_anthropic_request_within(body, upstream_model, opts, &Room::unlimited())
}

/// [`openai_to_anthropic_request`] writing at most `room` bytes of buffers (else
/// [`TranslateError::over_budget`]).
pub fn openai_to_anthropic_request_within(
    body: &[u8],
    upstream_model: &str,
    opts: &Options,
    room: &Room,
) -> Result<(Vec<u8>, RequestMeta), TranslateError> {
    crate::translate::without_lending(|| {
        openai_to_anthropic_shared(body, upstream_model, opts, room)
    })
    .and_then(|(b, m)| Ok((b.into_vec(body)?, m)))
}

/// [`openai_to_anthropic_request_within`] as shared bytes, none of them moved.
pub(crate) fn openai_to_anthropic_shared(
    body: &[u8],
    upstream_model: &str,
    opts: &Options,
    room: &Room,
) -> Result<(Shared, RequestMeta), TranslateError> {
    let mut meta = RequestMeta::default();
    // Sized once for the usual case (the Anthropic form about as long as the Chat form, a
    // quarter to spare: capacity never written to costs no resident memory).
    let capacity = first_capacity(body.len(), 5, 4);
    let out = to_anthropic(body, upstream_model, opts, room, capacity, &mut meta, true)?;
    Ok((out.into_shared(), meta))
}

/// The Anthropic body for the Chat body `body`, written in `room` (its conversation's buffer
/// first sized to `capacity`, after the room it keeps in front; `meta` filled on the way).
pub(crate) fn to_anthropic<'r>(
    body: &'r [u8],
    upstream_model: &str,
    opts: &Options,
    room: &'r Room,
    capacity: usize,
    meta: &mut RequestMeta,
    lend: bool,
) -> Result<Out<'r>, TranslateError> {
    // The conversation is translated as the body is read, one message at a time; its long
    // texts lent from the body when it outlives the translation (`lend`).
    let source = if lend { body } else { &[] };
    let mut conv = Reading::new(room, capacity, source);
    if lend {
        // A client's own body (a Responses body's Chat form, written for this request, is
        // not kept).
        conv = conv.keeping(body, opts);
    }
    let mut req = ChatRequest::read_into(body, &mut conv)?;
    // The tools in Messages form, made once per worker; read and converted here otherwise. A
    // request asking for web search has that tool written after them: converted here.
    let kept = req
        .tools_json
        .filter(|_| req.web_search_options.is_none())
        .and_then(kept::kept);
    if kept.is_none() {
        req.tools = req.read_tools(body)?;
    }
    let written = kept.as_deref().map(kept::Kept::written);
    translate(&req, conv, upstream_model, opts, meta, written.as_ref())
}

/// A thinking decision: what to send and the budget that constrains `max_tokens`.
struct ThinkingPlan<'b> {
    config: Thinking<'b>,
    budget: Option<u32>,
    /// `output_config.effort` that goes with adaptive thinking.
    effort: Option<&'static str>,
    /// Thinking actually runs (not `disabled`): sampling and tool_choice rules apply.
    on: bool,
}

pub(crate) fn translate<'b, 'r>(
    req: &'b ChatRequest<'b>,
    conv: Reading<'r>,
    upstream_model: &'b str,
    opts: &Options,
    meta: &mut RequestMeta,
    written: Option<&WrittenTools<'b>>,
) -> Result<Out<'r>, TranslateError> {
    if let Some((key, _)) = req.unknown.first() {
        return Err(TranslateError::unsupported_param(
            key.as_str(),
            format!("Unrecognized request argument supplied: {key}"),
        ));
    }
    let model = req
        .model
        .as_ref()
        .ok_or_else(|| TranslateError::invalid("model", "you must provide a model parameter"))?;
    req.messages
        .ok_or_else(|| TranslateError::invalid("messages", "`messages` is required"))?;
    reject_unsupported(req)?;
    drop_ignored(req, meta);

    meta.client_model = model.to_string();
    meta.upstream_model = upstream_model.to_owned();
    meta.stream = req.stream.unwrap_or(false);
    meta.include_usage = meta.stream
        && req
            .stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false);

    let conv = conv.finish()?;
    let mut thinking = thinking_plan(req, upstream_model, opts)?;
    if thinking.as_ref().is_some_and(|t| t.on) && conv.last_tool_turn_lacks_thinking() {
        // Anthropic rejects a tool-use continuation whose assistant turn does not start with
        // its thinking block; clients that do not echo `thinking_blocks` would fail every
        // second turn, so this turn runs without thinking (as LiteLLM does).
        thinking = None;
        meta.drop_param("reasoning_effort");
    }
    let thinking_on = thinking.as_ref().is_some_and(|t| t.on);
    if thinking_on && req.thinking.is_none() {
        // The effort went as a budget or an adaptive effort: the table's approximation.
        meta.note(Code::ThinkingConverted, "reasoning_effort");
        if let (Some(asked), Some(sent)) = (
            req.reasoning_effort.as_ref().map(|e| e.as_str()),
            thinking.as_ref().and_then(|t| t.effort),
        ) {
            if asked != sent {
                // Clamped to the model's highest effort (or `minimal` to `low`).
                meta.note(Code::ParamChanged, "reasoning_effort");
            }
        }
    }

    let mut max_tokens = req
        .max_completion_tokens
        .or(req.max_tokens)
        .unwrap_or(opts.default_max_tokens);
    if let Some(budget) = thinking.as_ref().and_then(|t| t.budget) {
        if max_tokens <= budget {
            // OpenAI's cap includes reasoning; Anthropic needs room beyond the budget.
            max_tokens = budget.saturating_add(max_tokens);
        }
    }

    // Either the tools were written already, or they are converted here: never both.
    let (mut tools, written) = match written {
        Some(w) => {
            meta.ledger.extend(w.ledger);
            (Vec::new(), w.tools)
        }
        None => (
            anthropic_tools(req.tools.as_deref(), req.web_search_options.as_ref(), meta)?,
            &[][..],
        ),
    };
    let has_tools = !tools.is_empty() || !written.is_empty();
    let mut tool_choice = convert_tool_choice(req, has_tools, thinking_on)?;
    let mut output_config = None;
    if let Some(rf) = &req.response_format {
        match rf.kind.as_str() {
            "text" => {}
            "json_schema" => {
                let schema = rf
                    .json_schema
                    .as_ref()
                    .and_then(|j| j.schema)
                    .ok_or_else(|| {
                        TranslateError::invalid(
                            "response_format.json_schema.schema",
                            "json_schema response_format needs a schema",
                        )
                    })?;
                output_config = Some(OutputConfig {
                    effort: None,
                    format: Some(OutputFormat {
                        kind: Str::from("json_schema"),
                        schema: Some(schema),
                    }),
                });
            }
            "json_object" => {
                if has_tools || thinking_on {
                    return Err(TranslateError::unsupported_value(
                        "response_format",
                        "response_format json_object cannot be combined with tools or reasoning \
                         for Anthropic models; use json_schema",
                    ));
                }
                tools.push(ATool {
                    name: Str::from(JSON_TOOL_NAME),
                    description: Some(Str::from("Respond with a JSON object.")),
                    input_schema: raw(ANY_OBJECT_SCHEMA),
                    ..ATool::default()
                });
                tool_choice = Some(AToolChoice {
                    kind: Str::from("tool"),
                    name: Some(Str::from(JSON_TOOL_NAME)),
                    disable_parallel_tool_use: None,
                });
                meta.json_tool = true;
                meta.note(Code::JsonToolForced, "response_format");
            }
            other => {
                return Err(TranslateError::unsupported_value(
                    "response_format.type",
                    format!("unsupported response_format type `{other}`"),
                ))
            }
        }
    }
    if let Some(effort) = thinking.as_ref().and_then(|t| t.effort) {
        // Merged with a structured-output `format` set above: both live in `output_config`.
        output_config
            .get_or_insert_with(OutputConfig::default)
            .effort = Some(Str::from(effort));
    }
    if !has_tools && !conv.history_tools.order.is_empty() {
        // Anthropic requires `tools` whenever the history holds tool_use/tool_result blocks;
        // declare the names used and forbid new calls, which is what "no tools" means.
        for name in &conv.history_tools.order {
            tools.push(ATool {
                name: Str::from(name.as_str()),
                description: Some(Str::from("Tool used earlier in this conversation.")),
                input_schema: raw(EMPTY_OBJECT_SCHEMA),
                ..ATool::default()
            });
        }
        tool_choice = Some(AToolChoice {
            kind: Str::from("none"),
            ..AToolChoice::default()
        });
    }

    let (temperature, top_p, top_k) = sampling(req, thinking_on, meta);
    let stop_sequences = stop_sequences(req);
    let user = req.safety_identifier.as_ref().or(req.user.as_ref());
    let metadata = match user {
        // Anthropic forbids PII in user_id; an e-mail address is not sent.
        Some(u) if !u.is_empty() && !u.contains('@') => Some(Metadata {
            user_id: Some(u.reborrow()),
        }),
        Some(_) => {
            meta.drop_param("user");
            None
        }
        None => None,
    };
    let service_tier = match req.service_tier.as_deref() {
        None => None,
        Some("auto" | "priority") => Some(Str::from("auto")),
        Some("default") => Some(Str::from("standard_only")),
        Some(_) => {
            meta.drop_param("service_tier");
            None
        }
    };

    // The conversation is written already: the other members go around it, in the order
    // `MessagesRequest` has them.
    let head = object(&MessagesRequest {
        model: Some(Str::from(upstream_model)),
        max_tokens: Some(max_tokens),
        ..MessagesRequest::default()
    })?;
    let tail = MessagesRequest {
        temperature,
        top_p,
        top_k,
        stop_sequences,
        stream: meta.stream.then_some(true),
        metadata,
        tools: (!tools.is_empty()).then_some(tools),
        tools_written: (!written.is_empty()).then(|| written.iter().map(|t| &**t).collect()),
        tool_choice,
        thinking: thinking.map(|t| t.config),
        output_config,
        service_tier,
        ..MessagesRequest::default()
    };
    let mut out = conv.messages;
    let system: &[Piece<'_, '_>] = match &conv.system {
        Some(s) => &[Piece::Bytes(b",\"system\":"), Piece::Out(s)],
        None => &[],
    };
    assemble(&mut out, &head, "messages", b"", system, &tail)?;
    drop(conv.system);
    Ok(out)
}

/// Parameters that change the answer and have no Anthropic equivalent (spec §12).
fn reject_unsupported(req: &ChatRequest<'_>) -> Result<(), TranslateError> {
    if let Some(n) = req.n {
        if n != 1 {
            return Err(TranslateError::unsupported_value(
                "n",
                "n>1 is not supported for Anthropic models",
            ));
        }
    }
    if req.logprobs == Some(true) {
        return Err(TranslateError::unsupported_param(
            "logprobs",
            "logprobs are not available for Anthropic models",
        ));
    }
    if req.top_logprobs.is_some_and(|k| k > 0) {
        return Err(TranslateError::unsupported_param(
            "top_logprobs",
            "logprobs are not available for Anthropic models",
        ));
    }
    if req
        .modalities
        .as_ref()
        .is_some_and(|m| m.iter().any(|x| x.as_str() == "audio"))
    {
        return Err(TranslateError::unsupported_value(
            "modalities",
            "audio output is not available for Anthropic models",
        ));
    }
    if req.audio.is_some() {
        return Err(TranslateError::unsupported_param(
            "audio",
            "audio output is not available for Anthropic models",
        ));
    }
    if req.functions.is_some() {
        return Err(TranslateError::unsupported_param(
            "functions",
            "legacy `functions` are not supported; use `tools`",
        ));
    }
    if req.function_call.is_some() {
        return Err(TranslateError::unsupported_param(
            "function_call",
            "legacy `function_call` is not supported; use `tool_choice`",
        ));
    }
    Ok(())
}

/// Parameters dropped with a note in the ledger (spec §12 "drop with a warning").
fn drop_ignored(req: &ChatRequest<'_>, meta: &mut RequestMeta) {
    let present: [(&'static str, bool); 10] = [
        ("seed", req.seed.is_some()),
        ("frequency_penalty", req.frequency_penalty.is_some()),
        ("presence_penalty", req.presence_penalty.is_some()),
        ("logit_bias", req.logit_bias.is_some()),
        ("metadata", req.metadata.is_some()),
        ("store", req.store.is_some()),
        ("prediction", req.prediction.is_some()),
        ("prompt_cache_key", req.prompt_cache_key.is_some()),
        (
            "prompt_cache_retention",
            req.prompt_cache_retention.is_some(),
        ),
        ("verbosity", req.verbosity.is_some()),
    ];
    for (name, is_set) in present {
        if is_set {
            meta.drop_param(name);
        }
    }
}

/// The thinking to send: the client's explicit `thinking` object as given, else one built
/// from `reasoning_effort` in the form `opts.thinking_style` picks for `upstream_model`.
fn thinking_plan<'b>(
    req: &'b ChatRequest<'_>,
    upstream_model: &str,
    opts: &Options,
) -> Result<Option<ThinkingPlan<'b>>, TranslateError> {
    if let Some(t) = &req.thinking {
        // An explicit Anthropic-style object wins over reasoning_effort (spec §9).
        let on = t.kind.as_str() != "disabled";
        let budget = (t.kind.as_str() == "enabled")
            .then_some(t.budget_tokens)
            .flatten();
        return Ok(Some(ThinkingPlan {
            config: Thinking {
                kind: t.kind.reborrow(),
                budget_tokens: t.budget_tokens,
                display: t.display.as_ref().map(Str::reborrow),
            },
            budget,
            effort: None,
            on,
        }));
    }
    let Some(effort) = &req.reasoning_effort else {
        return Ok(None);
    };
    // The table also validates the effort name for the adaptive form.
    let budget = match opts.effort_budgets.budget(effort) {
        None => {
            return Err(TranslateError::unsupported_value(
                "reasoning_effort",
                format!("unsupported reasoning_effort `{effort}`"),
            ))
        }
        Some(None) => return Ok(None),
        Some(Some(budget)) => budget.max(MIN_THINKING_BUDGET),
    };
    Ok(Some(match opts.thinking_style.resolve(upstream_model) {
        ThinkingForm::Adaptive => ThinkingPlan {
            config: Thinking {
                kind: Str::from("adaptive"),
                budget_tokens: None,
                display: None,
            },
            // Adaptive thinking shares `max_tokens` with the answer: no budget to make room for.
            budget: None,
            effort: Some(adaptive_effort(effort, generation(upstream_model))),
            on: true,
        },
        ThinkingForm::Budget => ThinkingPlan {
            config: Thinking {
                kind: Str::from("enabled"),
                budget_tokens: Some(budget),
                display: None,
            },
            budget: Some(budget),
            effort: None,
            on: true,
        },
    }))
}

/// `output_config.effort` for a known, non-`none` OpenAI effort: Anthropic has no `minimal`,
/// and models older than the effort they are asked for get their highest one below it.
fn adaptive_effort(effort: &str, generation: Generation) -> &'static str {
    match effort {
        "minimal" | "low" => "low",
        "medium" => "medium",
        "xhigh" if generation == Generation::AdaptiveOnly => "xhigh",
        "max" if generation != Generation::BudgetOnly => "max",
        _ => "high",
    }
}

/// Sampling parameters under Anthropic's ranges and thinking rules (spec §3, §9).
fn sampling(
    req: &ChatRequest<'_>,
    thinking_on: bool,
    meta: &mut RequestMeta,
) -> (Option<f64>, Option<f64>, Option<u32>) {
    let temperature = match req.temperature {
        Some(t) if thinking_on => {
            if t != 1.0 {
                meta.drop_param("temperature");
            }
            None
        }
        // Anthropic's range is 0–1.
        Some(t) => Some(t.min(1.0)),
        None => None,
    };
    let top_p = match req.top_p {
        Some(p) if thinking_on => {
            if p < 0.95 {
                meta.note(Code::ParamChanged, "top_p");
            }
            Some(p.clamp(0.95, 1.0))
        }
        other => other,
    };
    let top_k = match req.top_k {
        Some(_) if thinking_on => {
            meta.drop_param("top_k");
            None
        }
        other => other,
    };
    (temperature, top_p, top_k)
}

fn stop_sequences<'b>(req: &'b ChatRequest<'_>) -> Option<Vec<Str<'b>>> {
    let list: Vec<Str<'b>> = match req.stop.as_ref()? {
        TextOr::Text(s) => vec![s.reborrow()],
        TextOr::Items(v) => v.iter().map(Str::reborrow).collect(),
    };
    // Anthropic rejects whitespace-only stop sequences.
    let list: Vec<Str<'b>> = list.into_iter().filter(|s| !s.is_blank()).collect();
    (!list.is_empty()).then_some(list)
}

fn convert_tool_choice<'b>(
    req: &'b ChatRequest<'_>,
    has_tools: bool,
    thinking_on: bool,
) -> Result<Option<AToolChoice<'b>>, TranslateError> {
    let disable_parallel = (req.parallel_tool_calls == Some(false)).then_some(true);
    let choice = match &req.tool_choice {
        None => {
            return Ok(
                (has_tools && disable_parallel.is_some()).then(|| AToolChoice {
                    kind: Str::from("auto"),
                    name: None,
                    disable_parallel_tool_use: disable_parallel,
                }),
            )
        }
        Some(ToolChoice::Mode(m)) => match m.as_str() {
            "auto" => AToolChoice {
                kind: Str::from("auto"),
                name: None,
                disable_parallel_tool_use: disable_parallel,
            },
            "none" => AToolChoice {
                kind: Str::from("none"),
                name: None,
                disable_parallel_tool_use: None,
            },
            "required" => AToolChoice {
                kind: Str::from("any"),
                name: None,
                disable_parallel_tool_use: disable_parallel,
            },
            other => {
                return Err(TranslateError::unsupported_value(
                    "tool_choice",
                    format!("unsupported tool_choice `{other}`"),
                ))
            }
        },
        Some(ToolChoice::Object(o)) => match (o.kind.as_str(), &o.function) {
            ("function", Some(f)) => AToolChoice {
                kind: Str::from("tool"),
                name: Some(f.name.reborrow()),
                disable_parallel_tool_use: disable_parallel,
            },
            ("function", None) => {
                return Err(TranslateError::invalid(
                    "tool_choice.function",
                    "tool_choice function needs a name",
                ))
            }
            (other, _) => {
                return Err(TranslateError::unsupported_value(
                    "tool_choice.type",
                    format!("tool_choice type `{other}` is not supported for Anthropic models"),
                ))
            }
        },
    };
    let forced = matches!(choice.kind.as_str(), "any" | "tool");
    if !has_tools {
        if forced {
            return Err(TranslateError::invalid(
                "tool_choice",
                "tool_choice requires `tools`",
            ));
        }
        return Ok(None);
    }
    if forced && thinking_on {
        return Err(TranslateError::unsupported_value(
            "tool_choice",
            "forcing a tool call cannot be combined with reasoning for Anthropic models; use \"auto\"",
        ));
    }
    Ok(Some(choice))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    User,
    Assistant,
}

/// Names in first-seen order, with a set for membership: a history may hold very many tool
/// calls (bounded only by the body size), and each one asks whether its name is new.
#[derive(Default, Clone)]
struct OrderedNames {
    order: Vec<String>,
    seen: std::collections::HashSet<String>,
}

impl OrderedNames {
    fn insert(&mut self, name: &str) {
        if !self.seen.contains(name) {
            self.seen.insert(name.to_owned());
            self.order.push(name.to_owned());
        }
    }
}

/// The converted conversation.
struct Conversation<'r> {
    /// The `system` value, written (a string or an array of text blocks).
    system: Option<Out<'r>>,
    /// The `messages` array, written.
    messages: Out<'r>,
    /// Distinct tool names used by assistant tool calls in the history.
    history_tools: OrderedNames,
    /// The last assistant turn calls tools but does not open with a thinking block.
    last_tool_turn_unsigned: bool,
}

impl Conversation<'_> {
    fn last_tool_turn_lacks_thinking(&self) -> bool {
        self.last_tool_turn_unsigned
    }
}

fn text_block<'b>(text: &'b Str<'_>, cache_control: Option<&'b RawValue>) -> ContentBlock<'b> {
    ContentBlock {
        kind: Str::from("text"),
        text: Some(text.reborrow()),
        cache_control,
        ..ContentBlock::default()
    }
}

fn is_thinking(b: &ContentBlock<'_>) -> bool {
    matches!(b.kind.as_str(), "thinking" | "redacted_thinking")
}

/// A lone plain text block is written as a string (the shorter, equivalent form).
fn is_plain_text(b: &ContentBlock<'_>) -> bool {
    b.kind.as_str() == "text" && b.cache_control.is_none() && b.citations.is_none()
}

/// A list of content blocks written as they come, each followed by a comma. Blocks that must
/// open the list (tool results in a user turn, thinking in an assistant turn) but come after
/// others are kept aside and put in front of those when the list ends: the written turn is as
/// the whole turn, stably sorted, would be.
#[derive(Clone)]
struct Blocks {
    /// Where the list's value starts (its `[`).
    start: usize,
    /// Where the first block that does not open the list starts, once there is one.
    first_other: Option<usize>,
    count: usize,
    /// The only block so far is plain text: where its JSON string is.
    plain: Option<(usize, usize)>,
    tool_use: bool,
    thinking: bool,
}

impl Blocks {
    fn open(out: &mut Out<'_>) -> Result<Blocks, TranslateError> {
        let start = out.len();
        out.byte(b'[')?;
        Ok(Blocks {
            start,
            first_other: None,
            count: 0,
            plain: None,
            tool_use: false,
            thinking: false,
        })
    }

    /// Writes `b`; `first`: it belongs before the list's other blocks.
    fn push(
        &mut self,
        out: &mut Out<'_>,
        late: &mut Out<'_>,
        b: &ContentBlock<'_>,
        first: bool,
    ) -> Result<(), TranslateError> {
        self.tool_use |= b.kind.as_str() == "tool_use";
        self.thinking |= is_thinking(b);
        if first && self.first_other.is_some() {
            write_block(late, b)?;
            late.byte(b',')?;
            self.count += 1;
            return Ok(());
        }
        if !first && self.first_other.is_none() {
            self.first_other = Some(out.len());
        }
        match (is_plain_text(b), b.text.as_ref(), self.count) {
            (true, Some(text), 0) => {
                out.put(br#"{"type":"text","text":"#)?;
                let from = out.len();
                write_str(out, text)?;
                self.plain = Some((from, out.len()));
                out.put(b"},")?;
            }
            _ => {
                write_block(out, b)?;
                out.byte(b',')?;
            }
        }
        self.count += 1;
        Ok(())
    }

    /// Ends the list: the blocks kept aside go in front of the others; a lone plain text
    /// block becomes its string.
    fn close(self, out: &mut Out<'_>, late: &mut Out<'_>) -> Result<(), TranslateError> {
        if late.len() > 0 {
            let at = self.first_other.unwrap_or(out.len());
            out.insert(at, late.bytes()?)?;
            late.clear();
        }
        if let (1, Some((from, to))) = (self.count, self.plain) {
            // The string alone, where the list began.
            out.truncate(to);
            return out.remove(self.start, from);
        }
        if self.count > 0 {
            // The last block's comma.
            out.pop();
        }
        out.byte(b']')
    }
}

/// `b` as `out.json(b)` writes it, member by member in the order serde writes them: a
/// conversation's blocks are most of what it writes, and serde's way through their many
/// optional members cost more than the writing (every member is named here, so a new one
/// is a compile error until it is written).
fn write_block(out: &mut Out<'_>, b: &ContentBlock<'_>) -> Result<(), TranslateError> {
    let ContentBlock {
        kind,
        text,
        source,
        id,
        name,
        input,
        tool_use_id,
        content,
        is_error,
        thinking,
        signature,
        data,
        title,
        context,
        citations,
        cache_control,
        caller,
        tool_name,
    } = b;
    out.put(b"{\"type\":")?;
    write_str(out, kind)?;
    let strings = |out: &mut Out<'_>, at: &[(&[u8], &Option<Str<'_>>)]| {
        for (key, value) in at {
            if let Some(v) = value {
                out.put(key)?;
                write_str(out, v)?;
            }
        }
        Ok::<(), TranslateError>(())
    };
    let raw = |out: &mut Out<'_>, key: &[u8], value: &Option<&RawValue>| {
        if let Some(v) = value {
            out.put(key)?;
            out.put(v.get().as_bytes())?;
        }
        Ok::<(), TranslateError>(())
    };
    strings(out, &[(b",\"text\":", text)])?;
    if let Some(s) = source {
        out.put(b",\"source\":")?;
        out.json(s)?;
    }
    strings(out, &[(b",\"id\":", id), (b",\"name\":", name)])?;
    raw(out, b",\"input\":", input)?;
    strings(out, &[(b",\"tool_use_id\":", tool_use_id)])?;
    match content {
        None => {}
        Some(TextOr::Text(t)) => {
            out.put(b",\"content\":")?;
            write_str(out, t)?;
        }
        Some(TextOr::Items(blocks)) => {
            out.put(b",\"content\":[")?;
            for (k, inner) in blocks.iter().enumerate() {
                if k > 0 {
                    out.byte(b',')?;
                }
                write_block(out, inner)?;
            }
            out.byte(b']')?;
        }
    }
    if let Some(e) = is_error {
        out.put(if *e {
            b",\"is_error\":true".as_slice()
        } else {
            b",\"is_error\":false"
        })?;
    }
    strings(
        out,
        &[
            (b",\"thinking\":", thinking),
            (b",\"signature\":", signature),
            (b",\"data\":", data),
            (b",\"title\":", title),
            (b",\"context\":", context),
        ],
    )?;
    raw(out, b",\"citations\":", citations)?;
    raw(out, b",\"cache_control\":", cache_control)?;
    raw(out, b",\"caller\":", caller)?;
    strings(out, &[(b",\"tool_name\":", tool_name)])?;
    out.byte(b'}')
}

/// `s` as `out.json(s)` writes it: a string kept as written is its literal; a short text with
/// nothing to escape (a block's type, a tool id) is what serde_json writes for it, in the same
/// three writes (a quote, the text, a quote), without its walk of the text a byte at a time.
fn write_str(out: &mut Out<'_>, s: &Str<'_>) -> Result<(), TranslateError> {
    if let Some(literal) = s.literal() {
        return out.put(literal.as_bytes());
    }
    let text = s.as_str();
    if text.len() >= crate::wire::ESCAPE_HERE_MIN
        || crate::json::first_to_escape(text.as_bytes()).is_some()
    {
        return out.json(s);
    }
    out.byte(b'"')?;
    if !text.is_empty() {
        out.put(text.as_bytes())?;
    }
    out.byte(b'"')
}

/// The open turn: its role and its blocks.
#[derive(Clone)]
struct Turn {
    role: Role,
    blocks: Blocks,
}

/// The conversation as it is written: Anthropic turns (consecutive messages of one side
/// merged), each block written as soon as its message is read.
struct Writer<'r> {
    messages: Out<'r>,
    system: Out<'r>,
    system_blocks: Option<Blocks>,
    /// Blocks kept aside while a turn or the system list is written (see [`Blocks`]).
    late: Out<'r>,
    turn: Option<Turn>,
    any_turn: bool,
    history_tools: OrderedNames,
    last_tool_turn_unsigned: bool,
}

impl<'r> Writer<'r> {
    fn push(&mut self, role: Role, blocks: &[ContentBlock<'_>]) -> Result<(), TranslateError> {
        if blocks.is_empty() {
            return Ok(()); // empty messages are rejected upstream; merging around them is harmless
        }
        if self.turn.as_ref().is_some_and(|t| t.role != role) {
            self.close_turn()?;
        }
        let turn = match &mut self.turn {
            Some(t) => t,
            None => {
                if !self.any_turn && role == Role::Assistant {
                    // Anthropic conversations start with a user turn.
                    self.messages.put(br#"{"role":"user","content":"#)?;
                    self.messages.json(FIRST_TURN_PLACEHOLDER)?;
                    self.messages.put(b"},")?;
                }
                self.any_turn = true;
                self.messages.put(match role {
                    Role::User => br#"{"role":"user","content":"#.as_slice(),
                    Role::Assistant => br#"{"role":"assistant","content":"#.as_slice(),
                })?;
                let blocks = Blocks::open(&mut self.messages)?;
                self.turn.insert(Turn { role, blocks })
            }
        };
        // Anthropic ordering rules inside one turn: tool results first in a user turn,
        // thinking first in an assistant turn (stable, so everything else keeps its order).
        for b in blocks {
            let first = match role {
                Role::User => b.kind.as_str() == "tool_result",
                Role::Assistant => is_thinking(b),
            };
            turn.blocks
                .push(&mut self.messages, &mut self.late, b, first)?;
        }
        Ok(())
    }

    fn close_turn(&mut self) -> Result<(), TranslateError> {
        let Some(t) = self.turn.take() else {
            return Ok(());
        };
        if t.role == Role::Assistant {
            self.last_tool_turn_unsigned = t.blocks.tool_use && !t.blocks.thinking;
        }
        t.blocks.close(&mut self.messages, &mut self.late)?;
        self.messages.put(b"},")
    }

    fn system(&mut self, blocks: &[ContentBlock<'_>]) -> Result<(), TranslateError> {
        if blocks.is_empty() {
            return Ok(());
        }
        let list = match &mut self.system_blocks {
            Some(l) => l,
            None => {
                let l = Blocks::open(&mut self.system)?;
                self.system_blocks.insert(l)
            }
        };
        for b in blocks {
            list.push(&mut self.system, &mut self.late, b, false)?;
        }
        Ok(())
    }

    /// System blocks that go before those written already (a Responses request's
    /// `instructions`, known only once its body is read).
    fn system_first(&mut self, blocks: &[ContentBlock<'_>]) -> Result<(), TranslateError> {
        let Some(list) = self.system_blocks.as_mut().filter(|_| !blocks.is_empty()) else {
            return self.system(blocks);
        };
        let mut front = Vec::new();
        for b in blocks {
            front.extend_from_slice(&object(b)?);
            front.push(b',');
        }
        self.system.insert(list.start + 1, &front)?;
        // Two blocks at least now: the list stays a list.
        list.count += blocks.len();
        list.plain = None;
        list.first_other = list.first_other.map(|at| at + front.len());
        Ok(())
    }

    /// What it wrote and where it is, to go on from with a later body whose conversation
    /// opens with the same elements (see `conversations`): None when a span it lends lies
    /// outside `base..end` of the body (those elements' bytes).
    fn kept(&self, base: usize, end: usize) -> Option<KeptWriter> {
        Some(KeptWriter {
            messages: self.messages.kept(base, end)?,
            system: self.system.kept(base, end)?,
            late: self.late.kept(base, end)?,
            system_blocks: self.system_blocks.clone(),
            turn: self.turn.clone(),
            any_turn: self.any_turn,
            history_tools: self.history_tools.clone(),
            last_tool_turn_unsigned: self.last_tool_turn_unsigned,
        })
    }

    /// Goes on from `kept`, the elements it was kept after starting at `base` of this body.
    fn resume(&mut self, kept: &KeptWriter, base: usize) -> Result<(), TranslateError> {
        self.messages.resume(&kept.messages, base)?;
        self.system.resume(&kept.system, base)?;
        self.late.resume(&kept.late, base)?;
        self.system_blocks.clone_from(&kept.system_blocks);
        self.turn.clone_from(&kept.turn);
        self.any_turn = kept.any_turn;
        self.history_tools.clone_from(&kept.history_tools);
        self.last_tool_turn_unsigned = kept.last_tool_turn_unsigned;
        Ok(())
    }

    fn finish(mut self) -> Result<Conversation<'r>, TranslateError> {
        self.close_turn()?;
        if !self.any_turn {
            return Err(TranslateError::invalid(
                "messages",
                "messages must contain at least one non-empty user or assistant message",
            ));
        }
        let system = match self.system_blocks.take() {
            Some(l) => {
                l.close(&mut self.system, &mut self.late)?;
                Some(self.system)
            }
            None => None,
        };
        Ok(Conversation {
            system,
            messages: self.messages,
            history_tools: self.history_tools,
            last_tool_turn_unsigned: self.last_tool_turn_unsigned,
        })
    }
}

/// A [`Writer`] kept after a conversation's elements (see `conversations`).
pub(crate) struct KeptWriter {
    messages: KeptOut,
    system: KeptOut,
    late: KeptOut,
    system_blocks: Option<Blocks>,
    turn: Option<Turn>,
    any_turn: bool,
    history_tools: OrderedNames,
    last_tool_turn_unsigned: bool,
}

impl KeptWriter {
    pub(crate) fn weight(&self) -> usize {
        let names: usize = self.history_tools.order.iter().map(|n| 2 * n.len()).sum();
        self.messages.weight() + self.system.weight() + self.late.weight() + names
    }
}

thread_local! {
    /// Chat conversations this thread translated last (see `conversations`).
    static CONVERSATIONS: Store<KeptWriter> = const { RefCell::new(Vec::new()) };
}

/// The conversation being translated as the body is read: the first message that cannot be
/// translated stops the writing (its error is given where the typed translation gave it; the
/// rest of the body is still read, for the errors a read gives first).
pub(crate) struct Reading<'r> {
    w: Writer<'r>,
    error: Option<TranslateError>,
    /// Where a Chat client's conversation is, to go on from a kept one and keep it.
    keeping: Option<Keeping<'r, KeptWriter>>,
}

impl<'r> Reading<'r> {
    /// An empty conversation whose `messages` buffer is first sized to `capacity`.
    /// Long texts read from `source` are lent from it (none when it is empty).
    pub(crate) fn new(room: &'r Room, capacity: usize, source: &'r [u8]) -> Self {
        let w = Writer {
            // The members before the conversation: the model and `max_tokens`.
            messages: Out::with_front(room, capacity, MESSAGES_FRONT_ROOM).lending(source),
            system: Out::with_capacity(room, 0).lending(source),
            system_blocks: None,
            late: Out::with_capacity(room, 0),
            turn: None,
            any_turn: false,
            history_tools: OrderedNames::default(),
            last_tool_turn_unsigned: false,
        };
        Reading {
            w,
            error: None,
            keeping: None,
        }
    }

    /// Goes on from the state kept after an earlier request's conversation when `body`'s
    /// opens with the same elements, and keeps its own (see `conversations`).
    pub(crate) fn keeping(mut self, body: &'r [u8], opts: &Options) -> Self {
        self.keeping = Keeping::new(body, opts, self.w.messages.lends_from());
        self
    }

    /// Chat message `i` (its tool calls numbered from `first_call`: a Responses assistant
    /// message is handed over in pieces as its items come).
    pub(crate) fn feed(&mut self, i: usize, first_call: usize, m: &Message<'_>) {
        if self.error.is_none() {
            self.error = message(&mut self.w, i, first_call, m).err();
        }
    }

    /// A system message that goes before every other (see [`Writer::system_first`]).
    pub(crate) fn system_first(&mut self, i: usize, m: &Message<'_>) {
        if self.error.is_none() {
            self.error = text_only_blocks(m, i, "system")
                .and_then(|blocks| self.w.system_first(&blocks))
                .err();
        }
    }

    /// Could a message not be translated?
    pub(crate) fn failed(&self) -> bool {
        self.error.is_some()
    }

    /// What it wrote and where it is (none when a message could not be translated): for a
    /// Responses conversation handed on here to be kept (see `conversations`).
    pub(crate) fn kept(&self, base: usize, end: usize) -> Option<KeptWriter> {
        if self.failed() {
            return None;
        }
        self.w.kept(base, end)
    }

    /// The shortest write its conversation's buffer lends (see `Out::lends_from`).
    pub(crate) fn lends_from(&self) -> usize {
        self.w.messages.lends_from()
    }

    /// Goes on from `kept` (see [`Reading::kept`]), its elements starting at `base`.
    pub(crate) fn resume_kept(
        &mut self,
        kept: &KeptWriter,
        base: usize,
    ) -> Result<(), TranslateError> {
        self.w.resume(kept, base)
    }

    /// The conversation, or why it could not be translated.
    fn finish(self) -> Result<Conversation<'r>, TranslateError> {
        match self.error {
            Some(e) => Err(e),
            None => self.w.finish(),
        }
    }
}

impl<'b> Sink<'b, Message<'b>> for Reading<'_> {
    fn element(&mut self, i: usize, m: Message<'b>) {
        self.feed(i, 0, &m);
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
            |r, kept, base| r.w.resume(kept, base),
            Sink::<Message<'b>>::restart,
        )
    }

    fn end(&mut self, count: usize) {
        if self.error.is_none() {
            end_sink(
                self,
                |r| &mut r.keeping,
                &CONVERSATIONS,
                count,
                KeptWriter::weight,
                |r, base, end| r.w.kept(base, end),
            );
        }
    }

    fn restart(&mut self) {
        let w = &mut self.w;
        for out in [&mut w.messages, &mut w.system, &mut w.late] {
            out.clear();
        }
        w.system_blocks = None;
        w.turn = None;
        w.any_turn = false;
        w.history_tools = OrderedNames::default();
        w.last_tool_turn_unsigned = false;
        self.error = None;
        if let Some(k) = &mut self.keeping {
            k.restart();
        }
    }
}

/// One Chat message into the conversation.
fn message(
    w: &mut Writer<'_>,
    i: usize,
    first_call: usize,
    m: &Message<'_>,
) -> Result<(), TranslateError> {
    match m.role.as_str() {
        "system" | "developer" => {
            let mut blocks = text_only_blocks(m, i, "system")?;
            apply_message_cache_control(&mut blocks, m.cache_control);
            w.system(&blocks)
        }
        "user" => {
            let mut blocks = user_blocks(m, i)?;
            apply_message_cache_control(&mut blocks, m.cache_control);
            w.push(Role::User, &blocks)
        }
        "assistant" => {
            let mut blocks = assistant_blocks(m, i, first_call, &mut w.history_tools)?;
            apply_message_cache_control(&mut blocks, m.cache_control);
            w.push(Role::Assistant, &blocks)
        }
        "tool" => {
            let block = tool_result_block(m, i)?;
            w.push(Role::User, &[block])
        }
        "function" => Err(TranslateError::unsupported_value(
            format!("messages[{i}].role"),
            "legacy `function` messages are not supported; use `tool` messages",
        )),
        other => Err(TranslateError::invalid(
            format!("messages[{i}].role"),
            format!("unknown role `{other}`"),
        )),
    }
}

/// LiteLLM-style `cache_control` on a whole message marks its last block.
fn apply_message_cache_control<'b>(blocks: &mut [ContentBlock<'b>], cc: Option<&'b RawValue>) {
    if let (Some(cc), Some(last)) = (cc, blocks.last_mut()) {
        last.cache_control = Some(cc);
    }
}

/// System/developer (and tool) content: text only.
fn text_only_blocks<'b>(
    m: &'b Message<'_>,
    i: usize,
    what: &str,
) -> Result<Vec<ContentBlock<'b>>, TranslateError> {
    let mut out = Vec::new();
    match &m.content {
        Some(TextOr::Text(s)) if !s.is_blank() => out.push(text_block(s, None)),
        None | Some(TextOr::Text(_)) => {}
        Some(TextOr::Items(parts)) => {
            for (j, p) in parts.iter().enumerate() {
                if p.kind.as_str() != "text" {
                    return Err(TranslateError::unsupported_value(
                        format!("messages[{i}].content[{j}].type"),
                        format!("{what} messages may only contain text parts"),
                    ));
                }
                if let Some(t) = p.text.as_ref().filter(|t| !t.is_blank()) {
                    out.push(text_block(t, p.cache_control));
                }
            }
        }
    }
    Ok(out)
}

fn user_blocks<'b>(m: &'b Message<'_>, i: usize) -> Result<Vec<ContentBlock<'b>>, TranslateError> {
    let parts = match &m.content {
        None => return Ok(Vec::new()),
        Some(TextOr::Text(s)) => {
            return Ok(if s.is_blank() {
                Vec::new()
            } else {
                vec![text_block(s, None)]
            });
        }
        Some(TextOr::Items(parts)) => parts,
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, p) in parts.iter().enumerate() {
        if let Some(b) = user_part(p, i, j)? {
            out.push(b);
        }
    }
    Ok(out)
}

fn user_part<'b>(
    p: &'b ContentPart<'_>,
    i: usize,
    j: usize,
) -> Result<Option<ContentBlock<'b>>, TranslateError> {
    let at = |field: &str| format!("messages[{i}].content[{j}]{field}");
    let block = match p.kind.as_str() {
        "text" => match p.text.as_ref().filter(|t| !t.is_blank()) {
            Some(t) => text_block(t, p.cache_control),
            None => return Ok(None),
        },
        "image_url" => {
            let url = p
                .image_url
                .as_ref()
                .map(|u| u.url.as_str())
                .ok_or_else(|| {
                    TranslateError::invalid(
                        at(".image_url"),
                        "image_url part needs `image_url.url`",
                    )
                })?;
            media_block(url, None, &at(".image_url.url"))?
        }
        "file" => {
            let f = p.file.as_ref().ok_or_else(|| {
                TranslateError::invalid(at(".file"), "file part needs a `file` object")
            })?;
            if f.file_id.is_some() {
                return Err(TranslateError::unsupported_param(
                    at(".file.file_id"),
                    "OpenAI file ids cannot be resolved by Anthropic models; send file_data",
                ));
            }
            let data = f.file_data.as_ref().ok_or_else(|| {
                TranslateError::invalid(at(".file.file_data"), "file part needs `file_data`")
            })?;
            let title = f.filename.as_ref().map(Str::reborrow);
            if parse_data_url(data).is_some() {
                media_block(data, title, &at(".file.file_data"))?
            } else {
                // Bare base64: OpenAI's file parts carry PDFs.
                document_base64("application/pdf", data, title)
            }
        }
        "input_audio" => {
            return Err(TranslateError::unsupported_value(
                at(".type"),
                "audio input is not supported for Anthropic models",
            ))
        }
        other => {
            return Err(TranslateError::unsupported_value(
                at(".type"),
                format!("unsupported content part type `{other}`"),
            ))
        }
    };
    Ok(Some(ContentBlock {
        cache_control: p.cache_control,
        ..block
    }))
}

fn document_base64<'b>(mime: &str, data: &'b str, title: Option<Str<'b>>) -> ContentBlock<'b> {
    ContentBlock {
        kind: Str::from("document"),
        source: Some(Box::new(Source {
            kind: Str::from("base64"),
            media_type: Some(Str::from(mime.to_owned())),
            data: Some(Str::from(data)),
            ..Source::default()
        })),
        title,
        ..ContentBlock::default()
    }
}

/// An image or document block for a URL (data URL or http(s)).
fn media_block<'b>(
    url: &'b str,
    title: Option<Str<'b>>,
    param: &str,
) -> Result<ContentBlock<'b>, TranslateError> {
    if let Some(d) = parse_data_url(url) {
        if !d.base64 && d.mime != "text/plain" {
            return Err(TranslateError::invalid(
                param,
                "data URLs must be base64-encoded",
            ));
        }
        let mime = d.mime.as_ref();
        if is_anthropic_image_mime(mime) && d.base64 {
            return Ok(ContentBlock {
                kind: Str::from("image"),
                source: Some(Box::new(Source {
                    kind: Str::from("base64"),
                    media_type: Some(Str::from(mime.to_owned())),
                    data: Some(Str::from(d.data)),
                    ..Source::default()
                })),
                ..ContentBlock::default()
            });
        }
        if mime == "application/pdf" && d.base64 {
            return Ok(document_base64(mime, d.data, title));
        }
        if mime == "text/plain" {
            let text = if d.base64 {
                decode_base64(d.data)
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        TranslateError::invalid(param, "text/plain data is not valid base64 UTF-8")
                    })?
            } else {
                d.data.to_owned()
            };
            return Ok(ContentBlock {
                kind: Str::from("document"),
                source: Some(Box::new(Source {
                    kind: Str::from("text"),
                    media_type: Some(Str::from("text/plain")),
                    data: Some(Str::from(text)),
                    ..Source::default()
                })),
                title,
                ..ContentBlock::default()
            });
        }
        return Err(TranslateError::unsupported_value(
            param,
            format!("media type `{mime}` is not supported for Anthropic models (jpeg, png, gif, webp, pdf, text/plain)"),
        ));
    }
    if is_http_url(url) {
        return Ok(ContentBlock {
            kind: Str::from("image"),
            source: Some(Box::new(Source {
                kind: Str::from("url"),
                url: Some(Str::from(url)),
                ..Source::default()
            })),
            ..ContentBlock::default()
        });
    }
    Err(TranslateError::invalid(
        param,
        "expected an http(s) URL or a base64 data URL",
    ))
}

fn assistant_blocks<'m>(
    m: &'m Message<'_>,
    i: usize,
    first_call: usize,
    history_tools: &mut OrderedNames,
) -> Result<Vec<ContentBlock<'m>>, TranslateError> {
    if m.function_call.is_some() {
        return Err(TranslateError::unsupported_param(
            format!("messages[{i}].function_call"),
            "legacy `function_call` is not supported; use `tool_calls`",
        ));
    }
    let mut out = Vec::new();
    // Thinking blocks echoed back by the client (extension), verbatim and first.
    for b in m.thinking_blocks.iter().flatten() {
        match b.kind.as_str() {
            "thinking" => {
                // An unsigned block cannot be replayed (Anthropic rejects it).
                if let Some(sig) = b.signature.as_ref().filter(|s| !s.is_empty()) {
                    out.push(ContentBlock {
                        kind: Str::from("thinking"),
                        thinking: Some(b.thinking.as_ref().map_or(Str::from(""), Str::reborrow)),
                        signature: Some(sig.reborrow()),
                        ..ContentBlock::default()
                    });
                }
            }
            "redacted_thinking" => {
                if let Some(data) = &b.data {
                    out.push(ContentBlock {
                        kind: Str::from("redacted_thinking"),
                        data: Some(data.reborrow()),
                        ..ContentBlock::default()
                    });
                }
            }
            _ => {}
        }
    }
    match &m.content {
        Some(TextOr::Text(s)) if !s.is_blank() => out.push(text_block(s, None)),
        None | Some(TextOr::Text(_)) => {}
        Some(TextOr::Items(parts)) => {
            for (j, p) in parts.iter().enumerate() {
                let text = match p.kind.as_str() {
                    "text" => p.text.as_ref(),
                    "refusal" => p.refusal.as_ref(),
                    other => {
                        return Err(TranslateError::unsupported_value(
                            format!("messages[{i}].content[{j}].type"),
                            format!("assistant content part `{other}` is not supported"),
                        ))
                    }
                };
                if let Some(t) = text.filter(|t| !t.is_blank()) {
                    out.push(text_block(t, p.cache_control));
                }
            }
        }
    }
    if let Some(r) = m.refusal.as_ref().filter(|r| !r.is_blank()) {
        out.push(text_block(r, None));
    }
    for (j, call) in (first_call..).zip(m.tool_calls.iter().flatten()) {
        let f = call.function.as_ref();
        let name = f.and_then(|f| f.name.as_ref()).ok_or_else(|| {
            TranslateError::invalid(
                format!("messages[{i}].tool_calls[{j}].function.name"),
                "tool call needs a function name",
            )
        })?;
        let id = call.id.as_ref().ok_or_else(|| {
            TranslateError::invalid(
                format!("messages[{i}].tool_calls[{j}].id"),
                "tool call needs an id",
            )
        })?;
        let input = arguments_to_input(f.and_then(|f| f.arguments.as_deref())).map_err(|p| {
            let why = match p {
                ArgumentsProblem::NotJson => "is not valid JSON".to_owned(),
                ArgumentsProblem::NotObject(kind) => format!("is {kind}, not a JSON object"),
            };
            TranslateError::invalid(
                format!("messages[{i}].tool_calls[{j}].function.arguments"),
                format!(
                    "messages[{i}]: tool call {j} (id {:?}): `function.arguments` {why}; \
                     a tool call's arguments must be a JSON object (or \"\" for none)",
                    id.as_str()
                ),
            )
        })?;
        history_tools.insert(name);
        out.push(ContentBlock {
            kind: Str::from("tool_use"),
            id: Some(Str::from(sanitize_tool_id(id))),
            name: Some(name.reborrow()),
            input: Some(input),
            ..ContentBlock::default()
        });
    }
    Ok(out)
}

fn tool_result_block<'b>(m: &'b Message<'_>, i: usize) -> Result<ContentBlock<'b>, TranslateError> {
    let id = m.tool_call_id.as_ref().ok_or_else(|| {
        TranslateError::invalid(
            format!("messages[{i}].tool_call_id"),
            "tool messages need tool_call_id",
        )
    })?;
    let content = match &m.content {
        None => None,
        Some(TextOr::Text(s)) => (!s.is_empty()).then(|| TextOr::Text(s.reborrow())),
        Some(TextOr::Items(_)) => {
            let blocks = text_only_blocks(m, i, "tool")?;
            (!blocks.is_empty()).then_some(TextOr::Items(blocks))
        }
    };
    Ok(ContentBlock {
        kind: Str::from("tool_result"),
        tool_use_id: Some(Str::from(sanitize_tool_id(id))),
        content,
        cache_control: m.cache_control,
        ..ContentBlock::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::ThinkingStyle;
    use serde_json::{json, Value};

    fn run(req: Value) -> Result<(Value, RequestMeta), TranslateError> {
        run_for("claude-x", &Options::default(), req)
    }

    fn run_for(
        model: &str,
        opts: &Options,
        req: Value,
    ) -> Result<(Value, RequestMeta), TranslateError> {
        let body = serde_json::to_vec(&req).unwrap();
        openai_to_anthropic_request(&body, model, opts)
            .map(|(b, m)| (serde_json::from_slice(&b).unwrap(), m))
    }

    #[test]
    fn blocks_are_written_as_serde_writes_them() {
        let body = r#"{"a":"plain","b":"esc\"aped\n","c":{"x":[1,2]},"d":"\u00e9t\u00e9"}"#;
        let v: std::collections::BTreeMap<&str, &RawValue> = serde_json::from_str(body).unwrap();
        let lit = |k: &str| crate::wire::Str::of_token(v[k].get()).unwrap();
        let owned = |t: &str| Str::from(t.to_owned());
        let raw = |k: &str| Some(v[k]);
        let inner = ContentBlock {
            kind: Str::from("text"),
            text: Some(lit("b")),
            cache_control: raw("c"),
            ..ContentBlock::default()
        };
        let blocks = [
            ContentBlock::default(),
            inner.clone(),
            ContentBlock {
                kind: lit("a"),
                text: Some(owned("new\nline \"q\" \u{1} é")),
                source: Some(Box::new(Source {
                    kind: Str::from("base64"),
                    data: Some(lit("a")),
                    ..Source::default()
                })),
                id: Some(owned("toolu_1")),
                name: Some(lit("a")),
                input: raw("c"),
                tool_use_id: Some(lit("d")),
                content: Some(TextOr::Items(vec![inner.clone(), ContentBlock::default()])),
                is_error: Some(true),
                thinking: Some(lit("b")),
                signature: Some(owned("s")),
                data: Some(owned(&"long ".repeat(40))),
                title: Some(lit("a")),
                context: Some(lit("b")),
                citations: raw("c"),
                cache_control: raw("c"),
                caller: raw("c"),
                tool_name: Some(owned("t")),
            },
            ContentBlock {
                kind: Str::from("tool_result"),
                tool_use_id: Some(owned("x")),
                content: Some(TextOr::Text(lit("b"))),
                is_error: Some(false),
                ..ContentBlock::default()
            },
            ContentBlock {
                kind: Str::from("tool_result"),
                content: Some(TextOr::Items(Vec::new())),
                ..ContentBlock::default()
            },
            // Short texts written by hand at the edges: empty, 63 and 64 bytes, a byte that
            // is not escaped (DEL), one that is (a tab), a backslash.
            ContentBlock {
                kind: owned(""),
                id: Some(owned(&"i".repeat(63))),
                name: Some(owned(&"n".repeat(64))),
                text: Some(owned("del \u{7f} é")),
                tool_name: Some(owned("back\\slash")),
                signature: Some(owned("tab\t")),
                ..ContentBlock::default()
            },
        ];
        let room = Room::unlimited();
        for b in &blocks {
            let mut by_hand = Out::with_capacity(&room, 0);
            write_block(&mut by_hand, b).unwrap();
            let mut by_serde = Out::with_capacity(&room, 0);
            by_serde.json(b).unwrap();
            assert_eq!(
                String::from_utf8_lossy(by_hand.bytes().unwrap()),
                String::from_utf8_lossy(by_serde.bytes().unwrap())
            );
        }
        // Texts borrowed from the source an output lends from: lent as serde's writes lend
        // them, short (written by hand) and long (through serde).
        let src = bytes::Bytes::from("toolu_01 tool_use and some text to lend ".repeat(3));
        let text = std::str::from_utf8(&src).unwrap();
        let borrowed = ContentBlock {
            kind: Str::from(&text[9..17]),
            id: Some(Str::from(&text[..8])),
            text: Some(Str::from(&text[..100])),
            ..ContentBlock::default()
        };
        crate::translate::lending_from(1, || {
            let mut by_hand = Out::with_capacity(&room, 0).lending(&src);
            write_block(&mut by_hand, &borrowed).unwrap();
            let mut by_serde = Out::with_capacity(&room, 0).lending(&src);
            by_serde.json(&borrowed).unwrap();
            let (by_hand, by_serde) = (by_hand.into_shared(), by_serde.into_shared());
            assert_eq!(by_hand.lent_spans(), by_serde.lent_spans());
            assert!(by_hand.lent_spans() >= 2, "{by_hand:?}");
            assert_eq!(by_hand.parts(&src), by_serde.parts(&src));
        });
    }

    #[test]
    fn minimal_text() {
        let (out, meta) =
            run(json!({"model":"m","messages":[{"role":"user","content":"hi"}]})).unwrap();
        assert_eq!(
            out,
            json!({"model":"claude-x","max_tokens":4096,"messages":[{"role":"user","content":"hi"}]})
        );
        assert_eq!(meta.client_model, "m");
        assert!(!meta.stream);
    }

    #[test]
    fn rejections_name_the_parameter() {
        for (req, param) in [
            (
                json!({"model":"m","messages":[{"role":"user","content":"x"}],"n":2}),
                "n",
            ),
            (
                json!({"model":"m","messages":[{"role":"user","content":"x"}],"logprobs":true}),
                "logprobs",
            ),
            (
                json!({"model":"m","messages":[{"role":"user","content":"x"}],"bogus":1}),
                "bogus",
            ),
            (
                json!({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":"x"}),
                "max_tokens",
            ),
            (json!({"messages":[{"role":"user","content":"x"}]}), "model"),
            (
                json!({"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}),
                "messages[0].content[0].type",
            ),
        ] {
            let e = run(req).unwrap_err();
            assert_eq!(e.status, 400);
            assert_eq!(e.param.as_deref(), Some(param), "{e}");
        }
    }

    #[test]
    fn invalid_json_is_400() {
        let e = openai_to_anthropic_request(b"{\"model\":", "c", &Options::default()).unwrap_err();
        assert_eq!(e.status, 400);
        let e = openai_to_anthropic_request(b"{} x", "c", &Options::default()).unwrap_err();
        assert_eq!(e.status, 400);
    }

    #[test]
    fn thinking_budget_raises_max_tokens() {
        let (out, _) = run_for(
            "claude-sonnet-4-5",
            &Options::default(),
            json!({"model":"m","max_completion_tokens":100,"reasoning_effort":"high",
            "temperature":0.3,"messages":[{"role":"user","content":"x"}]}),
        )
        .unwrap();
        assert_eq!(
            out["thinking"],
            json!({"type":"enabled","budget_tokens":4096})
        );
        assert_eq!(out["max_tokens"], json!(4196));
        assert!(out.get("temperature").is_none());
    }

    #[test]
    fn adaptive_effort_per_model_and_style() {
        let req = |effort: &str| {
            json!({"model":"m","max_completion_tokens":100,"reasoning_effort":effort,
            "top_k":5,"messages":[{"role":"user","content":"x"}]})
        };
        let auto = Options::default();
        let budget = Options {
            thinking_style: ThinkingStyle::Budget,
            ..Options::default()
        };
        let adaptive = Options {
            thinking_style: ThinkingStyle::Adaptive,
            ..Options::default()
        };
        for (model, opts, effort, want) in [
            ("claude-opus-4-7", &auto, "minimal", Some("low")),
            ("claude-opus-4-7", &auto, "low", Some("low")),
            ("claude-opus-4-7", &auto, "medium", Some("medium")),
            ("claude-opus-4-7", &auto, "high", Some("high")),
            ("claude-opus-4-7", &auto, "xhigh", Some("xhigh")),
            ("claude-opus-4-7", &auto, "max", Some("max")),
            ("claude-sonnet-4-6", &auto, "xhigh", Some("high")),
            ("claude-sonnet-4-6", &auto, "max", Some("max")),
            ("claude-sonnet-4-5", &adaptive, "max", Some("high")),
            ("claude-sonnet-4-5", &auto, "high", None),
            ("claude-opus-4-7", &budget, "high", None),
        ] {
            let (out, meta) = run_for(model, opts, req(effort)).unwrap();
            let case = format!("{model} {effort} {opts:?}");
            match want {
                Some(e) => {
                    assert_eq!(out["thinking"], json!({"type":"adaptive"}), "{case}");
                    assert_eq!(out["output_config"], json!({"effort":e}), "{case}");
                    assert_eq!(out["max_tokens"], json!(100), "{case}");
                }
                None => {
                    assert_eq!(out["thinking"]["type"], json!("enabled"), "{case}");
                    assert!(out.get("output_config").is_none(), "{case}");
                }
            }
            assert!(out.get("top_k").is_none(), "{case}");
            assert_eq!(meta.ledger.dropped(), vec!["top_k"], "{case}");
        }
        let (out, _) = run_for("claude-opus-4-7", &auto, req("none")).unwrap();
        assert!(out.get("thinking").is_none() && out.get("output_config").is_none());
        let e = run_for("claude-opus-4-7", &auto, req("extreme")).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("reasoning_effort"));
    }
}
