//! One PostgreSQL connection as a helper thread holds it ([`Link`]): connected with bounded
//! timeouts, reconnected after a failure no sooner than a capped backoff allows (so a thread
//! facing a dead database fails fast instead of waiting out a connect per call), and the
//! process's store health ([`super::health`]) kept from what each connect and call saw, with one
//! log line per change. [`migrate`] brings a component's tables to this build's version at
//! start, under an advisory lock so that nodes starting together do not race.
//!
//! The `postgres` crate runs a current-thread tokio runtime inside each client, and its calls
//! block: a [`Link`] lives only on a helper thread (the custody and responses writers and
//! readers, the start-up probe on the main thread), never on a worker.

use std::time::{Duration, Instant};

use postgres::{Client, NoTls};

use super::StoreUrl;

/// Longest one connect may take (TCP, startup, authentication).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest one statement may run on the server before it is cancelled there.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest sent data may stay unacknowledged before the kernel drops the connection (a
/// database host that vanished mid-call, with no reset to say so).
pub const TCP_USER_TIMEOUT: Duration = Duration::from_secs(10);
/// Wait before the first reconnect after a failure; it doubles per failure up to
/// [`RETRY_MAX`].
pub const RETRY_FIRST: Duration = Duration::from_millis(100);
/// Longest wait between two connect attempts while the database stays unreachable.
pub const RETRY_MAX: Duration = Duration::from_secs(2);
/// Advisory lock held (per transaction) while migrations run: one node migrates at a time.
const MIGRATION_LOCK: i64 = 0x7277_6d69_6772_6174;

/// What a failed call means for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The database could not be reached or dropped the connection, or is shutting down,
    /// overloaded or in a lock wait: worth trying again later with the same data.
    Unreachable(String),
    /// The database refused the statement (a constraint, a type, a bug): trying the same
    /// data again would fail again.
    Refused(String),
}

impl Failure {
    pub fn message(&self) -> &str {
        match self {
            Failure::Unreachable(m) | Failure::Refused(m) => m,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// What a failed call says about the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The connection is gone or the server cannot serve (down, starting, shutting down, out of
    /// resources, a read-only standby after a failover): reconnect after the backoff.
    Lost,
    /// The statement lost a race or ran out of time (statement timeout, deadlock, serialization
    /// failure, a lock not available): the same statement may pass soon, on this connection.
    Busy,
    /// The server refused the statement itself.
    Refused,
}

/// Classify `e` by its SQLSTATE.
pub fn cause(e: &postgres::Error) -> Cause {
    let Some(code) = e.code() else {
        // No SQLSTATE: an IO error, a closed connection, a timeout in the client.
        return Cause::Lost;
    };
    let code = code.code();
    // 08: connection exception; 53: insufficient resources; 57P0x: shutting down or starting;
    // 25006: read-only transaction.
    if code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57P0")
        || code == "25006"
    {
        Cause::Lost
    } else if matches!(code, "57014" | "40001" | "40P01" | "55P03") {
        Cause::Busy
    } else {
        Cause::Refused
    }
}

/// Is PostgreSQL configured and, as its helper threads last saw it, unreachable? A lookup that
/// failed then is answered as busy (503: retry), not as the gateway's fault.
pub fn unreachable() -> bool {
    let h = &super::health().postgres;
    h.configured() && !h.up()
}

/// A connection held by one helper thread, and when it may next try to connect.
pub struct Link {
    config: postgres::Config,
    client: Option<Client>,
    /// No connect attempt before this (after a failed one).
    retry_at: Option<Instant>,
    /// The wait after the next failure.
    backoff: Duration,
    /// Which thread holds it, for the log.
    role: &'static str,
    /// The URL without its password, for the log.
    shown: String,
}

impl Link {
    /// A link to `url` for the thread named by `role` (not connected yet). `read_only` makes
    /// every transaction of the session read-only (the readers: they never write).
    pub fn new(url: &StoreUrl, role: &'static str, read_only: bool) -> Result<Link, String> {
        let mut config: postgres::Config = url
            .url
            .parse()
            .map_err(|e| format!("not a valid PostgreSQL URL: {e}"))?;
        config
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_user_timeout(TCP_USER_TIMEOUT)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30));
        if config.get_application_name().is_none() {
            config.application_name(&format!("ringway {role}"));
        }
        let mut options = config.get_options().unwrap_or_default().to_owned();
        options.push_str(&format!(
            " -c statement_timeout={}",
            STATEMENT_TIMEOUT.as_millis()
        ));
        if read_only {
            options.push_str(" -c default_transaction_read_only=on");
        }
        config.options(options.trim());
        Ok(Link {
            config,
            client: None,
            retry_at: None,
            backoff: RETRY_FIRST,
            role,
            shown: url.redacted(),
        })
    }

