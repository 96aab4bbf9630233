//! The endpoints that are not a model call: which endpoint a path names, and the answers to
//! `/healthz`, `/readyz`, `/metrics` and the model list.

use std::sync::atomic::Ordering;

use super::{admit, respond, Ctx, Exchange, Failure};
use crate::config::{Config, GatewayKey};
use crate::downstream::{ClientConn, Transport};
use crate::error::{Error, ErrorKind};
use crate::format::Format;
use crate::http1::Method;
use crate::routing::{Capabilities, Resolved};

/// The API a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Endpoint {
    Chat(Format),
    CountTokens,
    /// `POST /v1/responses/compact`.
    Compact,
    Models,
    /// `GET /v1/models/{id}`: one route, as both SDKs' `models.retrieve` parse it.
    Model,
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
    /// Metrics label.
    pub(super) fn label(self) -> &'static str {
        match self {
            Endpoint::Chat(Format::OpenAi) => "chat_completions",
            Endpoint::Chat(Format::Anthropic) => "messages",
            Endpoint::Chat(Format::Responses) => "responses",
            Endpoint::CountTokens => "count_tokens",
            Endpoint::Compact => "responses_compact",
            Endpoint::Models => "models",
            Endpoint::Model => "model",
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
    Some(match path {
        "/v1/chat/completions" | "/chat/completions" => {
            (Endpoint::Chat(Format::OpenAi), Method::Post)
        }
        // `/v1/v1/…`: the Anthropic SDK given a base URL ending in `/v1`, as several
        // gateways' docs say; only the Anthropic SDK's paths get that alias.
        "/v1/messages" | "/v1/v1/messages" => (Endpoint::Chat(Format::Anthropic), Method::Post),
        "/v1/responses" | "/responses" => (Endpoint::Chat(Format::Responses), Method::Post),
        "/v1/responses/compact" | "/responses/compact" => (Endpoint::Compact, Method::Post),
        "/v1/messages/count_tokens" | "/v1/v1/messages/count_tokens" => {
            (Endpoint::CountTokens, Method::Post)
        }
        "/v1/models" | "/models" | "/v1/v1/models" => (Endpoint::Models, Method::Get),
        "/healthz" => (Endpoint::Health, Method::Get),
        "/readyz" => (Endpoint::Ready, Method::Get),
        "/metrics" => (Endpoint::Metrics, Method::Get),
        "/admin/reload" => (Endpoint::Reload, Method::Post),
        "/v1/usage" => (Endpoint::Usage, Method::Get),
        p if p.starts_with(super::custody::PATH_PREFIX) => (Endpoint::Custody, Method::Get),
        // GET or DELETE: the method is checked where it is answered.
        p if super::stored::is_endpoint(p) => (Endpoint::StoredResponse, Method::Get),
        p if model_id_in_path(p).is_some() => (Endpoint::Model, Method::Get),
        _ => return None,
    })
}

/// Does `path` name a model call (the requests a custody record is kept for)?
pub(super) fn is_model_call(path: &str) -> bool {
    matches!(
        endpoint(path),
        Some((
            Endpoint::Chat(_) | Endpoint::CountTokens | Endpoint::Compact,
            _
        ))
    )
}

