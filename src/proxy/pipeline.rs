//! The model-call pipeline, which reads as the request's life: classify → authenticate →
//! admit → route → attempt* → commit → pump → finish. Until commit (the first byte to the
//! client) a failure may move to a retry or the next target, and what reaches the client is a
//! clean answer in its dialect; after it, a broken stream ends with its dialect's error event
//! and a clean end.

use std::sync::Arc;
use std::time::Instant;

use crate::downstream::{ClientConn, Transport};
use crate::error::{Error, ErrorKind};
use crate::http1::{BodyFraming, RequestHead, ResponseBody, ResponseHead};
use crate::routing::{Candidate, Outcome, Place, Plan, Policy, Resolved, Step, Target};
use crate::translate::Pair;

use super::admit::{self, Admitted};
use super::attempt::{self, Answer, Body, Miss};
use super::ctx::{shutting_down, Ctx};
use super::endpoint::{self, Endpoint};
use super::record::{log, route_label};
use super::state::{After, Exchange, Failure};
use super::{admin, auth, estimate, pump, respond, stored};

/// Serve one HTTP request (a WebSocket message runs as one too).
pub(super) async fn exchange<S: Transport>(
    ctx: &Ctx,
    conn: &mut ClientConn<S>,
    head: &RequestHead,
) -> After {
    let label = endpoint::endpoint(head.path()).map_or("other", |(e, _)| e.label());
    let mut ex = Exchange::new(
        head,
        ctx.request_id(),
        label,
        &ctx.draining,
        &ctx.cut,
        &ctx.config.server.headers,
    );
    let sent_before = conn.sent;
    let result = serve(ctx, conn, &mut ex).await;
    let after = finish(ctx, conn, &mut ex, result).await;
    ex.response
        .bytes_sent
        .set(conn.sent.wrapping_sub(sent_before));
    log(ctx, &ex);
    super::trace::finish(ctx, &mut ex);
    after
}

/// Classify, then answer: an admin endpoint directly, a model call through its phases.
async fn serve<S: Transport>(
    ctx: &Ctx,
    conn: &mut ClientConn<S>,
    ex: &mut Exchange<'_>,
) -> Result<(), Failure> {
    let endpoint = endpoint::classify(ex)?;
    if let Some(format) = endpoint.dialect() {
        ex.format = format;
    }
    // Authentication, once, for every endpoint but the probes.
    let key = if endpoint.is_public() {
        None
    } else {
        auth::authenticate(ctx, ex)?
    };
    let op = match endpoint {
        Endpoint::Call(_, call) => call.op,
        other => return admin::answer(ctx, conn, ex, other, key).await,
    };
    super::trace::begin(ctx, ex, op);
    // The admitted request lives in this block only: kept to its end, it would have a place
    // in every later state of this function, a held stream's included.
    let (resolved, answer, prompt) = {
        // Until commit, a drain whose time is up ends the request with a 503 in its dialect.
        let req = ctx
            .cut
            .race(admit::admit(ctx, conn, ex, op, key))
            .await
            .ok_or_else(shutting_down)??;
        let resolved = route(ctx, &req)?;
        ex.route = Some(route_label(&resolved));
        // Boxed: the failover loop's state is the largest of any phase, and inline it would
        // size every connection's task for it, held streams included (it is freed at commit).
        let answer = ctx
            .cut
            .race(Box::pin(attempts(ctx, ex, &req, &resolved)))
            .await
            .ok_or_else(shutting_down)??;
        // Committed: the client's body has been sent (or translated) for the last time. A
        // stream whose provider says its input only at its end keeps it (a reference, not a
        // copy) until the stream ends, to count its prompt should it be cut short.
        let prompt = (matches!(answer.body, Body::Stream(_))
            && !answer.pair.provider.reports_input_first())
        .then(|| req.body.clone());
        (resolved, answer, prompt)
    };
    let target = answer.target;
    // A stream that ended early, charged once its provider and breaker are dealt with.
    let mut cut_short = None;
    // A connection's task is as large as the largest state of any phase, and a held stream
    // carries all of it for minutes: a stream is committed without an await and its relay
    // holds only what relaying needs; other bodies' commit is boxed (freed when written).
    let result = match answer.body {
        Body::Stream(_) => match commit_stream(conn, ex, answer) {
            Ok(mut relay) => {
                let outcome = relay_stream(ctx, conn, ex, &mut relay).await;
                // Read to its end, the provider's connection may serve another request.
                let done = outcome.is_ok() && relay.stream.codec.is_done();
                attempt::release(ctx, relay.provider, relay.up, relay.reusable && done);
                if outcome.is_err() {
                    cut_short = Some(relay.stream);
                }
                outcome
            }
            Err(failure) => {
                // The head could not be written: `wbuf` holds the 500 in its place.
                let _ = conn.flush().await;
                Err(failure)
            }
        },
        _ => Box::pin(commit_and_pump(ctx, conn, ex, answer)).await,
    };
    // A provider that broke after commit failed all the same: its breaker hears of it.
    if let Some(kind) = ex.response.failed_midway.get() {
        if kind.side() == crate::error::Side::Upstream {
            if let Some(t) = resolved.targets().get(target) {
                target_failed(ctx, ex, t, resolved.policy());
            }
        }
    }
    if let Some(mut stream) = cut_short {
        charge_cut_short(ex, &mut stream.meter, prompt).await;
    }
    result
}

