//! A Chat request's tools as Messages tools, kept per worker by the tools' bytes (see
//! `translate::kept`): an agent sends the same tools every turn, and reading, converting and
//! writing them again was about a fifth of what a 50 KB turn's translation cost.
//!
//! What is kept is a function of the tools' bytes alone: each tool's JSON as the translation
//! writes it and the notes converting them made. A list the translation refuses is kept as
//! refused, and the request goes the plain way, whose error is the one given.

use std::rc::Rc;

use serde_json::value::{to_raw_value, RawValue};

use crate::translate::kept::{kept_in, KeptSet, TOOLS_KEPT_MAX_BYTES};
use crate::translate::ledger::Ledger;
use crate::translate::RequestMeta;
use crate::wire::openai::Tool;

use super::tools::{convert_tools, WrittenTools};

/// A tools list converted once.
#[derive(Debug)]
pub(super) struct Kept {
    /// Each tool as Messages takes it, in order.
    tools: Vec<Box<RawValue>>,
    /// What converting the list noted (`strict` dropped).
    ledger: Ledger,
}

impl Kept {
    /// The tools for the translation, written already.
    pub(super) fn written(&self) -> WrittenTools<'_> {
        WrittenTools {
            tools: &self.tools,
            ledger: &self.ledger,
        }
    }

    /// Every byte this holds.
    fn weight(&self) -> usize {
        let per_tool = std::mem::size_of::<Box<RawValue>>();
        self.tools.iter().fold(
            std::mem::size_of::<Kept>() + self.ledger.weight(),
            |n, t| n + per_tool + t.get().len(),
        )
    }
}

/// `json` (a request's `tools`) as Messages tools, made once per worker; None when the plain
/// way is to be taken (a list it would refuse).
pub(super) fn kept(json: &RawValue) -> Option<Rc<Kept>> {
    thread_local! {
        static KEPT: KeptSet<Kept> = const { KeptSet::new(TOOLS_KEPT_MAX_BYTES) };
    }
    kept_in(&KEPT, json.get().as_bytes(), Kept::weight, || make(json))
}

/// What the plain way does to the tools, written down.
fn make(json: &RawValue) -> Option<Kept> {
    let tools: Vec<Tool<'_>> = crate::json::de::from_str(json.get()).ok()?;
    let mut meta = RequestMeta::default();
    let tools = convert_tools(&tools, &mut meta)
        .ok()?
        .iter()
        .map(to_raw_value)
        .collect::<Result<_, _>>()
        .ok()?;
    Some(Kept {
        tools,
        ledger: meta.ledger,
    })
}
