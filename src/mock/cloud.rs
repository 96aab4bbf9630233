//! What the cloud sides of the mock (Bedrock, Vertex, the credential endpoints) share: their
//! `mock:` directives, simple replies as [`Step`]s, form and percent decoding, UTC times.
//! Pure: the clock is a parameter.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde_json::Value;

use super::script::Step;

/// Largest `mock:split=` piece accepted; larger values are clamped.
pub const MAX_SPLIT_BYTES: usize = 1 << 20;

/// The cloud directives found in the last user message (the script ignores them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloudDirectives {
    /// `mock:throttle`: the cloud's own throttling reply before any stream.
    pub throttle: bool,
    /// `mock:split=N`: Bedrock stream bytes go out in N-byte pieces, each flushed.
    pub split: Option<usize>,
    /// `mock:bedrock_exception=NAME`: an exception frame after a few tokens.
    pub exception: Option<String>,
    /// `mock:bad_crc`: the second frame's message CRC is wrong.
    pub bad_crc: bool,
    /// `mock:huge_frame`: after the first frame, a prelude claiming [`super::bedrock::HUGE_FRAME_BYTES`].
    pub huge_frame: bool,
}

impl CloudDirectives {
    /// Reads the directives of the text the script reads its own from.
    pub fn parse(text: &str) -> Self {
        let mut d = Self::default();
        for raw in text.split_whitespace() {
            let raw = raw.trim_start_matches(['(', '"', '\'', '`']);
            let Some(rest) = raw.strip_prefix("mock:") else {
                continue;
            };
            let word = rest.trim_end_matches(['.', ',', ';', '!', '?', ')', '"', '\'', '`']);
            let (key, value) = match word.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (word, None),
            };
            match key {
                "throttle" => d.throttle = true,
                "split" => {
                    d.split = value
                        .and_then(|v| v.parse::<usize>().ok())
                        .filter(|n| *n > 0)
                        .map(|n| n.min(MAX_SPLIT_BYTES))
                        .or(d.split);
                }
                "bedrock_exception" => {
                    let name = value
                        .filter(|v| !v.is_empty())
                        .unwrap_or("modelStreamErrorException");
                    d.exception = Some(name.to_owned());
                }
                "bad_crc" => d.bad_crc = true,
                "huge_frame" => d.huge_frame = true,
                _ => {}
            }
        }
        d
    }
}

/// Text of the last user message that has text, as the script finds it (directives live there).
pub fn last_user_text(root: &Value) -> String {
    let Some(messages) = root.get("messages").and_then(Value::as_array) else {
        return String::new();
    };
    messages
        .iter()
        .rev()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(|m| plain_text(m.get("content")))
        .find(|t| !t.trim().is_empty())
        .unwrap_or_default()
}

fn plain_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Appends a directive word to the text [`last_user_text`] reads, so the script acts on it.
pub fn append_directive(root: &mut Value, word: &str) {
    let Some(messages) = root.get_mut("messages").and_then(Value::as_array_mut) else {
        return;
    };
    for m in messages.iter_mut().rev() {
        if m.get("role").and_then(Value::as_str) != Some("user")
            || plain_text(m.get("content")).trim().is_empty()
        {
            continue;
        }
        match m.get_mut("content") {
            Some(Value::String(s)) => s.push_str(&format!(" {word}")),
            Some(Value::Array(parts)) => {
                let last_text = parts
                    .iter_mut()
                    .rev()
                    .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
                    .find_map(|p| match p.get_mut("text") {
                        Some(Value::String(s)) => Some(s),
                        _ => None,
                    });
                if let Some(s) = last_text {
                    s.push_str(&format!(" {word}"));
                }
            }
            _ => {}
        }
        return;
    }
}

/// A complete reply: status, headers (content-type first), body.
pub fn reply(status: u16, mut headers: Vec<(&'static str, String)>, body: Vec<u8>) -> Vec<Step> {
    if !headers.iter().any(|(n, _)| *n == "content-type") {
        headers.insert(0, ("content-type", "application/json".to_owned()));
    }
    vec![
        Step::Head {
            status,
            headers,
            content_length: Some(body.len()),
        },
        Step::Data(Bytes::from(body)),
        Step::End,
    ]
}

/// A JSON reply.
pub fn json_reply(status: u16, headers: Vec<(&'static str, String)>, body: &Value) -> Vec<Step> {
    reply(status, headers, body.to_string().into_bytes())
}

/// Decodes `%XX` escapes (and `+` as space when `form`); `None` for a bad escape or non-UTF-8.
pub fn percent_decode(s: &str, form: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if form => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The value of `key` in an `application/x-www-form-urlencoded` body.
pub fn form_value(body: &[u8], key: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k, true)? == key).then(|| percent_decode(v, true))?
    })
}

