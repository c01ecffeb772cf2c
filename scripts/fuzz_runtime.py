"""Fuzz the fork-join runtime (``apr/fuzz.py``): many rollouts, every tree checked; exit 1 on a violation.

    python scripts/fuzz_runtime.py --rollouts 10000            # the full run (a few minutes)
    python scripts/fuzz_runtime.py --rollouts 200 --model-share 0.5
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from apr.fuzz import fuzz


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rollouts", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model-share", type=float, default=0.1, help="share of rollouts on the random model")
    parser.add_argument("--batch", type=int, default=32, help="rollouts run concurrently")
    parser.add_argument("--cpu-threads", "--threads", type=int, default=1, help="torch threads (1: the cores are shared)")
    args = parser.parse_args()
    torch.set_num_threads(args.cpu_threads)
    start = time.perf_counter()
    report = fuzz(args.rollouts, args.seed, args.model_share, args.batch)
    print(f"{report.rollouts} rollouts, {report.threads} threads, {time.perf_counter() - start:.0f}s")
    print("finish reasons:", dict(report.finish.most_common()))
    print("events:")
    for kind, n in report.events.most_common():
        print(f"  {n:7d}  {kind}")
    for v in report.violations[:20]:
        print("VIOLATION", v)
    print(f"{len(report.violations)} violations")
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
