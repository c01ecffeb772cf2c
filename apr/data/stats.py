"""Summary statistics of a demonstrations file: how good the solver is and how big the traces are."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Callable, Sequence

from apr.data.io import read_rows, require_fields
from apr.threads import tree_metrics, unflatten


def _summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"mean": 0.0, "median": 0.0, "max": 0.0}
    return {"mean": statistics.fmean(values), "median": statistics.median(values), "max": max(values)}


WINDOWS = (512, 1024, 2048, 4096)


def trace_stats(traces_path: Path, count_tokens: Callable[[str], int],
                windows: Sequence[int] = WINDOWS) -> dict[str, Any]:
    """Solver success rate and token statistics (total, sequential, longest thread, width).

    ``fits[w]``: the share of traces whose every thread fits a context of ``w`` tokens with BOS
    and EOS, i.e. what a model with that window can be trained on without cutting anything.
    """
    rows = read_rows(traces_path)
    require_fields(traces_path, rows, ("format", "threads", "solved"), "traces")
    per: dict[str, list[float]] = {k: [] for k in ("total", "sequential", "longest", "threads", "spawns")}
    widths: list[float] = []
    for row in rows:
        m = tree_metrics(unflatten(row["threads"]), count_tokens)
        per["total"].append(m.total_tokens)
        per["sequential"].append(m.sequential_tokens)
        per["longest"].append(m.longest_context)
        per["threads"].append(m.n_threads)
        per["spawns"].append(m.n_spawns)
        if m.n_spawns:
            widths.append(m.children_per_spawn)
    n = len(rows)
    return {
        "file": str(traces_path),
        "format": rows[0]["format"] if rows else None,
        "traces": n,
        "success_rate": sum(r["solved"] for r in rows) / n if n else 0.0,
        "total_tokens": _summary(per["total"]),
        "sequential_tokens": _summary(per["sequential"]),
        "longest_thread_tokens": _summary(per["longest"]),
        "threads_per_trace": _summary(per["threads"]),
        "spawns_per_trace": _summary(per["spawns"]),
        "traces_that_spawn": len(widths) / n if n else 0.0,
        "children_per_spawn": _summary(widths),
        "fits": {str(w): sum(v + 2 <= w for v in per["longest"]) / n if n else 0.0 for w in windows},
    }
