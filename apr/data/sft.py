"""Supervised examples: one per LM call (segment) of every demonstration thread.

Each row carries the prompt / completion boundary, so a trainer can put the loss on all tokens
(the paper) or on completions only. Budget conditioning is plain text in front of the root prompt:
``Sub Call Budget: N`` (APR: children per spawn, 0..10) or ``Token Budget: B`` (SoS+: the trace's
token count rounded up to a multiple of 512, at most 4096).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

from apr import grammar
from apr.data.io import read_rows, require_fields, write_rows
from apr.threads import Thread, tree_metrics, unflatten

Condition = Literal["none", "sub-calls", "tokens"]
# "root-last": only the root's last segment when it follows a join. Its prompt holds the root's
# search and the join block, its completion the answer path the root rebuilds from the children:
# the step most APR failures come from, and ~1 row per problem in "all" (docs/training.md).
# "joined-last": the same for every thread that joins, so a child that spawned grandchildren also
# learns to pass their answer up (with nested spawns an answer is rewritten once per level).
Segments = Literal["all", "root-last", "joined-last"]
TOKEN_BUDGET_STEP = 512
MAX_TOKEN_BUDGET = 4096
MAX_SUB_CALL_BUDGET = 10


def sub_call_budget(root: Thread) -> int:
    """Children per spawn over the whole tree, rounded (0 when the demonstration never spawns)."""
    metrics = tree_metrics(root, count=len)  # token counts are irrelevant here
    return min(MAX_SUB_CALL_BUDGET, round(metrics.children_per_spawn))


def token_budget(n_tokens: int) -> int:
    """Smallest multiple of 512 holding ``n_tokens``, capped at 4096 (the paper's bins)."""
    return min(MAX_TOKEN_BUDGET, -(-n_tokens // TOKEN_BUDGET_STEP) * TOKEN_BUDGET_STEP)


def conditioned_root(root: Thread, fmt: str, condition: Condition, count_tokens: Callable[[str], int] | None) -> Thread:
    """The tree with the budget prefix written into the root prompt (children get none)."""
    if condition == "none":
        return root
    if condition == "sub-calls":
        if fmt != "apr":
            raise ValueError("--condition sub-calls applies to APR traces only")
        root.prompt = f"{grammar.SUB_CALL_BUDGET}{sub_call_budget(root)} " + root.prompt
    elif condition == "tokens":
        if fmt != "sosp":
            raise ValueError("--condition tokens applies to SoS+ traces only")
        if count_tokens is None:
            raise ValueError("token-budget conditioning needs a tokenizer")
        n = count_tokens(root.prompt + root.generated_text())
        root.prompt = f"{grammar.TOKEN_BUDGET}{token_budget(n)} " + root.prompt
    else:
        raise ValueError(f"unknown condition {condition!r}; use none, sub-calls or tokens")
    return root


def sft_rows(trace_row: dict[str, Any], condition: Condition = "none",
             count_tokens: Callable[[str], int] | None = None, segments: Segments = "all") -> list[dict[str, Any]]:
    root = conditioned_root(unflatten(trace_row["threads"]), trace_row["format"], condition, count_tokens)
    rows = []
    for thread in root.walk():
        segs = thread.segments()
        if segments != "all":
            if len(segs) < 2 or (segments == "root-last" and thread is not root):
                continue
            segs = segs[-1:]
        for seg in segs:
            rows.append({
                "problem_id": trace_row["id"],
                "thread_id": thread.id,
                "segment": seg.index,
                "role": "root" if thread is root else "child",
                "prompt": seg.prompt,
                "completion": seg.completion,
            })
    return rows


@dataclass(frozen=True)
class SftOptions:
    condition: Condition = "none"
    only_solved: bool = False  # the paper trained on every demonstration, solved or not
    segments: Segments = "all"


def export_sft(traces_path: Path, out_path: Path, options: SftOptions,
               count_tokens: Callable[[str], int] | None = None) -> dict[str, Any]:
    traces = read_rows(traces_path)
    require_fields(traces_path, traces, ("id", "format", "threads", "solved"), "traces")
    rows: list[dict[str, Any]] = []
    kept = 0
    for trace in traces:
        if options.only_solved and not trace["solved"]:
            continue
        kept += 1
        rows.extend(sft_rows(trace, options.condition, count_tokens, options.segments))
    write_rows(out_path, rows)
    return {"demonstrations": kept, "examples": len(rows), "path": str(out_path)}
