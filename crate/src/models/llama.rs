//! Llama (SmolLM2 and relatives): separate `q/k/v/o_proj`, separate `gate/up/down_proj`,
//! grouped-query attention, default RoPE, RMSNorm, usually tied input/output embeddings.
//!
//! The decoder itself is `CausalLm`; this module only knows Llama's config
//! fields and tensor names. GGUF checkpoints arrive here already renamed to these HF names with
//! Q/K rows restored (`io::gguf_llama`).

use super::decoder::{Architecture, DecoderConfig, DecoderLayer, WeightMap};
use crate::error::{Result, WotdError};
use crate::nn::causal_attention::{CausalSelfAttention, QkvProjection};
use crate::nn::mlp::{GateUpProjection, SwiGlu};
use crate::nn::rms_norm::RmsNorm;
use serde_json::Value;

/// PEFT target names of every attention and MLP projection.
pub const DEFAULT_LORA_TARGETS: &[&str] = &["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

/// Llama's `config.json` as a [`DecoderConfig`].
pub fn config(hf: &Value) -> Result<DecoderConfig> {
    let mut cfg = DecoderConfig::common_from_hf(hf, Architecture::Llama)?;
    if hf.get("attention_bias").and_then(Value::as_bool).unwrap_or(false) {
        cfg.attention_bias = true;
    }
    if hf.get("mlp_bias").and_then(Value::as_bool).unwrap_or(false) {
        return Err(WotdError::Unsupported("llama with mlp_bias = true".into()));
    }
    // Llama checkpoints default to tied embeddings only when the config says so.
    cfg.tie_word_embeddings = hf.get("tie_word_embeddings").and_then(Value::as_bool).unwrap_or(false);
    Ok(cfg)
}

/// Decoder layer `i` from `model.layers.{i}.*`.
pub fn layer(i: usize, cfg: &DecoderConfig, w: &mut WeightMap) -> Result<DecoderLayer> {
    let p = format!("model.layers.{i}");
    let bias = cfg.attention_bias;
    let attn = CausalSelfAttention::new(
        QkvProjection::Separate {
            q: w.linear(&format!("{p}.self_attn.q_proj"), bias)?,
            k: w.linear(&format!("{p}.self_attn.k_proj"), bias)?,
            v: w.linear(&format!("{p}.self_attn.v_proj"), bias)?,
        },
        w.linear(&format!("{p}.self_attn.o_proj"), bias)?,
        cfg.num_attention_heads,
        cfg.num_key_value_heads,
        cfg.head_dim,
    )?;
    let mlp = SwiGlu::new(
        GateUpProjection::Separate {
            gate: w.linear(&format!("{p}.mlp.gate_proj"), false)?,
            up: w.linear(&format!("{p}.mlp.up_proj"), false)?,
        },
        w.linear(&format!("{p}.mlp.down_proj"), false)?,
    )?;
    Ok(DecoderLayer {
        input_layernorm: RmsNorm::new(w.take(&format!("{p}.input_layernorm.weight"))?, cfg.rms_norm_eps)?,
        self_attn: attn,
        post_attention_layernorm: RmsNorm::new(w.take(&format!("{p}.post_attention_layernorm.weight"))?, cfg.rms_norm_eps)?,
        mlp,
    })
}
