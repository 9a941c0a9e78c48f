//! Causal self-attention with grouped-query heads, rotary positions, padding masks and a KV cache.
//!
//! - Projections are [`LoraLinear`]s: separate `q_proj`/`k_proj`/`v_proj` (Llama) or one fused
//!   `qkv_proj` whose rows are `q | k | v` (Phi-3).
//! - GQA without copying keys: the `h = kv * g` query heads are regrouped as `[b, kv, g*t, d]`,
//!   so each KV head meets its `g` query heads in one matmul (head `i` uses KV head `i / g`, as
//!   transformers' `repeat_kv`).
//! - Scaling, the additive mask and the softmax are one op ([`scaled_masked_softmax`]) with a
//!   hand-written backward: composed, they kept six score-sized tensors per layer alive until
//!   the backward pass; as one op the graph holds the raw scores and the probabilities. No
//!   gradient is computed for the mask.
//! - [`plan_step`] turns a padding mask and the cache's history into position ids and one
//!   additive mask shared by every layer (`f32::MIN` where a key is hidden, as transformers).
//!   Right padding (training) and left padding (batched generation) both work: positions count
//!   real tokens only (`cumsum(mask) - 1`, padding at 1), keys at padded slots are hidden.

use super::cpu::contiguous_f32;
use super::cpu::exp::exp;
use super::cpu::par::{for_rows, rows_of, RowsMut};
use super::cpu::reduce::{max, sum_by};
use super::cpu::simd::vectorized;
use super::kv_cache::LayerKv;
use super::lora::{LoraLinear, LoraMode};
use super::rotary::{RopeTables, RotaryEmbedding};
use crate::error::{Result, WotdError};
use candle_core::{CpuStorage, CustomOp1, Device, Layout, Shape, Storage, Tensor, D};

/// Query/key/value projections.
#[derive(Clone, Debug)]
pub enum QkvProjection {
    Separate { q: LoraLinear, k: LoraLinear, v: LoraLinear },
    /// One `[(h + 2 kv) * d, hidden]` projection, rows `q | k | v`.
    Fused(LoraLinear),
}

/// What every layer of one forward call shares.
#[derive(Clone, Copy, Debug)]
pub struct AttentionContext<'a> {
    pub rope: &'a RotaryEmbedding,
    pub tables: &'a RopeTables,
    /// Additive `[b, 1, t, past + t]` mask; `None` when nothing is hidden.
    pub mask: Option<&'a Tensor>,
    pub lora: LoraMode<'a>,
}

#[derive(Clone, Debug)]
pub struct CausalSelfAttention {
    qkv: QkvProjection,
    o: LoraLinear,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
    scale: f64,
}

impl CausalSelfAttention {
    pub fn new(qkv: QkvProjection, o: LoraLinear, num_heads: usize, num_kv_heads: usize, head_dim: usize) -> Result<Self> {
        if num_heads == 0 || num_kv_heads == 0 || !num_heads.is_multiple_of(num_kv_heads) {
            return Err(WotdError::InvalidInput(format!(
                "{num_heads} attention heads cannot share {num_kv_heads} key/value heads"
            )));
        }
        let (q_out, kv_out) = (num_heads * head_dim, num_kv_heads * head_dim);
        let hidden = o.out_features();
        let ok = match &qkv {
            QkvProjection::Separate { q, k, v } => {
                q.out_features() == q_out && k.out_features() == kv_out && v.out_features() == kv_out
                    && q.in_features() == hidden && k.in_features() == hidden && v.in_features() == hidden
            }
            QkvProjection::Fused(p) => p.out_features() == q_out + 2 * kv_out && p.in_features() == hidden,
        };
        if !ok || o.in_features() != q_out {
            return Err(WotdError::InvalidInput(format!(
                "attention projections do not fit {num_heads} heads / {num_kv_heads} kv heads of size {head_dim} over width {hidden}"
            )));
        }
        Ok(Self { qkv, o, num_heads, num_kv_heads, head_dim, scale: 1.0 / (head_dim as f64).sqrt() })
    }

    /// Every projection, in module order (for adapters).
    pub fn projections(&self) -> Vec<&LoraLinear> {
        let mut v: Vec<&LoraLinear> = match &self.qkv {
            QkvProjection::Separate { q, k, v } => vec![q, k, v],
            QkvProjection::Fused(p) => vec![p],
        };
        v.push(&self.o);
        v
    }

