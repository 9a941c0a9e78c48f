//! Binding of [`crate::train::dsl::train_dsl`]: `NativeDslTrainer` runs Stage 4 training as an
//! AsyncTask on the libuv pool, reports progress through a threadsafe callback, and owns the
//! cancellation flag its `cancel()` sets (wire an `AbortSignal` to it).

use super::convert::{attribute_vocab, resolve_options, seed};
use super::guard;
use crate::dsl::parse;
use crate::error::{Result as CoreResult, WotdError};
use crate::io::peft::LoraConfig;
use crate::rvq::{AttributeVocab, LEVELS};
use crate::train::dsl::{train_dsl, DslTrainOutcome, DslTrainRequest, ExampleSource};
use crate::train::{AdamWConfig, ExampleOptions, LabeledWord, PatternKind, Progress, TextExample, TrainConfig};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A word and its semantic ID (4 codes, 0-31).
#[napi(object)]
#[derive(Clone)]
pub struct DslWord {
    pub word: String,
    pub id: Vec<u32>,
}

/// A ready-made example: a pattern such as `[2,*,17,*]` and the words that answer it.
#[napi(object)]
#[derive(Clone)]
pub struct DslExample {
    pub pattern: String,
    pub words: Vec<String>,
    /// Words of the region given in the request (set expansion).
    pub seeds: Option<Vec<String>>,
}

#[napi(object)]
#[derive(Clone, Default)]
pub struct DslLoraOptions {
    /// Default 8.
    pub rank: Option<u32>,
    /// Default 16.
    pub alpha: Option<f64>,
    /// Default 0.05.
    pub dropout: Option<f64>,
    /// PEFT module names or `["all-linear"]`; default every attention and MLP projection.
    pub target_modules: Option<Vec<String>>,
}

#[napi(object)]
#[derive(Clone)]
pub struct DslTrainOptions {
    /// A local model directory or weight file, or a Hugging Face id.
    pub base_model: String,
    pub revision: Option<String>,
    /// Never contact the Hub.
    pub offline: Option<bool>,
    /// Labeled words to sample examples from (give this or `examples`).
    pub words: Option<Vec<DslWord>>,
    /// Ready-made examples (give this or `words`).
    pub examples: Option<Vec<DslExample>>,
    /// Name attribute values in prompts (aligned codebooks). Default false.
    pub aligned: Option<bool>,
    /// Attribute names and their 4 values each, for aligned prompts; default style /
    /// complexity / era with DESIGN.md's values.
    pub attribute_names: Option<Vec<String>>,
    pub attribute_values: Option<Vec<Vec<String>>>,
    /// Pattern shapes to sample: `full`, `prefix3`, `prefix2`, `style`, `complexity`, `era`;
    /// default all.
    pub kinds: Option<Vec<String>>,
    pub max_patterns_per_kind: Option<u32>,
    /// Default 1.
    pub variants_per_pattern: Option<u32>,
    /// Words per answer at most; default 12.
    pub max_words: Option<u32>,
    /// Words of the region shown in each request (set expansion); default 0.
    pub seed_words: Option<u32>,
    /// A system message before every request; default the chat template's own.
    pub system_prompt: Option<String>,
    /// Stop after this many updates with a checkpoint and the adapter written
    /// (`stopped: 'paused'`); training again with `resume` continues the same schedule.
    pub pause_at_step: Option<u32>,
    /// Share of patterns held out; default 0.1.
    pub validation_fraction: Option<f64>,
    /// Tokens per example at most (prompt + answer); default 256.
    pub max_length: Option<u32>,
    pub lora: Option<DslLoraOptions>,
    /// Optimizer updates; with `epochs` too, whichever ends first. Default: 3 epochs.
    pub steps: Option<u32>,
    pub epochs: Option<u32>,
    /// Default 8.
    pub batch_size: Option<u32>,
    /// Default 1.
    pub grad_accum: Option<u32>,
    /// Peak learning rate; default 2e-4.
    pub lr: Option<f64>,
    /// Floor of the cosine decay; default 0.
    pub min_lr: Option<f64>,
    /// Default 10.
    pub warmup_steps: Option<u32>,
    /// Default 0.
    pub weight_decay: Option<f64>,
    /// Default 1; 0 disables clipping.
    pub max_grad_norm: Option<f64>,
    /// Default 50; 0 never evaluates.
    pub eval_every: Option<u32>,
    /// Evaluations without improvement before stopping; default 3, 0 never stops early.
    pub patience: Option<u32>,
    /// Default 100; 0 writes checkpoints only when the run stops.
    pub checkpoint_every: Option<u32>,
    /// Default 2; 0 keeps all.
    pub keep_checkpoints: Option<u32>,
    /// Recompute every n-th layer's activations in the backward pass instead of keeping them
    /// (less memory for one more forward of those layers): 0 never, 1 every layer; default 2.
    pub gradient_checkpointing: Option<u32>,
    /// Checkpoints, `adapter/`, `best-adapter/` and `dsl_prompt.json` go here.
    pub out_dir: String,
    /// Integer 0..2^53; default 0.
    pub seed: Option<f64>,
    /// Continue from the newest complete checkpoint in `outDir` (fresh start when none).
    pub resume: Option<bool>,
}

