//! The loop on the real decoder: the tiny llama fixture through `CausalLm`.

use crate::nn::loss::masked_nll_sum;
use super::tests::four_patterns;
use super::*;
use crate::models::CausalLm;
use crate::prompt::ChatFormat;
use crate::io::peft::LoraConfig;
use crate::random::SeededRng;
use candle_core::{DType, Device, Tensor};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/fixtures/llama")
}

fn model(dropout: f64, seed: u64) -> CausalLm {
    let lora = LoraConfig { r: 8, alpha: 16.0, dropout, target_modules: vec![], use_rslora: false, seed };
    CausalLm::load_path(&fixture(), Some(lora)).unwrap()
}

fn tempdir(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("wotd-train-llama-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

fn encoder(m: &CausalLm) -> ExampleEncoder<'_> {
    let tok = m.tokenizer().unwrap();
    ExampleEncoder::new(tok, ChatFormat::from_tokenizer(tok).unwrap(), Some(crate::rvq::AttributeVocab::default()), 128)
}

fn config(steps: usize) -> TrainConfig {
    TrainConfig {
        epochs: None,
        max_steps: Some(steps),
        batch_size: 4,
        grad_accum: 1,
        lr: 2e-2,
        min_lr: 2e-3,
        warmup_steps: 5,
        adamw: AdamWConfig::default(),
        max_grad_norm: 1.0,
        eval_every: 0,
        patience: 0,
        min_delta: 0.0,
        checkpoint_every: 0,
        keep_checkpoints: 0,
        seed: 11,
        group_by_length: true,
        pad_token_id: 2,
        pause_at_step: None,
    }
}

fn lora_values(m: &CausalLm) -> Vec<Vec<f32>> {
    m.lora_vars().iter().map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap()).collect()
}

fn greedy(m: &CausalLm, prompt: &[u32], stop: u32, max_new: usize) -> Vec<u32> {
    let mut ids = prompt.to_vec();
    for _ in 0..max_new {
        let t = ids.len();
        let input = Tensor::from_vec(ids.clone(), (1, t), &Device::Cpu).unwrap();
        let logits = m.forward_no_grad(&input, None, None).unwrap();
        let next = logits.get(0).unwrap().get(t - 1).unwrap().argmax(0).unwrap().to_scalar::<u32>().unwrap();
        ids.push(next);
        if next == stop {
            break;
        }
    }
    ids[prompt.len()..].to_vec()
}

