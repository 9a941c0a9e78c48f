//! Rotary position embeddings in Hugging Face's `rotate_half` layout (pairs `i, i + d/2`),
//! with the default frequencies and Phi-3's `longrope` scaling.
//!
//! The rotation `x * cos + rotate_half(x) * sin` (`rotate_half(x) = cat(-x2, x1)`) is one
//! custom op with a backward (candle's fused `rope` kernels have none): the transposed rotation
//! `g * cos + rotate_half^T(g * sin)`. Composed from `narrow`/`neg`/`cat` and two multiplies,
//! it kept four `x`-sized tensors per call alive until the backward pass; as one op the graph
//! holds only `x`, and no gradient is computed for the constant tables.
//!
//! `longrope` follows transformers: per forward call, `seq_len = max(position) + 1` over the
//! whole batch picks the long factors when it exceeds `original_max_position_embeddings`, else
//! the short ones; with a KV cache the choice is re-made per call, so keys cached before a switch
//! keep their earlier rotation. The attention factor multiplies both `cos` and `sin`.

use super::cpu::contiguous_f32;
use crate::error::{Result, WotdError};
use candle_core::{CpuStorage, CustomOp1, Device, Layout, Shape, Storage, Tensor, D};
use serde_json::Value;

/// How the base frequencies are scaled.
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE (`rope_scaling: null` or `rope_type: "default"`).
    Default,
    /// Phi-3 `longrope` (older configs call it `su`): per-frequency divisors, short and long.
    LongRope {
        short_factor: Vec<f64>,
        long_factor: Vec<f64>,
        original_max_position_embeddings: usize,
        /// `rope_scaling.attention_factor` when the config gives one; else derived.
        attention_factor: Option<f64>,
    },
}

/// Everything rotary needs from a model config.
#[derive(Clone, Debug, PartialEq)]
pub struct RotaryConfig {
    pub head_dim: usize,
    /// Leading dimensions of each head that rotate (`head_dim * partial_rotary_factor`).
    pub rotary_dim: usize,
    pub theta: f64,
    pub max_position_embeddings: usize,
    pub scaling: RopeScaling,
}

impl RotaryConfig {
    /// Reads `rope_theta`, `rope_scaling` (or transformers 5's `rope_parameters`),
    /// `partial_rotary_factor`, `max_position_embeddings` and `original_max_position_embeddings`
    /// from an HF `config.json`.
    pub fn from_hf_config(config: &Value, head_dim: usize) -> Result<Self> {
        let num = |v: Option<&Value>| v.and_then(Value::as_f64);
        let params = config.get("rope_parameters").filter(|v| v.is_object());
        let theta = num(config.get("rope_theta")).or_else(|| num(params.and_then(|p| p.get("rope_theta")))).unwrap_or(10000.0);
        let partial = num(config.get("partial_rotary_factor")).unwrap_or(1.0);
        let rotary_dim = ((head_dim as f64 * partial) as usize) & !1;
        let max_pos = num(config.get("max_position_embeddings")).unwrap_or(2048.0) as usize;
        let scaling_obj = config.get("rope_scaling").filter(|v| v.is_object()).or(params);
        let kind = scaling_obj
            .and_then(|s| s.get("rope_type").or_else(|| s.get("type")))
            .and_then(Value::as_str)
            .unwrap_or("default");
        let scaling = match kind {
            "default" => RopeScaling::Default,
            "longrope" | "su" => {
                let s = scaling_obj.expect("a non-default kind comes from an object");
                let factors = |key: &str| -> Result<Vec<f64>> {
                    let list = s.get(key).and_then(Value::as_array).ok_or_else(|| {
                        WotdError::InvalidInput(format!("longrope rope_scaling has no {key} list"))
                    })?;
                    let v: Vec<f64> = list.iter().filter_map(Value::as_f64).collect();
                    if v.len() != list.len() || v.len() != rotary_dim / 2 {
                        return Err(WotdError::InvalidInput(format!(
                            "longrope {key} must hold {} numbers (rotary dim / 2), got {}",
                            rotary_dim / 2,
                            list.len()
                        )));
                    }
                    Ok(v)
                };
                let original = num(config.get("original_max_position_embeddings"))
                    .or_else(|| num(s.get("original_max_position_embeddings")))
                    .ok_or_else(|| WotdError::InvalidInput("longrope needs original_max_position_embeddings".into()))?;
                RopeScaling::LongRope {
                    short_factor: factors("short_factor")?,
                    long_factor: factors("long_factor")?,
                    original_max_position_embeddings: original as usize,
                    attention_factor: num(s.get("attention_factor")),
                }
            }
            other => return Err(WotdError::Unsupported(format!("rope scaling type {other:?}"))),
        };
        if rotary_dim == 0 || rotary_dim > head_dim {
            return Err(WotdError::InvalidInput(format!("rotary dim {rotary_dim} for head dim {head_dim}")));
        }
        Ok(RotaryConfig { head_dim, rotary_dim, theta, max_position_embeddings: max_pos, scaling })
    }
}

