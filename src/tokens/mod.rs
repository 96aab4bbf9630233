//! Token estimates for Anthropic Messages requests sent to OpenAI-kind providers, which have
//! no count_tokens endpoint: the o200k_base tokenizer plus OpenAI's published accounting. The
//! same rules count the prompt of a stream cut short before its provider said its usage, in
//! any client dialect ([`estimate_request`]; Chat and Responses bodies in `walk`).
//!
//! The request is counted as the OpenAI chat request it translates to: one message per turn
//! (system included), each with the cookbook's per-message overhead, reply priming, the
//! cookbook's function-definition overheads, and the vision guide's image tile rule. Pure:
//! bytes and a tokenizer in, a number out; [`shared`] holds the process's tokenizer.

pub mod image;
pub mod shared;
mod walk;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde_json::value::RawValue;
use tiktoken_rs::CoreBPE;

use crate::format::Format;
use crate::wire::anthropic::{ContentBlock, Message, MessagesRequest, Source, Tool};
use crate::wire::{ParseError, Str, TextOr};

pub use image::Detail;

/// Overhead of every chat message. Source: OpenAI cookbook, "How to count tokens with
/// tiktoken", `num_tokens_from_messages`: `tokens_per_message = 3` for gpt-4o and later.
pub const TOKENS_PER_MESSAGE: u64 = 3;

/// Priming of the reply. Same source: "every reply is primed with
/// <|start|>assistant<|message|>", 3 tokens.
pub const REPLY_PRIMING_TOKENS: u64 = 3;

/// Per function definition. Source: same cookbook, section "Counting tokens for chat
/// completions with tool calls", `num_tokens_for_tools`, gpt-4o values: `func_init = 7`.
pub const FUNC_INIT_TOKENS: u64 = 7;

/// Once per function that has parameters (same source: `prop_init = 3`).
pub const PROP_INIT_TOKENS: u64 = 3;

/// Per parameter (same source: `prop_key = 3`).
pub const PROP_KEY_TOKENS: u64 = 3;

/// Per parameter with an `enum` list, a deduction (same source: `enum_init = -3`).
pub const ENUM_INIT_DEDUCTION: u64 = 3;

/// Per `enum` value, besides the value's own tokens (same source: `enum_item = 3`).
pub const ENUM_ITEM_TOKENS: u64 = 3;

/// Once after all functions (same source: `func_end = 12`).
pub const FUNC_END_TOKENS: u64 = 12;

/// Text tokens per PDF page: the low end of Anthropic's PDF guide ("Estimate your costs":
/// text typically 1,500–3,000 tokens per page); a rough figure, as that guide says.
pub const PDF_TEXT_TOKENS_PER_PAGE: u64 = 1_500;

/// A PDF page is also read as an image (Anthropic's PDF guide; OpenAI's file inputs guide
/// says the same): an A4 page at 72 dpi, 595×842 pt, priced by the tile rule (765 tokens).
pub const PDF_PAGE_PX: (u32, u32) = (595, 842);

/// Decoded PDF bytes assumed per page. Not published anywhere: a rough middle between text
/// pages (a few KB) and scanned ones (hundreds of KB). Reading the page tree would mean
/// decoding and inflating the whole file on a worker thread.
pub const PDF_BYTES_PER_PAGE: u64 = 50_000;

/// Most pages counted for one PDF: Anthropic's limit per request ("Maximum pages per
/// request: 100", PDF guide), so no size guess counts more than the API would take.
pub const PDF_MAX_PAGES: u64 = 100;

/// Text is tokenized in pieces of at most this many bytes, cut just before a whitespace run
/// where the tokenizer's own pattern starts a new piece anyway (so the count is unchanged);
/// only a run this long without whitespace gets a cut that may shift a token. Bounds the
/// token buffer each call builds and the tokenizer's per-piece work.
pub const TEXT_CHUNK_BYTES: usize = 4096;

/// Why a body could not be counted.
#[derive(Debug)]
pub enum TokensError {
    /// Not a valid Anthropic Messages body.
    Parse(ParseError),
    /// `messages` is missing.
    MissingMessages,
}

impl fmt::Display for TokensError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokensError::Parse(e) => e.fmt(f),
            TokensError::MissingMessages => f.write_str("`messages` is required"),
        }
    }
}

impl std::error::Error for TokensError {}

/// Estimated input tokens of an Anthropic Messages (or count_tokens) request body, as an
/// OpenAI model with the o200k_base encoding would count its translation.
pub fn estimate_anthropic_request(body: &[u8], bpe: &CoreBPE) -> Result<u64, TokensError> {
    estimate_anthropic_within(body, bpe, usize::MAX)
}

