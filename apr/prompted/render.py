"""Show prompted runs in the terminal: the thread tree, and numbers beside the sequential baseline."""

from __future__ import annotations

from typing import Any, Sequence

from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from apr.prompted.evaluate import speedup
from apr.prompted.orchestrator import Result
from apr.threads import Thread

_OK = ("stop", "eos")


def tree_view(root: Thread, preview: int = 90) -> Tree:
    """Every thread with its tokens, timing and end, and a preview of every span it holds."""
    view = Tree(_label(root))
    _add(view, root, preview)
    return view


def _label(thread: Thread) -> str:
    parts = [f"[bold]{escape(thread.id)}[/]"]
    if "task" in thread.meta:
        parts.append(escape(_short(thread.meta["task"], 60)))
    parts.append(f"{thread.generated_tokens()} tok out, {thread.prompt_tokens or 0} in")
    if "wall_s" in thread.meta:
        parts.append(f"{thread.meta['wall_s']:.2f} s from {thread.meta['t_start']:.2f} s")
    if thread.finish_reason:
        colour = "green" if thread.finish_reason in _OK else "red"
        parts.append(f"[{colour}]{escape(thread.finish_reason)}[/]")
    if "verdict" in thread.meta:
        parts.append(f"verdict: {thread.meta['verdict']}")
    return " · ".join(parts)


def _add(node: Tree, thread: Thread, preview: int) -> None:
    groups = iter(enumerate(thread.spawns, 1))
    for span in thread.spans:
        if span.kind == "spawn":
            wave, group = next(groups)
            label = f"[cyan]fork[/] {len(group)} thread(s)"
            if len(thread.spawns) > 1:
                label += f", wave {wave}"
            if span.text:
                label += f" · plan {span.n_tokens} tok: {escape(_short(span.text, preview))}"
            branch = node.add(label)
            for child in group:
                _add(branch.add(_label(child)), child, preview)
        else:
            node.add(f"[magenta]{span.kind}[/] {span.n_tokens or 0} tok: {escape(_short(span.text, preview))}")
    for event in thread.events:
        node.add(f"[yellow]! {escape(event)}[/]")


def _short(text: str, n: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= n else flat[: n - 1] + "…"


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
