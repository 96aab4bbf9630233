//! How a provider's streamed answer is framed on the wire, and the decoder that turns its
//! bytes into the events the pump reads (SSE events, whatever the framing: a binary framing
//! decodes into the same events). Sans-IO.

use bytes::Bytes;

use crate::sse;

/// A stream's framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Server-sent events (`text/event-stream`).
    Sse,
}

impl Framing {
    /// A decoder for one stream; `max_event` bounds one event's bytes.
    pub fn decoder(self, max_event: usize) -> EventDecoder {
        match self {
            Framing::Sse => EventDecoder::Sse(sse::Decoder::new(max_event)),
        }
    }
}

/// A provider stream's decoder: bytes in, events out.
#[derive(Debug)]
pub enum EventDecoder {
    /// SSE, as read.
    Sse(sse::Decoder),
}

impl EventDecoder {
    /// Bytes read from the provider.
    pub fn push(&mut self, data: Bytes) {
        match self {
            EventDecoder::Sse(d) => d.push(data),
        }
    }

    /// The next whole event, if one is in.
    pub fn next_event(&mut self) -> Result<Option<sse::Event>, sse::SseError> {
        match self {
            EventDecoder::Sse(d) => d.next_event(),
        }
    }

    /// What is left when the stream ends (an event without its blank line).
    pub fn finish(&mut self) -> Option<sse::Event> {
        match self {
            EventDecoder::Sse(d) => d.finish(),
        }
    }
}
