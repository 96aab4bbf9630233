//! The main thread's life once the workers run: it waits for signals and turns them into a
//! config reload (SIGHUP), a graceful drain (SIGTERM, SIGINT; a second one exits at once) and
//! an access-log reopen (SIGUSR1); it keeps the pid file, and flushes the access log and the
//! custody store at exit. Config files are read here, never
//! on a worker.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal};

use super::Running;
use crate::config::{Config, Driver};

/// After a drain's deadline, how long the streams it cut get to write their error events
/// before the process exits.
pub const DRAIN_GRACE: Duration = Duration::from_secs(1);
/// At a drained exit, how long the access log's writer, then the custody store's, may each
/// take to write what they hold.
const EXIT_FLUSH: Duration = Duration::from_secs(2);
/// The same at a second signal, which exits at once: what it can write in a moment.
const EXIT_FLUSH_NOW: Duration = Duration::from_millis(100);
/// How often the drain watcher looks whether every connection has closed.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// The signals the supervisor handles; blocked in every thread so that only it receives them.
fn handled() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGHUP,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGUSR1,
    ] {
        set.add(s);
    }
    set
}

/// Block the handled signals in this thread and every thread it starts afterwards (workers
/// inherit the mask). Call before starting the workers.
pub fn block_signals() -> Result<(), String> {
    handled()
        .thread_block()
        .map_err(|e| format!("cannot block signals: {e}"))
}

/// Command-line values that override the file, on every reload as at start.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<std::net::SocketAddr>,
    /// `--workers`.
    pub workers: Option<usize>,
    /// `--driver`.
    pub driver: Option<Driver>,
    /// `--reuse-port`.
    pub reuse_port: bool,
    /// `--pid-file`.
    pub pid_file: Option<PathBuf>,
}

impl Overrides {
    /// Apply to a freshly loaded config.
    pub fn apply(&self, config: &mut Config) {
        if let Some(l) = self.listen {
            config.server.listen = l;
        }
        if let Some(w) = self.workers {
            config.server.workers = w;
        }
        if let Some(d) = self.driver {
            config.server.driver = d;
        }
        config.server.reuse_port |= self.reuse_port;
        if let Some(p) = &self.pid_file {
            config.server.pid_file = Some(p.clone());
        }
    }
}

/// Write the pid file, if one is configured: to a temporary name, then renamed over it, so a
/// reader never sees it half written.
pub fn write_pid_file(config: &Config) -> Result<(), String> {
    let Some(path) = &config.server.pid_file else {
        return Ok(());
    };
    let mut tmp = path.clone().into_os_string();
    tmp.push(format!(".{}.tmp", std::process::id()));
    std::fs::write(&tmp, format!("{}\n", std::process::id()))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write pid file {}: {e}", path.display()))
}

/// Remove the pid file if it still names this process: after a zero-downtime restart it names
/// the new one, which `ringway reload` must keep finding.
fn remove_pid_file(path: Option<&PathBuf>) {
    let Some(p) = path else { return };
    let ours =
        std::fs::read_to_string(p).is_ok_and(|text| text.trim() == std::process::id().to_string());
    if ours {
        let _ = std::fs::remove_file(p);
    }
}

/// With port sharing on, warn when the kernel will not hand a closing listener's queued
/// connections to the remaining ones (`net.ipv4.tcp_migrate_req`, Linux 5.14+): a drain then
/// stops new handshakes on the old listener before closing it (see `rt::Listener`), and a
/// connection turned away there reaches the new process only when its client sends its SYN
/// again, a second later.
pub fn check_port_handover(config: &Config) {
    if !config.server.reuse_port {
        return;
    }
    if !crate::rt::kernel_migrates_queued() {
        crate::log::warn(format_args!(
            "reuse_port is on but net.ipv4.tcp_migrate_req is not 1: at a restart, a connection \
             that reaches the old process as it stops listening waits a second for the new one, \
             and one whose handshake is still unfinished when it closes is reset \
             (sysctl -w net.ipv4.tcp_migrate_req=1 hands them over at once)"
        ));
    }
}

