//! The simd-json parser: a tape over a padded copy of the body (simd-json unescapes strings in
//! place). The `model` span comes from where its tape string points in that copy.

use std::ops::Range;

use simd_json::{Buffers, Node, StaticNode, Tape};

use super::{
    serde_path, string_token_span, Collected, FieldShape, Flag, JsonError, RequestInfo,
    StreamValue, TextField, MAX_JSON_DEPTH,
};

/// Buffer size a new [`SimdScratch`] starts with. It grows to the largest body seen.
const SIMD_SCRATCH_INITIAL_BYTES: usize = 16 * 1024;

/// Bodies larger than this do not leave their buffers behind in a [`SimdScratch`]. After
/// parsing one, the scratch is replaced with a fresh one, so one large image request does not
/// pin megabytes on a worker for good.
const SIMD_SCRATCH_RETAIN_BYTES: usize = 1024 * 1024;

/// Reusable simd-json state for one worker. Create it once per worker and pass it to every call.
pub struct SimdScratch {
    buffers: Buffers,
    /// The padded copy that simd-json parses and unescapes in place. The caller's body is
    /// never mutated.
    copy: Vec<u8>,
    /// The tape's allocation, kept empty between calls.
    tape: Tape<'static>,
}

impl std::fmt::Debug for SimdScratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimdScratch")
            .field("copy_capacity", &self.copy.capacity())
            .finish_non_exhaustive()
    }
}

impl SimdScratch {
    /// Creates scratch sized for 16 KiB bodies (it grows as needed), with the depth limit
    /// set to [`MAX_JSON_DEPTH`].
    pub fn new() -> Self {
        Self {
            buffers: Buffers::with_max_depth(SIMD_SCRATCH_INITIAL_BYTES, MAX_JSON_DEPTH),
            copy: Vec::with_capacity(SIMD_SCRATCH_INITIAL_BYTES + simd_json::INPUT_PADDING),
            tape: Tape(Vec::new()),
        }
    }
}

impl Default for SimdScratch {
    fn default() -> Self {
        Self::new()
    }
}

/// Why [`collect`] produced no result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The document is valid, but its top-level value is not an object.
    NotObject,
    /// simd-json rejected the document.
    Parse,
    /// The tape did not have the shape expected of a valid document. This should never happen.
    Tape,
}

/// Checks a chat request body and finds its `model` using simd-json. See the module docs for
/// the rules.
///
/// If simd-json refuses the document, the serde_json parser decides instead. This has two
/// uses. First, error messages get serde_json's line and column. simd-json reports a
/// structural index, which a client cannot use. Second, the two parsers agree on numbers.
/// simd-json rejects integers outside the i64/u64 range (without its `big-int-as-float`
/// feature) and exponents beyond the `f64` range. The rules check numbers for shape only.
pub fn inspect_request_simd(
    body: &[u8],
    scratch: &mut SimdScratch,
) -> Result<RequestInfo, JsonError> {
    match collect(body, scratch) {
        Ok(mut collected) => {
            collected.sealed = crate::seal::may_hold_seal(body);
            collected.signed = crate::seal::find_signature_separator(body).is_some();
            collected.finish()
        }
        Err(Refusal::NotObject) => Err(JsonError::NotObject),
        Err(Refusal::Parse | Refusal::Tape) => serde_path::inspect_request_serde(body),
    }
}

/// Parses `body` with simd-json and gathers the top-level `model` and `stream` values.
pub(super) fn collect(body: &[u8], scratch: &mut SimdScratch) -> Result<Collected, Refusal> {
    let len = body.len();
    scratch.copy.clear();
    scratch.copy.reserve(len + simd_json::INPUT_PADDING);
    scratch.copy.extend_from_slice(body);
    scratch.copy.resize(len + simd_json::INPUT_PADDING, b' ');
    let base = scratch.copy.as_ptr() as usize;

    let mut tape = std::mem::replace(&mut scratch.tape, Tape(Vec::new())).reset();
    let result =
        simd_json::fill_tape_padded(&mut scratch.copy, len, &mut scratch.buffers, &mut tape)
            .map_err(|_| Refusal::Parse)
            .and_then(|()| walk(&tape.0, body, base));
    scratch.tape = tape.reset();

    if len > SIMD_SCRATCH_RETAIN_BYTES {
        *scratch = SimdScratch::new();
    }
    result
}

