//! Residual k-means over the levels: each level quantizes what the levels above left over.

use super::codebook::{Codebook, CodebookInfo, ModeKind};
use super::kmeans::{self, Group, Params};
use super::linalg::unit_rows;
use super::{AttributeVocab, ATTRIBUTES, CODES, CODES_PER_VALUE, LEVELS, VALUES};
use crate::error::{Result, WotdError};
use std::sync::atomic::{AtomicBool, Ordering};

/// How codes relate to the words' attributes.
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    /// Plain residual k-means; codes mean whatever the geometry makes them mean.
    Unsupervised,
    /// Levels 0-2 stand for style, complexity and era: `labels[l][i]` (0-3) is word `i`'s
    /// value of attribute `l`, and its level-`l` code is kept within `8 * value .. 8 * value + 8`.
    Aligned { labels: [Vec<u8>; ATTRIBUTES] },
}

#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub mode: Mode,
    pub seed: u64,
    /// Upper bound on Lloyd iterations per level; training stops earlier once no point
    /// changes code.
    pub max_iterations: usize,
    /// Recorded in the metadata so that loading can refuse vectors from another embedder.
    pub embedder_model_id: Option<String>,
    /// Names of the attributes and values; recorded in aligned mode only.
    pub vocab: AttributeVocab,
    /// Aligned mode only: fit each aligned level's nuance codes with the effects of the
    /// attributes below it removed (see `without_later_attributes`). Costs some
    /// reconstruction at the first levels; makes `code >> 3` predict held-out labels.
    pub disentangle: bool,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            mode: Mode::Unsupervised,
            seed: 0,
            max_iterations: 100,
            embedder_model_id: None,
            vocab: AttributeVocab::default(),
            disentangle: true,
        }
    }
}

/// Reported after every assignment step; `inertia` is the level's sum of squared distances.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainProgress {
    pub level: usize,
    pub iteration: usize,
    pub inertia: f64,
}

/// Trains codebooks on `vectors` (a flat batch of `dim`-wide rows, L2-normalised on the way
/// in). Deterministic: the same inputs and seed give bit-identical codebooks.
pub fn train(vectors: &[f32], dim: usize, options: &TrainOptions) -> Result<Codebook> {
    train_with_progress(vectors, dim, options, &mut |_| Ok(()), &AtomicBool::new(false))
}

/// `train`, calling `on_progress` after every Lloyd iteration; an error it returns stops
/// training and is returned. `cancel` is polled before every level and after every Lloyd
/// iteration: once set, training stops with `WotdError::Cancelled`.
pub fn train_with_progress(
    vectors: &[f32],
    dim: usize,
    options: &TrainOptions,
    on_progress: &mut dyn FnMut(&TrainProgress) -> Result<()>,
    cancel: &AtomicBool,
) -> Result<Codebook> {
    let check = || if cancel.load(Ordering::SeqCst) { Err(WotdError::Cancelled) } else { Ok(()) };
    let points = unit_rows(vectors, dim)?;
    let n = points.len() / dim;
    if n == 0 {
        return Err(WotdError::InvalidInput("cannot train codebooks on zero vectors".into()));
    }
    if options.max_iterations == 0 {
        return Err(WotdError::InvalidInput("max_iterations must be at least 1".into()));
    }
    if let Mode::Aligned { labels } = &options.mode {
        check_labels(labels, n, &options.vocab)?;
        options.vocab.validate()?;
    }

    let mut residual = points;
    let mut codewords = Vec::with_capacity(LEVELS * CODES * dim);
    let mut active = [0u32; LEVELS];
    for (level, mask) in active.iter_mut().enumerate() {
        check()?;
        let groups = groups_for(&options.mode, level, n);
        let params = Params { k: CODES, max_iterations: options.max_iterations, seed: level_seed(options.seed, level) };
        let fitted_on = match &options.mode {
            Mode::Aligned { labels } if options.disentangle && level + 1 < ATTRIBUTES => {
                std::borrow::Cow::Owned(without_later_attributes(&residual, dim, labels, level))
            }
            _ => std::borrow::Cow::Borrowed(&residual),
        };
        let fit = kmeans::fit(&fitted_on, dim, &groups, &params, &mut |iteration, inertia| {
            on_progress(&TrainProgress { level, iteration, inertia })?;
            check()
        })?;
        for (row, &a) in residual.chunks_exact_mut(dim).zip(&fit.assign) {
            for (r, c) in row.iter_mut().zip(&fit.centroids[a * dim..(a + 1) * dim]) {
                *r -= c;
            }
        }
        *mask = fit.active.iter().enumerate().fold(0, |m, (j, &on)| if on { m | 1 << j } else { m });
        codewords.extend_from_slice(&fit.centroids);
    }

    let aligned = matches!(options.mode, Mode::Aligned { .. });
    let info = CodebookInfo {
        mode: if aligned { ModeKind::Aligned } else { ModeKind::Unsupervised },
        dimension: dim,
        embedder_model_id: options.embedder_model_id.clone(),
        vocab: aligned.then(|| options.vocab.clone()),
        seed: options.seed,
        max_iterations: options.max_iterations,
        trained_points: n,
        disentangled: aligned && options.disentangle,
    };
    Codebook::new(info, codewords, active)
}

