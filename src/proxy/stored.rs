//! Stored responses on the request path (see `crate::responses_store`): a Responses request's
//! `previous_response_id` and `item_reference`s expanded at admission into the whole input
//! (one lookup, before routing: every provider kind then gets a plain request), what is kept
//! of its answer (handed to the store's writer before the answer's last byte goes out), and
//! `GET`/`DELETE /v1/responses/{id}` and `GET /v1/responses/{id}/input_items`.

use bytes::Bytes;
use serde_json::value::RawValue;

use super::ctx::Ctx;
use super::endpoint;
use super::state::{Exchange, Plan, Slot};
use crate::config::GatewayKey;
use crate::error::{Error, ErrorKind, Result};
use crate::http1::Method;
use crate::responses_store::{self as store, Owner, Page, Pending};

/// Whose rows a key's requests make and read: the digest of its secret (a rename keeps them;
/// another key never sees them).
pub(super) fn owner(key: Option<&GatewayKey>) -> Owner {
    match key {
        Some(k) => Owner::key_hash(&k.sha256),
        None => Owner::keyless(),
    }
}

/// Is storage on for `key` (its route may still turn it off: [`route_allows`])?
pub(super) fn storage_on(key: Option<&GatewayKey>) -> bool {
    store::enabled() && key.is_none_or(|k| k.store_responses)
}

/// Does the route of `model` let its answers be stored (`store_responses`)?
fn route_allows(ctx: &Ctx, model: &str) -> bool {
    match ctx.config.resolve(model) {
        Some(crate::routing::Resolved::Route(r) | crate::routing::Resolved::Within(r, _)) => {
            r.store_responses
        }
        _ => true,
    }
}

/// Wait for the store's answer without blocking the worker. Giving up drops `pending`, which
/// tells the reader not to run it.
pub(super) async fn wait<T>(pending: Option<Pending<T>>) -> Result<T> {
    let Some(pending) = pending else {
        return Err(Error::new(
            ErrorKind::Busy,
            "the responses store is busy; retry shortly",
        ));
    };
    let Some(answer) = super::lookup::answer(pending, store::LOOKUP_WAIT).await else {
        return Err(Error::new(
            ErrorKind::Busy,
            "the responses store did not answer in time; retry shortly",
        ));
    };
    answer.map_err(|e| {
        if crate::cluster::postgres::unreachable() {
            // Said once in the log by the thread that saw it go; a retry may find it back.
            return Error::new(
                ErrorKind::Busy,
                "the responses store (PostgreSQL) is unreachable; retry shortly",
            );
        }
        crate::log::error(format_args!("responses store lookup failed: {e}"));
        Error::new(
            ErrorKind::Internal,
            "the responses store failed; see the log",
        )
    })
}

/// The top-level members admission reads, as byte ranges of the body, and every member's
/// whole span (key and value) in order.
struct Fields<'b> {
    input: Option<&'b [u8]>,
    previous: Option<&'b [u8]>,
    store: Option<&'b [u8]>,
    members: Vec<(String, &'b [u8])>,
}

fn fields(body: &[u8]) -> Result<Fields<'_>> {
    let members = crate::json::members(body)
        .ok_or_else(|| Error::new(ErrorKind::InvalidBody, "the body must be a JSON object"))?;
    let mut f = Fields {
        input: None,
        previous: None,
        store: None,
        members: Vec::with_capacity(members.len()),
    };
    for m in members {
        let value = body.get(m.value.clone());
        match m.key.as_str() {
            "input" => f.input = value,
            "previous_response_id" => f.previous = value,
            "store" => f.store = value,
            _ => {}
        }
        if let Some(span) = body.get(m.span.clone()) {
            f.members.push((m.key, span));
        }
    }
    Ok(f)
}

fn is_null(v: Option<&[u8]>) -> bool {
    v.is_none_or(|v| v == b"null")
}

/// The few fields of an input item read here.
#[derive(serde::Deserialize)]
struct ItemHead<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<std::borrow::Cow<'a, str>>,
}

