//! `RvqCodebook`: the semantic-ID quantizer as a JS class. Conversion and scheduling only;
//! the work is in `crate::rvq`.

use super::guard;
use super::task::{cancel_flag, report, CancelToken, ProgressFn};
use crate::error::{Result as CoreResult, WotdError};
use crate::rvq::{
    self, Codebook, EncodeOptions, Expectation, Metrics, Mode, ModeKind, SemanticId, TrainOptions,
    ATTRIBUTES, CODES, LEVELS,
};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Attribute names (one per aligned level: style, complexity, era) and the four values of
/// each, in enum order: value `k` owns codes `8k..8k+7` of its level.
#[napi(object)]
pub struct AttributeVocab {
    pub names: Vec<String>,
    pub values: Vec<Vec<String>>,
}

impl From<&rvq::AttributeVocab> for AttributeVocab {
    fn from(v: &rvq::AttributeVocab) -> Self {
        AttributeVocab { names: v.names.to_vec(), values: v.values.to_vec() }
    }
}

impl TryFrom<AttributeVocab> for rvq::AttributeVocab {
    type Error = WotdError;

    fn try_from(v: AttributeVocab) -> CoreResult<Self> {
        rvq::AttributeVocab::from_lists(&v.names, &v.values)
    }
}

/// The default vocabulary of DESIGN.md: style, complexity, era.
#[napi]
pub fn default_attribute_vocab() -> AttributeVocab {
    (&rvq::AttributeVocab::default()).into()
}

/// Per-word attribute values: three columns (style, complexity, era), each a `Uint8Array`
/// or `number[]` with one value 0-3 per vector. (Spelled out in signatures rather than
/// aliased, because the generated index.d.ts only knows napi types.)
type JsLabels = Vec<Either<Uint8Array, Vec<u32>>>;

fn labels_from_js(columns: JsLabels) -> CoreResult<[Vec<u8>; ATTRIBUTES]> {
    let count = columns.len();
    let columns: Vec<Vec<u8>> = columns
        .into_iter()
        .map(|c| match c {
            Either::A(bytes) => Ok(bytes.to_vec()),
            Either::B(numbers) => numbers
                .into_iter()
                .map(|x| u8::try_from(x).map_err(|_| WotdError::InvalidInput(format!("label {x} is out of range 0-3"))))
                .collect(),
        })
        .collect::<CoreResult<_>>()?;
    columns
        .try_into()
        .map_err(|_| WotdError::InvalidInput(format!("labels need {ATTRIBUTES} columns (style, complexity, era), got {count}")))
}

pub(super) fn id_from_js(id: &[u32]) -> CoreResult<SemanticId> {
    if id.len() != LEVELS || id.iter().any(|&c| c as usize >= CODES) {
        return Err(WotdError::InvalidInput(format!("an ID is {LEVELS} codes 0-{}, got {id:?}", CODES - 1)));
    }
    Ok(std::array::from_fn(|l| id[l] as u8))
}

fn id_to_js(id: SemanticId) -> Vec<u32> {
    id.iter().map(|&c| c as u32).collect()
}

fn mode_name(mode: ModeKind) -> String {
    match mode {
        ModeKind::Unsupervised => "unsupervised".into(),
        ModeKind::Aligned => "aligned".into(),
    }
}

#[napi(object)]
pub struct RvqTrainOptions {
    /// Defaults to `'aligned'` when labels are given, else `'unsupervised'`.
    #[napi(ts_type = "'unsupervised' | 'aligned'")]
    pub mode: Option<String>,
    /// Required in aligned mode: `[style, complexity, era]`, one value 0-3 per vector.
    pub labels: Option<Vec<Either<Uint8Array, Vec<u32>>>>,
    /// Same seed and data, same codebooks byte for byte. Default 0.
    pub seed: Option<u32>,
    /// Upper bound on Lloyd iterations per level (default 100).
    pub iterations: Option<u32>,
    /// Recorded so that `load` can refuse vectors from another embedder.
    pub embedder_model_id: Option<String>,
    /// Attribute names for aligned mode (default: style, complexity, era).
    pub vocab: Option<AttributeVocab>,
    /// Aligned mode: fit nuance codes with later attributes removed, so `code >> 3`
    /// generalises to unseen words (default true).
    pub disentangle: Option<bool>,
}

