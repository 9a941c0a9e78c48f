//! Safetensors loading: single vs sharded, dtype conversion, and damaged files.

mod io_support;

use candle_core::{DType, Device, Tensor};
use io_support::{fixture, Scratch};
use std::collections::HashMap;
use std::path::Path;
use wotd_native::io::{load_checkpoint, load_safetensors, IntegerTensors};
use wotd_native::WotdError;

fn sample() -> HashMap<String, Tensor> {
    let dev = Device::Cpu;
    let mut m = HashMap::new();
    m.insert("encoder.a.weight".to_string(), Tensor::arange(0f32, 12., &dev).unwrap().reshape((3, 4)).unwrap());
    m.insert("encoder.b.bias".to_string(), Tensor::new(&[0.5f32, -1.0, 2.0, 1e-3, 7.0], &dev).unwrap());
    m.insert("embeddings.position_ids".to_string(), Tensor::new(&[[0i64, 1, 2, 3, 4, 5]], &dev).unwrap());
    m
}

fn save(path: &Path, tensors: &[(&str, &Tensor)]) {
    let map: HashMap<String, Tensor> = tensors.iter().map(|(k, v)| (k.to_string(), (*v).clone())).collect();
    candle_core::safetensors::save(&map, path).unwrap();
}

fn assert_same(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>) {
    let mut ka: Vec<_> = a.keys().collect();
    let mut kb: Vec<_> = b.keys().collect();
    ka.sort();
    kb.sort();
    assert_eq!(ka, kb);
    for (k, t) in a {
        let u = &b[k];
        assert_eq!(t.dtype(), u.dtype(), "{k}");
        assert_eq!(t.dims(), u.dims(), "{k}");
        let d = t.to_dtype(DType::F64).unwrap().sub(&u.to_dtype(DType::F64).unwrap()).unwrap().abs().unwrap();
        assert_eq!(d.flatten_all().unwrap().max(0).unwrap().to_scalar::<f64>().unwrap(), 0.0, "{k}");
    }
}

fn expect_corrupt(r: wotd_native::Result<HashMap<String, Tensor>>, fragment: &str) -> String {
    let e = r.expect_err("damaged file must not load");
    assert_eq!(e.code(), "CORRUPT_FILE", "{e}");
    let msg = e.to_string();
    assert!(msg.contains(fragment), "message {msg:?} should mention {fragment:?}");
    msg
}

#[test]
fn single_and_sharded_checkpoints_load_the_same_tensors() {
    let t = sample();
    let single = Scratch::new("st-single");
    save(&single.join("model.safetensors"), &t.iter().map(|(k, v)| (k.as_str(), v)).collect::<Vec<_>>());

    let sharded = Scratch::new("st-sharded");
    save(&sharded.join("model-00001-of-00002.safetensors"), &[("encoder.a.weight", &t["encoder.a.weight"])]);
    save(
        &sharded.join("model-00002-of-00002.safetensors"),
        &[("encoder.b.bias", &t["encoder.b.bias"]), ("embeddings.position_ids", &t["embeddings.position_ids"])],
    );
    let index = serde_json::json!({
        "metadata": {"total_size": 68},
        "weight_map": {
            "encoder.a.weight": "model-00001-of-00002.safetensors",
            "encoder.b.bias": "model-00002-of-00002.safetensors",
            "embeddings.position_ids": "model-00002-of-00002.safetensors",
        }
    });
    std::fs::write(sharded.join("model.safetensors.index.json"), index.to_string()).unwrap();

    let a = load_checkpoint(single.path(), IntegerTensors::Skip).unwrap();
    let b = load_checkpoint(sharded.path(), IntegerTensors::Skip).unwrap();
    assert_same(&a, &b);
    // The integer buffer is not a weight: skipped by default, every tensor f32.
    assert!(!a.contains_key("embeddings.position_ids"));
    assert!(a.values().all(|t| t.dtype() == DType::F32));
    assert_eq!(a["encoder.a.weight"].to_vec2::<f32>().unwrap()[2], vec![8.0, 9.0, 10.0, 11.0]);

    let a = load_checkpoint(single.path(), IntegerTensors::Keep).unwrap();
    let b = load_checkpoint(&sharded.join("model.safetensors.index.json"), IntegerTensors::Keep).unwrap();
    assert_same(&a, &b);
    assert_eq!(a["embeddings.position_ids"].dtype(), DType::I64);
    assert_eq!(a["embeddings.position_ids"].to_vec2::<i64>().unwrap(), vec![vec![0, 1, 2, 3, 4, 5]]);
}

#[test]
fn bf16_and_f16_become_exact_f32() {
    let dev = Device::Cpu;
    // Values exactly representable in both half formats, so the round trip must be exact.
    let values = [1.5f32, -2.25, 0.0078125, 0.0, -0.5, 3.0, 1024.0, -0.125];
    let x = Tensor::new(&values, &dev).unwrap();
    let dir = Scratch::new("st-half");
    let path = dir.join("model.safetensors");
    save(&path, &[("bf", &x.to_dtype(DType::BF16).unwrap()), ("h", &x.to_dtype(DType::F16).unwrap())]);
    let m = load_safetensors(&path, IntegerTensors::Skip).unwrap();
    for k in ["bf", "h"] {
        assert_eq!(m[k].dtype(), DType::F32);
        assert_eq!(m[k].to_vec1::<f32>().unwrap(), values.to_vec(), "{k}");
    }
    // A value bf16 cannot hold exactly comes back as bf16's rounding of it, not as garbage.
    let y = Tensor::new(&[0.1f32], &dev).unwrap().to_dtype(DType::BF16).unwrap();
    save(&path, &[("y", &y)]);
    let got = load_safetensors(&path, IntegerTensors::Skip).unwrap()["y"].to_vec1::<f32>().unwrap()[0];
    assert_eq!(got, half::bf16::from_f32(0.1).to_f32());
}