#[test]
fn llama_fixture_learns_four_patterns_to_their_exact_words() -> crate::Result<()> {
    let m = model(0.0, 3);
    let split = sample_examples(&four_patterns(), &ExampleOptions { kinds: vec![PatternKind::Full], validation_fraction: 0.0, seed: 2, ..Default::default() })?;
    let enc = encoder(&m);
    let data = TrainData { train: enc.encode_all(&split.train)?, validation: vec![] };
    let dir = tempdir("learn");
    let out = Trainer::new(&m, &data, config(120), &dir)?.run(false, &mut |_| {}, &AtomicBool::new(false))?;
    let (first, last) = (out.losses[0], out.final_loss.unwrap());
    assert!(first > 3.0 && last < 0.05, "loss {first} -> {last}");
    let eot = enc.chat().end_of_turn();
    let tok = m.tokenizer().unwrap();
    for ex in &split.train {
        let answer = greedy(&m, &enc.prompt_ids(&ex.pattern, &ex.seeds)?, eot, 40);
        assert_eq!(answer.last(), Some(&eot));
        assert_eq!(tok.decode(&answer[..answer.len() - 1], false)?, ex.words.join(", "), "{}", ex.pattern);
    }
    // The saved adapter is a PEFT adapter the model loads back to the same behaviour.
    let mut reloaded = model(0.0, 99);
    reloaded.load_adapter(&out.adapter_dir)?;
    let probe = Tensor::new(enc.prompt_ids(&split.train[0].pattern, &[])?, &Device::Cpu)?.unsqueeze(0)?;
    let diff = (m.forward_no_grad(&probe, None, None)? - reloaded.forward_no_grad(&probe, None, None)?)?.abs()?.max_all()?.to_scalar::<f32>()?;
    assert!(diff < 1e-5, "{diff}");
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

#[test]
fn llama_fixture_resume_equals_an_uninterrupted_run_with_dropout() -> crate::Result<()> {
    let words: Vec<LabeledWord> =
        (0..16u8).map(|i| LabeledWord { word: format!("w{i}"), id: [i % 2, i % 3, i % 4, i % 5] }).collect();
    let opts = ExampleOptions { seed: 5, max_words: 3, max_patterns_per_kind: Some(3), validation_fraction: 0.25, ..Default::default() };
    let split = sample_examples(&words, &opts)?;
    let reference = model(0.1, 3);
    let enc = encoder(&reference);
    let data = TrainData { train: enc.encode_all(&split.train)?, validation: enc.encode_all(&split.validation)? };
    let cfg = TrainConfig { batch_size: 3, grad_accum: 2, eval_every: 2, checkpoint_every: 2, adamw: AdamWConfig { weight_decay: 0.01, ..Default::default() }, ..config(7) };

    let dir_a = tempdir("resume-a");
    let full = Trainer::new(&reference, &data, cfg.clone(), &dir_a)?.run(false, &mut |_| {}, &AtomicBool::new(false))?;
    let dir_b = tempdir("resume-b");
    let interrupted = model(0.1, 3);
    let cancel = AtomicBool::new(false);
    let mut at_3 = |p: &Progress| cancel.store(p.step == 3, Ordering::SeqCst);
    let stopped = Trainer::new(&interrupted, &data, cfg.clone(), &dir_b)?.run_until_stopped(false, &mut at_3, &cancel)?;
    assert_eq!((stopped.stopped, stopped.steps), (StopReason::Cancelled, 3));

    let resumed_model = model(0.1, 42);
    let resumed = Trainer::new(&resumed_model, &data, cfg, &dir_b)?.run(true, &mut |_| {}, &AtomicBool::new(false))?;
    assert_eq!(resumed.steps, 7);
    let a = lora_values(&reference);
    let b = lora_values(&resumed_model);
    let diff = a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(diff <= 1e-6, "adapter differs by {diff}");
    assert!(a.iter().flatten().any(|v| *v != 0.0));
    for (x, y) in full.losses.iter().zip(&resumed.losses) {
        assert!((x - y).abs() <= 1e-6, "{:?} vs {:?}", full.losses, resumed.losses);
    }
    assert_eq!(full.val_losses.len(), resumed.val_losses.len());
    std::fs::remove_dir_all(&dir_a).ok();
    std::fs::remove_dir_all(&dir_b).ok();
    Ok(())
}

#[test]
fn hidden_state_loss_equals_the_full_logits_loss_and_its_gradients() -> crate::Result<()> {
    // With dropout too: both paths must draw the same masks from equal streams.
    for dropout in [0.0, 0.2] {
        let m = model(dropout, 3);
        // A non-zero B, so A's gradient is non-zero as well.
        for (name, v) in m.lora_vars() {
            if name.contains("lora_B") {
                let n = v.elem_count();
                let vals: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.37).sin() * 0.05).collect();
                v.set(&Tensor::from_vec(vals, v.shape(), &Device::Cpu)?)?;
            }
        }
        let split = sample_examples(&four_patterns(), &ExampleOptions { validation_fraction: 0.0, ..Default::default() })?;
        let enc = encoder(&m);
        let exs = enc.encode_all(&split.train[..3])?;
        let b = batch::collate(&exs.iter().collect::<Vec<_>>(), 2, &Device::Cpu)?;
        let (rng_a, rng_b) = (Mutex::new(SeededRng::new(9)), Mutex::new(SeededRng::new(9)));
        let (fast, n1) = TrainableLm::train_loss_sum(&m, &b.input_ids, &b.attention_mask, &b.labels, &rng_a)?;
        let (full, n2) = masked_nll_sum(&TrainableLm::forward_train(&m, &b.input_ids, &b.attention_mask, &rng_b)?, &b.labels)?;
        assert_eq!(n1, n2);
        assert_eq!(rng_a.lock().unwrap().state(), rng_b.lock().unwrap().state(), "dropout {dropout}: streams diverged");
        let (f, g) = (fast.to_scalar::<f32>()?, full.to_scalar::<f32>()?);
        assert!((f - g).abs() <= 1e-4 * g.abs(), "dropout {dropout}: {f} vs {g}");
        let (ga, gb) = (fast.backward()?, full.backward()?);
        for (name, v) in m.lora_vars() {
            let (x, y) = (ga.get(v.as_tensor()).unwrap(), gb.get(v.as_tensor()).unwrap());
            let d = (x - y)?.abs()?.max_all()?.to_scalar::<f32>()?;
            let s = y.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(s > 0.0 && d <= 1e-4 * s.max(1e-3), "dropout {dropout}, {name}: {d} vs scale {s}");
        }
        let (e, ne) = TrainableLm::eval_loss_sum(&m, &b.input_ids, &b.attention_mask, &b.labels)?;
        assert_eq!(ne, n1);
        let e = e.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        if dropout == 0.0 {
            assert!((e - g).abs() <= 1e-4 * g.abs());
        } else {
            assert!((e - g).abs() > 1e-6, "dropout {dropout} changed nothing in training");
        }
    }
    Ok(())
}

