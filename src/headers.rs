//! Which client request headers reach a provider: a safe default set, per-provider
//! `forward_headers` / `drop_headers` patterns, and the headers never forwarded whatever the
//! config says (hop-by-hop, credentials, the gateway's own, framing). Pure: names in, yes/no out.

use crate::format::Format;

/// Most patterns in one provider's `forward_headers` or `drop_headers`.
pub const MAX_HEADER_PATTERNS: usize = 64;

/// Longest header pattern, in bytes.
pub const MAX_HEADER_PATTERN_BYTES: usize = 128;

/// A header-name pattern from the config: an exact name, or a prefix ending in `*`. Names
/// are compared ASCII case-insensitively (patterns are stored lower case).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderPattern {
    text: String,
    prefix: bool,
}

impl HeaderPattern {
    /// Parse a pattern: a header-name token, optionally ending in `*`. Patterns that could
    /// only ever name headers that are never forwarded are refused, so a config cannot
    /// believe it forwards a client's credentials.
    pub fn parse(pattern: &str) -> Result<HeaderPattern, String> {
        let p = Self::parse_drop(pattern)?;
        if !p.prefix && never_forwarded(&p.text) && !ADJUSTABLE.contains(&p.text.as_str()) {
            return Err(format!(
                "`{}` is never forwarded (hop-by-hop, a credential, framing or the gateway's own)",
                p.text
            ));
        }
        Ok(p)
    }

    /// Parse a `drop_headers` pattern: any header name, optionally ending in `*` (dropping
    /// is always safe, including the headers the request builder copies itself).
    pub fn parse_drop(pattern: &str) -> Result<HeaderPattern, String> {
        if pattern.len() > MAX_HEADER_PATTERN_BYTES {
            return Err(format!("longer than {MAX_HEADER_PATTERN_BYTES} bytes"));
        }
        let (stem, prefix) = match pattern.strip_suffix('*') {
            Some(stem) => (stem, true),
            None => (pattern, false),
        };
        if stem.is_empty() || !crate::http1::is_token(stem.as_bytes()) {
            return Err(format!(
                "{pattern:?} is not a header name (letters, digits, `-`, …), optionally ending in `*`"
            ));
        }
        let text = stem.to_ascii_lowercase();
        Ok(HeaderPattern { text, prefix })
    }

    /// Does `name` (any case) match?
    pub fn matches(&self, name: &str) -> bool {
        if self.prefix {
            name.get(..self.text.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(&self.text))
        } else {
            name.eq_ignore_ascii_case(&self.text)
        }
    }
}

/// Headers the request builder copies from the client itself (so `forward_headers` need not
/// name them, and may), which `drop_headers` can still remove.
pub const ADJUSTABLE: [&str; 4] = [
    "accept",
    "user-agent",
    "anthropic-version",
    "anthropic-beta",
];

/// Does a `drop_headers` pattern remove `name`?
pub fn dropped(name: &str, drop: &[HeaderPattern]) -> bool {
    drop.iter().any(|p| p.matches(name))
}

/// Headers no config can forward: hop-by-hop ones (RFC 9110 §7.6.1), framing and
/// content headers the gateway writes itself, the client's credentials (the provider gets
/// the gateway's own key), and the gateway's `x-ringway-*`.
pub fn never_forwarded(lower: &str) -> bool {
    matches!(
        lower,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
            | "content-type"
            | "content-encoding"
            | "expect"
            | "accept-encoding"
            | "authorization"
            | "proxy-authorization"
            | "x-api-key"
            | "api-key"
            | "cookie"
            | "user-agent"
            | "accept"
            | "anthropic-version"
            | "anthropic-beta"
    ) || lower.starts_with("x-ringway-")
        || lower.starts_with("proxy-")
}

/// Headers that mean something only to one provider kind: never sent to the other kind.
fn kind_of(lower: &str) -> Option<Format> {
    if lower.starts_with("openai-") {
        Some(Format::OpenAi)
    } else if lower.starts_with("anthropic-") || lower == "x-claude-code-session-id" {
        Some(Format::Anthropic)
    } else {
        None
    }
}

/// Forwarded to every provider unless dropped: idempotency, tracing, and the SDKs' own
/// client description (`x-stainless-*`). Not `openai-organization` / `openai-project`: they
/// choose which organization the gateway's key bills, so an operator opts in to them with
/// `forward_headers`.
fn in_default_set(lower: &str) -> bool {
    matches!(
        lower,
        "idempotency-key"
            | "traceparent"
            | "tracestate"
            | "baggage"
            | "x-request-id"
            | "openai-beta"
    ) || lower.starts_with("x-stainless-")
}

