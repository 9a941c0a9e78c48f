//! BERT-family encoder (BERT, and XLM-RoBERTa through [`super::xlm_roberta`]): embeddings,
//! post-norm transformer layers with bidirectional attention, no pooler (pooling is the
//! embedder's job and follows the model's sentence-transformers config, not BERT's `pooler`).
//!
//! Weight names follow `transformers`' `save_pretrained` of the bare model
//! (`embeddings.*`, `encoder.layer.N.*`); a leading `bert.`/`roberta.`/`model.` (task heads,
//! wrapped checkpoints) is detected and stripped.

use crate::error::{Result, WotdError};
use crate::nn::{additive_padding_mask, BidirectionalSelfAttention, Embedding, LayerNorm, Linear};
use candle_core::{DType, Device, Tensor};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The fields of a `config.json` this encoder reads; the rest are ignored.
#[derive(Clone, Debug, Deserialize)]
pub struct BertConfig {
    #[serde(default)]
    pub model_type: Option<String>,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    #[serde(default)]
    pub position_embedding_type: Option<String>,
}

fn default_act() -> String {
    "gelu".into()
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}

impl BertConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| WotdError::io(path, e))?;
        Self::from_json(&text).map_err(|e| match e {
            WotdError::InvalidInput(reason) => WotdError::corrupt(path, reason),
            other => other,
        })
    }

    pub fn from_json(text: &str) -> Result<Self> {
        let c: BertConfig =
            serde_json::from_str(text).map_err(|e| WotdError::InvalidInput(format!("not a BERT-family config.json: {e}")))?;
        if let Some(p) = &c.position_embedding_type {
            if p != "absolute" {
                return Err(WotdError::Unsupported(format!("position_embedding_type {p:?} (only \"absolute\")")));
            }
        }
        if c.num_attention_heads == 0 || c.hidden_size % c.num_attention_heads != 0 {
            return Err(WotdError::InvalidInput(format!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                c.hidden_size, c.num_attention_heads
            )));
        }
        Ok(c)
    }
}

/// How position ids are assigned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PositionIds {
    /// BERT: `0, 1, 2, ...` for every row, padding included.
    Sequential,
    /// RoBERTa / XLM-R: real tokens count up from `padding_idx + 1`; padding gets `padding_idx`.
    /// The table's first `padding_idx + 1` rows are never used by real tokens, so the usable
    /// length is `max_position_embeddings - padding_idx - 1`.
    AfterPadding { padding_idx: u32 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Activation {
    GeluErf,
    GeluTanh,
    Relu,
    Silu,
}

impl Activation {
    fn parse(name: &str) -> Result<Self> {
        match name {
            "gelu" => Ok(Self::GeluErf),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Self::GeluTanh),
            "relu" => Ok(Self::Relu),
            "silu" | "swish" => Ok(Self::Silu),
            other => Err(WotdError::Unsupported(format!("hidden_act {other:?}"))),
        }
    }

    fn apply(self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Self::GeluErf => crate::nn::gelu::gelu_erf(x)?,
            Self::GeluTanh => x.gelu()?,
            Self::Relu => x.relu()?,
            Self::Silu => x.silu()?,
        })
    }
}

/// Tensor lookup with names relative to a detected prefix, and errors that name the file.
pub(crate) struct WeightSource<'a> {
    map: &'a HashMap<String, Tensor>,
    prefix: &'static str,
    path: PathBuf,
}

impl<'a> WeightSource<'a> {
    /// `anchor` is a tensor every checkpoint of the architecture has (without prefix).
    pub(crate) fn new(map: &'a HashMap<String, Tensor>, path: &Path, anchor: &str) -> Result<Self> {
        for prefix in ["", "bert.", "roberta.", "model.", "encoder."] {
            if map.contains_key(&format!("{prefix}{anchor}")) {
                return Ok(Self { map, prefix, path: path.to_path_buf() });
            }
        }
        Err(WotdError::corrupt(path, format!("no tensor named {anchor:?} (with or without a bert./roberta. prefix); is this a BERT-family checkpoint?")))
    }

