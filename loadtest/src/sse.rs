//! Sans-IO SSE timing parser: splits a streamed body into events (split anywhere, any line
//! ending) and classifies each as a token-carrying event, the stream's final event, an error
//! event, or other, so the caller can time first token and inter-token gaps.

/// Bytes of one event's `data` kept for classification. The markers we look for sit near the
/// start of an event; a longer event is still counted, only its tail is not inspected.
pub const MAX_EVENT_KEEP: usize = 64 * 1024;
/// Bytes of an `event:` name kept; real names are short.
pub const MAX_EVENT_NAME: usize = 64;

/// Which provider's stream shape to expect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAI Chat Completions chunks, ending in `data: [DONE]`.
    OpenAi,
    /// Anthropic Messages events, ending in `message_stop`.
    Anthropic,
}

/// What the events completed by one `feed` call amounted to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Events {
    /// Events carrying generated content (text, tool-call arguments, refusal, reasoning).
    pub content: u32,
    /// The stream's final event arrived.
    pub done: bool,
    /// An in-stream error event arrived.
    pub error: bool,
}

/// How one event was classified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Carries generated content.
    Content,
    /// The final event.
    Done,
    /// An error event.
    Error,
    /// Anything else (role preamble, ping, block start/stop, usage).
    Other,
}

/// Incremental event splitter and classifier.
#[derive(Debug)]
pub struct SseTimer {
    dialect: Dialect,
    /// The current line when it spans feeds (capped at [`MAX_EVENT_KEEP`]).
    line: Vec<u8>,
    /// The previous feed ended in `\r`; a leading `\n` now belongs to that line end.
    skip_lf: bool,
    event: Vec<u8>,
    data: Vec<u8>,
    has_fields: bool,
}

impl SseTimer {
    /// A parser at the start of a stream.
    pub fn new(dialect: Dialect) -> Self {
        SseTimer {
            dialect,
            line: Vec::new(),
            skip_lf: false,
            event: Vec::new(),
            data: Vec::new(),
            has_fields: false,
        }
    }

