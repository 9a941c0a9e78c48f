//! Reading candle's CPU storage inside the project's custom ops.

use candle_core::{CpuStorage, Layout};

/// The dense f32 elements `layout` covers in `storage`; `op` names the caller in the error.
pub(crate) fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> candle_core::Result<&'a [f32]> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: input must be contiguous");
    };
    let CpuStorage::F32(v) = storage else {
        candle_core::bail!("{op}: input must be f32");
    };
    Ok(&v[start..end])
}
