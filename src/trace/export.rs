//! Getting spans off the workers: each worker gathers finished spans in a batch of its own
//! (thread-local, no lock) and hands the batch over a bounded channel with `try_send` when it
//! holds [`BATCH_SPANS`] or at the worker's next control tick (20 ms). One helper thread
//! (`ringway-trace`) encodes (OTLP protobuf, gzip when asked) and POSTs them to the endpoint
//! the batch's config named, with the blocking client the credentials refresher uses
//! (timeouts of its own: 5 s connect, 5 s per read or write). A full channel (the collector
//! is down or slow) drops the batch and counts its spans
//! (`ringway_trace_spans_dropped_total{reason="queue_full"}`); a failed POST counts its spans
//! under `export_failed`. A worker never waits for any of it.

use std::cell::RefCell;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use super::span::Span;
use super::Settings;

/// Batches that may wait for the exporter; past this a worker's batch is dropped.
pub const QUEUE_BATCHES: usize = 256;
/// A worker hands its batch over once it holds this many spans (else at its next tick).
pub const BATCH_SPANS: usize = 128;
/// Most spans the exporter puts in one request (it merges batches already queued).
pub const MAX_EXPORT_SPANS: usize = 2048;
/// Fewest seconds between two warnings about spans dropped or exports failed.
const WARN_EVERY_SECS: u64 = crate::offload::WARN_EVERY.as_secs();

/// A worker's batch, with the settings (endpoint, headers) of the config it was made under:
/// a reload that moves the endpoint sends later batches to the new one.
struct Batch {
    settings: Arc<Settings>,
    spans: Vec<Span>,
}

static SINK: OnceLock<Option<SyncSender<Batch>>> = OnceLock::new();
static EXPORTED: AtomicU64 = AtomicU64::new(0);
static DROPPED_QUEUE: AtomicU64 = AtomicU64::new(0);
static DROPPED_EXPORT: AtomicU64 = AtomicU64::new(0);
static EXPORT_FAILURES: AtomicU64 = AtomicU64::new(0);
static LAST_WARN: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This worker's batch in the making.
    static PENDING: RefCell<Option<Batch>> = const { RefCell::new(None) };
}

/// Add a request's finished spans to this worker's batch; hand the batch over when full, or
/// first when it was made under other settings (a reload).
pub fn push(settings: &Arc<Settings>, spans: impl IntoIterator<Item = Span>) {
    PENDING.with(|p| {
        let mut p = p.borrow_mut();
        if p.as_ref()
            .is_some_and(|b| !Arc::ptr_eq(&b.settings, settings))
        {
            if let Some(b) = p.take() {
                hand_over(b);
            }
        }
        let batch = p.get_or_insert_with(|| Batch {
            settings: settings.clone(),
            spans: Vec::with_capacity(BATCH_SPANS),
        });
        batch.spans.extend(spans);
        if batch.spans.len() >= BATCH_SPANS {
            if let Some(b) = p.take() {
                hand_over(b);
            }
        }
    });
}

/// The worker's tick: hand over whatever its batch holds.
pub fn tick() {
    PENDING.with(|p| {
        let taken = p.borrow_mut().take();
        if let Some(b) = taken {
            hand_over(b);
        }
    });
}

fn hand_over(batch: Batch) {
    let n = batch.spans.len() as u64;
    let sent = sink().is_some_and(|tx| tx.try_send(batch).is_ok());
    if !sent {
        DROPPED_QUEUE.fetch_add(n, Ordering::Relaxed);
        warn("trace exporter is behind: spans dropped");
    }
}

/// The exporter's channel, its thread started on first use (a config may turn tracing on by
/// reload). None: the thread could not be started (every batch is then dropped, counted).
fn sink() -> Option<&'static SyncSender<Batch>> {
    SINK.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE_BATCHES);
        match std::thread::Builder::new()
            .name("ringway-trace".into())
            .spawn(move || run(&rx))
        {
            Ok(_) => Some(tx),
            Err(e) => {
                crate::log::error(format_args!("cannot start the trace exporter: {e}"));
                None
            }
        }
    })
    .as_ref()
}

