//! Residual vector quantization: 4 levels x 32 codes, semantic IDs [style, complexity, era, variation].
//!
//! Training (`train`) fits one codebook per level to the residual left by the levels above
//! it; `Codebook` encodes, decodes and measures; `store` persists it next to the metadata
//! that says which embedder and dimension it belongs to.

mod codebook;
mod encode;
mod id;
mod kmeans;
mod linalg;
mod metrics;
mod predict;
mod rng;
mod store;
mod train;
mod vocab;

#[cfg(test)]
mod tests;

pub use codebook::{Codebook, CodebookInfo, ModeKind};
pub use encode::EncodeOptions;
pub use id::{similarity, SemanticId};
pub use metrics::{Metrics, Reconstruction};
pub use predict::{AttributeModel, AttributePredictor, PredictorOptions, PREDICTOR_FILE};
pub use store::{Expectation, CODEBOOK_FILE, FORMAT_VERSION, METADATA_FILE};
pub use train::{train, train_with_progress, Mode, TrainOptions, TrainProgress};
pub use vocab::AttributeVocab;

/// Levels of a semantic ID.
pub const LEVELS: usize = 4;
/// Codes per level.
pub const CODES: usize = 32;
/// Levels tied to an attribute in aligned mode (style, complexity, era); the last is free.
pub const ATTRIBUTES: usize = 3;
/// Values per attribute; each owns `CODES / VALUES` consecutive codes in aligned mode.
pub const VALUES: usize = 4;
/// Codes per attribute value in aligned mode, so `code >> 3` is the value.
pub const CODES_PER_VALUE: usize = CODES / VALUES;
