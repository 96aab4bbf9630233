//! The endpoints that are not a model call: which endpoint a path names, and the answers to
//! `/healthz`, `/readyz`, `/metrics` and the model list.

use std::sync::atomic::Ordering;

use super::ctx::Ctx;
use super::endpoint::{self, Endpoint};
use super::state::{Exchange, Failure};
use super::{admit, custody, respond, stored};
use crate::config::{Config, GatewayKey};
use crate::downstream::{ClientConn, Transport};
use crate::error::{Error, ErrorKind};
use crate::routing::{Capabilities, Resolved};

/// Answer an endpoint that is not a model call.
pub(super) async fn answer<S: Transport>(
    ctx: &Ctx,
    conn: &mut ClientConn<S>,
    ex: &mut Exchange<'_>,
    endpoint: Endpoint,
    key: Option<&GatewayKey>,
) -> Result<(), Failure> {
    let head = ex.head;
    let (status, content_type, body): (u16, &str, Vec<u8>) = match endpoint {
        Endpoint::Health => (200, "text/plain; charset=utf-8", b"ok\n".to_vec()),
        Endpoint::Ready => {
            // Draining first: a load balancer stops sending here while what is in flight
            // finishes. The requirements come from this request's snapshot, so a reload that
            // changes `ready_requires` counts from its next probe.
            let health = crate::cluster::health();
            let verdict = crate::cluster::verdict(
                ctx.board.is_draining(),
                ctx.ready.load(Ordering::Acquire),
                ctx.config.server.workers,
                &ctx.config.cluster,
                health,
            );
            let (status, body) = crate::cluster::readyz(verdict, health);
            (status, "text/plain; charset=utf-8", body.into_bytes())
        }
        Endpoint::Models => (200, "application/json", models_body(&ctx.config, key)),
        Endpoint::GeminiModels => (
            200,
            "application/json",
            gemini_models_body(&ctx.config, key),
        ),
        Endpoint::Model | Endpoint::GeminiModel => {
            let gemini = endpoint == Endpoint::GeminiModel;
            let raw = if gemini {
                crate::dialect::gemini::models_path(head.path()).flatten()
            } else {
                endpoint::model_id_in_path(head.path())
            };
            let id = raw.and_then(endpoint::percent_decode).unwrap_or_default();
            // Gemini's clients name models `models/{id}` as often as `{id}`.
            let id = match id.strip_prefix("models/") {
                Some(bare) if gemini => bare.to_owned(),
                _ => id,
            };
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
            let object = if gemini {
                gemini_model_object(&id, &object)
            } else {
                object
            };
            let body = serde_json::to_vec(&object).unwrap_or_default();
            (200, "application/json", body)
        }
        Endpoint::Metrics => {
            let own = ctx.metrics_snapshot();
            let merged = ctx.hub.merged(ctx.worker, own);
            let mut text = crate::metrics::render(&merged, ctx.ready.load(Ordering::Acquire));
            ctx.board.render(&mut text);
            crate::cluster::render_metrics(
                &mut text,
                &ctx.config.cluster.node_id,
                crate::cluster::health(),
            );
            if let Some(link) = ctx.limits.limiter().link() {
                link.render(&mut text);
            }
            (
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                text.into_bytes(),
            )
        }
        Endpoint::Reload => {
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
        Endpoint::Custody => custody::record(ctx, ex, key).await?,
        Endpoint::Usage => custody::usage(ctx, ex, key).await?,
        Endpoint::StoredResponse => stored::answer(ctx, ex, key).await?,
        Endpoint::Call(..) => {
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
        return Err(super::ctx::shutting_down());
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
        crate::rt::timer::sleep(RELOAD_POLL).await;
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
        crate::rt::timer::sleep(RELOAD_POLL).await;
    }
    Ok(generation)
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

/// A model object in Gemini's shape (`name` = `models/{id}`), from the OpenAI-shaped one.
fn gemini_model_object(model: &str, o: &serde_json::Value) -> serde_json::Value {
    let caps = &o["capabilities"];
    serde_json::json!({
        "name": format!("models/{model}"),
        "baseModelId": model,
        "version": "001",
        "displayName": model,
        "description": "routed by ringway",
        "inputTokenLimit": caps["context_window"],
        "outputTokenLimit": caps["max_output"],
        "supportedGenerationMethods": ["generateContent", "countTokens"],
        "thinking": caps["thinking"],
    })
}

/// `GET /v1beta/models`: Gemini's list shape, the same routes as [`models_body`].
fn gemini_models_body(cfg: &Config, key: Option<&GatewayKey>) -> Vec<u8> {
    let models: Vec<serde_json::Value> = cfg
        .routing
        .routes()
        .iter()
        .flat_map(|r| {
            std::iter::once(r.model.as_str())
                .chain(r.aliases.iter().map(String::as_str))
                .map(move |name| (name, &r.capabilities))
        })
        .filter(|(name, _)| key.is_none_or(|k| k.allows(name)))
        .map(|(name, caps)| gemini_model_object(name, &model_object(name, caps)))
        .collect();
    serde_json::to_vec(&serde_json::json!({ "models": models })).unwrap_or_default()
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
