//! Gateway-key authentication: extract the client's key (Bearer or x-api-key), hash it, and
//! compare against every configured key in constant time.

/// A gateway key.
#[derive(Clone, Debug)]
pub struct GatewayKey {
    /// Name for logs and metrics.
    pub name: String,
    /// SHA-256 of the key.
    pub sha256: [u8; 32],
    /// Allow-list patterns (`x` exact, `x*` prefix); None = all.
    pub routes: Option<Vec<String>>,
    /// May call the admin endpoints.
    pub admin: bool,
    /// Rate and concurrency limits (enforced by `crate::limits`).
    pub limits: KeyLimits,
    /// Spending limit over a period (enforced by `crate::limits`).
    pub budget: Option<crate::budget::Budget>,
    /// Residency tiers it may use (indexes into `Config::tiers`); None = any, and requests
    /// without a tier too. With a list, every request runs inside one of them.
    pub tiers: Option<Vec<usize>>,
    /// The tier its requests run in when they name none (index into `Config::tiers`).
    pub default_tier: Option<usize>,
    /// PII substitution for every request of this key.
    pub pii: bool,
    /// Its Responses answers may be stored (`store_responses`, default true).
    pub store_responses: bool,
    /// A lossy translation is refused (`strict_translation`, default false).
    pub strict_translation: bool,
}

/// A key's limits as configured; None: not limited on that count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyLimits {
    /// Requests per minute.
    pub rpm: Option<u64>,
    /// Tokens (input + output, from usage) per minute.
    pub tpm: Option<u64>,
    /// Input (prompt) tokens per minute, from usage.
    pub input_tpm: Option<u64>,
    /// Output (generated) tokens per minute, from usage.
    pub output_tpm: Option<u64>,
    /// Streaming requests open at once.
    pub max_streams: Option<u64>,
}

impl KeyLimits {
    /// No limit set at all.
    pub fn is_unlimited(&self) -> bool {
        self.rpm.is_none()
            && self.tpm.is_none()
            && self.input_tpm.is_none()
            && self.output_tpm.is_none()
            && self.max_streams.is_none()
    }
}

impl GatewayKey {
    /// May this key use `model` (as the client sent it)?
    pub fn allows(&self, model: &str) -> bool {
        let model = model.strip_prefix('@').unwrap_or(model);
        match &self.routes {
            None => true,
            Some(patterns) => patterns.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => model.starts_with(prefix),
                None => p == model,
            }),
        }
    }
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Compare two digests without an early exit, so timing says nothing about where they differ.
fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b.iter()) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// The credential a client presented: `Authorization: Bearer KEY` or `x-api-key: KEY`.
pub fn presented_key<'a>(
    authorization: Option<&'a [u8]>,
    x_api_key: Option<&'a [u8]>,
) -> Option<&'a [u8]> {
    if let Some(v) = x_api_key {
        let v = v.trim_ascii();
        if !v.is_empty() {
            return Some(v);
        }
    }
    let v = authorization?.trim_ascii();
    let scheme = v.get(..7)?;
    if scheme.eq_ignore_ascii_case(b"bearer ") {
        let k = v.get(7..)?.trim_ascii();
        (!k.is_empty()).then_some(k)
    } else {
        None
    }
}

/// Find the key matching `presented`. Every configured key is compared (no short-circuit),
/// so the time taken does not depend on which key matched.
pub fn authenticate<'k>(keys: &'k [GatewayKey], presented: &[u8]) -> Option<&'k GatewayKey> {
    let digest = sha256(presented);
    let mut found = None;
    for k in keys {
        if ct_eq(&k.sha256, &digest) && found.is_none() {
            found = Some(k);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_both_styles() {
        assert_eq!(presented_key(Some(b"Bearer abc"), None), Some(&b"abc"[..]));
        assert_eq!(
            presented_key(Some(b"bearer   abc "), None),
            Some(&b"abc"[..])
        );
        assert_eq!(presented_key(None, Some(b"xyz")), Some(&b"xyz"[..]));
        assert_eq!(presented_key(Some(b"Basic abc"), None), None);
        assert_eq!(presented_key(Some(b"Bearer "), None), None);
        assert_eq!(presented_key(None, None), None);
    }

    #[test]
    fn matches_by_hash() {
        let keys = vec![
            GatewayKey {
                name: "a".into(),
                sha256: sha256(b"k1"),
                routes: None,
                admin: false,
                limits: KeyLimits::default(),
                budget: None,
                tiers: None,
                default_tier: None,
                pii: false,
                store_responses: true,
                strict_translation: false,
            },
            GatewayKey {
                name: "b".into(),
                sha256: sha256(b"k2"),
                routes: None,
                admin: false,
                limits: KeyLimits::default(),
                budget: None,
                tiers: None,
                default_tier: None,
                pii: false,
                store_responses: true,
                strict_translation: false,
            },
        ];
        assert_eq!(
            authenticate(&keys, b"k2").map(|k| k.name.as_str()),
            Some("b")
        );
        assert!(authenticate(&keys, b"k3").is_none());
        assert!(!ct_eq(&sha256(b"a"), &sha256(b"b")));
    }
}