/// Reported after every Lloyd iteration of training.
#[napi(object)]
pub struct RvqProgress {
    /// 0-3.
    pub level: u32,
    pub iteration: u32,
    /// Sum of squared distances of the level's residuals to their codes.
    pub inertia: f64,
}

/// What loading codebooks should insist on; a mismatch is an `INVALID_INPUT` error naming both.
#[napi(object)]
pub struct RvqExpectation {
    pub dimension: Option<u32>,
    pub embedder_model_id: Option<String>,
}

#[napi(object)]
pub struct RvqEncodeOptions {
    /// Partial IDs kept per level (default 1: greedy). Beam never reconstructs worse.
    pub beam: Option<u32>,
    /// Aligned codebooks: keep each vector's levels 0-2 within its known values.
    pub labels: Option<Vec<Either<Uint8Array, Vec<u32>>>>,
}

/// Cosine between vectors and their decoded IDs using the first `levels` levels.
#[napi(object)]
pub struct RvqReconstruction {
    pub levels: u32,
    pub mean: f64,
    /// 10th percentile.
    pub p10: f64,
}

/// The RVQ metrics of DESIGN.md.
#[napi(object)]
pub struct RvqMetrics {
    pub points: u32,
    /// Per level: share of the 32 codes used.
    pub utilisation: Vec<f64>,
    /// Per level: exp(entropy of code usage) / 32.
    pub perplexity: Vec<f64>,
    /// Entry `l` uses the first `l + 1` levels.
    pub reconstruction: Vec<RvqReconstruction>,
    /// Share of vectors whose 3-level prefix another vector shares.
    pub collision_rate3: f64,
    /// Share of vectors whose full ID another vector shares.
    pub collision_rate4: f64,
    /// Share of vectors whose nearest neighbour has the same level-0 code.
    pub locality: f64,
    /// Per attribute (style, complexity, era): share with `code >> 3` equal to the label.
    pub label_accuracy: Option<Vec<f64>>,
    /// `nmi[level][attribute]`.
    pub nmi: Option<Vec<Vec<f64>>>,
}

impl From<Metrics> for RvqMetrics {
    fn from(m: Metrics) -> Self {
        let f = |xs: &[f32]| xs.iter().map(|&x| x as f64).collect::<Vec<_>>();
        RvqMetrics {
            points: m.points as u32,
            utilisation: f(&m.utilisation),
            perplexity: f(&m.perplexity),
            reconstruction: m
                .reconstruction
                .iter()
                .map(|r| RvqReconstruction { levels: r.levels as u32, mean: r.mean as f64, p10: r.p10 as f64 })
                .collect(),
            collision_rate3: m.collision_rate_3 as f64,
            collision_rate4: m.collision_rate_4 as f64,
            locality: m.locality as f64,
            label_accuracy: m.label_accuracy.map(|a| f(&a)),
            nmi: m.nmi.map(|rows| rows.iter().map(|r| f(r)).collect()),
        }
    }
}

/// How the codebooks were trained (their saved metadata).
#[napi(object)]
pub struct RvqInfo {
    #[napi(ts_type = "'unsupervised' | 'aligned'")]
    pub mode: String,
    pub dimension: u32,
    pub embedder_model_id: Option<String>,
    pub vocab: Option<AttributeVocab>,
    pub seed: f64,
    pub max_iterations: u32,
    pub trained_points: u32,
    pub disentangled: bool,
    /// Per level, the codes that held training points; encoding never picks the others.
    pub active_codes: Vec<Vec<u32>>,
}

/// Bad options are carried into the task rather than thrown, so that a Promise-returning
/// call always reports failure by rejecting.
pub struct TrainTask {
    /// The caller's array itself, not a copy (a catalogue-sized matrix is tens of MB); JS must
    /// not write to it while the task runs, which the TS wrappers never do.
    vectors: Float32Array,
    dim: usize,
    options: CoreResult<TrainOptions>,
    on_progress: Option<ProgressFn<RvqProgress>>,
    cancel: Arc<AtomicBool>,
}

impl Task for TrainTask {
    type Output = Codebook;
    type JsValue = RvqCodebook;

