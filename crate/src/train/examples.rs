//! DSL training examples: which patterns are asked about, and which words answer them.
//!
//! Patterns come from the IDs the words actually carry, at every specificity the DSL offers:
//! full IDs (4 fixed fields), 3- and 2-level prefixes, and single-attribute patterns (one of
//! style/complexity/era fixed, the rest `*`). A pattern nobody carries would teach an empty
//! answer, so none is invented. The answer lists matching words in a seeded order, capped,
//! so long regions teach a sample rather than one ever-longer list.
//!
//! Tokenization lives in [`crate::prompt::encode`]; this module is plain text and seeds.

use super::random::stream;
use crate::random::shuffle;
use crate::dsl::Pattern;
use crate::error::{Result, WotdError};
use crate::prompt::TextExample;
use crate::random::SeededRng;
use crate::rvq::{SemanticId, ATTRIBUTES, LEVELS};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// A word and its 4-level semantic ID.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabeledWord {
    pub word: String,
    pub id: SemanticId,
}

/// The shapes of pattern the examples teach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PatternKind {
    /// `[s,c,e,v]`
    Full,
    /// `[s,c,e,*]`
    Prefix3,
    /// `[s,c,*,*]`
    Prefix2,
    /// One attribute level fixed (0 style, 1 complexity, 2 era), the rest `*`.
    Attribute(u8),
}

impl PatternKind {
    pub const ALL: [PatternKind; 6] = [
        PatternKind::Full,
        PatternKind::Prefix3,
        PatternKind::Prefix2,
        PatternKind::Attribute(0),
        PatternKind::Attribute(1),
        PatternKind::Attribute(2),
    ];

    /// The pattern of this kind that `id` falls in.
    pub fn pattern_of(self, id: &SemanticId) -> Pattern {
        let mut fields = [None; LEVELS];
        match self {
            PatternKind::Full => fields = id.map(Some),
            PatternKind::Prefix3 => (0..3).for_each(|l| fields[l] = Some(id[l])),
            PatternKind::Prefix2 => (0..2).for_each(|l| fields[l] = Some(id[l])),
            PatternKind::Attribute(l) => fields[l as usize] = Some(id[l as usize]),
        }
        Pattern::new(fields).expect("codes of a semantic ID are 0-31")
    }

    /// The kind a pattern has, if it is one of the taught shapes.
    pub fn classify(p: &Pattern) -> Option<PatternKind> {
        let fixed: Vec<bool> = p.fields().iter().map(Option::is_some).collect();
        match fixed.as_slice() {
            [true, true, true, true] => Some(PatternKind::Full),
            [true, true, true, false] => Some(PatternKind::Prefix3),
            [true, true, false, false] => Some(PatternKind::Prefix2),
            _ if p.specificity() == 1 => {
                let level = fixed.iter().position(|f| *f)?;
                (level < ATTRIBUTES).then_some(PatternKind::Attribute(level as u8))
            }
            _ => None,
        }
    }

    /// `full`, `prefix3`, `prefix2`, `style`, `complexity`, `era` (level names of aligned IDs).
    pub fn name(self) -> &'static str {
        match self {
            PatternKind::Full => "full",
            PatternKind::Prefix3 => "prefix3",
            PatternKind::Prefix2 => "prefix2",
            PatternKind::Attribute(0) => "style",
            PatternKind::Attribute(1) => "complexity",
            PatternKind::Attribute(_) => "era",
        }
    }

    pub fn from_name(name: &str) -> Result<Self> {
        PatternKind::ALL.into_iter().find(|k| k.name() == name).ok_or_else(|| {
            let known: Vec<&str> = PatternKind::ALL.iter().map(|k| k.name()).collect();
            WotdError::InvalidInput(format!("unknown pattern kind {name:?}; expected one of {}", known.join(", ")))
        })
    }

    fn index(self) -> u64 {
        PatternKind::ALL.iter().position(|k| *k == self).unwrap_or(0) as u64
    }
}

