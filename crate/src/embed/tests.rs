//! Parity of the encoders and the embedder with the PyTorch references of the tiny fixtures
//! (`data/fixtures/{bert,xlm_roberta}`, made by `scripts/fixtures/make_fixtures.py`), and the
//! embedder's defined behaviour on edge cases.

use super::pooling::{l2_normalize, pool};
use super::*;
use crate::error::Result;
use crate::io::{load_safetensors, IntegerTensors, ModelFiles, Pooling};
use crate::models::bert::{BertConfig, BertModel, PositionIds};
use crate::models::xlm_roberta;
use candle_core::{DType, Tensor};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

const ATOL: f32 = 1e-4;
const RTOL: f32 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("data").join("fixtures").join(name)
}

struct Reference {
    tensors: HashMap<String, Tensor>,
    json: serde_json::Value,
}

impl Reference {
    fn load(name: &str) -> Self {
        let dir = fixture(name);
        let tensors = load_safetensors(&dir.join("reference.safetensors"), IntegerTensors::Keep).unwrap();
        let json = serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
        Reference { tensors, json }
    }

    fn t(&self, key: &str) -> &Tensor {
        self.tensors.get(key).unwrap_or_else(|| panic!("reference lacks {key}"))
    }

    fn ids(&self, key: &str) -> Tensor {
        self.t(key).to_dtype(DType::U32).unwrap()
    }

    fn texts(&self) -> Vec<String> {
        self.json["texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect()
    }
}

fn load_model(name: &str) -> BertModel {
    let dir = fixture(name);
    let files = ModelFiles::open(&dir).unwrap();
    let config = BertConfig::from_file(&dir.join("config.json")).unwrap();
    let weights = files.load_weights().unwrap();
    let src = dir.join("model.safetensors");
    match name {
        "bert" => BertModel::load(&config, &weights, &src, PositionIds::Sequential).unwrap(),
        _ => xlm_roberta::load(&config, &weights, &src).unwrap(),
    }
}

/// Largest violation of |a - b| <= atol + rtol |b| over positions where `mask` is 1
/// (`[b, s, h]` states, `[b, s]` mask); > 0 means out of tolerance.
fn masked_excess(got: &Tensor, want: &Tensor, mask: &Tensor) -> f32 {
    assert_eq!(got.dims(), want.dims());
    let g = got.to_vec3::<f32>().unwrap();
    let w = want.to_vec3::<f32>().unwrap();
    let m = mask.to_dtype(DType::U32).unwrap().to_vec2::<u32>().unwrap();
    let mut worst = f32::NEG_INFINITY;
    for b in 0..g.len() {
        for s in 0..g[b].len() {
            if m[b][s] == 0 {
                continue;
            }
            for (x, y) in g[b][s].iter().zip(&w[b][s]) {
                worst = worst.max((x - y).abs() - (ATOL + RTOL * y.abs()));
            }
        }
    }
    worst
}

fn rows_excess(got: &[Vec<f32>], want: &[Vec<f32>]) -> f32 {
    assert_eq!(got.len(), want.len());
    let mut worst = f32::NEG_INFINITY;
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.len(), w.len());
        for (x, y) in g.iter().zip(w) {
            worst = worst.max((x - y).abs() - (ATOL + RTOL * y.abs()));
        }
    }
    worst
}

fn check_hidden_states(name: &str) {
    let r = Reference::load(name);
    let model = load_model(name);
    let ids = r.ids("input_ids");
    let mask = r.ids("attention_mask");
    let states = model.forward_hidden_states(&ids, &mask).unwrap();
    let n_layers = model.config().num_hidden_layers;
    assert_eq!(states.len(), n_layers + 1);
    let mut keys = vec!["hidden.embeddings".to_string()];
    keys.extend((0..n_layers).map(|i| format!("hidden.layer.{i}")));
    for (key, got) in keys.iter().zip(&states) {
        let excess = masked_excess(got, r.t(key), &mask);
        assert!(excess <= 0.0, "{name} {key}: out of tolerance by {excess}");
    }
    let excess = masked_excess(states.last().unwrap(), r.t("last_hidden_state"), &mask);
    assert!(excess <= 0.0, "{name} last_hidden_state: out of tolerance by {excess}");

    // Pooling over the same padded batch.
    let last = states.last().unwrap();
    for (mode, key) in [(Pooling::Cls, "cls_pooled_normalized"), (Pooling::Mean, "mean_pooled_normalized")] {
        let got = l2_normalize(&pool(last, &mask, mode).unwrap()).unwrap().to_vec2::<f32>().unwrap();
        let excess = rows_excess(&got, &r.t(key).to_vec2::<f32>().unwrap());
        assert!(excess <= 0.0, "{name} {key}: out of tolerance by {excess}");
    }
}

