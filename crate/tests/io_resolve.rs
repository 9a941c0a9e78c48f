//! Model resolution order, caches laid out in temp dirs, markers and verification, and the
//! `ModelFiles` summary of what a directory holds. The Hub step is always disabled or pointed
//! at a closed local port: these tests never touch the network.

mod io_support;

use io_support::{fixture, max_abs_diff, Scratch};
use std::path::{Path, PathBuf};
use std::time::Duration;
use wotd_native::io::marker::Marker;
use wotd_native::io::{resolve, verify, ModelFiles, ModelSource, Pooling, ResolveOptions, TokenizerSource, WeightFormat};
use wotd_native::WotdError;

const HASH: &str = "0123456789abcdef0123456789abcdef01234567";

fn copy_model(from: &Path, to: &Path, files: &[&str]) {
    std::fs::create_dir_all(to).unwrap();
    for f in files {
        let dst = to.join(f);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(from.join(f), dst).unwrap();
    }
}

const BERT_FILES: &[&str] = &["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "1_Pooling/config.json"];

/// Offline options that look only inside `root`.
fn opts(root: &Path) -> ResolveOptions {
    ResolveOptions {
        offline: true,
        hf_hub_cache: Some(root.join("hf").join("hub")),
        wotd_models: Some(root.join("wotd")),
        ..Default::default()
    }
}

fn hf_cache_model(root: &Path, id: &str, with_weights: bool) -> PathBuf {
    let repo = root.join("hf").join("hub").join(format!("models--{}", id.replace('/', "--")));
    let snap = repo.join("snapshots").join(HASH);
    let files: Vec<&str> = BERT_FILES.iter().copied().filter(|f| with_weights || *f != "model.safetensors").collect();
    copy_model(&fixture("bert"), &snap, &files);
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), HASH).unwrap();
    snap
}

fn wotd_model(root: &Path, id: &str, marker: bool) -> PathBuf {
    let dir = id.split('/').fold(root.join("wotd"), |p, s| p.join(s));
    copy_model(&fixture("bert"), &dir, BERT_FILES);
    if marker {
        Marker::write(&dir, id, serde_json::json!({"type": "pypi", "package": "test"}), BERT_FILES).unwrap();
    }
    dir
}

fn not_found(e: WotdError) -> (Vec<String>, String) {
    let msg = e.to_string();
    match e {
        WotdError::ModelNotFound { looked, fetch, .. } => {
            assert_eq!(fetch, "npx wotd models pull");
            (looked, msg)
        }
        other => panic!("expected ModelNotFound, got {other:?}"),
    }
}

#[test]
fn explicit_directory_and_file_are_used_as_given() {
    let root = Scratch::new("res-explicit");
    let dir = fixture("llama");
    let r = resolve(dir.to_str().unwrap(), &opts(root.path())).unwrap();
    assert_eq!(r.source, ModelSource::Local);
    assert_eq!(r.source.as_str(), "local");
    assert_eq!(r.dir, dir);
    assert_eq!(r.file, None);

    let file = dir.join("model-f32.gguf");
    let r = resolve(file.to_str().unwrap(), &opts(root.path())).unwrap();
    assert_eq!((r.dir.as_path(), r.file.as_deref()), (dir.as_path(), Some(file.as_path())));

    // A path that does not exist is not looked up as a model id anywhere else.
    let (looked, msg) = not_found(resolve("/nonexistent/wotd/model", &opts(root.path())).unwrap_err());
    assert_eq!(looked.len(), 1, "{looked:?}");
    assert!(looked[0].contains("/nonexistent/wotd/model"), "{looked:?}");
    assert!(msg.contains("npx wotd models pull"), "{msg}");
}

#[test]
fn hf_cache_snapshot_is_found_by_ref_and_by_hash() {
    let root = Scratch::new("res-hf");
    let snap = hf_cache_model(root.path(), "org/tiny-bert", true);
    let r = resolve("org/tiny-bert", &opts(root.path())).unwrap();
    assert_eq!(r.source, ModelSource::HfCache);
    assert_eq!(r.dir, snap);
    assert_eq!(r.id, "org/tiny-bert");

    let by_hash = ResolveOptions { revision: Some(HASH.into()), ..opts(root.path()) };
    assert_eq!(resolve("org/tiny-bert", &by_hash).unwrap().dir, snap);

    // An unknown revision is not silently served from main.
    let other = ResolveOptions { revision: Some("v2".into()), ..opts(root.path()) };
    let (looked, _) = not_found(resolve("org/tiny-bert", &other).unwrap_err());
    assert!(looked[0].contains("no refs/v2"), "{looked:?}");
}

