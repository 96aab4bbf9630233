//! What a stored response holds, as JSON, and the pure work on it: the sealed payload's shape,
//! the ids an input item is listed under, a conversation rebuilt from a chain of payloads, and
//! the `GET /v1/responses/{id}/input_items` page. No IO, clock or randomness.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Longest item id taken from a client's item; a longer one is listed under an id of ours.
pub const MAX_ITEM_ID_BYTES: usize = 128;
/// `limit` of an input-items page when the query gives none (as OpenAI's).
pub const DEFAULT_PAGE_LIMIT: usize = 20;
/// `limit` values accepted (as OpenAI's).
pub const PAGE_LIMIT_RANGE: std::ops::RangeInclusive<usize> = 1..=100;

/// What one stored row seals: the input items it adds to the conversation (as the client sent
/// them, `item_reference`s already replaced by their items), the id each is listed under, and
/// the response object as the client got it (its `output` holds the output items).
#[derive(Debug, Serialize, Deserialize)]
pub struct Payload {
    pub input: Vec<Box<RawValue>>,
    pub ids: Vec<String>,
    pub response: Box<RawValue>,
}

/// The few fields of an item the store reads.
#[derive(Deserialize)]
struct ItemHead<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    role: Option<Cow<'a, str>>,
}

/// A response object's output items (the rest of it is skipped).
#[derive(Deserialize)]
struct Outputs {
    #[serde(default)]
    output: Option<Vec<Box<RawValue>>>,
}

/// The output items of a response object; an error when it is not a JSON object.
pub fn output_items(response: &RawValue) -> Result<Vec<Box<RawValue>>, String> {
    let o: Outputs = serde_json::from_str(response.get())
        .map_err(|e| format!("the response object does not parse: {e}"))?;
    Ok(o.output.unwrap_or_default())
}

/// A request's `input`, its JSON text, as items: a string is one user message
/// (`{"role":"user","content":…}`), an array its elements; None for anything else (invalid
/// text included: both forms are read whole, so the text is not checked beforehand).
pub fn request_items(input: &str) -> Option<Vec<Box<RawValue>>> {
    let text = input.trim();
    if text.starts_with('"') {
        let body = format!(r#"{{"role":"user","content":{text}}}"#);
        return Some(vec![RawValue::from_string(body).ok()?]);
    }
    if text.starts_with('[') {
        return crate::json::de::from_str(text).ok();
    }
    None
}

/// Which side of a response an item is on (it tells apart the ids the store makes up).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Input,
    Output,
}

/// The id prefix of an item type, for items the client sent without an id.
fn prefix(kind: &str) -> &'static str {
    match kind {
        "message" => "msg",
        "function_call" => "fc",
        "function_call_output" => "fco",
        "reasoning" => "rs",
        "custom_tool_call" => "ctc",
        "custom_tool_call_output" => "ctco",
        "compaction" => "cmp",
        _ => "item",
    }
}

/// The id `item` is listed and referenced under: its own (a string of 1 to
/// [`MAX_ITEM_ID_BYTES`]), else `{prefix}_{base}_{i|o}{index}` from the response that added
/// it (`base`: that response's id without `resp_`), which ids the gateway issues never take
/// (theirs end in `_{index}`).
pub fn listing_id(item: &RawValue, base: &str, side: Side, index: usize) -> String {
    let head = serde_json::from_str::<ItemHead<'_>>(item.get()).ok();
    if let Some(id) = head.as_ref().and_then(|h| h.id.as_deref()) {
        if !id.is_empty() && id.len() <= MAX_ITEM_ID_BYTES {
            return id.to_owned();
        }
    }
    let kind = head
        .as_ref()
        .and_then(|h| match (&h.kind, &h.role) {
            (Some(k), _) => Some(k.as_ref()),
            (None, Some(_)) => Some("message"),
            (None, None) => None,
        })
        .unwrap_or("");
    let side = match side {
        Side::Input => 'i',
        Side::Output => 'o',
    };
    format!("{}_{base}_{side}{index}", prefix(kind))
}

/// The unique part of a response id (`resp_X` → `X`), shared by the ids made up for its items.
pub fn id_base(response_id: &str) -> &str {
    response_id.strip_prefix("resp_").unwrap_or(response_id)
}

/// Items in conversation order, each with the id it is listed under.
#[derive(Debug, Default, Clone)]
pub struct Items {
    pub items: Vec<Box<RawValue>>,
    pub ids: Vec<String>,
}

