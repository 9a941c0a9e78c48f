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

/// One layer's keys and values. Without a graph to keep, they live in buffers with room to
/// grow (`[b, kv_heads, capacity, head_dim]`), so a decoding step writes its one position in
/// place instead of copying the whole cache with `Tensor::cat` (a copy per layer per step, which
/// grows with the sequence: 44 MB a step for 16 rows of 60 positions of SmolLM2).
#[derive(Debug, Default)]
pub struct LayerKv {
    /// `(k, v)` buffers; positions `0..len` hold values.
    kv: Option<(Tensor, Tensor)>,
    len: usize,
}

/// Extra positions a buffer gets when it grows: as many as it holds, at least this many.
const MIN_GROWTH: usize = 16;

impl Clone for LayerKv {
    /// A clone sees the positions cached so far and no spare room, so its first append copies
    /// into buffers of its own: two clones never write into the same buffer.
    fn clone(&self) -> Self {
        LayerKv { kv: self.get(), len: self.len }
    }
}

impl LayerKv {
    /// Appends this call's `k`, `v` (`[b, kv_heads, t, d]`) and returns keys and values of every
    /// position so far. The new part keeps its graph; the cached part is detached.
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let t = k.dim(2)?;
        if k.track_op() || v.track_op() {
            // Training through a cache: build the result with its graph, keep values only.
            let (k_all, v_all) = match self.get() {
                None => (k.clone(), v.clone()),
                Some((pk, pv)) => (Tensor::cat(&[&pk, k], 2)?, Tensor::cat(&[&pv, v], 2)?),
            };
            self.kv = Some((k_all.detach(), v_all.detach()));
            self.len += t;
            return Ok((k_all, v_all));
        }
        let room = match &self.kv {
            Some((bk, _)) => {
                let (b, h, cap, d) = bk.dims4()?;
                let (nb, nh, _, nd) = k.dims4()?;
                if (b, h, d) != (nb, nh, nd) {
                    return Err(WotdError::InvalidInput(format!(
                        "KV cache holds [{b}, {h}, _, {d}], appended keys are {:?}",
                        k.dims()
                    )));
                }
                cap >= self.len + t
            }
            None => false,
        };
        if !room {
            self.grow(k, self.len + t)?;
        }
        let (bk, bv) = self.kv.as_ref().expect("buffers after grow");
        bk.slice_set(&k.contiguous()?, 2, self.len)?;
        bv.slice_set(&v.contiguous()?, 2, self.len)?;
        self.len += t;
        Ok(self.get().expect("cached positions"))
    }

    /// New buffers for at least `needed` positions, holding the cached ones.
    fn grow(&mut self, like: &Tensor, needed: usize) -> Result<()> {
        let (b, h, _, d) = like.dims4()?;
        let cap = needed + needed.max(MIN_GROWTH);
        let nk = Tensor::zeros((b, h, cap, d), like.dtype(), like.device())?;
        let nv = nk.zeros_like()?;
        if let Some((pk, pv)) = self.get() {
            nk.slice_set(&pk.contiguous()?, 2, 0)?;
            nv.slice_set(&pv.contiguous()?, 2, 0)?;
        }
        self.kv = Some((nk, nv));
        Ok(())
    }

    /// Keeps batch rows `rows` (in that order), with their room to grow.
    fn keep_rows(&mut self, rows: &Tensor) -> Result<()> {
        if let Some((k, v)) = &self.kv {
            self.kv = Some((k.index_select(rows, 0)?, v.index_select(rows, 0)?));
        }
        Ok(())
    }

    /// Cached `(k, v)` (`[b, kv_heads, len, d]`, views of the buffers), if any.
    pub fn get(&self) -> Option<(Tensor, Tensor)> {
        let (k, v) = self.kv.as_ref()?;
        if k.dim(2).ok()? == self.len {
            return Some((k.clone(), v.clone()));
        }
        Some((k.narrow(2, 0, self.len).ok()?, v.narrow(2, 0, self.len).ok()?))
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

    /// Keeps only batch rows `rows` (indices into the current batch, in the order given), so
    /// decoding stops spending work on rows that have finished.
    pub fn keep_rows(&mut self, rows: &[usize]) -> Result<()> {
        let b = self.valid.len();
        if let Some(&bad) = rows.iter().find(|&&r| r >= b) {
            return Err(WotdError::InvalidInput(format!("row {bad} is outside the cache's {b} rows")));
        }
        let device = match self.layers.iter().find_map(|l| l.kv.as_ref()) {
            Some((k, _)) => k.device().clone(),
            None => candle_core::Device::Cpu,
        };
        let index = Tensor::from_vec(rows.iter().map(|&r| r as u32).collect::<Vec<_>>(), rows.len(), &device)?;
        for layer in &mut self.layers {
            layer.keep_rows(&index)?;
        }
        self.valid = rows.iter().map(|&r| self.valid[r].clone()).collect();
        self.next_position = rows.iter().map(|&r| self.next_position[r]).collect();
        Ok(())
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
    fn in_place_appends_equal_concatenation_and_clones_stay_apart() -> Result<()> {
        let dev = Device::Cpu;
        let step = |i: usize, t: usize| Tensor::arange(0f32, (2 * 3 * t * 4) as f32, &dev)?.affine(1.0, i as f64 * 100.0)?.reshape((2, 3, t, 4));
        let (mut layer, mut want_k) = (LayerKv::default(), None::<Tensor>);
        // A prompt, then single positions past the first buffer's room (it grows twice).
        for (i, t) in [5usize, 1, 1, 7, 1, 30, 1].into_iter().enumerate() {
            let k = step(i, t)?;
            let (got_k, got_v) = layer.append(&k, &(&k * 2.0)?)?;
            let w = match &want_k {
                None => k.clone(),
                Some(p) => Tensor::cat(&[p, &k], 2)?,
            };
            assert_eq!(got_k.flatten_all()?.to_vec1::<f32>()?, w.flatten_all()?.to_vec1::<f32>()?, "keys after append {i}");
            assert_eq!(got_v.flatten_all()?.to_vec1::<f32>()?, (&w * 2.0)?.flatten_all()?.to_vec1::<f32>()?, "values after append {i}");
            want_k = Some(w);
        }
        // A clone continues on its own: appending to one never shows in the other.
        let mut other = layer.clone();
        let before = layer.get().unwrap().0.flatten_all()?.to_vec1::<f32>()?;
        let (a, _) = layer.append(&step(50, 1)?, &step(50, 1)?)?;
        let (b, _) = other.append(&step(60, 1)?, &step(60, 1)?)?;
        assert_eq!(a.narrow(2, 0, 46)?.flatten_all()?.to_vec1::<f32>()?, before);
        assert_eq!(b.narrow(2, 0, 46)?.flatten_all()?.to_vec1::<f32>()?, before);
        assert_eq!(a.narrow(2, 46, 1)?.flatten_all()?.to_vec1::<f32>()?, step(50, 1)?.flatten_all()?.to_vec1::<f32>()?);
        assert_eq!(b.narrow(2, 46, 1)?.flatten_all()?.to_vec1::<f32>()?, step(60, 1)?.flatten_all()?.to_vec1::<f32>()?);
        let wrong = Tensor::zeros((1, 3, 1, 4), candle_core::DType::F32, &dev)?;
        assert!(layer.append(&wrong, &wrong).is_err());
        Ok(())
    }

    #[test]
    fn keeping_rows_selects_them_everywhere() -> Result<()> {
        let dev = Device::Cpu;
        let mut c = KvCache::new(2);
        let k = Tensor::arange(0f32, 3.0 * 2.0 * 4.0, &dev)?.reshape((3, 1, 4, 2))?;
        for i in 0..2 {
            c.layer_mut(i)?.append(&k, &k)?;
        }
        c.commit(&[vec![true; 4], vec![false, true, true, true], vec![false, false, true, true]]);
        c.keep_rows(&[2, 0])?;
        assert_eq!(c.batch_size(), Some(2));
        assert_eq!(c.next_positions(), &[2, 4]);
        assert_eq!(c.valid()[0], vec![false, false, true, true]);
        let (kept, _) = c.layer_mut(1)?.get().unwrap();
        assert_eq!(kept.flatten_all()?.to_vec1::<f32>()?, [&k.get(2)?.flatten_all()?.to_vec1::<f32>()?[..], &k.get(0)?.flatten_all()?.to_vec1::<f32>()?[..]].concat());
        // Appending continues row-wise after the selection.
        let (all, _) = c.layer_mut(1)?.append(&Tensor::ones((2, 1, 1, 2), candle_core::DType::F32, &dev)?, &Tensor::ones((2, 1, 1, 2), candle_core::DType::F32, &dev)?)?;
        assert_eq!(all.dims(), &[2, 1, 5, 2]);
        assert!(c.keep_rows(&[2]).is_err());
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
