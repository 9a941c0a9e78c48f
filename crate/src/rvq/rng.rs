//! The seeded generator of RVQ training (the LoRA module's xoshiro256++, RVQ's own streams).
//!
//! Our own rather than `rand::StdRng`, whose algorithm may change between rand releases:
//! a codebook's metadata records its seed, and the seed must reproduce the same codebook
//! for as long as the file format lives.

use crate::random::SeededRng;

/// The project's xoshiro256++ generator with RVQ's own stream derivation: changing either
/// would change which codebooks a recorded seed produces.
pub(crate) struct Rng(SeededRng);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(SeededRng::new(seed))
    }

    /// An independent stream for a sub-task (a level, a class), so adding work to one
    /// stream never shifts the numbers another one sees.
    pub fn derive(seed: u64, stream: u64) -> Self {
        Rng::new(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03).rotate_left(17))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in [0, 1) with 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        self.0.next_f64()
    }

    /// Uniform in 0..n (n > 0); the multiply-shift bias is below 2^-32 for our sizes.
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn same_seed_same_stream_and_streams_differ() {
        let a: Vec<u64> = { let mut r = Rng::new(7); (0..5).map(|_| r.next_u64()).collect() };
        let b: Vec<u64> = { let mut r = Rng::new(7); (0..5).map(|_| r.next_u64()).collect() };
        let c: Vec<u64> = { let mut r = Rng::derive(7, 1); (0..5).map(|_| r.next_u64()).collect() };
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut r = Rng::new(1);
        for _ in 0..1000 {
            assert!(r.below(32) < 32);
            let f = r.next_f64();
            assert!((0.0..1.0).contains(&f));
        }
    }
}
