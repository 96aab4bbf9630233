//! Per-request state: what every response needs to say (id, dialect, route, attempts) and
//! what the log line records (status, timings, how a stream ended).

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;

use crate::error::{Error, ErrorKind};
use crate::format::Format;
use crate::headers::GatewayHeaders;
use crate::http1::{self, RequestHead};
use crate::responses_store::Owner;
use crate::routing::Place;
use crate::rt::beacon::Beacon;
use crate::usage::Metered;

/// A request in flight.
pub(super) struct Exchange<'h> {
    /// The gateway's response header names (`[server] header_prefix`).
    pub names: &'h GatewayHeaders,
    /// The residency tier the request runs under (its own, its key's default or the
    /// server's), once admitted. None: no tier, routing is unrestricted.
    pub tier: Option<String>,
    pub head: &'h RequestHead,
    /// The client's dialect: errors and answers render in it.
    pub format: Format,
    pub request_id: String,
    pub keep_alive: Cell<bool>,
    /// Metrics label of the endpoint.
    pub endpoint: &'static str,
    /// The request body has been read (or there is none).
    pub body_read: Cell<bool>,
    /// The worker's drain notice: a response written once it fired closes its connection.
    pub draining: &'h Beacon,
    /// The worker's drain deadline: what is still running when it fires is ended.
    pub cut: &'h Beacon,
    /// What the key's limits let in (a stream slot held until the exchange ends).
    pub limits: Option<crate::limits::Ticket>,
    /// The key's rate-limit headers, sent on every response to a limited key.
    pub limit_headers: Vec<crate::limits::Header>,
    /// Name of the gateway key that authenticated the request (None: no keys configured, or
    /// not authenticated). The name, never the key.
    pub key: Option<String>,
    /// The request passed authentication (its key is good, or no keys are configured): only
    /// then does it get a custody record.
    pub authenticated: bool,
    /// The model the client asked for (checked at admission: bounded, no control bytes).
    pub model: Option<String>,
    /// Metrics label of the route: the route's name, or `direct` for `provider/model`.
    pub route: Option<String>,
    /// PII entities replaced in the request, by kind (for the custody record; never values).
    pub pii_counts: crate::pii::Counts,
    /// The request's stand-ins, to restore in the answer (None: PII off or nothing found).
    pub pii: Option<std::sync::Arc<crate::pii::RestoreSet>>,
    /// What is kept of a Responses answer, when it is to be stored (taken by the commit).
    pub store: Slot,
    /// Where the request went upstream.
    pub attempts: Attempts,
    /// When it started, and when its stream's first events went out.
    pub timings: Timings,
    /// How the response went, as the log line, the metrics and the custody record tell it.
    pub response: Response,
    /// The call's trace, when tracing is on and the call is sampled.
    pub trace: Option<Box<crate::trace::Live>>,
}

/// Where a request went upstream: written by the failover loop, read by the custody headers,
/// the log line and the custody record.
#[derive(Default)]
pub(super) struct Attempts {
    /// `(provider, upstream model)` of the latest attempt.
    pub routed: Option<(String, String)>,
    /// Where the latest attempt went (or the answer that is relayed came from), beside
    /// `routed`: region, jurisdiction, custody label and custody path for the headers.
    pub place: Option<Arc<Place>>,
    /// Requests sent to providers (a stale pooled connection's resend included).
    pub sends: Cell<u32>,
    /// The same, as the `x-ringway-attempts` value (empty: none yet).
    text: String,
    /// Every attempt, for the custody record (kept only while the custody store is on).
    pub trail: Vec<crate::custody::Attempt>,
    /// `provider/model` of the answer committed to (None: no provider answered).
    pub served: Option<String>,
}

/// A request's clock.
pub(super) struct Timings {
    /// When the request head was complete.
    pub started: Instant,
    /// Set when the first SSE event went out.
    pub first_event: Cell<Option<Duration>>,
    /// Set when the first content event (not set-up) of a stream went out: time to first token.
    pub first_token: Cell<Option<Duration>>,
}

