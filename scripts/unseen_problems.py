"""Write every solvable problem of a small task that no given split holds: a held-out set as large as the task allows.

    python scripts/unseen_problems.py -x runs/c3/train.jsonl -x data/c3/val.jsonl -x data/c3/test.jsonl \
        -o data/c3/unseen.jsonl

With 3 numbers in 1..30 and targets 10..60 there are only 26,463 solvable problems (a multiset of
numbers and a target), and the 24,000 training problems of the CPU recipe cover 91% of them. 200
test problems give a paired standard error of 2-3 points between two checkpoints; the rest of the
task, 2,163 problems, brings it near one. The file starts with ``--draws`` problems drawn by the
task's own sampler (``apr data problems``' distribution, ids ``xtest-*``), then holds every other unseen
problem in a seeded shuffle (ids ``rest-*``; these lean towards repeated numbers, which the sampler
draws rarely). Only small tasks can be enumerated; a larger one is refused.
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
from pathlib import Path

from apr.countdown.problems import ProblemSpec, draw_candidate
from apr.countdown.rules import is_solvable
from apr.data.io import write_rows
from apr.countdown.problems import load_problems

MAX_CANDIDATES = 2_000_000


def unseen(spec: ProblemSpec, seen: set, draws: int, draw_seed: int, shuffle_seed: int) -> list[dict]:
    numbers = range(spec.min_number, spec.max_number + 1)
    targets = range(spec.min_target, spec.max_target + 1)
    candidates = math.comb(len(numbers) + spec.n_numbers - 1, spec.n_numbers) * len(targets)  # before building them
    if candidates > MAX_CANDIDATES:
        raise SystemExit(f"{candidates:,} candidates: too many to enumerate (at most {MAX_CANDIDATES:,}); "
                         "draw a larger test split with `apr data problems` instead")
    multisets = itertools.combinations_with_replacement(numbers, spec.n_numbers)
    space = [(m, t) for m in multisets for t in targets if is_solvable(list(m), t)]
    left = {key for key in space if key not in seen}
    rows: list[dict] = []
    for i in itertools.count():
        if len(rows) == min(draws, len(left)):
            break
        problem = draw_candidate(spec, draw_seed, "extra-test", i)
        if problem.key in left:
            left.discard(problem.key)
            rows.append({"id": f"xtest-{len(rows):07d}", "nums": list(problem.nums), "target": problem.target})
    rest = [key for key in space if key in left]
    random.Random(shuffle_seed).shuffle(rest)
    for i, (nums, target) in enumerate(rest):
        order = list(nums)
        random.Random(i).shuffle(order)
        rows.append({"id": f"rest-{i:07d}", "nums": order, "target": target})
    print(f"{len(space):,} solvable problems, {len(space) - len(rows):,} in the excluded files, "
          f"{len(rows):,} unseen ({min(draws, len(rows)):,} drawn by the sampler)")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-x", "--exclude", type=Path, action="append", required=True,
                        help="a problems file whose problems are not held out (repeat)")
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--numbers", type=int, default=3)
    parser.add_argument("--min-number", type=int, default=1)
    parser.add_argument("--max-number", type=int, default=30)
    parser.add_argument("--min-target", type=int, default=10)
    parser.add_argument("--max-target", type=int, default=60)
    parser.add_argument("--draws", type=int, default=800, help="problems drawn by the task's sampler first")
    parser.add_argument("--draw-seed", type=int, default=7)
    parser.add_argument("--shuffle-seed", type=int, default=0)
    args = parser.parse_args()
    spec = ProblemSpec(args.numbers, args.min_number, args.max_number, args.min_target, args.max_target)
    seen = {p.key for path in args.exclude for p in load_problems(path)}
    rows = unseen(spec, seen, args.draws, args.draw_seed, args.shuffle_seed)
    write_rows(args.out, rows)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
