//! What a finished exchange leaves behind: its log line, access-log line, metrics and custody
//! record, and the route label they share.

use std::time::Duration;

use super::ctx::Ctx;
use super::endpoint;
use super::state::Exchange;
use crate::error::ErrorKind;
use crate::routing::Resolved;
use crate::usage::Metered;

/// A route's label in metrics and the access log.
pub(super) fn route_label(resolved: &Resolved<'_>) -> String {
    match resolved {
        // The client's model is the route's name: bounded by the config.
        Resolved::Route(r) | Resolved::Within(r, _) => r.model.clone(),
        Resolved::Direct(..) => crate::metrics::DIRECT_ROUTE_LABEL.to_owned(),
    }
}

/// The served answer's translation ledger, kept for the record (`estimate`: the gateway
/// counted the tokens itself).
pub(super) fn note_ledger(
    ex: &Exchange<'_>,
    meta: Option<&crate::translate::RequestMeta>,
    estimate: bool,
) {
    let mut ledger = ex.response.ledger.borrow_mut();
    match meta {
        Some(m) => *ledger = m.ledger.clone(),
        None => *ledger = crate::translate::Ledger::default(),
    }
    if estimate {
        ledger.note(crate::translate::Code::TokensEstimated, "input_tokens");
    }
}

/// Record what happened to one request: metrics, and its access log line.
pub(super) fn log(ctx: &Ctx, ex: &Exchange<'_>) {
    let took = ex.timings.started.elapsed();
    let error = ex.response.error.get().or(ex.response.failed_midway.get());
    super::state::settle_limits(ctx, ex);
    if ex.response.metered.get().estimated {
        ex.response
            .ledger
            .borrow_mut()
            .note(crate::translate::Code::UsageEstimated, "usage");
    }
    count(ctx, ex, took, error);
    if let Some(n) = ex
        .pii
        .as_ref()
        .map(|s| s.thinking_cut_short())
        .filter(|n| *n > 0)
    {
        ctx.metrics.pii_thinking_cut_short(n);
        crate::log::warn(format_args!(
            "{} PII: {n} thinking block(s) restored only up to {} bytes of sealed edits; the rest of their stand-ins reached the client as the provider wrote them",
            ex.request_id,
            crate::pii::MAX_THINKING_EDITS_BYTES
        ));
    }
    if crate::access_log::enabled() {
        crate::access_log::submit(access_line(ctx, ex, took, error));
    }
    if crate::custody::enabled() && endpoint::is_model_call(ex.head.path()) {
        // Refused before authentication passed: no record, or anyone who reaches the port
        // could fill the disk with them. The access log and the metrics still have it.
        if ex.authenticated {
            crate::custody::submit(custody_record(ex, took, error));
        } else {
            ctx.metrics.custody_unauthenticated();
        }
    }
}

/// The request's custody record (see `crate::custody`): built here, written off the worker.
fn custody_record(
    ex: &Exchange<'_>,
    took: Duration,
    error: Option<ErrorKind>,
) -> crate::custody::Record {
    let status = ex.response.status.get();
    let started = std::time::SystemTime::now()
        .checked_sub(took)
        .unwrap_or(std::time::UNIX_EPOCH);
    crate::custody::Record {
        id: ex.request_id.clone(),
        time_ms: crate::calendar::unix_millis(started),
        // The writer thread fills in the node id: no copy of it per request on the worker.
        node: String::new(),
        key: ex.key.clone(),
        dialect: ex.format.as_str(),
        endpoint: ex.endpoint,
        model: ex.model.clone(),
        tier: ex.tier.clone(),
        route: ex.route.clone(),
        attempts: ex.attempts.trail.clone(),
        served_by: ex.attempts.served.clone(),
        stream: ex.response.streamed.get(),
        ttft: ex.stream_ttft(),
        duration: took,
        usage: ex.response.metered.get().usage,
        usage_estimated: ex.response.metered.get().estimated,
        ledger: ex.response.ledger.take(),
        pii: ex
            .pii_counts
            .iter()
            .map(|(kind, n)| (kind.to_owned(), u64::from(n)))
            .collect(),
        status,
        error: error_label(status, error),
    }
}

/// The error a log line and a custody record say: the gateway's kind, or, for a provider's
/// own error answer relayed (not the gateway's error, not a success either), `provider_status`.
fn error_label(status: u16, error: Option<ErrorKind>) -> Option<&'static str> {
    error
        .map(ErrorKind::as_str)
        .or((status >= 400).then_some("provider_status"))
}

/// The request in this worker's metrics.
fn count(ctx: &Ctx, ex: &Exchange<'_>, took: Duration, error: Option<ErrorKind>) {
    let m = &ctx.metrics;
    let status = ex.response.status.get();
    m.request(ex.endpoint, status, took);
    if let Some(route) = &ex.route {
        for e in ex.response.ledger.borrow().iter() {
            m.ledger(route, e.code.as_str());
        }
    }
    if let Some(kind) = ex.response.failed_midway.get() {
        m.error(kind.as_str(), kind.side().as_str());
    }
    if let Some(t) = ex.timings.first_event.get() {
        m.first_event(t);
    }
    let (Some(route), Some((provider, _))) = (&ex.route, &ex.attempts.routed) else {
        // Not a model call that reached routing: no LLM series.
        return;
    };
    let Metered {
        usage, estimated, ..
    } = ex.response.metered.get();
    let succeeded = (200..300).contains(&status) && error.is_none();
    // Streams only: a whole answer's first token is its last.
    let ttft = ex
        .timings
        .first_token
        .get()
        .filter(|_| ex.response.streamed.get() && succeeded);
    // The GenAI definition: the time after the first token, shared by the tokens after it
    // (the provider's count: an estimate would make it up).
    let tpot = match (ttft, usage) {
        (Some(first), Some(u)) if u.output > 1 && !estimated => {
            let rest = took.saturating_sub(first);
            Some(rest / u32::try_from(u.output - 1).unwrap_or(u32::MAX))
        }
        _ => None,
    };
    m.call(
        route,
        provider,
        ex.key.as_deref().unwrap_or(crate::metrics::NO_KEY_LABEL),
        crate::metrics::Call {
            ttft,
            tpot,
            usage,
            estimated,
        },
    );
}

/// The request's access log line.
fn access_line(ctx: &Ctx, ex: &Exchange<'_>, took: Duration, error: Option<ErrorKind>) -> Vec<u8> {
    let status = ex.response.status.get();
    let metered = ex.response.metered.get();
    let stop = metered.stop;
    let entry = crate::access_log::Entry {
        request_id: &ex.request_id,
        node: &ctx.config.cluster.node_id,
        key: ex.key.as_deref(),
        dialect: ex.format.as_str(),
        endpoint: ex.endpoint,
        path: ex.head.path(),
        model: ex.model.as_deref(),
        route: ex.route.as_deref(),
        provider: ex.attempts.routed.as_ref().map(|(p, _)| p.as_str()),
        upstream_model: ex.attempts.routed.as_ref().map(|(_, m)| m.as_str()),
        attempts: ex.attempts.sends.get(),
        status,
        bytes: ex.response.bytes_sent.get(),
        stream: ex.response.streamed.get(),
        ttft: ex.stream_ttft(),
        duration: Some(took),
        usage: metered.usage,
        usage_estimated: metered.estimated,
        stop: stop.as_ref().map(|s| s.as_str()),
        error: error_label(status, error),
    };
    crate::access_log::format(&entry, std::time::SystemTime::now())
}
