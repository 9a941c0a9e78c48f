//! `wotd-native`: the Rust core of wotd-ml.
//!
//! Modules import only downwards, floor by floor (no module imports one above it, and no two
//! import each other):
//!
//! 1. `error`, `random` (the one seeded generator), `runtime` (CPU threads);
//! 2. `io`: reading model files, PEFT adapters, atomic writes; `measure`: this machine's matmul
//!    throughput, for benchmarks;
//! 3. `nn` (building blocks and CPU kernels), `rvq` (semantic IDs);
//! 4. `models` (encoders, decoders over `nn`), `dsl` (the ID-pattern language);
//! 5. `embed`, `prompt` (how a request is put to the decoder, shared by training and
//!    generation), `export` (GGUF);
//! 6. `train`, `generate`;
//! 7. `node`: N-API bindings, type conversion and scheduling only.

pub mod dsl;
pub mod embed;
pub mod error;
pub mod export;
pub mod generate;
pub mod io;
pub mod measure;
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
