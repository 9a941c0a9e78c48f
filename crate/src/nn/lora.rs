//! LoRA: `y = W x + (alpha / r) * B (A dropout(x))` over a frozen base linear, in PEFT's
//! conventions so adapters move between this crate and Python PEFT unchanged.
//!
//! - `A` is `[r, in]`, `B` is `[out, r]`, both `candle_core::Var`s; the base is a
//!   [`FrozenLinear`], whose weight never receives a gradient.
//! - Initialisation is PEFT's default: `A ~ U(-1/sqrt(in), 1/sqrt(in))` (kaiming-uniform with
//!   `a = sqrt(5)`), `B = 0`, so a fresh adapter leaves the model's outputs unchanged.
//! - Dropout (training only) uses a seeded [`SeededRng`] whose state can be saved and restored,
//!   so a resumed run draws the same masks as an uninterrupted one.
//! - Files: `adapter_model.safetensors` with keys
//!   `base_model.model.<module path>.lora_{A,B}.weight` and an `adapter_config.json` that PEFT's
//!   `PeftModel.from_pretrained` accepts.

use super::frozen_linear::FrozenLinear;
use super::lora_op::FusedLora;
use crate::error::{Context, Result, WotdError};
use candle_core::{DType, Device, Tensor, Var};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;

/// Weights file of a PEFT adapter directory.
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
/// Config file of a PEFT adapter directory.
pub const ADAPTER_CONFIG: &str = "adapter_config.json";
/// Prefix PEFT puts before a module path in adapter files (`PeftModelForCausalLM.base_model.model`).
pub const PEFT_PREFIX: &str = "base_model.model.";

/// A small seeded generator (xoshiro256++ seeded through SplitMix64) whose whole state is four
/// words, so checkpoints can store it and sampling/dropout replay exactly after a resume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeededRng {
    s: [u64; 4],
}

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        SeededRng { s: [next(), next(), next(), next()] }
    }

    /// An independent stream `stream` of `seed` (one per module, per batch row, ...), so adding
    /// a consumer never shifts the numbers another one sees.
    pub fn derive(seed: u64, stream: u64) -> Self {
        SeededRng::new(seed ^ stream.wrapping_add(1).wrapping_mul(0xD1B5_4A32_D192_ED03).rotate_left(17))
    }

    pub fn from_state(s: [u64; 4]) -> Self {
        SeededRng { s }
    }

    pub fn state(&self) -> [u64; 4] {
        self.s
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let out = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }

    /// Uniform in `[0, 1)` with 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[0, 1)` with 24 bits.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u32 << 24) as f32)
    }
}

/// Which modules get an adapter and how it is shaped.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraConfig {
    pub r: usize,
    pub alpha: f64,
    /// Dropout on the adapter's input during training (0 disables it).
    pub dropout: f64,
    /// Module names (PEFT matching: equal to the module path or its last components), or
    /// `["all-linear"]`. Empty means the architecture's default: every attention and MLP
    /// projection.
    pub target_modules: Vec<String>,
    /// rsLoRA scaling `alpha / sqrt(r)` instead of `alpha / r`.
    pub use_rslora: bool,
    /// Seed of the initialisation of `A` (and of the dropout stream).
    pub seed: u64,
}

impl Default for LoraConfig {
    fn default() -> Self {
        LoraConfig { r: 8, alpha: 16.0, dropout: 0.05, target_modules: Vec::new(), use_rslora: false, seed: 0 }
    }
}

