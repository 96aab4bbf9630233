//! `[[provider]]`: where each provider lives, its credential, its budgets (over `[upstream]`),
//! which headers it is sent, and the defaults for requests to it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::compiler::{Compiler, ConfigError};
use super::upstream::{Upstream, DEFAULT_STREAM_FIRST_BYTE_TIMEOUT};
use super::{raw, tls};
use crate::format::Format;
use crate::translate::ThinkingStyle;
use toml::Spanned;

/// `anthropic-version` sent when the client sent none.
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";
/// Longest provider name. Names go into the `x-ringway-provider` header, logs, metrics
/// labels and `provider/model` ids; real ones are short words.
pub const MAX_PROVIDER_NAME_BYTES: usize = 64;

/// Is `name` a provider name: 1 to [`MAX_PROVIDER_NAME_BYTES`] of `A-Z a-z 0-9 . _ -`? The
/// set leaves out `/` (it splits `provider/model`), `@` (the direct-address prefix), and
/// anything that could break a header or log line.
pub fn is_provider_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_PROVIDER_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Where a provider lives and how to talk to it.
#[derive(Debug)]
pub struct Provider {
    /// Config name.
    pub name: String,
    /// Its wire format.
    pub kind: crate::provider::Kind,
    /// `https`?
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Host name or IP for connect and SNI.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// `Host` header value.
    pub authority: String,
    /// Translation options for requests to this provider (filled in once the config is
    /// compiled).
    pub translate: crate::translate::Options,
    /// Idle connections are pooled under this key: the name and the address, so a reload that
    /// points a name elsewhere never hands out a connection to the old address.
    pub pool_key: String,
    /// Path prefix from `base_url`, without a trailing slash.
    pub base_path: String,
    /// The credential, or the name of the unset environment variable that should hold it.
    pub api_key: ApiKey,
    /// Finds that credential (and its fragments) in what the provider sends back; None
    /// without a key (or one too short to tell from text).
    pub scrubber: Option<Arc<crate::scrub::Scrubber>>,
    /// Default `anthropic-version`.
    pub anthropic_version: String,
    /// Connect budget.
    pub connect_timeout: Duration,
    /// Response head budget (`first_byte_timeout_ms`).
    pub first_byte_timeout: Duration,
    /// Response head budget of a streamed request (`stream_first_byte_timeout_ms`).
    pub stream_first_byte_timeout: Duration,
    /// Body chunk silence budget.
    pub idle_timeout: Duration,
    /// Output cap field for translated requests to an openai-kind provider.
    pub max_tokens_field: crate::translate::MaxTokensField,
    /// Client headers forwarded besides the default set (`forward_headers`).
    pub forward_headers: Vec<crate::headers::HeaderPattern>,
    /// Client headers never forwarded to this provider (`drop_headers`).
    pub drop_headers: Vec<crate::headers::HeaderPattern>,
    /// Thinking form for `reasoning_effort` in translated requests (anthropic kind).
    pub thinking_style: ThinkingStyle,
    /// Responses requests go to it unchanged (`responses = "native"`).
    pub native_responses: bool,
    /// Where it runs (region, jurisdiction, custody label) and its custody path; targets
    /// without overrides share it.
    pub place: Arc<crate::routing::Place>,
    /// A cloud kind's region (Vertex: location) as its paths and signatures name it; empty
    /// for other kinds.
    pub cloud_region: String,
    /// A Vertex provider's project; empty for other kinds.
    pub project: String,
    /// The kind whose model ids say where a request reaches (Bedrock for its presets).
    pub reach: crate::provider::Kind,
    /// A cloud kind's credential (SigV4 keys, a Bedrock API key, a Google token), kept fresh
    /// off the workers.
    pub cloud_credential: Option<Arc<crate::credentials::Credential>>,
}

/// A provider credential as resolved at start.
#[derive(Debug, Clone)]
pub enum ApiKey {
    /// The provider needs none.
    None,
    /// Resolved from the environment, kept as the ready header (`Authorization: Bearer …` or
    /// `x-api-key: …`) so no request formats it again.
    Value(http::HeaderName, http::HeaderValue),
    /// `api_key_env` names a variable that is not set.
    Missing(String),
}

