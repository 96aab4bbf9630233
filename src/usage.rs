//! Token usage and the stop reason, read from provider answers as they pass (sans-IO: bytes
//! in, numbers out). Whole bodies and SSE events in each provider dialect; never the client's
//! side of a translated exchange, whose numbers are derived from these.
//!
//! Cost rules: a stream event's data is looked at only when it can hold usage or a stop reason
//! (Anthropic and Responses by event name, OpenAI by a prebuilt `memmem` search for the key);
//! the few events that do are parsed from the key's value on, never as a whole tree. A body is
//! read the same way from a bounded head and tail window, so a relayed body is never held.
//!
//! Meaning of the fields, the same for every dialect: `input` is the whole prompt, cache reads
//! and cache writes included (Anthropic reports them apart: they are added back); `cache_read`
//! and `cache_write` are parts of `input`; `reasoning` is a part of `output` (thinking is
//! counted once, in `output`, never added to it).

use std::ops::Range;
use std::sync::LazyLock;

use bytes::Bytes;
use memchr::memmem::Finder;
use serde::Deserialize;

use crate::format::Format;
use crate::json::cursor::Cursor;

/// Tokens of one answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// The whole prompt, cached parts included.
    pub input: u64,
    /// Generated tokens, reasoning included.
    pub output: u64,
    /// Part of `input` read from the provider's prompt cache.
    pub cache_read: u64,
    /// Part of `input` written to the provider's prompt cache.
    pub cache_write: u64,
    /// Part of `output` spent on reasoning (thinking), when the provider says.
    pub reasoning: u64,
}

/// Longest stop reason kept; a longer one is cut (they are short words in every dialect).
pub const MAX_STOP_REASON_BYTES: usize = 40;

/// Why the provider stopped, as the provider said it (`stop`, `end_turn`, `max_output_tokens`
/// …), kept only as `[A-Za-z0-9_.:-]` and at most [`MAX_STOP_REASON_BYTES`]: it reaches the
/// access log, and a provider is not trusted to send a clean word.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct StopReason {
    len: u8,
    bytes: [u8; MAX_STOP_REASON_BYTES],
}

impl StopReason {
    /// Keep the safe characters of `s`, cut to the bound; None when nothing is left.
    pub fn new(s: &str) -> Option<StopReason> {
        StopReason::from_ascii(s.as_bytes())
    }

    /// The same from bytes (only ASCII is kept, so they need not be UTF-8).
    pub fn from_ascii(s: &[u8]) -> Option<StopReason> {
        let mut bytes = [0u8; MAX_STOP_REASON_BYTES];
        let mut len = 0usize;
        for &b in s {
            if len == MAX_STOP_REASON_BYTES {
                break;
            }
            if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-') {
                if let Some(slot) = bytes.get_mut(len) {
                    *slot = b;
                }
                len += 1;
            }
        }
        (len > 0).then_some(StopReason {
            len: len as u8,
            bytes,
        })
    }

    /// The reason as text.
    pub fn as_str(&self) -> &str {
        let b = self.bytes.get(..usize::from(self.len)).unwrap_or_default();
        // Only ASCII was kept.
        std::str::from_utf8(b).unwrap_or_default()
    }
}

impl std::fmt::Debug for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// What was read from one answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Metered {
    /// Usage, when the answer carried it.
    pub usage: Option<Usage>,
    /// The stop reason, when the answer carried it.
    pub stop: Option<StopReason>,
    /// `usage` is (in part) the gateway's estimate, not the provider's figure: a stream cut
    /// short before its provider said its final usage (see [`cut_short`]).
    pub estimated: bool,
}

/// Bytes of request body counted as one token when the tokenizer cannot be used (it failed to
/// build, or every helper thread is busy with a large body): about what o200k_base makes of
/// English prose and JSON, high for an image's base64.
pub const BYTES_PER_TOKEN_GUESS: u64 = 4;