/// Estimated input tokens of a request body in the client's dialect `format` (the gateway's
/// figure for a stream cut short before its provider said its usage). At most `text_budget`
/// bytes of text go through the tokenizer; text past that is counted at the rate (tokens per
/// byte) measured on what went through, so the work is bounded whatever the body's size.
pub fn estimate_request(
    format: Format,
    body: &[u8],
    bpe: &CoreBPE,
    text_budget: usize,
) -> Result<u64, TokensError> {
    match format {
        Format::Anthropic => estimate_anthropic_within(body, bpe, text_budget),
        Format::OpenAi | Format::Responses => walk::estimate_openai(body, bpe, text_budget),
        Format::Gemini => estimate_gemini(body, bpe, text_budget),
    }
}

/// Tokens Gemini counts for one image or document page of inline data, whatever its size.
const GEMINI_MEDIA_TOKENS: u64 = 258;

/// A Gemini body's estimate: every string of its contents, system instruction and tools
/// through the tokenizer, inline media at Gemini's fixed rate, a message's overhead per
/// content. Nesting is bounded by the JSON parser's depth limit.
fn estimate_gemini(body: &[u8], bpe: &CoreBPE, text_budget: usize) -> Result<u64, TokensError> {
    fn walk(c: &mut Counter<'_>, v: &serde_json::Value, key: &str) {
        match v {
            // Base64 media (`inlineData.data`): counted as media, not text.
            serde_json::Value::String(_) if key == "data" => c.add(GEMINI_MEDIA_TOKENS),
            serde_json::Value::String(s) if key != "mimeType" && key != "role" => c.text(s),
            serde_json::Value::Array(items) => {
                for item in items {
                    if key == "contents" {
                        c.add(TOKENS_PER_MESSAGE);
                    }
                    walk(c, item, key);
                }
            }
            serde_json::Value::Object(members) => {
                for (k, item) in members {
                    walk(c, item, k);
                }
            }
            _ => {}
        }
    }
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|error| TokensError::Parse(crate::wire::ParseError { key: None, error }))?;
    let mut c = Counter::new(bpe, text_budget);
    for key in [
        "systemInstruction",
        "system_instruction",
        "contents",
        "tools",
    ] {
        if let Some(part) = v.get(key) {
            walk(&mut c, part, key);
        }
    }
    if let Some(inner) = v.get("generateContentRequest") {
        for key in ["systemInstruction", "contents", "tools"] {
            if let Some(part) = inner.get(key) {
                walk(&mut c, part, key);
            }
        }
    }
    Ok(c.total)
}

fn estimate_anthropic_within(
    body: &[u8],
    bpe: &CoreBPE,
    text_budget: usize,
) -> Result<u64, TokensError> {
    // Messages are counted as they are read: a conversation of a million tiny messages is
    // never held typed. (A total: the order of its terms does not matter.)
    let mut counted = Messages {
        c: Counter::new(bpe, text_budget),
        total: 0,
        budget: text_budget,
    };
    let mut req = MessagesRequest::read_into(body, &mut counted).map_err(TokensError::Parse)?;
    let tools = req.read_tools(body).map_err(TokensError::Parse)?;
    req.messages.ok_or(TokensError::MissingMessages)?;
    let mut c = counted.c;
    c.total = counted.total;
    c.add(REPLY_PRIMING_TOKENS);
    if let Some(system) = &req.system {
        c.message("system");
        c.content(system);
    }
    if let Some(tools) = tools.as_deref().filter(|t| !t.is_empty()) {
        for t in tools {
            c.tool(t);
        }
        c.add(FUNC_END_TOKENS);
    }
    // A structured-output schema is given to the model too; no published overhead, so just
    // its text.
    let schema = req
        .output_config
        .as_ref()
        .and_then(|o| o.format.as_ref())
        .or(req.output_format.as_ref())
        .and_then(|f| f.schema);
    if let Some(s) = schema {
        c.text(s.get());
    }
    Ok(c.total)
}

/// Tokens of `text` alone (o200k_base, special-token spellings read as plain text).
pub fn count_text(bpe: &CoreBPE, text: &str) -> u64 {
    let mut rest = text;
    let mut n = 0u64;
    while !rest.is_empty() {
        let (head, tail) = rest.split_at(chunk_end(rest, TEXT_CHUNK_BYTES));
        n = n.saturating_add(bpe.count_ordinary(head) as u64);
        rest = tail;
    }
    n
}

/// Where the next chunk of `s` ends: the last place within `max` bytes (but past half of
/// it) where whitespace follows non-whitespace, else the last char boundary within `max`.
fn chunk_end(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    let b = s.as_bytes();
    let ws = |i: usize| b.get(i).is_some_and(|c| c.is_ascii_whitespace());
    // ASCII whitespace is always a char boundary in UTF-8.
    if let Some(i) = (max / 2..=max).rev().find(|&i| ws(i) && !ws(i - 1)) {
        return i;
    }
    let mut i = max;
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    // `max` is at least 4 in practice, so a char boundary is always found above 0; if not,
    // take the whole rest rather than loop forever.
    if i == 0 {
        s.len()
    } else {
        i
    }
}

