//! Binding of [`crate::generate::WordGenerator`]: `NativeWordGenerator` (load, generate and
//! GGUF export run as AsyncTasks on the libuv pool; generation stops on a `CancelToken`) and
//! `mergeAdapter` (adapter folded into its base, saved as safetensors or GGUF).

use super::convert::{pattern, resolve_options, seed};
use super::guard;
use super::task::{cancel_flag, CancelToken};
use crate::error::WotdError;
use crate::generate::merge::{merge_and_save, MergeReport, MergedFormat};
use crate::generate::word_generator::adapter_base_model;
use crate::generate::{EngineOptions, GeneratorOptions, PromptVocab, Weights, WordGeneration, WordGenerator, WordOptions};
use crate::export::gguf::{GgufExportOptions, GgufExportReport};
use crate::rvq::AttributeVocab;
use candle_core::quantized::GgmlDType;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[napi(object)]
#[derive(Clone, Default)]
pub struct WordGeneratorLoadOptions {
    /// Fold the adapter into the base weights (default true; required for `q8_0`).
    pub merge: Option<bool>,
    /// Decoding weights: `f32` (default) or `q8_0`.
    #[napi(ts_type = "'f32' | 'q8_0'")]
    pub quantize: Option<String>,
    /// Never contact the Hub.
    pub offline: Option<bool>,
    pub revision: Option<String>,
    /// Name attributes in prompts. Default: as the adapter was trained (its `dsl_prompt.json`).
    pub aligned: Option<bool>,
    /// Attribute names and 4 values each, for aligned prompts (default DESIGN.md's).
    pub attribute_names: Option<Vec<String>>,
    pub attribute_values: Option<Vec<Vec<String>>>,
}

#[napi(object)]
#[derive(Clone, Default)]
pub struct WordGenerateOptions {
    /// Distinct words wanted (default 10).
    pub count: Option<u32>,
    /// Default 0.8; 0 is greedy.
    pub temperature: Option<f64>,
    /// Default 0.95.
    pub top_p: Option<f64>,
    /// Default 50; 0 disables.
    pub top_k: Option<u32>,
    /// Integer 0..2^53; default 0.
    pub seed: Option<f64>,
    /// Per sample; default 64.
    pub max_new_tokens: Option<u32>,
    /// Words never returned (for novelOnly: the training words).
    pub exclude: Option<Vec<String>>,
    /// Only these words may be generated (token-trie constrained decoding).
    pub vocabulary: Option<Vec<String>>,
    /// Sampling rounds at most; default 4.
    pub max_rounds: Option<u32>,
    /// Samples decoded together at most; default 16.
    pub batch_size: Option<u32>,
    /// Words of the region to name in the request (set expansion); never returned.
    pub seeds: Option<Vec<String>>,
}

#[napi(object)]
pub struct WordGenerateResult {
    pub words: Vec<String>,
    /// Every sampled completion as decoded.
    pub raw: Vec<String>,
    pub ms_per_word: f64,
    /// Tokens generated over all samples.
    pub tokens: u32,
    pub elapsed_ms: f64,
    pub prefill_ms: f64,
    pub rounds: u32,
    pub samples: u32,
    /// Items that were not well-formed words, as written.
    pub malformed: Vec<String>,
    pub duplicates: u32,
    pub excluded: u32,
    pub not_in_vocabulary: u32,
    pub prompt: String,
}

#[napi(object)]
pub struct GgufExportResult {
    pub path: String,
    pub bytes: f64,
    pub tensors: u32,
    /// Storage type of each tensor counted, e.g. `{ Q8_0: 211, F32: 61 }`.
    pub dtypes: std::collections::HashMap<String, u32>,
}

#[napi(object)]
#[derive(Clone, Default)]
pub struct MergeAdapterOptions {
    /// `safetensors` (a model directory, default) or `gguf` (one file).
    #[napi(ts_type = "'safetensors' | 'gguf'")]
    pub format: Option<String>,
    /// GGUF matrix type: `q8_0` (default), `f16` or `f32`.
    #[napi(ts_type = "'q8_0' | 'f16' | 'f32'")]
    pub gguf_type: Option<String>,
    pub offline: Option<bool>,
    pub revision: Option<String>,
}

