//! Residency tiers and where each target runs. A tier is a named set of jurisdictions; a
//! target's [`Place`] says where its provider runs (region, jurisdiction), who holds the data
//! there (custody label) and whose credential the gateway sends. A request under a tier keeps
//! only the targets whose jurisdiction is in the tier's set, before any ordering, retry or
//! fallback happens: nothing downstream of this filter can leave the tier.

/// Most `[[tier]]` entries: tiers are a handful of legal regimes, and a key's allow-list is
/// checked against them per request.
pub const MAX_TIERS: usize = 64;
/// Most jurisdictions one tier may list (there are fewer than 250 ISO 3166 countries).
pub const MAX_TIER_JURISDICTIONS: usize = 250;
/// Longest tier name, region, custody label or node label. They are echoed in response
/// headers and written to logs: short words only.
pub const MAX_LABEL_BYTES: usize = 64;

/// Is `s` a label (tier name, region, custody label, node): 1 to [`MAX_LABEL_BYTES`] of
/// `A-Z a-z 0-9 . _ -`? The set is the provider-name set: nothing that could split a header,
/// a log line or a custody path (` -> ` separates hops).
pub fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_LABEL_BYTES
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Is `s` an ISO 3166-1 alpha-2 code as written in config: two uppercase ASCII letters? The
/// list of assigned codes changes; its shape does not, and an unassigned code simply matches
/// no provider.
pub fn is_jurisdiction(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase())
}

/// A compiled `[[tier]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tier {
    /// What clients send in `privacy_tier` / `x-privacy-tier`.
    pub name: String,
    /// Jurisdictions a request under this tier may be served in.
    pub jurisdictions: Vec<String>,
}

impl Tier {
    /// May a request under this tier go to a target at `place`? A target with no jurisdiction
    /// configured is never inside a tier: where it runs is not known.
    pub fn admits(&self, place: &Place) -> bool {
        place
            .jurisdiction
            .as_deref()
            .is_some_and(|j| self.jurisdictions.iter().any(|t| t == j))
    }

    /// The jurisdictions as one word list for messages (`CA, US`).
    pub fn jurisdictions_text(&self) -> String {
        self.jurisdictions.join(", ")
    }
}

/// Whose credential a provider receives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CredentialSource {
    /// The gateway's own key for the provider (`api_key_env`); the client's key is never
    /// forwarded.
    #[default]
    Gateway,
    /// The provider takes no key (`api_key_env` unset: a self-hosted server, the mock).
    None,
}

impl CredentialSource {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialSource::Gateway => "gateway",
            CredentialSource::None => "none",
        }
    }
}

/// Where a target runs, as configured on its provider (or overridden on the target), with
/// the custody path computed once at load. Every text is a checked label, so it can be
/// written in a header as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Place {
    /// The provider's region (`ca-central-1`), when configured.
    pub region: Option<String>,
    /// ISO 3166-1 alpha-2 jurisdiction the provider processes data in (`CA`), when configured.
    pub jurisdiction: Option<String>,
    /// Who holds the data at the provider (`provider-managed`, `self-hosted`, …), when
    /// configured.
    pub custody: Option<String>,
    /// Whose credential the provider gets.
    pub credential: CredentialSource,
    /// The hops the request takes: `NODE[-JURISDICTION] -> PROVIDER[-JURISDICTION]`.
    pub path: String,
}

impl Place {
    /// A place for `provider`, reached through the gateway hop `node` (already with its
    /// jurisdiction, see [`hop`]).
    pub fn new(
        node: &str,
        provider: &str,
        region: Option<String>,
        jurisdiction: Option<String>,
        custody: Option<String>,
        credential: CredentialSource,
    ) -> Place {
        let path = format!("{node} -> {}", hop(provider, jurisdiction.as_deref()));
        Place {
            region,
            jurisdiction,
            custody,
            credential,
            path,
        }
    }
}

impl Place {
    /// The same place for a model that reaches elsewhere than the provider's region (a Bedrock
    /// cross-region profile): inside one country (`Some`), or no one jurisdiction at all.
    pub fn reaching(&self, provider: &str, jurisdiction: Option<&str>) -> Place {
        let node = self.path.split(" -> ").next().unwrap_or_default();
        Place {
            jurisdiction: jurisdiction.map(str::to_owned),
            path: format!("{node} -> {}", hop(provider, jurisdiction)),
            ..self.clone()
        }
    }
}

/// One hop of a custody path: the label, then `-JURISDICTION` when it is known.
pub fn hop(label: &str, jurisdiction: Option<&str>) -> String {
    match jurisdiction {
        Some(j) => format!("{label}-{j}"),
        None => label.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_jurisdictions() {
        assert!(is_label("canada_managed"));
        assert!(is_label("ca-central-1"));
        assert!(!is_label(""));
        assert!(!is_label("a b"));
        assert!(!is_label("a\r\nb"));
        assert!(!is_label(&"x".repeat(MAX_LABEL_BYTES + 1)));
        assert!(is_jurisdiction("CA"));
        for bad in ["ca", "C", "CAN", "C1", "É"] {
            assert!(!is_jurisdiction(bad), "{bad}");
        }
    }

    #[test]
    fn a_tier_admits_only_its_jurisdictions() {
        let tier = Tier {
            name: "canada".into(),
            jurisdictions: vec!["CA".into()],
        };
        let at = |j: Option<&str>| {
            Place::new(
                "ringway-CA",
                "p",
                None,
                j.map(str::to_owned),
                None,
                CredentialSource::Gateway,
            )
        };
        assert!(tier.admits(&at(Some("CA"))));
        assert!(!tier.admits(&at(Some("US"))));
        // Unknown location is never inside a tier.
        assert!(!tier.admits(&at(None)));
        assert_eq!(at(Some("CA")).path, "ringway-CA -> p-CA");
        assert_eq!(at(None).path, "ringway-CA -> p");
    }
}
