"""What one fork-join attempt may spend, checked before every model call.

Limits are checked when a call starts and a call's ``max_tokens`` is capped to the tokens left,
so the total can overshoot by the prompt tokens of the calls already in flight, never more.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from apr.prompted.client import CallFailed


class BudgetExceeded(CallFailed):
    def __init__(self, message: str):
        super().__init__("budget", message)


@dataclass
class Budget:
    max_tokens: int | None = None  # prompt + completion tokens, over all calls
    max_seconds: float | None = None  # wall clock from the budget's creation
    spent_tokens: int = 0
    started: float = field(default_factory=time.monotonic)

    def tokens_left(self) -> int | None:
        return None if self.max_tokens is None else self.max_tokens - self.spent_tokens

    def seconds_left(self) -> float | None:
        return None if self.max_seconds is None else self.max_seconds - (time.monotonic() - self.started)

    def check(self) -> None:
        """Raise ``BudgetExceeded`` if no new call may start."""
        tokens, seconds = self.tokens_left(), self.seconds_left()
        if tokens is not None and tokens <= 0:
            raise BudgetExceeded(f"token budget of {self.max_tokens} spent ({self.spent_tokens} used)")
        if seconds is not None and seconds <= 0:
            raise BudgetExceeded(f"time budget of {self.max_seconds:g} s spent")

    def charge(self, tokens: int) -> None:
        self.spent_tokens += tokens
