//! Export of a merged model: GGUF (F32 and Q8_0) read back through io's GGUF loader, and the
//! safetensors directory read back through the ordinary loader.

mod decoder_support;

use candle_core::quantized::GgmlDType;
use candle_core::Tensor;
use decoder_support::*;
use std::path::PathBuf;
use wotd_native::generate::merge::{merge_and_save, MergedFormat};
use wotd_native::generate::{EngineOptions, PromptVocab, Weights, WordGenerator};
use wotd_native::export::gguf::{export_causal_lm, GgufExportOptions};
use wotd_native::io::{GgufFile, ResolveOptions};
use wotd_native::models::CausalLm;

/// The Q8_0-vs-f32 logit tolerance the fixture generator states for this model
/// (`gguf_reference.json`: four times the error it measured for its own Q8_0 file).
fn q8_tolerance() -> f32 {
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixture("llama").join("gguf_reference.json")).unwrap()).unwrap();
    r["tolerances"]["q8_0_vs_f32_reference"]["atol"].as_f64().unwrap() as f32
}

fn merged() -> CausalLm {
    let mut m = model("llama");
    m.load_adapter(&fixture("llama").join("lora")).unwrap();
    assert!(m.merge_adapter().unwrap() > 0);
    m
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wotd-export-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn ids(m: &CausalLm) -> Tensor {
    let text = "<|im_start|>user\nWords for semantic ID [3,*,*,9]:<|im_end|>\n<|im_start|>assistant\nember, solace";
    let ids = m.tokenizer().unwrap().encode(text, false).unwrap().ids;
    Tensor::new(ids.as_slice(), m.device()).unwrap().unsqueeze(0).unwrap()
}

#[test]
fn f32_gguf_round_trip_is_exact_and_keeps_tokenizer_and_config() {
    let m = merged();
    let dir = tmp("f32");
    let path = dir.join("merged-f32.gguf");
    let r = export_causal_lm(&m, &path, &GgufExportOptions { dtype: GgmlDType::F32, name: Some("t".into()) }).unwrap();
    assert_eq!(r.dtypes.get("F32"), Some(&r.tensors));
    // Tied: no output.weight; 2 layers x 9 tensors + embeddings + final norm.
    assert_eq!(r.tensors, 2 * 9 + 2);
    let back = CausalLm::load_path(&path, None).unwrap();
    assert_eq!(back.config(), m.config(), "config derived from the metadata equals the original");
    let x = ids(&m);
    let want = m.forward_no_grad(&x, None, None).unwrap();
    assert_close(&back.forward_no_grad(&x, None, None).unwrap(), &want, 1e-5, 0.0, "f32 GGUF logits");
    let (a, b) = (m.tokenizer().unwrap(), back.tokenizer().unwrap());
    for text in ["<|im_start|>user\nhi<|im_end|>", "lucid, serene, o'clock 2024", " spaced  out\n"] {
        assert_eq!(a.encode(text, false).unwrap().ids, b.encode(text, false).unwrap().ids, "{text:?}");
    }
    assert_eq!(a.chat_template(), b.chat_template());
    assert_eq!(a.specials(), b.specials());
    let g = GgufFile::open(&path).unwrap();
    assert_eq!(g.get_str("general.name").unwrap(), Some("t"));
    assert_eq!(g.get_str("tokenizer.ggml.pre").unwrap(), Some("smollm"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn q8_0_gguf_round_trip_stays_within_quantization_tolerance() {
    let m = merged();
    let dir = tmp("q8");
    let path = dir.join("merged-q8_0.gguf");
    let r = export_causal_lm(&m, &path, &GgufExportOptions::default()).unwrap();
    // Every matrix quantized (7 per layer + embeddings), norms in f32.
    assert_eq!(r.dtypes.get("Q8_0"), Some(&(2 * 7 + 1)));
    assert_eq!(r.dtypes.get("F32"), Some(&(2 * 2 + 1)));
    let g = GgufFile::open(&path).unwrap();
    assert_eq!(g.get_u64("general.file_type").unwrap(), Some(7));
    assert_eq!(g.tensor_info("blk.0.attn_q.weight").unwrap().0, GgmlDType::Q8_0);
    let back = CausalLm::load_path(&path, None).unwrap();
    let x = ids(&m);
    let want = m.forward_no_grad(&x, None, None).unwrap();
    let got = back.forward_no_grad(&x, None, None).unwrap();
    let scale = want.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    let diff = max_abs_diff(&got, &want);
    eprintln!("Q8_0 GGUF round trip: max |diff| {diff:.5} of max |logit| {scale:.3}");
    assert!(diff <= q8_tolerance(), "{diff} vs scale {scale}");
    // Against the fixture's own Q8_0 GGUF (written by llama.cpp's gguf-py from the base, no
    // adapter): our quantizer stores the same values for the same weights.
    let base = CausalLm::load_path(&fixture("llama"), None).unwrap();
    let ours = dir.join("base-q8_0.gguf");
    export_causal_lm(&base, &ours, &GgufExportOptions::default()).unwrap();
    let theirs = GgufFile::open(&fixture("llama").join("model-q8_0.gguf")).unwrap();
    let mine = GgufFile::open(&ours).unwrap();
    for name in ["token_embd.weight", "blk.0.attn_q.weight", "blk.1.attn_k.weight", "blk.1.ffn_down.weight"] {
        let d = max_abs_diff(&mine.tensor_f32(name).unwrap(), &theirs.tensor_f32(name).unwrap());
        assert!(d < 1e-6, "{name}: {d}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn generator_exports_from_quantized_weights_too() {
    let mut m = model("llama");
    m.load_adapter(&fixture("llama").join("lora")).unwrap();
    let g = WordGenerator::from_model(m, &EngineOptions { merge: true, weights: Weights::Q8_0, prompt_vocab: PromptVocab::Codes }).unwrap();
    let dir = tmp("fromq");
    let path = dir.join("m.gguf");
    g.export_gguf(&path, &GgufExportOptions::default()).unwrap();
    let back = CausalLm::load_path(&path, None).unwrap();
    let want = merged();
    let x = ids(&want);
    let diff = max_abs_diff(&back.forward_no_grad(&x, None, None).unwrap(), &want.forward_no_grad(&x, None, None).unwrap());
    assert!(diff <= q8_tolerance(), "{diff}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn merge_and_save_writes_a_loadable_model_in_either_format() {
    let dir = tmp("merge");
    let base = fixture("llama").display().to_string();
    let adapter = fixture("llama").join("lora");
    let out = dir.join("merged");
    let r = merge_and_save(&base, &ResolveOptions::default(), &adapter, &out, &MergedFormat::Safetensors).unwrap();
    assert_eq!((r.format, r.merged_modules), ("safetensors", 14));
    let back = CausalLm::load_path(&out, None).unwrap();
    let want = merged();
    let x = ids(&want);
    assert_close(&back.forward_no_grad(&x, None, None).unwrap(), &want.forward_no_grad(&x, None, None).unwrap(), 1e-6, 0.0, "merged safetensors");
    assert!(back.tokenizer().unwrap().chat_template().is_some());
    let gguf = dir.join("merged.gguf");
    let r = merge_and_save(&base, &ResolveOptions::default(), &adapter, &gguf, &MergedFormat::Gguf(GgufExportOptions::default())).unwrap();
    assert_eq!(r.format, "gguf");
    assert!(r.bytes > 0 && gguf.is_file());
    // A GGUF base (tokenizer inside the file) merges into a directory with a tokenizer.json.
    let out2 = dir.join("merged-from-gguf");
    merge_and_save(&gguf.display().to_string(), &ResolveOptions::default(), &adapter, &out2, &MergedFormat::Safetensors).unwrap();
    let again = CausalLm::load_path(&out2, None).unwrap();
    assert_eq!(again.tokenizer().unwrap().encode("lucid, serene", false).unwrap().ids, want.tokenizer().unwrap().encode("lucid, serene", false).unwrap().ids);
    std::fs::remove_dir_all(&dir).ok();
}
