//! The training loop: updates over accumulated micro-batches, evaluation with early stopping,
//! checkpoints, progress, cancellation, and resume.
//!
//! A step is one optimizer update over `grad_accum` micro-batches, with the loss normalised by
//! the labeled tokens of all of them, so accumulation gives the gradient of one large batch.
//! Everything random is a function of the seed plus state the checkpoint stores (data cursor,
//! epoch order, dropout stream), so a run resumed from step k retraces an uninterrupted one.

use super::batch::{collate, epoch_batches, Batch};
use super::checkpoint;
use super::config::TrainConfig;
use crate::prompt::TokenizedExample;
use super::model::{load_trainable, TrainableLm};
use super::optim::{clip_grad_norm, AdamW, GradAccumulator};
use super::random::stream;
use super::schedule::Schedule;
use super::state::{RunState, StopReason};
use crate::error::{Context, Result, WotdError};
use crate::io::atomic::replace_dir;
use crate::random::SeededRng;
use candle_core::{Device, Var};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Final adapter of a run, under the output directory.
pub const ADAPTER_DIR: &str = "adapter";
/// Adapter at the best validation loss.
pub const BEST_ADAPTER_DIR: &str = "best-adapter";

/// Tokenized examples, split.
#[derive(Clone, Debug, Default)]
pub struct TrainData {
    pub train: Vec<TokenizedExample>,
    pub validation: Vec<TokenizedExample>,
}

impl TrainData {
    /// sha256 over every id and mask bit, so a resume can tell it is fed the same data.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for (tag, set) in [(b'T', &self.train), (b'V', &self.validation)] {
            h.update([tag]);
            h.update((set.len() as u64).to_le_bytes());
            for ex in set {
                h.update((ex.len() as u64).to_le_bytes());
                ex.input_ids.iter().for_each(|id| h.update(id.to_le_bytes()));
                h.update(ex.loss_mask.iter().map(|&m| m as u8).collect::<Vec<u8>>());
            }
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Reported after every update.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    pub step: usize,
    pub total_steps: usize,
    pub epoch: u64,
    /// Mean loss of this update.
    pub loss: f64,
    /// Validation loss, when this update was followed by an evaluation.
    pub val_loss: Option<f64>,
    pub lr: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Real tokens per second of training compute in this session.
    pub tokens_per_second: f64,
    /// Seconds left at this session's pace.
    pub eta_seconds: f64,
    /// The checkpoint written after this update, if any.
    pub checkpoint: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TrainOutcome {
    pub steps: usize,
    pub total_steps: usize,
    pub final_loss: Option<f64>,
    pub best_val_loss: Option<f64>,
    pub best_step: Option<usize>,
    pub losses: Vec<f64>,
    pub val_losses: Vec<(usize, f64)>,
    /// The adapter to use: the final one, or for a cancelled run the last checkpoint's.
    pub adapter_dir: PathBuf,
    /// The adapter at the best validation loss, when there was an evaluation.
    pub best_adapter_dir: Option<PathBuf>,
    pub last_checkpoint: Option<PathBuf>,
    /// Over this session (a resumed run counts only what it trained itself).
    pub tokens_per_second: f64,
    pub stopped: StopReason,
}

pub struct Trainer<'a, M: TrainableLm + ?Sized> {
    model: &'a M,
    data: &'a TrainData,
    cfg: TrainConfig,
    out_dir: PathBuf,
    device: Device,
    vars: Vec<(String, Var)>,
    schedule: Schedule,
}

/// Per-session clocks, for rates and the ETA.
struct Clock {
    started: Instant,
    steps: usize,
    tokens: u64,
    compute_secs: f64,
}

