"""``POST /v1/completions`` on the embedded engine: each request is one session of one shared backend.

Requests never wait for each other: a request's call joins the engine batch that every other live
request (and every ``/v1/apr/solve`` thread) is decoding in, at the next step. Responses follow
OpenAI's completion object plus what vLLM adds for APR clients: ``stop_reason`` (the matched stop
string, None for EOS) and ``usage.prompt_tokens_details.cached_tokens`` (prompt tokens served
from the prefix cache).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from itertools import accumulate
from typing import Any

from apr.runtime.backend import Generation
from apr.runtime.embedded import EmbeddedBackend
from apr.serve.errors import APIError
from apr.serve.prefix import PrefixCache
from apr.serve.schemas import CompletionRequest

_FINISH = {"eos": "stop", "stop": "stop", "length": "length", "context": "length"}


class Completer:
    def __init__(self, backend: EmbeddedBackend, model_name: str, cache_capacity: int):
        self.backend = backend
        self.model_name = model_name
        self.cache = PrefixCache(backend, cache_capacity)
        self.longest_token = max(1, *map(len, backend.codec.token_bytes))

    async def admit(self, req: CompletionRequest) -> list[int]:
        """The prompt's token ids, or an APIError for a request that cannot run.

        A prompt whose UTF-8 bytes could not fit in the window even at the longest token's bytes
        is refused before tokenizing; the rest is tokenized off the event loop.
        """
        if req.model is not None and req.model != self.model_name:
            raise APIError(404, f"model {req.model!r} does not exist; this server serves {self.model_name!r}",
                           "model_not_found", "model")
        window = self.backend.context_length
        n_bytes = len(req.prompt.encode("utf-8"))
        if n_bytes > window * self.longest_token:
            raise APIError(400, f"this model's maximum context length is {window} tokens, but the prompt has "
                           f"{n_bytes} bytes, more than {window} tokens can hold", "context_length_exceeded", "prompt")
        ids = await asyncio.to_thread(self.backend.codec.encode, req.prompt)
        if len(ids) >= window:
            raise APIError(400, f"this model's maximum context length is {window} tokens, but the prompt has "
                           f"{len(ids)} (BOS included), which leaves no room to generate",
                           "context_length_exceeded", "prompt")
        return ids

    async def generate(self, req: CompletionRequest, ids: list[int]) -> Generation:
        """Decode one request. ``max_tokens`` past the window is not an error: the call stops there."""
        session = f"req-{uuid.uuid4().hex}"
        room = self.backend.context_length - len(ids)
        params = req.sampling(min(req.max_tokens or room, room))
        try:
            gen = await self.backend.generate(session, req.prompt, params, fork_from=self.cache.best(ids))
        except BaseException:  # cancelled (client gone) or failed: its sequence is freed now
            self.backend.release(session)
            raise
        self.cache.keep(session, ids + gen.token_ids)
        return gen

    def response(self, req: CompletionRequest, gen: Generation) -> dict[str, Any]:
        text, stop_reason = gen.text, None
        if gen.finish_reason == "stop":
            stop_reason = max((s for s in req.stop if text.endswith(s)), key=len)
            if not req.keep_stop:
                text = text[: -len(stop_reason)]
        if req.echo:
            text = req.prompt + text
        choice = {"index": 0, "text": text, "logprobs": self._logprobs(gen) if req.logprobs is not None else None,
                  "finish_reason": _FINISH[gen.finish_reason], "stop_reason": stop_reason}
        n_out = len(gen.token_ids)
        return {
            "id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
            "model": self.model_name, "choices": [choice],
            "usage": {"prompt_tokens": gen.prompt_tokens, "completion_tokens": n_out,
                      "total_tokens": gen.prompt_tokens + n_out,
                      "prompt_tokens_details": {"cached_tokens": gen.cached_tokens}},
        }

    def _logprobs(self, gen: Generation) -> dict[str, Any]:
        """OpenAI's legacy logprobs object; ``top_logprobs`` is None (only sampled tokens are scored)."""
        pieces = [self.backend.codec.token_bytes[t].decode("utf-8", errors="replace") for t in gen.token_ids]
        offsets = [0, *accumulate(len(p) for p in pieces)][:-1]
        return {"tokens": pieces, "token_logprobs": gen.logprobs, "text_offset": offsets, "top_logprobs": None}
