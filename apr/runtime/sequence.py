"""One token sequence of the engine: its tokens, its cache slot, and the state of its current call."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import torch

from apr.runtime.backend import Generation, SamplingParams
from apr.runtime.text import TextStream


class Status(Enum):
    PAUSED = "paused"  # no call in flight; the cache is kept for the next one (or evicted)
    RUNNING = "running"  # a call is decoding: the sequence is in the engine's batch


@dataclass
class CallStats:
    """Bookkeeping of one decode call (one ``extend`` with sampling params)."""

    prompt_tokens: int
    submitted: float
    cached_tokens: int = 0
    started: float | None = None  # the step that prefilled the prompt began
    first_token: float | None = None
    finished: float | None = None
    steps: int = 0


@dataclass(eq=False)
class Sequence:
    """One token sequence with its cache slot and, while running, the state of its decode call."""

    id: int
    tokens: list[int]
    n_cached: int = 0  # leading tokens whose K/V sit in the cache
    n_feed: int = 0  # tokens the current step feeds (all pending ones, or a prefill's chunk)
    slot: int | None = None
    last_used: float = 0.0
    status: Status = Status.PAUSED
    # State of the current call (``params`` is None while paused).
    params: SamplingParams | None = None
    generator: torch.Generator | None = None
    out_ids: list[int] = field(default_factory=list)
    out_logprobs: list[float] | None = None
    stream: TextStream | None = None
    finish_reason: str | None = None
    error: Exception | None = None  # why a call finished with "error"
    stats: CallStats | None = None

    @property
    def running(self) -> bool:
        return self.status is Status.RUNNING

    @property
    def n_pending(self) -> int:
        return len(self.tokens) - self.n_cached

    def result(self) -> Generation:
        """The finished call as a ``Generation``."""
        assert self.finish_reason is not None and self.stats is not None, "call has not finished"
        s = self.stats
        end = s.finished
        first = s.first_token if s.first_token is not None else end
        return Generation(
            text=self.stream.text, token_ids=list(self.out_ids), finish_reason=self.finish_reason,
            prompt_tokens=s.prompt_tokens, cached_tokens=s.cached_tokens,
            logprobs=list(self.out_logprobs) if self.out_logprobs is not None else None,
            prefill_seconds=first - s.started if s.started is not None else 0.0,
            decode_seconds=end - first,
            extra={"queue_seconds": (s.started if s.started is not None else end) - s.submitted, "steps": s.steps},
        )
