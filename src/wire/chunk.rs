//! An OpenAI stream chunk, and an Anthropic stream event's common shapes, read by hand: the
//! fields [`Chunk`] and [`StreamEvent`] keep are compared as bytes, and every other value is
//! skipped with JSON's grammar checked. serde's derive spent most of a translated event's
//! instructions on the keys the chunk drops (callgrind). Where this reader is unsure (an
//! escaped key, an error object, a number serde would read otherwise, a string with an escape
//! in a skipped value; for Anthropic, any event carrying a message, a content block, usage or
//! stop details) it declines and serde reads the event, so the answer is always serde's:
//! differential tests below and the `openai_chunk` and `anthropic_event` fuzz targets hold it
//! to that.

use super::anthropic::{EventDelta, StreamEvent};
use super::openai::{
    Chunk, ChunkChoice, CompletionTokensDetails, Delta, FunctionCall, PromptTokensDetails,
    ToolCall, Usage,
};
use super::Str;
use crate::json::cursor::Cursor;

/// Deepest nesting of a skipped value (serde_json's own limit is 128); deeper declines.
const MAX_SKIP_DEPTH: usize = 64;

/// The chunk in `text` as serde would read it; None where this reader declines.
pub fn read(text: &str) -> Option<Chunk<'_>> {
    whole(text, Reader::chunk)
}

/// The Anthropic stream event in `text` as serde would read it; None where this reader
/// declines (every event with a message, content block, usage, error or stop details: the
/// few per stream that are not deltas).
pub fn read_anthropic_event(text: &str) -> Option<StreamEvent<'_>> {
    whole(text, Reader::stream_event)
}

/// `text` read into a default `T` by `value`, with nothing but white space after it.
fn whole<'a, T: Default>(
    text: &'a str,
    value: impl FnOnce(&mut Reader<'a>, &mut T) -> Option<()>,
) -> Option<T> {
    let mut r = Reader {
        s: text,
        c: Cursor::new(text.as_bytes(), 0),
    };
    let mut out = T::default();
    value(&mut r, &mut out)?;
    r.c.skip_ws();
    (r.c.pos() == text.len()).then_some(out)
}

/// Members of an Anthropic event this reader leaves to serde when they hold anything but
/// `null` (rare, a few per stream, and nested); their index + 3 is their bit in `Seen`.
const EVENT_FIELDS_FOR_SERDE: [&[u8]; 4] = [b"message", b"content_block", b"usage", b"error"];

struct Reader<'a> {
    /// The text `c` walks, for borrowing strings from it.
    s: &'a str,
    c: Cursor<'a>,
}

/// The known fields of one object already read: serde's derive refuses a field given twice.
#[derive(Default)]
struct Seen(u32);

impl Seen {
    fn first(&mut self, field: u32) -> Option<()> {
        let bit = 1u32.checked_shl(field)?;
        if self.0 & bit != 0 {
            return None;
        }
        self.0 |= bit;
        Some(())
    }
}

