//! OTLP traces of model calls (`[tracing]`): one server span per call, named by the GenAI
//! conventions (`chat {model}`), with a client span per attempt. The request path keeps a
//! [`Live`] only for a sampled call (an unsampled one allocates nothing); its spans are built
//! when the exchange is recorded and leave through [`export`], never waiting.
//!
//! Sampling is parent-based: an incoming `traceparent` with the sampled flag is traced, one
//! without it is not; a call with no (valid) parent starts a trace with probability
//! `sample_ratio`, drawn once.

pub mod context;
pub mod export;
pub mod otlp;
pub mod span;

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use span::Ids;

/// Longest prompt or completion exported when a route opts in to content, in bytes.
pub const MAX_CONTENT_BYTES: usize = 16 * 1024;
/// Most attempt spans one call records (a route has few targets; retries are bounded too).
pub const MAX_ATTEMPT_SPANS: usize = 16;

/// `[tracing]`, compiled.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The endpoint as written, for logs.
    pub endpoint: String,
    /// The endpoint, parsed.
    pub url: crate::credentials::fetch::Url,
    /// Headers sent with every export (a collector's credentials).
    pub headers: Vec<(String, String)>,
    /// Gzip the export bodies.
    pub gzip: bool,
    /// Share of new traces recorded, 0.0 to 1.0.
    pub sample_ratio: f64,
    /// `service.name` of the resource.
    pub service_name: String,
    /// Send the attempt span's `traceparent` to providers.
    pub propagate: bool,
    /// Routes (their labels: a route's name, or `direct`) whose prompts and completions are
    /// exported: those of `content_routes` and those with `trace_content = true`.
    pub content_routes: Vec<String>,
}

impl Settings {
    /// Batches under these settings and `other` may share one export request.
    pub fn same_destination(&self, other: &Settings) -> bool {
        self.url == other.url
            && self.headers == other.headers
            && self.gzip == other.gzip
            && self.service_name == other.service_name
    }

    /// Does `route` export content?
    pub fn content_for(&self, route: Option<&str>) -> bool {
        route.is_some_and(|r| self.content_routes.iter().any(|c| c == r))
    }
}

thread_local! {
    /// This worker's id generator, seeded apart per thread and start.
    static IDS: RefCell<Ids> = RefCell::new(Ids::new(seed()));
}

