//! Stage 4 inference: words for a semantic-ID pattern from a tuned DSL model.
//!
//! ```text
//! WordGenerator::load(base, &GeneratorOptions) -> Result<WordGenerator>   // resolve, adapter, merge, quantize
//! WordGenerator::from_model(CausalLm, &EngineOptions) -> Result<WordGenerator>
//! .generate(&Pattern, &WordOptions) -> Result<WordGeneration>
//! .generate_cancellable(&Pattern, &WordOptions, &AtomicBool) -> Result<WordGeneration>
//! .prompt_ids(&Pattern, &seeds) -> Result<Vec<u32>> // exactly what training taught
//! .export_gguf(&Path, &GgufExportOptions) -> Result<GgufExportReport>
//! ```
//!
//! How one request runs:
//! - The prompt is the trainer's ([`ExampleEncoder::prompt_ids`]: the base model's chat template
//!   around [`crate::prompt::user_message`]), with attribute names when the adapter was
//!   trained on aligned IDs (read from the `dsl_prompt.json` the trainer leaves beside it).
//! - The part of the prompt every pattern shares (system prompt, request wording) is prefilled
//!   once per generator and kept; each request prefills only its own tail, and each sample
//!   continues from a copy of that cache. Rows of a round decode together as one batch, row
//!   `n` (counted over all rounds) drawing from stream `n` of the seed, so a seed always gives
//!   the same words, whatever was asked before.
//! - Rounds continue until `count` distinct accepted words or `max_rounds`; a round stops early
//!   once the words already finished in its rows reach the count.
//! - A vocabulary adds a token-trie constraint ([`super::trie`]) and a final filter; `exclude`
//!   (the training words, for `novelOnly`) removes words from both.

use super::engine::{repeat_cache, DecodeModel};
use super::quantized::QuantizedLm;
use super::sampling::{sample, SamplingParams};
use super::trie::{TrieState, VocabTrie};
use super::words::{final_items, normalize, WordCollector};
use crate::dsl::Pattern;
use crate::error::{Context, Result, WotdError};
use crate::export::gguf::{export_causal_lm, write_llama_gguf, GgufExportOptions, GgufExportReport};
use crate::io::{resolve, ResolveOptions, TextTokenizer};
use crate::models::{CausalLm, DecoderConfig};
use crate::random::SeededRng;
use crate::rvq::AttributeVocab;
use crate::prompt::{ChatFormat, ExampleEncoder, PROMPT_FILE, WORD_SEPARATOR};
use candle_core::quantized::GgmlDType;
use candle_core::Tensor;
use crate::nn::kv_cache::KvCache;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Weights used for decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weights {
    F32,
    Q8_0,
}

impl Weights {
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(Weights::F32),
            "q8_0" | "q8" => Ok(Weights::Q8_0),
            other => Err(WotdError::InvalidInput(format!("unknown quantization {other:?} (f32 or q8_0)"))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Weights::F32 => "f32",
            Weights::Q8_0 => "q8_0",
        }
    }
}

/// How prompts name the pattern.
#[derive(Clone, Debug, PartialEq)]
pub enum PromptVocab {
    /// As the adapter was trained: `dsl_prompt.json` in the adapter directory or its parent;
    /// codes only when there is none.
    Auto,
    /// Codes only.
    Codes,
    /// Codes and these attribute names.
    Named(AttributeVocab),
}

/// Everything but the base model id that [`WordGenerator::load`] needs.
#[derive(Clone, Debug)]
pub struct GeneratorOptions {
    pub resolve: ResolveOptions,
    pub adapter_dir: Option<PathBuf>,
    pub engine: EngineOptions,
}

#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Fold the adapter into the weights (faster; required for Q8_0). Default true.
    pub merge: bool,
    pub weights: Weights,
    pub prompt_vocab: PromptVocab,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions { merge: true, weights: Weights::F32, prompt_vocab: PromptVocab::Auto }
    }
}

