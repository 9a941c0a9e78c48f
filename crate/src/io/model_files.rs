//! What a model directory holds, and one way to load it whatever its weight format.
//!
//! A directory in Hugging Face layout may carry safetensors (single or sharded) or a GGUF; the
//! rest of the crate only ever sees f32 tensors under HF names, an HF-style config and a
//! [`TextTokenizer`], so models and stages never branch on where the weights came from.

use super::gguf::GgufFile;
use super::safetensors::{checkpoint_in_dir, load_checkpoint, Checkpoint, IntegerTensors};
use super::tokenizer::TextTokenizer;
use super::gguf_llama;
use crate::error::{Result, WotdError};
use candle_core::Tensor;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// How the weights are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightFormat {
    Safetensors,
    Gguf,
}

impl WeightFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            WeightFormat::Safetensors => "safetensors",
            WeightFormat::Gguf => "gguf",
        }
    }
}

/// Where the tokenizer comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenizerSource {
    /// A `tokenizer.json` (with `tokenizer_config.json` beside it when present).
    Json(PathBuf),
    /// The vocabulary embedded in a GGUF.
    Gguf(PathBuf),
    None,
}

/// Sentence-transformers pooling of token states into one text vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    Cls,
    Mean,
    Max,
    LastToken,
}

impl Pooling {
    pub fn as_str(self) -> &'static str {
        match self {
            Pooling::Cls => "cls",
            Pooling::Mean => "mean",
            Pooling::Max => "max",
            Pooling::LastToken => "lasttoken",
        }
    }
}

/// A file of the model directory, path relative to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
}

/// A summary of a resolved model directory.
#[derive(Clone, Debug)]
pub struct ModelFiles {
    pub dir: PathBuf,
    pub format: WeightFormat,
    /// Safetensors: the single file, or the index followed by its shards. GGUF: the one file.
    pub weights: Vec<PathBuf>,
    /// `config.json`, or for a GGUF the config derived from its metadata.
    pub config: Value,
    pub tokenizer: TokenizerSource,
    /// From the sentence-transformers Pooling module, when the model has one.
    pub pooling: Option<Pooling>,
    /// Whether sentence-transformers' `modules.json` ends in a Normalize module.
    pub normalize: bool,
    /// Longest input in tokens (special tokens included), from the sentence-transformers or
    /// tokenizer config, capped by the position embeddings.
    pub max_length: Option<usize>,
}

impl ModelFiles {
    /// Reads a model directory, or a directory's specific weight file (`.gguf`/`.safetensors`).
    pub fn open(path: &Path) -> Result<Self> {
        let (dir, format, weights) = if path.is_file() {
            let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
            let name = path.to_string_lossy();
            let format = if name.ends_with(".gguf") {
                WeightFormat::Gguf
            } else if name.ends_with(".safetensors") || name.ends_with(".safetensors.index.json") {
                WeightFormat::Safetensors
            } else {
                return Err(WotdError::InvalidInput(format!("{} is neither a .gguf nor a .safetensors file", path.display())));
            };
            (dir, format, vec![path.to_path_buf()])
        } else if path.is_dir() {
            let (format, weights) = locate_weights(path)?
                .ok_or_else(|| WotdError::InvalidInput(format!("{} holds no safetensors or GGUF weights", path.display())))?;
            (path.to_path_buf(), format, weights)
        } else {
            return Err(WotdError::InvalidInput(format!("{} is not a file or directory", path.display())));
        };

        let tokenizer_json = dir.join("tokenizer.json");
        let (config, tokenizer) = match format {
            WeightFormat::Safetensors => {
                let config = read_json(&dir.join("config.json"))?
                    .ok_or_else(|| WotdError::InvalidInput(format!("{} has safetensors weights but no config.json", dir.display())))?;
                let tok = if tokenizer_json.is_file() { TokenizerSource::Json(tokenizer_json) } else { TokenizerSource::None };
                (config, tok)
            }
            WeightFormat::Gguf => {
                // Derived from the GGUF itself, so config and weights cannot disagree.
                let g = GgufFile::open(&weights[0])?;
                let config = gguf_llama::hf_config(&g)?;
                let tok = if tokenizer_json.is_file() {
                    TokenizerSource::Json(tokenizer_json)
                } else if g.get("tokenizer.ggml.model").is_some() {
                    TokenizerSource::Gguf(weights[0].clone())
                } else {
                    TokenizerSource::None
                };
                (config, tok)
            }
        };
        let modules = read_json(&dir.join("modules.json"))?;
        let pooling = read_pooling(&dir, modules.as_ref())?;
        let normalize = modules
            .as_ref()
            .and_then(Value::as_array)
            .is_some_and(|ms| ms.iter().any(|m| m.get("type").and_then(Value::as_str).is_some_and(|t| t.ends_with(".Normalize"))));
        let max_length = max_length(&dir, &config)?;
        Ok(ModelFiles { dir, format, weights, config, tokenizer, pooling, normalize, max_length })
    }