/// The model's route: its targets and failover policy; under a residency tier, only the
/// targets inside it (a 403 naming the tier when none is), so that no retry, fallback or
/// balancing draw can leave it.
fn route<'c>(ctx: &'c Ctx, req: &Admitted) -> Result<Resolved<'c>, Error> {
    let model = &req.info.model;
    let resolved = ctx.config.resolve(model).ok_or_else(|| {
        Error::new(
            ErrorKind::ModelNotFound,
            format!("The model `{model}` does not exist or is not routed by this gateway"),
        )
        .with_param("model")
    })?;
    let Some(index) = req.tier else {
        return Ok(resolved);
    };
    let Some(tier) = ctx.config.tiers.get(index) else {
        return Err(Error::new(
            ErrorKind::Internal,
            "tier index outside the config",
        ));
    };
    let direct_provider = match &resolved {
        Resolved::Direct(t, _) => ctx.config.provider(t.provider).map(|p| p.name.clone()),
        _ => None,
    };
    resolved.within(tier).map_err(|why| {
        let name = &tier.name;
        let list = tier.jurisdictions_text();
        let message = match why {
            crate::routing::OutsideTier::NoTarget => format!(
                "privacy tier `{name}` ({list}) has no target for model `{model}`; nothing was sent"
            ),
            crate::routing::OutsideTier::Provider(j) => format!(
                "provider `{}` is outside privacy tier `{name}` ({list}): {}; nothing was sent",
                direct_provider.as_deref().unwrap_or("?"),
                j.map_or("it has no jurisdiction configured".to_owned(), |j| {
                    format!("it is in {j}")
                })
            ),
        };
        Error::new(ErrorKind::TierRefused, message)
            .with_code("privacy_tier_unavailable")
            .with_param("model")
    })
}

