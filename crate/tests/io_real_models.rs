//! Manual checks against the real registry models, which are not in the repository. Run with
//! `--ignored` after pointing the variables at unpacked copies:
//! `WOTD_SMOLLM2_GGUF=<dir>/model.Q4_1.gguf`, `WOTD_MINILM_DIR=<dir with model.safetensors>`.

use std::path::PathBuf;
use wotd_native::io::{ModelFiles, Pooling, TokenizerSource, WeightFormat};

fn env_path(key: &str) -> Option<PathBuf> {
    let p = std::env::var_os(key).map(PathBuf::from);
    if p.is_none() {
        eprintln!("{key} not set; skipped");
    }
    p
}

#[test]
#[ignore]
fn smollm2_q4_1_gguf_loads_as_an_hf_llama() {
    let Some(path) = env_path("WOTD_SMOLLM2_GGUF") else { return };
    let t = std::time::Instant::now();
    let m = ModelFiles::open(&path).unwrap();
    assert_eq!(m.format, WeightFormat::Gguf);
    assert!(matches!(m.tokenizer, TokenizerSource::Gguf(_)));
    let c = &m.config;
    assert_eq!(c["hidden_size"], 576);
    assert_eq!(c["intermediate_size"], 1536);
    assert_eq!(c["num_hidden_layers"], 30);
    assert_eq!(c["num_attention_heads"], 9);
    assert_eq!(c["num_key_value_heads"], 3);
    assert_eq!(c["rope_theta"], 100000.0);
    assert_eq!(c["rms_norm_eps"], 1e-5);
    assert_eq!(c["max_position_embeddings"], 8192);
    assert_eq!(c["vocab_size"], 49152);
    assert_eq!(c["tie_word_embeddings"], true);
    assert_eq!((c["bos_token_id"].as_u64(), c["eos_token_id"].as_u64()), (Some(1), Some(2)));
    let w = m.load_weights().unwrap();
    assert_eq!(w.len(), 272);
    assert_eq!(w["model.embed_tokens.weight"].dims(), &[49152, 576]);
    assert_eq!(w["model.layers.29.self_attn.k_proj.weight"].dims(), &[192, 576]);
    assert!(!w.contains_key("lm_head.weight"));
    // Reference values from the `gguf` Python package's dequantize + the README's un-permutation.
    let q = &w["model.layers.0.self_attn.q_proj.weight"];
    let row = |r: usize| q.get(r).unwrap().narrow(0, 0, 4).unwrap().to_vec1::<f32>().unwrap();
    // (printed by numpy to 8 significant digits, hence the tolerance)
    let close = |a: Vec<f32>, b: [f32; 4]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-7);
    assert!(close(row(1), [-0.15917969, 0.39794922, -0.01989746, -1.2734375]), "{:?}", row(1));
    assert!(close(row(33), [-0.06280518, 0.14465332, 0.00634766, -0.40856934]), "{:?}", row(33));
    let e = w["model.embed_tokens.weight"].get(100).unwrap().narrow(0, 0, 4).unwrap().to_vec1::<f32>().unwrap();
    assert!(close(e.clone(), [0.01905251, -0.08437538, -0.16602898, -0.1007061]), "{e:?}");
    let params: usize = w.values().map(|t| t.elem_count()).sum();
    assert_eq!(params, 134_515_008);
    eprintln!("SmolLM2 GGUF opened and dequantized in {:?}", t.elapsed());
}

#[test]
#[ignore]
fn all_minilm_safetensors_dir_is_summarised_right() {
    let Some(dir) = env_path("WOTD_MINILM_DIR") else { return };
    let m = ModelFiles::open(&dir).unwrap();
    assert_eq!(m.format, WeightFormat::Safetensors);
    assert_eq!(m.pooling, Some(Pooling::Mean));
    assert!(m.normalize);
    assert_eq!(m.max_length, Some(256), "sentence_bert_config's limit, not the tokenizer file's 128");
    let w = m.load_weights().unwrap();
    assert_eq!(w.len(), 103, "104 tensors less the i64 position_ids buffer");
    let tok = m.load_tokenizer().unwrap();
    let short = tok.encode("hello world", true).unwrap();
    assert_eq!(short.ids, vec![101, 7592, 2088, 102], "no padding to 128");
    let long = tok.encode(&"word ".repeat(300), true).unwrap();
    assert_eq!((long.ids.len(), long.truncated), (256, true));
}
