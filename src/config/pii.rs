//! `[pii]`: the detectors (built-in kinds, operator regexes, dictionary files), where
//! substitution is on, and the stand-in secret.

use super::compiler::{Compiler, ConfigError};
use super::raw;
use crate::auth::GatewayKey;
use crate::routing::Resolved;

/// `[pii]`, compiled: the detectors are built once and shared by every worker.
#[derive(Debug, Clone)]
pub struct PiiConfig {
    /// The detectors (built-in kinds, operator regexes, dictionary terms): compiled at load
    /// when a key, a route or `enabled` turns substitution on, else on a request's first ask.
    pub detector: std::sync::Arc<crate::pii::LazyDetector>,
    /// On for every request.
    pub all: bool,
    /// Route names whose requests are always substituted (each route's own name, whichever
    /// alias the config listed).
    pub routes: Vec<String>,
    /// `provider/model` of every target of those routes: addressing one directly is held
    /// to the same policy (else `provider/model` would be a way around it).
    pub targets: Vec<String>,
    /// The stand-in secret; each key's HMAC key is derived from it and the key's name.
    pub secret: Vec<u8>,
    /// The secret was drawn at start (no `secret_env`): a reload keeps it, so stand-ins stay
    /// the same across turns of a conversation.
    pub secret_drawn: bool,
}

impl PiiConfig {
    /// Is substitution on for this key and resolved model, before the request's own flag?
    /// A route is matched by its own name whatever name or alias the client sent.
    pub fn on_for(&self, key: Option<&GatewayKey>, to: Option<&Resolved<'_>>) -> bool {
        if self.all || key.is_some_and(|k| k.pii) {
            return true;
        }
        match to {
            Some(Resolved::Route(r) | Resolved::Within(r, _)) => self.routes.contains(&r.model),
            Some(Resolved::Direct(t, _)) => self.targets.contains(&t.key),
            None => false,
        }
    }

    /// The per-key secret: stand-ins are deterministic per key, and differ between keys.
    pub fn key_secret(&self, key: Option<&str>) -> Vec<u8> {
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.secret);
        ring::hmac::sign(&k, key.unwrap_or_default().as_bytes())
            .as_ref()
            .to_vec()
    }
}

/// Shortest stand-in secret accepted from the environment, in bytes.
pub const MIN_PII_SECRET_BYTES: usize = 16;

/// Largest dictionary file read, in bytes (the terms are compiled into every worker's view).
pub const MAX_DICTIONARY_BYTES: u64 = 16 * 1024 * 1024;

