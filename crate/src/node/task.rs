//! The one protocol every long-running binding follows: a `CancelToken` that JS sets (from an
//! `AbortSignal`) and the core polls between units of work, and progress pushed to an optional
//! JS callback without waiting for it.

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A cancellation flag shared between JS and running native tasks (embedding, RVQ and DSL
/// training, generation). A clone shares the flag.
#[napi]
#[derive(Clone)]
pub struct CancelToken {
    flag: Arc<AtomicBool>,
}

#[napi]
impl CancelToken {
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        CancelToken { flag: Arc::new(AtomicBool::new(false)) }
    }

    /// Asks every task holding this token to stop at its next checkpoint (between batches,
    /// Lloyd iterations, optimizer updates or decoding steps).
    #[napi]
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }

    #[napi(getter)]
    pub fn cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

impl CancelToken {
    /// The flag a task polls; tasks hold it beyond the JS call, so it is shared, not borrowed.
    pub(super) fn flag(&self) -> Arc<AtomicBool> {
        self.flag.clone()
    }
}

/// The flag of `token`, or one nobody sets, so that the core always has a flag to poll.
pub(super) fn cancel_flag(token: Option<&CancelToken>) -> Arc<AtomicBool> {
    token.map_or_else(|| Arc::new(AtomicBool::new(false)), CancelToken::flag)
}

/// A JS progress callback; what it returns is ignored.
pub(super) type ProgressFn<T> = ThreadsafeFunction<T, Unknown<'static>, T, Status, false>;

/// Hands a progress value to `callback`, if there is one, without waiting for JS: progress is
/// advisory, so a slow callback, a full queue or a closing environment must never stall or
/// fail the work. `value` is only built when someone listens.
pub(super) fn report<T: 'static + JsValuesTupleIntoVec>(callback: Option<&ProgressFn<T>>, value: impl FnOnce() -> T) {
    if let Some(f) = callback {
        let _ = f.call(value(), ThreadsafeFunctionCallMode::NonBlocking);
    }
}