impl LoraConfig {
    pub fn scale(&self) -> f64 {
        if self.use_rslora {
            self.alpha / (self.r as f64).sqrt()
        } else {
            self.alpha / self.r as f64
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.r == 0 {
            return Err(WotdError::InvalidInput("LoRA rank r must be at least 1".into()));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(WotdError::InvalidInput(format!("LoRA dropout must be in [0, 1), got {}", self.dropout)));
        }
        if !self.alpha.is_finite() {
            return Err(WotdError::InvalidInput(format!("LoRA alpha must be finite, got {}", self.alpha)));
        }
        Ok(())
    }

    /// Whether the module at `path` (e.g. `model.layers.0.self_attn.q_proj`) is targeted, given
    /// the architecture's defaults for an empty target list. Only projections inside the blocks
    /// are ever asked, so `all-linear` (like PEFT's) never reaches the LM head.
    pub fn targets(&self, path: &str, defaults: &[&str]) -> bool {
        let matches = |t: &str| path == t || path.ends_with(&format!(".{t}"));
        if self.target_modules.is_empty() {
            defaults.iter().any(|t| matches(t))
        } else if self.target_modules.iter().any(|t| t == "all-linear") {
            true
        } else {
            self.target_modules.iter().any(|t| matches(t))
        }
    }

    /// Reads PEFT's `adapter_config.json`, refusing features this implementation does not have
    /// rather than silently computing something else.
    pub fn from_peft_json(v: &Value) -> Result<Self> {
        let get = |k: &str| v.get(k).filter(|x| !x.is_null());
        if let Some(t) = get("peft_type").and_then(Value::as_str) {
            if t != "LORA" {
                return Err(WotdError::Unsupported(format!("adapter type {t:?} (only LORA)")));
            }
        }
        let flag = |k: &str| get(k).and_then(Value::as_bool).unwrap_or(false);
        let nonempty = |k: &str| match get(k) {
            None => false,
            Some(Value::Object(m)) => !m.is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            Some(_) => true,
        };
        for k in ["use_dora", "fan_in_fan_out", "lora_bias", "use_qalora"] {
            if flag(k) {
                return Err(WotdError::Unsupported(format!("LoRA adapter with {k} = true")));
            }
        }
        for k in ["rank_pattern", "alpha_pattern", "modules_to_save", "layers_to_transform", "trainable_token_indices"] {
            if nonempty(k) {
                return Err(WotdError::Unsupported(format!("LoRA adapter with {k}")));
            }
        }
        if let Some(b) = get("bias").and_then(Value::as_str) {
            if b != "none" {
                return Err(WotdError::Unsupported(format!("LoRA bias = {b:?} (only \"none\")")));
            }
        }
        let r = get("r").and_then(Value::as_u64).ok_or_else(|| WotdError::InvalidInput("adapter config has no r".into()))?;
        let alpha = get("lora_alpha").and_then(Value::as_f64).unwrap_or(8.0);
        let target_modules = match get("target_modules") {
            Some(Value::Array(a)) => a.iter().map(|t| t.as_str().map(String::from)).collect::<Option<Vec<_>>>().ok_or_else(|| {
                WotdError::InvalidInput("adapter target_modules must be strings".into())
            })?,
            Some(Value::String(s)) if s == "all-linear" => vec![s.clone()],
            Some(Value::String(s)) => {
                return Err(WotdError::Unsupported(format!("target_modules as a regular expression ({s:?})")))
            }
            _ => Vec::new(),
        };
        let cfg = LoraConfig {
            r: r as usize,
            alpha,
            dropout: get("lora_dropout").and_then(Value::as_f64).unwrap_or(0.0),
            target_modules,
            use_rslora: flag("use_rslora"),
            seed: 0,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// PEFT's `adapter_config.json` for this adapter. `targets` are the module names actually
    /// adapted (written explicitly, so PEFT does not need our defaults).
    pub fn to_peft_json(&self, base_model: &str, targets: &[String]) -> Value {
        // An integral alpha is written as an integer, as PEFT itself writes it.
        let alpha = if self.alpha.fract() == 0.0 && self.alpha.abs() < 1e15 { json!(self.alpha as i64) } else { json!(self.alpha) };
        json!({
            "alpha_pattern": {},
            "auto_mapping": null,
            "base_model_name_or_path": base_model,
            "bias": "none",
            "fan_in_fan_out": false,
            "inference_mode": true,
            "init_lora_weights": true,
            "layers_pattern": null,
            "layers_to_transform": null,
            "lora_alpha": alpha,
            "lora_dropout": self.dropout,
            "modules_to_save": null,
            "peft_type": "LORA",
            "r": self.r,
            "rank_pattern": {},
            "revision": null,
            "target_modules": targets,
            "task_type": "CAUSAL_LM",
            "use_dora": false,
            "use_rslora": self.use_rslora,
        })
    }
}

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

/// Inverted dropout: zero with probability `p`, scale survivors by `1 / (1 - p)`.
#[cfg(test)]
fn dropout(x: &Tensor, p: f64, rng: &Mutex<SeededRng>) -> Result<Tensor> {
    let mask = DropoutMask::draw(x.elem_count(), p, &mut rng.lock().unwrap()).values();
    Ok((x * Tensor::from_vec(mask, x.shape(), x.device())?)?)
}

/// An inverted-dropout mask of `n` elements (0 with probability `p`, else `1 / (1 - p)`) kept
/// as one bit per element: `n / 8` bytes where the float mask took `4n`, so the graph of a
/// training step can hold a mask per adapted projection until the backward pass, which applies
/// the same bits instead of drawing them again. Each 64-bit draw decides four elements (16 bits
/// each, so `p` is resolved to 1/65536): masks are drawn for every adapted projection of every
/// step, and one draw per element was a visible cost.
#[derive(Clone, Debug)]
pub(crate) struct DropoutMask {
    /// Bit `i % 64` of word `i / 64` set: element `i` is kept.
    keep: std::sync::Arc<[u64]>,
    n: usize,
    scale: f32,
}

impl DropoutMask {
    /// Draws the mask from `rng`.
    pub(crate) fn draw(n: usize, p: f64, rng: &mut SeededRng) -> Self {
        let keep_p = 1.0 - p;
        let threshold = (keep_p * 65536.0).round() as u64;
        let mut keep = vec![0u64; n.div_ceil(64)];
        for (w, word) in keep.iter_mut().enumerate() {
            // 16 draws of 4 elements fill a word; the last word may need fewer.
            let draws = (n - w * 64).min(64).div_ceil(4);
            let mut bits = 0u64;
            for d in 0..draws {
                let r = rng.next_u64();
                for k in 0..4 {
                    bits |= u64::from((r >> (16 * k)) & 0xFFFF < threshold) << (4 * d + k);
                }
            }
            // Bits past `n` stay clear.
            if n - w * 64 < 64 {
                bits &= (1u64 << (n - w * 64)) - 1;
            }
            *word = bits;
        }
        DropoutMask { keep: keep.into(), n, scale: (1.0 / keep_p) as f32 }
    }

    pub(crate) fn len(&self) -> usize {
        self.n
    }

    /// `out[i] = x[i] * mask[offset + i]`.
    #[inline(always)]
    pub(crate) fn apply(&self, offset: usize, x: &[f32], out: &mut [f32]) {
        assert_eq!(x.len(), out.len());
        self.check(offset, out.len());
        if offset % 64 == 0 {
            let words = &self.keep[offset / 64..];
            let (mut xc, mut oc) = (x.chunks_exact(64), out.chunks_exact_mut(64));
            for ((x, o), &w) in (&mut xc).zip(&mut oc).zip(words) {
                let f = self.factors(w);
                o.iter_mut().zip(x).zip(&f).for_each(|((o, &x), &f)| *o = x * f);
            }
            let done = x.len() / 64 * 64;
            for (i, (o, &x)) in oc.into_remainder().iter_mut().zip(xc.remainder()).enumerate() {
                *o = x * self.factor(offset + done + i);
            }
        } else {
            for (i, (o, &x)) in out.iter_mut().zip(x).enumerate() {
                *o = x * self.factor(offset + i);
            }
        }
    }

    /// `v[i] *= mask[offset + i]`.
    #[inline(always)]
    pub(crate) fn apply_in_place(&self, offset: usize, v: &mut [f32]) {
        self.check(offset, v.len());
        if offset % 64 == 0 {
            let words = &self.keep[offset / 64..];
            let done = offset + v.len() / 64 * 64;
            let mut vc = v.chunks_exact_mut(64);
            for (v, &w) in (&mut vc).zip(words) {
                let f = self.factors(w);
                v.iter_mut().zip(&f).for_each(|(v, &f)| *v *= f);
            }
            for (i, v) in vc.into_remainder().iter_mut().enumerate() {
                *v *= self.factor(done + i);
            }
        } else {
            for (i, v) in v.iter_mut().enumerate() {
                *v *= self.factor(offset + i);
            }
        }
    }

    fn check(&self, offset: usize, len: usize) {
        assert!(offset + len <= self.n, "dropout mask of {} elements read at {offset}..{}", self.n, offset + len);
    }

    /// The factor of element `i`: the survivors' scale or 0.
    #[inline(always)]
    fn factor(&self, i: usize) -> f32 {
        if (self.keep[i / 64] >> (i % 64)) & 1 == 1 {
            self.scale
        } else {
            0.0
        }
    }

    /// The factors of the 64 elements of one word, without branches (so the loop vectorises):
    /// each bit widened to an all-ones or all-zeros 32-bit mask over the scale's bits.
    #[inline(always)]
    fn factors(&self, word: u64) -> [f32; 64] {
        let s = self.scale.to_bits();
        let (lo, hi) = (word as u32, (word >> 32) as u32);
        let mut f = [0f32; 64];
        let (a, b) = f.split_at_mut(32);
        for (bit, (fa, fb)) in a.iter_mut().zip(b.iter_mut()).enumerate() {
            *fa = f32::from_bits(s & 0u32.wrapping_sub((lo >> bit) & 1));
            *fb = f32::from_bits(s & 0u32.wrapping_sub((hi >> bit) & 1));
        }
        f
    }

    /// The mask as floats (tests compare with composed ops).
    #[cfg(test)]
    pub(crate) fn values(&self) -> Vec<f32> {
        let ones = vec![1f32; self.n];
        let mut out = vec![0f32; self.n];
        self.apply(0, &ones, &mut out);
        out
    }
}

/// PEFT file keys of the adapter on module `path`.
pub fn peft_keys(path: &str) -> (String, String) {
    (format!("{PEFT_PREFIX}{path}.lora_A.weight"), format!("{PEFT_PREFIX}{path}.lora_B.weight"))
}

/// Writes a PEFT adapter directory. Files are written to temporaries and renamed, weights first,
/// so a reader never sees a config that points at missing or partial weights.
pub fn save_peft_adapter(dir: &Path, cfg: &LoraConfig, base_model: &str, layers: &[&LoraLinear]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| WotdError::io(dir, e))?;
    let mut tensors: BTreeMap<String, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    let mut targets: Vec<String> = Vec::new();
    for layer in layers {
        let Some(ad) = layer.adapter() else { continue };
        let (ka, kb) = peft_keys(layer.path());
        for (key, var) in [(ka, &ad.a), (kb, &ad.b)] {
            let t = var.as_tensor();
            let data: Vec<f32> = t.flatten_all()?.to_vec1()?;
            let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
            tensors.insert(key, (t.dims().to_vec(), bytes));
        }
        let name = layer.path().rsplit('.').next().unwrap_or(layer.path()).to_string();
        if !targets.contains(&name) {
            targets.push(name);
        }
    }
    if tensors.is_empty() {
        return Err(WotdError::InvalidInput("the model has no adapter to save".into()));
    }
    targets.sort();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(k, (shape, bytes))| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|v| (k.clone(), v))
                .map_err(|e| WotdError::InvalidInput(format!("adapter tensor {k}: {e}")))
        })
        .collect::<Result<_>>()?;
    // transformers refuses safetensors files without format metadata.
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    let weights = dir.join(ADAPTER_WEIGHTS);
    let tmp = dir.join(format!(".{ADAPTER_WEIGHTS}.tmp"));
    safetensors::serialize_to_file(views, Some(meta), &tmp)
        .map_err(|e| WotdError::Io { path: tmp.clone(), source: std::io::Error::other(e.to_string()) })?;
    std::fs::rename(&tmp, &weights).map_err(|e| WotdError::io(&weights, e))?;
    let config = dir.join(ADAPTER_CONFIG);
    let tmp = dir.join(format!(".{ADAPTER_CONFIG}.tmp"));
    let text = serde_json::to_string_pretty(&cfg.to_peft_json(base_model, &targets)).expect("JSON values serialize");
    std::fs::write(&tmp, text + "\n").map_err(|e| WotdError::io(&tmp, e))?;
    std::fs::rename(&tmp, &config).map_err(|e| WotdError::io(&config, e))?;
    Ok(())
}

