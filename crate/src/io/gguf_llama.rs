//! The llama architecture in GGUF, seen as its Hugging Face checkpoint.
//!
//! llama.cpp's converter renames tensors and reorders the rows of `attn_q`/`attn_k` inside each
//! head so that its interleaved RoPE (pairs `2i, 2i+1`) computes what HF's `rotate_half` RoPE
//! (pairs `i, i + d/2`) computes on the original rows. Our decoders use HF's layout, so the
//! permutation is undone here: GGUF row `h*d + 2i` is HF row `h*d + i`, GGUF row `h*d + 2i + 1`
//! is HF row `h*d + d/2 + i`. Dequantized Q8_0/Q4_1 values are moved, never recomputed, so an
//! f32 GGUF loads bit-identical to the safetensors it came from.

use super::gguf::GgufFile;
use crate::error::{Result, WotdError};
use candle_core::Tensor;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// The HF name of a llama GGUF tensor, or `None` for a name outside the llama scheme.
pub fn hf_name(gguf_name: &str) -> Option<String> {
    let (stem, kind) = gguf_name.rsplit_once('.')?;
    if kind != "weight" && kind != "bias" {
        return None;
    }
    let top = match stem {
        "token_embd" => Some("model.embed_tokens"),
        "output_norm" => Some("model.norm"),
        "output" => Some("lm_head"),
        _ => None,
    };
    if let Some(t) = top {
        return Some(format!("{t}.{kind}"));
    }
    let rest = stem.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let hf = match part {
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{kind}"))
}

/// Undoes llama.cpp's per-head Q/K row interleaving. `w` is `[out, ...]` with `out = n_head * d`.
pub fn unpermute_rows(w: &Tensor, n_head: usize) -> candle_core::Result<Tensor> {
    let dims = w.dims().to_vec();
    let out = dims[0];
    let head_dim = out / n_head;
    let mut split = vec![n_head, head_dim / 2, 2];
    split.extend_from_slice(&dims[1..]);
    w.reshape(split)?.transpose(1, 2)?.contiguous()?.reshape(dims)
}

/// Head counts needed to undo the permutation, read from metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heads {
    pub n_head: usize,
    pub n_kv_head: usize,
}

fn heads(g: &GgufFile) -> Result<Heads> {
    let n_head = g
        .get_u64("llama.attention.head_count")?
        .ok_or_else(|| WotdError::corrupt(g.path(), "metadata has no llama.attention.head_count"))? as usize;
    let n_kv_head = g.get_u64("llama.attention.head_count_kv")?.map(|v| v as usize).unwrap_or(n_head);
    if n_head == 0 || n_kv_head == 0 {
        return Err(WotdError::corrupt(g.path(), "attention head count is 0"));
    }
    Ok(Heads { n_head, n_kv_head })
}

fn require_llama(g: &GgufFile) -> Result<()> {
    match g.architecture()? {
        "llama" => Ok(()),
        other => Err(WotdError::Unsupported(format!(
            "{}: GGUF architecture {other:?} (only llama GGUFs are mapped to Hugging Face names)",
            g.path().display()
        ))),
    }
}

/// Every tensor, dequantized to f32, under its HF name with Q/K in HF row order. Tensors outside
/// the llama scheme (e.g. `rope_freqs.weight`) keep their GGUF name rather than vanish. A tied
/// model gets no `lm_head.weight`, exactly like its HF checkpoint.
pub fn load_hf_weights(g: &GgufFile) -> Result<HashMap<String, Tensor>> {
    require_llama(g)?;
    let Heads { n_head, n_kv_head } = heads(g)?;
    let mut out = HashMap::new();
    for name in g.tensor_names() {
        let mut t = g.tensor_f32(name)?;
        let heads_here = if name.contains(".attn_q.") {
            Some(n_head)
        } else if name.contains(".attn_k.") {
            Some(n_kv_head)
        } else {
            None
        };
        if let Some(h) = heads_here {
            let rows = t.dims().first().copied().unwrap_or(0);
            if rows == 0 || rows % h != 0 || (rows / h) % 2 != 0 {
                return Err(WotdError::corrupt(
                    g.path(),
                    format!("tensor {name:?} has {rows} rows, not {h} heads of an even head size"),
                ));
            }
            t = unpermute_rows(&t, h)?;
        }
        out.insert(hf_name(name).unwrap_or_else(|| name.to_string()), t);
    }
    Ok(out)
}

