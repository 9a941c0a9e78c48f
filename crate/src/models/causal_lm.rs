//! Decoder-only language models (Llama, Phi-3) with LoRA, as one type: [`CausalLm`].
//!
//! # API (what training and generation build on)
//!
//! ```text
//! // loading (f32 weights; GGUF dequantized by io)
//! CausalLm::load(&ModelFiles, Option<LoraConfig>) -> Result<CausalLm>
//! CausalLm::load_path(&Path, Option<LoraConfig>) -> Result<CausalLm>     // dir or weight file
//! CausalLm::load_resolved(&io::Resolved, Option<LoraConfig>) -> Result<CausalLm>
//! CausalLm::from_parts(&serde_json::Value /*config.json*/, HashMap<String, Tensor>,
//!                      Option<TextTokenizer>, Option<LoraConfig>) -> Result<CausalLm>
//! .config() -> &DecoderConfig      .tokenizer() -> Option<&TextTokenizer>      .device()
//!
//! // forward: input_ids [b, t] (u32 or i64), attention_mask [b, t] (non-zero = real token,
//! // only for the t tokens passed; the cache remembers earlier ones), logits [b, t, vocab]
//! .forward(&ids, Option<&mask>, Option<&mut KvCache>) -> Result<Tensor>
//!     // without a cache the graph through the LoRA vars is recorded (training);
//!     // with a cache nothing is recorded (generation)
//! .forward_no_grad(&ids, Option<&mask>, Option<&mut KvCache>) -> Result<Tensor>
//! .forward_train(&ids, &mask, &Mutex<SeededRng>) -> Result<Tensor>  // graph + LoRA dropout from the given stream
//! .forward_eval(&ids, &mask) -> Result<Tensor>                      // no graph, no dropout
//! .final_hidden_train(&ids, &mask, &Mutex<SeededRng>) -> Result<Tensor>  // forward_train before the LM head
//! .final_hidden(&ids, Option<&mask>, Option<&mut KvCache>) -> Result<Tensor>  // [b, t, hidden]
//! .final_hidden_no_grad(&ids, Option<&mask>, Option<&mut KvCache>) -> Result<Tensor>
//! .lm_head(&hidden) -> Result<Tensor>                                         // -> logits
//! .new_cache() -> KvCache
//! .set_training(bool)   // LoRA dropout from the model's own stream in `forward`/`final_hidden`
//! .set_gradient_checkpointing(n)   // recompute every n-th layer in the backward pass (0: off)
//! .backward(&loss) -> Result<GradStore>  // loss.backward() + checkpointed layers' LoRA grads
//!
//! // LoRA
//! .add_adapter(LoraConfig) -> Result<()>           // fresh PEFT init (A kaiming-uniform, B 0)
//! .adapter_config() -> Option<&LoraConfig>
//! .lora_vars() -> Vec<(String /*PEFT file key*/, Var)>   // in model order, A then B
//! .save_adapter(&Path) -> Result<()>               // adapter_model.safetensors + adapter_config.json
//! .load_adapter(&Path) -> Result<()>               // replaces any adapter
//! .merge_adapter() -> Result<usize>                // W += scale B A, adapters dropped
//! .remove_adapter() -> Option<LoraConfig>
//! .dropout_rng_state() / .set_dropout_rng_state([u64; 4])   // for exact resume
//! .base_tensors() -> Vec<(String /*HF name*/, Tensor)>       // every frozen tensor
//! ```
//!
//! Position ids count real tokens only (`cumsum(mask) - 1`, transformers' generation rule), so
//! left-padded batches decode like unpadded prompts and right-padded training batches match
//! transformers' default `arange` positions on every real token.

use super::layer_checkpoint::{checkpointed_forward, GradSink};
use super::decoder::{Architecture, DecoderConfig, DecoderLayer, WeightMap};
use super::{llama, phi3};
use crate::error::{Context, Result, WotdError};
use crate::io::{ModelFiles, Resolved, TextTokenizer, TokenizerSource};
use crate::nn::causal_attention::{plan_step, AttentionContext};
use crate::nn::frozen_linear::FrozenLinear;
use crate::nn::kv_cache::KvCache;
use crate::io::peft::{self, LoraConfig, ModuleWeights};
use crate::nn::lora::{LoraAdapter, LoraLinear, LoraMode};
use crate::random::SeededRng;
use crate::nn::rms_norm::RmsNorm;
use crate::nn::rotary::RotaryEmbedding;
use crate::nn::Embedding;
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Mutex;

