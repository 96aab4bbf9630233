//! Where a cloud provider lives: `region` (and `project` for Vertex) give its default base
//! URL, its path words and its jurisdiction; `preset` fills the base URL of a Bedrock endpoint
//! that speaks a kind ringway already has. The credential's source is `crate::credentials`'.

use toml::Spanned;

use super::compiler::{Compiler, ConfigError};
use super::raw::RawProvider;
use crate::provider::Kind;

/// Longest region (or Vertex location) and project id: they go into host names and paths.
pub const MAX_CLOUD_WORD_BYTES: usize = 63;

/// What the cloud keys of one `[[provider]]` come to.
pub(super) struct Site {
    /// The base URL: the config's, or the one the kind, preset and region make.
    pub base_url: Spanned<String>,
    /// The region (Vertex location) requests go to; empty for a provider without one.
    pub region: String,
    /// The Google Cloud project (vertex); empty otherwise.
    pub project: String,
    /// The country `region` is in (the jurisdiction unless the config says one).
    pub country: Option<&'static str>,
    /// The key goes as `Authorization: Bearer` whatever the kind (Bedrock's endpoints).
    pub bearer: bool,
    /// Whose model ids say how far a request reaches: Bedrock's for its presets too (they
    /// serve its cross-region profiles).
    pub reach: Kind,
}

/// A Bedrock endpoint speaking a kind ringway has: its base URL in `region`.
fn preset_url(kind: Kind, preset: &str, region: &str) -> Option<String> {
    match (kind, preset) {
        (Kind::Anthropic, "bedrock-mantle") => {
            Some(format!("https://bedrock-mantle.{region}.api.aws/anthropic"))
        }
        (Kind::OpenAi, "bedrock-runtime") => Some(format!(
            "https://bedrock-runtime.{region}.amazonaws.com/openai/v1"
        )),
        (Kind::OpenAi, "bedrock-mantle") => {
            Some(format!("https://bedrock-mantle.{region}.api.aws/v1"))
        }
        _ => None,
    }
}

/// Is `s` a region, location or project id as the clouds spell them (lower-case ASCII
/// letters, digits, `-`; a domain-scoped project also `.` and `:`)? It goes into a host name or
/// a path unescaped.
fn is_cloud_word(s: &str, project: bool) -> bool {
    !s.is_empty()
        && s.len() <= MAX_CLOUD_WORD_BYTES
        && s.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || b == b'-'
                || (project && matches!(b, b'.' | b':'))
        })
        && !s.starts_with('-')
}

