"""Which torch thread count solves fastest: the same greedy trees at 1, 2, ... threads, per model size.

For each model (the bundled APR checkpoint, and random-weight models of the ``cpu`` and ``mid``
presets for larger sizes), solves the same problems greedily on the embedded engine at each thread
count and prints the wall time per tree and the ratio to one thread. Run it on an idle machine and
once beside a busy job (``--load N`` starts N spinning processes for the measurement) to see both
regimes that ``default_cpu_threads`` has to pick for.

    python benchmarks/threads.py                 # ~2 minutes
    python benchmarks/threads.py --load 2 --problems 4
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from pathlib import Path

import torch

from apr.countdown.problems import make_problem
from apr.countdown.verifier import verify_countdown
from apr.models import build_model, non_embedding_parameters
from apr.runtime.embedded import EmbeddedBackend
from apr.runtime.limits import Limits
from apr.runtime.orchestrator import SolveConfig, asolve_many
from apr.runtime.backend import SamplingParams
from apr.serve.loading import DEFAULT_MODEL
from apr.tokenizer import load_tokenizer, save_tokenizer
from apr.runtime.cpu import cpu_model
from load import spinning


def problems(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [make_problem([rng.randint(1, 30) for _ in range(3)], rng.randint(10, 60)).prompt() for _ in range(n)]


def time_trees(path: Path, prompts: list[str], threads: int, max_tokens: int) -> float:
    torch.set_num_threads(threads)
    backend = EmbeddedBackend.from_checkpoint(path, max_slots=32)
    config = SolveConfig(sampling=SamplingParams(max_tokens=max_tokens), limits=Limits(max_total_tokens=4096),
                         verify=verify_countdown)
    asyncio.run(asolve_many(prompts[:1], backend, config))  # warm-up
    start = time.perf_counter()
    for prompt in prompts:  # one tree at a time, as `apr solve` runs it
        asyncio.run(asolve_many([prompt], backend, config))
    return (time.perf_counter() - start) / len(prompts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, nargs="+", default=sorted({1, 2, os.cpu_count() or 1}))
    ap.add_argument("--presets", nargs="*", default=["mid"], help="random-weight presets beyond the bundled model")
    ap.add_argument("--problems", type=int, default=6)
    ap.add_argument("--max-tokens", type=int, default=256, help="per call (random models write until it)")
    ap.add_argument("--load", type=int, default=0, help="spinning processes running meanwhile")
    args = ap.parse_args()

    prompts = problems(args.problems)
    rows = []
    with spinning(args.load), tempfile.TemporaryDirectory() as tmp:
        models = [("bundled apr-cpu", DEFAULT_MODEL)]
        tok = load_tokenizer()
        for preset in args.presets:
            path = Path(tmp) / preset
            build_model(preset, tok, context_length=1024).save_pretrained(path)
            save_tokenizer(tok, path)
            models.append((f"random {preset}", path))
        for name, path in models:
            params = non_embedding_parameters(EmbeddedBackend.from_checkpoint(path, max_slots=1).engine.model)
            times = [time_trees(path, prompts, n, args.max_tokens) for n in args.threads]
            rows.append((name, params, times))
    cpu = cpu_model()
    print(f"{cpu} · {os.cpu_count()} CPUs · {args.load} spinning processes · {args.problems} trees each")
    print(f"{'model':<18} {'params':>9} " + " ".join(f"{f'{n} thr s/tree':>14} {'vs 1':>5}" for n in args.threads))
    for name, params, times in rows:
        cells = " ".join(f"{t:>14.2f} {times[0] / t:>4.2f}x" for t in times)
        print(f"{name:<18} {params / 1e6:>8.1f}M {cells}")


if __name__ == "__main__":
    main()
