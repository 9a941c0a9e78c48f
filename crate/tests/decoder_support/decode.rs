//! A plain KV-cached decoding loop with stop rules over a [`CausalLm`]: the reference the
//! decoder tests check caching, padding and batching against (the product decodes through
//! `wotd_native::generate::WordGenerator`).
//!
//! ```text
//! generate(&model, &tokenizer, &prompt_ids, &GenerateOptions) -> Result<Generation>
//! generate_batch(&model, &tokenizer, &[prompt_ids], &GenerateOptions) -> Result<Vec<Generation>>
//! ```
//!
//! - Sampling (`generate::sampling`): greedy when `temperature <= 0`, else temperature, top-k,
//!   top-p, one draw from a [`SeededRng`]. Row `i` of a batch draws from stream `i` of `seed`, so a prompt
//!   gives the same tokens alone or inside a batch, cached or not.
//! - Batches are left-padded; the model hides the padding and counts positions over real tokens,
//!   so a padded row decodes like its prompt alone.
//! - Only ids the tokenizer knows are candidates (Phi-3 pads its embedding past the vocabulary).
//! - Stops: a stop token (the options' ids, plus the model's end-of-sequence ids when
//!   `stop_at_eos`), a stop string in the decoded text, or `max_new_tokens`.
//! - `use_cache: false` recomputes the whole sequence every step: slow, but the reference the
//!   cached path is tested against.
//!
//! [`Generation::token_ids`] holds every generated id, a final stop token included;
//! [`Generation::text`] decodes them (special tokens kept) without that stop token and cut before
//! the first stop string.

use candle_core::{DType, Tensor};
use wotd_native::generate::sampling::{self, SamplingParams};
use wotd_native::io::TextTokenizer;
use wotd_native::models::CausalLm;
use wotd_native::nn::kv_cache::KvCache;
use wotd_native::random::SeededRng;
use wotd_native::{Result, WotdError};

/// What to generate and when to stop.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    /// `<= 0` is greedy decoding.
    pub temperature: f64,
    pub top_p: f64,
    /// `0` disables top-k.
    pub top_k: usize,
    pub seed: u64,
    pub stop_token_ids: Vec<u32>,
    /// Also stop at the model's and tokenizer's end-of-sequence ids.
    pub stop_at_eos: bool,
    pub stop_strings: Vec<String>,
    /// KV-cached incremental decoding (default); `false` recomputes every step.
    pub use_cache: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_new_tokens: 64,
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            seed: 0,
            stop_token_ids: Vec::new(),
            stop_at_eos: true,
            stop_strings: Vec::new(),
            use_cache: true,
        }
    }
}

impl GenerateOptions {
    /// Greedy decoding of up to `max_new_tokens`.
    pub fn greedy(max_new_tokens: usize) -> Self {
        GenerateOptions { max_new_tokens, temperature: 0.0, ..Default::default() }
    }

    pub fn sampling(&self) -> SamplingParams {
        SamplingParams { temperature: self.temperature, top_p: self.top_p, top_k: self.top_k }
    }

    pub fn validate(&self) -> Result<()> {
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(WotdError::InvalidInput(format!("top_p must be in (0, 1], got {}", self.top_p)));
        }
        if !self.temperature.is_finite() {
            return Err(WotdError::InvalidInput(format!("temperature must be finite, got {}", self.temperature)));
        }
        if self.stop_strings.iter().any(String::is_empty) {
            return Err(WotdError::InvalidInput("stop strings must not be empty".into()));
        }
        Ok(())
    }
}

/// Why a row stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    StopToken(u32),
    StopString(String),
    MaxNewTokens,
}

/// One generated continuation.
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    pub token_ids: Vec<u32>,
    pub text: String,
    pub stop_reason: StopReason,
}

/// Generates a continuation of one prompt.
pub fn generate(model: &CausalLm, tokenizer: &TextTokenizer, prompt_ids: &[u32], opts: &GenerateOptions) -> Result<Generation> {
    let mut out = generate_batch(model, tokenizer, &[prompt_ids.to_vec()], opts)?;
    Ok(out.remove(0))
}

struct Row {
    ids: Vec<u32>,
    rng: SeededRng,
    done: Option<StopReason>,
    text: String,
}

