//! JSON Schema cut down to Gemini's OpenAPI-subset `Schema`, for models that take only
//! `parameters` / `responseSchema` (Gemini 2.0 and older): one keyword outside the subset
//! fails the whole request there. `$ref`s are resolved from `$defs`/`definitions`, type lists
//! become `nullable` or `anyOf`, `const` an enum, `oneOf` `anyOf`, a single `allOf` merged,
//! exclusive bounds inclusive; anything else outside the subset is left out.

use serde_json::{json, Map, Value};

/// Deepest schema written (and `$ref` chain followed); below it a node is a bare object.
const MAX_DEPTH: usize = 32;

/// Most schema nodes one conversion writes: `$ref`s expand where they are used, so a small
/// schema could otherwise grow exponentially. Past it the request is refused.
pub const MAX_SUBSET_NODES: usize = 20_000;

/// What a conversion may still write, and the `$ref`s being expanded (a cycle stops there).
struct Walk<'s> {
    nodes: usize,
    refs: Vec<&'s str>,
    /// Something was left out or weakened (a keyword outside the subset, an exclusive bound
    /// made inclusive, `oneOf` as `anyOf`, a cut): the translation ledger's `schema_cleaned`.
    lost: bool,
}

/// Keywords the subset carries with their meaning (those in [`KEPT`] too); any other one on a
/// node means the cut schema says less than the client's.
fn carried(k: &str) -> bool {
    KEPT.contains(&k)
        || matches!(
            k,
            "type"
                | "enum"
                | "const"
                | "format"
                | "properties"
                | "required"
                | "items"
                | "anyOf"
                | "allOf"
                | "$ref"
                | "$defs"
                | "definitions"
                | "$schema"
                | "examples"
        )
}

/// Keywords copied as they are.
const KEPT: &[&str] = &[
    "title",
    "description",
    "nullable",
    "maxItems",
    "minItems",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "propertyOrdering",
    "default",
    "minimum",
    "maximum",
];

/// Does `model` take only the OpenAPI subset (no `parametersJsonSchema`)?
pub fn needs_openapi_subset(model: &str) -> bool {
    let m = model
        .rsplit('/')
        .next()
        .unwrap_or(model)
        .to_ascii_lowercase();
    m.starts_with("gemini-1.")
        || m.starts_with("gemini-2.0")
        || m == "gemini-pro"
        || m.starts_with("gemini-pro-")
        || m.starts_with("gemini-ultra")
}

/// `schema` (JSON Schema) as Gemini's subset; None when it would be larger than
/// [`MAX_SUBSET_NODES`].
pub fn openapi_subset(schema: &Value) -> Option<Value> {
    openapi_subset_noting(schema).map(|(s, _)| s)
}

/// [`openapi_subset`], and whether anything of the client's schema was left out or weakened.
pub fn openapi_subset_noting(schema: &Value) -> Option<(Value, bool)> {
    let root = schema.as_object();
    let defs = root.and_then(|r| r.get("$defs").or_else(|| r.get("definitions")));
    let mut walk = Walk {
        nodes: MAX_SUBSET_NODES,
        refs: Vec::new(),
        lost: false,
    };
    let out = subset(schema, defs, 0, &mut walk);
    (walk.nodes > 0).then_some((out, walk.lost))
}

