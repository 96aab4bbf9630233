//! The one Responses renderer: output items built from a provider's answer as it arrives,
//! written as the Responses stream's events (with `sequence_number`s) or, for an answer read
//! whole, as the final response object. Both provider kinds' translators drive it through the
//! same calls, so streamed and whole answers have the same shape whatever served them.

use super::super::emit::{push_key, push_str, push_u64};
use super::super::MAX_HELD_OUTPUT_BYTES;
use super::{Compaction, ResponsesMeta};
use crate::seal::Purpose;

/// Token usage in the Responses shape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Every input token, cached ones included.
    pub input: u64,
    /// Input tokens read from the cache.
    pub cached: u64,
    /// Output tokens, reasoning included.
    pub output: u64,
    /// Reasoning tokens.
    pub reasoning: u64,
    /// Input tokens written to the cache.
    pub cache_write: u64,
}

/// Why an answer ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// The model finished (`completed`).
    Completed,
    /// The output cap was reached (`incomplete`, `max_output_tokens`).
    MaxTokens,
    /// A content filter stopped it (`incomplete`, `content_filter`).
    ContentFilter,
}

/// What one output item holds.
enum Kind {
    /// An assistant message: its parts (`output_text` or `refusal`), the last one open.
    Message { parts: Vec<(bool, String)> },
    /// A function call (or a custom tool call, when `custom`).
    Call {
        call_id: String,
        name: String,
        namespace: Option<String>,
        arguments: String,
        custom: bool,
    },
    /// Reasoning: the summary text (when summaries were asked for), and the sealed content.
    Reasoning {
        summary: Option<String>,
        sealed: Option<String>,
    },
    /// A hosted web search the provider ran.
    WebSearch { query: String },
    /// A compaction: the summary, sealed when the item closes.
    Compaction {
        summary: String,
        sealed: Option<String>,
    },
}

struct Item {
    id: String,
    kind: Kind,
    open: bool,
    /// Cut short by the output cap or a filter (`status: incomplete`).
    incomplete: bool,
}

/// Which done events an item needs before its `output_item.done`.
enum Done {
    /// The message's last content part.
    Part(usize),
    Arguments,
    CustomInput,
    Summary,
}

/// Most output items one answer may hold (bounds the per-answer table).
pub(crate) const MAX_OUTPUT_ITEMS: usize = super::super::MAX_STREAM_BLOCKS;

/// The renderer of one answer.
pub(crate) struct Writer {
    /// Write stream events (else only build the items).
    stream: bool,
    seq: u64,
    created_at: u64,
    /// Unix seconds of the latest clock reading the gateway handed in (0: none yet): the
    /// response's `completed_at` (never before `created_at`).
    now: u64,
    model: String,
    items: Vec<Item>,
    usage: Usage,
    started: bool,
    done: bool,
    /// Bytes of text, arguments and summaries held (bounded by [`MAX_HELD_OUTPUT_BYTES`]).
    held: usize,
    /// More items were asked for than [`MAX_OUTPUT_ITEMS`].
    overflow: bool,
}

impl Writer {
    /// A renderer; `stream`: events are written as items change.
    pub fn new(stream: bool, created_at: u64, model: &str) -> Writer {
        Writer {
            stream,
            seq: 0,
            created_at,
            now: 0,
            model: model.to_owned(),
            items: Vec::new(),
            usage: Usage::default(),
            started: false,
            done: false,
            held: 0,
            overflow: false,
        }
    }

    /// Bytes of text, arguments and summaries held for the done events and the final one.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Lets go of the answer held so far, for a stream about to fail because it cannot be
    /// held (the client has had its text as deltas; the failed response lists no output).
    pub fn release(&mut self) {
        self.items = Vec::new();
        self.held = 0;
    }

    /// Has the answer outgrown [`MAX_HELD_OUTPUT_BYTES`] or [`MAX_OUTPUT_ITEMS`]? (The stream
    /// is then failed: dropping output silently is not an option.)
    pub fn over_limit(&self) -> bool {
        self.held > MAX_HELD_OUTPUT_BYTES || self.overflow
    }

