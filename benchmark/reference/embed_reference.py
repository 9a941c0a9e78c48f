#!/usr/bin/env python3
"""sentence-transformers' side of benchmark/embed.mjs: embeds the words it is given with the same
model, batch size and thread count, and prints one JSON line of timings.

    python3 embed_reference.py JOB.json     # {"model_dir", "words", "batch_size", "threads", "repeats"}
"""
import json
import os
import platform
import resource
import sys
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


def main() -> None:
    job = json.load(open(sys.argv[1], encoding="utf-8"))
    threads = int(job["threads"])
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    model = SentenceTransformer(job["model_dir"], device="cpu")
    load_s = time.perf_counter() - t0
    words = job["words"]
    # Warm-up on other text, as the Rust side does, so neither pays one-time costs in the timing.
    model.encode([f"warm up {i}" for i in range(64)], batch_size=job["batch_size"])
    runs = []
    cpu = []
    for _ in range(int(job.get("repeats", 1))):
        c = time.process_time()
        t = time.perf_counter()
        vecs = model.encode(words, batch_size=job["batch_size"], normalize_embeddings=True, convert_to_numpy=True)
        runs.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    print(json.dumps({
        "load_s": load_s,
        "seconds": runs,
        "cpu_seconds": cpu,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "dim": int(vecs.shape[1]),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "sentence_transformers": sentence_transformers.__version__,
        },
    }))


if __name__ == "__main__":
    main()
