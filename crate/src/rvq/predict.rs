//! Attribute predictors: calibrated probabilities of style, complexity and era for a word.
//!
//! One L2-regularised multinomial logistic regression per attribute, over whatever feature
//! rows the caller gives (the word's vector and a few side features), fitted by L-BFGS, then
//! calibrated by one temperature per attribute fitted on out-of-fold logits (k-fold cross
//! validation on the training rows), so that a probability of 0.7 is right about 70% of the
//! time on words the predictor never saw. Hybrid semantic IDs take their attribute fields
//! from the most probable value; the nuance codes still come from the codebooks.
//!
//! Hand-written rather than a library: the problem is small (a few thousand rows, a few
//! hundred features, four classes), and a dependency such as linfa would bring ndarray and an
//! optimisation framework for one convex fit.

use super::rng::Rng;
use crate::io::atomic::write_file;
use super::{ATTRIBUTES, VALUES};
use crate::error::{Result, WotdError};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const PREDICTOR_FILE: &str = "attributes.json";
const FORMAT: &str = "wotd-attribute-predictor";
const FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug)]
pub struct PredictorOptions {
    /// L2 penalty on the weights (the loss is summed over rows, so `1.0` is the usual C = 1).
    pub l2: f64,
    /// Folds of the cross-validation that fits the temperatures; below 2 leaves them at 1.
    pub folds: usize,
    pub max_iterations: usize,
    pub seed: u64,
}

impl Default for PredictorOptions {
    fn default() -> Self {
        PredictorOptions { l2: 1.0, folds: 5, max_iterations: 400, seed: 0 }
    }
}

/// One attribute's model: `logits = W x + b`, probabilities `softmax(logits / temperature)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttributeModel {
    /// `[VALUES][features]`, row-major.
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
    pub temperature: f32,
    /// Out-of-fold accuracy on the training rows (before the final fit on all of them).
    pub cv_accuracy: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttributePredictor {
    format: String,
    version: u32,
    /// What each feature column is, so rows built another way are refused.
    pub feature_names: Vec<String>,
    /// Mean of each feature over the training rows: what a caller with no side information
    /// about a vector (only the vector) passes for the other features.
    pub feature_means: Vec<f32>,
    pub l2: f64,
    pub folds: usize,
    pub trained_rows: usize,
    pub attributes: Vec<AttributeModel>,
}

impl AttributePredictor {
    /// Fits one model per attribute. `features` is `rows x feature_names.len()` row-major;
    /// `labels[a][i]` is row `i`'s value 0-3 of attribute `a`.
    pub fn train(features: &[f32], feature_names: Vec<String>, labels: &[Vec<u8>; ATTRIBUTES], opts: &PredictorOptions) -> Result<Self> {
        let d = feature_names.len();
        if d == 0 || features.is_empty() || features.len() % d != 0 {
            return Err(WotdError::InvalidInput(format!("{} feature numbers do not make rows of {d} features", features.len())));
        }
        let n = features.len() / d;
        for (a, col) in labels.iter().enumerate() {
            if col.len() != n {
                return Err(WotdError::InvalidInput(format!("attribute {a} has {} labels for {n} rows", col.len())));
            }
            if let Some(v) = col.iter().find(|&&v| v as usize >= VALUES) {
                return Err(WotdError::InvalidInput(format!("label {v} of attribute {a} is out of range 0-{}", VALUES - 1)));
            }
        }
        if features.iter().any(|x| !x.is_finite()) {
            return Err(WotdError::InvalidInput("feature rows hold a NaN or infinite number".into()));
        }
        let data = Data { x: features, d, n };
        let attributes = std::thread::scope(|s| {
            let handles: Vec<_> = labels.iter().enumerate().map(|(a, y)| s.spawn(move || fit_attribute(&data, y, opts, a as u64))).collect();
            handles.into_iter().map(|h| h.join().expect("attribute fit panicked")).collect::<Vec<_>>()
        });
        let feature_means = (0..d).map(|j| (features.iter().skip(j).step_by(d).map(|&v| v as f64).sum::<f64>() / n as f64) as f32).collect();
        Ok(AttributePredictor {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            feature_names,
            feature_means,
            l2: opts.l2,
            folds: opts.folds,
            trained_rows: n,
            attributes,
        })
    }

