//! Splitting row-wise loops over the thread pool the matmuls use.
//!
//! rayon's pool (the one `gemm` already runs on) rather than candle's spin-barrier pool: an idle
//! rayon worker sleeps, and a chunk whose worker is descheduled is stolen by the other, where
//! candle's barrier waits for every thread (see `runtime::configure_cpu_threads`).

use std::marker::PhantomData;
use std::ops::Range;

/// Below this many elements a loop runs on the calling thread: handing work to the pool costs
/// a wake-up (tens of microseconds), more than a small loop takes (decoding one token).
const MIN_PARALLEL_ELEMENTS: usize = 1 << 15;

/// Calls `f` on consecutive row ranges that together cover `0..rows`, in parallel when the
/// `rows x width` elements are many. Ranges never overlap, which is what makes writing through
/// [`RowsMut`] inside `f` sound.
pub(crate) fn for_rows(rows: usize, width: usize, f: impl Fn(Range<usize>) + Sync) {
    let threads = rayon::current_num_threads();
    let elements = rows.saturating_mul(width);
    if threads < 2 || rows < 2 || elements < MIN_PARALLEL_ELEMENTS {
        f(0..rows);
        return;
    }
    // A few chunks per thread, each still large, so a thread that is descheduled for a while
    // leaves its share to be stolen instead of holding up the loop.
    let chunks = (threads * 4).min(rows).min(elements.div_ceil(MIN_PARALLEL_ELEMENTS / 4).max(2));
    let per = rows.div_ceil(chunks);
    use rayon::prelude::*;
    (0..rows.div_ceil(per)).into_par_iter().for_each(|c| f(c * per..((c + 1) * per).min(rows)));
}

/// A mutable row-major buffer that [`for_rows`] workers write disjoint rows of.
pub(crate) struct RowsMut<'a> {
    ptr: *mut f32,
    len: usize,
    width: usize,
    _borrow: PhantomData<&'a mut [f32]>,
}

// SAFETY: a `RowsMut` only hands out rows through `rows`, whose callers promise disjoint
// ranges; the buffer itself is an exclusively borrowed `[f32]`.
unsafe impl Send for RowsMut<'_> {}
unsafe impl Sync for RowsMut<'_> {}

impl<'a> RowsMut<'a> {
    pub(crate) fn new(buf: &'a mut [f32], width: usize) -> Self {
        RowsMut { ptr: buf.as_mut_ptr(), len: buf.len(), width, _borrow: PhantomData }
    }

    /// Rows `range` as one slice.
    ///
    /// # Safety
    /// No two live slices from the same `RowsMut` may overlap: call it with the disjoint ranges
    /// [`for_rows`] gives, once per range.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn rows(&self, range: Range<usize>) -> &'a mut [f32] {
        let (start, end) = (range.start * self.width, range.end * self.width);
        assert!(start <= end && end <= self.len, "rows {range:?} of a {}-element buffer of width {}", self.len, self.width);
        // SAFETY: in bounds (checked above) and, by the caller's promise, not aliased.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), end - start) }
    }
}

/// Rows `range` of the row-major `buf` of row length `width`.
#[inline]
pub(crate) fn rows_of(buf: &[f32], width: usize, range: Range<usize>) -> &[f32] {
    &buf[range.start * width..range.end * width]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn covers_every_row_once_small_and_large() {
        for (rows, width) in [(1, 3), (7, 5), (1000, 64), (4099, 33)] {
            let mut out = vec![0f32; rows * width];
            let calls = AtomicUsize::new(0);
            let dst = RowsMut::new(&mut out, width);
            for_rows(rows, width, |r| {
                calls.fetch_add(1, Ordering::Relaxed);
                // SAFETY: for_rows ranges are disjoint.
                let o = unsafe { dst.rows(r.clone()) };
                for (i, row) in o.chunks_exact_mut(width).enumerate() {
                    row.iter_mut().for_each(|v| *v += (r.start + i) as f32 + 1.0);
                }
            });
            for (i, row) in out.chunks_exact(width).enumerate() {
                assert!(row.iter().all(|&v| v == i as f32 + 1.0), "row {i} of {rows}x{width}");
            }
            assert!(calls.load(Ordering::Relaxed) >= 1);
        }
    }
}
