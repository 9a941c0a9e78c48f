//! Layer normalisation over the last dimension, written out of elementary ops so that every
//! step records a backward (candle's fused `layer_norm` kernel does not).
//!
//! Pure inference (no input or weight tracked for gradients: frozen encoders embedding text)
//! takes a fused one-pass kernel instead, since the composed form costs nine passes over the
//! activations and layer norms were a visible share of an embedding batch. Whenever anything
//! is tracked, the composed path runs, so gradients are never silently cut.

use super::cpu::contiguous_f32;
use crate::error::{Result, WotdError};
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor, D};

#[derive(Clone, Debug)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Option<Tensor>,
    eps: f64,
}

impl LayerNorm {
    pub fn new(weight: Tensor, bias: Option<Tensor>, eps: f64) -> Result<Self> {
        let n = weight.dims1().map_err(|_| {
            WotdError::InvalidInput(format!("layer norm weight must be 1-D, got {:?}", weight.dims()))
        })?;
        if let Some(b) = &bias {
            if b.dims() != [n] {
                return Err(WotdError::InvalidInput(format!("layer norm bias must be [{n}], got {:?}", b.dims())));
            }
        }
        Ok(Self { weight, bias, eps })
    }

    pub fn eps(&self) -> f64 {
        self.eps
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if let Some(y) = self.forward_fused(x)? {
            return Ok(y);
        }
        // Statistics in f32 even for half-precision input: the variance of a 1024-wide row
        // loses most of its digits in f16.
        let in_dtype = x.dtype();
        let x = if in_dtype == DType::F32 || in_dtype == DType::F64 { x.clone() } else { x.to_dtype(DType::F32)? };
        let mean = x.mean_keepdim(D::Minus1)?;
        let centred = x.broadcast_sub(&mean)?;
        // Biased variance, as PyTorch's layer_norm uses.
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        let y = normed.to_dtype(in_dtype)?.broadcast_mul(&self.weight)?;
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

impl LayerNorm {
    /// The fused kernel, when it applies (f32 on CPU, nothing tracked); `None` otherwise.
    fn forward_fused(&self, x: &Tensor) -> Result<Option<Tensor>> {
        let tracked = x.track_op() || self.weight.track_op() || self.bias.as_ref().is_some_and(|b| b.track_op());
        if tracked || x.dtype() != DType::F32 || !matches!(x.device(), Device::Cpu) || self.weight.dtype() != DType::F32 {
            return Ok(None);
        }
        let weight = self.weight.to_vec1::<f32>()?;
        let bias = match &self.bias {
            Some(b) => b.to_dtype(DType::F32)?.to_vec1::<f32>()?,
            None => vec![0f32; weight.len()],
        };
        let op = FusedLayerNorm { weight, bias, eps: self.eps as f32 };
        Ok(Some(x.contiguous()?.apply_op1_no_bwd(&op)?))
    }
}

struct FusedLayerNorm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

impl CustomOp1 for FusedLayerNorm {
    fn name(&self) -> &'static str {
        "wotd-layer-norm-inference"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let n = self.weight.len();
        let dims = layout.shape().dims();
        if dims.last() != Some(&n) {
            return Err(candle_core::Error::Msg(format!("layer norm of width {n} applied to shape {dims:?}")));
        }
        let src = contiguous_f32(storage, layout, "layer norm")?;
        let mut out = vec![0f32; src.len()];
        for (row, dst) in src.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
            // Two passes, as the composed path: mean first, then the centred variance.
            let mean = row.iter().sum::<f32>() / n as f32;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n as f32;
            let inv = 1.0 / (var + self.eps).sqrt();
            for (((d, &v), &w), &b) in dst.iter_mut().zip(row).zip(&self.weight).zip(&self.bias) {
                *d = (v - mean) * inv * w + b;
            }
        }
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn normalises_each_row() -> Result<()> {
        let dev = Device::Cpu;
        let ln = LayerNorm::new(Tensor::new(&[1f32, 1., 1., 1.], &dev)?, Some(Tensor::new(&[0f32, 0., 0., 1.], &dev)?), 1e-12)?;
        let x = Tensor::new(&[[1f32, 2., 3., 4.], [10., 10., 10., 10.]], &dev)?;
        let y = ln.forward(&x)?.to_vec2::<f32>()?;
        let s = (1.25f32).sqrt();
        let want = [-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s + 1.];
        for (a, b) in y[0].iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{y:?}");
        }
        // A constant row has zero variance; eps keeps it finite.
        assert_eq!(y[1], vec![0., 0., 0., 1.]);
        Ok(())
    }

    #[test]
    fn fused_inference_path_matches_the_composed_one() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 3., (7, 33), &dev)?;
        let w = Tensor::randn(1f32, 0.5, 33, &dev)?;
        let b = Tensor::randn(0f32, 0.5, 33, &dev)?;
        let ln = LayerNorm::new(w.clone(), Some(b.clone()), 1e-5)?;
        let fused = ln.forward(&x)?;
        // Tracking the input forces the composed path.
        let xv = Var::from_tensor(&x)?;
        let composed = ln.forward(xv.as_tensor())?;
        let diff = (fused - composed)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "fused and composed layer norms differ by {diff}");
        Ok(())
    }

    #[test]
    fn gradient_matches_finite_differences() -> Result<()> {
        let dev = Device::Cpu;
        let xv = [0.3f64, -1.2, 2.0, 0.7];
        let w = Tensor::new(&[0.5f64, 1.5, -1., 2.], &dev)?;
        let ln = LayerNorm::new(w, None, 1e-5)?;
        let coef = Tensor::new(&[1f64, -2., 3., 0.5], &dev)?;
        let loss = |x: &Tensor| -> Result<Tensor> { Ok(ln.forward(x)?.mul(&coef)?.sum_all()?) };
        let x = Var::new(&xv, &dev)?;
        let g = loss(x.as_tensor())?.backward()?.get(&x).unwrap().to_vec1::<f64>()?;
        for i in 0..4 {
            let h = 1e-6;
            let mut p = xv;
            p[i] += h;
            let mut m = xv;
            m[i] -= h;
            let fp = loss(&Tensor::new(&p, &dev)?)?.to_scalar::<f64>()?;
            let fm = loss(&Tensor::new(&m, &dev)?)?.to_scalar::<f64>()?;
            let fd = (fp - fm) / (2. * h);
            assert!((fd - g[i]).abs() < 1e-6, "dim {i}: fd {fd} vs autograd {}", g[i]);
        }
        Ok(())
    }
}
