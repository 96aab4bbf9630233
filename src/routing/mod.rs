//! Routing: the route table compiled from config (model → targets), each route's failover
//! policy (retries, backoff, deadlines, breaker, balancing), the per-worker health that
//! turns a route into the ordered candidates of one request, and the [`Plan`] that walks them.

pub mod backoff;
pub mod balance;
pub mod breaker;
pub mod plan;
pub mod tier;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use balance::{Rng, Strategy};
pub use breaker::{Admit, Breaker, BreakerPolicy};
pub use plan::{Candidate, Next, Outcome, Plan, Step};
pub use tier::{CredentialSource, Place, Tier};

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
    /// Addressed directly as `provider/model`, not a route's target.
    pub direct: bool,
    /// Thinking form for `reasoning_effort`: the target's override, else the provider's.
    pub thinking_style: ThinkingStyle,
    /// Share of first picks under `strategy = "weighted"`.
    pub weight: u32,
    /// Where it runs (the provider's place, or the target's override): what a tier checks
    /// and what the custody headers say.
    pub place: Arc<Place>,
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
    /// Streams: the response head budget of every target (None: each provider's
    /// `stream_first_byte_timeout_ms`).
    pub stream_first_byte_timeout: Option<Duration>,
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
            stream_first_byte_timeout: None,
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
    /// Other names clients send for it (native model ids such as
    /// `claude-sonnet-4-5-20250929`), resolved exactly like `model`.
    pub aliases: Vec<String>,
    /// Targets in config order.
    pub targets: Vec<Target>,
    /// Advertised capabilities.
    pub capabilities: Capabilities,
    /// Failover.
    pub policy: Policy,
    /// Its Responses answers may be stored (`store_responses`, default true).
    pub store_responses: bool,
    /// A lossy translation is refused (`strict_translation`, default false).
    pub strict_translation: bool,
    /// All keys' requests to it together (enforced by `crate::limits`).
    pub limits: crate::auth::KeyLimits,
}

/// The route table: route names, then `provider/model` addressed directly.
#[derive(Debug, Default)]
pub struct Table {
    routes: Vec<Route>,
    route_index: HashMap<String, usize>,
    /// Provider name → (index, thinking style, place), for direct `provider/model` names.
    providers: HashMap<String, (usize, ThinkingStyle, Arc<Place>, crate::provider::Kind)>,
    /// `provider/model` → where a route target says that deployment runs, when it differs from
    /// its provider's default: addressed directly, it is still that deployment, and a tier must
    /// judge it by where it really runs. Built once, not searched per request.
    placed_elsewhere: HashMap<String, Arc<Place>>,
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
    /// A configured route under a residency tier: only its targets inside the tier, in
    /// config order (never empty).
    Within(&'a Route, Vec<Target>),
}

/// Why a request under a tier cannot be routed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutsideTier {
    /// No target of the route is inside the tier.
    NoTarget,
    /// The provider addressed directly is outside the tier; its jurisdiction, when known.
    Provider(Option<String>),
}

impl<'a> Resolved<'a> {
    /// The targets in config order.
    pub fn targets(&self) -> &[Target] {
        match self {
            Resolved::Route(r) => &r.targets,
            Resolved::Direct(t, _) => std::slice::from_ref(t),
            Resolved::Within(_, t) => t,
        }
    }

    /// The failover policy.
    pub fn policy(&self) -> &Policy {
        match self {
            Resolved::Route(r) | Resolved::Within(r, _) => &r.policy,
            Resolved::Direct(_, p) => p,
        }
    }

    /// The same, kept inside `tier`: the targets whose place the tier admits, in config
    /// order, so that ordering, balancing, retries and fallbacks only ever see those.
    pub fn within(self, tier: &Tier) -> Result<Resolved<'a>, OutsideTier> {
        match self {
            Resolved::Route(r) | Resolved::Within(r, _) => {
                let kept: Vec<Target> = r
                    .targets
                    .iter()
                    .filter(|t| tier.admits(&t.place))
                    .cloned()
                    .collect();
                if kept.is_empty() {
                    Err(OutsideTier::NoTarget)
                } else {
                    Ok(Resolved::Within(r, kept))
                }
            }
            Resolved::Direct(t, p) if tier.admits(&t.place) => Ok(Resolved::Direct(t, p)),
            Resolved::Direct(t, _) => Err(OutsideTier::Provider(t.place.jurisdiction.clone())),
        }
    }
}

