//! Q8_0 matrix products in int8 on AVX-512 VNNI: weights repacked once, activations quantized
//! per call, 32-value blocks multiplied with `vpdpbusd` (64 int8 products per instruction).
//!
//! Why not candle's Q8_0 kernel: it computes one dot product at a time, converting each weight
//! block's f16 scale on every use and reading every weight block again for every row, so a
//! prompt of 55 tokens costs 55 passes over the weights on one core; its VNNI path also needs
//! K % 256, which SmolLM2's width (576) misses. Why not dequantized f32 panels (the fallback in
//! `generate::q8_prefill`): converting the panels took a fifth of the time, and f32 FMAs do a
//! quarter of the multiplications per instruction that `vpdpbusd` does.
//!
//! Layout: output columns in groups of 16 (one zmm of i32/f32 lanes). For each group and
//! 32-value block there are ten 64-byte lines: eight of weights, where line `s` holds values
//! `4s..4s+4` of each of the 16 columns (so one `vpdpbusd` adds four products per column), one
//! line of the 16 f32 scales, one of the 16 block offsets `-128 * sum(w)`. Activations become
//! unsigned (`q + 128`, what `vpdpbusd` takes as its unsigned operand); the offset line takes
//! the 128 back out, so each block's integer sum is exactly `sum(q_x * q_w)`, as in llama.cpp's
//! and candle's Q8_0 dot products.
//!
//! Measured on SmolLM2-135M (`cargo run --release --no-default-features --example
//! decode_profile`, 55-token prompt, AMD EPYC with AVX-512 VNNI, with the vectorised norms and
//! softmax of the same change): prefill 180 -> 57 ms, decoding 19.7 -> 13.1 ms per token.

use crate::nn::cpu::simd::vectorized;
use half::f16;
use std::sync::OnceLock;

const BLOCK: usize = 32;
/// Bytes of one ggml `block_q8_0`: an f16 scale, then 32 int8 values.
const GGML_BLOCK_BYTES: usize = 34;
/// Output columns per group (zmm lanes).
const GROUP: usize = 16;
/// 64-byte lines per (group, block): 8 of weights, 1 of scales, 1 of offsets.
const LINES: usize = 10;
const SCALE_LINE: usize = 8;
const OFFSET_LINE: usize = 9;
/// Rows of activations per register tile; with two column groups that is 8 i32 and 8 f32
/// accumulators, within the 32 zmm registers beside weights and broadcasts.
const TILE_ROWS: usize = 4;
/// Column groups per tile (32 output columns).
const TILE_GROUPS: usize = 2;
/// Products (m * n * k) from which a call is split over the thread pool; below it waking the
/// other worker costs more than it saves (one decoded token's 576 x 576 projection is 330 K).
const MIN_PARALLEL_PRODUCTS: usize = 1 << 21;

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// Whether this CPU runs the int8 kernel (AVX-512 F, BW and VNNI).
pub(crate) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vnni")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// An `[n, k]` Q8_0 weight in the kernel's layout (see the module docs).
#[derive(Clone)]
pub(crate) struct PackedQ8_0 {
    n: usize,
    k: usize,
    lines: Vec<Line>,
}

impl std::fmt::Debug for PackedQ8_0 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PackedQ8_0 [{}, {}]", self.n, self.k)
    }
}

impl PackedQ8_0 {
    /// Repacks ggml Q8_0 bytes of an `[n, k]` matrix (rows of `k / 32` blocks). `None` when the
    /// sizes do not fit (`k` not a multiple of 32, or the wrong byte count).
    pub(crate) fn from_ggml(bytes: &[u8], n: usize, k: usize) -> Option<Self> {
        if k == 0 || k % BLOCK != 0 || bytes.len() != n * (k / BLOCK) * GGML_BLOCK_BYTES {
            return None;
        }
        let blocks = k / BLOCK;
        let groups = n.div_ceil(GROUP);
        let mut lines = vec![Line([0; 64]); groups * blocks * LINES];
        for g in 0..groups {
            for b in 0..blocks {
                let base = (g * blocks + b) * LINES;
                for c in 0..GROUP.min(n - g * GROUP) {
                    let at = ((g * GROUP + c) * blocks + b) * GGML_BLOCK_BYTES;
                    let block = &bytes[at..at + GGML_BLOCK_BYTES];
                    let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
                    let q = &block[2..];
                    for s in 0..BLOCK / 4 {
                        lines[base + s].0[c * 4..c * 4 + 4].copy_from_slice(&q[s * 4..s * 4 + 4]);
                    }
                    let sum: i32 = q.iter().map(|&v| i32::from(v as i8)).sum();
                    lines[base + SCALE_LINE].0[c * 4..c * 4 + 4].copy_from_slice(&d.to_le_bytes());
                    lines[base + OFFSET_LINE].0[c * 4..c * 4 + 4].copy_from_slice(&(-128 * sum).to_le_bytes());
                }
            }
        }
        Some(PackedQ8_0 { n, k, lines })
    }

