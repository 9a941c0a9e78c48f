//! GGUF reading: round trips through candle's writer, damaged files, and the llama fixture,
//! whose GGUF must load to exactly the tensors and config of its safetensors twin.

mod io_support;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use io_support::{fixture, max_abs_diff, Scratch};
use std::collections::HashMap;
use std::path::Path;
use wotd_native::io::gguf_llama::{hf_config, load_hf_weights};
use wotd_native::io::{load_checkpoint, GgufFile, IntegerTensors};

fn ramp(rows: usize, cols: usize, seed: f32) -> Tensor {
    let v: Vec<f32> = (0..rows * cols).map(|i| (i as f32 * 0.37 + seed).sin() * 2.0).collect();
    Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
}

fn write_gguf(path: &Path, meta: &[(&str, Value)], tensors: &[(&str, QTensor)]) {
    let mut f = std::fs::File::create(path).unwrap();
    let meta: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (*k, v)).collect();
    let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (*k, v)).collect();
    gguf_file::write(&mut f, &meta, &tensors).unwrap();
}

/// A small GGUF of every storage type we promise to read. The f32 tensor is last and a multiple
/// of 32 bytes, so the file ends exactly where its data ends (no trailing padding).
fn sample_gguf(path: &Path) -> HashMap<&'static str, QTensor> {
    let q = |t: &Tensor, d| QTensor::quantize(t, d).unwrap();
    let tensors = vec![
        ("q4_1", q(&ramp(3, 64, 0.1), GgmlDType::Q4_1)),
        ("q8_0", q(&ramp(2, 96, 0.2), GgmlDType::Q8_0)),
        ("f16", q(&ramp(5, 7, 0.3), GgmlDType::F16)),
        ("f32", q(&ramp(4, 64, 0.4), GgmlDType::F32)),
    ];
    let meta = vec![
        ("general.architecture", Value::String("test".into())),
        ("test.count", Value::U32(7)),
        ("test.eps", Value::F32(1e-5)),
        ("test.flag", Value::Bool(true)),
        ("test.words", Value::Array(vec![Value::String("a".into()), Value::String("b c".into())])),
        ("test.ints", Value::Array(vec![Value::I32(1), Value::I32(-3)])),
    ];
    write_gguf(path, &meta, &tensors);
    tensors.into_iter().collect()
}

#[test]
fn written_gguf_round_trips_every_type() {
    let dir = Scratch::new("gguf-rt");
    let path = dir.join("x.gguf");
    let written = sample_gguf(&path);
    let g = GgufFile::open(&path).unwrap();
    assert_eq!(g.version(), 2);
    assert_eq!(g.tensor_names(), vec!["f16", "f32", "q4_1", "q8_0"]);
    assert_eq!(g.architecture().unwrap(), "test");
    assert_eq!(g.get_u64("test.count").unwrap(), Some(7));
    assert_eq!(g.get_f32_decimal("test.eps").unwrap(), Some(1e-5));
    assert_eq!(g.get_bool("test.flag").unwrap(), Some(true));
    assert_eq!(g.get_str_array("test.words").unwrap(), Some(vec!["a", "b c"]));
    assert_eq!(g.get_int_array("test.ints").unwrap(), Some(vec![1, -3]));
    assert_eq!(g.get_u64("test.missing").unwrap(), None);
    // A key of the wrong type is a damaged file, not a silent default.
    assert_eq!(g.get_str("test.count").unwrap_err().code(), "CORRUPT_FILE");
    assert_eq!(g.dtype_counts().get("Q4_1"), Some(&1));

    for (name, q) in &written {
        let got = g.tensor_f32(name).unwrap();
        // Same bytes, same decoder: exactly what candle dequantizes from the tensor it wrote.
        assert_eq!(max_abs_diff(&got, &q.dequantize(&Device::Cpu).unwrap()), 0.0, "{name}");
        assert_eq!(got.dims(), q.shape().dims(), "{name}");
    }
    // And close to the original values, within each format's precision.
    for (name, seed, rows, cols, tol) in
        [("f32", 0.4, 4, 64, 0.0), ("f16", 0.3, 5, 7, 2e-3), ("q8_0", 0.2, 2, 96, 0.02), ("q4_1", 0.1, 3, 64, 0.2)]
    {
        let d = max_abs_diff(&g.tensor_f32(name).unwrap(), &ramp(rows, cols, seed));
        assert!(d <= tol, "{name}: max diff {d} > {tol}");
    }
}