impl<'a, M: TrainableLm + ?Sized> Trainer<'a, M> {
    /// Checks the config and data; checkpoints and adapters go to `out_dir`.
    pub fn new(model: &'a M, data: &'a TrainData, cfg: TrainConfig, out_dir: impl Into<PathBuf>) -> Result<Self> {
        cfg.validate()?;
        if data.train.is_empty() {
            return Err(WotdError::InvalidInput("no training examples".into()));
        }
        for (set, name) in [(&data.train, "training"), (&data.validation, "validation")] {
            if let Some(i) = set.iter().position(|e| e.len() < 2 || e.loss_mask.len() != e.len() || !e.loss_mask[1..].contains(&true)) {
                return Err(WotdError::InvalidInput(format!("{name} example {i} has no answer token to learn")));
            }
        }
        let vars = model.trainable_vars();
        let device = vars
            .first()
            .map(|(_, v)| v.device().clone())
            .ok_or_else(|| WotdError::InvalidInput("the model has no trainable tensors (no LoRA adapter attached?)".into()))?;
        let total = total_steps(&cfg, data.train.len());
        let schedule = Schedule::new(cfg.lr, cfg.min_lr, cfg.warmup_steps, total)?;
        Ok(Trainer { model, data, cfg, out_dir: out_dir.into(), device, vars, schedule })
    }

    pub fn total_steps(&self) -> usize {
        self.schedule.total_steps
    }

    pub fn out_dir(&self) -> &Path {
        &self.out_dir
    }

    /// Trains to the end, an early stop, or a cancellation, which comes back as
    /// [`WotdError::Cancelled`] after a checkpoint is written. With `resume`, continues from the
    /// newest complete checkpoint in the output directory (a fresh start when there is none);
    /// without it, checkpoints of an earlier run there are removed first.
    pub fn run(&self, resume: bool, on_progress: &mut dyn FnMut(&Progress), cancel: &AtomicBool) -> Result<TrainOutcome> {
        let outcome = self.run_until_stopped(resume, on_progress, cancel)?;
        match outcome.stopped {
            StopReason::Cancelled => Err(WotdError::Cancelled),
            _ => Ok(outcome),
        }
    }

