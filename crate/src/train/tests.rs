//! The loop end to end on the stand-in model: learning, resume, cancellation, checkpoints.

use super::checkpoint;
use crate::nn::loss::masked_nll_sum;
use super::optim::GradAccumulator;
use super::tiny::TinyLm;
use super::*;
use crate::dsl::Pattern;
use crate::io::TextTokenizer;
use crate::prompt::{self, ChatFormat};
use crate::random::SeededRng;
use crate::WotdError;
use candle_core::{Device, Tensor};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

pub(crate) fn fixture_tokenizer() -> TextTokenizer {
    TextTokenizer::from_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/fixtures/llama")).unwrap()
}

/// Four IDs, two words each, no word shared.
pub(crate) fn four_patterns() -> Vec<LabeledWord> {
    let rows: [([u8; 4], [&str; 2]); 4] = [
        ([1, 2, 3, 4], ["amber", "lucid"]),
        ([1, 2, 3, 5], ["velvet", "quiet"]),
        ([7, 0, 9, 1], ["ember", "solace"]),
        ([20, 11, 2, 30], ["zephyr", "halcyon"]),
    ];
    rows.iter().flat_map(|(id, ws)| ws.iter().map(|w| LabeledWord { word: w.to_string(), id: *id })).collect()
}

fn encoder(tok: &TextTokenizer) -> ExampleEncoder<'_> {
    ExampleEncoder::new(tok, ChatFormat::from_tokenizer(tok).unwrap(), Some(crate::rvq::AttributeVocab::default()), 256)
}

fn data(tok: &TextTokenizer, split: &ExampleSplit) -> TrainData {
    let enc = encoder(tok);
    TrainData { train: enc.encode_all(&split.train).unwrap(), validation: enc.encode_all(&split.validation).unwrap() }
}