#[test]
fn truncated_gguf_is_corrupt_at_every_cut() {
    let dir = Scratch::new("gguf-trunc");
    let path = dir.join("x.gguf");
    sample_gguf(&path);
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.join("cut.gguf");
    let mut points: Vec<usize> = (0..bytes.len().min(600)).step_by(3).collect();
    points.extend((600..bytes.len()).step_by(97));
    points.push(bytes.len() - 1);
    for n in points {
        std::fs::write(&cut, &bytes[..n]).unwrap();
        // A header that parses may still lack tensor data: either step must report it.
        let r = GgufFile::open(&cut).and_then(|g| g.load_all_f32());
        let e = r.expect_err(&format!("file cut at {n} of {} must not load", bytes.len()));
        assert_eq!(e.code(), "CORRUPT_FILE", "cut at {n}: {e}");
        assert!(e.to_string().contains("cut.gguf"), "{e}");
    }
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    let e = GgufFile::open(&cut).unwrap_err();
    assert!(e.to_string().contains("truncated"), "{e}");
}

#[test]
fn garbled_gguf_is_an_error_never_a_panic() {
    let dir = Scratch::new("gguf-garble");
    let path = dir.join("x.gguf");
    sample_gguf(&path);
    let bytes = std::fs::read(&path).unwrap();
    let bad = dir.join("bad.gguf");

    let mut b = bytes.clone();
    b[..4].copy_from_slice(b"NOPE");
    std::fs::write(&bad, &b).unwrap();
    let e = GgufFile::open(&bad).unwrap_err();
    assert_eq!(e.code(), "CORRUPT_FILE");
    assert!(e.to_string().contains("not a GGUF file"), "{e}");

    // Tensor count of 2^40: must be refused before anything is allocated for it.
    let mut b = bytes.clone();
    b[8..16].copy_from_slice(&(1u64 << 40).to_le_bytes());
    std::fs::write(&bad, &b).unwrap();
    assert_eq!(GgufFile::open(&bad).unwrap_err().code(), "CORRUPT_FILE");

    // Deterministic byte flips all over the header: any outcome but a panic or a wrong code.
    let header_end = 400.min(bytes.len());
    let mut state = 0x2545F491u32;
    for _ in 0..300 {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let mut b = bytes.clone();
        let at = (state as usize) % header_end;
        b[at] ^= (state >> 24) as u8 | 1;
        std::fs::write(&bad, &b).unwrap();
        if let Err(e) = GgufFile::open(&bad).and_then(|g| g.load_all_f32()) {
            assert!(matches!(e.code(), "CORRUPT_FILE" | "UNSUPPORTED"), "flip at {at}: {e}");
        }
    }

    // An alignment of 0 makes candle divide by zero: the panic must come back as an error.
    let t = QTensor::quantize(&ramp(1, 32, 0.0), GgmlDType::F32).unwrap();
    write_gguf(&bad, &[("general.alignment", Value::U32(0))], &[("t", t)]);
    let e = GgufFile::open(&bad).unwrap_err();
    assert_eq!(e.code(), "CORRUPT_FILE", "{e}");
}

