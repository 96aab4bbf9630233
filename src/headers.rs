//! Which client request headers reach a provider: a safe default set, per-provider
//! `forward_headers` / `drop_headers` patterns, and the headers never forwarded whatever the
//! config says (hop-by-hop, credentials, the gateway's own, framing), and the headers a
//! `Connection` header nominates as hop-by-hop. Pure: names in, yes/no out.
//! Also the names of the gateway's own response headers under `[server] header_prefix`.

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
            | "x-goog-api-key"
            | "api-key"
            | "cookie"
            | "user-agent"
            | "accept"
            | "anthropic-version"
            | "anthropic-beta"
            | "x-privacy-tier"
            // The clouds' credential and billing headers: the gateway's to set (a client's
            // would ride unsigned beside a signature, or choose the billed project).
            | "x-goog-user-project"
            | "x-amzn-bedrock-accept"
    ) || lower.starts_with("x-ringway-")
        || lower.starts_with("proxy-")
        || lower.starts_with("x-amz-")
}

/// Most header names one message's `Connection` headers may nominate (besides `close` and
/// `keep-alive`, which name no other header). A client that nominates more gets a 400; a
/// provider that does has none of its headers passed on (failing closed).
pub const MAX_CONNECTION_OPTIONS: usize = 16;

/// The header names a message's `Connection` header(s) nominate: hop-by-hop for that
/// message (RFC 9110 §7.6.1), so never passed on, whatever `forward_headers` says. Bounded by
/// [`MAX_CONNECTION_OPTIONS`]; past it every name counts as nominated.
#[derive(Debug)]
pub struct Nominated<'a> {
    names: [&'a [u8]; MAX_CONNECTION_OPTIONS],
    len: usize,
    overflow: bool,
}

impl<'a> Nominated<'a> {
    /// Read the comma-separated options of every `Connection` value given.
    pub fn parse(values: impl IntoIterator<Item = &'a [u8]>) -> Nominated<'a> {
        let mut n = Nominated {
            names: [&[]; MAX_CONNECTION_OPTIONS],
            len: 0,
            overflow: false,
        };
        for value in values {
            for option in value.split(|b| *b == b',') {
                let option = option.trim_ascii();
                if option.is_empty()
                    || option.eq_ignore_ascii_case(b"close")
                    || option.eq_ignore_ascii_case(b"keep-alive")
                {
                    continue;
                }
                match n.names.get_mut(n.len) {
                    Some(slot) => {
                        *slot = option;
                        n.len += 1;
                    }
                    None => n.overflow = true,
                }
            }
        }
        n
    }

    /// More names than [`MAX_CONNECTION_OPTIONS`] were nominated.
    pub fn overflowed(&self) -> bool {
        self.overflow
    }

    /// Is `name` (any case) nominated? Always, once the bound was passed.
    pub fn contains(&self, name: &str) -> bool {
        self.overflow
            || self
                .names
                .get(..self.len)
                .unwrap_or_default()
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name.as_bytes()))
    }
}

/// The request header that names a residency tier (the body field is `privacy_tier`).
pub const PRIVACY_TIER_HEADER: &str = "x-privacy-tier";

/// The default prefix of the gateway's response headers.
pub const DEFAULT_HEADER_PREFIX: &str = "x-ringway-";

/// Longest `header_prefix`: room is left for the longest suffix (`credential-source`) within
/// a header name a client library keeps whole.
pub const MAX_HEADER_PREFIX_BYTES: usize = 32;

/// Is `prefix` usable as `[server] header_prefix`: 2 to [`MAX_HEADER_PREFIX_BYTES`] of
/// lower-case `a-z 0-9 -`, starting with a letter and ending in `-`? Lower case because the
/// writer sends names as given and clients compare them case-insensitively anyway; the dash
/// so that `x-ni-` + `tier` reads as a name; no other token characters so that a prefix can
/// never collide with a standard header (`content-`, say, is refused below).
pub fn is_header_prefix(prefix: &str) -> Result<(), &'static str> {
    let b = prefix.as_bytes();
    if b.len() < 2 || b.len() > MAX_HEADER_PREFIX_BYTES {
        return Err("must be 2 to 32 bytes");
    }
    if !b.first().is_some_and(u8::is_ascii_lowercase) || b.last() != Some(&b'-') {
        return Err("must start with a lower-case letter and end with `-`");
    }
    if !b
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    {
        return Err("may hold only a-z, 0-9 and `-`");
    }
    // A prefix some standard or provider header starts with would let the gateway's
    // headers be mistaken for (or mask) those.
    for taken in [
        "content-",
        "access-control-",
        "proxy-",
        "sec-",
        "anthropic-",
        "openai-",
        "x-ratelimit-",
        "retry-",
    ] {
        if prefix.starts_with(taken) || taken.starts_with(prefix) {
            return Err("collides with standard or provider headers");
        }
    }
    Ok(())
}

