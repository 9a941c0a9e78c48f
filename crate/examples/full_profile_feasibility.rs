//! Can the full profile's decoder (Phi-3.5-mini-instruct, 3.8B parameters) be LoRA-tuned on
//! this CPU at all? Builds a model with its exact config and random f32 weights (the real ones
//! are not reachable offline; time and memory depend on shapes, not values), then runs the
//! project's own trainer (masked-completion loss, backward, AdamW, clipping) for a few steps
//! per batch size on synthetic DSL-length examples, and reports seconds per step and peak RSS.
//!
//!   npm run bench:full-profile
//!   = cargo run --release --no-default-features --manifest-path crate/Cargo.toml \
//!       --example full_profile_feasibility -- [flags]
//!
//!   --config PATH     HF config.json (default benchmark/full-profile/phi-3.5-mini-instruct.config.json)
//!   --batches 1,4,8   batch sizes to measure, in order (default 1,4,8; the pipeline trains at 8)
//!   --steps N         measured optimizer steps per batch size, after one warm-up step (default 3)
//!   --seq N           tokens per example (default 64: a DSL prompt in Phi-3's chat template)
//!   --answer N        labeled answer tokens at the end of each example (default 8)
//!   --rank R --alpha A --dropout P   LoRA (default 16 / 32 / 0.05, the pipeline's defaults)
//!   --checkpoint-every N   recompute every N-th layer in the backward pass (default 0: off)
//!   --out PATH        JSON result (default benchmark/results/full-profile.json; .md beside it)
//!
//! Peak RSS is read from /proc/self/status (VmHWM) and reset between phases through
//! /proc/self/clear_refs, so each batch size reports its own peak (Linux only; elsewhere the
//! figures are null).

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;
use wotd_native::models::random_weights::{decoder_parameter_count, random_decoder_weights};
use wotd_native::models::{CausalLm, DecoderConfig};
use wotd_native::io::peft::LoraConfig;
use wotd_native::random::SeededRng;
use wotd_native::train::{TokenizedExample, TrainConfig, TrainData, Trainer};

struct Args {
    config: PathBuf,
    batches: Vec<usize>,
    steps: usize,
    seq: usize,
    answer: usize,
    rank: usize,
    alpha: f64,
    dropout: f64,
    checkpoint_every: usize,
    out: PathBuf,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn parse_args() -> Args {
    let root = repo_root();
    let mut a = Args {
        config: root.join("benchmark/full-profile/phi-3.5-mini-instruct.config.json"),
        batches: vec![1, 4, 8],
        steps: 3,
        seq: 64,
        answer: 8,
        rank: 16,
        alpha: 32.0,
        dropout: 0.05,
        checkpoint_every: 0,
        out: root.join("benchmark/results/full-profile.json"),
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| fail(&format!("{flag} needs a value")));
        let num = |v: &String| v.parse::<usize>().unwrap_or_else(|_| fail(&format!("{flag}: {v:?} is not a whole number")));
        match flag.as_str() {
            "--config" => a.config = value().into(),
            "--batches" => a.batches = value().split(',').map(|s| num(&s.trim().to_string())).collect(),
            "--steps" => a.steps = num(value()),
            "--seq" => a.seq = num(value()),
            "--answer" => a.answer = num(value()),
            "--rank" => a.rank = num(value()),
            "--alpha" => a.alpha = value().parse().unwrap_or_else(|_| fail("--alpha needs a number")),
            "--dropout" => a.dropout = value().parse().unwrap_or_else(|_| fail("--dropout needs a number")),
            "--checkpoint-every" => a.checkpoint_every = num(value()),
            "--out" => a.out = value().into(),
            other => fail(&format!("unknown flag {other} (see the header of crate/examples/full_profile_feasibility.rs)")),
        }
    }
    if a.steps == 0 || a.batches.contains(&0) || a.answer == 0 || a.answer >= a.seq {
        fail("--steps and every batch must be >= 1, and 1 <= --answer < --seq");
    }
    a
}

fn fail(msg: &str) -> ! {
    eprintln!("full_profile_feasibility: {msg}");
    std::process::exit(2)
}

