"""A Backend over any OpenAI-compatible ``/v1/completions`` server (vLLM, SGLang, ``apr serve``).

The server owns the KV cache; its prefix cache (vLLM automatic prefix caching, SGLang
RadixAttention) does the reuse when a parent continues after a join, because the continued
prompt starts with the text it already processed. Stop strings are asked to be kept in the
output (``include_stop_str_in_output`` for vLLM, ``no_stop_trim`` for SGLang); for servers that
trim them anyway, the matched stop string is put back so every backend returns the same text.
Completions come back as text; they are re-tokenized locally (``encode``) so the orchestrator
counts tokens exactly as with the embedded engine. That is exact for this project's tokenizer,
which never merges across the cuts the runtime makes.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import httpx
from openai import APIConnectionError, APIStatusError, APITimeoutError, AsyncOpenAI

from apr.runtime.backend import Generation, SamplingParams


class OpenAIBackend:
    """Stateless: every ``generate`` call is one completion request with the full prompt."""

    def __init__(self, base_url: str, model: str, encode: Callable[[str], list[int]], context_length: int,
                 api_key: str = "EMPTY", timeout: float = 600.0, max_retries: int = 2):
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        self.model = model
        self.context_length = context_length
        self.encode = encode  # text -> token ids, without BOS
        self.client = AsyncOpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries)

    async def generate(self, session: str, prompt: str, params: SamplingParams,
                       fork_from: str | None = None) -> Generation:
        if params.tempered_logprobs and params.temperature not in (0.0, 1.0):
            raise ValueError("OpenAI-compatible servers return raw log-probs; tempered_logprobs needs temperature 1 "
                             "(or the embedded backend)")
        n_prompt = self.count_tokens(prompt)
        room = self.context_length - n_prompt
        if room <= 0:
            return Generation("", [], "context", n_prompt)
        max_tokens = min(params.max_tokens, room)
        extra: dict[str, Any] = {"include_stop_str_in_output": True, "no_stop_trim": True,
                                 "skip_special_tokens": True}
        if params.top_k:
            extra["top_k"] = params.top_k
        start = time.perf_counter()
        try:
            response = await self.client.completions.create(
                model=self.model, prompt=prompt, max_tokens=max_tokens, temperature=params.temperature,
                top_p=params.top_p, seed=params.seed, stop=list(params.stop) or None,
                logprobs=1 if params.logprobs else None, extra_body=extra,
            )
        except (APIConnectionError, APITimeoutError, APIStatusError, httpx.HTTPError) as e:
            return Generation("", [], "error", n_prompt, extra={"error": f"{type(e).__name__}: {e}"})
        elapsed = time.perf_counter() - start
        choice = response.choices[0]
        text = choice.text or ""
        reason = self._finish_reason(choice, text, params, n_prompt, max_tokens)
        if reason == "stop":
            text = self._restore_stop(choice, text, params)
        usage = response.usage
        cached = 0
        if usage is not None and getattr(usage, "prompt_tokens_details", None) is not None:
            cached = usage.prompt_tokens_details.cached_tokens or 0
        logprobs = None
        if params.logprobs and choice.logprobs is not None and choice.logprobs.token_logprobs is not None:
            logprobs = [float(x) for x in choice.logprobs.token_logprobs]
        return Generation(
            text=text, token_ids=self.encode(text), finish_reason=reason,
            prompt_tokens=usage.prompt_tokens if usage else n_prompt, cached_tokens=cached,
            logprobs=logprobs, decode_seconds=elapsed,
            extra={"completion_tokens": usage.completion_tokens if usage else None},
        )

    def _finish_reason(self, choice: Any, text: str, params: SamplingParams, n_prompt: int, max_tokens: int) -> str:
        if choice.finish_reason == "length":
            # The server stopped at our max_tokens: it is the context that ran out when we capped it.
            return "context" if max_tokens < params.max_tokens else "length"
        if choice.finish_reason != "stop":
            return "error" if choice.finish_reason else "eos"
        matched = getattr(choice, "stop_reason", None) or getattr(choice, "matched_stop", None)
        if isinstance(matched, str) or any(text.endswith(s) for s in params.stop):
            return "stop"
        return "eos"

    def _restore_stop(self, choice: Any, text: str, params: SamplingParams) -> str:
        if any(text.endswith(s) for s in params.stop):
            return text
        matched = getattr(choice, "stop_reason", None) or getattr(choice, "matched_stop", None)
        return text + matched if isinstance(matched, str) else text

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def release(self, session: str) -> None:
        """Nothing to free: the server's cache evicts on its own."""

    async def aclose(self) -> None:
        await self.client.close()
