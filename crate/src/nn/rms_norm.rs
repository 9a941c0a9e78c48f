//! RMSNorm as in Llama and Phi-3: `w * x / sqrt(mean(x^2) + eps)` over the last dimension.
//!
//! Written out from basic ops, each with a backward (candle's fused `rms_norm` kernel has
//! none). The learned scale `w` is applied by a custom op that holds it, so, like
//! [`super::FrozenLinear`], no gradient for the frozen scale is ever computed: a plain
//! `broadcast_mul` would compute `grad * x_hat` for `w` on every backward pass.

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
        if x.dims().last() != Some(&dim) {
            return Err(WotdError::InvalidInput(format!("RMSNorm of width {dim} applied to shape {:?}", x.dims())));
        }
        let inv_rms = (x.sqr()?.mean_keepdim(D::Minus1)? + self.eps)?.sqrt()?.recip()?;
        let normed = x.broadcast_mul(&inv_rms)?.contiguous()?;
        Ok(normed.apply_op1(FrozenScale { weight: self.weight.clone() })?)
    }
}

/// `y = x * w` with `w` broadcast along the last dimension; backward `grad * w` for `x` only.
struct FrozenScale {
    weight: Tensor,
}

impl CustomOp1 for FrozenScale {
    fn name(&self) -> &'static str {
        "frozen-scale"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("frozen scale: input must be contiguous");
        };
        let (w_guard, w_layout) = self.weight.storage_and_layout();
        let Storage::Cpu(CpuStorage::F32(w)) = &*w_guard else {
            candle_core::bail!("frozen scale: weight must be an f32 CPU tensor");
        };
        let n = self.weight.dims()[0];
        let w = &w[w_layout.start_offset()..w_layout.start_offset() + n];
        let CpuStorage::F32(x) = storage else {
            candle_core::bail!("frozen scale: input must be f32");
        };
        let mut out = x[start..end].to_vec();
        out.chunks_exact_mut(n).for_each(|row| row.iter_mut().zip(w).for_each(|(v, &s)| *v *= s));
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad_res.broadcast_mul(&self.weight)?))
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
