//! Stage 4 training: DSL examples, masked-completion loss, AdamW, schedule, checkpoints.
