//! Where the request path meets tracing ([`crate::trace`]): the hooks the pipeline calls (a
//! call begins, an attempt leaves and ends, the head is committed, the exchange is recorded)
//! and the spans built from the exchange at its end. Each hook is a no-op for a call that is
//! not sampled (`ex.trace` is None).

use std::time::Instant;

use super::ctx::Ctx;
use super::state::{Exchange, Op};
use crate::trace::span::{Code, Event, Kind, Span, Value};
use crate::trace::{context, Attempt, Live};

/// A model call begins: sampled or not, once (chat calls only; token counts are not traced).
pub(super) fn begin(ctx: &Ctx, ex: &mut Exchange<'_>, op: Op) {
    if op == Op::CountTokens {
        return;
    }
    ex.trace = crate::trace::begin(
        ctx.config.tracing.as_ref(),
        ex.head.header("traceparent"),
        ex.head.header("tracestate"),
        ex.timings.started,
    );
}

/// An attempt is about to be sent with `body`: its `traceparent` when the config propagates
/// (the client's own is then not forwarded), and the prompt kept when the route exports
/// content. The body is the one sent upstream, so it holds PII stand-ins, never originals.
pub(super) fn outgoing(
    ex: &Exchange<'_>,
    body: impl FnOnce() -> bytes::Bytes,
) -> Option<[u8; context::TRACEPARENT_BYTES]> {
    let live = ex.trace.as_deref()?;
    if live.settings.content_for(ex.route.as_deref()) {
        Live::keep_content(&live.prompt, &body());
    }
    live.attempt_traceparent()
}

/// An attempt on `target` ended (as the custody trail notes it).
pub(super) fn attempt(
    ex: &mut Exchange<'_>,
    target: &crate::routing::Target,
    started: Instant,
    status: Option<u16>,
    failure: Option<&'static str>,
) {
    if let Some(live) = ex.trace.as_deref_mut() {
        live.attempt(Attempt {
            span_id: [0; 8],
            provider: target.provider,
            target: target.key.clone(),
            model: target.model.clone(),
            start: started,
            end: Instant::now(),
            status,
            failure,
        });
    }
}

/// The response head went to the client.
pub(super) fn committed(ex: &Exchange<'_>) {
    if let Some(live) = ex.trace.as_deref() {
        if live.committed.get().is_none() {
            live.committed.set(Some(Instant::now()));
        }
    }
}

/// Part of an answer as the provider sent it (before PII restore), kept when the route exports
/// content: a whole body, or a relayed body's pieces as they pass.
pub(super) fn completion(ex: &Exchange<'_>, body: &[u8]) {
    if let Some(live) = ex.trace.as_deref() {
        if live.settings.content_for(ex.route.as_deref()) {
            Live::add_content(&live.completion, body);
        }
    }
}

/// Does this call export content (sampled, on a route that opts in)? A stream then keeps the
/// provider's events for [`stream_completion`].
pub(super) fn exports_content(ex: &Exchange<'_>) -> bool {
    ex.trace
        .as_deref()
        .is_some_and(|live| live.settings.content_for(ex.route.as_deref()))
}

/// A relayed stream's completion: the provider's events as it sent them (SSE text, before PII
/// restore), bounded, kept by the pump when [`exports_content`] said so.
pub(super) fn stream_completion(ex: &Exchange<'_>, events: Option<String>) {
    if let (Some(live), Some(events)) = (ex.trace.as_deref(), events) {
        *live.completion.borrow_mut() = Some(events);
    }
}

/// The translation ledger of the answer committed to: an entry per thing translation dropped,
/// changed or approximated, as `code:field` (the codes of docs/providers-and-translation.md).
pub(super) fn ledger(ex: &mut Exchange<'_>, meta: Option<&crate::translate::RequestMeta>) {
    let (Some(live), Some(m)) = (ex.trace.as_deref_mut(), meta) else {
        return;
    };
    live.ledger = m
        .ledger
        .entries()
        .map(|(code, field, _)| format!("{code}:{field}"))
        .collect();
}

