//! Differentiable building blocks shared by every model: linear layers (plain, frozen, LoRA),
//! norms, rotary embeddings, attention with a KV cache, MLPs.
//!
//! Everything on a training path is composed of candle ops that record a backward
//! (`candle_nn::ops::softmax`, not `softmax_last_dim`; norms written out, not the fused
//! kernels), because candle's fused ops silently cut gradients.
