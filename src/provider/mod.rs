//! Provider kinds: how a provider is reached, one module each. A kind names the dialect its
//! bodies are in, the path of each operation, how its credential is presented, the headers
//! its API versions by, and the framing of its streams. What the bodies say is the dialect's
//! (`crate::dialect`); this is only how they travel. Sans-IO: no config, no sockets. Adding a
//! kind is a variant here and its module; the request path asks the kind, never matches it.

pub mod anthropic;
pub mod aws_event_stream;
pub mod bedrock;
pub mod claude_body;
pub mod framing;
pub mod gemini;
pub mod openai;
pub mod regions;
pub mod vertex;

use std::borrow::Cow;

use crate::dialect::{Format, Op};

pub use framing::{EventDecoder, Framing};

/// How a provider is reached (`kind = "…"` in the config).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The OpenAI API: Chat Completions (and Responses, where it has them natively).
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
    /// Claude on Amazon Bedrock (InvokeModel, SigV4 or a Bedrock API key, event-stream frames).
    Bedrock,
    /// Claude and Gemini on Google Vertex AI (rawPredict or generateContent by the model's
    /// publisher, an OAuth2 token, SSE).
    Vertex,
    /// Google's Gemini API (generateContent, `x-goog-api-key`, SSE).
    Gemini,
}

/// Every kind, in the order the config's error message names them.
pub const ALL: [Kind; 5] = [
    Kind::OpenAi,
    Kind::Anthropic,
    Kind::Bedrock,
    Kind::Vertex,
    Kind::Gemini,
];

/// What a cloud kind's path is made of besides the operation: the model (it is in the path,
/// not the body), whether the answer streams (Bedrock's path says it), the project and
/// location (Vertex).
#[derive(Clone, Copy, Debug)]
pub struct PathArgs<'a> {
    pub model: &'a str,
    pub stream: bool,
    pub project: &'a str,
    pub location: &'a str,
}

