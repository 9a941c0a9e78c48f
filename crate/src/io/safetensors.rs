//! Hugging Face safetensors checkpoints -> f32 candle tensors keyed by name.
//!
//! A checkpoint is either one `model.safetensors` or `model.safetensors.index.json` plus the
//! shards its `weight_map` names. Parsing and bounds validation are the `safetensors` crate's;
//! this module turns its errors into [`WotdError::CorruptFile`] with a reason a person can act on.

use super::mapped::FileBytes;
use crate::error::{Result, WotdError};
use candle_core::{Device, Tensor};
use safetensors::{Dtype, SafeTensorError, SafeTensors};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// The single-file checkpoint name `transformers` writes.
pub const SINGLE_FILE: &str = "model.safetensors";
/// The index that lists the shards of a large checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// What to do with integer and boolean tensors (buffers such as BERT's
/// `embeddings.position_ids`, which are not weights).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IntegerTensors {
    /// Leave them out, so every returned tensor is f32.
    #[default]
    Skip,
    /// Keep them in their own integer dtype (booleans become u8).
    Keep,
}

/// Loads one safetensors file. Float tensors (f32, f16, bf16, f64) come back as f32.
pub fn load_safetensors(path: &Path, ints: IntegerTensors) -> Result<HashMap<String, Tensor>> {
    let bytes = FileBytes::open(path)?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| corrupt(path, &e, bytes.len()))?;
    let mut out = HashMap::with_capacity(st.len());
    for (name, view) in st.iter() {
        if let Some(t) = view_to_tensor(path, name, view.dtype(), view.shape(), view.data(), ints)? {
            out.insert(name.to_string(), t);
        }
    }
    Ok(out)
}

/// Loads a checkpoint from a directory (single file or sharded), a `.safetensors` file, or a
/// `.safetensors.index.json` file.
pub fn load_checkpoint(path: &Path, ints: IntegerTensors) -> Result<HashMap<String, Tensor>> {
    if path.is_dir() {
        let files = checkpoint_in_dir(path)?.ok_or_else(|| {
            WotdError::InvalidInput(format!("{} holds neither {SINGLE_FILE} nor {INDEX_FILE}", path.display()))
        })?;
        return match files {
            Checkpoint::Single(file) => load_safetensors(&file, ints),
            Checkpoint::Sharded { index, .. } => load_sharded(&index, ints),
        };
    }
    if path.to_string_lossy().ends_with(".index.json") {
        load_sharded(path, ints)
    } else {
        load_safetensors(path, ints)
    }
}

/// The weight files of a safetensors checkpoint in a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Checkpoint {
    Single(PathBuf),
    /// `shards` are the distinct files the index names, in sorted order; they may not all exist.
    Sharded { index: PathBuf, shards: Vec<PathBuf> },
}

impl Checkpoint {
    /// Every file the checkpoint consists of (the index first when sharded).
    pub fn files(&self) -> Vec<PathBuf> {
        match self {
            Checkpoint::Single(f) => vec![f.clone()],
            Checkpoint::Sharded { index, shards } => std::iter::once(index.clone()).chain(shards.iter().cloned()).collect(),
        }
    }
}

/// Finds the checkpoint in `dir`: `model.safetensors` first, else the shard index. Other
/// `.safetensors` files (adapters, references) are deliberately not guessed at.
pub fn checkpoint_in_dir(dir: &Path) -> Result<Option<Checkpoint>> {
    let single = dir.join(SINGLE_FILE);
    if single.is_file() {
        return Ok(Some(Checkpoint::Single(single)));
    }
    let index = dir.join(INDEX_FILE);
    if index.is_file() {
        let map = read_index(&index)?;
        let shards: BTreeSet<&String> = map.values().collect();
        let shards = shards.into_iter().map(|s| dir.join(s)).collect();
        return Ok(Some(Checkpoint::Sharded { index, shards }));
    }
    Ok(None)
}

/// Reads a shard index's `weight_map` (tensor name -> shard file name).
pub fn read_index(index: &Path) -> Result<HashMap<String, String>> {
    let text = std::fs::read_to_string(index).map_err(|e| WotdError::io(index, e))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| WotdError::corrupt(index, format!("index is not valid JSON: {e}")))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| WotdError::corrupt(index, "index has no \"weight_map\" object"))?;
    let mut out = HashMap::with_capacity(map.len());
    for (name, shard) in map {
        let shard = shard
            .as_str()
            .ok_or_else(|| WotdError::corrupt(index, format!("weight_map entry {name:?} is not a file name")))?;
        // A shard must sit beside its index; anything else could read arbitrary files.
        if shard.is_empty() || shard.contains(['/', '\\']) || shard == ".." || shard == "." {
            return Err(WotdError::corrupt(index, format!("shard name {shard:?} for {name:?} is not a plain file name")));
        }
        out.insert(name.clone(), shard.to_string());
    }
    Ok(out)
}