/// One request.
#[derive(Clone, Debug, PartialEq)]
pub struct WordOptions {
    /// Distinct words wanted.
    pub count: usize,
    /// `<= 0`: greedy (one row, one round).
    pub temperature: f64,
    pub top_p: f64,
    /// 0 disables top-k.
    pub top_k: usize,
    pub seed: u64,
    /// Per sampled row (fewer when the model's positions run out).
    pub max_new_tokens: usize,
    /// Words never returned (novelOnly: the training words).
    pub exclude: Vec<String>,
    /// Only these words may be generated (token-trie constraint).
    pub vocabulary: Option<Vec<String>>,
    /// Rounds of sampling at most.
    pub max_rounds: usize,
    /// Rows decoded together at most (default 16).
    pub max_batch: usize,
    /// Words of the region named in the request (set expansion, as the adapter was taught when
    /// its `dsl_prompt.json` says `seed_words` > 0); never returned.
    pub seeds: Vec<String>,
}

impl Default for WordOptions {
    fn default() -> Self {
        WordOptions {
            count: 10,
            temperature: 0.8,
            top_p: 0.95,
            top_k: 50,
            seed: 0,
            max_new_tokens: 64,
            exclude: Vec::new(),
            vocabulary: None,
            max_rounds: 4,
            max_batch: 16,
            seeds: Vec::new(),
        }
    }
}

impl WordOptions {
    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(WotdError::InvalidInput(m));
        if self.count == 0 || self.count > 10_000 {
            return bad(format!("count must be 1-10000, got {}", self.count));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("topP must be in (0, 1], got {}", self.top_p));
        }
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return bad(format!("temperature must be a finite number >= 0, got {}", self.temperature));
        }
        if self.max_new_tokens == 0 || self.max_rounds == 0 || self.max_batch == 0 {
            return bad("maxNewTokens, maxRounds and batch size must be at least 1".into());
        }
        Ok(())
    }
}

/// What a request produced.
#[derive(Clone, Debug, PartialEq)]
pub struct WordGeneration {
    /// Distinct, normalised, well-formed words in the order first generated; at most `count`.
    pub words: Vec<String>,
    /// Every sampled completion as decoded (one per row).
    pub raw: Vec<String>,
    /// Tokens generated over all rows (stop tokens included).
    pub tokens: usize,
    /// Wall time of the whole request, prompt and prefill included.
    pub elapsed_ms: f64,
    pub prefill_ms: f64,
    /// `elapsed_ms / words.len()` (the whole time when no word came out).
    pub ms_per_word: f64,
    pub rounds: usize,
    pub rows: usize,
    /// Items that were not words, as written.
    pub malformed: Vec<String>,
    pub duplicates: usize,
    pub excluded: usize,
    pub not_in_vocabulary: usize,
    /// The prompt text the model saw.
    pub prompt: String,
}

enum Engine {
    F32(Box<CausalLm>),
    Quantized(Box<QuantizedLm>),
}

impl Engine {
    fn model(&self) -> &dyn DecodeModel {
        match self {
            Engine::F32(m) => m.as_ref(),
            Engine::Quantized(q) => q.as_ref(),
        }
    }
}

/// What a loaded generator is.
#[derive(Clone, Debug, PartialEq)]
pub struct GeneratorInfo {
    pub base_model: String,
    pub adapter_dir: Option<PathBuf>,
    pub merged: bool,
    pub weights: Weights,
    /// Whether prompts carry attribute names.
    pub aligned: bool,
}

/// A DSL model loaded for generation.
pub struct WordGenerator {
    engine: Engine,
    tokenizer: TextTokenizer,
    /// The chat template, parsed once.
    chat: ChatFormat,
    /// The prompt of `[*,*,*,*]` without seeds, against which every prompt's shared part is
    /// measured; rendered on first use.
    any_prompt: std::sync::OnceLock<Vec<u32>>,
    vocab: Option<AttributeVocab>,
    /// The system message the adapter was trained with (`None`: the template's default).
    system: Option<String>,
    stop_tokens: Vec<u32>,
    info: GeneratorInfo,
    /// The prompt tokens every pattern shares (system prompt, request up to the pattern) and
    /// their one-row cache, computed on first use.
    shared: Mutex<Option<(Vec<u32>, KvCache)>>,
}

