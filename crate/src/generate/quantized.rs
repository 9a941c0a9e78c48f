//! Inference-only decoding with Q8_0 weights: every projection and the LM head of a merged
//! [`CausalLm`] quantized with candle's `QTensor`/`QMatMul` (llama.cpp's Q8_0: blocks of 32
//! weights, one f16 scale, int8 values; activations quantized per block in the matmul).
//!
//! Why a separate model instead of a flag on `CausalLm`: training needs the f32 custom ops
//! that backpropagate to their input; decoding needs none of that and is bound by reading
//! weights, which Q8_0 cuts fourfold. Norms, SwiGLU and the attention softmax are the
//! training path's own vectorised kernels (candle's run a scalar `expf` and spin-wait between
//! threads: 12% of a prompt's prefill); nothing here is ever differentiated. Positions, masks and the cache follow `CausalLm` exactly (same
//! [`plan_step`], same [`KvCache`], same rotary tables), so only weight rounding differs.
//!
//! Embeddings stay f32 (a lookup reads one row per token; nothing to gain), as do norms.
//! A matrix whose rows do not split into 32-wide blocks stays f32 as well.

use super::engine::DecodeModel;
use super::q8_prefill;
use crate::error::{Result, WotdError};
use crate::nn::cpu::q8_0::{self, PackedQ8_0};
use crate::models::{Architecture, CausalLm, DecoderConfig};
use crate::nn::causal_attention::{plan_step, scaled_masked_softmax};
use crate::nn::mlp::{swiglu, swiglu_halves};
use crate::nn::rms_norm::RmsNorm;
use crate::nn::kv_cache::KvCache;
use crate::nn::rotary::{RopeTables, RotaryEmbedding};
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor, D};
use std::collections::HashMap;

/// A linear layer over quantized weights (bias, when present, in f32).
#[derive(Clone, Debug)]
struct QLinear {
    w: QWeight,
    b: Option<Tensor>,
    quantized: bool,
}

/// Where a projection's weight lives: repacked for the int8 kernel when the CPU has AVX-512
/// VNNI, else in candle's `QMatMul` (its own kernel for few rows, dequantized panels for many).
#[derive(Clone, Debug)]
enum QWeight {
    Int8(PackedQ8_0),
    Candle(QMatMul),
}

impl QLinear {
    fn new(w: &Tensor, b: Option<Tensor>, dtype: GgmlDType) -> Result<Self> {
        let (rows, cols) = w.dims2()?;
        let quantized = dtype != GgmlDType::F32 && cols % dtype.block_size() == 0;
        let w = if !quantized {
            QWeight::Candle(QMatMul::Tensor(w.contiguous()?))
        } else {
            let q = QTensor::quantize(w, dtype)?;
            let packed = match dtype == GgmlDType::Q8_0 && q8_0::available() {
                true => PackedQ8_0::from_ggml(&q.data()?, rows, cols),
                false => None,
            };
            match packed {
                Some(p) => QWeight::Int8(p),
                None => QWeight::Candle(QMatMul::from_qtensor(q)?),
            }
        };
        Ok(QLinear { w, b, quantized })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = match &self.w {
            QWeight::Int8(p) => {
                let (n, k) = p.dims();
                let m = x.elem_count() / k;
                let out = p.matmul(&x.flatten_all()?.to_vec1::<f32>()?, m);
                Tensor::from_vec(out, out_dims(x, n), x.device())?
            }
            QWeight::Candle(QMatMul::QTensor(q)) if q8_prefill::applies(q, x) => {
                let (n, k) = q.shape().dims2()?;
                let m = x.elem_count() / k;
                let out = q8_prefill::matmul(q, &x.flatten_all()?.to_vec1::<f32>()?, m)?;
                Tensor::from_vec(out, out_dims(x, n), x.device())?
            }
            QWeight::Candle(w) => w.forward(&x.contiguous()?)?,
        };
        Ok(match &self.b {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }

    /// The weight in f32 (for export).
    fn dequantize(&self, device: &Device) -> Result<Tensor> {
        Ok(match &self.w {
            QWeight::Int8(p) => Tensor::from_vec(p.dequantize(), p.dims(), device)?,
            QWeight::Candle(QMatMul::QTensor(q)) => q.dequantize(device)?,
            QWeight::Candle(QMatMul::Tensor(t)) => t.clone(),
            QWeight::Candle(QMatMul::TensorF16(t)) => t.to_dtype(DType::F32)?,
        })
    }
}

/// `x`'s dims with the last one replaced by `n`.
fn out_dims(x: &Tensor, n: usize) -> Vec<usize> {
    let mut dims = x.dims().to_vec();
    *dims.last_mut().expect("a matrix input") = n;
    dims
}

#[derive(Clone, Debug)]
enum Qkv {
    Separate { q: QLinear, k: QLinear, v: QLinear },
    /// Phi-3's fused projection, rows `q | k | v`.
    Fused(QLinear),
}

#[derive(Clone, Debug)]
enum GateUp {
    Separate { gate: QLinear, up: QLinear },
    /// Phi-3's fused projection, rows `gate | up`.
    Fused(QLinear),
}

#[derive(Clone, Debug)]
struct QLayer {
    attn_norm: Tensor,
    qkv: Qkv,
    o: QLinear,
    mlp_norm: Tensor,
    gate_up: GateUp,
    down: QLinear,
}

/// A decoder with quantized projections, built from a merged [`CausalLm`].
pub struct QuantizedLm {
    config: DecoderConfig,
    dtype: GgmlDType,
    embed: Tensor,
    layers: Vec<QLayer>,
    norm: Tensor,
    lm_head: QLinear,
    rope: RotaryEmbedding,
    device: Device,
    quantized_matrices: usize,
    f32_matrices: usize,
}

impl std::fmt::Debug for QuantizedLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuantizedLm")
            .field("dtype", &self.dtype)
            .field("layers", &self.layers.len())
            .field("quantized_matrices", &self.quantized_matrices)
            .finish()
    }
}

