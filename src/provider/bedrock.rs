//! The Bedrock kind: Claude through Amazon Bedrock's InvokeModel API. The Anthropic body with
//! `model` moved into the path (`/model/{id}/invoke`, `/invoke-with-response-stream`,
//! `/count-tokens`), `stream` left out (the path says it), `anthropic_version` set to Bedrock's
//! and the betas as an `anthropic_beta` array in the body; SigV4 or a Bedrock API key; streams
//! in AWS event-stream frames; errors in AWS's REST-JSON shape. Pure: no config, no clock.

use crate::dialect::Op;

/// Its name in the config.
pub const NAME: &str = "bedrock";

/// The `anthropic_version` Bedrock's Anthropic models take in the body.
pub const ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";

/// The SigV4 signing name of Bedrock's runtime API (its host prefix is `bedrock-runtime`).
pub const SIGNING_NAME: &str = "bedrock";

/// Longest model id (Bedrock's `InvokeModelIdentifier` allows 2048 characters).
pub const MAX_MODEL_ID_BYTES: usize = 2048;

/// The host of a region's runtime API.
pub fn default_base_url(region: &str) -> String {
    format!("https://bedrock-runtime.{region}.amazonaws.com")
}

/// The path of `op` on `model`: the id percent-encoded whole (`:` and the `/` of an ARN
/// included, as AWS's SDKs send it), so the path has exactly the segments Bedrock expects and
/// the signed path is the sent one. count_tokens takes the foundation model's id: Bedrock
/// refuses a cross-region profile there.
pub fn path(model: &str, op: Op, stream: bool) -> String {
    let (model, action) = match op {
        Op::CountTokens => (foundation_id(model), "count-tokens"),
        Op::Chat | Op::Compact if stream => (model, "invoke-with-response-stream"),
        Op::Chat | Op::Compact => (model, "invoke"),
    };
    let mut p = String::with_capacity(16 + model.len() * 3 + action.len());
    p.push_str("/model/");
    percent_encode_into(&mut p, model);
    p.push('/');
    p.push_str(action);
    p
}

