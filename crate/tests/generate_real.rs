//! The real SmolLM2-135M-Instruct (the pulled Q4_1 GGUF, dequantized to f32): Q8_0 decoding
//! tracks f32 decoding, and its Q8_0 GGUF export reloads with the same tokenizer and close
//! logits. Gated by [`decoder_support::real_smollm2`]: a loud skip locally, a failure in CI.
//!
//! `smollm2_word_generation_timings` (ignored: a benchmark, not a check) trains a DSL adapter
//! on the bundled lexicon for a few dozen steps, then prints ms per generated word for f32 and
//! Q8_0 decoding:
//! `cargo test --release --no-default-features --test generate_real -- --ignored --nocapture`.

mod decoder_support;

use candle_core::quantized::GgmlDType;
use candle_core::Tensor;
use decoder_support::*;
use std::time::Instant;
use wotd_native::generate::quantized::QuantizedLm;
use wotd_native::export::gguf::{export_causal_lm, GgufExportOptions};
use wotd_native::models::CausalLm;

const PROMPT: &str = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n";

/// Q8_0 against f32 on the real model. Q8_0 also rounds activations to 8-bit blocks in every
/// matmul (as llama.cpp does), and SmolLM2 has outlier activation channels, so single logits
/// can move by several units (measured up to ~3.4 of a 37.6 range) while the distributions stay
/// close. Bounds: mean KL(f32 || Q8_0) per position <= 0.05 nats, max KL <= 0.5, every logit
/// within 12% of the largest |logit|, top-1 equal at >= 90% of positions and after the prompt.
const REAL_Q8_MEAN_KL: f64 = 0.05;
const REAL_Q8_MAX_KL: f64 = 0.5;
const REAL_Q8_REL_TOL: f32 = 0.12;

fn prompt_ids(m: &CausalLm) -> Tensor {
    let ids = m.tokenizer().unwrap().encode(PROMPT, false).unwrap().ids;
    Tensor::new(ids.as_slice(), m.device()).unwrap().unsqueeze(0).unwrap()
}

/// KL(p || q) of the softmaxes of two logit rows.
fn kl(p: &[f32], q: &[f32]) -> f64 {
    let lse = |x: &[f32]| {
        let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        m + x.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln()
    };
    let (lp, lq) = (lse(p), lse(q));
    p.iter().zip(q).map(|(&a, &b)| {
        let la = a as f64 - lp;
        la.exp() * (la - (b as f64 - lq))
    }).sum()
}

fn compare(what: &str, got: &Tensor, want: &Tensor) {
    let scale = want.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    let diff = max_abs_diff(got, want);
    let rows = |t: &Tensor| t.squeeze(0).unwrap().to_vec2::<f32>().unwrap();
    let (g, w) = (rows(got), rows(want));
    let kls: Vec<f64> = w.iter().zip(&g).map(|(a, b)| kl(a, b)).collect();
    let mean_kl = kls.iter().sum::<f64>() / kls.len() as f64;
    let max_kl = kls.iter().copied().fold(0.0, f64::max);
    let top = |t: &Tensor| t.squeeze(0).unwrap().argmax(1).unwrap().to_vec1::<u32>().unwrap();
    let (a, b) = (top(got), top(want));
    let agree = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    eprintln!(
        "{what}: max |diff| {diff:.4} of max |logit| {scale:.2}; KL mean {mean_kl:.5} max {max_kl:.4}; top-1 agrees at {agree}/{}",
        a.len()
    );
    assert!(mean_kl <= REAL_Q8_MEAN_KL && max_kl <= REAL_Q8_MAX_KL, "{what}: KL mean {mean_kl} max {max_kl}");
    assert!(diff <= REAL_Q8_REL_TOL * scale, "{what}: {diff} vs {scale}");
    assert!(agree * 10 >= a.len() * 9, "{what}: top-1 agrees at {agree}/{}", a.len());
    // The next token after the prompt: the same, or one the f32 model itself nearly ties with.
    let (ours, theirs) = (*a.last().unwrap() as usize, *b.last().unwrap() as usize);
    let last = w.last().unwrap();
    let margin = last[theirs] - last[ours];
    assert!(margin <= F32_TIE, "{what}: next token {ours} instead of {theirs}, which f32 prefers by {margin} logits");
}

