//! `[tracing]`: OTLP/HTTP trace export (the endpoint, its headers, gzip, sampling, the service
//! name, propagation to providers, and the routes whose content is exported, with those that
//! say `trace_content = true` themselves). Compiled into
//! [`crate::trace::Settings`]; a reload may change any of it.

use std::sync::Arc;

use toml::Spanned;

use super::compiler::{Compiler, ConfigError};
use super::raw::{RawRoute, RawTracing};
use crate::trace::Settings;

/// Most export headers.
const MAX_HEADERS: usize = 32;
/// Longest `service_name`.
const MAX_SERVICE_NAME_BYTES: usize = 256;
/// Longest export header value.
const MAX_HEADER_VALUE_BYTES: usize = 4096;

impl Compiler<'_> {
    /// `[tracing]`: None when absent or `enabled = false`.
    pub(super) fn tracing(
        &self,
        raw: Option<&Spanned<RawTracing>>,
        raw_routes: &[Spanned<RawRoute>],
        routes: &crate::routing::Table,
    ) -> Result<Option<Arc<Settings>>, ConfigError> {
        let Some(section) = raw else {
            return Ok(None);
        };
        let t = section.get_ref();
        if t.enabled == Some(false) {
            return Ok(None);
        }
        let Some(endpoint) = &t.endpoint else {
            return Err(self.err(
                section.span(),
                "tracing.endpoint",
                "required: the OTLP/HTTP traces URL, e.g. \"http://127.0.0.1:4318/v1/traces\"",
            ));
        };
        let url = crate::credentials::fetch::Url::parse(endpoint.get_ref())
            .map_err(|e| self.err(endpoint.span(), "tracing.endpoint", e))?;
        let mut headers = Vec::new();
        if let Some(h) = &t.headers {
            if h.get_ref().len() > MAX_HEADERS {
                return Err(self.err(
                    h.span(),
                    "tracing.headers",
                    format!("at most {MAX_HEADERS} headers"),
                ));
            }
            for (name, value) in h.get_ref() {
                let path = format!("tracing.headers.{name}");
                if !crate::http1::is_token(name.as_bytes()) {
                    return Err(self.err(value.span(), path, "not a header name"));
                }
                let lower = name.to_ascii_lowercase();
                if matches!(
                    lower.as_str(),
                    "host"
                        | "content-length"
                        | "content-type"
                        | "content-encoding"
                        | "connection"
                        | "transfer-encoding"
                ) {
                    return Err(self.err(value.span(), path, "set by the exporter itself"));
                }
                let v = value.get_ref();
                if v.len() > MAX_HEADER_VALUE_BYTES
                    || !crate::http1::is_valid_field_value(v.as_bytes())
                {
                    return Err(self.err(
                        value.span(),
                        path,
                        format!("a header value of at most {MAX_HEADER_VALUE_BYTES} bytes, no control characters"),
                    ));
                }
                headers.push((lower, v.clone()));
            }
        }
        let sample_ratio = match &t.sample_ratio {
            None => 1.0,
            Some(r) if (0.0..=1.0).contains(r.get_ref()) => *r.get_ref(),
            Some(r) => {
                return Err(self.err(
                    r.span(),
                    "tracing.sample_ratio",
                    format!("{}: must be from 0.0 to 1.0", r.get_ref()),
                ))
            }
        };
        let service_name = match &t.service_name {
            None => "ringway".to_owned(),
            Some(s) => {
                let v = s.get_ref();
                if v.is_empty()
                    || v.len() > MAX_SERVICE_NAME_BYTES
                    || v.chars().any(char::is_control)
                {
                    return Err(self.err(
                        s.span(),
                        "tracing.service_name",
                        format!("1 to {MAX_SERVICE_NAME_BYTES} bytes, no control characters"),
                    ));
                }
                v.clone()
            }
        };
        let mut content_routes = Vec::new();
        for (i, r) in t.content_routes.iter().flatten().enumerate() {
            let name = r.get_ref();
            let known = name == crate::metrics::DIRECT_ROUTE_LABEL
                || routes.routes().iter().any(|route| &route.model == name);
            if !known {
                return Err(self.err(
                    r.span(),
                    format!("tracing.content_routes[{i}]"),
                    format!("{name:?} is not a route's name (nor \"direct\")"),
                ));
            }
            content_routes.push(name.clone());
        }
        // `[[route]] trace_content = true` opts a route in as well.
        for r in raw_routes {
            let name = r.get_ref().model.get_ref();
            if r.get_ref().trace_content == Some(true) && !content_routes.contains(name) {
                content_routes.push(name.clone());
            }
        }
        Ok(Some(Arc::new(Settings {
            endpoint: endpoint.get_ref().clone(),
            url,
            headers,
            gzip: t.gzip.unwrap_or(false),
            sample_ratio,
            service_name,
            propagate: t.propagate.unwrap_or(false),
            content_routes,
        })))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::testing::GOOD;
    use crate::config::Config;

    fn with(t: &str) -> Result<Config, crate::config::ConfigError> {
        Config::from_toml(&format!("{GOOD}\n[tracing]\n{t}\n"), "t.toml")
    }

    #[test]
    fn tracing_settings_compile() {
        assert!(Config::from_toml(GOOD, "t.toml").unwrap().tracing.is_none());
        let c = with(
            "endpoint = \"https://otel.example:4318/v1/traces\"\nheaders = { Authorization = \"Bearer x\" }\ngzip = true\nsample_ratio = 0.25\nservice_name = \"gw\"\npropagate = true",
        )
        .unwrap();
        let t = c.tracing.unwrap();
        assert!(t.url.tls);
        assert_eq!(t.url.port, 4318);
        assert_eq!(
            t.headers,
            [("authorization".to_owned(), "Bearer x".to_owned())]
        );
        assert!(t.gzip && t.propagate);
        assert_eq!(t.sample_ratio, 0.25);
        assert_eq!(t.service_name, "gw");
        assert!(with("enabled = false").unwrap().tracing.is_none());
    }

    #[test]
    fn a_route_opts_in_to_content_by_either_form() {
        let two = GOOD.replace(
            "targets = [\"a/claude-x\", \"o/gpt-y\"]",
            "targets = [\"a/claude-x\", \"o/gpt-y\"]\ntrace_content = true\n\n[[route]]\nmodel = \"slow\"\ntargets = [\"o/gpt-z\"]\ntrace_content = false\n\n[[route]]\nmodel = \"both\"\ntargets = [\"o/gpt-w\"]\ntrace_content = true",
        );
        let c = Config::from_toml(
            &format!("{two}\n[tracing]\nendpoint = \"http://x\"\ncontent_routes = [\"both\", \"direct\"]\n"),
            "t.toml",
        )
        .unwrap();
        let t = c.tracing.unwrap();
        assert_eq!(t.content_routes, ["both", "direct", "fast"]);
        assert!(t.content_for(Some("fast")) && !t.content_for(Some("slow")));
        crate::config::testing::refused(
            "targets = [\"a/claude-x\", \"o/gpt-y\"]",
            "targets = [\"a/claude-x\", \"o/gpt-y\"]\ntrace_content = \"yes\"",
            "route[0].trace_content",
            "expected true or false",
        );
    }

    #[test]
    fn bad_tracing_settings_name_the_key() {
        let lines = GOOD.lines().count();
        for (t, path) in [
            (
                "endpoint = \"http://x\"\nsample_ratio = 1.5",
                "tracing.sample_ratio",
            ),
            ("gzip = true", "tracing.endpoint"),
            ("endpoint = \"ftp://x/v1/traces\"", "tracing.endpoint"),
            (
                "endpoint = \"http://x\"\nheaders = { \"a b\" = \"1\" }",
                "tracing.headers.a b",
            ),
            (
                "endpoint = \"http://x\"\nheaders = { host = \"1\" }",
                "tracing.headers.host",
            ),
            (
                "endpoint = \"http://x\"\nservice_name = \"\"",
                "tracing.service_name",
            ),
            (
                "endpoint = \"http://x\"\ncontent_routes = [\"nope\"]",
                "tracing.content_routes[0]",
            ),
        ] {
            let e = with(t).unwrap_err();
            assert_eq!(e.path, path, "{t}: {e}");
            assert!(e.line.unwrap() > lines, "{e}");
        }
        let e = with("sample_ratio = -0.1\nendpoint = \"http://x\"").unwrap_err();
        assert_eq!(e.line, Some(lines + 3), "{e}");
        assert!(with("endpont = \"http://x\"").is_err());
    }
}
