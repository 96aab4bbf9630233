//! Provider kinds: how a provider is reached, one module each. A kind names the dialect its
//! bodies are in, the path of each operation, how its credential is presented, the headers
//! its API versions by, and the framing of its streams. What the bodies say is the dialect's
//! (`crate::dialect`); this is only how they travel. Sans-IO: no config, no sockets. Adding a
//! kind is a variant here and its module; the request path asks the kind, never matches it.

pub mod anthropic;
pub mod aws_event_stream;
pub mod framing;
pub mod openai;

use crate::dialect::{Format, Op};

pub use framing::{EventDecoder, Framing};

/// How a provider is reached (`kind = "…"` in the config).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The OpenAI API: Chat Completions (and Responses, where it has them natively).
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
}

/// Every kind, in the order the config's error message names them.
pub const ALL: [Kind; 2] = [Kind::OpenAi, Kind::Anthropic];

impl Kind {
    /// The kind a config names.
    pub fn parse(name: &str) -> Option<Kind> {
        ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Its name in the config, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::OpenAi => openai::NAME,
            Kind::Anthropic => anthropic::NAME,
        }
    }

    /// The dialect its bodies are written in.
    pub fn dialect(self) -> Format {
        match self {
            Kind::OpenAi => Format::OpenAi,
            Kind::Anthropic => Format::Anthropic,
        }
    }

    /// The path (under the provider's base path) of `op` for a body in `speaks` (its own
    /// dialect, or Responses where it serves them natively). None: the kind has no such
    /// operation, and the gateway answers it itself (count_tokens is then estimated).
    pub fn path(self, speaks: Format, op: Op) -> Option<&'static str> {
        match self {
            Kind::OpenAi => openai::path(speaks, op),
            Kind::Anthropic => anthropic::path(op),
        }
    }

    /// The header that carries a credential `secret`, and its value.
    pub fn credential(self, secret: &str) -> (http::HeaderName, String) {
        match self {
            Kind::OpenAi => openai::credential(secret),
            Kind::Anthropic => anthropic::credential(secret),
        }
    }

    /// Does the API take its version and betas as `anthropic-version` / `anthropic-beta`
    /// headers (else a client's `anthropic-beta` turns on nothing there, and is reported
    /// dropped)?
    pub fn versioned_by_anthropic_headers(self) -> bool {
        matches!(self, Kind::Anthropic)
    }

    /// May a provider of this kind serve the Responses API natively (`responses = "native"`)?
    pub fn may_serve_responses(self) -> bool {
        matches!(self, Kind::OpenAi)
    }

    /// How its streamed answers are framed.
    pub fn framing(self) -> Framing {
        match self {
            Kind::OpenAi | Kind::Anthropic => Framing::Sse,
        }
    }
}

/// The names of every kind, as the config's error message lists them (`"a" or "b"`).
pub fn expected() -> String {
    let names: Vec<String> = ALL.iter().map(|k| format!("{:?}", k.as_str())).collect();
    match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_listed_for_the_config() {
        for k in ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
        assert_eq!(Kind::parse("bedrock"), None);
        assert_eq!(expected(), "\"openai\" or \"anthropic\"");
    }

    #[test]
    fn each_operation_has_its_path_or_is_answered_here() {
        use Format::{Anthropic, OpenAi, Responses};
        assert_eq!(
            Kind::OpenAi.path(OpenAi, Op::Chat),
            Some("/chat/completions")
        );
        assert_eq!(Kind::OpenAi.path(Responses, Op::Chat), Some("/responses"));
        assert_eq!(
            Kind::OpenAi.path(Responses, Op::Compact),
            Some("/responses/compact")
        );
        assert_eq!(Kind::OpenAi.path(OpenAi, Op::CountTokens), None);
        assert_eq!(
            Kind::Anthropic.path(Anthropic, Op::Chat),
            Some("/v1/messages")
        );
        assert_eq!(
            Kind::Anthropic.path(Anthropic, Op::CountTokens),
            Some("/v1/messages/count_tokens")
        );
    }

    #[test]
    fn credentials_go_where_each_api_reads_them() {
        let (name, value) = Kind::OpenAi.credential("sk-1");
        assert_eq!(
            (name.as_str(), value.as_str()),
            ("authorization", "Bearer sk-1")
        );
        let (name, value) = Kind::Anthropic.credential("sk-2");
        assert_eq!((name.as_str(), value.as_str()), ("x-api-key", "sk-2"));
    }
}
