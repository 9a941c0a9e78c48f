//! A tuned DSL model as one standalone model: the LoRA adapter folded into the base weights
//! and written either as a Hugging Face directory (safetensors + config + tokenizer; loads
//! in transformers or back here) or as a llama.cpp GGUF.

use crate::error::{Context, Result, WotdError};
use crate::io::atomic;
use crate::export::gguf::{export_causal_lm, GgufExportOptions};
use crate::io::{resolve, ModelFiles, ResolveOptions, TokenizerSource};
use crate::models::CausalLm;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq)]
pub enum MergedFormat {
    /// A directory: `model.safetensors` (f32), `config.json`, tokenizer files.
    Safetensors,
    /// One `.gguf` file with matrices stored as given.
    Gguf(GgufExportOptions),
}

#[derive(Clone, Debug, PartialEq)]
pub struct MergeReport {
    /// The directory (safetensors) or file (GGUF) written.
    pub path: PathBuf,
    pub format: &'static str,
    /// Projections the adapter changed.
    pub merged_modules: usize,
    /// Bytes written.
    pub bytes: u64,
}

/// Loads `base` (path or Hugging Face id), applies the adapter in `adapter_dir`, merges it and
/// writes the result to `out`.
pub fn merge_and_save(base: &str, resolve_opts: &ResolveOptions, adapter_dir: &Path, out: &Path, format: &MergedFormat) -> Result<MergeReport> {
    let resolved = resolve(base, resolve_opts)?;
    let files = ModelFiles::open(resolved.path())?;
    let mut model = CausalLm::load(&files, None)?;
    model.set_base_model_name(resolved.id.clone());
    model.load_adapter(adapter_dir).context(|| format!("loading the adapter from {}", adapter_dir.display()))?;
    let merged_modules = model.merge_adapter()?;
    match format {
        MergedFormat::Gguf(opts) => {
            let r = export_causal_lm(&model, out, opts)?;
            Ok(MergeReport { path: r.path, format: "gguf", merged_modules, bytes: r.bytes })
        }
        MergedFormat::Safetensors => {
            let bytes = save_safetensors_dir(&model, &files, out)?;
            Ok(MergeReport { path: out.to_path_buf(), format: "safetensors", merged_modules, bytes })
        }
    }
}

/// Writes `model` (adapter merged) as an HF model directory, taking config and tokenizer
/// files from the base it was loaded from. Returns the bytes written.
pub fn save_safetensors_dir(model: &CausalLm, base: &ModelFiles, out: &Path) -> Result<u64> {
    if model.adapter_config().is_some() {
        return Err(WotdError::InvalidInput("merge the LoRA adapter before saving the model".into()));
    }
    std::fs::create_dir_all(out).map_err(|e| WotdError::io(out, e))?;
    let tied = model.config().tie_word_embeddings;
    let tensors: HashMap<String, candle_core::Tensor> =
        model.base_tensors().into_iter().filter(|(name, _)| !(tied && name == "lm_head.weight")).collect();
    atomic::write_file_with(&out.join("model.safetensors"), |tmp| Ok(candle_core::safetensors::save(&tensors, tmp)?))?;

    let mut config = base.config.clone();
    if let Some(c) = config.as_object_mut() {
        // The merged weights are f32 whatever the base stored (a GGUF base was dequantized).
        c.insert("torch_dtype".into(), serde_json::json!("float32"));
    }
    write_text(&out.join("config.json"), &(serde_json::to_string_pretty(&config).expect("JSON value") + "\n"))?;

    match &base.tokenizer {
        TokenizerSource::Json(path) => {
            let dir = path.parent().unwrap_or(&base.dir);
            for name in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"] {
                let src = dir.join(name);
                if src.is_file() {
                    std::fs::copy(&src, out.join(name)).map_err(|e| WotdError::io(&src, e))?;
                }
            }
        }
        TokenizerSource::Gguf(_) => {
            // A GGUF base carries its vocabulary inside; write it out the way transformers reads it.
            let tok = model.tokenizer().ok_or_else(|| WotdError::InvalidInput("the model has no tokenizer".into()))?;
            let path = out.join("tokenizer.json");
            tok.inner().save(&path, false).map_err(|e| WotdError::Tokenizer(format!("writing {}: {e}", path.display())))?;
            let name = |id: Option<u32>| id.and_then(|i| tok.id_to_token(i));
            let mut cfg = serde_json::Map::new();
            cfg.insert("tokenizer_class".into(), serde_json::json!("PreTrainedTokenizerFast"));
            for (key, id) in [("bos_token", tok.specials().bos), ("eos_token", tok.specials().eos), ("pad_token", tok.specials().pad), ("unk_token", tok.specials().unk)] {
                if let Some(t) = name(id) {
                    cfg.insert(key.into(), serde_json::json!(t));
                }
            }
            if let Some(t) = tok.chat_template() {
                cfg.insert("chat_template".into(), serde_json::json!(t));
            }
            cfg.insert("model_max_length".into(), serde_json::json!(model.config().max_position_embeddings));
            write_text(&out.join("tokenizer_config.json"), &(serde_json::to_string_pretty(&serde_json::Value::Object(cfg)).expect("JSON") + "\n"))?;
        }
        TokenizerSource::None => {}
    }
    let mut bytes = 0;
    for e in std::fs::read_dir(out).map_err(|e| WotdError::io(out, e))? {
        let e = e.map_err(|e| WotdError::io(out, e))?;
        bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
    }
    Ok(bytes)
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    atomic::write_file(path, text.as_bytes())
}