    /// The connection, connecting first when there is none. Fails at once (no connect) while
    /// the backoff after a failure runs. The bool says the connection is new (statements
    /// prepared on an earlier one are gone).
    pub fn client(&mut self) -> Result<(&mut Client, bool), Failure> {
        let fresh = match &self.client {
            Some(c) if !c.is_closed() => false,
            _ => {
                self.client = None;
                // Another thread reaching it since ends this one's backoff.
                let others_reach_it = super::health().postgres.up();
                if let Some(at) = self.retry_at.filter(|_| !others_reach_it) {
                    let left = at.saturating_duration_since(Instant::now());
                    if !left.is_zero() {
                        return Err(Failure::Unreachable(format!(
                            "PostgreSQL unreachable; next attempt in {} ms",
                            left.as_millis()
                        )));
                    }
                }
                match self.config.connect(NoTls) {
                    Ok(c) => {
                        self.client = Some(c);
                        self.retry_at = None;
                        self.backoff = RETRY_FIRST;
                        self.mark_up();
                        true
                    }
                    Err(e) => {
                        let f = Failure::Unreachable(format!("cannot connect: {e}"));
                        self.down(&f);
                        return Err(f);
                    }
                }
            }
        };
        match self.client.as_mut() {
            Some(c) => Ok((c, fresh)),
            None => Err(Failure::Unreachable("no connection".into())),
        }
    }

    /// Say what a call that failed with `e` means: a lost connection is dropped (the backoff
    /// starts and the store counts as down); a busy server keeps it, and a retry waits
    /// [`RETRY_FIRST`].
    pub fn failed(&mut self, e: &postgres::Error) -> Failure {
        match cause(e) {
            Cause::Lost => {
                let f = Failure::Unreachable(e.to_string());
                self.client = None;
                self.down(&f);
                f
            }
            Cause::Busy => {
                self.retry_at = Some(Instant::now() + RETRY_FIRST);
                Failure::Unreachable(e.to_string())
            }
            // The server answered: it is up, whatever it thought of the statement.
            Cause::Refused => Failure::Refused(e.to_string()),
        }
    }

    /// A call went through.
    pub fn ok(&mut self) {
        self.retry_at = None;
        self.mark_up();
    }

    /// Is a connect attempt allowed now (no backoff running)?
    pub fn may_try(&self) -> bool {
        self.client.is_some() || self.retry_at.is_none_or(|at| Instant::now() >= at)
    }

    /// How long until a retry is due (zero: now): the backoff after a lost connection, or the
    /// short wait after a busy one.
    pub fn retry_in(&self) -> Duration {
        self.retry_at.map_or(Duration::ZERO, |at| {
            at.saturating_duration_since(Instant::now())
        })
    }

    fn down(&mut self, f: &Failure) {
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(RETRY_MAX);
        if super::health().postgres.set_up(false) {
            crate::log::warn(format_args!(
                "postgres {}: down (seen by the {}): {f}",
                self.shown, self.role
            ));
        }
    }

    fn mark_up(&self) {
        if super::health().postgres.set_up(true) {
            crate::log::info(format_args!(
                "postgres {}: up (seen by the {})",
                self.shown, self.role
            ));
        }
    }
}