    /// `architectures[0]` of the config, e.g. `"LlamaForCausalLM"`.
    pub fn architecture(&self) -> Option<&str> {
        self.config.get("architectures")?.get(0)?.as_str()
    }

    /// `model_type` of the config, e.g. `"bert"`, `"llama"`.
    pub fn model_type(&self) -> Option<&str> {
        self.config.get("model_type")?.as_str()
    }

    pub fn vocab_size(&self) -> Option<usize> {
        self.config_usize("vocab_size")
    }

    pub fn hidden_size(&self) -> Option<usize> {
        self.config_usize("hidden_size")
    }

    /// A non-negative integer field of the config.
    pub fn config_usize(&self, key: &str) -> Option<usize> {
        self.config.get(key)?.as_u64().map(|v| v as usize)
    }

    /// Every weight as f32 under its Hugging Face name (GGUF tensors renamed, Q/K rows restored).
    pub fn load_weights(&self) -> Result<HashMap<String, Tensor>> {
        match self.format {
            WeightFormat::Safetensors => load_checkpoint(&self.weights[0], IntegerTensors::Skip),
            WeightFormat::Gguf => gguf_llama::load_hf_weights(&GgufFile::open(&self.weights[0])?),
        }
    }

    /// The tokenizer, truncating at [`ModelFiles::max_length`] when that is known.
    pub fn load_tokenizer(&self) -> Result<TextTokenizer> {
        let mut tok = match &self.tokenizer {
            TokenizerSource::Json(path) => TextTokenizer::from_dir(path.parent().unwrap_or(&self.dir))?,
            TokenizerSource::Gguf(path) => TextTokenizer::from_gguf(&GgufFile::open(path)?)?,
            TokenizerSource::None => {
                return Err(WotdError::InvalidInput(format!("{} has no tokenizer.json and no GGUF vocabulary", self.dir.display())))
            }
        };
        tok.set_max_length(self.max_length)?;
        Ok(tok)
    }

    /// Every regular file under the directory (hidden entries skipped), sorted, with sizes.
    pub fn files(&self) -> Result<Vec<FileEntry>> {
        let mut out = Vec::new();
        walk(&self.dir, &self.dir, &mut out)?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }
}

/// The weights in a directory, if complete: safetensors first (exact values), else a GGUF.
/// A sharded checkpoint with a missing shard is an error, not "no weights".
pub fn locate_weights(dir: &Path) -> Result<Option<(WeightFormat, Vec<PathBuf>)>> {
    if let Some(ckpt) = checkpoint_in_dir(dir)? {
        if let Checkpoint::Sharded { index, shards } = &ckpt {
            if let Some(missing) = shards.iter().find(|s| !s.is_file()) {
                return Err(WotdError::corrupt(index, format!("shard {} is missing", missing.display())));
            }
        }
        return Ok(Some((WeightFormat::Safetensors, ckpt.files())));
    }
    let mut ggufs: Vec<(u8, u64, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| WotdError::io(dir, e))? {
        let path = entry.map_err(|e| WotdError::io(dir, e))?.path();
        if path.extension().is_some_and(|e| e == "gguf") && path.is_file() {
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            ggufs.push((gguf_rank(&path), size, path));
        }
    }
    // Highest precision wins, so training starts from the least-rounded weights available.
    ggufs.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    Ok(ggufs.into_iter().next().map(|(_, _, p)| (WeightFormat::Gguf, vec![p])))
}

