"""The paper's four views as PNGs: our run on the left, the paper's curves on the right.

The paper's panel is for reference only: a 228M model on a larger task (numbers up to 99), so
its axes are not ours and nothing is overlaid. APR is drawn in blues, SoS+ in oranges; each point
of ours carries a short tag (its budget, child cap or sample count).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from apr.eval import paper  # noqa: E402

Summary = dict[str, Any]  # one setting's summary (apr.eval.summary.summarize_setting)
FILES = {"fig4a": "fig4a_total_tokens.png", "fig4b": "fig4b_context_window.png",
         "fig6a": "fig6a_sequential_tokens.png", "fig6b": "fig6b_latency.png"}
_CMAPS = {"apr": plt.cm.Blues, "sosp": plt.cm.Oranges}
_MARKERS = {"apr": "o", "sosp": "s"}


@dataclass
class Series:
    label: str
    x: Sequence[float]
    y: Sequence[float]  # accuracy in %
    fmt: str
    tags: Sequence[str] = ()  # one short annotation per point
    style: str = "-"
    step: bool = False


# -- which settings go where ---------------------------------------------------------------------
def _key(s: Summary) -> tuple:
    st = s["setting"]
    return st["fmt"], st["temperature"], st["budget"], st["max_children"]


def one_sample(summaries: Sequence[Summary]) -> list[Summary]:
    """Settings shown by their first sample: all n=1 runs, and n>1 runs that have no n=1 twin."""
    singles = {_key(s) for s in summaries if s["samples"] == 1}
    return [s for s in summaries if s["samples"] == 1 or _key(s) not in singles]


def _tag(s: Summary, knob: str) -> str:
    st = s["setting"]
    if st["budget"] is not None:
        return f"B={st['budget']}"
    if st["max_children"] is not None:
        return f"cap {st['max_children']}"
    return {"budget": "no budget", "cap": "no cap", "plain": ""}[knob]


def sweeps(summaries: Sequence[Summary], x: Callable[[Summary], float]) -> list[Series]:
    """One line per (format, temperature, knob): budget sweeps and child-cap sweeps, each through
    the unconditioned run of the same temperature, sorted along x."""
    groups: dict[tuple, list[Summary]] = {}
    for s in one_sample(summaries):
        st = s["setting"]
        knob = "budget" if st["budget"] is not None else "cap" if st["max_children"] is not None else "plain"
        groups.setdefault((st["fmt"], st["temperature"], knob), []).append(s)
    series = []
    for (fmt, temp, knob), members in groups.items():
        if knob == "plain" and any(k[:2] == (fmt, temp) and k[2] != "plain" for k in groups):
            continue  # drawn as a point of the knob's sweep instead
        members = members + (groups.get((fmt, temp, "plain"), []) if knob != "plain" else [])
        members.sort(key=x)
        name = {"budget": "Sub Call Budget" if fmt == "apr" else "Token Budget", "cap": "child cap",
                "plain": "unconditioned"}[knob]
        series.append(Series(f"{'APR' if fmt == 'apr' else 'SoS+'}, {name} (T={temp:g})",
                             [x(s) for s in members], [100 * s["accuracy"] for s in members], fmt,
                             [_tag(s, knob) for s in members]))
    return series


def _capped(summaries: Sequence[Summary], field_: str) -> list[Series]:
    return [Series(f"SoS+ stopped after B tokens, derived (T={s['setting']['temperature']:g})",
                   [c[field_] for c in s["capped"]], [100 * c["accuracy"] for c in s["capped"]], "sosp",
                   [f"{c['cap']} tok" for c in s["capped"]], style=":")
            for s in one_sample(summaries) if "capped" in s and s["setting"]["budget"] is None]


# -- the four figures --------------------------------------------------------------------------
def fig4a(summaries: Sequence[Summary]) -> list[Series]:
    out = sweeps(summaries, lambda s: s["total_tokens"])
    for s in summaries:
        n = s["samples"]
        if n == 1:
            continue
        x = [k * s["total_tokens"] for k in range(1, n + 1)]
        tags = ["n=1"] + [""] * (n - 2) + [f"n={n}"]
        fmt, label = s["setting"]["fmt"], s["label"]
        out.append(Series(f"{label}: pass@n", x, [100 * v for v in s["pass_at"]], fmt, tags, style="--"))
        out.append(Series(f"{label}: cons@n", x, [100 * v for v in s["cons_at"]], fmt, tags, style=":"))
    return out


def fig4b(summaries: Sequence[Summary]) -> list[Series]:
    return [Series(s["label"], s["context_windows"], [100 * v for v in s["context_accuracy"]], s["setting"]["fmt"],
                   step=True) for s in one_sample(summaries)]


def fig6a(summaries: Sequence[Summary]) -> list[Series]:
    return sweeps(summaries, lambda s: s["sequential_tokens"]) + _capped(summaries, "sequential_tokens")


def fig6b(summaries: Sequence[Summary]) -> list[Series]:
    return sweeps(summaries, lambda s: s["latency_s"]) + _capped(summaries, "latency_s")


# -- drawing -----------------------------------------------------------------------------------
def _kilo(v: float, _: int) -> str:
    return f"{v / 1000:g}k" if abs(v) >= 1000 else f"{v:g}"


def _draw(ax: Axes, series: Sequence[Series]) -> list[tuple[Series, Any]]:
    """Draw the series (colour shades per format); returns each with its colour."""
    per_fmt: dict[str, list[Series]] = {}
    for s in series:
        per_fmt.setdefault(s.fmt, []).append(s)
    colored = []
    for fmt, group in per_fmt.items():
        for s, color in zip(group, _CMAPS[fmt](np.linspace(0.55, 0.95, len(group)))):
            if s.step:
                ax.step(s.x, s.y, where="post", color=color, lw=2, ls=s.style, label=s.label)
            else:
                ax.plot(s.x, s.y, color=color, lw=2, ls=s.style, marker=_MARKERS[fmt], ms=6, label=s.label)
            colored.append((s, color))
    return colored


def _tags(ax: Axes, s: Series, color: Any) -> None:
    """Write each point's tag, skipping points that crowd the last tagged one of the series."""
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    last = None
    for x, y, tag in zip(s.x, s.y, s.tags):
        here = np.array([(x - x0) / (x1 - x0), (y - y0) / (y1 - y0)])
        if not tag or (last is not None and np.hypot(*(here - last)) < 0.05):
            continue
        ax.annotate(tag, (x, y), textcoords="offset points", xytext=(4, 5), fontsize=8, color=color)
        last = here


