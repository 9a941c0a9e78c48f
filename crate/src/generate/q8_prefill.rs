//! Prefill (many rows at once) over Q8_0 weights on CPUs without AVX-512 VNNI (those with it
//! use the int8 kernel of `nn::cpu::q8_0`): each panel of output columns is dequantized
//! to f32 into a small per-thread buffer and multiplied with gemm's f32 kernels, the panels
//! spread over the rayon pool.
//!
//! candle's Q8_0 kernel computes each output as int8 dot products against activations it
//! quantized too: right for decoding one token (bound by reading the weights, which stay a
//! quarter of f32's size), slow for a prompt, where every weight block is read again for every
//! row and converted from its f16 scale each time, on one core (55-token prompt of SmolLM2:
//! 272 ms against llama.cpp's 94). A dequantized panel (64 columns x k, under 150 KB for k =
//! 576) is reused by every row while it sits in cache, so a prompt costs f32 matmul time plus
//! one pass over the int8 weights. The activations are rounded to Q8_0 blocks first, exactly as
//! the int8 kernel rounds them, so both compute the same sums of the same products (up to
//! float rounding; a prompt fed whole and fed token by token agree in the tests). On SmolLM2
//! the prompt's logits came out closer to the f32 model than through candle's kernel (KL mean
//! 0.0094 against 0.0159 on the real-model test's prompt): candle multiplies rows of a multiple
//! of 256 with a VNNI kernel that rounds activations per 256 values, not per 32. Measured (SmolLM2-135M,
//! `cargo run --example decode_profile`): a 55-token prefill from 550 to 150 ms; at 8 rows
//! both ways cost the same, hence [`MIN_ROWS`].

use crate::error::{Result, WotdError};
use crate::nn::cpu::simd::vectorized;
use candle_core::quantized::{GgmlDType, QTensor};
use half::f16;
use std::cell::RefCell;

/// From this many rows on, a Q8_0 product goes through dequantized panels.
pub(crate) const MIN_ROWS: usize = 8;
/// Output columns per panel.
const PANEL: usize = 64;
const BLOCK: usize = 32;
/// Bytes of one Q8_0 block: an f16 scale, then 32 int8 values (llama.cpp's `block_q8_0`).
const BLOCK_BYTES: usize = 34;

/// Whether `x W^T` goes through dequantized panels: a Q8_0 weight and an f32 input of at least
/// [`MIN_ROWS`] rows.
pub(crate) fn applies(w: &QTensor, x: &candle_core::Tensor) -> bool {
    let k = x.dims().last().copied().unwrap_or(0);
    w.dtype() == GgmlDType::Q8_0 && x.dtype() == candle_core::DType::F32 && k > 0 && x.elem_count() / k >= MIN_ROWS
}

/// The output pointer shared by the panel workers, each writing its own columns.
struct Columns(*mut f32);
// SAFETY: workers write disjoint column ranges of the buffer (one panel each), and the buffer
// outlives the parallel loop.
unsafe impl Send for Columns {}
unsafe impl Sync for Columns {}

