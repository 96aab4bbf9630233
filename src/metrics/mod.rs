//! Per-worker counters and latency histograms, and their Prometheus text rendering.
//!
//! Each worker records into its own `Worker` (single thread, `RefCell`, no locks on the request
//! path). Once a second, and on every scrape it answers itself, a worker publishes a snapshot
//! into its slot of the shared `Hub`. A scrape merges its own fresh snapshot with the other
//! workers' published ones, so `/metrics` is at most `PUBLISH_EVERY` stale for other workers.
//!
//! LLM series (time to first token, time per output token, tokens, streams in flight) are
//! keyed by route, provider and key name, each taken from the config (a model addressed as
//! `provider/model` is the route `direct`; no key is `-`): never a client's string, so the
//! series are at most (routes + 1) × providers × (keys + 1).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;

/// How often a worker publishes its snapshot for scrapes that land on other workers.
pub const PUBLISH_EVERY: Duration = Duration::from_secs(1);
/// Histogram range: 1 µs to 1 hour, 2 significant digits (1% quantile precision keeps each
/// histogram near 26 KB, cheap to clone every second).
const HIST_MAX_US: u64 = 3_600_000_000;
const HIST_SIGFIG: u8 = 2;
/// Quantiles reported for every histogram.
const QUANTILES: [f64; 5] = [0.5, 0.9, 0.99, 0.999, 1.0];

fn new_hist() -> Option<Histogram<u64>> {
    Histogram::new_with_bounds(1, HIST_MAX_US, HIST_SIGFIG).ok()
}

/// Time to first token buckets (seconds): the OpenTelemetry GenAI conventions' advice for
/// `gen_ai.server.time_to_first_token`.
pub const TTFT_BUCKETS: [f64; 16] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// Time per output token buckets (seconds): the GenAI conventions' advice for
/// `gen_ai.server.time_per_output_token`.
pub const TPOT_BUCKETS: [f64; 13] = [
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
];
/// Token types, in the order of [`Llm::tokens`]; the values of the `gen_ai_token_type` label.
pub const TOKEN_TYPES: [&str; 5] = ["input", "output", "cache_read", "cache_write", "reasoning"];
/// The `key` label of requests without a gateway key.
pub const NO_KEY_LABEL: &str = "-";
/// The `route` label of models addressed as `provider/model`.
pub const DIRECT_ROUTE_LABEL: &str = "direct";

/// A Prometheus histogram with fixed buckets: counts per bucket (not cumulative), sum, count.
#[derive(Clone, Debug, Default)]
struct Buckets {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Buckets {
    fn observe(&mut self, bounds: &[f64], v: f64) {
        if self.counts.len() != bounds.len() {
            self.counts.resize(bounds.len(), 0);
        }
        if let Some(i) = bounds.iter().position(|b| v <= *b) {
            if let Some(c) = self.counts.get_mut(i) {
                *c += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn merge(&mut self, other: &Buckets) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.sum += other.sum;
        self.count += other.count;
    }
}

/// One (route, provider, key) series.
#[derive(Clone, Debug, Default)]
struct Llm {
    /// Request received → first content event written to the client (streams that succeeded).
    ttft: Buckets,
    /// (Stream end − first token) / (output tokens − 1), per stream.
    tpot: Buckets,
    /// Tokens by [`TOKEN_TYPES`].
    tokens: [u64; 5],
    /// Answers that carried usage.
    metered: u64,
    /// Of those, answers whose usage the gateway estimated (streams cut short).
    estimated: u64,
    /// Streams being pumped now.
    in_flight: i64,
}

/// What one finished model call adds to its series.
#[derive(Clone, Copy, Debug, Default)]
pub struct Call {
    /// Time to first token (a stream that succeeded).
    pub ttft: Option<Duration>,
    /// Time per output token after the first (a stream that succeeded, with usage).
    pub tpot: Option<Duration>,
    /// The provider's usage.
    pub usage: Option<crate::usage::Usage>,
    /// `usage` is (in part) the gateway's estimate.
    pub estimated: bool,
}

/// route → provider → key → series (nested so that a lookup by borrowed names allocates
/// nothing once the series exists).
type LlmMap = BTreeMap<String, BTreeMap<String, BTreeMap<String, Llm>>>;

/// The series, made when missing (None only if a map lost what was just put in it).
fn series<'m>(map: &'m mut LlmMap, route: &str, provider: &str, key: &str) -> Option<&'m mut Llm> {
    level(level(level(map, route)?, provider)?, key)
}

/// The value under `name`, made when missing. `entry` would take an owned key: a `String`
/// made and dropped on every lookup, three per series on the request path.
fn level<'m, V: Default>(map: &'m mut BTreeMap<String, V>, name: &str) -> Option<&'m mut V> {
    if !map.contains_key(name) {
        map.insert(name.to_owned(), V::default());
    }
    map.get_mut(name)
}

