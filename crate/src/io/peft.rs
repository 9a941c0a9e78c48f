//! PEFT's adapter files, read and written so adapters move between this crate and Python PEFT
//! unchanged: `adapter_model.safetensors` with keys
//! `base_model.model.<module path>.lora_{A,B}.weight`, and an `adapter_config.json` that
//! `PeftModel.from_pretrained` accepts ([`LoraConfig`] is what it says).

use crate::error::{Context, Result, WotdError};
use candle_core::Tensor;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Weights file of a PEFT adapter directory.
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
/// Config file of a PEFT adapter directory.
pub const ADAPTER_CONFIG: &str = "adapter_config.json";
/// Prefix PEFT puts before a module path in adapter files (`PeftModelForCausalLM.base_model.model`).
pub const PEFT_PREFIX: &str = "base_model.model.";

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

/// PEFT file keys of the adapter on module `path`.
pub fn peft_keys(path: &str) -> (String, String) {
    (format!("{PEFT_PREFIX}{path}.lora_A.weight"), format!("{PEFT_PREFIX}{path}.lora_B.weight"))
}

/// One adapted module as PEFT stores it: its path in the model and its `A` (`[r, in]`) and
/// `B` (`[out, r]`) weights.
pub struct ModuleWeights<'a> {
    pub path: &'a str,
    pub a: &'a Tensor,
    pub b: &'a Tensor,
}

/// Writes a PEFT adapter directory. Each file appears whole (`io::atomic`), weights first, so a
/// reader never sees a config that points at missing or partial weights.
pub fn save_peft_adapter(dir: &Path, cfg: &LoraConfig, base_model: &str, modules: &[ModuleWeights<'_>]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| WotdError::io(dir, e))?;
    let mut tensors: BTreeMap<String, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    let mut targets: Vec<String> = Vec::new();
    for m in modules {
        let (ka, kb) = peft_keys(m.path);
        for (key, t) in [(ka, m.a), (kb, m.b)] {
            let data: Vec<f32> = t.flatten_all()?.to_vec1()?;
            let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
            tensors.insert(key, (t.dims().to_vec(), bytes));
        }
        let name = m.path.rsplit('.').next().unwrap_or(m.path).to_string();
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
    super::atomic::write_file_with(&dir.join(ADAPTER_WEIGHTS), |tmp| {
        safetensors::serialize_to_file(views, Some(meta), tmp)
            .map_err(|e| WotdError::Io { path: tmp.to_path_buf(), source: std::io::Error::other(e.to_string()) })
    })?;
    let text = serde_json::to_string_pretty(&cfg.to_peft_json(base_model, &targets)).expect("JSON values serialize");
    super::atomic::write_file(&dir.join(ADAPTER_CONFIG), (text + "\n").as_bytes())
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
    let raw = super::load_safetensors(&wpath, super::IntegerTensors::Skip)?;
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
