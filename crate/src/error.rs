//! The one error type of the native core. Every variant maps to a stable code that the
//! Node layer turns into a typed TS error class, so callers can branch on `code`
//! instead of parsing messages.

use std::path::PathBuf;

pub type Result<T, E = WotdError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum WotdError {
    /// A model could not be found anywhere it may live. `looked` lists every place tried.
    #[error("model {model} not found; looked in: {}. Fetch it with `{fetch}`", looked.join("; "))]
    ModelNotFound { model: String, looked: Vec<String>, fetch: String },

    /// An ID pattern that does not parse; `field` is 1-based (0 when the whole input is wrong).
    #[error("invalid pattern {input:?}: {}", describe_field(*field, reason))]
    InvalidPattern { input: String, field: usize, reason: String },

    /// Arguments that are well-typed but unusable (empty word list, bad dimension, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// A file exists but its bytes are not what its format promises.
    #[error("corrupt file {}: {reason}", path.display())]
    CorruptFile { path: PathBuf, reason: String },

    /// A model file whose format or architecture we do not support.
    #[error("unsupported model: {0}")]
    Unsupported(String),

    #[error("I/O error on {}: {source}", path.display())]
    Io { path: PathBuf, #[source] source: std::io::Error },

    #[error("tensor operation failed")]
    Tensor(#[from] candle_core::Error),

    #[error("tokenizer error: {0}")]
    Tokenizer(String),

    #[error("operation cancelled")]
    Cancelled,

    /// A Rust panic caught at the Node boundary; the process keeps running.
    #[error("internal panic: {0}")]
    Panic(String),

    /// Context wrapped around a lower-level error, so the chain says where it happened.
    #[error("{context}")]
    Context { context: String, #[source] source: Box<WotdError> },
}

fn describe_field(field: usize, reason: &str) -> String {
    if field == 0 { reason.to_string() } else { format!("field {field}: {reason}") }
}

impl WotdError {
    /// Stable machine-readable code; part of the public API (TS error classes key on it).
    pub fn code(&self) -> &'static str {
        match self {
            WotdError::ModelNotFound { .. } => "MODEL_NOT_FOUND",
            WotdError::InvalidPattern { .. } => "INVALID_PATTERN",
            WotdError::InvalidInput(_) => "INVALID_INPUT",
            WotdError::CorruptFile { .. } => "CORRUPT_FILE",
            WotdError::Unsupported(_) => "UNSUPPORTED",
            WotdError::Io { .. } => "IO",
            WotdError::Tensor(_) => "TENSOR",
            WotdError::Tokenizer(_) => "TOKENIZER",
            WotdError::Cancelled => "CANCELLED",
            WotdError::Panic(_) => "PANIC",
            // A context wrapper reports the code of what actually went wrong.
            WotdError::Context { source, .. } => source.code(),
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        WotdError::Io { path: path.into(), source }
    }

    pub fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        WotdError::CorruptFile { path: path.into(), reason: reason.into() }
    }

    /// Messages of this error and every cause beneath it, outermost first.
    pub fn chain(&self) -> Vec<String> {
        let mut out = vec![self.to_string()];
        let mut next = std::error::Error::source(self);
        while let Some(e) = next {
            out.push(e.to_string());
            next = e.source();
        }
        out
    }
}

/// Adds a human-readable step to any error on its way up.
pub trait Context<T> {
    fn context(self, msg: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Into<WotdError>> Context<T> for std::result::Result<T, E> {
    fn context(self, msg: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| WotdError::Context { context: msg(), source: Box::new(e.into()) })
    }
}

impl From<tokenizers::Error> for WotdError {
    fn from(e: tokenizers::Error) -> Self {
        WotdError::Tokenizer(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_keeps_the_inner_code_and_the_chain() {
        let inner = WotdError::corrupt("/m/model.safetensors", "header length exceeds file size");
        let err: Result<()> = Err(inner).context(|| "loading model x".into());
        let err = err.unwrap_err();
        assert_eq!(err.code(), "CORRUPT_FILE");
        assert_eq!(
            err.chain(),
            vec![
                "loading model x".to_string(),
                "corrupt file /m/model.safetensors: header length exceeds file size".to_string()
            ]
        );
    }

    #[test]
    fn pattern_errors_name_the_field() {
        let e = WotdError::InvalidPattern { input: "[32,0,0,0]".into(), field: 1, reason: "32 is out of range 0-31".into() };
        assert_eq!(e.to_string(), "invalid pattern \"[32,0,0,0]\": field 1: 32 is out of range 0-31");
        assert_eq!(e.code(), "INVALID_PATTERN");
    }

    #[test]
    fn model_not_found_names_every_place_and_the_fix() {
        let e = WotdError::ModelNotFound {
            model: "BAAI/bge-small-en-v1.5".into(),
            looked: vec!["/a".into(), "/b".into()],
            fetch: "npx wotd models pull".into(),
        };
        let s = e.to_string();
        assert!(s.contains("/a; /b") && s.contains("npx wotd models pull"), "{s}");
    }
}
