//! Gemini as the mock plays it, on both hosts: the Gemini API (`/v1beta/models/{m}:…`,
//! `x-goog-api-key` or `?key=`, the model list) and Gemini on Vertex AI
//! (`/v1/projects/{p}/locations/{l}/publishers/google/models/{m}:…`, the bearer tokens of
//! [`super::google`]). It checks what Google checks before a model runs (the key, the
//! `parameters` schema subset, Gemini 3's thought signatures), translates the request to the
//! shape the script reads, and answers through [`script::gemini`]: one body, an SSE stream or a
//! streamed JSON array, split across writes at shifting offsets (`mock:split=N` pieces).
//! Pure: the clock is a parameter.

use std::time::SystemTime;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::cloud::{json_reply, percent_decode, CloudDirectives};
use super::fault::{self, Fault, FaultTable, RESET_GRACE};
use super::google::Tokens;
use super::script::gemini::{self as render, error_reply, status_reply, thought_signature, Form};
use super::script::{Api, Defaults, Step};

/// Signature values Google documents for skipping the check (calls a model did not make).
pub const SKIP_SIGNATURES: &[&str] = &[
    "skip_thought_signature_validator",
    "context_engineering_is_the_way_to_go",
];
/// Keywords Gemini's `parameters` (its OpenAPI subset `Schema`) knows; any other is refused.
pub const SCHEMA_FIELDS: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];
/// Models `GET /v1beta/models` lists (any model can be called).
pub const MODELS: &[&str] = &[
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "gemini-3-pro-preview",
    "gemini-3-flash-preview",
];
/// `max_tokens` given to the script when `maxOutputTokens` is absent.
const DEFAULT_MAX_TOKENS: u64 = 65_536;
/// Deepest schema nesting walked; deeper levels are not checked.
const MAX_SCHEMA_DEPTH: usize = 64;
const MISSING_KEY: &str = "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.";
const BAD_KEY: &str = "API key not valid. Please pass a valid API key.";

/// Which Google host a path is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// The Gemini API (`generativelanguage.googleapis.com`).
    Api,
    /// Vertex AI (`{location}-aiplatform.googleapis.com`).
    Vertex,
}

/// What a Gemini path asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `:generateContent`.
    Generate(String),
    /// `:streamGenerateContent`.
    Stream(String),
    /// `:countTokens`.
    CountTokens(String),
    /// `GET /v1beta/models`.
    List,
    /// `GET /v1beta/models/{m}`.
    Get(String),
}

impl Op {
    /// The model a request names, for the record.
    pub fn model(&self) -> Option<&str> {
        match self {
            Self::Generate(m) | Self::Stream(m) | Self::CountTokens(m) | Self::Get(m) => Some(m),
            Self::List => None,
        }
    }
}

fn model_verb(rest: &str) -> Option<Op> {
    let (model, verb) = match rest.rsplit_once(':') {
        Some((m, v)) => (m, Some(v)),
        None => (rest, None),
    };
    if model.is_empty() || model.contains('/') {
        return None;
    }
    let model = percent_decode(model, false).unwrap_or_else(|| model.to_owned());
    match verb {
        Some("generateContent") => Some(Op::Generate(model)),
        Some("streamGenerateContent") => Some(Op::Stream(model)),
        Some("countTokens") => Some(Op::CountTokens(model)),
        None => Some(Op::Get(model)),
        _ => None,
    }
}

/// The host and operation of a Gemini path (query allowed); `None`: not one.
pub fn route(path: &str) -> Option<(Host, Op)> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    if path == "/v1beta/models" {
        return Some((Host::Api, Op::List));
    }
    if let Some(rest) = path.strip_prefix("/v1beta/models/") {
        return model_verb(rest).map(|op| (Host::Api, op));
    }
    let models =
        super::cloud::vertex_models(path, &["/v1/projects/", "/v1beta1/projects/"], "google")?;
    match model_verb(models)? {
        Op::Get(_) => None,
        op => Some((Host::Vertex, op)),
    }
}

