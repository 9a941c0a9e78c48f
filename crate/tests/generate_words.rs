//! Word generation on the tiny llama fixture (random weights, so the words themselves mean
//! nothing; the machinery is what is checked): seeded determinism, agreement of the batched
//! prefix-shared decoder with the plain generator, the vocabulary trie, Q8_0 decoding against
//! f32, and `novelOnly` exclusion.

mod decoder_support;

use candle_core::quantized::GgmlDType;
use candle_core::Tensor;
use decoder_support::*;
use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use wotd_native::dsl::parse;
use wotd_native::error::WotdError;
use wotd_native::generate::quantized::QuantizedLm;
use wotd_native::generate::words::{final_items, normalize_word};
use decoder_support::decode::{generate_batch, GenerateOptions};
use wotd_native::generate::{EngineOptions, PromptVocab, Weights, WordGenerator, WordOptions};
use wotd_native::models::CausalLm;
use wotd_native::rvq::AttributeVocab;

fn tuned() -> CausalLm {
    let mut m = model("llama");
    m.load_adapter(&fixture("llama").join("lora")).unwrap();
    m
}

fn generator(weights: Weights) -> WordGenerator {
    let opts = EngineOptions { merge: true, weights, prompt_vocab: PromptVocab::Named(AttributeVocab::default()) };
    WordGenerator::from_model(tuned(), &opts).unwrap()
}

/// Sampling hot enough that a random model writes many distinct tokens, separators included.
fn hot(seed: u64) -> WordOptions {
    WordOptions { count: 12, temperature: 1.3, top_p: 1.0, top_k: 0, seed, max_new_tokens: 24, max_rounds: 3, ..Default::default() }
}

#[test]
fn same_seed_same_words_and_different_seeds_differ() {
    let g = generator(Weights::F32);
    let p = parse("[9,10,3,*]").unwrap();
    let a = g.generate(&p, &hot(7)).unwrap();
    let b = g.generate(&p, &hot(7)).unwrap();
    assert_eq!((&a.raw, &a.words, a.tokens), (&b.raw, &b.words, b.tokens));
    let c = g.generate(&p, &hot(8)).unwrap();
    assert_ne!(a.raw, c.raw);
    // The shared prompt prefix is cached after the first call; later calls, other patterns in
    // between, and a fresh generator all compute alike.
    g.generate(&parse("[31,*,0,*]").unwrap(), &hot(1)).unwrap();
    assert_eq!(g.generate(&p, &hot(7)).unwrap().raw, a.raw);
    assert_eq!(generator(Weights::F32).generate(&p, &hot(7)).unwrap().raw, a.raw);
    assert!(a.prompt.contains("Words for semantic ID [9,10,3,*] (modern / beautiful / shakespearean / any variation):"), "{}", a.prompt);
    assert!(a.tokens > 0 && a.elapsed_ms > 0.0 && a.prefill_ms > 0.0 && a.rounds >= 1);
    for w in &a.words {
        assert_eq!(normalize_word(w).as_deref(), Some(w.as_str()), "returned words are normalised and well-formed");
    }
}

#[test]
fn batched_rows_decode_like_independent_kv_cached_generation() {
    // With no early stop (count far above what can come out) and one round of three rows, row
    // r must be exactly what the plain generator samples from stream r of the seed.
    let g = generator(Weights::F32);
    let p = parse("[1,2,3,4]").unwrap();
    let opts = WordOptions { count: 5000, max_rounds: 1, max_batch: 3, ..hot(11) };
    let out = g.generate(&p, &opts).unwrap();
    assert_eq!(out.raw.len(), 3);
    let m = {
        let mut m = tuned();
        m.merge_adapter().unwrap();
        m
    };
    let prompt = g.prompt_ids(&p, &[]).unwrap();
    let tok = m.tokenizer().unwrap();
    let plain = GenerateOptions {
        max_new_tokens: 24,
        temperature: 1.3,
        top_p: 1.0,
        top_k: 0,
        seed: 11,
        stop_token_ids: g.stop_tokens().to_vec(),
        ..Default::default()
    };
    let want = generate_batch(&m, tok, &vec![prompt; 3], &plain).unwrap();
    let want: Vec<String> = want.into_iter().map(|w| w.text).collect();
    assert_eq!(out.raw, want);
}

