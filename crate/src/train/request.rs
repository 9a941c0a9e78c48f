//! A DSL training run as a caller asks for it, every knob optional, and the one place that
//! decides what an unset knob means and which combinations are refused. The Node binding maps
//! its options onto [`DslTrainSettings`] field by field; nothing else fills a default.

use super::config::TrainConfig;
use super::dsl::{DslTrainRequest, ExampleSource};
use super::examples::{ExampleOptions, LabeledWord, PatternKind};
use super::optim::AdamWConfig;
use crate::error::{Result, WotdError};
use crate::io::peft::LoraConfig;
use crate::io::ResolveOptions;
use crate::prompt::TextExample;
use crate::rvq::AttributeVocab;
use std::path::PathBuf;

/// Longest example in tokens (prompt + answer) when none is given: room for a full answer of
/// `max_words` words and a few seed words at the tokenizers this project uses.
pub const DEFAULT_MAX_LENGTH: usize = 256;

/// Every second layer recomputes its activations: most of the memory saving of every layer
/// for half the extra forward work.
pub const DEFAULT_GRADIENT_CHECKPOINTING: usize = 2;

/// LoRA knobs; unset ones take [`LoraConfig::default`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoraSettings {
    pub rank: Option<usize>,
    pub alpha: Option<f64>,
    pub dropout: Option<f64>,
    /// PEFT module names or `["all-linear"]`; unset: every attention and MLP projection.
    pub target_modules: Option<Vec<String>>,
}

impl LoraSettings {
    /// The adapter's configuration, validated; `seed` initialises `A` and the dropout stream.
    pub fn into_config(self, seed: u64) -> Result<LoraConfig> {
        let d = LoraConfig::default();
        let lora = LoraConfig {
            r: self.rank.unwrap_or(d.r),
            alpha: self.alpha.unwrap_or(d.alpha),
            dropout: self.dropout.unwrap_or(d.dropout),
            target_modules: self.target_modules.unwrap_or(d.target_modules),
            use_rslora: d.use_rslora,
            seed,
        };
        lora.validate()?;
        Ok(lora)
    }
}

/// What a Stage 4 run is asked to do; [`DslTrainSettings::into_request`] turns it into a
/// [`DslTrainRequest`].
#[derive(Clone, Debug, Default)]
pub struct DslTrainSettings {
    /// A local path or a Hugging Face id.
    pub base_model: String,
    pub resolve: ResolveOptions,
    /// Labeled words to sample examples from; give this or `examples`.
    pub words: Option<Vec<LabeledWord>>,
    /// Ready-made examples; give this or `words`.
    pub examples: Option<Vec<TextExample>>,
    /// Name attribute values in prompts; implied by attribute names.
    pub aligned: Option<bool>,
    pub attribute_names: Option<Vec<String>>,
    pub attribute_values: Option<Vec<Vec<String>>>,
    /// Pattern kind names ([`PatternKind::from_name`]); only read with `words`.
    pub kinds: Option<Vec<String>>,
    pub max_patterns_per_kind: Option<usize>,
    pub variants_per_pattern: Option<usize>,
    pub max_words: Option<usize>,
    pub seed_words: Option<usize>,
    pub system_prompt: Option<String>,
    pub validation_fraction: Option<f64>,
    pub max_length: Option<usize>,
    pub lora: LoraSettings,
    /// Optimizer updates. Given alone, it is the only limit (no default epoch count).
    pub steps: Option<usize>,
    pub epochs: Option<usize>,
    pub batch_size: Option<usize>,
    pub grad_accum: Option<usize>,
    pub lr: Option<f64>,
    pub min_lr: Option<f64>,
    pub warmup_steps: Option<usize>,
    pub weight_decay: Option<f64>,
    pub max_grad_norm: Option<f64>,
    pub eval_every: Option<usize>,
    pub patience: Option<usize>,
    pub checkpoint_every: Option<usize>,
    pub keep_checkpoints: Option<usize>,
    pub pause_at_step: Option<usize>,
    pub gradient_checkpointing: Option<usize>,
    pub out_dir: PathBuf,
    pub seed: u64,
    pub resume: Option<bool>,
}

