//! A translation pair: the client's dialect and the provider's, chosen once per attempt. It
//! names which translator runs for the request, the whole answer, a provider error and a
//! stream, so the proxy never matches on formats itself. Messages and Responses clients reach
//! a Gemini provider through Chat Completions (their Chat translators, then Chat ⇄ Gemini).

use crate::format::Format;

use super::chat_via_gemini::{self, GeminiOptions};
use super::gemini::{Chain, GeminiLeg, GeminiSeal, JsonArrayStream};
use super::gemini_via_chat::{self, ThinkingSeal};
use super::out::Shared;
use super::responses::{AnthropicToResponsesStream, ChatToResponsesStream};
use super::{
    AnthropicToOpenAiStream, OpenAiToAnthropicStream, Options, RequestMeta, Room, TranslateError,
};

/// The client's dialect and the provider's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pair {
    /// What the client speaks.
    pub client: Format,
    /// What the provider speaks.
    pub provider: Format,
}

impl Pair {
    /// The pair for a client and a provider.
    pub fn new(client: Format, provider: Format) -> Pair {
        Pair { client, provider }
    }

    /// Same dialect both sides: bodies pass through (only spliced).
    pub fn is_passthrough(self) -> bool {
        self.client == self.provider
    }

    /// The provider's request body for the client's, with `model` set to `model`.
    pub fn request(
        self,
        body: &[u8],
        model: &str,
        opts: &Options,
    ) -> Result<(Vec<u8>, RequestMeta), TranslateError> {
        self.request_within(body, model, opts, &Room::unlimited())
    }

    /// [`Pair::request`] writing at most `room` bytes of buffers (else
    /// [`TranslateError::over_budget`]).
    pub fn request_within(
        self,
        body: &[u8],
        model: &str,
        opts: &Options,
        room: &Room,
    ) -> Result<(Vec<u8>, RequestMeta), TranslateError> {
        // Nothing lent: the body is wanted in one vector of its own, which lending would copy
        // into outside the room.
        super::without_lending(|| self.request_shared(body, model, opts, room))
            .and_then(|(b, m)| Ok((b.into_vec(body)?, m)))
    }

    /// [`Pair::request_within`] as shared bytes: a translation that wrote the body's first
    /// members in front of its conversation hands it over from where it starts, without
    /// moving it.
    pub fn request_shared(
        self,
        body: &[u8],
        model: &str,
        opts: &Options,
        room: &Room,
    ) -> Result<(Shared, RequestMeta), TranslateError> {
        let vec = |(b, m): (Vec<u8>, RequestMeta)| (Shared::of_vec(b), m);
        match (self.client, self.provider) {
            (Format::Gemini, Format::OpenAi | Format::Anthropic) => {
                self.gemini_client_request(body, model, opts, room).map(vec)
            }
            (Format::Gemini, _) | (_, Format::Gemini) => {
                self.gemini_request(body, model, opts, room).map(vec)
            }
            (Format::Responses, _) => {
                super::responses::responses_request_shared(body, model, self.provider, opts, room)
            }
            (Format::OpenAi, _) => super::chat_via_messages::request::openai_to_anthropic_shared(
                body, model, opts, room,
            ),
            (Format::Anthropic, _) => {
                super::messages_via_chat::request::anthropic_to_openai_shared(
                    body, model, opts, room,
                )
            }
        }
    }

    /// A request whose provider speaks Gemini: the client's body as Chat Completions first
    /// (unless it is), then as Gemini's.
    fn gemini_request(
        self,
        body: &[u8],
        model: &str,
        opts: &Options,
        room: &Room,
    ) -> Result<(Vec<u8>, RequestMeta), TranslateError> {
        let chat_body;
        let (chat, mut meta): (&[u8], RequestMeta) = match (self.client, self.provider) {
            (Format::OpenAi, Format::Gemini) => (body, RequestMeta::default()),
            (Format::Anthropic, Format::Gemini) => {
                let (b, m) = super::anthropic_to_openai_request_within(body, model, opts, room)?;
                chat_body = b;
                (&chat_body, m)
            }
            (Format::Responses, Format::Gemini) => {
                let (b, m) = super::responses::responses_request_within(
                    body,
                    model,
                    Format::OpenAi,
                    opts,
                    room,
                )?;
                chat_body = b;
                (&chat_body, m)
            }
            _ => {
                return Err(TranslateError::unsupported_value(
                    "model",
                    format!(
                        "{} clients cannot be served by a {} provider yet",
                        self.client.display_name(),
                        self.provider.display_name()
                    ),
                ))
            }
        };
        let seal = opts.seal.clone().map(|key| GeminiSeal {
            key,
            provider: opts.provider.clone(),
        });
        let gopts = GeminiOptions {
            effort_budgets: opts.effort_budgets.clone(),
            call_ids: opts.gemini_call_ids,
        };
        let leg_seal = chat_via_gemini::seal_or_none(&seal);
        let (out, gm) = chat_via_gemini::request_within(chat, model, &gopts, leg_seal, room)?;
        if self.client == Format::OpenAi {
            meta.stream = gm.stream;
            meta.include_usage = gm.include_usage;
            meta.client_model = gm.client_model.clone();
            meta.upstream_model = gm.upstream_model.clone();
        }
        meta.ledger.extend(&gm.ledger);
        meta.gemini = Some(Box::new(GeminiLeg { meta: gm, seal }));
        Ok((out, meta))
    }

