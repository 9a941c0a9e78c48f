//! Run-time choice of instruction set for plain Rust loops.

/// Runs `f` inside a function compiled for the best instruction set this CPU offers (AVX-512 or
/// AVX2+FMA on x86-64, through `pulp`; baseline elsewhere). Loops written in `f` over slices,
/// with every helper `#[inline(always)]`, are then auto-vectorised for that width: the crate is
/// built for baseline x86-64 (SSE2), where the same loops would use 128-bit vectors at best.
#[inline(always)]
pub(crate) fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}
