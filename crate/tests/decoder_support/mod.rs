//! Shared helpers of the decoder tests: fixture paths, reference tensors, comparisons, and the
//! real-model gate.
#![allow(dead_code)]

pub mod decode;

use candle_core::{DType, Tensor};
use std::collections::HashMap;
use std::path::PathBuf;
use wotd_native::io::{load_safetensors, IntegerTensors};
use wotd_native::models::CausalLm;

pub fn fixture(arch: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("data").join("fixtures").join(arch)
}

/// `reference.safetensors` (or another file) of a fixture, integer tensors kept.
pub fn reference(arch: &str, file: &str) -> HashMap<String, Tensor> {
    load_safetensors(&fixture(arch).join(file), IntegerTensors::Keep).expect("fixture reference loads")
}

pub fn model(arch: &str) -> CausalLm {
    CausalLm::load_path(&fixture(arch), None).expect("fixture model loads")
}

/// `[n]` ids as a `[1, n]` tensor.
pub fn batch1(ids: &Tensor) -> Tensor {
    ids.unsqueeze(0).unwrap()
}

pub fn ids_u32(t: &Tensor) -> Vec<u32> {
    t.to_dtype(DType::I64).unwrap().flatten_all().unwrap().to_vec1::<i64>().unwrap().into_iter().map(|v| v as u32).collect()
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

/// Every element within `atol + rtol * |expected|`; reports the worst element.
pub fn assert_close(got: &Tensor, want: &Tensor, atol: f32, rtol: f32, what: &str) {
    assert_eq!(got.dims(), want.dims(), "{what}: shapes differ");
    let g = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let w = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let mut worst = (0usize, 0f32);
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        let excess = (a - b).abs() - (atol + rtol * b.abs());
        if excess > worst.1 || !a.is_finite() {
            worst = (i, if a.is_finite() { excess } else { f32::INFINITY });
        }
    }
    assert!(worst.1 <= 0.0, "{what}: element {} is {} vs {} (atol {atol}, rtol {rtol})", worst.0, g[worst.0], w[worst.0]);
}

/// The real SmolLM2-135M-Instruct, when it has been pulled (`npx wotd models pull`).
/// Missing: a loud skip locally, a failure in CI (`CI=true`).
pub fn real_smollm2() -> Option<CausalLm> {
    use wotd_native::io::{resolve, ResolveOptions};
    let id = "HuggingFaceTB/SmolLM2-135M-Instruct";
    let opts = ResolveOptions { offline: true, ..Default::default() };
    match resolve(id, &opts) {
        Ok(r) => Some(CausalLm::load_resolved(&r, None).expect("the pulled SmolLM2 loads")),
        Err(e) => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            if ci {
                panic!("real-model test needs {id} in CI: {e}");
            }
            eprintln!("\n==============================================================");
            eprintln!("SKIPPED real-model test: {id} is not available locally.");
            eprintln!("  {e}");
            eprintln!("  Fetch it with `npx wotd models pull` to run this test.");
            eprintln!("==============================================================\n");
            None
        }
    }
}

/// The masked next-token loss as the trainer takes it, over the decoder's graph-recording
/// forward: only the hidden states that predict a label go through the LM head. Returns the
/// summed loss and the number of labelled tokens.
pub fn completion_loss(m: &CausalLm, ids: &Tensor, mask: Option<&Tensor>, labels: &Tensor) -> wotd_native::Result<(Tensor, usize)> {
    let hidden = m.final_hidden(ids, mask, None)?;
    wotd_native::nn::loss::masked_hidden_nll_sum(&hidden, labels, m.config().vocab_size, |rows| m.lm_head(rows))
}

/// [`completion_loss`] as a mean over the labelled tokens.
pub fn completion_loss_mean(m: &CausalLm, ids: &Tensor, mask: Option<&Tensor>, labels: &Tensor) -> Tensor {
    let (sum, n) = completion_loss(m, ids, mask, labels).expect("completion loss");
    (sum / n.max(1) as f64).expect("mean")
}
