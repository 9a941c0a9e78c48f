//! Model files: how checkpoints, tokenizers and configs are read, and where models are found.
//!
//! - [`safetensors`]: HF checkpoints (single file or sharded) as f32 candle tensors.
//! - [`gguf`]: llama.cpp GGUF files: metadata and every tensor dequantized to f32.
//! - [`gguf_llama`]: the llama architecture's GGUF -> Hugging Face mapping (names, Q/K rows,
//!   `config.json`), so a GGUF model loads exactly like its safetensors twin.
//! - [`tokenizer`]: `tokenizer.json` or a GGUF-embedded vocabulary as one tokenizer type, with
//!   truncation set from the model (never from what the file happens to carry).
//! - [`resolve`]: where a model id lives (explicit dir, HF cache, Hub, wotd cache);
//!   [`hub`] downloads, [`marker`] checks wotd-pulled directories against their sha256 marker.
//! - [`model_files`]: what a resolved directory holds and one way to load it, whatever its format;
//!   [`inspect`] resolves, opens and fully loads one (what `inspectModel` reports).
//!
//! - [`peft`]: PEFT adapter directories (config and LoRA weights), read and written.
//! - [`atomic`]: every file and directory the crate writes appears whole or not at all.
//!
//! Everything here reports damaged input as [`crate::WotdError::CorruptFile`] naming the file
//! and the reason; nothing panics on bad bytes.

mod mapped;

pub mod atomic;
pub mod gguf;
pub mod gguf_llama;
pub mod hub;
pub mod inspect;
pub mod marker;
pub mod model_files;
pub mod peft;
pub mod resolve;
pub mod safetensors;
pub mod tokenizer;

pub use gguf::GgufFile;
pub use model_files::{locate_weights, FileEntry, ModelFiles, Pooling, TokenizerSource, WeightFormat};
pub use resolve::{
    download_from_hub, resolve, resolve_with_progress, verify, DownloadProgress, ModelSource, Resolved, ResolveOptions,
    VerifyReport,
};
pub use safetensors::{checkpoint_in_dir, load_checkpoint, load_safetensors, save_tensors, Checkpoint, IntegerTensors};
pub use tokenizer::{Encoded, SpecialTokens, TextTokenizer};