#[napi(object)]
pub struct MergeAdapterResult {
    pub path: String,
    pub format: String,
    pub merged_modules: u32,
    pub bytes: f64,
}

fn prompt_vocab(o: &WordGeneratorLoadOptions) -> crate::Result<PromptVocab> {
    Ok(match (o.aligned, &o.attribute_names, &o.attribute_values) {
        (None, None, None) => PromptVocab::Auto,
        (Some(false), None, None) => PromptVocab::Codes,
        (_, None, None) => PromptVocab::Named(AttributeVocab::default()),
        (Some(false), _, _) => return Err(WotdError::InvalidInput("attribute names given with aligned: false".into())),
        (_, Some(names), Some(values)) => PromptVocab::Named(AttributeVocab::from_lists(names, values)?),
        _ => return Err(WotdError::InvalidInput("give attributeNames and attributeValues together".into())),
    })
}

fn gguf_type(s: Option<&str>) -> crate::Result<GgmlDType> {
    match s.unwrap_or("q8_0").to_ascii_lowercase().as_str() {
        "q8_0" => Ok(GgmlDType::Q8_0),
        "f16" => Ok(GgmlDType::F16),
        "f32" => Ok(GgmlDType::F32),
        other => Err(WotdError::InvalidInput(format!("unknown GGUF type {other:?} (q8_0, f16, f32)"))),
    }
}

fn word_options(o: &WordGenerateOptions) -> crate::Result<WordOptions> {
    let d = WordOptions::default();
    Ok(WordOptions {
        count: o.count.map_or(d.count, |c| c as usize),
        temperature: o.temperature.unwrap_or(d.temperature),
        top_p: o.top_p.unwrap_or(d.top_p),
        top_k: o.top_k.map_or(d.top_k, |k| k as usize),
        seed: seed(o.seed)?,
        max_new_tokens: o.max_new_tokens.map_or(d.max_new_tokens, |m| m as usize),
        exclude: o.exclude.clone().unwrap_or_default(),
        vocabulary: o.vocabulary.clone(),
        max_rounds: o.max_rounds.map_or(d.max_rounds, |m| m as usize),
        max_batch: o.batch_size.map_or(d.max_batch, |b| b as usize),
        seeds: o.seeds.clone().unwrap_or_default(),
    })
}

pub struct LoadTask {
    base_model: Option<String>,
    adapter_dir: Option<String>,
    opts: WordGeneratorLoadOptions,
}

impl Task for LoadTask {
    type Output = WordGenerator;
    type JsValue = NativeWordGenerator;

    fn compute(&mut self) -> Result<WordGenerator> {
        guard(|| {
            let o = &self.opts;
            let adapter_dir = self.adapter_dir.as_ref().map(PathBuf::from);
            let base = match (&self.base_model, &adapter_dir) {
                (Some(b), _) if !b.is_empty() => b.clone(),
                (_, Some(dir)) => adapter_base_model(dir)?.ok_or_else(|| {
                    WotdError::InvalidInput(format!("no base model given and {} does not name one", dir.display()))
                })?,
                _ => return Err(WotdError::InvalidInput("give a base model, an adapter directory, or both".into())),
            };
            let engine = EngineOptions {
                merge: o.merge.unwrap_or(true),
                weights: o.quantize.as_deref().map(Weights::parse).transpose()?.unwrap_or(Weights::F32),
                prompt_vocab: prompt_vocab(o)?,
            };
            let opts = GeneratorOptions { resolve: resolve_options(o.offline, o.revision.as_ref()), adapter_dir, engine };
            WordGenerator::load(&base, &opts)
        })
    }

    fn resolve(&mut self, _env: Env, output: WordGenerator) -> Result<NativeWordGenerator> {
        Ok(NativeWordGenerator { info: output.info().clone(), config: output.config().clone(), inner: Some(Arc::new(output)) })
    }
}

pub struct GenerateTask {
    generator: crate::Result<Arc<WordGenerator>>,
    pattern: Vec<Option<u32>>,
    opts: WordGenerateOptions,
    cancel: Arc<AtomicBool>,
}

impl Task for GenerateTask {
    type Output = WordGeneration;
    type JsValue = WordGenerateResult;

