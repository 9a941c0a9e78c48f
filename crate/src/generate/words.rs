//! From a model's raw completion to clean words: split, normalise, filter, dedupe.
//!
//! The model is taught `w1, w2, w3` (see [`crate::prompt::WORD_SEPARATOR`]), but a
//! sampled completion may drift into other list shapes (numbered lines, bullets, semicolons,
//! quotes). Splitting accepts all of them; what survives must be one well-formed word:
//! letters with at most single inner hyphens or apostrophes, 2-24 characters, after NFC and
//! lowercasing. Phrases (inner spaces) are rejected, never silently glued or cut.

use std::collections::HashSet;
use tokenizers::NormalizedString;

/// Shortest and longest accepted word, in characters (after normalisation).
pub const MIN_WORD_CHARS: usize = 2;
pub const MAX_WORD_CHARS: usize = 24;

/// Characters that end one list item and start the next.
fn is_separator(c: char) -> bool {
    matches!(c, ',' | ';' | '\n' | '\r' | '\t' | '|' | '/' | '•' | '·' | '，' | '、' | '；')
}

/// The list items of a completion, in order, as written (not normalised). Special-token text
/// such as `<|im_end|>` counts as a separator: a model that leaks one has ended its item.
pub fn split_items(text: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let mut start = 0;
    let mut rest = text;
    let mut offset = 0;
    while let Some((i, c)) = rest.char_indices().find(|&(i, c)| is_separator(c) || (c == '<' && rest[i..].starts_with("<|"))) {
        let at = offset + i;
        items.push(&text[start..at]);
        let skip = if c == '<' { rest[i..].find("|>").map_or(2, |e| e + 2) } else { c.len_utf8() };
        start = at + skip;
        offset = start;
        rest = &text[start..];
    }
    items.push(&text[start..]);
    items.into_iter().filter(|s| !s.trim().is_empty()).collect()
}

/// Drops a leading list marker: `1.`, `2)`, `3:`, `-`, `*`, `#`, `>` and the conjunctions
/// `and`/`or` that close an English list.
fn strip_marker(item: &str) -> &str {
    let mut s = item.trim();
    let digits = s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits > 0 {
        let after = &s[digits..];
        if let Some(rest) = after.strip_prefix(['.', ')', ':', ']']) {
            s = rest.trim_start();
        }
    }
    s = s.trim_start_matches(['-', '*', '#', '>', '–', '—']).trim_start();
    for conj in ["and ", "or "] {
        if s.len() > conj.len() && s.get(..conj.len()).is_some_and(|h| h.eq_ignore_ascii_case(conj)) {
            s = s[conj.len()..].trim_start();
        }
    }
    s
}

/// NFC, lowercase, typographic apostrophes and hyphens folded to ASCII, surrounding
/// punctuation and whitespace trimmed. The result may still be malformed.
pub fn normalize(raw: &str) -> String {
    let mut n = NormalizedString::from(strip_marker(raw));
    n.nfc();
    let folded: String = n
        .get()
        .chars()
        .map(|c| match c {
            '\u{2019}' | '\u{2018}' | '\u{02BC}' | '`' => '\'',
            '\u{2010}' | '\u{2011}' => '-',
            c => c,
        })
        .flat_map(char::to_lowercase)
        .collect();
    // Digits are kept: "word2" is noise to reject, not a word to repair.
    folded.trim_matches(|c: char| !c.is_alphanumeric()).to_string()
}

/// Letters, with single hyphens or apostrophes only between letters, 2-24 characters.
pub fn is_well_formed(word: &str) -> bool {
    let chars: Vec<char> = word.chars().collect();
    if chars.len() < MIN_WORD_CHARS || chars.len() > MAX_WORD_CHARS {
        return false;
    }
    chars.iter().enumerate().all(|(i, &c)| {
        c.is_alphabetic()
            || (matches!(c, '-' | '\'')
                && i > 0
                && i + 1 < chars.len()
                && chars[i - 1].is_alphabetic()
                && chars[i + 1].is_alphabetic())
    })
}

/// The normalised word an item stands for, if it is one.
pub fn normalize_word(item: &str) -> Option<String> {
    // U+FFFD marks bytes that did not decode: a token cut inside a character, not a word.
    if item.contains('\u{FFFD}') {
        return None;
    }
    let w = normalize(item);
    is_well_formed(&w).then_some(w)
}

/// Why an item was not kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Kept,
    Malformed,
    Duplicate,
    /// In the excluded set (`novelOnly`: a training word).
    Excluded,
    /// Outside the allowed vocabulary.
    NotInVocabulary,
}

/// Accepted words in first-seen order, with counts of what was dropped and why.
#[derive(Clone, Debug, Default)]
pub struct WordCollector {
    exclude: HashSet<String>,
    allow: Option<HashSet<String>>,
    seen: HashSet<String>,
    pub words: Vec<String>,
    /// Items that were not words, as written (trimmed), for diagnostics.
    pub malformed: Vec<String>,
    pub duplicates: usize,
    pub excluded: usize,
    pub not_in_vocabulary: usize,
}