/// Try the route's candidates as its [`Plan`] says, each with its same-target retries, until
/// one gives an answer to commit to. With none: the last provider error answer, else the last
/// failure, in the client's dialect, within the route's deadline.
async fn attempts<'c>(
    ctx: &'c Ctx,
    ex: &mut Exchange<'_>,
    req: &Admitted,
    resolved: &Resolved<'c>,
) -> Result<Answer<'c>, Failure> {
    let policy = resolved.policy();
    let mut plan = Plan::new(&ctx.health, resolved, req.fallbacks, Instant::now());
    let mut missed = Missed::default();
    // The request as the current candidate gets it, kept for its retries.
    let mut ready = None;
    while let Some(step) = plan.next(Instant::now()) {
        match step {
            Step::Prepare(c) => {
                // Let go first: a translated body's charge is held only while it is kept.
                drop(ready.take());
                ready = take(ctx, ex, req, c, &mut plan, &mut missed).await;
            }
            Step::Skip(c) => ctx.metrics.fallback(&c.target.label, "breaker_open"),
            Step::Wait(wait) => crate::rt::timer::sleep(wait).await,
            Step::Expired => missed.last = Some(attempt::deadline_miss()),
            Step::Send(c, next) => {
                // A send always follows its target's preparation.
                let Some(ready) = &mut ready else { break };
                // A translated body goes with its send: gone once written, it is not held
                // while the answer is awaited (a retry makes it again).
                let lent = ready.lend();
                // The attempt began when its connection was reached, before its body was made.
                let tried_at = attempt::began(lent.as_ref());
                let at = attempt::Try {
                    req,
                    target: c.target,
                    ready,
                    policy,
                    next,
                    deadline: plan.deadline(),
                    lent,
                };
                let outcome = attempt::run(ctx, ex, at).await;
                ex.note_attempts();
                match outcome {
                    Ok(answer) => return Ok(served(ctx, ex, c, tried_at, answer, policy)),
                    Err(miss) => plan.record(missed.keep(ctx, ex, c, tried_at, miss, policy)),
                }
            }
        }
    }
    missed.end(ex, resolved.targets(), req.fallbacks, plan.pinned_open())
}

/// Make the request ready for the plan's candidate, whose custody headers it now carries; a
/// failure is that target's miss.
async fn take<'c>(
    ctx: &'c Ctx,
    ex: &mut Exchange<'_>,
    req: &Admitted,
    c: Candidate<'_>,
    plan: &mut Plan<'_>,
    missed: &mut Missed<'c>,
) -> Option<attempt::Ready<'c>> {
    let Some(provider) = ctx.config.provider(c.target.provider) else {
        plan.record(Outcome::Unusable);
        return None;
    };
    ex.attempts.routed = Some((provider.name.clone(), c.target.model.clone()));
    ex.attempts.place = Some(c.target.place.clone());
    // A body to be lent is translated once its connection is in hand (see `attempt::ready`),
    // but no connection is reached for a target its breaker would pass over.
    let reach = plan.would_send(c, Instant::now()).then(|| plan.deadline());
    match attempt::ready(ctx, ex, req, c.target, provider, reach).await {
        Ok(ready) => {
            plan.record(Outcome::Prepared);
            Some(ready)
        }
        Err(e) => {
            let miss = Miss::from_error(e);
            note_attempt(ex, c.target, Instant::now(), None, Some(miss.reason));
            ctx.metrics.fallback(&c.target.label, miss.reason);
            missed.last = Some(miss);
            plan.record(Outcome::Unprepared);
            None
        }
    }
}

/// A send's answer, the request's: the custody trail and the target's breaker hear of it.
fn served<'c>(
    ctx: &Ctx,
    ex: &mut Exchange<'_>,
    c: Candidate<'_>,
    tried_at: Instant,
    mut answer: Answer<'c>,
    policy: &Policy,
) -> Answer<'c> {
    note_attempt(ex, c.target, tried_at, Some(answer.status), None);
    // No head: the gateway answered itself (an estimate), no provider served.
    ex.attempts.served = answer.head.is_some().then(|| c.target.key.clone());
    super::record::note_ledger(ex, answer.meta.as_deref(), answer.head.is_none());
    match answer.healthy {
        Some(true) => ctx.health.success(c.target, answer.ttfb),
        Some(false) => target_failed(ctx, ex, c.target, policy),
        // The gateway answered itself (an estimate): no provider to judge.
        None => {}
    }
    answer.target = c.index;
    answer
}

/// A provider's own error answer (a retryable status), with the custody headers of the target
/// that gave it.
struct KeptAnswer<'c> {
    answer: Answer<'c>,
    routed: Option<(String, String)>,
    place: Option<Arc<Place>>,
}

