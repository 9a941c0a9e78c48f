//! Checkpoints: `<dir>/checkpoint-<step>/` holding the adapter (PEFT files), the optimizer's
//! moments, and the trainer's state (step, data cursor and order, RNG state, losses, config).
//!
//! Written into a temporary sibling and renamed into place, with a `COMPLETE` marker written
//! last that lists every file's size and sha256. A directory without a valid marker (a crash
//! mid-write, a copy cut short) is never resumed from; a file whose hash disagrees is reported
//! as corrupt rather than trained on.

use super::model::TrainableLm;
use crate::io::peft::ADAPTER_WEIGHTS;
use crate::io::save_tensors;
use super::optim::AdamW;
use crate::error::{Result, WotdError};
use crate::io::atomic::{remove_dir_if_present, swap_in_dir, sync_file, write_synced};
use candle_core::{Device, Tensor};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

pub const MARKER: &str = "COMPLETE";
pub const STATE_FILE: &str = "trainer_state.json";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
const PREFIX: &str = "checkpoint-";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Marker {
    step: usize,
    files: Vec<MarkedFile>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct MarkedFile {
    name: String,
    size: u64,
    sha256: String,
}

/// A checkpoint read back: the trainer's state `S`, the optimizer's tensors, the adapter's.
pub struct LoadedCheckpoint<S> {
    pub path: PathBuf,
    pub state: S,
    pub optimizer: HashMap<String, Tensor>,
    pub adapter: HashMap<String, Tensor>,
}

/// Writes `checkpoint-<step>` under `dir` atomically, then deletes all but the newest `keep`
/// complete checkpoints (`keep == 0` keeps all). Returns the checkpoint's path.
pub fn write<S: Serialize>(
    dir: &Path,
    step: usize,
    state: &S,
    model: &(impl TrainableLm + ?Sized),
    optimizer: &AdamW,
    keep: usize,
) -> Result<PathBuf> {
    fs::create_dir_all(dir).map_err(|e| WotdError::io(dir, e))?;
    sweep_dead_writers(dir);
    let tmp = dir.join(format!(".{PREFIX}{step}.tmp-{}", std::process::id()));
    remove_dir_if_present(&tmp)?;
    // A failed write (a full disk, say) leaves nothing behind: the next one starts clean.
    let written = write_into(dir, &tmp, step, state, model, optimizer, keep);
    if written.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    written
}

fn write_into<S: Serialize>(
    dir: &Path,
    tmp: &Path,
    step: usize,
    state: &S,
    model: &(impl TrainableLm + ?Sized),
    optimizer: &AdamW,
    keep: usize,
) -> Result<PathBuf> {
    let final_path = dir.join(format!("{PREFIX}{step}"));
    fs::create_dir_all(tmp).map_err(|e| WotdError::io(tmp, e))?;

    model.save_adapter(tmp)?;
    let moments: HashMap<String, Tensor> = optimizer.state_tensors().into_iter().collect();
    save_tensors(&moments, &tmp.join(OPTIMIZER_FILE))?;
    let state_json = serde_json::to_vec_pretty(state).map_err(|e| WotdError::InvalidInput(format!("trainer state: {e}")))?;
    write_synced(&tmp.join(STATE_FILE), &state_json)?;

    let mut files = Vec::new();
    for entry in sorted_entries(tmp)? {
        let path = tmp.join(&entry);
        let bytes = fs::read(&path).map_err(|e| WotdError::io(&path, e))?;
        sync_file(&path)?;
        files.push(MarkedFile { name: entry, size: bytes.len() as u64, sha256: hex(&Sha256::digest(&bytes)) });
    }
    let marker = serde_json::to_vec_pretty(&Marker { step, files }).expect("marker serializes");
    write_synced(&tmp.join(MARKER), &marker)?;

    // Re-saving a step (a resumed run cancelled before its next step) sets the old copy aside
    // first, so at every instant one complete copy exists under some name.
    swap_in_dir(tmp, &final_path)?;
    prune(dir, keep)?;
    Ok(final_path)
}


/// Removes the temporary and set-aside folders of writers that no longer run (a kill or a
/// crash mid-write), so they do not pile up. Only on Linux, where `/proc` says whether a pid
/// runs; elsewhere they stay, and never count as checkpoints.
fn sweep_dead_writers(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with(&format!(".{PREFIX}")) {
            continue;
        }
        let Some(pid) = name.rsplit(['-']).next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        let dead = pid != std::process::id() && Path::new("/proc/self").exists() && !Path::new(&format!("/proc/{pid}")).exists();
        if dead {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// The newest checkpoint under `dir` whose marker is present, parses, names its own step and
/// lists files that exist with the recorded sizes. Hashes are checked by [`read`].
pub fn latest_complete(dir: &Path) -> Result<Option<PathBuf>> {
    Ok(complete(dir)?.into_iter().last().map(|(_, p)| p))
}

/// Reads a checkpoint, verifying every file against the marker's hashes.
pub fn read<S: DeserializeOwned>(path: &Path, device: &Device) -> Result<LoadedCheckpoint<S>> {
    let marker = read_marker(path)?.ok_or_else(|| WotdError::corrupt(path, "checkpoint has no valid COMPLETE marker"))?;
    for f in &marker.files {
        let p = path.join(&f.name);
        let bytes = fs::read(&p).map_err(|e| WotdError::io(&p, e))?;
        if hex(&Sha256::digest(&bytes)) != f.sha256 {
            return Err(WotdError::corrupt(&p, "sha256 differs from the checkpoint's COMPLETE marker"));
        }
    }
    let state_path = path.join(STATE_FILE);
    let text = fs::read(&state_path).map_err(|e| WotdError::io(&state_path, e))?;
    let state = serde_json::from_slice(&text).map_err(|e| WotdError::corrupt(&state_path, format!("trainer state: {e}")))?;
    let load = |name: &str| -> Result<HashMap<String, Tensor>> {
        let p = path.join(name);
        candle_core::safetensors::load(&p, device).map_err(|e| WotdError::corrupt(&p, e.to_string()))
    };
    Ok(LoadedCheckpoint { path: path.to_path_buf(), state, optimizer: load(OPTIMIZER_FILE)?, adapter: load(ADAPTER_WEIGHTS)? })
}

/// Complete checkpoints under `dir`, oldest first.
fn complete(dir: &Path) -> Result<Vec<(usize, PathBuf)>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(WotdError::io(dir, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| WotdError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(step) = name.strip_prefix(PREFIX).and_then(|s| s.parse::<usize>().ok()) else { continue };
        let path = entry.path();
        if let Ok(Some(marker)) = read_marker(&path) {
            let intact = marker.step == step
                && marker.files.iter().all(|f| fs::metadata(path.join(&f.name)).is_ok_and(|m| m.len() == f.size));
            if intact {
                found.push((step, path));
            }
        }
    }
    found.sort();
    Ok(found)
}

fn read_marker(path: &Path) -> Result<Option<Marker>> {
    let p = path.join(MARKER);
    match fs::read(&p) {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(WotdError::io(&p, e)),
    }
}

/// Keeps the newest `keep` complete checkpoints and clears temporaries left by crashed writers.
fn prune(dir: &Path, keep: usize) -> Result<()> {
    let all = complete(dir)?;
    if keep > 0 && all.len() > keep {
        for (_, p) in &all[..all.len() - keep] {
            remove_dir_if_present(p)?;
        }
    }
    for name in sorted_entries(dir)? {
        if name.starts_with(&format!(".{PREFIX}")) && !name.ends_with(&format!("-{}", std::process::id())) {
            remove_dir_if_present(&dir.join(name))?;
        }
    }
    Ok(())
}

fn sorted_entries(dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map_err(|e| WotdError::io(dir, e))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()
        .map_err(|e| WotdError::io(dir, e))?;
    names.sort();
    Ok(names)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
