//! Seeded choices for data handling, over the LoRA module's [`SeededRng`] so a training run has
//! one kind of random state to checkpoint.
//!
//! Every purpose (an epoch's order, the validation split, the dropout stream) gets its own
//! derived stream: drawing more numbers for one purpose never shifts another, which is what lets
//! a resumed run reproduce an uninterrupted one.

use crate::nn::lora::SeededRng;

/// Stream ids for [`SeededRng::derive`]; fixed values because checkpoints depend on them.
pub mod stream {
    pub const PATTERNS: u64 = 0x5041_5454;
    pub const WORDS: u64 = 0x574F_5244;
    pub const SPLIT: u64 = 0x5350_4C54;
    pub const EPOCH: u64 = 0x4550_4F43;
    pub const DROPOUT: u64 = 0x4452_4F50;
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
