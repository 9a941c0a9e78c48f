//! What the training loop needs from a model, and nothing more: logits with a recorded graph,
//! the trainable tensors by name, and a way to write them as an adapter.
//!
//! The loop is written against this trait so it can be tested on a tiny stand-in and run on the
//! real decoders ([`crate::models::causal_lm::CausalLm`]) unchanged.

use crate::nn::loss::masked_nll_sum;
use crate::error::Result;
use crate::random::SeededRng;
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

/// File the trainable tensors are written to (PEFT's name, so a checkpoint is also an adapter).
pub const ADAPTER_WEIGHTS: &str = crate::io::peft::ADAPTER_WEIGHTS;

pub trait TrainableLm {
    /// Logits `[b, t, vocab]` for every position of `input_ids` `[b, t]` (u32) under
    /// `attention_mask` `[b, t]` (u32, 1 = real token), recording the graph through every
    /// trainable tensor. Dropout, where the model has any, draws from `dropout` only, so a run
    /// that restores the stream's state replays the same masks.
    fn forward_train(&self, input_ids: &Tensor, attention_mask: &Tensor, dropout: &Mutex<SeededRng>) -> Result<Tensor>;

    /// The same logits without dropout; no graph needs to be recorded.
    fn forward_eval(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor>;

    /// Summed loss of every labeled next token and their count, graph recorded (see
    /// [`crate::nn::loss::masked_nll_sum`]). Models may override it to skip logits nobody reads.
    fn train_loss_sum(&self, input_ids: &Tensor, attention_mask: &Tensor, labels: &Tensor, dropout: &Mutex<SeededRng>) -> Result<(Tensor, usize)> {
        masked_nll_sum(&self.forward_train(input_ids, attention_mask, dropout)?, labels)
    }

    /// The same for evaluation: no dropout, no graph needed.
    fn eval_loss_sum(&self, input_ids: &Tensor, attention_mask: &Tensor, labels: &Tensor) -> Result<(Tensor, usize)> {
        masked_nll_sum(&self.forward_eval(input_ids, attention_mask)?.detach(), labels)
    }

    /// Gradients of `loss` for every trainable tensor. Models that compute some of them outside
    /// candle's graph (activation checkpointing) add those here.
    fn backward(&self, loss: &Tensor) -> Result<GradStore> {
        Ok(loss.backward()?)
    }

    /// Every trainable tensor under its adapter-file name (PEFT's
    /// `base_model.model.<module>.lora_{A,B}.weight`), in a stable order.
    fn trainable_vars(&self) -> Vec<(String, Var)>;

    /// Writes the trainable tensors as an adapter directory. The default writes
    /// [`ADAPTER_WEIGHTS`] only; models that know their adapter config also write
    /// `adapter_config.json`.
    fn save_adapter(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| crate::WotdError::io(dir, e))?;
        let tensors: HashMap<String, Tensor> =
            self.trainable_vars().into_iter().map(|(n, v)| (n, v.as_tensor().detach())).collect();
        crate::io::save_tensors(&tensors, &dir.join(ADAPTER_WEIGHTS))
    }
}

/// Sets every trainable tensor from `tensors` (keyed by the same names). All names must be
/// present with matching shapes; nothing is changed otherwise.
pub fn load_trainable(model: &(impl TrainableLm + ?Sized), tensors: &HashMap<String, Tensor>) -> Result<()> {
    let vars = model.trainable_vars();
    for (name, var) in &vars {
        let t = tensors
            .get(name)
            .ok_or_else(|| crate::WotdError::InvalidInput(format!("saved adapter has no tensor {name}")))?;
        if t.dims() != var.dims() {
            return Err(crate::WotdError::InvalidInput(format!("saved {name} is {:?}, the model's is {:?}", t.dims(), var.dims())));
        }
    }
    for (name, var) in &vars {
        var.set(&tensors[name].to_dtype(var.dtype())?.to_device(var.device())?)?;
    }
    Ok(())
}