/// What a stream cut short before its provider said its final usage is charged (`said`: what
/// the provider said so far, such as Anthropic's input at the start). The input is the
/// provider's figure where it said one, else `estimated_input` (the gateway's count of the
/// request); the output is the larger of the provider's figure and one token per provider
/// event read (`events`: providers stream about a token per event; the few set-up events
/// count too). Cache and reasoning parts stay as the provider said them.
pub fn cut_short(said: Option<Usage>, estimated_input: u64, events: u64) -> Usage {
    let said = said.unwrap_or_default();
    Usage {
        input: if said.input > 0 {
            said.input
        } else {
            estimated_input
        },
        output: said.output.max(events),
        ..said
    }
}

/// Bytes of a relayed body's start kept for [`BodyMeter`] (a Responses body says its status
/// near the front).
pub const BODY_HEAD_BYTES: usize = 4 * 1024;
/// Bytes of a relayed body's end kept for [`BodyMeter`]: usage comes after the answer in every
/// dialect, followed at most by a Responses body's `metadata` (16 pairs of bounded strings).
pub const BODY_TAIL_BYTES: usize = 16 * 1024;

/// Usage as the dialects write it; one struct reads all three (unknown fields are skipped).
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(default)]
struct Raw {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<Details>,
    completion_tokens_details: Option<Details>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    input_tokens_details: Option<Details>,
    output_tokens_details: Option<Details>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(default)]
struct Details {
    cached_tokens: Option<u64>,
    reasoning_tokens: Option<u64>,
}

impl Raw {
    /// Fields `newer` carries replace these (usage in a stream is cumulative). For Anthropic's
    /// `message_delta` a zero input count is "not said" (some servers send only output there).
    fn merge(&mut self, newer: Raw, zero_is_absent: bool) {
        let pick = |old: &mut Option<u64>, new: Option<u64>| {
            if let Some(n) = new.filter(|n| !zero_is_absent || *n > 0) {
                *old = Some(n);
            }
        };
        pick(&mut self.prompt_tokens, newer.prompt_tokens);
        pick(&mut self.completion_tokens, newer.completion_tokens);
        pick(&mut self.input_tokens, newer.input_tokens);
        pick(
            &mut self.cache_read_input_tokens,
            newer.cache_read_input_tokens,
        );
        pick(
            &mut self.cache_creation_input_tokens,
            newer.cache_creation_input_tokens,
        );
        // Output is cumulative in every dialect and may legitimately be zero.
        if let Some(n) = newer.output_tokens {
            self.output_tokens = Some(n);
        }
        self.prompt_tokens_details = newer.prompt_tokens_details.or(self.prompt_tokens_details);
        self.completion_tokens_details = newer
            .completion_tokens_details
            .or(self.completion_tokens_details);
        self.input_tokens_details = newer.input_tokens_details.or(self.input_tokens_details);
        self.output_tokens_details = newer.output_tokens_details.or(self.output_tokens_details);
    }

    /// The provider's numbers in the gateway's terms (see the module doc).
    fn usage(&self, format: Format) -> Usage {
        let v = |o: Option<u64>| o.unwrap_or(0);
        let cached = |d: Option<Details>| d.and_then(|d| d.cached_tokens).unwrap_or(0);
        let reasoning = |d: Option<Details>| d.and_then(|d| d.reasoning_tokens).unwrap_or(0);
        let u = match format {
            // Gemini's usage is read into the Chat Completions fields (`gemini_raw`).
            Format::OpenAi | Format::Gemini => Usage {
                input: v(self.prompt_tokens),
                output: v(self.completion_tokens),
                cache_read: cached(self.prompt_tokens_details),
                cache_write: 0,
                reasoning: reasoning(self.completion_tokens_details),
            },
            Format::Anthropic => {
                let read = v(self.cache_read_input_tokens);
                let write = v(self.cache_creation_input_tokens);
                Usage {
                    input: v(self.input_tokens)
                        .saturating_add(read)
                        .saturating_add(write),
                    output: v(self.output_tokens),
                    cache_read: read,
                    cache_write: write,
                    reasoning: 0,
                }
            }
            Format::Responses => Usage {
                input: v(self.input_tokens),
                output: v(self.output_tokens),
                cache_read: cached(self.input_tokens_details),
                cache_write: 0,
                reasoning: reasoning(self.output_tokens_details),
            },
        };
        // Parts never exceed their whole, whatever a provider says.
        Usage {
            cache_read: u.cache_read.min(u.input),
            cache_write: u.cache_write.min(u.input.saturating_sub(u.cache_read)),
            reasoning: u.reasoning.min(u.output),
            ..u
        }
    }

