//! A Responses request's tools as the provider takes them, kept per worker by the tools'
//! bytes: an agent sends the same tools every turn (Codex's ten are 9 KB), and reading,
//! converting and writing them again was about half of what a 50 KB turn's translation
//! costs after admission.
//!
//! What is kept is a function of the tools' bytes and the provider's form alone: each tool's
//! JSON as the translation writes it, the ledger notes and the renamed tools it made (nothing
//! of the request, the key or the tenant). A tools list the translation refuses is kept as
//! refused: the request goes the plain way, and its error is the plain way's.

use std::rc::Rc;

use serde_json::value::{to_raw_value, RawValue};

use crate::format::Format;
use crate::translate::chat_via_messages::tools::{anthropic_tools, WrittenTools};
use crate::translate::kept::{kept_in, KeptSet, TOOLS_KEPT_MAX_BYTES};
use crate::translate::ledger::Ledger;
use crate::translate::RequestMeta;
use crate::wire::responses::Tool;

use super::tools::{convert_tools, distinct_upstream_names};
use super::{ResponsesMeta, ToolName};

/// The form the provider takes the tools in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Form {
    /// Chat functions for a `provider` that takes the Chat body (only an openai-kind one's
    /// are kept).
    Chat(Format),
    /// Messages tools, for the items handed straight on to the Messages translator.
    Messages,
}

/// A tools list translated once.
#[derive(Debug)]
pub(super) struct Kept {
    /// Each tool as the provider takes it, in order (for Messages, web search last).
    pub(super) tools: Vec<Box<RawValue>>,
    /// What the Responses leg noted (hosted tools dropped).
    pub(super) ledger: Ledger,
    /// What the Messages leg noted (`strict` dropped); empty for Chat.
    pub(super) leg_ledger: Ledger,
    /// Tools whose upstream name differs from the client's.
    pub(super) names: Vec<ToolName>,
}

impl Kept {
    /// The tools for the Messages translator.
    pub(super) fn written(&self) -> WrittenTools<'_> {
        WrittenTools {
            tools: &self.tools,
            ledger: &self.leg_ledger,
        }
    }

    /// Every byte this holds: a list of a thousand tiny namespaced functions holds more in
    /// its structs than in its JSON.
    fn weight(&self) -> usize {
        use std::mem::size_of;
        let names: usize = self
            .names
            .iter()
            .map(|n| {
                size_of::<ToolName>()
                    + n.upstream.capacity()
                    + n.name.capacity()
                    + n.namespace.as_ref().map_or(0, String::capacity)
            })
            .sum();
        let tools: usize = self
            .tools
            .iter()
            .map(|t| size_of::<Box<RawValue>>() + t.get().len())
            .sum();
        size_of::<Kept>() + tools + names + self.ledger.weight() + self.leg_ledger.weight()
    }
}

thread_local! {
    static FOR_OPENAI: KeptSet<Kept> = const { KeptSet::new(TOOLS_KEPT_MAX_BYTES) };
    static FOR_MESSAGES: KeptSet<Kept> = const { KeptSet::new(TOOLS_KEPT_MAX_BYTES) };
}

/// `raw` (a request's `tools`) in `form`, made once per worker; None when the translation
/// would refuse them, or when the form is one not kept (Chat for a provider other than
/// OpenAI's kind: rare, and made every time).
pub(super) fn kept(raw: &RawValue, form: Form) -> Option<Rc<Kept>> {
    let set = match form {
        Form::Chat(Format::OpenAi) => &FOR_OPENAI,
        Form::Messages => &FOR_MESSAGES,
        Form::Chat(_) => return None,
    };
    kept_in(set, raw.get().as_bytes(), Kept::weight, || make(raw, form))
}

/// What the plain way does to the tools, written down.
fn make(raw: &RawValue, form: Form) -> Option<Kept> {
    let tools: Vec<Tool<'_>> = crate::json::de::from_str(raw.get()).ok()?;
    let provider = match form {
        Form::Chat(provider) => provider,
        Form::Messages => Format::Anthropic,
    };
    let mut meta = RequestMeta::default();
    let mut rm = ResponsesMeta::default();
    let (chat, web_search) = convert_tools(&tools, provider, &mut meta, &mut rm).ok()?;
    distinct_upstream_names(&chat).ok()?;
    let mut leg = RequestMeta::default();
    let written = match form {
        Form::Chat(_) => {
            if web_search.is_some() {
                return None;
            }
            chat.iter()
                .map(to_raw_value)
                .collect::<Result<_, _>>()
                .ok()?
        }
        Form::Messages => {
            let chat = (!chat.is_empty()).then_some(&chat[..]);
            anthropic_tools(chat, web_search.as_ref(), &mut leg)
                .ok()?
                .iter()
                .map(to_raw_value)
                .collect::<Result<_, _>>()
                .ok()?
        }
    };
    let mut names = rm.tools;
    names.shrink_to_fit();
    Some(Kept {
        tools: written,
        ledger: meta.ledger,
        leg_ledger: leg.ledger,
        names,
    })
}