def _panel(ax: Axes, title: str, xlabel: str, kilo: bool) -> None:
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    if kilo:
        ax.xaxis.set_major_formatter(FuncFormatter(_kilo))
    ax.legend(fontsize=8, loc="best", framealpha=0.9)


def draw(path: Path, title: str, xlabel: str, ours: Sequence[Series], reference: Sequence[paper.Curve],
         ours_title: str, *, kilo: bool = True) -> None:
    """Two panels: ours (left) and the paper's curves (right, dashed), each with its own axes."""
    plt.rcParams.update({"font.size": 11})
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.6), constrained_layout=True)
    fig.suptitle(title, fontsize=14, fontweight="bold")
    drawn = _draw(left, ours)
    top = max((max(s.y) for s in ours if len(s.y)), default=0.0)
    left.set_ylim(0, min(100, max(10.0, top * 1.15 + 2)))
    if ours and top == 0:
        left.text(0.5, 0.5, "no setting solved any problem", transform=left.transAxes, ha="center", fontsize=13,
                  color="0.4")
    for s, color in drawn:
        _tags(left, s, color)
    _panel(left, ours_title, xlabel, kilo)
    _draw(right, [Series(c.label, c.x, c.y, c.fmt, style="--") for c in reference])
    note = " (x positions partly interpolated)" if any(c.x_interpolated for c in reference) else ""
    _panel(right, f"Paper, reference only{note}:\n{paper.SOURCE}", xlabel, kilo)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_plots(out: Path, summaries: Sequence[Summary], ours_title: str) -> dict[str, Path]:
    """Write the four PNGs into ``out``; returns their paths by figure."""
    specs = {
        "fig4a": ("Accuracy vs total compute (paper Fig. 4a)", "average total tokens per problem",
                  fig4a(summaries), paper.FIG4A, True),
        "fig4b": ("Cumulative accuracy vs context window (paper Fig. 4b)",
                  "context window (tokens): the longest context a solved problem needed", fig4b(summaries),
                  paper.FIG4B, True),
        "fig6a": ("Accuracy vs sequential tokens (paper Fig. 6, left)",
                  "average sequential tokens per problem (critical path)", fig6a(summaries),
                  paper.FIG6_SEQUENTIAL, True),
        "fig6b": ("Accuracy vs latency (paper Fig. 6, right)", "average wall-clock latency per problem (s)",
                  fig6b(summaries), paper.FIG6_LATENCY, False),
    }
    paths = {}
    for key, (title, xlabel, ours, reference, kilo) in specs.items():
        paths[key] = Path(out) / FILES[key]
        draw(paths[key], title, xlabel, ours, reference, ours_title, kilo=kilo)
    return paths