/// Bring `component`'s tables to version `steps.len()`: in one transaction, under
/// [`MIGRATION_LOCK`], run the steps past the version the database records (in
/// `ringway_schema`) and record the new one. Idempotent; two nodes starting at once take turns.
/// A database already past this build's version (a newer node migrated it) is left as it is:
/// steps only add, so the older node's statements still work.
pub fn migrate(client: &mut Client, component: &str, steps: &[&str]) -> Result<(), String> {
    let run = |client: &mut Client| -> Result<Option<i32>, postgres::Error> {
        let mut tx = client.transaction()?;
        // The lock waits for another node's migration; bounded, so a stuck one fails the start
        // instead of hanging it.
        tx.batch_execute(&format!(
            "SET LOCAL lock_timeout = {}",
            super::START_PROBE_TIMEOUT.as_millis()
        ))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS ringway_schema (
                component TEXT PRIMARY KEY,
                version   INTEGER NOT NULL
            )",
        )?;
        let have: i32 = tx
            .query_opt(
                "SELECT version FROM ringway_schema WHERE component = $1",
                &[&component],
            )?
            .map_or(Ok(0), |row| row.try_get(0))?;
        let want = i32::try_from(steps.len()).unwrap_or(i32::MAX);
        if have >= want {
            tx.commit()?;
            return Ok((have > want).then_some(have));
        }
        for step in steps.iter().skip(usize::try_from(have).unwrap_or(0)) {
            tx.batch_execute(step)?;
        }
        tx.execute(
            "INSERT INTO ringway_schema (component, version) VALUES ($1, $2)
             ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version",
            &[&component, &want],
        )?;
        tx.commit()?;
        Ok(None)
    };
    match run(client) {
        Ok(None) => Ok(()),
        Ok(Some(newer)) => {
            crate::log::warn(format_args!(
                "postgres: the {component} tables are at version {newer}, newer than this build's {}; using them as they are",
                steps.len()
            ));
            Ok(())
        }
        Err(e) => Err(format!("migrating the {component} tables failed: {e}")),
    }
}

/// Connect `link` now, ignoring any backoff, and run `component`'s migrations: what `serve`
/// does at start, so that an unreachable database or a failed migration refuses the config
/// (`FILE:LINE: cluster.postgres: reason`) instead of starting a node that cannot store.
pub fn open(
    link: &mut Link,
    url: &StoreUrl,
    component: &str,
    steps: &[&str],
) -> Result<(), String> {
    link.retry_at = None;
    let (client, _) = link
        .client()
        .map_err(|f| url.error(format!("cannot reach PostgreSQL: {f}")))?;
    migrate(client, component, steps).map_err(|e| url.error(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> StoreUrl {
        StoreUrl {
            url: s.into(),
            file: "c.toml".into(),
            line: Some(7),
            path: "cluster.postgres".into(),
        }
    }

    /// A closed port: the connect fails at once, the error names the key, and the next call
    /// within the backoff does not even try.
    #[test]
    fn an_unreachable_database_fails_fast_and_backs_off() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let u = url(&format!("postgres://rw@127.0.0.1:{port}/rw"));
        let mut link = Link::new(&u, "test", false).unwrap();
        let e = open(&mut link, &u, "t", &[]).unwrap_err();
        assert!(
            e.starts_with("c.toml:7: cluster.postgres: cannot reach PostgreSQL"),
            "{e}"
        );
        assert!(!link.may_try());
        let started = Instant::now();
        let again = link.client().err().unwrap();
        assert!(matches!(again, Failure::Unreachable(_)), "{again:?}");
        assert!(again.message().contains("next attempt"), "{again}");
        assert!(started.elapsed() < Duration::from_millis(50));
        assert!(link.retry_in() <= RETRY_FIRST * 2);
    }

    #[test]
    fn options_keep_what_the_url_says() {
        let u = url("postgres://rw@db/rw?options=-c%20search_path%3Dgw&application_name=x");
        let link = Link::new(&u, "reader", true).unwrap();
        let opts = link.config.get_options().unwrap();
        assert!(
            opts.starts_with("-c search_path=gw -c statement_timeout="),
            "{opts}"
        );
        assert!(opts.ends_with("default_transaction_read_only=on"), "{opts}");
        assert_eq!(link.config.get_application_name(), Some("x"));
    }
}