    fn any(&self) -> bool {
        self.prompt_tokens.is_some()
            || self.completion_tokens.is_some()
            || self.input_tokens.is_some()
            || self.output_tokens.is_some()
    }
}

/// A key searched for: `"name"`, prebuilt once per process.
struct Key {
    fwd: Finder<'static>,
}

impl Key {
    fn new(quoted: &'static [u8]) -> Key {
        Key {
            fwd: Finder::new(quoted),
        }
    }

    fn len(&self) -> usize {
        self.fwd.needle().len()
    }

    /// Offset of the value of the first (or last) occurrence of this key as a member of an
    /// object `depth` containers deep (the top-level object is depth 1): `"name"` preceded by
    /// `{` or `,` and followed by `:`. Inside a JSON string the quotes would be escaped, so
    /// such a match is a real member; the depth tells the answer's own field from one of the
    /// same name in a tool's input. Only a value opening with `opens` is wanted (`{`, `"`):
    /// others (the `null`s of every OpenAI chunk) are passed over without a walk. At most
    /// [`MAX_KEY_CANDIDATES`] matches are weighed. `known` is a span already found to be a
    /// balanced value (the usage object): a walk over it is skipped.
    fn value(
        &self,
        buf: &[u8],
        last: bool,
        depth: i64,
        opens: u8,
        known: Option<&Range<usize>>,
    ) -> Option<usize> {
        for (at, v) in self.members(buf, last) {
            if buf.get(v) != Some(&opens) {
                continue;
            }
            // Last: the containers that close after the value; first: those open before
            // the key (each walk covers the short side of the match).
            let d = if last {
                -depth_skipping(buf, v, known)?
            } else {
                net_depth(buf.get(..at)?)
            };
            if d == depth {
                return Some(v);
            }
        }
        None
    }

    /// The last usage object `depth` deep, read, and its span. The reader passes over the
    /// object anyway, so only what follows it is walked for the depth.
    fn last_usage(&self, buf: &[u8], depth: i64) -> Option<(Raw, Range<usize>)> {
        for (_, v) in self.members(buf, true) {
            if buf.get(v) != Some(&b'{') {
                continue;
            }
            match raw_at(buf, v) {
                Some((raw, end)) if -net_depth(buf.get(end..)?) == depth => {
                    return Some((raw, v..end));
                }
                Some(_) => {}
                // Unreadable: if it is the member sought, there is no usage.
                None if -net_depth(buf.get(v..)?) == depth => return None,
                None => {}
            }
        }
        None
    }

