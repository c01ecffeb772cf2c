"""Prefix reuse across requests: a finished request's KV cache serves the next prompt that extends it.

An APR client re-sends a parent thread after each join as one new completion whose text starts
with everything the parent's previous request saw and wrote (spec §6.1). Servers make that cheap
with a prefix cache (SGLang's RadixAttention, vLLM's automatic prefix caching); this is the small
version for the embedded engine: the sessions of the last few finished requests stay alive, and
a new request forks the one sharing the longest token prefix with its prompt, so only the rest is
prefilled. The engine evicts idle caches on its own when it needs slots, so a kept session costs
only its token list; the oldest are released past ``capacity``.
"""

from __future__ import annotations

from collections import OrderedDict

from apr.runtime.codec import common_prefix
from apr.runtime.embedded import EmbeddedBackend


class PrefixCache:
    def __init__(self, backend: EmbeddedBackend, capacity: int):
        self.backend = backend
        self.capacity = capacity
        self._tokens: OrderedDict[str, list[int]] = OrderedDict()  # session -> the tokens it holds

    def best(self, ids: list[int]) -> str | None:
        """The kept session sharing the longest prefix with ``ids`` (more than BOS), if any."""
        best, best_len = None, 1
        for session, tokens in self._tokens.items():
            n = common_prefix(tokens, ids)
            if n > best_len:
                best, best_len = session, n
        if best is not None:
            self._tokens.move_to_end(best)
        return best

    def keep(self, session: str, tokens: list[int]) -> None:
        """Keep a finished request's session; release the least recently used past capacity."""
        self._tokens[session] = tokens
        self._tokens.move_to_end(session)
        while len(self._tokens) > self.capacity:
            old, _ = self._tokens.popitem(last=False)
            self.backend.release(old)

    def __len__(self) -> int:
        return len(self._tokens)
