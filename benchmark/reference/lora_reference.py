#!/usr/bin/env python3
"""transformers + PEFT's side of the LoRA benchmark in benchmark/run.ts: the same base weights
(the GGUF file the project trains on, dequantized to f32 by transformers, as the project does),
the same LoRA (rank, alpha, dropout, target modules), the same DSL examples rendered with the
model's own chat template, the same batch size, optimizer (AdamW), learning rate and clipping,
for the same number of steps. Prints one JSON line of timings.

    python3 lora_reference.py JOB.json

JOB: {"model_dir", "gguf_file", "examples": [{"user", "completion"}], "steps", "batch_size",
      "lr", "rank", "alpha", "dropout", "target_modules", "threads", "seed", "max_length",
      "matmul_n"}

Only the optimizer updates are timed (forward, backward, clip, step): model loading and
tokenization are reported apart, as the Rust trainer's tokens/s also excludes them. Tokens are
the real (unpadded) tokens of each batch, the Rust trainer's count.
"""
import json
import os
import platform
import random
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
    import peft
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(threads)
    torch.manual_seed(int(job.get("seed", 0)))
    random.seed(int(job.get("seed", 0)))

    # This machine's f32 matmul peak through torch, for the reference's own utilisation figure.
    n = int(job.get("matmul_n", 2048))
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(3))
    torch_gflops = 2 * n**3 / best / 1e9
    del a, b

    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(job["model_dir"], gguf_file=job["gguf_file"])
    model = AutoModelForCausalLM.from_pretrained(job["model_dir"], gguf_file=job["gguf_file"], dtype=torch.float32)
    load_s = time.perf_counter() - t0
    base_params = sum(p.numel() for p in model.parameters())
    cfg = LoraConfig(
        r=int(job["rank"]),
        lora_alpha=float(job["alpha"]),
        lora_dropout=float(job["dropout"]),
        target_modules=job["target_modules"],
        bias="none",
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, cfg)
    model.train()
    lora_params = sum(p.numel() for p in model.parameters() if p.requires_grad)

    # prompt ++ completion ++ [end of turn]; loss on the completion and the end of turn only.
    eot = tok.convert_tokens_to_ids("<|im_end|>")
    if eot is None or eot == tok.unk_token_id:
        eot = tok.eos_token_id
    max_len = int(job.get("max_length", 256))
    encoded = []
    for ex in job["examples"]:
        prompt = tok.apply_chat_template([{"role": "user", "content": ex["user"]}], tokenize=False, add_generation_prompt=True)
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        c_ids = tok(ex["completion"], add_special_tokens=False)["input_ids"] + [eot]
        ids = (p_ids + c_ids)[:max_len]
        labels = ([-100] * len(p_ids) + c_ids)[:max_len]
        encoded.append((ids, labels))

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=float(job["lr"]), weight_decay=0.0)
    pad = tok.pad_token_id if tok.pad_token_id is not None else eot
    bs = int(job["batch_size"])
    order = list(range(len(encoded)))
    random.shuffle(order)
    step_s, step_cpu, step_tokens, losses = [], [], [], []
    cursor = 0
    for _ in range(int(job["steps"])):
        if cursor + bs > len(order):
            random.shuffle(order)
            cursor = 0
        batch = [encoded[i] for i in order[cursor : cursor + bs]]
        cursor += bs
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch])
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
        labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch])
        c = time.process_time()
        t = time.perf_counter()
        out = model(input_ids=input_ids, attention_mask=mask, labels=labels)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step_s.append(time.perf_counter() - t)
        step_cpu.append(time.process_time() - c)
        step_tokens.append(sum(len(ids) for ids, _ in batch))
        losses.append(out.loss.detach().item())

    print(json.dumps({
        "load_s": load_s,
        "step_seconds": step_s,
        "step_cpu_seconds": step_cpu,
        "step_tokens": step_tokens,
        "losses": losses,
        "tokens_per_second": sum(step_tokens) / sum(step_s),
        "examples": len(encoded),
        "example_tokens": sum(len(ids) for ids, _ in encoded),
        "base_params": base_params,
        "lora_params": lora_params,
        "torch_matmul_gflops": torch_gflops,
        "peak_rss_mb": peak_rss_mb(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "threads": torch.get_num_threads(),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
        },
    }))


def _timed(f) -> float:
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


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