impl QuantizedLm {
    /// Quantizes every projection and the LM head of `model` to `dtype` (`Q8_0` for speed,
    /// `F32` to run this forward without rounding, e.g. to test it). The model must carry no
    /// unmerged adapter: a quantized model has no LoRA path.
    pub fn from_causal_lm(model: &CausalLm, dtype: GgmlDType) -> Result<Self> {
        if model.adapter_config().is_some() {
            return Err(WotdError::InvalidInput("merge the LoRA adapter (merge_adapter) before quantizing".into()));
        }
        Self::from_tensors(model.config().clone(), model.base_tensors().into_iter().collect(), dtype)
    }

    /// As [`QuantizedLm::from_causal_lm`], consuming the model: each f32 matrix is freed as soon
    /// as its quantized copy exists, so loading peaks at about the f32 model, not the f32 model
    /// plus the quantized one.
    pub fn from_owned(model: CausalLm, dtype: GgmlDType) -> Result<Self> {
        if model.adapter_config().is_some() {
            return Err(WotdError::InvalidInput("merge the LoRA adapter (merge_adapter) before quantizing".into()));
        }
        let cfg = model.config().clone();
        let tensors = model.base_tensors().into_iter().collect();
        drop(model);
        Self::from_tensors(cfg, tensors, dtype)
    }

