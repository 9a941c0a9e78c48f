//! Our Llama and Phi-3 against PyTorch `transformers` on the tiny random-weight fixtures
//! (`scripts/fixtures/make_fixtures.py`): logits at every position, hidden states, a
//! right-padded batch, greedy decoding, and GGUF vs safetensors loading.

mod decoder_support;

use candle_core::{DType, Tensor};
use decoder_support::*;
use decoder_support::decode::{generate, GenerateOptions};
use wotd_native::models::CausalLm;

const TOL: f32 = 1e-4;

fn check_sequences(arch: &str) {
    let m = model(arch);
    let r = reference(arch, "reference.safetensors");
    for s in ["seq0", "seq1"] {
        let ids = batch1(&r[&format!("{s}.input_ids")]);
        let logits = m.forward(&ids, None, None).unwrap().squeeze(0).unwrap();
        assert_close(&logits, &r[&format!("{s}.logits")], TOL, TOL, &format!("{arch} {s} logits"));
        eprintln!("{arch} {s}: max |logit diff| vs transformers {:.2e}", max_abs_diff(&logits, &r[&format!("{s}.logits")]));
        let trace = m.trace(&ids, None).unwrap();
        let n = trace.len();
        assert_close(&trace[0].squeeze(0).unwrap(), &r[&format!("{s}.hidden.embeddings")], TOL, TOL, "embeddings");
        for layer in 0..n - 2 {
            let want = &r[&format!("{s}.hidden.layer.{layer}")];
            assert_close(&trace[layer + 1].squeeze(0).unwrap(), want, TOL, TOL, &format!("{arch} {s} layer {layer}"));
        }
        assert_close(&trace[n - 1].squeeze(0).unwrap(), &r[&format!("{s}.hidden.final_norm")], TOL, TOL, "final norm");
    }
}

/// The right-padded batch, compared at real positions only (padding carries no meaning).
fn check_padded_batch(arch: &str) {
    let m = model(arch);
    let r = reference(arch, "reference.safetensors");
    let ids = &r["batch.input_ids"];
    let mask = &r["batch.attention_mask"];
    let logits = m.forward(ids, Some(mask), None).unwrap();
    let want = &r["batch.logits"];
    let lens: Vec<i64> = mask.sum(1).unwrap().to_vec1().unwrap();
    assert!(lens[0] < lens[1], "the fixture batch pads its first row");
    for (row, &len) in lens.iter().enumerate() {
        let got = logits.get(row).unwrap().narrow(0, 0, len as usize).unwrap();
        let exp = want.get(row).unwrap().narrow(0, 0, len as usize).unwrap();
        assert_close(&got, &exp, TOL, TOL, &format!("{arch} batch row {row}"));
    }
}

#[test]
fn llama_logits_and_hidden_states_match_transformers() {
    check_sequences("llama");
}

#[test]
fn phi3_logits_and_hidden_states_match_transformers_short_and_long_rope() {
    // seq0 (10 tokens) uses longrope's short factors, seq1 (40 > 32) the long ones.
    check_sequences("phi3");
}

#[test]
fn llama_right_padded_batch_matches_transformers() {
    check_padded_batch("llama");
}

#[test]
fn phi3_right_padded_batch_matches_transformers_with_long_factors_for_both_rows() {
    check_padded_batch("phi3");
    // The padded batch's row 0 uses the long factors (batch length 40 > 32), so it must NOT
    // equal the same sequence alone (short factors): the selection rule has teeth.
    let m = model("phi3");
    let r = reference("phi3", "reference.safetensors");
    let alone = m.forward(&batch1(&r["seq0.input_ids"]), None, None).unwrap().squeeze(0).unwrap();
    let batch = m.forward(&r["batch.input_ids"], Some(&r["batch.attention_mask"]), None).unwrap();
    let row0 = batch.get(0).unwrap().narrow(0, 0, alone.dims()[0]).unwrap();
    assert!(max_abs_diff(&row0, &alone) > 1e-3);
}