    /// A Gemini client's request: its body as Chat Completions, then (for an Anthropic
    /// provider) as Messages.
    fn gemini_client_request(
        self,
        body: &[u8],
        model: &str,
        opts: &Options,
        room: &Room,
    ) -> Result<(Vec<u8>, RequestMeta), TranslateError> {
        use super::gemini_via_chat::request::Next;
        let seal = opts.seal.clone().map(|key| ThinkingSeal {
            key,
            provider: opts.provider.clone(),
        });
        let leg_seal = chat_via_gemini::seal_or_none(&seal);
        let next = if self.provider == Format::Anthropic {
            Next::Anthropic
        } else {
            Next::OpenAi
        };
        let (chat, mut meta, mut client) = gemini_via_chat::request_within(
            body,
            model,
            opts.path_stream,
            next,
            opts,
            leg_seal,
            room,
        )?;
        client.seal = seal;
        if next == Next::OpenAi {
            meta.gemini_client = Some(Box::new(client));
            return Ok((chat, meta));
        }
        let (out, mut messages) =
            super::openai_to_anthropic_request_within(&chat, model, opts, room)?;
        messages.ledger.extend(&meta.ledger);
        messages.tool_names = meta.tool_names;
        messages.gemini_client = Some(Box::new(client));
        Ok((out, messages))
    }

    /// The Gemini answer's translation state, dated by the gateway.
    fn gemini_leg(meta: &RequestMeta) -> Result<GeminiLeg, TranslateError> {
        let mut leg = meta.gemini.as_deref().cloned().ok_or_else(|| {
            TranslateError::internal("a Gemini answer without its request's state")
        })?;
        leg.meta.created = meta.created;
        Ok(leg)
    }

    /// The client's answer for the provider's whole (non-streamed) answer, into `out`.
    pub fn response_into(
        self,
        raw: &[u8],
        meta: &RequestMeta,
        out: &mut Vec<u8>,
    ) -> Result<(), TranslateError> {
        match (self.client, self.provider) {
            (client, Format::Gemini) if client != Format::Gemini => {
                let leg = Self::gemini_leg(meta)?;
                if client == Format::OpenAi {
                    return chat_via_gemini::response(raw, &leg.meta, leg.seal(), out);
                }
                let mut chat = Vec::with_capacity(raw.len());
                chat_via_gemini::response(raw, &leg.meta, leg.seal(), &mut chat)?;
                match client {
                    Format::Anthropic => super::openai_to_anthropic_response_into(&chat, meta, out),
                    _ => super::responses::chat_to_responses_response_into(&chat, meta, out),
                }
            }
            (Format::Gemini, provider) => {
                let client = meta.gemini_client.as_deref().ok_or_else(|| {
                    TranslateError::internal("a Gemini client's answer without its request's state")
                })?;
                if provider == Format::OpenAi {
                    return gemini_via_chat::response_into(raw, meta, client, out);
                }
                let mut chat = Vec::with_capacity(raw.len());
                super::anthropic_to_openai_response_into(raw, meta, &mut chat)?;
                gemini_via_chat::response_into(&chat, meta, client, out)
            }
            (Format::Responses, Format::Anthropic) => {
                super::responses::anthropic_to_responses_response_into(raw, meta, out)
            }
            (Format::Responses, _) => {
                super::responses::chat_to_responses_response_into(raw, meta, out)
            }
            (Format::OpenAi, _) => super::anthropic_to_openai_response_into(raw, meta, out),
            (Format::Anthropic, _) => super::openai_to_anthropic_response_into(raw, meta, out),
        }
    }

