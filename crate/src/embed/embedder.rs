//! The embedder: a resolved model directory -> tokenizer + encoder + pooling, and texts ->
//! L2-normalised vectors.

use super::batching::plan_batches;
use super::pooling::{l2_normalize, pool};
use super::revision::model_revision;
use crate::error::{Context, Result, WotdError};
use crate::io::{resolve, ModelFiles, Pooling, ResolveOptions, TextTokenizer};
use crate::models::bert::{BertConfig, BertModel, PositionIds};
use crate::models::xlm_roberta;
use candle_core::{Device, Tensor};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Choices a caller may override; the defaults follow the model's own configuration.
#[derive(Clone, Debug, Default)]
pub struct EmbedderOptions {
    /// Replaces the pooling of `1_Pooling/config.json`.
    pub pooling: Option<Pooling>,
    /// A lower token limit than the model's (never a higher one).
    pub max_length: Option<usize>,
    /// `Some(false)` returns raw pooled vectors. Default: normalised, whatever the model's
    /// `modules.json` says, since every later stage compares vectors by cosine.
    pub normalize: Option<bool>,
}

/// What identifies the vectors an embedder produces (everything the cache key needs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmbedderInfo {
    pub model_id: String,
    pub revision: String,
    pub pooling: Pooling,
    pub normalize: bool,
    pub dim: usize,
    /// Tokens per text, special tokens included; longer texts are truncated and reported.
    pub max_length: usize,
    pub model_type: String,
    pub dir: PathBuf,
}

/// Vectors of a batch of texts, in input order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Embeddings {
    /// `texts.len() * dim` values, row-major.
    pub vectors: Vec<f32>,
    pub dim: usize,
    /// Whether text i lost tokens to the max length.
    pub truncated: Vec<bool>,
    /// Tokens each text was encoded to (after truncation, special tokens included).
    pub token_counts: Vec<usize>,
}

impl Embeddings {
    pub fn len(&self) -> usize {
        self.truncated.len()
    }

    pub fn is_empty(&self) -> bool {
        self.truncated.is_empty()
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dim..(i + 1) * self.dim]
    }
}

pub struct Embedder {
    model: BertModel,
    tokenizer: TextTokenizer,
    info: EmbedderInfo,
    device: Device,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder").field("info", &self.info).finish()
    }
}

impl Embedder {
    /// Finds the model (local path, HF cache, Hub, wotd models; see [`crate::io::resolve`])
    /// and loads it.
    pub fn load(path_or_id: &str, resolve_opts: &ResolveOptions, opts: &EmbedderOptions) -> Result<Self> {
        let found = resolve(path_or_id, resolve_opts)?;
        let files = ModelFiles::open(found.path()).context(|| format!("opening embedder {} at {}", found.id, found.dir.display()))?;
        Self::from_files(&files, &found.id, opts).context(|| format!("loading embedder {}", found.id))
    }

    /// Loads a model directory (or a weight file inside one). `model_id` names it in the cache
    /// key and in messages; `None` uses the directory path.
    pub fn from_path(path: &Path, model_id: Option<&str>, opts: &EmbedderOptions) -> Result<Self> {
        let files = ModelFiles::open(path).context(|| format!("opening embedder at {}", path.display()))?;
        let id = model_id.map(String::from).unwrap_or_else(|| files.dir.display().to_string());
        Self::from_files(&files, &id, opts).context(|| format!("loading embedder {id}"))
    }

