//! Binding of [`crate::embed::Embedder`]: `NativeEmbedder` (load and embed run as AsyncTasks
//! on the libuv pool, embedding under the protocol of [`super::task`]).

use super::guard;
use super::task::{report, CancelToken, ProgressFn};
use crate::embed::{Embedder, EmbedderOptions};
use crate::error::WotdError;
use crate::io::{Pooling, ResolveOptions};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[napi(object)]
#[derive(Default)]
pub struct EmbedderLoadOptions {
    /// `cls` | `mean` | `max` | `lasttoken`; default: the model's `1_Pooling/config.json`.
    pub pooling: Option<String>,
    /// A lower token limit than the model's.
    pub max_length: Option<u32>,
    /// Default true.
    pub normalize: Option<bool>,
    /// Never contact the Hub.
    pub offline: Option<bool>,
    /// Hub revision (branch, tag or commit) to resolve.
    pub revision: Option<String>,
}

#[napi(object)]
pub struct EmbedOutput {
    /// `texts.length * dim` values, row-major, in input order.
    pub vectors: Float32Array,
    pub dim: u32,
    /// Whether text i was cut at the model's max length.
    pub truncated: Vec<bool>,
    /// Tokens each text became (after truncation, special tokens included).
    pub token_counts: Vec<u32>,
}

#[napi(object)]
pub struct TokenizeOutput {
    pub ids: Vec<u32>,
    pub truncated: bool,
}

/// A loaded embedder. Create with `NativeEmbedder.load`.
#[napi]
pub struct NativeEmbedder {
    inner: Arc<Embedder>,
}

fn parse_pooling(s: &str) -> crate::Result<Pooling> {
    match s.to_ascii_lowercase().as_str() {
        "cls" => Ok(Pooling::Cls),
        "mean" => Ok(Pooling::Mean),
        "max" => Ok(Pooling::Max),
        "lasttoken" | "last" => Ok(Pooling::LastToken),
        other => Err(WotdError::InvalidInput(format!("unknown pooling {other:?} (cls, mean, max, lasttoken)"))),
    }
}

pub struct LoadTask {
    path_or_id: String,
    opts: EmbedderLoadOptions,
}

impl Task for LoadTask {
    type Output = Embedder;
    type JsValue = NativeEmbedder;

    fn compute(&mut self) -> Result<Embedder> {
        guard(|| {
            let o = &self.opts;
            let resolve = ResolveOptions { offline: o.offline.unwrap_or(false), revision: o.revision.clone(), ..Default::default() };
            let opts = EmbedderOptions {
                pooling: o.pooling.as_deref().map(parse_pooling).transpose()?,
                max_length: o.max_length.map(|m| m as usize),
                normalize: o.normalize,
            };
            Embedder::load(&self.path_or_id, &resolve, &opts)
        })
    }

    fn resolve(&mut self, _env: Env, output: Embedder) -> Result<NativeEmbedder> {
        Ok(NativeEmbedder { inner: Arc::new(output) })
    }
}

pub struct EmbedTask {
    embedder: Arc<Embedder>,
    texts: Vec<String>,
    batch_size: usize,
    progress: Option<ProgressFn<(u32, u32)>>,
    cancel: Option<Arc<AtomicBool>>,
}

pub struct EmbedResult(crate::embed::Embeddings);

impl Task for EmbedTask {
    type Output = EmbedResult;
    type JsValue = EmbedOutput;

    fn compute(&mut self) -> Result<EmbedResult> {
        let texts = std::mem::take(&mut self.texts);
        guard(|| {
            let progress = self.progress.as_ref();
            let mut on_batch = |done: usize, total: usize| report(progress, || (done as u32, total as u32));
            self.embedder.embed(&texts, self.batch_size, &mut on_batch, self.cancel.as_deref()).map(EmbedResult)
        })
    }

    fn resolve(&mut self, _env: Env, output: EmbedResult) -> Result<EmbedOutput> {
        let e = output.0;
        Ok(EmbedOutput {
            dim: e.dim as u32,
            truncated: e.truncated,
            token_counts: e.token_counts.into_iter().map(|c| c as u32).collect(),
            vectors: Float32Array::new(e.vectors),
        })
    }
}

#[napi]
impl NativeEmbedder {
    /// Resolves a model (local path or Hugging Face id; see `resolveModel`) and loads it off
    /// the main thread.
    #[napi(ts_return_type = "Promise<NativeEmbedder>")]
    pub fn load(path_or_id: String, opts: Option<EmbedderLoadOptions>) -> AsyncTask<LoadTask> {
        AsyncTask::new(LoadTask { path_or_id, opts: opts.unwrap_or_default() })
    }

    /// Embeds `texts` (batches grouped by token count) off the main thread.
    /// `onProgress(done, total)` is called after each batch; `cancel` stops the work between
    /// batches with a `[CANCELLED]` error.
    #[napi(ts_return_type = "Promise<EmbedOutput>")]
    pub fn embed(
        &self,
        texts: Vec<String>,
        batch_size: Option<u32>,
        #[napi(ts_arg_type = "((done: number, total: number) => void) | undefined | null")] on_progress: Option<ProgressFn<(u32, u32)>>,
        cancel: Option<&CancelToken>,
    ) -> AsyncTask<EmbedTask> {
        AsyncTask::new(EmbedTask {
            embedder: self.inner.clone(),
            texts,
            batch_size: batch_size.unwrap_or(64).max(1) as usize,
            progress: on_progress,
            cancel: cancel.map(CancelToken::flag),
        })
    }

    /// Token ids exactly as `embed` feeds them to the model (special tokens included).
    #[napi]
    pub fn tokenize(&self, text: String) -> Result<TokenizeOutput> {
        guard(|| {
            let (ids, truncated) = self.inner.tokenize(&text)?;
            Ok(TokenizeOutput { ids, truncated })
        })
    }

    #[napi(getter)]
    pub fn dimension(&self) -> u32 {
        self.inner.info().dim as u32
    }

    #[napi(getter)]
    pub fn model_id(&self) -> String {
        self.inner.info().model_id.clone()
    }

    /// What identifies these weights: an HF commit, the sha256 of the pulled weights, or a
    /// local file fingerprint.
    #[napi(getter)]
    pub fn revision(&self) -> String {
        self.inner.info().revision.clone()
    }

    #[napi(getter)]
    pub fn pooling(&self) -> String {
        self.inner.info().pooling.as_str().to_string()
    }

    #[napi(getter)]
    pub fn normalize(&self) -> bool {
        self.inner.info().normalize
    }

    #[napi(getter)]
    pub fn max_length(&self) -> u32 {
        self.inner.info().max_length as u32
    }

    #[napi(getter)]
    pub fn model_type(&self) -> String {
        self.inner.info().model_type.clone()
    }

    #[napi(getter)]
    pub fn dir(&self) -> String {
        self.inner.info().dir.display().to_string()
    }
}

/// Dot products of each query (row-major, `dim` wide) with every row of `matrix`:
/// `queries.length / dim` blocks of `matrix.length / dim` values. Synchronous: one f32 matrix
/// product of at most a few hundred milliseconds, on the calling thread and rayon's pool.
#[napi]
pub fn dot_products(matrix: Float32Array, queries: Float32Array, dim: u32) -> Result<Float32Array> {
    guard(|| Ok(Float32Array::new(crate::embed::similarity::dot_products(&matrix, &queries, dim as usize)?)))
}