#[test]
fn hf_cache_snapshot_without_weights_is_skipped_for_the_wotd_cache() {
    let root = Scratch::new("res-hf-partial");
    hf_cache_model(root.path(), "org/tiny-bert", false);
    let dir = wotd_model(root.path(), "org/tiny-bert", true);
    let r = resolve("org/tiny-bert", &opts(root.path())).unwrap();
    assert_eq!(r.source, ModelSource::WotdCache);
    assert_eq!(r.source.as_str(), "wotd-cache");
    assert_eq!(r.dir, dir);
    assert!(r.looked[0].contains("no safetensors or GGUF weights"), "{:?}", r.looked);
    assert!(r.looked[1].contains("skipped (offline option)"), "{:?}", r.looked);
}

#[test]
fn wotd_cache_needs_its_marker_and_intact_sizes() {
    let root = Scratch::new("res-wotd");
    let dir = wotd_model(root.path(), "org/tiny-bert", false);
    let (looked, _) = not_found(resolve("org/tiny-bert", &opts(root.path())).unwrap_err());
    assert!(looked.last().unwrap().contains("incomplete, no .wotd-model.json"), "{looked:?}");

    Marker::write(&dir, "org/tiny-bert", serde_json::Value::Null, BERT_FILES).unwrap();
    assert_eq!(resolve("org/tiny-bert", &opts(root.path())).unwrap().source, ModelSource::WotdCache);

    // A file shorter than the marker says: an interrupted copy, skipped.
    let f = dir.join("tokenizer.json");
    let text = std::fs::read(&f).unwrap();
    std::fs::write(&f, &text[..text.len() / 2]).unwrap();
    let (looked, _) = not_found(resolve("org/tiny-bert", &opts(root.path())).unwrap_err());
    assert!(looked.last().unwrap().contains("tokenizer.json"), "{looked:?}");
}

#[test]
fn not_found_lists_every_place_looked() {
    let root = Scratch::new("res-none");
    let (looked, msg) = not_found(resolve("sentence-transformers/all-MiniLM-L6-v2", &opts(root.path())).unwrap_err());
    assert_eq!(looked.len(), 3, "{looked:?}");
    assert!(looked[0].contains("models--sentence-transformers--all-MiniLM-L6-v2") && looked[0].contains("HF cache"), "{looked:?}");
    assert_eq!(looked[1], "huggingface.co: skipped (offline option)");
    assert!(looked[2].contains(&format!("wotd{}sentence-transformers", std::path::MAIN_SEPARATOR)), "{looked:?}");
    assert!(msg.contains("sentence-transformers/all-MiniLM-L6-v2") && msg.contains("npx wotd models pull"), "{msg}");
}

#[test]
fn unreachable_hub_fails_within_seconds() {
    let root = Scratch::new("res-hub");
    let o = ResolveOptions {
        offline: false,
        endpoint: Some("http://127.0.0.1:9".into()),
        connect_timeout: Duration::from_secs(2),
        ..opts(root.path())
    };
    let t = std::time::Instant::now();
    let (looked, _) = not_found(resolve("org/absent", &o).unwrap_err());
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // WOTD_OFFLINE/HF_HUB_OFFLINE in the environment skip the Hub before the probe.
    assert!(
        looked[1].starts_with("127.0.0.1:9: unreachable") || looked[1].starts_with("127.0.0.1:9: skipped"),
        "{looked:?}"
    );
}

#[test]
fn bad_ids_are_invalid_input() {
    let root = Scratch::new("res-bad-id");
    for id in ["org/..x", "a b", "org/name?x", ""] {
        let e = resolve(id, &opts(root.path())).unwrap_err();
        assert!(matches!(e.code(), "INVALID_INPUT" | "MODEL_NOT_FOUND"), "{id:?}: {e}");
        assert_ne!(e.code(), "MODEL_NOT_FOUND", "{id:?} must be refused before any lookup: {e}");
    }
}

