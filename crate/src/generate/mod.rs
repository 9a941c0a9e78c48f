//! Stage 4 inference: KV-cached sampling, stop rules, constrained decoding.
