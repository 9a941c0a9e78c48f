//! Padded batches and the order they come in.
//!
//! Padding is on the right (positions of real tokens stay 0..n, as in generation), the attention
//! mask is 1 on real tokens, and labels are the input ids where the loss mask is set and
//! [`IGNORE_INDEX`] elsewhere (prompt and padding), as transformers' collators produce them.
//! Batches group examples of similar length so little compute goes to padding.

use crate::prompt::TokenizedExample;
use super::random::stream;
use crate::random::shuffle;
use crate::error::{Result, WotdError};
use crate::random::SeededRng;
use candle_core::{Device, Tensor};

/// Label of a position that takes no loss (PyTorch's `ignore_index` default).
pub use crate::nn::loss::IGNORE_INDEX;

/// How many batches' worth of examples are sorted by length together: wide enough that a batch
/// holds similar lengths, narrow enough that batch order stays random (transformers' value).
const GROUP_BATCHES: usize = 50;

#[derive(Clone, Debug)]
pub struct Batch {
    /// `[b, t]` u32.
    pub input_ids: Tensor,
    /// `[b, t]` u32: 1 on real tokens, 0 on padding.
    pub attention_mask: Tensor,
    /// `[b, t]` i64: the token to predict at that position, or [`IGNORE_INDEX`].
    pub labels: Tensor,
    /// Real (non-padding) tokens.
    pub real_tokens: usize,
    /// Positions that take loss once labels are shifted (every labeled position but the first).
    pub target_tokens: usize,
}

/// Pads `examples` to the longest one.
pub fn collate(examples: &[&TokenizedExample], pad_id: u32, device: &Device) -> Result<Batch> {
    let width = examples.iter().map(|e| e.len()).max().unwrap_or(0);
    if width == 0 {
        return Err(WotdError::InvalidInput("cannot batch zero examples or empty examples".into()));
    }
    let b = examples.len();
    let mut ids = Vec::with_capacity(b * width);
    let mut mask = Vec::with_capacity(b * width);
    let mut labels = Vec::with_capacity(b * width);
    let mut target_tokens = 0;
    for ex in examples {
        if ex.loss_mask.len() != ex.input_ids.len() {
            return Err(WotdError::InvalidInput("an example's loss mask and ids differ in length".into()));
        }
        for (i, (&id, &learn)) in ex.input_ids.iter().zip(&ex.loss_mask).enumerate() {
            ids.push(id);
            mask.push(1u32);
            labels.push(if learn { id as i64 } else { IGNORE_INDEX });
            target_tokens += usize::from(learn && i > 0);
        }
        let pad = width - ex.len();
        ids.extend(std::iter::repeat_n(pad_id, pad));
        mask.extend(std::iter::repeat_n(0u32, pad));
        labels.extend(std::iter::repeat_n(IGNORE_INDEX, pad));
    }
    let real_tokens = examples.iter().map(|e| e.len()).sum();
    Ok(Batch {
        input_ids: Tensor::from_vec(ids, (b, width), device)?,
        attention_mask: Tensor::from_vec(mask, (b, width), device)?,
        labels: Tensor::from_vec(labels, (b, width), device)?,
        real_tokens,
        target_tokens,
    })
}

/// The batches of one epoch as lists of example indices: a seeded shuffle, then (when
/// `group_by_length`) each run of `GROUP_BATCHES` batches sorted by length, then the batches
/// themselves shuffled. A function of `(lengths, batch_size, seed, epoch)` only, so a resumed
/// run rebuilds the exact order it left.
pub fn epoch_batches(lengths: &[usize], batch_size: usize, seed: u64, epoch: u64, group_by_length: bool) -> Vec<Vec<usize>> {
    let batch_size = batch_size.max(1);
    let mut rng = SeededRng::derive(seed, stream::EPOCH.wrapping_add(epoch));
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    shuffle(&mut rng, &mut order);
    if group_by_length {
        for group in order.chunks_mut(batch_size * GROUP_BATCHES) {
            // Stable, so equal lengths keep their shuffled order.
            group.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
        }
    }
    let mut batches: Vec<Vec<usize>> = order.chunks(batch_size).map(<[usize]>::to_vec).collect();
    shuffle(&mut rng, &mut batches);
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(ids: &[u32], answer_from: usize) -> TokenizedExample {
        TokenizedExample { input_ids: ids.to_vec(), loss_mask: (0..ids.len()).map(|i| i >= answer_from).collect(), words_kept: 1 }
    }

    #[test]
    fn pads_right_and_labels_only_the_answer() -> Result<()> {
        let a = ex(&[5, 6, 7, 8], 2);
        let b = ex(&[9, 10], 1);
        let batch = collate(&[&a, &b], 0, &Device::Cpu)?;
        assert_eq!(batch.input_ids.to_vec2::<u32>()?, vec![vec![5, 6, 7, 8], vec![9, 10, 0, 0]]);
        assert_eq!(batch.attention_mask.to_vec2::<u32>()?, vec![vec![1, 1, 1, 1], vec![1, 1, 0, 0]]);
        assert_eq!(batch.labels.to_vec2::<i64>()?, vec![vec![-100, -100, 7, 8], vec![-100, 10, -100, -100]]);
        assert_eq!((batch.real_tokens, batch.target_tokens), (6, 3));
        Ok(())
    }

    #[test]
    fn epochs_cover_every_example_once_grouped_by_length_and_reproducibly() {
        let lengths: Vec<usize> = (0..103).map(|i| 5 + (i * 37) % 60).collect();
        let batches = epoch_batches(&lengths, 4, 11, 0, true);
        let mut all: Vec<usize> = batches.concat();
        all.sort();
        assert_eq!(all, (0..103).collect::<Vec<_>>());
        assert_eq!(batches.iter().filter(|b| b.len() < 4).count(), 1);
        // Grouping: padding waste is far below what a random order gives.
        let waste = |bs: &[Vec<usize>]| -> usize {
            bs.iter().map(|b| { let m = b.iter().map(|&i| lengths[i]).max().unwrap(); b.iter().map(|&i| m - lengths[i]).sum::<usize>() }).sum()
        };
        assert!(waste(&batches) * 4 < waste(&epoch_batches(&lengths, 4, 11, 0, false)));
        assert_eq!(batches, epoch_batches(&lengths, 4, 11, 0, true));
        assert_ne!(batches, epoch_batches(&lengths, 4, 11, 1, true), "each epoch has its own order");
    }
}