    pub fn from_files(files: &ModelFiles, model_id: &str, opts: &EmbedderOptions) -> Result<Self> {
        crate::runtime::configure_cpu_threads();
        let config_path = files.dir.join("config.json");
        let config_text = serde_json::to_string(&files.config).map_err(|e| WotdError::InvalidInput(e.to_string()))?;
        let config = BertConfig::from_json(&config_text).map_err(|e| match e {
            WotdError::InvalidInput(r) => WotdError::corrupt(&config_path, r),
            other => other,
        })?;
        let model_type = files.model_type().unwrap_or("bert").to_string();
        let weights = files.load_weights()?;
        let source = files.weights.first().cloned().unwrap_or_else(|| files.dir.clone());
        let model = if model_type == "bert" {
            BertModel::load(&config, &weights, &source, PositionIds::Sequential)?
        } else if xlm_roberta::is_model_type(&model_type) {
            xlm_roberta::load(&config, &weights, &source)?
        } else {
            return Err(WotdError::Unsupported(format!(
                "embedder architecture {model_type:?} (supported: bert, xlm-roberta)"
            )));
        };
        drop(weights);

        let model_max = model.max_input_length();
        let mut max_length = files.max_length.unwrap_or(model_max).min(model_max);
        if let Some(m) = opts.max_length {
            if m < 2 {
                return Err(WotdError::InvalidInput(format!("max length {m} leaves no room for a token between [CLS] and [SEP]")));
            }
            max_length = max_length.min(m);
        }
        let mut tokenizer = files.load_tokenizer()?;
        tokenizer.set_max_length(Some(max_length))?;
        if tokenizer.vocab_size() > config.vocab_size {
            return Err(WotdError::corrupt(
                &files.dir,
                format!("tokenizer has {} tokens but the model's table only {}", tokenizer.vocab_size(), config.vocab_size),
            ));
        }

        // sentence-transformers' default when a model ships no Pooling module is mean pooling.
        let pooling = opts.pooling.or(files.pooling).unwrap_or(Pooling::Mean);
        let info = EmbedderInfo {
            model_id: model_id.to_string(),
            revision: model_revision(files)?,
            pooling,
            normalize: opts.normalize.unwrap_or(true),
            dim: config.hidden_size,
            max_length,
            model_type,
            dir: files.dir.clone(),
        };
        Ok(Self { device: model.device().clone(), model, tokenizer, info })
    }

    pub fn info(&self) -> &EmbedderInfo {
        &self.info
    }

    pub fn dim(&self) -> usize {
        self.info.dim
    }

    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    pub fn model(&self) -> &BertModel {
        &self.model
    }

    /// Token ids of a text exactly as [`Embedder::embed`] feeds them to the model, and whether
    /// it was truncated. Surrounding whitespace is stripped first, as sentence-transformers
    /// does, so `"  word "` and `"word"` embed identically with every tokenizer.
    pub fn tokenize(&self, text: &str) -> Result<(Vec<u32>, bool)> {
        let enc = self.tokenizer.encode(text.trim(), true)?;
        Ok((enc.ids, enc.truncated))
    }