/// Expand a Responses request's `previous_response_id` and `item_reference`s from the store
/// (one lookup), and say on `slot` what is to be kept of its answer. Returns the body to go on
/// with when it changed. Storage off for the key or the route: the body goes on as it is (a provider with
/// native Responses may know the ids; a translator refuses them, and `store: true`, naming
/// `store: false`).
pub(super) async fn admit(
    ctx: &Ctx,
    key: Option<&GatewayKey>,
    model: &str,
    (body, strings): (&Bytes, &crate::json::StringSpans),
    slot: &Slot,
) -> Result<Option<Bytes>> {
    // The inspection's notes: the walk over the members crosses long strings in one step
    // (it runs on the worker, and `input` is most of an agent's body).
    let (f, may_refer) = crate::json::with_notes(body, strings, || {
        fields(body).map(|f| {
            // A reference's `type` is a short string token: the notes let the search pass
            // over the long texts (a whole pass over an agent's input otherwise).
            let may_refer = f.input.is_some_and(|v| {
                v != b"null" && crate::json::contains_outside_strings(v, b"item_reference")
            });
            (f, may_refer)
        })
    })?;
    let store_flag = match f.store {
        None | Some(b"null") => None,
        Some(b"true") => Some(true),
        Some(b"false") => Some(false),
        Some(_) => {
            return Err(
                Error::new(ErrorKind::InvalidBody, "`store` must be a boolean").with_param("store"),
            )
        }
    };
    if !storage_on(key) || !route_allows(ctx, model) {
        return Ok(None);
    }
    let previous = if is_null(f.previous) {
        None
    } else {
        let id: String = f
            .previous
            .and_then(|v| serde_json::from_slice(v).ok())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidBody,
                    "`previous_response_id` must be a string",
                )
                .with_param("previous_response_id")
            })?;
        Some(id)
    };
    let keep = store_flag != Some(false);
    let input_raw = f.input.filter(|v| *v != b"null");
    if previous.is_none() && !may_refer && !keep {
        return Ok(None);
    }
    let mut items = match input_raw {
        None => Vec::new(),
        Some(raw) => {
            // The items are read from the text at once (not checked as one value first: that
            // was a whole pass over an agent's input for nothing).
            let text = std::str::from_utf8(raw).ok();
            text.and_then(store::request_items).ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidBody,
                    "`input` must be a string or an array of items",
                )
                .with_param("input")
            })?
        }
    };
    // Where each reference is, and its id.
    let mut refs: Vec<(usize, String)> = Vec::new();
    if may_refer {
        for (i, item) in items.iter().enumerate() {
            let Ok(head) = serde_json::from_str::<ItemHead<'_>>(item.get()) else {
                continue;
            };
            if head.kind.as_deref() == Some("item_reference") {
                let id = head.id.filter(|id| !id.is_empty()).ok_or_else(|| {
                    Error::new(ErrorKind::InvalidBody, "an item_reference needs an `id`")
                        .with_param(format!("input[{i}].id"))
                })?;
                refs.push((i, id.into_owned()));
            }
        }
    }
    let owner = owner(key);
    let mut conversation = None;
    if previous.is_some() || !refs.is_empty() {
        let ids: Vec<&str> = refs.iter().map(|(_, id)| id.as_str()).collect();
        let resolved = wait(store::resolve(&owner, previous.as_deref(), &ids)).await?;
        if let Some(id) = &previous {
            let Some(c) = resolved.previous else {
                return Err(Error::new(
                    ErrorKind::BadRequest,
                    store::previous_not_found_message(id),
                )
                .with_param("previous_response_id")
                .with_code("previous_response_not_found"));
            };
            conversation = Some(c);
        }
        let found = resolved.items;
        for (n, (at, id)) in refs.iter().enumerate() {
            match found.items.get(n).cloned().flatten() {
                Some(item) => {
                    if let Some(slot) = items.get_mut(*at) {
                        *slot = item;
                    }
                }
                None if found.cut => {
                    return Err(Error::new(
                        ErrorKind::BadRequest,
                        "too many or too large item references in one request; send the items themselves",
                    )
                    .with_param(format!("input[{at}]")))
                }
                None => {
                    return Err(Error::new(
                        ErrorKind::BadRequest,
                        format!("Item with id '{id}' not found."),
                    )
                    .with_param(format!("input[{at}]")))
                }
            }
        }
    }
    let expand = previous.is_some() || !refs.is_empty();
    // `store: true` is the gateway's to honour: a translator would refuse it, and a native
    // provider defaults to it anyway.
    let out = if expand || store_flag == Some(true) {
        let mut out = Vec::with_capacity(
            body.len() + conversation.as_ref().map_or(0, |c| c.bytes as usize) + 64,
        );
        out.push(b'{');
        let kept = f.members.iter().filter(|(key, _)| match key.as_str() {
            "previous_response_id" | "store" => false,
            "input" => !expand,
            _ => true,
        });
        for (n, (_, member)) in kept.enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(member);
        }
        if expand {
            if out.len() > 1 {
                out.push(b',');
            }
            out.extend_from_slice(b"\"input\":[");
            let whole = conversation
                .as_ref()
                .map(|c| c.items.as_slice())
                .unwrap_or_default()
                .iter()
                .chain(items.iter());
            for (n, item) in whole.enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(item.get().as_bytes());
            }
            out.push(b']');
        }
        out.push(b'}');
        Some(Bytes::from(out))
    } else {
        None
    };
    if keep {
        *slot.borrow_mut() = Some(Box::new(Plan {
            owner,
            previous,
            input: items,
        }));
    }
    Ok(out)
}

