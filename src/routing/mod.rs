//! Routing: the route table compiled from config (model → targets), each route's failover
//! policy (retries, backoff, deadlines, breaker, balancing), and the per-worker health that
//! turns a route into the ordered candidates of one request.

pub mod backoff;
pub mod balance;
pub mod breaker;

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub use balance::{Rng, Strategy};
pub use breaker::{Admit, Breaker, BreakerPolicy};

use crate::translate::ThinkingStyle;

/// One `provider/model` target of a route.
#[derive(Clone, Debug)]
pub struct Target {
    /// Index into the config's providers (valid for the snapshot it came from).
    pub provider: usize,
    /// The model name sent upstream.
    pub model: String,
    /// `provider/model`: the target's name in health state and logs.
    pub key: String,
    /// Its metrics label: the key for a route's target, `provider/*` for a model addressed
    /// directly (clients choose those names: one label each would grow without bound).
    pub label: String,
    /// Thinking form for `reasoning_effort`: the target's override, else the provider's.
    pub thinking_style: ThinkingStyle,
    /// Share of first picks under `strategy = "weighted"`.
    pub weight: u32,
}

/// Capabilities a route advertises on `GET /v1/models` (unset = unknown, `null`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Accepts image input.
    pub vision: Option<bool>,
    /// Supports tool calling.
    pub tools: Option<bool>,
    /// Supports extended thinking / reasoning.
    pub thinking: Option<bool>,
    /// Context window in tokens.
    pub context_window: Option<u64>,
    /// Largest output in tokens.
    pub max_output: Option<u64>,
}

/// Default same-target retries.
pub const DEFAULT_RETRIES: u32 = 1;
/// Statuses that move on to a retry or the next target by default.
pub const DEFAULT_RETRY_ON: [u16; 6] = [429, 500, 502, 503, 504, 529];
/// Default first backoff step.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(100);
/// Default largest backoff step.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Default cap on a provider's `retry-after` hint; a longer hint moves on at once.
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(5);
/// Default deadline for getting an answer started (every attempt, backoff and fallback).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// How a route fails over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Order of the targets per request.
    pub strategy: Strategy,
    /// Retries on the same target before moving on (for failures where the provider surely
    /// did not act: refused connections and retryable statuses).
    pub retries: u32,
    /// Statuses that retry or move on.
    pub retry_on: Vec<u16>,
    /// First backoff step.
    pub backoff_base: Duration,
    /// Largest backoff step.
    pub backoff_max: Duration,
    /// Longest `retry-after` honoured; a longer one moves to the next target instead.
    pub max_retry_after: Duration,
    /// Deadline from the request's arrival until its answer starts.
    pub request_timeout: Duration,
    /// Streams: longest wait from the response head to the first content event before the
    /// next target is tried (None: no such deadline; the provider's idle timeout applies).
    pub first_token_timeout: Option<Duration>,
    /// Circuit breaking per target per worker.
    pub breaker: BreakerPolicy,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            strategy: Strategy::Ordered,
            retries: DEFAULT_RETRIES,
            retry_on: DEFAULT_RETRY_ON.to_vec(),
            backoff_base: DEFAULT_BACKOFF_BASE,
            backoff_max: DEFAULT_BACKOFF_MAX,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            first_token_timeout: None,
            breaker: BreakerPolicy::default(),
        }
    }
}

impl Policy {
    /// Does `status` retry or move on?
    pub fn retries_status(&self, status: u16) -> bool {
        self.retry_on.contains(&status)
    }
}

/// A compiled route.
#[derive(Clone, Debug)]
pub struct Route {
    /// Client-facing model name.
    pub model: String,
    /// Targets in config order.
    pub targets: Vec<Target>,
    /// Advertised capabilities.
    pub capabilities: Capabilities,
    /// Failover.
    pub policy: Policy,
}

/// The route table: route names, then `provider/model` addressed directly.
#[derive(Debug, Default)]
pub struct Table {
    routes: Vec<Route>,
    route_index: HashMap<String, usize>,
    /// Provider name → (index, thinking style), for direct `provider/model` names.
    providers: HashMap<String, (usize, ThinkingStyle)>,
    /// The policy of direct `provider/model` requests.
    direct_policy: Policy,
}

/// A model name resolved to its route.
#[derive(Debug)]
pub enum Resolved<'a> {
    /// A configured route.
    Route(&'a Route),
    /// `provider/model` addressed directly: one target, the default policy.
    Direct(Target, &'a Policy),
}

impl Resolved<'_> {
    /// The targets in config order.
    pub fn targets(&self) -> &[Target] {
        match self {
            Resolved::Route(r) => &r.targets,
            Resolved::Direct(t, _) => std::slice::from_ref(t),
        }
    }

    /// The failover policy.
    pub fn policy(&self) -> &Policy {
        match self {
            Resolved::Route(r) => &r.policy,
            Resolved::Direct(_, p) => p,
        }
    }
}

