//! Chat Completions request → Gemini `generateContent` body (mapping table in `mod.rs`).

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::schema;
use super::{
    split_id, GeminiMeta, GeminiOptions, SignatureSeal, DUMMY_THOUGHT_SIGNATURE, MAX_STOP_SEQUENCES,
};
use crate::translate::out::{first_capacity, Out, Room};
use crate::translate::util::{is_http_url, parse_data_url};
use crate::translate::{Code, TranslateError};

/// Request members read here; any other is refused (as for the other pairs).
const KNOWN: &[&str] = &[
    "model",
    "messages",
    "max_completion_tokens",
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "n",
    "stop",
    "stream",
    "stream_options",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "reasoning_effort",
    "thinking",
    "user",
    "safety_identifier",
    "service_tier",
    "logprobs",
    "top_logprobs",
    "modalities",
    "audio",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "metadata",
    "store",
    "prediction",
    "prompt_cache_key",
    "prompt_cache_retention",
    "verbosity",
    "web_search_options",
    "functions",
    "function_call",
];

/// Members with no Gemini equivalent that changes the answer: dropped and listed.
const DROPPED: &[&str] = &[
    "user",
    "safety_identifier",
    "service_tier",
    "parallel_tool_calls",
    "logit_bias",
    "metadata",
    "store",
    "prediction",
    "prompt_cache_key",
    "prompt_cache_retention",
    "verbosity",
];

/// Which thinking control a model takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Generation {
    /// Gemini 3 and later: `thinkingLevel`.
    Three { pro: bool },
    /// Gemini 2.5: `thinkingBudget` within `min..=max`, or 0 (off) where `can_off`.
    TwoFive { min: i64, max: i64, can_off: bool },
    /// Older or unrecognised: no thinking control is sent.
    Other,
}

fn generation(model: &str) -> Generation {
    let m = model
        .rsplit('/')
        .next()
        .unwrap_or(model)
        .to_ascii_lowercase();
    let pro = m.contains("pro");
    if m.starts_with("gemini-2.5") {
        // Ranges from Google's thinking guide: Pro 128..32768 (cannot be off), Flash-Lite
        // 512..24576 and Flash 1..24576 (0 turns both off).
        if pro {
            Generation::TwoFive {
                min: 128,
                max: 32768,
                can_off: false,
            }
        } else if m.contains("lite") {
            Generation::TwoFive {
                min: 512,
                max: 24576,
                can_off: true,
            }
        } else {
            Generation::TwoFive {
                min: 1,
                max: 24576,
                can_off: true,
            }
        }
    } else if let Some(rest) = m.strip_prefix("gemini-") {
        // gemini-3, gemini-3.1-…, gemini-4…: a leading major version of 3 or more.
        let major: String = rest.chars().take_while(char::is_ascii_digit).collect();
        match major.parse::<u32>() {
            Ok(v) if v >= 3 => Generation::Three { pro },
            _ => Generation::Other,
        }
    } else {
        Generation::Other
    }
}

/// Translates a Chat Completions request body into a Gemini `generateContent` body for
/// `upstream_model`. Tool call ids carrying a sealed signature are opened with `seal`.
pub fn request(
    body: &[u8],
    upstream_model: &str,
    opts: &GeminiOptions,
    seal: &dyn SignatureSeal,
) -> Result<(Vec<u8>, GeminiMeta), TranslateError> {
    request_within(body, upstream_model, opts, seal, &Room::unlimited())
}

