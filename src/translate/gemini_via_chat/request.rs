//! Gemini `generateContent` request → Chat Completions body (mapping table in `mod.rs`).

use serde_json::{json, Map, Value};

use super::{open_blocks, GeminiClientMeta, OPENAI_MAX_STOP};
use crate::translate::chat_via_gemini::SignatureSeal;
use crate::translate::out::{first_capacity, Out, Room};
use crate::translate::util::openai_tool_name;
use crate::translate::{
    MaxTokensField, Options, RequestMeta, ThinkingForm, TranslateError, MIN_THINKING_BUDGET,
};

/// Request members read here (camelCase as the SDKs send them; the API also takes
/// snake_case, and so does this); any other is refused, as Gemini refuses unknown fields.
const KNOWN: &[&str] = &[
    "model",
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "generationConfig",
    "safetySettings",
    "cachedContent",
    "labels",
];

/// Members with no Chat equivalent that changes the answer: dropped and listed.
const DROPPED: &[&str] = &["safetySettings", "labels"];

/// `generationConfig` members read here.
const GEN_KNOWN: &[&str] = &[
    "temperature",
    "topP",
    "topK",
    "candidateCount",
    "maxOutputTokens",
    "stopSequences",
    "presencePenalty",
    "frequencyPenalty",
    "seed",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseModalities",
    "responseLogprobs",
    "logprobs",
    "thinkingConfig",
    "mediaResolution",
    "enableEnhancedCivicAnswers",
    "speechConfig",
    "imageConfig",
    "routingConfig",
    "modelSelectionConfig",
    "audioTimestamp",
    "enableAffectiveDialog",
];

/// `generationConfig` members dropped and listed (they tune what Chat cannot express).
const GEN_DROPPED: &[&str] = &[
    "mediaResolution",
    "enableEnhancedCivicAnswers",
    "routingConfig",
    "modelSelectionConfig",
    "audioTimestamp",
    "enableAffectiveDialog",
];

/// Where the Chat body goes next: an OpenAI provider as it is, or on through the Chat →
/// Anthropic translator (which reads `top_k` and any number of stop sequences).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    OpenAi,
    Anthropic,
}

/// Is `name` the snake_case spelling of the camelCase `key` (`system_instruction` of
/// `systemInstruction`)? Compared in place: lookups run per part, so nothing is allocated.
pub(super) fn is_snake_of(name: &str, key: &str) -> bool {
    let mut n = name.bytes();
    for c in key.bytes() {
        if c.is_ascii_uppercase() {
            if n.next() != Some(b'_') || n.next() != Some(c.to_ascii_lowercase()) {
                return false;
            }
        } else if n.next() != Some(c) {
            return false;
        }
    }
    n.next().is_none()
}

/// A member by its camelCase name or its snake_case one (a null under one spelling does not
/// hide the other).
fn get<'v>(o: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    let present = |v: &&Value| !v.is_null();
    o.get(key).filter(present).or_else(|| {
        if !key.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        o.iter()
            .find(|(name, _)| is_snake_of(name, key))
            .map(|(_, v)| v)
            .filter(present)
    })
}

/// The camelCase name a member is known by (`system_instruction` → `systemInstruction`).
fn known_as<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .find(|k| **k == key || is_snake_of(key, k))
        .copied()
}

