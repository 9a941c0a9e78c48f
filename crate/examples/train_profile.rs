//! A steady harness for the LoRA training step: loads a base model from the local model cache,
//! trains `--steps` steps of DSL examples built from the bundled lexicon (batch 8, the pipeline's
//! LoRA, no activation checkpointing unless `--checkpointing N`) and prints tokens/s per step
//! and the median. Meant for `perf record` and before/after comparisons of kernels; the
//! like-for-like comparison with transformers + PEFT is `npm run bench`.
//!
//!     cargo run --release --no-default-features --example train_profile -- \
//!         --model HuggingFaceTB/SmolLM2-135M-Instruct --steps 20

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;
use wotd_native::io::ResolveOptions;
use wotd_native::io::peft::LoraConfig;
use wotd_native::rvq::AttributeVocab;
use wotd_native::train::config::TrainConfig;
use wotd_native::train::dsl::{train_dsl, DslTrainRequest, ExampleSource};
use wotd_native::train::examples::{ExampleOptions, LabeledWord};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn lexicon_words(dir: &std::path::Path) -> Vec<LabeledWord> {
    let mut out = Vec::new();
    let mut state = 0x9E3779B97F4A7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (style, file) in ["classical", "modern", "neutral", "romantic"].iter().enumerate() {
        let text = std::fs::read_to_string(dir.join(format!("{file}.jsonl"))).expect("lexicon file");
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).expect("lexicon line");
            let word = v["word"].as_str().expect("word").to_string();
            let r = next();
            // Aligned codebooks: the attribute's value in the top 3 bits of a level's code.
            let id = [
                (style as u8) * 8 + (r % 8) as u8,
                ((r >> 8) % 32) as u8,
                ((r >> 16) % 32) as u8,
                ((r >> 24) % 32) as u8,
            ];
            out.push(LabeledWord { word, id });
        }
    }
    out
}

fn main() {
    wotd_native::runtime::configure_cpu_threads();
    let model = arg("--model").unwrap_or_else(|| "HuggingFaceTB/SmolLM2-135M-Instruct".into());
    let steps: usize = arg("--steps").map(|s| s.parse().expect("--steps")).unwrap_or(20);
    let batch: usize = arg("--batch").map(|s| s.parse().expect("--batch")).unwrap_or(8);
    let ckpt: usize = arg("--checkpointing").map(|s| s.parse().expect("--checkpointing")).unwrap_or(0);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let words = lexicon_words(&root.join("data/lexicon"));
    let out_dir = std::env::temp_dir().join(format!("wotd-train-profile-{}", std::process::id()));
    let req = DslTrainRequest {
        base_model: model,
        resolve: ResolveOptions { offline: true, ..Default::default() },
        source: ExampleSource::Words { words, options: ExampleOptions { seed: 42, max_patterns_per_kind: Some(40), validation_fraction: 0.0, ..Default::default() } },
        vocab: Some(AttributeVocab::default()),
        system_prompt: None,
        lora: LoraConfig { r: 16, alpha: 32.0, dropout: 0.05, ..Default::default() },
        max_length: 256,
        train: TrainConfig {
            max_steps: Some(steps),
            batch_size: batch,
            lr: 2e-4,
            warmup_steps: 0,
            eval_every: 0,
            checkpoint_every: 0,
            seed: 42,
            ..Default::default()
        },
        out_dir: out_dir.clone(),
        resume: false,
        gradient_checkpointing: ckpt,
    };
    let mut last = Instant::now();
    let mut rates = Vec::new();
    let cancel = AtomicBool::new(false);
    let started = Instant::now();
    let outcome = train_dsl(
        req,
        &mut |p| {
            let dt = last.elapsed().as_secs_f64();
            last = Instant::now();
            rates.push(dt);
            eprintln!("step {:>3}/{} {:>6.3} s  loss {:.3}  cumulative {:.1} tok/s", p.step, p.total_steps, dt, p.loss, p.tokens_per_second);
        },
        &cancel,
    )
    .expect("training");
    let _ = std::fs::remove_dir_all(&out_dir);
    let mut later: Vec<f64> = rates.iter().skip(1).copied().collect();
    later.sort_by(|a, b| a.total_cmp(b));
    let tokens_per_step = outcome.train_tokens as f64 / outcome.train_examples as f64 * batch as f64;
    println!(
        "{{\"steps\":{},\"tokens_per_s\":{:.2},\"median_step_s\":{:.4},\"approx_tokens_per_step\":{:.0},\"wall_s\":{:.2}}}",
        steps,
        outcome.outcome.tokens_per_second,
        later.get(later.len() / 2).copied().unwrap_or(f64::NAN),
        tokens_per_step,
        started.elapsed().as_secs_f64()
    );
}
