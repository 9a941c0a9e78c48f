//! The Hub step against a local stand-in for huggingface.co (plain HTTP on 127.0.0.1), so the
//! download path runs for real without network: which files are fetched (never `.bin`), where
//! they land in the HF cache, progress reports, and that a second resolve hits the cache.

mod io_support;

use io_support::{fixture, Scratch};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use wotd_native::io::{resolve, resolve_with_progress, DownloadProgress, ModelFiles, ModelSource, ResolveOptions};

const SHA: &str = "fedcba9876543210fedcba9876543210fedcba98";

struct MockHub {
    endpoint: String,
    requests: Arc<Mutex<Vec<String>>>,
}

fn start_hub(repo: &'static str, files: HashMap<String, Vec<u8>>) -> MockHub {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            serve(stream, repo, &files, &log);
        }
    });
    MockHub { endpoint, requests }
}

fn serve(mut stream: TcpStream, repo: &str, files: &HashMap<String, Vec<u8>>, log: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("range") {
                range = v.trim().strip_prefix("bytes=").map(String::from);
            }
        }
    }
    log.lock().unwrap().push(path.clone());
    let respond = |stream: &mut TcpStream, status: &str, headers: Vec<String>, body: &[u8]| {
        let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
        for h in headers {
            head.push_str(&h);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(body);
    };
    if path == format!("/api/models/{repo}/revision/main") {
        let siblings: Vec<_> = files.keys().map(|f| serde_json::json!({ "rfilename": f })).collect();
        let body = serde_json::json!({ "sha": SHA, "siblings": siblings }).to_string();
        return respond(&mut stream, "200 OK", vec!["Content-Type: application/json".into()], body.as_bytes());
    }
    let prefix = format!("/{repo}/resolve/main/");
    let Some(bytes) = path.strip_prefix(&prefix).and_then(|f| files.get(f)) else {
        return respond(&mut stream, "404 Not Found", vec![], b"");
    };
    let (start, end) = match range.as_deref().and_then(|r| r.split_once('-')) {
        Some((a, b)) => (a.parse::<usize>().unwrap_or(0), b.parse::<usize>().map(|e| e + 1).unwrap_or(bytes.len())),
        None => (0, bytes.len()),
    };
    let end = end.min(bytes.len());
    let etag = format!("\"etag-{}-{}\"", bytes.len(), path.len());
    let headers = vec![
        format!("ETag: {etag}"),
        format!("X-Repo-Commit: {SHA}"),
        format!("Content-Range: bytes {start}-{}/{}", end.saturating_sub(1), bytes.len()),
    ];
    respond(&mut stream, "206 Partial Content", headers, &bytes[start..end]);
}

fn bert_repo_files() -> HashMap<String, Vec<u8>> {
    let mut files = HashMap::new();
    for f in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "1_Pooling/config.json"] {
        files.insert(f.to_string(), std::fs::read(fixture("bert").join(f)).unwrap());
    }
    // Present on the Hub, never to be fetched.
    files.insert("pytorch_model.bin".into(), b"pickle".to_vec());
    files.insert("onnx/model.onnx".into(), b"onnx".to_vec());
    files
}

#[test]
fn hub_download_fetches_safe_files_into_the_hf_cache() {
    if ResolveOptions::default().offline_reason().is_some() {
        eprintln!("offline by environment; the Hub step is skipped by design");
        return;
    }
    let hub = start_hub("org/tiny-bert", bert_repo_files());
    let root = Scratch::new("hub-dl");
    let opts = ResolveOptions {
        endpoint: Some(hub.endpoint.clone()),
        hf_hub_cache: Some(root.join("hub")),
        wotd_models: Some(root.join("wotd")),
        ..Default::default()
    };
    let seen: Mutex<Vec<DownloadProgress>> = Mutex::new(Vec::new());
    let on_progress = |p: &DownloadProgress| seen.lock().unwrap().push(p.clone());
    let r = resolve_with_progress("org/tiny-bert", &opts, Some(&on_progress)).unwrap();
    assert_eq!(r.source, ModelSource::Hub);
    assert_eq!(r.dir, root.join("hub").join("models--org--tiny-bert").join("snapshots").join(SHA));
    assert!(r.looked[1].contains("downloaded to"), "{:?}", r.looked);

    let requested = hub.requests.lock().unwrap().clone();
    assert!(!requested.iter().any(|p| p.ends_with(".bin") || p.contains("onnx")), "{requested:?}");
    for f in ["config.json", "model.safetensors", "tokenizer.json", "1_Pooling/config.json"] {
        let got = std::fs::read(r.dir.join(f)).unwrap();
        assert_eq!(got, std::fs::read(fixture("bert").join(f)).unwrap(), "{f}");
    }

    let seen = seen.into_inner().unwrap();
    let size = std::fs::metadata(fixture("bert").join("model.safetensors")).unwrap().len();
    let last = seen.iter().rfind(|p| p.file == "model.safetensors").expect("progress for the weights");
    assert_eq!((last.bytes_done, last.bytes_total, last.file_count), (size, size, 5));

    // The download is a complete model, and the next resolve is served by the cache.
    let m = ModelFiles::open(&r.dir).unwrap();
    assert!(m.load_weights().unwrap().contains_key("embeddings.word_embeddings.weight"));
    let before = hub.requests.lock().unwrap().len();
    let again = resolve("org/tiny-bert", &opts).unwrap();
    assert_eq!((again.source, again.dir), (ModelSource::HfCache, r.dir));
    assert_eq!(hub.requests.lock().unwrap().len(), before, "no request once cached");
}

#[test]
fn a_repo_with_only_pickles_is_refused() {
    if ResolveOptions::default().offline_reason().is_some() {
        return;
    }
    let mut files = HashMap::new();
    files.insert("config.json".to_string(), b"{}".to_vec());
    files.insert("pytorch_model.bin".to_string(), b"pickle".to_vec());
    let hub = start_hub("org/pickled", files);
    let root = Scratch::new("hub-bin");
    let opts = ResolveOptions {
        endpoint: Some(hub.endpoint.clone()),
        hf_hub_cache: Some(root.join("hub")),
        wotd_models: Some(root.join("wotd")),
        ..Default::default()
    };
    let e = resolve("org/pickled", &opts).unwrap_err();
    assert_eq!(e.code(), "MODEL_NOT_FOUND");
    assert!(e.to_string().contains("no safetensors or GGUF weights"), "{e}");
    assert!(!hub.requests.lock().unwrap().iter().any(|p| p.contains("resolve")), "nothing downloaded");
}
