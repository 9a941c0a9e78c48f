//! Phi-3 / Phi-3.5 (`Phi3ForCausalLM`): one fused `qkv_proj` (rows `q | k | v`), one fused
//! `gate_up_proj` (rows `gate | up`), `longrope` rotary scaling (short/long factors chosen by
//! length, attention factor on cos and sin), optional partial rotary and sliding window,
//! untied LM head.
//!
//! `resid_pdrop`/`embd_pdrop`/`attention_dropout` are not applied: Phi-3.5-mini ships them as 0,
//! and LoRA dropout is the regulariser used here.

use super::decoder::{Architecture, DecoderConfig, DecoderLayer, WeightMap};
use crate::error::Result;
use crate::nn::causal_attention::{CausalSelfAttention, QkvProjection};
use crate::nn::mlp::{GateUpProjection, SwiGlu};
use crate::nn::rms_norm::RmsNorm;
use serde_json::Value;

/// PEFT target names of every attention and MLP projection.
pub const DEFAULT_LORA_TARGETS: &[&str] = &["qkv_proj", "o_proj", "gate_up_proj", "down_proj"];

/// Phi-3's `config.json` as a [`DecoderConfig`].
pub fn config(hf: &Value) -> Result<DecoderConfig> {
    let mut cfg = DecoderConfig::common_from_hf(hf, Architecture::Phi3)?;
    cfg.tie_word_embeddings = hf.get("tie_word_embeddings").and_then(Value::as_bool).unwrap_or(false);
    cfg.sliding_window = hf.get("sliding_window").and_then(Value::as_u64).map(|w| w as usize);
    Ok(cfg)
}

/// Decoder layer `i` from `model.layers.{i}.*`.
pub fn layer(i: usize, cfg: &DecoderConfig, w: &mut WeightMap) -> Result<DecoderLayer> {
    let p = format!("model.layers.{i}");
    let attn = CausalSelfAttention::new(
        QkvProjection::Fused(w.linear(&format!("{p}.self_attn.qkv_proj"), false)?),
        w.linear(&format!("{p}.self_attn.o_proj"), false)?,
        cfg.num_attention_heads,
        cfg.num_key_value_heads,
        cfg.head_dim,
    )?;
    let mlp = SwiGlu::new(
        GateUpProjection::Fused(w.linear(&format!("{p}.mlp.gate_up_proj"), false)?),
        w.linear(&format!("{p}.mlp.down_proj"), false)?,
    )?;
    Ok(DecoderLayer {
        input_layernorm: RmsNorm::new(w.take(&format!("{p}.input_layernorm.weight"))?, cfg.rms_norm_eps)?,
        self_attn: attn,
        post_attention_layernorm: RmsNorm::new(w.take(&format!("{p}.post_attention_layernorm.weight"))?, cfg.rms_norm_eps)?,
        mlp,
    })
}
