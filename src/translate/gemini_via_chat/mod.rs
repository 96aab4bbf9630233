//! Gemini clients (`generateContent`) served by a Chat Completions provider, and through Chat
//! by an Anthropic one: the Gemini request written as a Chat body, the Chat answer and stream
//! read back as Gemini's. Pure: bytes in, bytes out; seals come in through [`SignatureSeal`].
//!
//! The mapping (docs/providers-and-translation.md "Gemini clients" says the same for users):
//!
//! | Gemini request                             | Chat Completions                                   |
//! |--------------------------------------------|----------------------------------------------------|
//! | `systemInstruction.parts[].text`           | one `system` message (texts joined by a blank line) |
//! | `contents[]` role `user` / `model`         | `user` / `assistant` messages, in order           |
//! | `{text}`                                   | text part (a lone text is the string `content`)   |
//! | `{inlineData}` image / PDF or text / audio | `image_url` data URL / `file.file_data` (PDF; `text/*` decoded into a text part) / `input_audio` (wav, mp3) |
//! | `{fileData}` http(s) image                 | `image_url` URL; other URIs 400 (only Google can read them) |
//! | model `{functionCall:{id?,name,args}}`     | assistant `tool_calls[]` (id: Gemini's, or `call_<content>_<part>`) |
//! | user `{functionResponse:{id?,name,response}}` | `tool` message for the call it answers (by id, else the first unanswered call of that name); `response.output` when it is all there is, else the whole `response` as JSON |
//! | `thought: true` parts and their `thoughtSignature` | assistant `thinking_blocks` when the signature is one this gateway sealed (an Anthropic thinking block), else dropped |
//! | `tools[].functionDeclarations[]`           | `tools[].function` (`parametersJsonSchema` as is; `parameters`, Gemini's OpenAPI subset, turned into JSON Schema) |
//! | `toolConfig.functionCallingConfig` AUTO / ANY / NONE / VALIDATED | `tool_choice` auto / required / none / auto; `allowedFunctionNames` one name → that function, several → `allowed_tools` |
//! | `generationConfig.maxOutputTokens`         | `max_completion_tokens` (or `max_tokens`, per the provider's option) |
//! | `temperature`, `topP`, `seed`, penalties   | the same; `topK` to Anthropic only (dropped and listed for OpenAI) |
//! | `stopSequences`                            | `stop` (at most 4 for an OpenAI provider, else 400) |
//! | `responseMimeType: application/json` + `responseJsonSchema` / `responseSchema` | `response_format` json_schema (json_object without a schema) |
//! | `thinkingConfig.thinkingLevel` / `thinkingBudget` | `reasoning_effort` (level as is; budget 0 → `none`, -1 → `medium`, else by the effort table); a positive budget to an Anthropic model that takes budgets is its `thinking.budget_tokens` exactly |
//! | `thinkingConfig.includeThoughts`           | thoughts come back as `thought: true` parts       |
//! | `candidateCount` > 1, logprobs, non-text `responseModalities`, `cachedContent`, Google's server tools | 400 naming the field |
//! | `safetySettings`, `labels`, `mediaResolution`, … | dropped, listed                           |
//!
//! | Chat answer                                | Gemini answer                                      |
//! |--------------------------------------------|----------------------------------------------------|
//! | `reasoning_content`                        | a `thought: true` text part, when the client asked for thoughts |
//! | `thinking_blocks` (from Anthropic)         | sealed into the `thoughtSignature` of the next part (the first function call or text) |
//! | `content` / `refusal`                      | a text part                                        |
//! | `tool_calls[]`                             | `functionCall` parts (`id` = the call's id, `args` an object) |
//! | `finish_reason` stop, tool_calls / length / content_filter | `STOP` / `MAX_TOKENS` / `SAFETY`       |
//! | `usage`                                    | `usageMetadata`: prompt (cached part in `cachedContentTokenCount`), candidates = completion − reasoning, thoughts = reasoning, total |
//!
//! Anthropic thinking blocks must come back signed on the next tool turn, and a Gemini client
//! gives back its parts' `thoughtSignature`s (Gemini CLI and the SDKs keep them; some drop
//! thought parts). So the blocks (text and signature) ride sealed in the `thoughtSignature` of
//! the part that follows them: base64 (signatures are bytes on Gemini's wire) of
//! [`CARRIER_MAGIC`] and the sealed token, bounded by [`MAX_CARRIED_THINKING_BYTES`]. A carrier that does not open (another key, another provider,
//! altered) is dropped, and the Chat→Anthropic leg then runs that turn without thinking, as it
//! does for every client that does not echo thinking.