    /// Consume body bytes; report the events they completed.
    pub fn feed(&mut self, mut input: &[u8]) -> Events {
        let mut out = Events::default();
        if self.skip_lf {
            if let Some(rest) = input.strip_prefix(b"\n") {
                input = rest;
            }
            if !input.is_empty() {
                self.skip_lf = false;
            }
        }
        while let Some(i) = memchr::memchr2(b'\n', b'\r', input) {
            let (content, rest) = input.split_at(i);
            let ending = rest.first().copied();
            let mut rest = rest.get(1..).unwrap_or(&[]);
            if ending == Some(b'\r') {
                match rest.first() {
                    Some(b'\n') => rest = rest.get(1..).unwrap_or(&[]),
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
            if self.line.is_empty() {
                self.line_done(content, &mut out);
            } else {
                push_capped(&mut self.line, content, MAX_EVENT_KEEP);
                let line = std::mem::take(&mut self.line);
                self.line_done(&line, &mut out);
                self.line = line;
                self.line.clear();
            }
            input = rest;
        }
        push_capped(&mut self.line, input, MAX_EVENT_KEEP);
        out
    }

    fn line_done(&mut self, line: &[u8], out: &mut Events) {
        if line.is_empty() {
            if self.has_fields {
                match classify(self.dialect, &self.event, &self.data) {
                    Kind::Content => out.content += 1,
                    Kind::Done => out.done = true,
                    Kind::Error => out.error = true,
                    Kind::Other => {}
                }
            }
            self.event.clear();
            self.data.clear();
            self.has_fields = false;
            return;
        }
        if line.first() == Some(&b':') {
            return;
        }
        let (name, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let (n, v) = line.split_at(i);
                let v = v.get(1..).unwrap_or(&[]);
                (n, v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &[][..]),
        };
        match name {
            b"event" => {
                self.event.clear();
                push_capped(&mut self.event, value, MAX_EVENT_NAME);
                self.has_fields = true;
            }
            b"data" => {
                if !self.data.is_empty() {
                    push_capped(&mut self.data, b"\n", MAX_EVENT_KEEP);
                }
                push_capped(&mut self.data, value, MAX_EVENT_KEEP);
                self.has_fields = true;
            }
            _ => {}
        }
    }
}

fn push_capped(buf: &mut Vec<u8>, more: &[u8], cap: usize) {
    let room = cap.saturating_sub(buf.len());
    buf.extend_from_slice(more.get(..more.len().min(room)).unwrap_or(&[]));
}

/// Classify one complete event by its `event:` name and `data`.
pub fn classify(dialect: Dialect, event: &[u8], data: &[u8]) -> Kind {
    match dialect {
        Dialect::Anthropic => {
            let name = if event.is_empty() {
                string_value(data, b"type").unwrap_or(b"")
            } else {
                event
            };
            match name {
                b"content_block_delta" => Kind::Content,
                b"message_stop" => Kind::Done,
                b"error" => Kind::Error,
                _ => Kind::Other,
            }
        }
        Dialect::OpenAi => {
            let d = data.trim_ascii();
            if d == b"[DONE]" {
                Kind::Done
            } else if event == b"error" || starts_with_key(d, b"error") {
                Kind::Error
            } else if openai_has_content(d) {
                Kind::Content
            } else {
                Kind::Other
            }
        }
    }
}

/// A chunk carries content when its delta has a non-empty text, refusal or reasoning string,
/// or any tool-call fragment. The role preamble (`"content":""`) and the finish chunk do not.
fn openai_has_content(d: &[u8]) -> bool {
    let Some(at) = memchr::memmem::find(d, b"\"delta\"") else {
        return false;
    };
    let delta = d.get(at..).unwrap_or(&[]);
    memchr::memmem::find(delta, b"\"tool_calls\"").is_some()
        || [
            &b"content"[..],
            b"refusal",
            b"reasoning_content",
            b"reasoning",
        ]
        .iter()
        .any(|k| string_value(delta, k).is_some_and(|v| !v.is_empty()))
}

/// Does the JSON object in `d` open with `"key"`?
fn starts_with_key(d: &[u8], key: &[u8]) -> bool {
    let Some(rest) = d.strip_prefix(b"{") else {
        return false;
    };
    let rest = rest.trim_ascii_start();
    rest.strip_prefix(b"\"")
        .and_then(|r| r.strip_prefix(key))
        .is_some_and(|r| r.starts_with(b"\""))
}

/// The raw (still escaped) value of the first `"key": "..."` string member in `d`, found by
/// scanning rather than parsing: cheap enough to run on every event without skewing timing.
fn string_value<'a>(d: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut from = 0usize;
    while let Some(rel) = memchr::memchr(b'"', d.get(from..)?) {
        let start = from + rel + 1;
        let after = d.get(start..)?;
        if let Some(r) = after.strip_prefix(key).and_then(|r| r.strip_prefix(b"\"")) {
            let r = r.trim_ascii_start();
            if let Some(r) = r.strip_prefix(b":") {
                let r = r.trim_ascii_start();
                if let Some(v) = r.strip_prefix(b"\"") {
                    // An unterminated value was cut at MAX_EVENT_KEEP: what we have is its start.
                    return Some(string_end(v).and_then(|e| v.get(..e)).unwrap_or(v));
                }
            }
        }
        from = start;
    }
    None
}

/// Index of the closing quote of a JSON string body, skipping escapes.
fn string_end(v: &[u8]) -> Option<usize> {
    let mut i = 0usize;
    while i < v.len() {
        match v.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const OPENAI: &str = concat!(
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"finish_reason\":null}]}\n\n",
        ": keep-alive comment\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\": \" \\\"world\\\"\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"\"}}]}}]}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"completion_tokens\":3}}\n\n",
        "data: [DONE]\n\n",
    );

    const ANTHROPIC: &str = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"content\":[]}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0}\n\n",
        "event: ping\ndata: {\"type\": \"ping\"}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
        "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\" there\"}}\r\n\r\n",
        "event: content_block_stop\rdata: {\"type\":\"content_block_stop\",\"index\":0}\r\r",
        "event: message_delta\ndata: {\"type\":\"message_delta\"}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );

    fn total(dialect: Dialect, wire: &[u8], cuts: &[usize]) -> Events {
        let mut p = SseTimer::new(dialect);
        let mut sum = Events::default();
        let mut start = 0;
        let mut bounds: Vec<usize> = cuts.to_vec();
        bounds.sort_unstable();
        bounds.push(wire.len());
        for end in bounds {
            let e = p.feed(&wire[start..end.max(start)]);
            sum.content += e.content;
            sum.done |= e.done;
            sum.error |= e.error;
            start = end.max(start);
        }
        sum
    }

    /// Reference: split the whole body at blank lines after normalising line endings.
    fn reference(dialect: Dialect, wire: &str) -> Events {
        let norm = wire.replace("\r\n", "\n").replace('\r', "\n");
        let mut out = Events::default();
        for block in norm.split("\n\n") {
            let mut event = String::new();
            let mut data: Vec<&str> = Vec::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim_start_matches(' ').to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v));
                }
            }
            if event.is_empty() && data.is_empty() {
                continue;
            }
            match classify(dialect, event.as_bytes(), data.join("\n").as_bytes()) {
                Kind::Content => out.content += 1,
                Kind::Done => out.done = true,
                Kind::Error => out.error = true,
                Kind::Other => {}
            }
        }
        out
    }

    #[test]
    fn openai_counts() {
        let e = total(Dialect::OpenAi, OPENAI.as_bytes(), &[]);
        assert_eq!(
            e,
            Events {
                content: 3,
                done: true,
                error: false
            }
        );
    }

    #[test]
    fn anthropic_counts() {
        let e = total(Dialect::Anthropic, ANTHROPIC.as_bytes(), &[]);
        assert_eq!(
            e,
            Events {
                content: 2,
                done: true,
                error: false
            }
        );
    }

    #[test]
    fn every_two_way_split_matches() {
        for (dialect, wire) in [(Dialect::OpenAi, OPENAI), (Dialect::Anthropic, ANTHROPIC)] {
            let want = reference(dialect, wire);
            for a in 0..wire.len() {
                assert_eq!(total(dialect, wire.as_bytes(), &[a]), want, "cut at {a}");
            }
        }
    }

    #[test]
    fn random_multi_splits_match() {
        let mut s: u64 = 0x2545_f491_4f6c_dd1d;
        for (dialect, wire) in [(Dialect::OpenAi, OPENAI), (Dialect::Anthropic, ANTHROPIC)] {
            let want = reference(dialect, wire);
            for _ in 0..500 {
                let cuts: Vec<usize> = (0..6)
                    .map(|_| {
                        s ^= s << 13;
                        s ^= s >> 7;
                        s ^= s << 17;
                        (s % wire.len() as u64) as usize
                    })
                    .collect();
                assert_eq!(total(dialect, wire.as_bytes(), &cuts), want, "{cuts:?}");
            }
        }
    }

    #[test]
    fn content_events_counted_per_feed() {
        let mut p = SseTimer::new(Dialect::Anthropic);
        let (a, b) = ANTHROPIC.split_at(ANTHROPIC.find("event: content_block_delta\r").unwrap());
        assert_eq!(p.feed(a.as_bytes()).content, 1);
        let e = p.feed(b.as_bytes());
        assert_eq!((e.content, e.done), (1, true));
    }

    #[test]
    fn errors_are_seen() {
        let o = total(
            Dialect::OpenAi,
            b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"error\":{\"message\":\"x\"}}\n\n",
            &[],
        );
        assert_eq!(
            o,
            Events {
                content: 1,
                done: false,
                error: true
            }
        );
        let a = total(
            Dialect::Anthropic,
            b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}\n\n",
            &[],
        );
        assert!(a.error && !a.done);
        // No event name: fall back to the data's type.
        let a = total(
            Dialect::Anthropic,
            b"data: {\"type\":\"content_block_delta\"}\n\n",
            &[],
        );
        assert_eq!(a.content, 1);
    }

    #[test]
    fn unterminated_event_is_not_counted() {
        let e = total(
            Dialect::OpenAi,
            b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n",
            &[],
        );
        assert_eq!(e.content, 0);
    }

    #[test]
    fn string_value_scans() {
        assert_eq!(
            string_value(br#"{"a":"x\"y","b":1}"#, b"a"),
            Some(&br#"x\"y"#[..])
        );
        assert_eq!(
            string_value(br#"{"ab":"1","b" : "2"}"#, b"b"),
            Some(&b"2"[..])
        );
        assert_eq!(string_value(br#"{"b":null}"#, b"b"), None);
        assert_eq!(string_value(br#"{"b":"cut"#, b"b"), Some(&b"cut"[..]));
        assert!(starts_with_key(br#"{ "error": {}}"#, b"error"));
        assert!(!starts_with_key(br#"{"errors": {}}"#, b"error"));
    }

    #[test]
    fn huge_event_is_bounded_but_counted() {
        let mut wire = b"data: {\"choices\":[{\"delta\":{\"content\":\"".to_vec();
        wire.resize(MAX_EVENT_KEEP * 3, b'x');
        wire.extend_from_slice(b"\"}}]}\n\n");
        let mut p = SseTimer::new(Dialect::OpenAi);
        let mut n = 0;
        for piece in wire.chunks(1000) {
            n += p.feed(piece).content;
            assert!(p.line.len() <= MAX_EVENT_KEEP && p.data.len() <= MAX_EVENT_KEEP);
        }
        assert_eq!(n, 1);
    }
}
