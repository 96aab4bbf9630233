//! Which endpoint a request's path and method name: the path table, the 404 and 405 refusals,
//! and the path pieces (a model id, a response id, a custody request id) other phases read.

use super::state::Exchange;
use crate::dialect::{CallPath, Format};
use crate::error::{Error, ErrorKind};
use crate::http1::Method;

/// The API a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Endpoint {
    /// A model call of a dialect's API (`crate::dialect`'s path tables).
    Call(Format, CallPath),
    Models,
    /// `GET /v1/models/{id}`: one route, as both SDKs' `models.retrieve` parse it.
    Model,
    /// `GET /v1beta/models` (and `/v1/models` from a Gemini client): the routes in Gemini's
    /// list shape.
    GeminiModels,
    /// `GET /v1beta/models/{model}`: one route as a Gemini model.
    GeminiModel,
    Health,
    Ready,
    Metrics,
    /// `POST /admin/reload`: re-read the config file (admin keys only).
    Reload,
    /// `GET /v1/custody/{request_id}`: one request's custody record.
    Custody,
    /// `GET /v1/usage?from=…&to=…`: token and request sums.
    Usage,
    /// `GET`/`DELETE /v1/responses/{id}`, `GET /v1/responses/{id}/input_items`.
    StoredResponse,
}

impl Endpoint {
    /// The probes a load balancer calls without a key (`/healthz`, `/readyz`).
    pub(super) fn is_public(self) -> bool {
        matches!(self, Endpoint::Health | Endpoint::Ready)
    }

    /// The dialect an endpoint answers in, where it has one (refusals included).
    pub(super) fn dialect(self) -> Option<Format> {
        match self {
            Endpoint::Call(format, _) => Some(format),
            Endpoint::StoredResponse => Some(Format::Responses),
            Endpoint::GeminiModels | Endpoint::GeminiModel => Some(Format::Gemini),
            _ => None,
        }
    }

    /// Metrics label.
    pub(super) fn label(self) -> &'static str {
        match self {
            Endpoint::Call(_, call) => call.label,
            Endpoint::Models => "models",
            Endpoint::Model => "model",
            Endpoint::GeminiModels => "gemini_models",
            Endpoint::GeminiModel => "gemini_model",
            Endpoint::Health => "healthz",
            Endpoint::Ready => "readyz",
            Endpoint::Metrics => "metrics",
            Endpoint::Reload => "admin_reload",
            Endpoint::Custody => "custody",
            Endpoint::Usage => "usage",
            Endpoint::StoredResponse => "stored_response",
        }
    }
}

pub(super) fn endpoint(path: &str) -> Option<(Endpoint, Method)> {
    if let Some((format, call)) = crate::dialect::model_call(path) {
        return Some((Endpoint::Call(format, call), Method::Post));
    }
    Some(match path {
        "/v1/models" | "/models" | "/v1/v1/models" => (Endpoint::Models, Method::Get),
        "/healthz" => (Endpoint::Health, Method::Get),
        "/readyz" => (Endpoint::Ready, Method::Get),
        "/metrics" => (Endpoint::Metrics, Method::Get),
        "/admin/reload" => (Endpoint::Reload, Method::Post),
        "/v1/usage" => (Endpoint::Usage, Method::Get),
        p if p.starts_with(CUSTODY_PREFIX) => (Endpoint::Custody, Method::Get),
        // GET or DELETE: the method is checked where it is answered.
        p if is_stored_response(p) => (Endpoint::StoredResponse, Method::Get),
        p if model_id_in_path(p).is_some() => (Endpoint::Model, Method::Get),
        p => match crate::dialect::gemini::models_path(p) {
            Some(None) => (Endpoint::GeminiModels, Method::Get),
            Some(Some(_)) => (Endpoint::GeminiModel, Method::Get),
            None => return None,
        },
    })
}

/// `/v1/models[/{id}]` is OpenAI's and Gemini's both: a Gemini client (its key in
/// `x-goog-api-key` or `?key=`) gets Gemini's shape.
fn gemini_listing(endpoint: Endpoint, head: &crate::http1::RequestHead) -> Endpoint {
    let gemini = || {
        crate::dialect::gemini::is_gemini_caller(
            head.path(),
            head.header("x-goog-api-key").is_some(),
            head.query(),
        )
    };
    match endpoint {
        Endpoint::Models if gemini() => Endpoint::GeminiModels,
        Endpoint::Model if gemini() => Endpoint::GeminiModel,
        e => e,
    }
}

/// Does `path` name a model call (the requests a custody record is kept for)?
pub(super) fn is_model_call(path: &str) -> bool {
    matches!(endpoint(path), Some((Endpoint::Call(..), _)))
}

/// The endpoint a request names, refused as 404 (no such path) or 405 (wrong method).
pub(super) fn classify(ex: &Exchange<'_>) -> Result<Endpoint, Error> {
    let head = ex.head;
    let Some((endpoint, method)) = endpoint(head.path()).map(|(e, m)| (gemini_listing(e, head), m))
    else {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!(
                "no such endpoint: {} {}",
                method_name(head.method()),
                head.path()
            ),
        ));
    };
    if head.method() != method && endpoint != Endpoint::StoredResponse {
        return Err(Error::new(
            ErrorKind::MethodNotAllowed,
            format!(
                "{} {} is not allowed; use {}",
                method_name(head.method()),
                head.path(),
                method_name(method)
            ),
        ));
    }
    Ok(endpoint)
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Options => "OPTIONS",
        Method::Patch => "PATCH",
        Method::Other => "this method",
    }
}

/// `{id}` of `/v1/models/{id}` (or `/models/{id}`, the OpenAI SDK's form without `/v1`, or
/// `/v1/v1/models/{id}`, the Anthropic SDK's with a `/v1` base URL), still
/// percent-encoded; None for any other path, or an empty id.
pub(super) fn model_id_in_path(path: &str) -> Option<&str> {
    let id = path
        .strip_prefix("/v1/models/")
        .or_else(|| path.strip_prefix("/models/"))
        .or_else(|| path.strip_prefix("/v1/v1/models/"))?;
    (!id.is_empty()).then_some(id)
}

/// Decode `%XX` escapes (SDKs encode path parameters); None for a bad escape or non-UTF-8.
pub(super) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The path of the stored-responses endpoints; the response id follows it.
pub(super) const STORED_PREFIX: &str = "/v1/responses/";

/// Does `path` name a stored response (`/v1/responses/{id}`, or its `/input_items`)?
pub(super) fn is_stored_response(path: &str) -> bool {
    path.strip_prefix(STORED_PREFIX)
        .or_else(|| path.strip_prefix("/responses/"))
        .is_some_and(|rest| !rest.is_empty() && rest != "compact")
}

/// The lookup's path; the request id follows it.
pub(super) const CUSTODY_PREFIX: &str = "/v1/custody/";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_in_paths() {
        assert_eq!(model_id_in_path("/v1/models/gpt"), Some("gpt"));
        assert_eq!(model_id_in_path("/models/a%2Fb"), Some("a%2Fb"));
        assert_eq!(model_id_in_path("/v1/models/"), None);
        assert_eq!(model_id_in_path("/v1/models"), None);
        assert_eq!(percent_decode("a%2Fb%20c").as_deref(), Some("a/b c"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_decode("bad%zz"), None);
        assert_eq!(percent_decode("%ff"), None);
    }
}