// The family-specific halves of the shared decoder types: here, above the families, so the
// families depend on `decoder` and nothing depends back on them.
impl Architecture {
    /// PEFT target names of every attention and MLP projection: the default LoRA targets.
    pub fn default_lora_targets(self) -> &'static [&'static str] {
        match self {
            Architecture::Llama => llama::DEFAULT_LORA_TARGETS,
            Architecture::Phi3 => phi3::DEFAULT_LORA_TARGETS,
        }
    }
}

impl DecoderConfig {
    /// Parses any supported decoder config.
    pub fn from_hf(config: &Value) -> Result<Self> {
        match Architecture::from_hf(config)? {
            Architecture::Llama => llama::config(config),
            Architecture::Phi3 => phi3::config(config),
        }
    }
}



/// A decoder-only LM: embeddings, blocks, final norm, LM head, optional LoRA adapter.
pub struct CausalLm {
    config: DecoderConfig,
    embed: Embedding,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    lm_head: FrozenLinear,
    rope: RotaryEmbedding,
    tokenizer: Option<TextTokenizer>,
    adapter: Option<LoraConfig>,
    dropout_rng: Mutex<SeededRng>,
    training: bool,
    /// Every how many layers one is recomputed in the backward pass instead of keeping its
    /// activations ([`super::layer_checkpoint`]); 0 never.
    checkpoint_every: usize,
    grad_sink: GradSink,
    base_model: String,
    device: Device,
}

impl std::fmt::Debug for CausalLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CausalLm")
            .field("architecture", &self.config.architecture)
            .field("layers", &self.layers.len())
            .field("hidden", &self.config.hidden_size)
            .field("adapter", &self.adapter)
            .finish()
    }
}

impl CausalLm {
    /// Loads weights, config and tokenizer of a resolved model directory.
    pub fn load(files: &ModelFiles, lora: Option<LoraConfig>) -> Result<Self> {
        let what = || format!("loading decoder from {}", files.dir.display());
        let weights = files.load_weights().context(what)?;
        let tokenizer = match files.tokenizer {
            TokenizerSource::None => None,
            _ => Some(files.load_tokenizer().context(what)?),
        };
        let mut m = Self::from_parts(&files.config, weights, tokenizer, lora).context(what)?;
        m.base_model = files.dir.display().to_string();
        Ok(m)
    }

    /// A model directory or a weight file (`.safetensors`, `.gguf`).
    pub fn load_path(path: &Path, lora: Option<LoraConfig>) -> Result<Self> {
        Self::load(&ModelFiles::open(path)?, lora)
    }

    /// A model found by `io::resolve`; its id is what saved adapters name as their base.
    pub fn load_resolved(resolved: &Resolved, lora: Option<LoraConfig>) -> Result<Self> {
        let mut m = Self::load_path(resolved.file.as_deref().unwrap_or(&resolved.dir), lora)?;
        m.base_model = resolved.id.clone();
        Ok(m)
    }