    /// (key offset, value offset) of the first or last few matches that are object members.
    fn members<'a>(
        &'a self,
        buf: &'a [u8],
        last: bool,
    ) -> impl Iterator<Item = (usize, usize)> + 'a {
        // The last matches are found by a forward search that keeps the final few: memchr's
        // reverse finder has no vector path, and cost more than the forward scan of the whole.
        let mut ring = [0usize; MAX_KEY_CANDIDATES];
        let mut found = 0usize;
        if last {
            for at in self.fwd.find_iter(buf) {
                if let Some(slot) = ring.get_mut(found % MAX_KEY_CANDIDATES) {
                    *slot = at;
                }
                found += 1;
            }
        }
        let mut start = 0usize;
        (0..MAX_KEY_CANDIDATES)
            .map_while(move |i| {
                if last {
                    let back = found.checked_sub(i + 1)?;
                    ring.get(back % MAX_KEY_CANDIDATES).copied()
                } else {
                    let at = start + self.fwd.find(buf.get(start..)?)?;
                    start = at + 1;
                    Some(at)
                }
            })
            .filter_map(move |at| Some((at, self.member_value(buf, at)?)))
    }

    /// Does any match of this key, as an object member, hold a value opening with `opens`? One
    /// plain pass, for the common case: every OpenAI chunk but the last holds `null` for both
    /// keys the meter reads, and `value`/`last_usage` find nothing without such a match.
    fn any_opening(&self, buf: &[u8], opens: u8) -> bool {
        self.fwd
            .find_iter(buf)
            .any(|at| self.member_value(buf, at).and_then(|v| buf.get(v)) == Some(&opens))
    }

    fn member_value(&self, buf: &[u8], at: usize) -> Option<usize> {
        let before = buf.get(..at)?.trim_ascii_end();
        if !matches!(before.last(), Some(b'{' | b',')) {
            return None;
        }
        let after_key = at + self.len();
        let rest = buf.get(after_key..)?;
        let colon = rest.iter().position(|b| !b.is_ascii_whitespace())?;
        if rest.get(colon) != Some(&b':') {
            return None;
        }
        let value = rest.get(colon + 1..)?;
        let skip = value.iter().position(|b| !b.is_ascii_whitespace())?;
        Some(after_key + colon + 1 + skip)
    }
}

/// Most matches of a key weighed in one buffer (a body full of tool inputs that reuse the
/// name costs no more than this many walks).
const MAX_KEY_CANDIDATES: usize = 8;

/// Containers opened minus containers closed in `bytes`, strings skipped (`bytes` starts
/// outside a string). A string's body is jumped over with `memchr2`, not walked a byte at a
/// time.
fn net_depth(bytes: &[u8]) -> i64 {
    let mut depth = 0i64;
    let mut i = 0usize;
    while let Some(&b) = bytes.get(i) {
        i += 1;
        match b {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth -= 1,
            b'"' => {
                // To the closing quote, stepping over each escaped character.
                let mut c = Cursor::new(bytes, i - 1);
                if c.string().is_none() {
                    return depth;
                }
                i = c.pos();
            }
            _ => {}
        }
    }
    depth
}

/// `net_depth` of `buf[from..]`, leaving out `known` (a balanced value) when it lies there.
fn depth_skipping(buf: &[u8], from: usize, known: Option<&Range<usize>>) -> Option<i64> {
    match known {
        Some(k) if k.start >= from && k.end <= buf.len() && k.start <= k.end => {
            Some(net_depth(buf.get(from..k.start)?) + net_depth(buf.get(k.end..)?))
        }
        _ => Some(net_depth(buf.get(from..)?)),
    }
}

static USAGE: LazyLock<Key> = LazyLock::new(|| Key::new(b"\"usage\""));
static FINISH_REASON: LazyLock<Key> = LazyLock::new(|| Key::new(b"\"finish_reason\""));
static STOP_REASON: LazyLock<Key> = LazyLock::new(|| Key::new(b"\"stop_reason\""));
static STATUS: LazyLock<Key> = LazyLock::new(|| Key::new(b"\"status\""));
static INCOMPLETE: LazyLock<Key> = LazyLock::new(|| Key::new(b"\"incomplete_details\""));
static USAGE_METADATA: LazyLock<Key> = LazyLock::new(|| Key::new(b"\"usageMetadata\""));
static GEMINI_FINISH: LazyLock<Key> = LazyLock::new(|| Key::new(b"\"finishReason\""));

