//! SwiGLU feed-forward: `down(silu(gate(x)) * up(x))`, with separate `gate_proj`/`up_proj`
//! (Llama) or one fused `gate_up_proj` whose rows are `gate | up` (Phi-3).
//!
//! The gating `silu(g) * u` is one custom op with its derivative written out
//! (`d/dg = grad * u * s * (1 + g * (1 - s))`, `d/du = grad * silu(g)`, `s = sigmoid(g)`): it is
//! the widest elementwise step of the model, and candle's composed backward of `silu` and `mul`
//! makes about a dozen full-size passes where this makes one. It is checked against that
//! composition in value and gradient.

use super::cpu::exp::sigmoid;
use super::cpu::par::{for_rows, rows_of, RowsMut};
use super::cpu::simd::vectorized;
use super::cpu::contiguous_f32;
use super::lora::{LoraLinear, LoraMode};
use crate::error::{Result, WotdError};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Storage, Tensor};

#[derive(Clone, Debug)]
pub enum GateUpProjection {
    Separate { gate: LoraLinear, up: LoraLinear },
    /// One `[2 * intermediate, hidden]` projection, rows `gate | up`.
    Fused(LoraLinear),
}

#[derive(Clone, Debug)]
pub struct SwiGlu {
    gate_up: GateUpProjection,
    down: LoraLinear,
}

impl SwiGlu {
    pub fn new(gate_up: GateUpProjection, down: LoraLinear) -> Result<Self> {
        let intermediate = down.in_features();
        let hidden = down.out_features();
        let ok = match &gate_up {
            GateUpProjection::Separate { gate, up } => {
                gate.out_features() == intermediate && up.out_features() == intermediate
                    && gate.in_features() == hidden && up.in_features() == hidden
            }
            GateUpProjection::Fused(p) => p.out_features() == 2 * intermediate && p.in_features() == hidden,
        };
        if !ok {
            return Err(WotdError::InvalidInput(format!(
                "MLP projections do not fit intermediate size {intermediate} over width {hidden}"
            )));
        }
        Ok(Self { gate_up, down })
    }

    pub fn projections(&self) -> Vec<&LoraLinear> {
        let mut v: Vec<&LoraLinear> = match &self.gate_up {
            GateUpProjection::Separate { gate, up } => vec![gate, up],
            GateUpProjection::Fused(p) => vec![p],
        };
        v.push(&self.down);
        v
    }

    pub fn projections_mut(&mut self) -> Vec<&mut LoraLinear> {
        let mut v: Vec<&mut LoraLinear> = match &mut self.gate_up {
            GateUpProjection::Separate { gate, up } => vec![gate, up],
            GateUpProjection::Fused(p) => vec![p],
        };
        v.push(&mut self.down);
        v
    }

    pub fn forward(&self, x: &Tensor, lora: LoraMode<'_>) -> Result<Tensor> {
        let (gate, up) = match &self.gate_up {
            GateUpProjection::Separate { gate, up } => (gate.forward(x, lora)?, up.forward(x, lora)?),
            GateUpProjection::Fused(p) => {
                // Straight from the fused output: splitting it first would keep contiguous
                // copies of both halves alive beside it until the backward pass.
                let y = p.forward(x, lora)?;
                return self.down.forward(&swiglu_halves(&y)?, lora);
            }
        };
        self.down.forward(&swiglu(&gate, &up)?, lora)
    }
}

/// `silu(gate) * up` where `y` is `[..., 2 i]` holding `gate | up` along the last dimension
/// (Phi-3's `gate_up_proj` output): `[..., i]`, differentiable in `y`.
pub fn swiglu_halves(y: &Tensor) -> Result<Tensor> {
    let last = y.dims().last().copied().unwrap_or(0);
    if y.rank() == 0 || last % 2 != 0 {
        return Err(WotdError::InvalidInput(format!("fused gate|up output must have an even last dimension, got {:?}", y.dims())));
    }
    Ok(y.contiguous()?.apply_op1(SwiGluHalvesOp)?)
}

struct SwiGluHalvesOp;

