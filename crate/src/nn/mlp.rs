//! SwiGLU feed-forward: `down(silu(gate(x)) * up(x))`, with separate `gate_proj`/`up_proj`
//! (Llama) or one fused `gate_up_proj` whose rows are `gate | up` (Phi-3).

use super::lora::{LoraLinear, LoraMode};
use crate::error::{Result, WotdError};
use candle_core::{Tensor, D};

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
    intermediate: usize,
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
        Ok(Self { gate_up, down, intermediate })
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
                let y = p.forward(x, lora)?;
                (y.narrow(D::Minus1, 0, self.intermediate)?, y.narrow(D::Minus1, self.intermediate, self.intermediate)?)
            }
        };
        self.down.forward(&(gate.silu()? * up)?, lora)
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
}