impl Items {
    /// Add a row's payload: its input items, then (with `output`) its output items.
    pub fn add(&mut self, response_id: &str, payload: Payload, output: bool) -> Result<(), String> {
        let outputs = if output {
            output_items(&payload.response)?
        } else {
            Vec::new()
        };
        if payload.ids.len() != payload.input.len() {
            return Err("a stored row's ids do not match its items".into());
        }
        self.items.extend(payload.input);
        self.ids.extend(payload.ids);
        let base = id_base(response_id);
        for (i, item) in outputs.into_iter().enumerate() {
            self.ids.push(listing_id(&item, base, Side::Output, i));
            self.items.push(item);
        }
        Ok(())
    }

    /// The item listed under `id`, if any (the last one, if a client repeated an id).
    pub fn find(&self, id: &str) -> Option<&RawValue> {
        let at = self.ids.iter().rposition(|i| i == id)?;
        self.items.get(at).map(|b| &**b)
    }
}

/// Bytes of a list of items as JSON (what they add to a conversation: the items and commas).
pub fn items_bytes(items: &[Box<RawValue>]) -> u64 {
    items.iter().map(|i| i.get().len() as u64 + 1).sum()
}

/// How an input-items page is ordered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    Asc,
    /// Newest first: OpenAI's default.
    #[default]
    Desc,
}

/// One page of `GET /v1/responses/{id}/input_items`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// List the items after this id (in the page's order).
    pub after: Option<String>,
    /// Items per page, within [`PAGE_LIMIT_RANGE`].
    pub limit: usize,
    pub order: Order,
}

impl Default for Page {
    fn default() -> Self {
        Page {
            after: None,
            limit: DEFAULT_PAGE_LIMIT,
            order: Order::Desc,
        }
    }
}

/// A query parameter that is not acceptable: which one, and why (for a 400 naming `param`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageError {
    pub param: &'static str,
    pub message: String,
}

impl Page {
    /// A page from the query's values (already percent-decoded; None: not given).
    pub fn from_params(
        after: Option<&str>,
        limit: Option<&str>,
        order: Option<&str>,
    ) -> Result<Page, PageError> {
        let limit = match limit {
            None => DEFAULT_PAGE_LIMIT,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if PAGE_LIMIT_RANGE.contains(&n) => n,
                _ => {
                    return Err(PageError {
                        param: "limit",
                        message: format!(
                            "limit must be an integer from {} to {}",
                            PAGE_LIMIT_RANGE.start(),
                            PAGE_LIMIT_RANGE.end()
                        ),
                    })
                }
            },
        };
        let order = match order {
            None => Order::Desc,
            Some("asc") => Order::Asc,
            Some("desc") => Order::Desc,
            Some(_) => {
                return Err(PageError {
                    param: "order",
                    message: "order must be 'asc' or 'desc'".into(),
                })
            }
        };
        let after = match after {
            None | Some("") => None,
            Some(a) if a.len() > MAX_ITEM_ID_BYTES => {
                return Err(PageError {
                    param: "after",
                    message: format!(
                        "after must be an item id of at most {MAX_ITEM_ID_BYTES} bytes"
                    ),
                })
            }
            Some(a) => Some(a.to_owned()),
        };
        Ok(Page {
            after,
            limit,
            order,
        })
    }
}

/// An item as the input-items list shows it: with its `id`, a `type` (`message` for the
/// `{role, content}` shorthand), a message's text content as an `input_text` part
/// (`output_text` for an assistant's), and a message's `status`.
fn listed(item: &RawValue, id: &str) -> Value {
    let mut v: Value = serde_json::from_str(item.get()).unwrap_or(Value::Null);
    let Some(o) = v.as_object_mut() else {
        let mut o = Map::new();
        o.insert("id".into(), Value::String(id.to_owned()));
        o.insert("type".into(), Value::String("unknown".into()));
        return Value::Object(o);
    };
    if !o.contains_key("type") && o.contains_key("role") {
        o.insert("type".into(), Value::String("message".into()));
    }
    if o.get("type").and_then(Value::as_str) == Some("message") {
        let assistant = o.get("role").and_then(Value::as_str) == Some("assistant");
        if let Some(Value::String(text)) = o.get("content") {
            let part = if assistant {
                serde_json::json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
            } else {
                serde_json::json!({"type": "input_text", "text": text})
            };
            o.insert("content".into(), Value::Array(vec![part]));
        }
        o.entry("status")
            .or_insert_with(|| Value::String("completed".into()));
    }
    // The id first, as the API lists it (serde_json keeps insertion order only with
    // `preserve_order`; without it, keys are sorted, which readers do not mind).
    o.insert("id".into(), Value::String(id.to_owned()));
    v
}