    /// Embeds `texts` in batches of at most `batch_size`, grouped by token count.
    /// `progress(done, total)` runs after every batch; `cancel` is checked before each batch
    /// and turns into [`WotdError::Cancelled`]. An empty list gives empty embeddings.
    pub fn embed(
        &self,
        texts: &[String],
        batch_size: usize,
        progress: &mut dyn FnMut(usize, usize),
        cancel: Option<&AtomicBool>,
    ) -> Result<Embeddings> {
        let dim = self.info.dim;
        let n = texts.len();
        let cancelled = || cancel.is_some_and(|c| c.load(Ordering::Relaxed));
        let mut encoded = Vec::with_capacity(n);
        for (i, t) in texts.iter().enumerate() {
            let e = self.tokenize(t).context(|| format!("tokenizing text {i}"))?;
            encoded.push(e);
        }
        let lengths: Vec<usize> = encoded.iter().map(|(ids, _)| ids.len()).collect();
        let mut out = Embeddings {
            vectors: vec![0f32; n * dim],
            dim,
            truncated: encoded.iter().map(|(_, t)| *t).collect(),
            token_counts: lengths.clone(),
        };
        let batches = plan_batches(&lengths, batch_size);
        let workers = worker_count().min(batches.len()).max(1);
        let mut done = 0;
        if workers == 1 {
            for batch in &batches {
                if cancelled() {
                    return Err(WotdError::Cancelled);
                }
                let rows = self.embed_batch(batch, &encoded)?;
                for (&i, row) in batch.iter().zip(rows) {
                    out.vectors[i * dim..(i + 1) * dim].copy_from_slice(&row);
                }
                done += batch.len();
                progress(done, n);
            }
            return Ok(out);
        }
        // Several batches in flight: while one thread runs the element-wise ops of its batch
        // (single-threaded in candle), the other's matmul keeps the second core busy. Workers
        // take batches in order from a shared counter and send rows back here, where output
        // and progress stay on the caller's thread.
        let next = std::sync::atomic::AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let (tx, rx) = std::sync::mpsc::channel::<Result<(usize, Vec<Vec<f32>>)>>();
        std::thread::scope(|scope| -> Result<()> {
            for _ in 0..workers {
                let tx = tx.clone();
                let (next, stop, batches, encoded) = (&next, &stop, &batches, &encoded);
                scope.spawn(move || loop {
                    if stop.load(Ordering::Relaxed) || cancelled() {
                        break;
                    }
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    let Some(batch) = batches.get(b) else { break };
                    let r = self.embed_batch(batch, encoded).map(|rows| (b, rows));
                    let failed = r.is_err();
                    if tx.send(r).is_err() || failed {
                        break;
                    }
                });
            }
            drop(tx);
            let mut result = Ok(());
            for msg in rx {
                if result.is_ok() && cancelled() {
                    stop.store(true, Ordering::Relaxed);
                    result = Err(WotdError::Cancelled);
                }
                if result.is_err() {
                    continue; // drain until the workers have stopped
                }
                match msg {
                    Ok((b, rows)) => {
                        for (&i, row) in batches[b].iter().zip(rows) {
                            out.vectors[i * dim..(i + 1) * dim].copy_from_slice(&row);
                        }
                        done += batches[b].len();
                        progress(done, n);
                    }
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        result = Err(e);
                    }
                }
            }
            result
        })?;
        if done < n {
            // Workers only stop early on cancellation or an error, and an error returned above.
            return Err(WotdError::Cancelled);
        }
        Ok(out)
    }

    /// Pads one batch to its longest member, encodes, pools and normalises it.
    fn embed_batch(&self, batch: &[usize], encoded: &[(Vec<u32>, bool)]) -> Result<Vec<Vec<f32>>> {
        let pad = self.model.pad_token_id();
        let seq = batch.iter().map(|&i| encoded[i].0.len()).max().unwrap_or(1).max(1);
        let mut ids = Vec::with_capacity(batch.len() * seq);
        let mut mask = Vec::with_capacity(batch.len() * seq);
        for &i in batch {
            let row = &encoded[i].0;
            ids.extend_from_slice(row);
            ids.extend(std::iter::repeat_n(pad, seq - row.len()));
            mask.extend(std::iter::repeat_n(1u32, row.len()));
            mask.extend(std::iter::repeat_n(0u32, seq - row.len()));
        }
        let ids = Tensor::from_vec(ids, (batch.len(), seq), &self.device)?;
        let mask = Tensor::from_vec(mask, (batch.len(), seq), &self.device)?;
        let hidden = self.model.forward(&ids, &mask)?;
        let mut pooled = pool(&hidden, &mask, self.info.pooling)?;
        if self.info.normalize {
            pooled = l2_normalize(&pooled)?;
        }
        Ok(pooled.to_vec2::<f32>()?)
    }
}

/// Batches embedded concurrently: `WOTD_EMBED_WORKERS`, else 2 when the machine has two or
/// more cores (more only adds contention: matmuls already use every core).
fn worker_count() -> usize {
    if let Some(n) = std::env::var("WOTD_EMBED_WORKERS").ok().and_then(|v| v.trim().parse::<usize>().ok()) {
        return n.max(1);
    }
    std::thread::available_parallelism().map(|n| n.get().min(2)).unwrap_or(1)
}