/// Should the client header `name` go to a provider of `kind` configured with `forward`
/// and `drop`? `accept`, `user-agent` and the Anthropic version headers are written by the
/// request builder itself and are not decided here.
pub fn forward(
    name: &str,
    kind: Format,
    forward: &[HeaderPattern],
    drop: &[HeaderPattern],
) -> bool {
    // Header names are short; a name that does not fit is not one we forward.
    let mut buf = [0u8; 64];
    let Some(slot) = buf.get_mut(..name.len()) else {
        return false;
    };
    slot.copy_from_slice(name.as_bytes());
    slot.make_ascii_lowercase();
    let Ok(lower) = std::str::from_utf8(slot) else {
        return false;
    };
    if never_forwarded(lower) {
        return false;
    }
    if kind_of(lower).is_some_and(|k| k != kind) {
        return false;
    }
    if drop.iter().any(|p| p.matches(lower)) {
        return false;
    }
    in_default_set(lower) || forward.iter().any(|p| p.matches(lower))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pats(list: &[&str]) -> Vec<HeaderPattern> {
        list.iter()
            .map(|p| HeaderPattern::parse(p).unwrap())
            .collect()
    }

    #[test]
    fn default_set_and_never_forwarded() {
        for name in [
            "Idempotency-Key",
            "traceparent",
            "tracestate",
            "x-stainless-lang",
            "X-Stainless-Retry-Count",
        ] {
            assert!(forward(name, Format::OpenAi, &[], &[]), "{name}");
            assert!(forward(name, Format::Anthropic, &[], &[]), "{name}");
        }
        // Even patterns that cover them forward none of these.
        let everything = pats(&["a*", "c*", "h*", "p*", "t*", "x-*", "u*", "e*"]);
        for name in [
            "authorization",
            "X-Api-Key",
            "cookie",
            "connection",
            "transfer-encoding",
            "host",
            "content-length",
            "content-type",
            "x-ringway-request-id",
            "proxy-authorization",
            "user-agent",
            "expect",
        ] {
            assert!(!forward(name, Format::OpenAi, &everything, &[]), "{name}");
            assert!(
                !forward(name, Format::Anthropic, &everything, &[]),
                "{name}"
            );
        }
        assert!(
            !forward("x-team-id", Format::OpenAi, &[], &[]),
            "not in the default set"
        );
    }

    #[test]
    fn provider_specific_headers_stay_with_their_kind() {
        // Billing headers only when the operator opts in.
        assert!(!forward("OpenAI-Organization", Format::OpenAi, &[], &[]));
        assert!(forward(
            "OpenAI-Organization",
            Format::OpenAi,
            &pats(&["openai-organization"]),
            &[]
        ));
        assert!(!forward(
            "openai-organization",
            Format::Anthropic,
            &pats(&["openai-*"]),
            &[]
        ));
        assert!(forward("openai-beta", Format::OpenAi, &[], &[]));
        assert!(!forward(
            "openai-project",
            Format::Anthropic,
            &pats(&["openai-*"]),
            &[]
        ));
        assert!(forward(
            "anthropic-dangerous-direct-browser-access",
            Format::Anthropic,
            &pats(&["anthropic-*"]),
            &[]
        ));
        assert!(!forward(
            "anthropic-dangerous-direct-browser-access",
            Format::OpenAi,
            &pats(&["anthropic-*"]),
            &[]
        ));
    }

    #[test]
    fn config_patterns_add_and_drop() {
        let fwd = pats(&["x-team-*", "X-Tenant"]);
        let drop = pats(&["x-stainless-*", "x-team-secret"]);
        assert!(forward("x-team-id", Format::OpenAi, &fwd, &drop));
        assert!(forward("x-tenant", Format::OpenAi, &fwd, &drop));
        assert!(!forward("x-team-secret", Format::OpenAi, &fwd, &drop));
        assert!(!forward("x-stainless-lang", Format::OpenAi, &fwd, &drop));
        assert!(!forward("x-tenant-2", Format::OpenAi, &fwd, &drop));
        assert!(!forward(
            &"x".repeat(100),
            Format::OpenAi,
            &pats(&["x*"]),
            &[]
        ));
    }

    #[test]
    fn patterns_are_checked() {
        for bad in [
            "",
            "*",
            "a b*",
            "authorization",
            "X-Api-Key",
            "x:y",
            &"a".repeat(200),
        ] {
            assert!(HeaderPattern::parse(bad).is_err(), "{bad:?}");
        }
        assert!(HeaderPattern::parse("x-team-*").is_ok());
        assert!(HeaderPattern::parse("authorization*").is_ok());
    }
}
