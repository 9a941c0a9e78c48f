//! The project's one seeded generator and the draws built on it (dropout masks, data order,
//! sampling, RVQ initialisation). It sits at the bottom of the crate: every layer that draws
//! numbers uses it, and checkpoints store its four-word state.

/// A small seeded generator (xoshiro256++ seeded through SplitMix64) whose whole state is four
/// words, so checkpoints can store it and sampling/dropout replay exactly after a resume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeededRng {
    s: [u64; 4],
}

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        SeededRng { s: [next(), next(), next(), next()] }
    }

    /// An independent stream `stream` of `seed` (one per module, per batch row, ...), so adding
    /// a consumer never shifts the numbers another one sees.
    pub fn derive(seed: u64, stream: u64) -> Self {
        SeededRng::new(seed ^ stream.wrapping_add(1).wrapping_mul(0xD1B5_4A32_D192_ED03).rotate_left(17))
    }

    pub fn from_state(s: [u64; 4]) -> Self {
        SeededRng { s }
    }

    pub fn state(&self) -> [u64; 4] {
        self.s
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let out = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }

    /// Uniform in `[0, 1)` with 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[0, 1)` with 24 bits.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u32 << 24) as f32)
    }
}

/// Uniform in `0..n` (`n > 0`) by multiply-shift; the bias is below 2^-32 for our sizes.
pub fn below(rng: &mut SeededRng, n: usize) -> usize {
    (((rng.next_u64() >> 32) * n as u64) >> 32) as usize
}

/// Fisher-Yates in place.
pub fn shuffle<T>(rng: &mut SeededRng, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = below(rng, i + 1);
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let run = |seed| {
            let mut v: Vec<usize> = (0..50).collect();
            shuffle(&mut SeededRng::new(seed), &mut v);
            v
        };
        let a = run(9);
        assert_eq!(a, run(9));
        assert_ne!(a, run(10));
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_ne!(a, sorted);
        let mut r = SeededRng::new(1);
        assert!((0..1000).all(|_| below(&mut r, 7) < 7));
    }
}