    /// A provider error (`status`, body) in the client's format: the status the client gets
    /// and the body. Same dialect: a body already in the client's shape passes unchanged.
    pub fn error(self, status: u16, raw: &[u8]) -> (u16, Option<Vec<u8>>) {
        // Responses errors have the OpenAI shape.
        match (self.client.error_dialect(), self.provider.error_dialect()) {
            (Format::Gemini, Format::Gemini) => (
                status,
                super::gemini::error_message(raw)
                    .is_none()
                    .then(|| gemini_error(status, raw)),
            ),
            // Anthropic's 529 is not an HTTP status Google's SDKs retry: it is their 503
            // (UNAVAILABLE), as the stream path and the OpenAI clients' path already say.
            (Format::Gemini, _) => {
                let status = if status == 529 { 503 } else { status };
                (status, Some(gemini_error(status, raw)))
            }
            (client, Format::Gemini) => {
                let message = super::gemini::error_message(raw)
                    .unwrap_or_else(|| super::error::snippet_message(status, raw));
                let body = if client == Format::Anthropic {
                    super::error::anthropic_body(
                        super::error::anthropic_type_for_status(status),
                        &message,
                    )
                } else {
                    super::error::openai_body(
                        &message,
                        super::error::openai_type_for_status(status),
                        None,
                        None,
                    )
                };
                (status, Some(body))
            }
            (Format::OpenAi, Format::Anthropic) => {
                let (s, b) = super::anthropic_to_openai_error(status, raw);
                (s, Some(b))
            }
            (Format::Anthropic, Format::OpenAi) => {
                let (s, b) = super::openai_to_anthropic_error(status, raw);
                (s, Some(b))
            }
            (client, _) => (
                status,
                super::same_format_error(client == Format::Anthropic, status, raw),
            ),
        }
    }

    /// The stream translator for this pair (None: same dialect, events pass through).
    pub fn stream(self, meta: &RequestMeta) -> Option<StreamTranslator> {
        match (self.client, self.provider) {
            (Format::OpenAi, Format::Anthropic) => Some(StreamTranslator::A2O(Box::new(
                AnthropicToOpenAiStream::new(meta),
            ))),
            (Format::Anthropic, Format::OpenAi) => Some(StreamTranslator::O2A(Box::new(
                OpenAiToAnthropicStream::new(meta),
            ))),
            (Format::Responses, Format::Anthropic) => Some(StreamTranslator::A2R(Box::new(
                AnthropicToResponsesStream::new(meta),
            ))),
            (Format::Responses, Format::OpenAi) => Some(StreamTranslator::C2R(Box::new(
                ChatToResponsesStream::new(meta),
            ))),
            // Asked for without `alt=sse`: the provider's SSE as one JSON array.
            (Format::Gemini, Format::Gemini) if meta.gemini_json_array => {
                Some(StreamTranslator::Array(Box::default()))
            }
            (Format::Gemini, provider @ (Format::OpenAi | Format::Anthropic)) => {
                let client = meta.gemini_client.as_deref()?.clone();
                let c2g =
                    StreamTranslator::C2G(Box::new(gemini_via_chat::Stream::new(meta, client)));
                let sse = if provider == Format::OpenAi {
                    c2g
                } else {
                    let a2o = StreamTranslator::A2O(Box::new(AnthropicToOpenAiStream::new(meta)));
                    StreamTranslator::Chain(Box::new(Chain::new(a2o, c2g)))
                };
                if !meta.gemini_json_array {
                    return Some(sse);
                }
                let array = StreamTranslator::Array(Box::default());
                Some(StreamTranslator::Chain(Box::new(Chain::new(sse, array))))
            }
            (Format::OpenAi | Format::Anthropic | Format::Responses, Format::Gemini) => {
                let g2c = StreamTranslator::G2C(Box::new(GeminiToChat::new(
                    Self::gemini_leg(meta).ok()?,
                )));
                let second = match self.client {
                    Format::OpenAi => return Some(g2c),
                    Format::Anthropic => {
                        StreamTranslator::O2A(Box::new(OpenAiToAnthropicStream::new(meta)))
                    }
                    _ => StreamTranslator::C2R(Box::new(ChatToResponsesStream::new(meta))),
                };
                Some(StreamTranslator::Chain(Box::new(Chain::new(g2c, second))))
            }
            _ => None,
        }
    }