pub mod request;
pub mod response;
pub mod stream;

#[cfg(test)]
mod tests;

pub use request::request_within;
pub use response::response_into;
pub use stream::Stream;

use serde_json::{json, Value};

use super::chat_via_gemini::SignatureSeal;
use crate::seal::{Purpose, SealKey};

/// What a `thoughtSignature` carrying sealed thinking blocks starts with, before base64:
/// signatures are bytes on Gemini's wire (the Python SDK decodes them and sends them back in
/// URL-safe base64), so a carrier is base64 of these bytes and the sealed token.
pub const CARRIER_MAGIC: &[u8] = b"rwtc1";

/// How every carrier's base64 text begins (the first 4½ bytes of [`CARRIER_MAGIC`], the same
/// in both alphabets): what a conversation moving to a Gemini provider is searched for.
pub const CARRIER_PREFIX: &str = "cnd0Yz";

/// Most bytes of thinking (texts and signatures) one carrier holds; beyond it the blocks are
/// not carried (the next turn runs without thinking) rather than growing every later request.
pub const MAX_CARRIED_THINKING_BYTES: usize = 64 << 10;

/// Longest Gemini `stopSequences` an OpenAI provider takes (4).
pub const OPENAI_MAX_STOP: usize = crate::translate::OPENAI_MAX_STOP;

/// What the answer side of a Gemini client's translated request needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GeminiClientMeta {
    /// `thinkingConfig.includeThoughts`: thoughts come back as `thought: true` parts.
    pub include_thoughts: bool,
    /// Seals thinking blocks into carriers (None: they are not carried).
    pub seal: Option<ThinkingSeal>,
}

impl GeminiClientMeta {
    /// The seal, or one that carries nothing.
    pub fn seal(&self) -> &dyn SignatureSeal {
        super::chat_via_gemini::seal_or_none(&self.seal)
    }
}

/// Seals thinking blocks for one Gemini client and one provider (their signatures are that
/// provider's): carried in a `thoughtSignature`, opened when the client sends them back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThinkingSeal {
    /// The gateway's seal key, bound to the client's gateway key.
    pub key: SealKey,
    /// The provider that signed the blocks.
    pub provider: String,
}

impl SignatureSeal for ThinkingSeal {
    fn seal(&self, blocks: &[u8]) -> Option<String> {
        let mut plain = Vec::with_capacity(self.provider.len() + 1 + blocks.len());
        plain.extend_from_slice(self.provider.as_bytes());
        plain.push(0);
        plain.extend_from_slice(blocks);
        let sealed = self.key.seal(Purpose::ThinkingCarrier, &plain)?;
        sealed.strip_prefix(SealKey::PREFIX).map(str::to_owned)
    }

    fn open(&self, token: &str) -> Option<Vec<u8>> {
        let sealed = format!("{}{token}", SealKey::PREFIX);
        let plain = self.key.open(Purpose::ThinkingCarrier, &sealed)?;
        let at = plain.iter().position(|&b| b == 0)?;
        let (provider, blocks) = plain.split_at(at);
        (provider == self.provider.as_bytes()).then(|| blocks.get(1..).unwrap_or_default().to_vec())
    }
}

