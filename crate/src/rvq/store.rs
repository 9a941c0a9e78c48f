//! Codebooks on disk: `codebooks.safetensors` (one f32 tensor `codebooks`, shape
//! `[4, 32, dimension]`) beside `codebooks.json` (what they were trained on and how).
//!
//! The JSON records the tensor file's sha256, so a directory whose two files come from
//! different trainings is reported as corrupt instead of silently decoding garbage.

use super::codebook::{Codebook, CodebookInfo, ModeKind};
use super::{CODES, LEVELS};
use crate::error::{Result, WotdError};
use crate::io::atomic::write_file;
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;

pub const CODEBOOK_FILE: &str = "codebooks.safetensors";
pub const METADATA_FILE: &str = "codebooks.json";
/// Bumped when a change to either file would make older readers misread it.
pub const FORMAT_VERSION: u32 = 1;
const FORMAT: &str = "wotd-rvq";
const TENSOR: &str = "codebooks";

/// What the caller is about to feed the codebooks; `load` refuses codebooks trained for
/// anything else. `None` accepts whatever the file says.
#[derive(Clone, Debug, Default)]
pub struct Expectation {
    pub dimension: Option<usize>,
    pub embedder_model_id: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Metadata {
    format: String,
    version: u32,
    levels: usize,
    codes: usize,
    #[serde(flatten)]
    info: CodebookInfo,
    /// Codes per level that held training points; the others are never chosen.
    active_codes: [Vec<u8>; LEVELS],
    codebooks_sha256: String,
}

impl Codebook {
    /// Writes both files into `dir` (created if missing), each atomically, the tensor file
    /// first so the metadata never points at a file that is not there.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| WotdError::io(dir, e))?;
        let bytes: Vec<u8> = self.codewords().iter().flat_map(|x| x.to_le_bytes()).collect();
        let view = TensorView::new(Dtype::F32, vec![LEVELS, CODES, self.dimension()], &bytes)
            .map_err(|e| WotdError::InvalidInput(format!("codebook tensor: {e}")))?;
        let header = HashMap::from([("format".to_string(), FORMAT.to_string())]);
        let file = safetensors::serialize([(TENSOR, view)], Some(header))
            .map_err(|e| WotdError::InvalidInput(format!("codebook tensor: {e}")))?;
        let active = self.active_masks();
        let meta = Metadata {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            levels: LEVELS,
            codes: CODES,
            info: self.info().clone(),
            active_codes: std::array::from_fn(|l| (0..CODES as u8).filter(|&j| active[l] >> j & 1 == 1).collect()),
            codebooks_sha256: hex_sha256(&file),
        };
        let json = serde_json::to_vec_pretty(&meta).expect("metadata serialises");
        write_file(&dir.join(CODEBOOK_FILE), &file)?;
        write_file(&dir.join(METADATA_FILE), &json)
    }

    /// Reads codebooks saved by `save`, refusing them when they were trained for another
    /// dimension or embedder than `expect` names.
    pub fn load(dir: &Path, expect: &Expectation) -> Result<Codebook> {
        let meta_path = dir.join(METADATA_FILE);
        let raw = std::fs::read(&meta_path).map_err(|e| WotdError::io(&meta_path, e))?;
        let meta: Metadata = serde_json::from_slice(&raw).map_err(|e| WotdError::corrupt(&meta_path, e.to_string()))?;
        if meta.format != FORMAT {
            return Err(WotdError::corrupt(&meta_path, format!("format is {:?}, not {FORMAT:?}", meta.format)));
        }
        if meta.version > FORMAT_VERSION {
            return Err(WotdError::Unsupported(format!(
                "{} has codebook format version {}; this build reads up to {FORMAT_VERSION}",
                meta_path.display(),
                meta.version
            )));
        }
        if (meta.levels, meta.codes) != (LEVELS, CODES) {
            return Err(WotdError::Unsupported(format!(
                "{} describes {} levels x {} codes; only {LEVELS} x {CODES} is supported",
                meta_path.display(),
                meta.levels,
                meta.codes
            )));
        }
        check_expectation(dir, &meta.info, expect)?;

        let path = dir.join(CODEBOOK_FILE);
        let file = std::fs::read(&path).map_err(|e| WotdError::io(&path, e))?;
        if hex_sha256(&file) != meta.codebooks_sha256 {
            return Err(WotdError::corrupt(&path, format!("sha256 differs from the one {METADATA_FILE} records")));
        }
        let tensors = SafeTensors::deserialize(&file).map_err(|e| WotdError::corrupt(&path, e.to_string()))?;
        let view = tensors.tensor(TENSOR).map_err(|e| WotdError::corrupt(&path, e.to_string()))?;
        let want = [LEVELS, CODES, meta.info.dimension];
        if view.dtype() != Dtype::F32 || view.shape() != want {
            return Err(WotdError::corrupt(
                &path,
                format!("tensor {TENSOR} is {:?} {:?}; expected F32 {want:?}", view.dtype(), view.shape()),
            ));
        }
        let codewords: Vec<f32> =
            view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        if let Some(vocab) = meta.info.vocab.as_ref().filter(|_| meta.info.mode == ModeKind::Aligned) {
            vocab.validate().map_err(|e| WotdError::corrupt(&meta_path, e.to_string()))?;
        }
        let mut active = [0u32; LEVELS];
        for (mask, codes) in active.iter_mut().zip(&meta.active_codes) {
            for &j in codes {
                if j as usize >= CODES {
                    return Err(WotdError::corrupt(&meta_path, format!("active code {j} is out of range")));
                }
                *mask |= 1 << j;
            }
        }
        Codebook::new(meta.info, codewords, active).map_err(|e| WotdError::corrupt(&meta_path, e.to_string()))
    }
}

fn check_expectation(dir: &Path, info: &CodebookInfo, expect: &Expectation) -> Result<()> {
    let found_model = info.embedder_model_id.as_deref().map_or("an unrecorded embedder".to_string(), |m| format!("{m:?}"));
    if let Some(dim) = expect.dimension.filter(|&d| d != info.dimension) {
        return Err(WotdError::InvalidInput(format!(
            "codebooks in {} were trained on {}-d vectors from {found_model}, but {dim}-d vectors were expected; retrain them for this embedder",
            dir.display(),
            info.dimension
        )));
    }
    if let Some(model) = expect.embedder_model_id.as_deref().filter(|&m| Some(m) != info.embedder_model_id.as_deref()) {
        return Err(WotdError::InvalidInput(format!(
            "codebooks in {} were trained on vectors from {found_model}, but vectors from {model:?} were expected; retrain them for this embedder",
            dir.display()
        )));
    }
    Ok(())
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

