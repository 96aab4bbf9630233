//! Chat Completions clients served by a Gemini provider (`generateContent`): the request
//! written as a Gemini body, the answer and the stream read back as Chat Completions. Pure:
//! not yet wired into `Pair` (the Gemini dialect and kind come next).
//!
//! The mapping implemented here (docs/providers-and-translation.md "Chat Completions ⇄
//! Gemini" says the same for users):
//!
//! | Chat Completions                          | Gemini                                              |
//! |-------------------------------------------|-----------------------------------------------------|
//! | `system` / `developer` messages           | `systemInstruction.parts[].text` (in order)         |
//! | `user` / `assistant` messages             | `contents[]` role `user` / `model` (same-role runs merged) |
//! | text part                                 | `{text}`                                            |
//! | `image_url` data URL / `file.file_data`   | `{inlineData:{mimeType,data}}`                      |
//! | `image_url` http(s) URL                   | `{fileData:{mimeType (guessed from the path),fileUri}}` |
//! | `input_audio`                             | `{inlineData:{mimeType: audio/<format>}}`           |
//! | assistant `tool_calls[]`                  | `{functionCall:{id?,name,args}}` (+ `thoughtSignature` opened from the id) |
//! | `tool` messages (one parallel set)        | ONE `user` content of `{functionResponse:{id?,name,response:{output}}}`, in call order |
//! | `tools[].function`                        | `tools[0].functionDeclarations[]` with `parametersJsonSchema` (root `$schema` stripped) |
//! | `tool_choice` auto/none/required          | `toolConfig.functionCallingConfig.mode` AUTO/NONE/ANY |
//! | `tool_choice` {function:{name}}           | ANY + `allowedFunctionNames:[name]`                 |
//! | `tool_choice` allowed_tools (auto/required)| VALIDATED/ANY + `allowedFunctionNames`             |
//! | `response_format` json_schema / json_object | `responseMimeType: application/json` (+ `responseJsonSchema`) |
//! | `stop`                                    | `stopSequences` (at most [`MAX_STOP_SEQUENCES`])    |
//! | `temperature`, `top_p`, `top_k`, `seed`   | `temperature`, `topP`, `topK`, `seed`               |
//! | `presence_/frequency_penalty`             | `presencePenalty` / `frequencyPenalty` (dropped on Gemini 3, which refuses them) |
//! | `max_completion_tokens` / `max_tokens`    | `maxOutputTokens` (both count thinking)             |
//! | `reasoning_effort`                        | Gemini 3: `thinkingLevel`; 2.5: `thinkingBudget` clamped to the model's range; never both; `includeThoughts` unless `none` |
//! | `n` > 1, `logprobs`, audio out, `functions`, web search | 400 naming the parameter                 |
//! | `user`, `metadata`, `store`, `parallel_tool_calls`, … | dropped, listed in [`GeminiMeta::dropped`]  |
//!
//! | Gemini answer                             | Chat Completions                                    |
//! |-------------------------------------------|-----------------------------------------------------|
//! | `candidates[0]` text parts                | `message.content` (`delta.content`)                 |
//! | `thought: true` parts                     | `reasoning_content`, only when reasoning was asked  |
//! | `functionCall` parts                      | `tool_calls[]`: id = Gemini's id or `call_<responseId>_<n>`, + [`SIGNATURE_SEPARATOR`] + sealed `thoughtSignature` |
//! | `finishReason` STOP / MAX_TOKENS          | `stop` (`tool_calls` when the answer calls tools) / `length` |
//! | safety family (SAFETY, RECITATION, BLOCKLIST, PROHIBITED_CONTENT, SPII, IMAGE_*, LANGUAGE, OTHER) | `content_filter` |
//! | anything else (MALFORMED_FUNCTION_CALL, unknown values) | `stop` (`tool_calls` with calls)          |
//! | `promptFeedback.blockReason`, no candidates | 400 error naming the reason (an error frame in a stream) |
//! | `usageMetadata`                           | `prompt_tokens` = prompt (+ tool-use prompt); `completion_tokens` = candidates + thoughts; `reasoning_tokens` = thoughts; `cached_tokens` = cachedContent |
//!
//! Thought signatures: an OpenAI client gives back only tool-call ids, so a `functionCall`
//! part's `thoughtSignature` rides in its tool call's id, sealed by the caller's
//! [`SignatureSeal`] (tamper-evident, bounded by [`MAX_CARRIED_SIGNATURE_BYTES`]). On the
//! next request an id whose token opens gives the signature back to its `functionCall` part
//! and Gemini its id without the token. In the current turn (after the last user content that
//! is not only function responses), the first `functionCall` of each model content that still
//! has no signature gets [`DUMMY_THOUGHT_SIGNATURE`], as Google documents for calls whose
//! signature is lost (history from another provider, a foreign or altered token): never a 400.
//! Signatures on text parts are not carried (Gemini does not require them back).