impl DslTrainSettings {
    pub fn into_request(self) -> Result<DslTrainRequest> {
        let seed = self.seed;
        let examples = ExampleOptions::default();
        let validation_fraction = self.validation_fraction.unwrap_or(examples.validation_fraction);
        let source = match (self.words, self.examples) {
            (Some(words), None) => {
                let kinds = match self.kinds {
                    Some(names) => names.iter().map(|n| PatternKind::from_name(n)).collect::<Result<_>>()?,
                    None => examples.kinds,
                };
                let options = ExampleOptions {
                    seed,
                    kinds,
                    max_patterns_per_kind: self.max_patterns_per_kind,
                    variants_per_pattern: self.variants_per_pattern.unwrap_or(examples.variants_per_pattern),
                    max_words: self.max_words.unwrap_or(examples.max_words),
                    seed_words: self.seed_words.unwrap_or(examples.seed_words),
                    validation_fraction,
                };
                ExampleSource::Words { words, options }
            }
            (None, Some(examples)) => ExampleSource::Examples { examples, validation_fraction },
            _ => return Err(WotdError::InvalidInput("give exactly one of `words` or `examples`".into())),
        };
        let vocab = match (self.aligned.unwrap_or(false), self.attribute_names, self.attribute_values) {
            (false, None, None) => None,
            (_, None, None) => Some(AttributeVocab::default()),
            (_, Some(names), Some(values)) => Some(AttributeVocab::from_lists(&names, &values)?),
            _ => return Err(WotdError::InvalidInput("give attributeNames and attributeValues together".into())),
        };
        let lora = self.lora.into_config(seed)?;
        let d = TrainConfig::default();
        let train = TrainConfig {
            // Steps alone bound the run by themselves; the default epochs would cut it short.
            epochs: match (self.epochs, self.steps) {
                (None, None) => d.epochs,
                (epochs, _) => epochs,
            },
            max_steps: self.steps,
            batch_size: self.batch_size.unwrap_or(d.batch_size),
            grad_accum: self.grad_accum.unwrap_or(d.grad_accum),
            lr: self.lr.unwrap_or(d.lr),
            min_lr: self.min_lr.unwrap_or(d.min_lr),
            warmup_steps: self.warmup_steps.unwrap_or(d.warmup_steps),
            adamw: AdamWConfig { weight_decay: self.weight_decay.unwrap_or(d.adamw.weight_decay), ..d.adamw },
            max_grad_norm: self.max_grad_norm.unwrap_or(d.max_grad_norm),
            eval_every: self.eval_every.unwrap_or(d.eval_every),
            patience: self.patience.unwrap_or(d.patience),
            min_delta: d.min_delta,
            checkpoint_every: self.checkpoint_every.unwrap_or(d.checkpoint_every),
            keep_checkpoints: self.keep_checkpoints.unwrap_or(d.keep_checkpoints),
            seed,
            group_by_length: d.group_by_length,
            pad_token_id: d.pad_token_id,
            pause_at_step: self.pause_at_step,
        };
        Ok(DslTrainRequest {
            base_model: self.base_model,
            resolve: self.resolve,
            source,
            vocab,
            system_prompt: self.system_prompt,
            lora,
            max_length: self.max_length.unwrap_or(DEFAULT_MAX_LENGTH),
            train,
            out_dir: self.out_dir,
            resume: self.resume.unwrap_or(false),
            gradient_checkpointing: self.gradient_checkpointing.unwrap_or(DEFAULT_GRADIENT_CHECKPOINTING),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsl::parse;

    fn words() -> Vec<LabeledWord> {
        vec![LabeledWord { word: "amber".into(), id: [1, 2, 3, 4] }]
    }

    fn with_words() -> DslTrainSettings {
        DslTrainSettings { base_model: "m".into(), words: Some(words()), out_dir: "out".into(), ..Default::default() }
    }

    fn message(e: WotdError) -> String {
        match e {
            WotdError::InvalidInput(m) => m,
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    #[test]
    fn unset_knobs_take_the_documented_defaults() {
        let r = with_words().into_request().unwrap();
        let (t, d) = (&r.train, TrainConfig::default());
        assert_eq!((t.epochs, t.max_steps), (Some(3), None));
        assert_eq!((t.batch_size, t.grad_accum, t.warmup_steps), (8, 1, 10));
        assert_eq!((t.lr, t.min_lr, t.max_grad_norm), (2e-4, 0.0, 1.0));
        assert_eq!((t.eval_every, t.patience, t.checkpoint_every, t.keep_checkpoints), (50, 3, 100, 2));
        assert_eq!(t.adamw, d.adamw);
        assert_eq!((r.max_length, r.gradient_checkpointing, r.resume), (256, 2, false));
        assert_eq!((r.lora.r, r.lora.alpha, r.lora.dropout), (8, 16.0, 0.05));
        assert!(r.lora.target_modules.is_empty() && !r.lora.use_rslora);
        assert!(r.vocab.is_none());
        match r.source {
            ExampleSource::Words { options, .. } => {
                assert_eq!(options.validation_fraction, 0.1);
                assert_eq!(options.kinds, PatternKind::ALL.to_vec());
                assert_eq!((options.variants_per_pattern, options.max_words, options.seed_words), (1, 12, 0));
                assert_eq!(options.max_patterns_per_kind, None);
            }
            other => panic!("expected words, got {other:?}"),
        }
    }

    #[test]
    fn given_knobs_win_and_the_seed_reaches_every_stream() {
        let s = DslTrainSettings {
            seed: 9,
            kinds: Some(vec!["full".into(), "era".into()]),
            max_words: Some(5),
            validation_fraction: Some(0.25),
            max_length: Some(64),
            gradient_checkpointing: Some(0),
            batch_size: Some(2),
            weight_decay: Some(0.1),
            lora: LoraSettings { rank: Some(4), alpha: Some(8.0), dropout: Some(0.0), target_modules: Some(vec!["q_proj".into()]) },
            resume: Some(true),
            ..with_words()
        };
        let r = s.into_request().unwrap();
        assert_eq!((r.max_length, r.gradient_checkpointing, r.resume), (64, 0, true));
        assert_eq!((r.train.batch_size, r.train.adamw.weight_decay, r.train.seed), (2, 0.1, 9));
        assert_eq!((r.lora.r, r.lora.alpha, r.lora.dropout, r.lora.seed), (4, 8.0, 0.0, 9));
        assert_eq!(r.lora.target_modules, vec!["q_proj".to_string()]);
        let ExampleSource::Words { options, .. } = r.source else { panic!("expected words") };
        assert_eq!(options.kinds, vec![PatternKind::from_name("full").unwrap(), PatternKind::from_name("era").unwrap()]);
        assert_eq!((options.max_words, options.validation_fraction, options.seed), (5, 0.25, 9));
    }

    #[test]
    fn steps_alone_drop_the_default_epochs() {
        let steps_only = DslTrainSettings { steps: Some(40), ..with_words() }.into_request().unwrap().train;
        assert_eq!((steps_only.epochs, steps_only.max_steps), (None, Some(40)));
        let both = DslTrainSettings { steps: Some(40), epochs: Some(2), ..with_words() }.into_request().unwrap().train;
        assert_eq!((both.epochs, both.max_steps), (Some(2), Some(40)));
        let epochs_only = DslTrainSettings { epochs: Some(5), ..with_words() }.into_request().unwrap().train;
        assert_eq!((epochs_only.epochs, epochs_only.max_steps), (Some(5), None));
    }

    #[test]
    fn exactly_one_source_is_required() {
        let example = TextExample { pattern: parse("[1,2,3,4]").unwrap(), words: vec!["amber".into()], seeds: vec![] };
        let both = DslTrainSettings { examples: Some(vec![example.clone()]), ..with_words() };
        let neither = DslTrainSettings { words: None, ..with_words() };
        for s in [both, neither] {
            assert_eq!(message(s.into_request().unwrap_err()), "give exactly one of `words` or `examples`");
        }
        let examples = DslTrainSettings { words: None, examples: Some(vec![example]), validation_fraction: Some(0.5), ..with_words() };
        match examples.into_request().unwrap().source {
            ExampleSource::Examples { examples, validation_fraction } => assert_eq!((examples.len(), validation_fraction), (1, 0.5)),
            other => panic!("expected examples, got {other:?}"),
        }
    }

    #[test]
    fn kinds_are_read_only_with_words() {
        let bad = DslTrainSettings { kinds: Some(vec!["nope".into()]), ..with_words() };
        assert!(message(bad.into_request().unwrap_err()).contains("unknown pattern kind \"nope\""));
        let example = TextExample { pattern: parse("[1,*,*,*]").unwrap(), words: vec!["amber".into()], seeds: vec![] };
        let ignored = DslTrainSettings { words: None, examples: Some(vec![example]), kinds: Some(vec!["nope".into()]), ..with_words() };
        assert!(ignored.into_request().is_ok());
    }

    #[test]
    fn attribute_names_and_values_come_together() {
        let names = Some(vec!["a".into(), "b".into(), "c".into()]);
        let values: Option<Vec<Vec<String>>> =
            Some((0..3).map(|l| (0..4).map(|v| format!("v{l}{v}")).collect()).collect());
        for s in [
            DslTrainSettings { attribute_names: names.clone(), ..with_words() },
            DslTrainSettings { attribute_values: values.clone(), aligned: Some(true), ..with_words() },
        ] {
            assert_eq!(message(s.into_request().unwrap_err()), "give attributeNames and attributeValues together");
        }
        let named = DslTrainSettings { attribute_names: names, attribute_values: values, ..with_words() }.into_request().unwrap();
        assert_eq!(named.vocab.unwrap().names, ["a".to_string(), "b".into(), "c".into()]);
        let aligned = DslTrainSettings { aligned: Some(true), ..with_words() }.into_request().unwrap();
        assert_eq!(aligned.vocab, Some(AttributeVocab::default()));
    }

    #[test]
    fn lora_settings_are_validated() {
        let s = DslTrainSettings { lora: LoraSettings { rank: Some(0), ..Default::default() }, ..with_words() };
        assert_eq!(message(s.into_request().unwrap_err()), "LoRA rank r must be at least 1");
    }
}
