//! The translation ledger: everything a request's translation, or its provider's kind, dropped,
//! changed or approximated, one [`Entry`] each: a stable [`Code`] and the field it concerns.
//!
//! One record feeds the client's dropped-params header, the `ringway_translation_ledger_total`
//! counter, the custody record and the request's span; `strict_translation` refuses a request
//! whose ledger holds a lossy entry. The codes are part of the gateway's interface (metrics
//! labels, stored records): a code is never renamed, only added. An empty ledger is an empty
//! `Vec`, which allocates nothing: most requests (same dialect) never write one.

use std::borrow::Cow;

/// What happened to a field. Stable snake_case names (see [`Code::as_str`]); documented in
/// docs/providers-and-translation.md ("The translation ledger").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Code {
    /// A client parameter the provider's dialect has no equivalent for was left out.
    ParamDropped,
    /// A client parameter was sent with another value than the client's (`top_p` raised for
    /// thinking, `max_tokens` raised above the thinking budget).
    ParamChanged,
    /// A body member the provider's kind refuses (a cloud kind's `service_tier`) was left out.
    MemberRefused,
    /// An `anthropic-beta` value (or the whole header) the provider does not take was left out.
    BetaRemoved,
    /// A reasoning signature (a reasoning item, a thinking block's or a thought's signature)
    /// could not be carried to this provider; the turn goes without it.
    SignatureDropped,
    /// A JSON schema was cut down to the provider's subset (keywords outside it left out).
    SchemaCleaned,
    /// A thinking request was converted to the provider's form (effort ⇄ budget, levels).
    ThinkingConverted,
    /// A tool name too long or with characters the provider refuses was shortened, and is
    /// mapped back in the answer.
    ToolNameShortened,
    /// `response_format: json_object` went as a forced tool whose input becomes the content.
    JsonToolForced,
    /// A token count was answered by the gateway's estimate (no provider endpoint for it).
    TokensEstimated,
    /// The answer's usage is (in part) the gateway's estimate: the provider said none.
    UsageEstimated,
}

impl Code {
    /// Every code, in the order the docs list them.
    pub const ALL: [Code; 11] = [
        Code::ParamDropped,
        Code::ParamChanged,
        Code::MemberRefused,
        Code::BetaRemoved,
        Code::SignatureDropped,
        Code::SchemaCleaned,
        Code::ThinkingConverted,
        Code::ToolNameShortened,
        Code::JsonToolForced,
        Code::TokensEstimated,
        Code::UsageEstimated,
    ];

    /// The stable name: metrics label, custody record, span attribute, strict refusal.
    pub const fn as_str(self) -> &'static str {
        match self {
            Code::ParamDropped => "param_dropped",
            Code::ParamChanged => "param_changed",
            Code::MemberRefused => "member_refused",
            Code::BetaRemoved => "beta_removed",
            Code::SignatureDropped => "signature_dropped",
            Code::SchemaCleaned => "schema_cleaned",
            Code::ThinkingConverted => "thinking_converted",
            Code::ToolNameShortened => "tool_name_shortened",
            Code::JsonToolForced => "json_tool_forced",
            Code::TokensEstimated => "tokens_estimated",
            Code::UsageEstimated => "usage_estimated",
        }
    }

    /// Does the provider get less (or other) than the client asked for? Lossy entries are
    /// what `strict_translation` refuses and what the dropped-params header lists. The
    /// others carry the client's intent in another form (a mapped name, a converted thinking
    /// request) or say the gateway counted something itself.
    pub const fn lossy(self) -> bool {
        match self {
            Code::ParamDropped
            | Code::ParamChanged
            | Code::MemberRefused
            | Code::BetaRemoved
            | Code::SignatureDropped
            | Code::SchemaCleaned => true,
            Code::ThinkingConverted
            | Code::ToolNameShortened
            | Code::JsonToolForced
            | Code::TokensEstimated
            | Code::UsageEstimated => false,
        }
    }

    /// The code named `s`, if any.
    pub fn parse(s: &str) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// One thing a translation did to one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// What happened.
    pub code: Code,
    /// The field it happened to: a JSON path in the client's request (`top_k`,
    /// `tools[3].name`), or a header (`anthropic-beta=VALUE` for one beta value).
    pub field: Cow<'static, str>,
}

