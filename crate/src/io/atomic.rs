//! Files and directories that appear whole or not at all.
//!
//! Everything the crate writes (adapters, checkpoints, codebooks, prompt notes, merged models,
//! GGUF exports) goes through here: the bytes go to a hidden sibling named after this process,
//! are flushed to disk, and are renamed over the target, and the directory entry is flushed
//! too. A crash or a kill at any point leaves the old file or the new one, never half of one,
//! and a reader never sees a file that is still being written.

use crate::error::{Result, WotdError};
use std::fs;
use std::path::{Path, PathBuf};

/// The hidden sibling `path` is written through: `.<name>.tmp-<pid>`, so two processes writing
/// the same target never share one.
pub fn temp_sibling(path: &Path, suffix: &str) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{suffix}-{}", std::process::id()))
}

/// Writes `bytes` to `path` atomically.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    write_file_with(path, |tmp| fs::write(tmp, bytes).map_err(|e| WotdError::io(tmp, e)))
}

/// Writes `path` atomically through `fill`, which creates and fills the temporary file it is
/// given (for writers that want a path: safetensors, a buffered GGUF stream). On any failure
/// the temporary file is removed and the target is untouched.
pub fn write_file_with(path: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = temp_sibling(path, "tmp");
    let result = fill(&tmp).and_then(|()| sync_file(&tmp)).and_then(|()| fs::rename(&tmp, path).map_err(|e| WotdError::io(path, e)));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    sync_parent(path);
    Ok(())
}

/// Creates `path` with `bytes` and flushes it to disk (inside a directory that is itself
/// swapped in whole, where the file needs no rename of its own).
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes).map_err(|e| WotdError::io(path, e))?;
    sync_file(path)
}

/// Flushes a written file's data to disk.
pub fn sync_file(path: &Path) -> Result<()> {
    fs::File::open(path).and_then(|f| f.sync_all()).map_err(|e| WotdError::io(path, e))
}

/// Best effort: a directory fsync makes a rename durable on Linux; other systems may refuse it.
pub fn sync_dir(path: &Path) {
    if let Ok(f) = fs::File::open(path) {
        let _ = f.sync_all();
    }
}

fn sync_parent(path: &Path) {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => sync_dir(p),
        _ => sync_dir(Path::new(".")),
    }
}

/// Removes a directory tree, treating "already gone" as done.
pub fn remove_dir_if_present(p: &Path) -> Result<()> {
    match fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(WotdError::io(p, e)),
    }
}

/// Moves the finished directory `tmp` to `dir`, replacing what is there: the old copy goes aside
/// first, so at every instant one complete copy exists under some name.
pub fn swap_in_dir(tmp: &Path, dir: &Path) -> Result<()> {
    sync_dir(tmp);
    if dir.exists() {
        let aside = temp_sibling(dir, "old");
        remove_dir_if_present(&aside)?;
        fs::rename(dir, &aside).map_err(|e| WotdError::io(dir, e))?;
        fs::rename(tmp, dir).map_err(|e| WotdError::io(dir, e))?;
        remove_dir_if_present(&aside)?;
    } else {
        fs::rename(tmp, dir).map_err(|e| WotdError::io(dir, e))?;
    }
    sync_parent(dir);
    Ok(())
}

/// Writes a directory through `fill` into a temporary sibling and swaps it in, so readers see
/// the old or the new directory, never a half-written one.
pub fn replace_dir(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = temp_sibling(dir, "tmp");
    remove_dir_if_present(&tmp)?;
    fs::create_dir_all(&tmp).map_err(|e| WotdError::io(&tmp, e))?;
    if let Err(e) = fill(&tmp) {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    swap_in_dir(&tmp, dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("wotd-atomic-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn a_file_is_replaced_whole_and_a_failed_write_leaves_the_old_one_and_no_temp() {
        let d = scratch("file");
        let p = d.join("a.json");
        write_file(&p, b"one").unwrap();
        write_file(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let err = write_file_with(&p, |tmp| {
            fs::write(tmp, b"half").unwrap();
            Err(WotdError::InvalidInput("writer failed".into()))
        })
        .unwrap_err();
        assert!(err.to_string().contains("writer failed"), "{err}");
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(entries(&d), vec!["a.json"]);
        // A target in a missing folder: an I/O error naming the target, nothing left behind.
        let err = write_file(&d.join("missing/b.json"), b"x").unwrap_err();
        assert!(matches!(err, WotdError::Io { .. }), "{err:?}");
        assert_eq!(entries(&d), vec!["a.json"]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_directory_is_swapped_whole_and_a_failed_fill_keeps_the_old_one() {
        let d = scratch("dir");
        let target = d.join("adapter");
        replace_dir(&target, |tmp| write_synced(&tmp.join("w"), b"1")).unwrap();
        replace_dir(&target, |tmp| write_synced(&tmp.join("w"), b"2")).unwrap();
        assert_eq!(fs::read(target.join("w")).unwrap(), b"2");
        let failed = replace_dir(&target, |tmp| {
            write_synced(&tmp.join("w"), b"3")?;
            Err(WotdError::InvalidInput("fill failed".into()))
        });
        assert!(failed.is_err());
        assert_eq!(fs::read(target.join("w")).unwrap(), b"2");
        assert_eq!(entries(&d), vec!["adapter"]);
        fs::remove_dir_all(&d).unwrap();
    }
}
