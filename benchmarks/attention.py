"""Decode attention as the engine calls it, in bf16 and in fp32: which dtype the KV cache should use.

One query per row over a view of a preallocated cache ``[slots, heads, max_len, head_dim]``, with the
engine's boolean mask (rows of different lengths), one torch thread. The engine stores K/V in fp32
for a bf16 model on CPUs without AMX (``apr.runtime.kv_cache.default_kv_dtype``); this prints why,
on whatever CPU runs it: milliseconds per call, best of 5 repeats, and the bf16 / fp32 ratio.

    python benchmarks/attention.py       # ~20 seconds
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from apr.runtime.cpu import cpu_flags, cpu_model
from apr.runtime.kv_cache import default_kv_dtype


def best_ms(fn, n: int = 30, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - start) / n * 1e3)
    return min(times)


def decode_attention_ms(rows: int, keys: int, dtype: torch.dtype, heads: int = 8, head_dim: int = 64) -> float:
    g = torch.Generator().manual_seed(0)
    cache_k = torch.randn(16, heads, 2048, head_dim, generator=g).to(dtype)
    cache_v = torch.randn(16, heads, 2048, head_dim, generator=g).to(dtype)
    q = torch.randn(rows, heads, 1, head_dim, generator=g).to(dtype)
    lengths = torch.randint(keys // 2, keys, (rows,), generator=g)
    lengths[0] = keys - 1
    mask = (torch.arange(keys)[None, :] <= lengths[:, None])[:, None, None, :]
    k, v = cache_k[:rows, :, :keys], cache_v[:rows, :, :keys]
    return best_ms(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask))


def main() -> None:
    torch.set_num_threads(1)
    chosen = default_kv_dtype(torch.bfloat16, torch.device("cpu"))
    print(f"{cpu_model()} · 1 thread · AMX {'yes' if 'amx_bf16' in cpu_flags() else 'no'} · "
          f"the engine's KV dtype for a bf16 model here: {str(chosen).removeprefix('torch.')}")
    print("| rows x keys | bf16 ms | fp32 ms | bf16 / fp32 |")
    print("|---|---|---|---|")
    for rows, keys in ((1, 300), (8, 300), (8, 700), (16, 1000)):
        b, f = decode_attention_ms(rows, keys, torch.bfloat16), decode_attention_ms(rows, keys, torch.float32)
        print(f"| {rows} x {keys} | {b:.3f} | {f:.3f} | {b / f:.2f} |")


if __name__ == "__main__":
    main()