pub mod request;
pub mod response;
pub mod schema;
pub mod stream;

pub use request::{request, request_within};
pub use response::response;
pub use stream::Stream;

use crate::translate::EffortTable;

/// Between a tool call's id and its sealed thought signature: `<id>__rwts__<token>` (see
/// [`crate::seal::SIGNATURE_SEPARATOR`]); an id is split at its last occurrence, and only when
/// the token after it opens.
pub const SIGNATURE_SEPARATOR: &str = crate::seal::SIGNATURE_SEPARATOR;

/// Longest `thoughtSignature` (as sent, base64 text) carried in a tool call id. Observed
/// signatures are about 1 KB; beyond this cap the id stays short and the next request sends
/// [`DUMMY_THOUGHT_SIGNATURE`] instead (clients store and resend ids with every turn).
pub const MAX_CARRIED_SIGNATURE_BYTES: usize = 32 << 10;

/// The signature Google documents for function calls whose own signature is unavailable; it
/// skips validation on both the Gemini API and Vertex.
pub const DUMMY_THOUGHT_SIGNATURE: &str = "skip_thought_signature_validator";

/// Most `stopSequences` Gemini accepts.
pub const MAX_STOP_SEQUENCES: usize = 5;

/// Seals a thought signature into a token a client may carry but neither read nor forge, and
/// opens it again. The gateway implements it over its seal key (bound to the provider and the
/// client's key); tests use a fake. `open` returns None for anything it did not seal.
pub trait SignatureSeal {
    /// `sig` sealed as a base64url token; None when it cannot be sealed.
    fn seal(&self, sig: &[u8]) -> Option<String>;
    /// The signature a token carries; None for a token that is not ours or was altered.
    fn open(&self, token: &str) -> Option<Vec<u8>>;
}

/// A seal that carries nothing (no key configured): every call then gets the dummy signature.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoSeal;

impl SignatureSeal for NoSeal {
    fn seal(&self, _sig: &[u8]) -> Option<String> {
        None
    }
    fn open(&self, _token: &str) -> Option<Vec<u8>> {
        None
    }
}

/// `seal` when there is one, else [`NoSeal`].
pub fn seal_or_none<S: SignatureSeal>(seal: &Option<S>) -> &dyn SignatureSeal {
    match seal {
        Some(s) => s,
        None => &NoSeal,
    }
}

/// Translation settings for a Gemini provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeminiOptions {
    /// `reasoning_effort` → `thinkingBudget` for Gemini 2.5 models (then clamped to the
    /// model's range).
    pub effort_budgets: EffortTable,
    /// Send `functionCall.id` / `functionResponse.id` (the Gemini API takes them; Vertex has
    /// refused them on some routes, so its kind turns this off and calls match by order).
    pub call_ids: bool,
}

