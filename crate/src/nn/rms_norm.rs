//! RMSNorm as in Llama and Phi-3: `w * x / sqrt(mean(x^2) + eps)` over the last dimension.
//!
//! One custom op with a hand-written backward (candle's fused `rms_norm` kernel records none).
//! Composed from basic ops it kept `x^2` and the normalised `x` alive for every norm until the
//! backward pass; here the graph holds only `x`, and the backward recomputes the per-row scale.
//! The learned `w` lives inside the op, so, like [`super::FrozenLinear`], no gradient for the
//! frozen scale is ever computed.

use super::cpu::contiguous_f32;
use super::cpu::par::{for_rows, rows_of, RowsMut};
use super::cpu::reduce::sum_by;
use super::cpu::simd::vectorized;
use crate::error::{Result, WotdError};
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Storage, Tensor};

#[derive(Clone, Debug)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    /// `weight` is `[dim]` (f32).
    pub fn new(weight: Tensor, eps: f64) -> Result<Self> {
        if weight.rank() != 1 || weight.dtype() != DType::F32 {
            return Err(WotdError::InvalidInput(format!(
                "RMSNorm weight must be a 1-D f32 tensor, got {:?} {:?}",
                weight.dtype(),
                weight.dims()
            )));
        }
        Ok(Self { weight: weight.detach().contiguous()?, eps })
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn eps(&self) -> f64 {
        self.eps
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dim = self.weight.dims()[0];
        if x.dims().last() != Some(&dim) || x.dtype() != DType::F32 {
            return Err(WotdError::InvalidInput(format!("RMSNorm of width {dim} applied to {:?} {:?}", x.dtype(), x.dims())));
        }
        Ok(x.contiguous()?.apply_op1(FrozenRmsNorm { weight: self.weight.clone(), eps: self.eps })?)
    }
}

/// `y = w * x * r` with `r = 1 / sqrt(mean(x^2) + eps)` per row; backward for `x` only:
/// `dx = r (g w) - x r^3 mean(g w x)`.
struct FrozenRmsNorm {
    weight: Tensor,
    eps: f64,
}

impl CustomOp1 for FrozenRmsNorm {
    fn name(&self) -> &'static str {
        "frozen-rms-norm"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(storage, layout, "rms norm")?;
        let (w_guard, w_layout) = self.weight.storage_and_layout();
        let Storage::Cpu(CpuStorage::F32(w)) = &*w_guard else {
            candle_core::bail!("rms norm: weight must be an f32 CPU tensor");
        };
        let n = self.weight.dims()[0];
        let w = &w[w_layout.start_offset()..w_layout.start_offset() + n];
        let eps = self.eps as f32;
        let mut out = vec![0f32; x.len()];
        let dst = RowsMut::new(&mut out, n);
        for_rows(x.len() / n.max(1), n, |r| {
            // SAFETY: for_rows gives disjoint ranges.
            let o = unsafe { dst.rows(r.clone()) };
            let x = rows_of(x, n, r);
            vectorized(|| {
                for (xr, or) in x.chunks_exact(n).zip(o.chunks_exact_mut(n)) {
                    let r = inverse_rms(xr, eps);
                    for ((o, &v), &s) in or.iter_mut().zip(xr).zip(w) {
                        *o = v * r * s;
                    }
                }
            })
        });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let grad = grad_res.contiguous()?;
        let n = self.weight.dims()[0];
        let eps = self.eps as f32;
        let guards = [arg, &grad, &self.weight].map(|t| t.storage_and_layout());
        let [x, g, w] = [0, 1, 2].map(|i| -> candle_core::Result<&[f32]> {
            let (st, l) = &guards[i];
            let Storage::Cpu(c) = &**st else { candle_core::bail!("rms norm: CPU tensors only") };
            contiguous_f32(c, l, "rms norm")
        });
        let (x, g, w) = (x?, g?, w?);
        let w = &w[..n];
        let mut dx = vec![0f32; x.len()];
        let dst = RowsMut::new(&mut dx, n);
        for_rows(x.len() / n.max(1), n, |r| {
            // SAFETY: for_rows gives disjoint ranges.
            let o = unsafe { dst.rows(r.clone()) };
            let (x, g) = (rows_of(x, n, r.clone()), rows_of(g, n, r));
            vectorized(|| {
                for ((xr, gr), or) in x.chunks_exact(n).zip(g.chunks_exact(n)).zip(o.chunks_exact_mut(n)) {
                    let r = inverse_rms(xr, eps);
                    let dot = sum_by(n, |j| gr[j] * w[j] * xr[j]) / n as f32;
                    let c = r * r * r * dot;
                    for (((o, &v), &gv), &s) in or.iter_mut().zip(xr).zip(gr).zip(w) {
                        *o = r * gv * s - v * c;
                    }
                }
            })
        });
        drop(guards);
        Ok(Some(Tensor::from_vec(dx, arg.shape(), arg.device())?))
    }
}

/// `1 / sqrt(mean(x^2) + eps)` of one row.
#[inline(always)]
fn inverse_rms(x: &[f32], eps: f32) -> f32 {
    let ms = sum_by(x.len(), |j| x[j] * x[j]) / x.len() as f32;
    1.0 / (ms + eps).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn normalises_and_differentiates_like_the_composed_formula() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::new(&[1.5f32, -0.5, 2.0], &dev)?;
        let norm = RmsNorm::new(w.clone(), 1e-5)?;
        let x = Var::new(&[[1f32, 2., 3.], [-1., 0.5, 4.]], &dev)?;
        let y = norm.forward(x.as_tensor())?;
        // Reference: the same formula with an ordinary broadcast_mul.
        let inv = (x.as_tensor().sqr()?.mean_keepdim(1)? + 1e-5)?.sqrt()?.recip()?;
        let y_ref = x.as_tensor().broadcast_mul(&inv)?.broadcast_mul(&w)?;
        let diff = (&y - &y_ref)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-6, "{diff}");
        let coef = Tensor::new(&[[0.3f32, -1.0, 0.7], [2.0, 0.1, -0.4]], &dev)?;
        let g = (&y * &coef)?.sum_all()?.backward()?.get(&x).unwrap().clone();
        let g_ref = (&y_ref * &coef)?.sum_all()?.backward()?.get(&x).unwrap().clone();
        let gd = (&g - &g_ref)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(gd < 1e-5, "{gd}");
        Ok(())
    }
}