/// What the attempts that missed leave for the client, should no target serve.
#[derive(Default)]
struct Missed<'c> {
    /// The latest miss.
    last: Option<Miss<'c>>,
    /// The latest provider error answer, kept apart: it is what the client gets if no target
    /// serves, even when a later attempt failed without any answer.
    answer: Option<KeptAnswer<'c>>,
}

impl<'c> Missed<'c> {
    /// A send's miss, told to the custody trail, the target's breaker, the metrics and the
    /// log, then kept (its provider answer apart); what the plan hears of it.
    fn keep(
        &mut self,
        ctx: &Ctx,
        ex: &mut Exchange<'_>,
        c: Candidate<'_>,
        tried_at: Instant,
        mut miss: Miss<'c>,
        policy: &Policy,
    ) -> Outcome {
        let status = miss.answer.as_ref().map(|a| a.status);
        note_attempt(ex, c.target, tried_at, status, Some(miss.reason));
        if miss.target_failed {
            target_failed(ctx, ex, c.target, policy);
        }
        ctx.metrics.fallback(&c.target.label, miss.reason);
        crate::log::warn(format_args!(
            "{} attempt {} on `{}` missed ({}): {}",
            ex.request_id,
            ex.attempts.sends.get(),
            c.target.key,
            miss.reason,
            miss.error
        ));
        if let Some(mut answer) = miss.answer.take() {
            answer.target = c.index;
            self.answer = Some(KeptAnswer {
                answer,
                routed: ex.attempts.routed.clone(),
                place: ex.attempts.place.clone(),
            });
        }
        let outcome = miss.outcome();
        self.last = Some(miss);
        outcome
    }

    /// The request's end when no target served: the provider's own answer under the name (and
    /// custody headers) of the target that gave it; else the last failure, a pinned target's
    /// as the 503 that names it.
    fn end(
        self,
        ex: &mut Exchange<'_>,
        targets: &[Target],
        fallbacks: bool,
        pinned_open: bool,
    ) -> Result<Answer<'c>, Failure> {
        if let Some(kept) = self.answer {
            ex.attempts.served = kept.routed.as_ref().map(|(p, m)| format!("{p}/{m}"));
            ex.attempts.routed = kept.routed;
            ex.attempts.place = kept.place;
            return Ok(kept.answer);
        }
        match self.last {
            Some(miss) if !fallbacks && miss.target_failed => {
                let key = targets.first().map_or("?", |t| t.key.as_str());
                Err(pinned_unavailable(key, &miss, pinned_open).into())
            }
            Some(miss) => Err(Failure::BeforeResponse(miss.error)),
            None => Err(Failure::BeforeResponse(Error::new(
                ErrorKind::UpstreamConnect,
                "no target of the route could be tried",
            ))),
        }
    }
}

/// What a request pinned to its route's first target (`allow_fallbacks: false`) gets when that
/// target failed it: a 503 naming the target and why, never another target's answer.
fn pinned_unavailable(key: &str, miss: &Miss<'_>, breaker_open: bool) -> Error {
    let open = if breaker_open {
        " (its breaker was open)"
    } else {
        ""
    };
    Error::new(
        ErrorKind::PinnedTargetUnavailable,
        format!(
            "allow_fallbacks is false and the route's first target `{key}`{open} could not serve the request: {} ({})",
            miss.reason,
            miss.error.message()
        ),
    )
}

/// Count a failure against `target`'s breaker; say so when that opened it.
fn target_failed(ctx: &Ctx, ex: &Exchange<'_>, target: &Target, policy: &Policy) {
    if ctx.health.failure(target, policy, Instant::now()) {
        ctx.metrics.breaker_opened(&target.label);
        crate::log::warn(format_args!(
            "{} target `{}` breaker open for {} ms",
            ex.request_id,
            target.key,
            policy.breaker.cooldown.as_millis()
        ));
    }
}

/// Provider response headers never forwarded: hop-by-hop ones and the gateway's own (a
/// provider, or a ringway chained in front of it, may send `x-ringway-*` or headers under
/// this gateway's prefix too: only the gateway's own custody headers may say where it ran).
fn skip_header(name: &str, prefix: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "content-length"
            | "te"
            | "trailer"
            | "upgrade"
            | "proxy-authenticate"
            | "proxy-connection"
    ) || name.starts_with("x-ringway-")
        || name.starts_with(prefix)
}