    /// From an HF config and f32 tensors under HF names.
    pub fn from_parts(
        config: &Value,
        weights: HashMap<String, Tensor>,
        tokenizer: Option<TextTokenizer>,
        lora: Option<LoraConfig>,
    ) -> Result<Self> {
        let cfg = DecoderConfig::from_hf(config)?;
        let mut w = WeightMap::new(weights);
        let embed_w = w.take("model.embed_tokens.weight")?;
        let device = embed_w.device().clone();
        let (_, width) = embed_w.dims2()?;
        if width != cfg.hidden_size {
            return Err(WotdError::InvalidInput(format!("embedding {:?} does not fit hidden size {}", embed_w.dims(), cfg.hidden_size)));
        }
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            layers.push(match cfg.architecture {
                Architecture::Llama => llama::layer(i, &cfg, &mut w)?,
                Architecture::Phi3 => phi3::layer(i, &cfg, &mut w)?,
            });
        }
        let norm = RmsNorm::new(w.take("model.norm.weight")?, cfg.rms_norm_eps)?;
        let lm_head = if cfg.tie_word_embeddings {
            // A tied checkpoint may still store a copy; the tie is what transformers uses.
            let _ = w.take("lm_head.weight");
            FrozenLinear::new(embed_w.clone(), None)?
        } else {
            FrozenLinear::new(w.take("lm_head.weight")?, None)?
        };
        w.finish()?;
        let rope = RotaryEmbedding::new(&cfg.rotary)?;
        let mut model = CausalLm {
            embed: Embedding::new(embed_w)?,
            layers,
            norm,
            lm_head,
            rope,
            tokenizer,
            adapter: None,
            dropout_rng: Mutex::new(SeededRng::new(0)),
            training: false,
            checkpoint_every: 0,
            grad_sink: GradSink::default(),
            base_model: String::new(),
            device,
            config: cfg,
        };
        if let Some(l) = lora {
            model.add_adapter(l)?;
        }
        Ok(model)
    }

    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }

    pub fn tokenizer(&self) -> Option<&TextTokenizer> {
        self.tokenizer.as_ref()
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The base model name written into saved adapter configs.
    pub fn base_model_name(&self) -> &str {
        &self.base_model
    }

    pub fn set_base_model_name(&mut self, name: impl Into<String>) {
        self.base_model = name.into();
    }

    /// Turns LoRA dropout on or off for graph-recording forwards.
    pub fn set_training(&mut self, training: bool) {
        self.training = training;
    }

    pub fn is_training(&self) -> bool {
        self.training
    }

    /// Activation checkpointing for recorded forwards: layers 0, n, 2n, ... keep only their
    /// input and are recomputed in the backward pass (one extra forward of those layers for
    /// their activation memory); `n = 0` turns it off, `n = 1` checkpoints every layer.
    /// Gradients of LoRA weights then arrive through [`CausalLm::backward`], not
    /// `loss.backward()` alone.
    pub fn set_gradient_checkpointing(&mut self, every_n_layers: usize) {
        self.checkpoint_every = every_n_layers;
    }

    pub fn gradient_checkpointing(&self) -> usize {
        self.checkpoint_every
    }

    /// `loss.backward()` plus the LoRA gradients found while recomputing checkpointed layers.
    pub fn backward(&self, loss: &Tensor) -> Result<GradStore> {
        self.grad_sink.clear();
        let mut grads = loss.backward()?;
        self.grad_sink.drain_into(&mut grads)?;
        Ok(grads)
    }

    /// An empty cache for this model.
    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.layers.len())
    }

    /// Logits `[b, t, vocab]` for every position. Records the backward graph through the LoRA
    /// vars when no cache is given; a cached call is inference and records nothing.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>, cache: Option<&mut KvCache>) -> Result<Tensor> {
        let track = cache.is_none();
        let h = self.run(input_ids, attention_mask, cache, track)?;
        self.lm_head(&h)
    }

    /// [`CausalLm::forward`] that never records a graph (evaluation, uncached generation).
    pub fn forward_no_grad(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>, cache: Option<&mut KvCache>) -> Result<Tensor> {
        let h = self.run(input_ids, attention_mask, cache, false)?;
        self.lm_head(&h)
    }

    /// Final-norm hidden states `[b, t, hidden]` (the LM head's input); graph rule as `forward`.
    pub fn final_hidden(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>, cache: Option<&mut KvCache>) -> Result<Tensor> {
        let track = cache.is_none();
        self.run(input_ids, attention_mask, cache, track)
    }

    /// [`CausalLm::final_hidden`] that never records a graph.
    pub fn final_hidden_no_grad(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>, cache: Option<&mut KvCache>) -> Result<Tensor> {
        self.run(input_ids, attention_mask, cache, false)
    }

    /// Training forward: logits `[b, t, vocab]` with the graph through the LoRA vars recorded
    /// and LoRA dropout drawn from `dropout` (not the model's own stream), so a training loop
    /// that checkpoints its stream replays the same masks after a resume.
    pub fn forward_train(&self, input_ids: &Tensor, attention_mask: &Tensor, dropout: &Mutex<SeededRng>) -> Result<Tensor> {
        let h = self.final_hidden_train(input_ids, attention_mask, dropout)?;
        self.lm_head(&h)
    }

    /// [`CausalLm::forward_train`] stopped before the LM head: `[b, t, hidden]`, graph recorded,
    /// LoRA dropout from `dropout`. A loss that needs only some positions' logits projects just
    /// those rows (see `train::causal`).
    pub fn final_hidden_train(&self, input_ids: &Tensor, attention_mask: &Tensor, dropout: &Mutex<SeededRng>) -> Result<Tensor> {
        self.run_inner(input_ids, Some(attention_mask), None, LoraMode { track_grad: true, dropout: Some(dropout) }, None)
    }

    /// Evaluation forward: no dropout, no graph.
    pub fn forward_eval(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        self.forward_no_grad(input_ids, Some(attention_mask), None)
    }

    /// Projects hidden states (any leading shape) to vocabulary logits.
    pub fn lm_head(&self, hidden: &Tensor) -> Result<Tensor> {
        self.lm_head.forward(hidden)
    }


    /// Every transformer block's output plus embeddings and final norm, for parity checks:
    /// `[embeddings, layer 0, ..., layer n-1, final_norm]`, no graph.
    pub fn trace(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Vec<Tensor>> {
        let mut out = Vec::new();
        self.run_inner(input_ids, attention_mask, None, LoraMode::INFERENCE, Some(&mut out))?;
        Ok(out)
    }

    fn run(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>, cache: Option<&mut KvCache>, track: bool) -> Result<Tensor> {
        let dropout = if self.training && track { Some(&self.dropout_rng) } else { None };
        self.run_inner(input_ids, attention_mask, cache, LoraMode { track_grad: track, dropout }, None)
    }

    fn run_inner(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        mut cache: Option<&mut KvCache>,
        lora_mode: LoraMode<'_>,
        mut trace: Option<&mut Vec<Tensor>>,
    ) -> Result<Tensor> {
        let ids = if input_ids.dtype() == DType::U32 { input_ids.clone() } else { input_ids.to_dtype(DType::U32)? };
        let (b, t) = ids
            .dims2()
            .map_err(|_| WotdError::InvalidInput(format!("input_ids must be [batch, time], got {:?}", input_ids.dims())))?;
        if t == 0 {
            return Err(WotdError::InvalidInput("input_ids has no tokens".into()));
        }
        let new_valid = attention_mask.map(|m| mask_rows(m, b, t)).transpose()?;
        let plan = {
            let (past_valid, past_next): (&[Vec<bool>], &[i64]) = match cache.as_deref() {
                Some(c) => {
                    if c.num_layers() != self.layers.len() {
                        return Err(WotdError::InvalidInput(format!(
                            "KV cache has {} layers, the model {}",
                            c.num_layers(),
                            self.layers.len()
                        )));
                    }
                    (c.valid(), c.next_positions())
                }
                None => (&[], &[]),
            };
            plan_step(b, t, new_valid, past_valid, past_next, self.config.sliding_window, &self.device)?
        };
        let tables = self.rope.tables(&plan.positions, b, t, &self.device)?;
        let ctx = AttentionContext { rope: &self.rope, tables: &tables, mask: plan.mask.as_ref(), lora: lora_mode };
        let mut h = self.embed.forward(&ids)?;
        if let Some(tr) = trace.as_deref_mut() {
            tr.push(h.clone());
        }
        for (i, layer) in self.layers.iter().enumerate() {
            let kv = match cache.as_deref_mut() {
                Some(c) => Some(c.layer_mut(i)?),
                None => None,
            };
            h = if self.checkpoint_every > 0 && i % self.checkpoint_every == 0 && lora_mode.track_grad && kv.is_none() && trace.is_none() {
                checkpointed_forward(layer, &h, &ctx, &self.grad_sink)?
            } else {
                layer.forward(&h, &ctx, kv)?
            };
            if let Some(tr) = trace.as_deref_mut() {
                tr.push(h.clone());
            }
        }
        if let Some(c) = cache {
            c.commit(&plan.new_valid);
        }
        let out = self.norm.forward(&h)?;
        if let Some(tr) = trace {
            tr.push(out.clone());
        }
        Ok(out)
    }

    fn projections(&self) -> Vec<&LoraLinear> {
        self.layers.iter().flat_map(|l| l.projections()).collect()
    }

    fn projections_mut(&mut self) -> Vec<&mut LoraLinear> {
        self.layers.iter_mut().flat_map(|l| l.projections_mut()).collect()
    }

    /// Attaches a freshly initialised adapter (PEFT init: `A` kaiming-uniform, `B` zero) to every
    /// targeted projection, replacing any adapter already there. Module `k` (in model order)
    /// draws its `A` from stream `k` of `cfg.seed`.
    pub fn add_adapter(&mut self, cfg: LoraConfig) -> Result<()> {
        cfg.validate()?;
        self.remove_adapter();
        let defaults = self.config.architecture.default_lora_targets();
        let device = self.device.clone();
        let mut adapted = 0;
        for (k, p) in self.projections_mut().into_iter().enumerate() {
            if cfg.targets(p.path(), defaults) {
                let mut rng = SeededRng::derive(cfg.seed, k as u64);
                let ad = LoraAdapter::init(p.in_features(), p.out_features(), &cfg, &mut rng, &device)?;
                p.set_adapter(ad)?;
                adapted += 1;
            }
        }
        if adapted == 0 {
            return Err(WotdError::InvalidInput(format!(
                "LoRA target modules {:?} match no projection of this {:?} model",
                cfg.target_modules, self.config.architecture
            )));
        }
        self.reset_dropout(&cfg);
        self.adapter = Some(cfg);
        Ok(())
    }

    fn reset_dropout(&mut self, cfg: &LoraConfig) {
        self.dropout_rng = Mutex::new(SeededRng::derive(cfg.seed, u64::MAX));
    }

    /// Detaches every adapter; returns the config they had.
    pub fn remove_adapter(&mut self) -> Option<LoraConfig> {
        for p in self.projections_mut() {
            p.take_adapter();
        }
        self.adapter.take()
    }

    pub fn adapter_config(&self) -> Option<&LoraConfig> {
        self.adapter.as_ref()
    }

    /// The trainable weights under their PEFT file keys
    /// (`base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`), in model order. The
    /// `Var`s are shared with the model: an optimizer stepping them updates the model.
    pub fn lora_vars(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        for p in self.projections() {
            if let Some(ad) = p.adapter() {
                let (ka, kb) = peft::peft_keys(p.path());
                out.push((ka, ad.a().clone()));
                out.push((kb, ad.b().clone()));
            }
        }
        out
    }

    /// Writes the adapter as PEFT does (loadable by `PeftModel.from_pretrained`).
    pub fn save_adapter(&self, dir: &Path) -> Result<()> {
        let cfg = self.adapter.as_ref().ok_or_else(|| WotdError::InvalidInput("the model has no adapter to save".into()))?;
        let modules: Vec<ModuleWeights<'_>> = self
            .projections()
            .into_iter()
            .filter_map(|p| p.adapter().map(|ad| ModuleWeights { path: p.path(), a: ad.a().as_tensor(), b: ad.b().as_tensor() }))
            .collect();
        peft::save_peft_adapter(dir, cfg, &self.base_model, &modules)
    }

    /// Loads a PEFT adapter directory, replacing any adapter. Every module named in the file
    /// must exist here, and every module the file's config targets must be in the file.
    pub fn load_adapter(&mut self, dir: &Path) -> Result<()> {
        let peft = peft::read_peft_adapter(dir)?;
        let defaults = self.config.architecture.default_lora_targets();
        let known: BTreeSet<String> = self.projections().iter().map(|p| p.path().to_string()).collect();
        if let Some(unknown) = peft.weights.keys().find(|k| !known.contains(*k)) {
            return Err(WotdError::InvalidInput(format!("adapter in {} names module {unknown:?}, which this model lacks", dir.display())));
        }
        if let Some(missing) = known.iter().find(|p| peft.config.targets(p, defaults) && !peft.weights.contains_key(*p)) {
            return Err(WotdError::corrupt(dir.join(peft::ADAPTER_WEIGHTS), format!("no weights for targeted module {missing}")));
        }
        self.remove_adapter();
        let cfg = peft.config;
        for p in self.projections_mut() {
            if let Some((a, b)) = peft.weights.get(p.path()) {
                p.set_adapter(LoraAdapter::from_weights(a, b, cfg.scale(), cfg.dropout)?)
                    .context(|| format!("loading adapter from {}", dir.display()))?;
            }
        }
        self.reset_dropout(&cfg);
        self.adapter = Some(cfg);
        Ok(())
    }

    /// Folds the adapter into the base weights (`W + scale * B A`) for faster inference and
    /// drops it; returns how many projections were merged.
    pub fn merge_adapter(&mut self) -> Result<usize> {
        let mut n = 0;
        for p in self.projections_mut() {
            if p.adapter().is_some() {
                p.merge()?;
                n += 1;
            }
        }
        self.adapter = None;
        Ok(n)
    }

    /// State of the LoRA dropout stream (for checkpoints).
    pub fn dropout_rng_state(&self) -> [u64; 4] {
        self.dropout_rng.lock().map(|r| r.state()).unwrap_or([0; 4])
    }

    pub fn set_dropout_rng_state(&mut self, state: [u64; 4]) {
        self.dropout_rng = Mutex::new(SeededRng::from_state(state));
    }

    /// Every frozen tensor under its HF name (after a merge: the merged weights). A tied LM head
    /// is listed as `lm_head.weight` too; `config().tie_word_embeddings` says it is the embedding.
    pub fn base_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("model.embed_tokens.weight".to_string(), self.embed.weight().clone())];
        for (i, l) in self.layers.iter().enumerate() {
            out.push((format!("model.layers.{i}.input_layernorm.weight"), l.input_layernorm.weight().clone()));
            out.push((format!("model.layers.{i}.post_attention_layernorm.weight"), l.post_attention_layernorm.weight().clone()));
            for p in l.projections() {
                out.push((format!("{}.weight", p.path()), p.base().weight().clone()));
                if let Some(b) = p.base().bias() {
                    out.push((format!("{}.bias", p.path()), b.clone()));
                }
            }
        }
        out.push(("model.norm.weight".to_string(), self.norm.weight().clone()));
        out.push(("lm_head.weight".to_string(), self.lm_head.weight().clone()));
        out
    }
}