/// For a request whose answer will be kept: the response it continues, if any (`Some(None)`:
/// kept, continuing nothing). Its response object says both (`store: true`,
/// `previous_response_id`), as the API's do; admission took them out of the body the
/// translator reads.
pub(super) fn kept(slot: &Slot) -> Option<Option<String>> {
    slot.borrow().as_ref().map(|plan| plan.previous.clone())
}

/// Keep `response` (a complete Responses object, as the client gets it) under `plan`, its
/// reasoning items given the sealed thinking in `seals` (`(item id, sealed)`: what the
/// translator sealed and the client did not ask for), as the API keeps reasoning server-side
/// for a stored response. Called before the answer's last byte goes out, so a client
/// continuing it at once finds it.
pub(super) fn keep(plan: Plan, response: &[u8], seals: &[(&str, &str)]) {
    let sealed = match seals.is_empty() {
        true => None,
        false => with_seals(response, seals),
    };
    let response = sealed.as_deref().unwrap_or(response);
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        #[serde(borrow)]
        id: std::borrow::Cow<'a, str>,
    }
    let Ok(text) = std::str::from_utf8(response) else {
        return;
    };
    let Ok(raw) = serde_json::from_str::<Box<RawValue>>(text) else {
        return;
    };
    let Ok(head) = serde_json::from_str::<Head<'_>>(raw.get()) else {
        return;
    };
    let id = head.id.into_owned();
    let Plan {
        owner,
        previous,
        input,
    } = plan;
    let submitted = store::put(store::Put {
        id,
        owner,
        previous,
        input,
        response: raw,
    });
    if submitted == store::Submitted::TooBig {
        crate::log::warn(format_args!(
            "responses store: a response larger than `max_response_bytes` was not stored"
        ));
    }
}

/// `response` with `encrypted_content` filled in for each reasoning item of its `output` named
/// in `seals` whose own is null; None when none is (or `response` is not a response object).
/// Only `output` is parsed: it holds what the renderer made (a bounded number of items of a few
/// values each), and every other byte stays as the client got it.
fn with_seals(response: &[u8], seals: &[(&str, &str)]) -> Option<Vec<u8>> {
    use crate::json::tree::{self, Node};
    let members = crate::json::members(response)?;
    let output = members.iter().find(|m| m.key == "output")?.value.clone();
    let slice = response.get(output.clone())?;
    let Node::Array(items) = tree::parse(slice)? else {
        return None;
    };
    let mut edits = Vec::new();
    for item in &items {
        let is = |key: &str, want: &str| {
            item.get(key)
                .and_then(|n| n.as_str(slice))
                .is_some_and(|v| v == want)
        };
        if !is("type", "reasoning") {
            continue;
        }
        let Some(sealed) = seals.iter().find(|(id, _)| is("id", id)).map(|(_, s)| *s) else {
            continue;
        };
        if let Some(Node::Scalar(span)) = item.get("encrypted_content") {
            if slice.get(span.clone()) == Some(b"null") {
                edits.push((output.start + span.start..output.start + span.end, sealed));
            }
        }
    }
    if edits.is_empty() {
        return None;
    }
    tree::splice_strings(response, &edits)
}

/// `doc` with `encrypted_content: null` in each reasoning item of its top-level array `list`
/// that has one; None when none has (or `doc` is not an object with that list).
fn without_seals(doc: &[u8], list: &str) -> Option<Vec<u8>> {
    use crate::json::tree::{self, Node};
    let members = crate::json::members(doc)?;
    let at = members.iter().find(|m| m.key == list)?.value.clone();
    let slice = doc.get(at.clone())?;
    let Node::Array(items) = tree::parse(slice)? else {
        return None;
    };
    let mut out = Vec::with_capacity(doc.len());
    let mut from = 0;
    for item in &items {
        let reasoning = item
            .get("type")
            .and_then(|n| n.as_str(slice))
            .is_some_and(|t| t == "reasoning");
        if let (true, Some(Node::Str(span))) = (reasoning, item.get("encrypted_content")) {
            out.extend_from_slice(doc.get(from..at.start + span.start)?);
            out.extend_from_slice(b"null");
            from = at.start + span.end;
        }
    }
    if from == 0 {
        return None;
    }
    out.extend_from_slice(doc.get(from..)?);
    Some(out)
}

/// Watches a Responses stream's client-bound events for its terminal one (whose `response`
/// is the complete object) and keeps it. Batches hold whole events, and `"response":` can
/// only be a key (a quote inside a string is escaped), so only the few lifecycle events are
/// decoded and parsed.
pub(crate) struct Capture {
    plan: Option<Box<Plan>>,
}