/// Walks the top-level object on the tape. `base` is the address of the parsed copy, which
/// lines up byte for byte with `body`.
fn walk(nodes: &[Node<'_>], body: &[u8], base: usize) -> Result<Collected, Refusal> {
    let pairs = match nodes.first() {
        Some(Node::Object { len, .. }) => *len,
        Some(_) => return Err(Refusal::NotObject),
        None => return Err(Refusal::Tape),
    };
    let mut collected = Collected::default();
    let mut at = 1;
    for _ in 0..pairs {
        let Some(Node::String(key)) = nodes.get(at) else {
            return Err(Refusal::Tape);
        };
        let value_at = at + 1;
        let value = nodes.get(value_at).ok_or(Refusal::Tape)?;
        match *key {
            "model" => {
                collected.model_count += 1;
                if collected.model_count == 1 {
                    collected.model = Some(match value {
                        Node::String(s) => (model_span(s, body, base)?, Some((*s).to_owned())),
                        // The span is only used for a string, so any value will do here.
                        _ => (0..0, None),
                    });
                }
            }
            "stream" => {
                collected.stream_count += 1;
                if collected.stream_count == 1 {
                    collected.stream = match value {
                        Node::Static(StaticNode::Bool(b)) => StreamValue::Bool(*b),
                        Node::Static(StaticNode::Null) => StreamValue::Null,
                        _ => StreamValue::Other,
                    };
                }
            }
            "messages" if collected.messages == FieldShape::Absent => {
                collected.messages = shape(value);
            }
            "max_tokens" if collected.max_tokens == FieldShape::Absent => {
                collected.max_tokens = shape(value);
            }
            "allow_fallbacks" if collected.allow_fallbacks == Flag::Absent => {
                collected.allow_fallbacks = flag(value);
            }
            "pii_substitution" if collected.pii_substitution == Flag::Absent => {
                collected.pii_substitution = flag(value);
            }
            "privacy_tier" if collected.privacy_tier == TextField::Absent => {
                collected.privacy_tier = match value {
                    Node::String(s) => TextField::of_str(s),
                    _ => TextField::Other,
                };
            }
            _ => {}
        }
        // A container's `count` is the number of tape nodes inside it. Skipping them lands on
        // the next key.
        let inner = match value {
            Node::Object { count, .. } | Node::Array { count, .. } => *count,
            _ => 0,
        };
        at = value_at + 1 + inner;
    }
    Ok(collected)
}

/// The shape of a tape value.
fn shape(value: &Node<'_>) -> FieldShape {
    match value {
        Node::Array { .. } => FieldShape::Array,
        Node::Static(StaticNode::I64(_) | StaticNode::U64(_) | StaticNode::F64(_)) => {
            FieldShape::Number
        }
        _ => FieldShape::Other,
    }
}

/// The span of a string token in `body`, quotes included. `decoded` is the tape's string,
/// unescaped in place, so it starts one byte after the opening quote in the copy.
fn model_span(decoded: &str, body: &[u8], base: usize) -> Result<Range<usize>, Refusal> {
    let open = (decoded.as_ptr() as usize)
        .checked_sub(base)
        .and_then(|content| content.checked_sub(1))
        .ok_or(Refusal::Tape)?;
    string_token_span(body, open).ok_or(Refusal::Tape)
}

/// A gateway-only boolean's value as the body holds it.
fn flag(value: &Node<'_>) -> Flag {
    match value {
        Node::Static(StaticNode::Bool(b)) => Flag::Bool(*b),
        _ => Flag::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_points_at_the_raw_value() {
        let mut s = SimdScratch::new();
        let body = br#" { "x" : [1,{"model":"no"}] , "model" :  "a\u0062c" , "stream":true } "#;
        let info = inspect_request_simd(body, &mut s).unwrap();
        assert_eq!(info.model, "abc");
        assert_eq!(&body[info.model_span.clone()], br#""a\u0062c""#);
        assert!(info.stream);
    }

    #[test]
    fn depth_limit_matches_serde_json() {
        let mut s = SimdScratch::new();
        let nest = |n: usize| format!("{}1{}", r#"{"a":"#.repeat(n), "}".repeat(n));
        assert!(collect(nest(MAX_JSON_DEPTH).as_bytes(), &mut s).is_ok());
        assert_eq!(
            collect(nest(MAX_JSON_DEPTH + 1).as_bytes(), &mut s).err(),
            Some(Refusal::Parse)
        );
        assert_eq!(
            inspect_request_simd(nest(MAX_JSON_DEPTH + 1).as_bytes(), &mut s),
            Err(JsonError::TooDeep)
        );
    }

    #[test]
    fn scratch_is_reused_and_large_bodies_are_not_retained() {
        let mut s = SimdScratch::new();
        let small = br#"{"model":"m"}"#;
        assert!(inspect_request_simd(small, &mut s).is_ok());
        let big = format!(
            r#"{{"model":"m","x":"{}"}}"#,
            "a".repeat(SIMD_SCRATCH_RETAIN_BYTES + 1)
        );
        assert!(inspect_request_simd(big.as_bytes(), &mut s).is_ok());
        assert!(s.copy.capacity() <= SIMD_SCRATCH_INITIAL_BYTES + simd_json::INPUT_PADDING);
        assert_eq!(inspect_request_simd(small, &mut s).unwrap().model, "m");
    }

    #[test]
    fn big_integers_defer_to_serde_json() {
        let mut s = SimdScratch::new();
        let body = br#"{"model":"m","seed":123456789012345678901234567890}"#;
        assert_eq!(collect(body, &mut s).err(), Some(Refusal::Parse));
        assert_eq!(
            inspect_request_simd(body, &mut s),
            inspect_request_serde_for_test(body)
        );
        assert!(inspect_request_simd(body, &mut s).is_ok());
    }

    fn inspect_request_serde_for_test(body: &[u8]) -> Result<RequestInfo, JsonError> {
        serde_path::inspect_request_serde(body)
    }
}