/// `x W^T` for the row-major `[m, k]` `x` and a Q8_0 `[n, k]` weight: `[m, n]`.
pub(crate) fn matmul(w: &QTensor, x: &[f32], m: usize) -> Result<Vec<f32>> {
    if w.dtype() != GgmlDType::Q8_0 {
        return Err(WotdError::InvalidInput(format!("Q8_0 prefill given a {:?} weight", w.dtype())));
    }
    let (n, k) = w.shape().dims2()?;
    let data = w.data()?;
    if k % BLOCK != 0 || data.len() != n * (k / BLOCK) * BLOCK_BYTES || x.len() != m * k {
        return Err(WotdError::InvalidInput(format!(
            "Q8_0 prefill: weight [{n}, {k}] in {} bytes, input of {} values for {m} rows",
            data.len(),
            x.len()
        )));
    }
    let row_bytes = k / BLOCK * BLOCK_BYTES;
    let x = round_to_q8_0(x);
    let x = x.as_slice();
    let mut out = vec![0f32; m * n];
    let dst = Columns(out.as_mut_ptr());
    let panel = |p: usize| {
        let (c0, c1) = (p * PANEL, ((p + 1) * PANEL).min(n));
        thread_local! {
            static BUF: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
        }
        BUF.with(|buf| {
            let mut buf = buf.borrow_mut();
            buf.resize(PANEL * k, 0.0);
            let panel = &mut buf[..(c1 - c0) * k];
            dequantize_rows(&data[c0 * row_bytes..c1 * row_bytes], panel);
            let dst = &dst;
            // SAFETY: `x` is [m, k] row-major, `panel` holds rows c0..c1 of W ([cols, k],
            // read as the [k, cols] view with strides (1, k)), and the destination is columns
            // c0..c1 of the [m, n] output, which no other panel writes; read_dst is false.
            unsafe {
                gemm::gemm(
                    m,
                    c1 - c0,
                    k,
                    dst.0.add(c0),
                    1,
                    n as isize,
                    false,
                    x.as_ptr(),
                    1,
                    k as isize,
                    panel.as_ptr(),
                    k as isize,
                    1,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        });
    };
    let panels = n.div_ceil(PANEL);
    if rayon::current_num_threads() > 1 && panels > 1 {
        use rayon::prelude::*;
        (0..panels).into_par_iter().for_each(panel);
    } else {
        (0..panels).for_each(panel);
    }
    Ok(out)
}

/// `x` (whole 32-value blocks) rounded as Q8_0 rounds it: per block, `d = max|x| / 127` kept as
/// f16, each value `d * round(x / d)`.
fn round_to_q8_0(x: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    vectorized(|| {
        for (xs, os) in x.chunks_exact(BLOCK).zip(out.chunks_exact_mut(BLOCK)) {
            let amax = xs.iter().fold(0f32, |a, v| a.max(v.abs()));
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let d16 = f16::from_f32(d).to_f32();
            for (o, &v) in os.iter_mut().zip(xs) {
                *o = d16 * (v * id).round();
            }
        }
    });
    out
}

/// Q8_0 rows (whole blocks) to f32.
fn dequantize_rows(bytes: &[u8], out: &mut [f32]) {
    vectorized(|| {
        for (block, values) in bytes.chunks_exact(BLOCK_BYTES).zip(out.chunks_exact_mut(BLOCK)) {
            let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
            for (v, &q) in values.iter_mut().zip(&block[2..]) {
                *v = d * f32::from(q as i8);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn equals_candles_int8_product_of_the_same_q8_0_values() -> Result<()> {
        let dev = Device::Cpu;
        for (m, n, k) in [(8usize, 576usize, 576usize), (13, 200, 64), (9, 64, 32), (55, 1536, 576)] {
            let w = Tensor::from_vec((0..n * k).map(|i| ((i * 7919 % 1009) as f32 / 1009.0 - 0.5) * 0.2).collect::<Vec<_>>(), (n, k), &dev)?;
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 104_729 % 997) as f32 / 997.0 - 0.5) * 3.0).collect();
            let q = QTensor::quantize(&w, GgmlDType::Q8_0)?;
            let ours = Tensor::from_vec(matmul(&q, &x, m)?, (m, n), &dev)?;
            // candle's own Q8_0 kernel: int8 activations times int8 weights, row by row.
            let candle = candle_core::quantized::QMatMul::from_qtensor(QTensor::quantize(&w, GgmlDType::Q8_0)?)?;
            let want = candle_core::Module::forward(&candle, &Tensor::from_vec(x.clone(), (m, k), &dev)?)?;
            let scale = want.abs()?.max_all()?.to_scalar::<f32>()?;
            let d = (&ours - &want)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(d <= 1e-5 * scale, "({m}, {n}, {k}): {d} from candle's int8 product (scale {scale})");
        }
        let q4 = QTensor::quantize(&Tensor::zeros((4, 32), candle_core::DType::F32, &dev)?, GgmlDType::Q4_0)?;
        assert!(matmul(&q4, &[0.0; 64], 2).is_err());
        Ok(())
    }
}