    fn from_tensors(cfg: DecoderConfig, mut w: HashMap<String, Tensor>, dtype: GgmlDType) -> Result<Self> {
        let mut take = |name: &str| -> Result<Tensor> {
            w.remove(name).ok_or_else(|| WotdError::InvalidInput(format!("model has no tensor {name:?}")))
        };
        let (mut nq, mut nf) = (0usize, 0usize);
        let mut lin = |t: &Tensor, b: Option<Tensor>| -> Result<QLinear> {
            let l = QLinear::new(t, b, dtype)?;
            if l.quantized {
                nq += 1;
            } else {
                nf += 1;
            }
            Ok(l)
        };
        let bias = cfg.attention_bias;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let mut proj = |name: &str, with_bias: bool| -> Result<(Tensor, Option<Tensor>)> {
                let wt = take(&format!("{p}.{name}.weight"))?;
                let b = if with_bias { Some(take(&format!("{p}.{name}.bias"))?) } else { None };
                Ok((wt, b))
            };
            let (qkv, gate_up) = match cfg.architecture {
                Architecture::Llama => {
                    let (q, qb) = proj("self_attn.q_proj", bias)?;
                    let (k, kb) = proj("self_attn.k_proj", bias)?;
                    let (v, vb) = proj("self_attn.v_proj", bias)?;
                    let (g, _) = proj("mlp.gate_proj", false)?;
                    let (u, _) = proj("mlp.up_proj", false)?;
                    (
                        Qkv::Separate { q: lin(&q, qb)?, k: lin(&k, kb)?, v: lin(&v, vb)? },
                        GateUp::Separate { gate: lin(&g, None)?, up: lin(&u, None)? },
                    )
                }
                Architecture::Phi3 => {
                    let (qkv, _) = proj("self_attn.qkv_proj", false)?;
                    let (gu, _) = proj("mlp.gate_up_proj", false)?;
                    (Qkv::Fused(lin(&qkv, None)?), GateUp::Fused(lin(&gu, None)?))
                }
            };
            let (o, ob) = proj("self_attn.o_proj", bias && cfg.architecture == Architecture::Llama)?;
            let (down, _) = proj("mlp.down_proj", false)?;
            layers.push(QLayer {
                attn_norm: take(&format!("{p}.input_layernorm.weight"))?,
                qkv,
                o: lin(&o, ob)?,
                mlp_norm: take(&format!("{p}.post_attention_layernorm.weight"))?,
                gate_up,
                down: lin(&down, None)?,
            });
        }
        let embed = take("model.embed_tokens.weight")?;
        let head = take("lm_head.weight")?;
        let lm_head = lin(&head, None)?;
        Ok(QuantizedLm {
            rope: RotaryEmbedding::new(&cfg.rotary)?,
            device: embed.device().clone(),
            embed,
            layers,
            norm: take("model.norm.weight")?,
            lm_head,
            dtype,
            config: cfg,
            quantized_matrices: nq,
            f32_matrices: nf,
        })
    }

    pub fn dtype(&self) -> GgmlDType {
        self.dtype
    }

    /// Weight matrices stored quantized, and those left in f32 (rows not block-aligned).
    pub fn matrix_counts(&self) -> (usize, usize) {
        (self.quantized_matrices, self.f32_matrices)
    }

    /// Every weight under its Hugging Face name, dequantized to f32 (for export). The LM head
    /// is listed as `lm_head.weight` even when the source model tied it to the embeddings.
    pub fn hf_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let deq = |l: &QLinear| l.dequantize(&self.device);
        let mut out = vec![("model.embed_tokens.weight".to_string(), self.embed.clone())];
        for (i, l) in self.layers.iter().enumerate() {
            let p = format!("model.layers.{i}");
            out.push((format!("{p}.input_layernorm.weight"), l.attn_norm.clone()));
            out.push((format!("{p}.post_attention_layernorm.weight"), l.mlp_norm.clone()));
            let mut push = |name: &str, ql: &QLinear| -> Result<()> {
                out.push((format!("{p}.{name}.weight"), deq(ql)?));
                if let Some(b) = &ql.b {
                    out.push((format!("{p}.{name}.bias"), b.clone()));
                }
                Ok(())
            };
            match &l.qkv {
                Qkv::Separate { q, k, v } => {
                    push("self_attn.q_proj", q)?;
                    push("self_attn.k_proj", k)?;
                    push("self_attn.v_proj", v)?;
                }
                Qkv::Fused(p) => push("self_attn.qkv_proj", p)?,
            }
            push("self_attn.o_proj", &l.o)?;
            match &l.gate_up {
                GateUp::Separate { gate, up } => {
                    push("mlp.gate_proj", gate)?;
                    push("mlp.up_proj", up)?;
                }
                GateUp::Fused(p) => push("mlp.gate_up_proj", p)?,
            }
            push("mlp.down_proj", &l.down)?;
        }
        out.push(("model.norm.weight".to_string(), self.norm.clone()));
        out.push(("lm_head.weight".to_string(), deq(&self.lm_head)?));
        Ok(out)
    }

    /// Logits `[b, t, vocab]` for every position (with a cache: of this call's tokens).
    pub fn forward(&self, ids: &Tensor, mask: Option<&Tensor>, cache: Option<&mut KvCache>) -> Result<Tensor> {
        let h = self.hidden(ids, mask, cache)?;
        self.lm_head.forward(&h)
    }

    fn hidden(&self, ids: &Tensor, mask: Option<&Tensor>, cache: Option<&mut KvCache>) -> Result<Tensor> {
        let mut own;
        let cache = match cache {
            Some(c) => c,
            None => {
                own = self.new_cache();
                &mut own
            }
        };
        let ids = if ids.dtype() == DType::U32 { ids.clone() } else { ids.to_dtype(DType::U32)? };
        let (b, t) = ids.dims2()?;
        if t == 0 {
            return Err(WotdError::InvalidInput("input_ids has no tokens".into()));
        }
        if cache.num_layers() != self.layers.len() {
            return Err(WotdError::InvalidInput(format!("KV cache has {} layers, the model {}", cache.num_layers(), self.layers.len())));
        }
        let new_valid = match mask {
            Some(m) => {
                if m.dims() != [b, t] {
                    return Err(WotdError::InvalidInput(format!("attention_mask {:?} does not match input_ids [{b}, {t}]", m.dims())));
                }
                let rows = m.to_dtype(DType::F32)?.to_vec2::<f32>()?;
                Some(rows.into_iter().map(|r| r.into_iter().map(|v| v != 0.0).collect()).collect())
            }
            None => None,
        };
        let plan = plan_step(b, t, new_valid, cache.valid(), cache.next_positions(), self.config.sliding_window, &self.device)?;
        let tables = self.rope.tables(&plan.positions, b, t, &self.device)?;
        let max_id = ids.flatten_all()?.max(0)?.to_scalar::<u32>()? as usize;
        if max_id >= self.embed.dims()[0] {
            return Err(WotdError::InvalidInput(format!("token id {max_id} is outside the embedding table of {} rows", self.embed.dims()[0])));
        }
        let mut h = self.embed.index_select(&ids.flatten_all()?, 0)?.reshape((b, t, self.config.hidden_size))?;
        let eps = self.config.rms_norm_eps;
        let norm = |x: &Tensor, w: &Tensor| RmsNorm::new(w.clone(), eps)?.forward(x);
        for (i, layer) in self.layers.iter().enumerate() {
            let x = norm(&h, &layer.attn_norm)?;
            let a = self.attention(layer, &x, &tables, plan.mask.as_ref(), cache, i)?;
            h = (h + a)?;
            let x = norm(&h, &layer.mlp_norm)?;
            let act = match &layer.gate_up {
                GateUp::Separate { gate, up } => swiglu(&gate.forward(&x)?, &up.forward(&x)?)?,
                GateUp::Fused(p) => swiglu_halves(&p.forward(&x)?)?,
            };
            h = (h + layer.down.forward(&act)?)?;
        }
        cache.commit(&plan.new_valid);
        norm(&h, &self.norm)
    }

    fn attention(&self, l: &QLayer, x: &Tensor, tables: &RopeTables, mask: Option<&Tensor>, cache: &mut KvCache, i: usize) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let (h, kvh, d) = (self.config.num_attention_heads, self.config.num_key_value_heads, self.config.head_dim);
        let (q, k, v) = match &l.qkv {
            Qkv::Separate { q, k, v } => (q.forward(x)?, k.forward(x)?, v.forward(x)?),
            Qkv::Fused(p) => {
                let y = p.forward(x)?;
                (y.narrow(D::Minus1, 0, h * d)?, y.narrow(D::Minus1, h * d, kvh * d)?, y.narrow(D::Minus1, (h + kvh) * d, kvh * d)?)
            }
        };
        let q = q.reshape((b, t, h, d))?.transpose(1, 2)?;
        let k = k.reshape((b, t, kvh, d))?.transpose(1, 2)?;
        let v = v.reshape((b, t, kvh, d))?.transpose(1, 2)?.contiguous()?;
        let q = self.rope.apply(&q, tables)?;
        let k = self.rope.apply(&k, tables)?.contiguous()?;
        let (k, v) = cache.layer_mut(i)?.append(&k, &v)?;
        let total = k.dims()[2];
        let group = h / kvh;
        // Query heads i*g..(i+1)*g share KV head i: one matmul per KV head, no key copies.
        let q = q.contiguous()?.reshape((b, kvh, group * t, d))?;
        let scores = q.matmul(&k.t()?)?.reshape((b, h, t, total))?;
        let probs = scaled_masked_softmax(&scores, 1.0 / (d as f64).sqrt(), mask)?;
        let out = probs.reshape((b, kvh, group * t, total))?.matmul(&v)?;
        let out = out.reshape((b, h, t, d))?.transpose(1, 2)?.reshape((b, t, h * d))?;
        l.o.forward(&out)
    }
}

impl DecodeModel for QuantizedLm {
    fn config(&self) -> &DecoderConfig {
        &self.config
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn new_cache(&self) -> KvCache {
        KvCache::new(self.layers.len())
    }

    fn last_logits(&self, ids: &Tensor, mask: Option<&Tensor>, cache: &mut KvCache) -> Result<Tensor> {
        let t = ids.dims()[1];
        let h = self.hidden(ids, mask, Some(cache))?;
        self.lm_head.forward(&h.narrow(1, t - 1, 1)?.squeeze(1)?)
    }
}