/// A Gemini answer's (or chunk's) top-level `usageMetadata`, in the Chat Completions fields
/// (input = prompt + tool-use prompt, output = candidates + thoughts, cached, reasoning =
/// thoughts), and its candidate's `finishReason` (three containers deep).
fn gemini_read(data: &[u8]) -> (Option<Raw>, Option<StopReason>) {
    #[derive(Default, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    struct Meta {
        prompt_token_count: Option<u64>,
        candidates_token_count: Option<u64>,
        thoughts_token_count: Option<u64>,
        cached_content_token_count: Option<u64>,
        tool_use_prompt_token_count: Option<u64>,
    }
    let raw = USAGE_METADATA
        .value(data, true, 1, b'{', None)
        .and_then(|at| {
            let mut de = serde_json::Deserializer::from_slice(data.get(at..)?);
            Meta::deserialize(&mut de).ok()
        })
        .map(|m| {
            let thoughts = m.thoughts_token_count.unwrap_or(0);
            let output = m
                .candidates_token_count
                .map(|c| c.saturating_add(thoughts))
                .or(m.thoughts_token_count);
            Raw {
                prompt_tokens: m
                    .prompt_token_count
                    .map(|p| p.saturating_add(m.tool_use_prompt_token_count.unwrap_or(0))),
                completion_tokens: output,
                prompt_tokens_details: Some(Details {
                    cached_tokens: m.cached_content_token_count,
                    reasoning_tokens: None,
                }),
                completion_tokens_details: Some(Details {
                    cached_tokens: None,
                    reasoning_tokens: m.thoughts_token_count,
                }),
                ..Raw::default()
            }
        });
    let stop = GEMINI_FINISH
        .value(data, true, 3, b'"', None)
        .and_then(|at| stop_at(data, at));
    (raw, stop)
}

use read::{stop_at, usage_at as raw_at};

/// A Responses answer's stop: its `incomplete_details.reason` when it has one, else its status.
fn responses_stop(head: &[u8], depth: i64) -> Option<StopReason> {
    #[derive(Deserialize)]
    struct Incomplete {
        #[serde(default)]
        reason: Option<String>,
    }
    let reason = INCOMPLETE
        .value(head, false, depth, b'{', None)
        .and_then(|at| {
            let value = head.get(at..)?;
            if value.first() != Some(&b'{') {
                return None;
            }
            let mut de = serde_json::Deserializer::from_slice(value);
            Incomplete::deserialize(&mut de).ok()?.reason
        });
    match reason {
        Some(r) => StopReason::new(&r),
        None => STATUS
            .value(head, false, depth, b'"', None)
            .and_then(|at| stop_at(head, at)),
    }
}

/// Usage and stop reason of a whole provider body in `format`.
pub fn from_body(format: Format, body: &[u8]) -> Metered {
    from_window(format, body, body)
}

/// The same from a body's `head` and `tail` windows (both the whole body when it is short).
fn from_window(format: Format, head: &[u8], tail: &[u8]) -> Metered {
    let found = USAGE.last_usage(tail, 1);
    let known = found.as_ref().map(|(_, span)| span);
    let usage = found
        .as_ref()
        .map(|(r, _)| *r)
        .filter(Raw::any)
        .map(|r| r.usage(format));
    if format == Format::Gemini {
        let (raw, stop) = gemini_read(tail);
        return Metered {
            usage: raw.filter(Raw::any).map(|r| r.usage(format)),
            stop,
            estimated: false,
        };
    }
    // The stop reason comes before the usage object: its walk skips the object.
    let stop = match format {
        Format::OpenAi => FINISH_REASON
            .value(tail, true, 3, b'"', known)
            .and_then(|at| stop_at(tail, at)),
        Format::Anthropic => STOP_REASON
            .value(tail, true, 1, b'"', known)
            .and_then(|at| stop_at(tail, at)),
        Format::Responses => responses_stop(head, 1),
        Format::Gemini => None,
    };
    Metered {
        usage,
        stop,
        estimated: false,
    }
}

/// Reads a body relayed as it arrives: keeps its first [`BODY_HEAD_BYTES`] and its last
/// [`BODY_TAIL_BYTES`] (up to twice that between trims), never the whole.
pub struct BodyMeter {
    format: Format,
    head: Vec<u8>,
    tail: Vec<u8>,
    total: usize,
}

