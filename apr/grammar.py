"""The trace grammar: every line template, marker and parser of the paper's text format.

Data generation, the inference runtime, the verifier and RL all import from here, so the format
the models are trained on and the format the runtime parses cannot drift apart.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

# -- markers ---------------------------------------------------------------------------------
SPAWN_OPEN = "<Calling Sub Searches>"
SPAWN_CLOSE = "<End Calling Sub Searches>"
JOIN_OPEN = "<Sub Searches>"
JOIN_CLOSE = "<End Sub Searches>"
GOAL = "Goal Reached"
NO_SOLUTION = "No solution found."
SUB_CALL_BUDGET = "Sub Call Budget: "
TOKEN_BUDGET = "Token Budget: "

# Keyword phrases a tokenizer should keep whole (longest first matters for greedy matching).
PHRASES = (
    "Current State: ",
    ", Operations: ",
    "Exploring Operation: ",
    ", Resulting Numbers: ",
    "Generated Node #",
    " Operation: ",
    "Moving to Node #",
    " equal: Goal Reached",
    " unequal: No Solution",
    NO_SOLUTION,
    "No solution found in sub search",
    "Start Sub Search at level ",
    "Exit Sub Search at level ",
    SPAWN_OPEN,
    SPAWN_CLOSE,
    JOIN_OPEN,
    JOIN_CLOSE,
    "<Start Sub Search ",
    "<Goal Reached in Sub Search ",
    "<No Solution in Sub Search ",
    " at level ",
    " at Node #",
    SUB_CALL_BUDGET,
    TOKEN_BUDGET,
)


class GrammarError(ValueError):
    """Text that does not follow the trace grammar; the message says which line and why."""


# -- line templates --------------------------------------------------------------------------
def nums_repr(nums: list[int] | tuple[int, ...]) -> str:
    return "[" + ", ".join(map(str, nums)) + "]"


def ops_repr(ops: list[str] | tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{o}'" for o in ops) + "]"


def state_line(target: int, nums: list[int], ops: list[str]) -> str:
    return f"Current State: {target}:{nums_repr(nums)}, Operations: {ops_repr(ops)}"


def explore_line(op: str, nums: list[int]) -> str:
    return f"Exploring Operation: {op}, Resulting Numbers: {nums_repr(nums)}"


def generated_line(node_id: str, target: int, nums: list[int], op: str) -> str:
    return f"Generated Node #{node_id}: {target}:{nums_repr(nums)} Operation: {op}"


def goal_line(value: int, target: int) -> str:
    return f"{value},{target} equal: {GOAL}"


def miss_line(value: int, target: int) -> str:
    return f"{value},{target} unequal: No Solution"


def move_line(node_id: str) -> str:
    return f"Moving to Node #{node_id}"


# -- prompts ---------------------------------------------------------------------------------
def apr_prompt(target: int, nums: list[int], ops: list[str] | None = None, node_id: str = "0",
               sub_call_budget: int | None = None) -> str:
    """The prompt of an APR thread: its start node and state (children get no budget prefix)."""
    prefix = f"{SUB_CALL_BUDGET}{sub_call_budget} " if sub_call_budget is not None else ""
    return f"{prefix}{move_line(node_id)}\n{state_line(target, nums, ops or [])}"


def sosp_prompt(target: int, nums: list[int], token_budget: int | None = None) -> str:
    prefix = f"{TOKEN_BUDGET}{token_budget} " if token_budget is not None else ""
    return f"{prefix}{state_line(target, nums, [])}"


_PROMPT_RE = re.compile(
    r"^(?:(?:Sub Call|Token) Budget: (\d+) )?(?:Moving to Node #([\d,]+)\n)?"
    r"Current State: (\d+):\[([\d, ]*)\], Operations: \[([^\]]*)\]"
)


@dataclass(frozen=True)
class PromptState:
    target: int
    nums: list[int]
    ops: list[str]
    node_id: str | None
    budget: int | None


def parse_prompt(prompt: str) -> PromptState:
    """Read target, numbers and operations back from an APR or SoS+ prompt."""
    m = _PROMPT_RE.match(prompt)
    if not m:
        raise GrammarError(f"not a trace prompt (expected 'Current State: T:[...], Operations: [...]'): {prompt[:80]!r}")
    budget, node_id, target, nums, ops = m.groups()
    return PromptState(int(target), _parse_int_list(nums), _parse_ops(ops), node_id, int(budget) if budget else None)


def _parse_int_list(text: str) -> list[int]:
    text = text.strip()
    if not text:
        return []
    try:
        return [int(x) for x in text.split(",")]
    except ValueError:
        raise GrammarError(f"not a list of integers: [{text}]") from None


def _parse_ops(text: str) -> list[str]:
    text = text.strip()
    if not text:
        return []
    try:
        ops = ast.literal_eval(f"[{text}]")  # a literal parser, never eval()
    except (ValueError, SyntaxError):
        raise GrammarError(f"not a list of quoted operations: [{text}]") from None
    if not all(isinstance(o, str) for o in ops):
        raise GrammarError(f"operations must be quoted strings: [{text}]")
    return ops


# -- spawn and join blocks -------------------------------------------------------------------
@dataclass(frozen=True)
class ChildCall:
    index: int
    level: int
    node_id: str


@dataclass(frozen=True)
class ChildResult:
    call: ChildCall
    path: str | None  # the child's solution path ("Moving to Node #...\n...Goal Reached"), or None


def render_spawn(calls: list[ChildCall]) -> str:
    lines = [SPAWN_OPEN]
    lines += [f"<Start Sub Search {c.index} at level {c.level}> {move_line(c.node_id)}" for c in calls]
    lines.append(SPAWN_CLOSE)
    return "\n".join(lines) + "\n"


_CALL_RE = re.compile(r"^<Start Sub Search (\d+) at level (\d+)> Moving to Node #(\d+(?:,\d+)*)$")


def parse_spawn(block: str) -> list[ChildCall]:
    """Parse a spawn block (from ``SPAWN_OPEN`` through ``SPAWN_CLOSE``) into child calls."""
    lines = block.strip("\n").split("\n")
    if not lines or lines[0] != SPAWN_OPEN:
        raise GrammarError(f"spawn block must start with {SPAWN_OPEN!r}")
    if lines[-1] != SPAWN_CLOSE:
        raise GrammarError(f"spawn block must end with {SPAWN_CLOSE!r}")
    calls = []
    for n, line in enumerate(lines[1:-1], start=2):
        m = _CALL_RE.match(line)
        if not m:
            raise GrammarError(f"spawn block line {n} is not '<Start Sub Search i at level L> Moving to Node #id': {line!r}")
        calls.append(ChildCall(int(m.group(1)), int(m.group(2)), m.group(3)))
    if not calls:
        raise GrammarError("spawn block names no children")
    return calls


def render_join(results: list[ChildResult]) -> str:
    parts = [JOIN_OPEN + "\n"]
    for r in results:
        c = r.call
        if r.path is not None:
            parts.append(f"<Goal Reached in Sub Search {c.index} at level {c.level} at Node #{c.node_id}>\n")
            parts.append(r.path if r.path.endswith("\n") else r.path + "\n")
        else:
            parts.append(f"<No Solution in Sub Search {c.index} at level {c.level} at Node #{c.node_id}>\n")
    parts.append(JOIN_CLOSE + "\n")
    return "".join(parts)


_RESULT_RE = re.compile(r"^<(Goal Reached|No Solution) in Sub Search (\d+) at level (\d+) at Node #(\d+(?:,\d+)*)>$")


def parse_join(block: str) -> list[ChildResult]:
    """Parse a join block back into per-child results (the inverse of ``render_join``)."""
    lines = block.strip("\n").split("\n")
    if not lines or lines[0] != JOIN_OPEN or lines[-1] != JOIN_CLOSE:
        raise GrammarError(f"join block must be enclosed in {JOIN_OPEN!r} ... {JOIN_CLOSE!r}")
    results: list[ChildResult] = []
    current: ChildCall | None = None
    path: list[str] = []

    def flush() -> None:
        if current is not None:
            results.append(ChildResult(current, "\n".join(path) + "\n"))

    for line in lines[1:-1]:
        m = _RESULT_RE.match(line)
        if m:
            flush()
            current, path = None, []
            call = ChildCall(int(m.group(2)), int(m.group(3)), m.group(4))
            if m.group(1) == "Goal Reached":
                current = call
            else:
                results.append(ChildResult(call, None))
        elif current is not None:
            path.append(line)
        else:
            raise GrammarError(f"join block line outside any child result: {line!r}")
    flush()
    return results


def find_spawn(text: str) -> tuple[str, str] | None:
    """Split generated text ending in a complete spawn block into (before, block), else None."""
    end = text.rfind(SPAWN_CLOSE)
    if end == -1 or text[end + len(SPAWN_CLOSE):].strip():
        return None
    start = text.rfind(SPAWN_OPEN, 0, end)
    if start == -1:
        return None
    return text[:start], text[start:end + len(SPAWN_CLOSE)] + "\n"


# -- answers ---------------------------------------------------------------------------------
# A few lines of every kind of token the format uses (a state, an operation, a marker), e.g. to
# check that a tokenizer's tokens decode one by one.
SAMPLE_TEXT = "Moving to Node #0,1\nCurrent State: 27:[22, 31, 27], Operations: ['53-26=27']\n<Calling Sub Searches>\n"

# Lines of an answer path, as the verifier and the metrics read them.
OPERATION_RE = re.compile(r"(\d+)([+\-*/])(\d+)=(\d+)")  # one arithmetic step, e.g. 53-26=27
EXPLORE_RE = re.compile(r"^Exploring Operation: (\d+)([+\-*/])(\d+)=(\d+), Resulting Numbers: \[([\d, ]*)\]$")
EXPLORED_OPERATIONS_RE = re.compile(r"^Exploring Operation: (\S+), Resulting Numbers: ", re.M)  # findall: the steps
GOAL_RE = re.compile(r"^(\d+),(\d+) equal: Goal Reached$")
PATH_CONTEXT_RE = re.compile(  # the other lines an answer path may hold
    r"^(Moving to Node #\d+(,\d+)*|Current State: \d+:\[[\d, ]*\], Operations: \[[^\]]*\]|"
    r"Generated Node #\d+(,\d+)*: \d+:\[[\d, ]*\] Operation: \S+)$"
)
_GOAL_LINE_RE = re.compile(r"^\d+,\d+ equal: Goal Reached$", re.M)


def answer_path(trace: str) -> str | None:
    """The final solution path of a trace: the lines after the second-to-last goal line up to and
    including the last one. Works for APR threads (parent and child) and SoS+ traces; None when
    the trace does not restate a path after reaching the goal.
    """
    goals = list(_GOAL_LINE_RE.finditer(trace))
    if len(goals) < 2:
        return None
    return trace[goals[-2].end() + 1: goals[-1].end()] + "\n"


_NODE_STATE_RE = {
    "generated": re.compile(r"^Generated Node #(\d+(?:,\d+)*): (\d+):\[([\d, ]*)\] Operation: (\S+)$", re.M),
    "state": re.compile(r"^Current State: (\d+):\[([\d, ]*)\], Operations: \[([^\]]*)\]$", re.M),
}


def child_prompt_from_context(context: str, node_id: str) -> str:
    """Build a child's prompt from its parent's text, as the reference orchestrator does.

    The child's numbers and last operation come from the parent's ``Generated Node #id`` line;
    the earlier operations from the ``Current State`` line of the node that generated it.
    """
    generated = [m for m in _NODE_STATE_RE["generated"].finditer(context) if m.group(1) == node_id]
    if not generated:
        raise GrammarError(f"spawn names node #{node_id}, but the parent never generated it")
    g = generated[-1]
    states = list(_NODE_STATE_RE["state"].finditer(context, 0, g.start()))
    if not states:
        raise GrammarError(f"no 'Current State' line precedes node #{node_id}")
    ops = _parse_ops(states[-1].group(3)) + [g.group(4)]
    return apr_prompt(int(g.group(2)), _parse_int_list(g.group(3)), ops, node_id)
