"""A Backend over llama.cpp's ``llama-server``, through its native ``/completion`` endpoint.

Its OpenAI-compatible endpoints trim the stop string and answer ``finish_reason: "stop"`` for an
end of sequence too, so a client cannot tell a spawn from the end of a thread. The native endpoint
takes the prompt as token ids (ours, so the server never tokenizes), returns the sampled token ids
(``return_tokens``) and says why it stopped (``stop_type``: eos / word / limit). The text is then
decoded here from those ids exactly as the embedded engine decodes its own, so trees and token
counts are the same on both. Server-side samplers that change greedy or sampled output (repeat
penalty, min-p, DRY, XTC, ...) are switched off by naming only top-k, top-p and temperature.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from apr.runtime.backend import Generation, SamplingParams
from apr.runtime.codec import TokenCodec
from apr.runtime.text import TextStream

SEED_LIMIT = 2**32  # llama.cpp seeds are 32-bit


class LlamaCppBackend:
    """Stateless client: every call sends the whole prompt; ``cache_prompt`` lets the server reuse
    the longest prefix one of its slots already holds (a parent after its join, say)."""

    def __init__(self, base_url: str, codec: TokenCodec, context_length: int, timeout: float = 600.0):
        self.base_url = base_url.rstrip("/")
        self.codec = codec
        self.context_length = context_length
        self.http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout)

    async def generate(self, session: str, prompt: str, params: SamplingParams,
                       fork_from: str | None = None) -> Generation:
        if params.logprobs and params.stop:
            # llama-server drops the probabilities of a stop string's tokens from its reply.
            raise ValueError("llama-server returns no log-probs for stop-string tokens; RL needs the embedded "
                             "backend or apr serve")
        ids = self.codec.encode(prompt)
        room = self.context_length - len(ids)
        if room <= 0:
            return Generation("", [], "context", len(ids))
        max_tokens = min(params.max_tokens, room)
        start = time.perf_counter()
        try:
            reply = await self.http.post("/completion", json=self._request(ids, params, max_tokens))
            reply.raise_for_status()
            body = reply.json()
        except (httpx.HTTPError, ValueError) as e:
            return Generation("", [], "error", len(ids), extra={"error": f"{type(e).__name__}: {e}"})
        return self._generation(body, ids, params, max_tokens, time.perf_counter() - start)

    @staticmethod
    def _request(ids: list[int], params: SamplingParams, max_tokens: int) -> dict[str, Any]:
        request: dict[str, Any] = {
            "prompt": ids, "n_predict": max_tokens, "stop": list(params.stop), "return_tokens": True,
            "cache_prompt": True, "temperature": 0.0 if params.greedy else params.temperature,
            "top_k": params.top_k, "top_p": params.top_p, "samplers": ["top_k", "top_p", "temperature"],
        }
        if params.seed is not None:
            request["seed"] = params.seed % SEED_LIMIT
        if params.logprobs:
            request["n_probs"] = 1
        return request

    def _generation(self, body: dict[str, Any], ids: list[int], params: SamplingParams, max_tokens: int,
                    elapsed: float) -> Generation:
        tokens = body.get("tokens")
        kind = body.get("stop_type")
        if not isinstance(tokens, list) or kind not in ("eos", "word", "limit") or body.get("truncated"):
            return self._unreadable(ids, f"reply without token ids or stop type (stop_type={kind!r}, "
                                         f"truncated={body.get('truncated')!r}): is this llama-server?")
        stream = TextStream(params.stop)
        for tok in tokens:
            if not 0 <= tok < len(self.codec.token_bytes):
                return self._unreadable(ids, f"token id {tok} outside this tokenizer's vocabulary")
            stream.push(self.codec.token_bytes[tok])
        stream.close()
        if kind == "word" and not stream.stopped:
            return self._unreadable(ids, f"the server stopped on {body.get('stopping_word')!r}, which its tokens "
                                         "do not spell")
        reason = {"eos": "eos", "word": "stop"}.get(kind) or (
            "context" if max_tokens < params.max_tokens else "length")
        logprobs = None
        if params.logprobs:
            logprobs = [float(p["logprob"]) for p in body.get("completion_probabilities", [])]
            if len(logprobs) != len(tokens):
                return self._unreadable(ids, f"{len(logprobs)} log-probs for {len(tokens)} tokens")
        timings = body.get("timings") or {}
        return Generation(text=stream.text, token_ids=list(tokens), finish_reason=reason, prompt_tokens=len(ids),
                          cached_tokens=int(timings.get("cache_n", 0) or 0), logprobs=logprobs,
                          decode_seconds=elapsed)

    @staticmethod
    def _unreadable(ids: list[int], why: str) -> Generation:
        return Generation("", [], "error", len(ids), extra={"error": f"cannot read llama-server's reply: {why}"})

    async def server_ids(self, text: str) -> list[int]:
        """The server's own tokenization of ``text`` (BOS included), to check it against ours."""
        reply = await self.http.post("/tokenize", json={"content": text, "add_special": True})
        reply.raise_for_status()
        return reply.json()["tokens"]

    def count_tokens(self, text: str) -> int:
        return self.codec.count(text)

    def release(self, session: str) -> None:
        """Nothing to free: the server's slots keep or evict prompts on their own."""

    async def aclose(self) -> None:
        await self.http.aclose()