    /// As [`Trainer::run`], but a cancellation is an outcome (`stopped: Cancelled`) carrying the
    /// losses so far and the checkpoint to resume from.
    pub fn run_until_stopped(&self, resume: bool, on_progress: &mut dyn FnMut(&Progress), cancel: &AtomicBool) -> Result<TrainOutcome> {
        let mut opt = AdamW::new(self.vars.clone(), self.cfg.adamw.clone())?;
        let (mut st, mut last_checkpoint) = match resume.then(|| checkpoint::latest_complete(&self.out_dir)).transpose()?.flatten() {
            Some(path) => (self.restore(&path, &mut opt)?, Some(path)),
            None => {
                self.clear_old_run()?;
                (self.fresh_state(), None)
            }
        };
        let dropout = Mutex::new(SeededRng::from_state(st.dropout_rng));
        // What earlier work in this process freed (the pipeline's catalogue embedding, model
        // loading) goes back before the steps start, so it does not sit under their peak
        // (pipeline peak RSS 2.42 GB without this, with no release inside the loop).
        crate::runtime::release_free_memory();
        let mut clock = Clock { started: Instant::now(), steps: 0, tokens: 0, compute_secs: 0.0 };

        while st.stopped.is_none() {
            if st.step < st.total_steps && self.cfg.pause_at_step.is_some_and(|p| st.step >= p) {
                st.dropout_rng = dropout.lock().expect("dropout lock").state();
                if last_checkpoint.as_ref().is_none_or(|p| !p.ends_with(format!("checkpoint-{}", st.step))) {
                    last_checkpoint = Some(self.checkpoint(&st, &opt)?);
                }
                let adapter = self.out_dir.join(ADAPTER_DIR);
                replace_dir(&adapter, |tmp| self.model.save_adapter(tmp))?;
                return Ok(self.outcome(&st, StopReason::Paused, Some(adapter), last_checkpoint, &clock));
            }
            if st.step >= st.total_steps {
                st.stopped = Some(StopReason::Done);
                st.dropout_rng = dropout.lock().expect("dropout lock").state();
                last_checkpoint = Some(self.checkpoint(&st, &opt)?);
                break;
            }
            // A step interrupted between micro-batches is undone (data cursor and dropout stream
            // rewound; weights are only touched at its end), so the checkpoint is the state
            // before it and a resume redoes it whole.
            let before = (st.epoch, st.next_batch, st.epoch_batches.clone(), dropout.lock().expect("dropout lock").state());
            let t0 = Instant::now();
            let stepped = if cancel.load(Ordering::SeqCst) {
                None
            } else {
                self.step(&mut st, &mut opt, &dropout, cancel).context(|| format!("training step {}", st.step + 1))?
            };
            // No `release_free_memory` here: the next step reuses what this one freed, and handing
            // the pages back each step made the next fault them in again (40 steps of SmolLM2,
            // checkpointing every 2nd layer: 149 tok/s and 1.91 GB peak with it, 179 tok/s and
            // 2.00 GB without). They are released when training ends.
            let Some((loss, grad_norm, lr, tokens)) = stepped else {
                (st.epoch, st.next_batch, st.epoch_batches) = (before.0, before.1, before.2);
                *dropout.lock().expect("dropout lock") = SeededRng::from_state(before.3);
                if last_checkpoint.as_ref().is_none_or(|p| !p.ends_with(format!("checkpoint-{}", st.step))) {
                    st.dropout_rng = before.3;
                    last_checkpoint = Some(self.checkpoint(&st, &opt)?);
                }
                return Ok(self.outcome(&st, StopReason::Cancelled, last_checkpoint.clone(), last_checkpoint, &clock));
            };
            clock.compute_secs += t0.elapsed().as_secs_f64();
            clock.tokens += tokens as u64;
            st.step += 1;
            st.losses.push(loss);
            st.tokens_seen += tokens as u64;

            let val_loss = if self.eval_due(st.step, st.total_steps) {
                let v = self.evaluate_into(&mut st)?;
                // Evaluation batches have other shapes than training ones; their blocks would
                // otherwise stay beside the training step's.
                crate::runtime::release_free_memory();
                Some(v)
            } else {
                None
            };
            if self.cfg.patience > 0 && st.evals_without_improvement >= self.cfg.patience {
                st.stopped = Some(StopReason::EarlyStop);
            } else if st.step >= st.total_steps {
                st.stopped = Some(StopReason::Done);
            }
            let due = self.cfg.checkpoint_every > 0 && st.step.is_multiple_of(self.cfg.checkpoint_every);
            let written = if due || st.stopped.is_some() {
                st.dropout_rng = dropout.lock().expect("dropout lock").state();
                let p = self.checkpoint(&st, &opt)?;
                last_checkpoint = Some(p.clone());
                Some(p)
            } else {
                None
            };
            clock.steps += 1;
            let per_step = clock.started.elapsed().as_secs_f64() / clock.steps as f64;
            on_progress(&Progress {
                step: st.step,
                total_steps: st.total_steps,
                epoch: st.epoch,
                loss,
                val_loss,
                lr,
                grad_norm,
                tokens_per_second: rate(clock.tokens, clock.compute_secs),
                eta_seconds: per_step * st.total_steps.saturating_sub(st.step) as f64,
                checkpoint: written,
            });
        }
        let stopped = st.stopped.unwrap_or(StopReason::Done);
        let adapter = self.out_dir.join(ADAPTER_DIR);
        replace_dir(&adapter, |tmp| self.model.save_adapter(tmp))?;
        Ok(self.outcome(&st, stopped, Some(adapter), last_checkpoint, &clock))
    }

    /// One optimizer update; returns (mean loss, grad norm, lr, real tokens), or `None` when
    /// cancelled between micro-batches (the caller rewinds what the step consumed).
    fn step(&self, st: &mut RunState, opt: &mut AdamW, dropout: &Mutex<SeededRng>, cancel: &AtomicBool) -> Result<Option<(f64, f64, f64, usize)>> {
        let batches: Vec<Batch> = (0..self.cfg.grad_accum)
            .map(|_| {
                let idx = self.next_batch(st);
                let exs: Vec<&TokenizedExample> = idx.iter().map(|&i| &self.data.train[i]).collect();
                collate(&exs, self.cfg.pad_token_id, &self.device)
            })
            .collect::<Result<_>>()?;
        let targets: usize = batches.iter().map(|b| b.target_tokens).sum();
        let mut acc = GradAccumulator::new(self.vars.len());
        let mut nll = 0f64;
        for (i, b) in batches.iter().enumerate() {
            if i > 0 && cancel.load(Ordering::SeqCst) {
                return Ok(None);
            }
            let (sum, n) = self.model.train_loss_sum(&b.input_ids, &b.attention_mask, &b.labels, dropout)?;
            if n == 0 {
                continue;
            }
            nll += f64::from(sum.to_scalar::<f32>()?);
            acc.add(&self.model.backward(&(sum / targets as f64)?)?, &self.vars)?;
        }
        let loss = nll / targets as f64;
        if !loss.is_finite() {
            return Err(WotdError::InvalidInput(format!("training loss became {loss}; lower the learning rate")));
        }
        let mut grads = acc.take();
        let limit = if self.cfg.max_grad_norm > 0.0 { self.cfg.max_grad_norm } else { f64::INFINITY };
        let grad_norm = clip_grad_norm(&mut grads, limit)?;
        let lr = self.schedule.lr(st.step + 1);
        opt.step(&grads, lr)?;
        Ok(Some((loss, grad_norm, lr, batches.iter().map(|b| b.real_tokens).sum())))
    }