/// `cos` and `sin` for one forward call, `[b, 1, t, rotary_dim]`, shared by every layer.
#[derive(Clone, Debug)]
pub struct RopeTables {
    pub cos: Tensor,
    pub sin: Tensor,
    /// Whether `longrope`'s long factors were used.
    pub long: bool,
}

#[derive(Clone, Debug)]
pub struct RotaryEmbedding {
    head_dim: usize,
    rotary_dim: usize,
    inv_freq: Vec<f32>,
    /// Long-factor frequencies and the length above which they apply.
    long: Option<(Vec<f32>, usize)>,
    attention_scaling: f32,
}

impl RotaryEmbedding {
    pub fn new(cfg: &RotaryConfig) -> Result<Self> {
        let half = cfg.rotary_dim / 2;
        // Computed in f64 and rounded once; torch computes `theta ** (2i/d)` in f32, which agrees
        // to an ulp or so.
        let base: Vec<f64> = (0..half).map(|i| cfg.theta.powf((2 * i) as f64 / cfg.rotary_dim as f64)).collect();
        let freqs = |ext: Option<&[f64]>| -> Vec<f32> {
            base.iter()
                .enumerate()
                .map(|(i, b)| {
                    let e = ext.map_or(1.0f32, |f| f[i] as f32);
                    1.0f32 / (e * *b as f32)
                })
                .collect()
        };
        let (inv_freq, long, attention_scaling) = match &cfg.scaling {
            RopeScaling::Default => (freqs(None), None, 1.0),
            RopeScaling::LongRope { short_factor, long_factor, original_max_position_embeddings, attention_factor } => {
                let orig = *original_max_position_embeddings;
                let factor = cfg.max_position_embeddings as f64 / orig as f64;
                let attn = attention_factor.unwrap_or_else(|| {
                    if factor <= 1.0 {
                        1.0
                    } else {
                        (1.0 + factor.ln() / (orig as f64).ln()).sqrt()
                    }
                });
                (freqs(Some(short_factor)), Some((freqs(Some(long_factor)), orig)), attn as f32)
            }
        };
        Ok(Self { head_dim: cfg.head_dim, rotary_dim: cfg.rotary_dim, inv_freq, long, attention_scaling })
    }

    /// The frequencies used at short lengths (all lengths for default RoPE).
    pub fn inv_freq(&self) -> &[f32] {
        &self.inv_freq
    }

    pub fn attention_scaling(&self) -> f32 {
        self.attention_scaling
    }

    /// Tables for `positions` (row-major `[b, t]`).
    pub fn tables(&self, positions: &[i64], b: usize, t: usize, device: &Device) -> Result<RopeTables> {
        if positions.len() != b * t {
            return Err(WotdError::InvalidInput(format!("{} positions for a [{b}, {t}] batch", positions.len())));
        }
        let seq_len = positions.iter().copied().max().unwrap_or(-1) + 1;
        let (inv_freq, long) = match &self.long {
            Some((long, orig)) if seq_len > *orig as i64 => (long.as_slice(), true),
            _ => (self.inv_freq.as_slice(), false),
        };
        let half = self.rotary_dim / 2;
        let mut cos = Vec::with_capacity(b * t * self.rotary_dim);
        let mut sin = Vec::with_capacity(b * t * self.rotary_dim);
        for &p in positions {
            let p = p as f32;
            // `cat(freqs, freqs)`: both halves of the head use the same angles.
            for _ in 0..2 {
                for f in &inv_freq[..half] {
                    let angle = f * p;
                    cos.push(angle.cos() * self.attention_scaling);
                    sin.push(angle.sin() * self.attention_scaling);
                }
            }
        }
        let shape = (b, 1, t, self.rotary_dim);
        Ok(RopeTables { cos: Tensor::from_vec(cos, shape, device)?, sin: Tensor::from_vec(sin, shape, device)?, long })
    }

    /// Rotates `x` `[b, heads, t, head_dim]`.
    pub fn apply(&self, x: &Tensor, tables: &RopeTables) -> Result<Tensor> {
        if x.dims().last() != Some(&self.head_dim) {
            return Err(WotdError::InvalidInput(format!("rotary of head dim {} applied to {:?}", self.head_dim, x.dims())));
        }
        if self.rotary_dim == self.head_dim {
            return self.rotate(x, tables);
        }
        let rot = x.narrow(D::Minus1, 0, self.rotary_dim)?;
        let pass = x.narrow(D::Minus1, self.rotary_dim, self.head_dim - self.rotary_dim)?;
        Ok(Tensor::cat(&[&self.rotate(&rot, tables)?, &pass], D::Minus1)?)
    }