    fn compute(&mut self) -> Result<WordGeneration> {
        // Taken, not borrowed: a closed generator's weights go as soon as its last call ends.
        let generator = std::mem::replace(&mut self.generator, Err(WotdError::Cancelled));
        guard(|| generator?.generate_cancellable(&pattern(&self.pattern)?, &word_options(&self.opts)?, &self.cancel))
    }

    fn resolve(&mut self, _env: Env, g: WordGeneration) -> Result<WordGenerateResult> {
        let n = |v: usize| v.min(u32::MAX as usize) as u32;
        Ok(WordGenerateResult {
            ms_per_word: g.ms_per_word,
            tokens: n(g.tokens),
            elapsed_ms: g.elapsed_ms,
            prefill_ms: g.prefill_ms,
            rounds: n(g.rounds),
            samples: n(g.rows),
            duplicates: n(g.duplicates),
            excluded: n(g.excluded),
            not_in_vocabulary: n(g.not_in_vocabulary),
            words: g.words,
            raw: g.raw,
            malformed: g.malformed,
            prompt: g.prompt,
        })
    }
}

pub struct ExportTask {
    generator: crate::Result<Arc<WordGenerator>>,
    path: String,
    dtype: Option<String>,
}

impl Task for ExportTask {
    type Output = GgufExportReport;
    type JsValue = GgufExportResult;

    fn compute(&mut self) -> Result<GgufExportReport> {
        let generator = std::mem::replace(&mut self.generator, Err(WotdError::Cancelled));
        guard(|| {
            let opts = GgufExportOptions { dtype: gguf_type(self.dtype.as_deref())?, name: None };
            generator?.export_gguf(&PathBuf::from(&self.path), &opts)
        })
    }

    fn resolve(&mut self, _env: Env, r: GgufExportReport) -> Result<GgufExportResult> {
        Ok(GgufExportResult {
            path: r.path.display().to_string(),
            bytes: r.bytes as f64,
            tensors: r.tensors as u32,
            dtypes: r.dtypes.into_iter().map(|(k, v)| (k, v as u32)).collect(),
        })
    }
}

/// A DSL model loaded for generation. Create with `NativeWordGenerator.load`.
#[napi]
pub struct NativeWordGenerator {
    /// `None` once closed: the weights are freed when the last running task lets go of them.
    inner: Option<Arc<WordGenerator>>,
    info: crate::generate::word_generator::GeneratorInfo,
    config: crate::models::DecoderConfig,
}

impl NativeWordGenerator {
    fn open(&self) -> crate::Result<Arc<WordGenerator>> {
        self.inner.clone().ok_or_else(|| WotdError::InvalidInput("this word generator was closed; load it again".into()))
    }
}

#[napi]
impl NativeWordGenerator {
    /// Resolves the base model (path or Hugging Face id; default: the adapter's
    /// `base_model_name_or_path`), applies the adapter, merges and quantizes, off the main thread.
    #[napi(ts_return_type = "Promise<NativeWordGenerator>")]
    pub fn load(base_model: Option<String>, adapter_dir: Option<String>, options: Option<WordGeneratorLoadOptions>) -> AsyncTask<LoadTask> {
        AsyncTask::new(LoadTask { base_model, adapter_dir, opts: options.unwrap_or_default() })
    }

    /// Words for an ID pattern given as its fields (`[2, null, 17, null]` for `[2,*,17,*]`, as
    /// `parsePattern` returns them), off the main thread. Invalid fields reject with
    /// `[INVALID_PATTERN]`; `cancel` stops decoding between steps with `[CANCELLED]`.
    #[napi(ts_return_type = "Promise<WordGenerateResult>")]
    pub fn generate(
        &self,
        #[napi(ts_arg_type = "Array<number | null>")] fields: Vec<Option<u32>>,
        options: Option<WordGenerateOptions>,
        cancel: Option<&CancelToken>,
    ) -> AsyncTask<GenerateTask> {
        AsyncTask::new(GenerateTask { generator: self.open(), pattern: fields, opts: options.unwrap_or_default(), cancel: cancel_flag(cancel) })
    }

    /// Writes the merged model as a llama.cpp GGUF (`q8_0` by default).
    #[napi(ts_return_type = "Promise<GgufExportResult>")]
    pub fn export_gguf(&self, path: String, #[napi(ts_arg_type = "'q8_0' | 'f16' | 'f32'")] dtype: Option<String>) -> AsyncTask<ExportTask> {
        AsyncTask::new(ExportTask { generator: self.open(), path, dtype })
    }

