//! Stage 2: text -> L2-normalised embedding vectors (tokenize, batch by length, encode, pool).
//!
//! - [`Embedder`]: loads a BERT-family model directory through `io` and embeds texts with
//!   progress and cancellation.
//! - [`pooling`]: sentence-transformers' pooling modes and L2 normalisation.
//! - [`batching`]: length-sorted batches under an attention-memory budget.
//! - [`revision`]: the version string that keys cached vectors.

pub mod batching;
mod embedder;
pub mod pooling;
pub mod revision;
pub mod similarity;

#[cfg(test)]
mod tests;

pub use embedder::{Embedder, EmbedderInfo, EmbedderOptions, Embeddings};