/// The messages' count, kept as they are read.
struct Messages<'b> {
    c: Counter<'b>,
    /// The count of the messages read for the value that counts (a repeated key's last).
    total: u64,
    /// The text budget a reading starts with (a reading again starts afresh).
    budget: usize,
}

impl<'de> crate::wire::Sink<'de, Message<'de>> for Messages<'_> {
    fn element(&mut self, _: usize, m: Message<'de>) {
        self.c.message(&m.role);
        self.c.content(&m.content);
        self.total = self.c.total;
    }

    fn restart(&mut self) {
        // A reading from the start: the whole budget again, and no rate from the last one.
        self.c = Counter::new(self.c.bpe, self.budget);
        self.total = 0;
    }
}

/// The running count.
struct Counter<'b> {
    bpe: &'b CoreBPE,
    total: u64,
    /// Bytes of text the tokenizer may still be given; the rest is counted at the rate seen.
    text_left: usize,
    /// Bytes of text tokenized so far, and the tokens they made: the rate for the rest.
    seen_bytes: u64,
    seen_tokens: u64,
}

impl<'b> Counter<'b> {
    fn new(bpe: &'b CoreBPE, text_budget: usize) -> Counter<'b> {
        Counter {
            bpe,
            total: 0,
            text_left: text_budget,
            seen_bytes: 0,
            seen_tokens: 0,
        }
    }

    fn add(&mut self, n: u64) {
        self.total = self.total.saturating_add(n);
    }

    /// `s`'s tokens: through the tokenizer up to the budget (cut at a char boundary, which
    /// may shift one token), the rest at the rate measured so far (before any: one token per
    /// [`crate::usage::BYTES_PER_TOKEN_GUESS`] bytes).
    fn text(&mut self, s: &str) {
        let mut cut = self.text_left.min(s.len());
        while cut > 0 && !s.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, rest) = s.split_at(cut);
        if !head.is_empty() {
            let n = count_text(self.bpe, head);
            self.text_left -= head.len();
            self.seen_bytes = self.seen_bytes.saturating_add(head.len() as u64);
            self.seen_tokens = self.seen_tokens.saturating_add(n);
            self.add(n);
        }
        if !rest.is_empty() {
            let bytes = rest.len() as u64;
            let n = if self.seen_bytes == 0 {
                bytes.div_ceil(crate::usage::BYTES_PER_TOKEN_GUESS)
            } else {
                let scaled = u128::from(bytes) * u128::from(self.seen_tokens);
                u64::try_from(scaled.div_ceil(u128::from(self.seen_bytes))).unwrap_or(u64::MAX)
            };
            self.add(n);
        }
    }

    /// A message's overhead and its role (the cookbook counts every value, the role too).
    fn message(&mut self, role: &str) {
        self.add(TOKENS_PER_MESSAGE);
        self.text(role);
    }

    fn content(&mut self, c: &TextOr<'_, ContentBlock<'_>>) {
        match c {
            TextOr::Text(t) => self.text(t),
            TextOr::Items(blocks) => {
                for b in blocks {
                    self.block(b);
                }
            }
        }
    }

    /// One content block. Every text-bearing field counts whatever the block's type, so a
    /// block type added later is still counted by its text.
    fn block(&mut self, b: &ContentBlock<'_>) {
        let kind = b.kind.as_str();
        if kind.ends_with("tool_use") {
            // Translated, a call is an assistant message of its own: name and arguments.
            self.add(TOKENS_PER_MESSAGE);
        } else if kind.ends_with("tool_result") {
            // Translated, a result is a `tool` message.
            self.message("tool");
        }
        for s in [&b.text, &b.thinking, &b.name, &b.title, &b.context]
            .into_iter()
            .flatten()
        {
            self.text(s);
        }
        // redacted_thinking's opaque data: no better measure than its text.
        if kind == "redacted_thinking" {
            if let Some(d) = &b.data {
                self.text(d);
            }
        }
        if let Some(input) = b.input {
            self.text(input.get());
        }
        if let Some(inner) = &b.content {
            self.content(inner);
        }
        if let Some(src) = &b.source {
            if kind == "image" {
                self.image(src);
            } else {
                self.document(src);
            }
        }
    }

