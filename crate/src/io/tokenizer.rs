//! One tokenizer type for both sources a model can carry: an HF `tokenizer.json`, or the
//! vocabulary llama.cpp embeds in a GGUF (`tokenizer.ggml.*`).
//!
//! Files often carry padding and truncation from whoever saved them (all-MiniLM-L6-v2's pads
//! and truncates at 128 although the model takes 256). Those settings are cleared on load: the
//! caller decides padding (batching code) and the limit (the model's config) explicitly.

use super::gguf::GgufFile;
use crate::error::{Result, WotdError};
use serde_json::Value;
use std::path::Path;
use std::str::FromStr;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::processors::sequence::Sequence as PostSequence;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{
    AddedToken, PostProcessorWrapper, PreTokenizerWrapper, Tokenizer, TruncationDirection, TruncationParams,
    TruncationStrategy,
};

/// llama.cpp `token_type` values (`llama_token_type` in llama.h).
const TOKEN_TYPE_CONTROL: i64 = 3;
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

/// Ids of the special tokens a model names, when it names them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub pad: Option<u32>,
    pub unk: Option<u32>,
}

/// One encoded text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    /// Whether tokens were cut off by the max length.
    pub truncated: bool,
}

/// A loaded tokenizer with no padding, explicit truncation, and the model's special tokens.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    max_length: Option<usize>,
    specials: SpecialTokens,
    chat_template: Option<String>,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("max_length", &self.max_length)
            .field("specials", &self.specials)
            .finish()
    }
}

impl TextTokenizer {
    /// Wraps a `tokenizers` tokenizer, dropping any padding and truncation it carries.
    pub fn from_tokenizer(mut inner: Tokenizer) -> Result<Self> {
        inner.with_padding(None);
        inner.with_truncation(None)?;
        Ok(TextTokenizer { inner, max_length: None, specials: SpecialTokens::default(), chat_template: None })
    }

