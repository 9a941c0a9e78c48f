//! AdamW with decoupled weight decay, gradient clipping by global norm, and accumulation of
//! gradients over micro-batches.
//!
//! The update is PyTorch's `torch.optim.AdamW` (non-fused, `amsgrad=False`) step for step,
//! including where `eps` enters (after the bias-corrected square root), so a run can be compared
//! with a transformers + PEFT run on the same data. Moments are ordinary tensors so checkpoints
//! store them as safetensors.

use crate::error::{Result, WotdError};
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    /// transformers' `TrainingArguments` defaults.
    fn default() -> Self {
        AdamWConfig { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }
    }
}

impl AdamWConfig {
    pub fn validate(&self) -> Result<()> {
        let ok = (0.0..1.0).contains(&self.beta1) && (0.0..1.0).contains(&self.beta2) && self.eps > 0.0 && self.weight_decay >= 0.0;
        if !ok || !self.weight_decay.is_finite() {
            return Err(WotdError::InvalidInput(format!("AdamW needs betas in [0, 1), eps > 0 and weight decay >= 0, got {self:?}")));
        }
        Ok(())
    }
}

/// Key prefixes of the moments in a saved optimizer state (PyTorch's names for them).
const FIRST_MOMENT: &str = "exp_avg.";
const SECOND_MOMENT: &str = "exp_avg_sq.";

pub struct AdamW {
    params: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    steps: u64,
    cfg: AdamWConfig,
}

