//! `x W^T` when `x` has only a few rows (decoding: one row per candidate word, 1-16).
//!
//! gemm's AVX-512 kernels (the crate is built with its `x86-v4` feature, which made LoRA
//! training about 20% faster on an AVX-512 Xeon) pad the rows of `x` up to their 48-row tile, so
//! an 8-row product does six times the arithmetic it needs: f32 word generation got 60% slower
//! with them. A product this skinny is bound by reading `W` once, which this loop does: each
//! worker takes a run of weight rows and dots every one of them with all rows of `x` (a few KB
//! that stay in L1) while it is in cache.

use super::gemm::{matmul_into, Mat};
use super::par::{for_rows, RowsMut};

/// Products with at most this many rows of `x` take this path.
pub(crate) const MAX_ROWS: usize = 16;

/// Whether this CPU runs the AVX-512 loop; elsewhere gemm's own kernels (AVX2 at most, which
/// have no such padding loss) do the product.
fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `out[i, j] = sum_l x[i, l] * w[j, l]` for dense row-major `x: [m, k]`, `w: [n, k]`, `out: [m, n]`.
pub(crate) fn matmul_nt(x: &[f32], m: usize, k: usize, w: &[f32], n: usize, out: &mut [f32]) {
    assert_eq!(x.len(), m * k, "x is {m}x{k}, got {} values", x.len());
    assert_eq!(w.len(), n * k, "w is {n}x{k}, got {} values", w.len());
    assert_eq!(out.len(), m * n, "out is {m}x{n}, got {} values", out.len());
    if m == 0 || n == 0 {
        return;
    }
    if !available() {
        matmul_into(out, Mat::rows(x, m, k), Mat::rows(w, n, k).t(), 1.0, false);
        return;
    }
    // Workers own runs of weight rows, so they write `out` transposed (`[n, m]`, disjoint rows);
    // transposing back costs m x n moves, nothing beside reading n x k weights.
    let mut out_t = vec![0f32; n * m];
    let dst = RowsMut::new(&mut out_t, m);
    for_rows(n, k * m.max(4), |rows| {
        // SAFETY: `for_rows` hands out disjoint ranges, each once; AVX-512F was detected above.
        let block = unsafe { dst.rows(rows.clone()) };
        #[cfg(target_arch = "x86_64")]
        unsafe {
            avx512::dots(x, m, k, &w[rows.start * k..rows.end * k], block)
        }
    });
    for (j, col) in out_t.chunks_exact(m).enumerate() {
        for (i, &v) in col.iter().enumerate() {
            out[i * n + j] = v;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// `block[j * m + i] = x_i . w_j` for the weight rows of `w`.
    ///
    /// # Safety
    /// The CPU must have AVX-512F; `x` holds `m x k` values, `w` a whole number of `k`-rows and
    /// `block` `m` values per weight row.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn dots(x: &[f32], m: usize, k: usize, w: &[f32], block: &mut [f32]) {
        debug_assert!(x.len() == m * k && w.len() % k == 0 && block.len() == w.len() / k * m);
        let whole = k / 16 * 16;
        // The ragged end of each row is read with a mask: no scalar tail, no reading past it.
        let tail: __mmask16 = ((1u32 << (k - whole)) - 1) as __mmask16;
        let xp = x.as_ptr();
        for (j, dst) in block.chunks_exact_mut(m).enumerate() {
            let wp = w.as_ptr().add(j * k);
            let mut i = 0;
            // Four rows of x per weight vector loaded: four independent FMA chains.
            while i + 4 <= m {
                let (x0, x1, x2, x3) = (xp.add(i * k), xp.add((i + 1) * k), xp.add((i + 2) * k), xp.add((i + 3) * k));
                let (mut a0, mut a1, mut a2, mut a3) = (_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps());
                let mut l = 0;
                while l < whole {
                    let wv = _mm512_loadu_ps(wp.add(l));
                    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x0.add(l)), wv, a0);
                    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x1.add(l)), wv, a1);
                    a2 = _mm512_fmadd_ps(_mm512_loadu_ps(x2.add(l)), wv, a2);
                    a3 = _mm512_fmadd_ps(_mm512_loadu_ps(x3.add(l)), wv, a3);
                    l += 16;
                }
                if tail != 0 {
                    let wv = _mm512_maskz_loadu_ps(tail, wp.add(l));
                    a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, x0.add(l)), wv, a0);
                    a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, x1.add(l)), wv, a1);
                    a2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, x2.add(l)), wv, a2);
                    a3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, x3.add(l)), wv, a3);
                }
                dst[i] = _mm512_reduce_add_ps(a0);
                dst[i + 1] = _mm512_reduce_add_ps(a1);
                dst[i + 2] = _mm512_reduce_add_ps(a2);
                dst[i + 3] = _mm512_reduce_add_ps(a3);
                i += 4;
            }
            while i < m {
                let xi = xp.add(i * k);
                let (mut a, mut b) = (_mm512_setzero_ps(), _mm512_setzero_ps());
                let mut l = 0;
                // Two chains for one row, so the FMA latency is not the limit.
                while l + 32 <= whole {
                    a = _mm512_fmadd_ps(_mm512_loadu_ps(xi.add(l)), _mm512_loadu_ps(wp.add(l)), a);
                    b = _mm512_fmadd_ps(_mm512_loadu_ps(xi.add(l + 16)), _mm512_loadu_ps(wp.add(l + 16)), b);
                    l += 32;
                }
                if l < whole {
                    a = _mm512_fmadd_ps(_mm512_loadu_ps(xi.add(l)), _mm512_loadu_ps(wp.add(l)), a);
                    l += 16;
                }
                if tail != 0 {
                    b = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, xi.add(l)), _mm512_maskz_loadu_ps(tail, wp.add(l)), b);
                }
                dst[i] = _mm512_reduce_add_ps(_mm512_add_ps(a, b));
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: &[f32], m: usize, k: usize, w: &[f32], n: usize) -> Vec<f64> {
        let mut out = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|l| x[i * k + l] as f64 * w[j * k + l] as f64).sum();
            }
        }
        out
    }

    #[test]
    fn equals_the_exact_product_for_every_row_count_and_ragged_widths() {
        // Large n x k goes through the thread pool; k % 16 != 0 exercises the tails.
        for (m, k, n) in [(1, 1, 1), (1, 576, 1536), (3, 17, 5), (4, 64, 9), (5, 576, 192), (8, 1536, 576), (16, 33, 2000), (7, 4, 3)] {
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 29 % 97) as f32 - 48.0) / 31.0).collect();
            let w: Vec<f32> = (0..n * k).map(|i| ((i * 53 % 89) as f32 - 44.0) / 23.0).collect();
            let mut out = vec![f32::NAN; m * n];
            matmul_nt(&x, m, k, &w, n, &mut out);
            let want = reference(&x, m, k, &w, n);
            for (i, (&got, &want)) in out.iter().zip(&want).enumerate() {
                // f32 sums of k products of magnitude <= 4: a few ulps of sqrt(k) * 4 each.
                assert!((got as f64 - want).abs() <= 1e-5 * (k as f64).sqrt() * 4.0 + 1e-6, "m {m} k {k} n {n} at {i}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn no_rows_or_columns_is_a_no_op_and_bad_shapes_panic() {
        let mut out: Vec<f32> = vec![];
        matmul_nt(&[], 0, 4, &[1.0; 8], 2, &mut out);
        matmul_nt(&[1.0; 4], 1, 4, &[], 0, &mut out);
        let bad = std::panic::catch_unwind(|| {
            let mut out = vec![0f32; 2];
            matmul_nt(&[1.0; 3], 1, 4, &[1.0; 8], 2, &mut out)
        });
        assert!(bad.is_err());
    }
}