    /// Why a compaction cannot be handed out (a summary cut short or filtered, or empty).
    pub fn compaction_problem(&self, meta: &ResponsesMeta, end: End) -> Option<&'static str> {
        if meta.compaction == Compaction::No {
            return None;
        }
        let empty = !self.items.iter().any(
            |i| matches!(&i.kind, Kind::Compaction { summary, .. } if !summary.trim().is_empty()),
        );
        match end {
            End::MaxTokens => Some("the provider's summary was cut short by its output limit"),
            End::ContentFilter => Some("the provider's summary was stopped by a content filter"),
            End::Completed if empty => {
                Some("the provider answered the summary request with no text")
            }
            End::Completed => None,
        }
    }

    /// The time now (Unix seconds), from the gateway: a completed response's `completed_at`.
    pub fn set_now(&mut self, now: u64) {
        self.now = now;
    }

    /// The response's model (the provider's name for it, when it says).
    pub fn set_model(&mut self, model: &str) {
        if !model.is_empty() && !self.started {
            model.clone_into(&mut self.model);
        }
    }

    /// Has the final event (completed, incomplete, failed or error) been written?
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Has `response.created` gone out?
    pub fn is_started(&self) -> bool {
        self.started
    }

    /// Usage so far (providers report it in pieces).
    pub fn usage_mut(&mut self) -> &mut Usage {
        &mut self.usage
    }

    /// `response.created` and `response.in_progress`.
    pub fn start(&mut self, meta: &ResponsesMeta, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        if self.stream {
            for kind in ["response.created", "response.in_progress"] {
                self.event(out, kind, |w, o| {
                    push_key(o, "response");
                    w.response(meta, o, "in_progress", None, None);
                });
            }
        }
    }

    /// Answer text (`refusal`: refusal text).
    pub fn text(&mut self, meta: &ResponsesMeta, refusal: bool, text: &str, out: &mut Vec<u8>) {
        if text.is_empty() {
            return;
        }
        self.held = self.held.saturating_add(text.len());
        if meta.compaction != Compaction::No {
            // A compaction's text is its summary, handed out only sealed.
            if let Some(i) = self.compaction_item(meta, out) {
                if let Some(Item {
                    kind: Kind::Compaction { summary, .. },
                    ..
                }) = self.items.get_mut(i)
                {
                    summary.push_str(text);
                }
            }
            return;
        }
        let index = match self.open_message() {
            Some(i) => i,
            None => {
                self.close_open_except_calls(meta, out);
                match self.add(meta, "msg", Kind::Message { parts: Vec::new() }, out) {
                    Some(i) => i,
                    None => return,
                }
            }
        };
        let (part_index, new_part) = {
            let Some(Item {
                kind: Kind::Message { parts },
                ..
            }) = self.items.get_mut(index)
            else {
                return;
            };
            let new_part = parts.last().is_none_or(|(r, _)| *r != refusal);
            if new_part {
                parts.push((refusal, String::new()));
            }
            if let Some((_, t)) = parts.last_mut() {
                t.push_str(text);
            }
            (parts.len() - 1, new_part)
        };
        if !self.stream {
            return;
        }
        if new_part {
            if part_index > 0 {
                self.part_done(index, part_index - 1, out);
            }
            self.event(out, "response.content_part.added", |w, o| {
                w.item_ref(o, index, Some(part_index));
                o.extend_from_slice(b",\"part\":");
                write_part(o, refusal, "");
            });
        }
        let kind = if refusal {
            "response.refusal.delta"
        } else {
            "response.output_text.delta"
        };
        self.event(out, kind, |w, o| {
            w.item_ref(o, index, Some(part_index));
            o.extend_from_slice(b",\"delta\":");
            push_str(o, text);
            if !refusal {
                o.extend_from_slice(b",\"logprobs\":[]");
            }
        });
    }

    /// A new function call; returns its handle for [`Writer::arguments`].
    pub fn call_start(
        &mut self,
        meta: &ResponsesMeta,
        call_id: &str,
        upstream_name: &str,
        out: &mut Vec<u8>,
    ) -> Option<usize> {
        if meta.compaction != Compaction::No {
            // No tools were offered for a summary: a call has nowhere to go (and must not end
            // the summary).
            return None;
        }
        self.close_open_except_calls(meta, out);
        let (namespace, name, custom) = meta.client_tool(upstream_name);
        let kind = Kind::Call {
            call_id: call_id.to_owned(),
            name: name.to_owned(),
            namespace: namespace.map(str::to_owned),
            arguments: String::new(),
            custom,
        };
        self.add(meta, if custom { "ctc" } else { "fc" }, kind, out)
    }

    /// More of a call's arguments.
    pub fn arguments(&mut self, handle: usize, delta: &str, out: &mut Vec<u8>) {
        if delta.is_empty() {
            return;
        }
        let Some(Item {
            kind: Kind::Call {
                arguments, custom, ..
            },
            open: true,
            ..
        }) = self.items.get_mut(handle)
        else {
            return;
        };
        arguments.push_str(delta);
        self.held = self.held.saturating_add(delta.len());
        // A custom tool's input is the `input` string inside the arguments: sent whole when
        // the call is done.
        if *custom || !self.stream {
            return;
        }
        self.event(out, "response.function_call_arguments.delta", |w, o| {
            w.item_ref(o, handle, None);
            o.extend_from_slice(b",\"delta\":");
            push_str(o, delta);
        });
    }

    /// Reasoning text (a summary when the client asked for one); returns its handle.
    pub fn reasoning(
        &mut self,
        meta: &ResponsesMeta,
        handle: Option<usize>,
        text: &str,
        out: &mut Vec<u8>,
    ) -> Option<usize> {
        if meta.compaction != Compaction::No {
            return None;
        }
        let index = match handle.filter(|&h| self.items.get(h).is_some_and(|i| i.open)) {
            Some(h) => h,
            None => {
                self.close_open_except_calls(meta, out);
                let summary = meta.summary.then(String::new);
                let index = self.add(
                    meta,
                    "rs",
                    Kind::Reasoning {
                        summary,
                        sealed: None,
                    },
                    out,
                )?;
                if meta.summary && self.stream {
                    self.event(out, "response.reasoning_summary_part.added", |w, o| {
                        w.item_ref(o, index, None);
                        o.extend_from_slice(
                            b",\"summary_index\":0,\"part\":{\"type\":\"summary_text\",\"text\":\"\"}",
                        );
                    });
                }
                index
            }
        };
        if text.is_empty() {
            return Some(index);
        }
        if let Some(Item {
            kind: Kind::Reasoning {
                summary: Some(s), ..
            },
            ..
        }) = self.items.get_mut(index)
        {
            s.push_str(text);
            self.held = self.held.saturating_add(text.len());
            if self.stream {
                self.event(out, "response.reasoning_summary_text.delta", |w, o| {
                    w.item_ref(o, index, None);
                    o.extend_from_slice(b",\"summary_index\":0,\"delta\":");
                    push_str(o, text);
                });
            }
        }
        Some(index)
    }

    /// The sealed content of a reasoning item (set before it closes).
    pub fn seal(&mut self, handle: usize, sealed: String) {
        if let Some(Item {
            kind: Kind::Reasoning { sealed: s, .. },
            ..
        }) = self.items.get_mut(handle)
        {
            *s = Some(sealed);
        }
    }

    /// For an answer the gateway keeps whose client did not ask for `encrypted_content`: each
    /// closed reasoning item's sealed thinking, `(item id, sealed)`, for the stored copy.
    pub fn kept_seals<'s>(
        &'s self,
        meta: &ResponsesMeta,
    ) -> impl Iterator<Item = (&'s str, &'s str)> + 's {
        let wanted = meta.keep && !meta.encrypted;
        self.items
            .iter()
            .filter(move |_| wanted)
            .filter_map(|i| match &i.kind {
                Kind::Reasoning {
                    sealed: Some(s), ..
                } if !i.open => Some((i.id.as_str(), s.as_str())),
                _ => None,
            })
    }

    /// A hosted web search the provider ran; closed at once.
    pub fn web_search(&mut self, meta: &ResponsesMeta, query: &str, out: &mut Vec<u8>) {
        if meta.compaction != Compaction::No {
            return;
        }
        self.close_open_except_calls(meta, out);
        let kind = Kind::WebSearch {
            query: query.to_owned(),
        };
        if let Some(i) = self.add(meta, "ws", kind, out) {
            self.close(meta, i, out);
        }
    }

    /// Close one item (its done events).
    pub fn close(&mut self, meta: &ResponsesMeta, index: usize, out: &mut Vec<u8>) {
        let Some(item) = self.items.get_mut(index).filter(|i| i.open) else {
            return;
        };
        item.open = false;
        match &mut item.kind {
            Kind::Call { arguments, .. } if arguments.trim().is_empty() => {
                // A call without arguments takes none: `{}`, as the APIs write it.
                "{}".clone_into(arguments);
            }
            Kind::Compaction { summary, sealed } => {
                // Sealed as the client would read it (see `SealPii`).
                let restored = meta
                    .pii
                    .restore
                    .as_ref()
                    .map(|set| set.restore_with(summary.as_bytes(), crate::pii::Mode::Text));
                let text = restored.as_deref().unwrap_or(summary.as_bytes());
                *sealed = meta
                    .seal
                    .as_ref()
                    .and_then(|k| k.seal(Purpose::Compaction, text));
            }
            _ => {}
        }
        if !self.stream {
            return;
        }
        // Which done events the item needs (read again from the item as each is written).
        let done = match self.items.get(index).map(|i| &i.kind) {
            Some(Kind::Message { parts }) => parts.len().checked_sub(1).map(Done::Part),
            Some(Kind::Call { custom: false, .. }) => Some(Done::Arguments),
            Some(Kind::Call { custom: true, .. }) => Some(Done::CustomInput),
            Some(Kind::Reasoning {
                summary: Some(_), ..
            }) => Some(Done::Summary),
            _ => None,
        };
        match done {
            Some(Done::Part(last)) => self.part_done(index, last, out),
            Some(Done::Arguments) => {
                self.event(out, "response.function_call_arguments.done", |w, o| {
                    w.item_ref(o, index, None);
                    if let Some(Kind::Call {
                        name, arguments, ..
                    }) = w.items.get(index).map(|i| &i.kind)
                    {
                        o.extend_from_slice(b",\"name\":");
                        push_str(o, name);
                        o.extend_from_slice(b",\"arguments\":");
                        push_str(o, arguments);
                    }
                });
            }
            Some(Done::CustomInput) => {
                let input = match self.items.get(index).map(|i| &i.kind) {
                    Some(Kind::Call { arguments, .. }) => custom_input(arguments),
                    _ => String::new(),
                };
                for (kind, field) in [
                    ("response.custom_tool_call_input.delta", "delta"),
                    ("response.custom_tool_call_input.done", "input"),
                ] {
                    self.event(out, kind, |w, o| {
                        w.item_ref(o, index, None);
                        o.push(b',');
                        push_key(o, field);
                        push_str(o, &input);
                    });
                }
            }
            Some(Done::Summary) => {
                for (kind, head, tail) in [
                    (
                        "response.reasoning_summary_text.done",
                        &b",\"summary_index\":0,\"text\":"[..],
                        &b""[..],
                    ),
                    (
                        "response.reasoning_summary_part.done",
                        &b",\"summary_index\":0,\"part\":{\"type\":\"summary_text\",\"text\":"[..],
                        &b"}"[..],
                    ),
                ] {
                    self.event(out, kind, |w, o| {
                        w.item_ref(o, index, None);
                        o.extend_from_slice(head);
                        if let Some(Kind::Reasoning {
                            summary: Some(text),
                            ..
                        }) = w.items.get(index).map(|i| &i.kind)
                        {
                            push_str(o, text);
                        }
                        o.extend_from_slice(tail);
                    });
                }
            }
            None => {}
        }
        self.event(out, "response.output_item.done", |w, o| {
            push_key(o, "output_index");
            push_u64(o, index as u64);
            o.extend_from_slice(b",\"item\":");
            w.write_item(meta, o, index);
        });
    }

    /// The answer ended: close what is open, then `response.completed` (or
    /// `response.incomplete`). Non-streaming: `out` gets the response object.
    pub fn finish(&mut self, meta: &ResponsesMeta, end: End, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.start(meta, out);
        if meta.compaction != Compaction::No {
            // Exactly one compaction item, even for an empty summary (Codex requires one).
            self.compaction_item(meta, out);
        }
        if end != End::Completed {
            // What was still being written when the answer was cut is incomplete.
            for item in self.items.iter_mut().filter(|i| i.open) {
                item.incomplete = true;
            }
        }
        self.close_all(meta, out);
        self.done = true;
        if meta.compaction == Compaction::Endpoint {
            self.compacted(meta, out);
            return;
        }
        let (status, reason) = match end {
            End::Completed => ("completed", None),
            End::MaxTokens => ("incomplete", Some("max_output_tokens")),
            End::ContentFilter => ("incomplete", Some("content_filter")),
        };
        if !self.stream {
            self.response(meta, out, status, reason, None);
            return;
        }
        let kind = if reason.is_some() {
            "response.incomplete"
        } else {
            "response.completed"
        };
        self.event(out, kind, |w, o| {
            push_key(o, "response");
            w.response(meta, o, status, reason, None);
        });
    }

    /// The answer broke after it started: `response.failed` with the error (before
    /// `response.created`, an `error` event). Streams only.
    pub fn fail(&mut self, meta: &ResponsesMeta, code: &str, message: &str, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.done = true;
        if !self.started {
            // The event's own fields, and the error object nested under `error` too: the SDKs
            // raise on that form.
            let seq = self.seq;
            self.seq += 1;
            crate::dialect::responses::error_event(
                out,
                seq,
                "api_error",
                Some(code),
                message,
                None,
            );
            return;
        }
        // `response.error.code` is one of a fixed set in both SDKs: a provider's own error
        // type (`overloaded_error`, …) is not among them.
        let code = match code {
            "rate_limit_error" | "rate_limit_exceeded" | "429" => "rate_limit_exceeded",
            "invalid_prompt" => "invalid_prompt",
            _ => "server_error",
        };
        self.event(out, "response.failed", |w, o| {
            push_key(o, "response");
            w.response(meta, o, "failed", None, Some((code, message)));
        });
    }

    /// The compaction item, added on first use.
    fn compaction_item(&mut self, meta: &ResponsesMeta, out: &mut Vec<u8>) -> Option<usize> {
        if let Some(i) = self
            .items
            .iter()
            .position(|i| matches!(i.kind, Kind::Compaction { .. }))
        {
            return Some(i);
        }
        let kind = Kind::Compaction {
            summary: String::new(),
            sealed: None,
        };
        self.add(meta, "cmp", kind, out)
    }

    /// The `POST /v1/responses/compact` answer: the compaction item (the summary covers the
    /// whole conversation; the SDKs type this output as output items only).
    fn compacted(&self, meta: &ResponsesMeta, o: &mut Vec<u8>) {
        o.extend_from_slice(b"{\"id\":");
        push_str(o, &meta.id);
        o.extend_from_slice(b",\"object\":\"response.compaction\",\"created_at\":");
        push_u64(o, self.created_at);
        o.extend_from_slice(b",\"output\":[");
        let compaction = self
            .items
            .iter()
            .position(|i| matches!(i.kind, Kind::Compaction { .. }));
        match compaction {
            Some(i) => self.write_item(meta, o, i),
            None => o.extend_from_slice(b"null"),
        }
        o.extend_from_slice(b"],\"usage\":");
        self.write_usage(o);
        o.push(b'}');
    }

    /// The open message, if any (calls may have opened after it and still be open).
    fn open_message(&self) -> Option<usize> {
        self.items
            .iter()
            .rposition(|i| i.open && matches!(i.kind, Kind::Message { .. }))
    }

    /// Close the open message, reasoning or compaction: a new item of another kind begins.
    /// Open calls stay open: a provider may interleave their arguments with other output.
    fn close_open_except_calls(&mut self, meta: &ResponsesMeta, out: &mut Vec<u8>) {
        for i in 0..self.items.len() {
            let call = self
                .items
                .get(i)
                .is_some_and(|it| matches!(it.kind, Kind::Call { .. }));
            if !call {
                self.close(meta, i, out);
            }
        }
    }

    fn close_all(&mut self, meta: &ResponsesMeta, out: &mut Vec<u8>) {
        for i in 0..self.items.len() {
            self.close(meta, i, out);
        }
    }

    /// A new open item and its `output_item.added`; None past [`MAX_OUTPUT_ITEMS`].
    fn add(
        &mut self,
        meta: &ResponsesMeta,
        prefix: &str,
        kind: Kind,
        out: &mut Vec<u8>,
    ) -> Option<usize> {
        if self.items.len() >= MAX_OUTPUT_ITEMS {
            self.overflow = true;
            return None;
        }
        let index = self.items.len();
        let id = format!("{prefix}_{}_{index}", meta.id_base());
        self.items.push(Item {
            id,
            kind,
            open: true,
            incomplete: false,
        });
        if self.stream {
            self.event(out, "response.output_item.added", |w, o| {
                push_key(o, "output_index");
                push_u64(o, index as u64);
                o.extend_from_slice(b",\"item\":");
                w.write_item(meta, o, index);
            });
        }
        Some(index)
    }

    fn part_done(&mut self, index: usize, part: usize, out: &mut Vec<u8>) {
        let refusal = match self.items.get(index).map(|i| &i.kind) {
            Some(Kind::Message { parts }) => match parts.get(part) {
                Some((refusal, _)) => *refusal,
                None => return,
            },
            _ => return,
        };
        fn text(w: &Writer, index: usize, part: usize) -> &str {
            match w.items.get(index).map(|i| &i.kind) {
                Some(Kind::Message { parts }) => parts.get(part).map_or("", |(_, t)| t.as_str()),
                _ => "",
            }
        }
        let kind = if refusal {
            "response.refusal.done"
        } else {
            "response.output_text.done"
        };
        self.event(out, kind, |w, o| {
            w.item_ref(o, index, Some(part));
            o.extend_from_slice(if refusal {
                b",\"refusal\":"
            } else {
                b",\"text\":"
            });
            push_str(o, text(w, index, part));
            if !refusal {
                o.extend_from_slice(b",\"logprobs\":[]");
            }
        });
        self.event(out, "response.content_part.done", |w, o| {
            w.item_ref(o, index, Some(part));
            o.extend_from_slice(b",\"part\":");
            write_part(o, refusal, text(w, index, part));
        });
    }

    /// One SSE event: `event: KIND`, then `{"type":KIND,"sequence_number":N,…}`.
    fn event(&mut self, out: &mut Vec<u8>, kind: &str, body: impl FnOnce(&Self, &mut Vec<u8>)) {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\ndata: {\"type\":\"");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\",\"sequence_number\":");
        push_u64(out, self.seq);
        self.seq += 1;
        out.push(b',');
        body(self, out);
        out.extend_from_slice(b"}\n\n");
    }

    fn write_item(&self, meta: &ResponsesMeta, o: &mut Vec<u8>, index: usize) {
        let Some(item) = self.items.get(index) else {
            o.extend_from_slice(b"null");
            return;
        };
        let status: &[u8] = if item.open {
            b"\"in_progress\""
        } else if item.incomplete {
            b"\"incomplete\""
        } else {
            b"\"completed\""
        };
        o.extend_from_slice(b"{\"id\":");
        push_str(o, &item.id);
        match &item.kind {
            Kind::Message { parts } => {
                o.extend_from_slice(b",\"type\":\"message\",\"status\":");
                o.extend_from_slice(status);
                o.extend_from_slice(b",\"role\":\"assistant\",\"content\":[");
                if !item.open {
                    for (i, (refusal, text)) in parts.iter().enumerate() {
                        if i > 0 {
                            o.push(b',');
                        }
                        write_part(o, *refusal, text);
                    }
                }
                o.push(b']');
            }
            Kind::Call {
                call_id,
                name,
                namespace,
                arguments,
                custom,
            } => {
                if *custom {
                    o.extend_from_slice(b",\"type\":\"custom_tool_call\",\"status\":");
                    o.extend_from_slice(status);
                    o.extend_from_slice(b",\"call_id\":");
                    push_str(o, call_id);
                    o.extend_from_slice(b",\"name\":");
                    push_str(o, name);
                    o.extend_from_slice(b",\"input\":");
                    let input = if item.open {
                        String::new()
                    } else {
                        custom_input(arguments)
                    };
                    push_str(o, &input);
                } else {
                    o.extend_from_slice(b",\"type\":\"function_call\",\"status\":");
                    o.extend_from_slice(status);
                    if let Some(ns) = namespace {
                        o.extend_from_slice(b",\"namespace\":");
                        push_str(o, ns);
                    }
                    o.extend_from_slice(b",\"call_id\":");
                    push_str(o, call_id);
                    o.extend_from_slice(b",\"name\":");
                    push_str(o, name);
                    o.extend_from_slice(b",\"arguments\":");
                    push_str(o, if item.open { "" } else { arguments });
                }
            }
            Kind::Reasoning { summary, sealed } => {
                o.extend_from_slice(b",\"type\":\"reasoning\",\"summary\":[");
                if let Some(s) = summary.as_deref().filter(|_| !item.open) {
                    o.extend_from_slice(b"{\"type\":\"summary_text\",\"text\":");
                    push_str(o, s);
                    o.push(b'}');
                }
                // The thinking goes out as the summary (when asked for) and sealed, never as
                // `reasoning_text` content.
                o.extend_from_slice(b"],\"content\":[],\"encrypted_content\":");
                match sealed.as_deref().filter(|_| meta.encrypted && !item.open) {
                    Some(s) => push_str(o, s),
                    None => o.extend_from_slice(b"null"),
                }
            }
            Kind::Compaction { sealed, .. } => {
                o.extend_from_slice(b",\"type\":\"compaction\",\"encrypted_content\":");
                push_str(o, sealed.as_deref().filter(|_| !item.open).unwrap_or(""));
            }
            Kind::WebSearch { query } => {
                o.extend_from_slice(b",\"type\":\"web_search_call\",\"status\":");
                o.extend_from_slice(status);
                o.extend_from_slice(b",\"action\":{\"type\":\"search\",\"query\":");
                push_str(o, query);
                o.push(b'}');
            }
        }
        o.push(b'}');
    }

    /// The response object.
    fn response(
        &self,
        meta: &ResponsesMeta,
        o: &mut Vec<u8>,
        status: &str,
        incomplete: Option<&str>,
        error: Option<(&str, &str)>,
    ) {
        let e = &meta.echo;
        o.extend_from_slice(b"{\"id\":");
        push_str(o, &meta.id);
        o.extend_from_slice(b",\"object\":\"response\",\"created_at\":");
        push_u64(o, self.created_at);
        o.extend_from_slice(b",\"status\":");
        push_str(o, status);
        o.extend_from_slice(b",\"error\":");
        match error {
            Some((code, message)) => {
                o.extend_from_slice(b"{\"code\":");
                push_str(o, code);
                o.extend_from_slice(b",\"message\":");
                push_str(o, message);
                o.push(b'}');
            }
            None => o.extend_from_slice(b"null"),
        }
        o.extend_from_slice(b",\"incomplete_details\":");
        match incomplete {
            Some(r) => {
                o.extend_from_slice(b"{\"reason\":");
                push_str(o, r);
                o.push(b'}');
            }
            None => o.extend_from_slice(b"null"),
        }
        o.extend_from_slice(b",\"model\":");
        push_str(o, &self.model);
        o.extend_from_slice(b",\"output\":[");
        if status != "in_progress" {
            let mut first = true;
            for (i, item) in self.items.iter().enumerate() {
                // A failed answer lists what was finished before it broke.
                if item.open && status == "failed" {
                    continue;
                }
                if !first {
                    o.push(b',');
                }
                first = false;
                self.write_item(meta, o, i);
            }
        }
        o.extend_from_slice(b"],\"usage\":");
        if status == "in_progress" {
            o.extend_from_slice(b"null");
        } else {
            self.write_usage(o);
        }
        o.extend_from_slice(b",\"completed_at\":");
        if status == "completed" {
            push_u64(o, self.now.max(self.created_at));
        } else {
            o.extend_from_slice(b"null");
        }
        // The tier asked for; `auto` until the answer ends, then the tier that served it.
        o.extend_from_slice(b",\"service_tier\":");
        match (e.service_tier.as_deref(), status) {
            (Some(t), _) if t != "\"auto\"" => o.extend_from_slice(t.as_bytes()),
            (_, "in_progress") => o.extend_from_slice(b"\"auto\""),
            _ => o.extend_from_slice(b"\"default\""),
        }
        // What no provider behind a translation reports, then what the request said.
        o.extend_from_slice(
            b",\"moderation\":null,\"presence_penalty\":0.0,\"frequency_penalty\":0.0",
        );
        for (key, value) in e.fields() {
            o.push(b',');
            push_key(o, key);
            o.extend_from_slice(value.as_bytes());
        }
        o.push(b'}');
    }

    /// `"item_id":…,"output_index":…` (and `"content_index":…`).
    fn item_ref(&self, o: &mut Vec<u8>, index: usize, part: Option<usize>) {
        o.extend_from_slice(b"\"item_id\":");
        push_str(o, self.items.get(index).map_or("", |i| i.id.as_str()));
        o.extend_from_slice(b",\"output_index\":");
        push_u64(o, index as u64);
        if let Some(p) = part {
            o.extend_from_slice(b",\"content_index\":");
            push_u64(o, p as u64);
        }
    }

    fn write_usage(&self, o: &mut Vec<u8>) {
        let u = &self.usage;
        o.extend_from_slice(b"{\"input_tokens\":");
        push_u64(o, u.input);
        o.extend_from_slice(b",\"input_tokens_details\":{\"cached_tokens\":");
        push_u64(o, u.cached);
        o.extend_from_slice(b",\"cache_write_tokens\":");
        push_u64(o, u.cache_write);
        o.extend_from_slice(b"},\"output_tokens\":");
        push_u64(o, u.output);
        o.extend_from_slice(b",\"output_tokens_details\":{\"reasoning_tokens\":");
        push_u64(o, u.reasoning);
        o.extend_from_slice(b"},\"total_tokens\":");
        push_u64(o, u.input.saturating_add(u.output));
        o.push(b'}');
    }
}

/// A message content part.
fn write_part(o: &mut Vec<u8>, refusal: bool, text: &str) {
    if refusal {
        o.extend_from_slice(b"{\"type\":\"refusal\",\"refusal\":");
        push_str(o, text);
        o.push(b'}');
    } else {
        o.extend_from_slice(b"{\"type\":\"output_text\",\"text\":");
        push_str(o, text);
        o.extend_from_slice(b",\"annotations\":[],\"logprobs\":[]}");
    }
}

/// A custom tool's input: the `input` string of the arguments its function stand-in got (the
/// raw arguments when the model sent something else).
fn custom_input(arguments: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Args {
        input: String,
    }
    serde_json::from_str::<Args>(arguments).map_or_else(|_| arguments.to_owned(), |a| a.input)
}