    /// The content type of a translated stream, as the client's own API sends it (a Gemini
    /// stream asked for without `alt=sse` is one JSON array).
    pub fn stream_content_type(self, meta: Option<&RequestMeta>) -> &'static [u8] {
        match self.client {
            Format::Anthropic => b"text/event-stream; charset=utf-8",
            Format::Gemini if meta.is_some_and(|m| m.gemini_json_array) => b"application/json",
            _ => b"text/event-stream",
        }
    }

    /// The header the client's SDK reads the provider's request id from.
    pub fn request_id_header(self) -> &'static str {
        match self.client {
            Format::Anthropic => "request-id",
            _ => "x-request-id",
        }
    }
}

/// A provider error for a Gemini client: Google's error object with the provider's message.
fn gemini_error(status: u16, raw: &[u8]) -> Vec<u8> {
    let message = super::gemini::error_message(raw)
        .unwrap_or_else(|| super::error::snippet_message(status, raw));
    let mut out = Vec::with_capacity(64 + message.len());
    crate::dialect::gemini::error_object(status, &message, &mut out);
    out
}

/// Gemini chunks → Chat Completions chunks, with the leg's seal for thought signatures.
pub struct GeminiToChat {
    stream: chat_via_gemini::Stream,
    leg: GeminiLeg,
}

impl GeminiToChat {
    fn new(leg: GeminiLeg) -> GeminiToChat {
        GeminiToChat {
            stream: chat_via_gemini::Stream::new(&leg.meta),
            leg,
        }
    }
}

/// A stream state machine turning one provider dialect's events into the other's.
pub enum StreamTranslator {
    /// Anthropic events → OpenAI chunks.
    A2O(Box<AnthropicToOpenAiStream>),
    /// OpenAI chunks → Anthropic events.
    O2A(Box<OpenAiToAnthropicStream>),
    /// Anthropic events → Responses events.
    A2R(Box<AnthropicToResponsesStream>),
    /// OpenAI chunks → Responses events.
    C2R(Box<ChatToResponsesStream>),
    /// Gemini chunks → OpenAI chunks.
    G2C(Box<GeminiToChat>),
    /// OpenAI chunks → Gemini chunks.
    C2G(Box<gemini_via_chat::Stream>),
    /// Two in a row (a Gemini provider's chunks through Chat Completions).
    Chain(Box<Chain>),
    /// Gemini SSE chunks → one JSON array of them.
    Array(Box<JsonArrayStream>),
}

impl StreamTranslator {
    /// One provider event (`event:` name, `data:`), its translation appended to `out`.
    pub fn on_event(&mut self, event: Option<&[u8]>, data: &[u8], out: &mut Vec<u8>) {
        match self {
            StreamTranslator::A2O(t) => t.on_event(event, data, out),
            StreamTranslator::O2A(t) => t.on_event(event, data, out),
            StreamTranslator::A2R(t) => t.on_event(event, data, out),
            StreamTranslator::C2R(t) => t.on_event(event, data, out),
            StreamTranslator::G2C(t) => t.stream.feed(data, t.leg.seal(), out),
            StreamTranslator::C2G(t) => t.on_event(event, data, out),
            StreamTranslator::Chain(t) => t.on_event(event, data, out),
            StreamTranslator::Array(t) => t.on_event(event, data, out),
        }
    }

