use crate::error::WotdError;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Converts a core error into a JS-facing error: `[CODE] message`, causes chained.
pub fn to_napi(err: WotdError) -> napi::Error {
    let code = err.code();
    let chain = err.chain();
    // Build the cause chain innermost first, since each napi::Error owns its cause.
    let mut cause: Option<napi::Error> = None;
    for msg in chain.iter().skip(1).rev() {
        let mut e = napi::Error::new(napi::Status::GenericFailure, msg.clone());
        e.cause = cause.take().map(Box::new);
        cause = Some(e);
    }
    let mut top = napi::Error::new(napi::Status::GenericFailure, format!("[{code}] {}", chain[0]));
    top.cause = cause.map(Box::new);
    top
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

/// Runs core work so that neither an error nor a panic escapes as anything but a JS error.
/// A panic inside an AsyncTask's `compute` would otherwise abort the whole Node process.
pub fn guard<T>(f: impl FnOnce() -> crate::error::Result<T>) -> napi::Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(to_napi(e)),
        Err(payload) => Err(to_napi(WotdError::Panic(panic_message(payload)))),
    }
}
