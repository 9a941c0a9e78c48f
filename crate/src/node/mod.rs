//! N-API bindings. Only type conversion and scheduling live here: every function forwards
//! to a plain Rust module and converts its result. Errors cross the boundary as JS errors
//! whose message starts with `[CODE]` and whose `cause` chain mirrors the Rust source chain;
//! `src/errors.ts` turns them into typed TS errors.

mod bench;
mod convert;
mod dsl;
mod embed;
mod errors;
mod generate;
mod info;
mod models;
mod predict;
mod rvq;
mod task;
mod train;

pub use errors::{guard, to_napi};

/// Runs when Node loads the addon, before any binding can start candle work.
#[napi_derive::module_init]
fn init() {
    crate::runtime::configure_cpu_threads();
}
