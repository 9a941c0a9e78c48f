//! Vectors to IDs: greedy residual assignment, or a beam over partial IDs.

use super::codebook::Codebook;
use super::linalg::{cosine, gram, row_norms_sq, tensor, unit_rows};
use super::train::check_labels;
use super::{ModeKind, SemanticId, ATTRIBUTES, CODES, CODES_PER_VALUE, LEVELS};
use crate::error::{Result, WotdError};
use candle_core::Tensor;
use std::ops::Range;

#[derive(Clone, Copy, Debug)]
pub struct EncodeOptions<'a> {
    /// Partial IDs kept per vector at each level; 1 is greedy.
    pub beam: usize,
    /// Known attribute values (aligned codebooks only): levels 0-2 then choose only among the
    /// codes of each vector's own value, the way training assigned them. Without labels every
    /// code competes, so the nearest code predicts the value.
    pub labels: Option<&'a [Vec<u8>; ATTRIBUTES]>,
}

impl Default for EncodeOptions<'_> {
    fn default() -> Self {
        EncodeOptions { beam: 1, labels: None }
    }
}

/// Bounds the beam's scratch memory (`CHUNK * beam * dimension` floats).
const CHUNK: usize = 1024;

/// A partial ID of one vector; its residual lives in a matrix beside it, row for row, so a
/// whole level's residuals go through one matrix product.
struct Partial {
    point: usize,
    id: SemanticId,
}

impl Codebook {
    /// Greedy ID of one vector (normalised on the way in).
    pub fn encode(&self, vector: &[f32]) -> Result<SemanticId> {
        self.encode_with(vector, &EncodeOptions::default())
    }

    /// ID of one vector by beam search; never reconstructs worse than greedy.
    pub fn encode_beam(&self, vector: &[f32], beam: usize) -> Result<SemanticId> {
        self.encode_with(vector, &EncodeOptions { beam, labels: None })
    }

    fn encode_with(&self, vector: &[f32], options: &EncodeOptions) -> Result<SemanticId> {
        if vector.len() != self.dimension() {
            return Err(WotdError::InvalidInput(format!(
                "vector has {} dimensions; the codebooks expect {}",
                vector.len(),
                self.dimension()
            )));
        }
        Ok(self.encode_many(vector, options)?[0])
    }

    /// IDs of a flat batch of `dimension`-wide rows.
    pub fn encode_many(&self, vectors: &[f32], options: &EncodeOptions) -> Result<Vec<SemanticId>> {
        let dim = self.dimension();
        let points = unit_rows(vectors, dim)?;
        let n = points.len() / dim;
        if options.beam == 0 {
            return Err(WotdError::InvalidInput("beam width must be at least 1".into()));
        }
        if let Some(labels) = options.labels {
            let vocab = self.info().vocab.as_ref().filter(|_| self.mode() == ModeKind::Aligned).ok_or_else(|| {
                WotdError::InvalidInput("labels only apply to aligned codebooks; these are unsupervised".into())
            })?;
            check_labels(labels, n, vocab)?;
        }
        let levels = self.level_tensors()?;
        let mut ids = Vec::with_capacity(n);
        for start in (0..n).step_by(CHUNK) {
            let end = (start + CHUNK).min(n);
            let rows = &points[start * dim..end * dim];
            let allowed = |i: usize, level: usize| self.allowed(options.labels, start + i, level);
            let mut best = self.search(rows, &levels, 1, &allowed)?;
            if options.beam > 1 {
                // Beam pruning ranks partial IDs by residual energy, which can drop the greedy
                // path; keeping whichever of the two decodes closer makes beam never worse.
                let beamed = self.search(rows, &levels, options.beam, &allowed)?;
                for (i, (g, b)) in best.iter_mut().zip(beamed).enumerate() {
                    let x = &rows[i * dim..(i + 1) * dim];
                    if cosine(x, &self.sum_prefix(&b, LEVELS)?) > cosine(x, &self.sum_prefix(g, LEVELS)?) {
                        *g = b;
                    }
                }
            }
            ids.extend(best);
        }
        Ok(ids)
    }

