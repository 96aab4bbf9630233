//! What the Gemini pairs share: the seal that carries a thought signature in a tool call id
//! (bound to the client's gateway key and to the provider that signed it), the state a
//! translated Gemini leg keeps for its answer, the chain that runs two stream translators one
//! after the other (Messages and Responses clients reach Gemini through Chat Completions),
//! and the removal of carried signatures from a body bound for another provider. Pure.

use crate::seal::{Purpose, SealKey};
use crate::sse;

use super::chat_via_gemini::{
    GeminiMeta, SignatureSeal, DUMMY_THOUGHT_SIGNATURE, SIGNATURE_SEPARATOR,
};
use super::gemini_via_chat::{carried_token, CARRIER_PREFIX};
use super::StreamTranslator;

/// Seals thought signatures for one client and one provider: a token another key's client,
/// or another provider, presents does not open (the call then gets Google's documented
/// dummy signature, never a 400).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeminiSeal {
    /// The gateway's seal key, bound to the client's gateway key.
    pub key: SealKey,
    /// The provider the signature came from (and may go back to).
    pub provider: String,
}

impl SignatureSeal for GeminiSeal {
    fn seal(&self, sig: &[u8]) -> Option<String> {
        let mut plain = Vec::with_capacity(self.provider.len() + 1 + sig.len());
        plain.extend_from_slice(self.provider.as_bytes());
        plain.push(0);
        plain.extend_from_slice(sig);
        let sealed = self.key.seal(Purpose::ThoughtSignature, &plain)?;
        // Ids allow `[A-Za-z0-9_-]`: the prefix's `.` stays out of them.
        sealed.strip_prefix(SealKey::PREFIX).map(str::to_owned)
    }

    fn open(&self, token: &str) -> Option<Vec<u8>> {
        let sealed = format!("{}{token}", SealKey::PREFIX);
        let plain = self.key.open(Purpose::ThoughtSignature, &sealed)?;
        let at = plain.iter().position(|&b| b == 0)?;
        let (provider, sig) = plain.split_at(at);
        (provider == self.provider.as_bytes()).then(|| sig.get(1..).unwrap_or_default().to_vec())
    }
}

impl GeminiSeal {
    /// Does `token` open under `key` (bound to the client), whichever provider it names? A
    /// conversation moving to another provider loses every carried signature.
    pub fn opens_for_any_provider(key: &SealKey, token: &str) -> bool {
        let sealed = format!("{}{token}", SealKey::PREFIX);
        key.open(Purpose::ThoughtSignature, &sealed)
            .is_some_and(|plain| plain.contains(&0))
    }
}

/// A Gemini provider's side of a translated request: what its answer's translation needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GeminiLeg {
    pub meta: GeminiMeta,
    /// None: no seal (signatures are not carried; calls get the dummy signature).
    pub seal: Option<GeminiSeal>,
}

impl GeminiLeg {
    /// The seal, or one that carries nothing.
    pub fn seal(&self) -> &dyn SignatureSeal {
        super::chat_via_gemini::seal_or_none(&self.seal)
    }
}

/// Most bytes one event of a translator's output may take when it is read again (the
/// chain's decoder, the PII restorer): a chunk holding [`super::MAX_HELD_TOOL_BYTES`] of
/// calls, every byte escaped once more, and room for the rest.
pub const MAX_CHAINED_EVENT_BYTES: usize = 2 * super::MAX_HELD_TOOL_BYTES + (1 << 20);

/// Two stream translators in a row: the provider's events through the first (into Chat
/// Completions chunks), those through the second (into the client's dialect).
pub struct Chain {
    first: Box<StreamTranslator>,
    second: Box<StreamTranslator>,
    dec: sse::Decoder,
    buf: Vec<u8>,
}

impl Chain {
    /// `first` then `second`.
    pub fn new(first: StreamTranslator, second: StreamTranslator) -> Chain {
        Chain {
            first: Box::new(first),
            second: Box::new(second),
            dec: sse::Decoder::new(MAX_CHAINED_EVENT_BYTES),
            buf: Vec::new(),
        }
    }

