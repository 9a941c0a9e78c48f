//! Dot products of query vectors against a matrix of row vectors (cosines, for unit vectors):
//! one f32 matrix product, so scoring a page of people against the whole word catalogue reads
//! the catalogue once instead of once per person.

use crate::error::{Result, WotdError};

/// `out[q * rows + r] = queries[q] . matrix[r]`, with `matrix` row-major `rows x dim` and
/// `queries` row-major `n x dim`.
pub fn dot_products(matrix: &[f32], queries: &[f32], dim: usize) -> Result<Vec<f32>> {
    if dim == 0 {
        return Err(WotdError::InvalidInput("dot products: dim must be at least 1".into()));
    }
    if matrix.len() % dim != 0 || queries.len() % dim != 0 {
        return Err(WotdError::InvalidInput(format!(
            "dot products: the matrix ({} values) and the queries ({} values) must both be whole rows of {dim}",
            matrix.len(),
            queries.len()
        )));
    }
    let rows = matrix.len() / dim;
    let n = queries.len() / dim;
    let mut out = vec![0f32; n * rows];
    if rows == 0 || n == 0 {
        return Ok(out);
    }
    // dst (n x rows) = queries (n x dim) * matrix^T (dim x rows). Strides are in elements:
    // matrix^T's element (k, r) is matrix[r * dim + k].
    // SAFETY: every pointer covers exactly the extents given by its strides and m, n, k above,
    // `out` is not aliased, and `read_dst` is false so its initial contents are not read.
    unsafe {
        gemm::gemm(
            n,
            rows,
            dim,
            out.as_mut_ptr(),
            1,
            rows as isize,
            false,
            queries.as_ptr(),
            1,
            dim as isize,
            matrix.as_ptr(),
            dim as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::dot_products;

    fn naive(matrix: &[f32], queries: &[f32], dim: usize) -> Vec<f32> {
        let rows = matrix.len() / dim;
        let mut out = Vec::new();
        for q in queries.chunks(dim) {
            for r in 0..rows {
                out.push(q.iter().zip(&matrix[r * dim..(r + 1) * dim]).map(|(a, b)| a * b).sum());
            }
        }
        out
    }

    #[test]
    fn matches_the_naive_loop() {
        let dim = 37;
        let matrix: Vec<f32> = (0..dim * 1001).map(|i| ((i * 7919 % 997) as f32 / 997.0) - 0.5).collect();
        for n in [1usize, 3, 64] {
            let queries: Vec<f32> = (0..dim * n).map(|i| ((i * 104_729 % 991) as f32 / 991.0) - 0.5).collect();
            let got = dot_products(&matrix, &queries, dim).unwrap();
            let want = naive(&matrix, &queries, dim);
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{g} vs {w}");
            }
        }
    }

    #[test]
    fn refuses_ragged_input() {
        let e = dot_products(&[0.0; 10], &[0.0; 4], 4).unwrap_err().to_string();
        assert!(e.contains("whole rows of 4"), "{e}");
        assert!(dot_products(&[], &[], 0).is_err());
        assert!(dot_products(&[], &[0.0; 4], 4).unwrap().is_empty());
    }
}