/// Everything but RFC 3986's unreserved characters percent-encoded.
fn percent_encode_into(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

/// Cross-region inference profile prefixes (`us.anthropic.…`), and the jurisdiction each keeps
/// the data in: a country when the geography is one, None when it spans several.
pub const PROFILE_GEOGRAPHIES: &[(&str, Option<&str>)] = &[
    ("global.", None),
    ("us-gov.", Some("US")),
    ("us.", Some("US")),
    ("ca.", Some("CA")),
    ("jp.", Some("JP")),
    ("au.", Some("AU")),
    ("eu.", None),
    ("apac.", None),
];

/// Publishers whose foundation model ids Bedrock serves (`anthropic.claude-…`): an id that
/// starts with one stays in the region.
pub const PUBLISHERS: &[&str] = &[
    "anthropic",
    "amazon",
    "meta",
    "mistral",
    "cohere",
    "ai21",
    "deepseek",
    "openai",
    "qwen",
    "writer",
    "stability",
    "twelvelabs",
    "luma",
    "google",
    "nvidia",
    "minimax",
    "moonshotai",
];

/// The model id without its cross-region profile prefix (`us.anthropic.x` → `anthropic.x`,
/// also inside an inference profile's ARN); another ARN or a bare id as it is.
pub fn foundation_id(model: &str) -> &str {
    let id = match model.strip_prefix("arn:") {
        Some(arn) if arn.contains(":inference-profile/") => arn.rsplit('/').next().unwrap_or(model),
        _ => model,
    };
    PROFILE_GEOGRAPHIES
        .iter()
        .find_map(|(prefix, _)| id.strip_prefix(prefix))
        .unwrap_or(if id == model { model } else { id })
}

/// Where a model id may send the data, beyond the provider's region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// The region only (a foundation model id).
    Region,
    /// A cross-region profile kept inside one country.
    Country(&'static str),
    /// Anywhere, or across several countries (`global.`, `eu.`, `apac.`), or unknowable from
    /// the id (an application inference profile's ARN).
    Unbounded,
}

/// How far `model` reaches.
pub fn reach(model: &str) -> Reach {
    // An inference profile's ARN ends in the profile id; an application profile's says nothing.
    let id = match model.strip_prefix("arn:") {
        Some(arn) if arn.contains(":inference-profile/") => {
            arn.rsplit('/').next().unwrap_or_default()
        }
        Some(arn) if arn.contains(":application-inference-profile/") => return Reach::Unbounded,
        Some(_) => return Reach::Region,
        None => model,
    };
    match PROFILE_GEOGRAPHIES
        .iter()
        .find(|(prefix, _)| id.starts_with(prefix))
    {
        Some((_, Some(country))) => Reach::Country(country),
        Some((_, None)) => Reach::Unbounded,
        // A foundation model stays in the region; a prefix nobody listed (a geography AWS
        // added since) may not, so it has no jurisdiction until the list knows it.
        None if PUBLISHERS.contains(&id.split('.').next().unwrap_or_default()) => Reach::Region,
        None => Reach::Unbounded,
    }
}

/// `anthropic-beta` values Bedrock's InvokeModel accepts for Claude in `anthropic_beta`. Others
/// are dropped (and reported): Bedrock answers 400 ("invalid beta flag") to a value it does
/// not know. The list is what Claude Code's own Bedrock mode puts in the body
/// (tests/fixtures/claude_code_clouds) and what AWS documents; values only Anthropic's API
/// has (`claude-code-20250219`, `oauth-…`, `files-api-…`) are left out.
pub const BETAS: &[&str] = &[
    "compact-2026-01-12",
    "computer-use-2025-01-24",
    "computer-use-2025-11-24",
    "context-1m-2025-08-07",
    "context-management-2025-06-27",
    "dangerous-tool-use-2026-09-03",
    "effort-2025-11-24",
    "fine-grained-tool-streaming-2025-05-14",
    "interleaved-thinking-2025-05-14",
    "mid-conversation-output-config-2026-07-01",
    "mid-conversation-tool-changes-2026-07-01",
    "thinking-binding-controls-2026-08-01",
    "thinking-display-updates-2026-08-18",
    "thinking-token-count-2026-05-13",
    "tool-examples-2025-10-29",
    "tool-search-tool-2025-10-19",
];

/// Betas Bedrock knows under another name: Anthropic's `advanced-tool-use` is its tool search.
pub const BETA_RENAMES: &[(&str, &str)] = &[(
    "advanced-tool-use-2025-11-20",
    "tool-search-tool-2025-10-19",
)];

/// Top-level members of an InvokeModel body for Claude. Anything else (`service_tier`,
/// `container`, `mcp_servers`, `speed`, …) is refused by Bedrock with a 400, so it is dropped
/// and reported.
pub const BODY_MEMBERS: &[&str] = &[
    "anthropic_version",
    "anthropic_beta",
    "max_tokens",
    "messages",
    "system",
    "stop_sequences",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
    "metadata",
    "output_config",
    "context_management",
];

/// `context_management` edits InvokeModel takes (by type prefix): compaction only. Others
/// (`clear_thinking_…`, which Claude Code sends Anthropic's API on every request) are a 400
/// there, and Claude Code's own Bedrock mode sends none.
pub const CONTEXT_EDITS: &[&str] = &["compact_"];

/// The HTTP status and Anthropic error type of an AWS REST-JSON error (`x-amzn-ErrorType`,
/// whose value may carry a `:`-suffixed namespace). Auth failures of the gateway's own
/// credentials are not here: they are the gateway's failure (see [`is_credential_error`]).
pub fn error_type(aws_type: &str) -> &'static str {
    let name = aws_type.split(':').next().unwrap_or_default();
    match name {
        "AccessDeniedException" => "permission_error",
        "ResourceNotFoundException" => "not_found_error",
        "ModelTimeoutException" => "timeout_error",
        _ => super::aws_event_stream::anthropic_error_type(name),
    }
}