/// A field of /proc/self/status in bytes (`VmHWM`, `VmRSS`); None off Linux.
fn proc_status_bytes(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Starts a new peak-RSS window (Linux >= 4.0: writing 5 to clear_refs resets VmHWM).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn gib(bytes: Option<u64>) -> Value {
    bytes.map_or(Value::Null, |b| json!((b as f64 / (1u64 << 30) as f64 * 100.0).round() / 100.0))
}

/// Examples of `seq` random token ids whose last `answer` tokens are the answer.
fn synthetic_examples(count: usize, seq: usize, answer: usize, vocab: usize, seed: u64) -> Vec<TokenizedExample> {
    let mut rng = SeededRng::new(seed);
    (0..count)
        .map(|_| TokenizedExample {
            input_ids: (0..seq).map(|_| (rng.next_u64() % vocab as u64) as u32).collect(),
            loss_mask: (0..seq).map(|i| i >= seq - answer).collect(),
            words_kept: 1,
        })
        .collect()
}

fn main() {
    let args = parse_args();
    let text = std::fs::read_to_string(&args.config).unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", args.config.display())));
    let hf: Value = serde_json::from_str(&text).unwrap_or_else(|e| fail(&format!("{} is not JSON: {e}", args.config.display())));
    let cfg = DecoderConfig::from_hf(&hf).unwrap_or_else(|e| fail(&e.to_string()));
    let params = decoder_parameter_count(&cfg);
    let threads = std::env::var("CANDLE_NUM_THREADS").ok().and_then(|v| v.parse::<usize>().ok()).unwrap_or_else(num_cpus);
    eprintln!(
        "{} layers, hidden {}, vocab {}: {:.3}B parameters, {:.1} GiB of f32 weights; {threads} threads",
        cfg.num_hidden_layers,
        cfg.hidden_size,
        cfg.vocab_size,
        params as f64 / 1e9,
        params as f64 * 4.0 / (1u64 << 30) as f64
    );

    let t = Instant::now();
    let weights = random_decoder_weights(&cfg, 0.02, 0, &candle_core::Device::Cpu).unwrap_or_else(|e| fail(&e.to_string()));
    let lora = LoraConfig { r: args.rank, alpha: args.alpha, dropout: args.dropout, target_modules: vec![], use_rslora: false, seed: 0 };
    let mut model = CausalLm::from_parts(&hf, weights, None, Some(lora)).unwrap_or_else(|e| fail(&e.to_string()));
    model.set_gradient_checkpointing(args.checkpoint_every);
    let build_secs = t.elapsed().as_secs_f64();
    let lora_params: usize = model.lora_vars().iter().map(|(_, v)| v.elem_count()).sum();
    let after_build = (proc_status_bytes("VmRSS"), proc_status_bytes("VmHWM"));
    eprintln!("built in {build_secs:.1} s; RSS {} GiB; LoRA r{}: {:.1}M trainable", gib(after_build.0), args.rank, lora_params as f64 / 1e6);

    let work = std::env::temp_dir().join(format!("wotd-full-profile-{}", std::process::id()));
    let mut runs = Vec::new();
    for &batch in &args.batches {
        reset_peak_rss();
        let total_steps = args.steps + 1;
        let data = TrainData {
            train: synthetic_examples(batch * total_steps, args.seq, args.answer, cfg.vocab_size, batch as u64),
            validation: vec![],
        };
        let train_cfg = TrainConfig {
            epochs: None,
            max_steps: Some(total_steps),
            batch_size: batch,
            lr: 1e-4,
            warmup_steps: 0,
            eval_every: 0,
            patience: 0,
            checkpoint_every: 0,
            keep_checkpoints: 1,
            group_by_length: false,
            pad_token_id: cfg.pad_token_id.unwrap_or(0),
            ..TrainConfig::default()
        };
        let dir = work.join(format!("batch-{batch}"));
        let trainer = Trainer::new(&model, &data, train_cfg, &dir).unwrap_or_else(|e| fail(&e.to_string()));
        // Per-step compute seconds from the cumulative rate the trainer reports (its clock
        // leaves out checkpoint writing); the first step is a warm-up.
        let (mut step_secs, mut losses, mut last_compute) = (Vec::new(), Vec::new(), 0f64);
        let tokens_per_step = (batch * args.seq) as f64;
        let outcome = trainer
            .run(
                false,
                &mut |p| {
                    let compute = tokens_per_step * p.step as f64 / p.tokens_per_second;
                    step_secs.push(compute - last_compute);
                    last_compute = compute;
                    losses.push(p.loss);
                    eprintln!("batch {batch}: step {}/{} loss {:.3} {:.1} s", p.step, p.total_steps, p.loss, step_secs.last().unwrap());
                },
                &AtomicBool::new(false),
            )
            .unwrap_or_else(|e| fail(&e.to_string()));
        let measured = &step_secs[1..];
        let mean = measured.iter().sum::<f64>() / measured.len() as f64;
        // Forward 2N and input-gradient backward 2N per token through the frozen base, plus
        // 6N per token for the LoRA weights (forward, input and weight gradients).
        // (Recomputed layers add forward FLOPs that are not counted: this is useful work only.)
        let flops_per_token = 4.0 * params as f64 + 6.0 * lora_params as f64;
        let peak = proc_status_bytes("VmHWM");
        eprintln!("batch {batch}: {mean:.1} s/step, peak RSS {} GiB", gib(peak));
        runs.push(json!({
            "batch": batch,
            "tokens_per_step": batch * args.seq,
            "labeled_tokens_per_step": batch * args.answer,
            "warmup_step_seconds": step_secs[0],
            "step_seconds": measured,
            "seconds_per_step": mean,
            "tokens_per_second": tokens_per_step / mean,
            "achieved_gflops": flops_per_token * tokens_per_step / mean / 1e9,
            "peak_rss_gib": gib(peak),
            "losses": losses,
            "final_loss": outcome.final_loss,
        }));
        let _ = std::fs::remove_dir_all(&dir);
    }
    let _ = std::fs::remove_dir_all(&work);

    let total_mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| t.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<u64>().ok()))
        .map(|kb| kb * 1024);
    let result = json!({
        "model": hf.get("_name_or_path").and_then(Value::as_str).unwrap_or("Phi-3.5-mini-instruct"),
        "config": args.config.file_name().map(|n| n.to_string_lossy().to_string()),
        "weights": "random f32 (uniform, std 0.02), seeded",
        "parameters": params,
        "weights_gib": gib(Some(params as u64 * 4)),
        "lora": { "r": args.rank, "alpha": args.alpha, "dropout": args.dropout, "targets": "qkv_proj, o_proj, gate_up_proj, down_proj", "trainable_parameters": lora_params },
        "activation_checkpointing_every_n_layers": args.checkpoint_every,
        "sequence_tokens": args.seq,
        "answer_tokens": args.answer,
        "build_seconds": build_secs,
        "rss_after_build_gib": gib(after_build.0),
        "runs": runs,
        "machine": {
            "threads": threads,
            "cpus": num_cpus(),
            "memory_gib": gib(total_mem),
            "loadavg": std::fs::read_to_string("/proc/loadavg").ok().map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")),
        },
        "date": std::process::Command::new("date").arg("-u").arg("+%Y-%m-%dT%H:%M:%SZ").output().ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()),
    });
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", parent.display())));
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&result).unwrap() + "\n")
        .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", args.out.display())));
    let md = markdown(&result);
    std::fs::write(args.out.with_extension("md"), &md).unwrap_or_else(|e| fail(&format!("cannot write the markdown: {e}")));
    println!("{md}");
}