/// Wait for signals until the process exits. `path` is the config file (None: the embedded
/// default, which has nothing to re-read).
pub fn supervise(
    running: Running,
    config: Arc<Config>,
    path: Option<PathBuf>,
    overrides: Overrides,
) -> ! {
    let pid_file = config.server.pid_file.clone();
    let mut current = config;
    let mut generation = 1u64;
    let draining = Arc::new(AtomicBool::new(false));
    let set = handled();
    loop {
        let signal = match set.wait() {
            Ok(s) => s,
            Err(e) => {
                crate::log::error(format_args!("waiting for signals failed: {e}"));
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        match signal {
            Signal::SIGHUP if draining.load(Ordering::Acquire) => {
                crate::log::warn(format_args!("SIGHUP while draining: not reloading"));
                let asked = running.workers.board.requested();
                running
                    .workers
                    .board
                    .reloaded(asked, &Err("the gateway is draining".into()));
            }
            Signal::SIGHUP => {
                // Every reload asked for until now is answered by this read of the file.
                let asked = running.workers.board.requested();
                let outcome = reload(&current, path.as_ref(), &overrides);
                match outcome {
                    Ok(next) => {
                        generation += 1;
                        let next = Arc::new(next);
                        // Before any worker serves the new keys: they must not run unlimited.
                        running
                            .limiter
                            .reconfigure(&next.keys, next.routing.routes());
                        running.workers.reload(&next, generation);
                        current = next;
                        crate::log::info(format_args!(
                            "config reloaded: generation {generation} sent to {} worker(s)",
                            current.server.workers
                        ));
                        running.workers.board.reloaded(asked, &Ok(generation));
                    }
                    Err(e) => {
                        crate::log::error(format_args!(
                            "reload refused, generation {generation} keeps serving: {e}"
                        ));
                        running.workers.board.reloaded(asked, &Err(e));
                    }
                }
            }
            Signal::SIGTERM | Signal::SIGINT if draining.load(Ordering::Acquire) => {
                let open = running.workers.board.open();
                crate::log::warn(format_args!(
                    "second {signal}: exiting now, {open} connection(s) cut"
                ));
                crate::access_log::flush(EXIT_FLUSH_NOW);
                crate::custody::flush(EXIT_FLUSH_NOW);
                crate::responses_store::flush(EXIT_FLUSH_NOW);
                remove_pid_file(pid_file.as_ref());
                std::process::exit(1);
            }
            Signal::SIGTERM | Signal::SIGINT => {
                draining.store(true, Ordering::Release);
                let timeout = current.server.drain_timeout;
                let deadline = Instant::now() + timeout;
                crate::log::info(format_args!(
                    "{signal}: draining for up to {} ms (send it again to exit now)",
                    timeout.as_millis()
                ));
                running.workers.drain(deadline);
                let board = running.workers.board.clone();
                let pid_path = pid_file.clone();
                let watcher = std::thread::Builder::new()
                    .name("ringway-drain".into())
                    .spawn(move || {
                        let cut_at = deadline + DRAIN_GRACE;
                        loop {
                            if board.all_closed() && board.open() == 0 {
                                crate::log::info(format_args!("drained; exiting"));
                                break;
                            }
                            if Instant::now() >= cut_at {
                                crate::log::warn(format_args!(
                                    "drain time is up: exiting with {} connection(s) still open",
                                    board.open()
                                ));
                                break;
                            }
                            std::thread::sleep(DRAIN_POLL);
                        }
                        // The last requests' lines and records are in the writers' queues.
                        crate::access_log::flush(EXIT_FLUSH);
                        crate::custody::flush(EXIT_FLUSH);
                        crate::responses_store::flush(EXIT_FLUSH);
                        remove_pid_file(pid_path.as_ref());
                        std::process::exit(0);
                    });
                if let Err(e) = watcher {
                    crate::log::error(format_args!("cannot watch the drain ({e}); exiting"));
                    remove_pid_file(pid_file.as_ref());
                    std::process::exit(1);
                }
            }
            Signal::SIGUSR1 => {
                crate::log::info(format_args!("SIGUSR1: reopening the access log"));
                crate::access_log::reopen();
            }
            other => {
                crate::log::debug(format_args!("ignoring {other}"));
            }
        }
    }
}

/// Read, validate and compile the config file again. What only a restart can change (the
/// listen address, worker count, driver, pid file, the access log and custody store) keeps its
/// running value, with a warning.
fn reload(
    current: &Config,
    path: Option<&PathBuf>,
    overrides: &Overrides,
) -> Result<Config, String> {
    let Some(path) = path else {
        return Err("serving the embedded default: there is no config file to re-read".into());
    };
    let mut next = Config::load(path).map_err(|e| e.to_string())?;
    overrides.apply(&mut next);
    keep_restart_only(current, &mut next);
    Ok(next)
}

/// Carry over what a running process cannot change, and the drawn seal key.
fn keep_restart_only(current: &Config, next: &mut Config) {
    let mut kept = Vec::new();
    // The writer threads and their files are set at start.
    if next.custody != current.custody {
        kept.push("custody");
        next.custody.clone_from(&current.custody);
    }
    if next.access_log != current.access_log {
        kept.push("access_log");
        next.access_log.clone_from(&current.access_log);
    }
    // A node's id names it to the other nodes, in request ids and in the rows it wrote: one
    // process, one id.
    if next.cluster.node_id != current.cluster.node_id {
        kept.push("cluster.node_id");
        next.cluster.node_id.clone_from(&current.cluster.node_id);
    }
    // The Redis thread and what its leases do while Redis is down are set at start.
    let (oc, nc) = (&current.cluster, &mut next.cluster);
    if nc.redis != oc.redis
        || nc.redis_timeout != oc.redis_timeout
        || nc.limits_when_down != oc.limits_when_down
        || nc.budgets_when_down != oc.budgets_when_down
        || nc.expected_nodes != oc.expected_nodes
    {
        kept.push("cluster.redis (and the keys about Redis being down)");
        nc.redis.clone_from(&oc.redis);
        nc.redis_timeout = oc.redis_timeout;
        nc.limits_when_down = oc.limits_when_down;
        nc.budgets_when_down = oc.budgets_when_down;
        nc.expected_nodes = oc.expected_nodes;
    }
    // The custody and responses threads hold their PostgreSQL connections from start.
    if next.cluster.postgres != current.cluster.postgres
        || next.cluster.postgres_buffer_records != current.cluster.postgres_buffer_records
    {
        kept.push("cluster.postgres");
        next.cluster.postgres.clone_from(&current.cluster.postgres);
        next.cluster.postgres_buffer_records = current.cluster.postgres_buffer_records;
    }
    let (old, new) = (&current.server, &mut next.server);
    if new.listen != old.listen {
        kept.push("server.listen");
        new.listen = old.listen;
    }
    if new.workers != old.workers {
        kept.push("server.workers");
        new.workers = old.workers;
    }
    if new.driver != old.driver {
        kept.push("server.driver");
        new.driver = old.driver;
    }
    if new.pin_workers != old.pin_workers {
        kept.push("server.pin_workers");
        new.pin_workers = old.pin_workers;
    }
    if new.uring_entries != old.uring_entries {
        kept.push("server.uring_entries");
        new.uring_entries = old.uring_entries;
    }
    if new.reuse_port != old.reuse_port {
        kept.push("server.reuse_port");
        new.reuse_port = old.reuse_port;
    }
    if new.pid_file != old.pid_file {
        kept.push("server.pid_file");
        new.pid_file.clone_from(&old.pid_file);
    }
    if new.plain_listen != old.plain_listen {
        kept.push("server.plain_listen");
        new.plain_listen = old.plain_listen;
    }
    // The listener speaks TLS or not from the start: a new certificate is taken, turning TLS
    // on or off is not (the TLS port would refuse everyone, or a plain one get ClientHellos).
    if new.tls.is_some() != old.tls.is_some() {
        kept.push("server.tls (on or off)");
        new.tls.clone_from(&old.tls);
    }
    if !kept.is_empty() {
        crate::log::warn(format_args!(
            "reload: {} changed in the file but take(s) a restart; the running value(s) stay",
            kept.join(", ")
        ));
    }
    // A key drawn at start seals what clients hold now: a reload that still names no key keeps
    // it, or every sealed item handed out so far would stop opening.
    if next.pii.secret_drawn && current.pii.secret_drawn {
        next.pii.secret.clone_from(&current.pii.secret);
    }
    if next.translate.seal_key_drawn && current.translate.seal_key_drawn {
        next.translate.seal = current.translate.seal.clone();
        for p in &mut next.providers {
            p.translate.seal = Some(current.translate.seal.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[server]\nlisten = \"127.0.0.1:4100\"\nworkers = 2\n\n[[provider]]\nname = \"p\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9\"\n";

    #[test]
    fn a_reload_keeps_what_takes_a_restart_and_the_drawn_seal_key() {
        let current = Config::from_toml(BASE, "a.toml").unwrap();
        let changed = BASE
            .replace("4100", "4200")
            .replace("workers = 2", "workers = 3\nkeepalive_timeout_ms = 5000")
            + "\n[access_log]\nenabled = false\n\n[cluster]\nnode_id = \"other\"\n";
        let mut next = Config::from_toml(&changed, "a.toml").unwrap();
        assert_ne!(next.translate.seal, current.translate.seal, "a fresh draw");
        keep_restart_only(&current, &mut next);
        assert_eq!(next.server.listen, current.server.listen);
        assert_eq!(next.server.workers, 2);
        assert_eq!(next.access_log, current.access_log);
        assert_eq!(next.cluster.node_id, current.cluster.node_id);
        assert!(
            next.cluster.configured,
            "the rest of [cluster] is the new file's"
        );
        assert_eq!(
            next.server.keepalive_timeout,
            Duration::from_secs(5),
            "what a reload may change, changes"
        );
        assert_eq!(next.translate.seal, current.translate.seal);
        assert_eq!(
            next.pii.secret, current.pii.secret,
            "a drawn PII secret is kept too"
        );
        assert_eq!(
            next.providers[0].translate.seal.as_ref(),
            Some(&current.translate.seal)
        );
    }

    #[test]
    fn command_line_values_win_over_the_file() {
        let mut c = Config::from_toml(BASE, "a.toml").unwrap();
        Overrides {
            workers: Some(5),
            reuse_port: true,
            ..Overrides::default()
        }
        .apply(&mut c);
        assert_eq!(c.server.workers, 5);
        assert!(c.server.reuse_port);
    }
}