/// Translates a Gemini request (`stream` comes from the path) into a Chat Completions body
/// for `upstream_model`, with the meta its answer needs.
pub fn request_within(
    body: &[u8],
    upstream_model: &str,
    stream: bool,
    next: Next,
    opts: &Options,
    seal: &dyn SignatureSeal,
    room: &Room,
) -> Result<(Vec<u8>, RequestMeta, GeminiClientMeta), TranslateError> {
    let req: Value = serde_json::from_slice(body).map_err(|e| {
        TranslateError::invalid("body", format!("Invalid JSON payload received. {e}"))
    })?;
    let Some(req) = req.as_object() else {
        return Err(TranslateError::invalid(
            "body",
            "Invalid JSON payload received. The body must be a JSON object.",
        ));
    };
    if let Some(key) = req.keys().find(|k| known_as(k, KNOWN).is_none()) {
        return Err(TranslateError::unsupported_param(
            key.as_str(),
            format!("Invalid JSON payload received. Unknown name \"{key}\": Cannot find field."),
        ));
    }
    let mut meta = RequestMeta::default();
    let mut client = GeminiClientMeta::default();
    if get(req, "cachedContent").is_some() {
        return Err(TranslateError::unsupported_param(
            "cachedContent",
            "cachedContent names a cache held by Google; this model's provider cannot read it",
        ));
    }
    for name in DROPPED {
        if get(req, name).is_some() {
            meta.drop_param(name);
        }
    }
    // Gemini's bodies name no model (its path does, already routed).
    meta.client_model = upstream_model.to_owned();
    meta.upstream_model = upstream_model.to_owned();
    meta.stream = stream;
    meta.include_usage = stream;

    let mut names = Vec::new();
    let mut messages = Vec::new();
    if let Some(system) = get(req, "systemInstruction") {
        let text = system_text(system)?;
        if !text.is_empty() {
            messages.push(json!({ "role": "system", "content": text }));
        }
    }
    let contents = get(req, "contents")
        .and_then(Value::as_array)
        .ok_or_else(|| TranslateError::invalid("contents", "contents is not specified"))?;
    let conv = Conversation::read(contents, next, seal, &mut names)?;
    if conv.turns == 0 {
        return Err(TranslateError::invalid(
            "contents",
            "contents must hold at least one content with parts",
        ));
    }
    messages.extend(conv.messages);
    if conv.dropped_parts {
        meta.drop_param("contents.parts");
    }

    let mut out = Map::new();
    out.insert("model".into(), json!(upstream_model));
    out.insert("messages".into(), Value::Array(messages));
    if stream {
        out.insert("stream".into(), json!(true));
        out.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    let tools = convert_tools(get(req, "tools"), &mut names)?;
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
        if let Some(tc) = tool_choice(get(req, "toolConfig"), &mut names)? {
            out.insert("tool_choice".into(), tc);
        }
    } else if get(req, "toolConfig").is_some() {
        meta.drop_param("toolConfig");
    }
    if let Some(config) = get(req, "generationConfig") {
        generation_config(config, next, opts, &mut out, &mut meta, &mut client)?;
    }
    meta.client_thinking = client.include_thoughts;
    meta.tool_names = names;
    meta.note_tool_names(|_| None);
    let mut bytes = Out::with_capacity(room, first_capacity(body.len(), 5, 4));
    bytes.json(&Value::Object(out))?;
    Ok((bytes.into_vec()?, meta, client))
}

/// The texts of `systemInstruction` (a Content, or a bare string as the API also takes).
fn system_text(system: &Value) -> Result<String, TranslateError> {
    if let Some(s) = system.as_str() {
        return Ok(s.to_owned());
    }
    let parts = system
        .as_object()
        .and_then(|o| get(o, "parts"))
        .and_then(Value::as_array)
        .ok_or_else(|| {
            TranslateError::invalid(
                "systemInstruction",
                "systemInstruction must be a Content with parts",
            )
        })?;
    let mut texts = Vec::with_capacity(parts.len());
    for (j, p) in parts.iter().enumerate() {
        match p.get("text").and_then(Value::as_str) {
            Some(t) => texts.push(t),
            None => {
                return Err(TranslateError::unsupported_value(
                    format!("systemInstruction.parts[{j}]"),
                    "systemInstruction parts must be text for this model's provider",
                ))
            }
        }
    }
    Ok(texts.join("\n\n"))
}

/// An OpenAI-legal function name for a Gemini one (Gemini allows `.` and `:`, and 64+
/// characters through some clients); the pair is recorded so answers give back the client's.
fn chat_name(name: &str, names: &mut Vec<(String, String)>) -> String {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    let short = if name.chars().all(ok) {
        openai_tool_name(name).into_owned()
    } else {
        // A hash of the original keeps `files.read` and `files_read` apart.
        let legal: String = name
            .chars()
            .map(|c| if ok(c) { c } else { '_' })
            .take(crate::translate::OPENAI_TOOL_NAME_MAX - 9)
            .collect();
        format!(
            "{legal}_{:08x}",
            crate::translate::util::fnv1a32(name.as_bytes())
        )
    };
    if short != name && !names.iter().any(|(s, _)| *s == short) {
        names.push((short.clone(), name.to_owned()));
    }
    short
}

/// The conversation read from `contents`.
struct Conversation {
    messages: Vec<Value>,
    /// Contents that made a message.
    turns: usize,
    /// Parts with no Chat form (code execution results and the like) were left out.
    dropped_parts: bool,
    /// Where the Chat body goes next.
    next: Next,
}

