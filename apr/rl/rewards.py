"""Episode rewards: verified correctness, plus optional shaping that a tree's shape earns or costs.

An episode is scored the way ``apr eval`` scores a sample (``apr.eval.metrics.score_tree``: the
strict verifier on the root's final answer, for the problem's own numbers, and the tree's token
metrics), so training reward and evaluation accuracy can never disagree on what "correct" means.

The paper's reward is binary: 1 if correct, else 0. The optional terms follow the peers (spec
peers.md): ThreadWeaver's parallelism bonus, gated by correctness so that a wrong answer can never
be "efficient", and plain penalties on thread count and decoded length (the reference defined such
penalties but never called them).
"""

from __future__ import annotations

from dataclasses import dataclass

from apr.eval.metrics import SampleScore


@dataclass(frozen=True)
class Rewards:
    """Shaping on top of the binary correctness reward; all off by default (the paper)."""

    efficiency: float = 0.0  # factor on the parallelism bonus (ThreadWeaver uses 0.5)
    efficiency_clip: float = 0.2  # the bonus never exceeds this
    thread_penalty: float = 0.0  # subtracted per child thread
    length_penalty: float = 0.0  # subtracted per 1,000 decoded tokens (all threads)

    def __post_init__(self) -> None:
        for name in ("efficiency", "efficiency_clip", "thread_penalty", "length_penalty"):
            if getattr(self, name) < 0:
                raise ValueError(f"reward setting {name} must be >= 0, got {getattr(self, name)}")


def parallel_fraction(s: SampleScore) -> float:
    """``1 - sequential / decoded`` tokens: 0 for a sequential trace, towards 1 as work spreads out."""
    return 1.0 - s.sequential_tokens / s.generated_tokens if s.generated_tokens else 0.0


def episode_reward(s: SampleScore, r: Rewards) -> float:
    """``1(correct) * (1 + min(clip, efficiency * parallel_fraction)) - penalties``."""
    reward = 1.0 + min(r.efficiency_clip, r.efficiency * parallel_fraction(s)) if s.correct else 0.0
    return reward - r.thread_penalty * (s.n_threads - 1) - r.length_penalty * s.generated_tokens / 1000