/// Reported after every optimizer update.
#[napi(object)]
pub struct DslTrainProgress {
    pub step: u32,
    pub total_steps: u32,
    pub epoch: u32,
    pub loss: f64,
    /// Present when this update was followed by an evaluation.
    pub val_loss: Option<f64>,
    pub lr: f64,
    pub grad_norm: f64,
    pub tokens_per_second: f64,
    pub eta_seconds: f64,
    /// Path of the checkpoint written after this update, if any.
    pub checkpoint: Option<String>,
}

#[napi(object)]
pub struct DslValLoss {
    pub step: u32,
    pub loss: f64,
}

#[napi(object)]
pub struct DslTrainResult {
    pub steps: u32,
    pub total_steps: u32,
    pub final_loss: Option<f64>,
    pub best_val_loss: Option<f64>,
    pub best_step: Option<u32>,
    /// Mean loss of each update.
    pub losses: Vec<f64>,
    pub val_losses: Vec<DslValLoss>,
    /// The final adapter (PEFT files); for a cancelled run, the checkpoint to resume from.
    pub adapter_dir: String,
    pub best_adapter_dir: Option<String>,
    pub last_checkpoint: Option<String>,
    pub tokens_per_second: f64,
    #[napi(ts_type = "'done' | 'early-stop' | 'cancelled' | 'paused'")]
    pub stopped: String,
    pub train_examples: u32,
    pub validation_examples: u32,
    pub train_tokens: u32,
}

type ProgressFn = ThreadsafeFunction<DslTrainProgress, (), DslTrainProgress, Status, false>;

/// Stage 4 training of a DSL model. One trainer runs one training at a time; `cancel()` stops
/// it after the current update, writes a checkpoint, and resolves with `stopped: 'cancelled'`.
#[napi]
pub struct NativeDslTrainer {
    options: DslTrainOptions,
    cancel: Arc<AtomicBool>,
}

#[napi]
impl NativeDslTrainer {
    #[napi(constructor)]
    pub fn new(options: DslTrainOptions) -> Self {
        NativeDslTrainer { options, cancel: Arc::new(AtomicBool::new(false)) }
    }

    /// Trains off the main thread. Rejects with a typed error for bad options, a missing
    /// model, or a resume whose checkpoint disagrees with these options.
    #[napi(ts_return_type = "Promise<DslTrainResult>")]
    pub fn train(
        &self,
        #[napi(ts_arg_type = "((progress: DslTrainProgress) => void) | undefined | null")] on_progress: Option<ProgressFn>,
    ) -> AsyncTask<TrainTask> {
        AsyncTask::new(TrainTask { request: request(&self.options), on_progress, cancel: self.cancel.clone() })
    }