impl Provider {
    /// What this provider is sent for a `client` request for `model`: Responses unchanged
    /// when it has native Responses, else its kind's dialect for that model (Vertex serves
    /// Gemini and Claude models, each in its own API).
    pub fn speaks(&self, client: Format, model: &str) -> Format {
        if client == Format::Responses && self.native_responses {
            Format::Responses
        } else {
            self.kind.dialect_for(model)
        }
    }

    /// The full request path of `op` for a body in `speaks` asking for `model` (None: no such
    /// operation at this provider; count_tokens is then estimated).
    pub fn path(
        &self,
        speaks: Format,
        op: crate::dialect::Op,
        model: &str,
        stream: bool,
    ) -> Option<String> {
        let at = crate::provider::PathArgs {
            model,
            stream,
            project: &self.project,
            location: &self.cloud_region,
        };
        let suffix = self.kind.path(speaks, op, &at)?;
        Some(self.path_for(&suffix))
    }

    /// Full request path for `suffix` (`/chat/completions`, `/v1/messages`, …).
    pub fn path_for(&self, format_path: &str) -> String {
        let mut p = String::with_capacity(self.base_path.len() + format_path.len());
        p.push_str(&self.base_path);
        p.push_str(format_path);
        p
    }
}

impl Compiler<'_> {
    /// `[[provider]]` in file order, and each name's index (a route's targets name them).
    pub(super) fn providers(
        &self,
        raw: &[Spanned<raw::RawProvider>],
        up: &Upstream,
        hop: &str,
    ) -> Result<(Vec<Provider>, HashMap<String, usize>), ConfigError> {
        let ms = Duration::from_millis;
        let (connect, first_byte, stream_first_byte, idle) =
            (up.connect, up.first_byte, up.stream_first_byte, up.idle);
        let mut providers = Vec::with_capacity(raw.len());
        let mut provider_index = HashMap::new();
        for (i, sp) in raw.iter().enumerate() {
            let p = sp.get_ref();
            let path = format!("provider[{i}]");
            let name = p.name.get_ref().clone();
            if !is_provider_name(&name) {
                return Err(self.err(
                    p.name.span(),
                    format!("{path}.name"),
                    format!(
                        "invalid provider name {name:?}: use 1 to {MAX_PROVIDER_NAME_BYTES} of A-Z a-z 0-9 . _ -"
                    ),
                ));
            }
            if provider_index.insert(name.clone(), i).is_some() {
                return Err(self.err(
                    p.name.span(),
                    format!("{path}.name"),
                    format!("duplicate provider name {name:?}"),
                ));
            }
            let Some(kind) = crate::provider::Kind::parse(p.kind.get_ref()) else {
                return Err(self.err(
                    p.kind.span(),
                    format!("{path}.kind"),
                    format!(
                        "unknown provider kind {:?}: expected {}",
                        p.kind.get_ref(),
                        crate::provider::expected()
                    ),
                ));
            };
            let site = self.site(p, kind, &path, sp.span())?;
            let url = self.base_url(&site.base_url, &format!("{path}.base_url"))?;
            let tls = if url.tls {
                let ca = p.ca_file.as_ref().map(|c| PathBuf::from(c.get_ref()));
                let cfg = tls::client_config(ca.as_deref()).map_err(|e| {
                    let span = p.ca_file.as_ref().map_or(sp.span(), Spanned::span);
                    self.err(span, format!("{path}.ca_file"), e)
                })?;
                Some(cfg)
            } else {
                if let Some(ca) = &p.ca_file {
                    return Err(self.err(
                        ca.span(),
                        format!("{path}.ca_file"),
                        "ca_file needs an https base_url",
                    ));
                }
                None
            };
            let max_tokens_field = match p.max_tokens_field.as_ref().map(|f| (f.get_ref().as_str(), f.span())) {
                None | Some(("max_completion_tokens", _)) => crate::translate::MaxTokensField::MaxCompletionTokens,
                Some(("max_tokens", _)) => crate::translate::MaxTokensField::MaxTokens,
                Some((other, span)) => {
                    return Err(self.err(
                        span,
                        format!("{path}.max_tokens_field"),
                        format!("unknown field {other:?}: expected \"max_completion_tokens\" or \"max_tokens\""),
                    ))
                }
            };
            let forward_headers = self.header_patterns(
                p.forward_headers.as_deref(),
                &format!("{path}.forward_headers"),
            )?;
            let drop_headers =
                self.header_patterns(p.drop_headers.as_deref(), &format!("{path}.drop_headers"))?;
            let thinking_style = self.thinking_style(p.thinking_style.as_ref(), kind, &path)?;
            let native_responses = match p.responses.as_ref().map(|r| (r.get_ref().as_str(), r.span())) {
                None => kind.may_serve_responses() && url.host == "api.openai.com",
                Some(("chat", _)) => false,
                Some(("native", span)) if !kind.may_serve_responses() => {
                    return Err(self.err(
                        span,
                        format!("{path}.responses"),
                        "\"native\" needs an openai-kind provider (an anthropic-kind one has no Responses API)",
                    ))
                }
                Some(("native", _)) => true,
                Some((other, span)) => {
                    return Err(self.err(
                        span,
                        format!("{path}.responses"),
                        format!("unknown value {other:?}: expected \"native\" or \"chat\""),
                    ))
                }
            };
            let mut scrubber = None;
            // A cloud kind's credential (its API key too) comes from `crate::credentials`.
            let cloud_credential = self.cloud_credential(p, kind, &name, &path, sp.span())?;
            let api_key = match &p.api_key_env {
                _ if cloud_credential.is_some() => ApiKey::None,
                None => ApiKey::None,
                Some(var) => match std::env::var(var.get_ref()) {
                    Ok(v) if !v.is_empty() => {
                        // It goes out in a header on every request: refuse it now, not per request.
                        if http::HeaderValue::from_str(&v).is_err() || v.trim() != v {
                            return Err(self.err(
                                var.span(),
                                format!("{path}.api_key_env"),
                                format!(
                                    "environment variable {} holds characters not allowed in a header (whitespace or control characters)",
                                    var.get_ref()
                                ),
                            ));
                        }
                        scrubber = crate::scrub::Scrubber::new(v.as_bytes())
                            .map_err(|e| self.err(var.span(), format!("{path}.api_key_env"), e))?
                            .map(Arc::new);
                        let (name, value) = if site.bearer {
                            crate::provider::openai::credential(&v)
                        } else {
                            kind.credential(&v)
                        };
                        let mut value = http::HeaderValue::from_str(&value).map_err(|_| {
                            self.err(
                                var.span(),
                                format!("{path}.api_key_env"),
                                "not a valid header value",
                            )
                        })?;
                        value.set_sensitive(true);
                        ApiKey::Value(name, value)
                    }
                    _ => ApiKey::Missing(var.get_ref().clone()),
                },
            };
            // Sent as a header on every Anthropic request: refuse a bad value now, not per request.
            let anthropic_version =
                match &p.anthropic_version {
                    None => DEFAULT_ANTHROPIC_VERSION.to_owned(),
                    Some(v)
                        if !v.get_ref().is_empty()
                            && v.get_ref().trim() == v.get_ref()
                            && crate::http1::is_valid_field_value(v.get_ref().as_bytes()) =>
                    {
                        v.get_ref().clone()
                    }
                    Some(v) => return Err(self.err(
                        v.span(),
                        format!("{path}.anthropic_version"),
                        "empty, or holds characters not allowed in a header (control characters, surrounding whitespace)",
                    )),
                };
            let credential = match api_key {
                ApiKey::None if cloud_credential.is_some() => {
                    crate::routing::CredentialSource::Gateway
                }
                ApiKey::None => crate::routing::CredentialSource::None,
                ApiKey::Value(..) | ApiKey::Missing(_) => crate::routing::CredentialSource::Gateway,
            };
            let place = Arc::new(crate::routing::Place::new(
                hop,
                &name,
                self.label(p.region.as_ref(), &format!("{path}.region"))?,
                self.jurisdiction(p.jurisdiction.as_ref(), &format!("{path}.jurisdiction"))?
                    .or_else(|| site.country.map(str::to_owned)),
                self.label(p.custody.as_ref(), &format!("{path}.custody"))?,
                credential,
            ));
            // The CA file too: a reload that changes it must not reuse connections verified
            // against the old roots.
            let pool_key = format!(
                "{name} {}://{}:{}{}",
                if tls.is_some() { "https" } else { "http" },
                url.host,
                url.port,
                p.ca_file
                    .as_ref()
                    .map_or(String::new(), |c| format!(" ca={}", c.get_ref()))
            );
            let first_byte_timeout = p.first_byte_timeout_ms.map_or(first_byte, ms);
            // Unset, a stream's head wait is the default, or the provider's whole-answer wait
            // when that is shorter (an operator who shortened it meant streams too).
            let stream_first_byte_timeout = p
                .stream_first_byte_timeout_ms
                .map(ms)
                .or(stream_first_byte)
                .unwrap_or(DEFAULT_STREAM_FIRST_BYTE_TIMEOUT.min(first_byte_timeout));
            providers.push(Provider {
                name,
                pool_key,
                kind,
                tls,
                host: url.host,
                port: url.port,
                authority: url.authority,
                base_path: url.path,
                api_key,
                scrubber,
                anthropic_version,
                connect_timeout: p.connect_timeout_ms.map_or(connect, ms),
                first_byte_timeout,
                stream_first_byte_timeout,
                idle_timeout: p.idle_timeout_ms.map_or(idle, ms),
                max_tokens_field,
                forward_headers,
                drop_headers,
                thinking_style: thinking_style.unwrap_or_default(),
                native_responses,
                translate: crate::translate::Options::default(),
                place,
                cloud_region: site.region,
                project: site.project,
                reach: site.reach,
                cloud_credential,
            });
        }
        Ok((providers, provider_index))
    }

    /// A `thinking_style` key at `{path}.thinking_style`: its value, refused on an openai-kind
    /// provider (it only shapes requests to Anthropic).
    pub(super) fn thinking_style(
        &self,
        raw: Option<&Spanned<String>>,
        kind: crate::provider::Kind,
        path: &str,
    ) -> Result<Option<ThinkingStyle>, ConfigError> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        let key = format!("{path}.thinking_style");
        let Some(style) = ThinkingStyle::parse(raw.get_ref()) else {
            return Err(self.err(
                raw.span(),
                key,
                format!(
                    "unknown thinking style {:?}: expected \"auto\", \"adaptive\" or \"budget\"",
                    raw.get_ref()
                ),
            ));
        };
        if kind.dialect() != Format::Anthropic {
            return Err(self.err(
                raw.span(),
                key,
                "thinking_style applies to anthropic-kind providers only",
            ));
        }
        Ok(Some(style))
    }

    /// Compile `forward_headers` / `drop_headers` (bounded; each entry checked).
    fn header_patterns(
        &self,
        raw: Option<&[Spanned<String>]>,
        path: &str,
    ) -> Result<Vec<crate::headers::HeaderPattern>, ConfigError> {
        let raw = raw.unwrap_or_default();
        if raw.len() > crate::headers::MAX_HEADER_PATTERNS {
            let span = raw.first().map_or(0..0, Spanned::span);
            return Err(self.err(
                span,
                path,
                format!("at most {} patterns", crate::headers::MAX_HEADER_PATTERNS),
            ));
        }
        raw.iter()
            .enumerate()
            .map(|(i, p)| {
                let parsed = if path.ends_with(".drop_headers") {
                    crate::headers::HeaderPattern::parse_drop(p.get_ref())
                } else {
                    crate::headers::HeaderPattern::parse(p.get_ref())
                };
                parsed.map_err(|why| self.err(p.span(), format!("{path}[{i}]"), why))
            })
            .collect()
    }

    /// A provider's `base_url`: http or https, a host, no query or credentials.
    fn base_url(&self, s: &Spanned<String>, path: &str) -> Result<BaseUrl, ConfigError> {
        let bad = |why: &str| self.err(s.span(), path, format!("{:?}: {why}", s.get_ref()));
        // Its authority becomes the `Host` header and its path the request target: both must
        // be visible ASCII, whatever the URL parser would let through.
        if !s.get_ref().bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad(
                "only visible ASCII is allowed (no spaces or control characters; percent-encode the path, punycode the host)",
            ));
        }
        let uri: http::Uri = s.get_ref().parse().map_err(|_| bad("not a URL"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("scheme must be http or https")),
        };
        if uri.query().is_some() {
            return Err(bad("a query string is not allowed"));
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad(
                "credentials in the URL are not allowed; use api_key_env",
            ));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let path = uri.path().trim_end_matches('/').to_owned();
        Ok(BaseUrl {
            tls,
            host,
            port,
            authority: authority.as_str().to_owned(),
            path,
        })
    }
}