    pub fn projections_mut(&mut self) -> Vec<&mut LoraLinear> {
        let mut v: Vec<&mut LoraLinear> = match &mut self.qkv {
            QkvProjection::Separate { q, k, v } => vec![q, k, v],
            QkvProjection::Fused(p) => vec![p],
        };
        v.push(&mut self.o);
        v
    }

    /// `x` `[b, t, hidden]` -> `[b, t, hidden]`. With `cache`, this call's keys and values are
    /// appended to it and attention covers every cached position.
    pub fn forward(&self, x: &Tensor, ctx: &AttentionContext<'_>, cache: Option<&mut LayerKv>) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let (h, kvh, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let (q, k, v) = match &self.qkv {
            QkvProjection::Separate { q, k, v } => (q.forward(x, ctx.lora)?, k.forward(x, ctx.lora)?, v.forward(x, ctx.lora)?),
            QkvProjection::Fused(p) => {
                let y = p.forward(x, ctx.lora)?;
                (y.narrow(D::Minus1, 0, h * d)?, y.narrow(D::Minus1, h * d, kvh * d)?, y.narrow(D::Minus1, (h + kvh) * d, kvh * d)?)
            }
        };
        let q = q.reshape((b, t, h, d))?.transpose(1, 2)?;
        let k = k.reshape((b, t, kvh, d))?.transpose(1, 2)?;
        let v = v.reshape((b, t, kvh, d))?.transpose(1, 2)?.contiguous()?;
        let q = ctx.rope.apply(&q, ctx.tables)?;
        let k = ctx.rope.apply(&k, ctx.tables)?.contiguous()?;
        let (k, v) = match cache {
            Some(c) => c.append(&k, &v)?,
            None => (k, v),
        };
        let total = k.dims()[2];
        let group = h / kvh;
        // [b, h, t, d] -> [b, kv, g*t, d]: query heads i*g..(i+1)*g share KV head i.
        let q = q.contiguous()?.reshape((b, kvh, group * t, d))?;
        let scores = q.matmul(&k.t()?)?.reshape((b, h, t, total))?;
        let probs = scaled_masked_softmax(&scores, self.scale, ctx.mask)?;
        let out = probs.reshape((b, kvh, group * t, total))?.matmul(&v)?;
        let out = out.reshape((b, h, t, d))?.transpose(1, 2)?.reshape((b, t, h * d))?;
        self.o.forward(&out, ctx.lora)
    }
}

/// Softmax over the last dimension, with a backward.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let x = x.contiguous()?;
    Ok(x.apply_op1(ScaledMaskedSoftmax { scale: 1.0, mask: None })?)
}

/// `softmax(scores * scale + mask)` over the last dimension of `scores` `[b, h, t, k]`, with
/// `mask` an additive constant `[b or 1, 1, t, k]` shared by the heads.
pub fn scaled_masked_softmax(scores: &Tensor, scale: f64, mask: Option<&Tensor>) -> Result<Tensor> {
    if let Some(m) = mask {
        let (sd, md) = (scores.dims(), m.dims());
        if !(sd.len() == 4 && md.len() == 4 && (md[0] == sd[0] || md[0] == 1) && md[1] == 1 && md[2..] == sd[2..]) {
            return Err(WotdError::InvalidInput(format!("attention mask {md:?} does not fit scores {sd:?}")));
        }
    }
    let op = ScaledMaskedSoftmax { scale, mask: mask.map(|m| m.detach().contiguous()).transpose()? };
    Ok(scores.contiguous()?.apply_op1(op)?)
}

struct ScaledMaskedSoftmax {
    scale: f64,
    mask: Option<Tensor>,
}

