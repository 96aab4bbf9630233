//! Budgets: what a key may spend over a period, in money (priced per model by `[[price]]`)
//! and in tokens. Pure: periods from a Unix time, costs from usage and a price; the
//! counters live in `crate::limits`.
//!
//! Money is counted in nano-dollars (10⁻⁹ USD) as whole numbers: a price is kept as
//! nano-dollars per token (USD per million tokens × 1000), so a price is exact to $0.001 per
//! million tokens and a budget to the nano-dollar, with no float on the request path.

use crate::calendar::{civil_from_days, days_from_civil, DAY_MS};
use crate::usage::Usage;

/// Largest budget in dollars: 10⁶ USD is 10¹⁵ nano-dollars, exact in the doubles Redis's
/// scripts count in (up to 2⁵³).
pub const MAX_USD: f64 = 1e6;
/// Largest budget in tokens, for the same reason.
pub const MAX_TOKENS: u64 = 1_000_000_000_000_000;
/// Largest price, in dollars per million tokens.
pub const MAX_PRICE_PER_MTOK: f64 = 1e6;
/// Output tokens reserved for a request that names no output limit, by default.
pub const DEFAULT_RESERVE_OUTPUT_TOKENS: u64 = 4096;
/// Longest fixed window, in hours (a year).
pub const MAX_WINDOW_HOURS: u32 = 8784;
/// Nano-dollars in a dollar.
pub const NANO_PER_USD: f64 = 1e9;

/// Over what a budget is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    /// A UTC calendar day.
    Day,
    /// A UTC calendar month.
    Month,
    /// Fixed windows of this many hours, counted from the Unix epoch.
    Hours(u32),
}

/// One period: an id (the same on every node for the same instant) and when it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Days since the epoch (day), months since 1970-01 (month), windows since the epoch.
    pub id: u64,
    /// Unix milliseconds it ends at.
    pub end_ms: i64,
}

impl Period {
    /// The period holding Unix time `ms` (times before 1970 fall in the first one).
    pub fn window(self, ms: i64) -> Window {
        let ms = ms.max(0);
        match self {
            Period::Day => {
                let day = ms / DAY_MS;
                Window {
                    id: day as u64,
                    end_ms: (day + 1) * DAY_MS,
                }
            }
            Period::Month => {
                let (y, m, _) = civil_from_days(ms / DAY_MS);
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                let end_days = days_from_civil(ny, nm, 1).unwrap_or(ms / DAY_MS + 31);
                Window {
                    id: ((y - 1970) * 12 + i64::from(m) - 1).max(0) as u64,
                    end_ms: end_days * DAY_MS,
                }
            }
            Period::Hours(h) => {
                let len = i64::from(h.max(1)) * 3_600_000;
                let n = ms / len;
                Window {
                    id: n as u64,
                    end_ms: (n + 1) * len,
                }
            }
        }
    }

    /// Its name in config and messages.
    pub fn describe(self) -> String {
        match self {
            Period::Day => "day".into(),
            Period::Month => "month".into(),
            Period::Hours(h) => format!("{h} hours"),
        }
    }

    /// A short tag for shared-store keys: `d`, `m`, `h{N}`.
    pub fn tag(self) -> String {
        match self {
            Period::Day => "d".into(),
            Period::Month => "m".into(),
            Period::Hours(h) => format!("h{h}"),
        }
    }
}

/// A key's budget, compiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Nano-dollars per period (None: money not limited).
    pub nano_usd: Option<u64>,
    /// Tokens (input + output) per period (None: not limited).
    pub tokens: Option<u64>,
    pub period: Period,
    /// Output tokens reserved when a request names no output limit.
    pub reserve_output_tokens: u64,
}

/// What one model's tokens cost, in nano-dollars per token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Price {
    /// The provider's model id (`prefix*` matches by prefix).
    pub model: String,
    /// Only when served by this provider.
    pub provider: Option<String>,
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
}

impl Price {
    fn matches(&self, provider: &str, model: &str) -> bool {
        if self.provider.as_deref().is_some_and(|p| p != provider) {
            return false;
        }
        match self.model.strip_suffix('*') {
            Some(prefix) => model.starts_with(prefix),
            None => self.model == model,
        }
    }

