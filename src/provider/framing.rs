//! How a provider's streamed answer is framed on the wire, and the decoder that turns its
//! bytes into the events the pump reads (SSE events, whatever the framing: a binary framing
//! decodes into the same events). Sans-IO.

use bytes::Bytes;

use crate::provider::aws_event_stream;
use crate::sse;

/// The content type of AWS event-stream bodies.
const EVENT_STREAM_TYPE: &[u8] = b"application/vnd.amazon.eventstream";

/// A stream's framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Server-sent events (`text/event-stream`).
    Sse,
    /// AWS event-stream frames (`application/vnd.amazon.eventstream`) whose `chunk`s each
    /// carry one Anthropic stream event (Amazon Bedrock's InvokeModelWithResponseStream).
    AwsEventStream,
}

impl Framing {
    /// Does a response's `content-type` say it is a stream in this framing? (SSE's is read by
    /// the HTTP head itself.)
    pub fn announced_by(self, content_type: Option<&[u8]>) -> bool {
        match self {
            Framing::Sse => false,
            Framing::AwsEventStream => content_type.is_some_and(|ct| {
                ct.len() >= EVENT_STREAM_TYPE.len()
                    && ct[..EVENT_STREAM_TYPE.len()].eq_ignore_ascii_case(EVENT_STREAM_TYPE)
            }),
        }
    }

    /// A decoder for one stream; `max_event` bounds one SSE event's bytes (an event-stream
    /// frame is bounded by [`aws_event_stream::MAX_FRAME_BYTES`]).
    pub fn decoder(self, max_event: usize) -> EventDecoder {
        match self {
            Framing::Sse => EventDecoder::Sse(sse::Decoder::new(max_event)),
            Framing::AwsEventStream => {
                EventDecoder::AwsEventStream(aws_event_stream::Decoder::with_event_bound(max_event))
            }
        }
    }
}

/// A provider stream's decoder: bytes in, events out.
#[derive(Debug)]
pub enum EventDecoder {
    /// SSE, as read.
    Sse(sse::Decoder),
    /// AWS event-stream frames, decoded into the Anthropic SSE events they carry.
    AwsEventStream(aws_event_stream::Decoder),
}

impl EventDecoder {
    /// Bytes read from the provider.
    pub fn push(&mut self, data: Bytes) {
        match self {
            EventDecoder::Sse(d) => d.push(data),
            EventDecoder::AwsEventStream(d) => d.push(data),
        }
    }

    /// The next whole event, if one is in.
    pub fn next_event(&mut self) -> Result<Option<sse::Event>, sse::SseError> {
        match self {
            EventDecoder::Sse(d) => d.next_event(),
            EventDecoder::AwsEventStream(d) => d.next_event(),
        }
    }

    /// What is left when the stream ends (an event without its blank line).
    pub fn finish(&mut self) -> Option<sse::Event> {
        match self {
            EventDecoder::Sse(d) => d.finish(),
            EventDecoder::AwsEventStream(d) => d.finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_aws_event_stream_arm_yields_anthropic_events() {
        let json = br#"{"type":"ping"}"#;
        let mut d = Framing::AwsEventStream.decoder(sse::MAX_EVENT_BYTES);
        d.push(Bytes::from(aws_event_stream::chunk_frame(json, "abc")));
        let ev = d.next_event().unwrap().unwrap();
        assert_eq!(&ev.raw[..], b"event: ping\ndata: {\"type\":\"ping\"}\n\n");
        assert_eq!(d.next_event(), Ok(None));
        assert_eq!(d.finish(), None);
    }
}
