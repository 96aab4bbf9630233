//! Validated top-level field lookup and byte-span splicing of JSON request bodies.
//! [`tree`] locates every string of a document, for rewrites that touch more than the top
//! level (PII substitution) and must still keep every other byte.
//!
//! A same-format request is forwarded byte for byte except for the value of the top-level
//! `model` key, which is replaced by splicing its span. The whole document is validated first.
//! Nothing is re-serialised.
//!
//! The module has three validating parsers with identical semantics:
//! - [`inspect_request_serde`]: a serde_json visitor that finds `model` with `&RawValue`.
//! - [`inspect_request_simd`]: a simd-json tape that finds `model` by pointer arithmetic.
//! - [`inspect_request_scan`]: one pass that builds nothing, sixteen bytes at a time inside
//!   strings; what it refuses, serde_json decides.
//!
//! [`inspect_request`] serves with the fastest, as measured by `benches/json.rs`.
//!
//! Both parsers apply these rules:
//! 1. The document must be valid JSON (RFC 8259). It must be UTF-8, have no trailing bytes,
//!    escape surrogates in pairs, and nest at most [`MAX_JSON_DEPTH`] deep. Numbers are
//!    checked for shape only, as the upstream decides what magnitude it accepts.
//! 2. The top-level value must be an object.
//! 3. Keys are compared after unescaping, so `"mod\u0065l"` is `model`, as the upstream reads it.
//! 4. Keys nested deeper than the top level are never looked at.
//! 5. Field checks come after validation, in the order given in [`JsonError`].

pub mod cursor;
pub mod de;
mod escape;
mod kept;
mod mask;
mod members;
mod scan;
mod serde_path;
mod simd_path;
mod spans;
mod stream_options;
#[cfg(test)]
mod tests;
mod tokens;
pub mod tree;
mod utf8;

use std::fmt;
use std::ops::Range;

pub use escape::{
    escaped_len, first_to_escape, splice_string, write_json_escaped, write_json_string,
};
pub(crate) use kept::{common_prefix, scope as kept_scope};
pub use kept::{kept_values_used, scope_of, with_scope, without_kept_values};
#[cfg(target_arch = "x86_64")]
pub(crate) use mask::Avx2;
pub(crate) use mask::{escaped as escaped_bytes, Narrow};
pub use members::{members, remove_members, Member};
pub use scan::inspect_request_scan;
pub use serde_path::inspect_request_serde;
pub use simd_path::{inspect_request_simd, SimdScratch};
pub use spans::{
    contains_outside_strings, noted_without_unicode, notes_used, with_notes, Splice, StringSpans,
};
pub use stream_options::with_include_usage;
pub use tokens::{Token, Tokens};
pub use utf8::{inspect_checked, known_text, known_uses, with_checked, Checked};

/// Deepest container nesting a body may have. The top-level object counts as level 1.
/// The number is serde_json's default recursion limit, but that limit only lets 127 levels
/// through. So the serde path skips values and checks depth itself (see `serde_path`).
/// simd-json gets the limit through `Buffers::with_max_depth`.
pub const MAX_JSON_DEPTH: usize = 128;

/// Why a request body was refused. Every variant is the client's fault and maps to a 400.
///
/// Validation comes first, so an invalid document is reported as [`JsonError::Syntax`] or
/// [`JsonError::TooDeep`] even when it also has a bad `model`. Field problems are then
/// reported in the order the variants below are declared, starting with `NotObject`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    /// The document is not valid JSON. The text is the parser's message, which includes a line
    /// and column.
    Syntax(String),
    /// The document is valid apart from nesting deeper than [`MAX_JSON_DEPTH`].
    TooDeep,
    /// The document is valid JSON, but its top-level value is not an object.
    NotObject,
    /// The top-level `model` key appears more than once.
    DuplicateModel,
    /// The top-level object has no `model` key.
    MissingModel,
    /// The top-level `model` value is not a string.
    ModelNotString,
    /// The top-level `model` value is `""`.
    EmptyModel,
    /// The top-level `stream` key appears more than once.
    DuplicateStream,
    /// The top-level `stream` value is neither a boolean nor `null`.
    StreamNotBool,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax(msg) => write!(f, "request body is not valid JSON: {msg}"),
            Self::TooDeep => write!(
                f,
                "request body is not valid JSON: nested deeper than {MAX_JSON_DEPTH} levels"
            ),
            Self::NotObject => f.write_str("request body must be a JSON object"),
            Self::DuplicateModel => f.write_str("request body has more than one `model` field"),
            Self::MissingModel => f.write_str("request body has no `model` field"),
            Self::ModelNotString => f.write_str("`model` must be a string"),
            Self::EmptyModel => f.write_str("`model` must not be empty"),
            Self::DuplicateStream => f.write_str("request body has more than one `stream` field"),
            Self::StreamNotBool => f.write_str("`stream` must be a boolean"),
        }
    }
}

