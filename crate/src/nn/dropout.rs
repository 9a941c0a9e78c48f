//! Inverted dropout on the LoRA input, kept as bits: drawn once per forward pass and applied
//! again, not redrawn, in the backward pass (`lora_op`).

use crate::random::SeededRng;

/// An inverted-dropout mask of `n` elements (0 with probability `p`, else `1 / (1 - p)`) kept
/// as one bit per element: `n / 8` bytes where the float mask took `4n`, so the graph of a
/// training step can hold a mask per adapted projection until the backward pass, which applies
/// the same bits instead of drawing them again. Each 64-bit draw decides four elements (16 bits
/// each, so `p` is resolved to 1/65536): masks are drawn for every adapted projection of every
/// step, and one draw per element was a visible cost.
#[derive(Clone, Debug)]
pub(crate) struct DropoutMask {
    /// Bit `i % 64` of word `i / 64` set: element `i` is kept.
    keep: std::sync::Arc<[u64]>,
    n: usize,
    scale: f32,
}

impl DropoutMask {
    /// Draws the mask from `rng`.
    pub(crate) fn draw(n: usize, p: f64, rng: &mut SeededRng) -> Self {
        let keep_p = 1.0 - p;
        let threshold = (keep_p * 65536.0).round() as u64;
        let mut keep = vec![0u64; n.div_ceil(64)];
        for (w, word) in keep.iter_mut().enumerate() {
            // 16 draws of 4 elements fill a word; the last word may need fewer.
            let draws = (n - w * 64).min(64).div_ceil(4);
            let mut bits = 0u64;
            for d in 0..draws {
                let r = rng.next_u64();
                for k in 0..4 {
                    bits |= u64::from((r >> (16 * k)) & 0xFFFF < threshold) << (4 * d + k);
                }
            }
            // Bits past `n` stay clear.
            if n - w * 64 < 64 {
                bits &= (1u64 << (n - w * 64)) - 1;
            }
            *word = bits;
        }
        DropoutMask { keep: keep.into(), n, scale: (1.0 / keep_p) as f32 }
    }

    pub(crate) fn len(&self) -> usize {
        self.n
    }

    /// `out[i] = x[i] * mask[offset + i]`.
    #[inline(always)]
    pub(crate) fn apply(&self, offset: usize, x: &[f32], out: &mut [f32]) {
        assert_eq!(x.len(), out.len());
        self.check(offset, out.len());
        if offset % 64 == 0 {
            let words = &self.keep[offset / 64..];
            let (mut xc, mut oc) = (x.chunks_exact(64), out.chunks_exact_mut(64));
            for ((x, o), &w) in (&mut xc).zip(&mut oc).zip(words) {
                let f = self.factors(w);
                o.iter_mut().zip(x).zip(&f).for_each(|((o, &x), &f)| *o = x * f);
            }
            let done = x.len() / 64 * 64;
            for (i, (o, &x)) in oc.into_remainder().iter_mut().zip(xc.remainder()).enumerate() {
                *o = x * self.factor(offset + done + i);
            }
        } else {
            for (i, (o, &x)) in out.iter_mut().zip(x).enumerate() {
                *o = x * self.factor(offset + i);
            }
        }
    }

    /// `v[i] *= mask[offset + i]`.
    #[inline(always)]
    pub(crate) fn apply_in_place(&self, offset: usize, v: &mut [f32]) {
        self.check(offset, v.len());
        if offset % 64 == 0 {
            let words = &self.keep[offset / 64..];
            let done = offset + v.len() / 64 * 64;
            let mut vc = v.chunks_exact_mut(64);
            for (v, &w) in (&mut vc).zip(words) {
                let f = self.factors(w);
                v.iter_mut().zip(&f).for_each(|(v, &f)| *v *= f);
            }
            for (i, v) in vc.into_remainder().iter_mut().enumerate() {
                *v *= self.factor(done + i);
            }
        } else {
            for (i, v) in v.iter_mut().enumerate() {
                *v *= self.factor(offset + i);
            }
        }
    }

    fn check(&self, offset: usize, len: usize) {
        assert!(offset + len <= self.n, "dropout mask of {} elements read at {offset}..{}", self.n, offset + len);
    }

