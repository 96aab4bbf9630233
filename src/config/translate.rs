//! `[translate]`: defaults for translated requests (`max_tokens`, the effort ⇄ budget table),
//! with the reasoning seal key from `[responses]`.

use super::compiler::{Compiler, ConfigError};
use super::raw;

/// `max_tokens` for Anthropic when an OpenAI client omitted it.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// Compiled `[translate]`.
#[derive(Clone, Debug)]
pub struct TranslateConfig {
    /// Anthropic `max_tokens` when an OpenAI client gave none.
    pub default_max_tokens: u32,
    /// Effort ⇄ budget table.
    pub effort_budgets: crate::translate::EffortTable,
    /// Seals reasoning handed to Responses clients (`[responses] seal_key_env`, or drawn at
    /// start).
    pub seal: crate::seal::SealKey,
    /// `seal_key_env` names a variable that is not set (the key was drawn instead).
    pub seal_key_missing: Option<String>,
    /// The key was drawn at start (no `seal_key_env`, or its variable unset): a reload keeps it.
    pub seal_key_drawn: bool,
}

impl Compiler<'_> {
    /// `[translate]`, and the seal key `[responses] seal_key_env` names.
    pub(super) fn translate(
        &self,
        raw: &raw::RawTranslate,
        responses: &raw::RawResponses,
    ) -> Result<TranslateConfig, ConfigError> {
        let (seal, seal_key_missing) = self.seal_key(responses.seal_key_env.as_ref())?;
        let seal_key_drawn = responses.seal_key_env.is_none() || seal_key_missing.is_some();
        let d = crate::translate::EffortTable::default();
        let b = &raw.reasoning_effort_budgets;
        Ok(TranslateConfig {
            default_max_tokens: raw.default_max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            effort_budgets: crate::translate::EffortTable {
                minimal: b.minimal.unwrap_or(d.minimal),
                low: b.low.unwrap_or(d.low),
                medium: b.medium.unwrap_or(d.medium),
                high: b.high.unwrap_or(d.high),
                xhigh: b.xhigh.unwrap_or(d.xhigh),
                max: b.max.unwrap_or(d.max),
                low_up_to: b.low_up_to.unwrap_or(d.low_up_to),
                medium_up_to: b.medium_up_to.unwrap_or(d.medium_up_to),
            },
            seal,
            seal_key_missing,
            seal_key_drawn,
        })
    }
}