fn subset<'s>(s: &'s Value, defs: Option<&'s Value>, depth: usize, walk: &mut Walk<'s>) -> Value {
    let Some(o) = s.as_object() else {
        return json!({});
    };
    if depth > MAX_DEPTH || walk.nodes == 0 {
        walk.lost = true;
        return json!({ "type": "OBJECT" });
    }
    walk.nodes -= 1;
    if let Some(target) = o.get("$ref").and_then(Value::as_str) {
        let name = target
            .strip_prefix("#/$defs/")
            .or_else(|| target.strip_prefix("#/definitions/"));
        let resolved = name.and_then(|n| defs?.get(n));
        let mut node = match resolved {
            // A definition that refers to itself (directly or not) ends as a bare object.
            Some(r) if !walk.refs.contains(&target) => {
                walk.refs.push(target);
                let n = subset(r, defs, depth + 1, walk);
                walk.refs.pop();
                n
            }
            _ => {
                walk.lost = true;
                json!({ "type": "OBJECT" })
            }
        };
        if let (Some(d), Some(n)) = (o.get("description"), node.as_object_mut()) {
            n.insert("description".into(), d.clone());
        }
        return node;
    }
    // A lone allOf member (how generators wrap a `$ref` with a description) is merged in.
    if let Some([only]) = o.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
        let mut merged = subset(only, defs, depth + 1, walk);
        let rest: Map<String, Value> = o
            .iter()
            .filter(|(k, _)| k.as_str() != "allOf")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let rest = subset_owned(&Value::Object(rest), defs, depth + 1, walk);
        if let (Some(m), Value::Object(r)) = (merged.as_object_mut(), rest) {
            for (k, v) in r {
                m.insert(k, v);
            }
        }
        return merged;
    }
    if o.keys().any(|k| !carried(k)) {
        walk.lost = true;
    }
    let mut out = Map::new();
    for k in KEPT {
        if let Some(v) = o.get(*k) {
            out.insert((*k).into(), v.clone());
        }
    }
    if let Some(e) = o
        .get("examples")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        out.entry("example").or_insert_with(|| e.clone());
    }
    for (from, to) in [
        ("exclusiveMinimum", "minimum"),
        ("exclusiveMaximum", "maximum"),
    ] {
        if let Some(n) = o.get(from).filter(|v| v.is_number()) {
            out.entry(to).or_insert_with(|| n.clone());
        }
    }
    let mut kind = None;
    match o.get("type") {
        Some(Value::String(t)) => kind = Some(t.to_ascii_uppercase()),
        Some(Value::Array(list)) => {
            let types: Vec<String> = list
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .map(str::to_ascii_uppercase)
                .collect();
            if types.len() < list.len() {
                out.insert("nullable".into(), json!(true));
            }
            match types.as_slice() {
                [one] => kind = Some(one.clone()),
                [] => {}
                many => {
                    out.insert(
                        "anyOf".into(),
                        Value::Array(many.iter().map(|t| json!({ "type": t })).collect()),
                    );
                }
            }
        }
        _ => {}
    }
    // Gemini's enums are strings; `const` is a one-value enum.
    let values = o
        .get("enum")
        .and_then(Value::as_array)
        .cloned()
        .or_else(|| o.get("const").map(|c| vec![c.clone()]));
    if let Some(values) = values {
        if values.iter().all(Value::is_string) && !values.is_empty() {
            out.insert("enum".into(), Value::Array(values));
            kind.get_or_insert_with(|| "STRING".into());
            out.insert("format".into(), json!("enum"));
        } else {
            walk.lost = true;
        }
    }
    if let Some(f) = o.get("format").and_then(Value::as_str) {
        let ok = matches!(
            (kind.as_deref(), f),
            (Some("STRING"), "date-time" | "enum")
                | (Some("INTEGER"), "int32" | "int64")
                | (Some("NUMBER"), "float" | "double")
        );
        if ok {
            out.insert("format".into(), json!(f));
        } else {
            walk.lost = true;
        }
    }
    if let Some(k) = kind {
        out.insert("type".into(), json!(k));
    }
    if let Some(props) = o.get("properties").and_then(Value::as_object) {
        let p: Map<String, Value> = props
            .iter()
            .map(|(n, s)| (n.clone(), subset(s, defs, depth + 1, walk)))
            .collect();
        if let Some(req) = o.get("required").and_then(Value::as_array) {
            let req: Vec<Value> = req
                .iter()
                .filter(|r| r.as_str().is_some_and(|r| p.contains_key(r)))
                .cloned()
                .collect();
            if !req.is_empty() {
                out.insert("required".into(), Value::Array(req));
            }
        }
        out.insert("properties".into(), Value::Object(p));
    }
    match o.get("items") {
        Some(i @ Value::Object(_)) => {
            out.insert("items".into(), subset(i, defs, depth + 1, walk));
        }
        Some(Value::Array(tuple)) => {
            walk.lost |= tuple.len() > 1;
            if let Some(first) = tuple.first() {
                out.insert("items".into(), subset(first, defs, depth + 1, walk));
            }
        }
        _ => {}
    }
    let alternatives = o
        .get("anyOf")
        .or_else(|| o.get("oneOf"))
        .and_then(Value::as_array);
    if let Some(list) = alternatives {
        let (nulls, rest): (Vec<&Value>, Vec<&Value>) = list
            .iter()
            .partition(|s| s.get("type").and_then(Value::as_str) == Some("null"));
        if !nulls.is_empty() {
            out.insert("nullable".into(), json!(true));
        }
        let mut rest: Vec<Value> = rest
            .iter()
            .map(|s| subset(s, defs, depth + 1, walk))
            .collect();
        if rest.len() == 1 {
            if let Some(Value::Object(only)) = rest.pop() {
                for (k, v) in only {
                    out.entry(k).or_insert(v);
                }
            }
        } else if !rest.is_empty() {
            out.insert("anyOf".into(), Value::Array(rest));
        }
    }
    Value::Object(out)
}

