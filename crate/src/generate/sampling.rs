//! Picking the next token from one row of logits: greedy, or temperature -> top-k -> top-p
//! (transformers' warper order) and one seeded draw.
//!
//! Everything runs on the host in f64 with a total order on candidates (logit, then id), so the
//! same logits and the same generator state always give the same token.

use crate::random::SeededRng;

/// How to sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingParams {
    /// `<= 0` means greedy (argmax, lowest id on ties).
    pub temperature: f64,
    /// Nucleus mass in `(0, 1]`; `1` disables it.
    pub top_p: f64,
    /// Keep the `k` most likely tokens (ties at the boundary kept); `0` disables it.
    pub top_k: usize,
}

impl SamplingParams {
    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0
    }
}

/// Index of the largest value (lowest index among equals); NaN never wins.
pub fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] || logits[best].is_nan() && !v.is_nan() {
            best = i;
        }
    }
    best
}

/// Chooses a token id from `logits` (one row, already limited to valid ids).
pub fn sample(logits: &[f32], p: &SamplingParams, rng: &mut SeededRng) -> usize {
    if logits.is_empty() {
        return 0;
    }
    if p.is_greedy() {
        return argmax(logits);
    }
    let t = p.temperature;
    let mut cand: Vec<(usize, f64)> =
        logits.iter().enumerate().filter(|(_, v)| v.is_finite()).map(|(i, &v)| (i, v as f64 / t)).collect();
    if cand.is_empty() {
        return argmax(logits);
    }
    let order = |a: &(usize, f64), b: &(usize, f64)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if p.top_k > 0 && p.top_k < cand.len() {
        cand.select_nth_unstable_by(p.top_k - 1, order);
        let kth = cand[p.top_k - 1].1;
        // transformers keeps every token whose score is not below the k-th one.
        cand.retain(|c| c.1 >= kth);
    }
    let max = cand.iter().map(|c| c.1).fold(f64::NEG_INFINITY, f64::max);
    let mut probs: Vec<(usize, f64)> = cand.into_iter().map(|(i, s)| (i, (s - max).exp())).collect();
    let z: f64 = probs.iter().map(|c| c.1).sum();
    probs.iter_mut().for_each(|c| c.1 /= z);
    if p.top_p < 1.0 {
        probs.sort_by(order);
        let mut cum = 0.0;
        let mut keep = 0;
        for c in &probs {
            keep += 1;
            cum += c.1;
            if cum >= p.top_p {
                break;
            }
        }
        probs.truncate(keep.max(1));
    }
    let total: f64 = probs.iter().map(|c| c.1).sum();
    let mut u = rng.next_f64() * total;
    for c in &probs {
        if u < c.1 {
            return c.0;
        }
        u -= c.1;
    }
    probs.last().map_or(0, |c| c.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn freq(logits: &[f32], p: SamplingParams, n: usize) -> Vec<usize> {
        let mut rng = SeededRng::new(11);
        let mut counts = vec![0; logits.len()];
        for _ in 0..n {
            counts[sample(logits, &p, &mut rng)] += 1;
        }
        counts
    }

    #[test]
    fn greedy_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.1, 3.0, 3.0, -1.0]), 1);
        let p = SamplingParams { temperature: 0.0, top_p: 1.0, top_k: 0 };
        assert_eq!(sample(&[f32::NAN, 0.5, 2.0], &p, &mut SeededRng::new(0)), 2);
    }

    #[test]
    fn temperature_one_follows_the_softmax() {
        let logits = [0.0f32, (2.0f32).ln(), (7.0f32).ln()]; // probabilities 0.1, 0.2, 0.7
        let c = freq(&logits, SamplingParams { temperature: 1.0, top_p: 1.0, top_k: 0 }, 20_000);
        let share: Vec<f64> = c.iter().map(|&x| x as f64 / 20_000.0).collect();
        for (s, want) in share.iter().zip([0.1, 0.2, 0.7]) {
            assert!((s - want).abs() < 0.015, "{share:?}");
        }
    }

    #[test]
    fn top_k_and_top_p_cut_the_tail() {
        let logits = [0.0f32, (2.0f32).ln(), (7.0f32).ln()];
        let k = freq(&logits, SamplingParams { temperature: 1.0, top_p: 1.0, top_k: 2 }, 5_000);
        assert_eq!(k[0], 0);
        assert!(k[1] > 0 && k[2] > k[1]);
        // 0.7 alone does not reach 0.8, 0.7 + 0.2 does: token 0 is cut.
        let pp = freq(&logits, SamplingParams { temperature: 1.0, top_p: 0.8, top_k: 0 }, 5_000);
        assert_eq!(pp[0], 0);
        assert!(pp[1] > 0);
        let only = freq(&logits, SamplingParams { temperature: 1.0, top_p: 0.5, top_k: 0 }, 1_000);
        assert_eq!(only, vec![0, 0, 1_000]);
    }

    #[test]
    fn same_seed_same_tokens() {
        let logits: Vec<f32> = (0..50).map(|i| ((i * 7919) % 13) as f32 * 0.3).collect();
        let p = SamplingParams { temperature: 0.9, top_p: 0.95, top_k: 20 };
        let run = |seed| {
            let mut rng = SeededRng::new(seed);
            (0..30).map(|_| sample(&logits, &p, &mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }
}
