//! The upstream → client pump. A stream is one pump whatever the pair: SSE events are decoded
//! (zero-copy slices of what was read), passed through a stage (as they are, or through a
//! translator), framed and written once per read, never half an event. Before commit the same
//! pump can be primed: events are read up to the first content event and held, so a stream
//! that fails before saying anything can still fall back. Other bodies are copied as read.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::budget::{BufferBudget, HeldCharge};
use super::ctx;
use super::state::{self, Exchange, Failure};
use super::stored;
use crate::config::Provider;
use crate::dialect::{Format, Signal};
use crate::downstream::{ClientConn, Transport};
use crate::error::{Error, ErrorKind};
use crate::http1::{self, BodyCodec};
use crate::provider::{EventDecoder, Framing};
use crate::sse;
use crate::translate::{Pair, RequestMeta, StreamTranslator};
use crate::upstream::Conn;

/// Body chunks up to this size are copied next to the pending head and written with it;
/// larger ones go out on their own, zero-copy.
pub const COALESCE_MAX_BYTES: usize = 64 * 1024;

/// Largest single SSE event accepted from a provider.
pub const MAX_SSE_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// Largest event the PII restorer reads back from a stage: as large as any a translator
/// writes (a Gemini client's calls, held whole, escaped once more).
const MAX_RESTORED_EVENT_BYTES: usize = crate::translate::gemini::MAX_CHAINED_EVENT_BYTES;

/// Most bytes of events held before commit while waiting for the first content event; a
/// provider that sends more preamble than this is committed to as it is.
pub const MAX_PRIMED_BYTES: usize = 64 * 1024;

/// Most bytes a burst gathers for the client before they are written although the provider
/// has sent more: a provider that never lets its socket run dry is still relayed at the
/// client's pace, and a stream holds no more than this unwritten.
const MAX_BURST_BYTES: usize = 64 * 1024;

/// Events a batch is first given room for while it is read for content.
const UNREAD_EVENTS: usize = 16;

/// Chunk framing around one batch: a size line (up to 16 hex digits and CRLF) and a CRLF.
const CHUNK_FRAMING_BYTES: usize = 20;

/// Bytes of a worker's budget a translated Responses stream is charged per byte of answer
/// its translator holds for the final events (text, arguments, reasoning): the strings that
/// hold it grow by doubling, and the final events repeat it about four times over, escaped,
/// in the batch and in the write buffer. Measured: one stream with a 3.7 MB answer raised
/// peak RSS by 60 MiB (16 x).
pub const HELD_CHARGE_FACTOR: usize = 16;

/// A held answer is charged in steps of this many bytes: between two steps an event costs one
/// comparison.
pub const HELD_CHARGE_STEP: usize = 1 << 20;

/// Answer bytes a stream may hold before any is charged: most answers never get there, and a
/// gateway holding thousands of short streams pays nothing for them.
pub const HELD_FREE_BYTES: usize = 32 * 1024;

/// A translated Responses stream's charge for the answer it holds.
struct Held {
    charge: HeldCharge,
    /// Held bytes past which the next step is charged.
    next: usize,
}

impl Held {
    /// The translator holds more than is charged: charge the next steps, or end the stream
    /// (its error event into `out`) and let go of what it held.
    fn grow(&mut self, tr: &mut StreamTranslator, out: &mut Vec<u8>) {
        let held = tr.held_bytes();
        let want = held
            .saturating_mul(HELD_CHARGE_FACTOR)
            .div_ceil(HELD_CHARGE_STEP)
            .saturating_mul(HELD_CHARGE_STEP);
        if self.charge.resize(want) {
            self.next = want / HELD_CHARGE_FACTOR;
            return;
        }
        tr.fail_unheld(
            &format!(
                "the gateway cannot hold more of this answer for its final event: this worker's budget for held bodies (server.max_buffered_bytes = {}) is spent; retry shortly",
                self.charge.limit()
            ),
            out,
        );
        self.charge.resize(0);
        self.next = usize::MAX;
    }
}

/// The event with the provider's credential scrubbed from its bytes and data.
fn scrub_event(scrubber: &crate::scrub::Scrubber, ev: sse::Event) -> sse::Event {
    let Some(raw) = scrubber.scrub(&ev.raw) else {
        return ev;
    };
    let data = match ev.data.as_deref().and_then(|d| scrubber.scrub(d)) {
        Some(clean) => Some(Bytes::from(clean)),
        None => ev.data.clone(),
    };
    sse::Event {
        raw: Bytes::from(raw),
        data,
        ..ev
    }
}

/// The provider stream's decode error (an event over [`MAX_SSE_EVENT_BYTES`], or a broken
/// binary frame), before commit or after.
fn stream_error(e: &sse::SseError) -> Error {
    let text = match e {
        sse::SseError::EventTooLarge => {
            format!("provider sent an SSE event larger than {MAX_SSE_EVENT_BYTES} bytes")
        }
        // A binary framing's fault (Bedrock's event stream): say which.
        sse::SseError::BadFrame(_) => format!("provider stream: {e}"),
    };
    Error::new(ErrorKind::UpstreamProtocol, text)
}