    /// Loads a `tokenizer.json`. Special tokens and chat template are unknown from this file
    /// alone; [`TextTokenizer::from_dir`] reads them from the files beside it.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| WotdError::io(path, e))?;
        let inner = Tokenizer::from_str(&text).map_err(|e| WotdError::corrupt(path, format!("not a valid tokenizer.json: {e}")))?;
        Self::from_tokenizer(inner)
    }

    /// Loads `dir/tokenizer.json` and takes special tokens and chat template from
    /// `tokenizer_config.json` (or `special_tokens_map.json`) when present.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let mut tok = Self::from_file(&dir.join("tokenizer.json"))?;
        let config = read_json_if_present(&dir.join("tokenizer_config.json"))?;
        let map = read_json_if_present(&dir.join("special_tokens_map.json"))?;
        let named = |key: &str| -> Option<u32> {
            [&config, &map].into_iter().flatten().find_map(|j| token_content(j.get(key)?)).and_then(|t| tok.inner.token_to_id(&t))
        };
        tok.specials = SpecialTokens { bos: named("bos_token"), eos: named("eos_token"), pad: named("pad_token"), unk: named("unk_token") };
        tok.chat_template = config.as_ref().and_then(|c| c.get("chat_template")).and_then(|t| t.as_str()).map(String::from);
        Ok(tok)
    }

    /// Builds the tokenizer a GGUF embeds. Supports `tokenizer.ggml.model == "gpt2"` (byte-level
    /// BPE) with the `smollm` and plain GPT-2 pre-tokenizers; control tokens become special added
    /// tokens, so `<|im_start|>` in text encodes to its single id as with HF's tokenizer.json.
    pub fn from_gguf(g: &GgufFile) -> Result<Self> {
        let path = g.path();
        let model = g.get_str("tokenizer.ggml.model")?.ok_or_else(|| WotdError::corrupt(path, "GGUF has no tokenizer.ggml.model"))?;
        if model != "gpt2" {
            return Err(WotdError::Unsupported(format!("{}: GGUF tokenizer model {model:?} (only \"gpt2\" byte-level BPE)", path.display())));
        }
        let tokens = g.get_str_array("tokenizer.ggml.tokens")?.ok_or_else(|| WotdError::corrupt(path, "GGUF has no tokenizer.ggml.tokens"))?;
        let merges = g.get_str_array("tokenizer.ggml.merges")?.ok_or_else(|| WotdError::corrupt(path, "GGUF has no tokenizer.ggml.merges"))?;
        let types = g.get_int_array("tokenizer.ggml.token_type")?.unwrap_or_default();
        if !types.is_empty() && types.len() != tokens.len() {
            return Err(WotdError::corrupt(path, format!("{} token types for {} tokens", types.len(), tokens.len())));
        }

        let vocab: tokenizers::models::bpe::Vocab = tokens.iter().enumerate().map(|(i, t)| (t.to_string(), i as u32)).collect();
        let merges = merges
            .iter()
            .map(|m| m.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| WotdError::corrupt(path, "a tokenizer.ggml.merges entry is not two tokens separated by a space"))?;
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| WotdError::corrupt(path, format!("GGUF vocabulary does not form a BPE model: {e}")))?;

        let mut inner = Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(pre_tokenizer(g)?));
        inner.with_decoder(Some(ByteLevel::default()));
        let byte_level_post = PostProcessorWrapper::ByteLevel(ByteLevel::default().trim_offsets(false));
        let specials = SpecialTokens {
            bos: id_or_none(g, "tokenizer.ggml.bos_token_id", tokens.len())?,
            eos: id_or_none(g, "tokenizer.ggml.eos_token_id", tokens.len())?,
            pad: id_or_none(g, "tokenizer.ggml.padding_token_id", tokens.len())?,
            unk: id_or_none(g, "tokenizer.ggml.unknown_token_id", tokens.len())?,
        };
        match (g.get_bool("tokenizer.ggml.add_bos_token")?.unwrap_or(false), specials.bos) {
            (true, Some(bos)) => {
                let bos_text = tokens[bos as usize];
                let template = TemplateProcessing::builder()
                    .try_single(format!("{bos_text} $A"))
                    .and_then(|b| b.try_pair(format!("{bos_text} $A {bos_text} $B:1")))
                    .map_err(|e| WotdError::Tokenizer(format!("bos template: {e}")))?
                    .special_tokens(vec![(bos_text, bos)])
                    .build()
                    .map_err(|e| WotdError::Tokenizer(format!("bos template: {e}")))?;
                inner.with_post_processor(Some(PostSequence::new(vec![byte_level_post, PostProcessorWrapper::Template(template)])));
            }
            _ => {
                inner.with_post_processor(Some(byte_level_post));
            }
        }

        let added = |kind: i64, special: bool| -> Vec<AddedToken> {
            types.iter().zip(&tokens).filter(|(t, _)| **t == kind).map(|(_, tok)| AddedToken::from(tok.to_string(), special)).collect()
        };
        inner.add_special_tokens(added(TOKEN_TYPE_CONTROL, true))?;
        inner.add_tokens(added(TOKEN_TYPE_USER_DEFINED, false))?;

        let chat_template = g.get_str("tokenizer.chat_template")?.map(String::from);
        let mut tok = Self::from_tokenizer(inner)?;
        tok.specials = specials;
        tok.chat_template = chat_template;
        Ok(tok)
    }

    /// Sets (or clears) the maximum number of tokens per text, special tokens included; longer
    /// texts are cut at the end and reported as truncated.
    pub fn set_max_length(&mut self, max_length: Option<usize>) -> Result<()> {
        let params = max_length.map(|max_length| TruncationParams {
            max_length,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
            direction: TruncationDirection::Right,
        });
        self.inner.with_truncation(params)?;
        self.max_length = max_length;
        Ok(())
    }

    /// Builder form of [`TextTokenizer::set_max_length`].
    pub fn with_max_length(mut self, max_length: usize) -> Result<Self> {
        self.set_max_length(Some(max_length))?;
        Ok(self)
    }

    pub fn max_length(&self) -> Option<usize> {
        self.max_length
    }

    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Encoded> {
        let enc = self.inner.encode(text, add_special_tokens)?;
        Ok(Encoded { ids: enc.get_ids().to_vec(), truncated: !enc.get_overflowing().is_empty() })
    }

    pub fn encode_batch(&self, texts: &[String], add_special_tokens: bool) -> Result<Vec<Encoded>> {
        texts.iter().map(|t| self.encode(t, add_special_tokens)).collect()
    }

    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        Ok(self.inner.decode(ids, skip_special_tokens)?)
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    pub fn specials(&self) -> &SpecialTokens {
        &self.specials
    }

    /// The Jinja chat template the model ships, if any.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// The underlying `tokenizers` tokenizer, for what this type does not wrap (offsets, ...).
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }
}

/// HF's equivalent of llama.cpp's named pre-tokenizer regexes.
fn pre_tokenizer(g: &GgufFile) -> Result<PreTokenizerWrapper> {
    let byte_level = ByteLevel::default().add_prefix_space(false);
    match g.get_str("tokenizer.ggml.pre")?.unwrap_or("default") {
        // SmolLM2: every digit on its own, then GPT-2's split.
        "smollm" => Ok(PreTokenizerWrapper::Sequence(Sequence::new(vec![
            PreTokenizerWrapper::Digits(Digits::new(true)),
            PreTokenizerWrapper::ByteLevel(byte_level),
        ]))),
        "default" | "gpt2" | "gpt-2" => Ok(PreTokenizerWrapper::ByteLevel(byte_level)),
        other => Err(WotdError::Unsupported(format!("{}: GGUF pre-tokenizer {other:?}", g.path().display()))),
    }
}

fn id_or_none(g: &GgufFile, key: &str, vocab: usize) -> Result<Option<u32>> {
    match g.get_u64(key)? {
        None => Ok(None),
        Some(id) if (id as usize) < vocab => Ok(Some(id as u32)),
        Some(id) => Err(WotdError::corrupt(g.path(), format!("{key} = {id} is outside the vocabulary of {vocab}"))),
    }
}

fn read_json_if_present(path: &Path) -> Result<Option<Value>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| WotdError::corrupt(path, format!("invalid JSON: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(WotdError::io(path, e)),
    }
}

/// `"<s>"` or `{"content": "<s>", ...}` as transformers writes special tokens.
fn token_content(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content")?.as_str().map(String::from),
        _ => None,
    }
}
