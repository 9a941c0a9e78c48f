//! Semantic IDs and the comparison that treats them as a hierarchy.

use super::LEVELS;

/// One code (0-31) per level: `[style, complexity, era, variation]`.
pub type SemanticId = [u8; LEVELS];

/// Weight of agreeing at each level: a shared level 0 outweighs everything below it
/// (8 > 4 + 2 + 1), so similarity orders IDs by the length of their common prefix first.
const PREFIX_WEIGHTS: [u32; LEVELS] = [8, 4, 2, 1];

/// Prefix-weighted similarity in [0, 1]: the weights of the levels on which `a` and `b`
/// agree, counted only up to the first level where they differ, over the sum of all weights.
/// Agreement below a disagreement is not counted, because a code's meaning depends on the
/// residual the levels above it left.
pub fn similarity(a: &SemanticId, b: &SemanticId) -> f64 {
    let total: u32 = PREFIX_WEIGHTS.iter().sum();
    let shared: u32 = a
        .iter()
        .zip(b)
        .zip(PREFIX_WEIGHTS)
        .take_while(|((x, y), _)| x == y)
        .map(|(_, w)| w)
        .sum();
    shared as f64 / total as f64
}

#[cfg(test)]
mod tests {
    use super::similarity;

    #[test]
    fn prefix_agreement_is_weighted_and_stops_at_the_first_difference() {
        assert_eq!(similarity(&[1, 2, 3, 4], &[1, 2, 3, 4]), 1.0);
        assert_eq!(similarity(&[1, 2, 3, 4], &[0, 2, 3, 4]), 0.0);
        assert_eq!(similarity(&[1, 2, 3, 4], &[1, 9, 3, 4]), 8.0 / 15.0);
        assert_eq!(similarity(&[1, 2, 3, 4], &[1, 2, 9, 9]), 12.0 / 15.0);
        assert_eq!(similarity(&[1, 2, 3, 4], &[1, 2, 3, 9]), 14.0 / 15.0);
        // Level 0 alone outweighs agreement on every level below it.
        assert!(similarity(&[1, 0, 0, 0], &[1, 5, 5, 5]) > similarity(&[1, 2, 3, 4], &[2, 2, 3, 4]));
    }
}