/// What the stream does with each event.
enum Stage {
    /// Same dialect: the event's bytes go out as they came. `terminated`: the stream's final
    /// event went by. `hide_usage`: the gateway asked for the usage chunk, not the client
    /// (OpenAI): that chunk is read, not relayed.
    Passthrough {
        format: Format,
        terminated: bool,
        hide_usage: bool,
    },
    /// Another dialect: the translator writes the client's events.
    Translate(StreamTranslator),
}

/// The stage's translator, if it has one.
fn translator(stage: &Stage) -> Option<&StreamTranslator> {
    match stage {
        Stage::Translate(tr) => Some(tr),
        Stage::Passthrough { .. } => None,
    }
}

/// How priming ended without reaching content.
pub(super) struct PrimeMiss {
    /// What went wrong.
    pub error: Error,
    /// Metrics label of the fallback reason.
    pub reason: &'static str,
}

/// One stream's pump: its body framing, SSE decoder and stage, and the client bytes made
/// before commit.
pub struct Stream {
    provider: Format,
    stage: Stage,
    /// The provider's framing, decoded into events.
    dec: EventDecoder,
    pub(super) codec: BodyCodec,
    /// Event bytes of one read, passthrough (slices, not copies).
    raws: Vec<Bytes>,
    /// Translated bytes of one read, or everything held before commit.
    out: Vec<u8>,
    /// Usage and stop reason, read from the provider's events as they pass.
    pub(super) meter: crate::usage::Meter,
    /// A content event has gone through the stage (the time to first token is taken when the
    /// batch holding it is written).
    content: bool,
    /// Until then, the events of the batch not classified yet (references into what was
    /// read): the batch is read for content from its newest event back when it is written, so
    /// a burst that ends in `[DONE]` or `message_stop` costs one look, not a parse per event.
    unread: Vec<sse::Event>,
    /// The client's dialect (what the PII restorer reads).
    client: Format,
    /// PII on: the stage's client-dialect events are re-read and their stand-ins restored.
    /// Boxed: 408 bytes every held stream would carry with PII off.
    pii: Option<Box<PiiStage>>,
    /// The provider's credential matcher: its error events are scrubbed before the stage.
    scrubber: Option<std::sync::Arc<crate::scrub::Scrubber>>,
    /// A stored Responses answer: its terminal event's response is kept before it goes out.
    capture: Option<Box<stored::Capture>>,
    /// A translated Responses stream: the answer it holds, charged to the worker's budget.
    held: Option<Held>,
    /// The route exports content to the call's span: the provider's events as it sent them
    /// (before any PII restore), bounded by [`crate::trace::MAX_CONTENT_BYTES`]. None (and
    /// nothing allocated) otherwise.
    completion: Option<String>,
}

/// The restore step after the stage: what the stage wrote is decoded again (translated
/// output is SSE text) and each event goes through the event restorer. A Gemini client that
/// asked for one JSON array gets it from here, after the restore (the restorer reads SSE).
struct PiiStage {
    dec: sse::Decoder,
    restorer: crate::pii::EventRestorer,
    array: Option<ArrayOut>,
    /// The stage's output could not be read back: the stream has ended with an error.
    failed: bool,
}

/// The restored SSE turned into the JSON array a Gemini client asked for.
struct ArrayOut {
    dec: sse::Decoder,
    array: crate::translate::gemini::JsonArrayStream,
}

impl Stream {
    /// A pump for a 2xx event stream of `pair`.
    pub fn new(pair: Pair, meta: Option<&RequestMeta>, codec: BodyCodec) -> Stream {
        let stage = match meta.and_then(|m| pair.stream(m)) {
            Some(tr) => Stage::Translate(tr),
            None => Stage::Passthrough {
                format: pair.client,
                terminated: false,
                hide_usage: false,
            },
        };
        Stream {
            provider: pair.provider,
            stage,
            dec: Framing::Sse.decoder(MAX_SSE_EVENT_BYTES),
            codec,
            raws: Vec::new(),
            out: Vec::new(),
            meter: crate::usage::Meter::new(pair.provider),
            content: false,
            unread: Vec::new(),
            pii: None,
            client: pair.client,
            scrubber: None,
            capture: None,
            held: None,
            completion: None,
        }
    }

    /// Keep the provider's events as they pass (up to [`crate::trace::MAX_CONTENT_BYTES`]),
    /// for the span's completion: only a sampled call on a route that exports content.
    pub(super) fn keep_completion(&mut self) {
        self.completion = Some(String::new());
    }

    /// The provider's events kept for the span (see [`Stream::keep_completion`]).
    pub(super) fn take_completion(&mut self) -> Option<String> {
        self.completion.take()
    }

    /// Read the provider's stream in `framing` (SSE unless its kind says otherwise).
    pub(super) fn framed(&mut self, framing: Framing) {
        self.dec = framing.decoder(MAX_SSE_EVENT_BYTES);
    }

