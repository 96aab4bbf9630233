//! Load balancing within a route: the order in which its targets are tried, by strategy, from
//! per-worker state (a small PRNG and each target's decaying time to first byte).

use std::time::Duration;

/// How a route orders its targets for each request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Strategy {
    /// As written in the config: the first is preferred, the rest are fallbacks.
    #[default]
    Ordered,
    /// The first target drawn at random in proportion to `weight`, then the rest likewise.
    Weighted,
    /// The faster of two targets drawn at random (power of two choices) first, by each
    /// target's decaying average time to first byte; the rest from fastest to slowest.
    LeastLatency,
}

impl Strategy {
    /// Parse a config value.
    pub fn parse(s: &str) -> Option<Strategy> {
        Some(match s {
            "ordered" => Strategy::Ordered,
            "weighted" => Strategy::Weighted,
            "least_latency" => Strategy::LeastLatency,
            _ => return None,
        })
    }
}

/// A small, fast PRNG (SplitMix64) for jitter and balancing: one per worker, no locks.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded (workers seed from the clock and their index).
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0; 0 gives 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Multiply-shift: unbiased enough for balancing and jitter.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// Weight of the newest sample in the decaying average.
const EWMA_ALPHA: f64 = 0.2;

/// A decaying average of a target's time to first byte; None until measured.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ewma(Option<f64>);

impl Ewma {
    /// Add a sample.
    pub fn record(&mut self, d: Duration) {
        let x = d.as_secs_f64();
        self.0 = Some(match self.0 {
            None => x,
            Some(avg) => avg + EWMA_ALPHA * (x - avg),
        });
    }

    /// The average in seconds; an unmeasured target counts as instant, so it gets tried.
    pub fn value(&self) -> f64 {
        self.0.unwrap_or(0.0)
    }
}

/// The order to try `n` targets in. `weight(i)` and `latency(i)` describe target `i`.
pub fn order(
    strategy: Strategy,
    n: usize,
    weight: impl Fn(usize) -> u32,
    latency: impl Fn(usize) -> f64,
    rng: &mut Rng,
) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    match strategy {
        Strategy::Ordered => {}
        Strategy::Weighted => {
            // Draw without replacement in proportion to weight; weight 0 goes last, in order.
            let mut out = Vec::with_capacity(n);
            let mut left: Vec<usize> = idx.iter().copied().filter(|&i| weight(i) > 0).collect();
            while !left.is_empty() {
                let total: u64 = left.iter().map(|&i| u64::from(weight(i))).sum();
                let mut r = rng.below(total);
                let mut pick = 0;
                for (k, &i) in left.iter().enumerate() {
                    let w = u64::from(weight(i));
                    if r < w {
                        pick = k;
                        break;
                    }
                    r -= w;
                }
                out.push(left.remove(pick));
            }
            out.extend(idx.iter().copied().filter(|&i| weight(i) == 0));
            idx = out;
        }
        Strategy::LeastLatency => {
            idx.sort_by(|&a, &b| latency(a).total_cmp(&latency(b)));
            if n >= 2 {
                // Two choices at random; the faster leads. The fastest target therefore wins
                // only when drawn, so a fast target gets about (2n-1)/n² of the traffic,
                // not all of it.
                let a = rng.below(n as u64) as usize;
                let mut b = rng.below(n as u64 - 1) as usize;
                if b >= a {
                    b += 1;
                }
                let first = if latency(a) <= latency(b) { a } else { b };
                idx.retain(|&i| i != first);
                idx.insert(0, first);
            }
        }
    }
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn firsts(strategy: Strategy, weights: &[u32], lat: &[f64], draws: usize) -> Vec<usize> {
        let mut rng = Rng::new(42);
        let mut count = vec![0; weights.len()];
        for _ in 0..draws {
            let o = order(
                strategy,
                weights.len(),
                |i| weights[i],
                |i| lat[i],
                &mut rng,
            );
            let mut sorted = o.clone();
            sorted.sort_unstable();
            assert_eq!(
                sorted,
                (0..weights.len()).collect::<Vec<_>>(),
                "a permutation"
            );
            count[o[0]] += 1;
        }
        count
    }

    #[test]
    fn ordered_keeps_the_config_order() {
        let mut rng = Rng::new(1);
        assert_eq!(
            order(Strategy::Ordered, 3, |_| 1, |_| 0.0, &mut rng),
            vec![0, 1, 2]
        );
    }

    #[test]
    fn weighted_first_picks_follow_weights() {
        let n = 60_000;
        let c = firsts(Strategy::Weighted, &[1, 2, 3], &[0.0; 3], n);
        for (i, w) in [1.0, 2.0, 3.0].iter().enumerate() {
            let want = n as f64 * w / 6.0;
            let got = c[i] as f64;
            assert!(
                (got - want).abs() < want * 0.05,
                "target {i}: {got} vs {want}"
            );
        }
        // Weight 0: never first while another has weight, still a fallback (last).
        let c = firsts(Strategy::Weighted, &[0, 1], &[0.0; 2], 1000);
        assert_eq!(c, vec![0, 1000]);
        let mut rng = Rng::new(3);
        assert_eq!(
            order(Strategy::Weighted, 2, |i| [0, 1][i], |_| 0.0, &mut rng),
            vec![1, 0]
        );
    }

    #[test]
    fn least_latency_prefers_fast_without_stampeding() {
        let n = 30_000;
        // Target 0 is fastest; with three targets and two choices it leads when drawn: 2/3.
        let c = firsts(Strategy::LeastLatency, &[1; 3], &[0.01, 0.05, 0.2], n);
        let share = |i: usize| c[i] as f64 / n as f64;
        assert!((share(0) - 2.0 / 3.0).abs() < 0.03, "{c:?}");
        assert!((share(1) - 1.0 / 3.0).abs() < 0.03, "{c:?}");
        assert_eq!(c[2], 0, "the slowest never leads: {c:?}");
        // Fallbacks follow fastest first.
        let mut rng = Rng::new(9);
        let o = order(
            Strategy::LeastLatency,
            3,
            |_| 1,
            |i| [0.3, 0.1, 0.2][i],
            &mut rng,
        );
        let rest: Vec<usize> = o[1..].to_vec();
        let mut sorted = rest.clone();
        sorted.sort_by(|a, b| [0.3f64, 0.1, 0.2][*a].total_cmp(&[0.3, 0.1, 0.2][*b]));
        assert_eq!(rest, sorted);
    }

    #[test]
    fn ewma_decays_toward_new_samples() {
        let mut e = Ewma::default();
        assert_eq!(e.value(), 0.0);
        e.record(Duration::from_millis(100));
        assert!((e.value() - 0.1).abs() < 1e-9);
        for _ in 0..50 {
            e.record(Duration::from_millis(10));
        }
        assert!((e.value() - 0.01).abs() < 1e-3);
    }

    #[test]
    fn rng_below_stays_in_range() {
        let mut rng = Rng::new(7);
        for n in 1..50u64 {
            for _ in 0..100 {
                assert!(rng.below(n) < n);
            }
        }
        assert_eq!(rng.below(0), 0);
    }
}
