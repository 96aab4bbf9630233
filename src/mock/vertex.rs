//! Claude on Vertex AI as the mock plays it: `rawPredict` / `streamRawPredict` (and
//! `count-tokens:rawPredict`) under `/v1/projects/{p}/locations/{l}/publishers/anthropic/models/`,
//! behind Google's front end (OAuth bearer tokens the mock issued, Google-shaped 401 and 429).
//! The body rules are Vertex's (`anthropic_version`, no `model`, the beta header allowlist);
//! the answer is the Anthropic script's, Anthropic-shaped as Vertex passes it through.

use std::time::SystemTime;

use serde_json::{json, Value};

use super::cloud::{json_reply, last_user_text, CloudDirectives};
use super::fault::{self, FaultTable};
use super::google::Tokens;
use super::script::{self, Api, Defaults, Step};

/// The `anthropic_version` Vertex requires in the body.
pub const VERTEX_VERSION: &str = "vertex-2023-10-16";
/// Betas Vertex accepts in the `anthropic-beta` header: the gateway's allowlist stands for the
/// cloud's (`--refuse-beta` plays a region without one).
pub const VERTEX_BETAS: &[&str] = crate::provider::vertex::BETAS;

/// What a Vertex path asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `models/{m}:rawPredict` or `:streamRawPredict`.
    Predict {
        /// The model from the path.
        model: String,
    },
    /// `models/count-tokens:rawPredict`.
    CountTokens,
}

/// The operation of a Vertex path; `None`: not one.
pub fn route(path: &str) -> Option<Op> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let models = super::cloud::vertex_models(path, &["/v1/projects/"], "anthropic")?;
    let (model, verb) = models.rsplit_once(':')?;
    if model.is_empty() || model.contains('/') {
        return None;
    }
    match (model, verb) {
        ("count-tokens", "rawPredict") => Some(Op::CountTokens),
        (_, "rawPredict" | "streamRawPredict") => Some(Op::Predict {
            // SDKs send `@` as is; an encoded one (`%40`) names the same model.
            model: super::cloud::percent_decode(model, false).unwrap_or_else(|| model.to_owned()),
        }),
        _ => None,
    }
}

/// Google's 401 for a missing or unknown token.
fn unauthenticated() -> Vec<Step> {
    json_reply(
        401,
        vec![(
            "www-authenticate",
            "Bearer realm=\"https://accounts.google.com/\"".to_owned(),
        )],
        &json!({"error": {
            "code": 401,
            "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
            "status": "UNAUTHENTICATED",
        }}),
    )
}

/// Google's 429.
fn exhausted() -> Vec<Step> {
    json_reply(
        429,
        Vec::new(),
        &json!({"error": {
            "code": 429,
            "message": "Resource exhausted. Please try again later. Please refer to https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details.",
            "status": "RESOURCE_EXHAUSTED",
        }}),
    )
}