/// The endpoint a request names, refused as 404 (no such path) or 405 (wrong method).
pub(super) fn classify(ex: &Exchange<'_>) -> Result<Endpoint, Error> {
    let head = ex.head;
    let Some((endpoint, method)) = endpoint(head.path()) else {
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

/// Answer an endpoint that is not a model call.
pub(super) async fn answer<S: Transport>(
    ctx: &Ctx,
    conn: &mut ClientConn<S>,
    ex: &mut Exchange<'_>,
    endpoint: Endpoint,
) -> Result<(), Failure> {
    let head = ex.head;
    let (status, content_type, body): (u16, &str, Vec<u8>) = match endpoint {
        Endpoint::Health => (200, "text/plain; charset=utf-8", b"ok\n".to_vec()),
        Endpoint::Ready => {
            if ctx.board.is_draining() {
                // A load balancer stops sending here while what is in flight finishes.
                (503, "text/plain; charset=utf-8", b"draining\n".to_vec())
            } else if ctx.ready.load(Ordering::Acquire) >= ctx.config.server.workers {
                (200, "text/plain; charset=utf-8", b"ready\n".to_vec())
            } else {
                (503, "text/plain; charset=utf-8", b"starting\n".to_vec())
            }
        }
        Endpoint::Models => {
            let key = admit::authenticate(ctx, ex)?;
            (200, "application/json", models_body(&ctx.config, key))
        }
        Endpoint::Model => {
            let key = admit::authenticate(ctx, ex)?;
            let id = model_id_in_path(head.path())
                .and_then(percent_decode)
                .unwrap_or_default();
            // A model the key may not use does not exist for it (no existence leak).
            let allowed = key.is_none_or(|k| k.allows(&id));
            let object = match ctx.config.resolve(&id).filter(|_| allowed) {
                // Under the name asked for: a route's `model` or one of its aliases.
                Some(Resolved::Route(route)) => Some(model_object(&id, &route.capabilities)),
                // `provider/model` works for chat, so it is a model here too; nothing is
                // known of its capabilities.
                Some(Resolved::Direct(..)) if admit::check_model(&id).is_ok() => {
                    Some(model_object(&id, &Capabilities::default()))
                }
                _ => None,
            };
            let Some(object) = object else {
                return Err(Error::new(
                    ErrorKind::ModelNotFound,
                    "The model does not exist or is not routed by this gateway",
                )
                .with_param("model")
                .into());
            };
            let body = serde_json::to_vec(&object).unwrap_or_default();
            (200, "application/json", body)
        }
        Endpoint::Metrics => {
            admit::authenticate(ctx, ex)?;
            let own = ctx.metrics_snapshot();
            let merged = ctx.hub.merged(ctx.worker, own);
            let mut text = crate::metrics::render(&merged, ctx.ready.load(Ordering::Acquire));
            ctx.board.render(&mut text);
            (
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                text.into_bytes(),
            )
        }
        Endpoint::Reload => {
            let key = admit::authenticate(ctx, ex)?;
            if !key.is_some_and(|k| k.admin) {
                return Err(Error::new(
                    ErrorKind::Forbidden,
                    "the admin endpoints need a gateway key with `admin = true`",
                )
                .into());
            }
            let generation = reload(ctx).await?;
            let body = serde_json::to_vec(&serde_json::json!({
                "reloaded": true,
                "generation": generation,
            }))
            .unwrap_or_default();
            (200, "application/json", body)
        }
        Endpoint::Custody => super::custody::record(ctx, ex).await?,
        Endpoint::Usage => super::custody::usage(ctx, ex).await?,
        Endpoint::StoredResponse => super::stored::answer(ctx, ex).await?,
        Endpoint::Chat(_) | Endpoint::CountTokens | Endpoint::Compact => {
            return Err(Error::new(
                ErrorKind::Internal,
                "a model call reached the admin answers",
            )
            .into())
        }
    };
    respond::respond(conn, ex, status, content_type, &body).await?;
    Ok(())
}

/// Longest an admin reload waits for the control thread to load the file and for every worker
/// to serve the result.
const RELOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// How often the admin reload looks whether it is done.
const RELOAD_POLL: std::time::Duration = std::time::Duration::from_millis(10);

/// Reload through the same path as SIGHUP: signal the process, whose control thread reads and
/// validates the file (disk reads never happen on a worker), then wait until every worker
/// serves the new generation. The answer says which, or why the file was refused.
async fn reload(ctx: &Ctx) -> Result<u64, Error> {
    use nix::sys::signal::{kill, Signal};
    let board = &ctx.board;
    if board.is_draining() {
        return Err(super::shutting_down());
    }
    // A ticket: answered only by a reload that reads the file after this point (signals
    // coalesce, so a reload already under way must not answer for this one).
    let ticket = board.request();
    kill(nix::unistd::Pid::this(), Signal::SIGHUP).map_err(|e| {
        Error::new(
            ErrorKind::Internal,
            format!("cannot signal the reload: {e}"),
        )
    })?;
    let deadline = std::time::Instant::now() + RELOAD_WAIT;
    let timed_out = || {
        Error::new(
            ErrorKind::Busy,
            "the reload did not finish in time; see the log",
        )
    };
    let outcome = loop {
        if let Some(outcome) = board.answer(ticket) {
            break outcome;
        }
        if std::time::Instant::now() >= deadline {
            return Err(timed_out());
        }
        crate::runtime::timer::sleep(RELOAD_POLL).await;
    };
    let generation = outcome.map_err(|why| {
        Error::new(
            ErrorKind::BadRequest,
            format!("config refused; the running config keeps serving: {why}"),
        )
    })?;
    while !board.all_on(generation) {
        if std::time::Instant::now() >= deadline {
            return Err(timed_out());
        }
        crate::runtime::timer::sleep(RELOAD_POLL).await;
    }
    Ok(generation)
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
fn model_id_in_path(path: &str) -> Option<&str> {
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

/// One route as a model object with the fields both SDKs read: OpenAI's (`id`, `object`,
/// `created`, `owned_by`) and Anthropic's (`id`, `type`, `display_name`, `created_at`).
fn model_object(model: &str, c: &Capabilities) -> serde_json::Value {
    serde_json::json!({
        "id": model,
        "object": "model",
        "type": "model",
        "created": 0,
        "created_at": "1970-01-01T00:00:00Z",
        "display_name": model,
        "owned_by": "ringway",
        "capabilities": {
            "vision": c.vision,
            "tools": c.tools,
            "thinking": c.thinking,
            "context_window": c.context_window,
            "max_output": c.max_output,
        },
    })
}

/// `GET /v1/models`: OpenAI's list shape, with the fields Anthropic's SDK reads as well.
/// The route names the calling key may use (all of them without keys), each route's aliases
/// after its name: clients that pick from the list send native ids too.
fn models_body(cfg: &Config, key: Option<&GatewayKey>) -> Vec<u8> {
    let names: Vec<(&str, &Capabilities)> = cfg
        .routing
        .routes()
        .iter()
        .flat_map(|r| {
            std::iter::once(r.model.as_str())
                .chain(r.aliases.iter().map(String::as_str))
                .map(move |name| (name, &r.capabilities))
        })
        .filter(|(name, _)| key.is_none_or(|k| k.allows(name)))
        .collect();
    let data: Vec<serde_json::Value> = names
        .iter()
        .map(|(name, caps)| model_object(name, caps))
        .collect();
    let first = names.first().map(|(name, _)| *name);
    let last = names.last().map(|(name, _)| *name);
    serde_json::to_vec(&serde_json::json!({
        "object": "list",
        "data": data,
        "has_more": false,
        "first_id": first,
        "last_id": last,
    }))
    .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
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