fn seed() -> u64 {
    let mut b = [0u8; 8];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).is_ok() {
        return u64::from_le_bytes(b);
    }
    let nanos = unix_nanos(SystemTime::now());
    let here = &b as *const _ as u64;
    (nanos ^ here.rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn with_ids<T>(f: impl FnOnce(&mut Ids) -> T) -> T {
    IDS.with(|ids| f(&mut ids.borrow_mut()))
}

/// Nanoseconds since the Unix epoch.
pub fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// One attempt, as the failover loop saw it.
#[derive(Debug)]
pub struct Attempt {
    pub span_id: [u8; 8],
    /// Index of the provider in the config snapshot.
    pub provider: usize,
    /// `provider/model`.
    pub target: String,
    pub model: String,
    pub start: Instant,
    pub end: Instant,
    pub status: Option<u16>,
    pub failure: Option<&'static str>,
}

/// A sampled call in flight.
#[derive(Debug)]
pub struct Live {
    pub settings: Arc<Settings>,
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent: Option<[u8; 8]>,
    pub state: Option<Box<str>>,
    /// Wall clock and monotonic clock at the request's start: later instants are placed on
    /// the wall clock from it.
    start_unix: u64,
    pub start: Instant,
    /// The span id of the attempt being sent (taken when it is recorded).
    pending: Cell<Option<[u8; 8]>>,
    pub attempts: Vec<Attempt>,
    /// When the response head went to the client.
    pub committed: Cell<Option<Instant>>,
    /// The body sent upstream (PII stand-ins, never originals), when content is exported.
    pub prompt: RefCell<Option<String>>,
    /// The provider's answer before any PII restore, when content is exported.
    pub completion: RefCell<Option<String>>,
    /// The translation ledger: what translation dropped or refused.
    pub ledger: Vec<String>,
}

/// Begin a call's trace, when tracing is on and the call is sampled. `started`: when the
/// request head was complete (the span's start).
pub fn begin(
    settings: Option<&Arc<Settings>>,
    traceparent: Option<&[u8]>,
    tracestate: Option<&[u8]>,
    started: Instant,
) -> Option<Box<Live>> {
    let settings = settings?;
    let parent = context::parse(traceparent, tracestate);
    let (sampled, trace_id, span_id) = with_ids(|ids| {
        let sampled = match &parent {
            Some(p) => p.sampled(),
            None => ids.sample(settings.sample_ratio),
        };
        let trace_id = match &parent {
            Some(p) => p.trace_id,
            None if sampled => ids.trace_id(),
            None => [0; 16],
        };
        (
            sampled,
            trace_id,
            if sampled { ids.span_id() } else { [0; 8] },
        )
    });
    if !sampled {
        return None;
    }
    let now = Instant::now();
    let start_unix = unix_nanos(SystemTime::now()).saturating_sub(
        u64::try_from(now.saturating_duration_since(started).as_nanos()).unwrap_or(0),
    );
    let (parent_id, state) = match parent {
        Some(p) => (Some(p.span_id), p.state),
        None => (None, None),
    };
    Some(Box::new(Live {
        settings: settings.clone(),
        trace_id,
        span_id,
        parent: parent_id,
        state,
        start_unix,
        start: started,
        pending: Cell::new(None),
        attempts: Vec::new(),
        committed: Cell::new(None),
        prompt: RefCell::new(None),
        completion: RefCell::new(None),
        ledger: Vec::new(),
    }))
}

impl Live {
    /// `t` on the wall clock, in Unix nanoseconds.
    pub fn unix(&self, t: Instant) -> u64 {
        self.start_unix.saturating_add(
            u64::try_from(t.saturating_duration_since(self.start).as_nanos()).unwrap_or(0),
        )
    }

    /// The `traceparent` for the attempt being sent, when the config asks for propagation:
    /// the attempt span's id, drawn now and kept for its span.
    pub fn attempt_traceparent(&self) -> Option<[u8; context::TRACEPARENT_BYTES]> {
        if !self.settings.propagate {
            return None;
        }
        let id = self.pending.get().unwrap_or_else(|| with_ids(Ids::span_id));
        self.pending.set(Some(id));
        Some(context::format(&self.trace_id, &id, context::FLAG_SAMPLED))
    }

    /// Record an attempt that ended (its span id is the one propagated, if any).
    pub fn attempt(&mut self, mut a: Attempt) {
        a.span_id = self
            .pending
            .take()
            .unwrap_or_else(|| with_ids(Ids::span_id));
        if self.attempts.len() < MAX_ATTEMPT_SPANS {
            self.attempts.push(a);
        }
    }

    /// Keep content (`body`, UTF-8 or not) in `slot`, in place of what it held, bounded.
    pub fn keep_content(slot: &RefCell<Option<String>>, body: &[u8]) {
        *slot.borrow_mut() = None;
        Live::add_content(slot, body);
    }

    /// Add `body` to the content in `slot`, up to [`MAX_CONTENT_BYTES`] in all (a character
    /// cut at the bound, or split between two reads, reads as U+FFFD).
    pub fn add_content(slot: &RefCell<Option<String>>, body: &[u8]) {
        add_content(slot.borrow_mut().get_or_insert_with(String::new), body);
    }
}

/// Add `body` to `text`, up to [`MAX_CONTENT_BYTES`] in all (a character cut at the bound, or
/// split between two calls, reads as U+FFFD). Full, it costs a comparison.
pub fn add_content(text: &mut String, body: &[u8]) {
    let room = MAX_CONTENT_BYTES.saturating_sub(text.len());
    if room == 0 {
        return;
    }
    let cut = body.len().min(room);
    text.push_str(&String::from_utf8_lossy(body.get(..cut).unwrap_or(body)));
}

/// Hand a finished call's spans to the exporter.
pub fn submit(settings: &Arc<Settings>, spans: Vec<span::Span>) {
    export::push(settings, spans);
}

/// A worker's control tick: its batch goes to the exporter.
pub fn tick() {
    export::tick();
}