#[test]
fn vocabulary_trie_only_ever_yields_vocabulary_words() {
    let vocab: Vec<String> =
        ["amber", "lucid", "velvet", "quiet", "ember", "solace", "zephyr", "halcyon", "sun", "sunset", "well-being", "o'clock"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    let allowed: HashSet<&str> = vocab.iter().map(String::as_str).collect();
    for weights in [Weights::F32, Weights::Q8_0] {
        let g = generator(weights);
        let p = parse("[2,*,17,*]").unwrap();
        let mut seen = HashSet::new();
        for seed in 0..6 {
            let out = g.generate(&p, &WordOptions { vocabulary: Some(vocab.clone()), count: 8, ..hot(seed) }).unwrap();
            assert!(!out.words.is_empty(), "{weights:?} seed {seed}: {:?}", out.raw);
            for w in &out.words {
                assert!(allowed.contains(w.as_str()), "{weights:?}: {w} is outside the vocabulary");
                seen.insert(w.clone());
            }
            // Not just the filter: every finished item the model wrote is a vocabulary word.
            for text in &out.raw {
                for item in final_items(text, false) {
                    assert!(allowed.contains(item.trim()), "{weights:?} seed {seed}: item {item:?} in {text:?}");
                }
            }
            assert_eq!((out.not_in_vocabulary, out.malformed.len()), (0, 0), "{:?}", out.raw);
        }
        assert!(seen.len() >= 4, "{weights:?}: the constraint still samples: {seen:?}");
    }
}

#[test]
fn novel_only_excludes_training_words_even_under_a_vocabulary() {
    let g = generator(Weights::F32);
    let p = parse("[2,*,*,*]").unwrap();
    let vocab: Vec<String> = ["amber", "lucid", "velvet", "quiet"].iter().map(|s| s.to_string()).collect();
    let exclude = vec!["Amber".to_string(), "LUCID".to_string()];
    for seed in 0..4 {
        let out = g.generate(&p, &WordOptions { vocabulary: Some(vocab.clone()), exclude: exclude.clone(), ..hot(seed) }).unwrap();
        assert!(out.words.iter().all(|w| w == "velvet" || w == "quiet"), "{:?}", out.words);
        assert!(!out.words.is_empty());
    }
}

#[test]
fn greedy_is_one_row_and_count_caps_the_words() {
    let g = generator(Weights::F32);
    let p = parse("[0,0,0,0]").unwrap();
    let out = g.generate(&p, &WordOptions { temperature: 0.0, ..hot(0) }).unwrap();
    assert_eq!((out.rows, out.rounds), (1, 1));
    let vocab: Vec<String> = ["amber", "lucid", "velvet", "quiet", "ember", "solace"].iter().map(|s| s.to_string()).collect();
    let out = g.generate(&p, &WordOptions { count: 2, vocabulary: Some(vocab), ..hot(3) }).unwrap();
    assert!(out.words.len() <= 2);
    assert!(g.generate(&p, &WordOptions { count: 0, ..hot(0) }).is_err());
    assert!(g.generate(&p, &WordOptions { top_p: 0.0, ..hot(0) }).is_err());
}

#[test]
fn a_set_cancel_flag_ends_generation_and_leaves_the_generator_usable() {
    let g = generator(Weights::F32);
    let p = parse("[9,10,3,*]").unwrap();
    let before = g.generate(&p, &hot(7)).unwrap();
    let e = g.generate_cancellable(&p, &hot(7), &AtomicBool::new(true)).unwrap_err();
    assert!(matches!(e, WotdError::Cancelled), "{e:?}");
    assert_eq!(g.generate_cancellable(&p, &hot(7), &AtomicBool::new(false)).unwrap().raw, before.raw);
    assert_eq!(g.generate(&p, &hot(7)).unwrap().raw, before.raw, "a cancelled request leaves no trace");
}

fn prompt_batch(m: &CausalLm) -> Tensor {
    let tok = m.tokenizer().unwrap();
    let ids = tok.encode("<|im_start|>user\nWords for semantic ID [1,2,3,4]:<|im_end|>\n<|im_start|>assistant\nlucid, serene", false).unwrap().ids;
    Tensor::new(ids.as_slice(), m.device()).unwrap().unsqueeze(0).unwrap()
}

/// The Q8_0-vs-f32 logit tolerance the fixture generator states for this model
/// (`gguf_reference.json`: four times the error of its own Q8_0 weights, measured with f32
/// activations). Decoding here also rounds activations to Q8_0 blocks, as llama.cpp does.
fn q8_tolerance() -> f32 {
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixture("llama").join("gguf_reference.json")).unwrap()).unwrap();
    r["tolerances"]["q8_0_vs_f32_reference"]["atol"].as_f64().unwrap() as f32
}

