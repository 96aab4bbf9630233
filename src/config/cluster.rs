//! `[cluster]`: the node id, the shared stores' URLs (checked here for shape; reached at
//! `serve` start by [`crate::cluster`]), and what happens while Redis is down.

use super::compiler::{Compiler, ConfigError};
use super::raw;
use crate::cluster::{
    BudgetsWhenDown, LimitsWhenDown, Settings, StoreUrl, POSTGRES_BUFFER_RANGE,
    REDIS_TIMEOUT_MS_RANGE,
};
use toml::Spanned;

/// Largest store URL accepted.
const MAX_URL_BYTES: usize = 2048;

impl Compiler<'_> {
    pub(super) fn cluster(
        &self,
        raw: Option<&Spanned<raw::RawCluster>>,
    ) -> Result<Settings, ConfigError> {
        let mut s = Settings::local();
        let Some(section) = raw else {
            return Ok(s);
        };
        let c = section.get_ref();
        s.configured = true;
        if let Some(id) = &c.node_id {
            if !crate::cluster::is_node_id(id.get_ref()) {
                return Err(self.err(
                    id.span(),
                    "cluster.node_id",
                    format!(
                        "{:?}: a node id is 1 to {} of A-Z a-z 0-9 . _ -",
                        id.get_ref(),
                        crate::cluster::MAX_NODE_ID_BYTES
                    ),
                ));
            }
            s.node_id = id.get_ref().clone();
        }
        s.redis = self.store_url(section, &c.redis, &c.redis_env, "redis", check_redis_url)?;
        s.postgres = self.store_url(
            section,
            &c.postgres,
            &c.postgres_env,
            "postgres",
            check_postgres_url,
        )?;
        if let Some(n) = &c.postgres_buffer_records {
            if !POSTGRES_BUFFER_RANGE.contains(n.get_ref()) {
                return Err(self.err(
                    n.span(),
                    "cluster.postgres_buffer_records",
                    format!(
                        "must be {} to {}",
                        POSTGRES_BUFFER_RANGE.start(),
                        POSTGRES_BUFFER_RANGE.end()
                    ),
                ));
            }
            s.postgres_buffer_records = *n.get_ref();
        }
        if let Some(ms) = &c.redis_timeout_ms {
            if !REDIS_TIMEOUT_MS_RANGE.contains(ms.get_ref()) {
                return Err(self.err(
                    ms.span(),
                    "cluster.redis_timeout_ms",
                    format!(
                        "must be {} to {}",
                        REDIS_TIMEOUT_MS_RANGE.start(),
                        REDIS_TIMEOUT_MS_RANGE.end()
                    ),
                ));
            }
            s.redis_timeout = std::time::Duration::from_millis(*ms.get_ref());
        }
        if let Some(v) = &c.limits_when_redis_down {
            s.limits_when_down = match v.get_ref().as_str() {
                "local" => LimitsWhenDown::Local,
                "closed" => LimitsWhenDown::Closed,
                other => {
                    return Err(self.err(
                        v.span(),
                        "cluster.limits_when_redis_down",
                        format!("{other:?}: expected \"local\" or \"closed\""),
                    ))
                }
            };
        }
        if let Some(v) = &c.budgets_when_redis_down {
            s.budgets_when_down = match v.get_ref().as_str() {
                "closed" => BudgetsWhenDown::Closed,
                "open" => BudgetsWhenDown::Open,
                other => {
                    return Err(self.err(
                        v.span(),
                        "cluster.budgets_when_redis_down",
                        format!("{other:?}: expected \"closed\" or \"open\""),
                    ))
                }
            };
        }
        if let Some(n) = &c.expected_nodes {
            if !(1..=1024).contains(n.get_ref()) {
                return Err(self.err(n.span(), "cluster.expected_nodes", "must be 1 to 1024"));
            }
            s.expected_nodes = *n.get_ref();
        }
        // By default a node is unready only for a store whose outage makes it refuse what it
        // would otherwise serve: Redis when limits refuse while it is down. Every node shares
        // a store, so requiring one turns the whole fleet unready at the same moment; with
        // limits on local shares, budgets on their leases and custody buffered, serving
        // through an outage is the safer default.
        s.ready_requires_redis = s.redis.is_some() && s.limits_when_down == LimitsWhenDown::Closed;
        s.ready_requires_postgres = false;
        if let Some(list) = &c.ready_requires {
            s.ready_requires_redis = false;
            s.ready_requires_postgres = false;
            for (i, name) in list.iter().enumerate() {
                let path = format!("cluster.ready_requires[{i}]");
                let (wanted, configured) = match name.get_ref().as_str() {
                    "redis" => (&mut s.ready_requires_redis, s.redis.is_some()),
                    "postgres" => (&mut s.ready_requires_postgres, s.postgres.is_some()),
                    other => {
                        return Err(self.err(
                            name.span(),
                            path,
                            format!("{other:?}: expected \"redis\" or \"postgres\""),
                        ))
                    }
                };
                if !configured {
                    return Err(self.err(
                        name.span(),
                        path,
                        format!("{:?} is not configured in [cluster]", name.get_ref()),
                    ));
                }
                *wanted = true;
            }
        }
        Ok(s)
    }

    /// A store's URL from `key` or `key_env` (not both), its shape checked by `check`.
    fn store_url(
        &self,
        section: &Spanned<raw::RawCluster>,
        url: &Option<Spanned<String>>,
        env: &Option<Spanned<String>>,
        key: &str,
        check: fn(&str) -> Result<(), String>,
    ) -> Result<Option<StoreUrl>, ConfigError> {
        let (value, span, path) = match (url, env) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => {
                return Err(self.err(
                    section.span(),
                    format!("cluster.{key}"),
                    format!("set `{key}` or `{key}_env`, not both"),
                ))
            }
            (Some(u), None) => (u.get_ref().clone(), u.span(), format!("cluster.{key}")),
            (None, Some(var)) => {
                let path = format!("cluster.{key}_env");
                match std::env::var(var.get_ref()) {
                    Ok(v) if !v.is_empty() => (v, var.span(), path),
                    _ => {
                        return Err(self.err(
                            var.span(),
                            path,
                            format!("environment variable {} is not set", var.get_ref()),
                        ))
                    }
                }
            }
        };
        if value.len() > MAX_URL_BYTES || value.chars().any(char::is_control) {
            return Err(self.err(
                span,
                path,
                format!("a URL of at most {MAX_URL_BYTES} bytes, no control characters"),
            ));
        }
        if let Err(reason) = check(&value) {
            return Err(self.err(span, path, reason));
        }
        let line = self.err(span, "", "").line;
        Ok(Some(StoreUrl {
            url: value,
            file: self.file.to_owned(),
            line,
            path,
        }))
    }
}