#[test]
fn bert_hidden_states_and_pooling_match_pytorch() {
    check_hidden_states("bert");
}

#[test]
fn xlm_roberta_hidden_states_and_pooling_match_pytorch() {
    check_hidden_states("xlm_roberta");
}

fn fixture_embedder(name: &str, pooling: Option<Pooling>) -> Embedder {
    let opts = EmbedderOptions { pooling, ..Default::default() };
    Embedder::from_path(&fixture(name), Some(&format!("fixtures/{name}")), &opts).unwrap()
}

fn check_embedder(name: &str) {
    let r = Reference::load(name);
    let texts = r.texts();
    for (pooling, key) in [(None, "cls_pooled_normalized"), (Some(Pooling::Mean), "mean_pooled_normalized")] {
        let e = fixture_embedder(name, pooling);
        // The fixture config says CLS; the embedder must have read it, not assumed it.
        if pooling.is_none() {
            assert_eq!(e.info().pooling, Pooling::Cls);
        }
        assert_eq!(e.dim(), 32);
        // Batch size 3 over 4 texts of different lengths: sorting, padding per batch and
        // restoring the order all have to be right for this to match.
        let out = e.embed(&texts, 3, &mut |_, _| {}, None).unwrap();
        let got: Vec<Vec<f32>> = (0..texts.len()).map(|i| out.row(i).to_vec()).collect();
        let excess = rows_excess(&got, &r.t(key).to_vec2::<f32>().unwrap());
        assert!(excess <= 0.0, "{name} embedder {key}: out of tolerance by {excess}");
        assert!(out.truncated.iter().all(|t| !t));
    }
}

#[test]
fn bert_embedder_matches_pytorch_with_length_grouped_batches() {
    check_embedder("bert");
}

#[test]
fn xlm_roberta_embedder_matches_pytorch_with_length_grouped_batches() {
    check_embedder("xlm_roberta");
}

#[test]
fn token_ids_match_the_reference_tokenizer() {
    for name in ["bert", "xlm_roberta"] {
        let r = Reference::load(name);
        let e = fixture_embedder(name, None);
        for case in r.json["tokenization"].as_array().unwrap() {
            if !case["add_special_tokens"].as_bool().unwrap() {
                continue;
            }
            let text = case["text"].as_str().unwrap();
            let want: Vec<u32> = case["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
            // tokenize() strips surrounding whitespace (as sentence-transformers does); the
            // reference tokenized the raw text, which differs only for the XLM-R case with
            // leading spaces, so compare against the stripped text where they differ.
            let (ids, _) = e.tokenize(text).unwrap();
            if text.trim() == text {
                assert_eq!(ids, want, "{name}: token ids of {text:?}");
            } else {
                let raw = e.tokenizer().encode(text, true).unwrap().ids;
                assert_eq!(raw, want, "{name}: raw token ids of {text:?}");
            }
        }
    }
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max)
}

fn unit_and_finite(v: &[f32]) -> bool {
    let n: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().all(|x| x.is_finite()) && (n - 1.0).abs() < 1e-5
}

#[test]
fn edge_cases_have_defined_results() -> Result<()> {
    for name in ["bert", "xlm_roberta"] {
        let e = fixture_embedder(name, None);
        let max = e.info().max_length;
        let long = "serendipity ".repeat(max * 2);
        let texts: Vec<String> =
            ["", "   \t\n ", &long, "Привет, мир", "日本語のテキスト", "emoji: 😀🎉", "a\0b", "ab", "word"].iter().map(|s| s.to_string()).collect();
        let out = e.embed(&texts, 4, &mut |_, _| {}, None)?;
        assert_eq!(out.len(), texts.len());
        for i in 0..texts.len() {
            assert!(unit_and_finite(out.row(i)), "{name}: vector of {:?} is not a finite unit vector", texts[i]);
        }
        // Whitespace only is the empty string (both become just the special tokens).
        // (Equal up to float noise: they may sit in differently padded batches.)
        assert!(max_diff(out.row(0), out.row(1)) < 1e-5, "{name}: whitespace-only differs from empty");
        assert_eq!(out.token_counts[0], 2);
        // Very long input: cut at the model's limit and reported; nothing else is.
        assert_eq!(out.truncated, vec![false, false, true, false, false, false, false, false, false]);
        assert_eq!(out.token_counts[2], max);
        if name == "bert" {
            // BERT's normaliser drops control characters: "a\0b" is "ab".
            assert_eq!(e.tokenize("a\0b")?.0, e.tokenize("ab")?.0);
            assert!(max_diff(out.row(6), out.row(7)) < 1e-5);
        }
        // A text's vector does not depend on what it is batched with.
        let alone = e.embed(&texts[8..9], 1, &mut |_, _| {}, None)?;
        let diff = max_diff(alone.row(0), out.row(8));
        assert!(diff < 1e-5, "{name}: batching changed a vector by {diff}");
    }
    Ok(())
}