    pub fn features(&self) -> usize {
        self.feature_names.len()
    }

    /// Probabilities `rows x ATTRIBUTES x VALUES`, row-major.
    pub fn predict(&self, features: &[f32]) -> Result<Vec<f32>> {
        let d = self.features();
        if features.len() % d != 0 {
            return Err(WotdError::InvalidInput(format!("{} feature numbers do not make rows of {d} features", features.len())));
        }
        let mut out = Vec::with_capacity(features.len() / d * ATTRIBUTES * VALUES);
        for row in features.chunks_exact(d) {
            for m in &self.attributes {
                let mut z = logits(&m.weights, &m.bias, row);
                z.iter_mut().for_each(|v| *v /= m.temperature as f64);
                out.extend(softmax(&z).iter().map(|&p| p as f32));
            }
        }
        Ok(out)
    }

    /// The most probable value of each attribute, as three label columns.
    pub fn predict_labels(&self, features: &[f32]) -> Result<[Vec<u8>; ATTRIBUTES]> {
        let probs = self.predict(features)?;
        let mut cols: [Vec<u8>; ATTRIBUTES] = Default::default();
        for row in probs.chunks_exact(ATTRIBUTES * VALUES) {
            for (a, p) in row.chunks_exact(VALUES).enumerate() {
                cols[a].push(argmax(p) as u8);
            }
        }
        Ok(cols)
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| WotdError::io(dir, e))?;
        let json = serde_json::to_vec(self).expect("predictor serialises");
        write_file(&dir.join(PREDICTOR_FILE), &json)
    }

    /// `Ok(None)` when the folder holds no predictor (codebooks of another mode).
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(PREDICTOR_FILE);
        let raw = match std::fs::read(&path) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(WotdError::io(&path, e)),
        };
        let p: AttributePredictor = serde_json::from_slice(&raw).map_err(|e| WotdError::corrupt(&path, e.to_string()))?;
        if p.format != FORMAT {
            return Err(WotdError::corrupt(&path, format!("format is {:?}, not {FORMAT:?}", p.format)));
        }
        if p.version > FORMAT_VERSION {
            return Err(WotdError::Unsupported(format!("{} has predictor format version {}; this build reads up to {FORMAT_VERSION}", path.display(), p.version)));
        }
        let d = p.features();
        let sound = p.attributes.len() == ATTRIBUTES
            && p.feature_means.len() == d
            && p.attributes.iter().all(|m| m.weights.len() == VALUES * d && m.bias.len() == VALUES && m.temperature.is_finite() && m.temperature > 0.0);
        if !sound {
            return Err(WotdError::corrupt(&path, "weights do not match the feature count".to_string()));
        }
        Ok(Some(p))
    }
}

#[derive(Clone, Copy)]
struct Data<'a> {
    x: &'a [f32],
    d: usize,
    n: usize,
}

impl Data<'_> {
    fn row(&self, i: usize) -> &[f32] {
        &self.x[i * self.d..(i + 1) * self.d]
    }
}

fn fit_attribute(data: &Data, y: &[u8], opts: &PredictorOptions, attribute: u64) -> AttributeModel {
    let all: Vec<usize> = (0..data.n).collect();
    // Out-of-fold logits: each row scored by a model that never saw it.
    let mut oof: Vec<[f64; VALUES]> = vec![[0.0; VALUES]; data.n];
    let mut cv_accuracy = f64::NAN;
    if opts.folds >= 2 && data.n >= opts.folds * 2 {
        let mut order = all.clone();
        let mut rng = Rng::derive(opts.seed, 0xA77_0000 + attribute);
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        let mut hits = 0usize;
        for f in 0..opts.folds {
            let test: Vec<usize> = order.iter().copied().skip(f).step_by(opts.folds).collect();
            let is_test: std::collections::HashSet<usize> = test.iter().copied().collect();
            let train: Vec<usize> = order.iter().copied().filter(|i| !is_test.contains(i)).collect();
            let (w, b) = fit(data, y, &train, opts);
            for &i in &test {
                let z = logits(&w, &b, data.row(i));
                hits += usize::from(argmax_f64(&z) == y[i] as usize);
                oof[i].copy_from_slice(&z);
            }
        }
        cv_accuracy = hits as f64 / data.n as f64;
    }
    let temperature = if cv_accuracy.is_nan() { 1.0 } else { fit_temperature(&oof, y) };
    let (weights, bias) = fit(data, y, &all, opts);
    AttributeModel { weights, bias, temperature: temperature as f32, cv_accuracy }
}

