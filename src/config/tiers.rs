//! `[[tier]]` (residency tiers), and the place labels every section checks the same way
//! (`region`, `jurisdiction`, `custody`, `node`).

use super::compiler::{Compiler, ConfigError};
use super::raw;
use toml::Spanned;

impl Compiler<'_> {
    /// `[[tier]]`: names unique labels, each with 1 or more distinct jurisdictions.
    pub(super) fn tiers(
        &self,
        raw: &[Spanned<raw::RawTier>],
    ) -> Result<Vec<crate::routing::Tier>, ConfigError> {
        use crate::routing::tier::{MAX_TIERS, MAX_TIER_JURISDICTIONS};
        if raw.len() > MAX_TIERS {
            let span = raw.get(MAX_TIERS).map_or(0..0, Spanned::span);
            return Err(self.err(span, "tier", format!("at most {MAX_TIERS} tiers")));
        }
        let mut tiers: Vec<crate::routing::Tier> = Vec::with_capacity(raw.len());
        for (i, st) in raw.iter().enumerate() {
            let t = st.get_ref();
            let path = format!("tier[{i}]");
            let name = self
                .label(Some(&t.name), &format!("{path}.name"))?
                .unwrap_or_default();
            if tiers.iter().any(|e| e.name == name) {
                return Err(self.err(
                    t.name.span(),
                    format!("{path}.name"),
                    format!("duplicate tier {name:?}"),
                ));
            }
            let list = t.jurisdictions.get_ref();
            if list.is_empty() || list.len() > MAX_TIER_JURISDICTIONS {
                return Err(self.err(
                    t.jurisdictions.span(),
                    format!("{path}.jurisdictions"),
                    format!("a tier lists 1 to {MAX_TIER_JURISDICTIONS} jurisdictions"),
                ));
            }
            let mut jurisdictions: Vec<String> = Vec::with_capacity(list.len());
            for (j, code) in list.iter().enumerate() {
                let jpath = format!("{path}.jurisdictions[{j}]");
                let code = self.jurisdiction(Some(code), &jpath)?.unwrap_or_default();
                if !jurisdictions.contains(&code) {
                    jurisdictions.push(code);
                }
            }
            tiers.push(crate::routing::Tier {
                name,
                jurisdictions,
            });
        }
        Ok(tiers)
    }

    /// A tier name at `path` that must be one of `tiers`: its index.
    pub(super) fn tier_ref(
        &self,
        v: &Spanned<String>,
        tiers: &[crate::routing::Tier],
        path: &str,
    ) -> Result<usize, ConfigError> {
        tiers
            .iter()
            .position(|t| t.name == *v.get_ref())
            .ok_or_else(|| {
                self.err(
                    v.span(),
                    path,
                    format!("unknown tier {:?}: no [[tier]] has that name", v.get_ref()),
                )
            })
    }

    /// An optional label (`region`, `custody`, `node`) at `path`.
    pub(super) fn label(
        &self,
        v: Option<&Spanned<String>>,
        path: &str,
    ) -> Result<Option<String>, ConfigError> {
        use crate::routing::tier::{is_label, MAX_LABEL_BYTES};
        self.checked(
            v,
            path,
            is_label,
            &format!("use 1 to {MAX_LABEL_BYTES} of A-Z a-z 0-9 . _ -"),
        )
    }

    /// An optional jurisdiction at `path`: an ISO 3166-1 alpha-2 code, uppercase.
    pub(super) fn jurisdiction(
        &self,
        v: Option<&Spanned<String>>,
        path: &str,
    ) -> Result<Option<String>, ConfigError> {
        self.checked(
            v,
            path,
            crate::routing::tier::is_jurisdiction,
            "a jurisdiction is an ISO 3166-1 alpha-2 code in upper case, such as \"CA\"",
        )
    }

    /// An optional string at `path` that `valid` accepts; otherwise an error quoting it, then
    /// `rule`.
    fn checked(
        &self,
        v: Option<&Spanned<String>>,
        path: &str,
        valid: fn(&str) -> bool,
        rule: &str,
    ) -> Result<Option<String>, ConfigError> {
        match v {
            None => Ok(None),
            Some(v) if valid(v.get_ref()) => Ok(Some(v.get_ref().clone())),
            Some(v) => Err(self.err(v.span(), path, format!("{:?}: {rule}", v.get_ref()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::testing::GOOD;
    use crate::config::{Config, Resolved};

    const TIERED: &str = r#"
[server]
listen = "127.0.0.1:0"
jurisdiction = "CA"
header_prefix = "x-ni-"
default_tier = "any"

[[tier]]
name = "canada"
jurisdictions = ["CA"]

[[tier]]
name = "any"
jurisdictions = ["CA", "US", "CA"]

[[provider]]
name = "ca"
kind = "anthropic"
base_url = "http://127.0.0.1:9/"
region = "ca-central-1"
jurisdiction = "CA"
custody = "provider-managed"

[[provider]]
name = "us"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
jurisdiction = "US"

[[route]]
model = "sonnet"
aliases = ["claude-sonnet-4-5-20250929"]
targets = ["ca/claude", { target = "us/gpt", jurisdiction = "CA", region = "ca-east" }]

[[key]]
name = "team"
sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
tiers = ["canada"]
default_tier = "canada"
"#;

    #[test]
    fn tiers_places_and_prefix_compile() {
        let c = Config::from_toml(TIERED, "t.toml").unwrap();
        assert_eq!(c.tiers.len(), 2);
        assert_eq!(c.tiers[1].jurisdictions, ["CA", "US"]);
        assert_eq!(c.server.headers.custody_path, "x-ni-custody-path");
        assert_eq!(c.server.headers.request_id, "x-ni-request-id");
        assert_eq!(c.server.default_tier, Some(1));
        assert_eq!(c.keys[0].tiers, Some(vec![0]));
        assert_eq!(c.keys[0].default_tier, Some(0));
        let Some(Resolved::Route(r)) = c.resolve("claude-sonnet-4-5-20250929") else {
            panic!("alias");
        };
        let ca = &r.targets[0].place;
        assert_eq!(ca.path, "ringway-CA -> ca-CA");
        assert_eq!(ca.region.as_deref(), Some("ca-central-1"));
        assert_eq!(ca.custody.as_deref(), Some("provider-managed"));
        assert_eq!(ca.credential.as_str(), "none");
        // A target's override replaces one setting; the others stay the provider's.
        let us = &r.targets[1].place;
        assert_eq!(
            (
                us.jurisdiction.as_deref(),
                us.region.as_deref(),
                us.path.as_str()
            ),
            (Some("CA"), Some("ca-east"), "ringway-CA -> us-CA")
        );
        // Without tiers or a prefix, nothing changes.
        let plain = Config::from_toml(GOOD, "g.toml").unwrap();
        assert_eq!(plain.server.headers.request_id, "x-ringway-request-id");
        assert!(plain.tiers.is_empty() && plain.server.default_tier.is_none());
    }

    #[test]
    fn tier_errors_name_line_and_path() {
        let cases: &[(&str, &str, &str, &str)] = &[
            (
                "name = \"canada\"",
                "name = \"can ada\"",
                "tier[0].name",
                "use 1 to 64",
            ),
            (
                "jurisdictions = [\"CA\"]",
                "jurisdictions = [\"ca\"]",
                "tier[0].jurisdictions[0]",
                "ISO 3166-1 alpha-2",
            ),
            (
                "jurisdictions = [\"CA\"]",
                "jurisdictions = []",
                "tier[0].jurisdictions",
                "1 to 250",
            ),
            (
                "name = \"any\"",
                "name = \"canada\"",
                "tier[1].name",
                "duplicate tier",
            ),
            (
                "jurisdiction = \"CA\"\nheader_prefix",
                "jurisdiction = \"Canada\"\nheader_prefix",
                "server.jurisdiction",
                "ISO 3166-1",
            ),
            (
                "header_prefix = \"x-ni-\"",
                "header_prefix = \"X-Ni\"",
                "server.header_prefix",
                "must start with a lower-case",
            ),
            (
                "header_prefix = \"x-ni-\"",
                "header_prefix = \"content-\"",
                "server.header_prefix",
                "collides",
            ),
            (
                "default_tier = \"any\"",
                "default_tier = \"nope\"",
                "server.default_tier",
                "unknown tier \"nope\"",
            ),
            (
                "region = \"ca-central-1\"",
                "region = \"ca central\\r\\n\"",
                "provider[0].region",
                "use 1 to 64",
            ),
            (
                "custody = \"provider-managed\"",
                "custody = \"\"",
                "provider[0].custody",
                "use 1 to 64",
            ),
            (
                "jurisdiction = \"US\"",
                "jurisdiction = \"USA\"",
                "provider[1].jurisdiction",
                "ISO 3166-1",
            ),
            (
                "jurisdiction = \"CA\", region",
                "jurisdiction = \"xx\", region",
                "route[0].targets[1].jurisdiction",
                "ISO 3166-1",
            ),
            (
                "aliases = [\"claude-sonnet-4-5-20250929\"]",
                "aliases = [\"sonnet\"]",
                "route[0].aliases[0]",
                "already names a route",
            ),
            (
                "tiers = [\"canada\"]",
                "tiers = [\"mars\"]",
                "key[0].tiers[0]",
                "unknown tier \"mars\"",
            ),
            (
                "tiers = [\"canada\"]\ndefault_tier = \"canada\"",
                "tiers = [\"canada\"]\ndefault_tier = \"any\"",
                "key[0].default_tier",
                "not in this key's `tiers`",
            ),
        ];
        for (from, to, path, reason) in cases {
            let text = TIERED.replacen(from, to, 1);
            assert_ne!(text, TIERED, "{from}");
            let e = Config::from_toml(&text, "t.toml").unwrap_err();
            // The line of the first changed byte: where the bad value is.
            let diff = text
                .bytes()
                .zip(TIERED.bytes())
                .position(|(a, b)| a != b)
                .unwrap();
            let line = text[..diff].matches('\n').count() + 1;
            assert_eq!(e.path, *path, "{to}: {e}");
            assert!(e.message.contains(reason), "{to}: {e}");
            assert_eq!(e.line, Some(line), "{to}: {e}");
            assert!(e.to_string().starts_with("t.toml:"), "{e}");
        }
    }
}
