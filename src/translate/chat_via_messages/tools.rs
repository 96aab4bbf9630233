//! A Chat request's tools as Messages tools: each function converted, web search as
//! Anthropic's server tool, and tools converted once already (kept) taken as written.

use serde_json::value::RawValue;

use crate::translate::ledger::Ledger;
use crate::translate::{RequestMeta, TranslateError};
use crate::wire::anthropic::{Tool as ATool, UserLocation};
use crate::wire::openai::{Tool as CTool, WebSearchOptions};
use crate::wire::Str;

/// `input_schema` for tools defined without `parameters`, and for tools the history uses
/// but the request does not declare.
pub(super) const EMPTY_OBJECT_SCHEMA: &str = r#"{"type":"object","properties":{}}"#;

/// A request's tools in Messages form written already (a translation kept them from an
/// earlier request with the same tools): each tool's JSON, what [`anthropic_tools`] made of
/// them, and the ledger it noted on the way.
#[derive(Debug)]
pub(crate) struct WrittenTools<'k> {
    pub(crate) tools: &'k [Box<RawValue>],
    pub(crate) ledger: &'k Ledger,
}

/// Chat tools (and web search options) as Anthropic tools, the web search tool last.
pub(crate) fn anthropic_tools<'b>(
    tools: Option<&'b [CTool<'_>]>,
    web_search: Option<&'b WebSearchOptions<'_>>,
    meta: &mut RequestMeta,
) -> Result<Vec<ATool<'b>>, TranslateError> {
    let mut out = convert_tools(tools.unwrap_or_default(), meta)?;
    if let Some(ws) = web_search {
        out.push(web_search_tool(ws)?);
    }
    Ok(out)
}

pub(super) fn convert_tools<'b>(
    tools: &'b [CTool<'_>],
    meta: &mut RequestMeta,
) -> Result<Vec<ATool<'b>>, TranslateError> {
    let mut out = Vec::with_capacity(tools.len());
    for (j, t) in tools.iter().enumerate() {
        match t.kind.as_str() {
            "function" => {
                let f = t.function.as_ref().ok_or_else(|| {
                    TranslateError::invalid(
                        format!("tools[{j}].function"),
                        "function tools need a `function` object",
                    )
                })?;
                if f.strict.is_some() {
                    // Strict tool schemas exist only on some Anthropic models; sending the
                    // flag to others fails the request.
                    meta.drop_param("strict");
                }
                out.push(ATool {
                    name: f.name.reborrow(),
                    description: f.description.as_ref().map(Str::reborrow),
                    input_schema: f.parameters.or_else(|| raw(EMPTY_OBJECT_SCHEMA)),
                    cache_control: t.cache_control,
                    ..ATool::default()
                });
            }
            other => {
                return Err(TranslateError::unsupported_value(
                    format!("tools[{j}].type"),
                    format!("`{other}` tools are not supported for Anthropic models"),
                ))
            }
        }
    }
    Ok(out)
}

fn web_search_tool<'b>(ws: &'b WebSearchOptions<'_>) -> Result<ATool<'b>, TranslateError> {
    // LiteLLM's mapping of context size to a search budget.
    let max_uses = match ws.search_context_size.as_deref() {
        None => None,
        Some("low") => Some(1),
        Some("medium") => Some(5),
        Some("high") => Some(10),
        Some(other) => {
            return Err(TranslateError::unsupported_value(
                "web_search_options.search_context_size",
                format!("unsupported search_context_size `{other}`"),
            ))
        }
    };
    let user_location = ws
        .user_location
        .as_ref()
        .and_then(|l| l.approximate.as_ref())
        .map(|a| UserLocation {
            kind: Some(Str::from("approximate")),
            city: a.city.as_ref().map(Str::reborrow),
            region: a.region.as_ref().map(Str::reborrow),
            country: a.country.as_ref().map(Str::reborrow),
            timezone: a.timezone.as_ref().map(Str::reborrow),
        });
    Ok(ATool {
        kind: Some(Str::from("web_search_20250305")),
        name: Str::from("web_search"),
        max_uses,
        user_location,
        ..ATool::default()
    })
}

/// `json` as a raw value (a constant of this module's: it parses).
pub(super) fn raw(json: &'static str) -> Option<&'static RawValue> {
    serde_json::from_str(json).ok()
}