/// A model turn's calls still waiting for their responses: (Gemini id, Chat id, name).
type Pending = Vec<(Option<String>, String, String)>;

impl Conversation {
    fn read(
        contents: &[Value],
        next: Next,
        seal: &dyn SignatureSeal,
        names: &mut Vec<(String, String)>,
    ) -> Result<Conversation, TranslateError> {
        let mut conv = Conversation {
            messages: Vec::with_capacity(contents.len() + 1),
            turns: 0,
            dropped_parts: false,
            next,
        };
        let mut pending: Pending = Vec::new();
        for (i, c) in contents.iter().enumerate() {
            let Some(c) = c.as_object() else {
                return Err(TranslateError::invalid(
                    format!("contents[{i}]"),
                    "each content must be an object",
                ));
            };
            let parts = get(c, "parts").and_then(Value::as_array);
            let Some(parts) = parts.filter(|p| !p.is_empty()) else {
                return Err(TranslateError::invalid(
                    format!("contents[{i}].parts"),
                    "contents.parts must not be empty",
                ));
            };
            match get(c, "role").and_then(Value::as_str).unwrap_or("user") {
                "model" => {
                    pending = conv.model_turn(i, parts, seal, names)?;
                }
                "user" | "function" | "tool" => {
                    conv.user_turn(i, parts, &mut pending)?;
                }
                other => {
                    return Err(TranslateError::invalid(
                        format!("contents[{i}].role"),
                        format!("Please use a valid role: user, model (got \"{other}\")"),
                    ))
                }
            }
            conv.turns += 1;
        }
        Ok(conv)
    }

    fn model_turn(
        &mut self,
        i: usize,
        parts: &[Value],
        seal: &dyn SignatureSeal,
        names: &mut Vec<(String, String)>,
    ) -> Result<Pending, TranslateError> {
        let mut text = String::new();
        let mut calls = Vec::new();
        let mut thinking = Vec::new();
        let mut pending = Vec::new();
        for (j, p) in parts.iter().enumerate() {
            let Some(p) = p.as_object() else {
                return Err(part_error(i, j));
            };
            one_kind(i, j, p)?;
            // Carried Anthropic thinking rides on any part's signature.
            if let Some(sig) = get(p, "thoughtSignature").and_then(Value::as_str) {
                thinking.extend(open_blocks(sig, seal));
            }
            if let Some(fc) = get(p, "functionCall") {
                let name = fc.get("name").and_then(Value::as_str).unwrap_or("");
                if name.is_empty() {
                    return Err(TranslateError::invalid(
                        format!("contents[{i}].parts[{j}].functionCall.name"),
                        "a functionCall needs a name",
                    ));
                }
                let gemini_id = fc
                    .get("id")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty());
                let id = match gemini_id {
                    Some(id) => id.to_owned(),
                    None => format!("call_{i}_{j}"),
                };
                let args = match fc.get("args") {
                    Some(a @ Value::Object(_)) => a.to_string(),
                    None | Some(Value::Null) => "{}".to_owned(),
                    Some(_) => {
                        return Err(TranslateError::invalid(
                            format!("contents[{i}].parts[{j}].functionCall.args"),
                            "functionCall.args must be an object",
                        ))
                    }
                };
                let chat = chat_name(name, names);
                calls.push(json!({
                    "id": id,
                    "type": "function",
                    "function": { "name": chat, "arguments": args },
                }));
                pending.push((gemini_id.map(str::to_owned), id, name.to_owned()));
            } else if let Some(t) = get(p, "text").and_then(Value::as_str) {
                // Thought summaries are the model's own notes: not part of the conversation.
                if get(p, "thought").and_then(Value::as_bool) != Some(true) {
                    text.push_str(t);
                }
            } else {
                self.dropped_parts = true;
            }
        }
        let mut m = Map::new();
        m.insert("role".into(), json!("assistant"));
        m.insert(
            "content".into(),
            if text.is_empty() && !calls.is_empty() {
                Value::Null
            } else {
                Value::from(text)
            },
        );
        if !calls.is_empty() {
            m.insert("tool_calls".into(), Value::Array(calls));
        }
        if !thinking.is_empty() {
            m.insert("thinking_blocks".into(), Value::Array(thinking));
        }
        self.messages.push(Value::Object(m));
        Ok(pending)
    }

    fn user_turn(
        &mut self,
        i: usize,
        parts: &[Value],
        pending: &mut Pending,
    ) -> Result<(), TranslateError> {
        let mut content = Vec::new();
        let mut tool_messages = Vec::new();
        for (j, p) in parts.iter().enumerate() {
            let Some(p) = p.as_object() else {
                return Err(part_error(i, j));
            };
            one_kind(i, j, p)?;
            if let Some(fr) = get(p, "functionResponse") {
                tool_messages.push(tool_message(i, j, fr, pending)?);
            } else if let Some(t) = get(p, "text").and_then(Value::as_str) {
                if get(p, "thought").and_then(Value::as_bool) != Some(true) {
                    content.push(json!({ "type": "text", "text": t }));
                }
            } else if let Some(d) = get(p, "inlineData") {
                content.push(inline_part(i, j, d, self.next)?);
            } else if let Some(d) = get(p, "fileData") {
                content.push(file_part(i, j, d)?);
            } else if get(p, "functionCall").is_some() {
                return Err(TranslateError::invalid(
                    format!("contents[{i}].parts[{j}].functionCall"),
                    "a functionCall belongs to a model content",
                ));
            } else {
                self.dropped_parts = true;
            }
        }
        // Tool results answer the model turn before them, so they come first.
        self.messages.extend(tool_messages);
        if !content.is_empty() {
            let value = match content.as_slice() {
                [only] if only["type"] == "text" => only["text"].clone(),
                _ => Value::Array(content),
            };
            self.messages
                .push(json!({ "role": "user", "content": value }));
        }
        Ok(())
    }
}