/// Generates a continuation of every prompt in one left-padded batch.
pub fn generate_batch(
    model: &CausalLm,
    tokenizer: &TextTokenizer,
    prompts: &[Vec<u32>],
    opts: &GenerateOptions,
) -> Result<Vec<Generation>> {
    opts.validate()?;
    if prompts.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(i) = prompts.iter().position(Vec::is_empty) {
        return Err(WotdError::InvalidInput(format!("prompt {i} is empty")));
    }
    let cfg = model.config();
    let mut stops: Vec<u32> = opts.stop_token_ids.clone();
    if opts.stop_at_eos {
        stops.extend(&cfg.eos_token_ids);
        stops.extend(tokenizer.specials().eos);
    }
    let pad = cfg.pad_token_id.or(tokenizer.specials().pad).or(cfg.eos_token_ids.first().copied()).unwrap_or(0);
    let params = opts.sampling();
    let b = prompts.len();
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let device = model.device().clone();

    // Left-padded token matrix and mask, extended column by column when not caching.
    let mut tokens: Vec<Vec<u32>> = prompts.iter().map(|p| [vec![pad; longest - p.len()], p.clone()].concat()).collect();
    let mut valid: Vec<Vec<u32>> = prompts.iter().map(|p| [vec![0; longest - p.len()], vec![1; p.len()]].concat()).collect();
    let mut rows: Vec<Row> = (0..b)
        .map(|i| Row { ids: Vec::new(), rng: SeededRng::derive(opts.seed, i as u64), done: None, text: String::new() })
        .collect();
    let mut cache = opts.use_cache.then(|| model.new_cache());
    let to_tensor = |m: &[Vec<u32>]| -> Result<Tensor> {
        let w = m[0].len();
        Ok(Tensor::from_vec(m.concat(), (m.len(), w), &device)?)
    };

    let mut logits = last_logits(model, &to_tensor(&tokens)?, &to_tensor(&valid)?, cache.as_mut())?;
    for step in 0..opts.max_new_tokens {
        let limit = tokenizer.vocab_size().min(logits[0].len());
        let mut next = Vec::with_capacity(b);
        for (row, lg) in rows.iter_mut().zip(&logits) {
            if row.done.is_some() {
                next.push(pad);
                continue;
            }
            let id = sampling::sample(&lg[..limit], &params, &mut row.rng) as u32;
            row.ids.push(id);
            next.push(id);
            if stops.contains(&id) {
                row.done = Some(StopReason::StopToken(id));
                row.text = tokenizer.decode(&row.ids[..row.ids.len() - 1], false)?;
                continue;
            }
            row.text = tokenizer.decode(&row.ids, false)?;
            if let Some((pos, s)) = first_stop_string(&row.text, &opts.stop_strings) {
                row.text.truncate(pos);
                row.done = Some(StopReason::StopString(s.to_string()));
            }
        }
        if rows.iter().all(|r| r.done.is_some()) || step + 1 == opts.max_new_tokens {
            break;
        }
        logits = if let Some(c) = cache.as_mut() {
            let ids = Tensor::from_vec(next, (b, 1), &device)?;
            last_logits(model, &ids, &Tensor::ones((b, 1), DType::U32, &device)?, Some(c))?
        } else {
            for ((t, v), id) in tokens.iter_mut().zip(valid.iter_mut()).zip(next) {
                t.push(id);
                v.push(1);
            }
            last_logits(model, &to_tensor(&tokens)?, &to_tensor(&valid)?, None)?
        };
    }
    Ok(rows
        .into_iter()
        .map(|r| Generation { token_ids: r.ids, text: r.text, stop_reason: r.done.unwrap_or(StopReason::MaxNewTokens) })
        .collect())
}

/// Logits of the last position of every row, `[b][vocab]`, recording no graph.
fn last_logits(model: &CausalLm, ids: &Tensor, mask: &Tensor, cache: Option<&mut KvCache>) -> Result<Vec<Vec<f32>>> {
    let t = ids.dims()[1];
    let hidden = model.final_hidden_no_grad(ids, Some(mask), cache)?;
    let last = hidden.narrow(1, t - 1, 1)?.squeeze(1)?;
    Ok(model.lm_head(&last)?.to_vec2::<f32>()?)
}

pub fn first_stop_string<'a>(text: &str, stops: &'a [String]) -> Option<(usize, &'a str)> {
    stops.iter().filter_map(|s| text.find(s.as_str()).map(|p| (p, s.as_str()))).min_by_key(|(p, _)| *p)
}
