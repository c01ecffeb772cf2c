"""Numbers of prompted runs beside the sequential baseline (the tree itself: ``apr.viz.tree``)."""

from __future__ import annotations

from typing import Any, Sequence

from rich.markup import escape
from rich.table import Table

from apr.prompted.evaluate import speedup
from apr.prompted.orchestrator import Result

_ROWS = (  # (label, stats key, format)
    ("answer", "answer", "{}"),
    ("latency", "seconds", "{:.2f} s"),
    ("total tokens", "total_tokens", "{:,}"),
    ("generated tokens", "generated_tokens", "{:,}"),
    ("critical-path tokens", "sequential_tokens", "{:,}"),
    ("threads", "threads", "{}"),
    ("fell back", "fallback", "{}"),
)


def result_table(result: Result, baseline: Result | None = None) -> Table:
    """This run's numbers, beside the sequential baseline's and the speedup when there is one."""
    runs = {result.tree.meta["mode"]: result.stats()}
    if baseline is not None:
        runs["sequential baseline"] = baseline.stats()
    table = _table("run", runs, _ROWS)
    if baseline is not None:
        table.caption = _speedup(speedup(baseline.seconds, result.seconds))
    return table


_EVAL_ROWS = (
    ("accuracy", "accuracy", "{:.1%}"),
    ("accuracy, lenient answers", "accuracy_lenient", "{:.1%}"),
    ("graded", "graded", "{}"),
    ("mean latency", "mean_seconds", "{:.2f} s"),
    ("total latency", "total_seconds", "{:.2f} s"),
    ("mean total tokens", "mean_total_tokens", "{:,.0f}"),
    ("mean critical-path tokens", "mean_sequential_tokens", "{:,.0f}"),
    ("fallbacks", "fallbacks", "{}"),
)


def eval_table(summary: dict[str, Any]) -> Table:
    """The A/B summary: one column per mode."""
    table = _table(f"{summary['n']} questions, model {summary['model']}", summary["arms"], _EVAL_ROWS)
    table.caption = _speedup(summary["speedup"])
    return table


def _speedup(x: float | None) -> str:
    return "" if x is None else f"wall-clock speedup vs sequential: {x:.2f}x"


def _table(title: str, columns: dict[str, dict[str, Any]],
           rows: Sequence[tuple[str, str, str]]) -> Table:
    table = Table(title=escape(title))
    table.add_column("")
    for name in columns:
        table.add_column(escape(name), justify="right")
    for label, key, fmt in rows:
        table.add_row(label, *("-" if c.get(key) is None else escape(fmt.format(c[key])) for c in columns.values()))
    return table
