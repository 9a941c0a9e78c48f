//! The wotd models directory's completion marker, `.wotd-model.json`, and checking a directory
//! against it.
//!
//! The TS puller writes the marker last, after every file is in place, so a directory without
//! one is an interrupted pull. The marker records each file's sha256 and size, which lets
//! [`verify`] tell a damaged or edited file from a good one.

use crate::error::{Result, WotdError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Component, Path};

pub const MARKER_FILE: &str = ".wotd-model.json";

/// One file the marker vouches for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkerFile {
    /// Relative to the model directory, `/`-separated.
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// The marker's contents. `source` is free-form (where the files came from).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Marker {
    pub id: String,
    #[serde(default)]
    pub source: serde_json::Value,
    pub files: Vec<MarkerFile>,
}

impl Marker {
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MARKER_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| WotdError::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| WotdError::corrupt(&path, format!("not a wotd model marker: {e}")))
    }

    /// Hashes `files` (relative paths) and writes the marker. Tests and tools use this; the TS
    /// puller writes the same format itself.
    pub fn write(dir: &Path, id: &str, source: serde_json::Value, files: &[&str]) -> Result<Self> {
        let files = files
            .iter()
            .map(|rel| {
                let path = dir.join(rel);
                let (sha256, size) = sha256_file(&path)?;
                Ok(MarkerFile { path: rel.replace('\\', "/"), sha256, size })
            })
            .collect::<Result<Vec<_>>>()?;
        let marker = Marker { id: id.to_string(), source, files };
        let path = dir.join(MARKER_FILE);
        let json = serde_json::to_string_pretty(&marker).map_err(|e| WotdError::InvalidInput(e.to_string()))?;
        std::fs::write(&path, json).map_err(|e| WotdError::io(&path, e))?;
        Ok(marker)
    }
}

/// Result of checking a directory against its marker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub ok: bool,
    /// One line per problem, naming the file.
    pub problems: Vec<String>,
}

/// Re-hashes every file the marker lists and reports what is missing, resized or changed.
/// Only a `dir` that is not a directory is an error; everything about its contents is a problem.
pub fn verify(dir: &Path) -> Result<VerifyReport> {
    if !dir.is_dir() {
        return Err(WotdError::InvalidInput(format!("{} is not a directory", dir.display())));
    }
    let marker = match Marker::read(dir) {
        Ok(m) => m,
        Err(WotdError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            let why = format!("{MARKER_FILE}: missing (not pulled by wotd, or the pull did not finish)");
            return Ok(VerifyReport { ok: false, problems: vec![why] });
        }
        Err(e) => return Ok(VerifyReport { ok: false, problems: vec![format!("{MARKER_FILE}: {}", e.chain().join(": "))] }),
    };
    let mut problems = Vec::new();
    for f in &marker.files {
        if !is_inside(&f.path) {
            problems.push(format!("{}: path leaves the model directory", f.path));
            continue;
        }
        let path = dir.join(&f.path);
        match sha256_file(&path) {
            Err(WotdError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                problems.push(format!("{}: missing", f.path))
            }
            Err(e) => problems.push(format!("{}: unreadable: {}", f.path, e.chain().join(": "))),
            Ok((_, size)) if size != f.size => problems.push(format!("{}: {size} bytes, marker says {}", f.path, f.size)),
            Ok((sha, _)) if !sha.eq_ignore_ascii_case(&f.sha256) => {
                problems.push(format!("{}: sha256 {sha}, marker says {}", f.path, f.sha256))
            }
            Ok(_) => {}
        }
    }
    Ok(VerifyReport { ok: problems.is_empty(), problems })
}

/// A cheap completeness check for resolution (sizes only; hashing every load would cost seconds
/// on large models): every listed file exists with its recorded size.
pub(crate) fn sizes_match(dir: &Path, marker: &Marker) -> std::result::Result<(), String> {
    for f in &marker.files {
        if !is_inside(&f.path) {
            return Err(format!("marker path {} leaves the directory", f.path));
        }
        match std::fs::metadata(dir.join(&f.path)) {
            Ok(m) if m.len() == f.size => {}
            Ok(m) => return Err(format!("{} is {} bytes, marker says {}", f.path, m.len(), f.size)),
            Err(_) => return Err(format!("{} is missing", f.path)),
        }
    }
    Ok(())
}

fn is_inside(rel: &str) -> bool {
    let p = Path::new(rel);
    !rel.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Streams a file through sha256; returns the lowercase hex digest and the byte count.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let mut file = std::fs::File::open(path).map_err(|e| WotdError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| WotdError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    let hex = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((hex, total))
}
