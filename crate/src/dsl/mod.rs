//! The ID-pattern grammar: `[2,9,17,5]`, `[2,*,17,*]`, `(2, 9, 17, 5)`. One parser for the whole project.
//!
//! A pattern has one field per ID level, each a code 0-31 or `*` (any). Brackets are `[]`
//! or `()`, whitespace around any token is ignored; everything else is
//! `WotdError::InvalidPattern`, naming the field (1-based; 0 for the pattern as a whole) and
//! the reason.

mod describe;
mod parse;
mod pattern;

pub use describe::describe;
pub use parse::parse;
pub use pattern::Pattern;