/// What convert_hf_to_gguf.py does to q/k rows: new row 2i = old row i, 2i+1 = old row i + d/2.
fn permute_like_llama_cpp(w: &Tensor, n_head: usize) -> Tensor {
    let (rows, cols) = w.dims2().unwrap();
    let hd = rows / n_head;
    let order: Vec<u32> = (0..n_head)
        .flat_map(|h| (0..hd / 2).flat_map(move |i| [(h * hd + i) as u32, (h * hd + hd / 2 + i) as u32]))
        .collect();
    let idx = Tensor::from_vec(order, rows, &Device::Cpu).unwrap();
    let out = w.index_select(&idx, 0).unwrap();
    assert_eq!(out.dims2().unwrap(), (rows, cols));
    out
}

#[test]
fn llama_gguf_written_here_maps_back_to_hf_names_and_rows() {
    let (hidden, heads, kv, ffn, vocab) = (64usize, 4usize, 2usize, 96usize, 40usize);
    let hd = hidden / heads;
    let mut hf: HashMap<String, Tensor> = HashMap::new();
    let mut s = 0.0;
    let mut next = |r, c| {
        s += 1.0;
        ramp(r, c, s)
    };
    hf.insert("model.embed_tokens.weight".into(), next(vocab, hidden));
    hf.insert("lm_head.weight".into(), next(vocab, hidden));
    hf.insert("model.norm.weight".into(), next(1, hidden).squeeze(0).unwrap());
    let p = "model.layers.0.";
    for (name, r, c) in [
        ("self_attn.q_proj.weight", hidden, hidden),
        ("self_attn.k_proj.weight", kv * hd, hidden),
        ("self_attn.v_proj.weight", kv * hd, hidden),
        ("self_attn.o_proj.weight", hidden, hidden),
        ("mlp.gate_proj.weight", ffn, hidden),
        ("mlp.up_proj.weight", ffn, hidden),
        ("mlp.down_proj.weight", hidden, ffn),
    ] {
        hf.insert(format!("{p}{name}"), next(r, c));
    }
    hf.insert(format!("{p}input_layernorm.weight"), next(1, hidden).squeeze(0).unwrap());
    hf.insert(format!("{p}post_attention_layernorm.weight"), next(1, hidden).squeeze(0).unwrap());

    let f32q = |t: &Tensor| QTensor::quantize(t, GgmlDType::F32).unwrap();
    let g = |n: &str| &hf[n];
    let tensors = vec![
        ("token_embd.weight", f32q(g("model.embed_tokens.weight"))),
        ("output.weight", f32q(g("lm_head.weight"))),
        ("output_norm.weight", f32q(g("model.norm.weight"))),
        ("blk.0.attn_norm.weight", f32q(&hf[&format!("{p}input_layernorm.weight")])),
        ("blk.0.ffn_norm.weight", f32q(&hf[&format!("{p}post_attention_layernorm.weight")])),
        ("blk.0.attn_q.weight", f32q(&permute_like_llama_cpp(&hf[&format!("{p}self_attn.q_proj.weight")], heads))),
        ("blk.0.attn_k.weight", f32q(&permute_like_llama_cpp(&hf[&format!("{p}self_attn.k_proj.weight")], kv))),
        ("blk.0.attn_v.weight", f32q(&hf[&format!("{p}self_attn.v_proj.weight")])),
        ("blk.0.attn_output.weight", f32q(&hf[&format!("{p}self_attn.o_proj.weight")])),
        ("blk.0.ffn_gate.weight", f32q(&hf[&format!("{p}mlp.gate_proj.weight")])),
        ("blk.0.ffn_up.weight", f32q(&hf[&format!("{p}mlp.up_proj.weight")])),
        ("blk.0.ffn_down.weight", f32q(&hf[&format!("{p}mlp.down_proj.weight")])),
    ];
    let meta = vec![
        ("general.architecture", Value::String("llama".into())),
        ("llama.context_length", Value::U32(256)),
        ("llama.embedding_length", Value::U32(hidden as u32)),
        ("llama.block_count", Value::U32(1)),
        ("llama.feed_forward_length", Value::U32(ffn as u32)),
        ("llama.attention.head_count", Value::U32(heads as u32)),
        ("llama.attention.head_count_kv", Value::U32(kv as u32)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-6)),
        ("llama.rope.freq_base", Value::F32(100000.0)),
        ("tokenizer.ggml.bos_token_id", Value::U32(1)),
        ("tokenizer.ggml.eos_token_id", Value::U32(2)),
    ];
    let dir = Scratch::new("gguf-llama");
    let path = dir.join("m.gguf");
    write_gguf(&path, &meta, &tensors);

    let gg = GgufFile::open(&path).unwrap();
    let loaded = load_hf_weights(&gg).unwrap();
    let mut a: Vec<_> = loaded.keys().cloned().collect();
    let mut b: Vec<_> = hf.keys().cloned().collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    for (k, t) in &hf {
        assert_eq!(max_abs_diff(&loaded[k], t), 0.0, "{k}");
    }

    let c = hf_config(&gg).unwrap();
    assert_eq!(c["tie_word_embeddings"], false, "output.weight present means untied");
    assert_eq!(c["num_key_value_heads"], 2);
    assert_eq!(c["head_dim"], 16);
    assert_eq!(c["rms_norm_eps"], 1e-6);
    assert_eq!(c["rope_theta"], 100000.0);
    // No vocab_size key and no token list: taken from the embedding's rows.
    assert_eq!(c["vocab_size"], vocab);
    assert_eq!(c["bos_token_id"], 1);
    assert!(c.get("pad_token_id").is_none());
}

