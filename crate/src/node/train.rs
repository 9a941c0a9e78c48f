//! Binding of [`crate::train::dsl::train_dsl`]: `NativeDslTrainer` runs Stage 4 training as an
//! AsyncTask on the libuv pool, reports progress through a threadsafe callback, and stops on
//! its `cancel()` or a `CancelToken` (wire an `AbortSignal` to either). Options map onto
//! [`DslTrainSettings`], which owns every default and rule.

use super::convert::{resolve_options, seed};
use super::guard;
use super::task::{report, CancelToken, ProgressFn};
use crate::dsl::parse;
use crate::error::{Result as CoreResult, WotdError};
use crate::rvq::LEVELS;
use crate::train::dsl::{train_dsl, DslTrainOutcome, DslTrainRequest};
use crate::train::{DslTrainSettings, LabeledWord, LoraSettings, Progress, TextExample};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::sync::atomic::AtomicBool;
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

/// Stage 4 training of a DSL model. One trainer runs one training at a time; `cancel()` (or
/// the token given to `train`) stops it after the current update, writes a checkpoint, and
/// resolves with `stopped: 'cancelled'`.
#[napi]
pub struct NativeDslTrainer {
    options: DslTrainOptions,
    /// What the running task polls: the trainer's own token, or the one given to `train`.
    cancel: CancelToken,
}

#[napi]
impl NativeDslTrainer {
    #[napi(constructor)]
    pub fn new(options: DslTrainOptions) -> Self {
        NativeDslTrainer { options, cancel: CancelToken::new() }
    }

    /// Trains off the main thread. Rejects with a typed error for bad options, a missing
    /// model, or a resume whose checkpoint disagrees with these options. With `cancel`, that
    /// token becomes this trainer's flag: cancelling either stops the run.
    #[napi(ts_return_type = "Promise<DslTrainResult>")]
    pub fn train(
        &mut self,
        #[napi(ts_arg_type = "((progress: DslTrainProgress) => void) | undefined | null")] on_progress: Option<ProgressFn<DslTrainProgress>>,
        cancel: Option<&CancelToken>,
    ) -> AsyncTask<TrainTask> {
        if let Some(token) = cancel {
            // A `cancel()` that came before this call still counts.
            if self.cancel.cancelled() {
                token.cancel();
            }
            self.cancel = token.clone();
        }
        AsyncTask::new(TrainTask { request: settings(&self.options).and_then(DslTrainSettings::into_request), on_progress, cancel: self.cancel.flag() })
    }

    /// Asks a running `train()` to stop after its current update.
    #[napi]
    pub fn cancel(&self) {
        self.cancel.cancel()
    }

    #[napi(getter)]
    pub fn cancelled(&self) -> bool {
        self.cancel.cancelled()
    }
}

/// Bad options travel into the task, so the Promise rejects instead of the call throwing.
pub struct TrainTask {
    request: CoreResult<DslTrainRequest>,
    on_progress: Option<ProgressFn<DslTrainProgress>>,
    cancel: Arc<AtomicBool>,
}

impl Task for TrainTask {
    type Output = DslTrainOutcome;
    type JsValue = DslTrainResult;

    fn compute(&mut self) -> Result<DslTrainOutcome> {
        let request = std::mem::replace(&mut self.request, Err(WotdError::Cancelled));
        let (on_progress, cancel) = (self.on_progress.as_ref(), &self.cancel);
        guard(|| train_dsl(request?, &mut |p: &Progress| report(on_progress, || p.into()), cancel))
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

impl From<&Progress> for DslTrainProgress {
    fn from(p: &Progress) -> Self {
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
}

/// The options as core settings, field for field; only JS types are converted here.
fn settings(o: &DslTrainOptions) -> CoreResult<DslTrainSettings> {
    let seed = seed(o.seed)?;
    let count = |v: Option<u32>| v.map(|x| x as usize);
    let lora = o.lora.clone().unwrap_or_default();
    Ok(DslTrainSettings {
        base_model: o.base_model.clone(),
        resolve: resolve_options(o.offline, o.revision.as_ref()),
        words: o.words.as_ref().map(|ws| ws.iter().map(labeled_word).collect::<CoreResult<_>>()).transpose()?,
        examples: o.examples.as_ref().map(|es| es.iter().map(text_example).collect::<CoreResult<_>>()).transpose()?,
        aligned: o.aligned,
        attribute_names: o.attribute_names.clone(),
        attribute_values: o.attribute_values.clone(),
        kinds: o.kinds.clone(),
        max_patterns_per_kind: count(o.max_patterns_per_kind),
        variants_per_pattern: count(o.variants_per_pattern),
        max_words: count(o.max_words),
        seed_words: count(o.seed_words),
        system_prompt: o.system_prompt.clone(),
        validation_fraction: o.validation_fraction,
        max_length: count(o.max_length),
        lora: LoraSettings { rank: count(lora.rank), alpha: lora.alpha, dropout: lora.dropout, target_modules: lora.target_modules },
        steps: count(o.steps),
        epochs: count(o.epochs),
        batch_size: count(o.batch_size),
        grad_accum: count(o.grad_accum),
        lr: o.lr,
        min_lr: o.min_lr,
        warmup_steps: count(o.warmup_steps),
        weight_decay: o.weight_decay,
        max_grad_norm: o.max_grad_norm,
        eval_every: count(o.eval_every),
        patience: count(o.patience),
        checkpoint_every: count(o.checkpoint_every),
        keep_checkpoints: count(o.keep_checkpoints),
        pause_at_step: count(o.pause_at_step),
        gradient_checkpointing: count(o.gradient_checkpointing),
        out_dir: o.out_dir.clone().into(),
        seed,
        resume: o.resume,
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

fn text_example(e: &DslExample) -> CoreResult<TextExample> {
    Ok(TextExample { pattern: parse(&e.pattern)?, words: e.words.clone(), seeds: e.seeds.clone().unwrap_or_default() })
}
