//! The three client-facing wire dialects (Chat Completions, Messages, Responses), how a
//! request's dialect is recognised, and what a model id may hold (shared by the proxy, for
//! clients' ids, and config, for configured ones).

use std::fmt;

/// Longest model id accepted, in bytes, from a client or in the config. Real ids are well
/// under 100 bytes; the bound keeps a hostile or mistyped one out of headers, logs and bodies.
pub const MAX_MODEL_ID_BYTES: usize = 256;

/// Why a string cannot serve as a model id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelIdProblem {
    /// Longer than [`MAX_MODEL_ID_BYTES`].
    TooLong,
    /// Holds a control character (CR, LF, NUL, DEL, C1, …).
    ControlCharacter,
}

impl fmt::Display for ModelIdProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelIdProblem::TooLong => write!(f, "is longer than {MAX_MODEL_ID_BYTES} bytes"),
            ModelIdProblem::ControlCharacter => write!(f, "must not contain control characters"),
        }
    }
}

/// A model id is echoed in `x-ringway-model`, logged and sent upstream: check it where it
/// enters (a request body, or the config file).
pub fn check_model_id(model: &str) -> Result<(), ModelIdProblem> {
    if model.len() > MAX_MODEL_ID_BYTES {
        Err(ModelIdProblem::TooLong)
    } else if model.chars().any(char::is_control) {
        Err(ModelIdProblem::ControlCharacter)
    } else {
        Ok(())
    }
}

/// A wire format: what a client speaks, or what a provider speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// OpenAI Chat Completions (`POST /v1/chat/completions`).
    OpenAi,
    /// Anthropic Messages (`POST /v1/messages`).
    Anthropic,
    /// OpenAI Responses (`POST /v1/responses`): a client dialect, and what a provider with
    /// native Responses speaks.
    Responses,
}

impl Format {
    /// The name used in logs, errors and config (`kind = "openai"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::OpenAi => "openai",
            Format::Anthropic => "anthropic",
            Format::Responses => "responses",
        }
    }

    /// Human name for error messages that name both sides of a mismatch.
    pub fn display_name(self) -> &'static str {
        match self {
            Format::OpenAi => "OpenAI Chat Completions",
            Format::Anthropic => "Anthropic Messages",
            Format::Responses => "OpenAI Responses",
        }
    }

    /// The dialect errors are rendered in: Responses errors have the OpenAI shape.
    pub fn error_dialect(self) -> Format {
        match self {
            Format::Responses => Format::OpenAi,
            f => f,
        }
    }

    /// The dialect an error should be rendered in when all we know is the path and whether
    /// Anthropic-only headers were sent (unknown paths, unparseable heads).
    pub fn sniff(path: &[u8], anthropic_headers: bool) -> Format {
        if path.starts_with(b"/v1/messages") || path.starts_with(b"/v1/v1/") || anthropic_headers {
            Format::Anthropic
        } else if path.starts_with(b"/v1/responses") || path.starts_with(b"/responses") {
            Format::Responses
        } else {
            Format::OpenAi
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids() {
        assert_eq!(check_model_id("claude-sonnet-4-5"), Ok(()));
        assert_eq!(check_model_id("org/model:tag é"), Ok(()));
        assert_eq!(check_model_id(&"m".repeat(MAX_MODEL_ID_BYTES)), Ok(()));
        assert_eq!(
            check_model_id(&"m".repeat(MAX_MODEL_ID_BYTES + 1)),
            Err(ModelIdProblem::TooLong)
        );
        for bad in ["a\r\nX: y", "a\nb", "a\0", "a\x7f", "a\u{85}", "\t"] {
            assert_eq!(
                check_model_id(bad),
                Err(ModelIdProblem::ControlCharacter),
                "{bad:?}"
            );
        }
    }
}
