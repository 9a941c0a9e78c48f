//! CPU kernels of the project's custom ops: reading candle's storage, and the element-wise and
//! row-wise loops (SwiGLU, softmax, RMSNorm, dropout) that run between matmuls.
//!
//! A profile of one LoRA training step of SmolLM2-135M put about 60% of the wall time in these
//! loops: they ran on the calling thread only, with a scalar `expf`, while both cores sat idle
//! between matmuls. Here every loop is compiled for the widest vector unit the CPU has
//! ([`simd::vectorized`]: AVX-512, else AVX2+FMA, picked at run time, so one binary still runs
//! on older CPUs) and split over the matmul thread pool when it is large
//! ([`par::for_rows`]).

pub(crate) mod exp;
pub(crate) mod few_rows;
pub(crate) mod gemm;
pub(crate) mod par;
pub(crate) mod q8_0;
pub(crate) mod reduce;
pub(crate) mod simd;
mod storage;

pub(crate) use storage::contiguous_f32;
