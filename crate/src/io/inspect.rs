//! Resolve-and-open in one step, and the full check behind `inspectModel`: every weight
//! loaded to f32 and the tokenizer built, so a model that inspects cleanly will load.

use super::model_files::{FileEntry, ModelFiles, Pooling, WeightFormat};
use super::resolve::{resolve, ModelSource, ResolveOptions, Resolved};
use crate::error::{Context, Result};

/// Finds a model and reads its directory summary.
pub fn open(path_or_id: &str, opts: &ResolveOptions) -> Result<(Resolved, ModelFiles)> {
    let found = resolve(path_or_id, opts)?;
    let files = ModelFiles::open(found.path()).context(|| format!("reading model {path_or_id} at {}", found.dir.display()))?;
    Ok((found, files))
}

/// What `inspect` found.
#[derive(Clone, Debug)]
pub struct ModelReport {
    pub id: String,
    pub dir: std::path::PathBuf,
    pub source: ModelSource,
    pub format: WeightFormat,
    pub architecture: Option<String>,
    pub tensor_count: usize,
    pub parameter_count: usize,
    pub vocab_size: usize,
    pub hidden_size: Option<usize>,
    pub max_length: Option<usize>,
    pub pooling: Option<Pooling>,
    pub files: Vec<FileEntry>,
}

/// Resolves the model, loads all of its weights (f32) and its tokenizer, and reports.
pub fn inspect(path_or_id: &str, opts: &ResolveOptions) -> Result<ModelReport> {
    let (found, m) = open(path_or_id, opts)?;
    let weights = m.load_weights().context(|| format!("loading the weights of {path_or_id}"))?;
    let tokenizer = m.load_tokenizer().context(|| format!("loading the tokenizer of {path_or_id}"))?;
    Ok(ModelReport {
        id: found.id,
        dir: found.dir,
        source: found.source,
        format: m.format,
        architecture: m.architecture().or(m.model_type()).map(String::from),
        tensor_count: weights.len(),
        parameter_count: weights.values().map(|t| t.elem_count()).sum(),
        // The model's embedding rows (config), which may exceed the tokenizer's when padded.
        vocab_size: m.vocab_size().unwrap_or_else(|| tokenizer.vocab_size()),
        hidden_size: m.hidden_size(),
        max_length: m.max_length,
        pooling: m.pooling,
        files: m.files()?,
    })
}