/// The request's parts the Gemini side reads.
pub struct GeminiRequest<'a> {
    /// Method.
    pub method: &'a str,
    /// The query string (after `?`), if any.
    pub query: Option<&'a str>,
    /// `x-goog-api-key` header value.
    pub api_key: Option<&'a [u8]>,
    /// `Authorization` header value.
    pub authorization: Option<&'a [u8]>,
    /// Body.
    pub body: &'a [u8],
}

impl GeminiRequest<'_> {
    fn query_value(&self, key: &str) -> Option<String> {
        self.query?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == key).then(|| percent_decode(v, true).unwrap_or_else(|| v.to_owned()))
        })
    }

    /// The API key presented, header first.
    fn key(&self) -> Option<String> {
        self.api_key
            .map(|k| String::from_utf8_lossy(k).trim().to_owned())
            .or_else(|| self.query_value("key"))
            .filter(|k| !k.is_empty())
    }
}

/// Google's 400 for a key it does not know.
fn bad_key(form: Form) -> Vec<Step> {
    error_reply(
        400,
        BAD_KEY,
        Some(json!([
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
             "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}},
            {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": BAD_KEY},
        ])),
        form,
    )
}

/// Checks the caller: a key on the Gemini API (any, but one starting `bad`), a bearer the mock
/// issued on Vertex.
fn authenticate(
    host: Host,
    req: &GeminiRequest<'_>,
    tokens: &Tokens,
    now: SystemTime,
    form: Form,
) -> Result<(), Vec<Step>> {
    match host {
        Host::Api => match req.key() {
            None => Err(error_reply(403, MISSING_KEY, None, form)),
            Some(k) if k.starts_with("bad") => Err(bad_key(form)),
            Some(_) => Ok(()),
        },
        Host::Vertex => {
            let bearer = req
                .authorization
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| {
                    v.get(..7)
                        .filter(|s| s.eq_ignore_ascii_case("bearer "))
                        .and(v.get(7..))
                });
            if bearer.is_some_and(|t| tokens.accepts(t.trim(), now)) {
                Ok(())
            } else {
                Err(error_reply(
                    401,
                    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
                    None,
                    form,
                ))
            }
        }
    }
}

/// The whole answer to one Gemini request.
pub fn plan(
    host: Host,
    op: &Op,
    req: &GeminiRequest<'_>,
    tokens: &Tokens,
    faults: &FaultTable,
    defaults: &Defaults,
    now: SystemTime,
) -> Vec<Step> {
    let form = match op {
        Op::Stream(_) if req.query_value("alt").as_deref() == Some("sse") => Form::Sse,
        Op::Stream(_) => Form::JsonArray,
        _ => Form::Unary,
    };
    let wanted = if matches!(op, Op::List | Op::Get(_)) {
        "GET"
    } else {
        "POST"
    };
    if req.method != wanted {
        return error_reply(404, "Method not found.", None, form);
    }
    if let Err(steps) = authenticate(host, req, tokens, now, form) {
        return steps;
    }
    match op {
        Op::List => json_reply(
            200,
            Vec::new(),
            &json!({"models": MODELS.iter().map(|m| model_entry(m)).collect::<Vec<_>>()}),
        ),
        Op::Get(m) if MODELS.contains(&m.as_str()) => json_reply(200, Vec::new(), &model_entry(m)),
        Op::Get(m) => error_reply(
            404,
            &format!("models/{m} is not found for API version v1beta, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods."),
            None,
            form,
        ),
        Op::CountTokens(_) => count_tokens(host, req.body),
        Op::Generate(model) | Op::Stream(model) => {
            generate(host, model, form, req, faults, defaults)
        }
    }
}

fn model_entry(model: &str) -> Value {
    let version = model
        .strip_prefix("gemini-")
        .and_then(|r| r.split('-').next())
        .unwrap_or("1");
    json!({
        "name": format!("models/{model}"),
        "version": version,
        "displayName": model,
        "description": "A Gemini model played by the ringway mock.",
        "inputTokenLimit": 1_048_576,
        "outputTokenLimit": 65_536,
        "supportedGenerationMethods": ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"],
        "temperature": 1.0,
        "topP": 0.95,
        "topK": 64,
        "maxTemperature": 2.0,
        "thinking": true,
    })
}

