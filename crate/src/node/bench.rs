//! Benchmark hook: this machine's f32 matmul throughput through candle (the same gemm kernels
//! training and decoding use), so `npm run bench` can state model-FLOP utilisation against a
//! peak measured in the same run rather than a number from a spec sheet.

use candle_core::{Device, Tensor};
use napi_derive::napi;
use std::time::Instant;

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

/// Times `reps` f32 `n x n` by `n x n` matmuls on the CPU with candle (random inputs, one
/// warm-up first). Blocks the calling thread for about `reps` multiplications.
#[napi]
pub fn matmul_gflops(n: u32, reps: u32) -> napi::Result<MatmulBench> {
    super::guard(|| -> crate::error::Result<MatmulBench> {
        let n = n.clamp(16, 8192) as usize;
        let reps = reps.clamp(1, 1000);
        let dev = Device::Cpu;
        let a = Tensor::randn(0f32, 1f32, (n, n), &dev)?;
        let b = Tensor::randn(0f32, 1f32, (n, n), &dev)?;
        let _ = a.matmul(&b)?;
        let mut seconds = Vec::with_capacity(reps as usize);
        for _ in 0..reps {
            let t = Instant::now();
            let c = a.matmul(&b)?;
            seconds.push(t.elapsed().as_secs_f64());
            drop(c);
        }
        let flops = 2.0 * (n as f64).powi(3);
        let mut sorted = seconds.clone();
        sorted.sort_by(|x, y| x.total_cmp(y));
        let median = sorted[sorted.len() / 2];
        Ok(MatmulBench {
            n: n as u32,
            reps,
            threads: candle_core::utils::get_num_threads() as u32,
            best_gflops: flops / sorted[0] / 1e9,
            median_gflops: flops / median / 1e9,
            seconds,
        })
    })
}