/// The input-items list object for `page` of `items` (conversation order, oldest first):
/// `{"object":"list","data":[…],"first_id","last_id","has_more"}`. An `after` id that is
/// not in the list gives an empty page.
pub fn list_body(items: &Items, page: &Page) -> String {
    let n = items.items.len();
    let order: Box<dyn Iterator<Item = usize>> = match page.order {
        Order::Asc => Box::new(0..n),
        Order::Desc => Box::new((0..n).rev()),
    };
    let mut order = order.peekable();
    if let Some(after) = &page.after {
        let mut found = false;
        for i in order.by_ref() {
            if items.ids.get(i) == Some(after) {
                found = true;
                break;
            }
        }
        if !found {
            return serde_json::json!({
                "object": "list", "data": [], "first_id": null, "last_id": null, "has_more": false
            })
            .to_string();
        }
    }
    let mut data = Vec::with_capacity(page.limit.min(n));
    let mut ids = Vec::with_capacity(page.limit.min(n));
    for i in order.by_ref().take(page.limit) {
        if let (Some(item), Some(id)) = (items.items.get(i), items.ids.get(i)) {
            data.push(listed(item, id));
            ids.push(id.as_str());
        }
    }
    let has_more = order.peek().is_some();
    serde_json::json!({
        "object": "list",
        "data": data,
        "first_id": ids.first(),
        "last_id": ids.last(),
        "has_more": has_more,
    })
    .to_string()
}

/// `DELETE /v1/responses/{id}`'s body.
pub fn deleted_body(id: &str) -> String {
    serde_json::json!({"id": id, "object": "response.deleted", "deleted": true}).to_string()
}

/// The message of the 404 for an unknown response id (also another key's, or an expired one),
/// as OpenAI words it.
pub fn not_found_message(id: &str) -> String {
    format!("Response with id '{id}' not found.")
}