impl Table {
    /// Build from compiled routes (names already checked unique) and the providers' names
    /// with their thinking styles, by index.
    pub fn new(routes: Vec<Route>, providers: Vec<(String, ThinkingStyle)>) -> Table {
        let route_index = routes
            .iter()
            .enumerate()
            .map(|(i, r)| (r.model.clone(), i))
            .collect();
        let providers = providers
            .into_iter()
            .enumerate()
            .map(|(i, (name, style))| (name, (i, style)))
            .collect();
        Table {
            routes,
            route_index,
            providers,
            direct_policy: Policy::default(),
        }
    }

    /// Routes in file order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Route `model`: a route name first, then `PROVIDER/MODEL` or `@PROVIDER/MODEL`.
    pub fn resolve(&self, model: &str) -> Option<Resolved<'_>> {
        if let Some(&i) = self.route_index.get(model) {
            return self.routes.get(i).map(Resolved::Route);
        }
        let bare = model.strip_prefix('@').unwrap_or(model);
        let (provider, upstream_model) = bare.split_once('/')?;
        if upstream_model.is_empty() {
            return None;
        }
        let &(index, thinking_style) = self.providers.get(provider)?;
        Some(Resolved::Direct(
            Target {
                provider: index,
                model: upstream_model.to_owned(),
                key: bare.to_owned(),
                label: format!("{provider}/*"),
                thinking_style,
                weight: 1,
            },
            &self.direct_policy,
        ))
    }
}

/// One target's health on one worker.
#[derive(Default)]
struct TargetHealth {
    breaker: Breaker,
    latency: balance::Ewma,
}

/// Most targets whose health a worker tracks. Route targets are few; models addressed
/// directly are the client's choice, so past this bound new ones go untracked (always
/// admitted, measured as unknown) rather than grow the map without limit.
pub const MAX_TRACKED_TARGETS: usize = 4096;

/// Per-worker health of every target seen, and the worker's PRNG (single thread: `RefCell`).
pub struct Health {
    targets: RefCell<HashMap<String, TargetHealth>>,
    rng: RefCell<Rng>,
}

/// A candidate of one request: the target's index in its route, and whether it goes as a
/// breaker probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Index into the route's targets.
    pub index: usize,
    /// Sent as the half-open probe (or forced: every target was open).
    pub probe: bool,
}

impl Health {
    /// Empty health, the PRNG seeded with `seed`.
    pub fn new(seed: u64) -> Health {
        Health {
            targets: RefCell::new(HashMap::new()),
            rng: RefCell::new(Rng::new(seed)),
        }
    }

    /// The candidates of one request, in the order they will be tried. Targets whose breaker
    /// is open are left out; when every target is open, the one whose cooldown ends first is
    /// tried anyway, as a probe (the request would fail otherwise, and that provider may
    /// well be back).
    pub fn candidates(&self, targets: &[Target], policy: &Policy, now: Instant) -> Vec<Candidate> {
        let order = {
            let map = self.targets.borrow();
            let latency = |i: usize| {
                targets
                    .get(i)
                    .and_then(|t| map.get(&t.key))
                    .map_or(0.0, |h| h.latency.value())
            };
            let weight = |i: usize| targets.get(i).map_or(0, |t| t.weight);
            balance::order(
                policy.strategy,
                targets.len(),
                weight,
                latency,
                &mut self.rng.borrow_mut(),
            )
        };
        // Admission is decided as each candidate's turn comes (`admit`): a probe slot must not
        // be taken by a candidate the request never reaches. Here only the all-open case.
        let mut map = self.targets.borrow_mut();
        let mut soonest: Option<(usize, Instant)> = None;
        let mut any_open_to_us = false;
        for &i in &order {
            let Some(t) = targets.get(i) else { continue };
            match map.get(&t.key).map(|h| h.breaker.state()) {
                Some(breaker::State::Open { until }) if now < until => {
                    if soonest.is_none_or(|(_, u)| until < u) {
                        soonest = Some((i, until));
                    }
                }
                Some(breaker::State::HalfOpen { since })
                    if now < since + policy.breaker.cooldown =>
                {
                    let until = since + policy.breaker.cooldown;
                    if soonest.is_none_or(|(_, u)| until < u) {
                        soonest = Some((i, until));
                    }
                }
                _ => any_open_to_us = true,
            }
        }
        if !any_open_to_us {
            if let Some((i, _)) = soonest {
                if let Some(t) = targets.get(i) {
                    map.entry(t.key.clone())
                        .or_default()
                        .breaker
                        .force_probe(now);
                }
                return vec![Candidate {
                    index: i,
                    probe: true,
                }];
            }
        }
        order
            .into_iter()
            .map(|index| Candidate {
                index,
                probe: false,
            })
            .collect()
    }

