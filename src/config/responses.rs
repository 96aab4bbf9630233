//! `[responses]`: the key that seals reasoning handed to Responses clients, and the
//! stored-responses store (`[responses.store]`, compiled by `crate::responses_store`).

use super::compiler::{hex32, Compiler, ConfigError};
use super::raw;

impl Compiler<'_> {
    /// The reasoning seal key: from `[responses] seal_key_env` (64 hex digits), else drawn now
    /// (also when the variable is unset, as a provider's missing key is: said at start).
    pub(super) fn seal_key(
        &self,
        env: Option<&toml::Spanned<String>>,
    ) -> Result<(crate::seal::SealKey, Option<String>), ConfigError> {
        use crate::seal::SealKey;
        let path = "responses.seal_key_env";
        let drawn = |missing: Option<String>| {
            SealKey::random()
                .map(|k| (k, missing))
                .ok_or_else(|| ConfigError {
                    file: self.file.to_owned(),
                    line: None,
                    path: path.into(),
                    message: "the system's random source failed; set a seal key".into(),
                })
        };
        let Some(var) = env else {
            return drawn(None);
        };
        let Ok(value) = std::env::var(var.get_ref()) else {
            return drawn(Some(var.get_ref().clone()));
        };
        let key = hex32(value.trim())
            .and_then(|b| SealKey::from_bytes(&b))
            .ok_or_else(|| {
                self.err(
                    var.span(),
                    path,
                    format!(
                        "environment variable {} must hold 64 hex digits (a 256-bit key)",
                        var.get_ref()
                    ),
                )
            })?;
        Ok((key, None))
    }

    /// `[responses.store]`; its settings and defaults live with the store. With `shared` (`[cluster]
    /// postgres`) the store is there, and every node must seal with the same key: `key_env` is
    /// required (the error points at the `postgres` line when the section does not name one).
    pub(super) fn responses_store(
        &self,
        raw: &raw::RawResponses,
        shared: Option<&crate::cluster::StoreUrl>,
    ) -> Result<Option<crate::responses_store::Settings>, ConfigError> {
        let settings = crate::responses_store::settings::compile(
            &raw.store,
            "responses.store",
            shared.is_some(),
        )
        .map_err(|e| self.err(e.span, e.path, e.message))?;
        match (shared, &settings) {
            (Some(url), Some(s)) if s.key.is_none() => Err(ConfigError {
                file: self.file.to_owned(),
                line: url.line,
                path: "responses.store.key_env".into(),
                message: "is required with [cluster] postgres: every node must seal stored \
                          responses with the same key (or set [responses.store] enabled = false)"
                    .into(),
            }),
            _ => Ok(settings),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::compiler::line_of;
    use crate::config::testing::GOOD;
    use crate::config::Config;
    use crate::format::Format;

    #[test]
    fn responses_settings() {
        // Native Responses: the default for api.openai.com only, settable on openai kind only.
        let c = Config::from_toml(GOOD, "t.toml").unwrap();
        assert!(c.providers.iter().all(|p| !p.native_responses));
        assert_eq!(
            c.providers[1].speaks(Format::Responses, "m"),
            Format::OpenAi
        );
        assert_eq!(
            c.providers[0].speaks(Format::Responses, "m"),
            Format::Anthropic
        );
        let official = GOOD.replace("http://localhost:8080/v1", "https://api.openai.com/v1");
        let c = Config::from_toml(&official, "t.toml").unwrap();
        assert!(c.providers[1].native_responses);
        assert_eq!(
            c.providers[1].speaks(Format::Responses, "m"),
            Format::Responses
        );
        assert_eq!(c.providers[1].speaks(Format::OpenAi, "m"), Format::OpenAi);
        let chat = official.replace("/v1\"\n", "/v1\"\nresponses = \"chat\"\n");
        assert!(!Config::from_toml(&chat, "t.toml").unwrap().providers[1].native_responses);
        let native = GOOD.replace("8080/v1\"\n", "8080/v1\"\nresponses = \"native\"\n");
        assert!(Config::from_toml(&native, "t.toml").unwrap().providers[1].native_responses);
        for (text, path) in [
            (
                GOOD.replace(
                    "127.0.0.1:9/\"\n",
                    "127.0.0.1:9/\"\nresponses = \"native\"\n",
                ),
                "provider[0].responses",
            ),
            (
                GOOD.replace("8080/v1\"\n", "8080/v1\"\nresponses = \"both\"\n"),
                "provider[1].responses",
            ),
        ] {
            let e = Config::from_toml(&text, "t.toml").unwrap_err();
            assert_eq!(e.path, path, "{e}");
            assert_eq!(
                e.line,
                Some(
                    text.lines()
                        .position(|l| l.starts_with("responses"))
                        .unwrap()
                        + 1
                )
            );
        }
        // The seal key: 64 hex digits from the environment; an unset variable draws one and
        // says so; a malformed value is refused.
        let with_env = |var: &str| format!("{GOOD}\n[responses]\nseal_key_env = \"{var}\"\n");
        std::env::set_var("RW_CONFIG_TEST_SEAL", "ab".repeat(32));
        let c = Config::from_toml(&with_env("RW_CONFIG_TEST_SEAL"), "t.toml").unwrap();
        assert_eq!(
            Some(c.translate.seal.clone()),
            crate::seal::SealKey::from_bytes(&[0xab; 32])
        );
        assert_eq!(
            c.providers[0].translate.seal,
            Some(c.translate.seal.clone())
        );
        assert_eq!(c.providers[0].translate.provider, "a");
        assert_eq!(c.translate.seal_key_missing, None);
        let c = Config::from_toml(&with_env("RW_CONFIG_TEST_SEAL_UNSET"), "t.toml").unwrap();
        assert_eq!(
            c.translate.seal_key_missing.as_deref(),
            Some("RW_CONFIG_TEST_SEAL_UNSET")
        );
        std::env::set_var("RW_CONFIG_TEST_SEAL_BAD", "not-hex");
        let e = Config::from_toml(&with_env("RW_CONFIG_TEST_SEAL_BAD"), "t.toml").unwrap_err();
        assert_eq!(e.path, "responses.seal_key_env");
        assert!(e.message.contains("64 hex digits"), "{e}");
    }

    #[test]
    fn responses_store_settings() {
        let c = Config::from_toml(GOOD, "t.toml").unwrap();
        assert_eq!(
            c.responses_store,
            Some(crate::responses_store::Settings::default()),
            "on by default, in memory"
        );
        let with =
            |t: &str| Config::from_toml(&format!("{GOOD}\n[responses.store]\n{t}\n"), "t.toml");
        assert_eq!(with("enabled = false").unwrap().responses_store, None);
        let on = with("path = \"/tmp/r.db\"\nretention_hours = 3").unwrap();
        let on = on.responses_store.unwrap();
        assert_eq!(on.retention_hours, 3);
        let e = with("\n\nretention_hours = 0").unwrap_err();
        assert_eq!(e.path, "responses.store.retention_hours");
        let text = format!("{GOOD}\n[responses.store]\n\n\nretention_hours = 0\n");
        let at = text.find("retention_hours").unwrap();
        assert_eq!(e.line, Some(line_of(&text, at)), "{e}");
        assert!(with("colour = 1").is_err(), "unknown keys refused");
    }
}
