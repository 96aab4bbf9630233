//! Request body presets: a tiny chat, 10 KB and 100 KB of context, a request carrying ten
//! tool definitions, and a short chat full of personal data, in either wire format.
//! Deterministic, so runs are comparable.

use std::fmt;

use serde_json::{json, Value};

use crate::sse::Dialect;

/// Target size of the `10k` preset's body.
pub const BODY_10K: usize = 10 * 1024;
/// Target size of the `100k` preset's body.
pub const BODY_100K: usize = 100 * 1024;
/// Tool definitions in the `tools` preset.
pub const TOOL_COUNT: usize = 10;
/// `max_tokens` sent to Anthropic, where it is required; generous for the mock's answer.
pub const ANTHROPIC_MAX_TOKENS: u32 = 256;

/// The short last user turn every preset ends with. It is echoed by the mock provider, so it
/// stays short and free of `mock:` directives.
const USER_TURN: &str = "Say hello to the load test.";

/// The `pii` preset's user turn: two email addresses, a phone number, an SSN and an IPv4
/// address, in its first 12 words so that the mock's echo of them (it repeats that many) comes
/// back in the answer. With PII substitution on, the provider sees stand-ins and echoes them,
/// and the gateway's restore stage turns them back in the answer, a stand-in split over
/// streamed deltas included (the phone number is two words, so two deltas). Without it these
/// are plain text both ways.
pub const PII_TURN: &str = "Mail jane.roe@corp.test, cc ops@corp.test or call (415) 555-2671, \
SSN 123-45-6789, host 10.20.30.40.";

/// A body preset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// One short user message.
    Tiny,
    /// About 10 KB, the bulk in the system prompt.
    K10,
    /// About 100 KB, the bulk in the system prompt.
    K100,
    /// A short message plus ten tool definitions.
    Tools,
    /// One short user message holding personal data ([`PII_TURN`]).
    Pii,
}

/// An unknown preset name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownPreset(pub String);

impl fmt::Display for UnknownPreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown body preset {:?} (tiny, 10k, 100k, tools, pii)",
            self.0
        )
    }
}

impl Preset {
    /// Parse a CLI name.
    pub fn parse(s: &str) -> Result<Preset, UnknownPreset> {
        match s {
            "tiny" => Ok(Preset::Tiny),
            "10k" => Ok(Preset::K10),
            "100k" => Ok(Preset::K100),
            "tools" => Ok(Preset::Tools),
            "pii" => Ok(Preset::Pii),
            other => Err(UnknownPreset(other.to_owned())),
        }
    }

    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Tiny => "tiny",
            Preset::K10 => "10k",
            Preset::K100 => "100k",
            Preset::Tools => "tools",
            Preset::Pii => "pii",
        }
    }
}

/// Build the JSON body for one preset.
pub fn build(dialect: Dialect, preset: Preset, model: &str, stream: bool) -> Vec<u8> {
    let target = match preset {
        Preset::K10 => BODY_10K,
        Preset::K100 => BODY_100K,
        Preset::Tiny | Preset::Tools | Preset::Pii => 0,
    };
    let user = if preset == Preset::Pii {
        PII_TURN
    } else {
        USER_TURN
    };
    let mut doc = base(dialect, model, stream, "", user);
    if preset == Preset::Tools {
        if let Some(obj) = doc.as_object_mut() {
            obj.insert("tools".into(), Value::Array(tools(dialect)));
        }
    }
    if target > 0 {
        // Size the filler from the body without it, so the total lands near the target.
        let bare = serde_json::to_vec(&doc).map_or(0, |v| v.len());
        doc = base(
            dialect,
            model,
            stream,
            &filler(target.saturating_sub(bare)),
            user,
        );
    }
    serde_json::to_vec(&doc).unwrap_or_default()
}

fn base(dialect: Dialect, model: &str, stream: bool, system: &str, user: &str) -> Value {
    let system = if system.is_empty() {
        "You are a concise assistant."
    } else {
        system
    };
    match dialect {
        Dialect::OpenAi => json!({
            "model": model,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": user},
            ],
            "stream": stream,
        }),
        Dialect::Anthropic => json!({
            "model": model,
            "max_tokens": ANTHROPIC_MAX_TOKENS,
            "system": system,
            "messages": [{"role": "user", "content": user}],
            "stream": stream,
        }),
    }
}

