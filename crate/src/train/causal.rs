//! The project's decoders ([`CausalLm`]) as trainable models.
//!
//! Losses go through the final hidden states and project only the rows that predict a label:
//! the LM head is a fifth of SmolLM2's forward FLOPs, most positions are prompt, and full
//! `[b, t, vocab]` logits (with their log-softmax and its gradient) were most of a training
//! step's memory. LoRA dropout draws from the loop's stream exactly as `forward_train` does.

use crate::nn::loss::masked_hidden_nll_sum;
use super::model::TrainableLm;
use crate::error::Result;
use crate::models::CausalLm;
use crate::random::SeededRng;
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use std::path::Path;
use std::sync::Mutex;

impl TrainableLm for CausalLm {
    fn forward_train(&self, input_ids: &Tensor, attention_mask: &Tensor, dropout: &Mutex<SeededRng>) -> Result<Tensor> {
        CausalLm::forward_train(self, input_ids, attention_mask, dropout)
    }

    fn forward_eval(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        CausalLm::forward_eval(self, input_ids, attention_mask)
    }

    fn train_loss_sum(&self, input_ids: &Tensor, attention_mask: &Tensor, labels: &Tensor, dropout: &Mutex<SeededRng>) -> Result<(Tensor, usize)> {
        let hidden = self.final_hidden_train(input_ids, attention_mask, dropout)?;
        masked_hidden_nll_sum(&hidden, labels, self.config().vocab_size, |rows| self.lm_head(rows))
    }

    fn eval_loss_sum(&self, input_ids: &Tensor, attention_mask: &Tensor, labels: &Tensor) -> Result<(Tensor, usize)> {
        let hidden = self.final_hidden_no_grad(input_ids, Some(attention_mask), None)?;
        masked_hidden_nll_sum(&hidden, labels, self.config().vocab_size, |rows| self.lm_head(rows))
    }

    fn backward(&self, loss: &Tensor) -> Result<GradStore> {
        CausalLm::backward(self, loss)
    }

    fn trainable_vars(&self) -> Vec<(String, Var)> {
        self.lora_vars()
    }

    fn save_adapter(&self, dir: &Path) -> Result<()> {
        CausalLm::save_adapter(self, dir)
    }
}