/// A PEFT adapter read from disk: its config and `(A, B)` per module path.
#[derive(Clone, Debug)]
pub struct PeftAdapter {
    pub config: LoraConfig,
    pub base_model: Option<String>,
    pub weights: BTreeMap<String, (Tensor, Tensor)>,
}

/// Reads `adapter_config.json` + `adapter_model.safetensors` from `dir`. Keys may carry PEFT's
/// adapter name (`.lora_A.default.weight`); every module must have both `A` and `B`.
pub fn read_peft_adapter(dir: &Path) -> Result<PeftAdapter> {
    let cfg_path = dir.join(ADAPTER_CONFIG);
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| WotdError::io(&cfg_path, e))?;
    let json: Value =
        serde_json::from_str(&text).map_err(|e| WotdError::corrupt(&cfg_path, format!("invalid JSON: {e}")))?;
    let config = LoraConfig::from_peft_json(&json).context(|| format!("reading {}", cfg_path.display()))?;
    let base_model = json.get("base_model_name_or_path").and_then(Value::as_str).map(String::from);
    let wpath = dir.join(ADAPTER_WEIGHTS);
    let raw = crate::io::load_safetensors(&wpath, crate::io::IntegerTensors::Skip)?;
    let mut a_map: BTreeMap<String, Tensor> = BTreeMap::new();
    let mut b_map: BTreeMap<String, Tensor> = BTreeMap::new();
    for (key, t) in raw {
        let stem = key.strip_prefix(PEFT_PREFIX).unwrap_or(&key);
        let stem = stem.strip_suffix(".weight").unwrap_or(stem);
        let stem = stem.strip_suffix(".default").unwrap_or(stem);
        if let Some(path) = stem.strip_suffix(".lora_A") {
            a_map.insert(path.to_string(), t);
        } else if let Some(path) = stem.strip_suffix(".lora_B") {
            b_map.insert(path.to_string(), t);
        } else {
            return Err(WotdError::Unsupported(format!("{}: tensor {key:?} is not a LoRA A/B weight", wpath.display())));
        }
    }
    let mut weights = BTreeMap::new();
    for (path, a) in a_map {
        let b = b_map
            .remove(&path)
            .ok_or_else(|| WotdError::corrupt(&wpath, format!("{path} has lora_A but no lora_B")))?;
        if a.dims().first() != Some(&config.r) {
            return Err(WotdError::corrupt(&wpath, format!("{path}.lora_A is {:?}, config says r = {}", a.dims(), config.r)));
        }
        weights.insert(path, (a, b));
    }
    if let Some(path) = b_map.keys().next() {
        return Err(WotdError::corrupt(&wpath, format!("{path} has lora_B but no lora_A")));
    }
    if weights.is_empty() {
        return Err(WotdError::corrupt(&wpath, "no LoRA weights"));
    }
    Ok(PeftAdapter { config, base_model, weights })
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

    #[test]
    fn dropout_bits_apply_the_drawn_decisions_at_any_offset() {
        // The draw consumes one 64-bit number per four elements, as before bits were kept.
        let mut rng = SeededRng::new(11);
        let mask = DropoutMask::draw(1000, 0.3, &mut rng);
        let mut replay = SeededRng::new(11);
        (0..250).for_each(|_| {
            replay.next_u64();
        });
        assert_eq!(rng.state(), replay.state());
        let values = mask.values();
        let threshold = (0.7f64 * 65536.0).round() as u64;
        let mut check = SeededRng::new(11);
        for e in (0..1000).step_by(4) {
            let r = check.next_u64();
            for k in 0..4 {
                let keep = (r >> (16 * k)) & 0xFFFF < threshold;
                assert_eq!(values[e + k], if keep { (1.0 / 0.7f64) as f32 } else { 0.0 }, "element {}", e + k);
            }
        }
        let x: Vec<f32> = (0..1000).map(|i| i as f32 - 300.0).collect();
        for (offset, len) in [(0, 1000), (64, 640), (3, 200), (128, 70), (990, 10), (0, 0)] {
            let mut out = vec![f32::NAN; len];
            mask.apply(offset, &x[offset..offset + len], &mut out);
            let mut inplace = x[offset..offset + len].to_vec();
            mask.apply_in_place(offset, &mut inplace);
            for i in 0..len {
                assert_eq!(out[i], x[offset + i] * values[offset + i]);
                assert_eq!(inplace[i], out[i]);
            }
        }
    }

    #[test]
    fn dropout_is_seeded_and_unbiased_in_scale() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::ones((100, 100), DType::F32, &dev)?;
        let m1 = dropout(&x, 0.25, &Mutex::new(SeededRng::new(3)))?;
        let m2 = dropout(&x, 0.25, &Mutex::new(SeededRng::new(3)))?;
        assert_eq!(m1.to_vec2::<f32>()?, m2.to_vec2::<f32>()?);
        let v = m1.flatten_all()?.to_vec1::<f32>()?;
        let zeros = v.iter().filter(|x| **x == 0.0).count();
        assert!((2200..2800).contains(&zeros), "{zeros}");
        assert!(v.iter().all(|x| *x == 0.0 || (*x - 4.0 / 3.0).abs() < 1e-6));
        Ok(())
    }

    #[test]
    fn peft_config_round_trips_and_rejects_unsupported_features() -> Result<()> {
        let cfg = LoraConfig { r: 4, alpha: 8.0, dropout: 0.1, target_modules: vec!["q_proj".into()], use_rslora: false, seed: 0 };
        let json = cfg.to_peft_json("base", &["q_proj".to_string()]);
        assert_eq!(LoraConfig::from_peft_json(&json)?, cfg);
        let mut dora = json.clone();
        dora["use_dora"] = json!(true);
        assert_eq!(LoraConfig::from_peft_json(&dora).unwrap_err().code(), "UNSUPPORTED");
        let mut pattern = json.clone();
        pattern["rank_pattern"] = json!({"q_proj": 8});
        assert!(LoraConfig::from_peft_json(&pattern).is_err());
        assert!(cfg.targets("model.layers.3.self_attn.q_proj", &[]));
        assert!(!cfg.targets("model.layers.3.self_attn.k_proj", &[]));
        assert!(!cfg.targets("model.layers.3.self_attn.xq_proj", &[]));
        let all = LoraConfig { target_modules: vec![], ..cfg };
        assert!(all.targets("model.layers.0.mlp.down_proj", &["down_proj"]));
        Ok(())
    }
}