/// Pseudo-words of about `len` bytes: plain ASCII, so the JSON size is the text size.
fn filler(len: usize) -> String {
    const SYLLABLES: [&str; 16] = [
        "ka", "lo", "mi", "ren", "tu", "sa", "vel", "do", "ni", "por", "qu", "est", "an", "bri",
        "zo", "ul",
    ];
    let mut out = String::with_capacity(len + 16);
    let mut x: u32 = 0x1234_5678;
    let mut next = || {
        // Numerical Recipes LCG: enough to avoid one repeated word, fully deterministic.
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (x >> 16) as usize
    };
    while out.len() < len {
        let syllables = 1 + next() % 3;
        for _ in 0..syllables {
            out.push_str(SYLLABLES.get(next() % SYLLABLES.len()).unwrap_or(&"a"));
        }
        out.push(if next().is_multiple_of(12) { '.' } else { ' ' });
    }
    out.truncate(len);
    out
}

/// Ten plausible tools with small JSON schemas.
fn tools(dialect: Dialect) -> Vec<Value> {
    const NAMES: [(&str, &str); TOOL_COUNT] = [
        ("get_weather", "Current weather for a city"),
        ("search_docs", "Full-text search over the documentation"),
        ("create_ticket", "Open a support ticket"),
        ("lookup_order", "Find an order by its number"),
        ("send_email", "Send an email to a customer"),
        ("convert_currency", "Convert an amount between currencies"),
        ("schedule_meeting", "Book a meeting slot"),
        ("translate_text", "Translate text into another language"),
        ("run_query", "Run a read-only SQL query"),
        ("summarize_url", "Fetch a web page and summarise it"),
    ];
    NAMES
        .iter()
        .map(|(name, description)| {
            let schema = json!({
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "What to act on"},
                    "limit": {"type": "integer", "description": "Most results to return"},
                    "verbose": {"type": "boolean"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["query"],
            });
            match dialect {
                Dialect::OpenAi => json!({
                    "type": "function",
                    "function": {"name": name, "description": description, "parameters": schema},
                }),
                Dialect::Anthropic => json!({
                    "name": name,
                    "description": description,
                    "input_schema": schema,
                }),
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn presets_have_their_sizes_and_parse() {
        for dialect in [Dialect::OpenAi, Dialect::Anthropic] {
            for (preset, lo, hi) in [
                (Preset::Tiny, 50, 500),
                (Preset::K10, BODY_10K - 64, BODY_10K + 64),
                (Preset::K100, BODY_100K - 64, BODY_100K + 64),
                (Preset::Tools, 1000, 8000),
                (Preset::Pii, 100, 500),
            ] {
                let body = build(dialect, preset, "m", true);
                assert!(
                    (lo..=hi).contains(&body.len()),
                    "{preset:?} {dialect:?}: {}",
                    body.len()
                );
                let v: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(v["model"], "m");
                assert_eq!(v["stream"], true);
                if preset == Preset::Tools {
                    assert_eq!(v["tools"].as_array().unwrap().len(), TOOL_COUNT);
                }
                assert_eq!(Preset::parse(preset.name()), Ok(preset));
            }
        }
        let a: Value =
            serde_json::from_slice(&build(Dialect::Anthropic, Preset::Tools, "m", false)).unwrap();
        assert!(a["tools"][0]["input_schema"].is_object());
        assert_eq!(a["max_tokens"], ANTHROPIC_MAX_TOKENS);
        assert!(Preset::parse("huge").is_err());
        // The personal data is in the last user turn, within the words the mock echoes.
        for (dialect, last) in [
            (Dialect::OpenAi, "/messages/1/content"),
            (Dialect::Anthropic, "/messages/0/content"),
        ] {
            let v: Value = serde_json::from_slice(&build(dialect, Preset::Pii, "m", true)).unwrap();
            let turn = v.pointer(last).and_then(Value::as_str).unwrap();
            assert_eq!(turn, PII_TURN);
            assert!(turn.split_whitespace().count() <= 12, "{turn}");
            for entity in [
                "jane.roe@corp.test",
                "(415) 555-2671",
                "123-45-6789",
                "10.20.30.40",
            ] {
                assert!(turn.contains(entity), "{entity}");
            }
        }
    }

    #[test]
    fn deterministic() {
        assert_eq!(
            build(Dialect::OpenAi, Preset::K10, "m", false),
            build(Dialect::OpenAi, Preset::K10, "m", false)
        );
    }
}
