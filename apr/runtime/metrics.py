"""What a solved tree cost: the paper's token metrics plus what the runtime measured per call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apr.threads import Thread, TreeMetrics, tree_metrics


@dataclass
class RuntimeMetrics:
    tree: TreeMetrics
    prefill_tokens: int  # prompt tokens the backend actually prefilled (not served from a cache)
    cached_tokens: int  # prompt tokens served from a cache
    prefill_s: float  # summed over calls (thread time, overlapping across threads)
    decode_s: float
    wall_s: float  # the root's wall clock, start to finish

    def to_dict(self) -> dict[str, Any]:
        out = self.tree.to_dict()
        out.update(prefill_tokens=self.prefill_tokens, cached_tokens=self.cached_tokens,
                   prefill_s=self.prefill_s, decode_s=self.decode_s, wall_s=self.wall_s)
        return out


def runtime_metrics(root: Thread) -> RuntimeMetrics:
    """The paper's token metrics (``tree_metrics``) plus what the runtime measured per call."""
    calls = [c for t in root.walk() for c in t.meta.get("calls", [])]
    return RuntimeMetrics(
        tree=tree_metrics(root),
        prefill_tokens=sum(c["prompt_tokens"] - c["cached_tokens"] for c in calls),
        cached_tokens=sum(c["cached_tokens"] for c in calls),
        prefill_s=sum(c["prefill_s"] for c in calls),
        decode_s=sum(c["decode_s"] for c in calls),
        wall_s=root.meta.get("wall_s", 0.0),
    )
