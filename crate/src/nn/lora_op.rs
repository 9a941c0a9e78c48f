//! A LoRA projection `y = x W^T + b + s * ((x * m) A^T) B^T` as one graph node: a candle
//! [`CustomOp3`] over `(x, A, B)` with the frozen `W`, `b`, the dropout mask `m` and the scale
//! `s` inside the op.
//!
//! Composed from ordinary ops, every intermediate (the base output, the dropped input, the
//! rank-r product, the low-rank output, their sum) is an input of some node and stays alive
//! until the backward pass: three output-sized and one input-sized tensor per projection, about
//! a third of a decoder layer's activation memory. Here the graph holds only `x` and the
//! dropout mask as bits; the backward reapplies the mask and recomputes the cheap rank-r
//! product. The backward multiplies the slices directly ([`super::cpu::gemm`]): `dx` is the
//! masked low-rank product with `g W` accumulated onto it, one output buffer instead of two
//! products and their sum.

use super::cpu::contiguous_f32;
use super::cpu::gemm::{matmul_into, Mat};
use super::cpu::par::{for_rows, rows_of, RowsMut};
use super::cpu::simd::vectorized;
use super::frozen_linear::{add_bias_rows, matmul_by_transposed, matmul_nt};
use super::dropout::DropoutMask;
use crate::error::Result;
use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Storage, Tensor};

pub(crate) struct FusedLora {
    /// Frozen `[out, in]` weight and `[out]` bias.
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    /// Inverted-dropout mask over `x`'s elements, when dropout is on.
    pub mask: Option<DropoutMask>,
    pub scale: f64,
}

impl FusedLora {
    /// Applies the op to `x` (`[..., in]`), `a` (`[r, in]`) and `b` (`[out, r]`). The graph is
    /// recorded when any of them tracks a gradient.
    pub fn apply(self, x: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let x = x.contiguous()?;
        Ok(x.apply_op3(&a.contiguous()?, &b.contiguous()?, self)?)
    }
}


impl CustomOp3 for FusedLora {
    fn name(&self) -> &'static str {
        "fused-lora"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        a_s: &CpuStorage,
        al: &Layout,
        b_s: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        if !(xl.is_contiguous() && al.is_contiguous() && bl.is_contiguous()) {
            candle_core::bail!("fused lora: inputs must be contiguous");
        }
        let dims = xl.dims();
        let k = dims[dims.len() - 1];
        let m: usize = dims[..dims.len() - 1].iter().product();
        let (r, ak) = al.shape().dims2()?;
        let (n, br) = bl.shape().dims2()?;
        if ak != k || br != r || self.weight.dims() != [n, k] {
            candle_core::bail!("fused lora: x [.., {k}], A [{r}, {ak}], B [{n}, {br}], W {:?} do not fit", self.weight.dims());
        }
        let mut y = matmul_by_transposed(xs, xl.start_offset(), m, k, &self.weight)?;
        let u = match &self.mask {
            Some(mask) => {
                if mask.len() != m * k {
                    candle_core::bail!("fused lora: dropout mask of {} elements for an input of {}", mask.len(), m * k);
                }
                let x = contiguous_f32(xs, xl, "fused lora")?;
                let dropped = masked(mask, x, m, k);
                let dropped = CpuStorage::F32(dropped);
                matmul_nt(&dropped, 0, m, k, a_s, al.start_offset(), r)?
            }
            None => matmul_nt(xs, xl.start_offset(), m, k, a_s, al.start_offset(), r)?,
        };
        // Scaling the rank-r intermediate instead of the output: same product, r/out the work.
        let u = match u {
            CpuStorage::F32(mut v) => {
                let s = self.scale as f32;
                v.iter_mut().for_each(|e| *e *= s);
                CpuStorage::F32(v)
            }
            _ => candle_core::bail!("fused lora: expected f32"),
        };
        let low = matmul_nt(&u, 0, m, r, b_s, bl.start_offset(), n)?;
        match (&mut y, &low) {
            (CpuStorage::F32(y), CpuStorage::F32(l)) => y.iter_mut().zip(l).for_each(|(a, b)| *a += b),
            _ => candle_core::bail!("fused lora: expected f32"),
        }
        if let Some(bias) = &self.bias {
            add_bias_rows(&mut y, bias, n)?;
        }
        let mut out = dims[..dims.len() - 1].to_vec();
        out.push(n);
        Ok((y, Shape::from(out)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, k) = self.weight.dims2()?;
        let m = grad.elem_count() / n.max(1);
        let r = a.dims2()?.0;
        let dev = x.device();
        let (grad, x, a, b) = (grad.contiguous()?, x.contiguous()?, a.contiguous()?, b.contiguous()?);
        let guards = [&grad, &x, &a, &b, &self.weight].map(|t| t.storage_and_layout());
        let [g, xs, a_s, b_s, w] = [0, 1, 2, 3, 4].map(|i| -> candle_core::Result<&[f32]> {
            let (st, l) = &guards[i];
            let Storage::Cpu(c) = &**st else { candle_core::bail!("fused lora: CPU tensors only") };
            contiguous_f32(c, l, "fused lora")
        });
        let (g, xs, a_s, b_s, w) = (g?, xs?, a_s?, b_s?, w?);
        if g.len() != m * n || xs.len() != m * k || a_s.len() != r * k || b_s.len() != n * r || w.len() != n * k {
            candle_core::bail!("fused lora backward: x {:?}, A {:?}, B {:?}, W {:?}, grad of {} values do not fit", x.dims(), a.dims(), b.dims(), self.weight.dims(), g.len());
        }
        let s = self.scale as f32;
        let dropped = self.mask.as_ref().map(|mask| masked(mask, xs, m, k));
        let xd: &[f32] = dropped.as_deref().unwrap_or(xs);
        // dL/d(rank-r product), scaled: [m, r].
        let mut gb = vec![0f32; m * r];
        matmul_into(&mut gb, Mat::rows(g, m, n), Mat::rows(b_s, n, r), s, false);
        // dx = mask(gb A) + g W.
        let mut dx = vec![0f32; m * k];
        matmul_into(&mut dx, Mat::rows(&gb, m, r), Mat::rows(a_s, r, k), 1.0, false);
        if let Some(mask) = &self.mask {
            let rows = RowsMut::new(&mut dx, k);
            for_rows(m, k, |range| {
                // SAFETY: for_rows gives disjoint ranges.
                let d = unsafe { rows.rows(range.clone()) };
                vectorized(|| mask.apply_in_place(range.start * k, d));
            });
        }
        matmul_into(&mut dx, Mat::rows(g, m, n), Mat::rows(w, n, k), 1.0, true);
        // dA = gb^T xd: [r, k]; dB = g^T (s xd A^T): [n, r].
        let mut da = vec![0f32; r * k];
        matmul_into(&mut da, Mat::rows(&gb, m, r).t(), Mat::rows(xd, m, k), 1.0, false);
        let mut u = vec![0f32; m * r];
        matmul_into(&mut u, Mat::rows(xd, m, k), Mat::rows(a_s, r, k).t(), s, false);
        let mut db = vec![0f32; n * r];
        matmul_into(&mut db, Mat::rows(g, m, n).t(), Mat::rows(&u, m, r), 1.0, false);
        drop(guards);
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), dev)?),
            Some(Tensor::from_vec(da, (r, k), dev)?),
            Some(Tensor::from_vec(db, (n, r), dev)?),
        ))
    }
}

