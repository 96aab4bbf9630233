//! The two client-facing wire dialects and how a request's dialect is recognised.

/// A wire format: what a client speaks, or what a provider speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// OpenAI Chat Completions (`POST /v1/chat/completions`).
    OpenAi,
    /// Anthropic Messages (`POST /v1/messages`).
    Anthropic,
}

impl Format {
    /// The name used in logs, errors and config (`kind = "openai"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::OpenAi => "openai",
            Format::Anthropic => "anthropic",
        }
    }

    /// Human name for error messages that name both sides of a mismatch.
    pub fn display_name(self) -> &'static str {
        match self {
            Format::OpenAi => "OpenAI Chat Completions",
            Format::Anthropic => "Anthropic Messages",
        }
    }

    /// The dialect an error should be rendered in when all we know is the path and whether
    /// Anthropic-only headers were sent (unknown paths, unparseable heads).
    pub fn sniff(path: &[u8], anthropic_headers: bool) -> Format {
        if path.starts_with(b"/v1/messages") || path.starts_with(b"/v1/v1/") || anthropic_headers {
            Format::Anthropic
        } else {
            Format::OpenAi
        }
    }
}
