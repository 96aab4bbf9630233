//! GCRA (the generic cell rate algorithm) as pure step functions over one number per bucket,
//! its theoretical arrival time (TAT). The atomics in `super` only load, step and
//! compare-and-swap; the arithmetic here is tested without a clock.
//!
//! Times are nanoseconds since the limiter's epoch. A limit of `L` per minute costs
//! `ceil(60 s / L)` a unit and the bucket holds `L` units (`tau = L × cost`): from full, exactly
//! `L` units pass at once, then one every `cost`. `TAT - now` (never below 0) is the bucket's
//! debt: 0 is full, `tau` is empty, beyond `tau` is a deficit (only tokens, which are charged
//! after the fact, can go there).

/// The window every limit is counted over.
pub const WINDOW_NS: u64 = 60_000_000_000;
/// Largest per-minute limit. Rounding a unit's cost up to whole nanoseconds slows the refill
/// by less than `L / 6·10^10` of the rate (under 0.02% for ten million tokens a minute, 1.7%
/// at this bound, where a unit costs 60 ns).
pub const MAX_PER_MINUTE: u64 = 1_000_000_000;
/// Largest deficit one bucket can run up (a day of its budget): one huge usage report cannot
/// lock a key out for longer.
pub const MAX_DEBT_NS: u64 = 1440 * WINDOW_NS;

/// A per-minute limit in the units the algorithm steps in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Units per minute (the burst too).
    pub limit: u64,
    /// Nanoseconds one unit takes to refill.
    pub cost: u64,
    /// The bucket's size in nanoseconds of debt (`limit × cost`).
    pub tau: u64,
}

impl Rate {
    /// `limit` per minute; None for 0 (no limit). Clamped to [`MAX_PER_MINUTE`], which the
    /// config enforces.
    pub fn per_minute(limit: u64) -> Option<Rate> {
        if limit == 0 {
            return None;
        }
        let limit = limit.min(MAX_PER_MINUTE);
        let cost = WINDOW_NS.div_ceil(limit);
        Some(Rate {
            limit,
            cost,
            tau: limit.saturating_mul(cost),
        })
    }
}

/// The bucket's debt at `now`.
pub fn debt(tat: u64, now: u64) -> u64 {
    tat.saturating_sub(now)
}

/// Take `n` units at `now`: the new TAT, or `Err(ns)` until they would fit.
pub fn take(rate: Rate, tat: u64, now: u64, n: u64) -> Result<u64, u64> {
    let after = debt(tat, now).saturating_add(n.saturating_mul(rate.cost));
    if after <= rate.tau {
        Ok(now.saturating_add(after))
    } else {
        Err(after - rate.tau)
    }
}

/// Would one more unit fit at `now`? `Err(ns)` until it would. Takes nothing: token usage is
/// only known afterwards, so admission asks for one token and the usage is [`debit`]ed later.
pub fn check(rate: Rate, tat: u64, now: u64) -> Result<(), u64> {
    take(rate, tat, now, 1).map(|_| ())
}

/// Charge `n` units used at `now`, past the bucket's end if need be (a deficit, repaid before
/// the next admission), up to [`MAX_DEBT_NS`].
pub fn debit(rate: Rate, tat: u64, now: u64, n: u64) -> u64 {
    let after = debt(tat, now)
        .saturating_add(n.saturating_mul(rate.cost))
        .min(MAX_DEBT_NS.max(rate.tau));
    now.saturating_add(after)
}

/// Whole units left at `now` (0 in a deficit).
pub fn remaining(rate: Rate, tat: u64, now: u64) -> u64 {
    rate.tau.saturating_sub(debt(tat, now)) / rate.cost
}

/// Units used and not yet refilled at `now`, rounded up (beyond the limit in a deficit).
#[cfg(test)]
pub fn used(rate: Rate, tat: u64, now: u64) -> u64 {
    debt(tat, now).div_ceil(rate.cost)
}

