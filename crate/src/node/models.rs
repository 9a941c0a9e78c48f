//! Model files for JS: resolve, inspect, tokenize, verify, download. Anything that reads
//! weights, hashes files or may touch the network runs as an `AsyncTask` on libuv's pool.

use super::guard;
use crate::io::hub::DownloadProgress as CoreProgress;
use crate::io::inspect::{inspect, open};
use crate::io::{self, ResolveOptions};
use napi::bindgen_prelude::AsyncTask;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status, Task};
use napi_derive::napi;

/// Where to look for a model.
#[napi(object)]
#[derive(Clone, Default)]
pub struct ModelOptions {
    /// Branch, tag or commit of a Hugging Face model id (default `main`).
    pub revision: Option<String>,
    /// Never contact the Hub (also forced by `WOTD_OFFLINE=1` or `HF_HUB_OFFLINE=1`).
    pub offline: Option<bool>,
}

fn resolve_options(o: Option<&ModelOptions>) -> ResolveOptions {
    super::convert::resolve_options(o.and_then(|o| o.offline), o.and_then(|o| o.revision.as_ref()))
}

/// A file of a model directory.
#[napi(object)]
pub struct ModelFile {
    /// Relative to the model directory, `/`-separated.
    pub path: String,
    /// Bytes.
    pub size: i64,
}

/// What `inspectModel` found after loading every weight and the tokenizer.
#[napi(object)]
pub struct ModelInfo {
    /// The model id, or the path as given.
    pub id: String,
    /// The model directory.
    pub dir: String,
    /// Where the model was found.
    #[napi(ts_type = "'local' | 'hf-cache' | 'hub' | 'wotd-cache'")]
    pub source: String,
    /// How the weights are stored.
    #[napi(ts_type = "'safetensors' | 'gguf'")]
    pub format: String,
    /// `architectures[0]` (or `model_type`) of the config, e.g. `LlamaForCausalLM`.
    pub architecture: Option<String>,
    /// Number of weight tensors (integer buffers excluded).
    pub tensor_count: u32,
    /// Total number of weight elements.
    pub parameter_count: i64,
    /// Weights are always handed out as f32, whatever the file stores.
    #[napi(ts_type = "'f32'")]
    pub dtype: String,
    /// Rows of the embedding matrix.
    pub vocab_size: u32,
    /// Width of the hidden states, when the config says.
    pub hidden_size: Option<u32>,
    /// Longest input in tokens (special tokens included), when known.
    pub max_length: Option<u32>,
    /// Sentence-transformers pooling, for embedding models that ship one.
    #[napi(ts_type = "'cls' | 'mean' | 'max' | 'lasttoken'")]
    pub pooling: Option<String>,
    /// Every file of the model directory.
    pub files: Vec<ModelFile>,
}

fn model_info(r: io::inspect::ModelReport) -> ModelInfo {
    ModelInfo {
        id: r.id,
        dir: r.dir.to_string_lossy().into_owned(),
        source: r.source.as_str().to_string(),
        format: r.format.as_str().to_string(),
        architecture: r.architecture,
        tensor_count: r.tensor_count as u32,
        parameter_count: r.parameter_count as i64,
        dtype: "f32".to_string(),
        vocab_size: r.vocab_size as u32,
        hidden_size: r.hidden_size.map(|v| v as u32),
        max_length: r.max_length.map(|v| v as u32),
        pooling: r.pooling.map(|p| p.as_str().to_string()),
        files: r.files.into_iter().map(|f| ModelFile { path: f.path, size: f.size as i64 }).collect(),
    }
}

/// Background work of `inspectModel`.
pub struct InspectTask {
    path_or_id: String,
    options: ResolveOptions,
}

#[napi]
impl Task for InspectTask {
    type Output = ModelInfo;
    type JsValue = ModelInfo;

    fn compute(&mut self) -> napi::Result<ModelInfo> {
        guard(|| inspect(&self.path_or_id, &self.options).map(model_info))
    }

    fn resolve(&mut self, _env: Env, output: ModelInfo) -> napi::Result<ModelInfo> {
        Ok(output)
    }
}

/// Finds a model (local path or Hugging Face id), loads all of its weights as f32 and its
/// tokenizer, and describes it. Rejects with `[MODEL_NOT_FOUND]` listing every place looked,
/// or `[CORRUPT_FILE]` naming a damaged file.
#[napi]
pub fn inspect_model(path_or_id: String, options: Option<ModelOptions>) -> AsyncTask<InspectTask> {
    AsyncTask::new(InspectTask { path_or_id, options: resolve_options(options.as_ref()) })
}