    /// Asks a running `train()` to stop after its current update.
    #[napi]
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    #[napi(getter)]
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }
}

/// Bad options travel into the task, so the Promise rejects instead of the call throwing.
pub struct TrainTask {
    request: CoreResult<DslTrainRequest>,
    on_progress: Option<ProgressFn>,
    cancel: Arc<AtomicBool>,
}

impl Task for TrainTask {
    type Output = DslTrainOutcome;
    type JsValue = DslTrainResult;

    fn compute(&mut self) -> Result<DslTrainOutcome> {
        let request = std::mem::replace(&mut self.request, Err(WotdError::Cancelled));
        let (on_progress, cancel) = (&self.on_progress, &self.cancel);
        guard(|| {
            train_dsl(
                request?,
                &mut |p: &Progress| {
                    if let Some(f) = on_progress {
                        // Non-blocking: a slow JS callback must never stall training.
                        let _ = f.call(progress(p), ThreadsafeFunctionCallMode::NonBlocking);
                    }
                },
                cancel,
            )
        })
    }

    fn resolve(&mut self, _env: Env, out: DslTrainOutcome) -> Result<DslTrainResult> {
        let o = out.outcome;
        let path = |p: std::path::PathBuf| p.display().to_string();
        Ok(DslTrainResult {
            steps: o.steps as u32,
            total_steps: o.total_steps as u32,
            final_loss: o.final_loss,
            best_val_loss: o.best_val_loss,
            best_step: o.best_step.map(|s| s as u32),
            losses: o.losses,
            val_losses: o.val_losses.into_iter().map(|(step, loss)| DslValLoss { step: step as u32, loss }).collect(),
            adapter_dir: path(o.adapter_dir),
            best_adapter_dir: o.best_adapter_dir.map(path),
            last_checkpoint: o.last_checkpoint.map(path),
            tokens_per_second: o.tokens_per_second,
            stopped: o.stopped.as_str().to_string(),
            train_examples: out.train_examples as u32,
            validation_examples: out.validation_examples as u32,
            train_tokens: out.train_tokens.min(u32::MAX as usize) as u32,
        })
    }
}

fn progress(p: &Progress) -> DslTrainProgress {
    DslTrainProgress {
        step: p.step as u32,
        total_steps: p.total_steps as u32,
        epoch: p.epoch as u32,
        loss: p.loss,
        val_loss: p.val_loss,
        lr: p.lr,
        grad_norm: p.grad_norm,
        tokens_per_second: p.tokens_per_second,
        eta_seconds: p.eta_seconds,
        checkpoint: p.checkpoint.as_ref().map(|c| c.display().to_string()),
    }
}