/// What a part holds: Gemini's `data` is a oneof, so a part with two (text and a call) is
/// refused rather than one of them dropped.
fn one_kind(i: usize, j: usize, p: &Map<String, Value>) -> Result<(), TranslateError> {
    const KINDS: &[&str] = &[
        "text",
        "inlineData",
        "fileData",
        "functionCall",
        "functionResponse",
        "executableCode",
        "codeExecutionResult",
    ];
    let n = KINDS.iter().filter(|k| get(p, k).is_some()).count();
    if n > 1 {
        return Err(TranslateError::invalid(
            format!("contents[{i}].parts[{j}]"),
            "a part holds one of text, inlineData, fileData, functionCall, functionResponse",
        ));
    }
    Ok(())
}

fn part_error(i: usize, j: usize) -> TranslateError {
    TranslateError::invalid(
        format!("contents[{i}].parts[{j}]"),
        "each part must be an object",
    )
}

/// The `tool` message for a functionResponse: the call it answers by id, else the first
/// unanswered call of that name in the model turn before it.
fn tool_message(
    i: usize,
    j: usize,
    fr: &Value,
    pending: &mut Pending,
) -> Result<Value, TranslateError> {
    let name = fr.get("name").and_then(Value::as_str).unwrap_or("");
    let id = fr
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let at = id
        .and_then(|id| {
            pending
                .iter()
                .position(|(g, c, _)| g.as_deref() == Some(id) || c == id)
        })
        .or_else(|| pending.iter().position(|(_, _, n)| n == name));
    let Some(at) = at else {
        return Err(TranslateError::invalid(
            format!("contents[{i}].parts[{j}].functionResponse"),
            format!(
                "functionResponse \"{}\" answers no functionCall of the model content before it",
                name.chars().take(64).collect::<String>()
            ),
        ));
    };
    let (_, chat_id, _) = pending.remove(at);
    let response = fr.get("response").cloned().unwrap_or_else(|| json!({}));
    let text = match &response {
        Value::Object(o) if o.len() == 1 => match o.get("output").or_else(|| o.get("content")) {
            Some(Value::String(s)) => s.clone(),
            _ => response.to_string(),
        },
        _ => response.to_string(),
    };
    Ok(json!({ "role": "tool", "tool_call_id": chat_id, "content": text }))
}

/// A MIME type as `type/subtype` of token characters (it is written into a data URL).
fn is_mime(m: &str) -> bool {
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    m.len() <= 255 && m.split_once('/').is_some_and(|(a, b)| token(a) && token(b))
}

fn mime_of<'v>(d: &'v Value, i: usize, j: usize, what: &str) -> Result<&'v str, TranslateError> {
    d.get("mimeType")
        .or_else(|| d.get("mime_type"))
        .and_then(Value::as_str)
        .filter(|m| is_mime(m))
        .ok_or_else(|| {
            TranslateError::invalid(
                format!("contents[{i}].parts[{j}].{what}.mimeType"),
                "mimeType is required, as type/subtype",
            )
        })
}