/// Where a model was found.
#[napi(object)]
pub struct ResolvedModel {
    /// The model id, or the path as given.
    pub id: String,
    /// The model directory.
    pub dir: String,
    /// A specific weight file, when a file rather than a directory was given.
    pub file: Option<String>,
    /// Where the model was found.
    #[napi(ts_type = "'local' | 'hf-cache' | 'hub' | 'wotd-cache'")]
    pub source: String,
    /// Every place tried, in order, the successful one last.
    pub looked: Vec<String>,
}

fn resolved_model(r: io::Resolved) -> ResolvedModel {
    ResolvedModel {
        id: r.id,
        dir: r.dir.to_string_lossy().into_owned(),
        file: r.file.map(|f| f.to_string_lossy().into_owned()),
        source: r.source.as_str().to_string(),
        looked: r.looked,
    }
}

/// Background work of `resolveModel` (it may download).
pub struct ResolveTask {
    path_or_id: String,
    options: ResolveOptions,
}

#[napi]
impl Task for ResolveTask {
    type Output = ResolvedModel;
    type JsValue = ResolvedModel;

    fn compute(&mut self) -> napi::Result<ResolvedModel> {
        guard(|| io::resolve(&self.path_or_id, &self.options).map(resolved_model))
    }

    fn resolve(&mut self, _env: Env, output: ResolvedModel) -> napi::Result<ResolvedModel> {
        Ok(output)
    }
}

/// Finds a model without loading it: explicit directory, Hugging Face cache, Hub (unless
/// offline), then the wotd models directory. A promise because the Hub step may download.
#[napi]
pub fn resolve_model(path_or_id: String, options: Option<ModelOptions>) -> AsyncTask<ResolveTask> {
    AsyncTask::new(ResolveTask { path_or_id, options: resolve_options(options.as_ref()) })
}

/// Options of `tokenize` and `detokenize`.
#[napi(object)]
#[derive(Clone, Default)]
pub struct TokenizeOptions {
    /// Branch, tag or commit of a Hugging Face model id (default `main`).
    pub revision: Option<String>,
    /// Never contact the Hub.
    pub offline: Option<bool>,
    /// Add the model's special tokens (e.g. `[CLS]`/`[SEP]`); default true.
    pub add_special_tokens: Option<bool>,
    /// When decoding, drop special tokens; default false.
    pub skip_special_tokens: Option<bool>,
}

impl TokenizeOptions {
    fn resolve_options(&self) -> ResolveOptions {
        super::convert::resolve_options(self.offline, self.revision.as_ref())
    }
}

/// Token ids per text, and whether each text was cut at the model's max length.
#[napi(object)]
pub struct Tokenized {
    /// One id list per input text.
    pub ids: Vec<Vec<u32>>,
    /// Per text: true when it exceeded the model's max length and was truncated.
    pub truncated: Vec<bool>,
}

/// Background work of `tokenize`.
pub struct TokenizeTask {
    path_or_id: String,
    texts: Vec<String>,
    options: TokenizeOptions,
}

#[napi]
impl Task for TokenizeTask {
    type Output = Tokenized;
    type JsValue = Tokenized;

    fn compute(&mut self) -> napi::Result<Tokenized> {
        guard(|| {
            let (_, model) = open(&self.path_or_id, &self.options.resolve_options())?;
            let tok = model.load_tokenizer()?;
            let encoded = tok.encode_batch(&self.texts, self.options.add_special_tokens.unwrap_or(true))?;
            Ok(Tokenized {
                truncated: encoded.iter().map(|e| e.truncated).collect(),
                ids: encoded.into_iter().map(|e| e.ids).collect(),
            })
        })
    }

    fn resolve(&mut self, _env: Env, output: Tokenized) -> napi::Result<Tokenized> {
        Ok(output)
    }
}

/// Encodes texts with a model's tokenizer, truncating at the model's max length.
#[napi]
pub fn tokenize(path_or_id: String, texts: Vec<String>, options: Option<TokenizeOptions>) -> AsyncTask<TokenizeTask> {
    AsyncTask::new(TokenizeTask { path_or_id, texts, options: options.unwrap_or_default() })
}

/// Background work of `detokenize`.
pub struct DetokenizeTask {
    path_or_id: String,
    ids: Vec<Vec<u32>>,
    options: TokenizeOptions,
}

#[napi]
impl Task for DetokenizeTask {
    type Output = Vec<String>;
    type JsValue = Vec<String>;

    fn compute(&mut self) -> napi::Result<Vec<String>> {
        guard(|| {
            let (_, model) = open(&self.path_or_id, &self.options.resolve_options())?;
            let tok = model.load_tokenizer()?;
            let skip = self.options.skip_special_tokens.unwrap_or(false);
            self.ids.iter().map(|ids| tok.decode(ids, skip)).collect()
        })
    }

