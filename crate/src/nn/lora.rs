//! LoRA: `y = W x + (alpha / r) * B (A dropout(x))` over a frozen base linear, in PEFT's
//! conventions so adapters move between this crate and Python PEFT unchanged.
//!
//! - `A` is `[r, in]`, `B` is `[out, r]`, both `candle_core::Var`s; the base is a
//!   [`FrozenLinear`], whose weight never receives a gradient.
//! - Initialisation is PEFT's default: `A ~ U(-1/sqrt(in), 1/sqrt(in))` (kaiming-uniform with
//!   `a = sqrt(5)`), `B = 0`, so a fresh adapter leaves the model's outputs unchanged.
//! - Dropout (training only) uses a seeded [`SeededRng`] whose state can be saved and
//!   restored, so a resumed run draws the same masks as an uninterrupted one.
//! - The adapter's files and its config are PEFT's: [`crate::io::peft`].

use super::frozen_linear::FrozenLinear;
use super::dropout::DropoutMask;
use super::lora_op::FusedLora;
use crate::error::{Result, WotdError};
use crate::io::peft::LoraConfig;
use crate::random::SeededRng;
use candle_core::{DType, Device, Tensor, Var};
use std::sync::Mutex;

/// The trainable pair of one adapted module.
#[derive(Clone, Debug)]
pub struct LoraAdapter {
    a: Var,
    b: Var,
    scale: f64,
    dropout: f64,
}

impl LoraAdapter {
    /// From existing weights: `a` `[r, in]`, `b` `[out, r]`.
    pub fn from_weights(a: &Tensor, b: &Tensor, scale: f64, dropout: f64) -> Result<Self> {
        let (r, _) = a.dims2().map_err(|_| WotdError::InvalidInput(format!("lora_A must be 2-D, got {:?}", a.dims())))?;
        let (_, rb) = b.dims2().map_err(|_| WotdError::InvalidInput(format!("lora_B must be 2-D, got {:?}", b.dims())))?;
        if r != rb {
            return Err(WotdError::InvalidInput(format!("lora_A {:?} and lora_B {:?} disagree on the rank", a.dims(), b.dims())));
        }
        let f32c = |t: &Tensor| -> Result<Var> { Ok(Var::from_tensor(&t.detach().to_dtype(DType::F32)?.contiguous()?)?) };
        Ok(LoraAdapter { a: f32c(a)?, b: f32c(b)?, scale, dropout })
    }

    /// PEFT's default initialisation for a `[out, in]` base: `A` kaiming-uniform, `B` zeros.
    pub fn init(in_features: usize, out_features: usize, cfg: &LoraConfig, rng: &mut SeededRng, device: &Device) -> Result<Self> {
        let bound = 1.0 / (in_features as f64).sqrt();
        let a: Vec<f32> = (0..cfg.r * in_features).map(|_| ((rng.next_f64() * 2.0 - 1.0) * bound) as f32).collect();
        let a = Tensor::from_vec(a, (cfg.r, in_features), device)?;
        let b = Tensor::zeros((out_features, cfg.r), DType::F32, device)?;
        Self::from_weights(&a, &b, cfg.scale(), cfg.dropout)
    }

    pub fn a(&self) -> &Var {
        &self.a
    }

    pub fn b(&self) -> &Var {
        &self.b
    }

    pub fn scale(&self) -> f64 {
        self.scale
    }

    pub fn rank(&self) -> usize {
        self.a.dims()[0]
    }

    /// `scale * B A`, the `[out, in]` update merging adds to the base weight.
    pub fn delta_weight(&self) -> Result<Tensor> {
        Ok((self.b.as_tensor().detach().matmul(&self.a.as_tensor().detach())? * self.scale)?)
    }
}

/// How a forward pass treats adapters.
#[derive(Clone, Copy, Debug)]
pub struct LoraMode<'a> {
    /// Record the graph through `A` and `B` (training). Off, the adapters act as constants and
    /// nothing is recorded.
    pub track_grad: bool,
    /// Dropout stream; `None` disables dropout (evaluation, generation).
    pub dropout: Option<&'a Mutex<SeededRng>>,
}

impl LoraMode<'static> {
    pub const INFERENCE: LoraMode<'static> = LoraMode { track_grad: false, dropout: None };
    pub const TRAIN_NO_DROPOUT: LoraMode<'static> = LoraMode { track_grad: true, dropout: None };
}

/// A frozen base projection with an optional adapter, named by its module path so adapter files
/// can address it.
#[derive(Clone, Debug)]
pub struct LoraLinear {
    path: String,
    base: FrozenLinear,
    adapter: Option<LoraAdapter>,
}

impl LoraLinear {
    pub fn new(path: impl Into<String>, base: FrozenLinear) -> Self {
        LoraLinear { path: path.into(), base, adapter: None }
    }

