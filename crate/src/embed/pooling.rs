//! Token states -> one vector per text, the way sentence-transformers' Pooling and Normalize
//! modules do it.

use crate::error::{Result, WotdError};
use crate::io::Pooling;
use candle_core::{DType, Tensor, D};

/// `hidden`: `[batch, seq, dim]`; `mask`: `[batch, seq]` (1 = token, 0 = right padding).
/// Returns `[batch, dim]`.
pub fn pool(hidden: &Tensor, mask: &Tensor, pooling: Pooling) -> Result<Tensor> {
    let (b, s, _) = hidden.dims3()?;
    if mask.dims() != [b, s] {
        return Err(WotdError::InvalidInput(format!("mask {:?} does not match hidden states {:?}", mask.dims(), hidden.dims())));
    }
    let m = mask.to_dtype(hidden.dtype())?.unsqueeze(2)?; // [b, s, 1]
    Ok(match pooling {
        Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
        Pooling::Mean => {
            let sum = hidden.broadcast_mul(&m)?.sum(1)?;
            // sentence-transformers clamps the count at 1e-9; a row always has [CLS] anyway.
            let count = m.sum(1)?.clamp(1e-9, f64::INFINITY)?;
            sum.broadcast_div(&count)?
        }
        Pooling::Max => {
            // Padding is pushed far below any real value, as sentence-transformers does (-1e9).
            let shifted = hidden.broadcast_add(&((m - 1.0)? * 1e9)?)?;
            shifted.max(1)?
        }
        Pooling::LastToken => {
            let lengths = mask.to_dtype(DType::U32)?.sum(1)?.to_vec1::<u32>()?;
            let rows = lengths
                .iter()
                .enumerate()
                .map(|(i, &n)| hidden.get(i)?.get(n.saturating_sub(1) as usize))
                .collect::<candle_core::Result<Vec<_>>>()?;
            Tensor::stack(&rows, 0)?
        }
    })
}

/// Divides each row by its L2 norm (rows of norm 0 stay 0), like `torch.nn.functional.normalize`
/// with its `eps = 1e-12`.
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12, f64::INFINITY)?;
    Ok(x.broadcast_div(&norm)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn fixture() -> (Tensor, Tensor) {
        let dev = Device::Cpu;
        // batch 2, seq 3, dim 2; second row has one padded position holding junk.
        let h = Tensor::new(&[[[1f32, 2.], [3., 4.], [5., 6.]], [[-1., 0.], [1., 2.], [100., 100.]]], &dev).unwrap();
        let m = Tensor::new(&[[1u32, 1, 1], [1, 1, 0]], &dev).unwrap();
        (h, m)
    }

    #[test]
    fn every_mode_ignores_padding() -> Result<()> {
        let (h, m) = fixture();
        assert_eq!(pool(&h, &m, Pooling::Cls)?.to_vec2::<f32>()?, vec![vec![1., 2.], vec![-1., 0.]]);
        assert_eq!(pool(&h, &m, Pooling::Mean)?.to_vec2::<f32>()?, vec![vec![3., 4.], vec![0., 1.]]);
        assert_eq!(pool(&h, &m, Pooling::Max)?.to_vec2::<f32>()?, vec![vec![5., 6.], vec![1., 2.]]);
        assert_eq!(pool(&h, &m, Pooling::LastToken)?.to_vec2::<f32>()?, vec![vec![5., 6.], vec![1., 2.]]);
        Ok(())
    }

    #[test]
    fn normalises_rows_and_keeps_zero_rows_finite() -> Result<()> {
        let x = Tensor::new(&[[3f32, 4.], [0., 0.]], &Device::Cpu)?;
        assert_eq!(l2_normalize(&x)?.to_vec2::<f32>()?, vec![vec![0.6, 0.8], vec![0., 0.]]);
        Ok(())
    }
}
