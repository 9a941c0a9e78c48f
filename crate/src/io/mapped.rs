//! Read-only file bytes: memory-mapped when large, read into memory when small.

use crate::error::{Result, WotdError};
use std::fs::File;
use std::ops::Deref;
use std::path::Path;

/// Below this size a plain read is cheaper than setting up a mapping (and a zero-length file
/// cannot be mapped at all on some platforms).
const MAP_THRESHOLD: u64 = 1 << 20;

pub(crate) enum FileBytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl FileBytes {
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| WotdError::io(path, e))?;
        let len = file.metadata().map_err(|e| WotdError::io(path, e))?.len();
        if len < MAP_THRESHOLD {
            let bytes = std::fs::read(path).map_err(|e| WotdError::io(path, e))?;
            return Ok(FileBytes::Owned(bytes));
        }
        // SAFETY: the mapping is read-only and lives no longer than this value. Model files are
        // written once (HF cache blobs are content-addressed, wotd files are renamed into place),
        // so nothing truncates them while they are mapped.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| WotdError::io(path, e))?;
        Ok(FileBytes::Mapped(map))
    }
}

impl Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Mapped(m) => m,
            FileBytes::Owned(v) => v,
        }
    }
}