#[derive(Clone, Debug)]
pub struct ExampleOptions {
    pub seed: u64,
    /// Which shapes to teach; all of them by default.
    pub kinds: Vec<PatternKind>,
    /// At most this many patterns per kind (a seeded sample); `None` keeps every pattern the
    /// words carry.
    pub max_patterns_per_kind: Option<usize>,
    /// Examples per pattern, each with its own seeded word sample and order.
    pub variants_per_pattern: usize,
    /// At most this many words per answer.
    pub max_words: usize,
    /// Words of the region shown in the request (as many as leave at least one to answer).
    pub seed_words: usize,
    /// Share of each kind's patterns held out for validation (whole patterns, so validation
    /// asks about regions training never answered).
    pub validation_fraction: f64,
}

impl Default for ExampleOptions {
    fn default() -> Self {
        ExampleOptions {
            seed: 0,
            kinds: PatternKind::ALL.to_vec(),
            max_patterns_per_kind: None,
            variants_per_pattern: 1,
            max_words: 12,
            seed_words: 0,
            validation_fraction: 0.1,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct ExampleSplit {
    pub train: Vec<TextExample>,
    pub validation: Vec<TextExample>,
}

/// Samples examples of every requested kind from labeled words, split into train and
/// validation. The same words and options give the same examples.
pub fn sample_examples(words: &[LabeledWord], opts: &ExampleOptions) -> Result<ExampleSplit> {
    validate(words, opts)?;
    let mut split = ExampleSplit::default();
    for &kind in &opts.kinds {
        let mut patterns: Vec<Pattern> = words
            .iter()
            .map(|w| (kind.pattern_of(&w.id).fields(), ()))
            .collect::<BTreeMap<_, _>>()
            .into_keys()
            .map(|f| Pattern::new(f).expect("fields of a semantic ID"))
            .collect();
        shuffle(&mut SeededRng::derive(opts.seed, stream::PATTERNS + kind.index()), &mut patterns);
        if let Some(max) = opts.max_patterns_per_kind {
            patterns.truncate(max);
        }
        let held_out = held_out_count(patterns.len(), opts.validation_fraction);
        for (i, pattern) in patterns.iter().enumerate() {
            let side = if i < held_out { &mut split.validation } else { &mut split.train };
            for variant in 0..opts.variants_per_pattern {
                let mut answer = answer(words, pattern, variant, opts);
                let seeds: Vec<String> = answer.drain(..opts.seed_words.min(answer.len().saturating_sub(1))).collect();
                answer.truncate(opts.max_words);
                side.push(TextExample { pattern: *pattern, words: answer, seeds });
            }
        }
    }
    Ok(split)
}

/// Splits examples given by the caller the way [`sample_examples`] splits its own: whole
/// patterns held out, a share of each kind (patterns of no taught shape form one group), seeded.
pub fn split_examples(examples: Vec<TextExample>, validation_fraction: f64, seed: u64) -> Result<ExampleSplit> {
    if !(0.0..1.0).contains(&validation_fraction) {
        return Err(WotdError::InvalidInput(format!("validation fraction must be in [0, 1), got {validation_fraction}")));
    }
    if examples.is_empty() {
        return Err(WotdError::InvalidInput("no training examples given".into()));
    }
    for ex in &examples {
        if ex.words.is_empty() {
            return Err(WotdError::InvalidInput(format!("example for {} has no words", ex.pattern)));
        }
        check_words(ex.words.iter().map(String::as_str))?;
    }
    let mut groups: BTreeMap<Option<PatternKind>, Vec<[Option<u8>; LEVELS]>> = BTreeMap::new();
    for ex in &examples {
        let g = groups.entry(PatternKind::classify(&ex.pattern)).or_default();
        if !g.contains(&ex.pattern.fields()) {
            g.push(ex.pattern.fields());
        }
    }
    let mut held: HashSet<[Option<u8>; LEVELS]> = HashSet::new();
    for (kind, mut patterns) in groups {
        patterns.sort();
        let stream = stream::SPLIT + kind.map_or(PatternKind::ALL.len() as u64, PatternKind::index);
        shuffle(&mut SeededRng::derive(seed, stream), &mut patterns);
        held.extend(patterns.iter().take(held_out_count(patterns.len(), validation_fraction)));
    }
    let (validation, train) = examples.into_iter().partition(|e| held.contains(&e.pattern.fields()));
    Ok(ExampleSplit { train, validation })
}

/// Validation takes a share of each kind, but never a kind's only pattern.
fn held_out_count(n: usize, fraction: f64) -> usize {
    if n < 2 {
        return 0;
    }
    ((n as f64 * fraction).round() as usize).min(n - 1)
}

/// The matching words, deduplicated, in an order seeded by the pattern itself (not by its place
/// in the sample), capped at `seed_words + max_words`.
fn answer(words: &[LabeledWord], pattern: &Pattern, variant: usize, opts: &ExampleOptions) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut matching: Vec<String> =
        words.iter().filter(|w| pattern.matches(&w.id) && seen.insert(w.word.as_str())).map(|w| w.word.clone()).collect();
    let key = pattern.fields().iter().fold(0u64, |acc, f| acc * 33 + f.map_or(32, u64::from));
    let stream = stream::WORDS.wrapping_add(key << 8).wrapping_add(variant as u64);
    shuffle(&mut SeededRng::derive(opts.seed, stream), &mut matching);
    matching.truncate(opts.seed_words + opts.max_words);
    matching
}

fn validate(words: &[LabeledWord], opts: &ExampleOptions) -> Result<()> {
    if words.is_empty() {
        return Err(WotdError::InvalidInput("no labeled words to build training examples from".into()));
    }
    if opts.kinds.is_empty() || opts.variants_per_pattern == 0 || opts.max_words == 0 {
        return Err(WotdError::InvalidInput("example options need at least one kind, one variant and one word per answer".into()));
    }
    if !(0.0..1.0).contains(&opts.validation_fraction) {
        return Err(WotdError::InvalidInput(format!("validation fraction must be in [0, 1), got {}", opts.validation_fraction)));
    }
    if let Some(PatternKind::Attribute(l)) = opts.kinds.iter().find(|k| matches!(k, PatternKind::Attribute(l) if *l as usize >= ATTRIBUTES)) {
        return Err(WotdError::InvalidInput(format!("attribute level {l} does not exist (0-{})", ATTRIBUTES - 1)));
    }
    check_words(words.iter().map(|w| w.word.as_str()))?;
    if let Some(w) = words.iter().find(|w| w.id.iter().any(|c| *c >= 32)) {
        return Err(WotdError::InvalidInput(format!("word {:?} has ID {:?} with a code above 31", w.word, w.id)));
    }
    Ok(())
}

/// A word must survive the trip through a comma-separated answer unchanged.
pub fn check_words<'a>(words: impl IntoIterator<Item = &'a str>) -> Result<()> {
    for w in words {
        if w.trim().is_empty() || w.trim() != w || w.contains(',') || w.contains('\n') {
            return Err(WotdError::InvalidInput(format!(
                "word {w:?} cannot be taught: words must be non-empty, without surrounding whitespace, comma or newline"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 40 words over a few IDs, sharing prefixes at every level.
    pub(crate) fn lexicon() -> Vec<LabeledWord> {
        (0..40)
            .map(|i: u8| LabeledWord { word: format!("w{i}"), id: [i % 4, (i / 4) % 3, i % 5, i % 2] })
            .collect()
    }

    #[test]
    fn covers_every_specificity_and_every_word_matches_its_pattern() -> Result<()> {
        let words = lexicon();
        let opts = ExampleOptions { seed: 7, max_words: 5, validation_fraction: 0.2, ..Default::default() };
        let split = sample_examples(&words, &opts)?;
        let id_of: BTreeMap<&str, SemanticId> = words.iter().map(|w| (w.word.as_str(), w.id)).collect();
        for set in [&split.train, &split.validation] {
            for ex in set.iter() {
                assert!(!ex.words.is_empty() && ex.words.len() <= 5);
                for w in &ex.words {
                    assert!(ex.pattern.matches(&id_of[w.as_str()]), "{w} does not match {}", ex.pattern);
                }
                let unique: HashSet<&String> = ex.words.iter().collect();
                assert_eq!(unique.len(), ex.words.len());
            }
        }
        let kinds: HashSet<PatternKind> = split.train.iter().filter_map(|e| PatternKind::classify(&e.pattern)).collect();
        assert_eq!(kinds, PatternKind::ALL.into_iter().collect());
        assert!(PatternKind::ALL.iter().all(|k| PatternKind::from_name(k.name()).ok() == Some(*k)));
        assert!(PatternKind::from_name("nope").is_err());
        let specificities: HashSet<usize> = split.train.iter().map(|e| e.pattern.specificity()).collect();
        assert_eq!(specificities, HashSet::from([1, 2, 3, 4]));
        // Validation patterns are whole patterns training never sees.
        let train_patterns: HashSet<Pattern> = split.train.iter().map(|e| e.pattern).collect();
        assert!(!split.validation.is_empty());
        assert!(split.validation.iter().all(|e| !train_patterns.contains(&e.pattern)));
        Ok(())
    }

    #[test]
    fn answers_are_complete_when_they_fit_and_seeded() -> Result<()> {
        let words = lexicon();
        let opts = ExampleOptions { seed: 1, max_words: 100, validation_fraction: 0.0, ..Default::default() };
        let split = sample_examples(&words, &opts)?;
        for ex in &split.train {
            let want = words.iter().filter(|w| ex.pattern.matches(&w.id)).count();
            assert_eq!(ex.words.len(), want, "{}", ex.pattern);
        }
        let again = sample_examples(&words, &opts)?;
        assert_eq!(split.train, again.train);
        let other = sample_examples(&words, &ExampleOptions { seed: 2, ..opts.clone() })?;
        assert_ne!(split.train, other.train, "a different seed must reorder something");
        Ok(())
    }

    #[test]
    fn limits_and_variants_shape_the_sample() -> Result<()> {
        let words = lexicon();
        let opts = ExampleOptions {
            kinds: vec![PatternKind::Full, PatternKind::Attribute(1)],
            max_patterns_per_kind: Some(3),
            variants_per_pattern: 2,
            validation_fraction: 0.0,
            ..Default::default()
        };
        let split = sample_examples(&words, &opts)?;
        assert_eq!(split.train.len(), (3 + 3) * 2);
        assert!(split.train.iter().all(|e| matches!(PatternKind::classify(&e.pattern), Some(PatternKind::Full | PatternKind::Attribute(1)))));
        Ok(())
    }

    #[test]
    fn given_examples_split_by_whole_pattern_and_seed() -> Result<()> {
        let all = sample_examples(&lexicon(), &ExampleOptions { variants_per_pattern: 2, validation_fraction: 0.0, ..Default::default() })?.train;
        let split = split_examples(all.clone(), 0.25, 3)?;
        assert_eq!(split.train.len() + split.validation.len(), all.len());
        let val: HashSet<Pattern> = split.validation.iter().map(|e| e.pattern).collect();
        assert!(!val.is_empty() && split.train.iter().all(|e| !val.contains(&e.pattern)), "both variants stay on one side");
        let val_kinds: HashSet<Option<PatternKind>> = split.validation.iter().map(|e| PatternKind::classify(&e.pattern)).collect();
        assert_eq!(val_kinds.len(), PatternKind::ALL.len(), "every kind is represented in validation");
        assert_eq!(split_examples(all.clone(), 0.25, 3)?.validation, split.validation);
        assert!(split_examples(all, 0.0, 3)?.validation.is_empty());
        Ok(())
    }

    #[test]
    fn refuses_words_that_would_not_survive_a_comma_list() {
        for bad in ["", " lead", "a,b", "two\nlines"] {
            let words = vec![LabeledWord { word: bad.into(), id: [0, 0, 0, 0] }];
            assert_eq!(sample_examples(&words, &ExampleOptions::default()).unwrap_err().code(), "INVALID_INPUT", "{bad:?}");
        }
        assert!(sample_examples(&[], &ExampleOptions::default()).is_err());
    }
}