    /// Charge what a translated Responses stream holds for its final events to `budget` as it
    /// grows (other streams hold only bounded pieces).
    pub(super) fn charge_held(&mut self, budget: Rc<BufferBudget>) {
        if self.client == Format::Responses && matches!(self.stage, Stage::Translate(_)) {
            self.held = Some(Held {
                charge: HeldCharge::new(budget),
                next: HELD_FREE_BYTES,
            });
        }
    }

    /// Scrub the provider's credential from its in-stream error events (only those: the rest
    /// is the model's answer).
    pub(super) fn scrub_errors(&mut self, scrubber: std::sync::Arc<crate::scrub::Scrubber>) {
        self.scrubber = Some(scrubber);
    }

    /// Keep the stream's final response (a stored Responses answer) as its events go out.
    pub(super) fn capture(&mut self, capture: stored::Capture) {
        self.capture = Some(Box::new(capture));
    }

    /// Restore the request's stand-ins in what the client gets. Same-dialect events are then
    /// copied (and re-written where they carry text) instead of relayed as slices.
    pub(super) fn restore_pii(&mut self, set: std::sync::Arc<crate::pii::RestoreSet>) {
        // The JSON-array form moves behind the restore: the stage writes SSE.
        let array = match std::mem::replace(
            &mut self.stage,
            Stage::Passthrough {
                format: self.client,
                terminated: false,
                hide_usage: false,
            },
        ) {
            Stage::Translate(tr) => match tr.without_array() {
                (Some(inner), array) => {
                    self.stage = Stage::Translate(inner);
                    array
                }
                (None, array) => array,
            },
            passthrough => {
                self.stage = passthrough;
                false
            }
        };
        self.pii = Some(Box::new(PiiStage {
            // Read back whatever the stage may write: a translator holds up to this much.
            dec: sse::Decoder::new(MAX_RESTORED_EVENT_BYTES),
            restorer: crate::pii::EventRestorer::new(set, self.client),
            array: array.then(|| ArrayOut {
                dec: sse::Decoder::new(MAX_RESTORED_EVENT_BYTES),
                array: crate::translate::gemini::JsonArrayStream::new(),
            }),
            failed: false,
        }));
    }

    /// Runs what the stage appended to `out` since `mark` through the PII restorer.
    fn restore_from(&mut self, mark: usize, last: bool) {
        let Some(p) = self.pii.as_mut() else { return };
        let produced = self.out.split_off(mark.min(self.out.len()));
        if p.failed {
            return;
        }
        p.dec.push(Bytes::from(produced));
        let mut restored = Vec::new();
        let sink = if p.array.is_some() {
            &mut restored
        } else {
            &mut self.out
        };
        loop {
            match p.dec.next_event() {
                Ok(Some(ev)) => match ev.data.as_deref() {
                    Some(data) => p.restorer.on_event(ev.event.as_deref(), data, sink),
                    None => sink.extend_from_slice(&ev.raw),
                },
                Ok(None) => break,
                Err(e) => {
                    // Never lost silently: the client's error event ends the stream.
                    let e = Error::new(
                        ErrorKind::UpstreamProtocol,
                        format!("the answer could not be restored: {e}"),
                    );
                    p.failed = true;
                    match p.array.as_mut() {
                        Some(a) => a.array.fail(e.message(), &mut self.out),
                        None => self.client.write_error_frame(&e, &mut self.out),
                    }
                    return;
                }
            }
        }
        if last {
            p.restorer.finish(sink);
            if let Some(rest) = p.dec.finish() {
                sink.extend_from_slice(&rest.raw);
            }
        }
        if let Some(a) = p.array.as_mut() {
            a.dec.push(Bytes::from(restored));
            while let Ok(Some(ev)) = a.dec.next_event() {
                if let Some(data) = ev.data.as_deref() {
                    a.array.on_event(None, data, &mut self.out);
                }
            }
            if last {
                if let Some(data) = a.dec.finish().and_then(|ev| ev.data) {
                    a.array.on_event(None, &data, &mut self.out);
                }
                a.array.finish(&mut self.out);
            }
        }
    }

    /// The gateway, not the client, asked an OpenAI provider for usage: its usage-only chunk
    /// is read and not relayed.
    pub(super) fn hide_usage_chunk(&mut self) {
        if let Stage::Passthrough {
            format: Format::OpenAi,
            hide_usage,
            ..
        } = &mut self.stage
        {
            *hide_usage = true;
        }
    }

    /// Has a content event gone through the stage? Reads the events not classified yet.
    pub(super) fn said_something(&mut self) -> bool {
        if !self.content {
            let provider = self.provider;
            self.content = self
                .unread
                .iter()
                .rev()
                .any(|ev| provider.signal(ev) == Signal::Content);
        }
        // Let go of the provider's buffers: a stream waits far longer than it reads.
        self.unread = Vec::new();
        self.content
    }

