//! Activation checkpointing per decoder layer: the training forward runs each layer without
//! recording a graph and keeps only its input; the backward pass recomputes the layer with a
//! graph, differentiates it, and drops it again. A step then holds one layer's activations at a
//! time instead of all of them (about 2 MB per token for SmolLM2, 17 MB for Phi-3.5-mini), for
//! one extra forward pass per layer.
//!
//! candle has no such mechanism, so the layer becomes a [`CustomOp1`] of its input. Its backward
//! can hand candle the input's gradient only; the gradients of the layer's LoRA weights, found
//! in the same recomputation, go to a [`GradSink`] that the model merges into the step's
//! `GradStore` ([`super::CausalLm::backward`]). LoRA dropout replays exactly: the recomputation
//! starts the dropout stream from the state the forward pass started from.

use super::decoder::DecoderLayer;
use crate::error::WotdError;
use crate::nn::causal_attention::AttentionContext;
use crate::nn::lora::LoraMode;
use crate::random::SeededRng;
use crate::nn::rotary::{RopeTables, RotaryEmbedding};
use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor, TensorId, Var};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Gradients of LoRA weights found while recomputing checkpointed layers, by tensor id.
#[derive(Clone, Debug, Default)]
pub struct GradSink(Arc<Mutex<HashMap<TensorId, Tensor>>>);

impl GradSink {
    fn add(&self, id: TensorId, grad: &Tensor) -> candle_core::Result<()> {
        let mut map = self.0.lock().map_err(|_| candle_core::Error::Msg("gradient sink lock poisoned".into()))?;
        let sum = match map.remove(&id) {
            Some(prev) => (prev + grad)?,
            None => grad.clone(),
        };
        map.insert(id, sum);
        Ok(())
    }

    /// Drops whatever an unfinished backward pass left.
    pub fn clear(&self) {
        if let Ok(mut m) = self.0.lock() {
            m.clear();
        }
    }

    /// Moves every collected gradient into `grads`, adding to what is already there.
    pub fn drain_into(&self, grads: &mut GradStore) -> crate::Result<()> {
        let mut map = self.0.lock().map_err(|_| WotdError::Panic("gradient sink lock poisoned".into()))?;
        for (id, g) in map.drain() {
            let sum = match grads.get_id(id) {
                Some(prev) => (prev + &g)?,
                None => g,
            };
            grads.insert_id(id, sum);
        }
        Ok(())
    }
}

/// `layer(x)` computed without a graph, returned as a node of `x` whose backward recomputes it.
pub fn checkpointed_forward(layer: &DecoderLayer, x: &Tensor, ctx: &AttentionContext<'_>, sink: &GradSink) -> crate::Result<Tensor> {
    let dropout_state = match ctx.lora.dropout {
        Some(m) => Some(m.lock().map_err(|_| WotdError::Panic("dropout RNG lock poisoned".into()))?.state()),
        None => None,
    };
    // Draws the same masks from the same stream as a recorded forward would.
    let plain = AttentionContext { lora: LoraMode { track_grad: false, dropout: ctx.lora.dropout }, ..*ctx };
    let out = layer.forward(&x.detach(), &plain, None)?;
    let op = CheckpointedLayer {
        layer: layer.clone(),
        rope: ctx.rope.clone(),
        tables: ctx.tables.clone(),
        mask: ctx.mask.cloned(),
        dropout_state,
        output: Mutex::new(Some(out)),
        sink: sink.clone(),
    };
    // candle records an op only when an input tracks a gradient. The first layer's input (the
    // frozen embeddings) does not, and without the node the backward would never reach this
    // layer's LoRA weights; as a leaf variable it does (its own gradient is computed and unused).
    let x = if x.track_op() { x.contiguous()? } else { Var::from_tensor(&x.contiguous()?)?.as_tensor().clone() };
    Ok(x.apply_op1(op)?)
}

struct CheckpointedLayer {
    layer: DecoderLayer,
    rope: RotaryEmbedding,
    tables: RopeTables,
    mask: Option<Tensor>,
    dropout_state: Option<[u64; 4]>,
    /// The output computed before the op was applied; handed to candle once, then dropped.
    output: Mutex<Option<Tensor>>,
    sink: GradSink,
}

fn to_candle(e: WotdError) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

impl CustomOp1 for CheckpointedLayer {
    fn name(&self) -> &'static str {
        "checkpointed-decoder-layer"
    }

    fn cpu_fwd(&self, _storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = self
            .output
            .lock()
            .map_err(|_| candle_core::Error::Msg("checkpoint lock poisoned".into()))?
            .take()
            .ok_or_else(|| candle_core::Error::Msg("checkpointed layer applied twice".into()))?;
        if out.dims() != layout.dims() {
            candle_core::bail!("checkpointed layer: output {:?} for input {:?}", out.dims(), layout.dims());
        }
        Ok((CpuStorage::F32(out.flatten_all()?.to_vec1::<f32>()?), out.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let x = Var::from_tensor(&arg.detach())?;
        let rng = self.dropout_state.map(|s| Mutex::new(SeededRng::from_state(s)));
        let ctx = AttentionContext {
            rope: &self.rope,
            tables: &self.tables,
            mask: self.mask.as_ref(),
            lora: LoraMode { track_grad: true, dropout: rng.as_ref() },
        };
        let out = self.layer.forward(x.as_tensor(), &ctx, None).map_err(to_candle)?;
        let grads = (out * grad.detach())?.sum_all()?.backward()?;
        for p in self.layer.projections() {
            if let Some(ad) = p.adapter() {
                for v in [ad.a(), ad.b()] {
                    if let Some(g) = grads.get(v.as_tensor()) {
                        self.sink.add(v.as_tensor().id(), g)?;
                    }
                }
            }
        }
        Ok(grads.get(x.as_tensor()).cloned())
    }
}
