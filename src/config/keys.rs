//! `[[key]]`: gateway keys, what each may reach (routes, tiers), and its rate limits.

use super::compiler::{hex32, Compiler, ConfigError};
use super::providers::{is_provider_name, MAX_PROVIDER_NAME_BYTES};
use super::raw;
use crate::auth::{GatewayKey, KeyLimits};
use toml::Spanned;

impl Compiler<'_> {
    /// `[[key]]` in file order; `tiers` are compiled, so keys can name them.
    pub(super) fn keys(
        &self,
        raw: &[Spanned<raw::RawKey>],
        tiers: &[crate::routing::Tier],
    ) -> Result<Vec<GatewayKey>, ConfigError> {
        let mut keys = Vec::with_capacity(raw.len());
        for (i, sk) in raw.iter().enumerate() {
            let k = sk.get_ref();
            let path = format!("key[{i}]");
            let sha256 = match (&k.sha256, &k.key_env) {
                (Some(h), None) => hex32(h.get_ref()).ok_or_else(|| {
                    self.err(h.span(), format!("{path}.sha256"), "expected 64 hex digits")
                })?,
                (None, Some(var)) => match std::env::var(var.get_ref()) {
                    Ok(v) if !v.is_empty() => crate::auth::sha256(v.as_bytes()),
                    _ => {
                        return Err(self.err(
                            var.span(),
                            format!("{path}.key_env"),
                            format!("environment variable {} is not set", var.get_ref()),
                        ))
                    }
                },
                _ => {
                    return Err(self.err(
                        sk.span(),
                        path,
                        "a key needs exactly one of `sha256` or `key_env`",
                    ));
                }
            };
            // Key names appear in logs, metrics labels and 403 messages: the provider-name
            // charset keeps them to one plain word.
            if !is_provider_name(k.name.get_ref()) {
                return Err(self.err(
                    k.name.span(),
                    format!("{path}.name"),
                    format!(
                        "{:?}: a key name is 1 to {MAX_PROVIDER_NAME_BYTES} of A-Z a-z 0-9 . _ -",
                        k.name.get_ref()
                    ),
                ));
            }
            if let Some(routes) = &k.routes {
                for (j, r) in routes.iter().enumerate() {
                    if crate::format::check_model_id(r.get_ref()).is_err() {
                        return Err(self.err(
                            r.span(),
                            format!("{path}.routes[{j}]"),
                            "a route pattern is a model name (optionally ending in `*`): no control characters, at most 256 bytes",
                        ));
                    }
                }
            }
            let limits = self.key_limits(k, &path)?;
            let budget = match &k.budget {
                Some(b) => Some(self.budget(b, &format!("{path}.budget"))?),
                None => None,
            };
            // One name is one budget: entries sharing it (a key being rotated) must agree.
            if let Some(earlier) = keys.iter().find(|e: &&GatewayKey| {
                e.name == *k.name.get_ref() && (e.limits != limits || e.budget != budget)
            }) {
                return Err(self.err(
                    k.name.span(),
                    format!("{path}.name"),
                    format!(
                        "key `{}` is listed earlier with other limits; entries sharing a name share one budget",
                        earlier.name
                    ),
                ));
            }
            let key_tiers = match &k.tiers {
                None => None,
                Some(list) => {
                    let mut ids = Vec::with_capacity(list.len());
                    for (j, t) in list.iter().enumerate() {
                        ids.push(self.tier_ref(t, tiers, &format!("{path}.tiers[{j}]"))?);
                    }
                    Some(ids)
                }
            };
            let default_tier = match &k.default_tier {
                None => None,
                Some(t) => {
                    let id = self.tier_ref(t, tiers, &format!("{path}.default_tier"))?;
                    if key_tiers.as_ref().is_some_and(|ids| !ids.contains(&id)) {
                        return Err(self.err(
                            t.span(),
                            format!("{path}.default_tier"),
                            format!("{:?} is not in this key's `tiers`", t.get_ref()),
                        ));
                    }
                    Some(id)
                }
            };
            keys.push(GatewayKey {
                tiers: key_tiers,
                default_tier,
                name: k.name.get_ref().clone(),
                sha256,
                routes: k
                    .routes
                    .as_ref()
                    .map(|rs| rs.iter().map(|r| r.get_ref().clone()).collect()),
                admin: k.admin.unwrap_or(false),
                limits,
                budget,
                pii: k.pii.unwrap_or(false),
                store_responses: k.store_responses.unwrap_or(true),
                strict_translation: k.strict_translation.unwrap_or(false),
            });
        }
        Ok(keys)
    }

    /// A key's rates and `max_streams`.
    fn key_limits(&self, k: &raw::RawKey, path: &str) -> Result<KeyLimits, ConfigError> {
        self.limits(
            [&k.rpm, &k.tpm, &k.input_tpm, &k.output_tpm, &k.max_streams],
            path,
        )
    }

    /// `rpm`, `tpm`, `input_tpm`, `output_tpm` and `max_streams` (of a key or a route):
    /// positive, and within the limiter's bounds.
    pub(super) fn limits(
        &self,
        [rpm, tpm, input_tpm, output_tpm, max_streams]: [&Option<Spanned<u64>>; 5],
        path: &str,
    ) -> Result<KeyLimits, ConfigError> {
        use crate::limits::{MAX_PER_MINUTE, MAX_STREAMS};
        let limit = |v: &Option<Spanned<u64>>, key: &str, max: u64| match v {
            None => Ok(None),
            Some(x) if *x.get_ref() == 0 => Err(self.err(
                x.span(),
                format!("{path}.{key}"),
                "must be greater than 0 (leave it out for no limit)",
            )),
            Some(x) if *x.get_ref() > max => Err(self.err(
                x.span(),
                format!("{path}.{key}"),
                format!("{}: at most {max}", x.get_ref()),
            )),
            Some(x) => Ok(Some(*x.get_ref())),
        };
        Ok(KeyLimits {
            rpm: limit(rpm, "rpm", MAX_PER_MINUTE)?,
            tpm: limit(tpm, "tpm", MAX_PER_MINUTE)?,
            input_tpm: limit(input_tpm, "input_tpm", MAX_PER_MINUTE)?,
            output_tpm: limit(output_tpm, "output_tpm", MAX_PER_MINUTE)?,
            max_streams: limit(max_streams, "max_streams", MAX_STREAMS)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::fails;
    use crate::config::Config;

    #[test]
    fn key_names_and_route_patterns_are_checked_at_load() {
        let hash = "f2d4b279b82ad92867af5878fe7482caebdd7b75499868d0362a6e63ff51f046";
        fails(
            &format!("[[key]]\nname = \"team\\nforged log line\"\nsha256 = \"{hash}\"\n"),
            2,
            "key[0].name",
            "\"team\\nforged log line\": a key name is 1 to 64 of A-Z a-z 0-9 . _ -",
        );
        fails(
            &format!("[[key]]\nname = \"team\"\nsha256 = \"{hash}\"\nroutes = [\"ok\", \"bad\\u0000*\"]\n"),
            4,
            "key[0].routes[1]",
            "a route pattern is a model name (optionally ending in `*`): no control characters, at most 256 bytes",
        );
        assert!(Config::from_toml(
            &format!("[[key]]\nname = \"team-a.1\"\nsha256 = \"{hash}\"\nroutes = [\"fast\", \"anthropic/*\"]\n"),
            "t.toml"
        )
        .is_ok());
    }

    #[test]
    fn key_limits_compile_and_bad_ones_are_named() {
        let hash = "f2d4b279b82ad92867af5878fe7482caebdd7b75499868d0362a6e63ff51f046";
        let key = |extra: &str| format!("[[key]]\nname = \"team\"\nsha256 = \"{hash}\"\n{extra}");
        let c =
            Config::from_toml(&key("rpm = 60\ntpm = 100000\nmax_streams = 4\n"), "t.toml").unwrap();
        assert_eq!(
            c.keys[0].limits,
            KeyLimits {
                rpm: Some(60),
                tpm: Some(100_000),
                max_streams: Some(4),
                ..KeyLimits::default()
            }
        );
        let c = Config::from_toml(&key(""), "t.toml").unwrap();
        assert!(c.keys[0].limits.is_unlimited());
        for k in ["rpm", "tpm", "max_streams"] {
            fails(
                &key(&format!("{k} = 0\n")),
                4,
                &format!("key[0].{k}"),
                "must be greater than 0 (leave it out for no limit)",
            );
            fails(
                &key(&format!("{k} = -1\n")),
                4,
                &format!("key[0].{k}"),
                "expected a whole number (0 or more), found integer `-1`",
            );
        }
        fails(
            &key("tpm = 1000000001\n"),
            4,
            "key[0].tpm",
            "1000000001: at most 1000000000",
        );
        fails(
            &key("max_streams = 1000001\n"),
            4,
            "key[0].max_streams",
            "1000001: at most 1000000",
        );
        // Entries sharing a name (a key being rotated) share one budget, so must agree.
        let two = |a: &str, b: &str| {
            format!(
                "{}\n[[key]]\nname = \"team\"\nkey_env = \"PATH\"\n{b}",
                key(a)
            )
        };
        assert!(Config::from_toml(&two("rpm = 5\n", "rpm = 5\n"), "t.toml").is_ok());
        fails(
            &two("rpm = 5\n", "rpm = 6\n"),
            7,
            "key[1].name",
            "key `team` is listed earlier with other limits; entries sharing a name share one budget",
        );
    }
}
