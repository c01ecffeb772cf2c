"""`apr solve 42 16 7 22` as a user runs it: its default thread count against each fixed one.

Runs the command (a fresh process each time, as a user does) with no thread flag and with each
``--cpu-threads N``, interleaved over ``--rounds``, while ``--load`` spinning processes hold cores
(started ``--settle`` seconds before, like a job already running). Prints the tree's wall time
(``metrics.wall_s``: decoding, not start-up) min / median / max per setting, and the default's
median over the fastest setting's.

    python benchmarks/solve_threads.py --load 1      # ~3 minutes
    python benchmarks/solve_threads.py --load 0
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from apr.runtime.cpu import cpu_model
from load import spinning

PROBLEM = ["42", "16", "7", "22"]


def solve_wall(threads: int | None, out: Path) -> float:
    """The tree's wall seconds of one `apr solve` run (``None``: the default thread count)."""
    flags = [] if threads is None else ["--cpu-threads", str(threads)]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # the default must be ours
    subprocess.run([sys.executable, "-m", "apr", "solve", *PROBLEM, "--json", str(out), *flags], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return json.loads(out.read_text())["metrics"]["wall_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, nargs="+", default=sorted({1, os.cpu_count() or 1}))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--load", type=int, default=1, help="spinning processes running meanwhile")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds the spinners run before the first solve")
    args = ap.parse_args()

    settings: list[int | None] = [None, *args.threads]
    walls: dict[int | None, list[float]] = {s: [] for s in settings}
    with spinning(args.load, args.settle), tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for s in settings:
                walls[s].append(solve_wall(s, Path(tmp) / "tree.json"))

    print(f"{cpu_model()} · {os.cpu_count()} CPUs · {args.load} spinning processes · {args.rounds} runs each")
    print("| threads | tree wall s: min | median | max |")
    print("|---|---|---|---|")
    for s in settings:
        w = walls[s]
        print(f"| {'default' if s is None else s} | {min(w):.2f} | {statistics.median(w):.2f} | {max(w):.2f} |")
    best = min(statistics.median(walls[s]) for s in args.threads)
    print(f"\ndefault median / fastest fixed setting's median: {statistics.median(walls[None]) / best:.2f}x")


if __name__ == "__main__":
    main()
