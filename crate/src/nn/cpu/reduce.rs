//! Row reductions the compiler can vectorise.
//!
//! Without fast-math a sum is one long dependency chain (floating-point addition is not
//! associative, so the compiler may not reorder it): scalar, and latency-bound. Summing into
//! `LANES` independent partial sums and adding those at the end is the reordering written out,
//! which the compiler then maps onto vector registers.

const LANES: usize = 16;

/// `sum(f(i))` for `i` in `0..n`, in `LANES` interleaved partial sums.
#[inline(always)]
pub(crate) fn sum_by(n: usize, f: impl Fn(usize) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let whole = n / LANES * LANES;
    for base in (0..whole).step_by(LANES) {
        for (l, a) in acc.iter_mut().enumerate() {
            *a += f(base + l);
        }
    }
    let mut tail = 0f32;
    for i in whole..n {
        tail += f(i);
    }
    acc.iter().sum::<f32>() + tail
}

/// The largest element of `x` (`-inf` when empty; NaNs are skipped, as `f32::max` does).
#[inline(always)]
pub(crate) fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = if v > *a { v } else { *a };
        }
    }
    chunks.remainder().iter().chain(&acc).copied().fold(f32::NEG_INFINITY, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_and_maxima_match_the_plain_loops() {
        for n in [0usize, 1, 15, 16, 17, 100, 577] {
            let x: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0).collect();
            let want: f64 = x.iter().map(|&v| v as f64).sum();
            assert!((sum_by(n, |i| x[i]) as f64 - want).abs() < 1e-3, "n = {n}");
            assert_eq!(max(&x), x.iter().copied().fold(f32::NEG_INFINITY, f32::max), "n = {n}");
        }
    }
}