fn markdown(r: &Value) -> String {
    let mut s = format!(
        "## Full profile feasibility: {} ({:.2}B parameters, random weights) on CPU\n\n\
         LoRA r{} on every attention and MLP projection ({:.1}M trainable), {} tokens per example \
         ({} labeled), activation checkpointing {}, f32 weights {} GiB, built in {:.0} s; {} threads, {} GiB RAM, load {}.\n\n\
         | batch | tokens/step | s/step | tokens/s | GFLOP/s | peak RSS (GiB) |\n|---|---|---|---|---|---|\n",
        r["model"].as_str().unwrap_or("?"),
        r["parameters"].as_f64().unwrap_or(0.0) / 1e9,
        r["lora"]["r"],
        r["lora"]["trainable_parameters"].as_f64().unwrap_or(0.0) / 1e6,
        r["sequence_tokens"],
        r["answer_tokens"],
        match r["activation_checkpointing_every_n_layers"].as_u64() {
            Some(0) | None => "off".to_string(),
            Some(1) => "on every layer".to_string(),
            Some(n) => format!("on 1 in {n} layers"),
        },
        r["weights_gib"],
        r["build_seconds"].as_f64().unwrap_or(0.0),
        r["machine"]["threads"],
        r["machine"]["memory_gib"],
        r["machine"]["loadavg"].as_str().unwrap_or("?"),
    );
    for run in r["runs"].as_array().into_iter().flatten() {
        s += &format!(
            "| {} | {} | {:.1} | {:.1} | {:.0} | {} |\n",
            run["batch"],
            run["tokens_per_step"],
            run["seconds_per_step"].as_f64().unwrap_or(0.0),
            run["tokens_per_second"].as_f64().unwrap_or(0.0),
            run["achieved_gflops"].as_f64().unwrap_or(0.0),
            run["peak_rss_gib"],
        );
    }
    s
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
