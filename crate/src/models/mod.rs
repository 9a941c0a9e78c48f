//! Model architectures written over `nn`: encoders (bert, xlm_roberta) for embeddings and
//! decoders (llama, phi3) for the DSL model.
