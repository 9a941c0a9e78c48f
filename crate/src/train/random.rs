//! The random streams of training data handling, each drawn from its own [`SeededRng`](crate::random::SeededRng) stream so
//! a training run has one kind of random state to checkpoint.
//!
//! Every purpose (an epoch's order, the validation split, the dropout stream) gets its own
//! derived stream: drawing more numbers for one purpose never shifts another, which is what lets
//! a resumed run reproduce an uninterrupted one.

/// Stream ids for [`SeededRng::derive`](crate::random::SeededRng::derive); fixed values because checkpoints depend on them.
pub mod stream {
    pub const PATTERNS: u64 = 0x5041_5454;
    pub const WORDS: u64 = 0x574F_5244;
    pub const SPLIT: u64 = 0x5350_4C54;
    pub const EPOCH: u64 = 0x4550_4F43;
    pub const DROPOUT: u64 = 0x4452_4F50;
}
