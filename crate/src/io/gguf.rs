//! GGUF files (llama.cpp): metadata access and every tensor dequantized to f32.
//!
//! Parsing is candle's `gguf_file`. It bounds-checks most lengths itself, but it was written
//! for trusted files, so this module also checks every tensor's extent against the file and
//! runs the parser under `catch_unwind`: a truncated or garbled file must come back as
//! [`WotdError::CorruptFile`], never as a panic or an out-of-memory abort.
//!
//! Tensors come back in GGUF naming and row-major PyTorch order (`[out, in]` for a linear
//! weight: GGUF lists dims fastest-first and candle reverses them). Architecture-specific
//! renaming lives in [`super::gguf_llama`].

use super::mapped::FileBytes;
use crate::error::{Result, WotdError};
use candle_core::quantized::gguf_file::{Content, TensorInfo, Value};
use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// An opened, validated GGUF file. Tensor data stays on disk (mapped) until asked for.
pub struct GgufFile {
    path: PathBuf,
    bytes: FileBytes,
    content: Content,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("tensors", &self.content.tensor_infos.len())
            .field("metadata", &self.content.metadata.len())
            .finish()
    }
}

impl GgufFile {
    /// Opens and validates a GGUF file: header, metadata, and that every tensor lies inside the file.
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = FileBytes::open(path)?;
        let parsed = catch_unwind(AssertUnwindSafe(|| Content::read(&mut Cursor::new(&bytes[..]))));
        let content = match parsed {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(parse_error(path, &e.to_string())),
            Err(_) => return Err(WotdError::corrupt(path, "GGUF header could not be parsed (parser panicked)")),
        };
        let file = GgufFile { path: path.to_path_buf(), bytes, content };
        for (name, info) in &file.content.tensor_infos {
            file.check_extent(name, info)?;
        }
        Ok(file)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// GGUF format version (1, 2 or 3).
    pub fn version(&self) -> u32 {
        use candle_core::quantized::gguf_file::VersionedMagic::*;
        match self.content.magic {
            GgufV1 => 1,
            GgufV2 => 2,
            GgufV3 => 3,
        }
    }