/// `x` (`[m, k]`) times the dropout mask, split over the thread pool.
fn masked(mask: &DropoutMask, x: &[f32], m: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0f32; m * k];
    let rows = RowsMut::new(&mut out, k);
    for_rows(m, k, |range| {
        // SAFETY: for_rows gives disjoint ranges.
        let o = unsafe { rows.rows(range.clone()) };
        let x = rows_of(x, k, range.clone());
        vectorized(|| mask.apply(range.start * k, x, o));
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn filled(shape: &[usize], phase: f32) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|i| ((i as f32 + phase) * 0.731).sin()).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn equals_the_composed_projection_and_its_gradients_with_bias_and_dropout() -> Result<()> {
        let (w, bias) = (filled(&[4, 5], 0.0), filled(&[4], 9.0));
        let drop = DropoutMask::draw(2 * 3 * 5, 0.2, &mut crate::random::SeededRng::new(4));
        let mask = Tensor::from_vec(drop.values(), (2, 3, 5), &Device::Cpu)?;
        for with_mask in [false, true] {
            let x = Var::from_tensor(&filled(&[2, 3, 5], 1.0))?;
            let a = Var::from_tensor(&filled(&[2, 5], 2.0))?;
            let b = Var::from_tensor(&filled(&[4, 2], 3.0))?;
            let m = with_mask.then(|| mask.clone());
            let fused = FusedLora { weight: w.clone(), bias: Some(bias.clone()), mask: with_mask.then(|| drop.clone()), scale: 1.5 }.apply(x.as_tensor(), a.as_tensor(), b.as_tensor())?;

            let (x2, a2, b2) = (Var::from_tensor(x.as_tensor())?, Var::from_tensor(a.as_tensor())?, Var::from_tensor(b.as_tensor())?);
            let xd = match &m {
                Some(mk) => (x2.as_tensor() * mk)?,
                None => x2.as_tensor().clone(),
            };
            let base = x2.as_tensor().broadcast_matmul(&w.t()?)?.broadcast_add(&bias)?;
            let low = (xd.broadcast_matmul(&a2.as_tensor().t()?)?.broadcast_matmul(&b2.as_tensor().t()?)? * 1.5)?;
            let composed = (base + low)?;

            let diff = (&fused - &composed)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(diff < 1e-5, "forward differs by {diff}");
            // A loss that weights every output differently, so every gradient entry matters.
            let weights = filled(&[2, 3, 4], 5.0);
            let (gf, gc) = ((&fused * &weights)?.sum_all()?.backward()?, (&composed * &weights)?.sum_all()?.backward()?);
            for (name, f, c) in [("x", &x, &x2), ("A", &a, &a2), ("B", &b, &b2)] {
                let (gf, gc) = (gf.get(f.as_tensor()).unwrap(), gc.get(c.as_tensor()).unwrap());
                let d = (gf - gc)?.abs()?.max_all()?.to_scalar::<f32>()?;
                assert!(d < 1e-5, "mask {with_mask}: d{name} differs by {d}");
                assert!(gf.abs()?.max_all()?.to_scalar::<f32>()? > 0.0);
            }
        }
        Ok(())
    }
}
