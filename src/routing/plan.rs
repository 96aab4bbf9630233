//! One request's way through its route: which target comes next and after which failure, how
//! many sends each gets, the wait before a retry, the breaker's skip, the balancing draw and
//! the pinned first target. Sans-IO: the caller passes the time in, does what each [`Step`]
//! says (prepare, send, wait) and records what became of it; the breakers and the PRNG of the
//! balancing draw and the backoff jitter are the worker's [`Health`], seeded by its owner.
//!
//! The tier filter has run already: a [`Resolved::Within`] holds only the targets inside the
//! tier, so no step of a plan, its last resort included, can leave it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{Admit, Health, Policy, Resolved, Target};

/// The attempts that could follow a send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Next {
    /// A retry on the same target (for a miss that allows one).
    pub same_target: bool,
    /// Another target (an open breaker's included, as a last resort).
    pub other_target: bool,
    /// Another target whose breaker would let the request through now: only then is a slow
    /// stream given up at `first_token_timeout_ms` (an open target is no better bet).
    pub other_admissible: bool,
}

/// A target the plan took: its index in the route's targets, and the target.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    pub index: usize,
    pub target: &'a Target,
}

/// What the caller does next.
#[derive(Debug)]
pub enum Step<'a> {
    /// Make the request ready for this target, then record [`Outcome::Prepared`],
    /// [`Outcome::Unprepared`] or [`Outcome::Unusable`].
    Prepare(Candidate<'a>),
    /// Its breaker is open: passed over for now, tried as a last resort if nothing else
    /// serves.
    Skip(Candidate<'a>),
    /// Send the request to it; then record [`Outcome::Missed`] (an answer ends the plan).
    Send(Candidate<'a>, Next),
    /// Wait this long before the next send to the same target.
    Wait(Duration),
    /// The route's deadline passed before the next send: the request ends with its error.
    Expired,
}

/// What became of a [`Step::Prepare`] or a [`Step::Send`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The target cannot be used at all: passed over as if it were not in the route.
    Unusable,
    /// The request could not be made ready for the target (untranslatable for it, ...).
    Unprepared,
    /// Ready: its breaker is asked, then it gets the request.
    Prepared,
    /// The send gave nothing to commit to.
    Missed {
        /// The same target may get the request again.
        same_target: bool,
        /// The provider's retry hint.
        retry_after: Option<Duration>,
        /// No other attempt can help.
        terminal: bool,
    },
}

/// Where the plan stands between two calls.
#[derive(Clone, Copy, Debug)]
enum Phase<'a> {
    /// Take the next candidate.
    Pick,
    /// Waiting for the candidate's preparation.
    Preparing(Candidate<'a>),
    /// Prepared: its breaker is asked next.
    Prepared(Candidate<'a>),
    /// The next send to the candidate is number `retry` (0: the first).
    Ready(Candidate<'a>, u32),
    /// Send number `retry` went out; waiting for its outcome.
    Sent(Candidate<'a>, u32),
    /// Send number `retry` missed: retry, move on or stop.
    Missed {
        at: Candidate<'a>,
        retry: u32,
        same_target: bool,
        retry_after: Option<Duration>,
        terminal: bool,
    },
    Done,
}

/// The candidate iteration of one request over its route.
pub struct Plan<'a> {
    health: &'a Health,
    targets: &'a [Target],
    policy: &'a Policy,
    fallbacks: bool,
    deadline: Instant,
    /// Candidates still to take, in order.
    queue: VecDeque<usize>,
    /// Targets whose breaker is open, with when it closes: skipped while others remain, then
    /// tried as a last resort, soonest to close first, before the request is given up.
    deferred: Vec<(Instant, usize)>,
    last_resort: bool,
    /// The pinned target's breaker was open (its 503 says so).
    pinned_open: bool,
    phase: Phase<'a>,
}

impl<'a> Plan<'a> {
    /// The plan of a request read at `start` (its deadline runs from then: a slow upload is
    /// not the providers' time). With `fallbacks`, the targets in the order the route's
    /// strategy draws; without (`allow_fallbacks: false`), the route's first target as written,
    /// whatever the strategy would draw, and whatever its breaker says.
    pub fn new(
        health: &'a Health,
        resolved: &'a Resolved<'_>,
        fallbacks: bool,
        start: Instant,
    ) -> Plan<'a> {
        let targets = resolved.targets();
        let policy = resolved.policy();
        let queue = if fallbacks {
            health.order(targets, policy).into()
        } else {
            (0..targets.len().min(1)).collect()
        };
        Plan {
            health,
            targets,
            policy,
            fallbacks,
            deadline: start + policy.request_timeout,
            queue,
            deferred: Vec::new(),
            last_resort: false,
            pinned_open: false,
            phase: Phase::Pick,
        }
    }

    /// The route's deadline for an answer to start.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The request is pinned and its target's breaker was open when it was sent there.
    pub fn pinned_open(&self) -> bool {
        self.pinned_open
    }

    /// The next step at `now`; None: the plan is over (nothing more to try).
    pub fn next(&mut self, now: Instant) -> Option<Step<'a>> {
        loop {
            match self.phase {
                Phase::Pick => {
                    let Some(at) = self.pick() else {
                        self.phase = Phase::Done;
                        return None;
                    };
                    self.phase = Phase::Preparing(at);
                    return Some(Step::Prepare(at));
                }
                Phase::Prepared(at) => {
                    if let Some(until) = self.refused(at, now) {
                        self.deferred.push((until, at.index));
                        self.phase = Phase::Pick;
                        return Some(Step::Skip(at));
                    }
                    self.phase = Phase::Ready(at, 0);
                }
                Phase::Ready(at, retry) => {
                    if now >= self.deadline {
                        // Not even sent: a request past its deadline gets the deadline's error.
                        self.phase = Phase::Done;
                        return Some(Step::Expired);
                    }
                    self.phase = Phase::Sent(at, retry);
                    return Some(Step::Send(at, self.after(retry, now)));
                }
                Phase::Missed {
                    at,
                    retry,
                    same_target,
                    retry_after,
                    terminal,
                } => match self.retry_wait(retry, same_target, retry_after, now) {
                    Some(wait) if !terminal => {
                        self.phase = Phase::Ready(at, retry.saturating_add(1));
                        if !wait.is_zero() {
                            return Some(Step::Wait(wait));
                        }
                    }
                    _ if !self.fallbacks || terminal || now >= self.deadline => {
                        self.phase = Phase::Done;
                    }
                    _ => self.phase = Phase::Pick,
                },
                // A step whose outcome was never recorded ends the plan, as does its end.
                Phase::Preparing(_) | Phase::Sent(..) | Phase::Done => {
                    self.phase = Phase::Done;
                    return None;
                }
            }
        }
    }

    /// What became of the last [`Step::Prepare`] or [`Step::Send`].
    pub fn record(&mut self, outcome: Outcome) {
        self.phase = match (self.phase, outcome) {
            (Phase::Preparing(_), Outcome::Unusable) => Phase::Pick,
            (Phase::Preparing(_), Outcome::Unprepared) if self.more_targets() => Phase::Pick,
            (Phase::Preparing(at), Outcome::Prepared) => Phase::Prepared(at),
            (
                Phase::Sent(at, retry),
                Outcome::Missed {
                    same_target,
                    retry_after,
                    terminal,
                },
            ) => Phase::Missed {
                at,
                retry,
                same_target,
                retry_after,
                terminal,
            },
            // The last target could not be prepared; or an outcome out of turn.
            _ => Phase::Done,
        };
    }

    /// The next candidate: the queue's, then (once) the deferred open targets, soonest to
    /// close first.
    fn pick(&mut self) -> Option<Candidate<'a>> {
        loop {
            let index = match self.queue.pop_front() {
                Some(i) => i,
                None if !self.last_resort && !self.deferred.is_empty() => {
                    self.deferred.sort_by_key(|(until, _)| *until);
                    self.queue.extend(self.deferred.drain(..).map(|(_, i)| i));
                    self.last_resort = true;
                    continue;
                }
                None => return None,
            };
            if let Some(target) = self.targets.get(index) {
                return Some(Candidate { index, target });
            }
        }
    }

    /// Would the candidate be sent once prepared (not passed over for its open breaker), as
    /// things stand: asks the breaker without taking a probe slot.
    pub fn would_send(&self, at: Candidate<'_>, now: Instant) -> bool {
        self.last_resort || !self.fallbacks || self.health.would_admit(at.target, self.policy, now)
    }

    /// Is the prepared candidate passed over for now (its breaker open until then)? Asked only
    /// once the request is ready for it: a probe slot is never taken by a request that cannot
    /// be sent. A last resort, or a pinned target, is sent as a probe whatever the breaker
    /// says.
    fn refused(&mut self, at: Candidate<'a>, now: Instant) -> Option<Instant> {
        if self.last_resort {
            self.health.force_probe(at.target, now);
        } else if let Admit::No(until) = self.health.admit(at.target, self.policy, now) {
            if self.fallbacks {
                return Some(until);
            }
            self.health.force_probe(at.target, now);
            self.pinned_open = true;
        }
        None
    }

    /// Could another target still get the request?
    fn more_targets(&self) -> bool {
        self.fallbacks && (!self.queue.is_empty() || !self.deferred.is_empty())
    }

    /// The attempts that could follow send number `retry`.
    fn after(&self, retry: u32, now: Instant) -> Next {
        let other_target = self.more_targets();
        let other_admissible = other_target
            && !self.last_resort
            && self.queue.iter().any(|&i| {
                self.targets
                    .get(i)
                    .is_some_and(|t| self.health.would_admit(t, self.policy, now))
            });
        Next {
            same_target: retry < self.policy.retries,
            other_target,
            other_admissible,
        }
    }

    /// The wait before retrying the same target after send number `retry` missed; None: no
    /// retry (none left, the miss allows none, the provider's hint is beyond the route's cap,
    /// or the wait would end past the deadline).
    fn retry_wait(
        &self,
        retry: u32,
        same_target: bool,
        retry_after: Option<Duration>,
        now: Instant,
    ) -> Option<Duration> {
        if !same_target || retry >= self.policy.retries {
            return None;
        }
        let wait = match retry_after {
            // A hint beyond the cap: this target is busy for longer; move on.
            Some(hint) if hint > self.policy.max_retry_after => return None,
            Some(hint) => hint,
            None => self.health.backoff(retry, self.policy),
        };
        (now + wait < self.deadline).then_some(wait)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::{BreakerPolicy, Capabilities, CredentialSource, Place, Route, Tier};
    use super::*;

    fn target(name: &str, jurisdiction: &str) -> Target {
        Target {
            provider: 0,
            model: name.to_owned(),
            key: format!("p/{name}"),
            label: format!("p/{name}"),
            direct: false,
            thinking_style: Default::default(),
            weight: 1,
            place: Arc::new(Place::new(
                "gw",
                "p",
                None,
                Some(jurisdiction.to_owned()),
                None,
                CredentialSource::Gateway,
            )),
        }
    }

    /// A route of `n` targets (`t0`, `t1`, ...), in order; one retry without backoff; a
    /// breaker that opens at the first failure.
    fn route(n: usize) -> Route {
        Route {
            model: "m".into(),
            aliases: Vec::new(),
            targets: (0..n).map(|i| target(&format!("t{i}"), "CA")).collect(),
            capabilities: Capabilities::default(),
            policy: Policy {
                retries: 1,
                backoff_base: Duration::ZERO,
                request_timeout: Duration::from_secs(60),
                breaker: BreakerPolicy {
                    failures: 1,
                    cooldown: Duration::from_secs(10),
                },
                ..Policy::default()
            },
            store_responses: true,
            strict_translation: false,
            limits: Default::default(),
        }
    }

    const MISSED: Outcome = Outcome::Missed {
        same_target: true,
        retry_after: None,
        terminal: false,
    };
    /// A miss after the provider may have acted: no same-target retry.
    const BROKE: Outcome = Outcome::Missed {
        same_target: false,
        retry_after: None,
        terminal: false,
    };

    /// The index a step names, with its kind.
    fn step(plan: &mut Plan<'_>, now: Instant) -> Option<(&'static str, usize)> {
        plan.next(now).map(|s| match s {
            Step::Prepare(c) => ("prepare", c.index),
            Step::Skip(c) => ("skip", c.index),
            Step::Send(c, _) => ("send", c.index),
            Step::Wait(w) => ("wait", w.as_millis() as usize),
            Step::Expired => ("expired", 0),
        })
    }

    /// Prepare then send the next candidate; its index.
    fn take(plan: &mut Plan<'_>, now: Instant) -> usize {
        let Some(("prepare", i)) = step(plan, now) else {
            panic!("a candidate");
        };
        plan.record(Outcome::Prepared);
        assert_eq!(step(plan, now), Some(("send", i)));
        i
    }

    #[test]
    fn each_target_gets_its_retries_then_the_next_is_taken() {
        let (h, r, t0) = (Health::new(1), Resolved::Route(&route(2)), Instant::now());
        let mut plan = Plan::new(&h, &r, true, t0);
        assert_eq!(step(&mut plan, t0), Some(("prepare", 0)));
        plan.record(Outcome::Prepared);
        let Some(Step::Send(_, next)) = plan.next(t0) else {
            panic!("send");
        };
        let all = Next {
            same_target: true,
            other_target: true,
            other_admissible: true,
        };
        assert_eq!(next, all);
        plan.record(MISSED);
        // No backoff configured: the retry goes at once, and is the last on this target.
        let Some(Step::Send(c, next)) = plan.next(t0) else {
            panic!("retry");
        };
        assert_eq!((c.index, next.same_target), (0, false));
        plan.record(MISSED);
        assert_eq!(take(&mut plan, t0), 1);
        plan.record(MISSED);
        let Some(Step::Send(_, next)) = plan.next(t0) else {
            panic!("retry");
        };
        assert!(!next.other_target, "the last target");
        plan.record(MISSED);
        assert_eq!(step(&mut plan, t0), None);
    }

    #[test]
    fn a_retry_waits_for_the_hint_within_the_cap_and_the_deadline() {
        let (h, r, t0) = (Health::new(1), Resolved::Route(&route(2)), Instant::now());
        let hinted = |ms| Outcome::Missed {
            same_target: true,
            retry_after: Some(Duration::from_millis(ms)),
            terminal: false,
        };
        let mut plan = Plan::new(&h, &r, true, t0);
        take(&mut plan, t0);
        plan.record(hinted(250));
        assert_eq!(step(&mut plan, t0), Some(("wait", 250)));
        assert_eq!(step(&mut plan, t0), Some(("send", 0)));
        // Beyond `max_retry_after`: moves on at once.
        let mut plan = Plan::new(&h, &r, true, t0);
        take(&mut plan, t0);
        plan.record(hinted(60_000));
        assert_eq!(step(&mut plan, t0), Some(("prepare", 1)));
        // A wait that would end past the deadline is not waited.
        let mut plan = Plan::new(&h, &r, true, t0);
        take(&mut plan, t0);
        plan.record(hinted(2_000));
        assert_eq!(
            step(&mut plan, t0 + Duration::from_secs(59)),
            Some(("prepare", 1))
        );
        // A send due past the deadline never goes: the deadline's error, and the end.
        let mut plan = Plan::new(&h, &r, true, t0);
        take(&mut plan, t0);
        plan.record(hinted(1_000));
        assert_eq!(step(&mut plan, t0), Some(("wait", 1000)));
        assert_eq!(
            step(&mut plan, t0 + Duration::from_secs(61)),
            Some(("expired", 0))
        );
        assert_eq!(step(&mut plan, t0), None);
    }

    #[test]
    fn a_terminal_miss_or_a_passed_deadline_ends_the_plan() {
        let (h, r, t0) = (Health::new(1), Resolved::Route(&route(3)), Instant::now());
        let mut plan = Plan::new(&h, &r, true, t0);
        take(&mut plan, t0);
        plan.record(Outcome::Missed {
            same_target: true,
            retry_after: None,
            terminal: true,
        });
        assert_eq!(step(&mut plan, t0), None);
        let mut plan = Plan::new(&h, &r, true, t0);
        take(&mut plan, t0);
        plan.record(BROKE);
        assert_eq!(step(&mut plan, t0 + Duration::from_secs(60)), None);
    }

    #[test]
    fn an_unprepared_target_moves_on_unless_it_was_the_last() {
        let (h, r, t0) = (Health::new(1), Resolved::Route(&route(2)), Instant::now());
        let mut plan = Plan::new(&h, &r, true, t0);
        assert_eq!(step(&mut plan, t0), Some(("prepare", 0)));
        plan.record(Outcome::Unprepared);
        assert_eq!(step(&mut plan, t0), Some(("prepare", 1)));
        plan.record(Outcome::Unprepared);
        assert_eq!(step(&mut plan, t0), None);
        // An unusable target is passed over as if absent.
        let mut plan = Plan::new(&h, &r, true, t0);
        assert_eq!(step(&mut plan, t0), Some(("prepare", 0)));
        plan.record(Outcome::Unusable);
        assert_eq!(take(&mut plan, t0), 1);
    }

    #[test]
    fn open_breakers_are_skipped_then_tried_last_soonest_to_close_first() {
        let (h, route) = (Health::new(1), route(3));
        let r = Resolved::Route(&route);
        let t0 = Instant::now();
        // t1 opens first (closes first), then t0.
        h.failure(&route.targets[1], &route.policy, t0);
        h.failure(
            &route.targets[0],
            &route.policy,
            t0 + Duration::from_secs(1),
        );
        let now = t0 + Duration::from_secs(2);
        let mut plan = Plan::new(&h, &r, true, now);
        assert_eq!(step(&mut plan, now), Some(("prepare", 0)));
        plan.record(Outcome::Prepared);
        assert_eq!(step(&mut plan, now), Some(("skip", 0)));
        assert_eq!(step(&mut plan, now), Some(("prepare", 1)));
        plan.record(Outcome::Prepared);
        assert_eq!(step(&mut plan, now), Some(("skip", 1)));
        assert_eq!(step(&mut plan, now), Some(("prepare", 2)));
        plan.record(Outcome::Prepared);
        let Some(Step::Send(_, next)) = plan.next(now) else {
            panic!("send");
        };
        // Others remain, but none whose breaker would let it through.
        assert!(next.other_target && !next.other_admissible);
        plan.record(BROKE);
        assert_eq!(take(&mut plan, now), 1);
        // Sent as a probe: its breaker now holds the half-open slot.
        assert!(!h.would_admit(
            &route.targets[1],
            &route.policy,
            t0 + Duration::from_secs(10)
        ));
        plan.record(BROKE);
        assert_eq!(take(&mut plan, now), 0);
        plan.record(BROKE);
        assert_eq!(step(&mut plan, now), None);
        assert!(!plan.pinned_open());
    }

    #[test]
    fn a_pinned_request_goes_only_to_the_first_target_whatever_its_breaker_says() {
        let mut weighted = route(3);
        weighted.policy.strategy = super::super::Strategy::Weighted;
        weighted.targets[0].weight = 0;
        let (h, r, t0) = (Health::new(1), Resolved::Route(&weighted), Instant::now());
        h.failure(&weighted.targets[0], &weighted.policy, t0);
        let mut plan = Plan::new(&h, &r, false, t0);
        assert_eq!(step(&mut plan, t0), Some(("prepare", 0)));
        plan.record(Outcome::Prepared);
        let Some(Step::Send(c, next)) = plan.next(t0) else {
            panic!("send");
        };
        assert_eq!(c.index, 0);
        assert!(plan.pinned_open());
        assert!(!next.other_target && next.same_target);
        plan.record(BROKE);
        assert_eq!(step(&mut plan, t0), None);
    }

    #[test]
    fn the_balancing_draw_orders_the_candidates() {
        let mut weighted = route(2);
        weighted.policy.strategy = super::super::Strategy::Weighted;
        weighted.targets[0].weight = 0;
        let (h, r, t0) = (Health::new(1), Resolved::Route(&weighted), Instant::now());
        let mut plan = Plan::new(&h, &r, true, t0);
        assert_eq!(take(&mut plan, t0), 1, "weight 0 goes last");
        plan.record(BROKE);
        assert_eq!(take(&mut plan, t0), 0);
    }

    #[test]
    fn under_a_tier_no_step_leaves_it() {
        let mut mixed = route(3);
        mixed.targets[1] = target("us", "US");
        let tier = Tier {
            name: "canada".into(),
            jurisdictions: vec!["CA".into()],
        };
        let r = Resolved::Route(&mixed).within(&tier).unwrap();
        let (h, t0) = (Health::new(1), Instant::now());
        // Every target inside fails hard (breakers open): the last resort stays inside too.
        let mut plan = Plan::new(&h, &r, true, t0);
        let mut seen = Vec::new();
        while let Some(s) = plan.next(t0) {
            match s {
                Step::Prepare(c) => {
                    seen.push(c.target.key.clone());
                    plan.record(Outcome::Prepared);
                }
                Step::Send(c, _) => {
                    h.failure(c.target, &mixed.policy, t0);
                    plan.record(BROKE);
                }
                _ => {}
            }
        }
        assert_eq!(seen, ["p/t0", "p/t2"]);
    }
}
