//! Lookup table: ids -> rows of a `[vocab, dim]` matrix. Built on `index_select`, whose
//! backward scatters into the table, so embeddings can be tuned like any other weight.

use crate::error::{Result, WotdError};
use candle_core::Tensor;

#[derive(Clone, Debug)]
pub struct Embedding {
    weight: Tensor,
}

impl Embedding {
    pub fn new(weight: Tensor) -> Result<Self> {
        weight.dims2().map_err(|_| {
            WotdError::InvalidInput(format!("embedding table must be 2-D [vocab, dim], got {:?}", weight.dims()))
        })?;
        Ok(Self { weight })
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn vocab_size(&self) -> usize {
        self.weight.dims()[0]
    }

    pub fn dim(&self) -> usize {
        self.weight.dims()[1]
    }

    /// `ids` of any shape (integer dtype) -> `ids.shape + [dim]`. Out-of-range ids are an
    /// error, not a silent wrap or a crash.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let flat = ids.flatten_all()?;
        let vocab = self.vocab_size();
        if flat.elem_count() > 0 {
            let max = flat.max(0)?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
            if max < 0. || max as usize >= vocab {
                return Err(WotdError::InvalidInput(format!("token id {max} is outside the embedding table of {vocab} rows")));
            }
        }
        let rows = self.weight.index_select(&flat, 0)?;
        let mut dims = ids.dims().to_vec();
        dims.push(self.dim());
        Ok(rows.reshape(dims)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn looks_up_rows_and_scatters_gradients() -> Result<()> {
        let dev = Device::Cpu;
        let table = Var::new(&[[0f32, 1.], [2., 3.], [4., 5.]], &dev)?;
        let emb = Embedding::new(table.as_tensor().clone())?;
        let ids = Tensor::new(&[[2u32, 0], [2, 2]], &dev)?;
        let y = emb.forward(&ids)?;
        assert_eq!(y.dims(), &[2, 2, 2]);
        assert_eq!(y.to_vec3::<f32>()?[0], vec![vec![4., 5.], vec![0., 1.]]);
        let g = y.sum_all()?.backward()?.get(&table).unwrap().to_vec2::<f32>()?;
        assert_eq!(g, vec![vec![1., 1.], vec![0., 0.], vec![3., 3.]]);
        Ok(())
    }

    #[test]
    fn out_of_range_id_is_an_error() {
        let dev = Device::Cpu;
        let emb = Embedding::new(Tensor::zeros((3, 2), candle_core::DType::F32, &dev).unwrap()).unwrap();
        let err = emb.forward(&Tensor::new(&[3u32], &dev).unwrap()).unwrap_err();
        assert_eq!(err.code(), "INVALID_INPUT");
    }
}