/// A `base_url`, taken apart.
struct BaseUrl {
    tls: bool,
    host: String,
    port: u16,
    authority: String,
    path: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{refused, GOOD};
    use crate::config::Config;

    #[test]
    fn a_stream_first_byte_timeout_per_provider_and_route() {
        let ms = Duration::from_millis;
        let t = |extra: &str| {
            let c = Config::from_toml(&format!("{GOOD}\n{extra}"), "t.toml").unwrap();
            let p: Vec<_> = c
                .providers
                .iter()
                .map(|p| (p.first_byte_timeout, p.stream_first_byte_timeout))
                .collect();
            let route = c
                .resolve("fast")
                .unwrap()
                .policy()
                .stream_first_byte_timeout;
            (p, route)
        };
        let (p, route) = t("");
        assert_eq!(p, [(ms(300_000), ms(60_000)); 2]);
        assert_eq!(route, None);
        // Unset, it is never longer than the provider's whole-answer wait.
        let (p, _) = t("[upstream]\nfirst_byte_timeout_ms = 400\n");
        assert_eq!(p, [(ms(400), ms(400)); 2]);
        // Set, it is used as set: the provider's over [upstream].
        let (p, _) =
            t("[upstream]\nfirst_byte_timeout_ms = 400\nstream_first_byte_timeout_ms = 900\n");
        assert_eq!(p, [(ms(400), ms(900)); 2]);
        let text = GOOD
            .replace(
                "base_url = \"http://localhost:8080/v1\"",
                "base_url = \"http://localhost:8080/v1\"\nstream_first_byte_timeout_ms = 7000",
            )
            .replace(
                "targets = [\"a/claude-x\", \"o/gpt-y\"]",
                "targets = [\"a/claude-x\", \"o/gpt-y\"]\nstream_first_byte_timeout_ms = 1500",
            );
        let c = Config::from_toml(&text, "t.toml").unwrap();
        assert_eq!(c.providers[0].stream_first_byte_timeout, ms(60_000));
        assert_eq!(c.providers[1].stream_first_byte_timeout, ms(7000));
        assert_eq!(
            c.resolve("fast")
                .unwrap()
                .policy()
                .stream_first_byte_timeout,
            Some(ms(1500))
        );
    }

