"""The contract between the fork-join orchestrator and whatever decodes tokens.

The orchestrator speaks text. Each call names a *session* (one per thread): a backend that keeps
KV caches (the embedded engine) reuses the longest token prefix it already holds for that session
and prefills only the rest, so a parent that continues after a join re-prefills nothing but the
join block. A stateless backend (an OpenAI-compatible server) sends the text and lets the server's
prefix cache do the reuse. ``fork_from`` lets a child start from a copy of another session's cache
when its prompt shares a prefix with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.0  # 0 = greedy
    top_k: int = 0  # 0 = off
    top_p: float = 1.0
    max_tokens: int = 4096  # per call
    seed: int | None = None
    stop: tuple[str, ...] = ()  # stop strings; the matched stop string is kept in the text
    logprobs: bool = False  # return the sampled tokens' log-probs (RL needs them)
    # Log-probs of softmax(logits / temperature), the distribution sampled from (before top-k/top-p),
    # instead of the raw model's: what a trainer that samples at temperature != 1 optimises.
    tempered_logprobs: bool = False


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