    /// The next micro-batch, opening the next epoch (and its order) when one runs out.
    fn next_batch(&self, st: &mut RunState) -> Vec<usize> {
        if st.next_batch >= st.epoch_batches.len() {
            st.epoch += 1;
            st.epoch_batches = self.epoch_order(st.epoch);
            st.next_batch = 0;
        }
        st.next_batch += 1;
        st.epoch_batches[st.next_batch - 1].clone()
    }

    fn epoch_order(&self, epoch: u64) -> Vec<Vec<usize>> {
        let lengths: Vec<usize> = self.data.train.iter().map(TokenizedExample::len).collect();
        epoch_batches(&lengths, self.cfg.batch_size, self.cfg.seed, epoch, self.cfg.group_by_length)
    }

    fn eval_due(&self, step: usize, total: usize) -> bool {
        !self.data.validation.is_empty() && self.cfg.eval_every > 0 && (step.is_multiple_of(self.cfg.eval_every) || step == total)
    }

    /// Evaluates, records the result and the early-stopping bookkeeping, and saves the adapter
    /// when it is the best so far.
    fn evaluate_into(&self, st: &mut RunState) -> Result<f64> {
        let val = self.evaluate()?;
        st.val_losses.push((st.step, val));
        let improved = st.best_val_loss().is_none_or(|best| val < best - self.cfg.min_delta);
        if improved {
            st.best_val_bits = Some(val.to_bits());
            st.best_step = Some(st.step);
            st.evals_without_improvement = 0;
            replace_dir(&self.out_dir.join(BEST_ADAPTER_DIR), |tmp| self.model.save_adapter(tmp))?;
        } else {
            st.evals_without_improvement += 1;
        }
        Ok(val)
    }

    /// Mean loss over every labeled validation token, in a fixed length-sorted order.
    pub fn evaluate(&self) -> Result<f64> {
        let mut order: Vec<usize> = (0..self.data.validation.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(self.data.validation[i].len()));
        let (mut nll, mut count) = (0f64, 0usize);
        for chunk in order.chunks(self.cfg.batch_size) {
            let exs: Vec<&TokenizedExample> = chunk.iter().map(|&i| &self.data.validation[i]).collect();
            let b = collate(&exs, self.cfg.pad_token_id, &self.device)?;
            let (sum, n) = self.model.eval_loss_sum(&b.input_ids, &b.attention_mask, &b.labels)?;
            nll += f64::from(sum.to_scalar::<f32>()?);
            count += n;
        }
        if count == 0 {
            return Err(WotdError::InvalidInput("validation set has no labeled token".into()));
        }
        Ok(nll / count as f64)
    }

    fn fresh_state(&self) -> RunState {
        RunState {
            step: 0,
            total_steps: self.total_steps(),
            epoch: 0,
            next_batch: 0,
            epoch_batches: self.epoch_order(0),
            dropout_rng: SeededRng::derive(self.cfg.seed, stream::DROPOUT).state(),
            losses: Vec::new(),
            val_losses: Vec::new(),
            best_val_bits: None,
            best_step: None,
            evals_without_improvement: 0,
            tokens_seen: 0,
            stopped: None,
            config: self.cfg.clone(),
            data_fingerprint: self.data.fingerprint(),
        }
    }