/// An HF `config.json` for the model, from the `llama.*` and `tokenizer.ggml.*` metadata.
pub fn hf_config(g: &GgufFile) -> Result<Value> {
    require_llama(g)?;
    let need = |key: &str| -> Result<u64> {
        g.get_u64(key)?.ok_or_else(|| WotdError::corrupt(g.path(), format!("metadata has no {key}")))
    };
    let Heads { n_head, n_kv_head } = heads(g)?;
    let hidden = need("llama.embedding_length")?;
    let head_dim = g.get_u64("llama.attention.key_length")?.unwrap_or(hidden / n_head as u64);
    let vocab = match g.get_u64("llama.vocab_size")? {
        Some(v) => v,
        None => match g.get_str_array("tokenizer.ggml.tokens")? {
            Some(t) => t.len() as u64,
            None => g.tensor_info("token_embd.weight").map(|(_, d)| d[0] as u64).unwrap_or(0),
        },
    };
    if let Some(kind) = g.get_str("llama.rope.scaling.type")? {
        if kind != "none" {
            return Err(WotdError::Unsupported(format!("{}: rope scaling {kind:?}", g.path().display())));
        }
    }
    let mut c = Map::new();
    c.insert("architectures".into(), json!(["LlamaForCausalLM"]));
    c.insert("model_type".into(), json!("llama"));
    c.insert("hidden_size".into(), json!(hidden));
    c.insert("intermediate_size".into(), json!(need("llama.feed_forward_length")?));
    c.insert("num_hidden_layers".into(), json!(need("llama.block_count")?));
    c.insert("num_attention_heads".into(), json!(n_head));
    c.insert("num_key_value_heads".into(), json!(n_kv_head));
    c.insert("head_dim".into(), json!(head_dim));
    c.insert("hidden_act".into(), json!("silu"));
    c.insert(
        "rms_norm_eps".into(),
        json!(g.get_f32_decimal("llama.attention.layer_norm_rms_epsilon")?.unwrap_or(1e-5)),
    );
    c.insert("rope_theta".into(), json!(g.get_f32_decimal("llama.rope.freq_base")?.unwrap_or(10000.0)));
    c.insert("rope_scaling".into(), Value::Null);
    c.insert("max_position_embeddings".into(), json!(need("llama.context_length")?));
    c.insert("vocab_size".into(), json!(vocab));
    c.insert("tie_word_embeddings".into(), json!(!g.has_tensor("output.weight")));
    c.insert("attention_bias".into(), json!(g.has_tensor("blk.0.attn_q.bias")));
    c.insert("mlp_bias".into(), json!(false));
    // The weights are handed out dequantized, so that is their dtype as far as callers know.
    c.insert("torch_dtype".into(), json!("float32"));
    for (key, hf) in [
        ("tokenizer.ggml.bos_token_id", "bos_token_id"),
        ("tokenizer.ggml.eos_token_id", "eos_token_id"),
        ("tokenizer.ggml.padding_token_id", "pad_token_id"),
    ] {
        if let Some(id) = g.get_u64(key)? {
            c.insert(hf.into(), json!(id));
        }
    }
    Ok(Value::Object(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn names_map_like_the_hf_converter() {
        assert_eq!(hf_name("token_embd.weight").as_deref(), Some("model.embed_tokens.weight"));
        assert_eq!(hf_name("blk.12.attn_q.weight").as_deref(), Some("model.layers.12.self_attn.q_proj.weight"));
        assert_eq!(hf_name("blk.0.ffn_down.weight").as_deref(), Some("model.layers.0.mlp.down_proj.weight"));
        assert_eq!(hf_name("blk.3.ffn_norm.weight").as_deref(), Some("model.layers.3.post_attention_layernorm.weight"));
        assert_eq!(hf_name("output_norm.weight").as_deref(), Some("model.norm.weight"));
        assert_eq!(hf_name("output.weight").as_deref(), Some("lm_head.weight"));
        assert_eq!(hf_name("rope_freqs.weight"), None);
        assert_eq!(hf_name("blk.x.attn_q.weight"), None);
    }

    #[test]
    fn unpermute_inverts_the_converter_permutation() {
        // 2 heads of size 4, 3 input columns; row r holds r*10 + column.
        let (n_head, hd, cols) = (2usize, 4usize, 3usize);
        let hf: Vec<f32> = (0..n_head * hd).flat_map(|r| (0..cols).map(move |c| (r * 10 + c) as f32)).collect();
        // What convert_hf_to_gguf.py writes: new row 2i = old row i, new row 2i+1 = old row i + d/2.
        let mut gguf = Vec::new();
        for h in 0..n_head {
            for i in 0..hd / 2 {
                for src in [h * hd + i, h * hd + hd / 2 + i] {
                    gguf.extend_from_slice(&hf[src * cols..(src + 1) * cols]);
                }
            }
        }
        let t = Tensor::from_vec(gguf, (n_head * hd, cols), &Device::Cpu).unwrap();
        let back = unpermute_rows(&t, n_head).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(back, hf);
    }
}
