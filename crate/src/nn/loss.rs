//! Masked-completion cross-entropy, shifted as transformers does: the logits at position `i`
//! predict the label at `i + 1`; positions labeled [`IGNORE_INDEX`] take no loss.
//!
//! Here, below the models, because both the trainer and the decoder tests take this loss.
//!
//! Built from ops that all record a backward (a composed log-softmax, `index_select`, `gather`).
//! Only the labeled rows are normalised over the vocabulary: with SmolLM2's 49k-token vocabulary
//! a prompt-heavy batch would otherwise spend most of the loss's time on rows that are discarded.

use crate::error::{Result, WotdError};
use candle_core::{DType, Tensor, D};

/// The label of a position that takes no loss (prompt, padding), as transformers' collators
/// write it.
pub const IGNORE_INDEX: i64 = -100;

/// `log_softmax` over the last dimension. The row maximum is detached: it only keeps `exp` in
/// range and cancels in the result, so a backward through it would only add rounding noise.
pub fn log_softmax(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let shifted = x.broadcast_sub(&max)?;
    let log_sum = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    Ok(shifted.broadcast_sub(&log_sum)?)
}

/// The summed negative log-likelihood of every labeled next token, and how many there are.
/// Dividing by a count taken over several micro-batches makes accumulated gradients equal to
/// those of one large batch. With no labeled token the sum is a constant 0.
pub fn masked_nll_sum(logits: &Tensor, labels: &Tensor) -> Result<(Tensor, usize)> {
    let (_, _, v) = logits.dims3()?;
    masked_rows_nll_sum(logits, labels, |rows| Ok(rows.clone()), v)
}

/// [`masked_nll_sum`] from `[b, t, d]` states and a `head` that maps `[n, d]` rows to
/// `[n, vocab]` logits: only the rows that predict a label go through the head, which for a
/// 49k-token LM head is most of the saving.
pub fn masked_hidden_nll_sum(
    hidden: &Tensor,
    labels: &Tensor,
    vocab: usize,
    head: impl FnOnce(&Tensor) -> Result<Tensor>,
) -> Result<(Tensor, usize)> {
    masked_rows_nll_sum(hidden, labels, head, vocab)
}

fn masked_rows_nll_sum(
    states: &Tensor,
    labels: &Tensor,
    head: impl FnOnce(&Tensor) -> Result<Tensor>,
    vocab: usize,
) -> Result<(Tensor, usize)> {
    let (b, t, d) = states.dims3()?;
    if labels.dims() != [b, t] {
        return Err(WotdError::InvalidInput(format!("labels {:?} do not match {:?}", labels.dims(), states.dims())));
    }
    let (rows, targets) = labeled_rows(labels, vocab)?;
    if rows.is_empty() {
        return Ok((Tensor::zeros((), DType::F32, states.device())?, 0));
    }
    let n = rows.len();
    let dev = states.device();
    let picked = states.reshape((b * t, d))?.index_select(&Tensor::from_vec(rows, n, dev)?, 0)?;
    let logits = head(&picked)?.to_dtype(DType::F32)?;
    let logp = log_softmax(&logits)?;
    let target_logp = logp.gather(&Tensor::from_vec(targets, (n, 1), dev)?, 1)?;
    Ok((target_logp.sum_all()?.neg()?, n))
}

/// Flattened `[b * t]` positions whose next token is labeled, and those labels: position `i`
/// of a row predicts the label at `i + 1`, so the last position never predicts.
pub fn labeled_rows(labels: &Tensor, vocab: usize) -> Result<(Vec<u32>, Vec<u32>)> {
    let (_, t) = labels.dims2()?;
    let all: Vec<i64> = labels.flatten_all()?.to_dtype(DType::I64)?.to_vec1()?;
    let (mut rows, mut targets) = (Vec::new(), Vec::new());
    for (row, chunk) in all.chunks(t.max(1)).enumerate() {
        for i in 0..t.saturating_sub(1) {
            let l = chunk[i + 1];
            if l == IGNORE_INDEX {
                continue;
            }
            if l < 0 || l as usize >= vocab {
                return Err(WotdError::InvalidInput(format!("label {l} is outside the vocabulary of {vocab}")));
            }
            rows.push((row * t + i) as u32);
            targets.push(l as u32);
        }
    }
    Ok((rows, targets))
}