/// The message of the 400 (`code: previous_response_not_found`, `param:
/// previous_response_id`) for a `previous_response_id` the store does not have.
pub fn previous_not_found_message(id: &str) -> String {
    format!("Previous response with id '{id}' not found.")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    #[test]
    fn items_keep_their_own_ids_and_get_ours_otherwise() {
        let own = raw(r#"{"id":"msg_abc","type":"message","role":"assistant","content":[]}"#);
        assert_eq!(listing_id(&own, "rw1", Side::Input, 0), "msg_abc");
        let short = raw(r#"{"role":"user","content":"hi"}"#);
        assert_eq!(listing_id(&short, "rw1", Side::Input, 3), "msg_rw1_i3");
        let out = raw(r#"{"type":"function_call_output","call_id":"c","output":"x"}"#);
        assert_eq!(listing_id(&out, "rw1", Side::Input, 1), "fco_rw1_i1");
        let long = format!(r#"{{"id":"{}","type":"reasoning"}}"#, "x".repeat(200));
        assert_eq!(listing_id(&raw(&long), "b", Side::Output, 0), "rs_b_o0");
        for junk in [r#""text""#, "[]", r#"{"id":5}"#, r#"{"id":""}"#] {
            assert!(listing_id(&raw(junk), "b", Side::Input, 0).starts_with("item_b_i0"));
        }
    }

    fn payload(input: &[&str], ids: &[&str], output: &[&str]) -> Payload {
        Payload {
            input: input.iter().map(|s| raw(s)).collect(),
            ids: ids.iter().map(|s| (*s).to_owned()).collect(),
            response: raw(&format!(r#"{{"id":"r","output":[{}]}}"#, output.join(","))),
        }
    }

    #[test]
    fn a_request_input_becomes_items() {
        let one = request_items(r#""hi \"you\"""#).unwrap();
        assert_eq!(one.len(), 1);
        let v: Value = serde_json::from_str(one[0].get()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"role": "user", "content": "hi \"you\""})
        );
        let array = r#"[{"type":"item_reference","id":"msg_1"}, {"role":"user","content":"x"}]"#;
        let many = request_items(array).unwrap();
        assert_eq!(many.len(), 2);
        assert_eq!(many[0].get(), r#"{"type":"item_reference","id":"msg_1"}"#);
        for junk in ["5", "null", "{}"] {
            assert!(request_items(junk).is_none(), "{junk}");
        }
    }

    #[test]
    fn a_chain_rebuilds_the_conversation_in_order() {
        let mut c = Items::default();
        c.add(
            "resp_a",
            payload(
                &[r#"{"role":"user","content":"one"}"#],
                &["msg_a_i0"],
                &[r#"{"id":"msg_a_0","type":"message"}"#],
            ),
            true,
        )
        .unwrap();
        c.add(
            "resp_b",
            payload(
                &[r#"{"role":"user","content":"two"}"#],
                &["msg_b_i0"],
                &[r#"{"type":"message"}"#],
            ),
            true,
        )
        .unwrap();
        assert_eq!(c.ids, ["msg_a_i0", "msg_a_0", "msg_b_i0", "msg_b_o0"]);
        assert_eq!(
            c.find("msg_a_0").unwrap().get(),
            r#"{"id":"msg_a_0","type":"message"}"#
        );
        assert!(c.find("msg_zz").is_none());
        // Without the output: what the response was given (its input items).
        let mut input = Items::default();
        input
            .add(
                "resp_c",
                payload(&[r#"{"role":"user","content":"x"}"#], &["m"], &["{}"]),
                false,
            )
            .unwrap();
        assert_eq!(input.ids, ["m"]);
        // A payload whose ids do not match its items is refused.
        let bad = payload(&["{}"], &[], &[]);
        assert!(Items::default().add("resp_d", bad, true).is_err());
    }

    fn five() -> Items {
        let mut c = Items::default();
        for i in 0..5 {
            c.items
                .push(raw(&format!(r#"{{"role":"user","content":"t{i}"}}"#)));
            c.ids.push(format!("msg_{i}"));
        }
        c
    }

    fn page(after: Option<&str>, limit: usize, order: Order) -> Value {
        let p = Page {
            after: after.map(str::to_owned),
            limit,
            order,
        };
        serde_json::from_str(&list_body(&five(), &p)).unwrap()
    }

    #[test]
    fn pages_go_newest_first_by_default_and_continue_after_an_id() {
        let v = page(None, 2, Order::Desc);
        assert_eq!(v["object"], "list");
        assert_eq!(v["first_id"], "msg_4");
        assert_eq!(v["last_id"], "msg_3");
        assert_eq!(v["has_more"], true);
        let d = &v["data"][0];
        assert_eq!(d["id"], "msg_4");
        assert_eq!(d["type"], "message");
        assert_eq!(d["status"], "completed");
        assert_eq!(d["content"][0]["type"], "input_text");
        assert_eq!(d["content"][0]["text"], "t4");
        let next = page(Some("msg_3"), 2, Order::Desc);
        assert_eq!(next["first_id"], "msg_2");
        assert_eq!(next["has_more"], true);
        let last = page(Some("msg_1"), 2, Order::Desc);
        assert_eq!(last["data"].as_array().unwrap().len(), 1);
        assert_eq!(last["has_more"], false);
        let asc = page(Some("msg_2"), 20, Order::Asc);
        assert_eq!(asc["first_id"], "msg_3");
        assert_eq!(asc["last_id"], "msg_4");
        let unknown = page(Some("msg_9"), 20, Order::Asc);
        assert_eq!(unknown["data"], serde_json::json!([]));
        assert_eq!(unknown["first_id"], Value::Null);
    }

    #[test]
    fn page_params_are_checked_and_name_the_bad_one() {
        assert_eq!(
            Page::from_params(None, None, None).unwrap(),
            Page::default()
        );
        let p = Page::from_params(Some("msg_1"), Some("100"), Some("asc")).unwrap();
        assert_eq!(
            (p.limit, p.order, p.after.as_deref()),
            (100, Order::Asc, Some("msg_1"))
        );
        for (limit, order, param) in [
            (Some("0"), None, "limit"),
            (Some("101"), None, "limit"),
            (Some("x"), None, "limit"),
            (None, Some("up"), "order"),
        ] {
            assert_eq!(
                Page::from_params(None, limit, order).unwrap_err().param,
                param
            );
        }
        let long = "a".repeat(MAX_ITEM_ID_BYTES + 1);
        assert_eq!(
            Page::from_params(Some(&long), None, None)
                .unwrap_err()
                .param,
            "after"
        );
    }

    #[test]
    fn an_assistant_shorthand_is_listed_as_output_text() {
        let mut c = Items::default();
        c.items.push(raw(r#"{"role":"assistant","content":"ok"}"#));
        c.ids.push("msg_x_i0".into());
        let v: Value = serde_json::from_str(&list_body(&c, &Page::default())).unwrap();
        let part = &v["data"][0]["content"][0];
        assert_eq!(part["type"], "output_text");
        assert_eq!(part["annotations"], serde_json::json!([]));
    }

    #[test]
    fn bodies_as_openai_words_them() {
        let d: Value = serde_json::from_str(&deleted_body("resp_1")).unwrap();
        assert_eq!(
            d,
            serde_json::json!({"id":"resp_1","object":"response.deleted","deleted":true})
        );
        assert_eq!(
            not_found_message("resp_x"),
            "Response with id 'resp_x' not found."
        );
        assert_eq!(
            previous_not_found_message("resp_x"),
            "Previous response with id 'resp_x' not found."
        );
    }
}