    /// One event through the stage. Before commit passthrough bytes are copied into `out`
    /// (they wait there); after, they are kept as slices until the batch is framed.
    fn on_event(&mut self, ev: sse::Event, held: bool) {
        let ev = match &self.scrubber {
            Some(s) if self.provider.is_error_event(&ev) => scrub_event(s, ev),
            _ => ev,
        };
        // The provider's words, stand-ins and all: the restore is a later step of the stage.
        if let Some(c) = self.completion.as_mut() {
            crate::trace::add_content(c, &ev.raw);
        }
        // The provider's side is where usage is true, whatever the stage makes of it. Read
        // per batch (the newest chunk back), except where hiding the usage chunk needs to know
        // at once.
        let hide_usage = matches!(
            self.stage,
            Stage::Passthrough {
                hide_usage: true,
                ..
            }
        );
        let usage_only = match &ev.data {
            Some(d) => self.meter.defer(ev.event.as_deref(), d, hide_usage),
            None => false,
        };
        if !self.content && !held {
            // Only until the first content event (priming classifies its own). Sized for a
            // burst at once: growing one event at a time cost more than the clones.
            if self.unread.is_empty() {
                self.unread.reserve(UNREAD_EVENTS);
            }
            self.unread.push(ev.clone());
        }
        match &mut self.stage {
            Stage::Passthrough {
                format, terminated, ..
            } => {
                *terminated |= format.is_terminal(&ev);
                if usage_only {
                    return;
                }
                if held || self.pii.is_some() {
                    let mark = self.out.len();
                    self.out.extend_from_slice(&ev.raw);
                    self.restore_from(mark, false);
                } else {
                    self.raws.push(ev.raw);
                }
            }
            Stage::Translate(tr) => {
                if let Some(data) = ev.data.as_deref() {
                    let mark = self.out.len();
                    tr.on_event(ev.event.as_deref(), data, &mut self.out);
                    if let Some(h) = self.held.as_mut().filter(|h| tr.held_bytes() > h.next) {
                        h.grow(tr, &mut self.out);
                    }
                    self.restore_from(mark, false);
                }
            }
        }
    }

    /// Read until the first content event (within `first_token` from now, when set), holding
    /// what the stage makes of the events. Err: the stream failed or stalled before content;
    /// nothing has been written to the client.
    pub(super) async fn prime(
        &mut self,
        up: &mut Conn,
        provider: &Provider,
        first_token: Option<Duration>,
        deadline: Instant,
    ) -> Result<(), PrimeMiss> {
        let deadline = first_token.map_or(deadline, |t| deadline.min(Instant::now() + t));
        let mut read = 0usize;
        loop {
            let now = Instant::now();
            let wait = deadline
                .saturating_duration_since(now)
                .min(provider.idle_timeout);
            if wait.is_zero() {
                return Err(PrimeMiss {
                    error: Error::new(
                        ErrorKind::FirstByteTimeout,
                        "provider sent no content before the first-token deadline",
                    ),
                    reason: "first_token_timeout",
                });
            }
            let data = match up.read_chunk(&mut self.codec, wait).await {
                Ok(Some(d)) => d,
                Ok(None) => {
                    return Err(PrimeMiss {
                        error: Error::new(
                            ErrorKind::UpstreamReset,
                            "provider stream ended before any content",
                        ),
                        reason: "reset_before_content",
                    })
                }
                Err(e) if e.kind() == ErrorKind::IdleTimeout && Instant::now() >= deadline => {
                    return Err(PrimeMiss {
                        error: Error::new(
                            ErrorKind::FirstByteTimeout,
                            "provider sent no content before the first-token deadline",
                        ),
                        reason: "first_token_timeout",
                    })
                }
                Err(e) => {
                    let reason = match e.kind() {
                        ErrorKind::IdleTimeout => "idle_timeout",
                        _ => "reset_before_content",
                    };
                    return Err(PrimeMiss { error: e, reason });
                }
            };
            read = read.saturating_add(data.len());
            self.tick();
            self.dec.push(data);
            let mut content = false;
            loop {
                match self.dec.next_event() {
                    Ok(Some(ev)) => {
                        match self.provider.signal(&ev) {
                            Signal::Error => {
                                let text =
                                    String::from_utf8_lossy(ev.data.as_deref().unwrap_or_default());
                                return Err(PrimeMiss {
                                    error: Error::new(
                                        ErrorKind::UpstreamProtocol,
                                        format!(
                                            "provider stream failed before any content: {}",
                                            text.chars().take(200).collect::<String>()
                                        ),
                                    ),
                                    reason: "stream_error",
                                });
                            }
                            Signal::Content => content = true,
                            Signal::Preamble => {}
                        }
                        self.on_event(ev, true);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        return Err(PrimeMiss {
                            error: stream_error(&e),
                            reason: "protocol",
                        })
                    }
                }
            }
            // The provider's bytes decide, not what the stage made of them: a translated
            // preamble may repeat large request values (a Responses `response.created` echoes
            // the instructions and tools) without the provider having said anything.
            if content || read > MAX_PRIMED_BYTES {
                self.content = content;
                return Ok(());
            }
        }
    }

    /// Append what priming held, framed, to `wbuf` (behind the head).
    pub(super) fn take_primed(&mut self, wbuf: &mut Vec<u8>, chunked: bool) -> bool {
        let any = !self.out.is_empty();
        if let Some(c) = self.capture.as_mut() {
            c.look(&self.out, translator(&self.stage));
        }
        frame(wbuf, &self.out, chunked);
        self.out.clear();
        any
    }

