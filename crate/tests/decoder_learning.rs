//! Learning smoke test: LoRA on the tiny Llama fixture memorises four prompt -> completion pairs
//! with plain AdamW, loss masked to the completions, right-padded batch; afterwards greedy
//! decoding (cached, then merged) writes exactly the completions.

mod decoder_support;

use candle_core::Tensor;
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use decoder_support::*;
use decoder_support::decode::{generate, GenerateOptions, StopReason};
use wotd_native::models::CausalLm;
use wotd_native::io::peft::LoraConfig;

const PAIRS: [(&str, &str); 4] = [
    ("Words for [1,4,*,*]", "dawn, glow, hush"),
    ("Words for [2,9,17,5]", "brisk, bold, eager"),
    ("Words for [0,*,3,*]", "whilst, thereupon, alas"),
    ("Words for [3,1,*,*]", "quiet, calm, tender"),
];

fn prompt_text(user: &str) -> String {
    format!("<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n")
}

#[test]
fn lora_learns_four_patterns_to_their_exact_words() {
    let cfg = LoraConfig { r: 8, alpha: 16.0, dropout: 0.0, seed: 42, ..Default::default() };
    let mut m = CausalLm::load_path(&fixture("llama"), Some(cfg)).unwrap();
    let tok = m.tokenizer().unwrap().clone();
    let eos = 2u32;
    let mut rows: Vec<(Vec<u32>, Vec<i64>)> = Vec::new();
    for (user, words) in PAIRS {
        let p = tok.encode(&prompt_text(user), false).unwrap().ids;
        let mut c = tok.encode(words, false).unwrap().ids;
        c.push(eos);
        let labels = p.iter().map(|_| -100i64).chain(c.iter().map(|&t| t as i64)).collect();
        rows.push(([p, c].concat(), labels));
    }
    let len = rows.iter().map(|r| r.0.len()).max().unwrap();
    let dev = m.device().clone();
    let (mut ids, mut mask, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    for (r, l) in &rows {
        let pad = len - r.len();
        ids.extend(r.iter().copied().chain(std::iter::repeat_n(eos, pad)));
        mask.extend(std::iter::repeat_n(1u32, r.len()).chain(std::iter::repeat_n(0, pad)));
        labels.extend(l.iter().copied().chain(std::iter::repeat_n(-100, pad)));
    }
    let b = rows.len();
    let ids = Tensor::from_vec(ids, (b, len), &dev).unwrap();
    let mask = Tensor::from_vec(mask, (b, len), &dev).unwrap();
    let labels = Tensor::from_vec(labels, (b, len), &dev).unwrap();

    let vars = m.lora_vars().into_iter().map(|(_, v)| v).collect();
    let mut opt = AdamW::new(vars, ParamsAdamW { lr: 1e-2, weight_decay: 0.0, ..Default::default() }).unwrap();
    let mut first = None;
    let mut last = f32::MAX;
    let mut steps = 0;
    for step in 0..400 {
        let loss = completion_loss_mean(&m, &ids, Some(&mask), &labels);
        last = loss.to_scalar::<f32>().unwrap();
        first.get_or_insert(last);
        steps = step;
        if last < 0.01 {
            break;
        }
        opt.backward_step(&loss).unwrap();
    }
    let first = first.unwrap();
    eprintln!("learning smoke: loss {first:.3} -> {last:.4} in {steps} AdamW steps");
    assert!(first > 2.0, "an untrained adapter should not know the answers (loss {first})");
    assert!(last < 0.01, "loss only reached {last} after {steps} steps");

    let check = |m: &CausalLm, what: &str| {
        for (user, words) in PAIRS {
            let p = tok.encode(&prompt_text(user), false).unwrap().ids;
            let g = generate(m, &tok, &p, &GenerateOptions::greedy(24)).unwrap();
            assert_eq!(g.text, words, "{what}: {user}");
            assert_eq!(g.stop_reason, StopReason::StopToken(eos), "{what}: {user}");
        }
    };
    check(&m, "adapter");
    m.merge_adapter().unwrap();
    check(&m, "merged");
}
