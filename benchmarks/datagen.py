"""Demonstration throughput: traces per second per core, and scaling with worker processes.

Usage:
    python benchmarks/datagen.py [--problems 2000] [--reference-src PATH]

Settings are the paper's (4 numbers in 1..99; SoS+ beam ~ U{1..5}, p_dfs 0.5; APR beam ~ U{1..10},
child beam ~ U{beam..15}, p_spawn 0.9). "search" times the solver alone, as the reference
generator's figure does; "pipeline" is `apr data traces` end to end (search, verification,
serialisation, sharded atomic writes).

The baseline is the released reference generator. Pass ``--reference-src`` (a checkout of
Parallel-Reasoning/APR, whose ``src/data/search.py`` has ``sosp`` and ``apr``) to time it in the
same run on the same problems; without it the table uses the figures measured for it on one core
of this machine (730 APR and 2,050 SoS+ traces/s) and says so.
"""

from __future__ import annotations

import argparse
import importlib
import random
import sys
import tempfile
import time
from pathlib import Path

from apr.countdown.problems import ProblemSpec, draw_candidate
from apr.countdown.search import AprSettings, apr_search, mult_heuristic, sosp
from apr.data.generate import TraceSettings, generate_traces
from apr.data.io import write_rows
from apr.runtime.cpu import cpu_model

REFERENCE_PER_CORE = {"sosp": 2050.0, "apr": 730.0}  # measured on this machine, 1 core


def draw_settings(fmt: str, rng: random.Random) -> tuple[int, int]:
    beam = rng.randint(1, 5 if fmt == "sosp" else 10)
    return beam, rng.randint(beam, 15)


def time_ours(fmt: str, problems, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        rng = random.Random(0)
        start = time.perf_counter()
        for p in problems:
            beam, sub = draw_settings(fmt, rng)
            if fmt == "sosp":
                sosp(list(p.nums), p.target, beam, rng, 0.5)
            else:
                apr_search(list(p.nums), p.target, AprSettings(beam, sub, 0.9, 1), rng)
        best = min(best, time.perf_counter() - start)
    return len(problems) / best


def time_reference(fmt: str, problems, repeats: int, src: Path) -> float:
    sys.path.insert(0, str(src))
    search = importlib.import_module("src.data.search")
    utils = importlib.import_module("src.countdown_utils")
    best = float("inf")
    for _ in range(repeats):
        rng = random.Random(0)
        random.seed(0)
        start = time.perf_counter()
        for p in problems:
            beam, sub = draw_settings(fmt, rng)
            if fmt == "sosp":
                search.sosp(p.target, list(p.nums), beam, promising_threshold=0.5, heuristic=utils.mult_heuristic)
            else:
                search.apr(p.target, list(p.nums), beam, sub, promising_threshold=0.9, heuristic=utils.mult_heuristic)
        best = min(best, time.perf_counter() - start)
    return len(problems) / best


def time_pipeline(fmt: str, problems, workers: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "problems.jsonl"
        write_rows(src, [dict(p.to_dict(), id=f"p{i}") for i, p in enumerate(problems)])
        settings = TraceSettings(fmt, max_beam=5 if fmt == "sosp" else 10)
        start = time.perf_counter()
        generate_traces(src, Path(tmp) / "out.jsonl", settings, seed=0, workers=workers, chunk_size=100)
        return len(problems) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reference-src", type=Path, default=None)
    parser.add_argument("--max-workers", type=int, default=2)
    args = parser.parse_args()

    problems = [draw_candidate(ProblemSpec(), 0, "bench", i) for i in range(args.problems)]
    mult_heuristic([1], 100)  # warm the module before timing
    print(f"{cpu_model()} · one process (pure Python, no torch threads) · {args.problems} problems, 4 numbers in "
          f"1..99, paper settings; best of {args.repeats}\n")
    print(f"{'format':<7}{'ours search /s/core':>21}{'reference /s/core':>19}{'ratio':>8}   baseline")
    for fmt in ("sosp", "apr"):
        ours = time_ours(fmt, problems, args.repeats)
        if args.reference_src:
            ref, source = time_reference(fmt, problems, args.repeats, args.reference_src), "timed in this run"
        else:
            ref, source = REFERENCE_PER_CORE[fmt], "figure measured on this machine"
        print(f"{fmt:<7}{ours:>21.0f}{ref:>19.0f}{ours / ref:>7.2f}x   {source}")

    print(f"\n{'format':<7}{'workers':>8}{'pipeline traces/s':>19}{'vs 1 worker':>13}")
    for fmt in ("sosp", "apr"):
        base = None
        for workers in range(1, args.max_workers + 1):
            rate = time_pipeline(fmt, problems, workers)
            base = base or rate
            print(f"{fmt:<7}{workers:>8}{rate:>19.0f}{rate / base:>12.2f}x")


if __name__ == "__main__":
    main()