    #[test]
    fn thinking_style_per_provider_and_target() {
        let c = Config::from_toml(
            &GOOD
                .replace(
                    "base_url = \"http://127.0.0.1:9/\"",
                    "base_url = \"http://127.0.0.1:9/\"\nthinking_style = \"adaptive\"",
                )
                .replace(
                    "targets = [\"a/claude-x\", \"o/gpt-y\"]",
                    "targets = [\"a/claude-x\", { target = \"a/claude-y\", thinking_style = \"budget\" }, { target = \"o/gpt-y\" }]",
                ),
            "t.toml",
        )
        .unwrap();
        let t = c.resolve("fast").unwrap().targets().to_vec();
        let styles: Vec<_> = t
            .iter()
            .map(|t| (t.model.as_str(), t.thinking_style))
            .collect();
        assert_eq!(
            styles,
            [
                ("claude-x", ThinkingStyle::Adaptive),
                ("claude-y", ThinkingStyle::Budget),
                ("gpt-y", ThinkingStyle::Auto),
            ]
        );
        assert_eq!(
            c.translate_options(&c.providers[0]).thinking_style,
            ThinkingStyle::Adaptive
        );
        let d = c.resolve("a/claude-z").unwrap();
        assert_eq!(d.targets()[0].thinking_style, ThinkingStyle::Adaptive);
        assert!(c.describe().contains("a/claude-y (thinking_style budget)"));
        let plain = Config::from_toml(GOOD, "t.toml").unwrap();
        assert_eq!(plain.providers[0].thinking_style, ThinkingStyle::Auto);
    }

