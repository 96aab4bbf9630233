//! The one process-wide thread that schedules cloud credential fetches: it owns the schedule
//! of refresh times and starts every fetch, each on a short-lived thread of its own (so a slow
//! or silent endpoint holds up only its own credential), at most one in flight per credential;
//! workers reach it by a bounded channel and never wait on it except through a [`Pending`]
//! they may give up on.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use super::{Credential, Held, Secret};
use crate::offload::{Pending, Reply};

/// Longest wait before a held credential is fetched again, whatever its expiry says.
const MAX_REFRESH_WAIT: Duration = Duration::from_secs(24 * 3600);
/// Requests the refresher's channel holds.
const CHANNEL_BOUND: usize = 1024;
/// Longest the thread sleeps with nothing scheduled (it wakes for messages at once anyway).
const IDLE: Duration = Duration::from_secs(3600);

type Answer = Result<Arc<Secret>, String>;

enum Msg {
    /// A new credential: fetch it now, then on its schedule.
    Register(u64, Weak<Credential>),
    /// Someone waits for a secret newer than generation `seen`.
    Want {
        id: u64,
        seen: u64,
        reply: Reply<Answer>,
    },
    /// A fetch started at `started` (wall clock `at`) ended.
    Fetched {
        id: u64,
        started: Instant,
        at: SystemTime,
        outcome: Result<(Secret, Option<SystemTime>), String>,
    },
}

struct Entry {
    cred: Weak<Credential>,
    /// When to fetch next (None: not scheduled).
    next: Option<Instant>,
    backoff: Duration,
    waiters: Vec<Reply<Answer>>,
    /// A fetch runs: nothing else starts until it ends.
    in_flight: bool,
    /// When the last fetch ended: waiters start the next one no sooner than `backoff_start`
    /// after it, so a cloud refusing every fresh token gets a fetch per backoff, not one per
    /// refused request.
    last_done: Option<Instant>,
    backoff_start: Duration,
}

impl Entry {
    /// When this entry wants its next fetch (None: nothing until a message comes).
    fn due(&self, now: Instant) -> Option<Instant> {
        if self.in_flight {
            return None;
        }
        if self.waiters.is_empty() {
            return self.next;
        }
        Some(
            self.last_done
                .and_then(|t| t.checked_add(self.backoff_start))
                .unwrap_or(now),
        )
    }
}

fn sender() -> Result<&'static SyncSender<Msg>, String> {
    static TX: OnceLock<Result<SyncSender<Msg>, String>> = OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::sync_channel(CHANNEL_BOUND);
        std::thread::Builder::new()
            .name("ringway-credentials".into())
            .spawn(move || run(&rx))
            .map_err(|e| format!("cannot start the credentials thread: {e}"))?;
        Ok(tx)
    })
    .as_ref()
    .map_err(Clone::clone)
}

fn send(msg: Msg) -> Result<(), String> {
    match sender()?.try_send(msg) {
        Ok(()) => Ok(()),
        Err(TrySendError::Full(_)) => Err("the credentials refresher is overloaded".into()),
        Err(TrySendError::Disconnected(_)) => Err("the credentials refresher is gone".into()),
    }
}

/// Put `cred` on the schedule, its first fetch now.
pub(super) fn register(cred: &Arc<Credential>) -> Result<(), String> {
    send(Msg::Register(cred.id, Arc::downgrade(cred)))
}

/// A secret newer than the one held now, once fetched.
pub(super) fn want(cred: &Credential) -> Result<Pending<Answer>, String> {
    let (pending, reply, _) = Pending::new();
    send(Msg::Want {
        id: cred.id,
        seen: cred.generation.load(std::sync::atomic::Ordering::Acquire),
        reply,
    })?;
    Ok(pending)
}