    /// Tell a translator that dates its output the time, once per read.
    fn tick(&mut self) {
        if let Stage::Translate(tr) = &mut self.stage {
            if tr.dates_output() {
                tr.set_now(ctx::unix_now());
            }
        }
    }

    /// Frame this read's output (slices and translated bytes) as one chunk.
    fn frame_batch(&mut self, wbuf: &mut Vec<u8>, chunked: bool) {
        let len: usize = self.raws.iter().map(Bytes::len).sum::<usize>() + self.out.len();
        if len == 0 {
            return;
        }
        if let Some(c) = self.capture.as_mut() {
            let tr = translator(&self.stage);
            for r in &self.raws {
                c.look(r, tr);
            }
            c.look(&self.out, tr);
        }
        // One allocation: a held stream's write buffer is let go between events.
        wbuf.reserve(len + CHUNK_FRAMING_BYTES);
        if chunked {
            http1::write_chunk_header(wbuf, len);
        }
        for r in self.raws.drain(..) {
            wbuf.extend_from_slice(&r);
        }
        wbuf.extend_from_slice(&self.out);
        self.out.clear();
        if chunked {
            wbuf.extend_from_slice(b"\r\n");
        }
    }

    /// Decode `data`'s complete events through the stage into the batch the next
    /// [`Stream::frame_batch`] frames. Err: an event over [`MAX_SSE_EVENT_BYTES`]; the events
    /// before it are in the batch.
    fn take(&mut self, data: Bytes) -> Result<(), Error> {
        self.tick();
        self.dec.push(data);
        loop {
            match self.dec.next_event() {
                Ok(Some(ev)) => self.on_event(ev, false),
                Ok(None) => return Ok(()),
                Err(e) => return Err(stream_error(&e)),
            }
        }
    }

    /// One read's worth of a committed stream: its complete events through the stage, framed
    /// as one chunk appended to `wbuf` (nothing when no event completed). Err: an event over
    /// [`MAX_SSE_EVENT_BYTES`]; what came before it is in `wbuf`. The pure step between a read
    /// and a write, so benches and tests drive it without sockets.
    pub fn feed(&mut self, data: Bytes, wbuf: &mut Vec<u8>, chunked: bool) -> Result<(), Error> {
        let taken = self.take(data);
        self.frame_batch(wbuf, chunked);
        taken
    }

    /// Everything the upstream read buffer already holds, through the stage, with no syscall.
    /// Ok(true): the body ended there.
    fn drain(&mut self, up: &mut Conn) -> Result<bool, Error> {
        while let Some(data) = up.buffered_chunk(&mut self.codec)? {
            self.take(data)?;
        }
        Ok(self.codec.is_done())
    }

    /// The provider's stream ended (`failure`: how it broke, if it did). The stage closes the
    /// client's stream into `wbuf` (its dialect's error event if the provider's broke or ended
    /// early), then the last chunk. Returns whether the client's stream ended properly.
    pub fn finish(&mut self, failure: Option<&Error>, wbuf: &mut Vec<u8>, chunked: bool) -> bool {
        let mark = self.out.len();
        let complete = match (&mut self.stage, failure) {
            (Stage::Passthrough { terminated, .. }, None) if *terminated => true,
            (
                Stage::Passthrough {
                    format, terminated, ..
                },
                _,
            ) => {
                if !*terminated {
                    let e = failure.map_or_else(
                        || {
                            Error::new(
                                ErrorKind::UpstreamReset,
                                "provider stream ended before its final event",
                            )
                        },
                        |e| Error::new(e.kind(), e.message().to_owned()),
                    );
                    format.write_error_frame(&e, &mut self.out);
                }
                false
            }
            (Stage::Translate(tr), None) => {
                tr.finish(&mut self.out);
                tr.is_done()
            }
            (Stage::Translate(tr), Some(e)) => {
                tr.fail(e.message(), &mut self.out);
                false
            }
        };
        self.restore_from(mark, true);
        self.frame_batch(wbuf, chunked);
        if chunked {
            wbuf.extend_from_slice(http1::LAST_CHUNK);
        }
        complete
    }