fn invalid(message: &str, form: Form) -> Vec<Step> {
    error_reply(400, message, None, form)
}

fn count_tokens(host: Host, body: &[u8]) -> Vec<Step> {
    let Ok(root) = serde_json::from_slice::<Value>(body) else {
        return invalid(
            "Invalid JSON payload received. Unexpected token.",
            Form::Unary,
        );
    };
    let inner = root.get("generateContentRequest").unwrap_or(&root);
    let text = last_user_text(inner.get("contents"));
    if let Some(status) = render::status_directive(&text) {
        return status_reply(status, Form::Unary);
    }
    let tokens = u64::try_from(body.len().div_ceil(4)).unwrap_or(u64::MAX);
    let mut reply = json!({
        "totalTokens": tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens}],
    });
    if host == Host::Vertex {
        reply["totalBillableCharacters"] = Value::from(u64::try_from(body.len()).unwrap_or(0));
    }
    json_reply(200, Vec::new(), &reply)
}

/// A field under its JSON name or its proto name (Google's parsers take both).
fn field<'v>(obj: &'v Value, camel: &str, snake: &str) -> Option<&'v Value> {
    obj.get(camel).or_else(|| obj.get(snake))
}

fn parts(content: &Value) -> &[Value] {
    content
        .get("parts")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn role(content: &Value) -> &str {
    content
        .get("role")
        .and_then(Value::as_str)
        .unwrap_or("user")
}

/// Whether a user content holds something besides function responses (a turn's start).
fn is_standard_user(content: &Value) -> bool {
    role(content) == "user"
        && parts(content)
            .iter()
            .any(|p| field(p, "functionResponse", "function_response").is_none())
}

/// Text of the last user content that has text: directives live there.
fn last_user_text(contents: Option<&Value>) -> String {
    let Some(contents) = contents.and_then(Value::as_array) else {
        return String::new();
    };
    contents
        .iter()
        .rev()
        .filter(|c| role(c) == "user")
        .map(|c| {
            parts(c)
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .find(|t| !t.trim().is_empty())
        .unwrap_or_default()
}

/// Gemini 3's rule: in the current turn (after the last standard user content), the first
/// functionCall part of each model content carries the signature it was given.
pub fn check_signatures(contents: &[Value]) -> Result<(), String> {
    let start = contents
        .iter()
        .rposition(is_standard_user)
        .map_or(0, |i| i + 1);
    for (i, content) in contents.iter().enumerate().skip(start) {
        if role(content) != "model" {
            continue;
        }
        let first_call = parts(content).iter().find_map(|p| {
            let call = field(p, "functionCall", "function_call")?;
            Some((p, call))
        });
        let Some((part, call)) = first_call else {
            continue;
        };
        let name = call.get("name").and_then(Value::as_str).unwrap_or_default();
        let args = call.get("args").cloned().unwrap_or_else(|| json!({}));
        match field(part, "thoughtSignature", "thought_signature").and_then(Value::as_str) {
            None => {
                return Err(format!(
                    "Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly, and missing thought_signature may lead to degraded model performance. Additional data, function call `default_api:{name}` , position {}. Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details.",
                    i + 1
                ))
            }
            Some(s) if SKIP_SIGNATURES.contains(&s) => {}
            // Signatures are bytes: either base64 alphabet, padded or not, is the same one.
            Some(s) if same_bytes(s, &thought_signature(name, &args)) => {}
            Some(_) => return Err("Corrupted thought signature.".to_owned()),
        }
    }
    Ok(())
}

/// Do two base64 texts (standard or URL-safe, padded or not) hold the same bytes?
fn same_bytes(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.trim_end_matches('=')
            .chars()
            .map(|c| match c {
                '-' => '+',
                '_' => '/',
                c => c,
            })
            .collect::<String>()
    };
    norm(a) == norm(b)
}

/// `snake_case` as the camelCase name Google's JSON also takes (`property_ordering`).
fn camel(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut up = false;
    for c in key.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.push(c.to_ascii_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Every keyword outside Gemini's schema subset, with Google's field path.
pub fn schema_violations(
    schema: &Value,
    path: &str,
    depth: usize,
    out: &mut Vec<(String, String)>,
) {
    let Some(obj) = schema.as_object() else {
        return;
    };
    if depth > MAX_SCHEMA_DEPTH {
        return;
    }
    for key in obj.keys() {
        if !SCHEMA_FIELDS.contains(&camel(key).as_str()) {
            out.push((
                path.to_owned(),
                format!("Invalid JSON payload received. Unknown name \"{key}\" at '{path}': Cannot find field."),
            ));
        }
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (i, (_, prop)) in props.iter().enumerate() {
            schema_violations(
                prop,
                &format!("{path}.properties[{i}].value"),
                depth + 1,
                out,
            );
        }
    }
    if let Some(items) = obj.get("items") {
        schema_violations(items, &format!("{path}.items"), depth + 1, out);
    }
    if let Some(any) = obj.get("anyOf").and_then(Value::as_array) {
        for (i, s) in any.iter().enumerate() {
            schema_violations(s, &format!("{path}.any_of[{i}]"), depth + 1, out);
        }
    }
}

fn check_schemas(root: &Value) -> Result<(), Vec<(String, String)>> {
    let mut out = Vec::new();
    let tools = root.get("tools").and_then(Value::as_array);
    for (t, tool) in tools.into_iter().flatten().enumerate() {
        let decls =
            field(tool, "functionDeclarations", "function_declarations").and_then(Value::as_array);
        for (f, decl) in decls.into_iter().flatten().enumerate() {
            if let Some(params) = decl.get("parameters") {
                let path = format!("tools[{t}].function_declarations[{f}].parameters");
                schema_violations(params, &path, 0, &mut out);
            }
        }
    }
    // Structured output's `responseSchema` is the same subset (`responseJsonSchema` is not).
    let response_schema = field(root, "generationConfig", "generation_config")
        .and_then(|c| field(c, "responseSchema", "response_schema"));
    if let Some(schema) = response_schema {
        schema_violations(schema, "generation_config.response_schema", 0, &mut out);
    }
    if out.is_empty() {
        Ok(())
    } else {
        Err(out)
    }
}

/// The Gemini request in the Anthropic shape the script reads.
fn to_script_body(model: &str, root: &Value, contents: &[Value]) -> Value {
    let mut messages = Vec::new();
    for (j, content) in contents.iter().enumerate() {
        let mut blocks = Vec::new();
        for (k, p) in parts(content).iter().enumerate() {
            if let Some(call) = field(p, "functionCall", "function_call") {
                let name = call.get("name").and_then(Value::as_str).unwrap_or_default();
                let id = call
                    .get("id")
                    .and_then(Value::as_str)
                    .map_or_else(|| format!("call_{j}_{k}"), str::to_owned);
                blocks.push(json!({"type": "tool_use", "id": id, "name": name,
                    "input": call.get("args").cloned().unwrap_or_else(|| json!({}))}));
            } else if let Some(resp) = field(p, "functionResponse", "function_response") {
                let name = resp.get("name").and_then(Value::as_str).unwrap_or_default();
                let id = resp.get("id").and_then(Value::as_str).unwrap_or(name);
                let response = resp.get("response").cloned().unwrap_or(Value::Null);
                let text = ["output", "result", "content"]
                    .iter()
                    .find_map(|k| response.get(k).and_then(Value::as_str).map(str::to_owned))
                    .unwrap_or_else(|| response.to_string());
                blocks.push(json!({"type": "tool_result", "tool_use_id": id, "content": text}));
            } else if let Some(text) = p.get("text").and_then(Value::as_str) {
                if p.get("thought").and_then(Value::as_bool) != Some(true) {
                    blocks.push(json!({"type": "text", "text": text}));
                }
            }
        }
        if blocks.is_empty() {
            continue;
        }
        let role = if role(content) == "model" {
            "assistant"
        } else {
            "user"
        };
        messages.push(json!({"role": role, "content": blocks}));
    }
    if messages.is_empty() {
        messages.push(json!({"role": "user", "content": " "}));
    }
    let config = field(root, "generationConfig", "generation_config");
    let max_tokens = config
        .and_then(|c| field(c, "maxOutputTokens", "max_output_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_MAX_TOKENS);
    let stops = config
        .and_then(|c| field(c, "stopSequences", "stop_sequences"))
        .cloned()
        .unwrap_or_else(|| json!([]));
    let mut tools = Vec::new();
    for tool in root
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let decls =
            field(tool, "functionDeclarations", "function_declarations").and_then(Value::as_array);
        for decl in decls.into_iter().flatten() {
            let schema = decl
                .get("parameters")
                .or_else(|| field(decl, "parametersJsonSchema", "parameters_json_schema"))
                .cloned()
                .unwrap_or_else(|| json!({"type": "object"}));
            tools.push(json!({"name": decl.get("name").cloned().unwrap_or(Value::Null), "input_schema": schema}));
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), Value::from(model));
    body.insert("max_tokens".into(), Value::from(max_tokens));
    body.insert("messages".into(), Value::Array(messages));
    body.insert("stop_sequences".into(), stops);
    body.insert("tools".into(), Value::Array(tools));
    let calling = field(root, "toolConfig", "tool_config")
        .and_then(|c| field(c, "functionCallingConfig", "function_calling_config"));
    let mode = calling.and_then(|c| c.get("mode")).and_then(Value::as_str);
    let allowed = calling
        .and_then(|c| field(c, "allowedFunctionNames", "allowed_function_names"))
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str);
    match (mode, allowed) {
        (Some("NONE"), _) => {
            body.insert("tool_choice".into(), json!({"type": "none"}));
        }
        (Some("ANY"), Some(name)) => {
            body.insert("tool_choice".into(), json!({"type": "tool", "name": name}));
        }
        _ => {}
    }
    Value::Object(body)
}

fn generate(
    host: Host,
    model: &str,
    form: Form,
    req: &GeminiRequest<'_>,
    faults: &FaultTable,
    defaults: &Defaults,
) -> Vec<Step> {
    let Ok(root) = serde_json::from_slice::<Value>(req.body) else {
        return invalid("Invalid JSON payload received. Unexpected token.", form);
    };
    let contents = match root.get("contents") {
        Some(Value::Array(c)) if !c.is_empty() => c.as_slice(),
        _ => {
            return invalid(
                "* GenerateContentRequest.contents: contents is not specified\n",
                form,
            )
        }
    };
    if let Err(violations) = check_schemas(&root) {
        let message: Vec<&str> = violations.iter().map(|(_, d)| d.as_str()).collect();
        let details = json!([{
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": violations.iter().map(|(f, d)| json!({"field": f, "description": d})).collect::<Vec<_>>(),
        }]);
        return error_reply(400, &message.join("\n"), Some(details), form);
    }
    if model.contains("gemini-3") {
        if let Err(message) = check_signatures(contents) {
            return invalid(&message, form);
        }
    }
    let text = last_user_text(Some(&root["contents"]));
    let dirs = CloudDirectives::parse(&text);
    if dirs.throttle {
        return status_reply(429, form);
    }
    let include_thoughts = field(&root, "generationConfig", "generation_config")
        .and_then(|c| field(c, "thinkingConfig", "thinking_config"))
        .and_then(|t| field(t, "includeThoughts", "include_thoughts"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let script_body = to_script_body(model, &root, contents)
        .to_string()
        .into_bytes();
    let call = render::GeminiCall {
        body: &script_body,
        input_tokens: u64::try_from(req.body.len().div_ceil(4)).unwrap_or(u64::MAX),
        model,
        form,
        include_thoughts,
        signatures: model.contains("gemini-3"),
        vertex: host == Host::Vertex,
    };
    let normal = || render::plan(&call, defaults);
    let steps = match faults.lookup(Some(model)).clone() {
        Fault::None => normal(),
        f @ (Fault::Reset | Fault::Stall | Fault::Garbage) => {
            fault::plan(&f, Api::AnthropicMessages, &script_body, defaults)
        }
        Fault::Status {
            code,
            retry_after,
            retry_after_ms,
        } => {
            let mut steps = status_reply(code, form);
            for step in &mut steps {
                if let Step::Head { headers, .. } = step {
                    headers.extend(retry_after.map(|s| ("retry-after", s.to_string())));
                    headers.extend(retry_after_ms.map(|s| ("retry-after-ms", s.to_string())));
                }
            }
            steps
        }
        Fault::EchoKey => {
            let key = req.key().unwrap_or_default();
            let mut steps = error_reply(
                400,
                &format!("{BAD_KEY} The key you sent was {key}."),
                None,
                form,
            );
            for step in &mut steps {
                if let Step::Head { headers, .. } = step {
                    headers.push(("x-mock-key", key.clone()));
                    headers.push(("x-ratelimit-key", fault::mask_key(&key)));
                }
            }
            steps
        }
        Fault::SlowFirstToken(wait) => {
            let mut steps = normal();
            let at = steps
                .iter()
                .position(|s| {
                    matches!(
                        s,
                        Step::Head {
                            content_length: None,
                            ..
                        }
                    )
                })
                .map_or(0, |i| i + 1);
            steps.insert(at, Step::Sleep(wait));
            steps
        }
        f @ (Fault::ResetMidstream | Fault::ResetBeforeContent) => {
            let steps = normal();
            let mut out = Vec::new();
            let mut data_kept = 0;
            let keep = usize::from(f == Fault::ResetMidstream);
            for s in steps {
                match s {
                    Step::Head { .. } => out.push(s),
                    Step::Data(d) if data_kept < keep.max(usize::from(form == Form::Unary)) => {
                        let d = if form == Form::Unary {
                            d.slice(..d.len() / 2)
                        } else {
                            d
                        };
                        out.push(Step::Data(d));
                        data_kept += 1;
                    }
                    Step::Sleep(_) if data_kept == 0 => out.push(s),
                    _ => {}
                }
            }
            out.push(Step::Sleep(RESET_GRACE));
            out.push(Step::Reset);
            out
        }
        Fault::ErrorEvent => {
            if form == Form::Unary {
                status_reply(503, form)
            } else {
                let error = render::error_value(
                    503,
                    "The model is overloaded. Please try again later.",
                    None,
                );
                let frame = match form {
                    Form::Sse => format!("data: {error}\r\n\r\n"),
                    _ => format!("[{error}]"),
                };
                let mut steps: Vec<Step> = normal()
                    .into_iter()
                    .take_while(|s| !matches!(s, Step::Data(_)))
                    .filter(|s| matches!(s, Step::Head { .. }))
                    .collect();
                steps.push(Step::Data(Bytes::from(frame)));
                steps.push(Step::End);
                steps
            }
        }
    };
    if form == Form::Unary {
        steps
    } else {
        split(steps, dirs.split)
    }
}

/// Stream bytes cut anywhere: each write in two at an offset that moves from write to write,
/// or in `split`-byte pieces each followed by a pause.
fn split(steps: Vec<Step>, split: Option<usize>) -> Vec<Step> {
    let mut out = Vec::with_capacity(steps.len() * 2);
    let mut salt = 0usize;
    for step in steps {
        let Step::Data(bytes) = step else {
            out.push(step);
            continue;
        };
        salt += 1;
        super::cloud::push_pieces(&mut out, bytes, split, salt);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/v1beta/models"), Some((Host::Api, Op::List)));
        assert_eq!(
            route("/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"),
            Some((Host::Api, Op::Stream("gemini-2.5-pro".into())))
        );
        assert_eq!(
            route("/v1beta/models/gemini-2.5-pro"),
            Some((Host::Api, Op::Get("gemini-2.5-pro".into())))
        );
        assert_eq!(
            route("/v1/projects/p/locations/global/publishers/google/models/gemini-3-pro-preview:countTokens"),
            Some((Host::Vertex, Op::CountTokens("gemini-3-pro-preview".into())))
        );
        assert_eq!(
            route("/v1/projects/p/locations/l/publishers/anthropic/models/c:rawPredict"),
            None
        );
        assert_eq!(route("/v1beta/models/m:embedContent"), None);
        assert_eq!(route("/v1/models"), None);
    }

    #[test]
    fn schema_subset() {
        let root = json!({"tools": [{"functionDeclarations": [
            {"name": "a", "parameters": {"type": "object", "properties": {"x": {"type": "string"}}}},
            {"name": "b", "parameters": {"type": "object", "$schema": "s", "additionalProperties": false,
                "properties": {"k": {"const": 1}, "l": {"type": "array", "items": {"$ref": "#/x"}}}},
             "parametersJsonSchema": {"additionalProperties": false}},
        ]}]});
        let v = check_schemas(&root).unwrap_err();
        let fields: Vec<&str> = v.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "tools[0].function_declarations[1].parameters",
                "tools[0].function_declarations[1].parameters",
                "tools[0].function_declarations[1].parameters.properties[0].value",
                "tools[0].function_declarations[1].parameters.properties[1].value.items",
            ]
        );
        assert!(v[0].1.contains("Unknown name \"$schema\""), "{}", v[0].1);
        let v = check_schemas(&json!({"generationConfig": {
            "responseSchema": {"type": "object", "additionalProperties": false},
            "responseJsonSchema": {"additionalProperties": false}}}))
        .unwrap_err();
        assert_eq!(v[0].0, "generation_config.response_schema");
        assert!(
            check_schemas(&json!({"tools": [{"functionDeclarations": [{"name": "c",
            "parametersJsonSchema": {"$schema": "x", "additionalProperties": false}}]}]}))
            .is_ok()
        );
    }

    #[test]
    fn signature_rule() {
        let args = json!({"path": "a.txt"});
        let good = thought_signature("read", &args);
        let turn = |sig: Option<&str>| {
            let mut call = json!({"functionCall": {"name": "read", "args": args}});
            if let Some(s) = sig {
                call["thoughtSignature"] = Value::from(s);
            }
            vec![
                json!({"role": "user", "parts": [{"text": "read it"}]}),
                json!({"role": "model", "parts": [call, {"functionCall": {"name": "read", "args": {}}}]}),
                json!({"role": "user", "parts": [{"functionResponse": {"name": "read", "response": {}}}]}),
            ]
        };
        assert!(check_signatures(&turn(Some(&good))).is_ok());
        assert!(check_signatures(&turn(Some("skip_thought_signature_validator"))).is_ok());
        let e = check_signatures(&turn(None)).unwrap_err();
        assert!(
            e.starts_with("Function call is missing a thought_signature in functionCall parts."),
            "{e}"
        );
        assert!(e.contains("`default_api:read` , position 2."), "{e}");
        assert_eq!(
            check_signatures(&turn(Some("AAAA"))).unwrap_err(),
            "Corrupted thought signature."
        );
        // A previous turn is not checked.
        let mut older = turn(None);
        older.push(json!({"role": "model", "parts": [{"text": "done"}]}));
        older.push(json!({"role": "user", "parts": [{"text": "next"}]}));
        assert!(check_signatures(&older).is_ok());
    }

    /// Directive mixes in every form: deterministic, and every body decodes as Gemini's.
    #[test]
    fn every_form_decodes() {
        const WORDS: &[&str] = &[
            "mock:parallel",
            "mock:thinking",
            "mock:refusal",
            "mock:finish=SAFETY",
            "mock:finish=MAX_TOKENS",
            "mock:prompt_blocked",
            "mock:cached=3",
            "mock:midstream_error",
            "mock:reset",
            "mock:status=429",
            "mock:split=5",
            "mock:notools",
            "mock:tokens=2",
            "",
        ];
        let forms = [Form::Unary, Form::Sse, Form::JsonArray];
        let mut n = 0usize;
        for (a, first) in WORDS.iter().enumerate() {
            for second in WORDS.iter().skip(a) {
                n += 1;
                let form = forms[n % 3];
                let model = if n.is_multiple_of(2) {
                    "gemini-3-flash-preview"
                } else {
                    "gemini-2.5-pro"
                };
                let body = json!({
                    "contents": [{"role": "user", "parts": [{"text": format!("hi {first} {second}")}]}],
                    "tools": if n % 4 < 2 { json!([{"functionDeclarations": [{"name": "f",
                        "parameters": {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}}]}]) } else { json!([]) },
                    "generationConfig": {"thinkingConfig": {"includeThoughts": n.is_multiple_of(3)}},
                })
                .to_string();
                let req = GeminiRequest {
                    method: "POST",
                    query: None,
                    api_key: Some(b"k"),
                    authorization: None,
                    body: body.as_bytes(),
                };
                let run = || {
                    generate(
                        Host::Api,
                        model,
                        form,
                        &req,
                        &FaultTable::default(),
                        &Defaults::default(),
                    )
                };
                let steps = run();
                assert_eq!(steps, run());
                if matches!(steps.last(), Some(Step::Reset | Step::Stall)) {
                    continue;
                }
                let status = steps.iter().find_map(|s| match s {
                    Step::Head { status, .. } => Some(*status),
                    _ => None,
                });
                let bytes: Vec<u8> = steps
                    .iter()
                    .filter_map(|s| match s {
                        Step::Data(d) => Some(d.to_vec()),
                        _ => None,
                    })
                    .flatten()
                    .collect();
                let text = String::from_utf8(bytes).unwrap();
                let values: Vec<Value> = match form {
                    Form::Sse if status == Some(200) => text
                        .split("\r\n\r\n")
                        .filter(|e| !e.is_empty())
                        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
                        .collect(),
                    Form::JsonArray => {
                        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
                    }
                    _ => vec![serde_json::from_str(&text).unwrap()],
                };
                let last = values.last().unwrap();
                assert!(
                    last.get("error").is_some()
                        || last.get("promptFeedback").is_some()
                        || last["candidates"][0]["finishReason"].is_string(),
                    "{first} {second} {form:?}: {last}"
                );
            }
        }
    }

    #[test]
    fn tool_config_modes() {
        let answer = |config: Value| {
            let body = json!({
                "contents": [{"role": "user", "parts": [{"text": "go"}]}],
                "tools": [{"functionDeclarations": [{"name": "f"}, {"name": "g"}]}],
                "toolConfig": {"functionCallingConfig": config},
            })
            .to_string();
            let req = GeminiRequest {
                method: "POST",
                query: None,
                api_key: Some(b"k"),
                authorization: None,
                body: body.as_bytes(),
            };
            let steps = generate(
                Host::Api,
                "gemini-2.5-pro",
                Form::Unary,
                &req,
                &FaultTable::default(),
                &Defaults::default(),
            );
            let data = steps.iter().find_map(|s| match s {
                Step::Data(d) => Some(d.clone()),
                _ => None,
            });
            let v: Value = serde_json::from_slice(&data.unwrap()).unwrap();
            v["candidates"][0]["content"]["parts"][0].clone()
        };
        assert_eq!(answer(json!({"mode": "AUTO"}))["functionCall"]["name"], "f");
        assert_eq!(
            answer(json!({"mode": "ANY", "allowedFunctionNames": ["g"]}))["functionCall"]["name"],
            "g"
        );
        assert!(answer(json!({"mode": "NONE"}))["text"].is_string());
    }

    #[test]
    fn split_keeps_every_byte() {
        let steps = vec![Step::Data(Bytes::from_static(b"0123456789")), Step::End];
        for n in [None, Some(3)] {
            let out = split(steps.clone(), n);
            let joined: Vec<u8> = out
                .iter()
                .filter_map(|s| match s {
                    Step::Data(d) => Some(d.to_vec()),
                    _ => None,
                })
                .flatten()
                .collect();
            assert_eq!(joined, b"0123456789");
        }
    }
}
