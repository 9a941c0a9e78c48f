//! Which texts go into which forward pass. Texts are sorted by token count so each batch pads
//! to nearly its own length (short words never pay for a long phrase's padding), and batches
//! of long inputs shrink so attention scores stay within a memory budget.

/// Attention-score elements (rows x seq x seq) per head one batch may produce: 4M elements is
/// 16 MiB per head in f32, so a 12-head model stays under 200 MiB for the scores.
pub const ATTENTION_BUDGET: usize = 4 << 20;

/// Groups text indices into batches. `lengths[i]` is text i's token count. Longest first,
/// ties in input order, so the result is deterministic and a memory problem shows up at once.
pub fn plan_batches(lengths: &[usize], batch_size: usize) -> Vec<Vec<usize>> {
    let batch_size = batch_size.max(1);
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by(|&a, &b| lengths[b].cmp(&lengths[a]).then(a.cmp(&b)));
    let mut batches = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut current_len = 0usize;
    for i in order {
        // Sorted longest first, so the first member's length is the batch's padded length.
        if current.is_empty() {
            current_len = lengths[i].max(1);
        }
        let cap = (ATTENTION_BUDGET / (current_len * current_len)).clamp(1, batch_size);
        current.push(i);
        if current.len() >= cap {
            batches.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_by_length_and_covers_every_text_once() {
        let lengths = [3, 9, 3, 5, 9, 1];
        let b = plan_batches(&lengths, 2);
        assert_eq!(b, vec![vec![1, 4], vec![3, 0], vec![2, 5]]);
        let mut all: Vec<usize> = b.concat();
        all.sort();
        assert_eq!(all, (0..lengths.len()).collect::<Vec<_>>());
    }

    #[test]
    fn long_inputs_get_smaller_batches() {
        let lengths = vec![2048; 4];
        assert!(plan_batches(&lengths, 32).iter().all(|b| b.len() == 1));
        assert_eq!(plan_batches(&[4; 10], 32).len(), 1);
        assert!(plan_batches(&[], 8).is_empty());
    }
}