/// How a response went: set as it goes, read when the exchange is recorded.
#[derive(Default)]
pub(super) struct Response {
    /// Status of the response head sent (0 = none yet).
    pub status: Cell<u16>,
    /// Why the gateway failed the request (before or during the response).
    pub error: Cell<Option<ErrorKind>>,
    /// Set by the pump when the response broke after it started.
    pub failed_midway: Cell<Option<ErrorKind>>,
    /// The answer was an event stream.
    pub streamed: Cell<bool>,
    /// Usage and stop reason of the provider answer that served, read on the provider's side
    /// (set at the end of the pump; default when the answer carried none).
    pub metered: Cell<Metered>,
    /// Bytes written to the client for this response (head and body).
    pub bytes_sent: Cell<u64>,
    /// The translation ledger of the attempt that served, or of the one strict translation
    /// refused: the metrics, the custody record and the span read it.
    pub ledger: std::cell::RefCell<crate::translate::Ledger>,
}

impl<'h> Exchange<'h> {
    /// The scope what a worker keeps of this exchange's bodies is kept and found under: its
    /// key's (admission's kept values, translation's kept conversations).
    pub fn scope(&self) -> u64 {
        self.key
            .as_deref()
            .map_or(0, |k| crate::json::scope_of(k.as_bytes()))
    }

    /// Classify a request by its head: its id, the dialect it speaks, its endpoint label.
    pub fn new(
        head: &'h RequestHead,
        request_id: String,
        endpoint: &'static str,
        draining: &'h Beacon,
        cut: &'h Beacon,
        names: &'h GatewayHeaders,
    ) -> Self {
        let anthropic_headers =
            head.header("anthropic-version").is_some() || head.header("x-api-key").is_some();
        Exchange {
            names,
            tier: None,
            head,
            format: Format::sniff(head.path().as_bytes(), anthropic_headers),
            request_id,
            keep_alive: Cell::new(head.keep_alive()),
            endpoint,
            body_read: Cell::new(head.framing() == http1::Framing::None),
            draining,
            cut,
            limits: None,
            limit_headers: Vec::new(),
            key: None,
            authenticated: false,
            model: None,
            route: None,
            pii_counts: crate::pii::Counts::default(),
            pii: None,
            store: std::cell::RefCell::new(None),
            attempts: Attempts::default(),
            timings: Timings {
                started: Instant::now(),
                first_event: Cell::new(None),
                first_token: Cell::new(None),
            },
            response: Response::default(),
            trace: None,
        }
    }

    /// Render the number of provider sends made so far for `x-ringway-attempts`.
    pub fn note_attempts(&mut self) {
        self.attempts.text = self.attempts.sends.get().to_string();
    }

    /// Headers every response carries: the request id; the tier once admitted under one; and
    /// once routed, the custody headers of the latest attempt (provider, upstream model,
    /// region, jurisdiction, custody label, custody path, credential source). Every value was
    /// checked where it entered (config labels, tier names, model ids); the writer refuses
    /// CR/LF again.
    pub fn standard_headers(&self) -> Vec<(&str, &[u8])> {
        let n = self.names;
        let mut h: Vec<(&str, &[u8])> = Vec::with_capacity(12 + self.limit_headers.len());
        h.push((&n.request_id, self.request_id.as_bytes()));
        if let Some(tier) = &self.tier {
            h.push((&n.tier, tier.as_bytes()));
        }
        if let Some((p, m)) = &self.attempts.routed {
            h.push((&n.provider, p.as_bytes()));
            h.push((&n.model, m.as_bytes()));
            if let Some(place) = &self.attempts.place {
                if let Some(r) = &place.region {
                    h.push((&n.region, r.as_bytes()));
                }
                if let Some(j) = &place.jurisdiction {
                    h.push((&n.jurisdiction, j.as_bytes()));
                }
                if let Some(c) = &place.custody {
                    h.push((&n.custody, c.as_bytes()));
                }
                h.push((&n.custody_path, place.path.as_bytes()));
                h.push((&n.credential_source, place.credential.as_str().as_bytes()));
            }
        }
        if !self.attempts.text.is_empty() {
            h.push((&n.attempts, self.attempts.text.as_bytes()));
        }
        for (name, value) in &self.limit_headers {
            h.push((name, value.as_bytes()));
        }
        h
    }