fn request(o: &DslTrainOptions) -> CoreResult<DslTrainRequest> {
    let seed = seed(o.seed)?;
    let fraction = o.validation_fraction.unwrap_or(0.1);
    let source = match (&o.words, &o.examples) {
        (Some(words), None) => {
            let defaults = ExampleOptions::default();
            let kinds = match &o.kinds {
                Some(names) => names.iter().map(|n| PatternKind::from_name(n)).collect::<CoreResult<_>>()?,
                None => defaults.kinds.clone(),
            };
            ExampleSource::Words {
                words: words.iter().map(labeled_word).collect::<CoreResult<_>>()?,
                options: ExampleOptions {
                    seed,
                    kinds,
                    max_patterns_per_kind: o.max_patterns_per_kind.map(|m| m as usize),
                    variants_per_pattern: o.variants_per_pattern.map_or(defaults.variants_per_pattern, |v| v as usize),
                    max_words: o.max_words.map_or(defaults.max_words, |v| v as usize),
                    seed_words: o.seed_words.map_or(defaults.seed_words, |v| v as usize),
                    validation_fraction: fraction,
                },
            }
        }
        (None, Some(examples)) => ExampleSource::Examples {
            examples: examples
                .iter()
                .map(|e| Ok(TextExample { pattern: parse(&e.pattern)?, words: e.words.clone(), seeds: e.seeds.clone().unwrap_or_default() }))
                .collect::<CoreResult<_>>()?,
            validation_fraction: fraction,
        },
        _ => return Err(WotdError::InvalidInput("give exactly one of `words` or `examples`".into())),
    };
    let vocab = match (o.aligned.unwrap_or(false), &o.attribute_names, &o.attribute_values) {
        (false, None, None) => None,
        (_, None, None) => Some(AttributeVocab::default()),
        (_, Some(names), Some(values)) => Some(attribute_vocab(names, values)?),
        _ => return Err(WotdError::InvalidInput("give attributeNames and attributeValues together".into())),
    };
    let lora_in = o.lora.clone().unwrap_or_default();
    let lora_default = LoraConfig::default();
    let lora = LoraConfig {
        r: lora_in.rank.map_or(lora_default.r, |r| r as usize),
        alpha: lora_in.alpha.unwrap_or(lora_default.alpha),
        dropout: lora_in.dropout.unwrap_or(lora_default.dropout),
        target_modules: lora_in.target_modules.unwrap_or_default(),
        use_rslora: false,
        seed,
    };
    lora.validate()?;
    let d = TrainConfig::default();
    let count = |v: Option<u32>, default: usize| v.map_or(default, |x| x as usize);
    let train = TrainConfig {
        epochs: match (o.epochs, o.steps) {
            (None, None) => d.epochs,
            (e, _) => e.map(|e| e as usize),
        },
        max_steps: o.steps.map(|s| s as usize),
        batch_size: count(o.batch_size, d.batch_size),
        grad_accum: count(o.grad_accum, d.grad_accum),
        lr: o.lr.unwrap_or(d.lr),
        min_lr: o.min_lr.unwrap_or(d.min_lr),
        warmup_steps: count(o.warmup_steps, d.warmup_steps),
        adamw: AdamWConfig { weight_decay: o.weight_decay.unwrap_or(d.adamw.weight_decay), ..d.adamw.clone() },
        max_grad_norm: o.max_grad_norm.unwrap_or(d.max_grad_norm),
        eval_every: count(o.eval_every, d.eval_every),
        patience: count(o.patience, d.patience),
        min_delta: d.min_delta,
        checkpoint_every: count(o.checkpoint_every, d.checkpoint_every),
        keep_checkpoints: count(o.keep_checkpoints, d.keep_checkpoints),
        seed,
        group_by_length: d.group_by_length,
        pad_token_id: d.pad_token_id,
        pause_at_step: o.pause_at_step.map(|s| s as usize),
    };
    Ok(DslTrainRequest {
        base_model: o.base_model.clone(),
        resolve: resolve_options(o.offline, o.revision.as_ref()),
        source,
        vocab,
        system_prompt: o.system_prompt.clone(),
        lora,
        max_length: count(o.max_length, 256),
        train,
        out_dir: o.out_dir.clone().into(),
        resume: o.resume.unwrap_or(false),
        gradient_checkpointing: o.gradient_checkpointing.unwrap_or(2) as usize,
    })
}

fn labeled_word(w: &DslWord) -> CoreResult<LabeledWord> {
    let id: [u8; LEVELS] = w
        .id
        .iter()
        .map(|&c| u8::try_from(c).ok().filter(|c| *c < 32))
        .collect::<Option<Vec<u8>>>()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| WotdError::InvalidInput(format!("word {:?} needs an ID of {LEVELS} codes 0-31, got {:?}", w.word, w.id)))?;
    Ok(LabeledWord { word: w.word.clone(), id })
}
