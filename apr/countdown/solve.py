"""One Countdown problem through the fork-join runtime: what ``apr solve`` and ``POST /v1/apr/solve`` run.

The problem is checked against the task's ranges before any model runs. The root thread's final
answer is judged by the strict verifier against the original problem, so a failure comes with its
precise reason (no answer, wrong arithmetic, a number reused...), and the result carries the whole
thread tree with its metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from apr import grammar as g
from apr.countdown.problems import Problem, ProblemSpec, make_problem
from apr.countdown.rules import is_solvable
from apr.countdown.verifier import Verdict, solving_child, verify_trace
from apr.runtime.backend import Backend
from apr.runtime.metrics import runtime_metrics
from apr.runtime.orchestrator import SolveConfig, asolve
from apr.threads import Thread

TASK = ProblemSpec()  # the ranges the models are trained on (spec §1.2)
MAX_NUMBERS = 6


def check_problem(nums: Sequence[Any], target: Any) -> Problem:
    """A validated problem, or a ValueError that says which value is wrong and why."""
    problem = make_problem(list(nums), target)
    if len(problem.nums) > MAX_NUMBERS:
        raise ValueError(f"at most {MAX_NUMBERS} numbers, got {len(problem.nums)}")
    bad = [x for x in problem.nums if not TASK.min_number <= x <= TASK.max_number]
    if bad:
        raise ValueError(f"numbers must be in {TASK.min_number}..{TASK.max_number} (the task's range), got {bad[0]}")
    if not TASK.min_target <= problem.target <= TASK.max_target:
        raise ValueError(f"target must be in {TASK.min_target}..{TASK.max_target} (the task's range), "
                         f"got {problem.target}")
    return problem


@dataclass
class SolveResult:
    problem: Problem
    tree: Thread
    verdict: Verdict  # of the root's final answer against the original problem
    solvable: bool  # whether an exhaustive search finds any solution
    # When the root's answer fails: the first thread below it whose answer verifies for the whole
    # problem, i.e. the answer was lost at the join (the model's commonest failure).
    lost_at_join: str | None = None

    @property
    def expression(self) -> str | None:
        return expression(self.verdict.operations) if self.verdict.ok else None

    def to_dict(self) -> dict[str, Any]:
        v = self.verdict
        return {
            "nums": list(self.problem.nums), "target": self.problem.target, "prompt": self.tree.prompt,
            "verified": v.ok, "answer": g.answer_path(self.tree.context()), "operations": list(v.operations),
            "expression": self.expression, "failure": None if v.ok else v.failure.value,
            "failure_detail": None if v.ok else str(v), "solvable": self.solvable, "lost_at_join": self.lost_at_join,
            "metrics": runtime_metrics(self.tree).to_dict(), "tree": self.tree.to_dict(),
        }


def judge(problem: Problem, tree: Thread) -> SolveResult:
    """Verify a finished tree's final answer (the root's) against the problem."""
    nums, target = list(problem.nums), problem.target
    verdict = verify_trace(tree.context(), nums, target)
    lost = None if verdict.ok else solving_child(tree, nums, target)
    return SolveResult(problem, tree, verdict, is_solvable(nums, target), lost)


async def solve_problem(problem: Problem, backend: Backend, config: SolveConfig,
                        sub_call_budget: int | None = None) -> SolveResult:
    """Run the problem's thread tree on ``backend`` and judge the answer."""
    return judge(problem, await asolve(problem.prompt("apr", sub_call_budget), backend, config))


def expression(operations: Sequence[str]) -> str:
    """Verified steps as one formula: ['53-31=22', '22/22=1', '26+1=27'] -> '26 + ((53 - 31) / 22) = 27'.

    An operand that an earlier step produced is replaced by that step's formula. Equal values are
    interchangeable, so whichever of them a step took, the formula uses every input once.
    """
    made: dict[int, list[str]] = {}
    result = ""
    for op in operations:
        a, sym, b, result = g.OPERATION_RE.fullmatch(op).groups()
        left, right = (made[int(x)].pop() if made.get(int(x)) else x for x in (a, b))
        made.setdefault(int(result), []).append(f"({left} {sym} {right})")
    formula = made[int(result)].pop()
    return f"{formula[1:-1]} = {result}"