/// [`request`] writing at most `room` bytes of output (else [`TranslateError::over_budget`]).
/// The parsed tree it reads from is not charged yet: this translator reads through
/// `serde_json::Value` (the zero-copy readers of the other pairs are the way to a full bound).
pub fn request_within(
    body: &[u8],
    upstream_model: &str,
    opts: &GeminiOptions,
    seal: &dyn SignatureSeal,
    room: &Room,
) -> Result<(Vec<u8>, GeminiMeta), TranslateError> {
    let req: Value = serde_json::from_slice(body)
        .map_err(|e| TranslateError::invalid("body", format!("the body is not valid JSON: {e}")))?;
    let Some(req) = req.as_object() else {
        return Err(TranslateError::invalid(
            "body",
            "the body must be a JSON object",
        ));
    };
    if let Some(key) = req.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(TranslateError::unsupported_param(
            key.as_str(),
            format!("Unrecognized request argument supplied: {key}"),
        ));
    }
    let mut meta = GeminiMeta::default();
    let model = req
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| TranslateError::invalid("model", "you must provide a model parameter"))?;
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| TranslateError::invalid("messages", "`messages` must be an array"))?;
    reject_unsupported(req)?;
    for name in DROPPED {
        if req.get(*name).is_some_and(|v| !v.is_null()) {
            meta.drop_param(name);
        }
    }
    meta.client_model = model.to_owned();
    meta.upstream_model = upstream_model.to_owned();
    meta.stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    meta.include_usage = meta.stream
        && req
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
    let gen = generation(upstream_model);

    let mut out = Map::new();
    let conv = Conversation::read(messages, opts, seal)?;
    if conv.dummied {
        meta.ledger.note(
            Code::SignatureDropped,
            "messages[].tool_calls[].thought_signature",
        );
    }
    if conv.contents.is_empty() {
        return Err(TranslateError::invalid(
            "messages",
            "messages must hold at least one user or assistant message",
        ));
    }
    out.insert("contents".into(), Value::Array(conv.contents));
    if !conv.system.is_empty() {
        out.insert("systemInstruction".into(), json!({ "parts": conv.system }));
    }
    let subset = schema::needs_openapi_subset(upstream_model);
    let tools = convert_tools(req, subset, &mut meta)?;
    if !tools.is_empty() {
        out.insert("tools".into(), json!([{ "functionDeclarations": tools }]));
        if let Some(tc) = convert_tool_choice(req.get("tool_choice"))? {
            out.insert("toolConfig".into(), json!({ "functionCallingConfig": tc }));
        }
    } else if req.get("tool_choice").is_some_and(|v| !v.is_null()) {
        meta.drop_param("tool_choice");
    }
    let config = generation_config(req, gen, subset, opts, &mut meta)?;
    if !config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(config));
    }
    let mut bytes = Out::with_capacity(room, first_capacity(body.len(), 5, 4));
    bytes.json(&Value::Object(out))?;
    Ok((bytes.into_vec()?, meta))
}

fn reject_unsupported(req: &Map<String, Value>) -> Result<(), TranslateError> {
    if let Some(n) = req.get("n").filter(|v| !v.is_null()) {
        // One candidate: choices[i] from candidates[i] would need per-candidate stream state,
        // and Gemini refuses candidateCount > 1 with tools on several models; refused as the
        // Anthropic pair refuses it.
        if n.as_u64() != Some(1) {
            return Err(TranslateError::unsupported_value(
                "n",
                "n>1 is not supported for Gemini models",
            ));
        }
    }
    if req.get("logprobs").and_then(Value::as_bool) == Some(true) {
        return Err(TranslateError::unsupported_param(
            "logprobs",
            "logprobs are not translated for Gemini models",
        ));
    }
    if req
        .get("top_logprobs")
        .and_then(Value::as_u64)
        .is_some_and(|k| k > 0)
    {
        return Err(TranslateError::unsupported_param(
            "top_logprobs",
            "logprobs are not translated for Gemini models",
        ));
    }
    let audio_out = req
        .get("modalities")
        .and_then(Value::as_array)
        .is_some_and(|m| m.iter().any(|x| x.as_str() == Some("audio")));
    if audio_out || req.get("audio").is_some_and(|v| !v.is_null()) {
        return Err(TranslateError::unsupported_param(
            if audio_out { "modalities" } else { "audio" },
            "audio output is not available for Gemini models through Chat Completions",
        ));
    }
    for (key, message) in [
        (
            "functions",
            "legacy `functions` are not supported; use `tools`",
        ),
        (
            "function_call",
            "legacy `function_call` is not supported; use `tool_choice`",
        ),
        (
            "web_search_options",
            "web search is not translated for Gemini models",
        ),
    ] {
        if req.get(key).is_some_and(|v| !v.is_null()) {
            return Err(TranslateError::unsupported_param(key, message));
        }
    }
    Ok(())
}

