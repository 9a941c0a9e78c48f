//! Random weights under a decoder's checkpoint names and shapes: a stand-in for a checkpoint
//! that cannot be had (Phi-3.5-mini's 7.6 GB are not reachable offline), so what training the
//! full profile costs in time and memory can be measured without them. Speed and memory
//! depend on shapes only; the values just need to keep activations in a sane range.

use super::decoder::{Architecture, DecoderConfig};
use crate::error::Result;
use crate::random::SeededRng;
use candle_core::{Device, Tensor};
use std::collections::HashMap;

/// Every tensor a checkpoint of `cfg` holds, under its Hugging Face name, in model order.
pub fn decoder_weight_shapes(cfg: &DecoderConfig) -> Vec<(String, Vec<usize>)> {
    let (h, i, v) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size);
    let q = cfg.num_attention_heads * cfg.head_dim;
    let kv = cfg.num_key_value_heads * cfg.head_dim;
    let mut out = vec![("model.embed_tokens.weight".to_string(), vec![v, h])];
    for l in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{l}");
        let mut add = |name: &str, shape: Vec<usize>| out.push((format!("{p}.{name}"), shape));
        add("input_layernorm.weight", vec![h]);
        match cfg.architecture {
            Architecture::Llama => {
                for (name, rows) in [("q_proj", q), ("k_proj", kv), ("v_proj", kv)] {
                    add(&format!("self_attn.{name}.weight"), vec![rows, h]);
                    if cfg.attention_bias {
                        add(&format!("self_attn.{name}.bias"), vec![rows]);
                    }
                }
                add("self_attn.o_proj.weight", vec![h, q]);
                if cfg.attention_bias {
                    add("self_attn.o_proj.bias", vec![h]);
                }
                add("mlp.gate_proj.weight", vec![i, h]);
                add("mlp.up_proj.weight", vec![i, h]);
            }
            Architecture::Phi3 => {
                add("self_attn.qkv_proj.weight", vec![q + 2 * kv, h]);
                add("self_attn.o_proj.weight", vec![h, q]);
                add("mlp.gate_up_proj.weight", vec![2 * i, h]);
            }
        }
        add("mlp.down_proj.weight", vec![h, i]);
        add("post_attention_layernorm.weight", vec![h]);
    }
    out.push(("model.norm.weight".to_string(), vec![h]));
    if !cfg.tie_word_embeddings {
        out.push(("lm_head.weight".to_string(), vec![v, h]));
    }
    out
}

/// How many parameters a checkpoint of `cfg` has.
pub fn decoder_parameter_count(cfg: &DecoderConfig) -> usize {
    decoder_weight_shapes(cfg).iter().map(|(_, s)| s.iter().product::<usize>()).sum()
}

/// f32 weights for every tensor of [`decoder_weight_shapes`]: norms at 1, biases at 0, the rest
/// uniform with standard deviation `std` (transformers' `initializer_range`, 0.02 for both
/// families). Deterministic in `seed`; each tensor has its own stream, so one tensor's values
/// do not depend on which others exist.
///
/// Uniform rather than normal: 3.8 billion draws are the slow part of building Phi-3.5-mini's
/// stand-in, and a uniform draw is one generator call.
pub fn random_decoder_weights(cfg: &DecoderConfig, std: f64, seed: u64, device: &Device) -> Result<HashMap<String, Tensor>> {
    let bound = (std * 3f64.sqrt()) as f32;
    let mut out = HashMap::new();
    for (k, (name, shape)) in decoder_weight_shapes(cfg).into_iter().enumerate() {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = if name.ends_with("norm.weight") {
            vec![1.0; n]
        } else if name.ends_with(".bias") {
            vec![0.0; n]
        } else {
            let mut rng = SeededRng::derive(seed, k as u64);
            // Two 32-bit draws per generator call.
            let mut v = Vec::with_capacity(n);
            while v.len() < n {
                let x = rng.next_u64();
                for half in [x as u32, (x >> 32) as u32] {
                    if v.len() < n {
                        v.push(((half >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0) * bound);
                    }
                }
            }
            v
        };
        out.insert(name, Tensor::from_vec(values, shape, device)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::CausalLm;
    use crate::io::peft::LoraConfig;
    use std::path::Path;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/fixtures").join(name)
    }

    fn config(name: &str) -> (serde_json::Value, DecoderConfig) {
        let text = std::fs::read_to_string(fixture(name).join("config.json")).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let cfg = DecoderConfig::from_hf(&json).unwrap();
        (json, cfg)
    }

    #[test]
    fn shapes_are_exactly_the_fixture_checkpoints_tensors() {
        for name in ["llama", "phi3"] {
            let (_, cfg) = config(name);
            let st = safetensors::SafeTensors::deserialize(&std::fs::read(fixture(name).join("model.safetensors")).unwrap())
                .unwrap()
                .tensors()
                .into_iter()
                .map(|(n, t)| (n, t.shape().to_vec()))
                .collect::<HashMap<_, _>>();
            let ours: HashMap<String, Vec<usize>> = decoder_weight_shapes(&cfg).into_iter().collect();
            // A tied checkpoint may also store lm_head.weight; the loader ignores it.
            let theirs: HashMap<String, Vec<usize>> =
                st.into_iter().filter(|(n, _)| !(cfg.tie_word_embeddings && n == "lm_head.weight")).collect();
            assert_eq!(ours, theirs, "{name}");
            assert_eq!(decoder_parameter_count(&cfg), theirs.values().map(|s| s.iter().product::<usize>()).sum::<usize>());
        }
    }

    #[test]
    fn random_weights_build_a_model_that_trains_and_are_seeded() -> Result<()> {
        let (json, cfg) = config("phi3");
        let w = random_decoder_weights(&cfg, 0.02, 5, &Device::Cpu)?;
        let again = random_decoder_weights(&cfg, 0.02, 5, &Device::Cpu)?;
        let other = random_decoder_weights(&cfg, 0.02, 6, &Device::Cpu)?;
        let q = "model.layers.0.self_attn.qkv_proj.weight";
        let vals = w[q].flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(vals, again[q].flatten_all()?.to_vec1::<f32>()?);
        assert_ne!(vals, other[q].flatten_all()?.to_vec1::<f32>()?);
        let n = vals.len() as f64;
        let mean = vals.iter().map(|&x| x as f64).sum::<f64>() / n;
        let sd = (vals.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!(mean.abs() < 2e-3 && (sd - 0.02).abs() < 2e-3, "mean {mean}, sd {sd}");
        assert!(w["model.norm.weight"].flatten_all()?.to_vec1::<f32>()?.iter().all(|&x| x == 1.0));

        let lora = LoraConfig { r: 4, alpha: 8.0, dropout: 0.0, target_modules: vec![], use_rslora: false, seed: 1 };
        let m = CausalLm::from_parts(&json, w, None, Some(lora))?;
        let ids = Tensor::new(&[[1u32, 7, 9, 11]], &Device::Cpu)?;
        let logits = m.forward(&ids, None, None)?;
        assert_eq!(logits.dims(), [1, 4, cfg.vocab_size]);
        let grads = logits.sqr()?.sum_all()?.backward()?;
        assert!(m.lora_vars().iter().all(|(_, v)| grads.get(v.as_tensor()).is_some()));
        Ok(())
    }
}