    /// Note one attempt on `target` for the custody record (nothing when the store is off, or
    /// past [`crate::custody::MAX_ATTEMPTS`]).
    pub fn note_trail(
        &mut self,
        target: &crate::routing::Target,
        started: Instant,
        status: Option<u16>,
        failure: Option<&'static str>,
    ) {
        if !crate::custody::enabled() || self.attempts.trail.len() >= crate::custody::MAX_ATTEMPTS {
            return;
        }
        self.attempts.trail.push(crate::custody::Attempt {
            target: target.key.clone(),
            region: target.place.region.clone(),
            jurisdiction: target.place.jurisdiction.clone(),
            status,
            failure,
            start: started.saturating_duration_since(self.timings.started),
            duration: started.elapsed(),
        });
    }

    /// A stream's time to first token (None for a whole answer: its first token is its last).
    pub fn stream_ttft(&self) -> Option<Duration> {
        self.timings
            .first_token
            .get()
            .filter(|_| self.response.streamed.get())
    }

    /// Mark the first content event written to a stream's client (once).
    pub fn first_token_sent(&self) {
        let t = &self.timings;
        if t.first_token.get().is_none() {
            t.first_token.set(Some(t.started.elapsed()));
        }
    }

    /// Mark the first event written to a stream's client (once).
    pub fn first_event_sent(&self) {
        let t = &self.timings;
        if t.first_event.get().is_none() {
            t.first_event.set(Some(t.started.elapsed()));
        }
    }
}

/// What the connection loop does after a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// Read the next request.
    KeepAlive,
    /// Close the connection.
    Close,
    /// Stop writing, discard what the client still sends (bounded), then close.
    DrainAndClose,
}

/// How a pipeline failed.
pub(super) enum Failure {
    /// Nothing was sent yet: answer with this error.
    BeforeResponse(Error),
    /// The response had started and could not be completed (the client is gone, or a body
    /// broke where it has no way to say so): the client connection must close.
    AfterResponse,
    /// The response is complete for the client (a stream that ended with its format's error
    /// event and a clean end) but the provider connection is not reusable.
    Ended,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::BeforeResponse(e)
    }
}

pub(super) use crate::dialect::Op;

/// What is kept of a request's answer once it has one: whose it is, what it continued, and the
/// input items its turn added (as the client sent them, references replaced).
#[derive(Debug)]
pub(super) struct Plan {
    pub(super) owner: Owner,
    pub(super) previous: Option<String>,
    pub(super) input: Vec<Box<RawValue>>,
}

/// The plan of a request that is to be stored (taken once, by whatever sends its answer).
pub(super) type Slot = RefCell<Option<Box<Plan>>>;

/// The end of a request: its usage charged, and its budget settled with what it cost at the
/// served model's price (no usage reported after a request went upstream: the whole
/// reservation is counted spent, as the provider may have billed it).
pub(super) fn settle_limits(ctx: &super::ctx::Ctx, ex: &Exchange<'_>) {
    charge_usage(ex);
    let Some(ticket) = &ex.limits else { return };
    if !ticket.has_budget() {
        return;
    }
    let usage = ex.response.metered.get().usage;
    let spent = match (usage, &ex.attempts.routed) {
        (Some(u), routed) => {
            let price = routed
                .as_ref()
                .and_then(|(p, m)| ctx.config.prices.find(p, m));
            crate::limits::Reservation {
                tokens: u.input.saturating_add(u.output),
                nano_usd: price.map_or(0, |p| p.cost(&u)),
            }
        }
        (None, Some(_)) if ex.attempts.sends.get() > 0 => ticket.reserved(),
        _ => crate::limits::Reservation::default(),
    };
    ticket.settle(spent);
}

/// Debit the tokens a request has used so far (input and output, from the provider's usage)
/// from its key's and route's token rates (none set, or no ticket: nothing). Called as usage
/// arrives and at the end; each token is debited once. Requests still in flight were admitted
/// without it (the documented overshoot).
pub(super) fn charge_usage(ex: &Exchange<'_>) {
    if let (Some(ticket), Some(u)) = (&ex.limits, ex.response.metered.get().usage) {
        ticket.charge_usage(u.input, u.output);
    }
}
