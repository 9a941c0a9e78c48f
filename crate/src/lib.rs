//! `wotd-native`: the Rust core of wotd-ml.
//!
//! Data flows one way: `node` (bindings) -> stage modules (`embed`, `rvq`, `train`,
//! `generate`) -> `models` -> `nn`; `io` loads files for all of them.

pub mod dsl;
pub mod embed;
pub mod error;
pub mod export;
pub mod generate;
pub mod io;
pub mod models;
pub mod nn;
pub mod prompt;
pub mod random;
pub mod runtime;
pub mod rvq;
pub mod train;

#[cfg(feature = "node")]
pub mod node;

pub use error::{Result, WotdError};