impl Compiler<'_> {
    /// `[pii]`: regexes compiled, dictionary files read (errors name the dictionary's file
    /// and line), the secret taken from the environment or drawn.
    pub(super) fn pii(
        &self,
        raw: &raw::RawPii,
        a_key_has_it: bool,
    ) -> Result<PiiConfig, ConfigError> {
        use crate::pii::{Kind, Term};
        let mut operator = Vec::new();
        for (i, r) in raw.regexes.iter().flatten().enumerate() {
            let re = crate::pii::operator_regex(r.get_ref())
                .map_err(|e| self.err(r.span(), format!("pii.regexes[{i}]"), e.0))?;
            operator.push(re);
        }
        let dir = std::path::Path::new(self.file)
            .parent()
            .unwrap_or(std::path::Path::new(""));
        let mut terms = Vec::new();
        let files = [
            (raw.dictionaries.as_deref(), Kind::Name, "pii.dictionaries"),
            (raw.places.as_deref(), Kind::Place, "pii.places"),
        ];
        for (list, kind, key) in files {
            for (i, f) in list.unwrap_or_default().iter().enumerate() {
                let path = dir.join(f.get_ref());
                let read = std::fs::metadata(&path).and_then(|m| {
                    if m.len() > MAX_DICTIONARY_BYTES {
                        Err(std::io::Error::other(format!(
                            "larger than {MAX_DICTIONARY_BYTES} bytes"
                        )))
                    } else {
                        std::fs::read_to_string(&path)
                    }
                });
                let text = read.map_err(|e| {
                    self.err(
                        f.span(),
                        format!("{key}[{i}]"),
                        format!("{}: {e}", path.display()),
                    )
                })?;
                for (n, line) in text.lines().enumerate() {
                    let term = line.split('#').next().unwrap_or_default().trim();
                    if term.is_empty() {
                        continue;
                    }
                    let t = Term {
                        text: term.to_owned(),
                        kind,
                    };
                    // Checked one by one so the error names the file and line.
                    crate::pii::check_term(&t.text).map_err(|e| ConfigError {
                        file: path.display().to_string(),
                        line: Some(n + 1),
                        path: format!("{key}[{i}]"),
                        message: e.0,
                    })?;
                    terms.push(t);
                }
            }
        }
        if terms.len() > crate::pii::MAX_TERMS {
            return Err(self.err(
                0..0,
                "pii",
                format!("more than {} dictionary terms", crate::pii::MAX_TERMS),
            ));
        }
        let all = raw.enabled.unwrap_or(false);
        let routes: Vec<String> = raw
            .routes
            .iter()
            .flatten()
            .map(|r| r.get_ref().clone())
            .collect();
        let detector = if all || a_key_has_it || !routes.is_empty() {
            let d = crate::pii::Detector::assemble(operator, &terms)
                .map_err(|e| self.err(0..0, "pii", e.0))?;
            crate::pii::LazyDetector::ready(d)
        } else {
            crate::pii::LazyDetector::later(operator, terms)
        };
        let secret = match &raw.secret_env {
            Some(var) => {
                let value = std::env::var(var.get_ref()).unwrap_or_default();
                if value.len() < MIN_PII_SECRET_BYTES {
                    return Err(self.err(
                        var.span(),
                        "pii.secret_env",
                        format!(
                            "environment variable {} must hold at least {MIN_PII_SECRET_BYTES} bytes",
                            var.get_ref()
                        ),
                    ));
                }
                value.into_bytes()
            }
            None => {
                let mut b = vec![0u8; 32];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).map_err(
                    |_| self.err(0..0, "pii.secret_env", "the system's random source failed"),
                )?;
                b
            }
        };
        Ok(PiiConfig {
            detector: std::sync::Arc::new(detector),
            all,
            routes,
            targets: Vec::new(),
            secret,
            secret_drawn: raw.secret_env.is_none(),
        })
    }

    /// `pii.routes`, each resolved to its route (an alias names the route it belongs to), and
    /// the targets of those routes; a name that is no route is refused.
    pub(super) fn pii_routes(
        &self,
        pii: &mut PiiConfig,
        routing: &crate::routing::Table,
        raw: &raw::RawPii,
    ) -> Result<(), ConfigError> {
        let mut routes = Vec::new();
        let mut targets = Vec::new();
        for (i, name) in raw.routes.iter().flatten().enumerate() {
            let Some(Resolved::Route(r)) = routing.resolve(name.get_ref()) else {
                return Err(self.err(
                    name.span(),
                    format!("pii.routes[{i}]"),
                    format!("no route is named {:?}", name.get_ref()),
                ));
            };
            routes.push(r.model.clone());
            targets.extend(r.targets.iter().map(|t| t.key.clone()));
        }
        pii.routes = routes;
        pii.targets = targets;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::testing::GOOD;
    use crate::config::Config;

    #[test]
    fn pii_section_compiles_and_names_bad_lines() {
        let dir = std::env::temp_dir().join(format!("rw-pii-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("names.txt"), "# people\nJane Doe\nJo\n").unwrap();
        std::fs::write(dir.join("ok.txt"), "Jane Doe # a comment\n\nHalifax\n").unwrap();
        let file = dir.join("c.toml");
        let file = file.to_str().unwrap();
        let with = |pii: &str| format!("{GOOD}\n[pii]\n{pii}\n");
        // A term too short: the dictionary's own file and line.
        let e = Config::from_toml(&with("dictionaries = [\"names.txt\"]"), file).unwrap_err();
        assert!(e.file.ends_with("names.txt"), "{e}");
        assert_eq!(e.line, Some(3));
        assert_eq!(e.path, "pii.dictionaries[0]");
        // A bad regex: the config's line.
        let cfg = with("regexes = [\"ok-\\\\d+\", \"(\"]");
        let e = Config::from_toml(&cfg, file).unwrap_err();
        assert_eq!(e.path, "pii.regexes[1]");
        assert_eq!(e.line, Some(cfg.lines().count()));
        // Good: compiled, on for the listed route and the key that asks.
        let c = Config::from_toml(
            &with("places = [\"ok.txt\"]\nroutes = [\"fast\"]\nregexes = [\"EMP-\\\\d{6}\"]"),
            file,
        )
        .unwrap();
        let on = |model: &str| c.pii.on_for(None, c.resolve(model).as_ref());
        // The route, and its targets addressed directly (with or without `@`): the same policy.
        assert!(on("fast") && on("a/claude-x") && on("@o/gpt-y") && !c.pii.all);
        assert!(!on("other") && !on("o/gpt-other"));
        // A name that is no route is refused.
        let e = Config::from_toml(&with("routes = [\"fats\"]"), file).unwrap_err();
        assert_eq!(e.path, "pii.routes[0]");
        assert!(
            c.pii.detector.is_ready(),
            "a route turns it on: compiled at load"
        );
        let found = c
            .pii
            .detector
            .get()
            .unwrap()
            .find("Jane Doe in Halifax, EMP-123456");
        assert_eq!(found.len(), 3);
        assert_ne!(c.pii.key_secret(Some("a")), c.pii.key_secret(Some("b")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pii_detectors_wait_for_a_request_when_no_policy_turns_them_on() {
        let c = Config::from_toml(GOOD, "t.toml").unwrap();
        assert!(!c.pii.detector.is_ready(), "nothing asked for them yet");
        let d = c.pii.detector.get().unwrap();
        assert_eq!(d.find("mail a@example.com").len(), 1);
        assert!(c.pii.detector.is_ready());
        let on = format!("{GOOD}\n[pii]\nenabled = true\n");
        assert!(Config::from_toml(&on, "t.toml")
            .unwrap()
            .pii
            .detector
            .is_ready());
    }
}