    /// Module path in the HF model, e.g. `model.layers.0.self_attn.q_proj`.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn base(&self) -> &FrozenLinear {
        &self.base
    }

    pub fn adapter(&self) -> Option<&LoraAdapter> {
        self.adapter.as_ref()
    }

    pub fn in_features(&self) -> usize {
        self.base.in_features()
    }

    pub fn out_features(&self) -> usize {
        self.base.out_features()
    }

    /// Attaches `adapter`, replacing any earlier one, after checking its shapes.
    pub fn set_adapter(&mut self, adapter: LoraAdapter) -> Result<()> {
        let (ra, ia) = adapter.a.as_tensor().dims2()?;
        let (ob, _) = adapter.b.as_tensor().dims2()?;
        if ia != self.in_features() || ob != self.out_features() {
            return Err(WotdError::InvalidInput(format!(
                "adapter for {} is A [{ra}, {ia}] / B [{ob}, {ra}], but the layer is [{}, {}]",
                self.path,
                self.out_features(),
                self.in_features()
            )));
        }
        self.adapter = Some(adapter);
        Ok(())
    }

    pub fn take_adapter(&mut self) -> Option<LoraAdapter> {
        self.adapter.take()
    }

    /// Folds the adapter into the base weight (`W += scale * B A`) and drops it.
    pub fn merge(&mut self) -> Result<()> {
        if let Some(ad) = self.adapter.take() {
            self.base.add_to_weight(&ad.delta_weight()?)?;
        }
        Ok(())
    }

    /// `x W^T + b`, plus the adapter's `scale * B A dropout(x)` when there is one, as a single
    /// graph node ([`super::lora_op`]) that keeps only `x` (and the dropout mask) for the
    /// backward pass.
    pub fn forward(&self, x: &Tensor, mode: LoraMode<'_>) -> Result<Tensor> {
        let Some(ad) = &self.adapter else { return self.base.forward(x) };
        let (a, b) = if mode.track_grad {
            (ad.a.as_tensor().clone(), ad.b.as_tensor().clone())
        } else {
            (ad.a.as_tensor().detach(), ad.b.as_tensor().detach())
        };
        let last = x.dims().last().copied().unwrap_or(0);
        if x.rank() == 0 || last != self.in_features() {
            return Err(WotdError::InvalidInput(format!("{} expects last dimension {}, got shape {:?}", self.path, self.in_features(), x.dims())));
        }
        let mask = match mode.dropout {
            Some(rng) if ad.dropout > 0.0 => {
                let mut rng = rng.lock().map_err(|_| WotdError::Panic("dropout RNG lock poisoned".into()))?;
                Some(DropoutMask::draw(x.elem_count(), ad.dropout, &mut rng))
            }
            _ => None,
        };
        let op = FusedLora { weight: self.base.weight().clone(), bias: self.base.bias().cloned(), mask, scale: ad.scale };
        op.apply(x, &a, &b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(dev: &Device) -> FrozenLinear {
        let w = Tensor::arange(0f32, 12., dev).unwrap().reshape((4, 3)).unwrap();
        FrozenLinear::new((w * 0.1).unwrap(), None).unwrap()
    }

    #[test]
    fn fresh_adapter_is_a_no_op_with_peft_init_bounds() -> Result<()> {
        let dev = Device::Cpu;
        let cfg = LoraConfig { r: 2, alpha: 4.0, dropout: 0.0, ..Default::default() };
        let mut layer = LoraLinear::new("model.layers.0.mlp.up_proj", base(&dev));
        let x = Tensor::new(&[[1f32, -2., 0.5]], &dev)?;
        let before = layer.forward(&x, LoraMode::INFERENCE)?.to_vec2::<f32>()?;
        let ad = LoraAdapter::init(3, 4, &cfg, &mut SeededRng::new(1), &dev)?;
        let a = ad.a().as_tensor().flatten_all()?.to_vec1::<f32>()?;
        assert!(a.iter().all(|v| v.abs() <= 1.0 / 3f32.sqrt()) && a.iter().any(|v| *v != 0.0));
        layer.set_adapter(ad)?;
        assert_eq!(layer.forward(&x, LoraMode::TRAIN_NO_DROPOUT)?.to_vec2::<f32>()?, before);
        Ok(())
    }

    #[test]
    fn forward_is_base_plus_scaled_low_rank_and_merge_agrees() -> Result<()> {
        let dev = Device::Cpu;
        let mut layer = LoraLinear::new("q_proj", base(&dev));
        let a = Tensor::new(&[[1f32, 0., 1.], [0., 2., 0.]], &dev)?;
        let b = Tensor::new(&[[1f32, 0.], [0., 1.], [1., 1.], [0., 0.]], &dev)?;
        layer.set_adapter(LoraAdapter::from_weights(&a, &b, 0.5, 0.0)?)?;
        let x = Tensor::new(&[[1f32, 2., 3.]], &dev)?;
        let y = layer.forward(&x, LoraMode::TRAIN_NO_DROPOUT)?;
        let want = (x.matmul(&layer.base().weight().t()?)? + (x.matmul(&a.t()?)?.matmul(&b.t()?)? * 0.5)?)?;
        assert_eq!(y.to_vec2::<f32>()?, want.to_vec2::<f32>()?);
        let grads = y.sum_all()?.backward()?;
        let ad = layer.adapter().unwrap();
        assert!(grads.get(ad.a()).is_some() && grads.get(ad.b()).is_some());
        assert!(grads.get(layer.base().weight()).is_none());
        layer.merge()?;
        assert!(layer.adapter().is_none());
        let merged = layer.forward(&x, LoraMode::INFERENCE)?;
        let d = (merged - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(d < 1e-6, "{d}");
        Ok(())
    }
}