/// Where a kind takes the client's `anthropic-beta` values.
#[derive(Clone, Copy, Debug)]
pub enum Betas {
    /// As the client sent them, in the header (Anthropic's API).
    Header,
    /// In the header, those the upstream knows (Vertex).
    HeaderAllowed(
        &'static [&'static str],
        &'static [(&'static str, &'static str)],
    ),
    /// In the body as `anthropic_beta`, those the upstream knows (Bedrock).
    BodyAllowed(
        &'static [&'static str],
        &'static [(&'static str, &'static str)],
    ),
    /// Nowhere: the API has no betas (reported dropped).
    None,
}

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
            Kind::Bedrock => bedrock::NAME,
            Kind::Vertex => vertex::NAME,
            Kind::Gemini => gemini::NAME,
        }
    }

    /// The dialect its bodies are written in (for Vertex, its partner models'; see
    /// [`Kind::dialect_for`]).
    pub fn dialect(self) -> Format {
        match self {
            Kind::OpenAi => Format::OpenAi,
            Kind::Anthropic | Kind::Bedrock | Kind::Vertex => Format::Anthropic,
            Kind::Gemini => Format::Gemini,
        }
    }

    /// The dialect a request for `model` is written in: Vertex serves Google's own models
    /// (Gemini) and partners' (Claude), each in its own API.
    pub fn dialect_for(self, model: &str) -> Format {
        match self {
            Kind::Vertex if gemini::is_gemini_model(model) => Format::Gemini,
            k => k.dialect(),
        }
    }

    /// The path (under the provider's base path) of `op` for a body in `speaks` (its own
    /// dialect, or Responses where it serves them natively). None: the kind has no such
    /// operation, and the gateway answers it itself (count_tokens is then estimated).
    pub fn path(self, speaks: Format, op: Op, at: &PathArgs<'_>) -> Option<Cow<'static, str>> {
        match self {
            Kind::OpenAi => openai::path(speaks, op).map(Cow::Borrowed),
            Kind::Anthropic => anthropic::path(op).map(Cow::Borrowed),
            Kind::Bedrock => Some(Cow::Owned(bedrock::path(at.model, op, at.stream))),
            Kind::Vertex if speaks == Format::Gemini => Some(Cow::Owned(gemini::vertex_path(
                at.project,
                at.location,
                at.model,
                op,
                at.stream,
            ))),
            Kind::Vertex => Some(Cow::Owned(vertex::path(
                at.project,
                at.location,
                at.model,
                op,
                at.stream,
            ))),
            Kind::Gemini => Some(Cow::Owned(gemini::path(at.model, op, at.stream))),
        }
    }

    /// Is the model named in the path, so the body does not carry it?
    pub fn model_in_path(self) -> bool {
        matches!(self, Kind::Bedrock | Kind::Vertex | Kind::Gemini)
    }

    /// Does a provider of this kind need a cloud credential (SigV4 keys or an OAuth2 token,
    /// fetched and refreshed by `crate::credentials`), rather than a static key or none?
    pub fn cloud(self) -> Option<Cloud> {
        match self {
            Kind::Bedrock => Some(Cloud::Aws),
            Kind::Vertex => Some(Cloud::Google),
            Kind::OpenAi | Kind::Anthropic | Kind::Gemini => None,
        }
    }

    /// The default base URL of a cloud kind in `region`.
    pub fn default_base_url(self, region: &str) -> Option<String> {
        match self {
            Kind::Bedrock => Some(bedrock::default_base_url(region)),
            Kind::Vertex => Some(vertex::default_base_url(region)),
            Kind::OpenAi | Kind::Anthropic | Kind::Gemini => None,
        }
    }

    /// The country a cloud kind's region is in.
    pub fn region_country(self, region: &str) -> Option<&'static str> {
        match self {
            Kind::Bedrock => regions::aws_country(region),
            Kind::Vertex => regions::google_country(region),
            Kind::OpenAi | Kind::Anthropic | Kind::Gemini => None,
        }
    }

    /// Can a request for `model` leave the provider's region (a cross-region profile)?
    pub fn reach(self, model: &str) -> bedrock::Reach {
        match self {
            Kind::Bedrock => bedrock::reach(model),
            Kind::OpenAi | Kind::Anthropic | Kind::Vertex | Kind::Gemini => bedrock::Reach::Region,
        }
    }

    /// Where the client's `anthropic-beta` values go.
    pub fn betas(self) -> Betas {
        match self {
            Kind::Anthropic => Betas::Header,
            Kind::Vertex => Betas::HeaderAllowed(vertex::BETAS, vertex::BETA_RENAMES),
            Kind::Bedrock => Betas::BodyAllowed(bedrock::BETAS, bedrock::BETA_RENAMES),
            Kind::OpenAi | Kind::Gemini => Betas::None,
        }
    }

    /// A beta the body needs at this kind whatever the client sent (a tool the kind serves
    /// only behind one).
    pub fn implied_beta(self, body: &[u8]) -> Option<&'static str> {
        match self {
            Kind::Vertex => vertex::implied_betas(body),
            Kind::OpenAi | Kind::Anthropic | Kind::Bedrock | Kind::Gemini => None,
        }
    }

    /// How the body of `op` is reshaped for a cloud kind (None: sent as it is), with the betas
    /// that go in the body.
    pub fn shape<'a>(self, op: Op, betas: &'a [String]) -> Option<claude_body::Shape<'a>> {
        match self {
            Kind::Bedrock => Some(claude_body::Shape {
                version: bedrock::ANTHROPIC_VERSION,
                keep_model: false,
                keep_stream: false,
                members: Some(bedrock::BODY_MEMBERS),
                betas: Some(betas),
                context_edits: Some(bedrock::CONTEXT_EDITS),
            }),
            Kind::Vertex => Some(claude_body::Shape {
                version: vertex::ANTHROPIC_VERSION,
                keep_model: op == Op::CountTokens,
                keep_stream: true,
                members: None,
                betas: None,
                context_edits: None,
            }),
            Kind::OpenAi | Kind::Anthropic | Kind::Gemini => None,
        }
    }

    /// A provider error body in the kind's own cloud shape, as an Anthropic error body (None:
    /// already the dialect's, or unreadable). `aws_type`: the `x-amzn-ErrorType` header.
    pub fn anthropic_error(self, aws_type: Option<&str>, raw: &[u8]) -> Option<Vec<u8>> {
        match self {
            Kind::Bedrock => claude_body::from_aws_error(aws_type, raw),
            Kind::Vertex => claude_body::from_google_error(raw),
            Kind::OpenAi | Kind::Anthropic | Kind::Gemini => None,
        }
    }

    /// The header that carries a credential `secret`, and its value.
    pub fn credential(self, secret: &str) -> (http::HeaderName, String) {
        match self {
            // A Bedrock API key and a Google access token are bearer tokens.
            Kind::OpenAi | Kind::Bedrock | Kind::Vertex => openai::credential(secret),
            Kind::Anthropic => anthropic::credential(secret),
            Kind::Gemini => gemini::credential(secret),
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

    /// Does this answer say the cloud refused the gateway's credential (so a fresh one may
    /// serve), rather than the request? Vertex: 401; Bedrock: AWS's auth error types
    /// (`aws_type`: the `x-amzn-ErrorType` header).
    pub fn credential_refused(self, status: u16, aws_type: Option<&str>) -> bool {
        match self {
            Kind::Vertex => status == 401,
            Kind::Bedrock => {
                matches!(status, 400 | 401 | 403)
                    && aws_type.is_some_and(bedrock::is_credential_error)
            }
            Kind::OpenAi | Kind::Anthropic | Kind::Gemini => false,
        }
    }

    /// A token count answer as Anthropic's `{"input_tokens":N}` (None: it says no count).
    pub fn token_count(self, raw: &[u8]) -> Option<Vec<u8>> {
        match self {
            Kind::Bedrock => claude_body::bedrock_token_count(raw),
            Kind::Gemini => gemini::token_count(raw),
            Kind::OpenAi | Kind::Anthropic | Kind::Vertex => {
                let v: serde_json::Value = serde_json::from_slice(raw).ok()?;
                v.get("input_tokens")?.as_u64()?;
                Some(raw.to_vec())
            }
        }
    }

    /// How its streamed answers are framed.
    pub fn framing(self) -> Framing {
        match self {
            Kind::OpenAi | Kind::Anthropic | Kind::Vertex | Kind::Gemini => Framing::Sse,
            Kind::Bedrock => Framing::AwsEventStream,
        }
    }
}

/// The cloud whose credentials a kind takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cloud {
    /// AWS: SigV4 keys (or a Bedrock API key).
    Aws,
    /// Google: an OAuth2 access token.
    Google,
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
        assert_eq!(Kind::parse("bedrock_runtime"), None);
        assert_eq!(
            expected(),
            "\"openai\", \"anthropic\", \"bedrock\", \"vertex\" or \"gemini\""
        );
    }

    #[test]
    fn each_operation_has_its_path_or_is_answered_here() {
        use Format::{Anthropic, OpenAi, Responses};
        let at = PathArgs {
            model: "us.anthropic.claude-x-v1:0",
            stream: true,
            project: "p",
            location: "global",
        };
        let path = |k: Kind, f, op| k.path(f, op, &at).map(|p| p.into_owned());
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(
            path(Kind::OpenAi, OpenAi, Op::Chat),
            some("/chat/completions")
        );
        assert_eq!(path(Kind::OpenAi, Responses, Op::Chat), some("/responses"));
        assert_eq!(
            path(Kind::OpenAi, Responses, Op::Compact),
            some("/responses/compact")
        );
        assert_eq!(path(Kind::OpenAi, OpenAi, Op::CountTokens), None);
        assert_eq!(
            path(Kind::Anthropic, Anthropic, Op::Chat),
            some("/v1/messages")
        );
        assert_eq!(
            path(Kind::Anthropic, Anthropic, Op::CountTokens),
            some("/v1/messages/count_tokens")
        );
        assert_eq!(
            path(Kind::Bedrock, Anthropic, Op::Chat),
            some("/model/us.anthropic.claude-x-v1%3A0/invoke-with-response-stream")
        );
        assert_eq!(
            path(Kind::Vertex, Anthropic, Op::Chat),
            some("/v1/projects/p/locations/global/publishers/anthropic/models/us.anthropic.claude-x-v1%3A0:streamRawPredict")
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