impl WordCollector {
    /// `exclude` and `allow` are normalised here, so callers may pass words as stored.
    pub fn new<'a>(exclude: impl IntoIterator<Item = &'a str>, allow: Option<impl IntoIterator<Item = &'a str>>) -> Self {
        let norm = |w: &str| normalize(w);
        WordCollector {
            exclude: exclude.into_iter().map(norm).collect(),
            allow: allow.map(|a| a.into_iter().map(norm).collect()),
            ..Default::default()
        }
    }

    /// Judges one list item without recording it.
    pub fn judge(&self, item: &str) -> (Verdict, Option<String>) {
        let Some(w) = normalize_word(item) else { return (Verdict::Malformed, None) };
        let v = if self.exclude.contains(&w) {
            Verdict::Excluded
        } else if self.allow.as_ref().is_some_and(|a| !a.contains(&w)) {
            Verdict::NotInVocabulary
        } else if self.seen.contains(&w) {
            Verdict::Duplicate
        } else {
            Verdict::Kept
        };
        (v, Some(w))
    }

    /// Records one list item; returns whether it added a new word.
    pub fn push_item(&mut self, item: &str) -> bool {
        let (verdict, word) = self.judge(item);
        match verdict {
            Verdict::Kept => {
                let w = word.expect("kept items have a word");
                self.seen.insert(w.clone());
                self.words.push(w);
                return true;
            }
            Verdict::Malformed => self.malformed.push(item.trim().to_string()),
            Verdict::Duplicate => self.duplicates += 1,
            Verdict::Excluded => self.excluded += 1,
            Verdict::NotInVocabulary => self.not_in_vocabulary += 1,
        }
        false
    }

    /// Records every item of a completion; returns how many new words it added.
    pub fn push_text(&mut self, text: &str) -> usize {
        split_items(text).into_iter().filter(|i| self.push_item(i)).count()
    }

    /// How many new words `items` would add, without recording them.
    pub fn count_new<'a>(&self, items: impl IntoIterator<Item = &'a str>) -> usize {
        let mut fresh = HashSet::new();
        for i in items {
            if let (Verdict::Kept, Some(w)) = self.judge(i) {
                fresh.insert(w);
            }
        }
        fresh.len()
    }
}

/// The items of a completion that are final: all but the last while the row is still
/// generating (its last item may be a word cut mid-way).
pub fn final_items(text: &str, finished: bool) -> Vec<&str> {
    let mut items = split_items(text);
    let ends_open = !text.trim_end().ends_with(is_separator);
    if !finished && ends_open {
        items.pop();
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        let mut c = WordCollector::new(std::iter::empty(), None::<Vec<&str>>);
        c.push_text(text);
        c.words
    }

    #[test]
    fn parsing_table() {
        let table: &[(&str, &[&str])] = &[
            ("lucid, serene, umbra", &["lucid", "serene", "umbra"]),
            ("lucid,serene ,  umbra,", &["lucid", "serene", "umbra"]),
            ("Lucid; SERENE | umbra / dusk", &["lucid", "serene", "umbra", "dusk"]),
            ("1. lucid\n2) serene\n3: umbra", &["lucid", "serene", "umbra"]),
            ("- lucid\n* serene\n• umbra", &["lucid", "serene", "umbra"]),
            ("lucid, serene, and umbra.", &["lucid", "serene", "umbra"]),
            ("\"lucid\", 'serene', (umbra)", &["lucid", "serene", "umbra"]),
            ("lucid, Lucid, LUCID , serene, lucid", &["lucid", "serene"]),
            ("o’clock, well-being, rock'n'roll, self--made, x-, don't-", &["o'clock", "well-being", "rock'n'roll", "don't"]),
            ("a, ab, abcdefghijklmnopqrstuvwx, abcdefghijklmnopqrstuvwxy", &["ab", "abcdefghijklmnopqrstuvwx"]),
            ("two words, word2, 42, ###, , ,", &[]),
            ("café, naïve, Ångström", &["café", "naïve", "ångström"]),
            ("lucid<|im_end|>serene<|im_start|>", &["lucid", "serene"]),
            ("lucid、serene，umbra", &["lucid", "serene", "umbra"]),
            ("��, om�, ünd, andré", &["ünd", "andré"]),
        ];
        for (text, want) in table {
            assert_eq!(words(text), want.to_vec(), "{text:?}");
        }
    }

    #[test]
    fn nfc_makes_decomposed_and_composed_forms_one_word() {
        // "café" with a combining acute accent, then precomposed.
        assert_eq!(words("cafe\u{301}, caf\u{e9}"), vec!["caf\u{e9}"]);
    }

    #[test]
    fn exclusion_vocabulary_and_counts() {
        let mut c = WordCollector::new(["Lucid"], Some(["serene", "umbra", "Lucid", "dusk"]));
        assert_eq!(c.push_text("lucid, serene, glow, serene, umbra, not a word"), 2);
        assert_eq!(c.words, vec!["serene", "umbra"]);
        assert_eq!((c.excluded, c.not_in_vocabulary, c.duplicates), (1, 1, 1));
        assert_eq!(c.malformed, vec!["not a word"]);
        assert_eq!(c.count_new(["dusk", "dusk", "serene", "glow"]), 1);
    }

    #[test]
    fn open_last_items_wait_for_their_separator() {
        assert_eq!(final_items("lucid, ser", false), vec!["lucid"]);
        assert_eq!(final_items("lucid, ser", true), vec!["lucid", " ser"]);
        assert_eq!(final_items("lucid, serene,", false), vec!["lucid", " serene"]);
        assert!(final_items("", false).is_empty());
    }
}
