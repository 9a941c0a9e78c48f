//! A checked, safe front to `gemm::gemm` for the custom ops' backward passes, which multiply
//! slices they already hold (and transposed views of them) without building candle tensors:
//! each candle matmul there allocated a zeroed output and often a contiguous copy of a
//! transposed operand, and the sum of two products was a third full-size pass.

/// A read-only matrix view: element `(i, j)` is `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Mat<'a> {
    /// A dense row-major `rows x cols` matrix.
    pub(crate) fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert_eq!(data.len(), rows * cols, "a {rows}x{cols} matrix over {} values", data.len());
        Mat { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// The transpose, without copying.
    pub(crate) fn t(self) -> Self {
        Mat { rows: self.cols, cols: self.rows, row_stride: self.col_stride, col_stride: self.row_stride, ..self }
    }
}

/// Below this many multiply-adds a product runs on the calling thread.
const MIN_PARALLEL_MACS: usize = 1 << 18;

/// `dst = (accumulate ? dst : 0) + scale * a b`, with `dst` dense row-major `a.rows x b.cols`.
pub(crate) fn matmul_into(dst: &mut [f32], a: Mat<'_>, b: Mat<'_>, scale: f32, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "multiplying {m}x{k} by {}x{n}", b.rows);
    assert_eq!(dst.len(), m * n, "a {m}x{n} product into {} values", dst.len());
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.fill(0.0);
        }
        return;
    }
    let parallelism = if m * n * k >= MIN_PARALLEL_MACS { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
    // SAFETY: `Mat::rows` checked that each view's extents lie inside its slice (transposing
    // swaps extents and strides together), `dst` has exactly m x n elements and is exclusively
    // borrowed, and with `read_dst` false gemm writes every element before reading any.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], (m, k): (usize, usize), b: &[f32], n: usize, ta: bool, tb: bool) -> Vec<f32> {
        let at = |i: usize, p: usize| if ta { a[p * m + i] } else { a[i * k + p] };
        let bt = |p: usize, j: usize| if tb { b[j * k + p] } else { b[p * n + j] };
        (0..m * n).map(|e| (0..k).map(|p| at(e / n, p) * bt(p, e % n)).sum()).collect()
    }

    #[test]
    fn products_of_views_match_the_naive_loop_and_accumulate() {
        let (m, k, n) = (37, 70, 19);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 31 % 97) as f32 - 48.0) / 50.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 17 % 89) as f32 - 44.0) / 40.0).collect();
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let av = if ta { Mat::rows(&a, k, m).t() } else { Mat::rows(&a, m, k) };
            let bv = if tb { Mat::rows(&b, n, k).t() } else { Mat::rows(&b, k, n) };
            let want = naive(&a, (m, k), &b, n, ta, tb);
            let mut out = vec![f32::NAN; m * n];
            matmul_into(&mut out, av, bv, 2.0, false);
            for (o, w) in out.iter().zip(&want) {
                assert!((o - 2.0 * w).abs() < 1e-4, "{o} vs {}", 2.0 * w);
            }
            matmul_into(&mut out, av, bv, -1.0, true);
            for (o, w) in out.iter().zip(&want) {
                assert!((o - w).abs() < 1e-4, "{o} vs {w}");
            }
        }
    }
}