fn check_redis_url(url: &str) -> Result<(), String> {
    if url.starts_with("rediss://") {
        return Err(
            "rediss:// (TLS) is not supported: reach Redis over a private network or \
             a local TLS tunnel with redis://"
                .into(),
        );
    }
    if !(url.starts_with("redis://")
        || url.starts_with("unix://")
        || url.starts_with("redis+unix://"))
    {
        return Err("expected redis://[:password@]host[:port][/db] or unix:///path".into());
    }
    redis::parse_redis_url(url)
        .map(|_| ())
        .ok_or_else(|| "not a valid Redis URL".into())
}

fn check_postgres_url(url: &str) -> Result<(), String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err("expected postgres://user[:password]@host[:port]/database".into());
    }
    let config: postgres::Config = url
        .parse()
        .map_err(|e| format!("not a valid PostgreSQL URL: {e}"))?;
    if config.get_hosts().is_empty() {
        return Err("names no host".into());
    }
    if !matches!(
        config.get_ssl_mode(),
        postgres::config::SslMode::Disable | postgres::config::SslMode::Prefer
    ) {
        return Err(
            "sslmode other than disable or prefer is not supported: reach PostgreSQL \
             over a private network or a local TLS tunnel"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::testing::GOOD;
    use crate::config::Config;

    fn with(section: &str) -> Result<Config, crate::config::ConfigError> {
        Config::from_toml(&format!("{GOOD}\n[cluster]\n{section}\n"), "t.toml")
    }

    #[test]
    fn cluster_settings() {
        let c = Config::from_toml(GOOD, "t.toml").unwrap();
        assert!(!c.cluster.configured);
        assert!(c.cluster.redis.is_none());
        let c = with(
            "node_id = \"gw-a\"\nredis = \"redis://:pw@127.0.0.1:6379/2\"\n\
             postgres = \"postgres://rw:pw@127.0.0.1:5432/rw\"\nbudgets_when_redis_down = \"open\"\n\
             [responses.store]\nenabled = false",
        )
        .unwrap();
        assert_eq!(c.cluster.node_id, "gw-a");
        let redis = c.cluster.redis.as_ref().unwrap();
        assert_eq!(redis.redacted(), "redis://:***@127.0.0.1:6379/2");
        assert_eq!(redis.path, "cluster.redis");
        assert!(!c.cluster.ready_requires_redis && !c.cluster.ready_requires_postgres);
        assert_eq!(
            c.cluster.budgets_when_down,
            crate::cluster::BudgetsWhenDown::Open
        );
        assert!(!format!("{c:?}").contains(":pw@"), "no password in Debug");
        let c = with(
            "redis = \"redis://127.0.0.1\"\nlimits_when_redis_down = \"closed\"\n\
             postgres = \"postgres://u@h/db\"\nready_requires = [\"postgres\", \"redis\"]\n\
             [responses.store]\nenabled = false",
        )
        .unwrap();
        assert!(c.cluster.ready_requires_redis && c.cluster.ready_requires_postgres);
    }

    #[test]
    fn cluster_errors_name_the_key() {
        for (section, path, reason) in [
            ("node_id = \"a b\"", "cluster.node_id", "a node id is"),
            ("redis = \"http://x\"", "cluster.redis", "expected redis://"),
            ("redis = \"rediss://x\"", "cluster.redis", "TLS"),
            (
                "postgres = \"mysql://x\"",
                "cluster.postgres",
                "expected postgres://",
            ),
            (
                "postgres = \"postgres://u@h/db?sslmode=require\"",
                "cluster.postgres",
                "sslmode",
            ),
            (
                "redis_env = \"RINGWAY_TEST_UNSET_VAR\"",
                "cluster.redis_env",
                "not set",
            ),
            (
                "postgres_buffer_records = 5",
                "cluster.postgres_buffer_records",
                "1000 to",
            ),
            (
                "limits_when_redis_down = \"open\"",
                "cluster.limits_when_redis_down",
                "expected",
            ),
            (
                "ready_requires = [\"redis\"]",
                "cluster.ready_requires[0]",
                "not configured",
            ),
            ("expected_nodes = 0", "cluster.expected_nodes", "1 to 1024"),
        ] {
            let e = with(section).unwrap_err();
            assert_eq!(e.path, path, "{section}");
            assert!(e.message.contains(reason), "{section}: {}", e.message);
            assert!(e.line.is_some(), "{section}");
        }
    }
}