impl CustomOp1 for SwiGluHalvesOp {
    fn name(&self) -> &'static str {
        "swiglu-halves"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let y = contiguous_f32(s, l, "swiglu")?;
        let dims = l.dims();
        let i = dims[dims.len() - 1] / 2;
        let rows = y.len() / (2 * i).max(1);
        let mut out = vec![0f32; rows * i];
        let dst = RowsMut::new(&mut out, i);
        for_rows(rows, 2 * i, |r| {
            // SAFETY: for_rows gives disjoint ranges.
            let o = unsafe { dst.rows(r.clone()) };
            let y = rows_of(y, 2 * i, r);
            vectorized(|| {
                for (row, orow) in y.chunks_exact(2 * i).zip(o.chunks_exact_mut(i)) {
                    let (g, u) = row.split_at(i);
                    silu_mul(orow, g, u);
                }
            })
        });
        let mut od = dims.to_vec();
        *od.last_mut().unwrap() = i;
        Ok((CpuStorage::F32(out), Shape::from(od)))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        let (ys, yl) = arg.storage_and_layout();
        let (ds, dl) = grad.storage_and_layout();
        let (Storage::Cpu(ys), Storage::Cpu(ds)) = (&*ys, &*ds) else {
            candle_core::bail!("swiglu: CPU tensors only");
        };
        let (y, d) = (contiguous_f32(ys, yl, "swiglu")?, contiguous_f32(ds, dl, "swiglu")?);
        let i = arg.dims()[arg.rank() - 1] / 2;
        let rows = y.len() / (2 * i).max(1);
        let mut dy = vec![0f32; y.len()];
        let dst = RowsMut::new(&mut dy, 2 * i);
        for_rows(rows, 2 * i, |r| {
            // SAFETY: for_rows gives disjoint ranges.
            let o = unsafe { dst.rows(r.clone()) };
            let (y, d) = (rows_of(y, 2 * i, r.clone()), rows_of(d, i, r));
            vectorized(|| {
                for ((row, drow), orow) in y.chunks_exact(2 * i).zip(d.chunks_exact(i)).zip(o.chunks_exact_mut(2 * i)) {
                    let (g, u) = row.split_at(i);
                    let (dg, du) = orow.split_at_mut(i);
                    silu_mul_backward(dg, du, g, u, drow);
                }
            })
        });
        Ok(Some(Tensor::from_vec(dy, arg.shape(), arg.device())?))
    }
}

/// `silu(gate) * up`, elementwise, differentiable in both arguments (f32).
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if gate.dims() != up.dims() {
        return Err(WotdError::InvalidInput(format!("gate {:?} and up {:?} differ in shape", gate.dims(), up.dims())));
    }
    Ok(gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGluOp)?)
}

struct SwiGluOp;


