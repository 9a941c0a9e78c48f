//! Downloads from the Hugging Face Hub into the standard HF cache (via `hf-hub`'s sync API).
//!
//! `hf-hub` sets no connect timeout, so an unreachable Hub (no network, firewalled) could stall
//! for minutes inside the OS. A plain TCP connect with a short timeout runs first, and its
//! failure is remembered for a while so every resolve in a process does not pay for it again.
//! Only safetensors/GGUF weights and JSON/text tokenizer files are fetched: never pickled
//! `.bin`/`.pt` checkpoints, which can run code when loaded.

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};
use std::collections::HashMap;
use std::net::{TcpStream, ToSocketAddrs};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long an endpoint found unreachable is not tried again.
const UNREACHABLE_TTL: Duration = Duration::from_secs(60);

/// Progress of one file of a download.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownloadProgress {
    pub file: String,
    /// 0-based index of this file among `file_count`.
    pub file_index: usize,
    pub file_count: usize,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// Callback for download progress; called on the downloading thread.
pub type ProgressFn<'a> = &'a (dyn Fn(&DownloadProgress) + Sync);

/// The host part of an endpoint URL, for messages (`https://huggingface.co` -> `huggingface.co`).
pub fn endpoint_host(endpoint: &str) -> &str {
    let rest = endpoint.split_once("://").map(|(_, r)| r).unwrap_or(endpoint);
    rest.split(['/', '?', '#']).next().unwrap_or(rest)
}

/// Checks that a TCP connection to the endpoint opens within `timeout` (DNS included).
pub fn probe(endpoint: &str, timeout: Duration) -> std::result::Result<(), String> {
    static FAILED: OnceLock<Mutex<HashMap<String, (Instant, String)>>> = OnceLock::new();
    let failed = FAILED.get_or_init(Default::default);
    if let Some((at, why)) = failed.lock().ok().and_then(|m| m.get(endpoint).cloned()) {
        if at.elapsed() < UNREACHABLE_TTL {
            return Err(why);
        }
    }
    let result = connect(endpoint, timeout);
    if let (Err(why), Ok(mut m)) = (&result, failed.lock()) {
        m.insert(endpoint.to_string(), (Instant::now(), why.clone()));
    }
    result
}

fn connect(endpoint: &str, timeout: Duration) -> std::result::Result<(), String> {
    let https = !endpoint.starts_with("http://");
    let host_port = endpoint_host(endpoint).rsplit_once('@').map(|(_, h)| h).unwrap_or(endpoint_host(endpoint));
    let target = if host_port.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) && !host_port.ends_with(']') {
        host_port.to_string()
    } else {
        format!("{host_port}:{}", if https { 443 } else { 80 })
    };
    // Name resolution has no timeout of its own; run it aside and stop waiting when time is up.
    let deadline = Instant::now() + timeout;
    let (tx, rx) = mpsc::channel();
    let lookup = target.clone();
    std::thread::spawn(move || {
        let _ = tx.send(lookup.to_socket_addrs().map(|a| a.collect::<Vec<_>>()));
    });
    let addrs = match rx.recv_timeout(timeout) {
        Ok(Ok(a)) if !a.is_empty() => a,
        Ok(Ok(_)) => return Err(format!("{target} resolves to no address")),
        Ok(Err(e)) => return Err(format!("cannot resolve {target}: {e}")),
        Err(_) => return Err(format!("name lookup of {target} timed out after {timeout:?}")),
    };
    let mut last = String::new();
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(_) => return Ok(()),
            Err(e) => last = format!("cannot connect to {target} ({addr}): {e}"),
        }
    }
    Err(if last.is_empty() { format!("connecting to {target} timed out after {timeout:?}") } else { last })
}

/// Whether a repo file is worth downloading: weights we can read safely, configs, tokenizers.
pub fn wanted_file(name: &str) -> bool {
    let top = !name.contains('/');
    let base = name.rsplit('/').next().unwrap_or(name);
    if top && (name.ends_with(".json") || matches!(name, "vocab.txt" | "merges.txt" | "tokenizer.model")) {
        return true;
    }
    // sentence-transformers modules (`1_Pooling/config.json`, ...) sit one folder down.
    if name.matches('/').count() == 1 && base == "config.json" && name.split('/').next().is_some_and(|d| d.contains('_')) {
        return true;
    }
    false
}

/// Which weight files of a repo listing to fetch: the HF checkpoint if there is one, else the
/// highest-precision GGUF at the top level.
pub fn pick_weights(siblings: &[String]) -> Vec<String> {
    let top: Vec<&String> = siblings.iter().filter(|s| !s.contains('/')).collect();
    if top.iter().any(|s| *s == "model.safetensors") {
        return vec!["model.safetensors".into()];
    }
    if top.iter().any(|s| *s == "model.safetensors.index.json") {
        return top.iter().filter(|s| s.starts_with("model-") && s.ends_with(".safetensors")).map(|s| s.to_string()).collect();
    }
    let mut ggufs: Vec<&String> = top.into_iter().filter(|s| s.ends_with(".gguf")).collect();
    ggufs.sort_by_key(|s| {
        let l = s.to_lowercase();
        ["f32", "bf16", "f16", "q8_0"].iter().position(|t| l.contains(t)).unwrap_or(usize::MAX)
    });
    ggufs.into_iter().take(1).cloned().collect()
}

