//! The RVQ metrics of DESIGN.md, measured on any set of vectors (training or held out).

use super::codebook::Codebook;
use super::encode::EncodeOptions;
use super::linalg::{cosine, gram, tensor, unit_rows};
use super::train::check_labels;
use super::{AttributeVocab, SemanticId, ATTRIBUTES, CODES, CODES_PER_VALUE, LEVELS, VALUES};
use crate::error::{Result, WotdError};
use serde::Serialize;
use std::collections::HashMap;

/// Cosine between vectors and their decoded IDs when only the first `levels` levels are used.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Reconstruction {
    pub levels: usize,
    pub mean: f32,
    /// 10th percentile: how badly the worst-served tenth of the vectors fare.
    pub p10: f32,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metrics {
    pub points: usize,
    /// Per level: share of the 32 codes that at least one vector uses.
    pub utilisation: [f32; LEVELS],
    /// Per level: exp(entropy of code usage) / 32; 1 when every code is used equally.
    pub perplexity: [f32; LEVELS],
    /// Index `l` uses the first `l + 1` levels.
    pub reconstruction: [Reconstruction; LEVELS],
    /// Share of vectors whose 3-level prefix some other vector shares.
    pub collision_rate_3: f32,
    /// Share of vectors whose full ID some other vector shares.
    pub collision_rate_4: f32,
    /// Share of vectors whose nearest other vector (by cosine) has the same level-0 code.
    pub locality: f32,
    /// Per attribute: share of vectors whose `code >> 3` at that level equals their label.
    pub label_accuracy: Option<[f32; ATTRIBUTES]>,
    /// `nmi[level][attribute]`: normalised mutual information (arithmetic mean of entropies)
    /// between the level's codes and the attribute's labels.
    pub nmi: Option<[[f32; ATTRIBUTES]; LEVELS]>,
}

/// Rows compared against all others at once when finding nearest neighbours; bounds the
/// similarity block to `NN_BLOCK * n` floats.
const NN_BLOCK: usize = 512;

impl Codebook {
    /// Encodes `vectors` greedily (labels never steer the encoding: accuracy must measure
    /// prediction) and measures the result. Needs at least two vectors.
    pub fn evaluate(&self, vectors: &[f32], labels: Option<&[Vec<u8>; ATTRIBUTES]>) -> Result<Metrics> {
        let dim = self.dimension();
        let points = unit_rows(vectors, dim)?;
        let n = points.len() / dim;
        if n < 2 {
            return Err(WotdError::InvalidInput(format!("evaluation needs at least 2 vectors, got {n}")));
        }
        if let Some(labels) = labels {
            check_labels(labels, n, self.info().vocab.as_ref().unwrap_or(&AttributeVocab::default()))?;
        }
        let ids = self.encode_many(&points, &EncodeOptions::default())?;

        let mut utilisation = [0f32; LEVELS];
        let mut perplexity = [0f32; LEVELS];
        for l in 0..LEVELS {
            let counts = histogram(ids.iter().map(|id| id[l] as usize), CODES);
            utilisation[l] = counts.iter().filter(|&&c| c > 0).count() as f32 / CODES as f32;
            perplexity[l] = (entropy(&counts).exp() / CODES as f64) as f32;
        }

        let mut reconstruction = [Reconstruction { levels: 0, mean: 0.0, p10: 0.0 }; LEVELS];
        for (l, r) in reconstruction.iter_mut().enumerate() {
            let mut cos = Vec::with_capacity(n);
            for (x, id) in points.chunks_exact(dim).zip(&ids) {
                cos.push(cosine(x, &self.sum_prefix(id, l + 1)?));
            }
            *r = Reconstruction { levels: l + 1, mean: mean(&cos), p10: percentile(&mut cos, 0.10) };
        }

        let nearest = nearest_neighbours(&points, dim)?;
        let locality = nearest.iter().enumerate().filter(|&(i, &j)| ids[i][0] == ids[j][0]).count() as f32 / n as f32;

        let (label_accuracy, nmi) = match labels {
            None => (None, None),
            Some(labels) => {
                let mut acc = [0f32; ATTRIBUTES];
                for (a, acc) in acc.iter_mut().enumerate() {
                    let hits = ids.iter().zip(&labels[a]).filter(|(id, &v)| id[a] as usize / CODES_PER_VALUE == v as usize);
                    *acc = hits.count() as f32 / n as f32;
                }
                let mut nmi = [[0f32; ATTRIBUTES]; LEVELS];
                for (l, row) in nmi.iter_mut().enumerate() {
                    for (a, cell) in row.iter_mut().enumerate() {
                        *cell = normalised_mutual_information(&ids, l, &labels[a]) as f32;
                    }
                }
                (Some(acc), Some(nmi))
            }
        };

        Ok(Metrics {
            points: n,
            utilisation,
            perplexity,
            reconstruction,
            collision_rate_3: collision_rate(&ids, 3),
            collision_rate_4: collision_rate(&ids, 4),
            locality,
            label_accuracy,
            nmi,
        })
    }
}

