//! Model architectures written over `nn`: encoders (bert, xlm_roberta) for embeddings and
//! decoders (llama, phi3) for the DSL model.

pub mod bert;
pub mod xlm_roberta;

pub mod causal_lm;
pub mod decoder;
pub mod layer_checkpoint;
pub mod llama;
pub mod phi3;
pub mod random_weights;

pub use causal_lm::CausalLm;
pub use decoder::{Architecture, DecoderConfig};
