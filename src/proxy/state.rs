//! Per-request state: what every response needs to say (id, dialect, route, attempts) and
//! what the log line records (status, timings, how a stream ended).

use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::error::ErrorKind;
use crate::format::Format;
use crate::http1::{self, RequestHead};
use crate::runtime::beacon::Beacon;
use crate::usage::Metered;

/// A request in flight.
pub(super) struct Exchange<'h> {
    pub head: &'h RequestHead,
    /// The client's dialect: errors and answers render in it.
    pub format: Format,
    pub request_id: String,
    pub keep_alive: Cell<bool>,
    /// `(provider, upstream model)` of the latest attempt.
    pub routed: Option<(String, String)>,
    /// Requests sent to providers (a stale pooled connection's resend included).
    pub sends: Cell<u32>,
    /// The same, as the `x-ringway-attempts` value (empty: none yet).
    attempts_text: String,
    /// Metrics label of the endpoint.
    pub endpoint: &'static str,
    /// When the request head was complete.
    pub started: Instant,
    /// Status of the response head sent (0 = none yet).
    pub status: Cell<u16>,
    /// Set by the pump when the response broke after it started.
    pub failed_midway: Cell<Option<ErrorKind>>,
    /// Set when the first SSE event went out.
    pub first_event: Cell<Option<Duration>>,
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
    /// Set when the first content event (not set-up) of a stream went out: time to first token.
    pub first_token: Cell<Option<Duration>>,
    /// Usage and stop reason of the provider answer that served, read on the provider's side
    /// (set at the end of the pump; default when the answer carried none).
    pub metered: Cell<Metered>,
    /// The answer was an event stream.
    pub streamed: Cell<bool>,
    /// Name of the gateway key that authenticated the request (None: no keys configured, or
    /// not authenticated). The name, never the key.
    pub key: Option<String>,
    /// The model the client asked for (checked at admission: bounded, no control bytes).
    pub model: Option<String>,
    /// Metrics label of the route: the route's name, or `direct` for `provider/model`.
    pub route: Option<String>,
    /// Why the gateway failed the request (before or during the response).
    pub error: Cell<Option<ErrorKind>>,
    /// Bytes written to the client for this response (head and body).
    pub bytes_sent: Cell<u64>,
    /// PII entities replaced in the request, by kind (for the custody record; never values).
    pub pii_counts: crate::pii::Counts,
    /// The request's stand-ins, to restore in the answer (None: PII off or nothing found).
    pub pii: Option<std::sync::Arc<crate::pii::RestoreSet>>,
}

impl<'h> Exchange<'h> {
    /// Classify a request by its head: its id, the dialect it speaks, its endpoint label.
    pub fn new(
        head: &'h RequestHead,
        request_id: String,
        endpoint: &'static str,
        draining: &'h Beacon,
        cut: &'h Beacon,
    ) -> Self {
        let anthropic_headers =
            head.header("anthropic-version").is_some() || head.header("x-api-key").is_some();
        Exchange {
            head,
            format: Format::sniff(head.path().as_bytes(), anthropic_headers),
            request_id,
            keep_alive: Cell::new(head.keep_alive()),
            routed: None,
            sends: Cell::new(0),
            attempts_text: String::new(),
            endpoint,
            started: Instant::now(),
            status: Cell::new(0),
            failed_midway: Cell::new(None),
            first_event: Cell::new(None),
            body_read: Cell::new(head.framing() == http1::Framing::None),
            draining,
            cut,
            limits: None,
            limit_headers: Vec::new(),
            first_token: Cell::new(None),
            metered: Cell::new(Metered::default()),
            streamed: Cell::new(false),
            key: None,
            model: None,
            route: None,
            error: Cell::new(None),
            bytes_sent: Cell::new(0),
            pii_counts: crate::pii::Counts::default(),
            pii: None,
        }
    }

    /// Render the number of provider sends made so far for `x-ringway-attempts`.
    pub fn note_attempts(&mut self) {
        self.attempts_text = self.sends.get().to_string();
    }

    /// Headers every response carries.
    pub fn standard_headers(&self) -> Vec<(&str, &[u8])> {
        let mut h: Vec<(&str, &[u8])> = Vec::with_capacity(8 + self.limit_headers.len());
        h.push(("x-ringway-request-id", self.request_id.as_bytes()));
        if let Some((p, m)) = &self.routed {
            h.push(("x-ringway-provider", p.as_bytes()));
            h.push(("x-ringway-model", m.as_bytes()));
        }
        if !self.attempts_text.is_empty() {
            h.push(("x-ringway-attempts", self.attempts_text.as_bytes()));
        }
        for (name, value) in &self.limit_headers {
            h.push((name, value.as_bytes()));
        }
        h
    }

    /// Mark the first content event written to a stream's client (once).
    pub fn first_token_sent(&self) {
        if self.first_token.get().is_none() {
            self.first_token.set(Some(self.started.elapsed()));
        }
    }

    /// Mark the first event written to a stream's client (once).
    pub fn first_event_sent(&self) {
        if self.first_event.get().is_none() {
            self.first_event.set(Some(self.started.elapsed()));
        }
    }
}