impl Table {
    /// Build from compiled routes (names and aliases already checked unique) and the
    /// providers' names with their thinking styles and places, by index.
    pub fn new(
        routes: Vec<Route>,
        providers: Vec<(String, ThinkingStyle, Arc<Place>, crate::provider::Kind)>,
    ) -> Table {
        let route_index = routes
            .iter()
            .enumerate()
            .flat_map(|(i, r)| {
                std::iter::once(r.model.clone())
                    .chain(r.aliases.iter().cloned())
                    .map(move |name| (name, i))
            })
            .collect();
        let providers: HashMap<String, (usize, ThinkingStyle, Arc<Place>, crate::provider::Kind)> =
            providers
                .into_iter()
                .enumerate()
                .map(|(i, (name, style, place, kind))| (name, (i, style, place, kind)))
                .collect();
        let mut placed_elsewhere = HashMap::new();
        for t in routes.iter().flat_map(|r| r.targets.iter()) {
            let default = t
                .key
                .split_once('/')
                .and_then(|(p, _)| providers.get(p))
                .map(|(_, _, place, _)| place);
            if default.is_some_and(|d| *d != t.place) {
                placed_elsewhere
                    .entry(t.key.clone())
                    .or_insert_with(|| t.place.clone());
            }
        }
        Table {
            routes,
            route_index,
            providers,
            placed_elsewhere,
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
        let (index, thinking_style, place, kind) = self.providers.get(provider)?;
        let place = match self.placed_elsewhere.get(bare) {
            Some(p) => p.clone(),
            None => reached(place, provider, *kind, upstream_model),
        };
        Some(Resolved::Direct(
            Target {
                provider: *index,
                model: upstream_model.to_owned(),
                key: bare.to_owned(),
                label: format!("{provider}/*"),
                direct: true,
                thinking_style: *thinking_style,
                weight: 1,
                place,
            },
            &self.direct_policy,
        ))
    }
}

/// The place of a request for `model` at a provider placed at `place`: a model that reaches
/// beyond the provider's region (a Bedrock cross-region profile) is where it reaches.
pub fn reached(
    place: &Arc<Place>,
    provider: &str,
    kind: crate::provider::Kind,
    model: &str,
) -> Arc<Place> {
    use crate::provider::bedrock::Reach;
    match kind.reach(model) {
        Reach::Region => place.clone(),
        Reach::Country(c) => Arc::new(place.reaching(provider, Some(c))),
        Reach::Unbounded => Arc::new(place.reaching(provider, None)),
    }
}

/// One target's health on one worker.
#[derive(Default)]
struct TargetHealth {
    breaker: Breaker,
    latency: balance::Ewma,
}

/// Most models addressed directly whose health a worker tracks: those names are the
/// client's choice, so past this bound new ones go untracked (always admitted, measured as
/// unknown) rather than grow the map without limit. Route targets (the config's) are always
/// tracked.
pub const MAX_TRACKED_TARGETS: usize = 4096;

/// Per-worker health of every target seen, and the worker's PRNG (single thread: `RefCell`).
pub struct Health {
    targets: RefCell<HashMap<String, TargetHealth>>,
    rng: RefCell<Rng>,
}

impl Health {
    /// Empty health, the PRNG seeded with `seed`.
    pub fn new(seed: u64) -> Health {
        Health {
            targets: RefCell::new(HashMap::new()),
            rng: RefCell::new(Rng::new(seed)),
        }
    }

    /// The order in which a request tries `targets`, by the route's strategy. Breakers are
    /// asked as each target's turn comes ([`Health::admit`]): a half-open probe slot must not
    /// be taken by a target the request never reaches.
    pub fn order(&self, targets: &[Target], policy: &Policy) -> Vec<usize> {
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
    }