impl std::error::Error for JsonError {}

/// What the gateway needs from a chat request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    /// The decoded value of the top-level `model` key.
    pub model: String,
    /// The byte span of the `model` value in the original body, quotes included.
    /// Pass it to [`splice_string`].
    pub model_span: Range<usize>,
    /// `true` if the top-level `stream` is `true`. A missing, `false` or `null` stream gives `false`.
    pub stream: bool,
    /// What the first top-level `messages` holds (both chat formats require an array).
    pub messages: FieldShape,
    /// What the first top-level `max_tokens` holds (Anthropic Messages requires a number).
    pub max_tokens: FieldShape,
    /// The first top-level `allow_fallbacks` (a gateway-only field, removed before the body
    /// goes upstream).
    pub allow_fallbacks: Flag,
    /// The first top-level `privacy_tier` (a gateway-only field, removed before the body goes
    /// upstream).
    pub privacy_tier: TextField,
    /// The first top-level `pii_substitution` (a gateway-only field, removed before the body
    /// goes upstream), its key compared after unescaping like every other.
    pub pii_substitution: Flag,
    /// Whether a string token may open with the seal mark (`rw1.`, as written): false means
    /// the body holds no seal of this gateway, and nothing needs to search it for one. The
    /// scanner answers per token; the other parsers by a search for `"rw1.`, which may also
    /// find the mark after an escaped quote (text).
    pub may_hold_seal: bool,
    /// Whether the body holds the thought signature separator
    /// ([`crate::seal::SIGNATURE_SEPARATOR`]) anywhere: false means no tool call id in it
    /// carries a Gemini thought signature, and nothing needs to search it for one. Exact in
    /// every parser (the scanner learns it of kept bytes when they were kept).
    pub may_carry_signature: bool,
    /// Where the body's long string tokens and containers end, when the scanner read it: a
    /// translation of the same body reads them with [`with_notes`] instead of scanning them
    /// again.
    pub strings: StringSpans,
}

/// Longest gateway-only text value kept from a body: the values it serves (tier names) are
/// short words, and a longer one is refused without being copied.
pub const MAX_GATEWAY_TEXT_BYTES: usize = 256;

/// A top-level field meant as a short string (a gateway-only field such as `privacy_tier`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum TextField {
    /// The key is not there.
    #[default]
    Absent,
    /// A string of at most [`MAX_GATEWAY_TEXT_BYTES`], decoded.
    Text(String),
    /// Anything else: not a string (`null` included), or a string too long to keep.
    Other,
}

impl TextField {
    /// The field from a decoded string value.
    fn of_str(s: &str) -> TextField {
        if s.len() <= MAX_GATEWAY_TEXT_BYTES {
            TextField::Text(s.to_owned())
        } else {
            TextField::Other
        }
    }

    /// Is the key there at all?
    pub fn is_present(&self) -> bool {
        !matches!(self, TextField::Absent)
    }
}

/// A top-level field meant as a boolean.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// The key is not there.
    #[default]
    Absent,
    /// `true` or `false`.
    Bool(bool),
    /// Anything else (`null` included).
    Other,
}

impl Flag {
    /// The flag of a raw JSON value.
    fn of_raw(raw: &[u8]) -> Flag {
        match raw {
            b"true" => Flag::Bool(true),
            b"false" => Flag::Bool(false),
            _ => Flag::Other,
        }
    }
}

/// The kind of value a top-level field holds, for the shape checks a gateway can make
/// without parsing the request again.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum FieldShape {
    /// The key is not there.
    #[default]
    Absent,
    /// An array.
    Array,
    /// A number.
    Number,
    /// Anything else (`null` included).
    Other,
}

impl FieldShape {
    /// The shape of a JSON value from its first byte (the document is already validated).
    fn of_raw(raw: &[u8]) -> FieldShape {
        match raw.first() {
            Some(b'[') => FieldShape::Array,
            Some(b'-' | b'0'..=b'9') => FieldShape::Number,
            _ => FieldShape::Other,
        }
    }
}