/// Provider response headers worth keeping across dialects (rate limits, retry hints).
fn keep_translated_header(name: &str) -> bool {
    name == "retry-after"
        || name == "retry-after-ms"
        || name == "x-should-retry"
        || name.starts_with("anthropic-ratelimit-")
        || name.starts_with("x-ratelimit-")
}

/// The provider headers a client sees: same dialect, all but hop-by-hop ones (and the body's
/// own type when the gateway rendered it); across dialects, rate-limit and retry hints, and
/// the provider's request id under the name the client's SDK reads. A limited key's client
/// gets the key's rate-limit headers instead of the provider's: the provider's count the
/// gateway's whole quota, which is not the client's to pace against.
fn provider_headers<'a>(
    head: &'a ResponseHead,
    pair: Pair,
    relay: bool,
    ours: bool,
    own_limits: bool,
    prefix: &str,
    out: &mut Vec<(&'a str, &'a [u8])>,
) {
    // Headers the provider's `Connection` nominates are hop-by-hop: for this gateway, not the
    // client (all of them, past the bound).
    let hop = crate::headers::Nominated::parse(head.values("connection"));
    for (name, value) in head.headers() {
        if (own_limits && crate::limits::is_rate_limit_header(name)) || hop.contains(name) {
            continue;
        }
        if relay {
            let replaced = ours && matches!(name, "content-type" | "content-encoding");
            if !skip_header(name, prefix) && !replaced {
                out.push((name, value));
            }
        } else if keep_translated_header(name) {
            out.push((name, value));
        } else if name == "request-id" || name == "x-request-id" {
            out.push((pair.request_id_header(), value));
        }
    }
}

/// The head of an answer relayed as the provider sent it (not rendered by the gateway): the
/// gateway's standard headers, then the provider's.
fn relayed_headers<'a>(
    ex: &'a Exchange<'_>,
    head: &'a ResponseHead,
    pair: Pair,
    relay: bool,
    own_limits: bool,
) -> Vec<(&'a str, &'a [u8])> {
    let mut headers = ex.standard_headers();
    provider_headers(
        head,
        pair,
        relay,
        false,
        own_limits,
        &ex.names.prefix,
        &mut headers,
    );
    headers
}

/// One attempt on `target`, for the trace's attempt span and the custody record's trail.
fn note_attempt(
    ex: &mut Exchange<'_>,
    target: &crate::routing::Target,
    started: Instant,
    status: Option<u16>,
    failure: Option<&'static str>,
) {
    super::trace::attempt(ex, target, started, status, failure);
    ex.note_trail(target, started, status, failure);
}

/// Does the client get the provider's response head as it is (same dialect, on the wire the
/// dialect's own API uses)? Not from a cloud kind: its headers and framing are the cloud's.
fn relays_head(provider: &crate::config::Provider, pair: Pair) -> bool {
    pair.is_passthrough() && !provider.kind.model_in_path()
}

/// The lossy entries of the translation ledger, for the client's dropped-params header
/// (empty: none).
fn dropped_params(meta: Option<&crate::translate::RequestMeta>) -> String {
    meta.map_or_else(String::new, |m| m.ledger.header_value())
}