fn logits(w: &[f32], b: &[f32], x: &[f32]) -> [f64; VALUES] {
    let d = x.len();
    std::array::from_fn(|k| {
        let row = &w[k * d..(k + 1) * d];
        b[k] as f64 + row.iter().zip(x).map(|(a, b)| a * b).sum::<f32>() as f64
    })
}

fn softmax(z: &[f64; VALUES]) -> [f64; VALUES] {
    let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: [f64; VALUES] = std::array::from_fn(|k| (z[k] - m).exp());
    let s: f64 = e.iter().sum();
    std::array::from_fn(|k| e[k] / s)
}

fn argmax_f64(z: &[f64]) -> usize {
    z.iter().enumerate().fold(0, |best, (k, v)| if *v > z[best] { k } else { best })
}

fn argmax(p: &[f32]) -> usize {
    p.iter().enumerate().fold(0, |best, (k, v)| if *v > p[best] { k } else { best })
}

/// The summed cross-entropy plus the L2 penalty, and its gradient, at parameters
/// `theta = [W (VALUES x d), b (VALUES)]`.
fn loss_and_grad(data: &Data, y: &[u8], rows: &[usize], l2: f64, theta: &[f64], grad: &mut [f64]) -> f64 {
    let d = data.d;
    let (w, b) = theta.split_at(VALUES * d);
    let wf: Vec<f32> = w.iter().map(|&v| v as f32).collect();
    grad.iter_mut().for_each(|g| *g = 0.0);
    let mut gw = vec![0f32; VALUES * d];
    let mut loss = 0.0;
    for &i in rows {
        let x = data.row(i);
        let z: [f64; VALUES] = std::array::from_fn(|k| b[k] + wf[k * d..(k + 1) * d].iter().zip(x).map(|(a, b)| a * b).sum::<f32>() as f64);
        let p = softmax(&z);
        let t = y[i] as usize;
        loss -= p[t].max(1e-300).ln();
        for k in 0..VALUES {
            let r = (p[k] - f64::from(u8::from(k == t))) as f32;
            grad[VALUES * d + k] += r as f64;
            for (g, &xv) in gw[k * d..(k + 1) * d].iter_mut().zip(x) {
                *g += r * xv;
            }
        }
    }
    for (j, g) in gw.iter().enumerate() {
        grad[j] = *g as f64 + l2 * w[j];
        loss += 0.5 * l2 * w[j] * w[j];
    }
    loss
}

/// Minimises the regularised loss over `rows` with L-BFGS (memory 10, Armijo backtracking).
fn fit(data: &Data, y: &[u8], rows: &[usize], opts: &PredictorOptions) -> (Vec<f32>, Vec<f32>) {
    const MEMORY: usize = 10;
    let dim = VALUES * data.d + VALUES;
    let mut theta = vec![0.0; dim];
    let mut grad = vec![0.0; dim];
    let mut f = loss_and_grad(data, y, rows, opts.l2, &theta, &mut grad);
    let mut history: Vec<(Vec<f64>, Vec<f64>, f64)> = Vec::new();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let tolerance = 1e-5 * (rows.len() as f64).max(1.0);
    for _ in 0..opts.max_iterations {
        let gnorm = dot(&grad, &grad).sqrt();
        if gnorm <= tolerance {
            break;
        }
        // Two-loop recursion: direction = -H g.
        let mut q = grad.clone();
        let mut alphas = Vec::with_capacity(history.len());
        for (s, yv, rho) in history.iter().rev() {
            let a = rho * dot(s, &q);
            q.iter_mut().zip(yv).for_each(|(qi, yi)| *qi -= a * yi);
            alphas.push(a);
        }
        let gamma = history.last().map_or(1.0 / gnorm, |(s, yv, _)| dot(s, yv) / dot(yv, yv));
        q.iter_mut().for_each(|v| *v *= gamma);
        for ((s, yv, rho), a) in history.iter().zip(alphas.iter().rev()) {
            let bcoef = rho * dot(yv, &q);
            q.iter_mut().zip(s).for_each(|(qi, si)| *qi += (a - bcoef) * si);
        }
        let mut dir: Vec<f64> = q.iter().map(|v| -v).collect();
        let mut slope = dot(&grad, &dir);
        if slope >= 0.0 {
            // Not a descent direction (curvature lost): restart from steepest descent.
            history.clear();
            dir = grad.iter().map(|g| -g / gnorm).collect();
            slope = dot(&grad, &dir);
        }
        let mut step = 1.0;
        let mut next = vec![0.0; dim];
        let mut next_grad = vec![0.0; dim];
        let mut next_f;
        loop {
            next.iter_mut().zip(theta.iter().zip(&dir)).for_each(|(n, (t, d))| *n = t + step * d);
            next_f = loss_and_grad(data, y, rows, opts.l2, &next, &mut next_grad);
            if next_f <= f + 1e-4 * step * slope || step < 1e-10 {
                break;
            }
            step *= 0.5;
        }
        let s: Vec<f64> = next.iter().zip(&theta).map(|(a, b)| a - b).collect();
        let yv: Vec<f64> = next_grad.iter().zip(&grad).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &yv);
        if sy > 1e-12 {
            if history.len() == MEMORY {
                history.remove(0);
            }
            history.push((s, yv, 1.0 / sy));
        }
        let improvement = f - next_f;
        theta = next;
        grad = next_grad;
        f = next_f;
        if improvement.abs() <= 1e-10 * f.abs().max(1.0) {
            break;
        }
    }
    let (w, b) = theta.split_at(VALUES * data.d);
    (w.iter().map(|&v| v as f32).collect(), b.iter().map(|&v| v as f32).collect())
}