    fn compute(&mut self) -> Result<Codebook> {
        let options = std::mem::replace(&mut self.options, Err(WotdError::Cancelled));
        let (vectors, dim, on_progress) = (&self.vectors, self.dim, self.on_progress.as_ref());
        guard(|| {
            let mut on_iteration = |p: &rvq::TrainProgress| {
                report(on_progress, || RvqProgress { level: p.level as u32, iteration: p.iteration as u32, inertia: p.inertia });
                Ok(())
            };
            rvq::train_with_progress(vectors, dim, &options?, &mut on_iteration, &self.cancel)
        })
    }

    fn resolve(&mut self, _env: Env, output: Codebook) -> Result<RvqCodebook> {
        Ok(RvqCodebook { inner: Arc::new(output) })
    }
}

pub struct EvaluateTask {
    book: Arc<Codebook>,
    /// Not copied, as in [`TrainTask`].
    vectors: Float32Array,
    labels: CoreResult<Option<[Vec<u8>; ATTRIBUTES]>>,
}

impl Task for EvaluateTask {
    type Output = Metrics;
    type JsValue = RvqMetrics;

    fn compute(&mut self) -> Result<Metrics> {
        let labels = std::mem::replace(&mut self.labels, Err(WotdError::Cancelled));
        guard(|| self.book.evaluate(&self.vectors, labels?.as_ref()))
    }

    fn resolve(&mut self, _env: Env, output: Metrics) -> Result<RvqMetrics> {
        Ok(output.into())
    }
}

/// Residual-vector-quantization codebooks: 4 levels x 32 codes turning L2-normalised
/// embeddings into semantic IDs `[style, complexity, era, variation]` and back.
#[napi]
pub struct RvqCodebook {
    inner: Arc<Codebook>,
}

#[napi]
impl RvqCodebook {
    /// Trains codebooks on `vectors` (`n x dim`, row-major) off the main thread.
    /// `onProgress` is called after every Lloyd iteration; `cancel` stops training between
    /// iterations with a `[CANCELLED]` error.
    #[napi(ts_return_type = "Promise<RvqCodebook>")]
    pub fn train(
        vectors: Float32Array,
        dim: u32,
        options: Option<RvqTrainOptions>,
        #[napi(ts_arg_type = "((progress: RvqProgress) => void) | undefined | null")] on_progress: Option<ProgressFn<RvqProgress>>,
        cancel: Option<&CancelToken>,
    ) -> AsyncTask<TrainTask> {
        let options = train_options(options);
        AsyncTask::new(TrainTask { vectors, dim: dim as usize, options, on_progress, cancel: cancel_flag(cancel) })
    }

    /// Reads codebooks saved by `save`; refuses them when `expect` names another dimension
    /// or embedder than they were trained for.
    #[napi]
    pub fn load(dir: String, expect: Option<RvqExpectation>) -> Result<RvqCodebook> {
        let expect = expect.map_or_else(Expectation::default, |e| Expectation {
            dimension: e.dimension.map(|d| d as usize),
            embedder_model_id: e.embedder_model_id,
        });
        let book = guard(|| Codebook::load(Path::new(&dir), &expect))?;
        Ok(RvqCodebook { inner: Arc::new(book) })
    }

    /// Writes `codebooks.safetensors` and `codebooks.json` into `dir` (created if missing).
    #[napi]
    pub fn save(&self, dir: String) -> Result<()> {
        guard(|| self.inner.save(Path::new(&dir)))
    }

    /// Dimension of the vectors these codebooks take.
    #[napi(getter)]
    pub fn dimension(&self) -> u32 {
        self.inner.dimension() as u32
    }

    /// How the codebooks were trained.
    #[napi(getter)]
    pub fn info(&self) -> RvqInfo {
        let i = self.inner.info();
        RvqInfo {
            mode: mode_name(i.mode),
            dimension: i.dimension as u32,
            embedder_model_id: i.embedder_model_id.clone(),
            vocab: i.vocab.as_ref().map(Into::into),
            seed: i.seed as f64,
            max_iterations: i.max_iterations as u32,
            trained_points: i.trained_points as u32,
            disentangled: i.disentangled,
            active_codes: (0..LEVELS)
                .map(|l| (0..CODES).filter(|&j| self.inner.is_active(l, j)).map(|j| j as u32).collect())
                .collect(),
        }
    }