impl std::fmt::Debug for WordGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WordGenerator").field("info", &self.info).finish()
    }
}

/// The base model an adapter was trained on (`base_model_name_or_path` of its PEFT config).
pub fn adapter_base_model(adapter_dir: &Path) -> Result<Option<String>> {
    let path = adapter_dir.join(crate::io::peft::ADAPTER_CONFIG);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(WotdError::io(&path, e)),
    };
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| WotdError::corrupt(&path, format!("invalid JSON: {e}")))?;
    Ok(v.get("base_model_name_or_path").and_then(|b| b.as_str()).filter(|s| !s.is_empty()).map(String::from))
}

/// The attribute names the trainer put in prompts, from the `dsl_prompt.json` in the adapter
/// directory or its parent (the training run's directory). `Ok(None)`: no note, or codes only.
pub fn trained_prompt_vocab(adapter_dir: &Path) -> Result<Option<AttributeVocab>> {
    match read_prompt_note(adapter_dir)?.and_then(|v| v.get("attribute_vocab").cloned()) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(a) => serde_json::from_value(a).map(Some).map_err(|e| WotdError::corrupt(&adapter_dir.join(PROMPT_FILE), format!("attribute_vocab: {e}"))),
    }
}

/// The system message the trainer put before requests (`None`: none recorded).
pub fn trained_system_prompt(adapter_dir: &Path) -> Result<Option<String>> {
    Ok(read_prompt_note(adapter_dir)?.and_then(|v| v.get("system_prompt").and_then(|s| s.as_str()).map(String::from)))
}

fn read_prompt_note(adapter_dir: &Path) -> Result<Option<serde_json::Value>> {
    for dir in [Some(adapter_dir), adapter_dir.parent()].into_iter().flatten() {
        let path = dir.join(PROMPT_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(WotdError::io(&path, e)),
        };
        return serde_json::from_str(&text).map(Some).map_err(|e| WotdError::corrupt(&path, format!("invalid JSON: {e}")));
    }
    Ok(None)
}

impl WordGenerator {
    /// Resolves `base` (path or Hugging Face id), loads it with the adapter, merges and
    /// quantizes as asked.
    pub fn load(base: &str, opts: &GeneratorOptions) -> Result<Self> {
        let resolved = resolve(base, &opts.resolve)?;
        let mut model = CausalLm::load_resolved(&resolved, None)?;
        let mut engine = opts.engine.clone();
        let mut system = None;
        if let Some(dir) = &opts.adapter_dir {
            system = trained_system_prompt(dir)?;
            model.load_adapter(dir).context(|| format!("loading the DSL adapter from {}", dir.display()))?;
            if engine.prompt_vocab == PromptVocab::Auto {
                engine.prompt_vocab = match trained_prompt_vocab(dir)? {
                    Some(v) => PromptVocab::Named(v),
                    None => PromptVocab::Codes,
                };
            }
        }
        let mut g = Self::from_model(model, &engine)?;
        g.info.adapter_dir = opts.adapter_dir.clone();
        g.system = system;
        Ok(g)
    }

