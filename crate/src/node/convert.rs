//! Conversions of JS option values that more than one binding takes: one place each, so the
//! same input is accepted and refused the same way everywhere.

use crate::dsl::Pattern;
use crate::error::{Result, WotdError};
use crate::io::ResolveOptions;
use crate::rvq::LEVELS;

/// A JS number as a seed: an integer from 0 to 2^53 (what a double holds exactly); default 0.
pub(crate) fn seed(s: Option<f64>) -> Result<u64> {
    match s {
        None => Ok(0),
        Some(s) if s >= 0.0 && s.fract() == 0.0 && s <= 9_007_199_254_740_991.0 => Ok(s as u64),
        Some(s) => Err(WotdError::InvalidInput(format!("seed must be an integer from 0 to 2^53, got {s}"))),
    }
}

/// Where a model is looked up: the revision (default `main`) and whether the Hub may be asked.
pub(crate) fn resolve_options(offline: Option<bool>, revision: Option<&String>) -> ResolveOptions {
    ResolveOptions { offline: offline.unwrap_or(false), revision: revision.cloned(), ..Default::default() }
}

/// An ID pattern handed down as fields (`null` for `*`), as TS parsed it: validated, not parsed
/// again from text.
pub(crate) fn pattern(fields: &[Option<u32>]) -> Result<Pattern> {
    let shown = || format!("{fields:?}");
    if fields.len() != LEVELS {
        return Err(WotdError::InvalidPattern {
            input: shown(),
            field: 0,
            reason: format!("expected {LEVELS} fields, found {}", fields.len()),
        });
    }
    let mut out = [None; LEVELS];
    for (i, f) in fields.iter().enumerate() {
        out[i] = match f {
            None => None,
            Some(c) => Some(u8::try_from(*c).ok().filter(|&c| c < 32).ok_or_else(|| WotdError::InvalidPattern {
                input: shown(),
                field: i + 1,
                reason: format!("{c} is out of range 0-31"),
            })?),
        };
    }
    Pattern::new(out)
}
