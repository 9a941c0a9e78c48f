//! Conversions of JS option values that more than one binding takes: one place each, so the
//! same input is accepted and refused the same way everywhere.

use crate::error::{Result, WotdError};
use crate::io::ResolveOptions;
use crate::rvq::{AttributeVocab, ATTRIBUTES};

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

/// Attribute names and value lists given together as JS arrays: the project's vocabulary
/// (validated by [`AttributeVocab::new`]).
pub(crate) fn attribute_vocab(names: &[String], values: &[Vec<String>]) -> Result<AttributeVocab> {
    let names: [String; ATTRIBUTES] = names
        .to_vec()
        .try_into()
        .map_err(|n: Vec<String>| WotdError::InvalidInput(format!("{ATTRIBUTES} attribute names needed, got {}", n.len())))?;
    let values: [Vec<String>; ATTRIBUTES] = values
        .to_vec()
        .try_into()
        .map_err(|v: Vec<Vec<String>>| WotdError::InvalidInput(format!("{ATTRIBUTES} attribute value lists needed, got {}", v.len())))?;
    AttributeVocab::new(names, values)
}