/// A tool call of the conversation, by the id the client gave it.
struct Call {
    name: String,
    /// The id Gemini gets (the client's without the sealed signature).
    gemini_id: String,
    /// Position among all calls of the conversation: tool results are sent in call order.
    seq: usize,
}

/// The conversation as Gemini contents.
struct Conversation {
    system: Vec<Value>,
    contents: Vec<Value>,
    /// A function call of the current turn went with Google's dummy signature: the thinking
    /// that made it did not come back (the ledger's `signature_dropped`).
    dummied: bool,
}

impl Conversation {
    fn read(
        messages: &[Value],
        opts: &GeminiOptions,
        seal: &dyn SignatureSeal,
    ) -> Result<Self, TranslateError> {
        let mut system = Vec::new();
        let mut contents: Vec<Value> = Vec::new();
        let mut calls: HashMap<&str, Call> = HashMap::new();
        // Tool results waiting to go out as one user content: (call order, part).
        let mut results: Vec<(usize, Value)> = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            let at = |k: &str| format!("messages[{i}].{k}");
            let role = m
                .get("role")
                .and_then(Value::as_str)
                .ok_or_else(|| TranslateError::invalid(at("role"), "each message needs a role"))?;
            if role != "tool" {
                flush_results(&mut results, &mut contents);
            }
            match role {
                "system" | "developer" => {
                    for t in texts(m.get("content"), &at("content"))? {
                        system.push(json!({ "text": t }));
                    }
                }
                "user" => {
                    let parts = user_parts(m.get("content"), &at("content"))?;
                    push_parts(&mut contents, "user", parts);
                }
                "assistant" => {
                    let mut parts: Vec<Value> = texts(m.get("content"), &at("content"))?
                        .into_iter()
                        .filter(|t| !t.is_empty())
                        .map(|t| json!({ "text": t }))
                        .collect();
                    let tool_calls = match m.get("tool_calls") {
                        None | Some(Value::Null) => &[][..],
                        Some(Value::Array(a)) => a.as_slice(),
                        Some(_) => {
                            return Err(TranslateError::invalid(
                                at("tool_calls"),
                                "tool_calls must be an array",
                            ))
                        }
                    };
                    for (j, c) in tool_calls.iter().enumerate() {
                        let at = |k: &str| format!("messages[{i}].tool_calls[{j}].{k}");
                        let id = c.get("id").and_then(Value::as_str).unwrap_or("");
                        let f = c.get("function");
                        let name = f
                            .and_then(|f| f.get("name"))
                            .and_then(Value::as_str)
                            .filter(|n| !n.is_empty())
                            .ok_or_else(|| {
                                TranslateError::invalid(
                                    at("function.name"),
                                    "a tool call needs a name",
                                )
                            })?;
                        let args = arguments(
                            f.and_then(|f| f.get("arguments")),
                            &at("function.arguments"),
                        )?;
                        let (gemini_id, signature) = split_id(id, seal);
                        let mut call = Map::new();
                        if opts.call_ids && !gemini_id.is_empty() {
                            call.insert("id".into(), Value::from(gemini_id));
                        }
                        call.insert("name".into(), Value::from(name));
                        call.insert("args".into(), args);
                        let mut part = Map::new();
                        part.insert("functionCall".into(), Value::Object(call));
                        if let Some(sig) = signature {
                            part.insert("thoughtSignature".into(), Value::from(sig));
                        }
                        parts.push(Value::Object(part));
                        let seq = calls.len();
                        calls.insert(
                            id,
                            Call {
                                name: name.to_owned(),
                                gemini_id: gemini_id.to_owned(),
                                seq,
                            },
                        );
                    }
                    push_parts(&mut contents, "model", parts);
                }
                "tool" => {
                    let id = m.get("tool_call_id").and_then(Value::as_str).unwrap_or("");
                    let call = calls.get(id).ok_or_else(|| {
                        TranslateError::invalid(
                            at("tool_call_id"),
                            format!(
                                "no assistant tool call with id `{id}` precedes this tool message"
                            ),
                        )
                    })?;
                    let output = texts(m.get("content"), &at("content"))?.concat();
                    let mut fr = Map::new();
                    if opts.call_ids && !call.gemini_id.is_empty() {
                        fr.insert("id".into(), Value::from(call.gemini_id.as_str()));
                    }
                    fr.insert("name".into(), Value::from(call.name.as_str()));
                    fr.insert("response".into(), json!({ "output": output }));
                    results.push((call.seq, json!({ "functionResponse": fr })));
                }
                other => {
                    return Err(TranslateError::invalid(
                        at("role"),
                        format!("unsupported message role `{other}`"),
                    ))
                }
            }
        }
        flush_results(&mut results, &mut contents);
        let dummied = mark_current_turn(&mut contents);
        Ok(Conversation {
            system,
            contents,
            dummied,
        })
    }
}

