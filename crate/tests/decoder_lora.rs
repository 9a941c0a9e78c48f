//! LoRA against `transformers` + `peft` on the fixtures (loss and every lora_A/lora_B gradient),
//! gradient coverage (every adapter weight gets a gradient, no frozen weight ever does), adapter
//! files in PEFT's format, merging, fresh adapters and dropout.

mod decoder_support;

use candle_core::{backprop::GradStore, Tensor};
use decoder_support::*;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use wotd_native::io::{load_safetensors, IntegerTensors};
use wotd_native::models::CausalLm;
use wotd_native::nn::loss::masked_completion_loss;
use wotd_native::io::peft::{LoraConfig, ADAPTER_CONFIG, ADAPTER_WEIGHTS};
use wotd_native::random::SeededRng;

fn with_fixture_adapter(arch: &str) -> CausalLm {
    let mut m = model(arch);
    m.load_adapter(&fixture(arch).join("lora")).expect("fixture adapter loads");
    m
}

/// Loss and gradients of the fixture's LoRA case.
fn lora_backward(m: &CausalLm, r: &HashMap<String, Tensor>) -> (Tensor, Tensor, GradStore) {
    let ids = batch1(&r["lora.input_ids"]);
    let labels = batch1(&r["lora.labels"]);
    let logits = m.forward(&ids, None, None).unwrap();
    let loss = masked_completion_loss(&logits, &labels).unwrap();
    let grads = loss.backward().unwrap();
    (logits.squeeze(0).unwrap(), loss, grads)
}

fn check_loss_and_grads(arch: &str, expected_tensors: usize) {
    let m = with_fixture_adapter(arch);
    let r = reference(arch, "reference.safetensors");
    let (logits, loss, grads) = lora_backward(&m, &r);
    assert_close(&logits, &r["lora.logits"], 1e-4, 1e-4, &format!("{arch} adapter logits"));
    let (got, want) = (loss.to_scalar::<f32>().unwrap(), r["lora.loss"].to_scalar::<f32>().unwrap());
    assert!((got - want).abs() <= 1e-5 * (1.0 + want.abs()), "{arch} loss {got} vs {want}");
    let vars = m.lora_vars();
    assert_eq!(vars.len(), expected_tensors);
    let mut worst = 0f32;
    for (name, var) in &vars {
        // The reference keys are PEFT parameter names: the file key with the adapter name.
        let param = name.replace(".weight", ".default.weight");
        let want = &r[&format!("grad.{param}")];
        let g = grads.get(var).unwrap_or_else(|| panic!("no gradient for {name}"));
        // Fixture tolerance (atol 1e-5, rtol 1e-3) and the brief's absolute 1e-4.
        assert_close(g, want, 1e-5, 1e-3, &format!("{arch} grad {name}"));
        worst = worst.max(max_abs_diff(g, want));
        assert_close(var.as_tensor(), &r[&format!("lora_weight.{param}")], 0.0, 0.0, &format!("{arch} weight {name}"));
    }
    assert!(worst <= 1e-4, "{arch}: worst gradient difference {worst}");
    eprintln!("{arch}: loss {got} (ref {want}), worst |grad diff| {worst:.2e} over {} tensors", vars.len());
}

#[test]
fn llama_lora_loss_and_gradients_match_peft() {
    check_loss_and_grads("llama", 28);
}

#[test]
fn phi3_lora_loss_and_gradients_match_peft() {
    check_loss_and_grads("phi3", 16);
}

fn check_coverage(arch: &str) {
    let m = with_fixture_adapter(arch);
    let r = reference(arch, "reference.safetensors");
    let (_, _, grads) = lora_backward(&m, &r);
    for (name, var) in m.lora_vars() {
        let g = grads.get(&var).unwrap_or_else(|| panic!("{arch}: no gradient for {name}"));
        let max = g.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        assert!(max > 0.0, "{arch}: zero gradient for {name}");
    }
    let base = m.base_tensors();
    let cfg = m.config();
    let per_layer = if arch == "llama" { 9 } else { 6 }; // 2 norms + projections
    assert_eq!(base.len(), 3 + cfg.num_hidden_layers * per_layer);
    for (name, t) in &base {
        assert!(grads.get_id(t.id()).is_none(), "{arch}: a gradient was stored for frozen {name}");
        assert!(!t.is_variable(), "{arch}: frozen {name} is a Var");
    }
    // The completion-only loss (LM head on labelled rows only) is the same loss with the same
    // gradients.
    let ids = batch1(&r["lora.input_ids"]);
    let labels = batch1(&r["lora.labels"]);
    let (sum, count) = completion_loss(&m, &ids, None, &labels).unwrap();
    assert_eq!(count, 12);
    let loss2 = (sum / count as f64).unwrap();
    let want = r["lora.loss"].to_scalar::<f32>().unwrap();
    assert!((loss2.to_scalar::<f32>().unwrap() - want).abs() < 1e-5);
    let grads2 = loss2.backward().unwrap();
    for (name, var) in m.lora_vars() {
        assert_close(grads2.get(&var).unwrap(), grads.get(&var).unwrap(), 1e-6, 1e-4, &format!("completion_loss grad {name}"));
    }
    for (name, t) in &base {
        assert!(grads2.get_id(t.id()).is_none(), "{arch}: completion_loss stored a gradient for {name}");
    }
}

