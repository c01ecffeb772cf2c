"""A Backend over any OpenAI-compatible ``/v1/completions`` server (vLLM, SGLang, ``apr serve``,
llama-cpp-python; llama.cpp's own ``llama-server`` has a better API, see ``llamacpp_backend``).

The server owns the KV cache; its prefix cache (vLLM automatic prefix caching, SGLang
RadixAttention) does the reuse when a parent continues after a join, because the continued
prompt starts with the text it already processed. Stop strings are asked to be kept in the
output (``include_stop_str_in_output`` for vLLM, ``no_stop_trim`` for SGLang); for servers that
trim them anyway, the matched stop string is put back: the one the server names (``stop_reason``,
``matched_stop``), else, for a server that names none (llama-cpp-python), the one whose token count
is what the server counted beyond the text; a reply that fits neither is an error, not a guess.
Server-side sampling defaults that would change the output (llama.cpp's repeat penalty 1.1, top-k
40, min-p 0.05) are switched off in every request, under each engine's own name.
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
                                 "skip_special_tokens": True, "top_k": params.top_k or -1, "min_p": 0.0,
                                 "repetition_penalty": 1.0, "repeat_penalty": 1.0}
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
        usage = response.usage
        text = choice.text or ""
        try:
            reason = self._finish_reason(choice, text, params, max_tokens, usage)
        except ValueError as e:
            return Generation("", [], "error", n_prompt, extra={"error": f"cannot read the server's reply: {e}"})
        if reason == "stop":
            text = self._restore_stop(choice, text, params, usage)
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

    def _finish_reason(self, choice: Any, text: str, params: SamplingParams, max_tokens: int, usage: Any) -> str:
        if choice.finish_reason == "length":
            # The server stopped at our max_tokens: it is the context that ran out when we capped it.
            return "context" if max_tokens < params.max_tokens else "length"
        if choice.finish_reason != "stop":
            return "error" if choice.finish_reason else "eos"
        if any(text.endswith(s) for s in params.stop) or isinstance(self._named_stop(choice), str):
            return "stop"
        if self._names_its_stops(choice):
            return "eos"
        return "stop" if self._trimmed_stop(text, params, usage) is not None else "eos"

    @staticmethod
    def _named_stop(choice: Any) -> Any:
        return getattr(choice, "stop_reason", None) or getattr(choice, "matched_stop", None)

    @staticmethod
    def _names_its_stops(choice: Any) -> bool:
        """vLLM (``stop_reason``) and SGLang (``matched_stop``) say which stop fired, null for EOS."""
        return bool({"stop_reason", "matched_stop"} & set(choice.model_extra or {}))

    def _trimmed_stop(self, text: str, params: SamplingParams, usage: Any) -> str | None:
        """For a server that trims stop strings and names none: the stop string whose tokens the
        server counted beyond the text (None: nothing beyond it, an end of sequence)."""
        counted = getattr(usage, "completion_tokens", None)
        if not params.stop or counted is None:
            return None
        extra = counted - len(self.encode(text))
        if extra <= 0:
            return None
        fits = [s for s in params.stop if len(self.encode(s)) == extra]
        if len(fits) != 1:
            raise ValueError(f"the server trimmed its stop string and counted {extra} tokens for it, which "
                             f"{'none' if not fits else 'several'} of {list(params.stop)} spell")
        return fits[0]

    def _restore_stop(self, choice: Any, text: str, params: SamplingParams, usage: Any) -> str:
        if any(text.endswith(s) for s in params.stop):
            return text
        matched = self._named_stop(choice)
        if isinstance(matched, str):
            return text + matched
        return text + (self._trimmed_stop(text, params, usage) or "")

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def release(self, session: str) -> None:
        """Nothing to free: the server's cache evicts on its own."""

    async def aclose(self) -> None:
        await self.client.close()
