//! Learning rate: linear warmup, then cosine decay to a floor.
//!
//! Indexed by update number `u = 1..=total` (the update about to be taken). Warmup reaches the
//! peak at `u = warmup`, so the first update already learns (transformers' schedule gives
//! update 1 a rate of 0); the cosine then ends exactly on the floor at `u = total`.

use crate::error::{Result, WotdError};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub peak_lr: f64,
    pub min_lr: f64,
    pub warmup_steps: usize,
    pub total_steps: usize,
}

impl Schedule {
    pub fn new(peak_lr: f64, min_lr: f64, warmup_steps: usize, total_steps: usize) -> Result<Self> {
        if !(peak_lr > 0.0 && peak_lr.is_finite() && (0.0..=peak_lr).contains(&min_lr)) {
            return Err(WotdError::InvalidInput(format!("learning rate must be > 0 with 0 <= floor <= peak, got peak {peak_lr}, floor {min_lr}")));
        }
        if total_steps == 0 {
            return Err(WotdError::InvalidInput("a schedule needs at least one step".into()));
        }
        Ok(Schedule { peak_lr, min_lr, warmup_steps, total_steps })
    }

    /// Rate of update `u` (1-based); values past `total` stay on the floor.
    pub fn lr(&self, u: usize) -> f64 {
        let u = u.max(1);
        if u <= self.warmup_steps {
            return self.peak_lr * u as f64 / self.warmup_steps as f64;
        }
        let span = self.total_steps.saturating_sub(self.warmup_steps);
        if span == 0 {
            return self.peak_lr;
        }
        let progress = ((u - self.warmup_steps) as f64 / span as f64).min(1.0);
        self.min_lr + (self.peak_lr - self.min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_at_key_steps() -> Result<()> {
        let s = Schedule::new(1e-3, 1e-4, 10, 110)?;
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(s.lr(1), 1e-4));
        assert!(close(s.lr(5), 5e-4));
        assert!(close(s.lr(10), 1e-3), "peak at the end of warmup");
        assert!(close(s.lr(60), 1e-4 + 0.9e-3 * 0.5), "halfway through the cosine: mid-point");
        assert!(close(s.lr(35), 1e-4 + 0.9e-3 * 0.5 * (1.0 + (std::f64::consts::PI / 4.0).cos())));
        assert!(close(s.lr(110), 1e-4), "ends on the floor");
        assert!(close(s.lr(500), 1e-4));
        let lrs: Vec<f64> = (10..=110).map(|u| s.lr(u)).collect();
        assert!(lrs.windows(2).all(|w| w[1] <= w[0]), "monotone after warmup");
        Ok(())
    }

    #[test]
    fn without_warmup_the_cosine_starts_at_once_and_bad_rates_are_refused() -> Result<()> {
        let s = Schedule::new(2e-4, 0.0, 0, 4)?;
        assert!((s.lr(1) - 2e-4 * 0.5 * (1.0 + (std::f64::consts::PI / 4.0).cos())).abs() < 1e-15);
        assert_eq!(s.lr(4), 0.0);
        assert!(Schedule::new(0.0, 0.0, 0, 4).is_err());
        assert!(Schedule::new(1e-3, 2e-3, 0, 4).is_err());
        assert!(Schedule::new(1e-3, 0.0, 0, 0).is_err());
        Ok(())
    }
}