    pub(crate) fn dims(&self) -> (usize, usize) {
        (self.n, self.k)
    }

    /// The weight as f32 `[n, k]`, row-major: each value its block scale times its int8 value,
    /// exactly what Q8_0 dequantization gives.
    pub(crate) fn dequantize(&self) -> Vec<f32> {
        let blocks = self.k / BLOCK;
        let mut out = vec![0f32; self.n * self.k];
        for (col, row) in out.chunks_exact_mut(self.k).enumerate() {
            let (g, c) = (col / GROUP, col % GROUP);
            for b in 0..blocks {
                let base = (g * blocks + b) * LINES;
                let s = &self.lines[base + SCALE_LINE].0[c * 4..c * 4 + 4];
                let d = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
                for i in 0..BLOCK {
                    row[b * BLOCK + i] = d * f32::from(self.lines[base + i / 4].0[c * 4 + i % 4] as i8);
                }
            }
        }
        out
    }

    /// `x W^T` for the row-major `[m, k]` `x`: `[m, n]`. `x` is quantized to Q8_0 blocks first
    /// (scale `max|x| / 127` kept as f16, values rounded to nearest), as candle and llama.cpp
    /// quantize activations. Panics unless [`available`] and `x.len() == m * k`.
    pub(crate) fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        assert!(available(), "the int8 Q8_0 kernel needs AVX-512 VNNI");
        assert_eq!(x.len(), m * self.k, "input of {} values is not {m} rows of {}", x.len(), self.k);
        let blocks = self.k / BLOCK;
        // SAFETY: `available()` was asserted above.
        let (xq, xd) = unsafe { avx512::quantize_activations(x) };
        let mut out = vec![0f32; m * self.n];
        let dst = Output(out.as_mut_ptr());
        let groups = self.n.div_ceil(GROUP);
        let panel = |p: usize| {
            let g0 = p * TILE_GROUPS;
            let g = TILE_GROUPS.min(groups - g0);
            let cols = (self.n - g0 * GROUP).min(g * GROUP);
            let dst = &dst;
            for r0 in (0..m).step_by(TILE_ROWS) {
                let r = TILE_ROWS.min(m - r0);
                let tile = Tile {
                    w: self.lines[g0 * blocks * LINES..].as_ptr().cast(),
                    blocks,
                    x: xq[r0 * self.k..].as_ptr(),
                    k: self.k,
                    xd: xd[r0 * blocks..].as_ptr(),
                    // SAFETY (of the pointer arithmetic): row r0, column g0 * 16 lies inside
                    // the [m, n] output.
                    out: unsafe { dst.0.add(r0 * self.n + g0 * GROUP) },
                    n: self.n,
                    cols,
                };
                // SAFETY: `available()` was checked; the tile reads `r` rows of `xq`/`xd` and
                // `g` groups of packed lines, all in bounds by construction, and writes `cols`
                // columns of `r` output rows that no other panel writes.
                unsafe { avx512::run_tile(&tile, r, g) };
            }
        };
        let panels = groups.div_ceil(TILE_GROUPS);
        if rayon::current_num_threads() > 1 && panels > 1 && m * self.n * self.k >= MIN_PARALLEL_PRODUCTS {
            use rayon::prelude::*;
            (0..panels).into_par_iter().for_each(panel);
        } else {
            (0..panels).for_each(panel);
        }
        out
    }
}

/// The output pointer shared by the panel workers, each writing its own columns.
struct Output(*mut f32);
// SAFETY: panels write disjoint column ranges; the buffer outlives the parallel loop.
unsafe impl Send for Output {}
unsafe impl Sync for Output {}

/// One register tile's operands: up to [`TILE_ROWS`] rows from `x`, up to [`TILE_GROUPS`]
/// groups from `w`.
struct Tile {
    /// The first group's lines for block 0; the next group starts `blocks * LINES` lines on.
    w: *const Line,
    blocks: usize,
    /// Unsigned activations (`q + 128`), row stride `k`.
    x: *const u8,
    k: usize,
    /// Activation scales, row stride `blocks`.
    xd: *const f32,
    /// Output at (first row, first column), row stride `n`.
    out: *mut f32,
    n: usize,
    /// Output columns to write (the last group may be partial).
    cols: usize,
}