/// Appends `parts` as a `role` content, merged into the previous one when it has the same
/// role (Gemini wants turns to alternate).
fn push_parts(contents: &mut Vec<Value>, role: &str, parts: Vec<Value>) {
    if parts.is_empty() {
        return;
    }
    if let Some(last) = contents.last_mut() {
        if last.get("role").and_then(Value::as_str) == Some(role) {
            if let Some(p) = last.get_mut("parts").and_then(Value::as_array_mut) {
                p.extend(parts);
                return;
            }
        }
    }
    contents.push(json!({ "role": role, "parts": parts }));
}

/// The waiting tool results as one user content, in the order of their calls.
fn flush_results(results: &mut Vec<(usize, Value)>, contents: &mut Vec<Value>) {
    if results.is_empty() {
        return;
    }
    results.sort_by_key(|(seq, _)| *seq);
    let parts = results.drain(..).map(|(_, p)| p).collect();
    push_parts(contents, "user", parts);
}

/// Gemini validates signatures in the current turn only: after the last user content that
/// holds more than function responses, the first `functionCall` part of each model content
/// must carry one. Where none came back, Google's documented dummy goes in its place.
fn mark_current_turn(contents: &mut [Value]) -> bool {
    let mut dummied = false;
    let is_turn_start = |c: &Value| {
        c.get("role").and_then(Value::as_str) == Some("user")
            && c.get("parts")
                .and_then(Value::as_array)
                .is_some_and(|p| p.iter().any(|p| p.get("functionResponse").is_none()))
    };
    let start = contents
        .iter()
        .rposition(is_turn_start)
        .map_or(0, |i| i + 1);
    for c in contents.iter_mut().skip(start) {
        if c.get("role").and_then(Value::as_str) != Some("model") {
            continue;
        }
        let Some(parts) = c.get_mut("parts").and_then(Value::as_array_mut) else {
            continue;
        };
        if let Some(Value::Object(first)) =
            parts.iter_mut().find(|p| p.get("functionCall").is_some())
        {
            first.entry("thoughtSignature").or_insert_with(|| {
                dummied = true;
                Value::from(DUMMY_THOUGHT_SIGNATURE)
            });
        }
    }
    dummied
}

/// The texts of a message's `content`: a string, or an array of text (and refusal) parts.
fn texts(content: Option<&Value>, at: &str) -> Result<Vec<String>, TranslateError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(k, p)| {
                let kind = p.get("type").and_then(Value::as_str).unwrap_or("");
                let field = match kind {
                    "text" => "text",
                    "refusal" => "refusal",
                    _ => {
                        return Err(TranslateError::invalid(
                            format!("{at}[{k}].type"),
                            format!("content part type `{kind}` is not supported here"),
                        ))
                    }
                };
                p.get(field)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        TranslateError::invalid(format!("{at}[{k}].{field}"), "expected a string")
                    })
            })
            .collect(),
        Some(_) => Err(TranslateError::invalid(
            at,
            "content must be a string or an array of parts",
        )),
    }
}