/// Commit to a whole or relayed answer (its head and what is already in hand go to the client)
/// and pump the rest; streams go through [`commit_stream`] and [`relay_stream`]. The provider's
/// connection goes back to the pool when its response was read to the end.
async fn commit_and_pump<S: Transport>(
    ctx: &Ctx,
    conn: &mut ClientConn<S>,
    ex: &mut Exchange<'_>,
    answer: Answer<'_>,
) -> Result<(), Failure> {
    let Answer {
        provider,
        pair,
        status,
        head,
        conn: up,
        body,
        meta,
        metered,
        ..
    } = answer;
    let dropped = dropped_params(meta.as_deref());
    super::trace::ledger(ex, meta.as_deref());
    let relay = relays_head(provider, pair);
    let client_http10 = ex.head.minor_version() == 0;
    let own_limits = !ex.limit_headers.is_empty();
    match body {
        Body::Whole {
            bytes,
            json,
            charge,
        } => {
            ex.response.metered.set(metered);
            super::trace::completion(ex, &bytes);
            // PII: stand-ins back to originals, string by string (escapes read as what they
            // stand for; signed thinking left as the provider wrote it).
            let bytes = match &ex.pii {
                Some(set) => set.restore_document(&bytes),
                None => bytes,
            };
            if (200..300).contains(&status) {
                if let Some(plan) = ex.store.borrow_mut().take() {
                    let seals = meta
                        .as_deref()
                        .and_then(|m| m.responses.as_deref())
                        .map(|r| r.kept_seals.take())
                        .unwrap_or_default();
                    let seals: Vec<(&str, &str)> = seals
                        .iter()
                        .map(|(i, s)| (i.as_str(), s.as_str()))
                        .collect();
                    stored::keep(*plan, &bytes, &seals);
                }
            }
            let mut headers = ex.standard_headers();
            if let Some(head) = &head {
                provider_headers(
                    head,
                    pair,
                    relay,
                    json,
                    own_limits,
                    &ex.names.prefix,
                    &mut headers,
                );
            }
            if json || !relay {
                headers.push(("content-type", b"application/json"));
            }
            if !dropped.is_empty() {
                headers.push((ex.names.dropped_params.as_str(), dropped.as_bytes()));
            }
            let len = ResponseBody::Length(bytes.len() as u64);
            let sent = if !respond::write_head(conn, ex, status, &headers, len) {
                conn.flush().await
            } else if bytes.len() <= pump::COALESCE_MAX_BYTES {
                conn.wbuf.extend_from_slice(&bytes);
                conn.flush().await
            } else {
                // Large: the head, then the body from its own buffer; copying it into `wbuf`
                // would double it and leave the connection holding a buffer that size.
                match conn.flush().await {
                    Ok(()) => conn.write_bytes(bytes::Bytes::from(bytes)).await,
                    Err(e) => Err(e),
                }
            };
            drop(charge);
            sent.map_err(|_| Failure::AfterResponse)?;
            Ok(())
        }
        Body::Plain {
            mut codec,
            prefix,
            charge,
        } => {
            let (Some(mut conn_up), Some(head)) = (up, head) else {
                return Err(
                    Error::new(ErrorKind::Internal, "a relayed body without a provider").into(),
                );
            };
            let body_kind = match head.framing {
                BodyFraming::Empty => ResponseBody::Length(0),
                BodyFraming::Length(n) => ResponseBody::Length(n),
                _ if client_http10 => {
                    // An HTTP/1.0 client cannot take chunked: delimit by closing.
                    ex.keep_alive.set(false);
                    ResponseBody::CloseDelimited
                }
                _ => ResponseBody::Chunked,
            };
            let mut headers = relayed_headers(ex, &head, pair, relay, own_limits);
            if !relay {
                // A cloud's own answer in the client's dialect: JSON, whatever it was labelled.
                headers.push(("content-type", b"application/json"));
            }
            if !dropped.is_empty() {
                headers.push((ex.names.dropped_params.as_str(), dropped.as_bytes()));
            }
            if !respond::write_head(conn, ex, status, &headers, body_kind) {
                let _ = conn.flush().await;
                return Err(Failure::AfterResponse);
            }
            drop(headers);
            let reusable = head.reusable;
            // The head is written: let it go, it pins the first upstream read buffer.
            drop(head);
            let chunked = body_kind == ResponseBody::Chunked;
            // The provider's body as it passes: usage is read from its head and tail windows.
            let mut meter = crate::usage::BodyMeter::new(pair.provider);
            meter.push(&prefix);
            super::trace::completion(ex, &prefix);
            if prefix.len() <= pump::COALESCE_MAX_BYTES || chunked {
                pump::frame(&mut conn.wbuf, &prefix, chunked);
            } else {
                // Large: the head, then the held bytes from their own buffer (copied into
                // `wbuf` they would double, and the connection would keep a buffer that size).
                let sent = match conn.flush().await {
                    Ok(()) => conn.write_bytes(bytes::Bytes::from(prefix)).await,
                    Err(e) => Err(e),
                };
                sent.map_err(|_| Failure::AfterResponse)?;
            }
            drop(charge);
            if codec.is_done() {
                // No body: the head goes out alone.
                conn.flush().await.map_err(|_| Failure::AfterResponse)?;
            } else {
                let relayed = pump::plain(
                    conn,
                    ex,
                    &mut conn_up,
                    &mut codec,
                    provider,
                    chunked,
                    &mut meter,
                )
                .await;
                ex.response.metered.set(meter.finish());
                relayed?;
            }
            attempt::release(ctx, provider, conn_up, reusable && codec.is_done());
            Ok(())
        }
        Body::Stream(_) => Err(Error::new(
            ErrorKind::Internal,
            "a stream reached the commit of whole and relayed bodies",
        )
        .into()),
    }
}