    /// Would `target`'s breaker let a request through now? (Takes no probe slot.)
    pub fn would_admit(&self, target: &Target, policy: &Policy, now: Instant) -> bool {
        self.targets
            .borrow()
            .get(&target.key)
            .is_none_or(|h| h.breaker.would_admit(now, &policy.breaker))
    }

    /// Send to `target` although its breaker is open (every other target failed): as a probe,
    /// so a failure re-arms the cooldown and a success closes it.
    pub fn force_probe(&self, target: &Target, now: Instant) {
        self.with(target, |h| h.breaker.force_probe(now));
    }

    /// May a request go to `target` now (its breaker)?
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
        if target.direct && map.len() >= MAX_TRACKED_TARGETS {
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

    /// `target`'s breaker as the metrics gauge reports it
    /// ([`crate::metrics::breaker_state`]); an expired open breaker is half-open (the next
    /// request is its probe). A target not yet tracked is closed.
    pub fn breaker_state(&self, target: &Target, now: Instant) -> u8 {
        use crate::metrics::breaker_state::{CLOSED, HALF_OPEN, OPEN};
        match self
            .targets
            .borrow()
            .get(&target.key)
            .map(|h| h.breaker.state())
        {
            None | Some(breaker::State::Closed { .. }) => CLOSED,
            Some(breaker::State::Open { until }) if now < until => OPEN,
            Some(_) => HALF_OPEN,
        }
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
mod tests {
    use super::*;

    fn target(name: &str) -> Target {
        Target {
            provider: 0,
            model: name.to_owned(),
            key: format!("p/{name}"),
            label: format!("p/{name}"),
            direct: false,
            thinking_style: ThinkingStyle::default(),
            weight: 1,
            place: Arc::default(),
        }
    }

    fn table() -> Table {
        let route = Route {
            model: "fast".into(),
            aliases: vec!["fast-native-id".into()],
            targets: vec![target("a"), target("b")],
            capabilities: Capabilities::default(),
            policy: Policy::default(),
            store_responses: true,
            strict_translation: false,
            limits: Default::default(),
        };
        Table::new(
            vec![route],
            vec![
                (
                    "p".into(),
                    ThinkingStyle::default(),
                    Arc::default(),
                    crate::provider::Kind::OpenAi,
                ),
                (
                    "q".into(),
                    ThinkingStyle::default(),
                    Arc::default(),
                    crate::provider::Kind::OpenAi,
                ),
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
        // An alias resolves to the same route.
        let Some(Resolved::Route(a)) = t.resolve("fast-native-id") else {
            panic!("alias");
        };
        assert_eq!(a.model, "fast");
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
    fn a_tier_keeps_only_its_targets_and_refuses_direct_addresses_outside_it() {
        let at = |j: Option<&str>| {
            Arc::new(Place::new(
                "gw",
                "p",
                None,
                j.map(str::to_owned),
                None,
                CredentialSource::Gateway,
            ))
        };
        let route = Route {
            model: "m".into(),
            aliases: Vec::new(),
            targets: vec![
                Target {
                    place: at(Some("US")),
                    ..target("us")
                },
                Target {
                    place: at(None),
                    ..target("nowhere")
                },
                Target {
                    place: at(Some("CA")),
                    ..target("ca")
                },
            ],
            capabilities: Capabilities::default(),
            policy: Policy::default(),
            store_responses: true,
            strict_translation: false,
            limits: Default::default(),
        };
        let table = Table::new(
            vec![route],
            vec![
                (
                    "p".into(),
                    ThinkingStyle::default(),
                    at(Some("US")),
                    crate::provider::Kind::OpenAi,
                ),
                (
                    "q".into(),
                    ThinkingStyle::default(),
                    at(Some("CA")),
                    crate::provider::Kind::OpenAi,
                ),
            ],
        );
        let ca = Tier {
            name: "canada".into(),
            jurisdictions: vec!["CA".into()],
        };
        let r = table.resolve("m").unwrap().within(&ca).unwrap();
        let keys: Vec<&str> = r.targets().iter().map(|t| t.key.as_str()).collect();
        assert_eq!(keys, ["p/ca"]);
        let de = Tier {
            name: "germany".into(),
            jurisdictions: vec!["DE".into()],
        };
        assert_eq!(
            table.resolve("m").unwrap().within(&de).unwrap_err(),
            OutsideTier::NoTarget
        );
        assert_eq!(
            table.resolve("p/x").unwrap().within(&ca).unwrap_err(),
            OutsideTier::Provider(Some("US".into()))
        );
        assert!(table.resolve("q/x").unwrap().within(&ca).is_ok());
    }

    #[test]
    fn a_bedrock_model_id_places_the_request_where_it_reaches() {
        use crate::provider::Kind;
        let ca = Arc::new(Place::new(
            "ringway-CA",
            "b",
            Some("ca-central-1".into()),
            Some("CA".into()),
            None,
            crate::routing::CredentialSource::Gateway,
        ));
        let j = |kind, model| reached(&ca, "b", kind, model).jurisdiction.clone();
        assert_eq!(
            j(Kind::Bedrock, "anthropic.claude-x-v1:0").as_deref(),
            Some("CA")
        );
        assert_eq!(
            j(Kind::Bedrock, "ca.anthropic.claude-x").as_deref(),
            Some("CA")
        );
        assert_eq!(
            j(Kind::Bedrock, "us.anthropic.claude-x").as_deref(),
            Some("US")
        );
        assert_eq!(j(Kind::Bedrock, "global.anthropic.claude-x"), None);
        let global = reached(&ca, "b", Kind::Bedrock, "global.anthropic.claude-x");
        assert_eq!(global.path, "ringway-CA -> b");
        assert_eq!(global.region.as_deref(), Some("ca-central-1"));
        // Other kinds' model ids say nothing about where they run.
        assert_eq!(
            j(Kind::Anthropic, "global.anthropic.claude-x").as_deref(),
            Some("CA")
        );
    }

    #[test]
    fn open_targets_say_until_when_and_a_forced_probe_holds_the_slot() {
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
        assert_eq!(h.order(&targets, &policy), vec![0, 1, 2]);
        assert!(h.failure(&targets[0], &policy, t0));
        assert_eq!(
            h.admit(&targets[0], &policy, t0),
            Admit::No(t0 + policy.breaker.cooldown)
        );
        assert_eq!(h.admit(&targets[1], &policy, t0), Admit::Yes);
        // A last-resort send holds the half-open slot; its success closes the breaker.
        let now = t0 + Duration::from_secs(3);
        h.force_probe(&targets[0], now);
        assert!(matches!(h.admit(&targets[0], &policy, now), Admit::No(_)));
        h.success(&targets[0], Duration::from_millis(5));
        assert_eq!(h.admit(&targets[0], &policy, now), Admit::Yes);
        // Its failure re-arms a whole cooldown from then.
        h.failure(&targets[1], &policy, now);
        let later = now + Duration::from_secs(12);
        h.force_probe(&targets[1], later);
        assert!(h.failure(&targets[1], &policy, later));
        assert_eq!(
            h.admit(&targets[1], &policy, later),
            Admit::No(later + policy.breaker.cooldown)
        );
    }

    #[test]
    fn health_state_is_bounded() {
        let h = Health::new(1);
        let policy = Policy::default();
        let direct = |name: &str| Target {
            direct: true,
            ..target(name)
        };
        for i in 0..MAX_TRACKED_TARGETS + 100 {
            h.failure(&direct(&format!("m{i}")), &policy, Instant::now());
        }
        assert_eq!(h.tracked(), MAX_TRACKED_TARGETS);
        // A route's target is tracked whatever clients did.
        let route_target = target("configured");
        for _ in 0..10 {
            h.failure(&route_target, &policy, Instant::now());
        }
        assert!(matches!(
            h.admit(&route_target, &policy, Instant::now()),
            Admit::No(_)
        ));
        // A tracked target still records.
        let t = target("m0");
        for _ in 0..10 {
            h.failure(&t, &policy, Instant::now());
        }
        assert!(matches!(h.admit(&t, &policy, Instant::now()), Admit::No(_)));
    }
}