    pub(crate) fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let full = format!("{}{name}", self.prefix);
        let t = self.map.get(&full).ok_or_else(|| WotdError::corrupt(&self.path, format!("missing tensor {full:?}")))?;
        if t.dims() != shape {
            return Err(WotdError::corrupt(&self.path, format!("tensor {full:?} has shape {:?}, config implies {shape:?}", t.dims())));
        }
        Ok(t.to_dtype(DType::F32)?)
    }

    fn linear(&self, name: &str, out: usize, inp: usize) -> Result<Linear> {
        Linear::new(self.get(&format!("{name}.weight"), &[out, inp])?, Some(self.get(&format!("{name}.bias"), &[out])?))
    }

    fn layer_norm(&self, name: &str, n: usize, eps: f64) -> Result<LayerNorm> {
        // BERT checkpoints saved by old TF code use gamma/beta.
        let w = self.get(&format!("{name}.weight"), &[n]).or_else(|_| self.get(&format!("{name}.gamma"), &[n]))?;
        let b = self.get(&format!("{name}.bias"), &[n]).or_else(|_| self.get(&format!("{name}.beta"), &[n]))?;
        LayerNorm::new(w, Some(b), eps)
    }
}

#[derive(Clone, Debug)]
struct Layer {
    attention: BidirectionalSelfAttention,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

/// A loaded BERT-family encoder.
#[derive(Clone, Debug)]
pub struct BertModel {
    word: Embedding,
    position: Embedding,
    token_type: Option<Embedding>,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    activation: Activation,
    positions: PositionIds,
    config: BertConfig,
}

impl BertModel {
    /// Builds the encoder from a checkpoint's tensors. `source` names the checkpoint in errors.
    pub fn load(config: &BertConfig, weights: &HashMap<String, Tensor>, source: &Path, positions: PositionIds) -> Result<Self> {
        let w = WeightSource::new(weights, source, "embeddings.word_embeddings.weight")?;
        let h = config.hidden_size;
        let eps = config.layer_norm_eps;
        let word = Embedding::new(w.get("embeddings.word_embeddings.weight", &[config.vocab_size, h])?)?;
        let position = Embedding::new(w.get("embeddings.position_embeddings.weight", &[config.max_position_embeddings, h])?)?;
        // XLM-R has a one-row token-type table that adds the same vector everywhere; keep it
        // for exactness. A model without the table simply adds nothing.
        let token_type = if config.type_vocab_size > 0 {
            Some(Embedding::new(w.get("embeddings.token_type_embeddings.weight", &[config.type_vocab_size, h])?)?)
        } else {
            None
        };
        let embedding_norm = w.layer_norm("embeddings.LayerNorm", h, eps)?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let attention = BidirectionalSelfAttention::new(
                w.linear(&format!("{p}.attention.self.query"), h, h)?,
                w.linear(&format!("{p}.attention.self.key"), h, h)?,
                w.linear(&format!("{p}.attention.self.value"), h, h)?,
                w.linear(&format!("{p}.attention.output.dense"), h, h)?,
                config.num_attention_heads,
            )?;
            layers.push(Layer {
                attention,
                attention_norm: w.layer_norm(&format!("{p}.attention.output.LayerNorm"), h, eps)?,
                intermediate: w.linear(&format!("{p}.intermediate.dense"), config.intermediate_size, h)?,
                output: w.linear(&format!("{p}.output.dense"), h, config.intermediate_size)?,
                output_norm: w.layer_norm(&format!("{p}.output.LayerNorm"), h, eps)?,
            });
        }
        if let PositionIds::AfterPadding { padding_idx } = positions {
            if padding_idx as usize + 1 >= config.max_position_embeddings {
                return Err(WotdError::corrupt(source, format!(
                    "padding_idx {padding_idx} leaves no positions in a table of {}",
                    config.max_position_embeddings
                )));
            }
        }
        Ok(Self {
            word,
            position,
            token_type,
            embedding_norm,
            layers,
            activation: Activation::parse(&config.hidden_act)?,
            positions,
            config: config.clone(),
        })
    }

    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    pub fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }

    pub fn device(&self) -> &Device {
        self.word.weight().device()
    }

    /// The longest input (special tokens included) the position table can hold.
    pub fn max_input_length(&self) -> usize {
        match self.positions {
            PositionIds::Sequential => self.config.max_position_embeddings,
            PositionIds::AfterPadding { padding_idx } => self.config.max_position_embeddings - padding_idx as usize - 1,
        }
    }

    /// The id right-padding should use (the config's `pad_token_id`, else 0).
    pub fn pad_token_id(&self) -> u32 {
        match self.positions {
            PositionIds::AfterPadding { padding_idx } => padding_idx,
            PositionIds::Sequential => self.config.pad_token_id.unwrap_or(0),
        }
    }

    /// `input_ids` and `attention_mask`: `[batch, seq]` (u32; mask 1 = token, 0 = padding).
    /// Returns the last hidden state `[batch, seq, hidden]`.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        let mut out = self.run(input_ids, attention_mask, false)?;
        Ok(out.pop().expect("run returns at least the last state"))
    }

    /// The embeddings output followed by every layer's output (the last is the last hidden
    /// state), as `transformers`' `output_hidden_states=True` gives them.
    pub fn forward_hidden_states(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Vec<Tensor>> {
        self.run(input_ids, attention_mask, true)
    }

    fn run(&self, input_ids: &Tensor, attention_mask: &Tensor, keep_all: bool) -> Result<Vec<Tensor>> {
        let (b, s) = input_ids.dims2()?;
        if attention_mask.dims() != [b, s] {
            return Err(WotdError::InvalidInput(format!(
                "attention mask {:?} does not match input ids {:?}",
                attention_mask.dims(),
                input_ids.dims()
            )));
        }
        if s > self.max_input_length() {
            return Err(WotdError::InvalidInput(format!(
                "sequence of {s} tokens exceeds the model's maximum of {}",
                self.max_input_length()
            )));
        }
        let dev = input_ids.device();
        let ids = input_ids.to_dtype(DType::U32)?;
        let mask_host = attention_mask.to_dtype(DType::U32)?.to_vec2::<u32>()?;
        let position_ids = self.position_ids(&ids, &mask_host, dev)?;

        let mut x = self.word.forward(&ids)?.add(&self.position.forward(&position_ids)?)?;
        if let Some(tt) = &self.token_type {
            // Single-segment input: every token has type 0.
            x = x.broadcast_add(&tt.weight().get(0)?)?;
        }
        x = self.embedding_norm.forward(&x)?;

        // Skip the mask when nothing is padded: batches grouped by length usually are not.
        let padded = mask_host.iter().flatten().any(|&m| m == 0);
        let bias = if padded { Some(additive_padding_mask(attention_mask, x.dtype())?) } else { None };

        let mut states = Vec::with_capacity(if keep_all { self.layers.len() + 1 } else { 1 });
        if keep_all {
            states.push(x.clone());
        }
        for layer in &self.layers {
            let attn = layer.attention.forward(&x, bias.as_ref())?;
            let h = layer.attention_norm.forward(&(attn + &x)?)?;
            let ff = layer.output.forward(&self.activation.apply(&layer.intermediate.forward(&h)?)?)?;
            x = layer.output_norm.forward(&(ff + &h)?)?;
            if keep_all {
                states.push(x.clone());
            }
        }
        if !keep_all {
            states.push(x);
        }
        Ok(states)
    }

    fn position_ids(&self, ids: &Tensor, mask: &[Vec<u32>], dev: &Device) -> Result<Tensor> {
        let (b, s) = ids.dims2()?;
        match self.positions {
            PositionIds::Sequential => Ok(Tensor::arange(0u32, s as u32, dev)?.unsqueeze(0)?.broadcast_as((b, s))?.contiguous()?),
            PositionIds::AfterPadding { padding_idx } => {
                // transformers derives these from `input_ids != padding_idx`; a pad id inside a
                // real sequence is therefore treated as padding there too, which we mirror.
                let host = ids.to_vec2::<u32>()?;
                let mut out = Vec::with_capacity(b * s);
                for (row, mrow) in host.iter().zip(mask) {
                    let mut n = 0u32;
                    for (&id, &m) in row.iter().zip(mrow) {
                        if id != padding_idx && m != 0 {
                            n += 1;
                            out.push(padding_idx + n);
                        } else {
                            out.push(padding_idx);
                        }
                    }
                }
                Ok(Tensor::from_vec(out, (b, s), dev)?)
            }
        }
    }
}