/// `inlineData` as a Chat content part.
fn inline_part(i: usize, j: usize, d: &Value, next: Next) -> Result<Value, TranslateError> {
    let mime = mime_of(d, i, j, "inlineData")?;
    let data = d.get("data").and_then(Value::as_str).unwrap_or("");
    if mime.starts_with("image/") {
        return Ok(json!({
            "type": "image_url",
            "image_url": { "url": format!("data:{mime};base64,{data}") },
        }));
    }
    match mime {
        "audio/wav" | "audio/x-wav" | "audio/wave" => Ok(json!({
            "type": "input_audio", "input_audio": { "data": data, "format": "wav" },
        })),
        "audio/mp3" | "audio/mpeg" => Ok(json!({
            "type": "input_audio", "input_audio": { "data": data, "format": "mp3" },
        })),
        // OpenAI's `file` parts take PDFs: a text file goes there as text (to Anthropic it
        // stays a file, which becomes a text document block).
        m if m.starts_with("text/") && next == Next::OpenAi => {
            match crate::translate::util::decode_base64(data)
                .and_then(|b| String::from_utf8(b).ok())
            {
                Some(text) => Ok(json!({ "type": "text", "text": text })),
                None => Err(TranslateError::invalid(
                    format!("contents[{i}].parts[{j}].inlineData.data"),
                    "inlineData of a text type must be base64 of UTF-8 text",
                )),
            }
        }
        m if m == "application/pdf" || m.starts_with("text/") => Ok(json!({
            "type": "file",
            "file": { "file_data": format!("data:{mime};base64,{data}") },
        })),
        _ => Err(TranslateError::unsupported_value(
            format!("contents[{i}].parts[{j}].inlineData.mimeType"),
            format!(
                "inlineData of type {} cannot be sent to this model's provider",
                mime.chars().take(64).collect::<String>()
            ),
        )),
    }
}