    /// The ID of one vector: greedy, or beam search with `beam > 1`.
    #[napi]
    pub fn encode(&self, vector: Float32Array, beam: Option<u32>) -> Result<Vec<u32>> {
        guard(|| Ok(id_to_js(self.inner.encode_beam(&vector, beam.unwrap_or(1) as usize)?)))
    }

    /// IDs of `n` vectors (`n x dimension`, row-major), flat: codes `4i..4i+3` are vector `i`'s.
    #[napi]
    pub fn encode_many(&self, vectors: Float32Array, n: u32, options: Option<RvqEncodeOptions>) -> Result<Uint8Array> {
        guard(|| {
            let want = n as usize * self.inner.dimension();
            if vectors.len() != want {
                return Err(WotdError::InvalidInput(format!(
                    "{n} vectors of dimension {} are {want} numbers, got {}",
                    self.inner.dimension(),
                    vectors.len()
                )));
            }
            let (beam, labels) = match options {
                Some(o) => (o.beam.unwrap_or(1) as usize, o.labels.map(labels_from_js).transpose()?),
                None => (1, None),
            };
            let ids = self.inner.encode_many(&vectors, &EncodeOptions { beam, labels: labels.as_ref() })?;
            Ok(Uint8Array::new(ids.concat()))
        })
    }

    /// The unit vector an ID stands for (sum of its codewords, renormalised).
    #[napi]
    pub fn decode(&self, id: Vec<u32>) -> Result<Float32Array> {
        guard(|| Ok(Float32Array::new(self.inner.decode(&id_from_js(&id)?)?)))
    }

    /// Prefix-weighted similarity in [0, 1]: agreeing levels count 8, 4, 2, 1, up to the
    /// first level where the IDs differ.
    #[napi]
    pub fn similarity(&self, a: Vec<u32>, b: Vec<u32>) -> Result<f64> {
        guard(|| Ok(rvq::similarity(&id_from_js(&a)?, &id_from_js(&b)?)))
    }

    /// The ID a fraction `t` (0-1) of the way from `a` to `b`: decode, interpolate,
    /// renormalise, encode.
    #[napi]
    pub fn interpolate(&self, a: Vec<u32>, b: Vec<u32>, t: f64) -> Result<Vec<u32>> {
        guard(|| Ok(id_to_js(self.inner.interpolate(&id_from_js(&a)?, &id_from_js(&b)?, t as f32)?)))
    }

    /// Encodes `vectors` greedily and measures utilisation, perplexity, reconstruction,
    /// collisions, locality and, given labels, label accuracy and NMI. Off the main thread.
    #[napi(ts_return_type = "Promise<RvqMetrics>")]
    pub fn evaluate(&self, vectors: Float32Array, labels: Option<Vec<Either<Uint8Array, Vec<u32>>>>) -> AsyncTask<EvaluateTask> {
        let labels = labels.map(labels_from_js).transpose();
        AsyncTask::new(EvaluateTask { book: self.inner.clone(), vectors, labels })
    }
}

fn train_options(js: Option<RvqTrainOptions>) -> CoreResult<TrainOptions> {
    let mut options = TrainOptions::default();
    let Some(js) = js else { return Ok(options) };
    let labels = js.labels.map(labels_from_js).transpose()?;
    options.mode = match (js.mode.as_deref(), labels) {
        (Some("aligned") | None, Some(labels)) => Mode::Aligned { labels },
        (Some("aligned"), None) => {
            return Err(WotdError::InvalidInput("aligned mode needs labels (style, complexity, era per vector)".into()))
        }
        (Some("unsupervised") | None, None) => Mode::Unsupervised,
        (Some("unsupervised"), Some(_)) => {
            return Err(WotdError::InvalidInput("labels were given but mode is 'unsupervised'; drop one".into()))
        }
        (Some(other), _) => {
            return Err(WotdError::InvalidInput(format!("mode is 'unsupervised' or 'aligned', not {other:?}")))
        }
    };
    options.seed = js.seed.unwrap_or(0) as u64;
    if let Some(it) = js.iterations {
        options.max_iterations = it as usize;
    }
    options.embedder_model_id = js.embedder_model_id;
    if let Some(vocab) = js.vocab {
        options.vocab = vocab.try_into()?;
    }
    if let Some(d) = js.disentangle {
        options.disentangle = d;
    }
    Ok(options)
}
