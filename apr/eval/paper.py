"""The paper's reported curves (Pan et al. 2025, arXiv 2504.15466), for reference panels and tables.

Numbers are the figure labels transcribed in ``apr-spec.md`` §8.3 and §8.5-8.7. Accuracies are exact
labels; token and latency positions are read off the plots and approximate, and where the paper
gives no position at all (the middle APR points of Fig. 4a and Fig. 6) they are spaced evenly
between the labelled ends (``x_interpolated``). The paper's setting differs from ours: a 228M Llama
on Countdown with 4 numbers in 1..99 and targets 10..100, 4,096-token context, SGLang on 8 GPUs.
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCE = "Pan et al. 2025 (228M Llama, 4 numbers in 1-99, targets 10-100, 4k context)"


@dataclass(frozen=True)
class Curve:
    label: str
    x: tuple[float, ...]
    y: tuple[float, ...]  # accuracy in %
    fmt: str  # "apr" or "sosp": picks the colour family
    x_interpolated: bool = False  # some x positions are not in the paper: spaced evenly between labelled ones


def _spaced(first: float, last: float, n: int) -> tuple[float, ...]:
    return tuple(first + (last - first) * i / (n - 1) for i in range(n))


# Fig. 4a (temperature 1.0): accuracy vs average total tokens. APR = the child-count-conditioned sweep;
# SoS+ = n = 1..8 samples of a 4,096-context model.
FIG4A = (
    Curve("APR, Sub Call Budget sweep", _spaced(3_800, 20_000, 8),
          (53.5, 61.5, 65.3, 67.9, 69.8, 75.2, 76.9, 80.1), "apr", x_interpolated=True),
    Curve("SoS+ pass@n, n=1..8", _spaced(2_700, 23_000, 8),
          (57.3, 63.3, 64.4, 65.7, 66.5, 67.5, 67.8, 68.4), "sosp", x_interpolated=True),
    Curve("SoS+ cons@n, n=1..8", _spaced(2_700, 23_000, 8),
          (57.3, 62.6, 63.0, 64.6, 65.5, 65.8, 66.6, 66.4), "sosp", x_interpolated=True),
)

# Fig. 4b: cumulative accuracy vs context window, one sample per problem (curves read off the plot).
FIG4B_WINDOWS = (1024, 1536, 2048, 2560, 3072, 4096)
FIG4B = (
    Curve("APR, Sub Call Budget 10", FIG4B_WINDOWS, (0, 17, 48, 79, 80, 80), "apr"),
    Curve("APR, Sub Call Budget 6", FIG4B_WINDOWS, (2, 44, 66, 70, 70, 70), "apr"),
    Curve("APR, Sub Call Budget 3", FIG4B_WINDOWS, (29, 55, 59, 61.5, 61.5, 61.5), "apr"),
    Curve("SoS+, Token Budget 4096", FIG4B_WINDOWS, (5, 21, 31, 41, 49, 57), "sosp"),
    Curve("SoS+, Token Budget 1024", FIG4B_WINDOWS, (30, 40, 42, 43.5, 45, 45), "sosp"),
)

# Fig. 6 left: accuracy vs average sequential tokens (the APR sweep of Fig. 4a; SoS+ at several budgets).
FIG6_SEQUENTIAL = (
    Curve("APR, Sub Call Budget sweep", (1_900, 2_000, 2_100, 2_150, 2_200, 2_250, 2_300, 2_400),
          (53.5, 61.5, 65.3, 67.9, 69.8, 75.2, 76.9, 80.1), "apr", x_interpolated=True),
    Curve("SoS+, Token Budget sweep", (1_150, 1_800, 2_100, 2_350, 2_900),
          (45.1, 51.0, 56.7, 56.9, 57.3), "sosp"),
)

# Fig. 6 right: accuracy vs average wall-clock latency per problem, seconds (8x RTX A6000, SGLang).
FIG6_LATENCY = (
    Curve("APR, Sub Call Budget sweep", (3.6, 4.0, 4.6, 5.2, 5.9, 6.6), (53.5, 61.5, 65.3, 75.2, 76.9, 80.1), "apr"),
    Curve("SoS+, Token Budget sweep", (2.0, 3.3, 3.8, 4.5, 5.0), (45.1, 51.0, 56.7, 56.9, 57.3), "sosp"),
)

# Table 3: accuracy (%) by sampling temperature, supervised models without RL.
TABLE3 = {
    "sosp": {0.0: 57.3, 0.1: 57.1, 0.5: 52.0, 1.0: 48.1},
    "apr": {0.0: 75.5, 0.1: 75.9, 0.5: 74.9, 1.0: 67.8},
}