#[test]
fn non_llama_gguf_is_unsupported_for_hf_mapping() {
    let dir = Scratch::new("gguf-arch");
    let path = dir.join("x.gguf");
    sample_gguf(&path);
    let g = GgufFile::open(&path).unwrap();
    assert_eq!(load_hf_weights(&g).unwrap_err().code(), "UNSUPPORTED");
    assert_eq!(hf_config(&g).unwrap_err().code(), "UNSUPPORTED");
}

#[test]
fn fixture_f32_gguf_equals_its_safetensors_exactly() {
    let dir = fixture("llama");
    let st = load_checkpoint(&dir, IntegerTensors::Skip).unwrap();
    let g = GgufFile::open(&dir.join("model-f32.gguf")).unwrap();
    let gg = load_hf_weights(&g).unwrap();
    let mut a: Vec<_> = st.keys().collect();
    let mut b: Vec<_> = gg.keys().collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "same tensor names");
    for (k, t) in &st {
        assert_eq!(max_abs_diff(t, &gg[k]), 0.0, "{k}");
    }
}

#[test]
fn fixture_q8_gguf_is_close_to_its_safetensors() {
    let dir = fixture("llama");
    let st = load_checkpoint(&dir, IntegerTensors::Skip).unwrap();
    let gg = load_hf_weights(&GgufFile::open(&dir.join("model-q8_0.gguf")).unwrap()).unwrap();
    assert_eq!(st.len(), gg.len());
    for (k, t) in &st {
        let d = max_abs_diff(t, &gg[k]);
        let scale = t.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        // Q8_0 keeps each block to 1/127 of its largest magnitude; 1-D norms stay f32.
        assert!(d <= scale / 127.0 + 1e-6, "{k}: {d} vs scale {scale}");
    }
}

#[test]
fn fixture_gguf_config_matches_config_json() {
    let dir = fixture("llama");
    let want: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let got = hf_config(&GgufFile::open(&dir.join("model-f32.gguf")).unwrap()).unwrap();
    for key in [
        "architectures",
        "model_type",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "hidden_act",
        "rms_norm_eps",
        "rope_theta",
        "rope_scaling",
        "max_position_embeddings",
        "vocab_size",
        "tie_word_embeddings",
        "attention_bias",
        "mlp_bias",
        "bos_token_id",
        "eos_token_id",
        "pad_token_id",
    ] {
        assert_eq!(got.get(key), want.get(key), "{key}");
    }
}
