mod decoder_support;
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::time::Instant;
use wotd_native::models::CausalLm;
use wotd_native::nn::lora::LoraConfig;

fn smol(layers: usize) -> CausalLm {
    let cfg = serde_json::json!({"model_type":"llama","hidden_size":576,"intermediate_size":1536,"num_hidden_layers":layers,
      "num_attention_heads":9,"num_key_value_heads":3,"vocab_size":49152,"rms_norm_eps":1e-5,"rope_theta":100000.0,
      "max_position_embeddings":8192,"tie_word_embeddings":true});
    let dev = Device::Cpu;
    let mut w = HashMap::new();
    let r = |s: &[usize]| Tensor::randn(0f32, 0.02, s, &dev).unwrap();
    w.insert("model.embed_tokens.weight".to_string(), r(&[49152, 576]));
    w.insert("model.norm.weight".to_string(), Tensor::ones(576, DType::F32, &dev).unwrap());
    for i in 0..layers {
        let p = format!("model.layers.{i}");
        for (n, s) in [("self_attn.q_proj", [576, 576]), ("self_attn.k_proj", [192, 576]), ("self_attn.v_proj", [192, 576]), ("self_attn.o_proj", [576, 576]),
                       ("mlp.gate_proj", [1536, 576]), ("mlp.up_proj", [1536, 576]), ("mlp.down_proj", [576, 1536])] {
            w.insert(format!("{p}.{n}.weight"), r(&s));
        }
        w.insert(format!("{p}.input_layernorm.weight"), Tensor::ones(576, DType::F32, &dev).unwrap());
        w.insert(format!("{p}.post_attention_layernorm.weight"), Tensor::ones(576, DType::F32, &dev).unwrap());
    }
    CausalLm::from_parts(&cfg, w, None, None).unwrap()
}

fn time<F: FnMut() -> R, R>(what: &str, n: usize, mut f: F) -> f64 {
    std::hint::black_box(f());
    let s = Instant::now();
    for _ in 0..n { std::hint::black_box(f()); }
    let ms = s.elapsed().as_secs_f64() * 1e3 / n as f64;
    eprintln!("{what}: {ms:.1} ms");
    ms
}

#[test]
#[ignore]
fn profile() {
    let layers = 4;
    let mut m = smol(layers);
    let ids = Tensor::from_vec((0..512u32).map(|i| i * 37 % 40000).collect::<Vec<_>>(), (8, 64), &Device::Cpu).unwrap();
    let labels = ids.to_dtype(DType::I64).unwrap();
    let fwd_hidden = |m: &CausalLm| m.final_hidden(&ids, None, None).unwrap();
    time("no adapter: final_hidden no_grad", 3, || m.final_hidden_no_grad(&ids, None, None).unwrap());
    m.add_adapter(LoraConfig { dropout: 0.0, ..Default::default() }).unwrap();
    for (n, v) in m.lora_vars() { if n.contains("lora_B") { v.set(&(v.as_tensor().ones_like().unwrap() * 0.01).unwrap()).unwrap(); } }
    time("adapter: final_hidden tracked", 3, || fwd_hidden(&m));
    time("adapter: final_hidden tracked + sum backward", 3, || fwd_hidden(&m).sum_all().unwrap().backward().unwrap());
    m.add_adapter(LoraConfig { dropout: 0.05, ..Default::default() }).unwrap();
    m.set_training(true);
    time("adapter dropout: final_hidden tracked", 3, || fwd_hidden(&m));
    time("adapter dropout: hidden + backward", 3, || fwd_hidden(&m).sum_all().unwrap().backward().unwrap());
    m.set_training(false);
    let h = m.final_hidden_no_grad(&ids, None, None).unwrap();
    time("lm head", 2, || m.lm_head(&h).unwrap());
    time("full loss fwd+bwd", 2, || { let l = m.completion_loss(&ids, None, &labels).unwrap().mean().unwrap(); l.backward().unwrap() });
    eprintln!("({layers} layers of SmolLM2-135M dims, batch 8x64)");
}