/// Where the value at `at` of `body` ends (one past its last byte). `body` is JSON a reader
/// has checked; its notes, when it has some, are crossed rather than scanned (a long
/// conversation array is one jump). None where no value starts there.
pub(crate) fn value_end(body: &[u8], at: usize) -> Option<usize> {
    let mut s = scan::Scanner::new(body, at);
    s.value().ok()?;
    Some(s.i)
}

/// Checks a chat request body and finds its `model`, with the scanning parser (the fastest of
/// the three; each refusal of it goes to serde_json, which words the error).
///
/// The choice comes from `benches/json.rs` (group `json_model_splice/*`: validate, locate, then
/// splice; criterion medians in one run on a shared, noisy 2-core machine) and from
/// instruction counts, which do not depend on the machine's load (callgrind, validation only):
///
/// | body                                  | simd_tape | scan     |
/// |---------------------------------------|-----------|----------|
/// | 1k (1,012 B)                          | 1.04 µs   | 0.64 µs  |
/// | 10k (9,641 B, escapes, CJK, emoji)    | 7.8 µs    | 8.5 µs   |
/// | 100k_image (100 KB base64 URL)        | 21.2 µs   | 12.7 µs  |
/// | agent Chat 50 KB                      | 20.6 µs   | 11.5 µs  |
/// | agent Chat 300 KB                     | 192 µs    | 164 µs   |
/// | agent Chat 300 KB, instructions/byte  | 6.5       | 3.8      |
///
/// Agent bodies are `loadtest/src/agent.rs`'s. Text dense in escapes (source code: a `\n` or
/// `\"` every dozen bytes) is what keeps the scan near 4 instructions a byte.
pub fn inspect_request(body: &[u8]) -> Result<RequestInfo, JsonError> {
    inspect_request_scan(body)
}

/// [`inspect_request`] for a dialect whose model and streaming are named by the path
/// (Gemini's `/v1beta/models/{model}:streamGenerateContent`): a `model` or `stream` member of
/// the body is not the request's, and none is needed. `model_span` is then empty.
pub fn inspect_request_path_model(
    body: &[u8],
    model: &str,
    stream: bool,
) -> Result<RequestInfo, JsonError> {
    let mut c = scan::collect_checked(body)?;
    c.model_count = 1;
    c.model = Some((0..0, Some(model.to_owned())));
    c.stream_count = 1;
    c.stream = StreamValue::Bool(stream);
    c.finish()
}

/// The top-level `model` and `stream` values, as gathered by either parser before the field
/// checks in [`Collected::finish`].
#[derive(Debug, Default)]
struct Collected {
    /// How many top-level `model` keys were seen.
    model_count: u32,
    /// The first `model` value: its span and, if it is a string, its decoded text.
    model: Option<(Range<usize>, Option<String>)>,
    /// How many top-level `stream` keys were seen.
    stream_count: u32,
    /// The first `stream` value.
    stream: StreamValue,
    /// The first `messages` value's shape.
    messages: FieldShape,
    /// The first `max_tokens` value's shape.
    max_tokens: FieldShape,
    /// The first `allow_fallbacks` value.
    allow_fallbacks: Flag,
    /// The first `privacy_tier` value.
    privacy_tier: TextField,
    /// The first `pii_substitution` value.
    pii_substitution: Flag,
    /// A string token may open with the seal mark.
    sealed: bool,
    /// The body holds the thought signature separator.
    signed: bool,
    /// Where the long string tokens end (the scanner's notes).
    strings: StringSpans,
}

/// The kind of value a top-level `stream` key has.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum StreamValue {
    #[default]
    Absent,
    Null,
    Bool(bool),
    Other,
}

impl Collected {
    /// Applies the field checks, in [`JsonError`] order. Both parsers call this, which is what
    /// keeps their results identical on valid documents.
    fn finish(self) -> Result<RequestInfo, JsonError> {
        if self.model_count > 1 {
            return Err(JsonError::DuplicateModel);
        }
        let (model_span, model) = match self.model {
            None => return Err(JsonError::MissingModel),
            Some((_, None)) => return Err(JsonError::ModelNotString),
            Some((span, Some(model))) => (span, model),
        };
        if model.is_empty() {
            return Err(JsonError::EmptyModel);
        }
        if self.stream_count > 1 {
            return Err(JsonError::DuplicateStream);
        }
        let stream = match self.stream {
            StreamValue::Absent | StreamValue::Null => false,
            StreamValue::Bool(b) => b,
            StreamValue::Other => return Err(JsonError::StreamNotBool),
        };
        Ok(RequestInfo {
            model,
            model_span,
            stream,
            messages: self.messages,
            max_tokens: self.max_tokens,
            allow_fallbacks: self.allow_fallbacks,
            privacy_tier: self.privacy_tier,
            pii_substitution: self.pii_substitution,
            may_hold_seal: self.sealed,
            may_carry_signature: self.signed,
            strings: self.strings,
        })
    }
}

