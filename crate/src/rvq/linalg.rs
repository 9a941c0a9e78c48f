//! Dense helpers over row-major f32 matrices. Products of many rows with many rows go
//! through candle's gemm (blocked, vectorised, spread over the cores by its thread pool);
//! everything linear in the data stays in plain loops, where a tensor round trip would cost
//! more than it saves.

use crate::error::{Result, WotdError};
use candle_core::{Device, Tensor};

pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Independent lanes let the compiler vectorise the sum without reassociating floats.
    const LANES: usize = 16;
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ta.iter().zip(tb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

pub(crate) fn norm_sq(a: &[f32]) -> f32 {
    dot(a, a)
}

/// Squared norm of every row.
pub(crate) fn row_norms_sq(data: &[f32], dim: usize) -> Vec<f32> {
    data.chunks_exact(dim).map(norm_sq).collect()
}

/// Scales `v` to unit length; `false` (and `v` untouched) when it has no direction.
pub(crate) fn normalise(v: &mut [f32]) -> bool {
    let n = norm_sq(v).sqrt();
    if n.is_nan() || n <= 0.0 || !n.is_finite() {
        return false;
    }
    v.iter_mut().for_each(|x| *x /= n);
    true
}

/// Cosine of `a` and `b`; 0 when either has no direction.
pub(crate) fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let d = (norm_sq(a) * norm_sq(b)).sqrt();
    if d > 0.0 { dot(a, b) / d } else { 0.0 }
}

/// Validates a flat batch of `dim`-wide rows and returns a copy with every row L2-normalised.
/// Callers promise normalised embeddings, but normalising here is cheap and makes every
/// downstream cosine and residual well defined even when a caller forgets.
pub(crate) fn unit_rows(vectors: &[f32], dim: usize) -> Result<Vec<f32>> {
    if dim == 0 {
        return Err(WotdError::InvalidInput("vector dimension must be at least 1".into()));
    }
    if !vectors.len().is_multiple_of(dim) {
        return Err(WotdError::InvalidInput(format!(
            "{} numbers do not split into vectors of dimension {dim}",
            vectors.len()
        )));
    }
    let mut out = vectors.to_vec();
    for (i, row) in out.chunks_exact_mut(dim).enumerate() {
        if row.iter().any(|x| !x.is_finite()) {
            return Err(WotdError::InvalidInput(format!("vector {i} contains NaN or infinity")));
        }
        if !normalise(row) {
            return Err(WotdError::InvalidInput(format!("vector {i} is all zeros and has no direction")));
        }
    }
    Ok(out)
}

/// A row-major matrix as a CPU tensor, for repeated products against the same rows.
pub(crate) fn tensor(data: &[f32], dim: usize) -> Result<Tensor> {
    Ok(Tensor::from_slice(data, (data.len() / dim, dim), &Device::Cpu)?)
}

/// `a · bᵀ` as a flat row-major `rows(a) x rows(b)` matrix.
pub(crate) fn gram(a: &Tensor, b: &Tensor) -> Result<Vec<f32>> {
    Ok(a.matmul(&b.t()?)?.flatten_all()?.to_vec1::<f32>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_naive_sum_on_odd_lengths() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..37).map(|i| 1.0 - i as f32 * 0.1).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-3);
    }

    #[test]
    fn gram_is_a_times_b_transposed() {
        let a = tensor(&[1.0, 0.0, 0.0, 2.0, 1.0, 1.0], 2).unwrap();
        let b = tensor(&[3.0, 4.0, -1.0, 0.5], 2).unwrap();
        assert_eq!(gram(&a, &b).unwrap(), vec![3.0, -1.0, 8.0, 1.0, 7.0, -0.5]);
    }

    #[test]
    fn unit_rows_rejects_what_has_no_direction() {
        assert!(unit_rows(&[0.0, 0.0], 2).unwrap_err().to_string().contains("vector 0 is all zeros"));
        assert!(unit_rows(&[1.0, f32::NAN], 2).unwrap_err().to_string().contains("NaN"));
        assert!(unit_rows(&[1.0, 2.0, 3.0], 2).unwrap_err().to_string().contains("dimension 2"));
        assert_eq!(unit_rows(&[3.0, 4.0], 2).unwrap(), vec![0.6, 0.8]);
    }
}
