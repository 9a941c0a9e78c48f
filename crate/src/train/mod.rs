//! Stage 4 training: DSL examples, masked-completion loss, AdamW, schedule, checkpoints.
//!
//! - [`examples`]: which patterns to ask about and which words answer them (plain text);
//!   [`prompt`] words the request, [`chat`] wraps it in the base model's chat template, and
//!   [`encode`] turns both into token ids with a loss mask on the answer.
//! - [`batch`]: padded batches and their seeded, length-grouped order; [`loss`]: the masked,
//!   shifted cross-entropy.
//! - [`optim`]: AdamW, clipping, accumulation; [`schedule`]: warmup + cosine.
//! - [`trainer`]: the loop, over any [`TrainableLm`] ([`model`]; [`causal`] implements it for
//!   the project's decoders); [`checkpoint`] and [`state`]: what a resumed run needs, written
//!   atomically; [`config`]: what a run is asked to do.
//! - [`dsl`]: the whole stage in one call (resolve, load, examples, train), for the binding.
//!
//! Generation must ask the way training taught: [`encode::ExampleEncoder::prompt_ids`] (or
//! [`chat::ChatFormat::prompt`] over [`prompt::user_message`]) and [`prompt::WORD_SEPARATOR`].

pub mod batch;
pub mod chat;
pub mod causal;
pub mod checkpoint;
pub mod config;
pub mod dsl;
pub mod encode;
pub mod examples;
pub mod loss;
pub mod model;
pub mod optim;
pub mod prompt;
pub mod random;
pub mod schedule;
pub mod state;
pub mod trainer;

#[cfg(test)]
mod tiny;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod causal_tests;

pub use chat::ChatFormat;
pub use config::TrainConfig;
pub use encode::{ExampleEncoder, TokenizedExample};
pub use examples::{sample_examples, ExampleOptions, ExampleSplit, LabeledWord, PatternKind, TextExample};
pub use model::TrainableLm;
pub use optim::{AdamW, AdamWConfig};
pub use schedule::Schedule;
pub use state::StopReason;
pub use trainer::{Progress, TrainData, TrainOutcome, Trainer};