#[test]
fn quantized_forward_matches_f32_exactly_in_f32_and_closely_in_q8_0() {
    let mut m = tuned();
    m.merge_adapter().unwrap();
    let ids = prompt_batch(&m);
    let want = m.forward_no_grad(&ids, None, None).unwrap();
    // Same forward without rounding: only the fused kernels differ.
    let exact = QuantizedLm::from_causal_lm(&m, GgmlDType::F32).unwrap();
    assert_close(&exact.forward(&ids, None, None).unwrap(), &want, 1e-4, 1e-4, "f32 quantized path");
    let q = QuantizedLm::from_causal_lm(&m, GgmlDType::Q8_0).unwrap();
    assert_eq!(q.matrix_counts(), (15, 0), "every projection and the head are Q8_0");
    let got = q.forward(&ids, None, None).unwrap();
    let scale = want.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    let diff = max_abs_diff(&got, &want);
    eprintln!("Q8_0 vs f32 fixture logits: max |diff| {diff:.5} of max |logit| {scale:.3} (tolerance {})", q8_tolerance());
    assert!(diff <= q8_tolerance(), "Q8_0 logits off by {diff} (scale {scale})");
    // The most likely next token mostly survives quantization.
    let top = |t: &Tensor| t.squeeze(0).unwrap().argmax(1).unwrap().to_vec1::<u32>().unwrap();
    let (a, b) = (top(&got), top(&want));
    let agree = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    assert!(agree * 10 >= a.len() * 8, "top-1 agrees at {agree} of {} positions", a.len());
    // Step-wise cached decoding equals one pass.
    let t = ids.dims()[1];
    let mut cache = wotd_native::generate::engine::DecodeModel::new_cache(&q);
    let head = q.forward(&ids.narrow(1, 0, t - 2).unwrap(), None, Some(&mut cache)).unwrap();
    let a = q.forward(&ids.narrow(1, t - 2, 1).unwrap(), None, Some(&mut cache)).unwrap();
    let b = q.forward(&ids.narrow(1, t - 1, 1).unwrap(), None, Some(&mut cache)).unwrap();
    let stepped = Tensor::cat(&[&head, &a, &b], 1).unwrap();
    assert!(max_abs_diff(&stepped, &got) < 1e-4);
    // An unmerged adapter cannot be quantized.
    assert!(QuantizedLm::from_causal_lm(&tuned(), GgmlDType::Q8_0).is_err());
}

#[test]
fn q8_0_generation_is_deterministic() {
    let q = generator(Weights::Q8_0);
    let p = parse("[5,*,*,*]").unwrap();
    for opts in [WordOptions { temperature: 0.0, ..hot(0) }, hot(4)] {
        let a = q.generate(&p, &opts).unwrap();
        assert_eq!(a.raw, q.generate(&p, &opts).unwrap().raw);
    }
}
