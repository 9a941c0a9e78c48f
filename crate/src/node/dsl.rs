//! The ID-pattern grammar for JS: one parser (`crate::dsl`) behind the API, CLI and prompts.

use super::guard;
use crate::dsl::{self, Pattern};
use crate::rvq;
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// A parsed ID pattern.
#[napi(object)]
pub struct ParsedPattern {
    /// One entry per level: a code 0-31, or `null` for `*`.
    #[napi(ts_type = "Array<number | null>")]
    pub fields: Vec<Option<u32>>,
    /// Canonical text, e.g. `[2,*,17,*]`.
    pub text: String,
    /// Number of fixed fields (4: one ID; 0: every ID).
    pub specificity: u32,
}

fn to_js(p: &Pattern) -> ParsedPattern {
    ParsedPattern {
        fields: p.fields().iter().map(|f| f.map(u32::from)).collect(),
        text: p.to_string(),
        specificity: p.specificity() as u32,
    }
}


/// Parses `[2,9,17,5]`, `[2,*,17,*]` or `(2, 9, 17, 5)`; throws `INVALID_PATTERN` naming
/// the field and the reason.
#[napi]
pub fn parse_pattern(text: String) -> Result<ParsedPattern> {
    guard(|| Ok(to_js(&dsl::parse(&text)?)))
}

/// Canonical text of a pattern given as fields (`null` for `*`).
#[napi]
pub fn format_pattern(#[napi(ts_arg_type = "Array<number | null>")] fields: Vec<Option<u32>>) -> Result<String> {
    guard(|| Ok(super::convert::pattern(&fields)?.to_string()))
}

/// Reads a pattern (its fields, as `parsePattern` gives them) aloud: with a vocabulary (aligned
/// codebooks) "modern / beautiful / shakespearean / variation 5"; without, codes only
/// ("9 / any / 3 / any").
#[napi]
pub fn describe_pattern(
    #[napi(ts_arg_type = "Array<number | null>")] fields: Vec<Option<u32>>,
    vocab: Option<super::rvq::AttributeVocab>,
) -> Result<String> {
    guard(|| {
        let vocab: Option<rvq::AttributeVocab> = vocab.map(TryInto::try_into).transpose()?;
        Ok(dsl::describe(&super::convert::pattern(&fields)?, vocab.as_ref()))
    })
}

/// Whether the ID (4 codes) lies in the region the pattern names.
#[napi]
pub fn pattern_matches(text: String, id: Vec<u32>) -> Result<bool> {
    guard(|| {
        let pattern = dsl::parse(&text)?;
        Ok(pattern.matches(&super::rvq::id_from_js(&id)?))
    })
}