    /// The factor of element `i`: the survivors' scale or 0.
    #[inline(always)]
    fn factor(&self, i: usize) -> f32 {
        if (self.keep[i / 64] >> (i % 64)) & 1 == 1 {
            self.scale
        } else {
            0.0
        }
    }

    /// The factors of the 64 elements of one word, without branches (so the loop vectorises):
    /// each bit widened to an all-ones or all-zeros 32-bit mask over the scale's bits.
    #[inline(always)]
    fn factors(&self, word: u64) -> [f32; 64] {
        let s = self.scale.to_bits();
        let (lo, hi) = (word as u32, (word >> 32) as u32);
        let mut f = [0f32; 64];
        let (a, b) = f.split_at_mut(32);
        for (bit, (fa, fb)) in a.iter_mut().zip(b.iter_mut()).enumerate() {
            *fa = f32::from_bits(s & 0u32.wrapping_sub((lo >> bit) & 1));
            *fb = f32::from_bits(s & 0u32.wrapping_sub((hi >> bit) & 1));
        }
        f
    }

    /// The mask as floats (tests compare with composed ops).
    #[cfg(test)]
    pub(crate) fn values(&self) -> Vec<f32> {
        let ones = vec![1f32; self.n];
        let mut out = vec![0f32; self.n];
        self.apply(0, &ones, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Result;
    use candle_core::{DType, Device, Tensor};
    use std::sync::Mutex;

    /// Inverted dropout: zero with probability `p`, scale survivors by `1 / (1 - p)`.
    fn dropout(x: &Tensor, p: f64, rng: &Mutex<SeededRng>) -> Result<Tensor> {
        let mask = DropoutMask::draw(x.elem_count(), p, &mut rng.lock().unwrap()).values();
        Ok((x * Tensor::from_vec(mask, x.shape(), x.device())?)?)
    }

    #[test]
    fn dropout_bits_apply_the_drawn_decisions_at_any_offset() {
        // The draw consumes one 64-bit number per four elements, as before bits were kept.
        let mut rng = SeededRng::new(11);
        let mask = DropoutMask::draw(1000, 0.3, &mut rng);
        let mut replay = SeededRng::new(11);
        (0..250).for_each(|_| {
            replay.next_u64();
        });
        assert_eq!(rng.state(), replay.state());
        let values = mask.values();
        let threshold = (0.7f64 * 65536.0).round() as u64;
        let mut check = SeededRng::new(11);
        for e in (0..1000).step_by(4) {
            let r = check.next_u64();
            for k in 0..4 {
                let keep = (r >> (16 * k)) & 0xFFFF < threshold;
                assert_eq!(values[e + k], if keep { (1.0 / 0.7f64) as f32 } else { 0.0 }, "element {}", e + k);
            }
        }
        let x: Vec<f32> = (0..1000).map(|i| i as f32 - 300.0).collect();
        for (offset, len) in [(0, 1000), (64, 640), (3, 200), (128, 70), (990, 10), (0, 0)] {
            let mut out = vec![f32::NAN; len];
            mask.apply(offset, &x[offset..offset + len], &mut out);
            let mut inplace = x[offset..offset + len].to_vec();
            mask.apply_in_place(offset, &mut inplace);
            for i in 0..len {
                assert_eq!(out[i], x[offset + i] * values[offset + i]);
                assert_eq!(inplace[i], out[i]);
            }
        }
    }

    #[test]
    fn dropout_is_seeded_and_unbiased_in_scale() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::ones((100, 100), DType::F32, &dev)?;
        let m1 = dropout(&x, 0.25, &Mutex::new(SeededRng::new(3)))?;
        let m2 = dropout(&x, 0.25, &Mutex::new(SeededRng::new(3)))?;
        assert_eq!(m1.to_vec2::<f32>()?, m2.to_vec2::<f32>()?);
        let v = m1.flatten_all()?.to_vec1::<f32>()?;
        let zeros = v.iter().filter(|x| **x == 0.0).count();
        assert!((2200..2800).contains(&zeros), "{zeros}");
        assert!(v.iter().all(|x| *x == 0.0 || (*x - 4.0 / 3.0).abs() < 1e-6));
        Ok(())
    }
}
