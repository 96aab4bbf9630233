//! A translation pair: the client's dialect and the provider's, chosen once per attempt. It
//! names which translator runs for the request, the whole answer, a provider error and a
//! stream, so the proxy never matches on formats itself.

use crate::format::Format;

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
        match self.client {
            Format::Responses => {
                super::responses::responses_request_within(body, model, self.provider, opts, room)
            }
            Format::OpenAi => super::openai_to_anthropic_request_within(body, model, opts, room),
            Format::Anthropic => super::anthropic_to_openai_request_within(body, model, opts, room),
        }
    }

    /// The client's answer for the provider's whole (non-streamed) answer, into `out`.
    pub fn response_into(
        self,
        raw: &[u8],
        meta: &RequestMeta,
        out: &mut Vec<u8>,
    ) -> Result<(), TranslateError> {
        match (self.client, self.provider) {
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
            _ => None,
        }
    }

    /// The content type of a translated stream, as the client's own API sends it.
    pub fn stream_content_type(self) -> &'static [u8] {
        match self.client {
            Format::Anthropic => b"text/event-stream; charset=utf-8",
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
}

impl StreamTranslator {
    /// One provider event (`event:` name, `data:`), its translation appended to `out`.
    pub fn on_event(&mut self, event: Option<&[u8]>, data: &[u8], out: &mut Vec<u8>) {
        match self {
            StreamTranslator::A2O(t) => t.on_event(event, data, out),
            StreamTranslator::O2A(t) => t.on_event(event, data, out),
            StreamTranslator::A2R(t) => t.on_event(event, data, out),
            StreamTranslator::C2R(t) => t.on_event(event, data, out),
        }
    }

    /// The provider's stream ended: close the client's (an error event if it ended early).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        match self {
            StreamTranslator::A2O(t) => t.finish(out),
            StreamTranslator::O2A(t) => t.finish(out),
            StreamTranslator::A2R(t) => t.finish(out),
            StreamTranslator::C2R(t) => t.finish(out),
        }
    }

    /// The provider's stream broke: the client's error event and end.
    pub fn fail(&mut self, message: &str, out: &mut Vec<u8>) {
        match self {
            StreamTranslator::A2O(t) => t.fail(message, out),
            StreamTranslator::O2A(t) => t.fail(message, out),
            StreamTranslator::A2R(t) => t.fail(message, out),
            StreamTranslator::C2R(t) => t.fail(message, out),
        }
    }

    /// Does the output say when it completed (Responses `completed_at`)? Only then does the
    /// gateway read the clock for [`StreamTranslator::set_now`].
    pub fn dates_output(&self) -> bool {
        matches!(self, StreamTranslator::A2R(_) | StreamTranslator::C2R(_))
    }

    /// The time now (Unix seconds), for a translator whose output says when it completed;
    /// the others need no clock.
    pub fn set_now(&mut self, now: u64) {
        match self {
            StreamTranslator::A2R(t) => t.set_now(now),
            StreamTranslator::C2R(t) => t.set_now(now),
            StreamTranslator::A2O(_) | StreamTranslator::O2A(_) => {}
        }
    }

    /// For a Responses answer the gateway keeps: its reasoning items' sealed thinking, `(item
    /// id, sealed)`, for the stored copy (the client's has it only when asked for).
    pub fn kept_seals(&self) -> Vec<(&str, &str)> {
        match self {
            StreamTranslator::A2R(t) => t.kept_seals(),
            _ => Vec::new(),
        }
    }

    /// Bytes of the answer a Responses stream holds for its final events (0 for the others,
    /// which hold only bounded pieces).
    pub fn held_bytes(&self) -> usize {
        match self {
            StreamTranslator::A2R(t) => t.held_bytes(),
            StreamTranslator::C2R(t) => t.held_bytes(),
            StreamTranslator::A2O(_) | StreamTranslator::O2A(_) => 0,
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
        }
    }

    /// Did the client's stream end properly?
    pub fn is_done(&self) -> bool {
        match self {
            StreamTranslator::A2O(t) => t.is_done(),
            StreamTranslator::O2A(t) => t.is_done(),
            StreamTranslator::A2R(t) => t.is_done(),
            StreamTranslator::C2R(t) => t.is_done(),
        }
    }
}