    /// Whatever the first wrote, through the second.
    fn pass(&mut self, out: &mut Vec<u8>) {
        if self.buf.is_empty() {
            return;
        }
        self.dec
            .push(bytes::Bytes::from(std::mem::take(&mut self.buf)));
        loop {
            match self.dec.next_event() {
                Ok(Some(ev)) => {
                    if let Some(data) = ev.data.as_deref() {
                        self.second.on_event(ev.event.as_deref(), data, out);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.second.fail(&e.to_string(), out);
                    break;
                }
            }
        }
    }

    pub fn on_event(&mut self, event: Option<&[u8]>, data: &[u8], out: &mut Vec<u8>) {
        self.first.on_event(event, data, &mut self.buf);
        self.pass(out);
    }

    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.first.finish(&mut self.buf);
        self.pass(out);
        if let Some(ev) = self.dec.finish() {
            if let Some(data) = ev.data.as_deref() {
                self.second.on_event(ev.event.as_deref(), data, out);
            }
        }
        if !self.second.is_done() {
            self.second.finish(out);
        }
    }

    pub fn fail(&mut self, message: &str, out: &mut Vec<u8>) {
        self.second.fail(message, out);
    }

    pub fn is_done(&self) -> bool {
        self.second.is_done()
    }

    /// The two translators (before any event went through).
    pub fn into_parts(self) -> (StreamTranslator, StreamTranslator) {
        (*self.first, *self.second)
    }

    /// The client's side (what it holds, dates and seals).
    pub fn client_side(&self) -> &StreamTranslator {
        &self.second
    }

    /// The same, to change.
    pub fn client_side_mut(&mut self) -> &mut StreamTranslator {
        &mut self.second
    }
}

/// A Gemini stream in the form a client asked for without `alt=sse`: one JSON array whose
/// elements are the chunks, written as they come (`[{…}`, `,\r\n{…}`, `]`). The provider is
/// always asked for SSE; this turns its events into the array. An error ends the array with
/// the error object as its last element, as Google's API does; a failure after the chunk that
/// finished the answer only closes it (the answer is whole, as in the SSE form).
#[derive(Debug, Default)]
pub struct JsonArrayStream {
    started: bool,
    /// A chunk with a `finishReason` (or a blocked prompt's `blockReason`) went out.
    finished: bool,
    done: bool,
}

impl JsonArrayStream {
    pub fn new() -> JsonArrayStream {
        JsonArrayStream::default()
    }

    fn element(&mut self, data: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(if self.started { b",\r\n" } else { b"[" });
        self.started = true;
        out.extend_from_slice(data);
    }

    pub fn on_event(&mut self, _event: Option<&[u8]>, data: &[u8], out: &mut Vec<u8>) {
        let data = data.trim_ascii();
        if self.done || data.is_empty() {
            return;
        }
        self.element(data, out);
        if data.starts_with(b"{\"error\"") {
            self.close(out);
        }
        // Keys are unescaped only as keys (see `dialect::gemini::is_terminal`).
        self.finished |= memchr::memmem::find(data, b"\"finishReason\"").is_some()
            || memchr::memmem::find(data, b"\"blockReason\"").is_some();
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            out.push(b'[');
        }
        out.extend_from_slice(b"\r\n]");
        self.started = true;
        self.done = true;
    }

    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.done {
            self.close(out);
        }
    }

    pub fn fail(&mut self, message: &str, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        if self.finished {
            return self.close(out);
        }
        let mut e = Vec::with_capacity(64 + message.len());
        crate::dialect::gemini::error_object(502, message, &mut e);
        self.element(&e, out);
        self.close(out);
    }

    pub fn is_done(&self) -> bool {
        self.done
    }
}

