"""A/B harness: every question answered sequentially and in the prompted parallel mode, side by side.

The two runs of a question go one after the other, never concurrently, so each latency is what a
user would see on an otherwise idle server.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from apr.prompted.answers import normalize
from apr.prompted.client import ChatClient, PromptedError
from apr.prompted.orchestrator import AskConfig, Mode, Result, ask


class EvalFileError(PromptedError):
    """The --eval file cannot be used; the message names the file, the line and the problem."""


class EvalItem(BaseModel):
    model_config = ConfigDict(coerce_numbers_to_str=True, str_strip_whitespace=True)

    question: str = Field(min_length=1)
    answer: str | None = None  # optional gold answer: accuracy is reported when present


def load_items(path: Path) -> list[EvalItem]:
    """Questions from a JSONL file, one object per line; blank lines are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise EvalFileError(f"cannot read {path}: {e}") from None
    items = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            items.append(EvalItem.model_validate_json(line))
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(map(str, first["loc"]))
            raise EvalFileError(f"{path}:{number}: {where + ': ' if where else ''}{first['msg']}") from None
    if not items:
        raise EvalFileError(f"{path} holds no questions")
    return items


async def compare(task: str, client: ChatClient, config: AskConfig) -> tuple[Result, Result]:
    """The sequential baseline, then ``config``'s mode, on one task."""
    baseline = await ask(task, client, replace(config, mode=Mode.sequential))
    return baseline, await ask(task, client, config)


def speedup(baseline_seconds: float, seconds: float) -> float | None:
    return baseline_seconds / seconds if seconds > 0 else None


async def run_eval(items: list[EvalItem], client: ChatClient, config: AskConfig,
                   on_record: Callable[[int, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Per-question records (with trees) and per-mode aggregates."""
    if config.mode is Mode.sequential:
        raise PromptedError("--eval compares sequential with parallel or vote mode: pick one of those")
    arms = ("sequential", config.mode.value)
    records = []
    for i, item in enumerate(items):
        runs = await compare(item.question, client, config)
        record: dict[str, Any] = {"question": item.question, "gold": item.answer}
        for arm, result in zip(arms, runs):
            graded = item.answer is not None
            record[arm] = {**result.to_dict(), "correct": _same(result.answer, item.answer) if graded else None,
                           "correct_lenient": _same(result.lenient_answer, item.answer) if graded else None}
        records.append(record)
        if on_record is not None:
            on_record(i, record)
    aggregates = {arm: _aggregate([r[arm] for r in records]) for arm in arms}
    return {"model": client.config.model, "mode": config.mode.value, "n": len(items), "arms": aggregates,
            "speedup": speedup(aggregates["sequential"]["total_seconds"], aggregates[arms[1]]["total_seconds"]),
            "records": records}


def _same(answer: str | None, gold: str) -> bool:
    return answer is not None and normalize(answer) == normalize(gold)


def _aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    graded = [r["correct"] for r in runs if r["correct"] is not None]
    lenient = [r["correct_lenient"] for r in runs if r["correct_lenient"] is not None]
    n = len(runs)
    return {
        "accuracy": sum(graded) / len(graded) if graded else None,
        "accuracy_lenient": sum(lenient) / len(lenient) if lenient else None,
        "graded": len(graded),
        "mean_seconds": sum(r["seconds"] for r in runs) / n,
        "total_seconds": sum(r["seconds"] for r in runs),
        "mean_total_tokens": sum(r["total_tokens"] for r in runs) / n,
        "mean_sequential_tokens": sum(r["sequential_tokens"] for r in runs) / n,
        "fallbacks": sum(r["fallback"] is not None for r in runs),
    }
