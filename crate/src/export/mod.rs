//! Writing a (merged) decoder for other runtimes: [`gguf`] for llama.cpp and Ollama. It sits
//! above [`crate::models`], whose decoders it serializes, and beside [`crate::generate`],
//! which exports the model it serves.

pub mod gguf;