/// [`subset`] of a value made here (the rest of a node beside its `allOf`): its own `$ref`s
/// cannot be borrowed into the walk, so it is walked with a walk of its own that shares the
/// node budget.
fn subset_owned(s: &Value, defs: Option<&Value>, depth: usize, walk: &mut Walk<'_>) -> Value {
    let mut inner = Walk {
        nodes: walk.nodes,
        refs: walk.refs.clone(),
        lost: false,
    };
    let out = subset(s, defs, depth, &mut inner);
    walk.nodes = inner.nodes;
    walk.lost |= inner.lost;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::gemini::schema_violations;

    fn violations(s: &Value) -> Vec<(String, String)> {
        let mut out = Vec::new();
        schema_violations(s, "p", 0, &mut out);
        out
    }

    #[test]
    fn a_cut_says_whether_it_left_anything_out() {
        let plain = json!({"type":"object","properties":{"q":{"type":"string","description":"x"}},"required":["q"]});
        assert_eq!(
            openapi_subset_noting(&plain).map(|(_, lost)| lost),
            Some(false)
        );
        for lossy in [
            json!({"type":"object","additionalProperties":false}),
            json!({"type":"number","exclusiveMinimum":0}),
            json!({"oneOf":[{"type":"string"},{"type":"integer"}]}),
            json!({"type":"string","format":"uri"}),
            json!({"$ref":"#/$defs/missing"}),
        ] {
            assert_eq!(
                openapi_subset_noting(&lossy).map(|(_, lost)| lost),
                Some(true),
                "{lossy}"
            );
        }
    }

    #[test]
    fn agent_schemas_come_out_inside_the_subset() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "path": {"type": "string", "format": "uri", "description": "where"},
                "mode": {"const": "read"},
                "limit": {"type": ["integer", "null"], "exclusiveMinimum": 0},
                "opts": {"$ref": "#/$defs/Opts", "description": "options"},
                "either": {"oneOf": [{"type": "string"}, {"type": "number"}]},
                "maybe": {"anyOf": [{"type": "boolean"}, {"type": "null"}]},
                "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
                "level": {"type": "integer", "enum": [1, 2]},
                "wrapped": {"allOf": [{"$ref": "#/$defs/Opts"}], "title": "w"},
                "loop": {"$ref": "#/$defs/Loop"},
            },
            "required": ["path", "ghost"],
            "$defs": {
                "Opts": {"type": "object", "properties": {"x": {"type": "boolean"}},
                         "additionalProperties": false},
                "Loop": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Loop"}}},
            },
        });
        let out = openapi_subset(&schema).unwrap();
        assert_eq!(violations(&out), Vec::new(), "{out}");
        let p = &out["properties"];
        assert_eq!(out["type"], "OBJECT");
        assert_eq!(out["required"], json!(["path"]));
        assert_eq!(p["path"], json!({"type": "STRING", "description": "where"}));
        assert_eq!(
            p["mode"],
            json!({"type": "STRING", "enum": ["read"], "format": "enum"})
        );
        assert_eq!(
            p["limit"],
            json!({"type": "INTEGER", "nullable": true, "minimum": 0})
        );
        assert_eq!(p["opts"]["properties"]["x"]["type"], "BOOLEAN");
        assert_eq!(p["opts"]["description"], "options");
        assert_eq!(
            p["either"]["anyOf"],
            json!([{"type": "STRING"}, {"type": "NUMBER"}])
        );
        assert_eq!(p["maybe"], json!({"type": "BOOLEAN", "nullable": true}));
        assert_eq!(p["tags"]["items"]["enum"], json!(["a", "b"]));
        assert_eq!(p["level"], json!({"type": "INTEGER"}));
        assert_eq!(p["wrapped"]["title"], "w");
        assert_eq!(p["wrapped"]["properties"]["x"]["type"], "BOOLEAN");
        // A recursive $ref ends at the depth bound as a bare object.
        let mut node = &p["loop"];
        let mut depth = 0;
        while let Some(next) = node.get("properties").and_then(|n| n.get("next")) {
            node = next;
            depth += 1;
        }
        assert!(depth <= MAX_DEPTH, "{depth}");
        assert_eq!(node["type"], "OBJECT");
        assert_eq!(openapi_subset(&json!(true)), Some(json!({})));
        // References used in several places expand where used: a small schema that would
        // grow exponentially is refused, not expanded (a review finding).
        let fan = json!({"type": "object", "properties": {"a": {"$ref": "#/$defs/L"}, "b": {"$ref": "#/$defs/L"}, "c": {"$ref": "#/$defs/L"}},
            "$defs": {"L": {"type": "object", "properties": {"a": {"$ref": "#/$defs/M"}, "b": {"$ref": "#/$defs/M"}, "c": {"$ref": "#/$defs/M"}}},
                      "M": {"type": "object", "properties": {"a": {"$ref": "#/$defs/N"}, "b": {"$ref": "#/$defs/N"}, "c": {"$ref": "#/$defs/N"}}},
                      "N": {"type": "object", "properties": {"a": {"$ref": "#/$defs/O"}, "b": {"$ref": "#/$defs/O"}, "c": {"$ref": "#/$defs/O"}}},
                      "O": {"type": "object", "properties": {"a": {"$ref": "#/$defs/P"}, "b": {"$ref": "#/$defs/P"}, "c": {"$ref": "#/$defs/P"}}},
                      "P": {"type": "object", "properties": {"a": {"$ref": "#/$defs/Q"}, "b": {"$ref": "#/$defs/Q"}, "c": {"$ref": "#/$defs/Q"}}},
                      "Q": {"type": "object", "properties": {"a": {"$ref": "#/$defs/R"}, "b": {"$ref": "#/$defs/R"}, "c": {"$ref": "#/$defs/R"}}},
                      "R": {"type": "object", "properties": {"a": {"$ref": "#/$defs/S"}, "b": {"$ref": "#/$defs/S"}, "c": {"$ref": "#/$defs/S"}}},
                      "S": {"type": "object", "properties": {"a": {"$ref": "#/$defs/T"}, "b": {"$ref": "#/$defs/T"}, "c": {"$ref": "#/$defs/T"}}},
                      "T": {"type": "string"}}});
        assert_eq!(openapi_subset(&fan), None);
        // The reviewer's self-reference fan-out ends at the cycle, small.
        let cyc = json!({"type": "object", "properties": {"p0": {"$ref": "#/$defs/L"}, "p1": {"$ref": "#/$defs/L"}, "p2": {"$ref": "#/$defs/L"}},
            "$defs": {"L": {"type": "object", "properties": {"p0": {"$ref": "#/$defs/L"}, "p1": {"$ref": "#/$defs/L"}, "p2": {"$ref": "#/$defs/L"}}}}});
        let out = openapi_subset(&cyc).unwrap();
        assert_eq!(
            out["properties"]["p0"]["properties"]["p1"],
            json!({"type": "OBJECT"})
        );
    }

    #[test]
    fn older_models_take_the_subset() {
        for m in [
            "gemini-2.0-flash",
            "gemini-1.5-pro-002",
            "models/gemini-2.0-flash-lite",
            "gemini-pro",
        ] {
            assert!(needs_openapi_subset(m), "{m}");
        }
        for m in [
            "gemini-2.5-flash",
            "gemini-3-pro-preview",
            "gemini-flash-latest",
            "gemini-professional-x",
        ] {
            assert!(!needs_openapi_subset(m), "{m}");
        }
    }
}
