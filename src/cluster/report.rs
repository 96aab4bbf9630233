//! What a node says about itself to a balancer and a scraper: the `/readyz` verdict with the
//! shared stores' state, and the cluster series of `/metrics`. Pure functions of the config
//! snapshot and the process's [`Health`], so that both are tested by flipping the flags.

use std::fmt::Write as _;

use super::{Health, Settings, StoreHealth};

/// Why the node is (not) ready, in the order they win.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A drain began: the balancer must stop sending here.
    Draining,
    /// Not every worker listens yet.
    Starting,
    /// A store the config requires (`ready_requires`) is unreachable.
    StoresDown { redis: bool, postgres: bool },
    /// Serving.
    Ready,
}

/// The stores a node may use, with their label and flags, in a fixed order.
fn stores(health: &Health) -> [(&'static str, &StoreHealth); 2] {
    [("redis", &health.redis), ("postgres", &health.postgres)]
}

/// The readiness verdict. A store counts only once its helper thread marked it configured
/// (`set_configured`): before that nothing has tried to reach it.
pub fn verdict(
    draining: bool,
    workers_ready: usize,
    workers: usize,
    cluster: &Settings,
    health: &Health,
) -> Verdict {
    if draining {
        return Verdict::Draining;
    }
    if workers_ready < workers {
        return Verdict::Starting;
    }
    let down = |required: bool, s: &StoreHealth| required && s.configured() && !s.up();
    let redis = down(cluster.ready_requires_redis, &health.redis);
    let postgres = down(cluster.ready_requires_postgres, &health.postgres);
    if redis || postgres {
        return Verdict::StoresDown { redis, postgres };
    }
    Verdict::Ready
}

/// The `/readyz` answer for `v`: its status, and a body whose first line is the verdict
/// (`ready`, `starting`, `draining`, `redis unreachable`, …) followed by `STORE: up|down` for
/// every configured store, so that `curl` shows an operator why.
pub fn readyz(v: Verdict, health: &Health) -> (u16, String) {
    let (status, first) = match v {
        Verdict::Ready => (200, "ready"),
        Verdict::Starting => (503, "starting"),
        Verdict::Draining => (503, "draining"),
        Verdict::StoresDown {
            redis: true,
            postgres: true,
        } => (503, "redis and postgres unreachable"),
        Verdict::StoresDown { redis: true, .. } => (503, "redis unreachable"),
        Verdict::StoresDown { .. } => (503, "postgres unreachable"),
    };
    let mut body = String::with_capacity(64);
    body.push_str(first);
    body.push('\n');
    for (name, s) in stores(health) {
        if s.configured() {
            let state = if s.up() { "up" } else { "down" };
            let _ = writeln!(body, "{name}: {state}");
        }
    }
    (status, body)
}

/// The cluster series, appended to a scrape: the node's id as an info gauge, and for each
/// configured store whether it is reachable and how often that changed.
pub fn render_metrics(out: &mut String, node_id: &str, health: &Health) {
    out.push_str(
        "# HELP ringway_node_info This node's id ([cluster] node_id, default the host name).\n",
    );
    out.push_str("# TYPE ringway_node_info gauge\n");
    // A node id is A-Z a-z 0-9 . _ - only (checked when the config loads): no escaping needed.
    let _ = writeln!(out, "ringway_node_info{{node=\"{node_id}\"}} 1");
    out.push_str(
        "# HELP ringway_cluster_store_up Whether the last call to a shared store reached it (1) or not (0).\n",
    );
    out.push_str("# TYPE ringway_cluster_store_up gauge\n");
    for (name, s) in stores(health) {
        if s.configured() {
            let _ = writeln!(
                out,
                "ringway_cluster_store_up{{store=\"{name}\"}} {}",
                u8::from(s.up())
            );
        }
    }
    out.push_str(
        "# HELP ringway_cluster_store_state_changes_total Times a shared store went down or came back.\n",
    );
    out.push_str("# TYPE ringway_cluster_store_state_changes_total counter\n");
    for (name, s) in stores(health) {
        if s.configured() {
            let _ = writeln!(
                out,
                "ringway_cluster_store_state_changes_total{{store=\"{name}\"}} {}",
                s.changes()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings requiring both stores (as `[cluster]` with both URLs does by default).
    fn requiring(redis: bool, postgres: bool) -> Settings {
        Settings {
            configured: true,
            ready_requires_redis: redis,
            ready_requires_postgres: postgres,
            ..Settings::local()
        }
    }

    #[test]
    fn draining_and_starting_win_over_the_stores() {
        let h = Health::default();
        h.redis.set_configured(true);
        let s = requiring(true, false);
        assert_eq!(verdict(true, 2, 2, &s, &h), Verdict::Draining);
        assert_eq!(verdict(false, 1, 2, &s, &h), Verdict::Starting);
        let (status, body) = readyz(Verdict::Draining, &h);
        assert_eq!((status, body.as_str()), (503, "draining\nredis: down\n"));
    }

    #[test]
    fn a_required_store_down_is_503_naming_it() {
        let h = Health::default();
        let s = requiring(true, true);
        // Nothing marked configured yet (no helper thread): the stores are not waited for.
        assert_eq!(verdict(false, 2, 2, &s, &h), Verdict::Ready);
        assert_eq!(readyz(Verdict::Ready, &h), (200, "ready\n".to_owned()));

        h.redis.set_configured(true);
        h.postgres.set_configured(true);
        h.postgres.set_up(true);
        let v = verdict(false, 2, 2, &s, &h);
        assert_eq!(
            v,
            Verdict::StoresDown {
                redis: true,
                postgres: false
            }
        );
        assert_eq!(
            readyz(v, &h),
            (
                503,
                "redis unreachable\nredis: down\npostgres: up\n".to_owned()
            )
        );

        h.redis.set_up(true);
        let v = verdict(false, 2, 2, &s, &h);
        assert_eq!(
            readyz(v, &h),
            (200, "ready\nredis: up\npostgres: up\n".to_owned())
        );

        h.redis.set_up(false);
        h.postgres.set_up(false);
        let v = verdict(false, 2, 2, &s, &h);
        assert_eq!(
            readyz(v, &h).1.lines().next(),
            Some("redis and postgres unreachable")
        );
        h.redis.set_up(true);
        let v = verdict(false, 2, 2, &s, &h);
        assert_eq!(
            readyz(v, &h),
            (
                503,
                "postgres unreachable\nredis: up\npostgres: down\n".to_owned()
            )
        );
    }

    /// `ready_requires = ["postgres"]`: Redis down is reported, not waited for; a reload that
    /// changes the list changes the verdict (the settings come from the request's snapshot).
    #[test]
    fn a_store_not_required_is_reported_but_not_waited_for() {
        let h = Health::default();
        h.redis.set_configured(true);
        h.postgres.set_configured(true);
        h.postgres.set_up(true);
        let only_pg = requiring(false, true);
        let v = verdict(false, 2, 2, &only_pg, &h);
        assert_eq!(
            readyz(v, &h),
            (200, "ready\nredis: down\npostgres: up\n".to_owned())
        );
        let both = requiring(true, true);
        assert_eq!(readyz(verdict(false, 2, 2, &both, &h), &h).0, 503);
    }

    #[test]
    fn metrics_name_the_node_and_only_configured_stores() {
        let h = Health::default();
        let mut out = String::new();
        render_metrics(&mut out, "gw-a", &h);
        assert!(
            out.contains("ringway_node_info{node=\"gw-a\"} 1\n"),
            "{out}"
        );
        assert!(!out.contains("store=\""), "{out}");

        h.redis.set_configured(true);
        h.redis.set_up(true);
        h.redis.set_up(false);
        h.redis.set_up(false);
        let mut out = String::new();
        render_metrics(&mut out, "gw-a", &h);
        assert!(
            out.contains("ringway_cluster_store_up{store=\"redis\"} 0\n"),
            "{out}"
        );
        assert!(
            out.contains("ringway_cluster_store_state_changes_total{store=\"redis\"} 2\n"),
            "{out}"
        );
        assert!(!out.contains("postgres"), "{out}");
        h.redis.set_up(true);
        let mut out = String::new();
        render_metrics(&mut out, "gw-a", &h);
        assert!(
            out.contains("ringway_cluster_store_up{store=\"redis\"} 1\n"),
            "{out}"
        );
    }
}
