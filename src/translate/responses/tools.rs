//! A Responses request's tools in Chat form: function, namespace and custom tools as
//! functions, web search as Chat's options, other hosted tools dropped and listed.

use std::borrow::Cow;

use crate::format::Format;
use crate::wire::anthropic::UserLocation;
use crate::wire::openai::{FunctionDef, Tool as CTool, WebSearchLocation, WebSearchOptions};
use crate::wire::responses::Tool;
use crate::wire::Str;

use super::super::util::{compact_json, openai_tool_name, sanitize_tool_id};
use super::super::{RequestMeta, TranslateError};
use super::{ResponsesMeta, ToolName};

/// Arguments schema of the function that stands in for a custom (free-text) tool.
const CUSTOM_TOOL_SCHEMA: &str = r#"{"type":"object","properties":{"input":{"type":"string","description":"The tool's whole input, as free text."}},"required":["input"],"additionalProperties":false}"#;

/// Longest custom tool format quoted into its stand-in's description.
const MAX_FORMAT_NOTE_BYTES: usize = 16 * 1024;

/// The upstream name of a client tool in a namespace: `namespace__name`, made legal and short
/// enough for every provider (deterministic: definitions and history agree).
pub(super) fn flat_name(namespace: &str, name: &str) -> String {
    // The characters tool ids may hold are those tool names may hold too.
    let joined = format!("{namespace}__{name}");
    openai_tool_name(&sanitize_tool_id(&joined)).into_owned()
}

/// Function, namespace and custom tools become functions; a web search tool becomes the
/// Chat `web_search_options` (which the Messages translator turns into Anthropic's web
/// search tool); other hosted tools have no equivalent and are dropped and listed.
pub(super) fn convert_tools<'b>(
    tools: &'b [Tool<'b>],
    provider: Format,
    meta: &mut RequestMeta,
    rm: &mut ResponsesMeta,
) -> Result<(Vec<CTool<'b>>, Option<WebSearchOptions<'b>>), TranslateError> {
    let mut out = Vec::new();
    let mut web_search = None;
    for (i, t) in tools.iter().enumerate() {
        match t.kind.as_str() {
            "function" => out.push(function_tool(t, None, i, rm)?),
            "namespace" => {
                let ns = t.name.as_deref().ok_or_else(|| {
                    TranslateError::invalid(format!("tools[{i}].name"), "a namespace needs a name")
                })?;
                for inner in t.tools.iter().flatten() {
                    if inner.kind.as_str() != "function" {
                        return Err(TranslateError::unsupported_value(
                            format!("tools[{i}].tools"),
                            format!(
                                "a namespace may hold function tools only, not `{}`",
                                inner.kind
                            ),
                        ));
                    }
                    out.push(function_tool(inner, Some(ns), i, rm)?);
                }
            }
            "custom" => {
                let name = t.name.as_deref().ok_or_else(|| {
                    TranslateError::invalid(
                        format!("tools[{i}].name"),
                        "a custom tool needs a name",
                    )
                })?;
                let upstream = openai_tool_name(name).into_owned();
                let mut description = t.description.as_deref().unwrap_or("").to_owned();
                if let Some(f) = t.format.filter(|f| f.get().len() <= MAX_FORMAT_NOTE_BYTES) {
                    description.push_str("\n\nThe `input` string must follow this format: ");
                    description.push_str(&compact_json(f.get()));
                }
                rm.tools.push(ToolName {
                    upstream: upstream.clone(),
                    namespace: None,
                    name: name.to_owned(),
                    custom: true,
                });
                out.push(CTool {
                    kind: Str::from("function"),
                    function: Some(FunctionDef {
                        name: Str::from(upstream),
                        description: Some(Str::from(description)),
                        parameters: serde_json::from_str(CUSTOM_TOOL_SCHEMA).ok(),
                        strict: None,
                    }),
                    ..CTool::default()
                });
            }
            "web_search"
            | "web_search_preview"
            | "web_search_2025_08_26"
            | "web_search_preview_2025_03_11"
                if provider == Format::Anthropic =>
            {
                web_search = Some(WebSearchOptions {
                    search_context_size: t.search_context_size.as_ref().map(Str::reborrow),
                    user_location: t.user_location.as_ref().map(|l| WebSearchLocation {
                        kind: Some(Str::from("approximate")),
                        approximate: Some(UserLocation {
                            kind: None,
                            city: l.city.as_ref().map(Str::reborrow),
                            region: l.region.as_ref().map(Str::reborrow),
                            country: l.country.as_ref().map(Str::reborrow),
                            timezone: l.timezone.as_ref().map(Str::reborrow),
                        }),
                    }),
                });
            }
            _ => meta.drop_param(hosted_tool_label(t.kind.as_str())),
        }
    }
    Ok((out, web_search))
}

/// Two client tools under one upstream name would send the provider's calls to the wrong one:
/// refused (a namespace `a.b` and a namespace `a_b` holding the same function, say).
pub(super) fn distinct_upstream_names(tools: &[CTool<'_>]) -> Result<(), TranslateError> {
    let mut names: Vec<&str> = tools
        .iter()
        .filter_map(|t| t.function.as_ref().map(|f| f.name.as_str()))
        .collect();
    names.sort_unstable();
    match names.windows(2).find(|w| w.first() == w.get(1)) {
        Some(w) => Err(TranslateError::invalid(
            "tools",
            format!(
                "two tools would reach the provider under the same name `{}` (namespaced names become namespace__name, long names are shortened); rename one",
                w.first().copied().unwrap_or("")
            ),
        )),
        None => Ok(()),
    }
}

/// The label a dropped hosted tool is listed under.
fn hosted_tool_label(kind: &str) -> &'static str {
    match kind {
        "web_search"
        | "web_search_preview"
        | "web_search_2025_08_26"
        | "web_search_preview_2025_03_11" => "tools.web_search",
        "file_search" => "tools.file_search",
        "code_interpreter" => "tools.code_interpreter",
        "image_generation" => "tools.image_generation",
        "computer_use_preview" | "computer_use" => "tools.computer_use",
        "mcp" => "tools.mcp",
        "local_shell" => "tools.local_shell",
        "tool_search" => "tools.tool_search",
        _ => "tools",
    }
}

fn function_tool<'b>(
    t: &'b Tool<'b>,
    namespace: Option<&str>,
    i: usize,
    rm: &mut ResponsesMeta,
) -> Result<CTool<'b>, TranslateError> {
    let name = t.name.as_deref().ok_or_else(|| {
        TranslateError::invalid(format!("tools[{i}].name"), "a function tool needs a name")
    })?;
    let upstream: Str<'b> = match namespace {
        Some(ns) => {
            let flat = flat_name(ns, name);
            rm.tools.push(ToolName {
                upstream: flat.clone(),
                namespace: Some(ns.to_owned()),
                name: name.to_owned(),
                custom: false,
            });
            Str::from(flat)
        }
        None => match openai_tool_name(name) {
            Cow::Borrowed(_) => t.name.as_ref().map_or(Str::from(""), Str::reborrow),
            // Too long for the provider: shortened (as history and tool_choice are), and
            // mapped back in the answer.
            Cow::Owned(short) => {
                rm.tools.push(ToolName {
                    upstream: short.clone(),
                    namespace: None,
                    name: name.to_owned(),
                    custom: false,
                });
                Str::from(short)
            }
        },
    };
    Ok(CTool {
        kind: Str::from("function"),
        function: Some(FunctionDef {
            name: upstream,
            description: t.description.as_ref().map(Str::reborrow),
            parameters: t.parameters,
            strict: t.strict,
        }),
        ..CTool::default()
    })
}