/// The temperature that minimises the log loss of out-of-fold logits (golden-section search
/// over log T in [1/20, 20]).
fn fit_temperature(oof: &[[f64; VALUES]], y: &[u8]) -> f64 {
    let nll = |log_t: f64| {
        let t = log_t.exp();
        oof.iter()
            .zip(y)
            .map(|(z, &k)| {
                let s: [f64; VALUES] = std::array::from_fn(|j| z[j] / t);
                -softmax(&s)[k as usize].max(1e-300).ln()
            })
            .sum::<f64>()
    };
    let (mut lo, mut hi) = ((1.0f64 / 20.0).ln(), 20f64.ln());
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let (mut a, mut b) = (hi - g * (hi - lo), lo + g * (hi - lo));
    let (mut fa, mut fb) = (nll(a), nll(b));
    for _ in 0..60 {
        if fa < fb {
            hi = b;
            b = a;
            fb = fa;
            a = hi - g * (hi - lo);
            fa = nll(a);
        } else {
            lo = a;
            a = b;
            fa = fb;
            b = lo + g * (hi - lo);
            fb = nll(b);
        }
    }
    ((lo + hi) / 2.0).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four Gaussian blobs per attribute in 6 dimensions (equal covariance, so the true
    /// posterior is a softmax of linear logits) that overlap, so probabilities stay below 1.
    fn blobs(n: usize, seed: u64) -> (Vec<f32>, [Vec<u8>; ATTRIBUTES]) {
        let mut rng = Rng::new(seed);
        let d = 6;
        let mut x = Vec::with_capacity(n * d);
        let mut labels: [Vec<u8>; ATTRIBUTES] = Default::default();
        for _ in 0..n {
            let k: [u8; ATTRIBUTES] = std::array::from_fn(|_| rng.below(VALUES) as u8);
            for j in 0..d {
                let centre = if j < ATTRIBUTES { k[j] as f64 - 1.5 } else { 0.0 };
                let gauss = (-2.0 * (1.0 - rng.next_f64()).ln()).sqrt() * (std::f64::consts::TAU * rng.next_f64()).cos();
                x.push((centre + 0.45 * gauss) as f32);
            }
            for a in 0..ATTRIBUTES {
                labels[a].push(k[a]);
            }
        }
        (x, labels)
    }

    fn names(d: usize) -> Vec<String> {
        (0..d).map(|i| format!("f{i}")).collect()
    }

    #[test]
    fn learns_separable_attributes_and_generalises() -> Result<()> {
        let (x, y) = blobs(600, 1);
        let p = AttributePredictor::train(&x, names(6), &y, &PredictorOptions::default())?;
        let (tx, ty) = blobs(400, 2);
        let pred = p.predict_labels(&tx)?;
        for a in 0..ATTRIBUTES {
            let acc = pred[a].iter().zip(&ty[a]).filter(|(p, t)| p == t).count() as f64 / 400.0;
            assert!(acc > 0.72, "attribute {a}: held-out accuracy {acc}");
            assert!(p.attributes[a].cv_accuracy > 0.72, "cv accuracy {}", p.attributes[a].cv_accuracy);
        }
        let probs = p.predict(&tx)?;
        for row in probs.chunks_exact(VALUES) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
        Ok(())
    }

    #[test]
    fn calibrated_confidence_matches_accuracy() -> Result<()> {
        let (x, y) = blobs(800, 3);
        let p = AttributePredictor::train(&x, names(6), &y, &PredictorOptions::default())?;
        let (tx, ty) = blobs(2000, 4);
        let probs = p.predict(&tx)?;
        // Mean confidence of the chosen value vs how often it is right, per attribute.
        for a in 0..ATTRIBUTES {
            let (mut conf, mut right) = (0.0, 0.0);
            for (i, row) in probs.chunks_exact(ATTRIBUTES * VALUES).enumerate() {
                let pa = &row[a * VALUES..(a + 1) * VALUES];
                let k = argmax(pa);
                conf += pa[k] as f64;
                right += f64::from(u8::from(k as u8 == ty[a][i]));
            }
            let (conf, acc) = (conf / 2000.0, right / 2000.0);
            assert!((conf - acc).abs() < 0.06, "attribute {a}: confidence {conf:.3} vs accuracy {acc:.3}");
        }
        Ok(())
    }

    #[test]
    fn the_fit_reaches_the_optimum() {
        // At the optimum the gradient of the regularised loss vanishes.
        let (x, y) = blobs(300, 5);
        let data = Data { x: &x, d: 6, n: 300 };
        let rows: Vec<usize> = (0..300).collect();
        let opts = PredictorOptions::default();
        let (w, b) = fit(&data, &y[0], &rows, &opts);
        let theta: Vec<f64> = w.iter().chain(&b).map(|&v| v as f64).collect();
        let mut g = vec![0.0; theta.len()];
        loss_and_grad(&data, &y[0], &rows, opts.l2, &theta, &mut g);
        let gnorm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!(gnorm < 1e-2, "gradient norm at the fitted point: {gnorm}");
    }

    #[test]
    fn deterministic_saved_and_loaded_exactly() -> Result<()> {
        let (x, y) = blobs(200, 6);
        let a = AttributePredictor::train(&x, names(6), &y, &PredictorOptions { seed: 9, ..Default::default() })?;
        let b = AttributePredictor::train(&x, names(6), &y, &PredictorOptions { seed: 9, ..Default::default() })?;
        assert_eq!(a, b);
        let dir = std::env::temp_dir().join(format!("wotd-predictor-{}", std::process::id()));
        a.save(&dir)?;
        let back = AttributePredictor::load(&dir)?.expect("saved");
        assert_eq!(back.predict(&x)?, a.predict(&x)?);
        std::fs::write(dir.join(PREDICTOR_FILE), b"{\"format\":1}").unwrap();
        assert_eq!(AttributePredictor::load(&dir).unwrap_err().code(), "CORRUPT_FILE");
        std::fs::remove_dir_all(&dir).ok();
        assert!(AttributePredictor::load(&dir)?.is_none());
        Ok(())
    }

    #[test]
    fn bad_rows_and_labels_are_refused() {
        let y: [Vec<u8>; ATTRIBUTES] = [vec![0, 1], vec![0, 1], vec![0, 4]];
        let e = AttributePredictor::train(&[0.0; 4], names(2), &y, &PredictorOptions::default()).unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
        let e = AttributePredictor::train(&[0.0; 5], names(2), &[vec![0, 1], vec![0, 1], vec![0, 1]], &PredictorOptions::default()).unwrap_err();
        assert!(e.to_string().contains("do not make rows"), "{e}");
        let e = AttributePredictor::train(&[f32::NAN, 0.0, 0.0, 0.0], names(2), &[vec![0, 1], vec![0, 1], vec![0, 1]], &PredictorOptions::default()).unwrap_err();
        assert!(e.to_string().contains("NaN"), "{e}");
    }
}