/// The TAT that keeps the same units used when the limit changes from `old` to `new` (a
/// reload): a key that used 8 of 10 requests has 8 of its new 20 used, not 16.
pub fn rescale(old: Rate, new: Rate, tat: u64, now: u64) -> u64 {
    let scaled = u128::from(debt(tat, now)) * u128::from(new.cost) / u128::from(old.cost);
    let scaled = u64::try_from(scaled).unwrap_or(u64::MAX).min(MAX_DEBT_NS);
    now.saturating_add(scaled)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    /// Take one unit at each of `times`, threading the TAT; how many passed.
    fn admitted(rate: Rate, times: &[u64]) -> usize {
        let mut tat = 0;
        let mut n = 0;
        for &t in times {
            if let Ok(next) = take(rate, tat, t, 1) {
                tat = next;
                n += 1;
            }
        }
        n
    }

    #[test]
    fn a_full_bucket_passes_exactly_the_limit_at_once() {
        for limit in [1, 2, 7, 10, 60, 61, 1000, 4999, 999_983, MAX_PER_MINUTE] {
            let rate = Rate::per_minute(limit).unwrap();
            let now = 1234 * S;
            // One at a time (up to a few thousand), and all at once.
            if limit < 5000 {
                let n = usize::try_from(limit).unwrap();
                assert_eq!(admitted(rate, &vec![now; n + 5]), n, "{limit}");
            }
            assert!(take(rate, 0, now, limit).is_ok(), "{limit}");
            assert!(take(rate, 0, now, limit + 1).is_err(), "{limit}");
            // Whatever the rounding, the bucket holds the limit, and a unit costs under
            // 1 ns more than 60 s / limit.
            assert_eq!(remaining(rate, 0, now), limit);
            assert!(u128::from(rate.cost) * u128::from(limit) < u128::from(WINDOW_NS + limit));
        }
        assert_eq!(Rate::per_minute(0), None);
    }

    #[test]
    fn after_the_burst_one_unit_per_cost() {
        let rate = Rate::per_minute(10).unwrap();
        assert_eq!(rate.cost, 6 * S);
        let mut tat = 0;
        for _ in 0..10 {
            tat = take(rate, tat, 100 * S, 1).unwrap();
        }
        // Empty: the next unit fits 6 s later, to the nanosecond.
        assert_eq!(take(rate, tat, 100 * S, 1), Err(6 * S));
        assert_eq!(take(rate, tat, 106 * S - 1, 1), Err(1));
        let tat = take(rate, tat, 106 * S, 1).unwrap();
        assert_eq!(take(rate, tat, 106 * S, 1), Err(6 * S));
        assert_eq!(remaining(rate, tat, 106 * S), 0);
        // A minute of silence refills it whole, and no more.
        assert_eq!(remaining(rate, tat, 10_000 * S), 10);
        assert_eq!(debt(tat, 10_000 * S), 0);
    }

    #[test]
    fn the_rate_over_any_window_is_bounded() {
        // Property, for arrivals at random times (four per refill on average): whatever the
        // arrivals, k units pass in a span s only if k × cost ≤ tau + s. So any 60 s window
        // holds at most 2L − 1 units (a full bucket, then a minute of refill), and a run of t
        // ns at most L + t / cost: the long-run average is the limit.
        let mut seed = 0x5eed_u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            seed >> 33
        };
        for limit in [1, 3, 10, 97, 600] {
            let rate = Rate::per_minute(limit).unwrap();
            let mut t = 0;
            let mut tat = 0;
            let mut passed = Vec::new();
            for _ in 0..20_000 {
                t += next() % (rate.cost / 2 + 1);
                if let Ok(n) = take(rate, tat, t, 1) {
                    tat = n;
                    passed.push(t);
                }
            }
            let mut lo = 0;
            for hi in 0..passed.len() {
                while passed[hi] - passed[lo] >= WINDOW_NS {
                    lo += 1;
                }
                let k = (hi - lo + 1) as u64;
                assert!(k < 2 * limit, "{limit}: {k} in one window");
            }
            let k = passed.len() as u64;
            assert!(k <= limit + t / rate.cost, "{limit}: {k} in {t} ns");
            // No arrival gap exceeds cost / 2, so each refilled unit is taken within that
            // long of its refill: at least t / (1.5 × cost) units pass.
            assert!(3 * k >= 2 * (t / rate.cost), "{limit}: only {k} in {t} ns");
        }
    }

    #[test]
    fn tokens_are_admitted_while_one_remains_and_debited_after() {
        let rate = Rate::per_minute(100).unwrap();
        assert_eq!(rate.cost, 600_000_000);
        let now = 50 * S;
        assert_eq!(check(rate, 0, now), Ok(()));
        // 99 used: one left, still admitted.
        let tat = debit(rate, 0, now, 99);
        assert_eq!(remaining(rate, tat, now), 1);
        assert_eq!(check(rate, tat, now), Ok(()));
        // 175 used: a deficit of 75; admission waits until one token is back (76 refills).
        let tat = debit(rate, tat, now, 76);
        assert_eq!(used(rate, tat, now), 175);
        assert_eq!(remaining(rate, tat, now), 0);
        assert_eq!(check(rate, tat, now), Err(76 * rate.cost));
        assert_eq!(check(rate, tat, now + 76 * rate.cost), Ok(()));
        assert_eq!(check(rate, tat, now + 76 * rate.cost - 1), Err(1));
        // In-flight requests debit concurrently in any order: the total is what counts.
        let a = debit(rate, debit(rate, 0, now, 30), now, 50);
        let b = debit(rate, debit(rate, 0, now, 50), now, 30);
        assert_eq!(a, b);
        // Debits land at different times: refill in between is credited.
        let tat = debit(rate, 0, now, 100);
        let tat = debit(rate, tat, now + 30 * S, 10);
        assert_eq!(used(rate, tat, now + 30 * S), 60);
    }

    #[test]
    fn a_deficit_is_capped() {
        let rate = Rate::per_minute(10).unwrap();
        let tat = debit(rate, 0, 5, u64::MAX);
        assert_eq!(debt(tat, 5), MAX_DEBT_NS);
        assert_eq!(debit(rate, tat, 5, u64::MAX), tat);
        assert!(take(rate, u64::MAX, 0, u64::MAX).is_err());
    }

    #[test]
    fn rescaling_keeps_the_units_used() {
        let ten = Rate::per_minute(10).unwrap();
        let twenty = Rate::per_minute(20).unwrap();
        let now = 7 * S;
        let mut tat = 0;
        for _ in 0..8 {
            tat = take(ten, tat, now, 1).unwrap();
        }
        let up = rescale(ten, twenty, tat, now);
        assert_eq!((used(twenty, up, now), remaining(twenty, up, now)), (8, 12));
        let down = rescale(twenty, ten, up, now);
        assert_eq!(down, tat);
        let five = Rate::per_minute(5).unwrap();
        let over = rescale(ten, five, tat, now);
        assert_eq!((used(five, over, now), remaining(five, over, now)), (8, 0));
        // A full bucket stays full.
        assert_eq!(rescale(ten, five, 0, now), now);
    }
}
