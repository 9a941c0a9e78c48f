#!/usr/bin/env python3
"""llama.cpp's side of the decode benchmark in benchmark/run.ts (llama-cpp-python): decodes the
prompts it is given with a GGUF file (the base model the project trains on, and the project's
merged adapter exported to GGUF when there is one), single stream, same sampling settings and
thread count, and prints one JSON line of timings.

    python3 decode_reference.py JOB.json

JOB: {"gguf", "prompts": [text], "max_tokens", "temperature", "top_p", "top_k", "seed",
      "threads", "stop_token": "<|im_end|>"}

Per prompt: prefill ms (prompt evaluation and the first sampled token) and decode ms per
token after the first (the steady-state cost llama.cpp's own `eval time` reports).
"""
import json
import os
import platform
import resource
import sys
import time


def main() -> None:
    job = json.load(open(sys.argv[1], encoding="utf-8"))
    import llama_cpp
    from llama_cpp import Llama

    threads = int(job["threads"])
    t0 = time.perf_counter()
    llm = Llama(
        model_path=job["gguf"],
        n_ctx=int(job.get("n_ctx", 512)),
        n_threads=threads,
        n_threads_batch=threads,
        seed=int(job.get("seed", 0)),
        verbose=False,
    )
    load_s = time.perf_counter() - t0
    stops = {llm.token_eos()}
    stop_text = job.get("stop_token")
    if stop_text:
        ids = llm.tokenize(stop_text.encode(), add_bos=False, special=True)
        if len(ids) == 1:
            stops.add(ids[0])
    runs = []
    for prompt in job["prompts"]:
        tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
        out = []
        c = time.process_time()
        t = time.perf_counter()
        first = None
        for tok in llm.generate(
            tokens,
            top_k=int(job.get("top_k", 50)),
            top_p=float(job.get("top_p", 0.95)),
            min_p=0.0,
            typical_p=1.0,
            temp=float(job.get("temperature", 0.8)),
            repeat_penalty=1.0,
            reset=True,
        ):
            now = time.perf_counter()
            if first is None:
                first = now
            if tok in stops:
                break
            out.append(tok)
            if len(out) >= int(job["max_tokens"]):
                break
        end = time.perf_counter()
        cpu = time.process_time() - c
        n = len(out)
        runs.append({
            "prompt_tokens": len(tokens),
            "tokens": n,
            "prefill_ms": ((first or end) - t) * 1000,
            "decode_ms_per_token": ((end - first) * 1000 / (n - 1)) if first is not None and n > 1 else None,
            "total_ms": (end - t) * 1000,
            "cpu_ms": cpu * 1000,
            "text": llm.detokenize(out).decode("utf-8", errors="replace"),
        })
    print(json.dumps({
        "load_s": load_s,
        "runs": runs,
        "peak_rss_mb": peak_rss_mb(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "threads": threads,
        "versions": {"python": platform.python_version(), "llama_cpp_python": llama_cpp.__version__},
        # What this llama.cpp build uses (instruction sets, OpenMP, repacking); the build flags
        # themselves are whatever CMAKE_ARGS pip was given (benchmark/reference/README.md).
        "system_info": llama_cpp.llama_print_system_info().decode("utf-8", errors="replace").strip(),
        "build_cmake_args": os.environ.get("WOTD_LCPP_CMAKE_ARGS"),
    }))


def peak_rss_mb() -> float:
    """This process's own peak RSS: VmHWM, which exec resets (ru_maxrss keeps the parent's
    peak from before the fork, so a child of a big process would report the parent's)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