/// Activations rounded to Q8_0 and offset to unsigned: per 32-value block `d = max|x| / 127`
/// (kept as f16, as a ggml block stores it), `q = round(x / d)`, stored as `q + 128`. The
/// kernel's own copy is `avx512::quantize_activations`; this one is its reference in tests.
#[cfg_attr(not(test), allow(dead_code))]
fn quantize_activations(x: &[f32], blocks_per_row: usize) -> (Vec<u8>, Vec<f32>) {
    let mut q = vec![0u8; x.len()];
    let mut d = vec![0f32; x.len() / BLOCK];
    debug_assert_eq!(d.len() % blocks_per_row.max(1), 0);
    vectorized(|| {
        for ((xs, qs), ds) in x.chunks_exact(BLOCK).zip(q.chunks_exact_mut(BLOCK)).zip(d.iter_mut()) {
            let xs: &[f32; BLOCK] = xs.try_into().expect("whole blocks");
            let mut amax = 0f32;
            for &v in xs {
                let a = v.abs();
                amax = if a > amax { a } else { amax };
            }
            let scale = amax / 127.0;
            let inv = if scale != 0.0 { 1.0 / scale } else { 0.0 };
            *ds = f16::from_f32(scale).to_f32();
            for (o, &v) in qs.iter_mut().zip(xs) {
                *o = (round_half_away(v * inv).clamp(-127.0, 127.0) as i32 + 128) as u8;
            }
        }
    });
    (q, d)
}

