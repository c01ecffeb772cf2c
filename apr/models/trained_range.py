"""Which Countdown problems a checkpoint was trained on, recorded in the checkpoint itself.

``apr train sft`` reads the range off its training data (every root prompt, ``Operations: []``)
and writes it to ``apr_train.json`` as ``task``; a run that starts from a checkpoint adds that
checkpoint's range (a curriculum covers both). ``apr solve``, ``apr serve`` and ``apr eval`` refuse
a problem outside it with one line naming the range, instead of decoding a tree the model never
learned to write.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from apr import grammar as g

META_FILE = "apr_train.json"  # what ``apr train`` writes beside the weights


@dataclass(frozen=True)
class TrainedRange:
    counts: tuple[int, ...]  # how many input numbers the training problems had
    min_number: int
    max_number: int
    min_target: int
    max_target: int

    @classmethod
    def from_prompts(cls, prompts: Iterable[str]) -> TrainedRange | None:
        """The range of the problems among ``prompts`` (root prompts have no operations); None if none."""
        counts: set[int] = set()
        nums: list[int] = []
        targets: list[int] = []
        for prompt in prompts:
            if "Operations: []" not in prompt:
                continue
            try:
                state = g.parse_prompt(prompt)
            except g.GrammarError:
                continue
            counts.add(len(state.nums))
            nums += [min(state.nums), max(state.nums)]
            targets.append(state.target)
        if not counts:
            return None
        return cls(tuple(sorted(counts)), min(nums), max(nums), min(targets), max(targets))

    def union(self, other: TrainedRange | None) -> TrainedRange:
        if other is None:
            return self
        return TrainedRange(tuple(sorted(set(self.counts) | set(other.counts))),
                            min(self.min_number, other.min_number), max(self.max_number, other.max_number),
                            min(self.min_target, other.min_target), max(self.max_target, other.max_target))

    def refusal(self, nums: Sequence[int], target: int) -> str | None:
        """Why the problem lies outside this range, or None when it lies inside."""
        if len(nums) not in self.counts:
            return f"it has {len(nums)} numbers"
        outside = [x for x in nums if not self.min_number <= x <= self.max_number]
        if outside:
            return f"{outside[0]} is outside the numbers"
        if not self.min_target <= target <= self.max_target:
            return f"the target {target} is outside the targets"
        return None

    def check(self, nums: Sequence[int], target: int, model: str, hint: str) -> None:
        """Raise ValueError, naming the range, the reason and ``hint``, for a problem outside it."""
        why = self.refusal(nums, target)
        if why:
            raise ValueError(f"{model} was trained on {self}; {target} from {list(nums)} is not one of those "
                             f"({why}): {hint}")

    def __str__(self) -> str:
        counts = " or ".join(map(str, self.counts))
        return (f"{counts} numbers in {self.min_number}..{self.max_number}, "
                f"targets {self.min_target}..{self.max_target}")

    def to_dict(self) -> dict[str, Any]:
        return {"counts": list(self.counts), "min_number": self.min_number, "max_number": self.max_number,
                "min_target": self.min_target, "max_target": self.max_target}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainedRange:
        return cls(tuple(d["counts"]), d["min_number"], d["max_number"], d["min_target"], d["max_target"])


def trained_range(checkpoint: Path) -> TrainedRange | None:
    """The range recorded in ``checkpoint``; None for a checkpoint that records none."""
    meta = Path(checkpoint) / META_FILE
    try:
        task = json.loads(meta.read_text()).get("task")
        return TrainedRange.from_dict(task) if task else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


SOLVE_HINT = "pass --model with a model trained on such problems, or --symbolic for the symbolic solver"


def check_in_range(checkpoint: Path, nums: Sequence[int], target: int, hint: str = SOLVE_HINT) -> None:
    """Refuse (ValueError, one line) a problem outside what ``checkpoint`` was trained on, if it records that."""
    trained = trained_range(checkpoint)
    if trained is not None:
        trained.check(nums, target, str(checkpoint), hint)
