//! `[[route]]`: the model names clients send, their targets (with per-target overrides), their
//! capabilities and failover policy.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::compiler::{Compiler, ConfigError};
use super::providers::Provider;
use super::raw::{self, RawTarget};
use crate::format::check_model_id;
use crate::routing::{Capabilities, Route, Target};
use toml::Spanned;

impl Compiler<'_> {
    /// `[[route]]` in file order; `providers` and their `index` by name are compiled.
    pub(super) fn routes(
        &self,
        raw: &[Spanned<raw::RawRoute>],
        providers: &[Provider],
        provider_index: &HashMap<String, usize>,
        hop: &str,
    ) -> Result<Vec<Route>, ConfigError> {
        let mut routes = Vec::with_capacity(raw.len());
        let mut route_index = HashMap::new();
        for (i, sr) in raw.iter().enumerate() {
            let r = sr.get_ref();
            let path = format!("route[{i}]");
            let model = r.model.get_ref().clone();
            if model.is_empty() {
                return Err(self.err(r.model.span(), format!("{path}.model"), "empty model name"));
            }
            // Clients send this name, and the same bound applies to what they send.
            if let Err(p) = check_model_id(&model) {
                return Err(self.err(
                    r.model.span(),
                    format!("{path}.model"),
                    format!("model name {model:?} {p}"),
                ));
            }
            if route_index.insert(model.clone(), i).is_some() {
                return Err(self.err(
                    r.model.span(),
                    format!("{path}.model"),
                    format!("duplicate route {model:?}"),
                ));
            }
            let mut aliases = Vec::new();
            for (j, a) in r.aliases.iter().flatten().enumerate() {
                let apath = format!("{path}.aliases[{j}]");
                let alias = a.get_ref();
                if alias.is_empty() {
                    return Err(self.err(a.span(), apath, "empty model name"));
                }
                if let Err(p) = check_model_id(alias) {
                    return Err(self.err(a.span(), apath, format!("model name {alias:?} {p}")));
                }
                // One name, one route: a name claimed twice would route by file order.
                if route_index.insert(alias.clone(), i).is_some() {
                    return Err(self.err(
                        a.span(),
                        apath,
                        format!("{alias:?} already names a route"),
                    ));
                }
                aliases.push(alias.clone());
            }
            if r.targets.is_empty() {
                return Err(self.err(
                    sr.span(),
                    format!("{path}.targets"),
                    "a route needs at least one target",
                ));
            }
            let mut targets = Vec::with_capacity(r.targets.len());
            for (j, st) in r.targets.iter().enumerate() {
                let mut tpath = format!("{path}.targets[{j}]");
                let (t, style, weight, table) = match st.get_ref() {
                    RawTarget::Text(text) => {
                        (Spanned::new(st.span(), text.clone()), None, None, None)
                    }
                    RawTarget::Table(t) => {
                        tpath.push_str(".target");
                        (
                            t.target.clone(),
                            t.thinking_style.as_ref(),
                            t.weight,
                            Some(t),
                        )
                    }
                };
                let text = t.get_ref();
                let Some((pname, tmodel)) = text.split_once('/') else {
                    return Err(self.err(
                        t.span(),
                        tpath,
                        format!("target {text:?} must read \"provider/model\""),
                    ));
                };
                let Some(&provider) = provider_index.get(pname) else {
                    return Err(self.err(t.span(), tpath, format!("unknown provider {pname:?}")));
                };
                if tmodel.is_empty() {
                    return Err(self.err(
                        t.span(),
                        tpath,
                        format!("target {text:?} names no model"),
                    ));
                }
                // Sent upstream and echoed in `x-ringway-model` on every routed response.
                if let Err(p) = check_model_id(tmodel) {
                    return Err(self.err(t.span(), tpath, format!("target model {tmodel:?} {p}")));
                }
                let Some(p) = providers.get(provider) else {
                    return Err(self.err(t.span(), tpath, format!("unknown provider {pname:?}")));
                };
                let style_path = format!("{path}.targets[{j}]");
                let thinking_style = self
                    .thinking_style(style, p.kind, &style_path)?
                    .unwrap_or(p.thinking_style);
                // The same target twice would be asked twice by one request, though it may
                // have acted on it the first time.
                if targets
                    .iter()
                    .any(|t: &Target| t.provider == provider && t.model == tmodel)
                {
                    return Err(self.err(
                        t.span(),
                        tpath,
                        format!("target {text:?} is listed twice"),
                    ));
                }
                let place = match table {
                    Some(tt)
                        if tt.region.is_some()
                            || tt.jurisdiction.is_some()
                            || tt.custody.is_some() =>
                    {
                        // An override replaces that one setting; the rest stay the provider's.
                        let base = &p.place;
                        let region =
                            self.label(tt.region.as_ref(), &format!("{style_path}.region"))?;
                        let jurisdiction = self.jurisdiction(
                            tt.jurisdiction.as_ref(),
                            &format!("{style_path}.jurisdiction"),
                        )?;
                        let custody =
                            self.label(tt.custody.as_ref(), &format!("{style_path}.custody"))?;
                        Arc::new(crate::routing::Place::new(
                            hop,
                            pname,
                            region.or_else(|| base.region.clone()),
                            jurisdiction.or_else(|| base.jurisdiction.clone()),
                            custody.or_else(|| base.custody.clone()),
                            base.credential,
                        ))
                    }
                    _ => p.place.clone(),
                };
                let place = crate::routing::reached(&place, pname, p.reach, tmodel);
                targets.push(Target {
                    provider,
                    model: tmodel.to_owned(),
                    key: format!("{pname}/{tmodel}"),
                    label: format!("{pname}/{tmodel}"),
                    direct: false,
                    thinking_style,
                    weight: weight.unwrap_or(1),
                    place,
                });
            }
            let c = &r.capabilities;
            routes.push(Route {
                model,
                aliases,
                targets,
                capabilities: Capabilities {
                    vision: c.vision,
                    tools: c.tools,
                    thinking: c.thinking,
                    context_window: c.context_window,
                    max_output: c.max_output,
                },
                policy: self.policy(r, &path)?,
                store_responses: r.store_responses.unwrap_or(true),
                strict_translation: r.strict_translation.unwrap_or(false),
                limits: self.limits(
                    [&r.rpm, &r.tpm, &r.input_tpm, &r.output_tpm, &r.max_streams],
                    &path,
                )?,
            });
        }
        Ok(routes)
    }

    /// A route's failover policy; unset keys take the defaults in `routing`.
    fn policy(&self, r: &raw::RawRoute, path: &str) -> Result<crate::routing::Policy, ConfigError> {
        use crate::routing::{BreakerPolicy, Policy, Strategy};
        let d = Policy::default();
        let ms = Duration::from_millis;
        let strategy = match &r.strategy {
            None => d.strategy,
            Some(s) => Strategy::parse(s.get_ref()).ok_or_else(|| {
                self.err(
                    s.span(),
                    format!("{path}.strategy"),
                    format!(
                        "{:?}: expected \"ordered\", \"weighted\" or \"least_latency\"",
                        s.get_ref()
                    ),
                )
            })?,
        };
        let mut retry_on = d.retry_on.clone();
        if let Some(list) = &r.retry_on {
            retry_on.clear();
            for (j, st) in list.iter().enumerate() {
                let status = *st.get_ref();
                // A 2xx is an answer, never a reason to retry.
                if !(300..=599).contains(&status) {
                    return Err(self.err(
                        st.span(),
                        format!("{path}.retry_on[{j}]"),
                        format!("{status}: a status to retry on is 300-599"),
                    ));
                }
                retry_on.push(status);
            }
        }
        let positive =
            |v: &Option<Spanned<u64>>, key: &str| -> Result<Option<Duration>, ConfigError> {
                match v {
                    None => Ok(None),
                    Some(x) if *x.get_ref() == 0 => {
                        Err(self.err(x.span(), format!("{path}.{key}"), "must be greater than 0"))
                    }
                    Some(x) => Ok(Some(ms(*x.get_ref()))),
                }
            };
        Ok(Policy {
            strategy,
            retries: r.retries.unwrap_or(d.retries),
            retry_on,
            backoff_base: r.backoff_base_ms.map_or(d.backoff_base, ms),
            backoff_max: r.backoff_max_ms.map_or(d.backoff_max, ms),
            max_retry_after: r.max_retry_after_ms.map_or(d.max_retry_after, ms),
            request_timeout: positive(&r.request_timeout_ms, "request_timeout_ms")?
                .unwrap_or(d.request_timeout),
            first_token_timeout: positive(&r.first_token_timeout_ms, "first_token_timeout_ms")?,
            stream_first_byte_timeout: positive(
                &r.stream_first_byte_timeout_ms,
                "stream_first_byte_timeout_ms",
            )?,
            breaker: BreakerPolicy {
                failures: r.breaker_failures.unwrap_or(d.breaker.failures),
                cooldown: r.breaker_cooldown_ms.map_or(d.breaker.cooldown, ms),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::GOOD;
    use crate::config::Config;

    #[test]
    fn failover_keys_compile_and_bad_ones_are_named() {
        use crate::routing::Strategy;
        let c = Config::from_toml(
            &GOOD.replace(
                "targets = [\"a/claude-x\", \"o/gpt-y\"]",
                "targets = [{ target = \"a/claude-x\", weight = 3 }, \"o/gpt-y\"]\nstrategy = \"weighted\"\nretries = 2\nretry_on = [429, 503]\nfirst_token_timeout_ms = 700\nbreaker_failures = 0",
            ),
            "t.toml",
        )
        .unwrap();
        let r = &c.routing.routes()[0];
        assert_eq!(r.policy.strategy, Strategy::Weighted);
        assert_eq!(r.policy.retries, 2);
        assert_eq!(r.policy.retry_on, vec![429, 503]);
        assert_eq!(
            r.policy.first_token_timeout,
            Some(Duration::from_millis(700))
        );
        assert_eq!(r.policy.breaker.failures, 0);
        assert_eq!(r.targets[0].weight, 3);
        assert_eq!(r.targets[1].weight, 1);
        for (from, to, path) in [
            ("\"o/gpt-y\"]", "\"a/claude-x\"]", "route[0].targets[1]"),
            (
                "\"o/gpt-y\"]",
                "\"o/gpt-y\"]\nstrategy = \"fastest\"",
                "route[0].strategy",
            ),
            (
                "\"o/gpt-y\"]",
                "\"o/gpt-y\"]\nretry_on = [200]",
                "route[0].retry_on[0]",
            ),
            (
                "\"o/gpt-y\"]",
                "\"o/gpt-y\"]\nrequest_timeout_ms = 0",
                "route[0].request_timeout_ms",
            ),
        ] {
            let e = Config::from_toml(&GOOD.replace(from, to), "t.toml").unwrap_err();
            assert_eq!(e.path, path, "{e}");
        }
        let e = Config::from_toml(&GOOD.replace("\"o/gpt-y\"]", "\"a/claude-x\"]"), "t.toml")
            .unwrap_err();
        assert!(e.message.contains("listed twice"), "{e}");
    }
}
