"""What a long prompt arriving costs the requests already decoding, with and without a token budget per step.

Eight sequences decode on the engine (the runtime benchmark's model: hidden 512, 8 layers, bf16, one
thread); a ``--prompt``-token prompt arrives. Without a budget its whole prefill is one step, and every
decoder waits that long for its next token; with ``max_step_tokens`` it prefills in chunks across
steps. Prints, per budget: the decoders' longest gap between two tokens, their median step, and the
long prompt's time to its first token (the price of chunking), best of ``--rounds``.

    python benchmarks/chunked_prefill.py            # ~1 minute
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from apr.runtime.backend import SamplingParams
from apr.runtime.cpu import cpu_model
from apr.runtime.engine import Engine
from apr.tokenizer import load_tokenizer
from runtime import benchmark_model


def measure(engine: Engine, vocab: int, prompt_len: int) -> tuple[float, float, float]:
    """(longest decoder gap, median step, long prompt's time to first token), seconds."""
    ids = lambda n, k: [4 + (i * 7 + k) % (vocab - 8) for i in range(n)]  # noqa: E731
    decoders = [engine.add(ids(40, k), SamplingParams(max_tokens=10_000)) for k in range(8)]
    for _ in range(5):
        engine.step()
    steps = []
    t_arrive = time.perf_counter()
    long = engine.add(ids(prompt_len, 99), SamplingParams(max_tokens=4))
    first_token = None
    while long.running:
        t = time.perf_counter()
        engine.step()
        steps.append(time.perf_counter() - t)
        if first_token is None and long.out_ids:
            first_token = time.perf_counter() - t_arrive
    for _ in range(5):
        t = time.perf_counter()
        engine.step()
        steps.append(time.perf_counter() - t)
    for seq in decoders:
        engine.free(seq)
    engine.free(long)
    return max(steps), statistics.median(steps), first_token


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompt", type=int, default=1500, help="tokens of the arriving prompt")
    ap.add_argument("--budgets", type=int, nargs="+", default=[0, 512, 128], help="max_step_tokens; 0: none")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    tok = load_tokenizer()
    model = benchmark_model(tok, 512, 8)
    engines = {b: Engine(model, max_slots=16, max_step_tokens=b or None) for b in args.budgets}
    results = {b: [] for b in args.budgets}
    for _ in range(args.rounds):
        for b, engine in engines.items():  # interleaved
            results[b].append(measure(engine, len(tok), args.prompt))
    print(f"{cpu_model()} · {torch.get_num_threads()} thread · 8 decoders, a {args.prompt}-token prompt arrives · "
          f"best of {args.rounds} · load average {os.getloadavg()[0]:.1f}")
    print("| max_step_tokens | decoders' longest gap, s | median step, s | long prompt's first token, s |")
    print("|---|---|---|---|")
    base = min(r[0] for r in results[args.budgets[0]])
    for b in args.budgets:
        gap, med, ttft = (min(r[i] for r in results[b]) for i in range(3))
        print(f"| {b or 'none'} | {gap:.3f} ({gap / base:.2f}x) | {med:.3f} | {ttft:.3f} |")


if __name__ == "__main__":
    main()