/// The gateway's response header names, built once from the prefix (default
/// `x-ringway-`, so existing clients keep reading the names they know).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayHeaders {
    /// The prefix itself.
    pub prefix: String,
    /// `request-id`: on every response.
    pub request_id: String,
    /// `provider`: the provider of the latest attempt (or the one that served).
    pub provider: String,
    /// `model`: the upstream model of that attempt.
    pub model: String,
    /// `attempts`: requests sent to providers.
    pub attempts: String,
    /// `dropped-params`: fields translation could not carry.
    pub dropped_params: String,
    /// `tier`: the residency tier the request ran under.
    pub tier: String,
    /// `region`: the provider's region.
    pub region: String,
    /// `jurisdiction`: where the provider processes data.
    pub jurisdiction: String,
    /// `custody`: who holds the data there.
    pub custody: String,
    /// `custody-path`: the hops, gateway to provider.
    pub custody_path: String,
    /// `credential-source`: whose credential the provider got.
    pub credential_source: String,
}

impl GatewayHeaders {
    /// The names under `prefix` (already checked with [`is_header_prefix`]).
    pub fn new(prefix: &str) -> GatewayHeaders {
        let name = |suffix: &str| format!("{prefix}{suffix}");
        GatewayHeaders {
            prefix: prefix.to_owned(),
            request_id: name("request-id"),
            provider: name("provider"),
            model: name("model"),
            attempts: name("attempts"),
            dropped_params: name("dropped-params"),
            tier: name("tier"),
            region: name("region"),
            jurisdiction: name("jurisdiction"),
            custody: name("custody"),
            custody_path: name("custody-path"),
            credential_source: name("credential-source"),
        }
    }
}

impl Default for GatewayHeaders {
    fn default() -> Self {
        GatewayHeaders::new(DEFAULT_HEADER_PREFIX)
    }
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
mod prefix_tests {
    use super::*;

    #[test]
    fn header_prefixes_are_checked() {
        for good in ["x-ringway-", "x-ni-", "gw-"] {
            assert_eq!(is_header_prefix(good), Ok(()), "{good}");
            let names = GatewayHeaders::new(good);
            assert!(crate::http1::is_token(names.credential_source.as_bytes()));
        }
        for bad in [
            "",
            "x",
            "x-ni",
            "X-Ni-",
            "x_ni-",
            "x ni-",
            "-x-",
            "x-ni-\r\n",
            "content-",
            "sec-",
            "x-ratelimit-",
            "a-very-long-prefix-that-goes-on-and-on-",
        ] {
            assert!(is_header_prefix(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
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
    fn connection_nominates_hop_by_hop_headers() {
        let n = Nominated::parse([&b"keep-alive, X-Foo"[..], b" ,x-bar ,, close"]);
        assert!(!n.overflowed());
        for name in ["x-foo", "X-FOO", "x-bar"] {
            assert!(n.contains(name), "{name}");
        }
        for name in ["x-fo", "x-foo2", "close", "keep-alive", "traceparent"] {
            assert!(!n.contains(name), "{name}");
        }
        assert!(!Nominated::parse([]).contains("x-foo"));
        // Past the bound every name is nominated: nothing optional is passed on.
        let many: String = (0..=MAX_CONNECTION_OPTIONS)
            .map(|i| format!("x-{i},"))
            .collect();
        let n = Nominated::parse([many.as_bytes()]);
        assert!(n.overflowed());
        assert!(n.contains("traceparent"));
        let full: String = (0..MAX_CONNECTION_OPTIONS)
            .map(|i| format!("x-{i},"))
            .collect();
        let n = Nominated::parse([full.as_bytes(), b"close"]);
        assert!(!n.overflowed() && n.contains("x-0") && !n.contains("traceparent"));
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