    /// Wraps a loaded model (with or without an adapter). `PromptVocab::Auto` means codes only
    /// here: there is no adapter directory to read the trainer's note from.
    pub fn from_model(mut model: CausalLm, opts: &EngineOptions) -> Result<Self> {
        let tokenizer = model
            .tokenizer()
            .cloned()
            .ok_or_else(|| WotdError::InvalidInput("the model has no tokenizer to write prompts with".into()))?;
        let chat = ChatFormat::from_tokenizer(&tokenizer)?;
        let cfg = model.config().clone();
        let mut stop_tokens = vec![chat.end_of_turn()];
        stop_tokens.extend(&cfg.eos_token_ids);
        stop_tokens.extend(tokenizer.specials().eos);
        stop_tokens.sort_unstable();
        stop_tokens.dedup();
        let had_adapter = model.adapter_config().is_some();
        if opts.weights == Weights::Q8_0 && had_adapter && !opts.merge {
            return Err(WotdError::InvalidInput("Q8_0 decoding needs the adapter merged (merge: true)".into()));
        }
        if opts.merge && had_adapter {
            model.merge_adapter()?;
        }
        let base_model = model.base_model_name().to_string();
        let engine = match opts.weights {
            Weights::F32 => Engine::F32(Box::new(model)),
            Weights::Q8_0 => Engine::Quantized(Box::new(QuantizedLm::from_owned(model, GgmlDType::Q8_0)?)),
        };
        let vocab = match &opts.prompt_vocab {
            PromptVocab::Named(v) => Some(v.clone()),
            PromptVocab::Auto | PromptVocab::Codes => None,
        };
        let info = GeneratorInfo {
            base_model,
            adapter_dir: None,
            merged: opts.merge || !had_adapter,
            weights: opts.weights,
            aligned: vocab.is_some(),
        };
        Ok(WordGenerator { engine, tokenizer, chat, any_prompt: std::sync::OnceLock::new(), vocab, system: None, stop_tokens, info, shared: Mutex::new(None) })
    }

    pub fn info(&self) -> &GeneratorInfo {
        &self.info
    }

    pub fn config(&self) -> &DecoderConfig {
        self.engine.model().config()
    }

    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// Tokens that end a completion.
    pub fn stop_tokens(&self) -> &[u32] {
        &self.stop_tokens
    }

    /// The prompt for `pattern` (and seed words of its region), through the trainer's own encoder.
    pub fn prompt_ids(&self, pattern: &Pattern, seeds: &[String]) -> Result<Vec<u32>> {
        let max_len = self.config().max_position_embeddings;
        ExampleEncoder::new(&self.tokenizer, self.chat.clone(), self.vocab.clone(), max_len).with_system(self.system.clone()).prompt_ids(pattern, seeds)
    }

    /// Writes the (merged) model as a llama.cpp GGUF.
    pub fn export_gguf(&self, path: &Path, opts: &GgufExportOptions) -> Result<GgufExportReport> {
        match &self.engine {
            Engine::F32(m) => export_causal_lm(m, path, opts),
            // Quantized weights are dequantized and written again; Q8_0 of Q8_0 values
            // reproduces them up to the f16 rounding of each block's scale.
            Engine::Quantized(q) => write_llama_gguf(q.config(), q.hf_tensors()?, &self.tokenizer, path, opts),
        }
    }

    /// Where the prompt stops being shared by every pattern: its common prefix with the prompt
    /// of `[*,*,*,*]`, leaving at least one token to prefill per request. Fixed per pattern,
    /// so a request computes the same way whatever was asked before it.
    fn shared_prefix_len(&self, prompt: &[u32]) -> Result<usize> {
        let any = match self.any_prompt.get() {
            Some(ids) => ids,
            None => {
                let ids = self.prompt_ids(&Pattern::new([None; crate::rvq::LEVELS])?, &[])?;
                self.any_prompt.get_or_init(|| ids)
            }
        };
        let common = prompt.iter().zip(any).take_while(|(a, b)| a == b).count();
        Ok(common.min(prompt.len().saturating_sub(1)))
    }

    /// A one-row cache holding `ids`, prefilled once and then copied for every request.
    fn shared_cache(&self, ids: &[u32]) -> Result<KvCache> {
        let model = self.engine.model();
        if ids.is_empty() {
            return Ok(model.new_cache());
        }
        let mut shared = self.shared.lock().map_err(|_| WotdError::Panic("a generation panicked while holding the prompt cache".into()))?;
        if let Some((cached, cache)) = shared.as_ref() {
            if cached == ids {
                return Ok(cache.clone());
            }
        }
        let mut cache = model.new_cache();
        let x = Tensor::from_vec(ids.to_vec(), (1, ids.len()), model.device())?;
        model.last_logits(&x, None, &mut cache)?;
        *shared = Some((ids.to_vec(), cache.clone()));
        Ok(cache)
    }

