//! Affine layer `y = x W^T + b` with PyTorch's weight layout (`[out, in]`), so checkpoints load
//! without transposing.

use crate::error::{Result, WotdError};
use candle_core::Tensor;

#[derive(Clone, Debug)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// `weight` is `[out, in]`; `bias`, when present, `[out]`.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        let (out, _) = weight.dims2().map_err(|_| {
            WotdError::InvalidInput(format!("linear weight must be 2-D [out, in], got {:?}", weight.dims()))
        })?;
        if let Some(b) = &bias {
            if b.dims() != [out] {
                return Err(WotdError::InvalidInput(format!(
                    "linear bias must be [{out}] to match weight {:?}, got {:?}",
                    weight.dims(),
                    b.dims()
                )));
            }
        }
        Ok(Self { weight, bias })
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    pub fn in_features(&self) -> usize {
        self.weight.dims()[1]
    }

    pub fn out_features(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Applies the layer over the last dimension of `x` (any rank >= 1).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let Some((&last, lead)) = dims.split_last() else {
            return Err(WotdError::InvalidInput("linear input must have at least one dimension".into()));
        };
        if last != self.in_features() {
            return Err(WotdError::InvalidInput(format!(
                "linear expects last dimension {}, got shape {dims:?}",
                self.in_features()
            )));
        }
        // Folding every leading dimension into rows gives one large GEMM instead of a batched
        // one per leading index, which is what makes short-sequence batches fast on CPU.
        let rows: usize = lead.iter().product();
        let y = x.reshape((rows, last))?.matmul(&self.weight.t()?)?;
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out_dims = lead.to_vec();
        out_dims.push(self.out_features());
        Ok(y.reshape(out_dims)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn matches_hand_computation_and_keeps_leading_dims() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::new(&[[1f32, 2.], [3., 4.], [5., 6.]], &dev)?;
        let b = Tensor::new(&[0.5f32, -1., 0.], &dev)?;
        let lin = Linear::new(w, Some(b))?;
        let x = Tensor::new(&[[[1f32, 1.], [0., 2.]]], &dev)?; // [1, 2, 2]
        let y = lin.forward(&x)?;
        assert_eq!(y.dims(), &[1, 2, 3]);
        assert_eq!(y.to_vec3::<f32>()?, vec![vec![vec![3.5, 6., 11.], vec![4.5, 7., 12.]]]);
        Ok(())
    }

    #[test]
    fn records_gradients_for_weight_and_bias() -> Result<()> {
        let dev = Device::Cpu;
        let w = Var::new(&[[1f32, 2.], [3., 4.]], &dev)?;
        let b = Var::new(&[0f32, 0.], &dev)?;
        let lin = Linear::new(w.as_tensor().clone(), Some(b.as_tensor().clone()))?;
        let x = Tensor::new(&[[1f32, 2.], [3., 4.]], &dev)?;
        let grads = lin.forward(&x)?.sum_all()?.backward()?;
        // d(sum)/dW[o, i] = sum over rows of x[:, i]; d/db = number of rows.
        assert_eq!(grads.get(&w).unwrap().to_vec2::<f32>()?, vec![vec![4., 6.], vec![4., 6.]]);
        assert_eq!(grads.get(&b).unwrap().to_vec1::<f32>()?, vec![2., 2.]);
        Ok(())
    }

    #[test]
    fn rejects_mismatched_shapes() {
        let dev = Device::Cpu;
        let w = Tensor::zeros((3, 2), candle_core::DType::F32, &dev).unwrap();
        assert!(Linear::new(w.clone(), Some(Tensor::zeros(2, candle_core::DType::F32, &dev).unwrap())).is_err());
        let lin = Linear::new(w, None).unwrap();
        assert!(lin.forward(&Tensor::zeros((4, 5), candle_core::DType::F32, &dev).unwrap()).is_err());
    }
}