/// A user message's parts: text, images, audio and files.
fn user_parts(content: Option<&Value>, at: &str) -> Result<Vec<Value>, TranslateError> {
    let parts = match content {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) => return Ok(vec![json!({ "text": s })]),
        Some(Value::Array(parts)) => parts,
        Some(_) => {
            return Err(TranslateError::invalid(
                at,
                "content must be a string or an array of parts",
            ))
        }
    };
    let mut out = Vec::with_capacity(parts.len());
    for (k, p) in parts.iter().enumerate() {
        let at = |f: &str| format!("{at}[{k}].{f}");
        let str_at = |path: &[&str]| {
            let mut v = p;
            for key in path {
                v = v.get(*key)?;
            }
            v.as_str()
        };
        let kind = p.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "text" => {
                let t = str_at(&["text"])
                    .ok_or_else(|| TranslateError::invalid(at("text"), "expected a string"))?;
                out.push(json!({ "text": t }));
            }
            "image_url" => {
                let url = str_at(&["image_url", "url"]).or_else(|| str_at(&["image_url"]));
                let url = url.ok_or_else(|| {
                    TranslateError::invalid(at("image_url.url"), "expected a URL")
                })?;
                out.push(media_part(url, &at("image_url.url"))?);
            }
            "input_audio" => {
                let data = str_at(&["input_audio", "data"]).ok_or_else(|| {
                    TranslateError::invalid(at("input_audio.data"), "expected base64 audio")
                })?;
                let format = str_at(&["input_audio", "format"]).unwrap_or("wav");
                let mime = match format {
                    "mp3" => "audio/mp3",
                    "wav" => "audio/wav",
                    other => {
                        return Err(TranslateError::unsupported_value(
                            at("input_audio.format"),
                            format!("audio format `{other}` is not supported"),
                        ))
                    }
                };
                out.push(json!({ "inlineData": { "mimeType": mime, "data": data } }));
            }
            "file" => {
                let data = str_at(&["file", "file_data"]).ok_or_else(|| {
                    TranslateError::unsupported_param(
                        at("file.file_id"),
                        "files must be sent inline (file_data) for Gemini models",
                    )
                })?;
                out.push(media_part(data, &at("file.file_data"))?);
            }
            other => {
                return Err(TranslateError::invalid(
                    at("type"),
                    format!("content part type `{other}` is not supported"),
                ))
            }
        }
    }
    Ok(out)
}

/// `inlineData` for a base64 data URL, `fileData` for an http(s) URL.
fn media_part(url: &str, at: &str) -> Result<Value, TranslateError> {
    if let Some(d) = parse_data_url(url) {
        if !d.base64 {
            return Err(TranslateError::invalid(at, "data URLs must be base64"));
        }
        return Ok(json!({ "inlineData": { "mimeType": d.mime, "data": d.data } }));
    }
    if is_http_url(url) {
        return Ok(json!({ "fileData": { "mimeType": guess_mime(url), "fileUri": url } }));
    }
    Err(TranslateError::invalid(
        at,
        "expected a data URL or an http(s) URL",
    ))
}

/// A MIME type from a URL's path extension (Gemini requires one on `fileData`).
fn guess_mime(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let ext = path.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        "mp3" => "audio/mp3",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        "txt" => "text/plain",
        _ => "image/jpeg",
    }
}

/// A tool call's `arguments` (a JSON string) as Gemini's `args` object.
fn arguments(raw: Option<&Value>, at: &str) -> Result<Value, TranslateError> {
    let s = match raw {
        None | Some(Value::Null) => return Ok(json!({})),
        Some(Value::String(s)) => s,
        Some(_) => {
            return Err(TranslateError::invalid(
                at,
                "arguments must be a JSON string",
            ))
        }
    };
    if s.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(s) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(TranslateError::invalid(
            at,
            "arguments must be a JSON object",
        )),
        Err(_) => Err(TranslateError::invalid(at, "arguments are not valid JSON")),
    }
}