    /// What `usage` costs, in nano-dollars. `usage.input` includes the cached parts.
    pub fn cost(&self, usage: &Usage) -> u64 {
        let cached = usage.cache_read.saturating_add(usage.cache_write);
        let plain = usage.input.saturating_sub(cached);
        plain
            .saturating_mul(self.input)
            .saturating_add(usage.cache_read.saturating_mul(self.cache_read))
            .saturating_add(usage.cache_write.saturating_mul(self.cache_write))
            .saturating_add(usage.output.saturating_mul(self.output))
    }
}

/// `[[price]]` in file order: the first match wins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prices(pub Vec<Price>);

impl Prices {
    /// The price of `model` served by `provider`.
    pub fn find(&self, provider: &str, model: &str) -> Option<&Price> {
        self.0.iter().find(|p| p.matches(provider, model))
    }
}

/// Dollars per million tokens → nano-dollars per token (None: negative, not finite, or
/// beyond [`MAX_PRICE_PER_MTOK`]).
pub fn nano_per_token(usd_per_mtok: f64) -> Option<u64> {
    (usd_per_mtok.is_finite() && (0.0..=MAX_PRICE_PER_MTOK).contains(&usd_per_mtok))
        .then(|| (usd_per_mtok * 1000.0).round() as u64)
}

/// Dollars → nano-dollars (None: not positive, not finite, or beyond [`MAX_USD`]).
pub fn nano_usd(usd: f64) -> Option<u64> {
    (usd.is_finite() && usd > 0.0 && usd <= MAX_USD).then(|| (usd * NANO_PER_USD).round() as u64)
}

/// Nano-dollars as dollars with cents, for messages.
pub fn dollars(nano: u64) -> String {
    let cents = nano.div_ceil(10_000_000);
    format!("${}.{:02}", cents / 100, cents % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_calendar_windows_in_utc() {
        // 2026-11-25T21:43:00Z
        let t = 1_795_642_980_000;
        let day = Period::Day.window(t);
        assert_eq!(day.end_ms, 1_795_651_200_000, "2026-11-26T00:00Z");
        assert_eq!(Period::Day.window(day.end_ms - 1).id, day.id);
        assert_eq!(Period::Day.window(day.end_ms).id, day.id + 1);
        let month = Period::Month.window(t);
        assert_eq!(month.id, (2026 - 1970) * 12 + 10);
        assert_eq!(month.end_ms, 1_796_083_200_000, "2026-12-01T00:00Z");
        let dec = Period::Month.window(month.end_ms);
        assert_eq!(dec.id, month.id + 1);
        assert_eq!(dec.end_ms, 1_798_761_600_000, "2027-01-01T00:00Z");
        let six = Period::Hours(6).window(t);
        assert_eq!(six.end_ms % (6 * 3_600_000), 0);
        assert!(six.end_ms > t && six.end_ms - t <= 6 * 3_600_000);
    }

    #[test]
    fn costs_in_nano_dollars() {
        let p = Price {
            model: "claude-sonnet-*".into(),
            provider: None,
            input: nano_per_token(3.0).unwrap(),
            output: nano_per_token(15.0).unwrap(),
            cache_read: nano_per_token(0.3).unwrap(),
            cache_write: nano_per_token(3.75).unwrap(),
        };
        let u = Usage {
            input: 1_000_000,
            output: 100_000,
            cache_read: 500_000,
            cache_write: 100_000,
            reasoning: 0,
        };
        // 400k plain × $3/M + 500k × $0.3/M + 100k × $3.75/M + 100k × $15/M
        assert_eq!(
            p.cost(&u),
            1_200_000_000 + 150_000_000 + 375_000_000 + 1_500_000_000
        );
        assert_eq!(dollars(p.cost(&u)), "$3.23");
        let prices = Prices(vec![
            Price {
                model: "gpt-4o".into(),
                provider: Some("azure".into()),
                ..p.clone()
            },
            p.clone(),
        ]);
        assert!(prices.find("openai", "gpt-4o").is_none());
        assert!(prices.find("azure", "gpt-4o").is_some());
        assert!(prices.find("a", "claude-sonnet-4-5").is_some());
        assert_eq!(nano_per_token(-1.0), None);
        assert_eq!(nano_per_token(f64::NAN), None);
        assert_eq!(nano_per_token(0.075), Some(75));
        assert_eq!(nano_usd(0.0), None);
        assert_eq!(nano_usd(50.0), Some(50_000_000_000));
    }
}
