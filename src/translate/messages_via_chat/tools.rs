//! A Messages request's tools as Chat functions, one at a time: what the plain translation
//! and the tools kept per worker (`kept`) both make of each.

use std::borrow::Cow;

use crate::translate::util::openai_tool_name;
use crate::translate::RequestMeta;
use crate::wire::anthropic::Tool as ATool;
use crate::wire::openai::{FunctionDef, Tool};
use crate::wire::Str;

/// `parameters` for tools defined without `input_schema`.
const EMPTY_OBJECT_SCHEMA: &str = r#"{"type":"object","properties":{}}"#;

/// Shortened tool names (OpenAI allows 64 characters, Anthropic 128), recorded so responses
/// can restore them. Interior mutability keeps the borrowed output free of extra lifetimes.
#[derive(Default, Clone)]
pub(super) struct NameMap {
    pairs: std::cell::RefCell<Vec<(String, String)>>,
}

impl NameMap {
    pub(super) fn map<'b>(&self, name: &'b Str<'_>) -> Str<'b> {
        match openai_tool_name(name) {
            Cow::Borrowed(b) => Str::from(b),
            Cow::Owned(short) => {
                self.add(&short, name);
                Str::from(short)
            }
        }
    }

    /// Records that `long` goes upstream as `short` (once).
    pub(super) fn add(&self, short: &str, long: &str) {
        let mut pairs = self.pairs.borrow_mut();
        if !pairs.iter().any(|(s, _)| s == short) {
            pairs.push((short.to_owned(), long.to_owned()));
        }
    }

    /// The name `map` gave a shortened name, if it gave one.
    pub(super) fn shortened(&self) -> Option<String> {
        self.pairs.borrow().first().map(|(short, _)| short.clone())
    }

    /// The bytes its names hold.
    pub(super) fn weight(&self) -> usize {
        self.pairs
            .borrow()
            .iter()
            .map(|(s, l)| s.len() + l.len())
            .sum()
    }

    pub(super) fn into_pairs(self) -> Vec<(String, String)> {
        self.pairs.into_inner()
    }
}

/// What the translation drops of tool `t` wherever it is offered.
pub(super) fn note_dropped(t: &ATool<'_>, meta: &mut RequestMeta) {
    if t.cache_control.is_some() {
        meta.drop_param("cache_control");
    }
    if t.defer_loading == Some(true) {
        meta.drop_param("defer_loading");
    }
}

/// Tool `t` as a Chat function; None for a server tool (none reaches an OpenAI model).
pub(super) fn function<'b>(t: &'b ATool<'_>, names: &NameMap) -> Option<Tool<'b>> {
    match t.kind.as_deref() {
        None | Some("custom") => Some(Tool {
            kind: Str::from("function"),
            function: Some(FunctionDef {
                name: names.map(&t.name),
                description: t.description.as_ref().map(Str::reborrow),
                parameters: t
                    .input_schema
                    .or_else(|| serde_json::from_str(EMPTY_OBJECT_SCHEMA).ok()),
                strict: t.strict,
            }),
            ..Tool::default()
        }),
        Some(_) => None,
    }
}