/// Logits within which the f32 model is undecided between two tokens. The test prompt's next
/// token is such a case: f32 prefers token 504 to token 60 by 0.08 logits, and rounding to
/// Q8_0 can tip it either way (candle's int8 kernel kept 504 by 0.02, the panel prefill, closer
/// to f32 on every other measure, picks 60 by 0.03).
const F32_TIE: f32 = 0.25;

/// Greedy decoding of `q` may leave greedy f32 decoding only where f32 nearly ties (`F32_TIE`).
fn assert_greedy_tracks(m: &CausalLm, q: &dyn wotd_native::generate::engine::DecodeModel, prompt: &Tensor, n: usize) {
    let (ours, theirs) = (greedy(q, prompt, n), greedy(m, prompt, n));
    let Some(i) = ours.iter().zip(&theirs).position(|(a, b)| a != b) else { return };
    let mut ids = prompt.squeeze(0).unwrap().to_vec1::<u32>().unwrap();
    ids.extend(&theirs[..i]);
    let x = Tensor::new(ids.as_slice(), m.device()).unwrap().unsqueeze(0).unwrap();
    let logits = m.forward_no_grad(&x, None, None).unwrap().squeeze(0).unwrap().to_vec2::<f32>().unwrap();
    let row = logits.last().unwrap();
    let margin = row[theirs[i] as usize] - row[ours[i] as usize];
    assert!(margin <= F32_TIE, "greedy Q8_0 left f32 at token {i} ({} instead of {}), where f32 prefers its own by {margin} logits", ours[i], theirs[i]);
}

fn greedy(m: &dyn wotd_native::generate::engine::DecodeModel, prompt: &Tensor, n: usize) -> Vec<u32> {
    let mut cache = m.new_cache();
    let mut logits = m.last_logits(prompt, None, &mut cache).unwrap();
    let mut out = Vec::new();
    for _ in 0..n {
        let id = logits.argmax(1).unwrap().to_vec1::<u32>().unwrap()[0];
        out.push(id);
        if id == 2 {
            break;
        }
        let x = Tensor::new(&[[id]], prompt.device()).unwrap();
        logits = m.last_logits(&x, None, &mut cache).unwrap();
    }
    out
}

#[test]
fn smollm2_q8_0_decoding_tracks_f32() {
    let Some(m) = real_smollm2() else { return };
    let x = prompt_ids(&m);
    let want = m.forward_no_grad(&x, None, None).unwrap();
    let q = QuantizedLm::from_causal_lm(&m, GgmlDType::Q8_0).unwrap();
    assert_eq!(q.matrix_counts().1, 0, "every matrix of SmolLM2 splits into Q8_0 blocks");
    compare("SmolLM2 Q8_0 decoding", &q.forward(&x, None, None).unwrap(), &want);
    let tok = m.tokenizer().unwrap();
    assert_greedy_tracks(&m, &q, &x, 12);
    assert_eq!(tok.decode(&greedy(&m, &x, 12), true).unwrap(), "The capital of France is Paris.");
}

