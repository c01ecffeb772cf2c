"""The markdown report: what ran, the numbers per setting, the figures, and the paper beside them."""

from __future__ import annotations

from typing import Any, Sequence

from apr.eval import paper
from apr.eval.plots import FILES, one_sample

Summary = dict[str, Any]


def _pct(v: float) -> str:
    return f"{100 * v:.1f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _run_section(run: dict[str, Any]) -> str:
    models = "; ".join(f"{fmt}: `{m['name']}`" for fmt, m in run["models"].items())
    lines = [
        f"- Command: `{run['command']}`",
        f"- Problems: `{run['problems_file']}`, the first {run['problems']} ({run['n_numbers']} numbers each)",
        f"- Models: {models}; context {', '.join(f'{k} {v}' for k, v in run['context_length'].items())} tokens",
        f"- Backend: {run['backend']}; seed {run['seed']}; max tokens per call: {run['max_tokens'] or 'the context'}",
        f"- Concurrency: {run['concurrency']} problem(s) in flight, all samples of a problem together "
        f"(latency = a sample's wall clock under that load; see docs/evaluation.md)",
        f"- Machine: {run['machine']}; load average {run['load_average'][0]} before the run and "
        f"{run['load_average'][1]} after (other jobs on the cores slow decoding and inflate latency)",
        f"- Wall clock of the settings (this run and any it resumed): {run['wall_s'] / 60:.1f} min",
    ]
    lines += [f"- Note: {n}" for n in run["notes"]]
    return "\n".join(lines)


def _results_table(summaries: Sequence[Summary]) -> str:
    rows = [[f"`{s['setting']['name']}`", s["label"], f"{s['problems']} x {s['samples']}", _pct(s["accuracy"]),
             f"{s['total_tokens']:,.0f}", f"{s['sequential_tokens']:,.0f}", f"{s['longest_context']:,.0f}",
             f"{s['children_per_spawn']:.1f}",
             f"{s['latency_s']:.2f} / {s['latency_p50_s']:.2f} / {s['latency_p90_s']:.2f}",
             f"{s['throughput_tokens_per_s']:,.0f}"] for s in summaries]
    return _table(["setting", "what", "problems x samples", "accuracy %", "total tokens", "sequential tokens",
                   "longest context", "children/spawn", "latency s (mean / p50 / p90)", "decoded tokens/s"], rows)


def _outcomes_table(summaries: Sequence[Summary]) -> str:
    rows = [[f"`{s['setting']['name']}`", ", ".join(f"{k} {v}" for k, v in s["finish_reasons"].items()),
             ", ".join(f"{k} {v}" for k, v in s["failures"].items()) or "-",
             _pct(s.get("lost_at_join", 0.0)) if s["setting"]["fmt"] == "apr" else "-",
             "-" if s.get("arithmetic_errors") is None else _pct(s["arithmetic_errors"])] for s in summaries]
    return _table(["setting", "how root threads ended", "why answers were refused",
                   "lost at join % (a child had a verified answer)", "wrong arithmetic % of operations"], rows)


def _samples_section(summaries: Sequence[Summary]) -> str:
    parts = []
    for s in (s for s in summaries if s["samples"] > 1):
        rows = [[k, _pct(p), _pct(c), f"{k * s['total_tokens']:,.0f}"]
                for k, (p, c) in enumerate(zip(s["pass_at"], s["cons_at"]), start=1)]
        parts.append(f"**{s['label']}**\n\n" + _table(["n", "pass@n %", "cons@n %", "total tokens"], rows))
    return "\n\n".join(parts) or "No setting drew more than one sample per problem."


def _eighths(windows: Sequence[int]) -> list[int]:
    """About eight evenly spaced windows of a curve, ending at the full context."""
    step = max(1, len(windows) // 8)
    return list(windows[step - 1::step])


def _context_section(summaries: Sequence[Summary]) -> str:
    shown = one_sample(summaries)
    grid = sorted({w for s in shown for w in _eighths(s["context_windows"])})
    rows = [[w] + [_pct(s["context_accuracy"][s["context_windows"].index(w)]) if w in s["context_windows"] else "-"
                   for s in shown] for w in grid]
    return _table(["window"] + [f"`{s['setting']['name']}`" for s in shown], rows)


def _capped_section(summaries: Sequence[Summary]) -> str:
    parts = []
    for s in (s for s in one_sample(summaries) if "capped" in s):
        rows = [[c["cap"], _pct(c["accuracy"]), f"{c['sequential_tokens']:,.0f}", f"{c['latency_s']:.2f}"]
                for c in s["capped"]]
        parts.append(f"**{s['label']}**\n\n" + _table(["stop after (tokens)", "accuracy %", "sequential tokens",
                                                         "latency s (estimate)"], rows))
    return "\n\n".join(parts) or "No SoS+ setting."


def _paper_section(summaries: Sequence[Summary]) -> str:
    rows = []
    for s in summaries:
        st = s["setting"]
        reference = paper.TABLE3[st["fmt"]].get(st["temperature"])
        if st["budget"] is None and st["max_children"] is None and reference is not None:
            rows.append([s["label"], _pct(s["accuracy"]), f"{reference:.1f}"])
    table = _table(["setting (unconditioned)", "ours %", "paper Table 3 %"], rows) if rows else \
        "No unconditioned setting at a temperature of the paper's Table 3 (0, 0.1, 0.5, 1)."
    return (f"The paper's numbers ({paper.SOURCE}) are for a larger model on a harder task; they show the shape "
            "of the trade-offs to look for, not targets for these models.\n\n" + table)


def render(run: dict[str, Any], summaries: Sequence[Summary]) -> str:
    figures = "\n\n".join(f"![{key}]({name})" for key, name in FILES.items())
    return "\n\n".join([
        "# Evaluation results",
        "Generated by `apr eval`. Metric definitions, the concurrency policy and the estimators are in "
        "[docs/evaluation.md](../evaluation.md); every number below is recomputed from `samples/*.jsonl`.",
        "## Run", _run_section(run),
        "## Results per setting",
        "Accuracy is verified by the strict verifier; tokens are means per sample (shared prefixes counted once); "
        "latency is the root thread's wall clock.",
        _results_table(summaries),
        _outcomes_table(summaries),
        "## pass@n and cons@n (every n from the same N samples)", _samples_section(summaries),
        "## Cumulative accuracy vs context window (one sample per problem)", _context_section(summaries),
        "## SoS+ stopped after B generated tokens (derived from the full samples)", _capped_section(summaries),
        "## Figures", figures,
        "## The paper, for reference", _paper_section(summaries),
    ]) + "\n"
