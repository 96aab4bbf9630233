//! Response framing and timing: a streamed answer's frames scheduled into steps (pauses,
//! grouping, faults), and complete Content-Length replies.

use std::time::Duration;

use bytes::Bytes;

use super::directives::{Fault, FAULT_AFTER_TOKENS};
use super::ids::Ids;
use super::step::{Api, Step};

#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    pub(super) ttft: Duration,
    pub(super) itl: Duration,
}

impl Timing {
    /// How long a non-streaming reply of `paced` tokens takes to generate.
    pub(super) fn total(&self, paced: usize) -> Duration {
        let gaps = u32::try_from(paced.saturating_sub(1)).unwrap_or(u32::MAX);
        self.ttft.saturating_add(self.itl.saturating_mul(gaps))
    }
}

/// How a frame is scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pace {
    /// Content: written alone, after the ttft / inter-token pause.
    Paced,
    /// Framing (block start/stop, ping): rides along with its neighbours in one write, as real
    /// providers group them.
    Grouped,
    /// The closing events (stop reason, usage, `[DONE]`): grouped, and never sent after a fault.
    Final,
}

/// One SSE event's bytes.
pub(super) struct Frame {
    pub(super) bytes: String,
    pub(super) pace: Pace,
}

pub(super) fn schedule_stream(
    api: Api,
    ids: &Ids,
    frames: Vec<Frame>,
    timing: Timing,
    fault: Option<Fault>,
    error_frame: String,
) -> Vec<Step> {
    let content_type = match api {
        Api::OpenAiChat => "text/event-stream",
        _ => "text/event-stream; charset=utf-8",
    };
    let mut steps = vec![Step::Head {
        status: 200,
        headers: vec![
            ("content-type", content_type.to_owned()),
            ("cache-control", "no-cache".to_owned()),
            ids.request_header(api),
        ],
        content_length: None,
    }];
    let limit = match fault {
        Some(Fault::Stall) => Some(1),
        Some(Fault::Reset | Fault::MidstreamError) => Some(FAULT_AFTER_TOKENS),
        None => None,
    };
    let mut pending: Vec<Frame> = Vec::new();
    let mut sent = 0usize;
    for frame in frames {
        if frame.pace != Pace::Paced {
            pending.push(frame);
            continue;
        }
        if limit == Some(sent) {
            break;
        }
        flush(&mut steps, &mut pending);
        let pause = if sent == 0 { timing.ttft } else { timing.itl };
        if !pause.is_zero() {
            steps.push(Step::Sleep(pause));
        }
        steps.push(Step::Data(Bytes::from(frame.bytes)));
        sent += 1;
    }
    if fault.is_some() {
        // A broken stream never carries its closing events.
        pending.retain(|f| f.pace != Pace::Final);
    }
    flush(&mut steps, &mut pending);
    match fault {
        Some(Fault::Reset) => steps.push(Step::Reset),
        Some(Fault::Stall) => steps.push(Step::Stall),
        Some(Fault::MidstreamError) => {
            steps.push(Step::Data(Bytes::from(error_frame)));
            steps.push(Step::End);
        }
        None => steps.push(Step::End),
    }
    steps
}

/// Writes the pending grouped frames as one Data step.
fn flush(steps: &mut Vec<Step>, pending: &mut Vec<Frame>) {
    if pending.is_empty() {
        return;
    }
    let bytes: String = pending.drain(..).map(|f| f.bytes).collect();
    steps.push(Step::Data(Bytes::from(bytes)));
}

/// A complete (Content-Length) reply after `delay`.
pub(super) fn fixed_response(
    ids: &Ids,
    api: Api,
    status: u16,
    body: Vec<u8>,
    delay: Duration,
) -> Vec<Step> {
    fixed_with_headers(status, vec![ids.request_header(api)], body, delay)
}

pub(super) fn fixed_with_headers(
    status: u16,
    mut headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    delay: Duration,
) -> Vec<Step> {
    headers.insert(0, ("content-type", "application/json".to_owned()));
    let mut steps = Vec::with_capacity(4);
    if !delay.is_zero() {
        steps.push(Step::Sleep(delay));
    }
    steps.push(Step::Head {
        status,
        headers,
        content_length: Some(body.len()),
    });
    steps.push(Step::Data(Bytes::from(body)));
    steps.push(Step::End);
    steps
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;
    use crate::mock::script::testing::*;
    use serde_json::json;

    #[test]
    fn reset_and_stall() {
        for api in [Api::AnthropicMessages, Api::OpenAiChat] {
            let make = |prompt: &str, stream: bool| match api {
                Api::OpenAiChat => openai(prompt, json!({"stream": stream})),
                _ => anthropic(prompt, json!({"stream": stream})),
            };
            assert_eq!(run(api, &make("mock:reset", false)), vec![Step::Reset]);
            assert_eq!(run(api, &make("mock:stall", false)), vec![Step::Stall]);

            let steps = run(api, &make("mock:reset now", true));
            assert_eq!(steps.last(), Some(&Step::Reset));
            assert!(!steps.contains(&Step::End));
            let raw = body_of(&steps[..steps.len() - 1]);
            let content = raw.matches("text_delta").count()
                + raw.matches("\"content\":\"H").count()
                + raw.matches("\"content\":\" ").count();
            assert_eq!(content, FAULT_AFTER_TOKENS, "{raw}");
            assert!(!raw.contains("message_stop") && !raw.contains("[DONE]"));

            let steps = run(api, &make("mock:stall", true));
            assert_eq!(steps.last(), Some(&Step::Stall));
            assert!(matches!(steps.first(), Some(Step::Head { .. })));
            let data = steps.iter().filter(|s| matches!(s, Step::Data(_))).count();
            assert_eq!(data, 2, "preamble and the first token");
            assert_eq!(sleeps(&steps), vec![TTFT]);
            // Reset wins over stall and midstream_error.
            let steps = run(
                api,
                &make("mock:stall mock:reset mock:midstream_error", true),
            );
            assert_eq!(steps.last(), Some(&Step::Reset));
        }
    }
}