#[test]
fn smollm2_q8_0_gguf_export_reloads_with_the_same_tokenizer() {
    let Some(m) = real_smollm2() else { return };
    let dir = std::env::temp_dir().join(format!("wotd-real-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("smollm2-q8_0.gguf");
    let started = Instant::now();
    let r = export_causal_lm(&m, &path, &GgufExportOptions::default()).unwrap();
    eprintln!("exported {} bytes, {:?} in {:.1}s", r.bytes, r.dtypes, started.elapsed().as_secs_f64());
    let back = CausalLm::load_path(&path, None).unwrap();
    assert_eq!(back.config(), m.config());
    let (a, b) = (m.tokenizer().unwrap(), back.tokenizer().unwrap());
    for text in [PROMPT, "lucid, serene, o'clock 2024 café", "  spaced\n\ttabs  "] {
        assert_eq!(a.encode(text, false).unwrap().ids, b.encode(text, false).unwrap().ids, "{text:?}");
    }
    assert_eq!(a.chat_template(), b.chat_template());
    let x = prompt_ids(&m);
    compare("SmolLM2 Q8_0 GGUF", &back.forward_no_grad(&x, None, None).unwrap(), &m.forward_no_grad(&x, None, None).unwrap());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
#[ignore = "benchmark: trains an adapter on the real model, then times generation"]
fn smollm2_word_generation_timings() {
    use std::sync::atomic::AtomicBool;
    use wotd_native::dsl::parse;
    use wotd_native::generate::{GeneratorOptions, EngineOptions, PromptVocab, Weights, WordGenerator, WordOptions};
    use wotd_native::io::ResolveOptions;
    use wotd_native::rvq::AttributeVocab;
    use wotd_native::train::dsl::{train_dsl, DslTrainRequest, ExampleSource};
    use wotd_native::train::{ExampleOptions, LabeledWord, TrainConfig};

    if real_smollm2().is_none() {
        return;
    }
    let steps: usize = std::env::var("WOTD_BENCH_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(40);
    // Aligned IDs from the lexicon's labels: code 8k + nuance for attribute value k.
    let styles = ["classical", "modern", "romantic", "neutral"];
    let complexities = ["simple", "beautiful", "complex", "plain"];
    let eras = ["shakespearean", "victorian", "modernist", "contemporary"];
    let lexicon = fixture("..").join("lexicon");
    let mut words = Vec::new();
    for s in styles {
        let text = std::fs::read_to_string(lexicon.join(format!("{s}.jsonl"))).unwrap();
        for (i, line) in text.lines().enumerate().filter(|(i, _)| i % 4 == 0) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let pos = |list: &[&str], key: &str| list.iter().position(|x| *x == v[key].as_str().unwrap()).unwrap() as u8;
            let n = (i % 8) as u8;
            let id = [pos(&styles, "style") * 8 + n, pos(&complexities, "complexity") * 8 + n, pos(&eras, "era") * 8 + n, (i % 32) as u8];
            words.push(LabeledWord { word: v["word"].as_str().unwrap().to_string(), id });
        }
    }
    // WOTD_BENCH_DIR keeps the trained adapter between runs (training dominates the run time).
    let keep = std::env::var_os("WOTD_BENCH_DIR").map(std::path::PathBuf::from);
    let out_dir = keep.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("wotd-bench-dsl-{}", std::process::id())));
    let adapter_dir = out_dir.join("adapter");
    let req = DslTrainRequest {
        base_model: "HuggingFaceTB/SmolLM2-135M-Instruct".into(),
        resolve: ResolveOptions { offline: true, ..Default::default() },
        source: ExampleSource::Words { words: words.clone(), options: ExampleOptions { validation_fraction: 0.0, seed: 1, ..Default::default() } },
        vocab: Some(AttributeVocab::default()),
        system_prompt: None,
        lora: wotd_native::io::peft::LoraConfig { r: 16, alpha: 32.0, dropout: 0.0, seed: 1, ..Default::default() },
        max_length: 160,
        train: TrainConfig { epochs: None, max_steps: Some(steps), batch_size: 8, lr: 1e-3, warmup_steps: 4, eval_every: 0, checkpoint_every: 0, ..Default::default() },
        out_dir: out_dir.clone(),
        resume: false,
        gradient_checkpointing: 2,
    };
    if !adapter_dir.join("adapter_model.safetensors").is_file() {
        let started = Instant::now();
        let outcome = train_dsl(req, &mut |_| {}, &AtomicBool::new(false)).unwrap();
        let o = &outcome.outcome;
        eprintln!(
            "trained {} steps on {} examples in {:.0}s: loss {:.3} -> {:.3}",
            o.steps,
            outcome.train_examples,
            started.elapsed().as_secs_f64(),
            o.losses[0],
            o.final_loss.unwrap()
        );
        assert_eq!(o.adapter_dir, adapter_dir);
    }
    eprintln!("candle threads: {}", candle_core::utils::get_num_threads());
    let patterns = ["[8,*,*,*]", "[16,9,*,*]", "[2,*,*,*]", "[24,*,26,*]", "[*,8,*,*]", "[0,16,0,*]", "[*,*,24,*]", "[17,25,*,*]"];
    let training: Vec<String> = words.iter().map(|w| w.word.clone()).collect();
    for weights in [Weights::F32, Weights::Q8_0] {
        let load_started = Instant::now();
        let g = WordGenerator::load(
            "HuggingFaceTB/SmolLM2-135M-Instruct",
            &GeneratorOptions {
                resolve: ResolveOptions { offline: true, ..Default::default() },
                adapter_dir: Some(adapter_dir.clone()),
                engine: EngineOptions { merge: true, weights, prompt_vocab: PromptVocab::Auto },
            },
        )
        .unwrap();
        let load_s = load_started.elapsed().as_secs_f64();
        let mut per_word = Vec::new();
        let (mut total_words, mut novel, mut in_lexicon) = (0, 0, 0);
        for (i, p) in patterns.iter().enumerate() {
            let out = g.generate(&parse(p).unwrap(), &WordOptions { count: 10, seed: i as u64, ..Default::default() }).unwrap();
            per_word.push(out.ms_per_word);
            total_words += out.words.len();
            novel += out.words.iter().filter(|w| !training.contains(w)).count();
            in_lexicon += out.words.iter().filter(|w| training.contains(w)).count();
            if i == 0 {
                eprintln!("  {p} -> {:?} ({} tokens, {:.0} ms)", out.words, out.tokens, out.elapsed_ms);
            }
        }
        per_word.sort_by(f64::total_cmp);
        let pct = |q: f64| per_word[((per_word.len() - 1) as f64 * q).round() as usize];
        eprintln!(
            "{}: load {load_s:.1}s; ms/word p50 {:.1} p95 {:.1} over {} patterns; {total_words} words ({in_lexicon} training words, {novel} novel)",
            weights.as_str(),
            pct(0.5),
            pct(0.95),
            patterns.len()
        );
    }
    if keep.is_none() {
        std::fs::remove_dir_all(&out_dir).ok();
    }
}

#[test]
#[ignore = "benchmark: one decoding step of f32 vs Q8_0"]
fn smollm2_step_timings() {
    use wotd_native::generate::engine::{repeat_cache, DecodeModel};
    let Some(m) = real_smollm2() else { return };
    let q = QuantizedLm::from_causal_lm(&m, GgmlDType::Q8_0).unwrap();
    let x = prompt_ids(&m);
    let models: [(&str, &dyn DecodeModel); 2] = [("f32", &m), ("q8_0", &q)];
    for (name, model) in models {
        for rows in [1usize, 4, 8, 16] {
            let mut one = model.new_cache();
            let t0 = Instant::now();
            model.last_logits(&x, None, &mut one).unwrap();
            let prefill = t0.elapsed().as_secs_f64() * 1e3;
            let mut cache = repeat_cache(model, &one, rows).unwrap();
            let ids = Tensor::from_vec(vec![504u32; rows], (rows, 1), m.device()).unwrap();
            let n = 12;
            let t0 = Instant::now();
            for _ in 0..n {
                model.last_logits(&ids, None, &mut cache).unwrap();
            }
            let step = t0.elapsed().as_secs_f64() * 1e3 / n as f64;
            eprintln!("{name}: prefill {} tokens {prefill:.0} ms; decode step with {rows} rows {step:.1} ms", x.dims()[1]);
        }
    }
}