#[test]
fn llama_every_lora_weight_gets_a_gradient_and_no_base_weight_does() {
    check_coverage("llama");
}

#[test]
fn phi3_every_lora_weight_gets_a_gradient_and_no_base_weight_does() {
    check_coverage("phi3");
}

#[test]
fn saved_adapter_is_peft_format_and_reloads_identically() {
    for arch in ["llama", "phi3"] {
        let m = with_fixture_adapter(arch);
        let dir = std::env::temp_dir().join(format!("wotd-decoder-lora-{arch}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        m.save_adapter(&dir).unwrap();
        // Same keys and values as the file PEFT wrote.
        let ours = load_safetensors(&dir.join(ADAPTER_WEIGHTS), IntegerTensors::Skip).unwrap();
        let peft = load_safetensors(&fixture(arch).join("lora").join(ADAPTER_WEIGHTS), IntegerTensors::Skip).unwrap();
        assert_eq!(ours.keys().collect::<BTreeSet<_>>(), peft.keys().collect::<BTreeSet<_>>());
        for (k, t) in &peft {
            assert_eq!(max_abs_diff(&ours[k], t), 0.0, "{k}");
        }
        // transformers/PEFT expect the `format: pt` metadata in the header.
        let bytes = std::fs::read(dir.join(ADAPTER_WEIGHTS)).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        assert_eq!(header["__metadata__"]["format"], "pt");
        let cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join(ADAPTER_CONFIG)).unwrap()).unwrap();
        let fixture_cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(fixture(arch).join("lora").join(ADAPTER_CONFIG)).unwrap()).unwrap();
        for key in ["peft_type", "task_type", "r", "lora_alpha", "bias", "use_dora", "use_rslora", "fan_in_fan_out"] {
            assert_eq!(cfg[key], fixture_cfg[key], "{arch} adapter_config {key}");
        }
        let mut ts: Vec<String> = serde_json::from_value(cfg["target_modules"].clone()).unwrap();
        let mut tf: Vec<String> = serde_json::from_value(fixture_cfg["target_modules"].clone()).unwrap();
        ts.sort();
        tf.sort();
        assert_eq!(ts, tf);
        // Reloaded into a fresh model: identical logits.
        let mut again = model(arch);
        again.load_adapter(&dir).unwrap();
        let ids = batch1(&reference(arch, "reference.safetensors")["lora.input_ids"]);
        let a = m.forward_no_grad(&ids, None, None).unwrap();
        let b = again.forward_no_grad(&ids, None, None).unwrap();
        assert_eq!(max_abs_diff(&a, &b), 0.0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn merged_adapter_gives_the_adapter_logits_without_vars() {
    for arch in ["llama", "phi3"] {
        let mut m = with_fixture_adapter(arch);
        let r = reference(arch, "reference.safetensors");
        let ids = batch1(&r["lora.input_ids"]);
        let base_before: HashMap<String, Tensor> = m.base_tensors().into_iter().collect();
        let n = m.merge_adapter().unwrap();
        assert_eq!(n, if arch == "llama" { 14 } else { 8 });
        assert!(m.lora_vars().is_empty() && m.adapter_config().is_none());
        let merged = m.forward(&ids, None, None).unwrap().squeeze(0).unwrap();
        assert_close(&merged, &r["lora.logits"], 1e-4, 1e-4, &format!("{arch} merged logits"));
        // Only the adapted projections changed.
        for (name, t) in m.base_tensors() {
            let changed = max_abs_diff(&t, &base_before[&name]) > 0.0;
            let adapted = name.contains("_proj.");
            assert_eq!(changed, adapted, "{arch} {name}");
        }
    }
}

#[test]
fn fresh_adapters_start_as_no_ops_on_the_configured_targets() {
    let r = reference("llama", "reference.safetensors");
    let ids = batch1(&r["seq1.input_ids"]);
    let base = model("llama").forward(&ids, None, None).unwrap();
    let m = CausalLm::load_path(&fixture("llama"), Some(LoraConfig { r: 2, alpha: 4.0, dropout: 0.0, seed: 3, ..Default::default() })).unwrap();
    assert_eq!(m.lora_vars().len(), 2 * 7 * 2);
    assert_eq!(max_abs_diff(&m.forward(&ids, None, None).unwrap(), &base), 0.0);
    // A differs per module (own stream per module), B is zero.
    let vars = m.lora_vars();
    assert!(max_abs_diff(vars[0].1.as_tensor(), &vars[2].1.as_tensor().narrow(0, 0, 2).unwrap()) > 0.0);
    assert_eq!(vars[1].1.as_tensor().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
    // The same seed gives the same adapter.
    let again = CausalLm::load_path(&fixture("llama"), Some(LoraConfig { r: 2, alpha: 4.0, dropout: 0.0, seed: 3, ..Default::default() })).unwrap();
    assert_eq!(max_abs_diff(vars[0].1.as_tensor(), again.lora_vars()[0].1.as_tensor()), 0.0);

    let qv = LoraConfig { target_modules: vec!["q_proj".into(), "v_proj".into()], ..Default::default() };
    let m = CausalLm::load_path(&fixture("llama"), Some(qv)).unwrap();
    let names: Vec<String> = m.lora_vars().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), 8);
    assert!(names.iter().all(|n| n.contains("q_proj") || n.contains("v_proj")));
    assert_eq!(names[0], "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");

    let phi = CausalLm::load_path(&fixture("phi3"), Some(LoraConfig::default())).unwrap();
    assert_eq!(phi.lora_vars().len(), 2 * 4 * 2);
    let bogus = LoraConfig { target_modules: vec!["nope_proj".into()], ..Default::default() };
    assert_eq!(CausalLm::load_path(&fixture("phi3"), Some(bogus)).unwrap_err().code(), "INVALID_INPUT");
}

#[test]
fn dropout_only_in_training_and_replayable_from_its_stream_state() {
    let cfg = LoraConfig { r: 4, alpha: 8.0, dropout: 0.5, seed: 1, ..Default::default() };
    let mut m = CausalLm::load_path(&fixture("llama"), Some(cfg)).unwrap();
    // Make B non-zero so dropout on A's input is visible in the output.
    for (name, var) in m.lora_vars() {
        if name.contains("lora_B") {
            var.set(&(var.as_tensor().ones_like().unwrap() * 0.05).unwrap()).unwrap();
        }
    }
    let ids = batch1(&reference("llama", "reference.safetensors")["seq0.input_ids"]);
    let mask = ids.ones_like().unwrap();
    let eval1 = m.forward(&ids, None, None).unwrap();
    let eval2 = m.forward_eval(&ids, &mask).unwrap();
    assert_eq!(max_abs_diff(&eval1, &eval2), 0.0, "no dropout outside training");
    m.set_training(true);
    let state = m.dropout_rng_state();
    let t1 = m.forward(&ids, None, None).unwrap();
    let t2 = m.forward(&ids, None, None).unwrap();
    assert!(max_abs_diff(&t1, &t2) > 1e-4, "each training forward draws new masks");
    m.set_dropout_rng_state(state);
    assert_eq!(max_abs_diff(&m.forward(&ids, None, None).unwrap(), &t1), 0.0, "restored stream replays");
    // A cached (generation) forward never uses dropout, even in training mode.
    let mut cache = m.new_cache();
    assert_eq!(max_abs_diff(&m.forward(&ids, None, Some(&mut cache)).unwrap(), &eval1), 0.0);
    // forward_train takes the stream from the caller.
    let s = Mutex::new(SeededRng::new(9));
    let a = m.forward_train(&ids, &mask, &s).unwrap();
    let b = m.forward_train(&ids, &mask, &Mutex::new(SeededRng::new(9))).unwrap();
    assert_eq!(max_abs_diff(&a, &b), 0.0);
    assert!(max_abs_diff(&a, &eval1) > 1e-4);
}

#[test]
fn adapters_that_do_not_fit_are_refused() {
    let mut m = model("llama");
    // The phi3 adapter names modules llama does not have.
    let err = m.load_adapter(&fixture("phi3").join("lora")).unwrap_err();
    assert_eq!(err.code(), "INVALID_INPUT");
    assert!(m.lora_vars().is_empty(), "a refused adapter leaves the model unchanged");
    assert_eq!(m.save_adapter(&std::env::temp_dir().join("wotd-never")).unwrap_err().code(), "INVALID_INPUT");
}