/// At most one warning per [`WARN_EVERY_SECS`] across all threads.
fn warn(what: &str) {
    let now = crate::calendar::unix_secs(SystemTime::now());
    let last = LAST_WARN.load(Ordering::Relaxed);
    if now >= last.saturating_add(WARN_EVERY_SECS)
        && LAST_WARN
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        crate::log::warn(format_args!(
            "{what} (so far: {} exported, {} dropped while queued, {} in failed exports)",
            EXPORTED.load(Ordering::Relaxed),
            DROPPED_QUEUE.load(Ordering::Relaxed),
            DROPPED_EXPORT.load(Ordering::Relaxed)
        ));
    }
}

/// The exporter thread: batches for one endpoint that are already queued go out together.
fn run(rx: &Receiver<Batch>) {
    let mut carry: Option<Batch> = None;
    let mut body = Vec::with_capacity(64 * 1024);
    loop {
        let first = match carry.take() {
            Some(b) => b,
            None => match rx.recv() {
                Ok(b) => b,
                Err(_) => return,
            },
        };
        let settings = first.settings;
        let mut spans = first.spans;
        while spans.len() < MAX_EXPORT_SPANS {
            match rx.try_recv() {
                Ok(b)
                    if Arc::ptr_eq(&b.settings, &settings)
                        || b.settings.same_destination(&settings) =>
                {
                    spans.extend(b.spans)
                }
                Ok(b) => {
                    carry = Some(b);
                    break;
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        body.clear();
        super::otlp::encode(&settings.service_name, &spans, &mut body);
        let n = spans.len() as u64;
        drop(spans);
        match post(&settings, &body) {
            Ok(()) => {
                EXPORTED.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                DROPPED_EXPORT.fetch_add(n, Ordering::Relaxed);
                EXPORT_FAILURES.fetch_add(1, Ordering::Relaxed);
                crate::log::debug(format_args!(
                    "trace export to {} failed: {e}",
                    settings.endpoint
                ));
                warn(&format!(
                    "trace export to {} failed: {e}",
                    settings.endpoint
                ));
            }
        }
    }
}

/// One OTLP/HTTP request; Ok on a 2xx.
fn post(settings: &Settings, body: &[u8]) -> Result<(), String> {
    let gz;
    let body = if settings.gzip {
        let mut enc = flate2::write::GzEncoder::new(
            Vec::with_capacity(body.len() / 4),
            flate2::Compression::fast(),
        );
        enc.write_all(body).map_err(|e| e.to_string())?;
        gz = enc.finish().map_err(|e| e.to_string())?;
        &gz[..]
    } else {
        body
    };
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(4 + settings.headers.len());
    headers.push(("content-type", "application/x-protobuf"));
    headers.push(("user-agent", concat!("ringway/", env!("CARGO_PKG_VERSION"))));
    if settings.gzip {
        headers.push(("content-encoding", "gzip"));
    }
    for (n, v) in &settings.headers {
        headers.push((n, v));
    }
    let r = crate::credentials::fetch::request("POST", &settings.url, &headers, body)?;
    if (200..300).contains(&r.status) {
        Ok(())
    } else {
        Err(format!("status {}", r.status))
    }
}

/// What `/metrics` says about the exporter.
pub fn render_metrics(out: &mut String) {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "# HELP ringway_trace_spans_exported_total Spans the OTLP collector accepted.\n\
         # TYPE ringway_trace_spans_exported_total counter\n\
         ringway_trace_spans_exported_total {}\n\
         # HELP ringway_trace_spans_dropped_total Spans not exported: the exporter's queue was full (collector down or slow), or the export failed.\n\
         # TYPE ringway_trace_spans_dropped_total counter\n\
         ringway_trace_spans_dropped_total{{reason=\"queue_full\"}} {}\n\
         ringway_trace_spans_dropped_total{{reason=\"export_failed\"}} {}\n\
         # HELP ringway_trace_export_failures_total OTLP export requests that failed (no answer, or not 2xx).\n\
         # TYPE ringway_trace_export_failures_total counter\n\
         ringway_trace_export_failures_total {}",
        EXPORTED.load(Ordering::Relaxed),
        DROPPED_QUEUE.load(Ordering::Relaxed),
        DROPPED_EXPORT.load(Ordering::Relaxed),
        EXPORT_FAILURES.load(Ordering::Relaxed),
    );
}