    fn level_tensors(&self) -> Result<Vec<(Tensor, Vec<f32>)>> {
        let dim = self.dimension();
        (0..LEVELS).map(|l| Ok((tensor(self.level(l), dim)?, row_norms_sq(self.level(l), dim)))).collect()
    }

    fn allowed(&self, labels: Option<&[Vec<u8>; ATTRIBUTES]>, point: usize, level: usize) -> Range<usize> {
        match labels {
            Some(labels) if level < ATTRIBUTES => {
                let v = labels[level][point] as usize;
                v * CODES_PER_VALUE..(v + 1) * CODES_PER_VALUE
            }
            _ => 0..CODES,
        }
    }

    /// Keeps the `beam` partial IDs with the least residual energy per level, then returns,
    /// per vector, the complete ID whose decoding is closest in cosine.
    fn search(
        &self,
        rows: &[f32],
        levels: &[(Tensor, Vec<f32>)],
        beam: usize,
        allowed: &dyn Fn(usize, usize) -> Range<usize>,
    ) -> Result<Vec<SemanticId>> {
        let dim = self.dimension();
        let n = rows.len() / dim;
        let masks = self.active_masks();
        let mut partials: Vec<Partial> = (0..n).map(|point| Partial { point, id: [0; LEVELS] }).collect();
        let mut residuals = rows.to_vec();
        for (level, (codes, code_norms)) in levels.iter().enumerate() {
            let g = gram(&tensor(&residuals, dim)?, codes)?;
            let rn = row_norms_sq(&residuals, dim);
            let mut next = Vec::with_capacity(n * beam);
            let mut next_res = Vec::with_capacity(n * beam * dim);
            let mut p = 0;
            while p < partials.len() {
                let point = partials[p].point;
                let q = p + partials[p..].iter().take_while(|c| c.point == point).count();
                let range = allowed(point, level);
                let mut scored: Vec<(f32, usize, usize)> = (p..q)
                    .flat_map(|c| range.clone().map(move |j| (c, j)))
                    .filter(|&(_, j)| masks[level] >> j & 1 == 1)
                    .map(|(c, j)| (rn[c] + code_norms[j] - 2.0 * g[c * CODES + j], c, j))
                    .collect();
                if scored.is_empty() {
                    return Err(self.no_codes(level, range));
                }
                scored.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
                for &(_, c, j) in scored.iter().take(beam) {
                    let mut id = partials[c].id;
                    id[level] = j as u8;
                    next.push(Partial { point, id });
                    let cw = &self.level(level)[j * dim..(j + 1) * dim];
                    next_res.extend(residuals[c * dim..(c + 1) * dim].iter().zip(cw).map(|(r, w)| r - w));
                }
                p = q;
            }
            partials = next;
            residuals = next_res;
        }

        let mut out: Vec<Option<(f32, SemanticId)>> = vec![None; n];
        for (c, partial) in partials.iter().enumerate() {
            let x = &rows[partial.point * dim..(partial.point + 1) * dim];
            // The codewords sum to x - residual, so cosine needs no separate decode.
            let sum: Vec<f32> = x.iter().zip(&residuals[c * dim..(c + 1) * dim]).map(|(a, r)| a - r).collect();
            let score = cosine(x, &sum);
            let slot = &mut out[partial.point];
            if slot.is_none_or(|(s, _)| score > s) {
                *slot = Some((score, partial.id));
            }
        }
        Ok(out.into_iter().map(|b| b.expect("every vector keeps a partial ID").1).collect())
    }

    fn no_codes(&self, level: usize, range: Range<usize>) -> WotdError {
        let what = match (&self.info().vocab, range.len() < CODES) {
            (Some(vocab), true) => format!(
                "{} = {}",
                vocab.names[level],
                vocab.values[level][range.start / CODES_PER_VALUE]
            ),
            _ => "any value".to_string(),
        };
        WotdError::InvalidInput(format!(
            "level {level} has no trained codes for {what}: no training vector had it"
        ))
    }
}
