//! Turns a `toml`/serde error (unknown key, wrong type, missing key) into a `ConfigError`
//! that names the dotted key path and says what is wrong in words, not Rust types.
//!
//! The toml error carries only a byte span; the path is found by re-parsing the document
//! into its spanned tree (`toml::de::DeTable`) and descending to the deepest key or value
//! whose span holds the error. This runs only on the error path.

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::compiler::{line_of, ConfigError};

/// Longest piece of the offending value quoted back in a message, in chars.
const MAX_QUOTED_CHARS: usize = 40;

/// Most edits between an unknown key and a valid one for the valid one to be suggested.
const MAX_SUGGESTION_EDITS: usize = 2;

/// `ConfigError` for `err`, raised while reading `text` (the file `file`) into the raw structs.
pub(super) fn explain(text: &str, file: &str, err: &toml::de::Error) -> ConfigError {
    let message = err.message().trim();
    let span = err.span();
    let mut out = ConfigError {
        file: file.to_owned(),
        line: span.as_ref().map(|s| line_of(text, s.start)),
        path: String::new(),
        message: message.to_owned(),
    };
    let Some(span) = span else {
        return out;
    };
    // A syntax error (the document does not parse) has no key path to give.
    let Ok(doc) = DeTable::parse(text) else {
        if message == "duplicate key" {
            if let Some(key) = quoted(text, &span) {
                out.message = format!("duplicate key {key}");
            }
        }
        return out;
    };
    let found = locate_in_table(doc.get_ref(), span.start, "");
    let (path, value) = found.map_or((String::new(), None), |f| (f.path, f.value));
    out.path = path;

    if let Some(field) = between_backticks(message, "missing field ") {
        // The span is that of the table lacking the key.
        out.path = join(&out.path, field);
        out.message = "required key is missing".to_owned();
    } else if let Some(key) = between_backticks(message, "unknown field ") {
        let valid = valid_keys(message);
        out.message = unknown_key(key, &valid);
    } else if let Some((_, expected)) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        .and_then(|m| m.rsplit_once(", expected "))
    {
        let mut reason = format!("expected {}", human_expected(expected));
        if let Some(v) = value {
            reason.push_str(", found ");
            reason.push_str(v.type_str());
            if !matches!(v, DeValue::Array(_) | DeValue::Table(_)) {
                if let Some(q) = quoted(text, &span) {
                    reason.push(' ');
                    reason.push_str(&q);
                }
            }
        }
        out.message = reason;
    }
    out
}

/// Span of the value at `path` (bare keys and `[i]` indexes: `provider[1].idle_timeout_ms`),
/// for checks made on unspanned raw fields.
pub(super) fn span_of(text: &str, path: &str) -> Option<Range<usize>> {
    let doc = DeTable::parse(text).ok()?;
    let mut table = doc.get_ref();
    let mut found: Option<&Spanned<DeValue<'_>>> = None;
    for segment in path.split('.') {
        if let Some(DeValue::Table(t)) = found.map(Spanned::get_ref) {
            table = t;
        } else if found.is_some() {
            return None;
        }
        let (key, indexes) = segment.split_once('[').unwrap_or((segment, ""));
        let mut value = table.get(key)?;
        for index in indexes.split('[').filter(|s| !s.is_empty()) {
            let i: usize = index.strip_suffix(']')?.parse().ok()?;
            let DeValue::Array(items) = value.get_ref() else {
                return None;
            };
            value = items.get(i)?;
        }
        found = Some(value);
    }
    found.map(Spanned::span)
}

/// Where an error span starts: the dotted key path and, for a value, the value.
struct Found<'a, 'i> {
    path: String,
    value: Option<&'a DeValue<'i>>,
}

fn holds(span: &Range<usize>, at: usize) -> bool {
    span.contains(&at) || (span.is_empty() && span.start == at)
}

/// The deepest key or value of `table` (at `prefix`) whose span holds `at`. Children are
/// searched even outside the parent's span: an array of tables spans only its headers.
fn locate_in_table<'a, 'i>(
    table: &'a DeTable<'i>,
    at: usize,
    prefix: &str,
) -> Option<Found<'a, 'i>> {
    for (key, value) in table.iter() {
        let path = join(prefix, key.get_ref());
        if holds(&key.span(), at) {
            return Some(Found { path, value: None });
        }
        if let Some(found) = locate_value(value, at, path) {
            return Some(found);
        }
    }
    None
}

