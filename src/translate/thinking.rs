//! Which thinking control an Anthropic model takes, read from its model id.
//!
//! Claude 4.6 and later take adaptive thinking (`thinking: {"type":"adaptive"}` plus
//! `output_config.effort`); Opus 4.7 and later, and the 5 family, take nothing else and
//! answer the budget form with a 400. Older models take only the budget form. Ids not
//! recognised as an older Claude are taken to be newer: new models are what gets added.

/// First Claude version (major, minor) that takes adaptive thinking.
const ADAPTIVE_FROM: (u32, u32) = (4, 6);

/// First Claude version (major, minor) that takes only adaptive thinking, and the `xhigh`
/// effort.
const ADAPTIVE_ONLY_FROM: (u32, u32) = (4, 7);

/// Longest digit run read as a version number; longer runs are dates (`20250514`).
const MAX_VERSION_DIGITS: usize = 2;

/// The thinking form to send for `reasoning_effort` (config `thinking_style`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ThinkingStyle {
    /// Chosen per upstream model id by [`thinking_style_for`].
    #[default]
    Auto,
    /// `thinking: {"type":"adaptive"}` + `output_config.effort`.
    Adaptive,
    /// `thinking: {"type":"enabled","budget_tokens":N}` from the effort table.
    Budget,
}

impl ThinkingStyle {
    /// The config spelling (`auto|adaptive|budget`).
    pub fn as_str(self) -> &'static str {
        match self {
            ThinkingStyle::Auto => "auto",
            ThinkingStyle::Adaptive => "adaptive",
            ThinkingStyle::Budget => "budget",
        }
    }

    /// Parses the config spelling.
    pub fn parse(s: &str) -> Option<ThinkingStyle> {
        match s {
            "auto" => Some(ThinkingStyle::Auto),
            "adaptive" => Some(ThinkingStyle::Adaptive),
            "budget" => Some(ThinkingStyle::Budget),
            _ => None,
        }
    }

    /// The form to send to `model`: `Auto` decided by the model id.
    pub fn resolve(self, model: &str) -> ThinkingForm {
        match self {
            ThinkingStyle::Auto => thinking_style_for(model),
            ThinkingStyle::Adaptive => ThinkingForm::Adaptive,
            ThinkingStyle::Budget => ThinkingForm::Budget,
        }
    }
}

/// A thinking form actually sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThinkingForm {
    /// `thinking: {"type":"adaptive"}` + `output_config.effort`.
    Adaptive,
    /// `thinking: {"type":"enabled","budget_tokens":N}`.
    Budget,
}

/// What a model accepts, by generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Generation {
    /// Before 4.6: budget form only; no `xhigh` or `max` effort.
    BudgetOnly,
    /// 4.6: adaptive preferred, budget deprecated but accepted; `max` but no `xhigh`.
    Adaptive,
    /// Opus 4.7 and later, the 5 family, and unrecognised ids: adaptive only, every effort.
    AdaptiveOnly,
}

/// The form `auto` picks for `model`: adaptive unless the id is a recognised older Claude.
pub fn thinking_style_for(model: &str) -> ThinkingForm {
    match generation(model) {
        Generation::BudgetOnly => ThinkingForm::Budget,
        Generation::Adaptive | Generation::AdaptiveOnly => ThinkingForm::Adaptive,
    }
}

/// The generation of a model id. Handles the first-party (`claude-opus-4-7`,
/// `claude-3-7-sonnet-20250219`), Bedrock (`anthropic.claude-3-5-sonnet-20241022-v2:0`),
/// Vertex (`claude-opus-4-1@20250805`) and dotted (`claude-3.7-sonnet`) spellings.
pub(crate) fn generation(model: &str) -> Generation {
    let lower = model.to_ascii_lowercase();
    let Some(at) = lower.find("claude") else {
        return Generation::AdaptiveOnly;
    };
    let Some(version) = version(lower.get(at..).unwrap_or_default()) else {
        // `claude-mythos-preview` and other ids without a number: newer naming.
        return Generation::AdaptiveOnly;
    };
    if version >= ADAPTIVE_ONLY_FROM {
        Generation::AdaptiveOnly
    } else if version >= ADAPTIVE_FROM {
        Generation::Adaptive
    } else {
        Generation::BudgetOnly
    }
}