/// Levels draw from separate streams so that a level's seeding never depends on how many
/// numbers the levels above happened to consume.
fn level_seed(seed: u64, level: usize) -> u64 {
    seed.wrapping_add((level as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// The residuals with, for every attribute after `level`, each word's class-mean offset
/// (its value's mean residual minus the overall mean) taken out.
///
/// Without this, the eight nuance codes of a level split its class along whatever varies
/// most inside it, which is mostly the attributes the next levels are meant to carry: level 0
/// ends up encoding complexity too, the level-1 residual keeps little complexity signal, and
/// for unseen words `code >> 3` at level 1 is barely better than chance. Fitting on cleaned
/// residuals leaves that signal for its own level. Only the codes are fitted on the cleaned
/// residuals; the residual passed down is still the real one.
fn without_later_attributes(residual: &[f32], dim: usize, labels: &[Vec<u8>; ATTRIBUTES], level: usize) -> Vec<f32> {
    let n = residual.len() / dim;
    let mut overall = vec![0f64; dim];
    for row in residual.chunks_exact(dim) {
        for (m, &x) in overall.iter_mut().zip(row) {
            *m += x as f64;
        }
    }
    overall.iter_mut().for_each(|m| *m /= n as f64);

    let mut cleaned = residual.to_vec();
    for column in &labels[level + 1..] {
        let mut sums = vec![0f64; VALUES * dim];
        let mut counts = [0usize; VALUES];
        for (row, &v) in residual.chunks_exact(dim).zip(column) {
            counts[v as usize] += 1;
            for (s, &x) in sums[v as usize * dim..(v as usize + 1) * dim].iter_mut().zip(row) {
                *s += x as f64;
            }
        }
        for (row, &v) in cleaned.chunks_exact_mut(dim).zip(column) {
            let (sum, count) = (&sums[v as usize * dim..(v as usize + 1) * dim], counts[v as usize] as f64);
            for ((x, s), m) in row.iter_mut().zip(sum).zip(&overall) {
                *x -= (s / count - m) as f32;
            }
        }
    }
    cleaned
}

fn groups_for(mode: &Mode, level: usize, n: usize) -> Vec<Group> {
    match mode {
        Mode::Aligned { labels } if level < ATTRIBUTES => (0..VALUES)
            .map(|v| Group {
                members: (0..n).filter(|&i| labels[level][i] as usize == v).collect(),
                codes: v * CODES_PER_VALUE..(v + 1) * CODES_PER_VALUE,
            })
            .collect(),
        _ => vec![Group { members: (0..n).collect(), codes: 0..CODES }],
    }
}

pub(crate) fn check_labels(labels: &[Vec<u8>; ATTRIBUTES], n: usize, vocab: &AttributeVocab) -> Result<()> {
    for (l, column) in labels.iter().enumerate() {
        let name = &vocab.names[l];
        if column.len() != n {
            return Err(WotdError::InvalidInput(format!(
                "{} {name} labels for {n} vectors; every vector needs one",
                column.len()
            )));
        }
        if let Some(i) = column.iter().position(|&v| v as usize >= VALUES) {
            return Err(WotdError::InvalidInput(format!(
                "{name} label of vector {i} is {}; values are 0-{}",
                column[i],
                VALUES - 1
            )));
        }
    }
    Ok(())
}
