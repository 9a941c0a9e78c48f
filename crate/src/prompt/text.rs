//! The words of a DSL request and of its answer. Generation must build requests with
//! [`user_message`] and parse answers by [`WORD_SEPARATOR`], or the tuned model is asked in a
//! language it was never taught.

use crate::dsl::{describe, Pattern};
use crate::rvq::AttributeVocab;

/// One request and its answer, as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextExample {
    pub pattern: Pattern,
    pub words: Vec<String>,
    /// Words of the same region given in the request (set expansion); never in `words`.
    pub seeds: Vec<String>,
}

/// Between words in a completion.
pub const WORD_SEPARATOR: &str = ", ";

/// The user message asking for words of `pattern`. With attribute names (aligned codebooks) the
/// pattern is also read aloud, so the model can tie codes to meanings; `seeds` are a few words
/// of the region to continue (set expansion), never repeated in the answer.
pub fn user_message(pattern: &Pattern, vocab: Option<&AttributeVocab>, seeds: &[String]) -> String {
    let ask = match vocab {
        Some(v) => format!("Words for semantic ID {pattern} ({})", describe(pattern, Some(v))),
        None => format!("Words for semantic ID {pattern}"),
    };
    if seeds.is_empty() {
        format!("{ask}:")
    } else {
        format!("{ask}, like {}:", seeds.join(WORD_SEPARATOR))
    }
}

/// The completion text: the words in the order given.
pub fn completion(words: &[String]) -> String {
    words.join(WORD_SEPARATOR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsl::parse;

    #[test]
    fn messages_name_the_pattern_and_in_aligned_mode_its_meaning() {
        let p = parse("[9,10,3,*]").unwrap();
        assert_eq!(user_message(&p, None, &[]), "Words for semantic ID [9,10,3,*]:");
        assert_eq!(
            user_message(&p, Some(&AttributeVocab::default()), &[]),
            "Words for semantic ID [9,10,3,*] (modern / beautiful / shakespearean / any variation):"
        );
        assert_eq!(
            user_message(&p, Some(&AttributeVocab::default()), &["lucid".into(), "serene".into()]),
            "Words for semantic ID [9,10,3,*] (modern / beautiful / shakespearean / any variation), like lucid, serene:"
        );
        assert_eq!(completion(&["lucid".into(), "serene".into()]), "lucid, serene");
    }
}