fn load_sharded(index: &Path, ints: IntegerTensors) -> Result<HashMap<String, Tensor>> {
    let map = read_index(index)?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut by_shard: HashMap<&str, Vec<&str>> = HashMap::new();
    for (name, shard) in &map {
        by_shard.entry(shard.as_str()).or_default().push(name.as_str());
    }
    let mut out = HashMap::with_capacity(map.len());
    let mut shards: Vec<_> = by_shard.into_iter().collect();
    shards.sort();
    for (shard, names) in shards {
        let path = dir.join(shard);
        if !path.is_file() {
            return Err(WotdError::corrupt(index, format!("shard {shard} is missing ({} tensors listed in it)", names.len())));
        }
        let mut tensors = load_safetensors(&path, IntegerTensors::Keep)?;
        for name in names {
            let t = tensors.remove(name).ok_or_else(|| {
                WotdError::corrupt(&path, format!("tensor {name:?} is listed in {} but not in this shard", index.display()))
            })?;
            if ints == IntegerTensors::Skip && !t.dtype().is_float() {
                continue;
            }
            out.insert(name.to_string(), t);
        }
    }
    Ok(out)
}

/// Converts one stored tensor; `Ok(None)` means "skipped by policy".
fn view_to_tensor(
    path: &Path,
    name: &str,
    dtype: Dtype,
    shape: &[usize],
    data: &[u8],
    ints: IntegerTensors,
) -> Result<Option<Tensor>> {
    let dev = Device::Cpu;
    let float = |values: Vec<f32>| Tensor::from_vec(values, shape, &dev).map(Some).map_err(WotdError::from);
    match dtype {
        Dtype::F32 => return float(data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()),
        Dtype::F16 => return float(data.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect()),
        Dtype::BF16 => return float(data.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect()),
        Dtype::F64 => {
            return float(data.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("chunk of 8")) as f32).collect())
        }
        _ => {}
    }
    let integer = matches!(dtype, Dtype::I64 | Dtype::I32 | Dtype::U32 | Dtype::U8 | Dtype::I16 | Dtype::BOOL);
    if !integer {
        return Err(WotdError::Unsupported(format!("tensor {name:?} in {} has dtype {dtype:?}", path.display())));
    }
    if ints == IntegerTensors::Skip {
        return Ok(None);
    }
    let t = match dtype {
        Dtype::I64 => Tensor::from_vec(
            data.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().expect("chunk of 8"))).collect::<Vec<_>>(),
            shape,
            &dev,
        ),
        Dtype::I32 => Tensor::from_vec(
            data.chunks_exact(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect::<Vec<_>>(),
            shape,
            &dev,
        ),
        Dtype::U32 => Tensor::from_vec(
            data.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect::<Vec<_>>(),
            shape,
            &dev,
        ),
        Dtype::I16 => Tensor::from_vec(
            data.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect::<Vec<_>>(),
            shape,
            &dev,
        ),
        _ => Tensor::from_vec(data.to_vec(), shape, &dev),
    };
    Ok(Some(t?))
}

/// Says what is wrong with a file in words, keeping the library's own detail.
fn corrupt(path: &Path, e: &SafeTensorError, file_len: usize) -> WotdError {
    let reason = match e {
        SafeTensorError::HeaderTooSmall => format!("file is {file_len} bytes, too short to hold the 8-byte header length"),
        SafeTensorError::InvalidHeaderLength | SafeTensorError::HeaderTooLarge => {
            format!("header length in the first 8 bytes exceeds the file size ({file_len} bytes): truncated or not safetensors")
        }
        SafeTensorError::InvalidHeader(_) | SafeTensorError::InvalidHeaderDeserialization(_) => {
            format!("header is not valid JSON: {e}")
        }
        SafeTensorError::MetadataIncompleteBuffer => {
            format!("tensor data offsets do not match the file size ({file_len} bytes): truncated or padded")
        }
        SafeTensorError::InvalidOffset(name) => format!("tensor {name:?} has data offsets outside the data section"),
        other => format!("invalid safetensors: {other}"),
    };
    WotdError::corrupt(path, reason)
}

/// Tensors to a safetensors file through `write_synced`, so a failed write is an I/O error
/// naming the file and the reason (no space left on device), not a bare tensor error.
pub fn save_tensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let bytes = ::safetensors::serialize(tensors.iter().map(|(k, v)| (k.as_str(), v)), None)
        .map_err(|e| WotdError::InvalidInput(format!("cannot serialize tensors for {}: {e}", path.display())))?;
    super::atomic::write_synced(path, &bytes)
}
