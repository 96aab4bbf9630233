//! A Messages request's tools as Chat functions, kept per worker by the tools' bytes (see
//! `translate::kept`): Claude Code sends the same 31 KB of tools every turn, and reading,
//! converting and writing them was most of what a 50 KB turn's translation cost.
//!
//! Kept per tool: its function's JSON, its name, whether it is deferred and the name it goes
//! upstream by when shortened. What depends on the request (which deferred tools the
//! conversation loaded) is decided per request, as the plain way decides it.

use std::collections::HashSet;
use std::rc::Rc;

use serde_json::value::{to_raw_value, RawValue};

use crate::translate::kept::{kept_in, KeptSet, TOOLS_KEPT_MAX_BYTES};
use crate::translate::ledger::Ledger;
use crate::translate::RequestMeta;
use crate::wire::anthropic::Tool as ATool;
use crate::wire::Str;

use super::tools::{function, note_dropped, NameMap};

/// A tools list converted once.
#[derive(Debug)]
pub(super) struct Kept {
    tools: Vec<KeptTool>,
    /// What converting the list notes (`cache_control`, `defer_loading` dropped).
    ledger: Ledger,
}

#[derive(Debug)]
struct KeptTool {
    /// The Chat function, as the translation writes it.
    json: Box<RawValue>,
    /// The client's name.
    name: Box<str>,
    /// Offered only once a `tool_reference` in the conversation loaded it.
    deferred: bool,
    /// The name it goes upstream by, when it is not `name` (OpenAI's names are shorter).
    shortened: Option<Box<str>>,
}

impl Kept {
    /// The functions offered to this request (a deferred tool only once `loaded`), with the
    /// notes and the shortened names the plain way makes.
    pub(super) fn functions<'k>(
        &'k self,
        names: &NameMap,
        loaded: &HashSet<Str<'_>>,
        meta: &mut RequestMeta,
    ) -> Vec<&'k RawValue> {
        meta.ledger.extend(&self.ledger);
        let mut out = Vec::with_capacity(self.tools.len());
        for t in &self.tools {
            if t.deferred && !loaded.contains(&Str::from(&*t.name)) {
                continue;
            }
            if let Some(short) = &t.shortened {
                names.add(short, &t.name);
            }
            out.push(&*t.json);
        }
        out
    }

    /// Where the tool the client calls `name` is in the list.
    pub(super) fn position(&self, name: &str) -> Option<usize> {
        self.tools.iter().position(|t| &*t.name == name)
    }

    /// Every byte this holds.
    fn weight(&self) -> usize {
        use std::mem::size_of;
        let tools: usize = self
            .tools
            .iter()
            .map(|t| {
                size_of::<KeptTool>()
                    + t.json.get().len()
                    + t.name.len()
                    + t.shortened.as_ref().map_or(0, |s| s.len())
            })
            .sum();
        size_of::<Kept>() + tools + self.ledger.weight()
    }
}

thread_local! {
    static KEPT: KeptSet<Kept> = const { KeptSet::new(TOOLS_KEPT_MAX_BYTES) };
}

/// `json` (a request's `tools`) as Chat functions, made once per worker; None when the plain
/// way is to be taken: a list it would refuse, or one with a server tool (refused only when
/// offered, which depends on the request).
pub(super) fn kept(json: &RawValue) -> Option<Rc<Kept>> {
    kept_in(&KEPT, json.get().as_bytes(), Kept::weight, || make(json))
}

/// What the plain way does to each tool, written down.
fn make(json: &RawValue) -> Option<Kept> {
    let tools: Vec<ATool<'_>> = crate::json::de::from_str(json.get()).ok()?;
    let mut meta = RequestMeta::default();
    let mut kept = Vec::with_capacity(tools.len());
    for t in &tools {
        note_dropped(t, &mut meta);
        let names = NameMap::default();
        let f = function(t, &names)?;
        kept.push(KeptTool {
            json: to_raw_value(&f).ok()?,
            name: Box::from(t.name.as_str()),
            deferred: t.defer_loading == Some(true),
            shortened: names.shortened().map(String::into_boxed_str),
        });
    }
    Some(Kept {
        tools: kept,
        ledger: meta.ledger,
    })
}