/// `tools` as function declarations.
fn convert_tools(
    req: &Map<String, Value>,
    subset: bool,
    meta: &mut GeminiMeta,
) -> Result<Vec<Value>, TranslateError> {
    let tools = match req.get("tools") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(t)) => t,
        Some(_) => return Err(TranslateError::invalid("tools", "tools must be an array")),
    };
    let mut out = Vec::with_capacity(tools.len());
    for (i, t) in tools.iter().enumerate() {
        let kind = t.get("type").and_then(Value::as_str).unwrap_or("function");
        if kind != "function" {
            return Err(TranslateError::unsupported_value(
                format!("tools[{i}].type"),
                format!("tool type `{kind}` is not supported for Gemini models"),
            ));
        }
        let f = t.get("function");
        let name = f
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                TranslateError::invalid(format!("tools[{i}].function.name"), "a tool needs a name")
            })?;
        let mut decl = Map::new();
        decl.insert("name".into(), Value::from(name));
        if let Some(d) = f.and_then(|f| f.get("description")).and_then(Value::as_str) {
            decl.insert("description".into(), Value::from(d));
        }
        match f.and_then(|f| f.get("parameters")) {
            None | Some(Value::Null) => {}
            // Older models take only `parameters`, Gemini's OpenAPI subset.
            Some(p @ Value::Object(_)) if subset => {
                let field = format!("tools[{i}].function.parameters");
                let (cut, lost) =
                    schema::openapi_subset_noting(p).ok_or_else(|| too_large(&field))?;
                if lost {
                    meta.ledger.note(Code::SchemaCleaned, field);
                }
                decl.insert("parameters".into(), cut);
            }
            Some(Value::Object(p)) => {
                decl.insert(
                    "parametersJsonSchema".into(),
                    Value::Object(strip_schema(p)),
                );
            }
            Some(_) => {
                return Err(TranslateError::invalid(
                    format!("tools[{i}].function.parameters"),
                    "parameters must be a JSON Schema object",
                ))
            }
        }
        out.push(Value::Object(decl));
    }
    Ok(out)
}

/// The 400 for a schema whose references expand past [`schema::MAX_SUBSET_NODES`].
fn too_large(param: &str) -> TranslateError {
    TranslateError::unsupported_value(
        param,
        format!(
            "the schema expands to more than {} nodes once its $refs are resolved, which this Gemini model needs",
            schema::MAX_SUBSET_NODES
        ),
    )
}

/// A schema without its root `$schema` (which Gemini refuses; the rest is standard JSON Schema
/// that `parametersJsonSchema` / `responseJsonSchema` take).
fn strip_schema(schema: &Map<String, Value>) -> Map<String, Value> {
    let mut s = schema.clone();
    s.remove("$schema");
    s
}

/// `tool_choice` as a `functionCallingConfig` (None: Gemini's default, AUTO).
fn convert_tool_choice(choice: Option<&Value>) -> Result<Option<Value>, TranslateError> {
    let bad = |what: String| TranslateError::unsupported_value("tool_choice", what);
    Ok(match choice {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => json!({ "mode": "AUTO" }),
            "none" => json!({ "mode": "NONE" }),
            "required" => json!({ "mode": "ANY" }),
            other => return Err(bad(format!("unsupported tool_choice `{other}`"))),
        }),
        Some(obj @ Value::Object(_)) => {
            match obj.get("type").and_then(Value::as_str).unwrap_or("") {
                "function" => {
                    let name = obj
                        .get("function")
                        .and_then(|f| f.get("name"))
                        .and_then(Value::as_str)
                        .ok_or_else(|| bad("tool_choice.function.name is required".into()))?;
                    Some(json!({ "mode": "ANY", "allowedFunctionNames": [name] }))
                }
                "allowed_tools" => {
                    let a = obj.get("allowed_tools");
                    let mode = match a.and_then(|a| a.get("mode")).and_then(Value::as_str) {
                        Some("required") => "ANY",
                        _ => "VALIDATED",
                    };
                    let names: Vec<&str> = a
                        .and_then(|a| a.get("tools"))
                        .and_then(Value::as_array)
                        .map(|t| {
                            t.iter()
                                .filter_map(|t| t.get("function")?.get("name")?.as_str())
                                .collect()
                        })
                        .unwrap_or_default();
                    Some(json!({ "mode": mode, "allowedFunctionNames": names }))
                }
                other => return Err(bad(format!("unsupported tool_choice type `{other}`"))),
            }
        }
        Some(_) => return Err(bad("tool_choice must be a string or an object".into())),
    })
}