/// Downloads a model's usable files into the HF cache at `hub_cache` and returns the snapshot
/// directory, or why not (a sentence for the "looked in" list of `ModelNotFound`). The caller
/// has already checked that the endpoint is reachable.
pub fn download(
    id: &str,
    revision: &str,
    hub_cache: &Path,
    endpoint: &str,
    progress: Option<ProgressFn<'_>>,
) -> std::result::Result<PathBuf, String> {
    // hf-hub has `unwrap`s and an `assert!` on paths; a surprise there must stay an error.
    match catch_unwind(AssertUnwindSafe(|| download_inner(id, revision, hub_cache, endpoint, progress))) {
        Ok(r) => r,
        Err(_) => Err("the Hub client panicked".into()),
    }
}

fn download_inner(
    id: &str,
    revision: &str,
    hub_cache: &Path,
    endpoint: &str,
    progress: Option<ProgressFn<'_>>,
) -> std::result::Result<PathBuf, String> {
    let cache = Cache::new(hub_cache.to_path_buf());
    let token = std::env::var("HF_TOKEN").ok().filter(|t| !t.is_empty()).or_else(|| cache.token());
    let api = ApiBuilder::from_cache(cache.clone())
        .with_endpoint(endpoint.to_string())
        .with_progress(false)
        .with_token(token)
        .build()
        .map_err(|e| e.to_string())?;
    let repo = Repo::with_revision(id.to_string(), RepoType::Model, revision.to_string());
    let api_repo = api.repo(repo.clone());
    let info = api_repo.info().map_err(|e| format!("listing {id}@{revision}: {e}"))?;
    let siblings: Vec<String> = info.siblings.into_iter().map(|s| s.rfilename).collect();
    let weights = pick_weights(&siblings);
    if weights.is_empty() {
        return Err(format!("{id}@{revision} has no safetensors or GGUF weights (pickled .bin checkpoints are never loaded)"));
    }
    let mut files: Vec<String> = siblings.iter().filter(|s| wanted_file(s)).cloned().collect();
    files.extend(weights);
    files.sort();
    files.dedup();

    let count = files.len();
    let mut snapshot = None;
    for (index, file) in files.iter().enumerate() {
        let path = match cache.repo(repo.clone()).get(file) {
            Some(p) => p,
            None => {
                let reporter = Reporter { file: file.clone(), index, count, done: 0, total: 0, callback: progress };
                api_repo.download_with_progress(file, reporter).map_err(|e| format!("downloading {file}: {e}"))?
            }
        };
        // The snapshot dir is the downloaded path minus the file's own relative components.
        let depth = file.split('/').count();
        snapshot = path.ancestors().nth(depth).map(Path::to_path_buf);
    }
    snapshot.ok_or_else(|| "nothing was downloaded".to_string())
}

struct Reporter<'a> {
    file: String,
    index: usize,
    count: usize,
    done: u64,
    total: u64,
    callback: Option<ProgressFn<'a>>,
}

impl Reporter<'_> {
    fn emit(&self) {
        if let Some(cb) = self.callback {
            cb(&DownloadProgress {
                file: self.file.clone(),
                file_index: self.index,
                file_count: self.count,
                bytes_done: self.done,
                bytes_total: self.total,
            });
        }
    }
}

impl hf_hub::api::Progress for Reporter<'_> {
    fn init(&mut self, size: usize, _filename: &str) {
        self.total = size as u64;
        self.done = 0;
        self.emit();
    }
    fn update(&mut self, size: usize) {
        self.done += size as u64;
        self.emit();
    }
    fn finish(&mut self) {
        self.done = self.total;
        self.emit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_safe_files_only() {
        let s: Vec<String> = [
            "config.json",
            "pytorch_model.bin",
            "model.safetensors",
            "tokenizer.json",
            "vocab.txt",
            "1_Pooling/config.json",
            "onnx/model.onnx",
            "onnx/config.json",
            "rust_model.ot",
        ]
        .iter()
        .map(|x| x.to_string())
        .collect();
        let mut want: Vec<&String> = s.iter().filter(|f| wanted_file(f)).collect();
        want.sort();
        assert_eq!(want, ["1_Pooling/config.json", "config.json", "tokenizer.json", "vocab.txt"]);
        assert_eq!(pick_weights(&s), ["model.safetensors"]);
        let g: Vec<String> = ["x.Q4_1.gguf", "x.F16.gguf", "x.Q8_0.gguf"].iter().map(|x| x.to_string()).collect();
        assert_eq!(pick_weights(&g), ["x.F16.gguf"]);
        let bin_only: Vec<String> = vec!["pytorch_model.bin".into(), "config.json".into()];
        assert!(pick_weights(&bin_only).is_empty());
    }

    #[test]
    fn an_unreachable_endpoint_fails_fast() {
        // Port 9 on localhost: nothing listens, so the connect is refused at once.
        let t = Instant::now();
        let r = probe("http://127.0.0.1:9", Duration::from_secs(2));
        assert!(r.is_err(), "{r:?}");
        assert!(t.elapsed() < Duration::from_secs(3));
        assert_eq!(endpoint_host("https://huggingface.co/api"), "huggingface.co");
    }
}
