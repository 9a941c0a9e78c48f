//! How a request is put to the decoder, the same in training and in generation: the user
//! message for an ID pattern ([`text`]), the base model's own chat template around it
//! ([`chat`]), and both as token ids with the loss mask on the answer ([`encode`]).
//!
//! Generation must ask the way training taught, so both go through this module only:
//! [`ExampleEncoder::prompt_ids`] and [`WORD_SEPARATOR`]; the trainer records what it used in
//! [`PROMPT_FILE`] beside the adapter.

pub mod chat;
pub mod encode;
pub mod text;

pub use chat::ChatFormat;
pub use encode::{ExampleEncoder, TokenizedExample};
pub use text::{completion, user_message, TextExample, WORD_SEPARATOR};

/// Describes prompts for whoever generates with the adapter: the same words and template
/// must be used, or the model is asked in a language it was not taught.
pub const PROMPT_FILE: &str = "dsl_prompt.json";