fn check_greedy(arch: &str) {
    let m = model(arch);
    let tok = m.tokenizer().expect("fixture tokenizer").clone();
    let r = reference(arch, "reference.safetensors");
    let prompt = ids_u32(&r["greedy.prompt_ids"]);
    let want = ids_u32(&r["greedy.generated_ids"]);
    for use_cache in [false, true] {
        let opts = GenerateOptions { use_cache, stop_at_eos: false, ..GenerateOptions::greedy(want.len()) };
        let g = generate(&m, &tok, &prompt, &opts).unwrap();
        assert_eq!(g.token_ids, want, "{arch} greedy ids (cache {use_cache})");
    }
    // Step logits, cached: the prompt once, then one token per call.
    let steps = &r["greedy.step_logits"];
    let mut cache = m.new_cache();
    let dev = m.device().clone();
    let mut logits = m.forward(&Tensor::new(prompt.as_slice(), &dev).unwrap().unsqueeze(0).unwrap(), None, Some(&mut cache)).unwrap();
    for (k, id) in want.iter().enumerate() {
        let t = logits.dims()[1];
        let last = logits.get(0).unwrap().get(t - 1).unwrap();
        assert_close(&last, &steps.get(k).unwrap(), TOL, TOL, &format!("{arch} cached step {k}"));
        let next = Tensor::new(&[[*id]], &dev).unwrap();
        logits = m.forward(&next, None, Some(&mut cache)).unwrap();
    }
    assert_eq!(cache.len(), prompt.len() + want.len());
}

#[test]
fn llama_greedy_decoding_matches_transformers_cached_and_uncached() {
    check_greedy("llama");
}

#[test]
fn phi3_greedy_decoding_matches_transformers_cached_and_uncached() {
    check_greedy("phi3");
}

#[test]
fn gguf_and_safetensors_loads_of_the_llama_fixture_give_the_same_logits() {
    let st = model("llama");
    let gguf = CausalLm::load_path(&fixture("llama").join("model-f32.gguf"), None).unwrap();
    assert_eq!(gguf.config().num_key_value_heads, 2);
    assert!(gguf.config().tie_word_embeddings);
    let r = reference("llama", "reference.safetensors");
    for s in ["seq0", "seq1"] {
        let ids = batch1(&r[&format!("{s}.input_ids")]);
        let a = st.forward(&ids, None, None).unwrap();
        let b = gguf.forward(&ids, None, None).unwrap();
        let d = max_abs_diff(&a, &b);
        assert!(d <= 1e-5, "{s}: GGUF vs safetensors logits differ by {d}");
    }
    // The GGUF-embedded tokenizer encodes like tokenizer.json.
    let text = "The word of the day is luminous.";
    let a = st.tokenizer().unwrap().encode(text, false).unwrap().ids;
    let b = gguf.tokenizer().unwrap().encode(text, false).unwrap().ids;
    assert_eq!(a, b);
}

#[test]
fn q8_0_gguf_matches_its_dequantized_reference() {
    let m = CausalLm::load_path(&fixture("llama").join("model-q8_0.gguf"), None).unwrap();
    let r = reference("llama", "gguf_reference.safetensors");
    for s in ["seq0", "seq1"] {
        let ids = batch1(&r[&format!("{s}.input_ids")]);
        let got = m.forward(&ids, None, None).unwrap().squeeze(0).unwrap();
        assert_close(&got, &r[&format!("q8_0.{s}.logits")], TOL, TOL, &format!("q8_0 {s}"));
    }
}

#[test]
fn i64_and_u32_ids_and_an_all_ones_mask_agree() {
    let m = model("llama");
    let r = reference("llama", "reference.safetensors");
    let ids = batch1(&r["seq0.input_ids"]);
    let a = m.forward(&ids, None, None).unwrap();
    let b = m.forward(&ids.to_dtype(DType::U32).unwrap(), Some(&ids.ones_like().unwrap()), None).unwrap();
    assert_eq!(max_abs_diff(&a, &b), 0.0);
}