    /// Pump the committed stream to its end. `conn.wbuf` may hold the head and primed events;
    /// they go out with the first batch. A stream that breaks or ends without its final event
    /// gets the client dialect's error event and a clean end, never a silent truncation.
    ///
    /// Writes happen only before a read that may wait: what one read brought (several HTTP
    /// chunks, often the body's end too) goes out in one write, and nothing that arrived is
    /// held while the provider is silent.
    pub(super) async fn run<S: Transport>(
        &mut self,
        conn: &mut ClientConn<S>,
        ex: &Exchange<'_>,
        up: &mut Conn,
        provider: &Provider,
        chunked: bool,
    ) -> Result<(), Failure> {
        // Bytes read without the driver since the last await.
        let mut burst = 0usize;
        let failure = loop {
            match self.drain(up) {
                Ok(false) => {}
                Ok(true) => break None,
                Err(e) => break Some(e),
            }
            conn.unpark_wbuf();
            self.frame_batch(&mut conn.wbuf, chunked);
            // Bytes already waiting in the socket are read now and go out in the same write (a
            // stream that arrives in a burst larger than a read buffer costs one write, not one
            // per buffer). Bounded by what it read as well as by what it wrote: events the
            // stage swallows write nothing, and this loop must not hold the worker without an
            // await.
            if conn.wbuf.len() < MAX_BURST_BYTES && burst < MAX_BURST_BYTES {
                match up.read_waiting() {
                    Ok(0) => {}
                    Ok(n) => {
                        burst += n;
                        continue;
                    }
                    Err(e) => break Some(e),
                }
            }
            burst = 0;
            // Usage as it arrives (Anthropic says its input at the start), current before
            // every read that may wait; a burst is read for it once, from its newest event.
            ex.response.metered.set(self.meter.metered());
            state::charge_usage(ex);
            // Read even when nothing is written (events the stage swallowed): nothing
            // that was read is held while the provider is silent.
            let said = self.said_something();
            if !conn.wbuf.is_empty() {
                ex.first_event_sent();
                if said {
                    ex.first_token_sent();
                }
                if conn.flush().await.is_err() {
                    return Err(Failure::AfterResponse);
                }
            }
            // A stream waits far longer than it writes: its write buffer is not held while it
            // waits (~1 KiB per held stream).
            conn.park_wbuf();
            // A drain's end cuts the stream here: the client gets its dialect's error event.
            let read = ex
                .cut
                .race(up.read_chunk(&mut self.codec, provider.idle_timeout));
            match read.await {
                Some(Ok(Some(data))) => {
                    if let Err(e) = self.take(data) {
                        break Some(e);
                    }
                }
                Some(Ok(None)) => break None,
                Some(Err(e)) => break Some(e),
                None => break Some(ctx::shutting_down()),
            }
        };
        conn.unpark_wbuf();
        let held = conn.wbuf.len();
        let complete = self.finish(failure.as_ref(), &mut conn.wbuf, chunked);
        // Events not written yet (a burst read to the stream's end, or cut by its failure, is
        // written only here) are the client's first when nothing went before them.
        let terminator = if chunked { http1::LAST_CHUNK.len() } else { 0 };
        if held > 0 || conn.wbuf.len() > held + terminator {
            ex.first_event_sent();
        }
        if let Some(e) = &failure {
            ex.response.failed_midway.set(Some(e.kind()));
            crate::log::warn(format_args!(
                "{} provider `{}` stream failed: {e}",
                ex.request_id, provider.name
            ));
        } else if !complete {
            ex.response
                .failed_midway
                .set(Some(ErrorKind::UpstreamReset));
        }
        if self.said_something() {
            // A stream that arrived in one read says its first token only here.
            ex.first_token_sent();
        }
        if conn.flush().await.is_err() {
            return Err(Failure::AfterResponse);
        }
        if complete && failure.is_none() {
            Ok(())
        } else {
            // The client has a complete stream that ends with an error event (or the provider
            // misbehaved after the end): its connection may carry the next request; the
            // provider's may not.
            Err(Failure::Ended)
        }
    }
}

/// Append `data` as one HTTP chunk, or raw for a close-delimited body. Empty data adds nothing.
pub(super) fn frame(out: &mut Vec<u8>, data: &[u8], chunked: bool) {
    if chunked {
        http1::write_chunk(out, data);
    } else {
        out.extend_from_slice(data);
    }
}

