//! Benchmark hook: [`crate::measure::matmul_gflops`] for `npm run bench`, which states
//! model-FLOP utilisation against this peak.

use crate::measure::{self, MatmulThroughput};
use napi_derive::napi;

/// What `matmulGflops` measured.
#[napi(object)]
pub struct MatmulBench {
    /// Side of the square matrices.
    pub n: u32,
    /// Timed multiplications (after one untimed warm-up).
    pub reps: u32,
    /// Threads candle's CPU kernels use (`RAYON_NUM_THREADS`, else every core).
    pub threads: u32,
    /// `2 n^3 / seconds` of the fastest multiplication, in GFLOP/s.
    pub best_gflops: f64,
    /// The same of the median multiplication.
    pub median_gflops: f64,
    /// Seconds of each timed multiplication.
    pub seconds: Vec<f64>,
}

impl From<MatmulThroughput> for MatmulBench {
    fn from(m: MatmulThroughput) -> Self {
        MatmulBench {
            n: m.n as u32,
            reps: m.reps as u32,
            threads: m.threads as u32,
            best_gflops: m.best_gflops,
            median_gflops: m.median_gflops,
            seconds: m.seconds,
        }
    }
}

/// Times `reps` f32 `n x n` by `n x n` matmuls on the CPU with candle (random inputs, one
/// warm-up first; `n` clamped to 16-8192, `reps` to 1-1000). Blocks the calling thread for
/// about `reps` multiplications.
#[napi]
pub fn matmul_gflops(n: u32, reps: u32) -> napi::Result<MatmulBench> {
    super::guard(|| measure::matmul_gflops(n as usize, reps as usize).map(MatmulBench::from))
}