fn histogram(values: impl Iterator<Item = usize>, bins: usize) -> Vec<usize> {
    let mut h = vec![0; bins];
    values.for_each(|v| h[v] += 1);
    h
}

/// Shannon entropy in nats of a distribution given by counts.
fn entropy(counts: &[usize]) -> f64 {
    let total: usize = counts.iter().sum();
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / total as f64;
            -p * p.ln()
        })
        .sum()
}

fn mean(xs: &[f32]) -> f32 {
    (xs.iter().map(|&x| x as f64).sum::<f64>() / xs.len() as f64) as f32
}

/// Nearest-rank percentile.
fn percentile(xs: &mut [f32], q: f64) -> f32 {
    xs.sort_by(f32::total_cmp);
    let rank = ((q * xs.len() as f64).ceil() as usize).clamp(1, xs.len());
    xs[rank - 1]
}

fn collision_rate(ids: &[SemanticId], levels: usize) -> f32 {
    let mut seen: HashMap<&[u8], usize> = HashMap::new();
    for id in ids {
        *seen.entry(&id[..levels]).or_default() += 1;
    }
    ids.iter().filter(|id| seen[&id[..levels]] > 1).count() as f32 / ids.len() as f32
}

/// For each unit row, the index of the most similar other row (lowest index on ties).
fn nearest_neighbours(points: &[f32], dim: usize) -> Result<Vec<usize>> {
    let n = points.len() / dim;
    let all = tensor(points, dim)?;
    let mut out = Vec::with_capacity(n);
    for start in (0..n).step_by(NN_BLOCK) {
        let end = (start + NN_BLOCK).min(n);
        let sims = gram(&tensor(&points[start * dim..end * dim], dim)?, &all)?;
        for (r, row) in sims.chunks_exact(n).enumerate() {
            let i = start + r;
            let best = (0..n).filter(|&j| j != i).fold((f32::NEG_INFINITY, 0), |b, j| if row[j] > b.0 { (row[j], j) } else { b });
            out.push(best.1);
        }
    }
    Ok(out)
}

/// NMI between one level's codes and one attribute's labels, normalised by the arithmetic
/// mean of the two entropies (scikit-learn's default). Two constant labelings agree
/// perfectly (1); one constant against a varying one shares nothing (0).
fn normalised_mutual_information(ids: &[SemanticId], level: usize, labels: &[u8]) -> f64 {
    let n = ids.len() as f64;
    let mut joint = vec![0usize; CODES * VALUES];
    for (id, &v) in ids.iter().zip(labels) {
        joint[id[level] as usize * VALUES + v as usize] += 1;
    }
    let codes: Vec<usize> = joint.chunks_exact(VALUES).map(|r| r.iter().sum()).collect();
    let values: Vec<usize> = (0..VALUES).map(|v| joint.iter().skip(v).step_by(VALUES).sum()).collect();
    let (hc, hv) = (entropy(&codes), entropy(&values));
    if hc + hv == 0.0 {
        return 1.0;
    }
    let mut mi = 0.0;
    for c in 0..CODES {
        for v in 0..VALUES {
            let nij = joint[c * VALUES + v];
            if nij > 0 {
                let nij = nij as f64;
                mi += nij / n * (nij * n / (codes[c] as f64 * values[v] as f64)).ln();
            }
        }
    }
    (2.0 * mi / (hc + hv)).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nmi_is_one_for_a_relabelling_and_zero_for_independence() {
        let ids: Vec<SemanticId> = (0..8).map(|i| [(i % 4) as u8 * 3, 0, 0, 0]).collect();
        let same: Vec<u8> = (0..8).map(|i| (i % 4) as u8).collect();
        assert!((normalised_mutual_information(&ids, 0, &same) - 1.0).abs() < 1e-12);
        // Every code meets every label exactly as often as chance predicts.
        let ids: Vec<SemanticId> = (0..16).map(|i| [(i % 2) as u8, 0, 0, 0]).collect();
        let indep: Vec<u8> = (0..16).map(|i| (i / 2 % 4) as u8).collect();
        assert!(normalised_mutual_information(&ids, 0, &indep).abs() < 1e-12);
        assert_eq!(normalised_mutual_information(&ids, 1, &[0; 16]), 1.0);
    }

    #[test]
    fn collisions_count_every_member_of_a_shared_id() {
        let ids = [[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 3, 4], [0, 0, 0, 0]];
        assert_eq!(collision_rate(&ids, 4), 0.5);
        assert_eq!(collision_rate(&ids, 3), 0.75);
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let mut xs: Vec<f32> = (1..=20).rev().map(|x| x as f32).collect();
        assert_eq!(percentile(&mut xs, 0.10), 2.0);
        assert_eq!(percentile(&mut [5.0], 0.10), 5.0);
    }
}