/// The exchange is recorded: its spans go to the exporter.
pub(super) fn finish(ctx: &Ctx, ex: &mut Exchange<'_>) {
    let Some(live) = ex.trace.take() else {
        return;
    };
    let end = Instant::now();
    let mut spans = Vec::with_capacity(1 + live.attempts.len());
    let served = ex
        .attempts
        .routed
        .as_ref()
        .and_then(|(p, _)| ctx.config.providers.iter().find(|c| &c.name == p));
    let request_model = ex.model.clone().unwrap_or_default();
    let mut attributes = vec![
        ("gen_ai.operation.name", Value::from("chat")),
        ("gen_ai.request.model", Value::from(request_model.as_str())),
        ("ringway.request_id", Value::from(ex.request_id.as_str())),
        ("ringway.dialect", Value::from(ex.format.as_str())),
        (
            "ringway.attempts",
            Value::from(u64::from(ex.attempts.sends.get())),
        ),
    ];
    if let Some(p) = served {
        attributes.push(("gen_ai.provider.name", Value::from(provider_name(p.kind))));
        attributes.push(("ringway.provider", Value::from(p.name.as_str())));
        attributes.push(("server.address", Value::from(p.host.as_str())));
        attributes.push(("server.port", Value::from(u64::from(p.port))));
    }
    if let Some((_, model)) = &ex.attempts.routed {
        attributes.push(("gen_ai.response.model", Value::from(model.as_str())));
    }
    if let Some(route) = &ex.route {
        attributes.push(("ringway.route", Value::from(route.as_str())));
    }
    if let Some(key) = &ex.key {
        attributes.push(("ringway.key", Value::from(key.as_str())));
    }
    let metered = ex.response.metered.get();
    if let Some(u) = metered.usage {
        attributes.extend([
            ("gen_ai.usage.input_tokens", Value::from(u.input)),
            ("gen_ai.usage.output_tokens", Value::from(u.output)),
            (
                "gen_ai.usage.cache_read.input_tokens",
                Value::from(u.cache_read),
            ),
            (
                "gen_ai.usage.cache_creation.input_tokens",
                Value::from(u.cache_write),
            ),
            (
                "gen_ai.usage.reasoning.output_tokens",
                Value::from(u.reasoning),
            ),
        ]);
        if metered.estimated {
            attributes.push(("ringway.usage.estimated", Value::Bool(true)));
        }
    }
    if let Some(stop) = &metered.stop {
        attributes.push((
            "gen_ai.response.finish_reasons",
            Value::StrList(vec![stop.as_str().to_owned()]),
        ));
    }
    let status = ex.response.status.get();
    if status != 0 {
        attributes.push(("http.response.status_code", Value::from(u64::from(status))));
    }
    attributes.push(("ringway.stream", Value::Bool(ex.response.streamed.get())));
    // The translation ledger (see `ledger`): one entry per thing translation changed.
    if !live.ledger.is_empty() {
        attributes.push((
            "ringway.translation.ledger",
            Value::StrList(live.ledger.clone()),
        ));
    }
    let (code, message) = match ex.response.error.get().or(ex.response.failed_midway.get()) {
        Some(kind) => {
            attributes.push(("error.type", Value::from(kind.as_str())));
            if kind.side() == crate::error::Side::Client {
                (Code::Unset, String::new())
            } else {
                (Code::Error, kind.as_str().to_owned())
            }
        }
        None if status >= 500 => (Code::Error, format!("status {status}")),
        None => (Code::Unset, String::new()),
    };
    let mut events = Vec::new();
    if let Some(t) = live.committed.get() {
        events.push(event(&live, t, "ringway.commit"));
    }
    if let Some(d) = ex.timings.first_token.get() {
        events.push(event(&live, live.start + d, "ringway.first_token"));
    }
    if let Some(p) = live.prompt.borrow_mut().take() {
        events.push(Event {
            time: live.unix(live.start),
            name: "gen_ai.content.prompt",
            attributes: vec![("gen_ai.prompt", Value::Str(p))],
        });
    }
    if let Some(c) = live.completion.borrow_mut().take() {
        events.push(Event {
            time: live.unix(end),
            name: "gen_ai.content.completion",
            attributes: vec![("gen_ai.completion", Value::Str(c))],
        });
    }
    events.sort_by_key(|e| e.time);
    let last = live.attempts.len().saturating_sub(1);
    for (i, a) in live.attempts.iter().enumerate() {
        let provider = ctx.config.provider(a.provider);
        let mut attrs = vec![
            ("gen_ai.operation.name", Value::from("chat")),
            ("gen_ai.request.model", Value::from(a.model.as_str())),
            ("ringway.attempt.target", Value::from(a.target.as_str())),
            ("ringway.attempt.index", Value::from(i as u64 + 1)),
            ("ringway.attempt.retried", Value::Bool(i < last)),
        ];
        if let Some(p) = provider {
            attrs.push(("gen_ai.provider.name", Value::from(provider_name(p.kind))));
            attrs.push(("server.address", Value::from(p.host.as_str())));
            attrs.push(("server.port", Value::from(u64::from(p.port))));
        }
        if let Some(s) = a.status {
            attrs.push(("http.response.status_code", Value::from(u64::from(s))));
        }
        let (code, message) = match a.failure {
            Some(reason) => {
                attrs.push(("error.type", Value::from(reason)));
                (Code::Error, reason.to_owned())
            }
            None => (Code::Unset, String::new()),
        };
        // The attempt that served lasts as long as its answer is relayed.
        let a_end = if a.failure.is_none() && i == last {
            end
        } else {
            a.end
        };
        spans.push(Span {
            trace_id: live.trace_id,
            span_id: a.span_id,
            parent: Some(live.span_id),
            trace_state: live.state.clone(),
            name: format!("chat {}", a.model),
            kind: Kind::Client,
            start: live.unix(a.start),
            end: live.unix(a_end),
            attributes: attrs,
            events: Vec::new(),
            status: code,
            message,
        });
    }
    spans.insert(
        0,
        Span {
            trace_id: live.trace_id,
            span_id: live.span_id,
            parent: live.parent,
            trace_state: live.state.clone(),
            name: format!("chat {request_model}"),
            kind: Kind::Server,
            start: live.unix(live.start),
            end: live.unix(end),
            attributes,
            events,
            status: code,
            message,
        },
    );
    crate::trace::submit(&live.settings, spans);
}

fn event(live: &Live, t: Instant, name: &'static str) -> Event {
    Event {
        time: live.unix(t),
        name,
        attributes: Vec::new(),
    }
}

/// `gen_ai.provider.name` of a provider kind (the conventions' well-known values).
fn provider_name(kind: crate::provider::Kind) -> &'static str {
    use crate::provider::Kind;
    match kind {
        Kind::OpenAi => "openai",
        Kind::Anthropic => "anthropic",
        Kind::Bedrock => "aws.bedrock",
        Kind::Vertex => "gcp.vertex_ai",
        Kind::Gemini => "gcp.gemini",
    }
}