/// Is this AWS error type a refusal of the credentials the gateway signed with (rather than of
/// the request)?
pub fn is_credential_error(aws_type: &str) -> bool {
    matches!(
        aws_type.split(':').next().unwrap_or_default(),
        "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "SignatureDoesNotMatch"
            | "ExpiredTokenException"
            | "IncompleteSignatureException"
            | "MissingAuthenticationTokenException"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_are_encoded_whole_into_the_path() {
        assert_eq!(
            path(
                "us.anthropic.claude-haiku-4-5-20251001-v1:0",
                Op::Chat,
                false
            ),
            "/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke"
        );
        assert_eq!(
            path("anthropic.claude-x-v1:0", Op::Chat, true),
            "/model/anthropic.claude-x-v1%3A0/invoke-with-response-stream"
        );
        assert_eq!(
            path(
                "arn:aws:bedrock:ca-central-1:123456789012:application-inference-profile/ab12",
                Op::Chat,
                false
            ),
            "/model/arn%3Aaws%3Abedrock%3Aca-central-1%3A123456789012%3Aapplication-inference-profile%2Fab12/invoke"
        );
        // Token counting takes the foundation model.
        assert_eq!(
            path("global.anthropic.claude-x-v1:0", Op::CountTokens, false),
            "/model/anthropic.claude-x-v1%3A0/count-tokens"
        );
        // Nothing a client can put in a model id leaves the path segment.
        let p = path("a/../b?c#d e\r\n%", Op::Chat, false);
        assert_eq!(p, "/model/a%2F..%2Fb%3Fc%23d%20e%0D%0A%25/invoke");
    }

    #[test]
    fn profiles_say_how_far_the_data_goes() {
        assert_eq!(reach("anthropic.claude-x-v1:0"), Reach::Region);
        assert_eq!(reach("ca.anthropic.claude-x-v1:0"), Reach::Country("CA"));
        assert_eq!(reach("us-gov.anthropic.claude-x"), Reach::Country("US"));
        assert_eq!(reach("global.anthropic.claude-x"), Reach::Unbounded);
        assert_eq!(reach("eu.anthropic.claude-x"), Reach::Unbounded);
        assert_eq!(
            reach("arn:aws:bedrock:us-east-1:1:inference-profile/us.anthropic.claude-x"),
            Reach::Country("US")
        );
        assert_eq!(
            reach("arn:aws:bedrock:us-east-1:1:application-inference-profile/x"),
            Reach::Unbounded
        );
        assert_eq!(
            reach("arn:aws:bedrock:us-east-1:1:foundation-model/anthropic.claude-x"),
            Reach::Region
        );
        assert_eq!(foundation_id("eu.anthropic.x"), "anthropic.x");
        assert_eq!(foundation_id("anthropic.x"), "anthropic.x");
        assert_eq!(
            foundation_id("arn:aws:bedrock:us-east-1:1:inference-profile/us.anthropic.x"),
            "anthropic.x"
        );
        assert_eq!(
            foundation_id("arn:aws:bedrock:us-east-1:1:application-inference-profile/x"),
            "arn:aws:bedrock:us-east-1:1:application-inference-profile/x"
        );
        // Unknown prefixes reach anywhere until listed; mantle ids stay in the region.
        assert_eq!(reach("in.anthropic.claude-x"), Reach::Unbounded);
        assert_eq!(reach("my-custom-model"), Reach::Unbounded);
        assert_eq!(reach("anthropic.claude-haiku-4-5"), Reach::Region);
    }

    #[test]
    fn aws_errors_read_as_anthropic_ones() {
        assert_eq!(error_type("ThrottlingException"), "rate_limit_error");
        assert_eq!(
            error_type("ValidationException:http://internal.amazon.com/coral/"),
            "invalid_request_error"
        );
        assert_eq!(error_type("AccessDeniedException"), "permission_error");
        assert_eq!(
            error_type("ServiceUnavailableException"),
            "overloaded_error"
        );
        assert_eq!(error_type("Whatever"), "api_error");
        assert!(is_credential_error("ExpiredTokenException:http://x/"));
        assert!(!is_credential_error("AccessDeniedException"));
    }
}
