//! What word generation needs from a decoder: one KV-cached step returning the logits of
//! each row's last position. Both the f32 [`CausalLm`] and the Q8_0 [`super::quantized::QuantizedLm`]
//! provide it, so sampling, constraints and parsing are written once.

use crate::error::{Result, WotdError};
use crate::models::{CausalLm, DecoderConfig};
use crate::nn::kv_cache::KvCache;
use candle_core::{Device, Tensor};

pub trait DecodeModel: Send + Sync {
    fn config(&self) -> &DecoderConfig;
    fn device(&self) -> &Device;
    fn new_cache(&self) -> KvCache;
    /// `[b, vocab]` logits of the last position of `ids` `[b, t]`, appending to `cache`.
    /// `mask` marks real tokens of this call (all real when `None`).
    fn last_logits(&self, ids: &Tensor, mask: Option<&Tensor>, cache: &mut KvCache) -> Result<Tensor>;
}

impl DecodeModel for CausalLm {
    fn config(&self) -> &DecoderConfig {
        CausalLm::config(self)
    }

    fn device(&self) -> &Device {
        CausalLm::device(self)
    }

    fn new_cache(&self) -> KvCache {
        CausalLm::new_cache(self)
    }

    fn last_logits(&self, ids: &Tensor, mask: Option<&Tensor>, cache: &mut KvCache) -> Result<Tensor> {
        let t = ids.dims()[1];
        let hidden = self.final_hidden_no_grad(ids, mask, Some(cache))?;
        // Only the last position is projected: the LM head is the widest matmul of a step.
        let last = hidden.narrow(1, t - 1, 1)?.squeeze(1)?;
        self.lm_head(&last)
    }
}

/// A cache of one row repeated `rows` times: the prompt is prefilled once, then every sample
/// continues from its own copy.
pub fn repeat_cache(model: &dyn DecodeModel, one: &KvCache, rows: usize) -> Result<KvCache> {
    if one.batch_size() != Some(1) {
        return Err(WotdError::InvalidInput(format!("expected a one-row cache, got {:?} rows", one.batch_size())));
    }
    let mut out = model.new_cache();
    let n = one.num_layers();
    let mut src = one.clone();
    for i in 0..n {
        let (k, v) = src
            .layer_mut(i)?
            .get()
            .ok_or_else(|| WotdError::InvalidInput(format!("cache layer {i} is empty")))?;
        let k = k.repeat((rows, 1, 1, 1))?;
        let v = v.repeat((rows, 1, 1, 1))?;
        out.layer_mut(i)?.append(&k, &v)?;
    }
    out.commit(&vec![one.valid()[0].clone(); rows]);
    Ok(out)
}
