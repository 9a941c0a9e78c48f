//! RMSNorm as in Llama and Phi-3: `w * x / sqrt(mean(x^2) + eps)` over the last dimension.
//!
//! One custom op with a hand-written backward (candle's fused `rms_norm` kernel records none).
//! Composed from basic ops it kept `x^2` and the normalised `x` alive for every norm until the
//! backward pass; here the graph holds only `x`, and the backward recomputes the per-row scale.
//! The learned `w` lives inside the op, so, like [`super::FrozenLinear`], no gradient for the
//! frozen scale is ever computed.

use super::cpu::contiguous_f32;
use crate::error::{Result, WotdError};
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Storage, Tensor, D};

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
        let mut out = x.to_vec();
        for row in out.chunks_exact_mut(n) {
            let ms = row.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / n as f64;
            let r = (1.0 / (ms + self.eps).sqrt()) as f32;
            row.iter_mut().zip(w).for_each(|(v, &s)| *v = *v * r * s);
        }
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let x = arg.detach();
        let r = (x.sqr()?.mean_keepdim(D::Minus1)? + self.eps)?.sqrt()?.recip()?;
        let gw = grad_res.broadcast_mul(&self.weight)?;
        let dot = (&gw * &x)?.mean_keepdim(D::Minus1)?;
        let dx = (gw.broadcast_mul(&r)? - x.broadcast_mul(&(r.powf(3.0)? * dot)?)?)?;
        Ok(Some(dx))
    }
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