    fn resolve(&mut self, _env: Env, output: Vec<String>) -> napi::Result<Vec<String>> {
        Ok(output)
    }
}

/// Decodes id lists back to text with a model's tokenizer.
#[napi]
pub fn detokenize(path_or_id: String, ids: Vec<Vec<u32>>, options: Option<TokenizeOptions>) -> AsyncTask<DetokenizeTask> {
    AsyncTask::new(DetokenizeTask { path_or_id, ids, options: options.unwrap_or_default() })
}

/// Outcome of checking a pulled model directory against its `.wotd-model.json` marker.
#[napi(object)]
pub struct VerifyResult {
    /// True when every listed file exists with its recorded size and sha256.
    pub ok: bool,
    /// One line per problem, naming the file.
    pub problems: Vec<String>,
}

/// Background work of `verifyModelDir` (it hashes every file).
pub struct VerifyTask {
    dir: String,
}

#[napi]
impl Task for VerifyTask {
    type Output = VerifyResult;
    type JsValue = VerifyResult;

    fn compute(&mut self) -> napi::Result<VerifyResult> {
        guard(|| io::verify(std::path::Path::new(&self.dir)).map(|r| VerifyResult { ok: r.ok, problems: r.problems }))
    }

    fn resolve(&mut self, _env: Env, output: VerifyResult) -> napi::Result<VerifyResult> {
        Ok(output)
    }
}

/// Re-hashes every file a wotd model directory's marker lists and reports what is missing,
/// resized or modified.
#[napi]
pub fn verify_model_dir(dir: String) -> AsyncTask<VerifyTask> {
    AsyncTask::new(VerifyTask { dir })
}

/// Progress of one file of a Hub download.
#[napi(object)]
#[derive(Clone)]
pub struct DownloadProgress {
    /// Repository path of the file.
    pub file: String,
    /// 0-based index of this file among `fileCount`.
    pub file_index: u32,
    /// Number of files being fetched.
    pub file_count: u32,
    /// Bytes of this file received so far.
    pub bytes_done: i64,
    /// Size of this file in bytes.
    pub bytes_total: i64,
}

type ProgressCallback = ThreadsafeFunction<DownloadProgress, (), DownloadProgress, Status, false>;

/// Background work of `downloadFromHub`.
pub struct DownloadTask {
    id: String,
    options: ResolveOptions,
    on_progress: Option<ProgressCallback>,
}

#[napi]
impl Task for DownloadTask {
    type Output = ResolvedModel;
    type JsValue = ResolvedModel;

    fn compute(&mut self) -> napi::Result<ResolvedModel> {
        let callback = self.on_progress.as_ref();
        let report = move |p: &CoreProgress| {
            if let Some(cb) = callback {
                let p = DownloadProgress {
                    file: p.file.clone(),
                    file_index: p.file_index as u32,
                    file_count: p.file_count as u32,
                    bytes_done: p.bytes_done as i64,
                    bytes_total: p.bytes_total as i64,
                };
                // Non-blocking: a slow JS callback must not stall the download.
                cb.call(p, ThreadsafeFunctionCallMode::NonBlocking);
            }
        };
        guard(|| {
            let dir = io::download_from_hub(&self.id, &self.options, Some(&report))?;
            let host = io::hub::endpoint_host(&self.options.endpoint()).to_string();
            Ok(ResolvedModel {
                id: self.id.clone(),
                looked: vec![format!("{host}: downloaded to {}", dir.display())],
                dir: dir.to_string_lossy().into_owned(),
                file: None,
                source: "hub".to_string(),
            })
        })
    }

    fn resolve(&mut self, _env: Env, output: ResolvedModel) -> napi::Result<ResolvedModel> {
        Ok(output)
    }
}

/// Downloads a model's safetensors/GGUF weights and config/tokenizer files from the Hugging
/// Face Hub (`HF_ENDPOINT` honoured) into the standard HF cache; never pickled `.bin` files.
/// `onProgress` receives per-file byte counts. Rejects with `[MODEL_NOT_FOUND]` when the Hub
/// is unreachable (checked with a short connect timeout) or offline mode is on.
#[napi]
pub fn download_from_hub(
    id: String,
    revision: Option<String>,
    #[napi(ts_arg_type = "((progress: DownloadProgress) => void) | undefined | null")] on_progress: Option<ProgressCallback>,
) -> AsyncTask<DownloadTask> {
    let options = ResolveOptions { revision, ..Default::default() };
    AsyncTask::new(DownloadTask { id, options, on_progress })
}