/// `out = silu(g) * u`, element by element.
#[inline(always)]
fn silu_mul(out: &mut [f32], g: &[f32], u: &[f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(g).zip(u) {
        *o = g * sigmoid(g) * u;
    }
}

/// The gradients of `silu(g) * u` for the output gradient `d`.
#[inline(always)]
fn silu_mul_backward(dg: &mut [f32], du: &mut [f32], g: &[f32], u: &[f32], d: &[f32]) {
    for ((((dg, du), &g), &u), &d) in dg.iter_mut().zip(du.iter_mut()).zip(g).zip(u).zip(d) {
        let s = sigmoid(g);
        *du = d * g * s;
        *dg = d * u * s * (1.0 + g * (1.0 - s));
    }
}

impl CustomOp2 for SwiGluOp {
    fn name(&self) -> &'static str {
        "swiglu"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (g, u) = (contiguous_f32(s1, l1, "swiglu")?, contiguous_f32(s2, l2, "swiglu")?);
        let width = l1.dims().last().copied().unwrap_or(1).max(1);
        let mut out = vec![0f32; g.len()];
        let dst = RowsMut::new(&mut out, width);
        for_rows(g.len() / width, width, |r| {
            // SAFETY: for_rows gives disjoint ranges.
            let o = unsafe { dst.rows(r.clone()) };
            let (g, u) = (rows_of(g, width, r.clone()), rows_of(u, width, r));
            vectorized(|| silu_mul(o, g, u));
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(&self, gate: &Tensor, up: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (gs, gl) = gate.storage_and_layout();
        let (us, ul) = up.storage_and_layout();
        let (ds, dl) = grad.storage_and_layout();
        let (Storage::Cpu(gs), Storage::Cpu(us), Storage::Cpu(ds)) = (&*gs, &*us, &*ds) else {
            candle_core::bail!("swiglu: CPU tensors only");
        };
        let (g, u, d) = (contiguous_f32(gs, gl, "swiglu")?, contiguous_f32(us, ul, "swiglu")?, contiguous_f32(ds, dl, "swiglu")?);
        let width = gate.dims().last().copied().unwrap_or(1).max(1);
        let (mut dg, mut du) = (vec![0f32; g.len()], vec![0f32; g.len()]);
        let (dg_rows, du_rows) = (RowsMut::new(&mut dg, width), RowsMut::new(&mut du, width));
        for_rows(g.len() / width, width, |r| {
            // SAFETY: for_rows gives disjoint ranges.
            let (dg, du) = unsafe { (dg_rows.rows(r.clone()), du_rows.rows(r.clone())) };
            let (g, u, d) = (rows_of(g, width, r.clone()), rows_of(u, width, r.clone()), rows_of(d, width, r));
            vectorized(|| silu_mul_backward(dg, du, g, u, d));
        });
        let dev = gate.device();
        Ok((Some(Tensor::from_vec(dg, gate.shape(), dev)?), Some(Tensor::from_vec(du, up.shape(), dev)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::frozen_linear::FrozenLinear;
    use candle_core::{Device, Var};

    fn lin(path: &str, w: &Tensor) -> LoraLinear {
        LoraLinear::new(path, FrozenLinear::new(w.clone(), None).unwrap())
    }

    #[test]
    fn fused_equals_separate_and_gradients_reach_the_input() -> Result<()> {
        let dev = Device::Cpu;
        let g = Tensor::new(&[[0.5f32, -1.], [1., 1.], [0.2, 0.3]], &dev)?;
        let u = Tensor::new(&[[1f32, 0.], [0., 1.], [-0.5, 2.]], &dev)?;
        let d = Tensor::new(&[[1f32, 2., 3.], [-1., 0.5, 0.]], &dev)?;
        let sep = SwiGlu::new(GateUpProjection::Separate { gate: lin("gate_proj", &g), up: lin("up_proj", &u) }, lin("down_proj", &d))?;
        let fused = SwiGlu::new(GateUpProjection::Fused(lin("gate_up_proj", &Tensor::cat(&[&g, &u], 0)?)), lin("down_proj", &d))?;
        let x = Var::new(&[[[1f32, -2.], [0.3, 0.7]]], &dev)?;
        let a = sep.forward(x.as_tensor(), LoraMode::INFERENCE)?;
        let b = fused.forward(x.as_tensor(), LoraMode::INFERENCE)?;
        assert_eq!(a.to_vec3::<f32>()?, b.to_vec3::<f32>()?);
        // By hand for the first token: gate = [2.5, -1, -0.4], up = [1, -2, -4.5].
        let silu = |v: f32| v / (1. + (-v).exp());
        let h = [silu(2.5) * 1., silu(-1.) * -2., silu(-0.4) * -4.5];
        let want0 = h[0] + 2. * h[1] + 3. * h[2];
        assert!((a.to_vec3::<f32>()?[0][0][0] - want0).abs() < 1e-5);
        let grads = a.sum_all()?.backward()?;
        assert!(grads.get(&x).is_some());
        Ok(())
    }

    #[test]
    fn swiglu_of_fused_halves_equals_swiglu_of_the_split_in_value_and_gradient() -> Result<()> {
        let dev = Device::Cpu;
        let y = Var::from_tensor(&Tensor::arange(-24f32, 24., &dev)?.affine(0.25, 0.1)?.reshape((2, 2, 12))?)?;
        let w = Tensor::arange(0f32, 24., &dev)?.sin()?.reshape((2, 2, 6))?;
        let ours = swiglu_halves(y.as_tensor())?;
        let want = swiglu(&y.as_tensor().narrow(2, 0, 6)?, &y.as_tensor().narrow(2, 6, 6)?)?;
        assert_eq!(ours.to_vec3::<f32>()?, want.to_vec3::<f32>()?);
        let ga = (&ours * &w)?.sum_all()?.backward()?;
        let gb = (&want * &w)?.sum_all()?.backward()?;
        let d = (ga.get(&y).unwrap() - gb.get(&y).unwrap())?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(d < 1e-6, "{d}");
        assert!(swiglu_halves(&Tensor::zeros((2, 3), candle_core::DType::F32, &dev)?).is_err());
        Ok(())
    }

    #[test]
    fn swiglu_matches_the_composed_ops_in_value_and_gradient() -> Result<()> {
        let dev = Device::Cpu;
        let g = Var::from_tensor(&Tensor::arange(-30f32, 30., &dev)?.affine(0.3, 0.1)?.reshape((3, 20))?)?;
        let u = Var::from_tensor(&Tensor::arange(0f32, 60., &dev)?.cos()?.reshape((3, 20))?)?;
        let w = Tensor::arange(0f32, 60., &dev)?.sin()?.reshape((3, 20))?;
        let ours = swiglu(g.as_tensor(), u.as_tensor())?;
        let want = (g.as_tensor().silu()? * u.as_tensor())?;
        let d = (&ours - &want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(d < 1e-6, "{d}");
        let ga = (&ours * &w)?.sum_all()?.backward()?;
        let gb = (&want * &w)?.sum_all()?.backward()?;
        for v in [&g, &u] {
            let d = (ga.get(v).unwrap() - gb.get(v).unwrap())?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(d < 1e-5, "{d}");
        }
        Ok(())
    }
}
