//! Trains RVQ codebooks and prints the metrics of DESIGN.md for unsupervised vs aligned mode,
//! with label accuracy measured on a seeded 20% held-out split.
//!
//! Synthetic data (no files needed):
//!   cargo run --release --no-default-features --manifest-path crate/Cargo.toml --example rvq_eval -- --data random --n 1200 --dim 384
//!   cargo run ... --example rvq_eval -- --data attributed --n 1200 --dim 384
//! Real embeddings: `--vectors words.f32` (little-endian f32, n x dim) with `--dim`, and
//! optionally `--labels words.u8` (3n bytes: n style values, then n complexity, then n era).
//!
//! Release build only: the `node` feature cannot link into a plain binary, hence
//! `--no-default-features`.

use sha2::Digest;
use std::time::Instant;
use wotd_native::rvq::{train, Codebook, EncodeOptions, Metrics, Mode, TrainOptions};

struct Args {
    data: String,
    n: usize,
    dim: usize,
    seed: u64,
    iterations: usize,
    beam: usize,
    vectors: Option<String>,
    labels: Option<String>,
}

fn args() -> Args {
    args_for(&std::env::args().skip(1).collect::<Vec<_>>())
}

fn args_for(argv: &[impl AsRef<str>]) -> Args {
    let mut a = Args { data: "random".into(), n: 1200, dim: 384, seed: 0, iterations: 100, beam: 1, vectors: None, labels: None };
    let mut it = argv.iter().map(|s| s.as_ref().to_string());
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--data" => a.data = value(),
            "--n" => a.n = value().parse().expect("--n"),
            "--dim" => a.dim = value().parse().expect("--dim"),
            "--seed" => a.seed = value().parse().expect("--seed"),
            "--iterations" => a.iterations = value().parse().expect("--iterations"),
            "--beam" => a.beam = value().parse().expect("--beam"),
            "--vectors" => a.vectors = Some(value()),
            "--labels" => a.labels = Some(value()),
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

/// SplitMix64 with Box-Muller: enough for synthetic data, and independent of the crate.
struct Gen(u64);
impl Gen {
    fn u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn f64(&mut self) -> f64 {
        (self.u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn gauss(&mut self) -> f32 {
        ((-2.0 * self.f64().max(1e-12).ln()).sqrt() * (std::f64::consts::TAU * self.f64()).cos()) as f32
    }
    fn unit(&mut self, dim: usize) -> Vec<f32> {
        unit((0..dim).map(|_| self.gauss()).collect())
    }
}

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

type Labels = [Vec<u8>; 3];

fn load(a: &Args) -> (Vec<f32>, Option<Labels>) {
    let mut g = Gen(a.seed ^ 0xDA7A);
    if let Some(path) = &a.vectors {
        let bytes = std::fs::read(path).expect("read --vectors");
        let v: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let n = v.len() / a.dim;
        let labels = a.labels.as_ref().map(|p| {
            let l = std::fs::read(p).expect("read --labels");
            assert_eq!(l.len(), 3 * n, "--labels needs 3 bytes per vector");
            [l[..n].to_vec(), l[n..2 * n].to_vec(), l[2 * n..].to_vec()]
        });
        return (v, labels);
    }
    match a.data.as_str() {
        "random" => ((0..a.n).flat_map(|_| g.unit(a.dim)).collect(), None),
        // Anisotropic like real sentence embeddings: a shared offset and a variance spectrum
        // falling as 1/k, so a few directions carry most of the spread.
        "powerlaw" => (
            (0..a.n)
                .flat_map(|_| {
                    let v: Vec<f32> = (0..a.dim).map(|k| if k == 0 { 2.0 } else { g.gauss() / (k as f32).sqrt() }).collect();
                    unit(v)
                })
                .collect(),
            None,
        ),
        "attributed" => {
            // Three attribute directions of falling weight, plus noise as strong as the weakest.
            let dirs: Vec<Vec<f32>> = (0..12).map(|_| g.unit(a.dim)).collect();
            let mut labels: Labels = Default::default();
            let mut v = Vec::with_capacity(a.n * a.dim);
            for _ in 0..a.n {
                let vals: [u8; 3] = std::array::from_fn(|_| (g.u64() % 4) as u8);
                let noise = g.unit(a.dim);
                v.extend(unit(
                    (0..a.dim)
                        .map(|k| {
                            dirs[vals[0] as usize][k] + 0.6 * dirs[4 + vals[1] as usize][k] + 0.35 * dirs[8 + vals[2] as usize][k] + 0.35 * noise[k]
                        })
                        .collect(),
                ));
                for (col, &x) in labels.iter_mut().zip(&vals) {
                    col.push(x);
                }
            }
            (v, Some(labels))
        }
        other => panic!("--data is random, powerlaw or attributed, not {other}"),
    }
}

fn split(n: usize, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut g = Gen(seed ^ 0x5EED);
    let mut idx: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        idx.swap(i, (g.u64() % (i as u64 + 1)) as usize);
    }
    let held = n / 5;
    let (h, t) = idx.split_at(held);
    let (mut t, mut h) = (t.to_vec(), h.to_vec());
    t.sort();
    h.sort();
    (t, h)
}

fn take(v: &[f32], dim: usize, idx: &[usize]) -> Vec<f32> {
    idx.iter().flat_map(|&i| v[i * dim..(i + 1) * dim].iter().copied()).collect()
}

fn take_labels(l: &Labels, idx: &[usize]) -> Labels {
    std::array::from_fn(|a| idx.iter().map(|&i| l[a][i]).collect())
}

fn row(name: &str, cells: &[String]) {
    println!("| {name} | {} |", cells.join(" | "));
}

fn f(x: f32) -> String {
    format!("{x:.3}")
}

fn main() {
    let a = args();
    let (vectors, labels) = load(&a);
    let dim = a.dim;
    let n = vectors.len() / dim;
    println!("{n} vectors of dimension {dim}; seed {}; max {} Lloyd iterations per level", a.seed, a.iterations);

    let base = TrainOptions { seed: a.seed, max_iterations: a.iterations, ..TrainOptions::default() };
    let t = Instant::now();
    let full = train(&vectors, dim, &base).expect("train");
    println!("train (unsupervised, all {n}): {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
    // Lets two machines (or thread counts) confirm they trained the same codebooks.
    let bytes: Vec<u8> = full.codewords().iter().flat_map(|x| x.to_le_bytes()).collect();
    let digest: String = sha2::Sha256::digest(&bytes).iter().take(8).map(|b| format!("{b:02x}")).collect();
    println!("codebooks sha256 prefix: {digest}");
    let t = Instant::now();
    let ids = full.encode_many(&vectors, &EncodeOptions { beam: a.beam, labels: None }).expect("encode");
    let secs = t.elapsed().as_secs_f64();
    println!("encode (beam {}): {:.0} vectors/s", a.beam, ids.len() as f64 / secs);

    let (tr, ho) = split(n, a.seed);
    let (xt, xh) = (take(&vectors, dim, &tr), take(&vectors, dim, &ho));
    let mut runs: Vec<(String, Codebook)> = Vec::new();
    let t = Instant::now();
    runs.push(("unsupervised".into(), train(&xt, dim, &base).expect("train")));
    let t_un = t.elapsed();
    let mut timings = vec![t_un];
    if let Some(l) = &labels {
        for (name, disentangle) in [("aligned", true), ("aligned, entangled", false)] {
            let opts = TrainOptions { mode: Mode::Aligned { labels: take_labels(l, &tr) }, disentangle, ..base.clone() };
            let t = Instant::now();
            runs.push((name.into(), train(&xt, dim, &opts).expect("train")));
            timings.push(t.elapsed());
        }
    }

    println!("\ntrained on {} (80%), measured on the 20% held out ({} vectors)\n", tr.len(), ho.len());
    let metrics: Vec<(Metrics, Metrics)> = runs
        .iter()
        .map(|(_, book)| {
            let lt = labels.as_ref().map(|l| take_labels(l, &tr));
            let lh = labels.as_ref().map(|l| take_labels(l, &ho));
            (book.evaluate(&xt, lt.as_ref()).expect("evaluate"), book.evaluate(&xh, lh.as_ref()).expect("evaluate"))
        })
        .collect();
    let names: Vec<String> = runs.iter().map(|(n, _)| n.clone()).collect();
    row("metric", &names);
    row("---", &vec!["---".to_string(); names.len()]);
    row("train time (ms)", &timings.iter().map(|d| format!("{:.0}", d.as_secs_f64() * 1e3)).collect::<Vec<_>>());
    let each = |label: &str, get: &dyn Fn(&Metrics) -> String, held: bool| {
        row(label, &metrics.iter().map(|(t, h)| get(if held { h } else { t })).collect::<Vec<_>>());
    };
    for l in 0..4 {
        each(&format!("utilisation L{l} (train)"), &|m| f(m.utilisation[l]), false);
    }
    for l in 0..4 {
        each(&format!("norm. perplexity L{l} (train)"), &|m| f(m.perplexity[l]), false);
    }
    for l in 0..4 {
        each(&format!("recon cos mean/p10, {} levels (held out)", l + 1), &|m| {
            format!("{} / {}", f(m.reconstruction[l].mean), f(m.reconstruction[l].p10))
        }, true);
    }
    each("collision rate 3 levels (train)", &|m| f(m.collision_rate_3), false);
    each("collision rate 4 levels (train)", &|m| f(m.collision_rate_4), false);
    each("locality (held out)", &|m| f(m.locality), true);
    if labels.is_some() {
        for (a, name) in ["style", "complexity", "era"].iter().enumerate() {
            each(&format!("{name} accuracy of code>>3 (held out)"), &|m| f(m.label_accuracy.unwrap()[a]), true);
        }
        for l in 0..4 {
            each(&format!("NMI L{l} vs style/complexity/era (held out)"), &|m| {
                m.nmi.unwrap()[l].iter().map(|&x| f(x)).collect::<Vec<_>>().join(" / ")
            }, true);
        }
    }
}
