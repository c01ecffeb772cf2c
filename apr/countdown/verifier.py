"""One strict verifier for APR and SoS+ answers (the reference had a lenient one for SoS+).

The answer is the solution path a trace restates after reaching the goal (see
``grammar.answer_path``). Every ``Exploring Operation`` line on it is replayed against the
problem's numbers: the operands must be available (each input used once), the arithmetic must
follow the rules, the stated resulting numbers must match, and the path must end with exactly the
target left. Nothing is ever evaluated as code.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import Enum

from apr import grammar
from apr.countdown.rules import check_operation
from apr.threads import Thread


class Failure(str, Enum):
    NO_ANSWER = "no_answer"  # the trace never restates a solution path
    MALFORMED_LINE = "malformed_line"
    WRONG_ARITHMETIC = "wrong_arithmetic"
    NUMBER_NOT_AVAILABLE = "number_not_available"  # an operand that was never on the board
    NUMBER_REUSED = "number_reused"  # an operand that was on the board but already consumed
    RESULT_MISMATCH = "result_mismatch"  # "Resulting Numbers" disagrees with the replay
    INPUT_UNUSED = "input_unused"
    TARGET_NOT_REACHED = "target_not_reached"


@dataclass(frozen=True)
class Verdict:
    ok: bool
    failure: Failure | None = None
    detail: str = ""
    line: int | None = None  # 1-based line of the answer path where it went wrong
    operations: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        if self.ok:
            return "valid: " + ", ".join(self.operations)
        where = f" (answer line {self.line})" if self.line else ""
        return f"{self.failure.value}{where}: {self.detail}"


def verify_trace(trace: str, nums: list[int], target: int) -> Verdict:
    """Verify the final answer a full trace (APR parent or SoS+) gives for the problem."""
    path = grammar.answer_path(trace)
    if path is None:
        return Verdict(False, Failure.NO_ANSWER, "the trace does not restate a solution path after reaching the goal")
    return verify_path(path, nums, target)


def _replay(board: Counter, used: Counter, ops: list[str], left: int, op: str, right: int, result: int,
            line: int | None) -> Verdict | None:
    """Apply one operation to the board (and record it in ``ops``); the refusal when it is illegal."""
    for operand in (left, right):
        if board[operand] == 0:
            if used[operand]:
                return Verdict(False, Failure.NUMBER_REUSED, f"{operand} was already used", line, tuple(ops))
            return Verdict(False, Failure.NUMBER_NOT_AVAILABLE,
                           f"{operand} is not among the available numbers {sorted(board.elements())}", line, tuple(ops))
        board[operand] -= 1
        used[operand] += 1
    problem = check_operation(left, op, right, result)
    if problem:
        return Verdict(False, Failure.WRONG_ARITHMETIC, problem, line, tuple(ops))
    board[result] += 1
    ops.append(f"{left}{op}{right}={result}")
    return None


def verify_child(context: str, nums: list[int], target: int) -> Verdict:
    """Verify the answer a child thread gives for the whole problem.

    The operations listed in its prompt (made by its ancestors) must replay from the problem's
    numbers to the child's start state, and its own path must reach the target from there. This
    tells a search that failed from an answer the parent lost after its children found it.
    """
    try:
        state = grammar.parse_prompt(context)
    except grammar.GrammarError as e:
        return Verdict(False, Failure.MALFORMED_LINE, str(e))
    board, used, ops = Counter(nums), Counter(), []
    for text in state.ops:
        m = grammar.OPERATION_RE.fullmatch(text)
        if not m:
            return Verdict(False, Failure.MALFORMED_LINE, f"unreadable operation {text!r} in the prompt")
        refused = _replay(board, used, ops, int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4)), None)
        if refused is not None:
            return refused
    if sorted(board.elements()) != sorted(state.nums):
        return Verdict(False, Failure.RESULT_MISMATCH,
                       f"the prompt's numbers {sorted(state.nums)} do not follow from its operations", None, tuple(ops))
    path = grammar.answer_path(context)
    if path is None:
        return Verdict(False, Failure.NO_ANSWER, "the thread does not restate a solution path")
    verdict = verify_path(path, state.nums, target)
    return Verdict(True, operations=tuple(ops) + verdict.operations) if verdict else verdict


def verify_path(path: str, nums: list[int], target: int) -> Verdict:
    """Verify a solution path (``Moving to Node #0`` ... ``T,T equal: Goal Reached``)."""
    board = Counter(nums)
    used = Counter()
    ops: list[str] = []
    lines = path.rstrip("\n").split("\n")
    for n, line in enumerate(lines, start=1):
        m = grammar.EXPLORE_RE.match(line)
        if m:
            refused = _replay(board, used, ops, int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4)), n)
            if refused is not None:
                return refused
            stated = sorted(int(x) for x in m.group(5).split(",")) if m.group(5).strip() else []
            if stated != sorted(board.elements()):
                return Verdict(False, Failure.RESULT_MISMATCH,
                               f"stated numbers {stated} but the board is {sorted(board.elements())}", n, tuple(ops))
            continue
        g = grammar.GOAL_RE.match(line)
        if g:
            if n != len(lines):
                return Verdict(False, Failure.MALFORMED_LINE, "the goal line must end the answer", n, tuple(ops))
            left_over = sorted(board.elements())
            value, claimed = int(g.group(1)), int(g.group(2))
            if claimed != target:
                return Verdict(False, Failure.TARGET_NOT_REACHED, f"the goal line names target {claimed}, not {target}", n, tuple(ops))
            if len(left_over) > 1:
                return Verdict(False, Failure.INPUT_UNUSED, f"numbers left unused: {left_over}", n, tuple(ops))
            if left_over != [target] or value != target:
                return Verdict(False, Failure.TARGET_NOT_REACHED, f"the path ends at {left_over}, not [{target}]", n, tuple(ops))
            return Verdict(True, operations=tuple(ops))
        if not grammar.PATH_CONTEXT_RE.match(line):
            return Verdict(False, Failure.MALFORMED_LINE, f"unexpected line {line[:80]!r}", n, tuple(ops))
    return Verdict(False, Failure.MALFORMED_LINE, "the answer does not end with a goal line", len(lines), tuple(ops))


def verify_countdown(prompt: str, path: str) -> bool:
    """The runtime's verifier hook for Countdown: a thread's answer path must solve its prompt's state."""
    state = grammar.parse_prompt(prompt)
    return bool(verify_path(path, state.nums, state.target))


def solving_child(root: Thread, nums: list[int], target: int) -> str | None:
    """The first thread below ``root`` whose own answer solves the whole problem (``verify_child``):
    when the root's answer fails anyway, the answer was lost at the join."""
    return next((t.id for t in root.walk() if t is not root and verify_child(t.context(), nums, target).ok), None)