impl Capture {
    pub(super) fn new(plan: Box<Plan>) -> Capture {
        Capture { plan: Some(plan) }
    }

    /// Look at one batch of whole events about to be written; `tr`: the stream's translator,
    /// which holds the sealed thinking the stored copy keeps.
    pub(crate) fn look(&mut self, events: &[u8], tr: Option<&crate::translate::StreamTranslator>) {
        if self.plan.is_none() || memchr::memmem::find(events, b"\"response\":").is_none() {
            return;
        }
        let mut dec = crate::sse::Decoder::new(usize::MAX);
        dec.push(Bytes::copy_from_slice(events));
        while let Ok(Some(ev)) = dec.next_event() {
            let Some(data) = ev.data.as_deref() else {
                continue;
            };
            #[derive(serde::Deserialize)]
            struct Lifecycle<'a> {
                #[serde(borrow, rename = "type")]
                kind: std::borrow::Cow<'a, str>,
                #[serde(borrow, default)]
                response: Option<&'a RawValue>,
            }
            let Ok(ev) = serde_json::from_slice::<Lifecycle<'_>>(data) else {
                continue;
            };
            if !matches!(
                ev.kind.as_ref(),
                "response.completed" | "response.incomplete" | "response.failed"
            ) {
                continue;
            }
            if let (Some(response), Some(plan)) = (ev.response, self.plan.take()) {
                let seals = tr.map(|t| t.kept_seals()).unwrap_or_default();
                keep(*plan, response.get().as_bytes(), &seals);
            }
        }
    }
}

/// What an admin answer is: status, content type, body.
type Answered = (u16, &'static str, Vec<u8>);

fn not_found(id: &str) -> Error {
    Error::new(ErrorKind::NotFound, store::not_found_message(id))
}

/// `GET /v1/responses/{id}`, `GET /v1/responses/{id}/input_items`, `DELETE
/// /v1/responses/{id}`: the key's own responses; any other id is the same 404.
pub(super) async fn answer(
    _ctx: &Ctx,
    ex: &mut Exchange<'_>,
    key: Option<&GatewayKey>,
) -> Result<Answered> {
    let path = ex.head.path();
    let rest = path
        .strip_prefix(endpoint::STORED_PREFIX)
        .or_else(|| path.strip_prefix("/responses/"))
        .unwrap_or_default();
    let (raw_id, items) = match rest.strip_suffix("/input_items") {
        Some(id) => (id, true),
        None => (rest, false),
    };
    let method = ex.head.method();
    let allowed = if items {
        method == Method::Get
    } else {
        matches!(method, Method::Get | Method::Delete)
    };
    if !allowed {
        return Err(Error::new(
            ErrorKind::MethodNotAllowed,
            if items {
                "this endpoint takes GET"
            } else {
                "this endpoint takes GET or DELETE"
            },
        ));
    }
    let id = endpoint::percent_decode(raw_id).unwrap_or_default();
    if !storage_on(key) {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!(
                "{} Stored responses are off on this gateway for this key: nothing is kept (send `store: false`).",
                store::not_found_message(&id)
            ),
        ));
    }
    if id.is_empty() || id.contains('/') {
        return Err(not_found(&id));
    }
    let owner = owner(key);
    let query = ex.head.query().unwrap_or_default();
    let (mut after, mut limit, mut order, mut sealed) = (None, None, None, false);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = endpoint::percent_decode(&v.replace('+', " "));
        match endpoint::percent_decode(k).as_deref().unwrap_or(k) {
            "after" => after = v,
            "limit" => limit = v,
            "order" => order = v,
            "include" | "include[]" => {
                sealed |= v.as_deref() == Some("reasoning.encrypted_content");
            }
            _ => {}
        }
    }
    // Reasoning is kept sealed (see `keep`) but handed out only when asked for, as the API does.
    let shown = |json: String, list: &str| match sealed {
        true => json.into_bytes(),
        false => without_seals(json.as_bytes(), list).unwrap_or_else(|| json.into_bytes()),
    };
    if items {
        let page = Page::from_params(after.as_deref(), limit.as_deref(), order.as_deref())
            .map_err(|e| Error::new(ErrorKind::BadRequest, e.message).with_param(e.param))?;
        return match wait(store::input_items(&owner, &id, page)).await? {
            Some(json) => Ok((200, "application/json", shown(json, "data"))),
            None => Err(not_found(&id)),
        };
    }
    if method == Method::Delete {
        return match wait(store::delete(&owner, &id)).await? {
            true => Ok((
                200,
                "application/json",
                store::deleted_body(&id).into_bytes(),
            )),
            false => Err(not_found(&id)),
        };
    }
    match wait(store::response(&owner, &id)).await? {
        Some(json) => Ok((200, "application/json", shown(json, "output"))),
        None => Err(not_found(&id)),
    }
}