/// Longest list a ledger keeps: a request with thousands of tools each shortened keeps the
/// first ones (the header and the record stay bounded); the metrics count what is kept.
pub const MAX_ENTRIES: usize = 64;

/// The entries of one request, each (code, field) once, in the order they happened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    entries: Vec<Entry>,
}

impl Ledger {
    /// Note that `code` happened to `field` (once: a repeat is ignored, and so is anything
    /// past [`MAX_ENTRIES`]).
    pub fn note(&mut self, code: Code, field: impl Into<Cow<'static, str>>) {
        let field = field.into();
        if self.entries.len() >= MAX_ENTRIES
            || self
                .entries
                .iter()
                .any(|e| e.code == code && e.field == field)
        {
            return;
        }
        self.entries.push(Entry { code, field });
    }

    /// Everything `other` holds, after what this one does.
    pub fn extend(&mut self, other: &Ledger) {
        for e in &other.entries {
            self.note(e.code, e.field.clone());
        }
    }

    /// Rename the fields `rename` knows (a leg's names to the client's), keeping the rest.
    pub fn rename_fields(&mut self, rename: impl Fn(&str) -> Option<&'static str>) {
        for e in &mut self.entries {
            if let Some(ours) = rename(&e.field) {
                e.field = Cow::Borrowed(ours);
            }
        }
    }

    /// The bytes this holds (its entries and their owned fields).
    pub fn weight(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry>()
            + self
                .entries
                .iter()
                .map(|e| match &e.field {
                    Cow::Owned(f) => f.capacity(),
                    Cow::Borrowed(_) => 0,
                })
                .sum::<usize>()
    }

    /// Nothing was dropped, changed or approximated.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries as (code, field, lossy): what a span or a log line says.
    pub fn entries(&self) -> impl Iterator<Item = (&'static str, &str, bool)> + '_ {
        self.entries
            .iter()
            .map(|e| (e.code.as_str(), e.field.as_ref(), e.code.lossy()))
    }

    /// The entries themselves.
    pub fn iter(&self) -> std::slice::Iter<'_, Entry> {
        self.entries.iter()
    }

    /// The first lossy entry: what `strict_translation` refuses.
    pub fn first_lossy(&self) -> Option<&Entry> {
        self.entries.iter().find(|e| e.code.lossy())
    }

    /// Is `field` noted under `code`?
    pub fn has(&self, code: Code, field: &str) -> bool {
        self.entries
            .iter()
            .any(|e| e.code == code && e.field == field)
    }

    /// The fields of [`Code::ParamDropped`] entries, in order.
    pub fn dropped(&self) -> Vec<&str> {
        self.fields(Code::ParamDropped).collect()
    }

    /// The fields noted under `code`, in order.
    pub fn fields(&self, code: Code) -> impl Iterator<Item = &str> + '_ {
        self.entries
            .iter()
            .filter(move |e| e.code == code)
            .map(|e| e.field.as_ref())
    }

    /// The dropped-params header's value: the field of every lossy entry, comma-separated
    /// (empty: none). Fields are checked where they are written, so one that could not go in
    /// a header (never ours; a client's beta value could) is left out.
    pub fn header_value(&self) -> String {
        let mut out = String::new();
        for e in self.entries.iter().filter(|e| e.code.lossy()) {
            if e.field.contains(',') || !crate::http1::is_valid_field_value(e.field.as_bytes()) {
                continue;
            }
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(&e.field);
        }
        out
    }

    /// The custody column's text: `code:field` per entry, comma-separated (empty: none).
    pub fn compact(&self) -> String {
        let mut out = String::new();
        for e in &self.entries {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(e.code.as_str());
            out.push(':');
            out.push_str(&e.field);
        }
        out
    }
}