/// `generationConfig`: sampling, limits, stop sequences, structured output, thinking.
fn generation_config(
    req: &Map<String, Value>,
    gen: Generation,
    subset: bool,
    opts: &GeminiOptions,
    meta: &mut GeminiMeta,
) -> Result<Map<String, Value>, TranslateError> {
    let mut c = Map::new();
    let number = |key: &str| -> Result<Option<Value>, TranslateError> {
        match req.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v @ Value::Number(_)) => Ok(Some(v.clone())),
            Some(_) => Err(TranslateError::invalid(key, "expected a number")),
        }
    };
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("seed", "seed"),
    ] {
        if let Some(v) = number(from)? {
            c.insert(to.into(), v);
        }
    }
    for (from, to) in [
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ] {
        if let Some(v) = number(from)? {
            if matches!(gen, Generation::Three { .. }) {
                // Gemini 3 refuses the penalties.
                meta.drop_param(if from == "presence_penalty" {
                    "presence_penalty"
                } else {
                    "frequency_penalty"
                });
            } else {
                c.insert(to.into(), v);
            }
        }
    }
    let max = number("max_completion_tokens")?.or(number("max_tokens")?);
    if let Some(v) = max {
        c.insert("maxOutputTokens".into(), v);
    }
    match req.get("stop") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            c.insert("stopSequences".into(), json!([s]));
        }
        Some(Value::Array(a)) => {
            if a.len() > MAX_STOP_SEQUENCES {
                return Err(TranslateError::invalid(
                    "stop",
                    format!("Gemini models take at most {MAX_STOP_SEQUENCES} stop sequences"),
                ));
            }
            if !a.iter().all(Value::is_string) {
                return Err(TranslateError::invalid(
                    "stop",
                    "stop sequences must be strings",
                ));
            }
            if !a.is_empty() {
                c.insert("stopSequences".into(), Value::Array(a.clone()));
            }
        }
        Some(_) => {
            return Err(TranslateError::invalid(
                "stop",
                "stop must be a string or an array",
            ))
        }
    }
    if let Some(rf) = req.get("response_format").filter(|v| !v.is_null()) {
        match rf.get("type").and_then(Value::as_str).unwrap_or("") {
            "text" => {}
            "json_object" => {
                c.insert("responseMimeType".into(), json!("application/json"));
            }
            "json_schema" => {
                let schema = rf
                    .get("json_schema")
                    .and_then(|j| j.get("schema"))
                    .and_then(Value::as_object)
                    .ok_or_else(|| {
                        TranslateError::invalid(
                            "response_format.json_schema.schema",
                            "json_schema response_format needs a schema",
                        )
                    })?;
                c.insert("responseMimeType".into(), json!("application/json"));
                if subset {
                    let field = "response_format.json_schema.schema";
                    let (cut, lost) = schema::openapi_subset_noting(&Value::Object(schema.clone()))
                        .ok_or_else(|| too_large(field))?;
                    if lost {
                        meta.ledger.note(Code::SchemaCleaned, field);
                    }
                    c.insert("responseSchema".into(), cut);
                } else {
                    c.insert(
                        "responseJsonSchema".into(),
                        Value::Object(strip_schema(schema)),
                    );
                }
            }
            other => {
                return Err(TranslateError::unsupported_value(
                    "response_format.type",
                    format!("unsupported response_format type `{other}`"),
                ))
            }
        }
    }
    if let Some(t) = thinking(req, gen, opts, meta)? {
        // An effort (or budget) as Gemini's level or budget: the table's approximation.
        let field = if req.get("thinking").is_some_and(|v| !v.is_null()) {
            "thinking"
        } else {
            "reasoning_effort"
        };
        meta.ledger.note(Code::ThinkingConverted, field);
        c.insert("thinkingConfig".into(), t);
    }
    Ok(c)
}

