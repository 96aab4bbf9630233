//! `[key.budget]` and `[[price]]`: what a key may spend per period, and what models cost.

use super::compiler::{Compiler, ConfigError};
use super::raw;
use crate::budget::{
    nano_per_token, nano_usd, Budget, Period, Price, Prices, DEFAULT_RESERVE_OUTPUT_TOKENS,
    MAX_PRICE_PER_MTOK, MAX_TOKENS, MAX_USD, MAX_WINDOW_HOURS,
};
use toml::Spanned;

impl Compiler<'_> {
    /// A key's budget: at least one of `usd` and `tokens`, a period.
    pub(super) fn budget(
        &self,
        raw: &Spanned<raw::RawBudget>,
        path: &str,
    ) -> Result<Budget, ConfigError> {
        let b = raw.get_ref();
        let usd = match &b.usd {
            None => None,
            Some(v) => Some(nano_usd(*v.get_ref()).ok_or_else(|| {
                self.err(
                    v.span(),
                    format!("{path}.usd"),
                    format!("dollars per period: more than 0, at most {MAX_USD}"),
                )
            })?),
        };
        let tokens = match &b.tokens {
            Some(t) if *t.get_ref() == 0 || *t.get_ref() > MAX_TOKENS => {
                return Err(self.err(
                    t.span(),
                    format!("{path}.tokens"),
                    format!("tokens per period: 1 to {MAX_TOKENS}"),
                ))
            }
            Some(t) => Some(*t.get_ref()),
            None => None,
        };
        if usd.is_none() && tokens.is_none() {
            return Err(self.err(raw.span(), path, "a budget needs `usd`, `tokens` or both"));
        }
        let hours = |h: &Option<Spanned<u32>>| match h {
            Some(h) if (1..=MAX_WINDOW_HOURS).contains(h.get_ref()) => Ok(Some(*h.get_ref())),
            Some(h) => Err(self.err(
                h.span(),
                format!("{path}.hours"),
                format!("must be 1 to {MAX_WINDOW_HOURS}"),
            )),
            None => Ok(None),
        };
        let period = match (b.period.as_ref(), hours(&b.hours)?) {
            (None, None) => Period::Month,
            (Some(p), h) => match (p.get_ref().as_str(), h) {
                ("day", None) => Period::Day,
                ("month", None) => Period::Month,
                ("hours", Some(h)) => Period::Hours(h),
                ("hours", None) => {
                    return Err(self.err(
                        p.span(),
                        format!("{path}.hours"),
                        "is needed with period = \"hours\"",
                    ))
                }
                ("day" | "month", Some(_)) => {
                    return Err(self.err(
                        p.span(),
                        format!("{path}.hours"),
                        "goes only with period = \"hours\"",
                    ))
                }
                (other, _) => {
                    return Err(self.err(
                        p.span(),
                        format!("{path}.period"),
                        format!("{other:?}: expected \"day\", \"month\" or \"hours\""),
                    ))
                }
            },
            (None, Some(_)) => {
                return Err(self.err(
                    raw.span(),
                    format!("{path}.period"),
                    "set period = \"hours\" with `hours`",
                ))
            }
        };
        let reserve_output_tokens = match &b.reserve_output_tokens {
            Some(r) if *r.get_ref() == 0 || *r.get_ref() > 10_000_000 => {
                return Err(self.err(
                    r.span(),
                    format!("{path}.reserve_output_tokens"),
                    "must be 1 to 10000000",
                ))
            }
            Some(r) => *r.get_ref(),
            None => DEFAULT_RESERVE_OUTPUT_TOKENS,
        };
        Ok(Budget {
            nano_usd: usd,
            tokens,
            period,
            reserve_output_tokens,
        })
    }

    /// `[[price]]` in file order.
    pub(super) fn prices(&self, raw: &[Spanned<raw::RawPrice>]) -> Result<Prices, ConfigError> {
        let mut out = Vec::with_capacity(raw.len());
        for (i, sp) in raw.iter().enumerate() {
            let p = sp.get_ref();
            let path = format!("price[{i}]");
            if crate::format::check_model_id(p.model.get_ref()).is_err()
                || p.model.get_ref().is_empty()
            {
                return Err(self.err(
                    p.model.span(),
                    format!("{path}.model"),
                    "a model id (optionally ending in `*`): no control characters, at most 256 bytes",
                ));
            }
            let price = |v: &Spanned<f64>, key: &str| {
                nano_per_token(*v.get_ref()).ok_or_else(|| {
                    self.err(
                        v.span(),
                        format!("{path}.{key}"),
                        format!("dollars per million tokens: 0 to {MAX_PRICE_PER_MTOK}"),
                    )
                })
            };
            let input = price(&p.input, "input")?;
            out.push(Price {
                model: p.model.get_ref().clone(),
                provider: p.provider.as_ref().map(|s| s.get_ref().clone()),
                input,
                output: price(&p.output, "output")?,
                cache_read: p
                    .cache_read
                    .as_ref()
                    .map_or(Ok(input), |v| price(v, "cache_read"))?,
                cache_write: p
                    .cache_write
                    .as_ref()
                    .map_or(Ok(input), |v| price(v, "cache_write"))?,
            });
        }
        Ok(Prices(out))
    }
}

#[cfg(test)]
mod tests {
    use crate::budget::Period;
    use crate::config::testing::fails;
    use crate::config::Config;

    const HASH: &str = "f2d4b279b82ad92867af5878fe7482caebdd7b75499868d0362a6e63ff51f046";

    fn key(budget: &str) -> String {
        format!("[[key]]\nname = \"team\"\nsha256 = \"{HASH}\"\n[key.budget]\n{budget}")
    }

    #[test]
    fn budgets_and_prices_compile() {
        let c = Config::from_toml(
            &format!(
                "{}\n[[price]]\nmodel = \"claude-*\"\ninput = 3.0\noutput = 15.0\ncache_read = 0.3\n",
                key("usd = 50.0\ntokens = 1000000\nperiod = \"day\"\n")
            ),
            "t.toml",
        )
        .unwrap();
        let b = c.keys[0].budget.unwrap();
        assert_eq!(b.nano_usd, Some(50_000_000_000));
        assert_eq!(b.tokens, Some(1_000_000));
        assert_eq!(b.period, Period::Day);
        let p = c.prices.find("any", "claude-haiku-4-5").unwrap();
        assert_eq!(
            (p.input, p.output, p.cache_read, p.cache_write),
            (3000, 15000, 300, 3000)
        );
        let c =
            Config::from_toml(&key("usd = 1\nperiod = \"hours\"\nhours = 6\n"), "t.toml").unwrap();
        assert_eq!(c.keys[0].budget.unwrap().period, Period::Hours(6));
    }

    #[test]
    fn bad_budgets_are_named() {
        fails(
            &key("period = \"day\"\n"),
            4,
            "key[0].budget",
            "a budget needs `usd`, `tokens` or both",
        );
        fails(
            &key("usd = -1.0\n"),
            5,
            "key[0].budget.usd",
            "dollars per period: more than 0, at most 1000000",
        );
        fails(
            &key("tokens = 5\nperiod = \"week\"\n"),
            6,
            "key[0].budget.period",
            "\"week\": expected \"day\", \"month\" or \"hours\"",
        );
        fails(
            &key("tokens = 5\nperiod = \"hours\"\n"),
            6,
            "key[0].budget.hours",
            "is needed with period = \"hours\"",
        );
        fails(
            "[[price]]\nmodel = \"m\"\ninput = 1.0\noutput = -2.0\n",
            4,
            "price[0].output",
            "dollars per million tokens: 0 to 1000000",
        );
    }
}