impl BodyMeter {
    /// A meter for a body in the provider dialect `format`.
    pub fn new(format: Format) -> BodyMeter {
        BodyMeter {
            format,
            head: Vec::new(),
            tail: Vec::new(),
            total: 0,
        }
    }

    /// The next bytes of the body.
    pub fn push(&mut self, data: &[u8]) {
        self.total = self.total.saturating_add(data.len());
        if self.head.len() < BODY_HEAD_BYTES {
            let room = BODY_HEAD_BYTES - self.head.len();
            self.head
                .extend_from_slice(data.get(..room.min(data.len())).unwrap_or_default());
        }
        if data.len() >= BODY_TAIL_BYTES {
            self.tail.clear();
            self.tail
                .extend_from_slice(data.get(data.len() - BODY_TAIL_BYTES..).unwrap_or_default());
        } else {
            self.tail.extend_from_slice(data);
            if self.tail.len() > 2 * BODY_TAIL_BYTES {
                self.tail.drain(..self.tail.len() - BODY_TAIL_BYTES);
            }
        }
    }

    /// What the body said.
    pub fn finish(&self) -> Metered {
        if self.total <= BODY_HEAD_BYTES {
            from_body(self.format, &self.head)
        } else {
            from_window(self.format, &self.head, &self.tail)
        }
    }
}

/// Reads a provider's SSE stream event by event (see the module doc for what it looks at).
pub struct Meter {
    format: Format,
    raw: Option<Raw>,
    stop: Option<StopReason>,
    /// The first OpenAI chunk of a batch handed over by [`Meter::defer`] and not settled yet.
    /// Kept out of `pending`: a paced stream's batch is one chunk, and a list for it cost an
    /// allocation per event.
    first: Option<Deferred>,
    /// The batch's later chunks, oldest first: only the newest usage and the newest stop
    /// reason count, so [`Meter::settle`] reads them from the newest back (`first` last) and
    /// stops once it has both.
    pending: Vec<Deferred>,
    /// Events with data handed to [`Meter::defer`]: what a stream cut short is charged as
    /// output when its provider never said it.
    events: u64,
    /// Anthropic: a `message_delta` said usage (the stream's final output count).
    closed: bool,
}

/// A chunk [`Meter::defer`] kept; `Some`: it already read the chunk's usage.
type Deferred = (Bytes, Option<Read>);

/// Chunks [`Meter::defer`] first makes room for after a settle.
const PENDING_CHUNKS: usize = 16;

/// What [`Meter::defer`] read of a chunk's usage: the usage object's span (the stop reason's
/// depth walk skips it) and whether it counted.
struct Read {
    span: Option<Range<usize>>,
    carried: bool,
}

impl Meter {
    /// A meter for a stream in the provider dialect `format`.
    pub fn new(format: Format) -> Meter {
        Meter {
            format,
            raw: None,
            stop: None,
            first: None,
            pending: Vec::new(),
            events: 0,
            closed: false,
        }
    }

    /// The usage object `depth` deep in an event's data, merged into what came before.
    fn take_usage(&mut self, data: &[u8], depth: i64, zero_is_absent: bool) -> bool {
        let Some(r) = USAGE
            .last_usage(data, depth)
            .map(|(r, _)| r)
            .filter(Raw::any)
        else {
            return false;
        };
        match &mut self.raw {
            Some(old) => old.merge(r, zero_is_absent),
            None => self.raw = Some(r),
        }
        true
    }