/// Relay a non-SSE body as read. `conn.wbuf` holds the response head on entry; it goes out
/// with the first body bytes. On an upstream failure mid-body there is no way to signal it in
/// band: the client connection is closed so the truncation is visible.
pub(super) async fn plain<S: Transport>(
    conn: &mut ClientConn<S>,
    ex: &Exchange<'_>,
    up: &mut Conn,
    codec: &mut BodyCodec,
    provider: &Provider,
    chunked: bool,
    meter: &mut crate::usage::BodyMeter,
) -> Result<(), Failure> {
    loop {
        let read = ex.cut.race(up.read_chunk(codec, provider.idle_timeout));
        let Some(read) = read.await else {
            // A drain's end: no in-band way to say so in a plain body; closing shows the cut.
            ex.response.failed_midway.set(Some(ErrorKind::ShuttingDown));
            return Err(Failure::AfterResponse);
        };
        match read {
            Ok(Some(data)) => {
                meter.push(&data);
                super::trace::completion(ex, &data);
                let ended = codec.is_done();
                let sent = if chunked {
                    http1::write_chunk(&mut conn.wbuf, &data);
                    if ended {
                        conn.wbuf.extend_from_slice(http1::LAST_CHUNK);
                    }
                    conn.flush().await
                } else if data.len() <= COALESCE_MAX_BYTES {
                    conn.wbuf.extend_from_slice(&data);
                    conn.flush().await
                } else {
                    // Large: send what is pending, then the chunk itself without copying it.
                    match conn.flush().await {
                        Ok(()) => conn.write_bytes(data).await,
                        Err(e) => Err(e),
                    }
                };
                conn.wbuf.clear();
                if sent.is_err() {
                    return Err(Failure::AfterResponse);
                }
                if ended {
                    return Ok(());
                }
            }
            Ok(None) => {
                if chunked {
                    conn.wbuf.extend_from_slice(http1::LAST_CHUNK);
                }
                let sent = conn.flush().await;
                conn.wbuf.clear();
                return sent.map_err(|_| Failure::AfterResponse);
            }
            Err(e) => {
                ex.response.failed_midway.set(Some(e.kind()));
                crate::log::warn(format_args!(
                    "{} provider `{}` body failed: {e}",
                    ex.request_id, provider.name
                ));
                return Err(Failure::AfterResponse);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pii_restore_is_a_stage_of_the_pump_at_any_split() {
        use crate::http1::{BodyCodec, BodyFraming};
        let stand_in = "avery.thorne42@example.com";
        let set = crate::pii::RestoreSet::new([(stand_in, "jane.doe@corp.example.io")]).unwrap();
        // The stand-in is split across two deltas of one block, then the block stops.
        let delta = |t: &str| {
            format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{t}\"}}}}\n\n")
        };
        let start = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",",
            "\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":1,\"output_tokens\":0}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
        );
        let stream = format!(
            "{start}{}{}{}event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":0}}\n\nevent: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\"}},\"usage\":{{\"output_tokens\":5}}}}\n\nevent: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n",
            delta("mail avery.th"),
            delta("orne42@example.com now"),
            delta(" and avery.t")
        );
        let text_of = |out: &[u8]| -> String {
            let mut d = crate::sse::Decoder::new(1 << 20);
            d.push(Bytes::copy_from_slice(out));
            let mut text = String::new();
            while let Ok(Some(ev)) = d.next_event() {
                let v: serde_json::Value =
                    serde_json::from_slice(ev.data.as_deref().unwrap_or(b"null")).unwrap();
                text.push_str(v["delta"]["text"].as_str().unwrap_or_default());
            }
            text
        };
        for (client, provider) in [
            (Format::Anthropic, Format::Anthropic),
            (Format::OpenAi, Format::Anthropic),
        ] {
            let pair = Pair::new(client, provider);
            let meta = RequestMeta::default();
            for at in (0..=stream.len()).step_by(7) {
                let mut s = Stream::new(pair, Some(&meta), BodyCodec::new(BodyFraming::Close));
                s.restore_pii(set.clone());
                let mut out = Vec::new();
                let (a, b) = stream.as_bytes().split_at(at);
                s.feed(Bytes::copy_from_slice(a), &mut out, false).unwrap();
                s.feed(Bytes::copy_from_slice(b), &mut out, false).unwrap();
                assert!(s.finish(None, &mut out, false));
                let text = if client == Format::Anthropic {
                    text_of(&out)
                } else {
                    let mut d = crate::sse::Decoder::new(1 << 20);
                    d.push(Bytes::from(out.clone()));
                    let mut t = String::new();
                    while let Ok(Some(ev)) = d.next_event() {
                        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(
                            ev.data.as_deref().unwrap_or_default(),
                        ) {
                            t.push_str(
                                v["choices"][0]["delta"]["content"]
                                    .as_str()
                                    .unwrap_or_default(),
                            );
                        }
                    }
                    t
                };
                assert_eq!(
                    text, "mail jane.doe@corp.example.io now and avery.t",
                    "{client:?} split at {at}"
                );
                assert!(!String::from_utf8_lossy(&out).contains(stand_in));
            }
        }
    }

    /// A batch says content when any of its events does, wherever it lies in the batch, and
    /// only once one has gone through (the time to first token waits for it).
    #[test]
    fn a_batch_is_read_for_content_from_its_newest_event_back() {
        use crate::http1::{BodyCodec, BodyFraming};
        let role =
            "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n";
        let text = "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n";
        let says = |batches: &[&[&str]]| {
            let pair = Pair::new(Format::OpenAi, Format::OpenAi);
            let mut s = Stream::new(pair, None, BodyCodec::new(BodyFraming::Close));
            let mut out = Vec::new();
            batches
                .iter()
                .map(|events| {
                    s.feed(Bytes::from(events.concat()), &mut out, false)
                        .unwrap();
                    s.said_something()
                })
                .collect::<Vec<bool>>()
        };
        assert_eq!(says(&[&[role], &[": ping\n\n"]]), [false, false]);
        assert_eq!(says(&[&[role], &[text]]), [false, true]);
        assert_eq!(says(&[&[role, text, ": ping\n\n"]]), [true]);
        assert_eq!(says(&[&[text, role], &[role]]), [true, true]);
        assert_eq!(says(&[&[role, role, "data: [DONE]\n\n"]]), [true]);
    }

    #[test]
    fn passthrough_is_byte_for_byte_at_any_split() {
        use crate::http1::{BodyCodec, BodyFraming};
        let stream = "event: message_start\ndata: {\"type\":\"message_start\"}\n\n: keep\n\nevent: content_block_delta\r\ndata: {\"d\":\"°\"}\r\n\r\nevent: message_stop\ndata: {}\n\n".as_bytes();
        let pair = Pair::new(Format::Anthropic, Format::Anthropic);
        let run = |reads: Vec<&[u8]>| {
            let mut s = Stream::new(pair, None, BodyCodec::new(BodyFraming::Close));
            let mut out = Vec::new();
            for r in reads {
                s.feed(Bytes::copy_from_slice(r), &mut out, false).unwrap();
            }
            let complete = s.finish(None, &mut out, false);
            (out, complete)
        };
        for at in 0..=stream.len() {
            let (a, b) = stream.split_at(at);
            assert_eq!(run(vec![a, b]), (stream.to_vec(), true), "split at {at}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(run(bytes), (stream.to_vec(), true));
        // Cut before its final event: the client's error event closes it, marked incomplete.
        let cut = stream.len() - "event: message_stop\ndata: {}\n\n".len();
        let (out, complete) = run(vec![&stream[..cut]]);
        assert!(!complete);
        assert!(out.starts_with(&stream[..cut]));
        assert!(String::from_utf8_lossy(&out[cut..]).starts_with("event: error\n"));
    }

    /// Usage is read from the provider's events, passthrough or translated, and any split of a
    /// stream into reads gives the same usage and stop reason.
    #[test]
    fn usage_is_the_same_at_any_split() {
        use crate::http1::{BodyCodec, BodyFraming};
        use crate::usage::Usage;
        let anthropic = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"x\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":5,\"cache_read_input_tokens\":4,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi \\\"usage\\\"\"}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":3}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        );
        let openai = concat!(
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n",
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}],\"usage\":null}\n\n",
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}],\"usage\":null}\n\n",
            "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":3,\"completion_tokens_details\":{\"reasoning_tokens\":1}}}\n\n",
            "data: [DONE]\n\n",
        );
        let meta = RequestMeta::default();
        let cases = [
            (
                Pair::new(Format::Anthropic, Format::Anthropic),
                anthropic,
                "end_turn",
                (9, 3, 4, 0),
            ),
            (
                Pair::new(Format::OpenAi, Format::Anthropic),
                anthropic,
                "end_turn",
                (9, 3, 4, 0),
            ),
            (
                Pair::new(Format::OpenAi, Format::OpenAi),
                openai,
                "length",
                (9, 3, 0, 1),
            ),
            (
                Pair::new(Format::Anthropic, Format::OpenAi),
                openai,
                "length",
                (9, 3, 0, 1),
            ),
        ];
        for (pair, stream, stop, (input, output, cache_read, reasoning)) in cases {
            let want = Some(Usage {
                input,
                output,
                cache_read,
                cache_write: 0,
                reasoning,
            });
            let run = |reads: Vec<&[u8]>| {
                let mut s = Stream::new(pair, Some(&meta), BodyCodec::new(BodyFraming::Close));
                let mut out = Vec::new();
                for r in reads {
                    s.feed(Bytes::copy_from_slice(r), &mut out, false).unwrap();
                }
                assert!(s.said_something());
                s.meter.metered()
            };
            let bytes = stream.as_bytes();
            for at in 0..=bytes.len() {
                let (a, b) = bytes.split_at(at);
                let m = run(vec![a, b]);
                assert_eq!(m.usage, want, "{pair:?} split at {at}");
                assert_eq!(m.stop.map(|s| s.as_str().to_owned()).as_deref(), Some(stop));
            }
            assert_eq!(
                run(bytes.chunks(1).collect()).usage,
                want,
                "{pair:?} bytewise"
            );
        }
    }

    /// A usage chunk the gateway asked for is read and not relayed; every other byte is.
    #[test]
    fn a_usage_chunk_the_client_did_not_ask_for_is_read_not_relayed() {
        use crate::http1::{BodyCodec, BodyFraming};
        let content = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n";
        let usage = "data: {\"id\":\"c\",\"choices\":[ ],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":3}}\n\n";
        let done = "data: [DONE]\n\n";
        let stream = format!("{content}{usage}{done}");
        for hide in [false, true] {
            let pair = Pair::new(Format::OpenAi, Format::OpenAi);
            let mut s = Stream::new(pair, None, BodyCodec::new(BodyFraming::Close));
            if hide {
                s.hide_usage_chunk();
            }
            let mut out = Vec::new();
            for piece in stream.as_bytes().chunks(7) {
                s.feed(Bytes::copy_from_slice(piece), &mut out, false)
                    .unwrap();
            }
            assert!(s.finish(None, &mut out, false));
            let want = if hide {
                format!("{content}{done}")
            } else {
                stream.clone()
            };
            assert_eq!(String::from_utf8(out).unwrap(), want);
            assert_eq!(s.meter.metered().usage.map(|u| u.output), Some(3));
        }
        // Only OpenAI passthrough hides anything.
        let mut s = Stream::new(
            Pair::new(Format::Anthropic, Format::Anthropic),
            None,
            BodyCodec::new(BodyFraming::Close),
        );
        s.hide_usage_chunk();
        assert!(matches!(
            s.stage,
            Stage::Passthrough {
                hide_usage: false,
                ..
            }
        ));
    }
}