/// A ledger in a custody record: `[{"code","field","lossy"}]`.
impl serde::Serialize for Ledger {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        struct One<'a>(&'a Entry);
        impl serde::Serialize for One<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(3))?;
                m.serialize_entry("code", self.0.code.as_str())?;
                m.serialize_entry("field", self.0.field.as_ref())?;
                m.serialize_entry("lossy", &self.0.code.lossy())?;
                m.end()
            }
        }
        let mut seq = s.serialize_seq(Some(self.entries.len()))?;
        for e in &self.entries {
            seq.serialize_element(&One(e))?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_ledger_holds_no_allocation_and_says_nothing() {
        let l = Ledger::default();
        assert!(l.is_empty());
        assert_eq!(l.entries.capacity(), 0);
        assert_eq!(l.header_value(), "");
        assert_eq!(l.compact(), "");
        assert!(l.first_lossy().is_none());
        assert_eq!(serde_json::to_string(&l).unwrap(), "[]");
    }

    #[test]
    fn each_code_and_field_is_noted_once_in_order() {
        let mut l = Ledger::default();
        l.note(Code::ParamDropped, "top_k");
        l.note(Code::ToolNameShortened, "tools[0].name");
        l.note(Code::ParamDropped, "top_k");
        l.note(Code::ParamDropped, String::from("seed"));
        assert_eq!(l.dropped(), vec!["top_k", "seed"]);
        let all: Vec<_> = l.entries().collect();
        assert_eq!(
            all,
            vec![
                ("param_dropped", "top_k", true),
                ("tool_name_shortened", "tools[0].name", false),
                ("param_dropped", "seed", true),
            ]
        );
        assert_eq!(
            l.compact(),
            "param_dropped:top_k,tool_name_shortened:tools[0].name,param_dropped:seed"
        );
    }

    #[test]
    fn the_header_lists_lossy_fields_only_in_the_historical_format() {
        let mut l = Ledger::default();
        l.note(Code::ThinkingConverted, "reasoning_effort");
        l.note(Code::ParamDropped, "cache_control");
        l.note(Code::BetaRemoved, "anthropic-beta=claude-code-20250219");
        l.note(Code::MemberRefused, "service_tier");
        // A client's value that cannot go in a header (or would split the list) is left out.
        l.note(Code::BetaRemoved, "anthropic-beta=a,b");
        l.note(Code::BetaRemoved, "anthropic-beta=\u{1}");
        assert_eq!(
            l.header_value(),
            "cache_control,anthropic-beta=claude-code-20250219,service_tier"
        );
        assert_eq!(
            l.first_lossy().map(|e| e.field.as_ref()),
            Some("cache_control")
        );
    }

    #[test]
    fn a_ledger_is_bounded() {
        let mut l = Ledger::default();
        for i in 0..MAX_ENTRIES + 10 {
            l.note(Code::ToolNameShortened, format!("tools[{i}].name"));
        }
        assert_eq!(l.iter().count(), MAX_ENTRIES);
    }

    #[test]
    fn codes_are_stable_distinct_and_parse_back() {
        let names: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
        for c in Code::ALL {
            assert_eq!(Code::parse(c.as_str()), Some(c));
            assert!(c
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
        assert_eq!(Code::parse("nope"), None);
        let lossy: Vec<&str> = Code::ALL
            .iter()
            .filter(|c| c.lossy())
            .map(|c| c.as_str())
            .collect();
        assert_eq!(
            lossy,
            vec![
                "param_dropped",
                "param_changed",
                "member_refused",
                "beta_removed",
                "signature_dropped",
                "schema_cleaned"
            ]
        );
    }

    #[test]
    fn a_record_holds_code_field_and_lossy() {
        let mut l = Ledger::default();
        l.note(Code::SchemaCleaned, "tools[1].function.parameters");
        assert_eq!(
            serde_json::to_value(&l).unwrap(),
            serde_json::json!([{"code":"schema_cleaned","field":"tools[1].function.parameters","lossy":true}])
        );
    }
}
