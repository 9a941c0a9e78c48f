//! Differentiable building blocks shared by every model: linear layers (plain, frozen, LoRA),
//! norms, rotary embeddings, attention with a KV cache, MLPs.
//!
//! Everything on a training path is composed of candle ops that record a backward
//! (`candle_nn::ops::softmax`, not `softmax_last_dim`; norms written out, not the fused
//! kernels), because candle's fused ops silently cut gradients.

pub mod bidirectional_attention;
pub mod embedding;
pub mod layer_norm;
pub mod linear;

pub use bidirectional_attention::{additive_padding_mask, BidirectionalSelfAttention};
pub use embedding::Embedding;
pub use layer_norm::LayerNorm;
pub use linear::Linear;

pub mod causal_attention;
pub(crate) mod cpu;
pub mod frozen_linear;
pub mod kv_cache;
mod dropout;
pub mod lora;
pub mod loss;
mod lora_op;
pub mod mlp;
pub mod rms_norm;
pub mod rotary;
pub mod gelu;