/// A committed stream's relay: what the pump needs and nothing of the commit.
struct Relay<'c> {
    stream: Box<pump::Stream>,
    up: crate::upstream::Conn,
    provider: &'c crate::config::Provider,
    chunked: bool,
    /// The provider's connection may carry another request once the stream is read to its end.
    reusable: bool,
}

/// Commit to a stream: its head and the events primed before commit go into `conn.wbuf`, to be
/// written with the first batch. Err: nothing can be relayed (`wbuf` then holds the 500 that
/// took the head's place).
fn commit_stream<'c, S: Transport>(
    conn: &mut ClientConn<S>,
    ex: &mut Exchange<'_>,
    answer: Answer<'c>,
) -> Result<Relay<'c>, Failure> {
    let Answer {
        provider,
        pair,
        status,
        head,
        conn: up,
        body: Body::Stream(mut stream),
        meta,
        ..
    } = answer
    else {
        return Err(Error::new(
            ErrorKind::Internal,
            "a whole body reached the stream commit",
        )
        .into());
    };
    let (Some(up), Some(head)) = (up, head) else {
        return Err(Error::new(ErrorKind::Internal, "a stream without a provider").into());
    };
    let dropped = dropped_params(meta.as_deref());
    super::trace::ledger(ex, meta.as_deref());
    let own_limits = !ex.limit_headers.is_empty();
    let chunked = ex.head.minor_version() != 0;
    let framing = if chunked {
        ResponseBody::Chunked
    } else {
        ex.keep_alive.set(false);
        ResponseBody::CloseDelimited
    };
    let relay = relays_head(provider, pair);
    let mut headers = relayed_headers(ex, &head, pair, relay, own_limits);
    if !relay {
        headers.push(("content-type", pair.stream_content_type(meta.as_deref())));
        headers.push(("cache-control", b"no-cache"));
    }
    if !dropped.is_empty() {
        headers.push((ex.names.dropped_params.as_str(), dropped.as_bytes()));
    }
    if !respond::write_head(conn, ex, status, &headers, framing) {
        return Err(Failure::AfterResponse);
    }
    ex.response.streamed.set(true);
    if let Some(plan) = ex.store.borrow_mut().take() {
        stream.capture(stored::Capture::new(plan));
    }
    if stream.take_primed(&mut conn.wbuf, chunked) {
        ex.first_event_sent();
        if stream.said_something() {
            ex.first_token_sent();
        }
    }
    // A stream may last minutes: the provider's head (dropped here) would pin the first
    // upstream read buffer all that time.
    Ok(Relay {
        stream,
        up,
        provider,
        chunked,
        reusable: head.reusable,
    })
}

