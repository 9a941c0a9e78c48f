//! Stage 4 inference: words for an ID pattern from the tuned decoder.
//!
//! - [`word_generator`]: the generator the API serves (prompt as training taught it, batched
//!   sampling of distinct words, constrained to a word list when asked, f32 or Q8_0 weights).
//! - [`engine`] and [`quantized`]: the decoders it runs (f32 [`crate::models::CausalLm`] or the
//!   Q8_0 copy); [`sampling`]: temperature, top-k, top-p, one draw from a seeded stream;
//!   [`trie`]: the token trie of an allowed word list; [`words`]: splitting a reply into words;
//!   [`merge`]: the adapter folded into the base and saved.

pub mod sampling;
pub mod engine;
pub mod merge;
mod q8_prefill;
pub mod quantized;
pub mod trie;
pub mod word_generator;
pub mod words;

pub use sampling::SamplingParams;
pub use word_generator::{GeneratorOptions, EngineOptions, PromptVocab, Weights, WordGeneration, WordGenerator, WordOptions};
