//! `NativeAttributePredictor`: calibrated style / complexity / era probabilities as a JS
//! class. Conversion and scheduling only; the work is in `crate::rvq::predict`.

use super::guard;
use crate::error::{Result as CoreResult, WotdError};
use crate::rvq::{AttributePredictor, PredictorOptions, ATTRIBUTES};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::path::Path;
use std::sync::Arc;

#[napi(object)]
pub struct PredictorTrainOptions {
    /// L2 penalty on the summed log loss (default 1, i.e. C = 1).
    pub l2: Option<f64>,
    /// Cross-validation folds for the temperatures (default 5; below 2: none).
    pub folds: Option<u32>,
    pub seed: Option<u32>,
}

#[napi(object)]
pub struct PredictorAttributeInfo {
    pub temperature: f64,
    /// Out-of-fold accuracy on the training rows.
    pub cv_accuracy: Option<f64>,
}

#[napi(object)]
pub struct PredictorInfo {
    pub feature_names: Vec<String>,
    /// Per feature, its mean over the training rows.
    pub feature_means: Vec<f64>,
    pub trained_rows: u32,
    pub l2: f64,
    pub folds: u32,
    /// Style, complexity, era.
    pub attributes: Vec<PredictorAttributeInfo>,
}

pub struct PredictorTrainTask {
    /// The caller's array, not a copy (see `node/rvq.rs`'s `TrainTask`).
    features: Float32Array,
    names: Vec<String>,
    labels: CoreResult<[Vec<u8>; ATTRIBUTES]>,
    options: PredictorOptions,
}

impl Task for PredictorTrainTask {
    type Output = AttributePredictor;
    type JsValue = NativeAttributePredictor;

    fn compute(&mut self) -> Result<AttributePredictor> {
        let labels = std::mem::replace(&mut self.labels, Err(WotdError::Cancelled));
        guard(|| AttributePredictor::train(&self.features, std::mem::take(&mut self.names), &labels?, &self.options))
    }

    fn resolve(&mut self, _env: Env, output: AttributePredictor) -> Result<NativeAttributePredictor> {
        Ok(NativeAttributePredictor { inner: Arc::new(output) })
    }
}

#[napi]
pub struct NativeAttributePredictor {
    inner: Arc<AttributePredictor>,
}

fn label_columns(columns: Vec<Uint8Array>) -> CoreResult<[Vec<u8>; ATTRIBUTES]> {
    let n = columns.len();
    let cols: Vec<Vec<u8>> = columns.into_iter().map(|c| c.to_vec()).collect();
    cols.try_into()
        .map_err(|_| WotdError::InvalidInput(format!("labels need {ATTRIBUTES} columns (style, complexity, era), got {n}")))
}

#[napi]
impl NativeAttributePredictor {
    /// Fits the predictors on `features` (rows of `featureNames.length` numbers) off the main
    /// thread.
    #[napi(ts_return_type = "Promise<NativeAttributePredictor>")]
    pub fn train(features: Float32Array, feature_names: Vec<String>, labels: Vec<Uint8Array>, options: Option<PredictorTrainOptions>) -> AsyncTask<PredictorTrainTask> {
        let mut opts = PredictorOptions::default();
        if let Some(o) = options {
            opts.l2 = o.l2.unwrap_or(opts.l2);
            opts.folds = o.folds.map_or(opts.folds, |f| f as usize);
            opts.seed = o.seed.map_or(opts.seed, u64::from);
        }
        AsyncTask::new(PredictorTrainTask { features, names: feature_names, labels: label_columns(labels), options: opts })
    }

    /// The predictor saved in `dir`, or `null` when there is none.
    #[napi]
    pub fn load(dir: String) -> Result<Option<NativeAttributePredictor>> {
        Ok(guard(|| AttributePredictor::load(Path::new(&dir)))?.map(|p| NativeAttributePredictor { inner: Arc::new(p) }))
    }

    #[napi]
    pub fn save(&self, dir: String) -> Result<()> {
        guard(|| self.inner.save(Path::new(&dir)))
    }

    #[napi(getter)]
    pub fn info(&self) -> PredictorInfo {
        let p = &self.inner;
        PredictorInfo {
            feature_names: p.feature_names.clone(),
            feature_means: p.feature_means.iter().map(|&v| v as f64).collect(),
            trained_rows: p.trained_rows as u32,
            l2: p.l2,
            folds: p.folds as u32,
            attributes: p
                .attributes
                .iter()
                .map(|m| PredictorAttributeInfo { temperature: m.temperature as f64, cv_accuracy: m.cv_accuracy.is_finite().then_some(m.cv_accuracy) })
                .collect(),
        }
    }

    /// Probabilities, flat: row `i`, attribute `a`, value `k` at `i * 12 + a * 4 + k`.
    #[napi]
    pub fn predict(&self, features: Float32Array) -> Result<Float32Array> {
        guard(|| Ok(Float32Array::new(self.inner.predict(&features)?)))
    }
}