    fn rotate(&self, x: &Tensor, t: &RopeTables) -> Result<Tensor> {
        let (b, _, tt, d) = x.dims4()?;
        let (cb, one, ct, cd) = t.cos.dims4()?;
        if !((cb == b || cb == 1) && one == 1 && ct == tt && cd == d && t.sin.dims() == t.cos.dims()) {
            return Err(WotdError::InvalidInput(format!("rotary tables {:?} do not fit {:?}", t.cos.dims(), x.dims())));
        }
        let op = Rotate { cos: t.cos.contiguous()?, sin: t.sin.contiguous()?, transposed: false };
        Ok(x.contiguous()?.apply_op1(op)?)
    }
}

/// `x * cos + rotate_half(x) * sin` over `[b, heads, t, d]`, tables `[b or 1, 1, t, d]`; with
/// `transposed`, the adjoint `x * cos + rotate_half^T(x * sin)`, which is the backward.
struct Rotate {
    cos: Tensor,
    sin: Tensor,
    transposed: bool,
}

impl CustomOp1 for Rotate {
    fn name(&self) -> &'static str {
        "rotary"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(storage, layout, "rotary")?;
        let (b, h, t, d) = layout.shape().dims4()?;
        let half = d / 2;
        let table_b = self.cos.dims()[0];
        let (cg, cl) = self.cos.storage_and_layout();
        let (sg, sl) = self.sin.storage_and_layout();
        let (Storage::Cpu(CpuStorage::F32(cos)), Storage::Cpu(CpuStorage::F32(sin))) = (&*cg, &*sg) else {
            candle_core::bail!("rotary: tables must be f32 CPU tensors");
        };
        let (co, so) = (cl.start_offset(), sl.start_offset());
        let mut out = vec![0f32; x.len()];
        for bi in 0..b {
            for hi in 0..h {
                for ti in 0..t {
                    let row = ((bi * h + hi) * t + ti) * d;
                    let tab = ((if table_b == 1 { 0 } else { bi }) * t + ti) * d;
                    let (xr, yr) = (&x[row..row + d], &mut out[row..row + d]);
                    let (c, s) = (&cos[co + tab..co + tab + d], &sin[so + tab..so + tab + d]);
                    for j in 0..half {
                        if self.transposed {
                            yr[j] = xr[j] * c[j] + xr[j + half] * s[j + half];
                            yr[j + half] = xr[j + half] * c[j + half] - xr[j] * s[j];
                        } else {
                            yr[j] = xr[j] * c[j] + (-xr[j + half]) * s[j];
                            yr[j + half] = xr[j + half] * c[j + half] + xr[j] * s[j + half];
                        }
                    }
                }
            }
        }
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let adjoint = Rotate { cos: self.cos.clone(), sin: self.sin.clone(), transposed: !self.transposed };
        Ok(Some(grad_res.contiguous()?.apply_op1_no_bwd(&adjoint)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;
    use serde_json::json;

    #[test]
    fn default_rope_rotates_pairs_i_and_i_plus_half() -> Result<()> {
        let dev = Device::Cpu;
        let cfg = RotaryConfig::from_hf_config(&json!({"rope_theta": 100.0, "max_position_embeddings": 16}), 4)?;
        let rope = RotaryEmbedding::new(&cfg)?;
        assert_eq!(rope.inv_freq(), &[1.0, 0.1]);
        let tables = rope.tables(&[3], 1, 1, &dev)?;
        let x = Tensor::new(&[1f32, 2., 3., 4.], &dev)?.reshape((1, 1, 1, 4))?;
        let y = rope.apply(&x, &tables)?.flatten_all()?.to_vec1::<f32>()?;
        let (a0, a1) = (3.0f32, 0.3f32);
        let want = [1. * a0.cos() - 3. * a0.sin(), 2. * a1.cos() - 4. * a1.sin(), 3. * a0.cos() + 1. * a0.sin(), 4. * a1.cos() + 2. * a1.sin()];
        for (g, w) in y.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{y:?} vs {want:?}");
        }
        Ok(())
    }

    #[test]
    fn longrope_picks_factors_by_length_and_scales_cos_and_sin() -> Result<()> {
        let cfg = json!({
            "rope_theta": 10000.0, "max_position_embeddings": 128, "original_max_position_embeddings": 32,
            "rope_scaling": {"type": "longrope", "short_factor": [1.0, 2.0], "long_factor": [4.0, 8.0]}
        });
        let rope = RotaryEmbedding::new(&RotaryConfig::from_hf_config(&cfg, 4)?)?;
        let scale = (1.0 + (4.0f64).ln() / (32.0f64).ln()).sqrt() as f32;
        assert!((rope.attention_scaling() - scale).abs() < 1e-7);
        let dev = Device::Cpu;
        let short = rope.tables(&(0..32).collect::<Vec<_>>(), 1, 32, &dev)?;
        let long = rope.tables(&(0..33).collect::<Vec<_>>(), 1, 33, &dev)?;
        assert!(!short.long && long.long);
        // Position 0: cos = scale, sin = 0 whatever the factors.
        let c0 = short.cos.flatten_all()?.to_vec1::<f32>()?[0];
        assert!((c0 - scale).abs() < 1e-7);
        // Position 1, frequency 1 (base 1/100): short 1/(2*100), long 1/(8*100).
        let sc = short.sin.flatten_all()?.to_vec1::<f32>()?[4 + 1];
        let lg = long.sin.flatten_all()?.to_vec1::<f32>()?[4 + 1];
        assert!((sc - (0.005f32).sin() * scale).abs() < 1e-7 && (lg - (0.00125f32).sin() * scale).abs() < 1e-7);
        Ok(())
    }

    /// The textbook form: `narrow`/`neg`/`cat` and broadcast multiplications.
    fn reference(x: &Tensor, t: &RopeTables) -> Result<Tensor> {
        let d = x.dims()[x.rank() - 1];
        let x1 = x.narrow(D::Minus1, 0, d / 2)?;
        let x2 = x.narrow(D::Minus1, d / 2, d / 2)?;
        let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
        Ok((x.broadcast_mul(&t.cos)? + rotated.broadcast_mul(&t.sin)?)?)
    }

    #[test]
    fn fused_rotation_equals_the_textbook_rotate_half_in_value_and_gradient() -> Result<()> {
        let dev = Device::Cpu;
        let cfg = json!({"rope_theta": 10000.0, "max_position_embeddings": 64, "original_max_position_embeddings": 8,
            "rope_scaling": {"type": "longrope", "short_factor": [1.0, 1.5, 2.0, 3.0], "long_factor": [2.0, 3.0, 5.0, 9.0]}});
        let rope = RotaryEmbedding::new(&RotaryConfig::from_hf_config(&cfg, 8)?)?;
        let (b, h, t) = (2, 3, 10);
        let data: Vec<f32> = (0..b * h * t * 8).map(|i| ((i as f32) * 0.37).sin()).collect();
        let x = Var::from_tensor(&Tensor::from_vec(data, (b, t, h, 8), &dev)?.transpose(1, 2)?)?; // strided, like q
        let positions: Vec<i64> = (0..(b * t) as i64).map(|i| i % t as i64 + 3).collect();
        let tables = rope.tables(&positions, b, t, &dev)?;
        assert!(tables.long);
        let ours = rope.apply(x.as_tensor(), &tables)?;
        let want = reference(x.as_tensor(), &tables)?;
        assert_eq!(ours.flatten_all()?.to_vec1::<f32>()?, want.flatten_all()?.to_vec1::<f32>()?);
        let w = Tensor::arange(0f32, (b * h * t * 8) as f32, &dev)?.reshape((b, h, t, 8))?.cos()?;
        let g = (&ours * &w)?.sum_all()?.backward()?.get(&x).unwrap().flatten_all()?.to_vec1::<f32>()?;
        let g_ref = (&want * &w)?.sum_all()?.backward()?.get(&x).unwrap().flatten_all()?.to_vec1::<f32>()?;
        for (a, r) in g.iter().zip(&g_ref) {
            assert!((a - r).abs() < 1e-6, "{a} vs {r}");
        }
        Ok(())
    }

    #[test]
    fn rotation_has_a_backward_and_preserves_norm_without_scaling() -> Result<()> {
        let dev = Device::Cpu;
        let cfg = RotaryConfig::from_hf_config(&json!({"rope_theta": 10000.0, "partial_rotary_factor": 0.5}), 8)?;
        assert_eq!(cfg.rotary_dim, 4);
        let rope = RotaryEmbedding::new(&cfg)?;
        let x = Var::new(&[[[[0.5f32, -1., 2., 0.3, 7., 8., 9., 10.]]]], &dev)?;
        let tables = rope.tables(&[5], 1, 1, &dev)?;
        let y = rope.apply(x.as_tensor(), &tables)?;
        let n = |t: &Tensor| t.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert!((n(&y) - n(x.as_tensor())).abs() < 1e-4);
        assert_eq!(y.flatten_all()?.to_vec1::<f32>()?[4..], [7., 8., 9., 10.]);
        let g = y.sum_all()?.backward()?.get(&x).unwrap().flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(g[4..], [1., 1., 1., 1.]);
        assert!(g[..4].iter().any(|v| (v - 1.0).abs() > 1e-3));
        Ok(())
    }
}
