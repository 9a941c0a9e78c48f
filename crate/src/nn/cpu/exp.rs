//! `exp` and the logistic function in a form the compiler can vectorise.
//!
//! libm's `expf` is a call per element, so a loop over it stays scalar. This one is Cody-Waite
//! range reduction (`x = n ln2 + r`, `|r| <= ln2 / 2`) and a degree-6 polynomial for `e^r`, with
//! `2^n` built in the exponent bits: only multiplies, adds and integer moves. Relative error
//! about 2e-7 (1-2 ulp) over the whole f32 range; checked against `f32::exp` in the tests.

const LOG2E: f32 = std::f32::consts::LOG2_E;
// ln 2 split so that `n * LN2_HI` is exact for |n| <= 2^8.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Adding this rounds a float in (-2^22, 2^22) to the nearest integer and leaves that integer
/// in the low mantissa bits.
const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23

/// `e^x`: +inf above about 88.72, gradual underflow to subnormals and then 0 below about
/// -87.3, NaN for NaN.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const HI: f32 = 88.722_83;
    const LO: f32 = -104.0;
    let xc = x.clamp(LO, HI);
    let z = xc * LOG2E + ROUND;
    let n = z - ROUND;
    let r = xc - n * LN2_HI - n * LN2_LO;
    // e^r by Horner, Taylor coefficients to 1/6! (enough for |r| <= 0.347 in f32).
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (0.166_666_67 + r * (0.041_666_668 + r * (0.008_333_334 + r * 0.001_388_889)))));
    // 2^n in two halves, so n = 128 (just below f32::MAX) and n < -126 (subnormal results)
    // need no special case: each half stays a normal float.
    let ni = z.to_bits() as i32 - ROUND.to_bits() as i32;
    let (n1, n2) = (ni >> 1, ni - (ni >> 1));
    let pow2 = |k: i32| f32::from_bits(((k + 127) << 23) as u32);
    let y = p * pow2(n1) * pow2(n2);
    if x < LO {
        0.0
    } else if x > HI {
        f32::INFINITY
    } else if x.is_nan() {
        x
    } else {
        y
    }
}

/// `1 / (1 + e^-x)`.
#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_libm_exp_within_two_ulp_over_the_range() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.72 {
            let (ours, want) = (exp(x) as f64, (x as f64).exp());
            worst = worst.max(((ours - want) / want).abs());
            x += 0.000_731;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
    }

    #[test]
    fn handles_the_ends_and_special_values() {
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-1000.0), 0.0);
        assert_eq!(exp(f32::MIN), 0.0);
        // Subnormal results and the top of the range, where a single 2^n would overflow.
        assert!((exp(-100.0) - (-100f64).exp() as f32).abs() <= f32::from_bits(1), "{}", exp(-100.0));
        assert!(exp(88.72).is_finite() && (exp(88.72) as f64 / (88.72f32 as f64).exp() - 1.0).abs() < 1e-6);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(100.0), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-7);
        assert_eq!(sigmoid(-200.0), 0.0);
        assert_eq!(sigmoid(200.0), 1.0);
    }
}
