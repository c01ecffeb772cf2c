"""A scripted fake model: a Python function writes each continuation, the backend cuts it like a model's.

``ScriptedBackend`` lets tests and the fuzzer force any structure (spawns, broken blocks,
hallucinated joins, endless spawning) that random-weight models almost never write. Its calls
follow the engine's rules for EOS, stop strings, ``max_tokens`` and the context window, token by
token with the real tokenizer.
"""

from __future__ import annotations

import asyncio
import random
from typing import Callable

from transformers import PreTrainedTokenizerBase

from apr.runtime.backend import Generation, SamplingParams
from apr.runtime.codec import TokenCodec
from apr.runtime.text import TextStream


Script = Callable[[str, random.Random], str]  # (prompt, rng) -> what the "model" writes before EOS


class ScriptedBackend:
    """A model stand-in: ``script(prompt, rng)`` writes the continuation, the backend cuts it.

    ``rng`` is seeded from the backend seed, the call's seed and the prompt, so a script that
    draws from it is deterministic. ``token_delay`` makes each call take ``delay x tokens``
    seconds (cancellable), for timeouts and early join.
    """

    def __init__(self, script: Script, tokenizer: PreTrainedTokenizerBase, *, context_length: int = 4096,
                 token_delay: float = 0.0, seed: int = 0):
        self.script, self.codec = script, TokenCodec(tokenizer)
        self.context_length, self.token_delay, self.seed = context_length, token_delay, seed
        self.calls = 0
        self.released: set[str] = set()

    async def generate(self, session: str, prompt: str, params: SamplingParams,
                       fork_from: str | None = None) -> Generation:
        self.calls += 1
        ids = self.codec.encode(prompt)
        text = self.script(prompt, random.Random(f"{self.seed}/{params.seed}/{prompt}"))
        stream = TextStream(params.stop)
        out: list[int] = []
        reason = "context" if len(ids) >= self.context_length else "length"
        if len(ids) < self.context_length and params.max_tokens > 0:
            for tok in self.codec.encode(text, bos=False) + [self.codec.eos_token_id]:
                out.append(tok)
                if tok == self.codec.eos_token_id:
                    reason = "eos"
                elif stream.push(self.codec.token_bytes[tok]):
                    reason = "stop"
                elif len(out) >= params.max_tokens:
                    reason = "length"
                elif len(ids) + len(out) >= self.context_length:
                    reason = "context"
                else:
                    continue
                break
        stream.close()
        if self.token_delay:
            await asyncio.sleep(self.token_delay * len(out))
        return Generation(stream.text, out, reason, len(ids))

    def release(self, session: str) -> None:
        self.released.add(session)

    def count_tokens(self, text: str) -> int:
        return self.codec.count(text)
