//! What a model id may hold (shared by the proxy, for clients' ids, and config, for configured
//! ones). The wire formats themselves are `crate::dialect`'s; `Format` is named here too.

use std::fmt;

pub use crate::dialect::Format;

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