/// Mean next-token cross-entropy over the labeled positions of one batch.
pub fn masked_completion_loss(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let (sum, n) = masked_nll_sum(logits, labels)?;
    if n == 0 {
        return Err(WotdError::InvalidInput("the batch has no labeled token to take a loss on".into()));
    }
    Ok((sum / n as f64)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn by_hand(logits: &[Vec<Vec<f32>>], labels: &[Vec<i64>]) -> f64 {
        let (mut sum, mut n) = (0f64, 0usize);
        for (row, lab) in logits.iter().zip(labels) {
            for i in 0..row.len() - 1 {
                let l = lab[i + 1];
                if l == IGNORE_INDEX {
                    continue;
                }
                let z: f64 = row[i].iter().map(|&x| (x as f64).exp()).sum();
                sum += z.ln() - row[i][l as usize] as f64;
                n += 1;
            }
        }
        sum / n as f64
    }

    #[test]
    fn equals_shifted_cross_entropy_by_hand_and_ignores_masked_positions() -> Result<()> {
        let dev = Device::Cpu;
        let vals: Vec<f32> = (0..2 * 4 * 5).map(|i| ((i as f32) * 0.71).sin() * 3.0).collect();
        let logits = Var::from_tensor(&Tensor::from_vec(vals, (2, 4, 5), &dev)?)?;
        let labels_v = vec![vec![-100i64, -100, 3, 1], vec![-100, 4, -100, -100]];
        let labels = Tensor::new(labels_v.clone(), &dev)?;
        let loss = masked_completion_loss(logits.as_tensor(), &labels)?;
        let want = by_hand(&logits.as_tensor().to_vec3()?, &labels_v);
        assert!((loss.to_scalar::<f32>()? as f64 - want).abs() < 1e-6, "{} vs {want}", loss.to_scalar::<f32>()?);

        // Gradients reach exactly the positions that predict a label: [0,1], [0,2] and [1,0].
        let grads = loss.backward()?;
        let g = grads.get(&logits).unwrap().abs()?.sum(2)?.to_vec2::<f32>()?;
        let reached: Vec<(usize, usize)> =
            (0..2).flat_map(|r| (0..4).map(move |c| (r, c))).filter(|&(r, c)| g[r][c] > 0.0).collect();
        assert_eq!(reached, vec![(0, 1), (0, 2), (1, 0)]);
        // Gradient of mean CE w.r.t. logits is (softmax - onehot) / n; each row sums to zero.
        let row = grads.get(&logits).unwrap().get(0)?.get(1)?.to_vec1::<f32>()?;
        assert!(row.iter().sum::<f32>().abs() < 1e-6);
        Ok(())
    }

    #[test]
    fn log_softmax_is_stable_for_large_logits() -> Result<()> {
        let x = Tensor::new(&[[1000f32, 1000., 999.]], &Device::Cpu)?;
        let v = log_softmax(&x)?.to_vec2::<f32>()?;
        let z = (2.0f64 + (-1f64).exp()).ln();
        assert!((v[0][0] as f64 + z).abs() < 1e-5 && (v[0][2] as f64 + 1.0 + z).abs() < 1e-5);
        Ok(())
    }

    #[test]
    fn rejects_labels_outside_the_vocabulary() {
        let logits = Tensor::zeros((1, 2, 3), DType::F32, &Device::Cpu).unwrap();
        let labels = Tensor::new(&[[-100i64, 3]], &Device::Cpu).unwrap();
        assert!(masked_completion_loss(&logits, &labels).is_err());
    }
}
