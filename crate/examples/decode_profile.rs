//! Prefill and decode timing of the Q8_0 (or f32) decoder on a base model from the local model
//! cache: a prompt of `--prompt N` tokens, then `--new N` tokens one at a time (greedy), over
//! `--rounds` rounds; prints the median prefill ms and decode ms per token. For before/after
//! comparisons of the quantized kernels; the comparison with llama.cpp is `npm run bench`.
//!
//!     cargo run --release --no-default-features --example decode_profile -- --prompt 55 --new 32

use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};
use std::time::Instant;
use wotd_native::generate::engine::DecodeModel;
use wotd_native::generate::quantized::QuantizedLm;
use wotd_native::io::{resolve, ResolveOptions};
use wotd_native::models::CausalLm;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

fn main() {
    wotd_native::runtime::configure_cpu_threads();
    let model = arg("--model").unwrap_or_else(|| "HuggingFaceTB/SmolLM2-135M-Instruct".into());
    let prompt: usize = arg("--prompt").map(|s| s.parse().expect("--prompt")).unwrap_or(55);
    let new: usize = arg("--new").map(|s| s.parse().expect("--new")).unwrap_or(32);
    let rounds: usize = arg("--rounds").map(|s| s.parse().expect("--rounds")).unwrap_or(5);
    let dtype = if arg("--dtype").as_deref() == Some("f32") { GgmlDType::F32 } else { GgmlDType::Q8_0 };
    let resolved = resolve(&model, &ResolveOptions { offline: true, ..Default::default() }).expect("model");
    let lm = CausalLm::load_resolved(&resolved, None).expect("load");
    let q = QuantizedLm::from_causal_lm(&lm, dtype).expect("quantize");
    drop(lm);
    let ids: Vec<u32> = (0..prompt as u32).map(|i| 100 + (i * 7919) % 20000).collect();
    let (mut prefill, mut decode) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let mut cache = q.new_cache();
        let x = Tensor::new(ids.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
        let t = Instant::now();
        let mut logits = q.last_logits(&x, None, &mut cache).unwrap();
        prefill.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        for _ in 0..new {
            let next = logits.argmax(candle_core::D::Minus1).unwrap().flatten_all().unwrap().to_vec1::<u32>().unwrap()[0];
            let x = Tensor::new(&[next], &Device::Cpu).unwrap().unsqueeze(0).unwrap();
            logits = q.last_logits(&x, None, &mut cache).unwrap();
        }
        decode.push(t.elapsed().as_secs_f64() * 1000.0 / new as f64);
    }
    println!("{{\"dtype\":\"{dtype:?}\",\"prompt_tokens\":{prompt},\"prefill_ms\":{:.1},\"decode_ms_per_token\":{:.2}}}", median(prefill), median(decode));
}
