//! The real SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized): greedy decoding reproduces the
//! independent numpy reference of `scripts/models/smollm2_gguf_reference.py`, and a few LoRA
//! steps lower the loss. Gated by [`decoder_support::real_smollm2`]: skipped loudly when the
//! model was never pulled, a failure in CI.
//!
//! `smollm2_timings` (ignored by default; `cargo test --release --no-default-features --test
//! decoder_real -- --ignored --nocapture`) prints forward+backward time for a LoRA batch of 8 x 64
//! tokens and generation milliseconds per token.

mod decoder_support;

use candle_core::Tensor;
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use decoder_support::*;
use std::time::Instant;
use decoder_support::decode::{generate, GenerateOptions, StopReason};
use wotd_native::io::peft::LoraConfig;

/// The GGUF's chat template applied to one user turn (default system prompt, generation prompt).
const PROMPT: &str = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n";
const PROMPT_IDS: [u32; 37] = [
    1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407, 19712, 8182, 2, 198, 1,
    4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531, 198,
];
const GREEDY_IDS: [u32; 8] = [504, 3575, 282, 4649, 314, 7042, 30, 2];

/// CPU seconds this process used so far (Linux; 0 elsewhere): on a shared machine wall time
/// says little, CPU time says what the work cost.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

#[test]
fn smollm2_greedy_decoding_reproduces_the_reference() {
    let Some(m) = real_smollm2() else { return };
    let tok = m.tokenizer().expect("the GGUF carries its tokenizer");
    assert_eq!(tok.encode(PROMPT, false).unwrap().ids, PROMPT_IDS.to_vec());
    let logits = m.forward_no_grad(&Tensor::new(&PROMPT_IDS, m.device()).unwrap().unsqueeze(0).unwrap(), None, None).unwrap();
    let last = logits.get(0).unwrap().get(PROMPT_IDS.len() - 1).unwrap().to_vec1::<f32>().unwrap();
    for (id, want) in [(504usize, 25.3254f32), (60, 25.2433), (15319, 24.9424)] {
        assert!((last[id] - want).abs() < 2e-3, "logit of {id}: {} vs {want}", last[id]);
    }
    for use_cache in [true, false] {
        let g = generate(&m, tok, &PROMPT_IDS, &GenerateOptions { use_cache, ..GenerateOptions::greedy(16) }).unwrap();
        assert_eq!(g.token_ids, GREEDY_IDS.to_vec(), "cache {use_cache}");
        assert_eq!(g.text, "The capital of France is Paris.");
        assert_eq!(g.stop_reason, StopReason::StopToken(2));
    }
}

#[test]
fn smollm2_a_few_lora_steps_lower_the_loss_on_a_fixed_batch() {
    let Some(mut m) = real_smollm2() else { return };
    m.add_adapter(LoraConfig { r: 8, alpha: 16.0, dropout: 0.0, seed: 1, ..Default::default() }).unwrap();
    let tok = m.tokenizer().unwrap().clone();
    let p = tok.encode("<|im_start|>user\nWords for [1,4,*,*]<|im_end|>\n<|im_start|>assistant\n", false).unwrap().ids;
    let c = tok.encode("dawn, glow, hush<|im_end|>", false).unwrap().ids;
    let labels: Vec<i64> = p.iter().map(|_| -100).chain(c.iter().map(|&t| t as i64)).collect();
    let ids: Vec<u32> = [p, c].concat();
    let n = ids.len();
    let ids = Tensor::from_vec(ids, (1, n), m.device()).unwrap();
    let labels = Tensor::from_vec(labels, (1, n), m.device()).unwrap();
    let vars = m.lora_vars().into_iter().map(|(_, v)| v).collect();
    let mut opt = AdamW::new(vars, ParamsAdamW { lr: 2e-3, weight_decay: 0.0, ..Default::default() }).unwrap();
    let mut losses = Vec::new();
    for _ in 0..4 {
        let loss = completion_loss_mean(&m, &ids, None, &labels);
        losses.push(loss.to_scalar::<f32>().unwrap());
        opt.backward_step(&loss).unwrap();
    }
    let after = completion_loss_mean(&m, &ids, None, &labels).to_scalar::<f32>().unwrap();
    eprintln!("SmolLM2 LoRA losses: {losses:?} -> {after}");
    assert!(after < losses[0] * 0.8, "loss {} -> {after}", losses[0]);
}