fn run(rx: &Receiver<Msg>) {
    let mut entries: HashMap<u64, Entry> = HashMap::new();
    loop {
        let now = Instant::now();
        let wait = entries
            .values()
            .filter_map(|e| e.due(now))
            .min()
            .map_or(IDLE, |t| t.saturating_duration_since(now));
        match rx.recv_timeout(wait) {
            Ok(m) => take(&mut entries, m),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        while let Ok(m) = rx.try_recv() {
            take(&mut entries, m);
        }
        // A dropped credential (config reload) is forgotten.
        entries.retain(|_, e| e.cred.strong_count() > 0);
        let now = Instant::now();
        let due: Vec<u64> = entries
            .iter()
            .filter(|(_, e)| e.due(now).is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(e) = entries.get_mut(&id) {
                start_fetch(id, e);
            }
        }
    }
}

fn take(entries: &mut HashMap<u64, Entry>, m: Msg) {
    match m {
        Msg::Register(id, cred) => {
            let backoff = cred
                .upgrade()
                .map_or(Duration::from_secs(1), |c| c.tuning.backoff_start);
            entries.insert(
                id,
                Entry {
                    cred,
                    next: Some(Instant::now()),
                    backoff,
                    waiters: Vec::new(),
                    in_flight: false,
                    last_done: None,
                    backoff_start: backoff,
                },
            );
        }
        Msg::Fetched {
            id,
            started,
            at,
            outcome,
        } => {
            if let Some(e) = entries.get_mut(&id) {
                e.in_flight = false;
                e.last_done = Some(Instant::now());
                publish(e, outcome, started, at);
            }
        }
        Msg::Want { id, seen, reply } => {
            let Some(e) = entries.get_mut(&id) else {
                let _ = reply.send(Err("credential not registered".into()));
                return;
            };
            let Some(cred) = e.cred.upgrade() else {
                return;
            };
            // A fetch finished since the asker looked: that is the fresh secret it wants.
            if cred.generation.load(std::sync::atomic::Ordering::Acquire) > seen {
                if let Some(h) = cred.held.load().as_ref() {
                    let _ = reply.send(Ok(h.secret.clone()));
                    return;
                }
            }
            e.waiters.push(reply);
        }
    }
}

/// Start fetching one credential on a thread of its own; its outcome comes back as
/// [`Msg::Fetched`].
fn start_fetch(id: u64, e: &mut Entry) {
    let Some(cred) = e.cred.upgrade() else {
        e.waiters.clear();
        return;
    };
    e.in_flight = true;
    e.next = None;
    let started = Instant::now();
    let at = SystemTime::now();
    let spawned = std::thread::Builder::new()
        .name("ringway-credential-fetch".into())
        .spawn(move || {
            let outcome = fetch(&cred, at);
            drop(cred);
            // Blocking is fine here (this thread does nothing else), and the refresher must
            // hear the end of every fetch it started.
            if let Ok(tx) = sender() {
                let _ = tx.send(Msg::Fetched {
                    id,
                    started,
                    at,
                    outcome,
                });
            }
        });
    if let Err(err) = spawned {
        e.in_flight = false;
        publish(
            e,
            Err(format!("cannot start a fetch thread: {err}")),
            started,
            at,
        );
    }
}

/// One fetch of `cred`'s source, keys that are dead on arrival counted as a failure.
fn fetch(cred: &Credential, now: SystemTime) -> Result<(Secret, Option<SystemTime>), String> {
    cred.source.fetch(now).and_then(|(secret, expires)| {
        // Keys that are dead on arrival would be fetched again at once, forever.
        match expires {
            Some(exp) if exp <= SystemTime::now() + cred.tuning.margin => {
                let mut at = Vec::new();
                crate::calendar::rfc3339_millis(&mut at, exp);
                Err(format!(
                    "{} gave credentials that expire at {}",
                    cred.source_name,
                    String::from_utf8_lossy(&at)
                ))
            }
            _ => Ok((secret, expires)),
        }
    })
}

/// Publish a fetch's outcome, answer its waiters, schedule the next fetch.
fn publish(
    e: &mut Entry,
    outcome: Result<(Secret, Option<SystemTime>), String>,
    started: Instant,
    now: SystemTime,
) {
    let Some(cred) = e.cred.upgrade() else {
        e.waiters.clear();
        return;
    };
    let waiters = std::mem::take(&mut e.waiters);
    match outcome {
        Ok((secret, expires)) => {
            let secret = Arc::new(secret);
            cred.held
                .store(Some(Arc::new(Held::new(secret.clone(), expires))));
            cred.failure.store(None);
            cred.generation
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            for w in waiters {
                let _ = w.send(Ok(secret.clone()));
            }
            e.backoff = cred.tuning.backoff_start;
            e.next = expires.map(|exp| {
                // A far-off expiry (a hostile or odd endpoint) is looked at again within a day.
                let life = exp
                    .duration_since(now)
                    .unwrap_or_default()
                    .min(MAX_REFRESH_WAIT);
                let lead = cred.tuning.lead.min(life / 2);
                // Never sooner than a failure's retry would be.
                let wait = life.saturating_sub(lead).max(cred.tuning.backoff_start);
                started.checked_add(wait).unwrap_or(started)
            });
        }
        Err(why) => {
            crate::log::warn(format_args!(
                "provider `{}`: credential fetch failed: {why}",
                cred.provider
            ));
            cred.failure.store(Some(Arc::new(why.clone())));
            for w in waiters {
                let _ = w.send(Err(format!("provider `{}`: {why}", cred.provider)));
            }
            e.next = Some(Instant::now() + e.backoff);
            e.backoff = (e.backoff * 2).min(cred.tuning.backoff_max);
        }
    }
}