/// An Anthropic-shaped 400, as the model behind Vertex answers.
/// Header betas the mock was told this region does not know yet (`--refuse-beta`): Vertex's
/// "Unexpected value(s)" answer naming them, whatever the allowlist says.
pub fn refuse_betas(betas: &[&[u8]], refused: &[String]) -> Option<Vec<Step>> {
    let named: Vec<String> = betas
        .iter()
        .flat_map(|v| {
            String::from_utf8_lossy(v)
                .split(',')
                .map(|b| b.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|b| refused.contains(b))
        .map(|b| format!("`{b}`"))
        .collect();
    (!named.is_empty()).then(|| {
        invalid(&format!(
            "Unexpected value(s) {} for the `anthropic-beta` header. Please consult our documentation at docs.anthropic.com or try again without the header.",
            named.join(", ")
        ))
    })
}

fn invalid(message: &str) -> Vec<Step> {
    json_reply(
        400,
        Vec::new(),
        &json!({"type": "error", "error": {"type": "invalid_request_error", "message": message}}),
    )
}

/// The request's parts the Vertex side reads.
pub struct VertexRequest<'a> {
    /// `Authorization` header value.
    pub authorization: Option<&'a [u8]>,
    /// `anthropic-beta` header values.
    pub betas: Vec<&'a [u8]>,
    /// Body.
    pub body: &'a [u8],
}

/// The model a Vertex request names (path, or body for count-tokens), for the record.
pub fn model_of(op: &Op, body: &[u8]) -> Option<String> {
    match op {
        Op::Predict { model } => Some(model.clone()),
        Op::CountTokens => fault::model_of(body),
    }
}

/// The whole answer to one Vertex request.
pub fn plan(
    op: &Op,
    req: &VertexRequest<'_>,
    tokens: &Tokens,
    faults: &FaultTable,
    defaults: &Defaults,
    now: SystemTime,
) -> Vec<Step> {
    let bearer = req
        .authorization
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| {
            v.get(..7)
                .filter(|s| s.eq_ignore_ascii_case("bearer "))
                .and(v.get(7..))
        });
    if !bearer.is_some_and(|t| tokens.accepts(t.trim(), now)) {
        return unauthenticated();
    }
    let unexpected: Vec<String> = req
        .betas
        .iter()
        .flat_map(|v| {
            String::from_utf8_lossy(v)
                .split(',')
                .map(|b| b.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|b| !b.is_empty() && !VERTEX_BETAS.contains(&b.as_str()))
        .collect();
    if !unexpected.is_empty() {
        let list: Vec<String> = unexpected.iter().map(|b| format!("`{b}`")).collect();
        return invalid(&format!(
            "Unexpected value(s) {} for the `anthropic-beta` header. Please consult our documentation at docs.anthropic.com or try again without the header.",
            list.join(", ")
        ));
    }
    let Ok(mut root) = serde_json::from_slice::<Value>(req.body) else {
        return invalid("The request body is not valid JSON.");
    };
    let Some(obj) = root.as_object_mut() else {
        return invalid("The request body must be a JSON object.");
    };
    let version = obj.remove("anthropic_version");
    match (op, version) {
        (_, Some(Value::String(v))) if v == VERTEX_VERSION => {}
        // count-tokens is documented without it.
        (Op::CountTokens, None) => {}
        (_, None) => return invalid("anthropic_version: Field required"),
        (_, Some(_)) => return invalid("anthropic_version: Input should be 'vertex-2023-10-16'"),
    }
    let model = match op {
        Op::Predict { model } => {
            if obj.contains_key("model") {
                return invalid("model: Extra inputs are not permitted");
            }
            obj.insert("model".into(), Value::from(model.as_str()));
            model.clone()
        }
        Op::CountTokens => match obj.get("model").and_then(Value::as_str) {
            Some(m) => m.to_owned(),
            None => return invalid("model: Field required"),
        },
    };
    if CloudDirectives::parse(&last_user_text(&root)).throttle {
        return exhausted();
    }
    if *op == Op::CountTokens {
        // The estimate is of the body as received, as the anthropic kind's is.
        return script::plan(Api::AnthropicCountTokens, req.body, defaults);
    }
    let body = root.to_string().into_bytes();
    let fault = faults.lookup(Some(&model)).clone();
    fault::plan(&fault, Api::AnthropicMessages, &body, defaults)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let base = "/v1/projects/p/locations/us-east5/publishers/anthropic/models/";
        assert_eq!(
            route(&format!(
                "{base}claude-sonnet-4-5@20250929:streamRawPredict"
            )),
            Some(Op::Predict {
                model: "claude-sonnet-4-5@20250929".into()
            })
        );
        assert_eq!(
            route(&format!("{base}count-tokens:rawPredict")),
            Some(Op::CountTokens)
        );
        assert_eq!(route(&format!("{base}m:generateContent")), None);
        assert_eq!(
            route("/v1/projects/p/locations/l/publishers/google/models/m:rawPredict"),
            None
        );
    }
}