/// `[b][t]` validity from a numeric mask (non-zero = real token).
fn mask_rows(mask: &Tensor, b: usize, t: usize) -> Result<Vec<Vec<bool>>> {
    if mask.dims() != [b, t] {
        return Err(WotdError::InvalidInput(format!("attention_mask {:?} does not match input_ids [{b}, {t}]", mask.dims())));
    }
    let m = mask.to_dtype(DType::F32)?.to_vec2::<f32>()?;
    Ok(m.into_iter().map(|r| r.into_iter().map(|v| v != 0.0).collect()).collect())
}




#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn the_model_can_cross_threads() {
        // Node runs training and generation on worker threads.
        assert_send_sync::<CausalLm>();
        assert_send_sync::<KvCache>();
    }

    #[test]
    fn configs_parse_per_architecture_and_refuse_what_is_not_implemented() {
        let llama = json!({"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100, "max_position_embeddings": 64,
            "tie_word_embeddings": true, "eos_token_id": [2, 7], "rope_theta": 500.0});
        let c = DecoderConfig::from_hf(&llama).unwrap();
        assert_eq!((c.architecture, c.head_dim, c.eos_token_ids.clone(), c.tie_word_embeddings), (Architecture::Llama, 16, vec![2, 7], true));
        assert_eq!(c.rotary.theta, 500.0);
        let mut phi = llama.clone();
        phi["model_type"] = json!("phi3");
        phi["sliding_window"] = json!(2047);
        phi["tie_word_embeddings"] = json!(false);
        let p = DecoderConfig::from_hf(&phi).unwrap();
        assert_eq!((p.architecture, p.sliding_window, p.tie_word_embeddings), (Architecture::Phi3, Some(2047), false));
        let mut gelu = llama.clone();
        gelu["hidden_act"] = json!("gelu");
        assert_eq!(DecoderConfig::from_hf(&gelu).unwrap_err().code(), "UNSUPPORTED");
        let mut yarn = llama.clone();
        yarn["rope_scaling"] = json!({"rope_type": "yarn", "factor": 4.0});
        assert_eq!(DecoderConfig::from_hf(&yarn).unwrap_err().code(), "UNSUPPORTED");
        let mut bert = llama;
        bert["model_type"] = json!("bert");
        assert_eq!(DecoderConfig::from_hf(&bert).unwrap_err().code(), "UNSUPPORTED");
    }

}