fn tempdir(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("wotd-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

fn base_config() -> TrainConfig {
    TrainConfig {
        epochs: None,
        max_steps: Some(10),
        batch_size: 2,
        grad_accum: 1,
        lr: 1e-2,
        min_lr: 1e-3,
        warmup_steps: 3,
        adamw: AdamWConfig { weight_decay: 0.01, ..Default::default() },
        max_grad_norm: 1.0,
        eval_every: 0,
        patience: 0,
        min_delta: 0.0,
        checkpoint_every: 0,
        keep_checkpoints: 0,
        seed: 5,
        group_by_length: true,
        pad_token_id: 2,
        pause_at_step: None,
    }
}

fn adapter_values(m: &TinyLm) -> Vec<Vec<f32>> {
    m.trainable_vars().iter().map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap()).collect()
}

fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn no_progress() -> impl FnMut(&Progress) {
    |_| {}
}

/// Greedy decoding without a cache: enough for a model this small.
fn greedy(model: &TinyLm, prompt: &[u32], stop: u32, max_new: usize) -> Vec<u32> {
    let mut ids = prompt.to_vec();
    for _ in 0..max_new {
        let t = ids.len();
        let input = Tensor::from_vec(ids.clone(), (1, t), &Device::Cpu).unwrap();
        let mask = Tensor::ones((1, t), candle_core::DType::U32, &Device::Cpu).unwrap();
        let logits = model.forward_eval(&input, &mask).unwrap();
        let last = logits.get(0).unwrap().get(t - 1).unwrap().argmax(0).unwrap().to_scalar::<u32>().unwrap();
        ids.push(last);
        if last == stop {
            break;
        }
    }
    ids[prompt.len()..].to_vec()
}

#[test]
fn tiny_model_learns_four_patterns_to_their_exact_words() -> crate::Result<()> {
    let tok = fixture_tokenizer();
    let opts = ExampleOptions { kinds: vec![PatternKind::Full], validation_fraction: 0.0, seed: 3, ..Default::default() };
    let split = sample_examples(&four_patterns(), &opts)?;
    assert_eq!(split.train.len(), 4);
    let data = data(&tok, &split);
    let model = TinyLm::new(tok.vocab_size(), 1, 2, 0.0)?;
    let cfg = TrainConfig { max_steps: Some(150), batch_size: 4, warmup_steps: 5, adamw: AdamWConfig::default(), ..base_config() };
    let dir = tempdir("learn");
    let out = Trainer::new(&model, &data, cfg, &dir)?.run(false, &mut no_progress(), &AtomicBool::new(false))?;
    assert_eq!(out.stopped, StopReason::Done);
    assert_eq!(out.steps, 150);
    let first = out.losses[0];
    let last = out.final_loss.unwrap();
    assert!(first > 2.0 && last < 0.02, "loss {first} -> {last}");

    let enc = encoder(&tok);
    let eot = enc.chat().end_of_turn();
    for ex in &split.train {
        let answer = greedy(&model, &enc.prompt_ids(&ex.pattern, &ex.seeds)?, eot, 40);
        assert_eq!(answer.last(), Some(&eot), "stops with the end-of-turn token");
        let text = tok.decode(&answer[..answer.len() - 1], false)?;
        assert_eq!(text, ex.words.join(", "), "{}", ex.pattern);
    }
    assert!(dir.join("adapter").join(model::ADAPTER_WEIGHTS).is_file());
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

/// A small run with everything switched on: dropout, accumulation, evaluation, checkpoints.
fn resumable_setup(tok: &TextTokenizer) -> (TrainData, TrainConfig) {
    let words: Vec<LabeledWord> = (0..24u8)
        .map(|i| LabeledWord { word: format!("word{i}"), id: [i % 3, i % 2, i % 4, i % 5] })
        .collect();
    let opts = ExampleOptions { seed: 4, max_words: 4, validation_fraction: 0.2, max_patterns_per_kind: Some(4), ..Default::default() };
    let split = sample_examples(&words, &opts).unwrap();
    let cfg = TrainConfig {
        max_steps: None,
        epochs: Some(4),
        batch_size: 3,
        grad_accum: 2,
        eval_every: 2,
        patience: 0,
        checkpoint_every: 3,
        keep_checkpoints: 0,
        ..base_config()
    };
    (data(tok, &split), cfg)
}

#[test]
fn resume_after_cancel_equals_an_uninterrupted_run() -> crate::Result<()> {
    let tok = fixture_tokenizer();
    let (data, cfg) = resumable_setup(&tok);

    let reference = TinyLm::new(tok.vocab_size(), 1, 2, 0.1)?;
    let dir_a = tempdir("resume-a");
    let full = Trainer::new(&reference, &data, cfg.clone(), &dir_a)?.run(false, &mut no_progress(), &AtomicBool::new(false))?;
    assert!(full.steps >= 8, "the run must be long enough to interrupt: {}", full.steps);

    let dir_b = tempdir("resume-b");
    let cancel = AtomicBool::new(false);
    let interrupted = TinyLm::new(tok.vocab_size(), 1, 2, 0.1)?;
    let mut stop_at_5 = |p: &Progress| {
        if p.step == 5 {
            cancel.store(true, Ordering::SeqCst);
        }
    };
    let err = Trainer::new(&interrupted, &data, cfg.clone(), &dir_b)?.run(false, &mut stop_at_5, &cancel).unwrap_err();
    assert!(matches!(err, WotdError::Cancelled), "{err:?}");
    let resumable = checkpoint::latest_complete(&dir_b)?.unwrap();
    assert!(resumable.ends_with("checkpoint-5"), "cancel writes a checkpoint at the step it stopped: {resumable:?}");

    // A different adapter init proves the resume restores weights rather than recomputing them.
    let resumed_model = TinyLm::new(tok.vocab_size(), 1, 99, 0.1)?;
    let mut steps_seen = Vec::new();
    let resumed = Trainer::new(&resumed_model, &data, cfg, &dir_b)?.run(true, &mut |p| steps_seen.push(p.step), &AtomicBool::new(false))?;
    assert_eq!(steps_seen.first(), Some(&6), "continues after the checkpoint");
    assert_eq!(resumed.steps, full.steps);
    let diff = max_abs_diff(&adapter_values(&reference), &adapter_values(&resumed_model));
    assert!(diff <= 1e-6, "adapter differs by {diff}");
    assert_eq!(resumed.losses.len(), full.losses.len());
    for (a, b) in resumed.losses.iter().zip(&full.losses) {
        assert!((a - b).abs() <= 1e-6, "{:?} vs {:?}", resumed.losses, full.losses);
    }
    assert_eq!(resumed.val_losses.len(), full.val_losses.len());
    assert!(full.losses.iter().all(|l| l.is_finite()) && full.best_val_loss.is_some());
    std::fs::remove_dir_all(&dir_a).ok();
    std::fs::remove_dir_all(&dir_b).ok();
    Ok(())
}

#[test]
fn incomplete_checkpoints_are_ignored_and_corrupt_ones_refused() -> crate::Result<()> {
    let tok = fixture_tokenizer();
    let (data, cfg) = resumable_setup(&tok);
    let cfg = TrainConfig { epochs: None, max_steps: Some(6), ..cfg };
    let reference = TinyLm::new(tok.vocab_size(), 1, 2, 0.1)?;
    let dir = tempdir("incomplete");
    let full = Trainer::new(&reference, &data, cfg.clone(), &dir)?.run(false, &mut no_progress(), &AtomicBool::new(false))?;
    assert_eq!(full.steps, 6);

    // Stop a second run at 3, then plant a later checkpoint that never got its marker, as a
    // crash between the rename and the marker (or a cut-short copy) would leave it.
    let dir_b = tempdir("incomplete-b");
    let cancel = AtomicBool::new(false);
    let model = TinyLm::new(tok.vocab_size(), 1, 2, 0.1)?;
    let mut stop_at_3 = |p: &Progress| cancel.store(p.step == 3, Ordering::SeqCst);
    assert!(Trainer::new(&model, &data, cfg.clone(), &dir_b)?.run(false, &mut stop_at_3, &cancel).is_err());
    let planted = dir_b.join("checkpoint-5");
    std::fs::create_dir_all(&planted).unwrap();
    for f in std::fs::read_dir(dir_b.join("checkpoint-3")).unwrap() {
        let f = f.unwrap();
        if f.file_name() != checkpoint::MARKER {
            std::fs::copy(f.path(), planted.join(f.file_name())).unwrap();
        }
    }
    assert!(checkpoint::latest_complete(&dir_b)?.unwrap().ends_with("checkpoint-3"));

    let resumed_model = TinyLm::new(tok.vocab_size(), 1, 7, 0.1)?;
    let mut first = None;
    let out = Trainer::new(&resumed_model, &data, cfg.clone(), &dir_b)?.run(true, &mut |p| { first.get_or_insert(p.step); }, &AtomicBool::new(false))?;
    assert_eq!(first, Some(4));
    assert_eq!(out.steps, 6);
    assert!(max_abs_diff(&adapter_values(&reference), &adapter_values(&resumed_model)) <= 1e-6);

    // A complete checkpoint whose bytes changed afterwards is reported, not trained on.
    let latest = checkpoint::latest_complete(&dir_b)?.unwrap();
    let state = latest.join(checkpoint::STATE_FILE);
    let mut text = std::fs::read_to_string(&state).unwrap();
    text = text.replacen("\"step\": 6", "\"step\": 7", 1);
    assert_eq!(text.len(), std::fs::metadata(&state).unwrap().len() as usize);
    std::fs::write(&state, text).unwrap();
    let err = checkpoint::read::<state::RunState>(&latest, &Device::Cpu).err().unwrap();
    assert_eq!(err.code(), "CORRUPT_FILE");
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&dir_b).ok();
    Ok(())
}

#[test]
fn pausing_and_resuming_equals_an_uninterrupted_run() -> crate::Result<()> {
    let tok = fixture_tokenizer();
    let (data, cfg) = resumable_setup(&tok);
    let reference = TinyLm::new(tok.vocab_size(), 1, 2, 0.1)?;
    let dir_a = tempdir("pause-a");
    let full = Trainer::new(&reference, &data, cfg.clone(), &dir_a)?.run(false, &mut no_progress(), &AtomicBool::new(false))?;

    let dir_b = tempdir("pause-b");
    let paused_model = TinyLm::new(tok.vocab_size(), 1, 2, 0.1)?;
    let paused = Trainer::new(&paused_model, &data, TrainConfig { pause_at_step: Some(3), ..cfg.clone() }, &dir_b)?.run(false, &mut no_progress(), &AtomicBool::new(false))?;
    assert_eq!((paused.stopped, paused.steps), (StopReason::Paused, 3));
    assert!(paused.adapter_dir.is_dir(), "a pause leaves the adapter to evaluate");
    // Pausing again later, then running to the end with a fresh init: the same as never pausing.
    let later = Trainer::new(&paused_model, &data, TrainConfig { pause_at_step: Some(6), ..cfg.clone() }, &dir_b)?.run(true, &mut no_progress(), &AtomicBool::new(false))?;
    assert_eq!((later.stopped, later.steps), (StopReason::Paused, 6));
    let resumed_model = TinyLm::new(tok.vocab_size(), 1, 77, 0.1)?;
    let done = Trainer::new(&resumed_model, &data, cfg, &dir_b)?.run(true, &mut no_progress(), &AtomicBool::new(false))?;
    assert_eq!((done.stopped, done.steps), (full.stopped, full.steps));
    let diff = max_abs_diff(&adapter_values(&reference), &adapter_values(&resumed_model));
    assert!(diff <= 1e-6, "adapter differs by {diff}");
    std::fs::remove_dir_all(&dir_a).ok();
    std::fs::remove_dir_all(&dir_b).ok();
    Ok(())
}

#[test]
fn cancellation_stops_promptly_and_resumes_to_completion() -> crate::Result<()> {
    let tok = fixture_tokenizer();
    let (data, cfg) = resumable_setup(&tok);
    let cfg = TrainConfig { epochs: None, max_steps: Some(5), checkpoint_every: 0, ..cfg };
    let model = TinyLm::new(tok.vocab_size(), 1, 2, 0.0)?;
    let dir = tempdir("cancel");

    // Cancelled before the first step: nothing trained, still a checkpoint to resume from.
    let out = Trainer::new(&model, &data, cfg.clone(), &dir)?.run_until_stopped(false, &mut no_progress(), &AtomicBool::new(true))?;
    assert_eq!((out.stopped, out.steps), (StopReason::Cancelled, 0));
    assert!(checkpoint::latest_complete(&dir)?.unwrap().ends_with("checkpoint-0"));

    // Cancelled during step 2's report: step 3 never starts.
    let cancel = AtomicBool::new(false);
    let mut at_2 = |p: &Progress| cancel.store(p.step >= 2, Ordering::SeqCst);
    let out = Trainer::new(&model, &data, cfg.clone(), &dir)?.run_until_stopped(true, &mut at_2, &cancel)?;
    assert_eq!((out.stopped, out.steps), (StopReason::Cancelled, 2));
    assert_eq!(out.losses.len(), 2);
    assert!(out.last_checkpoint.as_ref().unwrap().ends_with("checkpoint-2"));

    let done = Trainer::new(&model, &data, cfg.clone(), &dir)?.run(true, &mut no_progress(), &AtomicBool::new(false))?;
    assert_eq!((done.stopped, done.steps, done.losses.len()), (StopReason::Done, 5, 5));
    // Resuming a finished run trains nothing more and reports the same outcome.
    let again = Trainer::new(&model, &data, cfg, &dir)?.run(true, &mut |_| panic!("no step expected"), &AtomicBool::new(false))?;
    assert_eq!((again.steps, again.losses.clone()), (5, done.losses.clone()));
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

#[test]
fn checkpoints_are_pruned_to_the_newest_and_settings_must_match_to_resume() -> crate::Result<()> {
    let tok = fixture_tokenizer();
    let (data, cfg) = resumable_setup(&tok);
    let cfg = TrainConfig { epochs: None, max_steps: Some(5), checkpoint_every: 1, keep_checkpoints: 2, ..cfg };
    let model = TinyLm::new(tok.vocab_size(), 1, 2, 0.0)?;
    let dir = tempdir("prune");
    let mut written = Vec::new();
    Trainer::new(&model, &data, cfg.clone(), &dir)?.run(false, &mut |p| written.extend(p.checkpoint.clone()), &AtomicBool::new(false))?;
    assert_eq!(written.len(), 5);
    let mut left: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    left.sort();
    assert_eq!(left, vec!["adapter", "best-adapter", "checkpoint-4", "checkpoint-5"]);

    let changed = TrainConfig { lr: 5e-3, ..cfg.clone() };
    let err = Trainer::new(&model, &data, changed, &dir)?.run(true, &mut no_progress(), &AtomicBool::new(false)).unwrap_err();
    assert!(err.to_string().contains("lr: 0.01 then, 0.005 now"), "{err}");
    // Checkpoint cadence is not part of the trajectory.
    let cadence = TrainConfig { checkpoint_every: 2, keep_checkpoints: 1, ..cfg };
    assert_eq!(Trainer::new(&model, &data, cadence, &dir)?.run(true, &mut no_progress(), &AtomicBool::new(false))?.steps, 5);
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

#[test]
fn early_stopping_ends_when_validation_stops_improving() -> crate::Result<()> {
    let tok = fixture_tokenizer();
    // Validation asks the training patterns for other words: fitting the training answers makes
    // validation worse after the shared format (separators, end of turn) is learned.
    let train = sample_examples(&four_patterns(), &ExampleOptions { kinds: vec![PatternKind::Full], validation_fraction: 0.0, ..Default::default() })?;
    let validation: Vec<TextExample> = train
        .train
        .iter()
        .map(|e| TextExample { pattern: e.pattern, words: vec!["unrelated".into(), "other".into()], seeds: vec![] })
        .collect();
    let enc = encoder(&tok);
    let data = TrainData { train: enc.encode_all(&train.train)?, validation: enc.encode_all(&validation)? };
    let cfg = TrainConfig { max_steps: Some(200), batch_size: 4, eval_every: 5, patience: 2, ..base_config() };
    let model = TinyLm::new(tok.vocab_size(), 1, 2, 0.0)?;
    let dir = tempdir("early");
    let out = Trainer::new(&model, &data, cfg, &dir)?.run(false, &mut no_progress(), &AtomicBool::new(false))?;
    assert_eq!(out.stopped, StopReason::EarlyStop);
    assert!(out.steps < 200);
    let best = out.val_losses.iter().map(|v| v.1).fold(f64::INFINITY, f64::min);
    assert_eq!(out.best_val_loss, Some(best));
    let (last_step, _) = *out.val_losses.last().unwrap();
    assert_eq!(last_step, out.steps);
    assert_eq!(out.best_step.unwrap() + 2 * 5, out.steps, "two evaluations without improvement");
    assert!(out.best_adapter_dir.unwrap().join(model::ADAPTER_WEIGHTS).is_file());
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

#[test]
fn accumulated_micro_batches_give_the_gradient_of_one_batch() -> crate::Result<()> {
    let tok = fixture_tokenizer();
    let (data, _) = resumable_setup(&tok);
    let model = TinyLm::new(tok.vocab_size(), 1, 2, 0.0)?;
    // Give B a non-zero value so A receives gradient too.
    let vars = model.trainable_vars();
    vars[1].1.set(&Tensor::from_vec((0..tiny::WIDTH * tiny::RANK).map(|i| ((i as f32) * 0.1).sin() * 0.1).collect::<Vec<_>>(), (tiny::WIDTH, tiny::RANK), &Device::Cpu)?)?;
    let exs: Vec<&TokenizedExample> = data.train.iter().take(4).collect();
    let rng = Mutex::new(SeededRng::new(0));
    let grads_of = |groups: &[&[&TokenizedExample]]| -> crate::Result<Vec<Vec<f32>>> {
        let batches: Vec<batch::Batch> = groups.iter().map(|g| batch::collate(g, 2, &Device::Cpu)).collect::<crate::Result<_>>()?;
        let total: usize = batches.iter().map(|b| b.target_tokens).sum();
        let mut acc = GradAccumulator::new(vars.len());
        for b in &batches {
            let (sum, _) = masked_nll_sum(&model.forward_train(&b.input_ids, &b.attention_mask, &rng)?, &b.labels)?;
            acc.add(&(sum / total as f64)?.backward()?, &vars)?;
        }
        Ok(acc.take().into_iter().map(|g| g.unwrap().flatten_all().unwrap().to_vec1().unwrap()).collect())
    };
    let whole = grads_of(&[&exs])?;
    let split = grads_of(&[&exs[..1], &exs[1..]])?;
    let scale = whole.iter().flatten().map(|v| v.abs()).fold(0.0, f32::max);
    assert!(scale > 0.0 && whole.iter().all(|g| g.iter().any(|v| *v != 0.0)), "every tensor gets gradient");
    assert!(max_abs_diff(&whole, &split) <= 1e-5 * scale.max(1.0), "{}", max_abs_diff(&whole, &split));
    Ok(())
}

#[test]
fn progress_reports_every_step_with_rates_and_schedule() -> crate::Result<()> {
    let tok = fixture_tokenizer();
    let (data, cfg) = resumable_setup(&tok);
    let cfg = TrainConfig { epochs: None, max_steps: Some(4), warmup_steps: 2, checkpoint_every: 0, eval_every: 2, ..cfg };
    let model = TinyLm::new(tok.vocab_size(), 1, 2, 0.0)?;
    let dir = tempdir("progress");
    let mut seen = Vec::new();
    Trainer::new(&model, &data, cfg.clone(), &dir)?.run(false, &mut |p| seen.push(p.clone()), &AtomicBool::new(false))?;
    assert_eq!(seen.iter().map(|p| p.step).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    assert!(seen.iter().all(|p| p.total_steps == 4 && p.tokens_per_second > 0.0 && p.loss.is_finite() && p.grad_norm > 0.0));
    assert_eq!(seen.iter().map(|p| p.val_loss.is_some()).collect::<Vec<_>>(), vec![false, true, false, true]);
    let sched = Schedule::new(cfg.lr, cfg.min_lr, 2, 4)?;
    assert!(seen.iter().all(|p| (p.lr - sched.lr(p.step)).abs() < 1e-15));
    assert_eq!(seen[3].eta_seconds, 0.0);
    assert!(seen[3].checkpoint.is_some(), "the final state is always checkpointed");
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

#[test]
fn patterns_in_examples_parse_back_from_their_prompts() -> crate::Result<()> {
    // The prompt carries the canonical pattern text, which the one DSL parser reads back.
    let p: Pattern = "[ 3, *, 17, * ]".parse()?;
    let msg = prompt::user_message(&p, None, &[]);
    let inner = &msg[msg.find('[').unwrap()..=msg.find(']').unwrap()];
    assert_eq!(crate::dsl::parse(inner)?, p);
    Ok(())
}

/// Sets a flag during its `n`-th training forward, as a user cancelling mid-step would.
struct CancelDuring<'a> {
    inner: TinyLm,
    calls: std::cell::Cell<usize>,
    at: usize,
    flag: &'a AtomicBool,
}

impl TrainableLm for CancelDuring<'_> {
    fn forward_train(&self, ids: &Tensor, mask: &Tensor, dropout: &Mutex<SeededRng>) -> crate::Result<Tensor> {
        self.calls.set(self.calls.get() + 1);
        if self.calls.get() == self.at {
            self.flag.store(true, Ordering::SeqCst);
        }
        self.inner.forward_train(ids, mask, dropout)
    }

    fn forward_eval(&self, ids: &Tensor, mask: &Tensor) -> crate::Result<Tensor> {
        self.inner.forward_eval(ids, mask)
    }

    fn trainable_vars(&self) -> Vec<(String, candle_core::Var)> {
        self.inner.trainable_vars()
    }
}

#[test]
fn cancel_between_micro_batches_undoes_the_step_and_resumes_exactly() -> crate::Result<()> {
    let tok = fixture_tokenizer();
    let (data, cfg) = resumable_setup(&tok);
    let cfg = TrainConfig { epochs: None, max_steps: Some(6), checkpoint_every: 0, ..cfg };
    assert_eq!(cfg.grad_accum, 2);
    let reference = TinyLm::new(tok.vocab_size(), 1, 2, 0.1)?;
    let dir_a = tempdir("midstep-a");
    Trainer::new(&reference, &data, cfg.clone(), &dir_a)?.run(false, &mut no_progress(), &AtomicBool::new(false))?;

    // Forward 7 is the first micro-batch of step 4: the flag rises inside it, the second
    // micro-batch never runs, and step 4 is rolled back.
    let flag = AtomicBool::new(false);
    let model = CancelDuring { inner: TinyLm::new(tok.vocab_size(), 1, 2, 0.1)?, calls: 0.into(), at: 7, flag: &flag };
    let dir_b = tempdir("midstep-b");
    let out = Trainer::new(&model, &data, cfg.clone(), &dir_b)?.run_until_stopped(false, &mut no_progress(), &flag)?;
    assert_eq!((out.stopped, out.steps, model.calls.get()), (StopReason::Cancelled, 3, 7));
    assert!(out.last_checkpoint.unwrap().ends_with("checkpoint-3"));

    let resumed = TinyLm::new(tok.vocab_size(), 1, 5, 0.1)?;
    assert_eq!(Trainer::new(&resumed, &data, cfg, &dir_b)?.run(true, &mut no_progress(), &AtomicBool::new(false))?.steps, 6);
    let diff = max_abs_diff(&adapter_values(&reference), &adapter_values(&resumed));
    assert!(diff <= 1e-6, "adapter differs by {diff}");
    std::fs::remove_dir_all(&dir_a).ok();
    std::fs::remove_dir_all(&dir_b).ok();
    Ok(())
}

#[test]
fn leftovers_of_dead_checkpoint_writers_are_swept_and_a_failed_write_says_why() -> crate::Result<()> {
    let tok = fixture_tokenizer();
    let (data, cfg) = resumable_setup(&tok);
    let cfg = TrainConfig { epochs: None, max_steps: Some(2), checkpoint_every: 1, keep_checkpoints: 1, ..cfg };
    let model = TinyLm::new(tok.vocab_size(), 1, 2, 0.0)?;
    let dir = tempdir("sweep");
    // A writer killed mid-write (pid 999999999 does not run) left its temporary folder.
    let stale = dir.join(".checkpoint-7.tmp-999999999");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("optimizer.safetensors"), b"half").unwrap();
    Trainer::new(&model, &data, cfg.clone(), &dir)?.run(false, &mut no_progress(), &AtomicBool::new(false))?;
    if std::path::Path::new("/proc/self").exists() {
        assert!(!stale.exists(), "the dead writer's folder is swept");
    }
    // A checkpoint that cannot be written (its folder is a file) is an I/O error naming the
    // place and why.
    let file_dir = dir.join("not-a-folder");
    std::fs::write(&file_dir, b"x").unwrap();
    let err = Trainer::new(&model, &data, cfg, &file_dir).and_then(|t| t.run(false, &mut no_progress(), &AtomicBool::new(false))).unwrap_err();
    assert_eq!(err.code(), "IO", "{err}");
    assert!(err.to_string().contains("not-a-folder") && err.to_string().contains("os error"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