impl AdamW {
    /// Parameters are named so that a saved state reattaches to the right tensors.
    pub fn new(params: Vec<(String, Var)>, cfg: AdamWConfig) -> Result<Self> {
        cfg.validate()?;
        let mut names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(WotdError::InvalidInput(format!("parameter {:?} is listed twice", w[0])));
        }
        let zeros = |p: &Var| p.as_tensor().zeros_like();
        let m = params.iter().map(|(_, p)| zeros(p)).collect::<candle_core::Result<_>>()?;
        let v = params.iter().map(|(_, p)| zeros(p)).collect::<candle_core::Result<_>>()?;
        Ok(AdamW { params, m, v, steps: 0, cfg })
    }

    pub fn params(&self) -> &[(String, Var)] {
        &self.params
    }

    pub fn config(&self) -> &AdamWConfig {
        &self.cfg
    }

    /// Updates taken so far (PyTorch's `state["step"]`).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// One update at learning rate `lr`. `grads[i]` belongs to `params()[i]`; a parameter with
    /// no gradient is left alone (no decay, no moment update), as PyTorch skips `grad is None`.
    pub fn step(&mut self, grads: &[Option<Tensor>], lr: f64) -> Result<()> {
        if grads.len() != self.params.len() {
            return Err(WotdError::InvalidInput(format!("{} gradients for {} parameters", grads.len(), self.params.len())));
        }
        self.steps += 1;
        let AdamWConfig { beta1, beta2, eps, weight_decay } = self.cfg;
        let t = self.steps as i32;
        let bias1 = 1.0 - beta1.powi(t);
        let bias2_sqrt = (1.0 - beta2.powi(t)).sqrt();
        let step_size = lr / bias1;
        for (i, grad) in grads.iter().enumerate() {
            let Some(g) = grad else { continue };
            let (name, p) = &self.params[i];
            if g.dims() != p.dims() {
                return Err(WotdError::InvalidInput(format!("gradient {:?} does not fit parameter {name} {:?}", g.dims(), p.dims())));
            }
            let m = ((&self.m[i] * beta1)? + (g * (1.0 - beta1))?)?;
            let v = ((&self.v[i] * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let decayed = if weight_decay > 0.0 { (p.as_tensor() * (1.0 - lr * weight_decay))? } else { p.as_tensor().clone() };
            let denom = ((v.sqrt()? / bias2_sqrt)? + eps)?;
            let update = (m.div(&denom)? * step_size)?;
            p.set(&(decayed - update)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// Both moments of every parameter, under `exp_avg.<name>` / `exp_avg_sq.<name>`.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.params.len());
        for (i, (name, _)) in self.params.iter().enumerate() {
            out.push((format!("{FIRST_MOMENT}{name}"), self.m[i].clone()));
            out.push((format!("{SECOND_MOMENT}{name}"), self.v[i].clone()));
        }
        out
    }

    /// Restores moments saved by [`AdamW::state_tensors`] and the update count. Every
    /// parameter must find both moments with its own shape, or nothing is changed.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, steps: u64) -> Result<()> {
        let mut m = Vec::with_capacity(self.params.len());
        let mut v = Vec::with_capacity(self.params.len());
        for (name, p) in &self.params {
            for (prefix, out) in [(FIRST_MOMENT, &mut m), (SECOND_MOMENT, &mut v)] {
                let key = format!("{prefix}{name}");
                let t = tensors.get(&key).ok_or_else(|| WotdError::InvalidInput(format!("optimizer state has no {key}")))?;
                if t.dims() != p.dims() {
                    return Err(WotdError::InvalidInput(format!("optimizer state {key} is {:?}, parameter is {:?}", t.dims(), p.dims())));
                }
                out.push(t.to_dtype(p.dtype())?.to_device(p.device())?);
            }
        }
        self.m = m;
        self.v = v;
        self.steps = steps;
        Ok(())
    }
}

/// Scales gradients so their global L2 norm is at most `max_norm` (PyTorch's
/// `clip_grad_norm_`: factor `max_norm / (norm + 1e-6)` when below 1). Returns the norm before
/// clipping.
pub fn clip_grad_norm(grads: &mut [Option<Tensor>], max_norm: f64) -> Result<f64> {
    let mut sq = 0f64;
    for g in grads.iter().flatten() {
        sq += g.sqr()?.sum_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
    }
    let norm = sq.sqrt();
    let factor = max_norm / (norm + 1e-6);
    if max_norm > 0.0 && factor < 1.0 {
        for g in grads.iter_mut().flatten() {
            *g = (&*g * factor)?;
        }
    }
    Ok(norm)
}

/// Sums the gradients of named parameters over the micro-batches of one optimizer step.
pub struct GradAccumulator {
    sums: Vec<Option<Tensor>>,
}

impl GradAccumulator {
    pub fn new(params: usize) -> Self {
        GradAccumulator { sums: vec![None; params] }
    }

    /// Adds this backward pass's gradient of each parameter (in `params` order).
    pub fn add(&mut self, grads: &GradStore, params: &[(String, Var)]) -> Result<()> {
        for (slot, (_, p)) in self.sums.iter_mut().zip(params) {
            if let Some(g) = grads.get(p.as_tensor()) {
                *slot = Some(match slot.take() {
                    Some(sum) => (sum + g)?,
                    None => g.clone(),
                });
            }
        }
        Ok(())
    }

    /// The sums so far, leaving the accumulator empty for the next step.
    pub fn take(&mut self) -> Vec<Option<Tensor>> {
        let n = self.sums.len();
        std::mem::replace(&mut self.sums, vec![None; n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn one_step_equals_the_hand_computation() -> Result<()> {
        let dev = Device::Cpu;
        let p = Var::new(&[1.0f32, -2.0, 0.5], &dev)?;
        let cfg = AdamWConfig { beta1: 0.9, beta2: 0.99, eps: 1e-8, weight_decay: 0.1 };
        let mut opt = AdamW::new(vec![("p".into(), p.clone())], cfg)?;
        let g = [0.3f64, -0.1, 0.0];
        let lr = 0.01;
        opt.step(&[Some(Tensor::new(&[0.3f32, -0.1, 0.0], &dev)?)], lr)?;
        // t = 1: m = 0.1 g, v = 0.01 g^2, m_hat = g, sqrt(v_hat) = |g|.
        let want: Vec<f64> = [1.0f64, -2.0, 0.5]
            .iter()
            .zip(g)
            .map(|(&p, g)| {
                let m = 0.1 * g;
                let v = 0.01 * g * g;
                let denom = (v.sqrt() / (1.0f64 - 0.99).sqrt()) + 1e-8;
                p * (1.0 - lr * 0.1) - (lr / (1.0 - 0.9)) * m / denom
            })
            .collect();
        let got = p.as_tensor().to_vec1::<f32>()?;
        for (a, b) in got.iter().zip(&want) {
            assert!((*a as f64 - b).abs() < 1e-6, "{got:?} vs {want:?}");
        }
        // Step one moves each weight by lr (times sign of g) plus decay; g = 0 only decays.
        assert!((got[2] as f64 - 0.5 * (1.0 - 0.001)).abs() < 1e-7);
        Ok(())
    }

    #[test]
    fn second_step_uses_bias_corrected_moments() -> Result<()> {
        let dev = Device::Cpu;
        let p = Var::new(&[0.0f32], &dev)?;
        let mut opt = AdamW::new(vec![("p".into(), p.clone())], AdamWConfig::default())?;
        opt.step(&[Some(Tensor::new(&[1.0f32], &dev)?)], 0.1)?;
        opt.step(&[Some(Tensor::new(&[-1.0f32], &dev)?)], 0.1)?;
        let (b1, b2) = (0.9f64, 0.999f64);
        let m = b1 * (1.0 - b1) - (1.0 - b1);
        let v = b2 * (1.0 - b2) + (1.0 - b2);
        let second = 0.1 / (1.0 - b1 * b1) * m / ((v / (1.0 - b2 * b2)).sqrt() + 1e-8);
        let want = -0.1 - second;
        assert!((p.as_tensor().to_vec1::<f32>()?[0] as f64 - want).abs() < 1e-6);
        assert_eq!(opt.steps(), 2);
        Ok(())
    }

    #[test]
    fn state_round_trips_and_missing_grads_leave_params_alone() -> Result<()> {
        let dev = Device::Cpu;
        let a = Var::new(&[1.0f32, 2.0], &dev)?;
        let b = Var::new(&[3.0f32], &dev)?;
        let params = vec![("a".to_string(), a.clone()), ("b".to_string(), b.clone())];
        let mut opt = AdamW::new(params.clone(), AdamWConfig { weight_decay: 0.5, ..Default::default() })?;
        opt.step(&[Some(Tensor::new(&[0.5f32, 0.5], &dev)?), None], 0.1)?;
        assert_eq!(b.as_tensor().to_vec1::<f32>()?, vec![3.0]);
        let saved: HashMap<String, Tensor> = opt.state_tensors().into_iter().collect();
        let mut other = AdamW::new(params, AdamWConfig { weight_decay: 0.5, ..Default::default() })?;
        other.load_state(&saved, opt.steps())?;
        assert_eq!(other.state_tensors()[0].1.to_vec1::<f32>()?, saved["exp_avg.a"].to_vec1::<f32>()?);
        let mut missing = saved.clone();
        missing.remove("exp_avg_sq.b");
        assert!(other.load_state(&missing, 1).is_err());
        assert!(AdamW::new(vec![("x".into(), a.clone()), ("x".into(), b)], AdamWConfig::default()).is_err());
        Ok(())
    }

    #[test]
    fn clipping_scales_to_the_max_norm_and_leaves_small_gradients() -> Result<()> {
        let dev = Device::Cpu;
        let mut grads = vec![Some(Tensor::new(&[3.0f32, 0.0], &dev)?), None, Some(Tensor::new(&[4.0f32], &dev)?)];
        let norm = clip_grad_norm(&mut grads, 1.0)?;
        assert!((norm - 5.0).abs() < 1e-9);
        let a = grads[0].as_ref().unwrap().to_vec1::<f32>()?;
        let b = grads[2].as_ref().unwrap().to_vec1::<f32>()?;
        let after = ((a[0] * a[0] + b[0] * b[0]) as f64).sqrt();
        assert!((after - 1.0).abs() < 1e-5, "{after}");
        assert!((a[0] / b[0] - 0.75).abs() < 1e-6, "direction is kept");
        let mut small = vec![Some(Tensor::new(&[0.3f32, 0.4], &dev)?)];
        assert!((clip_grad_norm(&mut small, 1.0)? - 0.5).abs() < 1e-7);
        assert_eq!(small[0].as_ref().unwrap().to_vec1::<f32>()?, vec![0.3, 0.4]);
        Ok(())
    }

    #[test]
    fn accumulation_sums_backward_passes() -> Result<()> {
        let dev = Device::Cpu;
        let w = Var::new(&[2.0f32], &dev)?;
        let params = vec![("w".to_string(), w.clone())];
        let mut acc = GradAccumulator::new(1);
        for x in [1.0f32, 3.0] {
            let y = (w.as_tensor() * x as f64)?.sum_all()?;
            acc.add(&y.backward()?, &params)?;
        }
        assert_eq!(acc.take()[0].as_ref().unwrap().to_vec1::<f32>()?, vec![4.0]);
        assert!(acc.take()[0].is_none());
        Ok(())
    }
}