    /// An Anthropic image has no `detail`; translated it gets OpenAI's default `auto`,
    /// counted as high.
    fn image(&mut self, src: &Source<'_>) {
        let size = match (src.kind.as_str(), &src.data) {
            ("base64", Some(d)) => image::base64_image_size(d),
            _ => None,
        };
        let n = match size {
            Some((w, h)) => image::image_tokens(w, h, Detail::High),
            None => image::unknown_image_tokens(),
        };
        self.add(n);
    }

    fn document(&mut self, src: &Source<'_>) {
        match src.kind.as_str() {
            "text" => {
                if let Some(d) = &src.data {
                    self.text(d);
                }
            }
            "content" => {
                if let Some(inner) = &src.content {
                    self.content(inner);
                }
            }
            // A search result's source URL, shown to the model as text.
            "inline" => {
                if let Some(u) = &src.url {
                    self.text(u);
                }
            }
            "base64" => {
                let len = src.data.as_ref().map_or(0, |d| d.len() as u64);
                self.add(pdf_tokens(len / 4 * 3));
            }
            // A URL or a file id: the size is unknown; counted as one page.
            _ => self.add(pdf_tokens(0)),
        }
    }

    /// A tool definition by the cookbook's `num_tokens_for_tools`: `name:description`, then
    /// `name:type:description` per parameter, with enum values. Nested schemas (`items`,
    /// `properties`, `anyOf` …) have no published rule: their JSON text is counted, which
    /// errs high.
    fn tool(&mut self, t: &Tool<'_>) {
        self.add(FUNC_INIT_TOKENS);
        let desc = t.description.as_deref().unwrap_or_default();
        let line = format!("{}:{}", t.name, desc.strip_suffix('.').unwrap_or(desc));
        self.text(&line);
        let Some(raw) = t.input_schema else {
            return;
        };
        let Ok(schema) = serde_json::from_str::<Schema<'_>>(raw.get()) else {
            // Not an object schema: its text is all there is to count.
            self.text(raw.get());
            return;
        };
        let Some(props) = schema.properties.filter(|p| !p.is_empty()) else {
            return;
        };
        self.add(PROP_INIT_TOKENS);
        for (name, raw) in &props {
            self.add(PROP_KEY_TOKENS);
            let Ok(p) = serde_json::from_str::<Property<'_>>(raw.get()) else {
                self.text(name);
                self.text(raw.get());
                continue;
            };
            if let Some(values) = &p.enumeration {
                self.total = self.total.saturating_sub(ENUM_INIT_DEDUCTION);
                for v in values {
                    self.add(ENUM_ITEM_TOKENS);
                    self.text(&raw_text(v));
                }
            }
            let kind = p.kind.map(raw_text).unwrap_or_default();
            let desc = p.description.as_deref().unwrap_or_default();
            let line = format!("{name}:{kind}:{}", desc.strip_suffix('.').unwrap_or(desc));
            self.text(&line);
            for nested in [p.items, p.properties, p.any_of, p.one_of, p.all_of]
                .into_iter()
                .flatten()
            {
                self.text(nested.get());
            }
        }
    }
}

/// Estimated tokens of a PDF of `bytes` decoded bytes (0 = unknown: one page).
fn pdf_tokens(bytes: u64) -> u64 {
    let pages = bytes.div_ceil(PDF_BYTES_PER_PAGE).clamp(1, PDF_MAX_PAGES);
    let (w, h) = PDF_PAGE_PX;
    pages * (PDF_TEXT_TOKENS_PER_PAGE + image::image_tokens(w, h, Detail::High))
}

/// A JSON string's value, or any other JSON value's text.
fn raw_text(v: &RawValue) -> Cow<'_, str> {
    match serde_json::from_str::<Str<'_>>(v.get()) {
        Ok(s) => s.into_cow(),
        Err(_) => Cow::Borrowed(v.get()),
    }
}

/// The part of a tool's `input_schema` the cookbook counts.
#[derive(Deserialize)]
struct Schema<'a> {
    #[serde(borrow, default)]
    properties: Option<BTreeMap<Str<'a>, &'a RawValue>>,
}

/// One parameter's schema.
#[derive(Deserialize)]
struct Property<'a> {
    #[serde(borrow, rename = "type", default)]
    kind: Option<&'a RawValue>,
    #[serde(borrow, default)]
    description: Option<Str<'a>>,
    #[serde(borrow, rename = "enum", default)]
    enumeration: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    items: Option<&'a RawValue>,
    #[serde(borrow, default)]
    properties: Option<&'a RawValue>,
    #[serde(borrow, rename = "anyOf", default)]
    any_of: Option<&'a RawValue>,
    #[serde(borrow, rename = "oneOf", default)]
    one_of: Option<&'a RawValue>,
    #[serde(borrow, rename = "allOf", default)]
    all_of: Option<&'a RawValue>,
}

#[cfg(test)]
mod tests;