    /// The prompt text the model sees for a pattern's fields (what training taught it).
    #[napi]
    pub fn prompt(&self, #[napi(ts_arg_type = "Array<number | null>")] fields: Vec<Option<u32>>, seeds: Option<Vec<String>>) -> Result<String> {
        guard(|| {
            let g = self.open()?;
            let ids = g.prompt_ids(&pattern(&fields)?, &seeds.unwrap_or_default())?;
            g.tokenizer().decode(&ids, false)
        })
    }

    /// Lets go of the model's weights now rather than at garbage collection (a call still
    /// running keeps them until it ends); later calls fail with `INVALID_INPUT`.
    #[napi]
    pub fn close(&mut self) {
        self.inner = None;
        crate::runtime::release_free_memory();
    }

    #[napi(getter)]
    pub fn base_model(&self) -> String {
        self.info.base_model.clone()
    }

    #[napi(getter)]
    pub fn adapter_dir(&self) -> Option<String> {
        self.info.adapter_dir.as_ref().map(|p| p.display().to_string())
    }

    #[napi(getter)]
    pub fn merged(&self) -> bool {
        self.info.merged
    }

    #[napi(getter, ts_return_type = "'f32' | 'q8_0'")]
    pub fn quantize(&self) -> String {
        self.info.weights.as_str().to_string()
    }

    /// Whether prompts name attribute values (the adapter was trained on aligned IDs).
    #[napi(getter)]
    pub fn aligned(&self) -> bool {
        self.info.aligned
    }

    #[napi(getter)]
    pub fn architecture(&self) -> String {
        format!("{:?}", self.config.architecture).to_lowercase()
    }

    #[napi(getter)]
    pub fn vocab_size(&self) -> u32 {
        self.config.vocab_size as u32
    }

    #[napi(getter)]
    pub fn max_positions(&self) -> u32 {
        self.config.max_position_embeddings as u32
    }
}

pub struct MergeTask {
    base_model: String,
    adapter_dir: String,
    out: String,
    opts: MergeAdapterOptions,
}

impl Task for MergeTask {
    type Output = MergeReport;
    type JsValue = MergeAdapterResult;

    fn compute(&mut self) -> Result<MergeReport> {
        guard(|| {
            let o = &self.opts;
            let format = match o.format.as_deref().unwrap_or("safetensors") {
                "safetensors" => MergedFormat::Safetensors,
                "gguf" => MergedFormat::Gguf(GgufExportOptions { dtype: gguf_type(o.gguf_type.as_deref())?, name: None }),
                other => return Err(WotdError::InvalidInput(format!("unknown format {other:?} (safetensors or gguf)"))),
            };
            let adapter = PathBuf::from(&self.adapter_dir);
            let base = if self.base_model.is_empty() {
                adapter_base_model(&adapter)?
                    .ok_or_else(|| WotdError::InvalidInput(format!("no base model given and {} does not name one", adapter.display())))?
            } else {
                self.base_model.clone()
            };
            merge_and_save(&base, &resolve_options(o.offline, o.revision.as_ref()), &adapter, &PathBuf::from(&self.out), &format)
        })
    }

    fn resolve(&mut self, _env: Env, r: MergeReport) -> Result<MergeAdapterResult> {
        Ok(MergeAdapterResult {
            path: r.path.display().to_string(),
            format: r.format.to_string(),
            merged_modules: r.merged_modules as u32,
            bytes: r.bytes as f64,
        })
    }
}

/// Folds a LoRA adapter into its base model and writes the result: a model directory
/// (`safetensors`, loadable by transformers) or one GGUF file (llama.cpp, Ollama). An empty
/// `baseModel` means the adapter's own `base_model_name_or_path`.
#[napi(ts_return_type = "Promise<MergeAdapterResult>")]
pub fn merge_adapter(base_model: String, adapter_dir: String, out: String, options: Option<MergeAdapterOptions>) -> AsyncTask<MergeTask> {
    AsyncTask::new(MergeTask { base_model, adapter_dir, out, opts: options.unwrap_or_default() })
}
