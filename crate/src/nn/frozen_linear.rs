//! A linear layer whose weight never receives a gradient: `y = x W^T (+ b)` as a candle
//! [`CustomOp1`] that holds `W` (and `b`) inside the op.
//!
//! With an ordinary `x.matmul(&w.t())`, candle's backward computes `x^T grad` for `w` and stores
//! it in the `GradStore` even when `w` is a plain tensor, because the matmul backward fills in
//! both operands unconditionally. For LoRA fine-tuning that is a full-size weight gradient per
//! projection per step, computed and thrown away. Here the weight is not an operand of the graph
//! at all: the op's only input is `x`, and its backward returns `grad W` for the input alone.

use super::cpu::few_rows;
use crate::error::{Result, WotdError};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Storage, Tensor};

/// A frozen `[out, in]` linear map (PyTorch layout) with an optional `[out]` bias.
#[derive(Clone, Debug)]
pub struct FrozenLinear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl FrozenLinear {
    /// `weight` is `[out, in]`, `bias` `[out]`; both are detached and made contiguous, so a
    /// `Var` handed in by mistake cannot become trainable through this layer.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        let (out, _) = weight
            .dims2()
            .map_err(|_| WotdError::InvalidInput(format!("linear weight must be 2-D [out, in], got {:?}", weight.dims())))?;
        if let Some(b) = &bias {
            if b.dims() != [out] {
                return Err(WotdError::InvalidInput(format!(
                    "linear bias must be [{out}] for weight {:?}, got {:?}",
                    weight.dims(),
                    b.dims()
                )));
            }
        }
        Ok(Self { weight: weight.detach().contiguous()?, bias: bias.map(|b| b.detach().contiguous()).transpose()? })
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    pub fn in_features(&self) -> usize {
        self.weight.dims()[1]
    }

    pub fn out_features(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Replaces the weight by `W + delta` (merging an adapter); `delta` is `[out, in]`.
    pub fn add_to_weight(&mut self, delta: &Tensor) -> Result<()> {
        if delta.dims() != self.weight.dims() {
            return Err(WotdError::InvalidInput(format!(
                "weight delta {:?} does not match weight {:?}",
                delta.dims(),
                self.weight.dims()
            )));
        }
        self.weight = (&self.weight + delta.detach())?.contiguous()?;
        Ok(())
    }

    /// Applies the layer over the last dimension of `x` (any rank >= 1).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let last = x.dims().last().copied().unwrap_or(0);
        if x.rank() == 0 || last != self.in_features() {
            return Err(WotdError::InvalidInput(format!(
                "linear expects last dimension {}, got shape {:?}",
                self.in_features(),
                x.dims()
            )));
        }
        // The CPU kernel reads `x` as one `[rows, in]` block, so it must be dense.
        let x = x.contiguous()?;
        Ok(x.apply_op1(FrozenMatmul { weight: self.weight.clone(), bias: self.bias.clone() })?)
    }
}

struct FrozenMatmul {
    weight: Tensor,
    bias: Option<Tensor>,
}

pub(crate) fn cpu_storage<'a>(s: &'a Storage, what: &str) -> candle_core::Result<&'a CpuStorage> {
    match s {
        Storage::Cpu(c) => Ok(c),
        _ => candle_core::bail!("frozen linear: {what} is not on the CPU"),
    }
}

impl CustomOp1 for FrozenMatmul {
    fn name(&self) -> &'static str {
        "frozen-linear"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        if !layout.is_contiguous() {
            candle_core::bail!("frozen linear: input must be contiguous");
        }
        let dims = layout.dims();
        let k = dims[dims.len() - 1];
        let m: usize = dims[..dims.len() - 1].iter().product();
        let n = self.weight.dims()[0];
        let mut out = matmul_by_transposed(storage, layout.start_offset(), m, k, &self.weight)?;
        if let Some(bias) = &self.bias {
            add_bias_rows(&mut out, bias, n)?;
        }
        let mut out_dims = dims[..dims.len() - 1].to_vec();
        out_dims.push(n);
        Ok((out, Shape::from(out_dims)))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        // dL/dx = dL/dy W. Nothing is computed for W or b: they are frozen.
        let n = self.weight.dims()[0];
        let rows = grad_res.elem_count() / n.max(1);
        let g = grad_res.contiguous()?.reshape((rows, n))?.matmul(&self.weight)?;
        Ok(Some(g.reshape(arg.shape())?))
    }
}

/// `x W^T` for the dense `[m, k]` block of `x` at element `x_offset` and a contiguous
/// `[n, k]` tensor `w` (read in place as the strided `[k, n]` view): `[m, n]`.
pub(crate) fn matmul_by_transposed(x: &CpuStorage, x_offset: usize, m: usize, k: usize, w: &Tensor) -> candle_core::Result<CpuStorage> {
    let (w_guard, w_layout) = w.storage_and_layout();
    if !w_layout.is_contiguous() {
        candle_core::bail!("frozen linear: weight must be contiguous");
    }
    let (n, wk) = w_layout.shape().dims2()?;
    if wk != k {
        candle_core::bail!("linear: input has {k} features, weight expects {wk}");
    }
    matmul_nt(x, x_offset, m, k, cpu_storage(&w_guard, "weight")?, w_layout.start_offset(), n)
}

