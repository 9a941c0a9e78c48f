//! Patterns in words, for prompts, the CLI and reports.

use super::Pattern;
use crate::rvq::{AttributeVocab, ATTRIBUTES};

/// Reads a pattern aloud. With a vocabulary (aligned codebooks) levels 0-2 name their
/// attribute value (`code >> 3`) and level 3 its variation: `[9,10,3,5]` is
/// "modern / beautiful / shakespearean / variation 5", and `*` is "any style" and so on.
/// Without one (unsupervised codebooks) codes carry no names, so only codes are given:
/// "9 / any / 3 / any".
pub fn describe(pattern: &Pattern, vocab: Option<&AttributeVocab>) -> String {
    let parts: Vec<String> = pattern
        .fields()
        .iter()
        .enumerate()
        .map(|(level, field)| match (vocab, field) {
            (Some(v), Some(code)) if level < ATTRIBUTES => v.value_of(level, *code).to_string(),
            (Some(v), None) if level < ATTRIBUTES => format!("any {}", v.names[level]),
            (Some(_), Some(code)) => format!("variation {code}"),
            (Some(_), None) => "any variation".to_string(),
            (None, Some(code)) => code.to_string(),
            (None, None) => "any".to_string(),
        })
        .collect();
    parts.join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsl::parse;

    #[test]
    fn aligned_patterns_name_attribute_values() {
        let vocab = AttributeVocab::default();
        let d = |s: &str| describe(&parse(s).unwrap(), Some(&vocab));
        assert_eq!(d("[9,10,3,5]"), "modern / beautiful / shakespearean / variation 5");
        assert_eq!(d("[0,31,31,0]"), "classical / plain / contemporary / variation 0");
        assert_eq!(d("[2,*,17,*]"), "classical / any complexity / modernist / any variation");
        assert_eq!(d("[*,*,*,*]"), "any style / any complexity / any era / any variation");
    }

    #[test]
    fn unsupervised_patterns_give_codes_only() {
        assert_eq!(describe(&parse("[2,*,17,*]").unwrap(), None), "2 / any / 17 / any");
    }
}