impl Compiler<'_> {
    /// The cloud keys of provider `p` (at config path `path`, whole table at `whole`).
    pub(super) fn site(
        &self,
        p: &RawProvider,
        kind: Kind,
        path: &str,
        whole: std::ops::Range<usize>,
    ) -> Result<Site, ConfigError> {
        let region = p.region.as_ref();
        let word = |v: Option<&Spanned<String>>, key: &str, project: bool| match v {
            Some(v) if is_cloud_word(v.get_ref(), project) => Ok(v.get_ref().clone()),
            Some(v) => Err(self.err(
                v.span(),
                format!("{path}.{key}"),
                format!(
                    "{:?}: use 1 to {MAX_CLOUD_WORD_BYTES} of a-z 0-9 -{}",
                    v.get_ref(),
                    if project { " . :" } else { "" }
                ),
            )),
            None => Err(self.err(
                whole.clone(),
                format!("{path}.{key}"),
                format!("a {} provider needs `{key}`", kind.as_str()),
            )),
        };
        let only = |v: Option<&Spanned<String>>, key: &str, needs: &str| match v {
            Some(v) => Err(self.err(
                v.span(),
                format!("{path}.{key}"),
                format!("`{key}` applies to {needs} providers only"),
            )),
            None => Ok(()),
        };
        if kind != Kind::Vertex {
            only(p.project.as_ref(), "project", "vertex")?;
            only(
                p.google_credentials.as_ref(),
                "google_credentials",
                "vertex",
            )?;
            only(
                p.google_metadata_url.as_ref(),
                "google_metadata_url",
                "vertex",
            )?;
        }
        if kind != Kind::Bedrock {
            only(p.aws_profile.as_ref(), "aws_profile", "bedrock")?;
            only(
                p.aws_credentials_url.as_ref(),
                "aws_credentials_url",
                "bedrock",
            )?;
        }
        if let Some(preset) = &p.preset {
            let region = word(region, "region", false)?;
            let Some(url) = preset_url(kind, preset.get_ref(), &region) else {
                return Err(self.err(
                    preset.span(),
                    format!("{path}.preset"),
                    format!(
                        "unknown preset {:?} for a {} provider: expected \"bedrock-mantle\" (openai and anthropic kinds) or \"bedrock-runtime\" (openai kind)",
                        preset.get_ref(),
                        kind.as_str()
                    ),
                ));
            };
            if let Some(b) = &p.base_url {
                return Err(self.err(
                    b.span(),
                    format!("{path}.base_url"),
                    "a preset sets the base URL: give one or the other",
                ));
            }
            return Ok(Site {
                base_url: Spanned::new(preset.span(), url),
                country: crate::provider::regions::aws_country(&region),
                region,
                project: String::new(),
                bearer: true,
                reach: Kind::Bedrock,
            });
        }
        let Some(_) = kind.cloud() else {
            let default = (kind == Kind::Gemini).then(|| {
                Spanned::new(
                    whole.clone(),
                    crate::provider::gemini::DEFAULT_BASE_URL.to_owned(),
                )
            });
            let Some(base_url) = p.base_url.clone().or(default) else {
                return Err(self.err(
                    whole,
                    format!("{path}.base_url"),
                    format!("a {} provider needs `base_url`", kind.as_str()),
                ));
            };
            return Ok(Site {
                base_url,
                region: String::new(),
                project: String::new(),
                country: None,
                bearer: false,
                reach: kind,
            });
        };
        let region_text = word(region, "region", false)?;
        let project = if kind == Kind::Vertex {
            word(p.project.as_ref(), "project", true)?
        } else {
            String::new()
        };
        let base_url = match &p.base_url {
            Some(b) => b.clone(),
            None => Spanned::new(
                region.map_or(whole.clone(), Spanned::span),
                kind.default_base_url(&region_text).unwrap_or_default(),
            ),
        };
        Ok(Site {
            base_url,
            country: kind.region_country(&region_text),
            region: region_text,
            project,
            bearer: true,
            reach: kind,
        })
    }
}