#[test]
#[ignore = "timing, not a check: run with --ignored --nocapture"]
fn smollm2_timings() {
    let Some(mut m) = real_smollm2() else { return };
    m.add_adapter(LoraConfig { r: 8, alpha: 16.0, dropout: 0.05, seed: 1, ..Default::default() }).unwrap();
    m.set_training(true);
    let (b, t) = (8usize, 64usize);
    let ids: Vec<u32> = (0..b * t).map(|i| (i * 7919 % 40000) as u32 + 100).collect();
    let ids = Tensor::from_vec(ids, (b, t), m.device()).unwrap();
    let labels = ids.to_dtype(candle_core::DType::I64).unwrap();
    for _ in 0..3 {
        let (start, cpu) = (Instant::now(), cpu_seconds());
        let logits = m.forward(&ids, None, None).unwrap();
        let (fwd, fwd_cpu) = (start.elapsed().as_secs_f64(), cpu_seconds() - cpu);
        let loss = wotd_native::nn::loss::masked_completion_loss(&logits, &labels).unwrap();
        let grads = loss.backward().unwrap();
        std::hint::black_box(&grads);
        eprintln!(
            "SmolLM2-135M LoRA r=8 (all projections), batch {b}x{t}: forward {fwd:.2}s wall / {fwd_cpu:.2}s cpu, \
             forward+backward {:.2}s wall / {:.2}s cpu",
            start.elapsed().as_secs_f64(),
            cpu_seconds() - cpu
        );
    }
    // A DSL-like batch: loss on the last 16 tokens of each row only (the completion), through
    // `completion_loss`, which runs the LM head on those rows alone.
    let masked: Vec<i64> = (0..b * t).map(|i| if i % t >= t - 16 { (i * 7919 % 40000) as i64 + 100 } else { -100 }).collect();
    let masked = Tensor::from_vec(masked, (b, t), m.device()).unwrap();
    for _ in 0..2 {
        let (start, cpu) = (Instant::now(), cpu_seconds());
        let loss = completion_loss_mean(&m, &ids, None, &masked);
        std::hint::black_box(loss.backward().unwrap());
        eprintln!(
            "  completion_loss on 16 of 64 positions, forward+backward {:.2}s wall / {:.2}s cpu",
            start.elapsed().as_secs_f64(),
            cpu_seconds() - cpu
        );
    }
    m.set_training(false);
    let tok = m.tokenizer().unwrap().clone();
    for merged in [false, true] {
        if merged {
            m.merge_adapter().unwrap();
        }
        let opts = GenerateOptions { stop_at_eos: false, ..GenerateOptions::greedy(64) };
        let (start, cpu) = (Instant::now(), cpu_seconds());
        let g = generate(&m, &tok, &PROMPT_IDS, &opts).unwrap();
        let total = start.elapsed().as_secs_f64();
        let total_cpu = cpu_seconds() - cpu;
        let prefill_start = Instant::now();
        let _ = generate(&m, &tok, &PROMPT_IDS, &GenerateOptions { stop_at_eos: false, ..GenerateOptions::greedy(1) }).unwrap();
        let prefill = prefill_start.elapsed().as_secs_f64();
        let per = (total - prefill) / (g.token_ids.len() - 1) as f64 * 1e3;
        eprintln!(
            "generation ({}): {} tokens after a 37-token prompt in {total:.2}s wall / {total_cpu:.2}s cpu; prefill {prefill:.3}s; {per:.1} ms/token",
            if merged { "merged" } else { "unmerged adapter" },
            g.token_ids.len()
        );
    }
}