#[test]
fn verify_detects_modified_missing_and_resized_files() {
    let root = Scratch::new("res-verify");
    let dir = wotd_model(root.path(), "org/tiny-bert", true);
    let report = verify(&dir).unwrap();
    assert!(report.ok, "{:?}", report.problems);

    // Same size, one byte changed: only the hash can tell.
    let cfg = dir.join("config.json");
    let mut bytes = std::fs::read(&cfg).unwrap();
    bytes[10] ^= 0x01;
    std::fs::write(&cfg, &bytes).unwrap();
    let report = verify(&dir).unwrap();
    assert!(!report.ok);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].starts_with("config.json: sha256"), "{:?}", report.problems);

    std::fs::remove_file(dir.join("1_Pooling/config.json")).unwrap();
    std::fs::write(dir.join("tokenizer.json"), b"{}").unwrap();
    let report = verify(&dir).unwrap();
    assert_eq!(report.problems.len(), 3, "{:?}", report.problems);
    assert!(report.problems.iter().any(|p| p == "1_Pooling/config.json: missing"), "{:?}", report.problems);
    assert!(report.problems.iter().any(|p| p.starts_with("tokenizer.json: 2 bytes")), "{:?}", report.problems);

    std::fs::remove_file(dir.join(".wotd-model.json")).unwrap();
    let report = verify(&dir).unwrap();
    assert!(!report.ok && report.problems[0].starts_with(".wotd-model.json"), "{:?}", report.problems);
}

#[test]
fn model_files_summarise_a_safetensors_encoder() {
    let m = ModelFiles::open(&fixture("bert")).unwrap();
    assert_eq!(m.format, WeightFormat::Safetensors);
    assert_eq!(m.pooling, Some(Pooling::Cls));
    assert!(m.normalize);
    assert_eq!(m.architecture(), Some("BertModel"));
    assert_eq!(m.hidden_size(), Some(32));
    assert_eq!(m.max_length, Some(64));
    assert!(matches!(m.tokenizer, TokenizerSource::Json(_)));
    let w = m.load_weights().unwrap();
    assert!(w.contains_key("embeddings.word_embeddings.weight"));
    assert!(!w.contains_key("embeddings.position_ids"));
    let files = m.files().unwrap();
    assert!(files.iter().any(|f| f.path == "1_Pooling/config.json" && f.size > 0), "{files:?}");
    let listed: u64 = files.iter().filter(|f| f.path == "model.safetensors").map(|f| f.size).sum();
    assert_eq!(listed, std::fs::metadata(fixture("bert").join("model.safetensors")).unwrap().len());
}

#[test]
fn model_files_load_a_gguf_like_its_safetensors() {
    let st = ModelFiles::open(&fixture("llama")).unwrap();
    assert_eq!(st.format, WeightFormat::Safetensors, "safetensors preferred when both are present");

    // A directory holding only the GGUFs: config and tokenizer come from the GGUF itself.
    let root = Scratch::new("mf-gguf");
    copy_model(&fixture("llama"), root.path(), &["model-f32.gguf", "model-q8_0.gguf"]);
    let g = ModelFiles::open(root.path()).unwrap();
    assert_eq!(g.format, WeightFormat::Gguf);
    assert_eq!(g.weights, vec![root.join("model-f32.gguf")], "highest precision GGUF picked");
    assert_eq!(g.tokenizer, TokenizerSource::Gguf(root.join("model-f32.gguf")));
    assert_eq!(g.pooling, None);
    assert_eq!(g.architecture(), Some("LlamaForCausalLM"));
    assert_eq!(g.max_length, Some(128));
    for key in ["hidden_size", "num_hidden_layers", "vocab_size", "tie_word_embeddings", "rms_norm_eps"] {
        assert_eq!(g.config.get(key), st.config.get(key), "{key}");
    }
    let (a, b) = (st.load_weights().unwrap(), g.load_weights().unwrap());
    assert_eq!(a.len(), b.len());
    for (k, t) in &a {
        assert_eq!(max_abs_diff(t, &b[k]), 0.0, "{k}");
    }
    let (ta, tb) = (st.load_tokenizer().unwrap(), g.load_tokenizer().unwrap());
    let text = "<|im_start|>user\nname a word for 2024<|im_end|>";
    assert_eq!(ta.encode(text, true).unwrap(), tb.encode(text, true).unwrap());

    // An explicit file picks that file even where another would be preferred.
    let q = ModelFiles::open(&root.join("model-q8_0.gguf")).unwrap();
    assert_eq!(q.weights, vec![root.join("model-q8_0.gguf")]);
}

#[test]
fn a_directory_without_weights_is_refused() {
    let root = Scratch::new("mf-empty");
    std::fs::write(root.join("config.json"), "{}").unwrap();
    let e = ModelFiles::open(root.path()).unwrap_err();
    assert_eq!(e.code(), "INVALID_INPUT", "{e}");
}