#[test]
fn train_dsl_runs_stage_4_end_to_end_on_the_fixture() -> crate::Result<()> {
    use super::dsl::{train_dsl, DslTrainRequest, ExampleSource};
    use crate::prompt::PROMPT_FILE;
    let words: Vec<LabeledWord> =
        (0..20u8).map(|i| LabeledWord { word: format!("w{i}"), id: [i % 4, i % 3, i % 2, i % 5] }).collect();
    let dir = tempdir("dsl");
    let request = DslTrainRequest {
        base_model: fixture().display().to_string(),
        resolve: crate::io::ResolveOptions { offline: true, ..Default::default() },
        source: ExampleSource::Words { words, options: ExampleOptions { seed: 1, validation_fraction: 0.2, seed_words: 2, ..Default::default() } },
        vocab: Some(crate::rvq::AttributeVocab::default()),
        // The fixture's tokenizer spends a token a letter: a short system message fits its 128 positions.
        system_prompt: Some("List words.".into()),
        lora: LoraConfig { r: 4, alpha: 8.0, dropout: 0.05, target_modules: vec!["q_proj".into(), "v_proj".into()], use_rslora: false, seed: 1 },
        max_length: 10_000,
        train: TrainConfig { eval_every: 2, checkpoint_every: 3, ..config(6) },
        out_dir: dir.clone(),
        resume: false,
        gradient_checkpointing: 1,
    };
    let out = train_dsl(request, &mut |_| {}, &AtomicBool::new(false))?;
    assert_eq!((out.outcome.stopped, out.outcome.steps), (StopReason::Done, 6));
    assert!(out.train_examples > 0 && out.validation_examples > 0);
    assert!(out.outcome.losses.last().unwrap() < &out.outcome.losses[0]);
    let cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.outcome.adapter_dir.join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!(cfg["target_modules"], serde_json::json!(["q_proj", "v_proj"]));
    let note: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join(PROMPT_FILE)).unwrap()).unwrap();
    assert_eq!(note["max_length"], 128, "capped by the fixture's max_position_embeddings");
    assert_eq!(note["end_of_turn_token_id"], 2);
    assert_eq!(note["seed_words"], 2);
    assert_eq!(note["system_prompt"], "List words.");
    // Generation reads the same wording back: system message, names and seed words.
    let gen = crate::generate::WordGenerator::load(
        &fixture().display().to_string(),
        &crate::generate::GeneratorOptions {
            resolve: crate::io::ResolveOptions { offline: true, ..Default::default() },
            adapter_dir: Some(out.outcome.adapter_dir.clone()),
            engine: Default::default(),
        },
    )?;
    let p = crate::dsl::parse("[1,2,*,*]")?;
    let text = gen.tokenizer().decode(&gen.prompt_ids(&p, &["w1".into(), "w5".into()])?, false)?;
    assert!(text.contains("List words."), "{text}");
    assert!(text.contains("like w1, w5:"), "{text}");
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

#[test]
fn gradient_checkpointing_gives_the_same_loss_and_lora_gradients() -> crate::Result<()> {
    let split = sample_examples(&four_patterns(), &ExampleOptions { validation_fraction: 0.0, ..Default::default() })?;
    let mut runs = Vec::new();
    // Off, every layer, every second layer.
    for every in [0, 1, 2] {
        let mut m = model(0.2, 3);
        m.set_gradient_checkpointing(every);
        for (name, v) in m.lora_vars() {
            if name.contains("lora_B") {
                let vals: Vec<f32> = (0..v.elem_count()).map(|i| ((i as f32) * 0.37).sin() * 0.05).collect();
                v.set(&Tensor::from_vec(vals, v.shape(), &Device::Cpu)?)?;
            }
        }
        let exs = encoder(&m).encode_all(&split.train[..3])?;
        let b = batch::collate(&exs.iter().collect::<Vec<_>>(), 2, &Device::Cpu)?;
        let rng = Mutex::new(SeededRng::new(9));
        let (sum, _) = TrainableLm::train_loss_sum(&m, &b.input_ids, &b.attention_mask, &b.labels, &rng)?;
        let grads = TrainableLm::backward(&m, &sum)?;
        let per_var: Vec<(String, Vec<f32>)> = m
            .lora_vars()
            .iter()
            .map(|(n, v)| (n.clone(), grads.get(v.as_tensor()).expect(n).flatten_all().unwrap().to_vec1::<f32>().unwrap()))
            .collect();
        runs.push((sum.to_scalar::<f32>()?, per_var, rng.lock().unwrap().state()));
    }
    let (l0, g0, s0) = &runs[0];
    for (l1, g1, s1) in &runs[1..] {
        assert_eq!(s0, s1, "the dropout stream advanced differently");
        assert!((l0 - l1).abs() <= 1e-6 * l0.abs(), "{l0} vs {l1}");
        assert_eq!(g0.len(), g1.len());
        for ((name, a), (_, b)) in g0.iter().zip(g1) {
            let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
            let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(scale > 0.0 && diff <= 1e-5 * scale, "{name}: {diff} vs scale {scale}");
        }
    }
    Ok(())
}