fn locate_value<'a, 'i>(
    value: &'a Spanned<DeValue<'i>>,
    at: usize,
    path: String,
) -> Option<Found<'a, 'i>> {
    let deeper = match value.get_ref() {
        DeValue::Table(t) => locate_in_table(t, at, &path),
        DeValue::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| locate_value(item, at, format!("{path}[{i}]"))),
        _ => None,
    };
    deeper.or_else(|| {
        holds(&value.span(), at).then(|| Found {
            path,
            value: Some(value.get_ref()),
        })
    })
}

/// `prefix.key`, quoting a key that is not a bare TOML key.
fn join(prefix: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let key = if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix}.{key}")
    }
}

/// The name in `` prefix`name` `` at the start of `message`.
fn between_backticks<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = message.strip_prefix(prefix)?.strip_prefix('`')?;
    rest.split_once('`').map(|(name, _)| name)
}

/// The keys serde listed after "expected" in an unknown-field message.
fn valid_keys(message: &str) -> Vec<&str> {
    let Some((_, expected)) = message.split_once(", expected ") else {
        return Vec::new();
    };
    expected.split('`').skip(1).step_by(2).collect()
}

fn unknown_key(key: &str, valid: &[&str]) -> String {
    let near: Vec<&str> = valid
        .iter()
        .copied()
        .filter(|v| edit_distance(key, v) <= MAX_SUGGESTION_EDITS)
        .collect();
    match near.as_slice() {
        [one] => format!("unknown key; did you mean `{one}`?"),
        [] if valid.is_empty() => "unknown key; this table takes no keys".to_owned(),
        [] => format!("unknown key; valid keys here: {}", valid.join(", ")),
        several => format!("unknown key; did you mean one of {}?", several.join(", ")),
    }
}

/// Levenshtein distance over bytes (keys are ASCII), one row at a time.
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.as_bytes().iter().enumerate() {
        // `diag` is the previous row's cell left of `up`; `left` the cell just computed.
        let (mut diag, mut left) = (i, i + 1);
        let mut next = Vec::with_capacity(row.len());
        next.push(left);
        for (&cb, &up) in b.iter().zip(row.iter().skip(1)) {
            let cell = (diag + usize::from(ca != cb)).min(up + 1).min(left + 1);
            next.push(cell);
            diag = up;
            left = cell;
        }
        row = next;
    }
    row.last().copied().unwrap_or(0)
}

/// serde's `expected …` (Rust type names) in words.
fn human_expected(expected: &str) -> String {
    let bounded = |max: u64| format!("a whole number from 0 to {max}");
    match expected {
        "usize" | "u64" => "a whole number (0 or more)".to_owned(),
        "u32" => bounded(u32::MAX.into()),
        "u16" => bounded(u16::MAX.into()),
        "u8" => bounded(u8::MAX.into()),
        "i64" | "i32" | "isize" => "a whole number".to_owned(),
        "f64" | "f32" => "a number".to_owned(),
        "a boolean" => "true or false".to_owned(),
        "a sequence" => "an array".to_owned(),
        "a map" => "a table".to_owned(),
        other if other.starts_with("struct ") => "a table".to_owned(),
        other => other.to_owned(),
    }
}

/// The source text under `span`, cut to [`MAX_QUOTED_CHARS`], when it is one line.
fn quoted(text: &str, span: &Range<usize>) -> Option<String> {
    let s = text.get(span.clone())?.trim();
    if s.is_empty() || s.contains('\n') {
        return None;
    }
    let mut q: String = s.chars().take(MAX_QUOTED_CHARS).collect();
    if q.len() < s.len() {
        q.push('…');
    }
    // Backticks mark it as quoted text; the value's own quotes are kept.
    Some(format!("`{q}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("listn", "listen"), 1);
        assert_eq!(edit_distance("kindd", "kind"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn unknown_key_messages() {
        assert_eq!(
            unknown_key("listn", &["listen", "workers"]),
            "unknown key; did you mean `listen`?"
        );
        assert_eq!(
            unknown_key("zzz", &["listen", "workers"]),
            "unknown key; valid keys here: listen, workers"
        );
        assert_eq!(
            unknown_key("x", &[]),
            "unknown key; this table takes no keys"
        );
        assert_eq!(
            valid_keys("unknown field `a`, expected one of `b`, `c`"),
            ["b", "c"]
        );
        assert_eq!(
            valid_keys("unknown field `a`, expected `b` or `c`"),
            ["b", "c"]
        );
    }
}