/// `thinkingConfig` from `reasoning_effort` (or an Anthropic-style `thinking` object).
fn thinking(
    req: &Map<String, Value>,
    gen: Generation,
    opts: &GeminiOptions,
    meta: &mut GeminiMeta,
) -> Result<Option<Value>, TranslateError> {
    // The effort asked for, and an explicit budget when the client gave one.
    let (effort, budget): (String, Option<u64>) =
        if let Some(t) = req.get("thinking").filter(|v| !v.is_null()) {
            match t.get("type").and_then(Value::as_str).unwrap_or("") {
                "disabled" => ("none".into(), None),
                "enabled" => {
                    let b = t.get("budget_tokens").and_then(Value::as_u64);
                    let e = opts.effort_budgets.effort_for_budget(
                        b.map_or(u32::MAX, |b| u32::try_from(b).unwrap_or(u32::MAX)),
                    );
                    (e.into(), b)
                }
                _ => ("medium".into(), None),
            }
        } else {
            match req.get("reasoning_effort") {
                None | Some(Value::Null) => return Ok(None),
                Some(Value::String(s)) => (s.clone(), None),
                Some(_) => {
                    return Err(TranslateError::invalid(
                        "reasoning_effort",
                        "expected a string",
                    ))
                }
            }
        };
    let key = if req.contains_key("thinking") {
        "thinking"
    } else {
        "reasoning_effort"
    };
    let Some(table_budget) = opts.effort_budgets.budget(&effort) else {
        return Err(TranslateError::unsupported_value(
            key,
            format!("unsupported reasoning_effort `{effort}`"),
        ));
    };
    let off = table_budget.is_none();
    meta.include_thoughts = !off;
    Ok(match gen {
        Generation::Three { pro } => {
            // Gemini 3 cannot turn thinking off; Pro takes LOW and HIGH (and MEDIUM on 3.1),
            // not MINIMAL.
            let level = match effort.as_str() {
                "none" | "minimal" if pro => "LOW",
                "none" | "minimal" => "MINIMAL",
                "low" => "LOW",
                "medium" => "MEDIUM",
                _ => "HIGH",
            };
            Some(json!({ "thinkingLevel": level, "includeThoughts": !off }))
        }
        Generation::TwoFive { min, max, can_off } => {
            let wanted = budget
                .map(|b| i64::try_from(b).unwrap_or(i64::MAX))
                .or(table_budget.map(i64::from))
                .unwrap_or(0);
            let b = match wanted {
                0 if can_off => 0,
                0 => min,
                w => w.clamp(min, max),
            };
            Some(json!({ "thinkingBudget": b, "includeThoughts": !off }))
        }
        Generation::Other => {
            meta.include_thoughts = false;
            meta.drop_param(if key == "thinking" {
                "thinking"
            } else {
                "reasoning_effort"
            });
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations() {
        assert_eq!(
            generation("gemini-3-pro-preview"),
            Generation::Three { pro: true }
        );
        assert_eq!(
            generation("gemini-3.1-flash-lite"),
            Generation::Three { pro: false }
        );
        assert_eq!(
            generation("models/gemini-10-flash"),
            Generation::Three { pro: false }
        );
        assert_eq!(
            generation("gemini-2.5-pro"),
            Generation::TwoFive {
                min: 128,
                max: 32768,
                can_off: false
            }
        );
        assert_eq!(
            generation("gemini-2.5-flash-lite"),
            Generation::TwoFive {
                min: 512,
                max: 24576,
                can_off: true
            }
        );
        assert_eq!(
            generation("gemini-2.5-flash"),
            Generation::TwoFive {
                min: 1,
                max: 24576,
                can_off: true
            }
        );
        assert_eq!(generation("gemini-2.0-flash"), Generation::Other);
        assert_eq!(generation("gemini-flash-latest"), Generation::Other);
        assert_eq!(generation("gemini-"), Generation::Other);
    }
}
