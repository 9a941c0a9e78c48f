//! This machine's f32 matmul throughput through candle (the same gemm kernels training and
//! decoding use), so a benchmark can state model-FLOP utilisation against a peak measured in
//! the same run rather than a number from a spec sheet.

use crate::error::Result;
use candle_core::{Device, Tensor};
use std::time::Instant;

/// Sides of the square matrices a measurement accepts: below 16 the timer sees little but call
/// overhead; above 8192 the three matrices alone would pass 768 MB.
pub const MATMUL_SIDES: std::ops::RangeInclusive<usize> = 16..=8192;
/// Timed multiplications a measurement accepts.
pub const MATMUL_REPS: std::ops::RangeInclusive<usize> = 1..=1000;

/// What [`matmul_gflops`] measured.
#[derive(Clone, Debug, PartialEq)]
pub struct MatmulThroughput {
    /// Side of the square matrices (after clamping to [`MATMUL_SIDES`]).
    pub n: usize,
    /// Timed multiplications (after one untimed warm-up).
    pub reps: usize,
    /// Threads candle's CPU kernels use (`RAYON_NUM_THREADS`, else every core).
    pub threads: usize,
    /// `2 n^3 / seconds` of the fastest multiplication, in GFLOP/s.
    pub best_gflops: f64,
    /// The same of the median multiplication.
    pub median_gflops: f64,
    /// Seconds of each timed multiplication, in order.
    pub seconds: Vec<f64>,
}

/// Times `reps` f32 `n x n` by `n x n` matmuls on the CPU (random inputs, one warm-up first,
/// `n` and `reps` clamped to what a measurement accepts). Blocks the calling thread for about
/// `reps + 1` multiplications.
pub fn matmul_gflops(n: usize, reps: usize) -> Result<MatmulThroughput> {
    let n = n.clamp(*MATMUL_SIDES.start(), *MATMUL_SIDES.end());
    let reps = reps.clamp(*MATMUL_REPS.start(), *MATMUL_REPS.end());
    let dev = Device::Cpu;
    let a = Tensor::randn(0f32, 1f32, (n, n), &dev)?;
    let b = Tensor::randn(0f32, 1f32, (n, n), &dev)?;
    // The first product pays for page faults and the kernels' one-time setup.
    let _ = a.matmul(&b)?;
    let mut seconds = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        let c = a.matmul(&b)?;
        seconds.push(t.elapsed().as_secs_f64());
        // Freed outside the timing but before the next product, as one live result at a time.
        drop(c);
    }
    let flops = 2.0 * (n as f64).powi(3);
    let mut sorted = seconds.clone();
    sorted.sort_by(|x, y| x.total_cmp(y));
    let median = sorted[sorted.len() / 2];
    Ok(MatmulThroughput {
        n,
        reps,
        threads: candle_core::utils::get_num_threads(),
        best_gflops: flops / sorted[0] / 1e9,
        median_gflops: flops / median / 1e9,
        seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rep_is_timed_and_the_best_is_at_least_the_median() {
        let m = matmul_gflops(64, 5).unwrap();
        assert_eq!((m.n, m.reps, m.seconds.len()), (64, 5, 5));
        assert!(m.seconds.iter().all(|&s| s > 0.0 && s.is_finite()), "{:?}", m.seconds);
        assert!(m.best_gflops >= m.median_gflops && m.median_gflops > 0.0, "{m:?}");
        let fastest = m.seconds.iter().copied().fold(f64::INFINITY, f64::min);
        assert!((m.best_gflops - 2.0 * 64f64.powi(3) / fastest / 1e9).abs() < 1e-9 * m.best_gflops);
        assert!(m.threads >= 1);
    }

    #[test]
    fn sizes_and_counts_are_clamped() {
        let m = matmul_gflops(3, 0).unwrap();
        assert_eq!((m.n, m.reps, m.seconds.len()), (16, 1, 1));
        assert_eq!(m.best_gflops, m.median_gflops, "one rep is its own median");
    }
}