impl CustomOp1 for ScaledMaskedSoftmax {
    fn name(&self) -> &'static str {
        "scaled-masked-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(storage, layout, "softmax")?;
        let dims = layout.dims();
        let k = *dims.last().unwrap_or(&1);
        let mut out = vec![0f32; x.len()];
        let scale = self.scale as f32;
        let guard = self.mask.as_ref().map(|m| m.storage_and_layout());
        let mask: Option<(&[f32], usize, usize, usize)> = match (&guard, &self.mask) {
            (Some((g, l)), Some(m)) => {
                let Storage::Cpu(CpuStorage::F32(v)) = &**g else { candle_core::bail!("softmax: mask must be an f32 CPU tensor") };
                let md = m.dims();
                // (values, batch of the mask, heads of the scores, rows per head)
                Some((&v[l.start_offset()..], md[0], dims[1], dims[2]))
            }
            _ => None,
        };
        let rows = x.len() / k.max(1);
        let dst = RowsMut::new(&mut out, k);
        for_rows(rows, k, |range| {
            // SAFETY: for_rows gives disjoint ranges.
            let o = unsafe { dst.rows(range.clone()) };
            let xs = rows_of(x, k, range.clone());
            vectorized(|| {
                for (i, (row, orow)) in xs.chunks_exact(k).zip(o.chunks_exact_mut(k)).enumerate() {
                    let r = range.start + i;
                    match mask {
                        Some((m, mb, heads, t)) => {
                            let bi = r / (heads * t);
                            let ti = r % t;
                            let off = ((if mb == 1 { 0 } else { bi }) * t + ti) * k;
                            for ((o, &v), &a) in orow.iter_mut().zip(row).zip(&m[off..off + k]) {
                                *o = v * scale + a;
                            }
                        }
                        None => orow.iter_mut().zip(row).for_each(|(o, &v)| *o = v * scale),
                    }
                    let top = max(orow);
                    orow.iter_mut().for_each(|v| *v = exp(*v - top));
                    let inv = 1.0 / sum_by(k, |j| orow[j]);
                    orow.iter_mut().for_each(|v| *v *= inv);
                }
            })
        });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        // dx = scale * y * (g - sum(g * y)); the mask is a constant.
        let grad = grad.contiguous()?;
        let k = res.dims().last().copied().unwrap_or(1).max(1);
        let scale = self.scale as f32;
        let guards = [res, &grad].map(|t| t.storage_and_layout());
        let [y, g] = [0, 1].map(|i| -> candle_core::Result<&[f32]> {
            let (st, l) = &guards[i];
            let Storage::Cpu(c) = &**st else { candle_core::bail!("softmax: CPU tensors only") };
            contiguous_f32(c, l, "softmax")
        });
        let (y, g) = (y?, g?);
        let mut dx = vec![0f32; y.len()];
        let dst = RowsMut::new(&mut dx, k);
        for_rows(y.len() / k, k, |range| {
            // SAFETY: for_rows gives disjoint ranges.
            let o = unsafe { dst.rows(range.clone()) };
            let (y, g) = (rows_of(y, k, range.clone()), rows_of(g, k, range));
            vectorized(|| {
                for ((yr, gr), or) in y.chunks_exact(k).zip(g.chunks_exact(k)).zip(o.chunks_exact_mut(k)) {
                    let dot = sum_by(k, |j| gr[j] * yr[j]);
                    for ((o, &yv), &gv) in or.iter_mut().zip(yr).zip(gr) {
                        *o = scale * yv * (gv - dot);
                    }
                }
            })
        });
        drop(guards);
        Ok(Some(Tensor::from_vec(dx, res.shape(), res.device())?))
    }
}

/// Position ids and attention mask of one forward call.
#[derive(Clone, Debug)]
pub struct StepPlan {
    /// Row-major `[b, t]`.
    pub positions: Vec<i64>,
    /// Additive `[b, 1, t, past + t]`, or `None` when every query sees every key.
    pub mask: Option<Tensor>,
    /// `[b][t]`: which of this call's tokens are real.
    pub new_valid: Vec<Vec<bool>>,
}

