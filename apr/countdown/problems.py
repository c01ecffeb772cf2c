"""Countdown problems: validated records, reproducible generation and de-duplicated splits.

Candidate ``i`` of a split is drawn from ``random.Random(f"{seed}:{split}:{i}")`` alone, so the
same seed gives the same problems however many worker processes draw them. Splits are filled in
a fixed order (test, val, train), each skipping every multiset-of-numbers-plus-target already
taken, so no problem appears twice anywhere and growing the train split never changes test/val.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apr import grammar
from apr.countdown.rules import is_solvable
from apr.data.io import DataFileError, read_rows, require_fields

SPLIT_ORDER = ("test", "val", "train")


@dataclass(frozen=True)
class ProblemSpec:
    """What problems look like. Defaults are the paper's: 4 numbers in 1..99, target 10..100."""

    n_numbers: int = 4
    min_number: int = 1
    max_number: int = 99
    min_target: int = 10
    max_target: int = 100

    def __post_init__(self) -> None:
        if not 2 <= self.n_numbers <= 6:
            raise ValueError(f"n_numbers must be between 2 and 6, got {self.n_numbers}")
        if not 0 <= self.min_number <= self.max_number:
            raise ValueError(f"need 0 <= min_number <= max_number, got {self.min_number}..{self.max_number}")
        if not 1 <= self.min_target <= self.max_target:
            raise ValueError(f"need 1 <= min_target <= max_target, got {self.min_target}..{self.max_target}")


@dataclass(frozen=True)
class Problem:
    nums: tuple[int, ...]
    target: int
    id: str = ""

    @property
    def key(self) -> tuple[tuple[int, ...], int]:
        """Identity for de-duplication: the multiset of numbers and the target."""
        return tuple(sorted(self.nums)), self.target

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "nums": list(self.nums), "target": self.target}

    def prompt(self, fmt: str = "apr", budget: int | None = None) -> str:
        """The root prompt a model is given for this problem: APR (``budget``: a Sub Call Budget) or
        SoS+ (``budget``: a Token Budget)."""
        if fmt == "apr":
            return grammar.apr_prompt(self.target, list(self.nums), sub_call_budget=budget)
        if fmt == "sosp":
            return grammar.sosp_prompt(self.target, list(self.nums), token_budget=budget)
        raise ValueError(f"format must be apr or sosp, got {fmt!r}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Problem":
        if not isinstance(d, dict):
            raise ValueError(f"a problem must be an object with 'nums' and 'target', got {type(d).__name__}")
        missing = [k for k in ("nums", "target") if k not in d]
        if missing:
            raise ValueError(f"problem is missing {', '.join(missing)}")
        return make_problem(d["nums"], d["target"], str(d.get("id", "")))


def make_problem(nums: Any, target: Any, id: str = "") -> Problem:
    """Validate user- or file-supplied numbers and target into a Problem (clear errors)."""
    if not isinstance(nums, (list, tuple)) or not nums:
        raise ValueError(f"nums must be a non-empty list of integers, got {nums!r}")
    if len(nums) < 2:
        raise ValueError(f"a problem needs at least 2 numbers, got {list(nums)}")
    for x in list(nums) + [target]:
        if isinstance(x, bool) or not isinstance(x, int):
            raise ValueError(f"numbers and target must be integers, got {x!r}")
    if any(x < 0 for x in nums):
        raise ValueError(f"numbers must be non-negative, got {list(nums)}")
    if target < 1:
        raise ValueError(f"target must be a positive integer, got {target}")
    return Problem(tuple(nums), target, id)


def draw_candidate(spec: ProblemSpec, seed: int, split: str, index: int) -> Problem:
    """The ``index``-th solvable candidate of a split: redrawn until the exhaustive solver succeeds."""
    rng = random.Random(f"{seed}:{split}:{index}")
    while True:
        nums = [rng.randint(spec.min_number, spec.max_number) for _ in range(spec.n_numbers)]
        target = rng.randint(spec.min_target, spec.max_target)
        if is_solvable(nums, target):
            return Problem(tuple(nums), target)


def draw_chunk(args: tuple[ProblemSpec, int, str, int, int]) -> list[dict[str, Any]]:
    """Candidates ``start .. start+count-1`` of a split (a picklable unit of parallel work)."""
    spec, seed, split, start, count = args
    return [draw_candidate(spec, seed, split, i).to_dict() for i in range(start, start + count)]


def validate_split_sizes(sizes: dict[str, int]) -> None:
    for split, n in sizes.items():
        if split not in SPLIT_ORDER:
            raise ValueError(f"unknown split {split!r}; use {', '.join(SPLIT_ORDER)}")
        if n < 0:
            raise ValueError(f"split size must be >= 0, got {split}={n}")


def load_problems(path: Path, limit: int | None = None) -> list[Problem]:
    """The first ``limit`` problems of a problems file (JSONL or Parquet rows with nums and target).

    Every row is validated (its row number named on failure); rows without an id get ``row-N``,
    and ids must be unique, since results and resumes are keyed by them.
    """
    rows = read_rows(path)
    require_fields(path, rows, ("nums", "target"), "problems")
    problems = []
    for n, row in enumerate(rows):
        try:
            p = Problem.from_dict(row)
        except ValueError as e:
            raise DataFileError(f"{path}: row {n + 1}: {e}") from None
        problems.append(Problem(p.nums, p.target, p.id or f"row-{n:07d}"))
    ids = Counter(p.id for p in problems)
    repeated = [i for i, c in ids.items() if c > 1]
    if repeated:
        raise DataFileError(f"{path}: problem id {repeated[0]!r} appears {ids[repeated[0]]} times; ids must be unique")
    return problems[:limit]
