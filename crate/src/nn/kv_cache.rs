//! Keys and values of earlier positions, so generation feeds one new token per step instead of
//! the whole sequence.
//!
//! Besides one `(k, v)` pair per layer (`[b, kv_heads, T, head_dim]`, rotary already applied),
//! the cache remembers per row which cached positions are real tokens (left padding of a batched
//! prompt stays masked for the whole generation) and the position id the next token gets
//! (`count of real tokens so far`, as transformers' `cumsum(attention_mask) - 1`). Cached tensors
//! are detached: a cache holds values, never a backward graph that would grow with every step.

use crate::error::{Result, WotdError};
use candle_core::Tensor;

#[derive(Clone, Debug, Default)]
pub struct LayerKv {
    kv: Option<(Tensor, Tensor)>,
}

impl LayerKv {
    /// Appends this call's `k`, `v` (`[b, kv_heads, t, d]`) and returns keys and values of every
    /// position so far. The new part keeps its graph; the cached part is detached.
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let (k_all, v_all) = match &self.kv {
            None => (k.clone(), v.clone()),
            Some((pk, pv)) => (Tensor::cat(&[pk, k], 2)?, Tensor::cat(&[pv, v], 2)?),
        };
        self.kv = Some((k_all.detach(), v_all.detach()));
        Ok((k_all, v_all))
    }

    /// Cached `(k, v)`, if any.
    pub fn get(&self) -> Option<&(Tensor, Tensor)> {
        self.kv.as_ref()
    }
}

#[derive(Clone, Debug)]
pub struct KvCache {
    layers: Vec<LayerKv>,
    /// `[b][T]`: whether cached position `j` of row `b` is a real token.
    valid: Vec<Vec<bool>>,
    /// Position id of the next real token of each row.
    next_position: Vec<i64>,
}

impl KvCache {
    pub fn new(num_layers: usize) -> Self {
        KvCache { layers: vec![LayerKv::default(); num_layers], valid: Vec::new(), next_position: Vec::new() }
    }

    /// Number of cached positions (padding included).
    pub fn len(&self) -> usize {
        self.valid.first().map_or(0, Vec::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows in the cache, once something was cached.
    pub fn batch_size(&self) -> Option<usize> {
        if self.valid.is_empty() {
            None
        } else {
            Some(self.valid.len())
        }
    }

    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Forgets everything, keeping the number of layers.
    pub fn reset(&mut self) {
        let n = self.layers.len();
        *self = KvCache::new(n);
    }

    pub fn layer_mut(&mut self, i: usize) -> Result<&mut LayerKv> {
        let n = self.layers.len();
        self.layers
            .get_mut(i)
            .ok_or_else(|| WotdError::InvalidInput(format!("KV cache has {n} layers, layer {i} requested")))
    }

    /// Per row, which cached positions hold real tokens.
    pub fn valid(&self) -> &[Vec<bool>] {
        &self.valid
    }

    /// Per row, the position id the next real token gets.
    pub fn next_positions(&self) -> &[i64] {
        &self.next_position
    }

    /// Records the validity of the positions a forward call just appended to every layer.
    pub(crate) fn commit(&mut self, new_valid: &[Vec<bool>]) {
        if self.valid.is_empty() {
            self.valid = vec![Vec::new(); new_valid.len()];
            self.next_position = vec![0; new_valid.len()];
        }
        for ((row, next), new) in self.valid.iter_mut().zip(self.next_position.iter_mut()).zip(new_valid) {
            row.extend_from_slice(new);
            *next += new.iter().filter(|v| **v).count() as i64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn appends_along_time_and_keeps_no_graph() -> Result<()> {
        let dev = Device::Cpu;
        let mut layer = LayerKv::default();
        let a = Var::new(&[[[[1f32], [2.]]]], &dev)?; // [1, 1, 2, 1]
        let (k, _) = layer.append(a.as_tensor(), a.as_tensor())?;
        assert_eq!(k.dims(), &[1, 1, 2, 1]);
        // This call's keys carry the graph back to `a`; later calls see only the detached copy.
        assert!(k.sum_all()?.backward()?.get(&a).is_some());
        let (k, v) = layer.append(&Tensor::new(&[[[[3f32]]]], &dev)?, &Tensor::new(&[[[[4f32]]]], &dev)?)?;
        assert_eq!(k.flatten_all()?.to_vec1::<f32>()?, vec![1., 2., 3.]);
        assert_eq!(v.flatten_all()?.to_vec1::<f32>()?, vec![1., 2., 4.]);
        let cached = &layer.get().unwrap().0;
        assert!(!cached.is_variable() && cached.sum_all()?.backward()?.get(&a).is_none());
        Ok(())
    }

    #[test]
    fn commit_tracks_padding_and_next_positions() {
        let mut c = KvCache::new(2);
        assert!(c.is_empty() && c.batch_size().is_none());
        c.commit(&[vec![false, true, true], vec![true, true, true]]);
        c.commit(&[vec![true], vec![true]]);
        assert_eq!(c.len(), 4);
        assert_eq!(c.next_positions(), &[3, 4]);
        assert_eq!(c.valid()[0], vec![false, true, true, true]);
        c.reset();
        assert!(c.is_empty() && c.num_layers() == 2);
    }
}
