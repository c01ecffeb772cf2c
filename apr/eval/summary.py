"""Aggregate a setting's per-problem records into the numbers the report and the plots show.

Means are over all samples of all problems (so accuracy with n samples is the pass@1 estimate);
the context-window curve and the capped SoS+ curve use one sample per problem (sample 0), as
the paper's Fig. 4b does. Accuracies are fractions here; the report and plots show percent.
"""

from __future__ import annotations

from collections import Counter
from statistics import mean, quantiles
from typing import Any

from apr.data.io import Row
from apr.eval.metrics import SampleScore, capped, cons_at, cumulative_accuracy, pass_at
from apr.eval.settings import Setting

WINDOW_STEP = 64  # context windows of the cumulative-accuracy curve: every 64 tokens up to the model's
N_CAPS = 8  # SoS+ generation caps: the model's context split in eighths


def windows(context_length: int) -> list[int]:
    return list(range(WINDOW_STEP, context_length + 1, WINDOW_STEP))


def caps(context_length: int) -> list[int]:
    return [context_length * k // N_CAPS for k in range(1, N_CAPS + 1)]


def summarize_setting(setting: Setting, rows: list[Row], context_length: int) -> dict[str, Any]:
    scores = [[SampleScore.from_dict(s) for s in row["samples"]] for row in rows]
    flat = [s for per_problem in scores for s in per_problem]
    first = [per_problem[0] for per_problem in scores]
    n = setting.samples
    latencies = [s.latency_s for s in flat]
    deciles = quantiles(latencies, n=10, method="inclusive") if len(latencies) > 1 else latencies * 9
    wall = sum(row["runner_s"] for row in rows)
    out: dict[str, Any] = {
        "setting": setting.to_dict(), "label": setting.label, "problems": len(rows), "samples": n,
        "accuracy": mean(s.correct for s in flat),
        **{key: mean(getattr(s, key) for s in flat) for key in (
            "total_tokens", "generated_tokens", "sequential_tokens", "longest_context", "n_threads",
            "children_per_spawn", "latency_s")},
        "latency_p50_s": deciles[4],
        "latency_p90_s": deciles[8],
        "wall_s": wall,
        "throughput_tokens_per_s": sum(s.generated_tokens for s in flat) / wall if wall else 0.0,
        "finish_reasons": dict(Counter(str(s.finish_reason) for s in flat).most_common()),
        "failures": dict(Counter(s.failure for s in flat if s.failure).most_common()),
        "lost_at_join": sum(not s.correct and s.solved_by_child for s in flat) / len(flat),
        # None for records written before operations were counted
        "arithmetic_errors": (sum(s.wrong_operations for s in flat) / ops
                              if (ops := sum(s.operations for s in flat)) else None),
        "pass_at": [mean(pass_at(k, n, sum(s.correct for s in ps)) for ps in scores) for k in range(1, n + 1)],
        "cons_at": [mean(cons_at(k, [s.answer for s in ps], [s.correct for s in ps]) for ps in scores)
                    for k in range(1, n + 1)],
        "context_windows": windows(context_length),
        "context_accuracy": cumulative_accuracy(first, windows(context_length)),
    }
    if setting.fmt == "sosp":
        out["capped"] = [capped(first, c) for c in caps(context_length)]
    return out