/// `body` with every carried signature that `seal` opens taken out of its tool call ids (a
/// conversation that moves from a Gemini provider to another: OpenAI refuses ids over 40
/// characters, and the signature means nothing there). Only tokens that open are removed, so
/// a client's own text that happens to hold the separator is never changed. None: nothing
/// to remove.
pub fn strip_carried_signatures(body: &[u8], opens: &dyn Fn(&str) -> bool) -> Option<Vec<u8>> {
    let sep = SIGNATURE_SEPARATOR.as_bytes();
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut from = 0;
    while let Some(at) = body
        .get(from..)
        .and_then(crate::seal::find_signature_separator)
    {
        let start = from + at;
        let token_start = start + sep.len();
        let token_len = body
            .get(token_start..)
            .unwrap_or_default()
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
            .count();
        let end = token_start + token_len;
        from = end.max(start + 1);
        // A token ends its id: the string's closing quote follows.
        if body.get(end) != Some(&b'"') || token_len == 0 {
            continue;
        }
        let token = std::str::from_utf8(body.get(token_start..end).unwrap_or_default());
        if !token.is_ok_and(opens) {
            continue;
        }
        let o = out.get_or_insert_with(|| Vec::with_capacity(body.len()));
        o.extend_from_slice(body.get(copied..start).unwrap_or_default());
        copied = end;
    }
    let mut o = out?;
    o.extend_from_slice(body.get(copied..).unwrap_or_default());
    Some(o)
}

/// `body` (a Gemini request) with every `thoughtSignature` that carries thinking sealed by
/// this gateway (see [`carried_token`]) replaced by [`DUMMY_THOUGHT_SIGNATURE`]: history from
/// another provider, which Gemini would refuse as a forged signature. Only a string that is a
/// `thoughtSignature` member's value and decodes as a carrier is changed. None: nothing to
/// swap.
pub fn swap_carried_thinking(body: &[u8]) -> Option<Vec<u8>> {
    let marker = format!("\"{CARRIER_PREFIX}");
    let finder = memchr::memmem::Finder::new(marker.as_bytes());
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut from = 0;
    while let Some(at) = body.get(from..).and_then(|rest| finder.find(rest)) {
        let quote = from + at;
        let start = quote + 1;
        from = start;
        if !is_signature_value(body.get(..quote).unwrap_or_default()) {
            continue;
        }
        let len = body
            .get(start..)
            .unwrap_or_default()
            .iter()
            .take_while(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'/' | b'=')
            })
            .count();
        let end = start + len;
        let value = std::str::from_utf8(body.get(start..end).unwrap_or_default()).unwrap_or("");
        if body.get(end) != Some(&b'"') || carried_token(value).is_none() {
            continue;
        }
        let o = out.get_or_insert_with(|| Vec::with_capacity(body.len()));
        o.extend_from_slice(body.get(copied..start).unwrap_or_default());
        o.extend_from_slice(DUMMY_THOUGHT_SIGNATURE.as_bytes());
        copied = end;
        from = end;
    }
    let mut o = out?;
    o.extend_from_slice(body.get(copied..).unwrap_or_default());
    Some(o)
}

/// Does `before` (the bytes before a string's opening quote) end with a `thoughtSignature`
/// (or `thought_signature`) member's name and colon?
fn is_signature_value(before: &[u8]) -> bool {
    let b = before.trim_ascii_end();
    let Some(b) = b.strip_suffix(b":") else {
        return false;
    };
    let b = b.trim_ascii_end();
    b.ends_with(b"\"thoughtSignature\"") || b.ends_with(b"\"thought_signature\"")
}