/// `fileData` as a Chat content part: only an http(s) image is readable elsewhere.
fn file_part(i: usize, j: usize, d: &Value) -> Result<Value, TranslateError> {
    let mime = mime_of(d, i, j, "fileData")?;
    let uri = d
        .get("fileUri")
        .or_else(|| d.get("file_uri"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let google = uri.contains("generativelanguage.googleapis.com");
    if mime.starts_with("image/") && crate::translate::util::is_http_url(uri) && !google {
        return Ok(json!({ "type": "image_url", "image_url": { "url": uri } }));
    }
    Err(TranslateError::unsupported_value(
        format!("contents[{i}].parts[{j}].fileData"),
        "fileData other than an http(s) image URL (Files API and gs:// URIs) can be read only by Google; send the bytes as inlineData",
    ))
}

/// `tools[].functionDeclarations` as Chat tools; Google's server tools are refused.
fn convert_tools(
    tools: Option<&Value>,
    names: &mut Vec<(String, String)>,
) -> Result<Vec<Value>, TranslateError> {
    let Some(tools) = tools else {
        return Ok(Vec::new());
    };
    let tools = tools
        .as_array()
        .ok_or_else(|| TranslateError::invalid("tools", "tools must be an array"))?;
    let mut out = Vec::new();
    for (t, tool) in tools.iter().enumerate() {
        let Some(tool) = tool.as_object() else {
            return Err(TranslateError::invalid(
                format!("tools[{t}]"),
                "each tool must be an object",
            ));
        };
        for (key, v) in tool {
            if v.is_null() {
                continue;
            }
            if key != "functionDeclarations" && key != "function_declarations" {
                return Err(TranslateError::unsupported_param(
                    format!("tools[{t}].{key}"),
                    format!("the {key} tool runs only at Google; this model's provider has no equivalent"),
                ));
            }
            let decls = v.as_array().ok_or_else(|| {
                TranslateError::invalid(
                    format!("tools[{t}].functionDeclarations"),
                    "functionDeclarations must be an array",
                )
            })?;
            for (d, decl) in decls.iter().enumerate() {
                out.push(function_tool(t, d, decl, names)?);
            }
        }
    }
    Ok(out)
}

fn function_tool(
    t: usize,
    d: usize,
    decl: &Value,
    names: &mut Vec<(String, String)>,
) -> Result<Value, TranslateError> {
    let at = || format!("tools[{t}].functionDeclarations[{d}]");
    let Some(decl) = decl.as_object() else {
        return Err(TranslateError::invalid(
            at(),
            "a declaration must be an object",
        ));
    };
    let name = get(decl, "name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| TranslateError::invalid(format!("{}.name", at()), "name is required"))?;
    let parameters = match (get(decl, "parametersJsonSchema"), get(decl, "parameters")) {
        (Some(schema), _) => schema.clone(),
        (None, Some(schema)) => json_schema(schema),
        (None, None) => json!({ "type": "object", "properties": {} }),
    };
    let mut f = Map::new();
    f.insert("name".into(), json!(chat_name(name, names)));
    if let Some(desc) = get(decl, "description").and_then(Value::as_str) {
        f.insert("description".into(), json!(desc));
    }
    f.insert("parameters".into(), parameters);
    Ok(json!({ "type": "function", "function": f }))
}

/// Gemini's OpenAPI-subset `Schema` as JSON Schema: types lower-cased, `nullable` as a
/// `null` type, integer strings (proto's int64) as numbers, `propertyOrdering` left out.
pub(crate) fn json_schema(s: &Value) -> Value {
    let Some(o) = s.as_object() else {
        return s.clone();
    };
    let mut out = Map::new();
    let nullable = o.get("nullable").and_then(Value::as_bool) == Some(true);
    for (k, v) in o {
        match k.as_str() {
            "type" => {
                if let Some(t) = v.as_str() {
                    let t = t.to_ascii_lowercase();
                    if t != "type_unspecified" {
                        out.insert(
                            "type".into(),
                            if nullable {
                                json!([t, "null"])
                            } else {
                                json!(t)
                            },
                        );
                    }
                } else {
                    out.insert(k.clone(), v.clone());
                }
            }
            "nullable" | "propertyOrdering" | "property_ordering" => {}
            "properties" => {
                let props: Map<String, Value> = v
                    .as_object()
                    .map(|p| p.iter().map(|(n, s)| (n.clone(), json_schema(s))).collect())
                    .unwrap_or_default();
                out.insert(k.clone(), Value::Object(props));
            }
            "items" => {
                out.insert(k.clone(), json_schema(v));
            }
            "anyOf" | "any_of" => {
                let list: Vec<Value> = v
                    .as_array()
                    .map(|a| a.iter().map(json_schema).collect())
                    .unwrap_or_default();
                out.insert("anyOf".into(), Value::Array(list));
            }
            "minItems" | "maxItems" | "minLength" | "maxLength" | "minProperties"
            | "maxProperties" => {
                let n = match v {
                    Value::String(s) => s.parse::<u64>().map(Value::from).unwrap_or(v.clone()),
                    _ => v.clone(),
                };
                out.insert(k.clone(), n);
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// `toolConfig.functionCallingConfig` as a Chat `tool_choice` (None: Chat's default).
fn tool_choice(
    config: Option<&Value>,
    names: &mut Vec<(String, String)>,
) -> Result<Option<Value>, TranslateError> {
    let Some(fc) = config
        .and_then(Value::as_object)
        .and_then(|c| get(c, "functionCallingConfig"))
    else {
        return Ok(None);
    };
    let mode = fc.get("mode").and_then(Value::as_str).unwrap_or("AUTO");
    let allowed: Vec<String> = fc
        .get("allowedFunctionNames")
        .or_else(|| fc.get("allowed_function_names"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|n| chat_name(n, names))
                .collect()
        })
        .unwrap_or_default();
    let choice = match mode.to_ascii_uppercase().as_str() {
        "NONE" => json!("none"),
        "AUTO" | "MODE_UNSPECIFIED" | "VALIDATED" if allowed.is_empty() => json!("auto"),
        "ANY" if allowed.is_empty() => json!("required"),
        "ANY" if allowed.len() == 1 => {
            json!({ "type": "function", "function": { "name": allowed[0] } })
        }
        m @ ("ANY" | "AUTO" | "VALIDATED" | "MODE_UNSPECIFIED") => json!({
            "type": "allowed_tools",
            "allowed_tools": {
                "mode": if m == "ANY" { "required" } else { "auto" },
                "tools": allowed.iter()
                    .map(|n| json!({ "type": "function", "function": { "name": n } }))
                    .collect::<Vec<_>>(),
            },
        }),
        _ => {
            return Err(TranslateError::invalid(
                "toolConfig.functionCallingConfig.mode",
                format!(
                    "Invalid value at 'tool_config.function_calling_config.mode' ({})",
                    mode.chars().take(32).collect::<String>()
                ),
            ))
        }
    };
    Ok(Some(choice))
}

fn number(v: &Value, at: &str) -> Result<Value, TranslateError> {
    match v {
        Value::Number(_) => Ok(v.clone()),
        _ => Err(TranslateError::invalid(
            format!("generationConfig.{at}"),
            format!("generationConfig.{at} must be a number"),
        )),
    }
}

/// `generationConfig` into the Chat body's members.
fn generation_config(
    config: &Value,
    next: Next,
    opts: &Options,
    out: &mut Map<String, Value>,
    meta: &mut RequestMeta,
    client: &mut GeminiClientMeta,
) -> Result<(), TranslateError> {
    let Some(c) = config.as_object() else {
        return Err(TranslateError::invalid(
            "generationConfig",
            "generationConfig must be an object",
        ));
    };
    if let Some(key) = c.keys().find(|k| known_as(k, GEN_KNOWN).is_none()) {
        return Err(TranslateError::unsupported_param(
            format!("generationConfig.{key}"),
            format!("Invalid JSON payload received. Unknown name \"{key}\" at 'generation_config': Cannot find field."),
        ));
    }
    for name in GEN_DROPPED {
        if get(c, name).is_some() {
            meta.drop_param(name);
        }
    }
    if let Some(n) = get(c, "candidateCount") {
        if n.as_u64() != Some(1) {
            return Err(TranslateError::unsupported_value(
                "generationConfig.candidateCount",
                "candidateCount must be 1 for this model's provider",
            ));
        }
    }
    if get(c, "responseLogprobs").and_then(Value::as_bool) == Some(true)
        || get(c, "logprobs").is_some()
    {
        return Err(TranslateError::unsupported_param(
            "generationConfig.responseLogprobs",
            "logprobs are not translated for this model's provider",
        ));
    }
    if let Some(m) = get(c, "responseModalities").and_then(Value::as_array) {
        if m.iter()
            .any(|x| !x.as_str().is_some_and(|s| s.eq_ignore_ascii_case("TEXT")))
        {
            return Err(TranslateError::unsupported_value(
                "generationConfig.responseModalities",
                "only TEXT output is available from this model's provider",
            ));
        }
    }
    for (k, what) in [("speechConfig", "speech"), ("imageConfig", "image")] {
        if get(c, k).is_some() {
            return Err(TranslateError::unsupported_param(
                format!("generationConfig.{k}"),
                format!("{what} output is not available from this model's provider"),
            ));
        }
    }
    for (gemini, chat) in [
        ("temperature", "temperature"),
        ("topP", "top_p"),
        ("seed", "seed"),
        ("presencePenalty", "presence_penalty"),
        ("frequencyPenalty", "frequency_penalty"),
    ] {
        if let Some(v) = get(c, gemini) {
            out.insert(chat.into(), number(v, gemini)?);
        }
    }
    if let Some(v) = get(c, "topK") {
        let v = number(v, "topK")?;
        match next {
            Next::Anthropic => {
                out.insert("top_k".into(), v);
            }
            // OpenAI has no top_k.
            Next::OpenAi => meta.drop_param("topK"),
        }
    }
    if let Some(v) = get(c, "maxOutputTokens") {
        let field = match (next, opts.openai_max_tokens_field) {
            (Next::OpenAi, MaxTokensField::MaxTokens) => "max_tokens",
            _ => "max_completion_tokens",
        };
        out.insert(field.into(), number(v, "maxOutputTokens")?);
    }
    if let Some(stops) = get(c, "stopSequences") {
        let list: Option<Vec<&str>> = stops
            .as_array()
            .and_then(|a| a.iter().map(Value::as_str).collect());
        let Some(list) = list else {
            return Err(TranslateError::invalid(
                "generationConfig.stopSequences",
                "stopSequences must be an array of strings",
            ));
        };
        if next == Next::OpenAi && list.len() > OPENAI_MAX_STOP {
            return Err(TranslateError::unsupported_value(
                "generationConfig.stopSequences",
                format!("this model's provider takes at most {OPENAI_MAX_STOP} stop sequences"),
            ));
        }
        if !list.is_empty() {
            out.insert("stop".into(), json!(list));
        }
    }
    response_format(c, out)?;
    if let Some(t) = get(c, "thinkingConfig") {
        thinking(t, next, opts, out, client)?;
        if out.contains_key("reasoning_effort") || out.contains_key("thinking") {
            // A level or budget as the other side's effort or budget: an approximation.
            meta.note(
                crate::translate::Code::ThinkingConverted,
                "generationConfig.thinkingConfig",
            );
        }
    }
    Ok(())
}

/// `responseMimeType` with a schema as a Chat `response_format`.
fn response_format(
    c: &Map<String, Value>,
    out: &mut Map<String, Value>,
) -> Result<(), TranslateError> {
    let mime = get(c, "responseMimeType").and_then(Value::as_str);
    let schema = get(c, "responseJsonSchema")
        .cloned()
        .or_else(|| get(c, "responseSchema").map(json_schema));
    match mime {
        None | Some("text/plain") if schema.is_none() => Ok(()),
        Some("application/json") | None => {
            let format = match schema {
                Some(schema) => json!({
                    "type": "json_schema",
                    "json_schema": { "name": "response", "schema": schema },
                }),
                None => json!({ "type": "json_object" }),
            };
            out.insert("response_format".into(), format);
            Ok(())
        }
        Some(other) => Err(TranslateError::unsupported_value(
            "generationConfig.responseMimeType",
            format!(
                "responseMimeType {} is not available from this model's provider",
                other.chars().take(64).collect::<String>()
            ),
        )),
    }
}

/// The model the Chat body names (written before the generation config).
fn opts_model(out: &Map<String, Value>) -> String {
    out.get("model")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// `thinkingConfig` as `reasoning_effort`; `includeThoughts` decides whether thoughts come back.
fn thinking(
    t: &Value,
    next: Next,
    opts: &Options,
    out: &mut Map<String, Value>,
    client: &mut GeminiClientMeta,
) -> Result<(), TranslateError> {
    let Some(t) = t.as_object() else {
        return Err(TranslateError::invalid(
            "generationConfig.thinkingConfig",
            "thinkingConfig must be an object",
        ));
    };
    client.include_thoughts = get(t, "includeThoughts").and_then(Value::as_bool) == Some(true);
    if get(t, "thinkingLevel").is_some() && get(t, "thinkingBudget").is_some() {
        return Err(TranslateError::invalid(
            "generationConfig.thinkingConfig",
            "thinkingLevel and thinkingBudget cannot both be set",
        ));
    }
    let effort = if let Some(level) = get(t, "thinkingLevel") {
        match level.as_str().map(str::to_ascii_uppercase).as_deref() {
            Some("MINIMAL") => "minimal",
            Some("LOW") => "low",
            Some("MEDIUM") => "medium",
            Some("HIGH") => "high",
            Some("THINKING_LEVEL_UNSPECIFIED") => return Ok(()),
            _ => {
                return Err(TranslateError::invalid(
                    "generationConfig.thinkingConfig.thinkingLevel",
                    "thinkingLevel must be MINIMAL, LOW, MEDIUM or HIGH",
                ))
            }
        }
    } else if let Some(budget) = get(t, "thinkingBudget") {
        // An Anthropic model that takes budgets gets the client's own (Chat's `thinking`
        // extension); the effort table would round it.
        let budget_form = next == Next::Anthropic
            && opts.thinking_style.resolve(&opts_model(out)) == ThinkingForm::Budget;
        if let Some(n) = budget.as_i64().filter(|n| *n > 0 && budget_form) {
            let n = u32::try_from(n)
                .unwrap_or(u32::MAX)
                .max(MIN_THINKING_BUDGET);
            out.insert(
                "thinking".into(),
                json!({ "type": "enabled", "budget_tokens": n }),
            );
            return Ok(());
        }
        match budget.as_i64() {
            Some(0) => "none",
            Some(n) if n < 0 => "medium",
            Some(n) => opts
                .effort_budgets
                .effort_for_budget(u32::try_from(n).unwrap_or(u32::MAX)),
            None => {
                return Err(TranslateError::invalid(
                    "generationConfig.thinkingConfig.thinkingBudget",
                    "thinkingBudget must be an integer",
                ))
            }
        }
    } else if client.include_thoughts {
        // Thoughts asked for with no level: the model's default effort.
        "medium"
    } else {
        return Ok(());
    };
    out.insert("reasoning_effort".into(), json!(effort));
    Ok(())
}