impl Compiler<'_> {
    /// The credential of a cloud kind's provider, its source resolved now: none for other
    /// kinds; an error naming the key, variable or file when nothing usable is found.
    pub(super) fn cloud_credential(
        &self,
        p: &RawProvider,
        kind: Kind,
        name: &str,
        path: &str,
        whole: std::ops::Range<usize>,
    ) -> Result<Option<std::sync::Arc<crate::credentials::Credential>>, ConfigError> {
        use crate::credentials::{Credential, Spec};
        use crate::provider::Cloud;
        let text = |v: &Option<Spanned<String>>| v.as_ref().map(|v| v.get_ref().clone());
        let spec = match kind.cloud() {
            None => return Ok(None),
            Some(Cloud::Aws) => Spec::Aws {
                profile: text(&p.aws_profile),
                credentials_url: text(&p.aws_credentials_url),
                api_key_env: text(&p.api_key_env),
            },
            Some(Cloud::Google) => Spec::Google {
                credentials_file: text(&p.google_credentials).map(std::path::PathBuf::from),
                metadata_url: text(&p.google_metadata_url),
                api_key_env: text(&p.api_key_env),
            },
        };
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Credential::start(name, &spec, &env).map(Some).map_err(|e| {
            // Point at the key that chose the source, else at the provider.
            let span = [
                &p.api_key_env,
                &p.aws_credentials_url,
                &p.aws_profile,
                &p.google_credentials,
                &p.google_metadata_url,
            ]
            .into_iter()
            .find_map(|v| v.as_ref().map(Spanned::span))
            .unwrap_or(whole);
            self.err(span, format!("{path} credentials"), e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_words_stay_inside_hosts_and_paths() {
        assert!(is_cloud_word("ca-central-1", false));
        assert!(is_cloud_word("northamerica-northeast1", false));
        assert!(!is_cloud_word("evil.com/x", false));
        assert!(!is_cloud_word("a.b", false));
        assert!(is_cloud_word("example.com:proj-1", true));
        assert!(!is_cloud_word("-x", false));
        assert!(!is_cloud_word("A", false));
        assert!(!is_cloud_word(&"a".repeat(64), false));
        assert_eq!(
            preset_url(Kind::Anthropic, "bedrock-mantle", "us-east-1").as_deref(),
            Some("https://bedrock-mantle.us-east-1.api.aws/anthropic")
        );
        assert_eq!(preset_url(Kind::Bedrock, "bedrock-mantle", "x"), None);
    }

    const PRESET: &str = r#"
[[provider]]
name = "mantle"
kind = "anthropic"
preset = "bedrock-mantle"
region = "ca-central-1"

[[route]]
model = "ca"
targets = ["mantle/anthropic.claude-haiku-4-5"]

[[route]]
model = "anywhere"
targets = ["mantle/global.anthropic.claude-haiku-4-5"]
"#;

    #[test]
    fn a_preset_fills_the_url_and_its_region_places_it() {
        let c = crate::config::Config::from_toml(PRESET, "t.toml").unwrap();
        let p = &c.providers[0];
        assert_eq!(p.host, "bedrock-mantle.ca-central-1.api.aws");
        assert_eq!(p.base_path, "/anthropic");
        assert!(p.tls.is_some());
        assert_eq!(p.place.jurisdiction.as_deref(), Some("CA"));
        let place = |route: usize| {
            c.routing.routes()[route].targets[0]
                .place
                .jurisdiction
                .clone()
        };
        assert_eq!(place(0).as_deref(), Some("CA"));
        // A global profile behind a preset reaches anywhere, as behind the bedrock kind.
        assert_eq!(place(1), None);
    }

    #[test]
    fn cloud_keys_are_checked_where_they_are_written() {
        let cases = [
            (
                "region = \"ca-central-1\"",
                "",
                "provider[0].region",
                "needs `region`",
            ),
            (
                "region = \"ca-central-1\"",
                "region = \"evil.com/x\"",
                "provider[0].region",
                "a-z 0-9",
            ),
            (
                "preset = \"bedrock-mantle\"",
                "preset = \"bedrock-moon\"",
                "provider[0].preset",
                "unknown preset",
            ),
            (
                "preset = \"bedrock-mantle\"",
                "preset = \"bedrock-mantle\"\nbase_url = \"http://x\"",
                "provider[0].base_url",
                "one or the other",
            ),
            (
                "preset = \"bedrock-mantle\"",
                "preset = \"bedrock-mantle\"\nproject = \"p\"",
                "provider[0].project",
                "vertex providers only",
            ),
            (
                "kind = \"anthropic\"\npreset = \"bedrock-mantle\"",
                "kind = \"vertex\"",
                "provider[0].project",
                "needs `project`",
            ),
        ];
        for (from, to, path, reason) in cases {
            assert!(PRESET.contains(from), "{from}");
            let e = crate::config::Config::from_toml(&PRESET.replace(from, to), "t.toml")
                .err()
                .unwrap_or_else(|| panic!("accepted {to:?}"));
            assert_eq!(e.path, path, "{to:?}: {e}");
            assert!(e.message.contains(reason), "{to:?}: {e}");
        }
    }
}