    /// Words for `pattern`.
    pub fn generate(&self, pattern: &Pattern, opts: &WordOptions) -> Result<WordGeneration> {
        self.generate_cancellable(pattern, opts, &AtomicBool::new(false))
    }

    /// [`WordGenerator::generate`], polling `cancel` before every decoding step: once it is
    /// set, the request ends with `WotdError::Cancelled` and its words are dropped.
    pub fn generate_cancellable(&self, pattern: &Pattern, opts: &WordOptions, cancel: &AtomicBool) -> Result<WordGeneration> {
        opts.validate()?;
        let started = Instant::now();
        let model = self.engine.model();
        let seeds: Vec<String> = opts.seeds.iter().map(|w| normalize(w)).filter(|w| !w.is_empty()).collect();
        let prompt = self.prompt_ids(pattern, &seeds)?;
        let budget = model.config().max_position_embeddings;
        if prompt.len() >= budget {
            return Err(WotdError::InvalidInput(format!("the prompt ({} tokens) fills the model's {budget} positions", prompt.len())));
        }
        let max_new = opts.max_new_tokens.min(budget - prompt.len());
        let exclude: Vec<&str> = opts.exclude.iter().chain(&seeds).map(String::as_str).collect();
        let mut collector = WordCollector::new(exclude.iter().copied(), opts.vocabulary.as_ref().map(|v| v.iter().map(String::as_str)));
        let trie = match &opts.vocabulary {
            Some(v) => {
                let banned: HashSet<String> = opts.exclude.iter().chain(&seeds).map(|w| normalize(w)).collect();
                let allowed: Vec<String> = v.iter().map(|w| normalize(w)).filter(|w| !banned.contains(w)).collect();
                Some(VocabTrie::build(&self.tokenizer, &allowed, WORD_SEPARATOR, &self.stop_tokens)?)
            }
            None => None,
        };

        let device = model.device().clone();
        let split = self.shared_prefix_len(&prompt)?;
        let mut prefix = self.shared_cache(&prompt[..split])?;
        let tail = Tensor::from_vec(prompt[split..].to_vec(), (1, prompt.len() - split), &device)?;
        let first = model.last_logits(&tail, None, &mut prefix)?.squeeze(0)?.to_vec1::<f32>()?;
        let prefill_ms = started.elapsed().as_secs_f64() * 1e3;

        let params = SamplingParams { temperature: opts.temperature, top_p: opts.top_p, top_k: opts.top_k };
        let greedy = params.is_greedy();
        let (mut raw, mut tokens, mut rounds, mut rows_used) = (Vec::new(), 0usize, 0usize, 0usize);
        for _ in 0..opts.max_rounds {
            let remaining = opts.count.saturating_sub(collector.words.len());
            if remaining == 0 {
                break;
            }
            // About one row per wanted word: a decoding step costs far less than twice one row's
            // step until the batch is large (the weights are read once per step), and the round
            // stops as soon as enough words are finished.
            let rows = if greedy { 1 } else { remaining.clamp(1, opts.max_batch) };
            let round = Round { gen: self, model, params, trie: trie.as_ref(), first: &first, prefix: &prefix, max_new, cancel };
            let (texts, n) = round.run(rows, opts.seed, rows_used as u64, &collector, remaining)?;
            for (text, complete) in texts {
                // A row cut off (by the token budget or the early stop) may end mid-word.
                for item in final_items(&text, complete) {
                    collector.push_item(item);
                }
                raw.push(text);
            }
            tokens += n;
            rounds += 1;
            rows_used += rows;
            if greedy {
                break;
            }
        }
        let mut words = std::mem::take(&mut collector.words);
        words.truncate(opts.count);
        let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(WordGeneration {
            ms_per_word: elapsed_ms / words.len().max(1) as f64,
            words,
            raw,
            tokens,
            elapsed_ms,
            prefill_ms,
            rounds,
            rows: rows_used,
            malformed: collector.malformed,
            duplicates: collector.duplicates,
            excluded: collector.excluded,
            not_in_vocabulary: collector.not_in_vocabulary,
            prompt: self.tokenizer.decode(&prompt, false)?,
        })
    }
}