/// Gemini's `finishReason` for a Chat `finish_reason`.
pub fn finish_reason(chat: Option<&str>) -> &'static str {
    match chat {
        Some("length") => "MAX_TOKENS",
        Some("content_filter") => "SAFETY",
        _ => "STOP",
    }
}

/// Gemini's `usageMetadata` for a Chat `usage` (None or not an object: zeros). Chat's prompt
/// includes its cached part and its completion the reasoning; Gemini counts thoughts apart
/// from candidates, and its total is all three.
pub fn usage_metadata(u: Option<&Value>) -> Value {
    let n = |path: &[&str]| {
        let mut v = u;
        for k in path {
            v = v.and_then(|x| x.get(*k));
        }
        v.and_then(Value::as_u64).unwrap_or(0)
    };
    let prompt = n(&["prompt_tokens"]);
    let completion = n(&["completion_tokens"]);
    let thoughts = n(&["completion_tokens_details", "reasoning_tokens"]).min(completion);
    let cached = n(&["prompt_tokens_details", "cached_tokens"]).min(prompt);
    let mut m = json!({
        "promptTokenCount": prompt,
        "candidatesTokenCount": completion - thoughts,
        "totalTokenCount": prompt.saturating_add(completion),
    });
    if let Some(o) = m.as_object_mut() {
        if thoughts > 0 {
            o.insert("thoughtsTokenCount".into(), json!(thoughts));
        }
        if cached > 0 {
            o.insert("cachedContentTokenCount".into(), json!(cached));
        }
    }
    m
}

/// Thinking blocks (`thinking_blocks` items, as Chat carries Anthropic's) sealed into one
/// `thoughtSignature`; None when there are none, they are too large, or the seal gives none.
pub(crate) fn seal_blocks(blocks: &[Value], seal: &dyn SignatureSeal) -> Option<String> {
    use base64::Engine as _;
    if blocks.is_empty() {
        return None;
    }
    let plain = serde_json::to_vec(blocks).ok()?;
    if plain.len() > MAX_CARRIED_THINKING_BYTES {
        return None;
    }
    let token = seal.seal(&plain)?;
    let mut bytes = Vec::with_capacity(CARRIER_MAGIC.len() + token.len());
    bytes.extend_from_slice(CARRIER_MAGIC);
    bytes.extend_from_slice(token.as_bytes());
    Some(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Is `signature` one of this gateway's carriers (base64 in either alphabet, padded or not)?
/// Gives the sealed token it holds.
pub fn carried_token(signature: &str) -> Option<String> {
    if !signature.starts_with(CARRIER_PREFIX) || signature.len() > 3 * MAX_CARRIED_THINKING_BYTES {
        return None;
    }
    let bytes = crate::translate::util::decode_base64(signature)?;
    let token = bytes.strip_prefix(CARRIER_MAGIC)?;
    String::from_utf8(token.to_vec()).ok()
}

/// The thinking blocks a `thoughtSignature` carries (empty: not a carrier, or it does not
/// open).
pub(crate) fn open_blocks(signature: &str, seal: &dyn SignatureSeal) -> Vec<Value> {
    let Some(plain) = carried_token(signature).and_then(|t| seal.open(&t)) else {
        return Vec::new();
    };
    match serde_json::from_slice::<Value>(&plain) {
        Ok(Value::Array(blocks)) => blocks
            .into_iter()
            .filter(|b| matches!(b["type"].as_str(), Some("thinking" | "redacted_thinking")))
            .collect(),
        _ => Vec::new(),
    }
}

/// Gemini's `responseId` for a Chat completion id (its `chatcmpl-` prefix off).
pub(crate) fn response_id(chat_id: Option<&str>) -> String {
    let id = chat_id.unwrap_or("");
    id.strip_prefix("chatcmpl-")
        .or_else(|| id.strip_prefix("msg_"))
        .unwrap_or(id)
        .to_owned()
}