    /// One event: its `event:` name (None or empty: none) and its data. True when it carried
    /// usage.
    pub fn on_event(&mut self, name: Option<&[u8]>, data: &[u8]) -> bool {
        let mut carried = false;
        match self.format {
            Format::OpenAi => {
                self.settle();
                let found = openai_usage(data);
                if let Some(r) = usage_of(&found) {
                    self.raw = Some(r);
                    carried = true;
                }
                if let Some(stop) = openai_stop(data, found.as_ref().map(|(_, span)| span)) {
                    self.stop = Some(stop);
                }
            }
            Format::Anthropic => match event_type(name, data) {
                b"message_start" => carried = self.take_usage(data, 2, false),
                b"message_delta" => {
                    carried = self.take_usage(data, 1, true);
                    self.closed |= carried;
                    if let Some(stop) = STOP_REASON
                        .value(data, true, 2, b'"', None)
                        .and_then(|at| stop_at(data, at))
                    {
                        self.stop = Some(stop);
                    }
                }
                _ => {}
            },
            Format::Responses => match event_type(name, data) {
                b"response.completed" | b"response.incomplete" | b"response.failed" => {
                    carried = self.take_usage(data, 2, false);
                    if let Some(stop) = responses_stop(data, 2) {
                        self.stop = Some(stop);
                    }
                }
                _ => {}
            },
            Format::Gemini => {
                // Every chunk repeats the usage so far: the newest replaces it.
                let (raw, stop) = gemini_read(data);
                if let Some(r) = raw.filter(Raw::any) {
                    self.raw = Some(r);
                    carried = true;
                }
                if stop.is_some() {
                    self.stop = stop;
                    self.closed = true;
                }
            }
        }
        carried
    }

    /// The same reading as [`Meter::on_event`], for a pump that reads a batch of events before
    /// it asks [`Meter::metered`]: an OpenAI chunk is kept (a reference, not a copy) and read
    /// only if it may hold the newest usage or stop reason of the batch, so a burst of chunks
    /// costs the newest one or two readings instead of one per chunk. Other dialects are read
    /// at once (only a few named events are looked at).
    ///
    /// `find_usage_only`: the caller drops the usage-only chunk (`"choices": []`) that the
    /// gateway, not the client, asked for, and needs to know at once; true is returned for
    /// such a chunk that carried usage. Only a chunk with an empty array anywhere can be one,
    /// and only such a chunk's usage is read here.
    pub fn defer(&mut self, name: Option<&[u8]>, data: &Bytes, find_usage_only: bool) -> bool {
        self.events += 1;
        if self.format != Format::OpenAi {
            self.on_event(name, data);
            return false;
        }
        if !(find_usage_only && has_empty_array(data)) {
            self.keep((data.clone(), None));
            return false;
        }
        let found = openai_usage(data);
        let usage = usage_of(&found);
        if let Some(r) = usage {
            self.raw = Some(r);
        }
        let read = Read {
            span: found.map(|(_, span)| span),
            carried: usage.is_some(),
        };
        self.keep((data.clone(), Some(read)));
        usage.is_some() && openai_usage_only(data)
    }

    /// Hold a deferred chunk: the batch's first in its own slot, the rest in the list.
    #[inline]
    fn keep(&mut self, chunk: Deferred) {
        if self.first.is_none() {
            self.first = Some(chunk);
            return;
        }
        if self.pending.is_empty() {
            // Room for a burst at once: growing one chunk at a time cost more than the reads.
            self.pending.reserve(PENDING_CHUNKS);
        }
        self.pending.push(chunk);
    }

    /// Reads what [`Meter::defer`] kept, from the newest chunk back, until it has the newest
    /// usage and the newest stop reason: exactly what [`Meter::on_event`] would have left
    /// after reading every chunk in order.
    pub fn settle(&mut self) {
        let first = self.first.take();
        let pending = std::mem::take(&mut self.pending);
        let (mut need_usage, mut need_stop) = (true, true);
        for (data, read) in pending.iter().rev().chain(first.iter()) {
            if !need_usage && !need_stop {
                break;
            }
            let span = match read {
                Some(read) => {
                    // `defer` read this chunk's usage (and already kept it).
                    need_usage &= !read.carried;
                    read.span.clone()
                }
                None => {
                    let found = openai_usage(data);
                    if let Some(r) = usage_of(&found).filter(|_| need_usage) {
                        self.raw = Some(r);
                        need_usage = false;
                    }
                    found.map(|(_, span)| span)
                }
            };
            if let Some(stop) = openai_stop(data, span.as_ref()).filter(|_| need_stop) {
                self.stop = Some(stop);
                need_stop = false;
            }
        }
        // The provider's buffers are let go with the list: a stream waits far longer than
        // it reads.
    }