    /// May a request go to `target` now (its breaker)? Forced probes were admitted already.
    pub fn admit(&self, target: &Target, policy: &Policy, now: Instant) -> Admit {
        let mut map = self.targets.borrow_mut();
        match map.get_mut(&target.key) {
            None => Admit::Yes,
            Some(h) => h.breaker.admit(now, &policy.breaker),
        }
    }

    /// Run `f` on `target`'s health, adding it when there is room.
    fn with<R>(&self, target: &Target, f: impl FnOnce(&mut TargetHealth) -> R) -> Option<R> {
        let mut map = self.targets.borrow_mut();
        if let Some(h) = map.get_mut(&target.key) {
            return Some(f(h));
        }
        if map.len() >= MAX_TRACKED_TARGETS {
            return None;
        }
        Some(f(map.entry(target.key.clone()).or_default()))
    }

    /// `target` answered (its first byte after `ttfb`).
    pub fn success(&self, target: &Target, ttfb: Duration) {
        self.with(target, |h| {
            h.breaker.success();
            h.latency.record(ttfb);
        });
    }

    /// `target` failed; true when that opened its breaker.
    pub fn failure(&self, target: &Target, policy: &Policy, now: Instant) -> bool {
        self.with(target, |h| h.breaker.failure(now, &policy.breaker))
            .unwrap_or(false)
    }

    /// Targets tracked.
    pub fn tracked(&self) -> usize {
        self.targets.borrow().len()
    }

    /// The wait before same-target retry number `retry`.
    pub fn backoff(&self, retry: u32, policy: &Policy) -> Duration {
        backoff::backoff(
            retry,
            policy.backoff_base,
            policy.backoff_max,
            &mut self.rng.borrow_mut(),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn target(name: &str) -> Target {
        Target {
            provider: 0,
            model: name.to_owned(),
            key: format!("p/{name}"),
            label: format!("p/{name}"),
            thinking_style: ThinkingStyle::default(),
            weight: 1,
        }
    }

    fn table() -> Table {
        let route = Route {
            model: "fast".into(),
            targets: vec![target("a"), target("b")],
            capabilities: Capabilities::default(),
            policy: Policy::default(),
        };
        Table::new(
            vec![route],
            vec![
                ("p".into(), ThinkingStyle::default()),
                ("q".into(), ThinkingStyle::default()),
            ],
        )
    }

    #[test]
    fn routes_then_direct_names() {
        let t = table();
        let Some(Resolved::Route(r)) = t.resolve("fast") else {
            panic!("route");
        };
        assert_eq!(r.targets.len(), 2);
        let Some(Resolved::Direct(d, policy)) = t.resolve("@q/some-model") else {
            panic!("direct");
        };
        assert_eq!(
            (d.provider, d.model.as_str(), d.key.as_str()),
            (1, "some-model", "q/some-model")
        );
        assert_eq!(policy, &Policy::default());
        assert!(t.resolve("q/").is_none());
        assert!(t.resolve("nope/x").is_none());
        assert!(t.resolve("plain").is_none());
    }

    #[test]
    fn open_targets_are_skipped_and_all_open_probes_the_soonest() {
        let h = Health::new(1);
        let targets = vec![target("a"), target("b"), target("c")];
        let policy = Policy {
            breaker: BreakerPolicy {
                failures: 1,
                cooldown: Duration::from_secs(10),
            },
            ..Policy::default()
        };
        let t0 = Instant::now();
        let all = h.candidates(&targets, &policy, t0);
        assert_eq!(
            all.iter().map(|c| c.index).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        assert!(h.failure(&targets[0], &policy, t0));
        assert_eq!(
            h.admit(&targets[0], &policy, t0),
            Admit::No(t0 + policy.breaker.cooldown)
        );
        assert_eq!(h.admit(&targets[1], &policy, t0), Admit::Yes);
        // b opens a second later, c two seconds later.
        h.failure(&targets[1], &policy, t0 + Duration::from_secs(1));
        h.failure(&targets[2], &policy, t0 + Duration::from_secs(2));
        let now = t0 + Duration::from_secs(3);
        let c = h.candidates(&targets, &policy, now);
        assert_eq!(
            c,
            vec![Candidate {
                index: 0,
                probe: true
            }]
        );
        // That forced probe holds the half-open slot.
        assert!(matches!(h.admit(&targets[0], &policy, now), Admit::No(_)));
        // It succeeds: a is closed again and leads.
        h.success(&targets[0], Duration::from_millis(5));
        let c = h.candidates(&targets, &policy, now);
        assert_eq!(
            c[0],
            Candidate {
                index: 0,
                probe: false
            }
        );
    }
}