/// One batch of rows continuing the same prefilled prompt.
struct Round<'a> {
    gen: &'a WordGenerator,
    model: &'a dyn DecodeModel,
    params: SamplingParams,
    trie: Option<&'a VocabTrie>,
    first: &'a [f32],
    prefix: &'a KvCache,
    max_new: usize,
    cancel: &'a AtomicBool,
}

struct RowState {
    ids: Vec<u32>,
    rng: SeededRng,
    trie: Option<TrieState>,
    done: bool,
    /// Ended by a stop token, so its last item is a whole word.
    complete: bool,
    text: String,
}

impl Round<'_> {
    /// Decodes `rows` samples (streams `first_stream..`) and returns their texts (with whether
    /// each ended by a stop token) and the number of generated tokens. Stops early when the
    /// words finished so far reach `wanted` new ones.
    fn run(&self, rows: usize, seed: u64, first_stream: u64, collector: &WordCollector, wanted: usize) -> Result<(Vec<(String, bool)>, usize)> {
        let tok = &self.gen.tokenizer;
        let stops = &self.gen.stop_tokens;
        let device = self.model.device().clone();
        let mut cache = repeat_cache(self.model, self.prefix, rows)?;
        let mut state: Vec<RowState> = (0..rows)
            .map(|r| RowState {
                ids: Vec::new(),
                rng: SeededRng::derive(seed, first_stream + r as u64),
                trie: self.trie.map(VocabTrie::start),
                done: false,
                complete: false,
                text: String::new(),
            })
            .collect();
        let limit = tok.vocab_size().min(self.first.len());
        // Batch row i decodes state row active[i]; rows leave the batch (and the cache) as
        // they finish, so the last long row does not carry the finished ones along.
        let mut active: Vec<usize> = (0..rows).collect();
        let mut logits: Vec<Vec<f32>> = vec![self.first.to_vec(); rows];
        let mut generated = 0usize;
        for step in 0..self.max_new {
            if self.cancel.load(Ordering::SeqCst) {
                return Err(WotdError::Cancelled);
            }
            let (mut next, mut kept) = (Vec::with_capacity(active.len()), Vec::with_capacity(active.len()));
            for (i, lg) in logits.iter_mut().enumerate() {
                let row = &mut state[active[i]];
                let lg = &mut lg[..limit];
                if let (Some(t), Some(s)) = (self.trie, row.trie.as_ref()) {
                    if t.mask(s, lg) == 0 {
                        row.done = true;
                        continue;
                    }
                }
                let id = sample(lg, &self.params, &mut row.rng) as u32;
                generated += 1;
                if let (Some(t), Some(s)) = (self.trie, row.trie.as_mut()) {
                    t.advance(s, id)?;
                }
                if stops.contains(&id) {
                    row.done = true;
                    row.complete = true;
                    continue;
                }
                row.ids.push(id);
                row.text = tok.decode(&row.ids, false)?;
                next.push(id);
                kept.push(i);
            }
            if kept.is_empty() || step + 1 == self.max_new {
                break;
            }
            let finished: Vec<&str> = state.iter().flat_map(|r| final_items(&r.text, r.complete)).collect();
            if collector.count_new(finished) >= wanted {
                break;
            }
            if kept.len() < active.len() {
                cache.keep_rows(&kept)?;
                active = kept.iter().map(|&i| active[i]).collect();
            }
            let ids = Tensor::from_vec(next, (active.len(), 1), &device)?;
            logits = self.model.last_logits(&ids, None, &mut cache)?.to_vec2::<f32>()?;
        }
        Ok((state.into_iter().map(|r| (r.text, r.complete)).collect(), generated))
    }
}