/// The first version number in an id: a 1–2 digit nonzero major, and the minor right after
/// it (0 when the next part is a word or a date: `claude-opus-4-20250514` is 4.0).
fn version(id: &str) -> Option<(u32, u32)> {
    let number = |part: &str| {
        (!part.is_empty()
            && part.len() <= MAX_VERSION_DIGITS
            && part.bytes().all(|b| b.is_ascii_digit()))
        .then(|| part.parse::<u32>().ok())
        .flatten()
    };
    let mut parts = id.split(|c: char| !c.is_ascii_alphanumeric());
    let major = parts.by_ref().find_map(|p| number(p).filter(|&n| n > 0))?;
    let minor = parts.next().and_then(number).unwrap_or(0);
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn style_and_generation_by_model_id() {
        use Generation::{Adaptive, AdaptiveOnly, BudgetOnly};
        for (id, want) in [
            // Adaptive only: Opus 4.7+, the 5 family, unnumbered new names.
            ("claude-opus-4-7", AdaptiveOnly),
            ("claude-opus-4-7-20260415", AdaptiveOnly),
            ("claude-opus-4-8", AdaptiveOnly),
            ("claude-opus-5", AdaptiveOnly),
            ("claude-sonnet-5-20260901", AdaptiveOnly),
            ("claude-mythos-5", AdaptiveOnly),
            ("claude-fable-5", AdaptiveOnly),
            ("claude-mythos-preview", AdaptiveOnly),
            ("us.anthropic.claude-opus-4-7-v1:0", AdaptiveOnly),
            ("claude-opus-4.7", AdaptiveOnly),
            ("Claude-Opus-4-7", AdaptiveOnly),
            // 4.6: adaptive preferred.
            ("claude-opus-4-6", Adaptive),
            ("claude-sonnet-4-6", Adaptive),
            ("claude-opus-4-6@20260205", Adaptive),
            // Recognised older models: budget only.
            ("claude-sonnet-4-5", BudgetOnly),
            ("claude-sonnet-4-5-20250929", BudgetOnly),
            ("claude-opus-4-5", BudgetOnly),
            ("claude-opus-4-1", BudgetOnly),
            ("claude-opus-4-1@20250805", BudgetOnly),
            ("claude-sonnet-4-20250514", BudgetOnly),
            ("claude-opus-4-0", BudgetOnly),
            ("claude-haiku-4-5", BudgetOnly),
            ("claude-3-7-sonnet-20250219", BudgetOnly),
            ("claude-3-7-sonnet-latest", BudgetOnly),
            ("claude-3.7-sonnet", BudgetOnly),
            ("anthropic.claude-3-5-sonnet-20241022-v2:0", BudgetOnly),
            ("claude-3-haiku-20240307", BudgetOnly),
            ("claude-instant-1.2", BudgetOnly),
            // Not recognised as older: taken to be newer.
            ("mock-claude", AdaptiveOnly),
            ("claude-x", AdaptiveOnly),
            ("some-future-model", AdaptiveOnly),
            ("", AdaptiveOnly),
        ] {
            assert_eq!(generation(id), want, "{id}");
            let form = if want == BudgetOnly {
                ThinkingForm::Budget
            } else {
                ThinkingForm::Adaptive
            };
            assert_eq!(thinking_style_for(id), form, "{id}");
        }
    }

    #[test]
    fn explicit_styles_ignore_the_model() {
        assert_eq!(
            ThinkingStyle::Budget.resolve("claude-opus-4-7"),
            ThinkingForm::Budget
        );
        assert_eq!(
            ThinkingStyle::Adaptive.resolve("claude-3-7-sonnet-20250219"),
            ThinkingForm::Adaptive
        );
        assert_eq!(
            ThinkingStyle::Auto.resolve("claude-sonnet-4-5"),
            ThinkingForm::Budget
        );
        for s in ["auto", "adaptive", "budget"] {
            assert_eq!(ThinkingStyle::parse(s).map(ThinkingStyle::as_str), Some(s));
        }
        assert_eq!(ThinkingStyle::parse("enabled"), None);
    }
}