impl Default for GeminiOptions {
    fn default() -> Self {
        GeminiOptions {
            effort_budgets: EffortTable::default(),
            call_ids: true,
        }
    }
}

/// What the answer side needs to know about the translated request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GeminiMeta {
    /// The client asked for a stream.
    pub stream: bool,
    /// `stream_options.include_usage: true`: the stream ends with a usage chunk.
    pub include_usage: bool,
    /// `model` exactly as the client sent it.
    pub client_model: String,
    /// Model name sent upstream; used when an answer omits `modelVersion`.
    pub upstream_model: String,
    /// Unix seconds for `created`, set by the gateway (translators read no clock).
    pub created: u64,
    /// The client asked for reasoning: thought parts become `reasoning_content`.
    pub include_thoughts: bool,
    /// What the translation dropped, changed or approximated (merged into the request's).
    pub ledger: super::Ledger,
}

impl GeminiMeta {
    fn drop_param(&mut self, name: &'static str) {
        self.ledger.note(super::Code::ParamDropped, name);
    }
}

/// The Chat `finish_reason` for a Gemini `finishReason` (unknown values are a plain stop: the
/// enum grows); `calls`: the answer holds function calls (Gemini still says STOP).
pub fn finish_reason(gemini: Option<&str>, calls: bool) -> &'static str {
    match gemini {
        Some("MAX_TOKENS") => "length",
        Some(
            "SAFETY"
            | "RECITATION"
            | "LANGUAGE"
            | "OTHER"
            | "BLOCKLIST"
            | "PROHIBITED_CONTENT"
            | "SPII"
            | "IMAGE_SAFETY"
            | "IMAGE_PROHIBITED_CONTENT"
            | "IMAGE_RECITATION"
            | "IMAGE_OTHER"
            | "NO_IMAGE"
            | "ESCALATION",
        ) => "content_filter",
        _ if calls => "tool_calls",
        _ => "stop",
    }
}

/// The tool call id carrying `signature` (sealed) after `id`; `id` alone when there is none,
/// it is over [`MAX_CARRIED_SIGNATURE_BYTES`], or the seal gives nothing usable.
pub(crate) fn id_with_signature(
    id: &str,
    signature: Option<&str>,
    seal: &dyn SignatureSeal,
) -> String {
    let token = signature
        .filter(|s| !s.is_empty() && s.len() <= MAX_CARRIED_SIGNATURE_BYTES)
        .and_then(|s| seal.seal(s.as_bytes()))
        .filter(|t| !t.is_empty() && !t.contains(SIGNATURE_SEPARATOR));
    match token {
        Some(t) => format!("{id}{SIGNATURE_SEPARATOR}{t}"),
        None => id.to_owned(),
    }
}

/// A client's tool call id split into Gemini's id and the signature it carries; the id as it
/// is (and no signature) when it carries no token that opens.
pub(crate) fn split_id<'a>(id: &'a str, seal: &dyn SignatureSeal) -> (&'a str, Option<String>) {
    if let Some(at) = id.rfind(SIGNATURE_SEPARATOR) {
        let (base, rest) = id.split_at(at);
        let token = rest.get(SIGNATURE_SEPARATOR.len()..).unwrap_or("");
        if let Some(sig) = seal.open(token).and_then(|b| String::from_utf8(b).ok()) {
            if !sig.is_empty() && sig.len() <= MAX_CARRIED_SIGNATURE_BYTES {
                return (base, Some(sig));
            }
        }
    }
    (id, None)
}

/// A tool call id without the signature token this translator may have appended: what a
/// conversation that moves to another provider should carry instead (OpenAI refuses tool call
/// ids over 40 characters). Deterministic, so a call and its result stay paired.
pub fn plain_call_id(id: &str) -> &str {
    id.rfind(SIGNATURE_SEPARATOR)
        .and_then(|at| id.get(..at))
        .unwrap_or(id)
}

#[cfg(test)]
pub(crate) mod tests;