/// The message of a provider's error body in any of the shapes Gemini and the others use
/// (`{"error":{"message"}}`, Gemini's array-wrapped stream form, a plain string `error`);
/// None when it has none.
pub fn error_message(raw: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(raw).ok()?;
    let v = match v {
        serde_json::Value::Array(mut items) if !items.is_empty() => items.swap_remove(0),
        v => v,
    };
    let e = v.get("error")?;
    let m = e.get("message").and_then(|m| m.as_str()).or(e.as_str())?;
    (!m.is_empty()).then(|| m.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal(provider: &str) -> GeminiSeal {
        let key = SealKey::from_bytes(&[7; 32])
            .unwrap()
            .for_holder(crate::seal::Holder::Open);
        GeminiSeal {
            key,
            provider: provider.to_owned(),
        }
    }

    #[test]
    fn a_signature_opens_for_its_provider_and_holder_only() {
        let s = seal("gemini");
        let token = s.seal(b"c2lnbmF0dXJl").unwrap();
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(s.open(&token).as_deref(), Some(&b"c2lnbmF0dXJl"[..]));
        assert_eq!(seal("other").open(&token), None);
        let other_holder = GeminiSeal {
            key: s.key.for_holder(crate::seal::Holder::Key([1; 32])),
            ..s.clone()
        };
        assert_eq!(other_holder.open(&token), None);
        let mut altered = token.clone().into_bytes();
        if let Some(b) = altered.get_mut(10) {
            *b = if *b == b'A' { b'B' } else { b'A' };
        }
        assert_eq!(s.open(std::str::from_utf8(&altered).unwrap()), None);
    }

    #[test]
    fn carried_signatures_are_stripped_only_where_they_open() {
        let s = seal("gemini");
        let token = s.seal(b"sig").unwrap();
        let body = format!(
            r#"{{"messages":[{{"tool_calls":[{{"id":"call_1__rwts__{token}"}}]}},{{"role":"tool","tool_call_id":"call_1__rwts__{token}"}},{{"content":"a __rwts__xyz"}}]}}"#
        );
        let opens = |t: &str| s.open(t).is_some();
        let out = strip_carried_signatures(body.as_bytes(), &opens).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(
            out,
            r#"{"messages":[{"tool_calls":[{"id":"call_1"}]},{"role":"tool","tool_call_id":"call_1"},{"content":"a __rwts__xyz"}]}"#
        );
        assert_eq!(
            strip_carried_signatures(b"{\"a\":\"__rwts__\"}", &opens),
            None
        );
        assert_eq!(strip_carried_signatures(b"{}", &opens), None);
    }

    #[test]
    fn a_json_array_stream_is_one_array_whatever_ends_it() {
        let parse = |out: &[u8]| serde_json::from_slice::<serde_json::Value>(out).unwrap();
        let mut s = JsonArrayStream::new();
        let mut out = Vec::new();
        s.on_event(None, b"{\"a\":1}", &mut out);
        s.on_event(None, b" ", &mut out);
        s.on_event(None, b"{\"b\":2}", &mut out);
        s.finish(&mut out);
        assert_eq!(parse(&out), serde_json::json!([{"a":1},{"b":2}]));
        assert!(s.is_done());
        let mut s = JsonArrayStream::new();
        let mut out = Vec::new();
        s.finish(&mut out);
        assert_eq!(parse(&out), serde_json::json!([]));
        let mut s = JsonArrayStream::new();
        let mut out = Vec::new();
        s.on_event(None, b"{\"a\":1}", &mut out);
        s.fail("reset", &mut out);
        s.finish(&mut out);
        let v = parse(&out);
        assert_eq!(v[1]["error"]["message"], "reset");
        let mut s = JsonArrayStream::new();
        let mut out = Vec::new();
        s.on_event(None, b"{\"error\":{\"code\":500}}", &mut out);
        s.on_event(None, b"{\"late\":1}", &mut out);
        assert_eq!(parse(&out), serde_json::json!([{"error":{"code":500}}]));
    }

    #[test]
    fn a_failure_after_the_finish_closes_a_json_array_without_an_error() {
        // A fuzz finding: the provider's connection broke after the answer had finished;
        // the SSE form says nothing more, the array form appended an error element.
        let parse = |out: &[u8]| serde_json::from_slice::<serde_json::Value>(out).unwrap();
        let mut s = JsonArrayStream::new();
        let mut out = Vec::new();
        s.on_event(
            None,
            br#"{"candidates":[{"finishReason":"STOP"}]}"#,
            &mut out,
        );
        s.fail("upstream connection reset", &mut out);
        assert!(s.is_done());
        assert_eq!(
            parse(&out),
            serde_json::json!([{"candidates":[{"finishReason":"STOP"}]}])
        );
    }

    #[test]
    fn error_messages_in_every_shape() {
        assert_eq!(
            error_message(br#"{"error":{"code":400,"message":"bad","status":"INVALID_ARGUMENT"}}"#)
                .as_deref(),
            Some("bad")
        );
        assert_eq!(
            error_message(br#"[{"error":{"code":503,"message":"busy"}}]"#).as_deref(),
            Some("busy")
        );
        assert_eq!(
            error_message(br#"{"error":"plain"}"#).as_deref(),
            Some("plain")
        );
        assert_eq!(error_message(b"<html>"), None);
    }
}
