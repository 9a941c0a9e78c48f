//! The trainer's resumable state: everything besides tensors that a checkpoint must carry for a
//! resumed run to continue exactly where the interrupted one stopped.

use super::config::TrainConfig;
use serde::{Deserialize, Serialize};

/// Why a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// Every planned step was taken.
    Done,
    /// Validation loss stopped improving for `patience` evaluations.
    EarlyStop,
    /// Cancelled from outside; a checkpoint holds the state to resume from.
    Cancelled,
    /// Reached `pause_at_step`; a checkpoint and the adapter hold the state to resume from.
    Paused,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Done => "done",
            StopReason::EarlyStop => "early-stop",
            StopReason::Cancelled => "cancelled",
            StopReason::Paused => "paused",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Optimizer updates taken.
    pub step: usize,
    pub total_steps: usize,
    /// Data cursor: the epoch being read and the index of its next batch.
    pub epoch: u64,
    pub next_batch: usize,
    /// The current epoch's batches (example indices). Rebuildable from the seed, stored anyway
    /// so a resumed run can prove it reads the same order.
    pub epoch_batches: Vec<Vec<usize>>,
    /// State of the dropout stream.
    pub dropout_rng: [u64; 4],
    /// Mean training loss of each update, in order.
    pub losses: Vec<f64>,
    /// `(step, loss)` of each evaluation.
    pub val_losses: Vec<(usize, f64)>,
    /// Bits of the best validation loss: exact through JSON, so the early-stopping decisions of
    /// a resumed run cannot differ by a rounding.
    pub best_val_bits: Option<u64>,
    pub best_step: Option<usize>,
    pub evals_without_improvement: usize,
    /// Real tokens trained on so far.
    pub tokens_seen: u64,
    /// Set when the run ended by itself (done or early stop); a cancelled run leaves it unset.
    pub stopped: Option<StopReason>,
    pub config: TrainConfig,
    /// sha256 of the tokenized training and validation data.
    pub data_fingerprint: String,
}

impl RunState {
    pub fn best_val_loss(&self) -> Option<f64> {
        self.best_val_bits.map(f64::from_bits)
    }
}
