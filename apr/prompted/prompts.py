"""Every message the orchestrator sends, in one place so they can be read and tuned together.

A thread's ``prompt`` is its problem statement: the task for the root, a subtask brief (the
parent's problem, the subtask, and only the results it declared it depends on) for a child.
Each call sends that statement plus what the call is for.
"""

from __future__ import annotations

from apr.prompted.plan import Plan, Subtask

Messages = list[dict[str, str]]

SYSTEM = "You are a careful, concise problem solver."
SOLVE_SUBTASK = "Solve only your subtask and state its result concisely."

PLAN = """{problem}

Before solving, decide whether this problem splits into subtasks that can be worked on separately, some of them at the same time.
Reply with only a JSON list, no other text. Each element is an object:
  {{"id": "<short name>", "task": "<self-contained instruction>", "depends_on": ["<ids of subtasks whose results it needs>"]}}
Use a single element if the problem is best solved in one go, and at most {max_subtasks} elements. A subtask sees the problem, its own instruction and the results of the subtasks it depends on, nothing else."""

PLAN_RETRY = "That plan is invalid: {error}\nReply with only the corrected JSON list."

VERIFY = """{problem}

Proposed result:
{result}

Check the proposed result. If it is correct, reply with the single line "VERDICT: correct". Otherwise reply "VERDICT: incorrect" on the first line and the corrected result after it."""


def _user(text: str) -> Messages:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]


def closing(final: bool, answer_instruction: str) -> str:
    """What a solving call is asked to produce: the final answer (root) or a subtask result."""
    return f"Think step by step. {answer_instruction}".rstrip() if final else SOLVE_SUBTASK


def plan(problem: str, max_subtasks: int) -> Messages:
    return _user(PLAN.format(problem=problem, max_subtasks=max_subtasks))


def plan_retry(messages: Messages, reply: str, error: str) -> Messages:
    """The same conversation, the invalid plan, and the validation error to fix."""
    return [*messages, {"role": "assistant", "content": reply},
            {"role": "user", "content": PLAN_RETRY.format(error=error)}]


def subtask_brief(problem: str, subtask: Subtask, inputs: dict[str, str]) -> str:
    brief = f"Overall problem:\n{problem}\n\nYour subtask ({subtask.id}): {subtask.task}"
    if inputs:
        brief += "\n\nResults you depend on:\n" + "\n".join(f"[{d}] {r}" for d, r in inputs.items())
    return brief


def join_block(plan: Plan, results: dict[str, str]) -> str:
    lines = [f"[{s.id}] {s.task}\n{results[s.id]}" for s in plan.subtasks]
    return "Results of the subtasks:\n" + "\n\n".join(lines)


def solve(problem: str, closing_text: str) -> Messages:
    return _user(f"{problem}\n\n{closing_text}")


def merge(problem: str, join: str, closing_text: str) -> Messages:
    return _user(f"{problem}\n\n{join}\n\nCombine these results into the solution. {closing_text}")


def verify(problem: str, result: str) -> Messages:
    return _user(VERIFY.format(problem=problem, result=result))