    /// All metadata key/values as parsed.
    pub fn metadata(&self) -> &HashMap<String, Value> {
        &self.content.metadata
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    /// A string value; a value of another type is a corrupt file.
    pub fn get_str(&self, key: &str) -> Result<Option<&str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.wrong_type(key, "a string", v)),
        }
    }

    /// An integer value of any width; negative or non-integer values are a corrupt file.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match as_i128(v) {
                Some(n) if n >= 0 && n <= u64::MAX as i128 => Ok(Some(n as u64)),
                _ => Err(self.wrong_type(key, "a non-negative integer", v)),
            },
        }
    }

    /// A float value (f32 widened to f64, integers accepted).
    pub fn get_f64(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::F32(x)) => Ok(Some(*x as f64)),
            Some(Value::F64(x)) => Ok(Some(*x)),
            Some(v) => as_i128(v).map(|n| Some(n as f64)).ok_or_else(|| self.wrong_type(key, "a number", v)),
        }
    }

    /// A float value stored as f32, as the shortest decimal that reads back as the same f32, so
    /// `1e-5` stays `1e-5` rather than becoming `9.999999747378752e-6`.
    pub fn get_f32_decimal(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            Some(Value::F32(x)) => Ok(x.to_string().parse::<f64>().ok()),
            _ => self.get_f64(key),
        }
    }

    pub fn get_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.wrong_type(key, "a bool", v)),
        }
    }

    /// An array of strings (e.g. `tokenizer.ggml.tokens`).
    pub fn get_str_array(&self, key: &str) -> Result<Option<Vec<&str>>> {
        let Some(v) = self.get(key) else { return Ok(None) };
        let Value::Array(items) = v else { return Err(self.wrong_type(key, "an array of strings", v)) };
        items
            .iter()
            .map(|x| match x {
                Value::String(s) => Ok(s.as_str()),
                other => Err(self.wrong_type(key, "an array of strings", other)),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// An array of integers of any width (e.g. `tokenizer.ggml.token_type`).
    pub fn get_int_array(&self, key: &str) -> Result<Option<Vec<i64>>> {
        let Some(v) = self.get(key) else { return Ok(None) };
        let Value::Array(items) = v else { return Err(self.wrong_type(key, "an array of integers", v)) };
        items
            .iter()
            .map(|x| {
                as_i128(x)
                    .and_then(|n| i64::try_from(n).ok())
                    .ok_or_else(|| self.wrong_type(key, "an array of integers", x))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// `general.architecture`, which every GGUF model must carry.
    pub fn architecture(&self) -> Result<&str> {
        self.get_str("general.architecture")?
            .ok_or_else(|| WotdError::corrupt(&self.path, "metadata has no general.architecture"))
    }

    /// Tensor names, sorted.
    pub fn tensor_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.content.tensor_infos.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    pub fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    /// Storage type and row-major shape of a tensor.
    pub fn tensor_info(&self, name: &str) -> Option<(GgmlDType, &[usize])> {
        self.content.tensor_infos.get(name).map(|i| (i.ggml_dtype, i.shape.dims()))
    }

    /// How many tensors use each storage type, e.g. `{"Q4_1": 210, "Q8_0": 1, "F32": 61}`.
    pub fn dtype_counts(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for info in self.content.tensor_infos.values() {
            *out.entry(format!("{:?}", info.ggml_dtype)).or_insert(0) += 1;
        }
        out
    }

    /// One tensor dequantized to f32, shape row-major.
    pub fn tensor_f32(&self, name: &str) -> Result<Tensor> {
        let info = self
            .content
            .tensor_infos
            .get(name)
            .ok_or_else(|| WotdError::InvalidInput(format!("{} has no tensor {name:?}", self.path.display())))?;
        let read = catch_unwind(AssertUnwindSafe(|| -> candle_core::Result<Tensor> {
            let q = info.read(&mut Cursor::new(&self.bytes[..]), self.content.tensor_data_offset, &Device::Cpu)?;
            q.dequantize(&Device::Cpu)
        }));
        match read {
            Ok(Ok(t)) => Ok(t),
            Ok(Err(e)) => Err(WotdError::corrupt(&self.path, format!("tensor {name:?}: {e}"))),
            Err(_) => Err(WotdError::corrupt(&self.path, format!("tensor {name:?} could not be decoded"))),
        }
    }

    /// Every tensor dequantized to f32, keyed by its GGUF name.
    pub fn load_all_f32(&self) -> Result<HashMap<String, Tensor>> {
        self.tensor_names().into_iter().map(|n| Ok((n.to_string(), self.tensor_f32(n)?))).collect()
    }

    /// Checks what candle would only find out while reading (or by overflowing): that the
    /// element count is sane, rows split into whole quantization blocks, and the bytes exist.
    fn check_extent(&self, name: &str, info: &TensorInfo) -> Result<()> {
        let dims = info.shape.dims();
        let elems = dims
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| WotdError::corrupt(&self.path, format!("tensor {name:?} has an impossible shape {dims:?}")))?;
        let block = info.ggml_dtype.block_size();
        let row = dims.last().copied().unwrap_or(1);
        if row % block != 0 {
            return Err(WotdError::corrupt(
                &self.path,
                format!("tensor {name:?}: row length {row} is not a multiple of the {:?} block size {block}", info.ggml_dtype),
            ));
        }
        let size = (elems / block) as u128 * info.ggml_dtype.type_size() as u128;
        let start = self.content.tensor_data_offset as u128 + info.offset as u128;
        let file_len = self.bytes.len() as u128;
        if start + size > file_len {
            return Err(WotdError::corrupt(
                &self.path,
                format!("tensor {name:?} needs bytes {start}..{} but the file is {file_len} bytes: truncated", start + size),
            ));
        }
        Ok(())
    }

    fn wrong_type(&self, key: &str, want: &str, got: &Value) -> WotdError {
        WotdError::corrupt(&self.path, format!("metadata {key} should be {want}, found {:?}", got.value_type()))
    }
}

fn as_i128(v: &Value) -> Option<i128> {
    Some(match v {
        Value::U8(x) => *x as i128,
        Value::I8(x) => *x as i128,
        Value::U16(x) => *x as i128,
        Value::I16(x) => *x as i128,
        Value::U32(x) => *x as i128,
        Value::I32(x) => *x as i128,
        Value::U64(x) => *x as i128,
        Value::I64(x) => *x as i128,
        _ => return None,
    })
}

/// An unknown tensor type is a newer llama.cpp quantization we cannot decode, not damage.
fn parse_error(path: &Path, msg: &str) -> WotdError {
    if msg.contains("unknown dtype") {
        return WotdError::Unsupported(format!("{}: {msg} (a GGUF quantization candle cannot decode)", path.display()));
    }
    let reason = if msg.contains("failed to fill whole buffer") || msg.contains("UnexpectedEof") {
        format!("file ends inside the GGUF header (truncated): {msg}")
    } else if msg.contains("unknown magic") {
        format!("not a GGUF file: {msg}")
    } else {
        format!("invalid GGUF header: {msg}")
    };
    WotdError::corrupt(path, reason)
}
