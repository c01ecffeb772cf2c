"""Fork-join trees on llama.cpp's ``llama-server``: children decoded concurrently by its continuous
batching (``--parallel N``) vs one slot (``--parallel 1``), and the embedded engine as reference.

Exports the bundled APR model with ``apr export gguf``, serves it both ways (same threads, same slot
window), solves the same problems greedily through ``LlamaCppBackend``, checks that every tree is the
same on both servers and on the embedded engine, and prints wall time per tree (one tree at a time,
so the only concurrency is the tree's own children) and for all trees at once, with ratios.
Needs the binary of ``scripts/build_llama_server.sh``.

    python benchmarks/llamacpp_parallel.py                  # 20 problems, --parallel 8 vs 1
    python benchmarks/llamacpp_parallel.py --parallel 16 --problems 40 --threads 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from apr.countdown.problems import load_problems
from apr.countdown.verifier import verify_countdown
from apr.models.gguf import export_gguf
from apr.runtime.backend import Backend, SamplingParams
from apr.runtime.codec import TokenCodec
from apr.runtime.cpu import cpu_model
from apr.runtime.embedded import EmbeddedBackend
from apr.runtime.llamacpp_backend import LlamaCppBackend
from apr.runtime.orchestrator import SolveConfig, asolve, asolve_many
from apr.serve.llamacpp import LlamaServer, find_llama_server
from apr.serve.loading import DEFAULT_MODEL
from apr.threads import Thread, shape
from apr.tokenizer import checkpoint_tokenizer

ROOT = Path(__file__).resolve().parents[1]
CONFIG = SolveConfig(sampling=SamplingParams(), verify=verify_countdown)


async def one_at_a_time(prompts: list[str], backend: Backend) -> tuple[list[Thread], float]:
    start, trees = time.perf_counter(), []
    for i, p in enumerate(prompts):
        trees.append(await asolve(p, backend, CONFIG, index=i))
    return trees, (time.perf_counter() - start) / len(prompts)


async def all_at_once(prompts: list[str], backend: Backend) -> float:
    start = time.perf_counter()
    await asolve_many(prompts, backend, CONFIG)
    return time.perf_counter() - start


async def measure(backend: Backend, prompts: list[str]) -> tuple[list[Thread], float, float]:
    trees, per_tree = await one_at_a_time(prompts, backend)
    return trees, per_tree, await all_at_once(prompts, backend)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", type=int, default=20)
    ap.add_argument("--parallel", type=int, default=8, help="slots of the concurrent server")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads of each server (and of torch)")
    args = ap.parse_args()
    binary = find_llama_server()
    if binary is None:
        sys.exit("llama-server is not built: run scripts/build_llama_server.sh")
    import torch

    torch.set_num_threads(args.threads)
    tok = checkpoint_tokenizer(DEFAULT_MODEL)
    codec = TokenCodec(tok)
    prompts = [p.prompt("apr") for p in load_problems(ROOT / "data" / "c3" / "test.jsonl", args.problems)]
    rows: list[tuple[str, list[Thread], float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        gguf = export_gguf(DEFAULT_MODEL, Path(tmp) / "apr-cpu.gguf", tok)
        for parallel in (1, args.parallel):
            with LlamaServer(binary, gguf, parallel=parallel, slot_context=1024, threads=args.threads) as server:
                backend = LlamaCppBackend(server.url, codec, 1024)
                trees, per_tree, together = asyncio.run(measure(backend, prompts))
                rows.append((f"llama-server --parallel {parallel}", trees, per_tree, together))
    embedded = EmbeddedBackend.from_checkpoint(DEFAULT_MODEL, max_slots=64)
    trees, per_tree, together = asyncio.run(measure(embedded, prompts))
    rows.append(("embedded engine (apr)", trees, per_tree, together))

    load = os.getloadavg()[0]
    print(f"{cpu_model()} · {os.cpu_count()} CPUs · {args.threads} thread(s) per engine · load {load:.1f} · "
          f"{len(prompts)} problems of data/c3/test.jsonl, bundled {DEFAULT_MODEL.name}, greedy")
    base = rows[0]
    print("| engine | trees same as --parallel 1 | s per tree (one at a time) | speedup | "
          f"s for all {len(prompts)} at once | speedup |")
    print("|---|---|---|---|---|---|")
    for name, trees, per_tree, together in rows:
        same = sum(shape(a) == shape(b) for a, b in zip(trees, base[1]))
        print(f"| {name} | {same}/{len(prompts)} | {per_tree:.2f} | {base[2] / per_tree:.2f}x | "
              f"{together:.1f} | {base[3] / together:.2f}x |")


if __name__ == "__main__":
    main()