/// `x W^T` on raw storages: `x` a dense `[m, k]` block at `x_offset`, `w` a dense `[n, k]` block
/// at `w_offset`; returns a fresh dense `[m, n]`.
pub(crate) fn matmul_nt(x: &CpuStorage, x_offset: usize, m: usize, k: usize, w: &CpuStorage, w_offset: usize, n: usize) -> candle_core::Result<CpuStorage> {
    if let (CpuStorage::F32(xs), CpuStorage::F32(ws)) = (x, w) {
        if m <= few_rows::MAX_ROWS {
            let (xs, ws) = (&xs[x_offset..x_offset + m * k], &ws[w_offset..w_offset + n * k]);
            let mut out = vec![0f32; m * n];
            few_rows::matmul_nt(xs, m, k, ws, n, &mut out);
            return Ok(CpuStorage::F32(out));
        }
    }
    let lhs = Layout::contiguous_with_offset((1, m, k), x_offset);
    let rhs = Layout::contiguous_with_offset((1, n, k), w_offset).transpose(1, 2)?;
    x.matmul(w, (1, m, n, k), &lhs, &rhs)
}

/// Adds the `[n]` tensor `bias` to every row of the dense `[rows, n]` `out`.
pub(crate) fn add_bias_rows(out: &mut CpuStorage, bias: &Tensor, n: usize) -> candle_core::Result<()> {
    let (b_guard, b_layout) = bias.storage_and_layout();
    let b = cpu_storage(&b_guard, "bias")?;
    add_rows(out, b, b_layout.start_offset(), n)
}

/// Adds `bias` to every `n`-wide row of `out`.
fn add_rows(out: &mut CpuStorage, bias: &CpuStorage, offset: usize, n: usize) -> candle_core::Result<()> {
    match (out, bias) {
        (CpuStorage::F32(o), CpuStorage::F32(b)) => {
            let b = &b[offset..offset + n];
            o.chunks_exact_mut(n).for_each(|row| row.iter_mut().zip(b).for_each(|(y, &c)| *y += c));
        }
        (CpuStorage::F64(o), CpuStorage::F64(b)) => {
            let b = &b[offset..offset + n];
            o.chunks_exact_mut(n).for_each(|row| row.iter_mut().zip(b).for_each(|(y, &c)| *y += c));
        }
        _ => candle_core::bail!("frozen linear: bias must be f32 or f64 and match the weight dtype"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn forward_matches_matmul_and_backward_reaches_only_the_input() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::new(&[[1f32, 2., 3.], [4., 5., 6.]], &dev)?;
        let b = Tensor::new(&[0.5f32, -1.], &dev)?;
        let lin = FrozenLinear::new(w.clone(), Some(b.clone()))?;
        let x = Var::new(&[[[1f32, 0., -1.], [2., 1., 0.]]], &dev)?; // [1, 2, 3]
        let y = lin.forward(x.as_tensor())?;
        assert_eq!(y.dims(), &[1, 2, 2]);
        assert_eq!(y.to_vec3::<f32>()?, vec![vec![vec![-1.5, -3.], vec![4.5, 12.]]]);
        let loss = (y.sqr()?.sum_all()? * 0.5)?;
        let grads = loss.backward()?;
        // dL/dx = y W for L = |y|^2 / 2.
        let expect = y.reshape((2, 2))?.matmul(&w)?.reshape((1, 2, 3))?;
        let got = grads.get(&x).unwrap();
        assert_eq!(got.to_vec3::<f32>()?, expect.to_vec3::<f32>()?);
        // Neither the layer's weight nor bias ever appears in the gradient store.
        assert!(grads.get(lin.weight()).is_none() && grads.get(lin.bias().unwrap()).is_none());
        Ok(())
    }

    #[test]
    fn handles_offset_inputs_and_rejects_bad_shapes() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::arange(0f32, 6., &dev)?.reshape((3, 2))?;
        let lin = FrozenLinear::new(w.clone(), None)?;
        let big = Tensor::arange(0f32, 8., &dev)?.reshape((4, 2))?;
        let x = big.narrow(0, 2, 2)?; // starts at a non-zero offset
        let want = x.matmul(&w.t()?)?.to_vec2::<f32>()?;
        assert_eq!(lin.forward(&x)?.to_vec2::<f32>()?, want);
        let xt = Tensor::arange(0f32, 6., &dev)?.reshape((2, 3))?.t()?; // non-contiguous [3, 2]
        assert_eq!(lin.forward(&xt)?.to_vec2::<f32>()?, xt.contiguous()?.matmul(&w.t()?)?.to_vec2::<f32>()?);
        assert!(lin.forward(&Tensor::zeros((2, 3), candle_core::DType::F32, &dev)?).is_err());
        Ok(())
    }
}