    /// The provider's stream ended: close the client's (an error event if it ended early).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        match self {
            StreamTranslator::A2O(t) => t.finish(out),
            StreamTranslator::O2A(t) => t.finish(out),
            StreamTranslator::A2R(t) => t.finish(out),
            StreamTranslator::C2R(t) => t.finish(out),
            StreamTranslator::G2C(t) => t.stream.finish(out),
            StreamTranslator::C2G(t) => t.finish(out),
            StreamTranslator::Chain(t) => t.finish(out),
            StreamTranslator::Array(t) => t.finish(out),
        }
    }

    /// The provider's stream broke: the client's error event and end.
    pub fn fail(&mut self, message: &str, out: &mut Vec<u8>) {
        match self {
            StreamTranslator::A2O(t) => t.fail(message, out),
            StreamTranslator::O2A(t) => t.fail(message, out),
            StreamTranslator::A2R(t) => t.fail(message, out),
            StreamTranslator::C2R(t) => t.fail(message, out),
            StreamTranslator::G2C(t) => t.stream.fail(message, out),
            StreamTranslator::C2G(t) => t.fail(message, out),
            StreamTranslator::Chain(t) => t.fail(message, out),
            StreamTranslator::Array(t) => t.fail(message, out),
        }
    }

    /// Does the output say when it completed (Responses `completed_at`)? Only then does the
    /// gateway read the clock for [`StreamTranslator::set_now`].
    pub fn dates_output(&self) -> bool {
        match self {
            StreamTranslator::Chain(t) => t.client_side().dates_output(),
            t => matches!(t, StreamTranslator::A2R(_) | StreamTranslator::C2R(_)),
        }
    }

    /// The time now (Unix seconds), for a translator whose output says when it completed;
    /// the others need no clock.
    pub fn set_now(&mut self, now: u64) {
        match self {
            StreamTranslator::A2R(t) => t.set_now(now),
            StreamTranslator::C2R(t) => t.set_now(now),
            StreamTranslator::Chain(t) => t.client_side_mut().set_now(now),
            StreamTranslator::A2O(_)
            | StreamTranslator::O2A(_)
            | StreamTranslator::G2C(_)
            | StreamTranslator::C2G(_)
            | StreamTranslator::Array(_) => {}
        }
    }

    /// For a Responses answer the gateway keeps: its reasoning items' sealed thinking, `(item
    /// id, sealed)`, for the stored copy (the client's has it only when asked for).
    pub fn kept_seals(&self) -> Vec<(&str, &str)> {
        match self {
            StreamTranslator::A2R(t) => t.kept_seals(),
            StreamTranslator::Chain(t) => t.client_side().kept_seals(),
            _ => Vec::new(),
        }
    }

    /// Bytes of the answer a Responses stream holds for its final events (0 for the others,
    /// which hold only bounded pieces).
    pub fn held_bytes(&self) -> usize {
        match self {
            StreamTranslator::A2R(t) => t.held_bytes(),
            StreamTranslator::C2R(t) => t.held_bytes(),
            StreamTranslator::Chain(t) => t.client_side().held_bytes(),
            StreamTranslator::A2O(_)
            | StreamTranslator::O2A(_)
            | StreamTranslator::G2C(_)
            | StreamTranslator::C2G(_)
            | StreamTranslator::Array(_) => 0,
        }
    }

    /// The answer cannot be held any longer: the stream ends with the client's error event
    /// and what it held is let go.
    pub fn fail_unheld(&mut self, message: &str, out: &mut Vec<u8>) {
        match self {
            StreamTranslator::A2R(t) => t.fail_unheld(message, out),
            StreamTranslator::C2R(t) => t.fail_unheld(message, out),
            StreamTranslator::A2O(t) => t.fail(message, out),
            StreamTranslator::O2A(t) => t.fail(message, out),
            StreamTranslator::G2C(t) => t.stream.fail(message, out),
            StreamTranslator::C2G(t) => t.fail(message, out),
            StreamTranslator::Chain(t) => t.client_side_mut().fail_unheld(message, out),
            StreamTranslator::Array(t) => t.fail(message, out),
        }
    }

    /// This translator without the JSON-array form at its end (None: it was only that), and
    /// whether it had it: the PII restorer reads SSE and makes the array after itself.
    pub fn without_array(self) -> (Option<StreamTranslator>, bool) {
        match self {
            StreamTranslator::Array(_) => (None, true),
            StreamTranslator::Chain(c) if matches!(c.client_side(), StreamTranslator::Array(_)) => {
                (Some(c.into_parts().0), true)
            }
            other => (Some(other), false),
        }
    }

    /// Did the client's stream end properly?
    pub fn is_done(&self) -> bool {
        match self {
            StreamTranslator::A2O(t) => t.is_done(),
            StreamTranslator::O2A(t) => t.is_done(),
            StreamTranslator::A2R(t) => t.is_done(),
            StreamTranslator::C2R(t) => t.is_done(),
            StreamTranslator::G2C(t) => t.stream.is_done(),
            StreamTranslator::C2G(t) => t.is_done(),
            StreamTranslator::Chain(t) => t.is_done(),
            StreamTranslator::Array(t) => t.is_done(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overloaded_anthropic_provider_is_unavailable_to_a_gemini_client() {
        let raw = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        let (status, body) = Pair::new(Format::Gemini, Format::Anthropic).error(529, raw);
        let body: serde_json::Value = serde_json::from_slice(&body.unwrap()).unwrap();
        assert_eq!(status, 503);
        assert_eq!(body["error"]["code"], 503);
        assert_eq!(body["error"]["status"], "UNAVAILABLE");
        assert_eq!(body["error"]["message"], "Overloaded");
    }
}
