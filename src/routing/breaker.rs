//! The circuit breaker of one target on one worker: a pure state machine over instants, so
//! tests drive its clock.

use std::time::{Duration, Instant};

/// Breaker settings of a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failures that open the breaker (0 = never opens).
    pub failures: u32,
    /// How long an open breaker refuses requests before one probe may pass.
    pub cooldown: Duration,
}

/// Default `breaker_failures`.
pub const DEFAULT_BREAKER_FAILURES: u32 = 5;
/// Default `breaker_cooldown_ms`.
pub const DEFAULT_BREAKER_COOLDOWN: Duration = Duration::from_secs(30);

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            failures: DEFAULT_BREAKER_FAILURES,
            cooldown: DEFAULT_BREAKER_COOLDOWN,
        }
    }
}

/// Where a breaker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Requests flow; counts consecutive failures.
    Closed {
        /// Failures since the last success.
        failures: u32,
    },
    /// Requests skip this target until `until`.
    Open {
        /// End of the cooldown.
        until: Instant,
    },
    /// The cooldown ended: one probe request is in flight since `since`; others skip.
    HalfOpen {
        /// When the probe was let through (a probe whose request vanished without an outcome
        /// is replaced after one cooldown).
        since: Instant,
    },
}

/// One target's breaker.
#[derive(Clone, Copy, Debug)]
pub struct Breaker {
    state: State,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            state: State::Closed { failures: 0 },
        }
    }
}

/// What [`Breaker::admit`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Send the request normally.
    Yes,
    /// Send it as the half-open probe.
    Probe,
    /// Skip this target; it is open until this instant.
    No(Instant),
}

impl Breaker {
    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// May a request go to this target now? Turns an expired Open into HalfOpen and lets
    /// exactly one probe through.
    pub fn admit(&mut self, now: Instant, policy: &BreakerPolicy) -> Admit {
        match self.state {
            State::Closed { .. } => Admit::Yes,
            State::Open { until } if now < until => Admit::No(until),
            State::Open { .. } => {
                self.state = State::HalfOpen { since: now };
                Admit::Probe
            }
            State::HalfOpen { since } if now.duration_since(since) >= policy.cooldown => {
                self.state = State::HalfOpen { since: now };
                Admit::Probe
            }
            State::HalfOpen { since } => Admit::No(since + policy.cooldown),
        }
    }

    /// Would [`Breaker::admit`] let a request through now? (Changes nothing.)
    pub fn would_admit(&self, now: Instant, policy: &BreakerPolicy) -> bool {
        match self.state {
            State::Closed { .. } => true,
            State::Open { until } => now >= until,
            State::HalfOpen { since } => now.duration_since(since) >= policy.cooldown,
        }
    }

    /// Let a request through regardless (every target of a route is open): it is a probe.
    pub fn force_probe(&mut self, now: Instant) {
        self.state = State::HalfOpen { since: now };
    }

    /// The target answered: the breaker closes.
    pub fn success(&mut self) {
        self.state = State::Closed { failures: 0 };
    }

    /// The target failed. Returns true when this failure opened the breaker.
    pub fn failure(&mut self, now: Instant, policy: &BreakerPolicy) -> bool {
        match self.state {
            State::Closed { failures } => {
                let failures = failures.saturating_add(1);
                if policy.failures > 0 && failures >= policy.failures {
                    self.state = State::Open {
                        until: now + policy.cooldown,
                    };
                    true
                } else {
                    self.state = State::Closed { failures };
                    false
                }
            }
            // The probe failed: open again for a whole cooldown.
            State::HalfOpen { .. } => {
                self.state = State::Open {
                    until: now + policy.cooldown,
                };
                true
            }
            // A request admitted before the breaker opened failed too: nothing changes.
            State::Open { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: BreakerPolicy = BreakerPolicy {
        failures: 3,
        cooldown: Duration::from_secs(10),
    };

    #[test]
    fn opens_after_consecutive_failures_only() {
        let t0 = Instant::now();
        let mut b = Breaker::default();
        assert!(!b.failure(t0, &P));
        assert!(!b.failure(t0, &P));
        b.success();
        assert!(!b.failure(t0, &P));
        assert!(!b.failure(t0, &P));
        assert_eq!(b.admit(t0, &P), Admit::Yes);
        assert!(b.failure(t0, &P), "third consecutive failure opens");
        assert!(!b.would_admit(t0, &P));
        assert!(b.would_admit(t0 + P.cooldown, &P));
        assert_eq!(b.admit(t0, &P), Admit::No(t0 + P.cooldown));
        assert_eq!(
            b.admit(t0 + Duration::from_secs(9), &P),
            Admit::No(t0 + P.cooldown)
        );
    }

    #[test]
    fn half_open_lets_one_probe_through() {
        let t0 = Instant::now();
        let mut b = Breaker::default();
        for _ in 0..3 {
            b.failure(t0, &P);
        }
        let t1 = t0 + P.cooldown;
        assert_eq!(b.admit(t1, &P), Admit::Probe);
        // While the probe runs, everyone else skips.
        assert!(!b.would_admit(t1, &P));
        assert!(matches!(b.admit(t1, &P), Admit::No(_)));
        // The probe succeeds: closed.
        b.success();
        assert_eq!(b.admit(t1, &P), Admit::Yes);
        assert_eq!(b.state(), State::Closed { failures: 0 });
    }

    #[test]
    fn failed_probe_reopens_for_a_whole_cooldown() {
        let t0 = Instant::now();
        let mut b = Breaker::default();
        for _ in 0..3 {
            b.failure(t0, &P);
        }
        let t1 = t0 + P.cooldown + Duration::from_secs(1);
        assert_eq!(b.admit(t1, &P), Admit::Probe);
        assert!(b.failure(t1, &P));
        assert_eq!(b.admit(t1, &P), Admit::No(t1 + P.cooldown));
    }

    #[test]
    fn a_vanished_probe_is_replaced_after_a_cooldown() {
        let t0 = Instant::now();
        let mut b = Breaker::default();
        for _ in 0..3 {
            b.failure(t0, &P);
        }
        let t1 = t0 + P.cooldown;
        assert_eq!(b.admit(t1, &P), Admit::Probe);
        assert!(matches!(
            b.admit(t1 + Duration::from_secs(5), &P),
            Admit::No(_)
        ));
        assert_eq!(b.admit(t1 + P.cooldown, &P), Admit::Probe);
    }

    #[test]
    fn zero_failures_never_opens() {
        let t0 = Instant::now();
        let mut b = Breaker::default();
        let never = BreakerPolicy {
            failures: 0,
            cooldown: Duration::from_secs(1),
        };
        for _ in 0..100 {
            assert!(!b.failure(t0, &never));
        }
        assert_eq!(b.admit(t0, &never), Admit::Yes);
    }
}