impl<'a> Reader<'a> {
    /// A string value: borrowed when it has no escape (as serde borrows), else unescaped by
    /// serde_json itself, so escapes and surrogates mean what they mean to serde.
    #[inline(always)]
    fn string(&mut self) -> Option<Str<'a>> {
        let token = self.c.strict_string()?;
        if token.escaped {
            let quoted = self.s.get(token.quoted())?;
            serde_json::from_str::<String>(quoted).ok().map(Str::from)
        } else {
            self.s.get(token.inner).map(Str::from)
        }
    }

    /// `null` (None) or what `read` makes of the value, as serde reads an `Option`.
    #[inline(always)]
    fn opt<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        self.c.skip_ws();
        if self.c.literal(b"null").is_some() {
            return Some(None);
        }
        read(self).map(Some)
    }

    #[inline(always)]
    fn opt_string(&mut self) -> Option<Option<Str<'a>>> {
        self.opt(Self::string)
    }

    /// An integer as serde reads it into an unsigned field (see `unsigned_prefix`).
    fn unsigned(&mut self) -> Option<u64> {
        self.c.unsigned()
    }

    fn small(&mut self) -> Option<u32> {
        u32::try_from(self.unsigned()?).ok()
    }

    /// The members of the object at the cursor; `each` gets the key (an escaped key declines)
    /// and reads or skips the value.
    #[inline(always)]
    fn object(&mut self, mut each: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        self.c.expect(b'{')?;
        self.c.skip_ws();
        if self.c.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            self.c.skip_ws();
            let key = self.c.strict_string()?;
            if key.escaped {
                return None;
            }
            let key = self.c.bytes().get(key.inner)?;
            self.c.expect(b':')?;
            self.c.skip_ws();
            each(self, key)?;
            self.c.skip_ws();
            match self.c.peek()? {
                b',' => self.c.advance(1),
                b'}' => {
                    self.c.advance(1);
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// `null` (None) or the value read into a default `T` in place (these structs are large:
    /// built and returned by value, they were copied at every level).
    #[inline(always)]
    fn opt_into<T: Default>(
        &mut self,
        slot: &mut Option<T>,
        read: impl FnOnce(&mut Self, &mut T) -> Option<()>,
    ) -> Option<()> {
        self.c.skip_ws();
        if self.c.literal(b"null").is_some() {
            *slot = None;
            return Some(());
        }
        read(self, slot.insert(T::default()))
    }

    /// An array, each item read in place into a default `T` pushed onto `items`.
    #[inline(always)]
    fn array_into<T: Default>(
        &mut self,
        items: &mut Vec<T>,
        mut item: impl FnMut(&mut Self, &mut T) -> Option<()>,
    ) -> Option<()> {
        self.array(|r| {
            items.push(T::default());
            item(r, items.last_mut()?)
        })
    }

    /// The items of the array at the cursor, each read (or skipped) by `each`.
    #[inline(always)]
    fn array(&mut self, mut each: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.c.expect(b'[')?;
        self.c.skip_ws();
        if self.c.eat(b']').is_some() {
            return Some(());
        }
        loop {
            self.c.skip_ws();
            each(self)?;
            self.c.skip_ws();
            match self.c.peek()? {
                b',' => self.c.advance(1),
                b']' => {
                    self.c.advance(1);
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Past the value at the cursor, its grammar checked as serde checks a value it ignores.
    fn skip(&mut self, depth: usize) -> Option<()> {
        self.c.skip_ws();
        match self.c.peek()? {
            b'"' => (!self.c.strict_string()?.escaped).then_some(()),
            b'{' if depth < MAX_SKIP_DEPTH => self.object(|r, _| r.skip(depth + 1)),
            b'[' if depth < MAX_SKIP_DEPTH => self.array(|r| r.skip(depth + 1)),
            b't' => self.c.literal(b"true"),
            b'f' => self.c.literal(b"false"),
            b'n' => self.c.literal(b"null"),
            b'-' | b'0'..=b'9' => self.c.number(),
            _ => None,
        }
    }

    fn chunk(&mut self, c: &mut Chunk<'a>) -> Option<()> {
        let mut seen = Seen::default();
        self.object(|r, key| {
            match key {
                b"id" => {
                    seen.first(0)?;
                    c.id = r.opt_string()?;
                }
                b"model" => {
                    seen.first(1)?;
                    c.model = r.opt_string()?;
                }
                b"choices" => {
                    seen.first(2)?;
                    r.opt_into(&mut c.choices, |r, v| r.array_into(v, Self::choice))?;
                }
                b"usage" => {
                    seen.first(3)?;
                    r.opt_into(&mut c.usage, Self::usage)?;
                }
                // An error object is rare and holds raw values: serde reads that chunk.
                b"error" => {
                    seen.first(4)?;
                    r.opt(|_| None::<()>)?;
                }
                _ => r.skip(0)?,
            }
            Some(())
        })
    }

    fn stream_event(&mut self, ev: &mut StreamEvent<'a>) -> Option<()> {
        let mut seen = Seen::default();
        self.object(|r, key| {
            match key {
                b"type" => {
                    seen.first(0)?;
                    ev.kind = r.opt_string()?;
                }
                b"index" => {
                    seen.first(1)?;
                    ev.index = r.opt(Self::unsigned)?;
                }
                b"delta" => {
                    seen.first(2)?;
                    r.opt_into(&mut ev.delta, Self::event_delta)?;
                }
                _ => match EVENT_FIELDS_FOR_SERDE.iter().position(|k| *k == key) {
                    Some(n) => {
                        seen.first(3 + u32::try_from(n).ok()?)?;
                        r.opt(|_| None::<()>)?;
                    }
                    None => r.skip(0)?,
                },
            }
            Some(())
        })
    }

    fn event_delta(&mut self, d: &mut EventDelta<'a>) -> Option<()> {
        let mut seen = Seen::default();
        self.object(|r, key| {
            let (field, slot) = match key {
                b"type" => (0, &mut d.kind),
                b"text" => (1, &mut d.text),
                b"partial_json" => (2, &mut d.partial_json),
                b"thinking" => (3, &mut d.thinking),
                b"signature" => (4, &mut d.signature),
                b"stop_reason" => (5, &mut d.stop_reason),
                b"stop_details" => {
                    seen.first(6)?;
                    return r.opt(|_| None::<()>).map(|_| ());
                }
                _ => return r.skip(0),
            };
            seen.first(field)?;
            *slot = r.opt_string()?;
            Some(())
        })
    }

    fn choice(&mut self, c: &mut ChunkChoice<'a>) -> Option<()> {
        let mut seen = Seen::default();
        self.object(|r, key| {
            match key {
                b"index" => {
                    seen.first(0)?;
                    c.index = r.small()?;
                }
                b"delta" => {
                    seen.first(1)?;
                    r.opt_into(&mut c.delta, Self::delta)?;
                }
                b"finish_reason" => {
                    seen.first(2)?;
                    c.finish_reason = r.opt_string()?;
                }
                _ => r.skip(0)?,
            }
            Some(())
        })
    }

    fn delta(&mut self, d: &mut Delta<'a>) -> Option<()> {
        let mut seen = Seen::default();
        self.object(|r, key| {
            match key {
                b"content" => {
                    seen.first(0)?;
                    d.content = r.opt_string()?;
                }
                b"refusal" => {
                    seen.first(1)?;
                    d.refusal = r.opt_string()?;
                }
                b"reasoning_content" => {
                    seen.first(2)?;
                    d.reasoning_content = r.opt_string()?;
                }
                b"reasoning" => {
                    seen.first(3)?;
                    d.reasoning = r.opt_string()?;
                }
                b"tool_calls" => {
                    seen.first(4)?;
                    r.opt_into(&mut d.tool_calls, |r, v| r.array_into(v, Self::tool_call))?;
                }
                _ => r.skip(0)?,
            }
            Some(())
        })
    }

    fn tool_call(&mut self, t: &mut ToolCall<'a>) -> Option<()> {
        let mut seen = Seen::default();
        self.object(|r, key| {
            match key {
                b"index" => {
                    seen.first(0)?;
                    t.index = r.opt(Self::small)?;
                }
                b"id" => {
                    seen.first(1)?;
                    t.id = r.opt_string()?;
                }
                b"type" => {
                    seen.first(2)?;
                    t.kind = r.opt_string()?;
                }
                b"function" => {
                    seen.first(3)?;
                    r.opt_into(&mut t.function, Self::function)?;
                }
                _ => r.skip(0)?,
            }
            Some(())
        })
    }

    fn function(&mut self, f: &mut FunctionCall<'a>) -> Option<()> {
        let mut seen = Seen::default();
        self.object(|r, key| {
            match key {
                b"name" => {
                    seen.first(0)?;
                    f.name = r.opt_string()?;
                }
                b"arguments" => {
                    seen.first(1)?;
                    f.arguments = r.opt_string()?;
                }
                _ => r.skip(0)?,
            }
            Some(())
        })
    }

    fn usage(&mut self, u: &mut Usage) -> Option<()> {
        let mut seen = Seen::default();
        self.object(|r, key| {
            match key {
                b"prompt_tokens" => {
                    seen.first(0)?;
                    u.prompt_tokens = r.unsigned()?;
                }
                b"completion_tokens" => {
                    seen.first(1)?;
                    u.completion_tokens = r.unsigned()?;
                }
                b"total_tokens" => {
                    seen.first(2)?;
                    u.total_tokens = r.unsigned()?;
                }
                b"prompt_tokens_details" => {
                    seen.first(3)?;
                    r.opt_into(&mut u.prompt_tokens_details, Self::prompt_details)?;
                }
                b"completion_tokens_details" => {
                    seen.first(4)?;
                    r.opt_into(&mut u.completion_tokens_details, Self::completion_details)?;
                }
                _ => r.skip(0)?,
            }
            Some(())
        })
    }

    fn prompt_details(&mut self, d: &mut PromptTokensDetails) -> Option<()> {
        let mut seen = Seen::default();
        self.object(|r, key| {
            match key {
                b"cached_tokens" => {
                    seen.first(0)?;
                    d.cached_tokens = r.opt(Self::unsigned)?;
                }
                b"cache_write_tokens" => {
                    seen.first(1)?;
                    d.cache_write_tokens = r.opt(Self::unsigned)?;
                }
                _ => r.skip(0)?,
            }
            Some(())
        })
    }

    fn completion_details(&mut self, d: &mut CompletionTokensDetails) -> Option<()> {
        let mut seen = Seen::default();
        self.object(|r, key| {
            match key {
                b"reasoning_tokens" => {
                    seen.first(0)?;
                    d.reasoning_tokens = r.opt(Self::unsigned)?;
                }
                _ => r.skip(0)?,
            }
            Some(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real chunks: the mock's, a tool call's, the usage chunk, reasoning, escapes and
    /// non-ASCII text, whitespace between tokens.
    const SAMPLES: [&str; 7] = [
        r#"{"id":"chatcmpl-Hr5U3HsC5f2q5cuMwG03dw4FeY5jT","object":"chat.completion.chunk","created":1750000000,"model":"mock-gpt","service_tier":"default","system_fingerprint":"fp_e2d178bb5c","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"Utzr7Bvu7"}"#,
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt","system_fingerprint":"fp","choices":[{"index":0,"delta":{"content":"H\u00e9llo \"x\"","tool_calls":[{"index":0,"id":"c","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"ab"}"#,
        r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}"#,
        "{\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"déjà vu 🦀\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}",
        " { \"id\" : \"x\" , \"choices\" : [ { \"index\" : 1 , \"delta\" : { \"reasoning\" : \"r\" } , \"logprobs\" : { \"content\" : [ { \"token\" : \"a\" , \"logprob\" : -0.5e-3 , \"bytes\" : [ 97 ] , \"top_logprobs\" : [ ] } ] } } ] , \"x\" : [ true , false , null , -0 , 1.25E+2 , { } ] } \n",
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\": \"Paris\\n\"}"}}]},"finish_reason":"tool_calls"}],"error":null}"#,
        r#"{"error":{"message":"over","type":"server_error","code":"x"}}"#,
    ];

    /// Real Anthropic events: the mock's deltas (with the padding it adds), a ping, tool
    /// input, thinking and its signature, escapes and non-ASCII text, whitespace between
    /// tokens, a block's stop, and the events left to serde (message start and delta, a
    /// block's start, an error).
    const EVENTS: [&str; 12] = [
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}        }"#,
        r#"{"type": "ping"}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Par"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"déjà vu 🦀 \u00e9"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"}}"#,
        " { \"type\" : \"content_block_delta\" , \"index\" : 2 , \"delta\" : { \"type\" : \"text_delta\" , \"text\" : \"a\\nb\" , \"x\" : [ true , null , -1.5e3 , { } ] } } \n",
        r#"{"type":"content_block_stop","index":0}"#,
        r#"{"type":"message_stop"}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":9}}"#,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        r#"{"type":"message_start","message":{"model":"m","id":"msg_1","type":"message","role":"assistant","content":[],"usage":{"input_tokens":27,"output_tokens":1}}}"#,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    ];

    fn reference(data: &[u8]) -> Option<String> {
        serde_json::from_slice::<Chunk<'_>>(data)
            .ok()
            .map(|c| format!("{c:?}"))
    }

    fn event_reference(data: &[u8]) -> Option<String> {
        serde_json::from_slice::<StreamEvent<'_>>(data)
            .ok()
            .map(|e| format!("{e:?}"))
    }

    /// Whenever a reader answers, serde answers the same; when serde fails, the reader
    /// declines.
    fn agrees_with(
        data: &[u8],
        read: fn(&str) -> Option<String>,
        reference: fn(&[u8]) -> Option<String>,
    ) -> bool {
        let Ok(text) = std::str::from_utf8(data) else {
            return false;
        };
        match read(text) {
            Some(c) => {
                assert_eq!(
                    Some(c),
                    reference(data),
                    "{}",
                    String::from_utf8_lossy(data)
                );
                true
            }
            None => false,
        }
    }

    fn agrees(data: &[u8]) -> bool {
        agrees_with(data, |t| read(t).map(|c| format!("{c:?}")), reference)
    }

    fn event_agrees(data: &[u8]) -> bool {
        agrees_with(
            data,
            |t| read_anthropic_event(t).map(|e| format!("{e:?}")),
            event_reference,
        )
    }

    #[test]
    fn real_anthropic_events_read_as_serde_reads_them() {
        for (n, s) in EVENTS.iter().enumerate() {
            let read_here = event_agrees(s.as_bytes());
            // The deltas, pings and stops are read here; the last four go to serde.
            assert_eq!(read_here, n < EVENTS.len() - 4, "{s}");
        }
        let ev = read_anthropic_event(EVENTS[0]).unwrap();
        let delta = ev.delta.as_ref().unwrap();
        assert_eq!(
            (ev.kind.as_deref(), ev.index, delta.text.as_deref()),
            (Some("content_block_delta"), Some(0), Some("Hello"))
        );
        assert!(delta.text.as_ref().unwrap().is_borrowed());
        let ev = read_anthropic_event(EVENTS[3]).unwrap();
        let thinking = ev.delta.unwrap().thinking.unwrap();
        assert_eq!(thinking.as_str(), "déjà vu 🦀 é");
        assert!(!thinking.is_borrowed());
    }

    #[test]
    fn anthropic_events_serde_refuses_or_reads_otherwise_are_declined() {
        for bad in [
            r#"{"type":"a","type":"b"}"#,
            r#"{"index":0,"index":1}"#,
            r#"{"delta":{"text":"a","text":"b"}}"#,
            r#"{"index":-1}"#,
            r#"{"index":1.0}"#,
            r#"{"index":01}"#,
            r#"{"index":18446744073709551616}"#,
            r#"{"type":1}"#,
            r#"{"delta":[]}"#,
            r#"{"delta":{"stop_details":{"type":"refusal"}}}"#,
            r#"{"usage":{"output_tokens":1}}"#,
            r#"{"delta":{"text":"a\qb"}}"#,
            r#"{"x":"a\u0062"}"#,
            r#"{"t\u0079pe":"ping"}"#,
            r#"{"type":"ping"} x"#,
            r#"{"type":"ping",}"#,
        ] {
            assert!(read_anthropic_event(bad).is_none(), "{bad}");
        }
        // null where serde reads None is read here too.
        let ev = read_anthropic_event(r#"{"type":null,"index":null,"delta":null,"usage":null}"#);
        assert!(ev.is_some_and(|e| e.kind.is_none() && e.index.is_none() && e.delta.is_none()));
    }

    #[test]
    fn real_chunks_read_as_serde_reads_them() {
        for (n, s) in SAMPLES.iter().enumerate() {
            let read_here = agrees(s.as_bytes());
            // All but the error chunk are read here, not handed to serde.
            assert_eq!(read_here, n != SAMPLES.len() - 1, "{s}");
        }
        let c = read(SAMPLES[1]).unwrap();
        let delta = c.choices.as_ref().unwrap()[0].delta.as_ref().unwrap();
        assert_eq!(delta.content.as_deref(), Some("Héllo \"x\""));
        assert!(!delta.content.as_ref().unwrap().is_borrowed());
        assert!(c.id.as_ref().unwrap().is_borrowed());
        let args = &delta.tool_calls.as_ref().unwrap()[0].function.as_ref();
        assert_eq!(args.unwrap().arguments.as_deref(), Some("{\"a\":1}"));
        let u = read(SAMPLES[2]).unwrap().usage.unwrap();
        assert_eq!((u.prompt_tokens, u.completion_tokens), (19, 10));
    }

    /// What serde refuses, or reads otherwise than plainly, is declined here.
    #[test]
    fn declines_what_serde_refuses_or_reads_otherwise() {
        for bad in [
            r#"{"id":"a","id":"b"}"#,
            r#"{"choices":[{"index":-1}]}"#,
            r#"{"choices":[{"index":4294967296}]}"#,
            r#"{"choices":[{"index":1.0}]}"#,
            r#"{"choices":[{"index":01}]}"#,
            r#"{"choices":[{"index":null}]}"#,
            r#"{"usage":{"prompt_tokens":null}}"#,
            r#"{"x":01}"#,
            r#"{"x":1.}"#,
            r#"{"x":-}"#,
            r#"{"x":[1,]}"#,
            r#"{"x":{"a":1,}}"#,
            r#"{"x":tru}"#,
            "{\"x\":\"a\u{1}b\"}",
            r#"{"x":"a\qb"}"#,
            r#"{"model":"a\qb"}"#,
            r#"{"id":1}"#,
            r#"{"choices":{}}"#,
            r#"{} x"#,
            r#"[null]"#,
            r#"{"a\u0062":1}"#,
        ] {
            assert!(read(bad).is_none(), "{bad}");
        }
        // Nesting past the bound declines; serde still reads it.
        let deep = format!("{{\"x\":{}{}}}", "[".repeat(100), "]".repeat(100));
        assert!(read(&deep).is_none());
        assert!(reference(deep.as_bytes()).is_some());
    }

    /// Every one-byte change of the samples (bytes that open or close strings and containers,
    /// escapes, digits, signs, control characters): the reader never disagrees with serde,
    /// and still reads a good share of them itself.
    #[test]
    fn every_one_byte_change_reads_as_serde_reads_it_or_is_declined() {
        let (tried, read_here) = one_byte_changes(&SAMPLES, agrees);
        assert!(tried > 10_000, "{tried}");
        assert!(read_here > tried / 4, "{read_here} of {tried}");
        let (tried, read_here) = one_byte_changes(&EVENTS, event_agrees);
        assert!(tried > 10_000, "{tried}");
        assert!(read_here > tried / 8, "{read_here} of {tried}");
    }

    /// Every one-byte change of `samples` through `agrees`: (tried, read by the reader).
    fn one_byte_changes(samples: &[&str], agrees: fn(&[u8]) -> bool) -> (usize, usize) {
        let mut read_here = 0usize;
        let mut tried = 0usize;
        for sample in samples {
            let sample = sample.as_bytes();
            for at in 0..sample.len() {
                for byte in [
                    b'"', b'\\', b'}', b']', b'{', b'[', b',', b':', b' ', b'0', b'9', b'-', b'.',
                    b'e', b'n', b'x', 0x01,
                ] {
                    let mut data = sample.to_vec();
                    data[at] = byte;
                    tried += 1;
                    if agrees(&data) {
                        read_here += 1;
                    }
                }
            }
        }
        (tried, read_here)
    }
}
