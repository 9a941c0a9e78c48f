//! A short string that changes whenever a model's weights or config change, so cached vectors
//! of one version are never served for another (the cache key includes it).

use crate::error::{Result, WotdError};
use crate::io::ModelFiles;
use sha2::{Digest, Sha256};
use std::path::Path;

/// In order of trust:
/// 1. a Hugging Face cache snapshot: the commit hash in the path (`.../snapshots/<40 hex>`);
/// 2. a wotd-pulled folder: the sha256 its marker records for the weights;
/// 3. anything else: a hash of config bytes and each weight file's size and mtime, which is
///    cheap (no hashing of gigabytes) and changes whenever a file is replaced.
pub fn model_revision(files: &ModelFiles) -> Result<String> {
    if let Some(commit) = snapshot_commit(&files.dir) {
        return Ok(commit);
    }
    if let Some(sha) = marker_weights_sha(files) {
        return Ok(format!("sha256:{sha}"));
    }
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(&files.config).unwrap_or_default());
    for w in &files.weights {
        let meta = std::fs::metadata(w).map_err(|e| WotdError::io(w, e))?;
        h.update(w.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default().as_bytes());
        h.update(meta.len().to_le_bytes());
        let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_nanos()).unwrap_or(0);
        h.update(mtime.to_le_bytes());
    }
    let digest = h.finalize();
    Ok(format!("local:{}", hex(&digest[..8])))
}

fn snapshot_commit(dir: &Path) -> Option<String> {
    let name = dir.file_name()?.to_str()?;
    let parent = dir.parent()?.file_name()?.to_str()?;
    (parent == "snapshots" && name.len() == 40 && name.bytes().all(|b| b.is_ascii_hexdigit())).then(|| name.to_string())
}

fn marker_weights_sha(files: &ModelFiles) -> Option<String> {
    let text = std::fs::read_to_string(files.dir.join(".wotd-model.json")).ok()?;
    let marker: serde_json::Value = serde_json::from_str(&text).ok()?;
    let weight_names: Vec<String> =
        files.weights.iter().filter_map(|w| w.strip_prefix(&files.dir).ok()).map(|p| p.to_string_lossy().replace('\\', "/")).collect();
    let mut shas: Vec<&str> = marker
        .get("files")?
        .as_array()?
        .iter()
        .filter(|f| f.get("path").and_then(|p| p.as_str()).is_some_and(|p| weight_names.iter().any(|w| w == p)))
        .filter_map(|f| f.get("sha256")?.as_str())
        .collect();
    if shas.len() != weight_names.len() || shas.is_empty() {
        return None;
    }
    if shas.len() == 1 {
        return Some(shas[0].to_string());
    }
    shas.sort();
    Some(hex(&Sha256::digest(shas.join(",").as_bytes())))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
