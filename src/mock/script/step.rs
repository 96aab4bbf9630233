//! What a plan is made of: the API a request path names, the latency defaults, and the
//! [`Step`]s the IO executor runs in order.

use std::time::Duration;

use bytes::Bytes;

/// Latency settings from the command line; `mock:ttft=` / `mock:itl=` override them per request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Defaults {
    /// Pause before the first content event (stream) or added to the response time (non-stream).
    pub ttft: Duration,
    /// Pause between content events.
    pub inter_token: Duration,
}

/// One thing the executor does, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Response status + headers; body framing: `Some(len)` = Content-Length, `None` = chunked.
    /// Headers never include framing or connection headers; the executor adds those.
    Head {
        /// HTTP status code.
        status: u16,
        /// Header name (lower case) and value pairs.
        headers: Vec<(&'static str, String)>,
        /// Body length for Content-Length framing, or `None` for chunked.
        content_length: Option<usize>,
    },
    /// These bytes as body (one HTTP chunk when chunked). Written together with the steps
    /// around them up to the next pause (`Sleep`, `Stall`, `Reset`, `Close` or the end).
    Data(Bytes),
    /// Wait this long before the next step.
    Sleep(Duration),
    /// Abort the TCP connection now (RST), no terminator.
    Reset,
    /// Stop sending and hold the connection open forever (the client must time out).
    Stall,
    /// Finish the body normally (last-chunk when chunked; nothing more with Content-Length).
    End,
    /// These bytes as they are (no chunk framing, no head needed), written like `Data`: for
    /// answers that are not HTTP at all.
    Raw(Bytes),
    /// Close the connection normally (FIN) now, whatever was or was not written.
    Close,
}

/// Which provider endpoint a request path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// OpenAI `POST …/chat/completions`.
    OpenAiChat,
    /// Anthropic `POST /v1/messages`.
    AnthropicMessages,
    /// Anthropic `POST /v1/messages/count_tokens`.
    AnthropicCountTokens,
}

/// Maps a request path (query string allowed) to the API it names; `None` means 404.
pub fn api_for_path(path: &str) -> Option<Api> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    if path.ends_with("/v1/messages/count_tokens") {
        Some(Api::AnthropicCountTokens)
    } else if path.ends_with("/v1/messages") {
        Some(Api::AnthropicMessages)
    } else if path.ends_with("/chat/completions") {
        Some(Api::OpenAiChat)
    } else {
        None
    }
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

    #[test]
    fn paths_map_to_apis() {
        assert_eq!(api_for_path("/v1/chat/completions"), Some(Api::OpenAiChat));
        assert_eq!(api_for_path("/chat/completions"), Some(Api::OpenAiChat));
        assert_eq!(
            api_for_path("/openai/v1/chat/completions"),
            Some(Api::OpenAiChat)
        );
        assert_eq!(api_for_path("/v1/messages"), Some(Api::AnthropicMessages));
        assert_eq!(
            api_for_path("/v1/messages?beta=true"),
            Some(Api::AnthropicMessages)
        );
        assert_eq!(
            api_for_path("/v1/messages/count_tokens"),
            Some(Api::AnthropicCountTokens)
        );
        assert_eq!(api_for_path("/v1/models"), None);
        assert_eq!(api_for_path("/v1/messages/batches"), None);
        assert_eq!(api_for_path("/"), None);
    }
}