/// The usage of a stream that ended early (its client gone, its provider's stream cut, a
/// drain's end) before its provider said its final usage: what the provider will bill. The
/// provider's own figures where it said them (Anthropic's input at the start), the request's
/// estimate (`prompt`, the client's body) for an input it never said, and one output token per
/// provider event read; marked estimated. The count waits for nothing of the provider's: its
/// connection is closed before this runs.
async fn charge_cut_short(
    ex: &Exchange<'_>,
    meter: &mut crate::usage::Meter,
    prompt: Option<bytes::Bytes>,
) {
    if meter.said_final_usage() {
        return;
    }
    let mut metered = meter.metered();
    let said = metered.usage;
    let input = match (said, prompt) {
        (Some(u), _) if u.input > 0 => u.input,
        (_, Some(body)) => estimate::cut_short_prompt(ex.format, body, ex.cut.fired()).await,
        _ => 0,
    };
    let usage = crate::usage::cut_short(said, input, meter.events());
    if said.is_none() && usage == crate::usage::Usage::default() {
        // Nothing said and nothing to count (no body kept, no event read): no usage, as before.
        return;
    }
    metered.usage = Some(usage);
    metered.estimated = true;
    ex.response.metered.set(metered);
}

/// Pump a committed stream to its end. The relay is borrowed, not moved in: moved, it would
/// take its room twice in this state (as the argument and as the local it becomes).
async fn relay_stream<S: Transport>(
    ctx: &Ctx,
    conn: &mut ClientConn<S>,
    ex: &mut Exchange<'_>,
    relay: &mut Relay<'_>,
) -> Result<(), Failure> {
    let _in_flight = match (&ex.route, &ex.attempts.routed) {
        (Some(route), Some((provider, _))) => Some(ctx.metrics.stream(
            route,
            provider,
            ex.key.as_deref().unwrap_or(crate::metrics::NO_KEY_LABEL),
        )),
        _ => None,
    };
    let outcome = relay
        .stream
        .run(conn, ex, &mut relay.up, relay.provider, relay.chunked)
        .await;
    ex.response.metered.set(relay.stream.meter.metered());
    super::trace::stream_completion(ex, relay.stream.take_completion());
    outcome
}

async fn finish<S: Transport>(
    ctx: &Ctx,
    conn: &mut ClientConn<S>,
    ex: &mut Exchange<'_>,
    result: std::result::Result<(), Failure>,
) -> After {
    let head = ex.head;
    match result {
        Ok(()) => {}
        Err(Failure::BeforeResponse(e)) if conn.broken => {
            ex.response.error.set(Some(e.kind()));
            // A write already failed (or timed out) part-way: the client cannot be answered.
            return After::Close;
        }
        Err(Failure::BeforeResponse(e)) => {
            ex.response.error.set(Some(e.kind()));
            ctx.metrics
                .error(e.kind().as_str(), e.kind().side().as_str());
            if e.kind().side() != crate::error::Side::Client {
                crate::log::warn(format_args!("{} {} -> {}", ex.request_id, head.path(), e));
            }
            if respond::write_error(conn, ex, &e).await.is_err() {
                return After::Close;
            }
        }
        Err(Failure::AfterResponse) => return After::Close,
        Err(Failure::Ended) => {}
    }
    if conn.broken {
        After::Close
    } else if !ex.body_read.get() {
        // Answered without reading the body: the connection cannot carry another request,
        // and closing with unread bytes would turn our answer into a reset.
        After::DrainAndClose
    } else if ex.keep_alive.get() {
        After::KeepAlive
    } else {
        After::Close
    }
}

#[cfg(test)]
mod tests {
    use super::skip_header;

    #[test]
    fn gateway_headers_are_never_copied_from_a_provider() {
        for h in [
            "x-ringway-attempts",
            "x-ringway-model",
            "content-length",
            "connection",
        ] {
            assert!(skip_header(h, "x-ringway-"), "{h}");
        }
        assert!(skip_header("x-ni-jurisdiction", "x-ni-"));
        assert!(skip_header("x-ringway-jurisdiction", "x-ni-"));
        assert!(!skip_header("retry-after", "x-ni-"));
    }
}