    #[test]
    fn thinking_style_errors_name_the_key() {
        let t = "targets = [\"a/claude-x\", \"o/gpt-y\"]";
        refused(
            t,
            "targets = [{ target = \"a/claude-x\", thinking_style = \"enabled\" }]",
            "route[0].targets[0].thinking_style",
            "unknown thinking style \"enabled\": expected \"auto\", \"adaptive\" or \"budget\"",
        );
        refused(
            t,
            "targets = [{ target = \"o/gpt-y\", thinking_style = \"budget\" }]",
            "route[0].targets[0].thinking_style",
            "anthropic-kind providers only",
        );
        refused(
            t,
            "targets = [{ target = \"zz/m\" }]",
            "route[0].targets[0].target",
            "unknown provider \"zz\"",
        );
        refused(
            t,
            "targets = [{ target = \"a/m\", thinking = \"budget\" }]",
            "route[0].targets[0].thinking",
            "unknown key",
        );
        refused(
            t,
            "targets = [{ thinking_style = \"budget\" }]",
            "route[0].targets[0].target",
            "required key is missing",
        );
        refused(
            "kind = \"openai\"",
            "kind = \"openai\"\nthinking_style = \"auto\"",
            "provider[1].thinking_style",
            "anthropic-kind providers only",
        );
        refused(
            "kind = \"anthropic\"",
            "kind = \"anthropic\"\nthinking_style = \"Adaptive\"",
            "provider[0].thinking_style",
            "unknown thinking style",
        );
    }