/// The first byte that is not JSON whitespace (RFC 8259: space, tab, LF, CR).
fn first_non_ws(body: &[u8]) -> Option<u8> {
    body.iter()
        .copied()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// Finds the span of a string token whose opening quote is at `open`, with both quotes. Only
/// valid for a document that has been validated, so the string is known to end.
fn string_token_span(body: &[u8], open: usize) -> Option<Range<usize>> {
    cursor::Cursor::new(body, open)
        .string()
        .map(|token| token.quoted())
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn display_messages_read_well() {
        let e = JsonError::Syntax("expected `,` or `}` at line 1 column 40".into());
        assert_eq!(
            e.to_string(),
            "request body is not valid JSON: expected `,` or `}` at line 1 column 40"
        );
        assert_eq!(
            JsonError::TooDeep.to_string(),
            "request body is not valid JSON: nested deeper than 128 levels"
        );
        assert_eq!(
            JsonError::MissingModel.to_string(),
            "request body has no `model` field"
        );
        assert_eq!(
            JsonError::StreamNotBool.to_string(),
            "`stream` must be a boolean"
        );
    }

    #[test]
    fn finish_orders_field_errors() {
        let mut c = Collected {
            model_count: 2,
            model: Some((1..3, None)),
            stream_count: 2,
            stream: StreamValue::Other,
            ..Collected::default()
        };
        assert_eq!(Collected::default().finish(), Err(JsonError::MissingModel));
        c.model_count = 2;
        assert_eq!(
            std::mem::take(&mut c).finish(),
            Err(JsonError::DuplicateModel)
        );
        let c = Collected {
            model_count: 1,
            model: Some((1..3, None)),
            stream_count: 2,
            stream: StreamValue::Other,
            ..Collected::default()
        };
        assert_eq!(c.finish(), Err(JsonError::ModelNotString));
        let c = Collected {
            model_count: 1,
            model: Some((1..3, Some(String::new()))),
            stream_count: 2,
            stream: StreamValue::Other,
            ..Collected::default()
        };
        assert_eq!(c.finish(), Err(JsonError::EmptyModel));
        let c = Collected {
            model_count: 1,
            model: Some((1..4, Some("m".into()))),
            stream_count: 2,
            stream: StreamValue::Bool(true),
            ..Collected::default()
        };
        assert_eq!(c.finish(), Err(JsonError::DuplicateStream));
        let c = Collected {
            model_count: 1,
            model: Some((1..4, Some("m".into()))),
            stream_count: 1,
            stream: StreamValue::Other,
            ..Collected::default()
        };
        assert_eq!(c.finish(), Err(JsonError::StreamNotBool));
        let c = Collected {
            model_count: 1,
            model: Some((1..4, Some("m".into()))),
            stream_count: 1,
            stream: StreamValue::Null,
            ..Collected::default()
        };
        assert_eq!(
            c.finish(),
            Ok(RequestInfo {
                model: "m".into(),
                model_span: 1..4,
                stream: false,
                messages: FieldShape::Absent,
                max_tokens: FieldShape::Absent,
                allow_fallbacks: Flag::Absent,
                privacy_tier: TextField::Absent,
                pii_substitution: Flag::Absent,
                may_hold_seal: false,
                may_carry_signature: false,
                strings: StringSpans::default(),
            })
        );
    }

    #[test]
    fn string_token_span_skips_escapes() {
        let body = br#"{"model":"a\"b\\","x":1}"#;
        assert_eq!(string_token_span(body, 9), Some(9..17));
        assert_eq!(&body[9..17], br#""a\"b\\""#);
        assert_eq!(string_token_span(body, 8), None);
        assert_eq!(string_token_span(br#""abc"#, 0), None);
    }

    #[test]
    fn first_non_ws_skips_only_json_whitespace() {
        assert_eq!(first_non_ws(b" \t\r\n{"), Some(b'{'));
        assert_eq!(first_non_ws(b"\x0c{"), Some(0x0c));
        assert_eq!(first_non_ws(b"  "), None);
    }
}
