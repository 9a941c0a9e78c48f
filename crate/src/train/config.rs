//! What a training run is asked to do.

use super::optim::AdamWConfig;
use crate::error::{Result, WotdError};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the training examples. With `max_steps` as well, whichever ends first.
    pub epochs: Option<usize>,
    /// Optimizer updates.
    pub max_steps: Option<usize>,
    /// Examples per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimizer update.
    pub grad_accum: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Floor the cosine decays to.
    pub min_lr: f64,
    pub warmup_steps: usize,
    pub adamw: AdamWConfig,
    /// Global gradient norm limit; 0 disables clipping.
    pub max_grad_norm: f64,
    /// Evaluate on the validation split every this many updates (and after the last); 0 never.
    pub eval_every: usize,
    /// Stop after this many evaluations without improvement; 0 never stops early.
    pub patience: usize,
    /// How much lower a validation loss must be to count as an improvement.
    pub min_delta: f64,
    /// Write a checkpoint every this many updates; 0 only when the run stops.
    pub checkpoint_every: usize,
    /// Complete checkpoints kept on disk (the newest); 0 keeps all.
    pub keep_checkpoints: usize,
    pub seed: u64,
    /// Batch examples of similar length together.
    pub group_by_length: bool,
    /// Token written into padding (never attended to nor learned).
    pub pad_token_id: u32,
    /// Stop once this many updates are done (with a checkpoint and the adapter written), as a
    /// pause: resuming continues the same schedule. Lets a caller evaluate along the way.
    #[serde(default)]
    pub pause_at_step: Option<usize>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: Some(3),
            max_steps: None,
            batch_size: 8,
            grad_accum: 1,
            lr: 2e-4,
            min_lr: 0.0,
            warmup_steps: 10,
            adamw: AdamWConfig::default(),
            max_grad_norm: 1.0,
            eval_every: 50,
            patience: 3,
            min_delta: 0.0,
            checkpoint_every: 100,
            keep_checkpoints: 2,
            seed: 0,
            group_by_length: true,
            pad_token_id: 0,
            pause_at_step: None,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(WotdError::InvalidInput(m));
        if self.epochs.is_none() && self.max_steps.is_none() {
            return bad("give epochs or max_steps".into());
        }
        if self.epochs == Some(0) || self.max_steps == Some(0) {
            return bad("epochs and max_steps must be at least 1".into());
        }
        if self.batch_size == 0 || self.grad_accum == 0 {
            return bad(format!("batch size ({}) and gradient accumulation ({}) must be at least 1", self.batch_size, self.grad_accum));
        }
        // Written to also refuse NaN, which fails every comparison.
        if self.max_grad_norm.is_nan() || self.min_delta.is_nan() || self.max_grad_norm < 0.0 || self.min_delta < 0.0 {
            return bad("max_grad_norm and min_delta must be >= 0".into());
        }
        self.adamw.validate()
    }

    /// The settings that shape the trajectory. A resumed run must agree on all of them with the
    /// run it continues; where and how often checkpoints are written may change.
    pub(crate) fn trajectory(&self) -> TrainConfig {
        TrainConfig { checkpoint_every: 0, keep_checkpoints: 0, pause_at_step: None, ..self.clone() }
    }
}