/// Plans a call of `t` new tokens per row. `new_valid` is the padding mask of the new tokens
/// (all real when `None`); `past_valid`/`past_next` come from the cache (empty without one).
pub fn plan_step(
    b: usize,
    t: usize,
    new_valid: Option<Vec<Vec<bool>>>,
    past_valid: &[Vec<bool>],
    past_next: &[i64],
    sliding_window: Option<usize>,
    device: &Device,
) -> Result<StepPlan> {
    let new_valid = new_valid.unwrap_or_else(|| vec![vec![true; t]; b]);
    if new_valid.len() != b || new_valid.iter().any(|r| r.len() != t) {
        return Err(WotdError::InvalidInput(format!("attention mask does not match the [{b}, {t}] input")));
    }
    let past = past_valid.first().map_or(0, Vec::len);
    if !past_valid.is_empty() && past_valid.len() != b {
        return Err(WotdError::InvalidInput(format!("KV cache holds {} rows, input has {b}", past_valid.len())));
    }
    let total = past + t;
    let mut positions = Vec::with_capacity(b * t);
    let mut mask = Vec::with_capacity(b * t * total);
    let mut anything_hidden = false;
    for row in 0..b {
        let mut next = past_next.get(row).copied().unwrap_or(0);
        for &valid in &new_valid[row] {
            if valid {
                positions.push(next);
                next += 1;
            } else {
                positions.push(1);
            }
        }
        let key_valid = |j: usize| if j < past { past_valid[row][j] } else { new_valid[row][j - past] };
        for i in 0..t {
            let q = past + i;
            for j in 0..total {
                let visible = j <= q && key_valid(j) && sliding_window.is_none_or(|w| q - j < w);
                anything_hidden |= !visible;
                mask.push(if visible { 0.0 } else { f32::MIN });
            }
        }
    }
    let mask = if anything_hidden { Some(Tensor::from_vec(mask, (b, 1, t, total), device)?) } else { None };
    Ok(StepPlan { positions, mask, new_valid })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::frozen_linear::FrozenLinear;
    use crate::nn::rotary::RotaryConfig;
    use candle_core::Var;
    use serde_json::json;

    fn lin(path: &str, out: usize, inp: usize, seed: f64) -> LoraLinear {
        let n = out * inp;
        let w: Vec<f32> = (0..n).map(|i| ((i as f64 * 0.37 + seed).sin() * 0.5) as f32).collect();
        LoraLinear::new(path, FrozenLinear::new(Tensor::from_vec(w, (out, inp), &Device::Cpu).unwrap(), None).unwrap())
    }

    fn attn(fused: bool) -> CausalSelfAttention {
        let (hidden, h, kv, d) = (8, 4, 2, 2);
        let (q, k, v) = (lin("q", h * d, hidden, 0.1), lin("k", kv * d, hidden, 0.2), lin("v", kv * d, hidden, 0.3));
        let qkv = if fused {
            let w = Tensor::cat(&[q.base().weight(), k.base().weight(), v.base().weight()], 0).unwrap();
            QkvProjection::Fused(LoraLinear::new("qkv", FrozenLinear::new(w, None).unwrap()))
        } else {
            QkvProjection::Separate { q, k, v }
        };
        CausalSelfAttention::new(qkv, lin("o", hidden, h * d, 0.4), h, kv, d).unwrap()
    }

    /// Attention computed the textbook way: every head separately, keys repeated per group.
    fn reference(a: &CausalSelfAttention, x: &Tensor, rope: &RotaryEmbedding) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let QkvProjection::Separate { q, k, v } = &a.qkv else { unreachable!() };
        let m = LoraMode::INFERENCE;
        let tables = rope.tables(&(0..t as i64).cycle().take(b * t).collect::<Vec<_>>(), b, t, x.device())?;
        let q = rope.apply(&q.forward(x, m)?.reshape((b, t, 4, 2))?.transpose(1, 2)?, &tables)?;
        let k = rope.apply(&k.forward(x, m)?.reshape((b, t, 2, 2))?.transpose(1, 2)?, &tables)?;
        let v = v.forward(x, m)?.reshape((b, t, 2, 2))?.transpose(1, 2)?;
        let mut heads = Vec::new();
        for head in 0..4 {
            let qh = q.narrow(1, head, 1)?.squeeze(1)?.contiguous()?;
            let kh = k.narrow(1, head / 2, 1)?.squeeze(1)?.contiguous()?;
            let vh = v.narrow(1, head / 2, 1)?.squeeze(1)?.contiguous()?;
            let mut s = (qh.matmul(&kh.t()?)? / 2f64.sqrt())?.to_vec3::<f32>()?.remove(0); // b = 1
            for (i, row) in s.iter_mut().enumerate() {
                for (j, v) in row.iter_mut().enumerate() {
                    if j > i {
                        *v = f32::NEG_INFINITY;
                    }
                }
            }
            let s = Tensor::new(s, x.device())?.unsqueeze(0)?;
            heads.push(candle_nn::ops::softmax(&s, D::Minus1)?.matmul(&vh)?);
        }
        let out = Tensor::cat(&heads, 2)?;
        a.o.forward(&out, m)
    }

    #[test]
    fn gqa_regrouping_matches_per_head_attention_and_fused_matches_separate() -> Result<()> {
        let dev = Device::Cpu;
        let rope = RotaryEmbedding::new(&RotaryConfig::from_hf_config(&json!({"rope_theta": 10000.0}), 2)?)?;
        let x = Tensor::from_vec((0..40).map(|i| ((i as f32) * 0.13).cos()).collect::<Vec<_>>(), (1, 5, 8), &dev)?;
        let plan = plan_step(1, 5, None, &[], &[], None, &dev)?;
        let tables = rope.tables(&plan.positions, 1, 5, &dev)?;
        let ctx = AttentionContext { rope: &rope, tables: &tables, mask: plan.mask.as_ref(), lora: LoraMode::INFERENCE };
        let sep = attn(false);
        let y = sep.forward(&x, &ctx, None)?;
        let want = reference(&sep, &x, &rope)?;
        let d = (&y - &want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(d < 1e-5, "{d}");
        let fused = attn(true).forward(&x, &ctx, None)?;
        assert!((&fused - &y)?.abs()?.max_all()?.to_scalar::<f32>()? < 1e-6);
        Ok(())
    }

    #[test]
    fn cached_steps_equal_one_full_pass() -> Result<()> {
        let dev = Device::Cpu;
        let rope = RotaryEmbedding::new(&RotaryConfig::from_hf_config(&json!({"rope_theta": 10000.0}), 2)?)?;
        let a = attn(false);
        let x = Tensor::from_vec((0..48).map(|i| ((i as f32) * 0.29).sin()).collect::<Vec<_>>(), (1, 6, 8), &dev)?;
        let run = |x: &Tensor, past: &[Vec<bool>], next: &[i64], cache: Option<&mut LayerKv>| -> Result<Tensor> {
            let t = x.dims()[1];
            let plan = plan_step(1, t, None, past, next, None, &dev)?;
            let tables = rope.tables(&plan.positions, 1, t, &dev)?;
            let ctx = AttentionContext { rope: &rope, tables: &tables, mask: plan.mask.as_ref(), lora: LoraMode::INFERENCE };
            a.forward(x, &ctx, cache)
        };
        let full = run(&x, &[], &[], None)?;
        let mut kv = LayerKv::default();
        let first = run(&x.narrow(1, 0, 4)?, &[], &[], Some(&mut kv))?;
        let mut parts = vec![first];
        for i in 4..6 {
            let past = vec![vec![true; i]];
            parts.push(run(&x.narrow(1, i, 1)?, &past, &[i as i64], Some(&mut kv))?);
        }
        let stepped = Tensor::cat(&parts, 1)?;
        let d = (&stepped - &full)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(d < 1e-5, "{d}");
        Ok(())
    }

    #[test]
    fn plan_hides_padding_and_counts_positions_over_real_tokens() -> Result<()> {
        let dev = Device::Cpu;
        // Row 0 left-padded by 2, row 1 full.
        let valid = vec![vec![false, false, true], vec![true, true, true]];
        let plan = plan_step(2, 3, Some(valid), &[], &[], None, &dev)?;
        assert_eq!(plan.positions, vec![1, 1, 0, 0, 1, 2]);
        let flat = plan.mask.unwrap().flatten_all()?.to_vec1::<f32>()?;
        let vis: Vec<bool> = flat.iter().map(|v| *v == 0.0).collect();
        // Row 0, query 2 sees only key 2; row 1, query 1 sees keys 0 and 1.
        assert_eq!(&vis[6..9], &[false, false, true]);
        assert_eq!(&vis[9 + 3..9 + 6], &[true, true, false]);
        // A sliding window of 2 hides key 0 from query 2.
        let w = plan_step(1, 3, None, &[], &[], Some(2), &dev)?.mask.unwrap().flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(w[6..9].iter().map(|v| *v == 0.0).collect::<Vec<_>>(), vec![false, true, true]);
        // One new token with a fully valid past needs no mask at all.
        assert!(plan_step(1, 1, None, &[vec![true; 4]], &[4], None, &dev)?.mask.is_none());
        Ok(())
    }

    #[test]
    fn softmax_matches_candle_nn_and_has_the_same_gradient() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::new(&[[0.3f32, -1.2, 2.0, 0.0], [5.0, 5.0, -3.0, 1.0]], &dev)?;
        let w = Tensor::new(&[[1f32, 2., 3., 4.], [-1., 0.5, 2., 0.]], &dev)?;
        let ours = softmax_last_dim(x.as_tensor())?;
        let theirs = candle_nn::ops::softmax(x.as_tensor(), D::Minus1)?;
        // Our exp is within 2 ulp of libm's (nn::cpu::exp), so probabilities agree to a few ulp.
        assert!((&ours - &theirs)?.abs()?.max_all()?.to_scalar::<f32>()? < 5e-7);
        let g1 = (&ours * &w)?.sum_all()?.backward()?.get(&x).unwrap().clone();
        let g2 = (&theirs * &w)?.sum_all()?.backward()?.get(&x).unwrap().clone();
        assert!((&g1 - &g2)?.abs()?.max_all()?.to_scalar::<f32>()? < 1e-6);
        Ok(())
    }
}
