//! Stage 4 training: DSL examples, masked-completion loss, AdamW, schedule, checkpoints.
//!
//! - [`examples`]: which patterns to ask about and which words answer them (plain text), put to
//!   the model as [`crate::prompt`] says (shared with generation).
//! - [`batch`]: padded batches and their seeded, length-grouped order; the masked, shifted
//!   cross-entropy is [`crate::nn::loss`].
//! - [`optim`]: AdamW, clipping, accumulation; [`schedule`]: warmup + cosine.
//! - [`trainer`]: the loop, over any [`TrainableLm`] ([`model`]; [`causal`] implements it for
//!   the project's decoders); [`checkpoint`] and [`state`]: what a resumed run needs, written
//!   atomically; [`config`]: what a run is asked to do.
//! - [`dsl`]: the whole stage in one call (resolve, load, examples, train), for the binding;
//!   [`request`]: what an unset option of that call means, and which combinations are refused.

pub mod batch;
pub mod causal;
pub mod checkpoint;
pub mod config;
pub mod dsl;
pub mod examples;
pub mod model;
pub mod optim;
pub mod random;
pub mod request;
pub mod schedule;
pub mod state;
pub mod trainer;

#[cfg(test)]
mod tiny;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod causal_tests;

pub use config::TrainConfig;
pub use crate::prompt::{ExampleEncoder, TextExample, TokenizedExample};
pub use examples::{sample_examples, ExampleOptions, ExampleSplit, LabeledWord, PatternKind};
pub use model::TrainableLm;
pub use optim::{AdamW, AdamWConfig};
pub use request::{DslTrainSettings, LoraSettings};
pub use schedule::Schedule;
pub use state::StopReason;
pub use trainer::{Progress, TrainData, TrainOutcome, Trainer};
