use napi_derive::napi;

/// Version of the native core (the crate version), for diagnostics and `wotd --version`.
#[napi]
pub fn native_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// Test hook: raises a Rust panic inside the guarded boundary, so tests can prove a panic
/// surfaces as a JS error and the process survives.
#[napi(js_name = "__panicForTest")]
pub fn panic_for_test(message: String) -> napi::Result<()> {
    super::guard(|| -> crate::error::Result<()> { panic!("{message}") })
}

/// Test hook: raises a typed core error with a cause, to exercise the TS error mapping.
#[napi(js_name = "__errorForTest")]
pub fn error_for_test(code: String) -> napi::Result<()> {
    use crate::error::{Context, WotdError};
    super::guard(|| {
        let inner = match code.as_str() {
            "MODEL_NOT_FOUND" => WotdError::ModelNotFound {
                model: "test/model".into(),
                looked: vec!["/nowhere".into()],
                fetch: "npx wotd models pull".into(),
            },
            "INVALID_PATTERN" => WotdError::InvalidPattern { input: "[x]".into(), field: 1, reason: "\"x\" is not a number or *".into() },
            "CORRUPT_FILE" => WotdError::corrupt("/tmp/x.safetensors", "truncated"),
            _ => WotdError::InvalidInput(format!("unknown test code {code}")),
        };
        Err::<(), _>(inner).context(|| "while testing the error bridge".into())
    })
}
