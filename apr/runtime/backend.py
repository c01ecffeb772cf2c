"""The contract between the fork-join orchestrator and whatever decodes tokens.

The orchestrator speaks text. Each call names a *session* (one per thread): a backend that keeps
KV caches (the embedded engine) reuses the longest token prefix it already holds for that session
and prefills only the rest, so a parent that continues after a join re-prefills nothing but the
join block. A stateless backend (an OpenAI-compatible server) sends the text and lets the server's
prefix cache do the reuse. ``fork_from`` lets a child start from a copy of another session's cache
when its prompt shares a prefix with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

# Temperatures below this decode greedily, as in vLLM: dividing logits by a tinier one overflows.
GREEDY_BELOW = 1e-5
SEEDS = 2**64  # seeds are 0 .. SEEDS - 1, what torch.Generator.manual_seed takes


@dataclass(frozen=True)
class SamplingParams:
    """How one call samples. Values are checked here, so no call can carry one the sampler cannot use."""

    temperature: float = 0.0  # 0 (or below GREEDY_BELOW) = greedy
    top_k: int = 0  # 0 = off
    top_p: float = 1.0
    max_tokens: int = 4096  # per call
    seed: int | None = None
    stop: tuple[str, ...] = ()  # stop strings; the matched stop string is kept in the text
    logprobs: bool = False  # return the sampled tokens' log-probs (RL needs them)
    # Log-probs of softmax(logits / temperature), the distribution sampled from (before top-k/top-p),
    # instead of the raw model's: what a trainer that samples at temperature != 1 optimises.
    tempered_logprobs: bool = False

    def __post_init__(self) -> None:
        def whole(name: str, lo: int, hi: float = math.inf) -> None:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v < hi:
                raise ValueError(f"{name} must be an integer in [{lo}, {hi}), got {v!r}")

        if not (isinstance(self.temperature, (int, float)) and math.isfinite(self.temperature)
                and self.temperature >= 0):
            raise ValueError(f"temperature must be a finite number >= 0, got {self.temperature!r}")
        if not (isinstance(self.top_p, (int, float)) and 0 < self.top_p <= 1):
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")
        whole("top_k", 0)
        whole("max_tokens", 0)
        if self.seed is not None:
            whole("seed", 0, SEEDS)
        if not all(isinstance(s, str) and s for s in self.stop):
            raise ValueError("stop strings must be non-empty strings")

    @property
    def greedy(self) -> bool:
        return self.temperature < GREEDY_BELOW


@dataclass
class Generation:
    text: str
    token_ids: list[int]
    finish_reason: str  # "eos", "stop", "length" (max_tokens), "context" (window full), "cancelled", "error"
    prompt_tokens: int  # tokens of the prompt as the backend saw it
    cached_tokens: int = 0  # prompt tokens served from a cache instead of prefilled
    logprobs: list[float] | None = None
    prefill_seconds: float = 0.0
    decode_seconds: float = 0.0
    extra: dict = field(default_factory=dict)


class Backend(Protocol):
    """Anything that can continue a text. Implementations must be safe to call concurrently."""

    context_length: int

    async def generate(self, session: str, prompt: str, params: SamplingParams,
                       fork_from: str | None = None) -> Generation: ...

    def release(self, session: str) -> None:
        """Forget a session's cached state (a no-op for stateless backends)."""

    def count_tokens(self, text: str) -> int: ...