#[test]
fn truncated_files_are_corrupt_not_a_panic() {
    let dir = Scratch::new("st-trunc");
    let good = dir.join("good.safetensors");
    let t = sample();
    save(&good, &t.iter().map(|(k, v)| (k.as_str(), v)).collect::<Vec<_>>());
    let bytes = std::fs::read(&good).unwrap();

    let cut = dir.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
    let msg = expect_corrupt(load_safetensors(&cut, IntegerTensors::Skip), "truncated");
    assert!(msg.contains("cut.safetensors"), "{msg}");

    // Cut inside the JSON header: its declared length now runs past the end.
    std::fs::write(&cut, &bytes[..40]).unwrap();
    expect_corrupt(load_safetensors(&cut, IntegerTensors::Skip), "exceeds the file size");

    std::fs::write(&cut, &bytes[..5]).unwrap();
    expect_corrupt(load_safetensors(&cut, IntegerTensors::Skip), "too short");

    std::fs::write(&cut, b"").unwrap();
    expect_corrupt(load_safetensors(&cut, IntegerTensors::Skip), "too short");
}

#[test]
fn garbage_header_is_corrupt() {
    let dir = Scratch::new("st-garbage");
    let path = dir.join("model.safetensors");
    let header = b"{this is not json at all";
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0u8; 16]);
    std::fs::write(&path, &bytes).unwrap();
    expect_corrupt(load_safetensors(&path, IntegerTensors::Skip), "not valid JSON");

    // Random bytes from the first byte on (e.g. a pickled .bin renamed).
    std::fs::write(&path, (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect::<Vec<_>>()).unwrap();
    let e = load_safetensors(&path, IntegerTensors::Skip).unwrap_err();
    assert_eq!(e.code(), "CORRUPT_FILE", "{e}");
}

#[test]
fn header_pointing_past_the_end_is_corrupt() {
    let dir = Scratch::new("st-past-eof");
    let path = dir.join("model.safetensors");
    // Header length claims a megabyte in a 40-byte file.
    let mut bytes = (1u64 << 20).to_le_bytes().to_vec();
    bytes.extend_from_slice(&[b' '; 32]);
    std::fs::write(&path, &bytes).unwrap();
    expect_corrupt(load_safetensors(&path, IntegerTensors::Skip), "exceeds the file size");

    // A valid header whose tensor extends beyond the data that follows it.
    let header = br#"{"w":{"dtype":"F32","shape":[256],"data_offsets":[0,1024]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0u8; 16]);
    std::fs::write(&path, &bytes).unwrap();
    expect_corrupt(load_safetensors(&path, IntegerTensors::Skip), "offsets");

    // Offsets inconsistent with shape x dtype.
    let header = br#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0u8; 8]);
    std::fs::write(&path, &bytes).unwrap();
    let e = load_safetensors(&path, IntegerTensors::Skip).unwrap_err();
    assert_eq!(e.code(), "CORRUPT_FILE", "{e}");
}

#[test]
fn broken_shard_sets_are_corrupt() {
    let dir = Scratch::new("st-shards");
    let t = Tensor::new(&[1f32, 2.0], &Device::Cpu).unwrap();
    save(&dir.join("model-00001-of-00002.safetensors"), &[("a", &t)]);
    let index = |map: serde_json::Value| {
        std::fs::write(dir.join("model.safetensors.index.json"), serde_json::json!({ "weight_map": map }).to_string()).unwrap()
    };

    index(serde_json::json!({"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}));
    let msg = expect_corrupt(load_checkpoint(dir.path(), IntegerTensors::Skip), "missing");
    assert!(msg.contains("model-00002-of-00002.safetensors"), "{msg}");

    index(serde_json::json!({"a": "model-00001-of-00002.safetensors", "c": "model-00001-of-00002.safetensors"}));
    expect_corrupt(load_checkpoint(dir.path(), IntegerTensors::Skip), "\"c\" is listed");

    index(serde_json::json!({"a": "../elsewhere.safetensors"}));
    expect_corrupt(load_checkpoint(dir.path(), IntegerTensors::Skip), "not a plain file name");

    std::fs::write(dir.join("model.safetensors.index.json"), "{\"weight_map\": [").unwrap();
    expect_corrupt(load_checkpoint(dir.path(), IntegerTensors::Skip), "not valid JSON");
}

#[test]
fn missing_file_is_an_io_error() {
    let e = load_safetensors(Path::new("/nonexistent/wotd/model.safetensors"), IntegerTensors::Skip).unwrap_err();
    assert!(matches!(e, WotdError::Io { .. }), "{e:?}");
}

#[test]
fn fixture_checkpoints_load_as_f32() {
    for (name, probe) in [
        ("bert", "embeddings.word_embeddings.weight"),
        ("llama", "model.embed_tokens.weight"),
        ("phi3", "model.embed_tokens.weight"),
        ("xlm_roberta", "embeddings.word_embeddings.weight"),
    ] {
        let m = load_checkpoint(&fixture(name), IntegerTensors::Skip).unwrap();
        assert!(m.values().all(|t| t.dtype() == DType::F32), "{name}");
        let names: Vec<_> = m.keys().filter(|k| k.ends_with("word_embeddings.weight") || k.ends_with("embed_tokens.weight")).collect();
        assert!(m.contains_key(probe), "{name}: {names:?}");
    }
}