fn gguf_rank(path: &Path) -> u8 {
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    ["f32", "bf16", "f16", "q8_0", "q6_k", "q5_k", "q5_1", "q5_0", "q4_k", "q4_1", "q4_0"]
        .iter()
        .position(|tag| name.contains(tag))
        .map(|p| p as u8)
        .unwrap_or(u8::MAX)
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| WotdError::corrupt(path, format!("invalid JSON: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(WotdError::io(path, e)),
    }
}

/// The Pooling module's folder comes from `modules.json` when there is one (its name is not
/// fixed), else the conventional `1_Pooling`.
fn read_pooling(dir: &Path, modules: Option<&Value>) -> Result<Option<Pooling>> {
    let folder = modules
        .and_then(Value::as_array)
        .and_then(|ms| {
            ms.iter().find(|m| m.get("type").and_then(Value::as_str).is_some_and(|t| t.ends_with(".Pooling")))
        })
        .and_then(|m| m.get("path").and_then(Value::as_str))
        .unwrap_or("1_Pooling");
    let path = dir.join(folder).join("config.json");
    let Some(cfg) = read_json(&path)? else { return Ok(None) };
    let on = |key: &str| cfg.get(key).and_then(Value::as_bool).unwrap_or(false);
    for unsupported in ["pooling_mode_weightedmean_tokens", "pooling_mode_mean_sqrt_len_tokens"] {
        if on(unsupported) {
            return Err(WotdError::Unsupported(format!("{}: {unsupported}", path.display())));
        }
    }
    let modes: Vec<Pooling> = [
        ("pooling_mode_cls_token", Pooling::Cls),
        ("pooling_mode_mean_tokens", Pooling::Mean),
        ("pooling_mode_max_tokens", Pooling::Max),
        ("pooling_mode_lasttoken", Pooling::LastToken),
    ]
    .into_iter()
    .filter(|(k, _)| on(k))
    .map(|(_, p)| p)
    .collect();
    match modes.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        _ => Err(WotdError::Unsupported(format!("{}: several pooling modes concatenated", path.display()))),
    }
}

/// Sentence-transformers' limit, else the tokenizer's, never more than the positions the model
/// has. RoBERTa-family position ids start after `pad_token_id`, which costs `pad + 1` positions.
fn max_length(dir: &Path, config: &Value) -> Result<Option<usize>> {
    let st = read_json(&dir.join("sentence_bert_config.json"))?
        .and_then(|c| c.get("max_seq_length").and_then(Value::as_u64));
    let tok = read_json(&dir.join("tokenizer_config.json"))?
        .and_then(|c| c.get("model_max_length").and_then(Value::as_u64))
        .filter(|&n| n < 10_000_000); // transformers writes 1e30 for "no limit"
    let positions = config.get("max_position_embeddings").and_then(Value::as_u64).map(|p| {
        let roberta = matches!(config.get("model_type").and_then(Value::as_str), Some("roberta" | "xlm-roberta" | "camembert"));
        let offset = if roberta { config.get("pad_token_id").and_then(Value::as_u64).unwrap_or(1) + 1 } else { 0 };
        p.saturating_sub(offset)
    });
    let wanted = st.or(tok);
    Ok(match (wanted, positions) {
        (Some(w), Some(p)) => Some(w.min(p) as usize),
        (Some(w), None) => Some(w as usize),
        (None, p) => p.map(|p| p as usize),
    })
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<FileEntry>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| WotdError::io(dir, e))? {
        let entry = entry.map_err(|e| WotdError::io(dir, e))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        // `metadata` follows symlinks: HF cache snapshots are links into `blobs/`.
        let Ok(meta) = std::fs::metadata(&path) else { continue };
        if meta.is_dir() {
            walk(root, &path, out)?;
        } else if meta.is_file() {
            let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            out.push(FileEntry { path: rel, size: meta.len() });
        }
    }
    Ok(())
}