    #[test]
    fn values_that_reach_headers_are_checked_at_load() {
        for name in [
            "a\\r\\nX-Injected: 1",
            "a b",
            "a/b",
            "@a",
            "a:b",
            "é",
            "",
            &"p".repeat(MAX_PROVIDER_NAME_BYTES + 1),
        ] {
            refused(
                "name = \"a\"",
                &format!("name = \"{name}\""),
                "provider[0].name",
                "invalid provider name",
            );
        }
        for name in [
            "p",
            "mock-openai",
            "Azure_EU.2",
            &"p".repeat(MAX_PROVIDER_NAME_BYTES),
        ] {
            assert!(is_provider_name(name), "{name}");
        }

        let long = "m".repeat(crate::format::MAX_MODEL_ID_BYTES + 1);
        for (model, reason) in [
            ("claude-x\\r\\nX: y", "control characters"),
            ("claude\\u0000x", "control characters"),
            ("claude\\u007f", "control characters"),
            (long.as_str(), "longer than 256 bytes"),
        ] {
            refused(
                "\"a/claude-x\"",
                &format!("\"a/{model}\""),
                "route[0].targets[0]",
                reason,
            );
            refused(
                "model = \"fast\"",
                &format!("model = \"{model}\""),
                "route[0].model",
                reason,
            );
        }
        let max = "m".repeat(crate::format::MAX_MODEL_ID_BYTES);
        let ok = GOOD
            .replace("a/claude-x", &format!("a/{max}"))
            .replace("model = \"fast\"", &format!("model = \"{max}\""));
        assert!(Config::from_toml(&ok, "t").is_ok());

        for url in [
            "http://localhost:8080/v1\\r\\nX: y",
            "http://local\\nhost:8080/v1",
            "http://localhost:8080/v1 x",
            "http://localhost:8080/v\\u0000",
            "http://localhost:8080/vé",
            "http://lòcalhost:8080/v1",
        ] {
            refused(
                "\"http://localhost:8080/v1\"",
                &format!("\"{url}\""),
                "provider[1].base_url",
                "",
            );
        }

        let with_version = |v: &str| {
            GOOD.replace(
                "kind = \"anthropic\"",
                &format!("kind = \"anthropic\"\nanthropic_version = \"{v}\""),
            )
        };
        for v in ["2023\\r\\nX: y", "", " 2023-06-01", "2023\\u0000"] {
            let e = Config::from_toml(&with_version(v), "t").unwrap_err();
            assert_eq!(e.path, "provider[0].anthropic_version", "{v:?}");
        }
        assert!(Config::from_toml(&with_version("2023-06-01"), "t").is_ok());
    }
}