#[test]
#[ignore]
fn parts() {
    use wotd_native::nn::rms_norm::RmsNorm;
    use wotd_native::nn::rotary::{RotaryConfig, RotaryEmbedding};
    use wotd_native::nn::causal_attention::{plan_step, softmax_last_dim};
    let dev = Device::Cpu;
    let x = Tensor::randn(0f32, 1., (8, 64, 576), &dev).unwrap();
    let norm = RmsNorm::new(Tensor::ones(576, DType::F32, &dev).unwrap(), 1e-5).unwrap();
    time("rms norm", 10, || norm.forward(&x).unwrap());
    let rope = RotaryEmbedding::new(&RotaryConfig::from_hf_config(&serde_json::json!({"rope_theta": 100000.0}), 64).unwrap()).unwrap();
    let plan = plan_step(8, 64, None, &[], &[], None, &dev).unwrap();
    time("plan_step", 10, || plan_step(8, 64, None, &[], &[], None, &dev).unwrap());
    let tables = rope.tables(&plan.positions, 8, 64, &dev).unwrap();
    time("rope tables", 10, || rope.tables(&plan.positions, 8, 64, &dev).unwrap());
    let q = x.reshape((8, 64, 9, 64)).unwrap().transpose(1, 2).unwrap();
    time("rope apply q (strided)", 10, || rope.apply(&q, &tables).unwrap());
    let qc = q.contiguous().unwrap();
    time("rope apply q (contig)", 10, || rope.apply(&qc, &tables).unwrap());
    let k = Tensor::randn(0f32, 1., (8, 3, 64, 64), &dev).unwrap();
    let qg = qc.reshape((8, 3, 192, 64)).unwrap();
    time("scores matmul", 10, || qg.matmul(&k.t().unwrap()).unwrap());
    let s = qg.matmul(&k.t().unwrap()).unwrap().reshape((8, 9, 64, 64)).unwrap();
    let mask = plan.mask.clone().unwrap();
    time("mask add", 10, || s.broadcast_add(&mask).unwrap());
    time("softmax", 10, || softmax_last_dim(&s).unwrap());
    let p = softmax_last_dim(&s).unwrap();
    time("probs @ v", 10, || p.reshape((8, 3, 192, 64)).unwrap().matmul(&k).unwrap());
    let out = p.reshape((8, 3, 192, 64)).unwrap().matmul(&k).unwrap();
    time("out transpose reshape", 10, || out.reshape((8, 9, 64, 64)).unwrap().transpose(1, 2).unwrap().reshape((8, 64, 576)).unwrap());
    let h = Tensor::randn(0f32, 1., (8, 64, 1536), &dev).unwrap();
    time("silu*up", 10, || (h.silu().unwrap() * &h).unwrap());
    time("residual add", 10, || (&x + &x).unwrap());
    let ids = Tensor::from_vec((0..512u32).collect::<Vec<_>>(), (8, 64), &dev).unwrap();
    let emb = wotd_native::nn::Embedding::new(Tensor::randn(0f32, 1., (49152, 576), &dev).unwrap()).unwrap();
    time("embedding", 10, || emb.forward(&ids).unwrap());
    // backward of pieces
    let xv = candle_core::Var::from_tensor(&x).unwrap();
    time("rms norm fwd+bwd", 5, || norm.forward(xv.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap());
    let qv = candle_core::Var::from_tensor(&q.contiguous().unwrap()).unwrap();
    time("rope fwd+bwd", 5, || rope.apply(qv.as_tensor(), &tables).unwrap().sum_all().unwrap().backward().unwrap());
    let sv = candle_core::Var::from_tensor(&s).unwrap();
    time("mask+softmax fwd+bwd", 5, || softmax_last_dim(&sv.as_tensor().broadcast_add(&mask).unwrap()).unwrap().sum_all().unwrap().backward().unwrap());
    let hv = candle_core::Var::from_tensor(&h).unwrap();
    time("silu*up fwd+bwd", 5, || (hv.as_tensor().silu().unwrap() * hv.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap());
}

#[test]
#[ignore]
fn step() {
    let mut m = smol(4);
    let ids = Tensor::from_vec((0..512u32).map(|i| i * 37 % 40000).collect::<Vec<_>>(), (8, 64), &Device::Cpu).unwrap();
    m.add_adapter(LoraConfig { dropout: 0.05, ..Default::default() }).unwrap();
    m.set_training(true);
    let cpu = || { let st = std::fs::read_to_string("/proc/self/stat").unwrap(); let f: Vec<&str> = st.rsplit(')').next().unwrap().split_whitespace().collect(); (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0 };
    let mut best_f = f64::MAX; let mut best_fb = f64::MAX;
    let c0 = cpu();
    for _ in 0..8 {
        let s = Instant::now();
        let h = m.final_hidden(&ids, None, None).unwrap();
        let f = s.elapsed().as_secs_f64();
        h.sum_all().unwrap().backward().unwrap();
        let fb = s.elapsed().as_secs_f64();
        best_f = best_f.min(f); best_fb = best_fb.min(fb);
    }
    eprintln!("cpu per fwd+bwd: {:.1} ms", (cpu() - c0) / 8.0 * 1e3);
    eprintln!("4 layers, 8x64, LoRA dropout: best forward {:.1} ms, best fwd+bwd {:.1} ms", best_f * 1e3, best_fb * 1e3);
}

fn cpu_now() -> f64 { let st = std::fs::read_to_string("/proc/self/stat").unwrap(); let f: Vec<&str> = st.rsplit(')').next().unwrap().split_whitespace().collect(); (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0 }
fn cput<F: FnMut() -> R, R>(what: &str, n: usize, mut f: F) {
    std::hint::black_box(f());
    let c = cpu_now();
    for _ in 0..n { std::hint::black_box(f()); }
    eprintln!("{what}: {:.2} ms cpu", (cpu_now() - c) * 1e3 / n as f64);
}

#[test]
#[ignore]
fn ab() {
    use wotd_native::nn::rotary::{RotaryConfig, RotaryEmbedding};
    use wotd_native::nn::causal_attention::{plan_step, softmax_last_dim};
    use wotd_native::nn::frozen_linear::{broadcast_const, ConstOp};
    use wotd_native::nn::mlp::swiglu;
    use candle_core::{Var, D};
    let dev = Device::Cpu;
    let rope = RotaryEmbedding::new(&RotaryConfig::from_hf_config(&serde_json::json!({"rope_theta": 100000.0}), 64).unwrap()).unwrap();
    let plan = plan_step(8, 64, None, &[], &[], None, &dev).unwrap();
    let t = rope.tables(&plan.positions, 8, 64, &dev).unwrap();
    let q = Var::from_tensor(&Tensor::randn(0f32, 1., (8, 9, 64, 64), &dev).unwrap()).unwrap();
    let old_rope = |x: &Tensor| { let x1 = x.narrow(D::Minus1, 0, 32).unwrap(); let x2 = x.narrow(D::Minus1, 32, 32).unwrap();
        let r = Tensor::cat(&[&x2.neg().unwrap(), &x1], D::Minus1).unwrap(); (x.broadcast_mul(&t.cos).unwrap() + r.broadcast_mul(&t.sin).unwrap()).unwrap() };
    cput("rope old fwd+bwd", 20, || old_rope(q.as_tensor()).sum_all().unwrap().backward().unwrap());
    cput("rope new fwd+bwd", 20, || rope.apply(q.as_tensor(), &t).unwrap().sum_all().unwrap().backward().unwrap());
    let mask = plan.mask.clone().unwrap();
    cput("mask old + softmax fwd+bwd", 20, || softmax_last_dim(&q.as_tensor().broadcast_add(&mask).unwrap()).unwrap().sum_all().unwrap().backward().unwrap());
    cput("mask new + softmax fwd+bwd", 20, || softmax_last_dim(&broadcast_const(q.as_tensor(), &mask, ConstOp::Add).unwrap()).unwrap().sum_all().unwrap().backward().unwrap());
    let g = Var::from_tensor(&Tensor::randn(0f32, 1., (8, 64, 1536), &dev).unwrap()).unwrap();
    let u = Var::from_tensor(&Tensor::randn(0f32, 1., (8, 64, 1536), &dev).unwrap()).unwrap();
    cput("swiglu old fwd+bwd", 20, || (g.as_tensor().silu().unwrap() * u.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap());
    cput("swiglu new fwd+bwd", 20, || swiglu(g.as_tensor(), u.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap());
}
