//! Multi-head self-attention without a causal mask (BERT-style encoders): every token sees
//! every non-padding token of its sequence.

use super::linear::Linear;
use crate::error::{Result, WotdError};
use candle_core::{DType, Tensor, D};

#[derive(Clone, Debug)]
pub struct BidirectionalSelfAttention {
    /// Query, key and value projections stacked into one `[3 * width, in]` layer: one GEMM
    /// three times as wide is markedly faster than three on the short inputs embedding sees.
    qkv: Linear,
    output: Linear,
    heads: usize,
    head_dim: usize,
}

impl BidirectionalSelfAttention {
    /// `output` maps the concatenated heads back to the model width.
    pub fn new(query: Linear, key: Linear, value: Linear, output: Linear, heads: usize) -> Result<Self> {
        let width = query.out_features();
        if heads == 0 || width % heads != 0 {
            return Err(WotdError::InvalidInput(format!("hidden size {width} is not divisible by {heads} heads")));
        }
        for (name, l) in [("key", &key), ("value", &value)] {
            if l.out_features() != width || l.in_features() != query.in_features() {
                return Err(WotdError::InvalidInput(format!(
                    "attention {name} projection is {}x{}, query is {}x{}",
                    l.out_features(),
                    l.in_features(),
                    width,
                    query.in_features()
                )));
            }
        }
        if output.in_features() != width {
            return Err(WotdError::InvalidInput(format!(
                "attention output projection takes {} features, heads give {width}",
                output.in_features()
            )));
        }
        let bias = |l: &Linear| -> Result<Tensor> {
            Ok(match l.bias() {
                Some(b) => b.clone(),
                None => Tensor::zeros(width, l.weight().dtype(), l.weight().device())?,
            })
        };
        let any_bias = query.bias().is_some() || key.bias().is_some() || value.bias().is_some();
        // Scores are q.k / sqrt(d); scaling the query projection instead saves a pass over
        // every score matrix.
        let scale = 1.0 / ((width / heads) as f64).sqrt();
        let weight = Tensor::cat(&[&(query.weight() * scale)?, key.weight(), value.weight()], 0)?;
        let bias = if any_bias { Some(Tensor::cat(&[&(bias(&query)? * scale)?, &bias(&key)?, &bias(&value)?], 0)?) } else { None };
        Ok(Self { qkv: Linear::new(weight, bias)?, output, heads, head_dim: width / heads })
    }

    pub fn heads(&self) -> usize {
        self.heads
    }

    /// `x`: `[batch, seq, hidden]`; `mask_bias`: additive `[batch, 1, 1, seq]` from
    /// [`additive_padding_mask`] (0 to keep, a huge negative for padding), or `None` when no
    /// sequence is padded.
    pub fn forward(&self, x: &Tensor, mask_bias: Option<&Tensor>) -> Result<Tensor> {
        let (b, s, _) = x.dims3()?;
        // [b, s, 3*h*d] -> [3, b, h, s, d] in one copy, so q, k and v are plain contiguous
        // blocks for the batched matmuls.
        let qkv = self.qkv.forward(x)?.reshape((b, s, 3, self.heads, self.head_dim))?.permute((2, 0, 3, 1, 4))?.contiguous()?;
        let (q, k, v) = (qkv.get(0)?, qkv.get(1)?, qkv.get(2)?);
        // The 1/sqrt(d) scale is folded into the query projection (see `new`).
        let mut scores = q.matmul(&k.t()?)?;
        if let Some(m) = mask_bias {
            scores = scores.broadcast_add(m)?;
        }
        // Composed softmax (records a backward), not the fused last-dim kernel.
        let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, s, self.heads * self.head_dim))?;
        self.output.forward(&ctx)
    }
}

/// Turns an attention mask `[batch, seq]` (1 = token, 0 = padding; any numeric dtype) into the
/// additive bias attention expects, `[batch, 1, 1, seq]` in `dtype`. Padding gets the dtype's
/// lowest finite value, as PyTorch `transformers` does, so a padded key's weight is exactly 0
/// while a row's max stays finite.
pub fn additive_padding_mask(mask: &Tensor, dtype: DType) -> Result<Tensor> {
    let (b, s) = mask.dims2()?;
    let lowest = match dtype {
        DType::F64 => f64::MIN,
        DType::F16 => half::f16::MIN.to_f64(),
        DType::BF16 => half::bf16::MIN.to_f64(),
        _ => f32::MIN as f64,
    };
    let keep = mask.to_dtype(dtype)?;
    // (1 - keep) * lowest
    let bias = ((keep.ones_like()? - keep)? * lowest)?;
    Ok(bias.reshape((b, 1, 1, s))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn eye(n: usize) -> Linear {
        Linear::new(Tensor::eye(n, DType::F32, &Device::Cpu).unwrap(), None).unwrap()
    }

    #[test]
    fn padding_does_not_change_real_tokens() -> Result<()> {
        let dev = Device::Cpu;
        let attn = BidirectionalSelfAttention::new(eye(4), eye(4), eye(4), eye(4), 2)?;
        let real = Tensor::new(&[[[0.1f32, 0.2, 0.3, 0.4], [1., -1., 0.5, 0.]]], &dev)?;
        let alone = attn.forward(&real, None)?;
        let pad = Tensor::new(&[[[9f32, 9., 9., 9.]]], &dev)?;
        let padded = Tensor::cat(&[&real, &pad], 1)?;
        let mask = additive_padding_mask(&Tensor::new(&[[1u32, 1, 0]], &dev)?, DType::F32)?;
        let with_pad = attn.forward(&padded, Some(&mask))?.narrow(1, 0, 2)?;
        let diff = (alone - with_pad)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-6, "padding leaked into real positions: {diff}");
        Ok(())
    }

    #[test]
    fn single_token_attends_to_itself() -> Result<()> {
        let dev = Device::Cpu;
        let attn = BidirectionalSelfAttention::new(eye(2), eye(2), eye(2), eye(2), 1)?;
        let x = Tensor::new(&[[[3f32, -2.]]], &dev)?;
        assert_eq!(attn.forward(&x, None)?.to_vec3::<f32>()?, vec![vec![vec![3., -2.]]]);
        Ok(())
    }

    #[test]
    fn heads_must_divide_width() {
        assert!(BidirectionalSelfAttention::new(eye(4), eye(4), eye(4), eye(4), 3).is_err());
    }
}