/// Seconds since the Unix epoch (0 before it).
pub fn unix(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The instant `secs` after the epoch.
pub fn from_unix(secs: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

fn civil(secs: i64) -> (i64, u32, u32, i64, i64, i64) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = crate::calendar::civil_from_days(days);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `20150830T123600Z` (SigV4's `x-amz-date`).
pub fn amz_date(secs: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(secs);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

/// Parses an `x-amz-date` value.
pub fn parse_amz_date(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 16 || b.get(8) != Some(&b'T') || b.get(15) != Some(&b'Z') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let days = crate::calendar::days_from_civil(
        num(0..4)?,
        u32::try_from(num(4..6)?).ok()?,
        u32::try_from(num(6..8)?).ok()?,
    )?;
    let (h, mi, s) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some(days * 86_400 + h * 3600 + mi * 60 + s)
}

/// `2016-02-25T06:03:31Z` (RFC 3339, whole seconds, as AWS writes `Expiration`).
pub fn rfc3339(secs: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(secs);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// A deterministic 64-bit hash (FNV-1a) for ids and varying offsets.
pub fn hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A UUID-shaped id derived from `bytes` (AWS request ids look like this).
pub fn uuid_of(bytes: &[u8]) -> String {
    let a = hash(bytes);
    let b = hash(&a.to_le_bytes()).wrapping_add(a.rotate_left(17));
    let hex = format!("{a:016x}{b:016x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The pause after each `mock:split=` piece, so each goes out in a write of its own.
pub(super) const SPLIT_PAUSE: std::time::Duration = std::time::Duration::from_millis(1);

/// The bytes of one write as Data steps: `split` pieces each followed by a pause, else two
/// pieces cut at an offset that moves with `salt` (so frame boundaries fall anywhere).
pub(super) fn push_pieces(out: &mut Vec<Step>, bytes: Bytes, split: Option<usize>, salt: usize) {
    if bytes.is_empty() {
        return;
    }
    match split {
        Some(n) => {
            let mut at = 0;
            while at < bytes.len() {
                let end = (at + n).min(bytes.len());
                out.push(Step::Data(bytes.slice(at..end)));
                out.push(Step::Sleep(SPLIT_PAUSE));
                at = end;
            }
        }
        None if bytes.len() > 1 => {
            let cut = (salt * 37 + 5) % (bytes.len() - 1) + 1;
            out.push(Step::Data(bytes.slice(..cut)));
            out.push(Step::Data(bytes.slice(cut..)));
        }
        None => out.push(Step::Data(bytes)),
    }
}

/// What follows `models/` in a Vertex publisher path (`{prefix}projects/{p}/locations/{l}/
/// publishers/{publisher}/models/…`, for any of `prefixes`); `None`: not such a path.
pub(super) fn vertex_models<'p>(
    path: &'p str,
    prefixes: &[&str],
    publisher: &str,
) -> Option<&'p str> {
    let rest = prefixes.iter().find_map(|p| path.strip_prefix(p))?;
    let mut segs = rest.splitn(6, '/');
    let (_project, "locations", _location, "publishers", named, models) = (
        segs.next()?,
        segs.next()?,
        segs.next()?,
        segs.next()?,
        segs.next()?,
        segs.next()?,
    ) else {
        return None;
    };
    (named == publisher).then_some(())?;
    models.strip_prefix("models/")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_bytes() {
        let mut out = Vec::new();
        push_pieces(&mut out, Bytes::from_static(b"0123456789"), Some(3), 0);
        let joined: Vec<u8> = out
            .iter()
            .filter_map(|s| match s {
                Step::Data(d) => Some(d.to_vec()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(joined, b"0123456789");
        assert_eq!(out.len(), 8);
    }
    use serde_json::json;

    #[test]
    fn amz_dates_round_trip() {
        let t = parse_amz_date("20150830T123600Z").unwrap();
        assert_eq!(amz_date(t), "20150830T123600Z");
        assert_eq!(rfc3339(t), "2015-08-30T12:36:00Z");
        assert_eq!(parse_amz_date("20150830T12360Z"), None);
        assert_eq!(parse_amz_date("2015083OT123600Z"), None);
    }

    #[test]
    fn directives_and_forms() {
        let d = CloudDirectives::parse(
            "hi mock:split=7 mock:bedrock_exception=throttlingException mock:throttle.",
        );
        assert_eq!(d.split, Some(7));
        assert_eq!(d.exception.as_deref(), Some("throttlingException"));
        assert!(d.throttle && !d.bad_crc);
        assert_eq!(
            form_value(
                b"grant_type=urn%3Aietf%3Aparams&assertion=a.b+c",
                "assertion"
            )
            .as_deref(),
            Some("a.b c")
        );
        assert_eq!(form_value(b"a=%zz", "a"), None);
        let mut body =
            json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]});
        append_directive(&mut body, "mock:reset");
        assert_eq!(last_user_text(&body), "hi mock:reset");
    }
}
