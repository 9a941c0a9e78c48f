//! Writing a merged llama model as a llama.cpp GGUF (Q8_0 by default), so llama.cpp, Ollama
//! or anything else that reads GGUF can serve a tuned DSL model.
//!
//! The inverse of [`super::gguf_llama`]: Hugging Face names become llama.cpp's
//! (`blk.N.attn_q.weight`, ...), the rows of `attn_q`/`attn_k` are interleaved per head the way
//! `convert_hf_to_gguf.py` does (llama.cpp rotates pairs `2i, 2i+1`, HF pairs `i, i + d/2`),
//! `llama.*` hyper-parameters and the tokenizer (`tokenizer.ggml.*`, byte-level BPE only, with
//! the chat template) go into the metadata. Matrices are stored in the requested type when
//! their rows split into whole blocks, else in f32; norms always in f32. A tied LM head is not
//! written: llama.cpp falls back to `token_embd` when `output.weight` is absent.
//!
//! The file is written to a temporary name and renamed into place, so a crash never leaves a
//! half-written GGUF under the requested name.

use crate::io::TextTokenizer;
use crate::error::{Result, WotdError};
use crate::models::{Architecture, CausalLm, DecoderConfig};
use crate::nn::rotary::RopeScaling;
use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Tensor;
use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// llama.cpp's `llama_ftype` for a file whose matrices are mostly of one type.
fn file_type(dtype: GgmlDType) -> Result<u32> {
    Ok(match dtype {
        GgmlDType::F32 => 0,
        GgmlDType::F16 => 1,
        GgmlDType::Q8_0 => 7,
        GgmlDType::BF16 => 32,
        other => return Err(WotdError::Unsupported(format!("GGUF export as {other:?} (F32, F16, BF16 or Q8_0)"))),
    })
}

/// llama.cpp token types (`llama_token_type`).
const TOKEN_NORMAL: i32 = 1;
const TOKEN_CONTROL: i32 = 3;
const TOKEN_USER_DEFINED: i32 = 4;
const TOKEN_UNUSED: i32 = 5;

#[derive(Clone, Debug, PartialEq)]
pub struct GgufExportOptions {
    /// Storage type of the weight matrices (default Q8_0).
    pub dtype: GgmlDType,
    /// `general.name`; default "wotd-ml merged model".
    pub name: Option<String>,
}