    /// What the stream said so far.
    pub fn metered(&mut self) -> Metered {
        self.settle();
        Metered {
            usage: self.raw.map(|r| r.usage(self.format)),
            stop: self.stop,
            estimated: false,
        }
    }

    /// Has the provider said its final usage: OpenAI's usage chunk, a Responses stream's
    /// closing event, Anthropic's `message_delta` (its `message_start` says only the input)?
    pub fn said_final_usage(&mut self) -> bool {
        self.settle();
        match self.format {
            Format::Anthropic | Format::Gemini => self.closed,
            Format::OpenAi | Format::Responses => self.raw.is_some(),
        }
    }

    /// Events with data read from the provider so far (through [`Meter::defer`]).
    pub fn events(&self) -> u64 {
        self.events
    }
}

/// An OpenAI chunk's top-level usage object, read, and its span. Every chunk carries
/// `"usage":null` with include_usage: one plain pass is what such a chunk costs; the
/// depth-checked reading runs only where a value opens as an object.
fn openai_usage(data: &[u8]) -> Option<(Raw, Range<usize>)> {
    USAGE
        .any_opening(data, b'{')
        .then(|| USAGE.last_usage(data, 1))
        .flatten()
}

/// The usage `openai_usage` found, when it says anything.
fn usage_of(found: &Option<(Raw, Range<usize>)>) -> Option<Raw> {
    found.as_ref().map(|(r, _)| *r).filter(Raw::any)
}

/// An OpenAI chunk's stop reason (its choice's `finish_reason`, three containers deep), where
/// one is a string; `known` is the usage object's span. Every chunk but one holds
/// `"finish_reason":null`, passed over by one plain pass.
fn openai_stop(data: &[u8], known: Option<&Range<usize>>) -> Option<StopReason> {
    FINISH_REASON
        .any_opening(data, b'"')
        .then(|| FINISH_REASON.value(data, true, 3, b'"', known))
        .flatten()
        .and_then(|at| stop_at(data, at))
}

static CHOICES: LazyLock<Key> = LazyLock::new(|| Key::new(b"\"choices\""));

/// Does `data` hold `[` followed by `]` (ASCII white space between): what the usage-only
/// chunk's `"choices": []` needs, and ordinary chunks (`"choices":[{`) do not have. One
/// `memchr` pass, so the usage of every other chunk can wait for [`Meter::settle`].
fn has_empty_array(data: &[u8]) -> bool {
    memchr::memchr_iter(b'[', data).any(|at| {
        data.get(at + 1..)
            .is_some_and(|rest| rest.trim_ascii_start().starts_with(b"]"))
    })
}

/// Is this OpenAI chunk the usage-only one (`"choices": []`) that `include_usage` adds? Asked
/// only of a chunk that carried usage.
pub fn openai_usage_only(data: &[u8]) -> bool {
    CHOICES.value(data, false, 1, b'[', None).is_some_and(|at| {
        data.get(at..)
            .and_then(|v| v.strip_prefix(b"["))
            .is_some_and(|rest| rest.trim_ascii_start().starts_with(b"]"))
    })
}

/// An event's type: its `event:` name, else the `type` its data starts with (`{"type":"…"`,
/// as the APIs write it); empty when neither says.
fn event_type<'a>(name: Option<&'a [u8]>, data: &'a [u8]) -> &'a [u8] {
    if let Some(n) = name.filter(|n| !n.is_empty()) {
        return n;
    }
    let rest = data
        .trim_ascii_start()
        .strip_prefix(b"{\"type\":\"")
        .unwrap_or_default();
    match memchr::memchr2(b'"', b'\\', rest) {
        Some(end) if rest.get(end) == Some(&b'"') => rest.get(..end).unwrap_or_default(),
        _ => b"",
    }
}

pub(crate) mod read;
#[cfg(test)]
mod tests;