#[test]
fn empty_batch_gives_empty_result_without_progress() -> Result<()> {
    let e = fixture_embedder("bert", None);
    let mut calls = 0;
    let out = e.embed(&[], 8, &mut |_, _| calls += 1, None)?;
    assert!(out.is_empty() && out.vectors.is_empty());
    assert_eq!(out.dim, 32);
    assert_eq!(calls, 0);
    Ok(())
}

#[test]
fn progress_is_reported_per_batch_and_cancel_stops() -> Result<()> {
    let e = fixture_embedder("bert", None);
    let texts: Vec<String> = (0..10).map(|i| format!("word number {i}")).collect();
    let mut seen = Vec::new();
    e.embed(&texts, 3, &mut |d, t| seen.push((d, t)), None)?;
    // One call per batch (4 batches of at most 3), cumulative, ending at the total; batches may
    // finish out of order when several are in flight.
    assert_eq!(seen.len(), 4);
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0) && seen.iter().all(|&(_, t)| t == 10));
    assert_eq!(seen.last(), Some(&(10, 10)));

    let cancel = AtomicBool::new(false);
    let mut batches = 0;
    let err = e
        .embed(
            &texts,
            3,
            &mut |_, _| {
                batches += 1;
                cancel.store(true, std::sync::atomic::Ordering::Relaxed);
            },
            Some(&cancel),
        )
        .unwrap_err();
    assert_eq!(err.code(), "CANCELLED");
    // Batches already in flight finish; nothing new starts.
    assert!(batches < 4, "work went on after the cancel flag was set ({batches} batches)");
    Ok(())
}

#[test]
fn info_comes_from_the_model_files() {
    let e = fixture_embedder("xlm_roberta", None);
    let info = e.info();
    assert_eq!(info.model_id, "fixtures/xlm_roberta");
    assert_eq!(info.dim, 32);
    assert!(info.normalize);
    // 130 positions minus padding_idx + 1.
    assert!(info.max_length <= 128, "{}", info.max_length);
    assert!(info.revision.starts_with("local:"), "{}", info.revision);
}

/// nn/ is shared with training code: the encoder must be built only from ops that record a
/// backward, so every weight (including those fused into the QKV projection and the custom
/// GELU) receives a non-zero gradient.
#[test]
fn every_encoder_weight_receives_a_gradient() -> Result<()> {
    use candle_core::Var;
    let dir = fixture("bert");
    let files = ModelFiles::open(&dir)?;
    let config = BertConfig::from_file(&dir.join("config.json"))?;
    let vars: HashMap<String, Var> =
        files.load_weights()?.into_iter().map(|(k, t)| Ok((k, Var::from_tensor(&t)?))).collect::<Result<_>>()?;
    let weights: HashMap<String, Tensor> = vars.iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
    let model = BertModel::load(&config, &weights, &dir, PositionIds::Sequential)?;
    let r = Reference::load("bert");
    let mask = r.ids("attention_mask");
    let hidden = model.forward(&r.ids("input_ids"), &mask)?;
    let loss = l2_normalize(&pool(&hidden, &mask, Pooling::Mean)?)?.sqr()?.mul(&hidden.narrow(1, 0, 1)?.squeeze(1)?)?.sum_all()?;
    let grads = loss.backward()?;
    let mut missing = Vec::new();
    for (name, v) in &vars {
        if name.starts_with("pooler.") {
            continue; // not part of the encoder's output
        }
        let ok = grads.get(v).map(|g| g.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0).unwrap_or(false);
        if !ok {
            missing.push(name.clone());
        }
    }
    missing.sort();
    assert!(missing.is_empty(), "no gradient reached: {missing:?}");
    Ok(())
}
