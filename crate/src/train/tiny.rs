//! A stand-in language model for testing the loop without a real decoder: frozen random token
//! features plus a causal running sum (so later tokens see the prompt), one frozen projection
//! with a LoRA pair on it, and a frozen output embedding. Small enough to train in seconds, rich
//! enough to memorise a handful of answers exactly.

use super::model::TrainableLm;
use crate::error::Result;
use crate::random::SeededRng;
use candle_core::{DType, Device, Tensor, Var, D};
use std::sync::Mutex;

pub struct TinyLm {
    token: Tensor,
    context: Tensor,
    features: Tensor,
    base: Tensor,
    lora_a: Var,
    lora_b: Var,
    out: Tensor,
    scale: f64,
    dropout: f32,
}

pub const WIDTH: usize = 64;
pub const FEATURES: usize = 256;
pub const RANK: usize = 32;

fn gaussian_ish(rng: &mut SeededRng, n: usize, std: f64) -> Vec<f32> {
    // Sum of uniforms: close enough to normal for random features, and fully seeded.
    (0..n).map(|_| (((0..4).map(|_| rng.next_f64()).sum::<f64>() - 2.0) * std * 3f64.sqrt()) as f32).collect()
}

impl TinyLm {
    /// Frozen weights from `seed`; the adapter's `A` from `adapter_seed` (B starts at zero).
    pub fn new(vocab: usize, seed: u64, adapter_seed: u64, dropout: f32) -> Result<Self> {
        let dev = Device::Cpu;
        let mut r = SeededRng::new(seed);
        let mut t = |rows: usize, cols: usize, std: f64| Tensor::from_vec(gaussian_ish(&mut r, rows * cols, std), (rows, cols), &dev);
        let token = t(vocab, WIDTH, 1.0)?;
        let context = t(vocab, WIDTH, 1.0)?;
        let features = t(FEATURES, 2 * WIDTH, (1.0 / (2 * WIDTH) as f64).sqrt())?;
        let base = t(WIDTH, FEATURES, 0.02)?;
        let out = t(vocab, WIDTH, 1.0)?;
        let bound = 1.0 / (FEATURES as f64).sqrt();
        let mut ra = SeededRng::new(adapter_seed);
        let a: Vec<f32> = (0..RANK * FEATURES).map(|_| ((ra.next_f64() * 2.0 - 1.0) * bound) as f32).collect();
        let lora_a = Var::from_tensor(&Tensor::from_vec(a, (RANK, FEATURES), &dev)?)?;
        let lora_b = Var::zeros((WIDTH, RANK), DType::F32, &dev)?;
        Ok(TinyLm { token, context, features, base, lora_a, lora_b, out, scale: 2.0, dropout })
    }

    fn forward(&self, ids: &Tensor, mask: &Tensor, dropout: Option<&Mutex<SeededRng>>, track: bool) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let dev = ids.device();
        let flat = ids.flatten_all()?;
        let x = self.token.index_select(&flat, 0)?.reshape((b, t, WIDTH))?;
        let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let c = self.context.index_select(&flat, 0)?.reshape((b, t, WIDTH))?.broadcast_mul(&m)?;
        // Running sum over earlier positions, scaled by 1/sqrt(count) to keep tanh unsaturated.
        let tril: Vec<f32> = (0..t * t).map(|k| if k % t <= k / t { 1.0 / ((k / t + 1) as f32).sqrt() } else { 0.0 }).collect();
        let c = Tensor::from_vec(tril, (1, t, t), dev)?.broadcast_matmul(&c)?;
        let h = Tensor::cat(&[x, c], D::Minus1)?.broadcast_matmul(&self.features.t()?)?.tanh()?;
        let (a, bm) = if track {
            (self.lora_a.as_tensor().clone(), self.lora_b.as_tensor().clone())
        } else {
            (self.lora_a.as_tensor().detach(), self.lora_b.as_tensor().detach())
        };
        let dropped = match dropout {
            Some(rng) if self.dropout > 0.0 => {
                let keep = 1.0 - self.dropout;
                let mut rng = rng.lock().expect("dropout lock");
                let mask: Vec<f32> = (0..h.elem_count()).map(|_| if rng.next_f32() < keep { 1.0 / keep } else { 0.0 }).collect();
                (&h * Tensor::from_vec(mask, h.shape(), dev)?)?
            }
            _ => h.clone(),
        };
        let y = (h.broadcast_matmul(&self.base.t()?)? + (dropped.broadcast_matmul(&a.t()?)?.broadcast_matmul(&bm.t()?)? * self.scale)?)?;
        Ok(y.broadcast_matmul(&self.out.t()?)?)
    }
}

impl TrainableLm for TinyLm {
    fn forward_train(&self, input_ids: &Tensor, attention_mask: &Tensor, dropout: &Mutex<SeededRng>) -> Result<Tensor> {
        self.forward(input_ids, attention_mask, Some(dropout), true)
    }

    fn forward_eval(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        self.forward(input_ids, attention_mask, None, false)
    }

    fn trainable_vars(&self) -> Vec<(String, Var)> {
        vec![
            ("base_model.model.tiny.proj.lora_A.weight".into(), self.lora_a.clone()),
            ("base_model.model.tiny.proj.lora_B.weight".into(), self.lora_b.clone()),
        ]
    }
}