    fn restore(&self, path: &Path, opt: &mut AdamW) -> Result<RunState> {
        let ck = checkpoint::read::<RunState>(path, &self.device)?;
        let st = ck.state;
        if st.config.trajectory() != self.cfg.trajectory() {
            return Err(WotdError::InvalidInput(format!(
                "cannot resume from {}: it was trained with different settings ({}); resume with the same settings or start anew",
                path.display(),
                config_difference(&st.config, &self.cfg)
            )));
        }
        if st.data_fingerprint != self.data.fingerprint() {
            return Err(WotdError::InvalidInput(format!(
                "cannot resume from {}: the training data differs from the data it was trained on",
                path.display()
            )));
        }
        if st.epoch_batches != self.epoch_order(st.epoch) {
            return Err(WotdError::corrupt(path.join(checkpoint::STATE_FILE), "stored data order differs from the seed's order"));
        }
        load_trainable(self.model, &ck.adapter)?;
        opt.load_state(&ck.optimizer, st.step as u64)?;
        Ok(st)
    }

    fn checkpoint(&self, st: &RunState, opt: &AdamW) -> Result<PathBuf> {
        checkpoint::write(&self.out_dir, st.step, st, self.model, opt, self.cfg.keep_checkpoints)
    }

    /// A fresh run must not leave an earlier run's checkpoints beside its own (pruning keeps
    /// the highest steps, which would be the stale ones), nor its best adapter.
    fn clear_old_run(&self) -> Result<()> {
        let Ok(entries) = std::fs::read_dir(&self.out_dir) else { return Ok(()) };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = name == BEST_ADAPTER_DIR || name.strip_prefix("checkpoint-").is_some_and(|s| s.parse::<usize>().is_ok());
            if ours && entry.path().is_dir() {
                std::fs::remove_dir_all(entry.path()).map_err(|e| WotdError::io(entry.path(), e))?;
            }
        }
        Ok(())
    }

    fn outcome(&self, st: &RunState, stopped: StopReason, adapter: Option<PathBuf>, last: Option<PathBuf>, clock: &Clock) -> TrainOutcome {
        let best_dir = self.out_dir.join(BEST_ADAPTER_DIR);
        TrainOutcome {
            steps: st.step,
            total_steps: st.total_steps,
            final_loss: st.losses.last().copied(),
            best_val_loss: st.best_val_loss(),
            best_step: st.best_step,
            losses: st.losses.clone(),
            val_losses: st.val_losses.clone(),
            adapter_dir: adapter.unwrap_or_else(|| self.out_dir.join(ADAPTER_DIR)),
            best_adapter_dir: st.best_step.is_some().then_some(best_dir),
            last_checkpoint: last,
            tokens_per_second: rate(clock.tokens, clock.compute_secs),
            stopped,
        }
    }
}

/// Updates a run makes: `max_steps`, or the updates `epochs` passes take (micro-batches run on
/// across epoch boundaries, so only the last update may be short of a full pass).
pub fn total_steps(cfg: &TrainConfig, examples: usize) -> usize {
    let per_epoch = examples.div_ceil(cfg.batch_size.max(1));
    let by_epochs = cfg.epochs.map(|e| (e * per_epoch).div_ceil(cfg.grad_accum.max(1)).max(1));
    match (by_epochs, cfg.max_steps) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) => a,
        (None, Some(b)) => b,
        (None, None) => 1,
    }
}

fn rate(tokens: u64, secs: f64) -> f64 {
    if secs > 0.0 { tokens as f64 / secs } else { 0.0 }
}

/// The names of the settings that differ, for an error a person can act on.
fn config_difference(saved: &TrainConfig, now: &TrainConfig) -> String {
    let a = serde_json::to_value(saved.trajectory()).unwrap_or_default();
    let b = serde_json::to_value(now.trajectory()).unwrap_or_default();
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else { return "unknown".into() };
    a.iter().filter(|(k, v)| b.get(*k) != Some(*v)).map(|(k, v)| format!("{k}: {v} then, {} now", b[k])).collect::<Vec<_>>().join(", ")
}

