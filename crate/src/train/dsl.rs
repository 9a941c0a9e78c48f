//! Stage 4 in one call: resolve and load the base model with a fresh adapter, build and
//! tokenize the DSL examples in its chat format, train, and leave a PEFT adapter plus a note
//! of how prompts were worded. This is what the Node binding runs.

use crate::prompt::{ChatFormat, ExampleEncoder, TextExample, PROMPT_FILE, WORD_SEPARATOR};
use super::config::TrainConfig;
use super::examples::{sample_examples, split_examples, ExampleOptions, ExampleSplit, LabeledWord};
use super::trainer::{Progress, TrainData, TrainOutcome, Trainer};
use crate::error::{Context, Result, WotdError};
use crate::io::{resolve, ResolveOptions};
use crate::models::CausalLm;
use crate::io::peft::LoraConfig;
use crate::rvq::AttributeVocab;
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

/// Where examples come from.
#[derive(Clone, Debug)]
pub enum ExampleSource {
    /// Labeled words; patterns of every kind are sampled from their IDs.
    Words { words: Vec<LabeledWord>, options: ExampleOptions },
    /// Ready-made examples, split by whole pattern.
    Examples { examples: Vec<TextExample>, validation_fraction: f64 },
}

#[derive(Clone, Debug)]
pub struct DslTrainRequest {
    /// A local path or a Hugging Face id.
    pub base_model: String,
    pub resolve: ResolveOptions,
    pub source: ExampleSource,
    /// Attribute names for prompts (aligned codebooks); `None` writes codes only.
    pub vocab: Option<AttributeVocab>,
    /// A system message before every request; `None` keeps the chat template's default.
    pub system_prompt: Option<String>,
    pub lora: LoraConfig,
    /// Longest example in tokens (prompt + answer); capped by the model's positions.
    pub max_length: usize,
    /// `pad_token_id` is filled from the tokenizer; the value given is ignored.
    pub train: TrainConfig,
    pub out_dir: PathBuf,
    pub resume: bool,
    /// Recompute every n-th layer's activations in the backward pass; 0 never
    /// ([`crate::models::layer_checkpoint`]).
    pub gradient_checkpointing: usize,
}

#[derive(Clone, Debug)]
pub struct DslTrainOutcome {
    pub outcome: TrainOutcome,
    pub train_examples: usize,
    pub validation_examples: usize,
    /// Tokens in the training examples (before padding).
    pub train_tokens: usize,
}


pub fn train_dsl(req: DslTrainRequest, on_progress: &mut dyn FnMut(&Progress), cancel: &AtomicBool) -> Result<DslTrainOutcome> {
    let resolved = resolve(&req.base_model, &req.resolve)?;
    let mut model = CausalLm::load_resolved(&resolved, Some(req.lora.clone()))?;
    model.set_gradient_checkpointing(req.gradient_checkpointing);
    let tok = model
        .tokenizer()
        .ok_or_else(|| WotdError::InvalidInput(format!("{} has no tokenizer to write prompts with", req.base_model)))?;
    let chat = ChatFormat::from_tokenizer(tok)?;
    let end_of_turn = chat.end_of_turn();
    let max_length = req.max_length.min(model.config().max_position_embeddings);

    let seed_words = match &req.source {
        ExampleSource::Words { options, .. } => options.seed_words,
        ExampleSource::Examples { examples, .. } => examples.iter().map(|e| e.seeds.len()).max().unwrap_or(0),
    };
    let split = match req.source {
        ExampleSource::Words { words, options } => sample_examples(&words, &options)?,
        ExampleSource::Examples { examples, validation_fraction } => split_examples(examples, validation_fraction, req.train.seed)?,
    };
    let ExampleSplit { train, validation } = split;
    let encoder = ExampleEncoder::new(tok, chat, req.vocab.clone(), max_length).with_system(req.system_prompt.clone());
    let data = TrainData {
        train: encoder.encode_all(&train).context(|| "tokenizing training examples".into())?,
        validation: encoder.encode_all(&validation).context(|| "tokenizing validation examples".into())?,
    };

    let pad = tok.specials().pad.or(tok.specials().eos).unwrap_or(end_of_turn);
    let cfg = TrainConfig { pad_token_id: pad, ..req.train };
    std::fs::create_dir_all(&req.out_dir).map_err(|e| WotdError::io(&req.out_dir, e))?;
    write_prompt_note(&req.out_dir, &resolved.id, req.vocab.as_ref(), req.system_prompt.as_deref(), seed_words, max_length, end_of_turn)?;
    let outcome = Trainer::new(&model, &data, cfg, &req.out_dir)?.run_until_stopped(req.resume, on_progress, cancel);
    // The caller usually loads a generator next; the trainer's freed pages must not sit under it.
    drop(model);
    crate::runtime::release_free_memory();
    let outcome = outcome?;
    Ok(DslTrainOutcome {
        outcome,
        train_examples: data.train.len(),
        validation_examples: data.validation.len(),
        train_tokens: data.train.iter().map(|e| e.len()).sum(),
    })
}

fn write_prompt_note(dir: &std::path::Path, base: &str, vocab: Option<&AttributeVocab>, system: Option<&str>, seed_words: usize, max_length: usize, eot: u32) -> Result<()> {
    let note = json!({
        "format": 1,
        "base_model": base,
        "user_message": if vocab.is_some() { "Words for semantic ID {pattern} ({description})[, like {seeds}]:" } else { "Words for semantic ID {pattern}[, like {seeds}]:" },
        "system_prompt": system,
        "seed_words": seed_words,
        "word_separator": WORD_SEPARATOR,
        "attribute_vocab": vocab,
        "chat_template": "the base model's own (add_generation_prompt)",
        "end_of_turn_token_id": eot,
        "max_length": max_length,
    });
    crate::io::atomic::write_file(&dir.join(PROMPT_FILE), (serde_json::to_string_pretty(&note).expect("JSON value") + "\n").as_bytes())
}
