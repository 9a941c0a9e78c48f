//! The parts every decoder family shares: which family a config names ([`Architecture`]), the
//! hyper-parameters ([`DecoderConfig`]), checkpoint tensors taken by name ([`WeightMap`]) and
//! one pre-norm block ([`DecoderLayer`]). The families (`llama`, `phi3`) build these; the
//! decoder over them is `causal_lm::CausalLm`, which also holds the per-family dispatch.

use crate::error::{Result, WotdError};
use crate::nn::causal_attention::{AttentionContext, CausalSelfAttention};
use crate::nn::frozen_linear::FrozenLinear;
use crate::nn::kv_cache::LayerKv;
use crate::nn::lora::LoraLinear;
use crate::nn::mlp::SwiGlu;
use crate::nn::rms_norm::RmsNorm;
use crate::nn::rotary::RotaryConfig;
use candle_core::{DType, Tensor};
use serde_json::Value;
use std::collections::HashMap;

/// Which decoder family a config describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    Llama,
    Phi3,
}

impl Architecture {
    /// From `model_type` (or, failing that, `architectures[0]`).
    pub fn from_hf(config: &Value) -> Result<Self> {
        let model_type = config.get("model_type").and_then(Value::as_str);
        let arch = config.get("architectures").and_then(|a| a.get(0)).and_then(Value::as_str);
        match (model_type, arch) {
            (Some("llama"), _) | (None, Some("LlamaForCausalLM")) => Ok(Architecture::Llama),
            (Some("phi3"), _) | (None, Some("Phi3ForCausalLM")) => Ok(Architecture::Phi3),
            _ => Err(WotdError::Unsupported(format!(
                "decoder model_type {model_type:?} / architecture {arch:?} (supported: llama, phi3)"
            ))),
        }
    }
}

/// The hyper-parameters the decoders need, read from an HF `config.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct DecoderConfig {
    pub architecture: Architecture,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rotary: RotaryConfig,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    pub attention_bias: bool,
    pub sliding_window: Option<usize>,
    pub bos_token_id: Option<u32>,
    /// One or several (configs may list more than one end token).
    pub eos_token_ids: Vec<u32>,
    pub pad_token_id: Option<u32>,
}

impl DecoderConfig {
    /// Fields every supported decoder shares.
    pub(crate) fn common_from_hf(hf: &Value, architecture: Architecture) -> Result<Self> {
        let need = |k: &str| -> Result<usize> {
            hf.get(k)
                .and_then(Value::as_u64)
                .map(|v| v as usize)
                .ok_or_else(|| WotdError::InvalidInput(format!("decoder config has no integer {k:?}")))
        };
        let act = hf.get("hidden_act").or_else(|| hf.get("hidden_activation")).and_then(Value::as_str).unwrap_or("silu");
        if act != "silu" && act != "swish" {
            return Err(WotdError::Unsupported(format!("decoder activation {act:?} (only silu)")));
        }
        let hidden_size = need("hidden_size")?;
        let num_attention_heads = need("num_attention_heads")?;
        let num_key_value_heads = hf.get("num_key_value_heads").and_then(Value::as_u64).map_or(num_attention_heads, |v| v as usize);
        let head_dim = hf.get("head_dim").and_then(Value::as_u64).map_or(hidden_size / num_attention_heads.max(1), |v| v as usize);
        let id = |k: &str| hf.get(k).and_then(Value::as_u64).map(|v| v as u32);
        let eos_token_ids = match hf.get("eos_token_id") {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_u64).map(|v| v as u32).collect(),
            Some(v) => v.as_u64().map(|v| vec![v as u32]).unwrap_or_default(),
            None => Vec::new(),
        };
        Ok(DecoderConfig {
            architecture,
            vocab_size: need("vocab_size")?,
            hidden_size,
            intermediate_size: need("intermediate_size")?,
            num_hidden_layers: need("num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps: hf.get("rms_norm_eps").and_then(Value::as_f64).unwrap_or(1e-6),
            rotary: RotaryConfig::from_hf_config(hf, head_dim)?,
            max_position_embeddings: need("max_position_embeddings").unwrap_or(4096),
            tie_word_embeddings: false,
            attention_bias: false,
            sliding_window: None,
            bos_token_id: id("bos_token_id"),
            eos_token_ids,
            pad_token_id: id("pad_token_id"),
        })
    }
}

/// Checkpoint tensors by name, taken out one by one so leftovers (a name nobody used, i.e. a
/// mapping mistake or an unsupported variant) are reported rather than ignored.
pub struct WeightMap {
    map: HashMap<String, Tensor>,
}

impl WeightMap {
    pub fn new(map: HashMap<String, Tensor>) -> Self {
        WeightMap { map }
    }

    pub fn take(&mut self, name: &str) -> Result<Tensor> {
        let t = self
            .map
            .remove(name)
            .ok_or_else(|| WotdError::InvalidInput(format!("checkpoint has no tensor {name:?}")))?;
        if t.dtype() == DType::F32 {
            Ok(t)
        } else {
            Ok(t.to_dtype(DType::F32)?)
        }
    }

    /// A frozen projection at module `path` (`{path}.weight`, `{path}.bias` when `bias`).
    pub fn linear(&mut self, path: &str, bias: bool) -> Result<LoraLinear> {
        let w = self.take(&format!("{path}.weight"))?;
        let b = if bias { Some(self.take(&format!("{path}.bias"))?) } else { None };
        Ok(LoraLinear::new(path, FrozenLinear::new(w, b)?))
    }

    /// Errors on anything not consumed, except buffers that carry no weights.
    pub fn finish(self) -> Result<()> {
        let mut left: Vec<&String> = self.map.keys().filter(|k| !k.ends_with("rotary_emb.inv_freq")).collect();
        left.sort();
        if left.is_empty() {
            Ok(())
        } else {
            Err(WotdError::Unsupported(format!("checkpoint tensors this decoder does not use: {left:?}")))
        }
    }
}

/// One pre-norm transformer block.
#[derive(Clone, Debug)]
pub struct DecoderLayer {
    pub input_layernorm: RmsNorm,
    pub self_attn: CausalSelfAttention,
    pub post_attention_layernorm: RmsNorm,
    pub mlp: SwiGlu,
}

impl DecoderLayer {
    pub fn forward(&self, x: &Tensor, ctx: &AttentionContext<'_>, cache: Option<&mut LayerKv>) -> Result<Tensor> {
        let h = (x + self.self_attn.forward(&self.input_layernorm.forward(x)?, ctx, cache)?)?;
        Ok((&h + self.mlp.forward(&self.post_attention_layernorm.forward(&h)?, ctx.lora)?)?)
    }

    pub(crate) fn projections(&self) -> Vec<&LoraLinear> {
        let mut v = self.self_attn.projections();
        v.extend(self.mlp.projections());
        v
    }

    pub(crate) fn projections_mut(&mut self) -> Vec<&mut LoraLinear> {
        let mut v = self.self_attn.projections_mut();
        v.extend(self.mlp.projections_mut());
        v
    }
}