impl Default for GgufExportOptions {
    fn default() -> Self {
        GgufExportOptions { dtype: GgmlDType::Q8_0, name: None }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct GgufExportReport {
    pub path: PathBuf,
    pub bytes: u64,
    pub tensors: usize,
    /// Tensors per storage type, e.g. `{"Q8_0": 211, "F32": 61}`.
    pub dtypes: BTreeMap<String, usize>,
}

/// llama.cpp's name for an HF tensor name of the llama architecture.
pub fn gguf_name(hf: &str) -> Option<String> {
    let (stem, kind) = hf.rsplit_once('.')?;
    if kind != "weight" && kind != "bias" {
        return None;
    }
    let top = match stem {
        "model.embed_tokens" => Some("token_embd"),
        "model.norm" => Some("output_norm"),
        "lm_head" => Some("output"),
        _ => None,
    };
    if let Some(t) = top {
        return Some(format!("{t}.{kind}"));
    }
    let rest = stem.strip_prefix("model.layers.")?;
    let (layer, part) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let g = match part {
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        _ => return None,
    };
    Some(format!("blk.{layer}.{g}.{kind}"))
}

/// HF row order to llama.cpp's: per head, row `i` goes to `2i` and row `d/2 + i` to `2i + 1`.
/// Inverse of [`super::gguf_llama::unpermute_rows`].
pub fn permute_rows(w: &Tensor, n_head: usize) -> candle_core::Result<Tensor> {
    let dims = w.dims().to_vec();
    let head_dim = dims[0] / n_head;
    let mut split = vec![n_head, 2, head_dim / 2];
    split.extend_from_slice(&dims[1..]);
    w.reshape(split)?.transpose(1, 2)?.contiguous()?.reshape(dims)
}

/// Exports a llama [`CausalLm`] (adapter merged, tokenizer loaded) to `path`.
pub fn export_causal_lm(model: &CausalLm, path: &Path, opts: &GgufExportOptions) -> Result<GgufExportReport> {
    if model.adapter_config().is_some() {
        return Err(WotdError::InvalidInput("merge the LoRA adapter into the model before exporting it to GGUF".into()));
    }
    let tok = model
        .tokenizer()
        .ok_or_else(|| WotdError::InvalidInput("the model has no tokenizer to write into the GGUF".into()))?;
    write_llama_gguf(model.config(), model.base_tensors(), tok, path, opts)
}

/// Writes HF-named f32 tensors of a llama model, its config and tokenizer as a GGUF.
pub fn write_llama_gguf(
    cfg: &DecoderConfig,
    tensors: Vec<(String, Tensor)>,
    tok: &TextTokenizer,
    path: &Path,
    opts: &GgufExportOptions,
) -> Result<GgufExportReport> {
    if cfg.architecture != Architecture::Llama {
        return Err(WotdError::Unsupported(format!("GGUF export of {:?} models (only llama)", cfg.architecture)));
    }
    if cfg.rotary.scaling != RopeScaling::Default || cfg.rotary.rotary_dim != cfg.head_dim {
        return Err(WotdError::Unsupported("GGUF export of a llama with scaled or partial rotary embeddings".into()));
    }
    let ftype = file_type(opts.dtype)?;
    let mut metadata = model_metadata(cfg, opts, ftype);
    metadata.extend(tokenizer_metadata(tok, cfg)?);

    let mut qtensors: Vec<(String, QTensor)> = Vec::with_capacity(tensors.len());
    for (hf, t) in tensors {
        if hf == "lm_head.weight" && cfg.tie_word_embeddings {
            continue;
        }
        let name = gguf_name(&hf).ok_or_else(|| WotdError::Unsupported(format!("tensor {hf:?} has no llama.cpp name")))?;
        let t = t.to_dtype(candle_core::DType::F32)?;
        let t = if name.contains(".attn_q.") {
            permute_rows(&t, cfg.num_attention_heads)?
        } else if name.contains(".attn_k.") {
            permute_rows(&t, cfg.num_key_value_heads)?
        } else {
            t
        };
        let row = t.dims().last().copied().unwrap_or(0);
        let dtype = if t.rank() == 2 && row % opts.dtype.block_size() == 0 { opts.dtype } else { GgmlDType::F32 };
        qtensors.push((name, QTensor::quantize(&t, dtype)?));
    }
    qtensors.sort_by_key(|(name, _)| tensor_order(name));

    let mut dtypes = BTreeMap::new();
    for (_, q) in &qtensors {
        *dtypes.entry(format!("{:?}", q.dtype())).or_insert(0) += 1;
    }
    crate::io::atomic::write_file_with(path, |tmp| {
        let file = std::fs::File::create(tmp).map_err(|e| WotdError::io(tmp, e))?;
        let mut w = BufWriter::new(file);
        let md: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let ts: Vec<(&str, &QTensor)> = qtensors.iter().map(|(k, q)| (k.as_str(), q)).collect();
        candle_core::quantized::gguf_file::write(&mut w, &md, &ts)?;
        w.flush().map_err(|e| WotdError::io(tmp, e))
    })?;
    let bytes = std::fs::metadata(path).map_err(|e| WotdError::io(path, e))?.len();
    Ok(GgufExportReport { path: path.to_path_buf(), bytes, tensors: qtensors.len(), dtypes })
}


/// llama.cpp's converter order: embeddings, then each block, then the output norm and head.
fn tensor_order(name: &str) -> (usize, usize, String) {
    match name.strip_prefix("blk.").and_then(|r| r.split_once('.')) {
        Some((layer, rest)) => (1, layer.parse().unwrap_or(usize::MAX), rest.to_string()),
        None if name.starts_with("token_embd") => (0, 0, name.to_string()),
        None => (2, 0, name.to_string()),
    }
}

fn model_metadata(cfg: &DecoderConfig, opts: &GgufExportOptions, ftype: u32) -> Vec<(String, Value)> {
    let u = |v: usize| Value::U32(v as u32);
    vec![
        ("general.architecture".into(), Value::String("llama".into())),
        ("general.name".into(), Value::String(opts.name.clone().unwrap_or_else(|| "wotd-ml merged model".into()))),
        ("general.file_type".into(), Value::U32(ftype)),
        ("general.quantization_version".into(), Value::U32(2)),
        ("llama.context_length".into(), u(cfg.max_position_embeddings)),
        ("llama.embedding_length".into(), u(cfg.hidden_size)),
        ("llama.block_count".into(), u(cfg.num_hidden_layers)),
        ("llama.feed_forward_length".into(), u(cfg.intermediate_size)),
        ("llama.attention.head_count".into(), u(cfg.num_attention_heads)),
        ("llama.attention.head_count_kv".into(), u(cfg.num_key_value_heads)),
        ("llama.attention.key_length".into(), u(cfg.head_dim)),
        ("llama.attention.value_length".into(), u(cfg.head_dim)),
        ("llama.attention.layer_norm_rms_epsilon".into(), Value::F32(cfg.rms_norm_eps as f32)),
        ("llama.rope.freq_base".into(), Value::F32(cfg.rotary.theta as f32)),
        ("llama.rope.dimension_count".into(), u(cfg.rotary.rotary_dim)),
        ("llama.vocab_size".into(), u(cfg.vocab_size)),
    ]
}

/// `tokenizer.ggml.*` for a byte-level BPE tokenizer, plus the chat template.
fn tokenizer_metadata(tok: &TextTokenizer, cfg: &DecoderConfig) -> Result<Vec<(String, Value)>> {
    let json: serde_json::Value = serde_json::from_str(
        &tok.inner().to_string(false).map_err(|e| WotdError::Tokenizer(format!("tokenizer does not serialize: {e}")))?,
    )
    .map_err(|e| WotdError::Tokenizer(format!("tokenizer JSON: {e}")))?;
    let model = &json["model"];
    if model["type"].as_str() != Some("BPE") {
        return Err(WotdError::Unsupported(format!("GGUF export of a {:?} tokenizer (only byte-level BPE)", model["type"])));
    }
    let byte_level = |v: &serde_json::Value| v["type"].as_str() == Some("ByteLevel");
    let pre = &json["pre_tokenizer"];
    let pre_name = if byte_level(pre) {
        "gpt2"
    } else if pre["type"].as_str() == Some("Sequence")
        && pre["pretokenizers"].as_array().is_some_and(|p| {
            p.len() == 2 && p[0]["type"].as_str() == Some("Digits") && p[0]["individual_digits"].as_bool() == Some(true) && byte_level(&p[1])
        })
    {
        // SmolLM2's pre-tokenizer: every digit alone, then GPT-2's split.
        "smollm"
    } else {
        return Err(WotdError::Unsupported(format!("GGUF export of the pre-tokenizer {pre}")));
    };
    if !byte_level(&json["decoder"]) {
        return Err(WotdError::Unsupported("GGUF export of a BPE tokenizer without a byte-level decoder".into()));
    }
    let merges: Vec<Value> = model["merges"]
        .as_array()
        .ok_or_else(|| WotdError::Tokenizer("BPE tokenizer has no merges".into()))?
        .iter()
        .map(|m| match m {
            serde_json::Value::String(s) => Ok(Value::String(s.clone())),
            serde_json::Value::Array(p) if p.len() == 2 => {
                Ok(Value::String(format!("{} {}", p[0].as_str().unwrap_or_default(), p[1].as_str().unwrap_or_default())))
            }
            other => Err(WotdError::Tokenizer(format!("unreadable BPE merge {other}"))),
        })
        .collect::<Result<_>>()?;

    let n = tok.vocab_size();
    if n > cfg.vocab_size {
        return Err(WotdError::InvalidInput(format!("tokenizer has {n} tokens, the model's embedding only {}", cfg.vocab_size)));
    }
    let mut added: BTreeMap<u32, bool> = BTreeMap::new();
    for a in json["added_tokens"].as_array().into_iter().flatten() {
        if let Some(id) = a["id"].as_u64() {
            added.insert(id as u32, a["special"].as_bool().unwrap_or(false));
        }
    }
    let mut tokens = Vec::with_capacity(cfg.vocab_size);
    let mut types = Vec::with_capacity(cfg.vocab_size);
    for id in 0..cfg.vocab_size as u32 {
        match tok.id_to_token(id) {
            Some(t) => {
                tokens.push(Value::String(t));
                types.push(Value::I32(match added.get(&id) {
                    Some(true) => TOKEN_CONTROL,
                    Some(false) => TOKEN_USER_DEFINED,
                    None => TOKEN_NORMAL,
                }));
            }
            // Rows the embedding has beyond the tokenizer (padding to a round size).
            None => {
                tokens.push(Value::String(format!("[PAD{id}]")));
                types.push(Value::I32(TOKEN_UNUSED));
            }
        }
    }
    let sp = tok.specials();
    let probe = tok.encode("a", true)?.ids;
    let add_bos = sp.bos.is_some() && probe.first() == sp.bos.as_ref() && probe.len() > 1;
    let mut md = vec![
        ("tokenizer.ggml.model".to_string(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".to_string(), Value::String(pre_name.into())),
        ("tokenizer.ggml.tokens".to_string(), Value::Array(tokens)),
        ("tokenizer.ggml.token_type".to_string(), Value::Array(types)),
        ("tokenizer.ggml.merges".to_string(), Value::Array(merges)),
    ];
    let eos = sp.eos.or(cfg.eos_token_ids.first().copied());
    for (key, id) in [
        ("tokenizer.ggml.bos_token_id", sp.bos.or(cfg.bos_token_id)),
        ("tokenizer.ggml.eos_token_id", eos),
        ("tokenizer.ggml.unknown_token_id", sp.unk),
        ("tokenizer.ggml.padding_token_id", sp.pad.or(cfg.pad_token_id)),
    ] {
        if let Some(id) = id {
            md.push((key.to_string(), Value::U32(id)));
        }
    }
    md.push(("tokenizer.ggml.add_bos_token".to_string(), Value::Bool(add_bos)));
    md.push(("tokenizer.ggml.add_eos_token".to_string(), Value::Bool(false)));
    if let Some(t) = tok.chat_template() {
        md.push(("tokenizer.chat_template".to_string(), Value::String(t.to_string())));
    }
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::gguf_llama::{hf_name, unpermute_rows};
    use candle_core::Device;

    #[test]
    fn names_and_rows_invert_the_reader() {
        for hf in [
            "model.embed_tokens.weight",
            "model.layers.3.self_attn.q_proj.weight",
            "model.layers.0.self_attn.k_proj.bias",
            "model.layers.11.mlp.down_proj.weight",
            "model.layers.2.post_attention_layernorm.weight",
            "model.norm.weight",
            "lm_head.weight",
        ] {
            assert_eq!(hf_name(&gguf_name(hf).unwrap()).as_deref(), Some(hf));
        }
        assert_eq!(gguf_name("model.layers.0.self_attn.rotary_emb.inv_freq"), None);
        let w = Tensor::arange(0f32, 48., &Device::Cpu).unwrap().reshape((8, 6)).unwrap();
        let back = unpermute_rows(&permute_rows(&w, 2).unwrap(), 2).unwrap();
        assert_eq!(back.to_vec2::<f32>().unwrap(), w.to_vec2::<f32>().unwrap());
        // Row 1 of head 0 (HF pair partner of row 3 = d/2 + 1) lands at GGUF row 2.
        let p = permute_rows(&w, 2).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(p[2], w.to_vec2::<f32>().unwrap()[1]);
        assert_eq!(p[3], w.to_vec2::<f32>().unwrap()[3]);
    }
}