/// `x.round()` (halves away from zero, as ggml's quantizers round), written with `trunc` so
/// the loop vectorises: libm's `roundf` stays a call per value, a fifth of a prefill's time.
#[inline(always)]
fn round_half_away(x: f32) -> f32 {
    let t = x.trunc();
    let step = if x - t >= 0.5 { 1.0 } else if t - x >= 0.5 { -1.0 } else { 0.0 };
    t + step
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Tile, BLOCK, GROUP, LINES, OFFSET_LINE, SCALE_LINE};
    use half::f16;
    use std::arch::x86_64::*;

    /// [`super::quantize_activations`] in AVX-512 (the plain loop stays scalar: `round` and
    /// `trunc` are libm calls without SSE4.1 in the baseline build).
    ///
    /// # Safety
    /// The CPU has AVX-512 F/BW.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn quantize_activations(x: &[f32]) -> (Vec<u8>, Vec<f32>) {
        let mut q = vec![0u8; x.len()];
        let mut d = vec![0f32; x.len() / BLOCK];
        let (half, one, lo, hi) = (_mm512_set1_ps(0.5), _mm512_set1_ps(1.0), _mm512_set1_ps(-127.0), _mm512_set1_ps(127.0));
        for ((xs, qs), ds) in x.chunks_exact(BLOCK).zip(q.chunks_exact_mut(BLOCK)).zip(d.iter_mut()) {
            // SAFETY: each chunk is 32 f32 / 32 u8; unaligned loads and stores.
            unsafe {
                let v = [_mm512_loadu_ps(xs.as_ptr()), _mm512_loadu_ps(xs.as_ptr().add(16))];
                let amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v[0]), _mm512_abs_ps(v[1])));
                let scale = amax / 127.0;
                let inv = _mm512_set1_ps(if scale != 0.0 { 1.0 / scale } else { 0.0 });
                *ds = f16::from_f32(scale).to_f32();
                for (h, &v) in v.iter().enumerate() {
                    let y = _mm512_mul_ps(v, inv);
                    // Halves away from zero, as f32::round: truncate, then step by one where
                    // the dropped fraction was at least a half.
                    let t = _mm512_roundscale_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(y);
                    let frac = _mm512_sub_ps(y, t);
                    let t = _mm512_mask_add_ps(t, _mm512_cmp_ps_mask::<_CMP_GE_OQ>(frac, half), t, one);
                    let t = _mm512_mask_sub_ps(t, _mm512_cmp_ps_mask::<_CMP_LE_OQ>(frac, _mm512_sub_ps(_mm512_setzero_ps(), half)), t, one);
                    let i = _mm512_add_epi32(_mm512_cvttps_epi32(_mm512_min_ps(_mm512_max_ps(t, lo), hi)), _mm512_set1_epi32(128));
                    _mm_storeu_si128(qs.as_mut_ptr().add(h * 16).cast(), _mm512_cvtepi32_epi8(i));
                }
            }
        }
        (q, d)
    }

    /// Runs the tile kernel for `rows` x `groups`.
    ///
    /// # Safety
    /// The CPU has AVX-512 F/BW/VNNI, and `tile`'s pointers cover `rows` rows and `groups`
    /// groups of every block.
    pub(super) unsafe fn run_tile(tile: &Tile, rows: usize, groups: usize) {
        // SAFETY: forwarded from the caller.
        unsafe {
            match (rows, groups) {
                (4, 2) => tile_kernel::<4, 2>(tile),
                (3, 2) => tile_kernel::<3, 2>(tile),
                (2, 2) => tile_kernel::<2, 2>(tile),
                (1, 2) => tile_kernel::<1, 2>(tile),
                (4, 1) => tile_kernel::<4, 1>(tile),
                (3, 1) => tile_kernel::<3, 1>(tile),
                (2, 1) => tile_kernel::<2, 1>(tile),
                (1, 1) => tile_kernel::<1, 1>(tile),
                _ => unreachable!("tile of {rows} rows x {groups} groups"),
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn tile_kernel<const R: usize, const G: usize>(t: &Tile) {
        let group_lines = t.blocks * LINES;
        let mut acc = [[_mm512_setzero_ps(); G]; R];
        for b in 0..t.blocks {
            // SAFETY (every access below): in bounds by the caller's contract on `t`.
            unsafe {
                let line = |g: usize, l: usize| t.w.add(g * group_lines + b * LINES + l);
                let mut sums = [[_mm512_setzero_si512(); G]; R];
                for g in 0..G {
                    let offset = _mm512_load_si512(line(g, OFFSET_LINE).cast());
                    for r in 0..R {
                        sums[r][g] = offset;
                    }
                }
                for s in 0..BLOCK / 4 {
                    let mut w = [_mm512_setzero_si512(); G];
                    for g in 0..G {
                        w[g] = _mm512_load_si512(line(g, s).cast());
                    }
                    for r in 0..R {
                        let four = t.x.add(r * t.k + b * BLOCK + s * 4).cast::<i32>().read_unaligned();
                        let x = _mm512_set1_epi32(four);
                        for g in 0..G {
                            sums[r][g] = _mm512_dpbusd_epi32(sums[r][g], x, w[g]);
                        }
                    }
                }
                for g in 0..G {
                    let dw = _mm512_load_ps(line(g, SCALE_LINE).cast());
                    for r in 0..R {
                        let scale = _mm512_mul_ps(dw, _mm512_set1_ps(*t.xd.add(r * t.blocks + b)));
                        acc[r][g] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums[r][g]), scale, acc[r][g]);
                    }
                }
            }
        }
        for r in 0..R {
            for g in 0..G {
                let first = g * GROUP;
                if first >= t.cols {
                    continue;
                }
                let valid = (t.cols - first).min(GROUP);
                let mask: __mmask16 = if valid == GROUP { u16::MAX } else { (1u16 << valid) - 1 };
                // SAFETY: the mask limits the store to the tile's columns of row r.
                unsafe { _mm512_mask_storeu_ps(t.out.add(r * t.n + first), mask, acc[r][g]) };
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod avx512 {
    use super::Tile;
    pub(super) unsafe fn run_tile(_: &Tile, _: usize, _: usize) {
        unreachable!("the int8 Q8_0 kernel is x86-64 only; `available()` is false here")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
    use candle_core::{Device, Module, Tensor};

    fn weights(n: usize, k: usize) -> Tensor {
        let v: Vec<f32> = (0..n * k).map(|i| ((i * 7919 % 1009) as f32 / 1009.0 - 0.5) * 0.2).collect();
        Tensor::from_vec(v, (n, k), &Device::Cpu).unwrap()
    }

    #[test]
    fn repacking_keeps_every_value_and_scale() {
        for (n, k) in [(16, 32), (37, 64), (3, 96)] {
            let q = QTensor::quantize(&weights(n, k), GgmlDType::Q8_0).unwrap();
            let packed = PackedQ8_0::from_ggml(&q.data().unwrap(), n, k).unwrap();
            let want = q.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(packed.dequantize(), want, "[{n}, {k}]");
        }
        assert!(PackedQ8_0::from_ggml(&[0; 34], 1, 33).is_none());
        assert!(PackedQ8_0::from_ggml(&[0; 33], 1, 32).is_none());
    }

    #[test]
    fn rounding_matches_std_round() {
        let mut x = 0.5f32;
        for v in [0.5f32, 1.5, 2.5, -0.5, -2.5, 0.49999997, -0.49999997, 126.5, 127.49, 1e-30, 0.0, -0.0, 8388607.5, 3.0e7] {
            assert_eq!(round_half_away(v), v.round(), "{v}");
        }
        for _ in 0..100_000 {
            x = (x * 1.618_034 + 0.377) % 254.0 - 127.0;
            assert_eq!(round_half_away(x), x.round(), "{x}");
        }
    }

    #[test]
    fn activations_round_as_a_q8_0_block_does() {
        let x: Vec<f32> = (0..64).map(|i| (i as f32 - 20.0) * 0.37).collect();
        let (q, d) = quantize_activations(&x, 2);
        let t = Tensor::from_vec(x.clone(), (1, 64), &Device::Cpu).unwrap();
        let want = QTensor::quantize(&t, GgmlDType::Q8_0).unwrap().data().unwrap().to_vec();
        for b in 0..2 {
            let block = &want[b * 34..(b + 1) * 34];
            assert_eq!(d[b], f16::from_le_bytes([block[0], block[1]]).to_f32());
            for i in 0..32 {
                assert_eq!(i32::from(q[b * 32 + i]) - 128, i32::from(block[2 + i] as i8), "block {b} value {i}");
            }
        }
        let (q, d) = quantize_activations(&[0.0; 32], 1);
        assert!(q.iter().all(|&v| v == 128) && d == [0.0]);
        if available() {
            // The kernel's vector copy rounds every value the same way, halves included.
            let mut x: Vec<f32> = (0..32 * 300).map(|i| ((i * 7919 % 2003) as f32 - 1001.0) * 0.013).collect();
            x[..32].copy_from_slice(&[127.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, -126.5, 0.0, -0.0, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5, 10.5, 11.5, 12.5, 13.5, 14.5, 15.5, 16.5, 17.5, 18.5, 19.5, 20.5, 21.5, 22.5, 23.5]);
            // SAFETY: available() checked.
            assert_eq!(unsafe { avx512::quantize_activations(&x) }, quantize_activations(&x, 300));
        }
    }

    #[test]
    fn equals_the_exact_product_of_the_rounded_values_and_candles_kernel() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX-512 VNNI");
            return;
        }
        // Every tile shape (rows % 4, a lone last group, a partial group) and the real shapes.
        for (m, n, k) in [(1, 576, 576), (5, 200, 64), (9, 64, 32), (2, 23, 96), (55, 1536, 576), (3, 576, 1536), (8, 40, 64)] {
            let w = weights(n, k);
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 104_729 % 997) as f32 / 997.0 - 0.5) * 3.0).collect();
            let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
            let packed = PackedQ8_0::from_ggml(&q.data().unwrap(), n, k).unwrap();
            let ours = packed.matmul(&x, m);
            // The reference: the dequantized weight times the Q8_0-rounded input, in f64.
            let wd = packed.dequantize();
            let (xq, xd) = quantize_activations(&x, k / 32);
            let scale = ours.iter().fold(0f32, |a, v| a.max(v.abs()));
            for r in 0..m {
                for c in 0..n {
                    let want: f64 = (0..k)
                        .map(|i| f64::from(xd[(r * k + i) / 32]) * f64::from(i32::from(xq[r * k + i]) - 128) * f64::from(wd[c * k + i]))
                        .sum();
                    let got = ours[r * n + c];
                    assert!((f64::from(got) - want).abs() <= 1e-5 * f64::from(scale), "({m}, {n}, {k}) at [{r}, {c}]: {got} vs {want}");
                }
            }
            // candle's own Q8_0 kernel, where it rounds activations per 32 as well (K % 256
            // takes its VNNI path, which rounds per 256).
            if k % 256 != 0 {
                let candle = QMatMul::from_qtensor(q).unwrap();
                let want = candle.forward(&Tensor::from_vec(x, (m, k), &Device::Cpu).unwrap()).unwrap();
                let want = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let d = ours.iter().zip(&want).fold(0f32, |a, (o, w)| a.max((o - w).abs()));
                assert!(d <= 1e-5 * scale, "({m}, {n}, {k}): {d} from candle's product (scale {scale})");
            }
        }
    }
}