/// Breaker states as the `ringway_breaker_state` gauge reports them.
pub mod breaker_state {
    /// Requests flow.
    pub const CLOSED: u8 = 0;
    /// Requests skip the target.
    pub const OPEN: u8 = 1;
    /// The cooldown ended: the next request is a probe.
    pub const HALF_OPEN: u8 = 2;
}

/// Everything one worker has counted.
#[derive(Clone, Default)]
pub struct Snapshot {
    /// `(endpoint, status)` → responses.
    requests: BTreeMap<(&'static str, u16), u64>,
    /// `(kind, side)` → gateway errors.
    errors: BTreeMap<(&'static str, &'static str), u64>,
    /// `(provider, status)` → provider responses.
    upstream: BTreeMap<(String, u16), u64>,
    /// `(client format, provider format)` → translated requests.
    translated: BTreeMap<(&'static str, &'static str), u64>,
    /// endpoint → request duration (µs).
    duration: BTreeMap<&'static str, Histogram<u64>>,
    /// Streams: request received → first event written to the client (µs).
    first_event: Option<Histogram<u64>>,
    /// target (`provider/model`) → provider sends.
    attempts: BTreeMap<String, u64>,
    /// provider → `anthropic-beta` values left out because the provider's kind refuses them.
    betas_dropped: BTreeMap<String, u64>,
    /// `(target, reason)` → attempts that did not serve and moved on (or gave up).
    fallbacks: BTreeMap<(String, &'static str), u64>,
    /// target → circuit breaker openings.
    breaker_opened: BTreeMap<String, u64>,
    /// `(key, limit)` → requests refused by a key's limit.
    rate_limited: BTreeMap<(String, &'static str), u64>,
    /// `(route, code)` → translation ledger entries (codes: `translate::Code`, a fixed list).
    ledger: BTreeMap<(String, &'static str), u64>,
    /// Idle upstream connections held.
    pool_idle: u64,
    /// TLS handshakes with clients that finished.
    tls_handshakes: u64,
    /// Model calls that left no custody record because they did not pass authentication.
    custody_unauthenticated: u64,
    /// PII: thinking blocks not restored to their end (the sealed edits' bound).
    pii_thinking_cut_short: u64,
    /// reason → TLS handshakes with clients that failed.
    tls_handshake_failures: BTreeMap<&'static str, u64>,
    /// LLM series by route, provider and key name.
    llm: LlmMap,
    /// `(target, worker)` → breaker state ([`breaker_state`]), read when the snapshot is taken.
    breakers: BTreeMap<(String, usize), u8>,
}

/// Add one to a counter keyed by a borrowed string, allocating the key only the first time.
/// Counts one for `(name, label)`; the name is copied only the first time it is seen.
fn bump_pair(map: &mut BTreeMap<(String, &'static str), u64>, name: &str, label: &'static str) {
    match map.iter_mut().find(|((n, l), _)| n == name && *l == label) {
        Some((_, v)) => *v += 1,
        None => {
            map.insert((name.to_owned(), label), 1);
        }
    }
}

fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    match map.get_mut(key) {
        Some(v) => *v += 1,
        None => {
            map.insert(key.to_owned(), 1);
        }
    }
}

impl Snapshot {
    fn merge(&mut self, other: &Snapshot) {
        for (k, v) in &other.requests {
            *self.requests.entry(*k).or_default() += v;
        }
        for (k, v) in &other.errors {
            *self.errors.entry(*k).or_default() += v;
        }
        for (k, v) in &other.upstream {
            *self.upstream.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.translated {
            *self.translated.entry(*k).or_default() += v;
        }
        for (k, h) in &other.duration {
            match self.duration.get_mut(k) {
                Some(mine) => {
                    let _ = mine.add(h);
                }
                None => {
                    self.duration.insert(k, h.clone());
                }
            }
        }
        match (&mut self.first_event, &other.first_event) {
            (Some(mine), Some(h)) => {
                let _ = mine.add(h);
            }
            (None, Some(h)) => self.first_event = Some(h.clone()),
            _ => {}
        }
        for (k, v) in &other.attempts {
            *self.attempts.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.betas_dropped {
            *self.betas_dropped.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.fallbacks {
            *self.fallbacks.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.breaker_opened {
            *self.breaker_opened.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.rate_limited {
            *self.rate_limited.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.ledger {
            *self.ledger.entry(k.clone()).or_default() += v;
        }
        self.pool_idle += other.pool_idle;
        self.tls_handshakes += other.tls_handshakes;
        self.custody_unauthenticated += other.custody_unauthenticated;
        self.pii_thinking_cut_short += other.pii_thinking_cut_short;
        for (k, v) in &other.tls_handshake_failures {
            *self.tls_handshake_failures.entry(k).or_default() += v;
        }
        for (route, by_provider) in &other.llm {
            for (provider, by_key) in by_provider {
                for (key, theirs) in by_key {
                    let Some(mine) = series(&mut self.llm, route, provider, key) else {
                        continue;
                    };
                    mine.ttft.merge(&theirs.ttft);
                    mine.tpot.merge(&theirs.tpot);
                    for (m, t) in mine.tokens.iter_mut().zip(theirs.tokens) {
                        *m += t;
                    }
                    mine.metered += theirs.metered;
                    mine.estimated += theirs.estimated;
                    mine.in_flight += theirs.in_flight;
                }
            }
        }
        for (k, v) in &other.breakers {
            self.breakers.insert(k.clone(), *v);
        }
    }

    /// Record `target`'s breaker state on `worker`.
    pub fn set_breaker(&mut self, target: &str, worker: usize, state: u8) {
        self.breakers.insert((target.to_owned(), worker), state);
    }
}

/// One worker's live metrics.
#[derive(Default)]
pub struct Worker {
    live: RefCell<Snapshot>,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, HIST_MAX_US)
}

impl Worker {
    /// A response was finished.
    pub fn request(&self, endpoint: &'static str, status: u16, took: Duration) {
        let mut s = self.live.borrow_mut();
        *s.requests.entry((endpoint, status)).or_default() += 1;
        if !s.duration.contains_key(endpoint) {
            if let Some(h) = new_hist() {
                s.duration.insert(endpoint, h);
            }
        }
        if let Some(h) = s.duration.get_mut(endpoint) {
            h.saturating_record(micros(took));
        }
    }

    /// The gateway produced an error (before or during the response).
    pub fn error(&self, kind: &'static str, side: &'static str) {
        *self
            .live
            .borrow_mut()
            .errors
            .entry((kind, side))
            .or_default() += 1;
    }

    /// A provider answered with `status`.
    pub fn upstream(&self, provider: &str, status: u16) {
        let mut s = self.live.borrow_mut();
        // Look up by borrowed key first: the common case allocates nothing.
        if let Some(v) = s
            .upstream
            .iter_mut()
            .find(|((p, st), _)| p == provider && *st == status)
            .map(|(_, v)| v)
        {
            *v += 1;
            return;
        }
        s.upstream.insert((provider.to_owned(), status), 1);
    }

    /// `n` `anthropic-beta` values were left out of a request to `provider` (its kind does not
    /// take them). The values themselves are the client's and unbounded: the dropped-params
    /// header names them, the metric counts them.
    pub fn betas_dropped(&self, provider: &str, n: usize) {
        let mut s = self.live.borrow_mut();
        let count = u64::try_from(n).unwrap_or(u64::MAX);
        match s.betas_dropped.get_mut(provider) {
            Some(v) => *v += count,
            None => {
                s.betas_dropped.insert(provider.to_owned(), count);
            }
        }
    }

    /// A request was sent to `target`.
    pub fn attempt(&self, target: &str) {
        bump(&mut self.live.borrow_mut().attempts, target);
    }

    /// An attempt on `target` did not serve, for `reason`.
    pub fn fallback(&self, target: &str, reason: &'static str) {
        bump_pair(&mut self.live.borrow_mut().fallbacks, target, reason);
    }

    /// `target`'s circuit breaker opened.
    pub fn breaker_opened(&self, target: &str) {
        bump(&mut self.live.borrow_mut().breaker_opened, target);
    }

    /// Key `key`'s `limit` (`requests`, `tokens`, `streams`) refused a request.
    pub fn rate_limited(&self, key: &str, limit: &'static str) {
        bump_pair(&mut self.live.borrow_mut().rate_limited, key, limit);
    }

    /// A translation ledger entry with `code` on a request to `route` (a route's name or
    /// `direct`: bounded by the config, as the LLM series are).
    pub fn ledger(&self, route: &str, code: &'static str) {
        bump_pair(&mut self.live.borrow_mut().ledger, route, code);
    }

    /// A request was translated between formats.
    pub fn translated(&self, client: &'static str, provider: &'static str) {
        *self
            .live
            .borrow_mut()
            .translated
            .entry((client, provider))
            .or_default() += 1;
    }

    /// The first event of a stream reached the client `after` the request arrived.
    pub fn first_event(&self, after: Duration) {
        let mut s = self.live.borrow_mut();
        if s.first_event.is_none() {
            s.first_event = new_hist();
        }
        if let Some(h) = s.first_event.as_mut() {
            h.saturating_record(micros(after));
        }
    }

    /// A client's TLS handshake finished (`Ok`) or failed, for a reason from a fixed set.
    pub fn tls_handshake(&self, outcome: Result<(), &'static str>) {
        let mut s = self.live.borrow_mut();
        match outcome {
            Ok(()) => s.tls_handshakes += 1,
            Err(reason) => *s.tls_handshake_failures.entry(reason).or_default() += 1,
        }
    }

    /// A model call that did not pass authentication finished: no custody record for it.
    pub fn custody_unauthenticated(&self) {
        self.live.borrow_mut().custody_unauthenticated += 1;
    }

    /// PII: `n` thinking blocks of a request were not restored to their end.
    pub fn pii_thinking_cut_short(&self, n: u32) {
        self.live.borrow_mut().pii_thinking_cut_short += u64::from(n);
    }

    /// A model call finished on the series (`route`, `provider`, `key`).
    pub fn call(&self, route: &str, provider: &str, key: &str, call: Call) {
        let mut s = self.live.borrow_mut();
        let Some(llm) = series(&mut s.llm, route, provider, key) else {
            return;
        };
        if let Some(t) = call.ttft {
            llm.ttft.observe(&TTFT_BUCKETS, t.as_secs_f64());
        }
        if let Some(t) = call.tpot {
            llm.tpot.observe(&TPOT_BUCKETS, t.as_secs_f64());
        }
        if let Some(u) = call.usage {
            let add = [u.input, u.output, u.cache_read, u.cache_write, u.reasoning];
            for (total, n) in llm.tokens.iter_mut().zip(add) {
                *total = total.saturating_add(n);
            }
            llm.metered += 1;
            llm.estimated += u64::from(call.estimated);
        }
    }

    /// A stream on the series starts being pumped; it counts as in flight until the guard
    /// is dropped (however the pump ends, a cancelled task included).
    pub fn stream<'w>(&'w self, route: &'w str, provider: &'w str, key: &'w str) -> InFlight<'w> {
        if let Some(llm) = series(&mut self.live.borrow_mut().llm, route, provider, key) {
            llm.in_flight += 1;
        }
        InFlight {
            worker: self,
            names: [route, provider, key],
        }
    }

    /// A copy of everything counted so far, with the pool gauge filled in.
    pub fn snapshot(&self, pool_idle: usize) -> Snapshot {
        let mut s = self.live.borrow().clone();
        s.pool_idle = pool_idle as u64;
        s
    }
}

/// A stream counted in `ringway_streams_in_flight` until dropped. The names are borrowed from
/// the request: a held stream carries no copies.
pub struct InFlight<'w> {
    worker: &'w Worker,
    names: [&'w str; 3],
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let [route, provider, key] = self.names;
        if let Ok(mut s) = self.worker.live.try_borrow_mut() {
            if let Some(llm) = series(&mut s.llm, route, provider, key) {
                llm.in_flight -= 1;
            }
        }
    }
}

/// The slots where workers publish snapshots (touched once a second and on scrape, never
/// per request).
pub struct Hub {
    slots: Vec<Mutex<Option<Snapshot>>>,
}

impl Hub {
    /// Slots for `workers` workers.
    pub fn new(workers: usize) -> Arc<Hub> {
        Arc::new(Hub {
            slots: (0..workers).map(|_| Mutex::new(None)).collect(),
        })
    }

    /// Publish worker `i`'s snapshot.
    pub fn publish(&self, i: usize, snap: Snapshot) {
        if let Some(slot) = self.slots.get(i) {
            if let Ok(mut g) = slot.lock() {
                *g = Some(snap);
            }
        }
    }

    /// Merge every worker's latest snapshot, using `own` (fresh) for worker `me`.
    pub fn merged(&self, me: usize, own: Snapshot) -> Snapshot {
        let mut total = own;
        for (i, slot) in self.slots.iter().enumerate() {
            if i == me {
                continue;
            }
            if let Ok(g) = slot.lock() {
                if let Some(s) = g.as_ref() {
                    total.merge(s);
                }
            }
        }
        total
    }
}

/// Escape a label value (Prometheus text format: backslash, quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn summary(out: &mut String, name: &str, labels: &str, h: &Histogram<u64>) {
    let sep = if labels.is_empty() { "" } else { "," };
    for q in QUANTILES {
        let v = h.value_at_quantile(q) as f64 / 1e6;
        let _ = writeln!(out, "{name}{{{labels}{sep}quantile=\"{q}\"}} {v}");
    }
    let sum = h.mean() * h.len() as f64 / 1e6;
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let _ = writeln!(out, "{name}_sum{braces} {sum}");
    let _ = writeln!(out, "{name}_count{braces} {}", h.len());
}

/// Render a merged snapshot in the Prometheus text format (version 0.0.4).
pub fn render(s: &Snapshot, workers_ready: usize) -> String {
    let mut out = String::with_capacity(4096);
    out.push_str("# HELP ringway_requests_total Responses sent, by endpoint and status.\n");
    out.push_str("# TYPE ringway_requests_total counter\n");
    for ((ep, status), n) in &s.requests {
        let _ = writeln!(
            out,
            "ringway_requests_total{{endpoint=\"{ep}\",status=\"{status}\"}} {n}"
        );
    }
    out.push_str(
        "# HELP ringway_request_duration_seconds Request received to response finished.\n",
    );
    out.push_str("# TYPE ringway_request_duration_seconds summary\n");
    for (ep, h) in &s.duration {
        summary(
            &mut out,
            "ringway_request_duration_seconds",
            &format!("endpoint=\"{ep}\""),
            h,
        );
    }
    out.push_str(
        "# HELP ringway_stream_first_event_seconds Request received to first SSE event sent.\n",
    );
    out.push_str("# TYPE ringway_stream_first_event_seconds summary\n");
    if let Some(h) = &s.first_event {
        summary(&mut out, "ringway_stream_first_event_seconds", "", h);
    }
    out.push_str(
        "# HELP ringway_errors_total Errors the gateway produced, by kind and failing side.\n",
    );
    out.push_str("# TYPE ringway_errors_total counter\n");
    for ((kind, side), n) in &s.errors {
        let _ = writeln!(
            out,
            "ringway_errors_total{{kind=\"{kind}\",side=\"{side}\"}} {n}"
        );
    }
    out.push_str(
        "# HELP ringway_upstream_responses_total Provider responses, by provider and status.\n",
    );
    out.push_str("# TYPE ringway_upstream_responses_total counter\n");
    for ((p, status), n) in &s.upstream {
        let _ = writeln!(
            out,
            "ringway_upstream_responses_total{{provider=\"{}\",status=\"{status}\"}} {n}",
            label(p)
        );
    }
    out.push_str("# HELP ringway_translated_total Requests translated between wire formats.\n");
    out.push_str("# TYPE ringway_translated_total counter\n");
    for ((from, to), n) in &s.translated {
        let _ = writeln!(
            out,
            "ringway_translated_total{{client=\"{from}\",provider=\"{to}\"}} {n}"
        );
    }
    out.push_str("# HELP ringway_attempts_total Requests sent to providers, by route target.\n");
    out.push_str("# TYPE ringway_attempts_total counter\n");
    for (t, n) in &s.attempts {
        let _ = writeln!(out, "ringway_attempts_total{{target=\"{}\"}} {n}", label(t));
    }
    out.push_str("# HELP ringway_betas_dropped_total anthropic-beta values left out of requests because the provider's kind does not take them.\n");
    out.push_str("# TYPE ringway_betas_dropped_total counter\n");
    for (p, n) in &s.betas_dropped {
        let _ = writeln!(
            out,
            "ringway_betas_dropped_total{{provider=\"{}\"}} {n}",
            label(p)
        );
    }
    out.push_str(
        "# HELP ringway_fallbacks_total Attempts that did not serve (the request retried, moved on or gave up), by target and reason.\n",
    );
    out.push_str("# TYPE ringway_fallbacks_total counter\n");
    for ((t, reason), n) in &s.fallbacks {
        let _ = writeln!(
            out,
            "ringway_fallbacks_total{{target=\"{}\",reason=\"{reason}\"}} {n}",
            label(t)
        );
    }
    out.push_str("# HELP ringway_breaker_opened_total Circuit breaker openings, by target.\n");
    out.push_str("# TYPE ringway_breaker_opened_total counter\n");
    for (t, n) in &s.breaker_opened {
        let _ = writeln!(
            out,
            "ringway_breaker_opened_total{{target=\"{}\"}} {n}",
            label(t)
        );
    }
    out.push_str(
        "# HELP ringway_rate_limited_total Requests refused by a key's limit, by key and limit (requests, tokens, streams).\n",
    );
    out.push_str("# TYPE ringway_rate_limited_total counter\n");
    for ((key, limit), n) in &s.rate_limited {
        let _ = writeln!(
            out,
            "ringway_rate_limited_total{{key=\"{}\",limit=\"{limit}\"}} {n}",
            label(key)
        );
    }
    out.push_str(
        "# HELP ringway_translation_ledger_total What translation dropped, changed or approximated, by route and ledger code.\n",
    );
    out.push_str("# TYPE ringway_translation_ledger_total counter\n");
    for ((route, code), n) in &s.ledger {
        let _ = writeln!(
            out,
            "ringway_translation_ledger_total{{route=\"{}\",code=\"{code}\"}} {n}",
            label(route)
        );
    }
    render_llm(&mut out, s);
    crate::trace::export::render_metrics(&mut out);
    out.push_str(
        "# HELP ringway_breaker_state Circuit breaker state of each route target on each worker: 0 closed, 1 open, 2 half-open.\n",
    );
    out.push_str("# TYPE ringway_breaker_state gauge\n");
    for ((t, worker), state) in &s.breakers {
        let _ = writeln!(
            out,
            "ringway_breaker_state{{target=\"{}\",worker=\"{worker}\"}} {state}",
            label(t)
        );
    }
    for (name, kind, help, value) in [
        (
            "ringway_access_log_dropped_total",
            "counter",
            "Access log lines dropped because the writer fell behind.",
            crate::access_log::dropped(),
        ),
        (
            "ringway_custody_dropped_total",
            "counter",
            "Custody records dropped because the writer fell behind.",
            crate::custody::dropped(),
        ),
        (
            "ringway_custody_write_failed_total",
            "counter",
            "Custody records lost because the store refused their batch.",
            crate::custody::write_failed(),
        ),
        (
            "ringway_responses_stored_total",
            "counter",
            "Responses written to the stored-responses store.",
            crate::responses_store::stats().stored,
        ),
        (
            "ringway_responses_store_dropped_total",
            "counter",
            "Responses not stored: the store's writer was behind, or they were larger than `max_response_bytes`, or what they continued was gone.",
            {
                let st = crate::responses_store::stats();
                st.dropped + st.too_big + st.orphaned + st.write_failed
            },
        ),
        (
            "ringway_responses_store_bytes",
            "gauge",
            "Sealed bytes held by the stored-responses store.",
            crate::responses_store::stats().bytes,
        ),
        (
            "ringway_custody_buffered",
            "gauge",
            "Custody records waiting in the backlog a node keeps while PostgreSQL is unreachable.",
            crate::custody::buffered(),
        ),
        (
            "ringway_custody_unauthenticated_total",
            "counter",
            "Model calls that left no custody record because they did not pass authentication.",
            s.custody_unauthenticated,
        ),
        (
            "ringway_pii_thinking_cut_short_total",
            "counter",
            "PII: thinking blocks whose stand-ins were restored only up to the sealed edits' bound (the rest reached the client as the provider wrote it).",
            s.pii_thinking_cut_short,
        ),
        (
            "ringway_upstream_idle_connections",
            "gauge",
            "Idle pooled provider connections.",
            s.pool_idle,
        ),
        (
            "ringway_tls_handshakes_total",
            "counter",
            "TLS handshakes with clients that finished.",
            s.tls_handshakes,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    out.push_str(
        "# HELP ringway_tls_handshake_failures_total TLS handshakes with clients that failed, by reason.\n",
    );
    out.push_str("# TYPE ringway_tls_handshake_failures_total counter\n");
    for (reason, n) in &s.tls_handshake_failures {
        let _ = writeln!(
            out,
            "ringway_tls_handshake_failures_total{{reason=\"{reason}\"}} {n}"
        );
    }
    out.push_str(
        "# HELP ringway_custody_buffer_dropped_total Custody records dropped, oldest first, from the backlog kept while the shared store was unreachable ([cluster] postgres_buffer_records), by reason.\n",
    );
    out.push_str("# TYPE ringway_custody_buffer_dropped_total counter\n");
    let _ = writeln!(
        out,
        "ringway_custody_buffer_dropped_total{{reason=\"postgres_unreachable\"}} {}",
        crate::custody::buffer_dropped()
    );
    out.push_str("# HELP ringway_workers_ready Workers listening.\n");
    out.push_str("# TYPE ringway_workers_ready gauge\n");
    let _ = writeln!(out, "ringway_workers_ready {workers_ready}");
    out
}

/// A Prometheus histogram's lines for one label set.
fn histogram(out: &mut String, name: &str, labels: &str, bounds: &[f64], h: &Buckets) {
    let mut cumulative = 0u64;
    for (i, le) in bounds.iter().enumerate() {
        cumulative += h.counts.get(i).copied().unwrap_or(0);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum);
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
}

/// The LLM series: GenAI-convention histograms, token counters, streams in flight.
fn render_llm(out: &mut String, s: &Snapshot) {
    let each = |f: &mut dyn FnMut(String, &Llm)| {
        for (route, by_provider) in &s.llm {
            for (provider, by_key) in by_provider {
                for (key, llm) in by_key {
                    let labels = format!(
                        "route=\"{}\",provider=\"{}\",key=\"{}\"",
                        label(route),
                        label(provider),
                        label(key)
                    );
                    f(labels, llm);
                }
            }
        }
    };
    out.push_str("# HELP gen_ai_server_time_to_first_token_seconds Request received to first content event sent, streams that succeeded.\n");
    out.push_str("# TYPE gen_ai_server_time_to_first_token_seconds histogram\n");
    each(&mut |labels, llm| {
        if llm.ttft.count > 0 {
            histogram(
                out,
                "gen_ai_server_time_to_first_token_seconds",
                &labels,
                &TTFT_BUCKETS,
                &llm.ttft,
            );
        }
    });
    out.push_str("# HELP gen_ai_server_time_per_output_token_seconds Time per output token after the first (inter-token latency), one observation per stream that succeeded with usage.\n");
    out.push_str("# TYPE gen_ai_server_time_per_output_token_seconds histogram\n");
    each(&mut |labels, llm| {
        if llm.tpot.count > 0 {
            histogram(
                out,
                "gen_ai_server_time_per_output_token_seconds",
                &labels,
                &TPOT_BUCKETS,
                &llm.tpot,
            );
        }
    });
    out.push_str("# HELP ringway_tokens_total Tokens the providers reported, by type (cache_read and cache_write are parts of input, reasoning a part of output).\n");
    out.push_str("# TYPE ringway_tokens_total counter\n");
    each(&mut |labels, llm| {
        if llm.metered > 0 {
            for (kind, n) in TOKEN_TYPES.iter().zip(llm.tokens) {
                let _ = writeln!(
                    out,
                    "ringway_tokens_total{{{labels},gen_ai_token_type=\"{kind}\"}} {n}"
                );
            }
        }
    });
    out.push_str("# HELP ringway_usage_estimated_total Answers whose tokens (in ringway_tokens_total) the gateway estimated: streams cut short before their provider said its usage.\n");
    out.push_str("# TYPE ringway_usage_estimated_total counter\n");
    each(&mut |labels, llm| {
        if llm.metered > 0 {
            let _ = writeln!(
                out,
                "ringway_usage_estimated_total{{{labels}}} {}",
                llm.estimated
            );
        }
    });
    out.push_str("# HELP ringway_streams_in_flight Streams being pumped to clients now.\n");
    out.push_str("# TYPE ringway_streams_in_flight gauge\n");
    each(&mut |labels, llm| {
        let _ = writeln!(
            out,
            "ringway_streams_in_flight{{{labels}}} {}",
            llm.in_flight
        );
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_and_renders() {
        let a = Worker::default();
        let b = Worker::default();
        a.request("chat_completions", 200, Duration::from_millis(2));
        b.request("chat_completions", 200, Duration::from_millis(4));
        b.request("messages", 429, Duration::from_millis(1));
        a.error("upstream_reset", "upstream");
        b.upstream("p\"x", 200);
        b.upstream("p\"x", 200);
        a.first_event(Duration::from_micros(300));
        a.attempt("p/m");
        b.attempt("p/m");
        b.fallback("p/m", "status_429");
        a.breaker_opened("p/m");
        a.rate_limited("team", "tokens");
        b.rate_limited("team", "tokens");
        a.tls_handshake(Ok(()));
        b.tls_handshake(Ok(()));
        b.tls_handshake(Err("timeout"));
        a.custody_unauthenticated();
        b.custody_unauthenticated();
        b.pii_thinking_cut_short(3);
        let hub = Hub::new(2);
        hub.publish(1, b.snapshot(3));
        let merged = hub.merged(0, a.snapshot(1));
        let text = render(&merged, 2);
        assert!(text
            .contains("ringway_requests_total{endpoint=\"chat_completions\",status=\"200\"} 2\n"));
        assert!(text.contains("ringway_requests_total{endpoint=\"messages\",status=\"429\"} 1\n"));
        assert!(text
            .contains("ringway_request_duration_seconds_count{endpoint=\"chat_completions\"} 2\n"));
        assert!(
            text.contains("ringway_errors_total{kind=\"upstream_reset\",side=\"upstream\"} 1\n")
        );
        assert!(text
            .contains("ringway_upstream_responses_total{provider=\"p\\\"x\",status=\"200\"} 2\n"));
        assert!(text.contains("ringway_upstream_idle_connections 4\n"));
        assert!(text.contains("ringway_stream_first_event_seconds_count 1\n"));
        assert!(text.contains("ringway_attempts_total{target=\"p/m\"} 2\n"));
        assert!(text.contains("ringway_fallbacks_total{target=\"p/m\",reason=\"status_429\"} 1\n"));
        assert!(text.contains("ringway_breaker_opened_total{target=\"p/m\"} 1\n"));
        assert!(text.contains("ringway_rate_limited_total{key=\"team\",limit=\"tokens\"} 2\n"));
        assert!(text.contains("ringway_tls_handshakes_total 2\n"));
        assert!(text.contains("ringway_custody_unauthenticated_total 2\n"));
        assert!(text.contains("ringway_pii_thinking_cut_short_total 3\n"));
        assert!(text.contains("ringway_tls_handshake_failures_total{reason=\"timeout\"} 1\n"));
        // Every sample line is `name{labels} value` or `name value` with a numeric value.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let v = line.rsplit(' ').next().unwrap();
            assert!(v.parse::<f64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn llm_series_merge_and_render_as_prometheus_histograms() {
        let a = Worker::default();
        let b = Worker::default();
        let usage = crate::usage::Usage {
            input: 10,
            output: 5,
            cache_read: 4,
            cache_write: 1,
            reasoning: 2,
        };
        let call = Call {
            ttft: Some(Duration::from_millis(30)),
            tpot: Some(Duration::from_millis(20)),
            usage: Some(usage),
            estimated: false,
        };
        a.call("fast", "p", "team", call);
        b.call(
            "fast",
            "p",
            "team",
            Call {
                estimated: true,
                ..call
            },
        );
        b.call(
            "direct",
            "p",
            NO_KEY_LABEL,
            Call {
                ttft: Some(Duration::from_secs(60)),
                ..Call::default()
            },
        );
        let held = b.stream("fast", "p", "team");
        let ended = a.stream("fast", "p", "team");
        drop(ended);
        let mut sb = b.snapshot(0);
        sb.set_breaker("p/m", 1, breaker_state::OPEN);
        let hub = Hub::new(2);
        hub.publish(1, sb);
        let mut own = a.snapshot(0);
        own.set_breaker("p/m", 0, breaker_state::CLOSED);
        let text = render(&hub.merged(0, own), 2);
        let l = "route=\"fast\",provider=\"p\",key=\"team\"";
        for want in [
            format!("gen_ai_server_time_to_first_token_seconds_bucket{{{l},le=\"0.02\"}} 0\n"),
            format!("gen_ai_server_time_to_first_token_seconds_bucket{{{l},le=\"0.04\"}} 2\n"),
            format!("gen_ai_server_time_to_first_token_seconds_bucket{{{l},le=\"+Inf\"}} 2\n"),
            format!("gen_ai_server_time_to_first_token_seconds_count{{{l}}} 2\n"),
            format!("gen_ai_server_time_per_output_token_seconds_bucket{{{l},le=\"0.025\"}} 2\n"),
            format!("ringway_tokens_total{{{l},gen_ai_token_type=\"input\"}} 20\n"),
            format!("ringway_tokens_total{{{l},gen_ai_token_type=\"cache_read\"}} 8\n"),
            format!("ringway_tokens_total{{{l},gen_ai_token_type=\"cache_write\"}} 2\n"),
            format!("ringway_tokens_total{{{l},gen_ai_token_type=\"reasoning\"}} 4\n"),
            format!("ringway_streams_in_flight{{{l}}} 1\n"),
            format!("ringway_usage_estimated_total{{{l}}} 1\n"),
            // Past the last bucket: only +Inf counts it.
            "gen_ai_server_time_to_first_token_seconds_bucket{route=\"direct\",provider=\"p\",key=\"-\",le=\"10\"} 0\n".to_owned(),
            "gen_ai_server_time_to_first_token_seconds_bucket{route=\"direct\",provider=\"p\",key=\"-\",le=\"+Inf\"} 1\n".to_owned(),
            "ringway_breaker_state{target=\"p/m\",worker=\"0\"} 0\n".to_owned(),
            "ringway_breaker_state{target=\"p/m\",worker=\"1\"} 1\n".to_owned(),
        ] {
            assert!(text.contains(&want), "missing {want}\n{text}");
        }
        // No usage on the direct series: no token lines for it.
        assert!(!text.contains("ringway_tokens_total{route=\"direct\""));
        drop(held);
        let again = render(&b.snapshot(0), 1);
        assert!(again.contains(&format!("ringway_streams_in_flight{{{l}}} 0\n")));
    }
}
