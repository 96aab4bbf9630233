//! The Vertex kind: Claude through Google Vertex AI's `rawPredict`. The Anthropic body with
//! `model` moved into the path (`…/publishers/anthropic/models/{m}:rawPredict`,
//! `:streamRawPredict`), `stream` kept, `anthropic_version` set to Vertex's, betas in the
//! `anthropic-beta` header; an OAuth2 bearer token; SSE streams as Anthropic's; errors in
//! Anthropic's shape from the model, Google's (`{"error":{"code","message","status"}}`) from
//! the front end. Pure: no config, no clock.

use crate::dialect::Op;

/// Its name in the config.
pub const NAME: &str = "vertex";

/// The `anthropic_version` Vertex's Anthropic models take in the body.
pub const ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// The host of a location's API: `global` and the `us`/`eu` multi-regions have their own.
pub fn default_base_url(location: &str) -> String {
    match location {
        "global" => "https://aiplatform.googleapis.com".to_owned(),
        "us" | "eu" => format!("https://aiplatform.{location}.rep.googleapis.com"),
        region => format!("https://{region}-aiplatform.googleapis.com"),
    }
}

/// Is `s` a project id or location as Google spells them (lower-case letters, digits and `-`;
/// project ids may be domain-scoped with `:` and `.`)? They go into every request's path.
pub fn is_path_word(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b':')
        })
}

/// The path of `op` on `model`. The model id is percent-encoded except for `@` (Vertex ids
/// read `claude-sonnet-4-5@20250929`, and Google's SDKs send the `@` as it is). count_tokens
/// names no model in the path: it goes in the body.
pub fn path(project: &str, location: &str, model: &str, op: Op, stream: bool) -> String {
    let mut p = format!("/v1/projects/{project}/locations/{location}/publishers/anthropic/models/");
    match op {
        Op::CountTokens => p.push_str("count-tokens:rawPredict"),
        Op::Chat | Op::Compact => {
            for b in model.bytes() {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@') {
                    p.push(char::from(b));
                } else {
                    p.push_str(&format!("%{b:02X}"));
                }
            }
            p.push_str(if stream {
                ":streamRawPredict"
            } else {
                ":rawPredict"
            });
        }
    }
    p
}

/// `anthropic-beta` values Vertex accepts for Claude; others are dropped (and reported). The
/// list includes what Claude Code's own Vertex mode sends (tests/fixtures/claude_code_clouds).
pub const BETAS: &[&str] = &[
    "claude-code-20250219",
    "compact-2026-01-12",
    "compact-2026-09-04",
    "computer-use-2025-01-24",
    "computer-use-2025-11-24",
    "context-1m-2025-08-07",
    "context-management-2025-06-27",
    "dangerous-tool-use-2026-09-03",
    "effort-2025-11-24",
    "interleaved-thinking-2025-05-14",
    "per-turn-control-2026-07-01",
    "thinking-binding-controls-2026-08-01",
    "thinking-display-updates-2026-08-18",
    "thinking-token-count-2026-05-13",
    "tool-search-tool-2025-10-19",
    "web-search-2025-03-05",
];

/// Betas a body needs on Vertex whether or not the client said so: Anthropic's API serves its
/// web search tool without a beta, Vertex only with `web-search-2025-03-05` (as Claude Code's
/// Vertex mode sends it).
pub fn implied_betas(body: &[u8]) -> Option<&'static str> {
    memchr::memmem::find(body, b"\"web_search_20250305\"").map(|_| "web-search-2025-03-05")
}

/// Betas Vertex knows under another name.
pub const BETA_RENAMES: &[(&str, &str)] = &[(
    "advanced-tool-use-2025-11-20",
    "tool-search-tool-2025-10-19",
)];

/// The Anthropic error type for a Google API error status (`RESOURCE_EXHAUSTED`, …).
pub fn error_type(google_status: &str) -> &'static str {
    match google_status {
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => "invalid_request_error",
        "UNAUTHENTICATED" => "authentication_error",
        "PERMISSION_DENIED" => "permission_error",
        "NOT_FOUND" => "not_found_error",
        "RESOURCE_EXHAUSTED" => "rate_limit_error",
        "UNAVAILABLE" => "overloaded_error",
        "DEADLINE_EXCEEDED" => "timeout_error",
        _ => "api_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_follow_the_location() {
        assert_eq!(
            default_base_url("global"),
            "https://aiplatform.googleapis.com"
        );
        assert_eq!(
            default_base_url("eu"),
            "https://aiplatform.eu.rep.googleapis.com"
        );
        assert_eq!(
            default_base_url("us-east5"),
            "https://us-east5-aiplatform.googleapis.com"
        );
    }

    #[test]
    fn paths_name_project_location_and_model() {
        assert_eq!(
            path("p-1", "us-east5", "claude-sonnet-4-5@20250929", Op::Chat, true),
            "/v1/projects/p-1/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict"
        );
        assert_eq!(
            path("p", "global", "claude-x", Op::Chat, false),
            "/v1/projects/p/locations/global/publishers/anthropic/models/claude-x:rawPredict"
        );
        assert_eq!(
            path("p", "eu", "claude-x", Op::CountTokens, false),
            "/v1/projects/p/locations/eu/publishers/anthropic/models/count-tokens:rawPredict"
        );
        assert_eq!(
            path("p", "l", "a/b:c?d", Op::Chat, false),
            "/v1/projects/p/locations/l/publishers/anthropic/models/a%2Fb%3Ac%3Fd:rawPredict"
        );
        assert_eq!(
            implied_betas(br#"{"tools":[{"type":"web_search_20250305","name":"web_search"}]}"#),
            Some("web-search-2025-03-05")
        );
        assert_eq!(implied_betas(br#"{"tools":[]}"#), None);
        assert!(is_path_word("my-project-123"));
        assert!(is_path_word("example.com:my-project"));
        assert!(!is_path_word("a/b"));
        assert!(!is_path_word("A"));
        assert!(!is_path_word(""));
    }
}
